// vigil-bench-stream: throughput and latency through broker, vigild and the
// alert topic, with exactly-once on (vigild always publishes in transactions).
// Run by bench/stream_bench.sh, which starts the broker and vigild.
//
//  Before phase 0, --warmup seconds of the broker alone (unmeasured): the stream produced in transactions to a
//  scratch topic and read back read_committed, so that the broker's JIT has compiled the produce, fetch and
//  transaction paths the phases use (a broker in service compiled them long ago; a cold one spends most of a
//  core compiling through phase 1).
//  0. Kafka alone: the synthetic stream (--events, moved to the present as a
//     live force's events are) produced to a topic of its own and read back by
//     a read_committed consumer at the same time, on the same cores, while
//     vigild idles: events per second from the first produce to the last record
//     read. What any consumer of these records could do at best.
//  1. Through vigild: the same stream produced to the events topic, then one
//     probe per partition whose alert is raised at once; events per second is
//     the stream's size over the time from the first produce to the last
//     probe's alert visible to a read_committed consumer (every partition has
//     then been applied, committed and published). The transitions counted are
//     those on the alert topic when the last probe arrived (read to its end),
//     printed beside what the same rules give replaying each partition (split as
//     the producer split it) in event time, which must be equal, and the whole
//     stream as one.
//  2. Latency, once vigild is idle again (nothing new on the alert topic for 2 s) and --settle seconds more:
//     --rate events per second for --seconds, of which every 50th
//     closes a domestic-abuse incident with no assessment (an alert at once);
//     latency is from that event's produce to its alert being visible to a
//     read_committed consumer. Baseline: produce-to-consume of the same
//     events on the events topic itself.
//  With --cpu NAME=PID (stream_bench.sh names vigild and the broker): the CPU each process and the whole machine
//  used over phases 0 and 1, in cores and in microseconds per event, and over the settle before phase 2 (idle).
//  The two cores are shared, so whether a ratio is CPU-bound, and whose CPU bounds it, is read here, not guessed.
//  3. The same again with a flood (--flood, 3,000): that many calls about one
//     victim, spread over the last hour, produced at once as the run starts.
//     The other victims' latency, beside phase 2's: one victim must not hold
//     up the others.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/kafka.h"
#include "common/status_macros.h"
#include "librdkafka/rdkafka.h"
#include "common/time_util.h"
#include "services/escalation/engine/processor.h"
#include "services/synthetic/synthetic_stream.h"
#include "vigil/v1/alert.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using vigil::KafkaProps;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::unique_ptr<RdKafka::Producer> MakeProducer(const KafkaProps& base) {
  KafkaProps props = base;
  props.emplace_back("enable.idempotence", "true");
  props.emplace_back("linger.ms", "5");
  std::string err;
  auto conf = vigil::MakeKafkaConf(props);
  return std::unique_ptr<RdKafka::Producer>(RdKafka::Producer::create(conf->get(), err));
}

// A consumer assigned to every partition of `topic` at its end.
std::unique_ptr<RdKafka::KafkaConsumer> MakeConsumer(const KafkaProps& base, const std::string& topic,
                                                     bool committed, int64_t start) {
  KafkaProps props = base;
  props.emplace_back("group.id", "vigil-bench");
  props.emplace_back("enable.auto.commit", "false");
  props.emplace_back("isolation.level", committed ? "read_committed" : "read_uncommitted");
  props.emplace_back("fetch.wait.max.ms", "10");
  props.emplace_back("enable.partition.eof", "true");
  std::string err;
  auto conf = vigil::MakeKafkaConf(props);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf->get(), err));
  const int n = *vigil::PartitionCount(base, topic, 10000);
  std::vector<RdKafka::TopicPartition*> tps;
  for (int p = 0; p < n; ++p) tps.push_back(RdKafka::TopicPartition::create(topic, p, start));
  c->assign(tps);
  for (auto* tp : tps) delete tp;
  return c;
}

