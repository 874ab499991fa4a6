// A synthetic, force-scale event stream: many victims, each with incidents that
// run through calls, grading, units, arrests, assessments and closure, with
// omissions that make rules fire, and a sprinkling of redeliveries. Same seed,
// same stream. Used by the property tests and the engine benchmark.
#pragma once

#include <cstdint>
#include <vector>

#include "common/time_util.h"
#include "vigil/v1/event.pb.h"

namespace vigil::synthetic {

struct StreamOptions {
  size_t events = 1'000'000;
  size_t victims = 100'000;
  uint64_t seed = 42;
  // Fraction of events delivered a second time.
  double duplicate_rate = 0.01;
  // Incidents start at random times over this many days from 2024-01-01 (a force's year: 365).
  int days = 60;
  // Events of DOMAIN.md's second vocabulary (abandoned calls and their returns, protections, bail). Off, the stream is the
  // wave-1 vocabulary alone, as the wave-1 engine's diff (tests/migration/) needs.
  bool v2_events = true;
};

std::vector<v1::Event> SyntheticStream(const StreamOptions& options);

// Moves every time in the events (occurred_at, and a deferral's defer_until) forward by whole seconds so that
// the latest is now (by the wall clock): a live vigild, whose clock ticks say it is now, then treats them as
// recent rather than older than its horizon. Returns how far they moved.
Micros MoveToNow(std::vector<v1::Event>* events);

}  // namespace vigil::synthetic
