// The partition pipeline against a real RocksDB in a temp directory (no Kafka):
// what one Commit stores, what a reload sees, and why outbox numbers let a
// rebuild skip what was published.
#include "services/escalation/pipeline/partition.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/signing.h"
#include "tests/testing/builders.h"
#include "tests/testing/test_dir.h"
#include "common/jsonl.h"
#include "services/escalation/storage/victim_store.h"
#include "services/synthetic/synthetic_stream.h"

namespace vigil {
namespace {

using testing::Ev;

class PartitionTest : public ::testing::Test {
 protected:
  PartitionTest() : engine_(RulesConfig::Defaults()) {}

  std::unique_ptr<Store> OpenStore(const std::string& name = "db") {
    auto store = Store::Open((dir_ / name).string());
    EXPECT_TRUE(store.ok()) << store.status();
    return std::move(*store);
  }
  std::unique_ptr<PartitionPipeline> Load(Store* store) {
    auto p = PartitionPipeline::Load(store, &engine_, &topics_, &admission_, 3);
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }
  static std::string Bytes(const v1::Event& e) { return e.SerializeAsString(); }

  // The Lancashire-like day as records: (offset, key, bytes).
  std::vector<v1::Event> Day() {
    return {Ev("c1").At("09:00").Call(false), Ev("c2").At("10:00").Call(false),
            Ev("a1").At("10:05").ArrestRequested("R1"), Ev("x").Victim("V2").At("12:00").Call(false)};
  }

