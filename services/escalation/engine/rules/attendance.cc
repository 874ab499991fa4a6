// unit-unavailable (on unit_unavailable: no unit for an IMMEDIATE or urgent
// incident, or for an urgent arrest requested, and no supervisor told) and
// attendance-overdue (no unit arrived by the latest grading's deadline; a
// regrading moves the pending deadline, resolves nothing; closing the incident
// cancels nothing).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class AttendanceUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    live::Incident* incident = v.FindIncident(e.incident_id());
    const std::string& id = e.incident_id();
    switch (e.payload_case()) {
      case v1::Event::kIncidentGraded:
        ScheduleAttendance(step, *incident);
        break;
      case v1::Event::kUnitUnavailable:
        // It fires on the unit_unavailable itself (DOMAIN.md, "Exact readings"): a grading or an arrest
        // request recorded after it does not make an old unavailability an alert.
        EvaluateUnavailable(step, *incident, t);
        break;
      case v1::Event::kUnitAssigned:
        step.Resolve(RuleId::kUnitUnavailable, id, t, e.event_id(), "a unit has been assigned");
        break;
      case v1::Event::kUnitArrived:
        step.RemoveRuleDeadline(RuleId::kAttendanceOverdue, id);
        step.Resolve(RuleId::kUnitUnavailable, id, t, e.event_id(), "a unit has arrived");
        step.Resolve(RuleId::kAttendanceOverdue, id, t, e.event_id(), "a unit has arrived");
        break;
      case v1::Event::kSupervisorNotified:
        step.Resolve(RuleId::kUnitUnavailable, id, t, e.event_id(), "a supervisor has been told");
        break;
      default:
        break;
    }
  }

  std::vector<RuleId> DeadlineRules() const override { return {RuleId::kAttendanceOverdue}; }

  std::string DeadlineReason(const Step&, const live::Deadline& d) const override {
    return absl::StrCat("No unit had arrived at this incident by ", FormatRfc3339(d.due),
                        ", the attendance deadline for its grade.");
  }

 private:
  static void EvaluateUnavailable(Step& step, const live::Incident& incident, Micros at) {
    if (!step.Enabled(RuleId::kUnitUnavailable) || !incident.unit_unavailable || incident.supervisor_notified) {
      return;
    }
    const live::Victim& v = step.victim();
    const bool urgent_incident = incident.grade == v1::IncidentGraded::IMMEDIATE || incident.treat_as_urgent;
    // The incident's urgent arrest requests not yet attempted.
    std::vector<const live::Arrest*> arrests;
    for (const live::Arrest& a : v.arrests) {
      if (a.incident == incident.id && a.requested && a.urgent && !a.attempted) arrests.push_back(&a);
    }
    if (!urgent_incident && arrests.empty()) return;
    std::vector<std::string> evidence;
    if (urgent_incident) evidence.push_back(v.names[incident.graded_event]);
    for (const live::Arrest* a : arrests) evidence.push_back(v.names[a->request_event]);
    evidence.push_back(v.names[incident.unit_unavailable_event]);
    const char* what = urgent_incident ? (arrests.empty() ? "an IMMEDIATE or urgent incident"
                                                          : "an IMMEDIATE or urgent incident and an urgent arrest")
                                       : "an urgent arrest";
    const std::string& id = v.names[incident.id];
    step.Raise({.rule = RuleId::kUnitUnavailable,
                .key = id,
                .incident_id = id,
                .at = at,
                .reason = absl::StrCat("No unit is available for ", what, " and no supervisor has been told."),
                .evidence = std::move(evidence),
                .trigger = v.names[incident.unit_unavailable_event]});
  }

  static void ScheduleAttendance(Step& step, const live::Incident& incident) {
    const std::string& id = step.names()[incident.id];
    step.RemoveRuleDeadline(RuleId::kAttendanceOverdue, id);
    if (!step.Enabled(RuleId::kAttendanceOverdue) || incident.unit_arrived || incident.grade == 0) return;
    const RuleSettings& s = step.rules().rule(RuleId::kAttendanceOverdue);
    Micros within = 0;
    if (incident.grade == v1::IncidentGraded::IMMEDIATE) within = s.immediate_deadline;
    if (incident.grade == v1::IncidentGraded::PRIORITY) within = s.priority_deadline;
    if (within == 0) return;
    step.SetRuleDeadline(RuleId::kAttendanceOverdue, id, id, incident.graded_at + within,
                         {step.names()[incident.graded_event]});
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeAttendanceUnit() { return std::make_unique<AttendanceUnit>(); }

}  // namespace vigil
