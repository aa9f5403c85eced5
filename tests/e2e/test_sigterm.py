#!/usr/bin/env python3
"""e2e: SIGTERM stops the agent within 10 s in the middle of a guest's graceful shutdown.

Group vse2e-term: min 0, max 1, action stop, shutdown_timeout 5m. Its one member boots
the idle image, which halts with no OS: it ignores the ACPI shutdown request,
so the scale-down waits for the 5-minute timeout. While the agent waits, it
gets SIGTERM; it must exit within 10 s (systemd's stop timeout is 90 s; ours is
far inside it), log that the stop was cancelled, and leave the member defined.
"""
import os
import signal
import time

from e2e import cpu_group_config, log, run, wait_until

GROUP = "vse2e-term"
MEMBER = GROUP + "-a"
BOUND_SECONDS = 10


def scenario(h):
    # max 1: the one member is the group, so the only action in flight can be its stop
    # (a guest still booting can read above the up threshold for a moment).
    config = cpu_group_config(h, GROUP, 0, 1, action="stop", down_for="1s", down_below=0.5,
                              cooldown="1s")
    rules = os.path.join(os.path.dirname(config), "rules", "group.yml")
    with open(rules) as f:
        text = f.read()
    with open(rules, "w") as f:
        f.write(text.replace("shutdown_timeout: 2s", "shutdown_timeout: 5m"))
    h.guest(MEMBER, image="idle")  # ~0% CPU: below 0.5, so the group scales down
    agent = h.start_agent(config, tag="sigterm")

    def stopping():
        m = agent.metrics()
        return m.value("virtscale_group_action_in_flight", group=GROUP) == 1

    if not h.check_eventually("the scale-down of %s starts" % MEMBER,
                              lambda: wait_until(stopping, 60, "action in flight")):
        return
    time.sleep(2)  # the guest has ignored the request for a while: the agent is waiting
    state = h.virsh("domstate", MEMBER).strip()
    h.check(state == "running", "the guest ignores the graceful shutdown", state)

    started = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    try:
        agent.proc.wait(timeout=60)
    except Exception:  # noqa: BLE001 - judged below
        pass
    elapsed = time.monotonic() - started
    log("agent exited %.2f s after SIGTERM (code %s)" % (elapsed, agent.proc.returncode))
    h.check(agent.proc.returncode is not None and elapsed < BOUND_SECONDS,
            "the agent exits within %d s of SIGTERM during a guest's shutdown" % BOUND_SECONDS,
            "%.2f s, code %s" % (elapsed, agent.proc.returncode))
    h.check(agent.proc.returncode == 0, "it exits cleanly (code 0)", str(agent.proc.returncode))
    tail = agent.log_tail(80)
    h.check("cancelled (agent stopping)" in tail, "the log says the stop was cancelled", tail)
    names = [d for d in h.list_all()]
    h.check(MEMBER in names, "the member stays defined", str(names))


if __name__ == "__main__":
    run(scenario, __doc__)
