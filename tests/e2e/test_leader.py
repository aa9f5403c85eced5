#!/usr/bin/env python3
"""e2e: two controllers of one group on qemu:///system, one etcd, one acting leader.

Group vse2e-ld (min 0, max 6, target tracking: one member per unit of the file source
`demand`, delete on the way down) with `leader_election` on a private etcd, lease_ttl
6s. Controllers A and B run the same config; the test polls `virsh list --all` all
along and counts every member that ever existed (each one is a create).

  demand 1, A then B     A leads and creates 1 member; B is a follower naming A, and
                         its decisions that would act say held_by follower
  kill -9 A, demand 3    B leads within 2 TTLs of the kill and creates the 2 missing
                         members: 3 creates in all, for 3 needed
  A' started             A' (A again) follows B
  SIGSTOP B past its TTL A' leads; demand 5: A' creates 2 (5 members, 5 creates)
  SIGCONT B              B resumes with an old snapshot that wants 2 more, but its
                         lease deadline passed: it is a follower at once, logs no
                         action, and the group stays at 5 with 5 creates in all
  SIGTERM A', demand 4   A' revokes its lease: B leads again and deletes 1 member
"""
import json
import os
import re
import signal
import sys
import time

from e2e import REPO, Skip, log, run, wait_until

sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import etcdserver  # noqa: E402

GROUP = "vse2e-ld"
PREFIX = GROUP + "-"
TTL = 6  # seconds


class Members:
    """Polls the group's domains; every name ever seen is one create."""

    def __init__(self, h):
        self.h = h
        self.ever = {}  # name -> (uuid, first seen, seconds since the test start)
        self.t0 = time.monotonic()
        self.current = set()

    def poll(self):
        self.current = set()
        for name in self.h.virsh("list", "--all", "--name").split():
            if not name.startswith(PREFIX):
                continue
            self.current.add(name)
            if name not in self.ever:
                uuid = self.h.virsh("domuuid", name, check=False).strip()
                self.ever[name] = (uuid, time.monotonic())
                log("timeline %6.1fs: %s appeared (%d now)" %
                    (time.monotonic() - self.t0, name, len(self.current)))
        return self.current

    def wait_count(self, n, timeout):
        wait_until(lambda: len(self.poll()) == n, timeout, "%d members of %s" % (n, GROUP))

    def first_after(self, t):
        times = [seen for (_, seen) in self.ever.values() if seen >= t]
        return min(times) if times else None


def leader(agent):
    return agent.json("/api/v1/leader")["data"]


