// vigilctl: the command-line tool for Vigil. Only flag parsing lives here.
#include <iostream>

#include "CLI/CLI.hpp"
#include "services/vigilctl/api_commands.h"
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
  replay_cmd->add_flag("--from-log", replay.from_log,
                       "The events are a dump of vigild's events topic: take suspect findings from it");
  replay_cmd->add_flag("--keep-going", replay.keep_going,
                       "Report a line that cannot be applied and go on, as vigild dead-letters it");
  replay_cmd->add_flag("--records", replay.records,
                       "The input is vigilctl dump output: each record admitted or refused as vigild does "
                       "(signature, size, key, events from the future); a refused one is reported and skipped");
  replay_cmd->add_option("--signing-key-file", replay.signing_key_file,
                         "With --records: vigild's key, to admit what it signed")->envname("VIGIL_SIGNING_KEY_FILE");
  replay_cmd->add_option("--max-event-bytes", replay.max_event_bytes, "With --records: as vigild's")
      ->capture_default_str();
  replay_cmd->add_option("--future-tolerance", replay.future_tolerance, "With --records: as vigild's")
      ->capture_default_str();
  replay_cmd->add_flag("--digest", replay.digest,
                       "Print only the final state's digest, as vigild --digest prints a partition's");

  CLI::App* show_cmd = app.add_subcommand("show", "Print alert transitions (JSONL on stdin) as readable lines");

  auto add_kafka = [](CLI::App* cmd, vigil::ctl::KafkaOptions* k) {
    cmd->add_option("--brokers", k->brokers, "Kafka bootstrap servers")->envname("VIGIL_BROKERS")->capture_default_str();
    cmd->add_option("--kafka", k->properties, "librdkafka property KEY=VALUE (repeatable)");
  };
  vigil::ctl::PublishOptions publish;
  CLI::App* publish_cmd = app.add_subcommand("publish", "Publish events (JSONL) to the events topic, keyed by victim");
  add_kafka(publish_cmd, &publish.kafka);
  publish_cmd->add_option("--events", publish.events, "Events file, or - for standard input")->required();
  publish_cmd->add_option("--topic", publish.topic, "")->capture_default_str();
  publish_cmd->add_flag("!--no-validate", publish.validate, "Publish even invalid events (to test dead-lettering)");
  publish_cmd->add_flag("--shift-to-now", publish.shift_to_now, "Move all times forward so the last event is now");
  publish_cmd->add_option("--signing-key-file", publish.signing_key_file,
                          "vigild's key: sign what only vigild writes (acknowledgements), as an operator may")
      ->envname("VIGIL_SIGNING_KEY_FILE");

  vigil::ctl::TickOptions tick;
  CLI::App* tick_cmd = app.add_subcommand("tick", "Move the clock of every events partition to a time");
  add_kafka(tick_cmd, &tick.kafka);
  tick_cmd->add_option("--topic", tick.topic, "")->capture_default_str();
  tick_cmd->add_option("--at", tick.at, "RFC 3339 time")->required();
  tick_cmd->add_option("--signing-key-file", tick.signing_key_file, "vigild's key (a tick is vigild's to write)")
      ->envname("VIGIL_SIGNING_KEY_FILE")->required();

  CLI::App* rules_cmd = app.add_subcommand("rules", "Change the rules in the log, or see what a change would do");
  rules_cmd->require_subcommand(1);
  vigil::ctl::RulesPublishOptions rules_publish;
  CLI::App* rules_publish_cmd = rules_cmd->add_subcommand(
      "publish", "Validate a rules file and write it, as a rules_changed event, into every events partition");
  add_kafka(rules_publish_cmd, &rules_publish.kafka);
  rules_publish_cmd->add_option("file", rules_publish.file, "The rules file (deploy/config/rules.yaml format)")
      ->required();
  rules_publish_cmd->add_option("--version", rules_publish.version, "The version alerts will carry; default: the "
                                                                    "file's `version`");
  rules_publish_cmd->add_option("--topic", rules_publish.topic, "")->capture_default_str();
  rules_publish_cmd->add_option("--signing-key-file", rules_publish.signing_key_file, "vigild's key")
      ->envname("VIGIL_SIGNING_KEY_FILE")->required();
  vigil::ctl::RulesDiffOptions rules_diff;
  CLI::App* rules_diff_cmd = rules_cmd->add_subcommand(
      "diff", "Replay a history under the rules in force and proposed ones: alerts added, removed, changed per "
              "rule, and the alert load per 8-hour shift");
  rules_diff_cmd->add_option("--events", rules_diff.events, "The history (JSONL), or - for standard input")
      ->required();
  rules_diff_cmd->add_option("--rules", rules_diff.rules, "The proposed rules file")->required();
  rules_diff_cmd->add_option("--base", rules_diff.base, "The rules in force; default: DOMAIN.md's defaults");
  rules_diff_cmd->add_option("--until", rules_diff.until, "RFC 3339: move the clock there at the end");

  vigil::ctl::TailOptions tail;
  CLI::App* tail_cmd = app.add_subcommand("tail", "Follow the alert topic (read_committed), one line per alert");
  add_kafka(tail_cmd, &tail.kafka);
  tail_cmd->add_option("--topic", tail.topic, "")->capture_default_str();
  tail_cmd->add_flag("--from-beginning", tail.from_beginning, "Start at the oldest alert");
  tail_cmd->add_flag("--json", tail.json, "JSON lines instead of readable lines");
  tail_cmd->add_option("--max", tail.max, "Stop after this many alerts");
  tail_cmd->add_option("--idle-ms", tail.idle_ms, "Stop after this long with nothing new");
  tail_cmd->add_flag("--dead-letters", tail.dead_letters, "The topic holds dead letters: print their headers");
  tail_cmd->add_flag("--audit", tail.audit, "The topic holds audit records (e.g. vigil.audit): print them as JSON");

  size_t synth_events = 10000, synth_victims = 1000;
  uint64_t synth_seed = 42;
  int synth_days = 60;
  CLI::App* synth_cmd = app.add_subcommand("synth", "Write the synthetic test stream as JSONL");
  synth_cmd->add_option("--events", synth_events, "")->capture_default_str();
  synth_cmd->add_option("--victims", synth_victims, "")->capture_default_str();
  synth_cmd->add_option("--seed", synth_seed, "")->capture_default_str();
  synth_cmd->add_option("--days", synth_days, "Incidents start over this many days (365: a force's year)")
      ->capture_default_str()->check(CLI::Range(1, 3650));

  vigil::ctl::DumpOptions dump;
  CLI::App* dump_cmd = app.add_subcommand("dump", "Write one partition of the events topic as JSONL");
  add_kafka(dump_cmd, &dump.kafka);
  dump_cmd->add_option("--topic", dump.topic, "")->capture_default_str();
  dump_cmd->add_option("--partition", dump.partition, "")->capture_default_str();

  // RiskService calls, one subcommand each.
  vigil::ctl::ApiCall call;
  std::vector<std::pair<CLI::App*, std::string>> api_cmds;
  auto add_api = [&](const std::string& name, const std::string& help) {
    CLI::App* cmd = app.add_subcommand(name, help);
    cmd->add_option("--server", call.api.server, "vigild's API address")->envname("VIGIL_SERVER")->capture_default_str();
    cmd->add_option("--tls-ca", call.api.tls_ca, "CA of the server's certificate (PEM)")->envname("VIGIL_TLS_CA");
    cmd->add_option("--tls-cert", call.api.tls_cert, "This client's certificate (PEM)")->envname("VIGIL_TLS_CERT");
    cmd->add_option("--tls-key", call.api.tls_key, "This client's key (PEM)")->envname("VIGIL_TLS_KEY");
    cmd->add_flag("--insecure", call.api.insecure, "Plaintext, for a development server")->envname("VIGIL_INSECURE");
    cmd->add_flag("--json", call.api.json, "proto3 JSON lines instead of readable lines");
    cmd->add_option("--timeout", call.api.timeout_s,
                    "Seconds (default: 30 for a call; watch: none, it runs until stopped, and ends with exit 0 at its "
                    "timeout)")->check(CLI::NonNegativeNumber);
    api_cmds.emplace_back(cmd, name);
    return cmd;
  };
  auto add_purpose = [&](CLI::App* cmd) {
    cmd->add_option("--purpose", call.purpose, "Why you read it (recorded in the audit log)")->required();
  };
  CLI::App* c = add_api("record", "RecordEvents: validate and record events (JSONL)");
  c->add_option("--events", call.events, "Events file, or - for standard input")->required();
  c->add_flag("--wait", call.wait, "Return once vigild has applied them");
  c = add_api("timeline", "GetTimeline: a victim's events in time order (audited)");
  c->add_option("victim", call.target, "Victim id")->required();
  add_purpose(c);
  c->add_option("--from", call.from, "RFC 3339");
  c->add_option("--to", call.to, "RFC 3339 (exclusive)");
  c->add_option("--page-size", call.page_size, "");
  c->add_flag("--all", call.all_pages, "Every page");
  c = add_api("profile", "GetRiskProfile: a victim's risk profile (audited)");
  c->add_option("victim", call.target, "Victim id")->required();
  add_purpose(c);
  c = add_api("alerts", "ListAlerts: alerts, newest first (audited)");
  add_purpose(c);
  c->add_option("--state", call.states, "FIRING, ACKNOWLEDGED, ESCALATED, RESOLVED (repeatable)");
  c->add_option("--level", call.levels, "SUPERVISOR, INSPECTOR, SUPERINTENDENT (repeatable)");
  c->add_option("--rule", call.rule, "Rule id, e.g. repeat-calls");
  c->add_option("--force", call.force, "");
  c->add_option("--victim", call.victim, "");
  c->add_option("--from", call.from, "RFC 3339");
  c->add_option("--to", call.to, "RFC 3339 (exclusive)");
  c->add_option("--page-size", call.page_size, "");
  c->add_flag("--all", call.all_pages, "Every page");
  c = add_api("alert", "GetAlert: one alert (audited)");
  c->add_option("alert", call.target, "Alert id")->required();
  add_purpose(c);
  c = add_api("ack", "AcknowledgeAlert: acknowledge an alert, as this client");
  c->add_option("alert", call.target, "Alert id")->required();
  c->add_option("--note", call.note, "What you did or decided (at most 1,024 bytes): kept on the victim's timeline");
  c = add_api("watch", "WatchAlerts: alert transitions as they are committed (audited)");
  add_purpose(c);
  c->add_option("--cursor", call.cursor, "Resume after this cursor; 'beginning' for all; default: from now");
  c->add_option("--level", call.levels, "(repeatable)");
  c->add_option("--rule", call.rule, "");
  c->add_option("--force", call.force, "");
  c->add_option("--max", call.max, "Stop after this many (then print the cursor)");
  c = add_api("explain", "ExplainAlert: an alert, its evidence and its rule (audited)");
  c->add_option("alert", call.target, "Alert id")->required();
  add_purpose(c);

  c = add_api("health", "Health check (the standard gRPC protocol): SERVING exits 0, NOT_SERVING 1");
  c->add_option("service", call.target, "A service name; default: vigild's readiness (broker and store)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : vigil::ctl::kExitBadInput;
  }
  for (const auto& [cmd, name] : api_cmds) {
    if (*cmd) {
      call.method = name;
      return vigil::ctl::CallApi(call, std::cin, std::cout, std::cerr);
    }
  }
  if (*replay_cmd) return vigil::ctl::Replay(replay, std::cin, std::cout, std::cerr);
  if (*show_cmd) return vigil::ctl::Show(std::cin, std::cout, std::cerr);
  if (*publish_cmd) return vigil::ctl::Publish(publish, std::cin, std::cout, std::cerr);
  if (*tail_cmd) return vigil::ctl::Tail(tail, std::cout, std::cerr);
  if (*dump_cmd) return vigil::ctl::Dump(dump, std::cout, std::cerr);
  if (*tick_cmd) return vigil::ctl::Tick(tick, std::cout, std::cerr);
  if (*rules_publish_cmd) return vigil::ctl::RulesPublish(rules_publish, std::cout, std::cerr);
  if (*rules_diff_cmd) return vigil::ctl::RulesDiff(rules_diff, std::cin, std::cout, std::cerr);
  if (*synth_cmd) return vigil::ctl::Synth(synth_events, synth_victims, synth_seed, synth_days, std::cout);
  return vigil::ctl::kExitFailure;
}
