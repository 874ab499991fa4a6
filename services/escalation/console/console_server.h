// The supervisors' console: a web page served by vigild (--console-listen), and the JSON and server-sent-events
// endpoints behind it. It holds no data and makes no decision of its own: every read and acknowledgement is a
// call to this instance's own gRPC API (RiskService) in the name of the user, so the same access file, the same
// checks and the same audit apply (a page read is a consultation, audited under the purpose the user gives).
//
// Who the user is: the common name of the client certificate their browser presents (HTTPS, mutual TLS, as for
// the API), or, in development, the one --insecure-dev-identity names (plaintext). The console calls the API
// with vigild's peer certificate, which may act for a caller (the Forward right), naming the user in
// x-vigil-user (api/peers.h): the API checks the user's own rights and audits in the user's name.
//
// Endpoints (docs/console.md):
//   GET  /                                  the live board
//   GET  /victims/{victim_id}               a victim's page
//   GET  /static/{file}                     the page's scripts, styles and vendored libraries
//   GET  /api/session                       {"identity": ..., "tls": ..., "rules": [...]}
//   GET  /api/alerts?purpose=&level=&rule=&force=   open alerts (FIRING, ESCALATED, ACKNOWLEDGED)
//   GET  /api/watch?purpose=&level=&rule=&force=    text/event-stream of transitions (WatchAlerts); resumes
//                                                    from Last-Event-ID
//   POST /api/alerts/{alert_id}/acknowledge {"note": ...}   AcknowledgeAlert (JSON only: no form can post it)
//   GET  /api/victims/{victim_id}?purpose=   profile, timeline and each alert (the newest 500) explained with
//                                            its transitions
// Errors: the API's status as an HTTP status, with {"code": "PERMISSION_DENIED", "message": ...}.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace vigil {

struct ConsoleOptions {
  std::string listen;  // HOST:PORT; port 0 picks a free one
  // HTTPS: the server's certificate and key, and the CA that signs users' client certificates (required).
  std::string tls_cert, tls_key, tls_client_ca;
  // Plaintext, every user taken to be this identity: development only.
  std::string insecure_identity;
  // Live boards open at once; more are answered 503 until one closes.
  int max_watches = 64;
  // A board with nothing new is sent a comment this often, which also finds out when the page has gone (and
  // ends its watch).
  int keep_alive_ms = 15000;
  // What the console buffers for a board that reads slowly before ending its stream (it resumes).
  size_t max_watch_backlog = 10000;
  // The rules' ids, for the board's filter.
  std::vector<std::string> rules;
  // The most open alerts one board load reads.
  int max_alerts = 50000;
};

class ConsoleServer {
 public:
  // Serves the console, calling the API over `api` (a channel to this instance's API, with credentials that
  // may act for a caller unless insecure). INVALID_ARGUMENT for a bad address or unreadable TLS files;
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ConsoleServer>> Start(const ConsoleOptions& options,
                                                              std::shared_ptr<grpc::Channel> api);
  ~ConsoleServer();
  int port() const;

 private:
  struct Impl;
  explicit ConsoleServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil
