// vigild's committer against librdkafka's mock cluster (a fake broker in process that speaks the Kafka
// protocol, transactions included, and fails requests on demand): what is handed over is published once, in
// transactions with its progress, through refused records and a fenced producer. The mock does not hide aborted
// transactions from read_committed consumers; the real broker's turn is in tests/integration/ (streaming,
// faults, chaos).
#include "services/escalation/vigild/committer.h"

#include <map>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/mock_kafka.h"
#include "services/escalation/pipeline/partition.h"

namespace vigil {
namespace {

constexpr int16_t kProduce = 0, kEndTxn = 26;

class CommitterTest : public ::testing::Test {
 protected:
  void TearDown() override { committer_.reset(); }

  void Start(int interval_ms = 0, size_t max_pending_bytes = CommitterOptions().max_pending_bytes,
             const KafkaProps& more = {}) {
    CommitterOptions o;
    o.max_pending_bytes = max_pending_bytes;
    o.kafka = props_;
    o.kafka.insert(o.kafka.end(), more.begin(), more.end());
    o.instance = "test-instance";
    o.dead_letters = "dlq";
    o.progress = "progress";
    o.topics = {"alerts", "dlq", "progress"};
    o.interval_ms = interval_ms;
    committer_ = std::make_unique<Committer>(o, nullptr, [](bool, const absl::Status&) {});
    ASSERT_TRUE(committer_->Start().ok());
  }

  static std::vector<state::OutboxRecord> Records(uint64_t from, uint64_t to) {
    std::vector<state::OutboxRecord> out;
    for (uint64_t seq = from; seq <= to; ++seq) {
      state::OutboxRecord r;
      r.set_seq(seq);
      r.set_topic("alerts");
      r.set_key("V1");
      r.set_value(absl::StrCat("transition ", seq));
      out.push_back(r);
    }
    return out;
  }

  // Every committed record of a topic, as "key=value".
  std::vector<std::string> Committed(const std::string& topic) {
    KafkaProps p = props_;
    p.emplace_back("group.id", "committer-test");
    p.emplace_back("isolation.level", "read_committed");
    p.emplace_back("enable.partition.eof", "true");
    p.emplace_back("auto.offset.reset", "earliest");
    auto conf = MakeKafkaConf(p);
    std::string err;
    std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf->get(), err));
    std::vector<RdKafka::TopicPartition*> tps = {
        RdKafka::TopicPartition::create(topic, 0, RdKafka::Topic::OFFSET_BEGINNING)};
    c->assign(tps);
    RdKafka::TopicPartition::destroy(tps);
    std::vector<std::string> out;
    for (int i = 0; i < 200; ++i) {
      std::unique_ptr<RdKafka::Message> m(c->consume(100));
      if (m->err() == RdKafka::ERR__PARTITION_EOF) break;
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      out.push_back(absl::StrCat(m->key() ? *m->key() : "", "=",
                                 std::string(static_cast<const char*>(m->payload()), m->len())));
    }
    c->close();
    return out;
  }

  // The partition's published seq as vigild reads it on assignment (ReadProgress: the last value of its key).
  uint64_t Progress() {
    auto progress = ReadProgress(props_, "progress", 10000);
    EXPECT_TRUE(progress.ok()) << progress.status();
    return progress.ok() ? (*progress)[ProgressKey(p_.first, p_.second)] : 0;
  }

  testing::MockKafka kafka_{{{"alerts", 1}, {"dlq", 1}, {"progress", 1}}};
  const KafkaProps& props_ = kafka_.props();
  std::unique_ptr<Committer> committer_;
  std::atomic<bool> stop_{false};
  const PartitionId p_{"events", 0};
};

TEST_F(CommitterTest, PublishesWhatIsHandedOverOnceWithItsProgress) {
  Start();
  committer_->Publish(p_, Records(1, 3), stop_);
  committer_->Publish(p_, Records(2, 4), stop_);  // handed over again (a reload): taken once
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  EXPECT_EQ(committer_->TakePublished(), (std::map<PartitionId, uint64_t>{{p_, 4}}));
  EXPECT_EQ(committer_->pending(), 0u);
  EXPECT_THAT(Committed("alerts"), ::testing::ElementsAre("V1=transition 1", "V1=transition 2", "V1=transition 3",
                                                          "V1=transition 4"));
  EXPECT_EQ(Progress(), 4u);
  // What was published is not taken again, even after the committer forgot the partition (a reload).
  committer_->Reset();
  committer_->Announce(p_, 4);
  committer_->Publish(p_, Records(3, 5), stop_);
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  EXPECT_EQ(Committed("alerts").size(), 5u);
  EXPECT_EQ(Progress(), 5u);
}

