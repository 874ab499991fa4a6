// Builders that make tests read like the domain:
//   Ev("c1").Victim("V1").At("10:00").Incident("I1").Call().DomesticAbuse().Suspect("S1")
// Times are on 2024-09-07 (UTC) unless a day offset is given: At("10:00", 1) is the next day.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/time_util.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/event.pb.h"

namespace vigil::testing {

// "HH:MM" or "HH:MM:SS" on 2024-09-07 plus `day` days, as micros.
inline Micros T(const std::string& clock, int day = 0) {
  std::string text = clock.size() == 5 ? clock + ":00" : clock;
  return *ParseRfc3339("2024-09-07T" + text + "Z") + day * kMicrosPerDay;
}

class Ev {
 public:
  explicit Ev(std::string event_id) {
    e_.set_event_id(std::move(event_id));
    e_.set_victim_id("V1");
    e_.set_incident_id("I1");
    e_.set_force("lancashire");
    e_.set_source("test");
    *e_.mutable_occurred_at() = ToTimestamp(T("10:00"));
  }
  Ev& Victim(std::string v) { e_.set_victim_id(std::move(v)); return *this; }
  Ev& Incident(std::string i) { e_.set_incident_id(std::move(i)); return *this; }
  Ev& At(const std::string& clock, int day = 0) { *e_.mutable_occurred_at() = ToTimestamp(T(clock, day)); return *this; }
  Ev& AtMicros(Micros t) { *e_.mutable_occurred_at() = ToTimestamp(t); return *this; }

