// vigil.v1.RiskService: the gRPC API on vigild. Writes are published to the
// Kafka log (Log) and optionally awaited until vigild has applied them; reads
// come from vigild's stored state (StateReader); WatchAlerts follows the alert
// topic (AlertFeed). Every call is authorised by the caller's identity
// (AccessPolicy); every read of a victim's data (timeline, profile, alerts) is
// audited before it leaves.
// Thread-safe: gRPC calls it from many threads.
#pragma once

#include <atomic>
#include <string>

#include "absl/time/time.h"
#include "common/health.h"
#include "common/signer.h"
#include "common/time_util.h"
#include "common/watermarks.h"
#include "grpcpp/grpcpp.h"
#include "services/escalation/api/access.h"
#include "services/escalation/api/alert_feed.h"
#include "services/escalation/api/log.h"
#include "services/escalation/api/state_reader.h"
#include "services/escalation/engine/rules_config.h"
#include "vigil/v1/risk_service.grpc.pb.h"

namespace vigil {

struct ApiOptions {
  std::string events_topic = "vigil.events";
  std::string audit_topic = "vigil.audit";
  // Non-empty: the server runs without TLS (local development only) and every
  // caller is this identity. Empty: the identity is the client certificate's common name.
  std::string insecure_identity;
  // How long a write waits for Kafka, and for vigild to apply it, when the call has no deadline.
  absl::Duration default_wait = absl::Seconds(10);
  size_t max_batch = 10000;
  // When given: writes fail fast (UNAVAILABLE) while it says the broker is unreachable.
  const Health* health = nullptr;
  int max_page_size = 1000;
  // Signs what the API writes that only vigild may (acknowledgements). Required for AcknowledgeAlert.
  const Signer* signer = nullptr;
  // An event over this many bytes is refused (RESOURCE_EXHAUSTED), as vigild would refuse it on the topic.
  size_t max_event_bytes = 64 * 1024;
  // An event later than now plus this is refused: vigild would refuse it as from the future.
  Micros future_tolerance = 5 * kMicrosPerMinute;
  // RecordEvents publishes as it reads, this many events at a time at most.
  size_t record_chunk = 500;
  // WatchAlerts streams open at once at most; more are refused (RESOURCE_EXHAUSTED).
  int max_watch_streams = 256;
  // Where vigild publishes how far each partition is applied (read-your-writes waits on it); when null, the
  // store's stored offsets are polled.
  const Watermarks* applied = nullptr;
};

class RiskServiceImpl final : public v1::RiskService::Service {
 public:
  // `feed` may be null: WatchAlerts is then UNIMPLEMENTED.
  RiskServiceImpl(const StateReader* reader, Log* log, AlertFeed* feed, const AccessPolicy* access,
                  const RulesConfig* rules, ApiOptions options)
      : reader_(*reader), log_(*log), feed_(feed), access_(*access), rules_(*rules), options_(std::move(options)) {}

  grpc::Status RecordEvent(grpc::ServerContext* context, const v1::RecordEventRequest* request,
                           v1::RecordEventResponse* response) override;
  grpc::Status RecordEvents(grpc::ServerContext* context, grpc::ServerReader<v1::RecordEventRequest>* reader,
                            v1::RecordEventsResponse* response) override;
  grpc::Status GetTimeline(grpc::ServerContext* context, const v1::GetTimelineRequest* request,
                           v1::GetTimelineResponse* response) override;
  grpc::Status GetRiskProfile(grpc::ServerContext* context, const v1::GetRiskProfileRequest* request,
                              v1::RiskProfile* response) override;
  grpc::Status ListAlerts(grpc::ServerContext* context, const v1::ListAlertsRequest* request,
                          v1::ListAlertsResponse* response) override;
  grpc::Status GetAlert(grpc::ServerContext* context, const v1::GetAlertRequest* request,
                        v1::Alert* response) override;
  grpc::Status AcknowledgeAlert(grpc::ServerContext* context, const v1::AcknowledgeAlertRequest* request,
                                v1::Alert* response) override;
  grpc::Status WatchAlerts(grpc::ServerContext* context, const v1::WatchAlertsRequest* request,
                           grpc::ServerWriter<v1::WatchAlertsResponse>* writer) override;
  grpc::Status ExplainAlert(grpc::ServerContext* context, const v1::ExplainAlertRequest* request,
                            v1::AlertExplanation* response) override;

 private:
  // The caller's identity when it may call `method`; UNAUTHENTICATED or PERMISSION_DENIED otherwise.
  absl::StatusOr<std::string> Authorize(const grpc::ServerContext& context, absl::string_view method) const;
  // One victim's data read: whose, and which resource.
  struct Read {
    std::string victim_id;
    std::string resource;
  };
  // Writes the audit records of reads (one each, in one append); the read fails (UNAVAILABLE) when they
  // cannot be written. Nothing to write for no reads.
  absl::Status Audit(const grpc::ServerContext& context, const std::string& identity, absl::string_view method,
                     const std::vector<Read>& reads, const std::string& purpose);
  // The alerts' audit records (alerts/{id}, under the alert's victim).
  absl::Status AuditAlerts(const grpc::ServerContext& context, const std::string& identity, absl::string_view method,
                           const std::vector<const v1::Alert*>& alerts, const std::string& purpose);
  // An event a force system may record: present, valid, not one only vigild writes, within the size
  // limit and not from the future. Unknown fields are dropped from it.
  grpc::Status CheckRecordable(v1::RecordEventRequest& request, const std::string& path) const;
  // Publishes validated events (with their headers); waits until applied when asked.
  absl::StatusOr<std::vector<v1::RecordEventResponse>> Record(const grpc::ServerContext& context,
                                                             const std::vector<v1::Event>& events, bool wait_applied,
                                                             const std::vector<LogRecord>& signed_records = {});
  // Waits until vigild has applied every record up to `landed` in each partition.
  absl::Status WaitAllApplied(const grpc::ServerContext& context, const std::vector<Landed>& landed) const;
  absl::Status WaitApplied(const grpc::ServerContext& context, const Landed& landed) const;
  // A read of one victim's data by an authorised caller: a purpose is stated, the victim is
  // stored, and the audit record (naming `resource`) is written first. Otherwise the status that
  // says why not. Fills `victim` (its state only when `with_state`).
  grpc::Status ReadVictim(const grpc::ServerContext& context, const std::string& identity, absl::string_view method,
                          const std::string& victim_id, const std::string& resource, const std::string& purpose,
                          bool with_state, StateReader::Victim* victim);
  // The alert that `name` (alerts/{id}) names: INVALID_ARGUMENT or NOT_FOUND otherwise.
  grpc::Status LoadAlert(const std::string& name, v1::Alert* alert) const;
  absl::Time Deadline(const grpc::ServerContext& context) const;

  const StateReader& reader_;
  Log& log_;
  AlertFeed* feed_;
  const AccessPolicy& access_;
  const RulesConfig& rules_;
  const ApiOptions options_;
  std::atomic<int> watch_streams_{0};
};

// absl::Status to grpc::Status, with the same code and message.
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace vigil
