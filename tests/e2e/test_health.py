#!/usr/bin/env python3
"""e2e: health.replace and before_scale_down hooks on a real libvirtd.

Phase 1, group vse2e-hr: min = max = 2, a template (a qcow2 overlay per member),
`scale_down: {action: delete}`, `health: {checks: [{type: libvirt}], replace: true,
grace_period: 3s, interval: 1s, unhealthy_after: 1}`. Members: the adopted seed
vse2e-hr-seed (defined by the test) and vse2e-hr-1, created by the agent (bound min).

  round A: `virsh destroy` the created member -> it is unhealthy (/api/v1/groups,
           /metrics state="unhealthy"), a replacement is created and runs, then the
           unhealthy one is deleted with its overlay volume
  round B: `virsh destroy` the adopted seed -> replaced the same way, then only
           stopped: it stays defined and keeps its disk

Per round the seconds from the destroy to: unhealthy seen, replacement action
started, replacement running, old member removed are printed with the decision
records (`replacing`, actions, reason). Throughout: never more than N+1 active
members (the agent's count) nor more than N running (virsh), no domain without its
own virtscale ownership record undefined, no disk of a defined domain missing.

Phase 2, a second agent with two groups of two adopted idle guests each, min 1,
max 2, scaling down (`action: stop`) as soon as the average CPU is below 0.5:

  vse2e-hk: before_scale_down writes a start stamp, sleeps 8 s, writes an end stamp;
            the member runs (virsh domstate) until the hook ends, then is stopped
  vse2e-hf: before_scale_down exits 1 with on_failure: abandon; both members keep
            running and the decision records the failed hook
"""
import json
import os
import re
import time
from datetime import datetime

from e2e import Failure, Timeline, log, overlay_template, pool_volumes, run, wait_until

GROUP = "vse2e-hr"
SEED = GROUP + "-seed"
N = 2
HOOK_GROUP = "vse2e-hk"
FAIL_GROUP = "vse2e-hf"
HOOK_SLEEP = 8

REPLACE_RULES = """groups:
  - name: %(group)s
    template: ../templates/member.xml
    members: {name_prefix: "%(group)s-"}
    min: %(n)d
    max: %(n)d
    interval: 1s
    scale_down: {action: delete, shutdown_timeout: 2s}
    health:
      grace_period: 3s
      interval: 1s
      unhealthy_after: 1
      replace: true
      checks: [{type: libvirt}]
"""

HOOK_RULES = """groups:
  - name: %(hk)s
    members: {name_prefix: "%(hk)s-"}
    min: 1
    max: 2
    interval: 1s
    scale_down:
      action: stop
      shutdown_timeout: 2s
      when: [{metric: cpu, aggregate: avg, below: 0.5, for: 1s}]
    hooks:
      before_scale_down:
        command: ["/bin/sh", "%(dir)s/drain.sh", "{domain}"]
        timeout: 60s
  - name: %(hf)s
    members: {name_prefix: "%(hf)s-"}
    min: 1
    max: 2
    interval: 1s
    scale_down:
      action: stop
      cooldown: 2s
      shutdown_timeout: 2s
      when: [{metric: cpu, aggregate: avg, below: 0.5, for: 1s}]
    hooks:
      before_scale_down:
        command: ["/bin/sh", "%(dir)s/refuse.sh", "{domain}"]
        timeout: 10s
        on_failure: abandon
"""

DRAIN_SH = """d=$(dirname "$0")
date +%%s.%%N > "$d/$1.start"
sleep %d
date +%%s.%%N > "$d/$1.end"
echo "drained $1 ($VIRTSCALE_GROUP)"
"""

REFUSE_SH = """echo "drain refused by $1"
exit 1
"""

AGENT_CONFIG = """libvirt:
  uri: qemu:///system
  sample_interval: 1s
  call_timeout: 5s
rule_files: ["rules/*.yml"]
"""


def group(agent, name):
    return next(g for g in agent.json("/api/v1/groups")["data"] if g["name"] == name)


