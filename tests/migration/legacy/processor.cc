#include "tests/migration/legacy/processor.h"

#include <algorithm>

#include "common/fingerprint.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "services/escalation/engine/validate.h"

namespace vigil::legacy {

state::VictimState& Processor::Victim(const std::string& victim_id) {
  auto [it, inserted] = victims_.try_emplace(victim_id);
  if (inserted) {
    google::protobuf::ArenaOptions options;
    options.start_block_size = 1024;
    options.max_block_size = 16 * 1024;
    it->second.arena = std::make_unique<google::protobuf::Arena>(options);
    it->second.state = google::protobuf::Arena::CreateMessage<state::VictimState>(it->second.arena.get());
    it->second.state->set_victim_id(victim_id);
  }
  return *it->second.state;
}

const state::VictimState* Processor::FindVictim(const std::string& victim_id) const {
  auto it = victims_.find(victim_id);
  return it == victims_.end() ? nullptr : it->second.state;
}

void Processor::Reindex(const state::VictimState& victim, Micros due_before) {
  const Micros due_after = Engine::NextDue(victim);
  if (due_after == due_before) return;
  if (due_before != kNoDeadline) due_.erase({due_before, victim.victim_id()});
  if (due_after != kNoDeadline) due_.insert({due_after, victim.victim_id()});
}

void Processor::ApplyLink(const v1::SuspectLink& link, std::vector<v1::SuspectFinding>* findings) {
  state::SuspectState& suspect = suspects_[link.suspect_id()];
  changed_suspects_.insert(link.suspect_id());
  engine_.ApplyLink(link, &suspect, findings);
}

void Processor::Collect(EngineOutput& output, std::vector<v1::Alert>* out) {
  for (auto& a : output.transitions) out->push_back(std::move(a));
  output.transitions.clear();
  for (const auto& link : output.suspect_links) {
    if (!route_links_) {
      links_out_.push_back(link);
      continue;
    }
    std::vector<v1::SuspectFinding> findings;
    ApplyLink(link, &findings);
    for (const auto& finding : findings) {
      state::VictimState& victim = Victim(finding.victim_id());
      changed_victims_.insert(finding.victim_id());
      const Micros before = Engine::NextDue(victim);
      EngineOutput finding_output;
      engine_.ApplyFinding(finding, &victim, &finding_output);
      Reindex(victim, before);
      for (auto& a : finding_output.transitions) out->push_back(std::move(a));
    }
  }
  output.suspect_links.clear();
}

absl::Status Processor::Apply(const v1::Event& event, std::vector<v1::Alert>* out) {
  VIGIL_RETURN_IF_ERROR(ValidateEvent(event));
  // Deadlines due before the event fire first: an action recorded at t did not
  // happen before them, and an acknowledgement at t may name an alert they raise.
  const Micros t = ToMicros(event.occurred_at());
  // As the live engine (DOMAIN.md v2): deadlines due at t wait for every event stamped t.
  stream_time_ = std::max(stream_time_, t - 1);
  FireDue(t - 1, out);
  state::VictimState& victim = Victim(event.victim_id());
  const Micros before = Engine::NextDue(victim);
  EngineOutput output;
  absl::Status status = engine_.Apply(event, &victim, &output);
  if (!status.ok()) {
    if (victim.seen_event_ids().empty()) victims_.erase(event.victim_id());
    return status;
  }
  if (output.duplicate) return absl::OkStatus();
  changed_victims_.insert(event.victim_id());
  Reindex(victim, before);
  Collect(output, out);
  AdvanceTo(t, out);
  return absl::OkStatus();
}

void Processor::AdvanceTo(Micros t, std::vector<v1::Alert>* out) {
  stream_time_ = std::max(stream_time_, t);
  FireDue(stream_time_ - 1, out);
}

void Processor::AdvanceThrough(Micros t, std::vector<v1::Alert>* out) {
  stream_time_ = std::max(stream_time_, t);
  FireDue(t == stream_time_ ? t : stream_time_ - 1, out);
}

void Processor::FireDue(Micros now, std::vector<v1::Alert>* out) {
  while (!due_.empty() && due_.begin()->first <= now) {
    const std::string victim_id = due_.begin()->second;
    state::VictimState& victim = *victims_.find(victim_id)->second.state;
    changed_victims_.insert(victim_id);
    const Micros before = Engine::NextDue(victim);
    EngineOutput output;
    engine_.FireEarliest(now, &victim, &output);
    Reindex(victim, before);
    Collect(output, out);
  }
}

namespace {
std::vector<std::string> TakeSorted(absl::flat_hash_set<std::string>& set) {
  std::vector<std::string> ids(set.begin(), set.end());
  std::sort(ids.begin(), ids.end());
  set.clear();
  return ids;
}
}  // namespace

std::vector<std::string> Processor::TakeChangedVictims() { return TakeSorted(changed_victims_); }
std::vector<std::string> Processor::TakeChangedSuspects() { return TakeSorted(changed_suspects_); }

const state::SuspectState* Processor::FindSuspect(const std::string& suspect_id) const {
  auto it = suspects_.find(suspect_id);
  return it == suspects_.end() ? nullptr : &it->second;
}

void Processor::Load(const state::VictimState& v) {
  state::VictimState& victim = Victim(v.victim_id());
  const Micros before = Engine::NextDue(victim);
  victim = v;
  Reindex(victim, before);
}

void Processor::LoadSuspect(const state::SuspectState& s) { suspects_[s.suspect_id()] = s; }

state::Snapshot Processor::TakeSnapshot() const {
  state::Snapshot snapshot;
  snapshot.set_stream_time(stream_time_);
  std::vector<const state::VictimState*> victims;
  for (const auto& [id, slot] : victims_) victims.push_back(slot.state);
  std::sort(victims.begin(), victims.end(),
            [](const auto* a, const auto* b) { return a->victim_id() < b->victim_id(); });
  for (const auto* v : victims) *snapshot.add_victims() = *v;
  std::vector<const state::SuspectState*> suspects;
  for (const auto& [id, s] : suspects_) suspects.push_back(&s);
  std::sort(suspects.begin(), suspects.end(),
            [](const auto* a, const auto* b) { return a->suspect_id() < b->suspect_id(); });
  for (const auto* s : suspects) *snapshot.add_suspects() = *s;
  return snapshot;
}

std::string Processor::StateDigest() const { return Hex64(Fnv1a64(DeterministicBytes(TakeSnapshot()))); }

void Processor::Restore(const state::Snapshot& snapshot) {
  victims_.clear();
  suspects_.clear();
  due_.clear();
  stream_time_ = snapshot.stream_time();
  changed_victims_.clear();
  changed_suspects_.clear();
  for (const auto& v : snapshot.victims()) Load(v);
  for (const auto& s : snapshot.suspects()) LoadSuspect(s);
}

}  // namespace vigil::legacy
