// The engine's live state: plain C++ records, found by key, bounded by stream
// time. Protobuf appears only at the storage edge (codec.h), which turns a
// victim into its canonical, deterministic state::VictimState and back.
//
// Ids are interned per victim: each record names incidents, suspects, requests,
// applications and events by a typed Ref into the victim's Names table, so
// records are small, comparisons are integer compares and an IncidentRef cannot
// be passed where a RequestRef is wanted. The table goes with the victim.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "common/time_util.h"
#include "services/escalation/engine/rules_config.h"
#include "vigil/v1/alert.pb.h"

namespace vigil::live {

// An index into a victim's Names; the tag keeps kinds of id apart.
template <typename Tag>
struct Ref {
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t index = kNone;
  bool valid() const { return index != kNone; }
  friend bool operator==(Ref a, Ref b) { return a.index == b.index; }
  friend bool operator!=(Ref a, Ref b) { return a.index != b.index; }
  template <typename H>
  friend H AbslHashValue(H h, Ref r) { return H::combine(std::move(h), r.index); }
};
using IncidentRef = Ref<struct IncidentTag>;
using SuspectRef = Ref<struct SuspectTag>;
using EventRef = Ref<struct EventTag>;
using RequestRef = Ref<struct RequestTag>;
using ApplicationRef = Ref<struct ApplicationTag>;
using ProtectionRef = Ref<struct ProtectionTag>;
using TextRef = Ref<struct TextTag>;  // an alert's force, threshold, rules version, acknowledging officer

// The strings a victim's records name, each held once. The strings sit in a
// deque, which never moves what it holds, so the index keys are views of them:
// interning a new string costs one hash insert and no allocation of its own.
class Names {
 public:
  Names() = default;
  Names(const Names& other) { *this = other; }
  Names& operator=(const Names& other) {
    if (this == &other) return *this;
    index_.clear();
    strings_.clear();
    for (const std::string& s : other.strings_) Intern<void>(s);
    return *this;
  }
  Names(Names&&) = default;
  Names& operator=(Names&&) = default;

  // The string's ref, interning it when new (one hash probe either way); `*inserted` says which.
  template <typename Tag>
  Ref<Tag> Intern(absl::string_view s, bool* inserted = nullptr) {
    bool made = false;
    auto it = index_.lazy_emplace(s, [&](const auto& construct) {
      made = true;
      const auto index = static_cast<uint32_t>(strings_.size());
      construct(absl::string_view(strings_.emplace_back(s)), index);
    });
    if (inserted != nullptr) *inserted = made;
    return {it->second};
  }
  // Intern, but an empty string is the invalid ref (which reads as empty) and takes no entry.
  template <typename Tag>
  Ref<Tag> InternUnlessEmpty(absl::string_view s) {
    return s.empty() ? Ref<Tag>{} : Intern<Tag>(s);
  }
  // The ref of a string already interned; invalid when it never was.
  template <typename Tag>
  Ref<Tag> Find(absl::string_view s) const {
    auto it = index_.find(s);
    return it == index_.end() ? Ref<Tag>{} : Ref<Tag>{it->second};
  }
  // The string (empty for an invalid ref).
  template <typename Tag>
  const std::string& operator[](Ref<Tag> r) const {
    static const std::string kEmpty;
    return r.valid() ? strings_[r.index] : kEmpty;
  }

