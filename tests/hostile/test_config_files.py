#!/usr/bin/env python3
"""Hostile config, rule and template files. Each case is tried two ways:
  1. `virtscale check config` exits 1 (never >= 128, never hangs) and prints
     `FILE:LINE: message` naming the key and the limit, within a time and
     peak-RSS bound;
  2. a running agent reloads into it by SIGHUP, then by POST /-/reload: both are
     rejected (the POST with 500 and the same message), afterwards the agent is
     up, virtscale_config_last_reload_successful is 0, the old groups run
     unchanged and the agent's peak RSS over the case stayed under the bound.
Then the good files come back and a reload succeeds, ready for the next case.
Also: 1000 groups, the supported scale, are accepted and served.

  test_config_files.py BINARY [CASE...]
"""
import os
import re
import signal
import sys
import tempfile
import time

from hostile import (MINIMAL_TEMPLATE, HostileAgent, Workdir, agent_config, http,
                     memory_bound_mb, reset_peak_rss, run_cli, run_tests, time_bound_s, wait_until)

BINARY = sys.argv[1]
# The agent or `check config` at rest is ~20 MB; files are at most 4 MiB.
BOUND_MB = memory_bound_mb(BINARY, 150)
CHECK_SECONDS = time_bound_s(BINARY, 20)  # the deadline of one `check config`

GOOD_RULES = """groups:
  - name: keep
    template: ../templates/t.xml
    members: {name_prefix: "keep-"}
    min: 0
    max: 1
"""


def group(name="case", template="t.xml", extra=""):
    """A rule file with one inert group (min 0, no conditions): if a case is
    wrongly accepted, it changes the group list and nothing else."""
    return ("groups:\n  - name: %s\n    template: ../templates/%s\n    min: 0\n    max: 1\n%s"
            % (name, template, extra))


def many_groups(n):
    """A rule file of n groups (109 bytes each), for Workdir.write to stream."""
    def chunks():
        yield "groups:\n"
        for i in range(n):
            yield ("  - name: g%06d\n    template: ../templates/t.xml\n"
                   "    members: {name_prefix: \"g%06d-\"}\n    min: 0\n    max: 1\n" % (i, i))
    return chunks


