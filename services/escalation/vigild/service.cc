#include "services/escalation/vigild/service.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace vigil {
namespace {

constexpr std::chrono::milliseconds kFinalDrain{10000};  // how long a stop waits for the last transaction
// What the committer published is marked in the store (and its outbox records deleted) at most this often: the
// progress topic, not the store, says what was published, so this is housekeeping, kept off the hot path.
constexpr int64_t kMarkEveryMs = 1000;

bool BrokerUnreachable(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR__ALL_BROKERS_DOWN || err == RdKafka::ERR__TRANSPORT || err == RdKafka::ERR__RESOLVE;
}

std::string HeaderValue(RdKafka::Message& m, const char* name) {
  const RdKafka::Headers* headers = m.headers();
  if (headers == nullptr) return "";
  RdKafka::Headers::Header h = headers->get_last(name);
  if (h.err() != RdKafka::ERR_NO_ERROR || h.value() == nullptr) return "";
  return std::string(static_cast<const char*>(h.value()), h.value_size());
}

}  // namespace

// Eager rebalancing: on revocation, commit and publish what was applied, then
// let go; on assignment, load each partition and resume from its stored offset.
class Service::Rebalancer : public RdKafka::RebalanceCb {
 public:
  explicit Rebalancer(Service* service) : service_(*service) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      std::vector<PartitionId> ids;
      for (auto* tp : partitions) ids.emplace_back(tp->topic(), tp->partition());
      absl::Status s = service_.Assign(ids);
      if (!s.ok()) {
        service_.rebalance_error_ = s;
        service_.Stop();
        consumer->unassign();
        return;
      }
      for (auto* tp : partitions) {
        const int64_t next = service_.pipelines_.at({tp->topic(), tp->partition()})->next_offset();
        tp->set_offset(next > 0 ? next : RdKafka::Topic::OFFSET_BEGINNING);
      }
      consumer->assign(partitions);
      if (Ownership* owned = service_.options_.ownership) {
        std::set<int32_t> events, restoring;
        for (const auto& [topic, p] : ids) {
          if (topic != service_.options_.topics.events) continue;
          events.insert(p);
          if (!service_.Current({topic, p})) restoring.insert(p);
        }
        owned->Assigned(std::move(events), std::move(restoring));
      }
      spdlog::info("event=assigned partitions={}", ids.size());
    } else {
      // What was applied is committed and published before the partitions go, so that their next owner reads
      // a progress topic with no open transaction of ours; unless the store refuses writes.
      service_.Revoke(/*flush=*/!service_.store_fault_);
      consumer->unassign();
      spdlog::info("event=revoked partitions={}", partitions.size());
    }
  }

 private:
  Service& service_;
};

// librdkafka reports "all brokers are down" as an event, not as a consumed
// message: heard here (on the thread that polls), acted on by the loop.
class Service::BrokerEvents : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    LogKafkaEvent(event);
    if (event.type() == RdKafka::Event::EVENT_ERROR && BrokerUnreachable(event.err())) {
      down_ = RdKafka::err2str(event.err());
    }
  }
  // What was heard since the last call, if anything.
  std::optional<std::string> Take() { return std::exchange(down_, std::nullopt); }

 private:
  std::optional<std::string> down_;
};

Service::Service(ServiceOptions options, const Engine* engine, Store* store, Health* health)
    : options_(std::move(options)), engine_(*engine), store_(store), workers_(options_.apply_threads),
      health_(health ? *health : own_health_) {}

Service::~Service() = default;

