#include "services/escalation/vigild/service.h"

#include <chrono>
#include <thread>

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

}  // namespace

// Eager rebalancing: on revocation, commit and publish what was applied, then
// let go; on assignment, load each partition and resume from its stored offset.
class Service::Rebalancer : public RdKafka::RebalanceCb {
 public:
  explicit Rebalancer(Service* service) : service_(*service) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      std::vector<std::pair<std::string, int32_t>> ids;
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
      absl::Status s = service_.Flush();
      if (!s.ok()) spdlog::error("event=flush_on_revoke_failed status=\"{}\"", s.ToString());
      service_.pipelines_.clear();
      consumer->unassign();
      spdlog::info("event=revoked partitions={}", partitions.size());
    }
  }

 private:
  Service& service_;
};

Service::Service(ServiceOptions options, const Engine* engine, Store* store)
    : options_(std::move(options)), engine_(*engine), store_(store) {}

Service::~Service() = default;

absl::Status Service::Assign(const std::vector<std::pair<std::string, int32_t>>& partitions) {
  VIGIL_ASSIGN_OR_RETURN(auto progress, ReadProgress(options_.kafka, options_.topics.progress, 30000));
  for (const auto& [topic, p] : partitions) {
    const PartitionKind kind =
        topic == options_.topics.events ? PartitionKind::kEvents : PartitionKind::kSuspectLinks;
    VIGIL_ASSIGN_OR_RETURN(auto pipeline,
                           PartitionPipeline::Load(store_, &engine_, &options_.topics, p, kind));
    auto it = progress.find(ProgressKey(topic, p));
    if (it != progress.end()) VIGIL_RETURN_IF_ERROR(pipeline->MarkPublished(it->second));
    spdlog::info("event=partition_loaded kind={} partition={} next_offset={} outbox_seq={} published_seq={}",
                 kind == PartitionKind::kEvents ? "events" : "suspect-links", p, pipeline->next_offset(),
                 pipeline->outbox_seq(), pipeline->published_seq());
    pipelines_[{topic, p}] = std::move(pipeline);
  }
  // The first transaction after start finds its coordinator and partitions, which
  // takes a while: do it now, writing the current progress, not when an alert waits.
  announce_progress_ = true;
  return absl::OkStatus();
}

absl::Status Service::Flush() {
  const auto start = std::chrono::steady_clock::now();
  for (auto& [p, pipeline] : pipelines_) VIGIL_RETURN_IF_ERROR(pipeline->Commit());
  spdlog::debug("event=committed store_ms={}", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::steady_clock::now() - start).count());
  return Publish();
}

absl::Status Service::Publish() {
  std::map<std::pair<std::string, int32_t>, std::vector<state::OutboxRecord>> batches;
  for (auto& [p, pipeline] : pipelines_) {
    VIGIL_ASSIGN_OR_RETURN(auto records, pipeline->Unpublished());
    if (!records.empty() || announce_progress_) batches[p] = std::move(records);
  }
  if (batches.empty() && !announce_progress_) return absl::OkStatus();
  announce_progress_ = false;
  auto fail = [&](RdKafka::Error* e, const char* what) {
    std::string message = absl::StrCat(what, ": ", e->str());
    const bool fatal = e->is_fatal();
    const bool abortable = e->txn_requires_abort();
    delete e;
    if (abortable) {
      if (RdKafka::Error* a = producer_->abort_transaction(30000)) delete a;
    }
    return fatal ? absl::InternalError(message) : absl::UnavailableError(message);
  };
  if (RdKafka::Error* e = producer_->begin_transaction()) return fail(e, "begin transaction");
  size_t count = 0;
  for (auto& [p, records] : batches) {
    for (auto& r : records) {
      RdKafka::Headers* headers = RdKafka::Headers::create();
      for (const auto& [k, v] : r.headers()) headers->add(k, v.data(), v.size());
      RdKafka::ErrorCode err;
      while ((err = producer_->produce(r.topic(), RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                                       const_cast<char*>(r.value().data()), r.value().size(), r.key().data(),
                                       r.key().size(), 0, headers, nullptr)) == RdKafka::ERR__QUEUE_FULL) {
        producer_->poll(50);
      }
      if (err != RdKafka::ERR_NO_ERROR) {
        delete headers;
        if (RdKafka::Error* a = producer_->abort_transaction(30000)) delete a;
        return absl::UnavailableError(absl::StrCat("producing to ", r.topic(), ": ", RdKafka::err2str(err)));
      }
      ++count;
    }
    const std::string key = ProgressKey(p.first, p.second);
    const std::string value = absl::StrCat(records.empty() ? pipelines_.at(p)->published_seq() : records.back().seq());
    producer_->produce(options_.topics.progress, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                       const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                       static_cast<RdKafka::Headers*>(nullptr), nullptr);
  }
  const auto commit_start = std::chrono::steady_clock::now();
  if (RdKafka::Error* e = producer_->commit_transaction(60000)) return fail(e, "commit transaction");
  spdlog::debug("event=published records={} commit_ms={}", count,
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - commit_start).count());
  for (auto& [p, records] : batches) {
    if (!records.empty()) VIGIL_RETURN_IF_ERROR(pipelines_.at(p)->MarkPublished(records.back().seq()));
  }
  published_ += count;
  return absl::OkStatus();
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
    ticker_->produce(options_.topics.events, p, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(bytes.data()),
                     bytes.size(), kClockKey, sizeof(kClockKey) - 1, 0,
                     static_cast<RdKafka::Headers*>(nullptr), nullptr);
  }
  ticker_->poll(0);
}

