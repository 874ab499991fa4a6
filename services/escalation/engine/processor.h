// A processor holds the engine's live state for a set of victims and suspects
// and drives the engine in stream time: the one path by which events are
// applied, whether live, in a rebuild, or in an offline review (vigilctl replay).
//
// Stream time is the latest occurred_at applied. A deadline fires once stream
// time is past it: before an event at time t is applied, every deadline due
// before t fires; one due at t waits until stream time passes t (a later event, a
// tick), or for AdvanceThrough (replay's --until). So every event stamped at an
// instant, an awaited action at exactly its deadline among them, comes before
// the deadlines falling on that instant, and an alert for a missed deadline
// carries the deadline as its time.
// Deadlines fire from one partition-wide timer queue in (due, victim id, seq)
// order. An event older than stream time minus the horizon is evaluated by no
// rule (it is counted in too_late()); the caller keeps it on the timeline.
//
// Memory follows the active caseload: with a loader (vigild's store), a victim
// may be evicted (Evict) and is loaded again on its next event or finding, or
// when its earliest pending deadline falls due: an evicted victim keeps only its
// entry in the timer queue (its id and that deadline's due time). Eviction goes
// through the canonical encoding, which is exact, so it changes no output and no
// digest.
//
// Not thread-safe: one thread drives a processor.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/escalation/engine/codec.h"
#include "services/escalation/engine/engine.h"
#include "vigil/v1/state.pb.h"

namespace vigil {


class Processor {
 public:
  // REQUIRES: engine outlives the processor.
  explicit Processor(const Engine* engine) : engine_(engine) {}
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Validates and applies one event; appends the alert transitions it causes,
  // deadlines it lets fire included, in the order they happen.
  // INVALID_ARGUMENT for an invalid event: nothing changes. ALREADY_EXISTS for
  // an event id reused with other content, NOT_FOUND for an acknowledgement of
  // an unknown alert: the event is not applied, but stream time has moved to
  // just before it (deadlines due earlier fired), as it would on any replay.
  absl::Status Apply(const v1::Event& event, std::vector<v1::Alert>* out);
  // Takes back transitions the caller is done with (`*alerts` is left empty), so that the next ones are written
  // into them and reuse their strings' allocations instead of making their own. Optional; keeps at most
  // kSpareAlerts.
  void Recycle(std::vector<v1::Alert>* alerts);
  void Recycle(v1::Alert&& alert);
  static constexpr size_t kSpareAlerts = 256;

  // By default suspect links are applied in process (one view of everything
  // this processor holds, as offline replay wants). Off, they are kept for the
  // caller (TakeSuspectLinks) to send to the suspect view elsewhere, whose
  // findings come back as events with a suspect_finding.
  void set_route_suspect_links(bool in_process) { route_links_ = in_process; }
  std::vector<v1::SuspectLink> TakeSuspectLinks() { return std::move(links_out_); }

  // The suspect view: applies a link to its suspect's state; appends findings.
  void ApplyLink(const v1::SuspectLink& link, std::vector<v1::SuspectFinding>* findings);

  // Moves stream time forward to `t` (never back) and fires what it is now past: every deadline due before
  // it (a clock tick). An error only when a victim evicted with a deadline pending cannot be loaded: what
  // fired before it stands, and the rest waits.
  absl::Status AdvanceTo(Micros t, std::vector<v1::Alert>* out);
  // The same, and fires the deadlines due at `t` too if stream time is then `t`: replay's --until, the end of
  // the stream, after which no event at `t` can come.
  absl::Status AdvanceThrough(Micros t, std::vector<v1::Alert>* out);

  Micros stream_time() const { return stream_time_; }

  // A rules_changed event (DOMAIN.md, "Rules change at a position in the log"): from here on the processor
  // judges events by these rules (version and YAML). Clocks already running keep their deadlines and alerts
  // their acknowledgement windows. INVALID_ARGUMENT (nothing changes) when the YAML is not valid rules.
  absl::Status ChangeRules(const std::string& version, const std::string& rules_yaml);
  // The rules in force: the engine given at construction, or the last change.
  const RulesConfig& rules() const { return engine_->rules(); }
  // The last rules change applied (version, YAML), if any: what a store keeps to load the same rules again.
  const std::optional<std::pair<std::string, std::string>>& rules_change() const { return rules_change_; }
  size_t victim_count() const { return victims_.size(); }
  // Victims with a deadline pending, held or not: one timer queue entry each.
  size_t victims_awaiting_deadline() const { return timers_.size(); }
  // Of those, the ones evicted to the store (Evict), held again when their deadline falls due.
  size_t victims_parked() const { return parked_.size(); }
  // Events older than stream time minus the horizon, applied to no rule.
  uint64_t too_late() const { return too_late_; }

