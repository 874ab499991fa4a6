"""The supervisors' console in a real browser: headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver) against vigild on a real Apache Kafka broker. The Lancashire case arrives on the live board
without a reload, an acknowledgement made on the page reaches the alert topic, and the victim's timeline renders
as a picture. Over HTTPS, each user is their client certificate, with that client's rights only, audited in
their name. Screenshots are saved under BUILD/test-artifacts/console/.

    console_test.py BUILD_BIN_DIR [unittest args]
"""
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streaming_test as st  # noqa: E402
import faults_test as ft  # noqa: E402
import ops_test as ot  # noqa: E402

SELENIUM = "selenium==4.27.1"
LANCASHIRE = os.path.join(st.SCENARIOS, "lancashire-ipcc.events.jsonl")
PURPOSE = "console test: duty inspector review"


def selenium_python():
    """A Python with Selenium (pinned, from PyPI)."""
    return st.pinned_python(SELENIUM, "selenium")


# This file runs twice: as the test (system Python, which starts the broker and vigild), and as the browser
# driver (the virtualenv's Python, with Selenium): `console_test.py --drive URL ARTIFACTS` reads commands as JSON
# lines on stdin and answers each with a JSON line.
def drive(url, artifacts):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    wait = lambda timeout=60: WebDriverWait(driver, timeout, poll_frequency=0.2)  # noqa: E731
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op, out = cmd["op"], None
            if op == "open":
                driver.get(url + cmd["path"])
            elif op == "purpose":
                box = driver.find_element(By.ID, "purpose")
                box.clear()
                box.send_keys(cmd["text"], Keys.ENTER)
            elif op == "wait_text":  # until the element's text contains it
                wait(cmd.get("timeout", 60)).until(
                    lambda d: cmd["text"] in d.find_element(By.CSS_SELECTOR, cmd["css"]).text)
            elif op == "wait_js":  # until the script returns something true; that value
                out = wait(cmd.get("timeout", 60)).until(lambda d: d.execute_script(cmd["js"]))
            elif op == "js":
                out = driver.execute_script(cmd["js"])
            elif op == "type":
                driver.find_element(By.CSS_SELECTOR, cmd["css"]).send_keys(cmd["text"])
            elif op == "click":
                driver.find_element(By.CSS_SELECTOR, cmd["css"]).click()
            elif op == "tab_to":  # presses Tab until the focused element matches; how many presses
                for n in range(1, cmd.get("limit", 200)):
                    driver.switch_to.active_element.send_keys(Keys.TAB)
                    if driver.execute_script("return document.activeElement.matches(arguments[0])", cmd["css"]):
                        out = n
                        break
            elif op == "screenshot":  # of the whole page
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1400, max(1100, min(height + 150, 4000)))
                driver.save_screenshot(os.path.join(artifacts, cmd["name"]))
                driver.set_window_size(1400, 1100)
            elif op == "axe":  # the page checked by axe-core (WCAG 2 A and AA): its violations, and its passes
                with open(cmd["script"]) as f:
                    driver.execute_script(f.read())
                out = driver.execute_async_script("""
                    const done = arguments[arguments.length - 1];
                    axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})
                      .then(r => done({passes: r.passes.map(p => p.id),
                                       violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                                                 nodes: v.nodes.slice(0, 3).map(n => n.target)}))}));""")
            elif op == "console_errors":
                out = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            print(json.dumps({"ok": True, "out": out}), flush=True)
    except Exception as e:  # the test side reports it, with a screenshot of the moment
        driver.save_screenshot(os.path.join(artifacts, "failure.png"))
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
    finally:
        driver.quit()


