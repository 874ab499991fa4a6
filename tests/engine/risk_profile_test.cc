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

TEST(RiskProfileTest, ShowsProtectionsInForceBailAndItsEndAndTheLastReferral) {
  Engine engine(RulesConfig::Defaults());
  Processor p(&engine);
  std::vector<v1::Alert> out;
  using testing::T;
  ASSERT_TRUE(p.Apply(Ev("n1").At("09:00").Protection("N1", v1::ProtectionRecorded::DVPN, "S1"), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("o1").At("09:00").Protection("O1", v1::ProtectionRecorded::RESTRAINING_ORDER, "S2"), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("e1").At("09:30").ProtectionEnded("O1"), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("b1").At("10:00").Bail("B1", "S1", T("10:00", 28)), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("b2").At("10:00").Bail("B2", "S3", T("10:00", 20), /*conditions=*/false), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("m1").At("10:30").MaracReferred(), &out).ok());
  ASSERT_TRUE(p.Apply(Ev("m2").At("10:20").MaracReferred(), &out).ok());  // late: not the last

  const v1::RiskProfile profile = BuildRiskProfile(*p.FindVictim("V1"), engine.rules());
  std::set<std::string> in_force;
  for (const auto& r : profile.protections_in_force()) in_force.insert(r.protection_id());
  EXPECT_EQ(in_force, (std::set<std::string>{"N1", "B1"}));  // the order ended; bail B2 has no conditions
  ASSERT_EQ(profile.bail_size(), 2);
  EXPECT_EQ(FormatRfc3339(ToMicros(profile.bail(0).until())), "2024-10-05T10:00:00Z");
  EXPECT_FALSE(profile.bail(1).with_conditions());
  EXPECT_EQ(FormatRfc3339(ToMicros(profile.last_marac_referral())), "2024-09-07T10:30:00Z");
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
