// RiskService in process: a real gRPC server (plaintext, and mutual TLS with
// certificates made for the run) over a real RocksDB in a temp directory. The
// log is local: events written through the API are applied at once by the same
// partition pipeline vigild runs, so read-your-writes is real here too. Kafka
// itself is covered by tests/integration/api_test.py.
#include "services/escalation/api/risk_service.h"

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "common/fingerprint.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "services/escalation/api/api_server.h"
#include "services/escalation/api/peers.h"
#include "services/escalation/engine/validate.h"
#include "services/escalation/pipeline/partition.h"
#include "services/synthetic/synthetic_stream.h"
#include "tests/testing/signing.h"
#include "tests/testing/builders.h"
#include "tests/testing/local_log.h"
#include "tests/testing/test_dir.h"

namespace vigil {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::Ev;
using testing::LocalLog;

constexpr char kAccess[] = R"(
roles:
  recorder: [RecordEvent, RecordEvents]
  supervisor: [GetTimeline, GetRiskProfile, ListAlerts, GetAlert, WatchAlerts, ExplainAlert, AcknowledgeAlert]
  peer: [Forward]
clients:
  command-and-control: [recorder]
  supervisor-console: [supervisor, recorder]
  vigild-peer: [peer]
)";

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class RiskServiceTest : public ::testing::Test {
 protected:
  RiskServiceTest() : engine_(RulesConfig::Defaults()) {
    store_ = *Store::Open((dir_ / "db").string());
    log_ = std::make_unique<LocalLog>(store_.get(), &engine_, &topics_, &admission_);
    reader_ = std::make_unique<StateReader>(store_.get());
    access_ = *AccessPolicy::Parse(kAccess, "test");
  }
  ~RiskServiceTest() override {
    log_->Release();  // a read still awaiting its audit would hold its server's shutdown
    for (auto& s : servers_) s.server->Shutdown();
  }

  // A plaintext server where every caller is `identity`, and a stub for it.
  std::unique_ptr<v1::RiskService::Stub> Serve(const std::string& identity, int max_message_bytes = 4 << 20) {
    ApiOptions options;
    options.insecure_identity = identity;
    options.default_wait = absl::Seconds(2);
    options.signer = &testing::TestSigner();
    options.metrics = &metrics_;
    ApiServerOptions server;
    server.listen = "127.0.0.1:0";
    server.insecure = true;
    server.max_message_bytes = max_message_bytes;
    server.metrics = &metrics_;
    return Start(options, server, grpc::InsecureChannelCredentials());
  }

  std::unique_ptr<v1::RiskService::Stub> Start(const ApiOptions& options, const ApiServerOptions& server,
                                               std::shared_ptr<grpc::ChannelCredentials> credentials,
                                               const std::string& host = "127.0.0.1") {
    services_.push_back(std::make_unique<RiskServiceImpl>(reader_.get(), log_.get(), nullptr, &access_,
                                                          &engine_.rules(), options));
    auto started = StartApiServer(server, services_.back().get());
    EXPECT_TRUE(started.ok()) << started.status();
    const int port = started->port;
    servers_.push_back(*std::move(started));
    return v1::RiskService::NewStub(grpc::CreateChannel(absl::StrCat(host, ":", port), credentials));
  }

  // Records events through the API, waiting until applied.
  void Record(v1::RiskService::Stub& stub, const std::vector<v1::Event>& events) {
    for (const auto& e : events) {
      grpc::ClientContext context;
      v1::RecordEventRequest request;
      *request.mutable_event() = e;
      request.set_wait_applied(true);
      v1::RecordEventResponse response;
      grpc::Status s = stub.RecordEvent(&context, request, &response);
      ASSERT_TRUE(s.ok()) << s.error_message();
      ASSERT_TRUE(response.applied());
    }
  }

  // Two calls in a day and an urgent arrest: repeat-calls and arrest alerts for V1; one call for V2.
  std::vector<v1::Event> Day() {
    return {Ev("c1").At("09:00").Call(false), Ev("c2").At("10:00").Call(false),
            Ev("a1").At("10:05").ArrestRequested("R1"), Ev("x1").Victim("V2").Incident("I2").At("11:00").Call(false),
            Ev("c3").At("12:00").Call(false)};
  }

  // The id of the stored alert of this rule ("" when there is none).
  std::string AlertId(const std::string& rule) {
    std::string id;
    EXPECT_TRUE(reader_->ForEachAlert([&](const v1::Alert& a) {
      if (a.rule() == rule) id = a.alert_id();
      return true;
    }).ok());
    return id;
  }

  std::vector<v1::AuditRecord> Audits() {
    std::vector<v1::AuditRecord> out;
    for (const auto& bytes : log_->Written(ApiOptions().audit_topic)) out.emplace_back().ParseFromString(bytes);
    return out;
  }

  testing::TestDir dir_{"api"};
  Engine engine_;
  Topics topics_;
  const AdmissionPolicy admission_ = testing::TestAdmission();
  std::unique_ptr<Store> store_;
  std::unique_ptr<LocalLog> log_;
  std::unique_ptr<StateReader> reader_;
  AccessPolicy access_;
  MetricsRegistry registry_;
  VigilMetrics metrics_{&registry_};
  std::vector<std::unique_ptr<RiskServiceImpl>> services_;
  std::vector<ApiServer> servers_;
};

// The field violations in a status's google.rpc.BadRequest detail.
std::vector<std::string> Violations(const grpc::Status& s) {
  google::rpc::Status status;
  std::vector<std::string> out;
  if (!status.ParseFromString(s.error_details())) return out;
  for (const auto& any : status.details()) {
    google::rpc::BadRequest bad;
    if (!any.UnpackTo(&bad)) continue;
    for (const auto& v : bad.field_violations()) out.push_back(v.field());
  }
  return out;
}

TEST_F(RiskServiceTest, RecordEventLandsAndIsAppliedBeforeItReturns) {
  auto stub = Serve("supervisor-console");
  grpc::ClientContext context;
  v1::RecordEventRequest request;
  *request.mutable_event() = Ev("c1").At("09:00").Call();
  request.set_wait_applied(true);
  v1::RecordEventResponse response;
  ASSERT_TRUE(stub->RecordEvent(&context, request, &response).ok());
  EXPECT_EQ(response.event_id(), "c1");
  EXPECT_EQ(response.topic(), "vigil.events");
  EXPECT_TRUE(response.applied());
  auto applied = reader_->AppliedUpTo(response.partition());
  ASSERT_TRUE(applied.ok());
  EXPECT_GT(*applied, response.offset());
  auto victim = reader_->FindVictim("V1");
  ASSERT_TRUE(victim.ok() && victim->has_value());
}

