// Sources and the durable spool: the file follower across rotation (rename+create,
// copytruncate), restarts from a saved position, a replaced file, a file rotated while the
// daemon was down; the libtlsrpt datagram socket with hostile datagrams; the journal through a
// fake journalctl; and kill -9 at each step of the collector's loop.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "reportd/collect/collector.hpp"
#include "reportd/collect/datagram.hpp"
#include "reportd/collect/log_line.hpp"
#include "reportd/collect/postfix.hpp"
#include "tests/fakes/fake_clock.hpp"

namespace mtasts::reportd {
namespace {

namespace fs = std::filesystem;
using tlsrpt::Result;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/mtasts-collect-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// One real Postfix 3.7 session (a Verified TLS line and its status line), numbered: domain
// dN.test, queue id and PID derived from N.
std::string session_lines(int n) {
  char qid[16];
  std::snprintf(qid, sizeof qid, "%010X", 0xA0000 + n);
  const std::string pid = std::to_string(1000 + n);
  const std::string d = "d" + std::to_string(n) + ".test";
  return "Dec 08 00:20:40 mta postfix/smtp[" + pid + "]: Verified TLS connection established to mx." + d +
         "[127.25.0.10]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
         "server-signature ECDSA (prime256v1) server-digest SHA256\n"
         "Dec 08 00:20:40 mta postfix/smtp[" + pid + "]: " + qid + ": to=<rcpt@" + d + ">, relay=mx." + d +
         "[127.25.0.10]:25, delay=0.05, delays=0.01/0.03/0.01/0, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as x)\n";
}

void append(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::app | std::ios::binary);
  out << text;
}

test::FakeClock& the_clock() {
  static test::FakeClock c{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  return c;
}

std::unique_ptr<FileSource> follower(const fs::path& p) {
  ParserOptions o;
  o.clock = &the_clock();
  return std::make_unique<FileSource>("postfix-log:" + p.string(), p.string(), std::make_unique<PostfixParser>(o), 65536);
}

std::multiset<std::string> drain(Source& s, std::size_t max = 1000) {
  std::multiset<std::string> domains;
  std::vector<Outcome> out;
  for (int i = 0; i < 10; ++i) s.poll(out, max);
  for (const auto& o : out) domains.insert(o.session.domain);
  return domains;
}

std::multiset<std::string> expect_range(int from, int to) {
  std::multiset<std::string> m;
  for (int i = from; i < to; ++i) m.insert("d" + std::to_string(i) + ".test");
  return m;
}

TEST(FileSource, FollowsRotationByRenameAndCreate) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  for (int i = 0; i < 3; ++i) append(log, session_lines(i));
  auto src = follower(log);
  EXPECT_EQ(drain(*src), expect_range(0, 3));
  // The writer appends to the old file after the rename, then a new file is created.
  fs::rename(log, dir.path() / "mail.log.1");
  append(dir.path() / "mail.log.1", session_lines(3));
  for (int i = 4; i < 6; ++i) append(log, session_lines(i));
  EXPECT_EQ(drain(*src), expect_range(3, 6));
  EXPECT_GE(src->stats().rotations, 1u);
  append(log, session_lines(6));
  EXPECT_EQ(drain(*src), expect_range(6, 7));
}

TEST(FileSource, LinesWrittenToTheOldFileAfterTheRenameAreNotLost) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  append(log, session_lines(0));
  auto src = follower(log);
  EXPECT_EQ(drain(*src, 1000), expect_range(0, 1));
  fs::rename(log, dir.path() / "mail.log.1");
  append(log, session_lines(2));
  std::vector<Outcome> out;
  src->poll(out, 1000);  // sees the new file; the writer has not reopened yet
  append(dir.path() / "mail.log.1", session_lines(1));
  EXPECT_EQ(drain(*src), expect_range(1, 3));
}

TEST(FileSource, FollowsCopyTruncate) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  for (int i = 0; i < 3; ++i) append(log, session_lines(i));
  auto src = follower(log);
  EXPECT_EQ(drain(*src), expect_range(0, 3));
  fs::resize_file(log, 0);
  append(log, session_lines(3));
  EXPECT_EQ(drain(*src), expect_range(3, 4));
  EXPECT_EQ(src->stats().rotations, 1u);
}

TEST(FileSource, APartialLastLineWaitsForItsEnd) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  const std::string two = session_lines(0);
  append(log, two.substr(0, two.size() - 20));
  auto src = follower(log);
  EXPECT_TRUE(drain(*src).empty());
  append(log, two.substr(two.size() - 20));
  EXPECT_EQ(drain(*src), expect_range(0, 1));
}