class Browser:
    """Headless Chromium on the console, driven by the helper process above."""

    def __init__(self, url, artifacts):
        self.proc = subprocess.Popen([selenium_python(), os.path.abspath(__file__), "--drive", url, artifacts],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, op, **args):
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the browser driver stopped (exit {self.proc.wait()})")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"browser: {op} {args}: {answer['error']}")
        return answer["out"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def axe_script():
    """axe-core, installed with the console's vendored libraries at build time (package-lock.json)."""
    return os.path.join(os.path.dirname(st.BIN), "console-vendor", "node_modules", "axe-core", "axe.min.js")


def artifacts_dir():
    path = os.path.join(os.path.dirname(st.BIN), "test-artifacts", "console")
    os.makedirs(path, exist_ok=True)
    return path


def audit_records(topic):
    out = st.ctl("tail", "--topic", topic, "--audit", "--from-beginning", "--json", "--idle-ms", "3000").stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


class ConsoleTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-console-")
        self.vigilds = []

    def tearDown(self):
        for v in self.vigilds:
            v.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def vigild(self, name, extra):
        v = ft.ApiVigild(name, os.path.join(self.dir, name), tick_ms=250, extra=extra)
        self.vigilds.append(v)
        v.start()
        return v

    def assertAccessible(self, axe):
        self.assertEqual(axe["violations"], [])
        self.assertIn("color-contrast", axe["passes"])  # it did check the contrast of the text shown
        self.assertIn("label", axe["passes"])

    def test_the_lancashire_case_arrives_live_and_an_inspector_acknowledges_it_on_the_page(self):
        port = st.free_port()
        v = self.vigild(f"console{int(time.time())}", ["--console-listen", f"127.0.0.1:{port}"])
        artifacts = artifacts_dir()
        browser = Browser(f"http://127.0.0.1:{port}", artifacts)
        try:
            browser("open", path="/")
            browser("purpose", text=PURPOSE)
            browser("wait_text", css="#status", text="live")
            browser("wait_text", css="#summary", text="0 open alerts")
            browser("js", js="window.notReloaded = true")
            # The case happens now: its alerts appear on the open page, as they are committed.
            st.ctl("publish", "--topic", v.topics["events"], "--shift-to-now", "--events", LANCASHIRE)
            rules = browser("wait_js", timeout=90, js="""
                const rules = [...document.querySelectorAll('article.alert .rule')].map(e => e.textContent);
                return ['marker-on-call', 'repeat-calls', 'unit-unavailable', 'arrest-deferred']
                  .every(r => rules.includes(r)) && rules;""")
            self.assertTrue(browser("js", js="return window.notReloaded === true"), "the page was reloaded")
            self.assertIn("arrest-overdue", browser("wait_js", timeout=90, js="""
                const rules = [...document.querySelectorAll('article.alert .rule')].map(e => e.textContent);
                return rules.includes('arrest-overdue') && rules;"""))
            # Grouped by level, then by victim; the case has climbed to the inspector and beyond.
            sections = browser("js", js="""return Object.fromEntries([...document.querySelectorAll('section.level')]
                .map(s => [s.classList[1], s.querySelectorAll('article.alert').length]))""")
            self.assertEqual(set(sections), {"SUPERINTENDENT", "INSPECTOR", "SUPERVISOR"})
            self.assertGreater(sections["SUPERINTENDENT"] + sections["INSPECTOR"], 0)
            victims = browser("js", js="return [...document.querySelectorAll('.victim h3 a')].map(a => a.textContent)")
            self.assertEqual(set(victims), {"V-LAN-1"})
            card = browser("js", js="return document.querySelector('article.alert').innerText")
            for fact in ("raised", "evidence events", "threshold"):
                self.assertIn(fact, card)
            browser("screenshot", name="board.png")
            # Readable contrast, labels, names: no WCAG 2 A or AA violation axe-core can find.
            self.assertAccessible(browser("axe", script=axe_script()))

            # Keyboard: Tab reaches an alert's note, then its button.
            self.assertIsNotNone(browser("tab_to", css=".ack input"))
            # One click acknowledges, with a note; the card says who acknowledged it.
            alert_id = browser("js", js="""
                const card = [...document.querySelectorAll('article.alert')]
                  .find(c => c.querySelector('.rule').textContent === 'repeat-calls');
                return card.dataset.alertId;""")
            browser("type", css=f".ack[data-alert='{alert_id}'] input", text="Rang her back; unit sent")
            browser("click", css=f".ack[data-alert='{alert_id}'] button")
            browser("wait_text", css=f"#alert-{alert_id}", text="acknowledged by local-dev")
            browser("screenshot", name="board-acknowledged.png")
            transitions = [json.loads(l) for l in v.alerts(idle_ms=3000)]
            acked = [a for a in transitions if a["alert_id"] == alert_id and a["state"] == "ACKNOWLEDGED"]
            self.assertEqual(len(acked), 1, "the acknowledgement reaches the alert topic once")
            self.assertEqual(acked[0]["acknowledged_by"], "local-dev")

            # A filter by level shows that level only.
            browser("open", path="/?level=INSPECTOR")
            browser("wait_text", css="#status", text="live")
            levels = browser("wait_js", js="""
                const open = [...document.querySelectorAll('section.level')]
                  .filter(s => s.querySelector('article.alert')).map(s => s.classList[1]);
                return document.querySelector('#summary').textContent && {levels: open};""")["levels"]
            self.assertLessEqual(set(levels), {"INSPECTOR"})

            # The victim's page: the profile, the timeline as a picture, each alert explained.
            browser("open", path="/victims/V-LAN-1")
            browser("wait_js", js="return document.body.dataset.loaded === 'true'")
            marks = browser("js", js="return document.querySelectorAll('#chart svg circle.mark').length")
            with open(LANCASHIRE) as f:
                events = [json.loads(l) for l in f]
            self.assertEqual(marks, len(events) + 1, "one mark per event, and the acknowledgement")
            bars = browser("js", js="return document.querySelectorAll('#chart g.alert-bar').length")
            self.assertGreaterEqual(bars, 6)
            climbed = browser("js", js="""return [...document.querySelectorAll('#chart g.alert-bar rect')]
                .map(r => r.getAttribute('class'))""")
            self.assertIn("segment INSPECTOR", climbed)
            self.assertIn("segment ACKNOWLEDGED", climbed)
            self.assertIn("HIGH", browser("js", js="return document.querySelector('#profile').innerText"))
            self.assertIn("Rang her back", browser("js", js="return document.querySelector('#events').innerText"))
            explained = browser("js", js="return document.querySelectorAll('details.explanation').length")
            self.assertEqual(explained, bars)
            browser("screenshot", name="victim.png")
            self.assertAccessible(browser("axe", script=axe_script()))
            self.assertEqual(browser("console_errors"), [])
        finally:
            browser.close()
        # Every read was audited, in the user's name, under the purpose the page was given.
        records = audit_records(f"{v.name}.audit")
        methods = {r["method"] for r in records if r.get("purpose") == PURPOSE}
        self.assertLessEqual({"ListAlerts", "WatchAlerts", "GetTimeline", "GetRiskProfile", "ExplainAlert"}, methods)
        self.assertEqual({r["identity"] for r in records}, {"local-dev"})


class TlsConsoleTest(unittest.TestCase):
    """Over HTTPS: no certificate, no page; a client's rights are its own."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-console-tls-")
        self.certs = os.path.join(self.dir, "certs")
        subprocess.run([os.path.join(st.ROOT, "deploy", "tls", "make-dev-certs.sh"), self.certs, "vigild-peer",
                        "supervisor-console", "alerts-dashboard"], check=True, capture_output=True)
        self.port = st.free_port()
        name = f"consoletls{int(time.time())}"
        self.v = ot.TlsVigild(name, os.path.join(self.dir, "data"), self.certs, instance=f"{name}-0", tick_ms=250,
                              extra=["--console-listen", f"127.0.0.1:{self.port}"])
        self.v.start()

    def tearDown(self):
        self.v.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, client, path, body=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.pem"))
        if client:
            ctx.load_cert_chain(os.path.join(self.certs, f"{client}.pem"), os.path.join(self.certs, f"{client}.key"))
        req = urllib.request.Request(f"https://localhost:{self.port}{path}", data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def wait_alerts(self, client, want):
        deadline = time.time() + 90
        while time.time() < deadline:
            status, body = self.call(client, "/api/alerts?purpose=review")
            if status == 200 and len(body["alerts"]) >= want:
                return body["alerts"]
            time.sleep(0.5)
        raise AssertionError(f"fewer than {want} open alerts after 90s: {status} {body}")

    def test_users_are_their_certificates_with_their_own_rights_audited_in_their_names(self):
        st.ctl("publish", "--topic", self.v.topics["events"], "--shift-to-now", "--events", LANCASHIRE)
        # No certificate: no page, not even its files.
        with self.assertRaises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            self.call(None, "/")
        self.assertEqual(self.call("supervisor-console", "/api/session")[1]["identity"], "supervisor-console")
        alerts = self.wait_alerts("supervisor-console", 4)
        # An alert reader sees alerts but no victim's history, and cannot acknowledge.
        self.assertEqual(self.call("alerts-dashboard", "/api/alerts?purpose=wallboard")[0], 200)
        status, body = self.call("alerts-dashboard", "/api/victims/V-LAN-1?purpose=curious")
        self.assertEqual((status, body["code"]), (403, "PERMISSION_DENIED"))
        target = next(a for a in alerts if a["state"] != "ACKNOWLEDGED")
        path = f"/api/alerts/{target['alert_id']}/acknowledge"
        status, body = self.call("alerts-dashboard", path, json.dumps({"note": "not mine to do"}).encode())
        self.assertEqual((status, body["code"]), (403, "PERMISSION_DENIED"))
        # A supervisor can, in their own name.
        status, body = self.call("supervisor-console", path, json.dumps({"note": "on it"}).encode())
        self.assertEqual(status, 200, body)
        self.assertEqual((body["state"], body["acknowledged_by"]), ("ACKNOWLEDGED", "supervisor-console"))
        status, body = self.call("supervisor-console", "/api/victims/V-LAN-1?purpose=handover")
        self.assertEqual(status, 200, body)
        self.assertTrue(any(e.get("escalation_acknowledged", {}).get("note") == "on it" for e in body["events"]))
        records = audit_records(f"{self.v.name}.audit")
        handover = [r for r in records if r.get("purpose") == "handover"]
        self.assertTrue(handover)
        self.assertEqual({(r["identity"], r.get("forwarded_by")) for r in handover},
                         {("supervisor-console", "vigild-peer")})
        self.assertFalse([r for r in records if r.get("purpose") == "curious"], "a refused read reads nothing")
        # What the page may not be fed: a form post, a bad filter.
        req = urllib.request.Request(f"https://localhost:{self.port}{path}", data=b"note=x")
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.pem"))
        ctx.load_cert_chain(os.path.join(self.certs, "supervisor-console.pem"),
                            os.path.join(self.certs, "supervisor-console.key"))
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, context=ctx, timeout=30)
        self.assertEqual(refused.exception.code, 400)
        status, body = self.call("supervisor-console", "/api/alerts?purpose=x&level=CONSTABLE")
        self.assertEqual((status, body["code"]), (400, "INVALID_ARGUMENT"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        drive(sys.argv[2], sys.argv[3])
    else:
        st.start_broker(sys.argv[1])
        try:
            result = unittest.main(argv=[sys.argv[0]] + sys.argv[2:], exit=False, verbosity=2).result
        finally:
            st.stop_broker()
        st.report(result)
