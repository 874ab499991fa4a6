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

void Workers::Drain(absl::FunctionRef<void(size_t)> task, size_t n) {
  for (;;) {
    size_t i;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (next_ >= n) return;
      i = next_++;
    }
    task(i);
  }
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
    helping_ = static_cast<int>(helpers_.size());
    ++batch_;
  }
  wake_.notify_all();
  Drain(task, n);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return helping_ == 0; });  // no helper holds the task once Run returns
  task_ = nullptr;
}

void Workers::Help() {
  uint64_t seen = 0;
  for (;;) {
    absl::FunctionRef<void(size_t)>* task;
    size_t n;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || batch_ != seen; });
      if (stop_) return;
      seen = batch_;
      task = task_;
      n = n_;
    }
    Drain(*task, n);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --helping_;
    }
    done_.notify_one();
  }
}

}  // namespace vigil
