// The console's page files, built into vigild (console_assets.cc is generated from web/ and the vendored
// libraries by embed_assets.py): nothing to install beside the binary, nothing fetched at run time.
#pragma once

#include <cstddef>
#include <string_view>

namespace vigil {

struct ConsoleAsset {
  const char* name;
  const char* content_type;
  const char* data;
  size_t size;
};

// The file called `name` (e.g. "board.js"); nullptr when there is none.
const ConsoleAsset* FindConsoleAsset(std::string_view name);

}  // namespace vigil