def decisions(agent, name):
    body = agent.json("/api/v1/decisions?group=%s&changes=true&limit=200" % name)
    items = body.get("data", body) if isinstance(body, dict) else body
    if isinstance(items, dict):
        items = next((v for v in items.values() if isinstance(v, list)), [])
    return [d for d in items if isinstance(d, dict) and d.get("group") == name]


def wall(text):
    """Unix seconds of an RFC 3339 time as the agent formats it."""
    t = text.replace("Z", "+00:00")
    return datetime.fromisoformat(t).timestamp()


def abbreviated(d):
    keep = ("id", "time", "outcome", "direction", "held_by", "reason", "replacing", "actions",
            "result", "desired")
    out = {k: d[k] for k in keep if k in d}
    members = d.get("members", {})
    out["members"] = {k: members[k] for k in ("running", "stopped", "unhealthy", "active",
                                              "by_state", "health_failures") if k in members}
    return out


def disks_of(h, name):
    """Source files of a domain's disks (virsh domblklist)."""
    out = h.virsh("domblklist", name, "--details", check=False)
    return [parts[3] for parts in (line.split() for line in out.splitlines())
            if len(parts) >= 4 and parts[1] == "disk" and parts[3] != "-"]


class Watch:
    """Polls virsh, /api/v1/groups and /metrics of the replacement group; keeps the
    invariants (never above N+1 active or N running, no unowned domain undefined,
    no disk of a defined domain missing) and the first time each thing was seen."""

    def __init__(self, h, agent):
        self.h = h
        self.agent = agent
        self.tl = Timeline(h, GROUP + "-")
        self.owned = {}  # name -> True when its metadata records its own UUID
        self.disks = {}  # name -> disk files, for every domain of the host
        self.max_active = 0
        self.max_running = 0
        self.undefined = []  # (name, owned) of members that went
        self.missing_disks = []
        self.group = None
        self.metric_unhealthy = 0

    def own_record(self, name):
        meta = self.h.metadata(name)
        if not meta:
            return False
        uuid = self.h.virsh("domuuid", name, check=False).strip()
        return "<group>%s</group>" % GROUP in meta.replace("virtscale:", "") and \
            uuid and uuid in meta

    def poll(self):
        before = dict(self.tl.last or {})
        snap = self.tl.poll()
        for name in snap:
            if name not in self.owned:
                self.owned[name] = self.own_record(name)
        for name in before:
            if name not in snap:
                self.undefined.append((name, self.owned.get(name)))
        self.max_running = max(self.max_running, len(self.tl.running()))
        for name in self.all_domains():
            if name not in self.disks:
                self.disks[name] = disks_of(self.h, name)
        defined = self.all_domains()
        for name, files in self.disks.items():
            if name in defined:
                for f in files:
                    if not os.path.exists(f) and (name, f) not in self.missing_disks:
                        self.missing_disks.append((name, f))
        self.group = group(self.agent, GROUP)
        self.max_active = max(self.max_active, self.group["active"])
        self.metric_unhealthy = self.agent.metrics().value(
            "virtscale_group_members", group=GROUP, state="unhealthy")
        return snap

    def all_domains(self):
        out = self.h.virsh("list", "--all", "--name")
        return {line.strip() for line in out.splitlines() if line.strip()}

    def member(self, name):
        return next((m for m in self.group["members"] if m["name"] == name), None)


def settled(w):
    w.poll()
    g = w.group
    return (len(w.tl.running()) == N and g["running"] == N and not g["in_flight"] and
            all(m["health"] == "healthy" for m in g["members"] if m["running"]))


def unhealthy_logged(agent, domain, after):
    """Unix time of the agent's first "member unhealthy" line for `domain` after `after`."""
    pat = re.compile(r'^ts=(\S+) .*msg="member unhealthy" .*domain=%s( |$)' % re.escape(domain))
    with open(agent.log_path, errors="replace") as f:
        for line in f:
            m = pat.match(line)
            if m and wall(m.group(1)) >= after:
                return wall(m.group(1))
    return None


