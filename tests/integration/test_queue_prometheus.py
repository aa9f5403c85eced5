#!/usr/bin/env python3
"""Queue depth through a real Prometheus drives a scaling group on the test
driver, and every way the Prometheus source can fail holds the group with the
reason recorded (never read as 0).

  test_queue_prometheus.py BINARY       (exit 77 when prometheus is absent, 1 under CI=true)
"""
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, run_tests, skip, values  # noqa: E402
import promserver  # noqa: E402

BINARY = sys.argv[1]
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")


class FakeServer:
    """A loopback HTTP server whose answer the test sets: an exposition body on
    /metrics (for Prometheus to scrape) or a canned /api/v1/query reply."""

    def __init__(self):
        self.metrics = "app_queue_depth 0\n"
        self.query_status, self.query_body, self.delay = 200, "{}", 0.0
        self.range_answer = None  # f(params) -> body of /api/v1/query_range
        self.range_params = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/api/v1/query_range") and fake.range_answer:
                    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                    fake.range_params.append(params)
                    status, body, ctype = 200, fake.range_answer(params), "application/json"
                elif self.path.startswith("/api/v1/query"):
                    time.sleep(fake.delay)
                    status, body, ctype = fake.query_status, fake.query_body, "application/json"
                else:
                    status, body, ctype = 200, fake.metrics, "text/plain; version=0.0.4"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def write_config(directory, url, query, timeout="1s"):
    path = os.path.join(directory, "virtscale.yml")
    with open(os.path.join(directory, "rules.yml"), "w") as f:
        f.write("""groups:
  - name: workers
    template: %s
    min: 0
    max: 3
    interval: 1s
    scale_up:
      cooldown: 1s
      when:
        - {metric: "source:jobs", per_member_above: 100, for: 1s}
    scale_down:
      cooldown: 1s
      action: delete
      when:
        - {metric: "source:jobs", per_member_below: 20, for: 1s}
""" % TEMPLATE)
    with open(path, "w") as f:
        f.write("""libvirt: {uri: "test:///default", sample_interval: 1s}
rule_files: [rules.yml]
sources:
  jobs:
    type: prometheus
    url: %s
    query: %s
    interval: 1s
    timeout: %s
""" % (url, json.dumps(query), timeout))
    return path


def workers(agent):
    for g in agent.json("/api/v1/groups")["data"]:
        if g["name"] == "workers":
            return g
    raise AssertionError("no group workers")


def test_queue_depth_through_prometheus_scales_up_and_down():
    fake = FakeServer()
    tmp = tempfile.mkdtemp(prefix="virtscale-queue-")
    try:
        with promserver.Prometheus({"app": ["127.0.0.1:%d" % fake.port]}) as prom:
            config = write_config(tmp, prom.url, 'sum(app_queue_depth{job="app"})')
            with Agent(BINARY, config=config) as agent:
                fake.metrics = "app_queue_depth 450\n"  # 450 per member > 100: grow to max 3
                agent.wait_for(lambda: workers(agent)["running"] == 3, timeout=90,
                               what="workers scaled to max on queue depth")
                ups = [d for d in agent.json("/api/v1/decisions?limit=500")["data"]
                       if d["group"] == "workers" and d["outcome"] == "scale_up"]
                assert ups and ups[-1]["metrics"]["source:jobs:per_member"] is not None, ups[-1:]
                print("  scale-up decision:", json.dumps(ups[0], sort_keys=True)[:600])
                samples = agent.samples()
                assert values(samples, "virtscale_source_value", source="jobs") == [450.0]
                assert values(samples, "virtscale_source_up", source="jobs") == [1.0]
                fake.metrics = "app_queue_depth 0\n"
                agent.wait_for(lambda: not workers(agent)["members"], timeout=90,
                               what="workers deleted back to 0")
    finally:
        fake.close()
        shutil.rmtree(tmp)


# (name, query status, body, delay, reason the record must give)
FAILURES = [
    ("empty vector", 200, '{"status":"success","data":{"resultType":"vector","result":[]}}', 0,
     "empty_vector"),
    ("several series", 200, '{"status":"success","data":{"resultType":"vector","result":['
     '{"metric":{"q":"a"},"value":[1,"5"]},{"metric":{"q":"b"},"value":[1,"6"]}]}}', 0,
     "multiple_series"),
    ("NaN", 200, '{"status":"success","data":{"resultType":"vector","result":['
     '{"metric":{},"value":[1,"NaN"]}]}}', 0, "nan"),
    ("HTTP error", 503, "overloaded", 0, "http_status"),
    ("query error", 400, '{"status":"error","errorType":"bad_data","error":"parse error"}', 0,
     "query_error"),
    ("malformed JSON", 200, '{"status":"success","data":', 0, "bad_json"),
    ("timeout", 200, '{"status":"success","data":{"resultType":"scalar","result":[1,"500"]}}',
     3.0, "timeout"),
]


