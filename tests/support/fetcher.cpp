#include "tests/support/fetcher.hpp"

#include <sstream>
#include <stdexcept>

namespace mtasts::test {

std::filesystem::path fetcher_binary() { return build_dir() / "cached" / "mta-sts-cached"; }

std::string fetcher_config(const World& world, const std::vector<std::string>& redis_lines, const std::string& id,
                           const std::string& extra) {
  std::vector<std::string> lines{"log = stderr", "log-level = debug", "resolver = " + world.resolver(),
                                 "ca-file = " + world.ca_file().string(), "dns-timeout = 400ms",
                                 "global-addresses-only = no",  // the world lives on loopback
                                 "dns-retries = 1", "fetch-timeout = 5s", "connect-timeout = 2s",
                                 "poll-interval = 20ms", "shutdown-timeout = 5s", "refresh-jitter = 0",
                                 "fetcher-id = " + id};
  const auto key = [](const std::string& l) { return l.substr(0, l.find(" =")); };
  std::istringstream in(extra);
  for (std::string l; std::getline(in, l);) {
    if (l.empty()) continue;
    std::erase_if(lines, [&](const std::string& d) { return key(d) == key(l); });
    lines.push_back(l);
  }
  std::string out = "[redis]\n";
  for (const auto& l : redis_lines) out += l + "\n";
  out += "[cached]\n";
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::unique_ptr<Process> start_fetcher(const std::filesystem::path& dir, const std::string& id,
                                       const std::string& config, std::vector<std::string> env) {
  const auto conf = dir / (id + ".conf");
  write_file(conf, config);
  auto p = std::make_unique<Process>(std::vector<std::string>{fetcher_binary().string(), "-c", conf.string()},
                                     dir / (id + ".log"), std::move(env));
  if (!wait_until([&] { return fetcher_log(dir, id).find("fetcher running") != std::string::npos; },
                  std::chrono::seconds(10)))
    throw std::runtime_error("mta-sts-cached did not start:\n" + fetcher_log(dir, id));
  return p;
}

std::string fetcher_log(const std::filesystem::path& dir, const std::string& id) {
  std::error_code ec;
  return std::filesystem::exists(dir / (id + ".log"), ec) ? read_file(dir / (id + ".log")) : "";
}

}  // namespace mtasts::test
