// The RFC 8460 report (common/tlsrpt/report.hpp): the exact JSON of a small report, the fields
// common parsers require, the date-range, report ids, and the memory a large report takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/report.hpp"

// Bytes allocated through operator new in this test binary, now and at the peak: the
// memory test reads the peak a report adds over what existed before it.
namespace {
std::atomic<std::size_t> g_live{0};
std::atomic<std::size_t> g_peak{0};
void note_alloc(std::size_t n) {
  const auto now = g_live.fetch_add(n, std::memory_order_relaxed) + n;
  auto peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
}  // namespace

// The size is kept in a header before the block, so that delete knows what to subtract.
void* operator new(std::size_t n) {
  void* p = std::malloc(n + 16);
  if (!p) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  note_alloc(n);
  return static_cast<char*>(p) + 16;
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept {
  if (!p) return;
  char* base = static_cast<char*>(p) - 16;
  g_live.fetch_sub(*reinterpret_cast<std::size_t*>(base), std::memory_order_relaxed);
  std::free(base);
}
#pragma GCC diagnostic pop
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

namespace mtasts::tlsrpt {
namespace {

ReportMeta meta(std::string domain = "example.com") {
  ReportMeta m;
  m.organization_name = "Example Org";
  m.contact_info = "tlsrpt@sender.example";
  m.day = "2026-12-07";
  m.policy_domain = domain;
  m.report_id = report_id(m.day, m.policy_domain, "sender.example");
  return m;
}

TEST(TlsrptReport, ExactJsonOfASmallReport) {
  PolicyCounts sts;
  sts.policy.type = PolicyType::sts;
  sts.policy.strings = {"version: STSv1", "mode: enforce", "mx: mx1.example.com", "max_age: 86400"};
  sts.policy.mx_hosts = {"mx1.example.com"};
  sts.counts.success = 100;
  sts.counts.failure = 3;
  FailureDetail d;
  d.result = Result::certificate_host_mismatch;
  d.sending_mta_ip = "192.0.2.25";
  d.receiving_mx_hostname = "mx1.example.com";
  d.receiving_ip = "198.51.100.1";
  d.additional_information = "certificate \"names\" other.example";
  sts.counts.details[d] = 2;  // one more failure was over the cap: counted, not detailed

  PolicyCounts none;  // no-policy-found: policy-domain is there all the same
  none.counts.success = 7;

  const std::string want =
      R"({"organization-name":"Example Org",)"
      R"("date-range":{"start-datetime":"2026-12-07T00:00:00Z","end-datetime":"2026-12-07T23:59:59Z"},)"
      R"("contact-info":"tlsrpt@sender.example",)"
      R"("report-id":")" + meta().report_id + R"(",)"
      R"("policies":[)"
      R"({"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx1.example.com","max_age: 86400"],)"
      R"("policy-domain":"example.com","mx-host":["mx1.example.com"]},)"
      R"("summary":{"total-successful-session-count":100,"total-failure-session-count":3},)"
      R"("failure-details":[{"result-type":"certificate-host-mismatch","sending-mta-ip":"192.0.2.25",)"
      R"("receiving-mx-hostname":"mx1.example.com","receiving-ip":"198.51.100.1","failed-session-count":2,)"
      R"("additional-information":"certificate \"names\" other.example"}]},)"
      R"({"policy":{"policy-type":"no-policy-found","policy-domain":"example.com"},)"
      R"("summary":{"total-successful-session-count":7,"total-failure-session-count":0},"failure-details":[]}]})";
  EXPECT_EQ(report_json(meta(), {sts, none}), want);
}

TEST(TlsrptReport, TextThatIsNotUtf8BecomesReplacementCharacters) {
  PolicyCounts pc;
  pc.counts.failure = 1;
  FailureDetail d;
  d.result = Result::starttls_not_supported;
  d.additional_information = "caf\xE9 \xC3\xA9 \x01";
  pc.counts.details[d] = 1;
  const std::string json = report_json(meta(), {pc});
  EXPECT_NE(json.find("\"additional-information\":\"caf\xEF\xBF\xBD \xC3\xA9 \\u0001\""), std::string::npos) << json;
}

