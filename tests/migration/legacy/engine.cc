#include "tests/migration/legacy/engine.h"

#include <algorithm>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fingerprint.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace vigil::legacy {
namespace {

using state::AlertRecord;
using state::ArrestRecord;
using state::CallRecord;
using state::Deadline;
using state::IncidentRecord;
using state::VictimState;
using v1::Alert;
using v1::Event;

std::string LevelWord(v1::Level level) {
  switch (level) {
    case v1::SUPERVISOR: return "a supervisor";
    case v1::INSPECTOR: return "the duty inspector";
    case v1::SUPERINTENDENT: return "the superintendent";
    default: return "a supervisor";
  }
}

std::string When(Micros t) { return FormatRfc3339(t); }

// Appends the ids of `more` that `ids` lacks; returns whether any were added.
bool MergeIds(google::protobuf::RepeatedPtrField<std::string>* ids, const std::vector<std::string>& more) {
  bool added = false;
  for (const auto& id : more) {
    if (std::find(ids->begin(), ids->end(), id) == ids->end()) {
      *ids->Add() = id;
      added = true;
    }
  }
  return added;
}

// A window count: among `points` (time, group, event id) find the window of
// `width` ending at `end` and count distinct groups in [end - width, end].
struct Point {
  Micros at;
  absl::string_view group;
  absl::string_view event_id;
};

struct WindowCount {
  uint32_t distinct = 0;
  std::vector<std::string> evidence;  // one event per group: its latest in the window, in time order
};

WindowCount CountWindow(std::vector<Point> points, Micros end, Micros width) {
  std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
    return a.at != b.at ? a.at < b.at : a.event_id < b.event_id;
  });
  WindowCount result;
  std::vector<std::pair<absl::string_view, size_t>> latest;  // group -> index in points
  for (size_t i = 0; i < points.size(); ++i) {
    const Point& p = points[i];
    if (p.at < end - width || p.at > end) continue;
    auto it = std::find_if(latest.begin(), latest.end(), [&](const auto& g) { return g.first == p.group; });
    if (it == latest.end()) {
      latest.emplace_back(p.group, i);
    } else {
      it->second = i;
    }
  }
  std::vector<size_t> chosen;
  for (const auto& [group, index] : latest) chosen.push_back(index);
  std::sort(chosen.begin(), chosen.end());
  result.distinct = static_cast<uint32_t>(chosen.size());
  for (size_t i : chosen) result.evidence.emplace_back(points[i].event_id);
  return result;
}

// The records whose windows a new record `current` can complete: its own
// window, and for a late arrival those of later records within `width` of it
// (one a time instant: records at the same time share a window).
template <typename Record, typename Filter>
std::vector<const Record*> WindowEnds(const google::protobuf::RepeatedPtrField<Record>& records,
                                      const Record& current, Micros width, Filter filter) {
  std::vector<const Record*> later;
  for (const Record& r : records) {
    if (r.at() > current.at() && r.at() <= current.at() + width && filter(r)) later.push_back(&r);
  }
  std::sort(later.begin(), later.end(), [](const Record* a, const Record* b) {
    return a->at() != b->at() ? a->at() < b->at() : a->event_id() < b->event_id();
  });
  std::vector<const Record*> ends;
  if (filter(current)) ends.push_back(&current);
  for (size_t i = 0; i < later.size(); ++i) {
    if (i + 1 < later.size() && later[i + 1]->at() == later[i]->at()) continue;  // the last at each instant
    ends.push_back(later[i]);
  }
  return ends;
}

// One application of the engine to one victim: the event (if any), the rules
// and where transitions go.
class Step {
 public:
  Step(const RulesConfig& rules, VictimState* victim, EngineOutput* out)
      : rules_(rules), v_(*victim), out_(*out) {}

  // --- facts -----------------------------------------------------------------

  IncidentRecord& Incident(const std::string& id) {
    for (auto& i : *v_.mutable_incidents()) {
      if (i.incident_id() == id) return i;
    }
    IncidentRecord* i = v_.add_incidents();
    i->set_incident_id(id);
    return *i;
  }

  IncidentRecord* FindIncident(const std::string& id) {
    for (auto& i : *v_.mutable_incidents()) {
      if (i.incident_id() == id) return &i;
    }
    return nullptr;
  }

  ArrestRecord& Arrest(const std::string& request_id) {
    for (auto& a : *v_.mutable_arrests()) {
      if (a.request_id() == request_id) return a;
    }
    ArrestRecord* a = v_.add_arrests();
    a->set_request_id(request_id);
    return *a;
  }

  state::DisclosureRecord& Disclosure(const std::string& application_id) {
    for (auto& d : *v_.mutable_disclosures()) {
      if (d.application_id() == application_id) return d;
    }
    state::DisclosureRecord* d = v_.add_disclosures();
    d->set_application_id(application_id);
    return *d;
  }

  // --- alerts ----------------------------------------------------------------

  AlertRecord* OpenAlert(RuleId rule, const std::string& key) {
    const absl::string_view name = RuleName(rule);
    for (auto& r : *v_.mutable_alerts()) {
      if (r.key() == key && r.alert().rule() == name && r.alert().state() != v1::RESOLVED) return &r;
    }
    return nullptr;
  }

