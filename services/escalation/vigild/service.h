// vigild's streaming loop: a consumer-group member on the events topic that
// applies each batch through its partitions' pipelines, commits their state to
// RocksDB, and publishes their outboxes in Kafka transactions.
//
// Exactly once, argued in docs/architecture.md: state, timeline, alerts,
// outbox and consumed offsets are one atomic RocksDB batch; the outbox is
// published in a transaction that also writes each partition's published seq to
// the progress topic; on start (and on every assignment) the progress topic,
// read committed, says how far each partition's outbox was published, and outbox
// seqs are deterministic, so a crash or a rebuild neither loses nor repeats.
//
// Faults (docs/reliability.md): when the broker is unreachable, vigild reports
// not ready, keeps its transaction and outbox, and retries with backoff until
// the broker is back; a fatal producer error rebuilds the producer and reloads
// the partitions. When the store refuses a write (a full disk, a read-only
// directory), vigild stops consuming, reports not ready, and once a probe
// write succeeds reloads its partitions from the store and resumes from the
// stored offsets: nothing applied is lost, nothing is skipped.
//
// Threads: Run() drives everything on the calling thread; Stop() may be called
// from any thread (or a signal handler) and makes Run() return after a final
// commit and publish.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/health.h"
#include "common/kafka.h"
#include "common/store.h"
#include "common/watermarks.h"
#include "services/escalation/pipeline/partition.h"

namespace vigil {

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
  int batch_max = 5000;      // records per batch at most
  int batch_ms = 20;         // how long a batch may wait for records
  // Victims held in memory per partition after a commit; idle ones beyond it are read back from the store
  // on their next event (those waiting for a deadline are always held).
  size_t max_held_victims = kDefaultMaxHeldVictims;
  // When given (it must outlive the service): each events partition's applied offset, set after each commit.
  Watermarks* applied = nullptr;
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
  class DeliveryReports;
  using PartitionId = std::pair<std::string, int32_t>;
  absl::Status Connect();  // topics, producers, consumer
  absl::Status CreateProducer();
  absl::Status Assign(const std::vector<PartitionId>& partitions);
  // Drops the pipelines' memory, loads them again from the store and the
  // progress topic, and seeks the consumer to their stored offsets.
  absl::Status Reload();
  absl::Status Flush();  // commit every partition, then publish
  // The partition's committed offset, to options_.applied.
  void Published(const PartitionPipeline& pipeline);
  absl::Status Publish();
  // Commits (or aborts) the open transaction; UNAVAILABLE while the broker cannot say.
  absl::Status EndTransaction();
  // Publishes until nothing is pending or the service stops (revocation).
  void FlushUntilDone();
  void Tick();
  // Consumed a record, or the broker answered: mark it reachable; down: say why.
  void BrokerUp();
  void BrokerDown(const absl::Status& why);
  void ProbeBroker();
  // A store write failed: stop consuming (unassign) until Recover() succeeds.
  void StoreFault(const absl::Status& why);
  void TryRecoverStore();
  // Sleeps `ms`, waking early when Stop() is called.
  void Pause(int64_t ms) const;
  // The topics vigild writes and creates, from the options.
  std::vector<TopicSpec> TopicSpecs() const;

  // Retry pacing after failures: 0.1 s, doubling to 5 s.
  class Backoff {
   public:
    // A try failed: the pause before the next, which is due after it.
    int64_t Failed();
    bool Due() const;
    void Reset() { delay_ms_ = 0, due_ms_ = 0; }

   private:
    int64_t delay_ms_ = 0, due_ms_ = 0;
  };

  ServiceOptions options_;
  const Engine& engine_;
  std::atomic<bool> stop_{false};
  Store* const store_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;  // transactional: outboxes
  std::unique_ptr<RdKafka::Producer> ticker_;    // idempotent: clock ticks
  // Warm topic handles of the two producers (see WarmTopics); destroyed before them.
  std::vector<std::unique_ptr<RdKafka::Topic>> producer_topics_, ticker_topics_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::unique_ptr<BrokerEvents> broker_events_;  // "all brokers down", heard while polling
  std::unique_ptr<DeliveryReports> reports_;     // the transactional producer's, per outbox record
  // By (topic, partition): events partitions and suspect-links partitions.
  std::map<std::pair<std::string, int32_t>, std::unique_ptr<PartitionPipeline>> pipelines_;
  absl::Status rebalance_error_;
  int64_t last_tick_ms_ = 0;
  bool announce_progress_ = false;
  uint64_t events_ = 0, published_ = 0;

  Health own_health_;
  Health& health_;
  // The open transaction: what it publishes up to, per partition, and whether it must be aborted.
  enum class Txn { kNone, kCommitting, kAborting } txn_ = Txn::kNone;
  std::map<PartitionId, uint64_t> in_flight_;
  size_t in_flight_count_ = 0;
  // Outbox records the broker refused for what they are (too large, invalid): the next try publishes
  // a bounded dead letter in their place, so that no record can stall a partition.
  std::map<std::pair<PartitionId, uint64_t>, std::string> refused_;
  // Topics found missing or forbidden, by how many tries in a row: at the third, their records go as dead
  // letters, and the topic is tried again once a minute (an operator may have mended it).
  struct TopicStrikes {
    int count = 0;
    int64_t last_ms = 0;
    std::string error;
  };
  std::map<std::string, TopicStrikes> topic_strikes_;
  std::string stuck_;  // why the last transaction could not publish a record, while it is retried
  // A record could not go to `topic` (missing, forbidden): counts a strike and says so; true once the
  // topic has struck out, so the record goes as a dead letter.
  bool Strike(const PartitionId& p, uint64_t seq, const std::string& topic, const std::string& error);
  // What the open transaction produced, in order: a delivery report's opaque is its index + 1.
  std::vector<std::pair<PartitionId, uint64_t>> produced_;
  // Produces one outbox record into the open transaction; one that cannot be produced for what it is
  // goes as a bounded dead letter instead.
  RdKafka::ErrorCode ProduceOutbox(const PartitionId& p, const state::OutboxRecord& r);
  int fatal_producer_errors_ = 0;
  bool broker_up_ = true, store_fault_ = false;
  Backoff broker_probes_, store_probes_;
};

}  // namespace vigil
