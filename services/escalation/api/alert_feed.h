// Alert transitions as they are committed, for WatchAlerts: read from the alert
// topic as a read_committed consumer, so a watcher sees exactly what a
// supervisor's consumer sees, once each. A cursor records, per partition of
// the alert topic, the offset after the last transition delivered; resuming
// from it misses nothing and repeats nothing.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/kafka.h"
#include "vigil/v1/alert.pb.h"

namespace vigil {

// Cursor: partition -> next offset. Encoded as URL-safe base64 of
// "v1;P=O;P=O...", opaque to clients.
using AlertCursor = std::map<int32_t, int64_t>;
std::string EncodeCursor(const AlertCursor& cursor);
// INVALID_ARGUMENT when the text is not a cursor this service wrote.
absl::StatusOr<AlertCursor> DecodeCursor(absl::string_view text);

class AlertSubscription {
 public:
  virtual ~AlertSubscription() = default;
  // The next transition and the cursor right after it; nullopt when none came within timeout_ms.
  virtual absl::StatusOr<std::optional<std::pair<v1::Alert, std::string>>> Next(int timeout_ms) = 0;
};

class AlertFeed {
 public:
  virtual ~AlertFeed() = default;
  // From a cursor; "" for what is committed from now on; "beginning" for everything on the topic.
  virtual absl::StatusOr<std::unique_ptr<AlertSubscription>> Subscribe(absl::string_view cursor) = 0;
};

// A feed on the alert topic. Each subscription is its own consumer (no group).
std::unique_ptr<AlertFeed> NewKafkaAlertFeed(KafkaProps props, std::string topic);

}  // namespace vigil
