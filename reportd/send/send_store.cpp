// The senders' claims and records in Redis; see send_store.hpp for the keys.
#include "reportd/send/send_store.hpp"

#include <algorithm>
#include <charconv>

namespace mtasts::reportd {
namespace {

constexpr std::string_view kReleaseScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
constexpr std::string_view kRenewScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
// KEYS: claim, state. ARGV: token, keep (seconds), then field/value pairs.
constexpr std::string_view kFencedWriteScript =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end "
    "redis.call('EXPIRE', KEYS[2], ARGV[2]) return 1";

constexpr std::size_t kMaxError = 300;

template <class T>
bool parse_num(std::string_view s, T* out) {
  if (s.empty() || s.size() > 20) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// The next space-separated word of `s` (moves `s` past it and one space).
std::string_view word(std::string_view* s) {
  const auto sp = s->find(' ');
  std::string_view w = s->substr(0, sp);
  s->remove_prefix(sp == std::string_view::npos ? s->size() : sp + 1);
  return w;
}

std::string bounded(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxError)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return out;
}

std::string px_of(std::chrono::milliseconds ttl) {
  return std::to_string(std::max<std::chrono::milliseconds::rep>(ttl.count(), 1));
}

}  // namespace

std::string RuaState::encode() const {
  switch (kind) {
    case Kind::sent: return "sent " + std::to_string(at);
    case Kind::failed:
      return "failed " + std::to_string(attempts) + " " + std::to_string(next) + " " + bounded(error);
    case Kind::gave_up: return "gave-up " + std::to_string(at) + " " + bounded(error);
    case Kind::pending: break;
  }
  return "pending";
}

RuaState RuaState::decode(std::string_view text) {
  RuaState r;
  std::string_view rest = text;
  const std::string_view kind = word(&rest);
  if (kind == "sent") {
    if (parse_num(word(&rest), &r.at) && rest.empty()) r.kind = Kind::sent;
  } else if (kind == "failed") {
    if (parse_num(word(&rest), &r.attempts) && parse_num(word(&rest), &r.next)) {
      r.kind = Kind::failed;
      r.error = bounded(rest);
    }
  } else if (kind == "gave-up") {
    if (parse_num(word(&rest), &r.at)) {
      r.kind = Kind::gave_up;
      r.error = bounded(rest);
    }
  }
  if (r.kind == Kind::pending) return RuaState{};
  return r;
}

SendStore::SendStore(Pool& pool, std::string prefix, std::chrono::seconds keep)
    : pool_(pool), prefix_(std::move(prefix)), keep_(keep) {}

std::string SendStore::state_key(std::string_view day, std::string_view domain) const {
  return prefix_ + "v1:rpt:sent:" + std::string(day) + ":" + std::string(domain);
}
std::string SendStore::claim_key(std::string_view day, std::string_view domain) const {
  return prefix_ + "v1:rpt:sending:" + std::string(day) + ":" + std::string(domain);
}

bool SendStore::claim(std::string_view day, std::string_view domain, const std::string& token,
                      std::chrono::milliseconds ttl) {
  const std::string key = claim_key(day, domain);
  const std::string px = px_of(ttl);
  return !pool_.lease()->command({"SET", key, token, "NX", "PX", px}).is_nil();
}

bool SendStore::renew(std::string_view day, std::string_view domain, const std::string& token,
                      std::chrono::milliseconds ttl) {
  const std::string key = claim_key(day, domain);
  const std::string px = px_of(ttl);
  return pool_.lease()->command({"EVAL", kRenewScript, "1", key, token, px}).integer() == 1;
}

void SendStore::release(std::string_view day, std::string_view domain, const std::string& token) {
  const std::string key = claim_key(day, domain);
  pool_.lease()->command({"EVAL", kReleaseScript, "1", key, token});
}

SendState SendStore::read(std::string_view day, std::string_view domain) {
  const std::string key = state_key(day, domain);
  const Reply r = pool_.lease()->command({"HGETALL", key});
  SendState s;
  for (std::size_t i = 0; i + 1 < r.size(); i += 2) {
    const std::string_view name = r.at(i).str();
    const std::string_view value = r.at(i + 1).str();
    if (name == "status") {
      if (value == "done" || value == "nowhere" || value == "skipped" || value == "gave-up") s.status = value;
    } else if (name == "first") {
      if (!parse_num(value, &s.first)) s.first = 0;
    } else if (name == "next") {
      if (!parse_num(value, &s.next)) s.next = 0;
    } else if (name == "attempts") {
      if (!parse_num(value, &s.attempts)) s.attempts = 0;
    } else if (name == "error") {
      s.error = bounded(value);
    } else if (name.starts_with("rua:") && name.size() <= 1100) {
      s.rua[std::string(name.substr(4))] = RuaState::decode(value);
    }
  }
  return s;
}

bool SendStore::write(std::string_view day, std::string_view domain, const std::string& token,
                      const std::vector<std::pair<std::string, std::string>>& fields) {
  const std::string claim = claim_key(day, domain);
  const std::string state = state_key(day, domain);
  const std::string keep = std::to_string(keep_.count());
  std::vector<std::string_view> argv{"EVAL", kFencedWriteScript, "2", claim, state, token, keep};
  for (const auto& [name, value] : fields) {
    argv.push_back(name);
    argv.push_back(value);
  }
  return pool_.lease()->command(argv).integer() == 1;
}

std::vector<RedisProbe> send_store_probes(std::string_view prefix) {
  using M = RedisProbe::Mode;
  const std::string claim = std::string(prefix) + "v1:rpt:sending:0000-00-00:check-redis.invalid";
  const std::string state = std::string(prefix) + "v1:rpt:sent:0000-00-00:check-redis.invalid";
  return {{M::direct, {"SET", claim, "check-redis", "NX", "PX", "1000"}},
          {M::direct, {"EVAL", std::string(kRenewScript), "1", claim, "check-redis", "1000"}},
          {M::direct, {"EVAL", std::string(kFencedWriteScript), "2", claim, state, "check-redis", "1", "status", "probe"}},
          {M::direct, {"HGETALL", state}},
          {M::direct, {"EVAL", std::string(kReleaseScript), "1", claim, "check-redis"}}};
}

std::vector<std::string> send_store_commands() {
  return {"SET", "EVAL", "HGETALL", "GET", "PEXPIRE", "DEL", "HSET", "EXPIRE"};
}

}  // namespace mtasts::reportd
