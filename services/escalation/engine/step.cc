#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/fingerprint.h"
#include "services/escalation/engine/codec.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

std::string LevelWord(v1::Level level) {
  switch (level) {
    case v1::INSPECTOR: return "the duty inspector";
    case v1::SUPERINTENDENT: return "the superintendent";
    default: return "a supervisor";
  }
}

}  // namespace

std::vector<std::unique_ptr<RuleUnit>> MakeRuleUnits() {
  std::vector<std::unique_ptr<RuleUnit>> units;
  units.push_back(MakeCallCountUnit());
  units.push_back(MakeMarkerUnit());
  units.push_back(MakeArrestUnit());
  units.push_back(MakeAttendanceUnit());
  units.push_back(MakeAssessmentUnit());
  units.push_back(MakeMaracUnit());
  units.push_back(MakeDisclosureUnit());
  units.push_back(MakeSerialUnit());
  units.push_back(MakeAbandonedCallUnit());
  units.push_back(MakeProtectionUnit());
  return units;
}

void Step::Raise(Raising r) {
  const RuleSettings& settings = rules_.rule(r.rule);
  if (live::Alert* open = v_.OpenAlert(r.rule, r.key)) {
    bool added = false;
    for (const std::string& id : r.evidence) added |= open->evidence.Add(v_.names, id);
    if (!added) return;
    open->rule_reason = std::move(r.reason);
    open->note.clear();
    open->note_only = false;
    // A late event's transition is stamped no earlier than the alert's last one.
    open->at = std::max(r.at, open->at);
    if (r.reopen && open->state == v1::ACKNOWLEDGED) {
      open->state = v1::FIRING;
      open->acknowledged_by = {};
      if (open->level < v1::SUPERINTENDENT) {
        open->acknowledge_by = open->at + open->acknowledge_within;
        AddEscalation(*open, *open->acknowledge_by);
      }
    }
    Emit(*open);
    return;
  }
  live::Alert a;
  a.alert_id = absl::StrCat(
      "al-", Hex64(Fnv1a64(absl::StrCat(RuleName(r.rule), "|", v_.id, "|", r.key, "|", r.trigger))));
  a.rule = r.rule;
  a.key = std::move(r.key);
  a.incident = v_.names.InternUnlessEmpty<live::IncidentTag>(r.incident_id);
  a.suspect = v_.names.InternUnlessEmpty<live::SuspectTag>(r.suspect_id);
  a.force = v_.names.InternUnlessEmpty<live::TextTag>(v_.force);
  a.threshold = v_.names.InternUnlessEmpty<live::TextTag>(rules_.threshold(r.rule));
  a.rules_version = v_.names.InternUnlessEmpty<live::TextTag>(rules_.version());
  a.acknowledge_within = settings.acknowledge_within;
  a.level = settings.level;
  a.state = v1::FIRING;
  a.at = r.at;
  a.fired_at = r.at;
  a.deadline = r.deadline;
  a.rule_reason = std::move(r.reason);
  for (const std::string& id : r.evidence) a.evidence.Add(v_.names, id);
  a.evidence.total = std::max(a.evidence.total, r.evidence_total);
  live::Alert& added = v_.AddAlert(std::move(a));
  if (added.level < v1::SUPERINTENDENT) {
    added.acknowledge_by = added.at + added.acknowledge_within;
    AddEscalation(added, *added.acknowledge_by);
  }
  Emit(added);
}

void Step::Resolve(RuleId rule, const std::string& key, Micros at, const std::string& event_id,
                   absl::string_view what_happened) {
  live::Alert* a = v_.OpenAlert(rule, key);
  if (a == nullptr) return;
  v_.RemoveEscalation(a->alert_id);
  a->state = v1::RESOLVED;
  a->at = at;
  a->acknowledge_by.reset();
  a->evidence.Add(v_.names, event_id);
  a->note = absl::StrCat("Resolved: ", what_happened, ".");
  a->note_only = true;
  v_.Closed(*a);
  Emit(*a);
}

void Step::Acknowledge(const std::string& alert_id, const std::string& by, Micros at, const std::string& event_id) {
  live::Alert* a = v_.AlertById(alert_id);
  if (a == nullptr || a->state == v1::RESOLVED || a->state == v1::ACKNOWLEDGED) return;
  v_.RemoveEscalation(alert_id);
  a->state = v1::ACKNOWLEDGED;
  a->acknowledged_by = v_.names.InternUnlessEmpty<live::TextTag>(by);
  a->note = absl::StrCat("Acknowledged by ", by, ". ");
  a->note_only = false;
  a->acknowledge_by.reset();
  a->at = at;
  a->evidence.Add(v_.names, event_id);
  Emit(*a);
}

void Step::Escalate(const live::Deadline& d) {
  live::Alert* a = v_.AlertById(d.alert_id);
  if (a == nullptr) return;
  const Micros window = a->acknowledge_within;
  a->level = static_cast<v1::Level>(a->level + 1);
  a->state = v1::ESCALATED;
  a->at = d.due;
  a->note = absl::StrCat("Not acknowledged within ", FormatDuration(window), ", so it now goes to ",
                         LevelWord(a->level), ". ");
  a->note_only = false;
  if (a->level < v1::SUPERINTENDENT) {
    a->acknowledge_by = d.due + window;
    AddEscalation(*a, d.due + window);
  } else {
    a->acknowledge_by.reset();
  }
  Emit(*a);
}

live::Deadline& Step::AddEscalation(const live::Alert& a, Micros due) {
  live::Deadline d;
  d.kind = live::Deadline::kEscalate;
  d.rule = a.rule;
  d.due = due;
  d.key = a.key;
  d.incident_id = v_.names[a.incident];
  d.alert_id = a.alert_id;
  return v_.AddDeadline(std::move(d));
}

void Step::SetRuleDeadline(RuleId rule, const std::string& key, const std::string& incident_id, Micros due,
                           std::vector<std::string> evidence, const std::string& suspect_id,
                           const std::string& subject) {
  v_.RemoveRuleDeadline(rule, key);
  live::Deadline d;
  d.kind = live::Deadline::kRule;
  d.rule = rule;
  d.due = due;
  d.key = key;
  d.incident_id = incident_id;
  d.evidence = std::move(evidence);
  d.suspect_id = suspect_id;
  d.subject = subject;
  v_.AddDeadline(std::move(d));
}

void Step::Emit(live::Alert& a) {
  ++a.revision;
  v1::Alert& m = out_.transitions.emplace_back();
  if (out_.spare != nullptr && !out_.spare->empty()) {
    m = std::move(out_.spare->back());  // a move takes the message's allocations along
    out_.spare->pop_back();
  }
  AlertMessage(a, v_, &m);
}

}  // namespace vigil
