#include "services/synthetic/synthetic_stream.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace vigil::synthetic {
std::vector<v1::Event> SyntheticStream(const StreamOptions& options) {
  std::mt19937_64 rng(options.seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto minutes = [&](int lo, int hi) {
    return (lo + static_cast<Micros>(rng() % static_cast<uint64_t>(hi - lo + 1))) * kMicrosPerMinute;
  };
  std::vector<uint32_t> incidents_of(options.victims, 0);
  std::vector<v1::Event> out;
  out.reserve(options.events + options.events / 50 + 16);
  const Micros start = *ParseRfc3339("2024-01-01T00:00:00Z");
  const Micros span = std::max(1, options.days) * kMicrosPerDay;
  uint64_t next_id = 0;
  // Whole incidents, each unfolding over minutes to hours as real ones do,
  // starting at random times over about 60 days; then the stream is put in time order.
  while (out.size() < options.events) {
    const size_t v = rng() % options.victims;
    const uint32_t incident = incidents_of[v]++;
    // Most suspects are one victim's; a few are linked to several.
    const std::string suspect =
        chance(0.02) ? absl::StrCat("S-shared-", rng() % (options.victims / 100 + 1)) : absl::StrCat("S", v);
    const std::string incident_id = absl::StrCat("V", v, "-I", incident);
    const std::string request = absl::StrCat(incident_id, "-R");
    Micros clock = start + static_cast<Micros>(rng() % static_cast<uint64_t>(span));
    auto next = [&](Micros gap) -> v1::Event& {
      clock += gap;
      v1::Event& e = out.emplace_back();
      e.set_event_id(absl::StrCat("e", next_id++));
      e.set_victim_id(absl::StrCat("V", v));
      e.set_incident_id(incident_id);
      e.set_force(v % 3 == 0 ? "lancashire" : (v % 3 == 1 ? "wiltshire" : "cambridgeshire"));
      e.set_source("synthetic");
      *e.mutable_occurred_at() = ToTimestamp(clock);
      return e;
    };
    const bool domestic = chance(0.7);
    // Some incidents begin with a 999 call abandoned before it was answered; most are returned within minutes,
    // some only after the 10-minute deadline, a few never (abandoned-call).
    if (options.v2_events && chance(0.04)) {
      auto* c = next(0).mutable_call_received();
      c->set_caller_role(v1::CallReceived::VICTIM);
      c->set_channel(v1::CallReceived::EMERGENCY);
      c->set_domestic_abuse(domestic);
      c->set_suspect_id(suspect);
      c->set_abandoned(true);
      if (chance(0.9)) next(minutes(1, 15)).mutable_call_returned();
    }
    {
      auto* c = next(0).mutable_call_received();
      c->set_caller_role(chance(0.8) ? v1::CallReceived::VICTIM : v1::CallReceived::THIRD_PARTY);
      c->set_channel(v1::CallReceived::EMERGENCY);
      c->set_domestic_abuse(domestic);
      c->set_suspect_id(suspect);
    }
    if (chance(0.05)) {
      auto* m = next(minutes(0, 2)).mutable_marker_matched();
      m->set_suspect_id(suspect);
      m->set_marker(chance(0.5) ? v1::MarkerMatched::VIOLENCE : v1::MarkerMatched::DOMESTIC_ABUSE_PERPETRATOR);
    }
    const double r = std::uniform_real_distribution<double>(0, 1)(rng);
    const auto grade = r < 0.4 ? v1::IncidentGraded::IMMEDIATE
                       : r < 0.8 ? v1::IncidentGraded::PRIORITY : v1::IncidentGraded::SCHEDULED;
    {
      auto* g = next(minutes(1, 4)).mutable_incident_graded();
      g->set_grade(grade);
      g->set_treat_as_urgent(chance(0.1));
    }
    if (chance(0.05)) next(minutes(1, 3)).mutable_unit_unavailable()->set_reason("all units committed");
    next(minutes(1, 5)).mutable_unit_assigned()->set_unit_id("U1");
    if (chance(0.25)) {
      auto* c = next(minutes(1, 20)).mutable_call_received();
      c->set_domestic_abuse(domestic);
      c->set_caller_role(v1::CallReceived::VICTIM);
      c->set_suspect_id(suspect);
    }
    // Most arrivals are within the grade's deadline; some are late.
    next(grade == v1::IncidentGraded::IMMEDIATE ? minutes(2, 14) : minutes(5, 70)).mutable_unit_arrived()->set_unit_id("U1");
    if (chance(0.15)) {
      auto* a = next(minutes(5, 30)).mutable_arrest_requested();
      a->set_request_id(request);
      a->set_suspect_id(suspect);
      const bool urgent = chance(0.6);
      a->set_urgency(urgent ? v1::ArrestRequested::URGENT : v1::ArrestRequested::ROUTINE);
      if (chance(0.1)) {
        auto* d = next(minutes(5, 20)).mutable_arrest_deferred();
        d->set_request_id(request);
        d->set_reason("no units");
      }
      if (chance(0.9)) {
        auto* t = next(minutes(10, 65)).mutable_arrest_attempted();
        t->set_request_id(request);
        const bool arrested = chance(0.7);
        t->set_outcome(arrested ? v1::ArrestAttempted::ARRESTED : v1::ArrestAttempted::NOT_FOUND);
        // Some arrested suspects are released on pre-charge bail, mostly with conditions (bail-expiring, and
        // protection-breach-call when the victim calls about them again). Most are decided in time, some late,
        // a few extended.
        if (options.v2_events && arrested && chance(0.3)) {
          const std::string bail = absl::StrCat(incident_id, "-B");
          const Micros saved = clock;
          auto* b = next(minutes(60, 600)).mutable_bail_recorded();
          b->set_bail_id(bail);
          b->set_suspect_id(suspect);
          const Micros until = clock + minutes(28 * 24 * 60, 90 * 24 * 60);
          *b->mutable_bail_until() = ToTimestamp(until);
          b->set_with_conditions(chance(0.8));
          if (chance(0.85)) {
            clock = until - minutes(0, 14 * 24 * 60);  // a decision up to a fortnight before the end
            auto* d = next(0).mutable_bail_decided();
            d->set_bail_id(bail);
            const double o = std::uniform_real_distribution<double>(0, 1)(rng);
            d->set_outcome(o < 0.2 ? v1::BailDecided::EXTENDED
                           : o < 0.6 ? v1::BailDecided::CHARGED
                           : o < 0.8 ? v1::BailDecided::NO_FURTHER_ACTION
                                     : v1::BailDecided::RELEASED_UNDER_INVESTIGATION);
            if (d->outcome() == v1::BailDecided::EXTENDED) {
              *d->mutable_bail_until() = ToTimestamp(until + minutes(30 * 24 * 60, 60 * 24 * 60));
            }
          }
          clock = saved;
        }
      }
    } else {
      next(minutes(5, 30)).mutable_crime_recorded()->set_crime_ref(absl::StrCat(incident_id, "-C"));
    }
    // Protections: a few domestic-abuse incidents end with a notice (DVPN, heard within 48 h in most cases) or
    // an order against the suspect, in force for months (protection-breach-call on the victim's later calls).
    if (options.v2_events && domestic && chance(0.03)) {
      const Micros saved = clock;
      const bool notice = chance(0.5);
      auto* p = next(minutes(30, 300)).mutable_protection_recorded();
      p->set_protection_id(absl::StrCat(incident_id, "-P"));
      p->set_suspect_id(suspect);
      p->set_kind(notice ? v1::ProtectionRecorded::DVPN : v1::ProtectionRecorded::NON_MOLESTATION_ORDER);
      if (!notice) *p->mutable_expires_at() = ToTimestamp(clock + minutes(90 * 24 * 60, 365 * 24 * 60));
      if (notice && chance(0.85)) {
        auto* h = next(minutes(12 * 60, 60 * 60)).mutable_court_hearing_recorded();
        h->set_protection_id(absl::StrCat(incident_id, "-P"));
        h->set_outcome(chance(0.8) ? v1::CourtHearingRecorded::GRANTED : v1::CourtHearingRecorded::ADJOURNED);
      }
      clock = saved;
    }
    if (domestic && chance(0.92)) {
      auto* a = next(minutes(10, 600)).mutable_risk_assessed();
      a->set_tool(v1::RiskAssessed::DASH);
      const uint32_t yes = static_cast<uint32_t>(rng() % 20);
      a->set_yes_count(yes);
      a->set_level(yes >= 14 ? v1::RiskAssessed::HIGH : yes >= 8 ? v1::RiskAssessed::MEDIUM : v1::RiskAssessed::STANDARD);
      if (yes >= 14 && chance(0.9)) next(minutes(60, 3000)).mutable_marac_referred();
    } else {
      next(minutes(10, 120)).mutable_safeguarding_recorded()->set_action("advice given");
    }
    if (chance(0.03)) {
      auto* d = next(minutes(60, 600)).mutable_disclosure_requested();
      d->set_application_id(absl::StrCat(incident_id, "-D"));
      d->set_route(v1::DisclosureRequested::RIGHT_TO_ASK);
      if (chance(0.95)) {
        next(minutes(60, 40 * 24 * 60)).mutable_disclosure_decided()->set_application_id(absl::StrCat(incident_id, "-D"));
      }
    }
    next(minutes(5, 60)).mutable_incident_closed();
  }
  out.resize(options.events);
  std::stable_sort(out.begin(), out.end(), [](const v1::Event& a, const v1::Event& b) {
    return ToMicros(a.occurred_at()) < ToMicros(b.occurred_at());
  });
  // Redeliveries: a copy of an event shortly after the original.
  std::vector<v1::Event> with_duplicates;
  with_duplicates.reserve(out.size() + out.size() / 50);
  for (size_t i = 0; i < out.size() && with_duplicates.size() < options.events; ++i) {
    with_duplicates.push_back(out[i]);
    if (chance(options.duplicate_rate) && with_duplicates.size() < options.events) with_duplicates.push_back(out[i]);
  }
  return with_duplicates;
}

Micros MoveToNow(std::vector<v1::Event>* events) {
  if (events->empty()) return 0;
  Micros last = INT64_MIN;
  for (const auto& e : *events) last = std::max(last, ToMicros(e.occurred_at()));
  const Micros now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const Micros delta = (now - last) / kMicrosPerSecond * kMicrosPerSecond;
  for (auto& e : *events) {
    *e.mutable_occurred_at() = ToTimestamp(ToMicros(e.occurred_at()) + delta);
    if (e.has_arrest_deferred() && e.arrest_deferred().has_defer_until()) {
      auto* d = e.mutable_arrest_deferred();
      *d->mutable_defer_until() = ToTimestamp(ToMicros(d->defer_until()) + delta);
    }
  }
  return delta;
}

}  // namespace vigil::synthetic
