#include "services/escalation/vigild/service.h"

#include <chrono>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace vigil {
namespace {

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ProgressKey(const std::string& events_topic, int32_t partition) {
  return absl::StrCat(events_topic, "/", partition);
}

constexpr int kTxnTimeoutMs = 10000;   // one try at committing or aborting a transaction
constexpr int64_t kMaxBackoffMs = 5000;
constexpr int kMaxFatalProducerErrors = 3;  // in a row: another instance has our transactional.id

bool BrokerUnreachable(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR__ALL_BROKERS_DOWN || err == RdKafka::ERR__TRANSPORT || err == RdKafka::ERR__RESOLVE;
}

// Errors about the record itself, which no retry mends.
bool RecordRefused(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR_MSG_SIZE_TOO_LARGE || err == RdKafka::ERR_INVALID_MSG_SIZE ||
         err == RdKafka::ERR_INVALID_MSG || err == RdKafka::ERR_RECORD_LIST_TOO_LARGE ||
         err == RdKafka::ERR_INVALID_RECORD;
}

// Errors about where the record goes (its topic missing or forbidden): a retry may mend them (an operator
// fixing an ACL), so they count as strikes, and a record that strikes out goes as a dead letter.
bool RecordStrike(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED || err == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART ||
         err == RdKafka::ERR__UNKNOWN_TOPIC || err == RdKafka::ERR__UNKNOWN_PARTITION ||
         err == RdKafka::ERR_POLICY_VIOLATION || err == RdKafka::ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
}
constexpr int kMaxTopicStrikes = 3;
constexpr int64_t kStruckTopicRetryMs = 60000;  // a topic that struck out is tried again once a minute

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
      spdlog::info("event=assigned partitions={}", ids.size());
    } else {
      // What was applied is committed and published before the partitions go,
      // so that their next owner reads a progress topic with no open transaction of ours.
      if (!service_.store_fault_) service_.FlushUntilDone();
      service_.pipelines_.clear();
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
    if (event.type() == RdKafka::Event::EVENT_ERROR && BrokerUnreachable(event.err())) {
      down_ = RdKafka::err2str(event.err());
    }
  }
  // What was heard since the last call, if anything.
  std::optional<std::string> Take() { return std::exchange(down_, std::nullopt); }

 private:
  std::optional<std::string> down_;
};

// The transactional producer's delivery reports: a record the broker refused for what it is
// (too large for the topic, say) is remembered, so that the retry replaces it (ProduceOutbox).
class Service::DeliveryReports : public RdKafka::DeliveryReportCb {
 public:
  explicit DeliveryReports(Service* service) : service_(*service) {}
  void dr_cb(RdKafka::Message& m) override {
    const auto index = reinterpret_cast<uintptr_t>(m.msg_opaque());
    if (m.err() == RdKafka::ERR_NO_ERROR || index == 0 || index > service_.produced_.size()) return;
    const auto& [p, seq] = service_.produced_[index - 1];
    spdlog::warn("event=record_not_published partition={} seq={} topic={} error=\"{}\"", p.second, seq,
                 m.topic_name(), m.errstr());
    if (RecordRefused(m.err()) || (RecordStrike(m.err()) && service_.Strike(p, seq, m.topic_name(), m.errstr()))) {
      service_.refused_[{p, seq}] = m.errstr();
    }
  }

 private:
  Service& service_;
};

Service::Service(ServiceOptions options, const Engine* engine, Store* store, Health* health)
    : options_(std::move(options)), engine_(*engine), store_(store), health_(health ? *health : own_health_) {}

Service::~Service() = default;

absl::Status Service::Assign(const std::vector<PartitionId>& partitions) {
  // The progress topic is on the broker: wait for it, as long as it takes.
  absl::StatusOr<std::map<std::string, uint64_t>> progress;
  Backoff retry;
  while (!(progress = ReadProgress(options_.kafka, options_.topics.progress, 30000)).ok()) {
    if (progress.status().code() != absl::StatusCode::kUnavailable || stop_) return progress.status();
    BrokerDown(progress.status());
    Pause(retry.Failed());
  }
  for (const auto& [topic, p] : partitions) {
    const PartitionKind kind =
        topic == options_.topics.events ? PartitionKind::kEvents : PartitionKind::kSuspectLinks;
    VIGIL_ASSIGN_OR_RETURN(auto pipeline, PartitionPipeline::Load(store_, &engine_, &options_.topics,
                                                                  &options_.admission, p, kind));
    pipeline->set_max_held_victims(options_.max_held_victims);
    auto it = progress->find(ProgressKey(topic, p));
    if (it != progress->end()) VIGIL_RETURN_IF_ERROR(pipeline->MarkPublished(it->second));
    spdlog::info("event=partition_loaded kind={} partition={} next_offset={} outbox_seq={} published_seq={}",
                 kind == PartitionKind::kEvents ? "events" : "suspect-links", p, pipeline->next_offset(),
                 pipeline->outbox_seq(), pipeline->published_seq());
    Published(*pipeline);
    pipelines_[{topic, p}] = std::move(pipeline);
  }
  // The first transaction after start finds its coordinator and partitions, which
  // takes a while: do it now, writing the current progress, not when an alert waits.
  announce_progress_ = true;
  return absl::OkStatus();
}

