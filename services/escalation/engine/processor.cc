#include "services/escalation/engine/processor.h"

#include <algorithm>

#include "common/fingerprint.h"
#include "common/status_macros.h"
#include "services/escalation/engine/validate.h"

namespace vigil {

absl::StatusOr<live::Victim*> Processor::Find(const std::string& victim_id) {
  auto it = victims_.find(victim_id);
  if (it != victims_.end()) return it->second.get();
  if (!loader_) return nullptr;
  VIGIL_ASSIGN_OR_RETURN(std::optional<state::VictimState> stored, loader_(victim_id));
  if (!stored) return nullptr;
  std::unique_ptr<live::Victim> victim = DecodeVictim(*stored);
  live::Victim* v = victim.get();
  Hold(std::move(victim));
  return v;
}

absl::StatusOr<live::Victim*> Processor::Victim(const std::string& victim_id, bool* created) {
  VIGIL_ASSIGN_OR_RETURN(live::Victim* found, Find(victim_id));
  if (created != nullptr) *created = found == nullptr;
  if (found != nullptr) return found;
  auto victim = std::make_unique<live::Victim>();
  victim->id = victim_id;
  live::Victim* v = victim.get();
  Hold(std::move(victim));
  return v;
}

void Processor::Evict(size_t max_held) {
  if (!loader_ || victims_.size() <= max_held) return;
  for (size_t budget = 4 * (victims_.size() - max_held) + 256; budget > 0 && victims_.size() > max_held; --budget) {
    live::Victim* v = recency_.front();
    if (!v->changed) {
      const std::string id = v->id;
      if (v->queued_due) {
        Park(id, *v->queued_due);  // drops it, keeping its place in the timer queue
      } else {
        Drop(id);
      }
    } else {
      recency_.splice(recency_.end(), recency_, recency_.begin());
    }
  }
}

void Processor::Hold(std::unique_ptr<live::Victim> victim) {
  Drop(victim->id);
  Unpark(victim->id);
  victim->queue = &timers_;
  victim->Requeue();
  if (loader_) victim->recency = recency_.insert(recency_.end(), victim.get());
  const std::string id = victim->id;
  victims_[id] = std::move(victim);
}

void Processor::Drop(const std::string& victim_id) {
  auto it = victims_.find(victim_id);
  if (it == victims_.end()) return;
  it->second->Dequeue();
  if (loader_) recency_.erase(it->second->recency);
  victims_.erase(it);
}

std::optional<state::VictimState> Processor::FindVictim(const std::string& victim_id) const {
  auto it = victims_.find(victim_id);
  if (it == victims_.end()) return std::nullopt;
  return EncodeVictim(*it->second);
}

std::optional<VictimDelta> Processor::TakeVictimDelta(const std::string& victim_id) {
  auto it = victims_.find(victim_id);
  if (it == victims_.end()) return std::nullopt;
  return vigil::TakeVictimDelta(*it->second);
}

std::optional<state::SuspectState> Processor::FindSuspect(const std::string& suspect_id) const {
  auto it = suspects_.find(suspect_id);
  if (it == suspects_.end()) return std::nullopt;
  return EncodeSuspect(it->second);
}

void Processor::ApplyLink(const v1::SuspectLink& link, std::vector<v1::SuspectFinding>* findings) {
  live::Suspect& suspect = suspects_[link.suspect_id()];
  changed_suspects_.insert(link.suspect_id());
  engine_->ApplyLink(link, &suspect, findings);
  engine_->Prune(stream_time_, &suspect);
}

absl::Status Processor::Collect(EngineOutput& output, std::vector<v1::Alert>* out) {
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
      VIGIL_ASSIGN_OR_RETURN(live::Victim* victim, Victim(finding.victim_id()));
      MarkChanged(*victim);
      EngineOutput finding_output;
      engine_->ApplyFinding(finding, victim, &finding_output);
      for (auto& a : finding_output.transitions) out->push_back(std::move(a));
    }
  }
  output.suspect_links.clear();
  return absl::OkStatus();
}

