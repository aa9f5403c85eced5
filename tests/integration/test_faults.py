#!/usr/bin/env python3
"""Libvirt faults under a running agent. For each: the agent keeps serving
/metrics, reports the fault in the metrics, recovers by itself, and the
autoscaler takes no action on missing or garbage data.

Test-driver faults (default) run the agent on libvirt's in-process test driver
with fault_shim.c preloaded (see there): a domain whose stats calls error, a
domain whose call hangs longer than call_timeout, domains that disappear between
list and stats, a storage pool list that fails or hangs, creates from a template
that fail (libvirt rejects the XML, the name is taken, the storage pool is full),
and a queue source that reads garbage.

Daemon faults (--daemon, ctest label e2e) run against a real libvirtd that the
test starts for itself (a session daemon as user nobody on a private socket,
serving the test driver; exit 77 when it cannot start, 1 under CI=true): libvirtd killed with
SIGKILL, and libvirtd frozen with SIGSTOP for longer than call_timeout.

  test_faults.py BINARY [--daemon]
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SOURCE_DIR, Agent, build_fault_shim, fault_shim_env, http,  # noqa: E402
                     parse_metrics, run_tests, skip, values)

BINARY = sys.argv[1]
DAEMON = "--daemon" in sys.argv
HERE = os.path.dirname(os.path.abspath(__file__))
TMP = tempfile.mkdtemp(prefix="virtscale-faults-")
FAULTS = os.path.join(TMP, "faults")


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path


def set_faults(*lines):
    write("faults", "".join(line + "\n" for line in lines))


def domain(name, uuid_n):
    return """  <domain type='test'>
    <name>%s</name>
    <uuid>8f2a6f3c-0000-4000-8000-%012d</uuid>
    <memory>262144</memory>
    <currentMemory>262144</currentMemory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
  </domain>
""" % (name, uuid_n)


NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>
  <memory>4194304</memory>
%s  <pool type='dir'>
    <name>tiny</name>
    <uuid>8f2a6f3c-1111-4000-8000-000000000001</uuid>
    <capacity>20971520</capacity>
    <allocation>16777216</allocation>
    <available>4194304</available>
    <target><path>/tiny-pool</path></target>
    <volume type='file'>
      <name>base.img</name>
      <capacity>16777216</capacity>
      <allocation>16777216</allocation>
      <target><path>/tiny-pool/base.img</path><format type='raw'/></target>
    </volume>
  </pool>
</node>
""" % "".join(domain(n, i) for i, n in enumerate(
    ["ok-1", "faulty-1", "slow-1", "gone-1", "gone-2", "clash-1"], 1))

