#include "services/escalation/engine/codec.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "common/fingerprint.h"
#include "google/protobuf/io/coded_stream.h"

namespace vigil {

using live::EventTag;
using live::IncidentTag;
using live::SuspectTag;

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  // What SerializeToArray does, with determinism asked for: sized once, written straight into the string (a
  // CodedOutputStream over a StringOutputStream cost about 1,450 more instructions a record).
  const size_t size = message.ByteSizeLong();
  std::string bytes(size, '\0');
  uint8_t* target = reinterpret_cast<uint8_t*>(bytes.data());
  google::protobuf::io::EpsCopyOutputStream stream(target, static_cast<int>(size), /*deterministic=*/true);
  message._InternalSerialize(target, &stream);
  return bytes;
}

namespace {

bool HasUnknownFields(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  if (!reflection.GetUnknownFields(message).empty()) return true;
  const google::protobuf::Descriptor& descriptor = *message.GetDescriptor();
  auto in = [&](const FieldDescriptor* field) {
    return field != nullptr && field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
           HasUnknownFields(reflection.GetMessage(message, field));
  };
  // A oneof's message is found in one step, not by asking each of its members (an event's payload has 27).
  // Its real oneofs come first, proto3's optional fields' synthetic ones after them.
  for (int i = 0; i < descriptor.real_oneof_decl_count(); ++i) {
    if (in(reflection.GetOneofFieldDescriptor(message, descriptor.oneof_decl(i)))) return true;
  }
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    if (field.cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field.real_containing_oneof() != nullptr) continue;
    if (field.is_repeated()) {
      for (int j = 0, n = reflection.FieldSize(message, &field); j < n; ++j) {
        if (HasUnknownFields(reflection.GetRepeatedMessage(message, &field, j))) return true;
      }
    } else if (reflection.HasField(message, &field) && in(&field)) {
      return true;
    }
  }
  return false;
}

}  // namespace

void DropUnknownFields(google::protobuf::Message* message) {
  if (HasUnknownFields(*message)) message->DiscardUnknownFields();
}

SnapshotDigest::SnapshotDigest(int64_t stream_time) : hash_(kFnvOffset) {
  if (stream_time != 0) {  // proto3 leaves a zero out
    const char tag = 0x08;  // field 1, varint
    hash_ = Fnv1a64(absl::string_view(&tag, 1), hash_);
    AddVarint(static_cast<uint64_t>(stream_time));
  }
}

void SnapshotDigest::AddVarint(uint64_t v) {
  char buffer[10];
  size_t n = 0;
  do {
    buffer[n++] = static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v != 0);
  hash_ = Fnv1a64(absl::string_view(buffer, n), hash_);
}

void SnapshotDigest::AddField(int field, absl::string_view bytes) {
  const char tag = static_cast<char>((field << 3) | 2);  // length-delimited
  hash_ = Fnv1a64(absl::string_view(&tag, 1), hash_);
  AddVarint(bytes.size());
  hash_ = Fnv1a64(bytes, hash_);
}

std::string SnapshotDigest::Hex() const { return Hex64(hash_); }

void AlertMessage(const live::Alert& a, const live::Victim& v, v1::Alert* message) {
  const live::Names& n = v.names;
  // proto3: an empty string is not written, so one not set gives the same bytes and saves its allocation.
  auto set = [](std::string* (v1::Alert::*mutable_field)(), v1::Alert& m, const std::string& value) {
    if (!value.empty()) (m.*mutable_field)()->assign(value);
  };
  message->Clear();
  v1::Alert& m = *message;
  set(&v1::Alert::mutable_alert_id, m, a.alert_id);
  set(&v1::Alert::mutable_victim_id, m, v.id);
  set(&v1::Alert::mutable_incident_id, m, n[a.incident]);
  const absl::string_view rule = RuleName(a.rule);
  m.mutable_rule()->assign(rule.data(), rule.size());
  m.set_level(a.level);
  m.set_state(a.state);
  SetTimestamp(a.at, m.mutable_at());
  if (a.deadline) SetTimestamp(*a.deadline, m.mutable_deadline());
  std::string* reason = m.mutable_reason();
  reason->reserve(a.note.size() + (a.note_only ? 0 : a.rule_reason.size()));
  reason->append(a.note);
  if (!a.note_only) reason->append(a.rule_reason);
  auto* evidence = m.mutable_evidence_event_ids();
  evidence->Reserve(static_cast<int>(a.evidence.first.size() + a.evidence.last.size()));
  for (const live::EventRef id : a.evidence.first) evidence->Add()->assign(n[id]);
  for (const live::EventRef id : a.evidence.last) evidence->Add()->assign(n[id]);
  set(&v1::Alert::mutable_threshold, m, n[a.threshold]);
  set(&v1::Alert::mutable_force, m, n[a.force]);
  set(&v1::Alert::mutable_suspect_id, m, n[a.suspect]);
  m.set_revision(a.revision);
  SetTimestamp(a.fired_at, m.mutable_fired_at());
  if (a.acknowledge_by) SetTimestamp(*a.acknowledge_by, m.mutable_acknowledge_by());
  set(&v1::Alert::mutable_acknowledged_by, m, n[a.acknowledged_by]);
  m.set_evidence_total(a.evidence.total);
  set(&v1::Alert::mutable_rules_version, m, n[a.rules_version]);
}

