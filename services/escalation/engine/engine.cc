#include "services/escalation/engine/engine.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/fingerprint.h"
#include "services/escalation/engine/codec.h"

namespace vigil {

using live::IncidentTag;
using v1::Event;

Engine::Engine(RulesConfig rules) : rules_(std::move(rules)), units_(MakeRuleUnits()) {
  rules_.Freeze();
  for (const auto& unit : units_) {
    for (RuleId rule : unit->DeadlineRules()) deadline_units_[static_cast<int>(rule)] = unit.get();
  }
}

uint64_t EventFingerprint(const Event& event) {
  // Events are small: serialise on the stack, and only fall back to the heap for a large one.
  char stack[1024];
  const size_t size = event.ByteSizeLong();
  std::string heap;
  char* buffer = stack;
  if (size > sizeof(stack)) {
    heap.resize(size);
    buffer = heap.data();
  }
  // An event has no map field, so its bytes are deterministic on protobuf's fast path (the same bytes as a
  // deterministic CodedOutputStream gives, which stored fingerprints were taken with).
  event.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(buffer));
  return ContentHash64(absl::string_view(buffer, size));
}

absl::Status Engine::Apply(const Event& event, live::Victim* victim, EngineOutput* out) const {
  live::Victim& v = *victim;
  // Dedupe with one probe of the names: the id is interned first (a name no record uses is never encoded,
  // so one left by a refused event changes nothing stored).
  bool new_name = false;
  const live::EventRef ref = v.names.Intern<live::EventTag>(event.event_id(), &new_name);
  const uint64_t fingerprint = EventFingerprint(event);
  if (const live::SeenEvent* seen = new_name ? nullptr : v.seen.find(ref)) {
    if (seen->fingerprint != fingerprint) {
      return absl::AlreadyExistsError(
          absl::StrCat("event_id ", event.event_id(), " was already applied with different content"));
    }
    out->duplicate = true;
    return absl::OkStatus();
  }
  if (event.has_escalation_acknowledged() && !v.alerts_by_id.contains(event.escalation_acknowledged().alert_id())) {
    return absl::NotFoundError(absl::StrCat("escalation_acknowledged.alert_id: this victim has no alert ",
                                            event.escalation_acknowledged().alert_id()));
  }
  const Micros t = ToMicros(event.occurred_at());
  if (v.id.empty()) v.id = event.victim_id();
  if (!event.force().empty()) v.force = event.force();
  v.AddSeen(ref, fingerprint, t);
  v.last_event_at = std::max(v.last_event_at, t);
  RecordFacts(event, t, v);
  Step step(rules_.For(event.force()), v, *out);
  if (event.has_escalation_acknowledged()) {
    const auto& ack = event.escalation_acknowledged();
    step.Acknowledge(ack.alert_id(), ack.acknowledged_by(), t, event.event_id());
    return absl::OkStatus();
  }
  for (const auto& unit : units_) unit->OnEvent(step, event, t);
  return absl::OkStatus();
}

