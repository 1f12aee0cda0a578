// Envelope recipient -> MTA-STS policy domain (RFC 8461 section 3.1: the domain exactly as
// addressed, never a parent). A pure function over untrusted text, as the MTA hands it to the
// milter: with or without angle brackets, possibly with a source route, a quoted local part
// that contains '@', an address literal, upper case, a trailing dot or U-labels (SMTPUTF8).
// Promise: a returned Domain is normalized (mtasts::Domain); anything else is "no domain"
// with a short reason fit for a log line.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/sts/domain.hpp"

namespace mtasts::milter {

struct RecipientDomain {
  std::optional<Domain> domain;  // set when the recipient has a policy domain
  std::string reason;            // why not, when domain is empty
  bool address_literal = false;  // user@[192.0.2.1]: recognised, never has a policy
};

RecipientDomain recipient_domain(std::string_view envelope_recipient);

}  // namespace mtasts::milter