absl::Status Service::Reload() {
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

absl::Status Service::Flush() {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = store_->CheckWritable(); !s.ok()) {
    StoreFault(s);
    return s;
  }
  for (auto& [p, pipeline] : pipelines_) {
    if (absl::Status s = pipeline->Commit(); !s.ok()) {
      if (s.code() != absl::StatusCode::kUnavailable) return s;
      StoreFault(s);
      return s;
    }
    Published(*pipeline);
  }
  spdlog::debug("event=committed store_ms={}", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::steady_clock::now() - start).count());
  return Publish();
}

void Service::Published(const PartitionPipeline& pipeline) {
  if (options_.applied != nullptr && pipeline.kind() == PartitionKind::kEvents) {
    options_.applied->Set(pipeline.partition(), pipeline.next_offset());
  }
}

void Service::FlushUntilDone() {
  Backoff retry;
  for (;;) {
    absl::Status s = Flush();
    if (s.ok() || store_fault_ || s.code() != absl::StatusCode::kUnavailable) {
      if (!s.ok()) spdlog::error("event=flush_failed status=\"{}\"", s.ToString());
      return;
    }
    if (stop_) return;
    Pause(retry.Failed());
  }
}

absl::Status Service::Publish() {
  // A transaction the broker has not settled yet goes first; its records are not marked published.
  if (txn_ != Txn::kNone) VIGIL_RETURN_IF_ERROR(EndTransaction());
  std::map<PartitionId, std::vector<state::OutboxRecord>> batches;
  for (auto& [p, pipeline] : pipelines_) {
    VIGIL_ASSIGN_OR_RETURN(auto records, pipeline->Unpublished());
    if (!records.empty() || announce_progress_) batches[p] = std::move(records);
  }
  if (batches.empty() && !announce_progress_) return absl::OkStatus();
  announce_progress_ = false;
  if (RdKafka::Error* e = producer_->begin_transaction()) {
    std::string message = e->str();
    delete e;
    return absl::InternalError(absl::StrCat("begin transaction: ", message));
  }
  txn_ = Txn::kCommitting;
  in_flight_.clear();
  in_flight_count_ = 0;
  produced_.clear();
  for (auto& [p, records] : batches) {
    for (auto& r : records) {
      if (RdKafka::ErrorCode err = ProduceOutbox(p, r); err != RdKafka::ERR_NO_ERROR) {
        txn_ = Txn::kAborting;
        in_flight_.clear();
        spdlog::warn("event=produce_failed partition={} seq={} topic={} error=\"{}\"", p.second, r.seq(),
                     r.topic(), RdKafka::err2str(err));
        return EndTransaction();
      }
      ++in_flight_count_;
    }
    const std::string key = ProgressKey(p.first, p.second);
    const uint64_t seq = records.empty() ? pipelines_.at(p)->published_seq() : records.back().seq();
    const std::string value = absl::StrCat(seq);
    producer_->produce(options_.topics.progress, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                       const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                       static_cast<RdKafka::Headers*>(nullptr), nullptr);
    if (!records.empty()) in_flight_[p] = seq;
  }
  return EndTransaction();
}

