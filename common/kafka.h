// The Kafka seam: configuration, topic creation and small helpers over
// librdkafka, with its errors translated to statuses here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "librdkafka/rdkafkacpp.h"

namespace vigil {

// librdkafka properties, in order; later ones win. Any property passes through
// (security.protocol, ssl.*, sasl.* included).
using KafkaProps = std::vector<std::pair<std::string, std::string>>;

// A global configuration with the properties set, and librdkafka's log lines and error events going to
// LogKafkaEvent (an event_cb set later takes them over, and should pass them on). INVALID_ARGUMENT naming the
// property otherwise.
absl::StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(const KafkaProps& props);

// A librdkafka log line or error event, to the "librdkafka" logger (common/logging.h); to standard error, as
// librdkafka writes it, when that logger does not exist. Other events are ignored. Any thread.
void LogKafkaEvent(const RdKafka::Event& event);

struct TopicSpec {
  std::string name;
  int partitions = 4;
  std::map<std::string, std::string> config;
};

// The partition a record keyed `key` goes to among `partitions`, as Vigil's producers (librdkafka's default
// partitioner, consistent_random: CRC32 of the key) place it: a victim's partition, computed anywhere.
// REQUIRES: a non-empty key, partitions > 0.
int32_t KeyPartition(absl::string_view key, int32_t partitions);

// Produces one record (copied; `headers` and `opaque` as librdkafka takes them: the headers are the producer's
// once it returns NO_ERROR), waiting while the producer's queue is full by serving its delivery reports. Any
// other error is returned at once.
RdKafka::ErrorCode ProduceWaiting(RdKafka::Producer* producer, const std::string& topic, int32_t partition,
                                  const std::string& key, const std::string& value, RdKafka::Headers* headers,
                                  void* opaque);

// Creates the topics that do not exist yet (replication factor 1 unless the
// broker's default says otherwise). UNAVAILABLE when the broker cannot be reached.
absl::Status EnsureTopics(const KafkaProps& props, const std::vector<TopicSpec>& topics, int timeout_ms);

// How many partitions a topic has. NOT_FOUND when it does not exist.
absl::StatusOr<int> PartitionCount(const KafkaProps& props, const std::string& topic, int timeout_ms);

// Topic handles on a producer, with their metadata fetched and every partition's
// leader known, so that the first message to each topic goes out at once instead
// of waiting for librdkafka's periodic (one second) look-up of unknown topics.
// Keep them for the producer's life; destroy them before it. UNAVAILABLE when a
// leader is still unknown at the timeout.
absl::StatusOr<std::vector<std::unique_ptr<RdKafka::Topic>>> WarmTopics(RdKafka::Producer* producer,
                                                                       const std::vector<std::string>& topics,
                                                                       int timeout_ms);

// A consumer that joins no group and commits nothing (`reader` is its group.id, which librdkafka requires),
// with `props`, assigned the partitions of `topic` in `offsets` at their offsets (an offset, or
// RdKafka::Topic::OFFSET_BEGINNING / OFFSET_END). UNAVAILABLE when the assignment fails.
absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> AssignedConsumer(KafkaProps props, const std::string& reader,
                                                                         const std::string& topic,
                                                                         const std::map<int32_t, int64_t>& offsets);

// Reads a compacted progress topic (committed records only) to its end: for
// each key, the last value as a number.
absl::StatusOr<std::map<std::string, uint64_t>> ReadProgress(const KafkaProps& props, const std::string& topic,
                                                              int timeout_ms);

}  // namespace vigil
