// The storage edge of the engine's live state: each live::Victim and
// live::Suspect has one canonical protobuf encoding (state.proto), with its
// records in a fixed order, so that equal state gives equal bytes (the state
// digest is taken over them) and decoding gives back the same state.
#pragma once

#include <memory>
#include <string>

#include "services/escalation/engine/live.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

namespace state = v1::state;

state::VictimState EncodeVictim(const live::Victim& victim);
std::unique_ptr<live::Victim> DecodeVictim(const state::VictimState& stored);

state::SuspectState EncodeSuspect(const live::Suspect& suspect);
live::Suspect DecodeSuspect(const state::SuspectState& stored);

// The alert as published (and stored): its current transition.
v1::Alert AlertMessage(const live::Alert& alert, const std::string& victim_id);

// Deterministic bytes of a message (sorted map keys): equal messages, equal bytes.
std::string DeterministicBytes(const google::protobuf::MessageLite& message);

}  // namespace vigil
