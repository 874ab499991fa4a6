// The escalation rules' settings: every threshold, window, deadline and level.
//
// Defaults() are DOMAIN.md's defaults; a YAML rules file (deploy/config/rules.yaml)
// overrides any of them. A RulesConfig is an immutable value: share it freely
// across threads once built.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "vigil/v1/alert.pb.h"

namespace vigil {

// Stable rule ids: alerts, docs and tests name them.
enum class RuleId : int {
  kRepeatCalls = 0,
  kPotentialEscalation,
  kMarkerOnCall,
  kUnitUnavailable,
  kArrestDeferred,
  kArrestOverdue,
  kAttendanceOverdue,
  kRiskAssessmentOverdue,
  kClosedWithoutAssessment,
  kMaracReferralOverdue,
  kDisclosureDueSoon,
  kDisclosureOverdue,
  kSerialPerpetrator,
  kRepeatMarac,
  kAbandonedCall,
  kSuspectOutstanding,
  kProtectionBreachCall,
  kProtectionHearingOverdue,
  kBailExpiring,
};
inline constexpr int kRuleCount = 19;

// "repeat-calls" for kRepeatCalls, and so on.
absl::string_view RuleName(RuleId id);
// The id for a name; false when no rule has that name.
bool RuleFromName(absl::string_view name, RuleId* id);

inline constexpr Micros kDefaultHorizon = 400 * kMicrosPerDay;
inline constexpr Micros kMinHorizon = kMicrosPerDay;

struct RuleSettings {
  bool enabled = true;
  v1::Level level = v1::SUPERVISOR;
  // An alert not acknowledged within this climbs one level, and again after each further window.
  Micros acknowledge_within = 10 * kMicrosPerMinute;
  // Count rules: how many calls, incidents or victims within `window`.
  uint32_t count = 0;
  Micros window = 0;
  // Deadline rules: how long after the starting event the awaited action is due.
  Micros deadline = 0;
  // bail-expiring: how long before bail_until the warning point is.
  Micros before = 0;
  // attendance-overdue: per grade (0: the grade has no attendance deadline).
  Micros immediate_deadline = 0;
  Micros priority_deadline = 0;
  // marker-on-call: which MarkerMatched.Marker values count (as numbers).
  std::vector<int> markers;
};

class RulesConfig {
 public:
  // DOMAIN.md's default rules.
  static RulesConfig Defaults();

  const RuleSettings& rule(RuleId id) const { return rules_[static_cast<int>(id)]; }
  RuleSettings& mutable_rule(RuleId id) { return rules_[static_cast<int>(id)]; }

  // DASH: this many 'yes' answers make the assessment HIGH whatever was recorded.
  uint32_t dash_high_yes_count() const { return dash_high_yes_count_; }
  void set_dash_high_yes_count(uint32_t n) { dash_high_yes_count_ = n; }

  // Events older than stream time minus the horizon are kept on the timeline and evaluated by no rule;
  // event ids are remembered (for dedupe) this long.
  Micros horizon() const { return horizon_; }
  void set_horizon(Micros horizon) { horizon_ = horizon; }
  // The longer window of the two call-count rules (computed by Freeze()): calls older than stream time
  // minus the horizon and this can no longer count and are dropped.
  Micros call_window() const { return call_window_; }

  // A sentence-sized description of the threshold a rule fires at, e.g. "2 calls in 24h".
  std::string Threshold(RuleId id) const;
  // The same, as computed by Freeze(): what the engine puts on every alert.
  const std::string& threshold(RuleId id) const { return thresholds_[static_cast<int>(id)]; }
  // Computes the derived values above; the engine calls it once on construction.
  void Freeze();

  // The configuration that applies to events of `force`: its override (DOMAIN.md: any setting of any rule may
  // be overridden per force), or this one.
  const RulesConfig& For(absl::string_view force) const;
  // Adds (or replaces) the override of a force: `rules` is the whole configuration for its events.
  void SetOverride(std::string force, RulesConfig rules);
  const std::vector<std::pair<std::string, std::shared_ptr<const RulesConfig>>>& overrides() const {
    return overrides_;
  }

  // The version alerts raised under these rules carry (rules_version): the rules file's `version`, or the one a
  // rules_changed event gives; "default" for DOMAIN.md's defaults.
  const std::string& version() const { return version_; }
  void set_version(std::string version);

 private:
  std::array<RuleSettings, kRuleCount> rules_;
  std::array<std::string, kRuleCount> thresholds_;
  uint32_t dash_high_yes_count_ = 14;
  Micros horizon_ = kDefaultHorizon;
  Micros call_window_ = 0;
  std::string version_ = "default";
  std::vector<std::pair<std::string, std::shared_ptr<const RulesConfig>>> overrides_;
};

// Parses a rules file's text over the defaults: every field it gives replaces the default.
// INVALID_ARGUMENT naming `source`, the rule and the field when anything is wrong or unknown.
absl::StatusOr<RulesConfig> ParseRulesYaml(absl::string_view yaml_text, absl::string_view source);

// Reads and parses a rules file. NOT_FOUND when it cannot be read.
absl::StatusOr<RulesConfig> LoadRulesFile(const std::string& path);

}  // namespace vigil
