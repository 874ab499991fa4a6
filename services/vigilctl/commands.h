// vigilctl's subcommands, each a function of its options and streams so that
// main() only parses flags and tests can call them directly.
#pragma once

#include <fstream>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "common/signer.h"
#include "common/time_util.h"
#include "vigil/v1/alert.pb.h"

namespace vigil::ctl {

// Exit statuses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitBadInput = 2;

// An events input: `in` for "-", otherwise the file at `path`, opened into `file`.
// nullptr when the file cannot be read, having said so on `err` for `command`.
std::istream* OpenEvents(const std::string& path, const char* command, std::istream& in, std::ifstream& file,
                         std::ostream& err);

// An --until option: empty gives nullopt; otherwise an RFC 3339 time. False after saying why on `err` for
// `command`.
bool ParseUntil(const std::string& text, const char* command, std::optional<Micros>* until, std::ostream& err);

struct ReplayOptions {
  std::string events;  // a file, or "-" for standard input
  std::string rules;   // empty: the built-in defaults
  std::string until;   // RFC 3339; empty: no final clock move
  bool text = false;   // readable lines instead of JSONL
  // The input is a dump of vigild's events topic (vigilctl dump): suspect
  // findings come from the log, as vigild saw them, instead of being derived
  // in process from this input alone.
  bool from_log = false;
  // A line that cannot be applied is reported on `err` and skipped, as vigild
  // dead-letters it, instead of stopping the run.
  bool keep_going = false;
  // Print only the final state's digest ("digest HEX"), to compare with vigild --digest.
  bool digest = false;
  // The input is `vigilctl dump` output (records): each is admitted or refused as vigild's admission
  // does (admission.h), with the key below and these limits; a refused record is reported and skipped.
  bool records = false;
  std::string signing_key_file;
  size_t max_event_bytes = 64 * 1024;
  std::string future_tolerance = "5m";
};

// Replays events (JSONL) in file order and writes each alert transition as it
// happens. A bad line stops the run: its number and reason on `err`, exit 2.
int Replay(const ReplayOptions& options, std::istream& in, std::ostream& out, std::ostream& err);

struct KafkaOptions {
  std::string brokers = "127.0.0.1:9092";
  std::vector<std::string> properties;  // librdkafka KEY=VALUE, passed through
};

struct PublishOptions {
  KafkaOptions kafka;
  std::string topic = "vigil.events";
  std::string events;     // JSONL file or "-"
  bool validate = true;   // refuse invalid events before they reach the topic
  bool shift_to_now = false;  // move every time so that the last event is now
  // Signs what only vigild writes (acknowledgements, ticks, findings), as an operator holding vigild's key
  // may; without it such events are published unsigned, and vigild dead-letters them.
  std::string signing_key_file;
};
// Publishes events (JSONL) to the events topic, keyed by victim_id, as protobuf.
int Publish(const PublishOptions& options, std::istream& in, std::ostream& out, std::ostream& err);

struct TailOptions {
  KafkaOptions kafka;
  std::string topic = "vigil.alerts";
  bool from_beginning = false;
  bool json = false;
  size_t max = 0;      // stop after this many alerts; 0: no limit
  int idle_ms = 0;     // stop after this long with nothing new; 0: never
  bool dead_letters = false;  // the topic holds dead letters: print reason and source, not alerts
  bool audit = false;         // the topic holds audit records (vigil.audit): print them as JSON
};
// Follows the alert topic as a read_committed consumer: one line per transition.
int Tail(const TailOptions& options, std::ostream& out, std::ostream& err);

struct DumpOptions {
  KafkaOptions kafka;
  std::string topic = "vigil.events";
  int partition = 0;
};
// Writes one partition of the events topic (committed records) as JSONL, for offline replay.
int Dump(const DumpOptions& options, std::ostream& out, std::ostream& err);

struct TickOptions {
  KafkaOptions kafka;
  std::string topic = "vigil.events";
  std::string at;  // RFC 3339
  std::string signing_key_file;  // vigild's key: a tick is written by vigild only
};
// Writes a clock tick at `at` to every partition of the events topic: the
// log's own way to say "time has reached at" (like replay's --until).
int Tick(const TickOptions& options, std::ostream& out, std::ostream& err);
struct RulesPublishOptions {
  KafkaOptions kafka;
  std::string topic = "vigil.events";
  std::string file;     // a rules file (deploy/config/rules.yaml format)
  std::string version;  // empty: the file's own `version`
  std::string signing_key_file;  // vigild's key: a rules change is written by its operators only
};
// Validates the rules file, then writes a rules_changed event (the whole file and its version) into every
// partition of the events topic: each partition switches at that offset, and a replay at the same place.
int RulesPublish(const RulesPublishOptions& options, std::ostream& out, std::ostream& err);

struct RulesDiffOptions {
  std::string events;  // the history (JSONL), or "-"
  std::string rules;   // the proposed rules file
  std::string base;    // the rules in force; empty: the built-in defaults
  std::string until;   // RFC 3339: move the clock there at the end, so that pending deadlines fire
};
// Replays the history under both and prints, per rule, the alerts added, removed and changed, and the alert
// load per 8-hour shift (median, p95, max) under each.
int RulesDiff(const RulesDiffOptions& options, std::istream& in, std::ostream& out, std::ostream& err);

// Writes the synthetic force-scale stream the benchmarks use, as JSONL.
int Synth(size_t events, size_t victims, uint64_t seed, int days, std::ostream& out);

// The signer of `path` (empty: none); nullopt after saying why on `err` for `command`.
struct SignerOrNone {
  bool ok = true;
  std::optional<Signer> signer;
};
SignerOrNone LoadSigner(const std::string& path, const char* command, std::ostream& err);

// Reads alert transitions (JSONL) and writes one readable line for each.
int Show(std::istream& in, std::ostream& out, std::ostream& err);

// One readable line for a supervisor: time, state, level, rule, who and why.
std::string FormatAlert(const v1::Alert& alert);

}  // namespace vigil::ctl
