// vigil-engine-diff: the new engine's alert output against the wave-1 engine's
// (tests/migration/legacy/), transition by transition, byte for byte, on the
// synthetic stream and on scenario files. Kept until the legacy engine is
// deleted (issue 11, item 5).
//
// The only differences allowed are the bounds of DOMAIN.md ("Evidence is
// bounded", "History is bounded, by stream time"):
//  - every alert carries evidence_total and rules_version (the legacy engine has neither);
//  - an alert with more than 20 evidence ids lists the first 10 and the last
//    10 (the legacy engine lists all of them, and their count is evidence_total);
//  - a late event's transition is stamped with the later of its occurred_at and
//    the alert's last transition (DOMAIN.md v2, "Exact readings");
//  - events older than stream time minus the horizon are evaluated by no rule
//    (not in these inputs: they span less than the 400-day horizon).
// Rules v2 adds rules and events the legacy engine does not know, and changes
// what some of its rules mean (DOMAIN.md v2): the synthetic stream here is the
// wave-1 vocabulary (StreamOptions.v2_events off); the transitions of rules that
// are new, or whose meaning v2 changed (repeat-calls and potential-escalation
// have episodes, and so has serial-perpetrator, per suspect; marker-on-call takes no closed incident and only calls naming
// the suspect; risk-assessment-overdue counts from the first domestic-abuse call
// and is inhibited by closed-without-assessment; unit-unavailable fires on the
// unit_unavailable only; marac-referral-overdue is the incident's, from its first
// HIGH assessment not yet followed by a referral), are counted and left out of the comparison on both sides
// (engine_test.cc and the scenarios check them against DOMAIN.md v2); an event
// of a new kind in a scenario (call_returned) only moves the legacy engine's
// clock to its time.
// Anything else is a difference; the program prints the first few and exits 1.
//
//   vigil-engine-diff [--events N] [--victims N] [--seed N] [--late FRACTION]
//     (--late: that fraction of events swapped with one up to 200 places later, to exercise late arrivals)
//   vigil-engine-diff --scenario PREFIX --rules FILE   (PREFIX.events.jsonl, PREFIX.until)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/jsonl.h"
#include "services/escalation/engine/processor.h"
#include "services/escalation/engine/validate.h"
#include "services/synthetic/synthetic_stream.h"
#include "tests/migration/legacy/processor.h"

