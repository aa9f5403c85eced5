"""`virtscale test rules` and `virtscale simulate` run as the real binary: the
shipped example rules pass their tests, failures and invalid files give exit
codes 1 and 2 with readable messages, and simulate replays a CSV history into a
timeline and a valid SVG plot."""
import math
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from harness import SOURCE_DIR, run_tests

BINARY = sys.argv[1]
RULES = os.path.join(SOURCE_DIR, "config", "rules")
RULE_TESTS = os.path.join(RULES, "tests")  # not rules/*.yml: the agent config globs those
SVG = "{http://www.w3.org/2000/svg}"


def run(*args):
    p = subprocess.run([BINARY] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_shipped_rule_tests_pass():
    rc, out = run("test", "rules", os.path.join(RULE_TESTS, "demo.test.yml"),
                  os.path.join(RULE_TESTS, "web.test.yml"))
    assert rc == 0, out
    assert out.count("SUCCESS") == 2, out


def test_timeline_flag_prints_every_tests_timeline():
    path = os.path.join(RULE_TESTS, "demo.test.yml")
    rc, plain = run("test", "rules", path)
    assert rc == 0 and "timeline of" not in plain, plain
    rc, out = run("test", "rules", "--timeline", path)
    assert rc == 0 and "SUCCESS: 5 test(s)" in out, out
    names = [l.split("name:", 1)[1].strip() for l in open(path) if l.strip().startswith("- name:")]
    assert len(names) == 5, names
    for name in names:
        assert 'timeline of "%s":' % name in out, (name, out)
    assert out.count("      summary: ") == 5, out
    # The first test's timeline, step by step (demo group: 1 -> 4, cooldown 6 s).
    first = out.split('timeline of "%s":' % names[0])[1].split("timeline of")[0]
    steps = [" ".join(l.split()[:5]) for l in first.splitlines()
             if "scale_up" in l and "->" in l and not l.strip().startswith("because")]
    assert steps == ["+4s scale_up 1 -> 2:", "+10s scale_up 2 -> 3:", "+16s scale_up 3 -> 4:"], \
        steps
    assert "held (bound_max)" in first and "final 4" in first, first


def test_docs_simulate_figures_come_from_the_documented_run():
    """docs/simulate.md quotes a run of docs/simulate-diurnal.py through
    `virtscale simulate`: the same run here must give the same figures."""
    with open(os.path.join(SOURCE_DIR, "docs", "simulate.md")) as f:
        doc = " ".join(f.read().split())
    m = re.search(r"(\d+) evaluations, (\d+) scale-ups \(\+(\d+) members: ([^)]*)\) and (\d+) "
                  r"scale-downs \(([^)]*)\), running (\d+)\.\.(\d+)", doc)
    assert m, "docs/simulate.md no longer states the figures this test checks"
    evals, ups, up_members, up_list, downs, down_list, lo, hi = m.groups()
    final = re.search(r"group ends the day at (\d+)", doc)
    assert final, "docs/simulate.md no longer states the final size"

    def steps(text):  # "08:42 2->3, 10:36 3->5" -> [("+8h42m", "2 -> 3"), ...]
        out = []
        for hhmm, a, b in re.findall(r"(\d\d:\d\d) (\d+)->(\d+)", text):
            h, mi = int(hhmm[:2]), int(hhmm[3:])
            offset = "+" + ("%dh" % h if h else "") + ("%dm" % mi if mi or not h else "")
            out.append((offset, "%s -> %s" % (a, b)))
        return out

    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "docs", "simulate-diurnal.py"),
                            d], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        rc, out = run("simulate", "--rules", os.path.join(RULES, "web.yml"), "--group", "web",
                      "--history", os.path.join(d, "members.csv"),
                      "--history", os.path.join(d, "jobs.csv"), "--step", "1m",
                      "--plot", os.path.join(d, "diurnal.svg"))
        assert rc == 0, out
        assert ET.parse(os.path.join(d, "diurnal.svg")).getroot().tag == SVG + "svg"
    summary = [l for l in out.splitlines() if l.startswith("summary:")]
    want = ("summary: %s evaluations, %s scale-ups (+%s members), %s scale-downs (-%s members), "
            "running %s..%s, final %s" % (evals, ups, up_members, downs, downs, lo, hi,
                                         final.group(1)))
    assert summary == [want], (summary, want)
    actions = [(l.split()[0], " ".join(l.split()[2:5]).rstrip(":"))
               for l in out.splitlines() if l.split()[1:2] in (["scale_up"], ["scale_down"])]
    doc_actions = steps(down_list) + steps(up_list)
    assert sorted(actions) == sorted(doc_actions), (actions, doc_actions)


