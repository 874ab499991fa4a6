#include "common/http_serving.h"

#include <sys/socket.h>

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vigil {

absl::StatusOr<std::unique_ptr<HttpServing>> HttpServing::Start(std::unique_ptr<httplib::Server> server,
                                                               absl::string_view listen, absl::string_view flag) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == absl::string_view::npos || colon == 0 || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " wants HOST:PORT, got '", listen, "'"));
  }
  std::string host(listen.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second vigild on the same port would
  // share it (and a request reach either) instead of being refused.
  server->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const int bound = port == 0 ? server->bind_to_any_port(host) : (server->bind_to_port(host, port) ? port : -1);
  if (bound < 0) return absl::UnavailableError(absl::StrCat(flag, ": cannot listen on ", listen));
  std::unique_ptr<HttpServing> serving(new HttpServing(std::move(server), bound));
  httplib::Server* raw = serving->server_.get();
  serving->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // stop() does nothing to a server not yet listening: the destructor's must not come before it is.
  while (!raw->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return serving;
}

HttpServing::~HttpServing() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace vigil
