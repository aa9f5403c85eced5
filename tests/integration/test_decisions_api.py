#!/usr/bin/env python3
"""/api/v1/decisions over real HTTP: filters by group, outcome, since, changes
and limit on the agent's own history; bad parameters get 400 with a JSON
message naming the parameter; decision records and /metrics use the same words
for dry-run actions. libvirt's test driver, loopback only.

  test_decisions_api.py BINARY
"""
import datetime
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SOURCE_DIR, Agent, http, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")

CONFIG = """
libvirt: {uri: "test:///default", sample_interval: 1s}
rule_files: [rules.yml]
sources:
  queue: {type: file, path: queue, interval: 500ms}
"""
RULES = """
groups:
  - name: q                    # 250 queued: three members of 100
    template: %s
    min: 0
    max: 5
    interval: 1s
    target: {metric: "source:queue", per_member_target: 100}
    scale_up: {cooldown: 1s}
  - name: idle                 # no members, no data: held every second
    members: {name_prefix: "idle-"}
    min: 0
    max: 2
    interval: 1s
    scale_up:
      when: [{metric: cpu, above: 0.9}]
""" % TEMPLATE


class Workdir(harness.Workdir):
    def __init__(self):
        super().__init__(prefix="virtscale-decisions-")
        for name, text in (("virtscale.yml", CONFIG), ("rules.yml", RULES), ("queue", "250\n")):
            self.write(name, text)
        self.config = self.path("virtscale.yml")


def query(agent, params):
    """(status, parsed JSON body) of /api/v1/decisions with `params` (a list of pairs)."""
    status, body = http(agent.url + "/api/v1/decisions?" + urllib.parse.urlencode(params))
    return status, json.loads(body)


def records(agent, *params):
    status, body = query(agent, list(params))
    assert status == 200 and body["status"] == "success", (status, body)
    return body["data"]


def test_filters_select_from_the_history():
    with Workdir() as w, Agent(BINARY, config=w.config) as agent:
        agent.wait_for(lambda: records(agent, ("group", "q"), ("outcome", "scale_up")),
                       timeout=60, what="a scale-up of q")
        agent.wait_for(lambda: len(records(agent, ("group", "idle"))) >= 3, what="idle evaluations")

        ups = records(agent, ("group", "q"), ("outcome", "scale_up"))
        assert all(d["group"] == "q" and d["outcome"] == "scale_up" for d in ups), ups
        assert all(a["result"] in ("pending", "ok") for d in ups for a in d["actions"]), ups

        idle = records(agent, ("group", "idle"), ("limit", "2"))
        assert len(idle) == 2 and all(d["group"] == "idle" for d in idle), idle
        assert idle[0]["id"] > idle[1]["id"], "newest first"

        both = records(agent, ("group", "q"), ("group", "idle"), ("limit", "10000"))
        assert {d["group"] for d in both} == {"q", "idle"}
        held_or_none = records(agent, ("outcome", "held"), ("outcome", "none"), ("limit", "10000"))
        assert held_or_none and all(d["outcome"] in ("held", "none") for d in held_or_none)

        changes = records(agent, ("changes", "true"))
        assert changes and all(d["actions"] for d in changes), changes
        assert {d["id"] for d in ups} <= {d["id"] for d in changes}

        # since: at or after; offsets and fractions; a raw "+" in a URL is a space.
        newest = records(agent, ("limit", "1"))[0]
        t = datetime.datetime.fromisoformat(newest["time"].replace("Z", "+00:00"))
        later = (t + datetime.timedelta(hours=1)).astimezone(
            datetime.timezone(datetime.timedelta(hours=2)))
        assert later.isoformat(timespec="milliseconds").endswith("+02:00")
        assert records(agent, ("since", later.isoformat(timespec="milliseconds"))) == []
        recent = records(agent, ("since", newest["time"]), ("limit", "10000"))
        assert newest["id"] in [d["id"] for d in recent]
        assert all(d["time"] >= newest["time"] for d in recent), recent
        raw_plus = http(agent.url + "/api/v1/decisions?since=2026-12-01T11:00:00+01:00")
        assert raw_plus[0] == 400 and "since" in json.loads(raw_plus[1])["error"], raw_plus


def test_bad_parameters_are_400_naming_the_parameter():
    with Workdir() as w, Agent(BINARY, config=w.config) as agent:
        bad = [([("limit", v)], "limit") for v in ("0", "-1", "2.5", "abc", "10001", "")]
        bad += [([("outcome", v)], "outcome") for v in ("skipped", "dry_run", "scale-up")]
        bad += [([("since", v)], "since") for v in ("yesterday", "2026-12-01T10:00:00")]
        bad += [([("changes", "maybe")], "changes"), ([("limit", "5"), ("limit", "6")], "limit")]
        for params, name in bad:
            status, body = query(agent, params)
            assert status == 400, (params, status, body)
            assert body["status"] == "error" and body["errorType"] == "bad_data", body
            assert body["error"].startswith(name + ":"), (params, body)
        assert len(records(agent, ("limit", "1"), ("unknown", "x"))) <= 1  # ignored


def test_dry_run_words_match_the_metric():
    with Workdir() as w, Agent(BINARY, "--dry-run", config=w.config) as agent:
        dry = agent.wait_for(lambda: records(agent, ("group", "q"), ("changes", "true")),
                             timeout=60, what="a dry-run change")
        assert dry[0]["outcome"] == "held" and dry[0]["held_by"] == "dry_run", dry[0]
        assert dry[0]["result"] == "dry_run"
        assert {a["result"] for a in dry[0]["actions"]} == {"dry_run"}, dry[0]["actions"]
        counted = values(agent.samples(), "virtscale_scale_actions_total", group="q",
                         direction="up", result="dry_run")
        assert counted and counted[0] >= len(dry[0]["actions"]), counted
        decided = values(agent.samples(), "virtscale_group_decisions_total", group="q",
                         outcome="held", held_by="dry_run")
        assert decided and decided[0] >= 1, decided


if __name__ == "__main__":
    sys.exit(run_tests([test_filters_select_from_the_history,
                        test_bad_parameters_are_400_naming_the_parameter,
                        test_dry_run_words_match_the_metric]))
