// The console's HTTP side against a fake RiskService: how pages become API calls (filters, purpose, paging,
// the user's note), how the API's answers become HTTP (statuses, JSON, server-sent events), and that an open
// live board ends its watch when the browser goes or the console stops. (In a browser, on a real broker, with
// TLS: tests/integration/console_test.py.)
#include "services/escalation/console/console_server.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "vigil/v1/risk_service.grpc.pb.h"

namespace vigil {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

v1::Alert MakeAlert(const std::string& id, v1::Level level) {
  v1::Alert a;
  a.set_alert_id(id);
  a.set_victim_id("V1");
  a.set_rule("repeat-calls");
  a.set_level(level);
  a.set_state(v1::FIRING);
  a.set_revision(1);
  return a;
}

// Answers as the API would, and remembers what it was asked.
class FakeApi final : public v1::RiskService::Service {
 public:
  grpc::Status ListAlerts(grpc::ServerContext*, const v1::ListAlertsRequest* request,
                          v1::ListAlertsResponse* response) override {
    list_requests.push_back(*request);
    if (request->purpose().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "purpose: required");
    // Two pages.
    if (request->page_token().empty()) {
      *response->add_alerts() = MakeAlert("al-1", v1::INSPECTOR);
      response->set_next_page_token("page-2");
    } else {
      *response->add_alerts() = MakeAlert("al-2", v1::SUPERVISOR);
    }
    return grpc::Status::OK;
  }

  grpc::Status AcknowledgeAlert(grpc::ServerContext*, const v1::AcknowledgeAlertRequest* request,
                                v1::Alert* response) override {
    ack_requests.push_back(*request);
    if (request->name() == "alerts/al-resolved") {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the alert is resolved");
    }
    *response = MakeAlert(request->name().substr(7), v1::INSPECTOR);
    response->set_state(v1::ACKNOWLEDGED);
    response->set_acknowledged_by("local-dev");
    return grpc::Status::OK;
  }

  grpc::Status GetRiskProfile(grpc::ServerContext*, const v1::GetRiskProfileRequest* request,
                              v1::RiskProfile* response) override {
    if (request->name() != "victims/V2/riskProfile") {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "client local-dev may not call GetRiskProfile");
    }
    response->set_victim_id("V2");
    response->set_calls_total(3);
    return grpc::Status::OK;
  }

  grpc::Status GetTimeline(grpc::ServerContext*, const v1::GetTimelineRequest* request,
                           v1::GetTimelineResponse* response) override {
    timeline_requests.push_back(*request);
    // Two pages of one event each.
    response->add_events()->set_event_id(request->page_token().empty() ? "e1" : "e2");
    if (request->page_token().empty()) response->set_next_page_token("more");
    return grpc::Status::OK;
  }

  grpc::Status ExplainAlert(grpc::ServerContext*, const v1::ExplainAlertRequest* request,
                            v1::AlertExplanation* response) override {
    explained.push_back(request->name());
    *response->mutable_alert() = MakeAlert(request->name().substr(7), v1::INSPECTOR);
    *response->add_transitions() = MakeAlert(request->name().substr(7), v1::SUPERVISOR);
    *response->add_transitions() = response->alert();
    return grpc::Status::OK;
  }

  grpc::Status WatchAlerts(grpc::ServerContext* context, const v1::WatchAlertsRequest* request,
                           grpc::ServerWriter<v1::WatchAlertsResponse>* writer) override {
    watch_cursor = request->cursor();
    writer->SendInitialMetadata();
    for (int i = 0; i < 2; ++i) {
      v1::WatchAlertsResponse r;
      *r.mutable_alert() = MakeAlert(absl::StrCat("al-w", i), v1::SUPERINTENDENT);
      r.set_cursor(absl::StrCat("cursor-", i));
      writer->Write(r);
    }
    if (request->rule() == "ends") return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the feed stopped");
    ++watching;
    while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    --watching;
    ++watches_cancelled;
    return grpc::Status::CANCELLED;
  }

  std::vector<v1::ListAlertsRequest> list_requests;
  std::vector<v1::AcknowledgeAlertRequest> ack_requests;
  std::vector<v1::GetTimelineRequest> timeline_requests;
  std::vector<std::string> explained;
  std::string watch_cursor;
  std::atomic<int> watching{0}, watches_cancelled{0};
};

class ConsoleServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&api_);
    server_ = builder.BuildAndStart();
    ConsoleOptions options;
    options.listen = "127.0.0.1:0";
    options.insecure_identity = "local-dev";
    options.rules = {"repeat-calls"};
    options.keep_alive_ms = 100;
    options.max_watches = 1;
    auto console = ConsoleServer::Start(
        options, grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    ASSERT_TRUE(console.ok()) << console.status();
    console_ = *std::move(console);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", console_->port());
  }
  void TearDown() override {
    console_.reset();
    server_->Shutdown();
  }

  // Waits (up to 10 s) for `done`.
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 1000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  }

  FakeApi api_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ConsoleServer> console_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(ConsoleServerTest, TheBoardReadsEveryPageOfOpenAlertsWithItsFiltersAndPurpose) {
  auto res = client_->Get("/api/alerts?purpose=shift%20handover&level=INSPECTOR&level=SUPERVISOR&force=lancs");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json body = Json::parse(res->body);
  ASSERT_EQ(body["alerts"].size(), 2u);
  EXPECT_EQ(body["alerts"][0]["alert_id"], "al-1");
  EXPECT_EQ(body["alerts"][1]["level"], "SUPERVISOR");
  EXPECT_EQ(body["truncated"], false);
  ASSERT_EQ(api_.list_requests.size(), 2u);
  const v1::ListAlertsRequest& first = api_.list_requests[0];
  EXPECT_EQ(first.purpose(), "shift handover");
  EXPECT_EQ(first.force(), "lancs");
  EXPECT_THAT(first.levels(), ElementsAre(v1::INSPECTOR, v1::SUPERVISOR));
  EXPECT_THAT(first.states(), ElementsAre(v1::FIRING, v1::ESCALATED, v1::ACKNOWLEDGED));
  EXPECT_EQ(api_.list_requests[1].page_token(), "page-2");
}

TEST_F(ConsoleServerTest, AVictimsPageHasTheProfileEveryPageOfTheTimelineAndEachAlertExplained) {
  auto res = client_->Get("/api/victims/V2?purpose=review");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json body = Json::parse(res->body);  // throws on malformed JSON
  EXPECT_EQ(body["profile"]["victim_id"], "V2");
  ASSERT_EQ(body["events"].size(), 2u);
  EXPECT_EQ(body["events"][1]["event_id"], "e2");
  EXPECT_EQ(body["events_truncated"], false);
  ASSERT_EQ(body["alerts"].size(), 2u);  // both pages of the victim's alerts
  EXPECT_EQ(body["alerts"][0]["alert"]["alert_id"], "al-1");
  EXPECT_EQ(body["alerts"][0]["transitions"].size(), 2u);
  EXPECT_EQ(body["alerts_truncated"], false);
  EXPECT_THAT(api_.explained, ElementsAre("alerts/al-1", "alerts/al-2"));
  ASSERT_EQ(api_.timeline_requests.size(), 2u);
  EXPECT_EQ(api_.timeline_requests[0].parent(), "victims/V2");
  EXPECT_EQ(api_.timeline_requests[0].purpose(), "review");
  ASSERT_FALSE(api_.list_requests.empty());
  EXPECT_EQ(api_.list_requests[0].victim_id(), "V2");
  EXPECT_EQ(api_.list_requests[0].purpose(), "review");
}