TEST(FileSource, RestartsFromItsPositionWithoutLossOrDoubleCount) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  for (int i = 0; i < 5; ++i) append(log, session_lines(i));
  auto first = follower(log);
  std::vector<Outcome> out;
  first->poll(out, 4);  // two sessions, four lines
  ASSERT_EQ(out.size(), 2u);
  const std::string pos = first->position();
  first.reset();
  append(log, session_lines(5));
  auto second = follower(log);
  ASSERT_TRUE(second->restore(pos));
  EXPECT_EQ(drain(*second), expect_range(2, 6));
}

TEST(FileSource, AReplacedFileIsReadFromTheStart) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  for (int i = 0; i < 2; ++i) append(log, session_lines(i));
  auto first = follower(log);
  EXPECT_EQ(drain(*first), expect_range(0, 2));
  const std::string pos = first->position();
  first.reset();
  // Replaced while down by a longer file under the same name (maybe even the same inode).
  fs::remove(log);
  for (int i = 10; i < 14; ++i) append(log, session_lines(i));
  auto second = follower(log);
  ASSERT_TRUE(second->restore(pos));
  EXPECT_EQ(drain(*second), expect_range(10, 14));
}

TEST(FileSource, AFileRotatedWhileDownIsFinishedFirst) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  for (int i = 0; i < 2; ++i) append(log, session_lines(i));
  auto first = follower(log);
  EXPECT_EQ(drain(*first), expect_range(0, 2));
  const std::string pos = first->position();
  first.reset();
  append(log, session_lines(2));
  fs::rename(log, dir.path() / "mail.log.1");
  append(log, session_lines(3));
  auto second = follower(log);
  ASSERT_TRUE(second->restore(pos));
  EXPECT_EQ(drain(*second), expect_range(2, 4));
}

TEST(FileSource, AnOverlongLineIsSkipped) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  append(log, std::string(200000, 'x') + "\n");
  append(log, session_lines(0));
  auto src = follower(log);
  EXPECT_EQ(drain(*src), expect_range(0, 1));
  EXPECT_EQ(src->stats().long_lines, 1u);
}

// ---- datagrams -------------------------------------------------------------------------------

void send_to(const fs::path& sock, const std::string& data) {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock.c_str());
  const ssize_t r = ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::close(fd);
  ASSERT_EQ(r, static_cast<ssize_t>(data.size())) << std::strerror(errno);
}

// What libtlsrpt 0.5 writes for an MTA-STS delivery with a failure at the first MX and
// success at the second (doc/example.txt's calls, the library's own JSON layout).
const std::string kDatagram =
    R"({"dpv": "1","d": "company-y.example","pr": "v=TLSRPTv1;rua=mailto:reports@company-y.example",)"
    R"("policies":[{"policy-type":2,"policy-domain": "company-y.example","policy-string":["version: STSv1","mode: testing",)"
    R"("mx: *.mail.company-y.example","max_age: 86400"],"mx-host":["*.mail.company-y.example"],)"
    R"("failure-details":[{"c":202,"s": "2001:db8:abcd:0012::1","n": "mx1.mail.company-y.example","r": "192.0.2.1",)"
    R"("a": "certificate name mismatch","f": "X509_V_ERR_HOSTNAME_MISMATCH"}],"t":1,"f":0}]})";

TEST(Datagram, MapsEachPolicyAndFailureDetail) {
  std::vector<Outcome> out;
  std::string err;
  ASSERT_TRUE(parse_datagram(kDatagram, 100, "", out, &err)) << err;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].session.result, Result::certificate_host_mismatch);
  EXPECT_EQ(out[0].session.domain, "company-y.example");
  EXPECT_EQ(out[0].session.receiving_mx_hostname, "mx1.mail.company-y.example");
  EXPECT_EQ(out[0].session.receiving_ip, "192.0.2.1");
  EXPECT_EQ(out[0].session.sending_mta_ip, "2001:db8:abcd:0012::1");
  EXPECT_EQ(out[0].session.failure_reason_code, "X509_V_ERR_HOSTNAME_MISMATCH");
  ASSERT_TRUE(out[0].policy);
  EXPECT_EQ(out[0].policy->type, tlsrpt::PolicyType::sts);
  EXPECT_EQ(out[0].policy->strings.size(), 4u);
  EXPECT_EQ(out[1].session.result, Result::success);
  for (int code : {201, 202, 203, 204, 205, 301, 302, 303, 304, 305, 306})
    EXPECT_NE(tlsrpt::to_string(datagram_result(code)), std::string("success")) << code;
  EXPECT_EQ(datagram_result(999), Result::validation_failure);
}

