#!/usr/bin/env python3
"""Integration tests of the autoscaler on libvirt's in-process test driver: real
create, start, stop and delete through the agent, observed via /api/v1/groups,
/api/v1/decisions and /metrics.

  test_autoscale.py BINARY
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SOURCE_DIR, Agent, http, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")


class Workdir(harness.Workdir):
    """virtscale.yml, rules.yml and a queue file."""

    def __init__(self, rules, interval="1s"):
        super().__init__()
        self.queue = self.path("queue")
        self.rules = self.path("rules.yml")
        self.config = self.write(
            "virtscale.yml",
            "libvirt:\n  uri: test:///default\n  sample_interval: %s\n"
            "rule_files: [rules.yml]\n"
            "sources:\n  queue:\n    type: file\n    path: queue\n    interval: 500ms\n"
            % interval)
        self.write_rules(rules)

    def write_rules(self, rules):
        self.write("rules.yml", rules.replace("TEMPLATE", TEMPLATE))

    def set_queue(self, value):
        self.write("queue", str(value))


QUEUE_RULES = """
groups:
  - name: q
    template: TEMPLATE
    min: 0
    max: 3
    interval: 1s
    scale_up:
      step: 1
      cooldown: 1s
      when:
        - {metric: "source:queue", per_member_above: 100, for: 1s}
    scale_down:
      step: 1
      cooldown: 1s
      action: %s
      when:
        - {metric: "source:queue", per_member_below: 20, for: 1s}
