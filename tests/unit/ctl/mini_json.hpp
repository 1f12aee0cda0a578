// Test helper: a small strict JSON reader (RFC 8259, integers only for numbers) so that
// tests parse mta-sts-ctl's --json output back instead of matching strings. Exactly one value
// followed only by whitespace, or the result is invalid.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::test {

struct JsonValue {
  enum class Type { invalid, null, boolean, number, string, array, object };
  Type type = Type::invalid;
  bool boolean = false;
  std::int64_t number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object;

  bool is_object() const { return type == Type::object; }
  bool is_array() const { return type == Type::array; }
  bool is_null() const { return type == Type::null; }
  bool is_string() const { return type == Type::string; }
  bool has(const std::string& k) const { return object.count(k) != 0; }
  // Missing keys give an invalid value, so chained lookups never throw.
  const JsonValue& operator[](const std::string& k) const {
    static const JsonValue missing;
    auto it = object.find(k);
    return it == object.end() ? missing : it->second;
  }
};

namespace json_detail {

struct Reader {
  std::string_view s;
  std::size_t i = 0;
  bool ok = true;

  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool word(std::string_view w) {
    if (s.substr(i, w.size()) == w) {
      i += w.size();
      return true;
    }
    return false;
  }
  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool hex4(std::uint32_t& v) {
    if (i + 4 > s.size()) return false;
    v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }
  bool str(std::string& out) {
    if (!eat('"')) return false;
    while (i < s.size()) {
      auto c = static_cast<unsigned char>(s[i++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i >= s.size()) return false;
      char e = s[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t v = 0;
          if (!hex4(v)) return false;
          if (v >= 0xd800 && v < 0xdc00) {
            std::uint32_t lo = 0;
            if (!word("\\u") || !hex4(lo) || lo < 0xdc00 || lo > 0xdfff) return false;
            v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(out, v);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  JsonValue value(int depth) {
    JsonValue v;
    ws();
    if (depth > 64 || i >= s.size()) return v;
    char c = s[i];
    if (c == '{') {
      ++i;
      v.type = JsonValue::Type::object;
      if (eat('}')) return v;
      do {
        std::string k;
        if (!str(k) || !eat(':')) return JsonValue{};
        JsonValue m = value(depth + 1);
        if (m.type == JsonValue::Type::invalid || v.object.count(k)) return JsonValue{};
        v.object.emplace(std::move(k), std::move(m));
      } while (eat(','));
      if (!eat('}')) return JsonValue{};
    } else if (c == '[') {
      ++i;
      v.type = JsonValue::Type::array;
      if (eat(']')) return v;
      do {
        JsonValue m = value(depth + 1);
        if (m.type == JsonValue::Type::invalid) return JsonValue{};
        v.array.push_back(std::move(m));
      } while (eat(','));
      if (!eat(']')) return JsonValue{};
    } else if (c == '"') {
      v.type = JsonValue::Type::string;
      if (!str(v.string)) return JsonValue{};
    } else if (word("true")) {
      v.type = JsonValue::Type::boolean;
      v.boolean = true;
    } else if (word("false")) {
      v.type = JsonValue::Type::boolean;
    } else if (word("null")) {
      v.type = JsonValue::Type::null;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      bool neg = c == '-';
      if (neg) ++i;
      std::size_t start = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        v.number = v.number * 10 + (s[i] - '0');
        ++i;
      }
      if (i == start || (i - start > 1 && s[start] == '0') || i - start > 18) return JsonValue{};
      if (neg) v.number = -v.number;
      v.type = JsonValue::Type::number;
    }
    return v;
  }
};

}  // namespace json_detail

inline JsonValue parse_json(std::string_view text) {
  json_detail::Reader r{text};
  JsonValue v = r.value(0);
  r.ws();
  if (r.i != text.size()) return JsonValue{};
  return v;
}

}  // namespace mtasts::test