TEST_F(RiskServiceTest, InvalidEventsAreRefusedWithTheFieldAtFault) {
  auto stub = Serve("supervisor-console");
  v1::RecordEventRequest request;
  v1::RecordEventResponse response;
  {
    grpc::ClientContext context;
    *request.mutable_event() = Ev("g1").Graded(v1::IncidentGraded::GRADE_UNSPECIFIED);
    grpc::Status s = stub->RecordEvent(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(Violations(s), ElementsAre("event.incident_graded.grade"));
  }
  {
    grpc::ClientContext context;
    request.clear_event();
    grpc::Status s = stub->RecordEvent(&context, request, &response);
    EXPECT_THAT(Violations(s), ElementsAre("event"));
  }
  {
    grpc::ClientContext context;
    *request.mutable_event() = Ev("t1");
    request.mutable_event()->mutable_clock_tick();
    grpc::Status s = stub->RecordEvent(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("vigild only"));
  }
  EXPECT_FALSE(reader_->FindVictim("V1")->has_value());  // nothing was written
}

TEST_F(RiskServiceTest, RecordEventsPublishesAsItReadsAndStopsAtTheFirstInvalidEvent) {
  auto stub = Serve("supervisor-console");
  {
    grpc::ClientContext context;
    v1::RecordEventsResponse response;
    auto writer = stub->RecordEvents(&context, &response);
    v1::RecordEventRequest r;
    *r.mutable_event() = Ev("c1").At("09:00").Call();
    writer->Write(r);
    *r.mutable_event() = Ev("bad").At("09:10");  // no payload
    writer->Write(r);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    ASSERT_EQ(Violations(s).size(), 1u);
    EXPECT_THAT(Violations(s)[0], ::testing::StartsWith("events[1]"));
    // Published as it streamed: what came before the invalid event is recorded, and the message says so.
    EXPECT_THAT(s.error_message(), HasSubstr("the 1 events before it were recorded"));
    EXPECT_TRUE(reader_->FindVictim("V1")->has_value());
  }
  grpc::ClientContext context;
  v1::RecordEventsResponse response;
  auto writer = stub->RecordEvents(&context, &response);
  for (const auto& e : Day()) {
    v1::RecordEventRequest r;
    *r.mutable_event() = e;
    r.set_wait_applied(true);
    writer->Write(r);
  }
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  ASSERT_EQ(response.results_size(), 5);
  EXPECT_EQ(response.results(3).event_id(), "x1");
  for (const auto& r : response.results()) EXPECT_TRUE(r.applied());
  EXPECT_TRUE(reader_->FindVictim("V2")->has_value());
}

TEST_F(RiskServiceTest, TimelinePagesThroughEventsInTimeOrderAndIsAudited) {
  auto stub = Serve("supervisor-console");
  // Recorded out of time order: the timeline is in occurred_at order all the same.
  Record(*stub, {Ev("c2").At("10:00").Call(false), Ev("c1").At("09:00").Call(false),
                 Ev("c3").At("12:00").Call(false), Ev("m1").At("09:30").Marker("S1", v1::MarkerMatched::VIOLENCE)});
  v1::GetTimelineRequest request;
  request.set_parent("victims/V1");
  request.set_purpose("review before a MARAC meeting");
  request.set_page_size(3);
  std::vector<std::string> ids;
  v1::GetTimelineResponse page;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetTimeline(&context, request, &page).ok());
  }
  for (const auto& e : page.events()) ids.push_back(e.event_id());
  ASSERT_FALSE(page.next_page_token().empty());
  request.set_page_token(page.next_page_token());
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetTimeline(&context, request, &page).ok());
  }
  for (const auto& e : page.events()) ids.push_back(e.event_id());
  EXPECT_TRUE(page.next_page_token().empty());
  EXPECT_THAT(ids, ElementsAre("c1", "m1", "c2", "c3"));

  // A time range: 09:30 <= occurred_at < 12:00.
  v1::GetTimelineRequest ranged;
  ranged.set_parent("victims/V1");
  ranged.set_purpose("review");
  *ranged.mutable_start_time() = ToTimestamp(testing::T("09:30"));
  *ranged.mutable_end_time() = ToTimestamp(testing::T("12:00"));
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetTimeline(&context, ranged, &page).ok());
  }
  ids.clear();
  for (const auto& e : page.events()) ids.push_back(e.event_id());
  EXPECT_THAT(ids, ElementsAre("m1", "c2"));

  // Each read was audited: who, which victim, why.
  auto audits = Audits();
  ASSERT_EQ(audits.size(), 3u);
  EXPECT_EQ(audits[0].identity(), "supervisor-console");
  EXPECT_EQ(audits[0].method(), "GetTimeline");
  EXPECT_EQ(audits[0].victim_id(), "V1");
  EXPECT_EQ(audits[0].purpose(), "review before a MARAC meeting");
  EXPECT_GT(audits[0].at().seconds(), 0);
}

TEST_F(RiskServiceTest, TimelineErrors) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  auto call = [&](v1::GetTimelineRequest r) {
    grpc::ClientContext context;
    v1::GetTimelineResponse response;
    return stub->GetTimeline(&context, r, &response);
  };
  v1::GetTimelineRequest r;
  r.set_parent("victims/V1");
  grpc::Status s = call(r);  // no purpose
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(Violations(s), ElementsAre("purpose"));
  for (const char* control : {"review\n", "review before\ta MARAC meeting", "review\x7f"}) {
    r.set_purpose(control);
    EXPECT_THAT(Violations(call(r)), ElementsAre("purpose")) << control;
  }
  r.set_purpose("review");
  r.set_parent("V1");
  EXPECT_THAT(Violations(call(r)), ElementsAre("parent"));
  r.set_parent("victims/NOBODY");
  EXPECT_EQ(call(r).error_code(), grpc::StatusCode::NOT_FOUND);
  r.set_parent("victims/V1");
  r.set_page_size(-1);
  EXPECT_THAT(Violations(call(r)), ElementsAre("page_size"));
  r.set_page_size(0);
  r.set_page_token("not-a-token");
  EXPECT_THAT(Violations(call(r)), ElementsAre("page_token"));
  EXPECT_TRUE(Audits().empty());  // refused reads read nothing
}

