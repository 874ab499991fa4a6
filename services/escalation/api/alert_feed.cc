#include "services/escalation/api/alert_feed.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <set>
#include <thread>
#include <vector>

#include "common/jsonl.h"
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


void AlertRing::Start(const AlertCursor& start) {
  absl::MutexLock lock(&mu_);
  started_ = true;
  held_from_ = start;
  head_ = start;
}

void AlertRing::Push(int32_t partition, int64_t offset, v1::Alert alert) {
  const size_t bytes = alert.ByteSizeLong() + sizeof(Entry);
  auto entry = std::make_shared<const Entry>(Entry{partition, offset, std::move(alert), bytes});
  absl::MutexLock lock(&mu_);
  entries_.push_back(std::move(entry));
  bytes_ += bytes;
  head_[partition] = offset + 1;
  while (bytes_ > max_bytes_ && entries_.size() > 1) {
    const Entry& oldest = *entries_.front();
    held_from_[oldest.partition] = oldest.offset + 1;
    bytes_ -= oldest.bytes;
    entries_.pop_front();
    ++first_seq_;
  }
}

void AlertRing::Fail(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  status_ = status;
}

bool AlertRing::WaitStarted(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&started_), timeout);
}

std::optional<AlertRing::Reader> AlertRing::Attach(const AlertCursor& position) const {
  absl::MutexLock lock(&mu_);
  if (!started_) return std::nullopt;
  for (const auto& [partition, from] : held_from_) {
    auto it = position.find(partition);
    if (it == position.end() || it->second < from) return std::nullopt;
  }
  // From the oldest held: what is before the position is skipped as it is read.
  return Reader(shared_from_this(), first_seq_, position);
}

std::optional<AlertRing::Reader> AlertRing::AttachNow() const {
  absl::MutexLock lock(&mu_);
  if (!started_) return std::nullopt;
  return Reader(shared_from_this(), first_seq_ + entries_.size(), head_);
}

size_t AlertRing::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

absl::StatusOr<AlertRing::Reader::Next> AlertRing::Reader::Read(int timeout_ms) {
  const AlertRing& ring = *ring_;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  std::shared_ptr<const Entry> entry;
  {
    absl::MutexLock lock(&ring.mu_);
    for (;;) {
      if (!ring.status_.ok()) return ring.status_;
      if (next_ < ring.first_seq_) return Next{.outcome = Outcome::kFellBehind};
      while (next_ < ring.first_seq_ + ring.entries_.size()) {
        const auto& candidate = ring.entries_[next_ - ring.first_seq_];
        ++next_;
        auto at = position_.find(candidate->partition);
        if (at != position_.end() && candidate->offset < at->second) continue;  // before this reader's position
        entry = candidate;
        break;
      }
      if (entry) break;
      const uint64_t end = ring.first_seq_ + ring.entries_.size();
      auto more = [&]() ABSL_SHARED_LOCKS_REQUIRED(ring.mu_) {
        return ring.first_seq_ + ring.entries_.size() != end || !ring.status_.ok();
      };
      if (!ring.mu_.AwaitWithDeadline(absl::Condition(&more), deadline)) return Next{};
    }
  }
  position_[entry->partition] = entry->offset + 1;
  return Next{.outcome = Outcome::kTransition, .alert = entry->alert, .cursor = EncodeCursor(position_)};
}

