#!/usr/bin/env python3
"""Before/after benchmark of the agent's HTTP server: cpp-httplib vs Boost.Beast.

    bench/http_server.py            # about 5 minutes on 2 cores
    bench/http_server.py --quick    # about 2 minutes
    bench/http_server.py --json bench/results/http_server.json | tee bench/results/http_server.txt

Runs two agent binaries on the same machine, one at a time (a fresh agent per
phase and binary, loopback, free ports), and prints a table with after/before:

  1. slowloris: N connections each send a partial request and then one byte
     every 0.5 s (reopened when the server closes them); sequential /metrics
     scrapes meanwhile (test:///default): p50, p99, failed scrapes.
  2. wrk -t2 -cC -dDs --latency on /metrics of a 1000-domain test-driver node
     (scripts/gen-test-node.py): p50, p99, requests/s, errors; two rounds per
     binary in the order before, after, after, before (means reported).
  3. peak and final RSS (VmHWM, VmRSS) of the agent of each phase.
  4. idle crowd: M connections that send nothing (reopened when closed); the
     agent's CPU seconds over a window with the crowd against the same window
     without it, then sequential /metrics scrapes: p50, p99, failed.
  5. lines of the server's source at two git revisions (wc -l, and lines that
     are neither blank nor comment only).

The crowds run in a child process, so their Python work does not sit in the
scraper's process. Nothing here asserts a time. Python 3 standard library and wrk.
"""
import argparse
import errno
import hashlib
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (ROOT, Scraper, cleanups, cpu_seconds, environment, free_port,  # noqa: E402
                      gen_test_node, install_cleanup, log, loadavg, metric_value, quantile,
                      start_virtscale, status_kib, stop, wait_http, wrk)

DEFAULT_URI = "test:///default"
SLOWLORIS_HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SLOWLORIS_TRICKLE = b"X-Slowloris: 1\r\n"  # sent one byte a tick, never the blank line
BEFORE_FILES = ["agent/http_server.cc", "agent/http_server.h"]
SERVER_FILES = ["agent/http_server.cc", "agent/http_server.h"]
ENDPOINT_FILES = ["agent/endpoints.cc", "agent/endpoints.h"]


# ---------------------------------------------------------------- connection crowds


class Crowd:
    """`size` connections to 127.0.0.1:port kept open by a child process: "idle"
    ones send nothing, "slowloris" ones a partial request and then one byte per
    `tick` seconds. A connection the server closes (or answers) is reopened at once.

        with Crowd(port, 200, "slowloris") as crowd:
            crowd.wait_open(10)
            ... crowd.open_now() ...
        crowd.stats  # opens, server_closes, answers, connect_errors
    """

    FIELDS = ("open", "opens", "server_closes", "answers", "connect_errors")

    def __init__(self, port, size, mode, tick=0.5):
        self.port, self.size, self.mode, self.tick = port, size, mode, tick
        self.counters = {k: multiprocessing.Value("q", 0, lock=False) for k in self.FIELDS}
        self.done = multiprocessing.Event()
        self.proc = None
        self.stats = None
        self.started = None

    def __enter__(self):
        self.proc = multiprocessing.Process(target=self._run, daemon=True)
        self.proc.start()
        self.started = time.time()
        cleanups.append(self._stop)
        return self

    def __exit__(self, *exc):
        self._stop()
        cleanups.remove(self._stop)

    def _stop(self):
        if self.proc is None:
            return
        try:
            cpu = cpu_seconds(self.proc.pid)  # the crowd's own CPU, on the same cores
        except OSError:
            cpu = None
        self.done.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.proc = None
        self.stats = {k: v.value for k, v in self.counters.items() if k != "open"}
        self.stats.update(seconds=round(time.time() - self.started, 1), cpu_s=cpu)
        # The first `size` opens fill the crowd; the rest are reopens.
        self.stats["reopens"] = max(0, self.stats["opens"] - self.size)

    def open_now(self):
        return self.counters["open"].value

    def wait_open(self, timeout):
        deadline = time.time() + timeout
        while self.open_now() < self.size and time.time() < deadline:
            time.sleep(0.05)
        return self.open_now()

    # -- child process

    def _run(self):
        try:
            self._loop()
        except (KeyboardInterrupt, SystemExit):
            pass

    def _loop(self):
        c = self.counters
        sel = selectors.DefaultSelector()
        conns = {}  # socket -> {"state": "connecting"|"open", "sent": bytes of the trickle}
        next_tick = time.monotonic() + self.tick

        def drop(sock):
            if conns.pop(sock)["state"] == "open":
                c["open"].value -= 1
            sel.unregister(sock)
            sock.close()

        def opened(sock):
            conns[sock]["state"] = "open"
            c["open"].value += 1
            c["opens"].value += 1
            sel.modify(sock, selectors.EVENT_READ)
            if self.mode == "slowloris":
                sock.send(SLOWLORIS_HEAD)

        while not self.done.is_set():
            while len(conns) < self.size:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                err = sock.connect_ex(("127.0.0.1", self.port))
                if err not in (0, errno.EINPROGRESS):
                    c["connect_errors"].value += 1
                    sock.close()
                    break
                conns[sock] = {"state": "connecting", "sent": 0}
                sel.register(sock, selectors.EVENT_WRITE)
                if err == 0:
                    opened(sock)
            timeout = max(0.0, min(0.1, next_tick - time.monotonic()))
            for key, events in sel.select(timeout):
                sock = key.fileobj
                if sock not in conns:
                    continue
                try:
                    if conns[sock]["state"] == "connecting":
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            c["connect_errors"].value += 1
                            drop(sock)
                        else:
                            opened(sock)
                        continue
                    data = sock.recv(4096)
                    if data:
                        c["answers"].value += 1  # e.g. 408, 503: the server gives up on it
                    c["server_closes"].value += 1
                    drop(sock)
                except OSError:
                    c["server_closes"].value += 1
                    drop(sock)
            if time.monotonic() >= next_tick:
                next_tick += self.tick
                if self.mode != "slowloris":
                    continue
                for sock, st in list(conns.items()):
                    if st["state"] != "open":
                        continue
                    byte = SLOWLORIS_TRICKLE[st["sent"] % len(SLOWLORIS_TRICKLE)]
                    try:
                        sock.send(bytes([byte]))
                        st["sent"] += 1
                    except OSError:
                        c["server_closes"].value += 1
                        drop(sock)
        for sock in list(conns):
            drop(sock)


