// vigil-bench-api: GetTimeline (a 50-event timeline) and GetRiskProfile
// throughput and latency under concurrent clients, over gRPC on this machine.
//
// A store is filled with --victims victims of --events events each through the
// same partition pipeline vigild runs; the RiskService is served in process
// (plaintext) and --clients threads, each with its own connection, call it
// for --seconds per run. Every read writes its audit record: to Kafka when
// --brokers is given (as in production: the record is acknowledged before the
// data is returned), and, as the baseline in the same process, to memory.
// Run by bench/api_bench.sh, which starts a broker.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "services/escalation/api/api_server.h"
#include "services/escalation/api/risk_service.h"
#include "services/escalation/pipeline/partition.h"
#include "tests/testing/builders.h"

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

// Audit records kept in memory: the baseline without Kafka.
class MemoryLog : public Log {
 public:
  absl::StatusOr<std::vector<Landed>> Append(const std::string& topic, const std::vector<LogRecord>& records,
                                             absl::Time) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Landed> out;
    for (size_t i = 0; i < records.size(); ++i) out.push_back({topic, 0, count_++});
    return out;
  }

 private:
  std::mutex mu_;
  int64_t count_ = 0;
};

std::string VictimId(int v) { return absl::StrCat("V-BENCH-", v); }

// Each victim: `events` events over `events` hours, about their own suspect: calls, gradings, arrivals,
// assessments and markers.
void Fill(Store* store, const Engine& engine, const Topics& topics, int victims, int events) {
  constexpr int kPartitions = 4;
  std::vector<std::unique_ptr<PartitionPipeline>> pipelines;
  const AdmissionPolicy admission;
  for (int p = 0; p < kPartitions; ++p) {
    pipelines.push_back(*PartitionPipeline::Load(store, &engine, &topics, &admission, p));
  }
  for (int v = 0; v < victims; ++v) {
    auto& pipeline = *pipelines[v % kPartitions];
    for (int i = 0; i < events; ++i) {
      testing::Ev e(absl::StrCat("e", v, "-", i));
      e.Victim(VictimId(v)).Incident(absl::StrCat("I", v, "-", i / 10)).AtMicros(testing::T("00:00") + i * kMicrosPerHour);
      switch (i % 5) {
        case 0: e.Call(true, absl::StrCat("S", v)); break;
        case 1: e.Graded(v1::IncidentGraded::PRIORITY); break;
        case 2: e.UnitArrived(); break;
        case 3: e.Assessed(v1::RiskAssessed::MEDIUM, 8); break;
        default: e.Marker(absl::StrCat("S", v), v1::MarkerMatched::VIOLENCE); break;
      }
      const v1::Event& event = e;
      pipeline.Apply(pipeline.next_offset(), event.victim_id(), event.SerializeAsString());
    }
    if (v % 200 == 199) {
      for (auto& p : pipelines) (void)p->Commit();
    }
  }
  for (auto& p : pipelines) (void)p->Commit();
}

struct Result {
  double rps = 0;
  double p50 = 0, p99 = 0, p999 = 0;  // ms
  size_t calls = 0, errors = 0;
};

