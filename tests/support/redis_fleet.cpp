#include "tests/support/redis_fleet.hpp"

#include "tests/support/redis_acl.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <stdexcept>

namespace mtasts::test {

namespace {

// Ports the kernel hands out for 127.0.0.1, all held open together so that they differ, then
// released for the servers (a tiny race with other processes, as any port-0 scheme has).
std::vector<int> free_ports(std::size_t n) {
  std::vector<int> fds, ports;
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket");
    fds.push_back(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("bind");
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

// The shipped ACL users, the default user off, with a password of the fleet's for each.
std::string shipped_acl() {
  return acl_user_lines(source_dir() / "etc" / "redis-acl.conf",
                        [](const std::string& role) { return RedisFleet::password_of("mta-sts-" + role); }, true);
}

// Every Redis server may become a replica (the primary after a failover): each one knows the
// replication user.
std::string server_conf(int port, const std::string& dir, const std::string& acl_file) {
  return "bind 127.0.0.1\nport " + std::to_string(port) + "\nsave \"\"\nappendonly no\ndir " + dir +
         "\ninclude " + acl_file + "\nmasteruser mta-sts-replication\nmasterauth " +
         RedisFleet::password_of("mta-sts-replication") + "\n";
}

}  // namespace

RedisFleet::RedisFleet(int replicas, const std::string& server_lines) : ports_(free_ports(4 + static_cast<std::size_t>(std::max(1, replicas)))) {
  const std::string d = dir_.path().string();
  const std::size_t n_servers = ports_.size() - 3;
  for (std::size_t i = 0; i < n_servers; ++i) std::filesystem::create_directories(dir_ / ("r" + std::to_string(i)));
  const std::string acl = (dir_ / "mta-sts-acl.conf").string();
  write_file(acl, shipped_acl());
  write_file(dir_ / "primary.conf", server_conf(ports_[0], d + "/r0", acl) + server_lines);
  primary_ = std::make_unique<Process>(std::vector<std::string>{"redis-server", (dir_ / "primary.conf").string()},
                                       dir_ / "primary.log");
  if (!wait_until([&] { return cli(ports_[0], {"PING"}) == "PONG"; }, std::chrono::seconds(5)))
    throw std::runtime_error("primary did not start: " + (dir_ / "primary.log").string());
  for (std::size_t i = 1; i < n_servers; ++i) {
    const int port = replica_ports()[i - 1];
    const std::string name = i == 1 ? "replica" : "replica" + std::to_string(i);
    write_file(dir_ / (name + ".conf"), server_conf(port, d + "/r" + std::to_string(i), acl) + server_lines + "replicaof 127.0.0.1 " +
                                            std::to_string(ports_[0]) + "\n");
    replicas_.push_back(std::make_unique<Process>(
        std::vector<std::string>{"redis-server", (dir_ / (name + ".conf")).string()}, dir_ / (name + ".log")));
    // In sync before the sentinels start: they learn of replicas from the primary's INFO,
    // which they read at once and then only every 10 s.
    if (!wait_until([&] { return cli(port, {"INFO", "replication"}).find("master_link_status:up") != std::string::npos; },
                    std::chrono::seconds(10)))
      throw std::runtime_error("replica did not sync: " + (dir_ / (name + ".log")).string());
  }
  for (int i = 0; i < 3; ++i) {
    const auto conf = dir_ / ("sentinel" + std::to_string(i) + ".conf");
    write_file(conf, "bind 127.0.0.1\nport " + std::to_string(ports_[2 + static_cast<std::size_t>(i)]) +
                         "\ndir " + d + "\nsentinel monitor " + kMasterName + " 127.0.0.1 " +
                         std::to_string(ports_[0]) + " 2\nsentinel down-after-milliseconds " + kMasterName +
                         " 1000\nsentinel failover-timeout " + kMasterName + " 5000\nsentinel auth-user " +
                         kMasterName + " mta-sts-sentinel\nsentinel auth-pass " + kMasterName + " " +
                         password_of("mta-sts-sentinel") + "\n");
    sentinels_.push_back(std::make_unique<Process>(std::vector<std::string>{"redis-sentinel", conf.string()},
                                                   dir_ / ("sentinel" + std::to_string(i) + ".log")));
  }
  const bool ready = wait_until(
      [&] {
        for (int i = 0; i < 3; ++i) {
          const int port = ports_[2 + static_cast<std::size_t>(i)];
          const std::string known_replicas = cli(port, {"SENTINEL", "replicas", kMasterName});
          const std::string others = cli(port, {"SENTINEL", "sentinels", kMasterName});
          for (int r : replica_ports())
            if (known_replicas.find(std::to_string(r)) == std::string::npos) return false;
          std::size_t known = 0;
          for (int j = 0; j < 3; ++j)
            if (j != i && others.find(std::to_string(ports_[2 + static_cast<std::size_t>(j)])) != std::string::npos) ++known;
          if (known != 2) return false;
        }
        return true;
      },
      std::chrono::seconds(15));
  if (!ready) throw std::runtime_error("sentinels did not discover each other: " + d);
}

RedisFleet::~RedisFleet() {
  for (auto& s : sentinels_) s->stop();
  for (auto& r : replicas_) r->stop();
  if (primary_) {
    primary_->signal(SIGCONT);  // a paused primary cannot take its SIGTERM
    primary_->stop();
  }
}

std::vector<int> RedisFleet::replica_ports() const {
  std::vector<int> out{ports_[1]};
  for (std::size_t i = 5; i < ports_.size(); ++i) out.push_back(ports_[i]);
  return out;
}

std::vector<std::string> RedisFleet::sentinel_addresses() const {
  std::vector<std::string> out;
  for (std::size_t i = 2; i < 5; ++i) out.push_back("127.0.0.1:" + std::to_string(ports_[i]));
  return out;
}

std::vector<std::string> RedisFleet::redis_lines(const std::string& acl_user) const {
  std::vector<std::string> out;
  for (const auto& a : sentinel_addresses()) out.push_back("sentinel = " + a);
  out.push_back(std::string("master-name = ") + kMasterName);
  if (!acl_user.empty()) {
    out.push_back("user = " + acl_user);
    out.push_back("password = " + password_of(acl_user));
  }
  return out;
}

std::string RedisFleet::password_of(const std::string& acl_user) { return "fleet-secret-of-" + acl_user; }

std::string RedisFleet::cli(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port)};
  if (port == ports_[0] || std::ranges::count(replica_ports(), port) > 0) {
    argv.insert(argv.end(), {"--user", "mta-sts-admin", "--pass", password_of("mta-sts-admin"), "--no-auth-warning"});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out = run(argv, std::chrono::seconds(5)).out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string RedisFleet::master_per_sentinel(int i) {
  const std::string out = cli(ports_[2 + static_cast<std::size_t>(i)], {"SENTINEL", "get-master-addr-by-name", kMasterName});
  const auto nl = out.find('\n');
  if (nl == std::string::npos) return "";
  return out.substr(0, nl) + ":" + out.substr(nl + 1);
}

void RedisFleet::kill_primary() {
  if (primary_) primary_->kill9();
  primary_.reset();
}

void RedisFleet::pause_primary() {
  if (primary_) primary_->signal(SIGSTOP);
}

void RedisFleet::resume_primary() {
  if (primary_) primary_->signal(SIGCONT);
}

int RedisFleet::wait_promoted(std::chrono::milliseconds timeout) {
  int promoted = 0;
  wait_until(
      [&] {
        for (int r : replica_ports()) {
          const std::string a = "127.0.0.1:" + std::to_string(r);
          bool all = true;
          for (int i = 0; i < 3 && all; ++i) all = master_per_sentinel(i) == a;
          if (all && cli(r, {"ROLE"}).starts_with("master")) {
            promoted = r;
            return true;
          }
        }
        return false;
      },
      timeout);
  return promoted;
}

bool RedisFleet::wait_failover(std::chrono::milliseconds timeout) {
  const std::string promoted = "127.0.0.1:" + std::to_string(ports_[1]);
  return wait_until(
      [&] {
        for (int i = 0; i < 3; ++i)
          if (master_per_sentinel(i) != promoted) return false;
        return cli(ports_[1], {"ROLE"}).starts_with("master");
      },
      timeout);
}

}  // namespace mtasts::test
