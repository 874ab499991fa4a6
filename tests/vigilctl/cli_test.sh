#!/usr/bin/env bash
# vigilctl replay as a case reviewer uses it: standard input, --until, and
# what a bad line, a bad flag or a bad rules file does.
#   cli_test.sh VIGILCTL
set -uo pipefail
vigilctl=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; failures=$((failures + 1)); fi
}

call() {  # call ID TIME: a non-domestic call for victim V1
  printf '{"event_id":"%s","victim_id":"V1","occurred_at":"%s","incident_id":"I1","call_received":{"caller_role":"VICTIM"}}\n' "$1" "$2"
}

# Two calls from standard input raise repeat-calls; --until lets it escalate twice.
{ call c1 2024-09-07T09:00:00Z; call c2 2024-09-07T10:00:00Z; } >"$tmp/two.jsonl"
"$vigilctl" replay --events - <"$tmp/two.jsonl" >"$tmp/out" 2>"$tmp/err"
check "stdin replay exits 0" [ $? -eq 0 ]
check "one transition without --until" [ "$(wc -l <"$tmp/out")" -eq 1 ]
check "it is repeat-calls, snake_case JSON" grep -q '"rule":"repeat-calls".*"evidence_event_ids":\["c1","c2"\]' "$tmp/out"
"$vigilctl" replay --events "$tmp/two.jsonl" --until 2024-09-07T11:00:00Z >"$tmp/out"
check "--until fires the escalations" [ "$(grep -c '"state":"ESCALATED"' "$tmp/out")" -eq 2 ]
"$vigilctl" replay --events "$tmp/two.jsonl" --text >"$tmp/out"
check "--text prints a readable line" grep -q 'FIRING .*repeat-calls .*victim V1, incident I1' "$tmp/out"

# A bad third line: the alert from line 2 is out, then the run stops with the line number, status 2.
{ call c1 2024-09-07T09:00:00Z; call c2 2024-09-07T10:00:00Z; echo '{"event_id":"c3","victim_id":"V1"}'; call c4 2024-09-07T10:30:00Z; } >"$tmp/bad.jsonl"
"$vigilctl" replay --events "$tmp/bad.jsonl" >"$tmp/out" 2>"$tmp/err"
status=$?
check "bad line exits 2" [ $status -eq 2 ]
check "bad line is named with its reason" grep -q 'line 3: occurred_at: required' "$tmp/err"
check "output before the bad line stands, nothing after" [ "$(wc -l <"$tmp/out")" -eq 1 ]

echo 'not json' >"$tmp/garbage.jsonl"
"$vigilctl" replay --events "$tmp/garbage.jsonl" >"$tmp/out" 2>"$tmp/err"
check "undecodable line exits 2" [ $? -eq 2 ]
check "undecodable line is named" grep -q 'line 1: not a valid vigil.v1.Event in JSON' "$tmp/err"

echo '{"event_id":"x","victim_id":"V1","occurred_at":"2024-09-07T09:00:00Z","incident_id":"I1","call_received":{},"colour":"red"}' >"$tmp/unknown.jsonl"
"$vigilctl" replay --events "$tmp/unknown.jsonl" >"$tmp/out" 2>"$tmp/err"
check "unknown field is refused" [ $? -eq 2 ]

"$vigilctl" replay --events "$tmp/two.jsonl" --until tomorrow >"$tmp/out" 2>"$tmp/err"
check "bad --until exits 2" [ $? -eq 2 ]
check "bad --until is explained" grep -q -- '--until: not an RFC 3339 time' "$tmp/err"

printf 'rules:\n  repeat-calls:\n    window: often\n' >"$tmp/rules.yaml"
"$vigilctl" replay --events "$tmp/two.jsonl" --rules "$tmp/rules.yaml" >"$tmp/out" 2>"$tmp/err"
check "bad rules file exits 2" [ $? -eq 2 ]
check "bad rules file names rule and field" grep -q "rule 'repeat-calls', field 'window'" "$tmp/err"

