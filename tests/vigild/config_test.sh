#!/usr/bin/env bash
# vigild refuses bad configuration at start, with the file and line and a bounded echo, and a clean exit
# status (2): never an abort, never "the last key wins". No broker is needed: it stops before Kafka.
#   config_test.sh VIGILD
set -u
vigild=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
passes=0
check() {
  local what=$1; shift
  if "$@"; then echo "ok: $what"; passes=$((passes + 1)); else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
start() {  # start ARGS...: vigild with the API on, an unreachable broker; its exit status in $rc
  timeout 20 "$vigild" --brokers 127.0.0.1:1 --data-dir "$tmp/data" --grpc-listen 127.0.0.1:0 \
    --insecure-dev-identity dev "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  cat "$tmp/err" >>"$tmp/all-err"
}

printf 'roles: {r: [GetAlert]}\nclients:\n  ? [a, b]\n  : [r]\n' >"$tmp/list-key.yaml"
start --access "$tmp/list-key.yaml"
check "a list as a key in access.yaml: exit 2, not an abort" [ "$rc" -eq 2 ]
check "  and says so with the line" grep -q "line 3: a key must be a single value" "$tmp/err"

printf 'roles: {r: [RecordEvent], s: [GetAlert]}\nclients:\n  dev: [r]\n  dev: [s]\n' >"$tmp/twice.yaml"
start --access "$tmp/twice.yaml"
check "a client listed twice: exit 2" [ "$rc" -eq 2 ]
check "  naming both lines" grep -q "line 4: duplicate key 'dev' (first at line 3)" "$tmp/err"

printf 'rules:\n  repeat-calls:\n    acknowledge_within: 1066238887779d\n' >"$tmp/rules.yaml"
start --access deploy/config/access.yaml --rules "$tmp/rules.yaml"
check "a duration out of range: exit 2" [ "$rc" -eq 2 ]
check "  with the range" grep -q "is not a duration from 1m to 30d" "$tmp/err"

printf 'rules:\n  repeat-calls:\n    window: %s\n' "$(head -c 200000 /dev/zero | tr '\0' x)" >"$tmp/long.yaml"
start --access deploy/config/access.yaml --rules "$tmp/long.yaml"
check "a long bad value: exit 2" [ "$rc" -eq 2 ]
check "  echoed at most 80 characters" [ "$(wc -c <"$tmp/err")" -lt 400 ]

head -c $((2 << 20)) /dev/zero | tr '\0' '#' >"$tmp/huge.yaml"
start --access deploy/config/access.yaml --rules "$tmp/huge.yaml"
check "a rules file over 1 MiB: exit 2" [ "$rc" -eq 2 ]

start --access deploy/config/access.yaml --future-tolerance 1066238887779d
check "a tolerance out of range: exit 2" [ "$rc" -eq 2 ]

printf 'short' >"$tmp/short.key"
start --access deploy/config/access.yaml --signing-key-file "$tmp/short.key"
check "a signing key under 32 bytes: exit 2" [ "$rc" -eq 2 ]
check "  says how to make one, without echoing it" grep -q "at least 32 are needed" "$tmp/err"

start --access deploy/config/access.yaml --max-held-victims 0
check "no victims held at all: exit 2" [ "$rc" -eq 2 ]
check "  naming the flag" grep -q "max-held-victims" "$tmp/err"

start --access deploy/config/access.yaml --batch-max-mb 0
check "a batch that may hold no bytes: exit 2" [ "$rc" -eq 2 ]
check "  naming the flag and its range" grep -q "batch-max-mb: Value 0 not in range 1 to 4096" "$tmp/err"

start --access deploy/config/access.yaml --batch-max-mb 5000
check "a batch over 4 GiB: exit 2" [ "$rc" -eq 2 ]

printf 'history:\n  horizon: 2h\n' >"$tmp/horizon.yaml"
start --access deploy/config/access.yaml --rules "$tmp/horizon.yaml"
check "a horizon under a day: exit 2" [ "$rc" -eq 2 ]
check "  with the range" grep -q "expected a duration from 1d to 36500d" "$tmp/err"

start --access deploy/config/access.yaml --metrics-listen nowhere
check "a metrics address without a port: exit 2" [ "$rc" -eq 2 ]
check "  naming the flag" grep -q "metrics-listen wants HOST:PORT" "$tmp/err"

start --access deploy/config/access.yaml --source-quiet-after 5s
check "a source quiet time under 10s: exit 2" [ "$rc" -eq 2 ]
check "  with the range" grep -q "source-quiet-after: from 10s to 30d, or 0" "$tmp/err"

start --access deploy/config/access.yaml --alerts-format xml
check "an alert format that is neither protobuf nor json: exit 2" [ "$rc" -eq 2 ]
check "  naming the flag" grep -q "alerts-format" "$tmp/err"

bare() {  # bare ARGS...: vigild with only what ARGS give it, an unreachable broker; its exit status in $rc
  timeout 20 "$vigild" --brokers 127.0.0.1:1 --data-dir "$tmp/data" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  cat "$tmp/err" >>"$tmp/all-err"
}
bare --console-listen 127.0.0.1:0
check "a console without the API it calls: exit 2" [ "$rc" -eq 2 ]
check "  naming both flags" grep -q "console-listen needs the API (--grpc-listen)" "$tmp/err"

bare --grpc-listen 127.0.0.1:0 --access deploy/config/access.yaml --tls-cert "$tmp/c.pem" --tls-key "$tmp/c.key" \
  --tls-client-ca "$tmp/ca.pem" --console-listen 127.0.0.1:0
check "a console over TLS with no certificate to call the API with: exit 2" [ "$rc" -eq 2 ]
check "  naming the flag it needs" grep -q "console-listen with TLS needs --peer-tls-cert" "$tmp/err"

start --access deploy/config/access.yaml --rules "$tmp/a \"quoted\"
name.yaml"
check "a rules file that is not there, its name with quotes and a newline: exit 2" [ "$rc" -eq 2 ]
check "every line written to standard error is one JSON log record" python3 -c '
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert lines, "nothing written"
for line in lines:
    r = json.loads(line)
    assert set(r) == {"ts", "level", "logger", "msg"}, line
assert any("quoted\"\nname" in json.loads(l)["msg"] for l in lines), "the quoted name is not in any message"
' "$tmp/all-err"

echo "$passes passed, $failures failed"
[ $failures -eq 0 ]
