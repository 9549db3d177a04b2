#!/usr/bin/python3
"""Federation benchmark, on loopback, everything started and stopped here.

  1. throughput: durable async workloads (prefer: respond-async, 1 KiB, echo
     at an IDC node) per second, from submission to every result stored,
     through one gateway versus three federated gateways (three NATS nodes,
     R3) sharing the load, on this same machine;
  2. the added latency of the shared spool: a workload whose plan leaves
     through another station's pass (A publishes it on the JetStream work
     queue, B adopts it into its spool, runs it, publishes the result, A
     imports it) versus the same workload through one gateway's embedded
     spool, submission to result fetched from the submitting station.

  tests/bench/cluster_bench.py [--build DIR] [--n 3000] [--latency-runs 40] [--rounds 3]

Both set-ups stay up for the whole run and their throughput runs alternate,
so a change in the machine's load hits both; the ratio is of the medians.
"""

import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
ap.add_argument("--n", type=int, default=3000, help="workloads per throughput run")
ap.add_argument("--latency-runs", type=int, default=40)
ap.add_argument("--rounds", type=int, default=3,
                help="throughput runs of each, alternated (the machine's load moves)")
args = ap.parse_args()
os.environ["SR_BINARY_DIR"] = os.path.abspath(args.build)

import srtest  # noqa: E402
from test_cluster import NatsCluster, gateway_conf, start_gw, wait_for, get_json  # noqa: E402
from test_spool import H2  # noqa: E402


def say(msg):
    print(msg, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


def throughput(gws, n):
    """Submits n workloads spread over |gws| (one thread each), polls until
    every result is stored; workloads/s over the whole span."""
    per = n // len(gws)
    ids = {g["id"]: [] for g in gws}
    body = os.urandom(1024)
    t0 = time.time()

    def load(g):
        cl = H2(g["port"])
        out = cl.many([("POST", "/v1/workloads", [("prefer", "respond-async"),
                                                  ("skyroute-deadline-ms", "600000"),
                                                  ("skyroute-place", "target:" + g["idc"])],
                        body)
                       for _ in range(per)], window=48)
        for st, h, b in out:
            if st == 202:
                ids[g["id"]].append(h["skyroute-id"])
        pending = list(ids[g["id"]])
        end = time.time() + 300
        while pending and time.time() < end:
            res = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in pending], window=64)
            bad = [(st, b[:200]) for st, _, b in res if st not in (200, 202)]
            if bad:
                raise SystemExit("a workload failed at %s: %r" % (g["id"], bad[0]))
            pending = [i for i, (st, _, _) in zip(pending, res) if st != 200]
            if pending:
                time.sleep(0.05)
        cl.close()
        ids[g["id"] + ":left"] = pending

    th = [threading.Thread(target=load, args=(g,)) for g in gws]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    done = sum(len(v) for k, v in ids.items() if not k.endswith(":left"))
    left = sum(len(v) for k, v in ids.items() if k.endswith(":left"))
    return (done - left) / dt, done - left, dt


def latency(origin, runs, headers):
    """Submission to result fetched at |origin|, one workload at a time."""
    cl = H2(origin["port"])
    lat = []
    for k in range(runs):
        t0 = time.time()
        st, h, b = cl.many([("POST", "/v1/workloads", [("prefer", "respond-async"),
                                                       ("skyroute-deadline-ms", "600000")] +
                             headers, b"x" * 1024)])[0]
        if st != 202:
            raise SystemExit("submission refused: %s %r" % (st, b[:200]))
        wid = h["skyroute-id"]
        end = t0 + 30
        while time.time() < end:
            st, _, _ = cl.many([("GET", "/v1/workloads/" + wid, [], b"")])[0]
            if st == 200:
                break
            time.sleep(0.005)
        if st != 200:
            raise SystemExit("workload %s not done in 30 s" % wid)
        lat.append((time.time() - t0) * 1000)
        if (k + 1) % 10 == 0:
            say("    %d/%d, p50 so far %.1f ms" % (k + 1, runs, pct(lat, 50)))
    cl.close()
    return lat


def schedule(env, g, sat, aos, los):
    path = env.path("sched-%s.json" % g["id"])
    with open(path, "w") as f:
        json.dump({"passes": [{"sat": sat, "aos": srtest.iso(aos)[:-4] + "Z",
                               "los": srtest.iso(los)[:-4] + "Z"}]}, f)
    sig = srtest.run([srtest.SKYROUTE, "sign", "--key", env.path("ops.key"), "--url",
                      g["url"] + "/v1/passes", "--station", g["id"], "--content-type",
                      "application/json"],
                     input=open(path, "rb").read(), check=True).stdout.decode().strip()
    r = srtest.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "--data-binary",
                    "@" + path, "-H", "content-type: application/json", "-H",
                    "skyroute-signature: " + sig, g["url"] + "/v1/passes"])
    if b'"accepted"' not in r.stdout:
        raise SystemExit("schedule refused: %r" % r.stdout)


def main():
    env = srtest.Env("cluster-bench")
    try:
        run(env)
    finally:
        env.close()


