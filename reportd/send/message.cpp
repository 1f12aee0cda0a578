// Gzip, base64 and the report message; see message.hpp.
#include "reportd/send/message.hpp"

#include <zlib.h>

#include <array>
#include <chrono>
#include <cstdio>

#include "common/sts/domain.hpp"
#include "common/tlsrpt/model.hpp"
#include "common/tlsrpt/report.hpp"
#include "common/util/random.hpp"

namespace mtasts::reportd {
namespace {

bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_atext(char c) noexcept {
  return is_alnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}
bool is_dot_atom(std::string_view s) noexcept {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.' ? prev == '.' : !is_atext(c)) return false;
    prev = c;
  }
  return true;
}
bool is_host(std::string_view s) {
  for (char c : s)
    if (!is_alnum(c) && c != '-' && c != '.') return false;
  DomainParse d = Domain::parse(s);
  return d.domain && d.domain->str() == s;
}
void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}

}  // namespace

std::string gzip(std::string_view data) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper (RFC 1952), not zlib's.
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: deflateInit2 failed");
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(data.size())) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const auto written = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish");
  out.resize(written);
  return out;
}

std::string base64_lines(std::string_view data) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(data.size() * 4 / 3 + data.size() / 57 + 8);
  std::size_t col = 0;
  auto put = [&](char c) {
    out += c;
    if (++col == 76) {
      out += '\n';
      col = 0;
    }
  };
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const auto a = static_cast<unsigned char>(data[i]), b = static_cast<unsigned char>(data[i + 1]),
               c = static_cast<unsigned char>(data[i + 2]);
    put(alphabet[a >> 2]);
    put(alphabet[((a & 3) << 4) | (b >> 4)]);
    put(alphabet[((b & 15) << 2) | (c >> 6)]);
    put(alphabet[c & 63]);
  }
  if (i + 1 == data.size()) {
    const auto a = static_cast<unsigned char>(data[i]);
    put(alphabet[a >> 2]);
    put(alphabet[(a & 3) << 4]);
    put('=');
    put('=');
  } else if (i + 2 == data.size()) {
    const auto a = static_cast<unsigned char>(data[i]), b = static_cast<unsigned char>(data[i + 1]);
    put(alphabet[a >> 2]);
    put(alphabet[((a & 3) << 4) | (b >> 4)]);
    put(alphabet[(b & 15) << 2]);
    put('=');
  }
  if (col != 0) out += '\n';
  return out;
}

std::string report_filename(std::string_view submitter, std::string_view policy_domain, std::string_view day,
                            std::string_view unique_id) {
  // The day as the report's date-range has it: [00:00:00Z, 23:59:59Z].
  const auto range = tlsrpt::report_range(day);
  if (!range) throw std::invalid_argument("not a day: YYYY-MM-DD expected");
  for (char c : unique_id) require(is_alnum(c), "unique-id must be letters and digits");
  std::string name = std::string(submitter) + "!" + std::string(policy_domain) + "!" + std::to_string(range->begin) +
                     "!" + std::to_string(range->end);
  if (!unique_id.empty()) name += "!" + std::string(unique_id);
  return name + ".json.gz";
}

std::string unique_id_of(std::string_view report_id) {
  // FNV-1a, 64 bits: deterministic, so every retry of a report carries the same name.
  std::uint64_t h = 14695981039346656037ull;
  for (char c : report_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool is_report_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 250) return false;
  const auto at = id.rfind('@');
  if (at == std::string_view::npos) return is_dot_atom(id);
  return is_dot_atom(id.substr(0, at)) && is_dot_atom(id.substr(at + 1));
}

bool is_plain_address(std::string_view address) noexcept {
  if (address.size() > 254) return false;
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || address.front() == '-') return false;
  try {
    return is_dot_atom(address.substr(0, at)) && is_host(address.substr(at + 1));
  } catch (...) {
    return false;
  }
}

std::string rfc5322_date(SysTime t) {
  static constexpr std::array<const char*, 7> wd{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> mon{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::weekday w{day};
  const std::chrono::hh_mm_ss hms{t - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d +0000", wd[w.c_encoding()],
                static_cast<unsigned>(ymd.day()), mon[static_cast<unsigned>(ymd.month()) - 1],
                static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string build_report_mail(const ReportMail& m) {
  require(is_plain_address(m.from), "sender-address is not a plain address");
  require(is_plain_address(m.to), "rua address is not a plain address");
  require(is_host(m.submitter), "submitter is not a host name");
  require(is_host(m.policy_domain), "policy domain is not a host name");
  require(is_report_id(m.report_id), "report-id is not a msg-id");
  const std::string filename = report_filename(m.submitter, m.policy_domain, m.day, unique_id_of(m.report_id));
  const std::string message_id = m.message_id.empty() ? random_hex(16) + "@" + m.submitter : m.message_id;
  require(is_report_id(message_id) && message_id.find('@') != std::string::npos, "Message-ID is not a msg-id");
  const std::string boundary = m.boundary.empty() ? "tlsrpt-" + random_hex(16) : m.boundary;
  for (char c : boundary) require(is_alnum(c) || c == '-' || c == '_' || c == '.', "bad MIME boundary");
  require(!boundary.empty() && boundary.size() <= 70, "bad MIME boundary");

  bool org_ok = !m.organization.empty() && m.organization.size() <= 200;
  for (char c : m.organization) org_ok = org_ok && c >= 0x20 && c < 0x7f;

  std::string s;
  s.reserve(m.gz.size() * 4 / 3 + 2048);
  s += "From: " + m.from + "\n";
  s += "To: " + m.to + "\n";
  // RFC 8460 section 5.3.1; folded as in the RFC's example.
  s += "Subject: Report Domain: " + m.policy_domain + "\n Submitter: " + m.submitter + "\n Report-ID: <" +
       m.report_id + ">\n";
  s += "Date: " + rfc5322_date(m.date) + "\n";
  s += "Message-ID: <" + message_id + ">\n";
  s += "MIME-Version: 1.0\n";
  s += "TLS-Report-Domain: " + m.policy_domain + "\n";
  s += "TLS-Report-Submitter: " + m.submitter + "\n";
  // RFC 8689 section 5: deliver the report even where TLS fails (that is what it reports).
  s += "TLS-Required: No\n";
  s += "Auto-Submitted: auto-generated\n";
  s += "Content-Type: multipart/report; report-type=\"tlsrpt\";\n boundary=\"" + boundary + "\"\n";
  s += "\n";
  s += "This is a multipart message in MIME format.\n";
  s += "\n--" + boundary + "\n";
  s += "Content-Type: text/plain; charset=\"us-ascii\"\n";
  s += "Content-Transfer-Encoding: 7bit\n\n";
  s += "This is an aggregate TLS report (RFC 8460) from " + m.submitter;
  if (org_ok) s += " (" + m.organization + ")";
  s += "\nfor the policy domain " + m.policy_domain + ", covering " + m.day +
       " 00:00:00Z to 24:00:00Z.\nThe report (RFC 8460 JSON, gzipped) is attached.\n";
  s += "\n--" + boundary + "\n";
  s += "Content-Type: application/tlsrpt+gzip\n";
  s += "Content-Transfer-Encoding: base64\n";
  s += "Content-Disposition: attachment;\n filename=\"" + filename + "\"\n\n";
  s += base64_lines(m.gz);
  s += "\n--" + boundary + "--\n";
  return s;
}

}  // namespace mtasts::reportd
