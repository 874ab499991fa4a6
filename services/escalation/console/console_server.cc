#include "services/escalation/console/console_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/http_serving.h"
#include "common/jsonl.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "services/escalation/api/peers.h"
#include "services/escalation/console/console_assets.h"
#include "vigil/v1/risk_service.grpc.pb.h"

namespace vigil {
namespace {

using Json = nlohmann::json;

// What a victim's page reads at most: events (in time order), and alerts explained (newest first).
constexpr int kMaxVictimEvents = 50000;
constexpr int kMaxVictimAlerts = 500;
// How long one API call may take before the page is told the service is slow.
constexpr auto kCallTimeout = std::chrono::seconds(15);

int HttpStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::FAILED_PRECONDITION: return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    default: return 500;
  }
}

std::string CodeName(grpc::StatusCode code) { return absl::StatusCodeToString(static_cast<absl::StatusCode>(code)); }

void SendError(httplib::Response& res, const grpc::Status& status) {
  res.status = HttpStatus(status.error_code());
  res.set_content(Json{{"code", CodeName(status.error_code())}, {"message", status.error_message()}}.dump(),
                  "application/json");
}

// One of the page's files (console_assets.h), or 404.
void SendAsset(httplib::Response& res, const std::string& name) {
  const ConsoleAsset* a = FindConsoleAsset(name);
  if (a == nullptr) return SendError(res, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such file"));
  res.set_header("Cache-Control", "no-cache");
  res.set_content(a->data, a->size, a->content_type);
}

void SendJson(httplib::Response& res, const std::string& json) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(json, "application/json");
}

// The common name of the client certificate the browser presented ("" without one).
std::string CertificateName(const httplib::Request& req) {
  if (req.ssl == nullptr) return "";
  X509* cert = SSL_get1_peer_certificate(req.ssl);
  if (cert == nullptr) return "";
  char name[257] = {0};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof(name) - 1);
  X509_free(cert);
  return n > 0 ? std::string(name, n) : "";
}

// The filters a board asks for (level=, rule=, force=), on a ListAlerts or WatchAlerts request.
template <typename Request>
grpc::Status ReadFilters(const httplib::Request& req, Request* request) {
  for (size_t i = 0; i < req.get_param_value_count("level"); ++i) {
    v1::Level level;
    const std::string name = req.get_param_value("level", i);
    if (!v1::Level_Parse(name, &level) || level == v1::LEVEL_UNSPECIFIED) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("level: no level is called '", name,
                                                                           "' (SUPERVISOR, INSPECTOR, SUPERINTENDENT)"));
    }
    request->add_levels(level);
  }
  request->set_rule(req.get_param_value("rule"));
  request->set_force(req.get_param_value("force"));
  request->set_purpose(req.get_param_value("purpose"));
  return grpc::Status::OK;
}

// One board's live feed: a WatchAlerts call whose transitions wait here for the HTTP stream to send them.
class WatchFeed : public grpc::ClientReadReactor<v1::WatchAlertsResponse> {
 public:
  struct Item {
    enum Kind { kReady, kTransition, kEnd, kNothing } kind = kNothing;
    v1::WatchAlertsResponse response;
    grpc::Status status;
  };

  // `context`: the call's (Cancel may come before Start: the call is then cancelled as it starts).
  WatchFeed(size_t max_backlog, std::unique_ptr<grpc::ClientContext> context)
      : max_backlog_(max_backlog), context_(std::move(context)) {}

  void Start(v1::RiskService::Stub* stub, const v1::WatchAlertsRequest& request, std::shared_ptr<WatchFeed> self) {
    request_ = request;
    self_ = std::move(self);  // until OnDone
    stub->async()->WatchAlerts(context_.get(), &request_, this);
    StartRead(&incoming_);
    StartCall();
  }

