// One events partition's processing: the same Processor as offline replay,
// with its state in RocksDB and its output in an outbox.
//
// Apply() takes consumed records in offset order; Commit() writes, in one
// atomic RocksDB batch, the changed victims' and suspects' state, their
// timeline entries, the latest transition of each alert, the new outbox
// records (alert transitions and dead letters, numbered from 1 per partition
// in processing order) and the next offset to consume. A crash before Commit
// loses nothing: consumption resumes from the stored offset. The outbox is
// published by the caller (vigild hands what each Commit wrote to its Committer: TakeCommittedOutbox);
// MarkPublished() records it.
//
// Keys: services/escalation/storage/keys.h.
//
// Not thread-safe: one thread drives a partition.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/store.h"
#include "rocksdb/write_batch.h"
#include "services/escalation/engine/processor.h"
#include "services/escalation/pipeline/admission.h"
#include "services/escalation/storage/keys.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

// Where output goes.
struct Topics {
  std::string events = "vigil.events";
  std::string alerts = "vigil.alerts";
  std::string dead_letters = "vigil.events.dlq";
  std::string progress = "vigil.progress";
  // Suspect links, keyed by suspect, for one suspect view across all victims
  // (e.g. "vigil.suspect-links"). Empty (the default): the view is per events
  // partition, in process, and exactly as deterministic as offline replay.
  std::string suspect_links;
  // Further topics for alerts: "LEVEL=topic" (e.g. INSPECTOR=vigil.alerts.inspector)
  // or "force:NAME=topic"; an alert goes to every route it matches, as well as `alerts`.
  std::vector<std::string> routes;
  // How alerts are written to the alert topics: binary protobuf (vigil.v1.Alert), or its proto3 JSON mapping
  // for consumers without Vigil's .proto files. The store keeps protobuf either way.
  enum class AlertFormat { kProtobuf, kJson };
  AlertFormat alerts_format = AlertFormat::kProtobuf;
  // Operational alerts (vigil.v1.SourceAlert, in the same format): a source that has sent nothing to a
  // partition for `source_quiet_after` by its clock ticks. 0 (the default here; vigild's is an hour): none.
  std::string source_alerts = "vigil.source-alerts";
  Micros source_quiet_after = 0;
};

// Sources a partition keeps track of, at most: one more is not watched (its events are applied as any).
inline constexpr int kMaxWatchedSources = 256;

// Dead-letter headers.
inline constexpr char kHeaderReason[] = "vigil-reason";
inline constexpr char kHeaderTopic[] = "vigil-source-topic";
inline constexpr char kHeaderPartition[] = "vigil-source-partition";
inline constexpr char kHeaderOffset[] = "vigil-source-offset";

// An outbox record for the dead-letter topic that always fits in a Kafka message: at most
// kMaxDeadLetterPayload bytes of the value (with its whole size and SHA-256 in headers when cut),
// the key and the reason clipped, and where the record came from.
state::OutboxRecord BoundedDeadLetter(const std::string& dlq_topic, absl::string_view key, absl::string_view value,
                                      absl::string_view reason, absl::string_view source_topic, int32_t partition,
                                      int64_t offset);

inline constexpr size_t kDefaultMaxHeldVictims = 5000;

class PartitionPipeline {
 public:
  // Loads the partition's stored state. DATA_LOSS when it cannot be parsed.
  // REQUIRES: store, engine, topics and admission outlive the pipeline.
  static absl::StatusOr<std::unique_ptr<PartitionPipeline>> Load(
      Store* store, const Engine* engine, const Topics* topics, const AdmissionPolicy* admission, int32_t partition,
      PartitionKind kind = PartitionKind::kEvents);

  // Applies one consumed record. A record that is not admitted (see
  // admission.h) or cannot be applied becomes a dead letter with the reason.
  // If the store cannot be read (a victim evicted from memory is loaded on its
  // next event), the batch is abandoned: later records are ignored and Commit
  // returns the error without writing anything.
  void Apply(const ConsumedRecord& record);
  // A record with no timestamp and no signature (tests, benchmarks).
  void Apply(int64_t offset, absl::string_view key, absl::string_view value) {
    ConsumedRecord record;
    record.offset = offset;
    record.key = key;
    record.value = value;
    Apply(record);
  }

  // Writes everything applied since the last Commit atomically (see above),
  // then lets go of idle victims beyond max_held_victims (they stay in the store).
  absl::Status Commit();

  // The size of what the last Commit wrote (RocksDB WriteBatch bytes).
  size_t last_commit_bytes() const { return last_commit_bytes_; }
  // What the records applied since the last Commit hold for it: their RocksDB batch so far and the outbox kept
  // for handing over (KeepCommittedOutbox). The changed victims are added at the Commit, in proportion.
  size_t pending_bytes() const { return pending_.GetDataSize() + pending_outbox_bytes_; }

  // Victims held in memory after a Commit, at most (one with a deadline pending is loaded when it falls due).
  void set_max_held_victims(size_t n) { max_held_victims_ = n; }

