// arrest-deferred (an urgent arrest deferred without a supervisor's authority),
// arrest-overdue (an urgent arrest with no attempt by its deadline: the
// request plus the rule's deadline, or an authorised deferral's defer_until)
// and suspect-outstanding (an urgent arrest attempted with outcome NOT_FOUND
// and no further attempt within the deadline; each NOT_FOUND restarts the
// clock, and a further attempt resolves the alert).
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

class ArrestUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    switch (e.payload_case()) {
      case v1::Event::kArrestRequested: {
        const live::Arrest& a = v.ArrestFor(e.arrest_requested().request_id());
        ScheduleOverdue(step, a);
        EvaluateDeferred(step, a, t);
        ScheduleOutstanding(step, a);  // a request recorded after its attempt
        break;
      }
      case v1::Event::kArrestDeferred: {
        const live::Arrest& a = v.ArrestFor(e.arrest_deferred().request_id());
        if (!e.arrest_deferred().authorised_by().empty()) {
          step.Resolve(RuleId::kArrestDeferred, v.names[a.id], t, e.event_id(),
                       "the deferral has been authorised by a supervisor");
          ScheduleOverdue(step, a);
        } else {
          EvaluateDeferred(step, a, t);
        }
        break;
      }
      case v1::Event::kArrestAttempted: {
        const std::string& id = e.arrest_attempted().request_id();
        step.RemoveRuleDeadline(RuleId::kArrestOverdue, id);
        step.Resolve(RuleId::kArrestOverdue, id, t, e.event_id(), "an arrest attempt has been recorded");
        step.Resolve(RuleId::kArrestDeferred, id, t, e.event_id(), "an arrest attempt has been recorded");
        const live::Arrest& a = v.ArrestFor(id);
        if (t < a.last_attempt_at) break;  // a later attempt is already recorded: its clock stands
        step.RemoveRuleDeadline(RuleId::kSuspectOutstanding, id);
        step.Resolve(RuleId::kSuspectOutstanding, id, t, e.event_id(), "a further arrest attempt has been recorded");
        ScheduleOutstanding(step, a);
        break;
      }
      default:
        break;
    }
  }

  std::vector<RuleId> DeadlineRules() const override {
    return {RuleId::kArrestOverdue, RuleId::kSuspectOutstanding};
  }

  std::string DeadlineReason(const Step& step, const live::Deadline& d) const override {
    if (d.rule == RuleId::kSuspectOutstanding) {
      return absl::StrCat("An urgent arrest (request ", d.key, ") found nobody, and no further attempt has been "
                          "recorded within ", FormatDuration(step.rules().rule(RuleId::kSuspectOutstanding).deadline),
                          ": the suspect is still outstanding; task another attempt.");
    }
    return absl::StrCat("An urgent arrest (request ", d.key, ") was due to be attempted by ", FormatRfc3339(d.due),
                        " and no attempt has been recorded: the suspect is still at large.");
  }

 private:
  static void EvaluateDeferred(Step& step, const live::Arrest& a, Micros at) {
    if (!step.Enabled(RuleId::kArrestDeferred) || !a.requested || !a.urgent || !a.unauthorised_deferral ||
        a.attempted || a.authorised_until != 0) {
      return;
    }
    const live::Names& n = step.names();
    const std::string& id = n[a.id];
    step.Raise({.rule = RuleId::kArrestDeferred,
                .key = id,
                .incident_id = n[a.incident],
                .at = at,
                .reason = absl::StrCat("An urgent arrest (request ", id,
                                       ") was deferred without a supervisor's authority: authorise it with a time, "
                                       "or attempt the arrest now."),
                .evidence = {n[a.request_event], n[a.unauthorised_deferral_event]},
                .trigger = n[a.unauthorised_deferral_event]});
  }

  // The clock of an urgent arrest whose latest attempt found nobody.
  static void ScheduleOutstanding(Step& step, const live::Arrest& a) {
    if (!step.Enabled(RuleId::kSuspectOutstanding) || !a.requested || !a.urgent || !a.last_attempt_not_found) return;
    const live::Names& n = step.names();
    const std::string& id = n[a.id];
    if (step.victim().OpenAlert(RuleId::kSuspectOutstanding, id) != nullptr) return;
    step.SetRuleDeadline(RuleId::kSuspectOutstanding, id, n[a.incident],
                         a.last_attempt_at + step.rules().rule(RuleId::kSuspectOutstanding).deadline,
                         {n[a.last_attempt_event]}, n[a.suspect]);
  }

  static void ScheduleOverdue(Step& step, const live::Arrest& a) {
    if (!step.Enabled(RuleId::kArrestOverdue) || !a.requested || !a.urgent || a.attempted) return;
    const live::Names& n = step.names();
    const std::string& id = n[a.id];
    if (step.victim().OpenAlert(RuleId::kArrestOverdue, id) != nullptr) return;
    const Micros due = a.authorised_until != 0
                           ? a.authorised_until
                           : a.requested_at + step.rules().rule(RuleId::kArrestOverdue).deadline;
    std::vector<std::string> evidence = {n[a.request_event]};
    if (a.authorised_until != 0) evidence.push_back(n[a.authorised_deferral_event]);
    step.SetRuleDeadline(RuleId::kArrestOverdue, id, n[a.incident], due, std::move(evidence), n[a.suspect]);
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeArrestUnit() { return std::make_unique<ArrestUnit>(); }

}  // namespace vigil
