// An httplib server (HTTP or HTTPS) bound to HOST:PORT and served on a thread of its own until destroyed: the
// metrics endpoint and the console share it.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "httplib.h"

namespace vigil {

class HttpServing {
 public:
  // Binds `server` (its routes already set) to `listen`, HOST:PORT (port 0: any free one; [v6] hosts too), with
  // SO_REUSEADDR only, and serves it. INVALID_ARGUMENT for a malformed address, naming `flag`; UNAVAILABLE
  // when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServing>> Start(std::unique_ptr<httplib::Server> server,
                                                           absl::string_view listen, absl::string_view flag);
  // Stops serving and waits for the thread.
  ~HttpServing();
  int port() const { return port_; }

 private:
  HttpServing(std::unique_ptr<httplib::Server> server, int port) : server_(std::move(server)), port_(port) {}
  std::unique_ptr<httplib::Server> server_;
  int port_;
  std::thread thread_;
};

}  // namespace vigil
