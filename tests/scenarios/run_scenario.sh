#!/usr/bin/env bash
# Replays one case through the real vigilctl and compares every alert
# transition with the expected file, byte for byte.
#   run_scenario.sh VIGILCTL CASE_PREFIX RULES_FILE
# Files: CASE.events.jsonl (input), CASE.until (clock at the end),
# CASE.must (the transitions DOMAIN.md's table requires, written by hand),
# CASE.expected.jsonl (the whole output, reviewed by hand).
# With UPDATE=1 it writes the expected file instead (then review the diff).
set -euo pipefail
vigilctl=$1 case=$2 rules=$3
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
"$vigilctl" replay --events "$case.events.jsonl" --rules "$rules" --until "$(cat "$case.until")" >"$actual"
# First what DOMAIN.md says must be raised (written by hand, independent of the output)...
if ! python3 "$(dirname "$0")/must.py" "$case.must" <"$actual"; then
  echo "FAIL: $(basename "$case"): an alert DOMAIN.md requires is missing" >&2
  exit 1
fi
if [ "${UPDATE:-0}" = 1 ]; then cp "$actual" "$case.expected.jsonl"; exit 0; fi
# ...then the whole output, byte for byte.
if ! diff -u "$case.expected.jsonl" "$actual"; then
  echo "FAIL: $(basename "$case"): alerts differ from $case.expected.jsonl (shown as a diff above)" >&2
  exit 1
fi
echo "ok: $(basename "$case"): $(wc -l <"$actual") alert transitions as expected"
