// vigil.v1.RiskService: the gRPC API on vigild. Writes are published to the
// Kafka log (Log) and optionally awaited until vigild has applied them; reads
// come from vigild's stored state (StateReader); WatchAlerts follows the alert
// topic (AlertFeed). Every call is authorised by the caller's identity
// (AccessPolicy); every read of a victim's data (timeline, profile, alerts) is
// audited before it leaves.
// The reads (GetTimeline, GetRiskProfile, ListAlerts, GetAlert, ExplainAlert)
// use gRPC's callback API: a read's audit record is produced as soon as it is
// known, the store read runs alongside, and the response leaves from the
// record's acknowledgement; no thread waits for it, and one Kafka produce
// request acknowledges the records of many reads. Writes and WatchAlerts wait
// on Kafka and vigild, on gRPC's synchronous pool.
// Thread-safe: gRPC calls it from many threads.
#pragma once

#include <atomic>
#include <functional>
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
#include "services/escalation/api/peers.h"
#include "services/escalation/api/state_reader.h"
#include "services/escalation/engine/rules_config.h"
#include "services/escalation/vigild/metrics.h"
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
  // Reads whose audit records are awaiting Kafka's acknowledgement, at most; a read beyond is refused
  // (RESOURCE_EXHAUSTED) rather than queued without bound.
  int max_pending_audits = 10000;
  // Where vigild publishes how far each partition is applied (read-your-writes waits on it); when null, the
  // store's stored offsets are polled.
  const Watermarks* applied = nullptr;
  // Counts audit failures (must outlive the service).
  VigilMetrics* metrics = VigilMetrics::Unexposed();
  // With several instances (outliving the service): which events partitions this one owns; `partitions`,
  // the events topic's partition count, places a victim. Without `ownership`, every stored partition is
  // answered from. A victim owned elsewhere is forwarded to its owner (set_peers), or UNAVAILABLE.
  const Ownership* ownership = nullptr;
  int32_t partitions = 0;
};

// The reads on the callback API (GetTimeline raw: it sends stored events as they are); the rest on the
// synchronous one.
using RiskServiceBase = v1::RiskService::WithRawCallbackMethod_GetTimeline<
    v1::RiskService::WithCallbackMethod_GetRiskProfile<v1::RiskService::WithCallbackMethod_ListAlerts<
        v1::RiskService::WithCallbackMethod_GetAlert<v1::RiskService::WithCallbackMethod_ExplainAlert<
            v1::RiskService::Service>>>>>;

class RiskServiceImpl final : public RiskServiceBase {
 public:
  // The other instances, to forward calls to (outliving the service); until set, none are forwarded.
  void set_peers(Peers* peers) { peers_ = peers; }
  // vigil.v1.PeerService, for the other instances (serve it beside this one).
  grpc::Service* peer_service();

  // `feed` may be null: WatchAlerts is then UNIMPLEMENTED.
  ~RiskServiceImpl() override;
  RiskServiceImpl(const StateReader* reader, Log* log, AlertFeed* feed, const AccessPolicy* access,
                  const RulesConfig* rules, ApiOptions options);