  // The next thing to send, waiting at most `timeout_ms` (kNothing when nothing came).
  Item Next(int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return !items_.empty(); });
    if (items_.empty()) return {};
    Item item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  void Cancel() { context_->TryCancel(); }

  // The server has taken the call and placed the watch (it sends its headers once subscribed). gRPC may call
  // this after OnReadDone of the first transition (on another thread): "ready" goes first all the same.
  void OnReadInitialMetadataDone(bool ok) override {
    if (!ok) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReadyOnce();
    }
    cv_.notify_one();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    bool full = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReadyOnce();  // a transition means the headers came before it
      full = items_.size() >= max_backlog_;
      if (!full) items_.push_back({Item::kTransition, incoming_, {}});
    }
    cv_.notify_one();
    if (full) {
      // The page reads too slowly: its stream ends, and it resumes from the last transition it had.
      overflowed_ = true;
      context_->TryCancel();
      return;
    }
    StartRead(&incoming_);
  }
  void OnDone(const grpc::Status& status) override {
    Push({Item::kEnd, {}, overflowed_ ? grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                                     "the page fell behind; it resumes where it was")
                                      : status});
    self_.reset();  // may delete this
  }

 private:
  void ReadyOnce() {
    if (ready_) return;
    ready_ = true;
    items_.push_back({Item::kReady, {}, {}});
  }
  void Push(Item item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
  }

  const size_t max_backlog_;
  const std::unique_ptr<grpc::ClientContext> context_;
  v1::WatchAlertsRequest request_;
  v1::WatchAlertsResponse incoming_;
  std::atomic<bool> overflowed_{false};
  std::shared_ptr<WatchFeed> self_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  bool ready_ = false;  // under mu_
};

}  // namespace

struct ConsoleServer::Impl {
  ConsoleOptions options;
  std::unique_ptr<v1::RiskService::Stub> stub;
  std::mutex feeds_mu;
  // The open live boards' calls: at most options.max_watches, and each ended when the console stops.
  std::set<std::shared_ptr<WatchFeed>> feeds;
  std::unique_ptr<HttpServing> serving;

  bool insecure() const { return !options.insecure_identity.empty(); }

  // The user, or "" (the request is answered UNAUTHENTICATED).
  std::string User(const httplib::Request& req) const {
    return insecure() ? options.insecure_identity : CertificateName(req);
  }

