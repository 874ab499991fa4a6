#include "services/escalation/api/peers.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"

namespace vigil {

absl::StatusOr<std::unique_ptr<Peers>> Peers::Start(const KafkaProps& props, PeerOptions options, Log* log) {
  KafkaProps p = props;
  p.emplace_back("auto.offset.reset", "earliest");
  p.emplace_back("fetch.wait.max.ms", "100");
  auto consumer = AssignedConsumer(p, "vigil-peers", options.topic, {{0, RdKafka::Topic::OFFSET_BEGINNING}});
  if (!consumer.ok()) return consumer.status();
  std::unique_ptr<Peers> peers(new Peers(std::move(options), log));
  Peers* raw = peers.get();
  peers->reader_ = std::thread([raw, c = *std::move(consumer)]() mutable { raw->Read(std::move(c)); });
  return peers;
}

Peers::~Peers() {
  stop_ = true;
  if (reader_.joinable()) reader_.join();
}

void Peers::Read(std::unique_ptr<RdKafka::KafkaConsumer> consumer) {
  while (!stop_) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() != RdKafka::ERR_NO_ERROR || m->len() == 0) continue;  // a tombstone: nothing claimed
    v1::InstanceRecord record;
    if (!record.ParseFromArray(m->payload(), static_cast<int>(m->len())) || record.instance().empty()) {
      spdlog::warn("event=instance_record_unreadable topic={} offset={}", options_.topic, m->offset());
      continue;
    }
    if (record.events_topic() != options_.events_topic) continue;  // another group's, sharing the topic
    Learn(record);
  }
  consumer->close();
}

void Peers::Learn(const v1::InstanceRecord& record) {
  absl::MutexLock lock(&mu_);
  v1::InstanceRecord& known = instances_[record.instance()];
  // The topic is read in order, but this instance's own record is known before it is read back.
  if (ToMicros(record.at()) >= ToMicros(known.at())) known = record;
}

void Peers::Announce(const std::set<int32_t>& owned) {
  v1::InstanceRecord record;
  record.set_instance(options_.instance);
  record.set_api_address(options_.api_address);
  record.set_events_topic(options_.events_topic);
  for (int32_t p : owned) record.add_partitions(p);
  *record.mutable_at() = ToTimestamp(absl::ToUnixMicros(absl::Now()));
  Learn(record);
  spdlog::info("event=instance_announced partitions={}", owned.size());
  log_.AppendThen(options_.topic, {{options_.instance, record.SerializeAsString(), {}}},
                  absl::Now() + absl::Seconds(30), [](absl::StatusOr<std::vector<Landed>> landed) {
                    if (!landed.ok()) {
                      spdlog::warn("event=instance_announce_failed status=\"{}\"", landed.status().ToString());
                    }
                  });
}

std::optional<std::string> Peers::OwnerOf(int32_t partition) const {
  absl::MutexLock lock(&mu_);
  const v1::InstanceRecord* latest = nullptr;
  for (const auto& [instance, record] : instances_) {
    const auto& ps = record.partitions();
    if (std::find(ps.begin(), ps.end(), partition) == ps.end()) continue;
    if (latest == nullptr || ToMicros(record.at()) > ToMicros(latest->at())) latest = &record;
  }
  if (latest == nullptr || latest->instance() == options_.instance || latest->api_address().empty()) {
    return std::nullopt;
  }
  return latest->api_address();
}

std::vector<std::string> Peers::Others() const {
  std::set<int32_t> partitions;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [instance, record] : instances_) partitions.insert(record.partitions().begin(), record.partitions().end());
  }
  std::set<std::string> out;
  for (int32_t p : partitions) {
    if (std::optional<std::string> owner = OwnerOf(p)) out.insert(*owner);
  }
  return {out.begin(), out.end()};
}

grpc::GenericStub& Peers::Stub(const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<grpc::GenericStub>& stub = stubs_[address];
  if (!stub) stub = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(address, options_.credentials));
  return *stub;
}

void Peers::Forward(const std::string& address, const std::string& method, const grpc::ByteBuffer& request,
                    const std::string& caller, absl::Time deadline, Answered done) {
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    Answered done;
  };
  auto* call = new Call{.request = request, .done = std::move(done)};
  call->context.AddMetadata(kCallerHeader, caller);
  call->context.set_deadline(absl::ToChronoTime(deadline));
  Stub(address).UnaryCall(&call->context, method, grpc::StubOptions(), &call->request, &call->response,
                          [call](grpc::Status status) {
                            call->done(std::move(status), std::move(call->response));
                            delete call;
                          });
}

}  // namespace vigil
