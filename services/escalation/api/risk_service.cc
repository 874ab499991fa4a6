#include "services/escalation/api/risk_service.h"

#include <algorithm>
#include <future>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "common/fingerprint.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "google/protobuf/wire_format_lite.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "services/escalation/engine/codec.h"
#include "services/escalation/engine/risk_profile.h"
#include "services/escalation/engine/validate.h"
#include "services/escalation/pipeline/admission.h"
#include "spdlog/spdlog.h"

namespace vigil {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultTimelinePage = 100;
constexpr int kDefaultAlertPage = 50;
// WatchAlerts sends at most this many transitions per audited batch.
constexpr size_t kWatchBatch = 100;
// What an acknowledgement's audit record says the alert was read for.
constexpr char kAcknowledgePurpose[] = "acknowledging the alert";
// How often a write that waits for vigild looks at how far it has applied (when it is not told).
constexpr absl::Duration kApplyPoll = absl::Milliseconds(2);
// How often a write waiting to be told notices that its call was cancelled.
constexpr absl::Duration kCancelCheck = absl::Milliseconds(100);

// A grpc::Status carrying google.rpc.Status details (gRPC's rich error model).
template <typename Detail>
grpc::Status WithDetail(grpc::StatusCode code, const std::string& message, const Detail& detail) {
  google::rpc::Status status;
  status.set_code(code);
  status.set_message(message);
  status.add_details()->PackFrom(detail);
  return grpc::Status(code, message, status.SerializeAsString());
}

grpc::Status BadField(const std::string& field, const std::string& description) {
  google::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field(field);
  v->set_description(description);
  return WithDetail(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat(field, ": ", description), bad);
}

// A field violation from a status whose message starts with the field at fault
// ("field: description", as ParseName, PageSize, Untoken and ValidateEvent write them),
// the field taken as under `path` when one is given.
grpc::Status FieldError(const absl::Status& s, const std::string& path = "") {
  std::pair<std::string, std::string> parts = absl::StrSplit(s.message(), absl::MaxSplits(": ", 1));
  return BadField(path.empty() ? parts.first : absl::StrCat(path, ".", parts.first), parts.second);
}


// An empty rule, or the name of one.
grpc::Status CheckRule(const std::string& rule) {
  RuleId id;
  if (rule.empty() || RuleFromName(rule, &id)) return grpc::Status::OK;
  return BadField("rule", absl::StrCat("no rule is called ", rule));
}

grpc::Status FailedPrecondition(const std::string& type, const std::string& subject, const std::string& description) {
  google::rpc::PreconditionFailure failure;
  auto* v = failure.add_violations();
  v->set_type(type);
  v->set_subject(subject);
  v->set_description(description);
  return WithDetail(grpc::StatusCode::FAILED_PRECONDITION, description, failure);
}

// The id in "<collection>/<id><suffix>", or an INVALID_ARGUMENT naming `field`. The id is carried as it
// is, whatever it holds ('/', spaces, any Unicode): everything between the collection and the suffix, so
// that every id an event may carry can be named (force references look like 01/2345/24).
absl::StatusOr<std::string> ParseName(const std::string& name, absl::string_view collection, absl::string_view suffix,
                                      const std::string& field) {
  const std::string prefix = absl::StrCat(collection, "/");
  absl::string_view id = name;
  if (!absl::ConsumePrefix(&id, prefix) || !absl::ConsumeSuffix(&id, suffix) || id.empty() ||
      id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected ", prefix, "{id}", suffix, " with an id of 1 to ", kMaxIdLength, " bytes"));
  }
  return std::string(id);
}

// A stated purpose: what the audit record says the read was for.
constexpr size_t kMaxPurposeLength = 500;
grpc::Status CheckPurpose(const std::string& purpose) {
  if (absl::StripAsciiWhitespace(purpose).empty()) return BadField("purpose", "required: why this victim's data is read");
  if (purpose.size() > kMaxPurposeLength) {
    return BadField("purpose", absl::StrCat("at most ", kMaxPurposeLength, " characters"));
  }
  if (!IsPrintable(purpose)) return BadField("purpose", "has control characters");
  return grpc::Status::OK;
}

// A time filter that is a valid google.protobuf.Timestamp (0001-01-01 to 9999-12-31), when set.
grpc::Status CheckTime(const char* field, const google::protobuf::Timestamp& ts, bool set) {
  if (!set || (ts.seconds() >= TimeUtil::kTimestampMinSeconds && ts.seconds() <= TimeUtil::kTimestampMaxSeconds &&
               ts.nanos() >= 0 && ts.nanos() <= 999999999)) {
    return grpc::Status::OK;
  }
  return BadField(field, "not a valid timestamp (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z)");
}

absl::StatusOr<int> PageSize(int requested, int default_size, int max_size) {
  if (requested < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (requested == 0) return default_size;
  return std::min(requested, max_size);  // AIP-158: larger requests are coerced to the maximum
}

Micros TimeOr(const google::protobuf::Timestamp& ts, bool set, Micros otherwise) {
  return set ? ToMicros(ts) : otherwise;
}

bool Matches(const v1::Alert& a, const v1::ListAlertsRequest& r) {
  if (r.states_size() > 0 && std::find(r.states().begin(), r.states().end(), a.state()) == r.states().end()) {
    return false;
  }
  if (r.levels_size() > 0 && std::find(r.levels().begin(), r.levels().end(), a.level()) == r.levels().end()) {
    return false;
  }
  if (!r.rule().empty() && a.rule() != r.rule()) return false;
  if (!r.force().empty() && a.force() != r.force()) return false;
  if (!r.victim_id().empty() && a.victim_id() != r.victim_id()) return false;
  const Micros at = ToMicros(a.at());
  return at >= TimeOr(r.start_time(), r.has_start_time(), INT64_MIN) &&
         at < TimeOr(r.end_time(), r.has_end_time(), INT64_MAX);
}

// A page token bound to the request it continues: "<fingerprint>\n<rest>".
std::string Token(uint64_t fingerprint, absl::string_view rest) {
  return absl::WebSafeBase64Escape(absl::StrCat(Hex64(fingerprint), "\n", rest));
}

absl::StatusOr<std::string> Untoken(absl::string_view token, uint64_t fingerprint) {
  std::string text;
  const absl::Status bad = absl::InvalidArgumentError(
      "page_token: not a token from the previous page of this request (the filters must stay the same)");
  if (!absl::WebSafeBase64Unescape(token, &text)) return bad;
  std::pair<std::string, std::string> parts = absl::StrSplit(text, absl::MaxSplits('\n', 1));
  if (parts.first != Hex64(fingerprint)) return bad;
  return parts.second;
}

// What a page token is bound to: the request without its paging fields.
template <typename Request>
uint64_t RequestFingerprint(Request r) {
  r.clear_page_token();
  r.clear_page_size();
  return Fnv1a64(r.SerializeAsString());
}

// UNAVAILABLE at once, rather than after a wait, while vigild knows the broker is away.
absl::Status LogReachable(const Health* health, absl::string_view consequence) {
  if (health == nullptr) return absl::OkStatus();
  absl::Status s = health->Of(kHealthBroker);
  return s.ok() ? s : absl::UnavailableError(absl::StrCat(s.message(), "; ", consequence));
}

}  // namespace

grpc::Status RiskServiceImpl::CheckRecordable(v1::RecordEventRequest& request, const std::string& path) const {
  if (!request.has_event()) return BadField(path, "required");
  v1::Event& event = *request.mutable_event();
  if (IsInternal(event)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat(path, ": ",
                                     event.has_escalation_acknowledged()
                                         ? "an acknowledgement is made with AcknowledgeAlert, in the caller's name"
                                         : "clock ticks and suspect findings are written by vigild only"));
  }
  // Unknown fields are not part of the contract: dropped before the event is published or stored.
  DropUnknownFields(&event);
  if (const size_t bytes = event.ByteSizeLong(); bytes > options_.max_event_bytes) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat(path, ": an event of ", bytes, " bytes; at most ", options_.max_event_bytes,
                                     " are accepted"));
  }
  if (absl::Status s = ValidateEvent(event); !s.ok()) return FieldError(s, path);
  const Micros latest = absl::ToUnixMicros(absl::Now()) + options_.future_tolerance;
  if (ToMicros(event.occurred_at()) > latest) {
    return BadField(absl::StrCat(path, ".occurred_at"),
                    absl::StrCat("later than now plus ", FormatDuration(options_.future_tolerance),
                                 ": an event from the future is refused"));
  }
  return grpc::Status::OK;
}