  // Raises the rule's alert for `key`, or, when one is open, adds the new
  // evidence to it (a transition only when there is something new).
  void Raise(RuleId rule, const std::string& key, const std::string& incident_id, Micros at,
             Micros deadline, const std::string& reason, const std::vector<std::string>& evidence,
             const std::string& trigger, const std::string& suspect_id = "") {
    const RuleSettings& settings = rules_.rule(rule);
    if (AlertRecord* open = OpenAlert(rule, key)) {
      Alert& a = *open->mutable_alert();
      if (!MergeIds(a.mutable_evidence_event_ids(), evidence)) return;
      open->set_reason(reason);
      a.set_reason(reason);
      *a.mutable_at() = ToTimestamp(at);
      Emit(a);
      return;
    }
    AlertRecord* record = v_.add_alerts();
    record->set_key(key);
    record->set_reason(reason);
    Alert& a = *record->mutable_alert();
    a.set_alert_id(absl::StrCat(
        "al-", Hex64(Fnv1a64(absl::StrCat(RuleName(rule), "|", v_.victim_id(), "|", key, "|", trigger)))));
    a.set_victim_id(v_.victim_id());
    a.set_incident_id(incident_id);
    a.set_rule(std::string(RuleName(rule)));
    a.set_level(settings.level);
    a.set_state(v1::FIRING);
    *a.mutable_at() = ToTimestamp(at);
    *a.mutable_fired_at() = ToTimestamp(at);
    if (deadline != kNoDeadline) *a.mutable_deadline() = ToTimestamp(deadline);
    a.set_reason(reason);
    for (const auto& id : evidence) *a.add_evidence_event_ids() = id;
    a.set_threshold(rules_.threshold(rule));
    a.set_force(v_.force());
    a.set_suspect_id(suspect_id);
    if (settings.level < v1::SUPERINTENDENT) {
      const Micros ack_by = at + settings.acknowledge_within;
      *a.mutable_acknowledge_by() = ToTimestamp(ack_by);
      Deadline& d = AddDeadline(Deadline::ESCALATE, rule, key, incident_id, ack_by);
      d.set_alert_id(a.alert_id());
    }
    Emit(a);
  }

  // Resolves the rule's open alert for `key`, if there is one: the awaited action happened.
  void Resolve(RuleId rule, const std::string& key, Micros at, const std::string& event_id,
               absl::string_view what_happened) {
    AlertRecord* open = OpenAlert(rule, key);
    if (open == nullptr) return;
    Alert& a = *open->mutable_alert();
    RemoveEscalation(a.alert_id());
    a.set_state(v1::RESOLVED);
    *a.mutable_at() = ToTimestamp(at);
    a.clear_acknowledge_by();
    MergeIds(a.mutable_evidence_event_ids(), {event_id});
    a.set_reason(absl::StrCat("Resolved: ", what_happened, "."));
    Emit(a);
  }

  void Acknowledge(const std::string& alert_id, const std::string& by, Micros at, const std::string& event_id) {
    for (auto& r : *v_.mutable_alerts()) {
      Alert& a = *r.mutable_alert();
      if (a.alert_id() != alert_id) continue;
      if (a.state() == v1::RESOLVED || a.state() == v1::ACKNOWLEDGED) return;
      RemoveEscalation(alert_id);
      a.set_state(v1::ACKNOWLEDGED);
      a.set_acknowledged_by(by);
      a.set_reason(absl::StrCat("Acknowledged by ", by, ". ", r.reason()));
      a.clear_acknowledge_by();
      *a.mutable_at() = ToTimestamp(at);
      MergeIds(a.mutable_evidence_event_ids(), {event_id});
      Emit(a);
      return;
    }
  }

  void Escalate(const Deadline& d) {
    for (auto& r : *v_.mutable_alerts()) {
      Alert& a = *r.mutable_alert();
      if (a.alert_id() != d.alert_id()) continue;
      RuleId rule;
      RuleFromName(a.rule(), &rule);
      const Micros window = rules_.rule(rule).acknowledge_within;
      const v1::Level from = a.level();
      a.set_level(static_cast<v1::Level>(from + 1));
      a.set_state(v1::ESCALATED);
      *a.mutable_at() = ToTimestamp(d.due());
      a.set_reason(absl::StrCat("Not acknowledged within ", FormatDuration(window), ", so it now goes to ",
                                LevelWord(a.level()), ". ", r.reason()));
      if (a.level() < v1::SUPERINTENDENT) {
        *a.mutable_acknowledge_by() = ToTimestamp(d.due() + window);
        Deadline& next = AddDeadline(Deadline::ESCALATE, rule, r.key(), a.incident_id(), d.due() + window);
        next.set_alert_id(a.alert_id());
      } else {
        a.clear_acknowledge_by();
      }
      Emit(a);
      return;
    }
  }

  // --- deadlines -------------------------------------------------------------

