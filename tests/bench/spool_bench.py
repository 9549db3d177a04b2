#!/usr/bin/python3
"""Benchmark: durable async submissions. h2load POSTs 1 KiB payloads with
`prefer: respond-async` (each answered 202 only after its SQLite commit) and,
in the same run, SQLite's own insert rate into a WAL database with the same
synchronous=FULL setting, one row per transaction (what a naive spool would
do) and 100 rows per transaction. Prints acknowledgements per second, the p99
time to acknowledge, and the ratios.

    tests/bench/spool_bench.py [--build DIR] [-n REQUESTS]
"""

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import srtest  # noqa: E402


def sqlite_rate(path, rows, per_txn):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id BLOB PRIMARY KEY, payload BLOB NOT NULL, created INTEGER)")
    payload = os.urandom(1024)
    t0 = time.perf_counter()
    for i in range(0, rows, per_txn):
        db.execute("BEGIN")
        for k in range(i, min(rows, i + per_txn)):
            db.execute("INSERT INTO t VALUES (?,?,?)", (os.urandom(16), payload, k))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return rows / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SR_BINARY_DIR", "build"))
    ap.add_argument("-n", type=int, default=10000)
    args = ap.parse_args()
    srtest.BIN = os.path.abspath(args.build)
    srtest.SKYROUTE = os.path.join(srtest.BIN, "gateway", "skyroute")
    srtest.SKYROUTED = os.path.join(srtest.BIN, "gateway", "skyrouted")
    srtest.NODE = os.path.join(srtest.BIN, "gateway", "skyroute-node")
    env = srtest.Env("spoolbench")
    try:
        print("[1/3] SQLite alone: WAL, synchronous=FULL, 1 KiB rows", flush=True)
        d = tempfile.mkdtemp(dir=env.dir)
        single = sqlite_rate(os.path.join(d, "a.db"), 2000, 1)
        batched = sqlite_rate(os.path.join(d, "b.db"), 20000, 100)
        print("      one row per commit: %.0f rows/s; 100 rows per commit: %.0f rows/s" %
              (single, batched), flush=True)
        print("[2/3] skyrouted + skyroute-node (echo), spool on the same disk", flush=True)
        gkey, gpub = env.keygen("gs-bench")
        node = env.start_node("alpha", [gpub], admin=False, extra=["--log-level", "warn"])
        g = env.start_gateway("gs-bench", [node], extra_gateway="log_level = warn",
                              sections="[spool]\nmax_items = 1000000\n")
        body = env.path("p1k")
        with open(body, "wb") as f:
            f.write(os.urandom(1024))
        log = env.path("h2load.log")
        print("[3/3] h2load -n %d -c 10 -m 10, prefer: respond-async" % args.n, flush=True)
        r = subprocess.run(["h2load", "-n", str(args.n), "-c", "10", "-m", "10", "-t", "1", "-d",
                            body, "-H", "prefer: respond-async", "-H",
                            "skyroute-deadline-ms: 3600000", "--log-file", log,
                            g["url"] + "/v1/workloads"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=600)
        out = r.stdout.decode()
        rps = float([l for l in out.splitlines() if l.startswith("finished in")][0]
                    .split(",")[1].split()[0])
        codes = [l for l in out.splitlines() if l.startswith("status codes:")][0]
        durs = sorted(int(l.split()[2]) / 1000.0 for l in open(log) if l.split()[1] == "202")
        p50 = durs[len(durs) // 2]
        p99 = durs[min(len(durs) - 1, int(0.99 * len(durs)))]
        print()
        print("summary (%s, %s, %d cores):" % (time.strftime("%Y-%m-%d"), platform.machine(),
                                               os.cpu_count()))
        print("| measure | value |")
        print("| --- | ---: |")
        print("| durable async acknowledgements/s (1 KiB, 202 after commit) | %.0f |" % rps)
        print("| time to acknowledge p50 / p99 | %.2f / %.2f ms |" % (p50, p99))
        print("| SQLite alone, one row per commit | %.0f rows/s |" % single)
        print("| SQLite alone, 100 rows per commit | %.0f rows/s |" % batched)
        print("| ratio: skyroute acks / SQLite one-row commits | %.1fx |" % (rps / single))
        print("| ratio: skyroute acks / SQLite 100-row commits | %.2fx |" % (rps / batched))
        print("(%s; %d of them 202)" % (codes, len(durs)))
    finally:
        env.close()


if __name__ == "__main__":
    main()