GOOD_TEMPLATE = open(os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")).read()
# Passes `check config` (a <domain> with a type and <os><type>) but libvirt
# refuses to define it.
BAD_XML_TEMPLATE = GOOD_TEMPLATE.replace("<memory unit='MiB'>256</memory>",
                                         "<memory unit='XiB'>256</memory>")
assert BAD_XML_TEMPLATE != GOOD_TEMPLATE
# A per-domain clone of a 16 MiB volume into a pool with 4 MiB free.
FULL_POOL_TEMPLATE = GOOD_TEMPLATE.replace("<devices>", """<devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/tiny-pool/base.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>""").replace("<os>", """<metadata>
    <vst:volume xmlns:vst="http://virtscale.org/xmlns/template/1.0"
                target="vda" pool="tiny" base="base.img" mode="clone"/>
  </metadata>
  <os>""")


def config(groups, sources="", interval="1s", call_timeout="2s", uri=None):
    node = write("node.xml", NODE)
    rules = write("rules.yml", "groups:\n" + groups)
    return write("virtscale.yml", """libvirt:
  uri: "%s"
  sample_interval: %s
  call_timeout: %s
rule_files: ["%s"]
%s""" % (uri or "test://" + node, interval, call_timeout, rules, sources))


def start(shim, cfg, *args):
    env = fault_shim_env(shim, FAULTS)
    return Agent(BINARY, "--log.level=debug", *args, config=cfg, env=env).start()


def actions(samples, group, result=None):
    return sum(v for n, l, v in samples if n == "virtscale_scale_actions_total" and
               l.get("group") == group and (result is None or l.get("result") == result))


def domains_listed(samples):
    return {l["domain"] for n, l, _ in samples if n == "libvirt_domain_info_state"}


class Scraper:
    """Scrapes /metrics in a loop while a fault is on; records latency and failures."""

    def __init__(self, agent):
        self.agent = agent
        self.latencies = []
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            t = time.time()
            try:
                status, _ = http(self.agent.url + "/metrics", timeout=10)
                if status != 200:
                    self.failures.append(status)
            except OSError as e:
                self.failures.append(str(e))
            self.latencies.append(time.time() - t)
            self.stop.wait(0.1)

    def finish(self, what):
        self.stop.set()
        self.thread.join()
        assert not self.failures, "%s: /metrics failed: %s" % (what, self.failures[:5])
        lat = sorted(self.latencies)
        print("  %s: %d scrapes during the fault, all 200, p50 %.1f ms, max %.1f ms" % (
            what, len(lat), lat[len(lat) // 2] * 1000, lat[-1] * 1000))


def hold_group(name, prefix, extra=""):
    """A group that would scale up on any CPU reading: it must hold while data is missing."""
    return """  - name: %s
    template: %s
    members: {name_prefix: "%s"}
    min: 0
    max: 3
    interval: 1s
    on_missing_data: hold
    scale_up:
      cooldown: 1h
      when:
        - {metric: cpu, aggregate: min, above: 0.0001}
%s""" % (name, write("good.xml", GOOD_TEMPLATE), prefix, extra)


# --- test driver faults ------------------------------------------------------

def test_stats_call_errors(shim):
    set_faults("error faulty-")
    cfg = config(hold_group("fg", "faulty-"))
    agent = start(shim, cfg)
    try:
        scraper = Scraper(agent)
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "virtscale_domain_errors", domain="faulty-1") else None)(agent.samples()),
            what="virtscale_domain_errors for faulty-1")
        calls = sorted(l["call"] for n, l, _ in s if n == "virtscale_domain_errors")
        print("  failing calls reported: %s" % calls)
        # Counted by (call, code), with libvirt's text at warning level once per pair.
        counted = {l["call"] for n, l, v in s if n == "virtscale_libvirt_call_errors_total"}
        assert set(calls) <= counted, (calls, counted)
        failing = [l for l in agent.logs().splitlines() if "libvirt call failing" in l]
        assert any("subject=faulty-" in l and "level=warn" in l and "error=" in l
                   for l in failing), failing
        assert values(s, "libvirt_up") == [1.0]
        assert values(s, "libvirt_domain_info_virtual_cpus", domain="ok-1") == [1.0]
        time.sleep(3)  # several evaluations with the member's data missing
        s = agent.samples()
        assert not values(s, "virtscale_domain_cpu_utilization_ratio", domain="faulty-1"), \
            "a made-up utilisation for a domain whose stats failed"
        assert actions(s, "fg") == 0, "acted on missing data"
        scraper.finish("stats errors")
        set_faults()  # the domain answers again
        agent.wait_for(lambda: values(agent.samples(), "virtscale_domain_cpu_utilization_ratio",
                                      domain="faulty-1"), what="faulty-1 recovered")
        assert not values(agent.samples(), "virtscale_domain_errors", domain="faulty-1")
        # With real data the rule fires: the hold above was the missing data's doing.
        agent.wait_for(lambda: actions(agent.samples(), "fg", "ok") >= 1, 20,
                       what="the group acts once data is back")
    finally:
        agent.stop()


def test_bulk_stats_call_fails(shim):
    set_faults("bulkfail test:")
    agent = start(shim, config(hold_group("bg", "nomatch-")))
    try:
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "virtscale_scrape_collector_success", collector="domains") == [0.0]
            else None)(agent.samples()), what="domains collector failing")
        # The bulk call failed; per-domain calls still fill in what they can.
        assert values(s, "libvirt_up") == [1.0]
        assert values(s, "libvirt_domain_info_virtual_cpus", domain="ok-1") == [1.0]
        assert values(s, "virtscale_domain_errors", call="bulk_stats", domain="ok-1") == [1.0]
        errors = values(s, "virtscale_libvirt_call_errors_total", call="bulk_stats")
        assert len(errors) == 1 and errors[0] >= 1, errors
        set_faults()
        agent.wait_for(lambda: values(agent.samples(), "virtscale_scrape_collector_success",
                                      collector="domains") == [1.0], what="domains collector ok")
        lines = agent.logs().splitlines()
        failing = [l for l in lines if "libvirt call failing" in l and "call=bulk_stats" in l]
        recovered = [l for l in lines
                     if "libvirt call no longer failing" in l and "call=bulk_stats" in l]
        print("  bulk stats: %d failed calls, %d warning, %d recovery line" % (
            values(agent.samples(), "virtscale_libvirt_call_errors_total", call="bulk_stats")[0],
            len(failing), len(recovered)))
        assert len(failing) == 1 and len(recovered) == 1, lines[-20:]
    finally:
        agent.stop()


