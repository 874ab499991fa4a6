#!/usr/bin/env bash
# Runs api_test.py with a Python gRPC client generated from proto/: a client in
# another language than the server, on the contract alone. Installs grpcio and
# grpcio-tools (pinned) from PyPI into a virtualenv cached under ~/.cache/vigil.
#
#   run_api_test.sh BUILD_BIN_DIR [unittest args]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${VIGIL_CACHE:-$HOME/.cache/vigil}/pyenv-grpc-1.66.1
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import grpc, grpc_tools, grpc_health, grpc_reflection" 2>/dev/null; then
  echo "run_api_test: installing grpcio into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check grpcio==1.66.1 grpcio-tools==1.66.1 \
    grpcio-health-checking==1.66.1 grpcio-reflection==1.66.1 >&2
fi
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$venv/bin/python" -m grpc_tools.protoc -I "$root/proto" --python_out="$gen" --grpc_python_out="$gen" \
  $(cd "$root/proto" && find . -name '*.proto' | sed 's|^\./||')
PYTHONPATH="$gen" exec "$venv/bin/python" "$here/api_test.py" "$@"