 private:
  absl::flat_hash_map<absl::string_view, uint32_t> index_;  // keys view strings_
  std::deque<std::string> strings_;
};

struct Call {
  Micros at = 0;
  EventRef event;
  IncidentRef incident;
  SuspectRef suspect;
  bool domestic_abuse = false;
};

struct Incident {
  IncidentRef id;
  bool has_first_call = false;
  Micros first_call_at = 0;
  EventRef first_call_event;
  bool domestic_abuse = false;
  int32_t grade = 0;  // IncidentGraded.Grade; 0 when not graded
  bool treat_as_urgent = false;
  Micros graded_at = 0;
  EventRef graded_event;
  bool unit_unavailable = false;
  EventRef unit_unavailable_event;
  bool unit_assigned = false;
  bool unit_arrived = false;
  bool supervisor_notified = false;
  bool assessed = false;
  bool closed = false;
  EventRef closed_event;
  std::vector<SuspectRef> suspects;  // named by its domestic-abuse calls
  // Latest event time that touched the incident.
  Micros last_at = INT64_MIN;
  // The first domestic-abuse call (INT64_MAX: none), its event, and how many domestic-abuse calls.
  Micros first_da_call = INT64_MAX;
  EventRef first_da_call_event;
  uint32_t da_calls = 0;
  // Abandoned EMERGENCY calls not yet answered, and when the incident's calls were returned.
  std::vector<std::pair<Micros, EventRef>> abandoned;
  std::vector<Micros> returned;
};

struct Marker {
  SuspectRef suspect;
  int32_t marker = 0;
  Micros at = 0;
  EventRef event;
  IncidentRef incident;
};

struct Arrest {
  RequestRef id;
  IncidentRef incident;
  SuspectRef suspect;
  bool urgent = false;
  bool requested = false;
  Micros requested_at = 0;
  EventRef request_event;
  Micros authorised_until = 0;  // 0: no authorised deferral
  EventRef authorised_deferral_event;
  bool unauthorised_deferral = false;
  EventRef unauthorised_deferral_event;
  bool attempted = false;
  Micros last_at = INT64_MIN;
  // The latest attempt by its time (INT64_MIN: none), and whether it found nobody.
  Micros last_attempt_at = INT64_MIN;
  bool last_attempt_not_found = false;
  EventRef last_attempt_event;
};

struct Assessment {
  EventRef event;
  IncidentRef incident;
  int32_t tool = 0;
  int32_t recorded_level = 0;
  int32_t effective_level = 0;
  uint32_t yes_count = 0;
  Micros at = 0;
};

struct Disclosure {
  ApplicationRef id;
  Micros requested_at = 0;
  EventRef event;
  bool decided = false;
  IncidentRef incident;
  Micros last_at = INT64_MIN;
};

// A protection against a suspect: a notice or order, or pre-charge bail (is_bail, with its conditions).
struct Protection {
  ProtectionRef id;
  bool is_bail = false;
  int32_t kind = 0;  // ProtectionRecorded.Kind; 0 for bail
  SuspectRef suspect;
  std::optional<Micros> recorded_at;
  EventRef recorded_event;
  std::optional<Micros> until;     // end of its force (inclusive); none: until ended
  std::optional<Micros> ended_at;  // ended (protection_ended, or a bail decision other than EXTENDED)
  std::optional<Micros> heard_at;  // the first court hearing (notices) or decision (bail)
  bool with_conditions = false;
  Micros last_at = INT64_MIN;

  // In force at t: recorded by then, not past `until`, not ended by then; bail only with conditions.
  bool InForce(Micros t) const {
    return recorded_at && *recorded_at <= t && (!until || t <= *until) && (!ended_at || t < *ended_at) &&
           (!is_bail || with_conditions);
  }
};

// An alert's evidence, bounded: the first kEvidenceEnds and the last kEvidenceEnds ids added, the count of
// all, and a fingerprint of every id added so that an id is added once.
inline constexpr size_t kEvidenceEnds = 10;
struct Evidence {
  std::vector<EventRef> first;  // ids in the victim's Names
  std::vector<EventRef> last;
  uint32_t total = 0;
  std::vector<uint64_t> seen_order;  // the fingerprints, in the order added (for a canonical encoding)
  // The same fingerprints as a set, built when one is added to kEvidenceScanned of them (most alerts have a
  // few, which a scan of seen_order finds sooner and with no table to hold).
  absl::flat_hash_set<uint64_t> seen;

