#include "services/escalation/storage/keys.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace vigil {
namespace {
// The 0 byte that ends a victim's or an alert's id inside a key (no id holds one).
constexpr absl::string_view kIdEnd("\0", 1);

// One victim's (or alert's) records of a kind: the prefix, the kind, the id and its end, then what orders the
// record among them (nothing for the prefix of them all). One StrCat: a timeline key is made for every event.
std::string IdKey(absl::string_view prefix, absl::string_view kind, absl::string_view id,
                  absl::string_view then = {}, absl::string_view last = {}) {
  return absl::StrCat(prefix, kind, id, kIdEnd, then, last);
}
}  // namespace

std::string BigEndian(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::string PartitionPrefix(int32_t partition, PartitionKind kind) {
  // "e/%05d/" without parsing a format (a timeline key is made for every event).
  return absl::StrCat(kind == PartitionKind::kEvents ? "e/" : "l/", absl::Dec(partition, absl::kZeroPad5), "/");
}

std::string PartitionKeys::Record(absl::string_view kind, absl::string_view id) const {
  return absl::StrCat(prefix_, kind, id);
}

std::string PartitionKeys::VictimRecords(absl::string_view kind, absl::string_view victim_id) const {
  return IdKey(prefix_, kind, victim_id);
}

namespace {
// Big-endian with the sign bit flipped, so that the bytes sort as the signed times do.
std::string SortableTime(Micros t) { return BigEndian(static_cast<uint64_t>(t) ^ (uint64_t{1} << 63)); }

// Newest first: the complement of SortableTime.
std::string NewestFirst(Micros t) { return BigEndian(~(static_cast<uint64_t>(t) ^ (uint64_t{1} << 63))); }
}  // namespace

std::string PartitionKeys::AlertByTime(Micros at, absl::string_view alert_id) const {
  return absl::StrCat(AlertsByTime(), NewestFirst(at), alert_id);
}

std::string PartitionKeys::AlertsByTimeFrom(Micros at) const { return absl::StrCat(AlertsByTime(), NewestFirst(at)); }

std::string PartitionKeys::VictimAlerts(absl::string_view victim_id) const { return VictimRecords("j/", victim_id); }

std::string PartitionKeys::VictimAlert(absl::string_view victim_id, Micros at, absl::string_view alert_id) const {
  return IdKey(prefix_, "j/", victim_id, NewestFirst(at), alert_id);
}

std::string PartitionKeys::AlertTransition(absl::string_view alert_id, uint32_t revision) const {
  const std::string big_endian = BigEndian(revision);
  return IdKey(prefix_, "h/", alert_id, absl::string_view(big_endian).substr(4));
}

std::string VictimLocationKey(absl::string_view victim_id) { return absl::StrCat("x/v/", victim_id); }
std::string AlertLocationKey(absl::string_view alert_id) { return absl::StrCat("x/a/", alert_id); }

std::string LocationValue(int32_t partition) { return BigEndian(static_cast<uint32_t>(partition)).substr(4); }

std::optional<int32_t> ParseLocation(absl::string_view value) {
  if (value.size() != 4) return std::nullopt;
  uint32_t p = 0;
  for (char c : value) p = (p << 8) | static_cast<uint8_t>(c);
  if (p > INT32_MAX) return std::nullopt;
  return static_cast<int32_t>(p);
}

std::string PartitionKeys::Calls(absl::string_view victim_id) const { return VictimRecords("c/", victim_id); }

std::string PartitionKeys::Call(absl::string_view victim_id, Micros at, absl::string_view event_id) const {
  return IdKey(prefix_, "c/", victim_id, SortableTime(at), event_id);
}

std::string PartitionKeys::Seens(absl::string_view victim_id) const { return VictimRecords("d/", victim_id); }

std::string PartitionKeys::Seen(absl::string_view victim_id, absl::string_view event_id) const {
  return IdKey(prefix_, "d/", victim_id, event_id);
}

std::string TimelinePrefix(int32_t partition, absl::string_view victim_id) {
  return IdKey(PartitionPrefix(partition), "t/", victim_id);
}

std::string TimelineKey(int32_t partition, absl::string_view victim_id, Micros occurred_at,
                        absl::string_view event_id) {
  return IdKey(PartitionPrefix(partition), "t/", victim_id, SortableTime(occurred_at), event_id);
}

absl::StatusOr<std::vector<int32_t>> StoredPartitions(const Store& store, PartitionKind kind) {
  // One seek per partition: from each partition's first key, jump to the next partition's prefix.
  const absl::string_view root = kind == PartitionKind::kEvents ? "e/" : "l/";
  std::vector<int32_t> out;
  std::string from(root);
  for (;;) {
    int partition = -1;
    VIGIL_RETURN_IF_ERROR(store.Scan(root, [&](absl::string_view key, absl::string_view) {
      if (key.size() < 8 || !absl::SimpleAtoi(key.substr(2, 5), &partition)) partition = -1;
      return false;
    }, from));
    if (partition < 0) break;
    VIGIL_ASSIGN_OR_RETURN(std::optional<std::string> meta, store.Get(PartitionKeys(partition, kind).Meta()));
    if (meta) out.push_back(partition);
    from = PartitionPrefix(partition + 1, kind);
  }
  return out;
}

}  // namespace vigil
