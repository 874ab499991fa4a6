// repeat-calls (calls about the victim within the window) and
// potential-escalation (distinct domestic-abuse incidents within the window).
//
// Each is evaluated for every window that ends at a call at or after the new
// one and reaches back to it (a late call counts in the windows it belongs
// to); a window ending at a call holds every call in [its time - window, its
// time]. Counts come from the sorted calls by binary search; evidence is the
// calls counted (potential-escalation: each incident's latest), and only the
// calls after the alert's mark are looked at, unless a call arrived out of
// order since (then the whole window, once).
#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

using live::Call;
using live::IncidentRef;

class CallCountUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    if (!e.has_call_received()) return;
    live::Victim& v = step.victim();
    const live::EventRef event = v.names.Find<live::EventTag>(e.event_id());
    // The new call's place among the calls (they are in (at, event id) order).
    const size_t from = v.FirstCallAtOrAfter(t);
    size_t current = from;
    while (current < v.calls.size() && v.calls[current].event != event) ++current;
    for (RuleId rule : {RuleId::kRepeatCalls, RuleId::kPotentialEscalation}) {
      if (!step.Enabled(rule)) continue;
      for (size_t end : WindowEnds(step, rule, current)) Evaluate(step, rule, end);
    }
  }

 private:
  static bool Counts(RuleId rule, const Call& c) {
    return rule == RuleId::kRepeatCalls || c.domestic_abuse;
  }

  // The calls whose windows the call at `current` can complete: its own, and
  // the last call at each later instant within the window of it.
  static std::vector<size_t> WindowEnds(Step& step, RuleId rule, size_t current) {
    const live::Victim& v = step.victim();
    const Micros width = step.rules().rule(rule).window;
    std::vector<size_t> ends;
    if (Counts(rule, v.calls[current])) ends.push_back(current);
    const Micros at = v.calls[current].at;
    const size_t end = v.FirstCallAfter(at + width);
    size_t last = SIZE_MAX;
    for (size_t i = v.FirstCallAfter(at); i < end; ++i) {
      if (!Counts(rule, v.calls[i])) continue;
      if (last != SIZE_MAX && v.calls[last].at != v.calls[i].at) ends.push_back(last);
      last = i;
    }
    if (last != SIZE_MAX) ends.push_back(last);
    return ends;
  }

  static void Evaluate(Step& step, RuleId rule, size_t end_index) {
    live::Victim& v = step.victim();
    const RuleSettings& s = step.rules().rule(rule);
    const bool incidents = rule == RuleId::kPotentialEscalation;
    const Call end = v.calls[end_index];
    const size_t begin = v.FirstCallAtOrAfter(end.at - s.window);
    const size_t stop = v.FirstCallAfter(end.at);  // the window is [begin, stop)
    uint32_t distinct = 0;
    if (!incidents) {
      distinct = static_cast<uint32_t>(stop - begin);
    } else if (stop == v.calls.size()) {
      // The newest window: the incidents whose latest domestic-abuse call is in it.
      distinct = static_cast<uint32_t>(v.da_latest.end() -
                                       std::lower_bound(v.da_latest.begin(), v.da_latest.end(), end.at - s.window));
    } else {
      absl::flat_hash_set<IncidentRef> seen;
      for (size_t i = begin; i < stop; ++i) {
        if (v.calls[i].domestic_abuse) seen.insert(v.calls[i].incident);
      }
      distinct = static_cast<uint32_t>(seen.size());
    }
    if (distinct < s.count || begin == stop) return;

    const std::string& key = v.names[end.incident];
    // Only the calls after the open alert's mark can be new to its evidence, while no call came late since.
    size_t from = begin;
    if (const live::Alert* open = v.OpenAlert(rule, key); open != nullptr && open->mark &&
                                                           open->mark->late_calls == v.late_calls &&
                                                           open->mark->at <= end.at) {
      const live::WindowMark& m = *open->mark;
      const size_t after = static_cast<size_t>(
          std::upper_bound(v.calls.begin(), v.calls.end(), m,
                           [&](const live::WindowMark& mark, const Call& c) {
                             return mark.at != c.at ? mark.at < c.at : mark.event_id < v.names[c.event];
                           }) -
          v.calls.begin());
      from = std::max(from, after);
    }
    std::vector<std::string> evidence;
    if (!incidents) {
      for (size_t i = from; i < stop; ++i) evidence.push_back(v.names[v.calls[i].event]);
    } else {
      // Each incident's latest domestic-abuse call in the window, in time order.
      absl::flat_hash_set<IncidentRef> later;
      for (size_t i = stop; i-- > from;) {
        const Call& c = v.calls[i];
        if (c.domestic_abuse && later.insert(c.incident).second) evidence.push_back(v.names[c.event]);
      }
      std::reverse(evidence.begin(), evidence.end());
    }
    const Call& last = v.calls[stop - 1];
    Step::Raising r{.rule = rule, .key = key, .incident_id = key, .at = end.at};
    r.reason = incidents ? absl::StrCat("This victim has had ", distinct, " domestic-abuse incidents within ",
                                        FormatDuration(s.window),
                                        ": that meets the MARAC potential-escalation criterion, so consider a "
                                        "MARAC referral.")
                         : absl::StrCat(distinct, " calls about this victim within ", FormatDuration(s.window),
                                        ": join the calls up and review the risk now.");
    r.evidence = std::move(evidence);
    r.trigger = v.names[end.event];
    r.mark = live::WindowMark{last.at, v.names[last.event], v.late_calls};
    step.Raise(std::move(r));
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeCallCountUnit() { return std::make_unique<CallCountUnit>(); }

}  // namespace vigil