  testing::TestDir dir_{"partition"};
  Engine engine_;
  Topics topics_;
  const AdmissionPolicy admission_ = testing::TestAdmission();
};

TEST_F(PartitionTest, CommitStoresStateOffsetAndOutboxTogether) {
  auto store = OpenStore();
  auto p = Load(store.get());
  int64_t offset = 0;
  for (const auto& e : Day()) p->Apply(offset++, e.victim_id(), Bytes(e));
  ASSERT_TRUE(p->Commit().ok());
  auto outbox = p->Unpublished();
  ASSERT_TRUE(outbox.ok());
  // By 12:00: repeat-calls fires and climbs twice; arrest-overdue fires and climbs twice.
  ASSERT_EQ(outbox->size(), 6u);
  for (size_t i = 0; i < outbox->size(); ++i) {
    EXPECT_EQ((*outbox)[i].seq(), i + 1);
    EXPECT_EQ((*outbox)[i].topic(), "vigil.alerts");
    EXPECT_EQ((*outbox)[i].key(), "V1");
  }
  const std::string digest = *p->StateDigest();

  auto reloaded = Load(store.get());
  EXPECT_EQ(reloaded->next_offset(), 4);
  EXPECT_EQ(reloaded->outbox_seq(), 6u);
  EXPECT_EQ(*reloaded->StateDigest(), digest);
  EXPECT_EQ(reloaded->Unpublished()->size(), 6u);
}

TEST_F(PartitionTest, WhatIsNotCommittedIsNotThere) {
  auto store = OpenStore();
  {
    auto p = Load(store.get());
    p->Apply(0, "V1", Bytes(Ev("c1").At("09:00").Call(false)));
    ASSERT_TRUE(p->Commit().ok());
    p->Apply(1, "V1", Bytes(Ev("c2").At("10:00").Call(false)));  // the process dies before Commit
  }
  auto p = Load(store.get());
  EXPECT_EQ(p->next_offset(), 1);
  EXPECT_EQ(p->Unpublished()->size(), 0u);
  // V1 waits for no deadline, so it is not held until its next event; its stored state has the one call.
  EXPECT_FALSE(p->processor().FindVictim("V1").has_value());
  auto stored = FindVictim(*store, PartitionKeys(3, PartitionKind::kEvents), "V1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->calls_size(), 1);
}

TEST_F(PartitionTest, ARebuildNumbersTheOutboxTheSameAndSkipsWhatWasPublished) {
  auto first_store = OpenStore("first");
  auto first = Load(first_store.get());
  int64_t offset = 0;
  for (const auto& e : Day()) first->Apply(offset++, e.victim_id(), Bytes(e));
  ASSERT_TRUE(first->Commit().ok());
  const auto published = *first->Unpublished();
  ASSERT_TRUE(first->MarkPublished(published.back().seq()).ok());
  EXPECT_TRUE(first->Unpublished()->empty());

  // A new, empty store replays the same log: the same records with the same numbers.
  auto second_store = OpenStore("second");
  auto second = Load(second_store.get());
  ASSERT_TRUE(second->MarkPublished(published.back().seq()).ok());  // what the progress topic says
  offset = 0;
  for (const auto& e : Day()) second->Apply(offset++, e.victim_id(), Bytes(e));
  ASSERT_TRUE(second->Commit().ok());
  EXPECT_TRUE(second->Unpublished()->empty()) << "a rebuild must not publish again";
  EXPECT_EQ(*second->StateDigest(), *first->StateDigest());
  EXPECT_EQ(second->outbox_seq(), first->outbox_seq());
}

TEST_F(PartitionTest, BadRecordsBecomeDeadLettersWithReasonAndSource) {
  auto store = OpenStore();
  auto p = Load(store.get());
  p->Apply(7, "V1", "not protobuf at all \xff");
  v1::Event invalid = Ev("g1").Graded(v1::IncidentGraded::GRADE_UNSPECIFIED);
  p->Apply(8, "V1", Bytes(invalid));
  p->Apply(9, "V9", Bytes(Ev("c1").Call(false)));  // key is not the victim
  p->Apply(10, "V1", Bytes(Ev("c1").At("09:00").Call(false)));
  p->Apply(11, "V1", Bytes(Ev("c1").At("09:30").Call(false)));  // same id, other content
  v1::Event tick;
  tick.mutable_clock_tick();
  p->Apply(12, "V1", Bytes(tick));  // a tick on a victim's key
  ASSERT_TRUE(p->Commit().ok());
  auto outbox = *p->Unpublished();
  ASSERT_EQ(outbox.size(), 5u);
  std::vector<std::string> reasons;
  for (const auto& r : outbox) {
    EXPECT_EQ(r.topic(), "vigil.events.dlq");
    EXPECT_EQ(r.headers().at(kHeaderTopic), "vigil.events");
    EXPECT_EQ(r.headers().at(kHeaderPartition), "3");
    reasons.push_back(r.headers().at(kHeaderReason));
  }
  EXPECT_EQ(outbox[0].headers().at(kHeaderOffset), "7");
  EXPECT_EQ(outbox[0].value(), "not protobuf at all \xff");
  EXPECT_THAT(reasons[0], ::testing::HasSubstr("not a vigil.v1.Event"));
  EXPECT_THAT(reasons[1], ::testing::HasSubstr("incident_graded.grade: required"));
  EXPECT_THAT(reasons[2], ::testing::HasSubstr("key is not the event's victim_id"));
  EXPECT_THAT(reasons[3], ::testing::HasSubstr("already applied with different content"));
  EXPECT_THAT(reasons[4], ::testing::HasSubstr("clock_tick"));
  EXPECT_EQ(p->next_offset(), 13);
}

TEST_F(PartitionTest, ClockTicksFireDeadlinesAndRoutesCopyAlerts) {
  topics_.routes = {"SUPERVISOR=sup.alerts", "force:lancashire=lancs.alerts", "force:wiltshire=wilts.alerts"};
  auto store = OpenStore();
  auto p = Load(store.get());
  p->Apply(0, "V1", Bytes(Ev("a1").At("10:00").ArrestRequested("R1")));
  v1::Event tick;
  tick.set_event_id("tick");
  *tick.mutable_occurred_at() = ToTimestamp(testing::T("11:00:01"));  // past arrest-overdue's deadline (11:00)
  tick.mutable_clock_tick();
  const std::string bytes = Bytes(tick);
  const std::string signature = testing::TestSigner().Sign(bytes);
  p->Apply({.offset = 1, .key = kClockKey, .value = bytes, .signature = signature});
  ASSERT_TRUE(p->Commit().ok());
  std::vector<std::string> topics;
  const auto outbox = *p->Unpublished();
  for (const auto& r : outbox) topics.push_back(r.topic());
  EXPECT_THAT(topics, ::testing::ElementsAre("vigil.alerts", "sup.alerts", "lancs.alerts"));
}

TEST_F(PartitionTest, AlertsInJsonAreTheStoredAlertsInTheProto3JsonMappingOnEveryRoute) {
  topics_.alerts_format = Topics::AlertFormat::kJson;
  topics_.routes = {"SUPERVISOR=sup.alerts"};
  auto store = OpenStore();
  auto p = Load(store.get());
  int64_t offset = 0;
  for (const auto& e : Day()) p->Apply(offset++, e.victim_id(), Bytes(e));
  ASSERT_TRUE(p->Commit().ok());
  const auto outbox = *p->Unpublished();
  ASSERT_EQ(outbox.size(), 8u);  // six transitions, two of them (the firings) routed to the supervisors too
  for (const auto& r : outbox) {
    ASSERT_EQ(r.value().front(), '{') << r.value();
    v1::Alert alert;
    ASSERT_TRUE(ParseJsonLine(r.value(), &alert).ok()) << r.value();  // strict: no field outside vigil.v1.Alert
    // The same alert as the store keeps (in protobuf), and as a protobuf reader of the topic would get.
    auto stored = store->Get(PartitionKeys(3, PartitionKind::kEvents).Alert(alert.alert_id()));
    ASSERT_TRUE(stored.ok() && stored->has_value());
    v1::Alert latest;
    ASSERT_TRUE(latest.ParseFromString(**stored));
    EXPECT_EQ(alert.alert_id(), latest.alert_id());
    EXPECT_EQ(alert.victim_id(), "V1");
    EXPECT_FALSE(alert.rule().empty());
    EXPECT_GT(alert.evidence_event_ids_size(), 0);
    v1::Alert again;
    ASSERT_TRUE(ParseProtobufOrJson(r.value(), &again).ok());
    EXPECT_EQ(again.SerializeAsString(), alert.SerializeAsString());
  }
  // Replayed, the JSON is the same, byte for byte.
  auto replay_store = OpenStore("replay");
  auto replayed = Load(replay_store.get());
  offset = 0;
  for (const auto& e : Day()) replayed->Apply(offset++, e.victim_id(), Bytes(e));
  ASSERT_TRUE(replayed->Commit().ok());
  const auto again = *replayed->Unpublished();
  ASSERT_EQ(again.size(), outbox.size());
  for (size_t i = 0; i < outbox.size(); ++i) EXPECT_EQ(again[i].value(), outbox[i].value());
}

// An alert transition's bytes are stored under its history and as its latest (a/) only: its outbox record and
// its time-index entry hold none of them, and reading the outbox back gives what was handed over in memory.
TEST_F(PartitionTest, AlertsAreStoredOnceOutsideTheirHistoryAndLatestAndReadBackWhole) {
  for (const auto format : {Topics::AlertFormat::kProtobuf, Topics::AlertFormat::kJson}) {
    SCOPED_TRACE(format == Topics::AlertFormat::kJson ? "json" : "protobuf");
    topics_.alerts_format = format;
    topics_.routes = {"SUPERVISOR=sup.alerts"};
    auto store = OpenStore(format == Topics::AlertFormat::kJson ? "json" : "protobuf");
    auto p = Load(store.get());
    p->KeepCommittedOutbox();
    int64_t offset = 0;
    for (const auto& e : Day()) p->Apply(offset++, e.victim_id(), Bytes(e));
    p->Apply(offset++, "V1", "not an event");  // a dead letter keeps its value
    ASSERT_TRUE(p->Commit().ok());
    const std::vector<state::OutboxRecord> handed = p->TakeCommittedOutbox();
    ASSERT_EQ(handed.size(), 9u);  // six transitions, the two firings routed too, one dead letter

    const PartitionKeys keys(3, PartitionKind::kEvents);
    std::vector<state::OutboxRecord> stored;
    ASSERT_TRUE(store->Scan(keys.Outboxes(), [&](absl::string_view, absl::string_view value) {
      stored.emplace_back().ParseFromArray(value.data(), static_cast<int>(value.size()));
      return true;
    }).ok());
    ASSERT_EQ(stored.size(), handed.size());
    for (size_t i = 0; i < stored.size(); ++i) {
      if (handed[i].topic() == "vigil.events.dlq") {
        EXPECT_EQ(stored[i].value(), handed[i].value());
        EXPECT_TRUE(stored[i].alert_id().empty());
        continue;
      }
      EXPECT_TRUE(stored[i].value().empty()) << "record " << i + 1 << " holds the alert's bytes again";
      EXPECT_EQ(stored[i].alert_id(), handed[i].alert_id());
      EXPECT_GT(stored[i].alert_revision(), 0u);
    }

    size_t entries = 0;
    ASSERT_TRUE(store->Scan(keys.AlertsByTime(), [&](absl::string_view, absl::string_view value) {
      v1::Alert entry;
      EXPECT_TRUE(entry.ParseFromArray(value.data(), static_cast<int>(value.size())));
      EXPECT_EQ(entry.victim_id(), "V1");
      EXPECT_FALSE(entry.rule().empty());
      EXPECT_TRUE(entry.reason().empty() && entry.evidence_event_ids().empty()) << "the index holds the whole alert";
      ++entries;
      return true;
    }).ok());
    EXPECT_EQ(entries, 2u);  // one per alert, at its latest transition

    // The victim's head names its alerts by id only; read back, each is its latest transition again.
    state::VictimState head;
    ASSERT_TRUE(head.ParseFromString(**store->Get(keys.Victim("V1"))));
    ASSERT_EQ(head.alerts_size(), 2);
    for (const state::AlertRecord& r : head.alerts()) {
      EXPECT_FALSE(r.alert().alert_id().empty());
      EXPECT_TRUE(r.alert().reason().empty() && r.alert().evidence_event_ids().empty() && !r.alert().has_at())
          << "the head holds the alert's bytes again";
    }
    // Both alerts climbed within the batch: each one's latest (a/) is its last transition handed over, and its
    // history (h/) holds every one.
    std::map<std::string, v1::Alert> last;
    size_t transitions = 0;
    for (const state::OutboxRecord& r : handed) {
      if (r.topic() != "vigil.alerts") continue;
      v1::Alert a;
      ASSERT_TRUE(ParseProtobufOrJson(r.value(), &a).ok());
      last[a.alert_id()] = a;
      ++transitions;
    }
    ASSERT_EQ(last.size(), 2u);
    size_t history = 0;
    for (const auto& [id, a] : last) {
      EXPECT_EQ(**store->Get(keys.Alert(id)), DeterministicBytes(a)) << id;
      EXPECT_GT(a.revision(), 1u) << id << " did not move twice in the batch";
      ASSERT_TRUE(store->Scan(keys.AlertTransitions(id), [&](absl::string_view, absl::string_view) {
        ++history;
        return true;
      }).ok());
    }
    EXPECT_EQ(history, transitions);

    auto whole = FindVictim(*store, keys, "V1");
    ASSERT_TRUE(whole.ok() && whole->has_value()) << whole.status();
    const std::optional<state::VictimState> held = p->processor().FindVictim("V1");
    ASSERT_TRUE(held.has_value());
    EXPECT_EQ(DeterministicBytes(**whole), DeterministicBytes(*held));
    rocksdb::WriteBatch lose;
    lose.Delete(keys.Alert(head.alerts(0).alert().alert_id()));
    ASSERT_TRUE(store->Write(&lose, Store::Durability::kProcess).ok());
    EXPECT_EQ(FindVictim(*store, keys, "V1").status().code(), absl::StatusCode::kDataLoss)
        << "an alert the head names is missing";

    const std::vector<state::OutboxRecord> read_back = *Load(store.get())->Unpublished();
    ASSERT_EQ(read_back.size(), handed.size());
    for (size_t i = 0; i < read_back.size(); ++i) {
      EXPECT_EQ(read_back[i].seq(), handed[i].seq());
      EXPECT_EQ(read_back[i].topic(), handed[i].topic());
      EXPECT_EQ(read_back[i].key(), handed[i].key());
      EXPECT_EQ(read_back[i].value(), handed[i].value()) << "record " << i + 1;
    }
  }
}

// What the source-alerts topic got, as "STATE source at last_event_at", in order.
std::vector<std::string> SourceAlerts(const std::vector<state::OutboxRecord>& outbox) {
  std::vector<std::string> out;
  for (const auto& r : outbox) {
    if (r.topic() != "vigil.source-alerts") continue;
    v1::SourceAlert a;
    EXPECT_TRUE(a.ParseFromString(r.value()));
    EXPECT_EQ(r.key(), a.source());
    out.push_back(absl::StrCat(v1::AlertState_Name(a.state()), " ", a.source(), " ", FormatRfc3339(ToMicros(a.at())),
                               " last ", FormatRfc3339(ToMicros(a.last_event_at()))));
  }
  return out;
}

TEST_F(PartitionTest, ASourceGoneQuietIsReportedByTheTicksAndAgainWhenItReturns) {
  topics_.source_quiet_after = kMicrosPerHour;
  auto store = OpenStore();
  auto p = Load(store.get());
  int64_t offset = 0;
  auto tick = [&](PartitionPipeline& pipeline, const std::string& at) {
    v1::Event t;
    t.set_event_id("tick-" + at);
    t.set_source("vigild");
    *t.mutable_occurred_at() = ToTimestamp(testing::T(at));
    t.mutable_clock_tick();
    const std::string bytes = Bytes(t);
    pipeline.Apply({.offset = offset++, .key = kClockKey, .value = bytes,
                    .timestamp_ms = testing::T(at) / 1000, .signature = testing::TestSigner().Sign(bytes)});
  };
  auto event = [&](PartitionPipeline& pipeline, v1::Event e, const std::string& taken_at) {
    const std::string bytes = Bytes(e);
    pipeline.Apply({.offset = offset++, .key = e.victim_id(), .value = bytes,
                    .timestamp_ms = testing::T(taken_at) / 1000});
  };
  v1::Event from_cad = Ev("c1").At("09:00").Call(false);
  from_cad.set_source("cad");
  v1::Event from_rms = Ev("c2").At("09:00").Call(false);
  from_rms.set_source("rms");
  // The broker's time, not the event's, says when a source sent: cad's (about 09:00) arrives at 10:00.
  event(*p, from_cad, "10:00");
  event(*p, from_rms, "10:20");
  tick(*p, "10:59");
  tick(*p, "11:00");  // cad: an hour since it sent
  tick(*p, "11:30");  // rms too; cad is not reported twice
  ASSERT_TRUE(p->Commit().ok());
  EXPECT_THAT(SourceAlerts(*p->Unpublished()),
              ::testing::ElementsAre("FIRING cad 2024-09-07T11:00:00Z last 2024-09-07T10:00:00Z",
                                     "FIRING rms 2024-09-07T11:20:00Z last 2024-09-07T10:20:00Z"));
  // What was reported is stored: after a restart, the next tick reports nothing again; cad's return does.
  auto reloaded = Load(store.get());
  const size_t before = reloaded->Unpublished()->size();
  tick(*reloaded, "12:00");
  v1::Event again = Ev("c3").At("12:05").Call(false);
  again.set_source("cad");
  event(*reloaded, again, "12:06");
  ASSERT_TRUE(reloaded->Commit().ok());
  const auto outbox = *reloaded->Unpublished();
  EXPECT_THAT(SourceAlerts({outbox.begin() + before, outbox.end()}),
              ::testing::ElementsAre("RESOLVED cad 2024-09-07T12:06:00Z last 2024-09-07T10:00:00Z"));
}

TEST_F(PartitionTest, SuspectViewThroughItsOwnTopic) {
  topics_.suspect_links = "links";
  auto store = OpenStore();
  auto events = Load(store.get());
  events->Apply(0, "VA", Bytes(Ev("ca").Victim("VA").Incident("IA").At("09:00").Call(true, "S1")));
  events->Apply(1, "VB", Bytes(Ev("cb").Victim("VB").Incident("IB").At("10:00").Call(true, "S1")));
  ASSERT_TRUE(events->Commit().ok());
  std::vector<state::OutboxRecord> links;
  const auto first = *events->Unpublished();
  for (const auto& r : first) {
    if (r.topic() == "links") links.push_back(r);
  }
  ASSERT_EQ(links.size(), 2u) << "one link per domestic-abuse call with a suspect, not routed in process";
  EXPECT_EQ(links[0].key(), "S1");

  auto view = PartitionPipeline::Load(store.get(), &engine_, &topics_, &admission_, 0, PartitionKind::kSuspectLinks);
  ASSERT_TRUE(view.ok());
  for (size_t i = 0; i < links.size(); ++i) (*view)->Apply(static_cast<int64_t>(i), links[i].key(), links[i].value());
  (*view)->Apply(2, "S2", "garbage");
  ASSERT_TRUE((*view)->Commit().ok());
  const auto out = *(*view)->Unpublished();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].topic(), "vigil.events");
  EXPECT_EQ(out[0].key(), "VB");
  EXPECT_EQ(out[1].topic(), "vigil.events.dlq");
  EXPECT_EQ(out[1].headers().at(kHeaderTopic), "links");

