// The API's Kafka log against librdkafka's mock cluster (a fake broker in process that speaks the Kafka
// protocol): appends complete once, from their acknowledgement, their deadline or a refusal, whichever
// comes first. A real broker is tests/integration/api_test.py's.
#include "services/escalation/api/log.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>

#include "gtest/gtest.h"
#include "tests/testing/mock_kafka.h"

namespace vigil {
namespace {

constexpr int16_t kProduce = 0;

class KafkaLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = NewKafkaLog(kafka_.props(), {"audit"});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }
  void TearDown() override { log_.reset(); }

  // Outcomes of appends, counted as they are reported.
  struct Outcomes {
    std::mutex mu;
    std::condition_variable reported;
    std::vector<absl::StatusOr<std::vector<Landed>>> all;

    Log::Done Next() {
      return [this](absl::StatusOr<std::vector<Landed>> outcome) {
        std::lock_guard<std::mutex> lock(mu);
        all.push_back(std::move(outcome));
        reported.notify_all();
      };
    }
    // Waits (up to 20 s) until n are reported.
    bool Await(size_t n) {
      std::unique_lock<std::mutex> lock(mu);
      return reported.wait_for(lock, std::chrono::seconds(20), [&] { return all.size() >= n; });
    }
  };

  static std::vector<LogRecord> Records(int n, const std::string& key) {
    std::vector<LogRecord> out;
    for (int i = 0; i < n; ++i) out.push_back({key, "record " + std::to_string(i), {}});
    return out;
  }

  testing::MockKafka kafka_{{{"audit", 2}}};
  std::unique_ptr<Log> log_;
};

TEST_F(KafkaLogTest, AnAppendSaysWhereEachRecordLandedInOrder) {
  auto landed = log_->Append("audit", Records(3, "victim-1"), absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(landed.ok()) << landed.status();
  ASSERT_EQ(landed->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*landed)[i].topic, "audit");
    EXPECT_EQ((*landed)[i].partition, (*landed)[0].partition);  // one key, one partition
    EXPECT_EQ((*landed)[i].offset, (*landed)[0].offset + static_cast<int64_t>(i));
  }
}

TEST_F(KafkaLogTest, EachKeyLandsInThePartitionKeyPartitionComputes) {
  // What any instance computes to find a victim's owner is where the producer put the victim's records.
  std::vector<LogRecord> records;
  for (int i = 0; i < 40; ++i) records.push_back({"V-" + std::to_string(i * 7919), "record", {}});
  auto landed = log_->Append("audit", records, absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(landed.ok()) << landed.status();
  std::set<int32_t> used;
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ((*landed)[i].partition, KeyPartition(records[i].key, 2)) << records[i].key;
    used.insert((*landed)[i].partition);
  }
  EXPECT_EQ(used.size(), 2u);  // both partitions: not a constant
}

TEST_F(KafkaLogTest, ConcurrentAppendsEachCompleteOnce) {
  Outcomes outcomes;
  constexpr int kAppends = 300;
  for (int i = 0; i < kAppends; ++i) {
    log_->AppendThen("audit", Records(1 + i % 3, "victim-" + std::to_string(i)), absl::Now() + absl::Seconds(20),
                     outcomes.Next());
  }
  ASSERT_TRUE(outcomes.Await(kAppends));
  log_.reset();  // flushes: any second report would arrive by now
  ASSERT_EQ(outcomes.all.size(), static_cast<size_t>(kAppends));
  std::set<std::pair<int32_t, int64_t>> where;
  size_t records = 0;
  for (const auto& o : outcomes.all) {
    ASSERT_TRUE(o.ok()) << o.status();
    for (const Landed& l : *o) where.insert({l.partition, l.offset});
    records += o->size();
  }
  EXPECT_EQ(where.size(), records);  // no two records at one place
}

TEST_F(KafkaLogTest, AnAppendNotAcknowledgedByItsDeadlineFailsOnceAndLateAcknowledgementsAreIgnored) {
  rd_kafka_mock_broker_set_down(kafka_.cluster(), 1);
  Outcomes outcomes;
  log_->AppendThen("audit", Records(2, "victim-1"), absl::Now() + absl::Milliseconds(300), outcomes.Next());
  ASSERT_TRUE(outcomes.Await(1));
  EXPECT_EQ(outcomes.all[0].status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(outcomes.all[0].status().message().find("did not acknowledge the write to audit in time"),
            std::string::npos);
  rd_kafka_mock_broker_set_up(kafka_.cluster(), 1);
  // The same key, the same partition: once this lands, the records before it have landed and reported.
  auto after = log_->Append("audit", Records(1, "victim-1"), absl::Now() + absl::Seconds(20));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->front().offset, 2);  // the late two landed first
  EXPECT_EQ(outcomes.all.size(), 1u);
}

TEST_F(KafkaLogTest, ARecordTheBrokerRefusesAsTooLargeIsTheCallersToMend) {
  rd_kafka_mock_push_request_errors(kafka_.cluster(), kProduce, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  auto landed = log_->Append("audit", Records(1, "victim-1"), absl::Now() + absl::Seconds(20));
  EXPECT_EQ(landed.status().code(), absl::StatusCode::kResourceExhausted) << landed.status();
}

}  // namespace
}  // namespace vigil
