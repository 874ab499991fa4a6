// What the event fuzzers share: an event that decodes is validated and, when
// valid, applied by the engine to a fresh processor, as vigild would.
#pragma once

#include "services/escalation/engine/processor.h"
#include "services/escalation/engine/validate.h"

namespace vigil::fuzz {

inline void ValidateAndApply(const v1::Event& event) {
  static const Engine* engine = new Engine(RulesConfig::Defaults());
  if (!ValidateEvent(event).ok()) return;
  Processor processor(engine);
  std::vector<v1::Alert> alerts;
  // Twice: the second is a redelivery and must be recognised as one.
  (void)processor.Apply(event, &alerts);
  (void)processor.Apply(event, &alerts);
  (void)processor.AdvanceTo(ToMicros(event.occurred_at()) + 400LL * 24 * 3600 * 1000000, &alerts);
  (void)processor.StateDigest();
}

}  // namespace vigil::fuzz
