#!/usr/bin/python3
"""linkmodels CLI contracts: `skyroute passes`, `elements synth|check|convert`
and `propagate` exit codes, --help, usage errors (exit 2), JSON shape, and
refusals of malformed element files with the line and field named.

Usage: cli_check.py [SKYROUTE_BINARY]  (default $SR_BINARY_DIR/gateway/skyroute)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from sgp4.api import Satrec

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print('FAIL:', what)


def run(binary, *args, stdin=None):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120,
                          input=stdin)


def checksum_ok(line):
    s = sum(int(c) if c.isdigit() else (1 if c == '-' else 0) for c in line[:68])
    return str(s % 10) == line[68]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get('SR_BINARY_DIR', 'build'), 'gateway', 'skyroute')
    for sub in (['passes'], ['propagate'], ['elements'], ['elements', 'synth']):
        p = run(binary, *sub, '--help')
        check(p.returncode == 0 and 'usage' in p.stdout, '%s --help exits 0' % sub)
        p = run(binary, *sub, '--bogus')
        check(p.returncode == 2 and p.stderr.startswith('skyroute %s: ' % sub[0]),
              '%s --bogus exits 2 with one line' % sub)
    p = run(binary, 'passes', '--elements', 'x')
    check(p.returncode == 2, 'passes without --station exits 2')

    with tempfile.TemporaryDirectory() as tmp:
        # a Walker shell as TLE: checksums right, sgp4 (python) reads it
        p = run(binary, 'elements', 'synth', '--walker', '550,53,4,5,1', '--epoch',
                '2026-11-22T00:00:00Z')
        check(p.returncode == 0, 'synth --walker exits 0')
        lines = p.stdout.splitlines()
        check(len(lines) == 60, 'synth --walker writes 20 three-line sets')
        tle_lines = [l for l in lines if l[:2] in ('1 ', '2 ')]
        check(all(len(l) == 69 and checksum_ok(l) for l in tle_lines), 'synth checksums')
        for i in range(0, len(tle_lines), 2):
            Satrec.twoline2rv(tle_lines[i], tle_lines[i + 1])
        # OMM JSON form parses back, same count
        p = run(binary, 'elements', 'synth', '--walker', '550,53,4,5,1', '--epoch',
                '2026-11-22T00:00:00Z', '--format', 'omm-json')
        check(p.returncode == 0 and len(json.loads(p.stdout)) == 20, 'synth omm-json')
        omm = os.path.join(tmp, 'shell.json')
        open(omm, 'w').write(p.stdout)
        p = run(binary, 'elements', 'check', omm)
        check(p.returncode == 0 and '20 element sets' in p.stdout, 'check omm-json')

        # an overhead satellite gives a pass with TCA near the requested time
        p = run(binary, 'elements', 'synth', '--overhead', '52.0,4.37,10', '--at',
                '2026-11-22T12:00:00Z', '--first-catnum', '271828')
        check(p.returncode == 0, 'synth --overhead exits 0')
        ov = os.path.join(tmp, 'ov.tle')
        open(ov, 'w').write(p.stdout)
        check(p.stdout.splitlines()[1][2:7] == 'T1828', 'Alpha-5 catalogue number written')
        p = run(binary, 'passes', '--elements', ov, '--station', '52.0,4.37,10', '--from',
                '2026-11-22T11:30:00Z', '--to', '2026-11-22T12:30:00Z', '--min-el', '10',
                '--json')
        check(p.returncode == 0, 'passes --json exits 0')
        arr = json.loads(p.stdout)
        check(len(arr) == 1, 'one overhead pass')
        if arr:
            o = arr[0]
            for k in ('sat', 'aos', 'tca', 'los', 'max_el_deg', 'aos_az_deg', 'los_az_deg'):
                check(k in o, 'pass has %s' % k)
            rfc = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
            check(all(rfc.match(o[k]) for k in ('aos', 'tca', 'los')), 'RFC 3339 with ms')
            check(o['aos'] < o['tca'] < o['los'], 'aos < tca < los')
            check(o['max_el_deg'] > 80 and o['tca'].startswith('2026-11-22T12:00'),
                  'overhead at the requested time')
            check(o['norad'] == 271828, 'catalogue number above 99999 survives')
        p = run(binary, 'passes', '--elements', ov, '--station', '52.0,4.37,10', '--from',
                '2026-11-22T11:30:00Z', '--to', '2026-11-22T12:30:00Z')
        check(p.returncode == 0 and 'AOS' in p.stdout and 'OVERHEAD' in p.stdout, 'table form')

        # refusals name the line and the field; exit 1
        good = open(ov).read().splitlines()
        bad = good[:]
        bad[2] = bad[2][:26] + '1.12345' + bad[2][33:68]
        bad[2] += str(sum(int(c) if c.isdigit() else (c == '-') for c in bad[2]) % 10)
        cases = {
            'checksum': (good[0] + '\n' + good[1][:68] + str((int(good[1][68]) + 1) % 10) +
                         '\n' + good[2] + '\n', ['line 1', 'checksum']),
            'truncated': ('\n'.join(good[:2]) + '\n' + good[2][:40] + '\n',
                          ['line 2', 'truncated']),
            'ecc': ('\n'.join(bad) + '\n', ['line 2', 'eccentricity']),
            'nan': ('[{"OBJECT_NAME":"X","EPOCH":"2026-11-22T00:00:00","MEAN_MOTION":"nan",'
                    '"ECCENTRICITY":0.001,"INCLINATION":53,"RA_OF_ASC_NODE":1,'
                    '"ARG_OF_PERICENTER":2,"MEAN_ANOMALY":3,"NORAD_CAT_ID":5,"BSTAR":0}]',
                    ['object 1', 'MEAN_MOTION']),
            'units': ('CCSDS_OMM_VERS = 2.0\nINCLINATION = 0.9 [rad]\n', ['line 2', 'units']),
            'ecc_range': ('OBJECT_NAME,EPOCH,MEAN_MOTION,ECCENTRICITY,INCLINATION,'
                          'RA_OF_ASC_NODE,ARG_OF_PERICENTER,MEAN_ANOMALY,NORAD_CAT_ID,BSTAR\n'
                          'X,2026-11-22T00:00:00,15.5,1.5,53,1,2,3,5,0\n',
                          ['CSV line 2', 'ECCENTRICITY']),
        }
        for name, (text, needles) in cases.items():
            path = os.path.join(tmp, name)
            open(path, 'w').write(text)
            for sub in (['elements', 'check', path],
                        ['passes', '--elements', path, '--station', '0,0,0', '--from',
                         '2026-11-22T00:00:00Z', '--to', '2026-11-22T01:00:00Z']):
                p = run(binary, *sub)
                check(p.returncode == 1 and all(n in p.stderr for n in needles),
                      '%s refused by %s: %r' % (name, sub[0], p.stderr.strip()))

        # propagate --elements prints TEME states
        p = run(binary, 'propagate', '--elements', ov, '--from', '2026-11-22T12:00:00Z',
                '--to', '2026-11-22T12:02:00Z', '--step', '60')
        check(p.returncode == 0 and len(p.stdout.splitlines()) == 3, 'propagate --elements')
    print('FAIL (%d)' % len(FAILS) if FAILS else 'PASS')
    return 1 if FAILS else 0


if __name__ == '__main__':
    sys.exit(main())
