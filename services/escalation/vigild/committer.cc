#include "services/escalation/vigild/committer.h"

#include <algorithm>
#include <chrono>

#include "common/jsonl.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "common/status_macros.h"
#include "services/escalation/pipeline/partition.h"
#include "vigil/v1/alert.pb.h"
#include "spdlog/spdlog.h"

namespace vigil {
namespace {

constexpr int kTxnTimeoutMs = 10000;        // one try at committing or aborting a transaction
constexpr int kMaxFatalProducerErrors = 3;  // in a row: another instance has our transactional.id
// How long after a commit the next transaction begins (Committer::committed_at_).
constexpr std::chrono::milliseconds kMarkerGrace{5};

// What the published-transitions counter is labelled with.
struct AlertLabels {
  std::string rule;
  v1::Level level = v1::LEVEL_UNSPECIFIED;
  v1::AlertState state = v1::ALERT_STATE_UNSPECIFIED;
};

// An alert's labels from its bytes: from protobuf, those three fields read and the rest skipped (every
// transition is counted, and parsing each whole cost a twentieth of vigild's CPU in an alert storm); from a
// JSON line, parsed. nullopt when the bytes are not an alert.
std::optional<AlertLabels> ReadAlertLabels(absl::string_view bytes) {
  AlertLabels l;
  if (!bytes.empty() && bytes.front() == '{') {
    v1::Alert alert;
    if (!ParseProtobufOrJson(bytes, &alert).ok()) return std::nullopt;
    return AlertLabels{alert.rule(), alert.level(), alert.state()};
  }
  using Wire = google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (const uint32_t tag = in.ReadTag()) {
    uint32_t value = 0;
    if (tag == Wire::MakeTag(v1::Alert::kRuleFieldNumber, Wire::WIRETYPE_LENGTH_DELIMITED)) {
      if (!Wire::ReadString(&in, &l.rule)) return std::nullopt;
    } else if (tag == Wire::MakeTag(v1::Alert::kLevelFieldNumber, Wire::WIRETYPE_VARINT)) {
      if (!in.ReadVarint32(&value)) return std::nullopt;
      l.level = static_cast<v1::Level>(value);
    } else if (tag == Wire::MakeTag(v1::Alert::kStateFieldNumber, Wire::WIRETYPE_VARINT)) {
      if (!in.ReadVarint32(&value)) return std::nullopt;
      l.state = static_cast<v1::AlertState>(value);
    } else if (!Wire::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
  if (!in.ConsumedEntireMessage()) return std::nullopt;
  return l;
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

// The status a fatal producer error ends a try with.
constexpr absl::StatusCode kFatalCode = absl::StatusCode::kAborted;

}  // namespace

std::string ProgressKey(const std::string& topic, int32_t partition) { return absl::StrCat(topic, "/", partition); }

// The producer's delivery reports (on the committer's thread, inside its calls): a record the broker refused
// for what it is (too large for the topic, say) is remembered, so that the retry replaces it (ProduceOutbox).
class Committer::DeliveryReports : public RdKafka::DeliveryReportCb {
 public:
  explicit DeliveryReports(Committer* committer) : committer_(*committer) {}
  void dr_cb(RdKafka::Message& m) override {
    const auto index = reinterpret_cast<uintptr_t>(m.msg_opaque());
    if (m.err() == RdKafka::ERR_NO_ERROR || index == 0 || index > committer_.produced_.size()) return;
    const auto& [p, seq] = committer_.produced_[index - 1];
    spdlog::warn("event=record_not_published partition={} seq={} topic={} error=\"{}\"", p.second, seq,
                 m.topic_name(), m.errstr());
    if (RecordRefused(m.err()) || (RecordStrike(m.err()) && committer_.Strike(p, seq, m.topic_name(), m.errstr()))) {
      committer_.refused_[{p, seq}] = m.errstr();
    }
  }

 private:
  Committer& committer_;
};

Committer::Committer(CommitterOptions options, Health* health, std::function<void(bool, const absl::Status&)> broker)
    : options_(std::move(options)), health_(health ? *health : own_health_), broker_(std::move(broker)) {}

Committer::~Committer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status Committer::Start() {
  VIGIL_RETURN_IF_ERROR(CreateProducer());
  last_commit_ = std::chrono::steady_clock::now();
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

absl::Status Committer::CreateProducer() {
  producer_topics_.clear();
  producer_.reset();
  txn_ = Txn::kNone;
  ending_ = false;
  in_flight_.clear();
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
  VIGIL_ASSIGN_OR_RETURN(producer_topics_, WarmTopics(producer_.get(), options_.topics, 30000));
  return absl::OkStatus();
}

void Committer::Publish(const PartitionId& p, std::vector<state::OutboxRecord> records,
                        const std::atomic<bool>& stop) {
  if (records.empty()) return;
  std::unique_lock<std::mutex> lock(mu_);
  settled_.wait(lock, [&] {
    return (pending_ < options_.max_pending && pending_bytes_ < options_.max_pending_bytes) || stop || stop_ ||
           fatal_;
  });
  Partition& part = partitions_[p];
  // Handed over at most once: a record already held (or published) is not taken again.
  uint64_t last = part.records.empty() ? part.published_seq : part.records.back().seq();
  for (auto& r : records) {
    if (r.seq() <= last) continue;
    last = r.seq();
    pending_bytes_ += r.value().size();
    part.records.push_back(std::move(r));
    ++pending_;
  }
  lock.unlock();
  wake_.notify_one();
}

void Committer::Announce(const PartitionId& p, uint64_t published_seq) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Partition& part = partitions_[p];
    part.announce = true;
    part.published_seq = std::max(part.published_seq, published_seq);
  }
  wake_.notify_one();
}

std::map<PartitionId, uint64_t> Committer::TakePublished() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(published_, {});
}

size_t Committer::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_;
}

bool Committer::Announcing() const {
  return std::any_of(partitions_.begin(), partitions_.end(), [](const auto& kv) { return kv.second.announce; });
}

absl::Status Committer::Drain(const std::atomic<bool>& stop, std::chrono::milliseconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  ++drains_;
  struct Done {
    std::atomic<int>& drains;
    ~Done() { --drains; }
  } done{drains_};
  std::unique_lock<std::mutex> lock(mu_);
  wake_.notify_one();
  for (;;) {
    if (pending_ == 0 && !Announcing() && !busy_ && txn_ == Txn::kNone) return absl::OkStatus();
    if (stop || stop_) return absl::UnavailableError("stopped before everything was published");
    if (fatal_) return absl::UnavailableError("the producer failed; reloading");
    if (std::chrono::steady_clock::now() > give_up) {
      return absl::UnavailableError("not everything could be published in time");
    }
    settled_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

void Committer::Reset() {
  std::unique_lock<std::mutex> lock(mu_);
  paused_ = true;
  settled_.wait(lock, [&] { return !busy_; });
  // An open transaction is left as it is: the next try commits or aborts it. What it holds is kept apart
  // (in_flight_), so the records handed over again after the reload are not produced twice, and those it
  // published are dropped when it commits (EndTransaction).
  partitions_.clear();
  pending_ = 0;
  pending_bytes_ = 0;
  paused_ = false;
  lock.unlock();
  settled_.notify_all();
  wake_.notify_one();
}

absl::Status Committer::Recreate() {
  std::unique_lock<std::mutex> lock(mu_);
  paused_ = true;
  settled_.wait(lock, [&] { return !busy_; });
  absl::Status s;
  if (fatal_errors_ > kMaxFatalProducerErrors) {
    s = absl::InternalError("the transactional producer failed fatally again and again: another instance has this "
                            "--instance (transactional.id)");
  } else {
    s = CreateProducer();  // fences whatever the old one left open
  }
  if (s.ok()) fatal_ = false;
  paused_ = false;
  lock.unlock();
  wake_.notify_one();
  return s;
}

void Committer::Run() {
  const auto interval = std::chrono::milliseconds(options_.interval_ms);
  // Measured on a single broker (docs/performance.md): a transaction begun within 2 ms of the last commit's
  // answer was refused in 14-24% of cases, at 5 ms in under 1%. Never longer than the interval, which a commit
  // waits for anyway.
  const auto grace = std::min<std::chrono::steady_clock::duration>(kMarkerGrace, interval);
  while (!stop_) {
    bool due = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Something to produce (a record not yet in the open transaction, an announcement), a transaction to
      // settle or due to commit.
      auto work = [&] {
        if (paused_ || fatal_) return false;
        const Txn txn = txn_;
        if (txn == Txn::kAborting) return true;
        if (txn == Txn::kCommitting &&
            (drains_ > 0 || std::chrono::steady_clock::now() >= last_commit_ + interval)) {
          return true;
        }
        if (txn == Txn::kNone && drains_ == 0 && std::chrono::steady_clock::now() < committed_at_ + grace) {
          return false;  // the last transaction's markers are still being written
        }
        for (const auto& [p, part] : partitions_) {
          if (part.announce) return true;
          auto it = in_flight_.find(p);
          if (!part.records.empty() && (it == in_flight_.end() || part.records.back().seq() > it->second)) {
            return true;
          }
        }
        return false;
      };
      // Until the commit is due, or the grace after the last one ends; at most 0.1 s.
      const auto now = std::chrono::steady_clock::now();
      auto wait_until = now + std::chrono::milliseconds(100);
      if (txn_ == Txn::kCommitting) {
        wait_until = std::min(wait_until, last_commit_ + interval);
      } else if (now < committed_at_ + grace) {
        wait_until = committed_at_ + grace;
      }
      wake_.wait_until(lock, wait_until, [&] { return stop_ || work(); });
      if (stop_ || !work()) continue;
      busy_ = true;
      due = txn_ == Txn::kCommitting &&
            (drains_ > 0 || std::chrono::steady_clock::now() >= last_commit_ + interval);
    }
    const absl::Status s = Step(due);
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
      if (s.code() == kFatalCode) fatal_ = true;
    }
    settled_.notify_all();
    if (s.ok() || s.code() == kFatalCode) {
      retry_.Reset();
      continue;
    }
    // The broker is away, or a record is being replaced: the records wait here; try again after a pause.
    const int64_t pause_ms = retry_.Failed();
    spdlog::debug("event=publish_retry in_ms={} status=\"{}\"", pause_ms, s.ToString());
    SleepUnless(pause_ms, stop_);
  }
}

absl::Status Committer::Step(bool due) {
  // A transaction that failed goes first: aborted, its records produced again in the next. One whose commit
  // the broker has not answered is asked again (nothing more may go into it).
  if (txn_ == Txn::kAborting || ending_) return EndTransaction();
  // What to produce: every record handed over beyond what the open transaction holds (references stay
  // valid: the loop only appends meanwhile, and only this thread removes), and the partitions to announce.
  struct Batch {
    PartitionId p;
    std::vector<const state::OutboxRecord*> records;
    uint64_t published_seq;
    bool announce;
  };
  std::vector<Batch> batches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [p, part] : partitions_) {
      auto held = in_flight_.find(p);
      const uint64_t after = held == in_flight_.end() ? 0 : held->second;
      Batch b{p, {}, part.published_seq, part.announce};
      auto first = std::upper_bound(part.records.begin(), part.records.end(), after,
                                    [](uint64_t seq, const state::OutboxRecord& r) { return seq < r.seq(); });
      for (auto it = first; it != part.records.end(); ++it) b.records.push_back(&*it);
      if (!b.records.empty() || b.announce) batches.push_back(std::move(b));
    }
  }
  if (!batches.empty() && txn_ == Txn::kNone) {
    if (RdKafka::Error* e = producer_->begin_transaction()) {
      std::string message = e->str();
      const bool fatal = e->is_fatal();
      delete e;
      if (fatal) return absl::Status(kFatalCode, absl::StrCat("begin transaction: ", message));
      return absl::InternalError(absl::StrCat("begin transaction: ", message));
    }
    txn_ = Txn::kCommitting;
    in_flight_.clear();
    in_flight_count_ = 0;
    produced_.clear();
  }
  // A record the producer did not take: the transaction is aborted, and what it held goes again in the next.
  auto failed = [&](const PartitionId& p, uint64_t seq, const std::string& topic, RdKafka::ErrorCode err) {
    txn_ = Txn::kAborting;
    spdlog::warn("event=produce_failed partition={} seq={} topic={} error=\"{}\"", p.second, seq, topic,
                 RdKafka::err2str(err));
    return EndTransaction();
  };
  for (const Batch& b : batches) {
    uint64_t& last = in_flight_[b.p];
    if (last == 0) last = b.published_seq;  // an announcement writes the progress it already has
    for (const state::OutboxRecord* r : b.records) {
      if (RdKafka::ErrorCode err = ProduceOutbox(b.p, *r); err != RdKafka::ERR_NO_ERROR) {
        return failed(b.p, r->seq(), r->topic(), err);
      }
      last = r->seq();
      ++in_flight_count_;
    }
  }
  producer_->poll(0);  // delivery reports of what went out so far
  if (!due && drains_ == 0) return absl::OkStatus();
  // Commit: each partition's progress, then the transaction. A transaction whose progress the producer did not
  // take is not committed: its records would be published with nothing to say so.
  for (const auto& [p, seq] : in_flight_) {
    if (RdKafka::ErrorCode err = ProduceProgress(p, seq); err != RdKafka::ERR_NO_ERROR) {
      return failed(p, seq, options_.progress, err);
    }
  }
  ending_ = true;
  return EndTransaction();
}