# ---------------------------------------------------------------- measurement


def memory(pid):
    return {"hwm_mib": round(status_kib(pid, "VmHWM") / 1024, 1),
            "rss_mib": round(status_kib(pid, "VmRSS") / 1024, 1)}


def start_agent(binary, uri, args, workdir, label):
    """A fresh agent, ready, with two samples taken and `args.warmup` scrapes done."""
    port = free_port()
    proc = start_virtscale(uri, workdir, port, os.path.join(workdir, label + ".log"),
                           args.sample_interval, binary=binary)
    wait_http(port, "/-/ready", proc, args.ready_timeout)
    s = Scraper(port, timeout=args.scrape_timeout)
    while (metric_value(s.get()[2], "virtscale_samples_total") or 0) < 2:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (label, proc.returncode))
        time.sleep(0.2)
    for _ in range(args.warmup):
        s.get()
    s.close()
    return proc, port


def scrapes(port, args, crowd=None):
    """`args.scrapes` sequential keep-alive /metrics scrapes, `args.scrape_gap`
    seconds apart; a scrape fails on an error or a status other than 200 (the
    client reconnects once, as Scraper does, and that time counts). Latency is
    over the scrapes that succeeded."""
    s = Scraper(port, timeout=args.scrape_timeout)
    times, failed, min_open = [], 0, None
    for i in range(args.scrapes):
        if i:
            time.sleep(args.scrape_gap)
        if crowd is not None:
            n = crowd.open_now()
            min_open = n if min_open is None else min(min_open, n)
        t0 = time.perf_counter()
        try:
            _, status, body = s.get()
            ok = status == 200 and body
        except OSError:
            ok = False
        if ok:
            times.append(time.perf_counter() - t0)
        else:
            failed += 1
    s.close()
    r = {"scrapes": args.scrapes, "failed": failed,
         "p50_ms": round(1e3 * quantile(times, 0.5), 3) if times else None,
         "p99_ms": round(1e3 * quantile(times, 0.99), 3) if times else None,
         "max_ms": round(1e3 * max(times), 3) if times else None}
    if crowd is not None:
        r["crowd_min_open"] = min_open
    return r


def slowloris_phase(binary, args, workdir, label):
    proc, port = start_agent(binary, DEFAULT_URI, args, workdir, label)
    try:
        with Crowd(port, args.slowloris, "slowloris") as crowd:
            opened = crowd.wait_open(10)
            time.sleep(1)  # every connection has trickled a byte or two
            r = scrapes(port, args, crowd)
            r["crowd_open_at_start"] = opened
        r["crowd"] = crowd.stats
        r.update(memory(proc.pid))
    finally:
        stop(proc)
    return r


