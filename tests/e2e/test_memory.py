#!/usr/bin/env python3
"""e2e: memory metrics from a guest that reports balloon statistics.

vse2e-mem boots Debian's kernel with a busybox initramfs (scripts/build-test-guest.sh
--balloon) under TCG (this host's nested KVM does not boot a Linux guest), 128 MiB,
<memballoon model='virtio'><stats period='1'/>, and fills 48 MiB of its memory.
Checks: `libvirt_domain_memory_stats_{available,usable,unused}_bytes` as virsh reports
them, and `virtscale_domain_memory_utilization_ratio` equal to the guest-used ratio
(available - usable) / available computed from virsh's own figures, well above the
unfilled level. A dry-run group over the guest decides on that ratio: its memory
scale-up condition fires and the decision names it, and nothing is created.
"""
import os
import re
import subprocess
import time

from e2e import Failure, Skip, log, run, wait_until

CONFIG = """libvirt:
  uri: qemu:///system
  sample_interval: 1s
  call_timeout: 5s
rule_files: ["rules/*.yml"]
"""
# Scales on guest memory; dry run, so the decision is recorded and nothing changes.
RULES = """groups:
  - name: memgrp
    template: ../templates/member.xml
    members: {name_prefix: "vse2e-mem"}
    min: 1
    max: 2
    interval: 1s
    dry_run: true
    scale_up:
      when:
        - {metric: memory, aggregate: avg, above: 0.3}
    scale_down:
      when:
        - {metric: memory, aggregate: avg, below: 0.05}
"""
NAME = "vse2e-mem"
FILL_MIB = 48


def balloon(h):
    out = h.virsh("domstats", "--balloon", NAME)
    return {k: int(v) for k, v in re.findall(r"balloon\.([a-z_-]+)=(\d+)", out)}


def scenario(h):
    out = os.path.join(h.workdir, "linux")
    r = subprocess.run([os.path.join(h.scripts, "build-test-guest.sh"), "--balloon", out],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if r.returncode != 0:
        raise Skip("cannot build the Linux balloon guest from Debian packages:\n" + r.stdout)
    xml = """<domain type='qemu'>
  <name>%(name)s</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%(dir)s/vmlinuz</kernel><initrd>%(dir)s/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet virtscale.fill=%(fill)d</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='%(dir)s/console.log'/><target port='0'/></serial>
    <memballoon model='virtio'><stats period='1'/></memballoon>
  </devices>
</domain>
""" % {"name": NAME, "dir": out, "fill": FILL_MIB}
    path = os.path.join(h.workdir, NAME + ".xml")
    with open(path, "w") as f:
        f.write(xml)
    h.virsh("define", path)
    h.virsh("start", NAME)
    console_path = os.path.join(out, "console.log")

    def console():
        try:
            with open(console_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    try:
        # The guest prints "up" after filling its memory and loading virtio_balloon.
        wait_until(lambda: "virtscale-guest: up" in console(), 120, "the guest's init", interval=1)
        wait_until(lambda: "usable" in balloon(h) and "available" in balloon(h), 30,
                   "balloon stats from the guest's virtio_balloon driver", interval=1)
    except Failure as e:
        raise Failure("%s\nguest console:\n%s" % (e, console()[-2000:]))
    time.sleep(2)  # stats period 1 s: the figures libvirt returns are post-fill
    log("guest balloon stats: %s" % balloon(h))

    agent = h.start_agent(h.write_config(CONFIG, rules={"mem.yml": RULES},
                                         templates={"member.xml": xml}))

    def sample():
        m = agent.metrics()
        return m if m.value("libvirt_domain_memory_stats_usable_bytes", domain=NAME) else None

    m = wait_until(sample, 30, "libvirt_domain_memory_stats_usable_bytes for the guest")
    b = balloon(h)
    truth = (b["available"] - b["usable"]) / b["available"]
    log("virsh balloon: %s; guest-used ratio %.3f" % (b, truth))
    for stat in ("available", "usable", "unused"):
        v = m.value("libvirt_domain_memory_stats_%s_bytes" % stat, domain=NAME)
        want = b[stat] * 1024
        h.check(v is not None and abs(v - want) <= 0.05 * want,
                "libvirt_domain_memory_stats_%s_bytes == virsh balloon.%s KiB * 1024 (5%%)" %
                (stat, stat), "agent %s, virsh %d" % (v, want))
    ratio = m.value("virtscale_domain_memory_utilization_ratio", domain=NAME)
    h.check(ratio is not None and abs(ratio - truth) <= 0.05,
            "virtscale_domain_memory_utilization_ratio == (available-usable)/available",
            "agent %s, virsh %.3f" % (ratio, truth))
    # 48 of ~100 MiB available is filled: used well above a bare busybox (~10%).
    h.check(ratio is not None and ratio > 0.3, "the filled guest reads > 0.3 used", str(ratio))
    mem = m.value("libvirt_domain_info_maximum_memory_bytes", domain=NAME)
    h.check(mem == 128 * 1024 * 1024, "maximum_memory_bytes == 128 MiB", str(mem))
    problems = h.promtool_check_metrics(m.text)
    h.check(problems == "", "promtool check metrics is clean with memory stats", problems[:2000])

    def memory_decision():
        for d in agent.json("/api/v1/decisions?limit=20")["data"]:
            if d["group"] == "memgrp" and d.get("held_by") == "dry_run":
                return d
        return None

    seen = []
    if h.check_eventually("the dry-run group decides to scale up on guest memory",
                          lambda: seen.append(wait_until(memory_decision, 20,
                                                         "a memgrp dry_run decision"))):
        d = seen[0]
        log("decision: %s" % d["reason"])
        h.check(d["direction"] == "up" and "memory:avg > 0.3" in d["reason"],
                "the decision is a scale-up and names the memory condition", d["reason"])
        h.check(d["actions"] and d["actions"][0]["result"] == "dry_run",
                "its planned create is skipped (dry run)", str(d["actions"]))
    names = [n for n in h.list_all() if n.startswith("vse2e-mem")]
    h.check(names == [NAME], "dry run created nothing", str(names))


if __name__ == "__main__":
    run(scenario, __doc__)
