#!/usr/bin/env python3
"""e2e: a real Prometheus (Debian `prometheus`) scrapes the agent.

Guests: vse2e-p-half and vse2e-p-third (busy loops held at 50% and 30% by
vcpu_quota), vse2e-p-off (defined, stopped). Prometheus scrapes every 1s; after more
than three intervals: `up{job="virtscale"} == 1`, and
`rate(libvirt_domain_info_cpu_time_seconds_total[1m])` has one series per running
guest; rate[10s] matches virsh's own cpu.time rate (near the caps 0.3 and 0.5 when
the host gives the guests what the caps allow).
"""
import time

from e2e import run, wait_until

CONFIG = """libvirt:
  uri: qemu:///system
  sample_interval: 1s
  call_timeout: 5s
"""


def scenario(h):
    h.guest("vse2e-p-third", image="busy")
    h.set_quota("vse2e-p-third", 30000)
    h.guest("vse2e-p-half", image="busy")
    h.set_quota("vse2e-p-half", 50000)
    h.guest("vse2e-p-off", image="busy", start=False)
    agent = h.start_agent(h.write_config(CONFIG))
    prom = h.start_prometheus({"virtscale": "127.0.0.1:%d" % agent.port})

    def up():
        r = prom.query('up{job="virtscale"}')
        return r if r and r[0][1] == 1 else None

    if not h.check_eventually('up{job="virtscale"} == 1',
                              lambda: wait_until(up, 30, 'up{job="virtscale"} == 1'),
                              lambda: "targets: %s" % prom.h_get("/api/v1/targets")[:1500]):
        return

    # More than three scrape intervals; rate[1m] must give a series per running guest.
    q = 'rate(libvirt_domain_info_cpu_time_seconds_total{domain=~"vse2e-p-.*"}[1m])'
    running = {"vse2e-p-third", "vse2e-p-half"}

    def running_rates(query):
        r = {l.get("domain"): v for l, v in prom.query(query)}
        return r if running <= set(r) else None

    if not h.check_eventually(
            "rate(...[1m]) returns a series for each running guest",
            lambda: wait_until(lambda: running_rates(q), 20, "a rate[1m] series per running guest"),
            lambda: "got %s" % prom.query(q)):
        return

    # Values: rate[1m] divides by the whole minute, so with seconds of data it reads
    # low; compare rate[10s] with virsh's own cpu.time rate over the same 10 s. The
    # host (two cores, shared) may not give a guest all its cap allows; what it did
    # get must come through.
    truth0 = {d: (h.cpu_time_ns(d), time.monotonic()) for d in running}
    time.sleep(10)
    rates = running_rates(
        'rate(libvirt_domain_info_cpu_time_seconds_total{domain=~"vse2e-p-.*"}[10s])') or {}
    truth = {d: (h.cpu_time_ns(d) - ns) / 1e9 / (time.monotonic() - t)
             for d, (ns, t) in truth0.items()}
    print("rate(cpu_time[10s]): %s; virsh over the same 10 s: %s" % (rates, truth))
    for d, cap in (("vse2e-p-third", 0.3), ("vse2e-p-half", 0.5)):
        h.check(d in rates and abs(rates[d] - truth[d]) <= 0.1,
                "%s rate[10s] matches virsh within 0.1" % d,
                "rate %s, virsh %.3f" % (rates.get(d), truth[d]))
        if abs(truth[d] - cap) <= 0.1:
            h.check(d in rates and abs(rates[d] - cap) <= 0.15,
                    "%s capped at %.1f burns ~%.1f core" % (d, cap, cap), str(rates.get(d)))
    # A shut-off guest has no CPU: no series, or a flat one.
    off = [v for d, v in rates.items() if d == "vse2e-p-off"]
    h.check(all(v == 0 for v in off), "the stopped guest has no cpu rate", str(off))

    samples = prom.query('count_over_time(up{job="virtscale"}[1m])')
    n = samples[0][1] if samples else 0
    h.check(n >= 3, "Prometheus holds >= 3 scrapes of the agent", str(n))
    util = prom.query(
        'avg_over_time(virtscale_domain_cpu_utilization_ratio{domain="vse2e-p-half"}[10s])')
    h.check(len(util) == 1 and abs(util[0][1] - truth["vse2e-p-half"]) <= 0.12,
            "virtscale_domain_cpu_utilization_ratio of the capped guest via PromQL",
            "%s vs virsh %.3f" % (util, truth["vse2e-p-half"]))


if __name__ == "__main__":
    run(scenario, __doc__)