  grpc::Status RecordEvent(grpc::ServerContext* context, const v1::RecordEventRequest* request,
                           v1::RecordEventResponse* response) override;
  grpc::Status RecordEvents(grpc::ServerContext* context, grpc::ServerReader<v1::RecordEventRequest>* reader,
                            v1::RecordEventsResponse* response) override;
  // A v1::GetTimelineRequest in, a v1::GetTimelineResponse out.
  grpc::ServerUnaryReactor* GetTimeline(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetRiskProfile(grpc::CallbackServerContext* context,
                                           const v1::GetRiskProfileRequest* request,
                                           v1::RiskProfile* response) override;
  grpc::ServerUnaryReactor* ListAlerts(grpc::CallbackServerContext* context, const v1::ListAlertsRequest* request,
                                       v1::ListAlertsResponse* response) override;
  grpc::ServerUnaryReactor* GetAlert(grpc::CallbackServerContext* context, const v1::GetAlertRequest* request,
                                     v1::Alert* response) override;
  grpc::Status AcknowledgeAlert(grpc::ServerContext* context, const v1::AcknowledgeAlertRequest* request,
                                v1::Alert* response) override;
  grpc::Status WatchAlerts(grpc::ServerContext* context, const v1::WatchAlertsRequest* request,
                           grpc::ServerWriter<v1::WatchAlertsResponse>* writer) override;
  grpc::ServerUnaryReactor* ExplainAlert(grpc::CallbackServerContext* context,
                                         const v1::ExplainAlertRequest* request,
                                         v1::AlertExplanation* response) override;

 private:
  class Reply;
  // Who is calling: the client certificate's common name (the development identity without TLS);
  // UNAUTHENTICATED without one.
  absl::StatusOr<std::string> Authenticate(const grpc::ServerContextBase& context) const;
  // The caller's identity when it may call `method` (for a forwarded call, the caller it was forwarded for);
  // UNAUTHENTICATED or PERMISSION_DENIED otherwise.
  absl::StatusOr<std::string> Authorize(const grpc::ServerContextBase& context, absl::string_view method) const;
  // One victim's data read: whose, and which resource.
  struct Read {
    std::string victim_id;
    std::string resource;
  };
  using Audited = std::function<void(absl::Status)>;
  // Writes the audit records of reads (one each, in one append) and calls `done` once with OK when Kafka
  // has them, or with why the read must fail: UNAVAILABLE when they cannot be written, RESOURCE_EXHAUSTED
  // when too many reads await theirs. OK at once for no reads.
  void AuditThen(const grpc::ServerContextBase& context, const std::string& identity, absl::string_view method,
                 const std::vector<Read>& reads, const std::string& purpose, Audited done);
  // AuditThen, waiting for the outcome.
  absl::Status Audit(const grpc::ServerContextBase& context, const std::string& identity, absl::string_view method,
                     const std::vector<Read>& reads, const std::string& purpose);
  // The alerts' reads (alerts/{id}, under the alert's victim).
  static std::vector<Read> AlertReads(const std::vector<const v1::Alert*>& alerts);
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
  // A read of one victim's data by an authorised caller: a purpose is stated, the victim is stored, and
  // its audit record (naming `resource`) is on its way, `reply` awaiting it. Otherwise the status that
  // says why not. Fills `victim` (its state only when `with_state`).
  grpc::Status ReadVictim(const grpc::CallbackServerContext& context, const std::string& identity,
                          absl::string_view method, const std::string& victim_id, const std::string& resource,
                          const std::string& purpose, bool with_state, Reply& reply, StateReader::Victim* victim);
  // Where a victim's data is answered: OK with `owner` empty, here; OK with an owner, by forwarding the call
  // to it; UNAVAILABLE, saying why, when its partition has no owner that can answer now (a rebalance).
  grpc::Status RouteVictim(const grpc::ServerContextBase& context, absl::string_view victim_id,
                           std::string* owner) const;
  // Forwards this call to `owner` for `identity`; `reply` waits for the answer, written into `response`.
  template <typename Request, typename Response>
  void ForwardThen(const grpc::ServerContextBase& context, const std::string& owner, absl::string_view method,
                   const Request& request, const std::string& identity, Reply& reply, Response* response);
  // The other instances that may hold what this one did not find (an alert): none for a call already
  // forwarded, or without peers. UNAVAILABLE while a rebalance is under way.
  absl::StatusOr<std::vector<std::string>> OthersToAsk(const grpc::ServerContextBase& context) const;
  // What this instance did not find (`missing` NOT_FOUND) asked of the others in turn: the answer is the
  // first that does not say NOT_FOUND (NOT_FOUND when none has it), and `reply` waits for it. Any other
  // `missing` is returned as it is, as NOT_FOUND is when there is no one to ask.
  template <typename Request, typename Response>
  grpc::Status ElsewhereThen(const grpc::ServerContextBase& context, grpc::Status missing, absl::string_view method,
                             const Request& request, const std::string& identity, Reply& reply,
                             Response* response);
  // ListAlerts of every victim with other instances: asks each for the same page, merges their pages with
  // `local` (this instance's first size + 1), and answers with the first `size` in the order.
  void GatherAlertsThen(const grpc::ServerContextBase& context, std::vector<std::string> others,
                        const v1::ListAlertsRequest& request, const std::string& identity,
                        std::vector<v1::Alert> local, int size, uint64_t fingerprint, Reply& reply,
                        v1::ListAlertsResponse* response);
  // The alert that `name` (alerts/{id}) names: INVALID_ARGUMENT or NOT_FOUND otherwise.
  grpc::Status LoadAlert(const std::string& name, v1::Alert* alert) const;
  absl::Time Deadline(const grpc::ServerContextBase& context) const;
  // The bodies of the reads: the status of the read itself; the response waits for `reply`'s audit.
  grpc::Status ServeTimeline(const grpc::CallbackServerContext& context, const grpc::ByteBuffer* request,
                             grpc::ByteBuffer* response, Reply& reply);
  grpc::Status ServeRiskProfile(const grpc::CallbackServerContext& context, const v1::GetRiskProfileRequest* request,
                                v1::RiskProfile* response, Reply& reply);
  grpc::Status ServeListAlerts(const grpc::CallbackServerContext& context, const v1::ListAlertsRequest* request,
                               v1::ListAlertsResponse* response, Reply& reply);
  grpc::Status ServeAlert(const grpc::CallbackServerContext& context, const v1::GetAlertRequest* request,
                          v1::Alert* response, Reply& reply);
  grpc::Status ServeExplanation(const grpc::CallbackServerContext& context, const v1::ExplainAlertRequest* request,
                                v1::AlertExplanation* response, Reply& reply);
  // Serves a read on the callback API with `serve`, a Serve* above.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, const Request* request, Response* response,
                                  grpc::Status (RiskServiceImpl::*serve)(const grpc::CallbackServerContext&,
                                                                          const Request*, Response*, Reply&));

  const StateReader& reader_;
  Log& log_;
  AlertFeed* feed_;
  const AccessPolicy& access_;
  const RulesConfig& rules_;
  const ApiOptions options_;
  std::atomic<Peers*> peers_{nullptr};
  class PeerServiceImpl;
  std::unique_ptr<PeerServiceImpl> peer_service_;
  std::atomic<int> watch_streams_{0};
  std::atomic<int> pending_audits_{0};
};

// absl::Status to grpc::Status, with the same code and message.
grpc::Status ToGrpc(const absl::Status& status);

}  // namespace vigil