  // Adds a deadline, keeping the list in (due, seq) order.
  Deadline& AddDeadline(Deadline::Kind kind, RuleId rule, const std::string& key,
                        const std::string& incident_id, Micros due) {
    auto* list = v_.mutable_deadlines();
    // Built in place (on the state's arena), then moved into (due, seq) order.
    Deadline* d = list->Add();
    d->set_due(due);
    d->set_kind(kind);
    d->set_rule(std::string(RuleName(rule)));
    d->set_key(key);
    d->set_incident_id(incident_id);
    d->set_seq(v_.next_seq());
    v_.set_next_seq(v_.next_seq() + 1);
    int pos = list->size() - 1;
    while (pos > 0 && list->Get(pos - 1).due() > due) {
      list->SwapElements(pos, pos - 1);
      --pos;
    }
    return *list->Mutable(pos);
  }

  Deadline* FindRuleDeadline(RuleId rule, const std::string& key) {
    const absl::string_view name = RuleName(rule);
    for (auto& d : *v_.mutable_deadlines()) {
      if (d.kind() == Deadline::RULE && d.rule() == name && d.key() == key) return &d;
    }
    return nullptr;
  }

  // Sets (or moves) the pending deadline of a rule for `key`.
  void SetRuleDeadline(RuleId rule, const std::string& key, const std::string& incident_id, Micros due,
                       const std::vector<std::string>& evidence, const std::string& suspect_id = "") {
    RemoveRuleDeadline(rule, key);
    Deadline& d = AddDeadline(Deadline::RULE, rule, key, incident_id, due);
    for (const auto& id : evidence) *d.add_evidence_event_ids() = id;
    d.set_suspect_id(suspect_id);
  }

  void RemoveRuleDeadline(RuleId rule, const std::string& key) {
    const absl::string_view name = RuleName(rule);
    RemoveDeadlinesIf([&](const Deadline& d) {
      return d.kind() == Deadline::RULE && d.rule() == name && d.key() == key;
    });
  }

  void RemoveEscalation(const std::string& alert_id) {
    RemoveDeadlinesIf([&](const Deadline& d) { return d.kind() == Deadline::ESCALATE && d.alert_id() == alert_id; });
  }

  template <typename Pred>
  void RemoveDeadlinesIf(Pred pred) {
    auto* list = v_.mutable_deadlines();
    int out = 0;
    for (int i = 0; i < list->size(); ++i) {
      if (pred(list->Get(i))) continue;
      if (out != i) list->SwapElements(out, i);
      ++out;
    }
    while (list->size() > out) list->RemoveLast();
  }

  // Fires one deadline that stream time has reached.
  void Fire(const Deadline& d) {
    if (d.kind() == Deadline::ESCALATE) {
      Escalate(d);
      return;
    }
    RuleId rule;
    if (!RuleFromName(d.rule(), &rule)) return;
    std::vector<std::string> evidence(d.evidence_event_ids().begin(), d.evidence_event_ids().end());
    const std::string trigger = evidence.empty() ? d.key() : evidence.front();
    Raise(rule, d.key(), d.incident_id(), d.due(), d.due(), DeadlineReason(rule, d), evidence, trigger,
          d.suspect_id());
  }

  std::string DeadlineReason(RuleId rule, const Deadline& d) const {
    const RuleSettings& s = rules_.rule(rule);
    switch (rule) {
      case RuleId::kArrestOverdue:
        return absl::StrCat("An urgent arrest (request ", d.key(), ") was due to be attempted by ", When(d.due()),
                            " and no attempt has been recorded: the suspect is still at large.");
      case RuleId::kAttendanceOverdue:
        return absl::StrCat("No unit had arrived at this incident by ", When(d.due()),
                            ", the attendance deadline for its grade.");
      case RuleId::kRiskAssessmentOverdue:
        return absl::StrCat("No risk assessment (DASH or DARA) within ", FormatDuration(s.deadline),
                            " of the first call about this domestic-abuse incident.");
      case RuleId::kMaracReferralOverdue:
        return absl::StrCat("A HIGH-risk assessment has had no MARAC referral within ",
                            FormatDuration(s.deadline), ".");
      case RuleId::kDisclosureDueSoon:
        return absl::StrCat("Clare's Law application ", d.key(), " has been undecided for ",
                            FormatDuration(s.deadline), ": decide it before the ",
                            FormatDuration(rules_.rule(RuleId::kDisclosureOverdue).deadline), " deadline.");
      case RuleId::kDisclosureOverdue:
        return absl::StrCat("Clare's Law application ", d.key(), " is still undecided after ",
                            FormatDuration(s.deadline), ": the statutory decision deadline has passed.");
      default:
        return absl::StrCat("Deadline ", When(d.due()), " passed.");
    }
  }

  // --- rules -----------------------------------------------------------------

  bool Enabled(RuleId rule) const { return rules_.rule(rule).enabled; }

