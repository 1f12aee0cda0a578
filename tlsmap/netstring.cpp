// Netstring reader; see netstring.hpp.
#include "tlsmap/netstring.hpp"

#include <algorithm>

namespace mtasts::tlsmap {

std::size_t NetstringReader::fail(std::string why, std::size_t consumed) {
  state_ = State::error;
  error_ = std::move(why);
  payload_.clear();
  payload_.shrink_to_fit();
  return consumed;
}

std::size_t NetstringReader::feed(std::string_view in) {
  if (state_ != State::need_more) return 0;
  std::size_t i = 0;
  while (i < in.size()) {
    switch (phase_) {
      case Phase::length: {
        const char c = in[i];
        if (c >= '0' && c <= '9') {
          // Leading zeros are harmless but bounded: a length is at most a few digits.
          if (++digits_ > 10) return fail("netstring length too long", i + 1);
          length_ = length_ * 10 + static_cast<std::size_t>(c - '0');
          if (length_ > max_)
            return fail("netstring longer than " + std::to_string(max_) + " bytes", i + 1);
          ++i;
        } else if (c == ':') {
          if (digits_ == 0) return fail("netstring without a length", i + 1);
          ++i;
          phase_ = Phase::payload;
          payload_.clear();
          payload_.reserve(length_);
        } else {
          return fail("bad netstring length", i + 1);
        }
        break;
      }
      case Phase::payload: {
        const std::size_t n = std::min(length_ - payload_.size(), in.size() - i);
        payload_.append(in.substr(i, n));
        i += n;
        if (payload_.size() == length_) phase_ = Phase::comma;
        break;
      }
      case Phase::comma:
        if (in[i] != ',') return fail("netstring not terminated by ','", i + 1);
        ++i;
        state_ = State::complete;
        return i;
    }
  }
  // A zero-length payload completes on its ':'.
  if (phase_ == Phase::payload && length_ == 0) phase_ = Phase::comma;
  return i;
}

std::string NetstringReader::take() {
  std::string out = std::move(payload_);
  payload_.clear();
  state_ = State::need_more;
  phase_ = Phase::length;
  length_ = 0;
  digits_ = 0;
  return out;
}

std::string netstring(std::string_view payload) {
  std::string out = std::to_string(payload.size());
  out.reserve(out.size() + payload.size() + 2);
  out += ':';
  out += payload;
  out += ',';
  return out;
}

}  // namespace mtasts::tlsmap
