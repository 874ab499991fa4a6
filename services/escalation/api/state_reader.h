// Reads vigild's stored views for the API: victims' state, timelines, alerts
// and how far each partition has been applied (the RocksDB keys described in
// pipeline/partition.h). Reads see whole committed batches, never half of one.
// Thread-safe: it only reads (the store allows concurrent reads and writes);
// its cache of which partitions are stored is behind a mutex.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/ownership.h"
#include "common/store.h"
#include "common/time_util.h"
#include "services/escalation/storage/keys.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/event.pb.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

class StateReader {
 public:
  // With `owned` (outliving the reader), only the partitions it says this instance owns and has restored are
  // read: a copy of a partition handed over to another instance, or one still catching up, is never answered
  // from. Without, every stored partition.
  explicit StateReader(const Store* store, const Ownership* owned = nullptr) : store_(*store), owned_(owned) {}

  struct Victim {
    int32_t partition = 0;
    v1::state::VictimState state;
  };
  // The victim's state, in whichever stored partition holds it; nullopt when none does.
  absl::StatusOr<std::optional<Victim>> FindVictim(absl::string_view victim_id) const;
  // Only which partition holds the victim (no state parsed); nullopt when none does.
  absl::StatusOr<std::optional<int32_t>> FindVictimPartition(absl::string_view victim_id) const;

  // The latest transition of an alert; nullopt when no stored partition has it.
  absl::StatusOr<std::optional<v1::Alert>> FindAlert(absl::string_view alert_id) const;

  // Every transition of an alert stored in `partition`, revision 1 first.
  absl::StatusOr<std::vector<v1::Alert>> AlertTransitions(int32_t partition, absl::string_view alert_id) const;

  // Calls fn with the latest transition of every stored alert, until it returns false.
  absl::Status ForEachAlert(const std::function<bool(const v1::Alert&)>& fn) const;

  // Which alerts ListAlerts wants, as far as the indexes can say.
  struct AlertQuery {
    std::string victim_id;                         // empty: every victim's
    Micros start = INT64_MIN, end = INT64_MAX;     // start <= at < end
    std::optional<std::pair<Micros, std::string>> after;  // the (at, id) the previous page ended with
  };
  // The alerts matching the query and `match`, in ListAlerts' order (newest first, then by id), at most
  // `limit`: read from the time index of each partition (or the victim's own, in its partition), stopping
  // in each at `limit` matches or at `start`. From the time index, `match` is first given the alert with only
  // the fields that index holds (alert_id, victim_id, rule, force, level, state, at), then, if it matched,
  // the whole alert.
  absl::StatusOr<std::vector<v1::Alert>> ListAlerts(const AlertQuery& query,
                                                   const std::function<bool(const v1::Alert&)>& match,
                                                   size_t limit) const;

  struct TimelinePage {
    // Each a v1::Event as stored (its wire encoding, checked to be well formed, not parsed): the API
    // sends them on as they are.
    std::vector<std::string> events;
    // Where the next page starts (opaque; for `resume`); empty after the last event.
    std::string resume;
  };
  // A victim's events with start <= occurred_at < end, in time order, at most
  // `limit`, starting at `resume` (from an earlier page) or the beginning.
  absl::StatusOr<TimelinePage> Timeline(int32_t partition, absl::string_view victim_id, Micros start, Micros end,
                                        absl::string_view resume, size_t limit) const;

  // The victim's events with these ids, in time order (absent ones are left out).
  absl::StatusOr<std::vector<v1::Event>> Events(int32_t partition, absl::string_view victim_id,
                                                const std::vector<std::string>& event_ids) const;

  // The offset of the next record the partition will consume: every record
  // below it has been applied. 0 when the partition has no stored state.
  absl::StatusOr<int64_t> AppliedUpTo(int32_t partition) const;
  // The YAML of a rules version that a rules_changed event brought to the partition, if it did.
  absl::StatusOr<std::optional<std::string>> RulesYaml(int32_t partition, absl::string_view version) const;

 private:
  // The stored partitions this instance may read (see the constructor), listed once and again when `refresh` (a lookup that
  // missed: a partition may have been assigned since).
  absl::StatusOr<std::vector<int32_t>> Partitions(bool refresh) const;
  // The first stored partition that holds the record `key` names for `id`, and the value.
  // Which record of a partition: PartitionKeys::Victim, PartitionKeys::Alert.
  using RecordKey = std::string (PartitionKeys::*)(absl::string_view) const;
  absl::StatusOr<std::optional<std::pair<int32_t, std::string>>> Probe(RecordKey key, absl::string_view id) const;
  // The same found in one step from its location (x/), probing only when the partition it names no longer
  // holds it; nullopt when it has no location (it was never stored here).
  absl::StatusOr<std::optional<std::pair<int32_t, std::string>>> Locate(const std::string& location, RecordKey key,
                                                                        absl::string_view id) const;

  bool Readable(int32_t partition) const { return owned_ == nullptr || owned_->Readable(partition); }

  const Store& store_;
  const Ownership* const owned_;
  mutable std::mutex mu_;
  mutable std::optional<std::vector<int32_t>> partitions_;
};

}  // namespace vigil
