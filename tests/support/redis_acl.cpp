#include "tests/support/redis_acl.hpp"

#include <cctype>

#include "tests/support/process.hpp"

namespace mtasts::test {

std::string acl_user_lines(const std::filesystem::path& file, const std::function<std::string(const std::string&)>& password,
                           bool default_user_off) {
  const std::string mark = ">CHANGE-ME-";
  std::string out;
  for (std::string l : lines_of(read_file(file))) {
    if (!l.starts_with("user ")) continue;
    if (!default_user_off && l.starts_with("user default ")) continue;
    if (const auto at = l.find(mark); at != std::string::npos) {
      auto end = at + mark.size();
      while (end < l.size() && (std::isalnum(static_cast<unsigned char>(l[end])) != 0 || l[end] == '-')) ++end;
      l.replace(at, end - at, ">" + password(l.substr(at + mark.size(), end - at - mark.size())));
    }
    out += l + "\n";
  }
  return out;
}

}  // namespace mtasts::test
