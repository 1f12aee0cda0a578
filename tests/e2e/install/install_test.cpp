// End to end: the .deb that CPack builds from this tree installs on this machine and gives an
// operator working manuals, binaries, configuration and units; then, as a new postmaster
// would, the machine's own Postfix (chrooted, as Debian ships it) is configured with nothing
// but the shipped snippet (milter and TLS policy map), Redis gets the shipped ACL users, the
// daemons are started the way the units start them with the shipped configuration plus the
// Redis address and each program's Redis user, and a message must come out tagged; then it
// is removed and purged.
// Needs root (dpkg). Skipped when an mta-sts package is already installed, so that the test
// never replaces or removes an operator's own installation, and when the machine's Postfix is
// configured or running (the test would otherwise take it over).
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// The value of `Key=` in a systemd unit ("" when absent).
std::string unit_value(const std::string& unit_text, const std::string& key) {
  for (const std::string& line : lines_of(unit_text))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t j = s.find(' ', i);
    const std::string w = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (!w.empty()) out.push_back(w);
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

// Sets `key = value` in `section` of an INI text whose options are all shown commented out
// ("#key = default"), as the shipped configuration is: the commented line is replaced.
std::string set_option(const std::string& ini, const std::string& section, const std::string& key,
                       const std::string& value) {
  std::string out;
  bool in_section = false, done = false;
  for (const std::string& line : lines_of(ini)) {
    if (!line.empty() && line[0] == '[') in_section = line == "[" + section + "]";
    if (in_section && !done && line.rfind("#" + key + " =", 0) == 0) {
      out += key + " = " + value + "\n";
      done = true;
      continue;
    }
    out += line + "\n";
  }
  if (!done) throw std::runtime_error("no commented " + section + "." + key + " in the shipped configuration");
  return out;
}

bool accepts_on(unsigned port) {
  return run({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port)}, 5s).exit_code == 0;
}

bool package_installed() {
  RunResult r = run({"dpkg-query", "-W", "-f=${Status}", "mta-sts"}, 30s);
  return r.exit_code == 0 && r.out.find("install ok installed") != std::string::npos;
}

class InstallDeb : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "installing a .deb needs root";
    if (package_installed()) GTEST_SKIP() << "an mta-sts package is already installed; not touching it";
  }
  void TearDown() override {
    // Whatever happened above, leave the machine as it was.
    undo_first_install();
    if (installed_) {
      RunResult r = run({"dpkg", "--purge", "mta-sts"}, 120s);
      EXPECT_EQ(r.exit_code, 0) << describe(r);
    }
  }
  bool installed_ = false;

  // Everything the first-install scenario changed on the machine, undone in TearDown.
  bool wrote_main_cf_ = false;  // /etc/postfix/main.cf is ours (there was none before)
  bool postfix_started_ = false;
  std::vector<std::unique_ptr<Process>> daemons_;
  std::vector<fs::path> files_to_remove_;

  void undo_first_install() {
    if (postfix_started_) {
      run({"/etc/init.d/postfix", "stop"}, 60s);
      run({"postsuper", "-d", "ALL"}, 30s);
      postfix_started_ = false;
    }
    daemons_.clear();  // SIGTERM, then SIGKILL
    if (wrote_main_cf_) fs::remove("/etc/postfix/main.cf");
    wrote_main_cf_ = false;
    for (const auto& f : files_to_remove_) fs::remove(f);
    files_to_remove_.clear();
  }

  // A new postmaster's first install: the machine's own Postfix as Debian ships it (smtpd and
  // cleanup chrooted in /var/spool/postfix) with the shipped snippet; the shipped
  // configuration with only the Redis address (and, since there is no internet here, the test
  // world's resolver and CA for the fetcher); the daemons started as their units say.
  void first_install();
};

