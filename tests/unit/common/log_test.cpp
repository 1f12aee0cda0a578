// Logging: escaping of untrusted text, the key=value line format, level names and filtering,
// and whole lines on stderr when many threads log at once.
#include "common/util/log.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mtasts::log {
namespace {

struct EscapeRow {
  const char* name;
  std::string in;
  std::string out;
};
std::ostream& operator<<(std::ostream& os, const EscapeRow& r) { return os << r.name; }

const EscapeRow kEscapeRows[] = {
    {"plain_ascii_kept", "mail.example.com", "mail.example.com"},
    {"space_kept", "a b", "a b"},
    {"newline_hex", "a\nb", "a\\x0ab"},
    {"carriage_return_hex", "a\rb", "a\\x0db"},
    {"tab_hex", "a\tb", "a\\x09b"},
    {"nul_hex", std::string("a\0b", 3), "a\\x00b"},
    {"escape_char_hex", "\x1b[31m", "\\x1b[31m"},
    {"del_hex", "\x7f", "\\x7f"},
    {"non_ascii_hex", "caf\xc3\xa9", "caf\\xc3\\xa9"},
    {"quote_escaped", "say \"hi\"", "say \\\"hi\\\""},
    {"backslash_escaped", "a\\b", "a\\\\b"},
    {"backslash_x_cannot_forge_escape", "\\x0a", "\\\\x0a"},
    {"empty", "", ""},
};

class LogEscapeTest : public ::testing::TestWithParam<EscapeRow> {};
TEST_P(LogEscapeTest, Row) { EXPECT_EQ(escape(GetParam().in), GetParam().out); }
INSTANTIATE_TEST_SUITE_P(Rules, LogEscapeTest, ::testing::ValuesIn(kEscapeRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(LogFormat, MessageAlone) { EXPECT_EQ(format("fetch done", {}), "fetch done"); }

TEST(LogFormat, PlainValuesUnquoted) {
  EXPECT_EQ(format("policy stored", {{"domain", "example.com"}, {"mode", "enforce"}}),
            "policy stored domain=example.com mode=enforce");
}

TEST(LogFormat, ValueWithSpaceQuoted) {
  EXPECT_EQ(format("fetch failed", {{"error", "connection refused"}}), "fetch failed error=\"connection refused\"");
}

TEST(LogFormat, ValueWithQuoteQuotedAndEscaped) {
  EXPECT_EQ(format("m", {{"v", "a\"b"}}), "m v=\"a\\\"b\"");
}

TEST(LogFormat, ValueWithEqualsQuoted) { EXPECT_EQ(format("m", {{"v", "a=b"}}), "m v=\"a=b\""); }

TEST(LogFormat, EmptyValueQuoted) { EXPECT_EQ(format("m", {{"v", ""}}), "m v=\"\""); }

TEST(LogFormat, HostileValueCannotForgeFieldsOrLines) {
  std::string line = format("rcpt", {{"domain", "x.com status=ok\nFAKE LINE"}, {"qid", "ABC"}});
  EXPECT_EQ(line, "rcpt domain=\"x.com status=ok\\x0aFAKE LINE\" qid=ABC");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LogFormat, NonAsciiValueEscapedNotQuoted) {
  EXPECT_EQ(format("m", {{"domain", "b\xc3\xbc" "cher.example"}}), "m domain=b\\xc3\\xbccher.example");
}

struct LevelRow {
  const char* name;
  const char* text;
  std::optional<Level> level;
};
std::ostream& operator<<(std::ostream& os, const LevelRow& r) { return os << r.name; }

const LevelRow kLevelRows[] = {
    {"debug", "debug", Level::debug},
    {"info", "info", Level::info},
    {"notice", "notice", Level::notice},
    {"warning", "warning", Level::warning},
    {"warn_alias", "warn", Level::warning},
    {"error", "error", Level::error},
    {"err_alias", "err", Level::error},
    {"unknown", "verbose", std::nullopt},
    {"empty", "", std::nullopt},
};
class LogLevelTest : public ::testing::TestWithParam<LevelRow> {};
TEST_P(LogLevelTest, Row) { EXPECT_EQ(level_from_string(GetParam().text), GetParam().level); }
INSTANTIATE_TEST_SUITE_P(Rules, LogLevelTest, ::testing::ValuesIn(kLevelRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(LogFacility, Names) {
  for (const char* f : {"mail", "daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5",
                        "local6", "local7"}) {
    EXPECT_TRUE(is_facility_name(f)) << f;
  }
  for (const char* f : {"", "MAIL", "local8", "kern", "auth"}) EXPECT_FALSE(is_facility_name(f)) << f;
}

// Sends fd 2 to a temporary file for the lifetime of the object.
class StderrCapture {
 public:
  StderrCapture() {
    char tmpl[] = "/tmp/mtasts-log-test-XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    path_ = tmpl;
    std::fflush(stderr);
    saved_ = dup(2);
    dup2(fd, 2);
    close(fd);
  }
  ~StderrCapture() {
    restore();
    std::remove(path_.c_str());
  }
  std::string text() {
    restore();
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(LogStderr, LineHasTimestampIdentLevelAndFields) {
  StderrCapture cap;
  init({"mta-sts-test", Target::stderr_, Level::info, "mail"});
  info("policy stored", {{"domain", "example.com"}, {"mode", "enforce"}});
  auto lines = lines_of(cap.text());
  ASSERT_EQ(lines.size(), 1u);
  std::regex re(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mta-sts-test\[\d+\]: info: policy stored domain=example\.com mode=enforce$)");
  EXPECT_TRUE(std::regex_match(lines[0], re)) << lines[0];
}

TEST(LogStderr, LevelsBelowTheMinimumAreDropped) {
  StderrCapture cap;
  init({"t", Target::stderr_, Level::warning, "mail"});
  debug("d");
  info("i");
  notice("n");
  warning("w");
  error("e");
  auto lines = lines_of(cap.text());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find(" warning: w"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find(" error: e"), std::string::npos) << lines[1];
}

TEST(LogStderr, DebugShownWhenEnabled) {
  StderrCapture cap;
  init({"t", Target::stderr_, Level::debug, "mail"});
  debug("d", {{"k", "v"}});
  auto lines = lines_of(cap.text());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" debug: d k=v"), std::string::npos) << lines[0];
}

TEST(LogStderr, HostileValueStaysOnOneLine) {
  StderrCapture cap;
  init({"t", Target::stderr_, Level::info, "mail"});
  warning("rcpt", {{"domain", "evil\nt[1]: error: forged"}});
  auto lines = lines_of(cap.text());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("domain=\"evil\\x0at[1]: error: forged\""), std::string::npos) << lines[0];
}

TEST(LogStderr, ConcurrentWritersNeverInterleave) {
  StderrCapture cap;
  init({"t", Target::stderr_, Level::info, "mail"});
  constexpr int kThreads = 8;
  constexpr int kLines = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      std::string id = std::to_string(t);
      std::string pad(100, static_cast<char>('a' + t));
      for (int i = 0; i < kLines; ++i) info("line", {{"thread", id}, {"n", std::to_string(i)}, {"pad", pad}});
    });
  }
  for (auto& th : threads) th.join();
  auto lines = lines_of(cap.text());
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kLines));
  std::regex re(R"(^\S+ t\[\d+\]: info: line thread=(\d) n=\d+ pad=([a-h])\2{99}$)");
  for (const auto& l : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, re)) << l;
    EXPECT_EQ(m[2].str()[0], static_cast<char>('a' + std::stoi(m[1].str())));
  }
}

