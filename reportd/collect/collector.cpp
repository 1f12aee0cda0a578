#include "reportd/collect/collector.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/util/log.hpp"
#include "reportd/collect/log_line.hpp"

namespace mtasts::reportd {
namespace {

constexpr std::string_view kMagic = "mta-sts-reportd-spool 1\n";
constexpr std::size_t kMaxBlob = 64u << 20;

std::uint64_t fnv(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

bool u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

void blob(std::string& out, std::string_view kind, std::string_view key, std::string_view data) {
  out += kind;
  out += ' ';
  out += key;
  out += ' ';
  out += std::to_string(data.size());
  out += '\n';
  out += data;
  out += '\n';
}

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    }
    data.remove_prefix(static_cast<std::size_t>(w));
  }
}

// Source names are specs ("postfix-log:/var/log/mail.log"): no spaces or newlines expected,
// but escaped anyway so that a name never breaks the framing.
std::string esc(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == ' ' || c == '\n') {
      static const char* hex = "0123456789abcdef";
      out += '%';
      out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += hex[static_cast<unsigned char>(c) & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}
std::string unesc(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const auto h = [](char c) { return c >= 'a' ? c - 'a' + 10 : c - '0'; };
      out += static_cast<char>(h(s[i + 1]) * 16 + h(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::string encode_spool(const SpoolState& s) {
  std::string body;
  body += "next " + std::to_string(s.next_seq) + "\n";
  for (const auto& [name, pos] : s.positions) blob(body, "source", esc(name), pos);
  for (const auto& [seq, b] : s.batches) blob(body, "batch", std::to_string(seq), b);
  std::string out(kMagic);
  out += body;
  out += "end " + std::to_string(fnv(body)) + "\n";
  return out;
}

std::optional<SpoolState> decode_spool(std::string_view text, std::string* error) {
  const auto fail = [&](const char* why) -> std::optional<SpoolState> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (!starts_with(text, kMagic)) return fail("not a spool file (or another version)");
  text.remove_prefix(kMagic.size());
  const std::string_view body_start = text;
  SpoolState s;
  bool have_next = false;
  while (true) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return fail("truncated");
    const std::string_view line = text.substr(0, nl);
    if (starts_with(line, "end ")) {
      const std::string_view body = body_start.substr(0, static_cast<std::size_t>(line.data() - body_start.data()));
      std::uint64_t sum = 0;
      if (!u64(line.substr(4), sum) || sum != fnv(body)) return fail("checksum mismatch");
      if (text.size() != nl + 1) return fail("data after the end");
      if (!have_next) return fail("no sequence number");
      return s;
    }
    text.remove_prefix(nl + 1);
    if (starts_with(line, "next ")) {
      if (!u64(line.substr(5), s.next_seq) || s.next_seq == 0) return fail("bad sequence number");
      have_next = true;
      continue;
    }
    // "KIND KEY LEN\nDATA\n"
    const auto sp1 = line.find(' ');
    const auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return fail("bad record");
    const std::string_view kind = line.substr(0, sp1), key = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::uint64_t len = 0;
    if (!u64(line.substr(sp2 + 1), len) || len > kMaxBlob || len + 1 > text.size() || text[len] != '\n')
      return fail("bad record length");
    const std::string data(text.substr(0, len));
    text.remove_prefix(len + 1);
    if (kind == "source") {
      s.positions.emplace_back(unesc(key), data);
    } else if (kind == "batch") {
      std::uint64_t seq = 0;
      if (!u64(key, seq) || seq == 0 || (!s.batches.empty() && seq <= s.batches.back().first)) return fail("bad batch sequence");
      s.batches.emplace_back(seq, data);
    } else {
      return fail("unknown record");
    }
  }
}

Spool::Spool(std::filesystem::path dir) : dir_(std::move(dir)), file_(dir_ / "collector.spool") {}

SpoolState Spool::load() const {
  std::ifstream in(file_, std::ios::binary);
  if (!in) {
    if (std::filesystem::exists(file_)) throw std::runtime_error("cannot read " + file_.string());
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string error;
  auto s = decode_spool(ss.str(), &error);
  if (!s) throw std::runtime_error(file_.string() + ": " + error);
  return *s;
}

void Spool::save(const SpoolState& s) const {
  const std::string text = encode_spool(s);
  const std::filesystem::path tmp = dir_ / "collector.spool.tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp.string() + ": " + std::strerror(errno));
  try {
    write_all(fd, text, tmp.string());
    if (::fsync(fd) != 0) throw std::runtime_error("fsync " + tmp.string() + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), file_.c_str()) != 0)
    throw std::runtime_error("rename to " + file_.string() + ": " + std::strerror(errno));
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

Collector::Collector(std::vector<std::unique_ptr<Source>> sources, PolicyView& view, CollectorOptions options)
    : sources_(std::move(sources)), classifier_(view), options_(std::move(options)), spool_(options_.state_dir) {}

void Collector::load() {
  state_ = spool_.load();
  for (auto& src : sources_) {
    for (const auto& [name, pos] : state_.positions) {
      if (name == src->name()) src->restore(pos);
    }
  }
}

std::size_t Collector::poll() {
  if (state_.batches.size() >= options_.max_pending) {
    ++stats_.paused_polls;  // the fleet is away: leave the lines in the files
    return 0;
  }
  std::size_t n = 0;
  // Sessions of sources that cannot replay (datagrams) that could not be classified yet.
  if (!unclassified_.empty()) {
    std::vector<Outcome> waiting = std::move(unclassified_);
    unclassified_.clear();
    if (!classify_into(waiting, nullptr)) return 0;
  }
  for (auto& src : sources_) {
    const std::string before = src->position();
    scratch_.clear();
    n += src->poll(scratch_, options_.max_items_per_poll);
    if (!classify_into(scratch_, before.empty() ? nullptr : src.get())) {
      if (!before.empty()) src->restore(before);  // read these lines again once the cache answers
      break;
    }
  }
  return n;
}

bool Collector::classify_into(std::vector<Outcome>& outcomes, Source* replayable) {
  // All or nothing for a replayable source: its position goes back on failure.
  std::vector<std::pair<std::size_t, tlsrpt::AppliedPolicy>> done;
  done.reserve(outcomes.size());
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    try {
      done.emplace_back(i, classifier_.classify(outcomes[i]));
    } catch (const PolicyUnavailable&) {
      ++stats_.policy_unavailable;
      if (replayable) return false;
      for (std::size_t j = i; j < outcomes.size() && unclassified_.size() < kMaxUnclassified; ++j)
        unclassified_.push_back(std::move(outcomes[j]));
      break;
    }
  }
  for (auto& [i, p] : done) {
    current_.add(outcomes[i].session, p, options_.max_details);
    ++stats_.sessions;
    ++stats_.by_result[static_cast<std::size_t>(outcomes[i].session.result)];
  }
  return done.size() == outcomes.size();
}

std::vector<std::pair<std::uint64_t, tlsrpt::Batch>> Collector::checkpoint() {
  SpoolState next = state_;
  next.positions.clear();
  for (const auto& src : sources_) {
    std::string pos = src->position();
    if (!pos.empty()) next.positions.emplace_back(src->name(), std::move(pos));
  }
  const bool have_batch = !current_.empty();
  if (have_batch) next.batches.emplace_back(next.next_seq++, current_.encode());
  if (have_batch || next.positions != state_.positions) {
    try {
      spool_.save(next);
      ++stats_.checkpoints;
      state_ = std::move(next);
      if (have_batch) current_.clear();
    } catch (const std::exception& e) {
      ++stats_.checkpoint_errors;  // the batch stays current; nothing was lost
      log::error("cannot write the collector spool", {{"error", e.what()}});
    }
  }
  std::vector<std::pair<std::uint64_t, tlsrpt::Batch>> out;
  for (const auto& [seq, text] : state_.batches) {
    std::string error;
    auto b = tlsrpt::Batch::decode(text, &error);
    if (b) {
      out.emplace_back(seq, std::move(*b));
    } else {
      // Written by this program, so never expected; kept on disk for the operator, and
      // dropped with the next acknowledged batch.
      ++stats_.undecodable;
      log::error("spooled batch unreadable", {{"seq", std::to_string(seq)}, {"error", error}});
    }
  }
  return out;
}

void Collector::acknowledge(std::uint64_t seq) {
  SpoolState next = state_;
  std::erase_if(next.batches, [seq](const auto& b) { return b.first <= seq; });
  if (next.batches.size() == state_.batches.size()) return;
  try {
    spool_.save(next);
    state_ = std::move(next);
  } catch (const std::exception& e) {
    // The batch stays pending; the next flush applies it again (idempotent per seq) and
    // acknowledges it again.
    ++stats_.checkpoint_errors;
    log::error("cannot write the collector spool", {{"error", e.what()}});
  }
}

}  // namespace mtasts::reportd
