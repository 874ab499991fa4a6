// A rule unit: one rule, or one family of rules that share their facts, read
// in one place (services/escalation/engine/rules/). The engine records an
// event's facts on the victim first, then hands the event to every unit in
// order; a unit raises, updates and resolves its rules' alerts and sets their
// deadlines through the Step. Units hold no state: all of it is the victim's.
//
// A new rule is a unit (or a few lines in its family's), a block in
// deploy/config/rules.yaml and a row in docs/rules.md.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "services/escalation/engine/live.h"
#include "services/escalation/engine/rules_config.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/event.pb.h"

namespace vigil {

// What one step of the engine produced, in the order it happened.
struct EngineOutput {
  std::vector<v1::Alert> transitions;
  std::vector<v1::SuspectLink> suspect_links;
  // Messages a caller is done with (Processor::Recycle): a transition is written into one of them, keeping its
  // strings' allocations, before a new one is made.
  std::vector<v1::Alert>* spare = nullptr;
  // The event had been applied before, with the same content: nothing changed.
  bool duplicate = false;
};

// One application of the engine to one victim: what units act through.
class Step {
 public:
  Step(const RulesConfig& rules, live::Victim& victim, EngineOutput& out) : rules_(rules), v_(victim), out_(out) {}
  // The victim's deadlines are settled: its place in the partition's timer queue follows its earliest.
  ~Step() { v_.Requeue(); }
  Step(const Step&) = delete;
  Step& operator=(const Step&) = delete;

  const RulesConfig& rules() const { return rules_; }
  bool Enabled(RuleId rule) const { return rules_.rule(rule).enabled; }
  live::Victim& victim() { return v_; }
  const live::Victim& victim() const { return v_; }
  const live::Names& names() const { return v_.names; }
  EngineOutput& out() { return out_; }

  // A rule firing for a subject.
  struct Raising {
    RuleId rule;
    std::string key;  // the subject: one open alert per (rule, key)
    std::string incident_id;
    Micros at = 0;
    std::optional<Micros> deadline;
    std::string reason;
    std::vector<std::string> evidence;  // in the order to add; ids added before are skipped
    std::string trigger;                // the event that makes a new alert's id
    std::string suspect_id;
    // When the evidence is a bounded list of more: how many there are in all (a new alert's total).
    uint32_t evidence_total = 0;
    // Episode rules: an ACKNOWLEDGED alert the rule updates is re-opened (FIRING at the level it reached, its
    // acknowledgement window starting again).
    bool reopen = false;
  };
  // Raises the rule's alert for the key or, when one is open, adds the new evidence to it (a
  // transition only when there is something new).
  void Raise(Raising r);
  // Resolves the rule's open alert for `key`, if there is one: the awaited action happened.
  void Resolve(RuleId rule, const std::string& key, Micros at, const std::string& event_id,
               absl::string_view what_happened);
  void Acknowledge(const std::string& alert_id, const std::string& by, Micros at, const std::string& event_id);
  // An unacknowledged alert's window passed: it climbs one level.
  void Escalate(const live::Deadline& d);

  // Sets (or moves) the pending deadline of a rule for `key`. The alert it raises is about `key`, or about
  // `subject` when one is given (several clocks, one alert).
  void SetRuleDeadline(RuleId rule, const std::string& key, const std::string& incident_id, Micros due,
                       std::vector<std::string> evidence, const std::string& suspect_id = "",
                       const std::string& subject = "");
  void RemoveRuleDeadline(RuleId rule, const std::string& key) { v_.RemoveRuleDeadline(rule, key); }

 private:
  live::Deadline& AddEscalation(const live::Alert& a, Micros due);
  // Counts the transition on the alert and hands the caller its message.
  void Emit(live::Alert& a);

  const RulesConfig& rules_;
  live::Victim& v_;
  EngineOutput& out_;
};

class RuleUnit {
 public:
  virtual ~RuleUnit() = default;
  // Evaluates the unit's rules after the event's facts were recorded; t is its occurred_at.
  virtual void OnEvent(Step& step, const v1::Event& e, Micros t) const = 0;
  // The rules whose deadlines the unit sets.
  virtual std::vector<RuleId> DeadlineRules() const { return {}; }
  // The sentence of an alert for one of those deadlines that passed.
  virtual std::string DeadlineReason(const Step&, const live::Deadline&) const { return ""; }
};

// The units, in the order they see each event (the order their alerts come out in).
std::vector<std::unique_ptr<RuleUnit>> MakeRuleUnits();

// The units, one per file in rules/.
std::unique_ptr<RuleUnit> MakeCallCountUnit();     // repeat-calls, potential-escalation
std::unique_ptr<RuleUnit> MakeMarkerUnit();        // marker-on-call
std::unique_ptr<RuleUnit> MakeArrestUnit();        // arrest-deferred, arrest-overdue, suspect-outstanding
std::unique_ptr<RuleUnit> MakeAttendanceUnit();    // unit-unavailable, attendance-overdue
std::unique_ptr<RuleUnit> MakeAssessmentUnit();    // risk-assessment-overdue, closed-without-assessment
std::unique_ptr<RuleUnit> MakeMaracUnit();         // marac-referral-overdue, repeat-marac; a referral resolves
                                                   // potential-escalation
std::unique_ptr<RuleUnit> MakeDisclosureUnit();    // disclosure-due-soon, disclosure-overdue
std::unique_ptr<RuleUnit> MakeSerialUnit();        // serial-perpetrator (the victim's side)
std::unique_ptr<RuleUnit> MakeAbandonedCallUnit();  // abandoned-call
std::unique_ptr<RuleUnit> MakeProtectionUnit();     // protection-breach-call, protection-hearing-overdue,
                                                    // bail-expiring
// A finding of the suspect view raises (or updates) the victim's serial-perpetrator alert.
void RaiseSerialFinding(Step& step, const v1::SuspectFinding& finding);

}  // namespace vigil
