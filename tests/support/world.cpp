// Test support: World, one object per test that publishes MTA-STS domains into the loopback
// DNS and HTTPS servers (TXT, the policy host's address, its virtual host and certificate) and
// keeps them consistent when a test changes a domain midway.
#include "tests/support/world.hpp"

#include <unistd.h>

#include <exception>
#include <stdexcept>

namespace mtasts::test {

namespace fs = std::filesystem;

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

std::string txt_name(const std::string& domain) { return "_mta-sts." + domain; }
std::string policy_host(const std::string& domain) { return "mta-sts." + domain; }

}  // namespace

std::string World::unique_loopback_ip() {
  // a and b from the pid keep parallel test processes apart; both start at 2 so that the
  // 127.0.x.x and 127.1.x.x addresses other tools like are never taken.
  static std::atomic<unsigned> counter{0};
  const unsigned c = 1 + (counter++ % 250);
  const auto v = static_cast<unsigned>(::getpid()) % (250u * 250u);
  return "127." + std::to_string(2 + v / 250) + "." + std::to_string(2 + v % 250) + "." + std::to_string(c);
}

std::string World::policy(const std::string& mode, const std::vector<std::string>& mx, long max_age, bool crlf) {
  const std::string eol = crlf ? "\r\n" : "\n";
  std::string p = "version: STSv1" + eol + "mode: " + mode + eol;
  for (const auto& m : mx) p += "mx: " + m + eol;
  p += "max_age: " + std::to_string(max_age) + eol;
  return p;
}

namespace {
fs::path choose_dir(const WorldOptions& o, std::optional<TempDir>& tmp) {
  if (!o.dir.empty()) {
    fs::create_directories(o.dir);
    return fs::absolute(o.dir);
  }
  tmp.emplace("mtasts-world");
  return tmp->path();
}
}  // namespace

World::World(WorldOptions options)
    : dir_(choose_dir(options, tmp_)),
      ip_(options.ip.empty() ? unique_loopback_ip() : options.ip),
      ca_(options.ca ? *options.ca : TestCa::shared()),
      dns_(ip_, options.dns_port, dir_ / "dns"),
      https_(ip_, ca_, dir_ / "https", options.https_port),
      want_redis_(options.redis) {}

World::~World() {
  try {
    stop();
  } catch (...) {
  }
}

World::Batch::~Batch() noexcept(false) {
  if (--w_.batch_depth_ == 0 && std::uncaught_exceptions() == 0) w_.apply();
}

RedisServer& World::redis() {
  if (!redis_) throw std::logic_error("World::redis(): not started, or WorldOptions::redis is false");
  return *redis_;
}

void World::publish(const std::string& domain, const DomainSpec& spec) {
  const std::string tname = txt_name(domain);
  dns_.remove(tname);
  dns_.set_failure(tname, spec.txt_failure);
  if (spec.txt_cname) {
    dns_.add_cname(tname, *spec.txt_cname);
    dns_.set_txt(*spec.txt_cname, spec.txt);
  } else {
    dns_.set_txt(tname, spec.txt);
  }
  dns_.remove(domain);
  for (std::size_t i = 0; i < spec.mx.size(); ++i) dns_.add_mx(domain, spec.mx[i], static_cast<int>(10 * (i + 1)));
  dns_.remove(policy_host(domain));
  if (spec.policy_host) dns_.add_host(policy_host(domain), spec.policy_host_ip.empty() ? ip_ : spec.policy_host_ip);
  dns_dirty_ = true;
}

void World::add_domain(const std::string& domain, DomainSpec spec) {
  if (domains_.count(domain)) remove_domain(domain);
  publish(domain, spec);
  if (spec.policy_host) {
    https_.add_host(VirtualHost{policy_host(domain), spec.cert, spec.behaviour, spec.policy, spec.redirect_to});
    https_dirty_ = true;
  }
  domains_[domain] = std::move(spec);
  apply();
}

void World::add_domains(const std::vector<std::string>& domains, const DomainSpec& spec) {
  std::vector<VirtualHost> hosts;
  hosts.reserve(domains.size());
  for (const auto& d : domains) {
    if (domains_.count(d)) remove_domain(d);
    DomainSpec s = spec;
    s.policy = replace_all(s.policy, "{domain}", d);
    for (auto& m : s.mx) m = replace_all(m, "{domain}", d);
    for (auto& r : s.txt)
      for (auto& str : r.strings) str = replace_all(str, "{domain}", d);
    if (s.txt_cname) s.txt_cname = replace_all(*s.txt_cname, "{domain}", d);
    publish(d, s);
    if (s.policy_host) hosts.push_back(VirtualHost{policy_host(d), s.cert, s.behaviour, s.policy, s.redirect_to});
    domains_[d] = std::move(s);
  }
  if (!hosts.empty()) {
    https_.add_hosts(hosts);
    https_dirty_ = true;
  }
  apply();
}

void World::remove_domain(const std::string& domain) {
  auto it = domains_.find(domain);
  if (it == domains_.end()) return;
  dns_.remove(txt_name(domain));
  if (it->second.txt_cname) dns_.remove(*it->second.txt_cname);
  dns_.remove(domain);
  dns_.remove(policy_host(domain));
  dns_dirty_ = true;
  if (it->second.policy_host) {
    https_.remove_host(policy_host(domain));
    https_dirty_ = true;
  }
  domains_.erase(it);
  apply();
}

const DomainSpec& World::spec(const std::string& domain) const { return domains_.at(domain); }

void World::set_txt(const std::string& domain, std::vector<TxtRecord> txt) {
  auto& s = domains_.at(domain);
  s.txt = std::move(txt);
  dns_.set_txt(s.txt_cname ? *s.txt_cname : txt_name(domain), s.txt);
  dns_dirty_ = true;
  apply();
}

void World::set_txt_failure(const std::string& domain, DnsFailure f) {
  domains_.at(domain).txt_failure = f;
  dns_.set_failure(txt_name(domain), f);
  dns_dirty_ = true;
  apply();
}

void World::set_policy(const std::string& domain, const std::string& body) {
  auto& s = domains_.at(domain);
  s.policy = body;
  if (s.policy_host) https_.set_body(policy_host(domain), body);
}

void World::set_behaviour(const std::string& domain, Behaviour b) {
  auto& s = domains_.at(domain);
  s.behaviour = b;
  if (!s.policy_host) return;
  https_.set_behaviour(policy_host(domain), b);
  https_dirty_ = true;
  apply();
}

void World::set_cert(const std::string& domain, CertKind k) {
  auto& s = domains_.at(domain);
  s.cert = k;
  if (!s.policy_host) return;
  https_.set_cert(policy_host(domain), k);
  https_dirty_ = true;
  apply();
}

void World::apply() {
  if (!started_ || batch_depth_ > 0) return;
  if (dns_dirty_) dns_.apply();
  dns_dirty_ = false;
  if (https_dirty_) https_.apply();
  https_dirty_ = false;
}

void World::start() {
  if (started_) return;
  if (want_redis_ && !redis_) redis_ = std::make_unique<RedisServer>();
  dns_.start();
  https_.start();
  started_ = true;
  dns_dirty_ = https_dirty_ = false;
}

void World::stop() {
  https_.stop();
  dns_.stop();
  redis_.reset();
  started_ = false;
}

}  // namespace mtasts::test