void Engine::RecordFacts(const Event& e, Micros t, live::Victim& v) const {
  live::Names& n = v.names;
  auto incident = [&]() -> live::Incident& {
    live::Incident& i = v.IncidentFor(e.incident_id());
    i.last_at = std::max(i.last_at, t);
    return i;
  };
  auto arrest = [&](const std::string& id) -> live::Arrest& {
    live::Arrest& a = v.ArrestFor(id);
    a.last_at = std::max(a.last_at, t);
    if (!a.incident.valid() || n[a.incident].empty()) a.incident = n.Intern<IncidentTag>(e.incident_id());
    return a;
  };
  switch (e.payload_case()) {
    case Event::kCallReceived: {
      const auto& p = e.call_received();
      live::Incident& i = incident();
      const live::Call call{.at = t,
                            .event = n.Intern<live::EventTag>(e.event_id()),
                            .incident = i.id,
                            .suspect = p.suspect_id().empty() ? live::SuspectRef{}
                                                              : n.Intern<live::SuspectTag>(p.suspect_id()),
                            .domestic_abuse = p.domestic_abuse()};
      v.InsertCall(call);
      ++v.calls_total;
      if (!i.has_first_call || t < i.first_call_at) {
        i.has_first_call = true;
        i.first_call_at = t;
        i.first_call_event = call.event;
      }
      if (p.domestic_abuse()) {
        i.domestic_abuse = true;
        v.NoteDomesticAbuseCall(i, t, call.event);
      }
      if (p.abandoned() && p.channel() == v1::CallReceived::EMERGENCY) i.abandoned.emplace_back(t, call.event);
      if (p.domestic_abuse() && call.suspect.valid() &&
          std::find(i.suspects.begin(), i.suspects.end(), call.suspect) == i.suspects.end()) {
        i.suspects.push_back(call.suspect);
      }
      break;
    }
    case Event::kIncidentGraded: {
      live::Incident& i = incident();
      i.grade = e.incident_graded().grade();
      i.treat_as_urgent = e.incident_graded().treat_as_urgent();
      i.graded_at = t;
      i.graded_event = n.Intern<live::EventTag>(e.event_id());
      break;
    }
    case Event::kMarkerMatched:
      v.markers.push_back({.suspect = n.Intern<live::SuspectTag>(e.marker_matched().suspect_id()),
                           .marker = e.marker_matched().marker(),
                           .at = t,
                           .event = n.Intern<live::EventTag>(e.event_id()),
                           .incident = n.Intern<IncidentTag>(e.incident_id())});
      break;
    case Event::kUnitUnavailable: {
      live::Incident& i = incident();
      i.unit_unavailable = true;
      i.unit_unavailable_event = n.Intern<live::EventTag>(e.event_id());
      break;
    }
    case Event::kUnitAssigned: {
      live::Incident& i = incident();
      i.unit_unavailable = false;
      i.unit_assigned = true;
      break;
    }
    case Event::kUnitArrived: {
      live::Incident& i = incident();
      i.unit_unavailable = false;
      i.unit_arrived = true;
      break;
    }
    case Event::kArrestRequested: {
      const auto& p = e.arrest_requested();
      live::Arrest& a = v.ArrestFor(p.request_id());
      a.last_at = std::max(a.last_at, t);
      a.incident = n.Intern<IncidentTag>(e.incident_id());
      a.suspect = n.Intern<live::SuspectTag>(p.suspect_id());
      a.urgent = p.urgency() == v1::ArrestRequested::URGENT;
      a.requested = true;
      a.requested_at = t;
      a.request_event = n.Intern<live::EventTag>(e.event_id());
      break;
    }
    case Event::kArrestDeferred: {
      const auto& p = e.arrest_deferred();
      live::Arrest& a = arrest(p.request_id());
      if (!p.authorised_by().empty()) {
        a.authorised_until = ToMicros(p.defer_until());
        a.authorised_deferral_event = n.Intern<live::EventTag>(e.event_id());
      } else {
        a.unauthorised_deferral = true;
        a.unauthorised_deferral_event = n.Intern<live::EventTag>(e.event_id());
      }
      break;
    }
    case Event::kArrestAttempted: {
      live::Arrest& a = arrest(e.arrest_attempted().request_id());
      a.attempted = true;
      if (t >= a.last_attempt_at) {  // the latest attempt (a late one changes nothing here)
        a.last_attempt_at = t;
        a.last_attempt_not_found = e.arrest_attempted().outcome() == v1::ArrestAttempted::NOT_FOUND;
        a.last_attempt_event = n.Intern<live::EventTag>(e.event_id());
      }
      break;
    }
    case Event::kCallReturned: {
      // Answers every abandoned call on the incident before it (their clocks stop: rules/abandoned.cc).
      live::Incident& i = incident();
      i.returned.push_back(t);
      break;
    }
    case Event::kProtectionRecorded: {
      const auto& p = e.protection_recorded();
      live::Protection& r = v.ProtectionFor(false, p.protection_id());
      r.kind = p.kind();
      r.suspect = n.Intern<live::SuspectTag>(p.suspect_id());
      r.recorded_at = t;
      r.recorded_event = n.Intern<live::EventTag>(e.event_id());
      if (p.has_expires_at()) {
        r.until = ToMicros(p.expires_at());
      } else if (p.kind() == v1::ProtectionRecorded::DVPN || p.kind() == v1::ProtectionRecorded::DAPN) {
        r.until = t + kNoticeInForce;  // a notice without expires_at: 48 h (DA Act 2021)
      } else {
        r.until.reset();  // an order without expires_at: until ended
      }
      r.last_at = std::max(r.last_at, t);
      break;
    }
    case Event::kProtectionEnded: {
      live::Protection& r = v.ProtectionFor(false, e.protection_ended().protection_id());
      if (!r.ended_at || t < *r.ended_at) r.ended_at = t;
      r.last_at = std::max(r.last_at, t);
      break;
    }
    case Event::kCourtHearingRecorded: {
      live::Protection& r = v.ProtectionFor(false, e.court_hearing_recorded().protection_id());
      if (!r.heard_at || t < *r.heard_at) r.heard_at = t;
      r.last_at = std::max(r.last_at, t);
      break;
    }
    case Event::kBailRecorded: {
      const auto& p = e.bail_recorded();
      live::Protection& r = v.ProtectionFor(true, p.bail_id());
      r.suspect = n.Intern<live::SuspectTag>(p.suspect_id());
      r.recorded_at = t;
      r.recorded_event = n.Intern<live::EventTag>(e.event_id());
      r.until = ToMicros(p.bail_until());
      r.with_conditions = p.with_conditions();
      r.last_at = std::max(r.last_at, t);
      break;
    }
    case Event::kBailDecided: {
      const auto& p = e.bail_decided();
      live::Protection& r = v.ProtectionFor(true, p.bail_id());
      r.heard_at = t;
      if (p.outcome() == v1::BailDecided::EXTENDED) {
        r.until = ToMicros(p.bail_until());  // a new clock for the new date (rules/protection.cc)
      } else if (!r.ended_at || t < *r.ended_at) {
        r.ended_at = t;  // the bail, and its protection, end
      }
      r.last_at = std::max(r.last_at, t);
      break;
    }
    case Event::kRiskAssessed: {
      const auto& p = e.risk_assessed();
      live::Incident& i = incident();
      i.assessed = true;
      int effective = p.level();
      // DASH at the 'yes' threshold, or non-fatal strangulation disclosed, is HIGH whatever was recorded.
      if ((p.tool() == v1::RiskAssessed::DASH && p.yes_count() >= rules_.dash_high_yes_count()) ||
          p.strangulation()) {
        effective = v1::RiskAssessed::HIGH;
      }
      v.assessments.push_back({.event = n.Intern<live::EventTag>(e.event_id()),
                               .incident = i.id,
                               .tool = p.tool(),
                               .recorded_level = p.level(),
                               .effective_level = effective,
                               .yes_count = p.yes_count(),
                               .at = t});
      break;
    }
    case Event::kMaracReferred:
      v.marac_referrals.push_back(t);
      break;
    case Event::kDisclosureRequested: {
      live::Disclosure& d = v.DisclosureFor(e.disclosure_requested().application_id());
      d.last_at = std::max(d.last_at, t);
      d.requested_at = t;
      d.event = n.Intern<live::EventTag>(e.event_id());
      d.incident = n.Intern<IncidentTag>(e.incident_id());
      break;
    }
    case Event::kDisclosureDecided: {
      live::Disclosure& d = v.DisclosureFor(e.disclosure_decided().application_id());
      d.last_at = std::max(d.last_at, t);
      d.decided = true;
      break;
    }
    case Event::kSupervisorNotified:
      incident().supervisor_notified = true;
      break;
    case Event::kIncidentClosed: {
      live::Incident& i = incident();
      i.closed = true;
      i.closed_event = n.Intern<live::EventTag>(e.event_id());
      break;
    }
    default:
      break;  // recorded on the timeline; no fact for the rules
  }
}

