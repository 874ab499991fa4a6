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
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
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
  void AppendThen(const std::string& topic, std::vector<LogRecord> records, absl::Time, Done done) override {
    std::vector<Landed> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < records.size(); ++i) out.push_back({topic, 0, count_++});
    }
    done(std::move(out));
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

// Starts one call for a victim and calls `done` with its status when it completes.
using Done = std::function<void(grpc::Status)>;
using CallFn = std::function<void(v1::RiskService::Stub&, const std::string& victim, Done done)>;

// Starts one call with `request` through `start` (a stub's async method) and calls `done` with what `check`
// makes of its status and response. The call's state lives until its callback has run.
template <typename Response, typename Request, typename Start, typename Check>
void Call(Start start, Request request, Check check, Done done) {
  struct State {
    grpc::ClientContext context;
    Request request;
    Response response;
  };
  auto c = std::make_shared<State>();
  c->request = std::move(request);
  start(&c->context, &c->request, &c->response,
        [c, check, done = std::move(done)](grpc::Status s) { done(check(s, c->response)); });
}

// `clients` concurrent callers, each calling again as soon as its call returns, over `connections`
// connections, on gRPC's callback API (no thread per caller), for `seconds`.
Result Load(int port, int clients, int connections, double seconds, int victims, const CallFn& call) {
  std::vector<std::unique_ptr<v1::RiskService::Stub>> stubs;
  for (int c = 0; c < connections; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
    stubs.push_back(v1::RiskService::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<size_t> errors{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable idle;
  int active = clients;
  // Each caller's calls follow one another: its latencies need no lock.
  std::function<void(int, int)> issue = [&](int caller, int i) {
    if (stop) {
      std::lock_guard<std::mutex> lock(mu);
      if (--active == 0) idle.notify_all();
      return;
    }
    const auto start = Clock::now();
    call(*stubs[caller % connections], VictimId(i % victims), [&, caller, i, start](grpc::Status s) {
      if (!s.ok()) ++errors;
      latencies[caller].push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      issue(caller, i + clients);
    });
  };
  for (int c = 0; c < clients; ++c) issue(c, c);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  {
    std::unique_lock<std::mutex> lock(mu);
    idle.wait(lock, [&] { return active == 0; });
  }
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
  int victims = 2000, events = 50, clients = 8, connections = 8;
  double seconds = 5, warmup = 3;
  app.add_option("--brokers", brokers, "Kafka for the audit records (as in production); none: memory only");
  app.add_option("--victims", victims, "")->capture_default_str();
  app.add_option("--events", events, "Events per victim (the timeline's length)")->capture_default_str();
  app.add_option("--clients", clients, "Concurrent callers, each calling again when its call returns")
      ->capture_default_str();
  app.add_option("--connections", connections, "Connections the callers share")->capture_default_str();
  app.add_option("--seconds", seconds, "Per run")->capture_default_str();
  app.add_option("--warmup", warmup, "Unmeasured load on the broker before its runs")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto dir = std::filesystem::temp_directory_path() / absl::StrCat("vigil-bench-api-", ::getpid());
  std::filesystem::remove_all(dir);
  auto store = *Store::Open(dir.string());
  const Engine engine(RulesConfig::Defaults());
  const Topics topics;
  const auto fill_start = Clock::now();
  Fill(store.get(), engine, topics, victims, events);
  std::printf("store: %d victims x %d events, filled in %.1f s; %d callers on %d connections, %.0f s a run, %u cores\n",
              victims, events, std::chrono::duration<double>(Clock::now() - fill_start).count(), clients, connections,
              seconds, std::thread::hardware_concurrency());

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

  auto timeline = [&](v1::RiskService::Stub& stub, const std::string& victim, Done done) {
    v1::GetTimelineRequest r;
    r.set_parent("victims/" + victim);
    r.set_purpose("benchmark");
    r.set_page_size(events);
    Call<v1::GetTimelineResponse>(
        [&stub](auto... args) { stub.async()->GetTimeline(args...); }, std::move(r),
        [events](const grpc::Status& s, const v1::GetTimelineResponse& response) {
          return s.ok() && response.events_size() != events ? grpc::Status(grpc::StatusCode::INTERNAL, "short") : s;
        },
        std::move(done));
  };
  auto profile = [&](v1::RiskService::Stub& stub, const std::string& victim, Done done) {
    v1::GetRiskProfileRequest r;
    r.set_name("victims/" + victim + "/riskProfile");
    r.set_purpose("benchmark");
    Call<v1::RiskProfile>([&stub](auto... args) { stub.async()->GetRiskProfile(args...); }, std::move(r),
                          [](const grpc::Status& s, const v1::RiskProfile&) { return s; }, std::move(done));
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

  // gRPC alone: a call refused for its malformed name before any read or audit, through the same server.
  auto refused = [&](v1::RiskService::Stub& stub, const std::string&, Done done) {
    v1::GetTimelineRequest r;
    r.set_parent("not-a-victim");
    Call<v1::GetTimelineResponse>(
        [&stub](auto... args) { stub.async()->GetTimeline(args...); }, std::move(r),
        [](const grpc::Status& s, const v1::GetTimelineResponse&) {
          return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? grpc::Status::OK : s;
        },
        std::move(done));
  };
  bool floor_done = false;
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
    if (!floor_done) {
      Print("gRPC alone: GetTimeline refused unread", Load(server->port, clients, connections, seconds, victims, refused), nullptr);
      floor_done = true;
    }
    static Result baseline_timeline, baseline_profile;
    const bool is_baseline = std::string(name) == "memory";
    if (!is_baseline) {
      // The broker's JVM compiles its hot paths under the first load: not measured.
      (void)Load(server->port, clients, connections, warmup, victims, timeline);
    }
    Result t = Load(server->port, clients, connections, seconds, victims, timeline);
    Print(absl::StrCat("GetTimeline (", events, " events), audit to ", name), t, is_baseline ? nullptr : &baseline_timeline);
    Result p = Load(server->port, clients, connections, seconds, victims, profile);
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
