#!/usr/bin/env bash
# The monitoring that ships in deploy/: Prometheus's configuration and vigild's alerting rules pass promtool
# (their syntax, and unit tests of when each alert fires and clears), and every query of the Grafana dashboard
# is valid PromQL over metrics vigild registers. A real Prometheus scraping a real vigild: integration.ops.
#   monitoring_test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v promtool >/dev/null || { echo "promtool is missing: deploy/install-deps.sh installs it"; exit 1; }

promtool check config "$root/deploy/prometheus/prometheus.yml"
promtool check rules "$root/deploy/prometheus/vigild-alerts.yml"
(cd "$root/deploy/prometheus" && promtool test rules vigild-alerts.test.yml)

# The dashboard's queries as recording rules, for promtool to parse; the metrics they name, against vigild's.
python3 - "$root" "$tmp/dashboard-rules.yml" <<'PY'
import json, re, sys
root, out = sys.argv[1], sys.argv[2]
dash = json.load(open(f"{root}/deploy/grafana/vigild-dashboard.json"))
registered = set(re.findall(r'"(vigil_[a-z_]+)"', open(f"{root}/services/escalation/vigild/metrics.cc").read()))
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
rules = open(f"{root}/deploy/prometheus/vigild-alerts.yml").read()
used = set()
for text in exprs + [rules]:
    for name in re.findall(r"\bvigil_[a-z_]+", text):
        used.add(re.sub(r"_(bucket|sum|count)$", "", name))
unknown = used - registered
assert not unknown, f"queries name metrics vigild does not register: {sorted(unknown)}"
wanted = {"vigil_events_applied_total", "vigil_dead_letters_total", "vigil_events_too_late_total",
          "vigil_alert_transitions_total", "vigil_consumer_lag", "vigil_commit_seconds", "vigil_store_write_seconds",
          "vigil_restore_remaining_records", "vigil_api_requests_total", "vigil_api_request_seconds",
          "vigil_audit_failures_total", "vigil_ready"}
assert wanted <= registered, f"not registered: {sorted(wanted - registered)}"
assert wanted <= used, f"neither dashboarded nor alerted on: {sorted(wanted - used)}"
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write(f"      - record: dashboard_panel_{i}\n        expr: {json.dumps(e.replace('$__rate_interval', '5m'))}\n")
print(f"dashboard: {len(exprs)} queries over {len(used)} metrics, all registered")
PY
promtool check rules "$tmp/dashboard-rules.yml"
echo "monitoring: ok"
