#!/usr/bin/env python3
"""e2e: scripts/fleet-lab.sh, the lab of libvirt hosts that fleet tests run on.

Alongside the system libvirtd (qemu:///system, started by the harness when it is not
running, with a guest of its own) the test brings up 3 lab hosts and checks:

  up 3            exactly 3 "NAME URI" lines on stdout, hv1..hv3, distinct URIs; every
                  URI answers over TCP (`virsh uri`) with its own hostname; each host
                  has an active pool "default" holding idle.img; the printed template
                  is a valid virtscale group template (`virtscale check config`)
  isolation       a domain defined from the template on hv1 exists on hv1 only (not on
                  hv2, hv3, qemu:///system); one of the same name runs on hv2 too, as
                  a second QEMU in hv2's network namespace
  host-stop hv2   hv2's URI refuses, `status` says stopped, hv1/hv3 and qemu:///system
                  still answer, hv2's guest (its QEMU) keeps running
  host-start hv2  hv2 answers again and still lists its guest running
  up 3 again      the same stdout, the same daemons (pids), the guests untouched
  up 2            hv3 removed (namespace, veth, processes), hv1/hv2 untouched
  down            no vslab netns, no vslab link, no lab process, no state dir; the
                  system libvirtd and its guest still run

`down` also runs in `finally`. Skipped (exit 77; 1 under CI=true) when network
namespaces cannot be made here.
"""
import os
import re
import subprocess
import time

from e2e import Failure, Skip, log, run

LAB_DIR = "/var/lib/virtscale-fleet-lab"
PREFIX = "vse2e-fl-"
HOSTS = ["hv1", "hv2", "hv3"]
LINE_RE = re.compile(r"^(hv[0-9]+) (qemu\+tcp://10\.77\.0\.[0-9]+/system)$")


class Lab:
    def __init__(self, h):
        self.h = h
        self.script = os.path.join(h.scripts, "fleet-lab.sh")

    def run(self, *args, timeout=120):
        t0 = time.monotonic()
        r = subprocess.run([self.script] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        log("fleet-lab.sh %s -> exit %d in %.1fs%s" % (
            " ".join(args), r.returncode, time.monotonic() - t0,
            ("; stderr:\n" + r.stderr.rstrip()) if r.returncode != 0 else ""))
        return r

    def must(self, *args):
        r = self.run(*args)
        if r.returncode != 0:
            raise Failure("fleet-lab.sh %s failed (exit %d):\n%s" %
                          (" ".join(args), r.returncode, r.stderr))
        return r


def virsh(uri, *args, timeout=30):
    return subprocess.run(["virsh", "-q", "-c", uri] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def names(uri):
    """{name: state} of every domain on uri (None when it does not answer)."""
    r = virsh(uri, "list", "--all")
    if r.returncode != 0:
        return None
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2].strip()
    return out


def netns_list():
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def lab_links():
    out = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE, text=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                  if "vslab" in line)


def netns_pids(ns):
    r = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return sorted(int(p) for p in r.stdout.split())


def alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def qemu_pids(guest):
    """{pid: netns name} of the QEMU processes running guest `guest`."""
    r = subprocess.run(["pgrep", "-f", "guest=%s," % guest], stdout=subprocess.PIPE, text=True)
    out = {}
    for p in r.stdout.split():
        ns = subprocess.run(["ip", "netns", "identify", p], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
        out[int(p)] = ns
    return out


def pidfile(name, daemon):
    try:
        with open(os.path.join(LAB_DIR, name, daemon + ".pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def can_make_netns():
    probe = "vse2e-netns-probe-%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        return r.stdout.strip() or "exit %d" % r.returncode
    subprocess.run(["ip", "netns", "del", probe])
    return ""


def scenario(h):
    for tool in ("ip", "nsenter", "unshare"):
        if subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL).returncode:
            raise Skip("%s is not installed (iproute2/util-linux)" % tool)
    why = can_make_netns()
    if why:
        raise Skip("cannot create a network namespace here: " + why)
    lab = Lab(h)
    sys_guest = h.guest(PREFIX + "sys", image="idle")
    lab.must("down")  # leftovers of an earlier, killed run
    try:
        lab_scenario(h, lab, sys_guest)
    finally:
        r = lab.run("down")
        if r.returncode != 0:
            log("cleanup: fleet-lab.sh down failed:\n" + r.stderr)


def lab_scenario(h, lab, sys_guest):
    # --- up 3 ------------------------------------------------------------------------
    t0 = time.monotonic()
    r = lab.must("up", "3")
    up_seconds = time.monotonic() - t0
    lines = r.stdout.splitlines()
    parsed = [LINE_RE.match(line) for line in lines]
    h.check(len(lines) == 3 and all(parsed), "up 3 prints exactly 3 'NAME URI' lines",
            repr(r.stdout))
    if not (len(lines) == 3 and all(parsed)):
        return
    uris = {m.group(1): m.group(2) for m in parsed}
    h.check(sorted(uris) == HOSTS, "the hosts are hv1, hv2, hv3", str(sorted(uris)))
    h.check(len(set(uris.values())) == 3, "the 3 URIs are distinct", str(uris))
    log("up 3 took %.1fs: %s" % (up_seconds, uris))
    template = os.path.join(LAB_DIR, "template.xml")
    h.check(template in r.stderr and os.path.isfile(template),
            "up names the template file on stderr and it exists", r.stderr[-400:])

    for name, uri in uris.items():
        rv = virsh(uri, "uri")
        h.check(rv.returncode == 0 and rv.stdout.strip() == uri,
                "%s answers on %s" % (name, uri), rv.stdout + rv.stderr)
        rv = virsh(uri, "hostname")
        h.check(rv.stdout.strip() == name, "%s reports hostname %s" % (uri, name),
                rv.stdout + rv.stderr)
        rv = virsh(uri, "pool-info", "default")
        h.check(rv.returncode == 0 and re.search(r"State:\s+running", rv.stdout) is not None,
                "%s has an active pool 'default'" % name, rv.stdout + rv.stderr)
        rv = virsh(uri, "vol-list", "default")
        h.check("idle.img" in rv.stdout, "%s's pool holds idle.img" % name, rv.stdout + rv.stderr)

    # The template is a valid virtscale group template.
    with open(template) as f:
        template_xml = f.read()
    try:
        h.write_config(  # runs `virtscale check config`
            "libvirt:\n  uri: %s\n  sample_interval: 1s\nrule_files: [\"rules/*.yml\"]\n"
            % uris["hv1"],
            rules={"g.yml": "groups:\n  - name: vse2e-fl\n    template: ../templates/t.xml\n"
                            "    members: {name_prefix: \"vse2e-fl-\"}\n    min: 1\n    max: 2\n"},
            templates={"t.xml": template_xml}, tag="fleet-lab")
        h.check(True, "virtscale check config accepts the lab template as a group template")
    except Failure as e:
        h.check(False, "virtscale check config accepts the lab template as a group template",
                str(e))

    # --- isolation ---------------------------------------------------------------------
    guest = PREFIX + "a"
    xml_path = os.path.join(h.workdir, guest + ".xml")
    with open(xml_path, "w") as f:
        f.write(re.sub(r"<name>[^<]*</name>", "<name>%s</name>" % guest, template_xml, count=1))
    for name in ("hv1", "hv2"):
        rv = virsh(uris[name], "define", xml_path)
        if rv.returncode != 0:
            raise Failure("define %s on %s: %s" % (guest, name, rv.stderr))
    rv = virsh(uris["hv1"], "start", guest)
    h.check(rv.returncode == 0, "the template starts on hv1", rv.stderr)
    on = {name: names(uri) for name, uri in uris.items()}
    h.check(on["hv1"].get(guest) == "running", "%s runs on hv1" % guest, str(on["hv1"]))
    h.check(on["hv2"].get(guest) == "shut off", "hv2's own %s is defined, not running" % guest,
            str(on["hv2"]))
    h.check(guest not in on["hv3"], "%s is absent on hv3" % guest, str(on["hv3"]))
    h.check(guest not in h.list_all() and sys_guest in h.list_all(),
            "%s is absent on qemu:///system (whose own guest is there)" % guest,
            str(h.list_all()))
    rv = virsh(uris["hv2"], "start", guest)
    h.check(rv.returncode == 0, "a domain of the same name starts on hv2 too", rv.stderr)
    qp = qemu_pids(guest)
    h.check(sorted(qp.values()) == ["vslab-hv1", "vslab-hv2"],
            "two QEMUs for %s, one in each host's network namespace" % guest, str(qp))
    hv2_qemu = [p for p, ns in qp.items() if ns == "vslab-hv2"]

    r = lab.must("status")
    h.check(r.stdout.split("\n")[:3] == ["%s %s running" % (n, uris[n]) for n in HOSTS],
            "status: 3 hosts running", r.stdout)

    # --- host-stop / host-start ---------------------------------------------------------
    hv2_pid = pidfile("hv2", "libvirtd")
    lab.must("host-stop", "hv2")
    rv = virsh(uris["hv2"], "uri", timeout=15)
    h.check(rv.returncode != 0, "after host-stop hv2's URI does not answer", rv.stdout + rv.stderr)
    h.check(hv2_pid is not None and not alive(hv2_pid), "hv2's libvirtd (pid %s) is gone" % hv2_pid)
    r = lab.must("status")
    h.check("hv2 %s stopped" % uris["hv2"] in r.stdout.splitlines(), "status: hv2 stopped",
            r.stdout)
    h.check(virsh(uris["hv1"], "uri").returncode == 0 and virsh(uris["hv3"], "uri").returncode == 0,
            "hv1 and hv3 still answer")
    h.check(virsh("qemu:///system", "uri").returncode == 0, "qemu:///system still answers")
    h.check(hv2_qemu and all(alive(p) for p in hv2_qemu),
            "hv2's guest keeps running without its libvirtd", str(hv2_qemu))
    lab.must("host-start", "hv2")
    on2 = names(uris["hv2"])
    h.check(on2 is not None and on2.get(guest) == "running",
            "after host-start hv2 answers and lists its guest running", str(on2))

    # --- idempotent up --------------------------------------------------------------------
    pids_before = {n: pidfile(n, "libvirtd") for n in HOSTS}
    r2 = lab.must("up", "3")
    h.check(r2.stdout == "\n".join(lines) + "\n",
            "up 3 again prints the same lines", repr(r2.stdout))
    pids_after = {n: pidfile(n, "libvirtd") for n in HOSTS}
    h.check(pids_before == pids_after and None not in pids_after.values(),
            "up 3 again keeps the same libvirtds", "%s -> %s" % (pids_before, pids_after))
    h.check(names(uris["hv1"]).get(guest) == "running", "hv1's guest still runs")

    # --- up 2: hv3 goes -------------------------------------------------------------------
    hv3_pids = netns_pids("vslab-hv3")
    r3 = lab.must("up", "2")
    h.check(r3.stdout == "".join(l + "\n" for l in lines[:2]), "up 2 prints hv1 and hv2",
            repr(r3.stdout))
    h.check("vslab-hv3" not in netns_list() and "vslab-hv3" not in lab_links(),
            "up 2 removes hv3's namespace and veth", "%s %s" % (netns_list(), lab_links()))
    h.check(hv3_pids and not any(alive(p) for p in hv3_pids), "up 2 stops hv3's processes",
            str(hv3_pids))
    h.check(not os.path.exists(os.path.join(LAB_DIR, "hv3")), "up 2 removes hv3's state dir")
    h.check({n: pidfile(n, "libvirtd") for n in ("hv1", "hv2")} ==
            {n: pids_after[n] for n in ("hv1", "hv2")}, "up 2 leaves hv1 and hv2 alone")

    # --- down -------------------------------------------------------------------------------
    lab_pids = sorted(set(netns_pids("vslab-hv1") + netns_pids("vslab-hv2")))
    log("lab processes before down: %s" % ", ".join("%d(%s)" % (p, comm(p)) for p in lab_pids))
    h.check(len(lab_pids) >= 6, "hv1 and hv2 each run libvirtd, virtlogd and a QEMU",
            str(lab_pids))
    t0 = time.monotonic()
    lab.must("down")
    log("down took %.1fs" % (time.monotonic() - t0))
    left_ns = [n for n in netns_list() if n.startswith("vslab-")]
    h.check(not left_ns, "down leaves no vslab network namespace", str(left_ns))
    h.check(not lab_links(), "down leaves no vslab link", str(lab_links()))
    left = [p for p in lab_pids if alive(p)]
    h.check(not left, "down ends every lab process",
            ", ".join("%d(%s)" % (p, comm(p)) for p in left))
    h.check(not qemu_pids(guest), "no QEMU of the lab guest is left", str(qemu_pids(guest)))
    h.check(not os.path.exists(LAB_DIR), "down removes %s" % LAB_DIR)
    h.check(h.list_all().get(sys_guest) == "running",
            "qemu:///system and its guest still run after down", str(h.list_all()))
    r = lab.must("status")
    h.check(r.stdout == "", "status after down prints nothing", repr(r.stdout))


if __name__ == "__main__":
    run(scenario, __doc__)