namespace {

state::CallRecord CallMessage(const live::Names& n, const live::Call& c) {
  state::CallRecord r;
  r.set_event_id(n[c.event]);
  r.set_at(c.at);
  r.set_incident_id(n[c.incident]);
  r.set_domestic_abuse(c.domestic_abuse);
  r.set_suspect_id(n[c.suspect]);
  return r;
}

}  // namespace

VictimDelta TakeVictimDelta(live::Victim& v) {
  VictimDelta d;
  d.first = !std::exchange(v.stored, true);
  d.head = EncodeVictim(v, /*records=*/false);
  d.calls_deleted = std::move(v.calls_dropped);
  d.seen_deleted = std::move(v.seen_dropped);
  for (const auto& [at, ref] : v.calls_added) {
    // Still held (not added and dropped in the same batch)?
    for (size_t i = v.FirstCallAtOrAfter(at); ref.valid() && i < v.calls.size() && v.calls[i].at == at; ++i) {
      if (v.calls[i].event == ref) {
        d.calls_put.push_back(CallMessage(v.names, v.calls[i]));
        break;
      }
    }
  }
  for (const live::EventRef ref : v.seen_added) {
    const live::SeenEvent* seen = ref.valid() ? v.seen.find(ref) : nullptr;
    if (seen == nullptr) continue;
    state::SeenRecord& r = d.seen_put.emplace_back();
    r.set_event_id(v.names[ref]);
    r.set_fingerprint(seen->fingerprint);
    r.set_at(seen->at);
    r.set_order(seen->order);
  }
  v.calls_added.clear();
  v.calls_dropped.clear();
  v.seen_added.clear();
  v.seen_dropped.clear();
  return d;
}

