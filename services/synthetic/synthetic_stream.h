// A synthetic, force-scale event stream: many victims, each with incidents that
// run through calls, grading, units, arrests, assessments and closure, with
// omissions that make rules fire, and a sprinkling of redeliveries. Same seed,
// same stream. Used by the property tests and the engine benchmark.
#pragma once

#include <cstdint>
#include <vector>

#include "vigil/v1/event.pb.h"

namespace vigil::synthetic {

struct StreamOptions {
  size_t events = 1'000'000;
  size_t victims = 100'000;
  uint64_t seed = 42;
  // Fraction of events delivered a second time.
  double duplicate_rate = 0.01;
};

std::vector<v1::Event> SyntheticStream(const StreamOptions& options);

}  // namespace vigil::synthetic