EngineOutput& Processor::StepOutput() {
  step_output_.transitions.clear();
  step_output_.suspect_links.clear();
  step_output_.duplicate = false;
  step_output_.spare = &spare_alerts_;
  return step_output_;
}

void Processor::Recycle(v1::Alert&& alert) {
  if (spare_alerts_.size() < kSpareAlerts) spare_alerts_.push_back(std::move(alert));
}

void Processor::Recycle(std::vector<v1::Alert>* alerts) {
  for (v1::Alert& a : *alerts) Recycle(std::move(a));
  alerts->clear();
}

absl::Status Processor::ChangeRules(const std::string& version, const std::string& rules_yaml) {
  absl::StatusOr<RulesConfig> rules = ParseRulesYaml(rules_yaml, "rules_changed.rules_yaml");
  if (!rules.ok()) return rules.status();
  rules->set_version(version);
  owned_engine_ = std::make_unique<Engine>(*std::move(rules));
  engine_ = owned_engine_.get();
  rules_change_.emplace(version, rules_yaml);
  return absl::OkStatus();
}

absl::Status Processor::Apply(const v1::Event& event, std::vector<v1::Alert>* out) {
  VIGIL_RETURN_IF_ERROR(ValidateEvent(event));
  // A rules change applies at its position in the log, whatever its time, and to no victim.
  if (event.has_rules_changed()) return ChangeRules(event.rules_changed().version(), event.rules_changed().rules_yaml());
  const Micros t = ToMicros(event.occurred_at());
  if (stream_time_ != INT64_MIN && t < stream_time_ - engine_->rules().horizon()) {
    ++too_late_;  // older than the horizon: on the timeline, evaluated by no rule
    return absl::OkStatus();
  }
  // Deadlines due before the event fire first: an action recorded at t did not
  // happen before them, and an acknowledgement at t may name an alert they raise.
  // Those due at t wait: every event stamped t comes before them (DOMAIN.md).
  stream_time_ = std::max(stream_time_, t - 1);
  VIGIL_RETURN_IF_ERROR(FireDue(t - 1, out));
  bool created = false;
  VIGIL_ASSIGN_OR_RETURN(live::Victim* victim, Victim(event.victim_id(), &created));
  if (loader_) recency_.splice(recency_.end(), recency_, victim->recency);
  EngineOutput& output = StepOutput();
  absl::Status status = engine_->Apply(event, victim, &output);
  if (!status.ok()) {
    if (created) Drop(event.victim_id());
    return status;
  }
  if (output.duplicate) return absl::OkStatus();
  MarkChanged(*victim);
  VIGIL_RETURN_IF_ERROR(Collect(output, out));
  VIGIL_RETURN_IF_ERROR(AdvanceTo(t, out));  // a deadline the event started that stream time is already past
  MaybePrune(*victim);
  return absl::OkStatus();
}

void Processor::MaybePrune(live::Victim& victim) {
  if (victim.pruned_at != INT64_MIN && stream_time_ - victim.pruned_at < kMicrosPerDay) return;
  engine_->Prune(stream_time_, &victim);
}

absl::Status Processor::AdvanceTo(Micros t, std::vector<v1::Alert>* out) {
  stream_time_ = std::max(stream_time_, t);
  return FireDue(stream_time_ - 1, out);
}

absl::Status Processor::AdvanceThrough(Micros t, std::vector<v1::Alert>* out) {
  stream_time_ = std::max(stream_time_, t);
  return FireDue(t == stream_time_ ? t : stream_time_ - 1, out);
}

absl::Status Processor::FireDue(Micros through, std::vector<v1::Alert>* out) {
  while (!timers_.empty() && timers_.begin()->due <= through) {
    live::Victim* victim = timers_.begin()->victim;
    if (victim == nullptr) {
      // Evicted with this deadline pending: loading it puts it back in the queue, held, at the same place.
      const std::string id = *timers_.begin()->id;
      VIGIL_ASSIGN_OR_RETURN(victim, Find(id));
      if (victim == nullptr) {
        return absl::DataLossError("a victim evicted with a deadline pending is not in the store");
      }
      continue;
    }
    MarkChanged(*victim);
    EngineOutput& output = StepOutput();
    engine_->Fire(victim->deadlines.begin()->first, victim, &output);
    Collect(output, out).IgnoreError();  // firing sends no links, so loads nothing
  }
  return absl::OkStatus();
}

