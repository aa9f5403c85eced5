#!/usr/bin/env python3
"""Table-driven test of broken configs and rules (tests/testdata/bad_configs/).

MANIFEST there lists each broken config with the `FILE:LINE: message` fragment
the agent must report (FILE is a base name; the directories in front vary). Each
case is tried three ways:
  1. `virtscale check config CASE` exits 1 and prints the fragment;
  2. starting the agent on it exits non-zero and logs the message;
  3. a running agent reloads into it (SIGHUP and POST /-/reload alternately):
     the reload is rejected (POST answers 500 with the fragment), the running
     config stays (same groups), virtscale_config_last_reload_successful is 0,
     and the following good reload sets it back to 1.

  test_bad_config.py BINARY
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, http, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
CASES_DIR = os.path.join(SOURCE_DIR, "tests", "testdata", "bad_configs")
DIAG_RE = re.compile(r"^(?:[^:\s]*/)?([^/:\s]+\.(?:yml|xml))(:\d+)?: (.*)$")


def load_manifest():
    cases = []
    with open(os.path.join(CASES_DIR, "MANIFEST")) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, sep, fragment = line.partition("\t")
            assert sep and fragment.strip(), "MANIFEST:%d: want CASE<TAB>FRAGMENT" % n
            cases.append((name, fragment.strip()))
    return cases


CASES = load_manifest()


def normalized(output):
    """Diagnostics with the directories stripped from their file names."""
    out = []
    for line in output.splitlines():
        m = DIAG_RE.match(line.strip())
        if m:
            out.append("%s%s: %s" % (m.group(1), m.group(2) or "", m.group(3)))
    return out


def matches(text, fragment):
    """`fragment` in `text`, where " ... " in the fragment stands for any text."""
    at = 0
    for part in fragment.split(" ... "):
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def has_fragment(output, fragment):
    return any(line.startswith(fragment.split(" ... ")[0]) and matches(line, fragment)
               for line in normalized(output))


def test_manifest_covers_every_case():
    assert len(CASES) >= 40, len(CASES)
    names = [c for c, _ in CASES]
    assert len(set(names)) == len(names), "duplicate cases"
    on_disk = sorted(f for f in os.listdir(CASES_DIR) if f.endswith(".yml"))
    assert sorted(names) == on_disk, set(names) ^ set(on_disk)
    for name, fragment in CASES:
        assert re.match(r"^[^:/]+\.(yml|xml)(:\d+)?: .+", fragment), (name, fragment)


def test_check_config_reports_each_problem():
    failures = []
    for name, fragment in CASES:
        p = subprocess.run([BINARY, "check", "config", os.path.join(CASES_DIR, name)],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 1 or not has_fragment(p.stdout, fragment):
            failures.append("%s: exit %d, want %r in:\n%s" % (name, p.returncode, fragment,
                                                            p.stdout + p.stderr))
    assert not failures, "\n".join(failures)
    print("  %d broken configs rejected by `check config`" % len(CASES))


def test_agent_refuses_to_start():
    failures = []
    for name, fragment in CASES:
        p = subprocess.run([BINARY, "--config.file=" + os.path.join(CASES_DIR, name),
                            "--web.listen-address=127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30)
        # The log quotes the message; compare without logfmt's escaping.
        message = fragment.split(": ", 1)[1]
        logged = (p.stdout + p.stderr).replace('\\"', '"')
        if p.returncode == 0 or not matches(logged, message):
            failures.append("%s: exit %d, want %r in:\n%s" % (name, p.returncode, message,
                                                            logged))
    assert not failures, "\n".join(failures)
    print("  %d broken configs refused at start" % len(CASES))


GOOD_RULES = """groups:
  - name: keep
    template: ../templates/good.xml
    members: {name_prefix: "keep-"}
    min: 0
    max: 1
"""
GOOD_CONFIG = """libvirt:
  uri: "test:///default"
  sample_interval: 1s
rule_files: ["good-rules/keep.yml"]
sources:
  q:
    type: file
    path: queue