  // repeat-calls and potential-escalation: evaluated for every window that ends
  // at a call at or after `t` and reaches back to it, so that a late call
  // counts in the windows it belongs to.
  void EvaluateCallWindows(const CallRecord& current) {
    for (RuleId rule : {RuleId::kRepeatCalls, RuleId::kPotentialEscalation}) {
      if (!Enabled(rule)) continue;
      const RuleSettings& s = rules_.rule(rule);
      const bool incidents = rule == RuleId::kPotentialEscalation;
      std::vector<Point> points;
      for (const CallRecord& c : v_.calls()) {
        if (incidents && (!c.domestic_abuse() || c.incident_id().empty())) continue;
        points.push_back({c.at(), incidents ? absl::string_view(c.incident_id()) : absl::string_view(c.event_id()),
                          c.event_id()});
      }
      for (const CallRecord* end : WindowEnds(v_.calls(), current, s.window, [&](const CallRecord& c) {
             return !incidents || c.domestic_abuse();
           })) {
        WindowCount w = CountWindow(points, end->at(), s.window);
        if (w.distinct < s.count) continue;
        const std::string reason =
            incidents ? absl::StrCat("This victim has had ", w.distinct, " domestic-abuse incidents within ",
                                     FormatDuration(s.window),
                                     ": that meets the MARAC potential-escalation criterion, so consider a "
                                     "MARAC referral.")
                      : absl::StrCat(w.distinct, " calls about this victim within ", FormatDuration(s.window),
                                     ": join the calls up and review the risk now.");
        Raise(rule, end->incident_id(), end->incident_id(), end->at(), kNoDeadline, reason, w.evidence,
              end->event_id());
      }
    }
  }

  bool MarkerCounts(int marker) const {
    const auto& m = rules_.rule(RuleId::kMarkerOnCall).markers;
    return std::find(m.begin(), m.end(), marker) != m.end();
  }