def replace_round(h, agent, w, victim, owned):
    """Destroys `victim` from outside and follows its replacement."""
    before = set(w.tl.last)
    log("round: virsh destroy %s (%s)" % (victim, "created by virtscale" if owned else "adopted"))
    t0 = time.time()
    m0 = time.monotonic()
    h.virsh("destroy", victim)
    seen = {}

    def mark(what):
        if what not in seen:
            seen[what] = time.monotonic() - m0
            log("+%.2fs %s" % (seen[what], what))

    def removed():
        snap = w.poll()
        m = w.member(victim)
        if m is not None and m["state"] == "unhealthy":
            mark("unhealthy in /api/v1/groups")
            if "checked" not in seen:
                seen["checked"] = h.check(
                    m["health"] == "unhealthy" and "libvirt" in m["health_output"],
                    "%s: health unhealthy with the libvirt check's output" % victim,
                    json.dumps(m))
        if w.metric_unhealthy == 1:
            mark('/metrics state="unhealthy" == 1')
        new = [n for n in w.tl.running() if n not in before]
        if new:
            mark("replacement %s running (virsh)" % new[0])
            seen.setdefault("new", new[0])
        gone = victim not in snap if owned else (m is not None and m["state"] == "stopped")
        if gone and "new" in seen:
            mark("old member removed")
            return True
        if gone:
            raise Failure("%s removed before its replacement ran" % victim)
        return False

    ok = h.check_eventually("%s is replaced, then removed" % victim,
                            lambda: wait_until(removed, 90, "the replacement of " + victim,
                                               interval=0.25))
    def replacement_records():
        return [d for d in decisions(agent, GROUP) if d.get("replacing") == victim]

    # The member leaves `virsh list` when it is undefined; its delete (volumes
    # next) may still run for a moment: wait until no record is pending.
    try:
        wait_until(lambda: all(d.get("result") != "pending" for d in replacement_records()), 30,
                   "the replacement's actions to finish", interval=0.25)
    except Failure:
        pass  # the checks below name what is missing
    recs = replacement_records()
    up = next((d for d in recs if d.get("direction") == "up" and d.get("actions")), None)
    down = next((d for d in recs if d.get("direction") == "down" and d.get("actions")), None)
    h.check(up is not None and up["actions"][0]["kind"] == "create",
            "a decision with replacing=%s creates the replacement" % victim,
            json.dumps([abbreviated(d) for d in recs]))
    want = "delete" if owned else "stop"
    h.check(down is not None and down["actions"][0]["kind"] == want and
            down["actions"][0]["domain"] == victim and down["actions"][0]["result"] == "ok",
            "a decision with replacing=%s then %ss it" % (victim, want),
            json.dumps([abbreviated(d) for d in recs]))
    if up is not None and down is not None:
        h.check(wall(up["time"]) < wall(down["time"]), "the replacement came first",
                "%s vs %s" % (up["time"], down["time"]))
    if not ok:
        return
    new = seen["new"]
    h.check(w.owned.get(new) is True, "the replacement %s carries its ownership record" % new)
    if owned:
        vols = pool_volumes(h, GROUP + "-pool")
        h.check("%s-hda.qcow2" % victim not in vols, "the deleted member's volume is gone",
                str(vols))
    else:
        h.check(w.tl.last.get(victim) == "shut off", "the adopted %s stays defined" % victim,
                str(w.tl.last))
        h.check(all(os.path.exists(f) for f in w.disks.get(victim, [])) and
                w.disks.get(victim), "the adopted %s keeps its disk" % victim,
                str(w.disks.get(victim)))
    print("timeline of the replacement of %s (s after virsh destroy):" % victim)
    unhealthy = seen.get("unhealthy in /api/v1/groups")
    metric = seen.get('/metrics state="unhealthy" == 1')
    logged = unhealthy_logged(agent, victim, t0)
    if logged is not None:
        print("  unhealthy detected      %6.2f  (agent log: member unhealthy)" % (logged - t0))
    print("  unhealthy seen          %6.2f  (/api/v1/groups; /metrics: %s)" %
          (unhealthy, "%.2f" % metric if metric is not None else "not seen"))
    if up is not None:
        print("  replacement started     %6.2f  (decision %s time)" %
              (wall(up["time"]) - t0, up.get("id")))
    running_at = seen["replacement %s running (virsh)" % new]
    print("  replacement running     %6.2f  (%s)" % (running_at, new))
    if down is not None:
        print("  removal started         %6.2f  (decision %s time)" %
              (wall(down["time"]) - t0, down.get("id")))
    how = "undefined" if owned else "stopped"
    print("  old member removed      %6.2f  (%s)" % (seen["old member removed"], how))
    for d in (up, down):
        if d is not None:
            print("decision: " + json.dumps(abbreviated(d), indent=1))
    wait_until(lambda: settled(w), 30, "the group settles after the replacement")