TEST_F(RiskServiceTest, AReadFailsWhenItsAuditRecordCannotBeWritten) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  log_->Fail(ApiOptions().audit_topic);
  grpc::ClientContext context;
  v1::GetRiskProfileRequest r;
  r.set_name("victims/V1/riskProfile");
  r.set_purpose("review");
  v1::RiskProfile profile;
  grpc::Status s = stub->GetRiskProfile(&context, r, &profile);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("audit"));
  EXPECT_TRUE(profile.victim_id().empty());
  // Counted: the audit failure, and each call by method and code.
  EXPECT_EQ(metrics_.audit_failures.Get().value(), 1);
  EXPECT_EQ(metrics_.api_requests.With({"vigil.v1.RiskService/GetRiskProfile", "UNAVAILABLE"}).value(), 1);
  EXPECT_EQ(metrics_.api_requests.With({"vigil.v1.RiskService/RecordEvent", "OK"}).value(), 1);
  EXPECT_EQ(metrics_.api_request_seconds.With({"vigil.v1.RiskService/GetRiskProfile"}).count(), 1u);
  EXPECT_THAT(registry_.Render(), Not(HasSubstr("V1")));  // no victim in any label
}

TEST_F(RiskServiceTest, AVictimIsAnsweredOnlyWhereItsPartitionIsOwnedAndRestored) {
  // This instance's store holds V1, in the partition its key places it in.
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  const int32_t p = KeyPartition("V1", LocalLog::kPartitions);
  Ownership owned;
  ApiOptions options;
  options.insecure_identity = "supervisor-console";
  options.ownership = &owned;
  options.partitions = LocalLog::kPartitions;
  ApiServerOptions server;
  server.listen = "127.0.0.1:0";
  server.insecure = true;
  StateReader reader(store_.get(), &owned);
  services_.push_back(std::make_unique<RiskServiceImpl>(&reader, log_.get(), nullptr, &access_, &engine_.rules(),
                                                        options));
  auto started = StartApiServer(server, services_.back().get());
  ASSERT_TRUE(started.ok());
  auto owned_stub = v1::RiskService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", started->port), grpc::InsecureChannelCredentials()));
  servers_.push_back(*std::move(started));
  auto profile = [&](std::string* message) {
    grpc::ClientContext context;
    v1::GetRiskProfileRequest r;
    r.set_name("victims/V1/riskProfile");
    r.set_purpose("review");
    v1::RiskProfile out;
    grpc::Status s = owned_stub->GetRiskProfile(&context, r, &out);
    *message = s.error_message();
    return s.error_code();
  };
  std::string why;
  // Before any assignment: a rebalance is under way.
  EXPECT_EQ(profile(&why), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(why, HasSubstr("rebalance"));
  // Another partition owned: V1's is another instance's, and there is no one to forward to.
  owned.Assigned({(p + 1) % LocalLog::kPartitions});
  EXPECT_EQ(profile(&why), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(why, HasSubstr("owned by another instance"));
  // Owned but still restoring: not answered from a copy that is behind.
  owned.Assigned({p}, {p});
  EXPECT_EQ(profile(&why), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(why, HasSubstr("being restored"));
  owned.Restored(p);
  EXPECT_EQ(profile(&why), grpc::StatusCode::OK) << why;
  // Handed over: the copy in this store is never read again.
  owned.Revoked();
  EXPECT_EQ(profile(&why), grpc::StatusCode::UNAVAILABLE);
  auto found = reader.FindVictim("V1");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
}

// A timeline read on the callback API: its outcome, once it arrives.
struct PendingRead {
  grpc::ClientContext context;
  v1::GetTimelineRequest request;
  v1::GetTimelineResponse response;
  std::promise<grpc::Status> status;
  std::future<grpc::Status> outcome = status.get_future();

  PendingRead(v1::RiskService::Stub& stub, const std::string& victim) {
    request.set_parent("victims/" + victim);
    request.set_purpose("review");
    stub.async()->GetTimeline(&context, &request, &response, [this](grpc::Status s) { status.set_value(s); });
  }
  bool Answered() { return outcome.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
};

// Waits (up to 10 s) until the log holds n appends.
bool AwaitHeld(LocalLog& log, size_t n) {
  for (int i = 0; i < 1000 && log.Held() < n; ++i) absl::SleepFor(absl::Milliseconds(10));
  return log.Held() == n;
}

TEST_F(RiskServiceTest, AReadIsAnsweredOnlyOnceItsAuditRecordIsAcknowledged) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false), Ev("c2").At("10:00").Call(false)});
  log_->Hold(ApiOptions().audit_topic);
  PendingRead read(*stub, "V1");
  ASSERT_TRUE(AwaitHeld(*log_, 1));  // the record is produced: the read has been served, not yet answered
  EXPECT_FALSE(read.Answered());
  EXPECT_TRUE(Audits().empty());
  log_->Release();
  const grpc::Status s = read.outcome.get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(read.response.events_size(), 2);
  ASSERT_EQ(Audits().size(), 1u);
  EXPECT_EQ(Audits()[0].resource(), "victims/V1");
}

TEST_F(RiskServiceTest, AnAuditThatFailsAfterTheReadRanReturnsNothing) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  log_->Hold(ApiOptions().audit_topic);
  PendingRead read(*stub, "V1");
  ASSERT_TRUE(AwaitHeld(*log_, 1));
  log_->Fail(ApiOptions().audit_topic);
  log_->Release();
  const grpc::Status s = read.outcome.get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("audit record could not be written"));
  EXPECT_EQ(read.response.events_size(), 0);
}

TEST_F(RiskServiceTest, ReadsBeyondTheBoundOnUnacknowledgedAuditsAreRefusedUntilOneIsAcknowledged) {
  ApiOptions options;
  options.insecure_identity = "supervisor-console";
  options.max_pending_audits = 2;
  ApiServerOptions server;
  server.listen = "127.0.0.1:0";
  server.insecure = true;
  auto stub = Start(options, server, grpc::InsecureChannelCredentials());
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  log_->Hold(ApiOptions().audit_topic);
  PendingRead first(*stub, "V1"), second(*stub, "V1");
  ASSERT_TRUE(AwaitHeld(*log_, 2));
  // The third is refused at once, having read nothing.
  PendingRead third(*stub, "V1");
  const grpc::Status refused = third.outcome.get();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(third.response.events_size(), 0);
  EXPECT_EQ(log_->Held(), 2u);
  log_->Release();
  EXPECT_TRUE(first.outcome.get().ok());
  EXPECT_TRUE(second.outcome.get().ok());
  // Acknowledged, they free their places.
  PendingRead fourth(*stub, "V1");
  EXPECT_TRUE(fourth.outcome.get().ok());
  EXPECT_EQ(Audits().size(), 3u);
}

