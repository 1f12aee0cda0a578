// `mta-sts-ctl query DOMAIN`: one live discovery of one domain with exactly the fetcher's code
// (cached/discovery.hpp) and rules, reported step by step. Exit 0 a policy was found, 1 the
// domain has no policy, 3 discovery failed (DNS failure, fetch failure, invalid policy).
#pragma once

#include <string_view>

#include "common/daemon/config.hpp"
#include "ctl/commands.hpp"

namespace mtasts::ctl {

Output query(const CtlConfig& cfg, std::string_view domain, bool json);

}  // namespace mtasts::ctl