RdKafka::ErrorCode Service::ProduceOutbox(const PartitionId& p, const state::OutboxRecord& outbox) {
  const state::OutboxRecord* r = &outbox;
  state::OutboxRecord replacement;
  std::optional<std::string> refused;
  if (auto it = refused_.find({p, outbox.seq()}); it != refused_.end()) refused = it->second;
  if (auto it = topic_strikes_.find(outbox.topic());
      !refused && it != topic_strikes_.end() && it->second.count >= kMaxTopicStrikes &&
      NowMillis() - it->second.last_ms < kStruckTopicRetryMs) {
    refused = it->second.error;  // its topic struck out a moment ago: not tried again yet
  }
  for (;;) {
    if (refused) {
      // Published in its place, under the same seq: the dead letter says what the record was and why.
      replacement = BoundedDeadLetter(options_.topics.dead_letters, outbox.key(), outbox.value(),
                                      absl::StrCat("RESOURCE_EXHAUSTED: could not be published to ", outbox.topic(),
                                                   ": ", *refused),
                                      outbox.topic(), p.second, static_cast<int64_t>(outbox.seq()));
      (*replacement.mutable_headers())["vigil-outbox-seq"] = absl::StrCat(outbox.seq());
      r = &replacement;
      spdlog::error("event=record_dead_lettered partition={} seq={} topic={} reason=\"{}\"", p.second,
                    outbox.seq(), outbox.topic(), *refused);
    }
    RdKafka::Headers* headers = RdKafka::Headers::create();
    for (const auto& [k, v] : r->headers()) headers->add(k, v.data(), v.size());
    produced_.emplace_back(p, outbox.seq());
    void* opaque = reinterpret_cast<void*>(static_cast<uintptr_t>(produced_.size()));
    RdKafka::ErrorCode err;
    while ((err = producer_->produce(r->topic(), RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                                     const_cast<char*>(r->value().data()), r->value().size(), r->key().data(),
                                     r->key().size(), 0, headers, opaque)) == RdKafka::ERR__QUEUE_FULL) {
      producer_->poll(50);
    }
    if (err == RdKafka::ERR_NO_ERROR) {
      if (!refused) topic_strikes_.erase(outbox.topic());  // it takes records again
      return err;
    }
    delete headers;
    produced_.pop_back();
    if (refused) return err;
    if (RecordStrike(err) && !Strike(p, outbox.seq(), outbox.topic(), RdKafka::err2str(err))) {
      health_.Set(kHealthPublish, absl::UnavailableError(stuck_));
      return err;  // tried again after a pause
    }
    if (!RecordRefused(err) && !RecordStrike(err)) return err;
    refused = RdKafka::err2str(err);
  }
}

bool Service::Strike(const PartitionId& p, uint64_t seq, const std::string& topic, const std::string& error) {
  TopicStrikes& t = topic_strikes_[topic];
  t.count = std::min(t.count + 1, kMaxTopicStrikes);
  t.last_ms = NowMillis();
  t.error = error;
  stuck_ = absl::StrCat("partition ", p.second, " cannot publish outbox record ", seq, " to ", topic, ": ", error,
                        " (try ", t.count, " of ", kMaxTopicStrikes, ", then to the dead-letter topic)");
  spdlog::error("event=publish_stuck status=\"{}\"", stuck_);
  return t.count >= kMaxTopicStrikes;
}

