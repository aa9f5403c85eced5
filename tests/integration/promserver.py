"""A real Prometheus server for tests: scrapes given targets on 127.0.0.1,
loads rule files, and answers PromQL. Stdlib only; complements
tests/integration/harness.py (free_port, http), which it reuses."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse

import harness  # noqa: E402  (tests/integration, beside this file)


def find_binary(name):
    path = shutil.which(name) or os.path.join("/usr/bin", name)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not found; run scripts/install-deps.sh" % name)
    return path


class QueryError(Exception):
    pass


class Prometheus:
    """A Prometheus process with its own config and TSDB in a temp dir; use as
    a context manager. `targets` maps job name -> list of host:port."""

    def __init__(self, targets, rule_files=(), scrape_interval="1s", evaluation_interval="1s"):
        self.binary = find_binary("prometheus")
        self.port = harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="virtscale-prom-")
        self.config = os.path.join(self.dir, "prometheus.yml")
        # Prometheus' YAML is a superset of JSON: write the config as JSON.
        config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": evaluation_interval},
            "rule_files": [os.path.abspath(f) for f in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(hosts)}]}
                               for job, hosts in targets.items()],
        }
        with open(self.config, "w") as f:
            json.dump(config, f, indent=2)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w+")
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=60):
        cmd = [self.binary, "--config.file=" + self.config,
               "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
               "--web.listen-address=127.0.0.1:%d" % self.port,
               "--log.level=warn"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited with %d:\n%s" % (self.proc.returncode,
                                                                       self.logs()))
            try:
                if harness.http(self.url + "/-/ready", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus not ready after %ds:\n%s" % (timeout, self.logs()))

    def api(self, path, **params):
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, body = harness.http(url, timeout=30)
        try:
            doc = json.loads(body)
        except ValueError:
            raise QueryError("HTTP %d from %s: %s" % (status, path, body[:200]))
        if doc.get("status") != "success":
            raise QueryError("%s (%s)" % (doc.get("error"), doc.get("errorType")))
        return doc["data"]

    def query(self, expr, at=None):
        """Instant query; returns the list of result series (vector) or raises
        QueryError when Prometheus rejects the expression."""
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        data = self.api("/api/v1/query", **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr, start, end, step):
        return self.api("/api/v1/query_range", query=expr, start="%.3f" % start,
                        end="%.3f" % end, step=str(step))["result"]

    def rules(self):
        """Every loaded rule as Prometheus reports it (name, query, type, health)."""
        return [r for g in self.api("/api/v1/rules")["groups"] for r in g["rules"]]

    def wait_for(self, predicate, timeout, what):
        deadline = time.time() + timeout
        last_error = None
        while time.time() < deadline:
            try:
                result = predicate()
                if result:
                    return result
            except QueryError as e:
                last_error = e
            time.sleep(0.5)
        raise AssertionError("timed out after %ds waiting for %s (last error: %s)"
                             % (timeout, what, last_error))

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