namespace {

// A header's value; nullopt when the call has none.
std::optional<std::string> Header(const grpc::ServerContextBase& context, const char* name) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(name);
  if (it == metadata.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

// The caller a forwarding instance names (api/peers.h); nullopt for a call not forwarded.
std::optional<std::string> ForwardedFor(const grpc::ServerContextBase& context) {
  return Header(context, kCallerHeader);
}

// The caller another party names, a forwarding instance or a front end acting for its user; nullopt for a
// call in the caller's own name.
std::optional<std::string> CallerNamed(const grpc::ServerContextBase& context) {
  std::optional<std::string> caller = ForwardedFor(context);
  return caller ? caller : Header(context, kUserHeader);
}

// The client certificate's common name ("" without one).
std::string AuthenticatedIdentity(const grpc::ServerContextBase& context) {
  const auto auth = context.auth_context();
  const auto names = auth ? auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME) : std::vector<grpc::string_ref>{};
  return names.empty() ? "" : std::string(names.front().data(), names.front().size());
}

// The same code and message (the inverse of ToGrpc).
absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// A RiskService method's full name, for a call to another instance.
std::string RiskMethod(absl::string_view method) { return absl::StrCat("/vigil.v1.RiskService/", method); }

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kDataLoss) {
    // The detail (files, keys) is the operator's: logged here, never sent to a client.
    spdlog::error("event=stored_data_damaged status=\"{}\"", status.ToString());
    return grpc::Status(grpc::StatusCode::DATA_LOSS,
                        "stored data needed for this answer is damaged; the operator can rebuild it from the Kafka log "
                        "(vigild --drop-partition, see docs/operations.md); the server log says which");
  }
  return status.ok() ? grpc::Status::OK
                     : grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Time RiskServiceImpl::Deadline(const grpc::ServerContextBase& context) const {
  const absl::Time own = absl::Now() + options_.default_wait;
  const absl::Time given = absl::FromChrono(context.deadline());
  return std::min(own, given);
}

absl::StatusOr<std::string> RiskServiceImpl::Authenticate(const grpc::ServerContextBase& context) const {
  if (!options_.insecure_identity.empty()) return options_.insecure_identity;
  std::string identity = AuthenticatedIdentity(context);
  if (identity.empty()) return absl::UnauthenticatedError("a client certificate is required (mutual TLS)");
  return identity;
}

absl::StatusOr<std::string> RiskServiceImpl::Authorize(const grpc::ServerContextBase& context,
                                                       absl::string_view method) const {
  absl::StatusOr<std::string> authenticated = Authenticate(context);
  if (!authenticated.ok()) return authenticated.status();
  std::string identity = *std::move(authenticated);
  // A call another instance forwarded: in the name of the caller it names, if that instance may forward.
  // (Without TLS every caller is the development identity, forwarded or not.)
  if (std::optional<std::string> caller = CallerNamed(context); caller && options_.insecure_identity.empty()) {
    if (!access_.Allows(identity, "Forward")) {
      return absl::PermissionDeniedError(absl::StrCat("client ", identity, " may not act for another caller"));
    }
    if (caller->empty() || caller->size() > 256) {
      return absl::InvalidArgumentError("the header naming the caller must name one");
    }
    identity = *std::move(caller);
  }
  if (!access_.Allows(identity, method)) {
    return absl::PermissionDeniedError(absl::StrCat("client ", identity, " may not call ", method));
  }
  return identity;
}

// A read's response: sent once the read is done and its audit records, if it has any, are acknowledged.
// Deletes itself when sent.
class RiskServiceImpl::Reply {
 public:
  explicit Reply(grpc::ServerUnaryReactor* reactor) : reactor_(reactor) {}

  // What AuditThen calls when the records are written, or not: the response waits for it. Once a reply.
  Audited Await() {
    waiting_.fetch_add(1, std::memory_order_relaxed);
    return [this](absl::Status audit) {
      audit_ = std::move(audit);
      Arrive();
    };
  }
  // The read itself is done, with `status`.
  void Done(grpc::Status status) {
    read_ = std::move(status);
    Arrive();
  }

 private:
  void Arrive() {
    if (waiting_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    // Nothing is returned without its audit record.
    reactor_->Finish(audit_.ok() ? read_ : ToGrpc(audit_));
    delete this;
  }

  grpc::ServerUnaryReactor* const reactor_;
  std::atomic<int> waiting_{1};
  absl::Status audit_;
  grpc::Status read_;
};

template <typename Request, typename Response>
grpc::ServerUnaryReactor* RiskServiceImpl::Serve(
    grpc::CallbackServerContext* context, const Request* request, Response* response,
    grpc::Status (RiskServiceImpl::*serve)(const grpc::CallbackServerContext&, const Request*, Response*, Reply&)) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto* reply = new Reply(reactor);
  reply->Done((this->*serve)(*context, request, response, *reply));
  return reactor;
}

