// Who may call what: clients (by the identity in their certificate) have
// roles, and roles allow methods. Read from a YAML file, e.g.
//
//   roles:
//     recorder: [RecordEvent, RecordEvents]
//     supervisor: [GetRiskProfile, ListAlerts, GetAlert, AcknowledgeAlert, WatchAlerts]
//   clients:
//     command-and-control: [recorder]
//     supervisor-console: [supervisor]
//
// Anything not granted is refused. An immutable value: thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vigil {

// RiskService's methods, by name.
const std::vector<std::string>& RiskServiceMethods();

class AccessPolicy {
 public:
  // INVALID_ARGUMENT naming `source` and what is wrong: an unknown method or role, a malformed entry.
  static absl::StatusOr<AccessPolicy> Parse(absl::string_view yaml_text, absl::string_view source);
  // NOT_FOUND when the file cannot be read.
  static absl::StatusOr<AccessPolicy> Load(const std::string& path);

  bool Allows(absl::string_view identity, absl::string_view method) const;
  // The client's roles, empty for an unknown client.
  std::vector<std::string> Roles(absl::string_view identity) const;

 private:
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> role_methods_;
  absl::flat_hash_map<std::string, std::vector<std::string>> client_roles_;
};

}  // namespace vigil
