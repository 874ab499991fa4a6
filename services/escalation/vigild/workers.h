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

  // Calls task(i) exactly once for each i in [0, n), on this thread and the helpers; returns once every call
  // has returned. With one thread, or one task, they run on this thread in order.
  void Run(size_t n, absl::FunctionRef<void(size_t)> task);

  int threads() const { return static_cast<int>(helpers_.size()) + 1; }

 private:
  void Help();
  // Takes tasks of the current batch until none are left.
  void Drain(absl::FunctionRef<void(size_t)> task, size_t n);

  std::mutex mu_;
  std::condition_variable wake_;  // a new batch, or stop
  std::condition_variable done_;  // a helper has left the batch
  uint64_t batch_ = 0;            // numbers each Run, so a helper joins each once
  size_t n_ = 0;
  size_t next_ = 0;               // the next task to take
  int helping_ = 0;               // helpers not yet out of the current batch
  bool stop_ = false;
  absl::FunctionRef<void(size_t)>* task_ = nullptr;
  std::vector<std::thread> helpers_;
};

}  // namespace vigil
