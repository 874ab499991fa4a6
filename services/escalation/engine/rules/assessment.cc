// risk-assessment-overdue (a domestic-abuse incident with no risk assessment
// within the deadline of its first domestic-abuse call) and
// closed-without-assessment, which inhibits it: once an incident was closed
// without an assessment, that alert says it and risk-assessment-overdue does
// not fire for the incident.
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class AssessmentUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    const std::string& id = e.incident_id();
    switch (e.payload_case()) {
      case v1::Event::kCallReceived: {
        const live::Incident& incident = *v.FindIncident(id);
        ScheduleOverdue(step, incident);
        EvaluateClosed(step, incident, t);
        break;
      }
      case v1::Event::kRiskAssessed:
        step.RemoveRuleDeadline(RuleId::kRiskAssessmentOverdue, id);
        step.Resolve(RuleId::kRiskAssessmentOverdue, id, t, e.event_id(), "a risk assessment has been recorded");
        step.Resolve(RuleId::kClosedWithoutAssessment, id, t, e.event_id(), "a risk assessment has been recorded");
        break;
      case v1::Event::kIncidentClosed:
        EvaluateClosed(step, *v.FindIncident(id), t);
        break;
      default:
        break;
    }
  }

  std::vector<RuleId> DeadlineRules() const override { return {RuleId::kRiskAssessmentOverdue}; }

  std::string DeadlineReason(const Step& step, const live::Deadline&) const override {
    return absl::StrCat("No risk assessment (DASH or DARA) within ",
                        FormatDuration(step.rules().rule(RuleId::kRiskAssessmentOverdue).deadline),
                        " of the first call about this domestic-abuse incident.");
  }

 private:
  static void ScheduleOverdue(Step& step, const live::Incident& incident) {
    if (!step.Enabled(RuleId::kRiskAssessmentOverdue) || !incident.domestic_abuse || incident.assessed ||
        incident.first_da_call == INT64_MAX || Inhibited(step, incident)) {
      return;
    }
    const std::string& id = step.names()[incident.id];
    if (step.victim().OpenAlert(RuleId::kRiskAssessmentOverdue, id) != nullptr) return;
    step.SetRuleDeadline(RuleId::kRiskAssessmentOverdue, id, id,
                         incident.first_da_call + step.rules().rule(RuleId::kRiskAssessmentOverdue).deadline,
                         {step.names()[incident.first_da_call_event]});
  }

  // closed-without-assessment has fired for the incident (closed, domestic abuse, not assessed).
  static bool Inhibited(const Step& step, const live::Incident& incident) {
    return step.Enabled(RuleId::kClosedWithoutAssessment) && incident.closed && incident.domestic_abuse &&
           !incident.assessed;
  }

  static void EvaluateClosed(Step& step, const live::Incident& incident, Micros at) {
    if (!step.Enabled(RuleId::kClosedWithoutAssessment) || !incident.closed || !incident.domestic_abuse ||
        incident.assessed) {
      return;
    }
    const live::Names& n = step.names();
    const std::string& id = n[incident.id];
    step.Raise({.rule = RuleId::kClosedWithoutAssessment,
                .key = id,
                .incident_id = id,
                .at = at,
                .reason = "This domestic-abuse incident was closed with no risk assessment recorded: no DASH, no "
                          "safeguarding decision.",
                .evidence = {n[incident.first_call_event], n[incident.closed_event]},
                .trigger = n[incident.closed_event]});
    step.RemoveRuleDeadline(RuleId::kRiskAssessmentOverdue, id);
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeAssessmentUnit() { return std::make_unique<AssessmentUnit>(); }

}  // namespace vigil