absl::Status Service::Assign(const std::vector<PartitionId>& partitions) {
  // The progress topic is on the broker: wait for it, as long as it takes.
  absl::StatusOr<std::map<std::string, uint64_t>> progress;
  Backoff retry;
  while (!(progress = ReadProgress(options_.kafka, options_.topics.progress, 30000)).ok()) {
    if (progress.status().code() != absl::StatusCode::kUnavailable || stop_) return progress.status();
    BrokerDown(progress.status());
    SleepUnless(retry.Failed(), stop_);
  }
  for (const auto& [topic, p] : partitions) {
    const PartitionKind kind =
        topic == options_.topics.events ? PartitionKind::kEvents : PartitionKind::kSuspectLinks;
    VIGIL_ASSIGN_OR_RETURN(auto pipeline, PartitionPipeline::Load(store_, &engine_, &options_.topics,
                                                                  &options_.admission, p, kind));
    pipeline->set_max_held_victims(options_.max_held_victims);
    auto it = progress->find(ProgressKey(topic, p));
    if (it != progress->end()) VIGIL_RETURN_IF_ERROR(pipeline->MarkPublished(it->second));
    pipeline->KeepCommittedOutbox();
    spdlog::info("event=partition_loaded kind={} partition={} next_offset={} outbox_seq={} published_seq={}",
                 kind == PartitionKind::kEvents ? "events" : "suspect-links", p, pipeline->next_offset(),
                 pipeline->outbox_seq(), pipeline->published_seq());
    // What a crash left unpublished goes first. The first transaction after an assignment finds its
    // coordinator and partitions, which takes a while: the announcement does it now, not when an alert waits.
    VIGIL_ASSIGN_OR_RETURN(std::vector<state::OutboxRecord> unpublished, pipeline->Unpublished());
    committer_->Announce({topic, p}, pipeline->published_seq());
    committer_->Publish({topic, p}, std::move(unpublished), stop_);
    Applied(*pipeline);
    // Where the log ends now: the partition is restoring until it has applied this far.
    int64_t low = 0, high = -1;
    if (kind == PartitionKind::kEvents &&
        consumer_->query_watermark_offsets(topic, p, &low, &high, 5000) != RdKafka::ERR_NO_ERROR) {
      high = -1;  // learnt from the first fetch instead
    }
    counted_[{topic, p}] = {
        .applied = pipeline->applied(), .too_late = pipeline->processor().too_late(), .restore_until = high};
    pipelines_[{topic, p}] = std::move(pipeline);
  }
  SetGauges(/*now=*/true);
  return absl::OkStatus();
}

void Service::Revoke(bool flush) {
  // The API stops answering from them at once: from here their next owner's copy is the one that counts.
  if (options_.ownership) options_.ownership->Revoked();
  if (flush) FlushUntilDone();
  DropReadAhead();  // read, not applied: the next owner reads them from the committed offsets
  for (const auto& [id, pipeline] : pipelines_) Forget(id);
  pipelines_.clear();
  SetGauges(/*now=*/true);
  committer_->Reset();  // nothing more of theirs is published from here
}

absl::Status Service::Reload() {
  committer_->Reset();  // what it held is handed over again, from the store
  DropReadAhead();       // read again, from the stored offsets
  std::vector<PartitionId> ids;
  for (const auto& [id, pipeline] : pipelines_) ids.push_back(id);
  pipelines_.clear();
  VIGIL_RETURN_IF_ERROR(Assign(ids));
  std::vector<RdKafka::TopicPartition*> tps;
  for (const auto& [id, pipeline] : pipelines_) {
    const int64_t next = pipeline->next_offset();
    tps.push_back(RdKafka::TopicPartition::create(id.first, id.second,
                                                  next > 0 ? next : RdKafka::Topic::OFFSET_BEGINNING));
  }
  // Assigned again from the stored offsets, as on a rebalance.
  const RdKafka::ErrorCode err = consumer_->assign(tps);
  RdKafka::TopicPartition::destroy(tps);
  if (err != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("assigning the partitions again: ", RdKafka::err2str(err)));
  }
  return absl::OkStatus();
}

