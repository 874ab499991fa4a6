// marac-referral-overdue: a HIGH assessment (recorded HIGH, DASH at the 'yes'
// threshold, or strangulation disclosed) with no MARAC referral within the
// deadline. repeat-marac: a domestic-abuse call on an incident whose first
// domestic-abuse call came after the victim's last referral and within the
// window of it (refer back, whatever the local threshold). A referral answers
// every HIGH assessment made up to it, and resolves the victim's open
// potential-escalation and repeat-marac alerts.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class MaracUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    if (e.has_call_received() && e.call_received().domestic_abuse()) {
      EvaluateRepeat(step, e, t);
      return;
    }
    if (e.has_risk_assessed()) {
      const live::Assessment& a = v.assessments.back();  // the one this event recorded
      if (a.effective_level != v1::RiskAssessed::HIGH || !step.Enabled(RuleId::kMaracReferralOverdue)) return;
      const bool referred =
          std::any_of(v.marac_referrals.begin(), v.marac_referrals.end(), [&](Micros at) { return at >= t; });
      // The subject is the incident; the clock runs from its first HIGH assessment not yet followed by a
      // referral, so a later HIGH assessment on it moves nothing while one is running or its alert is open.
      const std::string& incident = e.incident_id();
      const bool running =
          v.rule_deadlines.contains(live::RuleKeyView{static_cast<int>(RuleId::kMaracReferralOverdue), incident}) ||
          v.OpenAlert(RuleId::kMaracReferralOverdue, incident) != nullptr;
      if (!referred && !running) {
        step.SetRuleDeadline(RuleId::kMaracReferralOverdue, incident, incident,
                             t + step.rules().rule(RuleId::kMaracReferralOverdue).deadline, {e.event_id()});
      }
      return;
    }
    if (!e.has_marac_referred()) return;
    // The referral satisfies every HIGH assessment made before it, whatever incident it carries.
    std::vector<std::string> incidents;
    for (const live::Assessment& a : v.assessments) {
      if (a.effective_level != v1::RiskAssessed::HIGH || a.at > t) continue;
      const std::string& incident = v.names[a.incident];
      if (std::find(incidents.begin(), incidents.end(), incident) == incidents.end()) incidents.push_back(incident);
    }
    for (const std::string& incident : incidents) {
      step.RemoveRuleDeadline(RuleId::kMaracReferralOverdue, incident);
      step.Resolve(RuleId::kMaracReferralOverdue, incident, t, e.event_id(), "a MARAC referral has been made");
    }
    v.episodes[live::EpisodeIndex(RuleId::kPotentialEscalation)].active = false;  // the referral ends it
    std::vector<std::pair<RuleId, std::string>> open;
    for (const live::Alert& a : v.alerts) {
      if ((a.rule == RuleId::kPotentialEscalation || a.rule == RuleId::kRepeatMarac) && a.open()) {
        open.emplace_back(a.rule, a.key);
      }
    }
    for (const auto& [rule, key] : open) step.Resolve(rule, key, t, e.event_id(), "a MARAC referral has been made");
  }

  std::vector<RuleId> DeadlineRules() const override { return {RuleId::kMaracReferralOverdue}; }

 private:
  static void EvaluateRepeat(Step& step, const v1::Event& e, Micros t) {
    if (!step.Enabled(RuleId::kRepeatMarac)) return;
    live::Victim& v = step.victim();
    const live::Incident* incident = v.FindIncident(e.incident_id());
    const Micros last = v.LastReferralAtOrBefore(t);
    if (incident == nullptr || last == INT64_MIN) return;
    const Micros window = step.rules().rule(RuleId::kRepeatMarac).window;
    const Micros first = incident->first_da_call;
    if (first <= last || first - last > window) return;
    step.Raise({.rule = RuleId::kRepeatMarac,
                .key = e.incident_id(),
                .incident_id = e.incident_id(),
                .at = t,
                .reason = absl::StrCat("This victim was referred to MARAC on ", FormatRfc3339(last),
                                       " and a new domestic-abuse incident has been reported within ",
                                       FormatDuration(window),
                                       " of it: refer the case back to MARAC, whatever the local threshold."),
                .evidence = {e.event_id()},
                .trigger = e.event_id()});
  }

 public:

  std::string DeadlineReason(const Step& step, const live::Deadline&) const override {
    return absl::StrCat("A HIGH-risk assessment has had no MARAC referral within ",
                        FormatDuration(step.rules().rule(RuleId::kMaracReferralOverdue).deadline), ".");
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeMaracUnit() { return std::make_unique<MaracUnit>(); }

}  // namespace vigil
