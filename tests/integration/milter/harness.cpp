// Test harness for mta-sts-milter; see harness.hpp.
#include "tests/integration/milter/harness.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "common/sts/domain.hpp"
#include "tests/fakes/cache_entries.hpp"

namespace mtasts::test {

namespace fs = std::filesystem;

fs::path milter_binary() {
  if (const char* b = std::getenv("MTASTS_MILTER_BIN")) return b;
  return MTASTS_MILTER_BIN;
}

fs::path miltertest_dir() { return MTASTS_MILTERTEST_DIR; }

std::string milter_config(const MilterOptions& o, const std::string& socket) {
  std::string c = "[redis]\naddress = " + o.redis_address + "\n";
  for (const auto& l : o.redis_lines) c += l + "\n";
  c += "\n[milter]\nsocket = " + socket + "\nlog = stderr\n";
  // Test defaults, each replaced by a line of milter_lines with the same key (a key may appear
  // only once). The budget is generous: valgrind and a loaded CI machine are slow.
  const std::vector<std::string> defaults{"log-level = debug",
                                          o.valgrind ? "redis-budget = 2000ms" : "redis-budget = 500ms"};
  const auto key = [](const std::string& l) { return l.substr(0, l.find(" =")); };
  for (const auto& d : defaults) {
    bool given = false;
    for (const auto& l : o.milter_lines) given = given || key(l) == key(d);
    if (!given) c += d + "\n";
  }
  for (const auto& l : o.milter_lines) c += l + "\n";
  return c;
}

MilterDaemon::MilterDaemon(const fs::path& dir, MilterOptions o) : dir_(dir) {
  socket_ = o.socket.empty() ? "unix:" + (dir_ / "milter.sock").string() : o.socket;
  write_file(config_path(), milter_config(o, socket_));
  std::vector<std::string> argv;
  if (o.valgrind) {
    argv = {"valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--error-exitcode=99", "--track-fds=no",
            "--log-file=" + valgrind_log().string()};
  }
  argv.push_back(milter_binary().string());
  argv.push_back("--config=" + config_path().string());
  for (const auto& a : o.extra_args) argv.push_back(a);
  proc_ = std::make_unique<Process>(argv, log_path());
  const bool up = wait_until([&] { return log().find("started") != std::string::npos || !proc_->running(); },
                              o.valgrind ? std::chrono::seconds(60) : std::chrono::seconds(10));
  if (!up || !proc_->running())
    throw std::runtime_error("mta-sts-milter did not start; log:\n" + log());
}

MilterDaemon::~MilterDaemon() {
  if (proc_) proc_->stop(std::chrono::seconds(20));
}

bool MilterDaemon::wait_log(const std::string& needle, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return log().find(needle) != std::string::npos; }, timeout);
}

std::string MilterDaemon::sanitizer_report() const {
  const std::string text = log();
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    if (line.find("Sanitizer") != std::string::npos || line.find("runtime error:") != std::string::npos)
      out += line + "\n";
    pos = eol + 1;
  }
  return out;
}

int MilterDaemon::stop(std::chrono::milliseconds grace) { return proc_->stop(grace); }

RunResult run_miltertest(const std::string& script, const std::string& socket,
                         const std::vector<std::string>& defines) {
  std::vector<std::string> argv{"miltertest", "-s", (miltertest_dir() / script).string(), "-D", "socket=" + socket,
                                "-D", "scripts=" + miltertest_dir().string()};
  for (const auto& d : defines) {
    argv.push_back("-D");
    argv.push_back(d);
  }
  return run(argv, std::chrono::seconds(120));
}

namespace {
RedisOptions redis_options(const std::string& address) {
  RedisOptions o;
  o.address = address;
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.command_timeout = std::chrono::milliseconds(2000);
  return o;
}
Domain domain(const std::string& s) {
  auto p = Domain::parse(s);
  if (!p.domain) throw std::invalid_argument("bad domain in test: " + s);
  return *p.domain;
}
}  // namespace

CacheFiller::CacheFiller(const std::string& redis_address, StoreOptions opts)
    : pool_(redis_options(redis_address)), store_(pool_, std::move(opts)) {}

void CacheFiller::put(const std::string& d, const CacheEntry& e, bool announce) {
  store_.put(domain(d), e, SystemClock().now(), announce);
}

bool CacheFiller::miss_signalled(const std::string& d) {
  const auto misses = store_.pending_misses(1000);
  for (const auto& m : misses)
    if (m == d) return true;
  return false;
}

void CacheFiller::fill_standard() {
  put("enforce.example", make_policy(Mode::enforce, "20260424T120000Z", {"mail.enforce.example", "*.mx.enforce.example"}));
  put("testing.example", make_policy(Mode::testing, "testid1", {"mx.testing.example"}));
  put("none.example", make_policy(Mode::none, "noneid1", {}));
  put("nopolicy.example", make_negative());
}

CacheEntry make_policy(Mode mode, const std::string& id, const std::vector<std::string>& mx, std::chrono::seconds life) {
  return policy_entry(mode, id, mx, SystemClock().now(), life);
}

CacheEntry make_negative(std::chrono::seconds life) { return negative_entry(SystemClock().now(), life); }

}  // namespace mtasts::test
