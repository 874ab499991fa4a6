#include "services/escalation/engine/validate.h"

#include <cstdint>
#include <cstring>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "services/escalation/engine/rules_config.h"

namespace vigil {
namespace {

using v1::Event;

// Events from before 1970 or from 2100 on are not police records but errors.
constexpr int64_t kLatestSeconds = 4102444800;  // 2100-01-01T00:00:00Z

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckId(absl::string_view field, const std::string& value, bool required) {
  if (value.empty()) return required ? Invalid(field, "required") : absl::OkStatus();
  if (value.size() > kMaxIdLength) {
    return Invalid(field, absl::StrCat("longer than ", kMaxIdLength, " characters"));
  }
  if (!IsPrintable(value)) return Invalid(field, "has control characters");
  return absl::OkStatus();
}

absl::Status CheckText(absl::string_view field, const std::string& value) {
  if (value.size() > kMaxTextLength) {
    return Invalid(field, absl::StrCat("longer than ", kMaxTextLength, " characters"));
  }
  return absl::OkStatus();
}

absl::Status CheckTime(absl::string_view field, const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < 0 || ts.seconds() >= kLatestSeconds || ts.nanos() < 0 || ts.nanos() > 999999999) {
    return Invalid(field, "outside 1970-01-01 to 2099-12-31");
  }
  return absl::OkStatus();
}

// Enum fields: set, and to a value the contract knows.
template <typename IsValid>
absl::Status CheckEnum(absl::string_view field, int value, IsValid is_valid, absl::string_view names) {
  if (value == 0) return Invalid(field, absl::StrCat("required (", names, ")"));
  if (!is_valid(value)) return Invalid(field, absl::StrCat("unknown value ", value, " (", names, ")"));
  return absl::OkStatus();
}

absl::Status CheckPayload(const Event& e) {
  switch (e.payload_case()) {
    case Event::kCallReceived: {
      const auto& p = e.call_received();
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      if (p.caller_role() != 0 && !v1::CallReceived::CallerRole_IsValid(p.caller_role())) {
        return Invalid("call_received.caller_role", "unknown value");
      }
      if (p.channel() != 0 && !v1::CallReceived::Channel_IsValid(p.channel())) {
        return Invalid("call_received.channel", "unknown value");
      }
      return CheckId("call_received.suspect_id", p.suspect_id(), false);
    }
    case Event::kIncidentGraded:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckEnum("incident_graded.grade", e.incident_graded().grade(),
                       v1::IncidentGraded::Grade_IsValid,
                       "IMMEDIATE, PRIORITY, SCHEDULED or RESOLVE_WITHOUT_DEPLOYMENT");
    case Event::kMarkerMatched:
      VIGIL_RETURN_IF_ERROR(CheckId("marker_matched.suspect_id", e.marker_matched().suspect_id(), true));
      return CheckEnum("marker_matched.marker", e.marker_matched().marker(),
                       v1::MarkerMatched::Marker_IsValid,
                       "VIOLENCE, WEAPONS or DOMESTIC_ABUSE_PERPETRATOR");
    case Event::kUnitUnavailable:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckText("unit_unavailable.reason", e.unit_unavailable().reason());
    case Event::kUnitAssigned:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckId("unit_assigned.unit_id", e.unit_assigned().unit_id(), false);
    case Event::kUnitArrived:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckId("unit_arrived.unit_id", e.unit_arrived().unit_id(), false);
    case Event::kArrestRequested: {
      const auto& p = e.arrest_requested();
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("arrest_requested.request_id", p.request_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("arrest_requested.suspect_id", p.suspect_id(), false));
      return CheckEnum("arrest_requested.urgency", p.urgency(), v1::ArrestRequested::Urgency_IsValid,
                       "URGENT or ROUTINE");
    }
    case Event::kArrestDeferred: {
      const auto& p = e.arrest_deferred();
      VIGIL_RETURN_IF_ERROR(CheckId("arrest_deferred.request_id", p.request_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("arrest_deferred.authorised_by", p.authorised_by(), false));
      VIGIL_RETURN_IF_ERROR(CheckText("arrest_deferred.reason", p.reason()));
      if (p.has_defer_until()) VIGIL_RETURN_IF_ERROR(CheckTime("arrest_deferred.defer_until", p.defer_until()));
      if (!p.authorised_by().empty() && !p.has_defer_until()) {
        return Invalid("arrest_deferred.defer_until",
                       "required for an authorised deferral (the time by which the attempt will be made)");
      }
      return absl::OkStatus();
    }
    case Event::kArrestAttempted:
      VIGIL_RETURN_IF_ERROR(CheckId("arrest_attempted.request_id", e.arrest_attempted().request_id(), true));
      return CheckEnum("arrest_attempted.outcome", e.arrest_attempted().outcome(),
                       v1::ArrestAttempted::Outcome_IsValid, "ARRESTED or NOT_FOUND");
    case Event::kRiskAssessed: {
      const auto& p = e.risk_assessed();
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckEnum("risk_assessed.tool", p.tool(), v1::RiskAssessed::Tool_IsValid, "DASH or DARA"));
      VIGIL_RETURN_IF_ERROR(CheckEnum("risk_assessed.level", p.level(), v1::RiskAssessed::Level_IsValid,
                               "STANDARD, MEDIUM or HIGH"));
      if (p.yes_count() > 24) return Invalid("risk_assessed.yes_count", "more than 24 questions");
      return absl::OkStatus();
    }
    case Event::kCrimeRecorded:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckId("crime_recorded.crime_ref", e.crime_recorded().crime_ref(), true);
    case Event::kSafeguardingRecorded:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckText("safeguarding_recorded.action", e.safeguarding_recorded().action());
    case Event::kMaracReferred:
      return absl::OkStatus();
    case Event::kDisclosureRequested: {
      const auto& p = e.disclosure_requested();
      VIGIL_RETURN_IF_ERROR(CheckId("disclosure_requested.application_id", p.application_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("disclosure_requested.subject_id", p.subject_id(), false));
      if (p.route() != 0 && !v1::DisclosureRequested::Route_IsValid(p.route())) {
        return Invalid("disclosure_requested.route", "unknown value (RIGHT_TO_ASK or RIGHT_TO_KNOW)");
      }
      return absl::OkStatus();
    }
    case Event::kDisclosureDecided:
      return CheckId("disclosure_decided.application_id", e.disclosure_decided().application_id(), true);
    case Event::kSupervisorNotified:
      VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), true));
      return CheckId("supervisor_notified.supervisor_id", e.supervisor_notified().supervisor_id(), false);
    case Event::kEscalationAcknowledged:
      VIGIL_RETURN_IF_ERROR(CheckId("escalation_acknowledged.alert_id", e.escalation_acknowledged().alert_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("escalation_acknowledged.acknowledged_by",
                                    e.escalation_acknowledged().acknowledged_by(), true));
      return CheckText("escalation_acknowledged.note", e.escalation_acknowledged().note());
    case Event::kIncidentClosed:
    case Event::kCallReturned:
      return CheckId("incident_id", e.incident_id(), true);
    case Event::kSuspectFinding: {
      const auto& f = e.suspect_finding();
      VIGIL_RETURN_IF_ERROR(CheckId("suspect_finding.suspect_id", f.suspect_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("suspect_finding.event_id", f.event_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("suspect_finding.incident_id", f.incident_id(), false));
      if (f.victim_id() != e.victim_id()) return Invalid("suspect_finding.victim_id", "is not the event's victim_id");
      if (f.victim_count() < 1) return Invalid("suspect_finding.victim_count", "required");
      if (f.evidence_event_ids_size() < 1 || f.evidence_event_ids_size() > 1000) {
        return Invalid("suspect_finding.evidence_event_ids", "1 to 1000 required");
      }
      for (const auto& id : f.evidence_event_ids()) {
        VIGIL_RETURN_IF_ERROR(CheckId("suspect_finding.evidence_event_ids", id, true));
      }
      return absl::OkStatus();
    }
    case Event::kProtectionRecorded: {
      const auto& p = e.protection_recorded();
      VIGIL_RETURN_IF_ERROR(CheckId("protection_recorded.protection_id", p.protection_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckEnum("protection_recorded.kind", p.kind(), v1::ProtectionRecorded::Kind_IsValid,
                                      "DVPN, DVPO, DAPN, DAPO, RESTRAINING_ORDER, NON_MOLESTATION_ORDER or "
                                      "STALKING_PROTECTION_ORDER"));
      VIGIL_RETURN_IF_ERROR(CheckId("protection_recorded.suspect_id", p.suspect_id(), true));
      if (p.has_expires_at()) VIGIL_RETURN_IF_ERROR(CheckTime("protection_recorded.expires_at", p.expires_at()));
      return absl::OkStatus();
    }
    case Event::kProtectionEnded:
      VIGIL_RETURN_IF_ERROR(CheckId("protection_ended.protection_id", e.protection_ended().protection_id(), true));
      return CheckText("protection_ended.reason", e.protection_ended().reason());
    case Event::kCourtHearingRecorded:
      VIGIL_RETURN_IF_ERROR(
          CheckId("court_hearing_recorded.protection_id", e.court_hearing_recorded().protection_id(), true));
      return CheckEnum("court_hearing_recorded.outcome", e.court_hearing_recorded().outcome(),
                       v1::CourtHearingRecorded::Outcome_IsValid, "GRANTED, REFUSED or ADJOURNED");
    case Event::kBailRecorded: {
      const auto& p = e.bail_recorded();
      VIGIL_RETURN_IF_ERROR(CheckId("bail_recorded.bail_id", p.bail_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckId("bail_recorded.suspect_id", p.suspect_id(), true));
      if (!p.has_bail_until()) return Invalid("bail_recorded.bail_until", "required");
      return CheckTime("bail_recorded.bail_until", p.bail_until());
    }
    case Event::kBailDecided: {
      const auto& p = e.bail_decided();
      VIGIL_RETURN_IF_ERROR(CheckId("bail_decided.bail_id", p.bail_id(), true));
      VIGIL_RETURN_IF_ERROR(CheckEnum("bail_decided.outcome", p.outcome(), v1::BailDecided::Outcome_IsValid,
                                      "EXTENDED, CHARGED, NO_FURTHER_ACTION or RELEASED_UNDER_INVESTIGATION"));
      if (p.outcome() == v1::BailDecided::EXTENDED && !p.has_bail_until()) {
        return Invalid("bail_decided.bail_until", "required when EXTENDED (the new end)");
      }
      if (p.has_bail_until()) VIGIL_RETURN_IF_ERROR(CheckTime("bail_decided.bail_until", p.bail_until()));
      return absl::OkStatus();
    }
    case Event::kRulesChanged: {
      const auto& p = e.rules_changed();
      VIGIL_RETURN_IF_ERROR(CheckId("rules_changed.version", p.version(), true));
      if (p.version().size() > 64) return Invalid("rules_changed.version", "longer than 64 characters");
      absl::StatusOr<RulesConfig> rules = ParseRulesYaml(p.rules_yaml(), "rules_changed.rules_yaml");
      if (!rules.ok()) return rules.status();
      return absl::OkStatus();
    }
    case Event::kClockTick:
      return Invalid("clock_tick", "written by vigild only, on the key __clock__");
    case Event::PAYLOAD_NOT_SET:
      break;
  }
  return Invalid("payload", "no payload (one of call_received, incident_graded, ... is required)");
}

}  // namespace

// No byte below 0x20 and none 0x7f. Eight bytes at a time: (w - 0x20 in each byte) & ~w & 0x80 in each byte is
// nonzero exactly when some byte of w is below 0x20, and the same test for 0x01 on w ^ 0x7f... finds a 0x7f.
// The last word overlaps the one before it; a string under eight bytes is padded with a printable byte.
bool IsPrintable(absl::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  auto bad = [](uint64_t w) {
    const uint64_t del = w ^ (0x7f * kOnes);
    return (((w - 0x20 * kOnes) & ~w) | ((del - kOnes) & ~del)) & kHigh;
  };
  uint64_t w = 'x' * kOnes;
  if (s.size() < 8) {
    if (!s.empty()) std::memcpy(&w, s.data(), s.size());
    return bad(w) == 0;
  }
  for (size_t i = 0; i + 8 < s.size(); i += 8) {
    std::memcpy(&w, s.data() + i, 8);
    if (bad(w) != 0) return false;
  }
  std::memcpy(&w, s.data() + s.size() - 8, 8);
  return bad(w) == 0;
}

absl::Status ValidateEvent(const Event& e) {
  VIGIL_RETURN_IF_ERROR(CheckId("event_id", e.event_id(), true));
  VIGIL_RETURN_IF_ERROR(CheckId("victim_id", e.victim_id(), true));
  if (!e.has_occurred_at()) return Invalid("occurred_at", "required");
  VIGIL_RETURN_IF_ERROR(CheckTime("occurred_at", e.occurred_at()));
  VIGIL_RETURN_IF_ERROR(CheckId("incident_id", e.incident_id(), false));
  VIGIL_RETURN_IF_ERROR(CheckId("force", e.force(), false));
  VIGIL_RETURN_IF_ERROR(CheckId("source", e.source(), false));
  VIGIL_RETURN_IF_ERROR(CheckId("actor", e.actor(), false));
  return CheckPayload(e);
}

}  // namespace vigil
