// The operator's documentation and example configuration checked against the code: every
// option of every program is in its manual and in mta-sts.conf(5) with its default, the
// example mta-sts.conf lists every key with its default and loads, the manuals are clean
// under `mandoc -Tlint`, the Redis ACL example gives each program exactly the rights its
// real code needs, and the MTA snippets point at the milter's default socket.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/daemon/config.hpp"
#include "common/fleet/redis.hpp"
#include "common/daemon/redis_check.hpp"
#include "common/fleet/store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

fs::path src(const std::string& rel) { return source_dir() / rel; }

std::string page_of(Program p) {
  switch (p) {
    case Program::milter: return "man/mta-sts-milter.8";
    case Program::cached: return "man/mta-sts-cached.8";
    case Program::ctl: return "man/mta-sts-ctl.1";
    case Program::tlsmap: return "man/mta-sts-tlsmap.8";
    case Program::reportd: return "man/mta-sts-reportd.8";
  }
  return "";
}

// The manual as a reader sees it (mandoc's ASCII output, overstrike removed, one paragraph a
// line), so that a name counts only if it is really shown.
std::string rendered(const std::string& page) {
  RunResult r = run({"mandoc", "-Tascii", "-Owidth=1000", src(page).string()}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string out;
  for (char c : r.out) {
    if (c == '\b') {
      if (!out.empty()) out.pop_back();
    } else {
      out += c;
    }
  }
  return out;
}

// Every word of the text that looks like a long option, "--name".
std::set<std::string> long_options_in(const std::string& text) {
  std::set<std::string> found;
  static const std::regex re("--[a-z][a-z0-9-]*");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    found.insert(it->str());
  }
  return found;
}

std::string section_of(const std::string& full_key) { return full_key.substr(0, full_key.find('.')); }
std::string key_of(const std::string& full_key) { return full_key.substr(full_key.find('.') + 1); }

const Program kPrograms[] = {Program::milter, Program::cached, Program::ctl, Program::tlsmap, Program::reportd};

TEST(Manuals, EveryOptionOfEveryProgramIsInItsManual) {
  for (Program p : kPrograms) {
    const std::string text = rendered(page_of(p));
    const std::set<std::string> shown = long_options_in(text);
    for (const std::string& name : option_names(p)) {
      EXPECT_TRUE(shown.count(name)) << name << " is an option of " << to_string(p) << " but not in " << page_of(p);
    }
  }
}

TEST(Manuals, NoManualDocumentsAnOptionTheProgramLacks) {
  // The reverse direction: a long option in a manual that the program does not accept is a
  // lie to the operator. Program-only flags that the option table does not hold are listed.
  const std::map<Program, std::set<std::string>> extra = {
      {Program::milter, {"--key", "--redis-key"}},
      {Program::cached, {"--once", "--key", "--redis-key"}},
      {Program::ctl, {"--json", "--limit", "--day"}},
      {Program::tlsmap, {"--key", "--redis-key"}},
      {Program::reportd, {"--key", "--redis-key"}},
  };
  for (Program p : kPrograms) {
    const auto names = option_names(p);
    const std::set<std::string> known(names.begin(), names.end());
    for (const std::string& shown : long_options_in(rendered(page_of(p)))) {
      EXPECT_TRUE(known.count(shown) || extra.at(p).count(shown)) << page_of(p) << " documents " << shown;
    }
  }
}

// mta-sts.conf(5) source: the text between ".Ss [section]" and the next ".Ss"/".Sh".
std::map<std::string, std::string> conf_sections() {
  std::map<std::string, std::string> out;
  std::string current;
  for (const std::string& l : lines_of(read_file(src("man/mta-sts.conf.5")))) {
    if (l.rfind(".Ss [", 0) == 0) {
      current = l.substr(5, l.find(']') - 5);
      continue;
    }
    if (l.rfind(".Ss ", 0) == 0 || l.rfind(".Sh ", 0) == 0) current.clear();
    if (!current.empty()) out[current] += l + "\n";
  }
  return out;
}

