#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/jsonl.h"
#include "common/time_util.h"
#include "services/escalation/engine/processor.h"
#include "services/escalation/pipeline/admission.h"
#include "vigil/v1/state.pb.h"
#include "services/vigilctl/commands.h"

namespace vigil::ctl {

std::istream* OpenEvents(const std::string& path, const char* command, std::istream& in, std::ifstream& file,
                         std::ostream& err) {
  if (path == "-") return &in;
  file.open(path);
  if (!file) {
    err << "vigilctl " << command << ": cannot read events file '" << path << "'\n";
    return nullptr;
  }
  return &file;
}

bool ParseUntil(const std::string& text, const char* command, std::optional<Micros>* until, std::ostream& err) {
  if (text.empty()) return true;
  absl::StatusOr<Micros> t = ParseRfc3339(text);
  if (!t.ok()) {
    err << "vigilctl " << command << ": --until: " << t.status().message() << "\n";
    return false;
  }
  *until = *t;
  return true;
}

int Replay(const ReplayOptions& options, std::istream& in, std::ostream& out, std::ostream& err) {
  absl::StatusOr<RulesConfig> rules =
      options.rules.empty() ? RulesConfig::Defaults() : LoadRulesFile(options.rules);
  if (!rules.ok()) {
    err << "vigilctl replay: " << rules.status().message() << "\n";
    return kExitBadInput;
  }
  std::optional<Micros> until;
  if (!ParseUntil(options.until, "replay", &until, err)) return kExitBadInput;
  AdmissionPolicy admission{.max_event_bytes = options.max_event_bytes};
  const SignerOrNone signer = LoadSigner(options.signing_key_file, "replay", err);
  if (!signer.ok) return kExitBadInput;
  if (signer.signer) admission.signer = &*signer.signer;
  if (absl::StatusOr<Micros> t = ParseDuration(options.future_tolerance); t.ok()) {
    admission.future_tolerance = *t;
  } else {
    err << "vigilctl replay: --future-tolerance: " << t.status().message() << "\n";
    return kExitBadInput;
  }
  std::ifstream file;
  std::istream* source = OpenEvents(options.events, "replay", in, file, err);
  if (source == nullptr) return kExitFailure;

  const Engine engine(*std::move(rules));
  Processor processor(&engine);
  processor.set_route_suspect_links(!options.from_log);
  std::vector<v1::Alert> alerts;
  auto write = [&] {
    if (!options.digest) {
      for (const auto& a : alerts) out << (options.text ? FormatAlert(a) : ToJsonLine(a)) << "\n";
      out.flush();
    }
    processor.Recycle(&alerts);
  };
  std::string line;
  v1::Event event;
  state::DumpedRecord record;
  for (size_t number = 1; std::getline(*source, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    absl::Status status;
    if (options.records) {
      // A record of the log: admitted or refused exactly as vigild's pipeline does.
      status = ParseJsonLine(line, &record);
      if (status.ok()) {
        absl::StatusOr<Admitted> admitted = Admit({.offset = record.offset(), .key = record.key(),
                                                   .value = record.value(), .timestamp_ms = record.timestamp_ms(),
                                                   .signature = record.signature()},
                                                  admission);
        if (admitted.ok()) {
          event = std::move(admitted->event);
        } else {
          status = admitted.status();
        }
      }
    } else {
      status = ParseJsonLine(line, &event);
    }
    if (status.ok() && event.has_clock_tick()) {
      status = processor.AdvanceTo(ToMicros(event.occurred_at()), &alerts);  // a tick from a dumped events topic
    } else if (status.ok()) {
      status = processor.Apply(event, &alerts);
    }
    processor.TakeSuspectLinks();  // with --from-log, vigild's suspect view decided; its findings are in the log
    if (!status.ok()) {
      err << "vigilctl replay: line " << number << ": " << status.message() << "\n";
      if (!options.keep_going) return kExitBadInput;
    }
    write();
  }
  if (until) processor.AdvanceThrough(*until, &alerts).IgnoreError();  // no loader: nothing to load, so no error
  write();
  if (options.digest) out << "digest " << processor.StateDigest() << "\n";
  return kExitOk;
}

}  // namespace vigil::ctl