void InstallDeb::first_install() {
  if (fs::exists("/etc/postfix/main.cf") || run({"pgrep", "-x", "master"}, 10s).exit_code == 0 || accepts_on(25)) {
    ADD_FAILURE() << "the machine's Postfix is configured or running, or port 25 is taken: "
                     "the first-install scenario needs a stock, unconfigured Postfix";
    return;
  }
  TempDir tmp("mtasts-first-install");
  fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);

  // The test world: an enforce domain whose policy the fetcher fetches over HTTPS.
  const std::string domain = "enforce.install.test";
  World world;
  world.add_domain(domain, {.txt = {"v=STSv1; id=inst1;"},
                            .policy = World::policy("enforce", {"mx1.install.test", "*.mx.install.test"}, 86400)});
  world.start();
  // The daemons run as mta-sts: the CA file must be readable by them.
  const fs::path ca = "/etc/mta-sts/install-test-ca.pem";
  fs::copy_file(world.ca_file(), ca, fs::copy_options::overwrite_existing);
  files_to_remove_.push_back(ca);
  fs::permissions(ca, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);

  // Redis on loopback TCP, where a daemon running as mta-sts reaches it.
  const unsigned redis_port = free_tcp_port();
  // Loaded with the shipped ACL users (test passwords); the default user stays on only so
  // that the harness's redis-cli can see the server is up.
  const char* programs[] = {"milter", "cached", "ctl", "tlsmap", "reportd"};
  const std::string acl = acl_user_lines("/usr/share/doc/mta-sts/examples/redis-acl.conf",
                                         [](const std::string& who) { return "install-" + who; }, false);
  RedisServer redis("port " + std::to_string(redis_port) + "\nbind 127.0.0.1\n" + acl);
  const std::string redis_address = "127.0.0.1:" + std::to_string(redis_port);

  // ---- the shipped configuration, plus the Redis address ----
  std::string conf = read_file("/etc/mta-sts/mta-sts.conf");
  conf = set_option(conf, "redis", "address", redis_address);
  // Each program its own ACL user, as mta-sts.conf(5) shows for a host that runs them all.
  const group* mta_sts = getgrnam("mta-sts");
  ASSERT_NE(mta_sts, nullptr);
  for (const char* who : programs) {
    const fs::path pw = fs::path("/etc/mta-sts") / (std::string("redis-") + who + ".password");
    write_file(pw, std::string("install-") + who + "\n");
    files_to_remove_.push_back(pw);
    ASSERT_EQ(::chown(pw.c_str(), 0, mta_sts->gr_gid), 0);
    fs::permissions(pw, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    conf = set_option(conf, who, "redis-acl-user", std::string("mta-sts-") + who);
    conf = set_option(conf, who, "redis-acl-password-file", pw.string());
  }
  conf = set_option(conf, "cached", "resolver", world.resolver());
  conf = set_option(conf, "cached", "ca-file", ca.string());
  conf = set_option(conf, "cached", "global-addresses-only", "no");  // the world lives on loopback
  write_file("/etc/mta-sts/mta-sts.conf", conf);

  // ---- the machine's Postfix: Debian's main.cf, the shipped snippet, a relay to a sink ----
  e2e::Sink sink(tmp.path());
  const std::string snippet = read_file("/usr/share/doc/mta-sts/examples/postfix-main.cf");
  std::string main_cf = read_file("/usr/share/postfix/main.cf.debian");
  main_cf +=
      "myhostname = mx.install.test\n"
      "mydestination = localhost\n"
      "inet_interfaces = loopback-only\n"
      "inet_protocols = ipv4\n"
      "relayhost = [127.0.0.1]:" + std::to_string(sink.port()) + "\n"
      "maillog_file = /var/log/mta-sts-install-test.log\n"
      // Nothing leaves loopback: the snippet's smtp_dns_support_level = dnssec makes smtp
      // probe the machine's resolver for DNSSEC at start, which a test must not do.
      "dnssec_probe =\n";
  main_cf += snippet;
  wrote_main_cf_ = true;
  write_file("/etc/postfix/main.cf", main_cf);
  files_to_remove_.push_back("/var/log/mta-sts-install-test.log");
  const std::string master_cf = read_file("/etc/postfix/master.cf");
  ASSERT_NE(master_cf.find("\nsmtp      inet  n       -       y       -       -       smtpd"), std::string::npos)
      << "master.cf is not Debian's (smtpd chrooted)";
  ASSERT_NE(master_cf.find("\ncleanup   unix  n       -       y       -       0       cleanup"), std::string::npos);

  // ---- the daemons, started as their units start them ----
  // Every program's own user may do all that the program needs (the shipped ACLs).
  for (const auto& [bin, user] : std::vector<std::pair<std::string, std::string>>{
           {"/usr/sbin/mta-sts-milter", "mta-sts"}, {"/usr/sbin/mta-sts-cached", "mta-sts"},
           {"/usr/sbin/mta-sts-tlsmap", "mta-sts"}, {"/usr/sbin/mta-sts-reportd", "mta-sts"},
           {"/usr/bin/mta-sts-ctl", "root"}}) {
    RunResult r = run({"runuser", "-u", user, "--", bin, "--check-redis"}, 30s);
    EXPECT_EQ(r.exit_code, 0) << bin << " --check-redis: " << describe(r);
  }

  for (const char* unit : {"mta-sts-cached.service", "mta-sts-milter.service", "mta-sts-tlsmap.service",
                           "mta-sts-reportd.service"}) {
    const std::string text = read_file(fs::path("/usr/lib/systemd/system") / unit);
    const std::string user = unit_value(text, "User");
    ASSERT_EQ(user, "mta-sts") << unit;
    std::vector<std::string> pre = {"runuser", "-u", user, "--"};
    for (const std::string& w : split_words(unit_value(text, "ExecStartPre"))) pre.push_back(w);
    RunResult r = run(pre, 30s);
    ASSERT_EQ(r.exit_code, 0) << unit << " ExecStartPre: " << describe(r);
    std::vector<std::string> argv = {"runuser", "-u", user, "--"};
    for (const std::string& w : split_words(unit_value(text, "ExecStart"))) argv.push_back(w);
    daemons_.push_back(std::make_unique<Process>(argv, tmp / (std::string(unit) + ".log")));
  }
  ASSERT_TRUE(wait_until([] { return accepts_on(8462); }, 15s))
      << "the milter does not listen on its default socket:\n" << read_file(tmp / "mta-sts-milter.service.log");
  ASSERT_TRUE(wait_until([] { return accepts_on(8461); }, 15s))
      << "mta-sts-tlsmap does not listen on its default address:\n" << read_file(tmp / "mta-sts-tlsmap.service.log");

  // The operator warms the domain with mta-sts-ctl (as root: it reads the same file), and the
  // fetcher fills the cache.
  RunResult r = run({"/usr/bin/mta-sts-ctl", "cache", "warm", "-"}, 30s, domain + "\n");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_TRUE(wait_until([&] { return run({"/usr/bin/mta-sts-ctl", "cache", "show", domain}, 10s).out.find("enforce") != std::string::npos; }, 30s))
      << "the fetcher did not cache " << domain << ":\n" << read_file(tmp / "mta-sts-cached.service.log");

  // ---- Postfix started the Debian way (its init script prepares the chroot) ----
  r = run({"/etc/init.d/postfix", "start"}, 60s);
  postfix_started_ = true;
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_TRUE(wait_until([] { return accepts_on(25); }, 20s)) << read_file("/var/log/mta-sts-install-test.log");
  r = run({"postconf", "-h", "smtpd_milters"}, 10s);
  EXPECT_EQ(r.out, "inet:127.0.0.1:8462\n");

  // Over SMTP (smtpd, chrooted) and with the sendmail command (cleanup, chrooted).
  const std::string want = domain + "; mode=enforce; id=inst1; mx=mx1.install.test,*.mx.install.test";
  const std::string smtp_token = "install-smtp";
  r = e2e::swaks(25, "sender@example.net", {"user@" + domain},
                 e2e::make_message(smtp_token, {"user@" + domain}, {"X-MTA-STS: forged.example; mode=enforce"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r) << read_file("/var/log/mta-sts-install-test.log");
  const std::string local_token = "install-local";
  r = run({"/usr/sbin/sendmail", "-f", "root@localhost", "-t"}, 60s,
          e2e::make_message(local_token, {"user@" + domain}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const std::string& token : {smtp_token, local_token}) {
    const auto msg = sink.wait_message(token, 60s);
    ASSERT_TRUE(msg) << token << " never reached the sink:\n" << read_file("/var/log/mta-sts-install-test.log")
                     << read_file(tmp / "mta-sts-milter.service.log");
    EXPECT_EQ(e2e::header_values(*msg, "X-MTA-STS"), std::vector<std::string>{want}) << token << ":\n" << *msg;
  }
  const std::string maillog = read_file("/var/log/mta-sts-install-test.log");
  EXPECT_EQ(maillog.find("4.7.1"), std::string::npos) << maillog;
  EXPECT_EQ(maillog.find("milter"), std::string::npos) << "Postfix complained about the milter:\n" << maillog;
  for (auto& d : daemons_) EXPECT_TRUE(d->running());
  undo_first_install();
}

TEST_F(InstallDeb, PackageInstallsWorksAndRemoves) {
  // ---- build the package from this build tree ----
  TempDir out("mtasts-deb");
  const fs::path config = build_dir() / "CPackConfig.cmake";
  ASSERT_TRUE(fs::exists(config)) << config;
  RunResult r = run({"cpack", "-G", "DEB", "--config", config.string(), "-B", out.path().string()}, 280s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  fs::path deb;
  for (const auto& e : fs::directory_iterator(out.path()))
    if (e.path().extension() == ".deb") deb = e.path();
  ASSERT_FALSE(deb.empty()) << "cpack made no .deb:\n" << r.out;

  // The control data an operator and apt rely on.
  r = run({"dpkg-deb", "-f", deb.string(), "Package", "Depends"}, 30s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("Package: mta-sts"), std::string::npos) << r.out;
  for (const char* dep : {"libmilter1.0.1", "libhiredis0.14", "libldns3", "libcurl4",
                          "libboost-program-options1.74.0", "libidn2-0", "adduser"}) {
    EXPECT_NE(r.out.find(dep), std::string::npos) << dep << " missing from Depends: " << r.out;
  }
  r = run({"dpkg-deb", "-I", deb.string(), "conffiles"}, 30s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("/etc/mta-sts/mta-sts.conf"), std::string::npos) << r.out;

  // ---- install ----
  r = run({"dpkg", "-i", deb.string()}, 120s);
  installed_ = true;
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_TRUE(package_installed());

  // Manuals: found by man, and readable.
  for (const char* page : {"mta-sts-milter", "mta-sts-cached", "mta-sts-ctl", "mta-sts-tlsmap", "mta-sts-reportd",
                           "mta-sts.conf"}) {
    r = run({"man", "-w", page}, 30s);
    EXPECT_EQ(r.exit_code, 0) << page << ": " << describe(r);
    EXPECT_EQ(r.out.rfind("/usr/share/man/", 0), 0u) << page << " found at " << r.out;
  }
  r = run({"sh", "-c", "MANPAGER=cat MANWIDTH=80 man mta-sts-milter | head -n 20"}, 60s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mta-sts-milter"), std::string::npos) << r.out;
  r = run({"sh", "-c", "MANPAGER=cat man 5 mta-sts.conf | grep -c redis-budget"}, 60s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);

  // Every binary runs from its installed place and knows its version.
  for (const auto& [bin, name] : std::vector<std::pair<std::string, std::string>>{
           {"/usr/sbin/mta-sts-milter", "mta-sts-milter"},
           {"/usr/sbin/mta-sts-cached", "mta-sts-cached"},
           {"/usr/sbin/mta-sts-tlsmap", "mta-sts-tlsmap"},
           {"/usr/bin/mta-sts-ctl", "mta-sts-ctl"}}) {
    r = run({bin, "--version"}, 30s);
    EXPECT_EQ(r.exit_code, 0) << bin << ": " << describe(r);
    EXPECT_EQ(r.out, name + " " + MTASTS_VERSION + "\n") << bin;
  }

  // The installed configuration is the commented example, valid for every program, and only
  // readable by root and group mta-sts (it may hold a password).
  struct stat st{};
  ASSERT_EQ(stat("/etc/mta-sts/mta-sts.conf", &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  const group* g = getgrnam("mta-sts");
  ASSERT_NE(g, nullptr) << "postinst did not create group mta-sts";
  EXPECT_EQ(st.st_gid, g->gr_gid);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(run({"getent", "passwd", "mta-sts"}, 30s).exit_code, 0) << "postinst did not create user mta-sts";
  for (const char* bin : {"/usr/sbin/mta-sts-milter", "/usr/sbin/mta-sts-cached", "/usr/sbin/mta-sts-tlsmap",
                          "/usr/sbin/mta-sts-reportd", "/usr/bin/mta-sts-ctl"}) {
    r = run({bin, "--check"}, 30s);
    EXPECT_EQ(r.exit_code, 0) << bin << " --check: " << describe(r);
  }

  // Units point at the installed daemons; examples are where the manuals say.
  for (const char* unit : {"mta-sts-milter.service", "mta-sts-cached.service", "mta-sts-tlsmap.service",
                           "mta-sts-reportd.service"}) {
    const fs::path p = fs::path("/usr/lib/systemd/system") / unit;
    ASSERT_TRUE(fs::exists(p)) << p;
    const std::string text = read_file(p);
    const std::string daemon = std::string(unit).substr(0, std::string(unit).find('.'));
    EXPECT_NE(text.find("ExecStart=/usr/sbin/" + daemon), std::string::npos) << text;
  }
  if (run({"sh", "-c", "command -v systemd-analyze"}, 10s).exit_code == 0) {
    r = run({"systemd-analyze", "verify", "/usr/lib/systemd/system/mta-sts-milter.service",
             "/usr/lib/systemd/system/mta-sts-cached.service", "/usr/lib/systemd/system/mta-sts-tlsmap.service",
             "/usr/lib/systemd/system/mta-sts-reportd.service"}, 60s);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
  }
  for (const char* ex : {"mta-sts.conf", "postfix-main.cf", "sendmail.mc", "sendmail-tlsmap.mc", "redis-acl.conf",
                         "warm-list.example", "mta-sts-milter.service", "mta-sts-cached.service",
                         "mta-sts-tlsmap.service", "mta-sts-reportd.service"}) {
    EXPECT_TRUE(fs::exists(fs::path("/usr/share/doc/mta-sts/examples") / ex)) << ex;
  }

  // The package's documentation and run-time directory.
  for (const char* doc : {"copyright", "changelog.gz"})
    EXPECT_TRUE(fs::exists(fs::path("/usr/share/doc/mta-sts") / doc)) << doc;
  EXPECT_TRUE(fs::exists("/usr/lib/tmpfiles.d/mta-sts.conf"));
  ASSERT_EQ(stat("/run/mta-sts", &st), 0) << "postinst did not create /run/mta-sts";
  EXPECT_EQ(st.st_gid, g->gr_gid);
  ASSERT_EQ(stat("/var/lib/mta-sts-reportd", &st), 0) << "postinst did not create /var/lib/mta-sts-reportd";
  EXPECT_EQ(st.st_uid, getpwnam("mta-sts")->pw_uid);

  first_install();

  // ---- remove: binaries and manuals go, the conffile stays until purge ----
  r = run({"dpkg", "-r", "mta-sts"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_FALSE(fs::exists("/usr/sbin/mta-sts-milter"));
  EXPECT_FALSE(fs::exists("/usr/bin/mta-sts-ctl"));
  EXPECT_FALSE(fs::exists("/usr/sbin/mta-sts-tlsmap"));
  EXPECT_NE(run({"man", "-w", "mta-sts-milter"}, 30s).exit_code, 0);
  EXPECT_TRUE(fs::exists("/etc/mta-sts/mta-sts.conf"));
  r = run({"dpkg", "--purge", "mta-sts"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  installed_ = false;
  EXPECT_FALSE(fs::exists("/etc/mta-sts/mta-sts.conf"));
}

}  // namespace
}  // namespace mtasts::test
