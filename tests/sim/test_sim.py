"""skyroute sim: the router against the baselines, on the shipped scenarios and
on generated ones it was not tuned on.

What it shows: skyroute meets at least as many deadlines as every
baseline and is within 3 percentage points of the clairvoyant oracle; with
the energy weight raised, energy per workload drops while the deadlines met
stay within 1 point; the same seed gives the same numbers.

Generated scenarios come from a PRNG seeded by SR_SIM_SEEDS (comma-separated
integers; default a fixed list so CI is reproducible). Set SR_SIM_SEEDS=random
to draw fresh ones; the seeds used are printed, so any failure can be rerun.
"""

import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import srtest  # noqa: E402
from srtest import check  # noqa: E402

SCEN = os.path.join(srtest.SRC, "deploy", "scenarios")
SHIPPED = sorted(f for f in os.listdir(SCEN) if f.endswith(".ini"))
BASELINES = ("ground-only", "least-rtt", "random")
ENERGY_WEIGHT = "1e6"


def sim(path, seed=1, extra=()):
    r = subprocess.run([srtest.SKYROUTE, "sim", path, "--seed", str(seed), "--json", "--quiet"]
                       + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        raise AssertionError("skyroute sim %s failed: %s" % (path, r.stderr.decode()))
    return {p["name"]: p for p in json.loads(r.stdout)["policies"]}


def check_policies(name, res):
    ours = res["skyroute"]["deadline_met"]
    line = " ".join("%s=%.2f%%" % (k, v["deadline_met"] * 100) for k, v in res.items())
    print("  %s: %s" % (name, line))
    for b in BASELINES:
        check(ours >= res[b]["deadline_met"],
              "%s: skyroute %.4f below %s %.4f" % (name, ours, b, res[b]["deadline_met"]))
    check(res["oracle"]["deadline_met"] - ours <= 0.03,
          "%s: skyroute %.4f more than 3 points below oracle %.4f"
          % (name, ours, res["oracle"]["deadline_met"]))


def test_shipped_scenarios():
    check(len(SHIPPED) >= 3, "at least three shipped scenarios: %r" % SHIPPED)
    for f in SHIPPED:
        check_policies(f, sim(os.path.join(SCEN, f)))


def test_energy_weight():
    for f in SHIPPED:
        path = os.path.join(SCEN, f)
        base = sim(path, extra=["--policy", "skyroute"])["skyroute"]
        green = sim(path, extra=["--policy", "skyroute", "--energy-weight", ENERGY_WEIGHT])["skyroute"]
        e0 = base["energy_kwh"] / base["workloads"]
        e1 = green["energy_kwh"] / green["workloads"]
        print("  %s: energy/workload %.3f Wh -> %.3f Wh (%.1f%%), deadlines %.2f%% -> %.2f%%"
              % (f, e0 * 1000, e1 * 1000, (e1 / e0 - 1) * 100, base["deadline_met"] * 100,
                 green["deadline_met"] * 100))
        check(e1 <= e0 * 0.99, "%s: energy per workload did not drop: %.6f -> %.6f" % (f, e0, e1))
        check(abs(green["deadline_met"] - base["deadline_met"]) <= 0.01,
              "%s: deadlines moved more than a point: %.4f -> %.4f"
              % (f, base["deadline_met"], green["deadline_met"]))


def test_same_seed_same_numbers():
    path = os.path.join(SCEN, SHIPPED[0])
    a = subprocess.run([srtest.SKYROUTE, "sim", path, "--seed", "7", "--json", "--quiet"],
                       stdout=subprocess.PIPE, check=True).stdout
    b = subprocess.run([srtest.SKYROUTE, "sim", path, "--seed", "7", "--json", "--quiet"],
                       stdout=subprocess.PIPE, check=True).stdout
    c = subprocess.run([srtest.SKYROUTE, "sim", path, "--seed", "8", "--json", "--quiet"],
                       stdout=subprocess.PIPE, check=True).stdout
    check(a == b, "same seed, same output")
    check(a != c, "another seed, other numbers")


def generate(seed):
    """A random scenario: station anywhere between 60S and 75N, a random
    Walker shell, two to four IDCs with random latency, capacity and energy,
    random traffic and a random truth."""
    g = random.Random(seed)
    lat = g.uniform(-60, 75)
    lon = g.uniform(-180, 180)
    incl = g.choice([53, 70, 87, 97.6])
    planes, per = g.randint(3, 8), g.randint(4, 10)
    lines = [
        "[scenario]", "start = 2026-11-%02dT%02d:00:00Z" % (g.randint(1, 28), g.randint(0, 23)),
        "duration_s = %d" % g.choice([10800, 21600]), "",
        "[station]", "location = %.2f,%.2f,100" % (lat, lon),
        "min_el_deg = %d" % g.choice([10, 15, 20]), "",
        "[constellation]",
        "walker = %d:%s:%d/%d/1" % (g.randint(500, 1200), incl, planes, per),
        "gops = %d" % g.choice([10, 30, 100]),
        "rtt_ms = %d" % g.randint(20, 60),
        "uplink_bps = %d" % g.choice([1e6, 5e6, 2e7]),
        "downlink_bps = %d" % g.choice([1e7, 5e7]),
        "joules_per_gop = %.1f" % g.uniform(1, 4),
        "battery_cost = %.1f" % g.uniform(0.5, 3), "",
    ]
    for i in range(g.randint(2, 4)):
        pv = g.random() < 0.4
        lines += ["[idc.dc%d]" % i, "rtt_ms = %d" % g.randint(5, 150),
                  "gops = %d" % g.choice([50, 200, 500, 1000]),
                  "uplink_bps = %d" % g.choice([2e6, 1e7, 5e7]),
                  "downlink_bps = %d" % g.choice([2e6, 1e7, 5e7]),
                  "joules_per_gop = %.2f" % g.uniform(0.8, 3),
                  "pue = %.2f" % (1.08 if pv else g.uniform(1.1, 1.8)),
                  "power = %s" % ("pv" if pv else "grid"),
                  "price_per_kwh = %.2f" % g.uniform(0.05, 0.4),
                  "carbon_g_per_kwh = %d" % g.randint(20, 800)]
        if pv:
            lines += ["pv_peak_w = %d" % g.randint(500, 5000), "utc_offset_h = %d" % g.randint(-8, 8)]
        lines.append("")
    lines += [
        "[workload]", "rate_per_min = %d" % g.randint(2, 12),
        "work_gop = %d..%d" % (g.choice([10, 50]), g.choice([1000, 5000])),
        "bytes = 100000..%d" % g.choice([1e6, 2e7]),
        "result_bytes = 10000..1000000",
        "deadline_s = %d..%d" % (g.choice([5, 30]), g.choice([600, 3600])),
        "orbit_frac = %.2f" % g.uniform(0, 0.2), "ground_frac = %.2f" % g.uniform(0, 0.3),
        "data_onboard_frac = %.2f" % g.uniform(0, 0.3), "",
        "[truth]", "jitter = %.2f" % g.uniform(0.05, 0.25),
        "outage_per_hour = %.2f" % g.uniform(0, 0.5), "outage_s = %d" % g.randint(30, 300),
        "fade_prob = %.2f" % g.uniform(0, 0.2), "fade_factor = 0.5",
        "element_error_s = %.1f" % g.uniform(0, 5), "",
        "[policy]", "margin_ms = 500", "link_margin = 1", "",
    ]
    return "\n".join(lines)


def test_generated_scenarios():
    env = os.environ.get("SR_SIM_SEEDS", "")
    if env == "random":
        seeds = [random.SystemRandom().randrange(1 << 30) for _ in range(4)]
    elif env:
        seeds = [int(x) for x in env.split(",")]
    else:
        seeds = [101, 202, 303, 404]
    print("  generated scenario seeds: %s" % ",".join(map(str, seeds)))
    d = tempfile.mkdtemp(prefix="sr-sim-")
    for s in seeds:
        path = os.path.join(d, "gen-%d.ini" % s)
        with open(path, "w") as f:
            f.write(generate(s))
        check_policies("generated %d" % s, sim(path, seed=s))
        os.unlink(path)
    os.rmdir(d)


def test_bad_scenarios_are_refused_by_name():
    """A broken scenario stops with exit status 1 and a message naming the line and what
    is wrong, before anything runs. The walker cases once got through: PLANES x PER_PLANE
    wrapped around in 32 bits (65536 x 65536 passed the 20,000 limit) and %u took -1, and
    the sim then failed with an empty message."""
    base = ["[scenario]", "start = 2026-11-24T00:00:00Z", "duration_s = 3600", "[station]",
            "location = 48.8,2.3,35", "[constellation]", "walker = 550:53:4/4/1"]
    cases = [
        ("walker = 550:53:65536/65536/1", ":7: walker: '550:53:65536/65536/1': at most 20000"),
        ("walker = 550:53:-1/10/1", ":7: walker: expected ALT_KM:INCL:PLANES/PER_PLANE/PHASING"),
        ("walker = 550:53:10/10/10", ":7: walker: '550:53:10/10/10': at most 20000 satellites "
         "(PLANES x PER_PLANE), and PHASING below PLANES"),
        ("walker = 550:53:4/4", ":7: walker: expected"),
        ("duration_s = 1e9", ":3: duration_s: 1e+09 is outside [60, 604800]"),
        ("start = yesterday", ":2: start: 'yesterday' is not an RFC 3339 time"),
        ("location = 48.8,2.3", ":5: location: expected LAT,LON,ALT_M"),
    ]
    with tempfile.TemporaryDirectory(prefix="sr-sim-") as d:
        path = os.path.join(d, "bad.ini")
        for line, words in cases:
            key = line.split(" = ")[0]
            lines = [line if x.startswith(key + " = ") else x for x in base]
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            r = subprocess.run([srtest.SKYROUTE, "sim", path, "--quiet", "--policy",
                                "ground-only"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            err = r.stderr.decode()
            check(r.returncode == 1 and ("skyroute sim: " + path + words) in err,
                  "%s: exit %d, %r" % (line, r.returncode, err))


if __name__ == "__main__":
    srtest.run_tests([test_shipped_scenarios, test_energy_weight, test_same_seed_same_numbers,
                      test_generated_scenarios, test_bad_scenarios_are_refused_by_name])
