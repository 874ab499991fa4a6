#include "services/escalation/pipeline/admission.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/codec.h"
#include "services/escalation/engine/processor.h"

namespace vigil {

bool IsInternal(const v1::Event& event) {
  return event.has_clock_tick() || event.has_escalation_acknowledged() || event.has_suspect_finding() ||
         event.has_rules_changed();
}

absl::StatusOr<Admitted> Admit(const ConsumedRecord& record, const AdmissionPolicy& policy) {
  if (record.value.size() > policy.max_event_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("an event of ", record.value.size(), " bytes; at most ",
                                                     policy.max_event_bytes, " are accepted"));
  }
  Admitted out;
  v1::Event& event = out.event;
  if (!event.ParseFromArray(record.value.data(), static_cast<int>(record.value.size()))) {
    return absl::InvalidArgumentError("not a vigil.v1.Event (protobuf)");
  }
  if (IsInternal(event)) {
    if (policy.signer == nullptr || !policy.signer->Verify(record.value, record.signature)) {
      return absl::PermissionDeniedError(absl::StrCat(
          event.has_clock_tick()                ? "clock_tick"
          : event.has_escalation_acknowledged() ? "escalation_acknowledged"
          : event.has_rules_changed()           ? "rules_changed"
                                                : "suspect_finding",
          ": written by vigild only, and this record is not signed by it (acknowledge through the API)"));
    }
  }
  if (event.has_clock_tick()) {
    if (record.key != kClockKey || !event.has_occurred_at()) {
      return absl::InvalidArgumentError("clock_tick: written by vigild only, on the key __clock__");
    }
  } else if (record.key != event.victim_id()) {
    return absl::InvalidArgumentError("the record's key is not the event's victim_id");
  }
  // Times outside 1970-2100 are left to validation, which refuses them; within, no arithmetic overflows.
  constexpr int64_t kLastSeconds = 4102444800;  // 2100-01-01
  const auto& at = event.occurred_at();
  if (record.timestamp_ms >= 0 && event.has_occurred_at() && at.seconds() >= 0 && at.seconds() < kLastSeconds) {
    const Micros occurred = ToMicros(at);
    const Micros stamped = std::min(record.timestamp_ms, kLastSeconds * 1000) * 1000;
    if (occurred > stamped + policy.future_tolerance) {
      return absl::OutOfRangeError(absl::StrCat(
          "occurred_at ", FormatRfc3339(occurred), " is later than the record's timestamp ", FormatRfc3339(stamped),
          " plus the tolerance (", policy.future_tolerance / kMicrosPerSecond,
          " s): an event from the future is refused and moves no clock"));
    }
  }
  // Unknown fields, at any depth, are dropped: what is kept is the event the contract defines.
  DropUnknownFields(&event);
  if (event.ByteSizeLong() == record.value.size()) {
    out.stored.assign(record.value.data(), record.value.size());  // nothing was dropped
  } else {
    out.stored = DeterministicBytes(event);
  }
  return out;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

}  // namespace vigil