void RiskServiceImpl::AuditThen(const grpc::ServerContextBase& context, const std::string& identity,
                                absl::string_view method, const std::vector<Read>& reads, const std::string& purpose,
                                Audited done) {
  if (reads.empty()) return done(absl::OkStatus());
  if (absl::Status s = LogReachable(options_.health, "the audit record cannot be written, so nothing is returned");
      !s.ok()) {
    options_.metrics->audit_failures.Get().Inc();
    return done(s);
  }
  if (pending_audits_.fetch_add(1) >= options_.max_pending_audits) {
    --pending_audits_;
    return done(absl::ResourceExhaustedError(
        absl::StrCat("the server is at its limit of ", options_.max_pending_audits,
                     " reads awaiting their audit record; nothing was read: try again shortly")));
  }
  v1::AuditRecord record;
  *record.mutable_at() = ToTimestamp(absl::ToUnixMicros(absl::Now()));
  record.set_identity(identity);
  record.set_method(std::string(method));
  record.set_purpose(purpose);
  record.set_peer(context.peer());
  if (CallerNamed(context)) record.set_forwarded_by(AuthenticatedIdentity(context));
  std::vector<LogRecord> records;
  records.reserve(reads.size());
  for (const Read& read : reads) {
    record.set_victim_id(read.victim_id);
    record.set_resource(read.resource);
    records.push_back({read.victim_id, record.SerializeAsString(), {}});
  }
  log_.AppendThen(options_.audit_topic, std::move(records), Deadline(context),
                  [this, done = std::move(done)](absl::StatusOr<std::vector<Landed>> landed) {
                    --pending_audits_;
                    if (landed.ok()) return done(absl::OkStatus());
                    options_.metrics->audit_failures.Get().Inc();
                    done(absl::UnavailableError(absl::StrCat(
                        "the audit record could not be written, so nothing is returned: ", landed.status().message())));
                  });
}

absl::Status RiskServiceImpl::Audit(const grpc::ServerContextBase& context, const std::string& identity,
                                    absl::string_view method, const std::vector<Read>& reads,
                                    const std::string& purpose) {
  std::promise<absl::Status> outcome;
  AuditThen(context, identity, method, reads, purpose, [&outcome](absl::Status s) { outcome.set_value(std::move(s)); });
  return outcome.get_future().get();
}

std::vector<RiskServiceImpl::Read> RiskServiceImpl::AlertReads(const std::vector<const v1::Alert*>& alerts) {
  std::vector<Read> reads;
  reads.reserve(alerts.size());
  for (const v1::Alert* a : alerts) reads.push_back({a->victim_id(), absl::StrCat("alerts/", a->alert_id())});
  return reads;
}

// Read-your-writes for the other instances: how far this one has applied a partition it owns.
class RiskServiceImpl::PeerServiceImpl final : public v1::PeerService::Service {
 public:
  explicit PeerServiceImpl(RiskServiceImpl* api) : api_(*api) {}
  grpc::Status WaitApplied(grpc::ServerContext* context, const v1::WaitAppliedRequest* request,
                           v1::WaitAppliedResponse*) override {
    // Another instance, by its own certificate (no caller is acting through it here).
    auto identity = api_.Authenticate(*context);
    if (!identity.ok()) return ToGrpc(identity.status());
    if (!api_.access_.Allows(*identity, "Forward")) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          absl::StrCat("client ", *identity, " is not a vigild instance of this group (Forward)"));
    }
    return ToGrpc(api_.WaitApplied(*context, Landed{.partition = request->partition(), .offset = request->offset()}));
  }

 private:
  RiskServiceImpl& api_;
};

RiskServiceImpl::RiskServiceImpl(const StateReader* reader, Log* log, AlertFeed* feed, const AccessPolicy* access,
                                 const RulesConfig* rules, ApiOptions options)
    : reader_(*reader), log_(*log), feed_(feed), access_(*access), rules_(*rules), options_(std::move(options)),
      peer_service_(std::make_unique<PeerServiceImpl>(this)) {}

RiskServiceImpl::~RiskServiceImpl() = default;

grpc::Service* RiskServiceImpl::peer_service() { return peer_service_.get(); }

grpc::Status RiskServiceImpl::RouteVictim(const grpc::ServerContextBase& context, absl::string_view victim_id,
                                          std::string* owner) const {
  owner->clear();
  if (options_.ownership == nullptr || options_.partitions <= 0 || victim_id.empty()) return grpc::Status::OK;
  const int32_t p = KeyPartition(victim_id, options_.partitions);
  auto unavailable = [&](absl::string_view why) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        absl::StrCat("this victim's partition (", p, ") ", why, ": retry shortly"));
  };
  if (options_.ownership->Owns(p)) {
    if (options_.ownership->Restoring(p)) return unavailable("is being restored from the log here (a rebalance)");
    return grpc::Status::OK;
  }
  if (ForwardedFor(context)) return unavailable("has just moved from this instance (a rebalance)");
  if (options_.ownership->Rebalancing()) return unavailable("is being reassigned (a rebalance is under way)");
  Peers* peers = peers_.load();
  if (peers == nullptr) return unavailable("is owned by another instance, and forwarding is off");
  std::optional<std::string> found = peers->OwnerOf(p);
  if (!found) return unavailable("has no owner known yet (a rebalance is under way)");
  *owner = *std::move(found);
  return grpc::Status::OK;
}

template <typename Request, typename Response>
void RiskServiceImpl::ForwardThen(const grpc::ServerContextBase& context, const std::string& owner,
                                  absl::string_view method, const Request& request, const std::string& identity,
                                  Reply& reply, Response* response) {
  // The owner audits; the reply waits for its answer.
  peers_.load()->Call(owner, RiskMethod(method), request, identity, Deadline(context), response,
                      [done = reply.Await()](grpc::Status status) { done(FromGrpc(status)); });
}

absl::StatusOr<std::vector<std::string>> RiskServiceImpl::OthersToAsk(const grpc::ServerContextBase& context) const {
  Peers* peers = peers_.load();
  if (options_.ownership == nullptr) return std::vector<std::string>{};
  // What is not found may be in a partition still catching up here: not an answer yet.
  if (std::optional<int32_t> p = options_.ownership->AnyRestoring()) {
    return absl::UnavailableError(
        absl::StrCat("partition ", *p, " is being restored from the log here (a rebalance): retry shortly"));
  }
  if (peers == nullptr || ForwardedFor(context)) return std::vector<std::string>{};
  if (options_.ownership->Rebalancing()) {
    return absl::UnavailableError("partitions are being reassigned (a rebalance is under way): retry shortly");
  }
  return peers->Others();
}

