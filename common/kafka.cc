#include "common/kafka.h"

#include <algorithm>

#include <chrono>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "librdkafka/rdkafka.h"
#include "spdlog/spdlog.h"

namespace vigil {
namespace {

// syslog(3) levels, as librdkafka gives them.
spdlog::level::level_enum KafkaLevel(int severity) {
  return severity <= 2 ? spdlog::level::critical
         : severity == 3 ? spdlog::level::err
         : severity == 4 ? spdlog::level::warn
         : severity <= 6 ? spdlog::level::info
                         : spdlog::level::debug;
}

void LogKafka(int severity, const std::string& facility, const std::string& message) {
  if (std::shared_ptr<spdlog::logger> logger = spdlog::get("librdkafka")) {
    logger->log(KafkaLevel(severity), "{}: {}", facility, message);
  } else {
    std::fprintf(stderr, "%%%d|%s|%s\n", severity, facility.c_str(), message.c_str());
  }
}

void LogKafkaC(const rd_kafka_t*, int level, const char* facility, const char* message) {
  LogKafka(level, facility ? facility : "", message ? message : "");
}

class LogEvents final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override { LogKafkaEvent(event); }
};

}  // namespace

void LogKafkaEvent(const RdKafka::Event& event) {
  if (event.type() == RdKafka::Event::EVENT_LOG) {
    LogKafka(static_cast<int>(event.severity()), event.fac(), event.str());
  } else if (event.type() == RdKafka::Event::EVENT_ERROR) {
    LogKafka(event.fatal() ? 2 : 4, "ERROR", absl::StrCat(RdKafka::err2str(event.err()), ": ", event.str()));
  }
}

int32_t KeyPartition(absl::string_view key, int32_t partitions) {
  return rd_kafka_msg_partitioner_consistent(nullptr, key.data(), key.size(), partitions, nullptr, nullptr);
}

absl::StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(const KafkaProps& props) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  static LogEvents log_events;  // stateless; lives as long as any client
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(&log_events), err);
  for (const auto& [k, v] : props) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("Kafka property '", k, "': ", err));
    }
  }
  return conf;
}

namespace {

// A bare C handle for admin calls.
struct AdminHandle {
  rd_kafka_t* rk = nullptr;
  ~AdminHandle() {
    if (rk) rd_kafka_destroy(rk);
  }
};

absl::StatusOr<rd_kafka_t*> NewAdmin(const KafkaProps& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, LogKafkaC);
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("Kafka property '", k, "': ", err));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) return absl::InvalidArgumentError(absl::StrCat("Kafka client: ", err));
  return rk;
}

}  // namespace

RdKafka::ErrorCode ProduceWaiting(RdKafka::Producer* producer, const std::string& topic, int32_t partition,
                                  const std::string& key, const std::string& value, RdKafka::Headers* headers,
                                  void* opaque) {
  RdKafka::ErrorCode err;
  while ((err = producer->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
                                  value.size(), key.data(), key.size(), 0, headers, opaque)) ==
         RdKafka::ERR__QUEUE_FULL) {
    producer->poll(50);
  }
  return err;
}

absl::Status EnsureTopics(const KafkaProps& props, const std::vector<TopicSpec>& topics, int timeout_ms) {
  auto rk = NewAdmin(props);
  if (!rk.ok()) return rk.status();
  AdminHandle admin{*rk};
  // Only what is missing is created: with the topics made beforehand (by an operator, or a principal without
  // the right to create topics), no CreateTopics request is made at all.
  std::vector<TopicSpec> missing = topics;
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(admin.rk, 1, nullptr, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (md->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      const std::string name = md->topics[i].topic;
      missing.erase(std::remove_if(missing.begin(), missing.end(), [&](const TopicSpec& t) { return t.name == name; }),
                    missing.end());
    }
    rd_kafka_metadata_destroy(md);
    if (missing.empty()) return absl::OkStatus();
  }
  std::vector<rd_kafka_NewTopic_t*> news;
  char err[512];
  for (const auto& t : missing) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, -1, err, sizeof(err));
    if (nt == nullptr) return absl::InvalidArgumentError(absl::StrCat("topic ", t.name, ": ", err));
    for (const auto& [k, v] : t.config) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    news.push_back(nt);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin.rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(admin.rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms, err, sizeof(err));
  rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, err, sizeof(err));
  rd_kafka_CreateTopics(admin.rk, news.data(), news.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 2000);
  absl::Status status = absl::OkStatus();
  if (event == nullptr) {
    status = absl::UnavailableError("Kafka did not answer the request to create topics");
  } else if (rd_kafka_event_error(event)) {
    status = absl::UnavailableError(absl::StrCat("creating topics: ", rd_kafka_event_error_string(event)));
  } else {
    const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event);
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = absl::UnavailableError(absl::StrCat("creating topic ", rd_kafka_topic_result_name(results[i]), ": ",
                                                     rd_kafka_err2str(e)));
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (auto* nt : news) rd_kafka_NewTopic_destroy(nt);
  return status;
}

