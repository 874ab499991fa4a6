#include "common/time_util.h"

#include <cctype>
#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/clip.h"

namespace vigil {

Micros ToMicros(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * kMicrosPerSecond + ts.nanos() / 1000;
}

google::protobuf::Timestamp ToTimestamp(Micros micros) {
  google::protobuf::Timestamp ts;
  Micros seconds = micros / kMicrosPerSecond;
  Micros rest = micros % kMicrosPerSecond;
  if (rest < 0) {
    rest += kMicrosPerSecond;
    --seconds;
  }
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(rest * 1000));
  return ts;
}

absl::StatusOr<Micros> ParseRfc3339(absl::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an RFC 3339 time (e.g. 2024-09-07T10:00:00Z): '", text, "'"));
  }
  return absl::ToUnixMicros(t);
}

std::string FormatRfc3339(Micros micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

absl::StatusOr<Micros> ParseDuration(absl::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("not a duration: '", Clip(text, 80), "'",
                                                   " (a whole number and one of s, m, h, d, e.g. 24h; at most ",
                                                   kMaxDuration / kMicrosPerDay, "d)"));
  };
  if (text.size() < 2) return bad();
  Micros unit = 0;
  switch (text.back()) {
    case 's': unit = kMicrosPerSecond; break;
    case 'm': unit = kMicrosPerMinute; break;
    case 'h': unit = kMicrosPerHour; break;
    case 'd': unit = kMicrosPerDay; break;
    default: return bad();
  }
  absl::string_view digits = text.substr(0, text.size() - 1);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value < 0 || value > kMaxDuration / unit) {
    return bad();
  }
  return value * unit;
}

std::string FormatDuration(Micros micros) {
  if (micros >= 7 * kMicrosPerDay && micros % kMicrosPerDay == 0) return absl::StrCat(micros / kMicrosPerDay, "d");
  if (micros != 0 && micros % kMicrosPerHour == 0) return absl::StrCat(micros / kMicrosPerHour, "h");
  if (micros != 0 && micros % kMicrosPerMinute == 0) {
    return absl::StrCat(micros / kMicrosPerMinute, "m");
  }
  return absl::StrCat(micros / kMicrosPerSecond, "s");
}

}  // namespace vigil
