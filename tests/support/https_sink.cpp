// Test support: HttpsSink; see https_sink.hpp.
#include "tests/support/https_sink.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace mtasts::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

HttpsSink::HttpsSink(std::string host, std::string ip, TestCa& ca, fs::path dir, unsigned port)
    : host_(std::move(host)), ip_(std::move(ip)), port_(port), dir_(std::move(dir)) {
  fs::create_directories(dir_ / "requests");
  write_file(dir_ / "status", "200\n");
  const CertFiles cert = ca.leaf(host_, CertKind::valid);
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "/usr/bin/python3",
                               (source_dir() / "tests/support/https_sink.py").string(), "--address", ip_, "--port",
                               std::to_string(port_), "--cert", cert.cert.string(), "--key", cert.key.string(),
                               "--out", (dir_ / "requests").string(), "--status-file", (dir_ / "status").string()},
      dir_ / "sink.log");
  if (!wait_until([&] { return !proc_->running() || log().find("ready ") != std::string::npos; }, 15s) ||
      !proc_->running())
    throw std::runtime_error("HTTPS sink " + host_ + " on " + ip_ + ":" + std::to_string(port_) +
                             " did not start:\n" + log());
}

HttpsSink::~HttpsSink() {
  if (proc_) proc_->stop(5s);
}

std::string HttpsSink::url(const std::string& path) const {
  return "https://" + host_ + (port_ == 443 ? std::string() : ":" + std::to_string(port_)) + path;
}

void HttpsSink::set_status(int code) { write_file(dir_ / "status", std::to_string(code) + "\n"); }

std::vector<HttpsSink::Request> HttpsSink::requests() const {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "requests", ec))
    if (e.path().extension() == ".http") files.push_back(e.path());
  // "<pid>-<n>.http": by n within a pid (one server process), numerically.
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    const auto n = [](const fs::path& p) {
      const std::string s = p.stem().string();
      return std::stoul(s.substr(s.find('-') + 1));
    };
    return n(a) < n(b);
  });
  std::vector<Request> out;
  for (const auto& f : files) {
    const std::string text = read_file(f);
    const auto end = text.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    Request r;
    r.file = f;
    r.body = text.substr(end + 4);
    const auto lines = lines_of(text.substr(0, end));
    if (lines.empty()) continue;
    std::string first = lines[0];
    if (!first.empty() && first.back() == '\r') first.pop_back();
    r.method = first.substr(0, first.find(' '));
    r.target = first.substr(first.find(' ') + 1, first.rfind(' ') - first.find(' ') - 1);
    for (std::size_t i = 1; i < lines.size(); ++i) {
      std::string l = lines[i];
      if (!l.empty() && l.back() == '\r') l.pop_back();
      const auto colon = l.find(':');
      if (colon == std::string::npos) continue;
      std::string name = l.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto value = l.find_first_not_of(' ', colon + 1);
      r.headers[name] = value == std::string::npos ? std::string() : l.substr(value);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<HttpsSink::Request> HttpsSink::wait_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::vector<Request> r;
  wait_until([&] { return (r = requests()).size() >= n; }, timeout);
  return r;
}

}  // namespace mtasts::test
