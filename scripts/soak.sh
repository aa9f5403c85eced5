#!/usr/bin/env bash
# Soak test of the agent on libvirt's in-process test driver:
#   - the agent's own autoscaler defines, starts, stops and undefines domains
#     all the time: a file source flips between 0 and 6 every 2 s and a scaling
#     group (min 0, max 6, step 3, action delete, no cooldown) follows it;
#   - 10 concurrent scrapers hit /metrics (and now and then / and the JSON API);
#   - SIGHUP or POST /-/reload every 30 s, alternately;
#   - RSS and open descriptors (/proc/PID/fd) are printed every minute, and the
#     values after a 30 s warm-up are compared with the end.
# Passes when the agent survived, every scrape answered, domains were created
# and deleted, and RSS grew by at most max(20 %, 8 MiB) and descriptors by at
# most 16 from the warm-up to the end.
#
#   scripts/soak.sh [minutes=10]      # builds build/virtscale unless VIRTSCALE_BIN is set
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
bin="${VIRTSCALE_BIN:-build/virtscale}"
if [ -z "${VIRTSCALE_BIN:-}" ]; then
  cmake -S . -B build >/dev/null && cmake --build build -j2 --target virtscale >/dev/null
fi
exec python3 - "$bin" "$minutes" <<'PYEOF'
import os, shutil, signal, sys, tempfile, threading, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "integration"))
from harness import Agent, http, parse_metrics, values  # noqa: E402

binary, minutes = sys.argv[1], float(sys.argv[2])
tmp = tempfile.mkdtemp(prefix="virtscale-soak-")
queue = os.path.join(tmp, "queue")
with open(queue, "w") as f:
    f.write("0\n")
with open("config/templates/demo.xml") as f:
    template = f.read()
with open(os.path.join(tmp, "soak.xml"), "w") as f:
    f.write(template)
with open(os.path.join(tmp, "rules.yml"), "w") as f:
    f.write("""groups:
  - name: soak
    template: soak.xml
    min: 0
    max: 6
    interval: 1s
    on_missing_data: hold
    target: {metric: "source:q", per_member_target: 1}
    scale_up: {step: 3, cooldown: 0s}
    scale_down: {step: 3, cooldown: 0s, action: delete}
""")
config = os.path.join(tmp, "virtscale.yml")
with open(config, "w") as f:
    f.write("""libvirt:
  uri: "test:///default"
  sample_interval: 1s
  call_timeout: 5s
rule_files: ["rules.yml"]
sources:
  q: {type: file, path: %s, interval: 1s}
""" % queue)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


agent = Agent(binary, "--web.enable-lifecycle", config=config).start()
pid = agent.proc.pid
stop = threading.Event()
stats = {"scrapes": 0, "failures": 0, "worst": 0.0}
lock = threading.Lock()


def scraper(i):
    paths = ["/metrics"] * 8 + ["/", "/api/v1/groups", "/api/v1/decisions"]
    n = 0
    while not stop.is_set():
        path = paths[(n + i) % len(paths)]
        n += 1
        t = time.time()
        try:
            status, _ = http(agent.url + path, timeout=30)
            ok = status == 200
        except OSError:
            ok = False
        with lock:
            stats["scrapes"] += 1
            stats["failures"] += 0 if ok else 1
            stats["worst"] = max(stats["worst"], time.time() - t)
        stop.wait(0.05)


threads = [threading.Thread(target=scraper, args=(i,)) for i in range(10)]
for t in threads:
    t.start()

start = time.time()
end = start + minutes * 60
baseline = None
reloads = flips = 0
next_flip, next_reload, next_report = start + 2, start + 30, start
try:
    while time.time() < end:
        now = time.time()
        if agent.proc.poll() is not None:
            raise SystemExit("agent died:\n" + agent.logs()[-3000:])
        if now >= next_flip:
            flips += 1
            with open(queue + ".tmp", "w") as f:
                f.write("6\n" if flips % 2 else "0\n")
            os.replace(queue + ".tmp", queue)
            next_flip += 2
        if now >= next_reload:
            reloads += 1
            if reloads % 2:
                agent.signal(signal.SIGHUP)
            else:
                http(agent.url + "/-/reload", method="POST", data=b"")
            next_reload += 30
        if baseline is None and now - start >= 30:
            baseline = (rss_kib(pid), fds(pid))
        if now >= next_report:
            s = parse_metrics(agent.metrics())
            acts = {l["direction"] + "/" + l["result"]: int(v) for n, l, v in s
                    if n == "virtscale_scale_actions_total" and v}
            print("t=%4ds rss=%6d KiB fds=%3d domains=%s actions=%s scrapes=%d failures=%d" % (
                now - start, rss_kib(pid), fds(pid), values(s, "libvirt_domains"), acts,
                stats["scrapes"], stats["failures"]), flush=True)
            next_report += 60
        time.sleep(0.1)
    final = (rss_kib(pid), fds(pid))
    s = parse_metrics(agent.metrics())
finally:
    stop.set()
    for t in threads:
        t.join()
    code = agent.stop()
    shutil.rmtree(tmp, ignore_errors=True)

ups = sum(v for n, l, v in s if n == "virtscale_scale_actions_total" and
          l.get("direction") == "up" and l.get("result") == "ok")
downs = sum(v for n, l, v in s if n == "virtscale_scale_actions_total" and
            l.get("direction") == "down" and l.get("result") == "ok")
errors = sum(v for n, l, v in s if n == "virtscale_scale_actions_total" and
             l.get("result") != "ok")
rss_band = max(baseline[0] * 0.20, 8 * 1024)
fd_band = 16
print("soak %.0f min: %d scrapes, %d failed, slowest %.2f s; %d reloads; domains created %d, "
      "deleted %d, failed actions %d; exit code %s" % (
          minutes, stats["scrapes"], stats["failures"], stats["worst"], reloads, ups, downs,
          errors, code))
print("RSS %d -> %d KiB (%+d, band %d); fds %d -> %d (%+d, band %d)" % (
    baseline[0], final[0], final[0] - baseline[0], rss_band, baseline[1], final[1],
    final[1] - baseline[1], fd_band))
ok = (stats["failures"] == 0 and ups > 0 and downs > 0 and code == 0 and
      final[0] - baseline[0] <= rss_band and final[1] - baseline[1] <= fd_band)
print("soak: PASS" if ok else "soak: FAIL")
sys.exit(0 if ok else 1)
PYEOF
