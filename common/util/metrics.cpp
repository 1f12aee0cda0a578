// Metrics registry and text exposition; see metrics.hpp.
#include "common/util/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <arpa/inet.h>

namespace mtasts::metrics {

namespace {

bool name_ok(const std::string& n, bool label) {
  if (n.empty()) return false;
  if (label && n.starts_with("__")) return false;  // reserved for Prometheus itself
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// HELP text escapes backslash and newline only.
std::string escape_help(const std::string& h) {
  std::string out;
  for (char c : h) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string label_text(const Labels& labels, const std::pair<std::string, std::string>* extra = nullptr) {
  if (labels.empty() && !extra) return {};
  std::string out = "{";
  bool first = true;
  const auto one = [&](const std::string& k, const std::string& v) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + escape_label_value(v) + "\"";
  };
  for (const auto& [k, v] : labels) one(k, v);
  if (extra) one(extra->first, extra->second);
  return out + "}";
}

}  // namespace

void Gauge::add(double d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  if (bounds_.empty() || !std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end())
    throw std::logic_error("histogram bounds must be ascending and distinct");
  for (double b : bounds_) bounds_ns_.push_back(static_cast<std::int64_t>(std::llround(b * 1e9)));
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(std::chrono::nanoseconds d) noexcept {
  const std::int64_t ns = d.count() < 0 ? 0 : d.count();
  // "le": a value equal to a bound belongs to that bucket.
  const auto it = std::lower_bound(bounds_ns_.begin(), bounds_ns_.end(), ns);
  counts_[static_cast<std::size_t>(it - bounds_ns_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum_seconds() const noexcept {
  return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

Registry::Series& Registry::series(const std::string& name, const std::string& help, Type type,
                                   const Labels& labels) {
  if (!name_ok(name, false)) throw std::logic_error("bad metric name: " + name);
  for (const auto& [k, v] : labels)
    if (!name_ok(k, true) || k == "le") throw std::logic_error("bad label name: " + k);
  Family* fam = nullptr;
  for (auto& f : families_)
    if (f->name == name) fam = f.get();
  if (!fam) {
    families_.push_back(std::make_unique<Family>(Family{name, help, type, {}}));
    fam = families_.back().get();
  } else if (fam->type != type) {
    throw std::logic_error("metric " + name + " registered with two types");
  }
  for (auto& s : fam->series)
    if (s->labels == labels) return *s;
  fam->series.push_back(std::make_unique<Series>());
  fam->series.back()->labels = labels;
  return *fam->series.back();
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  if (!name.ends_with("_total")) throw std::logic_error("a counter's name ends in _total: " + name);
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::counter, labels);
  if (s.counter_fn) throw std::logic_error("counter " + name + " is already a callback");
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::gauge, labels);
  if (s.fn) throw std::logic_error("gauge " + name + " is already a callback");
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help, const Labels& labels,
                               std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::histogram, labels);
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(bounds));
  return *s.histogram;
}

void Registry::gauge_fn(const std::string& name, const std::string& help, const Labels& labels,
                        std::function<double()> fn) {
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::gauge, labels);
  if (s.gauge) throw std::logic_error("gauge " + name + " is already a plain gauge");
  s.fn = std::move(fn);  // a later registration (a reload) replaces the callback
}

void Registry::counter_fn(const std::string& name, const std::string& help, const Labels& labels,
                          std::function<std::uint64_t()> fn) {
  if (!name.ends_with("_total")) throw std::logic_error("a counter's name ends in _total: " + name);
  std::lock_guard lock(mu_);
  Series& s = series(name, help, Type::counter, labels);
  if (s.counter) throw std::logic_error("counter " + name + " is already a plain counter");
  s.counter_fn = std::move(fn);
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(8192);
  for (const auto& f : families_) {
    if (f->series.empty()) continue;
    out += "# HELP " + f->name + " " + escape_help(f->help) + "\n";
    out += "# TYPE " + f->name + " " +
           (f->type == Type::counter ? "counter" : f->type == Type::gauge ? "gauge" : "histogram") + "\n";
    for (const auto& s : f->series) {
      switch (f->type) {
        case Type::counter: {
          std::uint64_t v;
          if (s->counter_fn) {
            try {
              v = s->counter_fn();
            } catch (...) {
              continue;
            }
          } else {
            v = s->counter->value();
          }
          out += f->name + label_text(s->labels) + " " + std::to_string(v) + "\n";
          break;
        }
        case Type::gauge: {
          double v;
          if (s->fn) {
            try {
              v = s->fn();
            } catch (...) {
              continue;  // state unreadable right now: leave the series out of this scrape
            }
          } else {
            v = s->gauge->value();
          }
          out += f->name + label_text(s->labels) + " " + format_value(v) + "\n";
          break;
        }
        case Type::histogram: {
          const Histogram& h = *s->histogram;
          const auto counts = h.counts();
          std::uint64_t cum = 0;
          for (std::size_t i = 0; i < counts.size(); ++i) {
            cum += counts[i];
            const std::pair<std::string, std::string> le{
                "le", i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf"};
            out += f->name + "_bucket" + label_text(s->labels, &le) + " " + std::to_string(cum) + "\n";
          }
          out += f->name + "_sum" + label_text(s->labels) + " " + format_value(h.sum_seconds()) + "\n";
          out += f->name + "_count" + label_text(s->labels) + " " + std::to_string(cum) + "\n";
          break;
        }
      }
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // The shortest text that reads back as the same double (0.005, not 0.0050000000000000001).
  for (int prec = 1; prec <= 17; ++prec) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", prec, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Registry& registry() {
  static Registry r;
  return r;
}

namespace {
Counter* g_reload_ok = nullptr;
Counter* g_reload_failed = nullptr;
}  // namespace

void register_process(const std::string& program) {
  Registry& r = registry();
  r.gauge("mta_sts_build_info", "Build of the running program (always 1).",
          {{"program", program}, {"version", MTASTS_VERSION}})
      .set(1);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  r.gauge("mta_sts_start_time_seconds", "Start time of the process since the Unix epoch.")
      .set(static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()) / 1000.0);
  g_reload_ok = &r.counter("mta_sts_config_reloads_total", "Configuration reloads (SIGHUP) by result.",
                           {{"result", "success"}});
  g_reload_failed = &r.counter("mta_sts_config_reloads_total", "Configuration reloads (SIGHUP) by result.",
                               {{"result", "failure"}});
}

void count_reload(bool ok) noexcept {
  Counter* c = ok ? g_reload_ok : g_reload_failed;
  if (c) c->inc();
}

bool parse_listen(const std::string& text, ListenAddress* out, std::string* why, bool allow_port_zero) {
  const auto fail = [why](std::string w) {
    if (why) *why = std::move(w);
    return false;
  };
  ListenAddress a;
  std::string port;
  if (text.starts_with("[")) {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("expected [IPV6]:PORT");
    a.host = text.substr(1, close - 1);
    a.v6 = true;
    port = text.substr(close + 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, a.host.c_str(), buf) != 1) return fail("'" + a.host + "' is not an IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return fail("expected HOST:PORT (HOST an IPv4 address or [IPv6 address])");
    a.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    unsigned char buf[4];
    if (inet_pton(AF_INET, a.host.c_str(), buf) != 1)
      return fail("HOST must be an IPv4 address or [IPv6 address], not '" + a.host + "'");
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return fail("bad port '" + port + "'");
  const unsigned long n = std::stoul(port);
  if (n > 65535 || (n == 0 && !allow_port_zero)) return fail("port out of range (1-65535)");
  a.port = static_cast<std::uint16_t>(n);
  if (out) *out = std::move(a);
  return true;
}

}  // namespace mtasts::metrics