TEST_F(RiskServiceTest, RiskProfileOfAVictim) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  grpc::ClientContext context;
  v1::GetRiskProfileRequest r;
  r.set_name("victims/V1/riskProfile");
  r.set_purpose("review");
  v1::RiskProfile profile;
  ASSERT_TRUE(stub->GetRiskProfile(&context, r, &profile).ok());
  EXPECT_EQ(profile.victim_id(), "V1");
  EXPECT_EQ(profile.calls_total(), 3u);
  EXPECT_FALSE(profile.active_alerts().empty());
  grpc::ClientContext missing;
  r.set_name("victims/V9/riskProfile");
  EXPECT_EQ(stub->GetRiskProfile(&missing, r, &profile).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext malformed;
  r.set_name("victims/V1");
  EXPECT_EQ(stub->GetRiskProfile(&malformed, r, &profile).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RiskServiceTest, ListAlertsFiltersAndPagesNewestFirstWithoutRepeats) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  std::vector<v1::Alert> all;
  ASSERT_TRUE(reader_->ForEachAlert([&](const v1::Alert& a) { all.push_back(a); return true; }).ok());
  ASSERT_GE(all.size(), 2u);

  v1::ListAlertsRequest r;
  r.set_page_size(1);
  r.set_purpose("daily review");
  std::vector<std::string> seen;
  Micros previous = INT64_MAX;
  do {
    grpc::ClientContext context;
    v1::ListAlertsResponse page;
    ASSERT_TRUE(stub->ListAlerts(&context, r, &page).ok());
    ASSERT_LE(page.alerts_size(), 1);
    for (const auto& a : page.alerts()) {
      EXPECT_LE(ToMicros(a.at()), previous);
      previous = ToMicros(a.at());
      seen.push_back(a.alert_id());
    }
    r.set_page_token(page.next_page_token());
  } while (!r.page_token().empty());
  EXPECT_EQ(seen.size(), all.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), all.size());

  // Filters: one rule.
  v1::ListAlertsRequest by_rule;
  by_rule.set_purpose("daily review");
  by_rule.set_rule("repeat-calls");
  by_rule.set_page_size(5000);  // coerced to the maximum, not refused
  grpc::ClientContext context;
  v1::ListAlertsResponse page;
  ASSERT_TRUE(stub->ListAlerts(&context, by_rule, &page).ok());
  ASSERT_EQ(page.alerts_size(), 1);
  EXPECT_EQ(page.alerts(0).rule(), "repeat-calls");
  // Whole, as stored (the time index it was found by holds only what the filters need).
  auto whole = std::find_if(all.begin(), all.end(), [&](const v1::Alert& a) { return a.rule() == "repeat-calls"; });
  ASSERT_NE(whole, all.end());
  EXPECT_FALSE(whole->reason().empty());
  EXPECT_EQ(page.alerts(0).SerializeAsString(), whole->SerializeAsString());

  // A token used with other filters is refused.
  v1::ListAlertsRequest first;
  first.set_purpose("daily review");
  first.set_page_size(1);
  grpc::ClientContext c1;
  ASSERT_TRUE(stub->ListAlerts(&c1, first, &page).ok());
  by_rule.set_page_token(page.next_page_token());
  grpc::ClientContext c2;
  EXPECT_THAT(Violations(stub->ListAlerts(&c2, by_rule, &page)), ElementsAre("page_token"));
  by_rule.clear_page_token();
  by_rule.set_rule("no-such-rule");
  grpc::ClientContext c3;
  EXPECT_THAT(Violations(stub->ListAlerts(&c3, by_rule, &page)), ElementsAre("rule"));
}

TEST_F(RiskServiceTest, EachAlertListedIsAuditedUnderItsVictimBeforeThePageLeaves) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  v1::ListAlertsRequest r;
  v1::ListAlertsResponse page;
  {
    grpc::ClientContext context;  // no purpose
    grpc::Status s = stub->ListAlerts(&context, r, &page);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(Violations(s), ElementsAre("purpose"));
  }
  r.set_purpose("daily review");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->ListAlerts(&context, r, &page).ok());
  }
  ASSERT_GE(page.alerts_size(), 2);
  std::vector<std::string> listed, audited;
  for (const auto& a : page.alerts()) listed.push_back(absl::StrCat(a.victim_id(), " alerts/", a.alert_id()));
  for (const auto& a : Audits()) {
    EXPECT_EQ(a.method(), "ListAlerts");
    EXPECT_EQ(a.identity(), "supervisor-console");
    EXPECT_EQ(a.purpose(), "daily review");
    audited.push_back(absl::StrCat(a.victim_id(), " ", a.resource()));
  }
  EXPECT_EQ(audited, listed);
  // A page with nothing on it reads no victim's data: nothing to audit.
  r.set_victim_id("NOBODY");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->ListAlerts(&context, r, &page).ok());
  }
  EXPECT_EQ(page.alerts_size(), 0);
  EXPECT_EQ(Audits().size(), listed.size());
  // When the audit records cannot be written, no alert leaves.
  r.clear_victim_id();
  log_->Fail(ApiOptions().audit_topic);
  grpc::ClientContext context;
  v1::ListAlertsResponse refused;
  grpc::Status s = stub->ListAlerts(&context, r, &refused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.alerts_size(), 0);
}

