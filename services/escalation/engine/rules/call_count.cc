// repeat-calls (calls about the victim within the window) and
// potential-escalation (distinct domestic-abuse incidents within the window,
// with no MARAC referral since the earliest of them): count rules with
// episodes (DOMAIN.md, "Alert lifecycle, exactly").
//
// Items: repeat-calls counts every call; potential-escalation counts each
// incident once, at its first domestic-abuse call, and only incidents whose
// first domestic-abuse call came after the victim's last referral. A window
// ending at time u holds the items in [u - window, u].
//
// An episode begins when a window ending at an item holds the count, and lasts
// until the count-th most recent item plus the window. An item within it
// updates the episode's alert (re-opening it if acknowledged); an item after it
// is judged afresh, and may begin the next episode with an alert of its own.
// The end of an episode changes nothing by itself. A MARAC referral ends the
// potential-escalation episode (marac.cc resolves its alert).
#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "services/escalation/engine/rule_unit.h"

namespace vigil {
namespace {

// A rule's items in time order, from `floor` on: the index range [begin, size) of calls or of da_first.
class Items {
 public:
  // repeat-calls: every call.
  static Items Calls(const live::Victim& v) {
    return Items(v.calls.size(), 0, [&v](size_t i) { return v.calls[i].at; },
                 [&v](size_t i) { return v.calls[i].event; });
  }
  // potential-escalation: incidents by their first domestic-abuse call, those at or before `after` left out.
  static Items FirstDomesticAbuseCalls(const live::Victim& v, Micros after) {
    const size_t begin = static_cast<size_t>(
        std::upper_bound(v.da_first.begin(), v.da_first.end(), after,
                         [](Micros x, const std::pair<Micros, live::EventRef>& item) { return x < item.first; }) -
        v.da_first.begin());
    return Items(v.da_first.size(), begin, [&v](size_t i) { return v.da_first[i].first; },
                 [&v](size_t i) { return v.da_first[i].second; });
  }

  // Indexes of the first item at or after t, and of the first after t.
  size_t AtOrAfter(Micros t) const { return Search(t, false); }
  size_t After(Micros t) const { return Search(t, true); }
  size_t size() const { return size_; }
  size_t begin() const { return begin_; }
  Micros at(size_t i) const { return at_(i); }
  live::EventRef event(size_t i) const { return event_(i); }

 private:
  Items(size_t size, size_t begin, std::function<Micros(size_t)> at, std::function<live::EventRef(size_t)> event)
      : size_(size), begin_(begin), at_(std::move(at)), event_(std::move(event)) {}
  size_t Search(Micros t, bool strictly_after) const {
    size_t lo = begin_, hi = size_;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (strictly_after ? at_(mid) <= t : at_(mid) < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
  size_t size_;
  size_t begin_;
  std::function<Micros(size_t)> at_;
  std::function<live::EventRef(size_t)> event_;
};

class CallCountUnit : public RuleUnit {
 public:
  void OnEvent(Step& step, const v1::Event& e, Micros t) const override {
    if (!e.has_call_received()) return;
    live::Victim& v = step.victim();
    const live::EventRef event = v.names.Find<live::EventTag>(e.event_id());
    if (step.Enabled(RuleId::kRepeatCalls)) {
      Evaluate(step, RuleId::kRepeatCalls, Items::Calls(v), t, event, e.incident_id());
    }
    if (!step.Enabled(RuleId::kPotentialEscalation) || !e.call_received().domestic_abuse()) return;
    const live::Incident* incident = v.FindIncident(e.incident_id());
    // Only an incident's first domestic-abuse call makes it an item: later calls on it do not count.
    if (incident == nullptr || incident->da_calls != 1) return;
    const Micros referral = v.LastReferralAtOrBefore(t);  // only incidents after it count
    if (incident->first_da_call <= referral) return;
    Evaluate(step, RuleId::kPotentialEscalation, Items::FirstDomesticAbuseCalls(v, referral), t, event,
             e.incident_id());
  }

 private:
  static std::string Reason(RuleId rule, size_t n, Micros window) {
    if (rule == RuleId::kPotentialEscalation) {
      return absl::StrCat("This victim has had ", n, " domestic-abuse incidents within ", FormatDuration(window),
                          ": that meets the MARAC potential-escalation criterion, so consider a MARAC referral.");
    }
    return absl::StrCat(n, " calls about this victim within ", FormatDuration(window),
                        ": join the calls up and review the risk now.");
  }

  // A new item at t (event `item`) of the rule.
  static void Evaluate(Step& step, RuleId rule, const Items& items, Micros t, live::EventRef item,
                       const std::string& incident_id) {
    live::Victim& v = step.victim();
    const RuleSettings& s = step.rules().rule(rule);
    live::Episode& episode = v.episodes[live::EpisodeIndex(rule)];
    auto in_episode = [&](Micros u) { return episode.active && u <= episode.end && u >= episode.start - s.window; };
    // The end an episode has once it holds the items up to u: the count-th most recent of them plus the window
    // (INT64_MIN when there are fewer).
    auto end_at = [&](Micros u) {
      const size_t last = items.After(u);
      return last - items.begin() < s.count ? INT64_MIN : items.at(last - s.count) + s.window;
    };
    if (in_episode(t)) {
      episode.end = std::max(episode.end, end_at(t));
      const size_t n = items.After(t) - items.AtOrAfter(t - s.window);
      step.Raise({.rule = rule,
                  .key = episode.Key(),
                  .incident_id = incident_id,
                  .at = t,
                  .reason = Reason(rule, n, s.window),
                  .evidence = {v.names[item]},
                  .trigger = v.names[item],
                  .reopen = true});
      return;
    }
    // The windows the item can complete: its own, and (arriving late) that of each later item within the
    // window of it; the first that holds the count begins an episode.
    for (size_t end = items.After(t) - 1, stop = items.After(t + s.window); end < stop; ++end) {
      const Micros u = items.at(end);
      if (end + 1 < stop && items.at(end + 1) == u) continue;  // the last item at an instant ends its window
      if (in_episode(u)) return;
      const size_t begin = items.AtOrAfter(u - s.window);
      if (end + 1 - begin < s.count) continue;
      episode = {.active = true, .start = u};
      episode.end = end_at(u);
      std::vector<std::string> evidence;
      for (size_t i = begin; i <= end; ++i) evidence.push_back(v.names[items.event(i)]);
      step.Raise({.rule = rule,
                  .key = episode.Key(),
                  .incident_id = incident_id,
                  .at = u,
                  .reason = Reason(rule, end + 1 - begin, s.window),
                  .evidence = std::move(evidence),
                  .trigger = v.names[items.event(end)],
                  .reopen = true});
      return;
    }
  }
};

}  // namespace

std::unique_ptr<RuleUnit> MakeCallCountUnit() { return std::make_unique<CallCountUnit>(); }

}  // namespace vigil
