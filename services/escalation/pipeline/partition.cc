#include "services/escalation/pipeline/partition.h"

#include <cstdio>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fingerprint.h"
#include "common/status_macros.h"
#include "services/escalation/storage/victim_store.h"
#include "common/jsonl.h"
#include "spdlog/spdlog.h"

namespace vigil {

state::OutboxRecord BoundedDeadLetter(const std::string& dlq_topic, absl::string_view key, absl::string_view value,
                                      absl::string_view reason, absl::string_view source_topic, int32_t partition,
                                      int64_t offset) {
  state::OutboxRecord r;
  r.set_topic(dlq_topic);
  r.set_key(Clip(key, kMaxDeadLetterKey));
  auto& h = *r.mutable_headers();
  h[kHeaderReason] = Clip(reason, kMaxDeadLetterReason);
  h[kHeaderTopic] = std::string(source_topic);
  h[kHeaderPartition] = absl::StrCat(partition);
  h[kHeaderOffset] = absl::StrCat(offset);
  if (value.size() > kMaxDeadLetterPayload) {
    r.set_value(std::string(value.substr(0, kMaxDeadLetterPayload)));
    h[kHeaderTruncated] = "true";
    h[kHeaderValueBytes] = absl::StrCat(value.size());
    h[kHeaderValueSha256] = Sha256Hex(value);
  } else {
    r.set_value(std::string(value));
  }
  return r;
}

absl::StatusOr<std::unique_ptr<PartitionPipeline>> PartitionPipeline::Load(Store* store, const Engine* engine,
                                                                           const Topics* topics,
                                                                           const AdmissionPolicy* admission,
                                                                           int32_t partition, PartitionKind kind) {
  std::unique_ptr<PartitionPipeline> p(new PartitionPipeline(store, engine, topics, admission, partition, kind));
  VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> meta, store->Get(p->keys_.Meta()));
  if (meta && !p->meta_.ParseFromString(*meta)) {
    return absl::DataLossError(absl::StrCat("partition ", partition, ": stored progress is unreadable"));
  }
  if (meta && p->meta_.state_format() != kStateFormat) {
    // Stored by a vigild whose engine kept another state: the log is the source of truth, so rebuild the
    // partition from it. Outbox numbers come out the same, and the progress topic says which were published.
    spdlog::warn("event=state_format_changed partition={} stored_format={} format={} action=rebuild_from_log",
                 partition, p->meta_.state_format(), kStateFormat);
    VIGIL_RETURN_IF_ERROR(store->DeletePrefix(PartitionPrefix(partition, kind)));
    p->meta_.Clear();
    meta.reset();
  }
  p->processor_.set_stream_time(meta ? p->meta_.stream_time() : INT64_MIN);
  if (p->meta_.has_rules()) {
    // The rules of the last rules_changed the partition applied, not vigild's --rules.
    absl::Status s = p->processor_.ChangeRules(p->meta_.rules_version(), p->meta_.rules_yaml());
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat("partition ", partition, ": stored rules (version ",
                                              p->meta_.rules_version(), ") are unreadable: ", s.message()));
    }
  }
  // No victim is held from the start: each is loaded on its next event, or when its earliest pending deadline
  // falls due (the timer queue keeps the id and due time of those waiting for one).
  VIGIL_RETURN_IF_ERROR(p->LoadAll<state::VictimState>(p->keys_.Victims(), [&](state::VictimState& v) {
    if (v.deadlines_size() == 0) return absl::OkStatus();
    Micros due = v.deadlines(0).due();
    for (const state::Deadline& d : v.deadlines()) due = std::min(due, d.due());
    p->processor_.Park(v.victim_id(), due);
    return absl::OkStatus();
  }));
  VIGIL_RETURN_IF_ERROR(p->LoadAll<state::SuspectState>(p->keys_.Suspects(), [&](state::SuspectState& s) {
    p->processor_.LoadSuspect(s);
    return absl::OkStatus();
  }));
  return p;
}

