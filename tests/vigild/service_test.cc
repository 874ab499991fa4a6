// vigild's streaming loop (Service) against librdkafka's mock cluster (a fake broker in process that speaks
// the Kafka protocol: groups, transactions, fetches), with a clock of the test's own and a store the test can
// make refuse writes. End to end on a real broker: tests/integration/streaming_test.py and faults_test.py.
// The mock does not hide aborted transactions from read_committed consumers: these tests stop cleanly, so
// that none is left, or only count what a fence may repeat.
#include "services/escalation/vigild/service.h"

#include <atomic>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/watermarks.h"
#include "tests/testing/builders.h"
#include "tests/testing/mock_kafka.h"
#include "tests/testing/signing.h"
#include "tests/testing/test_dir.h"

namespace vigil {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::Ev;

constexpr int16_t kEndTxn = 26;
constexpr int16_t kHeartbeat = 12;

// An incident closed with no assessment: an alert at once.
std::vector<v1::Event> ClosedUnassessed(const std::string& victim, Micros at) {
  return {Ev(victim + "-call").Victim(victim).Incident(victim + "-I").AtMicros(at).Call(),
          Ev(victim + "-close").Victim(victim).Incident(victim + "-I").AtMicros(at + kMicrosPerMinute).Closed()};
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *Store::Open((dir_ / "db").string());
    KafkaProps p = props_;
    p.emplace_back("linger.ms", "0");
    producer_.reset(RdKafka::Producer::create(MakeKafkaConf(p)->get(), err_));
    ASSERT_NE(producer_, nullptr) << err_;
  }
  void TearDown() override {
    Stop().IgnoreError();  // a test that stopped it already checked how
    producer_.reset();
    store_.reset();
  }

  void Start(int tick_ms = 0, int partition_batch_max = 500, int batch_max = 5000, int apply_threads = 2,
             size_t batch_max_bytes = kDefaultBatchMaxBytes) {
    ServiceOptions o;
    o.kafka = props_;
    o.instance = "service-test";
    o.data_dir = (dir_ / "db").string();
    o.topics = topics_;
    o.admission = testing::TestAdmission();
    o.partitions = 2;
    o.tick_ms = tick_ms;
    o.partition_batch_max = partition_batch_max;
    o.batch_max = batch_max;
    o.apply_threads = apply_threads;
    o.batch_max_bytes = batch_max_bytes;
    o.clock = [this] { return now_ms_.load(); };
    o.applied = &applied_;
    o.metrics = &metrics_;
    service_ = std::make_unique<Service>(o, &engine_, store_.get(), &health_);
    thread_ = std::thread([this] { status_ = service_->Run(); });
  }
  // Stops the service (a final commit and publish) and says how its run ended.
  absl::Status Stop() {
    if (!service_) return absl::OkStatus();
    service_->Stop();
    thread_.join();
    service_.reset();
    return status_;
  }

  void Produce(const v1::Event& e, int32_t partition = RdKafka::Topic::PARTITION_UA, bool flush = true) {
    const std::string bytes = e.SerializeAsString();
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add(kHeaderSignature, testing::TestSigner().Sign(bytes));
    ASSERT_EQ(producer_->produce(topics_.events, partition, RdKafka::Producer::RK_MSG_COPY,
                                 const_cast<char*>(bytes.data()), bytes.size(), e.victim_id().data(),
                                 e.victim_id().size(), 0, headers, nullptr),
              RdKafka::ERR_NO_ERROR);
    if (flush) producer_->flush(10000);
  }

