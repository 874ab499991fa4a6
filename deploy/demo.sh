#!/usr/bin/env bash
# The main job: a real Apache Kafka broker, vigild, and the Lancashire (IPCC)
# case published as if it were happening today; the alerts are shown as a
# supervisor sees them arrive (vigilctl tail). Everything it starts, it stops.
#   deploy/demo.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
work=$(mktemp -d -t vigil-demo-XXXXXX)
port=${VIGIL_DEMO_PORT:-29092}
brokers=127.0.0.1:$port
vigild_pid=""
cleanup() {
  [ -n "$vigild_pid" ] && kill -TERM "$vigild_pid" 2>/dev/null && wait "$vigild_pid" 2>/dev/null || true
  deploy/kafka/kafka.sh stop "$work/kafka" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== Starting Apache Kafka (one KRaft node on $brokers)"
deploy/kafka/kafka.sh start "$port" "$work/kafka"

echo "== Starting vigild (state in $work/state; rules deploy/config/rules.yaml; clock ticks every second)"
"$build/bin/vigild" --brokers "$brokers" --data-dir "$work/state" --rules deploy/config/rules.yaml \
  --route INSPECTOR=vigil.alerts.inspector >"$work/vigild.log" 2>&1 &
vigild_pid=$!
for _ in $(seq 1 100); do grep -q 'event=assigned' "$work/vigild.log" && break; sleep 0.2; done

cat <<'INTRO'

== The Lancashire case (IPCC report), replayed as if it were happening now
A repeat victim calls several times on one day. Her ex-partner has a violence
marker. A constable asks for his urgent arrest; no unit is free; the arrest log
is deferred without authority, and no arrest is attempted.
INTRO
"$build/bin/vigilctl" publish --brokers "$brokers" --shift-to-now \
  --events tests/scenarios/lancashire-ipcc.events.jsonl

echo
echo "== Alerts as the supervisors' console receives them (read_committed, each exactly once):"
echo
"$build/bin/vigilctl" tail --brokers "$brokers" --from-beginning --idle-ms 6000 |
  sed -E 's/  \[rule: .*$//'
echo
echo "Each line: when (event time), state, who must act, rule, whose case, and why."
echo "INSPECTOR-level alerts were also routed to vigil.alerts.inspector."
echo "vigild's log has no personal data; its last lines:"
tail -3 "$work/vigild.log"
echo "== Stopping vigild and Kafka"
