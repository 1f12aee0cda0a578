#include "reportd/collect/log_line.hpp"

#include <chrono>
#include <iterator>

#include "common/sts/domain.hpp"

namespace mtasts::reportd {
namespace {

bool digits(std::string_view s, std::size_t at, std::size_t n, int& value) noexcept {
  if (at + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  value = v;
  return true;
}

int month_of(std::string_view m) noexcept {
  static constexpr std::string_view kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == kMonths[i]) return i + 1;
  }
  return 0;
}

bool valid_clock(int h, int mi, int s) noexcept { return h < 24 && mi < 60 && s < 61; }

// "Dec  8 00:20:40 " / "Dec 08 00:20:40 ": 16 characters.
std::optional<std::int64_t> traditional(std::string_view s, const Clock* clock, std::int64_t offset,
                                        std::size_t& used) noexcept {
  if (s.size() < 16 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' || s[15] != ' ') return std::nullopt;
  const int month = month_of(s.substr(0, 3));
  if (month == 0) return std::nullopt;
  int day = 0;
  if (s[4] == ' ') {
    if (!digits(s, 5, 1, day)) return std::nullopt;
  } else if (!digits(s, 4, 2, day)) {
    return std::nullopt;
  }
  int h = 0, mi = 0, sec = 0;
  if (!digits(s, 7, 2, h) || !digits(s, 10, 2, mi) || !digits(s, 13, 2, sec)) return std::nullopt;
  if (day < 1 || day > 31 || !valid_clock(h, mi, sec)) return std::nullopt;
  const std::int64_t now = clock ? clock->now().time_since_epoch().count()
                                 : std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
  const auto today = std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(
      std::chrono::sys_seconds{std::chrono::seconds{now}})};
  int year = static_cast<int>(today.year());
  std::int64_t t = civil_to_unix(year, month, day, h, mi, sec) - offset;
  if (t > now + 86400) t = civil_to_unix(year - 1, month, day, h, mi, sec) - offset;
  used = 16;
  return t;
}

// "2026-12-08T00:20:40[.ffffff](Z|+HH:MM|-HH:MM) "
std::optional<std::int64_t> rfc3339(std::string_view s, std::size_t& used) noexcept {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (s.size() < 21 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return std::nullopt;
  if (!digits(s, 0, 4, y) || !digits(s, 5, 2, mo) || !digits(s, 8, 2, d) || !digits(s, 11, 2, h) ||
      !digits(s, 14, 2, mi) || !digits(s, 17, 2, sec))
    return std::nullopt;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || !valid_clock(h, mi, sec)) return std::nullopt;
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 9) return std::nullopt;
  }
  std::int64_t offset = 0;
  if (i < s.size() && s[i] == 'Z') {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (i + 6 > s.size() || s[i + 3] != ':' || !digits(s, i + 1, 2, oh) || !digits(s, i + 4, 2, om) || oh > 23 ||
        om > 59)
      return std::nullopt;
    offset = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i >= s.size() || s[i] != ' ') return std::nullopt;
  used = i + 1;
  return civil_to_unix(y, mo, d, h, mi, sec) - offset;
}

}  // namespace

std::int64_t civil_to_unix(int year, int month, int day, int hour, int minute, int second) noexcept {
  // Days from the civil date (H. Hinnant's algorithm).
  const int y = year - (month <= 2 ? 1 : 0);
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned mp = static_cast<unsigned>(month > 2 ? month - 3 : month + 9);
  const unsigned doy = (153 * mp + 2) / 5 + static_cast<unsigned>(day) - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
  return days * 86400 + hour * 3600 + minute * 60 + second;
}

