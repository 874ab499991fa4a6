// vigilctl's RiskService subcommands: one per API call, readable by default,
// proto3 JSON (one message a line) with --json.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace vigil::ctl {

struct ApiOptions {
  std::string server = "127.0.0.1:7443";
  // Mutual TLS: the CA that signed the server's certificate, and this client's certificate and key.
  std::string tls_ca, tls_cert, tls_key;
  bool insecure = false;  // plaintext (a server run with --insecure-dev-identity)
  bool json = false;
  // Seconds; 0: 30 for a call, none for watch (which then runs until stopped).
  int timeout_s = 0;
};

struct ApiCall {
  ApiOptions api;
  std::string method;      // record, timeline, profile, alerts, alert, ack, watch, explain
  std::string target;      // a victim id or an alert id, where the call takes one
  std::string purpose;     // reads of a victim's data
  std::string events;      // record: JSONL file or "-"
  bool wait = false;       // record: until vigild has applied the events
  std::string from, to;    // timeline, alerts: RFC 3339 time range
  std::vector<std::string> states, levels;  // alerts
  std::string rule, force, victim;          // alerts, watch
  int page_size = 0;
  bool all_pages = false;
  std::string cursor;      // watch: "", "beginning" or a cursor
  std::string note;        // ack: what the acknowledger did or decided
  size_t max = 0;          // watch: stop after this many
};

// Makes the call and prints its result. Exit 0 on success, 2 for bad input
// (INVALID_ARGUMENT, with the fields at fault), 1 for other errors.
int CallApi(const ApiCall& call, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace vigil::ctl
