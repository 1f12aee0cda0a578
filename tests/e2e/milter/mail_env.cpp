// End-to-end environment for mta-sts-milter; see mail_env.hpp.
#include "tests/e2e/milter/mail_env.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <stdexcept>

#include "common/sts/domain.hpp"

namespace mtasts::test::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool accepts(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> with_prefix(std::vector<std::string> prefix, const std::vector<std::string>& argv) {
  prefix.insert(prefix.end(), argv.begin(), argv.end());
  return prefix;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

std::string make_message(const std::string& token, const std::vector<std::string>& to,
                         const std::vector<std::string>& extra_headers) {
  std::string m = "From: Sender <sender@sender.e2e.test>\r\n";
  m += "To: " + join(to, ", ") + "\r\n";
  m += "Subject: e2e " + token + "\r\n";
  m += "Message-ID: <" + token + "@sender.e2e.test>\r\n";
  m += "Date: Fri, 24 Apr 2026 12:00:00 +0000\r\n";
  for (const auto& h : extra_headers) m += h + "\r\n";
  m += "\r\nBody of " + token + ".\r\nEND-" + token + "\r\n";
  return m;
}

std::vector<std::string> header_values(const std::string& message, const std::string& name) {
  // Header section: up to the first empty line; folded lines start with white space.
  std::vector<std::string> fields;
  std::size_t pos = 0;
  while (pos < message.size()) {
    std::size_t eol = message.find('\n', pos);
    if (eol == std::string::npos) eol = message.size();
    std::string line = message.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    pos = eol + 1;
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !fields.empty()) {
      fields.back() += line;
    } else {
      fields.push_back(line);
    }
  }
  std::vector<std::string> out;
  const std::string want = lower(name);
  for (const auto& f : fields) {
    const auto colon = f.find(':');
    if (colon == std::string::npos || lower(f.substr(0, colon)) != want) continue;
    std::string v = f.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    std::string unfolded;
    for (std::size_t i = 0; i < v.size(); ++i) {
      // Folding white space: a tab that started a continuation line joins without it.
      if (v[i] == '\t') continue;
      unfolded += v[i];
    }
    out.push_back(unfolded);
  }
  return out;
}

// ---- sink ---------------------------------------------------------------------------------

Sink::Sink(const fs::path& dir) : dir_(dir / "sink"), port_(free_tcp_port()) {
  fs::create_directories(dir_);
  fs::permissions(dir_, fs::perms::all);  // smtp-sink writes as nobody
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{"smtp-sink", "-u", "nobody", "-d", dir_.string() + "/%Y%m%d%H%M%S.",
                               "127.0.0.1:" + std::to_string(port_), "100"},
      dir / "sink.log");
  if (!wait_until([&] { return accepts(port_); }, 10s)) throw std::runtime_error("smtp-sink did not start");
}

