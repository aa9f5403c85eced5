#!/usr/bin/env python3
"""e2e chaos: the real agent against real libvirtd + QEMU while things go wrong.

Group vse2e-chaos: min 1, max 4, interval 1s, target tracking on a `file` source
(the number in the file the test writes is the wanted member count,
per_member_target 1), cooldowns 1s, scale_down action delete, shutdown timeout
1s. Members are made from a template whose `vst:volume` annotation gives each
one a qcow2 overlay `vse2e-chaos-N-hda.qcow2` over base.img (the halting boot
sector) in a transient dir pool, so deleting a member must remove its volume.

Each round (default 20, `--rounds`) sets a new wanted count and does a random
subset of (seeded: `--seed`, default random, printed first so a failure can be
replayed):
  kill      kill -9 of the agent while a scale-up or scale-down is in flight
            (seen as in_flight in /api/v1/groups), then a restart;
  libvirtd  `scripts/libvirtd.sh restart` under the running agent;
  pause     a running member paused by hand (`virsh suspend`), resumed when the
            round settles;
  copy      a member copied by hand: `virsh dumpxml --inactive M`, new name under
            the group's prefix (vse2e-chaos-copyK) and a new UUID, MACs dropped,
            the disk pointed at a qcow2 of its own made in the pool, still
            carrying the original's virtscale metadata (and its volume record),
            `virsh define` (left shut off: the agent may start it);
  fail      a create that fails: the template's base volume hidden for a few
            seconds (renamed, pool refreshed), or the next member name filled
            with a clashing leftover volume.
Invariants, each counted, the test fails when any breaks:
  (1) active members (every state but shut off) never above max: sampled every
      ~200 ms by a background thread polling `virsh list --all`;
  (2) the group settles within [min, max] at the end of every round (bounded);
  (3) no domain without a valid ownership record (metadata naming the group and
      <virtscale:uuid> equal to its own UUID) was undefined by the agent; hand
      copies exist until the test removes them;
  (4) every disk of every domain that was not deleted exists;
  (5) no volume of a deleted member is left behind: after the round settles
      (and the agent had time for its start-up cleanup) every vse2e-chaos-N-*
      volume is a disk of a defined domain;
  (6) no two defined domains share a UUID; member names in /api/v1/groups are
      unique.
The summary lists rounds, seed, checks and violations per invariant and the
chaos actions done; on a violation the agent's decisions of that round are
printed. `--allow-unstamped` accepts the deletion of members the agent made
whose record has no <virtscale:uuid> (agents before ownership by UUID).
"""
import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

from e2e import METADATA_NS, PREFIX, TEMPLATE_NS, URI, Failure, http_get, log, run

GROUP = PREFIX + "chaos"
MEMBER_PREFIX = GROUP + "-"
COPY_PREFIX = GROUP + "-copy"
POOL = GROUP + "-pool"
MIN, MAX = 1, 4
MEMBER_VOLUME = re.compile(r"^%s-(\d+)-" % re.escape(GROUP))
POLL_SECONDS = 0.2
SETTLE_SECONDS = 30  # bound for a round to settle (one failed create costs a 10s backoff)
# Within bounds but with an action still in flight, a round may take longer: after
# a libvirtd restart each of an action's calls may wait its 5s call_timeout.
IN_FLIGHT_SECONDS = 90
CLEANUP_SECONDS = 8  # extra wait for leftover volumes to be cleaned

INVARIANTS = [
    ("1", "active members never above max (sampled)"),
    ("2", "group settles within [min, max] each round"),
    ("3", "no domain without a valid ownership record undefined by the agent"),
    ("4", "every disk of a domain not deleted exists"),
    ("5", "no volume of a deleted member left behind"),
    ("6", "unique UUIDs among defined domains, unique member names in the API"),
]
ACTIONS = ["kill_up", "kill_down", "libvirtd_restart", "pause", "copy", "fail_hidden_base",
           "fail_clash_leftover", "copy_removed_by_test"]

OPTS = None  # the chaos flags (parsed before the harness's own)