def test_domain_job_in_progress(shim):
    set_faults("job ok-1")
    agent = start(shim, config(hold_group("jg", "nomatch-")))
    try:
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "libvirt_domain_job_info", domain="ok-1") else None)(agent.samples()),
            what="a job on ok-1")
        info = [l for n, l, _ in s if n == "libvirt_domain_job_info"]
        assert info == [{"domain": "ok-1", "type": "unbounded", "operation": "migration_out"}], info
        assert values(s, "libvirt_domain_job_info_time_elapsed_seconds", domain="ok-1") == [12.0]
        assert values(s, "libvirt_domain_job_info_data_remaining_bytes", domain="ok-1") == [2.0 ** 29]
        assert values(s, "libvirt_domain_job_info_memory_dirty_rate_pages_per_second",
                      domain="ok-1") == [2500.0]
        assert values(s, "virtscale_scrape_collector_success", collector="jobs") == [1.0]
        print("  job: %s, elapsed %.0f s, dirty rate %.0f pages/s" % (
            info[0], values(s, "libvirt_domain_job_info_time_elapsed_seconds", domain="ok-1")[0],
            values(s, "libvirt_domain_job_info_memory_dirty_rate_pages_per_second", domain="ok-1")[0]))
        # The job ends: its series go with it.
        set_faults("job nomatch-")
        agent.wait_for(lambda: not values(agent.samples(), "libvirt_domain_job_info"),
                       what="the job's series gone")
    finally:
        agent.stop()


def pool_families(samples):
    return sorted({n for n, _, _ in samples if n.startswith("libvirt_storage_pool_")})


