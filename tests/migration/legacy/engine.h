// The wave-1 rule engine, as it was before issue 11 (protobuf state, whole
// history): kept only so that tests/migration/engine_diff.cc can diff the new
// engine's output against it. Delete it with the diff, not before.
//
// The rule engine: a pure, deterministic function of (state, input) to
// (state, alert transitions). No clock, no I/O, no randomness: time comes only
// from events, so replaying the same inputs gives the same state and alerts.
//
// Two views:
//  - a victim's state (VictimState), changed by that victim's events and by
//    suspect findings; it owns the victim's alerts and pending deadlines;
//  - a suspect's state (SuspectState), changed by suspect links that victim
//    events emit; it raises findings for `serial-perpetrator`. Links and
//    findings are messages, so the two views can live on different Kafka
//    partitions (links keyed by suspect, findings keyed by victim).
//
// An Engine is immutable after construction: share it across threads; each
// state must be used by one thread at a time.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/time_util.h"
#include "services/escalation/engine/engine.h"  // EventFingerprint, shared
#include "services/escalation/engine/rules_config.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/event.pb.h"
#include "vigil/v1/state.pb.h"

namespace vigil::legacy {

namespace state = v1::state;

// What one step of the engine produced, in the order it happened.
struct EngineOutput {
  std::vector<v1::Alert> transitions;
  std::vector<v1::SuspectLink> suspect_links;
  // The event had been applied before, with the same content: nothing changed.
  bool duplicate = false;
};

inline constexpr Micros kNoDeadline = INT64_MAX;

class Engine {
 public:
  explicit Engine(RulesConfig rules) : rules_(std::move(rules)) { rules_.Freeze(); }

  const RulesConfig& rules() const { return rules_; }

  // Applies one event to its victim's state: records the fact, raises, updates
  // or resolves alerts that are due at once, and adds or removes deadlines.
  // It fires no deadline: FireEarliest does, when the caller's stream time
  // reaches it.
  // REQUIRES: ValidateEvent(event) is OK; state is this victim's (or empty).
  // Returns OK (out->duplicate when the event had been applied already);
  // ALREADY_EXISTS when the event id was applied with different content;
  // NOT_FOUND when it acknowledges an alert this victim does not have.
  // On an error the state is unchanged.
  absl::Status Apply(const v1::Event& event, state::VictimState* victim, EngineOutput* out) const;

  // What Apply would say of the event, without applying it: true when it is
  // new, false when it is a duplicate, or the error Apply would return.
  absl::StatusOr<bool> Check(const v1::Event& event, const state::VictimState& victim) const;

  // Applies a finding of the suspect view to the victim it names.
  void ApplyFinding(const v1::SuspectFinding& finding, state::VictimState* victim,
                    EngineOutput* out) const;

  // The earliest pending deadline of this victim, or kNoDeadline.
  static Micros NextDue(const state::VictimState& victim);

  // Fires this victim's deadlines due at its earliest due time, if that is at
  // or before `now`. Returns whether anything was due. Callers that hold many
  // victims call it in order of NextDue so that output is in time order.
  bool FireEarliest(Micros now, state::VictimState* victim, EngineOutput* out) const;

  // Applies a link to the suspect's state; appends a finding for each victim
  // call that makes the suspect linked to `count` victims within the window.
  void ApplyLink(const v1::SuspectLink& link, state::SuspectState* suspect,
                 std::vector<v1::SuspectFinding>* findings) const;

 private:
  RulesConfig rules_;
};


}  // namespace vigil::legacy
