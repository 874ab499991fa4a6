// Where the API writes: an append-only, partitioned log (Kafka), so that every
// write goes through the same log that vigild consumes and replays.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/kafka.h"

namespace vigil {

struct Landed {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

struct LogRecord {
  std::string key, value;
  std::vector<std::pair<std::string, std::string>> headers;
};

class Log {
 public:
  using Done = std::function<void(absl::StatusOr<std::vector<Landed>>)>;
  virtual ~Log() = default;
  // Appends records to `topic` and calls `done` once, with where each landed, in order, once all are
  // acknowledged. UNAVAILABLE when the log cannot take them by `deadline`; some may land all the same
  // (event ids make a retry safe). RESOURCE_EXHAUSTED when a record is too large for the log. `done` runs
  // on the caller's thread when the outcome is known at once, else on the log's own thread: it must not block.
  virtual void AppendThen(const std::string& topic, std::vector<LogRecord> records, absl::Time deadline,
                          Done done) = 0;
  // AppendThen, waiting for the outcome.
  absl::StatusOr<std::vector<Landed>> Append(const std::string& topic, std::vector<LogRecord> records,
                                             absl::Time deadline);
};

// A Log on Kafka: one idempotent producer (acks=all) shared by every caller,
// partitioning by key as any producer of the events topic does, with the
// metadata of `topics` fetched up front. Thread-safe.
absl::StatusOr<std::unique_ptr<Log>> NewKafkaLog(const KafkaProps& props, const std::vector<std::string>& topics);

}  // namespace vigil
