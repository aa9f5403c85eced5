#!/usr/bin/env python3
"""Integration tests of the agent core: the real binary on libvirt's test driver
over real HTTP on an ephemeral loopback port.

  test_agent_core.py BINARY [--update-golden]
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, free_port, http, parse_metrics, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
UPDATE_GOLDEN = "--update-golden" in sys.argv
GOLDEN = os.path.join(SOURCE_DIR, "tests", "testdata", "golden", "test_default.metrics")

# Values of these families move with time, load or build; the golden file keeps
# their names and labels, with the value replaced by "<masked>".
VOLATILE = re.compile(
    r"(_seconds|_seconds_total|_timestamp_seconds|_bytes_total|_requests_total|_ratio|"
    r"_errors_total|_drops_total|_packets_total|_duration_seconds_(bucket|sum|count)|"
    r"virtscale_build_info|_events_total|virtscale_samples_total)$")


def masked_exposition(text):
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            out.append(line)
            continue
        name_labels, _, value = line.rpartition(" ")
        # Whether the harness's readiness probe came before the first sample (a
        # 503) depends on how fast that sample was, not on the exposition.
        if name_labels == 'virtscale_http_requests_total{code="503",handler="/-/ready"}':
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name_labels).group(0)
        if VOLATILE.search(name) or name.startswith("virtscale_http_"):
            value = "<masked>"
        if name == "virtscale_build_info":
            name_labels = re.sub(r'(version|libvirt)="[^"]*"', r'\1="<masked>"', name_labels)
        out.append(name_labels + " " + value)
    # Families print in a fixed order per build, but keep the comparison order-free.
    return "\n".join(sorted(out)) + "\n"


def promtool_check(text):
    if not shutil.which("promtool"):
        raise AssertionError("promtool not installed (scripts/install-deps.sh installs it)")
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    problems = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and not problems, "promtool check metrics:\n" + problems


def wait_utilization(agent):
    return agent.wait_for(
        lambda: (lambda s: s if values(s, "virtscale_domain_cpu_utilization_ratio") else None)(
            agent.samples()), what="cpu utilisation (needs two samples)")


def test_default_driver_golden_and_lint():
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        wait_utilization(agent)
        text = agent.metrics()
        promtool_check(text)
        samples = parse_metrics(text)
        assert values(samples, "libvirt_up") == [1.0]
        assert values(samples, "libvirt_domain_info_virtual_cpus", domain="test") == [2.0]
        assert values(samples, "libvirt_domain_info_maximum_memory_bytes", domain="test") == [
            8 * 1024 ** 3]
        util = values(samples, "virtscale_domain_cpu_utilization_ratio", domain="test")
        # The test driver's cpu.time is wall-clock ns: one vCPU-second per second of 2 vCPUs.
        assert len(util) == 1 and 0.3 < util[0] < 0.7, util
        assert values(samples, "virtscale_sample_age_seconds")[0] >= 0
        # The test driver's pool, as `virsh -c test:///default pool-info default-pool`
        # shows it: dir, running, 100 GiB capacity, nothing allocated.
        pool = [l for n, l, _ in samples if n == "libvirt_storage_pool_info"]
        assert pool == [{"storage_pool": "default-pool", "type": "dir", "state": "running"}], pool
        assert values(samples, "libvirt_storage_pool_info", storage_pool="default-pool") == [1.0]
        assert values(samples, "libvirt_storage_pool_capacity_bytes",
                      storage_pool="default-pool") == [100 * 1024 ** 3]
        assert values(samples, "libvirt_storage_pool_allocation_bytes",
                      storage_pool="default-pool") == [0.0]
        assert values(samples, "libvirt_storage_pool_available_bytes",
                      storage_pool="default-pool") == [100 * 1024 ** 3]
        assert values(samples, "virtscale_scrape_collector_success",
                      collector="storage_pools") == [1.0]
        got = masked_exposition(text)
        if UPDATE_GOLDEN or not os.path.exists(GOLDEN):
            os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
            with open(GOLDEN, "w") as f:
                f.write(got)
            if not UPDATE_GOLDEN:
                raise AssertionError("golden file was missing; wrote " + GOLDEN)
        with open(GOLDEN) as f:
            want = f.read()
        if got != want:
            import difflib
            diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                "golden", "got"))
            raise AssertionError("/metrics differs from golden (--update-golden to accept):\n" + diff)


def test_endpoints():
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        assert http(agent.url + "/-/healthy")[0] == 200
        assert http(agent.url + "/-/ready")[0] == 200
        status, body = http(agent.url + "/")
        assert status == 200 and 'href="metrics"' in body, body
        assert http(agent.url + "/nonexistent")[0] == 404
        assert http(agent.url + "/../../etc/passwd")[0] in (400, 404)
        status, _ = http(agent.url + "/-/reload", method="POST", data=b"")
        assert status == 403, status  # lifecycle API is off by default
        groups = agent.json("/api/v1/groups")
        assert groups["status"] == "success" and groups["data"] == [], groups
        assert agent.json("/api/v1/decisions")["data"] == []


def test_thousand_domains_all_exported():
    tmp = tempfile.mkdtemp()
    try:
        node = os.path.join(tmp, "node.xml")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "scripts", "gen-test-node.py"),
                        "1000", node], check=True)
        with Agent(BINARY, "--libvirt.uri=test://" + node) as agent:
            start = time.time()
            text = agent.metrics()
            latency = time.time() - start
            samples = parse_metrics(text)
            domains = {l["domain"] for n, l, _ in samples
                       if n == "libvirt_domain_info_maximum_memory_bytes"}
            assert len(domains) == 1000, len(domains)
            duration = values(samples, "virtscale_sample_duration_seconds")
            print("  1000 domains: %d series, %d bytes, scrape %.1f ms, sample %.3f s" % (
                len(samples), len(text), latency * 1000, duration[0] if duration else -1))
            promtool_check(text)
    finally:
        shutil.rmtree(tmp)


def test_unreachable_uri_is_not_fatal():
    port = free_port()  # nothing listens there
    with Agent(BINARY, "--libvirt.uri=qemu+tcp://127.0.0.1:%d/system" % port) as agent:
        samples = agent.samples()
        assert values(samples, "libvirt_up") == [0.0], values(samples, "libvirt_up")
        time.sleep(1.5)
        assert agent.proc.poll() is None
        assert values(agent.samples(), "libvirt_up") == [0.0]


def test_fleet_hosts_health():
    """hosts: one reachable, one refusing: each has its own health, nothing is fatal,
    and /metrics still lints."""
    refused = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "virtscale.yml")
        with open(config, "w") as f:
            f.write("libvirt: {uri: \"test:///default\", sample_interval: 500ms}\n"
                    "hosts:\n  hv1: test:///default\n"
                    "  hv2: qemu+tcp://127.0.0.1:%d/system\n" % refused)
        with Agent(BINARY, config=config) as agent:
            def down_long_enough():
                hosts = agent.json("/api/v1/hosts")["data"]
                return hosts[1]["unreachable_seconds"] >= 1.0 and hosts[0]["up"] and hosts
            hosts = agent.wait_for(down_long_enough, timeout=20, what="hv2 unreachable 1 s")
            assert [h["name"] for h in hosts] == ["hv1", "hv2"], hosts
            assert hosts[0]["domains"] == 1 and hosts[0]["cpus"] == 16, hosts[0]
            assert hosts[1]["up"] is False and "domains" not in hosts[1], hosts[1]
            text = agent.metrics()
            samples = parse_metrics(text)
            assert values(samples, "virtscale_host_up", host="hv1") == [1.0]
            assert values(samples, "virtscale_host_up", host="hv2") == [0.0]
            assert values(samples, "virtscale_host_unreachable_seconds", host="hv2")[0] >= 1.0
            assert values(samples, "virtscale_host_memory_free_bytes", host="hv2") == []
            assert values(samples, "libvirt_up") == [1.0]  # the agent's own connection
            promtool_check(text)
            status, page = http(agent.url + "/")
            assert status == 200 and 'id="hosts"' in page and 'data-up="0"' in page, page


def test_port_in_use_fails_clearly():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([BINARY, "--libvirt.uri=test:///default",
                            "--web.listen-address=127.0.0.1:%d" % port],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0
        assert "127.0.0.1:%d" % port in p.stderr and "bind" in p.stderr, p.stderr


def test_sigterm_and_sigint_stop_cleanly():
    for sig in (signal.SIGTERM, signal.SIGINT):
        agent = Agent(BINARY, "--libvirt.uri=test:///default").start()
        start = time.time()
        agent.signal(sig)
        code = agent.proc.wait(15)
        assert code == 0, (sig, code, agent.logs())
        assert time.time() - start < 10
        os.unlink(agent.log.name)


def test_version():
    p = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("virtscale "), p


if __name__ == "__main__":
    sys.exit(run_tests([test_version, test_endpoints, test_default_driver_golden_and_lint,
                        test_thousand_domains_all_exported, test_unreachable_uri_is_not_fatal, test_fleet_hosts_health,
                        test_port_in_use_fails_clearly, test_sigterm_and_sigint_stop_cleanly]))