TEST_F(ConsoleServerTest, TheApisRefusalsAreHttpStatusesWithTheirCodeAndMessage) {
  auto res = client_->Get("/api/alerts");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(Json::parse(res->body)["code"], "INVALID_ARGUMENT");
  res = client_->Get("/api/alerts?purpose=x&level=CONSTABLE");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(std::string(Json::parse(res->body)["message"]), HasSubstr("CONSTABLE"));
  res = client_->Get("/api/victims/V1?purpose=x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  EXPECT_EQ(Json::parse(res->body)["code"], "PERMISSION_DENIED");
  res = client_->Post("/api/alerts/al-resolved/acknowledge", "{}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 409);
}

TEST_F(ConsoleServerTest, AnAcknowledgementTakesJsonOnlyAndCarriesTheNote) {
  auto res = client_->Post("/api/alerts/al-1/acknowledge", "note=hello", "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = client_->Post("/api/alerts/al-1/acknowledge", R"({"note": 5})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(api_.ack_requests.empty());
  res = client_->Post("/api/alerts/al-1/acknowledge", R"({"note": "rang her back"})", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(Json::parse(res->body)["state"], "ACKNOWLEDGED");
  ASSERT_EQ(api_.ack_requests.size(), 1u);
  EXPECT_EQ(api_.ack_requests[0].name(), "alerts/al-1");
  EXPECT_EQ(api_.ack_requests[0].note(), "rang her back");
}

TEST_F(ConsoleServerTest, TheLiveFeedIsServerSentEventsResumingFromTheLastIdAndEndingWithTheStatus) {
  std::string stream;
  httplib::Headers headers = {{"Last-Event-ID", "cursor-from-before"}};
  auto res = client_->Get("/api/watch?purpose=x&rule=ends", headers,
                          [&](const char* data, size_t n) {
                            stream.append(data, n);
                            return true;
                          });
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(api_.watch_cursor, "cursor-from-before");
  EXPECT_THAT(stream, HasSubstr("event: ready\n"));
  EXPECT_THAT(stream, HasSubstr("id: cursor-0\nevent: alert\ndata: {\"alert_id\":\"al-w0\""));
  EXPECT_THAT(stream, HasSubstr("id: cursor-1\nevent: alert\n"));
  EXPECT_THAT(stream, HasSubstr("event: end\ndata: {\"code\":\"UNAVAILABLE\",\"message\":\"the feed stopped\"}"));
  EXPECT_LT(stream.find("event: ready"), stream.find("cursor-0"));
}

TEST_F(ConsoleServerTest, ABoardThatGoesEndsItsWatch) {
  std::atomic<int> alerts{0};
  auto res = client_->Get("/api/watch?purpose=x", [&](const char* data, size_t n) {
    // Gone after the second transition.
    if (std::string(data, n).find("event: alert") != std::string::npos) ++alerts;
    return alerts < 2;
  });
  EXPECT_EQ(alerts, 2);
  // The next keep-alive (or the write of the transitions) finds the page gone: the API call is cancelled.
  EXPECT_TRUE(Eventually([&] { return api_.watches_cancelled == 1; }));
}

TEST_F(ConsoleServerTest, StoppingTheConsoleEndsOpenBoardsWithAnEndTheyCanResumeFrom) {
  std::mutex mu;
  std::string stream;
  auto received = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return stream;
  };
  std::thread board([&, port = console_->port()] {
    httplib::Client c("127.0.0.1", port);
    c.Get("/api/watch?purpose=x", [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      stream.append(data, n);
      return true;
    });
  });
  ASSERT_TRUE(Eventually([&] { return received().find("id: cursor-1") != std::string::npos; }));
  console_.reset();
  board.join();
  EXPECT_TRUE(Eventually([&] { return api_.watches_cancelled == 1; }));
  // The watch was ended by the console, and the page told so after what it had (not cut off).
  EXPECT_THAT(received(), HasSubstr("event: end\ndata: {\"code\":\"CANCELLED\""));
}

TEST_F(ConsoleServerTest, BoardsBeyondTheBoundAreRefusedUntilOneCloses) {
  std::atomic<bool> stop{false};
  std::thread board([&, port = console_->port()] {
    httplib::Client c("127.0.0.1", port);
    c.Get("/api/watch?purpose=x", [&](const char*, size_t) { return !stop; });
  });
  ASSERT_TRUE(Eventually([&] { return api_.watching == 1; }));
  auto res = client_->Get("/api/watch?purpose=x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(Json::parse(res->body)["code"], "RESOURCE_EXHAUSTED");
  stop = true;  // the first board goes (found at its next keep-alive)
  board.join();
  ASSERT_TRUE(Eventually([&] { return api_.watches_cancelled == 1; }));
  // Its place is free again.
  std::string stream;
  res = client_->Get("/api/watch?purpose=x&rule=ends", [&](const char* data, size_t n) {
    stream.append(data, n);
    return true;
  });
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(stream, HasSubstr("event: alert"));
}

TEST_F(ConsoleServerTest, ThePagesAndTheirFilesAreServedWithAPolicyAllowingOnlyThemselves) {
  auto res = client_->Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("/static/board.js"));
  EXPECT_THAT(res->get_header_value("Content-Security-Policy"), HasSubstr("default-src 'self'"));
  res = client_->Get("/victims/V-LAN-1");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr("/static/d3.min.js"));
  res = client_->Get("/static/d3.min.js");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_THAT(res->body, HasSubstr("https://d3js.org v7.9.0"));
  res = client_->Get("/static/nothing.js");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = client_->Get("/api/session");
  ASSERT_TRUE(res);
  EXPECT_EQ(Json::parse(res->body)["identity"], "local-dev");
}

}  // namespace
}  // namespace vigil
