// The gRPC server around RiskService: TLS with client certificates (or
// plaintext for local development), the standard health service, server
// reflection (so grpcurl works), and message size limits.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/health.h"
#include "grpcpp/grpcpp.h"
#include "services/escalation/vigild/metrics.h"

namespace vigil {

struct ApiServerOptions {
  std::string listen;  // host:port, e.g. 127.0.0.1:7443; port 0 picks a free one
  // PEM files: the server's certificate and key, and the CA that signs client
  // certificates. Clients must present one (mutual TLS): its common name is their identity.
  std::string tls_cert, tls_key, tls_client_ca;
  // Plaintext, for local development only.
  bool insecure = false;
  int max_message_bytes = 4 << 20;  // larger requests: RESOURCE_EXHAUSTED
  // Every call counted by method and status code, and timed (must outlive the server).
  VigilMetrics* metrics = VigilMetrics::Unexposed();
};

struct ApiServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the port bound
};

// Starts serving `service`. INVALID_ARGUMENT for missing or unreadable TLS
// files; UNAVAILABLE when the address cannot be bound. The health service says
// SERVING while `health` (when given, outliving the server) is ready, NOT_SERVING otherwise.
absl::StatusOr<ApiServer> StartApiServer(const ApiServerOptions& options, grpc::Service* service,
                                         Health* health = nullptr);

}  // namespace vigil
