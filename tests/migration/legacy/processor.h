// A processor holds the engine's state for a set of victims and suspects and
// drives the engine in stream time: the one path by which events are applied,
// whether live, in a rebuild, or in an offline review (vigilctl replay).
//
// Stream time is the latest occurred_at applied. Before an event at time t is
// applied, every deadline due before t fires; after it, every deadline due at
// or before stream time. So an awaited action recorded exactly at its deadline
// is in time, and an alert for a missed deadline carries the deadline as its time.
//
// Not thread-safe: one thread drives a processor.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "google/protobuf/arena.h"
#include "services/escalation/engine/codec.h"  // DeterministicBytes, shared
#include "tests/migration/legacy/engine.h"

namespace vigil::legacy {

class Processor {
 public:
  // REQUIRES: engine outlives the processor.
  explicit Processor(const Engine* engine) : engine_(*engine) {}

  // Validates and applies one event; appends the alert transitions it causes,
  // deadlines it lets fire included, in the order they happen.
  // INVALID_ARGUMENT for an invalid event: nothing changes. ALREADY_EXISTS for
  // an event id reused with other content, NOT_FOUND for an acknowledgement of
  // an unknown alert: the event is not applied, but stream time has moved to
  // just before it (deadlines due earlier fired), as it would on any replay.
  absl::Status Apply(const v1::Event& event, std::vector<v1::Alert>* out);

  // By default suspect links are applied in process (one view of everything
  // this processor holds, as offline replay wants). Off, they are kept for the
  // caller (TakeSuspectLinks) to send to the suspect view elsewhere, whose
  // findings come back as events with a suspect_finding.
  void set_route_suspect_links(bool in_process) { route_links_ = in_process; }
  std::vector<v1::SuspectLink> TakeSuspectLinks() { return std::move(links_out_); }

  // The suspect view: applies a link to its suspect's state; appends findings.
  void ApplyLink(const v1::SuspectLink& link, std::vector<v1::SuspectFinding>* findings);

  // Moves stream time forward to `t` (never back) and fires what falls due.
  void AdvanceTo(Micros t, std::vector<v1::Alert>* out);
  void AdvanceThrough(Micros t, std::vector<v1::Alert>* out);  // and what is due at t (--until)

  Micros stream_time() const { return stream_time_; }
  size_t victim_count() const { return victims_.size(); }
  const state::VictimState* FindVictim(const std::string& victim_id) const;

  // Ids of the victims and suspects whose state changed since the last call
  // (sorted), so that a store writes only those; the lists are cleared.
  std::vector<std::string> TakeChangedVictims();
  std::vector<std::string> TakeChangedSuspects();
  const state::SuspectState* FindSuspect(const std::string& suspect_id) const;

  // Adds stored state, as when a partition is loaded. Not marked changed.
  void Load(const state::VictimState& victim);
  void LoadSuspect(const state::SuspectState& suspect);
  void set_stream_time(Micros t) { stream_time_ = t; }

  // Everything held, victims and suspects sorted by id: equal state gives equal bytes.
  state::Snapshot TakeSnapshot() const;
  // A digest of the snapshot's bytes: vigild's stored state and an offline replay compare by it.
  std::string StateDigest() const;
  // Replaces everything held with a snapshot's content.
  void Restore(const state::Snapshot& snapshot);

 private:
  state::VictimState& Victim(const std::string& victim_id);
  // Keeps due_ in step with a victim's earliest deadline after it changed.
  void Reindex(const state::VictimState& victim, Micros due_before);
  void FireDue(Micros now, std::vector<v1::Alert>* out);
  void Collect(EngineOutput& output, std::vector<v1::Alert>* out);

  // Each victim's state lives on its own arena: the engine adds many small
  // records, and an arena makes that a pointer bump instead of a malloc.
  struct VictimSlot {
    std::unique_ptr<google::protobuf::Arena> arena;
    state::VictimState* state = nullptr;
  };

  const Engine& engine_;
  absl::flat_hash_map<std::string, VictimSlot> victims_;
  absl::flat_hash_map<std::string, state::SuspectState> suspects_;
  // (earliest deadline, victim id) of every victim with a pending deadline.
  absl::btree_set<std::pair<Micros, std::string>> due_;
  Micros stream_time_ = INT64_MIN;
  bool route_links_ = true;
  std::vector<v1::SuspectLink> links_out_;
  absl::flat_hash_set<std::string> changed_victims_;
  absl::flat_hash_set<std::string> changed_suspects_;
};


}  // namespace vigil::legacy
