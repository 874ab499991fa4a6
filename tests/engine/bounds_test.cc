// Bounded by stream time and by evidence (DOMAIN.md, "History is bounded" and
// "Evidence is bounded"), and floods that must finish with correct alerts:
// one victim with 10,000 calls in a day, one suspect named by 10,000 victims.
// These assert what comes out and how big it is, never how long it took.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/fingerprint.h"
#include "services/escalation/engine/processor.h"
#include "tests/testing/builders.h"

namespace vigil {
namespace {

using testing::Ev;
using testing::T;
using ::testing::ElementsAreArray;
using ::testing::SizeIs;

constexpr size_t kKafkaMessageLimit = 1 << 20;

std::vector<std::string> Ids(const std::string& prefix, int from, int to) {
  std::vector<std::string> ids;
  for (int i = from; i < to; ++i) ids.push_back(absl::StrCat(prefix, i));
  return ids;
}

TEST(EvidenceBound, AnAlertListsTheFirstTenAndTheLastTenAddedAndCountsThemAll) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(p.Apply(Ev(absl::StrCat("c", i)).AtMicros(T("10:00") + i * kMicrosPerMinute).Call(false), &out).ok());
  }
  const v1::Alert& last = out.back();
  EXPECT_EQ(last.rule(), "repeat-calls");
  EXPECT_EQ(last.evidence_total(), 30u);
  std::vector<std::string> want = Ids("c", 0, 10);
  for (const auto& id : Ids("c", 20, 30)) want.push_back(id);
  EXPECT_THAT(last.evidence_event_ids(), ElementsAreArray(want));
  // The first alert listed what it had.
  EXPECT_EQ(out.front().evidence_total(), 2u);
  EXPECT_THAT(out.front().evidence_event_ids(), ElementsAreArray(Ids("c", 0, 2)));
}

TEST(Flood, TenThousandCallsInADayForOneVictimFinishWithOneBoundedAlert) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  constexpr int kCalls = 10000;
  const Micros gap = kMicrosPerDay / kCalls;
  size_t transitions = 0;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(p.Apply(Ev(absl::StrCat("flood-", i)).AtMicros(T("00:00") + i * gap).Call(false), &out).ok());
    for (const v1::Alert& a : out) {
      ASSERT_EQ(a.rule(), "repeat-calls") << "call " << i;
      ASSERT_LE(a.evidence_event_ids_size(), 20);
      ASSERT_LT(a.ByteSizeLong(), kKafkaMessageLimit);
    }
    transitions += out.size();
    if (i == kCalls - 1) {
      ASSERT_THAT(out, SizeIs(1));
      EXPECT_EQ(out[0].evidence_total(), static_cast<uint32_t>(kCalls));
      EXPECT_EQ(out[0].reason(), "10000 calls about this victim within 24h: join the calls up and review the risk now.");
      EXPECT_EQ(out[0].evidence_event_ids(19), "flood-9999");
    }
    out.clear();
  }
  // One alert (the incident's), raised at the second call and updated by each after it; unacknowledged, it
  // climbed to the inspector and the superintendent on the way.
  EXPECT_EQ(transitions, static_cast<size_t>(kCalls - 1 + 2));
  // The state holds the calls the window needs, each once: linear, not quadratic.
  EXPECT_LT(p.FindVictim("V1")->ByteSizeLong(), 4u * 1024 * 1024);
}

TEST(Flood, ASuspectNamedByTenThousandVictimsGivesBoundedAlertsAndFindings) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  constexpr int kVictims = 10000;
  for (int i = 0; i < kVictims; ++i) {
    ASSERT_TRUE(p.Apply(Ev(absl::StrCat("call-", i))
                            .Victim(absl::StrCat("V", i))
                            .Incident(absl::StrCat("I", i))
                            .AtMicros(T("00:00") + i * kMicrosPerMinute)
                            .Call(true, "S1"),
                        &out)
                    .ok());
  }
  size_t serial = 0;
  for (const v1::Alert& a : out) {
    ASSERT_LE(a.evidence_event_ids_size(), 20);
    ASSERT_LT(a.ByteSizeLong(), kKafkaMessageLimit);
    if (a.rule() == "serial-perpetrator" && a.revision() == 1) ++serial;
  }
  // Every victim after the first is told, once, on its own call.
  EXPECT_EQ(serial, static_cast<size_t>(kVictims - 1));
  const v1::Alert* last = nullptr;
  for (const v1::Alert& a : out) {
    if (a.rule() == "serial-perpetrator" && a.victim_id() == "V9999" && a.revision() == 1) last = &a;
  }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->evidence_total(), static_cast<uint32_t>(kVictims));
  EXPECT_EQ(last->evidence_event_ids(0), "call-0");
  EXPECT_EQ(last->evidence_event_ids(19), "call-9999");

  // With the suspect view elsewhere, the finding it sends back is bounded too.
  std::vector<v1::SuspectFinding> findings;
  v1::SuspectLink link;
  link.set_suspect_id("S1");
  link.set_victim_id("V-late");
  link.set_incident_id("I-late");
  link.set_event_id("call-late");
  link.set_at(T("00:00") + kVictims * kMicrosPerMinute);
  p.ApplyLink(link, &findings);
  ASSERT_THAT(findings, SizeIs(1));
  EXPECT_EQ(findings[0].victim_count(), static_cast<uint32_t>(kVictims + 1));
  EXPECT_EQ(findings[0].evidence_total(), static_cast<uint32_t>(kVictims + 1));
  EXPECT_EQ(findings[0].evidence_event_ids_size(), 20);
}