  // A context for a call to the API in the user's name; by kCallTimeout unless `open_ended` (a live board's).
  std::unique_ptr<grpc::ClientContext> Context(const std::string& user, bool open_ended = false) const {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!open_ended) context->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    if (!insecure()) context->AddMetadata(kUserHeader, user);
    return context;
  }

  // Wraps a handler: the user authenticated, or 401.
  httplib::Server::Handler Authenticated(
      std::function<void(const std::string&, const httplib::Request&, httplib::Response&)> handle) const {
    return [this, handle = std::move(handle)](const httplib::Request& req, httplib::Response& res) {
      const std::string user = User(req);
      if (user.empty()) {
        return SendError(res, grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "a client certificate is required"));
      }
      handle(user, req, res);
    };
  }

  void Session(const std::string& user, const httplib::Request&, httplib::Response& res) const {
    SendJson(res, Json{{"identity", user}, {"tls", !insecure()}, {"rules", options.rules}}.dump());
  }

  void OpenAlerts(const std::string& user, const httplib::Request& req, httplib::Response& res) const {
    v1::ListAlertsRequest request;
    if (grpc::Status s = ReadFilters(req, &request); !s.ok()) return SendError(res, s);
    request.add_states(v1::FIRING);
    request.add_states(v1::ESCALATED);
    request.add_states(v1::ACKNOWLEDGED);
    request.set_page_size(1000);
    std::string out = "{\"alerts\":[";
    int n = 0;
    bool truncated = false;
    do {
      v1::ListAlertsResponse page;
      grpc::Status s = stub->ListAlerts(Context(user).get(), request, &page);
      if (!s.ok()) return SendError(res, s);
      for (const v1::Alert& a : page.alerts()) absl::StrAppend(&out, n++ ? "," : "", ToJsonLine(a));
      request.set_page_token(page.next_page_token());
      truncated = n >= options.max_alerts && !request.page_token().empty();
    } while (!request.page_token().empty() && !truncated);
    absl::StrAppend(&out, "],\"truncated\":", truncated ? "true" : "false", "}");
    SendJson(res, out);
  }

  void Watch(const std::string& user, const httplib::Request& req, httplib::Response& res) {
    v1::WatchAlertsRequest request;
    if (grpc::Status s = ReadFilters(req, &request); !s.ok()) return SendError(res, s);
    request.set_cursor(req.has_header("Last-Event-ID") ? req.get_header_value("Last-Event-ID")
                                                       : req.get_param_value("cursor"));
    // No deadline: it runs until the page goes.
    auto feed = std::make_shared<WatchFeed>(options.max_watch_backlog, Context(user, /*open_ended=*/true));
    {
      std::lock_guard<std::mutex> lock(feeds_mu);
      if (static_cast<int>(feeds.size()) >= options.max_watches) {
        return SendError(res, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                           absl::StrCat("at most ", options.max_watches, " live boards at once")));
      }
      feeds.insert(feed);
    }
    feed->Start(stub.get(), request, feed);
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [feed, keep_alive_ms = options.keep_alive_ms](size_t, httplib::DataSink& sink) {
          WatchFeed::Item item = feed->Next(keep_alive_ms);
          std::string out;
          switch (item.kind) {
            case WatchFeed::Item::kNothing: out = ": still here\n\n"; break;
            case WatchFeed::Item::kReady: out = "event: ready\ndata: {}\n\n"; break;
            case WatchFeed::Item::kTransition:
              out = absl::StrCat("id: ", item.response.cursor(), "\nevent: alert\ndata: ",
                                 ToJsonLine(item.response.alert()), "\n\n");
              break;
            case WatchFeed::Item::kEnd:
              out = absl::StrCat("event: end\ndata: ",
                                 Json{{"code", CodeName(item.status.error_code())},
                                      {"message", item.status.error_message()}}
                                     .dump(),
                                 "\n\n");
              sink.write(out.data(), out.size());
              sink.done();
              return true;
          }
          return sink.write(out.data(), out.size());
        },
        [this, feed](bool) {
          {
            std::lock_guard<std::mutex> lock(feeds_mu);
            feeds.erase(feed);  // its place is free before the API hears it has gone
          }
          feed->Cancel();
        });
  }

  void Acknowledge(const std::string& user, const httplib::Request& req, httplib::Response& res) const {
    // JSON only: a browser sends it cross-site only after a preflight this server never grants, so no other
    // site can make a user's browser acknowledge.
    if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
      return SendError(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the body must be application/json"));
    }
    Json body = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || (body.contains("note") && !body["note"].is_string())) {
      return SendError(res, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the body must be {\"note\": \"...\"}"));
    }
    v1::AcknowledgeAlertRequest request;
    request.set_name(absl::StrCat("alerts/", req.matches[1].str()));
    request.set_note(body.value("note", ""));
    v1::Alert alert;
    if (grpc::Status s = stub->AcknowledgeAlert(Context(user).get(), request, &alert); !s.ok()) {
      return SendError(res, s);
    }
    SendJson(res, ToJsonLine(alert));
  }

  void Victim(const std::string& user, const httplib::Request& req, httplib::Response& res) const {
    const std::string victim = req.matches[1].str();
    const std::string purpose = req.get_param_value("purpose");
    v1::GetRiskProfileRequest profile_request;
    profile_request.set_name(absl::StrCat("victims/", victim, "/riskProfile"));
    profile_request.set_purpose(purpose);
    v1::RiskProfile profile;
    if (grpc::Status s = stub->GetRiskProfile(Context(user).get(), profile_request, &profile); !s.ok()) {
      return SendError(res, s);
    }
    std::string out = absl::StrCat("{\"profile\":", ToJsonLine(profile), ",\"events\":[");
    v1::GetTimelineRequest timeline;
    timeline.set_parent(absl::StrCat("victims/", victim));
    timeline.set_purpose(purpose);
    timeline.set_page_size(1000);
    int events = 0;
    do {
      v1::GetTimelineResponse page;
      if (grpc::Status s = stub->GetTimeline(Context(user).get(), timeline, &page); !s.ok()) {
        return SendError(res, s);
      }
      for (const v1::Event& e : page.events()) absl::StrAppend(&out, events++ ? "," : "", ToJsonLine(e));
      timeline.set_page_token(page.next_page_token());
    } while (!timeline.page_token().empty() && events < kMaxVictimEvents);
    absl::StrAppend(&out, "],\"events_truncated\":", timeline.page_token().empty() ? "false" : "true",
                    ",\"alerts\":[");
    v1::ListAlertsRequest alerts;
    alerts.set_victim_id(victim);
    alerts.set_purpose(purpose);
    alerts.set_page_size(100);
    int n = 0;
    do {
      v1::ListAlertsResponse listed;
      if (grpc::Status s = stub->ListAlerts(Context(user).get(), alerts, &listed); !s.ok()) return SendError(res, s);
      for (const v1::Alert& a : listed.alerts()) {
        v1::ExplainAlertRequest explain;
        explain.set_name(absl::StrCat("alerts/", a.alert_id()));
        explain.set_purpose(purpose);
        v1::AlertExplanation explanation;
        if (grpc::Status s = stub->ExplainAlert(Context(user).get(), explain, &explanation); !s.ok()) {
          return SendError(res, s);
        }
        absl::StrAppend(&out, n++ ? "," : "", ToJsonLine(explanation));
      }
      alerts.set_page_token(listed.next_page_token());
    } while (!alerts.page_token().empty() && n < kMaxVictimAlerts);
    absl::StrAppend(&out, "],\"alerts_truncated\":", alerts.page_token().empty() ? "false" : "true", "}");
    SendJson(res, out);
  }
};

