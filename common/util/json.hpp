// A minimal JSON writer for machine-readable output (mta-sts-ctl --json). Output only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::json {

// Escapes a string per RFC 8259 (quotes included in the result).
std::string quote(std::string_view s);

// Builds one object incrementally: {"k":v,...}
class Object {
 public:
  Object& str(std::string_view key, std::string_view value);
  Object& num(std::string_view key, std::int64_t value);
  Object& boolean(std::string_view key, bool value);
  Object& null(std::string_view key);
  Object& strings(std::string_view key, const std::vector<std::string>& values);
  Object& raw(std::string_view key, std::string_view json);  // value already JSON
  std::string done() const;
  // The text, moved out (the object is empty afterwards): no copy of a large document.
  std::string take();
 private:
  void key(std::string_view k);
  std::string out_;
};

// Builds one array incrementally: [v,...] (e.g. of objects, each Object::take()n).
class Array {
 public:
  Array& str(std::string_view value);
  Array& num(std::int64_t value);
  Array& raw(std::string_view json);  // value already JSON
  std::string take();                 // "[...]"; the array is empty afterwards
  bool empty() const noexcept { return out_.empty(); }
 private:
  void sep();
  std::string out_;
};

}  // namespace mtasts::json
