// A small strict JSON reader (RFC 8259) for untrusted input: datagrams from other programs
// (libtlsrpt) and `journalctl -o json` records. Exactly one value, followed only by
// whitespace; bounded depth, size and member count; strings decoded to UTF-8 (\u escapes,
// surrogate pairs checked); duplicate keys: the last one wins. Numbers keep their text and,
// when integral and in range, their int64 value. Never throws on bad input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::json {

struct Value {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  std::string text;                   // string value, or a number's text
  std::optional<std::int64_t> integer;  // a number that is an integer within int64
  std::vector<Value> array;
  std::map<std::string, Value, std::less<>> object;

  bool is_object() const noexcept { return type == Type::object; }
  bool is_array() const noexcept { return type == Type::array; }
  bool is_string() const noexcept { return type == Type::string; }
  // The member `key` of an object, or nullptr.
  const Value* find(std::string_view key) const;
};

struct ParseLimits {
  std::size_t max_bytes = 1 << 20;
  std::size_t max_depth = 16;
  std::size_t max_items = 65536;  // array elements plus object members, in total
};

// nullopt with `error` ("offset N: what") when the text is not one JSON value within limits.
std::optional<Value> parse(std::string_view text, std::string* error, const ParseLimits& limits = {});

}  // namespace mtasts::json
