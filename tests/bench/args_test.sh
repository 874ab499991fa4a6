#!/usr/bin/env bash
# vigil-bench-stream refuses bad arguments before it touches a broker: a clear message and a failing exit
# status, never a run whose figures were not what was asked (no trace written, a negative warm-up, a process
# to measure that is not there).
# vigil-bench-engine likewise refuses a flag without a whole number, or one it does not know.
#   args_test.sh VIGIL_BENCH_STREAM VIGIL_BENCH_ENGINE
set -u
bench=$1
engine=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() {
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}

timeout 20 "$bench" --brokers 127.0.0.1:1 --trace "$tmp/no-such-dir/trace.txt" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a --trace file that cannot be opened: exit 2" [ "$rc" -eq 2 ]
check "  naming the file and why" grep -q -- "--trace $tmp/no-such-dir/trace.txt: No such file or directory" "$tmp/err"

timeout 20 "$bench" --brokers 127.0.0.1:1 --warmup -1 >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a negative --warmup: refused (not run, not timed out)" test "$rc" -ne 0 -a "$rc" -ne 124
check "  naming the option" grep -q -- "--warmup: Value -1 not in range" "$tmp/err"

timeout 20 "$bench" --brokers 127.0.0.1:1 --cpu vigild=not-a-pid >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a --cpu that names no process: exit 2" [ "$rc" -eq 2 ]
check "  naming what was given" grep -q -- "--cpu vigild=not-a-pid: not NAME=PID of a running process" "$tmp/err"
timeout 20 "$bench" --brokers 127.0.0.1:1 --cpu "=$$" >"$tmp/out" 2>&1
check "a --cpu with no name: exit 2" [ "$?" -eq 2 ]

for args in "--events" "--events abc" "--pipeline-events -5" "--pipeline-turn 0" "--nonsense 3"; do
  # shellcheck disable=SC2086  # the words are the arguments
  timeout 20 "$engine" $args >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "vigil-bench-engine $args: exit 2, before any work" [ "$rc" -eq 2 ]
  check "  with its usage" grep -q -- "usage: .*--pipeline-events N" "$tmp/err"
  check "  and nothing generated" test ! -s "$tmp/out"
done

[ "$failures" -eq 0 ]
