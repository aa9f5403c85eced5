#!/usr/bin/env python3
"""Hostile scrape sources: a local server answers a `scrape` (or `prometheus`)
source with huge, endless, compressed, stalled, looping, non-finite, too deep
or non-UTF-8 answers. For each case a fresh agent polls it; after at least two
polls of the server the agent is up, its peak RSS stayed under the bound, the
source is reported as failing (virtscale_source_up 0, an expected reason
counted, no value), the group that scales on it held (missing data, no member,
no scale-up), and /api/v1/groups and /api/v1/decisions answer 200 with valid
UTF-8 JSON. Then the agent stops cleanly, even with a request in flight.

  test_sources.py BINARY [CASE...]
"""
import sys
import time
import zlib

from hostile import (MINIMAL_TEMPLATE, HostileAgent, HostileServer, Workdir, agent_config,
                     memory_bound_mb, run_tests, send_body, send_head, time_bound_s, values,
                     wait_until, write_stream)

BINARY = sys.argv[1]
# The agent reads at most 16 MiB of a body (collectors/sources/poll.h); with
# parsing and the agent's own ~25 MB that stays well under this.
BOUND_MB = memory_bound_mb(BINARY, 160)
POLLS = 2  # failed polls to see before judging


def answer(body, content_type="text/plain; version=0.0.4", extra=()):
    """A handler factory for a fixed answer."""
    return lambda server: lambda h: send_body(h, body, content_type, extra)


def json_answer(body):
    return answer(body, "application/json")


def big_body(server):
    """100 MB announced and sent (the agent must stop reading at its cap)."""
    def handle(h):
        total = 100 << 20
        send_head(h, 200, [("Content-Type", "text/plain"), ("Content-Length", str(total))])
        write_stream(h, b"# padding padding padding padding padding padding padding\n" * 1024,
                     total)
    return handle