template <typename CallFn>
Result Load(int port, int clients, double seconds, int victims, CallFn call) {
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<size_t> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
      auto stub = v1::RiskService::NewStub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                                                    grpc::InsecureChannelCredentials(), args));
      for (int i = c; !stop; i += clients) {
        const auto start = Clock::now();
        if (!call(*stub, VictimId(i % victims)).ok()) ++errors;
        latencies[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.calls = all.size();
  r.errors = errors;
  r.rps = all.size() / seconds;
  auto at = [&](double q) { return all.empty() ? 0 : all[std::min(all.size() - 1, static_cast<size_t>(q * all.size()))]; };
  r.p50 = at(0.50);
  r.p99 = at(0.99);
  r.p999 = at(0.999);
  return r;
}

void Print(const std::string& what, const Result& r, const Result* baseline) {
  std::printf("%-44s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  (%zu calls, %zu errors)", what.c_str(),
              r.rps, r.p50, r.p99, r.p999, r.calls, r.errors);
  if (baseline) std::printf("  ratio to baseline %.2f", r.rps / baseline->rps);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  using namespace vigil;
  CLI::App app{"vigil-bench-api: GetTimeline and GetRiskProfile under concurrent clients"};
  std::string brokers;
  int victims = 2000, events = 50, clients = 8;
  double seconds = 5;
  app.add_option("--brokers", brokers, "Kafka for the audit records (as in production); none: memory only");
  app.add_option("--victims", victims, "")->capture_default_str();
  app.add_option("--events", events, "Events per victim (the timeline's length)")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent clients, one connection each")->capture_default_str();
  app.add_option("--seconds", seconds, "Per run")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto dir = std::filesystem::temp_directory_path() / absl::StrCat("vigil-bench-api-", ::getpid());
  std::filesystem::remove_all(dir);
  auto store = *Store::Open(dir.string());
  const Engine engine(RulesConfig::Defaults());
  const Topics topics;
  const auto fill_start = Clock::now();
  Fill(store.get(), engine, topics, victims, events);
  std::printf("store: %d victims x %d events, filled in %.1f s; %d clients, %.0f s a run, %u cores\n", victims, events,
              std::chrono::duration<double>(Clock::now() - fill_start).count(), clients, seconds,
              std::thread::hardware_concurrency());

  const StateReader reader(store.get());
  auto access = *AccessPolicy::Parse("roles: {s: [GetTimeline, GetRiskProfile]}\nclients: {bench: [s]}", "bench");
  MemoryLog memory;
  std::unique_ptr<Log> kafka;
  if (!brokers.empty()) {
    const KafkaProps props = {{"bootstrap.servers", brokers}};
    ApiOptions defaults;
    if (absl::Status s = EnsureTopics(props, {{defaults.audit_topic, 1, {}}}, 30000); !s.ok()) {
      std::fprintf(stderr, "vigil-bench-api: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    auto log = NewKafkaLog(props, {defaults.audit_topic});
    if (!log.ok()) {
      std::fprintf(stderr, "vigil-bench-api: %s\n", std::string(log.status().message()).c_str());
      return 1;
    }
    kafka = *std::move(log);
  }

  auto timeline = [&](v1::RiskService::Stub& stub, const std::string& victim) {
    grpc::ClientContext context;
    v1::GetTimelineRequest r;
    r.set_parent("victims/" + victim);
    r.set_purpose("benchmark");
    r.set_page_size(events);
    v1::GetTimelineResponse response;
    grpc::Status s = stub.GetTimeline(&context, r, &response);
    return s.ok() && response.events_size() != events ? grpc::Status(grpc::StatusCode::INTERNAL, "short") : s;
  };
  auto profile = [&](v1::RiskService::Stub& stub, const std::string& victim) {
    grpc::ClientContext context;
    v1::GetRiskProfileRequest r;
    r.set_name("victims/" + victim + "/riskProfile");
    r.set_purpose("benchmark");
    v1::RiskProfile response;
    return stub.GetRiskProfile(&context, r, &response);
  };

  // The store alone (no gRPC, no audit), one thread: what a call costs at the bottom.
  {
    const auto start = Clock::now();
    int n = 0;
    while (std::chrono::duration<double>(Clock::now() - start).count() < 1.0) {
      auto p = reader.FindVictimPartition(VictimId(n % victims));
      auto page = reader.Timeline(**p, VictimId(n % victims), INT64_MIN, INT64_MAX, "", events);
      ++n;
    }
    std::printf("%-44s %9.0f reads/s (one thread)\n", "store alone: find victim + 50-event timeline",
                n / std::chrono::duration<double>(Clock::now() - start).count());
  }

  for (auto [name, log] : {std::pair<const char*, Log*>{"memory", &memory}, {"kafka", kafka.get()}}) {
    if (log == nullptr) continue;
    ApiOptions options;
    options.insecure_identity = "bench";
    RiskServiceImpl service(&reader, log, nullptr, &access, &engine.rules(), options);
    ApiServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.insecure = true;
    auto server = StartApiServer(server_options, &service);
    if (!server.ok()) {
      std::fprintf(stderr, "vigil-bench-api: %s\n", std::string(server.status().message()).c_str());
      return 1;
    }
    static Result baseline_timeline, baseline_profile;
    const bool is_baseline = std::string(name) == "memory";
    Result t = Load(server->port, clients, seconds, victims, timeline);
    Print(absl::StrCat("GetTimeline (", events, " events), audit to ", name), t, is_baseline ? nullptr : &baseline_timeline);
    Result p = Load(server->port, clients, seconds, victims, profile);
    Print(absl::StrCat("GetRiskProfile, audit to ", name), p, is_baseline ? nullptr : &baseline_profile);
    if (is_baseline) {
      baseline_timeline = t;
      baseline_profile = p;
    }
    server->server->Shutdown();
  }
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
