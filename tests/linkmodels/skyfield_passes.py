#!/usr/bin/python3
"""linkmodels: `skyroute passes --json` against skyfield's find_events.

For LEO, polar (sun-synchronous), MEO and Molniya orbits over two stations and
several days, every pass skyfield finds must be reported with AOS and LOS
within 1 s, and we must report no pass skyfield does not have (no missed and
no phantom passes). Skyfield's own event times are refined here by bisection
on its altitude (find_events stops at half a second), so the comparison
measures our error, not its tolerance.

Usage: skyfield_passes.py [SKYROUTE_BINARY]  (default $SR_BINARY_DIR/gateway/skyroute)
"""
import json
import math
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone

from sgp4.api import Satrec, WGS72
from sgp4.exporter import export_tle
from skyfield.api import EarthSatellite, load, wgs84

TOL_S = 1.0
EPOCH = datetime(2026, 11, 20, 6, 0, 0, tzinfo=timezone.utc)
FROM = datetime(2026, 11, 21, 0, 0, 0, tzinfo=timezone.utc)
TO = datetime(2026, 11, 26, 0, 0, 0, tzinfo=timezone.utc)

# name, catnum, inclination deg, eccentricity, argp deg, raan deg, M deg, rev/day, bstar
ORBITS = [
    ('LEO-ISS', 90001, 51.64, 0.0004, 90.0, 130.0, 10.0, 15.50, 2.5e-5),
    ('LEO-POLAR', 90002, 97.60, 0.0012, 60.0, 300.0, 200.0, 14.80, 1.0e-5),
    ('MEO-GPS', 90003, 55.00, 0.0050, 30.0, 80.0, 120.0, 2.0056, 0.0),
    ('MOLNIYA', 90004, 63.40, 0.7200, 270.0, 40.0, 300.0, 2.0060, 0.0),
    ('LEO-LOW', 90005, 28.50, 0.0001, 0.0, 10.0, 50.0, 15.95, 5.0e-5),
    ('LEO-RETRO', 90006, 142.0, 0.0100, 200.0, 250.0, 80.0, 14.20, 1.0e-5),
    ('MEO-O3B', 90007, 0.05, 0.0002, 10.0, 20.0, 30.0, 5.0, 0.0),
]
STATIONS = [
    ('delft', 52.0, 4.37, 10.0, 10.0),
    ('svalbard', 78.23, 15.39, 500.0, 5.0),
    ('quito', -0.18, -78.47, 2850.0, 0.0),
]


def make_tle(name, cat, inc, ecc, argp, raan, ma, n_rev_day, bstar):
    sat = Satrec()
    epoch_days = (EPOCH - datetime(1949, 12, 31, tzinfo=timezone.utc)).total_seconds() / 86400
    sat.sgp4init(WGS72, 'i', cat, epoch_days, bstar, 0.0, 0.0, ecc, math.radians(argp),
                 math.radians(inc), math.radians(ma), n_rev_day * 2 * math.pi / 1440.0,
                 math.radians(raan))
    sat.classification = 'U'
    sat.intldesg = '26001A'
    sat.elnum = 999
    sat.revnum = 1
    sat.ephtype = 0
    l1, l2 = export_tle(sat)
    return name, l1, l2


def refine(ts, f, t_sf, mask):
    """Bisect skyfield altitude - mask around t_sf (a skyfield Time) to 1 ms."""
    jd = t_sf.tt
    a, b = jd - 2.0 / 86400, jd + 2.0 / 86400
    fa = f(ts.tt_jd(a)) - mask
    fb = f(ts.tt_jd(b)) - mask
    if fa * fb > 0:
        return jd  # leave it; the comparison will show it
    while (b - a) * 86400 > 0.001:
        m = (a + b) / 2
        fm = f(ts.tt_jd(m)) - mask
        if (fm < 0) == (fa < 0):
            a, fa = m, fm
        else:
            b, fb = m, fm
    return (a + b) / 2


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get('SR_BINARY_DIR', 'build'), 'gateway', 'skyroute')
    ts = load.timescale(builtin=True)
    tles = [make_tle(*o) for o in ORBITS]
    fails = 0
    worst = 0.0
    compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'sats.tle')
        with open(path, 'w') as fh:
            for name, l1, l2 in tles:
                fh.write('%s\n%s\n%s\n' % (name, l1, l2))
        for sname, lat, lon, alt, mask in STATIONS:
            p = subprocess.run(
                [binary, 'passes', '--elements', path, '--station', '%r,%r,%r' % (lat, lon, alt),
                 '--from', FROM.strftime('%Y-%m-%dT%H:%M:%SZ'), '--to',
                 TO.strftime('%Y-%m-%dT%H:%M:%SZ'), '--min-el', repr(mask), '--json'],
                capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                print(p.stderr)
                print('FAIL: exit status', p.returncode)
                return 1
            ours = json.loads(p.stdout)
            topo = wgs84.latlon(lat, lon, elevation_m=alt)
            t0, t1 = ts.from_datetime(FROM), ts.from_datetime(TO)
            for name, l1, l2 in tles:
                sat = EarthSatellite(l1, l2, name, ts)
                diff = sat - topo

                def alt_deg(t):
                    return diff.at(t).altaz()[0].degrees

                times, kinds = sat.find_events(topo, t0, t1, altitude_degrees=mask)
                ref = []  # (aos_unix, los_unix) of passes wholly inside the window
                cur = None
                for t, k in zip(times, kinds):
                    if k == 0:
                        cur = refine(ts, alt_deg, t, mask)
                    elif k == 2 and cur is not None:
                        ref.append((cur, refine(ts, alt_deg, t, mask)))
                        cur = None
                mine = [o for o in ours if o['sat'] == name]

                def unix(s):
                    return datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
                        tzinfo=timezone.utc).timestamp()

                def jd_unix(jd_tt):
                    return ts.tt_jd(jd_tt).utc_datetime().timestamp()

                ref_u = [(jd_unix(a), jd_unix(b)) for a, b in ref]
                used = set()
                for a, b in ref_u:
                    best = None
                    for i, o in enumerate(mine):
                        if abs(unix(o['aos']) - a) < 60:
                            best = i
                    if best is None:
                        print('FAIL: %s/%s: missed pass AOS %s' % (
                            sname, name, datetime.fromtimestamp(a, timezone.utc)))
                        fails += 1
                        continue
                    used.add(best)
                    o = mine[best]
                    da, dl = unix(o['aos']) - a, unix(o['los']) - b
                    compared += 1
                    worst = max(worst, abs(da), abs(dl))
                    if os.environ.get("SR_DEBUG"): print("  %s %s da=%.3f dl=%.3f" % (sname, name, da, dl))
                    if abs(da) > TOL_S or abs(dl) > TOL_S:
                        print('FAIL: %s/%s: AOS off by %.3f s, LOS by %.3f s' % (
                            sname, name, da, dl))
                        fails += 1
                for i, o in enumerate(mine):
                    if i in used:
                        continue
                    a, b = unix(o['aos']), unix(o['los'])
                    inside = a > FROM.timestamp() + 1 and b < TO.timestamp() - 1
                    if inside:
                        print('FAIL: %s/%s: phantom pass %s..%s max %.2f' % (
                            sname, name, o['aos'], o['los'], o['max_el_deg']))
                        fails += 1
                print('%-9s %-10s skyfield %2d passes, ours %2d' % (
                    sname, name, len(ref), len(mine)))
    print('%d passes compared, worst AOS/LOS difference %.3f s' % (compared, worst))
    print('FAIL' if fails else 'PASS')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
