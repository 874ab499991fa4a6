#include "common/watermarks.h"

#include <thread>

#include "gtest/gtest.h"

namespace vigil {
namespace {

TEST(WatermarksTest, AWaiterIsWokenWhenItsRecordIsAppliedAndOnlyThen) {
  Watermarks applied;
  EXPECT_FALSE(applied.WaitPast(0, 0, absl::Now()));  // nothing applied yet
  applied.Set(0, 5);                                   // records 0..4
  EXPECT_TRUE(applied.WaitPast(0, 4, absl::Now()));
  EXPECT_FALSE(applied.WaitPast(0, 5, absl::Now()));
  EXPECT_FALSE(applied.WaitPast(1, 0, absl::Now()));  // another partition
  applied.Set(0, 3);                                   // never goes back (a reload starts from the store)
  EXPECT_TRUE(applied.WaitPast(0, 4, absl::Now()));
  std::thread committer([&] { applied.Set(0, 9); });
  EXPECT_TRUE(applied.WaitPast(0, 8, absl::Now() + absl::Seconds(30)));
  committer.join();
}

}  // namespace
}  // namespace vigil