  // The committed alert transitions, read from the beginning of the alert topic until `n` have arrived or
  // `wait` has passed.
  std::vector<v1::Alert> Alerts(size_t n, std::chrono::milliseconds wait = std::chrono::seconds(30)) {
    KafkaProps p = props_;
    p.emplace_back("group.id", "service-test-reader");
    p.emplace_back("isolation.level", "read_committed");
    std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(MakeKafkaConf(p)->get(), err_));
    std::vector<RdKafka::TopicPartition*> tps = {
        RdKafka::TopicPartition::create(topics_.alerts, 0, RdKafka::Topic::OFFSET_BEGINNING),
        RdKafka::TopicPartition::create(topics_.alerts, 1, RdKafka::Topic::OFFSET_BEGINNING)};
    c->assign(tps);
    RdKafka::TopicPartition::destroy(tps);
    std::vector<v1::Alert> out;
    const auto until = std::chrono::steady_clock::now() + wait;
    while (out.size() < n && std::chrono::steady_clock::now() < until) {
      std::unique_ptr<RdKafka::Message> m(c->consume(100));
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      out.emplace_back().ParseFromArray(m->payload(), static_cast<int>(m->len()));
    }
    c->close();
    return out;
  }

  static std::vector<std::string> Rules(const std::vector<v1::Alert>& alerts) {
    std::vector<std::string> out;
    for (const auto& a : alerts) out.push_back(absl::StrCat(a.victim_id(), " ", a.rule(), " r", a.revision()));
    return out;
  }

  // Starts the service; once V1's alert is out, the store refuses writes ("the disk is full") and V2's events
  // are produced: they are read, and the store is unhealthy.
  void FillTheDiskAfterV1sAlertThenProduceV2(Micros at) {
    Start();
    for (const auto& e : ClosedUnassessed("V1", at)) Produce(e);
    ASSERT_EQ(Alerts(1).size(), 1u);
    store_->set_min_free_bytes(std::numeric_limits<uint64_t>::max());  // "the disk is full"
    for (const auto& e : ClosedUnassessed("V2", at)) Produce(e);
    for (int i = 0; i < 300 && health_.Of(kHealthStore).ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(health_.Of(kHealthStore).code(), absl::StatusCode::kUnavailable);
  }
  // A backlog on both partitions: `victims` incidents closed unassessed on each (victims P<partition>-<n>).
  void ProduceBacklogs(int victims) {
    const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
    for (int v = 0; v < victims; ++v) {
      for (int p = 0; p < 2; ++p) {
        for (const auto& e : ClosedUnassessed(absl::StrCat("P", p, "-", v), at)) Produce(e, p, /*flush=*/false);
      }
    }
    producer_->flush(10000);
  }
  // Once the started service has applied both backlogs: stops it, and expects every victim's alert once.
  void ExpectEachBacklogAlertOnce(int victims) {
    const int64_t last = 2 * static_cast<int64_t>(victims) - 1;
    ASSERT_TRUE(applied_.WaitPast(0, last, absl::Now() + absl::Seconds(60)));
    ASSERT_TRUE(applied_.WaitPast(1, last, absl::Now() + absl::Seconds(60)));
    EXPECT_TRUE(Stop().ok());
    const size_t n = 2 * static_cast<size_t>(victims);
    const std::vector<std::string> rules = Rules(Alerts(n + 1, std::chrono::seconds(3)));  // all, and no more
    EXPECT_EQ(rules.size(), n);
    EXPECT_EQ(std::set<std::string>(rules.begin(), rules.end()).size(), n);  // each once
    for (int p = 0; p < 2; ++p) {
      EXPECT_THAT(rules, ::testing::Contains(absl::StrCat("P", p, "-", victims - 1, " closed-without-assessment r1")));
    }
  }

  testing::TestDir dir_{"service"};
  const Topics topics_{};
  testing::MockKafka kafka_{
      {{topics_.events, 2}, {topics_.alerts, 2}, {topics_.dead_letters, 1}, {topics_.progress, 1}}};
  const KafkaProps& props_ = kafka_.props();
  std::string err_;
  std::unique_ptr<RdKafka::Producer> producer_;
  const Engine engine_{RulesConfig::Defaults()};
  std::unique_ptr<Store> store_;
  Health health_;
  std::atomic<int64_t> now_ms_{0};
  Watermarks applied_;
  MetricsRegistry registry_;
  VigilMetrics metrics_{&registry_};
  std::unique_ptr<Service> service_;
  std::thread thread_;
  absl::Status status_;
};

TEST_F(ServiceTest, EventsBecomeAlertsPublishedOnceAndARestartRepeatsNone) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  Start();
  for (const auto& e : ClosedUnassessed("V1", at)) Produce(e);
  EXPECT_THAT(Rules(Alerts(1)), ::testing::ElementsAre("V1 closed-without-assessment r1"));
  ASSERT_TRUE(Stop().ok());
  // Started again on the same store: it resumes after what it applied and publishes nothing twice.
  Start();
  for (const auto& e : ClosedUnassessed("V2", at)) Produce(e);
  Produce(ClosedUnassessed("V1", at)[1]);  // delivered again: applied once
  // (The group gives the first run's partitions to the second once the first's session has expired.)
  EXPECT_THAT(Rules(Alerts(2)),
              ::testing::UnorderedElementsAre("V1 closed-without-assessment r1", "V2 closed-without-assessment r1"));
  EXPECT_TRUE(Stop().ok());
  EXPECT_EQ(Alerts(3, std::chrono::seconds(2)).size(), 2u);
}

