#include "services/escalation/engine/live.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/fingerprint.h"

namespace vigil::live {

bool Evidence::Add(Names& names, absl::string_view id) {
  const uint64_t fp = ContentHash64(id);
  if (seen_order.size() < kEvidenceScanned) {
    if (std::find(seen_order.begin(), seen_order.end(), fp) != seen_order.end()) return false;
  } else {
    if (seen.empty()) seen.insert(seen_order.begin(), seen_order.end());
    if (!seen.insert(fp).second) return false;
  }
  seen_order.push_back(fp);
  ++total;
  if (first.size() < kEvidenceEnds) {
    first.push_back(names.Intern<EventTag>(id));
  } else {
    if (last.size() == kEvidenceEnds) last.erase(last.begin());
    last.push_back(names.Intern<EventTag>(id));
  }
  return true;
}

bool TimerOrder::operator()(const TimerEntry& a, const TimerEntry& b) const {
  if (a.due != b.due) return a.due < b.due;
  return a.id != b.id && *a.id < *b.id;
}

Incident& Victim::IncidentFor(absl::string_view id) {
  const IncidentRef ref = names.Intern<IncidentTag>(id);
  auto [it, inserted] = incident_index.try_emplace(ref, static_cast<uint32_t>(incidents.size()));
  if (inserted) {
    incidents.emplace_back().id = ref;
    ++incidents_total;
  }
  return incidents[it->second];
}

Incident* Victim::FindIncident(IncidentRef id) {
  auto it = incident_index.find(id);
  return it == incident_index.end() ? nullptr : &incidents[it->second];
}

Arrest& Victim::ArrestFor(absl::string_view id) {
  const RequestRef ref = names.Intern<RequestTag>(id);
  auto [it, inserted] = arrest_index.try_emplace(ref, static_cast<uint32_t>(arrests.size()));
  if (inserted) arrests.emplace_back().id = ref;
  return arrests[it->second];
}

Disclosure& Victim::DisclosureFor(absl::string_view id) {
  const ApplicationRef ref = names.Intern<ApplicationTag>(id);
  auto [it, inserted] = disclosure_index.try_emplace(ref, static_cast<uint32_t>(disclosures.size()));
  if (inserted) disclosures.emplace_back().id = ref;
  return disclosures[it->second];
}

const Protection* Victim::FindProtection(bool bail, absl::string_view id) const {
  const ProtectionRef ref = names.Find<ProtectionTag>(id);
  if (!ref.valid()) return nullptr;
  for (const Protection& p : protections) {
    if (p.id == ref && p.is_bail == bail) return &p;
  }
  return nullptr;
}

Protection& Victim::ProtectionFor(bool bail, absl::string_view id) {
  if (Protection* p = FindProtection(bail, id)) return *p;
  Protection& p = protections.emplace_back();
  p.id = names.Intern<ProtectionTag>(id);
  p.is_bail = bail;
  return p;
}

Micros Victim::LastReferralAtOrBefore(Micros t) const {
  Micros last = INT64_MIN;
  for (Micros at : marac_referrals) {
    if (at <= t) last = std::max(last, at);
  }
  return last;
}

void Victim::AddSeen(EventRef ref, uint64_t fingerprint, Micros at) {
  seen.try_emplace(ref, SeenEvent{fingerprint, at, seen_count++});
  seen_added.push_back(ref);
  earliest_at = std::min(earliest_at, at);
}

Alert* Victim::OpenAlert(RuleId rule, absl::string_view key) {
  auto it = open_alerts.find(RuleKeyView{static_cast<int>(rule), key});
  return it == open_alerts.end() ? nullptr : &alerts[it->second];
}

Alert* Victim::AlertById(absl::string_view alert_id) {
  auto it = alerts_by_id.find(alert_id);
  return it == alerts_by_id.end() ? nullptr : &alerts[it->second];
}

Alert& Victim::AddAlert(Alert alert) {
  const uint32_t i = static_cast<uint32_t>(alerts.size());
  alerts.push_back(std::move(alert));
  Alert& a = alerts.back();
  alerts_by_id.try_emplace(a.alert_id, i);
  open_alerts[RuleKey{static_cast<int>(a.rule), a.key}] = i;
  return a;
}

void Victim::Closed(const Alert& alert) { open_alerts.erase(RuleKeyView{static_cast<int>(alert.rule), alert.key}); }

Deadline& Victim::AddDeadline(Deadline d) {
  d.seq = next_seq++;
  const DeadlineKey key{d.due, d.seq};
  if (d.kind == Deadline::kRule) {
    rule_deadlines[RuleKey{static_cast<int>(d.rule), d.key}] = key;
  } else {
    escalations[d.alert_id] = key;
  }
  return deadlines.emplace(key, std::move(d)).first->second;
}

void Victim::Unindex(const Deadline& d) {
  if (d.kind == Deadline::kRule) {
    rule_deadlines.erase(RuleKeyView{static_cast<int>(d.rule), d.key});
  } else {
    escalations.erase(d.alert_id);
  }
}

void Victim::RemoveDeadline(DeadlineKey key) {
  auto it = deadlines.find(key);
  if (it == deadlines.end()) return;
  Unindex(it->second);
  deadlines.erase(it);
}

void Victim::Requeue() {
  if (queue == nullptr) return;
  const std::optional<Micros> due =
      deadlines.empty() ? std::nullopt : std::optional<Micros>(deadlines.begin()->first.first);
  if (due == queued_due) return;
  Dequeue();
  if (due) queue->insert({*due, &id, this});
  queued_due = due;
}

void Victim::Dequeue() {
  if (queue != nullptr && queued_due) queue->erase({*queued_due, &id, this});
  queued_due.reset();
}

void Victim::RemoveRuleDeadline(RuleId rule, absl::string_view key) {
  auto it = rule_deadlines.find(RuleKeyView{static_cast<int>(rule), key});
  if (it != rule_deadlines.end()) RemoveDeadline(it->second);
}

void Victim::RemoveEscalation(absl::string_view alert_id) {
  auto it = escalations.find(alert_id);
  if (it != escalations.end()) RemoveDeadline(it->second);
}

Deadline Victim::TakeDeadline(DeadlineKey key) {
  auto it = deadlines.find(key);
  Unindex(it->second);
  Deadline d = std::move(it->second);
  deadlines.erase(it);
  return d;
}

bool Victim::CallBefore(const Call& a, const Call& b) const {
  if (a.at != b.at) return a.at < b.at;
  return names[a.event] < names[b.event];
}

size_t Victim::InsertCall(const Call& call) {
  calls_added.emplace_back(call.at, call.event);
  if (calls.empty() || CallBefore(calls.back(), call)) {
    calls.push_back(call);
    return calls.size() - 1;
  }
  auto it = std::upper_bound(calls.begin(), calls.end(), call,
                             [&](const Call& a, const Call& b) { return CallBefore(a, b); });
  const size_t index = static_cast<size_t>(it - calls.begin());
  calls.insert(it, call);
  return index;
}

size_t Victim::FirstCallAtOrAfter(Micros t) const {
  return std::lower_bound(calls.begin(), calls.end(), t, [](const Call& c, Micros x) { return c.at < x; }) -
         calls.begin();
}

size_t Victim::FirstCallAfter(Micros t) const {
  return std::upper_bound(calls.begin(), calls.end(), t, [](Micros x, const Call& c) { return x < c.at; }) -
         calls.begin();
}

void Victim::NoteDomesticAbuseCall(Incident& incident, Micros t, EventRef event) {
  ++incident.da_calls;
  if (t >= incident.first_da_call) return;
  if (incident.first_da_call != INT64_MAX) {
    auto it = std::find(da_first.begin(), da_first.end(), std::make_pair(incident.first_da_call,
                                                                          incident.first_da_call_event));
    if (it != da_first.end()) da_first.erase(it);
  }
  incident.first_da_call = t;
  incident.first_da_call_event = event;
  const std::pair<Micros, EventRef> item{t, event};
  da_first.insert(std::upper_bound(da_first.begin(), da_first.end(), item, [&](const auto& a, const auto& b) {
                    return a.first != b.first ? a.first < b.first : names[a.second] < names[b.second];
                  }),
                  item);
}

std::string Episode::Key() const { return absl::StrCat("episode ", FormatRfc3339(start)); }

int EpisodeIndex(RuleId rule) {
  switch (rule) {
    case RuleId::kRepeatCalls: return 0;
    case RuleId::kPotentialEscalation: return 1;
    default: return -1;
  }
}

void Victim::Reindex() {
  incident_index.clear();
  for (uint32_t i = 0; i < incidents.size(); ++i) incident_index[incidents[i].id] = i;
  arrest_index.clear();
  for (uint32_t i = 0; i < arrests.size(); ++i) arrest_index[arrests[i].id] = i;
  disclosure_index.clear();
  for (uint32_t i = 0; i < disclosures.size(); ++i) disclosure_index[disclosures[i].id] = i;
  open_alerts.clear();
  alerts_by_id.clear();
  for (uint32_t i = 0; i < alerts.size(); ++i) {
    alerts_by_id.try_emplace(alerts[i].alert_id, i);
    if (alerts[i].open()) open_alerts[RuleKey{static_cast<int>(alerts[i].rule), alerts[i].key}] = i;
  }
  // Each incident's first domestic-abuse call, in (time, event) order.
  da_first.clear();
  for (const Incident& i : incidents) {
    if (i.first_da_call != INT64_MAX) da_first.emplace_back(i.first_da_call, i.first_da_call_event);
  }
  std::sort(da_first.begin(), da_first.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : names[a.second] < names[b.second];
  });
  rule_deadlines.clear();
  escalations.clear();
  for (const auto& [key, d] : deadlines) {
    if (d.kind == Deadline::kRule) {
      rule_deadlines[RuleKey{static_cast<int>(d.rule), d.key}] = key;
    } else {
      escalations[d.alert_id] = key;
    }
  }
  // The earliest time a record holds: Prune has nothing to do before stream time passes it by the horizon.
  earliest_at = INT64_MAX;
  auto note = [&](Micros t) { earliest_at = std::min(earliest_at, t); };
  for (const auto& [id, e] : seen) note(e.at);
  if (!calls.empty()) note(calls.front().at);
  for (const Incident& i : incidents) note(i.last_at);
  for (const Arrest& a : arrests) note(a.last_at);
  for (const Disclosure& d : disclosures) note(d.last_at);
  for (const Assessment& a : assessments) note(a.at);
  for (Micros at : marac_referrals) note(at);
  for (const Protection& p : protections) note(p.last_at);
  for (const Alert& a : alerts) note(a.at);
}

}  // namespace vigil::live

namespace vigil::live {

namespace {
bool LinkBefore(const Link& a, const Link& b) { return a.at != b.at ? a.at < b.at : a.event_id < b.event_id; }
}  // namespace

size_t Suspect::Insert(Link link) {
  event_ids.insert(link.event_id);
  auto [it, inserted] = latest_by_victim.try_emplace(link.victim_id, link.at, link.event_id);
  if (!inserted) {
    const std::pair<Micros, std::string> next{link.at, link.event_id};
    if (it->second < next) {
      latest.erase({it->second.first, it->second.second, link.victim_id});
      it->second = next;
      latest.insert({link.at, link.event_id, link.victim_id});
    }
  } else {
    latest.insert({link.at, link.event_id, link.victim_id});
  }
  auto pos = std::upper_bound(links.begin(), links.end(), link, LinkBefore);
  const size_t index = static_cast<size_t>(pos - links.begin());
  links.insert(pos, std::move(link));
  return index;
}

void Suspect::Reindex() {
  std::vector<Link> all = std::move(links);
  links.clear();
  event_ids.clear();
  latest.clear();
  latest_by_victim.clear();
  for (Link& l : all) Insert(std::move(l));
}

}  // namespace vigil::live