void Engine::ApplyFinding(const v1::SuspectFinding& finding, live::Victim* victim, EngineOutput* out) const {
  Step step(rules_.For(finding.force()), *victim, *out);
  RaiseSerialFinding(step, finding);
}

void Engine::Fire(live::DeadlineKey key, live::Victim* victim, EngineOutput* out) const {
  live::Deadline d = victim->TakeDeadline(key);
  Step step(rules_.For(victim->force), *victim, *out);  // requeues the victim when it ends
  if (d.kind == live::Deadline::kEscalate) {
    step.Escalate(d);
    return;
  }
  if (!step.Enabled(d.rule)) return;  // disabled since (a rules change): raises nothing new
  const RuleUnit* unit = deadline_units_[static_cast<int>(d.rule)];
  std::string reason = unit != nullptr ? unit->DeadlineReason(step, d)
                                       : absl::StrCat("Deadline ", FormatRfc3339(d.due), " passed.");
  std::string trigger = d.evidence.empty() ? d.key : d.evidence.front();
  step.Raise({.rule = d.rule,
              .key = std::move(d.subject.empty() ? d.key : d.subject),
              .incident_id = std::move(d.incident_id),
              .at = d.due,
              .deadline = d.due,
              .reason = std::move(reason),
              .evidence = std::move(d.evidence),
              .trigger = std::move(trigger),
              .suspect_id = std::move(d.suspect_id)});
}

// --- the suspect view ---------------------------------------------------------