TEST(Datagram, HostileDatagramsAreRefusedOrBounded) {
  struct Row { std::string text; bool ok; std::size_t sessions; };
  const std::string huge(60000, 'A');
  const std::vector<Row> rows = {
      // Unknown fields anywhere are ignored.
      {R"({"dpv":"1","d":"a.example","zz":{"x":[1,2]},"policies":[{"policy-type":9,"new":true,"t":0,"f":0}]})", true, 1},
      {R"({"dpv":"1","d":"a.example","policies":[{"policy-type":9,"t":0,"f":0}])", false, 0},   // invalid JSON
      {R"({"dpv":"2","d":"a.example","policies":[{"policy-type":9,"t":0,"f":0}]})", false, 0},  // other protocol
      {R"({"dpv":"1","d":"[127.0.0.1]","policies":[{"policy-type":9,"t":0,"f":0}]})", false, 0},
      {R"({"dpv":"1","d":"a.example","policies":[{"policy-type":7,"t":0,"f":0}]})", false, 0},
      {R"({"dpv":"1","d":"a.example","policies":[]})", false, 0},
      {R"({"dpv":"1","d":"a.example","policies":[{"policy-type":9,"f":1}]})", true, 1},  // failure, no details
      // A huge additional-information is cut to the report's bound.
      {R"({"dpv":"1","d":"a.example","policies":[{"policy-type":9,"failure-details":[{"c":201,"a":")" + huge +
           R"("}],"t":1,"f":1}]})", true, 1},
      // A huge policy string is refused (no policy line is that long).
      {R"({"dpv":"1","d":"a.example","policies":[{"policy-type":2,"policy-string":[")" + huge + R"("],"t":0,"f":0}]})",
       false, 0},
      {"[" + std::string(5000, '[') + std::string(5000, ']') + "]", false, 0},
      {std::string(70000, ' '), false, 0},
  };
  for (const auto& r : rows) {
    std::vector<Outcome> out;
    std::string err;
    EXPECT_EQ(parse_datagram(r.text, 1, "", out, &err), r.ok) << r.text.substr(0, 120) << " " << err;
    EXPECT_EQ(out.size(), r.sessions) << r.text.substr(0, 120);
    for (const auto& o : out) EXPECT_LE(o.session.additional_information.size(), tlsrpt::kMaxAdditionalInformation);
  }
}

TEST(DatagramSource, ReceivesCountsAndRefusesOnTheSocket) {
  TempDir dir;
  const fs::path sock = dir.path() / "tlsrpt.sock";
  SourceOptions o;
  o.clock = &the_clock();
  std::string err;
  auto src = make_source("tlsrpt-socket:" + sock.string(), o, &err);
  ASSERT_TRUE(src) << err;
  send_to(sock, kDatagram);
  send_to(sock, "{not json");
  // Exactly 64 KiB: valid JSON padded with whitespace is accepted; one byte more is not.
  std::string big = kDatagram;
  big.append(65536 - big.size(), ' ');
  send_to(sock, big);
  send_to(sock, big + " ");
  std::vector<Outcome> out;
  EXPECT_EQ(src->poll(out, 100), 4u);
  EXPECT_EQ(out.size(), 4u);
  EXPECT_EQ(src->stats().invalid, 2u);
  EXPECT_EQ(src->position(), "");
}

// ---- journal ---------------------------------------------------------------------------------

