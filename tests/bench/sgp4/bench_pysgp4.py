#!/usr/bin/python3
"""python3-sgp4 side of the SGP4 benchmark (Debian's package; its C++ core
when built with it, else pure Python: see the 'accelerated' line).
usage: bench_pysgp4.py CATALOGUE START_ISO STEPS STEP_S [MAX_SATS]

Pure Python is about 60,000 propagations/s, so MAX_SATS (default all) lets
the run time a subset; the rate is what matters."""
import sys
import time
from datetime import datetime, timezone

import numpy as np
from sgp4.api import Satrec, SatrecArray, accelerated, jday

path, start_iso, steps, step_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lines = [l.rstrip() for l in open(path) if l.strip()]
sats = []
i = 0
while i < len(lines):
    if lines[i].startswith('1 ') and i + 1 < len(lines) and lines[i + 1].startswith('2 '):
        sats.append(Satrec.twoline2rv(lines[i], lines[i + 1]))
        i += 2
    else:
        i += 1
if len(sys.argv) > 5:
    sats = sats[:int(sys.argv[5])]
print('accelerated %s sats %d' % (accelerated, len(sats)))
start = datetime.strptime(start_iso, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=timezone.utc)
jd0, fr0 = jday(start.year, start.month, start.day, start.hour, start.minute, start.second)
fr = fr0 + np.arange(steps) * step_s / 86400.0
jd = np.full(steps, jd0)

# per satellite, sgp4_array (a C++ loop over the times)
t0 = time.perf_counter()
total = 0.0
for k, s in enumerate(sats):
    e, r, v = s.sgp4_array(jd, fr)
    total += float(r[:, 0].sum())
    if len(sats) >= 10 and k % (len(sats) // 10) == 0:
        sys.stderr.write('\r  python3-sgp4 sgp4_array: %3d%%' % (k * 100 // len(sats)))
secs = time.perf_counter() - t0
sys.stderr.write('\r  python3-sgp4 sgp4_array: 100%\n')
n = len(sats) * steps
print('sgp4_array props %d seconds %.6f rate %.0f checksum %.6e' % (n, secs, n / secs, total))

# the whole catalogue at once (SatrecArray)
t0 = time.perf_counter()
arr = SatrecArray(sats)
e, r, v = arr.sgp4(jd, fr)
secs = time.perf_counter() - t0
print('SatrecArray props %d seconds %.6f rate %.0f checksum %.6e' % (
    n, secs, n / secs, float(r[:, :, 0].sum())))
