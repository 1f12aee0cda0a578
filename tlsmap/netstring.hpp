// Netstrings (D. J. Bernstein's "LEN:PAYLOAD,"), the framing of the Postfix and Sendmail
// socketmap protocol. The reader is a pure state machine fed with whatever bytes arrived: it
// never holds more than one partial payload, rejects a length over the limit as soon as the
// length is read (so a client cannot make us buffer an oversized request), and stops after
// each complete netstring so that the caller decides how many requests to take in.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mtasts::tlsmap {

// Postfix's socketmap client limits requests to 10,000 bytes (and replies to 100,000).
inline constexpr std::size_t kMaxRequest = 10000;

class NetstringReader {
 public:
  enum class State { need_more, complete, error };

  explicit NetstringReader(std::size_t max_payload = kMaxRequest) : max_(max_payload) {}

  // Consumes bytes from `in` until one netstring is complete, the input is malformed, or
  // `in` runs out; returns how many bytes it took. Nothing is consumed once complete (call
  // take()) or in error (sticky: the connection is to be closed).
  std::size_t feed(std::string_view in);
  State state() const noexcept { return state_; }
  // The payload of the complete netstring; the reader is then ready for the next one.
  std::string take();
  // Why the input is not a netstring (for the log).
  const std::string& error() const noexcept { return error_; }
  // True when no byte of a next netstring has been read (a clean place to close).
  bool idle() const noexcept { return phase_ == Phase::length && digits_ == 0 && state_ == State::need_more; }

 private:
  enum class Phase { length, payload, comma };
  std::size_t fail(std::string why, std::size_t consumed);

  std::size_t max_;
  State state_ = State::need_more;
  Phase phase_ = Phase::length;
  std::size_t length_ = 0;
  std::size_t digits_ = 0;
  std::string payload_;
  std::string error_;
};

// "LEN:PAYLOAD,".
std::string netstring(std::string_view payload);

}  // namespace mtasts::tlsmap