namespace vigil {
namespace {

struct Tally {
  size_t transitions = 0;
  size_t identical = 0;
  size_t bounded = 0;  // differ only by the evidence bound
  size_t other = 0;
  size_t new_rules = 0;  // transitions of rules that are new or changed since (not compared)
  size_t late_stamped = 0;  // differ only by a late event's stamp
  std::string rules_version;  // what the new engine's alerts carry (the legacy engine's have none)
  absl::flat_hash_map<std::string, Micros> last_at;  // each alert's last transition time (the new engine's)
};

// Compared: the legacy engine's rules (the first 13) whose meaning v2 left as it was.
bool Compared(const v1::Alert& alert) {
  RuleId id;
  if (!RuleFromName(alert.rule(), &id) || static_cast<int>(id) >= 13) return false;
  return id != RuleId::kRepeatCalls && id != RuleId::kPotentialEscalation && id != RuleId::kMarkerOnCall &&
         id != RuleId::kRiskAssessmentOverdue && id != RuleId::kSerialPerpetrator && id != RuleId::kUnitUnavailable &&
         id != RuleId::kMaracReferralOverdue;
}

void DropNewRules(std::vector<v1::Alert>* out, Tally* tally) {
  const size_t before = out->size();
  out->erase(std::remove_if(out->begin(), out->end(), [](const v1::Alert& x) { return !Compared(x); }),
             out->end());
  tally->new_rules += before - out->size();
}

// Applies the event to both engines; the new engine's transitions of rules added since are counted and dropped.
std::pair<absl::Status, absl::Status> ApplyBoth(legacy::Processor& old_p, Processor& new_p, const v1::Event& e,
                                                std::vector<v1::Alert>* a, std::vector<v1::Alert>* b,
                                                Tally* tally) {
  absl::Status sa;
  if (e.has_call_returned()) {
    if (ValidateEvent(e).ok()) old_p.AdvanceTo(ToMicros(e.occurred_at()), a);
  } else {
    sa = old_p.Apply(e, a);
  }
  const size_t legacy = tally->new_rules;
  DropNewRules(a, tally);
  tally->new_rules = legacy;  // counted once, on the new engine's side
  absl::Status sb = new_p.Apply(e, b);
  DropNewRules(b, tally);
  return {sa, sb};
}

// The legacy transition as the new engine should give it: evidence bounded and counted.
v1::Alert Expected(v1::Alert legacy, const std::string& rules_version) {
  legacy.set_rules_version(rules_version);
  const int n = legacy.evidence_event_ids_size();
  legacy.set_evidence_total(static_cast<uint32_t>(n));
  if (n > 20) legacy.mutable_evidence_event_ids()->DeleteSubrange(10, n - 20);
  return legacy;
}

void Compare(const std::vector<v1::Alert>& old_out, const std::vector<v1::Alert>& new_out, const std::string& where,
             Tally* tally) {
  const size_t n = std::max(old_out.size(), new_out.size());
  for (size_t i = 0; i < n; ++i) {
    ++tally->transitions;
    if (i >= old_out.size() || i >= new_out.size()) {
      if (++tally->other <= 5) {
        std::printf("DIFF at %s: legacy gave %zu transitions, new %zu\n", where.c_str(), old_out.size(),
                    new_out.size());
      }
      continue;
    }
    v1::Alert expected = Expected(old_out[i], tally->rules_version);
    // DOMAIN.md v2: a late event's transition is stamped no earlier than the alert's last one.
    const Micros last = tally->last_at.contains(expected.alert_id()) ? tally->last_at[expected.alert_id()] : 0;
    bool late_stamp = false;
    if (ToMicros(expected.at()) < last && ToMicros(new_out[i].at()) == last) {
      *expected.mutable_at() = new_out[i].at();
      late_stamp = true;
    }
    tally->last_at[new_out[i].alert_id()] = ToMicros(new_out[i].at());
    const std::string want = DeterministicBytes(expected);
    const std::string got = DeterministicBytes(new_out[i]);
    if (want == got && late_stamp) {
      ++tally->late_stamped;
    } else if (want != got) {
      if (++tally->other <= 5) {
        std::printf("DIFF at %s, transition %zu:\n  legacy: %s\n  new:    %s\n", where.c_str(), i,
                    ToJsonLine(expected).c_str(), ToJsonLine(new_out[i]).c_str());
      }
    } else if (old_out[i].evidence_event_ids_size() > 20) {
      ++tally->bounded;
    } else {
      ++tally->identical;
    }
  }
}

struct Pair {
  explicit Pair(const RulesConfig& rules) : old_engine(rules), new_engine(rules), old_p(&old_engine), new_p(&new_engine) {}
  legacy::Engine old_engine;
  Engine new_engine;
  legacy::Processor old_p;
  Processor new_p;
};

int Report(const Tally& t, const char* what) {
  std::printf("%s: %zu transitions: %zu identical, %zu differ only by the evidence bound (over 20 ids), %zu other "
              "differences; %zu stamped with the alert's last transition (a late event); %zu transitions of rules new or "
              "changed in v2, not compared\n",
              what, t.transitions, t.identical, t.bounded, t.other, t.late_stamped, t.new_rules);
  return t.other == 0 ? 0 : 1;
}

int Scenario(const std::string& prefix, const std::string& rules_file) {
  absl::StatusOr<RulesConfig> rules = LoadRulesFile(rules_file);
  if (!rules.ok()) {
    std::fprintf(stderr, "%s\n", rules.status().ToString().c_str());
    return 2;
  }
  Pair pair(*rules);
  std::ifstream events(prefix + ".events.jsonl");
  std::ifstream until_file(prefix + ".until");
  if (!events || !until_file) {
    std::fprintf(stderr, "cannot read %s.events.jsonl and %s.until\n", prefix.c_str(), prefix.c_str());
    return 2;
  }
  Tally tally;
  tally.rules_version = rules->version();
  std::string line;
  for (size_t number = 1; std::getline(events, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    v1::Event e;
    if (!ParseJsonLine(line, &e).ok()) continue;
    std::vector<v1::Alert> a, b;
    const auto [sa, sb] = ApplyBoth(pair.old_p, pair.new_p, e, &a, &b, &tally);
    if (sa.code() != sb.code() && ++tally.other <= 5) {
      std::printf("DIFF at line %zu: legacy %s, new %s\n", number, sa.ToString().c_str(), sb.ToString().c_str());
    }
    Compare(a, b, "line " + std::to_string(number), &tally);
  }
  std::string until;
  std::getline(until_file, until);
  absl::StatusOr<Micros> t = ParseRfc3339(until);
  if (t.ok()) {
    std::vector<v1::Alert> a, b;
    pair.old_p.AdvanceThrough(*t, &a);
    const size_t legacy = tally.new_rules;
    DropNewRules(&a, &tally);
    tally.new_rules = legacy;
    pair.new_p.AdvanceThrough(*t, &b).IgnoreError();  // no loader: nothing to load, so no error
    DropNewRules(&b, &tally);
    Compare(a, b, "--until", &tally);
  }
  return Report(tally, prefix.substr(prefix.find_last_of('/') + 1).c_str());
}

int Synthetic(const synthetic::StreamOptions& options, double late) {
  std::printf("generating %zu events over %zu victims (seed %llu)...\n", options.events, options.victims,
              static_cast<unsigned long long>(options.seed));
  auto events = synthetic::SyntheticStream(options);
  if (late > 0) {
    // Some events arrive late: each such one changes places with one up to 200 positions after it, so calls
    // land inside windows already evaluated and deadlines start after they have passed.
    std::mt19937_64 random(options.seed);
    std::uniform_real_distribution<double> coin(0, 1);
    std::uniform_int_distribution<size_t> step(1, 200);
    size_t moved = 0;
    for (size_t i = 0; i + 200 < events.size(); ++i) {
      if (coin(random) >= late) continue;
      std::swap(events[i], events[i + step(random)]);
      ++moved;
    }
    std::printf("%zu events moved later in the stream\n", moved);
  }
  Pair pair(RulesConfig::Defaults());
  Tally tally;
  tally.rules_version = RulesConfig::Defaults().version();
  std::vector<v1::Alert> a, b;
  for (size_t i = 0; i < events.size(); ++i) {
    a.clear();
    b.clear();
    const auto [sa, sb] = ApplyBoth(pair.old_p, pair.new_p, events[i], &a, &b, &tally);
    if (sa.code() != sb.code() && ++tally.other <= 5) {
      std::printf("DIFF at event %zu: legacy %s, new %s\n", i, sa.ToString().c_str(), sb.ToString().c_str());
    }
    Compare(a, b, "event " + std::to_string(i), &tally);
  }
  return Report(tally, "synthetic stream");
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  vigil::synthetic::StreamOptions options;
  options.v2_events = false;  // the legacy engine speaks the wave-1 vocabulary only
  std::string scenario, rules;
  double late = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--events") options.events = std::strtoull(value.c_str(), nullptr, 10);
    else if (flag == "--victims") options.victims = std::strtoull(value.c_str(), nullptr, 10);
    else if (flag == "--seed") options.seed = std::strtoull(value.c_str(), nullptr, 10);
    else if (flag == "--scenario") scenario = value;
    else if (flag == "--rules") rules = value;
    else if (flag == "--late") late = std::strtod(value.c_str(), nullptr);
    else {
      std::fprintf(stderr,
                   "usage: %s [--events N] [--victims N] [--seed N] [--late FRACTION] | --scenario PREFIX --rules FILE\n",
                   argv[0]);
      return 2;
    }
  }
  if (!scenario.empty()) return vigil::Scenario(scenario, rules);
  return vigil::Synthetic(options, late);
}
