// vigild's streaming loop: a consumer-group member on the events topic that
// applies each batch through its partitions' pipelines, commits their state to
// RocksDB, and hands their outboxes to the Committer (committer.h), which
// publishes them in Kafka transactions on its own thread: applying and storing
// the next batch overlaps committing the last.
//
// Exactly once, argued in docs/architecture.md: state, timeline, alerts,
// outbox and consumed offsets are one atomic RocksDB batch; the outbox is
// handed over only once that batch is written, and published in a transaction
// that also writes each partition's published seq to the progress topic; on
// start (and on every assignment) the progress topic, read committed after the
// producer has fenced any earlier one, says how far each partition's outbox was
// published, and outbox seqs are deterministic, so a crash or a rebuild neither
// loses nor repeats. On revocation everything handed over is published before
// the partitions go.
//
// Faults (docs/reliability.md): when the broker is unreachable, vigild reports
// not ready, and the committer keeps the records and retries with backoff until
// the broker is back; a fatal producer error rebuilds the producer and reloads
// the partitions. When the store refuses a write (a full disk, a read-only
// directory), vigild stops consuming, reports not ready, and once a probe
// write succeeds reloads its partitions from the store and resumes from the
// stored offsets: nothing applied is lost, nothing is skipped.
//
// Threads: Run() drives the loop on the calling thread (with apply_threads - 1 helpers that apply and store
// partitions beside it, a partition to a thread), the committer its own;
// Stop() may be called from any thread (or a signal handler) and makes Run()
// return after a final commit and publish.
#pragma once

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "common/health.h"
#include "common/kafka.h"
#include "common/ownership.h"
#include "common/store.h"
#include "common/watermarks.h"
#include "services/escalation/pipeline/partition.h"
#include "services/escalation/vigild/committer.h"
#include "services/escalation/vigild/metrics.h"
#include "services/escalation/vigild/pacing.h"
#include "services/escalation/vigild/workers.h"

namespace vigil {

inline constexpr size_t kDefaultBatchMaxBytes = size_t{16} << 20;  // ServiceOptions::batch_max_bytes

struct ServiceOptions {
  KafkaProps kafka;  // bootstrap.servers, security.*, ... passed through
  std::string group = "vigild";
  std::string instance = "vigild-0";  // transactional.id; one per running instance
  std::string data_dir = "vigil-data";
  Topics topics;
  // What is admitted from the events topic: signatures (the signer must outlive the service), size, future.
  AdmissionPolicy admission;
  int partitions = 4;        // for the events topic, when vigild creates it
  int tick_ms = 250;         // clock ticks per owned partition; 0: none
  // Records per batch at most, when every owned partition has a backlog; with fewer, a share of it for each
  // that has one (BatchShares).
  int batch_max = 20000;
  // What a batch may hold for its commit, at most (its RocksDB writes and outbox, shared among the partitions
  // in it): a batch of large records, or of records that each raise alerts (an alert storm), is cut short
  // there, and the records left wait for the next batch. Each partition applies at least one record a batch.
  // Read ahead, at most 4 x a partition's share of it waits (BatchShares::Pause).
  size_t batch_max_bytes = kDefaultBatchMaxBytes;
  // Records of one partition per batch at least (its least turn): a partition with a backlog (one victim's
  // flood) takes its turn beside the others instead of ahead of them. Read ahead of their turn, at most 4 x its
  // share of batch_max (or twice this) wait per partition; beyond, its fetching is paused.
  int partition_batch_max = 500;
  int batch_ms = 5;          // how long a batch may wait for records
  // Partitions applied, and stored, at once: each batch's partitions are shared among this many threads (the
  // loop's one of them), each partition by one thread at a time.
  int apply_threads = 2;
  int commit_interval_ms = 10;  // a Kafka transaction at most this often (the committer's)
  // Victims held in memory per partition after a commit; the others are read back from the store on their
  // next event, or when their earliest pending deadline falls due.
  size_t max_held_victims = kDefaultMaxHeldVictims;
  // When given (it must outlive the service): each events partition's applied offset, set after each commit.
  Watermarks* applied = nullptr;
  // When given (it must outlive the service): which events partitions this instance owns, set on each
  // assignment and revocation.
  Ownership* ownership = nullptr;
  // The wall clock the clock ticks carry, in Unix milliseconds: NowMillis when empty (tests give their own).
  std::function<int64_t()> clock;
  // Where the loop and the committer count what they do (must outlive the service).
  VigilMetrics* metrics = VigilMetrics::Unexposed();
};

// How many records a batch takes, and a partition's turn in it (ServiceOptions: batch_max, partition_batch_max).
// The batch is batch_max when every one of the `owned` partitions has a backlog, a share of it for each of the
// `backlogged` that has (at least partition_batch_max): a bigger batch shares the store's costs, but one flooded
// partition must not make the batch everyone waits for bigger. A turn, when `busy` partitions have records
// waiting, is an equal share of the batch, at least partition_batch_max: all busy (a replay), the batch is
// full; one flooded, the others' few records go in every batch beside a turn of the flood.
struct BatchShares {
  int batch_max, partition_batch_max;
  size_t batch_max_bytes = kDefaultBatchMaxBytes;
  int Size(size_t owned, size_t backlogged) const {
    owned = std::max<size_t>(1, owned);
    const size_t share = static_cast<size_t>(batch_max) * std::clamp<size_t>(backlogged, 1, owned) / owned;
    return std::max(partition_batch_max, static_cast<int>(share));
  }
  int Turn(size_t busy, int size) const {
    return busy == 0 ? 0 : std::max(partition_batch_max, size / static_cast<int>(busy));
  }
  // What a partition's turn may hold for its commit when `busy` partitions share the batch (ServiceOptions::
  // batch_max_bytes).
  size_t TurnBytes(size_t busy) const { return batch_max_bytes / std::max<size_t>(1, busy); }
  // A partition's read-ahead, when `owned` partitions are: its fetching pauses while `records` or `bytes` reach
  // 4 x its share of a batch (at least twice its least turn, and kPauseBytesFloor), and resumes once both are
  // below half: rarely, and early, since a resumed partition's next records take about half a second to arrive
  // (pausing drops what librdkafka had fetched ahead, and it fetches again from the position).
  static constexpr size_t kPauseBytesFloor = size_t{1} << 20;
  bool Pause(size_t owned, size_t records, size_t bytes) const {
    return records >= PauseRecords(owned) || bytes >= PauseBytes(owned);
  }
  bool Resume(size_t owned, size_t records, size_t bytes) const {
    return records < PauseRecords(owned) / 2 && bytes < PauseBytes(owned) / 2;
  }
  size_t PauseRecords(size_t owned) const {
    return std::max<size_t>(4 * static_cast<size_t>(batch_max) / std::max<size_t>(1, owned),
                            2 * static_cast<size_t>(partition_batch_max));
  }
  size_t PauseBytes(size_t owned) const {
    return std::max(4 * batch_max_bytes / std::max<size_t>(1, owned), kPauseBytesFloor);
  }
};

class Service {
 public:
  // `store` (options.data_dir, opened by the caller) must outlive the service;
  // so must `health`, which hears of the broker and the store (may be null).
  Service(ServiceOptions options, const Engine* engine, Store* store, Health* health = nullptr);
  ~Service();

