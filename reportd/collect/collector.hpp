// The collector: sources -> classified sessions -> the current batch, and a durable spool so
// that a crash (kill -9) at any moment neither loses nor double-counts a session.
//
// The spool is one file in the state directory, replaced atomically (temporary file, fsync,
// rename, fsync of the directory). It holds, together: the next batch sequence number, each
// source's position, and the encoded batches not yet acknowledged by the fleet. checkpoint()
// writes the current batch with the positions its sessions were read up to in ONE write, so
// after a crash either both or neither are on disk: the sources re-read exactly what the lost
// batch held. Pending batches are applied in order by the caller (ReportStore::apply(host,
// seq, batch) is idempotent per seq) and dropped by acknowledge().
//
// The daemon's loop:
//   collector.load();
//   every tick:    collector.poll();
//   every flush:   for (auto& [seq, batch] : collector.checkpoint())
//                    if (store.apply(host, seq, batch)) collector.acknowledge(seq); else break;
#pragma once

#include <array>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/tlsrpt/batch.hpp"
#include "reportd/collect/classify.hpp"
#include "reportd/collect/source.hpp"

namespace mtasts::reportd {

// The spool file's content (pure codec, exposed for tests).
struct SpoolState {
  std::uint64_t next_seq = 1;
  std::vector<std::pair<std::string, std::string>> positions;   // source name -> position
  std::vector<std::pair<std::uint64_t, std::string>> batches;   // seq -> Batch::encode()
  friend bool operator==(const SpoolState&, const SpoolState&) = default;
};
std::string encode_spool(const SpoolState& s);
std::optional<SpoolState> decode_spool(std::string_view text, std::string* error);

// The spool file: load and atomic replace.
class Spool {
 public:
  explicit Spool(std::filesystem::path dir);
  // The saved state; an empty one when there is no file yet; throws when the file exists but
  // cannot be read or decoded (the operator must look: starting empty would double-count).
  SpoolState load() const;
  // Replaces the file atomically; throws on I/O errors (the caller keeps its state in memory
  // and retries at the next flush).
  void save(const SpoolState& s) const;
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path dir_, file_;
};

struct CollectorOptions {
  std::filesystem::path state_dir;       // `state-directory`
  std::size_t max_details = 1000;        // distinct failure details per (day, domain, policy)
  std::size_t max_items_per_poll = 10000;
  std::size_t max_pending = 10000;       // unacknowledged batches before the sources pause
};

struct CollectorStats {
  std::uint64_t sessions = 0;
  std::array<std::uint64_t, tlsrpt::kResultCount> by_result{};  // sessions by (classified) result
  std::uint64_t checkpoints = 0;
  std::uint64_t checkpoint_errors = 0;   // spool writes that failed (logged; retried at the next flush)
  std::uint64_t undecodable = 0;         // spooled batches that did not decode (logged)
  std::uint64_t paused_polls = 0;        // sources not read: too many unacknowledged batches
  std::uint64_t policy_unavailable = 0;  // classifications put off: the fleet's cache did not answer
};

class Collector {
 public:
  Collector(std::vector<std::unique_ptr<Source>> sources, PolicyView& view, CollectorOptions options);

  // Restores positions and pending batches from the spool (before the first poll). Throws
  // when the spool is unreadable.
  void load();
  // Reads every source (bounded), classifies and counts the sessions in the current batch.
  // Returns the number of lines/datagrams read. When the fleet's cache cannot answer
  // (PolicyUnavailable), a log source goes back to where it was and is read again later;
  // datagrams wait in memory (bounded).
  std::size_t poll();
  // Moves the current batch (when not empty) to the pending list as batch `next_seq`, and
  // writes it with the sources' positions in one atomic write. Returns every pending batch,
  // oldest first. On a write error the batch stays current and nothing is lost.
  std::vector<std::pair<std::uint64_t, tlsrpt::Batch>> checkpoint();
  // The fleet applied batch `seq`: drop it (and older ones) from the spool. Never throws: when
  // the spool cannot be written the batch stays pending (counted in checkpoint_errors).
  void acknowledge(std::uint64_t seq);

  const tlsrpt::Batch& current() const noexcept { return current_; }
  std::size_t pending() const noexcept { return state_.batches.size(); }
  const CollectorStats& stats() const noexcept { return stats_; }
  const std::vector<std::unique_ptr<Source>>& sources() const noexcept { return sources_; }

 private:
  std::vector<std::unique_ptr<Source>> sources_;
  Classifier classifier_;
  CollectorOptions options_;
  Spool spool_;
  SpoolState state_;
  tlsrpt::Batch current_;
  CollectorStats stats_;
  std::vector<Outcome> scratch_;
  static constexpr std::size_t kMaxUnclassified = 100000;
  std::vector<Outcome> unclassified_;
  bool classify_into(std::vector<Outcome>& outcomes, Source* replayable);
};

}  // namespace mtasts::reportd
