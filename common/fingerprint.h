// Stable, portable 64-bit FNV-1a hashing: the same bytes give the same value on
// every machine and in every run (unlike std::hash or absl::Hash).
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

// 16 lower-case hex digits.
std::string Hex64(uint64_t value);

}  // namespace vigil
