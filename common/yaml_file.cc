#include "common/yaml_file.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/clip.h"

namespace vigil {
namespace {

absl::Status CheckNode(const YAML::Node& node, absl::string_view source, int depth) {
  if (depth > 32) return absl::InvalidArgumentError(absl::StrCat(source, ": ", LineOf(node), ": nested too deep"));
  if (node.IsSequence()) {
    for (const YAML::Node& item : node) {
      if (absl::Status s = CheckNode(item, source, depth + 1); !s.ok()) return s;
    }
  } else if (node.IsMap()) {
    std::map<std::string, int> seen;  // key -> line
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": ", LineOf(kv.first), ": a key must be a single value, not a list or mapping"));
      }
      const int line = kv.first.Mark().line + 1;
      auto [it, fresh] = seen.emplace(kv.first.Scalar(), line);
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": line ", line, ": duplicate key '",
                                                       Shown(kv.first.Scalar()), "' (first at line ", it->second,
                                                       "); each key may appear once"));
      }
      if (absl::Status s = CheckNode(kv.second, source, depth + 1); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read '", path, "': ", ec.message()));
  if (size > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes; a configuration file may have at most ", max_bytes));
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<YAML::Node> ParseStrictYaml(absl::string_view text, absl::string_view source) {
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", text.size(), " bytes; a configuration may have at most ", kMaxConfigBytes));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid YAML: line ", e.mark.line + 1, ": ",
                                                   Shown(e.msg)));
  }
  if (absl::Status s = CheckNode(root, source, 0); !s.ok()) return s;
  return root;
}

std::string Shown(absl::string_view value) { return Clip(value, 80); }

std::string LineOf(const YAML::Node& node) { return absl::StrCat("line ", node.Mark().line + 1); }

}  // namespace vigil
