// The rule engine: a pure, deterministic function of (state, input) to
// (state, alert transitions). No clock, no I/O, no randomness: time comes only
// from events, so replaying the same inputs gives the same state and alerts.
//
// State is plain C++ (live.h), one live::Victim per victim:
//  - a victim's state is changed by that victim's events and by suspect
//    findings; it owns the victim's alerts and pending deadlines;
//  - a suspect's state (live::Suspect) is changed by suspect links that victim
//    events emit; it raises findings for `serial-perpetrator`. Links and
//    findings are messages, so the two views can live on different Kafka
//    partitions (links keyed by suspect, findings keyed by victim).
//
// Apply records an event's facts, then hands it to each rule unit in turn
// (rule_unit.h, rules/). Prune drops what no rule can use any more (DOMAIN.md,
// "History is bounded, by stream time").
//
// An Engine is immutable after construction: share it across threads; each
// state must be used by one thread at a time.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "services/escalation/engine/live.h"
#include "services/escalation/engine/rule_unit.h"
#include "services/escalation/engine/rules_config.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/event.pb.h"

namespace vigil {

inline constexpr Micros kNoDeadline = INT64_MAX;
// A DVPN or DAPN without expires_at is in force this long after it was recorded (DOMAIN.md).
inline constexpr Micros kNoticeInForce = 48 * kMicrosPerHour;

class Engine {
 public:
  explicit Engine(RulesConfig rules);

  const RulesConfig& rules() const { return rules_; }

  // Applies one event to its victim's state: records the fact, raises, updates
  // or resolves alerts that are due at once, and adds or removes deadlines.
  // It fires no deadline: Fire does, when the caller's stream time reaches it.
  // REQUIRES: ValidateEvent(event) is OK; victim is this victim's (or new).
  // Returns OK (out->duplicate when the event had been applied already);
  // ALREADY_EXISTS when the event id was applied with different content;
  // NOT_FOUND when it acknowledges an alert this victim does not have.
  // On an error the state is unchanged.
  absl::Status Apply(const v1::Event& event, live::Victim* victim, EngineOutput* out) const;

  // Applies a finding of the suspect view to the victim it names.
  void ApplyFinding(const v1::SuspectFinding& finding, live::Victim* victim, EngineOutput* out) const;

  // Fires one of the victim's deadlines (stream time has reached it).
  void Fire(live::DeadlineKey key, live::Victim* victim, EngineOutput* out) const;

  // Applies a link to the suspect's state; appends a finding for each victim
  // call that makes the suspect linked to `count` victims within the window.
  void ApplyLink(const v1::SuspectLink& link, live::Suspect* suspect,
                 std::vector<v1::SuspectFinding>* findings) const;

  // Drops the facts no rule can use at this stream time: event ids older than
  // the horizon, calls older than the horizon and the longest call window,
  // closed records and resolved alerts as old that nothing open refers to.
  void Prune(Micros stream_time, live::Victim* victim) const;
  void Prune(Micros stream_time, live::Suspect* suspect) const;

 private:
  // Records what the event says on the victim's records.
  void RecordFacts(const v1::Event& e, Micros t, live::Victim& v) const;

  RulesConfig rules_;
  std::vector<std::unique_ptr<RuleUnit>> units_;
  std::array<const RuleUnit*, kRuleCount> deadline_units_{};
};

// A stable 64-bit fingerprint of an event's content, to tell a redelivery from a conflict.
uint64_t EventFingerprint(const v1::Event& event);

}  // namespace vigil
