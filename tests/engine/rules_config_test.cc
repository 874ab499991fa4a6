#include "services/escalation/engine/rules_config.h"

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vigil {
namespace {

using ::testing::HasSubstr;

absl::Status ParseError(const std::string& yaml) { return ParseRulesYaml(yaml, "test.yaml").status(); }

TEST(RulesConfigTest, ShippedFileEqualsDomainDefaults) {
  auto shipped = LoadRulesFile(VIGIL_SOURCE_DIR "/deploy/config/rules.yaml");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  const RulesConfig defaults = RulesConfig::Defaults();
  for (int i = 0; i < kRuleCount; ++i) {
    const RuleId id = static_cast<RuleId>(i);
    const RuleSettings& a = shipped->rule(id);
    const RuleSettings& b = defaults.rule(id);
    EXPECT_EQ(a.level, b.level) << RuleName(id);
    EXPECT_EQ(a.acknowledge_within, b.acknowledge_within) << RuleName(id);
    EXPECT_EQ(a.count, b.count) << RuleName(id);
    EXPECT_EQ(a.window, b.window) << RuleName(id);
    EXPECT_EQ(a.deadline, b.deadline) << RuleName(id);
    EXPECT_EQ(a.immediate_deadline, b.immediate_deadline) << RuleName(id);
    EXPECT_EQ(a.priority_deadline, b.priority_deadline) << RuleName(id);
    EXPECT_EQ(a.markers, b.markers) << RuleName(id);
    EXPECT_EQ(a.before, b.before) << RuleName(id);
    EXPECT_TRUE(a.enabled);
  }
  EXPECT_EQ(shipped->dash_high_yes_count(), 14u);
}

TEST(RulesConfigTest, DefaultsAreDomainMd) {
  const RulesConfig c = RulesConfig::Defaults();
  EXPECT_EQ(c.Threshold(RuleId::kRepeatCalls), "2 calls in 24h");
  EXPECT_EQ(c.Threshold(RuleId::kPotentialEscalation), "3 domestic-abuse incidents in 365d");
  EXPECT_EQ(c.Threshold(RuleId::kSerialPerpetrator), "2 victims in 365d");
  EXPECT_EQ(c.Threshold(RuleId::kAttendanceOverdue), "IMMEDIATE 15m, PRIORITY 1h");
  EXPECT_EQ(c.rule(RuleId::kDisclosureOverdue).level, v1::INSPECTOR);
  EXPECT_EQ(c.rule(RuleId::kMaracReferralOverdue).acknowledge_within, 24 * kMicrosPerHour);
  EXPECT_EQ(c.rule(RuleId::kArrestDeferred).acknowledge_within, 10 * kMicrosPerMinute);
}

TEST(RulesConfigTest, OverridesReplaceOnlyWhatTheyName) {
  auto c = ParseRulesYaml("rules:\n  repeat-calls:\n    count: 3\n    window: 12h\n", "x");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rule(RuleId::kRepeatCalls).count, 3u);
  EXPECT_EQ(c->rule(RuleId::kRepeatCalls).window, 12 * kMicrosPerHour);
  EXPECT_EQ(c->rule(RuleId::kRepeatCalls).acknowledge_within, 10 * kMicrosPerMinute);
  EXPECT_EQ(c->rule(RuleId::kPotentialEscalation).count, 3u);
}

TEST(RulesConfigTest, ErrorsNameTheRuleAndTheField) {
  absl::Status s = ParseError("rules:\n  repeat-calls:\n    window: soon\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("test.yaml: rule 'repeat-calls', field 'window': 'soon' is not a duration from 1m to 400d"));

  EXPECT_THAT(ParseError("rules:\n  arrest-overdue:\n    count: 2\n").message(),
              HasSubstr("rule 'arrest-overdue', field 'count': not a setting of this rule"));
  EXPECT_THAT(ParseError("rules:\n  repeat-call:\n    count: 2\n").message(), HasSubstr("unknown rule 'repeat-call'"));
  EXPECT_THAT(ParseError("rules:\n  disclosure-overdue:\n    level: SERGEANT\n").message(),
              HasSubstr("rule 'disclosure-overdue', field 'level': unknown level 'SERGEANT'"));
  EXPECT_THAT(ParseError("rules:\n  repeat-calls:\n    count: 0\n").message(),
              HasSubstr("rule 'repeat-calls', field 'count'"));
  EXPECT_THAT(ParseError("rules:\n  attendance-overdue:\n    deadlines: {URGENT: 5m}\n").message(),
              HasSubstr("rule 'attendance-overdue', field 'deadlines.URGENT': unknown grade"));
  EXPECT_THAT(ParseError("rules:\n  marker-on-call:\n    markers: [KNIVES]\n").message(),
              HasSubstr("rule 'marker-on-call', field 'markers': unknown marker 'KNIVES'"));
  EXPECT_THAT(ParseError("rules:\n  repeat-calls:\n    acknowledge_within: 0m\n").message(),
              HasSubstr("field 'acknowledge_within': '0m' is not a duration from 1m to 30d"));
  EXPECT_THAT(ParseError("rules: [\n").message(), HasSubstr("test.yaml: not valid YAML: line"));
  EXPECT_THAT(ParseError("rulez: {}\n").message(), HasSubstr("unknown section 'rulez'"));
  EXPECT_THAT(ParseError("history:\n  horizon: 12h\n").message(),
              HasSubstr("history, field 'horizon': expected a duration from 1d to 36500d"));
  EXPECT_THAT(ParseError("history:\n  keep: 1d\n").message(), HasSubstr("history, field 'keep': not a setting"));
}

TEST(RulesConfigTest, TheHorizonIsASettingWithADefault) {
  EXPECT_EQ(RulesConfig::Defaults().horizon(), 400 * kMicrosPerDay);
  absl::StatusOr<RulesConfig> c = ParseRulesYaml("history:\n  horizon: 730d\n", "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->horizon(), 730 * kMicrosPerDay);
}

TEST(RulesConfigTest, StrictParsingRefusesWhatWouldSilentlyChangeARule) {
  // A duration that used to wrap to 99 s; a count that makes every call a repeat.
  EXPECT_THAT(ParseError("rules:\n  repeat-calls:\n    acknowledge_within: 1066238887779d\n").message(),
              HasSubstr("field 'acknowledge_within': '1066238887779d' is not a duration from 1m to 30d"));
  EXPECT_THAT(ParseError("rules:\n  potential-escalation:\n    window: 5000d\n").message(),
              HasSubstr("field 'window': '5000d' is not a duration from 1m to 400d"));
  EXPECT_THAT(ParseError("rules:\n  repeat-calls:\n    count: 1\n").message(),
              HasSubstr("field 'count': expected a whole number from 2 to 1000, got '1'"));
  // A repeated key: the last one does not silently win.
  EXPECT_THAT(ParseError("rules:\n  repeat-calls:\n    count: 2\n    count: 9\n").message(),
              HasSubstr("test.yaml: line 4: duplicate key 'count' (first at line 3)"));
  EXPECT_THAT(ParseError("rules:\n  repeat-calls: {}\n  repeat-calls:\n    enabled: false\n").message(),
              HasSubstr("test.yaml: line 3: duplicate key 'repeat-calls'"));
  // A list as a key.
  EXPECT_THAT(ParseError("rules:\n  ? [a, b]\n  : {}\n").message(), HasSubstr("a key must be a single value"));
  // A long bad value is echoed at most 80 characters.
  const absl::Status long_value = ParseError("rules:\n  repeat-calls:\n    window: " + std::string(100000, 'x') + "\n");
  EXPECT_EQ(long_value.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(long_value.message().size(), 300u);
}

TEST(RulesConfigTest, AFileOverTheSizeLimitIsRefusedBeforeItIsRead) {
  const std::string path = ::testing::TempDir() + "/huge-rules.yaml";
  {
    std::ofstream out(path);
    out << "# " << std::string(2 << 20, 'x') << "\n";
  }
  absl::StatusOr<RulesConfig> c = LoadRulesFile(path);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("a configuration file may have at most 1048576"));
  std::remove(path.c_str());
}

TEST(RulesConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadRulesFile("/nonexistent/rules.yaml").status().code(), absl::StatusCode::kNotFound);
}

TEST(RulesConfigTest, PerForceOverridesChangeOnlyThatForcesSettings) {
  auto c = ParseRulesYaml(R"(
version: kent-2026-1
rules:
  repeat-calls: {count: 3}
overrides:
  - force: kent
    rules:
      potential-escalation: {window: 182d}
      abandoned-call: {enabled: false}
)",
                          "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  c->Freeze();
  EXPECT_EQ(c->version(), "kent-2026-1");
  const RulesConfig& kent = c->For("kent");
  EXPECT_EQ(kent.rule(RuleId::kPotentialEscalation).window, 182 * kMicrosPerDay);
  EXPECT_FALSE(kent.rule(RuleId::kAbandonedCall).enabled);
  EXPECT_EQ(kent.rule(RuleId::kRepeatCalls).count, 3u);  // the file's own rules, then the force's
  EXPECT_EQ(kent.version(), "kent-2026-1");
  EXPECT_EQ(kent.threshold(RuleId::kPotentialEscalation), "3 domestic-abuse incidents in 182d");
  const RulesConfig& essex = c->For("essex");
  EXPECT_EQ(essex.rule(RuleId::kPotentialEscalation).window, 365 * kMicrosPerDay);
  EXPECT_TRUE(essex.rule(RuleId::kAbandonedCall).enabled);
}

TEST(RulesConfigTest, OverrideErrorsNameTheFileTheForceTheRuleAndTheField) {
  EXPECT_EQ(ParseError("overrides: [{force: kent, rules: {potential-escalation: {window: 2y}}}]").message(),
            "test.yaml: force 'kent': rule 'potential-escalation', field 'window': '2y' is not a duration from 1m "
            "to 400d (a whole number and one of s, m, h, d)");
  EXPECT_THAT(ParseError("overrides: [{force: kent, rules: {no-such-rule: {}}}]").message(),
              HasSubstr("test.yaml: force 'kent': unknown rule 'no-such-rule'"));
  EXPECT_THAT(ParseError("overrides: [{force: kent, rules: {repeat-calls: {deadline: 1h}}}]").message(),
              HasSubstr("test.yaml: force 'kent': rule 'repeat-calls', field 'deadline': not a setting of this rule"));
  EXPECT_THAT(ParseError("overrides: [{rules: {}}]").message(), HasSubstr("test.yaml: overrides[0]: 'force'"));
  EXPECT_THAT(ParseError("overrides: [{force: kent, rules: {}}, {force: kent, rules: {}}]").message(),
              HasSubstr("overrides[1]: force 'kent' is overridden twice"));
  EXPECT_THAT(ParseError("overrides: {force: kent}").message(), HasSubstr("'overrides' must be a list"));
  EXPECT_EQ(ParseError("overrides: [{force: kent, rules: {}}]").code(), absl::StatusCode::kOk);
}

}  // namespace
}  // namespace vigil
