// vigilctl's Kafka subcommands: publish events, tail alerts, dump a topic.
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/jsonl.h"
#include "common/yaml_file.h"
#include "services/escalation/engine/rules_config.h"
#include "common/kafka.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "services/escalation/pipeline/admission.h"
#include "services/escalation/pipeline/partition.h"
#include "vigil/v1/state.pb.h"
#include "google/protobuf/struct.pb.h"
#include "services/synthetic/synthetic_stream.h"
#include "services/escalation/engine/validate.h"
#include "services/vigilctl/commands.h"
#include "vigil/v1/risk_service.pb.h"

namespace vigil::ctl {
namespace {

KafkaProps Props(const KafkaOptions& o) {
  KafkaProps props = {{"bootstrap.servers", o.brokers}};
  for (const auto& kv : o.properties) {
    const auto eq = kv.find('=');
    if (eq != std::string::npos) props.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return props;
}

// Counts what the broker acknowledged and what it refused.
class Deliveries : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() == RdKafka::ERR_NO_ERROR) {
      ++delivered;
    } else if (failed++ == 0) {
      first_error = m.errstr();
    }
  }
  size_t delivered = 0, failed = 0;
  std::string first_error;
};

// A producer whose delivery reports `deliveries` counts (it must outlive the producer). INVALID_ARGUMENT for a
// bad property (exit 2), another error when the client cannot be made (exit 1).
absl::StatusOr<std::unique_ptr<RdKafka::Producer>> NewProducer(const KafkaProps& props, Deliveries* deliveries) {
  VIGIL_ASSIGN_OR_RETURN(auto conf, MakeKafkaConf(props));
  std::string error;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(deliveries), error) != RdKafka::Conf::CONF_OK) {
    return absl::InternalError(error);
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  if (!producer) return absl::UnavailableError(error);
  return producer;
}

// The exit status for a producer that could not be made, having said why.
int ProducerFailed(const absl::Status& s, const char* command, std::ostream& err) {
  err << "vigilctl " << command << ": " << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? kExitBadInput : kExitFailure;
}

// Produces `value` with the signature header when a signer is given and the event is one only vigild writes.
RdKafka::ErrorCode ProduceEvent(RdKafka::Producer* producer, const std::string& topic, int32_t partition,
                                const std::string& key, const std::string& value, const Signer* signer) {
  RdKafka::Headers* headers = nullptr;
  if (signer != nullptr) {
    headers = RdKafka::Headers::create();
    headers->add(kHeaderSignature, signer->Sign(value));
  }
  const RdKafka::ErrorCode code = ProduceWaiting(producer, topic, partition, key, value, headers, nullptr);
  if (code != RdKafka::ERR_NO_ERROR) delete headers;
  producer->poll(0);
  return code;
}

}  // namespace

SignerOrNone LoadSigner(const std::string& path, const char* command, std::ostream& err) {
  if (path.empty()) return {};
  absl::StatusOr<Signer> signer = Signer::FromFile(path);
  if (!signer.ok()) {
    err << "vigilctl " << command << ": --signing-key-file: " << signer.status().message() << "\n";
    return {.ok = false};
  }
  return {.ok = true, .signer = *std::move(signer)};
}