TEST(Manuals, ConfManualHasEveryKeyWithItsDefault) {
  const auto sections = conf_sections();
  for (const auto& [full, def] : file_options()) {
    const std::string section = section_of(full), key = key_of(full);
    ASSERT_TRUE(sections.count(section)) << "mta-sts.conf(5) has no .Ss [" << section << "]";
    const std::string& text = sections.at(section);
    EXPECT_TRUE(text.find("Cm " + key + " ") != std::string::npos || text.find("Cm " + key + "\n") != std::string::npos)
        << full << " is not in the [" << section << "] part of mta-sts.conf(5)";
    // An item of its own must state the default.
    const std::string head = ".It Cm " + key + " ";
    const auto at = text.find(head);
    if (at == std::string::npos) continue;
    auto end = text.find("\n.It ", at + head.size());
    if (const auto el = text.find("\n.El", at); el < end) end = el;
    const std::string item = text.substr(at, end - at);
    const auto d = item.find("Default:");
    ASSERT_NE(d, std::string::npos) << full << ": no \"Default:\" in its item";
    const std::string stated = item.substr(d);
    if (def.empty()) {
      EXPECT_TRUE(stated.find("empty") != std::string::npos || stated.find("none") != std::string::npos)
          << full << ": default is empty, manual says " << stated;
    } else {
      EXPECT_NE(stated.find(def), std::string::npos) << full << ": default " << def << ", manual says " << stated;
    }
  }
}

TEST(Manuals, MandocLintIsClean) {
  for (const char* page : {"man/mta-sts-milter.8", "man/mta-sts-cached.8", "man/mta-sts-ctl.1", "man/mta-sts-tlsmap.8",
                           "man/mta-sts-reportd.8", "man/mta-sts.conf.5"}) {
    // -W warning: warnings and errors fail (exit 2 and up); style notes are allowed.
    RunResult r = run({"mandoc", "-Tlint", "-W", "warning", src(page).string()}, 30s);
    EXPECT_EQ(r.exit_code, 0) << page << ":\n" << r.out << r.err;
  }
}

