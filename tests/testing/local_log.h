// A Log for tests and fuzzing, in process: the events topic is applied at once
// by the partition pipelines vigild runs, on the given store (so read-your-writes
// is real); other topics are kept in memory. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/fingerprint.h"
#include "services/escalation/api/log.h"
#include "services/escalation/pipeline/partition.h"

namespace vigil::testing {

// The events topic applied in process, by partition pipelines on the store; other topics kept in memory.
class LocalLog : public Log {
 public:
  // The events topic's partitions, each applied by its own pipeline; a key's is KeyPartition's.
  static constexpr int kPartitions = 3;

  // REQUIRES: every argument outlives the log. The records' timestamps are now, as the broker's would be.
  LocalLog(Store* store, const Engine* engine, const Topics* topics, const AdmissionPolicy* admission)
      : topics_(*topics) {
    for (int p = 0; p < kPartitions; ++p) {
      pipelines_.push_back(*PartitionPipeline::Load(store, engine, topics, admission, p));
    }
  }

  void AppendThen(const std::string& topic, std::vector<LogRecord> records, absl::Time, Done done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (topic == held_topic_) {
        held_.push_back({topic, std::move(records), std::move(done)});
        return;
      }
    }
    absl::StatusOr<std::vector<Landed>> landed = Write(topic, records);
    done(std::move(landed));
  }

  // Appends to `topic` wait, unwritten and unanswered, until Release: a broker slow to acknowledge.
  void Hold(const std::string& topic) {
    std::lock_guard<std::mutex> lock(mu_);
    held_topic_ = topic;
  }
  // Appends held now.
  size_t Held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.size();
  }
  // Writes the held appends (or fails them, as Fail says) and answers them; appends no longer wait.
  void Release() {
    std::vector<HeldAppend> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held.swap(held_);
      held_topic_.clear();
    }
    for (HeldAppend& h : held) h.done(Write(h.topic, h.records));
  }

  std::vector<std::string> Written(const std::string& topic) {
    std::lock_guard<std::mutex> lock(mu_);
    return written_[topic];
  }
  void Fail(const std::string& topic) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_topic = topic;
  }

 private:
  struct HeldAppend {
    std::string topic;
    std::vector<LogRecord> records;
    Done done;
  };

  absl::StatusOr<std::vector<Landed>> Write(const std::string& topic, const std::vector<LogRecord>& records) {
    std::lock_guard<std::mutex> lock(mu_);
    if (topic == fail_topic) return absl::UnavailableError("the broker is down");
    std::vector<Landed> landed;
    for (const LogRecord& r : records) {
      const std::string& key = r.key;
      const std::string& value = r.value;
      if (topic == topics_.events) {
        const int32_t p = KeyPartition(key, kPartitions);  // as Kafka's producers place it
        const int64_t offset = pipelines_[p]->next_offset();
        std::string signature;
        for (const auto& [k, v] : r.headers) {
          if (k == kHeaderSignature) signature = v;
        }
        pipelines_[p]->Apply({.offset = offset, .key = key, .value = value,
                              .timestamp_ms = absl::ToUnixMillis(absl::Now()), .signature = signature});
        if (absl::Status s = pipelines_[p]->Commit(); !s.ok()) return s;
        landed.push_back({topic, p, offset});
      } else {
        auto& kept = written_[topic];
        kept.push_back(value);
        landed.push_back({topic, 0, static_cast<int64_t>(kept.size() - 1)});
      }
    }
    return landed;
  }

  const Topics& topics_;
  std::mutex mu_;
  std::vector<std::unique_ptr<PartitionPipeline>> pipelines_;
  std::map<std::string, std::vector<std::string>> written_;
  std::string fail_topic;
  std::string held_topic_;
  std::vector<HeldAppend> held_;
};

}  // namespace vigil::testing
