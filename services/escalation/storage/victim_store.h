// A victim's state in the store: a head record (state::VictimState without
// its calls and applied event ids, and its alerts by id only) and one record
// per call and per event id (keys.h), so that a commit writes what changed,
// not the whole victim; each alert is completed by its latest transition (a/). The
// pipeline writes and reads victims here; the API reads them here. And the
// alert time index's entries, which both read and the pipeline writes.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/store.h"
#include "rocksdb/write_batch.h"
#include "services/escalation/engine/codec.h"
#include "services/escalation/storage/keys.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

// Adds to `batch` the writes of one victim's delta.
void WriteVictim(const PartitionKeys& keys, const VictimDelta& delta, rocksdb::WriteBatch* batch);

// Adds a victim's calls and applied event ids, as stored, to its parsed head record, and each of its alerts'
// latest transition: the victim whole, as EncodeVictim gives it. DATA_LOSS when a record is unreadable or an
// alert's transition is missing.
absl::Status AddVictimRecords(const Store& store, const PartitionKeys& keys, state::VictimState* head);
// The same from the head record's bytes.
absl::StatusOr<state::VictimState> ReadVictim(const Store& store, const PartitionKeys& keys,
                                              absl::string_view head);
// The same by id; nullopt when the partition holds no state for the victim.
absl::StatusOr<std::optional<state::VictimState>> FindVictim(const Store& store, const PartitionKeys& keys,
                                                            absl::string_view victim_id);

// The value of an alert's entry in the time index (keys.h, e/P/i/): the alert with only the fields ListAlerts
// filters by (victim, rule, force, level, state, time), so that a listing reads the whole alert (e/P/a/) only
// for those it returns, and the alert's bytes are not stored a third time.
std::string AlertIndexValue(const v1::Alert& alert);

}  // namespace vigil