absl::Status Service::Run() {
  const auto& t = options_.topics;
  std::vector<TopicSpec> topics = {{t.events, options_.partitions, {}},
                                   {t.alerts, options_.partitions, {}},
                                   {t.dead_letters, 1, {}},
                                   {t.progress, 1, {{"cleanup.policy", "compact"}}}};
  if (!t.suspect_links.empty()) topics.push_back({t.suspect_links, options_.partitions, {}});
  for (const auto& route : t.routes) {
    if (auto eq = route.find('='); eq != std::string::npos) topics.push_back({route.substr(eq + 1), 1, {}});
  }
  VIGIL_RETURN_IF_ERROR(EnsureTopics(options_.kafka, topics, 30000));

  std::string err;
  KafkaProps producer_props = options_.kafka;
  producer_props.emplace_back("transactional.id", options_.instance);
  producer_props.emplace_back("enable.idempotence", "true");
  producer_props.emplace_back("linger.ms", "1");
  VIGIL_ASSIGN_OR_RETURN(auto pconf, MakeKafkaConf(producer_props));
  producer_.reset(RdKafka::Producer::create(pconf.get(), err));
  if (!producer_) return absl::InvalidArgumentError(absl::StrCat("Kafka producer: ", err));
  if (RdKafka::Error* e = producer_->init_transactions(60000)) {
    std::string message = e->str();
    delete e;
    return absl::UnavailableError(absl::StrCat("initialising Kafka transactions: ", message));
  }
  std::vector<std::string> names;
  for (const TopicSpec& spec : topics) names.push_back(spec.name);
  VIGIL_ASSIGN_OR_RETURN(producer_topics_, WarmTopics(producer_.get(), names, 30000));
  KafkaProps ticker_props = options_.kafka;
  ticker_props.emplace_back("enable.idempotence", "true");
  VIGIL_ASSIGN_OR_RETURN(auto tconf, MakeKafkaConf(ticker_props));
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
  if (cconf->set("rebalance_cb", rebalancer_.get(), err) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(cconf.get(), err));
  if (!consumer_) return absl::InvalidArgumentError(absl::StrCat("Kafka consumer: ", err));
  std::vector<std::string> subscription = {t.events};
  if (!t.suspect_links.empty()) subscription.push_back(t.suspect_links);
  if (consumer_->subscribe(subscription) != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("subscribing to ", t.events));
  }
  spdlog::info("event=started group={} instance={} events_topic={} data_dir={}", options_.group,
               options_.instance, t.events, options_.data_dir);

  int64_t last_report = NowMillis();
  while (!stop_) {
    int n = 0;
    const auto batch_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.batch_ms);
    while (n < options_.batch_max && !stop_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(batch_end -
                                                                              std::chrono::steady_clock::now());
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(std::max<int>(0, static_cast<int>(left.count()))));
      if (m->err() == RdKafka::ERR__TIMED_OUT) break;
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        if (m->err() != RdKafka::ERR__PARTITION_EOF) spdlog::warn("event=consume_error error=\"{}\"", m->errstr());
        continue;
      }
      auto it = pipelines_.find({m->topic_name(), m->partition()});
      if (it == pipelines_.end()) continue;  // revoked meanwhile
      const std::string* key = m->key();
      it->second->Apply(m->offset(), key ? absl::string_view(*key) : absl::string_view(),
                        absl::string_view(static_cast<const char*>(m->payload()), m->len()));
      ++n;
    }
    events_ += n;
    if (!rebalance_error_.ok()) break;
    if (n > 0) {
      const auto flush_start = std::chrono::steady_clock::now();
      absl::Status s = Flush();
      spdlog::debug("event=batch records={} flush_ms={}", n,
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                          flush_start).count());
      if (!s.ok()) {
        if (s.code() != absl::StatusCode::kUnavailable) return s;
        spdlog::warn("event=publish_retry status=\"{}\"", s.ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    } else if (absl::Status s = Publish(); !s.ok()) {
      if (s.code() != absl::StatusCode::kUnavailable) return s;
    }
    Tick();
    if (NowMillis() - last_report > 10000) {
      last_report = NowMillis();
      spdlog::info("event=progress records={} published={} partitions={}", events_, published_, pipelines_.size());
    }
  }
  absl::Status final_flush = rebalance_error_.ok() ? Flush() : rebalance_error_;
  consumer_->close();
  ticker_->flush(5000);
  spdlog::info("event=stopped records={} published={}", events_, published_);
  return final_flush;
}

}  // namespace vigil
