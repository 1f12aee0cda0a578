// libtlsrpt's datagram (protocol version "1", github.com/sys4/libtlsrpt): one delivery
// request of an MTA built with TLSRPT support (Postfix >= 3.10), as JSON:
//   {"dpv":"1","d":DOMAIN,"pr":TLSRPT-RECORD,"policies":[{"policy-type":1|2|9,
//    "policy-domain":..,"policy-string":[..],"mx-host":[..],
//    "failure-details":[{"c":201..306,"s":SENDING-IP,"n":MX,"h":HELO,"r":MX-IP,"a":INFO,"f":CODE}],
//    "t":FAILURES,"f":0|1}]}
// Each failure detail is one failed session (one MX tried); a policy that finished with
// success ("f":0) adds one successful session; a failed one without details one
// validation-failure. Unknown fields are ignored; everything else is checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "reportd/collect/outcome.hpp"

namespace mtasts::reportd {

inline constexpr std::size_t kMaxDatagramBytes = 65536;

// Appends the datagram's sessions (time = `now`, the receive time) to `out`; false with
// `error` set, and nothing appended, when it is not a valid protocol-1 datagram.
bool parse_datagram(std::string_view bytes, std::int64_t now, const std::string& sending_ip,
                    std::vector<Outcome>& out, std::string* error);

// The RFC 8460 result of a libtlsrpt failure code (201..306); validation-failure when unknown.
tlsrpt::Result datagram_result(std::int64_t code) noexcept;

}  // namespace mtasts::reportd
