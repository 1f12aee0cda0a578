// mtasts-delivery-demo: MTA-STS enforced at delivery, shown step by step (scripts/demo.sh runs
// it last). In a network namespace of its own it starts the delivery world of the end-to-end
// tests (delivery_world.hpp: DNS, policies over HTTPS, STARTTLS MX hosts on port 25, Redis,
// mta-sts-cached, mta-sts-tlsmap) and a private Postfix 3.7 asking mta-sts-tlsmap over
// socketmap; sends one message to an enforce domain whose MX presents a good certificate and
// one to an enforce domain whose MX presents a certificate for another name; shows the first
// delivered and the second deferred and queued; fixes the MX's certificate; flushes the queue
// and shows the same message delivered over verified TLS. Root only; stops everything on exit.
//
//   mtasts-delivery-demo [--keep]    (--keep: leave the state directory for a look afterwards)
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/milter/mail_env.hpp"

namespace e2e = mtasts::test::e2e;
using mtasts::test::CertKind;
using mtasts::test::wait_until;
using namespace std::chrono_literals;

namespace {

void step(const std::string& s) { std::cout << "\n\033[1m==== " << s << "\033[0m\n" << std::flush; }

// The maillog lines that mention `needle`, indented.
std::string lines_with(const std::string& log, const std::string& needle) {
  std::istringstream in(log);
  std::string out;
  for (std::string l; std::getline(in, l);)
    if (l.find(needle) != std::string::npos) out += "  " + l + "\n";
  return out;
}

bool has_line(const std::string& log, const std::string& a, const std::string& b) {
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);)
    if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
  return false;
}

int demo() {
  const std::string good = e2e::dlv("good"), bad = e2e::dlv("wrongname");
  const std::string good_mx = e2e::dlv("mx.good"), bad_mx = e2e::dlv("mx.wrongname");

  step("starting the delivery world in a network namespace of its own");
  e2e::DeliveryWorld dw;
  std::cout << "namespace " << dw.namespace_name() << " (ip netns exec " << dw.namespace_name()
            << " ...), state in " << dw.dir().string() << "\n"
            << "DNS (dnsmasq, the namespace's resolver) and policies (nginx, test CA) for *.dlv.test;\n"
            << "MX hosts on port 25 with STARTTLS; Redis filled by mta-sts-cached; mta-sts-tlsmap on "
            << dw.tlsmap_host_port() << "\n"
            << "  " << good << ": policy enforce, mx " << good_mx << "; its MX presents a certificate for its name\n"
            << "  " << bad << ": policy enforce, mx " << bad_mx
            << "; its MX presents a certificate for another name\n";

  step("what mta-sts-tlsmap answers Postfix (socketmap name `postfix')");
  for (const auto& d : std::vector<std::string>{good, bad, e2e::dlv("testing"), e2e::dlv("nopolicy")})
    std::cout << "  postfix " << d << "  ->  " << dw.socketmap("postfix", d) << "\n";

  step("starting a private Postfix 3.7 that asks mta-sts-tlsmap");
  const std::vector<std::string> main_cf = {"smtp_tls_security_level = may",
                                            "smtp_tls_CAfile = " + dw.world().ca_file().string(),
                                            "smtp_tls_policy_maps = " + dw.postfix_policy_map(),
                                            "smtp_tls_loglevel = 1"};
  e2e::Postfix postfix(dw.dir(), e2e::PostfixOptions{.relay_port = 0, .main_cf = main_cf,
                                                     .command_prefix = dw.exec_prefix()});
  for (const auto& l : main_cf) std::cout << "  " << l << "\n";

  step("sending one message to alice@" + good + " and bob@" + bad);
  const std::vector<std::string> to = {"alice@" + good, "bob@" + bad};
  const auto sent = e2e::swaks(postfix.smtp_port(), "demo@sender.dlv.test", to, e2e::make_message("demo", to));
  if (sent.exit_code != 0) throw std::runtime_error("swaks failed: " + sent.out + sent.err);
  std::string qid;
  wait_until([&] { return !(qid = postfix.queue_id("demo")).empty(); }, 10s);
  const bool settled = wait_until(
      [&] {
        const std::string log = postfix.maillog();
        return has_line(log, "to=<alice@" + good, "status=sent") && has_line(log, "to=<bob@" + bad, "status=deferred");
      },
      30s);
  std::cout << "Postfix's log:\n" << lines_with(postfix.maillog(), qid.empty() ? "demo" : qid)
            << lines_with(postfix.maillog(), "TLS connection established");
  if (!settled) throw std::runtime_error("the first delivery attempt did not end as expected:\n" + postfix.maillog());
  std::cout << "\nthe queue (postqueue -p): the message waits for bob@" << bad << "\n"
            << postfix.postqueue({"-p"}).out;
  std::cout << "what " << bad_mx << " received: " << dw.mx(bad_mx).messages().size() << " message(s)\n";

  step("fixing " + bad_mx + ": it now presents a certificate for its own name; postqueue -f");
  dw.mx(bad_mx).restart(CertKind::valid);
  postfix.postqueue({"-f"});
  const auto got = dw.mx(bad_mx).wait_message("END-demo", 30s);
  if (!got) throw std::runtime_error("the fixed MX did not get the message:\n" + postfix.maillog());
  wait_until([&] { return has_line(postfix.maillog(), "to=<bob@" + bad, "status=sent"); }, 10s);
  std::cout << "Postfix's log:\n" << lines_with(postfix.maillog(), "to=<bob@" + bad)
            << lines_with(postfix.maillog(), "Verified TLS connection established to " + bad_mx);
  std::cout << "\n" << bad_mx << " received it (its own first line says how):\n  "
            << got->substr(0, got->find('\n')) << "\n";
  std::cout << "the queue (postqueue -p):\n" << postfix.postqueue({"-p"}).out;
  step("delivery demo finished");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::cerr << "mtasts-delivery-demo: run as root (network namespace, port 25, Postfix)\n";
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--keep") == 0) {
      ::setenv("MTASTS_KEEP_TEST_DIRS", "1", 1);
    } else {
      std::cerr << "usage: mtasts-delivery-demo [--keep]\n";
      return 2;
    }
  }
  try {
    return demo();
  } catch (const std::exception& e) {
    std::cerr << "mtasts-delivery-demo: " << e.what() << "\n";
    return 1;
  }
}