def test_storage_pool_list_fails_or_hangs(shim):
    set_faults("poollist test:")
    cfg = config(hold_group("pg", "nomatch-"))
    agent = start(shim, cfg)
    try:
        scraper = Scraper(agent)
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "virtscale_scrape_collector_success", collector="storage_pools") == [0.0]
            else None)(agent.samples()), what="storage_pools collector failing")
        assert pool_families(s) == [], pool_families(s)
        assert values(s, "libvirt_up") == [1.0]
        assert values(s, "libvirt_domain_info_virtual_cpus", domain="ok-1") == [1.0]
        assert values(s, "virtscale_scrape_collector_success", collector="domains") == [1.0]
        # Several failed samples, one warning: logged when the failure starts, not each time.
        samples_before = values(s, "virtscale_samples_total")[0]
        agent.wait_for(lambda: values(agent.samples(), "virtscale_samples_total")[0] >=
                       samples_before + 3, what="three more failing samples")
        failing = [l for l in agent.logs().splitlines()
                   if "libvirt call failing" in l and "call=list_storage_pools" in l]
        assert len(failing) == 1 and "level=warn" in failing[0], agent.logs()[-3000:]
        errors = values(agent.samples(), "virtscale_libvirt_call_errors_total",
                        call="list_storage_pools")
        assert len(errors) == 1 and errors[0] >= 3, errors

        set_faults()
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "libvirt_storage_pool_info") else None)(agent.samples()), what="pools back")
        recovered = [l for l in agent.logs().splitlines()
                     if "libvirt call no longer failing" in l and "call=list_storage_pools" in l]
        assert len(recovered) == 1, agent.logs()[-3000:]
        assert [l for n, l, _ in s if n == "libvirt_storage_pool_info"] == [
            {"storage_pool": "tiny", "type": "dir", "state": "running"}]
        # As `virsh pool-info tiny` on this node: the test driver gives every
        # pool 100 GiB and counts its volumes (base.img) as allocated.
        assert values(s, "libvirt_storage_pool_capacity_bytes", storage_pool="tiny") == [
            100 * 1024 ** 3]
        assert values(s, "libvirt_storage_pool_allocation_bytes", storage_pool="tiny") == [16777216]
        assert values(s, "libvirt_storage_pool_available_bytes", storage_pool="tiny") == [
            100 * 1024 ** 3 - 16777216]
        assert values(s, "virtscale_scrape_collector_success", collector="storage_pools") == [1.0]

        # A list that outlives call_timeout (2s): abandoned, the pools are absent
        # while it is stuck, the domains keep coming.
        before = values(s, "virtscale_call_timeouts_total")[0]
        set_faults("poolhang test: 4")
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "virtscale_call_timeouts_total")[0] > before else None)(agent.samples()),
            what="pool list timed out")
        s = agent.wait_for(lambda: (lambda s: s if not pool_families(s) else None)(
            agent.samples()), what="pools absent while the list hangs")
        assert values(s, "virtscale_scrape_collector_success", collector="storage_pools") == [0.0]
        assert values(s, "libvirt_domain_info_virtual_cpus", domain="ok-1") == [1.0]
        set_faults()
        agent.wait_for(lambda: values(agent.samples(), "libvirt_storage_pool_info",
                                      storage_pool="tiny"), what="pools back after the hang")
        scraper.finish("storage pool list faults")
    finally:
        agent.stop()


def test_ready_only_after_the_first_sample(shim):
    # The first sample waits 3 s for slow-1's info call (call_timeout 10 s):
    # meanwhile the agent serves, is healthy, and is not ready.
    set_faults("hang slow- 3")
    cfg = config(hold_group("rg", "slow-"), call_timeout="10s")
    env = fault_shim_env(shim, FAULTS)
    agent = Agent(BINARY, config=cfg, env=env).start(wait_ready=False)
    try:
        t0 = time.time()

        def answers(path):
            try:
                return http(agent.url + path, timeout=2)[0]
            except OSError:
                return None  # not listening yet

        agent.wait_for(lambda: answers("/-/healthy") == 200, 10, what="healthy")
        before = []
        while True:
            status = answers("/-/ready")
            if status == 200:
                break
            before.append(status)
            assert time.time() - t0 < 30, "never ready"
            time.sleep(0.1)
        took = time.time() - t0
        assert before and set(before) == {503}, before
        assert took >= 2, "ready after %.1f s, before the 3 s first sample ended" % took
        assert values(agent.samples(), "virtscale_samples_total")[0] >= 1
        print("  /-/ready answered 503 %d times, then 200 after %.1f s" % (len(before), took))
    finally:
        set_faults()
        agent.stop()


def test_call_hangs_longer_than_call_timeout(shim):
    set_faults("hang slow- 4")
    cfg = config(hold_group("sg", "slow-"), call_timeout="1s")
    agent = start(shim, cfg)
    try:
        scraper = Scraper(agent)
        s = agent.wait_for(lambda: (lambda s: s if values(
            s, "virtscale_domain_timed_out", domain="slow-1") == [1.0] else None)(
            agent.samples()), what="slow-1 timed out")
        before = values(s, "virtscale_samples_total")[0]
        time.sleep(3)
        s = agent.samples()
        assert values(s, "virtscale_samples_total")[0] > before, "sampling stalled"
        assert values(s, "libvirt_domain_info_virtual_cpus", domain="ok-1") == [1.0]
        assert actions(s, "sg") == 0, "acted while the member's data was missing"
        print("  stuck calls %s, call timeouts %s" % (values(s, "virtscale_stuck_calls"),
                                                   values(s, "virtscale_call_timeouts_total")))
        scraper.finish("hung call")
        set_faults()
        agent.wait_for(lambda: values(agent.samples(), "virtscale_domain_timed_out",
                                      domain="slow-1") == [0.0], 30, what="slow-1 recovered")
        agent.wait_for(lambda: actions(agent.samples(), "sg", "ok") >= 1, 20,
                       what="the group acts once data is back")
    finally:
        agent.stop()


