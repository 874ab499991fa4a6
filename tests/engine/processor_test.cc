// Replay is deterministic, and state survives serialisation exactly: the same
// events applied in one pass, or in two passes with the state serialised and
// restored in between, give identical alerts and identical state bytes.
#include "services/escalation/engine/processor.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/jsonl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/builders.h"
#include "services/synthetic/synthetic_stream.h"

namespace vigil {
namespace {

using synthetic::StreamOptions;
using synthetic::SyntheticStream;

struct ReplayRun {
  std::vector<std::string> alerts;  // JSON lines
  std::string state;                // snapshot bytes
};

ReplayRun ApplyAll(const std::vector<v1::Event>& events, size_t split, Micros until) {
  Engine engine(RulesConfig::Defaults());
  ReplayRun run;
  std::vector<v1::Alert> out;
  auto drain = [&] {
    for (const auto& a : out) run.alerts.push_back(ToJsonLine(a));
    out.clear();
  };
  std::string bytes;
  {
    Processor first(&engine);
    for (size_t i = 0; i < split; ++i) EXPECT_TRUE(first.Apply(events[i], &out).ok());
    drain();
    bytes = DeterministicBytes(first.TakeSnapshot());
  }
  state::Snapshot restored;
  EXPECT_TRUE(restored.ParseFromString(bytes));
  Processor second(&engine);
  second.Restore(restored);
  EXPECT_EQ(DeterministicBytes(second.TakeSnapshot()), bytes) << "restore is not exact";
  for (size_t i = split; i < events.size(); ++i) EXPECT_TRUE(second.Apply(events[i], &out).ok());
  EXPECT_TRUE(second.AdvanceThrough(until, &out).ok());
  drain();
  run.state = DeterministicBytes(second.TakeSnapshot());
  return run;
}

TEST(ProcessorPropertyTest, TwoPassesWithSerialisedStateEqualOnePass) {
  const auto events = SyntheticStream({.events = 20'000, .victims = 1'000, .seed = 7});
  const Micros until = ToMicros(events.back().occurred_at()) + 40 * kMicrosPerDay;
  const ReplayRun one = ApplyAll(events, events.size(), until);
  ASSERT_GT(one.alerts.size(), 100u) << "the stream should make rules fire";
  for (size_t split : {size_t{1}, events.size() / 3, events.size() / 2, events.size() - 1}) {
    const ReplayRun two = ApplyAll(events, split, until);
    EXPECT_EQ(two.alerts, one.alerts) << "split at " << split;
    EXPECT_EQ(two.state, one.state) << "split at " << split;
  }
}

TEST(ProcessorPropertyTest, EveryRuleFiresSomewhereInTheSyntheticStream) {
  const auto events = SyntheticStream({.events = 50'000, .victims = 2'000, .seed = 3});
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  for (const auto& e : events) ASSERT_TRUE(p.Apply(e, &out).ok());
  ASSERT_TRUE(p.AdvanceThrough(ToMicros(events.back().occurred_at()) + 40 * kMicrosPerDay, &out).ok());
  std::set<std::string> rules;
  for (const auto& a : out) rules.insert(a.rule());
  for (int i = 0; i < kRuleCount; ++i) EXPECT_TRUE(rules.count(std::string(RuleName(static_cast<RuleId>(i)))))
      << RuleName(static_cast<RuleId>(i));
}

// An alert keeps its rule's sentence and what its latest transition said before it (an escalation, an
// acknowledgement) or instead (a resolution). Restored from its stored state at any point, a processor publishes
// the same transitions, reasons included, as one that ran throughout.
TEST(ProcessorTest, ReasonsSurviveARestoreInEveryStateAndTheNextTransitionsAreTheSame) {
  using testing::Ev;
  std::vector<v1::Event> events = {Ev("c1").At("09:00").Call(false), Ev("c2").At("10:00").Call(false)};
  Engine engine(RulesConfig::Defaults());
  std::string alert_id;
  {
    Processor p(&engine);
    std::vector<v1::Alert> out;
    for (const auto& e : events) ASSERT_TRUE(p.Apply(e, &out).ok());
    ASSERT_EQ(out.size(), 1u);
    alert_id = out[0].alert_id();
  }
  for (v1::Event e : {Ev("ack").At("10:15").Ack(alert_id),  // after it escalated at 10:10
                      Ev("c3").At("11:00").Call(false),       // the episode goes on: it fires again
                      Ev("g2").Incident("I2").At("11:05").Graded(v1::IncidentGraded::IMMEDIATE),
                      Ev("u2").Incident("I2").At("11:06").UnitUnavailable(),
                      Ev("a2").Incident("I2").At("11:07").UnitAssigned(), Ev("c4").At("11:30").Call(false)}) {
    events.push_back(std::move(e));
  }
  const Micros until = testing::T("12:00", 2);
  auto run = [&](size_t split) {
    std::vector<v1::Alert> out;
    Processor first(&engine);
    for (size_t i = 0; i < split; ++i) EXPECT_TRUE(first.Apply(events[i], &out).ok());
    Processor second(&engine);
    const state::Snapshot snapshot = first.TakeSnapshot();
    second.Restore(snapshot);
    EXPECT_EQ(DeterministicBytes(second.TakeSnapshot()), DeterministicBytes(snapshot)) << "after " << split;
    for (size_t i = split; i < events.size(); ++i) EXPECT_TRUE(second.Apply(events[i], &out).ok());
    EXPECT_TRUE(second.AdvanceThrough(until, &out).ok());
    std::vector<std::string> published;
    for (const auto& a : out) published.push_back(DeterministicBytes(a));
    return std::make_pair(out, published);
  };
  const auto [whole, whole_bytes] = run(events.size());
  std::map<std::string, std::string> reasons;  // "rule STATE" -> the first such transition's reason
  std::string firing;
  for (const auto& a : whole) {
    reasons.try_emplace(absl::StrCat(a.rule(), " ", v1::AlertState_Name(a.state())), a.reason());
    if (a.rule() == "repeat-calls" && a.state() == v1::FIRING && firing.empty()) firing = a.reason();
  }
  EXPECT_THAT(testing::Describe(whole),
              ::testing::ElementsAre("repeat-calls FIRING SUPERVISOR 2024-09-07T10:00:00Z V1/I1 [c1 c2]",
                                     "repeat-calls ESCALATED INSPECTOR 2024-09-07T10:10:00Z V1/I1 [c1 c2]",
                                     "repeat-calls ACKNOWLEDGED INSPECTOR 2024-09-07T10:15:00Z V1/I1 [c1 c2 ack]",
                                     "repeat-calls FIRING INSPECTOR 2024-09-07T11:00:00Z V1/I1 [c1 c2 ack c3]",
                                     "unit-unavailable FIRING SUPERVISOR 2024-09-07T11:06:00Z V1/I2 [g2 u2]",
                                     "unit-unavailable RESOLVED SUPERVISOR 2024-09-07T11:07:00Z V1/I2 [g2 u2 a2]",
                                     "repeat-calls ESCALATED SUPERINTENDENT 2024-09-07T11:10:00Z V1/I1 [c1 c2 ack c3]",
                                     "attendance-overdue FIRING SUPERVISOR 2024-09-07T11:20:00Z V1/I2 [g2]",
                                     "repeat-calls ESCALATED SUPERINTENDENT 2024-09-07T11:30:00Z V1/I1 [c1 c2 ack c3 c4]",
                                     "attendance-overdue ESCALATED INSPECTOR 2024-09-07T11:30:00Z V1/I2 [g2]",
                                     "attendance-overdue ESCALATED SUPERINTENDENT 2024-09-07T11:40:00Z V1/I2 [g2]"));
  ASSERT_FALSE(firing.empty());
  EXPECT_EQ(reasons["repeat-calls ESCALATED"],
            "Not acknowledged within 10m, so it now goes to the duty inspector. " + firing);
  EXPECT_EQ(reasons["repeat-calls ACKNOWLEDGED"], "Acknowledged by SGT1. " + firing);
  EXPECT_THAT(reasons["unit-unavailable RESOLVED"], ::testing::StartsWith("Resolved: "));
  EXPECT_EQ(reasons["unit-unavailable RESOLVED"].find(reasons["unit-unavailable FIRING"]), std::string::npos);
  for (size_t split = 0; split < events.size(); ++split) {
    EXPECT_EQ(run(split).second, whole_bytes) << "restored after " << split << " events";
  }
}

// Transitions written into recycled messages (Processor::Recycle) are byte for byte the ones written fresh, whatever
// the recycled messages held before.
TEST(ProcessorPropertyTest, RecycledTransitionsAreTheSameBytesAsFreshOnes) {
  const auto events = SyntheticStream({.events = 20'000, .victims = 1'000, .seed = 11});
  const Micros until = ToMicros(events.back().occurred_at()) + 40 * kMicrosPerDay;
  auto run = [&](bool recycle) {
    Engine engine(RulesConfig::Defaults());
    Processor processor(&engine);
    if (recycle) {
      // Start from messages with every field set, and more evidence than any alert carries.
      std::vector<v1::Alert> dirty(Processor::kSpareAlerts + 10);
      for (v1::Alert& a : dirty) {
        EXPECT_TRUE(ParseJsonLine(
            R"({"alertId":"al-x","victimId":"V","incidentId":"I","rule":"repeat-calls","level":"INSPECTOR",)"
            R"("state":"ACKNOWLEDGED","at":"2024-01-01T00:00:00Z","deadline":"2024-01-02T00:00:00Z",)"
            R"("reason":"old","threshold":"t","force":"f","suspectId":"S","revision":9,)"
            R"("firedAt":"2024-01-01T00:00:00Z","acknowledgeBy":"2024-01-03T00:00:00Z","acknowledgedBy":"sgt",)"
            R"("evidenceTotal":99,"rulesVersion":"v9"})", &a).ok());
        for (int i = 0; i < 30; ++i) a.add_evidence_event_ids(absl::StrCat("old-", i));
      }
      processor.Recycle(&dirty);
    }
    std::vector<std::string> bytes;
    std::vector<v1::Alert> out;
    auto take = [&] {
      for (const auto& a : out) bytes.push_back(DeterministicBytes(a));
      if (recycle) {
        processor.Recycle(&out);
        EXPECT_TRUE(out.empty());
      } else {
        out.clear();
      }
    };
    for (const auto& e : events) {
      EXPECT_TRUE(processor.Apply(e, &out).ok());
      take();
    }
    EXPECT_TRUE(processor.AdvanceThrough(until, &out).ok());
    take();
    return bytes;
  };
  const std::vector<std::string> fresh = run(false);
  ASSERT_GT(fresh.size(), 1000u) << "the stream should make rules fire";
  EXPECT_EQ(run(true), fresh);
}

TEST(ProcessorTest, InvalidEventChangesNothing) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  v1::Event e = testing::Ev("c1").At("10:00").Call();
  e.clear_victim_id();
  EXPECT_EQ(p.Apply(e, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.victim_count(), 0u);
  EXPECT_EQ(p.stream_time(), INT64_MIN);
}

TEST(ProcessorTest, StreamTimeNeverGoesBack) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  ASSERT_TRUE(p.Apply(testing::Ev("c1").At("12:00").Call(false), &out).ok());
  ASSERT_TRUE(p.Apply(testing::Ev("c2").Victim("V2").At("09:00").Call(false), &out).ok());
  EXPECT_EQ(p.stream_time(), testing::T("12:00"));
  ASSERT_TRUE(p.AdvanceTo(testing::T("11:00"), &out).ok());
  EXPECT_EQ(p.stream_time(), testing::T("12:00"));
}

// Deadlines due together fire in (due, victim id, the victim's order of adding) order, whatever order the
// victims were seen in, and a victim's deadline added later but due earlier fires first.
TEST(ProcessorTest, DeadlinesDueTogetherFireByVictimIdThenInTheOrderAdded) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  // Urgent arrest requests at 09:00 (arrest-overdue due at 10:00): V2's first, then V1's two.
  ASSERT_TRUE(p.Apply(testing::Ev("r2").Victim("V2").At("09:00").Incident("I2").ArrestRequested("R2"), &out).ok());
  ASSERT_TRUE(p.Apply(testing::Ev("r1b").Victim("V1").At("09:00").Incident("I1").ArrestRequested("R1b"), &out).ok());
  ASSERT_TRUE(p.Apply(testing::Ev("r1a").Victim("V1").At("09:00").Incident("I1").ArrestRequested("R1a"), &out).ok());
  // V3's request at 08:58 comes last but is due first (09:58).
  ASSERT_TRUE(p.Apply(testing::Ev("r3").Victim("V3").At("08:58").Incident("I3").ArrestRequested("R3"), &out).ok());
  ASSERT_TRUE(out.empty());
  ASSERT_TRUE(p.AdvanceTo(testing::T("10:05"), &out).ok());
  std::vector<std::string> fired;
  for (const auto& a : out) fired.push_back(absl::StrCat(a.rule(), " ", a.victim_id(), " ", a.evidence_event_ids(0)));
  EXPECT_THAT(fired, ::testing::ElementsAre("arrest-overdue V3 r3", "arrest-overdue V1 r1b", "arrest-overdue V1 r1a",
                                            "arrest-overdue V2 r2"));
}