// A unix datagram socket standing in for /dev/log (the lines themselves still go to glibc's
// /dev/log: only reachability is checked against this one).
class FakeSyslogSocket {
 public:
  FakeSyslogSocket() {
    char tmpl[] = "/tmp/mtasts-syslog-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/log";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~FakeSyslogSocket() {
    ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_, path_;
  int fd_ = -1;
};

TEST(LogSyslog, WritesNothingToStderrWhenSyslogIsReachable) {
  FakeSyslogSocket sock;
  StderrCapture cap;
  init({"mta-sts-test", Target::syslog, Level::debug, "local3", sock.path()});
  info("to syslog", {{"k", "v"}});
  init({"mta-sts-test", Target::syslog, Level::debug, "no-such-facility", sock.path()});  // falls back to mail
  error("to syslog again");
  init({"t", Target::stderr_, Level::info, "mail"});
  EXPECT_EQ(cap.text(), "");
}

TEST(LogSyslog, SaysOnceWhenSyslogCannotBeReachedAndLogsToStderr) {
  StderrCapture cap;
  init({"mta-sts-test", Target::syslog, Level::info, "mail", "/nonexistent/dev-log"});
  EXPECT_TRUE(writing_to_stderr());
  info("first line", {{"k", "v"}});
  warning("second line");
  error("third line");
  init({"t", Target::stderr_, Level::info, "mail"});
  const std::string text = cap.text();
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 4u) << text;
  EXPECT_NE(lines[0].find("warning: cannot reach syslog; logging to stderr until it can be reached "
                          "socket=/nonexistent/dev-log error=\"No such file or directory\""),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("info: first line k=v"), std::string::npos) << lines[1];
  EXPECT_NE(lines[3].find("error: third line"), std::string::npos) << lines[3];
}

TEST(LogFatal, ReachesStderrAlsoWhenLoggingToSyslog) {
  FakeSyslogSocket sock;
  StderrCapture cap;
  init({"mta-sts-test", Target::syslog, Level::info, "mail", sock.path()});
  EXPECT_FALSE(writing_to_stderr());
  info("not on stderr");
  fatal("cannot start", {{"error", "cannot open milter socket inet:25: Address already in use"}});
  init({"t", Target::stderr_, Level::info, "mail"});
  const std::string text = cap.text();
  ASSERT_EQ(lines_of(text).size(), 1u) << text;
  EXPECT_NE(text.find("mta-sts-test["), std::string::npos) << text;
  EXPECT_NE(text.find("error: cannot start error=\"cannot open milter socket inet:25: Address already in use\""),
            std::string::npos)
      << text;
}

TEST(LogFatal, WrittenOnceWhenLoggingToStderr) {
  StderrCapture cap;
  init({"mta-sts-test", Target::stderr_, Level::info, "mail"});
  fatal("cannot start");
  const std::string text = cap.text();
  EXPECT_EQ(lines_of(text).size(), 1u) << text;
}

}  // namespace
}  // namespace mtasts::log