def billion_laughs():
    """Ten levels of ten aliases each: 10^10 strings if anything expands them."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append("l%d: &l%d [%s]" % (level, level, ", ".join(["*l%d" % (level - 1)] * 10)))
    return "\n".join(lines) + "\n" + group(extra="    members: {name_prefix: *l9}\n").replace(
        "name: case", "name: *l9")


def nested_template(depth, tag):
    return ("<domain type='test'>\n  <name>t</name>\n  <memory unit='MiB'>64</memory>\n"
            "  <os><type>hvm</type></os>\n  " + "<%s>" % tag * depth + "</%s>" % tag * depth +
            "\n</domain>\n")


FIFO = "fifo"
DEV_ZERO = "/dev/zero"
SENTINEL = os.path.join(tempfile.gettempdir(), "virtscale-python-tag-ran-%d" % os.getpid())


class Case:
    def __init__(self, name, files, diag_file, fragments, line=True):
        self.name, self.files, self.diag_file = name, files, diag_file
        self.fragments = fragments  # each a string, or a tuple of alternatives
        self.line = line            # the message carries a line number


CASES = [
    Case("name_30000_chars", {"rules/case.yml": group(name="n" * 30000)},
         "case.yml", ["groups[0].name", "64"]),
    Case("step_400_digits", {"rules/case.yml": group(
        extra='    scale_up:\n      step: "%s"\n' % ("9" * 400))},
        "case.yml", ["groups[0].scale_up.step", "1000000"]),
    Case("cooldown_293y", {"rules/case.yml": group(extra="    scale_up:\n      cooldown: 293y\n")},
         "case.yml", ["groups[0].scale_up.cooldown", "100d"]),
    Case("interval_293y", {"rules/case.yml": group(extra="    interval: 293y\n")},
         "case.yml", ["groups[0].interval", "100d"]),
    Case("cooldown_2pow40_years", {"rules/case.yml": group(
        extra="    scale_down:\n      cooldown: 1099511627776y\n")},
        "case.yml", ["groups[0].scale_down.cooldown", "100d"]),
    Case("rules_15mb_144k_groups", {"rules/case.yml": many_groups(144000)},
         "case.yml", ["4 MiB"], line=False),
    Case("rules_1001_groups", {"rules/case.yml": many_groups(1001)},
         "case.yml", ["groups", "1000"]),
    Case("billion_laughs", {"rules/case.yml": billion_laughs()},
         "case.yml", ["groups[0].name"]),
    Case("yaml_10k_deep", {"rules/case.yml": "groups: " + "[" * 10000 + "]" * 10000 + "\n"},
         "case.yml", []),
    Case("python_object_tags", {"rules/case.yml": group(
        name='!!python/object/apply:os.system ["touch %s"]' % SENTINEL,
        extra="    on_missing_data: !!python/object/new:str [hold]\n")},
        "case.yml", ["groups[0].name"]),
    Case("fifo_as_rule_file", {"rules/case.yml": FIFO}, "case.yml", ["not a regular file"],
         line=False),
    Case("dev_zero_as_rule_file", {"rules/case.yml": DEV_ZERO}, "case.yml",
         ["not a regular file"], line=False),
    Case("fifo_as_config", {"virtscale.yml": FIFO}, "virtscale.yml", ["not a regular file"],
         line=False),
    Case("dev_zero_as_config", {"virtscale.yml": DEV_ZERO}, "virtscale.yml",
         ["not a regular file"], line=False),
    # 1.1 MB: above the size limit and the depth limit; either may be reported.
    Case("template_100k_nested", {"templates/case.xml": nested_template(100000, "elt"),
                                  "rules/case.yml": group(template="case.xml")},
         "case.yml", ["groups[0].template", ("1 MiB", "64")]),
    Case("template_depth_8000", {"templates/case.xml": nested_template(8000, "e"),
                                 "rules/case.yml": group(template="case.xml")},
         "case.yml", ["groups[0].template", "64"]),
]


def find_diagnostic(output, case):
    """The first `FILE[:LINE]: message` line of output about case.diag_file that
    holds every fragment (for a tuple: one of its alternatives)."""
    pattern = re.compile(r"(?:^|/)%s%s: " % (re.escape(case.diag_file),
                                            r":\d+" if case.line else r"(?::\d+)?"))
    for line in output.splitlines():
        if not pattern.search(line):
            continue
        if all(any(a in line for a in (f if isinstance(f, tuple) else (f,)))
               for f in case.fragments):
            return line
    return None


class Setup:
    """The workdir with good files, and an agent running on them."""

    def __init__(self):
        self.work = Workdir("config")
        self.work.write("templates/t.xml", MINIMAL_TEMPLATE)
        self.work.write("rules/keep.yml", GOOD_RULES)
        self.config = self.work.write("virtscale.yml", agent_config(rule_files=["rules/*.yml"]))
        self.agent = None

    def start_agent(self):
        if self.agent:
            self.agent.close()  # one that a case killed: keep nothing of it but the report
        self.agent = HostileAgent(BINARY, "--web.enable-lifecycle", config=self.config)
        self.agent.start()
        self.baseline = self.agent.groups()
        assert list(self.baseline) == ["keep"], self.baseline

    def install(self, case):
        for rel, content in case.files.items():
            if content == FIFO:
                self.work.replace_with(rel, os.mkfifo)
            elif content == DEV_ZERO:
                self.work.replace_with(rel, lambda p: os.symlink(DEV_ZERO, p))
            else:
                self.work.write(rel, content)

    def restore(self, case):
        for rel in case.files:
            path = self.work.path(rel)
            if os.path.lexists(path):
                os.unlink(path)
        self.work.write("virtscale.yml", agent_config(rule_files=["rules/*.yml"]))

    def stop(self):
        if self.agent:
            self.agent.close()
        self.work.cleanup()


class NoAnswer(AssertionError):
    """`check config` did not finish: reloading into the same files would only
    block the agent for as long."""


def check_config(setup, case):
    """Step 1; returns a summary line."""
    r = run_cli([BINARY, "check", "config", setup.config], CHECK_SECONDS)
    if r.timed_out:
        raise NoAnswer("no answer within %d s (peak %.0f MB when killed)" % (CHECK_SECONDS,
                                                                             r.peak_mb))
    assert not r.crashed(), "crashed (%s):\n%s" % (r, r.output[-2000:])
    assert r.rc == 1, "%s, want exit 1:\n%s" % (r, r.output[-2000:])
    line = find_diagnostic(r.output, case)
    assert line, "no %s%s: line with %s in:\n%.3000s" % (
        case.diag_file, ":LINE" if case.line else "", case.fragments, r.output)
    assert r.peak_mb < BOUND_MB, "peak %.0f MB, bound %d MB" % (r.peak_mb, BOUND_MB)
    return "check config %s: %.160s" % (r, line[line.find(case.diag_file):])


def reload_into(setup, case):
    """Step 2 on the running agent; returns a summary line."""
    agent = setup.agent
    reset_peak_rss(agent.proc.pid)
    logs_before = agent.logs()
    rejected, accepted = logs_before.count("reload rejected"), logs_before.count("config reloaded")
    agent.signal(signal.SIGHUP)
    wait_until(lambda: agent.proc.poll() is not None or
               agent.logs().count("reload rejected") > rejected or
               agent.logs().count("config reloaded") > accepted,
               CHECK_SECONDS, "the SIGHUP reload to finish")
    agent.assert_up()
    assert agent.logs().count("config reloaded") == accepted, "SIGHUP: reload accepted"
    assert agent.reload_ok() == 0.0, "SIGHUP: reload_successful not 0"
    start = time.monotonic()
    status, body = http(agent.url + "/-/reload", method="POST", data=b"", timeout=CHECK_SECONDS)
    post_seconds = time.monotonic() - start
    agent.assert_up()
    assert status == 500, "POST /-/reload answered %d: %.500s" % (status, body)
    assert find_diagnostic(body, case), "POST /-/reload: no %s line with %s in:\n%.2000s" % (
        case.diag_file, case.fragments, body)
    assert agent.reload_ok() == 0.0, "POST: reload_successful not 0"
    assert agent.groups() == setup.baseline, "running groups changed: %s" % list(agent.groups())
    peak = agent.assert_memory(BOUND_MB, case.name)
    return "reload rejected (SIGHUP; POST in %.1f s), agent peak %.0f MB" % (post_seconds, peak)


def good_reload(agent):
    status, body = http(agent.url + "/-/reload", method="POST", data=b"", timeout=CHECK_SECONDS)
    assert status == 200 and agent.reload_ok() == 1.0, "%d %.300s" % (status, body)


def run_case(setup, case):
    if setup.agent is None or setup.agent.proc.poll() is not None:
        setup.start_agent()  # a case before this one killed it
    problems, summary = [], []

    def step(what, run):
        """Runs one step; False when the next one should not be tried."""
        try:
            line = run()
            if line:
                summary.append(line)
            return True
        except (AssertionError, OSError) as e:  # OSError: the agent went away mid-request
            kind = "" if isinstance(e, AssertionError) else type(e).__name__ + ": "
            problems.append("%s: %s%s" % (what, kind, e))
            summary.append("%s FAILED" % what)
            return not isinstance(e, NoAnswer)

    setup.install(case)
    try:
        if step("check config", lambda: check_config(setup, case)):
            step("reload", lambda: reload_into(setup, case))
        else:
            problems.append("reload not tried: check config did not finish")
        if os.path.exists(SENTINEL):
            problems.append("a YAML tag ran a command")
    finally:
        setup.restore(case)
    if setup.agent.proc.poll() is None:
        step("good reload afterwards", lambda: good_reload(setup.agent))
    else:
        problems.append("the agent exited with %s:\n%s" % (setup.agent.proc.returncode,
                                                            setup.agent.logs()[-1500:]))
    print("  %-24s %s (bound %d MB)" % (case.name, ("\n%27s" % "").join(summary), BOUND_MB),
          flush=True)
    assert not problems, "\n".join(problems)


def test_thousand_groups_are_served():
    """The supported scale: 1000 groups pass `check config`, a reload brings
    them in, and the agent evaluates and serves them within the bounds."""
    setup = Setup()
    try:
        setup.start_agent()
        reset_peak_rss(setup.agent.proc.pid)
        setup.work.write("rules/keep.yml", many_groups(1000))
        r = run_cli([BINARY, "check", "config", setup.config], CHECK_SECONDS)
        assert r.rc == 0 and "SUCCESS: 1000 scaling group(s)" in r.output, (str(r), r.output[-500:])
        start = time.monotonic()
        status, body = http(setup.agent.url + "/-/reload", method="POST", data=b"",
                            timeout=CHECK_SECONDS)
        assert status == 200, (status, body[:500])
        reload_s = time.monotonic() - start
        groups = wait_until(lambda: (lambda g: g if len(g) == 1000 else None)(
            setup.agent.groups()), 30, "1000 groups")
        assert all(members == [] for _, _, members in groups.values())
        start = time.monotonic()
        metrics = setup.agent.metrics()
        scrape_s = time.monotonic() - start
        peak = setup.agent.assert_memory(BOUND_MB, "1000 groups")
        setup.agent.assert_up()
        print("  check config %s; reload %.1f s; /metrics %.0f KB in %.2f s; agent peak %.0f MB"
              % (r, reload_s, len(metrics) / 1024, scrape_s, peak))
    finally:
        setup.stop()


def make_tests(cases):
    setup = Setup()
    tests = []
    for case in cases:
        def test(case=case):
            run_case(setup, case)
        test.__name__ = "test_" + case.name
        tests.append(test)
    return tests, setup


if __name__ == "__main__":
    only = sys.argv[2:]
    tests, setup = make_tests([c for c in CASES if not only or c.name in only])
    try:
        code = run_tests(tests + ([] if only else [test_thousand_groups_are_served]))
    finally:
        setup.stop()
    sys.exit(code)
