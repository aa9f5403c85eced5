"""Shared helpers of the hostile-input tier: per-process memory peaks, `check
config` runs with a deadline, an agent whose reloads and health are checked after
every case, and a local HTTP server that misbehaves on purpose. Builds on
tests/integration/harness.py. Stdlib only.

Memory bounds are VmHWM (peak RSS) of one process. An ASan binary (libasan in its
`ldd` output) gets ASAN_BOUND_FACTOR times the bound plus ASAN_BOUND_EXTRA_MB:
shadow memory, redzones and the freed-memory quarantine (256 MB by default) all
count as resident.
"""
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from harness import Agent, http, run_tests, values  # noqa: E402,F401 (re-exported)

ASAN_BOUND_FACTOR = 3
ASAN_BOUND_EXTRA_MB = 384


@functools.lru_cache(maxsize=None)
def is_asan(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return "libasan" in out


def memory_bound_mb(binary, normal_mb):
    """The peak-RSS bound for `binary`: `normal_mb`, or more for an ASan build."""
    if is_asan(binary):
        return normal_mb * ASAN_BOUND_FACTOR + ASAN_BOUND_EXTRA_MB
    return normal_mb


def time_bound_s(binary, normal_s):
    return normal_s * 4 if is_asan(binary) else normal_s


def peak_rss_mb(pid):
    """VmHWM of a live process, in MB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM for pid %d" % pid)


def reset_peak_rss(pid):
    """Starts a new VmHWM period at the current RSS (Linux >= 4.0)."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


class CliResult:
    def __init__(self, rc, output, seconds, peak_mb, timed_out):
        self.rc, self.output, self.seconds = rc, output, seconds
        self.peak_mb, self.timed_out = peak_mb, timed_out

    def crashed(self):
        return self.rc < 0 or self.rc >= 128

    def __str__(self):
        state = "timed out" if self.timed_out else "exit %d" % self.rc
        return "%s, %.1f s, peak %.0f MB" % (state, self.seconds, self.peak_mb)


def run_cli(args, timeout):
    """Runs a command to completion or kills it at `timeout`. The peak RSS comes
    from wait4; Linux carries the parent's own peak into a child's, so tests
    keep their process small (~20 MB: big files are written in chunks)."""
    out = tempfile.TemporaryFile()
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode("utf-8", "replace")
    out.close()
    timed_out = seconds >= timeout and proc.returncode == -signal.SIGKILL
    return CliResult(proc.returncode, text, seconds, usage.ru_maxrss / 1024, timed_out)


class Workdir:
    """A scratch directory; write() creates files (and their directories)."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix="virtscale-hostile-%s-" % prefix)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        """Writes str, bytes or a callable returning an iterable of str chunks,
        atomically (temp file and rename): an agent never reads half a file."""
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb" if isinstance(data, bytes) else "w") as f:
            if callable(data):
                f.writelines(data())
            else:
                f.write(data)
        os.replace(path + ".tmp", path)
        return path

    def replace_with(self, name, make):
        """Puts something other than a regular file at `name`: make(path) creates it."""
        path = self.path(name)
        tmp = path + ".special"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        make(tmp)
        os.replace(tmp, path)
        return path

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


MINIMAL_TEMPLATE = """<domain type='test'>
  <name>t</name>
  <memory unit='MiB'>64</memory>
  <os><type>hvm</type></os>
</domain>
"""


def agent_config(rule_files=("rules.yml",), sources="", sample_interval="500ms"):
    text = ("libvirt:\n  uri: test:///default\n  sample_interval: %s\n"
            "rule_files: [%s]\n" % (sample_interval,
                                   ", ".join('"%s"' % r for r in rule_files)))
    if sources:
        text += "sources:\n" + sources
    return text


def strict_json(body_bytes):
    """The body decoded as strict UTF-8 and parsed as JSON, or AssertionError."""
    try:
        return json.loads(body_bytes.decode("utf-8", "strict"))
    except (UnicodeDecodeError, ValueError) as e:
        raise AssertionError("not valid UTF-8 JSON (%s): %r" % (e, body_bytes[:200]))


def get_raw(url, timeout=10):
    """(status, body bytes): no decoding, so invalid UTF-8 is seen, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class HostileAgent(Agent):
    """An Agent with the checks every hostile case ends with."""

    def reload_ok(self):
        v = values(self.samples(), "virtscale_config_last_reload_successful")
        return v[0] if v else None

    def groups(self):
        """{name: (min, max, member names)} from /api/v1/groups (strict JSON)."""
        status, body = get_raw(self.url + "/api/v1/groups")
        assert status == 200, "/api/v1/groups answered %d: %r" % (status, body[:300])
        return {g["name"]: (g["min"], g["max"], sorted(m["name"] for m in g["members"]))
                for g in strict_json(body)["data"]}

    def decisions(self, limit=200):
        status, body = get_raw(self.url + "/api/v1/decisions?limit=%d" % limit)
        assert status == 200, "/api/v1/decisions answered %d: %r" % (status, body[:300])
        return strict_json(body)["data"]

    def assert_up(self):
        assert self.proc.poll() is None, "agent exited with %s:\n%s" % (
            self.proc.returncode, self.logs()[-3000:])
        status, _ = http(self.url + "/metrics", timeout=20)
        assert status == 200, "/metrics answered %d" % status

    def assert_memory(self, bound_mb, what):
        peak = peak_rss_mb(self.proc.pid)
        assert peak < bound_mb, "%s: agent peak RSS %.0f MB, bound %d MB" % (what, peak, bound_mb)
        return peak

    def scale_ups(self):
        return sum(values(self.samples(), "virtscale_scale_actions_total", direction="up"))

    def close(self, timeout=15):
        """Stops the agent, removes its log; returns the exit code."""
        rc = self.stop(timeout)
        os.unlink(self.log.name)
        return rc


class Route:
    """What HostileServer does for one path prefix: handle(handler) writes the
    whole answer on handler.wfile (raw, so it can break HTTP on purpose)."""

    def __init__(self, handle):
        self.handle = handle
        self.hits = 0


class HostileServer:
    """A local HTTP server whose routes misbehave; use as a context manager.
    Handlers that stall wait on `stopping`, so stop() ends them."""

    def __init__(self):
        self.routes = {}
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                for prefix, route in server.routes.items():
                    if self.path.startswith(prefix):
                        route.hits += 1
                        try:
                            route.handle(self)
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # the agent gave up on us: expected
                        self.close_connection = True
                        return
                self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def route(self, prefix, handle):
        self.routes[prefix] = Route(handle)
        return self.routes[prefix]

    def stall(self, seconds=60):
        self.stopping.wait(seconds)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def send_head(handler, status=200, headers=()):
    """Status line and headers, raw; the body is up to the caller."""
    lines = ["HTTP/1.1 %d X" % status] + ["%s: %s" % h for h in headers] + ["", ""]
    handler.wfile.write("\r\n".join(lines).encode())
    handler.wfile.flush()


def send_body(handler, body, content_type="text/plain; version=0.0.4", extra=()):
    send_head(handler, 200, [("Content-Type", content_type),
                             ("Content-Length", str(len(body))), ("Connection", "close")] +
              list(extra))
    handler.wfile.write(body)
    handler.wfile.flush()


def write_stream(handler, chunk, total):
    """Writes `chunk` repeatedly until `total` bytes or the peer leaves."""
    sent = 0
    while sent < total:
        handler.wfile.write(chunk)
        sent += len(chunk)


def wait_until(predicate, timeout, what):
    """Polls `predicate` until it returns something true; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.1)


def fifo_has_reader(path):
    """True while some process holds the FIFO open for reading."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False  # ENXIO: no reader
    os.close(fd)
    return True
