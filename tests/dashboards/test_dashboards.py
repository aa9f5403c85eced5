#!/usr/bin/env python3
"""Proof test for dashboards/: the Grafana dashboards and the Prometheus rules
against a real agent scraped by a real Prometheus.

  test_dashboards.py VIRTSCALE_BINARY [--dump FILE] [--hold SECONDS] [--drain-after SECONDS]

1. promtool checks the rule files and runs their unit tests.
2. The dashboard JSON is what dashboards/generate.py produces, and is
   importable as-is (datasource variable, $instance on every query, units,
   counters only under rate()/increase()).
3. The agent runs on libvirt's test driver with tests/dashboards/fixtures (a
   group that scales up to its max), Prometheus scrapes it every second with
   the recording and alert rules loaded. Then every dashboard variable, every
   panel query (Grafana variables substituted), every recording rule and every
   alert expression is evaluated by that Prometheus: each must parse, and must
   return series, except those listed in EXPECTED_EMPTY with a reason. The
   number of series per panel is printed.

--dump FILE writes the autoscaler dashboard's series over the whole run as
JSON (dashboards/render-preview.sh draws it); --hold keeps the scenario running
that long after the group reached max, and --drain-after empties the queue
that many seconds into the hold, so the group scales down again.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
sys.path.insert(0, HERE)

import etcdserver  # noqa: E402
import harness  # noqa: E402
import promserver  # noqa: E402

DASHBOARD_DIR = os.path.join(SOURCE_DIR, "dashboards")
RULES_DIR = os.path.join(DASHBOARD_DIR, "prometheus")
RULE_FILES = [os.path.join(RULES_DIR, "virtscale.rules.yml"),
              os.path.join(RULES_DIR, "virtscale.alerts.yml")]
DASHBOARDS = ["virtscale-host.json", "virtscale-guest.json", "virtscale-autoscaler.json",
              "virtscale-fleet.json"]
FIXTURES = os.path.join(HERE, "fixtures")

JOB = "virtscale"
DOMAIN = "test"  # test:///default's own domain: it has a disk and a NIC
GROUP = "web"    # fixtures/rules/web.yml
GROUP_MAX = 3

# What Grafana substitutes; $instance/$domain/$group come from the variables.
GRAFANA_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}

# Panel queries that may return no series here, and why, keyed by (dashboard,
# panel title, legendFormat); legendFormat None covers every query of the
# panel. Each entry must name an existing query (a stale entry fails the test),
# and every metric such a query reads must still be exported by the agent's
# source code, so a rename is caught even where the test driver has no data.
# (Failure panels are not listed: the agent exports its error counters at 0.)
EXPECTED_EMPTY = {
    ("virtscale-guest.json", "vCPU steal (delay)", None):
        "vcpu.<n>.delay comes from QEMU/KVM bulk stats; the test driver has no vCPU delay",
    ("virtscale-fleet.json", "CPU idle", None):
        "the test driver's node CPU counters (virNodeGetCPUStats) are constant: no time passes "
        "between two samples, so there is no idle share",
    ("virtscale-guest.json", "Disk latency", None):
        "block.<n>.rd/wr.times come from QEMU bulk stats; the test driver's virDomainBlockStats "
        "has no times",
}
CODE_DIRS = ["agent", "autoscale", "collectors"]

# Alert expressions that the fixture makes true (label that must appear);
# every other alert must be silent in this healthy setup.
ALERTS_TRUE_HERE = {
    "VirtscaleGroupAtMaxScaleUpFiring": ("group", GROUP),
    "VirtscaleSourceFailing": ("source", "broken"),
    "VirtscaleFleetHostDown": ("host", "gone"),
}

COUNTER_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*(?:_total|_bucket))\s*\{")
HOSTPORT_RE = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|localhost|:\d{2,5}\b")
LABEL_VALUES_RE = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$")

ARGS = None


def load_dashboard(name):
    with open(os.path.join(DASHBOARD_DIR, name)) as f:
        return json.load(f)


def panels_of(dash):
    for p in dash["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])
        else:
            yield p


def substitute(expr, values):
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${%s}" % name, values[name]).replace("$" + name, values[name])
    if "$" in expr:
        raise AssertionError("unsubstituted variable in: " + expr)
    return expr


def exported_in_code(metric):
    """True when `"metric"` occurs in the agent's C++ sources."""
    needle = '"%s"' % metric
    for d in CODE_DIRS:
        for root, _, files in os.walk(os.path.join(SOURCE_DIR, d)):
            for f in files:
                if f.endswith((".cc", ".h")):
                    with open(os.path.join(root, f), errors="replace") as fh:
                        if needle in fh.read():
                            return True
    return False


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


