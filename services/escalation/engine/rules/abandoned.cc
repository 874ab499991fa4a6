// abandoned-call: an EMERGENCY call marked abandoned with no call_returned for
// its incident within the deadline. Each abandoned call starts its own clock
// (keyed by the call); a call_returned answers every abandoned call on the
// incident before it, stops their clocks and resolves the incident's alert.
// One alert per incident: a second clock passing while it is open adds its call
// as evidence.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class AbandonedCallUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    if (!step.Enabled(RuleId::kAbandonedCall)) return;
    live::Victim& v = step.victim();
    if (e.has_call_received()) {
      const auto& call = e.call_received();
      if (!call.abandoned() || call.channel() != v1::CallReceived::EMERGENCY) return;
      live::Incident* i = v.FindIncident(e.incident_id());
      if (i == nullptr) return;
      const Micros due = t + step.rules().rule(RuleId::kAbandonedCall).deadline;
      // Returned in time already (the return came first in the log)?
      if (std::any_of(i->returned.begin(), i->returned.end(), [&](Micros r) { return r >= t && r <= due; })) {
        i->abandoned.pop_back();  // this call, which RecordFacts has just added: answered
        return;
      }
      step.SetRuleDeadline(RuleId::kAbandonedCall, e.event_id(), e.incident_id(), due, {e.event_id()}, "",
                           e.incident_id());
      return;
    }
    if (!e.has_call_returned()) return;
    live::Incident* i = v.FindIncident(e.incident_id());
    if (i == nullptr) return;
    for (const auto& [at, event] : i->abandoned) {
      if (at <= t) step.RemoveRuleDeadline(RuleId::kAbandonedCall, v.names[event]);
    }
    Answer(*i, t);
    step.Resolve(RuleId::kAbandonedCall, e.incident_id(), t, e.event_id(), "the call has been returned");
  }

  std::vector<RuleId> DeadlineRules() const override { return {RuleId::kAbandonedCall}; }

  std::string DeadlineReason(const Step& step, const live::Deadline& d) const override {
    return absl::StrCat("An abandoned 999 call on incident ", d.incident_id, " has not been returned within ",
                        FormatDuration(step.rules().rule(RuleId::kAbandonedCall).deadline),
                        ": call the victim back now.");
  }

 private:
  // The abandoned calls at or before t are answered.
  static void Answer(live::Incident& i, Micros t) {
    i.abandoned.erase(std::remove_if(i.abandoned.begin(), i.abandoned.end(),
                                     [&](const auto& call) { return call.first <= t; }),
                      i.abandoned.end());
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeAbandonedCallUnit() { return std::make_unique<AbandonedCallUnit>(); }

}  // namespace vigil
