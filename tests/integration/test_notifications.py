#!/usr/bin/env python3
"""Notifications of scale actions: the agent on libvirt's test driver scales a
group up, and a local HTTP receiver gets the decision record as JSON, at the
top-level target and at the group's own target.

  test_notifications.py BINARY
"""
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")

RULES = """
groups:
  - name: q
    template: %s
    min: 0
    max: 1
    interval: 1s
    scale_up:
      when:
        - {metric: "source:queue", above: 100}
    notifications:
      - {url: "http://127.0.0.1:%d/group", events: [scale_up]}
"""


class Receiver:
    """An HTTP server on 127.0.0.1:0 that records every POST; the first POST
    to /top answers 500, so the agent has to retry it."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    path = self.path.split("?")[0]
                    first_top = path == "/top" and not any(p[0] == "/top" for p in receiver.posts)
                    receiver.posts.append((path, self.headers.get("Content-Type"),
                                           json.loads(body)))
                self.send_response(500 if first_top else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def received(self, path):
        with self.lock:
            return [p for p in self.posts if p[0] == path]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_scale_up_is_posted_with_its_results():
    directory = tempfile.mkdtemp(prefix="virtscale-it-")
    try:
        with Receiver() as receiver:
            with open(os.path.join(directory, "queue"), "w") as f:
                f.write("1000")
            with open(os.path.join(directory, "rules.yml"), "w") as f:
                f.write(RULES % (TEMPLATE, receiver.port))
            config = os.path.join(directory, "virtscale.yml")
            with open(config, "w") as f:
                f.write("libvirt:\n  uri: test:///default\n  sample_interval: 1s\n"
                        "rule_files: [rules.yml]\n"
                        "sources:\n  queue:\n    type: file\n    path: queue\n"
                        "    interval: 500ms\n"
                        "notifications:\n"
                        "  - url: http://127.0.0.1:%d/top?token=s3cret\n"
                        "    events: [scale_up, failed]\n" % receiver.port)
            with Agent(BINARY, config=config) as agent:
                # The first POST to /top fails: the second arrives after a 1s backoff.
                agent.wait_for(lambda: len(receiver.received("/top")) >= 2
                               and receiver.received("/group"), timeout=60,
                               what="notifications at both targets")
                for path in ("/top", "/group"):
                    _, content_type, record = receiver.received(path)[-1]
                    assert content_type == "application/json", content_type
                    assert record["group"] == "q", record
                    assert record["outcome"] == "scale_up", record
                    assert record["event"] == "scale_up", record
                    assert record["result"] == "ok", record
                    actions = record["actions"]
                    assert len(actions) == 1 and actions[0]["kind"] == "create", actions
                    assert actions[0]["result"] == "ok" and actions[0]["domain"] == "q-1", actions
                top = "http://127.0.0.1:%d/top" % receiver.port
                samples = agent.wait_for(
                    lambda: (lambda s: s if values(s, "virtscale_notifications_total", url=top,
                                                   result="ok") == [1.0] else None)(
                        agent.samples()), what="virtscale_notifications_total{result=ok}")
                assert values(samples, "virtscale_notification_attempts_total", url=top,
                              result="error") == [1.0]
                assert "s3cret" not in agent.metrics()
                assert values(samples, "virtscale_notification_queue_length") == [0.0]
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    sys.exit(run_tests([test_a_scale_up_is_posted_with_its_results]))
