// The risk profile: what a supervisor needs to see about one victim, derived
// from the victim's state alone. Pure; thread-safe.
#pragma once

#include "services/escalation/engine/rules_config.h"
#include "vigil/v1/risk_profile.pb.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

// Counts are as of the victim's latest event time. The risk level is the
// highest that any reason supports: a HIGH assessment (never lowered), a
// violence or weapons marker on a domestic-abuse suspect, the potential-
// escalation count, or a serial-perpetrator finding make it HIGH; a MEDIUM
// assessment, repeat calls or any other active alert make it at least MEDIUM.
v1::RiskProfile BuildRiskProfile(const v1::state::VictimState& victim, const RulesConfig& rules);

}  // namespace vigil