TEST_F(RiskServiceTest, GetAlertAndAcknowledgeAreAudited) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  const std::string repeat_id = AlertId("repeat-calls");
  ASSERT_FALSE(repeat_id.empty());
  v1::GetAlertRequest get;
  get.set_name("alerts/" + repeat_id);
  v1::Alert alert;
  {
    grpc::ClientContext context;  // no purpose
    EXPECT_THAT(Violations(stub->GetAlert(&context, get, &alert)), ElementsAre("purpose"));
  }
  get.set_purpose("checking the evidence");
  {
    grpc::ClientContext context;
    get.set_name("alerts/al-missing");
    EXPECT_EQ(stub->GetAlert(&context, get, &alert).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_TRUE(Audits().empty());  // nothing was read
  {
    grpc::ClientContext context;
    get.set_name("alerts/" + repeat_id);
    ASSERT_TRUE(stub->GetAlert(&context, get, &alert).ok());
  }
  EXPECT_EQ(alert.alert_id(), repeat_id);
  {
    grpc::ClientContext context;
    v1::AcknowledgeAlertRequest ack;
    ack.set_name("alerts/" + repeat_id);
    ASSERT_TRUE(stub->AcknowledgeAlert(&context, ack, &alert).ok());
  }
  std::vector<std::string> audited;
  for (const auto& a : Audits()) {
    audited.push_back(absl::StrCat(a.method(), " ", a.victim_id(), " ", a.resource(), " (", a.purpose(), ")"));
  }
  EXPECT_THAT(audited, ElementsAre("GetAlert V1 alerts/" + repeat_id + " (checking the evidence)",
                                   "AcknowledgeAlert V1 alerts/" + repeat_id + " (acknowledging the alert)"));
  // When its audit record cannot be written, the alert does not leave.
  log_->Fail(ApiOptions().audit_topic);
  grpc::ClientContext context;
  v1::Alert refused;
  EXPECT_EQ(stub->GetAlert(&context, get, &refused).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(refused.alert_id().empty());
}

TEST_F(RiskServiceTest, AcknowledgeGoesThroughTheLogAndReturnsTheAppliedAlert) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  const std::string repeat_id = AlertId("repeat-calls");
  ASSERT_FALSE(repeat_id.empty());
  v1::AcknowledgeAlertRequest r;
  r.set_name("alerts/" + repeat_id);
  v1::Alert alert;
  // A note longer than an event's text may be is refused, naming the field; nothing is recorded.
  r.set_note(std::string(kMaxTextLength + 1, 'x'));
  {
    grpc::ClientContext context;
    grpc::Status s = stub->AcknowledgeAlert(&context, r, &alert);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("note"));
    EXPECT_NE(reader_->FindAlert(repeat_id).value()->state(), v1::ACKNOWLEDGED);
  }
  r.set_note("Rang her back; a unit is on its way");
  {
    grpc::ClientContext context;
    grpc::Status s = stub->AcknowledgeAlert(&context, r, &alert);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(alert.state(), v1::ACKNOWLEDGED);
  EXPECT_EQ(alert.acknowledged_by(), "supervisor-console");
  // The acknowledgement is an event in the victim's timeline, like any other.
  auto timeline = reader_->Timeline(reader_->FindVictim("V1").value()->partition, "V1", INT64_MIN, INT64_MAX, "", 100);
  ASSERT_TRUE(timeline.ok());
  v1::Event last;
  ASSERT_TRUE(last.ParseFromString(timeline->events.back()));
  EXPECT_TRUE(last.has_escalation_acknowledged());
  EXPECT_EQ(last.escalation_acknowledged().note(), "Rang her back; a unit is on its way");
  // Again: nothing more to do, the same alert.
  {
    grpc::ClientContext context;
    v1::Alert again;
    ASSERT_TRUE(stub->AcknowledgeAlert(&context, r, &again).ok());
    EXPECT_EQ(again.revision(), alert.revision());
  }
  grpc::ClientContext unknown;
  r.set_name("alerts/al-0000");
  EXPECT_EQ(stub->AcknowledgeAlert(&unknown, r, &alert).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(RiskServiceTest, AResolvedAlertCannotBeAcknowledged) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("a1").At("10:05").ArrestRequested("R1"), Ev("t1").At("11:10").Call(false),
                 Ev("k1").At("11:20").ArrestAttempted("R1")});
  const std::string overdue = AlertId("arrest-overdue");
  ASSERT_FALSE(overdue.empty());
  ASSERT_EQ(reader_->FindAlert(overdue).value()->state(), v1::RESOLVED);
  grpc::ClientContext context;
  v1::AcknowledgeAlertRequest r;
  r.set_name("alerts/" + overdue);
  v1::Alert alert;
  EXPECT_EQ(stub->AcknowledgeAlert(&context, r, &alert).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(RiskServiceTest, ExplainGivesTheEvidenceInFullAndTheRule) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  const std::string repeat_id = AlertId("repeat-calls");
  grpc::ClientContext context;
  v1::ExplainAlertRequest r;
  r.set_name("alerts/" + repeat_id);
  r.set_purpose("why did this fire");
  v1::AlertExplanation e;
  ASSERT_TRUE(stub->ExplainAlert(&context, r, &e).ok());
  std::vector<std::string> ids;
  for (const auto& ev : e.evidence()) {
    ids.push_back(ev.event_id());
    EXPECT_TRUE(ev.has_call_received());
  }
  EXPECT_THAT(ids, ElementsAre("c1", "c2", "c3"));
  EXPECT_EQ(e.rule_settings().rule(), "repeat-calls");
  EXPECT_EQ(e.rule_settings().count(), 2u);
  EXPECT_EQ(e.rule_settings().window().seconds(), 24 * 3600);
  EXPECT_EQ(e.rule_settings().threshold(), e.alert().threshold());
  // Every transition, in order, up to the alert as it is: how it climbed.
  ASSERT_GT(e.alert().revision(), 1u);
  ASSERT_EQ(e.transitions_size(), static_cast<int>(e.alert().revision()));
  for (int i = 0; i < e.transitions_size(); ++i) {
    EXPECT_EQ(e.transitions(i).alert_id(), repeat_id);
    EXPECT_EQ(e.transitions(i).revision(), static_cast<uint32_t>(i + 1));
  }
  EXPECT_EQ(e.transitions(0).state(), v1::FIRING);
  EXPECT_EQ(e.transitions(0).level(), v1::SUPERVISOR);
  EXPECT_EQ(e.transitions().rbegin()->SerializeAsString(), e.alert().SerializeAsString());
  ASSERT_EQ(Audits().size(), 1u);
  EXPECT_EQ(Audits()[0].method(), "ExplainAlert");
  EXPECT_EQ(Audits()[0].victim_id(), "V1");
  EXPECT_EQ(Audits()[0].resource(), "alerts/" + repeat_id);
}

TEST_F(RiskServiceTest, ExplainShowsTheSettingsOfTheRulesVersionTheAlertWasRaisedUnder) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false), Ev("c2").At("10:00").Call(false)});
  const std::string before = AlertId("repeat-calls");
  // A rules change in the log (signed, as vigilctl rules publish writes it), on V1's partition.
  const v1::Event rules_changed =
      Ev("rc").At("10:30").RulesChanged("three-calls", "rules: {repeat-calls: {count: 3}}");
  const std::string change = rules_changed.SerializeAsString();
  ASSERT_TRUE(log_->Append(topics_.events,
                           {{.key = "V1", .value = change,
                             .headers = {{kHeaderSignature, testing::TestSigner().Sign(change)}}}},
                           absl::Now())
                  .ok());
  Record(*stub, {Ev("d1").At("09:00", 3).Incident("I3").Call(false), Ev("d2").At("09:10", 3).Incident("I3").Call(false),
                 Ev("d3").At("09:20", 3).Incident("I3").Call(false)});
  std::string after;
  ASSERT_TRUE(reader_->ForEachAlert([&](const v1::Alert& a) {
    if (a.rule() == "repeat-calls" && a.alert_id() != before) after = a.alert_id();
    return true;
  }).ok());
  ASSERT_FALSE(after.empty());
  auto explain = [&](const std::string& id) {
    grpc::ClientContext context;
    v1::ExplainAlertRequest r;
    r.set_name("alerts/" + id);
    r.set_purpose("rules review");
    v1::AlertExplanation e;
    EXPECT_TRUE(stub->ExplainAlert(&context, r, &e).ok());
    return e;
  };
  const v1::AlertExplanation old_one = explain(before);
  EXPECT_EQ(old_one.alert().rules_version(), "default");
  EXPECT_EQ(old_one.rule_settings().rules_version(), "default");
  EXPECT_EQ(old_one.rule_settings().count(), 2u);
  const v1::AlertExplanation new_one = explain(after);
  EXPECT_EQ(new_one.alert().rules_version(), "three-calls");
  EXPECT_EQ(new_one.rule_settings().rules_version(), "three-calls");
  EXPECT_EQ(new_one.rule_settings().count(), 3u);
  EXPECT_EQ(new_one.rule_settings().threshold(), "3 calls in 24h");
}

