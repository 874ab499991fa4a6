// vigil-bench-engine: events per second through the engine alone (validation,
// dedupe, rules, deadlines, suspect view), on one core, for a synthetic
// force-scale stream. Also runs a baseline in the same process — the same
// stream with every rule disabled, i.e. validation, dedupe and state upkeep
// only — and prints the ratio, so figures compare across machines.
//
// Then the pipeline: vigild's loop without a broker. The stream vigil-bench-stream
// produces (--pipeline-events, 200,000 over a tenth as many victims), split into
// four partitions, each record admitted, applied and stored (RocksDB in a temporary
// directory) in the batches vigild makes of a backlog in every partition (5,000
// each), its outbox marked published after each commit, as vigild's committer
// lets it. It prints events/s and the CPU an event costs the loop's thread and the
// whole process (RocksDB's flushes and compactions too): the cost that bounds
// vigild's throughput wherever the broker leaves it the cores. Then the same with
// the partitions on two threads side by side (vigild's --apply-threads 2), and the
// ratio of the two.
//
//   vigil-bench-engine [--events N] [--victims N] [--seed N] [--pipeline-events N] [--pipeline-turn N]
//                      [--pipeline-max-held N]   (vigild's --batch-max shared by four, and --max-held-victims)
#include <malloc.h>
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <filesystem>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/store.h"
#include "services/escalation/engine/processor.h"
#include "services/escalation/pipeline/partition.h"
#include "services/escalation/vigild/workers.h"
#include "services/synthetic/synthetic_stream.h"

namespace {

double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec / 1e9;
}

struct Result {
  double seconds = 0;
  double cpu_seconds = 0;  // this thread's CPU time: the wall time less any time it waited for a core
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
  const double cpu0 = ThreadCpuSeconds();
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
    processor.Recycle(&out);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.cpu_seconds = ThreadCpuSeconds() - cpu0;
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

// Bytes malloc has handed out and not had back (mapped blocks included).
size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

double ProcessCpuSeconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// vigild's loop over `events`, without a broker (see the top of this file), its partitions applied and stored
// on `threads` threads side by side as vigild's --apply-threads does (1: in turn on this thread). Prints the
// figures; returns events/s. Exits on a store error.
double RunPipeline(size_t events, int threads, size_t turn, size_t max_held) {
  constexpr int kPartitions = 4;
  const auto stream = vigil::synthetic::SyntheticStream({.events = events, .victims = events / 10, .seed = 9});
  std::vector<std::vector<std::pair<std::string, std::string>>> records(kPartitions);  // key, value
  std::vector<std::vector<int64_t>> stamps(kPartitions);
  for (const auto& e : stream) {
    const int p = static_cast<int>(std::hash<std::string>()(e.victim_id()) % kPartitions);
    records[p].emplace_back(e.victim_id(), e.SerializeAsString());
    stamps[p].push_back(vigil::ToMicros(e.occurred_at()) / 1000);
  }
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("vigil-bench-pipeline-", getpid())).string();
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "pipeline: %s\n", s.ToString().c_str());
    std::filesystem::remove_all(dir);
    std::exit(1);
  };
  double rate = 0;
  const size_t heap0 = HeapInUse();
  {
    absl::StatusOr<std::unique_ptr<vigil::Store>> store = vigil::Store::Open(dir);
    if (!store.ok()) fail(store.status());
    const vigil::Engine engine(vigil::RulesConfig::Defaults());
    const vigil::Topics topics;
    const vigil::AdmissionPolicy admission;
    std::vector<std::unique_ptr<vigil::PartitionPipeline>> parts;
    for (int p = 0; p < kPartitions; ++p) {
      auto part = vigil::PartitionPipeline::Load(store->get(), &engine, &topics, &admission, p);
      if (!part.ok()) fail(part.status());
      (*part)->KeepCommittedOutbox();
      (*part)->set_max_held_victims(max_held);
      parts.push_back(*std::move(part));
    }
    vigil::Workers workers(threads);
    std::vector<absl::Status> committed(kPartitions);
    size_t longest = 0, largest_commit = 0;
    for (const auto& r : records) longest = std::max(longest, r.size());
    const double thread0 = ThreadCpuSeconds(), process0 = ProcessCpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    for (size_t from = 0; from < longest; from += turn) {
      workers.Run(kPartitions, [&](size_t p) {
        const size_t to = std::min(from + turn, records[p].size());
        if (from >= to) return;
        for (size_t i = from; i < to; ++i) {
          vigil::ConsumedRecord r;
          r.offset = static_cast<int64_t>(i);
          r.key = records[p][i].first;
          r.value = records[p][i].second;
          r.timestamp_ms = stamps[p][i];
          parts[p]->Apply(r);
        }
        committed[p] = parts[p]->Commit();
        (void)parts[p]->TakeCommittedOutbox();
        if (committed[p].ok()) committed[p] = parts[p]->MarkPublished(parts[p]->outbox_seq());
      });
      for (const absl::Status& s : committed) {
        if (!s.ok()) fail(s);
      }
      size_t batch = 0;  // the four partitions' RocksDB batches of this round, held at once
      for (const auto& part : parts) batch += part->last_commit_bytes();
      largest_commit = std::max(largest_commit, batch);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double thread = ThreadCpuSeconds() - thread0, process = ProcessCpuSeconds() - process0;
    uint64_t outbox = 0;
    for (const auto& part : parts) outbox += part->outbox_seq();
    rate = stream.size() / seconds;
    if (threads == 1) {
      std::printf("pipeline (admit, apply, store in RocksDB; no broker): %10.0f events/s  (%zu events, %llu outbox "
                  "records)\n",
                  rate, stream.size(), static_cast<unsigned long long>(outbox));
      std::printf("pipeline batches: turns of %zu records a partition; the largest round's RocksDB batches %.1f MB\n",
                  turn, largest_commit / 1e6);
      std::printf("pipeline CPU an event: %.1f us the loop's thread, %.1f us the process (RocksDB's background "
                  "threads too)\n",
                  thread * 1e6 / stream.size(), process * 1e6 / stream.size());
      size_t held = 0, awaiting = 0, appeared = 0;
      for (const auto& part : parts) {
        held += part->processor().victim_count();
        awaiting += part->processor().victims_awaiting_deadline();
      }
      for (const auto& r : records) {
        absl::flat_hash_set<absl::string_view> keys;
        for (const auto& [key, value] : r) keys.insert(key);
        appeared += keys.size();
      }
      std::printf("pipeline at the end: %zu victims held of %zu, %zu awaiting a deadline; heap in use by the store "
                  "and the pipelines %.1f MB\n",
                  held, appeared, awaiting, (static_cast<double>(HeapInUse()) - static_cast<double>(heap0)) / 1e6);
    } else {
      std::printf("pipeline, partitions on %d threads side by side:  %10.0f events/s  (%llu outbox records; %.1f us "
                  "CPU an event, the process)\n",
                  threads, rate, static_cast<unsigned long long>(outbox), process * 1e6 / stream.size());
    }
  }
  std::filesystem::remove_all(dir);
  return rate;
}

