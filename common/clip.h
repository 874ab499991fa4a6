// Bounded echoes of untrusted text: errors, logs and dead letters never repeat more than they must.
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace vigil {

// `text` cut to at most `max` bytes, on a UTF-8 character boundary, with "..." when cut.
inline std::string Clip(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return absl::StrCat(text.substr(0, cut), "...");
}

}  // namespace vigil
