#!/usr/bin/env python3
"""e2e: the agent is killed (SIGKILL) mid-scale-up and started again.

Group vse2e-rst: min 1, max 3, action delete; a busy seed (100% CPU) and idle created
members (avg ~1/n, above the 0.1 threshold up to n = 3). The agent
grows the group to 2; it is killed as soon as the first member it created runs,
then restarted with the same config. The restarted agent must rebuild the group
from libvirt (the created member's virtscale metadata): it reports the members
that exist, creates only the one missing member to reach max 3 (no duplicate of
the one made before the kill), and on low load deletes exactly the members it
created before and after the restart, keeping the seed.
"""
import time

from e2e import Timeline, cpu_group_config, log, pool_volumes, run

GROUP = "vse2e-rst"
SEED = GROUP + "-seed"
LOW_QUOTA = 2000


def group_entry(agent, group):
    body = agent.json("/api/v1/groups")
    items = body
    if isinstance(body, dict):
        items = next((v for v in body.values() if isinstance(v, list)), [])
    return next((g for g in items if isinstance(g, dict) and g.get("name") == group), None)


def member_names(entry):
    """Names of the members listed in one /api/v1/groups entry (any reasonable shape)."""
    members = entry.get("members", []) if entry else []
    names = set()
    if isinstance(members, dict):
        for v in members.values():
            if isinstance(v, list):
                names.update(x if isinstance(x, str) else x.get("name", x.get("domain", ""))
                             for x in v)
    else:
        names.update(x if isinstance(x, str) else x.get("name", x.get("domain", ""))
                     for x in members)
    return names


def scenario(h):
    config = cpu_group_config(h, GROUP, 1, 3)
    pool = GROUP + "-pool"
    h.guest(SEED, image="busy")  # 100%: the group wants to grow at once
    agent = h.start_agent(config, tag="before")
    tl = Timeline(h, GROUP + "-")
    if not h.check_eventually("first agent grows the group to 2", lambda: tl.wait_running(2, 90)):
        return
    first = [n for n in tl.running() if n != SEED]
    log("first agent created %s; killing it" % first)
    agent.kill()
    h.check(len(first) == 1, "first agent created one member before the kill", str(first))
    before_restart = dict(tl.poll())

    agent2 = h.start_agent(config, tag="after")
    # The restarted agent must see the member the first one created.
    time.sleep(3)
    entry = group_entry(agent2, GROUP)
    names = member_names(entry)
    h.check(set(before_restart) <= names,
            "restarted agent lists the existing members in /api/v1/groups",
            "listed %s, existing %s; entry: %s" % (sorted(names), sorted(before_restart), entry))
    m = agent2.metrics()
    running_now = len(tl.poll() and tl.running())
    h.check(m.value("virtscale_group_members", group=GROUP, state="running") == running_now,
            "virtscale_group_members{state=running} matches virsh (%d)" % running_now,
            str(m.find("virtscale_group_members", group=GROUP)))

    if not h.check_eventually("restarted agent grows the group to max 3", lambda: tl.wait_running(3, 90)):
        return
    tl.watch(7)
    h.check(len(tl.last) == 3 and len(tl.running()) == 3,
            "exactly 3 members exist at max: none duplicated, none lost", str(tl.last))
    h.check(all(n in tl.last for n in first), "the member created before the kill is kept",
            str(tl.last))
    for n in tl.running():
        if n != SEED:
            meta = h.metadata(n)
            h.check(meta is not None and GROUP in meta, "%s carries virtscale metadata" % n,
                    str(meta))

    log("low load: seed capped at 2%")
    h.set_quota(SEED, LOW_QUOTA)
    if not h.check_eventually("restarted agent shrinks the group to min 1", lambda: tl.wait_running(1, 90)):
        return
    time.sleep(3)
    tl.poll()
    h.check(sorted(tl.last) == [SEED],
            "both created members (before and after the restart) deleted, seed kept",
            str(tl.last))
    vols = pool_volumes(h, pool)
    h.check(vols == ["base.img"], "their volumes are removed", str(vols))
    log("running counts over time: %s" % tl.running_counts())


if __name__ == "__main__":
    run(scenario, __doc__)