  // marker-on-call for one incident: a domestic-abuse call whose suspect has a marker that counts.
  void EvaluateMarkerOnCall(const IncidentRecord& incident, Micros at) {
    if (!Enabled(RuleId::kMarkerOnCall) || !incident.domestic_abuse()) return;
    std::vector<std::string> evidence;
    std::vector<std::string> names;
    std::string suspect;
    for (const auto& m : v_.markers()) {
      if (!MarkerCounts(m.marker())) continue;
      const bool linked = m.incident_id() == incident.incident_id() ||
                          std::find(incident.suspect_ids().begin(), incident.suspect_ids().end(),
                                    m.suspect_id()) != incident.suspect_ids().end();
      if (!linked) continue;
      if (suspect.empty()) suspect = m.suspect_id();
      evidence.push_back(m.event_id());
      std::string name = v1::MarkerMatched::Marker_Name(static_cast<v1::MarkerMatched::Marker>(m.marker()));
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    if (evidence.empty()) return;
    evidence.insert(evidence.begin(), incident.first_call_event_id());
    Raise(RuleId::kMarkerOnCall, incident.incident_id(), incident.incident_id(), at, kNoDeadline,
          absl::StrCat("Domestic-abuse call where the suspect has a ", absl::StrJoin(names, " and "),
                       " warning marker: treat the risk as high."),
          evidence, incident.first_call_event_id(), suspect);
  }

  // The urgent, unattempted arrest requests of an incident.
  std::vector<const ArrestRecord*> UrgentArrests(const std::string& incident_id) const {
    std::vector<const ArrestRecord*> out;
    for (const auto& a : v_.arrests()) {
      if (a.incident_id() == incident_id && a.requested() && a.urgent() && !a.attempted()) out.push_back(&a);
    }
    return out;
  }

  // unit-unavailable: no unit for an IMMEDIATE or urgent incident or an urgent
  // arrest, and no supervisor notified for that incident.
  void EvaluateUnitUnavailable(const IncidentRecord& incident, Micros at) {
    if (!Enabled(RuleId::kUnitUnavailable) || !incident.unit_unavailable() || incident.supervisor_notified()) {
      return;
    }
    const bool urgent_incident = incident.grade() == v1::IncidentGraded::IMMEDIATE || incident.treat_as_urgent();
    const auto arrests = UrgentArrests(incident.incident_id());
    if (!urgent_incident && arrests.empty()) return;
    std::vector<std::string> evidence;
    if (urgent_incident) evidence.push_back(incident.graded_event_id());
    for (const auto* a : arrests) evidence.push_back(a->request_event_id());
    evidence.push_back(incident.unit_unavailable_event_id());
    const std::string what = urgent_incident
                                 ? (arrests.empty() ? "an IMMEDIATE or urgent incident"
                                                    : "an IMMEDIATE or urgent incident and an urgent arrest")
                                 : "an urgent arrest";
    Raise(RuleId::kUnitUnavailable, incident.incident_id(), incident.incident_id(), at, kNoDeadline,
          absl::StrCat("No unit is available for ", what, " and no supervisor has been told."), evidence,
          incident.unit_unavailable_event_id());
  }

  void EvaluateArrestDeferred(const ArrestRecord& a, Micros at) {
    if (!Enabled(RuleId::kArrestDeferred) || !a.requested() || !a.urgent() || !a.unauthorised_deferral() ||
        a.attempted() || a.authorised_until() != 0) {
      return;
    }
    Raise(RuleId::kArrestDeferred, a.request_id(), a.incident_id(), at, kNoDeadline,
          absl::StrCat("An urgent arrest (request ", a.request_id(),
                       ") was deferred without a supervisor's authority: authorise it with a time, or attempt "
                       "the arrest now."),
          {a.request_event_id(), a.unauthorised_deferral_event_id()}, a.unauthorised_deferral_event_id());
  }

  void ScheduleArrestOverdue(const ArrestRecord& a) {
    if (!Enabled(RuleId::kArrestOverdue) || !a.requested() || !a.urgent() || a.attempted()) return;
    if (OpenAlert(RuleId::kArrestOverdue, a.request_id()) != nullptr) return;
    const Micros due = a.authorised_until() != 0 ? a.authorised_until()
                                                 : a.requested_at() + rules_.rule(RuleId::kArrestOverdue).deadline;
    std::vector<std::string> evidence = {a.request_event_id()};
    if (a.authorised_until() != 0) evidence.push_back(a.authorised_deferral_event_id());
    SetRuleDeadline(RuleId::kArrestOverdue, a.request_id(), a.incident_id(), due, evidence, a.suspect_id());
  }

  void ScheduleAttendance(const IncidentRecord& incident) {
    RemoveRuleDeadline(RuleId::kAttendanceOverdue, incident.incident_id());
    if (!Enabled(RuleId::kAttendanceOverdue) || incident.unit_arrived() || incident.grade() == 0) return;
    const RuleSettings& s = rules_.rule(RuleId::kAttendanceOverdue);
    Micros within = 0;
    if (incident.grade() == v1::IncidentGraded::IMMEDIATE) within = s.immediate_deadline;
    if (incident.grade() == v1::IncidentGraded::PRIORITY) within = s.priority_deadline;
    if (within == 0) return;
    SetRuleDeadline(RuleId::kAttendanceOverdue, incident.incident_id(), incident.incident_id(),
                    incident.graded_at() + within, {incident.graded_event_id()});
  }

  void ScheduleRiskAssessment(const IncidentRecord& incident) {
    if (!Enabled(RuleId::kRiskAssessmentOverdue) || !incident.domestic_abuse() || incident.assessed() ||
        !incident.has_first_call()) {
      return;
    }
    if (OpenAlert(RuleId::kRiskAssessmentOverdue, incident.incident_id()) != nullptr) return;
    SetRuleDeadline(RuleId::kRiskAssessmentOverdue, incident.incident_id(), incident.incident_id(),
                    incident.first_call_at() + rules_.rule(RuleId::kRiskAssessmentOverdue).deadline,
                    {incident.first_call_event_id()});
  }

  void EvaluateClosedWithoutAssessment(const IncidentRecord& incident, Micros at) {
    if (!Enabled(RuleId::kClosedWithoutAssessment) || !incident.closed() || !incident.domestic_abuse() ||
        incident.assessed()) {
      return;
    }
    Raise(RuleId::kClosedWithoutAssessment, incident.incident_id(), incident.incident_id(), at, kNoDeadline,
          "This domestic-abuse incident was closed with no risk assessment recorded: no DASH, no "
          "safeguarding decision.",
          {incident.first_call_event_id(), incident.closed_event_id()}, incident.closed_event_id());
  }

  // --- event handlers ---------------------------------------------------------

  void OnCall(const Event& e, Micros t) {
    const auto& p = e.call_received();
    CallRecord* c = v_.add_calls();
    c->set_event_id(e.event_id());
    c->set_at(t);
    c->set_incident_id(e.incident_id());
    c->set_domestic_abuse(p.domestic_abuse());
    c->set_suspect_id(p.suspect_id());

    IncidentRecord& incident = Incident(e.incident_id());
    if (!incident.has_first_call() || t < incident.first_call_at()) {
      incident.set_has_first_call(true);
      incident.set_first_call_at(t);
      incident.set_first_call_event_id(e.event_id());
    }
    if (p.domestic_abuse()) incident.set_domestic_abuse(true);
    if (!p.suspect_id().empty() &&
        std::find(incident.suspect_ids().begin(), incident.suspect_ids().end(), p.suspect_id()) ==
            incident.suspect_ids().end()) {
      incident.add_suspect_ids(p.suspect_id());
    }
    // Records live in RepeatedPtrFields, whose elements stay put as others are added.
    EvaluateCallWindows(*c);
    EvaluateMarkerOnCall(incident, t);
    ScheduleRiskAssessment(incident);
    EvaluateClosedWithoutAssessment(incident, t);
    if (p.domestic_abuse() && !p.suspect_id().empty() && Enabled(RuleId::kSerialPerpetrator)) {
      v1::SuspectLink& link = out_.suspect_links.emplace_back();
      link.set_suspect_id(p.suspect_id());
      link.set_victim_id(e.victim_id());
      link.set_incident_id(e.incident_id());
      link.set_event_id(e.event_id());
      link.set_at(t);
      link.set_force(e.force());
    }
  }

  void OnGraded(const Event& e, Micros t) {
    IncidentRecord& incident = Incident(e.incident_id());
    incident.set_grade(e.incident_graded().grade());
    incident.set_treat_as_urgent(e.incident_graded().treat_as_urgent());
    incident.set_graded_at(t);
    incident.set_graded_event_id(e.event_id());
    ScheduleAttendance(incident);
    EvaluateUnitUnavailable(incident, t);
  }

  void OnMarker(const Event& e, Micros t) {
    state::MarkerRecord* m = v_.add_markers();
    m->set_suspect_id(e.marker_matched().suspect_id());
    m->set_marker(e.marker_matched().marker());
    m->set_at(t);
    m->set_event_id(e.event_id());
    m->set_incident_id(e.incident_id());
    if (!MarkerCounts(m->marker())) return;
    const std::string suspect = m->suspect_id();
    const std::string incident_id = e.incident_id();
    for (const IncidentRecord& incident : v_.incidents()) {
      const bool linked = incident.incident_id() == incident_id ||
                          std::find(incident.suspect_ids().begin(), incident.suspect_ids().end(), suspect) !=
                              incident.suspect_ids().end();
      if (linked) EvaluateMarkerOnCall(incident, t);
    }
  }

  void OnUnitUnavailable(const Event& e, Micros t) {
    IncidentRecord& incident = Incident(e.incident_id());
    incident.set_unit_unavailable(true);
    incident.set_unit_unavailable_event_id(e.event_id());
    EvaluateUnitUnavailable(incident, t);
  }

  void OnUnitAssigned(const Event& e, Micros t) {
    IncidentRecord& incident = Incident(e.incident_id());
    incident.set_unit_unavailable(false);
    incident.set_unit_assigned(true);
    Resolve(RuleId::kUnitUnavailable, e.incident_id(), t, e.event_id(), "a unit has been assigned");
  }

  void OnUnitArrived(const Event& e, Micros t) {
    IncidentRecord& incident = Incident(e.incident_id());
    incident.set_unit_unavailable(false);
    incident.set_unit_arrived(true);
    RemoveRuleDeadline(RuleId::kAttendanceOverdue, e.incident_id());
    Resolve(RuleId::kUnitUnavailable, e.incident_id(), t, e.event_id(), "a unit has arrived");
    Resolve(RuleId::kAttendanceOverdue, e.incident_id(), t, e.event_id(), "a unit has arrived");
  }

  void OnArrestRequested(const Event& e, Micros t) {
    const auto& p = e.arrest_requested();
    ArrestRecord& a = Arrest(p.request_id());
    a.set_incident_id(e.incident_id());
    a.set_suspect_id(p.suspect_id());
    a.set_urgent(p.urgency() == v1::ArrestRequested::URGENT);
    a.set_requested(true);
    a.set_requested_at(t);
    a.set_request_event_id(e.event_id());
    ScheduleArrestOverdue(a);
    EvaluateArrestDeferred(a, t);
    if (const IncidentRecord* incident = FindIncident(e.incident_id())) EvaluateUnitUnavailable(*incident, t);
  }

  void OnArrestDeferred(const Event& e, Micros t) {
    const auto& p = e.arrest_deferred();
    ArrestRecord& a = Arrest(p.request_id());
    if (a.incident_id().empty()) a.set_incident_id(e.incident_id());
    if (!p.authorised_by().empty()) {
      a.set_authorised_until(ToMicros(p.defer_until()));
      a.set_authorised_deferral_event_id(e.event_id());
      Resolve(RuleId::kArrestDeferred, a.request_id(), t, e.event_id(),
              "the deferral has been authorised by a supervisor");
      ScheduleArrestOverdue(a);
    } else {
      a.set_unauthorised_deferral(true);
      a.set_unauthorised_deferral_event_id(e.event_id());
      EvaluateArrestDeferred(a, t);
    }
  }

  void OnArrestAttempted(const Event& e, Micros t) {
    ArrestRecord& a = Arrest(e.arrest_attempted().request_id());
    if (a.incident_id().empty()) a.set_incident_id(e.incident_id());
    a.set_attempted(true);
    const std::string request_id = a.request_id();
    RemoveRuleDeadline(RuleId::kArrestOverdue, request_id);
    Resolve(RuleId::kArrestOverdue, request_id, t, e.event_id(), "an arrest attempt has been recorded");
    Resolve(RuleId::kArrestDeferred, request_id, t, e.event_id(), "an arrest attempt has been recorded");
  }

  void OnRiskAssessed(const Event& e, Micros t) {
    const auto& p = e.risk_assessed();
    IncidentRecord& incident = Incident(e.incident_id());
    incident.set_assessed(true);
    int effective = p.level();
    if (p.tool() == v1::RiskAssessed::DASH && p.yes_count() >= rules_.dash_high_yes_count()) {
      effective = v1::RiskAssessed::HIGH;
    }
    state::AssessmentRecord* r = v_.add_assessments();
    r->set_event_id(e.event_id());
    r->set_incident_id(e.incident_id());
    r->set_tool(p.tool());
    r->set_recorded_level(p.level());
    r->set_effective_level(effective);
    r->set_yes_count(p.yes_count());
    r->set_at(t);
    RemoveRuleDeadline(RuleId::kRiskAssessmentOverdue, e.incident_id());
    Resolve(RuleId::kRiskAssessmentOverdue, e.incident_id(), t, e.event_id(), "a risk assessment has been recorded");
    Resolve(RuleId::kClosedWithoutAssessment, e.incident_id(), t, e.event_id(),
            "a risk assessment has been recorded");
    if (effective == v1::RiskAssessed::HIGH && Enabled(RuleId::kMaracReferralOverdue)) {
      const bool referred = std::any_of(v_.marac_referrals().begin(), v_.marac_referrals().end(),
                                        [&](Micros at) { return at >= t; });
      if (!referred) {
        SetRuleDeadline(RuleId::kMaracReferralOverdue, e.event_id(), e.incident_id(),
                        t + rules_.rule(RuleId::kMaracReferralOverdue).deadline, {e.event_id()});
      }
    }
  }

  void OnMaracReferred(const Event& e, Micros t) {
    v_.add_marac_referrals(t);
    // Every HIGH assessment made up to now is answered by this referral.
    for (const auto& a : v_.assessments()) {
      if (a.effective_level() != v1::RiskAssessed::HIGH || a.at() > t) continue;
      RemoveRuleDeadline(RuleId::kMaracReferralOverdue, a.event_id());
      Resolve(RuleId::kMaracReferralOverdue, a.event_id(), t, e.event_id(), "a MARAC referral has been made");
    }
    std::vector<std::string> keys;
    for (const auto& r : v_.alerts()) {
      if (r.alert().rule() == RuleName(RuleId::kPotentialEscalation) && r.alert().state() != v1::RESOLVED) {
        keys.push_back(r.key());
      }
    }
    for (const auto& key : keys) {
      Resolve(RuleId::kPotentialEscalation, key, t, e.event_id(), "a MARAC referral has been made");
    }
  }

  void OnDisclosureRequested(const Event& e, Micros t) {
    const auto& p = e.disclosure_requested();
    state::DisclosureRecord& d = Disclosure(p.application_id());
    d.set_requested_at(t);
    d.set_event_id(e.event_id());
    d.set_incident_id(e.incident_id());
    if (d.decided()) return;
    for (RuleId rule : {RuleId::kDisclosureDueSoon, RuleId::kDisclosureOverdue}) {
      if (!Enabled(rule)) continue;
      SetRuleDeadline(rule, p.application_id(), e.incident_id(), t + rules_.rule(rule).deadline, {e.event_id()});
    }
  }

  void OnDisclosureDecided(const Event& e, Micros t) {
    const std::string& id = e.disclosure_decided().application_id();
    Disclosure(id).set_decided(true);
    for (RuleId rule : {RuleId::kDisclosureDueSoon, RuleId::kDisclosureOverdue}) {
      RemoveRuleDeadline(rule, id);
      Resolve(rule, id, t, e.event_id(), "the application has been decided");
    }
  }

  void OnSupervisorNotified(const Event& e, Micros t) {
    Incident(e.incident_id()).set_supervisor_notified(true);
    Resolve(RuleId::kUnitUnavailable, e.incident_id(), t, e.event_id(), "a supervisor has been told");
  }

  void OnClosed(const Event& e, Micros t) {
    IncidentRecord& incident = Incident(e.incident_id());
    incident.set_closed(true);
    incident.set_closed_event_id(e.event_id());
    EvaluateClosedWithoutAssessment(incident, t);
  }

  void OnFinding(const v1::SuspectFinding& f) {
    if (!Enabled(RuleId::kSerialPerpetrator)) return;
    const RuleSettings& s = rules_.rule(RuleId::kSerialPerpetrator);
    std::vector<std::string> evidence(f.evidence_event_ids().begin(), f.evidence_event_ids().end());
    Raise(RuleId::kSerialPerpetrator, absl::StrCat(f.incident_id(), "/", f.suspect_id()), f.incident_id(), f.at(),
          kNoDeadline,
          absl::StrCat("The suspect in this domestic-abuse call is linked to domestic-abuse calls about ",
                       f.victim_count(), " different victims within ", FormatDuration(s.window),
                       ": a possible serial perpetrator."),
          evidence, f.event_id(), f.suspect_id());
  }

  void ApplyEvent(const Event& e) {
    const Micros t = ToMicros(e.occurred_at());
    switch (e.payload_case()) {
      case Event::kCallReceived: OnCall(e, t); break;
      case Event::kIncidentGraded: OnGraded(e, t); break;
      case Event::kMarkerMatched: OnMarker(e, t); break;
      case Event::kUnitUnavailable: OnUnitUnavailable(e, t); break;
      case Event::kUnitAssigned: OnUnitAssigned(e, t); break;
      case Event::kUnitArrived: OnUnitArrived(e, t); break;
      case Event::kArrestRequested: OnArrestRequested(e, t); break;
      case Event::kArrestDeferred: OnArrestDeferred(e, t); break;
      case Event::kArrestAttempted: OnArrestAttempted(e, t); break;
      case Event::kRiskAssessed: OnRiskAssessed(e, t); break;
      case Event::kMaracReferred: OnMaracReferred(e, t); break;
      case Event::kDisclosureRequested: OnDisclosureRequested(e, t); break;
      case Event::kDisclosureDecided: OnDisclosureDecided(e, t); break;
      case Event::kSupervisorNotified: OnSupervisorNotified(e, t); break;
      case Event::kEscalationAcknowledged:
        Acknowledge(e.escalation_acknowledged().alert_id(), e.escalation_acknowledged().acknowledged_by(), t,
                    e.event_id());
        break;
      case Event::kIncidentClosed: OnClosed(e, t); break;
      case Event::kSuspectFinding: OnFinding(e.suspect_finding()); break;
      case Event::kCrimeRecorded:
      case Event::kSafeguardingRecorded:
      case Event::kClockTick:
      case Event::PAYLOAD_NOT_SET:
        break;  // recorded on the timeline; no rule waits for them
    }
  }

  // Counts the transition on the stored alert and hands a copy to the caller.
  void Emit(Alert& a) {
    a.set_revision(a.revision() + 1);
    out_.transitions.push_back(a);
  }

 private:
  const RulesConfig& rules_;
  VictimState& v_;
  EngineOutput& out_;
};

}  // namespace

