// Signs what only vigild may write to the events topic (acknowledgements made
// through the API, clock ticks, suspect findings, rules changes) so that a
// record written there by any other producer is refused: HMAC-SHA256 with a key
// that only vigild's instances (and an operator's vigilctl) hold. The signature
// travels in the record's `vigil-signature` header, so a replay of the log with
// the same key admits exactly what vigild admitted.
// Thread-safe: immutable after construction.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vigil {

inline constexpr char kHeaderSignature[] = "vigil-signature";
inline constexpr size_t kMinSigningKeyBytes = 32;

class Signer {
 public:
  // The key in the file: at least 32 bytes (e.g. `head -c 32 /dev/urandom > FILE`), at most 4 KiB.
  // INVALID_ARGUMENT saying which otherwise; the key itself is never echoed.
  static absl::StatusOr<Signer> FromFile(const std::string& path);
  // REQUIRES: key.size() >= kMinSigningKeyBytes.
  explicit Signer(std::string key) : key_(std::move(key)) {}

  // Lower-case hex HMAC-SHA256 of data.
  std::string Sign(absl::string_view data) const;
  // Whether `signature` is Sign(data), compared in constant time.
  bool Verify(absl::string_view data, absl::string_view signature) const;

 private:
  std::string key_;
};

// Writes a new random key (32 bytes, mode 0600) to `path` unless a file is there already.
absl::Status CreateSigningKeyIfAbsent(const std::string& path);

}  // namespace vigil
