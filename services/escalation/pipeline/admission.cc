#include "services/escalation/pipeline/admission.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/processor.h"

namespace vigil {

bool IsInternal(const v1::Event& event) {
  return event.has_clock_tick() || event.has_escalation_acknowledged() || event.has_suspect_finding();
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
          event.has_clock_tick() ? "clock_tick" : event.has_escalation_acknowledged() ? "escalation_acknowledged"
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
  if (record.timestamp_ms >= 0 && event.has_occurred_at()) {
    const Micros occurred = ToMicros(event.occurred_at());
    // Saturating: a record timestamp beyond 2100 is no licence to overflow.
    constexpr int64_t kLastMs = int64_t{4102444800} * 1000;
    const Micros latest = std::min(record.timestamp_ms, kLastMs) * 1000 + policy.future_tolerance;
    if (occurred > latest) {
      return absl::OutOfRangeError(absl::StrCat(
          "occurred_at ", FormatRfc3339(occurred), " is later than the record's timestamp ",
          FormatRfc3339(record.timestamp_ms * 1000), " plus the tolerance (", policy.future_tolerance / kMicrosPerSecond,
          " s): an event from the future is refused and moves no clock"));
    }
  }
  if (event.GetReflection()->GetUnknownFields(event).empty()) {
    out.stored.assign(record.value.data(), record.value.size());
  } else {
    event.DiscardUnknownFields();
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