def test_every_prometheus_failure_holds_the_group_with_its_reason():
    """A group grown to 3 on a good reading must stay at 3 through every failure:
    a failure read as 0 would fire per_member_below and delete members."""
    fake = FakeServer()
    tmp = tempfile.mkdtemp(prefix="virtscale-queue-")
    try:
        fake.query_body = '{"status":"success","data":{"resultType":"scalar","result":[1,"250"]}}'
        config = write_config(tmp, fake.url, "app_queue_depth", timeout="1s")
        with Agent(BINARY, config=config) as agent:
            agent.wait_for(lambda: workers(agent)["running"] == 3, timeout=60,
                           what="workers at 3 on a good reading")
            for name, status, body, delay, reason in FAILURES:
                fake.query_status, fake.query_body, fake.delay = status, body, delay
                since = agent.json("/api/v1/decisions?limit=1")["data"][0]["id"]

                def held():
                    for d in agent.json("/api/v1/decisions?limit=50")["data"]:
                        if (d["group"] == "workers" and d["id"] > since and
                                reason in json.dumps(d.get("missing", {}))):
                            return d
                    return None
                d = agent.wait_for(held, timeout=30, what="a hold naming %s (%s)" % (reason, name))
                assert d["outcome"] == "held" and d["held_by"] == "missing_data", d
                assert d["metrics"]["source:jobs:per_member"] is None, d  # missing, never 0
                time.sleep(2.5)  # longer than the down condition's `for` and cooldown
                samples = agent.samples()
                assert values(samples, "virtscale_source_errors_total", source="jobs",
                              reason=reason)[0] >= 1
                assert not values(samples, "virtscale_source_value", source="jobs")
                assert values(samples, "virtscale_scale_actions_total", group="workers",
                              direction="down", result="ok") == [0.0]
                assert workers(agent)["running"] == 3, workers(agent)
                if name == "empty vector":
                    print("  hold on a failing source:", json.dumps(d, sort_keys=True)[:700])
                print("  %-15s held at 3, reason %s" % (name, reason))
    finally:
        fake.close()
        shutil.rmtree(tmp)


def test_a_forecast_from_the_prometheus_history_scales_ahead():
    """The agent fetches the source's history as a range query, forecasts the
    queue's daily peak 15 minutes ahead and, with scale_ahead, grows before it."""
    fake = FakeServer()
    tmp = tempfile.mkdtemp(prefix="virtscale-forecast-")

    def two_days_with_a_peak_ahead(params):
        end, step = float(params["end"]), int(params["step"])
        points = []
        for t in range(int(end) - 2 * 86400, int(end), step):
            into_day = (t - (int(end) - 2 * 86400)) % 86400
            points.append([t, "250" if 300 <= into_day < 1200 else "50"])  # 5m..20m from now
        return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": points}]}})
    try:
        fake.query_body = '{"status":"success","data":{"resultType":"scalar","result":[1,"50"]}}'
        fake.range_answer = two_days_with_a_peak_ahead
        config = write_config(tmp, fake.url, "sum(app_queue_depth)")
        with open(os.path.join(tmp, "rules.yml"), "w") as f:
            f.write("""groups:
  - name: workers
    template: %s
    min: 1
    max: 4
    interval: 1s
    target: {metric: "source:jobs", per_member_target: 50}
    scale_up: {cooldown: 1s}
    scale_down: {cooldown: 1s, action: delete}
    forecast: {source: jobs, horizon: 15m, mode: scale_ahead}
""" % TEMPLATE)
        with Agent(BINARY, config=config) as agent:
            agent.wait_for(lambda: workers(agent)["running"] == 4, timeout=60,
                           what="workers grown to the forecast (5, within max 4)")
            g = workers(agent)
            assert g["forecast"] == {"source": "jobs", "horizon": "15m", "mode": "scale_ahead"}, g
            ups = [d for d in agent.json("/api/v1/decisions?limit=500")["data"]
                   if d["group"] == "workers" and d["outcome"] == "scale_up"]
            assert ups, "no scale-up"
            f = ups[0]["forecast"]  # the newest
            assert f["members"] == 4 and f["applied"] is True, f
            assert "scale_ahead: 1 now, the forecast for the next 15m asks for 4" in \
                ups[0]["reason"], ups[0]["reason"]
            print("  scale-ahead decision: %s" % ups[0]["reason"])
            print("  forecast: %s" % json.dumps(f, sort_keys=True))
            samples = agent.samples()
            assert values(samples, "virtscale_group_forecast_members", group="workers") == [4.0]
            assert values(samples, "virtscale_source_history_samples", source="jobs") == [576.0]
            p = fake.range_params[0]
            assert p["query"] == "sum(app_queue_depth)" and p["step"] == "300", p
            assert abs(float(p["end"]) - float(p["start"]) - 29 * 86400) < 1e-3, p
            # The queue still reads 50: the group stays ahead of it, never shrinking to 1.
            time.sleep(3)
            assert workers(agent)["running"] == 4, workers(agent)
    finally:
        fake.close()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    if not shutil.which("prometheus") and not os.access("/usr/bin/prometheus", os.X_OK):
        sys.exit(skip("prometheus not installed (scripts/install-deps.sh installs it)"))
    sys.exit(run_tests([test_queue_depth_through_prometheus_scales_up_and_down,
                        test_every_prometheus_failure_holds_the_group_with_its_reason,
                        test_a_forecast_from_the_prometheus_history_scales_ahead]))
