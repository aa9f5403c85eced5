"""Shared machinery for virtscale's end-to-end tests (real libvirtd + QEMU, Prometheus).

Python 3 standard library only. A scenario looks like:

    from e2e import Harness, run

    def scenario(h):
        h.guest("vse2e-m-a", image="busy")             # defined + started
        agent = h.start_agent(config_yaml)              # ephemeral port, /-/ready
        m = agent.metrics()                             # parsed /metrics
        h.check(m.value("libvirt_up") == 1, "libvirt_up is 1")

    if __name__ == "__main__":
        run(scenario)    # exit 0 pass, 1 fail, 77 skip (libvirtd unavailable; 1 under CI=true)

Every domain whose name starts with the harness prefix ("vse2e-") is destroyed and
undefined in `finally`, whoever made it (the agent creates members too); the agent,
Prometheus and the storage pool are stopped; libvirtd is stopped only when this
test started it.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77
URI = "qemu:///system"
PREFIX = "vse2e-"  # every domain an e2e test makes, directly or through the agent
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
METADATA_NS = "http://virtscale.org/xmlns/domain/1.0"


def in_ci():
    """True under CI=true (.ci/run): a Skip fails the test instead of exiting 77."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class Skip(Exception):
    """The environment cannot run this test (no libvirtd, no QEMU)."""


class Failure(Exception):
    """A checked property of the system under test did not hold."""


def log(msg):
    print("[%8.2f] %s" % (time.monotonic() - _T0, msg), flush=True)


_T0 = time.monotonic()


def free_port():
    """An ephemeral loopback port: bind 127.0.0.1:0, read it back, release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body text); status 0 with the error text when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def wait_until(pred, timeout, what, interval=0.5):
    """Polls pred() until it returns a truthy value (returned) or raises Failure."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except Failure:
            raise
        except Exception as e:  # noqa: BLE001 - a probe may fail while things start
            last = None
            err = e
        else:
            err = None
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.0fs waiting for %s%s" %
                          (timeout, what, " (last error: %s)" % err if err else ""))
        time.sleep(interval)


# --- Prometheus text format ----------------------------------------------------

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v):
    return v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def _parse_value(v):
    if v in ("+Inf", "Inf"):
        return float("inf")
    if v == "-Inf":
        return float("-inf")
    return float(v)


