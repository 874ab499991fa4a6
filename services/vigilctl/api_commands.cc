#include "services/vigilctl/api_commands.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/jsonl.h"
#include "common/time_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "services/vigilctl/commands.h"
#include "vigil/v1/risk_service.grpc.pb.h"

namespace vigil::ctl {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const ApiOptions& o) {
  if (o.insecure) return grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  for (auto [path, field, flag] : {std::tuple{&o.tls_ca, &ssl.pem_root_certs, "--tls-ca"},
                                   std::tuple{&o.tls_cert, &ssl.pem_cert_chain, "--tls-cert"},
                                   std::tuple{&o.tls_key, &ssl.pem_private_key, "--tls-key"}}) {
    if (path->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " is required (or --insecure for a development server)"));
    }
    auto text = ReadFile(*path);
    if (!text.ok()) return text.status();
    *field = *std::move(text);
  }
  return grpc::CreateChannel(o.server, grpc::SslCredentials(ssl));
}

// The error, with any field violations, on `err`; the exit status.
int Failed(const grpc::Status& s, std::ostream& err) {
  static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                       "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                       "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int code = s.error_code();
  err << "vigilctl: " << (code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN") << ": " << s.error_message() << "\n";
  google::rpc::Status details;
  if (!s.error_details().empty() && details.ParseFromString(s.error_details())) {
    for (const auto& any : details.details()) {
      google::rpc::BadRequest bad;
      if (any.UnpackTo(&bad)) {
        for (const auto& v : bad.field_violations()) err << "  " << v.field() << ": " << v.description() << "\n";
      }
    }
  }
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kExitBadInput : kExitFailure;
}

std::string Time(const google::protobuf::Timestamp& t) { return FormatRfc3339(ToMicros(t)); }

std::string EventType(const v1::Event& e) {
  const auto* field = v1::Event::descriptor()->FindFieldByNumber(e.payload_case());
  return field ? field->name() : "-";
}

void PrintEvents(const google::protobuf::RepeatedPtrField<v1::Event>& events, std::ostream& out) {
  for (const v1::Event& e : events) {
    out << absl::StrFormat("%s  %-22s %-14s %-10s %s\n", Time(e.occurred_at()), EventType(e),
                           e.incident_id().empty() ? "-" : e.incident_id(), e.force().empty() ? "-" : e.force(),
                           e.event_id());
  }
}

void PrintProfile(const v1::RiskProfile& p, std::ostream& out) {
  out << "victim " << p.victim_id() << " as of " << Time(p.as_of()) << ": risk "
      << v1::RiskProfile::RiskLevel_Name(p.risk_level()) << "\n";
  for (const auto& r : p.risk_reasons()) out << "  because " << r << "\n";
  out << absl::StrFormat("calls: %d (%d in the last 24h); incidents: %d (%d domestic abuse in the last 365d)%s\n",
                         p.calls_total(), p.calls_last_24h(), p.incidents_total(),
                         p.domestic_abuse_incidents_last_365d(), p.marac_referred() ? "; referred to MARAC" : "");
  if (p.has_latest_assessment()) {
    const auto& a = p.latest_assessment();
    out << "latest assessment: " << v1::RiskAssessed::Tool_Name(a.tool()) << " "
        << v1::RiskAssessed::Level_Name(a.effective_level()) << " (recorded "
        << v1::RiskAssessed::Level_Name(a.recorded_level()) << ", " << a.yes_count() << " yes) at " << Time(a.at())
        << "\n";
  }
  for (const auto& m : p.markers()) {
    out << "marker: " << v1::MarkerMatched::Marker_Name(m.marker()) << " on suspect " << m.suspect_id() << " at "
        << Time(m.matched_at()) << "\n";
  }
  for (const auto& d : p.open_deadlines()) {
    out << "open deadline: " << d.rule() << " due " << Time(d.due()) << ", awaiting " << d.awaiting() << "\n";
  }
  for (const auto& a : p.active_alerts()) out << "active: " << FormatAlert(a) << "\n";
}

template <typename Enum>
absl::StatusOr<std::vector<Enum>> ParseEnums(const std::vector<std::string>& names, bool (*parse)(const std::string&,
                                                                                                  Enum*),
                                             absl::string_view flag) {
  std::vector<Enum> out;
  for (const std::string& n : names) {
    Enum e;
    if (!parse(n, &e)) return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown value ", n));
    out.push_back(e);
  }
  return out;
}

// Sets the field (made by `field`) only when a time is given: a field present is a bound.
template <typename Field>
absl::Status SetTime(const std::string& text, Field field, absl::string_view flag) {
  if (text.empty()) return absl::OkStatus();
  auto micros = ParseRfc3339(text);
  if (!micros.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", micros.status().message()));
  *field() = ToTimestamp(*micros);
  return absl::OkStatus();
}

class Caller {
 public:
  Caller(const ApiCall& call, std::ostream& out, std::ostream& err)
      : call_(call), out_(out), err_(err) {}

  int Run(std::istream& in) {
    auto channel = Connect(call_.api);
    if (!channel.ok()) return Usage(channel.status());
    stub_ = v1::RiskService::NewStub(*channel);
    const std::string& m = call_.method;
    if (m == "record") return Record(in);
    if (m == "timeline") return Timeline();
    if (m == "profile") return Profile();
    if (m == "alerts") return Alerts();
    if (m == "alert") return Alert();
    if (m == "ack") return Ack();
    if (m == "watch") return Watch();
    if (m == "explain") return Explain();
    if (m == "health") return Health(*channel);
    return Usage(absl::InvalidArgumentError(absl::StrCat("unknown call ", m)));
  }

 private:
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    const int seconds = call_.api.timeout_s > 0 ? call_.api.timeout_s : call_.method == "watch" ? 0 : 30;
    if (seconds > 0) context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return context;
  }

  int Usage(const absl::Status& s) {
    err_ << "vigilctl: " << s.message() << "\n";
    return kExitBadInput;
  }

  int Print(const google::protobuf::Message& m) {
    out_ << ToJsonLine(m) << "\n";
    return kExitOk;
  }

  int Record(std::istream& in) {
    std::ifstream file;
    std::istream* events = OpenEvents(call_.events, "record", in, file, err_);
    if (events == nullptr) return kExitBadInput;
    std::istream& source = *events;
    std::vector<v1::RecordEventRequest> requests;
    std::string line;
    for (size_t number = 1; std::getline(source, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      v1::RecordEventRequest r;
      if (absl::Status s = ParseJsonLine(line, r.mutable_event()); !s.ok()) {
        return Usage(absl::InvalidArgumentError(absl::StrCat("line ", number, ": ", s.message())));
      }
      r.set_wait_applied(call_.wait);
      requests.push_back(std::move(r));
    }
    auto context = Context();
    v1::RecordEventsResponse response;
    auto writer = stub_->RecordEvents(context.get(), &response);
    for (const auto& r : requests) {
      if (!writer->Write(r)) break;
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (!s.ok()) return Failed(s, err_);
    if (call_.api.json) {
      for (const auto& r : response.results()) Print(r);
      return kExitOk;
    }
    for (const auto& r : response.results()) {
      out_ << absl::StrFormat("%-28s %s[%d]@%d%s\n", r.event_id(), r.topic(), r.partition(), r.offset(),
                              r.applied() ? " applied" : "");
    }
    out_ << "recorded " << response.results_size() << " events\n";
    return kExitOk;
  }

  int Timeline() {
    v1::GetTimelineRequest r;
    r.set_parent(absl::StrCat("victims/", call_.target));
    r.set_purpose(call_.purpose);
    r.set_page_size(call_.page_size);
    if (absl::Status s = SetTime(call_.from, [&] { return r.mutable_start_time(); }, "--from"); !s.ok()) return Usage(s);
    if (absl::Status s = SetTime(call_.to, [&] { return r.mutable_end_time(); }, "--to"); !s.ok()) return Usage(s);
    do {
      v1::GetTimelineResponse response;
      grpc::Status s = stub_->GetTimeline(Context().get(), r, &response);
      if (!s.ok()) return Failed(s, err_);
      if (call_.api.json) {
        for (const auto& e : response.events()) Print(e);
      } else {
        PrintEvents(response.events(), out_);
      }
      r.set_page_token(response.next_page_token());
    } while (call_.all_pages && !r.page_token().empty());
    if (!r.page_token().empty() && !call_.api.json) out_ << "(more: --all)\n";
    return kExitOk;
  }

  int Profile() {
    v1::GetRiskProfileRequest r;
    r.set_name(absl::StrCat("victims/", call_.target, "/riskProfile"));
    r.set_purpose(call_.purpose);
    v1::RiskProfile p;
    grpc::Status s = stub_->GetRiskProfile(Context().get(), r, &p);
    if (!s.ok()) return Failed(s, err_);
    if (call_.api.json) return Print(p);
    PrintProfile(p, out_);
    return kExitOk;
  }

  int Alerts() {
    v1::ListAlertsRequest r;
    auto states = ParseEnums<v1::AlertState>(call_.states, v1::AlertState_Parse, "--state");
    if (!states.ok()) return Usage(states.status());
    auto levels = ParseEnums<v1::Level>(call_.levels, v1::Level_Parse, "--level");
    if (!levels.ok()) return Usage(levels.status());
    for (auto s : *states) r.add_states(s);
    for (auto l : *levels) r.add_levels(l);
    r.set_rule(call_.rule);
    r.set_force(call_.force);
    r.set_victim_id(call_.victim);
    r.set_page_size(call_.page_size);
    r.set_purpose(call_.purpose);
    if (absl::Status s = SetTime(call_.from, [&] { return r.mutable_start_time(); }, "--from"); !s.ok()) return Usage(s);
    if (absl::Status s = SetTime(call_.to, [&] { return r.mutable_end_time(); }, "--to"); !s.ok()) return Usage(s);
    do {
      v1::ListAlertsResponse response;
      grpc::Status s = stub_->ListAlerts(Context().get(), r, &response);
      if (!s.ok()) return Failed(s, err_);
      for (const auto& a : response.alerts()) {
        if (call_.api.json) {
          Print(a);
        } else {
          out_ << FormatAlert(a) << "\n";
        }
      }
      r.set_page_token(response.next_page_token());
    } while (call_.all_pages && !r.page_token().empty());
    if (!r.page_token().empty() && !call_.api.json) out_ << "(more: --all)\n";
    return kExitOk;
  }

  int Alert() {
    v1::GetAlertRequest r;
    r.set_name(absl::StrCat("alerts/", call_.target));
    r.set_purpose(call_.purpose);
    v1::Alert a;
    return ShowAlert(stub_->GetAlert(Context().get(), r, &a), a);
  }

  int Ack() {
    v1::AcknowledgeAlertRequest r;
    r.set_name(absl::StrCat("alerts/", call_.target));
    r.set_note(call_.note);
    v1::Alert a;
    return ShowAlert(stub_->AcknowledgeAlert(Context().get(), r, &a), a);
  }

  // The alert a call returned, or its error.
  int ShowAlert(const grpc::Status& s, const v1::Alert& a) {
    if (!s.ok()) return Failed(s, err_);
    if (call_.api.json) return Print(a);
    out_ << FormatAlert(a) << "\n";
    return kExitOk;
  }

  int Watch() {
    v1::WatchAlertsRequest r;
    r.set_cursor(call_.cursor);
    r.set_purpose(call_.purpose);
    auto levels = ParseEnums<v1::Level>(call_.levels, v1::Level_Parse, "--level");
    if (!levels.ok()) return Usage(levels.status());
    for (auto l : *levels) r.add_levels(l);
    r.set_rule(call_.rule);
    r.set_force(call_.force);
    auto context = Context();
    auto reader = stub_->WatchAlerts(context.get(), r);
    v1::WatchAlertsResponse response;
    size_t seen = 0;
    while (reader->Read(&response)) {
      if (call_.api.json) {
        Print(response);
      } else {
        out_ << FormatAlert(response.alert()) << "\n";
      }
      out_.flush();
      if (call_.max > 0 && ++seen == call_.max) {
        context->TryCancel();
        if (!call_.api.json) out_ << "cursor " << response.cursor() << "\n";
        reader->Finish();
        return kExitOk;
      }
    }
    grpc::Status s = reader->Finish();
    // A watch that ran for its --timeout ended as asked.
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && call_.api.timeout_s > 0) return kExitOk;
    return s.ok() ? kExitOk : Failed(s, err_);
  }

  // The standard health check: SERVING exits 0, anything else 1 (a readiness probe).
  int Health(std::shared_ptr<grpc::Channel> channel) {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckRequest r;
    r.set_service(call_.target);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status s = health->Check(Context().get(), r, &response);
    if (!s.ok()) return Failed(s, err_);
    if (call_.api.json) {
      Print(response);
    } else {
      out_ << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
    }
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitFailure;
  }

  int Explain() {
    v1::ExplainAlertRequest r;
    r.set_name(absl::StrCat("alerts/", call_.target));
    r.set_purpose(call_.purpose);
    v1::AlertExplanation e;
    grpc::Status s = stub_->ExplainAlert(Context().get(), r, &e);
    if (!s.ok()) return Failed(s, err_);
    if (call_.api.json) return Print(e);
    out_ << FormatAlert(e.alert()) << "\n";
    const auto& rs = e.rule_settings();
    out_ << "rule " << rs.rule() << ": fires at " << rs.threshold() << ", raised to " << v1::Level_Name(rs.level())
         << ", climbs a level every " << FormatDuration(rs.acknowledge_within().seconds() * kMicrosPerSecond)
         << " unacknowledged\n";
    out_ << "evidence:\n";
    PrintEvents(e.evidence(), out_);
    return kExitOk;
  }

  const ApiCall& call_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<v1::RiskService::Stub> stub_;
};

}  // namespace

int CallApi(const ApiCall& call, std::istream& in, std::ostream& out, std::ostream& err) {
  return Caller(call, out, err).Run(in);
}

}  // namespace vigil::ctl