def phase_replace(h):
    template = overlay_template(h, GROUP)
    rules = REPLACE_RULES % {"group": GROUP, "n": N}
    config = h.write_config(AGENT_CONFIG, rules={"group.yml": rules},
                            templates={"member.xml": template}, tag=GROUP)
    h.guest(SEED, image="idle")
    agent = h.start_agent(config, tag="replace")
    w = Watch(h, agent)
    if not h.check_eventually("the group settles at %d healthy members" % N,
                              lambda: wait_until(lambda: settled(w), 60, "settled group",
                                                 interval=0.5)):
        return
    created = [n for n in w.tl.running() if n != SEED]
    h.check(len(created) == 1 and w.owned.get(created[0]), "the agent created one member",
            str(created))
    h.check(w.owned.get(SEED) is False, "the seed has no ownership record")
    replace_round(h, agent, w, created[0], owned=True)
    replace_round(h, agent, w, SEED, owned=False)
    w.poll()
    h.check(w.max_active <= N + 1, "never more than N+1 = %d active (agent)" % (N + 1),
            str(w.max_active))
    h.check(w.max_running <= N, "never more than N = %d running (virsh)" % N,
            str(w.max_running))
    h.check(all(owned for _, owned in w.undefined),
            "only domains created by virtscale were undefined", str(w.undefined))
    h.check(not w.missing_disks, "no disk of a defined domain disappeared",
            str(w.missing_disks))
    h.check(SEED in w.tl.last, "the adopted seed is still defined", str(w.tl.last))
    agent.stop()


def domstate(h, name):
    return h.virsh("domstate", name, check=False).strip()


