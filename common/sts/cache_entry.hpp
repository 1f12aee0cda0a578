// What the fleet knows about one policy domain, as stored in Redis (one key per domain),
// with a versioned codec and the RFC 8461 freshness rules as pure functions of "now".
//
// Rules (RFC 8461 sections 3.3, 5.1, 10.2 and RFC-NOTES.md "Caching and refresh"):
// - A policy is usable while now < expires_at. expires_at = (last time DNS confirmed the same
//   id, or the fetch time) + max_age. max_age 0: usable for the current decision only
//   (expires_at == fetched_at), cached for nothing.
// - A DNS or HTTPS failure, a missing or invalid TXT record never erase a usable policy; they
//   only set `failure`. A fetched `mode: none` replaces any policy at once.
// - After a failure for a given (domain, TXT id) no retry before failure.retry_after, which is
//   at least 5 minutes after the failure.
// - Bodies are re-fetched at least every `refresh_interval` (default 24 h) even with an
//   unchanged id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/util/clock.hpp"
#include "common/sts/policy.hpp"

namespace mtasts {

inline constexpr Seconds kMinFailureBackoff{300};
// A domain is never due again sooner than this after its last completed check, so that a
// policy with max_age 0 (usable for nothing once cached) does not make a fetch loop.
inline constexpr Seconds kMinRecheck{60};


struct StoredPolicy {
  Policy policy;
  std::string raw;   // the policy file exactly as fetched (for TLS-RPT and `cache show`)
  std::string id;    // the TXT id this policy was fetched under
  SysTime fetched_at{};   // when the body was last fetched
  SysTime expires_at{};   // last confirmation + max_age
  friend bool operator==(const StoredPolicy&, const StoredPolicy&) = default;
};

// A policy whose max_age is at most kMinRecheck expires before any check could confirm its
// id, so every check would be an HTTPS fetch. Such a policy (max_age 0 included) is known but
// nothing cacheable: the milter treats it as no policy and the fetcher looks at the domain
// again after negative_ttl, like a negative entry.
inline bool short_lived(const StoredPolicy& p) noexcept { return p.policy.max_age <= kMinRecheck; }

enum class FailureKind {
  dns,             // SERVFAIL, timeout, network error on a DNS query
  txt_invalid,     // several STSv1 records, or a malformed one
  fetch,           // HTTPS: connect/TLS/certificate/status/type/size/timeout
  policy_invalid,  // the body did not parse as a policy
};
const char* to_string(FailureKind k) noexcept;
std::optional<FailureKind> failure_kind_from_string(std::string_view s) noexcept;

struct FailureState {
  FailureKind kind = FailureKind::fetch;
  std::string error;     // human-readable last error
  std::string txt_id;    // the TXT id the failed attempt saw ("" if DNS failed)
  SysTime first_at{};    // first failure of this streak
  SysTime last_at{};     // latest failure
  SysTime retry_after{}; // no new attempt before this
  std::uint32_t count = 0;  // consecutive failures
  friend bool operator==(const FailureState&, const FailureState&) = default;
};

struct CacheEntry {
  std::optional<StoredPolicy> policy;  // last good policy, kept through failures
  // Negative entry: discovery found no policy (no STSv1 TXT record, or NXDOMAIN) and no
  // usable policy was cached. Valid until no_policy_until.
  std::optional<SysTime> no_policy_until;
  std::optional<FailureState> failure;
  SysTime checked_at{};    // when discovery last completed (success or not)
  SysTime next_refresh{};  // when a fetcher should look at this domain again
  friend bool operator==(const CacheEntry&, const CacheEntry&) = default;
};

// ---- codec ----------------------------------------------------------------------------
// The codec version this build writes and reads in full, and the oldest reader version its
// entries allow (written as the `reader` field when older than the writer). Production builds
// never define these macros: only the rolling-upgrade test builds this same codec a second time
// as the next version (tests/integration/roll), so that today's programs meet a real next
// reader and writer.
#ifndef MTASTS_CODEC_VERSION
#define MTASTS_CODEC_VERSION 1
#endif
#ifndef MTASTS_CODEC_READER
#define MTASTS_CODEC_READER MTASTS_CODEC_VERSION
#endif
inline constexpr int kCodecVersion = MTASTS_CODEC_VERSION;
inline constexpr int kCodecReader = MTASTS_CODEC_READER;
static_assert(kCodecReader >= 1 && kCodecReader <= kCodecVersion, "a writer cannot need a reader newer than itself");
// The first codec version whose entries may carry `reader`.
inline constexpr int kReaderFieldSince = 2;
// Bounds of what a decoded entry may carry. Anyone with write access to Redis can store an
// entry, so the decoder refuses what no fetcher writes: a policy body over the parser's limit
// (escaping at most triples it), an error text longer than a fetcher's, and more mx patterns
// than a 64 KiB policy file can hold.
inline constexpr std::size_t kMaxEncodedBytes = 3 * kMaxPolicyBytes + 16384;
inline constexpr std::size_t kMaxFailureErrorBytes = 4096;
inline constexpr std::size_t kMaxStoredMx = kMaxPolicyBytes / 8;  // "mx: a.b\n" is 8 octets
std::string encode(const CacheEntry& e);
struct DecodeResult {
  std::optional<CacheEntry> entry;
  std::string error;  // unknown version, truncated, bad field, broken invariant
  int version = 0;    // the writer's codec version when the first line says it; 0: unreadable
};
// Every successful decode passes through check_invariants(): a decoded entry is one the
// fetcher could have written.
DecodeResult decode(std::string_view bytes);

// The TXT id grammar of RFC 8461 section 3.1: 1*32(ALPHA / DIGIT).
bool valid_policy_id(std::string_view id) noexcept;
// The invariants the parsers and the refresh rules guarantee for every entry they produce:
// ids in the TXT grammar (a failure's id may be empty: DNS failed before any id), enforce and
// testing with at least one mx, max_age within the clamp, fetched_at + max_age <= expires_at,
// a failure streak with count >= 1 and first <= last <= retry, bounded sizes. Returns "" when
// they hold, otherwise what is wrong (for the log).
std::string check_invariants(const CacheEntry& e);

// ---- freshness rules (pure) -------------------------------------------------------------
bool policy_usable(const CacheEntry& e, SysTime now) noexcept;

// What the milter decides from an entry at time `now`.
enum class Verdict {
  enforce,    // usable policy, mode enforce
  testing,    // usable policy, mode testing
  none,       // usable policy, mode none
  no_policy,  // negative entry, a failure with no usable policy, or an expired short_lived()
              // policy (never cacheable): deliver as if none
  unknown,    // nothing usable and nothing known (e.g. policy expired, not yet refreshed)
};
const char* to_string(Verdict v) noexcept;
Verdict verdict(const CacheEntry& e, SysTime now) noexcept;

struct RefreshRules {
  Seconds refresh_interval{86400};   // re-check DNS and re-fetch the body at least this often
  Seconds negative_ttl{3600};        // life of a negative entry
  Seconds min_backoff{kMinFailureBackoff};
  Seconds max_backoff{3600};
  Seconds expiry_margin{3600};       // refresh this long before a policy expires
};

// May a fetcher attempt discovery now (not in failure backoff)? A TXT id different from the
// failed one may be tried at once only when `txt_id` is given and differs.
bool may_retry(const CacheEntry& e, SysTime now) noexcept;
bool may_retry(const CacheEntry& e, SysTime now, std::string_view txt_id) noexcept;
// Is the domain due for a refresh (missing/expiring policy, body older than the interval,
// negative entry expired)?
bool refresh_due(const CacheEntry& e, SysTime now, const RefreshRules& r) noexcept;
// When the next refresh should happen, before jitter: the earliest of fetched_at +
// refresh_interval, expires_at - min(expiry_margin, max_age / 2) (checked_at + negative_ttl
// for a short_lived() policy) and no_policy_until (now when none applies), but not before
// checked_at + kMinRecheck nor failure->retry_after.
SysTime next_refresh_time(const CacheEntry& e, SysTime now, const RefreshRules& r) noexcept;
// Backoff for the n-th consecutive failure: min_backoff * 2^(n-1), capped at max_backoff,
// never below 5 minutes.
Seconds failure_backoff(std::uint32_t consecutive, const RefreshRules& r) noexcept;
// TTL to set on the Redis key at `now` (>= 1 s): long enough to cover the policy's expiry,
// the negative entry, the backoff and the next refresh, plus `retention` so that the id and
// failure history outlive a short outage of the fetchers.
Seconds redis_ttl(const CacheEntry& e, SysTime now, Seconds retention) noexcept;

}  // namespace mtasts