template <typename Message, typename Fn>
absl::Status PartitionPipeline::LoadAll(const std::string& prefix, Fn fn) const {
  absl::Status bad;
  VIGIL_RETURN_IF_ERROR(store_.Scan(prefix, [&](absl::string_view, absl::string_view value) {
    Message m;
    if (!m.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      bad = absl::DataLossError(absl::StrCat("partition ", partition_, ": a stored ", m.GetTypeName(),
                                             " is unreadable; drop the partition to rebuild it"));
      return false;
    }
    bad = fn(m);
    return bad.ok();
  }));
  return bad;
}

void PartitionPipeline::AddOutbox(const std::string& topic, const std::string& key, const std::string& value,
                                  std::vector<std::pair<std::string, std::string>> headers,
                                  const v1::Alert* transition) {
  state::OutboxRecord r;
  r.set_topic(topic);
  r.set_key(key);
  r.set_value(value);
  for (auto& [k, v] : headers) (*r.mutable_headers())[k] = v;
  if (transition != nullptr) {
    r.set_alert_id(transition->alert_id());
    r.set_alert_revision(transition->revision());
  }
  Enqueue(std::move(r));
}

std::string PartitionPipeline::InAlertsFormat(const google::protobuf::Message& message, std::string bytes) const {
  return topics_.alerts_format == Topics::AlertFormat::kJson ? ToJsonLine(message) : std::move(bytes);
}

void PartitionPipeline::Enqueue(state::OutboxRecord r) {
  r.set_seq(meta_.outbox_seq() + 1);
  meta_.set_outbox_seq(r.seq());
  if (r.alert_id().empty()) {
    pending_.Put(keys_.Outbox(r.seq()), DeterministicBytes(r));
  } else {  // stored without the alert's bytes: they are under its history (Unpublished reads them back)
    std::string value = std::exchange(*r.mutable_value(), {});
    pending_.Put(keys_.Outbox(r.seq()), DeterministicBytes(r));
    *r.mutable_value() = std::move(value);
  }
  if (keep_outbox_) {
    pending_outbox_bytes_ += r.value().size();
    pending_outbox_.push_back(std::move(r));
  }
}

void PartitionPipeline::DeadLetter(const ConsumedRecord& record, const absl::Status& reason) {
  Enqueue(BoundedDeadLetter(topics_.dead_letters, record.key, record.value, reason.ToString(), topic(), partition_,
                            record.offset));
}

std::optional<Micros> PartitionPipeline::StoredAlertAt(const std::string& alert_id) {
  absl::StatusOr<std::optional<std::string>> stored = store_.Get(keys_.Alert(alert_id));
  if (!stored.ok()) {
    store_error_ = stored.status();
    return std::nullopt;
  }
  if (!*stored) return std::nullopt;
  v1::Alert before;
  if (!before.ParseFromString(**stored)) {
    store_error_ = absl::DataLossError(absl::StrCat("partition ", partition_, ": a stored alert is unreadable"));
    return std::nullopt;
  }
  return ToMicros(before.at());
}

void PartitionPipeline::Emit(std::vector<v1::Alert> alerts) {
  for (v1::Alert& a : alerts) {
    std::string bytes = DeterministicBytes(a);
    auto [it, first_in_batch] = batch_alert_index_.try_emplace(a.alert_id(), batch_alerts_.size());
    if (first_in_batch) {
      // An alert's first transition (revision 1) has nothing before it: no store read on that path.
      std::optional<Micros> stored_at = a.revision() > 1 ? StoredAlertAt(a.alert_id()) : std::nullopt;
      if (!store_error_.ok()) return;  // the batch is abandoned: Commit says why
      if (!stored_at) pending_.Put(AlertLocationKey(a.alert_id()), LocationValue(partition_));
      batch_alerts_.push_back({.stored_at = stored_at});
    }
    pending_.Put(keys_.AlertTransition(a.alert_id(), a.revision()), bytes);
    const std::string published = InAlertsFormat(a, bytes);
    AddOutbox(topics_.alerts, a.victim_id(), published, {}, &a);
    for (const std::string& route : topics_.routes) {
      const size_t eq = route.find('=');
      if (eq == std::string::npos) continue;
      const std::string match = route.substr(0, eq);
      const bool hit = absl::StartsWith(match, "force:") ? match.substr(6) == a.force()
                                                          : match == v1::Level_Name(a.level());
      if (hit) AddOutbox(route.substr(eq + 1), a.victim_id(), published, {}, &a);
    }
    LatestAlert& latest = batch_alerts_[it->second];
    latest.alert = std::move(a);  // an earlier transition of the same alert comes back in `a`, to be recycled
    latest.bytes = std::move(bytes);
  }
  processor_.Recycle(&alerts);
}

