// Test support: the shipped Redis ACL file (etc/redis-acl.conf, or the installed example) as
// tests load it: its `user` lines, each ">CHANGE-ME-<role>" password replaced.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace mtasts::test {

// The `user` lines of `file`, ">CHANGE-ME-<role>" replaced by ">" + password(role) (role:
// "milter", "cached", "replication", ...). With `default_user_off` false the closing
// "user default off" line stays out, so that a harness's redis-cli without AUTH still works.
std::string acl_user_lines(const std::filesystem::path& file, const std::function<std::string(const std::string&)>& password,
                           bool default_user_off);

}  // namespace mtasts::test
