// vigild's wall clock and retry pacing, shared by its loop and its committer (never the engine's time).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace vigil {

// The wall clock, in milliseconds since the epoch.
inline int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sleeps `ms`, waking early (within 0.1 s) once `stop` is set.
inline void SleepUnless(int64_t ms, const std::atomic<bool>& stop) {
  for (int64_t waited = 0; waited < ms && !stop; waited += 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(100, ms - waited)));
  }
}

// Retry pacing after failures: 0.1 s, doubling to 5 s.
class Backoff {
 public:
  // A try failed: the pause before the next, which is due after it.
  int64_t Failed() {
    delay_ms_ = std::min<int64_t>(kMaxMs, std::max<int64_t>(100, delay_ms_ * 2));
    due_ms_ = NowMillis() + delay_ms_;
    return delay_ms_;
  }
  bool Due() const { return NowMillis() >= due_ms_; }
  void Reset() { delay_ms_ = 0, due_ms_ = 0; }

 private:
  static constexpr int64_t kMaxMs = 5000;
  int64_t delay_ms_ = 0, due_ms_ = 0;
};

}  // namespace vigil