void PartitionPipeline::SourceSent(const std::string& source, Micros at) {
  if (topics_.source_quiet_after <= 0) return;
  auto* sources = meta_.mutable_sources();
  auto it = std::lower_bound(sources->begin(), sources->end(), source,
                             [](const state::SourceSeen& s, const std::string& name) { return s.source() < name; });
  if (it == sources->end() || it->source() != source) {
    if (sources->size() >= kMaxWatchedSources) return;
    const int index = static_cast<int>(it - sources->begin());
    sources->Add()->set_source(source);
    for (int i = sources->size() - 1; i > index; --i) sources->SwapElements(i, i - 1);  // kept sorted
    it = sources->begin() + index;
  }
  if (it->quiet()) {
    it->set_quiet(false);
    EmitSourceAlert(*it, v1::RESOLVED, at);
  }
  it->set_last_event_at(std::max(it->last_event_at(), at));
}

void PartitionPipeline::SourcesQuietBy(Micros now) {
  if (topics_.source_quiet_after <= 0) return;
  for (state::SourceSeen& seen : *meta_.mutable_sources()) {
    const Micros last = seen.last_event_at();
    const Micros due = last > std::numeric_limits<Micros>::max() - topics_.source_quiet_after
                           ? std::numeric_limits<Micros>::max()
                           : last + topics_.source_quiet_after;
    if (seen.quiet() || now < due) continue;
    seen.set_quiet(true);
    EmitSourceAlert(seen, v1::FIRING, due);
  }
}

void PartitionPipeline::EmitSourceAlert(const state::SourceSeen& seen, v1::AlertState state, Micros at) {
  v1::SourceAlert a;
  a.set_source(seen.source());
  a.set_partition(partition_);
  a.set_state(state);
  *a.mutable_at() = ToTimestamp(at);
  *a.mutable_last_event_at() = ToTimestamp(seen.last_event_at());
  a.set_quiet_after_seconds(topics_.source_quiet_after / kMicrosPerSecond);
  a.set_reason(state == v1::FIRING
                   ? absl::StrCat("Source system '", seen.source(), "' has sent no events to partition ", partition_,
                                  " since ", FormatRfc3339(seen.last_event_at()), " (", FormatDuration(topics_.source_quiet_after),
                                  "): check that it is running and connected; calls it records may not be reaching Vigil.")
                   : absl::StrCat("Source system '", seen.source(), "' is sending events to partition ", partition_,
                                  " again."));
  AddOutbox(topics_.source_alerts, seen.source(), InAlertsFormat(a, DeterministicBytes(a)));
}

void PartitionPipeline::ApplyLink(const ConsumedRecord& record) {
  v1::SuspectLink link;
  if (record.value.size() > admission_.max_event_bytes ||
      !link.ParseFromArray(record.value.data(), static_cast<int>(record.value.size())) || link.suspect_id().empty() ||
      link.suspect_id() != record.key || link.victim_id().empty() || link.event_id().empty()) {
    DeadLetter(record, absl::InvalidArgumentError("not a vigil.v1.SuspectLink keyed by its suspect_id"));
    return;
  }
  std::vector<v1::SuspectFinding> findings;
  processor_.ApplyLink(link, &findings);
  for (auto& f : findings) {
    v1::Event e;
    std::string id_source = absl::StrCat(f.suspect_id(), "|", f.event_id(), "|", f.victim_count());
    for (const auto& id : f.evidence_event_ids()) absl::StrAppend(&id_source, "|", id);
    e.set_event_id(absl::StrCat("finding-", Hex64(Fnv1a64(id_source))));
    e.set_victim_id(f.victim_id());
    *e.mutable_occurred_at() = ToTimestamp(f.at());
    e.set_incident_id(f.incident_id());
    e.set_force(f.force());
    e.set_source("vigild");
    *e.mutable_suspect_finding() = std::move(f);
    const std::string bytes = DeterministicBytes(e);
    std::vector<std::pair<std::string, std::string>> headers;
    if (admission_.signer != nullptr) headers.emplace_back(kHeaderSignature, admission_.signer->Sign(bytes));
    AddOutbox(topics_.events, e.victim_id(), bytes, std::move(headers));
  }
}

