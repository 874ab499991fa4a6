// Structural validation of incoming events: what must be present and well-formed
// before the engine may apply an event. Pure; thread-safe.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "vigil/v1/event.pb.h"

namespace vigil {

inline constexpr size_t kMaxIdLength = 128;
inline constexpr size_t kMaxTextLength = 1024;

// OK, or INVALID_ARGUMENT whose message starts with the field at fault, e.g.
// "incident_graded.grade: required (IMMEDIATE, PRIORITY, ...)".
absl::Status ValidateEvent(const v1::Event& event);

// No control character: no byte below 0x20 and none 0x7f (ids, and what callers state about a read).
bool IsPrintable(absl::string_view s);

}  // namespace vigil
