#include "services/escalation/api/api_server.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include <chrono>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpc/health/v1/health.pb.h"

namespace vigil {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& flag) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " is required unless the API is insecure"));
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {
      "OK",           "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND",    "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",      "OUT_OF_RANGE",      "UNIMPLEMENTED",     "INTERNAL",         "UNAVAILABLE",
      "DATA_LOSS",    "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN";
}

// Counts and times every call, whichever API (synchronous or callback) serves it: one interceptor per call,
// made when the call arrives, counting when its status is sent (or, for a call that never sends one, when it
// is destroyed, as CANCELLED).
class CallMetrics final : public grpc::experimental::Interceptor {
 public:
  CallMetrics(grpc::experimental::ServerRpcInfo* info, VigilMetrics* metrics)
      : metrics_(*metrics), method_(absl::StripPrefix(info->method(), "/")),
        start_(std::chrono::steady_clock::now()) {}
  ~CallMetrics() override {
    if (!counted_) Count(grpc::StatusCode::CANCELLED);
  }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Count(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Count(grpc::StatusCode code) {
    counted_ = true;
    metrics_.api_requests.With({method_, CodeName(code)}).Inc();
    metrics_.api_request_seconds.With({method_})
        .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  VigilMetrics& metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  bool counted_ = false;
};

class CallMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallMetricsFactory(VigilMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new CallMetrics(info, metrics_);
  }

 private:
  VigilMetrics* metrics_;
};

}  // namespace

std::string AdvertisedAddress(const std::string& listen, int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {};
    host = gethostname(name, sizeof(name) - 1) == 0 ? name : "localhost";
  }
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> PeerCredentials(bool insecure, const std::string& cert,
                                                                         const std::string& key,
                                                                         const std::string& ca) {
  if (insecure) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  auto c = ReadPem(cert, "--peer-tls-cert");
  if (!c.ok()) return c.status();
  auto k = ReadPem(key, "--peer-tls-key");
  if (!k.ok()) return k.status();
  auto r = ReadPem(ca, "--peer-tls-ca");
  if (!r.ok()) return r.status();
  ssl.pem_cert_chain = *c;
  ssl.pem_private_key = *k;
  ssl.pem_root_certs = *r;
  return grpc::SslCredentials(ssl);
}

absl::StatusOr<ApiServer> StartApiServer(const ApiServerOptions& options, grpc::Service* service,
                                         Health* health) {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    auto cert = ReadPem(options.tls_cert, "--tls-cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(options.tls_key, "--tls-key");
    if (!key.ok()) return key.status();
    auto ca = ReadPem(options.tls_client_ca, "--tls-client-ca");
    if (!ca.ok()) return ca.status();
    // A certificate is verified when presented but not required at the handshake, so that a client without
    // one hears UNAUTHENTICATED from the call, not an opaque UNAVAILABLE; every method still refuses it.
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = *ca;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's own health service carries no C++ descriptor; ours, linked in, lets reflection describe it, so
  // that grpcurl (and any reflection client) can call grpc.health.v1.Health/Check.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  ApiServer out;
  builder.AddListeningPort(options.listen, credentials, &out.port);
  builder.RegisterService(service);
  for (grpc::Service* more : options.more_services) builder.RegisterService(more);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CallMetricsFactory>(options.metrics));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  out.server = builder.BuildAndStart();
  if (!out.server || out.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve the API on ", options.listen));
  }
  grpc::HealthCheckServiceInterface* checks = out.server->GetHealthCheckService();
  checks->SetServingStatus(health == nullptr || health->Ready());
  checks->SetServingStatus("vigil.v1.RiskService", true);
  if (health) {
    // The overall status ("") is readiness: vigild can record, apply and publish.
    health->Listen([checks](bool ready, const absl::Status&) { checks->SetServingStatus(ready); });
  }
  return out;
}

}  // namespace vigil
