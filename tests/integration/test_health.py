#!/usr/bin/env python3
"""Integration tests of health checks on libvirt's in-process test driver: real
exec checks and an HTTP check against a local endpoint, through the real binary
(docs/configuration.md "health").

  test_health.py BINARY
"""
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Agent, Workdir, http, run_tests, values  # noqa: E402

BINARY = sys.argv[1]


class HealthEndpoint:
    """GET /NAME answers 503 while NAME is in `down`, else 200."""

    def __init__(self):
        self.down = set()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.strip("/")
                code = 503 if name in endpoint.down else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def group(agent):
    return next(g for g in agent.json("/api/v1/groups")["data"] if g["name"] == "t")


def health(agent):
    return {m["name"]: (m["health"], m["state"], m["health_output"])
            for m in group(agent)["members"]}


def test_failing_exec_and_http_checks_make_members_unhealthy_and_recovery_heals():
    endpoint = HealthEndpoint()
    with Workdir(prefix="virtscale-health-") as w:
        flags = w.path("down")
        os.mkdir(flags)
        w.write("virtscale.yml",
                "libvirt: {uri: 'test:///default', sample_interval: 1s}\n"
                "rule_files: [rules.yml]\n")
        # The test driver's own domain "test" is the one member (name_prefix).
        w.write("rules.yml", """
groups:
  - name: t
    members: {name_prefix: "test"}
    min: 0
    max: 2
    interval: 1s
    health:
      grace_period: 0s
      interval: 1s
      unhealthy_after: 2
      checks:
        - {type: exec, command: ["/bin/sh", "-c", "%s"]}
        - {type: http, url: "%s/{domain}", timeout: 2s}
""" % ("test ! -e %s/{domain} || { echo flagged {domain}; exit 1; }" % flags, endpoint.url))
        try:
            with Agent(BINARY, config=w.path("virtscale.yml")) as agent:
                agent.wait_for(lambda: health(agent).get("test", ("",))[0] == "healthy",
                               what="test healthy")
                open(os.path.join(flags, "test"), "w").close()  # the exec check fails
                agent.wait_for(lambda: health(agent)["test"][0] == "unhealthy",
                               what="test unhealthy after two failed rounds")
                state, output = health(agent)["test"][1:]
                assert state == "unhealthy" and "flagged test" in output, (state, output)
                d = group(agent)["last_decision"]
                assert "flagged test" in d["members"]["health_failures"]["test"], d
                assert values(agent.samples(), "virtscale_group_members", group="t",
                              state="unhealthy") == [1.0]
                status, page = http(agent.url + "/")
                assert 'data-state="unhealthy"' in page and "flagged test" in page

                os.unlink(os.path.join(flags, "test"))
                endpoint.down.add("test")  # now the HTTP check fails instead
                agent.wait_for(lambda: "HTTP 503" in health(agent)["test"][2],
                               what="the http check's failure is reported")
                endpoint.down.clear()
                agent.wait_for(lambda: health(agent)["test"][0] == "healthy",
                               what="test healthy again")
                assert health(agent)["test"][1] == "running"
        finally:
            endpoint.close()


if __name__ == "__main__":
    sys.exit(run_tests([
        test_failing_exec_and_http_checks_make_members_unhealthy_and_recovery_heals,
    ]))