def test_failure_is_a_readable_diff_with_exit_1():
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "t.test.yml", f"""rule_files: [{RULES}/web.yml]
evaluation_interval: 10s
tests:
  - name: too eager
    group: web
    initial_members: 2
    members_series:
      - {{metric: cpu, values: '0.9x20'}}
      - {{metric: memory, values: '0.5x20'}}
    sources:
      - {{source: jobs, values: '0x20'}}
    expect:
      - {{at: 30s, members: 3}}
""")
        rc, out = run("test", "rules", path)
    assert rc == 1, out
    assert "at +30s (%s:13)" % path in out, out
    assert "members: expected 3, got 2" in out, out
    assert "decision: none (running 2 -> 2): no condition firing" in out, out
    assert "up[0] cpu:avg > 0.75 for 1m: pending" in out, out  # the timeline follows


def test_invalid_file_exit_2_with_file_line():
    with tempfile.TemporaryDirectory() as d:
        path = write(d, "bad.test.yml", """rule_files: [missing.yml]
tests:
  - name: x
    expect: [{at: 0s, members: 1}]
""")
        rc, out = run("test", "rules", path)
        assert rc == 2, out
        assert "missing.yml\" matches no files" in out, out
        path = write(d, "bad2.test.yml", "tests: [{name: x, expect: [{at: 1s}]}]\nbogus: 1\n")
        rc, out = run("test", "rules", path)
        assert rc == 2, out
        assert path + ":2: bogus: unknown key" in out, out
        assert path + ":1: rule_files: missing required key" in out, out


def test_simulate_csv_history_timeline_and_plot():
    with tempfile.TemporaryDirectory() as d:
        rows = ["time,member,metric,value"]
        t0 = 1714521600
        for i in range(0, 24 * 60, 5):  # a day of 5-minute samples, two members
            load = 0.5 - 0.4 * math.cos(2 * math.pi * i / (24 * 60))
            for m in ("web-1", "web-2"):
                rows.append("%d,%s,cpu,%.3f" % (t0 + 60 * i, m, load))
                rows.append("%d,%s,memory,0.4" % (t0 + 60 * i, m))
        members = write(d, "members.csv", "\n".join(rows) + "\n")
        sources = write(d, "jobs.csv", "time,source,value\n%d,jobs,0\n%d,jobs,0\n" %
                        (t0, t0 + 86400))
        plot = os.path.join(d, "day.svg")
        rc, out = run("simulate", "--rules", os.path.join(RULES, "web.yml"), "--group", "web",
                      "--history", members, "--history", sources, "--lookback", "1d",
                      "--step", "1m", "--plot", plot)
        assert rc == 0, out
        assert "2 initial running member(s), load shared" in out, out
        assert "scale_up 2 -> 3" in out, out
        assert "scale_down" in out, out
        assert "held (bound_min)" in out, out
        summary = [l for l in out.splitlines() if l.startswith("summary:")]
        assert summary and "1441 evaluations" in summary[0], out
        root = ET.parse(plot).getroot()
        metrics = root.findall(SVG + "polyline[@class='metric']")
        keys = {p.get("data-key") for p in metrics}
        assert {"cpu:avg", "memory:max", "source:jobs:per_member"} <= keys, keys
        cpu_points = sum(len(p.get("points").split()) for p in metrics
                         if p.get("data-key") == "cpu:avg")
        assert cpu_points == 1441, cpu_points
        assert root.findall(SVG + "rect[@class='band firing up']"), "no firing band"
        assert root.findall(SVG + "polyline[@class='members']")


def test_schedule_rule_tests_pass():
    """tests/testdata/schedules: start_time sets the wall clock, so schedule
    windows open, also on Europe/Berlin's DST days."""
    path = os.path.join(SOURCE_DIR, "tests", "testdata", "schedules", "schedules.test.yml")
    rc, out = run("test", "rules", path)
    assert rc == 0, out
    assert "SUCCESS: 3 test(s)" in out, out