TEST(JournalSource, ReadsRecordsThroughJournalctlAndResumesAfterItsCursor) {
  // No journald runs here: a fake journalctl prints the records after --after-cursor.
  TempDir dir;
  const fs::path data = dir.path() / "records";
  const fs::path script = dir.path() / "journalctl";
  const fs::path argsfile = dir.path() / "args";
  {
    std::ofstream s(script);
    s << "#!/bin/sh\necho \"$@\" >> " << argsfile.string() << "\n"
      << "after=''\nfor a in \"$@\"; do case \"$a\" in --after-cursor=*) after=${a#--after-cursor=};; esac; done\n"
      << "seen=$([ -z \"$after\" ] && echo 1 || echo 0)\n"
      << "while IFS= read -r line; do\n"
      << "  if [ \"$seen\" = 1 ]; then printf '%s\\n' \"$line\"; fi\n"
      << "  case \"$line\" in *\"\\\"__CURSOR\\\":\\\"$after\\\"\"*) seen=1;; esac\n"
      << "done < " << data.string() << "\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  const auto rec = [](int n, const std::string& msg) {
    return R"({"__CURSOR":"c)" + std::to_string(n) + R"(","__REALTIME_TIMESTAMP":"1796689240000000","SYSLOG_IDENTIFIER":"postfix/smtp","_PID":"4242","MESSAGE":")" +
           msg + "\"}\n";
  };
  {
    std::ofstream d(data);
    d << rec(1, "Verified TLS connection established to mx.a.test[10.0.0.1]:25: TLSv1.3 with cipher X (256/256 bits)")
      << rec(2, "ABCDE12345: to=<x@a.test>, relay=mx.a.test[10.0.0.1]:25, delay=0.1, delays=0/0/0.1/0, dsn=2.0.0, status=sent (250 ok)")
      << "{broken\n";
  }
  SourceOptions o;
  o.journalctl = script.string();
  o.parser.clock = &the_clock();
  JournalSource j("journal", o);
  std::vector<Outcome> out;
  for (int i = 0; i < 200 && j.stats().items < 3; ++i) {
    j.poll(out, 100);
    ::usleep(10000);  // a real child process: give it time to write (no clock involved)
  }
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session.domain, "a.test");
  EXPECT_EQ(out[0].session.time, 1796689240);
  EXPECT_EQ(j.stats().invalid, 1u);
  const std::string pos = j.position();
  EXPECT_NE(pos.find("\nc2\n"), std::string::npos) << pos;
  {
    std::ofstream d(data, std::ios::app);
    d << rec(3, "Verified TLS connection established to mx.b.test[10.0.0.2]:25: TLSv1.3 with cipher X (256/256 bits)")
      << rec(4, "BCDEF12345: to=<x@b.test>, relay=mx.b.test[10.0.0.2]:25, delay=0.1, delays=0/0/0.1/0, dsn=2.0.0, status=sent (250 ok)");
  }
  JournalSource again("journal", o);
  ASSERT_TRUE(again.restore(pos));
  std::vector<Outcome> more;
  for (int i = 0; i < 200 && again.stats().items < 3; ++i) {
    again.poll(more, 100);
    ::usleep(10000);
  }
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].session.domain, "b.test");
  std::ifstream a(argsfile);
  std::string first, second;
  std::getline(a, first);
  std::getline(a, second);
  EXPECT_NE(first.find("-n 0"), std::string::npos) << first;
  EXPECT_NE(second.find("--after-cursor=c2"), std::string::npos) << second;
}