void Engine::ApplyLink(const v1::SuspectLink& link, live::Suspect* suspect,
                       std::vector<v1::SuspectFinding>* findings) const {
  const RuleSettings& s = rules_.For(link.force()).rule(RuleId::kSerialPerpetrator);
  if (!s.enabled || suspect->event_ids.contains(link.event_id())) return;
  if (suspect->id.empty()) suspect->id = link.suspect_id();
  suspect->Insert({.victim_id = link.victim_id(),
                   .incident_id = link.incident_id(),
                   .event_id = link.event_id(),
                   .force = link.force(),
                   .at = link.at()});
  const std::vector<live::Link>& links = suspect->links;
  const Micros t = link.at();
  // The window ending at this call: each victim's latest call in [t - window, t], in (at, event id) order.
  std::vector<std::pair<Micros, const std::string*>> items;  // all of them when there are few; else the ends
  uint32_t distinct = 0;
  if (links.back().at <= t) {
    // The newest call (calls applied in time order): each victim's latest call overall is its latest in the window.
    for (auto it = suspect->latest.lower_bound({t - s.window, "", ""}); it != suspect->latest.end(); ++it) {
      ++distinct;
      if (distinct <= live::kEvidenceEnds) items.emplace_back(std::get<0>(*it), &std::get<1>(*it));
    }
    if (distinct > live::kEvidenceEnds) {
      std::vector<std::pair<Micros, const std::string*>> tail;
      auto it = suspect->latest.end();
      for (uint32_t k = 0; k < std::min<uint32_t>(distinct - live::kEvidenceEnds, live::kEvidenceEnds); ++k) {
        --it;
        tail.emplace_back(std::get<0>(*it), &std::get<1>(*it));
      }
      items.insert(items.end(), tail.rbegin(), tail.rend());
    }
  } else {
    // A call that arrived late: the window is read from the links themselves.
    const auto by_time = [](const live::Link& l, Micros x) { return l.at < x; };
    const size_t begin = std::lower_bound(links.begin(), links.end(), t - s.window, by_time) - links.begin();
    const size_t stop =
        std::upper_bound(links.begin(), links.end(), t, [](Micros x, const live::Link& l) { return x < l.at; }) -
        links.begin();
    absl::flat_hash_map<absl::string_view, size_t> latest;
    for (size_t i = begin; i < stop; ++i) latest[links[i].victim_id] = i;
    std::vector<size_t> order;
    for (const auto& [victim, i] : latest) order.push_back(i);
    std::sort(order.begin(), order.end());
    distinct = static_cast<uint32_t>(order.size());
    for (size_t k = 0; k < order.size(); ++k) {
      if (k < live::kEvidenceEnds || k + live::kEvidenceEnds >= order.size()) {
        items.emplace_back(links[order[k]].at, &links[order[k]].event_id);
      }
    }
  }
  // The episode (DOMAIN.md): it lasts while calls about `count` victims fall in the window, until the count-th
  // most recent victim's latest call plus the window. A call within it raises or updates its victim's alert; a
  // call after it begins the next episode if its window holds the count.
  live::Episode& episode = suspect->episode;
  const bool in_episode = episode.active && t <= episode.end && t >= episode.start - s.window;
  if (!in_episode) {
    if (distinct < s.count) return;
    episode = {.active = true, .start = t, .end = t};
  }
  if (distinct >= s.count) {
    // The count-th most recent of the victims' latest calls in this window.
    const size_t kth = items.size() >= s.count ? items.size() - s.count : 0;
    const Micros kth_at = distinct <= 2 * live::kEvidenceEnds || s.count <= live::kEvidenceEnds
                              ? items[kth].first
                              : t - s.window;  // not listed: at least the window's start
    episode.end = std::max(episode.end, kth_at + s.window);
  }
  v1::SuspectFinding& f = findings->emplace_back();
  f.set_suspect_id(link.suspect_id());
  f.set_victim_id(link.victim_id());
  f.set_incident_id(link.incident_id());
  f.set_event_id(link.event_id());
  f.set_at(t);
  f.set_victim_count(distinct);
  f.set_force(link.force());
  for (const auto& [at, id] : items) f.add_evidence_event_ids(*id);
  f.set_evidence_total(distinct);
  f.set_episode_start(episode.start);
}

// --- bounded history ---------------------------------------------------------


