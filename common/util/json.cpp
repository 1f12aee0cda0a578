#include "common/util/json.hpp"

#include <cstdio>
#include <utility>

namespace mtasts::json {

std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          // Bytes >= 0x80 pass through: callers hand us UTF-8 or escaped text.
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

void Object::key(std::string_view k) {
  out_ += out_.empty() ? "{" : ",";
  out_ += quote(k);
  out_ += ':';
}
Object& Object::str(std::string_view k, std::string_view v) { key(k); out_ += quote(v); return *this; }
Object& Object::num(std::string_view k, std::int64_t v) { key(k); out_ += std::to_string(v); return *this; }
Object& Object::boolean(std::string_view k, bool v) { key(k); out_ += v ? "true" : "false"; return *this; }
Object& Object::null(std::string_view k) { key(k); out_ += "null"; return *this; }
Object& Object::raw(std::string_view k, std::string_view j) { key(k); out_ += j; return *this; }
Object& Object::strings(std::string_view k, const std::vector<std::string>& vs) {
  key(k);
  out_ += '[';
  for (std::size_t i = 0; i < vs.size(); ++i) {
    if (i) out_ += ',';
    out_ += quote(vs[i]);
  }
  out_ += ']';
  return *this;
}
std::string Object::done() const { return out_.empty() ? "{}" : out_ + "}"; }
std::string Object::take() {
  if (out_.empty()) return "{}";
  out_ += '}';
  return std::exchange(out_, std::string());
}

void Array::sep() { out_ += out_.empty() ? "[" : ","; }
Array& Array::str(std::string_view v) { sep(); out_ += quote(v); return *this; }
Array& Array::num(std::int64_t v) { sep(); out_ += std::to_string(v); return *this; }
Array& Array::raw(std::string_view j) { sep(); out_ += j; return *this; }
std::string Array::take() {
  if (out_.empty()) return "[]";
  out_ += ']';
  return std::exchange(out_, std::string());
}

}  // namespace mtasts::json