  // Adds an id not added before (interned in the victim's `names`); returns whether it was new.
  bool Add(Names& names, absl::string_view id);
};
inline constexpr size_t kEvidenceScanned = 32;

// An alert of a victim: its ids and texts are refs into the victim's Names (most are shared by its alerts).
struct Alert {
  std::string alert_id;
  RuleId rule = RuleId::kRepeatCalls;
  std::string key;  // the rule's subject: one open alert per (rule, key)
  IncidentRef incident;
  SuspectRef suspect;
  TextRef force;
  TextRef threshold;  // the rule's setting it was raised under, e.g. "2 calls in 24h"
  TextRef rules_version;  // the version of the rules it was raised under
  Micros acknowledge_within = 0;  // its rule's window then: an alert keeps it through rules changes
  v1::Level level = v1::SUPERVISOR;
  v1::AlertState state = v1::FIRING;
  Micros at = 0;
  Micros fired_at = 0;
  std::optional<Micros> deadline;
  std::optional<Micros> acknowledge_by;
  TextRef acknowledged_by;
  std::string rule_reason;  // the rule's own sentence
  // What its latest transition added before the rule's sentence (an acknowledgement or an escalation), or
  // said instead of it (`note_only`: a resolution). The reason as published is the two together.
  std::string note;
  bool note_only = false;
  uint32_t revision = 0;
  Evidence evidence;

  bool open() const { return state != v1::RESOLVED; }
};

// Something the engine waits for; fires when stream time reaches `due`.
struct Deadline {
  enum Kind { kRule = 1, kEscalate = 2 };
  Kind kind = kRule;
  RuleId rule = RuleId::kRepeatCalls;
  Micros due = 0;
  uint64_t seq = 0;  // per victim, in the order added: deadlines due together fire in this order
  std::string key;
  std::string incident_id;
  std::string alert_id;  // kEscalate: the alert that climbs
  std::vector<std::string> evidence;
  std::string suspect_id;
  std::string subject;  // the alert's subject when it is not `key`
};
using DeadlineKey = std::pair<Micros, uint64_t>;  // (due, seq)

// An episode of a count rule (DOMAIN.md, "Alert lifecycle"): it begins when the count is reached and lasts
// while the window still holds the count, that is until the count-th most recent item plus the window. One
// alert per episode; its subject (the alert key) names the start.
struct Episode {
  bool active = false;
  Micros start = 0;
  Micros end = 0;  // an item at or before it (and not before start - window) belongs to the episode
  std::string Key() const;
};
// Which of Victim::episodes a rule's is; -1 for a rule without.
int EpisodeIndex(RuleId rule);

// The suspect view's state for one suspect: its links, from calls about any victim of the partition.
struct Link {
  std::string victim_id;
  std::string incident_id;
  std::string event_id;
  std::string force;
  Micros at = 0;
};
struct Suspect {
  std::string id;
  std::vector<Link> links;  // in (at, event id) order
  absl::flat_hash_set<std::string> event_ids;
  // Each victim's latest link, as (at, event id, index into links is not stable, so the victim id).
  absl::btree_set<std::tuple<Micros, std::string, std::string>> latest;
  absl::flat_hash_map<std::string, std::pair<Micros, std::string>> latest_by_victim;
  // The current serial-perpetrator episode (calls about at least `count` victims within the window).
  Episode episode;

  // Inserts in order; returns its index.
  size_t Insert(Link link);
  void Reindex();
};

// A (rule, subject key) map key, looked up without building a string.
struct RuleKey {
  int rule;
  std::string key;
};
struct RuleKeyView {
  int rule;
  absl::string_view key;
};
struct RuleKeyHash {
  using is_transparent = void;
  size_t operator()(const RuleKey& k) const { return (*this)(RuleKeyView{k.rule, k.key}); }
  size_t operator()(const RuleKeyView& k) const {
    return absl::Hash<std::pair<int, absl::string_view>>()({k.rule, k.key});
  }
};
struct RuleKeyEq {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return a.rule == b.rule && absl::string_view(a.key) == absl::string_view(b.key);
  }
};
template <typename V>
using RuleKeyMap = absl::flat_hash_map<RuleKey, V, RuleKeyHash, RuleKeyEq>;


struct Victim;

