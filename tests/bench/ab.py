#!/usr/bin/python3
"""A/B of two skyroute builds (or two settings of one), on loopback, in one run.

    tests/bench/ab.sh --base DIR --new DIR [--loads 1024x100,1024x1000,65536x100]
                      [--rounds 7] [--base-batch N] [--new-batch N] [--markdown FILE]

Starts a skyrouted -> skyroute-node pair (echo; every envelope signed, every
result verified) from each build, warms both alike, then runs h2load against
them in alternated rounds (base then new, new then base, ...), so that a slow
spell of a shared machine falls on both. For each load it prints the medians
of req/s, p50, p99 and CPU per request of the gateway and of the node, and,
per round, the ratio new / base of req/s: its median, its lowest and highest,
in how many rounds the new one was faster, and the two-sided sign test's
p-value for that count (the chance of a split at least this uneven if the
two were the same). Single runs on a shared 2-core machine move by 10-20 %;
a change worth keeping should win most rounds, with a small p-value.

--base-batch / --new-batch set envelopes per signature ([gateway]
envelope_batch and skyroute-node --envelope-batch) for that pair, so the
same build can be compared with two settings.
"""

import argparse
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import srtest  # noqa: E402  (bench put it on the path)

say = bench.say


def use_build(build):
    srtest.BIN = build
    srtest.SKYROUTE = os.path.join(build, "gateway", "skyroute")
    srtest.SKYROUTED = os.path.join(build, "gateway", "skyrouted")
    srtest.NODE = os.path.join(build, "gateway", "skyroute-node")
    for exe in (srtest.SKYROUTE, srtest.SKYROUTED, srtest.NODE):
        if not os.access(exe, os.X_OK):
            sys.exit("ab: no %s (build that tree first)" % exe)


def start_pair(env, name, build, batch):
    use_build(build)
    key, pub = env.keygen("gs-" + name)
    extra = ["--log-level", "warn"]
    conf = "log_level = warn"
    if batch:
        extra += ["--envelope-batch", str(batch)]
        conf += "\nenvelope_batch = %d" % batch
    node = env.start_node("node-" + name, [pub], admin=False, extra=extra)
    gw = env.start_gateway("gs-" + name, [node], extra_gateway=conf)
    return {"url": gw["url"] + "/v1/workloads", "gw": gw["proc"].pid, "node": node["proc"].pid}


def parse_loads(text):
    loads = []
    for item in text.split(","):
        try:
            size, streams = (int(x) for x in item.strip().split("x"))
        except ValueError:
            sys.exit("ab: --loads wants SIZExSTREAMS[,...] (1024x100), not %r" % item)
        if size < 0 or streams not in (1, 100, 1000):
            sys.exit("ab: %r: streams must be 1, 100 or 1000 (the bench's loads)" % item)
        loads.append((size, streams))
    return loads


def sign_test_p(wins, n):
    """Two-sided sign test: P(a split at least as uneven as wins : n - wins | no difference)."""
    k = max(wins, n - wins)
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0 ** n
    return min(1.0, 2 * tail)


def measure(pair, size, streams, n, body, log):
    c, m = {s: (c, m) for s, c, m in bench.LOADS}[streams]
    g0, n0 = bench.cpu_seconds(pair["gw"]), bench.cpu_seconds(pair["node"])
    r = bench.h2load(pair["url"], body, n, c, m, log)
    ok = max(1, r["ok"])
    r["gw_us"] = (bench.cpu_seconds(pair["gw"]) - g0) / ok * 1e6
    r["node_us"] = (bench.cpu_seconds(pair["node"]) - n0) / ok * 1e6
    return r


