// How far each partition has been applied, published in memory by the one who
// applies it (vigild's loop, after each commit) for those who wait for it (the
// API's read-your-writes), instead of their polling the store. Thread-safe.
#pragma once

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace vigil {

class Watermarks {
 public:
  // Every record of the partition below `next_offset` is applied and committed.
  void Set(int32_t partition, int64_t next_offset) {
    absl::MutexLock lock(&mu_);
    int64_t& at = next_[partition];
    if (next_offset > at) at = next_offset;
  }
  // Waits until the record at `offset` is applied, or until `deadline`; whether it is.
  bool WaitPast(int32_t partition, int64_t offset, absl::Time deadline) const {
    absl::MutexLock lock(&mu_);
    auto past = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = next_.find(partition);
      return it != next_.end() && it->second > offset;
    };
    return mu_.AwaitWithDeadline(absl::Condition(&past), deadline);
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int32_t, int64_t> next_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil
