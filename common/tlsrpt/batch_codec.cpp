// The text forms of codec.hpp and the spool codec of Batch (batch.hpp).
//
// A spooled batch, version 1 (one record per line, fields separated by one space, each
// field escaped by escape_field):
//
//   mta-sts-tlsrpt-batch 1 <entries> <sessions> <dropped-details>
//   e <day> <domain> <policy-key> <success> <failure> <details>
//   p <encode_policy(...)>
//   d <count> <encode_detail(...)>          (<details> lines)
//   ...                                     (<entries> records of e, p, d...)
//   end
//
// decode() checks every count against the others (sessions = sum of success and failure,
// each entry's failures = its details plus what it dropped, the dropped total), every key
// against its policy (policy-key = AppliedPolicy::key()), the order of entries and details
// (strictly ascending, as Batch keeps them), and every value as valid_detail/valid_policy
// do, so that a torn or tampered spool file is refused whole, never half-applied.
#include <charconv>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/sts/domain.hpp"
#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/codec.hpp"

namespace mtasts::tlsrpt {
namespace {

constexpr std::string_view kMagic = "mta-sts-tlsrpt-batch";
constexpr std::string_view kVersion = "1";

bool needs_escape(unsigned char c) { return c <= 0x20 || c == 0x7f || c == '%'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not canonical
}

// Splits on single spaces; every part must be non-empty (the empty value is "-").
std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto sp = s.find(' ', start);
    out.push_back(s.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  return out;
}

bool fail(std::string* error, std::string why) {
  if (error) *error = std::move(why);
  return false;
}

bool printable_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

bool no_line_breaks(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

// An mx-host of a policy: a host name, or "*." and one.
bool valid_mx(std::string_view m) {
  if (m.size() > 2 && m.substr(0, 2) == "*.") m.remove_prefix(2);
  return is_normal_host(m);
}

// Fields of one line after the tag, unescaped; nullopt unless each is canonical.
std::optional<std::vector<std::string>> unescape_all(const std::vector<std::string_view>& parts,
                                                     std::size_t from) {
  std::vector<std::string> out;
  out.reserve(parts.size() - from);
  for (std::size_t i = from; i < parts.size(); ++i) {
    auto v = unescape_field(parts[i]);
    if (!v) return std::nullopt;
    out.push_back(std::move(*v));
  }
  return out;
}

FailureDetail detail_from(Result r, std::vector<std::string>& f) {
  FailureDetail d;
  d.result = r;
  d.sending_mta_ip = std::move(f[1]);
  d.receiving_mx_hostname = std::move(f[2]);
  d.receiving_mx_helo = std::move(f[3]);
  d.receiving_ip = std::move(f[4]);
  d.additional_information = std::move(f[5]);
  d.failure_reason_code = std::move(f[6]);
  return d;
}

// Lines of a text, the last one possibly without '\n'.
class Lines {
 public:
  explicit Lines(std::string_view text) : rest_(text) {}
  std::optional<std::string_view> next() {
    if (rest_.empty()) return std::nullopt;
    const auto nl = rest_.find('\n');
    std::string_view line = rest_.substr(0, nl);
    rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
    ++number_;
    return line;
  }
  std::size_t number() const noexcept { return number_; }

 private:
  std::string_view rest_;
  std::size_t number_ = 0;
};

}  // namespace

std::string escape_field(std::string_view value) {
  if (value.empty()) return "-";
  if (value == "-") return "%2D";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (needs_escape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::optional<std::string> unescape_field(std::string_view text) {
  if (text == "-") return std::string();
  if (text.empty()) return std::nullopt;
  if (text == "%2D") return std::string("-");
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      const auto b = static_cast<unsigned char>(hi * 16 + lo);
      if (!needs_escape(b)) return std::nullopt;  // not canonical
      out += static_cast<char>(b);
      i += 2;
    } else if (needs_escape(c)) {
      return std::nullopt;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool is_normal_host(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : name) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

std::optional<std::uint64_t> parse_count(std::string_view text) noexcept {
  if (text.empty() || text.size() > 16) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || p != end || v > kMaxCount) return std::nullopt;
  return v;
}

bool valid_detail(const FailureDetail& d, std::string* why) {
  if (!is_failure(d.result) || static_cast<std::size_t>(d.result) >= kResultCount) return fail(why, "result-type");
  if (!d.sending_mta_ip.empty() && !is_ip_address(d.sending_mta_ip)) return fail(why, "sending-mta-ip");
  if (!d.receiving_ip.empty() && !is_ip_address(d.receiving_ip)) return fail(why, "receiving-ip");
  if (!d.receiving_mx_hostname.empty() && !is_normal_host(d.receiving_mx_hostname)) {
    return fail(why, "receiving-mx-hostname");
  }
  if (d.receiving_mx_helo.size() > kMaxHeloBytes || !printable_ascii(d.receiving_mx_helo)) {
    return fail(why, "receiving-mx-helo");
  }
  if (d.additional_information.size() > kMaxAdditionalInformation) return fail(why, "additional-information");
  if (d.failure_reason_code.size() > kMaxFailureReasonCode) return fail(why, "failure-reason-code");
  return true;
}

bool valid_policy(const AppliedPolicy& p, std::string* why) {
  if (p.strings.size() > kMaxPolicyStrings) return fail(why, "too many policy strings");
  if (p.mx_hosts.size() > kMaxMxHosts) return fail(why, "too many mx hosts");
  for (const auto& s : p.strings) {
    if (s.empty() || s.size() > kMaxPolicyStringBytes || !no_line_breaks(s)) return fail(why, "policy-string");
  }
  for (const auto& m : p.mx_hosts) {
    if (!valid_mx(m)) return fail(why, "mx-host");
  }
  if (p.type == PolicyType::no_policy_found && !(p.strings.empty() && p.mx_hosts.empty())) {
    return fail(why, "no-policy-found with a policy");
  }
  return true;
}

std::string encode_detail(const FailureDetail& d) {
  std::string out = to_string(d.result);
  for (const std::string* f : {&d.sending_mta_ip, &d.receiving_mx_hostname, &d.receiving_mx_helo, &d.receiving_ip,
                               &d.additional_information, &d.failure_reason_code}) {
    out += ' ';
    out += escape_field(*f);
  }
  return out;
}

std::optional<FailureDetail> decode_detail(std::string_view text, std::string* error) {
  const auto parts = split(text);
  if (parts.size() != 7) {
    fail(error, "a failure detail has 7 fields");
    return std::nullopt;
  }
  const auto r = parse_result(parts[0]);
  if (!r) {
    fail(error, "unknown result-type");
    return std::nullopt;
  }
  auto f = unescape_all(parts, 0);
  if (!f) {
    fail(error, "a field of a failure detail is not canonically escaped");
    return std::nullopt;
  }
  FailureDetail d = detail_from(*r, *f);
  std::string why;
  if (!valid_detail(d, &why)) {
    fail(error, "invalid " + why + " in a failure detail");
    return std::nullopt;
  }
  return d;
}

std::string encode_policy(const AppliedPolicy& p) {
  std::string out = to_string(p.type);
  out += ' ';
  out += std::to_string(p.strings.size());
  out += ' ';
  out += std::to_string(p.mx_hosts.size());
  for (const auto& s : p.strings) {
    out += ' ';
    out += escape_field(s);
  }
  for (const auto& m : p.mx_hosts) {
    out += ' ';
    out += escape_field(m);
  }
  return out;
}

std::optional<AppliedPolicy> decode_policy(std::string_view text, std::string* error) {
  if (text.size() > kMaxPolicyBytes) {
    fail(error, "policy too long");
    return std::nullopt;
  }
  const auto parts = split(text);
  if (parts.size() < 3) {
    fail(error, "a policy has at least 3 fields");
    return std::nullopt;
  }
  AppliedPolicy p;
  const auto type = parse_policy_type(parts[0]);
  const auto ns = parse_count(parts[1]);
  const auto nm = parse_count(parts[2]);
  if (!type || !ns || !nm || *ns > kMaxPolicyStrings || *nm > kMaxMxHosts || parts.size() != 3 + *ns + *nm) {
    fail(error, "malformed policy header");
    return std::nullopt;
  }
  p.type = *type;
  auto f = unescape_all(parts, 3);
  if (!f) {
    fail(error, "a policy field is not canonically escaped");
    return std::nullopt;
  }
  p.strings.assign(std::make_move_iterator(f->begin()), std::make_move_iterator(f->begin() + static_cast<std::ptrdiff_t>(*ns)));
  p.mx_hosts.assign(std::make_move_iterator(f->begin() + static_cast<std::ptrdiff_t>(*ns)), std::make_move_iterator(f->end()));
  std::string why;
  if (!valid_policy(p, &why)) {
    fail(error, "invalid policy: " + why);
    return std::nullopt;
  }
  return p;
}

std::string Batch::encode() const {
  // A detail whose values break the collectors' contract (valid_detail) is not written: its
  // sessions stay counted as failures, as dropped ones, so that decode() (which refuses such
  // values) never refuses a whole spooled batch for one bad log line.
  std::uint64_t invalid = 0;
  std::string body;
  for (const auto& [key, e] : entries_) {
    std::string lines;
    std::size_t kept = 0;
    for (const auto& [d, n] : e.counts.details) {
      if (!valid_detail(d, nullptr)) {
        invalid += n;
        continue;
      }
      lines += "d " + std::to_string(n) + ' ' + encode_detail(d) + '\n';
      ++kept;
    }
    body += "e " + escape_field(key.day) + ' ' + escape_field(key.domain) + ' ' + escape_field(key.policy_key) + ' ' +
            std::to_string(e.counts.success) + ' ' + std::to_string(e.counts.failure) + ' ' + std::to_string(kept) +
            '\n';
    body += "p " + encode_policy(e.policy) + '\n';
    body += lines;
  }
  std::string out;
  out += kMagic;
  out += ' ';
  out += kVersion;
  out += ' ' + std::to_string(entries_.size()) + ' ' + std::to_string(sessions_) + ' ' +
         std::to_string(dropped_details_ + invalid) + '\n';
  out += body;
  out += "end\n";
  return out;
}

std::optional<Batch> Batch::decode(std::string_view text, std::string* error) {
  Lines lines(text);
  auto bad = [&](const std::string& why) -> std::optional<Batch> {
    if (error) *error = "line " + std::to_string(lines.number()) + ": " + why;
    return std::nullopt;
  };
  if (text.size() > kMaxBatchBytes) return bad("batch larger than " + std::to_string(kMaxBatchBytes) + " bytes");
  auto header = lines.next();
  if (!header) return bad("empty");
  const auto h = split(*header);
  if (h.size() != 5 || h[0] != kMagic) return bad("not a batch");
  if (h[1] != kVersion) return bad("unknown batch version " + std::string(h[1].substr(0, 16)));
  const auto n_entries = parse_count(h[2]);
  const auto n_sessions = parse_count(h[3]);
  const auto n_dropped = parse_count(h[4]);
  if (!n_entries || !n_sessions || !n_dropped || *n_entries > kMaxBatchEntries) return bad("malformed header");

  Batch b;
  std::uint64_t sessions = 0, dropped = 0;
  for (std::uint64_t i = 0; i < *n_entries; ++i) {
    auto line = lines.next();
    if (!line) return bad("truncated");
    const auto e = split(*line);
    if (e.size() != 7 || e[0] != "e") return bad("expected an entry");
    auto key_fields = unescape_all({e.begin() + 1, e.begin() + 4}, 0);
    const auto success = parse_count(e[4]);
    const auto failure = parse_count(e[5]);
    const auto n_details = parse_count(e[6]);
    if (!key_fields || !success || !failure || !n_details || *n_details > kMaxDetailsPerEntry) {
      return bad("malformed entry");
    }
    BatchKey key{std::move((*key_fields)[0]), std::move((*key_fields)[1]), std::move((*key_fields)[2])};
    if (!day_start(key.day)) return bad("invalid day");
    if (!is_normal_host(key.domain) || key.domain.find('.') == std::string::npos) return bad("invalid policy domain");
    if (!b.entries_.empty() && !(b.entries_.rbegin()->first < key)) return bad("entries out of order");

    auto pline = lines.next();
    if (!pline || pline->substr(0, 2) != "p ") return bad("expected a policy");
    std::string why;
    auto policy = decode_policy(pline->substr(2), &why);
    if (!policy) return bad(why);
    if (policy->key() != key.policy_key) return bad("policy key does not match the policy");

    BatchEntry entry;
    entry.policy = std::move(*policy);
    entry.counts.success = *success;
    entry.counts.failure = *failure;
    std::uint64_t in_details = 0;
    for (std::uint64_t k = 0; k < *n_details; ++k) {
      auto dline = lines.next();
      if (!dline || dline->substr(0, 2) != "d ") return bad("expected a failure detail");
      const auto sp = dline->find(' ', 2);
      if (sp == std::string_view::npos) return bad("malformed failure detail");
      const auto count = parse_count(dline->substr(2, sp - 2));
      if (!count || *count == 0) return bad("invalid failure detail count");
      auto d = decode_detail(dline->substr(sp + 1), &why);
      if (!d) return bad(why);
      if (!entry.counts.details.empty() && !(entry.counts.details.rbegin()->first < *d)) {
        return bad("failure details out of order");
      }
      in_details += *count;
      if (in_details > entry.counts.failure) return bad("failure details exceed the failure count");
      entry.counts.details.emplace_hint(entry.counts.details.end(), std::move(*d), *count);
    }
    sessions += entry.counts.success + entry.counts.failure;
    dropped += entry.counts.failure - in_details;
    if (sessions > kMaxCount) return bad("counts too large");
    b.entries_.emplace_hint(b.entries_.end(), std::move(key), std::move(entry));
  }
  auto end = lines.next();
  if (!end || *end != "end") return bad("expected end");
  if (lines.next()) return bad("text after end");
  if (!text.empty() && text.back() != '\n') return bad("no newline after end");
  if (sessions != *n_sessions) return bad("session count does not match the entries");
  if (dropped != *n_dropped) return bad("dropped count does not match the entries");
  b.sessions_ = sessions;
  b.dropped_details_ = dropped;
  return b;
}

}  // namespace mtasts::tlsrpt