std::optional<LogLine> split_log_line(std::string_view line, const Clock* clock, std::int64_t utc_offset) {
  LogLine out;
  std::size_t used = 0;
  std::optional<std::int64_t> t;
  if (!line.empty() && line[0] >= '0' && line[0] <= '9') {
    t = rfc3339(line, used);
  } else {
    t = traditional(line, clock, utc_offset, used);
  }
  if (!t) return std::nullopt;
  out.time = *t;
  std::string_view rest = line.substr(used);
  const auto sp = rest.find(' ');
  if (sp == std::string_view::npos || sp == 0) return std::nullopt;
  out.host = rest.substr(0, sp);
  rest.remove_prefix(sp + 1);
  // "prog[pid]: "
  const auto colon = rest.find(": ");
  if (colon == std::string_view::npos || colon < 4 || rest[colon - 1] != ']') return std::nullopt;
  const std::string_view tag = rest.substr(0, colon);
  const auto lb = tag.rfind('[');
  if (lb == std::string_view::npos || lb == 0) return std::nullopt;
  if (tag.size() - lb < 3) return std::nullopt;
  std::uint64_t pid = 0;
  for (std::size_t i = lb + 1; i + 1 < tag.size(); ++i) {
    const char c = tag[i];
    if (c < '0' || c > '9') return std::nullopt;
    pid = pid * 10 + static_cast<std::uint64_t>(c - '0');
    if (pid > 0xffffffffULL) return std::nullopt;
  }
  out.program = tag.substr(0, lb);
  out.pid = static_cast<std::uint32_t>(pid);
  out.message = rest.substr(colon + 2);
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}
bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool contains(std::string_view s, std::string_view needle) noexcept { return s.find(needle) != std::string_view::npos; }

bool split_host_ip(std::string_view text, std::string_view& host, std::string_view& ip) noexcept {
  const auto lb = text.find('[');
  if (lb == std::string_view::npos || lb == 0) return false;
  const auto rb = text.find(']', lb);
  if (rb == std::string_view::npos || rb == lb + 1) return false;
  host = text.substr(0, lb);
  ip = text.substr(lb + 1, rb - lb - 1);
  // What may follow: nothing or ":port".
  std::string_view rest = text.substr(rb + 1);
  if (!rest.empty()) {
    if (rest[0] != ':' || rest.size() < 2) return false;
    for (std::size_t i = 1; i < rest.size(); ++i) {
      if (rest[i] < '0' || rest[i] > '9') return false;
    }
  }
  for (char c : ip) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
                    c == ':';
    if (!ok) return false;
  }
  return ip.size() <= 45;
}

std::string normal_host(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return {};
  std::string out;
  out.reserve(host.size());
  for (char c : host) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return {};
    out.push_back(c);
  }
  return out;
}

std::string_view address_domain(std::string_view address) noexcept {
  if (!address.empty() && address.front() == '<') address.remove_prefix(1);
  const auto gt = address.find('>');
  if (gt != std::string_view::npos) address = address.substr(0, gt);
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return address.substr(at + 1);
}

const std::string* DomainNormalizer::normalize(std::string_view raw) {
  auto it = cache_.find(raw);
  if (it != cache_.end()) return it->second.empty() ? nullptr : &it->second;
  if (cache_.size() >= kMaxCached) cache_.clear();
  std::string value;
  if (!raw.empty() && raw.size() <= 255) {
    const DomainParse p = Domain::parse(raw);
    if (p.domain) value = p.domain->str();
  }
  auto [pos, inserted] = cache_.emplace(std::string(raw), std::move(value));
  (void)inserted;
  return pos->second.empty() ? nullptr : &pos->second;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_queue_id(std::string_view s) noexcept {
  if (s.size() < 5 || s.size() > 20) return false;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (!ok) return false;
  }
  return true;
}

void ReportMail::add(std::string_view qid, std::int64_t time) {
  if (qids_.size() >= kMax) {
    for (auto it = qids_.begin(); it != qids_.end();) it = it->second < time - kLife ? qids_.erase(it) : std::next(it);
    if (qids_.size() >= kMax) qids_.clear();
  }
  qids_[std::string(qid)] = time;
}

