// Which events partitions this instance owns, published by vigild's loop on
// each assignment and revocation, for the API: it answers only from partitions
// it owns (never from a copy it has handed over) and has restored (an owned
// partition is restoring until it has applied the log as far as it reached
// when the partition was assigned: a copy that far behind is not answered
// from), and says a rebalance is under way between a revocation and the next
// assignment. Listeners hear each assignment and revocation (the instance
// directory announces them). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace vigil {

class Ownership {
 public:
  using Listener = std::function<void(const std::set<int32_t>& owned)>;

  // Owned from now: exactly these, of which `restoring` are not current yet. Listeners are told, under no lock.
  void Assigned(std::set<int32_t> partitions, std::set<int32_t> restoring = {}) {
    std::vector<Listener> listeners;
    {
      absl::MutexLock lock(&mu_);
      owned_ = partitions;
      restoring_ = std::move(restoring);
      rebalancing_ = false;
      listeners = listeners_;
    }
    for (const Listener& l : listeners) l(partitions);
  }
  // The partition has caught up with the log as it was when assigned.
  void Restored(int32_t partition) {
    absl::MutexLock lock(&mu_);
    restoring_.erase(partition);
  }
  bool Restoring(int32_t partition) const {
    absl::MutexLock lock(&mu_);
    return restoring_.contains(partition);
  }
  // One restoring partition, if any.
  std::optional<int32_t> AnyRestoring() const {
    absl::MutexLock lock(&mu_);
    if (restoring_.empty()) return std::nullopt;
    return *restoring_.begin();
  }
  // Owned and restored: answered from.
  bool Readable(int32_t partition) const {
    absl::MutexLock lock(&mu_);
    return owned_.contains(partition) && !restoring_.contains(partition);
  }
  // None owned; a rebalance is under way until the next Assigned. Listeners are told (of none).
  void Revoked() {
    std::vector<Listener> listeners;
    {
      absl::MutexLock lock(&mu_);
      owned_.clear();
      restoring_.clear();
      rebalancing_ = true;
      listeners = listeners_;
    }
    for (const Listener& l : listeners) l({});
  }
  bool Owns(int32_t partition) const {
    absl::MutexLock lock(&mu_);
    return owned_.contains(partition);
  }
  std::set<int32_t> Owned() const {
    absl::MutexLock lock(&mu_);
    return owned_;
  }
  // Between a revocation and the next assignment, and before the first.
  bool Rebalancing() const {
    absl::MutexLock lock(&mu_);
    return rebalancing_;
  }
  void Listen(Listener listener) {
    absl::MutexLock lock(&mu_);
    listeners_.push_back(std::move(listener));
  }

 private:
  mutable absl::Mutex mu_;
  std::set<int32_t> owned_ ABSL_GUARDED_BY(mu_);
  std::set<int32_t> restoring_ ABSL_GUARDED_BY(mu_);
  bool rebalancing_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<Listener> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil
