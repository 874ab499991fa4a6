// AlertRing: the transitions the shared alert-topic consumer has read, followed by every watcher.
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/escalation/api/alert_feed.h"

namespace vigil {
namespace {

using Outcome = AlertRing::Reader::Outcome;

v1::Alert Alert(const std::string& id) {
  v1::Alert a;
  a.set_alert_id(id);
  a.set_reason(std::string(100, 'x'));
  return a;
}

// Every transition the reader has now, as "id@cursor-position".
std::vector<std::string> Drain(AlertRing::Reader& reader) {
  std::vector<std::string> out;
  for (;;) {
    auto next = reader.Read(0);
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || next->outcome != Outcome::kTransition) return out;
    out.push_back(next->alert.alert_id());
  }
}

TEST(AlertRingTest, ReadersAttachOnlyOnceTheStartIsKnown) {
  auto ring = std::make_shared<AlertRing>(1 << 20);
  EXPECT_FALSE(ring->AttachNow());
  EXPECT_FALSE(ring->Attach({{0, 0}, {1, 0}}));
  EXPECT_FALSE(ring->WaitStarted(absl::Milliseconds(1)));
  ring->Start({{0, 5}, {1, 7}});
  EXPECT_TRUE(ring->WaitStarted(absl::ZeroDuration()));
  EXPECT_TRUE(ring->AttachNow());
}

TEST(AlertRingTest, AReaderFromNowSeesWhatIsReadAfterItAndNothingBefore) {
  auto ring = std::make_shared<AlertRing>(1 << 20);
  ring->Start({{0, 0}, {1, 0}});
  ring->Push(0, 0, Alert("before"));
  auto reader = ring->AttachNow();
  ASSERT_TRUE(reader);
  ring->Push(1, 0, Alert("a"));
  ring->Push(0, 1, Alert("b"));
  EXPECT_THAT(Drain(*reader), ::testing::ElementsAre("a", "b"));
  EXPECT_EQ(reader->position(), (AlertCursor{{0, 2}, {1, 1}}));
  auto none = reader->Read(10);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->outcome, Outcome::kNone);
}

TEST(AlertRingTest, AReaderFromACursorSkipsWhatTheCursorHasSeenInEveryPartition) {
  auto ring = std::make_shared<AlertRing>(1 << 20);
  ring->Start({{0, 10}, {1, 20}});
  ring->Push(0, 10, Alert("p0-10"));
  ring->Push(1, 20, Alert("p1-20"));
  ring->Push(0, 11, Alert("p0-11"));
  ring->Push(1, 22, Alert("p1-22"));  // an offset gap: a transaction marker between
  // A watcher that had seen p0 up to 10 and p1 up to 20 resumes with both 11 and 22, nothing twice.
  auto reader = ring->Attach({{0, 11}, {1, 21}});
  ASSERT_TRUE(reader);
  EXPECT_THAT(Drain(*reader), ::testing::ElementsAre("p0-11", "p1-22"));
  // Its cursor after each transition resumes right after it.
  auto again = ring->Attach({{0, 12}, {1, 21}});
  ASSERT_TRUE(again);
  EXPECT_THAT(Drain(*again), ::testing::ElementsAre("p1-22"));
  // Before the start of what the consumer read, or naming no position for a partition: not from the ring.
  EXPECT_FALSE(ring->Attach({{0, 9}, {1, 21}}));
  EXPECT_FALSE(ring->Attach({{0, 11}}));
}

TEST(AlertRingTest, TheRingIsBoundedAndAReaderThatFellBehindIsToldWhereToReadOn) {
  const size_t one = Alert("x0").ByteSizeLong();
  auto ring = std::make_shared<AlertRing>(4 * (one + 200));  // a few entries
  ring->Start({{0, 0}});
  auto slow = ring->AttachNow();
  ASSERT_TRUE(slow);
  ring->Push(0, 0, Alert("x0"));
  auto first = slow->Read(0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->alert.alert_id(), "x0");
  for (int i = 1; i < 50; ++i) ring->Push(0, i, Alert("x" + std::to_string(i)));
  EXPECT_LT(ring->size(), 10u);
  auto behind = slow->Read(0);
  ASSERT_TRUE(behind.ok());
  EXPECT_EQ(behind->outcome, Outcome::kFellBehind);
  EXPECT_EQ(slow->position(), (AlertCursor{{0, 1}}));  // exactly after what it had
  // From there the ring cannot serve it (evicted); from a recent position it can.
  EXPECT_FALSE(ring->Attach(slow->position()));
  auto recent = ring->Attach({{0, 48}});
  ASSERT_TRUE(recent);
  EXPECT_THAT(Drain(*recent), ::testing::ElementsAre("x48", "x49"));
}

TEST(AlertRingTest, AWaitingReaderWakesForATransitionAndForAFailure) {
  auto ring = std::make_shared<AlertRing>(1 << 20);
  ring->Start({{0, 0}});
  auto reader = ring->AttachNow();
  ASSERT_TRUE(reader);
  std::thread pusher([&] { ring->Push(0, 0, Alert("late")); });
  auto next = reader->Read(10'000);
  pusher.join();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->alert.alert_id(), "late");
  std::thread failer([&] { ring->Fail(absl::UnavailableError("consumer stopped")); });
  auto failed = reader->Read(10'000);
  failer.join();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace vigil
