#!/usr/bin/env python3
"""The landing page in a real browser: the agent on libvirt's test driver (a
node file with a running, a paused and a stopped member, plus a queue group
that creates members), loaded in headless Debian chromium. Checks the DOM the
browser built: member rows with states, source rows with value and health, the
reload status after a failed and a good reload, the dry-run banner (a group's
dry_run, and --dry-run), the recent changes and the refresh meta, and that
the browser follows the refresh (the page has no scripts). Without
chromium it skips (exit 77), and fails under CI=true.

  test_landing_page_browser.py BINARY [--screenshot docs/landing-page.png]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SOURCE_DIR, Agent, http, run_tests, skip  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("binary")
parser.add_argument("--screenshot", help="also save a screenshot of the page here")
ARGS = parser.parse_args()
BINARY = ARGS.binary
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")
CHROMIUM = shutil.which("chromium")
BROWSER_FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                 "--no-first-run", "--disable-extensions", "--mute-audio"]

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
PAUSED, SHUTOFF = 3, 5


def node_xml():
    """web-1 running, web-2 paused, web-3 shut off (runstate: libvirt's test driver)."""
    doms = ""
    for i, state in ((1, None), (2, PAUSED), (3, SHUTOFF)):
        runstate = "<test:runstate>%d</test:runstate>" % state if state else ""
        doms += ("<domain type='test' xmlns:test='%s'><name>web-%d</name>"
                 "<memory unit='MiB'>128</memory><vcpu>1</vcpu>"
                 "<os><type arch='x86_64'>hvm</type></os>%s</domain>\n" % (TEST_NS, i, runstate))
    return ("<node><cpu><mhz>2400</mhz><model>x86_64</model><active>4</active><nodes>1</nodes>"
            "<sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>"
            "<memory>8388608</memory>\n%s</node>\n" % doms)


RULES = """
groups:
  - name: web                  # adopts web-1..3; cpu never reaches 0.99: no action
    members: {name_prefix: "web-"}
    min: 1
    max: 6
    interval: 1s
    %(web_dry_run)s
    scale_up:
      when:
        - {metric: cpu, above: 0.99, for: 1m}
  - name: queue                # 250 in the queue file: three members of 100
    template: %(template)s
    min: 0
    max: 5
    interval: 1s
    target: {metric: "source:queue", per_member_target: 100, tolerance: 0.1}
    scale_up: {cooldown: 1s}
    scale_down: {cooldown: 1s, action: delete}
"""


class Workdir(harness.Workdir):
    def __init__(self):
        super().__init__(prefix="virtscale-page-")
        self.node = self.path("node.xml")
        self.rules = self.path("rules.yml")
        self.config = self.path("virtscale.yml")
        self.write("node.xml", node_xml())
        self.write("queue", "250\n")
        self.write("virtscale.yml",
                   "libvirt:\n  uri: test://%s\n  sample_interval: 1s\n"
                   "rule_files: [rules.yml]\n"
                   "sources:\n"
                   "  queue: {type: file, path: queue, interval: 500ms}\n"
                   "  spool: {type: file, path: no-such-spool, interval: 500ms}\n" % self.node)
        self.write_rules()

    def write_rules(self, web_dry_run=False, broken=False):
        text = RULES % {"template": TEMPLATE, "web_dry_run": "dry_run: true" if web_dry_run else ""}
        if broken:
            text = text.replace("max: 6", "max: six")
        self.write("rules.yml", text)


class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.parts = [], []

    def text(self):
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def classes(self):
        return self.attrs.get("class", "").split()

    def find_all(self, tag=None, cls=None, **attrs):
        return [e for e in self.iter()
                if (tag is None or e.tag == tag) and (cls is None or cls in e.classes())
                and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]


class Dom(HTMLParser):
    """A tree of the serialized DOM chromium prints (void elements unclosed)."""
    VOID = {"meta", "br", "link", "img", "input", "hr", "col", "area", "base", "wbr", "source"}

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", [], None)
        self.cur = self.root
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        e = Element(tag, attrs, self.cur)
        self.cur.children.append(e)
        self.cur.parts.append(e)
        if tag not in self.VOID:
            self.cur = e

    def handle_endtag(self, tag):
        e = self.cur
        while e is not None and e.tag != tag:
            e = e.parent
        if e is not None and e.parent is not None:
            self.cur = e.parent

    def handle_data(self, data):
        self.cur.parts.append(data)


def load(url):
    """The DOM chromium built from `url`, after load."""
    out = subprocess.run([CHROMIUM] + BROWSER_FLAGS + ["--dump-dom", url], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "<html" in out.stdout, (out.returncode, out.stderr[-2000:])
    return Dom(out.stdout).root


def screenshot(url, path):
    out = subprocess.run([CHROMIUM] + BROWSER_FLAGS +
                         ["--window-size=1280,1080", "--screenshot=" + os.path.abspath(path), url],
                         capture_output=True, text=True, timeout=120)
    with open(path, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000, (len(png), out.stderr[-2000:])


class CountingProxy:
    """Forwards GETs to the agent and counts the loads of "/": the browser's
    refreshes, seen from outside it."""

    def __init__(self, upstream):
        self.loads = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/":
                    proxy.loads += 1
                status, text = http(upstream + self.path)  # /favicon.ico: 404
                body = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the browser was killed mid-answer: the test is done with it

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def cells(row):
    return [td.text().strip() for td in row.find_all("td")]


def group(agent, name):
    return next(g for g in agent.json("/api/v1/groups")["data"] if g["name"] == name)


def reload(agent):
    return http(agent.url + "/-/reload", method="POST", data=b"")[0]


def members_by_name(page):
    return {cells(r)[1]: r for r in page.find_all("tr", cls="member")}


def test_page_shows_members_sources_reload_and_changes():
    with Workdir() as w, Agent(BINARY, "--web.enable-lifecycle", config=w.config) as agent:
        agent.wait_for(lambda: group(agent, "queue")["running"] == 3, timeout=60,
                       what="queue group at 3 running members")
        agent.wait_for(lambda: group(agent, "web")["last_decision"], what="web evaluated")
        page = load(agent.url + "/")

        refresh = page.find_all("meta", http_equiv="refresh")
        assert len(refresh) == 1 and int(refresh[0].attrs["content"]) <= 10, refresh
        assert not page.find_all("script"), "the page needs no JavaScript"
        handlers = [(e.tag, k) for e in page.iter() for k in e.attrs if k.startswith("on")]
        assert not handlers, handlers
        assert not page.find_all(id="dry-run-banner")

        members = members_by_name(page)
        want = {"web-1": "running", "web-2": "paused", "web-3": "stopped",
                "queue-1": "running", "queue-2": "running", "queue-3": "running"}
        assert sorted(members) == sorted(want), sorted(members)
        for name, state in want.items():
            row = members[name]
            assert row.attrs["data-state"] == state, (name, row.attrs)
            assert row.find_all("td", cls="state")[0].text() == state, (name, cells(row))
        assert cells(members["queue-1"])[4] == "owned" and cells(members["web-1"])[4] == "adopted"

        sources = {cells(r)[0]: r for r in page.find_all("tr", cls="source")}
        assert sorted(sources) == ["queue", "spool"], sorted(sources)
        queue = cells(sources["queue"])
        assert sources["queue"].attrs["data-health"] == "ok" and queue[1] == "250", queue
        assert queue[2].endswith("s ago") and queue[3] == "ok", queue
        spool = cells(sources["spool"])
        assert sources["spool"].attrs["data-health"] == "error", spool
        assert spool[2] == "never" and "no-such-spool" in spool[4], spool

        status = page.find_all(id="reload-status")
        assert len(status) == 1 and status[0].attrs["data-result"] == "start", status[0].attrs
        assert w.config in status[0].text()

        groups = {r.attrs["data-group"]: r for r in page.find_all("tr", cls="group")}
        assert sorted(groups) == ["queue", "web"]
        assert "none" in cells(groups["web"])[-1], cells(groups["web"])

        changes = [cells(r) for r in page.find_all("tr", cls="change")]
        creates = [c for c in changes if c[1] == "queue" and "create queue-" in c[3]]
        assert len(creates) >= 1 and all(": ok" in c[3] for c in creates), changes
        assert all(c[2] in ("scale_up", "scale_down") for c in changes), changes

        # A reload that fails shows why, and the time; the old config keeps running.
        w.write_rules(broken=True)
        assert reload(agent) == 500
        page = load(agent.url + "/")
        status = page.find_all(id="reload-status")[0]
        assert status.attrs["data-result"] == "failure", status.attrs
        assert "Last reload failed" in status.text() and "rules.yml" in status.text(), status.text()
        assert "max" in status.find_all("pre")[0].text(), status.text()
        assert len(page.find_all("tr", cls="member")) == 6

        # A good one, making one group a dry run: the banner names it.
        w.write_rules(web_dry_run=True)
        assert reload(agent) == 200
        page = load(agent.url + "/")
        status = page.find_all(id="reload-status")[0]
        assert status.attrs["data-result"] == "success", status.text()
        assert "Last reload succeeded" in status.text()
        banner = page.find_all(id="dry-run-banner")
        assert len(banner) == 1 and "dry_run: web" in banner[0].text(), [b.text() for b in banner]
        assert "queue" not in banner[0].text()

        shot = ARGS.screenshot or os.path.join(w.dir, "page.png")
        screenshot(agent.url + "/", shot)


def test_dry_run_banner_and_dry_run_changes():
    with Workdir() as w, Agent(BINARY, "--dry-run", config=w.config) as agent:
        agent.wait_for(
            lambda: any(d["group"] == "queue" for d in
                        agent.json("/api/v1/decisions?changes=true")["data"]),
            timeout=60, what="a dry-run change of the queue group")
        page = load(agent.url + "/")
        banner = page.find_all(id="dry-run-banner")
        assert len(banner) == 1 and "--dry-run" in banner[0].text(), [b.text() for b in banner]
        changes = [cells(r) for r in page.find_all("tr", cls="change")]
        assert changes and all(c[1] == "queue" for c in changes), changes
        assert all(c[3].startswith("create (new): dry_run") for c in changes), changes
        # Nothing was created.
        assert sorted(members_by_name(page)) == ["web-1", "web-2", "web-3"]


def test_browser_follows_the_refresh():
    with Workdir() as w, Agent(BINARY, config=w.config) as agent, CountingProxy(agent.url) as proxy:
        # Virtual time runs the page's 5 s refresh fast. The page has no script
        # (checked above), so what reloads it is the meta refresh. (Headless
        # --dump-dom needs scripts on: scriptEnabled=false makes it load nothing.)
        browser = subprocess.Popen(
            [CHROMIUM] + BROWSER_FLAGS + ["--virtual-time-budget=600000", "--dump-dom",
                                          proxy.url + "/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 60
            while proxy.loads < 3 and time.time() < deadline and browser.poll() is None:
                time.sleep(0.2)
            assert proxy.loads >= 3, "the browser loaded / %d times" % proxy.loads
        finally:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()


def main():
    if not CHROMIUM:
        return skip("chromium not installed (scripts/install-deps.sh installs it)")
    return run_tests([test_page_shows_members_sources_reload_and_changes,
                      test_dry_run_banner_and_dry_run_changes,
                      test_browser_follows_the_refresh])


if __name__ == "__main__":
    sys.exit(main())
