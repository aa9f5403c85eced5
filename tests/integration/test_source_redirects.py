#!/usr/bin/env python3
"""Source credentials go only to the source's own origin. Two loopback servers:
A redirects one path to B (another port, so another origin) and chains others
within itself. Scrape sources with basic_auth (password_file) and bearer_token
read A. The redirect to B is not followed, so B sees no request at all, and the
reading fails with an error naming the redirect; same-origin redirects are
followed and every hop carries the credentials.

  test_source_redirects.py BINARY
"""
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")
BASIC = "Basic dXNlcjpwYXNz"  # user:pass
BEARER = "Bearer s3cret"


class Server:
    """A loopback HTTP server that records (path, Authorization) of every
    request and answers from `routes`: path -> (status, Location or body)."""

    def __init__(self, routes):
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.requests.append((self.path, self.headers.get("Authorization")))
                status, text = routes.get(self.path, (404, "not found\n"))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", text)
                    text = ""
                data = text.encode()
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def seen(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def write_config(directory, a_url):
    with open(os.path.join(directory, "password"), "w") as f:
        f.write("pass\n")
    with open(os.path.join(directory, "rules.yml"), "w") as f:
        f.write("""groups:
  - name: watch
    template: %s
    min: 0
    max: 1
    interval: 1s
    scale_up:
      when:
        - {metric: "source:cross_basic", above: 1000000}
        - {metric: "source:cross_bearer", above: 1000000}
""" % TEMPLATE)
    sources = ""
    for name, path, auth in [
            ("cross_basic", "/cross", "basic_auth: {username: user, password_file: password}"),
            ("cross_bearer", "/cross", "bearer_token: s3cret"),
            ("same_basic", "/same/basic/start",
             "basic_auth: {username: user, password_file: password}"),
            ("same_bearer", "/same/bearer/start", "bearer_token: s3cret")]:
        sources += """  %s:
    type: scrape
    url: %s%s
    metric: app_queue_depth
    interval: 1s
    timeout: 1s
    %s
""" % (name, a_url, path, auth)
    path = os.path.join(directory, "virtscale.yml")
    with open(path, "w") as f:
        f.write('libvirt: {uri: "test:///default", sample_interval: 1s}\n'
                "rule_files: [rules.yml]\nsources:\n" + sources)
    return path


def test_credentials_stay_with_the_source_origin():
    b = Server({"/steal": (200, "app_queue_depth 666\n")})
    routes = {"/cross": (302, b.url + "/steal")}
    for kind in ("basic", "bearer"):
        routes["/same/%s/start" % kind] = (302, "next")  # relative
        routes["/same/%s/next" % kind] = (301, "/same/%s/final" % kind)
        routes["/same/%s/final" % kind] = (200, "app_queue_depth 42\n")
    a = Server(routes)
    tmp = tempfile.mkdtemp(prefix="virtscale-redirects-")
    try:
        with Agent(BINARY, config=write_config(tmp, a.url)) as agent:
            def settled():
                s = agent.samples()
                return (values(s, "virtscale_source_value", source="same_basic") == [42.0] and
                        values(s, "virtscale_source_value", source="same_bearer") == [42.0] and
                        all(values(s, "virtscale_source_errors_total", source=name,
                                   reason="http_status")[0] >= 2
                            for name in ("cross_basic", "cross_bearer")) and s)
            samples = agent.wait_for(settled, timeout=30, what="two polls of every source")
            for name in ("cross_basic", "cross_bearer"):
                assert values(samples, "virtscale_source_up", source=name) == [0.0], name
                assert not values(samples, "virtscale_source_value", source=name), name

            # The reading's error names the redirect, in the decisions and the log.
            error = ("http_status: redirect from %s/cross to %s/steal not followed: another "
                     "origin (credentials stay with %s)" % (a.url, b.url, a.url))

            def held():
                for d in agent.json("/api/v1/decisions?limit=20")["data"]:
                    missing = d.get("missing", {})
                    if d["group"] == "watch" and all(
                            "redirect" in missing.get("source:" + name, "")
                            for name in ("cross_basic", "cross_bearer")):
                        return d
                return None
            d = agent.wait_for(held, timeout=30, what="a decision naming the redirect")
            print("  missing:", json.dumps(d["missing"], sort_keys=True))
            assert d["missing"]["source:cross_basic"] == "source error: " + error, d["missing"]
            assert d["missing"]["source:cross_bearer"] == "source error: " + error, d["missing"]
            assert error[len("http_status: "):] in agent.logs()

            # Same origin: every hop of both chains carried its credential.
            time.sleep(1.5)  # more polls, so B would have had its chance
            hops = {}
            for path, auth in a.seen():
                if path.startswith("/same/"):
                    kind = path.split("/")[2]
                    assert auth == (BASIC if kind == "basic" else BEARER), (path, auth)
                    hops.setdefault(kind, set()).add(path)
            for kind in ("basic", "bearer"):
                assert hops[kind] == {"/same/%s/%s" % (kind, p) for p in ("start", "next", "final")}
            crossed = [r for r in a.seen() if r[0] == "/cross"]
            assert len(crossed) >= 4 and all(auth in (BASIC, BEARER) for _, auth in crossed)
            print("  A: %d requests, %d to /cross; B: %d requests" % (
                len(a.seen()), len(crossed), len(b.seen())))
            # Another origin: not one request, so no Authorization header either.
            assert b.seen() == [], b.seen()
    finally:
        a.close()
        b.close()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(run_tests([test_credentials_stay_with_the_source_origin]))