def test_simulate_follows_schedules_on_the_simulated_clock():
    """web.yml lowers the ceiling to 4 from Saturday 00:00 Berlin (Friday
    22:00Z in May): a simulated Friday evening with 6 members loses 2 then."""
    with tempfile.TemporaryDirectory() as d:
        rows = ["time,member,metric,value"]
        jobs = ["time,source,value"]
        t0 = 1714766400  # 2024-05-03T20:00:00Z, a Friday
        for i in range(0, 4 * 60 + 1):
            jobs.append("%d,jobs,150" % (t0 + 60 * i))
            for m in range(1, 7):
                rows.append("%d,web-%d,cpu,0.5" % (t0 + 60 * i, m))
                rows.append("%d,web-%d,memory,0.4" % (t0 + 60 * i, m))
        members = write(d, "members.csv", "\n".join(rows) + "\n")
        sources = write(d, "jobs.csv", "\n".join(jobs) + "\n")
        rc, out = run("simulate", "--rules", os.path.join(RULES, "web.yml"), "--group", "web",
                      "--history", members, "--history", sources, "--step", "1m")
        assert rc == 0, out
        downs = [" ".join(line.split()) for line in out.splitlines()
                 if line.split()[1:2] == ["scale_down"]]
        assert downs == ["+2h scale_down 6 -> 4: stop web-6 ok, stop web-5 ok"], out
        assert "because 6 active is above max 4: restoring bounds" in out, out


def test_scale_down_order_rule_tests_pass():
    """tests/testdata/scale_down_order: newest, oldest and least_loaded each
    choose the member their test names (`actions[].domain`)."""
    path = os.path.join(SOURCE_DIR, "tests", "testdata", "scale_down_order", "order.test.yml")
    rc, out = run("test", "rules", path)
    assert rc == 0, out
    assert "SUCCESS: 3 test(s)" in out, out


def test_hook_rule_tests_pass():
    """tests/testdata/hooks: modelled hooks take simulated time or fail."""
    path = os.path.join(SOURCE_DIR, "tests", "testdata", "hooks", "hooks.test.yml")
    rc, out = run("test", "rules", "--timeline", path)
    assert rc == 0, out
    assert "SUCCESS: 7 test(s)" in out, out
    assert "hook before_scale_down drain-3 ok after 30s" in out, out
    assert "member kept (on_failure: abandon)" in out, out


def test_simulate_per_member_least_loaded_stops_the_idlest_member():
    with tempfile.TemporaryDirectory() as d:
        rules = write(d, "rules.yml", """groups:
  - name: web
    members: {name_prefix: "web-"}
    min: 2
    max: 3
    scale_down:
      order: least_loaded
      when: [{metric: cpu, aggregate: avg, below: 0.3}]
""")
        t0 = 1714521600
        rows = ["time,member,metric,value"]
        for i in range(0, 5):
            for m, load in (("web-1", 0.3), ("web-2", 0.02), ("web-3", 0.2)):
                rows.append("%d,%s,cpu,%.2f" % (t0 + 60 * i, m, load))
        members = write(d, "members.csv", "\n".join(rows) + "\n")
        rc, out = run("simulate", "--rules", rules, "--group", "web", "--history", members,
                      "--step", "1m", "--load", "per-member")
        assert rc == 0, out
        downs = [l for l in out.splitlines() if "scale_down 3 -> 2" in l]
        assert len(downs) == 1 and "stop web-2 ok" in downs[0], out
        assert "scale_down.order: least_loaded" in out, out


def test_simulate_rejects_bad_input():
    with tempfile.TemporaryDirectory() as d:
        bad = write(d, "bad.csv", "time,member,metric,value\nsoon,web-1,cpu,1\n")
        rc, out = run("simulate", "--rules", os.path.join(RULES, "web.yml"), "--group", "web",
                      "--history", bad)
        assert rc == 2 and "line 2: bad time" in out, out
        rc, out = run("simulate", "--rules", os.path.join(RULES, "web.yml"), "--group", "web")
        assert rc == 2 and "either --history" in out, out


if __name__ == "__main__":
    sys.exit(run_tests([
        test_shipped_rule_tests_pass,
        test_timeline_flag_prints_every_tests_timeline,
        test_docs_simulate_figures_come_from_the_documented_run,
        test_failure_is_a_readable_diff_with_exit_1,
        test_invalid_file_exit_2_with_file_line,
        test_simulate_csv_history_timeline_and_plot,
        test_simulate_rejects_bad_input,
        test_schedule_rule_tests_pass,
        test_simulate_follows_schedules_on_the_simulated_clock,
        test_scale_down_order_rule_tests_pass,
        test_hook_rule_tests_pass,
        test_simulate_per_member_least_loaded_stops_the_idlest_member,
    ]))