void Engine::Prune(Micros stream_time, live::Victim* victim) const {
  live::Victim& v = *victim;
  if (stream_time == INT64_MIN) return;
  v.pruned_at = stream_time;
  const Micros horizon = stream_time - rules_.horizon();
  const Micros facts = horizon - rules_.call_window();
  if (v.earliest_at >= horizon) return;  // nothing is old enough to drop
  size_t dropped = 0;
  auto erase_if = [&](auto& records, auto drop) {
    const size_t before = records.size();
    records.erase(std::remove_if(records.begin(), records.end(), drop), records.end());
    dropped += before - records.size();
  };
  // Alerts at rest since before the horizon (resolved, acknowledged, or at the top level with nothing
  // pending): an acknowledgement of one now is refused, and the rule firing again raises a new one.
  erase_if(v.alerts, [&](const live::Alert& a) { return a.at < horizon && !v.escalations.contains(a.alert_id); });
  // What the remaining open alerts and pending deadlines still refer to.
  const live::Names& n = v.names;
  absl::flat_hash_set<std::string> referred;
  for (const live::Alert& a : v.alerts) {
    if (!a.open()) continue;
    referred.insert(a.key);
    referred.insert(n[a.incident]);
  }
  for (const auto& [key, d] : v.deadlines) {
    referred.insert(d.key);
    referred.insert(d.incident_id);
  }
  auto used = [&](auto ref) { return referred.contains(n[ref]); };
  dropped += v.seen.erase_if([&](const auto& entry) {
    if (entry.second.at >= horizon) return false;
    v.seen_dropped.push_back(n[entry.first]);
    return true;
  });
  const size_t old_calls = v.FirstCallAtOrAfter(facts);
  for (size_t i = 0; i < old_calls; ++i) v.calls_dropped.emplace_back(v.calls[i].at, n[v.calls[i].event]);
  v.calls.erase(v.calls.begin(), v.calls.begin() + old_calls);
  dropped += old_calls;
  erase_if(v.incidents, [&](const live::Incident& i) {
    return i.closed && i.last_at < facts && !used(i.id);
  });
  erase_if(v.arrests, [&](const live::Arrest& a) { return a.attempted && a.last_at < facts && !used(a.id); });
  erase_if(v.disclosures, [&](const live::Disclosure& d) { return d.decided && d.last_at < facts && !used(d.id); });
  // Protections no longer in force (ended or expired) and heard where a hearing is awaited.
  erase_if(v.protections, [&](const live::Protection& p) {
    const bool over = (p.ended_at && *p.ended_at < facts) || (p.until && *p.until < facts);
    return over && p.last_at < facts && !used(p.id);
  });
  if (!v.assessments.empty()) {
    const live::EventRef latest =
        std::max_element(v.assessments.begin(), v.assessments.end(),
                         [](const live::Assessment& a, const live::Assessment& b) { return a.at < b.at; })
            ->event;
    erase_if(v.assessments,
             [&](const live::Assessment& a) { return a.at < facts && a.event != latest && !used(a.event); });
  }
  if (v.marac_referrals.size() > 1) {
    const Micros last = *std::max_element(v.marac_referrals.begin(), v.marac_referrals.end());
    erase_if(v.marac_referrals, [&](Micros at) { return at < facts && at != last; });
  }
  if (dropped == 0) return;
  // A fresh copy through the canonical encoding: indexes rebuilt, and the names table holding only what
  // the records still name. The victim stays where it is (the timer queue points at it).
  live::Victim fresh = std::move(*DecodeVictim(EncodeVictim(v)));
  fresh.queue = v.queue;
  fresh.queued_due = v.queued_due;
  fresh.recency = v.recency;
  fresh.stored = v.stored;
  fresh.changed = v.changed;
  // What was added since the last delta, by the fresh copy's refs (invalid for what was dropped here).
  auto renamed = [&](live::EventRef ref) { return fresh.names.Find<live::EventTag>(n[ref]); };
  for (const auto& [at, ref] : v.calls_added) fresh.calls_added.emplace_back(at, renamed(ref));
  for (const live::EventRef ref : v.seen_added) fresh.seen_added.push_back(renamed(ref));
  fresh.calls_dropped = std::move(v.calls_dropped);
  fresh.seen_dropped = std::move(v.seen_dropped);
  v = std::move(fresh);
  v.Requeue();
}

void Engine::Prune(Micros stream_time, live::Suspect* suspect) const {
  if (stream_time == INT64_MIN) return;
  const Micros facts = stream_time - rules_.horizon() - rules_.rule(RuleId::kSerialPerpetrator).window;
  auto& links = suspect->links;
  const auto stop = std::lower_bound(links.begin(), links.end(), facts,
                                     [](const live::Link& l, Micros x) { return l.at < x; });
  if (stop == links.begin()) return;
  links.erase(links.begin(), stop);
  suspect->Reindex();
}

}  // namespace vigil