def main():
    ap = argparse.ArgumentParser(description="A/B of two skyroute builds on loopback")
    ap.add_argument("--base", required=True, help="build directory of the reference")
    ap.add_argument("--new", required=True, help="build directory of the candidate")
    ap.add_argument("--loads", default="1024x100,1024x1000,65536x100",
                    help="SIZExSTREAMS,... (streams 1, 100 or 1000)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--requests", type=int, default=0,
                    help="requests per measurement (default: the bench's for that load)")
    ap.add_argument("--base-batch", type=int, default=0)
    ap.add_argument("--new-batch", type=int, default=0)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    if args.rounds < 2:
        sys.exit("ab: --rounds must be 2 or more")
    for b in ("base_batch", "new_batch"):
        v = getattr(args, b)
        if v and not 1 <= v <= 1024:
            sys.exit("ab: --%s must be 1..1024" % b.replace("_", "-"))
    loads = parse_loads(args.loads)
    base, new = os.path.abspath(args.base), os.path.abspath(args.new)

    env = srtest.Env("ab")
    rows = []
    try:
        say("ab: starting a gateway -> node pair from each build on loopback")
        pairs = {"base": start_pair(env, "base", base, args.base_batch),
                 "new": start_pair(env, "new", new, args.new_batch)}
        log = env.path("h2load.log")
        bodies = {}
        for size in sorted({s for s, _ in loads}):
            bodies[size] = env.path("body%d" % size)
            with open(bodies[size], "wb") as f:
                f.write(os.urandom(size))
        for name, pair in pairs.items():
            say("ab: warming %s (as the bench does)" % name)
            for size in bodies:
                for n, c, m in bench.warm_loads(size):
                    if args.requests:  # a short comparison gets a short warm-up
                        n = min(n, 4 * args.requests)
                    bench.h2load(pair["url"], bodies[size], n, c, m, log)
        for li, (size, streams) in enumerate(loads):
            n = args.requests or bench.requests_for(size, streams, False)
            runs = {"base": [], "new": []}
            for rnd in range(args.rounds):
                order = ("base", "new") if rnd % 2 == 0 else ("new", "base")
                for name in order:
                    r = measure(pairs[name], size, streams, n, bodies[size], log)
                    runs[name].append(r)
                    say("ab load %d/%d round %d/%d: %6d B x %4d streams  %-4s %8.0f req/s  "
                        "p50 %7.2f ms  p99 %7.2f ms  gw %7.1f us  node %7.1f us  (%d ok, %d "
                        "failed)" % (li + 1, len(loads), rnd + 1, args.rounds, size, streams,
                                     name, r["rps"], r["p50"], r["p99"], r["gw_us"],
                                     r["node_us"], r["ok"], r["failed"]))
            ratios = [b["rps"] / max(1e-9, a["rps"]) for a, b in zip(runs["base"], runs["new"])]
            wins = sum(1 for x in ratios if x > 1)
            row = {"size": size, "streams": streams, "ratios": ratios, "wins": wins,
                   "p": sign_test_p(wins, len(ratios))}
            for name, rs in runs.items():
                row[name] = {k: statistics.median(r[k] for r in rs)
                             for k in ("rps", "p50", "p99", "gw_us", "node_us")}
                row[name]["failed"] = sum(r["failed"] for r in rs)
            rows.append(row)
    finally:
        env.close()

    L = ["A/B by `tests/bench/ab.sh` on %s UTC, %d rounds per load (base then new, new then "
         "base, ...); base %s%s, new %s%s. Medians; the ratio is new / base of req/s within "
         "a round." % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), args.rounds, base,
                       " (batch %d)" % args.base_batch if args.base_batch else "", new,
                       " (batch %d)" % args.new_batch if args.new_batch else ""),
         "",
         "| body | streams | req/s base / new | p50 ms base / new | p99 ms base / new | "
         "gateway us/req base / new | node us/req base / new | ratio median (low-high) | "
         "new faster | sign test p |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        a, b = row["base"], row["new"]
        fails = a["failed"] + b["failed"]
        L.append("| %d B | %d | %.0f / %.0f | %.2f / %.2f | %.2f / %.2f | %.1f / %.1f | "
                 "%.1f / %.1f | %.3f (%.3f-%.3f) | %d of %d | %.3f |%s" % (
                     row["size"], row["streams"], a["rps"], b["rps"], a["p50"], b["p50"],
                     a["p99"], b["p99"], a["gw_us"], b["gw_us"], a["node_us"], b["node_us"],
                     statistics.median(row["ratios"]), min(row["ratios"]), max(row["ratios"]),
                     row["wins"], len(row["ratios"]), row["p"],
                     "" if not fails else " (%d failed)" % fails))
    text = "\n".join(L) + "\n"
    print()
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    say("ab: done; %s" % "; ".join(
        "%d B x %d: new/base %.3f, faster in %d of %d (p %.3f)" % (
            r["size"], r["streams"], statistics.median(r["ratios"]), r["wins"], len(r["ratios"]),
            r["p"]) for r in rows))
    return 1 if any(r["base"]["failed"] + r["new"]["failed"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
