// libFuzzer: the rules file (YAML), as vigild --rules and vigilctl replay --rules read it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/escalation/engine/engine.h"
#include "services/escalation/engine/rules_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = vigil::ParseRulesYaml(text, "fuzz.yaml");
  if (config.ok()) vigil::Engine engine(*std::move(config));
  return 0;
}
