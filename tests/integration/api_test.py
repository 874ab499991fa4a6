"""RiskService end to end, from Python (grpcio, code generated from proto/), on
a real Apache Kafka broker and vigild with mutual TLS: record events, watch the
alerts they raise, acknowledge one and see its escalation stop while the other
climbs; resume a watch from a cursor with nothing missed or repeated; health,
reflection, authorisation, audit and error details.

    run_api_test.sh BUILD_BIN_DIR [unittest args]   (sets up grpcio and the generated code)
"""
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from vigil.v1 import alert_pb2, event_pb2, risk_service_pb2 as rs, risk_service_pb2_grpc as rs_grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from streaming_test import free_port, report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = BROKERS = TLS = API = None
VIGILD = None
WATCH_CAP = 40  # vigild's --watch-max-streams here


def ts(seconds):
    t = Timestamp()
    t.FromMicroseconds(int(seconds * 1_000_000))
    return t


def _varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def call(victim, event_id, at, suspect="S-PY"):
    return event_pb2.Event(event_id=event_id, victim_id=victim, occurred_at=ts(at), incident_id=f"INC-{victim}",
                           force="lancashire", source="python-test",
                           call_received=event_pb2.CallReceived(caller_role=event_pb2.CallReceived.VICTIM,
                                                                channel=event_pb2.CallReceived.EMERGENCY,
                                                                domestic_abuse=True, suspect_id=suspect))


def channel(who):
    def read(name):
        with open(os.path.join(TLS, name), "rb") as f:
            return f.read()
    creds = grpc.ssl_channel_credentials(read("ca.pem"), read(f"{who}.key") if who else None,
                                         read(f"{who}.pem") if who else None)
    return grpc.secure_channel(f"localhost:{API}", creds)


def stub(who="supervisor-console"):
    return rs_grpc.RiskServiceStub(channel(who))


def record(events):
    """Records events as command and control does, waiting until vigild has applied them."""
    return stub("command-and-control").RecordEvents(iter([rs.RecordEventRequest(event=e, wait_applied=True) for e in events]), timeout=30)


class Watch:
    """A WatchAlerts call read on a thread into a queue."""

    def __init__(self, client, cursor):
        self.responses = queue.Queue()
        self.call = client.WatchAlerts(rs.WatchAlertsRequest(cursor=cursor, purpose="test: watching"))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for r in self.call:
                self.responses.put(r)
        except grpc.RpcError as e:
            self.error = e

    error = None

    def next(self, timeout):
        try:
            return self.responses.get(timeout=timeout)
        except queue.Empty:
            return None

    def until(self, predicate, timeout=60):
        """Responses up to and including the first that satisfies predicate."""
        got, deadline = [], time.time() + timeout
        while time.time() < deadline:
            r = self.next(0.5)
            if r is None:
                continue
            got.append(r)
            if predicate(r):
                return got
        raise AssertionError(f"no matching alert within {timeout}s; saw {[describe(r.alert) for r in got]}; "
                             f"the watch ended with {self.error}")

    def drain(self, idle=4.0):
        got = []
        while (r := self.next(idle)) is not None:
            got.append(r)
        return got

    def cancel(self):
        self.call.cancel()
        self.thread.join(timeout=10)


def describe(a):
    return (a.victim_id, a.rule, alert_pb2.AlertState.Name(a.state), alert_pb2.Level.Name(a.level))


def details(error):
    """The google.rpc.Status in an RpcError's trailers."""
    for k, v in error.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            s = status_pb2.Status()
            s.ParseFromString(v)
            return s
    return None


