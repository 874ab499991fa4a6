#include "services/escalation/api/alert_feed.h"

#include <chrono>
#include <deque>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace vigil {

std::string EncodeCursor(const AlertCursor& cursor) {
  std::string text = "v1";
  for (const auto& [p, o] : cursor) absl::StrAppend(&text, ";", p, "=", o);
  return absl::WebSafeBase64Escape(text);
}

absl::StatusOr<AlertCursor> DecodeCursor(absl::string_view encoded) {
  const absl::Status bad = absl::InvalidArgumentError("cursor: not a cursor from WatchAlerts");
  std::string text;
  if (!absl::WebSafeBase64Unescape(encoded, &text)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(text, ';');
  if (parts.empty() || parts[0] != "v1") return bad;
  AlertCursor cursor;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    int32_t p = 0;
    int64_t o = 0;
    if (!absl::SimpleAtoi(kv.first, &p) || !absl::SimpleAtoi(kv.second, &o) || p < 0 || o < 0) return bad;
    cursor[p] = o;
  }
  return cursor;
}

namespace {

class KafkaSubscription : public AlertSubscription {
 public:
  KafkaSubscription(std::unique_ptr<RdKafka::KafkaConsumer> consumer, AlertCursor position)
      : consumer_(std::move(consumer)), position_(std::move(position)) {}
  ~KafkaSubscription() override { consumer_->close(); }

  // Learns where partitions assigned at their logical end start: a
  // read_committed consumer reports the end (the last stable offset) with its
  // first PARTITION_EOF. Transitions that arrive meanwhile are kept for Next().
  absl::Status ResolveEnds(int partitions, int timeout_ms) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (static_cast<int>(position_.size()) < partitions) {
      if (std::chrono::steady_clock::now() > give_up) {
        return absl::UnavailableError("reading alerts: the alert topic's end is not known yet");
      }
      VIGIL_ASSIGN_OR_RETURN(auto next, Consume(100));
      if (next) held_.push_back(*std::move(next));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<std::pair<v1::Alert, std::string>>> Next(int timeout_ms) override {
    if (!held_.empty()) {
      auto next = std::move(held_.front());
      held_.pop_front();
      return next;
    }
    return Consume(timeout_ms);
  }

 private:
  absl::StatusOr<std::optional<std::pair<v1::Alert, std::string>>> Consume(int timeout_ms) {
    std::unique_ptr<RdKafka::Message> m(consumer_->consume(timeout_ms));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      position_.try_emplace(m->partition(), m->offset());
      return std::nullopt;
    }
    if (m->err() == RdKafka::ERR__TIMED_OUT) return std::nullopt;
    if (m->err() == RdKafka::ERR__FATAL) return absl::UnavailableError(absl::StrCat("reading alerts: ", m->errstr()));
    if (m->err() != RdKafka::ERR_NO_ERROR) {  // transient (the client retries): keep watching
      spdlog::debug("event=watch_consume_error error=\"{}\"", m->errstr());
      return std::nullopt;
    }
    position_[m->partition()] = m->offset() + 1;
    v1::Alert alert;
    if (!alert.ParseFromArray(m->payload(), static_cast<int>(m->len()))) {
      return absl::DataLossError(absl::StrCat("alert topic partition ", m->partition(), " offset ", m->offset(),
                                              ": not an alert"));
    }
    return std::make_pair(std::move(alert), EncodeCursor(position_));
  }

  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  AlertCursor position_;  // partitions absent: read from the beginning on resume
  std::deque<std::pair<v1::Alert, std::string>> held_;
};

class KafkaAlertFeed : public AlertFeed {
 public:
  KafkaAlertFeed(KafkaProps props, std::string topic) : props_(std::move(props)), topic_(std::move(topic)) {}

  absl::StatusOr<std::unique_ptr<AlertSubscription>> Subscribe(absl::string_view cursor_text) override {
    AlertCursor cursor;
    const bool from_now = cursor_text.empty();
    if (!from_now && cursor_text != "beginning") {
      VIGIL_ASSIGN_OR_RETURN(cursor, DecodeCursor(cursor_text));
    }
    VIGIL_ASSIGN_OR_RETURN(int partitions, PartitionCount(props_, topic_, 5000));
    KafkaProps p = props_;
    p.emplace_back("group.id", "vigil-watch");  // required by the client; never joined (assign only)
    p.emplace_back("enable.auto.commit", "false");
    p.emplace_back("enable.auto.offset.store", "false");
    p.emplace_back("isolation.level", "read_committed");
    p.emplace_back("enable.partition.eof", "true");
    p.emplace_back("auto.offset.reset", "earliest");  // a cursor past retention: the oldest still kept
    p.emplace_back("fetch.wait.max.ms", "20");
    VIGIL_ASSIGN_OR_RETURN(auto conf, MakeKafkaConf(p));
    std::string err;
    std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
    if (!consumer) return absl::InvalidArgumentError(absl::StrCat("Kafka consumer: ", err));
    std::vector<RdKafka::TopicPartition*> tps;
    AlertCursor position;
    for (int32_t i = 0; i < partitions; ++i) {
      int64_t offset = from_now ? RdKafka::Topic::OFFSET_END : RdKafka::Topic::OFFSET_BEGINNING;
      if (auto it = cursor.find(i); it != cursor.end()) {
        offset = it->second;
        position[i] = offset;
      }
      tps.push_back(RdKafka::TopicPartition::create(topic_, i, offset));
    }
    RdKafka::ErrorCode code = consumer->assign(tps);
    for (auto* tp : tps) delete tp;
    if (code != RdKafka::ERR_NO_ERROR) {
      return absl::UnavailableError(absl::StrCat("reading alerts: ", RdKafka::err2str(code)));
    }
    spdlog::debug("event=watch_subscribed partitions={} from={}", partitions,
                  from_now ? "now" : cursor.empty() ? "beginning" : "cursor");
    auto sub = std::make_unique<KafkaSubscription>(std::move(consumer), std::move(position));
    if (from_now) VIGIL_RETURN_IF_ERROR(sub->ResolveEnds(partitions, 10000));
    return std::unique_ptr<AlertSubscription>(std::move(sub));
  }

 private:
  const KafkaProps props_;
  const std::string topic_;
};

}  // namespace

std::unique_ptr<AlertFeed> NewKafkaAlertFeed(KafkaProps props, std::string topic) {
  return std::make_unique<KafkaAlertFeed>(std::move(props), std::move(topic));
}

}  // namespace vigil
