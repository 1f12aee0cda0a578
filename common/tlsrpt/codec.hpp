// Text forms of the RFC 8460 values that leave the process: a failure detail and an applied
// policy as one line of space-separated, %-escaped fields (the spool codec of Batch and the
// fleet's aggregates in Redis use the same form), and the checks that a value read back
// (from a spool file, from Redis) is one this library could have produced. Pure: no I/O.
//
// Promises: encode is canonical (one text per value), decode accepts only canonical text
// (so that two texts never name the same detail), and decode(encode(v)) == v for every value
// that passes the valid_* checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/tlsrpt/model.hpp"

namespace mtasts::tlsrpt {

// Bounds of what a batch or an aggregate may hold (decode rejects more).
inline constexpr std::size_t kMaxPolicyStrings = 1024;
inline constexpr std::size_t kMaxPolicyStringBytes = 8192;
inline constexpr std::size_t kMaxMxHosts = 256;
inline constexpr std::size_t kMaxPolicyBytes = 64 * 1024;  // a policy's encoded text
inline constexpr std::size_t kMaxHeloBytes = 255;
inline constexpr std::size_t kMaxBatchBytes = 64 * 1024 * 1024;  // a spooled batch
inline constexpr std::size_t kMaxBatchEntries = 100000;
inline constexpr std::size_t kMaxDetailsPerEntry = 100000;

// One field: bytes <= 0x20, 0x7f and '%' as %XX (upper-case hex); the empty string as "-",
// and a value that is exactly "-" as "%2D".
std::string escape_field(std::string_view value);
std::optional<std::string> unescape_field(std::string_view text);

// "<result> <sending-mta-ip> <receiving-mx-hostname> <receiving-mx-helo> <receiving-ip>
//  <additional-information> <failure-reason-code>"
std::string encode_detail(const FailureDetail& d);
std::optional<FailureDetail> decode_detail(std::string_view text, std::string* error);

// "<policy-type> <n strings> <n mx> <string>... <mx>..."
std::string encode_policy(const AppliedPolicy& p);
std::optional<AppliedPolicy> decode_policy(std::string_view text, std::string* error);

// What a collector is promised to hand on (README.md): a failure result; IP addresses in
// text form or ""; host names normalised (lower case A-labels, no trailing dot) or ""; HELO
// printable ASCII; free text within its bound. `why` says which field is wrong.
bool valid_detail(const FailureDetail& d, std::string* why);
bool valid_policy(const AppliedPolicy& p, std::string* why);
// A policy domain or MX host name as the model holds it (Domain's normal form).
bool is_normal_host(std::string_view name);

// A count as text: decimal, no sign, no leading zero, at most 2^53 (what a Lua number holds).
std::optional<std::uint64_t> parse_count(std::string_view text) noexcept;
inline constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 53;

}  // namespace mtasts::tlsrpt