absl::Status Service::CommitStore() {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = store_->CheckWritable(); !s.ok()) {
    StoreFault(s);
    return s;
  }
  // Each partition's batch written beside the others'; then, in partition order, handed over. A failed write
  // stops the handing over there: a store fault reloads every partition from what the store holds, outboxes
  // included, and any other error stops vigild.
  std::vector<std::pair<PartitionId, PartitionPipeline*>> order;
  for (auto& [p, pipeline] : pipelines_) order.emplace_back(p, pipeline.get());
  std::vector<absl::Status> written(order.size());
  SideBySide(order.size(), [&](size_t i) { written[i] = order[i].second->Commit(); });
  size_t bytes = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    bytes += order[i].second->last_commit_bytes();
    if (absl::Status s = written[i]; !s.ok()) {
      if (s.code() != absl::StatusCode::kUnavailable) return s;
      StoreFault(s);
      return s;
    }
    Applied(*order[i].second);
    committer_->Publish(order[i].first, order[i].second->TakeCommittedOutbox(), stop_);
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  options_.metrics->store_write_seconds.Get().Observe(took.count());
  CountCommitted();
  spdlog::debug("event=committed records={} bytes={} store_ms={}", batch_records_, bytes,
                static_cast<int64_t>(took.count() * 1000));
  return absl::OkStatus();
}

void Service::CountCommitted() {
  for (const auto& [id, pipeline] : pipelines_) {
    Counted& c = counted_[id];
    options_.metrics->events_applied.Get().Inc(static_cast<double>(pipeline->applied() - c.applied));
    options_.metrics->events_too_late.Get().Inc(static_cast<double>(pipeline->processor().too_late() - c.too_late));
    c.applied = pipeline->applied();
    c.too_late = pipeline->processor().too_late();
  }
}

void Service::SetGauges(bool now) {
  const int64_t at = NowMillis();
  if (!now && at - last_gauged_ms_ < 1000) return;
  last_gauged_ms_ = at;
  int owned = 0;
  for (const auto& [id, pipeline] : pipelines_) {
    if (pipeline->kind() != PartitionKind::kEvents) continue;
    ++owned;
    const std::vector<std::string> label = {std::to_string(id.second)};
    int64_t low = 0, high = -1;
    // The log's end as the last fetch saw it (no request to the broker).
    if (consumer_ == nullptr ||
        consumer_->get_watermark_offsets(id.first, id.second, &low, &high) != RdKafka::ERR_NO_ERROR || high < 0) {
      continue;  // not fetched yet
    }
    options_.metrics->held_victims.With(label).Set(static_cast<double>(pipeline->processor().victim_count()));
    options_.metrics->victims_awaiting_deadline.With(label).Set(
        static_cast<double>(pipeline->processor().victims_awaiting_deadline()));
    const int64_t next = pipeline->next_offset();
    options_.metrics->consumer_lag.With(label).Set(static_cast<double>(std::max<int64_t>(0, high - next)));
    Counted& c = counted_[id];
    if (c.restore_until < 0) c.restore_until = high;
    const bool current = Current(id);
    if (current && options_.ownership != nullptr && options_.ownership->Restoring(id.second)) {
      options_.ownership->Restored(id.second);
      spdlog::info("event=partition_restored partition={} next_offset={}", id.second, next);
    }
    options_.metrics->restore_remaining.With(label).Set(
        current ? 0 : static_cast<double>(std::max<int64_t>(0, c.restore_until - next)));
  }
  options_.metrics->owned_partitions.Get().Set(owned);
}

bool Service::Current(const PartitionId& id) {
  auto c = counted_.find(id);
  auto pipeline = pipelines_.find(id);
  if (c == counted_.end() || pipeline == pipelines_.end() || c->second.restore_until < 0) return false;
  if (pipeline->second->next_offset() >= c->second.restore_until) return true;
  // Transaction markers take offsets no record is applied at: the consumer's position says it has read past
  // them, and nothing of the partition waits to be applied.
  auto line = waiting_.find(id);
  if (line != waiting_.end() && !line->second.empty()) return false;
  std::vector<RdKafka::TopicPartition*> tps = {RdKafka::TopicPartition::create(id.first, id.second)};
  const bool past = consumer_->position(tps) == RdKafka::ERR_NO_ERROR && tps[0]->offset() >= c->second.restore_until;
  RdKafka::TopicPartition::destroy(tps);
  return past;
}

void Service::Forget(const PartitionId& id) {
  counted_.erase(id);
  options_.metrics->consumer_lag.Remove({std::to_string(id.second)});
  options_.metrics->restore_remaining.Remove({std::to_string(id.second)});
  options_.metrics->held_victims.Remove({std::to_string(id.second)});
  options_.metrics->victims_awaiting_deadline.Remove({std::to_string(id.second)});
}

