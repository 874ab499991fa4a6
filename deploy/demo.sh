#!/usr/bin/env bash
# The main job, offline for now: replay the Lancashire (IPCC) case through the
# rules and show the alerts as a supervisor would read them, one line each.
#   deploy/demo.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
case=tests/scenarios/lancashire-ipcc
cat <<'INTRO'
Vigil demo: the Lancashire case (IPCC report).
A repeat victim calls several times on one day. Her ex-partner has a violence
marker. A constable asks for his urgent arrest; no unit is free; the arrest log
is deferred without authority, and no arrest is attempted.
Replaying that day's events through Vigil's rules (deploy/config/rules.yaml):

INTRO
"$build/bin/vigilctl" replay --events "$case.events.jsonl" --rules deploy/config/rules.yaml \
  --until "$(cat "$case.until")" --text |
  sed -E 's/  \[rule: .*$//' | awk '{ print; print "" }'
echo "Each line: when, state, who must act, rule, whose case, and why."
echo "The same alerts as JSON: $build/bin/vigilctl replay --events $case.events.jsonl --until $(cat "$case.until")"