// The partition's timer queue: each victim with a deadline pending, once, at its earliest deadline's due time,
// in (due, victim id) order. Popping the first and firing that victim's first deadline (its own are in
// (due, seq) order) fires every deadline in (due, victim id, seq) order, and a victim's later deadlines cost
// the queue nothing until they become its earliest. A victim that is not held (evicted to the store with a
// deadline pending) keeps its entry, with no victim: it is loaded when the entry comes first and is due.
struct TimerEntry {
  Micros due;
  const std::string* id;  // the victim's id: the held victim's own, or the processor's copy while not held
  Victim* victim;         // nullptr while not held
};
struct TimerOrder {
  bool operator()(const TimerEntry& a, const TimerEntry& b) const;
};
using TimerQueue = absl::btree_set<TimerEntry, TimerOrder>;

struct SeenEvent {
  uint64_t fingerprint = 0;
  Micros at = 0;
  uint64_t order = 0;  // applied n-th (for a canonical encoding)
};

// The event ids a victim has applied, by ref. A vector sorted by ref: a new
// event's id is interned last, so adding one appends, and most victims have few.
class SeenEvents {
 public:
  using Entry = std::pair<EventRef, SeenEvent>;
  const SeenEvent* find(EventRef ref) const {
    auto it = LowerBound(ref);
    return it != entries_.end() && it->first == ref ? &it->second : nullptr;
  }
  // Adds the entry unless the ref has one.
  void try_emplace(EventRef ref, SeenEvent e) {
    if (entries_.empty() || entries_.back().first.index < ref.index) {
      entries_.emplace_back(ref, e);
      return;
    }
    auto it = LowerBound(ref);
    if (it == entries_.end() || it->first != ref) entries_.insert(it, {ref, e});
  }
  template <typename Pred>
  size_t erase_if(Pred pred) {
    const size_t before = entries_.size();
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(), pred), entries_.end());
    return before - entries_.size();
  }
  size_t size() const { return entries_.size(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

 private:
  std::vector<Entry>::const_iterator LowerBound(EventRef ref) const {
    return std::lower_bound(entries_.begin(), entries_.end(), ref,
                            [](const Entry& e, EventRef r) { return e.first.index < r.index; });
  }
  std::vector<Entry> entries_;
};

struct Victim {
  std::string id;
  std::string force;  // the latest non-empty force of its events
  Names names;

  // Event ids applied within the horizon (their strings are in names).
  SeenEvents seen;
  uint64_t seen_count = 0;
  // The earliest time any record holds (derived): nothing can be dropped before stream time passes it.
  Micros earliest_at = INT64_MAX;

  // Calls in (at, event id) order; only those some window can still reach.
  std::vector<Call> calls;
  uint64_t calls_total = 0;
  // The first domestic-abuse call of every incident that has one, in (time, event) order: potential-escalation's
  // items.
  std::vector<std::pair<Micros, EventRef>> da_first;
  // The current episode of repeat-calls and of potential-escalation (EpisodeIndex).
  std::array<Episode, 2> episodes;

  std::vector<Incident> incidents;
  absl::flat_hash_map<IncidentRef, uint32_t> incident_index;
  uint64_t incidents_total = 0;
  std::vector<Marker> markers;
  std::vector<Arrest> arrests;
  absl::flat_hash_map<RequestRef, uint32_t> arrest_index;
  std::vector<Assessment> assessments;
  std::vector<Disclosure> disclosures;
  absl::flat_hash_map<ApplicationRef, uint32_t> disclosure_index;
  std::vector<Micros> marac_referrals;
  std::vector<Protection> protections;  // notices, orders and bail, in the order first named

  // Alerts in the order raised; the open one per rule and key; the first per id.
  std::vector<Alert> alerts;
  RuleKeyMap<uint32_t> open_alerts;
  absl::flat_hash_map<std::string, uint32_t> alerts_by_id;

  // Deadlines in (due, seq) order, with the pending rule deadline per rule and key and escalation per alert.
  // A node each: a victim has a few, each Deadline is large, and a B-tree's small nodes were regrown and their
  // values moved on inserts (std::map: 2.7% fewer engine instructions, docs/performance.md).
  std::map<DeadlineKey, Deadline> deadlines;
  RuleKeyMap<DeadlineKey> rule_deadlines;
  absl::flat_hash_map<std::string, DeadlineKey> escalations;
  uint64_t next_seq = 0;
  TimerQueue* queue = nullptr;  // the partition's, when the victim is held by a processor
  std::optional<Micros> queued_due;  // where the victim is in `queue` (not stored)

  Micros last_event_at = 0;
  Micros pruned_at = INT64_MIN;
  // Where the processor holding this victim keeps it in its order of recency, for Evict (not stored).
  std::list<Victim*>::iterator recency;
  bool stored = false;        // decoded from a stored state, or a delta of it taken (not stored)
  bool changed = false;       // changed since the processor's last TakeChangedVictims (not stored)

  // Calls and event ids added and dropped since the last TakeVictimDelta (codec.h), so that a commit writes
  // only those (not stored). Those added by ref (Engine::Prune, which renumbers the names, maps them).
  std::vector<std::pair<Micros, EventRef>> calls_added;
  std::vector<std::pair<Micros, std::string>> calls_dropped;
  std::vector<EventRef> seen_added;
  std::vector<std::string> seen_dropped;

  // --- records by key -------------------------------------------------------
  Incident& IncidentFor(absl::string_view id);  // made when absent
  Incident* FindIncident(IncidentRef id);
  Incident* FindIncident(absl::string_view id) { return FindIncident(names.Find<IncidentTag>(id)); }
  Arrest& ArrestFor(absl::string_view id);
  Disclosure& DisclosureFor(absl::string_view id);
  Protection& ProtectionFor(bool bail, absl::string_view id);  // made when absent
  // The last MARAC referral at or before t; INT64_MIN when there is none.
  Micros LastReferralAtOrBefore(Micros t) const;
  const Protection* FindProtection(bool bail, absl::string_view id) const;
  Protection* FindProtection(bool bail, absl::string_view id) {
    return const_cast<Protection*>(static_cast<const Victim*>(this)->FindProtection(bail, id));
  }
  // Records an event id (interned as `ref`) as applied.
  void AddSeen(EventRef ref, uint64_t fingerprint, Micros at);

  // --- alerts ----------------------------------------------------------------
  Alert* OpenAlert(RuleId rule, absl::string_view key);
  Alert* AlertById(absl::string_view alert_id);
  // Appends an alert and indexes it (it must be open).
  Alert& AddAlert(Alert alert);
  // Call after an alert's state became RESOLVED.
  void Closed(const Alert& alert);

  // --- deadlines -------------------------------------------------------------
  // These leave the victim's place in `queue` as it was: the engine's Step calls Requeue once, when it ends,
  // so that a step that replaces the earliest deadline moves the victim in the partition's queue once.
  Deadline& AddDeadline(Deadline d);  // gives it the next seq
  void RemoveDeadline(DeadlineKey key);
  void RemoveRuleDeadline(RuleId rule, absl::string_view key);
  void RemoveEscalation(absl::string_view alert_id);
  // Takes the deadline out (it is firing).
  Deadline TakeDeadline(DeadlineKey key);
  // Puts the victim in `queue` at its earliest deadline (out of it with none), if not there already.
  void Requeue();
  // Takes the victim out of `queue`.
  void Dequeue();

  // --- calls -------------------------------------------------------------------
  // Inserts in (at, event id) order; returns its index.
  size_t InsertCall(const Call& call);
  bool CallBefore(const Call& a, const Call& b) const;
  // Index of the first call at or after time t, and of the first after t.
  size_t FirstCallAtOrAfter(Micros t) const;
  size_t FirstCallAfter(Micros t) const;
  // Notes a domestic-abuse call on the incident at t (its first, latest and count, and da_first).
  void NoteDomesticAbuseCall(Incident& incident, Micros t, EventRef event);

  // Rebuilds every index from the records (after loading or dropping records).
  void Reindex();

 private:
  // Drops the deadline from rule_deadlines or escalations.
  void Unindex(const Deadline& d);
};

}  // namespace vigil::live