absl::Status Service::MarkPublished() {
  for (const auto& [p, seq] : committer_->TakePublished()) {
    auto it = pipelines_.find(p);
    if (it == pipelines_.end()) continue;  // revoked: its next owner reads the progress topic
    if (absl::Status s = it->second->MarkPublished(seq); !s.ok()) {
      if (s.code() == absl::StatusCode::kUnavailable) StoreFault(s);
      return s;
    }
  }
  return absl::OkStatus();
}

void Service::Applied(const PartitionPipeline& pipeline) {
  if (options_.applied != nullptr && pipeline.kind() == PartitionKind::kEvents) {
    options_.applied->Set(pipeline.partition(), pipeline.next_offset());
  }
}

void Service::FlushUntilDone() {
  if (absl::Status s = CommitStore(); !s.ok()) {
    spdlog::error("event=flush_failed status=\"{}\"", s.ToString());
    return;
  }
  if (absl::Status s = committer_->Drain(stop_); !s.ok()) {
    spdlog::warn("event=flush_incomplete status=\"{}\"", s.ToString());
  }
  if (absl::Status s = MarkPublished(); !s.ok()) spdlog::error("event=flush_failed status=\"{}\"", s.ToString());
}

absl::Status Service::RecoverProducer() {
  if (!producer_retry_.Due()) return absl::OkStatus();
  producer_retry_.Failed();  // until it works
  committer_->Reset();
  absl::Status s = committer_->Recreate();
  if (s.code() == absl::StatusCode::kInternal) return s;  // fenced again and again: another instance is us
  if (!s.ok()) {
    spdlog::warn("event=producer_rebuild_failed status=\"{}\"", s.ToString());
    return absl::OkStatus();
  }
  // The progress topic says what was published, whichever way the broker settled the old transaction.
  if (absl::Status r = Reload(); !r.ok()) {
    spdlog::warn("event=reload_failed status=\"{}\"", r.ToString());
    return absl::OkStatus();
  }
  producer_retry_.Reset();
  return absl::OkStatus();
}

void Service::BrokerUp() {
  std::lock_guard<std::mutex> lock(broker_mu_);
  if (broker_up_) return;
  broker_up_ = true;
  spdlog::info("event=broker_reachable");
  health_.Set(kHealthBroker, absl::OkStatus());
}

void Service::BrokerDown(const absl::Status& why) {
  std::lock_guard<std::mutex> lock(broker_mu_);
  if (!broker_up_) return;
  broker_up_ = false;
  broker_probes_.Reset();
  spdlog::warn("event=broker_unreachable status=\"{}\"", why.ToString());
  health_.Set(kHealthBroker, absl::UnavailableError(absl::StrCat("Kafka is unreachable: ", why.message())));
}

void Service::ProbeBroker() {
  {
    std::lock_guard<std::mutex> lock(broker_mu_);
    if (broker_up_ || !broker_probes_.Due()) return;
    broker_probes_.Failed();  // until it answers
  }
  RdKafka::Metadata* md = nullptr;
  const RdKafka::ErrorCode err = ticker_->metadata(false, ticker_topics_.front().get(), &md, 2000);
  delete md;
  if (err == RdKafka::ERR_NO_ERROR) BrokerUp();
}

void Service::StoreFault(const absl::Status& why) {
  if (store_fault_) return;
  store_fault_ = true;
  store_probes_.Reset();
  spdlog::error("event=store_write_failed status=\"{}\" action=pause_consumption", why.ToString());
  health_.Set(kHealthStore, absl::UnavailableError(absl::StrCat("the state store refuses writes: ", why.message())));
  // Nothing more is fetched until Reload() assigns the partitions again from the stored offsets.
  DropReadAhead();
  consumer_->unassign();
}