def idle_phase(binary, args, workdir, label):
    proc, port = start_agent(binary, DEFAULT_URI, args, workdir, label)
    try:
        cpu0 = cpu_seconds(proc.pid)
        time.sleep(args.cpu_window)
        r = {"cpu_s_without_crowd": round(cpu_seconds(proc.pid) - cpu0, 2)}
        with Crowd(port, args.idle, "idle") as crowd:
            r["crowd_open_at_start"] = crowd.wait_open(10)
            cpu0, t0 = cpu_seconds(proc.pid), time.time()
            time.sleep(args.cpu_window)
            r["cpu_s_with_crowd"] = round(cpu_seconds(proc.pid) - cpu0, 2)
            r["cpu_window_s"] = round(time.time() - t0, 2)
            r.update(scrapes(port, args, crowd))
        r["crowd"] = crowd.stats
        r.update(memory(proc.pid))
    finally:
        stop(proc)
    return r


def wrk_phase(binary, node, args, workdir, label):
    proc, port = start_agent(binary, "test://" + node, args, workdir, label)
    try:
        _, _, body = Scraper(port, timeout=args.scrape_timeout).get()
        if b'domain="vm-1000"' not in body:
            raise RuntimeError("%s does not export the 1000 domains of %s" % (label, node))
        wrk(port, args.connections, max(1, args.wrk_seconds // 5))  # warm-up, not counted
        r = wrk(port, args.connections, args.wrk_seconds)
        r.pop("raw_output")
        r["body_bytes"] = len(body)
        r.update(memory(proc.pid))
    finally:
        stop(proc)
    return r


def merge_wrk_rounds(rounds):
    """Rounds of one binary as one: mean p50, p99 and requests/s, summed
    requests and errors, the highest RSS figures; the rounds themselves kept."""
    def mean(key):
        values = [r[key] for r in rounds if r.get(key) is not None]
        return round(sum(values) / len(values), 3) if values else None
    return {"p50_ms": mean("p50_ms"), "p99_ms": mean("p99_ms"),
            "requests_per_s": mean("requests_per_s"),
            "requests": sum(r["requests"] or 0 for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
            "hwm_mib": max(r["hwm_mib"] for r in rounds),
            "rss_mib": max(r["rss_mib"] for r in rounds),
            "requests_per_s_rounds": [r["requests_per_s"] for r in rounds],
            "p99_ms_rounds": [r.get("p99_ms") for r in rounds],
            "rounds": rounds}


# ---------------------------------------------------------------- lines of code


def code_lines(text):
    """Lines with something besides blanks and C/C++ comments (string and
    character literals are skipped over, so "http://" is not a comment)."""
    count, in_block = 0, False
    for line in text.splitlines():
        code, i, quote = False, 0, None
        while i < len(line):
            ch, two = line[i], line[i:i + 2]
            if in_block:
                if two == "*/":
                    in_block, i = False, i + 2
                    continue
            elif quote:
                code = True
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = None
            elif two == "//":
                break
            elif two == "/*":
                in_block, i = True, i + 2
                continue
            elif ch in "\"'" and not (ch == "'" and i and line[i - 1].isalnum()):  # 1'000
                quote, code = ch, True
            elif not ch.isspace():
                code = True
            i += 1
        count += code
    return count


def lines_of(rev, paths):
    total, code = 0, 0
    for path in paths:
        text = subprocess.run(["git", "-C", ROOT, "show", "%s:%s" % (rev, path)], check=True,
                              stdout=subprocess.PIPE, text=True).stdout
        total += len(text.splitlines())  # what wc -l counts, for files ending in a newline
        code += code_lines(text)
    return {"files": ["%s:%s" % (rev, p) for p in paths], "wc_l": total, "code": code}


def loc(args):
    return {"before_server": lines_of(args.before_rev, BEFORE_FILES),
            "after_server": lines_of(args.after_rev, SERVER_FILES),
            "after_server_endpoints": lines_of(args.after_rev, SERVER_FILES + ENDPOINT_FILES)}


# ---------------------------------------------------------------- report


def ratio(after, before):
    if after is None or before is None:
        return "-"
    if before == 0:
        return "-" if after == 0 else "inf"
    r = after / before
    return ("%.2fx" if r >= 0.1 else "%.2gx") % r


def fmt(v):
    if v is None:
        return "-"
    return "%.2f" % v if isinstance(v, float) else str(v)


def report(res, args):
    b, a = res["before"], res["after"]
    rows = []  # (label, before, after, compare) or a heading string

    def add(label, phase, *keys, compare=True):
        def get(side):
            v = side[phase]
            for k in keys:
                v = v.get(k) if isinstance(v, dict) else None
            return v
        rows.append((label, get(b), get(a), compare))

    rows.append("1. /metrics, %d sequential scrapes %gs apart, %d slowloris connections, %s" %
                (args.scrapes, args.scrape_gap, args.slowloris, DEFAULT_URI))
    add("p50 ms", "slowloris", "p50_ms")
    add("p99 ms", "slowloris", "p99_ms")
    add("max ms", "slowloris", "max_ms")
    add("failed scrapes", "slowloris", "failed")
    add("slowloris connections open at the first scrape", "slowloris", "crowd_open_at_start",
        compare=False)
    add("fewest open at a scrape", "slowloris", "crowd_min_open", compare=False)
    add("slowloris connections closed by the server", "slowloris", "crowd", "server_closes")
    add("seconds the slowloris crowd ran", "slowloris", "crowd", "seconds", compare=False)
    add("CPU s of the slowloris client (same cores)", "slowloris", "crowd", "cpu_s",
        compare=False)
    add("peak RSS MiB (VmHWM)", "slowloris", "hwm_mib")
    add("final RSS MiB (VmRSS)", "slowloris", "rss_mib")
    rows.append("2. wrk -t2 -c%d -d%ds --latency /metrics, %d test domains, %d round(s)%s" %
                (args.connections, args.wrk_seconds, args.domains, args.wrk_rounds,
                 ", mean of the rounds" if args.wrk_rounds > 1 else ""))
    add("p50 ms", "wrk", "p50_ms")
    add("p99 ms", "wrk", "p99_ms")
    add("requests/s", "wrk", "requests_per_s")
    if args.wrk_rounds > 1:
        rows.append(("requests/s of each round", " / ".join(
            "%.0f" % x for x in b["wrk"]["requests_per_s_rounds"]), " / ".join(
            "%.0f" % x for x in a["wrk"]["requests_per_s_rounds"]), False))
    add("errors (socket + non-2xx/3xx)", "wrk", "errors")
    add("peak RSS MiB (VmHWM), highest of the rounds", "wrk", "hwm_mib")
    add("final RSS MiB (VmRSS), highest of the rounds", "wrk", "rss_mib")
    rows.append("4. %d idle connections (reopened when closed), %s" % (args.idle, DEFAULT_URI))
    add("agent CPU s in %gs, no crowd" % args.cpu_window, "idle", "cpu_s_without_crowd")
    add("agent CPU s in %gs, with the crowd" % args.cpu_window, "idle", "cpu_s_with_crowd")
    add("idle connections closed by the server", "idle", "crowd", "server_closes")
    add("seconds the idle crowd ran", "idle", "crowd", "seconds", compare=False)
    add("CPU s of the idle client (same cores)", "idle", "crowd", "cpu_s", compare=False)
    add("/metrics p50 ms (%d scrapes)" % args.scrapes, "idle", "p50_ms")
    add("/metrics p99 ms", "idle", "p99_ms")
    add("failed scrapes", "idle", "failed")
    add("idle connections open before the CPU window", "idle", "crowd_open_at_start",
        compare=False)
    add("fewest open at a scrape", "idle", "crowd_min_open", compare=False)
    add("peak RSS MiB (VmHWM)", "idle", "hwm_mib")
    add("final RSS MiB (VmRSS)", "idle", "rss_mib")
    lines = res["loc"]
    rows.append("5. lines of code (before %s, after %s)" % (args.before_rev, args.after_rev))
    for label, after, key in (("server, wc -l", "after_server", "wc_l"),
                              ("server, non-blank non-comment", "after_server", "code"),
                              ("server + endpoints, wc -l", "after_server_endpoints", "wc_l"),
                              ("server + endpoints, non-blank non-comment",
                               "after_server_endpoints", "code")):
        rows.append((label, lines["before_server"][key], lines[after][key], True))

    cells = [["figure", "before", "after", "after/before"]]
    for row in rows:
        if isinstance(row, str):
            cells.append([row])
        else:
            label, before, after, compare = row
            cells.append([label, fmt(before), fmt(after), ratio(after, before) if compare else ""])
    width = [max(len(c[i]) for c in cells if len(c) == 4) for i in range(4)]
    out = []
    for c in cells:
        if len(c) == 1:
            out.append(c[0])
        else:
            out.append(("  " + c[0].ljust(width[0]) + "".join(
                "  " + x.rjust(w) for x, w in zip(c[1:], width[1:]))).rstrip())
    out.insert(1, "  " + "-" * (sum(width) + 6))
    env = res["environment"]
    out += ["",
            "before: %s (sha256 %s), after: %s (sha256 %s)" %
            (args.before, res["binaries"]["before"][:12], args.after, res["binaries"]["after"][:12]),
            "The before server (cpp-httplib) also routed requests, through httplib's router;"
            " after, routing is in agent/endpoints.*, hence both counts.",
            "%s, %d CPUs (%s), kernel %s, load %s at start, %s at the end; sample_interval %s; "
            "%.0f s" % (env["date"], env["cpus"], env["cpu"], env["kernel"],
                        " ".join(env["loadavg_start"]), " ".join(env["loadavg_end"]),
                        args.sample_interval, env["runtime_s"])]
    return "\n".join(out)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--before", default="/tmp/virtscale-before", help="agent with the old server")
    p.add_argument("--after", default="/tmp/virtscale-after", help="agent with the new server")
    p.add_argument("--before-rev", default="bc3dfab", help="git revision of the old server")
    p.add_argument("--after-rev", default="HEAD", help="git revision of the new server")
    p.add_argument("--quick", action="store_true",
                   help="30 scrapes, 3 s windows, 3 s of wrk")
    p.add_argument("--scrapes", type=int, default=100, help="sequential scrapes per phase")
    p.add_argument("--scrape-gap", type=float, default=0.1,
                   help="seconds between scrapes (100 x 0.1 s outlasts the 5 s request deadline)")
    p.add_argument("--slowloris", type=int, default=200, help="slowloris connections")
    p.add_argument("--idle", type=int, default=500, help="idle connections")
    p.add_argument("--cpu-window", type=float, default=10, help="seconds of each CPU window")
    p.add_argument("--connections", type=int, default=20, help="wrk connections")
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--wrk-rounds", type=int, default=2,
                   help="wrk runs per binary, in the order before, after, after, before, ...")
    p.add_argument("--domains", type=int, default=1000, help="test domains of the wrk phase")
    p.add_argument("--warmup", type=int, default=20, help="scrapes before each phase")
    p.add_argument("--sample-interval", default="5s", help="libvirt.sample_interval (the default)")
    p.add_argument("--scrape-timeout", type=float, default=10, help="seconds per scrape")
    p.add_argument("--ready-timeout", type=int, default=120)
    p.add_argument("--json", help="also write the figures here as JSON")
    args = p.parse_args()
    if args.quick:
        args.scrapes, args.cpu_window, args.wrk_seconds, args.warmup = 30, 3, 3, 5
    for path in (args.before, args.after):
        if not os.access(path, os.X_OK):
            p.error("%s is not an executable" % path)
    if not shutil.which("wrk"):
        p.error("wrk not found (scripts/install-deps.sh installs it)")

    install_cleanup()
    started = time.time()
    res = {"environment": environment(), "args": vars(args),
           "binaries": {"before": sha256(args.before), "after": sha256(args.after)},
           "loc": loc(args), "before": {}, "after": {}}
    workdir = tempfile.mkdtemp(prefix="virtscale-httpbench-")
    cleanups.insert(0, lambda: shutil.rmtree(workdir, ignore_errors=True))
    node = gen_test_node(args.domains, os.path.join(workdir, "node-%d.xml" % args.domains))

    # Phase by phase, each binary alone. Rounds alternate the order (before,
    # after, after, before, ...) so a change of machine load weighs on both.
    phases = [("slowloris", 1, lambda binary, label: slowloris_phase(binary, args, workdir, label)),
              ("idle", 1, lambda binary, label: idle_phase(binary, args, workdir, label)),
              ("wrk", args.wrk_rounds,
               lambda binary, label: wrk_phase(binary, node, args, workdir, label))]
    for phase, rounds, fn in phases:
        runs = {"before": [], "after": []}
        for i in range(rounds):
            for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
                label = "%s-%s-%d" % (phase, side, i + 1)
                log("=== %s ===" % label)
                r = fn(getattr(args, side), label)
                r["loadavg"] = loadavg()
                runs[side].append(r)
                log("%s: %s" % (label, r))
        for side, got in runs.items():
            res[side][phase] = got[0] if rounds == 1 else merge_wrk_rounds(got)

    res["environment"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    res["environment"]["runtime_s"] = round(time.time() - started, 1)
    res["environment"]["command"] = " ".join(["bench/http_server.py"] + sys.argv[1:])
    print(report(res, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
        log("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
