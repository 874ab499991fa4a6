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
  // More services on the same server (vigild's PeerService), outliving it.
  std::vector<grpc::Service*> more_services;
};

struct ApiServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the port bound
};

// How this instance calls another's API (forwarding, api/peers.h): plaintext when `insecure`; otherwise TLS,
// trusting servers signed by `ca`, presenting the client certificate `cert` with its key. INVALID_ARGUMENT for
// missing or unreadable files.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PeerCredentials(bool insecure, const std::string& cert,
                                                                         const std::string& key,
                                                                         const std::string& ca);

// The address other instances reach this API on: `listen`'s host (this host's name for a wildcard one)
// with the port bound.
std::string AdvertisedAddress(const std::string& listen, int port);

// Starts serving `service`. INVALID_ARGUMENT for missing or unreadable TLS
// files; UNAVAILABLE when the address cannot be bound. The health service says
// SERVING while `health` (when given, outliving the server) is ready, NOT_SERVING otherwise.
absl::StatusOr<ApiServer> StartApiServer(const ApiServerOptions& options, grpc::Service* service,
                                         Health* health = nullptr);

}  // namespace vigil
