// The storage edge of the engine's live state: each live::Victim and
// live::Suspect has one canonical protobuf encoding (state.proto), with its
// records in a fixed order, so that equal state gives equal bytes (the state
// digest is taken over them) and decoding gives back the same state.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "services/escalation/engine/live.h"
#include "vigil/v1/alert.pb.h"
#include "vigil/v1/state.pb.h"

namespace vigil {

namespace state = v1::state;

// The victim whole; with records=false, the head that a store keeps apart from its records (see VictimDelta):
// without its calls and applied event ids, and each alert by its id only (its latest transition, which the
// store holds anyway, completes it).
state::VictimState EncodeVictim(const live::Victim& victim, bool records = true);
std::unique_ptr<live::Victim> DecodeVictim(const state::VictimState& stored);

// What a commit writes of a victim: its head whole, and the calls and event ids added and dropped since the
// last delta (storage/victim_store.h writes it; reading the records back gives EncodeVictim's whole state).
struct VictimDelta {
  state::VictimState head;
  std::vector<state::CallRecord> calls_put;
  std::vector<std::pair<Micros, std::string>> calls_deleted;  // (at, event id)
  std::vector<state::SeenRecord> seen_put;
  std::vector<std::string> seen_deleted;
  // The victim's first delta: nothing of it is stored yet.
  bool first = false;
};
VictimDelta TakeVictimDelta(live::Victim& victim);

state::SuspectState EncodeSuspect(const live::Suspect& suspect);
live::Suspect DecodeSuspect(const state::SuspectState& stored);

// The alert as published (and stored), its current transition, into `*message`, cleared first (a message used
// before keeps its strings' allocations).
void AlertMessage(const live::Alert& alert, const live::Victim& victim, v1::Alert* message);

// The digest of a state::Snapshot taken from its parts, in order: the stream
// time, each victim's stored bytes in id order, then each suspect's. Equal to
// a digest of the whole snapshot's deterministic bytes, without building it,
// so that vigild digests its store and replay its memory alike.
class SnapshotDigest {
 public:
  explicit SnapshotDigest(int64_t stream_time);
  void AddVictim(absl::string_view stored) { AddField(2, stored); }
  void AddSuspect(absl::string_view stored) { AddField(3, stored); }
  std::string Hex() const;

 private:
  void AddField(int field, absl::string_view bytes);
  void AddVarint(uint64_t v);
  uint64_t hash_;
};

// Deterministic bytes of a message (sorted map keys): equal messages, equal bytes.
std::string DeterministicBytes(const google::protobuf::MessageLite& message);

// Drops the unknown fields of `message` and of every message in it, at any depth. Most messages have none, and
// finding that out reads only their message fields; protobuf's own DiscardUnknownFields lists every field set
// through reflection first (6,000 instructions an event, most of what admitting it cost).
void DropUnknownFields(google::protobuf::Message* message);

}  // namespace vigil
