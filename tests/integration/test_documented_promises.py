#!/usr/bin/env python3
"""Promises of the README and the design that no other test holds the agent to,
checked on the real binary (libvirt's test driver, loopback HTTP):

- invalid flags: the agent does not start and says which flag (exit 2 is the
  documented code: see TODO_AGENT_BUGS below);
- a config without groups opens libvirt read-only (the start log says
  libvirt_read_only=true, with groups false), and a reload that adds groups to
  a read-only agent names the restart it needs;
- --log.format=json and --log.level;
- flags override the config file (--web.listen-address over web.listen_address,
  --libvirt.uri over libvirt.uri);
- the shipped config/virtscale.yml and config/demo.yml pass `check config`, and
  the demo runs and scales;
- /api/v1/decisions?limit=N over HTTP.

  test_documented_promises.py BINARY [--todo]   (--todo: also the TODO tests)
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, Workdir, free_port, http, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
CONFIG_DIR = os.path.join(SOURCE_DIR, "config")
TEMPLATE = os.path.join(CONFIG_DIR, "templates", "demo.xml")


def run(*args, timeout=30):
    p = subprocess.run([BINARY] + list(args), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def start_line(agent):
    lines = [l for l in agent.logs().splitlines() if 'msg="starting virtscale"' in l]
    assert len(lines) == 1, agent.logs()
    return lines[0]


INVALID_FLAGS = [
    ["--bogus"],
    ["--log.level=loud"],
    ["--log.format=xml"],
    ["--web.listen-address"],  # missing value
]


def test_invalid_flags_refuse_to_start_and_name_the_flag():
    for args in INVALID_FLAGS:
        rc, out, err = run("--libvirt.uri=test:///default", "--web.listen-address=127.0.0.1:0",
                           *args) if args != ["--web.listen-address"] else run(
            "--libvirt.uri=test:///default", *args)
        flag = args[0].split("=")[0]
        assert rc != 0, (args, rc)
        assert flag in err, (args, err)
        assert "starting virtscale" not in out + err, (args, err)


def test_invalid_flags_exit_2():
    # The documented exit code for invalid flags is 2 (promtool convention;
    # agent/simulate_command.h: "2 on bad flags").
    got = {}
    for args in INVALID_FLAGS + [["check", "config"], ["test", "rules", "--bogus"],
                                 ["simulate", "--bogus"]]:
        rc, _, _ = run("--web.listen-address=127.0.0.1:0", *args)
        got[" ".join(args)] = rc
    assert all(rc == 2 for rc in got.values()), got


def test_read_only_without_groups_and_reload_adding_groups():
    with Workdir() as w:
        w.write("rules.yml", "groups: []\n")
        cfg = w.write("virtscale.yml", 'libvirt:\n  uri: "test:///default"\n  sample_interval: 1s\n'
                      'rule_files: ["rules.yml"]\n')
        with Agent(BINARY, "--web.enable-lifecycle", config=cfg) as agent:
            assert "libvirt_read_only=true" in start_line(agent), start_line(agent)
            assert agent.json("/api/v1/groups")["data"] == []
            # A reload that adds a group to this read-only agent: either it is
            # rejected (the running config stays, reload_successful 0) or it is
            # taken with a warning; both must say that a restart is needed.
            w.write("rules.yml", "groups:\n  - name: late\n    template: %s\n    min: 0\n"
                    "    max: 1\n" % TEMPLATE)
            status, body = http(agent.url + "/-/reload", method="POST", data=b"")
            ok = values(agent.samples(), "virtscale_config_last_reload_successful")
            groups = [g["name"] for g in agent.json("/api/v1/groups")["data"]]
            logs = agent.logs()
            if status == 200:
                assert ok == [1.0], ok
                warn = [l for l in logs.splitlines() if "level=warn" in l and "restart" in l]
                assert warn, "reload added groups to a read-only agent without a warning:\n" + logs
                print("  reload adding groups: accepted with warning: %s" % warn[0])
            else:
                assert status == 500 and "restart" in body, (status, body)
                assert ok == [0.0], ok
                assert groups == [], groups  # the running config is kept
                print("  reload adding groups: rejected: %s" % body.strip()[:200])
    with Workdir() as w:
        w.write("rules.yml", "groups:\n  - name: g\n    template: %s\n    min: 0\n    max: 1\n"
                % TEMPLATE)
        cfg = w.write("virtscale.yml", 'libvirt:\n  uri: "test:///default"\n'
                      'rule_files: ["rules.yml"]\n')
        with Agent(BINARY, config=cfg) as agent:
            assert "libvirt_read_only=false" in start_line(agent), start_line(agent)


def test_log_format_json_and_log_level():
    with Agent(BINARY, "--libvirt.uri=test:///default", "--log.format=json",
               "--log.level=debug") as agent:
        agent.wait_for(lambda: agent.samples(), what="a scrape")
        time.sleep(0.5)
        lines = [l for l in agent.logs().splitlines() if l.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError("not a JSON log line: %r" % line)
    assert all({"ts", "level", "msg"} <= set(r) for r in records), records[:3]
    start = [r for r in records if r["msg"] == "starting virtscale"]
    assert start and start[0]["level"] == "info" and start[0]["uri"] == "test:///default", start
    assert any(r["level"] == "debug" for r in records), "no debug line at --log.level=debug"
    # The default level is info: no debug lines.
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        agent.samples()
        time.sleep(0.5)
        logs = agent.logs()
    assert "level=info" in logs and "level=debug" not in logs, logs
    # warn: not even the start line; a warning still shows.
    with Workdir() as w:
        cfg = w.write("virtscale.yml", 'libvirt:\n  uri: "test:///default"\n')
        with Agent(BINARY, "--log.level=warn", "--web.enable-lifecycle", config=cfg) as agent:
            w.write("virtscale.yml", "libvirt: [\n")
            http(agent.url + "/-/reload", method="POST", data=b"")
            logs = agent.logs()
    assert "level=info" not in logs and "level=debug" not in logs, logs
    assert "reload rejected" in logs and ("level=warn" in logs or "level=error" in logs), logs


def listening(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_flags_override_the_config_file():
    with Workdir() as w:
        config_port = free_port()
        cfg = w.write("virtscale.yml", 'libvirt:\n  uri: "qemu:///nonexistent-uri"\n'
                      'web:\n  listen_address: "127.0.0.1:%d"\n' % config_port)
        # Agent passes --web.listen-address=127.0.0.1:<its own port>.
        with Agent(BINARY, "--libvirt.uri=test:///default", config=cfg) as agent:
            assert agent.port != config_port
            line = start_line(agent)
            assert "listen=127.0.0.1:%d" % agent.port in line, line
            assert "uri=test:///default" in line, line
            assert values(agent.samples(), "libvirt_up") == [1.0]
            assert not listening(config_port), "also listening on web.listen_address"
        # Without the flag the config's address is used.
        agent = Agent(BINARY, "--libvirt.uri=test:///default")
        agent.port = config_port
        agent.proc = subprocess.Popen([BINARY, "--libvirt.uri=test:///default",
                                       "--config.file=" + cfg], stdout=agent.log,
                                      stderr=subprocess.STDOUT)
        try:
            agent.wait_ready()
            assert "listen=127.0.0.1:%d" % config_port in start_line(agent)
        finally:
            agent.stop()
            os.unlink(agent.log.name)


def test_shipped_configs_pass_check_config():
    for name in ("virtscale.yml", "demo.yml"):
        rc, out, err = run("check", "config", os.path.join(CONFIG_DIR, name))
        assert rc == 0 and "SUCCESS" in out, (name, rc, out, err)
        assert "2 scaling group(s)" in out, (name, out)


def test_demo_config_runs_and_scales():
    # config/demo.yml as the README runs it, on an ephemeral port (the flag
    # overrides its 127.0.0.1:9177). Its queue file is the README's
    # /tmp/virtscale-demo-queue: whatever is there, the "demo" group (CPU of the
    # test driver's domains, ~0.5 > 0.3 for 4 s) grows from 1.
    with Agent(BINARY, config=os.path.join(CONFIG_DIR, "demo.yml")) as agent:
        s = agent.samples()
        assert values(s, "libvirt_up") == [1.0]
        groups = {g["name"]: g for g in agent.json("/api/v1/groups")["data"]}
        assert set(groups) == {"demo", "queue"}, groups
        assert [m["name"] for m in groups["demo"]["members"]] == ["test"], groups["demo"]
        agent.wait_for(lambda: values(agent.samples(), "virtscale_scale_actions_total",
                                      group="demo", direction="up", result="ok") == [1.0],
                       timeout=30, what="the demo group's first scale-up")
        # The created member shows from the next sample on (2 s).
        members = agent.wait_for(lambda: (lambda m: m if "demo-1" in m else None)(
            [m["name"] for m in {g["name"]: g for g in agent.json("/api/v1/groups")["data"]}[
                "demo"]["members"]]), timeout=10, what="demo-1 a member")
        assert "test" in members, members


def test_decisions_limit_over_http():
    with Workdir() as w:
        w.write("rules.yml", "groups:\n  - name: g\n    template: %s\n    min: 0\n    max: 1\n"
                "    interval: 200ms\n" % TEMPLATE)
        cfg = w.write("virtscale.yml", 'libvirt:\n  uri: "test:///default"\n  sample_interval: 1s\n'
                      'rule_files: ["rules.yml"]\n')
        with Agent(BINARY, config=cfg) as agent:
            agent.wait_for(lambda: len(agent.json("/api/v1/decisions")["data"]) >= 6, 30,
                           what="six decisions")
            everything = agent.json("/api/v1/decisions?limit=10000")["data"]
            ids = [d["id"] for d in everything]
            assert ids == sorted(ids, reverse=True), ids  # newest first
            for n in (1, 3, 5):
                got = agent.json("/api/v1/decisions?limit=%d" % n)["data"]
                assert len(got) == n, (n, len(got))
                # The newest n, newest first (decisions only grow meanwhile).
                got_ids = [d["id"] for d in got]
                assert got_ids == sorted(got_ids, reverse=True) and got_ids[0] >= ids[0], got_ids
            default = agent.json("/api/v1/decisions")["data"]
            assert 6 <= len(default) <= 100, len(default)
            # Out of 1..10000 or not an integer: refused, never clamped or truncated.
            for bad in ("0", "-1", "2.5", "abc", "-", "10001"):
                status, body = http(agent.url + "/api/v1/decisions?limit=" + bad)
                assert status == 400 and json.loads(body)["error"].startswith("limit: "), \
                    (bad, status, body)


TESTS = [test_invalid_flags_refuse_to_start_and_name_the_flag, test_invalid_flags_exit_2,
         test_read_only_without_groups_and_reload_adding_groups,
         test_log_format_json_and_log_level, test_flags_override_the_config_file,
         test_shipped_configs_pass_check_config, test_demo_config_runs_and_scales,
         test_decisions_limit_over_http]
# Documented behaviour the agent does not have yet; kept out of the run so that
# the suite stays green, listed so that nobody forgets them.
TODO_AGENT_BUGS = []

if __name__ == "__main__":
    sys.exit(run_tests(TESTS + (TODO_AGENT_BUGS if "--todo" in sys.argv else [])))
