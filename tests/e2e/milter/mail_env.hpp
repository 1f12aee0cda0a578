// End-to-end environment for mta-sts-milter: the loopback DNS and HTTPS world with five kinds
// of recipient domain, a real Redis, the real fetcher (mta-sts-cached) filling it, the real
// milter, a real MTA (a private Postfix instance, or Sendmail from the unpacked Debian
// packages) and a real sink (smtp-sink, one file per delivered message). Shared by the
// Postfix and Sendmail tests and by the benchmark (bench/milter.cmake).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "tests/integration/milter/harness.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test::e2e {

// The domains of the world (see MtaStsStack): enforce, testing, none, no policy at all, and
// `late`, an enforce domain deliberately left out of the warm list (not yet known at first).
inline const std::string kEnforce = "enforce.e2e.test";
inline const std::string kTesting = "testing.e2e.test";
inline const std::string kNone = "none.e2e.test";
inline const std::string kNoPolicy = "nopolicy.e2e.test";
inline const std::string kLate = "late.e2e.test";
// The header values the milter must write for them.
inline const std::string kEnforceField =
    "enforce.e2e.test; mode=enforce; id=e2eenf1; mx=mail.enforce.e2e.test,*.mx.enforce.e2e.test";
inline const std::string kTestingField = "testing.e2e.test; mode=testing; id=e2etst1; mx=mx.testing.e2e.test";
inline const std::string kLateField = "late.e2e.test; mode=enforce; id=e2elate1; mx=mx.late.e2e.test";

// A test message: every line CRLF, a unique token in Message-ID, Subject and body, and the
// given extra header lines (e.g. forged "X-MTA-STS: ...").
std::string make_message(const std::string& token, const std::vector<std::string>& to,
                         const std::vector<std::string>& extra_headers = {});

// The values of every header field `name` (case-insensitive) of a message, unfolded, in order.
std::vector<std::string> header_values(const std::string& message, const std::string& name);

// smtp-sink on 127.0.0.1:port writing one file per message into dir.
class Sink {
 public:
  explicit Sink(const std::filesystem::path& dir);
  unsigned port() const noexcept { return port_; }
  // The file content of the delivered message containing `token`.
  std::optional<std::string> wait_message(const std::string& token, std::chrono::milliseconds timeout) const;
  std::size_t count() const;

 private:
  std::filesystem::path dir_;
  unsigned port_;
  std::unique_ptr<Process> proc_;
};

// SMTP submission with swaks. Returns its result (exit 0: message accepted).
RunResult swaks(unsigned port, const std::string& from, const std::vector<std::string>& to,
                const std::string& message);

struct PostfixOptions {
  unsigned smtp_port = 0;      // 0: a free one
  // Where everything is relayed (the sink); 0: no relay host, mail goes to each domain's MX
  // hosts found in DNS (main_cf may then set smtp_dns_support_level, e.g. to dnssec).
  unsigned relay_port = 0;
  std::string milter{};        // libmilter socket for smtpd_milters and non_smtpd_milters; "": none
  std::vector<std::string> main_cf{};  // extra main.cf lines (one for a parameter set by default replaces it)
  std::vector<std::string> master_cf{};  // extra master.cf lines (e.g. tlsproxy)
  // Put before every postfix/postqueue/sendmail command, e.g. {"ip", "netns", "exec", NAME}:
  // then Postfix's daemons run with that namespace's /etc/resolv.conf.
  std::vector<std::string> command_prefix{};
};