void Produce(RdKafka::Producer& producer, const std::string& topic, const vigil::v1::Event& e,
             int32_t partition = RdKafka::Topic::PARTITION_UA) {
  const std::string bytes = e.SerializeAsString();
  while (producer.produce(topic, partition, RdKafka::Producer::RK_MSG_COPY,
                          const_cast<char*>(bytes.data()), bytes.size(), e.victim_id().data(), e.victim_id().size(),
                          0, static_cast<RdKafka::Headers*>(nullptr), nullptr) == RdKafka::ERR__QUEUE_FULL) {
    producer.poll(10);
  }
  producer.poll(0);
}

vigil::v1::Event Call(const std::string& id, const std::string& victim, vigil::Micros at, bool domestic) {
  vigil::v1::Event e;
  e.set_event_id(id);
  e.set_victim_id(victim);
  e.set_incident_id(victim + "-I");
  e.set_source("bench");
  *e.mutable_occurred_at() = vigil::ToTimestamp(at);
  e.mutable_call_received()->set_domestic_abuse(domestic);
  e.mutable_call_received()->set_caller_role(vigil::v1::CallReceived::VICTIM);
  return e;
}

vigil::v1::Event Close(const std::string& id, const std::string& victim, vigil::Micros at) {
  vigil::v1::Event e = Call(id, victim, at, false);
  e.mutable_incident_closed();
  return e;
}

vigil::Micros NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// CPU time in clock ticks: a process's (user and system, all its threads) from /proc/PID/stat, or the machine's
// busy time (all but idle and iowait, every core) from /proc/stat. nullopt when it cannot be read.
std::optional<uint64_t> ProcessTicks(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const size_t end = line.rfind(')');  // the command name may hold spaces
  if (end == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(end + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15 (utime, stime), counted from 1
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return fields ? std::optional<uint64_t>(utime + stime) : std::nullopt;
}

std::optional<uint64_t> MachineBusyTicks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") {
    return std::nullopt;
  }
  return user + nice + system + irq + softirq + steal;
}

// The CPU that the named processes and the machine used between Start and Print.
class CpuUse {
 public:
  struct Process {
    std::string name;
    int pid;
  };
  explicit CpuUse(std::vector<Process> processes) : processes_(std::move(processes)) {}
  void Start() {
    start_ = Clock::now();
    machine_ = MachineBusyTicks().value_or(0);
    ticks_.clear();
    for (const auto& p : processes_) ticks_.push_back(ProcessTicks(p.pid).value_or(0));
    self_ = ProcessTicks(getpid()).value_or(0);
  }
  // "CPU, <what>: machine 1.86 of 2 cores busy; vigild 1.05 cores (21.3 us an event); ..."
  std::string Line(const char* what, size_t events) const {
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    auto describe = [&](const std::string& name, uint64_t from, std::optional<uint64_t> to) {
      if (!to) return absl::StrCat(name, " (gone)");
      const double cpu = static_cast<double>(*to - from) / hz;
      if (events == 0) return absl::StrFormat("%s %.2f cores", name, cpu / seconds);
      return absl::StrFormat("%s %.2f cores (%.1f us an event)", name, cpu / seconds, cpu * 1e6 / events);
    };
    std::string line = absl::StrFormat("CPU, %s: machine %.2f of %ld cores busy", what,
                                       static_cast<double>(MachineBusyTicks().value_or(machine_) - machine_) / hz /
                                           seconds,
                                       sysconf(_SC_NPROCESSORS_ONLN));
    for (size_t i = 0; i < processes_.size(); ++i) {
      absl::StrAppend(&line, "; ", describe(processes_[i].name, ticks_[i], ProcessTicks(processes_[i].pid)));
    }
    absl::StrAppend(&line, "; ", describe("this program", self_, ProcessTicks(getpid())));
    return line;
  }

 private:
  std::vector<Process> processes_;
  Clock::time_point start_;
  uint64_t machine_ = 0, self_ = 0;
  std::vector<uint64_t> ticks_;
};

