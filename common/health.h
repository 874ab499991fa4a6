// Readiness of a running service, as its parts report it: each part (the
// broker, the store) is healthy or says why not. The service is ready when
// every part is. Listeners hear each change (the gRPC health service, logs).
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vigil {

class Health {
 public:
  // Called with the new readiness and, when not ready, why; under no lock of the caller's.
  using Listener = std::function<void(bool ready, const absl::Status& why)>;

  // `status` OK: the part is healthy. Listeners are told when readiness or the reason changes.
  void Set(absl::string_view part, absl::Status status);

  // OK when every part is healthy; otherwise the first unhealthy part's status, named.
  absl::Status Status() const;
  bool Ready() const { return Status().ok(); }
  // OK when this part is healthy (or has not reported).
  absl::Status Of(absl::string_view part) const;

  void Listen(Listener listener);

 private:
  absl::Status StatusLocked() const;

  mutable std::mutex mu_;
  std::map<std::string, absl::Status, std::less<>> parts_;
  std::vector<Listener> listeners_;
};

// Part names.
inline constexpr char kHealthBroker[] = "kafka";
inline constexpr char kHealthStore[] = "store";
// Publishing: a partition whose outbox cannot be published (says which, and why).
inline constexpr char kHealthPublish[] = "publish";

}  // namespace vigil
