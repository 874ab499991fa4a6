#include "common/time_util.h"

#include <limits>
#include <random>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace vigil {
namespace {

TEST(TimeUtilTest, Rfc3339RoundTrips) {
  auto t = ParseRfc3339("2024-09-07T10:00:00Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(FormatRfc3339(*t), "2024-09-07T10:00:00Z");
  EXPECT_EQ(ToMicros(ToTimestamp(*t + 5)), *t + 5);
  EXPECT_EQ(ParseRfc3339("yesterday").status().code(), absl::StatusCode::kInvalidArgument);
}

// FormatRfc3339 computes years 1970-9999 itself: the bytes must be absl's, for every time.
TEST(TimeUtilTest, Rfc3339IsAbslsFormatForEveryTime) {
  auto absl_format = [](Micros m) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(m), absl::UTCTimeZone());
  };
  const Micros end = Micros{253402300800} * kMicrosPerSecond;  // 10000-01-01
  std::vector<Micros> times = {0, 1, 10, 999999, kMicrosPerSecond, kMicrosPerDay - 1, kMicrosPerDay,
                               *ParseRfc3339("2000-02-29T23:59:59.5Z"), *ParseRfc3339("2100-03-01T00:00:00Z"),
                               *ParseRfc3339("2024-12-31T23:59:59.999999Z"), end - 1, end, end + 1, -1,
                               -kMicrosPerDay, std::numeric_limits<Micros>::min() / 2,
                               std::numeric_limits<Micros>::max() / 2};
  std::mt19937_64 random(7);
  std::uniform_int_distribution<Micros> any(-end, 2 * end);
  std::uniform_int_distribution<Micros> whole_seconds(0, end / kMicrosPerSecond - 1);
  for (int i = 0; i < 200000; ++i) {
    times.push_back(any(random));
    times.push_back(whole_seconds(random) * kMicrosPerSecond);             // no fraction
    times.push_back(whole_seconds(random) * kMicrosPerSecond + 500000);    // a trailing-zero fraction
  }
  for (const Micros m : times) ASSERT_EQ(FormatRfc3339(m), absl_format(m)) << m;
}

TEST(TimeUtilTest, NegativeMicrosBecomeAValidTimestamp) {
  const auto ts = ToTimestamp(-1);
  EXPECT_EQ(ts.seconds(), -1);
  EXPECT_EQ(ts.nanos(), 999999000);
  EXPECT_EQ(ToMicros(ts), -1);
}

TEST(TimeUtilTest, Durations) {
  EXPECT_EQ(*ParseDuration("90s"), 90 * kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("10m"), 10 * kMicrosPerMinute);
  EXPECT_EQ(*ParseDuration("365d"), 365 * kMicrosPerDay);
  for (const char* bad : {"", "h", "10", "10x", "-1h", "1.5h", "10 m"}) {
    EXPECT_EQ(ParseDuration(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(FormatDuration(60 * kMicrosPerMinute), "1h");
  EXPECT_EQ(FormatDuration(28 * kMicrosPerDay), "28d");
  EXPECT_EQ(FormatDuration(90 * kMicrosPerSecond), "90s");
}

}  // namespace
}  // namespace vigil