absl::StatusOr<bool> Engine::Check(const Event& event, const VictimState& victim) const {
  const auto& seen = victim.seen_event_ids();
  for (int i = 0; i < seen.size(); ++i) {
    if (seen[i] != event.event_id()) continue;
    if (victim.seen_fingerprints(i) == EventFingerprint(event)) return false;
    return absl::AlreadyExistsError(
        absl::StrCat("event_id ", event.event_id(), " was already applied with different content"));
  }
  if (event.has_escalation_acknowledged()) {
    const std::string& alert_id = event.escalation_acknowledged().alert_id();
    const bool known = std::any_of(victim.alerts().begin(), victim.alerts().end(),
                                   [&](const AlertRecord& r) { return r.alert().alert_id() == alert_id; });
    if (!known) {
      return absl::NotFoundError(
          absl::StrCat("escalation_acknowledged.alert_id: this victim has no alert ", alert_id));
    }
  }
  return true;
}

absl::Status Engine::Apply(const Event& event, VictimState* victim, EngineOutput* out) const {
  absl::StatusOr<bool> is_new = Check(event, *victim);
  if (!is_new.ok()) return is_new.status();
  if (!*is_new) {
    out->duplicate = true;
    return absl::OkStatus();
  }
  if (victim->victim_id().empty()) victim->set_victim_id(event.victim_id());
  if (!event.force().empty()) victim->set_force(event.force());
  victim->add_seen_event_ids(event.event_id());
  victim->add_seen_fingerprints(EventFingerprint(event));
  victim->set_last_event_at(std::max(victim->last_event_at(), ToMicros(event.occurred_at())));
  Step(rules_, victim, out).ApplyEvent(event);
  return absl::OkStatus();
}

