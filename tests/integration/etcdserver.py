"""A real single-member etcd for tests (Debian's etcd-server): free loopback
ports, its data on tmpfs when there is one, killed and removed by stop().
Stdlib only; used by the dashboard proof test and the e2e leader test."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

ETCD = "/usr/bin/etcd"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    return os.access(ETCD, os.X_OK)


class Etcd:
    def __init__(self, log_dir):
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        # etcd fsyncs every write: on a busy disk a renewal could outlast a short lease.
        self.dir = tempfile.mkdtemp(prefix="virtscale-etcd-", dir=base)
        self.url = "http://127.0.0.1:%d" % _free_port()
        self.peer = "http://127.0.0.1:%d" % _free_port()
        self.log_path = os.path.join(log_dir, "etcd.log")
        self.proc = None

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--data-dir", os.path.join(self.dir, "data"), "--listen-client-urls", self.url,
             "--advertise-client-urls", self.url, "--listen-peer-urls", self.peer,
             "--initial-advertise-peer-urls", self.peer, "--initial-cluster",
             "default=" + self.peer, "--log-level", "warn", "--logger", "zap"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited with %s; see %s" %
                                   (self.proc.returncode, self.log_path))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if b'"true"' in r.read():
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("etcd not healthy after %ds; see %s" % (timeout, self.log_path))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