def run(env):
    names = ["gs-a", "gs-b", "gs-c"]
    keys = {g: env.keygen(g) for g in names + ["gs-solo"]}
    env.keygen("ops")
    trust = [k[1] for k in keys.values()]
    idcs = {g: env.start_node("idc-" + g[-1], trust, extra=["--log-level", "warn"])
            for g in names}
    sat = env.start_node("sat-1", trust, extra=["--log-level", "warn"])
    sat_t = dict(sat, kind="satellite", extra={"catnum": "90000"})
    say("cluster_bench: %d workloads per throughput run, %d latency runs; build %s" %
        (args.n, args.latency_runs, args.build))

    # -- both set-ups: one gateway without [cluster]; three NATS nodes and three gateways --------
    say("[1/4] starting one gateway (embedded spool) and a federation (3 NATS nodes, R3, "
        "3 gateways)")
    solo = env.start_gateway("gs-solo", [idcs["gs-a"], sat_t],
                             extra_gateway="log_level = warn\nstation = 48.85,2.35,35",
                             sections="[operator.ops]\npubkey = ops.pub\nsatellites = *\n")
    solo["idc"] = "idc-a"  # each gateway's own IDC: work is not forwarded in this part
    nats = NatsCluster(env)
    nats.start_all()
    urls = [nats.url(i) for i in range(3)]
    gws = {}
    for i, g in enumerate(names):
        gws[g] = gateway_conf(env, g, [idcs[g], sat_t], urls[i:] + urls[:i],
                              [p for p in names if p != g], extra="")
        with open(gws[g]["conf"]) as f:
            text = f.read().replace("log_level = info", "log_level = warn")
        with open(gws[g]["conf"], "w") as f:
            f.write(text)
        start_gw(env, gws[g])
        gws[g]["idc"] = "idc-" + g[-1]
    for g in gws.values():
        wait_for("%s connected" % g["id"],
                 lambda: get_json(g, "/v1/cluster")[1].get("connected"), 30)

    say("[2/4] throughput, %d rounds alternating: one gateway, then the load split over "
        "three federated gateways" % args.rounds)
    ones, threes = [], []
    for r in range(args.rounds):
        one, n1, dt1 = throughput([solo], args.n)
        say("    round %d: one gateway   %d workloads in %.2f s: %.0f workloads/s" %
            (r + 1, n1, dt1, one))
        three, n3, dt3 = throughput(list(gws.values()), args.n)
        say("    round %d: three gateways %d workloads in %.2f s: %.0f workloads/s" %
            (r + 1, n3, dt3, three))
        ones.append(one)
        threes.append(three)
    one, three = pct(ones, 50), pct(threes, 50)

    say("[3/4] latency, submission to result, one gateway's embedded spool (sat-1 in view)")
    now = time.time()
    schedule(env, solo, "sat-1", now - 60, now + 3600)
    lat_embedded = latency(solo, args.latency_runs, [("skyroute-place", "target:sat-1")])

    say("[4/4] shared spool: latency of work submitted at A that leaves through B's pass")
    A, B = gws["gs-a"], gws["gs-b"]
    now = time.time()
    schedule(env, B, "sat-1", now - 60, now + 3600)      # in view of B now
    schedule(env, A, "sat-1", now + 6 * 3600, now + 6 * 3600 + 600)  # A: hours away
    schedule(env, gws["gs-c"], "sat-1", now + 7 * 3600, now + 7 * 3600 + 600)

    def via_b():
        st, j = get_json(A, "/v1/route?work=0&bytes=1024&deadline_ms=600000"
                            "&place=target:sat-1&async=1")
        return st == 200 and j.get("choice") == "sat-1@gs-b"
    wait_for("A to plan sat-1 through B", via_b, 15)
    lat_shared = latency(A, args.latency_runs, [("skyroute-place", "target:sat-1")])
    fwd = srtest.metric(A["admin"], "skyroute_cluster_forwarded_total")
    if fwd < args.latency_runs:
        raise SystemExit("only %d of %d went through the shared spool" % (fwd, args.latency_runs))

    say("")
    say("summary (%s, %d cores, load average %.1f)" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.cpu_count(), os.getloadavg()[0]))
    say("| measure | one gateway (embedded) | federation | ratio |")
    say("| --- | ---: | ---: | ---: |")
    say("| durable async workloads/s, 1 KiB echo at an IDC, %d per run, median of %d | %.0f | "
        "%.0f (3 gateways) | %.2fx |" % (args.n, args.rounds, one, three, three / one))
    e50, e90 = pct(lat_embedded, 50), pct(lat_embedded, 90)
    s50, s90 = pct(lat_shared, 50), pct(lat_shared, 90)
    say("| submission to result, p50 ms | %.1f | %.1f (via B's pass) | +%.1f ms |" %
        (e50, s50, s50 - e50))
    say("| submission to result, p90 ms | %.1f | %.1f | +%.1f ms |" % (e90, s90, s90 - e90))


if __name__ == "__main__":
    main()
