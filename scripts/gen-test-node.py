#!/usr/bin/env python3
"""Writes a libvirt test-driver node file with N domains, for test:///ABS/PATH.xml.

    scripts/gen-test-node.py 1000 /tmp/node-1000.xml
    virsh -c test:///tmp/node-1000.xml list --all

Domains are named vm-0001, vm-0002, ... with 1-2 vCPUs, 128-512 MiB, one disk
(vda), one NIC (tapN) and a balloon; every fourth one (vm-0004, vm-0008, ...) is shut off,
the rest run. UUIDs and MACs are derived from the name, so the file is the same
on every run. --group NAME --group-every K puts virtscale ownership metadata on
every K-th domain (vm-000K, ...), as if virtscale had created it.
"""
import argparse
import sys
import uuid
from xml.sax.saxutils import escape

VIRTSCALE_NS = "http://virtscale.org/xmlns/domain/1.0"
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
SHUTOFF = 5


def domain_xml(i, group, group_every):
    name = f"vm-{i:04d}"
    dom_uuid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.virtscale.test")
    vcpus = 1 + i % 2
    memory_kib = (128 << 10) * (1 + i % 4)
    mac = "52:54:00:%02x:%02x:%02x" % ((i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)
    metadata = ""
    if group and group_every > 0 and i % group_every == 0:
        metadata = (
            "    <metadata>\n"
            f"      <virtscale:instance xmlns:virtscale='{VIRTSCALE_NS}'>\n"
            f"        <virtscale:group>{escape(group)}</virtscale:group>\n"
            "        <virtscale:template>/etc/virtscale/templates/test.xml</virtscale:template>\n"
            f"        <virtscale:created-at>{1764194400 + i}</virtscale:created-at>\n"
            "      </virtscale:instance>\n"
            "    </metadata>\n"
        )
    runstate = f"    <test:runstate>{SHUTOFF}</test:runstate>\n" if i % 4 == 0 else ""
    return (
        f"  <domain type='test' xmlns:test='{TEST_NS}'>\n"
        f"    <name>{name}</name>\n"
        f"    <uuid>{dom_uuid}</uuid>\n"
        f"{metadata}"
        f"    <memory unit='KiB'>{memory_kib}</memory>\n"
        f"    <currentMemory unit='KiB'>{memory_kib}</currentMemory>\n"
        f"    <vcpu>{vcpus}</vcpu>\n"
        "    <os><type arch='x86_64'>hvm</type></os>\n"
        "    <devices>\n"
        "      <disk type='file' device='disk'>\n"
        f"        <source file='/guests/{name}.img'/>\n"
        "        <target dev='vda' bus='virtio'/>\n"
        "      </disk>\n"
        "      <interface type='ethernet'>\n"
        f"        <mac address='{mac}'/>\n"
        f"        <target dev='tap{i}'/>\n"
        "      </interface>\n"
        "      <memballoon model='virtio'/>\n"
        "    </devices>\n"
        f"{runstate}"
        "  </domain>\n"
    )


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of domains")
    parser.add_argument("out", help="output file (use its absolute path in the URI)")
    parser.add_argument("--group", default="", help="virtscale group for tagged domains")
    parser.add_argument("--group-every", type=int, default=0, help="tag every K-th domain")
    args = parser.parse_args(argv)
    if args.count < 0 or args.count > 9999:
        parser.error("count must be 0..9999")
    parts = [
        "<node>\n",
        "  <cpu>\n    <mhz>2400</mhz>\n    <model>x86_64</model>\n    <active>16</active>\n"
        "    <nodes>1</nodes>\n    <sockets>2</sockets>\n    <cores>4</cores>\n"
        "    <threads>2</threads>\n  </cpu>\n",
        "  <memory>67108864</memory>\n",
    ]
    parts += [domain_xml(i, args.group, args.group_every) for i in range(1, args.count + 1)]
    parts.append("</node>\n")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