template <typename Request, typename Response>
grpc::Status RiskServiceImpl::ElsewhereThen(const grpc::ServerContextBase& context, grpc::Status missing,
                                            absl::string_view method, const Request& request,
                                            const std::string& identity, Reply& reply, Response* response) {
  // Held here only if its victim's partition is: another instance may hold it.
  if (missing.error_code() != grpc::StatusCode::NOT_FOUND) return missing;
  absl::StatusOr<std::vector<std::string>> others = OthersToAsk(context);
  if (!others.ok()) return ToGrpc(others.status());
  if (others->empty()) return missing;
  struct Asking {
    std::vector<std::string> others;
    size_t next = 0;
    Request request;
    std::string method, identity;
    absl::Time deadline;
    Peers* peers;
    Response* response;
    Audited done;
    void Ask(std::shared_ptr<Asking> self) {
      peers->Call(others[next++], method, request, identity, deadline, response, [self](grpc::Status status) {
        if (status.error_code() == grpc::StatusCode::NOT_FOUND && self->next < self->others.size()) {
          return self->Ask(self);
        }
        self->done(FromGrpc(status));
      });
    }
  };
  auto asking = std::make_shared<Asking>();
  asking->others = *std::move(others);
  asking->request = request;
  asking->method = RiskMethod(method);
  asking->identity = identity;
  asking->deadline = Deadline(context);
  asking->peers = peers_.load();
  asking->response = response;
  asking->done = reply.Await();
  asking->Ask(asking);
  return grpc::Status::OK;
}

void RiskServiceImpl::GatherAlertsThen(const grpc::ServerContextBase& context, std::vector<std::string> others,
                                       const v1::ListAlertsRequest& request, const std::string& identity,
                                       std::vector<v1::Alert> local, int size, uint64_t fingerprint, Reply& reply,
                                       v1::ListAlertsResponse* response) {
  struct Gathering {
    std::mutex mu;
    std::vector<v1::Alert> alerts;  // this instance's first size + 1, then every other's page
    std::set<std::string> local_ids;
    bool more = false;
    grpc::Status failed;
    size_t pending = 0;
    Audited gathered, audited;
  };
  auto g = std::make_shared<Gathering>();
  for (const v1::Alert& a : local) g->local_ids.insert(a.alert_id());
  g->more = local.size() > static_cast<size_t>(size);
  g->alerts = std::move(local);
  g->pending = others.size();
  g->gathered = reply.Await();  // the others' pages
  g->audited = reply.Await();   // the audit of this instance's share of the merged page
  const std::string purpose = request.purpose();
  for (const std::string& other : others) {
    auto page = std::make_shared<v1::ListAlertsResponse>();
    peers_.load()->Call(
        other, RiskMethod("ListAlerts"), request, identity, Deadline(context), page.get(),
        [this, g, page, size, fingerprint, response, identity, purpose, &context](grpc::Status status) {
          std::unique_lock<std::mutex> lock(g->mu);
          if (!status.ok() && g->failed.ok()) g->failed = status;
          for (v1::Alert& a : *page->mutable_alerts()) g->alerts.push_back(std::move(a));
          g->more = g->more || !page->next_page_token().empty();
          if (--g->pending > 0) return;
          lock.unlock();  // the last answer: merge
          if (!g->failed.ok()) {
            g->audited(absl::OkStatus());
            return g->gathered(absl::Status(static_cast<absl::StatusCode>(g->failed.error_code()),
                                            absl::StrCat("listing every instance's alerts: ",
                                                         g->failed.error_message())));
          }
          std::vector<v1::Alert>& all = g->alerts;
          std::sort(all.begin(), all.end(), [](const v1::Alert& a, const v1::Alert& b) {
            const Micros x = ToMicros(a.at()), y = ToMicros(b.at());
            return x != y ? x > y : a.alert_id() < b.alert_id();
          });
          const bool more = g->more || all.size() > static_cast<size_t>(size);
          if (all.size() > static_cast<size_t>(size)) all.resize(size);
          std::vector<const v1::Alert*> mine;
          for (const v1::Alert& a : all) {
            if (g->local_ids.contains(a.alert_id())) mine.push_back(&a);
          }
          for (const v1::Alert& a : all) *response->add_alerts() = a;
          if (more && !all.empty()) {
            const v1::Alert& last = all.back();
            response->set_next_page_token(Token(fingerprint, absl::StrCat(ToMicros(last.at()), "\n", last.alert_id())));
          }
          // The others audited what they sent; this instance audits its own share of the page.
          AuditThen(context, identity, "ListAlerts", AlertReads(mine), purpose, std::move(g->audited));
          g->gathered(absl::OkStatus());
        });
  }
}

absl::Status RiskServiceImpl::WaitApplied(const grpc::ServerContext& context, const Landed& landed) const {
  if (options_.ownership != nullptr && !options_.ownership->Owns(landed.partition)) {
    // Another instance applies it: asked there (unless this is that question, come to the wrong instance).
    const std::string where = absl::StrCat("recorded at partition ", landed.partition, " offset ", landed.offset);
    Peers* peers = peers_.load();
    std::optional<std::string> owner;
    if (peers == nullptr || ForwardedFor(context) || !(owner = peers->OwnerOf(landed.partition))) {
      return absl::UnavailableError(absl::StrCat(
          where, "; that partition is owned by no instance this one can ask just now (a rebalance): whether it is "
                 "applied cannot be seen here; read it back shortly"));
    }
    v1::WaitAppliedRequest ask;
    ask.set_partition(landed.partition);
    ask.set_offset(landed.offset);
    v1::WaitAppliedResponse applied;
    const grpc::Status waited =
        peers->CallAndWait(*owner, "/vigil.v1.PeerService/WaitApplied", ask, "vigild", Deadline(context), &applied);
    if (waited.ok()) return absl::OkStatus();
    return absl::Status(static_cast<absl::StatusCode>(waited.error_code()),
                        absl::StrCat(where, "; its owner says: ", waited.error_message()));
  }
  const absl::Time deadline = Deadline(context);
  for (;;) {
    if (options_.applied != nullptr) {
      // Woken when vigild commits the partition; a slice at a time, to notice a cancelled call.
      if (options_.applied->WaitPast(landed.partition, landed.offset,
                                     std::min(deadline, absl::Now() + kCancelCheck))) {
        return absl::OkStatus();
      }
    } else {
      VIGIL_ASSIGN_OR_RETURN(int64_t applied, reader_.AppliedUpTo(landed.partition));
      if (applied > landed.offset) return absl::OkStatus();
    }
    if (absl::Now() >= deadline || context.IsCancelled()) {
      return absl::DeadlineExceededError(
          absl::StrCat("recorded at partition ", landed.partition, " offset ", landed.offset,
                       ", but not yet applied by vigild"));
    }
    if (options_.applied == nullptr) absl::SleepFor(kApplyPoll);
  }
}

