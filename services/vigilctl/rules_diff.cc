// vigilctl rules diff: replays a history under the rules in force and under
// proposed ones, and says what would change, per rule and per 8-hour shift —
// the question an inspector asks before changing a threshold.
#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "common/jsonl.h"
#include "services/escalation/engine/processor.h"
#include "services/vigilctl/commands.h"

namespace vigil::ctl {
namespace {

inline constexpr Micros kShift = 8 * kMicrosPerHour;

// One replay's alerts: each alert's transitions (without the version they name), by rule.
struct Outcome {
  std::map<std::string, std::map<std::string, std::vector<std::string>>> by_rule;  // rule -> alert id -> transitions
  std::vector<Micros> raised;  // when each alert was raised
  size_t skipped = 0;          // lines that could not be applied (vigild would dead-letter them)
};

Outcome Run(const RulesConfig& rules, const std::vector<v1::Event>& events, std::optional<Micros> until) {
  const Engine engine(rules);
  Processor processor(&engine);
  Outcome o;
  std::vector<v1::Alert> alerts;
  auto take = [&] {
    for (v1::Alert& a : alerts) {
      if (a.revision() == 1) o.raised.push_back(ToMicros(a.fired_at()));
      const std::string id = a.alert_id();
      const std::string rule = a.rule();
      a.clear_rules_version();
      o.by_rule[rule][id].push_back(DeterministicBytes(a));
    }
    alerts.clear();
  };
  for (const v1::Event& e : events) {
    if (e.has_rules_changed()) continue;  // the two configurations compared stay in force throughout
    if (!processor.Apply(e, &alerts).ok()) ++o.skipped;
    take();
  }
  if (until) processor.AdvanceThrough(*until, &alerts).IgnoreError();  // no loader: nothing to load, so no error
  take();
  return o;
}

// Alerts raised per 8-hour shift (00-08, 08-16, 16-24 UTC) over [from, to]: median, p95 and max.
struct Load {
  size_t median = 0, p95 = 0, max = 0, shifts = 0;
};
Load ShiftLoad(const std::vector<Micros>& raised, Micros from, Micros to) {
  Load l;
  if (from > to) return l;
  const Micros first = from - ((from % kShift) + kShift) % kShift;
  std::vector<size_t> counts(static_cast<size_t>((to - first) / kShift) + 1, 0);
  for (Micros t : raised) {
    if (t >= first && t <= to) ++counts[static_cast<size_t>((t - first) / kShift)];
  }
  std::sort(counts.begin(), counts.end());
  l.shifts = counts.size();
  l.median = counts[(counts.size() - 1) / 2];
  l.p95 = counts[std::min(counts.size() - 1, (counts.size() * 95 + 99) / 100 - 1)];
  l.max = counts.back();
  return l;
}

absl::StatusOr<RulesConfig> LoadOrDefaults(const std::string& path) {
  return path.empty() ? RulesConfig::Defaults() : LoadRulesFile(path);
}

}  // namespace

int RulesDiff(const RulesDiffOptions& options, std::istream& in, std::ostream& out, std::ostream& err) {
  absl::StatusOr<RulesConfig> base = LoadOrDefaults(options.base);
  if (!base.ok()) {
    err << "vigilctl rules diff: --base: " << base.status().message() << "\n";
    return kExitBadInput;
  }
  absl::StatusOr<RulesConfig> proposed = LoadRulesFile(options.rules);
  if (!proposed.ok()) {
    err << "vigilctl rules diff: --rules: " << proposed.status().message() << "\n";
    return kExitBadInput;
  }
  std::optional<Micros> until;
  if (!ParseUntil(options.until, "rules diff", &until, err)) return kExitBadInput;
  std::ifstream file;
  std::istream* source = OpenEvents(options.events, "rules diff", in, file, err);
  if (source == nullptr) return kExitFailure;
  std::vector<v1::Event> events;
  Micros from = INT64_MAX, to = INT64_MIN;
  std::string line;
  for (size_t number = 1; std::getline(*source, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    v1::Event e;
    if (absl::Status s = ParseJsonLine(line, &e); !s.ok()) {
      err << "vigilctl rules diff: line " << number << ": " << s.message() << "\n";
      return kExitBadInput;
    }
    if (e.has_occurred_at() && !e.has_rules_changed()) {
      from = std::min(from, ToMicros(e.occurred_at()));
      to = std::max(to, ToMicros(e.occurred_at()));
    }
    events.push_back(std::move(e));
  }
  if (until) to = std::max(to, *until);

  const Outcome a = Run(*base, events, until);
  const Outcome b = Run(*proposed, events, until);
  out << absl::StrFormat("%zu events, %s to %s; base rules version %s, proposed version %s\n", events.size(),
                         from == INT64_MAX ? "-" : FormatRfc3339(from), to == INT64_MIN ? "-" : FormatRfc3339(to),
                         base->version(), proposed->version());
  if (a.skipped > 0 || b.skipped > 0) {
    out << absl::StrFormat("events not applied (as vigild would dead-letter them): base %zu, proposed %zu\n",
                           a.skipped, b.skipped);
  }
  out << absl::StrFormat("%-28s %8s %8s %8s %8s %8s\n", "rule", "base", "proposed", "added", "removed", "changed");
  std::vector<std::string> rules;
  for (int i = 0; i < kRuleCount; ++i) rules.emplace_back(RuleName(static_cast<RuleId>(i)));
  size_t total_added = 0, total_removed = 0, total_changed = 0;
  for (const std::string& rule : rules) {
    static const std::map<std::string, std::vector<std::string>> kNone;
    const auto ia = a.by_rule.find(rule), ib = b.by_rule.find(rule);
    const auto& alerts_a = ia == a.by_rule.end() ? kNone : ia->second;
    const auto& alerts_b = ib == b.by_rule.end() ? kNone : ib->second;
    size_t added = 0, removed = 0, changed = 0;
    for (const auto& [id, transitions] : alerts_b) {
      auto it = alerts_a.find(id);
      if (it == alerts_a.end()) {
        ++added;
      } else if (it->second != transitions) {
        ++changed;
      }
    }
    for (const auto& [id, transitions] : alerts_a) removed += alerts_b.contains(id) ? 0 : 1;
    total_added += added;
    total_removed += removed;
    total_changed += changed;
    out << absl::StrFormat("%-28s %8zu %8zu %8zu %8zu %8zu\n", rule, alerts_a.size(), alerts_b.size(), added,
                           removed, changed);
  }
  out << absl::StrFormat("%-28s %8s %8s %8zu %8zu %8zu\n", "all rules", "", "", total_added, total_removed,
                         total_changed);
  const Load la = ShiftLoad(a.raised, from, to), lb = ShiftLoad(b.raised, from, to);
  out << absl::StrFormat("alerts raised per 8-hour shift (%zu shifts): base median %zu, p95 %zu, max %zu; "
                         "proposed median %zu, p95 %zu, max %zu\n",
                         la.shifts, la.median, la.p95, la.max, lb.median, lb.p95, lb.max);
  return kExitOk;
}

}  // namespace vigil::ctl
