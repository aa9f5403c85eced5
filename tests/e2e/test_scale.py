#!/usr/bin/env python3
"""e2e: CPU scale-up and scale-down of a real group on qemu:///system.

Group vse2e-cpu: min 1, max 4, up when avg cpu > 0.1 for 3s, down when < 0.05 for 3s,
cooldown 5s both ways, action delete. The seed (made by the test) boots a busy-loop
disk; members the agent creates boot a halting disk (an overlay of base.img), so the
average is ~1/n with n members and the host spends one core whatever n is. The test
sets the load with `virsh schedinfo vcpu_quota` on the seed.

  seed vse2e-cpu-seed at 2%       -> group holds at 1 (bound: min)
  seed released to 100%           -> 1 -> 2 -> 3 -> 4 (avg 1, .5, .33, .25), one step at
                                     a time; new members carry virtscale metadata and
                                     their own overlay volume
  seed capped at 2% again         -> 4 -> 3 -> 2 -> 1, the created ones deleted with
                                     their volumes, seed kept
`virsh list --all` is polled throughout and the timeline printed.
"""
import json
import time

from e2e import (Failure, Timeline, cpu_group_config, log, pool_volumes, run, volume_backing,
                 wait_until)

GROUP = "vse2e-cpu"
SEED = GROUP + "-seed"
LOW_QUOTA = 2000  # 2% of a 100 ms period


class DecisionWatch:
    """Accumulates decision records of one group across polls (the log is bounded)."""

    def __init__(self, agent, group):
        self.agent = agent
        self.group = group
        self.records = {}

    def poll(self):
        body = self.agent.json("/api/v1/decisions")
        items = body
        if isinstance(body, dict):
            items = next((v for v in body.values() if isinstance(v, list)), [])
        for d in items:
            if isinstance(d, dict) and d.get("group") == self.group:
                self.records[d.get("id", json.dumps(d, sort_keys=True))] = d

    def held_by(self):
        return {str(d.get("held_by", "")) for d in self.records.values()
                if d.get("outcome") == "held"}

    def mentions(self, word):
        return any(word in json.dumps(d) for d in self.records.values())


def scale_actions(m, group, direction):
    return sum(v for (l, v) in m.find("virtscale_scale_actions_total", group=group,
                                      direction=direction))