  // A victim's or suspect's state in its stored encoding, if held.
  std::optional<state::VictimState> FindVictim(const std::string& victim_id) const;
  std::optional<state::SuspectState> FindSuspect(const std::string& suspect_id) const;

  // What changed in a held victim since the last call (for a store that writes only that).
  std::optional<VictimDelta> TakeVictimDelta(const std::string& victim_id);

  // Ids of the victims and suspects whose state changed since the last call
  // (sorted), so that a store writes only those; the lists are cleared.
  std::vector<std::string> TakeChangedVictims();
  std::vector<std::string> TakeChangedSuspects();

  // Where evicted victims are read back from: their stored state, or nullopt when there is none.
  using Loader = std::function<absl::StatusOr<std::optional<state::VictimState>>(const std::string& victim_id)>;
  // Set it before anything is held: only then does the processor keep the order of recency Evict needs.
  void set_loader(Loader loader);
  // Evicts the victims least recently applied to, among those with no change since TakeChangedVictims, until
  // at most `max_held` are held. One that may not go yet counts as applied to now. One with a deadline pending
  // leaves its id and earliest due time in the timer queue (victims_parked).
  // Its cost follows what it evicts, not what is held: it looks at no more than four held victims for each
  // one it has to evict (plus 256), so a call may leave more than `max_held` for the next. Needs a loader.
  void Evict(size_t max_held);

  // Adds stored state, as when a partition is loaded. Not marked changed.
  void Load(const state::VictimState& victim);
  // Notes a stored victim with a deadline pending, not held: it is loaded when its earliest deadline (`due`)
  // falls due, or on its next event. For a partition loaded with a loader set, instead of Load.
  void Park(const std::string& victim_id, Micros due);
  void LoadSuspect(const state::SuspectState& suspect);
  void set_stream_time(Micros t) { stream_time_ = t; }

  // Everything held, victims and suspects sorted by id: equal state gives equal bytes.
  // (With a loader, what is held is not everything: vigild digests its store instead.)
  state::Snapshot TakeSnapshot() const;
  // A digest of the snapshot's bytes: vigild's stored state and an offline replay compare by it.
  std::string StateDigest() const;
  // Replaces everything held with a snapshot's content.
  void Restore(const state::Snapshot& snapshot);

 private:
  // The victim, held or loaded; nullptr when it has no state yet. An error when loading fails.
  absl::StatusOr<live::Victim*> Find(const std::string& victim_id);
  // The victim, held, loaded or new (`*created` says which).
  absl::StatusOr<live::Victim*> Victim(const std::string& victim_id, bool* created = nullptr);
  // Holds the victim (replacing one held with its id) and takes it off the parked list.
  void Hold(std::unique_ptr<live::Victim> victim);
  void Drop(const std::string& victim_id);
  // Takes a parked victim's entry out of the timer queue, if it has one.
  void Unpark(const std::string& victim_id);
  // Notes that the victim's state changed since the last TakeChangedVictims.
  void MarkChanged(live::Victim& victim);
  // Fires every deadline due at or before `through`, in order.
  absl::Status FireDue(Micros through, std::vector<v1::Alert>* out);
  // Hands each held victim's and suspect's encoding to the callbacks, in id order (a snapshot's order).
  void EncodeSorted(const std::function<void(state::VictimState)>& victim,
                    const std::function<void(state::SuspectState)>& suspect) const;
  absl::Status Collect(EngineOutput& output, std::vector<v1::Alert>* out);
  // The output for one step of the engine, empty; reused, so that a step's transitions allocate no new vector.
  EngineOutput& StepOutput();
  // Drops what no rule can use, once per day of stream time per victim.
  void MaybePrune(live::Victim& victim);

  const Engine* engine_;
  std::unique_ptr<Engine> owned_engine_;  // the engine of the last rules change
  std::optional<std::pair<std::string, std::string>> rules_change_;
  absl::flat_hash_map<std::string, std::unique_ptr<live::Victim>> victims_;
  absl::node_hash_map<std::string, live::Suspect> suspects_;
  live::TimerQueue timers_;
  // Evicted victims with a deadline pending: id -> the due time of their entry in timers_, which points at the
  // id here (a node map: the key does not move).
  absl::node_hash_map<std::string, Micros> parked_;
  Micros stream_time_ = INT64_MIN;
  uint64_t too_late_ = 0;
  bool route_links_ = true;
  std::vector<v1::SuspectLink> links_out_;
  EngineOutput step_output_;  // StepOutput
  std::vector<v1::Alert> spare_alerts_;  // Recycle
  std::vector<std::string> changed_victims_;  // each victim once (live::Victim::changed)
  absl::flat_hash_set<std::string> changed_suspects_;
  Loader loader_;
  std::list<live::Victim*> recency_;  // with a loader: the held victims, least recently applied to first (Evict)
};

}  // namespace vigil