absl::Status Service::EndTransaction() {
  const auto start = std::chrono::steady_clock::now();
  const bool commit = txn_ == Txn::kCommitting;
  RdKafka::Error* e = commit ? producer_->commit_transaction(kTxnTimeoutMs)
                             : producer_->abort_transaction(kTxnTimeoutMs);
  if (e == nullptr) {
    txn_ = Txn::kNone;
    fatal_producer_errors_ = 0;
    BrokerUp();
    if (!commit) return absl::UnavailableError("the transaction was aborted; its records go again");
    spdlog::debug("event=published records={} commit_ms={}", in_flight_count_,
                  std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
    published_ += in_flight_count_;
    refused_.clear();  // each went as a dead letter in this transaction
    stuck_.clear();
    health_.Set(kHealthPublish, absl::OkStatus());
    for (const auto& [p, seq] : in_flight_) {
      auto it = pipelines_.find(p);
      if (it == pipelines_.end()) continue;  // revoked: its next owner reads the progress topic
      if (absl::Status s = it->second->MarkPublished(seq); !s.ok()) {
        if (s.code() == absl::StatusCode::kUnavailable) StoreFault(s);
        return s;
      }
    }
    in_flight_.clear();
    return absl::OkStatus();
  }
  const std::string message = absl::StrCat(commit ? "commit" : "abort", " transaction: ", e->str());
  const bool fatal = e->is_fatal(), abortable = e->txn_requires_abort();
  delete e;
  if (fatal) {
    // The producer cannot go on (fenced, or its epoch expired while the broker was away). A new one
    // settles the old transaction whichever way the broker decided; the progress topic then says
    // what was published, so the partitions are loaded again from it.
    if (++fatal_producer_errors_ > kMaxFatalProducerErrors) return absl::InternalError(message);
    spdlog::error("event=producer_fatal status=\"{}\" action=rebuild_producer", message);
    txn_ = Txn::kNone;
    in_flight_.clear();
    VIGIL_RETURN_IF_ERROR(CreateProducer());
    VIGIL_RETURN_IF_ERROR(Reload());
    return absl::UnavailableError(message);
  }
  if (abortable) {
    txn_ = Txn::kAborting;
    in_flight_.clear();
    if (!refused_.empty()) {
      // The broker refused records for what they are: the retry sends dead letters in their place.
      const auto& [which, why] = *refused_.begin();
      health_.Set(kHealthPublish, absl::UnavailableError(absl::StrCat(
                                      "partition ", which.first.second, " cannot publish outbox record ", which.second,
                                      ": ", why, "; it is sent to the dead-letter topic instead")));
      return absl::UnavailableError(message);
    }
    if (!stuck_.empty()) {
      // Its topic is missing or forbidden: tried again (an operator may mend it), then dead-lettered.
      health_.Set(kHealthPublish, absl::UnavailableError(stuck_));
      return absl::UnavailableError(message);
    }
  }
  // Retriable (a timeout while the broker is away): the same call again, later.
  BrokerDown(absl::UnavailableError(message));
  return absl::UnavailableError(message);
}

void Service::BrokerUp() {
  if (broker_up_) return;
  broker_up_ = true;
  spdlog::info("event=broker_reachable");
  health_.Set(kHealthBroker, absl::OkStatus());
}

void Service::BrokerDown(const absl::Status& why) {
  if (!broker_up_) return;
  broker_up_ = false;
  broker_probes_.Reset();
  spdlog::warn("event=broker_unreachable status=\"{}\"", why.ToString());
  health_.Set(kHealthBroker, absl::UnavailableError(absl::StrCat("Kafka is unreachable: ", why.message())));
}

void Service::ProbeBroker() {
  if (broker_up_ || !broker_probes_.Due()) return;
  broker_probes_.Failed();  // until it answers
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
  consumer_->unassign();
}

void Service::TryRecoverStore() {
  if (!store_probes_.Due()) return;
  store_probes_.Failed();  // until the store takes writes
  if (absl::Status s = store_->Recover(); !s.ok()) {
    spdlog::warn("event=store_still_failing status=\"{}\"", s.ToString());
    return;
  }
  // What was applied but not committed is in memory only: forget it and consume it again.
  if (absl::Status s = Reload(); !s.ok()) {
    spdlog::warn("event=store_reload_failed status=\"{}\"", s.ToString());
    return;
  }
  store_fault_ = false;
  spdlog::info("event=store_recovered action=resume_consumption partitions={}", pipelines_.size());
  health_.Set(kHealthStore, absl::OkStatus());
}

int64_t Service::Backoff::Failed() {
  delay_ms_ = std::min<int64_t>(kMaxBackoffMs, std::max<int64_t>(100, delay_ms_ * 2));
  due_ms_ = NowMillis() + delay_ms_;
  return delay_ms_;
}

bool Service::Backoff::Due() const { return NowMillis() >= due_ms_; }

void Service::Pause(int64_t ms) const {
  for (int64_t waited = 0; waited < ms && !stop_; waited += 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(100, ms - waited)));
  }
}

void Service::Tick() {
  if (options_.tick_ms <= 0) return;
  const int64_t now = NowMillis();
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

absl::Status Service::CreateProducer() {
  producer_topics_.clear();
  producer_.reset();
  std::string err;
  KafkaProps props = options_.kafka;
  props.emplace_back("transactional.id", options_.instance);
  props.emplace_back("enable.idempotence", "true");
  props.emplace_back("linger.ms", "1");
  VIGIL_ASSIGN_OR_RETURN(auto conf, MakeKafkaConf(props));
  if (!reports_) reports_ = std::make_unique<DeliveryReports>(this);
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(reports_.get()), err) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) return absl::InvalidArgumentError(absl::StrCat("Kafka producer: ", err));
  if (RdKafka::Error* e = producer_->init_transactions(60000)) {
    std::string message = e->str();
    const bool fatal = e->is_fatal();
    delete e;
    const std::string what = absl::StrCat("initialising Kafka transactions: ", message);
    return fatal ? absl::InternalError(what) : absl::UnavailableError(what);
  }
  std::vector<std::string> names;
  for (const TopicSpec& spec : TopicSpecs()) names.push_back(spec.name);
  VIGIL_ASSIGN_OR_RETURN(producer_topics_, WarmTopics(producer_.get(), names, 30000));
  return absl::OkStatus();
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
  for (const auto& route : t.routes) {
    if (auto eq = route.find('='); eq != std::string::npos) topics.push_back({route.substr(eq + 1), 1, {}});
  }
  return topics;
}

