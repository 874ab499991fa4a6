"""vigild through faults, on a real Apache Kafka broker and a real filesystem:
the broker stopped and started again while vigild serves, and a full disk
under it. In each, vigild must say it is not ready on
the gRPC health service, keep serving the reads that need neither, refuse
writes at once (UNAVAILABLE) rather than hang, and once the fault is cleared
resume by itself, with every alert transition published exactly once and the
stored state equal to an offline replay's.

    faults_test.py BUILD_BIN_DIR [unittest args]

The disk fault mounts a small tmpfs (root, as CI runs); without the right to
mount they are skipped, and say so.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streaming_test as st  # noqa: E402  (the broker, Vigild and the comparisons)

ACCESS = os.path.join(st.ROOT, "deploy", "config", "access.yaml")


class ApiVigild(st.Vigild):
    """vigild with its API on a free port, plaintext, every caller the access file's local-dev."""

    def __init__(self, name, data_dir, extra=(), **kw):
        self.api = f"127.0.0.1:{st.free_port()}"
        super().__init__(name, data_dir, extra=["--grpc-listen", self.api, "--access", ACCESS,
                                                "--insecure-dev-identity", "local-dev",
                                                "--audit-topic", f"{name}.audit"] + list(extra), **kw)

    def call(self, *args, stdin=None, timeout=60):
        return st.run(os.path.join(st.BIN, "vigilctl"), *args[:1], "--server", self.api, "--insecure",
                      *args[1:], stdin=stdin, check=False, timeout=timeout)

    def health(self):
        return self.call("health").stdout.strip()

    def wait_health(self, want, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.health() == want:
                return time.time()
            time.sleep(0.5)
        raise AssertionError(f"vigild's health did not become {want} in {timeout}s; it says {self.health()!r}")


def synth(path, events, victims, seed):
    with open(path, "w") as f:
        f.write(st.run(os.path.join(st.BIN, "vigilctl"), "synth", "--events", events, "--victims", victims,
                       "--seed", seed).stdout)
    return st.read(path).splitlines()


def publish(v, lines):
    st.ctl("publish", "--topic", v.topics["events"], "--events", "-", stdin="\n".join(lines) + "\n")


class FaultsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-faults-")
        self.name = f"ft{st.random.randrange(10**8)}"
        self.services = []
        self.mounted = None

    def tearDown(self):
        for v in self.services:
            v.close()
        if self.mounted:
            subprocess.run(["umount", "-l", self.mounted])
        if subprocess.run([st.KAFKA, "status", st.BROKER_DIR]).returncode != 0:
            subprocess.run([st.KAFKA, "start", str(st.PORT), st.BROKER_DIR], check=True)  # for the next test
        st.shutil.rmtree(self.dir, ignore_errors=True)

    def vigild(self, data_dir, **kw):
        v = ApiVigild(self.name, data_dir, **kw)
        self.services.append(v)
        return v

    def test_broker_stopped_and_started_while_vigild_serves(self):
        v = self.vigild(os.path.join(self.dir, "data"))
        lines = synth(os.path.join(self.dir, "events.jsonl"), 6000, 600, 21)
        v.start()
        v.wait_health("SERVING", timeout=60)
        publish(v, lines[:3000])
        st.wait_for_alerts(v, 1, timeout=60)

        st.stop_broker(remove=False)
        down = time.time()
        noticed = v.wait_health("NOT_SERVING", timeout=60)
        # A write is refused at once, with the reason (the broker is unreachable), rather than left hanging
        # until its deadline (which would say DEADLINE_EXCEEDED).
        start = time.time()
        record = v.call("record", "--events", "-", stdin=lines[3000] + "\n", timeout=90)
        refused_in = time.time() - start
        self.assertNotEqual(record.returncode, 0)
        self.assertIn("UNAVAILABLE", record.stderr)
        self.assertIn("unreachable", record.stderr)
        # Every read of a victim's data (a profile, the alerts) must write its audit record first: refused,
        # and nothing returned.
        victim = json.loads(lines[0])["victim_id"]
        for read in (["profile", victim], ["alerts", "--json", "--page-size", "5"]):
            r = v.call(*read, "--purpose", "fault test")
            self.assertNotEqual(r.returncode, 0, read)
            self.assertIn("audit", r.stderr)
            self.assertEqual(r.stdout.strip(), "", read)
        self.assertIsNone(v.proc.poll(), "vigild must keep running while the broker is away")

        time.sleep(5)  # away for a while: vigild retries with backoff meanwhile
        st.restart_broker()
        back = time.time()
        ready = v.wait_health("SERVING", timeout=120)
        publish(v, lines[3000:])
        st.ctl("tick", "--topic", v.topics["events"], "--at", "2024-04-01T00:00:00Z")
        n = v.assert_same_as_offline(self)
        print(f"\n  broker away {back - down:.1f}s; NOT_SERVING after {noticed - down:.1f}s; write refused in "
              f"{refused_in:.1f}s; SERVING {ready - back:.1f}s after the broker was back; {n} alert transitions "
              f"exactly once", file=sys.stderr)

    def mount_small_disk(self, size_mb):
        disk = os.path.join(self.dir, "disk")
        os.makedirs(disk)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", disk],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs for the disk faults (not root?): {r.stderr.strip()}")
        self.mounted = disk
        return disk

    def test_full_disk(self):
        disk = self.mount_small_disk(256)
        v = self.vigild(os.path.join(disk, "data"))
        v.extra += ["--min-free-disk-mb", "100"]
        lines = synth(os.path.join(self.dir, "events.jsonl"), 20000, 2000, 33)
        v.start()
        v.wait_health("SERVING", timeout=60)
        publish(v, lines[:2000])
        st.wait_for_alerts(v, 1, timeout=60)

        # The disk fills (something else writes to it) until 40 MiB are left, below vigild's reserve.
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > (40 << 20):
                f.write(b"\0" * (1 << 20))
                f.flush()
        sent, start = 2000, time.time()
        while sent < len(lines) and "event=store_write_failed" not in st.read(v.log.name):
            publish(v, lines[sent:sent + 2000])
            sent += 2000
            time.sleep(1)
        noticed = v.wait_health("NOT_SERVING", timeout=60)
        self.assertIsNone(v.proc.poll(), "vigild must not exit on a full disk")
        self.assertIn("nearly full", st.read(v.log.name))
        # The store's reads go on while writes cannot.
        listed = v.call("alerts", "--page-size", "3", "--purpose", "fault test")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertTrue(listed.stdout.strip())
        publish(v, lines[sent:])  # more arrives meanwhile: it waits in Kafka
        time.sleep(3)
        os.remove(filler)
        cleared = time.time()
        resumed = v.wait_health("SERVING", timeout=90)
        st.ctl("tick", "--topic", v.topics["events"], "--at", "2024-04-01T00:00:00Z")
        n = v.assert_same_as_offline(self)
        self.assertIn("event=store_recovered", st.read(v.log.name))
        print(f"\n  full disk after {sent} events: NOT_SERVING after {noticed - start:.1f}s, SERVING "
              f"{resumed - cleared:.1f}s after space was freed; {n} alert transitions exactly once, state equal "
              f"to offline replay", file=sys.stderr)


if __name__ == "__main__":
    st.main()  # the broker for the run, then the tests of this module