"""


def group(agent, name):
    for g in agent.json("/api/v1/groups")["data"]:
        if g["name"] == name:
            return g
    raise AssertionError("no group %s" % name)


def running_members(agent, name):
    return sorted(m["name"] for m in group(agent, name)["members"] if m["running"])


def test_queue_scales_up_and_deletes_back_to_min():
    with Workdir(QUEUE_RULES % "delete") as w:
        w.set_queue(0)
        with Agent(BINARY, config=w.config) as agent:
            w.set_queue(1000)  # 1000 per member with 0 running: up, one step at a time, to max 3
            agent.wait_for(lambda: len(running_members(agent, "q")) == 3, timeout=60,
                           what="group q at max")
            g = group(agent, "q")
            assert g["running"] == 3 and g["max"] == 3
            assert all(m["created_by_virtscale"] for m in g["members"])
            samples = agent.wait_for(
                lambda: (lambda s: s if len(values(s, "virtscale_domain_metadata_info", group="q")) == 3
                         else None)(agent.samples()), what="metadata series for 3 members")
            assert values(samples, "virtscale_group_members", group="q", state="running") == [3.0]
            ups = values(samples, "virtscale_scale_actions_total", group="q", direction="up",
                         result="ok")
            assert ups == [3.0], ups  # never above max: exactly three creates
            # Every decision names what it saw and why.
            decisions = agent.json("/api/v1/decisions?limit=200")["data"]
            assert decisions and all("reason" in d and "metrics" in d for d in decisions)
            held = [d for d in decisions if d["group"] == "q" and "max" in d["reason"]]
            assert held, "no decision explains the hold at max"

            w.set_queue(0)  # below 20 per member: down to min 0, deleting
            agent.wait_for(lambda: not group(agent, "q")["members"], timeout=60,
                           what="group q deleted down to 0")
            samples = agent.wait_for(
                lambda: (lambda s: s if not values(s, "virtscale_domain_metadata_info", group="q")
                         else None)(agent.samples()), what="deleted members gone from /metrics")
            assert values(samples, "virtscale_scale_actions_total", group="q", direction="down",
                          result="ok") == [3.0]
            # The driver's own domain was never part of the group and is untouched.
            assert values(samples, "libvirt_domain_info_virtual_cpus", domain="test") == [2.0]


def fill_warm_pool(w, agent):
    """Scales group q (action stop) up to two members and back to 0: returns the pool."""
    w.set_queue(150)  # 150 per member with 0 running -> 1 member, then 150/1 > 100 -> 2
    agent.wait_for(lambda: len(running_members(agent, "q")) == 2, timeout=60,
                   what="two running members")
    w.set_queue(0)
    agent.wait_for(lambda: group(agent, "q")["running"] == 0, timeout=60, what="all stopped")
    g = group(agent, "q")
    assert g["stopped"] == 2, g  # stopped, still defined: the warm pool
    return sorted(m["name"] for m in g["members"])


def test_stop_action_keeps_a_warm_pool_that_is_started_first():
    with Workdir(QUEUE_RULES % "stop") as w:
        with Agent(BINARY, config=w.config) as agent:
            stopped = fill_warm_pool(w, agent)
            w.set_queue(150)
            agent.wait_for(lambda: len(running_members(agent, "q")) == 2, timeout=60,
                           what="warm pool restarted")
            # Scale-up started the stopped members instead of creating new ones.
            assert running_members(agent, "q") == stopped
            kinds = [a["kind"] for d in agent.json("/api/v1/decisions?limit=500")["data"]
                     for a in d.get("actions", []) if d["group"] == "q"]
            assert kinds.count("create") == 2 and kinds.count("start") == 2, kinds


def test_dry_run_changes_nothing():
    with Workdir(QUEUE_RULES % "delete") as w:
        w.set_queue(1000)
        with Agent(BINARY, "--dry-run", config=w.config) as agent:
            decision = agent.wait_for(
                lambda: next((d for d in agent.json("/api/v1/decisions?limit=50")["data"]
                              if d["group"] == "q" and d.get("direction") == "up"), None),
                timeout=30, what="a scale-up decision in dry run")
            assert "dry" in (decision["outcome"] + decision["reason"]).lower(), decision
            # A real create is asynchronous: it would show only in a later sample.
            # Wait for three more samples and three more scale-up decisions (1 s
            # each; a create takes well under one interval on the test driver).
            first = values(agent.samples(), "virtscale_samples_total")[0]

            def later():
                ups = [d for d in agent.json("/api/v1/decisions?limit=200")["data"]
                       if d["group"] == "q" and d.get("direction") == "up"]
                s = agent.samples()
                return s if len(ups) >= 4 and values(s, "virtscale_samples_total")[0] >= first + 3 \
                    else None

            samples = agent.wait_for(later, timeout=30, what="3 more samples and decisions")
            assert values(samples, "libvirt_domains") == [1.0]  # only the driver's "test"
            assert group(agent, "q")["members"] == []
            assert values(samples, "virtscale_scale_actions_total", group="q", direction="up",
                          result="ok") == [0.0], "an action reported ok in dry run"
            assert values(samples, "virtscale_scale_actions_total", group="q", direction="up",
                          result="dry_run")[0] >= 4
            # The latest decision still starts from 0 members: nothing was made meanwhile.
            last = next(d for d in agent.json("/api/v1/decisions?limit=10")["data"]
                        if d["group"] == "q")
            assert (last["members"]["running"], last["members"]["stopped"], last["members"]["active"]) == (0, 0, 0), last


def test_reload_rejects_bad_rules_and_keeps_running_ones():
    with Workdir(QUEUE_RULES % "delete") as w:
        w.set_queue(0)
        with Agent(BINARY, "--web.enable-lifecycle", config=w.config) as agent:
            before = group(agent, "q")
            w.write_rules("groups:\n  - name: q\n    min: 5\n    max: 1\n")
            status, body = http(agent.url + "/-/reload", method="POST", data=b"")
            assert status == 500 and "rules.yml" in body and "min" in body, (status, body)
            samples = agent.samples()
            assert values(samples, "virtscale_config_last_reload_successful") == [0.0]
            assert group(agent, "q")["max"] == before["max"]  # old rules still running
            agent.signal(signal.SIGHUP)  # same bad file through SIGHUP: rejected too
            agent.wait_for(lambda: agent.logs().count("reload rejected") == 2, timeout=10,
                           what="SIGHUP reload rejected")
            assert group(agent, "q")["max"] == before["max"]
            w.write_rules((QUEUE_RULES % "delete").replace("max: 3", "max: 2"))
            status, body = http(agent.url + "/-/reload", method="POST", data=b"")
            assert status == 200, body
            assert group(agent, "q")["max"] == 2
            assert values(agent.samples(), "virtscale_config_last_reload_successful") == [1.0]


def test_every_reload_warns_while_a_restart_only_key_differs():
    with Workdir(QUEUE_RULES % "stop") as w:
        with open(w.config) as f:
            started = f.read()
        with Agent(BINARY, "--web.enable-lifecycle", config=w.config) as agent:
            warning = "changes take effect at restart"
            w.write("virtscale.yml", started + "web: {read_timeout: 7s}\n")
            for reloads in (1, 2):  # the second reload keeps the change: it still is not in force
                status, body = http(agent.url + "/-/reload", method="POST", data=b"")
                assert status == 200, body
                agent.wait_for(lambda: agent.logs().count(warning) == reloads, timeout=10,
                               what="warning %d" % reloads)
            w.write("virtscale.yml", started)  # back to what the server runs: no warning
            status, body = http(agent.url + "/-/reload", method="POST", data=b"")
            assert status == 200, body
            assert agent.logs().count(warning) == 2, agent.logs()


LEFTOVER_NODE = """<node>
  <domain type='test'>
    <name>q-1</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices><disk type='file' device='disk'>
      <source file='/default-pool/q-1-vda.qcow2'/><target dev='vda'/>
    </disk></devices>
  </domain>
  <pool type='dir'>
    <name>default-pool</name>
    <target><path>/default-pool</path></target>
    <volume type='file'><name>base.qcow2</name><capacity unit='MiB'>64</capacity>
      <target><path>/default-pool/base.qcow2</path><format type='qcow2'/></target></volume>
    <volume type='file'><name>q-1-vda.qcow2</name><capacity unit='MiB'>64</capacity>
      <target><path>/default-pool/q-1-vda.qcow2</path><format type='qcow2'/></target></volume>
    <volume type='file'><name>q-4-vda.qcow2</name><capacity unit='MiB'>64</capacity>
      <target><path>/default-pool/q-4-vda.qcow2</path><format type='qcow2'/></target></volume>
  </pool>