# ---------------------------------------------------------------- static checks

def test_promtool_check_rules():
    code, out = run([promserver.find_binary("promtool"), "check", "rules"] + RULE_FILES)
    print(out.strip())
    assert code == 0, out
    assert "SUCCESS" in out, out


def test_promtool_rule_unit_tests():
    tests_dir = os.path.join(RULES_DIR, "tests")
    files = sorted(os.path.join(tests_dir, f) for f in os.listdir(tests_dir)
                   if f.endswith(".yml"))
    assert files, "no rule unit tests in " + tests_dir
    code, out = run([promserver.find_binary("promtool"), "test", "rules"] + files)
    print(out.strip())
    assert code == 0, out
    # Every alert of the alert file must be exercised by a unit test.
    with open(RULE_FILES[1]) as f:
        alerts = re.findall(r"^\s*- alert:\s*(\S+)", f.read(), re.M)
    tested = set()
    for path in files:
        with open(path) as f:
            tested |= set(re.findall(r"alertname:\s*(\S+)", f.read()))
    missing = sorted(set(alerts) - tested)
    assert alerts and not missing, "alerts without unit tests: %s" % missing


def test_dashboards_are_generated():
    code, out = run([sys.executable, os.path.join(DASHBOARD_DIR, "generate.py"), "--check"])
    assert code == 0, out


def test_dashboards_are_importable_as_is():
    for name in DASHBOARDS:
        dash = load_dashboard(name)
        where = name
        assert "__inputs" not in dash, where
        assert dash["schemaVersion"] >= 36, where
        assert dash["uid"] and dash["title"], where
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == "prometheus", where
        inst = variables["instance"]
        assert inst["definition"] == "label_values(virtscale_build_info, instance)", where
        ids = set()
        for p in panels_of(dash):
            where = "%s / %s" % (name, p["title"])
            assert p["id"] not in ids, where + ": duplicate id"
            ids.add(p["id"])
            assert {"x", "y", "w", "h"} <= set(p["gridPos"]), where
            assert p["datasource"]["uid"] == "${datasource}", where
            if p["type"] in ("timeseries", "stat", "table"):
                assert p["fieldConfig"]["defaults"].get("unit"), where + ": no unit"
            refs = [t["refId"] for t in p["targets"]]
            assert p["targets"] and len(refs) == len(set(refs)), where
            for t in p["targets"]:
                expr = t["expr"]
                assert t["datasource"]["uid"] == "${datasource}", where
                assert 'instance=~"$instance"' in expr, where + ": no $instance filter: " + expr
                assert not HOSTPORT_RE.search(expr), where + ": hard-coded host: " + expr
                if p["type"] != "table":
                    assert t["legendFormat"], where + ": no legendFormat"
                for m in COUNTER_RE.finditer(expr):
                    before = expr[:m.start()].rstrip()
                    assert before.endswith(("rate(", "increase(")), (
                        "%s: counter %s not under rate()/increase(): %s" % (where, m.group(1),
                                                                           expr))
    keys = set()
    for n in DASHBOARDS:
        for p in panels_of(load_dashboard(n)):
            keys.add((n, p["title"], None))
            keys |= {(n, p["title"], t["legendFormat"]) for t in p["targets"]}
    stale = [k for k in EXPECTED_EMPTY if k not in keys]
    assert not stale, "EXPECTED_EMPTY names panels that do not exist: %s" % stale