namespace {

// A consumer of the alert topic of its own, assigned (no group) at a position.
absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> AssignedConsumer(const KafkaProps& props,
                                                                         const std::string& topic, int partitions,
                                                                         const AlertCursor& cursor, bool from_now) {
  KafkaProps p = props;
  p.emplace_back("isolation.level", "read_committed");
  p.emplace_back("enable.partition.eof", "true");
  p.emplace_back("auto.offset.reset", "earliest");  // a cursor past retention: the oldest still kept
  p.emplace_back("fetch.wait.max.ms", "20");
  std::map<int32_t, int64_t> offsets;
  for (int32_t i = 0; i < partitions; ++i) {
    auto it = cursor.find(i);
    offsets[i] = it != cursor.end() ? it->second
                 : from_now        ? RdKafka::Topic::OFFSET_END
                                   : RdKafka::Topic::OFFSET_BEGINNING;
  }
  return vigil::AssignedConsumer(p, "vigil-watch", topic, offsets);
}

// One message of the alert topic: a transition at (partition, offset), a partition's end, or nothing.
struct Consumed {
  enum Kind { kNothing, kEnd, kTransition } kind = kNothing;
  int32_t partition = 0;
  int64_t offset = 0;
  v1::Alert alert;
};
absl::StatusOr<Consumed> ConsumeOne(RdKafka::KafkaConsumer& consumer, int timeout_ms) {
  std::unique_ptr<RdKafka::Message> m(consumer.consume(timeout_ms));
  if (m->err() == RdKafka::ERR__PARTITION_EOF) {
    return Consumed{.kind = Consumed::kEnd, .partition = m->partition(), .offset = m->offset()};
  }
  if (m->err() == RdKafka::ERR__TIMED_OUT) return Consumed{};
  if (m->err() == RdKafka::ERR__FATAL) return absl::UnavailableError(absl::StrCat("reading alerts: ", m->errstr()));
  if (m->err() != RdKafka::ERR_NO_ERROR) {  // transient (the client retries): keep watching
    spdlog::debug("event=watch_consume_error error=\"{}\"", m->errstr());
    return Consumed{};
  }
  Consumed c{.kind = Consumed::kTransition, .partition = m->partition(), .offset = m->offset()};
  if (!ParseProtobufOrJson(absl::string_view(static_cast<const char*>(m->payload()), m->len()), &c.alert).ok()) {
    return absl::DataLossError(absl::StrCat("alert topic partition ", m->partition(), " offset ", m->offset(),
                                            ": not an alert"));
  }
  return c;
}

// A watcher's own consumer, for history older than the ring.
class CatchUp {
 public:
  CatchUp(std::unique_ptr<RdKafka::KafkaConsumer> consumer, AlertCursor position, std::atomic<int>* count)
      : consumer_(std::move(consumer)), position_(std::move(position)), count_(count) {}
  ~CatchUp() {
    consumer_->close();
    --*count_;
  }
  // The next transition; nullopt when none came within the timeout (or a partition's end was reached).
  absl::StatusOr<std::optional<std::pair<v1::Alert, std::string>>> Next(int timeout_ms) {
    VIGIL_ASSIGN_OR_RETURN(Consumed c, ConsumeOne(*consumer_, timeout_ms));
    if (c.kind == Consumed::kEnd) {
      position_.try_emplace(c.partition, c.offset);
      ends_.insert(c.partition);
    }
    if (c.kind != Consumed::kTransition) return std::nullopt;
    position_[c.partition] = c.offset + 1;
    return std::make_pair(std::move(c.alert), EncodeCursor(position_));
  }
  const AlertCursor& position() const { return position_; }
  // Every partition's end has been reached at least once.
  bool ReachedEnds(int partitions) const { return static_cast<int>(ends_.size()) >= partitions; }

 private:
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  AlertCursor position_;  // partitions absent: read from the beginning on resume
  std::set<int32_t> ends_;
  std::atomic<int>* count_;
};

// The shared consumer: reads the alert topic from its end onward into the ring, on its own thread.
class Hub {
 public:
  Hub(std::unique_ptr<RdKafka::KafkaConsumer> consumer, int partitions, size_t ring_bytes)
      : consumer_(std::move(consumer)), partitions_(partitions), ring_(std::make_shared<AlertRing>(ring_bytes)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Hub() {
    stop_ = true;
    thread_.join();
    consumer_->close();
  }
  const std::shared_ptr<AlertRing>& ring() const { return ring_; }
  int partitions() const { return partitions_; }
  bool failed() const { return failed_; }

 private:
  void Run() {
    AlertCursor start;
    std::vector<Consumed> early;  // read before every partition's start was known
    while (!stop_) {
      absl::StatusOr<Consumed> c = ConsumeOne(*consumer_, 100);
      if (!c.ok()) {
        spdlog::error("event=watch_feed_failed status=\"{}\"", c.status().ToString());
        ring_->Fail(absl::UnavailableError(absl::StrCat(c.status().message(), "; watch again from your cursor")));
        failed_ = true;
        return;
      }
      if (c->kind == Consumed::kNothing) continue;
      const bool started = static_cast<int>(start.size()) == partitions_;
      if (!started) {
        start.try_emplace(c->partition, c->offset);  // the first message or end seen: where it starts
        if (c->kind == Consumed::kTransition) early.push_back(*std::move(c));
        if (static_cast<int>(start.size()) == partitions_) {
          ring_->Start(start);
          for (Consumed& e : early) ring_->Push(e.partition, e.offset, std::move(e.alert));
          early.clear();
        }
        continue;
      }
      if (c->kind == Consumed::kTransition) ring_->Push(c->partition, c->offset, std::move(c->alert));
    }
  }

  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  const int partitions_;
  std::shared_ptr<AlertRing> ring_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::thread thread_;
};

class KafkaAlertFeed;

// A watcher: follows the ring, or its own consumer until it reaches what the ring holds.
class SharedSubscription : public AlertSubscription {
 public:
  SharedSubscription(KafkaAlertFeed* feed, std::shared_ptr<Hub> hub) : feed_(feed), hub_(std::move(hub)) {}
  void Follow(AlertRing::Reader reader) { reader_.emplace(std::move(reader)); }
  void CatchUpWith(std::unique_ptr<CatchUp> catch_up) { catch_up_ = std::move(catch_up); }

  absl::StatusOr<std::optional<std::pair<v1::Alert, std::string>>> Next(int timeout_ms) override;

 private:
  KafkaAlertFeed* feed_;
  std::shared_ptr<Hub> hub_;
  std::optional<AlertRing::Reader> reader_;
  std::unique_ptr<CatchUp> catch_up_;
};

class KafkaAlertFeed : public AlertFeed {
 public:
  KafkaAlertFeed(KafkaProps props, std::string topic, AlertFeedOptions options)
      : props_(std::move(props)), topic_(std::move(topic)), options_(options) {}

