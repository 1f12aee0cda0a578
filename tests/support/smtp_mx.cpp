// Test support: SmtpMx; see smtp_mx.hpp.
#include "tests/support/smtp_mx.hpp"

#include <algorithm>
#include <stdexcept>

namespace mtasts::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

SmtpMx::SmtpMx(std::string host, std::string ip, std::optional<CertKind> cert, TestCa& ca, fs::path dir,
               std::vector<std::string> cert_names, unsigned port)
    : host_(std::move(host)),
      ip_(std::move(ip)),
      port_(port),
      cert_(cert),
      cert_names_(std::move(cert_names)),
      ca_(ca),
      dir_(std::move(dir)) {
  fs::create_directories(dir_ / "mail");
  launch();
}

SmtpMx::~SmtpMx() {
  if (proc_) proc_->stop(5s);
}

void SmtpMx::launch() {
  // setpriv: if the test process dies without its destructors, the server goes with it.
  std::vector<std::string> argv{"setpriv", "--pdeathsig", "TERM", "/usr/bin/python3",
                                (source_dir() / "tests/support/smtp_mx.py").string(), "--address", ip_,
                                "--port", std::to_string(port_), "--name", host_, "--out", (dir_ / "mail").string()};
  if (cert_) {
    const CertFiles f = cert_names_.empty() ? ca_.leaf(host_, *cert_) : ca_.leaf_for_names(cert_names_, *cert_);
    argv.insert(argv.end(), {"--cert", f.cert.string(), "--key", f.key.string()});
  } else {
    argv.push_back("--no-tls");
  }
  write_file(dir_ / "mx.log", "");
  proc_ = std::make_unique<Process>(argv, dir_ / "mx.log");
}

void SmtpMx::wait_ready(std::chrono::milliseconds timeout) {
  // The script prints "ready" once aiosmtpd's controller has answered its own probe.
  const bool up = wait_until([&] { return !proc_->running() || log().find("ready ") != std::string::npos; }, timeout);
  if (!up || !proc_->running())
    throw std::runtime_error("MX " + host_ + " on " + ip_ + ":" + std::to_string(port_) + " did not start:\n" + log());
}

void SmtpMx::restart(std::optional<CertKind> cert) {
  proc_->stop(5s);
  cert_ = cert;
  launch();
  wait_ready();
}

std::vector<std::string> SmtpMx::messages() const {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "mail", ec))
    if (e.path().extension() == ".eml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(read_file(f));
  return out;
}

std::optional<std::string> SmtpMx::wait_message(const std::string& needle, std::chrono::milliseconds timeout) const {
  std::optional<std::string> found;
  wait_until(
      [&] {
        for (auto& m : messages())
          if (m.find(needle) != std::string::npos) {
            found = std::move(m);
            return true;
          }
        return false;
      },
      timeout);
  return found;
}

}  // namespace mtasts::test