absl::StatusOr<int> PartitionCount(const KafkaProps& props, const std::string& topic, int timeout_ms) {
  auto rk = NewAdmin(props);
  if (!rk.ok()) return rk.status();
  AdminHandle admin{*rk};
  rd_kafka_topic_t* t = rd_kafka_topic_new(admin.rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(admin.rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("Kafka metadata for ", topic, ": ", rd_kafka_err2str(e)));
  }
  int count = -1;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) count = md->topics[i].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  if (count <= 0) return absl::NotFoundError(absl::StrCat("topic ", topic, " does not exist"));
  return count;
}

absl::StatusOr<std::vector<std::unique_ptr<RdKafka::Topic>>> WarmTopics(RdKafka::Producer* producer,
                                                                       const std::vector<std::string>& topics,
                                                                       int timeout_ms) {
  std::vector<std::unique_ptr<RdKafka::Topic>> handles;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const std::string& name : topics) {
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(RdKafka::Topic::create(producer, name, nullptr, err));
    if (!topic) return absl::InvalidArgumentError(absl::StrCat("Kafka topic ", name, ": ", err));
    for (;;) {
      RdKafka::Metadata* md = nullptr;
      RdKafka::ErrorCode code = producer->metadata(false, topic.get(), &md, 5000);
      bool ready = false;
      if (code == RdKafka::ERR_NO_ERROR) {
        for (const RdKafka::TopicMetadata* t : *md->topics()) {
          if (t->err() != RdKafka::ERR_NO_ERROR || t->partitions()->empty()) continue;
          ready = true;
          for (const RdKafka::PartitionMetadata* p : *t->partitions()) ready = ready && p->leader() >= 0;
        }
      }
      delete md;
      if (ready) break;
      if (std::chrono::steady_clock::now() > give_up) {
        return absl::UnavailableError(absl::StrCat("Kafka metadata for ", name, ": ",
                                                   code == RdKafka::ERR_NO_ERROR ? "no leader yet"
                                                                                 : RdKafka::err2str(code)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    handles.push_back(std::move(topic));
  }
  return handles;
}

namespace {

// A consumer that commits nothing and joins no group (`reader`, its group.id, is one librdkafka requires).
absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> ReaderConsumer(KafkaProps props, const std::string& reader) {
  props.emplace_back("group.id", reader);
  props.emplace_back("enable.auto.commit", "false");
  auto conf = MakeKafkaConf(props);
  if (!conf.ok()) return conf.status();
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!consumer) return absl::InvalidArgumentError(absl::StrCat("Kafka consumer: ", err));
  return consumer;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RdKafka::KafkaConsumer>> AssignedConsumer(KafkaProps props, const std::string& reader,
                                                                         const std::string& topic,
                                                                         const std::map<int32_t, int64_t>& offsets) {
  props.emplace_back("enable.auto.offset.store", "false");
  auto consumer = ReaderConsumer(std::move(props), reader);
  if (!consumer.ok()) return consumer.status();
  std::vector<RdKafka::TopicPartition*> tps;
  for (const auto& [partition, offset] : offsets) tps.push_back(RdKafka::TopicPartition::create(topic, partition, offset));
  const RdKafka::ErrorCode code = (*consumer)->assign(tps);
  RdKafka::TopicPartition::destroy(tps);
  if (code != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("reading ", topic, ": ", RdKafka::err2str(code)));
  }
  return consumer;
}

absl::StatusOr<std::map<std::string, uint64_t>> ReadProgress(const KafkaProps& props, const std::string& topic,
                                                             int timeout_ms) {
  auto partitions = PartitionCount(props, topic, timeout_ms);
  if (!partitions.ok()) return partitions.status();
  KafkaProps p = props;
  p.emplace_back("isolation.level", "read_committed");
  p.emplace_back("enable.partition.eof", "true");
  auto made = ReaderConsumer(std::move(p), "vigil-progress-reader");
  if (!made.ok()) return made.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = *std::move(made);
  std::vector<RdKafka::TopicPartition*> tps;
  int open = 0;
  for (int i = 0; i < *partitions; ++i) {
    int64_t low = 0, high = 0;
    // A topic created a moment ago may not have its leader yet: retry until the timeout.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    RdKafka::ErrorCode code;
    while ((code = consumer->query_watermark_offsets(topic, i, &low, &high, 5000)) != RdKafka::ERR_NO_ERROR) {
      if (std::chrono::steady_clock::now() > give_up) {
        for (auto* tp : tps) delete tp;
        return absl::UnavailableError(
            absl::StrCat("reading ", topic, ": watermarks unavailable: ", RdKafka::err2str(code)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (high > low) {
      tps.push_back(RdKafka::TopicPartition::create(topic, i, RdKafka::Topic::OFFSET_BEGINNING));
      ++open;
    }
  }
  std::map<std::string, uint64_t> progress;
  if (open > 0) consumer->assign(tps);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (open > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      for (auto* tp : tps) delete tp;
      consumer->close();
      return absl::UnavailableError(absl::StrCat("reading ", topic, ": timed out"));
    }
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      --open;
    } else if (m->err() == RdKafka::ERR_NO_ERROR && m->key() != nullptr) {
      uint64_t v = 0;
      if (absl::SimpleAtoi(absl::string_view(static_cast<const char*>(m->payload()), m->len()), &v)) {
        progress[*m->key()] = v;
      }
    }
  }
  for (auto* tp : tps) delete tp;
  consumer->close();
  return progress;
}

}  // namespace vigil