  // The finding comes back on the events topic and raises the alert for VB.
  // Signed by the view, as only vigild can.
  const std::string& signature = out[0].headers().at(kHeaderSignature);
  events->Apply({.offset = 2, .key = out[0].key(), .value = out[0].value(), .signature = signature});
  events->Apply({.offset = 3, .key = out[0].key(), .value = out[0].value(), .signature = signature});  // once
  ASSERT_TRUE(events->Commit().ok());
  std::vector<v1::Alert> alerts;
  const auto second = *events->Unpublished();
  for (const auto& r : second) {
    v1::Alert a;
    if (r.topic() == "vigil.alerts" && a.ParseFromString(r.value()) && a.rule() == "serial-perpetrator") {
      alerts.push_back(a);
    }
  }
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].victim_id(), "VB");
  EXPECT_EQ(alerts[0].suspect_id(), "S1");
  EXPECT_THAT(alerts[0].evidence_event_ids(), ::testing::ElementsAre("ca", "cb"));
}

TEST_F(PartitionTest, DroppedPartitionIsEmptyAndOthersStay) {
  auto store = OpenStore();
  auto p = Load(store.get());
  p->Apply(0, "V1", Bytes(Ev("c1").Call(false)));
  ASSERT_TRUE(p->Commit().ok());
  auto other = PartitionPipeline::Load(store.get(), &engine_, &topics_, &admission_, 4);
  (*other)->Apply(0, "V2", Bytes(Ev("c9").Victim("V2").Call(false)));
  ASSERT_TRUE((*other)->Commit().ok());
  EXPECT_THAT(*StoredPartitions(*store), ::testing::ElementsAre(3, 4));
  ASSERT_TRUE(store->DeletePrefix(PartitionPrefix(3)).ok());
  EXPECT_THAT(*StoredPartitions(*store), ::testing::ElementsAre(4));
  EXPECT_EQ(Load(store.get())->next_offset(), 0);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST_F(PartitionTest, APartitionStoredInAnotherStateFormatIsRebuiltFromTheLog) {
  auto store = OpenStore();
  {
    auto p = Load(store.get());
    int64_t offset = 0;
    for (const auto& e : Day()) p->Apply(offset++, e.victim_id(), Bytes(e));
    ASSERT_TRUE(p->Commit().ok());
    ASSERT_EQ(p->next_offset(), 4);
  }
  // As the wave-1 engine left it: progress with no state_format.
  const PartitionKeys keys(3, PartitionKind::kEvents);
  state::PartitionMeta meta;
  ASSERT_TRUE(meta.ParseFromString(**store->Get(keys.Meta())));
  EXPECT_EQ(meta.state_format(), kStateFormat);
  meta.clear_state_format();
  rocksdb::WriteBatch batch;
  batch.Put(keys.Meta(), meta.SerializeAsString());
  ASSERT_TRUE(store->Write(&batch, Store::Durability::kProcess).ok());

  auto p = Load(store.get());
  EXPECT_EQ(p->next_offset(), 0) << "consumes the partition again from the start";
  EXPECT_EQ(p->outbox_seq(), 0u);
  EXPECT_FALSE(p->processor().FindVictim("V1").has_value());
  EXPECT_FALSE(store->Get(keys.Victim("V1"))->has_value()) << "the old state is gone from the store too";
  // Replaying the log numbers the outbox as before.
  int64_t offset = 0;
  for (const auto& e : Day()) p->Apply(offset++, e.victim_id(), Bytes(e));
  ASSERT_TRUE(p->Commit().ok());
  EXPECT_EQ(p->outbox_seq(), 6u);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Everything a pipeline wrote to its outbox, in order.
std::vector<std::string> Outbox(PartitionPipeline& p) {
  std::vector<std::string> values;
  auto records = p.Unpublished();
  EXPECT_TRUE(records.ok());
  for (const auto& r : *records) values.push_back(r.topic() + "|" + r.value());
  return values;
}

TEST_F(PartitionTest, EvictedVictimsComeBackFromTheStoreAndChangeNothing) {
  synthetic::StreamOptions options;
  options.events = 20000;
  options.victims = 400;
  const std::vector<v1::Event> events = synthetic::SyntheticStream(options);
  auto lean_store = OpenStore("lean");
  auto full_store = OpenStore("full");
  auto lean = Load(lean_store.get());
  auto full = Load(full_store.get());
  lean->set_max_held_victims(1);
  size_t most_held = 0, most_parked = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string bytes = Bytes(events[i]);
    lean->Apply(static_cast<int64_t>(i), events[i].victim_id(), bytes);
    full->Apply(static_cast<int64_t>(i), events[i].victim_id(), bytes);
    if (i % 250 == 249) {
      ASSERT_TRUE(lean->Commit().ok());
      ASSERT_TRUE(full->Commit().ok());
      most_held = std::max(most_held, lean->processor().victim_count());
      most_parked = std::max(most_parked, lean->processor().victims_parked());
    }
  }
  ASSERT_TRUE(lean->Commit().ok());
  ASSERT_TRUE(full->Commit().ok());
  EXPECT_EQ(Outbox(*lean), Outbox(*full));
  EXPECT_EQ(*lean->StateDigest(), *full->StateDigest());
  EXPECT_LT(lean->processor().victim_count(), full->processor().victim_count());
  EXPECT_LE(most_held, 1u) << "after a commit, held only what the limit allows, deadlines pending or not";
  EXPECT_GT(most_parked, 0u) << "victims were evicted with deadlines pending, and loaded when they fell due";

  // The stored state is what an offline replay of the same events holds.
  Processor replay(&engine_);
  std::vector<v1::Alert> alerts;
  for (const auto& e : events) replay.Apply(e, &alerts).IgnoreError();
  EXPECT_EQ(*lean->StateDigest(), replay.StateDigest());

  // A reload holds no victim, notes those waiting for a deadline, and goes on the same.
  auto reloaded = Load(lean_store.get());
  EXPECT_EQ(reloaded->processor().victim_count(), 0u);
  EXPECT_EQ(reloaded->processor().victims_parked(), full->processor().victims_awaiting_deadline());
  EXPECT_EQ(*reloaded->StateDigest(), *full->StateDigest());
  // A tick 60 days on fires every deadline left: the reloaded pipeline loads each victim and publishes
  // what the one that held them all along does.
  v1::Event tick;
  tick.set_event_id("tick");
  *tick.mutable_occurred_at() = ToTimestamp(ToMicros(events.back().occurred_at()) + 60 * kMicrosPerDay);
  tick.mutable_clock_tick();
  const std::string bytes = Bytes(tick);
  const std::string signature = testing::TestSigner().Sign(bytes);
  const size_t published = Outbox(*full).size();
  const size_t awaiting = full->processor().victims_awaiting_deadline();
  for (PartitionPipeline* p : {reloaded.get(), full.get()}) {
    p->Apply({.offset = static_cast<int64_t>(events.size()), .key = kClockKey, .value = bytes,
              .signature = signature});
    ASSERT_TRUE(p->Commit().ok());
  }
  EXPECT_GT(Outbox(*full).size(), published) << "deadlines fired";
  EXPECT_EQ(Outbox(*reloaded), Outbox(*full));
  EXPECT_LT(reloaded->processor().victims_parked(), awaiting / 2) << "most deadlines fell due: loaded";
  EXPECT_EQ(reloaded->processor().victims_awaiting_deadline(), full->processor().victims_awaiting_deadline());
  EXPECT_EQ(*reloaded->StateDigest(), *full->StateDigest());
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST_F(PartitionTest, AVictimAwaitingADeadlineThatCannotBeLoadedAbandonsTheBatchAndLosesNothing) {
  auto store = OpenStore();
  auto p = Load(store.get());
  p->set_max_held_victims(0);
  p->Apply(0, "V1", Bytes(Ev("a1").At("10:00").ArrestRequested("R1")));
  ASSERT_TRUE(p->Commit().ok());
  ASSERT_EQ(p->processor().victim_count(), 0u);
  ASSERT_EQ(p->processor().victims_parked(), 1u);
  // The victim's head goes missing from the store: its deadline (11:00) cannot fire.
  rocksdb::WriteBatch lose;
  lose.Delete(PartitionKeys(3, PartitionKind::kEvents).Victim("V1"));
  ASSERT_TRUE(store->Write(&lose, Store::Durability::kSync).ok());
  p->Apply(1, "V2", Bytes(Ev("c2").Victim("V2").At("11:30").Call(false)));
  const absl::Status s = p->Commit();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  auto reloaded = Load(store.get());
  EXPECT_EQ(reloaded->next_offset(), 1) << "the call is not committed: it is consumed again";
  EXPECT_TRUE(reloaded->Unpublished()->empty()) << "nothing dead-lettered, nothing fired";
}

TEST_F(PartitionTest, ACommitWritesWhatChangedNotTheWholeVictim) {
  auto store = OpenStore();
  auto p = Load(store.get());
  int64_t offset = 0;
  for (int i = 0; i < 2000; ++i) {
    p->Apply(offset++, "V1", Bytes(Ev("c" + std::to_string(i)).AtMicros(testing::T("00:00") + i * kMicrosPerSecond).Call(false)));
  }
  ASSERT_TRUE(p->Commit().ok());
  const size_t first = p->last_commit_bytes();
  p->Apply(offset++, "V1", Bytes(Ev("one-more").At("12:00").Call(false)));
  ASSERT_TRUE(p->Commit().ok());
  // The head (with the alert's evidence fingerprints), one call, one event id, the timeline entry, the alert
  // update and its outbox record; not the 2,000 calls and ids again.
  EXPECT_LT(p->last_commit_bytes(), first / 10) << "first commit " << first << " bytes";
  // Read back whole, the victim is what the engine holds.
  auto stored = FindVictim(*store, PartitionKeys(3), "V1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ(DeterministicBytes(**stored), DeterministicBytes(*p->processor().FindVictim("V1")));
  EXPECT_EQ((*stored)->calls_size(), 2001);
}

TEST_F(PartitionTest, DroppedFactsLeaveTheStoreToo) {
  auto store = OpenStore();
  auto p = Load(store.get());
  Processor replay(&engine_);
  std::vector<v1::Alert> alerts;
  int64_t offset = 0;
  auto apply = [&](const v1::Event& e) {
    p->Apply(offset++, e.victim_id(), Bytes(e));
    replay.Apply(e, &alerts).IgnoreError();
  };
  for (int day = 0; day < 40; ++day) apply(Ev("c" + std::to_string(day)).At("10:00", day).Call(false));
  ASSERT_TRUE(p->Commit().ok());
  apply(Ev("much-later").At("10:00", 900).Call(false));  // 900 days on: the old calls and ids are dropped
  ASSERT_TRUE(p->Commit().ok());
  auto stored = FindVictim(*store, PartitionKeys(3), "V1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->calls_size(), 1);
  EXPECT_EQ((*stored)->seen_event_ids_size(), 1);
  EXPECT_EQ(DeterministicBytes(**stored), DeterministicBytes(*replay.FindVictim("V1")));
  EXPECT_EQ(*p->StateDigest(), replay.StateDigest());
}

TEST_F(PartitionTest, ASignedRulesChangeIsKeptAcrossAReloadAndAnUnsignedOneIsDeadLettered) {
  auto store = OpenStore();
  {
    auto p = Load(store.get());
    const std::string unsigned_change =
        Bytes(Ev("rc0").Victim("__rules__").At("08:00").RulesChanged("evil", "rules: {repeat-calls: {enabled: false}}"));
    p->Apply(0, "__rules__", unsigned_change);
    const std::string change =
        Bytes(Ev("rc1").Victim("__rules__").At("08:00").RulesChanged("2", "rules: {repeat-calls: {count: 3}}"));
    p->Apply({.offset = 1, .key = "__rules__", .value = change, .signature = testing::TestSigner().Sign(change)});
    ASSERT_TRUE(p->Commit().ok());
    const auto out = *p->Unpublished();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].topic(), "vigil.events.dlq");
    EXPECT_THAT(out[0].headers().at(kHeaderReason), ::testing::HasSubstr("PERMISSION_DENIED: rules_changed"));
    EXPECT_EQ(p->processor().rules().version(), "2");
  }
  // A reload judges by the stored rules, not the engine it is given.
  auto p = Load(store.get());
  EXPECT_EQ(p->processor().rules().version(), "2");
  EXPECT_EQ(p->processor().rules().rule(RuleId::kRepeatCalls).count, 3u);
  p->Apply(2, "V1", Bytes(Ev("c1").At("09:00").Call(false)));
  p->Apply(3, "V1", Bytes(Ev("c2").At("10:00").Call(false)));
  ASSERT_TRUE(p->Commit().ok());
  const auto out = *p->Unpublished();
  for (const auto& r : out) EXPECT_NE(r.topic(), "vigil.alerts") << "two calls are not enough under version 2";
}

}  // namespace
}  // namespace vigil