def test_scale_stamps_stop_at_the_first_call_that_times_out(shim):
    # Every member's metadata write hangs 3 s against a 1 s call_timeout. The
    # group stays in flight while its scale stamps are written: after the first
    # timeout the others are skipped instead of each waiting its own timeout.
    set_faults("metahang stamp- 3")
    group = create_group("stamp", GOOD_TEMPLATE).replace("min: 1\n    max: 1", "min: 4\n    max: 4")
    agent = start(shim, config(group, call_timeout="1s"))
    try:
        agent.wait_for(lambda: "cannot record the scale time" in agent.logs(), 30,
                       what="the scale stamp failure logged")
        line = next(l for l in agent.logs().splitlines() if "cannot record the scale time" in l)
        print("  " + line[:300])
        assert line.count("write scale stamp timed out after 1s") == 1, line
        assert "3 more member(s) skipped" in line, line
        s = agent.samples()
        assert actions(s, "stamp", "ok") == 4, s
        assert values(s, "virtscale_group_action_in_flight", group="stamp") == [0.0]
    finally:
        agent.stop()


def test_domains_vanish_between_list_and_stats(shim):
    set_faults()
    # A group of the two doomed domains that scales down on near-zero CPU: the test
    # driver reports ~1 CPU per vCPU for them, so it acts only if the stats of a
    # listed-then-vanished member were read as 0. Once they are gone the group
    # is empty and there is nothing to act on.
    cfg = config("""  - name: gg
    template: %s
    members: {name_prefix: "gone-"}
    min: 0
    max: 3
    interval: 1s
    on_missing_data: hold
    scale_down:
      cooldown: 1h
      action: stop
      when:
        - {metric: cpu, aggregate: min, below: 0.01}
""" % write("good.xml", GOOD_TEMPLATE))
    agent = start(shim, cfg)
    try:
        s = agent.wait_for(lambda: (lambda s: s if {"gone-1", "gone-2"} <= domains_listed(s) and
                                    len(values(s, "virtscale_domain_cpu_utilization_ratio",
                                               domain="gone-2")) == 1 else None)(agent.samples()),
                           what="gone-* listed with a utilisation")
        for d in ("gone-1", "gone-2"):
            cpu = values(s, "virtscale_domain_cpu_utilization_ratio", domain=d)
            assert cpu and cpu[0] > 0.01, "%s reads %s: the scale-down rule would fire anyway" % (
                d, cpu)
        undefined_before = sum(values(s, "virtscale_domain_events_total", event="undefined"))
        scraper = Scraper(agent)
        set_faults("vanish gone-")
        errors_seen = set()

        def vanished():
            s = agent.samples()
            errors_seen.update(l["domain"] for n, l, _ in s if n == "virtscale_domain_errors")
            return s if not domains_listed(s) & {"gone-1", "gone-2"} else None

        s = agent.wait_for(vanished, what="gone-* dropped")
        assert {"ok-1", "faulty-1"} <= domains_listed(s)
        assert values(s, "libvirt_up") == [1.0]
        time.sleep(2)
        s = agent.samples()
        assert actions(s, "gg") == 0, "acted on vanished members (read as 0 CPU?): %s" % [
            (l, v) for n, l, v in s if n == "virtscale_scale_actions_total" and l["group"] == "gg"]
        assert values(s, "virtscale_group_members", group="gg", state="running") == [0.0]
        # A domain that is gone is not a failing one: no error series for it, ever;
        # its disappearance is counted as an undefine event instead.
        assert not errors_seen & {"gone-1", "gone-2"}, \
            "virtscale_domain_errors for vanished domains: %s" % sorted(errors_seen)
        assert not [l for n, l, _ in s if l.get("domain", "").startswith("gone-")], \
            "series left behind for vanished domains"
        undefined = sum(values(s, "virtscale_domain_events_total", event="undefined"))
        assert undefined - undefined_before == 2, (undefined_before, undefined)
        print("  vanished domains: no error series, %d undefined events, no action" %
              (undefined - undefined_before))
        scraper.finish("vanishing domains")
        set_faults()
        assert agent.proc.poll() is None
    finally:
        agent.stop()


