#include "services/escalation/engine/rules_config.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/yaml_file.h"
#include "vigil/v1/event.pb.h"
#include "yaml-cpp/yaml.h"

namespace vigil {
namespace {

constexpr std::array<absl::string_view, kRuleCount> kRuleNames = {
    "repeat-calls",
    "potential-escalation",
    "marker-on-call",
    "unit-unavailable",
    "arrest-deferred",
    "arrest-overdue",
    "attendance-overdue",
    "risk-assessment-overdue",
    "closed-without-assessment",
    "marac-referral-overdue",
    "disclosure-due-soon",
    "disclosure-overdue",
    "serial-perpetrator",
    "repeat-marac",
    "abandoned-call",
    "suspect-outstanding",
    "protection-breach-call",
    "protection-hearing-overdue",
    "bail-expiring",
};

// Which optional fields each rule takes, besides enabled, level and acknowledge_within.
enum Field : unsigned { kCount = 1, kWindow = 2, kDeadline = 4, kGradeDeadlines = 8, kMarkers = 16, kBefore = 32 };

unsigned FieldsOf(RuleId id) {
  switch (id) {
    case RuleId::kRepeatCalls:
    case RuleId::kPotentialEscalation:
    case RuleId::kSerialPerpetrator:
      return kCount | kWindow;
    case RuleId::kRepeatMarac:
      return kWindow;
    case RuleId::kMarkerOnCall:
      return kMarkers;
    case RuleId::kArrestOverdue:
    case RuleId::kRiskAssessmentOverdue:
    case RuleId::kMaracReferralOverdue:
    case RuleId::kDisclosureDueSoon:
    case RuleId::kDisclosureOverdue:
    case RuleId::kAbandonedCall:
    case RuleId::kSuspectOutstanding:
    case RuleId::kProtectionHearingOverdue:
      return kDeadline;
    case RuleId::kBailExpiring:
      return kBefore;
    case RuleId::kAttendanceOverdue:
      return kGradeDeadlines;
    default:
      return 0;
  }
}

absl::Status FieldError(absl::string_view source, absl::string_view rule, absl::string_view field,
                        absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": rule '", rule, "', field '", field, "': ", what));
}

absl::StatusOr<std::string> Scalar(const YAML::Node& node) {
  if (!node.IsScalar()) return absl::InvalidArgumentError("expected a single value");
  return node.Scalar();
}

// A duration from `min` to `max`; the error gives the range.
absl::StatusOr<Micros> DurationField(const YAML::Node& node, Micros min, Micros max) {
  auto text = Scalar(node);
  if (!text.ok()) return text.status();
  auto d = ParseDuration(*text);
  if (!d.ok() || *d < min || *d > max) {
    return absl::InvalidArgumentError(absl::StrCat("'", Shown(*text), "' is not a duration from ",
                                                   FormatDuration(min), " to ", FormatDuration(max),
                                                   " (a whole number and one of s, m, h, d)"));
  }
  return *d;
}

// The ranges a setting may take: wide enough for any force, narrow enough that a typo cannot silence
// a rule (a window of seconds) or make it fire at everything.
constexpr Micros kMinAcknowledge = kMicrosPerMinute, kMaxAcknowledge = 30 * kMicrosPerDay;
constexpr Micros kMinWindow = kMicrosPerMinute, kMaxWindow = 400 * kMicrosPerDay;  // the history horizon
constexpr Micros kMinDeadline = kMicrosPerMinute, kMaxDeadline = 365 * kMicrosPerDay;
constexpr int kMaxCount = 1000;

