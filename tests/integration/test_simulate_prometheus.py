"""`virtscale simulate --prometheus.url` against a real Prometheus (Debian
package) that scrapes a tiny exposition endpoint served by this test. Exits 77
(skipped; 1 under CI=true) when prometheus is not installed. Loopback, ephemeral ports only."""
import http.server as httpserver
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from harness import SOURCE_DIR, free_port, http, run_tests, skip

BINARY = sys.argv[1]
PROMETHEUS = shutil.which("prometheus")


class Exposition(httpserver.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('# TYPE fake_cpu gauge\nfake_cpu{domain="app-1"} 0.9\n'
                '# TYPE fake_jobs gauge\nfake_jobs 42\n').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_simulate_from_prometheus_range_query():
    server = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Exposition)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n  - job_name: fake\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % server.server_address[1])
        rules = os.path.join(d, "app.yml")
        with open(rules, "w") as f:
            f.write("""groups:
  - name: app
    template: %s/config/templates/demo.xml
    members: {name_prefix: "app-"}
    min: 1
    max: 3
    interval: 1s
    scale_up:
      cooldown: 3s
      when:
        - {metric: cpu, aggregate: avg, above: 0.5, for: 2s}
        - {metric: source:jobs, above: 1000}
""" % SOURCE_DIR)
        port = free_port()
        url = "http://127.0.0.1:%d" % port
        log = open(os.path.join(d, "prometheus.log"), "w")
        prom = subprocess.Popen([PROMETHEUS, "--config.file=" + config,
                                 "--storage.tsdb.path=" + os.path.join(d, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if http(url + "/-/ready", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            else:
                raise AssertionError("prometheus not ready")
            # Wait for a first scrape, then record a 10s window.
            while time.time() < deadline:
                status, body = http(url + "/api/v1/query?query=fake_cpu")
                if status == 200 and '"app-1"' in body:
                    break
                time.sleep(0.5)
            start = int(time.time()) + 1
            end = start + 10
            time.sleep(end + 2 - time.time())
            p = subprocess.run(
                [BINARY, "simulate", "--rules", rules, "--group", "app",
                 "--prometheus.url", url, "--start", str(start), "--end", str(end),
                 "--step", "1s", "--load", "per-member", "--query.cpu", "fake_cpu",
                 "--query.source.jobs", "sum(fake_jobs)"],
                capture_output=True, text=True, timeout=60)
            out = p.stdout + p.stderr
            assert p.returncode == 0, out
            assert "1 initial running member(s)" in out, out   # one series: app-1
            assert "+0s  up[0] cpu:avg > 0.5 for 2s: pending (value 0.9" in out, out
            assert "+2s  up[0] cpu:avg > 0.5 for 2s: firing" in out, out
            assert "+2s  scale_up 1 -> 2: create app-2 ok" in out, out
            # per-member: the new member reads the recorded mean (0.9), so it keeps firing.
            assert "held (cooldown)" in out, out
            assert "scale_up 2 -> 3: create app-3 ok" in out, out
            # The jobs source came through (42 < 1000: this condition never fires).
            assert "up[1]" not in out, out
            assert "summary: 11 evaluations" in out, out

            bad = subprocess.run(
                [BINARY, "simulate", "--rules", rules, "--group", "app", "--prometheus.url", url,
                 "--start", str(start), "--end", str(end), "--query.cpu", "fake_cpu{"],
                capture_output=True, text=True, timeout=60)
            assert bad.returncode == 1 and "bad_data" in bad.stderr, bad.stderr
        finally:
            prom.terminate()
            prom.wait(30)
            log.close()
            server.shutdown()


if __name__ == "__main__":
    if PROMETHEUS is None:
        sys.exit(skip("prometheus is not installed (scripts/install-deps.sh installs it)"))
    sys.exit(run_tests([test_simulate_from_prometheus_range_query]))