def scenario(h):
    config = cpu_group_config(h, GROUP, 1, 4)
    pool = GROUP + "-pool"
    h.guest(SEED, image="busy")
    h.set_quota(SEED, LOW_QUOTA)
    agent = h.start_agent(config)
    tl = Timeline(h, GROUP + "-")
    watch = DecisionWatch(agent, GROUP)

    # Phase 0: low load at min: nothing happens.
    tl.watch(8)
    watch.poll()
    h.check(tl.running() == [SEED], "at 2%% load and min 1 only the seed runs",
            str(tl.last))
    m = agent.metrics()
    h.check(m.value("virtscale_group_members", group=GROUP, state="running") == 1,
            "virtscale_group_members{state=running} == 1",
            str(m.find("virtscale_group_members", group=GROUP)))
    cpu = m.value("virtscale_group_metric_value", group=GROUP, metric="cpu:avg")
    h.check(cpu is not None and cpu < 0.05, "group cpu:avg < 0.05 with the seed capped", str(cpu))

    # Phase 1: raise the load.
    log("phase 1: seed released to 100%")
    h.set_quota(SEED, -1)
    if not h.check_eventually("group grows to max 4", lambda: tl.wait_running(4, 150, on_poll=watch.poll)):
        return
    # At max it must stay at 4.
    tl.watch(7)
    watch.poll()
    counts = tl.running_counts()
    log("running counts over time: %s" % counts)
    h.check(counts[-1] == 4, "stays at max 4 while load stays high", str(tl.last))
    ups = [b - a for a, b in zip(counts, counts[1:]) if b > a]
    h.check(all(d == 1 for d in ups) and sorted(set(counts)) == [1, 2, 3, 4],
            "grew one step at a time (1,2,3,4)", str(counts))
    h.check("cooldown" in watch.held_by() or watch.mentions("cooldown"),
            "a decision was held by the cooldown between steps",
            "held_by seen: %s" % sorted(watch.held_by()))
    created = [n for n in tl.running() if n != SEED]
    for name in created:
        meta = h.metadata(name)
        h.check(meta is not None and ("<group>%s</group>" % GROUP in meta.replace(
            "virtscale:", "")), "%s carries virtscale metadata for %s" % (name, GROUP), str(meta))
    h.check(h.metadata(SEED) is None, "the seed (made by the test) has no virtscale metadata")
    vols = pool_volumes(h, pool)
    h.check(all("%s-hda.qcow2" % n in vols for n in created),
            "each created member has its own overlay volume", str(vols))
    backing = {n: volume_backing(h, pool, "%s-hda.qcow2" % n) for n in created}
    h.check(all(b and b.endswith("/base.img") for b in backing.values()),
            "each overlay is backed by base.img", str(backing))
    if h.domain_type == "kvm":
        # The halting boot sector idles at ~0.3% once SeaBIOS has booted it (a few
        # seconds at 100%, longer on a loaded host); SeaBIOS with no bootable disk ~10%.
        def halted():
            burn = {n: h.cpu_time_ns(n) for n in created}
            time.sleep(2)
            return [n for n in created if h.cpu_time_ns(n) - burn[n] < 0.1e9]

        seen = []

        def all_halted():
            seen.append(halted())
            return len(seen[-1]) == len(created)

        try:
            wait_until(all_halted, 40, "created members idle", interval=0)
            h.check(True, "created members booted the halting base disk")
        except Failure:
            h.check(False, "created members booted the halting base disk",
                    "halted: %s of %s" % (seen[-1] if seen else [], created))
    m = agent.metrics()
    h.check(scale_actions(m, GROUP, "up") >= 3, "virtscale_scale_actions_total{direction=up} >= 3",
            str(m.find("virtscale_scale_actions_total", group=GROUP)))
    h.check(m.value("virtscale_group_members", group=GROUP, state="running") == 4,
            "virtscale_group_members{state=running} == 4",
            str(m.find("virtscale_group_members", group=GROUP)))

    # Phase 2: lower the load.
    log("phase 2: seed capped at 2% again")
    h.set_quota(SEED, LOW_QUOTA)
    if not h.check_eventually("group shrinks to min 1", lambda: tl.wait_running(1, 150, on_poll=watch.poll)):
        return
    tl.watch(7)
    counts = tl.running_counts()
    log("running counts over time: %s" % counts)
    peak = counts.index(max(counts))
    downs = [a - b for a, b in zip(counts[peak:], counts[peak + 1:]) if b < a]
    h.check(all(d == 1 for d in downs) and counts[-1] == 1,
            "shrank one step at a time to min 1", str(counts[peak:]))
    h.check(tl.running() == [SEED], "the seed (not created by virtscale) is the one kept",
            str(tl.last))
    h.check(sorted(tl.last) == [SEED], "deleted members are undefined (virsh list --all)",
            str(tl.last))
    vols = pool_volumes(h, pool)
    h.check(vols == ["base.img"], "their volumes are removed, the base kept", str(vols))
    m = agent.metrics()
    h.check(scale_actions(m, GROUP, "down") >= 3,
            "virtscale_scale_actions_total{direction=down} >= 3",
            str(m.find("virtscale_scale_actions_total", group=GROUP)))

    log("timeline:")
    for t, snap in tl.events:
        print("  %7.2fs  %d running  %s" % (t, sum(1 for s in snap.values() if s == "running"),
                                           ", ".join("%s=%s" % kv for kv in sorted(snap.items()))))


if __name__ == "__main__":
    run(scenario, __doc__)
