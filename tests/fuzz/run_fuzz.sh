#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS from its seed corpus (read only; what
# it finds goes to a scratch directory). A crash, leak, timeout or sanitizer
# report fails the run; the input that caused it is kept in
# $VIGIL_FUZZ_ARTIFACTS (default: fuzz-artifacts/ in the working directory) and
# its path printed: rerun it with `FUZZER PATH`.
#
#   run_fuzz.sh FUZZER SEED_CORPUS_DIR SECONDS
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3
artifacts=${VIGIL_FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}/$(basename "$fuzzer")
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$work" "$seeds"