class ApiTest(unittest.TestCase):
    def setUp(self):
        self.tag = f"{random.randrange(10**6)}"

    def test_health_and_reflection(self):
        health = health_pb2_grpc.HealthStub(channel("supervisor-console"))
        r = health.Check(health_pb2.HealthCheckRequest(service="vigil.v1.RiskService"), timeout=10)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel("supervisor-console"))
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                    timeout=10)
        names = [s.name for r in responses for s in r.list_services_response.service]
        self.assertIn("vigil.v1.RiskService", names)
        # Every service listed can be described by reflection (grpcurl needs it to call Health/Check).
        for name in names:
            described = list(reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)]), timeout=10))
            self.assertTrue(described[0].HasField("file_descriptor_response"), f"{name}: {described[0]}")

    def test_record_watch_acknowledge_and_the_escalation_stops(self):
        client = stub()
        a, b = f"V-ACK-{self.tag}", f"V-ESC-{self.tag}"
        watch = Watch(client, "beginning")
        now = time.time()
        result = record([call(a, f"{a}-1", now - 120), call(a, f"{a}-2", now - 60),
                                 call(b, f"{b}-1", now - 120), call(b, f"{b}-2", now - 60)])
        self.assertEqual([r.event_id for r in result.results], [f"{a}-1", f"{a}-2", f"{b}-1", f"{b}-2"])
        self.assertTrue(all(r.applied for r in result.results))
        # The two victims' alerts may come in either order (their partitions are read side by side).
        fired_for = set()

        def both_fired(r):
            if r.alert.rule == "repeat-calls":
                fired_for.add(r.alert.victim_id)
            return {a, b} <= fired_for
        seen = watch.until(both_fired)
        fired = {r.alert.victim_id: r.alert for r in seen if r.alert.rule == "repeat-calls"}
        self.assertEqual(alert_pb2.AlertState.Name(fired[a].state), "FIRING")
        self.assertEqual(list(fired[a].evidence_event_ids), [f"{a}-1", f"{a}-2"])

        acked = client.AcknowledgeAlert(rs.AcknowledgeAlertRequest(name=f"alerts/{fired[a].alert_id}"), timeout=30)
        self.assertEqual(alert_pb2.AlertState.Name(acked.state), "ACKNOWLEDGED")
        self.assertEqual(acked.acknowledged_by, "supervisor-console")

        # Half an hour on: b's alert climbs twice (10-minute windows); a's, acknowledged, stays put.
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1800))
        subprocess.run([os.path.join(BIN, "vigilctl"), "tick", "--brokers", BROKERS, "--at", later], check=True,
                       capture_output=True)
        seen += watch.until(lambda r: r.alert.victim_id == b and r.alert.rule == "repeat-calls"
                            and alert_pb2.Level.Name(r.alert.level) == "SUPERINTENDENT")
        seen += watch.drain(idle=3)
        watch.cancel()
        by_victim = lambda v: [describe(r.alert)[1:] for r in seen if r.alert.victim_id == v and r.alert.rule == "repeat-calls"]
        self.assertEqual(by_victim(a), [("repeat-calls", "FIRING", "SUPERVISOR"),
                                        ("repeat-calls", "ACKNOWLEDGED", "SUPERVISOR")])
        self.assertEqual(by_victim(b), [("repeat-calls", "FIRING", "SUPERVISOR"),
                                        ("repeat-calls", "ESCALATED", "INSPECTOR"),
                                        ("repeat-calls", "ESCALATED", "SUPERINTENDENT")])
        got = client.GetAlert(rs.GetAlertRequest(name=f"alerts/{fired[a].alert_id}", purpose="test"), timeout=10)
        self.assertEqual(alert_pb2.AlertState.Name(got.state), "ACKNOWLEDGED")

    def test_watch_resumes_from_a_cursor_missing_nothing_and_repeating_nothing(self):
        client = stub()
        v = f"V-CUR-{self.tag}"
        now = time.time()
        record([call(v, f"{v}-{i}", now - 600 + i * 60) for i in range(6)])
        full_watch = Watch(client, "beginning")  # everything on the topic, until it is quiet
        full = [r.alert for r in full_watch.until(lambda r: r.alert.victim_id == v) + full_watch.drain()]
        full_watch.cancel()
        self.assertGreater(len(full), 3)
        first = Watch(client, "beginning")
        part = [first.next(10) for _ in range(len(full) // 2)]
        first.cancel()
        cursor = part[-1].cursor
        rest = Watch(client, cursor)
        tail = rest.drain()
        rest.cancel()
        keys = lambda alerts: [(a.alert_id, a.revision) for a in alerts]
        resumed = keys([r.alert for r in part]) + keys([r.alert for r in tail])
        self.assertEqual(len(resumed), len(set(resumed)), "a transition was delivered twice")
        self.assertEqual(sorted(resumed), sorted(keys(full)))

    def test_every_read_of_a_victims_data_is_audited(self):
        client = stub()
        v = f"V-AUD-{self.tag}"
        now = time.time()
        watch = Watch(client, "beginning")
        record([call(v, f"{v}-1", now - 60), call(v, f"{v}-2", now - 30)])
        timeline = client.GetTimeline(rs.GetTimelineRequest(parent=f"victims/{v}", purpose="MARAC preparation"),
                                      timeout=10)
        self.assertEqual([e.event_id for e in timeline.events], [f"{v}-1", f"{v}-2"])
        profile = client.GetRiskProfile(rs.GetRiskProfileRequest(name=f"victims/{v}/riskProfile",
                                                                 purpose="MARAC preparation"), timeout=10)
        self.assertEqual(profile.calls_total, 2)
        watched = watch.until(lambda r: r.alert.victim_id == v and r.alert.rule == "repeat-calls")[-1].alert
        watch.cancel()
        listed = client.ListAlerts(rs.ListAlertsRequest(victim_id=v, rule="repeat-calls", purpose="MARAC preparation"),
                                   timeout=10).alerts
        self.assertEqual([a.alert_id for a in listed], [watched.alert_id])
        got = client.GetAlert(rs.GetAlertRequest(name=f"alerts/{watched.alert_id}", purpose="MARAC preparation"),
                              timeout=10)
        self.assertEqual(got.alert_id, watched.alert_id)
        with self.assertRaises(grpc.RpcError) as e:  # no purpose: refused, and nothing read
            client.ListAlerts(rs.ListAlertsRequest(victim_id=v), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        out = subprocess.run([os.path.join(BIN, "vigilctl"), "tail", "--brokers", BROKERS, "--topic", "vigil.audit",
                              "--audit", "--from-beginning", "--idle-ms", "3000"], capture_output=True, text=True,
                             check=True).stdout
        audits = [json.loads(l) for l in out.splitlines() if json.loads(l).get("victim_id") == v]
        alert = f"alerts/{watched.alert_id}"
        # The watch read every transition of v's it delivered (the alert raised, perhaps others of v's).
        watched_reads = [x for x in audits if x["method"] == "WatchAlerts"]
        self.assertIn(alert, [x["resource"] for x in watched_reads])
        self.assertTrue(all(x["purpose"] == "test: watching" for x in watched_reads))
        self.assertEqual([(x["method"], x["identity"], x["resource"], x["purpose"]) for x in audits
                          if x["method"] != "WatchAlerts"],
                         [("GetTimeline", "supervisor-console", f"victims/{v}", "MARAC preparation"),
                          ("GetRiskProfile", "supervisor-console", f"victims/{v}/riskProfile", "MARAC preparation"),
                          ("ListAlerts", "supervisor-console", alert, "MARAC preparation"),
                          ("GetAlert", "supervisor-console", alert, "MARAC preparation")])

    def test_errors_say_what_is_wrong_and_roles_are_enforced(self):
        with self.assertRaises(grpc.RpcError) as e:
            stub("command-and-control").GetTimeline(rs.GetTimelineRequest(parent="victims/V1", purpose="x"),
                                                    timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)

        bad = event_pb2.Event(event_id="bad-1", victim_id="V1", incident_id="I1", occurred_at=ts(time.time()),
                              incident_graded=event_pb2.IncidentGraded())
        with self.assertRaises(grpc.RpcError) as e:
            stub("command-and-control").RecordEvent(rs.RecordEventRequest(event=bad), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        status = details(e.exception)
        self.assertIsNotNone(status)
        request = error_details_pb2.BadRequest()
        self.assertTrue(status.details[0].Unpack(request))
        self.assertEqual([v.field for v in request.field_violations], ["event.incident_graded.grade"])

        with self.assertRaises(grpc.RpcError) as e:
            stub().GetAlert(rs.GetAlertRequest(name="alerts/al-missing", purpose="test"), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)

        with self.assertRaises(grpc.RpcError) as e:
            stub(None).ListAlerts(rs.ListAlertsRequest(), timeout=10)  # no client certificate
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    # --- hardening (issue 10): each of these failed on the code before it -------------------------------
    def test_a_recorder_cannot_acknowledge_or_silence_an_alert(self):
        v = f"V-SIL-{self.tag}"
        now = time.time()
        record([call(v, f"{v}-1", now - 60), call(v, f"{v}-2", now - 30)])
        alert_id = None
        deadline = time.time() + 30
        while alert_id is None and time.time() < deadline:
            listed = stub().ListAlerts(rs.ListAlertsRequest(victim_id=v, rule="repeat-calls", purpose="test"), timeout=10).alerts
            alert_id = listed[0].alert_id if listed else None
            time.sleep(0.2)
        self.assertIsNotNone(alert_id)
        # The recorder forges an acknowledgement in a superintendent's name, as vigil-api.
        forged = event_pb2.Event(event_id=f"forged-{self.tag}", victim_id=v, occurred_at=ts(now), source="vigil-api",
                                 escalation_acknowledged=event_pb2.EscalationAcknowledged(
                                     alert_id=alert_id, acknowledged_by="Supt-Forged"))
        with self.assertRaises(grpc.RpcError) as e:
            stub("command-and-control").RecordEvent(rs.RecordEventRequest(event=forged), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        with self.assertRaises(grpc.RpcError) as e:
            stub("command-and-control").AcknowledgeAlert(rs.AcknowledgeAlertRequest(name=f"alerts/{alert_id}"),
                                                         timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        got = stub().GetAlert(rs.GetAlertRequest(name=f"alerts/{alert_id}", purpose="test"), timeout=10)
        self.assertEqual(alert_pb2.AlertState.Name(got.state), "FIRING")
        # A supervisor's acknowledgement names the supervisor, whatever the request might have said.
        acked = stub().AcknowledgeAlert(rs.AcknowledgeAlertRequest(name=f"alerts/{alert_id}"), timeout=30)
        self.assertEqual(acked.acknowledged_by, "supervisor-console")

    def test_oversized_and_unknown_input_is_refused_or_dropped_and_others_go_on(self):
        v = f"V-BIG-{self.tag}"
        big = call(v, f"{v}-big", time.time())
        big.source = "x" * 100  # valid, then padded past 64 KiB with an unknown field below
        padded = event_pb2.Event.FromString(big.SerializeToString() + b"\xfa\x06" + _varint(70_000) + b"u" * 70_000)
        with self.assertRaises(grpc.RpcError) as e:  # over the 64 KiB event limit: refused, not UNAVAILABLE
            stub("command-and-control").RecordEvent(rs.RecordEventRequest(event=padded), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        huge = event_pb2.Event.FromString(big.SerializeToString() + b"\xfa\x06" + _varint(2_000_000) + b"u" * 2_000_000)
        for _ in range(20):  # a flood of 2 MB requests
            with self.assertRaises(grpc.RpcError) as e:
                stub("command-and-control").RecordEvent(rs.RecordEventRequest(event=huge), timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # A small unknown field is dropped before the event is stored: the timeline reads back the contract.
        small = event_pb2.Event.FromString(big.SerializeToString() + b"\xfa\x06\x03abc")
        record([small])
        timeline = stub().GetTimeline(rs.GetTimelineRequest(parent=f"victims/{v}", purpose="test: unknown fields"),
                                      timeout=10)
        self.assertEqual(len(timeline.events), 1)
        self.assertEqual(timeline.events[0].SerializeToString(), big.SerializeToString())
        # And the service still raises alerts for others at once.
        other = f"V-AFTER-{self.tag}"
        record([call(other, f"{other}-1", time.time() - 5), call(other, f"{other}-2", time.time())])
        listed = stub().ListAlerts(rs.ListAlertsRequest(victim_id=other, rule="repeat-calls", purpose="test"), timeout=10).alerts
        self.assertEqual(len(listed), 1)

    def test_every_accepted_id_can_be_read_back(self):
        for v in [f"01/2345/24-{self.tag}", f"V with spaces {self.tag}", f"Vïctim-Ünïcode-名前-{self.tag}"]:
            record([call(v, f"{self.tag}-{hash(v)}-1", time.time() - 5)])
            timeline = stub().GetTimeline(rs.GetTimelineRequest(parent=f"victims/{v}", purpose="test: ids"),
                                          timeout=10)
            self.assertEqual([e.victim_id for e in timeline.events], [v])
            profile = stub().GetRiskProfile(rs.GetRiskProfileRequest(name=f"victims/{v}/riskProfile",
                                                                     purpose="test: ids"), timeout=10)
            self.assertEqual(profile.victim_id, v)

    def test_watchers_share_one_consumer_and_their_number_is_capped(self):
        def fds():
            return len(os.listdir(f"/proc/{VIGILD.pid}/fd"))
        client = stub()
        first = Watch(client, "")
        first.next(2)  # subscribed (the shared consumer has started)
        before = fds()
        watches = [first] + [Watch(client, "") for _ in range(WATCH_CAP - 1)]
        v = f"V-MANY-{self.tag}"
        time.sleep(3)  # every watch subscribed before the calls
        now = time.time()
        record([call(v, f"{v}-1", now - 60), call(v, f"{v}-2", now - 30)])
        # Every watcher sees the alert, once.
        for w in watches:
            seen = w.until(lambda r: r.alert.victim_id == v, timeout=60)
            self.assertEqual([r.alert.victim_id for r in seen].count(v), 1)
        # A consumer each would have opened sockets to the broker for each: one shared consumer opens none.
        self.assertLess(fds() - before, WATCH_CAP // 2, "a watch opened files of its own")
        # One more than the cap is refused with the reason, and the others go on.
        extra = Watch(client, "")
        extra.thread.join(timeout=30)
        self.assertIsNotNone(extra.error)
        self.assertEqual(extra.error.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("at most", extra.error.details())
        for w in watches:
            w.cancel()
        # Once they have gone, a new one is served.
        deadline = time.time() + 30
        while True:
            again = Watch(client, "")
            if again.next(1.5) is None and again.error is None:
                again.cancel()
                break
            again.cancel()
            self.assertLess(time.time(), deadline, "the streams that ended still count against the cap")

    def test_vigilctl_watch_ends_at_its_timeout(self):
        r = subprocess.run([os.path.join(BIN, "vigilctl"), "watch", "--server", f"localhost:{API}",
                            "--tls-ca", os.path.join(TLS, "ca.pem"),
                            "--tls-cert", os.path.join(TLS, "supervisor-console.pem"),
                            "--tls-key", os.path.join(TLS, "supervisor-console.key"), "--timeout", "2",
                            "--purpose", "test: a watch with a timeout"],
                           capture_output=True, text=True, timeout=60)
        # It ended by itself with exit 0 (it used to run until killed: subprocess.run's timeout would raise).
        self.assertEqual(r.returncode, 0, r.stderr)


def main():
    global BIN, BROKERS, TLS, API, VIGILD
    BIN = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="vigil-api-it-")
    port, API = free_port(), free_port()
    BROKERS = f"127.0.0.1:{port}"
    TLS = os.path.join(work, "tls")
    kafka = os.path.join(ROOT, "deploy", "kafka", "kafka.sh")
    subprocess.run([os.path.join(ROOT, "deploy", "tls", "make-dev-certs.sh"), TLS, "supervisor-console",
                    "command-and-control"], check=True, capture_output=True)
    subprocess.run([kafka, "start", str(port), os.path.join(work, "kafka")], check=True)
    log_path = os.path.join(work, "vigild.log")
    # vigild's signing key, which vigilctl tick needs too (a tick is vigild's to write).
    key_file = os.path.join(work, "signing.key")
    with open(key_file, "wb") as f:
        f.write(os.urandom(32))
    os.environ["VIGIL_SIGNING_KEY_FILE"] = key_file
    result = None
    try:
        with open(log_path, "w") as log:
            VIGILD = subprocess.Popen(
                [os.path.join(BIN, "vigild"), "--brokers", BROKERS, "--data-dir", os.path.join(work, "data"),
                 "--grpc-listen", f"127.0.0.1:{API}", "--access", os.path.join(ROOT, "deploy/config/access.yaml"),
                 "--tls-cert", os.path.join(TLS, "server.pem"), "--tls-key", os.path.join(TLS, "server.key"),
                 "--tls-client-ca", os.path.join(TLS, "ca.pem"), "--log-level", "debug",
                 # The escalation test ticks half an hour ahead: within this tolerance, not refused as the future.
                 "--future-tolerance", "1h", "--watch-max-streams", str(WATCH_CAP)], stdout=log, stderr=log)
        deadline = time.time() + 60
        while "event=assigned" not in open(log_path).read():
            if VIGILD.poll() is not None or time.time() > deadline:
                raise AssertionError("vigild did not start:\n" + open(log_path).read()[-3000:])
            time.sleep(0.2)
        prog = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2)
        result = prog.result
    finally:
        if VIGILD and VIGILD.poll() is None:
            VIGILD.send_signal(signal.SIGTERM)
            VIGILD.wait(timeout=30)
        subprocess.run([kafka, "stop", os.path.join(work, "kafka")])
        if result is None or result.failures or result.errors:
            print("\n".join(l for l in open(log_path).read().splitlines()
                            if "event=batch" not in l and "event=committed" not in l)[-6000:], file=sys.stderr)
        if os.environ.get("VIGIL_API_TEST_LOG"):
            shutil.copy(log_path, os.environ["VIGIL_API_TEST_LOG"])
        shutil.rmtree(work, ignore_errors=True)
    report(result)


if __name__ == "__main__":
    main()
