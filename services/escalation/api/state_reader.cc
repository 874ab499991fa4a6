#include "services/escalation/api/state_reader.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "services/escalation/storage/keys.h"
#include "services/escalation/storage/victim_store.h"

namespace vigil {
namespace {

// Whether `bytes` are a well-formed protobuf wire encoding (every field's tag, length and wire type),
// without parsing them into a message.
bool IsWellFormedMessage(absl::string_view bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  return google::protobuf::internal::WireFormatLite::SkipMessage(&in) && in.ConsumedEntireMessage();
}

absl::Status UnreadableEvent(int32_t partition) {
  return absl::DataLossError(absl::StrCat("stored event is unreadable in the timeline of partition ", partition));
}

template <typename Message>
absl::StatusOr<std::optional<Message>> GetMessage(const Store& store, const std::string& key) {
  VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> bytes, store.Get(key));
  if (!bytes) return std::nullopt;
  Message m;
  if (!m.ParseFromString(*bytes)) return absl::DataLossError(absl::StrCat("stored value is unreadable: ", key));
  return m;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> StateReader::Partitions(bool refresh) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (refresh || !partitions_) {
    VIGIL_ASSIGN_OR_RETURN(partitions_, StoredPartitions(store_));
  }
  std::vector<int32_t> readable;
  for (int32_t p : *partitions_) {
    if (Readable(p)) readable.push_back(p);
  }
  return readable;
}

absl::StatusOr<std::optional<std::pair<int32_t, std::string>>> StateReader::Probe(RecordKey key,
                                                                                  absl::string_view id) const {
  std::vector<int32_t> probed;
  for (bool refresh : {false, true}) {
    VIGIL_ASSIGN_OR_RETURN(std::vector<int32_t> partitions, Partitions(refresh));
    for (int32_t p : partitions) {
      if (std::find(probed.begin(), probed.end(), p) != probed.end()) continue;
      probed.push_back(p);
      VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> value, store_.Get((PartitionKeys(p).*key)(id)));
      if (value) return std::make_pair(p, *std::move(value));
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<std::pair<int32_t, std::string>>> StateReader::Locate(const std::string& location,
                                                                                   RecordKey key,
                                                                                   absl::string_view id) const {
  VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> where, store_.Get(location));
  if (!where) return std::nullopt;
  if (std::optional<int32_t> p = ParseLocation(*where); p && Readable(*p)) {
    VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> value, store_.Get((PartitionKeys(*p).*key)(id)));
    if (value) return std::make_pair(*p, *std::move(value));
  }
  return Probe(key, id);  // the partition it names was dropped (and perhaps rebuilt elsewhere)
}

absl::StatusOr<std::optional<StateReader::Victim>> StateReader::FindVictim(absl::string_view victim_id) const {
  VIGIL_ASSIGN_OR_RETURN(auto found, Locate(VictimLocationKey(victim_id), &PartitionKeys::Victim, victim_id));
  if (!found) return std::nullopt;
  absl::StatusOr<state::VictimState> whole = ReadVictim(store_, PartitionKeys(found->first), found->second);
  if (!whole.ok()) {
    return absl::DataLossError(absl::StrCat("stored state of a victim in partition ", found->first, " is unreadable"));
  }
  return Victim{found->first, *std::move(whole)};
}

absl::StatusOr<std::optional<int32_t>> StateReader::FindVictimPartition(absl::string_view victim_id) const {
  VIGIL_ASSIGN_OR_RETURN(auto found, Locate(VictimLocationKey(victim_id), &PartitionKeys::Victim, victim_id));
  if (!found) return std::nullopt;
  return found->first;
}

absl::StatusOr<std::optional<v1::Alert>> StateReader::FindAlert(absl::string_view alert_id) const {
  VIGIL_ASSIGN_OR_RETURN(auto found, Locate(AlertLocationKey(alert_id), &PartitionKeys::Alert, alert_id));
  if (!found) return std::nullopt;
  v1::Alert alert;
  if (!alert.ParseFromString(found->second)) {
    return absl::DataLossError(absl::StrCat("stored alert in partition ", found->first, " is unreadable"));
  }
  return alert;
}

absl::StatusOr<std::vector<v1::Alert>> StateReader::AlertTransitions(int32_t partition,
                                                                    absl::string_view alert_id) const {
  std::vector<v1::Alert> transitions;
  bool damaged = false;
  auto take = [&](absl::string_view, absl::string_view value) {
    damaged = !transitions.emplace_back().ParseFromArray(value.data(), static_cast<int>(value.size()));
    return !damaged;
  };
  VIGIL_RETURN_IF_ERROR(store_.Scan(PartitionKeys(partition).AlertTransitions(alert_id), take));
  if (damaged) {
    return absl::DataLossError(absl::StrCat("a stored transition of an alert in partition ", partition,
                                            " is unreadable"));
  }
  return transitions;
}

absl::Status StateReader::ForEachAlert(const std::function<bool(const v1::Alert&)>& fn) const {
  VIGIL_ASSIGN_OR_RETURN(std::vector<int32_t> partitions, Partitions(/*refresh=*/true));
  bool more = true;
  for (int32_t p : partitions) {
    absl::Status parse = absl::OkStatus();
    VIGIL_RETURN_IF_ERROR(store_.Scan(PartitionKeys(p).Alerts(), [&](absl::string_view key, absl::string_view value) {
      v1::Alert alert;
      if (!alert.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        parse = absl::DataLossError(absl::StrCat("stored alert is unreadable: ", key));
        return false;
      }
      more = fn(alert);
      return more;
    }));
    VIGIL_RETURN_IF_ERROR(parse);
    if (!more) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Alert>> StateReader::ListAlerts(const AlertQuery& q,
                                                              const std::function<bool(const v1::Alert&)>& match,
                                                              size_t limit) const {
  std::vector<v1::Alert> out;
  if (limit == 0 || q.start >= q.end) return out;
  // Index keys from the first the page may hold: after the previous page's last, and at or before end - 1.
  auto first_key = [&](const std::string& at_end, const std::string& after) { return std::max(at_end, after); };
  auto scan = [&](int32_t p, const std::string& prefix, const std::string& from, bool by_victim) -> absl::Status {
    const PartitionKeys keys(p);
    size_t kept = 0;
    absl::Status bad;
    VIGIL_RETURN_IF_ERROR(store_.Scan(prefix, [&](absl::string_view key, absl::string_view value) {
      const absl::string_view alert_id = key.substr(prefix.size() + 8);
      auto parse = [&](absl::string_view bytes, v1::Alert* a) {
        if (a->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return true;
        bad = absl::DataLossError(absl::StrCat("a stored alert of partition ", p, " is unreadable"));
        return false;
      };
      // -1: older than the range (so are the rest), 0: not on this page, 1: on it.
      auto judge = [&](const v1::Alert& a) {
        const Micros at = ToMicros(a.at());
        if (at < q.start) return -1;
        if (q.after && at == q.after->first && a.alert_id() <= q.after->second) return 0;
        return match(a) ? 1 : 0;
      };
      v1::Alert a;
      if (!by_victim) {  // the time index holds what a match needs: the whole alert is read for a match only
        if (!parse(value, &a)) return false;
        a.set_alert_id(std::string(alert_id));
        if (const int j = judge(a); j <= 0) return j == 0;
      }
      absl::StatusOr<std::optional<std::string>> got = store_.Get(keys.Alert(alert_id));
      if (!got.ok()) {
        bad = got.status();
        return false;
      }
      if (!*got) return true;
      if (!parse(**got, &a)) return false;
      // By victim the index holds nothing more; by time, the alert may have moved on since the entry was read.
      if (const int j = judge(a); j <= 0) return j == 0;
      out.push_back(std::move(a));
      return ++kept < limit;
    }, from));
    return bad;
  };
  if (!q.victim_id.empty()) {
    VIGIL_ASSIGN_OR_RETURN(std::optional<int32_t> p, FindVictimPartition(q.victim_id));
    if (!p) return out;
    const PartitionKeys keys(*p);
    VIGIL_RETURN_IF_ERROR(scan(*p, keys.VictimAlerts(q.victim_id),
                               first_key(keys.VictimAlert(q.victim_id, q.end - 1, ""),
                                         q.after ? keys.VictimAlert(q.victim_id, q.after->first, "") : ""),
                               /*by_victim=*/true));
  } else {
    VIGIL_ASSIGN_OR_RETURN(std::vector<int32_t> partitions, Partitions(/*refresh=*/true));
    for (int32_t p : partitions) {
      const PartitionKeys keys(p);
      VIGIL_RETURN_IF_ERROR(scan(p, keys.AlertsByTime(),
                                 first_key(keys.AlertsByTimeFrom(q.end - 1),
                                           q.after ? keys.AlertsByTimeFrom(q.after->first) : ""),
                                 /*by_victim=*/false));
    }
  }
  std::sort(out.begin(), out.end(), [](const v1::Alert& a, const v1::Alert& b) {
    const Micros x = ToMicros(a.at()), y = ToMicros(b.at());
    return x != y ? x > y : a.alert_id() < b.alert_id();
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

absl::StatusOr<StateReader::TimelinePage> StateReader::Timeline(int32_t partition, absl::string_view victim_id,
                                                                Micros start, Micros end, absl::string_view resume,
                                                                size_t limit) const {
  const std::string prefix = TimelinePrefix(partition, victim_id);
  const std::string from = resume.empty() ? TimelineKey(partition, victim_id, start, "")
                                          : absl::StrCat(prefix, resume);
  // The key holds the time an event occurred: the first key at or after this one is past the range.
  const std::string past = TimelineKey(partition, victim_id, end, "");
  TimelinePage page;
  absl::Status parse = absl::OkStatus();
  VIGIL_RETURN_IF_ERROR(store_.Scan(prefix, [&](absl::string_view key, absl::string_view value) {
    if (key >= past) return false;
    if (page.events.size() == limit) {
      page.resume = std::string(key.substr(prefix.size()));
      return false;
    }
    if (!IsWellFormedMessage(value)) {
      parse = UnreadableEvent(partition);
      return false;
    }
    page.events.emplace_back(value);
    return true;
  }, from));
  VIGIL_RETURN_IF_ERROR(parse);
  return page;
}

absl::StatusOr<std::vector<v1::Event>> StateReader::Events(int32_t partition, absl::string_view victim_id,
                                                          const std::vector<std::string>& event_ids) const {
  const absl::flat_hash_set<std::string> wanted(event_ids.begin(), event_ids.end());
  std::vector<v1::Event> out;
  std::string resume;
  do {
    VIGIL_ASSIGN_OR_RETURN(TimelinePage page,
                           Timeline(partition, victim_id, INT64_MIN, INT64_MAX, resume, 1000));
    for (const std::string& bytes : page.events) {
      v1::Event e;
      if (!e.ParseFromString(bytes)) {
        return UnreadableEvent(partition);
      }
      if (wanted.contains(e.event_id())) out.push_back(std::move(e));
    }
    resume = std::move(page.resume);
  } while (!resume.empty() && out.size() < wanted.size());
  return out;
}

absl::StatusOr<std::optional<std::string>> StateReader::RulesYaml(int32_t partition,
                                                                  absl::string_view version) const {
  return store_.Get(PartitionKeys(partition).Rules(version));
}

absl::StatusOr<int64_t> StateReader::AppliedUpTo(int32_t partition) const {
  VIGIL_ASSIGN_OR_RETURN(auto meta, GetMessage<v1::state::PartitionMeta>(store_, PartitionKeys(partition).Meta()));
  return meta ? meta->next_offset() : 0;
}

}  // namespace vigil