std::optional<std::string> Sink::wait_message(const std::string& token, std::chrono::milliseconds timeout) const {
  std::optional<std::string> found;
  wait_until(
      [&] {
        for (const auto& e : fs::directory_iterator(dir_)) {
          const std::string text = read_file(e.path());
          if (text.find("END-" + token) != std::string::npos) {
            found = text;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

std::size_t Sink::count() const {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++n;
  return n;
}

RunResult swaks(unsigned port, const std::string& from, const std::vector<std::string>& to,
                const std::string& message) {
  return run({"swaks", "--server", "127.0.0.1:" + std::to_string(port), "--helo", "client.e2e.test", "--from",
              from, "--to", join(to, ","), "--data", "-", "--timeout", "60"},
             90s, message);
}

// ---- Postfix ------------------------------------------------------------------------------

Postfix::Postfix(const fs::path& dir, PostfixOptions o) : dir_(dir / "postfix"), o_(std::move(o)) {
  if (o_.smtp_port == 0) o_.smtp_port = free_tcp_port();
  fs::create_directories(config_dir());
  fs::create_directories(dir_ / "queue");
  fs::create_directories(dir_ / "data");
  const passwd* pw = ::getpwnam("postfix");
  if (!pw) throw std::runtime_error("no postfix user (install postfix)");
  if (::chown((dir_ / "data").c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown data");

  std::string main_cf =
      "compatibility_level = 3.6\n"
      "queue_directory = " + (dir_ / "queue").string() + "\n"
      "data_directory = " + (dir_ / "data").string() + "\n"
      "mail_owner = postfix\nsetgid_group = postdrop\n"
      "myhostname = mta.e2e.test\nmydomain = e2e.test\nmyorigin = $myhostname\nmydestination =\n"
      "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n"
      "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
      "alias_maps =\nalias_database =\nlocal_recipient_maps =\n"
      "biff = no\nappend_dot_mydomain = no\n"
      "maillog_file = " + (dir_ / "maillog").string() + "\n"
      "maillog_file_prefixes = " + dir_.string() + "\n"
      // Retries come quickly in tests (a message deferred while Redis is down, say).
      "queue_run_delay = 2s\nminimal_backoff_time = 2s\nmaximal_backoff_time = 4s\n";
  if (o_.relay_port != 0)
    main_cf += "relayhost = [127.0.0.1]:" + std::to_string(o_.relay_port) + "\nsmtp_dns_support_level = disabled\n";
  if (!o_.milter.empty()) {
    main_cf += "smtpd_milters = " + o_.milter + "\nnon_smtpd_milters = " + o_.milter + "\n"
               // A broken milter must show as failed mail, never as silently untagged mail.
               "milter_default_action = tempfail\nmilter_protocol = 6\n";
  }
  // An extra line for a parameter set above replaces it (Postfix warns at every process
  // start about a parameter given twice, and the warnings fill the log).
  for (const auto& l : o_.main_cf) {
    const std::string key = l.substr(0, l.find_first_of(" =")) + " = ";
    const auto at = ("\n" + main_cf).find("\n" + key);
    if (l.find('=') != std::string::npos && at != std::string::npos)
      main_cf.replace(at, main_cf.find('\n', at) - at, l);
    else
      main_cf += l + "\n";
  }
  write_file(config_dir() / "main.cf", main_cf);
  write_file(config_dir() / "master.cf",
             "127.0.0.1:" + std::to_string(o_.smtp_port) + " inet n - n - - smtpd\n"
             "pickup    unix  n - n 60 1 pickup\n"
             "cleanup   unix  n - n - 0 cleanup\n"
             "qmgr      unix  n - n 300 1 qmgr\n"
             "rewrite   unix  - - n - - trivial-rewrite\n"
             "bounce    unix  - - n - 0 bounce\n"
             "defer     unix  - - n - 0 bounce\n"
             "trace     unix  - - n - 0 bounce\n"
             "verify    unix  - - n - 1 verify\n"
             "flush     unix  n - n 1000? 0 flush\n"
             "proxymap  unix  - - n - - proxymap\n"
             "proxywrite unix - - n - 1 proxymap\n"
             "smtp      unix  - - n - - smtp\n"
             "relay     unix  - - n - - smtp\n"
             "showq     unix  n - n - - showq\n"
             "error     unix  - - n - - error\n"
             "retry     unix  - - n - - error\n"
             "discard   unix  - - n - - discard\n"
             "local     unix  - n n - - local\n"
             "anvil     unix  - - n - 1 anvil\n"
             "scache    unix  - - n - 1 scache\n"
             "tlsmgr    unix  - - n 1000? 1 tlsmgr\n"
             "postlog   unix-dgram n - n - 1 postlogd\n" + [&] {
               std::string extra;
               for (const auto& l : o_.master_cf) extra += l + "\n";
               return extra;
             }());
  const std::string conf = config_dir().string();
  RunResult r = run(with_prefix(o_.command_prefix, {"postfix", "-c", conf, "check"}), 60s);
  if (r.exit_code != 0) throw std::runtime_error("postfix check failed: " + r.err + maillog());
  r = run(with_prefix(o_.command_prefix, {"postfix", "-c", conf, "start"}), 60s);
  if (r.exit_code != 0) throw std::runtime_error("postfix start failed: " + r.err + maillog());
  running_ = true;
  if (!wait_until([&] { return accepts(o_.smtp_port); }, 15s))
    throw std::runtime_error("postfix smtpd does not answer; maillog:\n" + maillog());
}

Postfix::~Postfix() { stop(); }

void Postfix::stop() {
  if (!running_) return;
  running_ = false;
  const fs::path pid_file = dir_ / "queue" / "pid" / "master.pid";
  const std::string pid_text = read_file(pid_file);
  run(with_prefix(o_.command_prefix, {"postfix", "-c", config_dir().string(), "stop"}), 30s);
  if (pid_text.empty()) return;
  const pid_t pid = static_cast<pid_t>(std::atol(pid_text.c_str()));
  if (pid <= 1) return;
  if (!wait_until([&] { return ::kill(pid, 0) != 0; }, 10s)) ::kill(pid, SIGKILL);
}

std::string Postfix::queue_id(const std::string& token) const {
  const std::string log = maillog();
  const auto at = log.find("message-id=<" + token + "@");
  if (at == std::string::npos) return "";
  const auto line_start = log.rfind('\n', at) + 1;
  const std::string line = log.substr(line_start, at - line_start);  // "... cleanup[N]: QID: "
  const auto end = line.rfind(": ");
  const auto start = line.rfind(": ", end - 1);
  if (end == std::string::npos || start == std::string::npos) return "";
  return line.substr(start + 2, end - start - 2);
}

RunResult Postfix::sendmail(const std::string& from, const std::vector<std::string>& to, const std::string& message) {
  std::vector<std::string> argv{"/usr/sbin/sendmail", "-C", config_dir().string(), "-i", "-f", from, "--"};
  argv.insert(argv.end(), to.begin(), to.end());
  return run(with_prefix(o_.command_prefix, argv), 60s, message);
}

RunResult Postfix::postqueue(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"postqueue", "-c", config_dir().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(with_prefix(o_.command_prefix, argv), 60s);
}

// ---- Sendmail -----------------------------------------------------------------------------

fs::path Sendmail::root() {
  const char* d = std::getenv("SENDMAIL_DIR");
  return d && *d ? fs::path(d) : fs::path("/opt/mta-sts-test/sendmail");
}

bool Sendmail::available() {
  return fs::exists(root() / "usr/libexec/sendmail/sendmail") && fs::exists(root() / "usr/share/sendmail/cf/m4/cf.m4");
}

Sendmail::Sendmail(const fs::path& dir, SendmailOptions o) : dir_(dir / "sendmail"), o_(std::move(o)) {
  if (o_.smtp_port == 0) o_.smtp_port = free_tcp_port();
  fs::create_directories(dir_ / "mqueue");
  fs::create_directories(dir_ / "clientmqueue");
  fs::permissions(dir_ / "mqueue", fs::perms::owner_all);
  write_file(dir_ / "statistics", "");
  write_file(dir_ / "aliases", "");
  // Without a relay host, MX records come from the DNS (the system resolver).
  write_file(dir_ / "service.switch", o_.relay_port != 0 ? "hosts files\naliases files\n" : "hosts dns files\naliases files\n");
  const std::string d = dir_.string();
  const std::string mc =
      "divert(-1)\ndivert(0)dnl\n"
      "OSTYPE(`linux')dnl\n"
      "define(`confDOMAIN_NAME', `mta.e2e.test')dnl\n"
      "define(`QUEUE_DIR', `" + d + "/mqueue')dnl\n"
      "define(`MSP_QUEUE_DIR', `" + d + "/clientmqueue')dnl\n"
      "define(`STATUS_FILE', `" + d + "/statistics')dnl\n"
      "define(`ALIAS_FILE', `" + d + "/aliases')dnl\n"
      "define(`confPID_FILE', `" + d + "/sendmail.pid')dnl\n"
      "define(`confSERVICE_SWITCH_FILE', `" + d + "/service.switch')dnl\n"
      "define(`confDONT_PROBE_INTERFACES', `True')dnl\n"
      // The test directory lives under /tmp (sticky, world-writable).
      "define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit,GroupWritableDirPathSafe')dnl\n"
      + (o_.relay_port != 0
             ? "define(`SMART_HOST', `relay:[127.0.0.1]')dnl\n"
               "define(`RELAY_MAILER_ARGS', `TCP $h " + std::to_string(o_.relay_port) + "')dnl\n"
             : std::string()) +
      "define(`confDELIVERY_MODE', `background')dnl\n"
      "define(`confTO_IDENT', `0s')dnl\n"
      "define(`confMILTER_LOG_LEVEL', `10')dnl\n"
      "FEATURE(`nocanonify')dnl\n"
      "FEATURE(`promiscuous_relay')dnl\n"  // loopback only: the test relays everything to the sink
      "FEATURE(`accept_unresolvable_domains')dnl\n"
      "FEATURE(`no_default_msa')dnl\n"
      "DAEMON_OPTIONS(`Port=" + std::to_string(o_.smtp_port) + ", Addr=127.0.0.1, Name=MTA')dnl\n"
      + (o_.milter.empty() ? std::string()
                           : "INPUT_MAIL_FILTER(`mtasts', `S=" + o_.milter + ", F=T, T=S:10s;R:20s;E:30s')dnl\n") +
      [&] {
        std::string extra;
        for (const auto& l : o_.mc_lines) extra += l + "\n";
        return extra;
      }() +
      "MAILER(`smtp')dnl\n" + [&] {
        std::string extra;
        for (const auto& l : o_.mc_tail_lines) extra += l + "\n";
        return extra;
      }();
  write_file(dir_ / "test.mc", mc);
  const fs::path cfdir = root() / "usr/share/sendmail/cf";
  const RunResult m4 = run({"m4", "-D_CF_DIR_=" + cfdir.string() + "/", (cfdir / "m4/cf.m4").string(),
                            (dir_ / "test.mc").string()},
                           30s);
  if (m4.exit_code != 0) throw std::runtime_error("m4 failed: " + m4.err);
  write_file(dir_ / "test.cf", m4.out);
  const std::string bin = (root() / "usr/libexec/sendmail/sendmail").string();
  // Without a dotted host name sendmail waits 60 s for its own name; a private UTS namespace
  // gives it one without touching the machine's.
  proc_ = std::make_unique<Process>(
      with_prefix(o_.command_prefix,
                  {"unshare", "--uts", "sh", "-c",
                   "hostname mta.e2e.test && exec " + bin + " -C " + cf_file().string() + " -bD"}),
      dir_ / "sendmail.log");
  if (!wait_until([&] { return accepts(o_.smtp_port); }, 20s))
    throw std::runtime_error("sendmail does not answer; log:\n" + log());
}

Sendmail::~Sendmail() {
  if (proc_) proc_->stop(10s);
}

RunResult Sendmail::command(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::string cmd = (root() / "usr/libexec/sendmail/sendmail").string() + " -C " + cf_file().string();
  for (const auto& a : args) cmd += " '" + a + "'";  // the tests' own arguments: no quotes inside
  return run(with_prefix(o_.command_prefix, {"unshare", "--uts", "sh", "-c", "hostname mta.e2e.test && exec " + cmd}),
             timeout);
}

// ---- the stack ----------------------------------------------------------------------------

namespace {
std::string extra_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}
}  // namespace

MtaStsStack::MtaStsStack(StackOptions o) : world_(WorldOptions{.redis = true}) {
  {
    auto batch = world_.batch();
    world_.add_domain(kEnforce, {.txt = {"v=STSv1; id=e2eenf1;"},
                                 .policy = World::policy("enforce", {"mail.enforce.e2e.test", "*.mx.enforce.e2e.test"},
                                                         86400)});
    world_.add_domain(kTesting, {.txt = {{"v=STSv1; ", "id=e2etst1;"}},
                                 .policy = World::policy("testing", {"mx.testing.e2e.test"}, 86400)});
    world_.add_domain(kNone, {.txt = {"v=STSv1; id=e2enone1;"}, .policy = World::policy("none", {}, 86400)});
    world_.add_domain(kNoPolicy, {.policy_host = false});
    world_.add_domain(kLate, {.txt = {"v=STSv1; id=e2elate1;"},
                              .policy = World::policy("enforce", {"mx.late.e2e.test"}, 86400)});
  }
  world_.start();

  write_file(dir_ / "warm.list", kEnforce + "\n" + kTesting + "\n" + kNone + "\n" + kNoPolicy + "\n");
  write_file(dir_ / "cached.conf",
             "[redis]\naddress = " + redis().address() + "\n[cached]\nlog = stderr\nlog-level = debug\n"
             "resolver = " + world_.resolver() + "\nca-file = " + world_.ca_file().string() + "\n"
             "global-addresses-only = no\n"  // the world lives on loopback
             "warm-list = " + (dir_ / "warm.list").string() + "\n"
             "dns-timeout = 500ms\ndns-retries = 1\nfetch-timeout = 10s\nconnect-timeout = 5s\n"
             "poll-interval = 20ms\nrefresh-jitter = 0\nfetcher-id = e2e\n" + extra_lines(o.cached_lines));
  fetcher_ = std::make_unique<Process>(
      std::vector<std::string>{MTASTS_CACHED_BIN, "--config=" + (dir_ / "cached.conf").string()}, dir_ / "cached.log");
  if (!wait_cached({kEnforce, kTesting, kNone, kNoPolicy}, 60s))
    throw std::runtime_error("the fetcher did not fill the cache; its log:\n" + fetcher_log());

  fs::create_directories(dir_ / "milter");
  MilterOptions mo;
  mo.redis_address = redis().address();
  mo.valgrind = o.valgrind;
  // The MTA's processes run as their own users (Postfix: postfix).
  mo.milter_lines = {"socket-mode = 0666"};
  for (const auto& l : o.milter_lines) mo.milter_lines.push_back(l);
  milter_ = std::make_unique<MilterDaemon>(dir_ / "milter", mo);
}

MtaStsStack::~MtaStsStack() {
  milter_.reset();
  if (fetcher_) fetcher_->stop(20s);
}

std::optional<CacheEntry> MtaStsStack::cached(const std::string& domain) {
  try {
    CacheFiller f(redis().address());
    return f.store().get(*Domain::parse(domain).domain);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool MtaStsStack::wait_cached(const std::vector<std::string>& domains, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        const SysTime now = SystemClock().now();
        for (const auto& d : domains) {
          auto e = cached(d);
          if (!e || verdict(*e, now) == Verdict::unknown) return false;
        }
        return true;
      },
      timeout);
}

std::string MtaStsStack::logs() const {
  return "--- milter log:\n" + (milter_ ? milter_->log() : std::string()) + "--- fetcher log (tail):\n" +
         [&] {
           const std::string l = fetcher_log();
           return l.size() > 6000 ? l.substr(l.size() - 6000) : l;
         }();
}

std::string Postfix::wait_log_line(const std::string& key, const std::string& status,
                                   std::chrono::milliseconds timeout) const {
  std::string found;
  wait_until(
      [&] {
        const std::string log = maillog();
        for (std::size_t pos = 0; (pos = log.find(key, pos)) != std::string::npos; ++pos) {
          const auto start = log.rfind('\n', pos) + 1;
          const std::string line = log.substr(start, log.find('\n', pos) - start);
          if (line.find("status=" + status) != std::string::npos) {
            found = line;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

}  // namespace mtasts::test::e2e