grpc::Status RiskServiceImpl::ReadVictim(const grpc::CallbackServerContext& context, const std::string& identity,
                                         absl::string_view method, const std::string& victim_id,
                                         const std::string& resource, const std::string& purpose, bool with_state,
                                         Reply& reply, StateReader::Victim* victim) {
  if (grpc::Status s = CheckPurpose(purpose); !s.ok()) return s;
  bool found = false;
  if (with_state) {
    auto v = reader_.FindVictim(victim_id);
    if (!v.ok()) return ToGrpc(v.status());
    if ((found = v->has_value())) *victim = **std::move(v);
  } else {
    auto p = reader_.FindVictimPartition(victim_id);
    if (!p.ok()) return ToGrpc(p.status());
    if ((found = p->has_value())) victim->partition = **p;
  }
  if (!found) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("victims/", victim_id, " not found"));
  AuditThen(context, identity, method, {{victim_id, resource}}, purpose, reply.Await());
  return grpc::Status::OK;
}

grpc::Status RiskServiceImpl::LoadAlert(const std::string& name, v1::Alert* alert) const {
  auto id = ParseName(name, "alerts", "", "name");
  if (!id.ok()) return FieldError(id.status());
  auto found = reader_.FindAlert(*id);
  if (!found.ok()) return ToGrpc(found.status());
  if (!*found) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat(name, " not found"));
  *alert = **std::move(found);
  return grpc::Status::OK;
}

absl::StatusOr<std::vector<v1::RecordEventResponse>> RiskServiceImpl::Record(
    const grpc::ServerContext& context, const std::vector<v1::Event>& events, bool wait_applied,
    const std::vector<LogRecord>& signed_records) {
  VIGIL_RETURN_IF_ERROR(LogReachable(options_.health, "nothing was recorded: retry later with the same event ids"));
  std::vector<LogRecord> records = signed_records;
  if (records.empty()) {
    records.reserve(events.size());
    for (const v1::Event& e : events) records.push_back({e.victim_id(), e.SerializeAsString(), {}});
  }
  VIGIL_ASSIGN_OR_RETURN(std::vector<Landed> landed, log_.Append(options_.events_topic, records, Deadline(context)));
  std::vector<v1::RecordEventResponse> out(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    out[i].set_event_id(events[i].event_id());
    out[i].set_topic(landed[i].topic);
    out[i].set_partition(landed[i].partition);
    out[i].set_offset(landed[i].offset);
  }
  if (wait_applied) {
    VIGIL_RETURN_IF_ERROR(WaitAllApplied(context, landed));
    for (auto& r : out) r.set_applied(true);
  }
  return out;
}

absl::Status RiskServiceImpl::WaitAllApplied(const grpc::ServerContext& context,
                                             const std::vector<Landed>& landed) const {
  // Waiting for the highest offset of each partition covers the rest of it.
  std::map<int32_t, Landed> last;
  for (const Landed& l : landed) {
    auto [it, fresh] = last.try_emplace(l.partition, l);
    if (!fresh && l.offset > it->second.offset) it->second = l;
  }
  for (const auto& [p, l] : last) VIGIL_RETURN_IF_ERROR(WaitApplied(context, l));
  return absl::OkStatus();
}

grpc::Status RiskServiceImpl::RecordEvent(grpc::ServerContext* context, const v1::RecordEventRequest* request,
                                          v1::RecordEventResponse* response) {
  auto identity = Authorize(*context, "RecordEvent");
  if (!identity.ok()) return ToGrpc(identity.status());
  v1::RecordEventRequest checked = *request;
  if (grpc::Status s = CheckRecordable(checked, "event"); !s.ok()) return s;
  if (checked.wait_applied()) {
    // Only the owner of the victim's partition sees it applied: the call goes there.
    std::string owner;
    if (grpc::Status routed = RouteVictim(*context, checked.event().victim_id(), &owner); !routed.ok()) return routed;
    if (!owner.empty()) {
      return peers_.load()->CallAndWait(owner, RiskMethod("RecordEvent"), *request, *identity, Deadline(*context),
                                        response);
    }
  }
  auto out = Record(*context, {checked.event()}, checked.wait_applied());
  if (!out.ok()) return ToGrpc(out.status());
  *response = out->front();
  return grpc::Status::OK;
}

