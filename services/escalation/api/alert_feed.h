// Alert transitions as they are committed, for WatchAlerts: read from the alert
// topic as a read_committed consumer, so a watcher sees exactly what a
// supervisor's consumer sees, once each. A cursor records, per partition of
// the alert topic, the offset after the last transition delivered; resuming
// from it misses nothing and repeats nothing.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/kafka.h"
#include "vigil/v1/alert.pb.h"

namespace vigil {

// Cursor: partition -> next offset. Encoded as URL-safe base64 of
// "v1;P=O;P=O...", opaque to clients.
using AlertCursor = std::map<int32_t, int64_t>;
std::string EncodeCursor(const AlertCursor& cursor);
// INVALID_ARGUMENT when the text is not a cursor this service wrote.
absl::StatusOr<AlertCursor> DecodeCursor(absl::string_view text);

// The transitions the feed's one shared consumer has read, held in the order read for every watcher to
// follow (no Kafka here). It is bounded by bytes: the oldest go first. A watcher is a Reader with its own
// position; one that falls behind what the ring still holds is told so, and reads on elsewhere. Thread-safe.
class AlertRing : public std::enable_shared_from_this<AlertRing> {
 public:
  explicit AlertRing(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Where the shared consumer starts: each partition's first offset it reads. Readers attach only after.
  void Start(const AlertCursor& start);
  // A transition read at (partition, offset), in the order read.
  void Push(int32_t partition, int64_t offset, v1::Alert alert);
  // The shared consumer stopped: every reader's next Next() says so.
  void Fail(const absl::Status& status);
  // Waits until Start (true) or the timeout (false).
  bool WaitStarted(absl::Duration timeout) const;

  class Reader {
   public:
    enum class Outcome { kTransition, kNone, kFellBehind };
    struct Next {
      Outcome outcome = Outcome::kNone;
      v1::Alert alert;
      std::string cursor;  // after the transition
    };
    // The next transition after the reader's position; kNone when none came within timeout_ms;
    // kFellBehind when the ring no longer holds what comes next (position() says where to read on).
    absl::StatusOr<Next> Read(int timeout_ms);
    const AlertCursor& position() const { return position_; }

   private:
    friend class AlertRing;
    Reader(std::shared_ptr<const AlertRing> ring, uint64_t next, AlertCursor position)
        : ring_(std::move(ring)), next_(next), position_(std::move(position)) {}
    std::shared_ptr<const AlertRing> ring_;
    uint64_t next_;        // sequence number of the next entry to look at
    AlertCursor position_;  // partition -> next offset to deliver
  };
  // A reader from `position` (every partition named), when the ring holds every transition from there on
  // that the consumer has read; nullopt when it does not (older history: read it elsewhere) or before Start.
  std::optional<Reader> Attach(const AlertCursor& position) const;
  // A reader from what is read next; nullopt before Start.
  std::optional<Reader> AttachNow() const;

  // What is held (for tests and metrics).
  size_t size() const;

 private:
  struct Entry {
    int32_t partition;
    int64_t offset;
    v1::Alert alert;
    size_t bytes;
  };
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<const Entry>> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t first_seq_ ABSL_GUARDED_BY(mu_) = 0;  // sequence number of entries_.front()
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Per partition: every transition read at or after this offset is held.
  AlertCursor held_from_ ABSL_GUARDED_BY(mu_);
  // Per partition: the offset after the last transition read (where a reader from now starts).
  AlertCursor head_ ABSL_GUARDED_BY(mu_);
};

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

struct AlertFeedOptions {
  // Transitions held in memory for watchers to share (the ring), in bytes.
  size_t ring_bytes = 64 << 20;
  // Watchers reading history older than the ring, each with a consumer of its own, at once; beyond this a
  // watch from an old cursor is refused (RESOURCE_EXHAUSTED) until one has caught up.
  int max_catching_up = 8;
};

// A feed on the alert topic: one shared read_committed consumer (assign only, no group), started at the
// first subscription, whose transitions every watcher follows through an AlertRing. A watcher from an older
// cursor (or "beginning") reads with its own consumer until it reaches what the ring holds, then follows the
// ring; one that falls behind the ring reads on with its own consumer the same way.
std::unique_ptr<AlertFeed> NewKafkaAlertFeed(KafkaProps props, std::string topic, AlertFeedOptions options = {});

}  // namespace vigil