class Metrics:
    """Samples of one scrape: (name, labels dict, value)."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types = {}
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 4 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3]
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                raise Failure("unparsable exposition line: %r" % line)
            labels = {}
            if m.group(3):
                rest = m.group(3)
                pos = 0
                while pos < len(rest):
                    lm = _LABEL_RE.match(rest, pos)
                    if not lm:
                        raise Failure("unparsable labels in line: %r" % line)
                    labels[lm.group(1)] = _unescape(lm.group(2))
                    pos = lm.end()
            self.samples.append((m.group(1), labels, _parse_value(m.group(4))))

    def find(self, name, **labels):
        return [(l, v) for (n, l, v) in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def value(self, name, **labels):
        """The value of the one matching sample, or None when there is none."""
        found = self.find(name, **labels)
        if len(found) > 1:
            raise Failure("%s%s matches %d series" % (name, labels, len(found)))
        return found[0][1] if found else None

    def domains(self, name):
        return {l.get("domain") for (l, _) in self.find(name)}


# --- the harness -----------------------------------------------------------------


class Agent:
    """One virtscale process on an ephemeral loopback port."""

    def __init__(self, harness, binary, config_path, extra_args, tag):
        self.h = harness
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(harness.workdir, "agent-%s.log" % tag)
        self.args = [binary, "--config.file=" + config_path,
                     "--web.listen-address=127.0.0.1:%d" % self.port,
                     "--log.level=debug"] + list(extra_args)
        self.proc = None

    def start(self, ready_timeout=30):
        log("agent: %s" % " ".join(self.args))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise Failure("agent exited with %s before it was ready; log:\n%s" %
                              (self.proc.returncode, self.log_tail()))
            return http_get(self.base + "/-/ready", timeout=2)[0] == 200

        try:
            wait_until(ready, ready_timeout, "agent /-/ready", interval=0.2)
        except Failure as e:
            raise Failure("%s\nagent log tail:\n%s" % (e, self.log_tail()))
        log("agent ready on %s (pid %d)" % (self.base, self.proc.pid))
        return self

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def get(self, path):
        status, body = http_get(self.base + path)
        if status != 200:
            raise Failure("GET %s -> %s: %s" % (path, status, body[:500]))
        return body

    def metrics(self):
        return Metrics(self.get("/metrics"))

    def json(self, path):
        return json.loads(self.get(path))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.running():
            log("agent: sending signal %d to pid %d" % (sig, self.proc.pid))
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc is None:
            return
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log("agent ignored SIGTERM for 20s; killing it")
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


class Prometheus:
    """A real Prometheus server on an ephemeral port scraping the given targets."""

    def __init__(self, harness, targets, scrape_interval="1s"):
        self.h = harness
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        d = os.path.join(harness.workdir, "prometheus")
        os.makedirs(d, exist_ok=True)
        self.config = os.path.join(d, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n"
                    "scrape_configs:\n" % (scrape_interval, scrape_interval))
            for job, target in targets.items():
                f.write("  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n"
                        % (job, target))
        self.args = ["prometheus", "--config.file=" + self.config,
                     "--storage.tsdb.path=" + os.path.join(d, "data"),
                     "--web.listen-address=127.0.0.1:%d" % self.port,
                     "--log.level=warn"]
        self.log_path = os.path.join(d, "prometheus.log")
        self.proc = None

    def start(self):
        if not shutil.which("prometheus"):
            raise Failure("prometheus is not installed (scripts/install-deps.sh installs it)")
        log("prometheus: %s" % " ".join(self.args))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise Failure("prometheus exited with %s" % self.proc.returncode)
            return http_get(self.base + "/-/ready", timeout=2)[0] == 200

        wait_until(ready, 30, "prometheus /-/ready", interval=0.3)
        return self

    def query(self, promql):
        """The result vector of an instant query: [(labels, float value)]."""
        body = json.loads(self.h_get("/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        if body.get("status") != "success":
            raise Failure("query %r failed: %s" % (promql, body))
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def h_get(self, path):
        status, body = http_get(self.base + path)
        if status != 200:
            raise Failure("prometheus GET %s -> %s: %s" % (path, status, body[:500]))
        return body

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self._log.close()


class Harness:
    """Owns everything one scenario starts; `close()` undoes all of it."""

    def __init__(self, args):
        self.args = args
        self.agent_binary = os.path.abspath(args.agent)
        self.scripts = args.scripts
        self.workdir = tempfile.mkdtemp(prefix="virtscale-e2e-")
        os.chmod(self.workdir, 0o755)
        self.started_libvirtd = False
        self.libvirt_ok = False  # past libvirtd start: there may be domains to remove
        self.agents = []
        self.prometheis = []
        self.pools = []
        self.failures = []
        self.checks = 0
        self.domain_type = None
        self.images = {}

    # -- libvirtd, guests -------------------------------------------------------

    def setup(self):
        if not os.access(self.agent_binary, os.X_OK):
            raise Failure("agent binary %s is not executable" % self.agent_binary)
        if os.geteuid() != 0:
            raise Skip("e2e tests need root to run a system libvirtd")
        script = os.path.join(self.scripts, "libvirtd.sh")
        was_up = subprocess.run([script, "status"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
        if not was_up:
            r = subprocess.run([script, "start"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=300)
            if r.returncode != 0:
                raise Skip("libvirtd cannot be started:\n" + r.stdout)
            self.started_libvirtd = True
        self.libvirt_ok = True
        log("libvirtd %s" % ("started" if self.started_libvirtd else "already running"))
        self.remove_test_domains()  # leftovers of an earlier, killed run
        out = os.path.join(self.workdir, "images")
        r = subprocess.run([os.path.join(self.scripts, "build-test-guest.sh"), out],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise Failure("build-test-guest.sh failed:\n" + r.stdout)
        self.images = {"busy": os.path.join(out, "busy.img"), "idle": os.path.join(out, "idle.img")}
        self.domain_type = self.probe_domain_type()
        log("domain type: %s" % self.domain_type)

    def virsh(self, *args, check=True, timeout=60):
        r = subprocess.run(["virsh", "-q", "-c", URI] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise Failure("virsh %s: %s" % (" ".join(args), r.stderr.strip()))
        return r.stdout

    def probe_domain_type(self):
        """'kvm' when a KVM guest really starts here, else 'qemu' (TCG)."""
        if not os.path.exists("/dev/kvm"):
            return "qemu"
        name = PREFIX + "probe-%d" % os.getpid()
        xml = self.domain_xml(name, "kvm", None)
        path = os.path.join(self.workdir, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        r = subprocess.run(["virsh", "-q", "-c", URI, "create", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        self.virsh("destroy", name, check=False)
        if r.returncode != 0:
            log("KVM guest did not start (%s); using TCG" % r.stdout.strip())
            return "qemu"
        return "kvm"

    @staticmethod
    def domain_xml(name, dom_type, disk_path, memory_mib=32, metadata=""):
        """A 1-vCPU guest with no NIC; `disk_path` is a writable IDE boot disk or None."""
        disk = ""
        if disk_path:
            disk = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                    "<source file='%s'/><target dev='hda' bus='ide'/></disk>" % disk_path)
        return """<domain type='%s'>
  <name>%s</name>%s
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>%s<memballoon model='none'/></devices>
</domain>
""" % (dom_type, name, metadata, memory_mib, disk)

    def guest(self, name, image="busy", start=True, memory_mib=32):
        """Defines (and starts) a persistent guest with its own copy of `image`
        ("busy", "idle" or None for no disk)."""
        assert name.startswith(PREFIX)
        disk = None
        if image:
            disk = os.path.join(self.workdir, name + ".img")
            shutil.copyfile(self.images[image], disk)
        path = os.path.join(self.workdir, name + ".xml")
        with open(path, "w") as f:
            f.write(self.domain_xml(name, self.domain_type, disk, memory_mib))
        self.virsh("define", path)
        if start:
            self.virsh("start", name)
        return name

    def set_quota(self, name, quota_us):
        """Caps a running guest's vCPU at quota_us per 100 ms period (-1: no cap)."""
        self.virsh("schedinfo", "--live", name, "vcpu_period=100000", "vcpu_quota=%d" % quota_us)

    def cpu_time_ns(self, name):
        out = self.virsh("domstats", "--cpu-total", name)
        m = re.search(r"cpu\.time=(\d+)", out)
        return int(m.group(1)) if m else None

    def list_all(self):
        """{name: state} of every vse2e- domain (`virsh list --all`)."""
        out = self.virsh("list", "--all")
        result = {}
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 3 and parts[1].startswith(PREFIX):
                result[parts[1]] = parts[2].strip()
        return result

    def metadata(self, name):
        """The virtscale ownership element of a domain, or None."""
        r = subprocess.run(["virsh", "-c", URI, "metadata", name, METADATA_NS],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None

    def remove_test_domains(self):
        for name in self.list_all():
            self.virsh("destroy", name, check=False)
            # Storage is the pool's directory, removed with the pool.
            self.virsh("undefine", name, "--nvram", check=False)
            if self.virsh("dominfo", name, check=False):
                self.virsh("undefine", name, check=False)

    def pool(self, name):
        """A transient dir pool in the work dir; returns its directory."""
        path = os.path.join(self.workdir, "pool-" + name)
        os.makedirs(path, exist_ok=True)
        self.virsh("pool-destroy", name, check=False)
        self.virsh("pool-create-as", name, "dir", "--target", path)
        self.pools.append(name)
        return path

    # -- agent, Prometheus -------------------------------------------------------

    def write_config(self, config_yaml, rules=None, templates=None, tag="agent"):
        """Writes virtscale.yml (+ rules/*.yml, templates/*.xml) under the work dir."""
        d = os.path.join(self.workdir, "config-" + tag)
        os.makedirs(os.path.join(d, "rules"), exist_ok=True)
        os.makedirs(os.path.join(d, "templates"), exist_ok=True)
        for fname, text in (rules or {}).items():
            with open(os.path.join(d, "rules", fname), "w") as f:
                f.write(text)
        for fname, text in (templates or {}).items():
            with open(os.path.join(d, "templates", fname), "w") as f:
                f.write(text)
        path = os.path.join(d, "virtscale.yml")
        with open(path, "w") as f:
            f.write(config_yaml)
        r = subprocess.run([self.agent_binary, "check", "config", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        if r.returncode != 0:
            raise Failure("virtscale check config %s failed (exit %d):\n%s" %
                          (path, r.returncode, r.stdout))
        return path

    def start_agent(self, config_path, extra_args=(), tag=None):
        agent = Agent(self, self.agent_binary, config_path, extra_args,
                      tag or "%d" % (len(self.agents) + 1))
        self.agents.append(agent)
        return agent.start()

    def start_prometheus(self, targets, scrape_interval="1s"):
        p = Prometheus(self, targets, scrape_interval)
        self.prometheis.append(p)
        return p.start()

    def promtool_check_metrics(self, text):
        """promtool's complaints about an exposition ('' when clean)."""
        r = subprocess.run(["promtool", "check", "metrics"], input=text, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        return "" if r.returncode == 0 else (r.stdout.strip() or "exit %d" % r.returncode)

    # -- checks --------------------------------------------------------------------

    def check(self, cond, what, detail=""):
        """Records one property; the scenario goes on so that one run shows every failure."""
        self.checks += 1
        if cond:
            log("PASS %s" % what)
        else:
            log("FAIL %s%s" % (what, (": " + detail) if detail else ""))
            self.failures.append(what + ((": " + detail) if detail else ""))
        return cond

    def check_eventually(self, what, wait, detail=lambda: ""):
        """Records whether wait() (which raises Failure on timeout) succeeded;
        detail() adds context to a failure."""
        try:
            wait()
        except Failure as e:
            extra = detail()
            return self.check(False, what, str(e) + ("; " + extra if extra else ""))
        return self.check(True, what)

    def close(self):
        for a in self.agents:
            try:
                a.stop()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log("cleanup: agent stop: %s" % e)
        for p in self.prometheis:
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001
                log("cleanup: prometheus stop: %s" % e)
        if self.libvirt_ok:
            try:
                self.remove_test_domains()
            except Exception as e:  # noqa: BLE001
                log("cleanup: domains: %s" % e)
        for name in self.pools:
            try:
                self.virsh("pool-destroy", name, check=False)
            except Exception as e:  # noqa: BLE001
                log("cleanup: pool %s: %s" % (name, e))
        if self.started_libvirtd:
            subprocess.run([os.path.join(self.scripts, "libvirtd.sh"), "stop"], timeout=120)
        if self.args.keep:
            log("work dir kept: %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


TEMPLATE_NS = "http://virtscale.org/xmlns/template/1.0"


def overlay_template(h, group):
    """The XML of a template whose members boot the idle (halting) image: a qcow2
    overlay per member ("{group}-N-hda.qcow2") over base.img in the transient dir
    pool "{group}-pool", so each member has its own writable IDE disk."""
    pool = group + "-pool"
    pool_dir = h.pool(pool)
    shutil.copyfile(h.images["idle"], os.path.join(pool_dir, "base.img"))
    h.virsh("pool-refresh", pool)
    return """<domain type='%(type)s'>
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
""" % {"type": h.domain_type, "group": group, "ns": TEMPLATE_NS, "pool": pool, "dir": pool_dir}


def cpu_group_config(h, group, min_members, max_members, action="delete", up_for="3s",
                     down_for="3s", cooldown="5s", up_above=0.1, down_below=0.05):
    """Config for one group whose new members boot the idle (halting) image.

    The load comes from a busy seed member the test defines ("{group}-seed"): with
    it at 100% and n-1 idle members the average is ~1/n, so a group grows to max 4
    above 0.1 while the host spends one core, not n (the machine has two, shared;
    the low threshold leaves room for a seed that gets only part of a core).
    Members match name prefix "{group}-". The template asks for a qcow2 overlay per
    member ("{group}-N-hda.qcow2") over base.img in a transient dir pool, so each
    member has its own writable IDE disk. Returns the config path.
    """
    template = overlay_template(h, group)
    rules = """groups:
  - name: %(group)s
    template: ../templates/member.xml
    members: {name_prefix: "%(group)s-"}
    min: %(min)d
    max: %(max)d
    interval: 1s
    scale_up:
      step: 1
      cooldown: %(cooldown)s
      when:
        - {metric: cpu, aggregate: avg, above: %(above)s, for: %(up_for)s}
    scale_down:
      step: 1
      cooldown: %(cooldown)s
      action: %(action)s
      shutdown_timeout: 2s
      when:
        - {metric: cpu, aggregate: avg, below: %(below)s, for: %(down_for)s}
""" % {"group": group, "min": min_members, "max": max_members, "cooldown": cooldown,
       "above": up_above, "below": down_below, "up_for": up_for, "down_for": down_for,
       "action": action}
    config = """libvirt:
  uri: qemu:///system
  sample_interval: 1s
  call_timeout: 5s
rule_files: ["rules/*.yml"]
"""
    return h.write_config(config, rules={"group.yml": rules}, templates={"member.xml": template},
                          tag=group)


def volume_backing(h, pool, vol):
    """The backing file path of a volume, or None."""
    out = h.virsh("vol-dumpxml", "--pool", pool, vol, check=False)
    m = re.search(r"<backingStore>.*?<path>([^<]+)</path>", out, re.S)
    return m.group(1) if m else None


def pool_volumes(h, pool):
    h.virsh("pool-refresh", pool, check=False)
    out = h.virsh("vol-list", pool)
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


class Timeline:
    """Membership of a group over time as `virsh list --all` shows it."""

    def __init__(self, harness, prefix):
        self.h = harness
        self.prefix = prefix
        self.events = []  # (t, {name: state})
        self.last = None

    def poll(self):
        snap = {n: s for n, s in self.h.list_all().items() if n.startswith(self.prefix)}
        if snap != self.last:
            t = time.monotonic() - _T0
            self.events.append((t, snap))
            running = sorted(n for n, s in snap.items() if s == "running")
            log("virsh list: %d running %s | all: %s" % (
                len(running), running, ", ".join("%s=%s" % kv for kv in sorted(snap.items()))))
            self.last = snap
        return snap

    def running(self):
        return sorted(n for n, s in (self.last or {}).items() if s == "running")

    def running_counts(self):
        return [sum(1 for s in snap.values() if s == "running") for _, snap in self.events]

    def watch(self, seconds, poll=0.5):
        """Keeps recording the timeline for `seconds` (a group must hold still)."""
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            self.poll()
            time.sleep(poll)

    def wait_running(self, count, timeout, poll=0.5, on_poll=None):
        """Polls until exactly `count` members run; returns the running names."""

        def pred():
            self.poll()
            if on_poll:
                on_poll()
            return len(self.running()) == count

        wait_until(pred, timeout, "%d running %s* domains" % (count, self.prefix), interval=poll)
        return self.running()


def run(scenario, description=""):
    """Parses the common flags, runs `scenario(harness)`, cleans up, exits 0/1/77."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--agent", required=True, help="path of the virtscale binary")
    p.add_argument("--scripts", default=os.path.join(REPO, "scripts"))
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs)")
    args = p.parse_args()
    h = Harness(args)
    code = 0
    try:
        h.setup()
        scenario(h)
        if h.failures:
            code = 1
    except Skip as e:
        if in_ci():
            # On the CI machine root, libvirtd and QEMU are there: a skip means breakage.
            log("FAIL: would skip, but CI=%s: %s" % (os.environ.get("CI"), e))
            h.failures.append("skipped under CI: %s" % e)
            code = 1
        else:
            log("SKIP: %s" % e)
            code = SKIP
    except Failure as e:
        log("FAIL: %s" % e)
        h.failures.append(str(e))
        code = 1
    except Exception:  # noqa: BLE001 - report, clean up, fail
        traceback.print_exc()
        h.failures.append("unexpected exception")
        code = 1
    finally:
        if code == 1:
            for a in h.agents:
                log("agent log tail (%s):\n%s" % (a.log_path, a.log_tail(60)))
        h.close()
    if code == 0:
        log("%d checks passed" % h.checks)
    elif code == 1:
        log("%d of %d checks failed:\n  %s" % (len(h.failures), max(h.checks, len(h.failures)),
                                              "\n  ".join(h.failures)))
    sys.exit(code)
