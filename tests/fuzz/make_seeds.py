"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/), from the five cases'
events and the rules file, plus a few hostile inputs. Run it again after a
change to the protos; needs grpcio-tools (the venv integration.api makes:
~/.cache/vigil/pyenv-grpc-*/bin/python tests/fuzz/make_seeds.py).
"""
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")

gen = tempfile.mkdtemp()
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "proto"), f"--python_out={gen}"]
               + glob.glob(os.path.join(ROOT, "proto", "vigil", "v1", "*.proto"))
               + glob.glob(os.path.join(ROOT, "proto", "google", "rpc", "*.proto")), check=True)
sys.path.insert(0, gen)
from google.protobuf import json_format  # noqa: E402
from vigil.v1 import event_pb2, risk_service_pb2 as rs  # noqa: E402


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


lines = []
for path in sorted(glob.glob(os.path.join(ROOT, "tests", "scenarios", "*.events.jsonl"))):
    lines += [l for l in open(path).read().splitlines() if l.strip()]
seen_kinds = set()
for i, line in enumerate(lines):
    event = json_format.Parse(line, event_pb2.Event())
    kind = event.WhichOneof("payload") if "payload" in [o.name for o in event.DESCRIPTOR.oneofs] else str(i)
    if kind in seen_kinds:
        continue
    seen_kinds.add(kind)
    write("event_json", f"{i:03d}.json", line)
    write("event_binary", f"{i:03d}.pb", event.SerializeToString())
# Hostile: invalid UTF-8, deep nesting, a huge number, a truncated message.
write("event_json", "bad-utf8.json", b'{"event_id":"\xff\xfe","victim_id":"V"}')
write("event_json", "nested.json", "[" * 2000 + "]" * 2000)
write("event_json", "big-number.json", '{"event_id":"e","occurred_at":"9999-12-31T23:59:59Z","call_received":{}}')
write("event_binary", "truncated.pb", json_format.Parse(lines[0], event_pb2.Event()).SerializeToString()[:-3])

write("rules", "rules.yaml", open(os.path.join(ROOT, "deploy", "config", "rules.yaml")).read())
write("rules", "empty.yaml", "")
write("rules", "anchors.yaml", "a: &x [*x]\n")

first = json_format.Parse(lines[0], event_pb2.Event())
requests = [
    rs.RecordEventRequest(event=first, wait_applied=True),
    rs.GetTimelineRequest(parent=f"victims/{first.victim_id}", purpose="seed", page_size=10),
    rs.GetRiskProfileRequest(name=f"victims/{first.victim_id}/riskProfile", purpose="seed"),
    rs.ListAlertsRequest(page_size=1000000),
    rs.GetAlertRequest(name="alerts/al-0"),
    rs.AcknowledgeAlertRequest(name="alerts/al-0"),
    rs.ExplainAlertRequest(name="alerts/al-0", purpose="seed"),
]
for i, r in enumerate(requests):
    write("api", f"{i}-{type(r).__name__}", bytes([i]) + r.SerializeToString())
print(f"seeds written to {OUT}")