  Ev& Call(bool domestic_abuse = true, std::string suspect = "") {
    auto* p = e_.mutable_call_received();
    p->set_caller_role(v1::CallReceived::VICTIM);
    p->set_channel(v1::CallReceived::EMERGENCY);
    p->set_domestic_abuse(domestic_abuse);
    p->set_suspect_id(std::move(suspect));
    return *this;
  }
  // Modifies a Call(): the caller rang off; on a given channel.
  Ev& Abandoned() { e_.mutable_call_received()->set_abandoned(true); return *this; }
  Ev& Channel(v1::CallReceived::Channel c) { e_.mutable_call_received()->set_channel(c); return *this; }
  Ev& CallReturned() { e_.mutable_call_returned(); return *this; }
  Ev& Graded(v1::IncidentGraded::Grade g, bool urgent = false) {
    e_.mutable_incident_graded()->set_grade(g);
    e_.mutable_incident_graded()->set_treat_as_urgent(urgent);
    return *this;
  }
  Ev& Marker(std::string suspect, v1::MarkerMatched::Marker m) {
    e_.mutable_marker_matched()->set_suspect_id(std::move(suspect));
    e_.mutable_marker_matched()->set_marker(m);
    return *this;
  }
  Ev& UnitUnavailable() { e_.mutable_unit_unavailable()->set_reason("no units free"); return *this; }
  Ev& UnitAssigned() { e_.mutable_unit_assigned()->set_unit_id("U1"); return *this; }
  Ev& UnitArrived() { e_.mutable_unit_arrived()->set_unit_id("U1"); return *this; }
  Ev& ArrestRequested(std::string request, v1::ArrestRequested::Urgency u = v1::ArrestRequested::URGENT,
                      std::string suspect = "S1") {
    auto* p = e_.mutable_arrest_requested();
    p->set_request_id(std::move(request));
    p->set_suspect_id(std::move(suspect));
    p->set_urgency(u);
    return *this;
  }
  Ev& ArrestDeferred(std::string request, std::string authorised_by = "", Micros until = 0) {
    auto* p = e_.mutable_arrest_deferred();
    p->set_request_id(std::move(request));
    p->set_reason("no units");
    p->set_authorised_by(std::move(authorised_by));
    if (until != 0) *p->mutable_defer_until() = ToTimestamp(until);
    return *this;
  }
  Ev& ArrestAttempted(std::string request, v1::ArrestAttempted::Outcome o = v1::ArrestAttempted::ARRESTED) {
    e_.mutable_arrest_attempted()->set_request_id(std::move(request));
    e_.mutable_arrest_attempted()->set_outcome(o);
    return *this;
  }
  Ev& Assessed(v1::RiskAssessed::Level level, uint32_t yes = 0) {
    auto* p = e_.mutable_risk_assessed();
    p->set_tool(v1::RiskAssessed::DASH);
    p->set_level(level);
    p->set_yes_count(yes);
    return *this;
  }
  Ev& Protection(std::string id, v1::ProtectionRecorded::Kind kind, std::string suspect, Micros expires = 0) {
    auto* p = e_.mutable_protection_recorded();
    p->set_protection_id(std::move(id));
    p->set_kind(kind);
    p->set_suspect_id(std::move(suspect));
    if (expires != 0) *p->mutable_expires_at() = ToTimestamp(expires);
    return *this;
  }
  Ev& ProtectionEnded(std::string id) {
    e_.mutable_protection_ended()->set_protection_id(std::move(id));
    e_.mutable_protection_ended()->set_reason("withdrawn");
    return *this;
  }
  Ev& Hearing(std::string id, v1::CourtHearingRecorded::Outcome o = v1::CourtHearingRecorded::GRANTED) {
    e_.mutable_court_hearing_recorded()->set_protection_id(std::move(id));
    e_.mutable_court_hearing_recorded()->set_outcome(o);
    return *this;
  }
  Ev& Bail(std::string id, std::string suspect, Micros until, bool conditions = true) {
    auto* p = e_.mutable_bail_recorded();
    p->set_bail_id(std::move(id));
    p->set_suspect_id(std::move(suspect));
    *p->mutable_bail_until() = ToTimestamp(until);
    p->set_with_conditions(conditions);
    return *this;
  }
  Ev& BailDecided(std::string id, v1::BailDecided::Outcome o, Micros until = 0) {
    auto* p = e_.mutable_bail_decided();
    p->set_bail_id(std::move(id));
    p->set_outcome(o);
    if (until != 0) *p->mutable_bail_until() = ToTimestamp(until);
    return *this;
  }
  Ev& RulesChanged(std::string version, std::string yaml) {
    e_.mutable_rules_changed()->set_version(std::move(version));
    e_.mutable_rules_changed()->set_rules_yaml(std::move(yaml));
    return *this;
  }
  // Modifies an Assessed(): non-fatal strangulation disclosed.
  Ev& Strangulation() { e_.mutable_risk_assessed()->set_strangulation(true); return *this; }
  Ev& MaracReferred() { e_.mutable_marac_referred(); return *this; }
  Ev& DisclosureRequested(std::string app) {
    e_.mutable_disclosure_requested()->set_application_id(std::move(app));
    e_.mutable_disclosure_requested()->set_route(v1::DisclosureRequested::RIGHT_TO_ASK);
    return *this;
  }
  Ev& DisclosureDecided(std::string app) { e_.mutable_disclosure_decided()->set_application_id(std::move(app)); return *this; }
  Ev& SupervisorNotified() { e_.mutable_supervisor_notified()->set_supervisor_id("SGT1"); return *this; }
  Ev& Ack(std::string alert_id, std::string by = "SGT1") {
    e_.mutable_escalation_acknowledged()->set_alert_id(std::move(alert_id));
    e_.mutable_escalation_acknowledged()->set_acknowledged_by(std::move(by));
    return *this;
  }
  Ev& Closed() { e_.mutable_incident_closed(); return *this; }
  Ev& CrimeRecorded() { e_.mutable_crime_recorded()->set_crime_ref("CR1"); return *this; }

  const v1::Event& event() const { return e_; }
  operator const v1::Event&() const { return e_; }  // NOLINT: builders convert implicitly

 private:
  v1::Event e_;
};

// "repeat-calls FIRING SUPERVISOR 2024-09-07T10:30:00Z V1/I1 [c1 c2]"
inline std::string Describe(const v1::Alert& a) {
  return absl::StrCat(a.rule(), " ", v1::AlertState_Name(a.state()), " ", v1::Level_Name(a.level()), " ",
                      FormatRfc3339(ToMicros(a.at())), " ", a.victim_id(), "/", a.incident_id(), " [",
                      absl::StrJoin(a.evidence_event_ids(), " "), "]");
}

inline std::vector<std::string> Describe(const std::vector<v1::Alert>& alerts) {
  std::vector<std::string> out;
  for (const auto& a : alerts) out.push_back(Describe(a));
  return out;
}

}  // namespace vigil::testing