  absl::StatusOr<std::unique_ptr<AlertSubscription>> Subscribe(absl::string_view cursor_text) override {
    AlertCursor cursor;
    const bool from_now = cursor_text.empty();
    if (!from_now && cursor_text != "beginning") {
      VIGIL_ASSIGN_OR_RETURN(cursor, DecodeCursor(cursor_text));
    }
    VIGIL_ASSIGN_OR_RETURN(std::shared_ptr<Hub> hub, SharedHub());
    if (!hub->ring()->WaitStarted(absl::Seconds(10))) {
      return absl::UnavailableError("reading alerts: the alert topic's end is not known yet");
    }
    auto sub = std::make_unique<SharedSubscription>(this, hub);
    std::optional<AlertRing::Reader> reader =
        from_now ? hub->ring()->AttachNow() : hub->ring()->Attach(cursor);
    if (reader) {
      sub->Follow(*std::move(reader));
    } else {
      VIGIL_ASSIGN_OR_RETURN(std::unique_ptr<CatchUp> catch_up, CatchUpFrom(*hub, cursor));
      sub->CatchUpWith(std::move(catch_up));
    }
    spdlog::debug("event=watch_subscribed from={}", from_now ? "now" : cursor.empty() ? "beginning" : "cursor");
    return std::unique_ptr<AlertSubscription>(std::move(sub));
  }

  // A consumer of the watcher's own from the position (over the hub's partitions), when fewer than the cap have
  // one.
  absl::StatusOr<std::unique_ptr<CatchUp>> CatchUpFrom(const Hub& hub, const AlertCursor& position) {
    if (++catching_up_ > options_.max_catching_up) {
      --catching_up_;
      return absl::ResourceExhaustedError(
          absl::StrCat("reading alerts: ", options_.max_catching_up,
                       " watchers are already reading older history; watch again from your cursor shortly"));
    }
    auto consumer = AssignedConsumer(props_, topic_, hub.partitions(), position, /*from_now=*/false);
    if (!consumer.ok()) {
      --catching_up_;
      return consumer.status();
    }
    return std::make_unique<CatchUp>(*std::move(consumer), position, &catching_up_);
  }

 private:
  // The shared consumer, started at the first subscription (and again after it failed).
  absl::StatusOr<std::shared_ptr<Hub>> SharedHub() {
    absl::MutexLock lock(&mu_);
    if (hub_ && !hub_->failed()) return hub_;
    VIGIL_ASSIGN_OR_RETURN(const int partitions, PartitionCount(props_, topic_, 5000));
    VIGIL_ASSIGN_OR_RETURN(auto consumer, AssignedConsumer(props_, topic_, partitions, {}, /*from_now=*/true));
    hub_ = std::make_shared<Hub>(std::move(consumer), partitions, options_.ring_bytes);
    spdlog::info("event=watch_feed_started partitions={} ring_bytes={}", partitions, options_.ring_bytes);
    return hub_;
  }

  const KafkaProps props_;
  const std::string topic_;
  const AlertFeedOptions options_;
  absl::Mutex mu_;
  std::shared_ptr<Hub> hub_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> catching_up_{0};
};

absl::StatusOr<std::optional<std::pair<v1::Alert, std::string>>> SharedSubscription::Next(int timeout_ms) {
  if (reader_) {
    VIGIL_ASSIGN_OR_RETURN(AlertRing::Reader::Next next, reader_->Read(timeout_ms));
    switch (next.outcome) {
      case AlertRing::Reader::Outcome::kTransition:
        return std::make_pair(std::move(next.alert), std::move(next.cursor));
      case AlertRing::Reader::Outcome::kNone:
        return std::nullopt;
      case AlertRing::Reader::Outcome::kFellBehind: {
        // Too slow for the ring: read on from exactly where it was with a consumer of its own.
        VIGIL_ASSIGN_OR_RETURN(catch_up_, feed_->CatchUpFrom(*hub_, reader_->position()));
        reader_.reset();
        spdlog::debug("event=watch_fell_behind");
        return std::nullopt;
      }
    }
  }
  VIGIL_ASSIGN_OR_RETURN(auto next, catch_up_->Next(timeout_ms));
  if (!next && catch_up_->ReachedEnds(hub_->partitions())) {
    // Nothing more for now: follow the ring if it holds everything from here on.
    if (auto reader = hub_->ring()->Attach(catch_up_->position())) {
      reader_.emplace(*std::move(reader));
      catch_up_.reset();
      spdlog::debug("event=watch_caught_up");
    }
  }
  return next;
}

}  // namespace

std::unique_ptr<AlertFeed> NewKafkaAlertFeed(KafkaProps props, std::string topic, AlertFeedOptions options) {
  return std::make_unique<KafkaAlertFeed>(std::move(props), std::move(topic), options);
}

}  // namespace vigil
