// Replay is deterministic, and state survives serialisation exactly: the same
// events applied in one pass, or in two passes with the state serialised and
// restored in between, give identical alerts and identical state bytes.
#include "services/escalation/engine/processor.h"

#include <set>
#include <string>
#include <vector>

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
  second.AdvanceTo(until, &out);
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
  p.AdvanceTo(ToMicros(events.back().occurred_at()) + 40 * kMicrosPerDay, &out);
  std::set<std::string> rules;
  for (const auto& a : out) rules.insert(a.rule());
  for (int i = 0; i < kRuleCount; ++i) EXPECT_TRUE(rules.count(std::string(RuleName(static_cast<RuleId>(i)))))
      << RuleName(static_cast<RuleId>(i));
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
  p.AdvanceTo(testing::T("11:00"), &out);
  EXPECT_EQ(p.stream_time(), testing::T("12:00"));
}

}  // namespace
}  // namespace vigil