void Processor::MarkChanged(live::Victim& victim) {
  if (victim.changed) return;
  victim.changed = true;
  changed_victims_.push_back(victim.id);
}

void Processor::set_loader(Loader loader) {
  if (!loader_) {
    for (auto& [id, v] : victims_) v->recency = recency_.insert(recency_.end(), v.get());
  }
  loader_ = std::move(loader);
}

std::vector<std::string> Processor::TakeChangedVictims() {
  std::vector<std::string> ids = std::move(changed_victims_);
  changed_victims_.clear();
  std::sort(ids.begin(), ids.end());
  // An id is listed once per victim object: one replaced since (Hold) may be listed again.
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (const std::string& id : ids) {
    if (auto it = victims_.find(id); it != victims_.end()) it->second->changed = false;
  }
  return ids;
}

std::vector<std::string> Processor::TakeChangedSuspects() {
  std::vector<std::string> ids(changed_suspects_.begin(), changed_suspects_.end());
  std::sort(ids.begin(), ids.end());
  changed_suspects_.clear();
  return ids;
}

void Processor::Load(const state::VictimState& v) { Hold(DecodeVictim(v)); }

void Processor::Park(const std::string& victim_id, Micros due) {
  Drop(victim_id);
  Unpark(victim_id);
  auto parked = parked_.emplace(victim_id, due).first;
  timers_.insert({due, &parked->first, nullptr});
}

void Processor::Unpark(const std::string& victim_id) {
  if (parked_.empty()) return;  // always, without a loader
  auto parked = parked_.find(victim_id);
  if (parked == parked_.end()) return;
  timers_.erase({parked->second, &parked->first, nullptr});
  parked_.erase(parked);
}

void Processor::LoadSuspect(const state::SuspectState& s) { suspects_[s.suspect_id()] = DecodeSuspect(s); }

void Processor::EncodeSorted(const std::function<void(state::VictimState)>& victim,
                             const std::function<void(state::SuspectState)>& suspect) const {
  std::vector<const live::Victim*> victims;
  for (const auto& [id, v] : victims_) victims.push_back(v.get());
  std::sort(victims.begin(), victims.end(), [](const auto* a, const auto* b) { return a->id < b->id; });
  for (const auto* v : victims) victim(EncodeVictim(*v));
  std::vector<const live::Suspect*> suspects;
  for (const auto& [id, s] : suspects_) suspects.push_back(&s);
  std::sort(suspects.begin(), suspects.end(), [](const auto* a, const auto* b) { return a->id < b->id; });
  for (const auto* s : suspects) suspect(EncodeSuspect(*s));
}

state::Snapshot Processor::TakeSnapshot() const {
  state::Snapshot snapshot;
  snapshot.set_stream_time(stream_time_);
  EncodeSorted([&](state::VictimState v) { *snapshot.add_victims() = std::move(v); },
               [&](state::SuspectState s) { *snapshot.add_suspects() = std::move(s); });
  return snapshot;
}

std::string Processor::StateDigest() const {
  SnapshotDigest digest(stream_time_);
  EncodeSorted([&](const state::VictimState& v) { digest.AddVictim(DeterministicBytes(v)); },
               [&](const state::SuspectState& s) { digest.AddSuspect(DeterministicBytes(s)); });
  return digest.Hex();
}

void Processor::Restore(const state::Snapshot& snapshot) {
  victims_.clear();
  recency_.clear();
  suspects_.clear();
  timers_.clear();
  parked_.clear();
  stream_time_ = snapshot.stream_time();
  changed_victims_.clear();
  changed_suspects_.clear();
  for (const auto& v : snapshot.victims()) Load(v);
  for (const auto& s : snapshot.suspects()) LoadSuspect(s);
}

}  // namespace vigil
