"""Runs the real virtscale binary for integration tests: ephemeral loopback
port, readiness wait, /metrics parsing, clean shutdown. Stdlib only."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SKIP = 77  # ctest: SKIP_RETURN_CODE


def in_ci():
    """True under CI=true (.ci/run): a test that would skip fails instead."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip(reason):
    """The exit code for a test that cannot run here: 77 (ctest reports it as
    Skipped), or 1 under CI, where everything a test needs is installed."""
    if in_ci():
        print("FAIL (skip under CI=%s): %s" % (os.environ.get("CI"), reason), flush=True)
        return 1
    print("SKIP: %s" % reason, flush=True)
    return SKIP


def build_fault_shim(out_dir):
    """Compiles tests/integration/fault_shim.c (LD_PRELOAD, rules in the file
    $VIRTSCALE_FAULTS names) into out_dir; returns the library's path."""
    out = os.path.join(out_dir, "fault_shim.so")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libvirt"], capture_output=True,
                           text=True, check=True).stdout.split()
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", out,
                    os.path.join(SOURCE_DIR, "tests", "integration", "fault_shim.c"), "-ldl",
                    *flags], check=True)
    return out


def fault_shim_env(shim, faults_file, base=None):
    """The environment that preloads the fault shim with rules from
    faults_file. An ASan build wants its runtime first in the library list;
    the shim comes first here, which ASan tolerates once told to."""
    env = dict(os.environ if base is None else base, LD_PRELOAD=shim, VIRTSCALE_FAULTS=faults_file)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_with_headers(url, method="GET", data=None, headers=None, timeout=10, context=None):
    """Returns (status, response headers, body) without raising on HTTP errors.
    `context`: an ssl.SSLContext for https URLs."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def http(url, method="GET", data=None, headers=None, timeout=10):
    """Returns (status, body) without raising on HTTP errors."""
    status, _, body = http_with_headers(url, method, data, headers, timeout)
    return status, body


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Returns a list of (name, labels dict, value float) for every sample."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError("unparsable exposition line: " + line)
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def values(samples, name, **labels):
    return [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]


def wait_http_ok(url, timeout, each_try=None):
    """Polls `url` until it answers 200 (True) or `timeout` seconds pass (False);
    `each_try()` runs before every attempt and may raise to give up."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if each_try:
            each_try()
        try:
            if http(url, timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Agent:
    """A virtscale process; use as a context manager."""

    def __init__(self, binary, *args, config=None, env=None, wrapper=None):
        """`wrapper`: a command the binary runs under (["prlimit", "--nofile=64:64"]);
        it must exec the binary, so that `proc.pid` is the agent's."""
        self.binary = binary
        self.wrapper = list(wrapper or [])
        self.port = free_port()
        self.args = list(args)
        self.config = config
        self.env = env
        self.proc = None
        self.log = tempfile.NamedTemporaryFile(prefix="virtscale-", suffix=".log", delete=False)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, wait_ready=True):
        cmd = self.wrapper + [self.binary, "--web.listen-address=127.0.0.1:%d" % self.port]
        cmd += self.args
        if self.config:
            cmd.append("--config.file=" + self.config)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30):
        def exited():
            if self.proc.poll() is not None:
                raise RuntimeError("agent exited with %d:\n%s" % (self.proc.returncode,
                                                                  self.logs()))
        if not wait_http_ok(self.url + "/-/ready", timeout, each_try=exited):
            raise RuntimeError("agent not ready after %ds:\n%s" % (timeout, self.logs()))

    def metrics(self):
        status, body = http(self.url + "/metrics")
        assert status == 200, (status, body)
        return body

    def samples(self):
        return parse_metrics(self.metrics())

    def json(self, path):
        status, body = http(self.url + path)
        assert status == 200, (status, body)
        return json.loads(body)

    def wait_for(self, predicate, timeout=30, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError("timed out waiting for %s; agent log:\n%s" % (what, self.logs()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def logs(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        os.unlink(self.log.name)


class Workdir:
    """A temp dir for one test's config, rules and source files; removed on exit."""

    def __init__(self, prefix="virtscale-it-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        """Writes atomically, so an agent polling the file never sees half of it."""
        path = self.path(name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)  # an agent may still be writing


def post(url):
    """(status, parsed JSON body or text) of a POST without a body."""
    status, body = http(url, method="POST", data=b"")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def start_agent(binary, *args, wait, **kwargs):
    """An Agent started without the plain-HTTP readiness wait: returns once
    `wait(agent)` is true (for a TLS or authenticated listener), raises when the
    agent exits or 30 s pass. `wait` may raise OSError or ssl.SSLError (not yet)."""
    agent = Agent(binary, *args, **kwargs).start(wait_ready=False)
    deadline = time.time() + 30
    while True:
        if agent.proc.poll() is not None:
            raise RuntimeError("agent exited %d:\n%s" % (agent.proc.returncode, agent.logs()))
        try:
            if wait(agent):
                return agent
        except (OSError, ssl.SSLError):
            pass
        if time.time() > deadline:
            agent.stop()
            raise AssertionError("agent did not come up:\n" + agent.logs())
        time.sleep(0.1)


def make_pki(directory):
    """Test certificates made with `openssl` in `directory`: ca.crt/ca.key and
    rogue.crt/rogue.key (two CAs), server.crt/server.key (signed by ca, SAN
    IP:127.0.0.1 and DNS:localhost), client.crt/client.key (signed by ca) and
    intruder.crt/intruder.key (signed by rogue)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    for ca in ("ca", "rogue"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=virtscale test %s" % ca, "-keyout", ca + ".key", "-out", ca + ".crt")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca, ext in (("server", "ca", ["-extfile", "san.ext"]), ("client", "ca", []),
                          ("intruder", "rogue", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout",
                name + ".key", "-out", name + ".csr")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                "-CAcreateserial", "-days", "2", "-out", name + ".crt", *ext)


def tls_client_context(directory, cert=None, max_version=None):
    """A client context trusting make_pki's ca.crt, presenting `cert` ("client",
    "intruder") when given."""
    ctx = ssl.create_default_context(cafile=os.path.join(directory, "ca.crt"))
    if cert:
        ctx.load_cert_chain(os.path.join(directory, cert + ".crt"),
                            os.path.join(directory, cert + ".key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def run_tests(tests):
    """Runs test functions, prints a summary line, returns the exit code."""
    import traceback
    passed = failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