// A private Postfix instance (`postfix -c DIR start`), chroot off, listening on 127.0.0.1,
// relaying everything to the sink (or delivering by MX), logging to DIR/maillog.
class Postfix {
 public:
  Postfix(const std::filesystem::path& dir, PostfixOptions o);
  ~Postfix();
  Postfix(const Postfix&) = delete;
  Postfix& operator=(const Postfix&) = delete;
  unsigned smtp_port() const noexcept { return o_.smtp_port; }
  std::filesystem::path config_dir() const { return dir_ / "conf"; }
  std::string maillog() const { return read_file(dir_ / "maillog"); }
  // The first maillog line holding `key` and "status=<status>" (e.g. key " QID: to=<",
  // status "deferred"), waiting up to `timeout` for it; "" when none came.
  std::string wait_log_line(const std::string& key, const std::string& status, std::chrono::milliseconds timeout) const;
  // The queue id Postfix gave the message with this Message-ID token ("" if not found yet).
  std::string queue_id(const std::string& token) const;
  // Local submission through Postfix's sendmail command (pickup -> cleanup: non_smtpd_milters).
  RunResult sendmail(const std::string& from, const std::vector<std::string>& to, const std::string& message);
  // `postqueue -c DIR ARGS...` (e.g. {"-f"} to retry the deferred queue at once, {"-j"}).
  RunResult postqueue(const std::vector<std::string>& args);
  void stop();

 private:
  std::filesystem::path dir_;
  PostfixOptions o_;
  bool running_ = false;
};

struct SendmailOptions {
  unsigned smtp_port = 0;
  unsigned relay_port = 0;  // the sink; 0: no smart host, mail goes to the MX hosts in DNS
  std::string milter{};  // libmilter socket for INPUT_MAIL_FILTER; "": none
  std::vector<std::string> mc_lines{};  // extra .mc lines, before MAILER(`smtp')
  std::vector<std::string> mc_tail_lines{};  // extra .mc lines after it (LOCAL_* rulesets)
  std::vector<std::string> command_prefix{};  // as PostfixOptions::command_prefix
};

// Sendmail 8.17 from the unpacked Debian packages (SENDMAIL_DIR, default
// /opt/mta-sts-test/sendmail), with a .cf built by m4 (INPUT_MAIL_FILTER, SMART_HOST to the
// sink), running `-bD` on 127.0.0.1 under `unshare --uts` with a fully qualified host name.
class Sendmail {
 public:
  static std::filesystem::path root();
  static bool available();
  Sendmail(const std::filesystem::path& dir, SendmailOptions o);
  ~Sendmail();
  Sendmail(const Sendmail&) = delete;
  Sendmail& operator=(const Sendmail&) = delete;
  unsigned smtp_port() const noexcept { return o_.smtp_port; }
  std::string log() const { return read_file(dir_ / "sendmail.log"); }
  std::filesystem::path cf_file() const { return dir_ / "test.cf"; }
  std::filesystem::path queue_dir() const { return dir_ / "mqueue"; }
  // Runs the sendmail binary with this instance's .cf and the given arguments (e.g. {"-q"}
  // to run the queue once, {"-bp"} to list it), through the command prefix.
  RunResult command(const std::vector<std::string>& args, std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  std::filesystem::path dir_;
  SendmailOptions o_;
  std::unique_ptr<Process> proc_;
};

struct StackOptions {
  std::vector<std::string> milter_lines{};  // extra [milter] lines
  std::vector<std::string> cached_lines{};  // extra [cached] lines (e.g. metrics-listen)
  bool valgrind = false;
};

// World + Redis + fetcher + milter, with the five domains published and the four known ones
// (all but `late`) fetched into Redis before the constructor returns.
class MtaStsStack {
 public:
  explicit MtaStsStack(StackOptions o = {});
  ~MtaStsStack();
  World& world() { return world_; }
  RedisServer& redis() { return world_.redis(); }
  MilterDaemon& milter() { return *milter_; }
  Process& fetcher() { return *fetcher_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string fetcher_log() const { return read_file(dir_ / "cached.log"); }
  // What Redis holds for the domain now (nullopt: nothing, or Redis down).
  std::optional<CacheEntry> cached(const std::string& domain);
  bool wait_cached(const std::vector<std::string>& domains, std::chrono::milliseconds timeout);
  // Diagnostics for a failed assertion: the milter's and the fetcher's logs.
  std::string logs() const;

 private:
  TempDir dir_{"mtasts-e2e"};
  World world_;
  std::unique_ptr<Process> fetcher_;
  std::unique_ptr<MilterDaemon> milter_;
};

}  // namespace mtasts::test::e2e
