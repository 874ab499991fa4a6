"""Checks that every 'rule state level at victim' line of a .must file is among
the alert transitions (JSONL on stdin). Exit 1, naming each missing one, if not."""
import json
import sys

must = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
seen = set()
for line in sys.stdin:
    a = json.loads(line)
    seen.add((a["rule"], a["state"], a["level"], a["at"], a["victim_id"]))
missing = [m for m in must if tuple(m) not in seen]
for m in missing:
    print("missing:", " ".join(m), file=sys.stderr)
sys.exit(1 if missing else 0)
