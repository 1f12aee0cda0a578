// Test support: the real mta-sts-cached binary against a loopback World, with the settings
// every fetcher test starts from (the World's resolver and test CA, short DNS and fetch
// timeouts, 20 ms polls, no jitter, debug log on stderr).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {

std::filesystem::path fetcher_binary();

// A configuration file's text: `redis_lines` as the [redis] section, then [cached] with the
// test defaults and `fetcher-id = id`, each default replaced by a line of `extra` ("key =
// value", one per line) with the same key.
std::string fetcher_config(const World& world, const std::vector<std::string>& redis_lines, const std::string& id,
                           const std::string& extra = "");

// Writes `config` to DIR/<id>.conf and starts the fetcher on it, logging to DIR/<id>.log
// (`env`: extra environment, e.g. libfaketime); throws std::runtime_error (with the log)
// unless it logs "fetcher running" within 10 s.
std::unique_ptr<Process> start_fetcher(const std::filesystem::path& dir, const std::string& id,
                                       const std::string& config, std::vector<std::string> env = {});

// DIR/<id>.log, or "" while it does not exist.
std::string fetcher_log(const std::filesystem::path& dir, const std::string& id);

}  // namespace mtasts::test
