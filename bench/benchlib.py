"""Helpers shared by the bench programs (bench/run, bench/http_server.py).

Processes started with start() are stopped at exit, as are the callables in
`cleanups`, once install_cleanup() has run (SIGINT and SIGTERM included):

    install_cleanup()
    proc = start_virtscale("test:///default", workdir, free_port(), logfile, "1s")
    wait_http(port, "/-/ready", proc, 60)
    elapsed, status, body = Scraper(port).get()

Python 3 standard library only.
"""
import atexit
import datetime
import http.client
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-bench")
RESULTS = os.path.join(ROOT, "bench", "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")

children = []  # Popen objects still to stop at exit
cleanups = []  # callables run at exit, last added first (guests, libvirtd, temp dirs)


def log(msg):
    print("[bench] %s" % msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def cpu_seconds(pid):
    """utime+stime of a whole process (exited threads included), from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, logfile, env=None):
    log("starting: %s%s" % ("".join("%s=%s " % kv for kv in (env or {}).items()), " ".join(cmd)))
    out = open(logfile, "w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **env) if env else None)
    out.close()
    children.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in children:
        children.remove(proc)


def cleanup_all():
    for proc in list(children):
        stop(proc)
    while cleanups:
        fn = cleanups.pop()
        try:
            fn()
        except Exception as e:  # cleanup must go on
            log("cleanup failed: %s" % e)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def install_cleanup():
    """SIGINT/SIGTERM raise SystemExit, and cleanup_all runs at exit."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    atexit.register(cleanup_all)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), r.returncode, r.stdout[-4000:]))
    return r


def start_virtscale(uri, workdir, port, logfile, interval, workers=0, env=None, binary=None):
    """The agent (build-bench's unless `binary`) on 127.0.0.1:port with a config
    of libvirt.sample_interval = `interval` and libvirt.workers = `workers`."""
    cfg = os.path.join(workdir, "virtscale-bench-%d.yml" % port)
    with open(cfg, "w") as f:
        f.write("libvirt:\n  sample_interval: %s\n  call_timeout: 60s\n  workers: %d\n" %
                (interval, workers))
    cmd = [binary or os.path.join(BUILD, "virtscale"), "--config.file=" + cfg,
           "--libvirt.uri=" + uri, "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"]
    return start(cmd, logfile, env)


def gen_test_node(domains, path):
    """A test-driver node file of `domains` domains (scripts/gen-test-node.py)."""
    run([sys.executable, os.path.join(ROOT, "scripts", "gen-test-node.py"), str(domains), path])
    return path


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def environment():
    """Date, kernel, CPU, load and commit of this run."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "commit": first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])}


def first_line(cmd):
    """Output of a command, stripped; "" when it fails."""
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


# ---------------------------------------------------------------- HTTP


class Scraper:
    """Sequential keep-alive scrapes, as Prometheus does them."""

    def __init__(self, port, timeout=300):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def get(self, path="/metrics", gzip_ok=False, encoding=None):
        headers = {"Accept-Encoding": encoding or ("gzip" if gzip_ok else "identity")}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read()
                elapsed = time.perf_counter() - t0
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return elapsed, resp.status, body
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_http(port, path, proc, timeout, want=200):
    deadline = time.time() + timeout
    s = Scraper(port, timeout=30)
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited with %s before answering" % proc.returncode)
        try:
            _, status, body = s.get(path)
            if status == want:
                s.close()
                return body
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("no %d from 127.0.0.1:%d%s within %ds" % (want, port, path, timeout))


def quantile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


def metric_value(body, name):
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def wrk(port, connections, seconds, path="/metrics", threads=2):
    """wrk: `connections` concurrent keep-alive connections for `seconds`, loopback
    only. Returns p50..p99 (ms), requests, requests/s, errors (socket errors +
    non-2xx/3xx) and the raw output."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "--latency",
           "--timeout", "10s", "http://127.0.0.1:%d%s" % (port, path)]
    log("load: %s" % " ".join(cmd))
    out = run(cmd, timeout=seconds + 60).stdout
    r = {"tool": "wrk", "connections": connections, "seconds": seconds}

    def ms(text):
        m = re.match(r"([\d.]+)(us|ms|s)$", text)
        v = float(m.group(1))
        return round({"us": v / 1e3, "ms": v, "s": v * 1e3}[m.group(2)], 3)

    for q in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % q, out, re.M)
        if m:
            r["p%s_ms" % q] = ms(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["requests_per_s"] = float(m.group(1)) if m else None
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      (int(x) for x in m.groups())))
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non_2xx_3xx"] = int(m.group(1))
        errors += int(m.group(1))
    r["errors"] = errors
    r["raw_output"] = out
    log("load: p50 %s ms p99 %s ms, %s requests, %d errors" %
        (r.get("p50_ms"), r.get("p99_ms"), r["requests"], errors))
    return r
