#include "services/escalation/engine/risk_profile.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/escalation/engine/processor.h"
#include "tests/testing/builders.h"

namespace vigil {
namespace {

using ::testing::Contains;
using testing::Ev;

TEST(RiskProfileTest, SummarisesWhatASupervisorNeeds) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  ASSERT_TRUE(p.Apply(Ev("c1").At("09:00").Call(true, "S1"), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("m1").At("09:01").Marker("S1", v1::MarkerMatched::VIOLENCE), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("a1").At("09:05").ArrestRequested("R1"), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("c2").At("10:00").Incident("I2").Call(true, "S1"), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("r1").At("10:30").Incident("I2").Assessed(v1::RiskAssessed::MEDIUM, 15), &out).ok());

  const v1::RiskProfile profile = BuildRiskProfile(*p.FindVictim("V1"), engine.rules());
  EXPECT_EQ(profile.victim_id(), "V1");
  EXPECT_EQ(profile.calls_total(), 2u);
  EXPECT_EQ(profile.calls_last_24h(), 2u);
  EXPECT_EQ(profile.domestic_abuse_incidents_last_365d(), 2u);
  EXPECT_EQ(profile.latest_assessment().recorded_level(), v1::RiskAssessed::MEDIUM);
  EXPECT_EQ(profile.latest_assessment().effective_level(), v1::RiskAssessed::HIGH);
  ASSERT_EQ(profile.markers_size(), 1);
  EXPECT_EQ(profile.markers(0).marker(), v1::MarkerMatched::VIOLENCE);
  EXPECT_EQ(profile.risk_level(), v1::RiskProfile::RISK_HIGH);
  EXPECT_THAT(profile.risk_reasons(), Contains("The latest risk assessment is HIGH."));
  std::set<std::string> open_rules;
  for (const auto& d : profile.open_deadlines()) open_rules.insert(d.rule());
  EXPECT_TRUE(open_rules.count("risk-assessment-overdue"));  // incident I1 is not assessed
  EXPECT_TRUE(open_rules.count("marac-referral-overdue"));
  std::set<std::string> alert_rules;
  for (const auto& a : profile.active_alerts()) alert_rules.insert(a.rule());
  EXPECT_EQ(alert_rules, (std::set<std::string>{"arrest-overdue", "marker-on-call", "repeat-calls"}));
}

TEST(RiskProfileTest, NothingRecordedIsStandard) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  ASSERT_TRUE(p.Apply(Ev("c1").At("09:00").Call(false), &out).ok());
  const v1::RiskProfile profile = BuildRiskProfile(*p.FindVictim("V1"), engine.rules());
  EXPECT_EQ(profile.risk_level(), v1::RiskProfile::RISK_STANDARD);
  EXPECT_EQ(profile.risk_reasons_size(), 1);
}

}  // namespace
}  // namespace vigil
