// vigilctl's subcommands, each a function of its options and streams so that
// main() only parses flags and tests can call them directly.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "vigil/v1/alert.pb.h"

namespace vigil::ctl {

// Exit statuses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitBadInput = 2;

struct ReplayOptions {
  std::string events;  // a file, or "-" for standard input
  std::string rules;   // empty: the built-in defaults
  std::string until;   // RFC 3339; empty: no final clock move
  bool text = false;   // readable lines instead of JSONL
};

// Replays events (JSONL) in file order and writes each alert transition as it
// happens. A bad line stops the run: its number and reason on `err`, exit 2.
int Replay(const ReplayOptions& options, std::istream& in, std::ostream& out, std::ostream& err);

// Reads alert transitions (JSONL) and writes one readable line for each.
int Show(std::istream& in, std::ostream& out, std::ostream& err);

// One readable line for a supervisor: time, state, level, rule, who and why.
std::string FormatAlert(const v1::Alert& alert);

}  // namespace vigil::ctl