def create_group(name, template_text, prefix=None):
    return """  - name: %s
    template: %s
    members: {name_prefix: "%s"}
    min: 1
    max: 1
    interval: 1s
    scale_up:
      cooldown: 2s
""" % (name, write(name + ".xml", template_text), prefix or name + "-")


def test_create_from_template_fails(shim):
    set_faults("poolfull tiny")
    groups = (create_group("badxml", BAD_XML_TEMPLATE) + create_group("full", FULL_POOL_TEMPLATE) +
              # New members are named clash-1, ...; clash-1 exists but is no member.
              create_group("clash", GOOD_TEMPLATE, prefix="clashmember-"))
    cfg = config(groups)
    agent = start(shim, cfg)
    try:
        scraper = Scraper(agent)
        s = agent.wait_for(lambda: (lambda s: s if all(
            actions(s, g, "error") >= 1 for g in ("badxml", "full")) and actions(s, "clash") >= 1
            else None)(agent.samples()),
            40, what="failed creates reported")
        groups_json = {g["name"]: g for g in agent.json("/api/v1/groups")["data"]}
        for g in ("badxml", "full", "clash"):
            print("  %s: actions %s; last outcome: %s" % (
                g, {l["result"]: v for n, l, v in s if n == "virtscale_scale_actions_total" and
                    l.get("group") == g and l.get("direction") == "up"},
                str(groups_json[g].get("last_outcome"))[:160]))
        listed = domains_listed(s)
        assert not [d for d in listed if d.startswith(("badxml-", "full-"))], \
            "a failed create left a domain behind: %s" % sorted(listed)
        # The taken name is skipped (clash-2, ...); clash-1 is left alone.
        assert actions(s, "clash") >= 1, "clash group never tried"
        assert "clash-1" in listed
        made = [m["name"] for m in groups_json["clash"].get("members", [])]
        assert "clash-1" not in made, made
        # Retries follow the cooldown instead of hammering libvirt every tick.
        e1 = actions(s, "badxml", "error")
        time.sleep(4)
        e2 = actions(agent.samples(), "badxml", "error")
        assert e2 - e1 <= 3, "retried %d times in 4 s with a 2 s cooldown" % (e2 - e1)
        scraper.finish("failing creates")
        # Recovery: the pool gets space, the template is fixed on disk and reloaded;
        # the next tries (after the failure backoff) succeed.
        set_faults()
        write("badxml.xml", GOOD_TEMPLATE)
        agent.signal(signal.SIGHUP)
        agent.wait_for(lambda: actions(agent.samples(), "full", "ok") >= 1 and actions(
            agent.samples(), "badxml", "ok") >= 1, 90, what="creates succeed after the fix")
        # The next sample lists them.
        agent.wait_for(lambda: (lambda listed: any(d.startswith("badxml-") for d in listed) and any(
            d.startswith("full-") for d in listed))(domains_listed(agent.samples())), 10,
            what="the created domains listed")
    finally:
        agent.stop()


# Queue file content that is no number -> the reason virtscale_source_errors_total
# must count it under (None: no file). "-5" is a number and so is not here.
GARBAGE = [(None, "read"), ("", "parse"), ("abc\n", "parse"), ("NaN\n", "nan"),
           ("+Inf\n", "inf"), ("1e999\n", "parse"), ("3 4\n", "parse")]


