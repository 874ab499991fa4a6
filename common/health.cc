#include "common/health.h"

#include "absl/strings/str_cat.h"

namespace vigil {

void Health::Set(absl::string_view part, absl::Status status) {
  std::vector<Listener> listeners;
  absl::Status now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Status before = StatusLocked();
    parts_[std::string(part)] = std::move(status);
    now = StatusLocked();
    if (now == before) return;
    listeners = listeners_;
  }
  for (const Listener& l : listeners) l(now.ok(), now);
}

absl::Status Health::Status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return StatusLocked();
}

absl::Status Health::Of(absl::string_view part) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = parts_.find(part);
  return it == parts_.end() ? absl::OkStatus() : it->second;
}

absl::Status Health::StatusLocked() const {
  for (const auto& [part, status] : parts_) {
    if (!status.ok()) return absl::Status(status.code(), absl::StrCat(part, ": ", status.message()));
  }
  return absl::OkStatus();
}

void Health::Listen(Listener listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(std::move(listener));
}

}  // namespace vigil
