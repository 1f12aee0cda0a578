// mtasts-world: the loopback DNS + HTTPS test world as a foreground program, for shell
// scripts and the README demo. Reads a line-based spec (see tests/world/README.md), starts
// dnsmasq and nginx with a test CA, writes DIR/ca.pem and DIR/world.env, prints "ready" once
// both answer, and runs until SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "tests/support/world.hpp"

namespace fs = std::filesystem;
using namespace mtasts::test;

namespace {

struct SpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct PendingDomain {
  std::string name;
  DomainSpec spec;
  std::string mode;
  std::vector<std::string> policy_mx;
  long max_age = 86400;
  std::vector<std::string> policy_lines;
  bool lf = false;
  bool has_policy_lines = false;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// `"a" "b"` is a record of two strings; anything else is one string, taken verbatim.
TxtRecord parse_txt(const std::string& value, const std::string& where) {
  if (value.empty() || value.front() != '"') return TxtRecord(value);
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < value.size()) {
    if (value[i] == ' ' || value[i] == '\t') {
      ++i;
      continue;
    }
    if (value[i] != '"') throw SpecError(where + ": expected a quoted string");
    std::string s;
    ++i;
    for (;; ++i) {
      if (i >= value.size()) throw SpecError(where + ": unterminated quoted string");
      if (value[i] == '\\' && i + 1 < value.size()) {
        s += value[++i];
      } else if (value[i] == '"') {
        ++i;
        break;
      } else {
        s += value[i];
      }
    }
    parts.push_back(s);
  }
  return TxtRecord(parts);
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

void finish(PendingDomain& d) {
  if (d.has_policy_lines) {
    const std::string eol = d.lf ? "\n" : "\r\n";
    d.spec.policy.clear();
    for (const auto& l : d.policy_lines) d.spec.policy += l + eol;
  } else if (!d.mode.empty()) {
    d.spec.policy = World::policy(d.mode, d.policy_mx, d.max_age, !d.lf);
  }
}

void load_spec(const fs::path& file, World& world, std::vector<std::string>& names) {
  std::ifstream in(file);
  if (!in) throw SpecError("cannot read spec file " + file.string());
  std::vector<PendingDomain> domains;
  DnsServer& dns = world.dns();
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    const std::string where = file.string() + ":" + std::to_string(lineno);
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    const auto sp = line.find_first_of(" \t");
    const std::string key = line.substr(0, sp);
    const std::string value = sp == std::string::npos ? "" : trim(line.substr(sp));
    const auto w = words(value);
    auto need = [&](std::size_t n) {
      if (w.size() != n) throw SpecError(where + ": '" + key + "' takes " + std::to_string(n) + " argument(s)");
    };
    // Lines that stand alone: extra DNS data, not tied to an MTA-STS domain.
    if (key == "domain") {
      need(1);
      domains.push_back(PendingDomain{});
      domains.back().name = w[0];
      continue;
    }
    if (key == "dns-host") { need(2); dns.add_host(w[0], w[1]); continue; }
    if (key == "dns-cname") { need(2); dns.add_cname(w[0], w[1]); continue; }
    if (key == "dns-mx") { need(3); dns.add_mx(w[0], w[1], std::stoi(w[2])); continue; }
    if (key == "dns-txt") {
      if (w.size() < 2) throw SpecError(where + ": 'dns-txt' takes NAME and a value");
      dns.add_txt(w[0], parse_txt(trim(value.substr(w[0].size())), where));
      continue;
    }
    if (key == "dns-fail") {
      need(2);
      if (w[1] != "servfail" && w[1] != "timeout") throw SpecError(where + ": dns-fail NAME servfail|timeout");
      dns.set_failure(w[0], w[1] == "servfail" ? DnsFailure::servfail : DnsFailure::timeout);
      continue;
    }
    if (domains.empty()) throw SpecError(where + ": '" + key + "' before any 'domain' line");
    PendingDomain& d = domains.back();
    if (key == "txt") {
      if (value.empty()) throw SpecError(where + ": 'txt' needs a value");
      d.spec.txt.push_back(parse_txt(value, where));
    } else if (key == "txt-cname") {
      need(1);
      d.spec.txt_cname = w[0];
    } else if (key == "txt-dns") {
      need(1);
      if (w[0] == "servfail") d.spec.txt_failure = DnsFailure::servfail;
      else if (w[0] == "timeout") d.spec.txt_failure = DnsFailure::timeout;
      else throw SpecError(where + ": txt-dns servfail|timeout");
    } else if (key == "mode") {
      need(1);
      d.mode = w[0];
    } else if (key == "mx") {
      need(1);
      d.policy_mx.push_back(w[0]);
    } else if (key == "max_age" || key == "max-age") {
      need(1);
      d.max_age = std::stol(w[0]);
    } else if (key == "policy") {
      d.policy_lines.push_back(value);
      d.has_policy_lines = true;
    } else if (key == "lf") {
      need(0);
      d.lf = true;
    } else if (key == "cert") {
      need(1);
      auto k = cert_kind_from_string(w[0]);
      if (!k) throw SpecError(where + ": unknown cert kind '" + w[0] + "'");
      d.spec.cert = *k;
    } else if (key == "behaviour" || key == "behavior") {
      need(1);
      auto b = behaviour_from_string(w[0]);
      if (!b) throw SpecError(where + ": unknown behaviour '" + w[0] + "'");
      d.spec.behaviour = *b;
    } else if (key == "redirect") {
      need(1);
      d.spec.redirect_to = w[0];
    } else if (key == "no-policy-host") {
      need(0);
      d.spec.policy_host = false;
    } else if (key == "policy-host-ip") {
      need(1);
      d.spec.policy_host_ip = w[0];
    } else if (key == "domain-mx") {
      need(1);
      d.spec.mx.push_back(w[0]);
    } else {
      throw SpecError(where + ": unknown keyword '" + key + "'");
    }
  }
  auto batch = world.batch();
  for (auto& d : domains) {
    finish(d);
    names.push_back(d.name);
    world.add_domain(d.name, d.spec);
  }
}

int usage(const char* msg) {
  if (msg) std::cerr << "mtasts-world: " << msg << "\n";
  std::cerr << "usage: mtasts-world --dir DIR --spec FILE [--ip 127.0.0.53] [--dns-port 5353] [--https-port 443]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir, spec;
  std::string ip = "127.0.0.53";
  long dns_port = 5353, https_port = 443;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw SpecError(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--dir") dir = value();
      else if (a == "--spec") spec = value();
      else if (a == "--ip") ip = value();
      else if (a == "--dns-port") dns_port = std::stol(value());
      else if (a == "--https-port") https_port = std::stol(value());
      else if (a == "-h" || a == "--help") return usage(nullptr), 0;
      else return usage(("unknown argument " + a).c_str());
    } catch (const std::exception& e) {
      return usage(e.what());
    }
  }
  if (dir.empty() || spec.empty()) return usage("--dir and --spec are required");
  if (dns_port < 1 || dns_port > 65535 || https_port < 1 || https_port > 65535) return usage("bad port");

  // Block the stop signals before any thread starts, so that sigwait() below gets them;
  // child servers start with an empty mask (Process does that).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    fs::create_directories(dir);
    dir = fs::absolute(dir);
    TestCa ca(dir / "ca");
    World world(WorldOptions{.ip = ip, .dns_port = static_cast<std::uint16_t>(dns_port),
                             .https_port = static_cast<std::uint16_t>(https_port), .dir = dir, .ca = &ca,
                             .redis = false});
    std::vector<std::string> names;
    load_spec(spec, world, names);
    fs::copy_file(ca.ca_file(), dir / "ca.pem", fs::copy_options::overwrite_existing);
    world.start();
    std::string domains;
    for (const auto& n : names) domains += (domains.empty() ? "" : " ") + n;
    write_file(dir / "world.env", "RESOLVER=" + world.resolver() + "\nCA_FILE=" + (dir / "ca.pem").string() +
                                      "\nWORLD_IP=" + ip + "\nDNS_PORT=" + std::to_string(dns_port) +
                                      "\nHTTPS_PORT=" + std::to_string(https_port) + "\nDOMAINS=\"" + domains +
                                      "\"\n");
    std::cout << "ready" << std::endl;
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::cerr << "mtasts-world: " << strsignal(sig) << ", stopping\n";
    world.stop();
    return 0;
  } catch (const SpecError& e) {
    std::cerr << "mtasts-world: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mtasts-world: " << e.what() << "\n";
    return 1;
  }
}
