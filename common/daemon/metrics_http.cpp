// The metrics endpoint on libmicrohttpd; see metrics_http.hpp.
#include "common/daemon/metrics_http.hpp"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "common/util/log.hpp"

namespace mtasts::metrics {

namespace {

constexpr unsigned kMaxConnections = 16;  // scrapers are few; a flood gets refused
constexpr unsigned kConnectionTimeout = 10;  // seconds of silence before MHD drops a client

// What libmicrohttpd reports (bind trouble, client errors) goes to our log. A C callback: no
// exception may leave it.
void log_mhd(void*, const char* fmt, va_list ap) noexcept {
  try {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    std::string msg(buf);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    log::warning("metrics endpoint", {{"error", msg}});
  } catch (...) {
  }
}

MHD_Result reply(MHD_Connection* c, unsigned status, const std::string& body, const char* type) {
  using Response = std::unique_ptr<MHD_Response, decltype(&MHD_destroy_response)>;
  // MUST_COPY: the body is ours and dies with this call.
  Response r(MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY),
             &MHD_destroy_response);
  if (!r) return MHD_NO;
  MHD_add_response_header(r.get(), MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r.get(), MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  return MHD_queue_response(c, status, r.get());
}

// The access handler (a C callback). libmicrohttpd calls it first when the headers are in,
// then again for the body; a GET has none, and the answer goes out on the second call.
MHD_Result handle(void* cls, MHD_Connection* c, const char* url, const char* method, const char*, const char*,
                  size_t* upload_size, void** state) noexcept {
  try {
    static int marker;
    if (*state != &marker) {
      *state = &marker;
      return MHD_YES;
    }
    if (*upload_size != 0) {  // a body we do not want: discard it, answer at its end
      *upload_size = 0;
      return MHD_YES;
    }
    const auto* registry = static_cast<const Registry*>(cls);
    const std::string_view m = method ? method : "";
    if (std::string_view(url ? url : "") != "/metrics")
      return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n", "text/plain; charset=utf-8");
    if (m != MHD_HTTP_METHOD_GET && m != MHD_HTTP_METHOD_HEAD)
      return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "text/plain; charset=utf-8");
    return reply(c, MHD_HTTP_OK, registry->render(), "text/plain; version=0.0.4; charset=utf-8");
  } catch (...) {
    return MHD_NO;  // libmicrohttpd closes the connection
  }
}

}  // namespace

void HttpServer::Stop::operator()(MHD_Daemon* d) const noexcept { MHD_stop_daemon(d); }

HttpServer::HttpServer(const std::string& listen, const Registry& registry) {
  ListenAddress a;
  std::string why;
  if (!parse_listen(listen, &a, &why, true)) throw std::runtime_error("metrics-listen " + listen + ": " + why);
  sockaddr_storage ss{};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  if (a.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a.port);
    inet_pton(AF_INET6, a.host.c_str(), &s6->sin6_addr);
    flags |= MHD_USE_IPv6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(a.port);
    inet_pton(AF_INET, a.host.c_str(), &s4->sin_addr);
  }
  MHD_LogCallback logger = log_mhd;
  MHD_AccessHandlerCallback handler = handle;
  // The registry outlives the server (it is the process's, or the test's).
  daemon_.reset(MHD_start_daemon(flags, a.port, nullptr, nullptr, handler, const_cast<Registry*>(&registry),
                                 MHD_OPTION_EXTERNAL_LOGGER, logger, nullptr,
                                 MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(&ss),
                                 MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeout,
                                 MHD_OPTION_END));
  if (!daemon_) throw std::runtime_error("cannot listen on metrics-listen " + listen + " (address in use or not local?)");
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_.get(), MHD_DAEMON_INFO_BIND_PORT);
  port_ = info ? info->port : a.port;
}

HttpServer::~HttpServer() = default;

std::unique_ptr<HttpServer> serve(const std::string& listen, const Registry& from) {
  if (listen.empty()) return nullptr;
  auto s = std::make_unique<HttpServer>(listen, from);
  log::notice("metrics endpoint listening", {{"address", listen}, {"path", "/metrics"}});
  return s;
}

}  // namespace mtasts::metrics