def parse_chaos_args():
    """Takes --seed/--rounds/--allow-unstamped off argv; the rest goes to e2e.run."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--allow-unstamped", action="store_true")
    p.add_argument("--time-limit", type=float, default=480,
                   help="start no round after this many seconds (ctest kills at 600)")
    args, rest = p.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2 ** 31)
    return args


def virsh(*args, timeout=30):
    """(returncode, stdout, stderr) of one virsh call; never raises on failure."""
    try:
        r = subprocess.run(["virsh", "-q", "-c", URI] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr.strip()
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %ss" % timeout


def is_active(state):
    return state != "shut off"


class DomInfo:
    """What the test knows of one domain (identity is the UUID)."""

    def __init__(self, name, uuid, meta_group, meta_uuid, disks, meta_volumes):
        self.name = name
        self.uuid = uuid
        self.meta_group = meta_group  # None: no virtscale element
        self.meta_uuid = meta_uuid  # None: no <virtscale:uuid>
        self.disks = disks  # source paths
        self.meta_volumes = meta_volumes  # [(pool, name)] recorded in the element
        self.by_test = False

    def owned(self):
        return self.meta_group == GROUP and self.meta_uuid == self.uuid

    def describe(self):
        return "%s (uuid %s, record: group=%s uuid=%s, disks %s)" % (
            self.name, self.uuid, self.meta_group, self.meta_uuid, self.disks)


def read_domain(name):
    """DomInfo from `virsh dumpxml --inactive`, or None when it cannot be read."""
    rc, out, _ = virsh("dumpxml", "--inactive", name, timeout=15)
    if rc != 0 or not out.strip():
        return None
    try:
        root = ET.fromstring(out)
    except ET.ParseError:
        return None
    dom_uuid = (root.findtext("uuid") or "").strip().lower()
    ns = "{%s}" % METADATA_NS
    inst = root.find("metadata/%sinstance" % ns)
    meta_group = meta_uuid = None
    meta_volumes = []
    if inst is not None:
        meta_group = (inst.findtext(ns + "group") or "").strip()
        u = inst.findtext(ns + "uuid")
        meta_uuid = u.strip().lower() if u is not None else None
        meta_volumes = [(v.get("pool"), v.get("name")) for v in inst.findall(ns + "volume")]
    disks = []
    for src in root.findall("devices/disk/source"):
        path = src.get("file") or src.get("dev")
        if path:
            disks.append(path)
    return DomInfo(name, dom_uuid, meta_group, meta_uuid, disks, meta_volumes)


class Stats:
    def __init__(self):
        self.checks = {k: 0 for k, _ in INVARIANTS}
        self.violations = {k: [] for k, _ in INVARIANTS}  # (round, detail)
        self.actions = {a: 0 for a in ACTIONS}
        self.notes = []  # things worth saying that are not violations
        self.lock = threading.Lock()

    def check(self, inv, ok, round_no, detail="", quiet=False):
        with self.lock:
            self.checks[inv] += 1
            if not ok:
                self.violations[inv].append((round_no, detail))
        if not ok and not quiet:
            log("VIOLATION (%s) round %s: %s" % (inv, round_no, detail))
        return ok

    def total_violations(self):
        return sum(len(v) for v in self.violations.values())


class Monitor(threading.Thread):
    """Polls `virsh list --all` every ~200 ms: checks (1) on every sample, keeps
    DomInfo by UUID and reports each domain that disappears."""

    def __init__(self, stats):
        super().__init__(daemon=True)
        self.stats = stats
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.poll_lock = threading.Lock()  # the thread and the test both poll
        self.round = 0
        self.states = {}  # name -> state, last successful sample
        self.known = {}  # uuid -> DomInfo of defined domains
        self.name_uuid = {}  # name -> uuid
        self.gone = []  # (round, DomInfo) disappeared, not yet judged
        self.samples = 0
        self.failed_samples = 0
        self.max_active = {}  # round -> highest active count sampled
        self.last_change = time.monotonic()
        self.timeline = []  # (t, round, active, {name: state}) on change
        self._last_refresh = 0.0
        self._missing = {}  # uuid -> consecutive samples absent
        self._over = False  # the previous sample was above max
        self.foreign = {}  # vse2e-* names of other tests -> (round, time first seen)
        self.own_probe = PREFIX + "probe-%d" % os.getpid()

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                self.poll_once()
            except Exception as e:  # noqa: BLE001 - the poller must keep going
                log("monitor: %s" % e)
            self.stop_ev.wait(max(0.0, POLL_SECONDS - (time.monotonic() - t0)))

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=10)

    def snapshot(self):
        with self.lock:
            return dict(self.states)

    def active(self):
        return sum(1 for s in self.snapshot().values() if is_active(s))

    def info(self, name):
        with self.lock:
            u = self.name_uuid.get(name)
            return self.known.get(u) if u else None

    def poll_once(self, force_refresh=False):
        with self.poll_lock:
            self._poll(force_refresh)

    def _poll(self, force_refresh):
        rc, out, _ = virsh("list", "--all", timeout=5)
        if rc != 0:
            with self.lock:
                self.failed_samples += 1
                self.last_change = time.monotonic()  # unknown is not steady
            return
        states = {}
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 3 and parts[1].startswith(MEMBER_PREFIX):
                states[parts[1]] = parts[2].strip()
            elif (len(parts) >= 3 and parts[1].startswith(PREFIX) and
                  parts[1] not in self.foreign and parts[1] != self.own_probe):
                # Another e2e test on this libvirtd: its harness removes every
                # vse2e-* domain when it starts, ours included.
                with self.lock:
                    self.foreign[parts[1]] = (self.round, time.monotonic())
                log("monitor: WARNING: another e2e test uses this libvirtd (%s)" % parts[1])
        active = sum(1 for s in states.values() if is_active(s))
        with self.lock:
            rnd = self.round
            self.samples += 1
            self.max_active[rnd] = max(self.max_active.get(rnd, 0), active)
            changed = states != self.states
            self.states = states
            if changed:
                self.last_change = time.monotonic()
                self.timeline.append((time.monotonic(), rnd, active, dict(states)))
        if changed:
            log("virsh list: %d active | %s" % (active, ", ".join(
                "%s=%s" % kv for kv in sorted(states.items()))))
        over = active > MAX
        self.stats.check("1", not over, rnd,
                         "%d active members > max %d: %s" % (active, MAX, sorted(
                             (n, s) for n, s in states.items() if is_active(s))),
                         quiet=over and self._over)  # logged once per episode
        self._over = over
        refresh = force_refresh or time.monotonic() - self._last_refresh > 2.0
        if refresh:
            self._last_refresh = time.monotonic()
        for name in states:
            with self.lock:
                known = self.name_uuid.get(name)
            if known and not refresh:
                continue
            info = read_domain(name)
            if info is None:
                continue
            with self.lock:
                old = self.known.get(info.uuid)
                if old is not None:
                    info.by_test = old.by_test
                    # Keep the record last seen if it vanished (it should not).
                self.known[info.uuid] = info
                self.name_uuid[name] = info.uuid
        # Domains known by UUID whose name is no longer listed, or now names another UUID.
        with self.lock:
            candidates = [i for u, i in self.known.items()
                          if i.name not in states or self.name_uuid.get(i.name) != u]
        for info in candidates:
            # Confirm by UUID (the list may be read while libvirtd starts).
            rc, _, err = virsh("domname", info.uuid, timeout=5)
            if rc == 0:
                continue
            if "ailed to get domain" not in err and "not found" not in err.lower():
                continue  # libvirtd not answering: decide on a later sample
            with self.lock:
                n = self._missing.get(info.uuid, 0) + 1
                self._missing[info.uuid] = n
                if n < 2:
                    continue
                self.known.pop(info.uuid, None)
                self._missing.pop(info.uuid, None)
                if self.name_uuid.get(info.name) == info.uuid:
                    self.name_uuid.pop(info.name, None)
                self.gone.append((self.round, info))
            log("monitor: %s is gone" % info.describe())

    def take_gone(self):
        with self.lock:
            g, self.gone = self.gone, []
            return g

    def defined(self):
        with self.lock:
            return dict(self.known)


class Chaos:
    def __init__(self, h, stats, rng):
        self.h = h
        self.stats = stats
        self.rng = rng
        self.monitor = Monitor(stats)
        self.agent = None
        self.config = None
        self.queue_file = None
        self.pool_dir = None
        self.value = MIN
        self.round = 0
        self.copy_seq = 0
        self.copies = []  # uuids of hand copies alive (made by the test)
        self.made = set()  # uuids of every hand copy the test made
        self.copy_volumes = {}  # copy uuid -> own volume name
        self.removed_by_test = set()  # uuids the test undefined itself
        self.test_volumes = set()  # clash leftovers made by the test (volume names)
        self.paused = []  # names paused by hand this round
        self.base_hidden = False
        self.deleted = []  # (round, DomInfo) legitimately deleted members
        self.decisions = {}  # (agent tag, id) -> decision
        self.round_wall = {}  # round -> (start, end) wall clock
        self.agent_starts = 0
        self.create_errors_seen = 0

    # -- setup ------------------------------------------------------------------------

    def setup(self):
        h = self.h
        self.pool_dir = h.pool(POOL)
        with open(h.images["idle"], "rb") as src, \
                open(os.path.join(self.pool_dir, "base.img"), "wb") as dst:
            dst.write(src.read())
        h.virsh("pool-refresh", POOL)
        self.queue_file = os.path.join(h.workdir, "queue")
        self.write_value(MIN)
        template = """<domain type='%(type)s'>
  <name>%(group)s-template</name>
  <metadata>
    <vst:volume xmlns:vst="%(ns)s" target="hda" pool="%(pool)s" base="base.img" mode="overlay"/>
  </metadata>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='%(dir)s/base.img'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