TEST(Manuals, ProgramPagesHaveTheirSections) {
  for (const char* page : {"man/mta-sts-milter.8", "man/mta-sts-cached.8", "man/mta-sts-ctl.1", "man/mta-sts-tlsmap.8",
                           "man/mta-sts-reportd.8"}) {
    const std::string text = read_file(src(page));
    for (const char* sh : {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS", "SEE ALSO", "STANDARDS"}) {
      if (std::string(page).find("ctl") != std::string::npos && std::string(sh) == "FILES") continue;
      EXPECT_NE(text.find(std::string("\n.Sh ") + sh + "\n"), std::string::npos) << page << " lacks " << sh;
    }
  }
  for (const char* sh : {"OPERATION", "SIGNALS"}) {
    EXPECT_NE(read_file(src("man/mta-sts-reportd.8")).find(std::string(".Sh ") + sh), std::string::npos) << sh;
    EXPECT_NE(read_file(src("man/mta-sts-cached.8")).find(std::string(".Sh ") + sh), std::string::npos) << sh;
    EXPECT_NE(read_file(src("man/mta-sts-milter.8")).find(std::string(".Sh ") + sh), std::string::npos) << sh;
    EXPECT_NE(read_file(src("man/mta-sts-tlsmap.8")).find(std::string(".Sh ") + sh), std::string::npos) << sh;
  }
  // mta-sts-tlsmap(8) says what it replies, how DANE and the MX set are handled, and what
  // each MTA checks.
  const std::string tlsmap = read_file(src("man/mta-sts-tlsmap.8"));
  for (const char* ss : {".Ss REPLIES", ".Ss DANE", ".Ss THE MX SET", ".Ss What Postfix checks", ".Ss What Sendmail checks"})
    EXPECT_NE(tlsmap.find(ss), std::string::npos) << ss;
  const std::string milter = read_file(src("man/mta-sts-milter.8"));
  EXPECT_NE(milter.find(".Sh MTA MACROS"), std::string::npos);
  EXPECT_NE(milter.find(".Sh FILE PERMISSIONS"), std::string::npos);
  // The Redis key schema and the missing TLS of hiredis are documented.
  const std::string conf = rendered("man/mta-sts.conf.5");
  for (const char* k : {"v1:e:", "v1:misses", "v1:schedule", "v1:lock:", "v1:changed", "v1:stats:", "no TLS"}) {
    EXPECT_NE(conf.find(k), std::string::npos) << k;
  }
}

// ---- etc/mta-sts.conf ---------------------------------------------------------------------------

struct ExampleLine {
  std::string section, key, value;
  bool commented = false;
};

std::vector<ExampleLine> example_settings() {
  std::vector<ExampleLine> out;
  std::string section;
  static const std::regex setting(R"(^(#?)\s*([a-z][a-z0-9-]*)\s*=\s*(.*?)\s*$)");
  for (const std::string& l : lines_of(read_file(src("etc/mta-sts.conf")))) {
    if (l.size() > 1 && l.front() == '[') {
      section = l.substr(1, l.find(']') - 1);
      continue;
    }
    std::smatch m;
    if (!section.empty() && std::regex_match(l, m, setting)) out.push_back({section, m[2], m[3], m[1] == "#"});
  }
  return out;
}

TEST(ExampleConfig, ListsEveryKeyWithItsDefault) {
  const auto settings = example_settings();
  for (const auto& [full, def] : file_options()) {
    const bool repeatable = full.ends_with(".resolver");
    auto it = std::find_if(settings.begin(), settings.end(), [&, f = full](const ExampleLine& s) {
      return s.section == section_of(f) && s.key == key_of(f);
    });
    ASSERT_NE(it, settings.end()) << full << " is missing from etc/mta-sts.conf";
    EXPECT_TRUE(it->commented) << full << " should be shown commented out (defaults are built in)";
    if (!repeatable) {
      EXPECT_EQ(it->value, def) << full << ": etc/mta-sts.conf shows a value other than the default";
    }
  }
  // And nothing that the programs would reject.
  const auto known = file_options();
  for (const auto& s : settings) {
    const std::string full = s.section + "." + s.key;
    EXPECT_TRUE(std::any_of(known.begin(), known.end(), [&](const auto& k) { return k.first == full; }))
        << "etc/mta-sts.conf shows " << full << ", which is not an option";
  }
}

TEST(ExampleConfig, LoadsAsShippedAndWithEveryDefaultUncommented) {
  EXPECT_NO_THROW(load_config_file(src("etc/mta-sts.conf").string()));

  // Uncommenting every default must give a valid file that means the same as the defaults.
  std::string text;
  static const std::regex setting(R"(^#\s*([a-z][a-z0-9-]*\s*=.*)$)");
  for (const std::string& l : lines_of(read_file(src("etc/mta-sts.conf")))) {
    std::smatch m;
    text += (std::regex_match(l, m, setting) && l.find("resolver") == std::string::npos ? m[1].str() : l) + "\n";
  }
  TempDir dir("mtasts-docs");
  write_file(dir / "uncommented.conf", text);
  Config c;
  ASSERT_NO_THROW(c = load_config_file((dir / "uncommented.conf").string())) << text;
  const Config d;
  EXPECT_EQ(c.redis.redis.address, d.redis.redis.address);
  EXPECT_EQ(c.redis.redis.command_timeout, d.redis.redis.command_timeout);
  EXPECT_EQ(c.redis.store.prefix, d.redis.store.prefix);
  EXPECT_EQ(c.milter.socket, d.milter.socket);
  EXPECT_EQ(c.milter.socket_mode, d.milter.socket_mode);
  EXPECT_EQ(c.milter.redis_budget, d.milter.redis_budget);
  EXPECT_EQ(c.milter.milter_timeout, d.milter.milter_timeout);
  EXPECT_EQ(c.cached.lock_ttl, d.cached.lock_ttl);
  EXPECT_EQ(c.cached.refresh_interval, d.cached.refresh_interval);
  EXPECT_EQ(c.ctl.fetch_timeout, d.ctl.fetch_timeout);
}

// ---- systemd units and MTA snippets ---------------------------------------------------------------

TEST(ExampleConfig, SystemdUnitsAreHardenedNotifyServices) {
  for (const char* unit : {"etc/mta-sts-milter.service", "etc/mta-sts-cached.service", "etc/mta-sts-tlsmap.service"}) {
    const std::string text = read_file(src(unit));
    for (const char* line : {"Type=notify", "User=mta-sts", "NoNewPrivileges=yes", "ProtectSystem=strict",
                             "PrivateTmp=yes", "RuntimeDirectory=mta-sts", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                             "CapabilityBoundingSet=\n", "ProtectHome=yes"}) {
      EXPECT_NE(text.find(line), std::string::npos) << unit << " lacks " << line;
    }
  }
  EXPECT_NE(read_file(src("etc/mta-sts-milter.service")).find("ExecStart=/usr/sbin/mta-sts-milter\n"), std::string::npos);
  EXPECT_NE(read_file(src("etc/mta-sts-cached.service")).find("ExecStart=/usr/sbin/mta-sts-cached\n"), std::string::npos);
  // Both reload on SIGHUP (the milter takes it before libmilter's signal thread can).
  EXPECT_NE(read_file(src("etc/mta-sts-milter.service")).find("ExecReload=/bin/kill -HUP $MAINPID"), std::string::npos);
  EXPECT_NE(read_file(src("etc/mta-sts-cached.service")).find("ExecReload=/bin/kill -HUP $MAINPID"), std::string::npos);
  EXPECT_NE(read_file(src("etc/mta-sts-tlsmap.service")).find("ExecStart=/usr/sbin/mta-sts-tlsmap\n"), std::string::npos);
  EXPECT_NE(read_file(src("etc/mta-sts-tlsmap.service")).find("ExecReload=/bin/kill -HUP $MAINPID"), std::string::npos);
}

TEST(ExampleConfig, MtaSnippetsAskTlsmapAtItsDefaultAddress) {
  const std::string listen = Config{}.tlsmap.listen_or_default().front();  // inet:127.0.0.1:8461
  ASSERT_EQ(listen.rfind("inet:127.0.0.1:", 0), 0u);
  const std::string port = listen.substr(listen.rfind(':') + 1);

  // Postfix: postconf reads the policy map back; it names the `postfix` dialect (Debian 12's
  // Postfix 3.7 rejects the 3.10 attributes of `postfix-tlsrpt`).
  TempDir dir("mtasts-postconf-tlsmap");
  write_file(dir / "main.cf", read_file(src("etc/postfix-main.cf")));
  write_file(dir / "master.cf", "");
  RunResult r = run({"postconf", "-c", dir.path().string(), "-n", "smtp_tls_policy_maps"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "smtp_tls_policy_maps = socketmap:" + listen + ":postfix\n");
  // mta-sts-reportd counts TLS sessions from the log: the snippet has Postfix log them.
  r = run({"postconf", "-c", dir.path().string(), "-n", "smtp_tls_loglevel"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "smtp_tls_loglevel = 1\n");

  // Sendmail: FEATURE(`sts') at the same address (its own certificate-name check off, replaced
  // by the LOCAL_TLS_RCPT ruleset of the same file), and the connection cache off. The lines
  // work end to end: tests/e2e/deliver/sendmail_test.cpp.
  const std::string mc = read_file(src("etc/sendmail-tlsmap.mc"));
  EXPECT_NE(mc.find("\nFEATURE(`sts', `socket -d5 -T<TMPF> inet:" + port + "@127.0.0.1', `NO_SAN_TST')dnl\n"),
            std::string::npos)
      << mc;
  EXPECT_NE(mc.find("\nFEATURE(`check_cert_altnames')dnl\n"), std::string::npos) << mc;
  EXPECT_NE(mc.find("\nLOCAL_TLS_RCPT\n"), std::string::npos) << mc;
  EXPECT_NE(mc.find("\ndefine(`confMCI_CACHE_SIZE', `0')dnl\n"), std::string::npos) << mc;
  EXPECT_NE(read_file(src("etc/sendmail.mc")).find("sendmail-tlsmap.mc"), std::string::npos);
}

TEST(ExampleConfig, MtaSnippetsUseTheDefaultSocket) {
  // The default is TCP on loopback (libmilter's inet:PORT@HOST), which Debian's chrooted
  // Postfix can reach; Postfix writes the same socket inet:HOST:PORT.
  const std::string socket = Config{}.milter.socket;
  static const std::regex inet(R"(inet:(\d+)@127\.0\.0\.1)");
  std::smatch sm;
  ASSERT_TRUE(std::regex_match(socket, sm, inet)) << socket;
  const std::string postfix_socket = "inet:127.0.0.1:" + sm[1].str();

  // Postfix: the snippet is valid main.cf syntax that postconf reads back.
  TempDir dir("mtasts-postconf");
  write_file(dir / "main.cf", read_file(src("etc/postfix-main.cf")));
  write_file(dir / "master.cf", "");
  RunResult r = run({"postconf", "-c", dir.path().string(), "-n", "smtpd_milters", "non_smtpd_milters",
                     "milter_default_action", "milter_protocol"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("smtpd_milters = " + postfix_socket + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("non_smtpd_milters = $smtpd_milters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("milter_default_action = tempfail"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;

  // Sendmail: one INPUT_MAIL_FILTER line with the socket, F=T and timeouts.
  const std::string mc = read_file(src("etc/sendmail.mc"));
  static const std::regex filter(R"(\nINPUT_MAIL_FILTER\(`mta-sts', `S=([^,]+), F=T, T=C:\d+s;S:\d+s;R:\d+s;E:\d+s'\)dnl\n)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(mc, m, filter)) << mc;
  EXPECT_EQ(m[1].str(), socket);
}

// ---- etc/redis-acl.conf against a real Redis and the real store code ------------------------------

class RedisAcl : public ::testing::Test {
 protected:
  static std::string acl_lines() {
    // The example's users, with test passwords; "user default off" is left out so that the
    // harness (redis-cli without AUTH) can still check that the server is up.
    return acl_user_lines(src("etc/redis-acl.conf"), [](const std::string& who) { return "pw-" + who; }, false);
  }
  RedisServer redis{acl_lines()};

  RedisOptions as(const std::string& who) {
    RedisOptions o;
    o.address = redis.address();
    o.user = "mta-sts-" + who;
    o.password = "pw-" + who;
    return o;
  }
  static Domain dom(const std::string& s) { return *Domain::parse(s).domain; }
  static CacheEntry entry(SysTime now) {
    CacheEntry e;
    e.no_policy_until = now + Seconds{3600};
    e.checked_at = now;
    e.next_refresh = now + Seconds{600};
    return e;
  }
};

TEST_F(RedisAcl, ExampleDeclaresTheThreeUsersAndClosesTheDefault) {
  const std::string text = read_file(src("etc/redis-acl.conf"));
  for (const char* u : {"user mta-sts-milter on", "user mta-sts-cached on", "user mta-sts-ctl on", "user default off"})
    EXPECT_NE(text.find(u), std::string::npos) << u;
}

TEST_F(RedisAcl, AdminUserKeepsRedisCliAndMonitoringWorking) {
  // With the default user off, the example's admin user is what redis-cli and monitoring use.
  RunResult r = run({"redis-cli", "-s", redis.socket_path(), "--user", "mta-sts-admin", "--pass", "pw-admin",
                     "--no-auth-warning", "CONFIG", "GET", "maxclients"}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("maxclients"), std::string::npos) << r.out << r.err;
  r = run({"redis-cli", "-s", redis.socket_path(), "--user", "mta-sts-milter", "--pass", "pw-milter",
           "--no-auth-warning", "CONFIG", "GET", "maxclients"}, 30s);
  EXPECT_NE(r.out.find("NOPERM"), std::string::npos) << r.out << r.err;
}

TEST_F(RedisAcl, FetcherCanDoAllItsWork) {
  Pool pool(as("cached"));
  PolicyStore store(pool, StoreOptions{});
  const SysTime now = SystemClock().now();
  const Domain d = dom("acl.example");
  EXPECT_NO_THROW(store.put(d, entry(now), now, true));
  EXPECT_NO_THROW(store.get(d));
  EXPECT_NO_THROW(store.pending_misses(10));
  EXPECT_NO_THROW(store.due(now, 10));
  EXPECT_NO_THROW(store.schedule(d, now));
  EXPECT_NO_THROW(store.forget_invalid("not a domain"));
  EXPECT_NO_THROW(store.clear_miss(d));
  bool claimed = false;
  EXPECT_NO_THROW(claimed = store.claim(d, "token", 60000ms));
  EXPECT_TRUE(claimed);
  EXPECT_NO_THROW(store.release(d, "token"));
  EXPECT_NO_THROW(store.misses_size());
  EXPECT_NO_THROW(store.schedule_size());
  EXPECT_NO_THROW(store.write_stats("f1", {{"discoveries", 1}}, Seconds{60}));
  // The fleet work, scripts included (Redis checks a script's commands against the user too):
  // the fenced write, claim renewal, deferral, and every housekeeping step with bounds small
  // enough that each one has work to do.
  ASSERT_TRUE(store.claim(d, "token2", 60000ms));
  EXPECT_EQ(store.renew({{d, "token2"}}, 60000ms), std::vector<bool>{true});
  PolicyStore::PutResult put{};
  EXPECT_NO_THROW(put = store.put_claimed(d, entry(now), now, false, "token2"));
  EXPECT_EQ(put, PolicyStore::PutResult::written);
  EXPECT_NO_THROW(store.defer(d, now + Seconds{60}));
  EXPECT_NO_THROW(store.due_entries(now + Seconds{3600}, 10));
  StoreOptions small;
  small.max_domains = 1;
  small.max_misses = 1;
  PolicyStore bounded(pool, small);
  for (const char* n : {"m1.example", "m2.example", "m3.example"}) bounded.signal_miss(dom(n), now);
  bounded.note_wanted({{"w1.example", now}, {"w2.example", now}, {"w3.example", now}});
  bounded.put(dom("s2.example"), entry(now), now, false);
  std::size_t trimmed = 0, forgotten = 0;
  EXPECT_NO_THROW(trimmed = bounded.trim_misses());
  EXPECT_EQ(trimmed, 2u);
  EXPECT_NO_THROW(bounded.bound_scores(now, 100));
  EXPECT_NO_THROW(bounded.pending_misses(now, 10));
  EXPECT_NO_THROW(forgotten = bounded.forget_unwanted(now - Seconds{3600}, 100, now));
  EXPECT_GE(forgotten, 1u) << "unscheduled names beyond the bound of wanted";
  std::vector<PolicyStore::Candidate> candidates;
  EXPECT_NO_THROW(candidates = bounded.eviction_candidates(4));
  EXPECT_FALSE(candidates.empty());
  EXPECT_NO_THROW(bounded.unschedule_unwanted(candidates));
  EXPECT_NO_THROW(bounded.unschedule({"s2.example"}));
  // Nothing outside its prefix.
  auto lease = pool.lease();
  EXPECT_THROW(lease->command({"SET", "other:key", "x"}), RedisError);
  EXPECT_THROW(lease->command({"FLUSHALL"}), RedisError);
}

TEST_F(RedisAcl, MilterCanReadAndSignalOnly) {
  const SysTime now = SystemClock().now();
  {
    Pool writer(as("cached"));
    PolicyStore(writer, StoreOptions{}).put(dom("known.example"), entry(now), now, false);
  }
  Pool pool(as("milter"));
  PolicyStore store(pool, StoreOptions{});
  EXPECT_TRUE(store.get(dom("known.example")).has_value());
  EXPECT_FALSE(store.get(dom("unknown.example")).has_value());
  EXPECT_NO_THROW(store.signal_miss(dom("unknown.example"), now));
  {
    // Subscribing to the change channel works; to anything else it does not.
    auto conn = Connection::open(as("milter"));
    const std::string channel = store.changed_channel();
    conn.send({"SUBSCRIBE", channel});
    auto reply = conn.read(2000ms);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->at(0).str(), "subscribe");
  }
  // It cannot write or erase policies, nor touch the fetchers' state.
  EXPECT_THROW(store.put(dom("forged.example"), entry(now), now, true), RedisError);
  EXPECT_THROW(store.drop(dom("known.example")), RedisError);
  EXPECT_THROW(store.claim(dom("known.example"), "t", 1000ms), RedisError);
  EXPECT_THROW(store.schedule(dom("known.example"), now), RedisError);
  auto lease = pool.lease();
  EXPECT_THROW(lease->command({"SET", "mta-sts:v1:e:forged.example", "x"}), RedisError);
  EXPECT_THROW(lease->command({"DEL", "mta-sts:v1:e:known.example"}), RedisError);
  EXPECT_THROW(lease->command({"KEYS", "*"}), RedisError);
}

// Trimming the misses belongs to the fetcher: an MTA host's user can add misses and demand
// records, but cannot wipe or trim the fleet's misses, and its --check-redis still passes.
TEST_F(RedisAcl, MilterAndTlsmapCannotWipeOrTrimTheMisses) {
  const SysTime now = SystemClock().now();
  for (const char* who : {"milter", "tlsmap"}) {
    const RedisOptions o = as(who);
    Pool pool(o);
    PolicyStore store(pool, StoreOptions{});
    EXPECT_NO_THROW(store.signal_miss(dom("wanted.example"), now)) << who;
    EXPECT_NO_THROW(store.note_wanted({{"wanted.example", now}})) << who;
    auto lease = pool.lease();
    for (const std::vector<std::string_view>& cmd : std::vector<std::vector<std::string_view>>{
             {"ZREMRANGEBYRANK", "mta-sts:v1:misses", "0", "-1"},
             {"ZREM", "mta-sts:v1:misses", "wanted.example"},
             {"DEL", "mta-sts:v1:misses"},
             {"ZPOPMIN", "mta-sts:v1:misses"},
             {"ZREM", "mta-sts:v1:wanted", "wanted.example"},
             {"DEL", "mta-sts:v1:wanted"}}) {
      try {
        lease->command(cmd);
        ADD_FAILURE() << who << " may run " << cmd[0] << " " << cmd[1];
      } catch (const RedisError& e) {
        EXPECT_NE(std::string(e.what()).find("NOPERM"), std::string::npos) << who << ": " << e.what();
      }
    }
    const RedisCheckResult r = check_redis(o, StoreOptions{}, std::string(who) == "milter" ? Program::milter : Program::tlsmap);
    EXPECT_TRUE(r.ok) << who << ": " << r.message;
  }
  Pool fetcher(as("cached"));
  EXPECT_EQ(PolicyStore(fetcher, StoreOptions{}).misses_size(), 1u) << "the misses are intact";
  EXPECT_EQ(PolicyStore(fetcher, StoreOptions{}).wanted_size(), 1u);
  EXPECT_TRUE(check_redis(as("cached"), StoreOptions{}, Program::cached).ok);
}

TEST_F(RedisAcl, CtlCanRunEveryCacheSubcommand) {
  const SysTime now = SystemClock().now();
  {
    Pool writer(as("cached"));
    PolicyStore(writer, StoreOptions{}).put(dom("ctl.example"), entry(now), now, false);
  }
  TempDir dir("mtasts-acl-ctl");
  write_file(dir / "c.conf", "[redis]\naddress = " + redis.address() + "\nuser = mta-sts-ctl\npassword = pw-ctl\n");
  write_file(dir / "warm.txt", "warm.example\n");
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {MTASTS_CTL_BIN, "-c", (dir / "c.conf").string(), "cache"});
    return run(args, 30s);
  };
  for (const auto& [args, code] : std::vector<std::pair<std::vector<std::string>, int>>{
           {{"show", "ctl.example"}, 0}, {{"list"}, 0}, {{"warm", (dir / "warm.txt").string()}, 0},
           {{"stats"}, 0}, {{"drop", "ctl.example"}, 0}}) {
    RunResult r = ctl(args);
    EXPECT_EQ(r.exit_code, code) << args[0] << ": " << r.out << r.err;
  }
}

}  // namespace
}  // namespace mtasts::test
