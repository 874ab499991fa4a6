// protection-breach-call (a call naming a suspect against whom a protection is
// in force: a notice, an order, or bail with conditions), protection-hearing-
// overdue (a DVPN or DAPN with no court hearing within the deadline) and
// bail-expiring (pre-charge bail with no decision by the warning point: the
// later of bail_until minus `before` and when the bail or extension was
// recorded). Protections are live::Protection records (engine.cc records them).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

// What a sergeant calls it.
std::string KindName(const live::Protection& p) {
  if (p.is_bail) return "bail conditions";
  switch (p.kind) {
    case v1::ProtectionRecorded::DVPN: return "a domestic violence protection notice (DVPN)";
    case v1::ProtectionRecorded::DVPO: return "a domestic violence protection order (DVPO)";
    case v1::ProtectionRecorded::DAPN: return "a domestic abuse protection notice (DAPN)";
    case v1::ProtectionRecorded::DAPO: return "a domestic abuse protection order (DAPO)";
    case v1::ProtectionRecorded::RESTRAINING_ORDER: return "a restraining order";
    case v1::ProtectionRecorded::NON_MOLESTATION_ORDER: return "a non-molestation order";
    case v1::ProtectionRecorded::STALKING_PROTECTION_ORDER: return "a stalking protection order";
    default: return "a protection";
  }
}

class ProtectionUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    live::Victim& v = step.victim();
    switch (e.payload_case()) {
      case v1::Event::kCallReceived: {
        const std::string& suspect = e.call_received().suspect_id();
        if (suspect.empty()) return;  // a call naming nobody never matches
        std::vector<const live::Protection*> in_force;
        for (const live::Protection& p : v.protections) {
          if (v.names[p.suspect] == suspect && p.InForce(t)) in_force.push_back(&p);
        }
        Breach(step, in_force, e.incident_id(), e.event_id(), t);
        return;
      }
      case v1::Event::kProtectionRecorded:
      case v1::Event::kBailRecorded: {
        const bool bail = e.has_bail_recorded();
        const live::Protection& p =
            *v.FindProtection(bail, bail ? e.bail_recorded().bail_id() : e.protection_recorded().protection_id());
        // Calls already held that fall within its force (it was recorded late).
        for (const live::Call& c : v.calls) {
          if (c.suspect == p.suspect && p.InForce(c.at)) {
            Breach(step, {&p}, v.names[c.incident], v.names[c.event], std::max(c.at, t));
          }
        }
        if (bail) {
          ScheduleBail(step, p, e.incident_id(), t);
        } else {
          ScheduleHearing(step, p, e.incident_id(), t);
        }
        return;
      }
      case v1::Event::kCourtHearingRecorded: {
        const std::string& id = e.court_hearing_recorded().protection_id();
        step.RemoveRuleDeadline(RuleId::kProtectionHearingOverdue, id);
        step.Resolve(RuleId::kProtectionHearingOverdue, id, t, e.event_id(), "a court hearing has been recorded");
        return;
      }
      case v1::Event::kBailDecided: {
        const std::string& id = e.bail_decided().bail_id();
        step.RemoveRuleDeadline(RuleId::kBailExpiring, id);
        step.Resolve(RuleId::kBailExpiring, id, t, e.event_id(), "a bail decision has been recorded");
        if (e.bail_decided().outcome() == v1::BailDecided::EXTENDED) {
          live::Protection& p = *v.FindProtection(true, id);
          p.recorded_event = v.names.Intern<live::EventTag>(e.event_id());  // the new clock starts here
          ScheduleBail(step, p, e.incident_id(), t);
        }
        return;
      }
      default:
        return;
    }
  }

  std::vector<RuleId> DeadlineRules() const override {
    return {RuleId::kProtectionHearingOverdue, RuleId::kBailExpiring};
  }

  std::string DeadlineReason(const Step& step, const live::Deadline& d) const override {
    if (d.rule == RuleId::kBailExpiring) {
      const live::Protection* p = step.victim().FindProtection(true, d.key);
      return absl::StrCat("Pre-charge bail ", d.key, " for suspect ", d.suspect_id, " ends at ",
                          p != nullptr && p->until ? FormatRfc3339(*p->until) : "its end",
                          " and no decision has been recorded: extend it, charge, or release the suspect before it "
                          "lapses.");
    }
    return absl::StrCat("No court hearing has been recorded within ",
                        FormatDuration(step.rules().rule(RuleId::kProtectionHearingOverdue).deadline), " of notice ",
                        d.key, " against suspect ", d.suspect_id,
                        ": the law requires it to be heard within 48 hours; check the court listing now.");
  }

 private:
  static void Breach(Step& step, const std::vector<const live::Protection*>& in_force, const std::string& incident,
                     const std::string& call_event, Micros at) {
    if (!step.Enabled(RuleId::kProtectionBreachCall) || in_force.empty()) return;
    const live::Names& n = step.names();
    std::vector<std::string> evidence;
    std::vector<std::string> kinds;
    for (const live::Protection* p : in_force) {
      evidence.push_back(n[p->recorded_event]);
      std::string kind = KindName(*p);
      if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(std::move(kind));
    }
    evidence.push_back(call_event);
    step.Raise({.rule = RuleId::kProtectionBreachCall,
                .key = incident,
                .incident_id = incident,
                .at = at,
                .reason = absl::StrCat("A call about this victim names suspect ", n[in_force.front()->suspect],
                                       ", against whom ", absl::StrJoin(kinds, " and "),
                                       " is in force: treat it as a possible breach and attend."),
                .evidence = std::move(evidence),
                .trigger = call_event,
                .suspect_id = n[in_force.front()->suspect]});
  }

  static void ScheduleHearing(Step& step, const live::Protection& p, const std::string& incident, Micros t) {
    if (!step.Enabled(RuleId::kProtectionHearingOverdue)) return;
    if (p.kind != v1::ProtectionRecorded::DVPN && p.kind != v1::ProtectionRecorded::DAPN) return;
    const Micros due = t + step.rules().rule(RuleId::kProtectionHearingOverdue).deadline;
    if (p.heard_at && *p.heard_at <= due) return;  // heard in time already (the hearing came first in the log)
    const live::Names& n = step.names();
    step.SetRuleDeadline(RuleId::kProtectionHearingOverdue, n[p.id], incident, due, {n[p.recorded_event]},
                         n[p.suspect]);
  }

  static void ScheduleBail(Step& step, const live::Protection& p, const std::string& incident, Micros t) {
    if (!step.Enabled(RuleId::kBailExpiring) || !p.until || p.ended_at) return;
    const live::Names& n = step.names();
    const Micros warning = std::max(*p.until - step.rules().rule(RuleId::kBailExpiring).before, t);
    step.SetRuleDeadline(RuleId::kBailExpiring, n[p.id], incident, warning, {n[p.recorded_event]}, n[p.suspect]);
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeProtectionUnit() { return std::make_unique<ProtectionUnit>(); }

}  // namespace vigil