absl::Status Service::Connect() {
  const auto& t = options_.topics;
  VIGIL_RETURN_IF_ERROR(EnsureTopics(options_.kafka, TopicSpecs(), 30000));
  VIGIL_RETURN_IF_ERROR(CreateProducer());

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
  rebalancer_ = std::make_unique<Rebalancer>(this);
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

absl::Status Service::Run() {
  // A broker that is not there yet is waited for, with backoff.
  Backoff retry;
  for (absl::Status s; !(s = Connect()).ok();) {
    if (s.code() != absl::StatusCode::kUnavailable) return s;
    BrokerDown(s);
    Pause(retry.Failed());
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
      if (!rebalance_error_.ok()) break;
      Tick();
      continue;
    }
    int n = 0;
    const auto batch_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.batch_ms);
    while (n < options_.batch_max && !stop_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(batch_end -
                                                                              std::chrono::steady_clock::now());
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(std::max<int>(0, static_cast<int>(left.count()))));
      if (m->err() == RdKafka::ERR__TIMED_OUT) break;
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        if (BrokerUnreachable(m->err())) {
          BrokerDown(absl::UnavailableError(m->errstr()));
        } else if (m->err() != RdKafka::ERR__PARTITION_EOF) {
          spdlog::warn("event=consume_error error=\"{}\"", m->errstr());
        }
        continue;
      }
      BrokerUp();
      auto it = pipelines_.find({m->topic_name(), m->partition()});
      if (it == pipelines_.end()) continue;  // revoked meanwhile
      if (m->offset() < it->second->next_offset()) continue;  // fetched before a reassignment: applied already
      const std::string* key = m->key();
      const std::string signature = HeaderValue(*m, kHeaderSignature);
      const RdKafka::MessageTimestamp ts = m->timestamp();
      it->second->Apply({.offset = m->offset(),
                         .key = key ? absl::string_view(*key) : absl::string_view(),
                         .value = absl::string_view(static_cast<const char*>(m->payload()), m->len()),
                         .timestamp_ms = ts.type == RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE
                                             ? -1 : ts.timestamp,
                         .signature = signature});
      ++n;
    }
    events_ += n;
    if (!rebalance_error_.ok()) break;
    if (auto down = broker_events_->Take(); down && n == 0) BrokerDown(absl::UnavailableError(*down));
    absl::Status s = n > 0 ? Flush() : Publish();
    if (!s.ok()) {
      if (s.code() != absl::StatusCode::kUnavailable) return s;
      if (!store_fault_) {
        // The broker is away: the outbox waits in the store; try again after a pause.
        const int64_t pause_ms = retry.Failed();
        spdlog::debug("event=publish_retry in_ms={} status=\"{}\"", pause_ms, s.ToString());
        Pause(pause_ms);
      }
    } else {
      retry.Reset();
    }
    ProbeBroker();
    Tick();
    if (NowMillis() - last_report > 10000) {
      last_report = NowMillis();
      spdlog::info("event=progress records={} published={} partitions={}", events_, published_, pipelines_.size());
    }
  }
  absl::Status final_flush = rebalance_error_.ok() && !store_fault_ ? Flush() : rebalance_error_;
  if (txn_ != Txn::kNone) {
    // Left open, the broker aborts it when the next instance starts; nothing published is marked.
    spdlog::warn("event=stopped_with_open_transaction status=\"{}\"", final_flush.ToString());
  }
  // A store that refuses writes, or a broker that is away, is not a failed stop: what was not committed
  // is consumed again, and what was not published is published, by the next start.
  if (final_flush.code() == absl::StatusCode::kUnavailable && (store_fault_ || txn_ != Txn::kNone)) {
    final_flush = absl::OkStatus();
  }
  consumer_->close();
  ticker_->flush(5000);
  spdlog::info("event=stopped records={} published={}", events_, published_);
  return final_flush;
}

}  // namespace vigil