def endless_chunked(server):
    def handle(h):
        send_head(h, 200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
        chunk = b"m 1\n" * 4096
        write_stream(h, b"%x\r\n%s\r\n" % (len(chunk), chunk), float("inf"))
    return handle


def gzip_bomb():
    """~1 MB of gzip that inflates to 1 GiB of "m 1\\n". Built from one full-flushed
    deflate block repeated, so it takes milliseconds (the trailer's CRC is wrong,
    but a reader that stops at its cap never gets there)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"m 1\n" * (1 << 18)  # 1 MiB
    head = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * 1023 + c.flush()


def stall_before_headers(server):
    return lambda h: server.stall()


def stall_after_headers(server):
    def handle(h):
        send_head(h, 200, [("Content-Type", "text/plain"), ("Content-Length", "1000")])
        h.wfile.write(b"m 1")
        h.wfile.flush()
        server.stall()
    return handle


def redirect_loop(server):
    """.../a redirects to .../b and back."""
    def handle(h):
        target = h.path[:-1] + ("b" if h.path.endswith("a") else "a")
        send_head(h, 302, [("Location", target), ("Content-Length", "0"),
                           ("Connection", "close")])
    return handle


DEPTH = 4 << 20
MILLION_SERIES = b"".join(b'm{i="%d"} 1\n' % i for i in range(1000000))  # 15.9 MB, under the cap
RESULT = b'{"status":"success","data":{"resultType":"vector","result":[%s]}}'

# name -> (source type, handler factory(server), reasons that count as failing)
CASES = {
    "body_100mb": ("scrape", big_body, {"response_too_large"}),
    "million_series": ("scrape", answer(MILLION_SERIES), {"parse"}),
    "endless_chunked": ("scrape", endless_chunked, {"response_too_large", "timeout"}),
    "gzip_bomb": ("scrape", answer(gzip_bomb(), extra=[("Content-Encoding", "gzip")]),
                  {"response_too_large"}),
    "stall_before_headers": ("scrape", stall_before_headers, {"timeout"}),
    "stall_after_headers": ("scrape", stall_after_headers, {"timeout"}),
    # Followed or not (collectors/sources/poll.cc decides), a loop must fail.
    "redirect_loop": ("scrape", redirect_loop, {"connection", "http_status"}),
    "value_nan": ("scrape", answer(b"m NaN\n"), {"nan"}),
    "value_inf": ("scrape", answer(b"m +Inf\n"), {"inf"}),
    "value_1e309": ("scrape", answer(b"m 1e309\n"), {"parse"}),
    "label_invalid_utf8": ("scrape", answer(b'm{q="caf\xe9 \xff\xfe"} 1\n'), {"parse"}),
    "json_4m_deep": ("prometheus", json_answer(b"[" * DEPTH + b"]" * DEPTH), {"bad_json"}),
    "json_million_values": ("prometheus", json_answer(RESULT % (b"0," * 1000000 + b"0")),
                            {"response_too_large"}),
    # A 15 MB error text, quoted into every decision: it must not be kept whole.
    "json_error_15mb": ("prometheus", json_answer(
        b'{"status":"error","errorType":"bad_data","error":"%s"}' % (b"e" * (15 << 20))),
        {"query_error"}),
}

RULES = """groups:
  - name: g
    template: t.xml
    min: 0
    max: 2
    interval: 500ms
    scale_up:
      when:
        - {metric: "source:s", above: 0}
"""


def source_config(kind, url):
    what = "query: m" if kind == "prometheus" else "metric: m"
    return ("  s:\n    type: %s\n    url: %s\n    %s\n    interval: 1s\n    timeout: 1s\n"
            % (kind, url, what))


def errors(agent):
    """{reason: count} of source s."""
    return {l["reason"]: v for n, l, v in agent.samples()
            if n == "virtscale_source_errors_total" and l.get("source") == "s"}


def judge(agent, name, reasons):
    """The checks after the polls; returns (reasons seen, decision reason, peak MB)."""
    seen = {r for r, n in errors(agent).items() if n}
    assert seen <= reasons, "%s: failed with %s, want %s" % (name, seen, reasons)
    samples = agent.samples()
    assert values(samples, "virtscale_source_up", source="s") == [0.0]
    assert values(samples, "virtscale_source_value", source="s") == []
    decision = wait_until(lambda: next(
        (d for d in agent.decisions() if d["group"] == "g" and
         "source:s" in d["reason"] and "pending" not in d["reason"]), None),
        10, "a decision of g that names the source's error")
    assert "missing data" in decision["reason"], decision["reason"]
    assert agent.groups()["g"][2] == [], agent.groups()
    assert agent.scale_ups() == 0
    agent.assert_up()
    return seen, decision["reason"], agent.assert_memory(BOUND_MB, name)


def run_case(name):
    kind, make_handler, reasons = CASES[name]
    work = Workdir("source")
    try:
        with HostileServer() as server:
            prefix = "/%s/" % name
            route = server.route(prefix, make_handler(server))
            work.write("t.xml", MINIMAL_TEMPLATE)
            work.write("rules.yml", RULES)
            config = work.write("virtscale.yml", agent_config(
                sources=source_config(kind, server.url + prefix + "a")))
            agent = HostileAgent(BINARY, config=config)
            start = time.monotonic()
            try:
                agent.start()
                wait_until(lambda: route.hits >= POLLS and sum(errors(agent).values()) >= POLLS,
                           time_bound_s(BINARY, 20), "%d failed polls of %s" % (POLLS, name))
                polls = time.monotonic() - start
                seen, reason, peak = judge(agent, name, reasons)
            finally:
                stop_start = time.monotonic()
                rc = agent.close(timeout=time_bound_s(BINARY, 10))
                stopped = time.monotonic() - stop_start
        assert rc == 0, "%s: agent exited %s on SIGTERM" % (name, rc)
        print("  %-20s %s in %.1f s, %d requests; peak %.0f MB (bound %d); stop %.1f s;\n"
              "  %20s %.150s" % (name, ",".join(sorted(seen)), polls, route.hits, peak,
                                 BOUND_MB, stopped, "", reason), flush=True)
    finally:
        work.cleanup()


def make_test(name):
    def test():
        run_case(name)
    test.__name__ = "test_" + name
    return test


if __name__ == "__main__":
    only = sys.argv[2:]  # optional case names, for a quick look at one
    sys.exit(run_tests([make_test(n) for n in CASES if not only or n in only]))
