// vigilctl: the command-line tool for Vigil. Only flag parsing lives here.
#include <iostream>

#include "CLI/CLI.hpp"
#include "services/vigilctl/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"vigilctl: Vigil's command-line tool"};
  app.require_subcommand(1);

  vigil::ctl::ReplayOptions replay;
  CLI::App* replay_cmd = app.add_subcommand(
      "replay", "Replay events (JSONL, one vigil.v1.Event a line) through the rules; print alert transitions");
  replay_cmd->add_option("--events", replay.events, "Events file, or - for standard input")->required();
  replay_cmd->add_option("--rules", replay.rules, "Rules file (YAML); default: the built-in defaults");
  replay_cmd->add_option("--until", replay.until,
                         "Move the clock to this RFC 3339 time at the end, so pending deadlines fire");
  replay_cmd->add_flag("--text", replay.text, "Readable lines instead of JSONL");

  CLI::App* show_cmd = app.add_subcommand("show", "Print alert transitions (JSONL on stdin) as readable lines");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : vigil::ctl::kExitBadInput;
  }
  if (*replay_cmd) return vigil::ctl::Replay(replay, std::cin, std::cout, std::cerr);
  if (*show_cmd) return vigil::ctl::Show(std::cin, std::cout, std::cerr);
  return vigil::ctl::kExitFailure;
}
