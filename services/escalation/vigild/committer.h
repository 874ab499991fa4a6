// vigild's committer: owns the transactional producer and publishes, on its own
// thread, what the loop has committed to the store, so that applying the next
// batch overlaps committing the last one.
//
// The loop commits a batch to RocksDB (state, timeline, outbox, offsets: one
// atomic write) and then hands the batch's outbox records over in memory
// (Publish). The committer keeps a transaction open and produces each record
// into it as it is handed over, in seq order per partition; every commit
// interval it writes each partition's last seq to the progress topic in the
// same transaction and commits it. What a committed transaction published goes back
// to the loop (TakePublished), which marks it in the store. A record leaves the
// committer only once a transaction holding it has committed; until then every
// try produces it again. A record the broker refuses for what it is (too large)
// or whose topic strikes out (missing, forbidden; three tries) goes as a bounded
// dead letter under the same seq, so that no record can stall a partition.
//
// The exactly-once argument (docs/architecture.md) is the loop's: outbox seqs
// are deterministic, a record is handed over only after its store commit, and
// the progress topic (read committed, after fencing) says what was published.
//
// Thread-safe: the loop calls Publish, Announce, TakePublished, Drain, Reset and
// Recreate; the committer's thread does the rest.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/health.h"
#include "common/kafka.h"
#include "services/escalation/vigild/metrics.h"
#include "services/escalation/vigild/pacing.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

namespace state = v1::state;
using PartitionId = std::pair<std::string, int32_t>;  // (topic, partition) consumed

struct CommitterOptions {
  KafkaProps kafka;
  std::string instance = "vigild-0";  // the transactional.id
  std::string dead_letters = "vigil.events.dlq";
  std::string progress = "vigil.progress";
  std::vector<std::string> topics;    // every topic it may write (warmed up front)
  int interval_ms = 10;               // a transaction at most this often
  size_t max_pending = 200000;        // records handed over and not yet published, at most (Publish waits)
  size_t max_pending_bytes = size_t{32} << 20;  // and their values' bytes, at most (Publish waits)
  std::string alerts = "vigil.alerts";  // the alerts topic: its records are counted as alert transitions
  // Counts transactions' commit time, and what they published (must outlive the committer).
  VigilMetrics* metrics = VigilMetrics::Unexposed();
};

// The progress topic's key for a consumed partition.
std::string ProgressKey(const std::string& topic, int32_t partition);


class Committer {
 public:
  // `health` hears of publishing (kHealthPublish); `broker` of the broker answering (true) or not (false, why).
  Committer(CommitterOptions options, Health* health, std::function<void(bool, const absl::Status&)> broker);
  ~Committer();

  // Creates the producer (init_transactions fences any earlier producer of this transactional.id) and starts
  // the thread. UNAVAILABLE while the broker cannot be reached.
  absl::Status Start();

  // Records of a partition, committed to the store, in seq order, to publish. Waits while max_pending, or
  // max_pending_bytes of values, are already waiting (the broker is slower than the loop) unless `stop`.
  void Publish(const PartitionId& p, std::vector<state::OutboxRecord> records, const std::atomic<bool>& stop);
  // The partition's progress goes in the next transaction even with nothing to publish (after an assignment:
  // it finds the transaction's coordinator and partitions now, not when an alert waits).
  void Announce(const PartitionId& p, uint64_t published_seq);
  // What committed transactions have published since the last call: partition -> last seq.
  std::map<PartitionId, uint64_t> TakePublished();
  // Returns once everything handed over is published (OK); UNAVAILABLE if `stop` came first or the producer
  // failed fatally (see Fatal).
  absl::Status Drain(const std::atomic<bool>& stop, std::chrono::milliseconds timeout = std::chrono::hours(24));
  // Forgets what was handed over for every partition (after it settled any open transaction); the caller hands
  // it over again after reloading (the progress topic then says what was published).
  void Reset();
  // The producer failed fatally (fenced, or its epoch expired while the broker was away): the committer waits.
  // The caller Resets, Recreates and reloads. An error when it happened too often in a row.
  bool Fatal() const { return fatal_; }
  absl::Status Recreate();
  // How many records wait to be published; how many were published in all.
  size_t pending() const;
  uint64_t published_total() const { return published_total_; }

