"""vigild as an operator runs it, on a real Apache Kafka broker: a real Prometheus (Debian's) scrapes its
/metrics, loads deploy/prometheus/vigild-alerts.yml and fires an alert from what vigild reports; every line
vigild writes is a JSON log record (checked as each vigild is closed).

    ops_test.py BUILD_BIN_DIR [unittest args]
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streaming_test as st  # noqa: E402
import faults_test as ft  # noqa: E402

RULES = os.path.join(st.ROOT, "deploy", "prometheus", "vigild-alerts.yml")
READ_ALERTS = os.path.join(st.ROOT, "deploy", "examples", "read_alerts.py")
KAFKA_PY = "confluent-kafka==2.6.1"


def kafka_python():
    """A Python with confluent-kafka (pinned, from PyPI)."""
    return st.pinned_python(KAFKA_PY, "confluent_kafka")


class Prometheus:
    """A Prometheus server scraping the given targets every second, with vigild's alerting rules."""

    def __init__(self, directory, targets):
        self.port = st.free_port()
        config = os.path.join(directory, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    f"rule_files: [{json.dumps(RULES)}]\n"
                    "scrape_configs:\n  - job_name: vigild\n"
                    f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n")
        self.log = open(os.path.join(directory, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={directory}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=self.log)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query):
        """The query's single value, or None while it has none."""
        try:
            result = self.api("query", query=query)["result"]
        except OSError:
            return None  # not serving yet
        return float(result[0]["value"][1]) if result else None

    def wait(self, query, want, timeout=120):
        deadline = time.time() + timeout
        got = None
        while time.time() < deadline:
            got = self.value(query)
            if got is not None and want(got):
                return got
            time.sleep(1)
        raise AssertionError(f"Prometheus: {query} is {got} after {timeout}s")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


class TlsVigild(st.Vigild):
    """vigild with its API on mutual TLS (dev certificates), forwarding to the group's other instances as
    vigild-peer."""

    def __init__(self, name, data_dir, certs, instance, extra=(), **kw):
        self.api = f"127.0.0.1:{st.free_port()}"
        self.certs = certs
        super().__init__(name, data_dir, instance=instance, extra=[
            "--grpc-listen", self.api, "--access", ft.ACCESS, "--audit-topic", f"{name}.audit",
            "--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key",
            "--tls-client-ca", f"{certs}/ca.pem", "--peer-tls-cert", f"{certs}/vigild-peer.pem",
            "--peer-tls-key", f"{certs}/vigild-peer.key", "--instances-topic", f"{name}.instances", *extra], **kw)

    def call(self, *args, client="supervisor-console", stdin=None, timeout=60):
        return st.run(os.path.join(st.BIN, "vigilctl"), *args[:1], "--server", self.api,
                      "--tls-ca", f"{self.certs}/ca.pem", "--tls-cert", f"{self.certs}/{client}.pem",
                      "--tls-key", f"{self.certs}/{client}.key", *args[1:], stdin=stdin, check=False,
                      timeout=timeout)


class OpsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-ops-")
        self.name = f"ops{st.random.randrange(10**8)}"
        self.closing = []

    def tearDown(self):
        for c in reversed(self.closing):
            c.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_prometheus_scrapes_vigild_and_fires_its_alerting_rules(self):
        if shutil.which("prometheus") is None:
            self.fail("prometheus is missing: deploy/install-deps.sh installs it")
        metrics = f"127.0.0.1:{st.free_port()}"
        v = ft.ApiVigild(self.name, os.path.join(self.dir, "data"),
                         extra=["--metrics-listen", metrics])
        self.closing.append(v)
        v.start()
        v.wait_health("SERVING", timeout=60)
        # Prometheus scrapes from the start, as it would in service.
        p = Prometheus(self.dir, [metrics])
        self.closing.append(p)
        p.wait('up{job="vigild"}', lambda x: x == 1)
        lines = ft.synth(os.path.join(self.dir, "events.jsonl"), 6000, 600, 21)
        ft.publish(v, lines)
        # An event no rule can take (no payload): a dead letter.
        st.ctl("publish", "--topic", v.topics["events"], "--events", "-", "--no-validate",
               stdin=json.dumps({"event_id": "ops-bad-1", "victim_id": "V-ops-bad", "source": "ops-test",
                                 "occurred_at": "2026-01-01T00:00:00Z"}) + "\n")
        self.assertTrue(st.wait_for_alerts(v, 1, timeout=90), "no alert was published")
        self.assertEqual(v.health(), "SERVING")  # a call of the API, counted

        p.wait("vigil_ready", lambda x: x == 1)
        p.wait("sum(vigil_owned_partitions)", lambda x: x == 4)
        applied = p.wait("sum(vigil_events_applied_total)", lambda x: x >= 5000)
        self.assertLessEqual(applied, 6000)
        p.wait("sum(vigil_alert_transitions_total)", lambda x: x >= 1)
        p.wait("sum(vigil_dead_letters_total)", lambda x: x == 1)
        p.wait('sum(vigil_api_requests_total{method="grpc.health.v1.Health/Check",code="OK"})', lambda x: x >= 1)
        p.wait("sum(vigil_consumer_lag)", lambda x: x == 0)
        p.wait("sum(vigil_restore_remaining_records)", lambda x: x == 0)
        held = p.wait("sum(vigil_held_victims)", lambda x: x >= 1)
        p.wait("sum(vigil_victims_awaiting_deadline)", lambda x: 0 <= x <= held)
        p.wait("sum(vigil_commit_seconds_count)", lambda x: x >= 1)
        p.wait("sum(vigil_store_write_seconds_count)", lambda x: x >= 1)
        p.wait("vigil_audit_failures_total", lambda x: x == 0)
        p.wait("vigil_events_too_late_total", lambda x: x >= 0)
        # No label of any series names a victim.
        for series in p.api("series", **{"match[]": '{__name__=~"vigil_.*"}'}):
            for label, value in series.items():
                self.assertNotIn("V-", value, series)

        # The rules load and evaluate; the dead letter fires its alert, by reason.
        groups = p.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        self.assertEqual(sorted(r["name"] for r in rules),
                         ["VigildAuditFailures", "VigildConsumerLagGrowing", "VigildDeadLetters", "VigildDown",
                          "VigildNotReady"])
        for r in rules:
            self.assertEqual(r["health"], "ok", r)
        deadline = time.time() + 60
        firing = []
        while time.time() < deadline and not firing:
            firing = [a for a in p.api("alerts")["alerts"]
                      if a["labels"]["alertname"] == "VigildDeadLetters" and a["state"] == "firing"]
            time.sleep(1)
        self.assertTrue(firing, p.api("alerts"))
        self.assertEqual(firing[0]["labels"]["reason"], "INVALID_ARGUMENT")
        self.assertEqual(firing[0]["labels"]["severity"], "warning")

    def test_any_of_three_instances_answers_for_any_victim_and_one_killed_changes_nothing(self):
        certs = os.path.join(self.dir, "certs")
        subprocess.run([os.path.join(st.ROOT, "deploy", "tls", "make-dev-certs.sh"), certs, "vigild-peer",
                        "supervisor-console", "command-and-control"], check=True, capture_output=True)
        group = [TlsVigild(self.name, os.path.join(self.dir, f"data-{i}"), certs, f"{self.name}-{i}")
                 for i in range(3)]
        self.closing.extend(group)
        for v in group:
            v.start()
        lines = ft.synth(os.path.join(self.dir, "events.jsonl"), 3000, 60, 9)
        ft.publish(group[0], lines)
        victims = sorted({json.loads(l)["victim_id"] for l in lines})
        # Each victim's last event: once every instance shows it, all are applied.
        last = {}
        for l in lines:
            e = json.loads(l)
            last[e["victim_id"]] = e["event_id"]

        def profiles(instances, timeout=120):
            """Every victim's risk profile read through every instance (retried while UNAVAILABLE: a rebalance)."""
            seen = {}
            for v in instances:
                for victim in victims:
                    deadline = time.time() + timeout
                    while True:
                        r = v.call("profile", victim, "--purpose", "ops test")
                        if r.returncode == 0:
                            break
                        self.assertIn("UNAVAILABLE", r.stderr, r.stderr)  # never stale, never NOT_FOUND
                        self.assertLess(time.time(), deadline, f"{victim} through {v.instance}: {r.stderr}")
                        time.sleep(0.5)
                    seen.setdefault(victim, set()).add(r.stdout)
            return seen

        def settled(instances):
            """Waits until every instance's reads of every victim include its last event."""
            deadline = time.time() + 180
            while time.time() < deadline:
                stale = [v.instance for v in instances for victim in victims[:5]
                         if last[victim] not in v.call("timeline", victim, "--purpose", "ops test").stdout]
                if not stale:
                    return
                time.sleep(1)
            self.fail(f"not every event applied and readable after 180s: {stale}")

        settled(group)

        def listed(instances):
            """Every alert, listed (all pages) through each instance: the same list from each."""
            out = []
            for v in instances:
                r = v.call("alerts", "--all", "--page-size", "7", "--purpose", "ops test")
                self.assertEqual(r.returncode, 0, r.stderr)
                out.append(r.stdout.splitlines())
            for other in out[1:]:
                self.assertEqual(other, out[0])
            return out[0]

        alerts = listed(group)
        ids = sorted(set(re.findall(r"al-[0-9a-f]{16}", "\n".join(alerts))))
        self.assertGreater(len(ids), 3, alerts)
        # Each alert through each instance: the same; acknowledged through an instance that may not hold it.
        for alert_id in ids[:4]:
            answers = {v.call("alert", alert_id, "--purpose", "ops test").stdout for v in group}
            self.assertEqual(len(answers), 1, answers)
            self.assertIn(alert_id, answers.pop())
        firing = [l for l in alerts if " FIRING " in l or " ESCALATED " in l]
        self.assertTrue(firing, alerts)
        acked = re.search(r"al-[0-9a-f]{16}", firing[0]).group(0)
        for v in group:
            r = v.call("ack", acked, "--note", f"seen through {v.instance}")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("ACKNOWLEDGED", r.stdout)
        # The note went with the call to the instance that holds the alert, onto the victim's timeline (once:
        # the first acknowledgement's).
        acked_victim = re.search(r"victim (\S+?),? ", firing[0]).group(1)
        timeline = group[0].call("timeline", acked_victim, "--purpose", "ops test", "--json").stdout
        notes = [e["escalation_acknowledged"]["note"] for e in map(json.loads, filter(str.strip, timeline.splitlines()))
                 if e.get("escalation_acknowledged", {}).get("note")]
        self.assertEqual(notes, [f"seen through {group[0].instance}"])
        # A write that waits to be applied, through each instance, for a victim in each partition (placed as
        # librdkafka places a key: CRC-32): most are owned elsewhere, confirmed by their owner (PeerService).
        one_per_partition = {}
        for victim in victims:
            one_per_partition.setdefault(zlib.crc32(victim.encode()) % 4, victim)
        self.assertEqual(len(one_per_partition), 4)
        for i, v in enumerate(group):
            events = [{"event_id": f"ops-w{i}-{p}", "victim_id": victim, "incident_id": f"{victim}-I0",
                       "force": "lancashire", "source": "ops-test", "occurred_at": "2024-01-01T00:00:00Z",
                       "call_received": {"caller_role": "VICTIM", "channel": "EMERGENCY"}}
                      for p, victim in one_per_partition.items()]
            r = v.call("record", "--events", "-", "--wait", client="command-and-control",
                       stdin="".join(json.dumps(e) + "\n" for e in events))
            self.assertEqual(r.returncode, 0, r.stderr)
        # (An acknowledgement is an event at the present: it moves its partition's stream time on, and what fell
        # due meanwhile fires. The picture to keep is the one after it.)
        seen = profiles(group)
        for victim, answers in seen.items():
            self.assertEqual(len(answers), 1, f"{victim}: the instances disagree")
        alerts = listed(group)
        # Forwarded reads are audited by the owner in the caller's name, naming the instance that passed them on.
        audits = [json.loads(l) for l in st.ctl("tail", "--topic", f"{self.name}.audit", "--audit", "--from-beginning",
                                               "--idle-ms", "3000").stdout.splitlines() if l.strip()]
        self.assertTrue(audits)
        self.assertEqual({a["identity"] for a in audits}, {"supervisor-console"})
        forwarded = [a for a in audits if a.get("forwarded_by")]
        self.assertTrue(forwarded, "no read was forwarded")
        self.assertEqual({a["forwarded_by"] for a in forwarded}, {"vigild-peer"})
        self.assertLess(len(forwarded), len(audits))  # and some were not: each instance owns a share
        # One instance killed: once the group has rebalanced, the other two answer for every victim, the same.
        group[1].stop(st.signal.SIGKILL)
        after = profiles([group[0], group[2]], timeout=180)
        for victim in victims:
            self.assertEqual(after[victim], seen[victim], victim)
        self.assertEqual(listed([group[0], group[2]]), alerts)

    def test_a_source_gone_quiet_is_reported_and_its_return_too(self):
        v = ft.ApiVigild(self.name, os.path.join(self.dir, "data"), tick_ms=250,
                         extra=["--alerts-format", "json", "--source-quiet-after", "10s",
                                "--source-alerts-topic", f"{self.name}.source-alerts"])
        self.closing.append(v)
        v.start()

        def publish(event_id, source):
            st.ctl("publish", "--topic", v.topics["events"], "--events", "-", "--shift-to-now",
                   stdin=json.dumps({"event_id": event_id, "victim_id": "V-ops-1", "incident_id": "I-ops-1",
                                     "force": "lancashire", "source": source, "occurred_at": "2026-01-01T00:00:00Z",
                                     "call_received": {"caller_role": "VICTIM", "channel": "EMERGENCY"}}) + "\n")

        def source_alerts(want, timeout=60):
            deadline = time.time() + timeout
            got = []
            while time.time() < deadline:
                out = subprocess.run(["kcat", "-C", "-b", st.BROKERS, "-t", f"{self.name}.source-alerts", "-o",
                                      "beginning", "-e", "-q", "-X", "isolation.level=read_committed", "-f", "%s\n"],
                                     capture_output=True, text=True, timeout=60)
                got = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
                if len(got) >= want:
                    return got
                time.sleep(1)
            self.fail(f"{want} source alerts expected in {timeout}s, got {got}")

        publish("ops-c1", "command-and-control")
        fired = source_alerts(1)
        self.assertEqual([(a["source"], a["state"]) for a in fired], [("command-and-control", "FIRING")])
        # Quiet from its last event's broker time, by the ticks: exactly 10s later.
        at, last = (st.calendar.timegm(time.strptime(fired[0][k][:19], "%Y-%m-%dT%H:%M:%S"))
                    for k in ("at", "last_event_at"))
        self.assertEqual(at - last, 10)  # (the same fraction of a second on both)
        self.assertIn("has sent no events", fired[0]["reason"])
        publish("ops-c2", "command-and-control")
        back = source_alerts(2)
        self.assertEqual((back[1]["source"], back[1]["state"]), ("command-and-control", "RESOLVED"))

    def test_alerts_in_json_are_read_without_vigils_code(self):
        v = ft.ApiVigild(self.name, os.path.join(self.dir, "data"), extra=["--alerts-format", "json"])
        self.closing.append(v)
        v.start()
        lines = ft.synth(os.path.join(self.dir, "events.jsonl"), 6000, 600, 21)
        ft.publish(v, lines)
        expected = st.wait_for_alerts(v, 1, timeout=90)  # vigilctl tail reads JSON as it reads protobuf
        self.assertTrue(expected, "no alert was published")
        expected = [json.loads(l) for l in v.alerts(idle_ms=3000)]
        # kcat (Debian's), committed records only: every value is one JSON object, the same alerts.
        kcat = subprocess.run(["kcat", "-C", "-b", st.BROKERS, "-t", v.topics["alerts"], "-o", "beginning", "-e",
                               "-q", "-X", "isolation.level=read_committed", "-f", "%s\n"],
                              capture_output=True, text=True, timeout=120, check=True)
        read = [json.loads(l) for l in kcat.stdout.splitlines() if l.strip()]
        key = lambda a: (a["alert_id"], a["revision"])
        self.assertEqual(sorted(map(key, read)), sorted(map(key, expected)))
        for a in read:
            self.assertTrue({"alert_id", "victim_id", "rule", "level", "state", "at", "reason",
                             "evidence_event_ids"} <= set(a), a)
        # The plain Python consumer docs/operations.md shows: one line per transition.
        out = subprocess.run([kafka_python(), READ_ALERTS, "--brokers", st.BROKERS, "--topic", v.topics["alerts"],
                              "--from-beginning", "--idle-seconds", "5"],
                             capture_output=True, text=True, timeout=180, check=True).stdout.splitlines()
        self.assertEqual(len(out), len(read))
        self.assertEqual(sorted(l.rsplit("[alert ", 1)[1].rstrip("]") for l in out),
                         sorted(a["alert_id"] for a in read))


if __name__ == "__main__":
    st.main()  # the broker for the run, then the tests of this module