void Service::TryRecoverStore() {
  if (!store_probes_.Due()) return;
  store_probes_.Failed();  // until the store takes writes
  if (absl::Status s = store_->Recover(); !s.ok()) {
    spdlog::warn("event=store_still_failing status=\"{}\"", s.ToString());
    return;
  }
  // What was applied but not committed is in memory only: forget it and consume it again. A consumer that
  // failed for good meanwhile (fenced while unassigned: no revocation) is replaced instead, the partitions
  // dropped here: its successor's assignment loads them.
  absl::Status s;
  if (consumer_fatal_) {
    Revoke(/*flush=*/false);
    s = RecoverConsumer();
  } else {
    s = Reload();
  }
  if (!s.ok()) {
    spdlog::warn("event=store_reload_failed status=\"{}\"", s.ToString());
    return;
  }
  store_fault_ = false;
  spdlog::info("event=store_recovered action=resume_consumption partitions={}", pipelines_.size());
  health_.Set(kHealthStore, absl::OkStatus());
}

void Service::Tick() {
  if (options_.tick_ms <= 0) return;
  const int64_t now = options_.clock ? options_.clock() : NowMillis();
  if (now - last_tick_ms_ < options_.tick_ms) return;
  last_tick_ms_ = now;
  for (auto& [tp, pipeline] : pipelines_) {
    if (pipeline->kind() != PartitionKind::kEvents) continue;
    const int32_t p = tp.second;
    v1::Event tick;
    tick.set_event_id(absl::StrCat("tick-", p, "-", now));
    *tick.mutable_occurred_at() = ToTimestamp(now * 1000);
    tick.set_source("vigild");
    tick.mutable_clock_tick();
    const std::string bytes = tick.SerializeAsString();
    RdKafka::Headers* headers = RdKafka::Headers::create();
    if (options_.admission.signer != nullptr) headers->add(kHeaderSignature, options_.admission.signer->Sign(bytes));
    if (ticker_->produce(options_.topics.events, p, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(bytes.data()),
                         bytes.size(), kClockKey, sizeof(kClockKey) - 1, 0, headers, nullptr) !=
        RdKafka::ERR_NO_ERROR) {
      delete headers;
    }
  }
  ticker_->poll(0);
}

std::vector<TopicSpec> Service::TopicSpecs() const {
  const auto& t = options_.topics;
  // The broker stamps each event with its own clock, the time no producer can set: events later than
  // it (plus a tolerance) are refused as from the future (admission.h).
  std::vector<TopicSpec> topics = {{t.events, options_.partitions, {{"message.timestamp.type", "LogAppendTime"}}},
                                   {t.alerts, options_.partitions, {}},
                                   {t.dead_letters, 1, {}},
                                   {t.progress, 1, {{"cleanup.policy", "compact"}}}};
  if (!t.suspect_links.empty()) topics.push_back({t.suspect_links, options_.partitions, {}});
  if (t.source_quiet_after > 0) topics.push_back({t.source_alerts, 1, {}});
  for (const auto& route : t.routes) {
    if (auto eq = route.find('='); eq != std::string::npos) topics.push_back({route.substr(eq + 1), 1, {}});
  }
  return topics;
}