ConsoleServer::ConsoleServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConsoleServer::~ConsoleServer() {
  // Each open board's call ends, and its page is told so ("end": it reconnects, to another instance or to
  // this one restarted, and resumes) before the server stops: httplib writes no more once it is stopping.
  {
    std::lock_guard<std::mutex> lock(impl_->feeds_mu);
    for (const auto& feed : impl_->feeds) feed->Cancel();
  }
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lock(impl_->feeds_mu);
      if (impl_->feeds.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->serving.reset();
}
int ConsoleServer::port() const { return impl_->serving->port(); }

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::Start(const ConsoleOptions& options,
                                                                    std::shared_ptr<grpc::Channel> api) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->stub = v1::RiskService::NewStub(api);
  std::unique_ptr<httplib::Server> http;
  if (options.insecure_identity.empty()) {
    if (options.tls_cert.empty() || options.tls_key.empty() || options.tls_client_ca.empty()) {
      return absl::InvalidArgumentError(
          "the console wants a certificate, its key and the CA of users' client certificates "
          "(--tls-cert, --tls-key, --tls-client-ca), or --insecure-dev-identity for development");
    }
    auto https = std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str(),
                                                      options.tls_client_ca.c_str());
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("the console cannot read its TLS files (", options.tls_cert,
                                                     ", ", options.tls_key, ", ", options.tls_client_ca, ")"));
    }
    http = std::move(https);
  } else {
    http = std::make_unique<httplib::Server>();
  }
  // Live boards hold a thread each while open: room for them and for the page's other requests.
  const int threads = options.max_watches + 8;
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http->set_payload_max_length(64 * 1024);
  Impl* c = impl.get();
  http->set_default_headers({{"X-Content-Type-Options", "nosniff"},
                             {"X-Frame-Options", "DENY"},
                             {"Referrer-Policy", "no-referrer"},
                             {"Content-Security-Policy",
                              "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"}});
  http->set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    // httplib prefers brotli, at its slowest quality: 2 s to send a board of 2,000 alerts, against 10 ms with
    // gzip (measured with curl). A browser is offered gzip instead. (The request is httplib's own, not const:
    // it hands handlers a const view of it.)
    auto& headers = const_cast<httplib::Headers&>(req.headers);
    for (auto [it, end] = headers.equal_range("Accept-Encoding"); it != end; ++it) {
      if (it->second.find("br") != std::string::npos) {
        it->second = it->second.find("gzip") != std::string::npos ? "gzip" : "identity";
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http->Get("/", [](const httplib::Request&, httplib::Response& res) { SendAsset(res, "board.html"); });
  http->Get(R"(/victims/([^/]+))",
            [](const httplib::Request&, httplib::Response& res) { SendAsset(res, "victim.html"); });
  http->Get(R"(/static/([A-Za-z0-9._-]+))",
            [](const httplib::Request& req, httplib::Response& res) { SendAsset(res, req.matches[1].str()); });
  using std::placeholders::_1, std::placeholders::_2, std::placeholders::_3;
  http->Get("/api/session", c->Authenticated(std::bind(&Impl::Session, c, _1, _2, _3)));
  http->Get("/api/alerts", c->Authenticated(std::bind(&Impl::OpenAlerts, c, _1, _2, _3)));
  http->Get("/api/watch", c->Authenticated(std::bind(&Impl::Watch, c, _1, _2, _3)));
  http->Post(R"(/api/alerts/([^/]+)/acknowledge)", c->Authenticated(std::bind(&Impl::Acknowledge, c, _1, _2, _3)));
  http->Get(R"(/api/victims/([^/]+))", c->Authenticated(std::bind(&Impl::Victim, c, _1, _2, _3)));
  auto serving = HttpServing::Start(std::move(http), options.listen, "--console-listen");
  if (!serving.ok()) return serving.status();
  impl->serving = *std::move(serving);
  return std::unique_ptr<ConsoleServer>(new ConsoleServer(std::move(impl)));
}

}  // namespace vigil
