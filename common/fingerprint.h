// Stable, portable 64-bit hashing: the same bytes give the same value on every
// machine and in every run (unlike std::hash or absl::Hash).
//  - Fnv1a64: byte at a time; what alert ids, outbox numbers and state digests
//    are made with (their values are published or compared, so it stays).
//  - ContentHash64: XXH3 (xxHash 0.8, whose output is frozen), many times
//    faster on more than a few bytes; for fingerprints the engine keeps in its
//    own state (an event's content, an evidence id).
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

namespace vigil {

inline constexpr uint64_t kFnvOffset = 14695981039346656037ull;

inline uint64_t Fnv1a64(absl::string_view bytes, uint64_t hash = kFnvOffset) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

uint64_t ContentHash64(absl::string_view bytes);

// 16 lower-case hex digits.
std::string Hex64(uint64_t value);

}  // namespace vigil