""" % {"type": h.domain_type, "group": GROUP, "ns": TEMPLATE_NS, "pool": POOL,
            "dir": self.pool_dir}
        rules = """groups:
  - name: %(group)s
    template: ../templates/member.xml
    members: {name_prefix: "%(prefix)s"}
    min: %(min)d
    max: %(max)d
    interval: 1s
    target: {metric: "source:queue", per_member_target: 1, tolerance: 0}
    scale_up:
      cooldown: 1s
    scale_down:
      cooldown: 1s
      action: delete
      shutdown_timeout: 1s
""" % {"group": GROUP, "prefix": MEMBER_PREFIX, "min": MIN, "max": MAX}
        config = """libvirt:
  uri: qemu:///system
  sample_interval: 1s
  call_timeout: 5s
sources:
  queue:
    type: file
    path: %s
    interval: 1s
rule_files: ["rules/*.yml"]
""" % self.queue_file
        self.config = h.write_config(config, rules={"chaos.yml": rules},
                                     templates={"member.xml": template}, tag="chaos")
        self.monitor.start()
        self.start_agent()

    def write_value(self, v):
        tmp = self.queue_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % v)
        os.replace(tmp, self.queue_file)
        self.value = v
        log("queue file: %d (wanted members %d)" % (v, max(MIN, min(MAX, v))))

    # -- agent ------------------------------------------------------------------------

    def start_agent(self):
        self.agent_starts += 1
        self.agent = self.h.start_agent(self.config, tag="%02d" % self.agent_starts)

    def kill_agent(self):
        a = self.agent
        self.save_decisions()
        a.kill(signal.SIGKILL)
        a.stop()  # closes its log
        # Only the live agent's log tail is printed on failure; the files stay.
        self.h.agents.remove(a)
        self.agent = None

    def groups_entry(self):
        if self.agent is None:
            return None
        status, body = http_get(self.agent.base + "/api/v1/groups", timeout=2)
        if status != 200:
            return None
        data = json.loads(body).get("data", [])
        return next((g for g in data if g.get("name") == GROUP), None)

    def save_decisions(self):
        if self.agent is None:
            return
        status, body = http_get(self.agent.base + "/api/v1/decisions?limit=500", timeout=3)
        if status != 200:
            return
        for d in json.loads(body).get("data", []):
            if d.get("group") == GROUP:
                self.decisions[(self.agent_starts, d.get("id"))] = d

    def agent_alive(self):
        return (self.agent is not None and self.agent.running() and
                http_get(self.agent.base + "/-/healthy", timeout=3)[0] == 200)

    # -- chaos actions ------------------------------------------------------------------

    def wait_in_flight(self, timeout):
        """True as soon as the group has an action in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                g = self.groups_entry()
            except (ValueError, OSError):
                g = None
            if g and g.get("in_flight"):
                return True
            time.sleep(0.1)
        return False

    def kill_during(self, direction):
        active = self.monitor.active()
        if direction == "up" and active >= MAX:
            direction = "down"
        if direction == "down" and active <= MIN:
            direction = "up"
        if direction == "up":
            self.write_value(self.rng.randint(active + 1, MAX + 2))
        else:
            self.write_value(self.rng.randint(0, active - 1))
        seen = self.wait_in_flight(8)
        # A create takes well under a second; a delete waits the 1s shutdown timeout.
        delay = self.rng.uniform(0, 0.5 if direction == "up" else 1.6)
        time.sleep(delay)
        log("chaos: kill -9 of the agent during scale-%s (%s, +%.2fs)" % (
            direction, "action in flight" if seen else "no action seen within 8s", delay))
        self.kill_agent()
        self.stats.actions["kill_" + direction] += 1
        if not seen:
            self.stats.notes.append("round %d: kill during scale-%s saw no action in flight" %
                                    (self.round, direction))
        time.sleep(self.rng.uniform(0.2, 1.5))
        self.start_agent()

    def restart_libvirtd(self):
        # Often while the group is changing.
        if self.rng.random() < 0.6:
            self.write_value(self.rng.randint(0, MAX + 1))
            time.sleep(self.rng.uniform(0.5, 2.0))
        log("chaos: libvirtd restart")
        r = subprocess.run([os.path.join(self.h.scripts, "libvirtd.sh"), "restart"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=180)
        if r.returncode != 0:
            # One more try, then give up: without libvirtd nothing else can be checked.
            r = subprocess.run([os.path.join(self.h.scripts, "libvirtd.sh"), "start"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=180)
            if r.returncode != 0:
                raise Failure("libvirtd did not come back after a restart:\n" + r.stdout)
        self.stats.actions["libvirtd_restart"] += 1

    def pause_member(self):
        running = [n for n, s in self.monitor.snapshot().items() if s == "running"]
        if not running:
            log("chaos: pause skipped (nothing running)")
            return
        name = self.rng.choice(sorted(running))
        rc, _, err = virsh("suspend", name)
        if rc != 0:
            log("chaos: pause of %s failed: %s" % (name, err))
            return
        log("chaos: paused %s by hand" % name)
        self.paused.append(name)
        self.stats.actions["pause"] += 1
        # A paused member is active: ask for max so the agent is tempted to overshoot.
        if self.rng.random() < 0.6:
            self.write_value(self.rng.randint(MAX, MAX + 2))

    def remove_copy(self, cuuid):
        """The test's own removal of a hand copy (and the disk it gave it)."""
        info = self.monitor.defined().get(cuuid)
        if cuuid in self.copies:
            self.copies.remove(cuuid)
        if virsh("domname", cuuid)[0] != 0:
            # Already gone: not the test's doing, the monitor reports it.
            log("chaos: copy %s to remove is already gone" % (info.name if info else cuuid))
            return
        self.removed_by_test.add(cuuid)
        name = info.name if info else cuuid
        # The agent may be starting it right now: undefining a running domain only
        # makes it transient, so destroy again until it is gone.
        err = ""
        for _ in range(10):
            virsh("destroy", cuuid)
            err = virsh("undefine", cuuid)[2]
            if virsh("domname", cuuid)[0] != 0:
                err = ""
                break
            time.sleep(0.3)
        vol = self.copy_volumes.pop(cuuid, None)
        if vol and not err:
            virsh("vol-delete", "--pool", POOL, vol)
        log("chaos: test removed its copy %s%s" % (name, " (still there: %s)" % err if err
                                                   else ""))
        self.stats.actions["copy_removed_by_test"] += 1

    def copy_member(self):
        defined = self.monitor.defined()
        originals = [i for i in defined.values()
                     if i.meta_group == GROUP and not i.by_test and
                     not i.name.startswith(COPY_PREFIX)]
        if not originals:
            log("chaos: copy skipped (no member made by the agent)")
            return
        while len(self.copies) >= 2:
            self.remove_copy(self.copies[0])
        orig = self.rng.choice(sorted(originals, key=lambda i: i.name))
        rc, xml, err = virsh("dumpxml", "--inactive", orig.name)
        if rc != 0:
            log("chaos: copy of %s skipped: %s" % (orig.name, err))
            return
        self.copy_seq += 1
        name = "%s%d" % (COPY_PREFIX, self.copy_seq)
        vol = name + "-hda.qcow2"
        rc, _, err = virsh("vol-create-as", POOL, vol, "1M", "--format", "qcow2",
                           "--backing-vol", os.path.join(self.pool_dir, "base.img"),
                           "--backing-vol-format", "raw")
        if rc != 0:
            log("chaos: copy skipped, no volume: %s" % err)
            return
        vol_path = os.path.join(self.pool_dir, vol)
        new_uuid = str(uuidlib.uuid4())
        xml = re.sub(r"<name>[^<]*</name>", "<name>%s</name>" % name, xml, count=1)
        xml = re.sub(r"<uuid>[^<]*</uuid>", "<uuid>%s</uuid>" % new_uuid, xml, count=1)
        xml = re.sub(r"\s*<mac address=[^>]*/>", "", xml)
        xml = re.sub(r"<source file=(['\"])[^'\"]*\1", "<source file='%s'" % vol_path, xml)
        xml = re.sub(r"<driver name='qemu' type='[^']*'", "<driver name='qemu' type='qcow2'", xml)
        xml = re.sub(r"\s*<backingStore[^>]*/>", "", xml)
        path = os.path.join(self.h.workdir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        rc, _, err = virsh("define", path)
        if rc != 0:
            virsh("vol-delete", "--pool", POOL, vol)
            log("chaos: define of copy %s failed: %s" % (name, err))
            return
        self.copies.append(new_uuid)
        self.made.add(new_uuid)
        self.copy_volumes[new_uuid] = vol
        self.monitor.poll_once(force_refresh=True)
        info = self.monitor.defined().get(new_uuid)
        if info is not None:
            info.by_test = True
        log("chaos: copied %s to %s (uuid %s, own disk %s; record still says group %s, "
            "uuid %s, volumes %s)" % (orig.name, name, new_uuid, vol, orig.meta_group,
                                      orig.meta_uuid, orig.meta_volumes))
        self.stats.actions["copy"] += 1
        # Let the agent take the copy into the warm pool, then shrink: the copy must
        # survive, and so must the original's disk.
        if self.rng.random() < 0.7:
            self.write_value(MAX)
            time.sleep(2.5)
            self.write_value(self.rng.randint(0, 1))

    def fail_create_hidden_base(self):
        base = os.path.join(self.pool_dir, "base.img")
        hidden = base + ".hidden"
        self.write_value(MAX + 1)
        os.rename(base, hidden)
        self.base_hidden = True
        virsh("pool-refresh", POOL)
        log("chaos: base volume hidden (creates must fail)")
        self.stats.actions["fail_hidden_base"] += 1
        time.sleep(self.rng.uniform(2.5, 4.0))
        alive = self.agent_alive()
        os.rename(hidden, base)
        self.base_hidden = False
        virsh("pool-refresh", POOL)
        log("chaos: base volume restored")
        if not alive:
            self.stats.notes.append("round %d: agent not healthy with the base hidden" %
                                    self.round)

    def fail_create_clash(self):
        names = set(self.monitor.snapshot())
        n = 1
        while "%s-%d" % (GROUP, n) in names:
            n += 1
        vol = "%s-%d-hda.qcow2" % (GROUP, n)
        rc, _, err = virsh("vol-create-as", POOL, vol, "1M", "--format", "qcow2")
        if rc != 0:
            log("chaos: clash leftover %s not made: %s" % (vol, err))
            return
        self.test_volumes.add(vol)
        log("chaos: clashing leftover volume %s made for the next name" % vol)
        self.stats.actions["fail_clash_leftover"] += 1
        active = self.monitor.active()
        self.write_value(min(MAX, active + 1) if active < MAX else MAX)
        time.sleep(self.rng.uniform(2.0, 3.0))

    # -- settle and check ------------------------------------------------------------

    def resume_paused(self):
        for name in self.paused:
            rc, _, err = virsh("resume", name)
            log("resume %s: %s" % (name, "ok" if rc == 0 else err))
        self.paused = []

    def settle(self):
        """Waits (bounded) until the group is within bounds, idle and steady at the
        wanted count (hand copies it may not delete can keep it above), or steady
        for longer than a failed action's backoff."""
        t0 = time.monotonic()
        slow_noted = False
        while True:
            snap = self.monitor.snapshot()
            active = sum(1 for s in snap.values() if is_active(s))
            copies_active = sum(1 for n, s in snap.items()
                                if is_active(s) and n.startswith(COPY_PREFIX))
            wants = {max(MIN, min(MAX, self.value)),
                     max(MIN, min(MAX, max(self.value, copies_active)))}
            try:
                g = self.groups_entry()
            except (ValueError, OSError):
                g = None
            steady = time.monotonic() - max(self.monitor.last_change, t0)
            idle = g is not None and not g.get("in_flight")
            in_bounds = MIN <= active <= MAX
            want = min(wants)
            if in_bounds and idle and ((active in wants and steady >= 2.0) or steady >= 12.0):
                log("settled in %.1fs: %d active (wanted %d)" % (time.monotonic() - t0, active,
                                                                 want))
                return True, active, snap
            waited = time.monotonic() - t0
            if waited > SETTLE_SECONDS:
                if not (in_bounds and g is not None and g.get("in_flight")):
                    return False, active, snap
                if not slow_noted:
                    slow_noted = True
                    log("in bounds, an action still in flight after %ds: waiting up to %ds" %
                        (SETTLE_SECONDS, IN_FLIGHT_SECONDS))
                    self.stats.notes.append("round %d: an action was in flight for more than "
                                            "%ds" % (self.round, SETTLE_SECONDS))
                if waited > IN_FLIGHT_SECONDS:
                    return False, active, snap
            time.sleep(0.3)

    def explain_unsettled(self):
        """What the agent said about the group when a round did not settle."""
        try:
            g = self.groups_entry()
            status, body = http_get(self.agent.base + "/api/v1/decisions?limit=3", timeout=3)
        except (ValueError, OSError) as e:
            log("  /api/v1 did not answer: %s" % e)
            g, status, body = None, 0, ""
        if g is not None:
            log("  group: in_flight=%s members=%s" % (g.get("in_flight"), json.dumps(
                [(m.get("name"), m.get("state")) for m in g.get("members", [])
                 if isinstance(m, dict)])))
        if status == 200:
            for d in json.loads(body).get("data", []):
                log("  decision %s: %s" % (d.get("id"), json.dumps(d)[:1500]))
        if self.agent is not None:
            log("  agent log tail:\n" + self.agent.log_tail(60))

    def judge_gone(self):
        for rnd, info in self.monitor.take_gone():
            if info.uuid in self.removed_by_test:
                continue
            by_test = info.by_test or info.uuid in self.copy_volumes or info.uuid in self.made
            if info.owned():
                ok = True
            elif by_test:
                ok = False
                why = "hand copy undefined by the agent: %s" % info.describe()
            elif info.meta_group == GROUP and info.meta_uuid is None and OPTS.allow_unstamped:
                ok = True
            elif info.meta_group == GROUP and info.meta_uuid is None:
                ok = False
                why = ("member undefined although its record has no <virtscale:uuid> "
                       "(--allow-unstamped accepts this): %s" % info.describe())
            else:
                ok = False
                why = "domain without a valid ownership record undefined: %s" % info.describe()
            self.stats.check("3", ok, rnd, "" if ok else why)
            if ok or not by_test:
                self.deleted.append((rnd, info))
            if info.uuid in self.copies:
                self.copies.remove(info.uuid)

    def check_round(self, settled, active, snap):
        r = self.round
        st = self.stats
        if not st.check("2", settled and MIN <= active <= MAX, r,
                        "did not settle: %d active, %s" % (active, snap)):
            self.explain_unsettled()
        self.monitor.poll_once(force_refresh=True)
        self.judge_gone()
        defined = self.monitor.defined()
        # (3) hand copies still defined unless the test removed them.
        for cuuid in list(self.copies):
            st.check("3", cuuid in defined, r, "hand copy %s is gone" % cuuid)
        # (4) every disk of every defined domain exists.
        for info in sorted(defined.values(), key=lambda i: i.name):
            for path in info.disks:
                if not os.path.exists(path) and virsh("domname", info.uuid)[0] != 0:
                    continue  # deleted since the poll: judged by (3) next round
                st.check("4", os.path.exists(path), r,
                         "disk %s of %s (still defined) is missing" % (path, info.describe()))
        # (5) member volumes belong to defined domains; deleted members' volumes are gone.
        for vol in list(self.test_volumes):
            users = [i.name for i in defined.values()
                     if os.path.join(self.pool_dir, vol) in i.disks]
            if users:
                st.notes.append("round %d: the test's clash leftover %s is a disk of %s" %
                                (r, vol, users))
                continue
            virsh("vol-delete", "--pool", POOL, vol)
            self.test_volumes.discard(vol)
        leftovers = self.leftover_volumes(defined)
        if leftovers:
            deadline = time.monotonic() + CLEANUP_SECONDS
            while leftovers and time.monotonic() < deadline:
                time.sleep(1)
                defined = self.monitor.defined()
                leftovers = self.leftover_volumes(defined)
        st.check("5", not leftovers, r,
                 "volumes of no defined domain left in pool %s: %s (deleted members this run: "
                 "%s)" % (POOL, leftovers, sorted({i.name for _, i in self.deleted})))
        for rnd, info in self.deleted:
            if rnd != r:
                continue
            for pool, vname in info.meta_volumes:
                path = os.path.join(self.pool_dir, vname)
                users = [i.name for i in defined.values() if path in i.disks]
                if pool == POOL and not users:
                    st.check("5", not os.path.exists(path), r,
                             "volume %s of deleted member %s left behind" % (vname, info.name))
        # (6) UUIDs unique; names unique in the API.
        rc, out, _ = virsh("list", "--all", "--uuid")
        if rc == 0:
            uuids = [u.strip() for u in out.splitlines() if u.strip()]
            dups = sorted({u for u in uuids if uuids.count(u) > 1})
            st.check("6", not dups, r, "UUIDs shared by several domains: %s" % dups)
        by_uuid = {}
        for info in defined.values():
            by_uuid.setdefault(info.uuid, []).append(info.name)
        st.check("6", all(len(v) == 1 for v in by_uuid.values()), r,
                 "domains sharing a UUID: %s" % {u: v for u, v in by_uuid.items() if len(v) > 1})
        g = self.groups_entry()
        if g is not None:
            names = [m.get("name") if isinstance(m, dict) else m for m in g.get("members", [])]
            st.check("6", len(names) == len(set(names)), r,
                     "member names listed twice in /api/v1/groups: %s" % names)
        # The agent survives whatever the round did.
        alive = self.agent_alive()
        if not alive:
            st.notes.append("round %d: agent not alive/healthy at the end of the round" % r)
            raise Failure("round %d: the agent died:\n%s" % (
                r, self.agent.log_tail() if self.agent else "(no agent)"))

    def leftover_volumes(self, defined):
        rc, out, _ = virsh("pool-refresh", POOL)
        rc, out, _ = virsh("vol-list", POOL)
        if rc != 0:
            return []
        used = set()
        for info in defined.values():
            used.update(info.disks)
        vols = [line.split()[0] for line in out.splitlines() if line.strip()]
        return sorted(v for v in vols if MEMBER_VOLUME.match(v) and v not in self.test_volumes
                      and os.path.join(self.pool_dir, v) not in used)

    # -- rounds ------------------------------------------------------------------------

    def run_round(self, r):
        self.round = r
        with self.monitor.lock:
            self.monitor.round = r
        wall0 = time.time()
        # One generator per round, the plan drawn first: a replay with the same seed
        # does the same actions in the same order in every round, whatever the
        # earlier rounds found (later draws also follow the group's state).
        self.rng = random.Random("%d/%d" % (OPTS.seed, r))
        plan = []
        if self.rng.random() < 0.45:
            plan.append(self.rng.choice(["kill_up", "kill_down"]))
        if self.rng.random() < 0.15:
            plan.append("libvirtd_restart")
        if self.rng.random() < 0.35:
            plan.append("pause")
        if self.rng.random() < 0.35:
            plan.append("copy")
        if self.rng.random() < 0.3:
            plan.append(self.rng.choice(["fail_hidden_base", "fail_clash_leftover"]))
        if not plan:
            plan.append(self.rng.choice(["kill_up", "kill_down", "pause", "copy"]))
        self.rng.shuffle(plan)
        log("=== round %d/%d: %s ===" % (r, OPTS.rounds, ", ".join(plan)))
        # A new wanted count, away from where the group is.
        if self.monitor.active() <= 2:
            self.write_value(self.rng.randint(3, MAX + 2))
        else:
            self.write_value(self.rng.randint(0, 2))
        time.sleep(self.rng.uniform(0.3, 1.0))
        for action in plan:
            if action == "kill_up":
                self.kill_during("up")
            elif action == "kill_down":
                self.kill_during("down")
            elif action == "libvirtd_restart":
                self.restart_libvirtd()
            elif action == "pause":
                self.pause_member()
            elif action == "copy":
                self.copy_member()
            elif action == "fail_hidden_base":
                self.fail_create_hidden_base()
            elif action == "fail_clash_leftover":
                self.fail_create_clash()
            time.sleep(self.rng.uniform(0.2, 0.8))
        self.resume_paused()
        # Mark copies seen since their define.
        for cuuid in self.copies:
            info = self.monitor.defined().get(cuuid)
            if info is not None:
                info.by_test = True
        if self.rng.random() < 0.25 and self.copies:
            self.remove_copy(self.rng.choice(self.copies))
        settled, active, snap = self.settle()
        self.check_round(settled, active, snap)
        self.save_decisions()
        self.round_wall[r] = (wall0, time.time())
        log("round %d done: max active sampled %d, %d active now" % (
            r, self.monitor.max_active.get(r, 0), active))

    def cleanup(self):
        if self.base_hidden:
            base = os.path.join(self.pool_dir, "base.img")
            try:
                os.rename(base + ".hidden", base)
            except OSError:
                pass
        self.resume_paused()
        # libvirtd must answer for the harness to remove domains and the pool.
        script = os.path.join(self.h.scripts, "libvirtd.sh")
        if subprocess.run([script, "status"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run([script, "start"], timeout=180)
        if self.agent is not None:
            self.save_decisions()
            self.agent.stop()
        self.monitor.stop()
        for vol in list(self.test_volumes) + list(self.copy_volumes.values()):
            virsh("vol-delete", "--pool", POOL, vol)

    # -- report ------------------------------------------------------------------------

    def print_decisions(self, rounds):
        for r in sorted(rounds):
            if r not in self.round_wall:
                continue
            t0, t1 = self.round_wall[r]
            lo = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 - 1))
            hi = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t1 + 1))
            print("decisions of round %d (%s .. %s, scale actions and holds that are not "
                  "'no change'):" % (r, lo, hi))
            last = None
            for key in sorted(self.decisions, key=lambda k: (self.decisions[k].get("time", ""),
                                                             k)):
                d = self.decisions[key]
                t = d.get("time", "")[:19]
                if not (lo <= t <= hi):
                    continue
                if d.get("outcome") == "none" and not d.get("actions"):
                    continue
                # Repeated holds (cooldown, bound, in flight) once per run of them.
                sig = (d.get("outcome"), d.get("held_by"), d.get("members"))
                if not d.get("actions") and sig == last:
                    continue
                last = sig
                acts = "; ".join("%s %s: %s%s" % (a.get("kind"), a.get("domain"), a.get("result"),
                                                   (" (%s)" % a["error"]) if a.get("error") else "")
                                 for a in d.get("actions", []))
                print("  agent#%d %s %s%s members=%s desired=%s: %s%s" % (
                    key[0], d.get("time"), d.get("outcome"),
                    ("/" + d["held_by"]) if d.get("held_by") else "", d.get("members"),
                    d.get("desired"), d.get("reason", "")[:200], (" | " + acts) if acts else ""))

    def summary(self, rounds_done):
        st = self.stats
        print("")
        print("chaos summary: %d of %d rounds, seed %d (replay: --seed %d --rounds %d)" % (
            rounds_done, OPTS.rounds, OPTS.seed, OPTS.seed, OPTS.rounds))
        print("  domain type %s; %d virsh samples (%d failed while libvirtd was down), "
              "%d agent starts" % (self.h.domain_type, self.monitor.samples,
                                   self.monitor.failed_samples, self.agent_starts))
        for key, what in INVARIANTS:
            print("  (%s) %-68s checks %6d  violations %d" % (key, what, st.checks[key],
                                                                 len(st.violations[key])))
        print("  chaos actions: %s" % ", ".join("%s %d" % (a, st.actions[a]) for a in ACTIONS))
        print("  members deleted by the agent: %d; max active per round: %s" % (
            len(self.deleted), [self.monitor.max_active.get(r, 0)
                                for r in range(1, rounds_done + 1)]))
        for n in st.notes:
            print("  note: %s" % n)
        if self.monitor.foreign:
            print("  WARNING: other e2e tests used this libvirtd during the run: %s" % ", ".join(
                "%s (round %d)" % (n, r) for n, (r, _) in sorted(self.monitor.foreign.items())))
        results = {}
        for d in self.decisions.values():
            for a in d.get("actions", []):
                k = (a.get("kind"), a.get("result"))
                results[k] = results.get(k, 0) + 1
        print("  agent actions in the decisions kept: %s" % (", ".join(
            "%s %s %d" % (k[0], k[1], n) for k, n in sorted(results.items(), key=str)) or "none"))
        bad_rounds = set()
        for key, _ in INVARIANTS:
            if key == "1":
                # One line per round: how many samples, and the first.
                per_round = {}
                for r, detail in st.violations[key]:
                    per_round.setdefault(r, []).append(detail)
                for r, details in sorted(per_round.items()):
                    print("  VIOLATION (1) round %d: %d samples, first: %s" % (
                        r, len(details), details[0]))
                    bad_rounds.add(r)
                continue
            seen = {}
            for r, detail in st.violations[key]:
                seen.setdefault(detail, []).append(r)
            for detail, rs in list(seen.items())[:15]:
                print("  VIOLATION (%s) round %s: %s" % (key, ",".join(str(x) for x in sorted(
                    set(rs))), detail))
                bad_rounds.add(min(rs))  # where it first showed
            if len(seen) > 15:
                print("  ... and %d more distinct (%s) violations" % (len(seen) - 15, key))
        if bad_rounds:
            self.print_decisions(sorted(bad_rounds)[:6])


def scenario(h):
    rng = random.Random(OPTS.seed)
    stats = Stats()
    c = Chaos(h, stats, rng)
    rounds_done = 0
    t0 = time.monotonic()
    try:
        c.setup()
        for r in range(1, OPTS.rounds + 1):
            if time.monotonic() - t0 > OPTS.time_limit:
                log("time limit of %.0fs reached after %d rounds" % (OPTS.time_limit,
                                                                     rounds_done))
                break
            c.run_round(r)
            rounds_done = r
    finally:
        try:
            c.cleanup()
        finally:
            c.summary(rounds_done)
            log("chaos: %d rounds in %.0fs" % (rounds_done, time.monotonic() - t0))
    h.check(rounds_done == OPTS.rounds, "all %d rounds ran within the time limit" % OPTS.rounds,
            "%d rounds done in %.0fs" % (rounds_done, OPTS.time_limit))
    if c.monitor.foreign:
        log("WARNING: other e2e tests ran against this libvirtd during the run (first: %s in "
            "round %d); their harness removes every vse2e-* domain, so violations from then "
            "on may be theirs: rerun alone" % min(
                ((n, r) for n, (r, _) in c.monitor.foreign.items()), key=lambda x: x[1]))
    for key, what in INVARIANTS:
        v = stats.violations[key]
        h.check(not v, "invariant (%s) %s: %d checks" % (key, what, stats.checks[key]),
                "%d violations, first in round %s: %s" % (len(v), v[0][0], v[0][1]) if v else "")


if __name__ == "__main__":
    OPTS = parse_chaos_args()
    print("chaos seed: %d (replay: --seed %d --rounds %d)" % (OPTS.seed, OPTS.seed, OPTS.rounds),
          flush=True)
    run(scenario, __doc__)