def test_expected_empty_queries_read_exported_metrics():
    for n in DASHBOARDS:
        for p in panels_of(load_dashboard(n)):
            for t in p["targets"]:
                if ((n, p["title"], t["legendFormat"]) not in EXPECTED_EMPTY
                        and (n, p["title"], None) not in EXPECTED_EMPTY):
                    continue
                names = set(re.findall(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\{", t["expr"]))
                assert names, t["expr"]
                for name in sorted(names):
                    print("  %s / %s: %s exported in code: %s"
                          % (n, p["title"], name, exported_in_code(name)))
                    assert exported_in_code(name), "%s is not exported by the agent" % name


# ---------------------------------------------------------------- live checks

class Live:
    """The agent on the test driver and a Prometheus scraping it, started once."""

    def __init__(self, binary):
        self.workdir = tempfile.mkdtemp(prefix="virtscale-dash-")
        self.fixtures = os.path.join(self.workdir, "fixtures")
        shutil.copytree(FIXTURES, self.fixtures)
        # The test driver has no job API and no dirtyrate group: the fault shim
        # (fixtures/faults) gives the domain a migration in progress and a
        # measured dirty rate, so the job and dirty-rate panels have data.
        shim = harness.build_fault_shim(self.workdir)
        env = harness.fault_shim_env(shim, os.path.join(self.fixtures, "faults"))
        # Two controllers of the same groups and fleet hosts (hosts: in the
        # fixture, one of them unreachable), one etcd: the agent leads, the
        # follower decides as a dry run.
        self.etcd = etcdserver.Etcd(self.workdir)
        config = os.path.join(self.fixtures, "virtscale.yml")
        with open(config, "a") as f:
            f.write("leader_election:\n  etcd: {endpoints: [\"%s\"], key: /virtscale/dash/leader, "
                    "lease_ttl: 5s}\n" % self.etcd.url)
        self.agent = harness.Agent(binary, config=config, env=env)
        self.follower = harness.Agent(binary, config=config, env=env)
        self.prom = None
        self.started_at = time.time()
        self.instance = None

    def start(self):
        # Prometheus first (the agent's port is chosen already), so it sees the
        # group from its first evaluation on.
        self.etcd.start()
        self.prom = promserver.Prometheus(
            {JOB: ["127.0.0.1:%d" % a.port for a in (self.agent, self.follower)]},
            rule_files=RULE_FILES).start()
        self.started_at = time.time()
        self.agent.start()
        self.instance = "127.0.0.1:%d" % self.agent.port
        q = self.prom.query
        self.prom.wait_for(
            lambda: q('virtscale_leader_election_is_leader{instance="%s"} == 1' % self.instance),
            30, "the agent to lead")
        self.follower.start()
        self.prom.wait_for(lambda: q('count_over_time(up{job="%s"}[1m]) >= 5' % JOB), 60,
                           "five scrapes of the agent")
        self.prom.wait_for(
            lambda: q('virtscale_group_members{group="%s",state="running"} == %d'
                      % (GROUP, GROUP_MAX)), 90,
            "group %s to scale up to its max (%d); agent log:\n%s"
            % (GROUP, GROUP_MAX, self.agent.logs()[-3000:]))
        rules = [r for r in self.prom.rules() if r["type"] == "recording"]
        for r in rules:
            self.prom.wait_for(lambda: q(r["name"]), 30, "recording rule " + r["name"])
        # Rates over the scale-up need a few samples after it, too.
        self.prom.wait_for(
            lambda: q('count_over_time(virtscale_group_members{group="%s",state="running"}'
                      '[1m] offset 3s) >= 1 and virtscale_group_members{state="running"} == %d'
                      % (GROUP, GROUP_MAX)), 30, "samples after the scale-up")
        if ARGS.hold:
            self.run_scenario(ARGS.hold, ARGS.drain_after)
        return self

    def run_scenario(self, hold, drain_after):
        print("holding the scenario for %ds" % hold, flush=True)
        t0 = time.time()
        drained = False
        while time.time() - t0 < hold:
            if drain_after is not None and not drained and time.time() - t0 >= drain_after:
                with open(os.path.join(self.fixtures, "queue_depth"), "w") as f:
                    f.write("0\n")
                drained = True
                print("queue drained at +%ds" % (time.time() - t0), flush=True)
            time.sleep(1)

    def stop(self):
        if self.prom:
            self.prom.__exit__()
        self.follower.__exit__()
        self.agent.__exit__()
        self.etcd.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


LIVE = None
LIVE_ERROR = None


def live():
    """Starts the setup on first use; a failed start fails every live test
    without being retried."""
    global LIVE, LIVE_ERROR
    if LIVE_ERROR is not None:
        raise AssertionError("live setup failed (see the first live test)") from LIVE_ERROR
    if LIVE is None:
        candidate = Live(os.path.abspath(ARGS.binary))
        try:
            LIVE = candidate.start()
        except Exception as e:
            candidate.stop()
            LIVE_ERROR = e
            raise
    return LIVE


def resolve_variables(dash, values):
    """Evaluates the dashboard's label_values() variables like Grafana would,
    checks that the value the test will use is offered, returns the values."""
    prom = live().prom
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = LABEL_VALUES_RE.match(v["definition"])
        assert m, "unsupported variable query: " + v["definition"]
        selector = substitute(m.group(1), values)
        offered = sorted({s["metric"].get(m.group(2)) for s in prom.query(selector)} - {None})
        print("  variable $%s = label_values(%s, %s): %s" % (v["name"], selector, m.group(2),
                                                            offered))
        assert offered, "variable $%s offers nothing" % v["name"]
        if v["name"] == "instance":
            # The leader and the follower; a single-instance dashboard shows the leader.
            assert len(offered) == 2 and live().instance in offered, offered
            values["instance"] = "|".join(offered) if v["multi"] else live().instance
        expected = {"domain": DOMAIN, "group": GROUP}.get(v["name"])
        if expected:
            assert expected in offered, (v["name"], expected, offered)
            values[v["name"]] = expected
    return values


def legend(fmt, metric):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt) or str(metric)


def check_dashboard(name):
    dash = load_dashboard(name)
    prom = live().prom
    print("%s (%s)" % (dash["title"], name))
    grafana_vars = dict(GRAFANA_VARS)
    if ARGS.dump:  # what Grafana picks at this zoom with a 1s scrape interval
        grafana_vars.update(__rate_interval="5s", __interval="1s")
    values = resolve_variables(dash, grafana_vars)
    failures, dump = [], {}
    for p in panels_of(dash):
        for t in p["targets"]:
            reason = (EXPECTED_EMPTY.get((name, p["title"], t["legendFormat"]))
                      or EXPECTED_EMPTY.get((name, p["title"], None)))
            expr = substitute(t["expr"], values)
            try:
                series = prom.query(expr)
            except promserver.QueryError as e:
                failures.append("%s [%s]: does not parse/evaluate: %s\n    %s"
                                % (p["title"], t["refId"], e, expr))
                continue
            print("  %-40s %-28s %3d series  %s" % (p["title"][:40], t["legendFormat"][:28],
                                                     len(series),
                                                   "(may be empty: %s)" % reason
                                                   if not series and reason else ""))
            if not series and not reason:
                failures.append("%s [%s]: no series for %s" % (p["title"], t["refId"], expr))
            if ARGS.dump and name == "virtscale-autoscaler.json":
                rng = prom.query_range(expr, live().started_at, time.time(), 1)
                dump.setdefault(p["title"], {"unit": p["fieldConfig"]["defaults"].get("unit"),
                                             "type": p["type"], "series": []})
                dump[p["title"]]["series"] += [
                    {"legend": legend(t["legendFormat"], s["metric"]),
                     "values": [[float(x), float(y)] for x, y in s["values"]]} for s in rng]
    if dump:
        with open(ARGS.dump, "w") as f:
            json.dump({"group": GROUP, "panels": dump}, f)
        print("wrote", ARGS.dump)
    assert not failures, "\n".join(failures)


def test_host_dashboard_against_prometheus():
    check_dashboard("virtscale-host.json")


def test_guest_dashboard_against_prometheus():
    check_dashboard("virtscale-guest.json")


def test_autoscaler_dashboard_against_prometheus():
    check_dashboard("virtscale-autoscaler.json")


def test_fleet_dashboard_against_prometheus():
    check_dashboard("virtscale-fleet.json")
    # Both controllers, in their roles, and both fleet hosts as they are.
    q = live().prom.query
    roles = {s["metric"]["instance"]: s["value"][1]
             for s in q("virtscale_leader_election_is_leader")}
    assert roles == {live().instance: "1", "127.0.0.1:%d" % live().follower.port: "0"}, roles
    hosts = {(s["metric"]["instance"], s["metric"]["host"]): s["value"][1]
             for s in q("virtscale_host_up")}
    assert {h: v for (i, h), v in hosts.items() if i == live().instance} == \
        {"hv1": "1", "gone": "0"}, hosts


def test_recording_rules_against_prometheus():
    prom = live().prom
    rules = [r for r in prom.rules() if r["type"] == "recording"]
    assert rules, "Prometheus loaded no recording rules"
    failures = []
    for r in rules:
        if r["health"] != "ok":
            failures.append("%s: health %s: %s" % (r["name"], r["health"], r.get("lastError")))
        n_expr = len(prom.query(r["query"]))
        n_recorded = len(prom.query(r["name"]))
        print("  %-50s expr %d series, recorded %d series" % (r["name"], n_expr, n_recorded))
        if not n_expr or not n_recorded:
            failures.append("%s: no series" % r["name"])
    assert not failures, "\n".join(failures)


def test_alert_rules_against_prometheus():
    prom = live().prom
    alerts = [r for r in prom.rules() if r["type"] == "alerting"]
    with open(RULE_FILES[1]) as f:
        declared = re.findall(r"^\s*- alert:\s*(\S+)", f.read(), re.M)
    assert sorted(a["name"] for a in alerts) == sorted(declared), (alerts, declared)
    failures = []
    for a in alerts:
        if a["health"] != "ok":
            failures.append("%s: health %s: %s" % (a["name"], a["health"], a.get("lastError")))
        for key in ("summary", "description"):
            if not a["annotations"].get(key):
                failures.append("%s: no %s" % (a["name"], key))
        if not a.get("duration"):
            failures.append("%s: no `for`" % a["name"])
        series = prom.query(a["query"])
        expect = ALERTS_TRUE_HERE.get(a["name"])
        print("  %-36s %d series (%s)" % (a["name"], len(series),
                                          "true here: %s=%s" % expect if expect
                                          else "silent in a healthy setup"))
        if expect:
            if not any(s["metric"].get(expect[0]) == expect[1] for s in series):
                failures.append("%s: expected a series with %s=%s, got %s"
                                % (a["name"], expect[0], expect[1], series))
        elif series:
            failures.append("%s: fires in a healthy setup: %s" % (a["name"], series))
    assert not failures, "\n".join(failures)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--dump")
    parser.add_argument("--hold", type=float, default=0)
    parser.add_argument("--drain-after", type=float)
    ARGS = parser.parse_args()
    if ARGS.dump:  # render-preview.sh: only the autoscaler's data
        return harness.run_tests([test_autoscaler_dashboard_against_prometheus])
    tests = [test_promtool_check_rules, test_promtool_rule_unit_tests,
             test_dashboards_are_generated, test_dashboards_are_importable_as_is,
             test_expected_empty_queries_read_exported_metrics,
             test_host_dashboard_against_prometheus, test_guest_dashboard_against_prometheus,
             test_autoscaler_dashboard_against_prometheus, test_fleet_dashboard_against_prometheus,
             test_recording_rules_against_prometheus,
             test_alert_rules_against_prometheus]
    try:
        return harness.run_tests(tests)
    finally:
        if LIVE is not None:
            LIVE.stop()


if __name__ == "__main__":
    sys.exit(main())