TEST_F(ServiceTest, WhatItAppliesRefusesAndPublishesIsCounted) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  Start();
  for (const auto& e : ClosedUnassessed("V1", at)) Produce(e, 0);
  const std::string junk = "not an event";
  ASSERT_EQ(producer_->produce(topics_.events, 0, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(junk.data()),
                               junk.size(), "V9", 2, 0, nullptr, nullptr),
            RdKafka::ERR_NO_ERROR);
  producer_->flush(10000);
  const std::vector<v1::Alert> alerts = Alerts(1);
  ASSERT_EQ(alerts.size(), 1u);
  // The lag of each owned partition, from the log's end as fetched: nothing left once all is applied.
  for (int i = 0; i < 100 && metrics_.consumer_lag.With({"0"}).value() != 0; ++i) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(metrics_.consumer_lag.With({"0"}).value(), 0);
  EXPECT_EQ(metrics_.restore_remaining.With({"0"}).value(), 0);
  EXPECT_EQ(metrics_.owned_partitions.Get().value(), 2);
  ASSERT_TRUE(Stop().ok());
  EXPECT_EQ(metrics_.events_applied.Get().value(), 2);
  EXPECT_EQ(metrics_.dead_letters.With({"INVALID_ARGUMENT"}).value(), 1);
  const v1::Alert& a = alerts[0];
  EXPECT_EQ(metrics_.alert_transitions.With({a.rule(), v1::Level_Name(a.level()), v1::AlertState_Name(a.state())})
                .value(),
            1);
  EXPECT_GT(metrics_.store_write_seconds.Get().count(), 0u);
  EXPECT_GT(metrics_.commit_seconds.Get().count(), 0u);
  // Revoked on the way out: no partition's gauges linger; no victim is named in any series.
  EXPECT_EQ(metrics_.owned_partitions.Get().value(), 0);
  const std::string text = registry_.Render();
  EXPECT_THAT(text, Not(HasSubstr("partition=\"1\"")));
  EXPECT_THAT(text, Not(HasSubstr("V1")));
  EXPECT_THAT(text, Not(HasSubstr("V9")));
}

TEST_F(ServiceTest, ClockTicksCarryTheServicesClockAndDeadlinesFallDueByIt) {
  const Micros requested = absl::ToUnixMicros(absl::Now()) - 3 * kMicrosPerHour;
  now_ms_ = requested / 1000;  // the clock stands at the request: nothing is due
  Start(/*tick_ms=*/1);
  Produce(Ev("a1").Victim("V1").Incident("I1").AtMicros(requested).ArrestRequested("R1"), 0);
  Produce(Ev("c1").Victim("V9").Incident("I9").AtMicros(requested).Call(), 1);
  ASSERT_TRUE(applied_.WaitPast(0, 0, absl::Now() + absl::Seconds(30)));  // assigned, and the request applied
  ASSERT_TRUE(applied_.WaitPast(1, 0, absl::Now() + absl::Seconds(30)));
  EXPECT_TRUE(Alerts(1, std::chrono::seconds(2)).empty());
  // Two hours on by this clock (the urgent arrest's deadline is one hour): the next tick raises it.
  now_ms_ = (requested + 2 * kMicrosPerHour) / 1000;
  const std::vector<v1::Alert> alerts = Alerts(1);
  ASSERT_THAT(Rules(alerts), ::testing::ElementsAre("V1 arrest-overdue r1"));
  EXPECT_EQ(ToMicros(alerts[0].at()), requested + kMicrosPerHour);  // the deadline, not the tick
  EXPECT_TRUE(Stop().ok());
}

TEST_F(ServiceTest, AStoreThatRefusesWritesPausesConsumptionUntilItTakesThemAndNothingIsLost) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  ASSERT_NO_FATAL_FAILURE(FillTheDiskAfterV1sAlertThenProduceV2(at));
  EXPECT_EQ(Alerts(2, std::chrono::seconds(2)).size(), 1u);  // V2's batch was not stored, nor published
  store_->set_min_free_bytes(0);
  EXPECT_THAT(Rules(Alerts(2)),
              ::testing::UnorderedElementsAre("V1 closed-without-assessment r1", "V2 closed-without-assessment r1"));
  EXPECT_TRUE(health_.Of(kHealthStore).ok());
  EXPECT_TRUE(Stop().ok());
  EXPECT_EQ(Alerts(3, std::chrono::seconds(2)).size(), 2u);
}

TEST_F(ServiceTest, AFencedProducerIsRebuiltAndWhatItHeldIsPublished) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  Start();
  for (const auto& e : ClosedUnassessed("V1", at)) Produce(e);
  ASSERT_EQ(Alerts(1).size(), 1u);
  // The next commit is refused: another producer has our transactional id. The loop builds a new producer,
  // reloads its partitions from the store and the progress topic, and publishes what was held.
  rd_kafka_mock_push_request_errors(kafka_.cluster(), kEndTxn, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
  for (const auto& e : ClosedUnassessed("V2", at)) Produce(e);
  ASSERT_EQ(Alerts(2).size(), 2u);  // V2's transition is out (the mock shows it even from the fenced transaction)
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the loop rebuilds its producer meanwhile
  // Only the rebuilt producer can publish this one.
  for (const auto& e : ClosedUnassessed("V3", at)) Produce(e);
  std::vector<std::string> rules = Rules(Alerts(3));
  EXPECT_THAT(rules, ::testing::IsSupersetOf({"V2 closed-without-assessment r1", "V3 closed-without-assessment r1"}));
  EXPECT_TRUE(Stop().ok());
  // Whatever the fenced transaction held is published again, at most once more (the mock shows aborted records).
  rules = Rules(Alerts(5, std::chrono::seconds(3)));
  EXPECT_EQ(std::count(rules.begin(), rules.end(), "V1 closed-without-assessment r1"), 1);
  EXPECT_LE(std::count(rules.begin(), rules.end(), "V2 closed-without-assessment r1"), 2);
  EXPECT_EQ(std::count(rules.begin(), rules.end(), "V3 closed-without-assessment r1"), 1);
}

TEST_F(ServiceTest, AFencedConsumerRejoinsTheGroupAndNothingIsLostOrRepeated) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  Start();
  for (const auto& e : ClosedUnassessed("V1", at)) Produce(e);
  ASSERT_EQ(Alerts(1).size(), 1u);
  // The group says another member has our group.instance.id: librdkafka's consumer fails for good and gives
  // up its partitions. The loop makes a new consumer, which is assigned them again.
  rd_kafka_mock_push_request_errors(kafka_.cluster(), kHeartbeat, 1, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
  std::this_thread::sleep_for(std::chrono::seconds(4));  // a heartbeat (every 3 s) meets the error
  for (const auto& e : ClosedUnassessed("V2", at)) Produce(e);
  std::vector<std::string> rules = Rules(Alerts(2));
  EXPECT_THAT(rules, ::testing::ElementsAre("V1 closed-without-assessment r1", "V2 closed-without-assessment r1"));
  EXPECT_TRUE(Stop().ok());
  EXPECT_THAT(Rules(Alerts(3, std::chrono::seconds(3))), ::testing::SizeIs(2)) << "nothing published twice";
}

TEST_F(ServiceTest, AConsumerFencedWhileTheStoreRefusesWritesIsReplacedOnceItTakesThem) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  ASSERT_NO_FATAL_FAILURE(FillTheDiskAfterV1sAlertThenProduceV2(at));
  // While it waits for the store, still a member of the group, it is fenced.
  rd_kafka_mock_push_request_errors(kafka_.cluster(), kHeartbeat, 1, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
  std::this_thread::sleep_for(std::chrono::seconds(4));  // a heartbeat (every 3 s) meets the error
  store_->set_min_free_bytes(0);
  for (const auto& e : ClosedUnassessed("V3", at)) Produce(e);
  EXPECT_THAT(Rules(Alerts(3)),
              ::testing::UnorderedElementsAre("V1 closed-without-assessment r1", "V2 closed-without-assessment r1",
                                              "V3 closed-without-assessment r1"));
  EXPECT_TRUE(health_.Of(kHealthStore).ok());
  EXPECT_TRUE(Stop().ok());
  EXPECT_THAT(Rules(Alerts(4, std::chrono::seconds(3))), ::testing::SizeIs(3)) << "nothing published twice";
}

TEST_F(ServiceTest, APartitionsBacklogTakesTurnsWithTheOthersAndNothingIsLostOrRepeated) {
  const Micros at = absl::ToUnixMicros(absl::Now()) - kMicrosPerHour;
  // Batches of 10, 5 records of a partition at most, its fetching paused whenever 40 wait (and resumed at 20):
  // 600 closed incidents on partition 0 pause and resume it again and again while partition 1's take turns.
  for (int v = 0; v < 600; ++v) {
    for (const auto& e : ClosedUnassessed(absl::StrCat("B", v), at)) Produce(e, 0, /*flush=*/false);
  }
  for (int v = 0; v < 5; ++v) {
    for (const auto& e : ClosedUnassessed(absl::StrCat("Q", v), at)) Produce(e, 1, /*flush=*/false);
  }
  producer_->flush(10000);
  Start(/*tick_ms=*/0, /*partition_batch_max=*/5, /*batch_max=*/10);
  ASSERT_TRUE(applied_.WaitPast(0, 1199, absl::Now() + absl::Seconds(60)));
  ASSERT_TRUE(applied_.WaitPast(1, 9, absl::Now() + absl::Seconds(60)));
  EXPECT_TRUE(Stop().ok());
  const std::vector<std::string> rules = Rules(Alerts(606, std::chrono::seconds(3)));  // all 605, and no more
  EXPECT_EQ(rules.size(), 605u);
  EXPECT_EQ(std::set<std::string>(rules.begin(), rules.end()).size(), 605u);  // each once
}

