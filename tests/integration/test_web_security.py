#!/usr/bin/env python3
"""Access control and server limits of the real agent over loopback: TLS, mutual
TLS and the other client_auth_type values, min_version and max_version, basic auth with bcrypt hashes, the lifecycle endpoint, request
size limits, and a slowloris that must not starve /metrics.

Certificates are made with `openssl` for each run (a CA, a server certificate for
127.0.0.1, a client certificate, and a client certificate from a second,
untrusted CA); bcrypt hashes with libcrypt through Python's crypt module.

  test_web_security.py BINARY
"""
import base64
import http.client as httpclient
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Agent, http, http_with_headers, make_pki, parse_metrics,  # noqa: E402
                     run_tests, start_agent, tls_client_context, values)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # libxcrypt: the same bcrypt the agent verifies with

BINARY = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="virtscale-websec-")
PASSWORD = "correct horse"


def p(name):
    return os.path.join(TMP, name)


def bcrypt(password, cost=6):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** cost))


def web_config(name, text):
    path = p(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def client_context(cert=None, max_version=None):
    return tls_client_context(TMP, cert, max_version)


def get(url, ctx=None, headers=None, method="GET", data=None, timeout=10):
    """(status, body); raises on TLS or connection failures."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refused(url, ctx):
    """True when the TLS handshake (or the first read) fails."""
    try:
        get(url, ctx)
    except (ssl.SSLError, urllib.error.URLError, ConnectionError) as e:
        return str(e) or type(e).__name__
    return None


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()}


def start(*args, wait=lambda agent: None):
    return start_agent(BINARY, "--libvirt.uri=test:///default", *args, wait=wait)


def stop(agent):
    agent.stop()
    os.unlink(agent.log.name)


def test_tls_serves_metrics_and_refuses_plain_http():
    cfg = web_config("tls.yml", "tls_server_config:\n  cert_file: server.crt\n"
                     "  key_file: server.key\n")
    https = None
    agent = start("--web.config.file=" + cfg,
                  wait=lambda a: get("https://127.0.0.1:%d/-/ready" % a.port,
                                     client_context())[0] == 200)
    try:
        https = "https://127.0.0.1:%d" % agent.port
        status, body = get(https + "/metrics", client_context())
        assert status == 200 and "libvirt_up 1" in body, (status, body[:200])
        start_line = [l for l in agent.logs().splitlines() if 'msg="starting virtscale"' in l]
        assert len(start_line) == 1 and " tls=true" in start_line[0], start_line
        # Plain HTTP to the TLS port gets no metrics.
        try:
            status, body = http(agent.url + "/metrics", timeout=5)
            assert "libvirt_up" not in body, "plain HTTP answered with metrics"
        except (OSError, urllib.error.URLError, ConnectionError):
            pass
        # The agent presents the configured certificate (not some other, say a
        # built-in or an empty chain), valid for 127.0.0.1 under our CA.
        with open(p("server.crt")) as f:
            want = ssl.PEM_cert_to_DER_cert(f.read())
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw:
            with client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.getpeercert(binary_form=True) == want, "not server.crt"
                assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()
    finally:
        stop(agent)


def test_mutual_tls_requires_a_client_certificate_from_the_ca():
    cfg = web_config("mtls.yml", "tls_server_config:\n  cert_file: server.crt\n"
                     "  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n"
                     "  client_ca_file: ca.crt\n")
    agent = start("--web.config.file=" + cfg,
                  wait=lambda a: get("https://127.0.0.1:%d/-/ready" % a.port,
                                     client_context("client"))[0] == 200)
    try:
        url = "https://127.0.0.1:%d/metrics" % agent.port
        why = refused(url, client_context())
        assert why, "served without a client certificate"
        print("  without client cert: %s" % why)
        why = refused(url, client_context("intruder"))
        assert why, "served a client certificate from an untrusted CA"
        print("  untrusted client cert: %s" % why)
        status, body = get(url, client_context("client"))
        assert status == 200 and "libvirt_up" in body
    finally:
        stop(agent)


def test_client_auth_types_other_than_require_and_verify():
    """The other exporter-toolkit client_auth_type values, each with no client
    certificate, our CA's client certificate and an untrusted CA's one."""
    want = {  # client_auth_type -> served? (none, client, intruder)
        "NoClientCert": (True, True, True),
        "RequestClientCert": (True, True, True),
        "RequireAnyClientCert": (False, True, True),
        "VerifyClientCertIfGiven": (True, True, False),
    }
    for auth, (none_ok, client_ok, intruder_ok) in want.items():
        # RequireAnyClientCert verifies nothing, yet the agent's web config check
        # demands a client_ca_file for it too (reported); given one, it must
        # still accept a certificate from any CA.
        ca = "  client_ca_file: ca.crt\n" if auth in ("VerifyClientCertIfGiven",
                                                    "RequireAnyClientCert") else ""
        cfg = web_config("auth-%s.yml" % auth, "tls_server_config:\n  cert_file: server.crt\n"
                         "  key_file: server.key\n  client_auth_type: %s\n%s" % (auth, ca))
        agent = start("--web.config.file=" + cfg,
                      wait=lambda a: get("https://127.0.0.1:%d/-/ready" % a.port,
                                         client_context("client"))[0] == 200)
        try:
            url = "https://127.0.0.1:%d/metrics" % agent.port
            got = []
            for cert in (None, "client", "intruder"):
                why = refused(url, client_context(cert))
                got.append(why is None)
            print("  %-24s served (none, client, intruder): %s" % (auth, got))
            assert tuple(got) == (none_ok, client_ok, intruder_ok), (auth, got)
        finally:
            stop(agent)


def test_max_version_tls12_refuses_tls13_only_clients():
    cfg = web_config("max12.yml", "tls_server_config:\n  cert_file: server.crt\n"
                     "  key_file: server.key\n  max_version: TLS12\n")
    agent = start("--web.config.file=" + cfg,
                  wait=lambda a: get("https://127.0.0.1:%d/-/ready" % a.port,
                                     client_context())[0] == 200)
    try:
        url = "https://127.0.0.1:%d/-/healthy" % agent.port
        only13 = client_context()
        only13.minimum_version = ssl.TLSVersion.TLSv1_3
        why = refused(url, only13)
        assert why, "a TLS 1.3-only client was served despite max_version TLS12"
        print("  TLS 1.3-only client: %s" % why)
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw:
            with client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == "TLSv1.2", tls.version()
    finally:
        stop(agent)


def test_min_version_tls13_rejects_tls12_clients():
    cfg = web_config("tls13.yml", "tls_server_config:\n  cert_file: server.crt\n"
                     "  key_file: server.key\n  min_version: TLS13\n")
    agent = start("--web.config.file=" + cfg,
                  wait=lambda a: get("https://127.0.0.1:%d/-/ready" % a.port,
                                     client_context())[0] == 200)
    try:
        url = "https://127.0.0.1:%d/-/healthy" % agent.port
        why = refused(url, client_context(max_version=ssl.TLSVersion.TLSv1_2))
        assert why, "a TLS 1.2 client was served despite min_version TLS13"
        print("  TLS 1.2 client: %s" % why)
        ctx = client_context()
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == "TLSv1.3", tls.version()
    finally:
        stop(agent)

    # The default minimum (TLS12) serves a TLS 1.2 client.
    cfg = web_config("tls12.yml", "tls_server_config:\n  cert_file: server.crt\n"
                     "  key_file: server.key\n")
    agent = start("--web.config.file=" + cfg,
                  wait=lambda a: get("https://127.0.0.1:%d/-/ready" % a.port,
                                     client_context())[0] == 200)
    try:
        status, _ = get("https://127.0.0.1:%d/-/healthy" % agent.port,
                        client_context(max_version=ssl.TLSVersion.TLSv1_2))
        assert status == 200
    finally:
        stop(agent)


def test_basic_auth():
    cfg = web_config("auth.yml",
                     "basic_auth_users:\n  prometheus: %s\n  other: %s\n  cheap: %s\n" % (
                         bcrypt(PASSWORD), bcrypt("something else"), bcrypt(PASSWORD, cost=4)))
    good = basic("prometheus", PASSWORD)
    agent = start("--web.config.file=" + cfg,
                  wait=lambda a: http(a.url + "/-/ready", headers=good)[0] == 200)
    try:
        url = agent.url
        for path in ("/metrics", "/", "/-/healthy", "/api/v1/groups", "/api/v1/decisions"):
            status, _ = http(url + path, headers=good)
            assert status == 200, (path, status)
        cases = {
            "missing header": {},
            "wrong password": basic("prometheus", "wrong"),
            "unknown user": basic("mallory", PASSWORD),
            "other user's password": basic("other", PASSWORD),
            "empty password": basic("prometheus", ""),
            "cost-4 user, wrong": basic("cheap", "wrong"),  # as slow as the others
            "NUL, then junk": basic("cheap", PASSWORD + "\0junk"),  # bcrypt stops at NUL
            "not base64": {"Authorization": "Basic !!!"},
            "bearer": {"Authorization": "Bearer " + PASSWORD},
            "no colon": {"Authorization": "Basic " + base64.b64encode(b"prometheus").decode()},
        }
        for what, headers in cases.items():
            start_t = time.time()
            status, body = http(url + "/metrics", headers=headers)
            took = time.time() - start_t
            assert status == 401, (what, status)
            assert "libvirt_up" not in body, what
            print("  %-22s -> 401 in %.1f ms" % (what, took * 1000))
        # The WWW-Authenticate challenge, and no auth bypass through unknown paths.
        req = urllib.request.Request(url + "/metrics")
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("no 401")
        except urllib.error.HTTPError as e:
            assert e.code == 401 and e.headers.get("WWW-Authenticate", "").startswith("Basic")
        assert http(url + "/nonexistent")[0] == 401
        assert http(url + "/nonexistent", headers=good)[0] == 404
        assert http(url + "/metrics/../metrics", headers=basic("mallory", "x"))[0] == 401
        # The scheme name is case-insensitive (RFC 7617).
        lower = {"Authorization": good["Authorization"].replace("Basic", "basic")}
        assert http(url + "/metrics", headers=lower)[0] == 200
        samples = parse_metrics(http(url + "/metrics", headers=good)[1])
        assert values(samples, "virtscale_http_requests_total", handler="/metrics",
                      code="401")[0] >= len(cases)
        assert values(samples, "virtscale_http_requests_total", handler="other", code="401")
    finally:
        stop(agent)


def reload_stamp(url, headers):
    samples = parse_metrics(http(url + "/metrics", headers=headers)[1])
    return values(samples, "virtscale_config_last_reload_success_timestamp_seconds")[0]


def test_reload_needs_lifecycle_flag_and_auth():
    cfg = web_config("auth2.yml", "basic_auth_users:\n  admin: %s\n" % bcrypt(PASSWORD))
    config = web_config("virtscale.yml", 'libvirt:\n  uri: "test:///default"\n')
    good = basic("admin", PASSWORD)
    ready = lambda a: http(a.url + "/-/ready", headers=good)[0] == 200  # noqa: E731

    agent = start("--web.config.file=" + cfg, "--config.file=" + config, wait=ready)
    try:
        status, body = http(agent.url + "/-/reload", method="POST", data=b"", headers=good)
        assert status == 403 and "not enabled" in body, (status, body)
        assert http(agent.url + "/-/reload", method="POST", data=b"")[0] == 401
    finally:
        stop(agent)

    agent = start("--web.config.file=" + cfg, "--config.file=" + config,
                  "--web.enable-lifecycle", wait=ready)
    try:
        before = reload_stamp(agent.url, good)
        time.sleep(1.1)
        for headers in ({}, basic("admin", "nope"), basic("root", PASSWORD)):
            assert http(agent.url + "/-/reload", method="POST", data=b"",
                        headers=headers)[0] == 401
        assert reload_stamp(agent.url, good) == before, "unauthenticated reload ran"
        status, reply, _ = http_with_headers(agent.url + "/-/reload", headers=good)
        assert (status, reply["Allow"]) == (405, "POST"), (status, reply["Allow"])  # GET is the wrong method
        status, body = http(agent.url + "/-/reload", method="POST", data=b"", headers=good)
        assert status == 200, (status, body)
        assert reload_stamp(agent.url, good) > before
    finally:
        stop(agent)


def test_request_size_limit():
    with Agent(BINARY, "--libvirt.uri=test:///default", "--web.enable-lifecycle") as agent:
        status, _ = http(agent.url + "/-/reload", method="POST", data=b"x" * (1 << 20))
        assert status == 413, status
        # A header line beyond httplib's limit is refused too, and the server lives on.
        try:
            status, _ = http(agent.url + "/metrics", headers={"X-Big": "y" * 20000})
            assert status >= 400, status
        except (OSError, urllib.error.URLError):
            pass
        assert http(agent.url + "/metrics")[0] == 200


# How long a scrape may take while slow or idle connections hold the server.
# The server is event-driven: a slow connection holds a socket and a timer,
# never a thread, and is closed when it has not sent a whole request within
# web.read_timeout (5 s), so a scrape is answered at once; a starved one would
# wait for its 60 s client timeout. 10 s is twice the whole-request deadline:
# generous for a loaded 2-core CI machine, and still far below starvation.
SCRAPE_BOUND_S = 10.0


def test_slowloris_does_not_starve_metrics():
    n = 200
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        stop_flag = threading.Event()
        socks = []
        setup = time.time()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        setup = time.time() - setup

        def trickle():
            # One header byte per connection every 0.5 s: each read completes well
            # within the read timeout, so only a whole-request deadline stops it.
            alive = list(socks)
            while alive and not stop_flag.is_set():
                for s in list(alive):
                    try:
                        s.sendall(b"X")
                    except OSError:
                        alive.remove(s)
                stop_flag.wait(0.5)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            time.sleep(0.5)
            start_t = time.time()
            status, body = http(agent.url + "/metrics", timeout=60)
            latency = time.time() - start_t
            assert status == 200 and "libvirt_up" in body
            # A second scrape while the flood goes on.
            start_t = time.time()
            assert http(agent.url + "/metrics", timeout=60)[0] == 200
            latency2 = time.time() - start_t
            # Every trickler is closed at the 5 s whole-request deadline, however
            # often it sends a byte.
            give_up = time.time() + SCRAPE_BOUND_S + 5
            while True:
                closed = parse_metrics(agent.metrics())
                by_reason = {l["reason"]: v for name, l, v in closed
                             if name == "virtscale_http_connections_closed_total"}
                if by_reason.get("request_deadline", 0) >= n or time.time() > give_up:
                    break
                time.sleep(0.5)
            print("  %d slow connections (opened in %.2f s): /metrics answered in %.2f s, "
                  "then %.2f s; closed by the server after %.1f s: %s" % (
                      n, setup, latency, latency2, time.time() - start_t, by_reason))
            assert by_reason.get("request_deadline", 0) >= n, by_reason
            assert latency < SCRAPE_BOUND_S and latency2 < SCRAPE_BOUND_S, \
                "/metrics took %.2f s, then %.2f s under %d slow connections (bound %.0f s)" % (
                    latency, latency2, n, SCRAPE_BOUND_S)
        finally:
            stop_flag.set()
            trickler.join()
            for s in socks:
                s.close()
        assert agent.proc.poll() is None


def test_connection_flood_does_not_starve_metrics():
    """Many idle connections (connect, send nothing) and a burst of scrapers."""
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        idle = [socket.create_connection(("127.0.0.1", agent.port), timeout=5)
                for _ in range(300)]
        try:
            results = []

            def scrape():
                t = time.time()
                try:
                    results.append((http(agent.url + "/metrics", timeout=60)[0], time.time() - t))
                except OSError as e:
                    results.append((str(e), time.time() - t))

            threads = [threading.Thread(target=scrape) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes = [r[0] for r in results]
            slowest = max(r[1] for r in results)
            print("  300 idle connections + 20 scrapers: %d/20 answered 200, slowest %.2f s" % (
                codes.count(200), slowest))
            # Every scraper is served, each within the bound.
            assert len(results) == 20 and codes.count(200) == 20, codes
            late = [round(t, 2) for c, t in results if t >= SCRAPE_BOUND_S]
            assert not late, "scrapers served after %s s (bound %.0f s)" % (late, SCRAPE_BOUND_S)
            # After the flood the server is whole again.
            assert http(agent.url + "/metrics", timeout=30)[0] == 200
        finally:
            for s in idle:
                s.close()


def test_kept_alive_scrapers_take_turns():
    """Many kept-alive clients scraping as fast as they can are all served in turn."""
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        clients = 20
        served = [0] * clients
        closes = [0] * clients
        errors = []
        end = time.time() + 3

        def client(i):
            conn = httpclient.HTTPConnection("127.0.0.1", agent.port, timeout=30)
            while time.time() < end:
                try:
                    conn.request("GET", "/metrics")
                    resp = conn.getresponse()
                    resp.read()
                    assert resp.status == 200, resp.status
                    served[i] += 1
                    if resp.getheader("Connection", "").lower() == "close":
                        closes[i] += 1
                        conn.close()
                except (OSError, httpclient.HTTPException) as e:
                    errors.append(repr(e))
                    conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total, closed = sum(served), sum(closes)
        print("  %d kept-alive clients: %d responses, %d with Connection: close, fewest per "
              "client %d, errors %d" % (clients, total, closed, min(served), len(errors)))
        assert not errors, errors[:3]
        # Every client is served in turn: none gets less than a quarter of a
        # fair share (an event loop takes connections in turn, no one holds a
        # thread between its requests).
        assert min(served) * 4 * clients > total, served


def test_second_process_cannot_share_the_port():
    with Agent(BINARY, "--libvirt.uri=test:///default") as agent:
        p = subprocess.run([BINARY, "--libvirt.uri=test:///default",
                            "--web.listen-address=127.0.0.1:%d" % agent.port],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "bind" in p.stderr, (p.returncode, p.stderr)
        assert http(agent.url + "/-/healthy")[0] == 200


def main():
    if not shutil.which("openssl"):
        print("openssl not installed")
        return 1
    try:
        make_pki(TMP)
        return run_tests([test_tls_serves_metrics_and_refuses_plain_http,
                          test_mutual_tls_requires_a_client_certificate_from_the_ca,
                          test_client_auth_types_other_than_require_and_verify,
                          test_max_version_tls12_refuses_tls13_only_clients,
                          test_min_version_tls13_rejects_tls12_clients, test_basic_auth,
                          test_reload_needs_lifecycle_flag_and_auth, test_request_size_limit,
                          test_second_process_cannot_share_the_port,
                          test_slowloris_does_not_starve_metrics,
                          test_connection_flood_does_not_starve_metrics,
                          test_kept_alive_scrapers_take_turns])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