  // Creates missing topics, joins the group and runs until
  // Stop(). Returns OK after a clean stop; an error when it cannot go on
  // (DATA_LOSS for corrupt state, with the way to rebuild).
  absl::Status Run();
  void Stop() { stop_ = true; }

 private:
  class Rebalancer;
  class BrokerEvents;
  absl::Status Connect();  // topics, committer, consumer
  absl::Status Assign(const std::vector<PartitionId>& partitions);
  // Drops the pipelines' memory, loads them again from the store and the
  // progress topic, hands their unpublished outboxes to the committer again,
  // and seeks the consumer to their stored offsets.
  absl::Status Reload();
  // Commits every partition to the store and hands what it wrote to the committer.
  absl::Status CommitStore();
  // Marks in the store what the committer has published.
  absl::Status MarkPublished();
  // Commits and publishes everything applied, until done or the service stops (revocation).
  void FlushUntilDone();
  // The partition's committed offset, to options_.applied.
  void Applied(const PartitionPipeline& pipeline);
  void Tick();
  // Reads records into their partitions' waiting lines, for up to `wait_ms` while fewer than a batch wait.
  void ReadAhead(int wait_ms);
  BatchShares Shares() const { return {options_.batch_max, options_.partition_batch_max, options_.batch_max_bytes}; }
  // What the waiting lines hold: a whole batch, each line counted up to its turn were every owned partition
  // busy; how many lines hold a backlog (partition_batch_max or more).
  struct Lines {
    bool batch = false;
    size_t backlogged = 0;
  };
  Lines Waiting() const;
  // Pauses or resumes fetching these partitions.
  void Fetch(const std::vector<PartitionId>& ids, bool paused);
  // Applies the next batch: round the partitions with records waiting, each's oldest first, a turn each
  // (the partitions side by side: workers_). How many.
  int ApplyBatch();
  // Forgets what was read ahead (the partitions are revoked, or assigned again from their stored offsets).
  void DropReadAhead();
  // The partitions go (revoked, or their consumer failed): committed and published first when `flush`, then
  // forgotten, with what was read ahead and what the committer held of them.
  void Revoke(bool flush);
  // Records read, not yet applied, of one partition in offset order, and their bytes.
  class Line {
   public:
    void Push(std::unique_ptr<RdKafka::Message> m) {
      bytes_ += m->len();
      records_.push_back(std::move(m));
    }
    std::unique_ptr<RdKafka::Message> Pop() {
      std::unique_ptr<RdKafka::Message> m = std::move(records_.front());
      records_.pop_front();
      bytes_ -= m->len();
      return m;
    }
    // Records taken and not applied go back to its head, in order.
    void PutBack(std::vector<std::unique_ptr<RdKafka::Message>>::iterator from,
                 std::vector<std::unique_ptr<RdKafka::Message>>::iterator to) {
      for (auto it = from; it != to; ++it) bytes_ += (*it)->len();
      records_.insert(records_.begin(), std::make_move_iterator(from), std::make_move_iterator(to));
    }
    const RdKafka::Message& back() const { return *records_.back(); }
    size_t size() const { return records_.size(); }
    bool empty() const { return records_.empty(); }
    size_t bytes() const { return bytes_; }