TEST(JournalSource, ACursorTheJournalNoLongerKnowsIsDroppedAfterThreeEmptyRuns) {
  TempDir dir;
  const fs::path script = dir.path() / "journalctl";
  const fs::path argsfile = dir.path() / "args";
  {
    std::ofstream s(script);
    s << "#!/bin/sh\necho \"$@\" >> " << argsfile.string() << "\n"
      << "case \"$*\" in *--after-cursor=*) echo 'Failed to seek to cursor' >&2; exit 1;; esac\n"
      << "exec sleep 30\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  SourceOptions o;
  o.journalctl = script.string();
  JournalSource j("journal", o);
  ASSERT_TRUE(j.restore("journal 1\ns=gone\n0\n0\n"));
  std::vector<Outcome> out;
  for (int i = 0; i < 300 && j.stats().restarts < 3; ++i) {
    j.poll(out, 10);
    ::usleep(10000);  // a real child process (no clock involved)
  }
  EXPECT_EQ(j.stats().restarts, 3u);
  j.poll(out, 10);  // starts journalctl from now
  EXPECT_EQ(j.position().find("s=gone"), std::string::npos);
  std::string line, last;
  int with_cursor = 0, runs = 0;
  for (int i = 0; i < 300 && runs < 4; ++i) {  // until the fourth run has written its arguments
    ::usleep(10000);
    std::ifstream a(argsfile);
    runs = with_cursor = 0;
    while (std::getline(a, line)) {
      ++runs;
      if (line.find("--after-cursor=s=gone") != std::string::npos) ++with_cursor;
      last = line;
    }
  }
  EXPECT_EQ(with_cursor, 3);
  EXPECT_NE(last.find("-n 0"), std::string::npos) << last;
}

// ---- the collector's spool across kill -9 ----------------------------------------------------

class NoPolicies final : public PolicyView {
 public:
  std::optional<CacheEntry> entry(const Domain&) override { return std::nullopt; }
};

// The fleet's side, idempotent per sequence number like ReportStore::apply.
struct FakeFleet {
  std::set<std::uint64_t> applied;
  std::map<std::string, std::uint64_t> success;
  void apply(std::uint64_t seq, const tlsrpt::Batch& b) {
    if (!applied.insert(seq).second) return;
    for (const auto& [k, e] : b.entries()) success[k.domain] += e.counts.success;
  }
};

std::unique_ptr<Collector> collector(const fs::path& log, const fs::path& state, PolicyView& view) {
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(follower(log));
  CollectorOptions o;
  o.state_dir = state;
  o.max_items_per_poll = 3;  // small steps: a crash falls between sessions and inside them
  return std::make_unique<Collector>(std::move(sources), view, o);
}

TEST(Collector, KillNineAtEachStepNeitherLosesNorDoubleCounts) {
  enum Crash { after_poll, after_checkpoint, after_apply, after_ack, none };
  for (int crash = after_poll; crash <= none; ++crash) {
    TempDir dir;
    const fs::path log = dir.path() / "mail.log";
    const fs::path state = dir.path() / "state";
    fs::create_directories(state);
    for (int i = 0; i < 20; ++i) append(log, session_lines(i % 4));
    NoPolicies view;
    FakeFleet fleet;
    // Several runs of the daemon; each dies (its object is dropped without any further
    // write, as kill -9 would) at the chosen step of its second flush.
    for (int run = 0; run < 8; ++run) {
      auto c = collector(log, state, view);
      c->load();
      for (int flush = 0; flush < 3; ++flush) {
        c->poll();
        if (flush == 1 && crash == after_poll) break;
        auto pending = c->checkpoint();
        if (flush == 1 && crash == after_checkpoint) break;
        bool died = false;
        for (auto& [seq, b] : pending) {
          fleet.apply(seq, b);
          if (flush == 1 && crash == after_apply) {
            died = true;
            break;
          }
          c->acknowledge(seq);
          if (flush == 1 && crash == after_ack) {
            died = true;
            break;
          }
        }
        if (died) break;
      }
    }
    // A final clean run drains everything.
    auto c = collector(log, state, view);
    c->load();
    for (int i = 0; i < 50; ++i) c->poll();
    for (auto& [seq, b] : c->checkpoint()) {
      fleet.apply(seq, b);
      c->acknowledge(seq);
    }
    EXPECT_EQ(c->pending(), 0u);
    for (int d = 0; d < 4; ++d)
      EXPECT_EQ(fleet.success["d" + std::to_string(d) + ".test"], 5u) << "crash point " << crash << " domain " << d;
  }
}

TEST(Collector, PositionsAndTheBatchAreWrittenTogether) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  append(log, session_lines(0));
  NoPolicies view;
  auto c = collector(log, dir.path(), view);
  c->load();
  c->poll();
  c->poll();
  EXPECT_EQ(c->current().sessions(), 1u);
  // Nothing on disk before the checkpoint: a crash now re-reads the lines.
  EXPECT_FALSE(fs::exists(dir.path() / "collector.spool"));
  const auto pending = c->checkpoint();
  ASSERT_EQ(pending.size(), 1u);
  std::ifstream in(dir.path() / "collector.spool");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string err;
  const auto s = decode_spool(ss.str(), &err);
  ASSERT_TRUE(s) << err;
  ASSERT_EQ(s->batches.size(), 1u);
  ASSERT_EQ(s->positions.size(), 1u);
  EXPECT_NE(s->positions[0].second.find(" " + std::to_string(fs::file_size(log)) + " "), std::string::npos)
      << s->positions[0].second;
  EXPECT_EQ(s->next_seq, 2u);
}