def read_stamp(path):
    try:
        with open(path) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def phase_hooks(h):
    d = os.path.join(h.workdir, "hooks")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "drain.sh"), "w") as f:
        f.write(DRAIN_SH % HOOK_SLEEP)
    with open(os.path.join(d, "refuse.sh"), "w") as f:
        f.write(REFUSE_SH)
    rules = HOOK_RULES % {"hk": HOOK_GROUP, "hf": FAIL_GROUP, "dir": d}
    config = h.write_config(AGENT_CONFIG, rules={"hooks.yml": rules}, tag="hooks")
    hk = [h.guest(HOOK_GROUP + "-a", image="idle"), h.guest(HOOK_GROUP + "-b", image="idle")]
    hf = [h.guest(FAIL_GROUP + "-a", image="idle"), h.guest(FAIL_GROUP + "-b", image="idle")]
    agent = h.start_agent(config, tag="hooks")
    # action stop: adopted running members go by name descending.
    victim = hk[1]
    start_file, end_file = os.path.join(d, victim + ".start"), os.path.join(d, victim + ".end")
    states = []  # (unix time, state) while the hook runs and after

    def hook_started():
        return os.path.exists(start_file)

    if not h.check_eventually("the before_scale_down hook starts on %s" % victim,
                              lambda: wait_until(hook_started, 40, "the hook's start file",
                                                 interval=0.1)):
        return
    log("hook started on %s" % victim)
    during_ok = True
    while not os.path.exists(end_file):
        s = domstate(h, victim)
        states.append((time.time(), s))
        if s != "running":
            during_ok = False
        if time.time() - (read_stamp(start_file) or time.time()) > HOOK_SLEEP + 30:
            break
        time.sleep(0.3)
    h.check(during_ok and len(states) >= 5,
            "%s ran throughout the hook (%d domstate polls)" % (victim, len(states)),
            str([s for _, s in states if s != "running"][:5]))

    def stopped():
        s = domstate(h, victim)
        states.append((time.time(), s))
        return s == "shut off"

    h.check_eventually("%s is stopped after the hook" % victim,
                       lambda: wait_until(stopped, 30, victim + " shut off", interval=0.2))
    start, end = read_stamp(start_file), read_stamp(end_file)
    first_off = next((t for t, s in states if s != "running"), None)
    last_running = max((t for t, s in states if s == "running"), default=None)
    h.check(start is not None and end is not None and end - start >= HOOK_SLEEP - 0.5,
            "the hook slept %ds" % HOOK_SLEEP, "%s %s" % (start, end))
    if start and end and first_off:
        h.check(first_off >= end and last_running >= end - 0.5,
                "%s left the running state only after the hook's end stamp" % victim,
                "end %.2f, first not running %.2f" % (end, first_off))
        print("before_scale_down on %s (s after the hook started):" % victim)
        print("  hook end stamp          %6.2f" % (end - start))
        print("  last seen running       %6.2f" % (last_running - start))
        print("  first seen shut off     %6.2f" % (first_off - start))
    h.check(domstate(h, hk[0]) == "running", "the other member %s keeps running" % hk[0])

    # The stop's result is recorded when the actuator's call returns, a moment
    # after libvirt reports the domain shut off.
    def stop_record():
        recs = [r for r in decisions(agent, HOOK_GROUP) if r.get("actions")]
        rec = next((r for r in recs if r["actions"][0]["domain"] == victim), None)
        return recs, rec

    def stop_recorded():
        _, rec = stop_record()
        return rec is not None and rec["actions"][0]["result"] != "pending"

    try:
        wait_until(stop_recorded, 30, "the stop of %s recorded" % victim, interval=0.2)
    except Failure:
        pass  # the check below reports what the record says
    recs, rec = stop_record()
    detail = (rec or {}).get("actions", [{}])[0].get("detail", "")
    h.check(rec is not None and rec["actions"][0]["kind"] == "stop" and
            rec["actions"][0]["result"] == "ok" and "before_scale_down" in detail,
            "the stop's action record names the hook (detail)",
            json.dumps([abbreviated(r) for r in recs]))
    if rec is not None:
        dur = rec["actions"][0].get("duration_seconds", 0)
        h.check(dur >= HOOK_SLEEP - 0.5, "the action's duration includes the hook", str(dur))
        print("decision: " + json.dumps(abbreviated(rec), indent=1))

    # The failing hook: abandon keeps the member.
    def refused():
        return [r for r in decisions(agent, FAIL_GROUP)
                if r.get("actions") and r["actions"][0].get("result") == "error"]

    if h.check_eventually("%s: a scale-down is abandoned by its failing hook" % FAIL_GROUP,
                          lambda: wait_until(refused, 30, "an abandoned scale-down")):
        attempts = refused()
        log("%d abandoned scale-down(s) of %s so far" % (len(attempts), FAIL_GROUP))
        rec = min(attempts, key=lambda r: r.get("id", 0))
        a = rec["actions"][0]
        h.check(a["kind"] == "stop" and "abandon" in a.get("error", "") and
                re.search(r"exit(ed)?\D*1", a.get("error", "")) is not None,
                "the action records the hook's failure and the abandon", json.dumps(a))
        h.check("drain refused by" in a.get("error", "") + a.get("detail", ""),
                "the hook's output is in the action record", json.dumps(a))
        print("decision: " + json.dumps(abbreviated(rec), indent=1))
        h.check(all(domstate(h, n) == "running" for n in hf),
                "both %s members still run" % FAIL_GROUP,
                str({n: domstate(h, n) for n in hf}))
    agent.stop()


def scenario(h):
    t = time.monotonic()
    phase_replace(h)
    log("phase 1 took %.1fs" % (time.monotonic() - t))
    t = time.monotonic()
    phase_hooks(h)
    log("phase 2 took %.1fs" % (time.monotonic() - t))


if __name__ == "__main__":
    run(scenario, __doc__)