void Engine::ApplyFinding(const v1::SuspectFinding& f, VictimState* victim, EngineOutput* out) const {
  Step(rules_, victim, out).OnFinding(f);
}

Micros Engine::NextDue(const VictimState& victim) {
  return victim.deadlines().empty() ? kNoDeadline : victim.deadlines(0).due();
}

bool Engine::FireEarliest(Micros now, VictimState* victim, EngineOutput* out) const {
  const Micros due = NextDue(*victim);
  if (due == kNoDeadline || due > now) return false;
  Step step(rules_, victim, out);
  // Take every deadline due at this instant before firing, since firing adds escalations.
  std::vector<Deadline> firing;
  auto* list = victim->mutable_deadlines();
  int n = 0;
  while (n < list->size() && list->Get(n).due() == due) ++n;
  firing.assign(list->begin(), list->begin() + n);
  list->DeleteSubrange(0, n);
  for (const Deadline& d : firing) step.Fire(d);
  return true;
}

void Engine::ApplyLink(const v1::SuspectLink& link, state::SuspectState* suspect,
                       std::vector<v1::SuspectFinding>* findings) const {
  const RuleSettings& s = rules_.rule(RuleId::kSerialPerpetrator);
  if (!s.enabled) return;
  for (const auto& l : suspect->links()) {
    if (l.event_id() == link.event_id()) return;  // applied before
  }
  if (suspect->suspect_id().empty()) suspect->set_suspect_id(link.suspect_id());
  *suspect->add_links() = link;
  std::vector<Point> points;
  for (const auto& l : suspect->links()) points.push_back({l.at(), l.victim_id(), l.event_id()});
  for (const auto* end : WindowEnds(suspect->links(), link, s.window, [](const auto&) { return true; })) {
    WindowCount w = CountWindow(points, end->at(), s.window);
    if (w.distinct < s.count) continue;
    v1::SuspectFinding& f = findings->emplace_back();
    f.set_suspect_id(link.suspect_id());
    f.set_victim_id(end->victim_id());
    f.set_incident_id(end->incident_id());
    f.set_event_id(end->event_id());
    f.set_at(end->at());
    f.set_victim_count(w.distinct);
    f.set_force(end->force());
    for (auto& id : w.evidence) f.add_evidence_event_ids(std::move(id));
  }
}

}  // namespace vigil::legacy
