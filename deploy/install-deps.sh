#!/usr/bin/env bash
# Installs the Debian packages Vigil's build, tests and demo need. Idempotent:
# when everything is present it only checks (a fraction of a second) and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev
  libabsl-dev libyaml-cpp-dev libcli11-dev libspdlog-dev
  librdkafka-dev librocksdb-dev libxxhash-dev
  libcpp-httplib-dev nlohmann-json3-dev
  prometheus kcat
  chromium chromium-driver
  libgtest-dev libgmock-dev
  clang-14 libclang-rt-14-dev
)

# npm vendors the console's JavaScript at build time. A Node.js that brings its own npm (NodeSource's) will do;
# otherwise Debian's.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