TEST_F(CommitterTest, ACommitWaitsForRoomForItsProgressInAFullQueue) {
  // One message at most in the producer's queue: each record, and the progress after the last, meet a full
  // queue. A transaction committed without its progress record would have its records published again after a
  // restart.
  Start(/*interval_ms=*/0, CommitterOptions().max_pending_bytes, {{"queue.buffering.max.messages", "1"}});
  committer_->Publish(p_, Records(1, 5), stop_);
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  EXPECT_EQ(Committed("alerts").size(), 5u);
  EXPECT_EQ(Progress(), 5u);
}

TEST_F(CommitterTest, HandingOverWaitsWhileWhatWaitsToBePublishedHoldsItsBytes) {
  // A commit a minute: nothing handed over is published meanwhile. 12 bytes a record, 30 at most waiting.
  Start(/*interval_ms=*/60000, /*max_pending_bytes=*/30);
  committer_->Publish(p_, Records(1, 2), stop_);  // 24 bytes: taken
  committer_->Publish(p_, Records(3, 3), stop_);  // 36 bytes: taken, as the 24 before were under 30
  EXPECT_EQ(committer_->pending(), 3u);
  std::atomic<bool> handed_over{false};
  std::thread loop([&] {
    committer_->Publish(p_, Records(4, 4), stop_);  // waits: 36 bytes wait already
    handed_over = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(handed_over);
  EXPECT_EQ(committer_->pending(), 3u);
  // A drain commits what waits; the bytes go with it and the fourth record is taken.
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  loop.join();
  EXPECT_TRUE(handed_over);
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  EXPECT_EQ(committer_->TakePublished(), (std::map<PartitionId, uint64_t>{{p_, 4}}));
  EXPECT_EQ(Committed("alerts").size(), 4u);
}

TEST_F(CommitterTest, ARecordTheBrokerRefusesGoesAsADeadLetterUnderItsNumber) {
  Start(/*interval_ms=*/500);  // the record goes out (linger 1 ms) well before the commit's progress record
  rd_kafka_mock_push_request_errors(kafka_.cluster(), kProduce, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  committer_->Publish(p_, Records(1, 1), stop_);
  // The record goes into the open transaction at once (linger 1 ms); the commit, with its progress record, comes
  // at the interval. Let the record's produce request be the one the broker refuses before asking for the commit.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(60)).ok());
  committer_->Publish(p_, Records(2, 2), stop_);
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(60)).ok());
  EXPECT_EQ(committer_->TakePublished(), (std::map<PartitionId, uint64_t>{{p_, 2}}));
  EXPECT_THAT(Committed("alerts"), ::testing::ElementsAre("V1=transition 2"));
  EXPECT_THAT(Committed("dlq"), ::testing::ElementsAre("V1=transition 1"));
}

TEST_F(CommitterTest, AFencedProducerWaitsToBeRebuiltThenPublishesEverythingHandedOverAgain) {
  Start();
  rd_kafka_mock_push_request_errors(kafka_.cluster(), kEndTxn, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
  committer_->Publish(p_, Records(1, 2), stop_);
  EXPECT_FALSE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  ASSERT_TRUE(committer_->Fatal());
  EXPECT_TRUE(committer_->TakePublished().empty());
  // As the loop does: forget, rebuild the producer (which settles what the old one left), hand over again.
  committer_->Reset();
  ASSERT_TRUE(committer_->Recreate().ok());
  EXPECT_FALSE(committer_->Fatal());
  committer_->Announce(p_, 0);
  committer_->Publish(p_, Records(1, 3), stop_);
  ASSERT_TRUE(committer_->Drain(stop_, std::chrono::seconds(30)).ok());
  EXPECT_EQ(committer_->TakePublished(), (std::map<PartitionId, uint64_t>{{p_, 3}}));
  // The fenced transaction's two records come first: a real broker aborts that transaction when the new producer
  // initialises (read_committed consumers never see them: tests/integration and chaos check that), but
  // librdkafka's mock cluster does not filter aborted records. Then the new transaction, each record once.
  EXPECT_THAT(Committed("alerts"), ::testing::ElementsAre("V1=transition 1", "V1=transition 2", "V1=transition 1",
                                                          "V1=transition 2", "V1=transition 3"));
  EXPECT_EQ(Progress(), 3u);
}

}  // namespace
}  // namespace vigil