RdKafka::ErrorCode Committer::ProduceProgress(const PartitionId& p, uint64_t seq) {
  return ProduceWaiting(producer_.get(), options_.progress, RdKafka::Topic::PARTITION_UA,
                        ProgressKey(p.first, p.second), absl::StrCat(seq), nullptr, nullptr);
}

RdKafka::ErrorCode Committer::ProduceOutbox(const PartitionId& p, const state::OutboxRecord& outbox) {
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
      replacement = BoundedDeadLetter(options_.dead_letters, outbox.key(), outbox.value(),
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
    const RdKafka::ErrorCode err = ProduceWaiting(producer_.get(), r->topic(), RdKafka::Topic::PARTITION_UA, r->key(),
                                                  r->value(), headers, opaque);
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

bool Committer::Strike(const PartitionId& p, uint64_t seq, const std::string& topic, const std::string& error) {
  TopicStrikes& t = topic_strikes_[topic];
  t.count = std::min(t.count + 1, kMaxTopicStrikes);
  t.last_ms = NowMillis();
  t.error = error;
  stuck_ = absl::StrCat("partition ", p.second, " cannot publish outbox record ", seq, " to ", topic, ": ", error,
                        " (try ", t.count, " of ", kMaxTopicStrikes, ", then to the dead-letter topic)");
  spdlog::error("event=publish_stuck status=\"{}\"", stuck_);
  return t.count >= kMaxTopicStrikes;
}

void Committer::CountPublished(const state::OutboxRecord& r) const {
  if (r.topic() == options_.dead_letters) {
    // The reason starts with the status code's name ("INVALID_ARGUMENT: ..."): a bounded label.
    auto it = r.headers().find(kHeaderReason);
    const std::string reason = it == r.headers().end() ? "UNKNOWN" : it->second.substr(0, it->second.find(':'));
    options_.metrics->dead_letters.With({reason}).Inc();
  } else if (r.topic() == options_.alerts) {
    const std::optional<AlertLabels> alert = ReadAlertLabels(r.value());
    if (!alert) return;
    options_.metrics->alert_transitions
        .With({alert->rule, v1::Level_Name(alert->level), v1::AlertState_Name(alert->state)})
        .Inc();
  }
}

absl::Status Committer::EndTransaction() {
  const auto start = std::chrono::steady_clock::now();
  const bool commit = txn_ == Txn::kCommitting;
  RdKafka::Error* e = commit ? producer_->commit_transaction(kTxnTimeoutMs)
                             : producer_->abort_transaction(kTxnTimeoutMs);
  if (e == nullptr) {
    txn_ = Txn::kNone;
    ending_ = false;
    if (commit) {
      last_commit_ = start;
      committed_at_ = std::chrono::steady_clock::now();
      options_.metrics->commit_seconds.Get().Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    fatal_errors_ = 0;
    broker_(true, absl::OkStatus());
    if (!commit) {
      in_flight_.clear();  // nothing of it was published: produced again in the next
      return absl::UnavailableError("the transaction was aborted; its records go again");
    }
    spdlog::debug("event=published records={} commit_ms={}", in_flight_count_,
                  std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
    published_total_ += in_flight_count_;
    refused_.clear();  // each went as a dead letter in this transaction
    stuck_.clear();
    health_.Set(kHealthPublish, absl::OkStatus());
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [p, seq] : in_flight_) {
        // A partition forgotten (Reset) since this transaction began keeps what it published, so that its
        // records, handed over again, are not taken a second time (Publish skips seqs up to published_seq).
        Partition& part = partitions_[p];
        while (!part.records.empty() && part.records.front().seq() <= seq) {
          CountPublished(part.records.front());
          pending_bytes_ -= part.records.front().value().size();
          part.records.pop_front();
          --pending_;
        }
        part.announce = false;
        part.published_seq = std::max(part.published_seq, seq);
        uint64_t& published = published_[p];
        published = std::max(published, seq);
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
    // what was published, so the loop loads the partitions again from it.
    ++fatal_errors_;
    spdlog::error("event=producer_fatal status=\"{}\" action=rebuild_producer", message);
    txn_ = Txn::kNone;
    ending_ = false;
    in_flight_.clear();
    return absl::Status(kFatalCode, message);
  }
  if (abortable) {
    txn_ = Txn::kAborting;
    ending_ = false;
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
  broker_(false, absl::UnavailableError(message));
  return absl::UnavailableError(message);
}

}  // namespace vigil