printf 'rules:\n  repeat-calls:\n    count: 3\n' >"$tmp/rules3.yaml"
"$vigilctl" replay --events "$tmp/two.jsonl" --rules "$tmp/rules3.yaml" >"$tmp/out"
check "rules file changes the threshold" [ ! -s "$tmp/out" ]

"$vigilctl" replay --events "$tmp/missing.jsonl" >"$tmp/out" 2>"$tmp/err"
check "missing events file fails" [ $? -ne 0 ]

"$vigilctl" replay --events "$tmp/two.jsonl" | "$vigilctl" show >"$tmp/out"
check "show renders alert JSONL" grep -q 'repeat-calls' "$tmp/out"

"$vigilctl" >"$tmp/out" 2>&1
check "no subcommand is a usage error" [ $? -eq 2 ]

# Nothing delivered (no broker there): a failure, never "published 1 events".
"$vigilctl" publish --brokers 127.0.0.1:1 --kafka message.timeout.ms=1500 --events "$tmp/two.jsonl" \
  >"$tmp/out" 2>"$tmp/err"
check "publish with nothing delivered exits 1" [ $? -eq 1 ]
check "publish says what was not delivered" grep -q "were not delivered" "$tmp/err"
check "publish claims nothing published" [ ! -s "$tmp/out" ]

# A tick is vigild's to write: refused without its key.
"$vigilctl" tick --brokers 127.0.0.1:1 --at 2024-01-01T00:00:00Z >"$tmp/out" 2>"$tmp/err"
check "tick without a signing key is a usage error" [ $? -eq 2 ]

# Rules diff: the same history under the shipped rules and a proposal needing three calls.
root=$(cd "$(dirname "$0")/../.." && pwd)
printf 'version: "3calls"\nrules:\n  repeat-calls:\n    count: 3\n' >"$tmp/proposal.yaml"
"$vigilctl" rules diff --events "$tmp/two.jsonl" --base "$root/deploy/config/rules.yaml" --rules "$tmp/proposal.yaml" \
  --until 2024-09-08T00:00:00Z >"$tmp/out" 2>"$tmp/err"
check "rules diff exits 0" [ $? -eq 0 ]
check "rules diff names both versions" grep -q "base rules version default, proposed version 3calls" "$tmp/out"
check "rules diff: repeat-calls removed under the proposal" \
  grep -Eq '^repeat-calls +1 +0 +0 +1 +0$' "$tmp/out"
check "rules diff: other rules unchanged" grep -Eq '^marker-on-call +0 +0 +0 +0 +0$' "$tmp/out"
check "rules diff: shift load under each" grep -q "base median 0, p95 1, max 1; proposed median 0, p95 0, max 0" "$tmp/out"
"$vigilctl" rules diff --events "$tmp/two.jsonl" --rules "$tmp/rules.yaml" >"$tmp/out" 2>"$tmp/err"
check "rules diff with a bad proposal exits 2" [ $? -eq 2 ]
check "rules diff names the file, rule and field" grep -q "rules.yaml: rule 'repeat-calls', field 'window'" "$tmp/err"

# Rules publish validates before it touches Kafka, and needs a version and the key.
"$vigilctl" rules publish --brokers 127.0.0.1:1 --signing-key-file /dev/null "$tmp/rules.yaml" >"$tmp/out" 2>"$tmp/err"
check "rules publish refuses bad rules" [ $? -eq 2 ]
check "rules publish says why" grep -q "field 'window'" "$tmp/err"
printf 'rules:\n  repeat-calls:\n    count: 3\n' >"$tmp/unversioned.yaml"
head -c 32 /dev/urandom >"$tmp/key"
"$vigilctl" rules publish --brokers 127.0.0.1:1 --signing-key-file "$tmp/key" "$tmp/unversioned.yaml" \
  >"$tmp/out" 2>"$tmp/err"
check "rules publish needs a version" [ $? -eq 2 ]
check "rules publish asks for one" grep -q "give the rules a version" "$tmp/err"

[ $failures -eq 0 ]