state::VictimState EncodeVictim(const live::Victim& v, bool records) {
  const live::Names& n = v.names;
  state::VictimState s;
  s.set_victim_id(v.id);
  s.set_force(v.force);
  if (records) {
    std::vector<std::pair<live::EventRef, const live::SeenEvent*>> seen;
    seen.reserve(v.seen.size());
    for (const auto& [id, e] : v.seen) seen.emplace_back(id, &e);
    std::sort(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return a.second->order < b.second->order; });
    for (const auto& [id, e] : seen) {
      s.add_seen_event_ids(n[id]);
      s.add_seen_fingerprints(e->fingerprint);
      s.add_seen_at(e->at);
      s.add_seen_order(e->order);
    }
    for (const live::Call& c : v.calls) *s.add_calls() = CallMessage(n, c);
  }
  for (const live::Incident& i : v.incidents) {
    state::IncidentRecord* r = s.add_incidents();
    r->set_incident_id(n[i.id]);
    r->set_has_first_call(i.has_first_call);
    r->set_first_call_at(i.first_call_at);
    r->set_first_call_event_id(n[i.first_call_event]);
    r->set_domestic_abuse(i.domestic_abuse);
    r->set_grade(i.grade);
    r->set_treat_as_urgent(i.treat_as_urgent);
    r->set_graded_at(i.graded_at);
    r->set_graded_event_id(n[i.graded_event]);
    r->set_unit_unavailable(i.unit_unavailable);
    r->set_unit_unavailable_event_id(n[i.unit_unavailable_event]);
    r->set_unit_assigned(i.unit_assigned);
    r->set_unit_arrived(i.unit_arrived);
    r->set_supervisor_notified(i.supervisor_notified);
    r->set_assessed(i.assessed);
    r->set_closed(i.closed);
    r->set_closed_event_id(n[i.closed_event]);
    for (live::SuspectRef suspect : i.suspects) r->add_suspect_ids(n[suspect]);
    r->set_last_at(i.last_at);
    for (const auto& [at, event] : i.abandoned) {
      state::AbandonedCall* c = r->add_abandoned_calls();
      c->set_at(at);
      c->set_event_id(n[event]);
    }
    for (Micros at : i.returned) r->add_returned_at(at);
    if (i.first_da_call != INT64_MAX) {
      r->set_has_first_da_call(true);
      r->set_first_da_call_at(i.first_da_call);
      r->set_first_da_call_event_id(n[i.first_da_call_event]);
    }
    r->set_da_calls(i.da_calls);
  }
  for (const live::Marker& m : v.markers) {
    state::MarkerRecord* r = s.add_markers();
    r->set_suspect_id(n[m.suspect]);
    r->set_marker(m.marker);
    r->set_at(m.at);
    r->set_event_id(n[m.event]);
    r->set_incident_id(n[m.incident]);
  }
  for (const live::Arrest& a : v.arrests) {
    state::ArrestRecord* r = s.add_arrests();
    r->set_request_id(n[a.id]);
    r->set_incident_id(n[a.incident]);
    r->set_suspect_id(n[a.suspect]);
    r->set_urgent(a.urgent);
    r->set_requested(a.requested);
    r->set_requested_at(a.requested_at);
    r->set_request_event_id(n[a.request_event]);
    r->set_authorised_until(a.authorised_until);
    r->set_authorised_deferral_event_id(n[a.authorised_deferral_event]);
    r->set_unauthorised_deferral(a.unauthorised_deferral);
    r->set_unauthorised_deferral_event_id(n[a.unauthorised_deferral_event]);
    r->set_attempted(a.attempted);
    r->set_last_at(a.last_at);
    r->set_last_attempt_at(a.last_attempt_at);
    r->set_last_attempt_not_found(a.last_attempt_not_found);
    r->set_last_attempt_event_id(n[a.last_attempt_event]);
  }
  for (const live::Assessment& a : v.assessments) {
    state::AssessmentRecord* r = s.add_assessments();
    r->set_event_id(n[a.event]);
    r->set_incident_id(n[a.incident]);
    r->set_tool(a.tool);
    r->set_recorded_level(a.recorded_level);
    r->set_effective_level(a.effective_level);
    r->set_yes_count(a.yes_count);
    r->set_at(a.at);
  }
  for (const live::Disclosure& d : v.disclosures) {
    state::DisclosureRecord* r = s.add_disclosures();
    r->set_application_id(n[d.id]);
    r->set_requested_at(d.requested_at);
    r->set_event_id(n[d.event]);
    r->set_decided(d.decided);
    r->set_incident_id(n[d.incident]);
    r->set_last_at(d.last_at);
  }
  for (Micros at : v.marac_referrals) s.add_marac_referrals(at);
  for (const live::Protection& p : v.protections) {
    state::ProtectionRecord* r = s.add_protections();
    r->set_protection_id(n[p.id]);
    r->set_is_bail(p.is_bail);
    r->set_kind(p.kind);
    r->set_suspect_id(n[p.suspect]);
    r->set_has_recorded(p.recorded_at.has_value());
    r->set_recorded_at(p.recorded_at.value_or(0));
    r->set_recorded_event_id(n[p.recorded_event]);
    r->set_has_until(p.until.has_value());
    r->set_until(p.until.value_or(0));
    r->set_has_ended(p.ended_at.has_value());
    r->set_ended_at(p.ended_at.value_or(0));
    r->set_has_heard(p.heard_at.has_value());
    r->set_heard_at(p.heard_at.value_or(0));
    r->set_with_conditions(p.with_conditions);
    r->set_last_at(p.last_at);
  }
  for (const auto& [key, d] : v.deadlines) {
    state::Deadline* r = s.add_deadlines();
    r->set_due(d.due);
    r->set_kind(d.kind == live::Deadline::kRule ? state::Deadline::RULE : state::Deadline::ESCALATE);
    r->set_rule(std::string(RuleName(d.rule)));
    r->set_key(d.key);
    r->set_incident_id(d.incident_id);
    r->set_alert_id(d.alert_id);
    for (const std::string& id : d.evidence) r->add_evidence_event_ids(id);
    r->set_seq(d.seq);
    r->set_suspect_id(d.suspect_id);
    r->set_subject(d.subject);
  }
  for (const live::Alert& a : v.alerts) {
    state::AlertRecord* r = s.add_alerts();
    r->set_key(a.key);
    if (records) {
      AlertMessage(a, v, r->mutable_alert());
    } else {  // the head: the alert's latest transition is stored apart (storage/keys.h, e/P/a/)
      r->mutable_alert()->set_alert_id(a.alert_id);
    }
    r->set_reason(a.rule_reason);
    r->set_acknowledge_within(a.acknowledge_within);
    for (uint64_t fp : a.evidence.seen_order) r->add_evidence_seen(fp);
  }
  s.set_last_event_at(v.last_event_at);
  s.set_next_seq(v.next_seq);
  s.set_calls_total(v.calls_total);
  s.set_incidents_total(v.incidents_total);
  s.set_pruned_at(v.pruned_at);
  s.set_seen_count(v.seen_count);
  for (RuleId rule : {RuleId::kRepeatCalls, RuleId::kPotentialEscalation}) {
    const live::Episode& e = v.episodes[live::EpisodeIndex(rule)];
    if (!e.active) continue;
    state::EpisodeRecord* r = s.add_episodes();
    r->set_rule(std::string(RuleName(rule)));
    r->set_start(e.start);
    r->set_end(e.end);
  }
  return s;
}