absl::Status ApplyRule(absl::string_view source, RuleId id, const YAML::Node& node,
                       RuleSettings* rule) {
  const absl::string_view name = RuleName(id);
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": rule '", name, "': expected a mapping of settings"));
  }
  const unsigned fields = FieldsOf(id);
  for (const auto& kv : node) {
    const std::string field = kv.first.as<std::string>("");
    const YAML::Node& value = kv.second;
    auto fail = [&](const absl::Status& s) { return FieldError(source, name, field, s.message()); };
    if (field == "enabled") {
      auto text = Scalar(value);
      if (!text.ok()) return fail(text.status());
      if (*text == "true") {
        rule->enabled = true;
      } else if (*text == "false") {
        rule->enabled = false;
      } else {
        return FieldError(source, name, field, "expected true or false");
      }
    } else if (field == "level") {
      auto text = Scalar(value);
      if (!text.ok()) return fail(text.status());
      v1::Level level;
      if (!v1::Level_Parse(*text, &level) || level == v1::LEVEL_UNSPECIFIED) {
        return FieldError(source, name, field,
                          absl::StrCat("unknown level '", Shown(*text),
                                       "' (SUPERVISOR, INSPECTOR or SUPERINTENDENT)"));
      }
      rule->level = level;
    } else if (field == "acknowledge_within") {
      auto d = DurationField(value, kMinAcknowledge, kMaxAcknowledge);
      if (!d.ok()) return fail(d.status());
      rule->acknowledge_within = *d;
    } else if (field == "count" && (fields & kCount)) {
      auto text = Scalar(value);
      if (!text.ok()) return fail(text.status());
      // A count of one would make every call a repeat and every suspect a serial perpetrator.
      int n = 0;
      if (!YAML::convert<int>::decode(value, n) || n < 2 || n > kMaxCount) {
        return FieldError(source, name, field,
                          absl::StrCat("expected a whole number from 2 to ", kMaxCount, ", got '", Shown(*text), "'"));
      }
      rule->count = static_cast<uint32_t>(n);
    } else if (field == "window" && (fields & kWindow)) {
      auto d = DurationField(value, kMinWindow, kMaxWindow);
      if (!d.ok()) return fail(d.status());
      rule->window = *d;
    } else if (field == "deadline" && (fields & kDeadline)) {
      auto d = DurationField(value, kMinDeadline, kMaxDeadline);
      if (!d.ok()) return fail(d.status());
      rule->deadline = *d;
    } else if (field == "before" && (fields & kBefore)) {
      auto d = DurationField(value, kMinDeadline, kMaxDeadline);
      if (!d.ok()) return fail(d.status());
      rule->before = *d;
    } else if (field == "deadlines" && (fields & kGradeDeadlines)) {
      if (!value.IsMap()) return FieldError(source, name, field, "expected a mapping of grade to duration");
      for (const auto& g : value) {
        const std::string grade = Shown(g.first.Scalar());
        auto d = DurationField(g.second, kMinDeadline, kMaxDeadline);
        if (!d.ok()) return FieldError(source, name, absl::StrCat(field, ".", grade), d.status().message());
        if (grade == "IMMEDIATE") {
          rule->immediate_deadline = *d;
        } else if (grade == "PRIORITY") {
          rule->priority_deadline = *d;
        } else {
          return FieldError(source, name, absl::StrCat(field, ".", grade),
                            "unknown grade (IMMEDIATE or PRIORITY)");
        }
      }
    } else if (field == "markers" && (fields & kMarkers)) {
      if (!value.IsSequence() || value.size() == 0) {
        return FieldError(source, name, field, "expected a list of markers, e.g. [VIOLENCE, WEAPONS]");
      }
      std::vector<int> markers;
      for (const auto& m : value) {
        const std::string text = m.IsScalar() ? m.Scalar() : "";
        v1::MarkerMatched::Marker marker;
        if (!v1::MarkerMatched::Marker_Parse(text, &marker) ||
            marker == v1::MarkerMatched::MARKER_UNSPECIFIED) {
          return FieldError(source, name, field, absl::StrCat("unknown marker '", Shown(text), "'"));
        }
        markers.push_back(marker);
      }
      rule->markers = std::move(markers);
    } else {
      return FieldError(source, name, Shown(field), "not a setting of this rule");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view RuleName(RuleId id) { return kRuleNames[static_cast<int>(id)]; }

bool RuleFromName(absl::string_view name, RuleId* id) {
  for (int i = 0; i < kRuleCount; ++i) {
    if (kRuleNames[i] == name) {
      *id = static_cast<RuleId>(i);
      return true;
    }
  }
  return false;
}

RulesConfig RulesConfig::Defaults() {
  RulesConfig c;
  auto& repeat = c.mutable_rule(RuleId::kRepeatCalls);
  repeat.count = 2;
  repeat.window = 24 * kMicrosPerHour;
  auto& escalation = c.mutable_rule(RuleId::kPotentialEscalation);
  escalation.count = 3;
  escalation.window = 365 * kMicrosPerDay;
  escalation.acknowledge_within = 24 * kMicrosPerHour;
  c.mutable_rule(RuleId::kMarkerOnCall).markers = {v1::MarkerMatched::VIOLENCE,
                                                   v1::MarkerMatched::WEAPONS};
  c.mutable_rule(RuleId::kArrestOverdue).deadline = kMicrosPerHour;
  auto& attendance = c.mutable_rule(RuleId::kAttendanceOverdue);
  attendance.immediate_deadline = 15 * kMicrosPerMinute;
  attendance.priority_deadline = 60 * kMicrosPerMinute;
  c.mutable_rule(RuleId::kRiskAssessmentOverdue).deadline = 24 * kMicrosPerHour;
  auto& marac = c.mutable_rule(RuleId::kMaracReferralOverdue);
  marac.deadline = 72 * kMicrosPerHour;
  marac.acknowledge_within = 24 * kMicrosPerHour;
  auto& soon = c.mutable_rule(RuleId::kDisclosureDueSoon);
  soon.deadline = 21 * kMicrosPerDay;
  soon.acknowledge_within = 24 * kMicrosPerHour;
  auto& overdue = c.mutable_rule(RuleId::kDisclosureOverdue);
  overdue.deadline = 28 * kMicrosPerDay;
  overdue.level = v1::INSPECTOR;
  overdue.acknowledge_within = 24 * kMicrosPerHour;
  auto& serial = c.mutable_rule(RuleId::kSerialPerpetrator);
  serial.count = 2;
  serial.window = 365 * kMicrosPerDay;
  serial.level = v1::INSPECTOR;
  serial.acknowledge_within = 24 * kMicrosPerHour;
  auto& repeat_marac = c.mutable_rule(RuleId::kRepeatMarac);
  repeat_marac.window = 365 * kMicrosPerDay;
  repeat_marac.acknowledge_within = 24 * kMicrosPerHour;
  c.mutable_rule(RuleId::kAbandonedCall).deadline = 10 * kMicrosPerMinute;
  auto& outstanding = c.mutable_rule(RuleId::kSuspectOutstanding);
  outstanding.deadline = 24 * kMicrosPerHour;
  outstanding.acknowledge_within = kMicrosPerHour;
  auto& hearing = c.mutable_rule(RuleId::kProtectionHearingOverdue);
  hearing.deadline = 48 * kMicrosPerHour;
  hearing.level = v1::INSPECTOR;
  hearing.acknowledge_within = kMicrosPerHour;
  auto& bail = c.mutable_rule(RuleId::kBailExpiring);
  bail.before = 7 * kMicrosPerDay;
  bail.acknowledge_within = 24 * kMicrosPerHour;
  return c;
}

std::string RulesConfig::Threshold(RuleId id) const {
  const RuleSettings& r = rule(id);
  switch (id) {
    case RuleId::kRepeatCalls:
      return absl::StrCat(r.count, " calls in ", FormatDuration(r.window));
    case RuleId::kPotentialEscalation:
      return absl::StrCat(r.count, " domestic-abuse incidents in ", FormatDuration(r.window));
    case RuleId::kSerialPerpetrator:
      return absl::StrCat(r.count, " victims in ", FormatDuration(r.window));
    case RuleId::kRepeatMarac:
      return absl::StrCat("a domestic-abuse incident within ", FormatDuration(r.window), " of a MARAC referral");
    case RuleId::kAttendanceOverdue:
      return absl::StrCat("IMMEDIATE ", FormatDuration(r.immediate_deadline), ", PRIORITY ",
                          FormatDuration(r.priority_deadline));
    case RuleId::kArrestOverdue:
    case RuleId::kRiskAssessmentOverdue:
    case RuleId::kMaracReferralOverdue:
    case RuleId::kDisclosureDueSoon:
    case RuleId::kDisclosureOverdue:
    case RuleId::kAbandonedCall:
    case RuleId::kSuspectOutstanding:
    case RuleId::kProtectionHearingOverdue:
      return FormatDuration(r.deadline);
    case RuleId::kBailExpiring:
      return absl::StrCat(FormatDuration(r.before), " before bail ends");
    default:
      return "at once";
  }
}

void RulesConfig::Freeze() {
  for (int i = 0; i < kRuleCount; ++i) thresholds_[i] = Threshold(static_cast<RuleId>(i));
  call_window_ = std::max(rule(RuleId::kRepeatCalls).window, rule(RuleId::kPotentialEscalation).window);
  for (auto& [force, config] : overrides_) {
    auto frozen = std::make_shared<RulesConfig>(*config);
    frozen->horizon_ = horizon_;
    frozen->version_ = version_;
    frozen->Freeze();
    call_window_ = std::max(call_window_, frozen->call_window_);
    config = std::move(frozen);
  }
}

const RulesConfig& RulesConfig::For(absl::string_view force) const {
  for (const auto& [name, config] : overrides_) {
    if (name == force) return *config;
  }
  return *this;
}

void RulesConfig::SetOverride(std::string force, RulesConfig rules) {
  rules.overrides_.clear();
  auto config = std::make_shared<const RulesConfig>(std::move(rules));
  for (auto& [name, existing] : overrides_) {
    if (name == force) {
      existing = std::move(config);
      return;
    }
  }
  overrides_.emplace_back(std::move(force), std::move(config));
}

void RulesConfig::set_version(std::string version) {
  version_ = std::move(version);
  for (auto& [force, config] : overrides_) {
    auto copy = std::make_shared<RulesConfig>(*config);
    copy->version_ = version_;
    config = std::move(copy);
  }
}

namespace {

// A `rules:` block (rule ids to settings) over `config`.
absl::Status ApplyRules(absl::string_view source, const YAML::Node& node, RulesConfig* config) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(source, ": 'rules' must map rule ids to settings"));
  for (const auto& kv : node) {
    const std::string name = kv.first.as<std::string>("");
    RuleId id;
    if (!RuleFromName(name, &id)) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": unknown rule '", Shown(name),
                                                     "' (known: ", absl::StrJoin(kRuleNames, ", "), ")"));
    }
    if (auto s = ApplyRule(source, id, kv.second, &config->mutable_rule(id)); !s.ok()) return s;
  }
  const RuleSettings& a = config->rule(RuleId::kAttendanceOverdue);
  if (a.immediate_deadline == 0 && a.priority_deadline == 0 && a.enabled) {
    return FieldError(source, "attendance-overdue", "deadlines", "at least one grade needs a deadline");
  }
  return absl::OkStatus();
}

