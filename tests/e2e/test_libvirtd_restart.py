#!/usr/bin/env python3
"""e2e: libvirtd dies (SIGKILL) under a running agent and comes back.

Group vse2e-lvd: min 1, max 2, cooldown 5s, a busy seed and idle created members.
The seed is capped at 2% so the group holds at 1. Then the seed is released (load
high, the up condition starts its `for`) and libvirtd is killed at once, kept down
for ~6s and started again; the guests keep running (QEMU outlives libvirtd). Checks, with no agent
restart: `libvirt_up` goes to 0 while libvirtd is down and back to 1; /metrics
keeps answering; sampling resumes (cpu time of the seed grows again); the scale-up
that was due happens exactly once (2 members, one created; the group then holds
at max 2: no action doubled, none lost).
"""
import os
import signal
import subprocess
import time

from e2e import Failure, Timeline, cpu_group_config, log, run, wait_until

GROUP = "vse2e-lvd"
SEED = GROUP + "-seed"


def libvirtd_pid():
    try:
        with open("/run/libvirtd.pid") as f:
            pid = int(f.read().strip())
        with open("/proc/%d/comm" % pid) as f:
            return pid if f.read().strip() == "libvirtd" else None
    except (OSError, ValueError):
        return None


def scenario(h):
    config = cpu_group_config(h, GROUP, 1, 2)
    h.guest(SEED, image="busy")
    h.set_quota(SEED, 2000)
    agent = h.start_agent(config)
    tl = Timeline(h, GROUP + "-")
    wait_until(lambda: agent.metrics().value("libvirt_up") == 1, 20, "libvirt_up == 1")
    time.sleep(4)
    tl.poll()
    h.check(tl.running() == [SEED], "group holds at 1 under low load", str(tl.last))

    pid = libvirtd_pid()
    if pid is None:
        raise Failure("cannot find libvirtd's pid in /run/libvirtd.pid")
    h.set_quota(SEED, -1)
    log("killing libvirtd (pid %d) with SIGKILL" % pid)
    os.kill(pid, signal.SIGKILL)
    down_at = time.monotonic()

    saw_down = []

    def up_is_zero():
        v = agent.metrics().value("libvirt_up")
        saw_down.append(v)
        return v == 0

    h.check_eventually(
        "libvirt_up goes to 0 while libvirtd is down",
        lambda: wait_until(up_is_zero, 20, "libvirt_up == 0 after libvirtd died", interval=0.3),
        lambda: "values seen: %s" % saw_down[-10:])
    # /metrics keeps answering during the outage.
    while time.monotonic() - down_at < 6:
        agent.metrics()
        time.sleep(0.5)
    log("starting libvirtd again")
    r = subprocess.run([os.path.join(h.scripts, "libvirtd.sh"), "start"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    if r.returncode != 0:
        raise Failure("libvirtd did not come back:\n" + r.stdout)
    h.check(agent.running(), "the agent survived the libvirtd outage")

    h.check_eventually("libvirt_up back to 1 without an agent restart",
                       lambda: wait_until(lambda: agent.metrics().value("libvirt_up") == 1, 60,
                                          "libvirt_up == 1 after libvirtd came back"))

    def cpu_of_seed():
        return agent.metrics().value("libvirt_domain_info_cpu_time_seconds_total", domain=SEED)

    c1 = wait_until(cpu_of_seed, 20, "seed cpu time in /metrics")
    time.sleep(3)
    c2 = cpu_of_seed()
    h.check(c2 is not None and c2 > c1 + 1, "sampling resumed: seed cpu time grows",
            "%s -> %s" % (c1, c2))

    if not h.check_eventually("the due scale-up happens after libvirtd is back",
                              lambda: tl.wait_running(2, 90)):
        return
    tl.watch(10)
    created = [n for n in tl.last if n != SEED]
    h.check(len(tl.last) == 2 and len(created) == 1,
            "exactly one member created: the action is neither lost nor doubled", str(tl.last))
    m = agent.metrics()
    ok_ups = sum(v for (l, v) in m.find("virtscale_scale_actions_total", group=GROUP,
                                        direction="up", result="ok"))
    h.check(ok_ups == 1, "virtscale_scale_actions_total{direction=up,result=ok} == 1",
            str(m.find("virtscale_scale_actions_total", group=GROUP)))
    log("running counts over time: %s" % tl.running_counts())


if __name__ == "__main__":
    run(scenario, __doc__)