absl::StatusOr<std::optional<state::VictimState>> PartitionPipeline::LoadVictim(const std::string& victim_id) {
  absl::StatusOr<std::optional<state::VictimState>> v = FindVictim(store_, keys_, victim_id);
  if (!v.ok()) store_error_ = v.status();
  return v;
}

void PartitionPipeline::Apply(const ConsumedRecord& record) {
  if (!store_error_.ok()) return;  // the batch is abandoned: Commit says why
  meta_.set_next_offset(record.offset + 1);
  if (kind_ == PartitionKind::kSuspectLinks) {
    ApplyLink(record);
    return;
  }
  absl::StatusOr<Admitted> admitted = Admit(record, admission_);
  if (!admitted.ok()) {
    DeadLetter(record, admitted.status());
    return;
  }
  const v1::Event& event = admitted->event;
  std::vector<v1::Alert> alerts;
  if (event.has_clock_tick()) {
    if (absl::Status s = processor_.AdvanceTo(ToMicros(event.occurred_at()), &alerts); !s.ok()) {
      if (store_error_.ok()) store_error_ = s;  // a victim that could not be loaded: the batch is abandoned
      return;
    }
    Emit(std::move(alerts));
    SourcesQuietBy(ToMicros(event.occurred_at()));
    return;
  }
  if (!event.source().empty() && event.source() != "vigild") {
    // When the broker took it (a record without a timestamp: when it says it happened), within range.
    constexpr int64_t kMaxMillis = std::numeric_limits<Micros>::max() / 1000;
    SourceSent(event.source(), record.timestamp_ms >= 0 ? std::min(record.timestamp_ms, kMaxMillis) * 1000
                                                        : ToMicros(event.occurred_at()));
  }
  absl::Status status = processor_.Apply(event, &alerts);
  if (status.code() == absl::StatusCode::kDataLoss && store_error_.ok()) store_error_ = status;
  if (!store_error_.ok()) return;  // a victim could not be loaded: the batch is abandoned
  Emit(std::move(alerts));  // deadlines that fired before a refused event stand
  for (const v1::SuspectLink& link : processor_.TakeSuspectLinks()) {
    AddOutbox(topics_.suspect_links, link.suspect_id(), DeterministicBytes(link));
  }
  if (!status.ok()) {
    DeadLetter(record, status);
    return;
  }
  ++applied_;
  if (event.has_suspect_finding()) return;  // derived by vigild: not part of the victim's timeline
  if (event.has_rules_changed()) {
    // Not a victim's: kept by version, so that an alert raised under it can be explained (ExplainAlert).
    pending_.Put(keys_.Rules(event.rules_changed().version()), event.rules_changed().rules_yaml());
    return;
  }
  pending_.Put(TimelineKey(partition_, event.victim_id(), ToMicros(event.occurred_at()), event.event_id()),
               admitted->stored);
}

void PartitionPipeline::WriteLatestAlerts() {
  for (auto& [stored_at, a, bytes] : batch_alerts_) {
    if (stored_at) {
      pending_.Delete(keys_.AlertByTime(*stored_at, a.alert_id()));
      pending_.Delete(keys_.VictimAlert(a.victim_id(), *stored_at, a.alert_id()));
    }
    const Micros at = ToMicros(a.at());
    pending_.Put(keys_.Alert(a.alert_id()), bytes);
    pending_.Put(keys_.AlertByTime(at, a.alert_id()), AlertIndexValue(a));
    pending_.Put(keys_.VictimAlert(a.victim_id(), at, a.alert_id()), "");
    processor_.Recycle(std::move(a));
  }
  batch_alerts_.clear();
  batch_alert_index_.clear();
}