def test_garbage_source_data_holds(shim):
    set_faults()
    queue = os.path.join(TMP, "queue")
    # Two groups that act on any reading at all on their side: qlow scales up on
    # a queue below 0.5 (garbage read as 0 would trigger it), qhigh on one above
    # 1000 (+Inf or 1e999 read as infinity would). Neither may act on garbage.
    template = write("good.xml", GOOD_TEMPLATE)
    group = ""
    for name, cond in (("qlow", "below: 0.5"), ("qhigh", "above: 1000")):
        group += """  - name: %s
    template: %s
    min: 0
    max: 3
    interval: 1s
    on_missing_data: hold
    scale_up:
      cooldown: 1h
      when:
        - {metric: "source:q", %s}
""" % (name, template, cond)
    sources = "sources:\n  q:\n    type: file\n    path: %s\n    interval: 1s\n" % queue
    if os.path.exists(queue):
        os.unlink(queue)

    def errors(s):
        return {l.get("reason"): v for n, l, v in s
                if n == "virtscale_source_errors_total" and l.get("source") == "q"}

    agent = start(shim, config(group, sources=sources))
    try:
        scraper = Scraper(agent)
        before = errors(agent.samples())
        for content, reason in GARBAGE:
            if content is None:
                if os.path.exists(queue):
                    os.unlink(queue)
            else:
                write("queue", content)
            # Wait for this content's error to be counted (1 s polls), then let
            # the groups evaluate it for a while.
            s = agent.wait_for(lambda: (lambda s: s if errors(s).get(reason, 0) >= before.get(
                reason, 0) + 2 else None)(agent.samples()), 15,
                what="two %r errors for queue content %r" % (reason, content))
            assert values(s, "virtscale_source_up", source="q") == [0.0], content
            mid = errors(s)  # from here on every poll reads this content
            time.sleep(1.5)
            s = agent.samples()
            assert actions(s, "qlow") == 0 and actions(s, "qhigh") == 0, \
                "acted on source content %r" % content
            after = errors(s)
            grew = {r for r in after if after[r] > mid.get(r, 0)}
            assert grew == {reason}, "content %r counted under %s, want only %r" % (
                content, sorted(grew), reason)
            print("  queue file %-10r -> no action; %s errors %d -> %d" % (
                content, reason, before.get(reason, 0), after[reason]))
            before = after
        scraper.finish("garbage source")
        # The same groups do act on numbers: the holds above were the garbage's doing.
        write("queue", "0\n")
        agent.wait_for(lambda: actions(agent.samples(), "qlow", "ok") >= 1, 20,
                       what="qlow scales up once the source reads 0")
        write("queue", "5000\n")
        agent.wait_for(lambda: actions(agent.samples(), "qhigh", "ok") >= 1, 20,
                       what="qhigh scales up once the source reads 5000")
    finally:
        agent.stop()


# --- real libvirtd faults ----------------------------------------------------
#
# The test starts its own libvirtd: a session daemon run as user nobody with
# every directory under a scratch folder, serving the test driver on a private
# socket (test+unix:///default?socket=...). Killing or freezing it disturbs no
# other libvirtd on the machine.

class PrivateLibvirtd:
    def __init__(self):
        self.dir = os.path.join(TMP, "libvirtd")
        self.proc = None

    @property
    def socket(self):
        return os.path.join(self.dir, "run", "libvirt", "libvirt-sock")

    @property
    def uri(self):
        return "test+unix:///default?socket=" + self.socket

    def start(self, timeout=30):
        for sub in ("run", "home"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        subprocess.run(["chown", "-R", "nobody", self.dir], check=True)
        os.chmod(os.path.join(self.dir, "run"), 0o700)
        os.chmod(TMP, 0o755)
        home = os.path.join(self.dir, "home")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
               "XDG_RUNTIME_DIR": os.path.join(self.dir, "run"),
               "XDG_CONFIG_HOME": os.path.join(home, ".config"),
               "XDG_CACHE_HOME": os.path.join(home, ".cache")}
        self.log = open(os.path.join(TMP, "libvirtd.log"), "a")
        # setpriv execs libvirtd itself: self.proc is the daemon.
        self.proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup",
                                      "--clear-groups", "libvirtd", "--timeout=0"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            if subprocess.run(["virsh", "-c", self.uri, "version"], capture_output=True,
                              timeout=10).returncode == 0:
                return True
            time.sleep(0.2)
        return False

    def pid(self):
        return self.proc.pid

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def daemon_config(daemon):
    # "test" runs; min 1 is met only while libvirt answers. While it does not,
    # the group looks empty: the autoscaler must not create anything then.
    group = """  - name: vsfault
    template: %s
    members: {name_prefix: "test"}
    min: 1
    max: 2
    interval: 1s
    on_missing_data: hold
""" % write("good.xml", GOOD_TEMPLATE)
    return config(group, uri=daemon.uri, call_timeout="2s", interval="1s")