std::unique_ptr<live::Victim> DecodeVictim(const state::VictimState& s) {
  auto victim = std::make_unique<live::Victim>();
  live::Victim& v = *victim;
  live::Names& n = v.names;
  v.stored = true;
  v.id = s.victim_id();
  v.force = s.force();
  for (int i = 0; i < s.seen_event_ids_size(); ++i) {
    v.seen.try_emplace(n.Intern<EventTag>(s.seen_event_ids(i)),
                       live::SeenEvent{i < s.seen_fingerprints_size() ? s.seen_fingerprints(i) : 0,
                                       i < s.seen_at_size() ? s.seen_at(i) : 0,
                                       i < s.seen_order_size() ? s.seen_order(i) : static_cast<uint64_t>(i)});
  }
  auto ref_or_none = [&](const std::string& id) {
    return id.empty() ? live::SuspectRef{} : n.Intern<SuspectTag>(id);
  };
  for (const state::CallRecord& r : s.calls()) {
    v.calls.push_back({.at = r.at(),
                       .event = n.Intern<EventTag>(r.event_id()),
                       .incident = n.Intern<IncidentTag>(r.incident_id()),
                       .suspect = ref_or_none(r.suspect_id()),
                       .domestic_abuse = r.domestic_abuse()});
  }
  auto event = [&](const std::string& id) { return id.empty() ? live::EventRef{} : n.Intern<EventTag>(id); };
  for (const state::IncidentRecord& r : s.incidents()) {
    live::Incident& i = v.incidents.emplace_back();
    i.id = n.Intern<IncidentTag>(r.incident_id());
    i.has_first_call = r.has_first_call();
    i.first_call_at = r.first_call_at();
    i.first_call_event = event(r.first_call_event_id());
    i.domestic_abuse = r.domestic_abuse();
    i.grade = r.grade();
    i.treat_as_urgent = r.treat_as_urgent();
    i.graded_at = r.graded_at();
    i.graded_event = event(r.graded_event_id());
    i.unit_unavailable = r.unit_unavailable();
    i.unit_unavailable_event = event(r.unit_unavailable_event_id());
    i.unit_assigned = r.unit_assigned();
    i.unit_arrived = r.unit_arrived();
    i.supervisor_notified = r.supervisor_notified();
    i.assessed = r.assessed();
    i.closed = r.closed();
    i.closed_event = event(r.closed_event_id());
    for (const std::string& suspect : r.suspect_ids()) i.suspects.push_back(n.Intern<SuspectTag>(suspect));
    i.last_at = r.last_at();
    for (const state::AbandonedCall& c : r.abandoned_calls()) i.abandoned.emplace_back(c.at(), event(c.event_id()));
    i.returned.assign(r.returned_at().begin(), r.returned_at().end());
    i.first_da_call = r.has_first_da_call() ? r.first_da_call_at() : INT64_MAX;
    i.first_da_call_event = event(r.first_da_call_event_id());
    i.da_calls = r.da_calls();
  }
  for (const state::MarkerRecord& r : s.markers()) {
    v.markers.push_back({.suspect = n.Intern<SuspectTag>(r.suspect_id()),
                         .marker = r.marker(),
                         .at = r.at(),
                         .event = event(r.event_id()),
                         .incident = n.Intern<IncidentTag>(r.incident_id())});
  }
  for (const state::ArrestRecord& r : s.arrests()) {
    live::Arrest& a = v.arrests.emplace_back();
    a.id = n.Intern<live::RequestTag>(r.request_id());
    a.incident = n.Intern<IncidentTag>(r.incident_id());
    a.suspect = n.Intern<SuspectTag>(r.suspect_id());
    a.urgent = r.urgent();
    a.requested = r.requested();
    a.requested_at = r.requested_at();
    a.request_event = event(r.request_event_id());
    a.authorised_until = r.authorised_until();
    a.authorised_deferral_event = event(r.authorised_deferral_event_id());
    a.unauthorised_deferral = r.unauthorised_deferral();
    a.unauthorised_deferral_event = event(r.unauthorised_deferral_event_id());
    a.attempted = r.attempted();
    a.last_at = r.last_at();
    a.last_attempt_at = r.last_attempt_at();
    a.last_attempt_not_found = r.last_attempt_not_found();
    a.last_attempt_event = event(r.last_attempt_event_id());
  }
  for (const state::AssessmentRecord& r : s.assessments()) {
    v.assessments.push_back({.event = event(r.event_id()),
                             .incident = n.Intern<IncidentTag>(r.incident_id()),
                             .tool = r.tool(),
                             .recorded_level = r.recorded_level(),
                             .effective_level = r.effective_level(),
                             .yes_count = r.yes_count(),
                             .at = r.at()});
  }
  for (const state::DisclosureRecord& r : s.disclosures()) {
    live::Disclosure& d = v.disclosures.emplace_back();
    d.id = n.Intern<live::ApplicationTag>(r.application_id());
    d.requested_at = r.requested_at();
    d.event = event(r.event_id());
    d.decided = r.decided();
    d.incident = n.Intern<IncidentTag>(r.incident_id());
    d.last_at = r.last_at();
  }
  v.marac_referrals.assign(s.marac_referrals().begin(), s.marac_referrals().end());
  for (const state::ProtectionRecord& r : s.protections()) {
    live::Protection& p = v.protections.emplace_back();
    p.id = n.Intern<live::ProtectionTag>(r.protection_id());
    p.is_bail = r.is_bail();
    p.kind = r.kind();
    p.suspect = n.Intern<SuspectTag>(r.suspect_id());
    if (r.has_recorded()) p.recorded_at = r.recorded_at();
    p.recorded_event = event(r.recorded_event_id());
    if (r.has_until()) p.until = r.until();
    if (r.has_ended()) p.ended_at = r.ended_at();
    if (r.has_heard()) p.heard_at = r.heard_at();
    p.with_conditions = r.with_conditions();
    p.last_at = r.last_at();
  }
  for (const state::Deadline& r : s.deadlines()) {
    live::Deadline d;
    d.kind = r.kind() == state::Deadline::ESCALATE ? live::Deadline::kEscalate : live::Deadline::kRule;
    RuleFromName(r.rule(), &d.rule);
    d.due = r.due();
    d.seq = r.seq();
    d.key = r.key();
    d.incident_id = r.incident_id();
    d.alert_id = r.alert_id();
    d.evidence.assign(r.evidence_event_ids().begin(), r.evidence_event_ids().end());
    d.suspect_id = r.suspect_id();
    d.subject = r.subject();
    v.deadlines.emplace(live::DeadlineKey{d.due, d.seq}, std::move(d));
  }
  for (const state::AlertRecord& r : s.alerts()) {
    const v1::Alert& m = r.alert();
    live::Alert& a = v.alerts.emplace_back();
    a.alert_id = m.alert_id();
    RuleFromName(m.rule(), &a.rule);
    a.key = r.key();
    a.incident = n.InternUnlessEmpty<live::IncidentTag>(m.incident_id());
    a.suspect = n.InternUnlessEmpty<live::SuspectTag>(m.suspect_id());
    a.force = n.InternUnlessEmpty<live::TextTag>(m.force());
    a.threshold = n.InternUnlessEmpty<live::TextTag>(m.threshold());
    a.rules_version = n.InternUnlessEmpty<live::TextTag>(m.rules_version());
    a.acknowledge_within = r.acknowledge_within();
    a.level = m.level();
    a.state = m.state();
    a.at = ToMicros(m.at());
    a.fired_at = ToMicros(m.fired_at());
    if (m.has_deadline()) a.deadline = ToMicros(m.deadline());
    if (m.has_acknowledge_by()) a.acknowledge_by = ToMicros(m.acknowledge_by());
    a.acknowledged_by = n.InternUnlessEmpty<live::TextTag>(m.acknowledged_by());
    a.rule_reason = r.reason();
    // The published reason is the note and the rule's sentence, or the note alone (a resolution's).
    if (absl::EndsWith(m.reason(), a.rule_reason)) {
      a.note = m.reason().substr(0, m.reason().size() - a.rule_reason.size());
    } else {
      a.note = m.reason();
      a.note_only = true;
    }
    a.revision = m.revision();
    for (int i = 0; i < m.evidence_event_ids_size(); ++i) {
      if (static_cast<size_t>(i) < live::kEvidenceEnds) {
        a.evidence.first.push_back(n.Intern<live::EventTag>(m.evidence_event_ids(i)));
      } else {
        a.evidence.last.push_back(n.Intern<live::EventTag>(m.evidence_event_ids(i)));
      }
    }
    a.evidence.total = m.evidence_total();
    a.evidence.seen_order.assign(r.evidence_seen().begin(), r.evidence_seen().end());
  }
  v.last_event_at = s.last_event_at();
  v.next_seq = s.next_seq();
  v.calls_total = s.calls_total();
  v.incidents_total = s.incidents_total();
  v.pruned_at = s.pruned_at();
  v.seen_count = std::max<uint64_t>(s.seen_count(), s.seen_event_ids_size());
  for (const state::EpisodeRecord& r : s.episodes()) {
    RuleId rule;
    if (!RuleFromName(r.rule(), &rule) || live::EpisodeIndex(rule) < 0) continue;
    v.episodes[live::EpisodeIndex(rule)] = {.active = true, .start = r.start(), .end = r.end()};
  }
  v.Reindex();
  return victim;
}

state::SuspectState EncodeSuspect(const live::Suspect& suspect) {
  state::SuspectState s;
  s.set_suspect_id(suspect.id);
  for (const live::Link& l : suspect.links) {
    v1::SuspectLink* r = s.add_links();
    r->set_suspect_id(suspect.id);
    r->set_victim_id(l.victim_id);
    r->set_incident_id(l.incident_id);
    r->set_event_id(l.event_id);
    r->set_at(l.at);
    r->set_force(l.force);
  }
  if (suspect.episode.active) {
    s.set_episode_active(true);
    s.set_episode_start(suspect.episode.start);
    s.set_episode_end(suspect.episode.end);
  }
  return s;
}

live::Suspect DecodeSuspect(const state::SuspectState& s) {
  live::Suspect suspect;
  suspect.id = s.suspect_id();
  for (const v1::SuspectLink& l : s.links()) {
    suspect.Insert({.victim_id = l.victim_id(),
                    .incident_id = l.incident_id(),
                    .event_id = l.event_id(),
                    .force = l.force(),
                    .at = l.at()});
  }
  if (s.episode_active()) suspect.episode = {.active = true, .start = s.episode_start(), .end = s.episode_end()};
  return suspect;
}

}  // namespace vigil
