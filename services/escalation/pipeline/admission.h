// What vigild admits from the events topic, and why it refuses the rest: one
// function that the live pipeline and the replay of a dumped log (vigilctl
// replay --records) both call, so that they agree record by record.
//
// A record is refused (and dead-lettered by the caller, with the reason) when:
// - it is larger than max_event_bytes (RESOURCE_EXHAUSTED), or not a
//   vigil.v1.Event (INVALID_ARGUMENT);
// - it carries what only vigild or its operators write (a clock tick, an
//   acknowledgement, a suspect finding, a rules change) without vigild's
//   signature (PERMISSION_DENIED): nobody with mere write access to the topic
//   can silence an alert, move a clock or change the rules;
// - its key is not its victim (INVALID_ARGUMENT; ticks use the key __clock__);
// - it happened in the future: occurred_at later than the record's own Kafka
//   timestamp plus future_tolerance (OUT_OF_RANGE). The timestamp is in the
//   log, so a replay refuses the same records; such an event moves no clock.
// Unknown protobuf fields are dropped, not stored: the event is kept as the
// contract defines it.
//
// Pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clip.h"
#include "common/signer.h"
#include "common/time_util.h"
#include "vigil/v1/event.pb.h"

namespace vigil {

inline constexpr char kClockKey[] = "__clock__";
// The key (and victim_id) of a rules_changed event, which concerns no victim.
inline constexpr char kRulesKey[] = "__rules__";

struct AdmissionPolicy {
  // Verifies what only vigild writes; null: nothing of the kind is admitted.
  const Signer* signer = nullptr;
  size_t max_event_bytes = 64 * 1024;
  Micros future_tolerance = 5 * kMicrosPerMinute;
};

// One consumed record of the events topic.
struct ConsumedRecord {
  int64_t offset = 0;
  absl::string_view key;
  absl::string_view value;
  // The record's Kafka timestamp (ms since the epoch); negative when there is none.
  int64_t timestamp_ms = -1;
  absl::string_view signature;  // the vigil-signature header, if any
};

struct Admitted {
  v1::Event event;
  // The bytes to keep in the timeline: the record's own, or the event again
  // without the unknown fields it carried.
  std::string stored;
};

// Whether the payload is one that only vigild may write.
bool IsInternal(const v1::Event& event);

absl::StatusOr<Admitted> Admit(const ConsumedRecord& record, const AdmissionPolicy& policy);

// A dead letter is at most this many bytes of the refused record's value (and of its key), so that
// with its headers it always fits in a Kafka message, whatever it refuses.
inline constexpr size_t kMaxDeadLetterPayload = 64 * 1024;
inline constexpr size_t kMaxDeadLetterKey = 1024;
inline constexpr size_t kMaxDeadLetterReason = 1024;

// Headers that say what a truncated dead letter held: the size and SHA-256 of the whole value.
inline constexpr char kHeaderValueBytes[] = "vigil-value-bytes";
inline constexpr char kHeaderValueSha256[] = "vigil-value-sha256";
inline constexpr char kHeaderTruncated[] = "vigil-truncated";

// Lower-case hex SHA-256 of data.
std::string Sha256Hex(absl::string_view data);

}  // namespace vigil
