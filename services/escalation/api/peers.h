// The instances of one vigild group find each other here, so that any of them answers for any victim: a call
// for a victim whose events partition another instance owns is forwarded to that instance.
//
// Directory: each instance writes an InstanceRecord (its API address and the events partitions it owns) to the
// instances topic (compacted, keyed by instance) on every assignment, and reads the topic from the beginning,
// on a thread of its own, into a map. The owner of a partition is the instance whose latest record (by `at`)
// claims it: after a rebalance the new owner's claim is the newer one; an instance killed before it could say
// it lost its partitions is superseded once the group gives them to another (its session timeout).
//
// Forwarding: a unary call to the owner's API, as received (bytes), with this instance's client certificate
// (mutual TLS), the original caller in kCallerHeader. The owner trusts that header only from a client its
// access file allows `Forward`, checks the caller's own rights, and audits in the caller's name, naming this
// instance as forwarded_by. A forwarded call is never forwarded again (kCallerHeader marks it).
//
// Thread-safe.
#pragma once

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/kafka.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "services/escalation/api/log.h"
#include "vigil/v1/risk_service.pb.h"

namespace vigil {

// Metadata of a forwarded call: the original caller's identity.
inline constexpr char kCallerHeader[] = "x-vigil-caller";
// Metadata of a call a front end of this group (vigild's console) makes for a user it has authenticated: the
// user's identity. Trusted as kCallerHeader is (the Forward right), but the call is not yet forwarded: it may
// be, once, to the instance that owns the victim.
inline constexpr char kUserHeader[] = "x-vigil-user";

struct PeerOptions {
  std::string instance;     // this instance (its record's key)
  std::string api_address;  // host:port other instances reach this one's API on
  std::string topic = "vigil.instances";
  std::string events_topic = "vigil.events";
  // How this instance reaches the others' APIs: TLS with its own client certificate (plaintext in development).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

class Peers {
 public:
  // Starts reading the instances topic. `log` (outliving the peers) writes this instance's records.
  // REQUIRES: the topic exists.
  static absl::StatusOr<std::unique_ptr<Peers>> Start(const KafkaProps& props, PeerOptions options, Log* log);
  ~Peers();

  // This instance owns `owned` from now: written to the topic (and known here at once).
  void Announce(const std::set<int32_t>& owned);

  // The API address of the instance that owns the partition by the latest claim; nullopt when no other
  // instance claims it (none has yet, or the latest claim is this instance's own, stale).
  std::optional<std::string> OwnerOf(int32_t partition) const;
  // The API addresses of the other instances that own partitions, each once.
  std::vector<std::string> Others() const;

  // Calls `method` ("/vigil.v1.RiskService/GetTimeline") on the instance at `address` with `request` as
  // received, for `caller`, by `deadline`; `done` gets its status and response (on a gRPC thread).
  using Answered = std::function<void(grpc::Status, grpc::ByteBuffer)>;
  void Forward(const std::string& address, const std::string& method, const grpc::ByteBuffer& request,
               const std::string& caller, absl::Time deadline, Answered done);

  // Forward for a message: `response` (outliving the call) is filled from an OK answer (INTERNAL when that
  // cannot be read), and `done` gets the status.
  template <typename Request, typename Response>
  void Call(const std::string& address, const std::string& method, const Request& request,
            const std::string& caller, absl::Time deadline, Response* response,
            std::function<void(grpc::Status)> done) {
    grpc::ByteBuffer bytes;
    bool own = false;
    (void)grpc::SerializationTraits<Request>::Serialize(request, &bytes, &own);
    Forward(address, method, bytes, caller, deadline,
            [response, done = std::move(done)](grpc::Status status, grpc::ByteBuffer answer) {
              if (status.ok() && !grpc::SerializationTraits<Response>::Deserialize(&answer, response).ok()) {
                status = grpc::Status(grpc::StatusCode::INTERNAL, "another instance's answer is unreadable");
              }
              done(std::move(status));
            });
  }
  // Call, waiting for its answer (on a thread that may block).
  template <typename Request, typename Response>
  grpc::Status CallAndWait(const std::string& address, const std::string& method, const Request& request,
                           const std::string& caller, absl::Time deadline, Response* response) {
    std::promise<grpc::Status> outcome;
    Call(address, method, request, caller, deadline, response,
         [&outcome](grpc::Status status) { outcome.set_value(std::move(status)); });
    return outcome.get_future().get();
  }

 private:
  Peers(PeerOptions options, Log* log) : options_(std::move(options)), log_(*log) {}
  void Read(std::unique_ptr<RdKafka::KafkaConsumer> consumer);
  void Learn(const v1::InstanceRecord& record);
  grpc::GenericStub& Stub(const std::string& address);

  const PeerOptions options_;
  Log& log_;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::map<std::string, v1::InstanceRecord> instances_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<grpc::GenericStub>> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vigil