TEST_F(RiskServiceTest, EachMethodNeedsItsRole) {
  auto recorder = Serve("command-and-control");
  Record(*recorder, {Ev("c1").At("09:00").Call(false)});  // may record
  grpc::ClientContext context;
  v1::GetTimelineRequest r;
  r.set_parent("victims/V1");
  r.set_purpose("curiosity");
  v1::GetTimelineResponse response;
  EXPECT_EQ(recorder->GetTimeline(&context, r, &response).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  auto stranger = Serve("someone-else");
  grpc::ClientContext c2;
  v1::ListAlertsResponse alerts;
  EXPECT_EQ(stranger->ListAlerts(&c2, v1::ListAlertsRequest(), &alerts).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Audits().empty());
}

TEST_F(RiskServiceTest, OversizedRequestsAreRefused) {
  auto stub = Serve("supervisor-console", /*max_message_bytes=*/4096);
  grpc::ClientContext context;
  v1::RecordEventRequest r;
  *r.mutable_event() = Ev("c1").At("09:00").Call();
  r.mutable_event()->set_source(std::string(8192, 'x'));
  v1::RecordEventResponse response;
  EXPECT_EQ(stub->RecordEvent(&context, r, &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// Mutual TLS: the identity is the client certificate's common name.
class RiskServiceTlsTest : public RiskServiceTest {
 protected:
  void SetUp() override {
    const std::string script = std::string(VIGIL_SOURCE_DIR) + "/deploy/tls/make-dev-certs.sh";
    const std::string command = absl::StrCat(script, " ", (dir_ / "tls").string(),
                                             " supervisor-console command-and-control vigild-peer 2>/dev/null");
    ASSERT_EQ(std::system(command.c_str()), 0);
    ApiServerOptions server;
    server.listen = "127.0.0.1:0";
    server.tls_cert = (dir_ / "tls/server.pem").string();
    server.tls_key = (dir_ / "tls/server.key").string();
    server.tls_client_ca = (dir_ / "tls/ca.pem").string();
    ApiOptions options;
    options.default_wait = absl::Seconds(2);
    options.signer = &testing::TestSigner();
    services_.push_back(std::make_unique<RiskServiceImpl>(reader_.get(), log_.get(), nullptr, &access_,
                                                          &engine_.rules(), options));
    auto started = StartApiServer(server, services_.back().get());
    ASSERT_TRUE(started.ok()) << started.status();
    port_ = started->port;
    servers_.push_back(*std::move(started));
  }

  std::unique_ptr<v1::RiskService::Stub> Client(const std::string& name) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadAll(dir_ / "tls/ca.pem");
    if (!name.empty()) {
      ssl.pem_cert_chain = ReadAll(dir_ / "tls" / (name + ".pem"));
      ssl.pem_private_key = ReadAll(dir_ / "tls" / (name + ".key"));
    }
    return v1::RiskService::NewStub(
        grpc::CreateChannel(absl::StrCat("localhost:", port_), grpc::SslCredentials(ssl)));
  }

  int port_ = 0;
};

TEST_F(RiskServiceTlsTest, TheClientCertificateNamesTheCallerAndItsRoles) {
  auto supervisor = Client("supervisor-console");
  Record(*supervisor, Day());
  v1::GetTimelineRequest r;
  r.set_parent("victims/V1");
  r.set_purpose("review");
  v1::GetTimelineResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(supervisor->GetTimeline(&context, r, &response).ok());
    EXPECT_EQ(response.events_size(), 4);
    ASSERT_EQ(Audits().size(), 1u);
    EXPECT_EQ(Audits()[0].identity(), "supervisor-console");
  }
  auto recorder = Client("command-and-control");
  {
    grpc::ClientContext context;
    grpc::Status s = recorder->GetTimeline(&context, r, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("command-and-control"));
  }
  // No certificate: the handshake lets it through (a certificate is verified when given, not required), and
  // the call says why it is refused.
  auto anonymous = Client("");
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status s = anonymous->GetTimeline(&context, r, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(s.error_message(), HasSubstr("client certificate is required"));
  }
}

TEST_F(RiskServiceTlsTest, AFrontEndCallsInItsUsersNameOnlyWithTheForwardRightAndOnlyWithTheUsersRights) {
  Record(*Client("supervisor-console"), Day());
  const size_t before = Audits().size();
  v1::GetTimelineRequest r;
  r.set_parent("victims/V1");
  r.set_purpose("review from the console");
  v1::GetTimelineResponse response;
  auto as = [&](const std::string& client, const std::string& user) {
    grpc::ClientContext context;
    context.AddMetadata(kUserHeader, user);
    return Client(client)->GetTimeline(&context, r, &response);
  };
  // The console's certificate may act for a user: the read is the user's, audited in their name.
  ASSERT_TRUE(as("vigild-peer", "supervisor-console").ok());
  EXPECT_EQ(response.events_size(), 4);
  ASSERT_EQ(Audits().size(), before + 1);
  EXPECT_EQ(Audits().back().identity(), "supervisor-console");
  EXPECT_EQ(Audits().back().forwarded_by(), "vigild-peer");
  // With the user's rights only.
  grpc::Status s = as("vigild-peer", "command-and-control");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("command-and-control may not call GetTimeline"));
  // No other client may name a user.
  s = as("supervisor-console", "vigild-peer");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("may not act for another caller"));
  EXPECT_EQ(Audits().size(), before + 1);
}

TEST_F(RiskServiceTest, AVictimInAPartitionStoredAfterTheFirstLookupIsFound) {
  // The reader lists the stored partitions once; a lookup that misses lists them again.
  auto p0 = *PartitionPipeline::Load(store_.get(), &engine_, &topics_, &admission_, 7);
  const v1::Event first = Ev("c1").Victim("VA").At("09:00").Call(false);
  p0->Apply(0, "VA", first.SerializeAsString());
  ASSERT_TRUE(p0->Commit().ok());
  ASSERT_EQ(reader_->FindVictimPartition("VA").value(), std::optional<int32_t>(7));
  EXPECT_FALSE(reader_->FindVictimPartition("VB").value().has_value());
  auto p9 = *PartitionPipeline::Load(store_.get(), &engine_, &topics_, &admission_, 9);
  const v1::Event second = Ev("c2").Victim("VB").At("09:00").Call(false);
  p9->Apply(0, "VB", second.SerializeAsString());
  ASSERT_TRUE(p9->Commit().ok());
  EXPECT_EQ(reader_->FindVictimPartition("VB").value(), std::optional<int32_t>(9));
  auto victim = reader_->FindVictim("VB");
  ASSERT_TRUE(victim.ok() && victim->has_value());
  EXPECT_EQ((*victim)->state.victim_id(), "VB");
  // A dropped partition leaves its locations behind: they are checked, not believed.
  ASSERT_TRUE(store_->DeletePrefix(PartitionPrefix(7)).ok());
  EXPECT_FALSE(reader_->FindVictimPartition("VA").value().has_value());
  EXPECT_FALSE(reader_->FindVictim("VA").value().has_value());
}

// The alert indexes kept as alerts climb, are acknowledged and resolve across commits give exactly what a scan
// of every stored alert gives, for every filter, page after page, and a victim or alert is found in one step.
TEST_F(RiskServiceTest, ListingFromTheIndexesEqualsAScanOfEveryAlert) {
  synthetic::StreamOptions options;
  options.events = 4000;
  options.victims = 60;
  options.days = 3;
  std::vector<std::unique_ptr<PartitionPipeline>> pipelines;
  for (int p = 0; p < 3; ++p) {
    pipelines.push_back(*PartitionPipeline::Load(store_.get(), &engine_, &topics_, &admission_, p));
  }
  int64_t offset = 0;
  for (const v1::Event& e : synthetic::SyntheticStream(options)) {
    auto& pipeline = *pipelines[Fnv1a64(e.victim_id()) % pipelines.size()];
    pipeline.Apply(offset++, e.victim_id(), e.SerializeAsString());
    if (offset % 150 == 0) {
      ASSERT_TRUE(pipeline.Commit().ok());  // transitions within and across commits
    }
  }
  for (auto& pipeline : pipelines) ASSERT_TRUE(pipeline->Commit().ok());
  std::vector<v1::Alert> all;
  ASSERT_TRUE(reader_->ForEachAlert([&](const v1::Alert& a) { all.push_back(a); return true; }).ok());
  ASSERT_GT(all.size(), 100u);
  auto order = [](const v1::Alert& a, const v1::Alert& b) {
    return ToMicros(a.at()) != ToMicros(b.at()) ? ToMicros(a.at()) > ToMicros(b.at()) : a.alert_id() < b.alert_id();
  };
  std::sort(all.begin(), all.end(), order);
  std::set<std::string> states_seen;
  for (const auto& a : all) states_seen.insert(v1::AlertState_Name(a.state()));
  EXPECT_GE(states_seen.size(), 3u) << "the stream should move alerts through their states";

  const Micros middle = ToMicros(all[all.size() / 2].at());
  struct Case {
    std::string name;
    StateReader::AlertQuery query;
    std::function<bool(const v1::Alert&)> match;
  };
  const std::string victim = all[all.size() / 3].victim_id();
  std::vector<Case> cases = {
      {"everything", {}, [](const v1::Alert&) { return true; }},
      {"open", {}, [](const v1::Alert& a) { return a.state() != v1::RESOLVED; }},
      {"one rule", {}, [](const v1::Alert& a) { return a.rule() == "repeat-calls"; }},
      {"before the middle", {.end = middle}, [&](const v1::Alert& a) { return ToMicros(a.at()) < middle; }},
      {"from the middle", {.start = middle}, [&](const v1::Alert& a) { return ToMicros(a.at()) >= middle; }},
      {"one victim", {.victim_id = victim}, [&](const v1::Alert& a) { return a.victim_id() == victim; }},
      {"nobody", {.victim_id = "NOBODY"}, [](const v1::Alert& a) { return a.victim_id() == "NOBODY"; }},
  };
  for (const Case& c : cases) {
    std::vector<std::string> want, got;
    for (const auto& a : all) {
      if (c.match(a)) want.push_back(a.alert_id());
    }
    StateReader::AlertQuery q = c.query;
    for (;;) {  // pages of 7
      auto page = reader_->ListAlerts(q, c.match, 7);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const auto& a : *page) got.push_back(a.alert_id());
      if (page->size() < 7) break;
      q.after.emplace(ToMicros(page->back().at()), page->back().alert_id());
    }
    EXPECT_EQ(got, want) << c.name;
  }
  // Found in one step, and where they are.
  for (const auto& a : all) {
    auto found = reader_->FindAlert(a.alert_id());
    ASSERT_TRUE(found.ok() && found->has_value());
    EXPECT_EQ((*found)->revision(), a.revision());
  }
  auto where = reader_->FindVictimPartition(victim);
  ASSERT_TRUE(where.ok() && where->has_value());
  EXPECT_EQ(**where, static_cast<int32_t>(Fnv1a64(victim) % pipelines.size()));
}