TEST(Horizon, AnEventOlderThanTheHorizonIsEvaluatedByNoRuleAndOneExactlyAtItIs) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  ASSERT_TRUE(p.Apply(Ev("now").Victim("V0").At("10:00", 500).Call(false), &out).ok());
  const Micros horizon = T("10:00", 500) - 400 * kMicrosPerDay;
  // Just older than the horizon: counted, kept for the timeline by the caller, applied to nothing.
  ASSERT_TRUE(p.Apply(Ev("old-1").AtMicros(horizon - 1).Call(false), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("old-2").AtMicros(horizon - 1).Call(false), &out).ok());
  EXPECT_THAT(out, SizeIs(0));
  EXPECT_EQ(p.too_late(), 2u);
  EXPECT_FALSE(p.FindVictim("V1").has_value());
  // Exactly at the horizon: evaluated (two calls a second apart are repeat calls).
  ASSERT_TRUE(p.Apply(Ev("edge-1").AtMicros(horizon).Call(false), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("edge-2").AtMicros(horizon + kMicrosPerSecond).Call(false), &out).ok());
  ASSERT_THAT(out, SizeIs(3));
  EXPECT_EQ(out[0].rule(), "repeat-calls");
  EXPECT_EQ(out[0].state(), v1::FIRING);
  // Its acknowledgement windows passed long ago in stream time: it climbs at once, stamped with each.
  EXPECT_EQ(out[2].level(), v1::SUPERINTENDENT);
  EXPECT_EQ(out[2].at().seconds() * kMicrosPerSecond, horizon + kMicrosPerSecond + 20 * kMicrosPerMinute);
  EXPECT_EQ(p.too_late(), 2u);
}

TEST(Horizon, FactsNoRuleCanUseAreDroppedAndTheTotalsKept) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(p.Apply(Ev(absl::StrCat("c", i)).Incident(absl::StrCat("I", i)).At("10:00", i).Call(false), &out).ok());
    ASSERT_TRUE(p.Apply(Ev(absl::StrCat("x", i)).Incident(absl::StrCat("I", i)).At("11:00", i).Closed(), &out).ok());
  }
  EXPECT_EQ(p.FindVictim("V1")->calls_size(), 50);
  // 900 days on, the horizon (400 d) and the longest call window (365 d) reach none of those calls.
  ASSERT_TRUE(p.Apply(Ev("later").Incident("I-later").At("10:00", 900).Call(false), &out).ok());
  const state::VictimState v = *p.FindVictim("V1");
  EXPECT_EQ(v.calls_size(), 1);
  EXPECT_EQ(v.incidents_size(), 1);
  EXPECT_EQ(v.seen_event_ids_size(), 1);
  EXPECT_EQ(v.calls_total(), 51u);
  EXPECT_EQ(v.incidents_total(), 51u);
  // Resolved or not, alerts long past the horizon are gone; the open ones stay (they still climb or wait).
  for (const auto& a : v.alerts()) EXPECT_NE(a.alert().state(), v1::RESOLVED);
  // A redelivery of a dropped event is older than the horizon: applied to nothing, not a conflict.
  ASSERT_TRUE(p.Apply(Ev("c0").Incident("I0").At("10:00", 0).Call(false), &out).ok());
  EXPECT_EQ(p.too_late(), 1u);
}

TEST(Horizon, PruningKeepsStateExactThroughItsEncoding) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(p.Apply(Ev(absl::StrCat("c", i)).At("10:00", i * 50).Call(true, "S1"), &out).ok());
  }
  const state::Snapshot snapshot = p.TakeSnapshot();
  Processor restored(&engine);
  restored.Restore(snapshot);
  EXPECT_EQ(DeterministicBytes(restored.TakeSnapshot()), DeterministicBytes(snapshot));
  // Both go on the same way.
  std::vector<v1::Alert> a, b;
  ASSERT_TRUE(p.Apply(Ev("next").At("10:00", 1000).Call(true, "S1"), &a).ok());
  ASSERT_TRUE(restored.Apply(Ev("next").At("10:00", 1000).Call(true, "S1"), &b).ok());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(DeterministicBytes(a[i]), DeterministicBytes(b[i]));
  EXPECT_EQ(p.StateDigest(), restored.StateDigest());
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST(SnapshotDigest, EqualsTheDigestOfTheWholeSnapshotsBytes) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(p.Apply(testing::Ev(absl::StrCat("c", i))
                            .Victim(absl::StrCat("V", i % 7))
                            .At("10:00", i)
                            .Call(true, absl::StrCat("S", i % 3)),
                        &out)
                    .ok());
  }
  EXPECT_EQ(p.StateDigest(), Hex64(Fnv1a64(DeterministicBytes(p.TakeSnapshot()))));
  Processor empty(&engine);
  EXPECT_EQ(empty.StateDigest(), Hex64(Fnv1a64(DeterministicBytes(empty.TakeSnapshot()))));
}

}  // namespace
}  // namespace vigil
