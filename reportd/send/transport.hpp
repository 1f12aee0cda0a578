// How a report leaves the host (RFC 8460 section 5): a message handed to the local MTA for a
// mailto: rua, an HTTPS POST for an https: rua. Behind small interfaces so that the sender is
// unit-tested with fakes; the production implementations are below.
//
// - Sendmail: runs `sendmail-command` (split on blanks into argv, no shell) with
//   `-f <sender> -- <recipient>` appended, the message on its standard input, within a
//   timeout (the child is killed past it); success is exit status 0; its standard error is
//   kept (bounded) for the log. Only the validated addresses reach the argv.
// - HTTPS: POST of the gzipped report as `application/tlsrpt+gzip` with libcurl: https only,
//   TLS 1.2 or newer, certificate and host name verified (`ca-file` replaces the system store
//   when set), redirects never followed, no proxy from the environment, a total timeout, the
//   response body read at most 64 KiB; success is a 2xx status. The URL's host is resolved
//   through the daemon's own resolver (the `resolver` option, as for the TLSRPT record) and
//   libcurl connects only to those addresses.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/dns/dns.hpp"

namespace mtasts::reportd {

struct Delivery {
  bool ok = false;
  std::string error;  // why not (for logs and the retry record); "" when ok
};

class MailSubmitter {
 public:
  virtual ~MailSubmitter() = default;
  virtual Delivery submit(const std::string& sender, const std::string& recipient, const std::string& message) = 0;
};

class HttpsPoster {
 public:
  virtual ~HttpsPoster() = default;
  virtual Delivery post(const std::string& url, const std::string& body) = 0;
};

// "/usr/sbin/sendmail -i" -> {"/usr/sbin/sendmail", "-i"}. Throws std::invalid_argument when
// empty or when a word holds a quote or a control character (no shell syntax is understood).
std::vector<std::string> split_command(const std::string& command);

struct SendmailOptions {
  std::string command = "/usr/sbin/sendmail -i";
  std::chrono::milliseconds timeout{120000};
};
// Throws std::invalid_argument when the command does not split (see split_command).
std::unique_ptr<MailSubmitter> make_sendmail(SendmailOptions opts);

struct PostOptions {
  std::string ca_file;  // replaces the system trust store when set
  std::chrono::milliseconds timeout{60000};
  std::chrono::milliseconds connect_timeout{10000};
  std::string user_agent = "mta-sts-reportd";
};
// `resolver` must outlive the poster. Throws std::runtime_error when ca_file is set and
// cannot be read.
std::unique_ptr<HttpsPoster> make_https_poster(PostOptions opts, dns::Resolver& resolver);

// The host and port of an https: URL ("https://host[:port]/..."; "[v6]" literals unwrapped);
// false when there is none.
bool url_host_port(const std::string& url, std::string* host, unsigned* port);

}  // namespace mtasts::reportd