absl::Status Service::Connect() {
  const auto& t = options_.topics;
  VIGIL_RETURN_IF_ERROR(EnsureTopics(options_.kafka, TopicSpecs(), 30000));
  CommitterOptions committer;
  committer.kafka = options_.kafka;
  committer.instance = options_.instance;
  committer.dead_letters = t.dead_letters;
  committer.progress = t.progress;
  for (const TopicSpec& spec : TopicSpecs()) committer.topics.push_back(spec.name);
  committer.interval_ms = options_.commit_interval_ms;
  committer.alerts = t.alerts;
  committer.metrics = options_.metrics;
  committer_ = std::make_unique<Committer>(committer, &health_, [this](bool up, const absl::Status& why) {
    up ? BrokerUp() : BrokerDown(why);
  });
  VIGIL_RETURN_IF_ERROR(committer_->Start());

  std::string err;
  broker_events_ = std::make_unique<BrokerEvents>();
  KafkaProps ticker_props = options_.kafka;
  ticker_props.emplace_back("enable.idempotence", "true");
  VIGIL_ASSIGN_OR_RETURN(auto tconf, MakeKafkaConf(ticker_props));
  if (tconf->set("event_cb", static_cast<RdKafka::EventCb*>(broker_events_.get()), err) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  ticker_topics_.clear();
  ticker_.reset(RdKafka::Producer::create(tconf.get(), err));
  if (!ticker_) return absl::InvalidArgumentError(absl::StrCat("Kafka producer: ", err));
  VIGIL_ASSIGN_OR_RETURN(ticker_topics_, WarmTopics(ticker_.get(), {t.events}, 30000));
  if (!rebalancer_) rebalancer_ = std::make_unique<Rebalancer>(this);
  return Subscribe();
}

absl::Status Service::Subscribe() {
  const Topics& t = options_.topics;
  std::string err;
  // Defaults first, so that --kafka overrides them.
  KafkaProps consumer_props = {{"session.timeout.ms", "10000"},
                               {"group.instance.id", options_.instance},
                               {"fetch.wait.max.ms", "20"}};
  consumer_props.insert(consumer_props.end(), options_.kafka.begin(), options_.kafka.end());
  consumer_props.emplace_back("group.id", options_.group);
  consumer_props.emplace_back("enable.auto.commit", "false");
  consumer_props.emplace_back("enable.auto.offset.store", "false");
  consumer_props.emplace_back("isolation.level", "read_committed");
  consumer_props.emplace_back("auto.offset.reset", "earliest");
  consumer_props.emplace_back("partition.assignment.strategy", "range");
  VIGIL_ASSIGN_OR_RETURN(auto cconf, MakeKafkaConf(consumer_props));
  if (cconf->set("rebalance_cb", rebalancer_.get(), err) != RdKafka::Conf::CONF_OK ||
      cconf->set("event_cb", static_cast<RdKafka::EventCb*>(broker_events_.get()), err) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(cconf.get(), err));
  if (!consumer_) return absl::InvalidArgumentError(absl::StrCat("Kafka consumer: ", err));
  std::vector<std::string> subscription = {t.events};
  if (!t.suspect_links.empty()) subscription.push_back(t.suspect_links);
  if (consumer_->subscribe(subscription) != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("subscribing to ", t.events));
  }
  return absl::OkStatus();
}

bool Service::ConsumerFailed(const RdKafka::Message& m) {
  if (m.err() != RdKafka::ERR__FATAL) return false;
  spdlog::error("event=consume_error error=\"{}\"", m.errstr());
  consumer_fatal_ = true;
  return true;
}

absl::Status Service::RecoverConsumer() {
  spdlog::error("event=consumer_failed action=rejoin_group partitions={}", pipelines_.size());
  consumer_->close();  // revokes what it still had (committed and published first)
  consumer_fatal_ = false;
  return Subscribe();
}

void Service::ReadAhead(int wait_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  // Reading stops once a whole batch is ready, or at the time; with a backlog, once nothing more has
  // arrived (the records of the other partitions may be behind it).
  for (Lines lines; !(lines = Waiting()).batch && !stop_;) {
    // A backlog: the batch takes what has arrived and goes.
    const auto left = lines.backlogged > 0 ? std::chrono::milliseconds(0)
                                           : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 end - std::chrono::steady_clock::now());
    std::unique_ptr<RdKafka::Message> m(consumer_->consume(std::max<int>(0, static_cast<int>(left.count()))));
    if (m->err() == RdKafka::ERR__TIMED_OUT) break;
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      if (BrokerUnreachable(m->err())) {
        BrokerDown(absl::UnavailableError(m->errstr()));
      } else if (ConsumerFailed(*m)) {
        break;  // Run makes a new consumer
      } else if (m->err() != RdKafka::ERR__PARTITION_EOF) {
        spdlog::warn("event=consume_error error=\"{}\"", m->errstr());
      }
      continue;
    }
    BrokerUp();
    const PartitionId id(m->topic_name(), m->partition());
    auto it = pipelines_.find(id);
    if (it == pipelines_.end()) continue;  // revoked meanwhile
    Line& line = waiting_[id];
    // Fetched before a reassignment: applied, or waiting, already.
    if (m->offset() < (line.empty() ? it->second->next_offset() : line.back().offset() + 1)) continue;
    line.Push(std::move(m));
    if (Shares().Pause(pipelines_.size(), line.size(), line.bytes()) && paused_.insert(id).second) {
      // Its backlog waits in the broker, not ahead of the other partitions' records in the consumer's queue.
      spdlog::debug("event=partition_paused topic={} partition={} waiting={}", id.first, id.second, line.size());
      Fetch({id}, /*paused=*/true);
    }
  }
}

