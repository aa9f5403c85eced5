#!/usr/bin/env python3
"""Hostile templates the agent accepts and creates domains from (test driver):
  - XXE: external entities (a secret file, a FIFO) and nested internal entities
    stay literal: nothing is read or expanded;
  - a template with its own <uuid> and id: each member gets a fresh v4 UUID;
  - spoofed ownership metadata (another group, another template, created at 0,
    under any prefix or the default namespace) and a spoofed scale stamp: the
    member carries the agent's own metadata and the real scale times only;
  - a template at the size and depth limits renders in bounded time and memory.
`check config` accepts them all (exit 0); the agent that creates the members
stays up and under its memory bound, and groups hold their bounds.

  test_templates.py BINARY
"""
import os
import re
import sys
import time

from hostile import (HostileAgent, Workdir, agent_config, fifo_has_reader, get_raw,
                     memory_bound_mb, run_cli, run_tests, time_bound_s, values, wait_until)

BINARY = sys.argv[1]
BOUND_MB = memory_bound_mb(BINARY, 150)
CREATE_SECONDS = time_bound_s(BINARY, 20)
SECRET = "virtscale-xxe-secret-3141592653"
METADATA_NS = "http://virtscale.org/xmlns/domain/1.0"
STAMP_NS = "http://virtscale.org/xmlns/scale/1.0"
TEMPLATE_UUID = "11111111-2222-4333-8444-555555555555"
UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
FAR_FUTURE = 9999999999  # 2286

BASE = """<domain type='test'%(attrs)s>
  <name>template</name>
%(head)s  <memory unit='MiB'>64</memory>
  <os><type%(machine)s>hvm</type></os>
%(body)s</domain>
"""


def template(attrs="", head="", machine="", body="", prolog=""):
    return prolog + BASE % {"attrs": attrs, "head": head, "machine": machine, "body": body}


def xxe_template(work):
    laughs = ['<!ENTITY l0 "lol">'] + [
        '<!ENTITY l%d "%s">' % (i, ("&l%d;" % (i - 1)) * 10) for i in range(1, 10)]
    prolog = ('<?xml version="1.0"?>\n<!DOCTYPE domain [\n'
              '  <!ENTITY secret SYSTEM "file://%s">\n'
              '  <!ENTITY fifo SYSTEM "file://%s">\n  %s\n]>\n'
              % (work.path("secret.txt"), work.path("entity.fifo"), "\n  ".join(laughs)))
    return template(prolog=prolog, machine=" machine='&secret;'",
                    body="  <description>&secret;&fifo;&l9;</description>\n")


def spoof_template():
    owners = "".join(
        "    <%(tag)s %(decl)s><%(p)sgroup>victim</%(p)sgroup>"
        "<%(p)stemplate>/etc/evil.xml</%(p)stemplate><%(p)screated-at>0</%(p)screated-at>"
        "<%(p)suuid>%(uuid)s</%(p)suuid></%(tag)s>\n"
        % {"tag": p + "instance", "p": p, "uuid": TEMPLATE_UUID,
           "decl": 'xmlns%s="%s"' % (":" + p[:-1] if p else "", METADATA_NS)}
        for p in ("virtscale:", "own:", ""))
    stamp = ('    <vss:scale xmlns:vss="%s" group="spoof" up="%d" down="%d"/>\n'
             % (STAMP_NS, FAR_FUTURE, FAR_FUTURE))
    return template(head="  <uuid>%s</uuid>\n" % TEMPLATE_UUID,
                    body="  <metadata>\n%s%s  </metadata>\n" % (owners, stamp))


