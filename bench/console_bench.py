"""How long the console's live board takes to load with 10,000 open alerts, on this machine (2 cores shared by
the broker, vigild, the console and Chromium), beside its baseline in the same run: the same open alerts read
alone through the console's endpoint (GET /api/alerts, no page).

    bench/console_bench.py BUILD_BIN_DIR [--alerts N] [--runs N]

Prints:
    console: N open alerts
    open alerts read alone (GET /api/alerts): M ms (median of R)
    board load to N alerts shown: M ms (median of R)
      of which the browser fetching /api/alerts: M ms (median)
    ratio board/read alone: X
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import streaming_test as st  # noqa: E402
import faults_test as ft  # noqa: E402
import console_test as ct  # noqa: E402

PURPOSE = "benchmark: board load"


def events(n):
    """Per victim, a domestic-abuse call naming a suspect, then that suspect's violence marker: one
    marker-on-call alert each, raised at once (SUPERVISOR)."""
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    at = lambda s: (now + datetime.timedelta(milliseconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    for i in range(n):
        victim, incident, suspect = f"V-B{i}", f"I-B{i}", f"P-B{i}"
        base = {"victim_id": victim, "incident_id": incident, "force": f"force-{i % 5}",
                "source": "command-and-control"}
        yield {**base, "event_id": f"b{i}-c", "occurred_at": at(i),
               "call_received": {"caller_role": "VICTIM", "channel": "EMERGENCY", "domestic_abuse": True,
                                 "suspect_id": suspect}}
        yield {**base, "event_id": f"b{i}-m", "occurred_at": at(i + 1), "source": "pnc",
               "marker_matched": {"suspect_id": suspect, "marker": "VIOLENCE"}}


def read_alerts(port):
    url = f"http://127.0.0.1:{port}/api/alerts?" + urllib.parse.urlencode({"purpose": PURPOSE})
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.load(r)["alerts"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("--alerts", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    st.start_broker(args.bin)
    work = tempfile.mkdtemp(prefix="vigil-console-bench-")
    port = st.free_port()
    v = ft.ApiVigild(f"cbench{int(time.time())}", os.path.join(work, "data"),
                     extra=["--console-listen", f"127.0.0.1:{port}"])
    browser = None
    try:
        v.start()
        lines = "".join(json.dumps(e) + "\n" for e in events(args.alerts))
        st.ctl("publish", "--topic", v.topics["events"], "--events", "-", stdin=lines, timeout=600)
        deadline = time.time() + 600
        while len(read_alerts(port)) < args.alerts:
            if time.time() > deadline:
                raise SystemExit("the alerts did not all arrive in 600 s")
            time.sleep(1)
        print(f"console: {args.alerts} open alerts", flush=True)
        alone = []
        for _ in range(args.runs):
            start = time.perf_counter()
            got = len(read_alerts(port))
            alone.append((time.perf_counter() - start) * 1000)
            print(f"  read alone: {alone[-1]:.0f} ms", flush=True)
            assert got == args.alerts, got
        browser = ct.Browser(f"http://127.0.0.1:{port}", ct.artifacts_dir())
        browser("open", path="/")
        browser("purpose", text=PURPOSE)  # kept for the tab: each load below reads at once
        board, fetches = [], []
        for _ in range(args.runs):
            browser("open", path="/")
            ms = browser("wait_js", timeout=300, js="return document.body.dataset.loadedMs")
            shown = browser("js", js="return document.querySelectorAll('article.alert').length")
            assert shown == args.alerts, shown
            board.append(float(ms))
            # The browser's own timing of the alerts' fetch (resource timing): what is left is the watch's
            # start, the page's files and drawing.
            fetches.append(browser("js", js="""const r = performance.getEntriesByType('resource')
                .filter(e => e.name.includes('/api/alerts')).pop(); return r.responseEnd - r.startTime;"""))
        browser("screenshot", name="board-10000.png")
        a, b = statistics.median(alone), statistics.median(board)
        print(f"open alerts read alone (GET /api/alerts): {a:.0f} ms (median of {args.runs})")
        print(f"board load to {args.alerts} alerts shown: {b:.0f} ms (median of {args.runs})")
        print(f"  of which the browser fetching /api/alerts: {statistics.median(fetches):.0f} ms (median)")
        print(f"ratio board/read alone: {b / a:.2f}")
    finally:
        if browser:
            browser.close()
        v.close()
        st.stop_broker()


if __name__ == "__main__":
    main()
