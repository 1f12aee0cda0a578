#include "tests/support/redis_server.hpp"

#include <cstdlib>
#include <stdexcept>

namespace mtasts::test {

RedisServer::RedisServer(std::string extra_conf) : extra_conf_(std::move(extra_conf)) { start(); }

RedisServer::~RedisServer() {
  if (proc_) proc_->stop();
}

void RedisServer::start() {
  std::filesystem::remove(socket_path());
  write_file(dir_ / "redis.conf",
             "port 0\nunixsocket " + socket_path() + "\nunixsocketperm 777\nsave \"\"\nappendonly no\n"
             "dir " + dir_.path().string() + "\n" + extra_conf_ + "\n");
  proc_ = std::make_unique<Process>(std::vector<std::string>{"redis-server", (dir_ / "redis.conf").string()},
                                    dir_ / "redis.log");
  if (!wait_until([&] { return std::filesystem::exists(socket_path()) && cli({"PING"}) == "PONG"; },
                  std::chrono::seconds(5)))
    throw std::runtime_error("redis-server did not start; see " + (dir_ / "redis.log").string());
}

void RedisServer::kill() {
  if (proc_) proc_->kill9();
  proc_.reset();
}

bool RedisServer::running() { return proc_ && proc_->running(); }

std::string RedisServer::cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"redis-cli", "-s", socket_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv, std::chrono::seconds(10));
  std::string out = r.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

long long RedisServer::info(const std::string& field) {
  const std::string text = "\n" + cli({"INFO"});
  const auto at = text.find("\n" + field + ":");
  return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + field.size() + 2);
}

}  // namespace mtasts::test
