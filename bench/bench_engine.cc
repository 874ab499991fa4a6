// vigil-bench-engine: events per second through the engine alone (validation,
// dedupe, rules, deadlines, suspect view), on one core, for a synthetic
// force-scale stream. Also runs a baseline in the same process — the same
// stream with every rule disabled, i.e. validation, dedupe and state upkeep
// only — and prints the ratio, so figures compare across machines.
//
//   vigil-bench-engine [--events N] [--victims N] [--seed N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "services/escalation/engine/processor.h"
#include "services/synthetic/synthetic_stream.h"

namespace {

struct Result {
  double seconds = 0;
  size_t alerts = 0;
  size_t victims = 0;
  std::map<std::string, size_t> fired;  // rule -> alerts raised
};

Result RunOnce(const vigil::RulesConfig& rules, const std::vector<vigil::v1::Event>& events) {
  vigil::Engine engine(rules);
  vigil::Processor processor(&engine);
  std::vector<vigil::v1::Alert> out;
  out.reserve(1024);
  Result r;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& e : events) {
    if (!processor.Apply(e, &out).ok()) {
      std::fprintf(stderr, "event rejected: %s\n", e.event_id().c_str());
      std::exit(1);
    }
    r.alerts += out.size();
    for (const auto& a : out) {
      if (a.revision() == 1) ++r.fired[a.rule()];
    }
    out.clear();
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.victims = processor.victim_count();
  return r;
}

// One victim, `calls` calls spread over a day, every rule on: the time to apply them all.
double FloodSeconds(int calls) {
  vigil::Engine engine(vigil::RulesConfig::Defaults());
  vigil::Processor processor(&engine);
  std::vector<vigil::v1::Event> events(calls);
  const vigil::Micros start = 1'700'000'000'000'000;
  for (int i = 0; i < calls; ++i) {
    vigil::v1::Event& e = events[i];
    e.set_event_id("flood-" + std::to_string(i));
    e.set_victim_id("V-flood");
    e.set_incident_id("I-flood");
    *e.mutable_occurred_at() = vigil::ToTimestamp(start + i * (vigil::kMicrosPerDay / calls));
    e.mutable_call_received()->set_domestic_abuse(true);
    e.mutable_call_received()->set_suspect_id("S-flood");
  }
  std::vector<vigil::v1::Alert> out;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& e : events) {
    if (!processor.Apply(e, &out).ok()) std::exit(1);
    out.clear();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

long PeakRssMb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  vigil::synthetic::StreamOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const unsigned long long value = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--events") options.events = value;
    else if (flag == "--victims") options.victims = value;
    else if (flag == "--seed") options.seed = value;
    else {
      std::fprintf(stderr, "usage: %s [--events N] [--victims N] [--seed N]\n", argv[0]);
      return 2;
    }
  }
  std::printf("generating %zu events over %zu victims (seed %llu)...\n", options.events, options.victims,
              static_cast<unsigned long long>(options.seed));
  const auto events = vigil::synthetic::SyntheticStream(options);

  vigil::RulesConfig none = vigil::RulesConfig::Defaults();
  for (int i = 0; i < vigil::kRuleCount; ++i) none.mutable_rule(static_cast<vigil::RuleId>(i)).enabled = false;
  const Result baseline = RunOnce(none, events);
  const Result full = RunOnce(vigil::RulesConfig::Defaults(), events);

  const double base_rate = events.size() / baseline.seconds;
  const double rate = events.size() / full.seconds;
  std::printf("baseline (no rules):  %10.0f events/s  (%.3f s)\n", base_rate, baseline.seconds);
  std::printf("engine (all rules):   %10.0f events/s  (%.3f s, %zu alert transitions, %zu victims)\n", rate,
              full.seconds, full.alerts, full.victims);
  std::printf("alerts raised by rule:");
  for (const auto& [rule, n] : full.fired) std::printf(" %s=%zu", rule.c_str(), n);
  std::printf("\n");
  std::printf("ratio engine/baseline: %.2f\n", rate / base_rate);
  std::printf("goal: >= 1000000 events/s on one core: %s\n", rate >= 1e6 ? "met" : "NOT met");
  std::printf("peak memory (max RSS, the stream and both runs): %ld MB\n", PeakRssMb());

  const double small = FloodSeconds(1000);
  const double large = FloodSeconds(4000);
  std::printf("flood, one victim's calls in a day: 1000 calls %.4f s, 4000 calls %.4f s, ratio %.2f "
              "(goal: at most 5)\n",
              small, large, large / small);
  return 0;
}
