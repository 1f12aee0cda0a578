#include "common/util/json_parse.hpp"

#include <charconv>

namespace mtasts::json {
namespace {

class Reader {
 public:
  Reader(std::string_view s, const ParseLimits& l) : s_(s), limits_(l) {}

  std::optional<Value> run(std::string* error) {
    Value v;
    ws();
    if (!value(v, 0)) return fail(error);
    ws();
    if (i_ != s_.size()) {
      why_ = "trailing data";
      return fail(error);
    }
    return v;
  }

 private:
  std::optional<Value> fail(std::string* error) {
    if (error) *error = "offset " + std::to_string(i_) + ": " + why_;
    return std::nullopt;
  }
  bool bad(const char* why) {
    why_ = why;
    return false;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return bad("invalid literal");
    i_ += word.size();
    return true;
  }
  bool count_item() {
    if (++items_ > limits_.max_items) return bad("too many items");
    return true;
  }

  bool value(Value& v, std::size_t depth) {
    if (i_ >= s_.size()) return bad("unexpected end");
    switch (s_[i_]) {
      case '{': return object(v, depth + 1);
      case '[': return array(v, depth + 1);
      case '"': v.type = Value::Type::string; return string(v.text);
      case 't': v.type = Value::Type::boolean; v.boolean = true; return literal("true");
      case 'f': v.type = Value::Type::boolean; return literal("false");
      case 'n': v.type = Value::Type::null; return literal("null");
      default: return number(v);
    }
  }

  bool object(Value& v, std::size_t depth) {
    if (depth > limits_.max_depth) return bad("nested too deep");
    v.type = Value::Type::object;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    while (true) {
      ws();
      if (i_ >= s_.size() || s_[i_] != '"') return bad("expected a member name");
      std::string key;
      if (!string(key)) return false;
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return bad("expected ':'");
      ++i_;
      ws();
      if (!count_item()) return false;
      Value member;
      if (!value(member, depth)) return false;
      v.object.insert_or_assign(std::move(key), std::move(member));
      ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return true;
      }
      return bad("expected ',' or '}'");
    }
  }

  bool array(Value& v, std::size_t depth) {
    if (depth > limits_.max_depth) return bad("nested too deep");
    v.type = Value::Type::array;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return true;
    }
    while (true) {
      ws();
      if (!count_item()) return false;
      Value element;
      if (!value(element, depth)) return false;
      v.array.push_back(std::move(element));
      ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return true;
      }
      return bad("expected ',' or ']'");
    }
  }

  bool hex4(unsigned& out) {
    if (i_ + 4 > s_.size()) return bad("truncated \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      out <<= 4;
      if (c >= '0' && c <= '9') out |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<unsigned>(c - 'A' + 10);
      else return bad("bad \\u escape");
    }
    return true;
  }

  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Raw bytes of a string must be well-formed UTF-8 (RFC 8259 section 8.1).
  bool utf8_sequence(std::string& out) {
    const auto b0 = static_cast<unsigned char>(s_[i_]);
    std::size_t n = 0;
    unsigned cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) { n = 1; cp = b0 & 0x1Fu; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { n = 2; cp = b0 & 0x0Fu; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { n = 3; cp = b0 & 0x07u; }
    else return bad("invalid UTF-8");
    if (i_ + n >= s_.size()) return bad("invalid UTF-8");
    for (std::size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<unsigned char>(s_[i_ + k]);
      if ((b & 0xC0) != 0x80) return bad("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return bad("invalid UTF-8");
    out.append(s_.substr(i_, n + 1));
    i_ += n + 1;
    return true;
  }

  bool string(std::string& out) {
    ++i_;  // opening quote
    while (true) {
      if (i_ >= s_.size()) return bad("unterminated string");
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return bad("control character in string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        if (!utf8_sequence(out)) return false;
        continue;
      }
      if (c != '\\') {
        out.push_back(c);
        ++i_;
        continue;
      }
      ++i_;
      if (i_ >= s_.size()) return bad("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = 0;
            if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') return bad("lone surrogate");
            i_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return bad("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return bad("lone surrogate");
          }
          utf8(out, cp);
          break;
        }
        default: return bad("bad escape");
      }
    }
  }

  bool number(Value& v) {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size()) return bad("bad number");
    if (s_[i_] == '0') {
      ++i_;
    } else if (s_[i_] >= '1' && s_[i_] <= '9') {
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    } else {
      return bad("unexpected character");
    }
    bool integral = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      integral = false;
      ++i_;
      const std::size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d) return bad("bad fraction");
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      integral = false;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      const std::size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d) return bad("bad exponent");
    }
    v.type = Value::Type::number;
    v.text = std::string(s_.substr(start, i_ - start));
    if (integral) {
      std::int64_t n = 0;
      const auto r = std::from_chars(v.text.data(), v.text.data() + v.text.size(), n);
      if (r.ec == std::errc() && r.ptr == v.text.data() + v.text.size()) v.integer = n;
    }
    return true;
  }

  std::string_view s_;
  const ParseLimits& limits_;
  std::size_t i_ = 0;
  std::size_t items_ = 0;
  const char* why_ = "invalid";
};

}  // namespace

const Value* Value::find(std::string_view key) const {
  if (type != Type::object) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

std::optional<Value> parse(std::string_view text, std::string* error, const ParseLimits& limits) {
  if (text.size() > limits.max_bytes) {
    if (error) *error = "larger than " + std::to_string(limits.max_bytes) + " bytes";
    return std::nullopt;
  }
  return Reader(text, limits).run(error);
}

}  // namespace mtasts::json