</node>
"""
LEFTOVER_TEMPLATE = """<domain type='test'>
  <name>tmpl</name>
  <metadata>
    <vst:volume xmlns:vst="http://virtscale.org/xmlns/template/1.0"
                target="vda" pool="default-pool" base="base.qcow2"/>
  </metadata>
  <memory>65536</memory>
  <os><type>hvm</type></os>
  <devices><disk type='file' device='disk'>
    <source file='/default-pool/base.qcow2'/><target dev='vda'/>
  </disk></devices>
</domain>
"""


def test_leftover_volumes_of_a_killed_create_are_cleaned_at_start():
    """q-4-vda.qcow2 is what a create killed before defining leaves behind;
    q-1-vda.qcow2 is the disk of a defined (never started) member and stays."""
    for dry_run in (True, False):
        with Workdir(QUEUE_RULES % "delete") as w:
            node = os.path.join(w.dir, "node.xml")
            with open(node, "w") as f:
                f.write(LEFTOVER_NODE)
            template = os.path.join(w.dir, "tmpl.xml")
            with open(template, "w") as f:
                f.write(LEFTOVER_TEMPLATE)
            with open(w.config) as f:
                config = f.read().replace("test:///default", "test://" + node)
            with open(w.config, "w") as f:
                f.write(config)
            w.write_rules((QUEUE_RULES % "delete").replace("TEMPLATE", template))
            w.set_queue(0)
            args = ["--dry-run"] if dry_run else []
            with Agent(BINARY, *args, config=w.config) as agent:
                agent.wait_for(lambda: group(agent, "q") is not None, what="group q")
                if dry_run:
                    agent.wait_for(lambda: len(agent.json("/api/v1/decisions")["data"]) > 0,
                                   what="a decision")
                    assert "leftover" not in agent.logs(), agent.logs()
                    continue
                agent.wait_for(lambda: "deleted a leftover volume" in agent.logs(),
                               what="leftover cleanup")
                logs = agent.logs()
                assert "default-pool/q-4-vda.qcow2" in logs, logs
                assert logs.count("deleted a leftover volume") == 1, logs
    print("  leftover q-4-vda.qcow2 deleted at start, q-1's disk kept; nothing in dry run")


REFRESH_RULES = """
groups:
  - name: r
    template: template.xml
    min: 3
    max: 4
    interval: 1s
    refresh: {max_unavailable: 1}