std::string ReportMail::save(std::string_view tag) const {
  std::string out = std::string(tag) + " 1\n";
  for (const auto& [qid, t] : qids_) out += "report " + qid + " " + std::to_string(t) + "\n";
  return out;
}

void ReportMail::restore(std::string_view tag, std::string_view text) {
  const std::string head = std::string(tag) + " 1\n";
  if (!starts_with(text, head)) return;
  text.remove_prefix(head.size());
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!starts_with(line, "report ")) continue;
    line.remove_prefix(7);
    const auto sp = line.find(' ');
    if (sp == std::string_view::npos || !is_queue_id(line.substr(0, sp))) continue;
    std::int64_t t = 0;
    bool ok = sp + 1 < line.size() && line.size() - sp < 20;
    for (char c : line.substr(sp + 1)) {
      if (c < '0' || c > '9') ok = false;
      else t = t * 10 + (c - '0');
    }
    if (ok && qids_.size() < kMax) qids_[std::string(line.substr(0, sp))] = t;
  }
}

std::string state_field(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '\t' || c == '\n' || c == '\r') {
      static const char* hex = "0123456789abcdef";
      out += '%';
      out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += hex[static_cast<unsigned char>(c) & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> state_fields(std::string_view line) {
  std::vector<std::string> out(1);
  const auto hexval = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\t') {
      out.emplace_back();
    } else if (c == '%' && i + 2 < line.size() + 0 && i + 2 <= line.size() - 1 && hexval(line[i + 1]) >= 0 &&
               hexval(line[i + 2]) >= 0) {
      out.back() += static_cast<char>(hexval(line[i + 1]) * 16 + hexval(line[i + 2]));
      i += 2;
    } else {
      out.back() += c;
    }
  }
  return out;
}

bool state_int(const std::string& s, long max, long& out) {
  if (s.empty() || s.size() > 19) return false;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

// One outcome of the saved state: time, result, MX, IP, sending IP, information, code, TLS,
// domain (9 fields).
std::string state_outcome(const Outcome& o) {
  const tlsrpt::Session& s = o.session;
  return std::to_string(s.time) + "\t" + std::to_string(static_cast<int>(s.result)) + "\t" +
         state_field(s.receiving_mx_hostname) + "\t" + state_field(s.receiving_ip) + "\t" +
         state_field(s.sending_mta_ip) + "\t" + state_field(s.additional_information) + "\t" +
         state_field(s.failure_reason_code) + "\t" + std::to_string(static_cast<int>(o.tls)) + "\t" +
         state_field(s.domain);
}

bool state_outcome_from(const std::vector<std::string>& f, std::size_t at, Outcome& o) {
  if (f.size() != at + 9) return false;
  long t = 0, res = 0, tls = 0;
  if (!state_int(f[at], 0x7fffffffffffL, t) || !state_int(f[at + 1], static_cast<long>(tlsrpt::kResultCount) - 1, res) ||
      !state_int(f[at + 7], 5, tls))
    return false;
  o.session.time = t;
  o.session.result = static_cast<tlsrpt::Result>(res);
  o.session.receiving_mx_hostname = normal_host(f[at + 2]);
  o.session.receiving_ip = clean_text(f[at + 3], 45);
  o.session.sending_mta_ip = clean_text(f[at + 4], 45);
  o.session.additional_information = clean_text(f[at + 5], tlsrpt::kMaxAdditionalInformation);
  o.session.failure_reason_code = clean_text(f[at + 6], tlsrpt::kMaxFailureReasonCode);
  o.tls = static_cast<TlsSeen>(tls);
  o.session.domain = normal_host(f[at + 8]);
  return true;
}


std::string clean_text(std::string_view text, std::size_t max) {
  std::string out;
  const std::size_t n = text.size() < max ? text.size() : max;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[i];
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out;
}

}  // namespace mtasts::reportd
