#include "services/escalation/api/log.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace vigil {
namespace {

// One Append call's records, completed by the delivery reports.
struct Pending {
  std::mutex mu;
  std::condition_variable done;
  size_t remaining = 0;
  std::vector<Landed> landed;
  absl::Status status;
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

class Reports : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    std::unique_ptr<Ticket> ticket(static_cast<Ticket*>(m.msg_opaque()));
    Pending& p = *ticket->pending;
    std::lock_guard<std::mutex> lock(p.mu);
    if (m.err() != RdKafka::ERR_NO_ERROR) {
      if (p.status.ok()) p.status = FromKafka(m.err());
    } else {
      p.landed[ticket->index] = Landed{m.topic_name(), m.partition(), m.offset()};
    }
    if (--p.remaining == 0) p.done.notify_all();
  }
};

class KafkaLog : public Log {
 public:
  KafkaLog(std::unique_ptr<RdKafka::Producer> producer, std::vector<std::unique_ptr<RdKafka::Topic>> topics,
           std::unique_ptr<Reports> reports)
      : reports_(std::move(reports)), producer_(std::move(producer)), topics_(std::move(topics)),
        poller_([this] {
          while (!stop_) producer_->poll(50);
        }) {}

  ~KafkaLog() override {
    producer_->flush(5000);
    stop_ = true;
    poller_.join();
    topics_.clear();
  }

  absl::StatusOr<std::vector<Landed>> Append(const std::string& topic, const std::vector<LogRecord>& records,
                                             absl::Time deadline) override {
    auto pending = std::make_shared<Pending>();
    pending->remaining = records.size();
    pending->landed.resize(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      const LogRecord& r = records[i];
      auto ticket = std::make_unique<Ticket>(Ticket{pending, i});
      RdKafka::Headers* headers = nullptr;
      if (!r.headers.empty()) {
        headers = RdKafka::Headers::create();
        for (const auto& [k, v] : r.headers) headers->add(k, v.data(), v.size());
      }
      RdKafka::ErrorCode code =
          producer_->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                             const_cast<char*>(r.value.data()), r.value.size(), r.key.data(), r.key.size(), 0,
                             headers, ticket.get());
      if (code != RdKafka::ERR_NO_ERROR) {
        delete headers;
        // Records already produced still report; this one and the rest never will.
        std::lock_guard<std::mutex> lock(pending->mu);
        pending->remaining -= records.size() - i;
        return FromKafka(code);
      }
      ticket.release();  // the delivery report owns it now
    }
    std::unique_lock<std::mutex> lock(pending->mu);
    if (!pending->done.wait_until(lock, absl::ToChronoTime(deadline), [&] { return pending->remaining == 0; })) {
      return absl::UnavailableError(absl::StrCat("Kafka did not acknowledge the write to ", topic, " in time"));
    }
    VIGIL_RETURN_IF_ERROR(pending->status);
    return pending->landed;
  }

 private:
  std::unique_ptr<Reports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<std::unique_ptr<RdKafka::Topic>> topics_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Log>> NewKafkaLog(const KafkaProps& props, const std::vector<std::string>& topics) {
  // A record not delivered in 30 s fails rather than landing long after its caller gave up (--kafka overrides).
  KafkaProps p = {{"message.timeout.ms", "30000"}};
  p.insert(p.end(), props.begin(), props.end());
  p.emplace_back("enable.idempotence", "true");
  p.emplace_back("linger.ms", "1");
  VIGIL_ASSIGN_OR_RETURN(auto conf, MakeKafkaConf(p));
  auto reports = std::make_unique<Reports>();
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(reports.get()), err) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(err);
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) return absl::InvalidArgumentError(absl::StrCat("Kafka producer: ", err));
  // Warm handles save the first write a metadata wait; a broker that is away now only costs that.
  auto warm = WarmTopics(producer.get(), topics, 5000);
  if (!warm.ok()) warm = std::vector<std::unique_ptr<RdKafka::Topic>>();
  return std::unique_ptr<Log>(new KafkaLog(std::move(producer), *std::move(warm), std::move(reports)));
}

}  // namespace vigil