Service::Lines Service::Waiting() const {
  // Each line counts for its turn as if every owned partition had records: a partition's records behind
  // another's backlog in the consumer's queue are read before the batch is deemed full.
  Lines out;
  for (const auto& [id, line] : waiting_) {
    if (line.size() >= static_cast<size_t>(options_.partition_batch_max)) ++out.backlogged;
  }
  const int size = Shares().Size(pipelines_.size(), out.backlogged);
  const size_t turn = Shares().Turn(pipelines_.size(), size);
  size_t ready = 0;
  for (const auto& [id, line] : waiting_) ready += std::min(line.size(), turn);
  out.batch = ready >= static_cast<size_t>(size);
  return out;
}

void Service::Fetch(const std::vector<PartitionId>& ids, bool paused) {
  std::vector<RdKafka::TopicPartition*> tps;
  for (const PartitionId& id : ids) tps.push_back(RdKafka::TopicPartition::create(id.first, id.second));
  paused ? consumer_->pause(tps) : consumer_->resume(tps);
  RdKafka::TopicPartition::destroy(tps);
}

int Service::ApplyBatch() {
  std::vector<PartitionId> ready;
  for (const auto& [id, line] : waiting_) {
    if (!line.empty()) ready.push_back(id);
  }
  // Which partition goes first turns from batch to batch, so that none is always last when the batch fills.
  if (!ready.empty()) std::rotate(ready.begin(), ready.begin() + (batches_++ % ready.size()), ready.end());
  const int size = Shares().Size(pipelines_.size(), Waiting().backlogged);
  const int turn = Shares().Turn(ready.size(), size);
  // Each partition's turn taken from its line here, then applied beside the others'.
  struct Turn {
    PartitionId id;
    PartitionPipeline* pipeline;
    std::vector<std::unique_ptr<RdKafka::Message>> records;
  };
  std::vector<Turn> turns;
  int n = 0;
  for (const PartitionId& id : ready) {
    Line& line = waiting_[id];
    Turn& t = turns.emplace_back(Turn{id, pipelines_.at(id).get(), {}});
    for (int taken = 0; taken < turn && n < size && !line.empty(); ++taken, ++n) t.records.push_back(line.Pop());
  }
  batch_records_ = static_cast<size_t>(n);
  const size_t max_bytes = Shares().TurnBytes(turns.size());
  std::vector<size_t> applied(turns.size());
  SideBySide(turns.size(), [&](size_t i) {
    for (std::unique_ptr<RdKafka::Message>& m : turns[i].records) {
      if (applied[i] > 0 && turns[i].pipeline->pending_bytes() >= max_bytes) break;
      ++applied[i];
      const std::string* key = m->key();
      const RdKafka::MessageTimestamp ts = m->timestamp();
      turns[i].pipeline->Apply(
          {.offset = m->offset(),
           .key = key ? absl::string_view(*key) : absl::string_view(),
           .value = absl::string_view(static_cast<const char*>(m->payload()), m->len()),
           .timestamp_ms = ts.type == RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE ? -1 : ts.timestamp,
           .signature = HeaderValue(*m, kHeaderSignature)});
      m.reset();
    }
  });
  // A turn cut short by its bytes: the records it left go back to the head of their line, in order.
  n = 0;
  for (size_t i = 0; i < turns.size(); ++i) {
    n += static_cast<int>(applied[i]);
    std::vector<std::unique_ptr<RdKafka::Message>>& left = turns[i].records;
    Line& line = waiting_[turns[i].id];
    line.PutBack(left.begin() + static_cast<ptrdiff_t>(applied[i]), left.end());
    if (Shares().Resume(pipelines_.size(), line.size(), line.bytes()) && paused_.erase(turns[i].id) > 0) {
      Fetch({turns[i].id}, /*paused=*/false);
    }
  }
  batch_records_ = static_cast<size_t>(n);
  return n;
}

