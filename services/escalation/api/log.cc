#include "services/escalation/api/log.h"

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace vigil {
namespace {

// One AppendThen call's records, completed by their delivery reports or by its deadline, whichever is first.
struct Pending {
  std::string topic;
  std::mutex mu;
  size_t remaining = 0;
  std::vector<Landed> landed;
  absl::Status status;
  Log::Done done;  // empty once called
  // Its entry among the log's deadlines, while it has one (guarded by the log's deadline mutex).
  std::optional<std::multimap<absl::Time, std::weak_ptr<Pending>>::iterator> timer;
};

// A record the log refuses for its size is the caller's to mend (RESOURCE_EXHAUSTED); anything else is
// the log's state, worth a retry (UNAVAILABLE).
absl::Status FromKafka(RdKafka::ErrorCode code) {
  const std::string message = absl::StrCat("Kafka: ", RdKafka::err2str(code));
  if (code == RdKafka::ERR_MSG_SIZE_TOO_LARGE || code == RdKafka::ERR_RECORD_LIST_TOO_LARGE ||
      code == RdKafka::ERR_INVALID_MSG_SIZE) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::UnavailableError(message);
}

// Which record of which call a delivery report is for.
struct Ticket {
  std::shared_ptr<Pending> pending;
  size_t index = 0;
};

class KafkaLog : public Log, public RdKafka::DeliveryReportCb {
 public:
  ~KafkaLog() override {
    if (producer_) producer_->flush(5000);
    stop_ = true;
    if (poller_.joinable()) poller_.join();
    topics_.clear();
  }

  absl::Status Start(const KafkaProps& props, const std::vector<std::string>& topics) {
    VIGIL_ASSIGN_OR_RETURN(auto conf, MakeKafkaConf(props));
    std::string err;
    if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err) != RdKafka::Conf::CONF_OK) {
      return absl::InternalError(err);
    }
    producer_.reset(RdKafka::Producer::create(conf.get(), err));
    if (!producer_) return absl::InvalidArgumentError(absl::StrCat("Kafka producer: ", err));
    // Warm handles save the first write a metadata wait; a broker that is away now only costs that.
    auto warm = WarmTopics(producer_.get(), topics, 5000);
    if (warm.ok()) topics_ = *std::move(warm);
    poller_ = std::thread([this] {
      while (!stop_) {
        producer_->poll(kPollMs);
        Expire(absl::Now());
      }
    });
    return absl::OkStatus();
  }

  void AppendThen(const std::string& topic, std::vector<LogRecord> records, absl::Time deadline,
                  Done done) override {
    if (records.empty()) return done(std::vector<Landed>());
    auto pending = std::make_shared<Pending>();
    pending->topic = topic;
    pending->remaining = records.size();
    pending->landed.resize(records.size());
    pending->done = std::move(done);
    {
      std::lock_guard<std::mutex> lock(timers_mu_);
      pending->timer = timers_.emplace(deadline, pending);
    }
    for (size_t i = 0; i < records.size(); ++i) {
      LogRecord& r = records[i];
      auto ticket = std::make_unique<Ticket>(Ticket{pending, i});
      RdKafka::Headers* headers = nullptr;
      if (!r.headers.empty()) {
        headers = RdKafka::Headers::create();
        for (const auto& [k, v] : r.headers) headers->add(k, v.data(), v.size());
      }
      RdKafka::ErrorCode code =
          producer_->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, r.value.data(),
                             r.value.size(), r.key.data(), r.key.size(), 0, headers, ticket.get());
      if (code != RdKafka::ERR_NO_ERROR) {
        delete headers;
        // Records already produced still report; this one and the rest never will.
        {
          std::lock_guard<std::mutex> lock(pending->mu);
          pending->remaining -= records.size() - i;
        }
        return Complete(pending, FromKafka(code));
      }
      ticket.release();  // the delivery report owns it now
    }
  }

  void dr_cb(RdKafka::Message& m) override {
    std::unique_ptr<Ticket> ticket(static_cast<Ticket*>(m.msg_opaque()));
    std::shared_ptr<Pending>& p = ticket->pending;
    std::optional<absl::StatusOr<std::vector<Landed>>> outcome;
    {
      std::lock_guard<std::mutex> lock(p->mu);
      if (m.err() != RdKafka::ERR_NO_ERROR) {
        if (p->status.ok()) p->status = FromKafka(m.err());
      } else {
        p->landed[ticket->index] = Landed{m.topic_name(), m.partition(), m.offset()};
      }
      if (--p->remaining > 0 || !p->done) return;
      if (p->status.ok()) {
        outcome = std::move(p->landed);
      } else {
        outcome = p->status;
      }
    }
    Complete(p, *std::move(outcome));
  }

 private:
  static constexpr int kPollMs = 50;

  // Calls the pending append's `done` with `outcome`, unless it was called already.
  void Complete(const std::shared_ptr<Pending>& p, absl::StatusOr<std::vector<Landed>> outcome) {
    Done done;
    {
      std::lock_guard<std::mutex> lock(p->mu);
      done = std::move(p->done);
      p->done = nullptr;
    }
    if (!done) return;
    {
      std::lock_guard<std::mutex> lock(timers_mu_);
      if (p->timer) timers_.erase(*p->timer);
      p->timer.reset();
    }
    done(std::move(outcome));
  }

  // Fails the appends whose deadline has passed.
  void Expire(absl::Time now) {
    std::vector<std::shared_ptr<Pending>> overdue;
    {
      std::lock_guard<std::mutex> lock(timers_mu_);
      while (!timers_.empty() && timers_.begin()->first <= now) {
        if (auto p = timers_.begin()->second.lock()) {
          p->timer.reset();
          overdue.push_back(std::move(p));
        }
        timers_.erase(timers_.begin());
      }
    }
    for (auto& p : overdue) {
      Complete(p, absl::UnavailableError(absl::StrCat("Kafka did not acknowledge the write to ", p->topic, " in time")));
    }
  }

  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<std::unique_ptr<RdKafka::Topic>> topics_;
  std::mutex timers_mu_;
  std::multimap<absl::Time, std::weak_ptr<Pending>> timers_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace

absl::StatusOr<std::vector<Landed>> Log::Append(const std::string& topic, std::vector<LogRecord> records,
                                                absl::Time deadline) {
  std::promise<absl::StatusOr<std::vector<Landed>>> outcome;  // `done` is called once, before this returns
  AppendThen(topic, std::move(records), deadline,
             [&outcome](absl::StatusOr<std::vector<Landed>> value) { outcome.set_value(std::move(value)); });
  return outcome.get_future().get();
}

absl::StatusOr<std::unique_ptr<Log>> NewKafkaLog(const KafkaProps& props, const std::vector<std::string>& topics) {
  // A record not delivered in 30 s fails rather than landing long after its caller gave up (--kafka overrides).
  KafkaProps p = {{"message.timeout.ms", "30000"}};
  p.insert(p.end(), props.begin(), props.end());
  p.emplace_back("enable.idempotence", "true");
  p.emplace_back("linger.ms", "1");
  auto log = std::make_unique<KafkaLog>();
  VIGIL_RETURN_IF_ERROR(log->Start(p, topics));
  return std::unique_ptr<Log>(std::move(log));
}

}  // namespace vigil
