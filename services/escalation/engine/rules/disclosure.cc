// disclosure-due-soon and disclosure-overdue: a Clare's Law application still
// undecided at the warning point, and at the deadline.
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

constexpr RuleId kRules[] = {RuleId::kDisclosureDueSoon, RuleId::kDisclosureOverdue};

class DisclosureUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    if (e.has_disclosure_requested()) {
      const std::string& id = e.disclosure_requested().application_id();
      if (step.victim().DisclosureFor(id).decided) return;
      for (RuleId rule : kRules) {
        if (!step.Enabled(rule)) continue;
        step.SetRuleDeadline(rule, id, e.incident_id(), t + step.rules().rule(rule).deadline, {e.event_id()});
      }
    } else if (e.has_disclosure_decided()) {
      const std::string& id = e.disclosure_decided().application_id();
      for (RuleId rule : kRules) {
        step.RemoveRuleDeadline(rule, id);
        step.Resolve(rule, id, t, e.event_id(), "the application has been decided");
      }
    }
  }

  std::vector<RuleId> DeadlineRules() const override { return {std::begin(kRules), std::end(kRules)}; }

  std::string DeadlineReason(const Step& step, const live::Deadline& d) const override {
    const Micros deadline = step.rules().rule(d.rule).deadline;
    if (d.rule == RuleId::kDisclosureDueSoon) {
      return absl::StrCat("Clare's Law application ", d.key, " has been undecided for ", FormatDuration(deadline),
                          ": decide it before the ",
                          FormatDuration(step.rules().rule(RuleId::kDisclosureOverdue).deadline), " deadline.");
    }
    return absl::StrCat("Clare's Law application ", d.key, " is still undecided after ", FormatDuration(deadline),
                        ": the statutory decision deadline has passed.");
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeDisclosureUnit() { return std::make_unique<DisclosureUnit>(); }

}  // namespace vigil