"""


def reload_ok(agent):
    v = values(agent.samples(), "virtscale_config_last_reload_successful")
    return v[0] if v else None


def test_reload_keeps_running_config():
    tmp = tempfile.mkdtemp(prefix="virtscale-badcfg-")
    work = os.path.join(tmp, "cases")
    shutil.copytree(CASES_DIR, work)
    os.makedirs(os.path.join(work, "good-rules"))
    with open(os.path.join(work, "good-rules", "keep.yml"), "w") as f:
        f.write(GOOD_RULES)
    current = os.path.join(work, "current.yml")

    def install(text):
        # Write then rename: the agent never reads a half-written file.
        with open(current + ".tmp", "w") as f:
            f.write(text)
        os.replace(current + ".tmp", current)

    install(GOOD_CONFIG)
    agent = Agent(BINARY, "--web.enable-lifecycle", config=current)
    failures = []
    try:
        agent.start()
        assert reload_ok(agent) == 1.0
        groups = [g["name"] for g in agent.json("/api/v1/groups")["data"]]
        assert groups == ["keep"], groups
        for i, (name, fragment) in enumerate(CASES):
            with open(os.path.join(work, name)) as f:
                bad = f.read()
            # The case's own file name becomes current.yml; rule files keep theirs.
            want = fragment.replace(name, "current.yml", 1) if fragment.startswith(name) \
                else fragment
            via_signal = i % 2 == 0
            install(bad)
            if via_signal:
                rejected_before = agent.logs().count("reload rejected")
                agent.signal(signal.SIGHUP)
                agent.wait_for(lambda: reload_ok(agent) == 0.0, 10, "%s: reload_ok 0" % name)
                # The rejection is logged with this case's reason, not just counted.
                lines = agent.wait_for(lambda: (lambda l: l if len(l) > rejected_before else None)(
                    [x for x in agent.logs().splitlines() if "reload rejected" in x]), 10,
                    "%s: reload rejected logged" % name)
                line = lines[rejected_before].replace('\\"', '"')
                message = want.split(": ", 1)[1]
                if not matches(line, message):
                    failures.append("%s: SIGHUP rejection logged without %r:\n%s" % (
                        name, message, line))
            else:
                status, body = http(agent.url + "/-/reload", method="POST", data=b"")
                if status != 500 or not has_fragment(body, want):
                    failures.append("%s: POST /-/reload %d, want 500 with %r:\n%s" % (
                        name, status, want, body))
                if reload_ok(agent) != 0.0:
                    failures.append("%s: reload_successful not 0 after POST" % name)
            groups = [g["name"] for g in agent.json("/api/v1/groups")["data"]]
            if groups != ["keep"]:
                failures.append("%s: running groups changed to %s" % (name, groups))
            install(GOOD_CONFIG)
            if via_signal:
                status, body = http(agent.url + "/-/reload", method="POST", data=b"")
                if status != 200:
                    failures.append("%s: good reload answered %d: %s" % (name, status, body))
            else:
                agent.signal(signal.SIGHUP)
            agent.wait_for(lambda: reload_ok(agent) == 1.0, 10, "%s: reload_ok back to 1" % name)
        assert agent.proc.poll() is None, "agent died during reloads"
        # Every rejected reload was logged (the SIGHUP ones' reasons are checked above).
        logs = agent.logs().replace('\\"', '"')
        assert logs.count("reload rejected") >= len(CASES), logs.count("reload rejected")
    finally:
        agent.stop()
        os.unlink(agent.log.name)
        shutil.rmtree(tmp, ignore_errors=True)
    assert not failures, "\n".join(failures)
    print("  %d broken reloads rejected (half by SIGHUP, half by POST), old config kept" %
          len(CASES))


def test_reload_refuses_special_files():
    """A FIFO where the config or a rule file should be: the reload fails at
    once (nothing waits for a writer) and the running config stays."""
    tmp = tempfile.mkdtemp(prefix="virtscale-fifo-")
    os.makedirs(os.path.join(tmp, "good-rules"))
    os.makedirs(os.path.join(tmp, "templates"))
    shutil.copy(os.path.join(CASES_DIR, "templates", "good.xml"),
                os.path.join(tmp, "templates", "good.xml"))
    with open(os.path.join(tmp, "good-rules", "keep.yml"), "w") as f:
        f.write(GOOD_RULES)
    current = os.path.join(tmp, "current.yml")
    with open(current, "w") as f:
        f.write(GOOD_CONFIG.replace('"good-rules/keep.yml"', '"good-rules/*.yml"'))
    agent = Agent(BINARY, "--web.enable-lifecycle", config=current)
    try:
        agent.start()
        assert reload_ok(agent) == 1.0
        rule_fifo = os.path.join(tmp, "good-rules", "pipe.yml")
        os.mkfifo(rule_fifo)
        status, body = http(agent.url + "/-/reload", method="POST", data=b"", timeout=20)
        assert status == 500 and "pipe.yml: cannot read: not a regular file" in body, \
            (status, body)
        os.unlink(rule_fifo)
        os.mkfifo(current + ".fifo")
        os.replace(current + ".fifo", current)
        status, body = http(agent.url + "/-/reload", method="POST", data=b"", timeout=20)
        assert status == 500 and "current.yml: cannot read: not a regular file" in body, \
            (status, body)
        assert reload_ok(agent) == 0.0
        groups = [g["name"] for g in agent.json("/api/v1/groups")["data"]]
        assert groups == ["keep"], groups
        print("  FIFO as rule file and as config file: reload refused, groups kept: %s" % groups)
    finally:
        agent.stop()
        os.unlink(agent.log.name)
        shutil.rmtree(tmp, ignore_errors=True)


def test_reload_adding_groups_to_a_read_only_connection_is_rejected():
    """Started with no groups, the agent opened libvirt read-only: a reload that
    brings groups could only queue actions that fail, so it is refused."""
    tmp = tempfile.mkdtemp(prefix="virtscale-ro-")
    os.makedirs(os.path.join(tmp, "good-rules"))
    os.makedirs(os.path.join(tmp, "templates"))
    shutil.copy(os.path.join(CASES_DIR, "templates", "good.xml"),
                os.path.join(tmp, "templates", "good.xml"))
    with open(os.path.join(tmp, "good-rules", "keep.yml"), "w") as f:
        f.write(GOOD_RULES)
    current = os.path.join(tmp, "current.yml")
    with open(current, "w") as f:
        f.write(GOOD_CONFIG.replace('["good-rules/keep.yml"]', '[]'))
    agent = Agent(BINARY, "--web.enable-lifecycle", config=current)
    try:
        agent.start()
        assert reload_ok(agent) == 1.0
        assert agent.json("/api/v1/groups")["data"] == []
        with open(current, "w") as f:
            f.write(GOOD_CONFIG)
        status, body = http(agent.url + "/-/reload", method="POST", data=b"", timeout=20)
        want = "scaling groups need a read-write libvirt connection: restart the agent to act on them"
        assert status == 500 and want in body, (status, body)
        assert reload_ok(agent) == 0.0
        assert agent.json("/api/v1/groups")["data"] == []
        print("  reload adding a group to a read-only agent: refused, no groups")
    finally:
        agent.stop()
        os.unlink(agent.log.name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_tests([test_manifest_covers_every_case, test_check_config_reports_each_problem,
                        test_agent_refuses_to_start, test_reload_keeps_running_config,
                        test_reload_refuses_special_files,
                        test_reload_adding_groups_to_a_read_only_connection_is_rejected]))