absl::Status PartitionPipeline::Commit() {
  WriteLatestAlerts();
  if (!store_error_.ok()) {
    pending_.Clear();
    pending_outbox_.clear();
    pending_outbox_bytes_ = 0;
    return store_error_;
  }
  for (const std::string& id : processor_.TakeChangedVictims()) {
    const VictimDelta delta = *processor_.TakeVictimDelta(id);
    if (delta.first) pending_.Put(VictimLocationKey(id), LocationValue(partition_));
    WriteVictim(keys_, delta, &pending_);
  }
  for (const std::string& id : processor_.TakeChangedSuspects()) {
    pending_.Put(keys_.Suspect(id), DeterministicBytes(*processor_.FindSuspect(id)));
  }
  meta_.set_stream_time(processor_.stream_time());
  meta_.set_state_format(kStateFormat);
  if (const auto& change = processor_.rules_change()) {
    meta_.set_has_rules(true);
    meta_.set_rules_version(change->first);
    meta_.set_rules_yaml(change->second);
  }
  pending_.Put(keys_.Meta(), DeterministicBytes(meta_));
  // Not synced: if a power cut loses the last batches, consumption resumes from
  // an older offset and replays them; the outbox numbers come out the same and
  // the progress topic says which were published (docs/architecture.md).
  last_commit_bytes_ = pending_.GetDataSize();
  absl::Status s = store_.Write(&pending_, Store::Durability::kProcess);
  pending_.Clear();
  if (s.ok()) {
    for (auto& r : pending_outbox_) committed_outbox_.push_back(std::move(r));
    processor_.Evict(max_held_victims_);
  }
  pending_outbox_.clear();
  pending_outbox_bytes_ = 0;
  return s;
}

absl::StatusOr<std::vector<state::OutboxRecord>> PartitionPipeline::Unpublished() const {
  std::vector<state::OutboxRecord> out;
  absl::Status bad;
  VIGIL_RETURN_IF_ERROR(store_.Scan(keys_.Outboxes(), [&](absl::string_view, absl::string_view value) {
    state::OutboxRecord r;
    if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      bad = absl::DataLossError("an outbox record is unreadable");
      return false;
    }
    if (r.seq() > meta_.published_seq()) out.push_back(std::move(r));
    return true;
  }));
  VIGIL_RETURN_IF_ERROR(bad);
  for (state::OutboxRecord& r : out) {  // an alert transition's value, from its history
    if (r.alert_id().empty()) continue;
    VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                           store_.Get(keys_.AlertTransition(r.alert_id(), r.alert_revision())));
    v1::Alert a;
    if (!bytes || !a.ParseFromString(*bytes)) {
      return absl::DataLossError(absl::StrCat("partition ", partition_, ": the alert transition of outbox record ",
                                              r.seq(), " is missing or unreadable; drop the partition to rebuild it"));
    }
    r.set_value(InAlertsFormat(a, *std::move(bytes)));
  }
  return out;
}

absl::Status PartitionPipeline::MarkPublished(uint64_t seq) {
  if (seq <= meta_.published_seq()) return absl::OkStatus();
  meta_.set_published_seq(seq);
  rocksdb::WriteBatch batch;
  batch.DeleteRange(keys_.Outboxes(), keys_.Outbox(seq + 1));
  batch.Put(keys_.Meta(), DeterministicBytes(meta_));
  return store_.Write(&batch, Store::Durability::kProcess);
}

absl::StatusOr<std::string> PartitionPipeline::StateDigest() const {
  SnapshotDigest digest(processor_.stream_time());
  VIGIL_RETURN_IF_ERROR(LoadAll<state::VictimState>(keys_.Victims(), [&](state::VictimState& v) {
    VIGIL_RETURN_IF_ERROR(AddVictimRecords(store_, keys_, &v));
    digest.AddVictim(DeterministicBytes(v));
    return absl::OkStatus();
  }));
  VIGIL_RETURN_IF_ERROR(LoadAll<state::SuspectState>(keys_.Suspects(), [&](state::SuspectState& s) {
    digest.AddSuspect(DeterministicBytes(s));
    return absl::OkStatus();
  }));
  return digest.Hex();
}

}  // namespace vigil
