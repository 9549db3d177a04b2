#!/usr/bin/python3
"""Benchmark: h2load POSTs of 1 KiB through skyrouted -> skyroute-node (echo,
every envelope signed and every result verified) and, in the same run, the
same load through nghttpx -> nghttpd serving a 1 KiB file. Prints req/s, p50,
p99 and CPU seconds per 10,000 requests for each, and the ratios.

    tests/bench/gateway_bench.py [--build DIR] [-n REQUESTS] [--rounds N]

Everything runs on loopback and is stopped at the end. Absolute numbers
depend on the machine; the ratios are the point (same machine, same load,
same run). Rounds alternate between the two so drift hits both alike.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import srtest  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of a process and its live children (nghttpx runs its
    worker in a child process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def h2load(url, body, n, c, m, log):
    if os.path.exists(log):
        os.unlink(log)  # h2load appends
    argv = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m), "-t", "1", "-d", body,
            "--log-file", log, url]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = r.stdout.decode()
    rps = 0.0
    ok = failed = 0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rps = float(line.split(",")[1].split()[0])
        if line.startswith("requests:"):
            parts = line.replace(",", "").split()
            ok = int(parts[parts.index("succeeded") - 1])
            failed = int(parts[parts.index("failed") - 1]) + int(parts[parts.index("errored") - 1])
    durs = []
    with open(log) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 3 and cols[1].startswith("2"):
                durs.append(int(cols[2]) / 1000.0)  # us -> ms
    durs.sort()

    def pct(p):
        return durs[min(len(durs) - 1, int(p * len(durs)))] if durs else float("nan")

    return {"rps": rps, "p50": pct(0.50), "p99": pct(0.99), "ok": ok, "failed": failed}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SR_BINARY_DIR", "build"))
    ap.add_argument("-n", type=int, default=20000, help="requests per measurement")
    ap.add_argument("-c", type=int, default=10, help="connections")
    ap.add_argument("-m", type=int, default=10, help="concurrent streams per connection")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    srtest.BIN = os.path.abspath(args.build)
    srtest.SKYROUTE = os.path.join(srtest.BIN, "gateway", "skyroute")
    srtest.SKYROUTED = os.path.join(srtest.BIN, "gateway", "skyrouted")
    srtest.NODE = os.path.join(srtest.BIN, "gateway", "skyroute-node")

    env = srtest.Env("bench")
    try:
        print("[setup] skyrouted -> skyroute-node (echo), nghttpx -> nghttpd (1 KiB file)", flush=True)
        gkey, gpub = env.keygen("gs-bench")
        node = env.start_node("alpha", [gpub], admin=False, extra=["--log-level", "warn"])
        gw = env.start_gateway("gs-bench", [node], extra_gateway="log_level = warn")
        docroot = env.path("www")
        os.mkdir(docroot)
        with open(os.path.join(docroot, "file1k"), "wb") as f:
            f.write(os.urandom(1024))
        pd, px = srtest.free_port(), srtest.free_port()
        nghttpd = env.start(["nghttpd", "--no-tls", "-d", docroot, str(pd)], "nghttpd", pd)
        nghttpx = env.start(["nghttpx", "--frontend=127.0.0.1,%d;no-tls" % px,
                             "--backend=127.0.0.1,%d;;proto=h2" % pd, "--workers=1",
                             "--no-ocsp", "--conf=/dev/null",
                             "--errorlog-file=%s" % env.path("nghttpx.err"),
                             "--accesslog-file=/dev/null"], "nghttpx", px)
        body = env.path("body1k")
        with open(body, "wb") as f:
            f.write(os.urandom(1024))
        log = env.path("h2load.log")
        # warm both paths
        h2load(gw["url"] + "/v1/workloads", body, 2000, args.c, args.m, log)
        h2load("http://127.0.0.1:%d/file1k" % px, body, 2000, args.c, args.m, log)

        res = {"skyroute": [], "nghttpx": []}
        for r in range(args.rounds):
            for name, url, pid in (("skyroute", gw["url"] + "/v1/workloads", gw["proc"].pid),
                                   ("nghttpx", "http://127.0.0.1:%d/file1k" % px, nghttpx.pid)):
                c0 = cpu_seconds(pid)
                m = h2load(url, body, args.n, args.c, args.m, log)
                m["cpu10k"] = (cpu_seconds(pid) - c0) / max(1, m["ok"]) * 10000
                res[name].append(m)
                print("[round %d/%d] %-8s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  "
                      "cpu %.3f s/10k  (%d ok, %d failed)" %
                      (r + 1, args.rounds, name, m["rps"], m["p50"], m["p99"], m["cpu10k"],
                       m["ok"], m["failed"]), flush=True)

        def med(name, key):
            v = sorted(x[key] for x in res[name])
            return v[len(v) // 2]

        print()
        print("summary: h2load -n %d -c %d -m %d, 1 KiB POST bodies, median of %d rounds" %
              (args.n, args.c, args.m, args.rounds))
        print("machine: %s, %d cores, %s" % (platform.machine(), os.cpu_count(),
                                              time.strftime("%Y-%m-%d")))
        print("| path | req/s | p50 ms | p99 ms | CPU s / 10k req |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, label in (("skyroute", "skyrouted -> skyroute-node (signed, verified)"),
                            ("nghttpx", "nghttpx -> nghttpd (plain proxy)")):
            print("| %s | %.0f | %.2f | %.2f | %.3f |" % (label, med(name, "rps"), med(name, "p50"),
                                                         med(name, "p99"), med(name, "cpu10k")))
        print("| ratio skyroute / nghttpx | %.2f | %.2f | %.2f | %.2f |" %
              (med("skyroute", "rps") / med("nghttpx", "rps"),
               med("skyroute", "p50") / med("nghttpx", "p50"),
               med("skyroute", "p99") / med("nghttpx", "p99"),
               med("skyroute", "cpu10k") / med("nghttpx", "cpu10k")))
        fails = sum(x["failed"] for v in res.values() for x in v)
        if fails:
            print("WARNING: %d failed requests" % fails)
    finally:
        env.close()


if __name__ == "__main__":
    main()