   private:
    std::deque<std::unique_ptr<RdKafka::Message>> records_;
    size_t bytes_ = 0;
  };
  // Consumed a record, or the broker answered: mark it reachable; down: say why. Any thread.
  void BrokerUp();
  void BrokerDown(const absl::Status& why);
  void ProbeBroker();
  // A store write failed: stop consuming (unassign) until Recover() succeeds.
  void StoreFault(const absl::Status& why);
  void TryRecoverStore();
  // The committer's producer failed fatally: a new one, and the partitions reloaded.
  absl::Status RecoverProducer();
  // Makes the consumer (the group member that is assigned the partitions) and subscribes it.
  absl::Status Subscribe();
  // The consumer failed fatally (fenced by a member with our group.instance.id, as after a restart beside a
  // broker restart): it has given up its partitions; a new one joins the group and is assigned them again.
  absl::Status RecoverConsumer();
  // A consumed message saying the consumer failed for good (ERR__FATAL): logged and remembered
  // (consumer_fatal_) for Run to replace it. Whether it was.
  bool ConsumerFailed(const RdKafka::Message& m);
  bool consumer_fatal_ = false;
  // The topics vigild writes and creates, from the options.
  std::vector<TopicSpec> TopicSpecs() const;
  // Counts what the partitions' last commits applied; sets the lag gauges (at most once a second unless `now`).
  void CountCommitted();
  void SetGauges(bool now);
  void Forget(const PartitionId& id);  // its gauges, once it is no longer owned
  // The partition has applied the log as far as it reached when the partition was assigned (not restoring).
  bool Current(const PartitionId& id);

  // Per partition, for the metrics: what was counted so far, and where a restore ends (the log's end when the
  // partition was assigned, learnt from the first fetch; -1 until then).
  struct Counted {
    uint64_t applied = 0, too_late = 0;
    int64_t restore_until = -1;
  };
  std::map<PartitionId, Counted> counted_;
  int64_t last_gauged_ms_ = 0;

  ServiceOptions options_;
  const Engine& engine_;
  std::atomic<bool> stop_{false};
  Store* const store_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<Committer> committer_;       // transactional: outboxes
  std::unique_ptr<RdKafka::Producer> ticker_;  // idempotent: clock ticks
  // Warm topic handles of the ticker (see WarmTopics); destroyed before it.
  std::vector<std::unique_ptr<RdKafka::Topic>> ticker_topics_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::unique_ptr<BrokerEvents> broker_events_;  // "all brokers down", heard while polling
  // By (topic, partition): events partitions and suspect-links partitions.
  std::map<PartitionId, std::unique_ptr<PartitionPipeline>> pipelines_;
  // Records read, not yet applied, per partition; and which partitions' fetching is paused because their line
  // is long.
  std::map<PartitionId, Line> waiting_;
  std::set<PartitionId> paused_;
  uint64_t batches_ = 0;
  Workers workers_;  // options_.apply_threads: the partitions of a batch applied and stored side by side
  size_t batch_records_ = 0;  // in the batch ApplyBatch took last
  // The records a batch holds at least for its partitions to be applied and stored side by side.
  static constexpr size_t kSideBySideFrom = 1000;
  // Calls task(i) for each of the batch's partitions: side by side on workers_ when the batch has at least
  // kSideBySideFrom records, else in order on this thread.
  void SideBySide(size_t partitions, absl::FunctionRef<void(size_t)> task);
  absl::Status rebalance_error_;
  int64_t last_tick_ms_ = 0;
  int64_t last_marked_ms_ = 0;
  uint64_t events_ = 0;

  Health own_health_;
  Health& health_;
  std::mutex broker_mu_;  // broker_up_ and broker_probes_: the committer reports too
  bool broker_up_ = true;
  Backoff broker_probes_;
  bool store_fault_ = false;
  Backoff store_probes_, producer_retry_;
};

}  // namespace vigil
