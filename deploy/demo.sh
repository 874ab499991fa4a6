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
api=127.0.0.1:${VIGIL_DEMO_API_PORT:-7443}
metrics=127.0.0.1:${VIGIL_DEMO_METRICS_PORT:-9464}
console=127.0.0.1:${VIGIL_DEMO_CONSOLE_PORT:-8480}
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

echo "== Starting vigild (state in $work/state; rules deploy/config/rules.yaml; clock ticks every 250 ms)"
echo "   Its gRPC API is on $api WITHOUT TLS, every caller taken to be 'local-dev': for local"
echo "   development only. Real deployments use mutual TLS (docs/api.md, docs/operations.md)."
echo "   Its Prometheus metrics are at http://$metrics/metrics (dashboard and alerting rules: deploy/grafana,"
echo "   deploy/prometheus; docs/operations.md). Its log is JSON lines: $work/vigild.log"
echo "   The supervisors' console is at http://$console/ (plaintext here, as 'local-dev'; docs/console.md)."
# The key that signs what only vigild writes (acknowledgements, ticks); the case's own acknowledgement is
# published with it below, as an operator holding it may (docs/reliability.md).
head -c 32 /dev/urandom >"$work/signing.key"
export VIGIL_SIGNING_KEY_FILE="$work/signing.key"
"$build/bin/vigild" --brokers "$brokers" --data-dir "$work/state" --rules deploy/config/rules.yaml \
  --route INSPECTOR=vigil.alerts.inspector --grpc-listen "$api" --access deploy/config/access.yaml \
  --insecure-dev-identity local-dev --metrics-listen "$metrics" --console-listen "$console" >"$work/vigild.log" 2>&1 &
vigild_pid=$!
for _ in $(seq 1 100); do grep -q 'event=assigned' "$work/vigild.log" && break; sleep 0.2; done

if [ "${VIGIL_DEMO_KEEP:-0}" = 1 ] && [ -t 0 ]; then
  echo
  echo "== Open http://$console/ in a browser now, give a purpose, and watch the case arrive."
  read -r -t 120 -p "   Press Enter to start the case (it starts by itself in 2 minutes) " _ || true
  echo
fi

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

ctl() { "$build/bin/vigilctl" "$@" --server "$api" --insecure; }
echo
echo "== The same through the API (vigilctl; docs/api.md): the victim's risk profile, read with a purpose and audited"
ctl profile V-LAN-1 --purpose "demo: duty inspector review"
echo
echo "== The duty inspector acknowledges the repeat-calls alert: an event through Kafka, applied, then returned"
alert=$(ctl alerts --rule repeat-calls --victim V-LAN-1 --purpose "demo: acknowledging it" --json | head -1 | sed -E 's/.*"alert_id":"([^"]+)".*/\1/')
ctl ack "$alert" --note "Calls joined up; risk reviewed with the attending officer" | sed -E 's/  \[rule: .*$//'
echo
echo "vigild's log has no personal data; its last lines:"
tail -3 "$work/vigild.log"
echo
echo "== What it counted (http://$metrics/metrics):"
python3 - "http://$metrics/metrics" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1]).read().decode()
samples = [l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#")]
for name in ("vigil_ready", "vigil_events_applied_total"):
    print(" ", *[f"{k} {v}" for k, v in samples if k == name])
print("  vigil_alert_transitions_total, all rules:",
      int(sum(float(v) for k, v in samples if k.startswith("vigil_alert_transitions_total{"))))
print("  vigil_consumer_lag, all partitions:", int(sum(float(v) for k, v in samples if k.startswith("vigil_consumer_lag{"))))
PY
if [ "${VIGIL_DEMO_KEEP:-0}" = 1 ]; then
  echo
  echo "== Still running: Kafka on $brokers, the API on $api (plaintext), metrics at http://$metrics/metrics,"
  echo "   and the console at http://$console/ : acknowledge the case's other alerts there, with a note."
  echo "   Try docs/api.md's walk-through,"
  echo "   e.g.: build/bin/vigilctl alerts --server $api --insecure --purpose \"demo: shift handover\""
  echo "   Press Ctrl-C to stop everything."
  while kill -0 "$vigild_pid" 2>/dev/null; do sleep 1; done
fi
[ "${VIGIL_DEMO_KEEP:-0}" = 1 ] || echo "(make demo KEEP=1 keeps them running afterwards, to try docs/api.md)"
echo "== Stopping vigild and Kafka"