int Publish(const PublishOptions& options, std::istream& in, std::ostream& out, std::ostream& err) {
  std::ifstream file;
  std::istream* source = OpenEvents(options.events, "publish", in, file, err);
  if (source == nullptr) return kExitFailure;
  const SignerOrNone signer = LoadSigner(options.signing_key_file, "publish", err);
  if (!signer.ok) return kExitBadInput;
  KafkaProps props = Props(options.kafka);
  props.emplace_back("enable.idempotence", "true");
  Deliveries deliveries;
  auto made = NewProducer(props, &deliveries);
  if (!made.ok()) return ProducerFailed(made.status(), "publish", err);
  std::unique_ptr<RdKafka::Producer> producer = *std::move(made);
  // Read and check everything first: a bad line publishes nothing.
  std::vector<v1::Event> events;
  std::vector<std::pair<size_t, std::string>> raw;  // (index, bytes) of lines published undecoded
  std::string line;
  for (size_t number = 1; std::getline(*source, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    v1::Event& event = events.emplace_back();
    absl::Status s = ParseJsonLine(line, &event);
    if (!s.ok() && !options.validate) {  // to test dead-lettering: the line's bytes as they are
      raw.emplace_back(events.size() - 1, line);
      continue;
    }
    if (s.ok() && options.validate) s = ValidateEvent(event);
    if (!s.ok()) {
      err << "vigilctl publish: line " << number << ": " << s.message() << "\n";
      return kExitBadInput;
    }
  }
  if (options.shift_to_now && !events.empty()) {
    const Micros delta = synthetic::MoveToNow(&events);
    err << "vigilctl publish: times moved forward by " << delta / kMicrosPerSecond << "s\n";
  }
  size_t count = 0;
  for (size_t number = 1; number <= events.size(); ++number) {
    const v1::Event& event = events[number - 1];
    std::string bytes = event.SerializeAsString();
    for (const auto& [index, text] : raw) {
      if (index == number - 1) bytes = text;
    }
    const Signer* sign = signer.signer && IsInternal(event) ? &*signer.signer : nullptr;
    const RdKafka::ErrorCode code =
        ProduceEvent(producer.get(), options.topic, RdKafka::Topic::PARTITION_UA, event.victim_id(), bytes, sign);
    if (code != RdKafka::ERR_NO_ERROR) {
      err << "vigilctl publish: event " << number << ": " << RdKafka::err2str(code) << " (" << deliveries.delivered
          << " events before it were delivered)\n";
      return kExitFailure;
    }
    ++count;
  }
  if (producer->flush(30000) != RdKafka::ERR_NO_ERROR) {
    err << "vigilctl publish: " << count - deliveries.delivered - deliveries.failed << " of " << count
        << " events were not acknowledged within 30s\n";
    return kExitFailure;
  }
  if (deliveries.failed > 0) {
    err << "vigilctl publish: " << deliveries.failed << " of " << count << " events were not delivered: "
        << deliveries.first_error << "\n";
    return kExitFailure;
  }
  out << "published " << deliveries.delivered << " events to " << options.topic << "\n";
  return kExitOk;
}

int Tail(const TailOptions& options, std::ostream& out, std::ostream& err) {
  KafkaProps props = Props(options.kafka);
  // Assigned, not subscribed: no group to join, so the first alert shows at once. (Asked before the
  // consumer's properties are added: the metadata client is a producer, which would warn of them.)
  absl::StatusOr<int> partitions = PartitionCount(props, options.topic, 10000);
  props.emplace_back("group.id", "vigilctl-tail");  // required by the client; no offsets are committed
  props.emplace_back("enable.auto.commit", "false");
  props.emplace_back("isolation.level", "read_committed");
  props.emplace_back("fetch.wait.max.ms", "50");
  auto conf = MakeKafkaConf(props);
  if (!conf.ok()) {
    err << "vigilctl tail: " << conf.status().message() << "\n";
    return kExitBadInput;
  }
  if (!partitions.ok()) {
    err << "vigilctl tail: " << partitions.status().message() << "\n";
    return kExitFailure;
  }
  std::string error;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf->get(), error));
  if (!consumer) {
    err << "vigilctl tail: " << error << "\n";
    return kExitFailure;
  }
  std::vector<RdKafka::TopicPartition*> tps;
  for (int p = 0; p < *partitions; ++p) {
    tps.push_back(RdKafka::TopicPartition::create(
        options.topic, p, options.from_beginning ? RdKafka::Topic::OFFSET_BEGINNING : RdKafka::Topic::OFFSET_END));
  }
  consumer->assign(tps);
  for (auto* tp : tps) delete tp;
  auto last = std::chrono::steady_clock::now();
  size_t count = 0;
  v1::Alert alert;
  while (options.max == 0 || count < options.max) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      last = std::chrono::steady_clock::now();
      if (options.dead_letters) {
        // One JSON object: each header by name, and the size of the (possibly truncated) value.
        google::protobuf::Struct letter;
        auto& fields = *letter.mutable_fields();
        if (const RdKafka::Headers* headers = m->headers()) {
          for (const auto& h : headers->get_all()) {
            fields[h.key()].set_string_value(std::string(static_cast<const char*>(h.value()), h.value_size()));
          }
        }
        fields["bytes"].set_number_value(static_cast<double>(m->len()));
        out << ToJsonLine(letter) << std::endl;
        ++count;
        continue;
      }
      if (options.audit) {
        v1::AuditRecord record;
        if (!record.ParseFromArray(m->payload(), static_cast<int>(m->len()))) {
          err << "vigilctl tail: partition " << m->partition() << " offset " << m->offset() << ": not an AuditRecord\n";
          continue;
        }
        out << ToJsonLine(record) << std::endl;
        ++count;
        continue;
      }
      if (!ParseProtobufOrJson(absl::string_view(static_cast<const char*>(m->payload()), m->len()), &alert).ok()) {
        err << "vigilctl tail: partition " << m->partition() << " offset " << m->offset() << ": not an Alert\n";
        continue;
      }
      out << (options.json ? ToJsonLine(alert) : FormatAlert(alert)) << std::endl;
      ++count;
    } else if (options.idle_ms > 0 &&
               std::chrono::steady_clock::now() - last > std::chrono::milliseconds(options.idle_ms)) {
      break;
    }
  }
  consumer->close();
  return kExitOk;
}

