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

void SetTimestamp(Micros micros, google::protobuf::Timestamp* ts) {
  Micros seconds = micros / kMicrosPerSecond;
  Micros rest = micros % kMicrosPerSecond;
  if (rest < 0) {
    rest += kMicrosPerSecond;
    --seconds;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(rest * 1000));
}

google::protobuf::Timestamp ToTimestamp(Micros micros) {
  google::protobuf::Timestamp ts;
  SetTimestamp(micros, &ts);
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

namespace {

constexpr char kRfc3339Format[] = "%Y-%m-%dT%H:%M:%E*SZ";

// Writes `value` as exactly `width` decimal digits at `out` (value < 10^width).
char* Digits(char* out, int64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

}  // namespace

std::string FormatRfc3339(Micros micros) {
  // Years 1970-9999 by arithmetic: alert reasons and episode keys format a time on the engine's path, where
  // absl's general formatter (a time zone lookup, a format string parsed) took 2,800 instructions a call.
  // The bytes are absl's for every time (time_util_test compares them); the rest of the range goes to absl.
  constexpr Micros kEnd = Micros{253402300800} * kMicrosPerSecond;  // 10000-01-01T00:00:00Z
  if (micros < 0 || micros >= kEnd) {
    return absl::FormatTime(kRfc3339Format, absl::FromUnixMicros(micros), absl::UTCTimeZone());
  }
  const int64_t seconds = micros / kMicrosPerSecond;
  const int64_t fraction = micros % kMicrosPerSecond;
  const int64_t days = seconds / 86400;
  const int64_t of_day = seconds % 86400;
  // The civil date of a day count (H. Hinnant, "chrono-compatible low-level date algorithms"), eras of 400 years
  // from 0000-03-01; days >= 0 here.
  const int64_t z = days + 719468;
  const int64_t era = z / 146097;
  const int64_t doe = z - era * 146097;                                  // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);           // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                // [0, 11], from March
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buffer[32];
  char* p = Digits(buffer, year, 4);
  *p++ = '-';
  p = Digits(p, month, 2);
  *p++ = '-';
  p = Digits(p, day, 2);
  *p++ = 'T';
  p = Digits(p, of_day / 3600, 2);
  *p++ = ':';
  p = Digits(p, of_day / 60 % 60, 2);
  *p++ = ':';
  p = Digits(p, of_day % 60, 2);
  if (fraction != 0) {  // as many digits as it needs (%E*S): trailing zeros left out
    *p++ = '.';
    char* digits = p;
    p = Digits(p, fraction, 6);
    while (p > digits && p[-1] == '0') --p;
  }
  *p++ = 'Z';
  return std::string(buffer, p);
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
