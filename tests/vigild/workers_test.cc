// The threads vigild's loop applies and stores partitions on (workers.h).
#include "services/escalation/vigild/workers.h"

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vigil {
namespace {

TEST(WorkersTest, EveryTaskRunsExactlyOnceBatchAfterBatch) {
  Workers workers(3);
  EXPECT_EQ(workers.threads(), 3);
  std::vector<std::atomic<int>> runs(50);
  for (int batch = 0; batch < 200; ++batch) {
    workers.Run(runs.size(), [&](size_t i) { runs[i].fetch_add(1); });
  }
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].load(), 200) << "task " << i;
}

TEST(WorkersTest, TasksRunSideBySide) {
  // Each task waits (10 s at most) until both have started: only threads running at once get past at once.
  Workers workers(2);
  std::atomic<int> started{0};
  std::vector<int> met(2, 0);  // not vector<bool>, whose elements share a word
  workers.Run(2, [&](size_t i) {
    started.fetch_add(1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    met[i] = started.load() == 2 ? 1 : 0;
  });
  EXPECT_THAT(met, ::testing::ElementsAre(1, 1));
}

TEST(WorkersTest, OneThreadRunsTheTasksInOrderOnTheCaller) {
  Workers workers(1);
  std::vector<size_t> order;
  std::set<std::thread::id> on;
  workers.Run(4, [&](size_t i) {
    order.push_back(i);
    on.insert(std::this_thread::get_id());
  });
  EXPECT_THAT(order, ::testing::ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(on, ::testing::ElementsAre(std::this_thread::get_id()));
}

TEST(WorkersTest, NoTasksIsNothingToWaitFor) {
  Workers workers(4);
  int runs = 0;
  workers.Run(0, [&](size_t) { ++runs; });
  EXPECT_EQ(runs, 0);
  workers.Run(1, [&](size_t) { ++runs; });  // one task: on the caller
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace vigil
