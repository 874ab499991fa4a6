#include "common/time_util.h"

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
