#!/usr/bin/env bash
# API benchmark: starts a real Kafka broker (for the audit records every read
# writes), runs vigil-bench-api against it, and stops it.
#   bench/api_bench.sh [BUILD_DIR] [vigil-bench-api flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
shift || true
work=$(mktemp -d -t vigil-bench-api-XXXXXX)
port=${VIGIL_BENCH_PORT:-39192}
cleanup() {
  deploy/kafka/kafka.sh stop "$work/kafka" || true
  rm -rf "$work"
}
trap cleanup EXIT
deploy/kafka/kafka.sh start "$port" "$work/kafka"
"$build/bin/vigil-bench-api" --brokers "127.0.0.1:$port" "$@"
