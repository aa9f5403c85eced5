#!/usr/bin/env python3
"""Writes a synthetic day of diurnal load for `virtscale simulate` (see
docs/simulate.md): four web members whose CPU follows a sine from 0.1 (04:00)
to 0.9 (16:00) with noise, memory near 0.5, and a jobs queue that follows the
load. Deterministic (fixed seed). With `--days 8` it writes a week of the same
pattern before the example day, the history a forecast (`forecast:`) needs.

  python3 docs/simulate-diurnal.py /tmp/diurnal
  build/virtscale simulate --rules config/rules/web.yml --group web \
      --history /tmp/diurnal/members.csv --history /tmp/diurnal/jobs.csv \
      --step 1m --plot docs/simulate-diurnal.svg
  python3 docs/simulate-diurnal.py --days 8 /tmp/week
  build/virtscale simulate --rules config/rules/web.yml --group workers \
      --history /tmp/week/jobs.csv --start 2024-05-01T00:00:00Z --step 1m \
      --forecast-mode scale_ahead --plot docs/simulate-forecast.svg
"""
import math
import os
import random
import sys

args = sys.argv[1:]
days = 1
if "--days" in args:  # --days N: N-1 days of history before the example day
    i = args.index("--days")
    days = int(args[i + 1])
    del args[i:i + 2]
    if not 1 <= days <= 29:
        sys.exit("--days must be from 1 to 29")
out = args[0] if args else "."
os.makedirs(out, exist_ok=True)
rng = random.Random(42)
day = 1714521600  # 2024-05-01T00:00:00Z, the example day
t0 = day - (days - 1) * 86400
with open(os.path.join(out, "members.csv"), "w") as m, open(os.path.join(out, "jobs.csv"), "w") as j:
    m.write("time,member,metric,value\n")
    j.write("time,source,value\n")
    for minute in range(days * 24 * 60 + 1):
        t = t0 + 60 * minute
        load = 0.5 - 0.4 * math.cos(2 * math.pi * (minute - 240) / (24 * 60))
        for i in range(1, 5):
            cpu = min(1.0, max(0.0, load + rng.gauss(0, 0.05)))
            m.write("%d,web-%d,cpu,%.4f\n" % (t, i, cpu))
            m.write("%d,web-%d,memory,%.4f\n" % (t, i, 0.5 + rng.gauss(0, 0.02)))
        j.write("%d,jobs,%d\n" % (t, max(0, round(200 * load + rng.gauss(0, 10)))))