int Dump(const DumpOptions& options, std::ostream& out, std::ostream& err) {
  KafkaProps props = Props(options.kafka);
  props.emplace_back("group.id", "vigilctl-dump");
  props.emplace_back("enable.auto.commit", "false");
  props.emplace_back("isolation.level", "read_committed");
  props.emplace_back("enable.partition.eof", "true");
  auto conf = MakeKafkaConf(props);
  if (!conf.ok()) {
    err << "vigilctl dump: " << conf.status().message() << "\n";
    return kExitBadInput;
  }
  std::string error;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf->get(), error));
  if (!consumer) {
    err << "vigilctl dump: " << error << "\n";
    return kExitFailure;
  }
  std::vector<RdKafka::TopicPartition*> tps = {
      RdKafka::TopicPartition::create(options.topic, options.partition, RdKafka::Topic::OFFSET_BEGINNING)};
  consumer->assign(tps);
  for (;;) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(5000));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) break;
    if (m->err() == RdKafka::ERR__TIMED_OUT) {
      err << "vigilctl dump: timed out reading " << options.topic << "\n";
      return kExitFailure;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    state::DumpedRecord record;
    record.set_offset(m->offset());
    const RdKafka::MessageTimestamp ts = m->timestamp();
    record.set_timestamp_ms(ts.type == RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE ? -1 : ts.timestamp);
    if (const std::string* key = m->key()) record.set_key(*key);
    record.set_value(static_cast<const char*>(m->payload()), m->len());
    if (const RdKafka::Headers* headers = m->headers()) {
      for (const auto& h : headers->get_all()) {
        if (h.key() == kHeaderSignature && h.value() != nullptr) {
          record.set_signature(std::string(static_cast<const char*>(h.value()), h.value_size()));
        }
      }
    }
    out << ToJsonLine(record) << "\n";
  }
  delete tps[0];
  consumer->close();
  return kExitOk;
}

int Synth(size_t events, size_t victims, uint64_t seed, int days, std::ostream& out) {
  for (const auto& e :
       synthetic::SyntheticStream({.events = events, .victims = victims, .seed = seed, .days = days})) {
    out << ToJsonLine(e) << "\n";
  }
  return kExitOk;
}

namespace {

// Writes one signed event, made by `make(partition)`, to every partition of the topic, keyed by `key`, and
// waits for every delivery. The exit status; what failed is said on `err` for `command`.
int ProduceToEveryPartition(const KafkaOptions& kafka, const std::string& topic, const std::string& key,
                            const Signer& signer, const std::function<v1::Event(int)>& make, const char* command,
                            int* partitions_out, std::ostream& err) {
  const KafkaProps props = Props(kafka);
  absl::StatusOr<int> partitions = PartitionCount(props, topic, 10000);
  if (!partitions.ok()) {
    err << "vigilctl " << command << ": " << partitions.status().message() << "\n";
    return kExitFailure;
  }
  Deliveries deliveries;
  auto made = NewProducer(props, &deliveries);
  if (!made.ok()) return ProducerFailed(made.status(), command, err);
  std::unique_ptr<RdKafka::Producer> producer = *std::move(made);
  for (int p = 0; p < *partitions; ++p) {
    const std::string bytes = make(p).SerializeAsString();
    if (RdKafka::ErrorCode code = ProduceEvent(producer.get(), topic, p, key, bytes, &signer);
        code != RdKafka::ERR_NO_ERROR) {
      err << "vigilctl " << command << ": partition " << p << ": " << RdKafka::err2str(code) << "\n";
      return kExitFailure;
    }
  }
  if (producer->flush(30000) != RdKafka::ERR_NO_ERROR || deliveries.failed > 0) {
    err << "vigilctl " << command << ": not delivered to every partition within 30s " << deliveries.first_error
        << "\n";
    return kExitFailure;
  }
  *partitions_out = *partitions;
  return kExitOk;
}

}  // namespace

