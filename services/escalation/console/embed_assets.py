#!/usr/bin/env python3
"""Writes console_assets.cc: each file given as a byte array, found by its base name (console_assets.h).

    embed_assets.py OUTPUT FILE...
"""
import os
import sys

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


def main():
    out, files = sys.argv[1], sys.argv[2:]
    lines = ['#include "services/escalation/console/console_assets.h"', "", "namespace vigil {", "namespace {"]
    entries = []
    for i, path in enumerate(files):
        name = os.path.basename(path)
        kind = TYPES.get(os.path.splitext(name)[1])
        if kind is None:
            sys.exit(f"embed_assets: no content type for {name}")
        data = open(path, "rb").read()
        body = ",".join(str(b) for b in data)
        lines.append(f"const unsigned char kFile{i}[] = {{{body}{',' if data else ''}0}};")
        entries.append(f"    {{\"{name}\", \"{kind}\", reinterpret_cast<const char*>(kFile{i}), {len(data)}}},")
    lines += ["}  // namespace", "", "const ConsoleAsset* FindConsoleAsset(std::string_view name) {",
              "  static const ConsoleAsset kAssets[] = {", *entries, "  };",
              "  for (const ConsoleAsset& a : kAssets) {", "    if (name == a.name) return &a;", "  }",
              "  return nullptr;", "}", "", "}  // namespace vigil", ""]
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