// What vigild's store does for a processor: each commit keeps the changed victims' encodings, and an evicted
// victim is read back from them.
struct MapStore {
  std::map<std::string, state::VictimState> victims;
  bool lost = false;  // the store has lost everything (a fault)
  void Attach(Processor& p) {
    p.set_loader([this](const std::string& id) -> absl::StatusOr<std::optional<state::VictimState>> {
      auto it = victims.find(id);
      if (lost || it == victims.end()) return std::nullopt;
      return it->second;
    });
  }
  void Commit(Processor& p) {
    for (const std::string& id : p.TakeChangedVictims()) {
      if (auto v = p.FindVictim(id)) victims[id] = *v;
    }
  }
};

std::vector<std::string> Held(const Processor& p, int victims) {
  std::vector<std::string> held;
  for (int i = 0; i < victims; ++i) {
    if (p.FindVictim(absl::StrCat("V", i))) held.push_back(absl::StrCat("V", i));
  }
  return held;
}

TEST(ProcessorTest, EvictsTheLeastRecentlyAppliedVictimsAndLoadsThoseAwaitingADeadlineWhenItFallsDue) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  Processor all_held(&engine);
  MapStore store;
  store.Attach(p);
  std::vector<v1::Alert> out, expected;
  auto apply = [&](const v1::Event& e) {
    ASSERT_TRUE(p.Apply(e, &out).ok());
    ASSERT_TRUE(all_held.Apply(e, &expected).ok());
  };
  // V0 has an urgent arrest request (arrest-overdue due at 10:59); V1..V9 one call each; then V1 again.
  apply(testing::Ev("a0").Victim("V0").At("09:59").Incident("I0").ArrestRequested("R0"));
  for (int i = 1; i < 10; ++i) {
    const std::string id = absl::StrCat("V", i);
    apply(testing::Ev("c" + id).Victim(id).AtMicros(testing::T("10:00") + i).Call(false));
  }
  apply(testing::Ev("again").Victim("V1").At("10:10").Call(false));
  EXPECT_EQ(p.victim_count(), 10u);
  // V0's arrest, and V1's repeat-calls alert waiting to be acknowledged.
  EXPECT_EQ(p.victims_awaiting_deadline(), 2u);
  store.Commit(p);
  p.Evict(5);
  EXPECT_THAT(Held(p, 10), ::testing::ElementsAre("V1", "V6", "V7", "V8", "V9"));
  EXPECT_EQ(p.victims_awaiting_deadline(), 2u) << "V0's deadline waits, though V0 is not held";
  EXPECT_EQ(p.victims_parked(), 1u);

  // V0's deadline falls due: V0 is loaded, its alert fires as if it had been held all along.
  ASSERT_TRUE(p.AdvanceTo(testing::T("11:00"), &out).ok());
  ASSERT_TRUE(all_held.AdvanceTo(testing::T("11:00"), &expected).ok());
  ASSERT_EQ(out.size(), expected.size());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(DeterministicBytes(out[i]), DeterministicBytes(expected[i]));
  EXPECT_THAT(out, ::testing::Contains(::testing::Property(&v1::Alert::rule, "arrest-overdue")));
  EXPECT_EQ(p.victims_parked(), 0u);
  EXPECT_TRUE(p.FindVictim("V0"));

  // A victim changed since the last commit stays, however long ago it was applied to before.
  apply(testing::Ev("c-new").Victim("V10").At("11:20").Call(false));
  p.Evict(1);
  EXPECT_TRUE(p.FindVictim("V10")) << "changed, not yet taken by a commit";
  EXPECT_TRUE(p.FindVictim("V0")) << "changed by its deadline firing, not yet taken by a commit";
  for (const char* idle : {"V7", "V8", "V9"}) EXPECT_FALSE(p.FindVictim(idle)) << idle;
}

TEST(ProcessorTest, AnEvictedVictimsDeadlineWaitsWhileItCannotBeLoaded) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  MapStore store;
  store.Attach(p);
  std::vector<v1::Alert> out;
  ASSERT_TRUE(p.Apply(testing::Ev("a0").Victim("V0").At("09:59").Incident("I0").ArrestRequested("R0"), &out).ok());
  store.Commit(p);
  p.Evict(0);
  ASSERT_EQ(p.victims_parked(), 1u);
  store.lost = true;
  EXPECT_EQ(p.AdvanceTo(testing::T("11:00"), &out).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(p.Apply(testing::Ev("c1").Victim("V1").At("11:01").Call(false), &out).code(),
            absl::StatusCode::kDataLoss)
      << "an event after the deadline is not applied before it";
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.victims_parked(), 1u) << "the deadline is still waiting";
  store.lost = false;
  ASSERT_TRUE(p.AdvanceTo(testing::T("11:00"), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rule(), "arrest-overdue");
  EXPECT_EQ(ToMicros(out[0].at()), testing::T("10:59"));
}

}  // namespace
}  // namespace vigil