int Tick(const TickOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Micros> at = ParseRfc3339(options.at);
  if (!at.ok()) {
    err << "vigilctl tick: --at: " << at.status().message() << "\n";
    return kExitBadInput;
  }
  const SignerOrNone signer = LoadSigner(options.signing_key_file, "tick", err);
  if (!signer.ok) return kExitBadInput;
  if (!signer.signer) {
    err << "vigilctl tick: --signing-key-file is required: vigild refuses a tick it did not sign\n";
    return kExitBadInput;
  }
  int partitions = 0;
  const int status = ProduceToEveryPartition(
      options.kafka, options.topic, kClockKey, *signer.signer,
      [&](int p) {
        v1::Event tick;
        tick.set_event_id(absl::StrCat("tick-", p, "-", *at / 1000));
        *tick.mutable_occurred_at() = ToTimestamp(*at);
        tick.set_source("vigilctl");
        tick.mutable_clock_tick();
        return tick;
      },
      "tick", &partitions, err);
  if (status != kExitOk) return status;
  out << "clock moved to " << FormatRfc3339(*at) << " on " << partitions << " partitions of " << options.topic
      << "\n";
  return kExitOk;
}

int RulesPublish(const RulesPublishOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> text = ReadConfigFile(options.file);
  if (!text.ok()) {
    err << "vigilctl rules publish: " << text.status().message() << "\n";
    return kExitBadInput;
  }
  absl::StatusOr<RulesConfig> rules = ParseRulesYaml(*text, options.file);
  if (!rules.ok()) {
    err << "vigilctl rules publish: " << rules.status().message() << "\n";
    return kExitBadInput;
  }
  const std::string version = options.version.empty() ? rules->version() : options.version;
  if (options.version.empty() && version == RulesConfig::Defaults().version()) {
    err << "vigilctl rules publish: give the rules a version (--version, or `version:` in " << options.file
        << "): every alert raised under them will carry it\n";
    return kExitBadInput;
  }
  const SignerOrNone signer = LoadSigner(options.signing_key_file, "rules publish", err);
  if (!signer.ok) return kExitBadInput;
  if (!signer.signer) {
    err << "vigilctl rules publish: --signing-key-file is required: vigild refuses a rules change its key did "
           "not sign\n";
    return kExitBadInput;
  }
  const Micros now = absl::ToUnixMicros(absl::Now());
  v1::Event change;
  change.set_victim_id(kRulesKey);
  *change.mutable_occurred_at() = ToTimestamp(now);
  change.set_source("vigilctl");
  change.mutable_rules_changed()->set_version(version);
  change.mutable_rules_changed()->set_rules_yaml(*text);
  change.set_event_id(absl::StrCat("rules-", version, "-", now));
  if (absl::Status s = ValidateEvent(change); !s.ok()) {
    err << "vigilctl rules publish: " << s.message() << "\n";
    return kExitBadInput;
  }
  int partitions = 0;
  const int status = ProduceToEveryPartition(
      options.kafka, options.topic, kRulesKey, *signer.signer,
      [&](int p) {
        v1::Event e = change;
        e.set_event_id(absl::StrCat(change.event_id(), "-p", p));
        return e;
      },
      "rules publish", &partitions, err);
  if (status != kExitOk) return status;
  out << "rules version " << version << " published to " << partitions << " partitions of " << options.topic
      << "\n";
  return kExitOk;
}

}  // namespace vigil::ctl