TEST(TlsrptReport, RangeAndIds) {
  const auto r = report_range("2026-12-07");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->begin, 1796601600);
  EXPECT_EQ(r->end, 1796601600 + 86399);
  EXPECT_FALSE(report_range("2026-12-32"));
  EXPECT_THROW(report_json(ReportMeta{}, {}), std::invalid_argument);

  const std::string id = report_id("2026-12-07", "example.com", "sender.example");
  EXPECT_EQ(id, report_id("2026-12-07", "example.com", "sender.example"));
  EXPECT_EQ(id.rfind("20261207.example.com.", 0), 0u) << id;
  EXPECT_EQ(id.size(), std::string("20261207.example.com.").size() + 16 + std::string("@sender.example").size());
  EXPECT_EQ(id.substr(id.size() - 15), "@sender.example") << id;
  EXPECT_EQ(report_id("2026-12-07", "example.com", "Sender..Example.").substr(id.size() - 15), "@sender.example");
  EXPECT_EQ(report_id("2026-12-07", "example.com", "").find('@'), std::string::npos);
  EXPECT_NE(id, report_id("2026-12-08", "example.com", "sender.example"));
  EXPECT_NE(id, report_id("2026-12-07", "example.org", "sender.example"));
  EXPECT_NE(id, report_id("2026-12-07", "example.com", "other.example"));
  // A dot-atom "@" dot-atom (a msg-id), whatever the input.
  const std::string odd = report_id("2026-12-07", "a!b/c..d", "x <y>@z\r\n");
  EXPECT_EQ(odd.find(".."), std::string::npos) << odd;
  EXPECT_EQ(std::count(odd.begin(), odd.end(), '@'), 1) << odd;
  for (char c : odd) {
    EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '@') << odd;
  }
}

TEST(TlsrptReport, SubmitterAndMeta) {
  EXPECT_EQ(submitter_of("tlsrpt@Sender.Example"), "sender.example");
  EXPECT_EQ(submitter_of("mailto:tlsrpt@sender.example?subject=x"), "sender.example");
  EXPECT_EQ(submitter_of("https://Reports.Sender.example:8443/tlsrpt"), "reports.sender.example");
  EXPECT_EQ(submitter_of("Example Org NOC"), "");
  Reporter who{"Example Org", "tlsrpt@sender.example", ""};
  const ReportMeta m = report_meta(who, "2026-12-07", "example.com");
  EXPECT_EQ(m.report_id, report_id("2026-12-07", "example.com", "sender.example"));
  EXPECT_EQ(m.organization_name, "Example Org");
  EXPECT_EQ(m.policy_domain, "example.com");
  who.submitter = "other.example";
  EXPECT_EQ(report_meta(who, "2026-12-07", "example.com").report_id, report_id("2026-12-07", "example.com", "other.example"));
}

// Issue 20: a report for 1,000,000 sessions and 10,000 distinct failure details is built in
// bounded memory. Its size grows with the details, never with the session count; the peak
// allocation while building it is a small multiple of the text it returns.
TEST(TlsrptReport, AMillionSessionsAndTenThousandDetailsInBoundedMemory) {
  constexpr std::size_t kDetails = 10000;
  constexpr std::uint64_t kSessions = 1000000;
  AppliedPolicy policy;
  policy.type = PolicyType::sts;
  policy.strings = {"version: STSv1", "mode: enforce", "mx: *.example.com", "max_age: 604800"};
  policy.mx_hosts = {"*.example.com"};

  // The batch a collector builds from a million sessions: its size follows the details.
  const std::size_t before_batch = g_live.load();
  g_peak.store(before_batch);
  Batch batch;
  for (std::uint64_t i = 0; i < kSessions; ++i) {
    Session s;
    s.time = 1796601600 + static_cast<std::int64_t>(i % 86400);
    s.domain = "example.com";
    s.result = i % 4 == 0 ? Result::success : Result::certificate_expired;
    s.receiving_mx_hostname = "mx" + std::to_string((i / 4) % kDetails) + ".example.com";
    s.receiving_ip = "192.0.2.1";
    s.sending_mta_ip = "198.51.100.25";
    s.additional_information = "certificate has expired";
    batch.add(s, policy, kDetails);
  }
  const std::size_t batch_peak = g_peak.load() - before_batch;
  ASSERT_EQ(batch.sessions(), kSessions);
  ASSERT_EQ(batch.dropped_details(), 0u);
  const BatchEntry& entry = batch.entries().begin()->second;
  ASSERT_EQ(entry.counts.details.size(), kDetails);

  const std::vector<PolicyCounts> input{PolicyCounts{entry.policy, entry.counts}};
  const std::size_t before = g_live.load();
  g_peak.store(before);
  const std::string json = report_json(meta(), input);
  const std::size_t peak = g_peak.load() - before;
  std::printf("[ figures  ] batch of %llu sessions, %zu details: peak %zu bytes allocated\n",
              static_cast<unsigned long long>(kSessions), kDetails, batch_peak);
  std::printf("[ figures  ] report JSON %zu bytes; peak %zu bytes allocated while building it\n", json.size(), peak);
  EXPECT_NE(json.find("\"total-failure-session-count\":750000"), std::string::npos);
  EXPECT_LT(peak, 4 * json.size() + (1u << 20));  // the string's growth: at most 3 times its size
  EXPECT_LT(batch_peak, std::size_t{32} << 20);
}

}  // namespace
}  // namespace mtasts::tlsrpt
