#!/usr/bin/env python3
"""e2e: pause and protection survive an agent restart on a real libvirtd.

Group vse2e-lc: min 1, max 3. Two guests match its name prefix (adopted
members). The agent, with --web.enable-lifecycle, pauses the group and
protects one member; the pause and protection are written into the members'
libvirt metadata (virsh shows the element, live and in the persistent config).
The agent is killed (SIGKILL) and started again: the new process reads both
back from libvirt before any API call. Then it resumes the group and the next
process, started again, sees it resumed.
"""
from e2e import cpu_group_config, log, run, wait_until

GROUP = "vse2e-lc"
LIFECYCLE_NS = "http://virtscale.org/xmlns/lifecycle/1.0"
LIFECYCLE = ["--web.enable-lifecycle"]


def post(agent, path):
    import urllib.request
    req = urllib.request.Request(agent.base + path, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def group(agent):
    return next(g for g in agent.json("/api/v1/groups")["data"] if g["name"] == GROUP)


def members_known(agent, n):
    return lambda: len(group(agent)["members"]) == n


def scenario(h):
    # Idle members: the group neither grows nor shrinks while the test looks.
    config = cpu_group_config(h, GROUP, 1, 3, up_above=0.99, down_below=0.0)
    a, b = h.guest(GROUP + "-a", image="idle"), h.guest(GROUP + "-b", image="idle")
    agent = h.start_agent(config, LIFECYCLE, tag="first")
    wait_until(members_known(agent, 2), 30, "both guests are members")
    h.check(post(agent, "/api/v1/groups/%s/pause" % GROUP) == 200, "pause answered 200")
    h.check(post(agent, "/api/v1/groups/%s/members/%s/protect" % (GROUP, b)) == 200,
            "protect answered 200")
    for flags in ((), ("--config",)):
        xml = h.virsh("metadata", b, LIFECYCLE_NS, *flags)
        h.check('paused="true"' in xml and 'protected="true"' in xml,
                "the lifecycle element is in %s of %s" % (flags[0] if flags else "live", b), xml)
    h.check('paused="true"' in h.virsh("metadata", a, LIFECYCLE_NS, "--config"),
            "the pause is stored on the other member too")
    agent.kill()

    agent = h.start_agent(config, LIFECYCLE, tag="second")
    wait_until(members_known(agent, 2), 30, "both members after the restart")
    g = group(agent)
    protected = {m["name"]: m["protected"] for m in g["members"]}
    log("after restart: paused=%s protected=%s" % (g["paused"], protected))
    h.check(g["paused"] is True, "the restarted agent reads the pause from libvirt")
    h.check(protected == {a: False, b: True}, "the restarted agent reads the protection",
            str(protected))
    wait_until(lambda: (group(agent)["last_decision"] or {}).get("held_by") == "paused", 30,
               "a decision held by the pause")
    h.check(post(agent, "/api/v1/groups/%s/resume" % GROUP) == 200, "resume answered 200")
    agent.kill()

    agent = h.start_agent(config, LIFECYCLE, tag="third")
    wait_until(members_known(agent, 2), 30, "both members after the second restart")
    h.check(group(agent)["paused"] is False, "the resume survives a restart too")
    agent.stop()


if __name__ == "__main__":
    run(scenario, __doc__)