def test_libvirtd_killed(daemon):
    agent = Agent(BINARY, config=daemon_config(daemon)).start()
    try:
        agent.wait_for(lambda: values(agent.samples(), "libvirt_up") == [1.0], what="libvirt up")
        scraper = Scraper(agent)
        daemon.kill()
        agent.wait_for(lambda: values(agent.samples(), "libvirt_up") == [0.0], 30,
                       what="libvirt_up 0 after SIGKILL")
        time.sleep(4)
        s = agent.samples()
        assert actions(s, "vsfault") == 0, "acted while libvirt was down"
        assert daemon.start(), "private libvirtd did not restart"
        agent.wait_for(lambda: values(agent.samples(), "libvirt_up") == [1.0] and values(
            agent.samples(), "libvirt_domain_info_virtual_cpus", domain="test"), 60,
            what="reconnected and sampling after libvirtd restart")
        time.sleep(2)
        assert actions(agent.samples(), "vsfault") == 0, "acted after the reconnect"
        scraper.finish("libvirtd killed")
    finally:
        agent.stop()


def test_libvirtd_frozen_longer_than_call_timeout(daemon):
    agent = Agent(BINARY, config=daemon_config(daemon)).start()
    pid = None
    try:
        agent.wait_for(lambda: values(agent.samples(), "virtscale_domain_cpu_utilization_ratio",
                                      domain="test"), what="sampling")
        scraper = Scraper(agent)
        pid = daemon.pid()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(8)  # call_timeout is 2 s
        s = agent.samples()
        timeouts = values(s, "virtscale_call_timeouts_total")
        up = values(s, "libvirt_up")
        age = values(s, "virtscale_sample_age_seconds")
        print("  frozen 8 s: libvirt_up %s, call timeouts %s, stuck calls %s, sample age %s" % (
            up, timeouts, values(s, "virtscale_stuck_calls"), age))
        assert (timeouts and timeouts[0] > 0) or up == [0.0], "the freeze is not reported"
        assert actions(s, "vsfault") == 0, "acted while libvirt was frozen"
        os.kill(pid, signal.SIGCONT)
        pid = None
        agent.wait_for(lambda: (lambda s: values(s, "libvirt_up") == [1.0] and values(
            s, "virtscale_sample_age_seconds")[0] < 3 and values(
            s, "virtscale_domain_cpu_utilization_ratio", domain="test"))(agent.samples()), 60,
            what="recovered")
        assert actions(agent.samples(), "vsfault") == 0
        scraper.finish("libvirtd frozen")
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        agent.stop()


def main():
    try:
        if DAEMON:
            if not (shutil.which("libvirtd") and shutil.which("setpriv") and os.getuid() == 0):
                return skip("libvirtd (or root to run it as nobody) not available")
            shim = PrivateLibvirtd()
            if not shim.start():
                return skip("libvirtd cannot start here")
            tests = [test_libvirtd_frozen_longer_than_call_timeout, test_libvirtd_killed]
        else:
            tests = [test_stats_call_errors, test_bulk_stats_call_fails, test_domain_job_in_progress,
                     test_storage_pool_list_fails_or_hangs,
                     test_ready_only_after_the_first_sample,
                     test_call_hangs_longer_than_call_timeout,
                     test_scale_stamps_stop_at_the_first_call_that_times_out,
                     test_domains_vanish_between_list_and_stats, test_create_from_template_fails,
                     test_garbage_source_data_holds]
            shim = build_fault_shim(TMP)

        def bind(t):
            f = lambda: t(shim)  # noqa: E731
            f.__name__ = t.__name__
            return f

        code = run_tests([bind(t) for t in tests])
        if DAEMON:
            shim.stop()
        return code
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
