// libFuzzer: an events-topic record as vigild consumes it (protobuf bytes).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::v1::Event event;
  if (!event.ParseFromArray(data, static_cast<int>(size))) return 0;
  vigil::fuzz::ValidateAndApply(event);
  return 0;
}