def limits_template(size=1000000, depth=60):
    """Just under 1 MiB and 64 levels: a chain `depth` deep, then siblings."""
    chain = "<x:c>" * (depth - 3) + "</x:c>" * (depth - 3)  # under domain, metadata, blob
    head, end = template(body="  <metadata><x:blob xmlns:x='urn:x'>%s@@" % chain).split("@@")
    tail = "</x:blob></metadata>\n" + end
    sibling = "<x:i>0123456789</x:i>\n"
    return head + sibling * ((size - len(head) - len(tail)) // len(sibling)) + tail


GROUPS = [  # name, template file, min
    ("xxe", "xxe.xml", 1),
    ("uuid", "uuid.xml", 2),
    ("spoof", "spoof.xml", 1),
    ("limits", "limits.xml", 1),
]

RULES = "groups:\n" + "".join(
    "  - name: %s\n    template: %s\n    min: %d\n    max: 2\n" % g for g in GROUPS) + """\
  - name: victim
    members: {name_prefix: "victim-"}
    min: 0
    max: 1
"""


class Fixture:
    def __init__(self):
        self.work = Workdir("templates")
        self.work.write("secret.txt", SECRET + "\n")
        self.work.replace_with("entity.fifo", os.mkfifo)
        self.work.write("xxe.xml", xxe_template(self.work))
        self.work.write("uuid.xml", template(attrs=" id='7'",
                                             head="  <uuid>%s</uuid>\n" % TEMPLATE_UUID))
        self.work.write("spoof.xml", spoof_template())
        self.work.write("limits.xml", limits_template())
        self.work.write("rules.yml", RULES)
        self.config = self.work.write("virtscale.yml", agent_config())
        self.agent = None
        self.created_in = None

    def start(self):
        r = run_cli([BINARY, "check", "config", self.config], time_bound_s(BINARY, 20))
        assert r.rc == 0, "check config %s:\n%s" % (r, r.output[-2000:])
        self.check = r
        self.agent = HostileAgent(BINARY, config=self.config)
        start = time.monotonic()
        self.agent.start()
        want = {name: minimum for name, _, minimum in GROUPS}
        wait_until(lambda: self.agent.proc.poll() is not None or all(
            len(self.agent.groups()[g][2]) == n for g, n in want.items()),
            CREATE_SECONDS, "every group at its min")
        self.agent.assert_up()
        self.created_in = time.monotonic() - start
        self.samples = wait_until(lambda: (lambda s: s if len(values(
            s, "virtscale_domain_metadata_info")) == sum(want.values()) else None)(
            self.agent.samples()), 10, "metadata series of every member")

    def members(self, group):
        assert self.created_in is not None, "no members: creating them failed (first test)"
        return self.agent.groups()[group][2]

    def info(self, name, domain):
        """Labels of the `name` series of `domain`."""
        found = [l for n, l, _ in self.samples if n == name and l.get("domain") == domain]
        assert len(found) == 1, (name, domain, found)
        return found[0]

    def stop(self):
        if self.agent:
            rc = self.agent.close()
            assert rc == 0, "agent exited %s on SIGTERM" % rc
        self.work.cleanup()


F = Fixture()


def test_check_config_and_create_from_every_template():
    F.start()
    peak = F.agent.assert_memory(BOUND_MB, "creating from the templates")
    print("  check config %s; members created in %.1f s; agent peak %.0f MB (bound %d)"
          % (F.check, F.created_in, peak, BOUND_MB))


def test_xxe_entities_stay_literal():
    (member,) = F.members("xxe")
    info = F.info("libvirt_domain_info", member)
    assert info["os_type_machine"] == "&secret;", info
    assert not fifo_has_reader(F.work.path("entity.fifo")), "the agent opened the entity FIFO"
    for path in ("/metrics", "/api/v1/groups", "/api/v1/decisions"):
        status, body = get_raw(F.agent.url + path)
        assert status == 200 and SECRET.encode() not in body, (path, status)
    print("  os_type_machine=%r: external entity not read, FIFO never opened" %
          info["os_type_machine"])


def test_own_uuid_is_replaced_by_fresh_ones():
    members = F.members("uuid")
    uuids = [F.info("libvirt_domain_info", m)["uuid"] for m in members]
    assert len(set(uuids)) == len(uuids) == 2, uuids
    for u in uuids:
        assert u != TEMPLATE_UUID and UUID_V4.match(u), u
    owned = [m["owned"] for g in F.agent.json("/api/v1/groups")["data"] if g["name"] == "uuid"
             for m in g["members"]]
    assert owned == [True, True], owned
    print("  template uuid %s -> members %s" % (TEMPLATE_UUID, ", ".join(uuids)))


def test_spoofed_ownership_is_replaced():
    (member,) = F.members("spoof")
    meta = F.info("virtscale_domain_metadata_info", member)
    assert meta["group"] == "spoof" and meta["template"] == F.work.path("spoof.xml"), meta
    created = [v for n, l, v in F.samples
               if n == "virtscale_domain_created_timestamp_seconds" and l["domain"] == member]
    assert created and abs(created[0] - time.time()) < 600, created
    uuid = F.info("libvirt_domain_info", member)["uuid"]
    assert uuid != TEMPLATE_UUID, uuid
    assert F.members("victim") == [], "a spoofed member joined group victim"
    print("  member %s: group=%s template=%s created=%d uuid=%s" % (
        member, meta["group"], meta["template"], created[0], uuid))


def test_spoofed_scale_stamp_is_dropped():
    """A scale stamp in the template would set the group's cooldowns from the
    template, here to the year 2286."""
    F.members("spoof")
    stamps = values(F.agent.samples(), "virtscale_group_last_scale_timestamp_seconds",
                    group="spoof")
    assert stamps and all(v < FAR_FUTURE for v in stamps), stamps


def test_template_at_the_limits_renders_in_bounded_time():
    (member,) = F.members("limits")
    assert F.info("virtscale_domain_metadata_info", member)["group"] == "limits"
    # Created with the others within CREATE_SECONDS (checked above); the agent
    # is still within its memory bound after rendering 1 MB.
    F.agent.assert_memory(BOUND_MB, "rendering the template at the limits")
    F.agent.assert_up()


if __name__ == "__main__":
    try:
        code = run_tests([test_check_config_and_create_from_every_template,
                          test_xxe_entities_stay_literal, test_own_uuid_is_replaced_by_fresh_ones,
                          test_spoofed_ownership_is_replaced, test_spoofed_scale_stamp_is_dropped,
                          test_template_at_the_limits_renders_in_bounded_time])
    finally:
        F.stop()
    sys.exit(code)
