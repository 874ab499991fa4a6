#include "services/escalation/vigild/workers.h"

#include <algorithm>

namespace vigil {

Workers::Workers(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) helpers_.emplace_back([this] { Help(); });
}

Workers::~Workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : helpers_) t.join();
}

bool Workers::Take(size_t* i, absl::FunctionRef<void(size_t)>** task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (next_ >= n_) return false;
  *i = next_++;
  *task = task_;
  ++running_;
  return true;
}

void Workers::Finished() {
  bool last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last = --running_ == 0 && next_ >= n_;
  }
  if (last) done_.notify_all();
}

void Workers::Run(size_t n, absl::FunctionRef<void(size_t)> task) {
  if (helpers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    task_ = &task;
    n_ = n;
    next_ = 0;
    ++batch_;
  }
  wake_.notify_all();
  size_t i;
  absl::FunctionRef<void(size_t)>* mine;
  while (Take(&i, &mine)) {
    (*mine)(i);
    Finished();
  }
  // Every task is taken: wait for those a helper is running, not for a helper that has not woken (it will find
  // nothing left to take).
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return running_ == 0; });
  task_ = nullptr;
  n_ = 0;
}

void Workers::Help() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || batch_ != seen; });
      if (stop_) return;
      seen = batch_;
    }
    size_t i;
    absl::FunctionRef<void(size_t)>* task;
    while (Take(&i, &task)) {
      (*task)(i);
      Finished();
    }
  }
}

}  // namespace vigil