TEST_F(RiskServiceTest, BoundedInputIsRefusedWithTheRightCode) {
  auto stub = Serve("supervisor-console");
  auto record = [&](const v1::Event& e) {
    grpc::ClientContext context;
    v1::RecordEventRequest request;
    *request.mutable_event() = e;
    v1::RecordEventResponse response;
    return stub->RecordEvent(&context, request, &response);
  };
  v1::Event big = Ev("big").At("09:00").Call(false);
  big.mutable_call_received()->set_suspect_id("S1");
  big.set_source(std::string(100, 's'));
  v1::Event padded = big;
  padded.set_source(std::string(70'000, 's'));
  // Over 64 KiB: RESOURCE_EXHAUSTED, which tells a client not to retry as it is (never UNAVAILABLE).
  EXPECT_EQ(record(padded).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // From the future: INVALID_ARGUMENT naming the field.
  v1::Event future = Ev("fut").Call(false);
  *future.mutable_occurred_at() = ToTimestamp(absl::ToUnixMicros(absl::Now()) + kMicrosPerHour);
  grpc::Status s = record(future);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(Violations(s), ElementsAre("event.occurred_at"));
  // A small unknown field is dropped before the event is published: the timeline holds the contract's event.
  v1::Event small = big;
  ASSERT_TRUE(small.ParseFromString(big.SerializeAsString() + "\xfa\x06\x03" + "abc"));
  ASSERT_TRUE(record(small).ok());
  auto page = reader_->Timeline(*(*reader_->FindVictimPartition("V1")), "V1", INT64_MIN, INT64_MAX, "", 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0], big.SerializeAsString());
}

TEST_F(RiskServiceTest, PurposeAndTimeFiltersAreChecked) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  auto timeline = [&](const std::string& purpose, std::optional<int64_t> end_seconds) {
    grpc::ClientContext context;
    v1::GetTimelineRequest r;
    r.set_parent("victims/V1");
    r.set_purpose(purpose);
    if (end_seconds) r.mutable_end_time()->set_seconds(*end_seconds);
    v1::GetTimelineResponse response;
    return stub->GetTimeline(&context, r, &response);
  };
  EXPECT_THAT(Violations(timeline("   ", std::nullopt)), ElementsAre("purpose"));
  EXPECT_THAT(Violations(timeline(std::string(600, 'p'), std::nullopt)), ElementsAre("purpose"));
  EXPECT_THAT(Violations(timeline("line\nbreak", std::nullopt)), ElementsAre("purpose"));
  // The largest valid timestamp is fine; past it, INVALID_ARGUMENT instead of an overflow.
  EXPECT_TRUE(timeline("review", 253402300799).ok());
  EXPECT_THAT(Violations(timeline("review", INT64_MAX)), ElementsAre("end_time"));
  grpc::ClientContext context;
  v1::ListAlertsRequest list;
  list.set_purpose("review");
  list.mutable_start_time()->set_seconds(INT64_MIN);
  v1::ListAlertsResponse listed;
  EXPECT_THAT(Violations(stub->ListAlerts(&context, list, &listed)), ElementsAre("start_time"));
  EXPECT_TRUE(Audits().size() == 1u) << "only the valid read was audited";
}

TEST_F(RiskServiceTest, DamagedStoredDataIsDataLossWithAdviceAndNoServerPaths) {
  auto stub = Serve("supervisor-console");
  Record(*stub, {Ev("c1").At("09:00").Call(false)});
  const int32_t p = *(*reader_->FindVictimPartition("V1"));
  rocksdb::WriteBatch batch;
  batch.Put(TimelineKey(p, "V1", testing::T("09:30"), "damaged"), "\xff\xff not an event");
  ASSERT_TRUE(store_->Write(&batch, Store::Durability::kProcess).ok());
  grpc::ClientContext context;
  v1::GetTimelineRequest r;
  r.set_parent("victims/V1");
  r.set_purpose("review");
  v1::GetTimelineResponse response;
  grpc::Status s = stub->GetTimeline(&context, r, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(s.error_message(), HasSubstr("rebuild"));
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr(dir_.string())));
}

TEST_F(RiskServiceTest, RecordEventRefusesWhatOnlyVigildWrites) {
  auto stub = Serve("supervisor-console");
  Record(*stub, Day());
  const std::string alert_id = AlertId("repeat-calls");
  ASSERT_FALSE(alert_id.empty());
  grpc::ClientContext context;
  v1::RecordEventRequest request;
  *request.mutable_event() = Ev("forged").At("10:30");
  request.mutable_event()->set_source("vigil-api");
  request.mutable_event()->mutable_escalation_acknowledged()->set_alert_id(alert_id);
  request.mutable_event()->mutable_escalation_acknowledged()->set_acknowledged_by("Supt-Forged");
  v1::RecordEventResponse response;
  EXPECT_EQ(stub->RecordEvent(&context, request, &response).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE((*reader_->FindAlert(alert_id))->state(), v1::ACKNOWLEDGED);
}

TEST(AccessPolicyTest, GrantsOnlyWhatRolesAllowAndNamesMistakes) {
  auto policy = AccessPolicy::Parse(kAccess, "access.yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->Allows("command-and-control", "RecordEvent"));
  EXPECT_FALSE(policy->Allows("command-and-control", "GetTimeline"));
  EXPECT_FALSE(policy->Allows("nobody", "RecordEvent"));
  auto unknown_method = AccessPolicy::Parse("roles: {r: [ReadEverything]}", "access.yaml");
  EXPECT_THAT(std::string(unknown_method.status().message()),
              HasSubstr("access.yaml: roles.r: unknown method ReadEverything"));
  auto unknown_role = AccessPolicy::Parse("roles: {r: [GetAlert]}\nclients: {c: [admin]}", "access.yaml");
  EXPECT_THAT(std::string(unknown_role.status().message()), HasSubstr("clients.c: unknown role admin"));
  EXPECT_EQ(AccessPolicy::Parse("users: {}", "a.yaml").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AccessPolicyTest, RepeatedAndNonScalarKeysAreRefusedWithTheLine) {
  // One appended line used to make a client a supervisor (the last key won).
  auto twice = AccessPolicy::Parse("roles: {r: [RecordEvent], s: [GetAlert]}\nclients:\n  c: [r]\n  c: [s]\n",
                                   "access.yaml");
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.status().message(), HasSubstr("access.yaml: line 4: duplicate key 'c' (first at line 3)"));
  // A list as a key used to abort vigild.
  auto list_key = AccessPolicy::Parse("roles: {r: [GetAlert]}\nclients:\n  ? [a, b]\n  : [r]\n", "access.yaml");
  EXPECT_EQ(list_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(list_key.status().message(), HasSubstr("a key must be a single value"));
  auto long_name = AccessPolicy::Parse("roles: {r: [" + std::string(10000, 'M') + "]}", "access.yaml");
  EXPECT_LT(long_name.status().message().size(), 200u);
  EXPECT_TRUE(AccessPolicy::Load(std::string(VIGIL_SOURCE_DIR) + "/deploy/config/access.yaml").ok());
}

TEST(AlertCursorTest, RoundTripsAndRefusesForgeries) {
  AlertCursor c = {{0, 12}, {3, 7}};
  auto back = DecodeCursor(EncodeCursor(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, c);
  EXPECT_EQ(DecodeCursor("beginning").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCursor(absl::WebSafeBase64Escape("v1;0=-4")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCursor(absl::WebSafeBase64Escape("v2;0=4")).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigil
