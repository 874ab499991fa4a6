// Hostile records on the events topic, through the partition pipeline vigild
// runs: each becomes a dead letter with its reason (never a crash, never a
// silent drop), the good events around it are applied, and a flood of one
// victim's events is taken in order. docs/reliability.md lists the behaviour.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/escalation/pipeline/partition.h"
#include "tests/testing/signing.h"
#include "tests/testing/builders.h"
#include "tests/testing/test_dir.h"

namespace vigil {
namespace {

using ::testing::HasSubstr;
using testing::Ev;

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

class HostileInputTest : public ::testing::Test {
 protected:
  HostileInputTest() : engine_(RulesConfig::Defaults()) {
    store_ = *Store::Open(dir_.string());
    pipeline_ = *PartitionPipeline::Load(store_.get(), &engine_, &topics_, &admission_, 0);
  }

  // Applies the record between two good calls and returns the dead-letter reason (empty: none).
  std::string Reason(const std::string& key, const std::string& value) {
    const v1::Event good = Ev(absl::StrCat("good-", offset_)).At("09:00").Call(false);
    pipeline_->Apply(offset_++, "V1", good.SerializeAsString());
    pipeline_->Apply(offset_++, key, value);
    EXPECT_TRUE(pipeline_->Commit().ok());
    std::string reason;
    const std::vector<state::OutboxRecord> outbox = *pipeline_->Unpublished();
    for (const auto& r : outbox) {
      if (r.topic() == topics_.dead_letters && r.headers().at(kHeaderOffset) == absl::StrCat(offset_ - 1)) {
        reason = r.headers().at(kHeaderReason);
      }
    }
    return reason;
  }
  std::string Reason(const v1::Event& e) { return Reason(e.victim_id(), e.SerializeAsString()); }

  testing::TestDir dir_{"hostile"};
  Engine engine_;
  Topics topics_;
  const AdmissionPolicy admission_ = testing::TestAdmission();
  std::unique_ptr<Store> store_;
  std::unique_ptr<PartitionPipeline> pipeline_;
  int64_t offset_ = 0;
};

TEST_F(HostileInputTest, MalformedProtobufIsDeadLettered) {
  const v1::Event event = Ev("c1").Call(false);
  const std::string good = event.SerializeAsString();
  EXPECT_THAT(Reason("V1", good.substr(0, good.size() - 3)), HasSubstr("not a vigil.v1.Event"));  // truncated
  // Unknown groups nested 500 deep: past protobuf's recursion limit.
  std::string nested;
  for (int i = 0; i < 500; ++i) nested += Varint((1000 << 3) | 3);
  for (int i = 0; i < 500; ++i) nested += Varint((1000 << 3) | 4);
  EXPECT_THAT(Reason("V1", nested), HasSubstr("not a vigil.v1.Event"));
  EXPECT_THAT(Reason("V1", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11)),
              HasSubstr("not a vigil.v1.Event"));
  EXPECT_THAT(Reason("V1", ""), HasSubstr("INVALID_ARGUMENT"));  // an empty record is an empty event: no ids
}

TEST_F(HostileInputTest, InvalidUtf8IsDeadLettered) {
  v1::Event e = Ev("c-utf8").Call(false);
  e.set_source("cad\xc3\x28");  // proto3 strings must be UTF-8: the record does not parse
  EXPECT_THAT(Reason(e), HasSubstr("not a vigil.v1.Event"));
}

TEST_F(HostileInputTest, UnknownEnumValuesAreDeadLettered) {
  v1::Event e = Ev("g-99").Graded(v1::IncidentGraded::IMMEDIATE);
  e.mutable_incident_graded()->set_grade(static_cast<v1::IncidentGraded::Grade>(99));
  EXPECT_THAT(Reason(e), HasSubstr("incident_graded.grade: unknown value 99"));
}

TEST_F(HostileInputTest, MissingOrEmptyIdsAreDeadLettered) {
  v1::Event no_id = Ev("x").Call(false);
  no_id.clear_event_id();
  EXPECT_THAT(Reason(no_id), HasSubstr("event_id: required"));
  v1::Event no_victim = Ev("y").Call(false);
  no_victim.clear_victim_id();
  EXPECT_THAT(Reason("", no_victim.SerializeAsString()), HasSubstr("victim_id: required"));
  v1::Event long_id = Ev(std::string(5000, 'e')).Call(false);
  EXPECT_THAT(Reason(long_id), HasSubstr("longer than"));
}

TEST_F(HostileInputTest, TimestampsFarInThePastOrFutureAreDeadLettered) {
  v1::Event future = Ev("f1").Call(false);
  future.mutable_occurred_at()->set_seconds(5'000'000'000);  // 2128
  EXPECT_THAT(Reason(future), HasSubstr("occurred_at: outside 1970-01-01 to 2099-12-31"));
  v1::Event past = Ev("p1").Call(false);
  past.mutable_occurred_at()->set_seconds(-86400);
  EXPECT_THAT(Reason(past), HasSubstr("occurred_at: outside"));
  // Neither moved the partition's clock: no deadline fired early.
  EXPECT_LT(pipeline_->stream_time(), int64_t{4'102'444'800} * 1'000'000);
}

TEST_F(HostileInputTest, OversizedTextIsDeadLettered) {
  v1::Event e = Ev("big").Call(false);
  e.set_source(std::string(2000, 'x'));
  EXPECT_THAT(Reason(e), HasSubstr("longer than"));
  e.set_source(std::string(1 << 20, 'x'));  // over the event size limit: refused before it is parsed
  EXPECT_THAT(Reason(e), HasSubstr("RESOURCE_EXHAUSTED: an event of 1048619 bytes; at most 65536"));
}

TEST_F(HostileInputTest, TheSameEventIdWithOtherContentIsDeadLetteredAndTheFirstKept) {
  EXPECT_EQ(Reason(Ev("same").At("09:10").Call(false)), "");
  EXPECT_THAT(Reason(Ev("same").At("09:20").Call(true)), HasSubstr("already applied with different content"));
  EXPECT_EQ(Reason(Ev("same").At("09:10").Call(false)), "");  // the same content again: a redelivery, applied once
}

TEST_F(HostileInputTest, AFloodOfOneVictimsEventsIsTakenInOrder) {
  // 1,000: a flood costs more per event as the victim's history and its alert's evidence grow
  // (docs/reliability.md gives the figures), and the suite must stay fast.
  constexpr int kFlood = 1000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kFlood; ++i) {
    v1::Event e = Ev(absl::StrCat("flood-", i)).Call(false);
    e.mutable_occurred_at()->set_seconds(1'704'100'000 + i);
    pipeline_->Apply(offset_++, "V1", e.SerializeAsString());
    if (i % 1000 == 999) {
      ASSERT_TRUE(pipeline_->Commit().ok());
    }
  }
  ASSERT_TRUE(pipeline_->Commit().ok());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t dead = 0, alerts = 0;
  const std::vector<state::OutboxRecord> outbox = *pipeline_->Unpublished();
  for (const auto& r : outbox) (r.topic() == topics_.dead_letters ? dead : alerts)++;
  EXPECT_EQ(dead, 0u);
  EXPECT_GT(alerts, 0u);  // repeat calls in a day: escalated, not dropped
  EXPECT_EQ(pipeline_->next_offset(), kFlood);
  std::printf("  flood: %d events of one victim in %.2f s (%.0f/s)\n", kFlood, seconds, kFlood / seconds);
}

// --- what only vigild writes, events from the future, bounded dead letters (issue 10) ------------------

// The dead letter of the record at `offset`, if any.
std::optional<state::OutboxRecord> DeadLetterAt(const PartitionPipeline& p, const Topics& topics, int64_t offset) {
  const std::vector<state::OutboxRecord> outbox = *p.Unpublished();
  for (const auto& r : outbox) {
    if (r.topic() == topics.dead_letters && r.headers().at(kHeaderOffset) == absl::StrCat(offset)) return r;
  }
  return std::nullopt;
}

TEST_F(HostileInputTest, AnUnsignedAcknowledgementIsDeadLetteredAndSilencesNothing) {
  // An alert: two calls in a day.
  ASSERT_EQ(Reason(Ev("c1").At("09:00").Call(false)), "");
  ASSERT_EQ(Reason(Ev("c2").At("09:05").Call(false)), "");
  std::string alert_id;
  const std::vector<state::OutboxRecord> outbox = *pipeline_->Unpublished();
  for (const auto& r : outbox) {
    v1::Alert a;
    if (r.topic() == topics_.alerts && a.ParseFromString(r.value())) alert_id = a.alert_id();
  }
  ASSERT_FALSE(alert_id.empty());
  v1::Event ack = Ev("forged").At("09:06");
  ack.set_source("vigil-api");
  ack.mutable_escalation_acknowledged()->set_alert_id(alert_id);
  ack.mutable_escalation_acknowledged()->set_acknowledged_by("Supt-Forged");
  const std::string bytes = ack.SerializeAsString();
  // No signature, a signature by another key, and the right one.
  pipeline_->Apply({.offset = 100, .key = "V1", .value = bytes});
  pipeline_->Apply({.offset = 101, .key = "V1", .value = bytes, .signature = Signer(std::string(32, 'x')).Sign(bytes)});
  ASSERT_TRUE(pipeline_->Commit().ok());
  for (int64_t offset : {100, 101}) {
    auto letter = DeadLetterAt(*pipeline_, topics_, offset);
    ASSERT_TRUE(letter.has_value()) << offset;
    EXPECT_THAT(letter->headers().at(kHeaderReason),
                HasSubstr("PERMISSION_DENIED: escalation_acknowledged: written by vigild only"));
  }
  pipeline_->Apply({.offset = 102, .key = "V1", .value = bytes, .signature = testing::TestSigner().Sign(bytes)});
  ASSERT_TRUE(pipeline_->Commit().ok());
  EXPECT_FALSE(DeadLetterAt(*pipeline_, topics_, 102).has_value());
}

TEST_F(HostileInputTest, AnUnsignedClockTickIsDeadLetteredAndMovesNoClock) {
  v1::Event tick;
  tick.set_event_id("tick-2099");
  tick.mutable_occurred_at()->set_seconds(4'070'908'800);  // 2099
  tick.mutable_clock_tick();
  const Micros before = pipeline_->stream_time();
  EXPECT_THAT(Reason(kClockKey, tick.SerializeAsString()), HasSubstr("PERMISSION_DENIED: clock_tick"));
  EXPECT_LT(pipeline_->stream_time(), int64_t{4'070'908'800} * 1'000'000);
  EXPECT_GE(pipeline_->stream_time(), before);
}

TEST_F(HostileInputTest, AnEventFromTheFutureIsDeadLetteredAndMovesNoClock) {
  const v1::Event now_event = Ev("a1").At("10:00").ArrestRequested("R1");  // due at 11:00
  const int64_t record_ms = testing::T("10:00") / 1000;
  pipeline_->Apply({.offset = 0, .key = "V1", .value = now_event.SerializeAsString(), .timestamp_ms = record_ms});
  // Dated 2099 by a careless source, on a record the broker stamped at 10:01.
  v1::Event future = Ev("f1").Victim("V2").At("10:01").Call(false);
  future.mutable_occurred_at()->set_seconds(4'070'908'800);
  pipeline_->Apply({.offset = 1, .key = "V2", .value = future.SerializeAsString(), .timestamp_ms = record_ms + 60'000});
  // Within the tolerance (5 min) of its record: accepted.
  const v1::Event soon = Ev("s1").Victim("V3").At("10:05").Call(false);
  pipeline_->Apply({.offset = 2, .key = "V3", .value = soon.SerializeAsString(), .timestamp_ms = record_ms + 60'000});
  ASSERT_TRUE(pipeline_->Commit().ok());
  auto letter = DeadLetterAt(*pipeline_, topics_, 1);
  ASSERT_TRUE(letter.has_value());
  EXPECT_THAT(letter->headers().at(kHeaderReason), HasSubstr("OUT_OF_RANGE: occurred_at 2099-01-01"));
  EXPECT_FALSE(DeadLetterAt(*pipeline_, topics_, 2).has_value());
  EXPECT_EQ(pipeline_->stream_time(), testing::T("10:05"));
  const std::vector<state::OutboxRecord> outbox = *pipeline_->Unpublished();
  for (const auto& r : outbox) EXPECT_NE(r.topic(), topics_.alerts) << "nothing fired early";
}

TEST_F(HostileInputTest, ADeadLetterAlwaysFitsInAKafkaMessage) {
  const std::string poison(999'900, 'P');
  const std::string key(2'000'000, 'K');
  pipeline_->Apply({.offset = 7, .key = key, .value = poison});
  ASSERT_TRUE(pipeline_->Commit().ok());
  auto letter = DeadLetterAt(*pipeline_, topics_, 7);
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->value().size(), kMaxDeadLetterPayload);
  EXPECT_LE(letter->key().size(), kMaxDeadLetterKey + 3);
  EXPECT_EQ(letter->headers().at(kHeaderTruncated), "true");
  EXPECT_EQ(letter->headers().at(kHeaderValueBytes), "999900");
  EXPECT_EQ(letter->headers().at(kHeaderValueSha256), Sha256Hex(poison));
  EXPECT_LT(letter->ByteSizeLong(), 100'000u);
}

TEST_F(HostileInputTest, UnknownFieldsAreDroppedBeforeTheTimelineStoresTheEvent) {
  // Applies and commits one record, then reads back V1's timeline as stored.
  auto apply_and_read = [&](int64_t offset, const std::string& value) {
    pipeline_->Apply({.offset = offset, .key = "V1", .value = value});
    EXPECT_TRUE(pipeline_->Commit().ok());
    std::vector<std::string> stored;
    EXPECT_TRUE(store_->Scan(TimelinePrefix(0, "V1"), [&](absl::string_view, absl::string_view v) {
      stored.emplace_back(v);
      return true;
    }).ok());
    return stored;
  };
  const v1::Event e = Ev("u1").At("09:00").Call(false);
  const std::string with_unknown = e.SerializeAsString() + "\xfa\x06" + Varint(3) + "abc";  // field 111
  std::vector<std::string> stored = apply_and_read(0, with_unknown);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0], e.SerializeAsString());
  // Nested in the payload too (field 99 of call_received, appended to its bytes).
  v1::Event nested_event = Ev("u2").At("09:10").Call(false);
  v1::CallReceived call = nested_event.call_received();
  const std::string call_bytes = call.SerializeAsString() + "\x9a\x06" + Varint(3) + "xyz";
  nested_event.clear_call_received();
  const std::string nested = nested_event.SerializeAsString() + "\x52" + Varint(call_bytes.size()) + call_bytes;
  stored = apply_and_read(1, nested);
  ASSERT_EQ(stored.size(), 2u);
  v1::Event kept;
  ASSERT_TRUE(kept.ParseFromString(stored[1]));
  EXPECT_EQ(kept.call_received().GetReflection()->GetUnknownFields(kept.call_received()).field_count(), 0);
  EXPECT_EQ(stored[1].find("xyz"), std::string::npos);
  // And in a message beside the payload (field 99 of occurred_at, a Timestamp, field 3 of the event).
  v1::Event stamped_event = Ev("u3").At("09:20").Call(false);
  const std::string stamp_bytes = stamped_event.occurred_at().SerializeAsString() + "\x9a\x06" + Varint(3) + "pqr";
  stamped_event.clear_occurred_at();
  const std::string stamped = stamped_event.SerializeAsString() + "\x1a" + Varint(stamp_bytes.size()) + stamp_bytes;
  stored = apply_and_read(2, stamped);
  ASSERT_EQ(stored.size(), 3u);
  ASSERT_TRUE(kept.ParseFromString(stored[2]));
  EXPECT_EQ(kept.event_id(), "u3");
  EXPECT_EQ(kept.occurred_at().GetReflection()->GetUnknownFields(kept.occurred_at()).field_count(), 0);
  EXPECT_EQ(stored[2].find("pqr"), std::string::npos);
}

TEST_F(HostileInputTest, AnOccurredAtFarOutOfRangeOverflowsNothing) {
  topics_.source_quiet_after = 30 * kMicrosPerDay;  // the source's times are watched too
  v1::Event e = Ev("far").Call(false);
  e.mutable_occurred_at()->set_seconds(INT64_MAX);
  pipeline_->Apply({.offset = 0, .key = "V1", .value = e.SerializeAsString(), .timestamp_ms = INT64_MAX});
  e.mutable_occurred_at()->set_seconds(INT64_MIN);
  pipeline_->Apply({.offset = 1, .key = "V1", .value = e.SerializeAsString(), .timestamp_ms = 0});
  ASSERT_TRUE(pipeline_->Commit().ok());
  EXPECT_THAT(DeadLetterAt(*pipeline_, topics_, 0)->headers().at(kHeaderReason), HasSubstr("occurred_at: outside"));
  EXPECT_THAT(DeadLetterAt(*pipeline_, topics_, 1)->headers().at(kHeaderReason), HasSubstr("occurred_at: outside"));
}

}  // namespace
}  // namespace vigil