void Service::SideBySide(size_t partitions, absl::FunctionRef<void(size_t)> task) {
  // A small batch (a live stream's) is done sooner on this thread than a helper is woken and scheduled on cores
  // shared with the broker.
  if (batch_records_ < kSideBySideFrom) {
    for (size_t i = 0; i < partitions; ++i) task(i);
    return;
  }
  workers_.Run(partitions, task);
}

void Service::DropReadAhead() {
  if (!paused_.empty()) Fetch({paused_.begin(), paused_.end()}, /*paused=*/false);
  paused_.clear();
  waiting_.clear();
}

absl::Status Service::Run() {
  // A broker that is not there yet is waited for, with backoff.
  Backoff retry;
  for (absl::Status s; !(s = Connect()).ok();) {
    if (s.code() != absl::StatusCode::kUnavailable) return s;
    BrokerDown(s);
    SleepUnless(retry.Failed(), stop_);
    if (stop_) return absl::OkStatus();
  }
  retry.Reset();
  BrokerUp();
  health_.Set(kHealthStore, absl::OkStatus());
  spdlog::info("event=started group={} instance={} events_topic={} data_dir={}", options_.group,
               options_.instance, options_.topics.events, options_.data_dir);

  int64_t last_report = NowMillis();
  while (!stop_) {
    if (store_fault_) TryRecoverStore();
    if (store_fault_) {
      // Unassigned: this only keeps the group membership alive. (Once recovered, the next record is
      // consumed below, never here, where it would be thrown away.)
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(100));
      ConsumerFailed(*m);  // fenced meanwhile: replaced once the store takes writes
      if (!rebalance_error_.ok()) break;
      Tick();
      continue;
    }
    ReadAhead(options_.batch_ms);
    const int n = ApplyBatch();
    events_ += n;
    if (!rebalance_error_.ok()) break;
    if (auto down = broker_events_->Take(); down && n == 0) BrokerDown(absl::UnavailableError(*down));
    // The batch to the store, its outbox to the committer (which publishes it while the next batch is read);
    // what the committer has published since, marked.
    absl::Status s = n > 0 ? CommitStore() : absl::OkStatus();
    if (s.ok() && NowMillis() - last_marked_ms_ >= kMarkEveryMs) {
      last_marked_ms_ = NowMillis();
      s = MarkPublished();
    }
    if (s.ok() && committer_->Fatal()) s = RecoverProducer();
    if (s.ok() && consumer_fatal_) s = RecoverConsumer();
    if (!s.ok() && s.code() != absl::StatusCode::kUnavailable) return s;
    ProbeBroker();
    Tick();
    SetGauges(/*now=*/false);
    if (NowMillis() - last_report > 10000) {
      last_report = NowMillis();
      spdlog::info("event=progress records={} published={} partitions={} unpublished={}", events_,
                   committer_->published_total(), pipelines_.size(), committer_->pending());
    }
  }
  absl::Status final_flush = rebalance_error_;
  if (rebalance_error_.ok() && !store_fault_) {
    final_flush = CommitStore();
    if (final_flush.ok()) {
      // Whatever the broker does not take in time is published by the next start (the outbox is stored).
      std::atomic<bool> never{false};
      if (absl::Status d = committer_->Drain(never, kFinalDrain); !d.ok()) {
        spdlog::warn("event=stopped_with_unpublished_records status=\"{}\" unpublished={}", d.ToString(),
                     committer_->pending());
      }
      final_flush = MarkPublished();
    }
  }
  // A store that refuses writes is not a failed stop: what was not committed is consumed again, and what was
  // not published is published, by the next start.
  if (final_flush.code() == absl::StatusCode::kUnavailable && store_fault_) final_flush = absl::OkStatus();
  if (options_.ownership) options_.ownership->Revoked();
  consumer_->close();
  ticker_->flush(5000);
  const uint64_t published = committer_->published_total();
  committer_.reset();  // its thread stops; an open transaction is aborted by the next start
  spdlog::info("event=stopped records={} published={}", events_, published);
  return final_flush;
}

}  // namespace vigil
