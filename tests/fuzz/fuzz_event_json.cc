// libFuzzer: one JSON line as vigilctl publish and replay read it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/jsonl.h"
#include "tests/fuzz/fuzz_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::v1::Event event;
  const std::string line(reinterpret_cast<const char*>(data), size);
  if (!vigil::ParseJsonLine(line, &event).ok()) return 0;
  vigil::fuzz::ValidateAndApply(event);
  (void)vigil::ToJsonLine(event);
  return 0;
}
