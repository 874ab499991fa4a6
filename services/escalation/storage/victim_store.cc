#include "services/escalation/storage/victim_store.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace vigil {

void WriteVictim(const PartitionKeys& keys, const VictimDelta& delta, rocksdb::WriteBatch* batch) {
  const std::string& id = delta.head.victim_id();
  for (const auto& [at, event_id] : delta.calls_deleted) batch->Delete(keys.Call(id, at, event_id));
  for (const std::string& event_id : delta.seen_deleted) batch->Delete(keys.Seen(id, event_id));
  for (const state::CallRecord& c : delta.calls_put) {
    batch->Put(keys.Call(id, c.at(), c.event_id()), DeterministicBytes(c));
  }
  for (const state::SeenRecord& s : delta.seen_put) batch->Put(keys.Seen(id, s.event_id()), DeterministicBytes(s));
  batch->Put(keys.Victim(id), DeterministicBytes(delta.head));
}

namespace {
absl::Status Unreadable(absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("a stored victim's ", what, " is unreadable; drop the partition to rebuild it"));
}
}  // namespace

absl::Status AddVictimRecords(const Store& store, const PartitionKeys& keys, state::VictimState* head) {
  state::VictimState& v = *head;
  bool bad = false;
  VIGIL_RETURN_IF_ERROR(store.Scan(keys.Calls(v.victim_id()), [&](absl::string_view, absl::string_view value) {
    bad = !v.add_calls()->ParseFromArray(value.data(), static_cast<int>(value.size()));
    return !bad;
  }));
  if (bad) return Unreadable("call");
  std::vector<state::SeenRecord> seen;
  VIGIL_RETURN_IF_ERROR(store.Scan(keys.Seens(v.victim_id()), [&](absl::string_view, absl::string_view value) {
    bad = !seen.emplace_back().ParseFromArray(value.data(), static_cast<int>(value.size()));
    return !bad;
  }));
  if (bad) return Unreadable("event id");
  std::sort(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return a.order() < b.order(); });
  for (state::SeenRecord& s : seen) {
    v.add_seen_event_ids(std::move(*s.mutable_event_id()));
    v.add_seen_fingerprints(s.fingerprint());
    v.add_seen_at(s.at());
    v.add_seen_order(s.order());
  }
  // Each alert as its latest transition, written in the same batch as the head that names it.
  for (state::AlertRecord& r : *v.mutable_alerts()) {
    VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> latest, store.Get(keys.Alert(r.alert().alert_id())));
    if (!latest || !r.mutable_alert()->ParseFromString(*latest)) return Unreadable("alert");
  }
  return absl::OkStatus();
}

absl::StatusOr<state::VictimState> ReadVictim(const Store& store, const PartitionKeys& keys, absl::string_view head) {
  state::VictimState v;
  if (!v.ParseFromArray(head.data(), static_cast<int>(head.size()))) return Unreadable("state");
  VIGIL_RETURN_IF_ERROR(AddVictimRecords(store, keys, &v));
  return v;
}

absl::StatusOr<std::optional<state::VictimState>> FindVictim(const Store& store, const PartitionKeys& keys,
                                                            absl::string_view victim_id) {
  VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> head, store.Get(keys.Victim(victim_id)));
  if (!head) return std::nullopt;
  return ReadVictim(store, keys, *head);
}

std::string AlertIndexValue(const v1::Alert& alert) {
  v1::Alert summary;
  summary.set_victim_id(alert.victim_id());
  summary.set_rule(alert.rule());
  summary.set_force(alert.force());
  summary.set_level(alert.level());
  summary.set_state(alert.state());
  *summary.mutable_at() = alert.at();
  return DeterministicBytes(summary);
}

}  // namespace vigil