 private:
  struct Partition {
    std::deque<state::OutboxRecord> records;  // seq order
    bool announce = false;
    uint64_t published_seq = 0;  // for an announcement with no records
  };
  class DeliveryReports;
  enum class Txn { kNone, kCommitting, kAborting };

  // A partition waits to be announced (REQUIRES mu_ held).
  bool Announcing() const;
  void Run();
  absl::Status CreateProducer();
  // One step: settles a transaction left to abort, begins one if there is something to publish, produces into
  // it every record handed over since, and commits it once it is `due` (its interval passed, or a drain).
  absl::Status Step(bool due);
  absl::Status EndTransaction();
  RdKafka::ErrorCode ProduceOutbox(const PartitionId& p, const state::OutboxRecord& r);
  // The partition's progress record (key ProgressKey, value the seq) into the open transaction; waits while the
  // producer's queue is full.
  RdKafka::ErrorCode ProduceProgress(const PartitionId& p, uint64_t seq);
  bool Strike(const PartitionId& p, uint64_t seq, const std::string& topic, const std::string& error);
  // Counts a published record: a dead letter by its reason's code, an alert transition by rule, level, state.
  void CountPublished(const state::OutboxRecord& r) const;

  const CommitterOptions options_;
  Health& health_;
  Health own_health_;
  const std::function<void(bool, const absl::Status&)> broker_;

  mutable std::mutex mu_;
  std::condition_variable wake_;     // work arrived, or stop, or reset
  std::condition_variable settled_;  // published, or idle, or fatal
  std::map<PartitionId, Partition> partitions_;  // guarded by mu_
  size_t pending_ = 0;                           // guarded by mu_
  size_t pending_bytes_ = 0;                     // their values' bytes (guarded by mu_)
  std::map<PartitionId, uint64_t> published_;    // guarded by mu_
  bool busy_ = false;        // a transaction is being built or settled (guarded by mu_)
  bool paused_ = false;      // Reset/Recreate in progress (guarded by mu_)
  std::atomic<bool> stop_{false};
  std::atomic<bool> fatal_{false};
  std::atomic<uint64_t> published_total_{0};
  int fatal_errors_ = 0;
  std::thread thread_;

  // The committer thread's own (and the producer's delivery reports, which run on it).
  std::unique_ptr<DeliveryReports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<std::unique_ptr<RdKafka::Topic>> producer_topics_;
  std::atomic<Txn> txn_{Txn::kNone};  // written by the thread only; read by Drain
  std::chrono::steady_clock::time_point last_commit_;  // when the last commit began: the next one begins at
                                                      // least interval_ms later
  // When the last commit ended. The broker writes a transaction's markers after answering its commit, and until
  // they are written it refuses to add partitions to the next transaction (CONCURRENT_TRANSACTIONS); librdkafka
  // then tries again 20 ms later. So the next transaction begins kMarkerGrace after a commit, not at once.
  std::chrono::steady_clock::time_point committed_at_;
  bool ending_ = false;  // its commit was asked for (and not answered): only the same call again
  // What the open transaction holds, per partition: the last seq produced into it (its progress), kept apart
  // from partitions_ so that a Reset cannot make it produce a record twice.
  std::map<PartitionId, uint64_t> in_flight_;
  size_t in_flight_count_ = 0;
  std::atomic<int> drains_{0};  // callers of Drain waiting: commit at once
  std::vector<std::pair<PartitionId, uint64_t>> produced_;  // a delivery report's opaque is its index + 1
  std::map<std::pair<PartitionId, uint64_t>, std::string> refused_;
  struct TopicStrikes {
    int count = 0;
    int64_t last_ms = 0;
    std::string error;
  };
  std::map<std::string, TopicStrikes> topic_strikes_;
  std::string stuck_;
  Backoff retry_;  // after a failed try
};

}  // namespace vigil