def action_lines(agent, start_line=0):
    """The agent's 'scale action' log lines (ok, error or cancelled) from line `start_line`."""
    with open(agent.log_path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    return [l for l in lines[start_line:] if "scale action" in l and "skipped" not in l], len(lines)


def creates(lines):
    return sum(1 for l in lines if re.search(r"action\W+create", l) and re.search(r"result\W+ok", l))


def scenario(h):
    if not etcdserver.available():
        raise Skip("etcd is not installed (apt-get install etcd-server)")
    etcd = etcdserver.Etcd(h.workdir).start()
    log("etcd on %s (pid %d)" % (etcd.url, etcd.proc.pid))
    try:
        run_controllers(h, etcd)
    finally:
        for a in h.agents:
            if a.proc is not None and a.proc.poll() is None:
                try:
                    os.kill(a.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
        etcd.stop()


def write_demand(path, n):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.replace(path + ".tmp", path)
    log("demand -> %d" % n)


def run_controllers(h, etcd):
    demand = os.path.join(h.workdir, "demand")
    write_demand(demand, 1)
    template = """<domain type='%s'>
  <name>%stemplate</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <devices><memballoon model='none'/></devices>
</domain>
""" % (h.domain_type, PREFIX)
    rules = """groups:
  - name: %(group)s
    template: ../templates/member.xml
    members: {name_prefix: "%(prefix)s"}
    min: 0
    max: 6
    interval: 1s
    target: {metric: source:demand, per_member_target: 1}
    scale_up: {cooldown: 0s}
    scale_down: {cooldown: 0s, action: delete, shutdown_timeout: 2s}
""" % {"group": GROUP, "prefix": PREFIX}
    config = """libvirt:
  uri: qemu:///system
  sample_interval: 1s
  call_timeout: 5s
rule_files: ["rules/*.yml"]
sources:
  demand: {type: file, path: %(demand)s, interval: 1s}
leader_election:
  etcd: {endpoints: ["%(etcd)s"], key: /virtscale/e2e/leader, lease_ttl: %(ttl)ds}
""" % {"demand": demand, "etcd": etcd.url, "ttl": TTL}
    path = h.write_config(config, rules={"group.yml": rules}, templates={"member.xml": template},
                          tag="leader")
    m = Members(h)

    # -- A leads, B follows ---------------------------------------------------------
    a = h.start_agent(path, tag="A")
    wait_until(lambda: leader(a)["role"] == "leader", 3 * TTL, "A leads")
    b = h.start_agent(path, tag="B")
    wait_until(lambda: leader(b)["role"] == "follower", 3 * TTL, "B follows")
    la, lb = leader(a), leader(b)
    h.check(lb["leader"] == la["identity"] and la["identity"] != lb["identity"],
            "B names A (%s) as the leader" % la["identity"], json.dumps(lb))
    h.check(lb.get("why_not_leader") == "the leader is " + la["identity"],
            "B's /api/v1/leader says why it does not act", json.dumps(lb))
    m.wait_count(1, 60)
    # The domain is listed once defined; A's create is done when A logs it.
    wait_until(lambda: creates(action_lines(a)[0]) == 1, 60, "A's create to finish")
    h.check(len(m.ever) == 1, "A created the one member needed", str(sorted(m.ever)))
    ma, mb = a.metrics(), b.metrics()
    h.check(ma.value("virtscale_leader_election_is_leader") == 1 and
            mb.value("virtscale_leader_election_is_leader") == 0,
            "virtscale_leader_election_is_leader: A 1, B 0")
    h.check(mb.value("virtscale_leader_election_role", role="follower") == 1,
            "B's role series says follower")
    page = b.get("/")
    h.check('id="leader" data-role="follower"' in page and la["identity"] in page,
            "B's landing page shows it follows A")
    h.check(h.promtool_check_metrics(b.get("/metrics")) == "", "B's /metrics lints")

    # -- kill -9 A: B takes over and creates exactly what is missing -----------------
    killed_at = time.monotonic()
    a.kill(signal.SIGKILL)
    write_demand(demand, 3)
    wait_until(lambda: leader(b)["role"] == "leader", 4 * TTL, "B leads after A's kill")
    led_after = time.monotonic() - killed_at
    m.wait_count(3, 60)
    first = m.first_after(killed_at)
    acted_after = (first - killed_at) if first else float("inf")
    log("failover: B leader %.1fs after kill -9 of A, first create %.1fs after (TTL %ds)" %
        (led_after, acted_after, TTL))
    h.check(acted_after <= 2 * TTL,
            "B acted within 2 lease TTLs of A's kill (%.1fs, TTL %ds)" % (acted_after, TTL))
    time.sleep(3)
    m.poll()
    lines_b, _ = action_lines(b)
    lines_a, _ = action_lines(a)
    total = creates(lines_a) + creates(lines_b)
    log("creates: A %d, B %d; members ever %d; needed 3" %
        (creates(lines_a), creates(lines_b), len(m.ever)))
    h.check(len(m.ever) == 3 and len(m.current) == 3 and total == 3,
            "3 creates in all for 3 needed (no double action)",
            "ever %s, logged creates %d" % (sorted(m.ever), total))
    groups = b.json("/api/v1/groups")["data"]
    h.check(groups and groups[0].get("desired") == 3, "B's group wants 3", json.dumps(groups)[:300])

    # -- A' follows; SIGSTOP B past its TTL: A' leads and acts ------------------------
    a2 = h.start_agent(path, tag="A2")
    wait_until(lambda: leader(a2)["role"] == "follower", 3 * TTL, "A' follows B")
    b_identity = leader(b)["identity"]
    stopped_at = time.monotonic()
    os.kill(b.proc.pid, signal.SIGSTOP)
    log("SIGSTOP B (pid %d)" % b.proc.pid)
    write_demand(demand, 5)
    # A' sees the demand while B's lease still runs: it must wait, and say why.
    def a2_held_as_follower():
        return [d for d in a2.json("/api/v1/decisions")["data"]
                if d.get("held_by") == "follower" and
                "the leader is " + b_identity in d.get("reason", "")]
    wait_until(lambda: a2_held_as_follower() or leader(a2)["role"] == "leader", 4 * TTL,
               "A' holds as a follower")
    held = a2_held_as_follower()
    h.check(bool(held), "A' held the scale-up as a follower naming B",
            json.dumps(a2.json("/api/v1/decisions")["data"][:2])[:600])
    if held:
        h.check(all(x.get("result") == "dry_run" for x in held[0].get("actions", [])) and
                held[0].get("actions"), "the follower's actions are dry_run",
                json.dumps(held[0])[:400])
    wait_until(lambda: leader(a2)["role"] == "leader", 4 * TTL, "A' leads while B is stopped")
    log("A' leader %.1fs after SIGSTOP of B" % (time.monotonic() - stopped_at))
    m.wait_count(5, 60)
    _, b_lines_before = action_lines(b)
    # B has been stopped for more than its TTL now.
    while time.monotonic() - stopped_at < TTL + 2:
        time.sleep(0.2)
    resumed_at = time.monotonic()
    os.kill(b.proc.pid, signal.SIGCONT)
    log("SIGCONT B after %.1fs stopped" % (resumed_at - stopped_at))
    lb = leader(b)
    h.check(lb["role"] != "leader", "B is not the leader at once after SIGCONT", json.dumps(lb))
    end = time.monotonic() + 2 * TTL
    while time.monotonic() < end:
        m.poll()
        time.sleep(0.5)
    after, _ = action_lines(b, b_lines_before)
    h.check(after == [], "B ran no action after SIGCONT", "\n".join(after[:5]))
    with open(b.log_path, "rb") as f:
        resumed_lines = f.read().decode("utf-8", "replace").splitlines()[b_lines_before:]
    wanted = [l for l in resumed_lines if "scale action skipped (follower)" in l]
    log("after SIGCONT B planned %d action(s) from its old snapshot and skipped them as a "
        "follower" % len(wanted))
    lb, la2 = leader(b), leader(a2)
    h.check(lb["role"] == "follower" and lb["leader"] == la2["identity"],
            "B follows A' after SIGCONT", json.dumps(lb))
    h.check(lb["transitions"] >= 2, "B counted losing the leadership", json.dumps(lb))
    h.check(len(m.current) == 5 and len(m.ever) == 5,
            "5 members, 5 creates in all for 5 needed", str(sorted(m.ever)))

    # -- SIGTERM A': it revokes its lease, B leads again and acts ---------------------
    a2.stop()
    write_demand(demand, 4)
    wait_until(lambda: leader(b)["role"] == "leader", 2 * TTL, "B leads again after A' stops")
    m.wait_count(4, 60)
    deleted = sorted(set(m.ever) - m.current)
    h.check(len(deleted) == 1, "B deleted one member once it led again", str(deleted))
    log("timeline summary: " + ", ".join(
        "%s at %.1fs" % (n, seen - m.t0) for n, (_, seen) in sorted(m.ever.items(),
                                                                   key=lambda kv: kv[1][1])))


if __name__ == "__main__":
    run(scenario, __doc__)
