"""The A/B benchmark (tests/bench/ab.sh) runs end to end on a tiny load: it
starts two gateway -> node pairs from this build (with two batch settings),
alternates h2load rounds between them, and prints its table and summary; bad
arguments get a message that names what is wrong."""

import os
import re

import srtest
from srtest import check, run

AB = os.path.join(srtest.SRC, "tests", "bench", "ab.sh")


def test_ab_sign_test_p_values():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "ab", os.path.join(srtest.SRC, "tests", "bench", "ab.py"))
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    # two-sided binomial tails with p = 1/2: 2 * (1/2)^7, 2 * (9 + 1) / 2^9, all splits
    for wins, n, want in ((7, 7, 0.015625), (0, 7, 0.015625), (8, 9, 20 / 512), (1, 9, 20 / 512),
                          (5, 9, 1.0), (4, 8, 1.0), (6, 7, 16 / 128)):
        got = ab.sign_test_p(wins, n)
        check(abs(got - want) < 1e-12, "p(%d of %d) = %r, not %r" % (wins, n, got, want))


def test_ab_compares_two_settings_and_prints_the_table():
    md = os.path.join(srtest.BIN, "ab-smoke.md")
    if os.path.exists(md):
        os.unlink(md)
    r = run([AB, "--base", srtest.BIN, "--new", srtest.BIN, "--base-batch", "32",
             "--new-batch", "1", "--loads", "1024x1,1024x100", "--rounds", "2",
             "--requests", "300", "--markdown", md], timeout=300)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "ab exited %d: %s %s" % (r.returncode, out[-2000:],
                                                      r.stderr.decode()[-1000:]))
    # two rounds per load, each running both pairs, in alternated order
    rounds = re.findall(r"round (\d)/2: +1024 B x +(\d+) streams +(base|new) ", out)
    check(len(rounds) == 8, "8 measurements: %r" % rounds)
    check([x[2] for x in rounds[:4]] == ["base", "new", "new", "base"],
          "rounds alternate the order: %r" % rounds[:4])
    counts = re.findall(r"\((\d+) ok, (\d+) failed\)", out)
    check(len(counts) == 8 and all(c == ("300", "0") for c in counts),
          "every request succeeded: %r" % counts)
    with open(md) as f:
        table = f.read()
    rows = [l for l in table.splitlines() if l.startswith("| 1024 B |")]
    check(len(rows) == 2, "one row per load: %r" % table)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        check(re.fullmatch(r"\d+ of 2", cells[8]) is not None, "wins column: %r" % row)
        check(0 < float(cells[9]) <= 1, "sign test p: %r" % row)
    check("(batch 32)" in table and "(batch 1)" in table, "the settings are named: %r" % table)


def test_ab_refuses_bad_arguments_with_a_reason():
    cases = [
        (["--loads", "1024x7"], "streams must be 1, 100 or 1000"),
        (["--loads", "big"], "--loads wants SIZExSTREAMS"),
        (["--rounds", "1"], "--rounds must be 2 or more"),
        (["--new-batch", "5000"], "--new-batch must be 1..1024"),
    ]
    for extra, want in cases:
        r = run([AB, "--base", srtest.BIN, "--new", srtest.BIN] + extra, timeout=60)
        err = (r.stdout + r.stderr).decode(errors="replace")
        check(r.returncode != 0 and want in err, "%r: %d %r" % (extra, r.returncode, err))
    r = run([AB, "--base", srtest.BIN, "--new", "/nonexistent-build"], timeout=60)
    err = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode != 0 and "/nonexistent-build/gateway/skyroute" in err, err)


if __name__ == "__main__":
    srtest.run_tests([test_ab_sign_test_p_values,
                      test_ab_compares_two_settings_and_prints_the_table,
                      test_ab_refuses_bad_arguments_with_a_reason])