grpc::Status RiskServiceImpl::RecordEvents(grpc::ServerContext* context,
                                           grpc::ServerReader<v1::RecordEventRequest>* reader,
                                           v1::RecordEventsResponse* response) {
  auto identity = Authorize(*context, "RecordEvents");
  if (!identity.ok()) return ToGrpc(identity.status());
  // Published as they are read, a chunk at a time, so that memory is bounded by a chunk, not the stream.
  // Should one fail, those before it are recorded (their results were not returned, but their event ids
  // make sending the whole stream again safe).
  std::vector<v1::Event> chunk;
  std::vector<Landed> landed;
  bool wait_applied = false;
  size_t count = 0;
  auto publish = [&]() -> grpc::Status {
    if (chunk.empty()) return grpc::Status::OK;
    auto out = Record(*context, chunk, /*wait_applied=*/false);
    if (!out.ok()) {
      return ToGrpc(absl::Status(out.status().code(),
                                 absl::StrCat(out.status().message(), " (events[", count - chunk.size(), "] on were not "
                                              "recorded; the ", count - chunk.size(), " before were)")));
    }
    for (auto& r : *out) {
      landed.push_back({r.topic(), r.partition(), r.offset()});
      *response->add_results() = std::move(r);
    }
    chunk.clear();
    return grpc::Status::OK;
  };
  v1::RecordEventRequest request;
  while (reader->Read(&request)) {
    const std::string path = absl::StrCat("events[", count, "]");
    if (count == options_.max_batch) {
      if (grpc::Status p = publish(); !p.ok()) return p;
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("at most ", options_.max_batch, " events in one call (the first ", count,
                                       " were recorded)"));
    }
    if (grpc::Status s = CheckRecordable(request, path); !s.ok()) {
      if (grpc::Status p = publish(); !p.ok()) return p;
      return grpc::Status(s.error_code(),
                          absl::StrCat(s.error_message(), " (the ", count, " events before it were recorded)"),
                          s.error_details());
    }
    wait_applied = wait_applied || request.wait_applied();
    chunk.push_back(std::move(*request.mutable_event()));
    ++count;
    if (chunk.size() == options_.record_chunk) {
      if (grpc::Status p = publish(); !p.ok()) return p;
    }
  }
  if (grpc::Status p = publish(); !p.ok()) return p;
  if (wait_applied) {
    if (absl::Status s = WaitAllApplied(*context, landed); !s.ok()) return ToGrpc(s);
    for (auto& r : *response->mutable_results()) r.set_applied(true);
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RiskServiceImpl::GetTimeline(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request, grpc::ByteBuffer* response) {
  return Serve(context, request, response, &RiskServiceImpl::ServeTimeline);
}

grpc::Status RiskServiceImpl::ServeTimeline(const grpc::CallbackServerContext& context,
                                            const grpc::ByteBuffer* raw_request, grpc::ByteBuffer* response,
                                            Reply& reply) {
  auto identity = Authorize(context, "GetTimeline");
  if (!identity.ok()) return ToGrpc(identity.status());
  v1::GetTimelineRequest parsed;
  grpc::ByteBuffer raw = *raw_request;  // shares its slices
  if (!grpc::SerializationTraits<v1::GetTimelineRequest>::Deserialize(&raw, &parsed).ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the request is not a vigil.v1.GetTimelineRequest");
  }
  const v1::GetTimelineRequest* request = &parsed;
  auto victim_id = ParseName(request->parent(), "victims", "", "parent");
  if (!victim_id.ok()) return FieldError(victim_id.status());
  auto size = PageSize(request->page_size(), kDefaultTimelinePage, options_.max_page_size);
  if (!size.ok()) return FieldError(size.status());
  if (grpc::Status s = CheckTime("start_time", request->start_time(), request->has_start_time()); !s.ok()) return s;
  if (grpc::Status s = CheckTime("end_time", request->end_time(), request->has_end_time()); !s.ok()) return s;
  const Micros start = TimeOr(request->start_time(), request->has_start_time(), INT64_MIN);
  const Micros end = TimeOr(request->end_time(), request->has_end_time(), INT64_MAX);
  if (start > end) return BadField("end_time", "must not be before start_time");
  const uint64_t fingerprint = RequestFingerprint(*request);
  std::string resume;
  if (!request->page_token().empty()) {
    auto r = Untoken(request->page_token(), fingerprint);
    if (!r.ok()) return FieldError(r.status());
    resume = *std::move(r);
  }
  std::string owner;
  if (grpc::Status routed = RouteVictim(context, *victim_id, &owner); !routed.ok()) return routed;
  if (!owner.empty()) {
    // The request as received, the answer as sent: bytes both ways.
    peers_.load()->Forward(owner, RiskMethod("GetTimeline"), *raw_request, *identity, Deadline(context),
                           [response, done = reply.Await()](grpc::Status status, grpc::ByteBuffer answer) {
                             *response = std::move(answer);
                             done(FromGrpc(status));
                           });
    return grpc::Status::OK;
  }
  StateReader::Victim victim;
  grpc::Status read = ReadVictim(context, *identity, "GetTimeline", *victim_id, request->parent(),
                                 request->purpose(), /*with_state=*/false, reply, &victim);
  if (!read.ok()) return read;
  auto page = reader_.Timeline(victim.partition, *victim_id, start, end, resume, *size);
  if (!page.ok()) return ToGrpc(page.status());
  // The response's encoding, written here: each stored event as it is, then the token.
  std::string body;
  {
    using google::protobuf::internal::WireFormatLite;
    google::protobuf::io::StringOutputStream stream(&body);
    google::protobuf::io::CodedOutputStream out(&stream);
    for (const std::string& e : page->events) {
      WireFormatLite::WriteBytes(v1::GetTimelineResponse::kEventsFieldNumber, e, &out);
    }
    if (!page->resume.empty()) {
      WireFormatLite::WriteString(v1::GetTimelineResponse::kNextPageTokenFieldNumber,
                                  Token(fingerprint, page->resume), &out);
    }
  }
  grpc::Slice slice(body);
  *response = grpc::ByteBuffer(&slice, 1);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RiskServiceImpl::GetRiskProfile(grpc::CallbackServerContext* context,
                                                          const v1::GetRiskProfileRequest* request,
                                                          v1::RiskProfile* response) {
  return Serve(context, request, response, &RiskServiceImpl::ServeRiskProfile);
}

grpc::Status RiskServiceImpl::ServeRiskProfile(const grpc::CallbackServerContext& context,
                                               const v1::GetRiskProfileRequest* request, v1::RiskProfile* response,
                                               Reply& reply) {
  auto identity = Authorize(context, "GetRiskProfile");
  if (!identity.ok()) return ToGrpc(identity.status());
  auto victim_id = ParseName(request->name(), "victims", "/riskProfile", "name");
  if (!victim_id.ok()) return FieldError(victim_id.status());
  std::string owner;
  if (grpc::Status routed = RouteVictim(context, *victim_id, &owner); !routed.ok()) return routed;
  if (!owner.empty()) {
    ForwardThen(context, owner, "GetRiskProfile", *request, *identity, reply, response);
    return grpc::Status::OK;
  }
  StateReader::Victim victim;
  grpc::Status read = ReadVictim(context, *identity, "GetRiskProfile", *victim_id, request->name(),
                                 request->purpose(), /*with_state=*/true, reply, &victim);
  if (!read.ok()) return read;
  *response = BuildRiskProfile(victim.state, rules_);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RiskServiceImpl::ListAlerts(grpc::CallbackServerContext* context,
                                                      const v1::ListAlertsRequest* request,
                                                      v1::ListAlertsResponse* response) {
  return Serve(context, request, response, &RiskServiceImpl::ServeListAlerts);
}

grpc::Status RiskServiceImpl::ServeListAlerts(const grpc::CallbackServerContext& context,
                                              const v1::ListAlertsRequest* request, v1::ListAlertsResponse* response,
                                              Reply& reply) {
  auto identity = Authorize(context, "ListAlerts");
  if (!identity.ok()) return ToGrpc(identity.status());
  if (grpc::Status s = CheckPurpose(request->purpose()); !s.ok()) return s;
  auto size = PageSize(request->page_size(), kDefaultAlertPage, options_.max_page_size);
  if (!size.ok()) return FieldError(size.status());
  if (grpc::Status s = CheckRule(request->rule()); !s.ok()) return s;
  if (grpc::Status s = CheckTime("start_time", request->start_time(), request->has_start_time()); !s.ok()) return s;
  if (grpc::Status s = CheckTime("end_time", request->end_time(), request->has_end_time()); !s.ok()) return s;
  // One victim's alerts are where the victim is.
  std::string owner;
  if (grpc::Status routed = RouteVictim(context, request->victim_id(), &owner); !routed.ok()) return routed;
  if (!owner.empty()) {
    ForwardThen(context, owner, "ListAlerts", *request, *identity, reply, response);
    return grpc::Status::OK;
  }
  if (request->victim_id().empty() && options_.ownership != nullptr) {
    if (std::optional<int32_t> p = options_.ownership->AnyRestoring()) {  // the list would miss its alerts
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("partition ", *p, " is being restored from the log here (a rebalance): "
                                       "retry shortly"));
    }
  }
  const uint64_t fingerprint = RequestFingerprint(*request);
  // The page starts after the token's alert in the order.
  StateReader::AlertQuery query;
  query.victim_id = request->victim_id();
  query.start = TimeOr(request->start_time(), request->has_start_time(), INT64_MIN);
  query.end = TimeOr(request->end_time(), request->has_end_time(), INT64_MAX);
  if (!request->page_token().empty()) {
    auto rest = Untoken(request->page_token(), fingerprint);
    if (!rest.ok()) return FieldError(rest.status());
    std::pair<std::string, std::string> parts = absl::StrSplit(*rest, absl::MaxSplits('\n', 1));
    Micros at = 0;
    if (!absl::SimpleAtoi(parts.first, &at) || parts.second.empty()) {
      return FieldError(absl::InvalidArgumentError("page_token: malformed"));
    }
    query.after.emplace(at, parts.second);
  }
  // The first `size + 1` matches: one more than the page says whether there is a next.
  auto listed = reader_.ListAlerts(query, [&](const v1::Alert& a) { return Matches(a, *request); }, *size + 1);
  if (!listed.ok()) return ToGrpc(listed.status());
  std::vector<v1::Alert>& kept = *listed;
  // Every victim's: this instance's partitions and every other instance's, merged (the order and the token are
  // the same everywhere).
  if (request->victim_id().empty()) {
    auto others = OthersToAsk(context);
    if (!others.ok()) return ToGrpc(others.status());
    if (!others->empty()) {
      GatherAlertsThen(context, *std::move(others), *request, *identity, std::move(kept), *size, fingerprint,
                       reply, response);
      return grpc::Status::OK;
    }
  }
  const bool more = kept.size() > static_cast<size_t>(*size);
  if (more) kept.resize(*size);
  std::vector<const v1::Alert*> page;
  for (const v1::Alert& a : kept) page.push_back(&a);
  AuditThen(context, *identity, "ListAlerts", AlertReads(page), request->purpose(), reply.Await());
  for (v1::Alert& a : kept) *response->add_alerts() = std::move(a);
  if (more) {
    const v1::Alert& last = response->alerts(response->alerts_size() - 1);
    response->set_next_page_token(Token(fingerprint, absl::StrCat(ToMicros(last.at()), "\n", last.alert_id())));
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RiskServiceImpl::GetAlert(grpc::CallbackServerContext* context,
                                                    const v1::GetAlertRequest* request, v1::Alert* response) {
  return Serve(context, request, response, &RiskServiceImpl::ServeAlert);
}

grpc::Status RiskServiceImpl::ServeAlert(const grpc::CallbackServerContext& context, const v1::GetAlertRequest* request,
                                         v1::Alert* response, Reply& reply) {
  auto identity = Authorize(context, "GetAlert");
  if (!identity.ok()) return ToGrpc(identity.status());
  if (grpc::Status s = CheckPurpose(request->purpose()); !s.ok()) return s;
  v1::Alert alert;
  if (grpc::Status s = LoadAlert(request->name(), &alert); !s.ok()) {
    return ElsewhereThen(context, s, "GetAlert", *request, *identity, reply, response);
  }
  AuditThen(context, *identity, "GetAlert", AlertReads({&alert}), request->purpose(), reply.Await());
  *response = std::move(alert);
  return grpc::Status::OK;
}

grpc::Status RiskServiceImpl::AcknowledgeAlert(grpc::ServerContext* context,
                                               const v1::AcknowledgeAlertRequest* request, v1::Alert* response) {
  auto identity = Authorize(*context, "AcknowledgeAlert");
  if (!identity.ok()) return ToGrpc(identity.status());
  v1::Alert current;
  if (grpc::Status s = LoadAlert(request->name(), &current); !s.ok()) {
    if (s.error_code() != grpc::StatusCode::NOT_FOUND) return s;
    auto others = OthersToAsk(*context);
    if (!others.ok()) return ToGrpc(others.status());
    for (const std::string& other : *others) {
      grpc::Status answered = peers_.load()->CallAndWait(other, RiskMethod("AcknowledgeAlert"), *request, *identity,
                                                         Deadline(*context), response);
      if (answered.error_code() != grpc::StatusCode::NOT_FOUND) return answered;
    }
    return s;
  }
  if (request->note().size() > kMaxTextLength) {
    return BadField("note", absl::StrCat("longer than ", kMaxTextLength, " bytes"));
  }
  if (current.state() == v1::RESOLVED) {
    return FailedPrecondition("ALERT_STATE", request->name(), "the alert is resolved: there is nothing to acknowledge");
  }
  if (current.state() == v1::ACKNOWLEDGED) {
    if (absl::Status s = Audit(*context, *identity, "AcknowledgeAlert", AlertReads({&current}), kAcknowledgePurpose);
        !s.ok()) {
      return ToGrpc(s);
    }
    *response = current;
    return grpc::Status::OK;
  }
  // One acknowledgement per revision: a retried call has the same event id and is applied once.
  v1::Event ack;
  ack.set_event_id(absl::StrCat("ack-", current.alert_id(), "-r", current.revision()));
  ack.set_victim_id(current.victim_id());
  ack.set_incident_id(current.incident_id());
  ack.set_force(current.force());
  ack.set_source("vigil-api");
  ack.set_actor(*identity);
  *ack.mutable_occurred_at() = ToTimestamp(std::max(absl::ToUnixMicros(absl::Now()), ToMicros(current.at())));
  ack.mutable_escalation_acknowledged()->set_alert_id(current.alert_id());
  ack.mutable_escalation_acknowledged()->set_acknowledged_by(*identity);
  ack.mutable_escalation_acknowledged()->set_note(request->note());
  if (absl::Status s = ValidateEvent(ack); !s.ok()) return ToGrpc(absl::InternalError(s.message()));
  if (options_.signer == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this server has no signing key: it cannot acknowledge");
  }
  // Signed, so that vigild knows it was made here, in the authenticated caller's name.
  const std::string bytes = ack.SerializeAsString();
  auto recorded = Record(*context, {ack}, /*wait_applied=*/true,
                         {{ack.victim_id(), bytes, {{kHeaderSignature, options_.signer->Sign(bytes)}}}});
  if (!recorded.ok()) return ToGrpc(recorded.status());
  if (grpc::Status s = LoadAlert(request->name(), response); !s.ok()) return s;
  if (response->state() == v1::FIRING || response->state() == v1::ESCALATED) {
    response->Clear();
    return FailedPrecondition("ALERT_STATE", request->name(),
                              "the acknowledgement was recorded but vigild did not apply it (see the dead-letter topic)");
  }
  if (absl::Status s = Audit(*context, *identity, "AcknowledgeAlert", AlertReads({response}), kAcknowledgePurpose);
      !s.ok()) {
    response->Clear();
    return ToGrpc(s);
  }
  return grpc::Status::OK;
}

grpc::Status RiskServiceImpl::WatchAlerts(grpc::ServerContext* context, const v1::WatchAlertsRequest* request,
                                          grpc::ServerWriter<v1::WatchAlertsResponse>* writer) {
  auto identity = Authorize(*context, "WatchAlerts");
  if (!identity.ok()) return ToGrpc(identity.status());
  if (feed_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this server has no alert feed");
  if (grpc::Status s = CheckPurpose(request->purpose()); !s.ok()) return s;
  if (grpc::Status s = CheckRule(request->rule()); !s.ok()) return s;
  struct Slot {
    std::atomic<int>& open;
    ~Slot() { --open; }
  } slot{watch_streams_};
  if (++watch_streams_ > options_.max_watch_streams) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("at most ", options_.max_watch_streams,
                                     " WatchAlerts streams are served at once; try again later"));
  }
  auto sub = feed_->Subscribe(request->cursor());
  if (!sub.ok()) {
    return sub.status().code() == absl::StatusCode::kInvalidArgument ? FieldError(sub.status()) : ToGrpc(sub.status());
  }
  // The headers say the watch is placed: whatever is committed from here on reaches this stream (the console
  // reads what is already open only then).
  writer->SendInitialMetadata();
  v1::ListAlertsRequest filter;
  *filter.mutable_levels() = request->levels();
  filter.set_rule(request->rule());
  filter.set_force(request->force());
  // Transitions go out in batches of what has arrived, each batch audited in one append before it leaves.
  std::vector<v1::WatchAlertsResponse> batch;
  while (!context->IsCancelled()) {
    auto next = (*sub)->Next(batch.empty() ? 200 : 0);
    if (!next.ok()) return ToGrpc(next.status());
    if (*next) {
      // A watcher that resumes reads the filtered-out transitions again, and filters them out again.
      if (!Matches((*next)->first, filter)) continue;
      v1::WatchAlertsResponse& response = batch.emplace_back();
      *response.mutable_alert() = std::move((*next)->first);
      response.set_cursor(std::move((*next)->second));
      if (batch.size() < kWatchBatch) continue;
    }
    if (batch.empty()) continue;
    std::vector<const v1::Alert*> alerts;
    for (const auto& r : batch) alerts.push_back(&r.alert());
    if (absl::Status s = Audit(*context, *identity, "WatchAlerts", AlertReads(alerts), request->purpose()); !s.ok()) {
      return ToGrpc(s);  // the client resumes from the last cursor it had: nothing unaudited left
    }
    for (const auto& r : batch) {
      if (!writer->Write(r)) return grpc::Status::OK;  // the client has gone
    }
    batch.clear();
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* RiskServiceImpl::ExplainAlert(grpc::CallbackServerContext* context,
                                                        const v1::ExplainAlertRequest* request,
                                                        v1::AlertExplanation* response) {
  return Serve(context, request, response, &RiskServiceImpl::ServeExplanation);
}

grpc::Status RiskServiceImpl::ServeExplanation(const grpc::CallbackServerContext& context,
                                               const v1::ExplainAlertRequest* request, v1::AlertExplanation* response,
                                               Reply& reply) {
  auto identity = Authorize(context, "ExplainAlert");
  if (!identity.ok()) return ToGrpc(identity.status());
  v1::Alert a;
  if (grpc::Status s = LoadAlert(request->name(), &a); !s.ok()) {
    return ElsewhereThen(context, s, "ExplainAlert", *request, *identity, reply, response);
  }
  // The evidence is the victim's data: read as such (purpose, audit).
  StateReader::Victim victim;
  grpc::Status read = ReadVictim(context, *identity, "ExplainAlert", a.victim_id(), request->name(),
                                 request->purpose(), /*with_state=*/false, reply, &victim);
  if (!read.ok()) return read;
  std::vector<std::string> ids(a.evidence_event_ids().begin(), a.evidence_event_ids().end());
  auto events = reader_.Events(victim.partition, a.victim_id(), ids);
  if (!events.ok()) return ToGrpc(events.status());
  for (v1::Event& e : *events) *response->add_evidence() = std::move(e);
  *response->mutable_alert() = a;
  auto transitions = reader_.AlertTransitions(victim.partition, a.alert_id());
  if (!transitions.ok()) return ToGrpc(transitions.status());
  for (v1::Alert& t : *transitions) {
    // Up to the transition read above (a later one may have been committed since).
    if (t.revision() <= a.revision()) *response->add_transitions() = std::move(t);
  }
  // The settings of the version the alert was raised under, for its force.
  const RulesConfig* version = &rules_;
  std::optional<RulesConfig> stored;
  if (!a.rules_version().empty() && a.rules_version() != rules_.version()) {
    auto yaml = reader_.RulesYaml(victim.partition, a.rules_version());
    if (!yaml.ok()) return ToGrpc(yaml.status());
    if (*yaml) {
      absl::StatusOr<RulesConfig> parsed = ParseRulesYaml(**yaml, a.rules_version());
      if (parsed.ok()) {
        parsed->set_version(a.rules_version());
        stored = *std::move(parsed);
        version = &*stored;
      }
    }
  }
  const RulesConfig& config = version->For(a.force());
  RuleId rule;
  if (RuleFromName(a.rule(), &rule)) {
    const RuleSettings& r = config.rule(rule);
    v1::RuleSettings* out = response->mutable_rule_settings();
    auto duration = [](Micros m) { return TimeUtil::MicrosecondsToDuration(m); };
    out->set_rule(a.rule());
    out->set_enabled(r.enabled);
    out->set_level(r.level);
    *out->mutable_acknowledge_within() = duration(r.acknowledge_within);
    out->set_count(r.count);
    if (r.window) *out->mutable_window() = duration(r.window);
    if (r.deadline) *out->mutable_deadline() = duration(r.deadline);
    if (r.immediate_deadline) *out->mutable_immediate_deadline() = duration(r.immediate_deadline);
    if (r.priority_deadline) *out->mutable_priority_deadline() = duration(r.priority_deadline);
    if (r.before) *out->mutable_before() = duration(r.before);
    out->set_threshold(config.Threshold(rule));
    out->set_rules_version(config.version());
    if (&config != version) out->set_force(a.force());
  }
  return grpc::Status::OK;
}

}  // namespace vigil