TEST(Spool, ACorruptSpoolIsAnErrorNotAFreshStart) {
  SpoolState s;
  s.next_seq = 7;
  s.positions = {{"postfix-log:/var/log/mail.log", "file 1 1 2 3 4\npostfix-state 1\n"}};
  s.batches = {{5, "batch\nwith lines\n"}, {6, ""}};
  const std::string text = encode_spool(s);
  std::string err;
  EXPECT_EQ(decode_spool(text, &err), s) << err;
  for (std::size_t cut : {std::size_t{0}, std::size_t{10}, text.size() / 2, text.size() - 1}) {
    EXPECT_FALSE(decode_spool(text.substr(0, cut), &err)) << cut;
  }
  std::string flipped = text;
  flipped[text.find("with")] = 'W';
  EXPECT_FALSE(decode_spool(flipped, &err));
  TempDir dir;
  { std::ofstream(dir.path() / "collector.spool") << "garbage"; }
  EXPECT_THROW(Spool(dir.path()).load(), std::runtime_error);
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

// The fleet's cache does not answer for a while: nothing is counted as no-policy-found, and
// once it answers every session is counted once, under its policy.
class FlakyView final : public PolicyView {
 public:
  int failures_left = 0;
  std::optional<CacheEntry> entry(const Domain& d) override {
    if (failures_left > 0) {
      --failures_left;
      throw PolicyUnavailable("redis down");
    }
    StoredPolicy sp;
    sp.policy.mode = Mode::enforce;
    sp.policy.max_age = Seconds{86400 * 365};
    sp.raw = "version: STSv1\nmode: enforce\nmx: mx." + d.str() + "\nmax_age: 31536000\n";
    sp.fetched_at = SysTime{Seconds{civil_to_unix(2026, 12, 1, 0, 0, 0)}};
    sp.expires_at = sp.fetched_at + sp.policy.max_age;
    sp.id = "1";
    CacheEntry e;
    e.policy = sp;
    return e;
  }
};

TEST(Collector, AnUnreadableCacheDefersTheLinesInsteadOfMiscountingThem) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  for (int i = 0; i < 6; ++i) append(log, session_lines(i));
  FlakyView view;
  view.failures_left = 3;
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(follower(log));
  CollectorOptions o;
  o.state_dir = dir.path();
  o.max_items_per_poll = 4;
  Collector c(std::move(sources), view, o);
  c.load();
  for (int i = 0; i < 20; ++i) c.poll();
  EXPECT_EQ(c.stats().policy_unavailable, 3u);
  EXPECT_EQ(c.current().sessions(), 6u);
  for (const auto& [k, e] : c.current().entries()) {
    EXPECT_EQ(e.policy.type, tlsrpt::PolicyType::sts) << k.domain;
    EXPECT_EQ(e.counts.success, 1u) << k.domain;
  }
  EXPECT_EQ(c.current().entries().size(), 6u);
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

TEST(Collector, DatagramsWaitInMemoryWhileTheCacheIsAway) {
  TempDir dir;
  const fs::path sock = dir.path() / "tlsrpt.sock";
  FlakyView view;
  view.failures_left = 1;
  SourceOptions so;
  so.clock = &the_clock();
  std::string err;
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(make_source("tlsrpt-socket:" + sock.string(), so, &err));
  ASSERT_TRUE(sources.back()) << err;
  CollectorOptions o;
  o.state_dir = dir.path();
  Collector c(std::move(sources), view, o);
  c.load();
  send_to(sock, R"({"dpv":"1","d":"a.example","policies":[{"policy-type":9,"t":0,"f":0}]})");
  c.poll();
  EXPECT_EQ(c.current().sessions(), 0u);
  EXPECT_EQ(c.stats().policy_unavailable, 1u);
  c.poll();
  ASSERT_EQ(c.current().sessions(), 1u);
  EXPECT_EQ(c.current().entries().begin()->second.policy.type, tlsrpt::PolicyType::sts);
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

TEST(Collector, AFailedSpoolWriteKeepsTheBatchForTheNextFlush) {
  TempDir dir;
  const fs::path log = dir.path() / "mail.log";
  append(log, session_lines(0));
  NoPolicies view;
  auto c = collector(log, dir.path() / "not-yet", view);  // the state directory is missing
  c->load();
  c->poll();
  c->poll();
  EXPECT_TRUE(c->checkpoint().empty());
  EXPECT_EQ(c->stats().checkpoint_errors, 1u);
  EXPECT_EQ(c->current().sessions(), 1u);  // still here
  fs::create_directories(dir.path() / "not-yet");
  const auto pending = c->checkpoint();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].second.sessions(), 1u);
  EXPECT_TRUE(c->current().empty());
  // The spool cannot be written when the fleet acknowledges: the batch stays pending.
  fs::remove_all(dir.path() / "not-yet");
  EXPECT_NO_THROW(c->acknowledge(pending[0].first));
  EXPECT_EQ(c->pending(), 1u);
  EXPECT_EQ(c->stats().checkpoint_errors, 2u);
  fs::create_directories(dir.path() / "not-yet");
  c->acknowledge(pending[0].first);
  EXPECT_EQ(c->pending(), 0u);
}

}  // namespace
}  // namespace mtasts::reportd
