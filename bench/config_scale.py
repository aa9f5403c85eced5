#!/usr/bin/env python3
"""Measures the agent at the supported rule scale (docs/configuration.md "Limits"):
N groups on libvirt's test driver, each with a condition and a target group on
a file source. Prints start-up time, reload time (SIGHUP until the log says so),
peak RSS, /metrics and /api/v1/groups size and time, and `check config` time.

  bench/config_scale.py BUILD/virtscale [GROUPS]   # default 1000
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import SOURCE_DIR, Agent, http  # noqa: E402


def write_config(directory, groups):
    template = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")
    queue = os.path.join(directory, "queue")
    with open(queue, "w") as f:
        f.write("0\n")
    with open(os.path.join(directory, "rules.yml"), "w") as f:
        f.write("groups:\n")
        for i in range(groups):
            if i % 2:
                f.write("  - {name: t%d, template: %s, max: 3, interval: 5s, "
                        "target: {metric: 'source:q', per_member_target: 100}}\n" % (i, template))
            else:
                f.write("  - name: c%d\n    template: %s\n    max: 3\n    interval: 5s\n"
                        "    scale_up: {when: [{metric: cpu, above: 0.9, for: 1m}]}\n"
                        % (i, template))
    config = os.path.join(directory, "virtscale.yml")
    with open(config, "w") as f:
        f.write("libvirt: {uri: 'test:///default'}\nrule_files: [rules.yml]\n"
                "sources: {q: {type: file, path: %s, interval: 5s}}\n" % queue)
    return config


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def timed_get(url):
    start = time.monotonic()
    status, body = http(url, timeout=60)
    assert status == 200, status
    return time.monotonic() - start, len(body.encode())


def main():
    binary = sys.argv[1]
    groups = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as d:
        config = write_config(d, groups)
        start = time.monotonic()
        rc = subprocess.run([binary, "check", "config", config], capture_output=True).returncode
        print("check config: %.2f s, exit %d" % (time.monotonic() - start, rc))
        start = time.monotonic()
        with Agent(binary, config=config) as agent:
            print("start-up until ready: %.2f s" % (time.monotonic() - start))
            agent.signal(signal.SIGHUP)
            start = time.monotonic()
            agent.wait_for(lambda: agent.logs().count("config reloaded") >= 1, timeout=120,
                           what="reload")
            print("reload (SIGHUP until logged): %.2f s" % (time.monotonic() - start))
            for path in ("/metrics", "/api/v1/groups", "/api/v1/decisions"):
                seconds, size = timed_get(agent.url + path)
                print("%s: %.3f s, %.1f KiB" % (path, seconds, size / 1024))
            print("peak RSS: %.0f MiB" % peak_rss_mib(agent.proc.pid))
    print("groups: %d" % groups)


if __name__ == "__main__":
    main()