// `overrides: [{force: NAME, rules: {...}}, ...]` over `config`, each from the configuration as the file's
// `rules:` left it.
absl::Status ApplyOverrides(absl::string_view source, const YAML::Node& node, RulesConfig* config) {
  if (!node.IsSequence()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": 'overrides' must be a list of {force: NAME, rules: {RULE_ID: {SETTING: VALUE}}}"));
  }
  std::vector<std::string> seen;
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& entry = node[i];
    const std::string where = absl::StrCat(source, ": overrides[", i, "]");
    if (!entry.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected {force: NAME, rules: {...}}"));
    std::string force;
    std::optional<YAML::Node> rules;  // held by value: the iterator's pair goes with each step
    for (const auto& kv : entry) {
      const std::string key = kv.first.as<std::string>("");
      if (key == "force" && kv.second.IsScalar() && !kv.second.Scalar().empty()) {
        force = kv.second.Scalar();
      } else if (key == "rules") {
        rules.emplace(kv.second);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": '", Shown(key), "' is not a field (force, a name; rules, a mapping)"));
      }
    }
    if (force.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": 'force' (a name) is required"));
    if (std::find(seen.begin(), seen.end(), force) != seen.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": force '", Shown(force), "' is overridden twice"));
    }
    seen.push_back(force);
    if (!rules) return absl::InvalidArgumentError(absl::StrCat(where, ": 'rules' is required"));
    RulesConfig forced = *config;
    if (auto s = ApplyRules(absl::StrCat(source, ": force '", Shown(force), "'"), *rules, &forced); !s.ok()) {
      return s;
    }
    config->SetOverride(force, std::move(forced));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RulesConfig> ParseRulesYaml(absl::string_view yaml_text, absl::string_view source) {
  RulesConfig config = RulesConfig::Defaults();
  absl::StatusOr<YAML::Node> parsed = ParseStrictYaml(yaml_text, source);
  if (!parsed.ok()) return parsed.status();
  const YAML::Node root = *parsed;
  if (root.IsNull()) return config;
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(source, ": expected a mapping at the top"));
  std::optional<YAML::Node> rules_node, overrides_node;
  try {
    for (const auto& top : root) {
      const std::string key = top.first.as<std::string>("");
      if (key == "rules") {
        rules_node.emplace(top.second);
      } else if (key == "overrides") {
        overrides_node.emplace(top.second);
      } else if (key == "version") {
        if (!top.second.IsScalar() || top.second.Scalar().empty() || top.second.Scalar().size() > 64) {
          return absl::InvalidArgumentError(absl::StrCat(source, ": 'version' must be a name of 1 to 64 characters"));
        }
        config.set_version(top.second.Scalar());
      } else if (key == "assessment") {
        const YAML::Node& node = top.second;
        if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(source, ": 'assessment' must be a mapping"));
        for (const auto& kv : node) {
          const std::string field = kv.first.as<std::string>("");
          int n = 0;
          if (field != "dash_high_yes_count") {
            return absl::InvalidArgumentError(
                absl::StrCat(source, ": assessment, field '", Shown(field), "': not a setting"));
          }
          if (!kv.second.IsScalar() || !YAML::convert<int>::decode(kv.second, n) || n < 1 || n > 24) {
            return absl::InvalidArgumentError(absl::StrCat(
                source, ": assessment, field 'dash_high_yes_count': expected a whole number from 1 to 24"));
          }
          config.set_dash_high_yes_count(static_cast<uint32_t>(n));
        }
      } else if (key == "history") {
        const YAML::Node& node = top.second;
        if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(source, ": 'history' must be a mapping"));
        for (const auto& kv : node) {
          const std::string field = kv.first.as<std::string>("");
          if (field != "horizon") {
            return absl::InvalidArgumentError(
                absl::StrCat(source, ": history, field '", Shown(field), "': not a setting"));
          }
          absl::StatusOr<Micros> d = kv.second.IsScalar() ? ParseDuration(kv.second.as<std::string>())
                                                          : absl::InvalidArgumentError("not a duration");
          if (!d.ok() || *d < kMinHorizon || *d > kMaxDuration) {
            return absl::InvalidArgumentError(absl::StrCat(
                source, ": history, field 'horizon': expected a duration from 1d to 36500d, such as 400d"));
          }
          config.set_horizon(*d);
        }
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": unknown section '", Shown(key),
                         "' (expected 'version', 'rules', 'overrides', 'assessment' or 'history')"));
      }
    }
    // The file's rules first, then each force's overrides of them.
    if (rules_node) {
      if (auto s = ApplyRules(source, *rules_node, &config); !s.ok()) return s;
    }
    if (overrides_node) {
      if (auto s = ApplyOverrides(source, *overrides_node, &config); !s.ok()) return s;
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": line ", e.mark.line + 1, ": ", Shown(e.msg)));
  }
  return config;
}

absl::StatusOr<RulesConfig> LoadRulesFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  return ParseRulesYaml(*text, path);
}

}  // namespace vigil