long PeakRssMb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

}  // namespace

int main(int argc, char** argv) {
  vigil::synthetic::StreamOptions options;
  size_t pipeline_events = 200000;
  size_t pipeline_turn = 5000;  // vigild's --batch-max (20,000) shared by four partitions with a backlog
  size_t pipeline_max_held = vigil::kDefaultMaxHeldVictims;  // vigild's --max-held-victims
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    uint64_t value = 0;
    // Each flag takes a whole number: a flag without one, or an unknown flag, is refused.
    const bool number = i + 1 < argc && absl::SimpleAtoi(argv[i + 1], &value);
    if (number && flag == "--events") options.events = value;
    else if (number && flag == "--victims") options.victims = value;
    else if (number && flag == "--seed") options.seed = value;
    else if (number && flag == "--pipeline-events") pipeline_events = value;
    else if (number && value > 0 && flag == "--pipeline-turn") pipeline_turn = value;
    else if (number && flag == "--pipeline-max-held") pipeline_max_held = value;
    else {
      std::fprintf(stderr, "usage: %s [--events N] [--victims N] [--seed N] [--pipeline-events N] "
                   "[--pipeline-turn N>0] [--pipeline-max-held N]\n", argv[0]);
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
  // On a shared machine the wall time includes the time this thread waited for a core; its CPU time does not.
  std::printf("CPU an event on the engine's thread: baseline %.3f us, all rules %.3f us (%.0f events a CPU second)\n",
              baseline.cpu_seconds * 1e6 / events.size(), full.cpu_seconds * 1e6 / events.size(),
              events.size() / full.cpu_seconds);
  std::printf("goal: >= 1000000 events/s on one core: %s\n", rate >= 1e6 ? "met" : "NOT met");
  std::printf("peak memory (max RSS, the stream and both runs): %ld MB\n", PeakRssMb());

  const double small = FloodSeconds(1000);
  const double large = FloodSeconds(4000);
  std::printf("flood, one victim's calls in a day: 1000 calls %.4f s, 4000 calls %.4f s, ratio %.2f "
              "(goal: at most 5)\n",
              small, large, large / small);
  if (pipeline_events > 0) {
    const double one = RunPipeline(pipeline_events, 1, pipeline_turn, pipeline_max_held);
    const double two = RunPipeline(pipeline_events, 2, pipeline_turn, pipeline_max_held);
    std::printf("ratio pipeline side by side / one thread: %.2f (on the 2 cores, with nothing else running)\n",
                two / one);
  }
  return 0;
}
