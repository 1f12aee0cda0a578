// TEST DOUBLE of tlsrpt::Batch::encode()/decode(), linked into the collector's unit tests only
// while the real codec (common/tlsrpt/batch_codec.cpp, written by the aggregation work) is not
// on this branch; collect.cmake drops this file as soon as that one exists. It round-trips a
// batch through the public API only (entries() and add()), which is all the spool tests need.
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "common/tlsrpt/batch.hpp"

namespace mtasts::tlsrpt {
namespace {

std::string esc(std::string_view s) {
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

std::string unesc(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() + 0 && i + 2 <= s.size() - 1) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> f;
  std::size_t at = 0;
  while (true) {
    const auto tab = line.find('\t', at);
    f.push_back(unesc(line.substr(at, tab == std::string::npos ? std::string::npos : tab - at)));
    if (tab == std::string::npos) break;
    at = tab + 1;
  }
  return f;
}

}  // namespace

std::string Batch::encode() const {
  std::string out = "batch-double 1\n";
  for (const auto& [k, e] : entries_) {
    out += "E\t" + esc(k.day) + "\t" + esc(k.domain) + "\t" + to_string(e.policy.type) + "\t" +
           std::to_string(e.counts.success) + "\t" + std::to_string(e.counts.failure) + "\n";
    for (const auto& s : e.policy.strings) out += "S\t" + esc(s) + "\n";
    for (const auto& m : e.policy.mx_hosts) out += "M\t" + esc(m) + "\n";
    for (const auto& [d, n] : e.counts.details) {
      out += "D\t" + std::string(to_string(d.result)) + "\t" + esc(d.sending_mta_ip) + "\t" +
             esc(d.receiving_mx_hostname) + "\t" + esc(d.receiving_mx_helo) + "\t" + esc(d.receiving_ip) + "\t" +
             esc(d.additional_information) + "\t" + esc(d.failure_reason_code) + "\t" + std::to_string(n) + "\n";
    }
    out += "X\n";
  }
  out += "end " + std::to_string(sessions_) + " " + std::to_string(dropped_details_) + "\n";
  return out;
}

std::optional<Batch> Batch::decode(std::string_view text, std::string* error) {
  const auto fail = [&](const char* why) -> std::optional<Batch> {
    if (error) *error = why;
    return std::nullopt;
  };
  std::istringstream in{std::string(text)};
  std::string line;
  if (!std::getline(in, line) || line != "batch-double 1") return fail("not a test-double batch");
  Batch b;
  bool ended = false;
  while (std::getline(in, line)) {
    if (line.rfind("end ", 0) == 0) {
      ended = true;
      break;
    }
    auto f = split(line);
    if (f.size() != 6 || f[0] != "E") return fail("bad entry line");
    AppliedPolicy p;
    const auto pt = parse_policy_type(f[3]);
    if (!pt) return fail("bad policy type");
    p.type = *pt;
    const std::uint64_t success = std::stoull(f[4]);
    const std::uint64_t failure = std::stoull(f[5]);
    std::vector<std::pair<FailureDetail, std::uint64_t>> details;
    while (std::getline(in, line) && line != "X") {
      auto g = split(line);
      if (g.size() == 2 && g[0] == "S") p.strings.push_back(g[1]);
      else if (g.size() == 2 && g[0] == "M") p.mx_hosts.push_back(g[1]);
      else if (g.size() == 9 && g[0] == "D") {
        FailureDetail d;
        const auto r = parse_result(g[1]);
        if (!r) return fail("bad result");
        d.result = *r;
        d.sending_mta_ip = g[2];
        d.receiving_mx_hostname = g[3];
        d.receiving_mx_helo = g[4];
        d.receiving_ip = g[5];
        d.additional_information = g[6];
        d.failure_reason_code = g[7];
        details.emplace_back(d, std::stoull(g[8]));
      } else {
        return fail("bad line");
      }
    }
    const auto start = day_start(f[1]);
    if (!start) return fail("bad day");
    Session s;
    s.time = *start;
    s.domain = f[2];
    for (std::uint64_t i = 0; i < success; ++i) b.add(s, p);
    std::uint64_t detailed = 0;
    for (const auto& [d, n] : details) {
      Session fs = s;
      fs.result = d.result;
      fs.sending_mta_ip = d.sending_mta_ip;
      fs.receiving_mx_hostname = d.receiving_mx_hostname;
      fs.receiving_mx_helo = d.receiving_mx_helo;
      fs.receiving_ip = d.receiving_ip;
      fs.additional_information = d.additional_information;
      fs.failure_reason_code = d.failure_reason_code;
      for (std::uint64_t i = 0; i < n; ++i) b.add(fs, p);
      detailed += n;
    }
    Session undetailed = s;
    undetailed.result = Result::validation_failure;
    for (std::uint64_t i = detailed; i < failure; ++i) b.add(undetailed, p, 0);
  }
  if (!ended) return fail("truncated");
  return b;
}

}  // namespace mtasts::tlsrpt
