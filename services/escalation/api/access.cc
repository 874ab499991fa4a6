#include "services/escalation/api/access.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/yaml_file.h"
#include "yaml-cpp/yaml.h"

namespace vigil {

const std::vector<std::string>& RiskServiceMethods() {
  static const std::vector<std::string> methods = {"RecordEvent",     "RecordEvents", "GetTimeline",
                                                   "GetRiskProfile",  "ListAlerts",   "GetAlert",
                                                   "AcknowledgeAlert", "WatchAlerts", "ExplainAlert",
                                                   // Not a method: the right of another vigild instance to
                                                   // forward a call in its caller's name (api/peers.h).
                                                   "Forward"};
  return methods;
}

namespace {

absl::Status Bad(absl::string_view source, absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", where, ": ", what));
}

// A list of names under `node`, each checked by `known`.
absl::StatusOr<std::vector<std::string>> Names(const YAML::Node& node, absl::string_view source,
                                               absl::string_view where) {
  if (!node.IsSequence()) return Bad(source, where, "expected a list of names");
  std::vector<std::string> out;
  for (const YAML::Node& n : node) {
    if (!n.IsScalar() || n.Scalar().empty()) return Bad(source, where, "expected a list of names");
    out.push_back(n.Scalar());
  }
  return out;
}

}  // namespace

absl::StatusOr<AccessPolicy> AccessPolicy::Parse(absl::string_view yaml_text, absl::string_view source) {
  // Strict: a repeated key (a client listed twice, one line appended) or a list as a key is refused, never
  // resolved by taking the last one.
  absl::StatusOr<YAML::Node> parsed = ParseStrictYaml(yaml_text, source);
  if (!parsed.ok()) return parsed.status();
  const YAML::Node root = *parsed;
  if (!root.IsMap()) return Bad(source, "top level", "expected 'roles' and 'clients'");
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    if (key != "roles" && key != "clients") {
      return Bad(source, Shown(key), "unknown section (expected roles, clients)");
    }
  }
  AccessPolicy policy;
  const auto& methods = RiskServiceMethods();
  if (root["roles"] && !root["roles"].IsMap()) return Bad(source, "roles", "expected a map of role: [methods]");
  for (const auto& kv : root["roles"]) {
    const std::string role = kv.first.Scalar();
    auto names = Names(kv.second, source, absl::StrCat("roles.", Shown(role)));
    if (!names.ok()) return names.status();
    auto& allowed = policy.role_methods_[role];
    for (const std::string& m : *names) {
      if (std::find(methods.begin(), methods.end(), m) == methods.end()) {
        return Bad(source, absl::StrCat("roles.", Shown(role)), absl::StrCat("unknown method ", Shown(m)));
      }
      allowed.insert(m);
    }
  }
  if (root["clients"] && !root["clients"].IsMap()) return Bad(source, "clients", "expected a map of client: [roles]");
  for (const auto& kv : root["clients"]) {
    const std::string client = kv.first.Scalar();
    auto names = Names(kv.second, source, absl::StrCat("clients.", Shown(client)));
    if (!names.ok()) return names.status();
    for (const std::string& r : *names) {
      if (!policy.role_methods_.contains(r)) {
        return Bad(source, absl::StrCat("clients.", Shown(client)), absl::StrCat("unknown role ", Shown(r)));
      }
    }
    policy.client_roles_[client] = *std::move(names);
  }
  return policy;
}

absl::StatusOr<AccessPolicy> AccessPolicy::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

bool AccessPolicy::Allows(absl::string_view identity, absl::string_view method) const {
  auto it = client_roles_.find(identity);
  if (it == client_roles_.end()) return false;
  for (const std::string& role : it->second) {
    if (role_methods_.at(role).contains(method)) return true;
  }
  return false;
}

std::vector<std::string> AccessPolicy::Roles(absl::string_view identity) const {
  auto it = client_roles_.find(identity);
  return it == client_roles_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace vigil
