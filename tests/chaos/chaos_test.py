"""Chaos: a known stream published while vigild is killed with SIGKILL at random
moments and restarted, several times, and the broker is restarted once, on a
real Apache Kafka broker. Then: every alert transition an offline replay of the
log produces was published exactly once (read_committed: none missing, none
twice), and the state vigild stored in RocksDB equals an offline replay's,
partition by partition. Prints what it did and fails on any difference.

    chaos_test.py BUILD_BIN_DIR [--events N] [--kills K] [--seed S]

The stream: `vigilctl synth` (many victims, incidents with deadlines that fire,
redeliveries of the same event), plus acknowledgements of a tenth of the alerts
an offline replay of it fires, each ten minutes after its alert.
make test runs a bounded form (20,000 events, 3 kills); make chaos the full one
(200,000 events, 8 kills).
"""
import argparse
import calendar
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import streaming_test as st  # noqa: E402  (the broker, Vigild and the comparisons)

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def with_acknowledgements(lines, rng, share=0.1):
    """The stream plus acknowledgements of `share` of the alerts an offline replay fires, in time order."""
    replay = st.run(os.path.join(st.BIN, "vigilctl"), "replay", "--keep-going", "--events", "-",
                    stdin="\n".join(lines) + "\n")
    acks = []
    for line in replay.stdout.splitlines():
        alert = json.loads(line)
        if alert["state"] != "FIRING" or alert.get("revision", 1) > 1 or rng.random() >= share:
            continue
        at = calendar.timegm(time.strptime(alert["at"][:19], "%Y-%m-%dT%H:%M:%S")) + 600
        acks.append(json.dumps({"event_id": f"ack-{alert['alert_id']}", "victim_id": alert["victim_id"],
                                "occurred_at": time.strftime(FORMAT, time.gmtime(at)),
                                "incident_id": alert.get("incident_id", ""), "source": "chaos",
                                "escalation_acknowledged": {"alert_id": alert["alert_id"],
                                                            "acknowledged_by": "sgt-chaos"}}))
    merged = sorted(lines + acks, key=lambda l: json.loads(l)["occurred_at"])  # stable: redeliveries stay after
    return merged, len(acks)


class Chaos:
    def __init__(self, args, workdir):
        self.args = args
        self.rng = random.Random(args.seed)
        self.v = st.Vigild(f"chaos{self.rng.randrange(10**8)}", os.path.join(workdir, "data"), log_level="info")
        self.kills = 0
        self.broker_restarts = 0
        self.started = time.time()

    def publish(self, lines, chunks):
        """Publishes in chunks with short pauses, so that kills land mid-stream."""
        for k in range(chunks):
            part = lines[k * len(lines) // chunks:(k + 1) * len(lines) // chunks]
            st.ctl("publish", "--topic", self.v.topics["events"], "--events", "-", stdin="\n".join(part) + "\n",
                   timeout=600)
            time.sleep(self.rng.uniform(0.05, 0.4))

    def run(self):
        v, args = self.v, self.args
        events = st.run(os.path.join(st.BIN, "vigilctl"), "synth", "--events", args.events, "--victims",
                        max(100, args.events // 20), "--seed", args.seed).stdout.splitlines()
        lines, acks = with_acknowledgements(events, self.rng)
        v.start()
        publisher = threading.Thread(target=self.publish, args=(lines, 4 * (args.kills + 1)))
        publisher.start()
        broker_at = self.rng.randrange(args.kills + 1)  # the broker restart falls between two kills
        for k in range(args.kills + 1):
            if k == broker_at:
                time.sleep(self.rng.uniform(0.5, 2.0))
                st.restart_broker()
                self.broker_restarts += 1
            if k == args.kills:
                break
            time.sleep(self.rng.uniform(0.3, 2.5))  # a random moment: mid-batch, mid-transaction, mid-rebalance
            v.stop(signal.SIGKILL)
            self.kills += 1
            v.start()
        publisher.join()
        last = max(json.loads(l)["occurred_at"] for l in lines)
        st.ctl("tick", "--topic", v.topics["events"], "--at", last)

        test = unittest.TestCase()
        alerts = v.assert_same_as_offline(test, timeout=600)
        print(f"chaos: {time.time() - self.started:.0f}s; {len(lines)} events ({acks} acknowledgements) over {max(100, args.events // 20)} victims, "
              f"{self.kills} SIGKILLs of vigild and restarts, {self.broker_restarts} broker restart; "
              f"{alerts} alert transitions published exactly once; state equal to offline replay in all "
              f"{v.partitions} partitions; differences: 0")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin")
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"chaos: seed {args.seed} (--seed {args.seed}: the same stream and pauses again)")
    workdir = tempfile.mkdtemp(prefix="vigil-chaos-")
    st.start_broker(args.bin)
    chaos = Chaos(args, workdir)
    try:
        chaos.run()
    except AssertionError as e:
        print(f"chaos: FAILED after {chaos.kills} kills, {chaos.broker_restarts} broker restarts: {e}")
        print(f"chaos: vigild's log: {chaos.v.log.name}")
        sys.exit(1)
    finally:
        chaos.v.close()
        st.stop_broker()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
