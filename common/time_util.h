// Event-time helpers. Vigil's engine keeps time as microseconds since the Unix
// epoch (int64), taken only from events; these convert at the edges.
// Thread-safe: all functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "google/protobuf/timestamp.pb.h"

namespace vigil {

using Micros = int64_t;

inline constexpr Micros kMicrosPerSecond = 1'000'000;
inline constexpr Micros kMicrosPerMinute = 60 * kMicrosPerSecond;
inline constexpr Micros kMicrosPerHour = 60 * kMicrosPerMinute;
inline constexpr Micros kMicrosPerDay = 24 * kMicrosPerHour;

Micros ToMicros(const google::protobuf::Timestamp& ts);
google::protobuf::Timestamp ToTimestamp(Micros micros);
// The same, into a message's field (`*m.mutable_at() = ToTimestamp(t)` builds a temporary and copies it).
void SetTimestamp(Micros micros, google::protobuf::Timestamp* ts);

// RFC 3339, e.g. "2024-09-07T10:00:00Z". INVALID_ARGUMENT when it is not one.
absl::StatusOr<Micros> ParseRfc3339(absl::string_view text);
std::string FormatRfc3339(Micros micros);

// The longest duration anything may be configured to: 100 years (a setting's own range is narrower).
inline constexpr Micros kMaxDuration = 36500 * kMicrosPerDay;

// A duration such as "90s", "10m", "24h", "365d" (a whole number and one unit), at most kMaxDuration.
// INVALID_ARGUMENT, saying what was expected (the text echoed at most 80 characters), otherwise.
absl::StatusOr<Micros> ParseDuration(absl::string_view text);
// The shortest exact form: 600000000 -> "10m".
std::string FormatDuration(Micros micros);

}  // namespace vigil
