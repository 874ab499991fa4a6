// marac-referral-overdue: a HIGH assessment (recorded HIGH, or DASH at the
// 'yes' threshold) with no MARAC referral within the deadline. A referral
// answers every HIGH assessment made up to it, and resolves the victim's open
// potential-escalation alerts.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class MaracUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    if (e.has_risk_assessed()) {
      const live::Assessment& a = v.assessments.back();  // the one this event recorded
      if (a.effective_level != v1::RiskAssessed::HIGH || !step.Enabled(RuleId::kMaracReferralOverdue)) return;
      const bool referred =
          std::any_of(v.marac_referrals.begin(), v.marac_referrals.end(), [&](Micros at) { return at >= t; });
      if (!referred) {
        step.SetRuleDeadline(RuleId::kMaracReferralOverdue, e.event_id(), e.incident_id(),
                             t + step.rules().rule(RuleId::kMaracReferralOverdue).deadline, {e.event_id()});
      }
      return;
    }
    if (!e.has_marac_referred()) return;
    for (const live::Assessment& a : v.assessments) {
      if (a.effective_level != v1::RiskAssessed::HIGH || a.at > t) continue;
      const std::string& key = v.names[a.event];
      step.RemoveRuleDeadline(RuleId::kMaracReferralOverdue, key);
      step.Resolve(RuleId::kMaracReferralOverdue, key, t, e.event_id(), "a MARAC referral has been made");
    }
    std::vector<std::string> keys;
    for (const live::Alert& a : v.alerts) {
      if (a.rule == RuleId::kPotentialEscalation && a.open()) keys.push_back(a.key);
    }
    for (const std::string& key : keys) {
      step.Resolve(RuleId::kPotentialEscalation, key, t, e.event_id(), "a MARAC referral has been made");
    }
  }

  std::vector<RuleId> DeadlineRules() const override { return {RuleId::kMaracReferralOverdue}; }

  std::string DeadlineReason(const Step& step, const live::Deadline&) const override {
    return absl::StrCat("A HIGH-risk assessment has had no MARAC referral within ",
                        FormatDuration(step.rules().rule(RuleId::kMaracReferralOverdue).deadline), ".");
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeMaracUnit() { return std::make_unique<MaracUnit>(); }

}  // namespace vigil