// The broker warmed (see the top of this file): `events` produced in transactions of 500 to `topic` and read back
// read_committed, round and round, for `seconds`. Returns an error when the topic or the transactions fail.
absl::Status WarmBroker(const KafkaProps& base, const std::string& topic, int partitions,
                        const std::vector<vigil::v1::Event>& events, int seconds) {
  VIGIL_RETURN_IF_ERROR(vigil::EnsureTopics(base, {{topic, partitions, {}}}, 30000));
  KafkaProps props = base;
  props.emplace_back("transactional.id", "vigil-bench-warmup");
  props.emplace_back("linger.ms", "1");
  VIGIL_ASSIGN_OR_RETURN(auto conf, vigil::MakeKafkaConf(props));
  std::string err;
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) return absl::InternalError(err);
  auto check = [](RdKafka::Error* e, const char* what) {
    if (e == nullptr) return absl::OkStatus();
    const std::string message = e->str();
    delete e;
    return absl::UnavailableError(absl::StrCat("warming the broker: ", what, ": ", message));
  };
  VIGIL_RETURN_IF_ERROR(check(producer->init_transactions(30000), "init_transactions"));
  auto reader = MakeConsumer(base, topic, true, RdKafka::Topic::OFFSET_END);
  std::atomic<bool> done{false};
  std::thread read([&] {
    while (!done) std::unique_ptr<RdKafka::Message>(reader->consume(20));
  });
  absl::Status status;
  size_t next = 0;
  for (const auto start = Clock::now(); status.ok() && Seconds(start, Clock::now()) < seconds;) {
    status = check(producer->begin_transaction(), "begin_transaction");
    for (int i = 0; status.ok() && i < 500; ++i, next = (next + 1) % events.size()) {
      Produce(*producer, topic, events[next]);
    }
    if (status.ok()) status = check(producer->commit_transaction(30000), "commit_transaction");
  }
  done = true;
  read.join();
  reader->close();
  return status;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vigil-bench-stream"};
  std::string brokers = "127.0.0.1:9092", events_topic = "vigil.events", alerts_topic = "vigil.alerts";
  size_t events = 200000;
  int rate = 5000, seconds = 20;
  app.add_option("--brokers", brokers);
  app.add_option("--events-topic", events_topic);
  app.add_option("--alerts-topic", alerts_topic);
  app.add_option("--events", events, "Events in the throughput phase")->capture_default_str();
  app.add_option("--rate", rate, "Events per second in the latency phase")->capture_default_str();
  app.add_option("--seconds", seconds, "Length of the latency phase")->capture_default_str();
  double settle = 10;
  size_t flood = 3000;
  app.add_option("--flood", flood, "Calls about one victim produced at once at the start of a second latency run "
                                   "(0: no such run)")->capture_default_str();
  app.add_option("--settle", settle, "Seconds between the phases once vigild is idle")->capture_default_str();
  int warmup = 20;
  app.add_option("--warmup", warmup, "Seconds of the broker alone (transactions on a scratch topic) before the "
                                     "throughput phases, and of the latency workload before the latency phase, "
                                     "unmeasured")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  std::string trace_path;
  app.add_option("--trace", trace_path, "Write each latency probe's alert here: phase, seconds since start, ms");
  std::vector<std::string> cpu_specs;
  app.add_option("--cpu", cpu_specs, "NAME=PID (repeatable): print the CPU that process used in the throughput "
                                     "phases, beside the machine's");
  CLI11_PARSE(app, argc, argv);
  std::vector<CpuUse::Process> watched;
  for (const std::string& spec : cpu_specs) {
    const size_t eq = spec.find('=');
    int pid = 0;
    if (eq == std::string::npos || eq == 0 || !absl::SimpleAtoi(spec.substr(eq + 1), &pid) || pid <= 0 ||
        !ProcessTicks(pid)) {
      std::fprintf(stderr, "--cpu %s: not NAME=PID of a running process\n", spec.c_str());
      return 2;
    }
    watched.push_back({spec.substr(0, eq), pid});
  }
  CpuUse cpu(watched);
  FILE* trace = trace_path.empty() ? nullptr : std::fopen(trace_path.c_str(), "w");
  if (!trace_path.empty() && trace == nullptr) {
    std::fprintf(stderr, "--trace %s: %s\n", trace_path.c_str(), std::strerror(errno));
    return 2;
  }
  const KafkaProps base = {{"bootstrap.servers", brokers}};

  // --- throughput ----------------------------------------------------------------------
  std::printf("generating %zu synthetic events...\n", events);
  auto stream = vigil::synthetic::SyntheticStream({.events = events, .victims = events / 10, .seed = 9});
  // Recent, as a live force's events are: vigild's clock ticks say it is now, and events older than its horizon
  // (400 days) are kept on the timeline but evaluated by no rule.
  vigil::synthetic::MoveToNow(&stream);
  const absl::StatusOr<int> partition_count = vigil::PartitionCount(base, events_topic, 10000);
  if (!partition_count.ok()) {
    std::fprintf(stderr, "%s: %s\n", events_topic.c_str(), partition_count.status().ToString().c_str());
    return 1;
  }
  const int partitions = *partition_count;
  auto producer = MakeProducer(base);
  if (warmup > 0) {
    if (absl::Status s = WarmBroker(base, events_topic + ".warmup", partitions, stream, warmup); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }

  // 0. Kafka alone, vigild idle: the stream through a topic of its own, produced and read back at once.
  const std::string baseline_topic = events_topic + ".baseline";
  if (absl::Status s = vigil::EnsureTopics(base, {{baseline_topic, partitions, {}}}, 30000); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  auto raw = MakeConsumer(base, baseline_topic, true, RdKafka::Topic::OFFSET_END);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // assignments settle
  cpu.Start();
  const auto base_start = Clock::now();
  std::atomic<size_t> read_back{0};
  Clock::time_point raw_done = base_start;
  std::thread base_reader([&] {
    while (read_back < stream.size() && Seconds(base_start, Clock::now()) < 300) {
      std::unique_ptr<RdKafka::Message> m(raw->consume(100));
      if (m->err() == RdKafka::ERR_NO_ERROR) {
        ++read_back;
        raw_done = Clock::now();
      }
    }
  });
  for (const auto& e : stream) Produce(*producer, baseline_topic, e);
  producer->flush(60000);
  base_reader.join();
  const double kafka_rate = read_back / Seconds(base_start, raw_done);
  const std::string kafka_cpu = cpu.Line("Kafka alone", read_back);

  // 1. Through vigild.
  auto alerts = MakeConsumer(base, alerts_topic, true, RdKafka::Topic::OFFSET_END);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const vigil::Micros probe_at = vigil::ToMicros(stream.back().occurred_at()) + vigil::kMicrosPerSecond;
  cpu.Start();
  const auto start = Clock::now();
  for (const auto& e : stream) Produce(*producer, events_topic, e);
  // A probe last in every partition: its alert says the partition has been applied, committed and published.
  for (int p = 0; p < partitions; ++p) {
    const std::string victim = absl::StrCat("V-PROBE-", p);
    Produce(*producer, events_topic, Call(absl::StrCat("probe-call-", p), victim, probe_at, true), p);
    Produce(*producer, events_topic, Close(absl::StrCat("probe-close-", p), victim, probe_at + 1), p);
  }
  producer->flush(60000);
  const double produced_in = Seconds(start, Clock::now());
  Clock::time_point probes_seen;
  int probes = 0;
  vigil::v1::Alert alert;
  size_t transitions = 0;
  auto is_probe = [](const vigil::v1::Alert& a) { return a.victim_id().rfind("V-PROBE-", 0) == 0; };
  while (probes < partitions && Seconds(start, Clock::now()) < 600) {
    std::unique_ptr<RdKafka::Message> m(alerts->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR || !alert.ParseFromArray(m->payload(), static_cast<int>(m->len()))) {
      continue;
    }
    if (!is_probe(alert)) {
      ++transitions;
    } else if (alert.rule() == "closed-without-assessment") {
      ++probes;
      probes_seen = Clock::now();
    }
  }
  const std::string vigild_cpu = cpu.Line("through vigild", stream.size());
  if (probes < partitions) {
    std::fprintf(stderr, "only %d of %d probes' alerts arrived\n", probes, partitions);
    return 1;
  }
  // What else was committed by then: the alert topic to its end.
  const int alert_partitions = vigil::PartitionCount(base, alerts_topic, 10000).value_or(partitions);
  const auto drain_start = Clock::now();
  for (int ends = 0; ends < alert_partitions && Seconds(drain_start, Clock::now()) < 10;) {
    std::unique_ptr<RdKafka::Message> m(alerts->consume(1000));
    if (m->err() == RdKafka::ERR__PARTITION_EOF) ++ends;
    else if (m->err() == RdKafka::ERR__TIMED_OUT) break;
    else if (m->err() == RdKafka::ERR_NO_ERROR &&
             !(alert.ParseFromArray(m->payload(), static_cast<int>(m->len())) && is_probe(alert))) {
      ++transitions;
    }
  }
  // The same rules over the same stream in event time (what a replay publishes): once as one stream, and once
  // split as the producer split it (librdkafka's default partitioner), each partition with its own clock, as
  // vigild runs it; the probe that ends each partition included. The second must equal what vigild published.
  size_t replayed = 0, replayed_by_partition = 0;
  {
    const vigil::Engine engine(vigil::RulesConfig::Defaults());
    vigil::Processor whole(&engine);
    std::vector<std::unique_ptr<vigil::Processor>> parts;
    for (int p = 0; p < partitions; ++p) parts.push_back(std::make_unique<vigil::Processor>(&engine));
    std::vector<vigil::v1::Alert> out;
    for (const auto& e : stream) {
      (void)whole.Apply(e, &out);
      replayed += out.size();
      out.clear();
      const int32_t p = rd_kafka_msg_partitioner_consistent_random(nullptr, e.victim_id().data(),
                                                                   e.victim_id().size(), partitions, nullptr, nullptr);
      (void)parts[p]->Apply(e, &out);
      replayed_by_partition += out.size();
      out.clear();
    }
    for (int p = 0; p < partitions; ++p) {
      const std::string victim = absl::StrCat("V-PROBE-", p);
      for (const auto& e : {Call(absl::StrCat("probe-call-", p), victim, probe_at, true),
                            Close(absl::StrCat("probe-close-", p), victim, probe_at + 1)}) {
        (void)parts[p]->Apply(e, &out);
        for (const auto& a : out) replayed_by_partition += a.victim_id() != victim;  // the probe's own: not counted
        out.clear();
      }
    }
  }
  const double vigil_rate = stream.size() / Seconds(start, probes_seen);
  std::printf("produced %zu events in %.2fs, then a probe in each of %d partitions\n", stream.size(), produced_in,
              partitions);
  std::printf("throughput, Kafka alone (produce, read back):      %9.0f events/s\n", kafka_rate);
  std::printf("throughput, through vigild to committed alerts:    %9.0f events/s  (%zu alert transitions)\n",
              vigil_rate, transitions);
  std::printf("alert transitions: %zu published live by the last probe; %zu replaying each partition in event time "
              "(%s); %zu replaying the whole stream as one\n",
              transitions, replayed_by_partition, transitions == replayed_by_partition ? "equal" : "DIFFERENT",
              replayed);
  std::printf("ratio vigild/Kafka alone: %.2f   goal >= 0.8: %s\n", vigil_rate / kafka_rate,
              vigil_rate / kafka_rate >= 0.8 ? "met" : "NOT met");
  std::printf("%s\n%s\n", kafka_cpu.c_str(), vigild_cpu.c_str());

  // --- latency ----------------------------------------------------------------------
  // Steady state, not the throughput phase's tail: vigild idle (nothing new on the alert topic for 2 s), then
  // --settle seconds more (the burst leaves RocksDB flushing and compacting, and the broker's log, on the same
  // two cores).
  for (auto quiet = Clock::now(); Seconds(quiet, Clock::now()) < 2 && Seconds(start, Clock::now()) < 900;) {
    std::unique_ptr<RdKafka::Message> m(alerts->consume(100));
    if (m->err() == RdKafka::ERR_NO_ERROR) quiet = Clock::now();
  }
  cpu.Start();
  for (const auto settled = Clock::now(); Seconds(settled, Clock::now()) < settle;) {
    std::unique_ptr<RdKafka::Message> m(alerts->consume(100));
  }
  // What the processes cost with nothing to do (consumers waiting on the broker, background work): part of
  // every phase's figures above.
  if (settle > 0) std::printf("%s\n", cpu.Line("idle (the settle)", 0).c_str());
  // One run of the latency workload: --rate events per second for --seconds, every 50th closing an incident
  // with no assessment (an alert at once). With `flood` > 0, that many calls about one victim are produced at
  // once as the run starts, all on that victim's partition: the other victims' alerts should not wait for them.
  auto raw2 = MakeConsumer(base, events_topic, false, RdKafka::Topic::OFFSET_END);
  struct Latencies {
    double achieved = 0;
    size_t probes = 0;
    std::vector<double> vigil_ms, kafka_ms;
    // With a flood: the alerts' latencies split by whether their victim shares the flooded partition.
    std::vector<double> beside_ms, behind_ms;
  };
  auto run = [&](const std::string& tag, size_t flood, int seconds) {
    std::mutex mu;
    std::map<std::string, Clock::time_point> sent;  // close event id -> produce time
    std::map<std::string, int32_t> partition_of;   // close event id -> its events partition
    std::vector<std::pair<std::string, double>> alerted;  // close event id, latency
    int32_t flooded = -1;
    const std::string flood_victim = absl::StrCat("V-FLOOD-", tag);
    Latencies out;
    std::atomic<bool> done{false};
    std::thread alert_reader([&] {
      vigil::v1::Alert a;
      while (!done) {
        std::unique_ptr<RdKafka::Message> m(alerts->consume(20));
        if (m->err() != RdKafka::ERR_NO_ERROR || !a.ParseFromArray(m->payload(), static_cast<int>(m->len()))) continue;
        if (a.rule() != "closed-without-assessment") continue;
        const auto now = Clock::now();
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& id : a.evidence_event_ids()) {
          auto it = sent.find(id);
          if (it == sent.end()) continue;
          out.vigil_ms.push_back(std::chrono::duration<double, std::milli>(now - it->second).count());
          alerted.emplace_back(id, out.vigil_ms.back());
          if (trace) std::fprintf(trace, "%s %.3f %.1f\n", tag.c_str(), Seconds(start, now), out.vigil_ms.back());
        }
      }
    });
    std::thread raw_reader([&] {
      vigil::v1::Event e;
      while (!done) {
        std::unique_ptr<RdKafka::Message> m(raw2->consume(20));
        if (m->err() != RdKafka::ERR_NO_ERROR || !e.ParseFromArray(m->payload(), static_cast<int>(m->len()))) continue;
        const auto now = Clock::now();
        std::lock_guard<std::mutex> lock(mu);
        if (e.victim_id() == flood_victim) flooded = m->partition();
        auto it = sent.find(e.event_id());
        if (it == sent.end()) continue;
        out.kafka_ms.push_back(std::chrono::duration<double, std::milli>(now - it->second).count());
        partition_of[e.event_id()] = m->partition();
      }
    });
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const vigil::Micros flood_end = NowMicros();
    for (size_t i = 0; i < flood; ++i) {  // spread over the hour that ends now
      const vigil::Micros at = flood_end - vigil::kMicrosPerHour + static_cast<vigil::Micros>(i) * vigil::kMicrosPerHour /
                                                                       static_cast<vigil::Micros>(flood);
      Produce(*producer, events_topic, Call(absl::StrCat(tag, "-flood-", i), absl::StrCat("V-FLOOD-", tag), at, true));
    }
    const long total = static_cast<long>(rate) * seconds;
    const auto phase = Clock::now();
    for (long i = 0; i < total; ++i) {
      std::this_thread::sleep_until(phase + std::chrono::microseconds(i * 1000000L / rate));
      const std::string victim = absl::StrCat("V-", tag, "-", i / 50);
      if (i % 50 == 0) {
        Produce(*producer, events_topic, Call(absl::StrCat(tag, "-call-", i), victim, NowMicros(), true));
      } else if (i % 50 == 49) {
        const std::string id = absl::StrCat(tag, "-close-", i);
        {
          std::lock_guard<std::mutex> lock(mu);
          sent[id] = Clock::now();
        }
        Produce(*producer, events_topic, Close(id, victim, NowMicros()));
      } else {
        Produce(*producer, events_topic,
                Call(absl::StrCat(tag, "-bg-", i), absl::StrCat("V-BG-", tag, "-", i), NowMicros(), false));
      }
    }
    out.achieved = total / Seconds(phase, Clock::now());
    producer->flush(10000);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    done = true;
    alert_reader.join();
    raw_reader.join();
    out.probes = sent.size();
    for (const auto& [id, ms] : alerted) {
      auto it = partition_of.find(id);
      (it != partition_of.end() && it->second == flooded ? out.behind_ms : out.beside_ms).push_back(ms);
    }
    return out;
  };
  auto print = [&](const char* what, const Latencies& l) {
    std::printf("%s: %.0f events/s for %ds, %zu probes, %zu alerts matched\n", what, l.achieved, seconds, l.probes,
                l.vigil_ms.size());
    std::printf("latency, Kafka alone (produce to consume):   p50 %6.1f ms  p99 %6.1f ms  p99.9 %6.1f ms\n",
                Percentile(l.kafka_ms, 0.5), Percentile(l.kafka_ms, 0.99), Percentile(l.kafka_ms, 0.999));
    std::printf("latency, event to committed alert (vigild):  p50 %6.1f ms  p99 %6.1f ms  p99.9 %6.1f ms\n",
                Percentile(l.vigil_ms, 0.5), Percentile(l.vigil_ms, 0.99), Percentile(l.vigil_ms, 0.999));
  };
  if (warmup > 0) run("warm", 0, warmup);  // unmeasured: the broker's JIT compiles the transactional paths
  const Latencies steady = run("lat", 0, seconds);
  print("latency phase", steady);
  // Issue 13's goal is both: under 50 ms, and at most twice what Kafka itself takes.
  const double p99 = Percentile(steady.vigil_ms, 0.99);
  const double p99_ratio = p99 / std::max(0.001, Percentile(steady.kafka_ms, 0.99));
  std::printf("ratio p99 vigild/Kafka alone: %.2f   goal p99 < 50 ms and <= 2x Kafka's at 5000 events/s: %s\n",
              p99_ratio, p99 < 50 && p99_ratio <= 2 ? "met" : "NOT met");
  bool flood_ok = true;
  if (flood > 0) {
    const Latencies flooded = run("fl", flood, seconds);
    print(absl::StrCat("flood phase (", flood, " calls about one victim produced at its start)").c_str(), flooded);
    std::printf("  of which on the other partitions (%zu):     p50 %6.1f ms  p99 %6.1f ms  p99.9 %6.1f ms\n",
                flooded.beside_ms.size(), Percentile(flooded.beside_ms, 0.5), Percentile(flooded.beside_ms, 0.99),
                Percentile(flooded.beside_ms, 0.999));
    std::printf("  of which behind the flood, its partition (%zu): p50 %6.1f ms  p99 %6.1f ms  p99.9 %6.1f ms\n",
                flooded.behind_ms.size(), Percentile(flooded.behind_ms, 0.5), Percentile(flooded.behind_ms, 0.99),
                Percentile(flooded.behind_ms, 0.999));
    std::printf("ratio p99 other partitions' alerts, flood/steady: %.2f\n",
                Percentile(flooded.beside_ms, 0.99) / std::max(0.001, Percentile(steady.vigil_ms, 0.99)));
    flood_ok = !flooded.vigil_ms.empty();
  }
  alerts->close();
  raw->close();
  raw2->close();
  return steady.vigil_ms.empty() || !flood_ok ? 1 : 0;
}
