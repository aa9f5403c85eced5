#!/usr/bin/env python3
"""Integration tests of the lifecycle API on libvirt's in-process test driver:
pause and resume a group, protect a member from scale-down, through the real
binary and its endpoints (docs/http-api.md "Lifecycle").

  test_lifecycle.py BINARY
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Agent, Workdir, http, post, run_tests, values  # noqa: E402

BINARY = sys.argv[1]
TEMPLATE = os.path.join(SOURCE_DIR, "config", "templates", "demo.xml")

RULES = """
groups:
  - name: q
    template: %s
    min: 0
    max: 3
    interval: 1s
    scale_up:
      cooldown: 0s
      when: [{metric: "source:queue", per_member_above: 100}]
    scale_down:
      cooldown: 0s
      action: delete
      when: [{metric: "source:queue", per_member_below: 20}]
""" % TEMPLATE


def workdir():
    w = Workdir(prefix="virtscale-lifecycle-")
    w.config = w.write("virtscale.yml",
                       "libvirt: {uri: 'test:///default', sample_interval: 1s}\n"
                       "rule_files: [rules.yml]\n"
                       "sources: {queue: {type: file, path: queue, interval: 500ms}}\n")
    w.write("rules.yml", RULES)
    w.write("queue", "0")
    return w


def group(agent):
    return next(g for g in agent.json("/api/v1/groups")["data"] if g["name"] == "q")


def members(agent):
    return sorted(m["name"] for m in group(agent)["members"])


def last_decision(agent):
    return group(agent)["last_decision"] or {}


def test_pause_holds_protect_shields_and_resume_acts():
    with workdir() as w, Agent(BINARY, "--web.enable-lifecycle", config=w.config) as agent:
        w.write("queue", "1000")
        agent.wait_for(lambda: len(members(agent)) == 3, timeout=60, what="3 members")
        newest = members(agent)[-1]

        status, body = post(agent.url + "/api/v1/groups/q/members/%s/protect" % newest)
        assert status == 200, (status, body)
        assert body["data"]["protected"] is True and body["data"]["persisted"] is True, body
        status, body = post(agent.url + "/api/v1/groups/q/pause")
        assert status == 200, (status, body)
        assert body["data"]["paused"] is True and body["data"]["stored_on"] == 3, body

        # Idle queue: the group wants to shrink, and the pause holds it.
        w.write("queue", "0")
        held = agent.wait_for(
            lambda: (lambda d: d if d.get("held_by") == "paused" and d.get("direction") == "down"
                     else None)(last_decision(agent)), what="a scale-down held by the pause")
        assert "group paused since" in held["reason"], held
        assert len(members(agent)) == 3
        samples = agent.samples()
        assert values(samples, "virtscale_group_paused", group="q") == [1.0]
        assert values(samples, "virtscale_member_protected", group="q", domain=newest) == [1.0]
        status, page = http(agent.url + "/")
        assert 'data-group="q" data-paused="true"' in page, page
        assert 'data-protected="true"' in page
        pauses = agent.json("/api/v1/decisions?group=q&outcome=paused")["data"]
        assert len(pauses) == 1 and pauses[0]["result"] == "ok", pauses

        # Resumed: down to min 0, but the protected member is never chosen.
        status, body = post(agent.url + "/api/v1/groups/q/resume")
        assert status == 200 and body["data"]["paused"] is False, (status, body)
        agent.wait_for(lambda: members(agent) == [newest], timeout=60,
                       what="only the protected member left")
        shielded = agent.wait_for(
            lambda: (lambda d: d if "protected, never chosen: " + newest in d.get("reason", "")
                     else None)(last_decision(agent)),
            what="a decision naming the protected member")
        assert shielded["held_by"] == "no_candidate", shielded
        assert group(agent)["paused"] is False
        assert values(agent.samples(), "virtscale_group_paused", group="q") == [0.0]


def test_unknown_group_and_member_are_404():
    with workdir() as w, Agent(BINARY, "--web.enable-lifecycle", config=w.config) as agent:
        status, body = post(agent.url + "/api/v1/groups/nope/pause")
        assert status == 404 and body["error"] == "no group nope", (status, body)
        status, body = post(agent.url + "/api/v1/groups/q/members/test/protect")
        assert status == 404, (status, body)  # the driver's own domain is not a member of q
        status, _ = http(agent.url + "/api/v1/groups/q/pause")
        assert status == 405


def test_without_the_flag_the_endpoints_are_403():
    with workdir() as w, Agent(BINARY, config=w.config) as agent:
        for path in ("/api/v1/groups/q/pause", "/api/v1/groups/q/resume",
                     "/api/v1/groups/q/members/x/protect", "/api/v1/groups/q/members/x/unprotect"):
            status, body = post(agent.url + path)
            assert status == 403 and "--web.enable-lifecycle" in body, (path, status, body)
        assert group(agent)["paused"] is False


def test_dry_run_pauses_in_memory_only():
    with workdir() as w, Agent(BINARY, "--dry-run", "--web.enable-lifecycle",
                               config=w.config) as agent:
        status, body = post(agent.url + "/api/v1/groups/q/pause")
        assert status == 200, (status, body)
        assert body["data"]["persisted"] is False and "dry run" in body["data"]["note"], body
        w.write("queue", "1000")
        agent.wait_for(lambda: last_decision(agent).get("held_by") == "paused",
                       what="a decision held by the pause")
        assert members(agent) == []


if __name__ == "__main__":
    sys.exit(run_tests([
        test_pause_holds_protect_shields_and_resume_acts,
        test_unknown_group_and_member_are_404,
        test_without_the_flag_the_endpoints_are_403,
        test_dry_run_pauses_in_memory_only,
    ]))
