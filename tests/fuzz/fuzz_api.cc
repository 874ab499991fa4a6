// libFuzzer: RiskService requests through a real gRPC server in process (the
// same server vigild runs, plaintext), on a real RocksDB, with a log that
// applies recorded events at once. The first byte picks the method; the rest is
// the request's protobuf bytes. Every answer must be a status, never a crash.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "services/escalation/api/api_server.h"
#include "services/escalation/api/risk_service.h"
#include "tests/testing/signing.h"
#include "tests/testing/local_log.h"

namespace {

constexpr char kAccess[] = R"(
roles:
  all: [RecordEvent, RecordEvents, GetTimeline, GetRiskProfile, ListAlerts, GetAlert, AcknowledgeAlert, ExplainAlert]
clients:
  fuzz: [all]
)";

struct World {
  World() : engine(vigil::RulesConfig::Defaults()) {
    dir = std::filesystem::temp_directory_path() / ("vigil-fuzz-api-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    store = *vigil::Store::Open(dir.string());
    log = std::make_unique<vigil::testing::LocalLog>(store.get(), &engine, &topics, &admission);
    reader = std::make_unique<vigil::StateReader>(store.get());
    access = std::make_unique<vigil::AccessPolicy>(*vigil::AccessPolicy::Parse(kAccess, "fuzz"));
    vigil::ApiOptions options;
    options.signer = &vigil::testing::TestSigner();
    options.insecure_identity = "fuzz";
    options.default_wait = absl::Milliseconds(20);
    service = std::make_unique<vigil::RiskServiceImpl>(reader.get(), log.get(), nullptr, access.get(),
                                                       &engine.rules(), options);
    vigil::ApiServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.insecure = true;
    server = *vigil::StartApiServer(server_options, service.get());
    stub = vigil::v1::RiskService::NewStub(server.server->InProcessChannel(grpc::ChannelArguments()));
  }

  template <typename Request, typename Response, typename Call>
  void Send(const uint8_t* data, size_t size, Call call) {
    Request request;
    if (!request.ParseFromArray(data, static_cast<int>(size))) return;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    Response response;
    (void)(stub.get()->*call)(&context, request, &response);
  }

  std::filesystem::path dir;
  vigil::Engine engine;
  vigil::Topics topics;
  const vigil::AdmissionPolicy admission = vigil::testing::TestAdmission();
  std::unique_ptr<vigil::Store> store;
  std::unique_ptr<vigil::testing::LocalLog> log;
  std::unique_ptr<vigil::StateReader> reader;
  std::unique_ptr<vigil::AccessPolicy> access;
  std::unique_ptr<vigil::RiskServiceImpl> service;
  vigil::ApiServer server;
  std::unique_ptr<vigil::v1::RiskService::Stub> stub;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();
  if (size == 0) return 0;
  namespace v1 = vigil::v1;
  using Stub = v1::RiskService::Stub;
  const uint8_t* body = data + 1;
  const size_t n = size - 1;
  switch (data[0] % 7) {
    case 0: world->Send<v1::RecordEventRequest, v1::RecordEventResponse>(body, n, &Stub::RecordEvent); break;
    case 1: world->Send<v1::GetTimelineRequest, v1::GetTimelineResponse>(body, n, &Stub::GetTimeline); break;
    case 2: world->Send<v1::GetRiskProfileRequest, v1::RiskProfile>(body, n, &Stub::GetRiskProfile); break;
    case 3: world->Send<v1::ListAlertsRequest, v1::ListAlertsResponse>(body, n, &Stub::ListAlerts); break;
    case 4: world->Send<v1::GetAlertRequest, v1::Alert>(body, n, &Stub::GetAlert); break;
    case 5: world->Send<v1::AcknowledgeAlertRequest, v1::Alert>(body, n, &Stub::AcknowledgeAlert); break;
    case 6: world->Send<v1::ExplainAlertRequest, v1::AlertExplanation>(body, n, &Stub::ExplainAlert); break;
  }
  return 0;
}
