// A few threads kept for one kind of work: a batch of independent tasks (one partition's records to apply, one
// partition's batch to store) run at once on the calling thread and the helpers, and the call returns when the
// last is done. vigild's loop uses it so that its partitions are applied and stored side by side, each by one
// thread at a time (a PartitionPipeline is not thread-safe; RocksDB takes concurrent writes).
//
// Thread-safety: Run is called by one thread at a time (the loop); the tasks must not share what they change.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace vigil {

class Workers {
 public:
  // `threads` at least 1: the calling thread and threads - 1 helpers, started here.
  explicit Workers(int threads);
  ~Workers();  // stops and joins the helpers
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  // Calls task(i) exactly once for each i in [0, n), on this thread and whichever helpers are free to take
  // one; returns once every call has returned. It never waits for a helper that has not yet woken: this thread
  // takes whatever is left. With one thread, or one task, they run on this thread in order.
  void Run(size_t n, absl::FunctionRef<void(size_t)> task);

  int threads() const { return static_cast<int>(helpers_.size()) + 1; }

 private:
  void Help();
  // The next task of the current batch, counted as running; false when every one is taken.
  bool Take(size_t* i, absl::FunctionRef<void(size_t)>** task);
  // A task taken has returned.
  void Finished();

  std::mutex mu_;
  std::condition_variable wake_;  // a new batch, or stop
  std::condition_variable done_;  // the last running task of a batch whose tasks are all taken has returned
  uint64_t batch_ = 0;            // numbers each Run, so that a helper wakes once for each
  size_t n_ = 0;                  // tasks in the current batch (0 between batches)
  size_t next_ = 0;               // the next task to take
  size_t running_ = 0;            // tasks taken and not yet returned
  bool stop_ = false;
  absl::FunctionRef<void(size_t)>* task_ = nullptr;
  std::vector<std::thread> helpers_;
};

}  // namespace vigil