TEST_F(ServiceTest, PartitionsAppliedAndStoredSideBySideLoseAndRepeatNothing) {
  // Both partitions with a backlog of 1,200 records, on more threads than there are partitions: a batch of
  // 2,000 (1,000 each, side by side), then one of 400 (on the loop's thread).
  ProduceBacklogs(600);
  Start(/*tick_ms=*/0, /*partition_batch_max=*/1000, /*batch_max=*/2000, /*apply_threads=*/4);
  ExpectEachBacklogAlertOnce(600);
}

TEST_F(ServiceTest, ABatchFullByItsBytesLeavesTheRestForTheNextAndNothingIsLostRepeatedOrReordered) {
  // 100 closed incidents on each partition, in batches that may hold one byte: each takes one record of each
  // partition (the least a partition applies) and puts the rest of its turn back at the head of its line. A
  // call and its incident's closure applied out of order would raise no alert.
  ProduceBacklogs(100);
  Start(/*tick_ms=*/0, /*partition_batch_max=*/500, /*batch_max=*/5000, /*apply_threads=*/2,
        /*batch_max_bytes=*/1);
  ExpectEachBacklogAlertOnce(100);
  EXPECT_GE(metrics_.store_write_seconds.Get().count(), 200u) << "a batch of one record a partition";
}

TEST(BatchSharesTest, TheBatchGrowsWithThePartitionsThatHaveABacklogAndATurnIsAShareOfIt) {
  const BatchShares shares{/*batch_max=*/20000, /*partition_batch_max=*/500};
  // A replay or a burst: all four partitions have a backlog, the whole batch, a quarter each.
  EXPECT_EQ(shares.Size(4, 4), 20000);
  EXPECT_EQ(shares.Turn(4, shares.Size(4, 4)), 5000);
  // One victim's flood: one backlog of four, a quarter of the batch; the flood's turn beside the others' few.
  EXPECT_EQ(shares.Size(4, 1), 5000);
  EXPECT_EQ(shares.Turn(4, shares.Size(4, 1)), 1250);
  // No backlog counts as one; never below a partition's least turn; nothing waiting, no turn.
  EXPECT_EQ(shares.Size(4, 0), 5000);
  EXPECT_EQ(BatchShares({1000, 500}).Size(8, 1), 500);
  EXPECT_EQ(shares.Turn(0, 20000), 0);
  EXPECT_EQ(shares.Turn(100, 5000), 500);
  // Owning no partition yet is owning one.
  EXPECT_EQ(shares.Size(0, 0), 20000);
}

TEST(BatchSharesTest, ABatchAndAPartitionsReadAheadAreBoundedByBytesAsWellAsRecords) {
  const BatchShares shares{/*batch_max=*/20000, /*partition_batch_max=*/500, /*batch_max_bytes=*/16 << 20};
  // A turn's bytes are an equal share of the batch's.
  EXPECT_EQ(shares.TurnBytes(4), size_t{4} << 20);
  EXPECT_EQ(shares.TurnBytes(0), size_t{16} << 20);
  // Four partitions owned: one pauses at 20,000 records or 16 MiB waiting, whichever comes first ...
  EXPECT_FALSE(shares.Pause(4, 19999, (16 << 20) - 1));
  EXPECT_TRUE(shares.Pause(4, 20000, 0));
  EXPECT_TRUE(shares.Pause(4, 1, 16 << 20));  // 256 records of 64 KiB
  // ... and resumes once both are below half.
  EXPECT_FALSE(shares.Resume(4, 9999, 8 << 20));
  EXPECT_FALSE(shares.Resume(4, 10000, 0));
  EXPECT_TRUE(shares.Resume(4, 9999, (8 << 20) - 1));
  // However many partitions share it, a partition's read-ahead may hold 1 MiB before it pauses.
  const BatchShares small{20000, 500, /*batch_max_bytes=*/1 << 20};
  EXPECT_FALSE(small.Pause(1000, 1, (1 << 20) - 1));
  EXPECT_TRUE(small.Pause(1000, 1, 1 << 20));
}

}  // namespace
}  // namespace vigil
