// Strict YAML for configuration files (rules, access): a size limit checked
// before anything is read, a key is a single value and is not repeated (with
// the file and line), and a value is echoed in errors at most 80 characters.
// Thread-safe: pure functions.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace vigil {

inline constexpr size_t kMaxConfigBytes = 1 << 20;

// The file's text: NOT_FOUND when it cannot be read, INVALID_ARGUMENT when larger than max_bytes.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path, size_t max_bytes = kMaxConfigBytes);

// Parses YAML text and checks every mapping in it: keys are single values, none repeated.
// INVALID_ARGUMENT naming `source` and the line otherwise.
absl::StatusOr<YAML::Node> ParseStrictYaml(absl::string_view text, absl::string_view source);

// A value as errors show it: at most 80 characters, then "...".
std::string Shown(absl::string_view value);

// "line N" of a node (1-based).
std::string LineOf(const YAML::Node& node);

}  // namespace vigil