  // Outbox records not yet known to be published, in seq order, as stored.
  absl::StatusOr<std::vector<state::OutboxRecord>> Unpublished() const;
  // From now on, keeps the outbox records each Commit writes for TakeCommittedOutbox (off by default: nothing
  // is kept for a caller that reads the outbox back from the store).
  void KeepCommittedOutbox() { keep_outbox_ = true; }
  // The outbox records the Commits since the last call wrote, in seq order (handed over in memory to whoever
  // publishes them, instead of being read back).
  std::vector<state::OutboxRecord> TakeCommittedOutbox() { return std::exchange(committed_outbox_, {}); }
  // Everything up to `seq` is published: forget it.
  absl::Status MarkPublished(uint64_t seq);

  int32_t partition() const { return partition_; }
  PartitionKind kind() const { return kind_; }
  const std::string& topic() const { return kind_ == PartitionKind::kEvents ? topics_.events : topics_.suspect_links; }
  int64_t next_offset() const { return meta_.next_offset(); }
  uint64_t outbox_seq() const { return meta_.outbox_seq(); }
  uint64_t published_seq() const { return meta_.published_seq(); }
  Micros stream_time() const { return processor_.stream_time(); }
  // Events applied to state since Load (clock ticks and dead letters not counted); including those of a batch
  // not yet committed.
  uint64_t applied() const { return applied_; }
  const Processor& processor() const { return processor_; }

  // A digest of the partition's committed engine state (victims and suspects, as stored), for comparing a
  // rebuild or an offline replay (Processor::StateDigest gives the same for the same state).
  absl::StatusOr<std::string> StateDigest() const;

 private:
  PartitionPipeline(Store* store, const Engine* engine, const Topics* topics, const AdmissionPolicy* admission,
                    int32_t partition, PartitionKind kind)
      : store_(*store), topics_(*topics), admission_(*admission), partition_(partition), kind_(kind),
        keys_(partition, kind), processor_(engine) {
    processor_.set_route_suspect_links(topics->suspect_links.empty());
    processor_.set_loader([this](const std::string& id) { return LoadVictim(id); });
  }

  // A victim's stored state; an error (remembered in store_error_) when it cannot be read.
  absl::StatusOr<std::optional<state::VictimState>> LoadVictim(const std::string& victim_id);

  void ApplyLink(const ConsumedRecord& record);

  // Parses every stored Message under prefix and hands it to fn (which returns a Status; the first error
  // stops the scan). DATA_LOSS when one is unreadable.
  template <typename Message, typename Fn>
  absl::Status LoadAll(const std::string& prefix, Fn fn) const;
  // An outbox record; of an alert transition when `transition` is given (stored without its value: Enqueue).
  void AddOutbox(const std::string& topic, const std::string& key, const std::string& value,
                 std::vector<std::pair<std::string, std::string>> headers = {},
                 const v1::Alert* transition = nullptr);
  // What the alert topics get of a message whose protobuf bytes are `bytes`: those, or its JSON line
  // (Topics::alerts_format).
  std::string InAlertsFormat(const google::protobuf::Message& message, std::string bytes) const;
  // Numbers the record (the next outbox seq) and adds it to the pending batch.
  void Enqueue(state::OutboxRecord record);
  // A bounded dead letter (see BoundedDeadLetter) of the record, with the reason.
  void DeadLetter(const ConsumedRecord& record, const absl::Status& reason);
  void Emit(std::vector<v1::Alert> alerts);
  // A source sent an event the broker took at `at`: remembered; a quiet one reported back (RESOLVED).
  void SourceSent(const std::string& source, Micros at);
  // The partition's clock reads `now`: each source silent for source_quiet_after is reported quiet (FIRING).
  void SourcesQuietBy(Micros now);
  void EmitSourceAlert(const state::SourceSeen& seen, v1::AlertState state, Micros at);
  // The time of the alert's latest transition in the store (before this batch); nullopt when none is. A store
  // that cannot be read abandons the batch (store_error_).
  std::optional<Micros> StoredAlertAt(const std::string& alert_id);
  // Writes each alert's latest transition of the batch (a/) and its index entries (i/, j/), once an alert
  // however often it moved in the batch, deleting the entries of its transition stored before.
  void WriteLatestAlerts();

  Store& store_;
  const Topics& topics_;
  const AdmissionPolicy& admission_;
  const int32_t partition_;
  const PartitionKind kind_;
  const PartitionKeys keys_;
  Processor processor_;
  state::PartitionMeta meta_;
  rocksdb::WriteBatch pending_;  // timeline, alerts and outbox since the last Commit
  std::vector<state::OutboxRecord> pending_outbox_;    // the outbox records in pending_
  size_t pending_outbox_bytes_ = 0;                    // their values' bytes
  std::vector<state::OutboxRecord> committed_outbox_;  // written by Commits, not yet taken
  bool keep_outbox_ = false;
  absl::Status store_error_;     // loading a victim failed: the batch is abandoned
  // The alerts that moved since the last Commit, in the order they first did: each one's latest transition.
  struct LatestAlert {
    std::optional<Micros> stored_at;  // its latest transition's time in the store, before this batch
    v1::Alert alert;
    std::string bytes;  // DeterministicBytes(alert)
  };
  std::vector<LatestAlert> batch_alerts_;
  absl::flat_hash_map<std::string, size_t> batch_alert_index_;  // alert id: its place in batch_alerts_
  size_t max_held_victims_ = kDefaultMaxHeldVictims;
  size_t last_commit_bytes_ = 0;
  uint64_t applied_ = 0;
};

}  // namespace vigil