"""


def test_refresh_replaces_members_of_an_older_template_one_at_a_time():
    with Workdir(REFRESH_RULES) as w:
        with open(TEMPLATE) as f:
            template = f.read()
        w.write("template.xml", template)
        with Agent(BINARY, config=w.config) as agent:
            agent.wait_for(lambda: len(running_members(agent, "r")) == 3, timeout=60,
                           what="group r at min 3")
            old = group(agent, "r")
            old_hash = old["template_hash"]
            assert all(m["template_hash"] == old_hash and m["template_current"]
                       for m in old["members"]), old["members"]
            w.write("template.xml", template + "<!-- v2: any edit is a new template -->\n")
            agent.signal(signal.SIGHUP)
            agent.wait_for(lambda: group(agent, "r")["template_hash"] != old_hash, timeout=10,
                           what="reloaded template")
            new_hash = group(agent, "r")["template_hash"]
            start = time.monotonic()
            timeline = []
            lowest = 3

            def refreshed():
                nonlocal lowest
                g = group(agent, "r")
                lowest = min(lowest, g["running"])
                members = ["%s%s" % (m["name"], "" if m["template_current"] else "(old)")
                           for m in g["members"]]
                entry = (g["running"], members)
                if not timeline or timeline[-1][1:] != entry:
                    timeline.append((round(time.monotonic() - start, 1),) + entry)
                return (len(g["members"]) == 3 and g["running"] == 3 and
                        all(m["template_hash"] == new_hash for m in g["members"]))

            agent.wait_for(refreshed, timeout=120, what="every member on the new template")
            # Surge first: never fewer than desired (3) running, let alone 3 - max_unavailable.
            assert lowest >= 3 - 1, timeline
            assert lowest >= 3, timeline
            decisions = [d for d in agent.json("/api/v1/decisions?group=r&limit=500")["data"]
                         if d["refresh"]["replacing"]]
            acts = [(a["kind"], a["domain"], d["refresh"]["replacing"])
                    for d in reversed(decisions) for a in d["actions"]]
            # Each old member: its replacement created, then it is deleted; one swap at a time.
            expected = []
            for m in sorted(old["members"], key=lambda m: m["created_at"]):
                expected += [("create", m["name"]), ("delete", m["name"])]
            assert [(kind, replacing) for kind, _, replacing in acts] == expected, acts
            assert [domain for kind, domain, _ in acts if kind == "delete"] == [
                name for kind, name in expected if kind == "delete"], acts
            assert max(d["refresh"]["due"] for d in decisions) == 3, decisions[-1]
            assert values(agent.samples(), "virtscale_group_refresh_due_members",
                          group="r") == [0.0]
            for entry in timeline:
                print("  t=%5.1fs running=%d members=%s" % (entry[0], entry[1],
                                                           " ".join(entry[2])))
            print("  actions: " + ", ".join("%s %s" % (k, d) for k, d, _ in acts))


def test_refresh_deletes_a_stale_warm_pool_and_creates_instead_of_starting():
    rules = (QUEUE_RULES % "stop").replace("TEMPLATE", "template.xml") + "    refresh: {}\n"
    with Workdir(rules) as w:
        with open(TEMPLATE) as f:
            template = f.read()
        w.write("template.xml", template)
        with Agent(BINARY, config=w.config) as agent:
            pool = fill_warm_pool(w, agent)
            w.write("template.xml", template + "<!-- v2 -->\n")
            agent.signal(signal.SIGHUP)
            agent.wait_for(lambda: not group(agent, "q")["members"], timeout=30,
                           what="the stale warm pool deleted")
            new_hash = group(agent, "q")["template_hash"]
            w.set_queue(150)
            agent.wait_for(lambda: len(running_members(agent, "q")) == 2, timeout=60,
                           what="two members from the new template")
            assert all(m["template_hash"] == new_hash for m in group(agent, "q")["members"])
            decisions = agent.json("/api/v1/decisions?group=q&limit=500")["data"]
            reload_at = max(d["id"] for d in decisions if d["refresh"]["due"] == 2)
            deleted = sorted(a["domain"] for d in decisions for a in d["actions"]
                             if "warm pool" in d["reason"] and a["kind"] == "delete")
            assert deleted == pool, decisions[:5]
            kinds = [a["kind"] for d in decisions if d["id"] > reload_at for a in d["actions"]]
            assert "start" not in kinds and kinds.count("create") == 2, kinds


if __name__ == "__main__":
    sys.exit(run_tests([test_queue_scales_up_and_deletes_back_to_min,
                        test_stop_action_keeps_a_warm_pool_that_is_started_first,
                        test_dry_run_changes_nothing,
                        test_reload_rejects_bad_rules_and_keeps_running_ones,
                        test_every_reload_warns_while_a_restart_only_key_differs,
                        test_leftover_volumes_of_a_killed_create_are_cleaned_at_start,
                        test_refresh_replaces_members_of_an_older_template_one_at_a_time,
                        test_refresh_deletes_a_stale_warm_pool_and_creates_instead_of_starting]))
