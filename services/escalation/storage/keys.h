// Where vigild keeps each partition's records in RocksDB: the key layout, in
// one place, for the pipeline that writes them and the API that reads them.
//
// Per partition P (5 digits), of the events topic ("e/") or the suspect-links
// topic ("l/"):
//   e/P/meta                                   progress (state::PartitionMeta)
//   e/P/v/<victim>                             a victim's state but its calls and event ids, its alerts by id
//                                              only (state::VictimState; each alert's latest transition is a/)
//   e/P/c/<victim>\0<at><event_id>             each of its calls (state::CallRecord), in (at, event id) order
//   e/P/d/<victim>\0<event_id>                 each event id it applied (state::SeenRecord)
//   e/P/s/<suspect>                            a suspect's state (state::SuspectState)
//   e/P/t/<victim>\0<occurred_at><event_id>    the timeline: each event as consumed, in occurred_at order
//                                              (micros, big-endian with the sign bit flipped), then event_id
//   e/P/a/<alert_id>                           the latest transition of each alert (v1::Alert)
//   e/P/i/<at, newest first><alert_id>         each alert in ListAlerts' order (newest first, then id): the
//                                              fields it filters by (victim_store.h AlertIndexValue)
//   e/P/j/<victim>\0<at, newest first><alert_id>  (empty) each of a victim's alerts, in that order
//   e/P/h/<alert_id>\0<revision, big-endian>    every transition of each alert (v1::Alert), in order
//   e/P/o/<seq, big-endian>                    the outbox (state::OutboxRecord; an alert transition's without
//                                              its value, which is the transition under h/)
// A partition is dropped with one range delete of its prefix.
//
// Across partitions, so that a victim or an alert is found in one step (a hint: the partition named is
// checked, since a dropped partition leaves its entries behind):
//   x/v/<victim>                               the partition holding the victim (4 bytes, big-endian)
//   x/a/<alert_id>                             the partition holding the alert
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/store.h"
#include "common/time_util.h"

namespace vigil {

// What a pipeline consumes: a partition of the events topic (victims' state),
// or of the suspect-links topic (the suspect view, whose findings go back to
// the events topic).
enum class PartitionKind { kEvents, kSuspectLinks };

// The layout of the records above and of the engine state in them (PartitionMeta.state_format). 0: the wave-1
// engine's whole-history state; 3: the live state of engine/live.h, bounded by stream time, its calls and event
// ids under keys of their own; 4: rules v2 (episodes, protections and bail, abandoned calls, first domestic-abuse
// calls, the rules in force in the meta record), with event and evidence fingerprints taken by XXH3
// (common/fingerprint.h ContentHash64) instead of FNV-1a; 5: every transition of each alert kept (h/); 6: the
// time index (i/) and the outbox's alert transitions (o/) without the alert's bytes, which a/ and h/ hold; 7: the
// victim's head record (v/) names each alert by id, without its latest transition, which a/ holds. A partition
// stored in another format is rebuilt from the log when it is loaded.
inline constexpr uint32_t kStateFormat = 7;

// 8 bytes, most significant first: sorts as the number does.
std::string BigEndian(uint64_t v);

std::string PartitionPrefix(int32_t partition, PartitionKind kind = PartitionKind::kEvents);

// The keys of one partition's records.
class PartitionKeys {
 public:
  explicit PartitionKeys(int32_t partition, PartitionKind kind = PartitionKind::kEvents)
      : prefix_(PartitionPrefix(partition, kind)) {}

  const std::string& prefix() const { return prefix_; }
  std::string Meta() const { return prefix_ + "meta"; }
  std::string Victim(absl::string_view id) const { return Record("v/", id); }
  std::string Suspect(absl::string_view id) const { return Record("s/", id); }
  std::string Alert(absl::string_view id) const { return Record("a/", id); }
  // The YAML of a rules version a rules_changed event brought.
  std::string Rules(absl::string_view version) const { return Record("r/", version); }
  std::string Alerts() const { return prefix_ + "a/"; }
  // Alerts by the time of their latest transition, newest first (then by id).
  std::string AlertsByTime() const { return prefix_ + "i/"; }
  std::string AlertByTime(Micros at, absl::string_view alert_id) const;
  // The start of the alerts at or before `at` in that order.
  std::string AlertsByTimeFrom(Micros at) const;
  std::string VictimAlerts(absl::string_view victim_id) const;
  std::string VictimAlert(absl::string_view victim_id, Micros at, absl::string_view alert_id) const;
  // Each transition of an alert, by revision.
  std::string AlertTransitions(absl::string_view alert_id) const { return VictimRecords("h/", alert_id); }
  std::string AlertTransition(absl::string_view alert_id, uint32_t revision) const;
  std::string Victims() const { return prefix_ + "v/"; }
  // A victim's calls and applied event ids, each under its own key (a commit writes only what changed).
  std::string Call(absl::string_view victim_id, Micros at, absl::string_view event_id) const;
  std::string Calls(absl::string_view victim_id) const;
  std::string Seen(absl::string_view victim_id, absl::string_view event_id) const;
  std::string Seens(absl::string_view victim_id) const;
  std::string Suspects() const { return prefix_ + "s/"; }
  std::string Outbox(uint64_t seq) const { return prefix_ + "o/" + BigEndian(seq); }
  std::string Outboxes() const { return prefix_ + "o/"; }

 private:
  std::string Record(absl::string_view kind, absl::string_view id) const;
  // The prefix of one victim's records of a kind: the victim id, then a 0 byte (no id holds one), then each key.
  std::string VictimRecords(absl::string_view kind, absl::string_view victim_id) const;
  std::string prefix_;
};

// e/P/t/<victim>\0: the prefix of one victim's timeline, whose entries follow
// in occurred_at order (then event_id), each value the event as stored.
std::string TimelinePrefix(int32_t partition, absl::string_view victim_id);
std::string TimelineKey(int32_t partition, absl::string_view victim_id, Micros occurred_at,
                        absl::string_view event_id);

// Where a victim or an alert is stored (x/v/, x/a/), and the value naming the partition.
std::string VictimLocationKey(absl::string_view victim_id);
std::string AlertLocationKey(absl::string_view alert_id);
std::string LocationValue(int32_t partition);
// The partition a location value names; nullopt when it is not one.
std::optional<int32_t> ParseLocation(absl::string_view value);

// The partitions that have stored state (a meta record), of one kind.
absl::StatusOr<std::vector<int32_t>> StoredPartitions(const Store& store,
                                                      PartitionKind kind = PartitionKind::kEvents);

}  // namespace vigil
