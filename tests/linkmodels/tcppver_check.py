#!/usr/bin/python3
"""linkmodels: `skyroute propagate --verify SGP4-VER.TLE` must reproduce every
row of Vallado's tcppver.out (from Debian's python3-sgp4) within 2e-7 km and
2e-7 km/s, stop where his error cases stop, and report his error codes.

Usage: tcppver_check.py [SKYROUTE_BINARY]  (default $SR_BINARY_DIR/gateway/skyroute)
"""
import os
import re
import subprocess
import sys

SGP4_DIR = '/usr/lib/python3/dist-packages/sgp4'
TOL = 2e-7
EXPECTED_ERRORS = [1, 1, 6, 6, 4, 3, 6]  # Vallado's codes, in file order


def blocks(text):
    """[(catnum, [[7 floats], ...]), ...]"""
    out = []
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if len(f) == 2 and f[1] == 'xx':
            out.append((int(f[0]), []))
        else:
            out[-1][1].append([float(x) for x in f[:7]])
    return out


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get('SR_BINARY_DIR', 'build'), 'gateway', 'skyroute')
    tle = os.path.join(SGP4_DIR, 'SGP4-VER.TLE')
    ref = open(os.path.join(SGP4_DIR, 'tcppver.out')).read()
    p = subprocess.run([binary, 'propagate', '--verify', tle], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        print(p.stderr)
        print('FAIL: exit status', p.returncode)
        return 1
    errors = [int(m) for m in re.findall(r'\(code (\d)\)', p.stderr)]
    exp, got = blocks(ref), blocks(p.stdout)
    fails = 0
    if [b[0] for b in exp] != [b[0] for b in got]:
        print('FAIL: satellite lists differ:', [b[0] for b in exp], [b[0] for b in got])
        return 1
    worst_r = worst_v = 0.0
    rows = 0
    prev_last = None
    for (cat, erows), (_, grows) in zip(exp, got):
        # testcpp prints a stale state (the previous satellite's last row) at
        # t=0 when SGP4 fails at epoch; we print nothing and report the error.
        if len(grows) == 0 and len(erows) == 1 and prev_last is not None and \
                erows[0][1:] == prev_last[1:]:
            prev_last = erows[0]
            continue
        if len(erows) != len(grows):
            print('FAIL: %d: %d rows expected, %d produced' % (cat, len(erows), len(grows)))
            fails += 1
        for e, g in zip(erows, grows):
            rows += 1
            if abs(e[0] - g[0]) > 1e-6:
                print('FAIL: %d: tsince %r vs %r' % (cat, e[0], g[0]))
                fails += 1
                continue
            dr = max(abs(e[i] - g[i]) for i in (1, 2, 3))
            dv = max(abs(e[i] - g[i]) for i in (4, 5, 6))
            worst_r, worst_v = max(worst_r, dr), max(worst_v, dv)
            if dr > TOL or dv > TOL:
                print('FAIL: %d t=%.8f: dr=%.3e km dv=%.3e km/s' % (cat, e[0], dr, dv))
                fails += 1
        if erows:
            prev_last = erows[-1]
    if errors != EXPECTED_ERRORS:
        print('FAIL: error codes %r, expected %r' % (errors, EXPECTED_ERRORS))
        fails += 1
    print('%d satellites, %d rows compared, max |dr| = %.3e km, max |dv| = %.3e km/s, '
          'errors %r' % (len(exp), rows, worst_r, worst_v, errors))
    print('FAIL' if fails else 'PASS')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
