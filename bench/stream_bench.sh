#!/usr/bin/env bash
# Streaming benchmark: starts a real Kafka broker and vigild, runs
# vigil-bench-stream against them, and stops both.
#   bench/stream_bench.sh [BUILD_DIR] [vigil-bench-stream flags...]
# VIGILD_FLAGS (environment): more vigild flags, e.g. "--batch-ms 5" to try a latency knob; VIGILD_LOG: keep
# vigild's log there (with --log-level debug: each batch's store_ms and each transaction's commit_ms);
# VIGILD_TICK_MS: vigild's clock ticks (0 by default, below; 250, vigild's own default, is how the Kafka Streams
# peer's script runs it: every deadline in the stream overdue on arrival, an alert storm).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
shift || true
work=$(mktemp -d -t vigil-bench-XXXXXX)
port=${VIGIL_BENCH_PORT:-39092}
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${VIGILD_LOG:-}" ] && cp "$work/vigild.log" "$VIGILD_LOG" || true
  deploy/kafka/kafka.sh stop "$work/kafka" || true
  rm -rf "$work"
}
trap cleanup EXIT
deploy/kafka/kafka.sh start "$port" "$work/kafka"
# No wall-clock ticks: the stream is 60 days of history published in a second, and a clock saying "now" from the
# first tick would make every deadline in it overdue on arrival (an alert storm no live force sees); with the
# events' own times as the clock, vigild publishes what a replay of the stream publishes (the bench prints both).
"$build/bin/vigild" --brokers "127.0.0.1:$port" --data-dir "$work/state" --tick-ms "${VIGILD_TICK_MS:-0}" ${VIGILD_FLAGS:-} >"$work/vigild.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do grep -q 'event=assigned' "$work/vigild.log" && break; sleep 0.2; done
"$build/bin/vigil-bench-stream" --brokers "127.0.0.1:$port" --cpu "vigild=$pid" --cpu "broker=$(cat "$work/kafka/broker.pid")" "$@"
# vigild's peak resident memory over the whole run (the kernel's high-water mark).
echo "vigild peak memory (VmHWM): $(awk '/VmHWM/ {printf "%d MB", $2 / 1024}' "/proc/$pid/status")"
