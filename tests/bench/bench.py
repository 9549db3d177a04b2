#!/usr/bin/python3
"""skyroute benchmark: the gateway against nghttpx and against the physical
limits, in one run, on loopback. Run it through tests/bench/run.sh.

    tests/bench/run.sh [--build DIR] [--quick] [--only PART,...] [--markdown FILE]

Parts (all by default):
  proxy    h2load POSTing 1 KiB and 64 KiB bodies at 1, 100 and 1,000 concurrent
           streams through skyrouted -> skyroute-node (echo; every envelope
           signed, every result verified) and through nghttpx -> nghttpd (a
           file of the same size as the body, so responses match): req/s, p50,
           p99, CPU seconds per 10,000 requests of skyrouted and of nghttpx
           (its master and worker processes); and through a second
           skyrouted -> skyroute-node pair with envelope_batch = 1 (one
           signature per envelope, SR1 only) for the crypto-bound target
  crypto   Ed25519 signs and verifies per second from libsodium (bench_ed25519),
           and the gateway's CPU per request as a multiple of one sign + one
           verify of a body that size
  sgp4     tests/bench/sgp4/run.sh: our SGP4 versus satellite.js
  route    instructions per routing decision (sr_router_rank, callgrind) in a
           skyrouted with one IDC and 100 satellites with elements
  memory   resident memory of skyrouted with 10,000 satellites configured and
           their elements loaded, and with 100,000 spooled workloads

Everything is started here and stopped at the end. Absolute figures depend on
the machine and its load; ratios taken in the same run are the point. The
final table is Markdown, ready for docs/benchmarks.md (--markdown FILE also writes it).
"""

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import srtest  # noqa: E402

T0 = time.monotonic()


def say(msg):
    print("[%5.0fs] %s" % (time.monotonic() - T0, msg), flush=True)


# ---- process accounting --------------------------------------------------------


def proc_tree(pid):
    pids = [pid]
    for p in list(pids):
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def cpu_seconds(pid):
    """utime + stime of a process and its live children (nghttpx runs its
    worker in a child process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in proc_tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# ---- h2load ---------------------------------------------------------------------


def h2load(url, body, n, c, m, log, timeout=600):
    if os.path.exists(log):
        os.unlink(log)  # h2load appends
    argv = ["h2load", "-n", str(n), "-c", str(c), "-m", str(m), "-t", "1", "-d", body,
            "--log-file", log, url]
    busy0 = machine_ticks()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        raw = p.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    # h2load's own CPU (it shares the two cores; the only child reaped
    # meanwhile) and how busy the machine was
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    h2cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
    busy1 = machine_ticks()
    out = raw.decode(errors="replace")
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
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                cols = line.split()
                if len(cols) >= 3 and cols[1].startswith("2"):
                    durs.append(int(cols[2]) / 1000.0)  # us -> ms
    durs.sort()

    def pct(p):
        return durs[min(len(durs) - 1, int(p * len(durs)))] if durs else float("nan")

    total = busy1[0] - busy0[0]
    return {"rps": rps, "p50": pct(0.50), "p99": pct(0.99), "ok": ok, "failed": failed,
            "busy": 1.0 - (busy1[1] - busy0[1]) / total if total > 0 else float("nan"),
            "h2load_us": h2cpu / max(1, ok) * 1e6}


def machine_ticks():
    """(all, idle + iowait) CPU ticks of the machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


# ---- where a process's CPU goes ---------------------------------------------------

# the libraries the gateway's signatures and hashes run in: libsodium (Ed25519)
# and OpenSSL's libcrypto (SHA-256 of SR2's trees)
CRYPTO_DSOS = ("libsodium", "libcrypto")


def perf_crypto_share(pids, run):
    """Runs |run| while `perf record` samples each process of |pids| (999 Hz, no
    call graphs); returns (run's result, {pid: the share of its samples in
    CRYPTO_DSOS, or None where perf is missing or not allowed to sample})."""
    if not shutil.which("perf"):
        return run(), {pid: None for pid in pids}
    rec = {}
    for pid in pids:
        fd, data = tempfile.mkstemp(prefix="sr-bench-perf-")
        os.close(fd)
        rec[pid] = (data, subprocess.Popen(
            ["perf", "record", "-q", "-F", "999", "-p", str(pid), "-o", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.3)  # attached before the load starts
    try:
        r = run()
    finally:
        for data, p in rec.values():
            p.send_signal(signal.SIGINT)
        for data, p in rec.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    shares = {}
    for pid, (data, _) in rec.items():
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                              "--sort", "dso"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=120)
        os.unlink(data)
        shares[pid] = crypto_share(rep.stdout.decode(errors="replace"))
    return r, shares


def crypto_share(report):
    """The share of CRYPTO_DSOS in `perf report --sort dso` output, or None
    with too few samples to tell."""
    total = crypto = 0.0
    samples = 0
    for line in report.splitlines():
        m = re.match(r"^# Samples: (\d+)([KM]?)", line)  # "# Samples: 4K of event ..."
        if m:
            samples = int(m.group(1)) * {"": 1, "K": 1000, "M": 1000000}[m.group(2)]
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)", line)
        if m:
            total += float(m.group(1))
            if any(d in m.group(2) for d in CRYPTO_DSOS):
                crypto += float(m.group(1))
    if samples < 100 or total < 90:
        return None
    return crypto / total


# ---- parts ------------------------------------------------------------------------

# (streams, connections, streams per connection)
LOADS = [(1, 1, 1), (100, 10, 10), (1000, 10, 100)]
SIZES = [(1024, "1 KiB"), (65536, "64 KiB")]


def requests_for(size, streams, quick):
    """Enough requests for a few seconds of each measurement on a small machine."""
    n = {1: 3000, 100: 20000, 1000: 20000}[streams]
    if size > 4096:
        n //= 2
    if quick:
        n //= 4
    return max(n, 2 * streams)


def warm_loads(size, quick=False):
    """The warm-up before measuring a body of |size| bytes: (requests, c, m) runs. Bodies
    above 4 KiB: 4,500 at 100 streams (500 with --quick); smaller ones: 20,000 at 100
    streams and 2,000 at one (a quarter with --quick)."""
    if size > 4096:
        return [(500 if quick else 4500, 10, 10)]
    q = 4 if quick else 1
    return [(20000 // q, 10, 10), (2000 // q, 1, 1)]


def part_proxy(args, env, res):
    say("proxy: starting skyroute-node, skyrouted (twice: batched signatures, the default, and "
        "envelope_batch = 1), nghttpd, nghttpx on loopback")
    gkey, gpub = env.keygen("gs-bench")
    node = env.start_node("alpha", [gpub], admin=False, extra=["--log-level", "warn"])
    gw = env.start_gateway("gs-bench", [node], extra_gateway="log_level = warn")
    # the same pair with one signature per envelope (SR1 only), for the crypto
    # bound target, which is stated for one signature per request
    skey, spub = env.keygen("gs-sr1")
    node1 = env.start_node("beta", [spub], admin=False,
                           extra=["--log-level", "warn", "--envelope-batch", "1"])
    gw1 = env.start_gateway("gs-sr1", [node1],
                            extra_gateway="log_level = warn\nenvelope_batch = 1")
    docroot = env.path("www")
    os.mkdir(docroot)
    bodies = {}
    for size, _ in SIZES:
        with open(os.path.join(docroot, "f%d" % size), "wb") as f:
            f.write(os.urandom(size))
        bodies[size] = env.path("body%d" % size)
        with open(bodies[size], "wb") as f:
            f.write(os.urandom(size))
    pd, px = srtest.free_port(), srtest.free_port()
    nghttpd = env.start(["nghttpd", "--no-tls", "-d", docroot, str(pd)], "nghttpd", pd)
    nghttpx = env.start(["nghttpx", "--frontend=127.0.0.1,%d;no-tls" % px,
                         "--backend=127.0.0.1,%d;;proto=h2" % pd, "--workers=1",
                         "--no-ocsp", "--conf=/dev/null",
                         "--errorlog-file=%s" % env.path("nghttpx.err"),
                         "--accesslog-file=/dev/null"], "nghttpx", px)
    log = env.path("h2load.log")
    paths = {
        "skyroute": (lambda size: gw["url"] + "/v1/workloads", gw["proc"].pid),
        "nghttpx": (lambda size: "http://127.0.0.1:%d/f%d" % (px, size), nghttpx.pid),
        "sr1": (lambda size: gw1["url"] + "/v1/workloads", gw1["proc"].pid),
    }
    # the server behind each proxy, for the CPU of the whole pair
    backends = {"skyroute": node["proc"].pid, "nghttpx": nghttpd.pid,
                "sr1": node1["proc"].pid}
    # Warm all three alike before measuring: connections open, routing
    # estimates settled, and each daemon's heap grown to its working size.
    # A node's replay guard keeps every result until its envelope expires, up
    # to --replay-memory (256 MiB by default), dropping the oldest past that.
    # Until it is full each result lands on fresh memory, which page faults
    # make expensive on this VM (the 64 KiB copy into a new result was 37 % of
    # the node's CPU at one stream). 4,500 results of 64 KiB fill it, so the
    # rows measure a node that has run a while, whose new results reuse the
    # memory of the dropped ones; --quick skips this.
    for name, (url, _) in paths.items():
        (n1k, _, _), (n1, _, _) = warm_loads(1024, args.quick)
        say("proxy: warming %s (1 KiB: %s requests at 100 streams, %s at one; 64 KiB: %s at "
            "100 streams)" % (name, format(n1k, ","), format(n1, ","),
                              "500" if args.quick else "4,500, which fills a node's replay guard"))
        for size in (65536, 1024):
            for n, c, m in warm_loads(size, args.quick):
                h2load(url(size), bodies[size], n, c, m, log)
    res["proxy"] = []
    total = len(SIZES) * len(LOADS)
    i = 0
    for size, size_label in SIZES:
        for streams, c, m in LOADS:
            i += 1
            n = requests_for(size, streams, args.quick)
            row = {"size": size, "size_label": size_label, "streams": streams, "c": c, "m": m,
                   "n": n, "rounds": args.rounds}
            runs = {name: [] for name in paths}
            # rounds alternate the three, so a slow spell of this shared
            # machine falls on all of them; each figure is the median of its
            # rounds
            for rnd in range(args.rounds):
                for name, (url, pid) in paths.items():
                    c0, b0 = cpu_seconds(pid), cpu_seconds(backends[name])
                    r = h2load(url(size), bodies[size], n, c, m, log)
                    r["cpu10k"] = (cpu_seconds(pid) - c0) / max(1, r["ok"]) * 10000
                    r["pair_cpu10k"] = r["cpu10k"] + (cpu_seconds(backends[name]) - b0) / max(
                        1, r["ok"]) * 10000
                    runs[name].append(r)
                    say("proxy %d/%d round %d/%d: %-6s x %4d streams  %-8s %8.0f req/s  "
                        "p50 %7.2f ms  p99 %7.2f ms  cpu %.3f s/10k  (%d ok, %d failed)" %
                        (i, total, rnd + 1, args.rounds, size_label, streams, name, r["rps"],
                         r["p50"], r["p99"], r["cpu10k"], r["ok"], r["failed"]))
            for name, rs in runs.items():
                row[name] = {k: statistics.median(r[k] for r in rs)
                             for k in ("rps", "p50", "p99", "cpu10k", "pair_cpu10k", "busy",
                                       "h2load_us")}
                row[name]["ok"] = sum(r["ok"] for r in rs)
                row[name]["failed"] = sum(r["failed"] for r in rs)
                row[name]["rounds"] = rs
            # one more run of each skyroute pair, outside the medians, with perf
            # sampling its daemons: how much of their CPU is the signing,
            # verifying and hashing itself, in processes under load
            for name, who in (("sr1", ("gw",)), ("skyroute", ("gw", "node"))):
                if name not in paths:
                    continue
                pids = {"gw": paths[name][1], "node": backends[name]}

                def sampled_run():
                    # the CPU of the load alone, not of perf attaching
                    c0 = {w: cpu_seconds(pids[w]) for w in who}
                    r = h2load(paths[name][0](size), bodies[size], n, c, m, log)
                    r["us"] = {w: (cpu_seconds(pids[w]) - c0[w]) / max(1, r["ok"]) * 1e6
                               for w in who}
                    return r

                r, shares = perf_crypto_share([pids[w] for w in who], sampled_run)
                for w in who:
                    share, us = shares[pids[w]], r["us"][w]
                    if share is None:
                        say("proxy %d/%d perf: %s %s: too few samples, or no perf here" %
                            (i, total, name, w))
                        continue
                    # both from the sampled run: perf's own cost (dear at one
                    # stream, where it rides every context switch) lands in
                    # the rest, which it overstates
                    key = "" if w == "gw" else "node_"
                    row[name][key + "crypto_us"] = share * us
                    row[name][key + "other_us"] = (1 - share) * us
                    say("proxy %d/%d perf: %-6s x %4d streams  %-8s %-7s %.1f us per request, "
                        "%.0f %% in libsodium + libcrypto" % (
                            i, total, size_label, streams, name, w, us, 100 * share))
            res["proxy"].append(row)


PREHASH_MIN = 4096  # SR_ENV_PREHASH_MIN (crypto/crypto.h)


def one_sig_bound_us(res, size):
    """Sign one envelope + verify one, the way an envelope sealed on its own is: Ed25519 over
    the body below PREHASH_MIN bytes of payload; from there, over the SHA-256 root of a tree of
    one leaf (one leaf hash + a sign of the root message; one leaf hash + a verify)."""
    c = res.get("crypto", {}).get(size)
    if not c:
        return None
    rr = res.get("crypto_root")
    if size >= PREHASH_MIN and rr and "leaf_us" in c:
        return 2 * c["leaf_us"] + rr["sign_us"] + rr["verify_us"]
    return c["sign_us"] + c["verify_us"]


def crypto_x(res, row, name):
    """|name|'s CPU per request in |row| over one_sig_bound_us(), or None without a bound."""
    bound = one_sig_bound_us(res, row["size"])
    return row[name]["cpu10k"] / 10000 * 1e6 / bound if bound else None


def ratio_cell(row, name):
    """Median req/s of |name| over nghttpx's, and the lowest and highest ratio within one
    round (a round runs skyroute, nghttpx and sr1 back to back): how far a single run on
    this machine can be off."""
    s, x = row[name], row["nghttpx"]
    cell = "%.2f" % (s["rps"] / max(1e-9, x["rps"]))
    rs, xs = s.get("rounds") or [], x.get("rounds") or []
    if len(rs) > 1 and len(rs) == len(xs):
        per = [a["rps"] / max(1e-9, b["rps"]) for a, b in zip(rs, xs)]
        cell += " (%.2f–%.2f)" % (min(per), max(per))
    return cell


def better(old, new):
    """The faster of two measurements of the same figures, figure by figure: rates
    (*_per_s) the higher, times (*_us) the lower."""
    if not old:
        return new
    out = dict(old)
    for k, v in new.items():
        if k not in out:
            out[k] = v
        elif k.endswith("_per_s"):
            out[k] = max(out[k], v)
        elif k.endswith("_us"):
            out[k] = min(out[k], v)
    return out


def crypto_rates(args, res, when):
    """bench_ed25519, three short runs, keeping the fastest figures (with those already in
    |res| from an earlier call). This VM's cores slow down for minutes at a time while the
    host is busy (a sign + verify took 93 us in one such spell, 68 in the next); the bound
    is what the operations cost, so the fastest reading is the one to divide by, and the
    later call, after the proxy loads, gives a slow spell at the start a second chance."""
    exe = os.path.join(args.build, "tests", "bench", "bench_ed25519")
    for _ in range(3):
        out = subprocess.run([exe, "0.2" if args.quick else "0.5", "1024", "65536"],
                             check=True, stdout=subprocess.PIPE).stdout.decode()
        for line in out.splitlines():
            f = line.split()
            if f and f[0] == "root":
                kv = dict(zip(f[1::2], f[2::2]))
                res["crypto_root"] = better(res.get("crypto_root"), {
                    k: float(v) for k, v in kv.items() if k != "BAD"})
            elif f:
                kv = dict(zip(f[0::2], f[1::2]))
                size = int(kv["size"])
                cr = res.setdefault("crypto", {})
                cr[size] = better(cr.get(size), {k: float(v) for k, v in kv.items()
                                                 if k != "size"})
    res.setdefault("crypto_when", []).append(when)
    for size, c in sorted(res["crypto"].items()):
        say("crypto (%s): %d bytes: sign %.1f us, verify %.1f us (the fastest so far)" % (
            when, size, c["sign_us"], c["verify_us"]))


def part_crypto(args, res):
    exe = os.path.join(args.build, "tests", "bench", "bench_ed25519")
    say("crypto: Ed25519 sign/verify rate (libsodium, one core)")
    crypto_rates(args, res, "before the proxy loads")
    # a whole envelope, sealed and opened, per envelope: alone and in batches
    # of the sizes "auto" uses (32 at 100 streams, up to 128 at 1,000)
    env_exe = os.path.join(args.build, "tests", "bench", "bench_envelope")
    res["envelope"] = []
    for size in (1024, 65536):
        out = subprocess.run([env_exe, "0.3" if args.quick else "1", str(size), "1", "32", "128"],
                             check=True, stdout=subprocess.PIPE).stdout.decode()
        for line in out.splitlines():
            f = line.split()
            kv = dict(zip(f[0::2], f[1::2]))
            res["envelope"].append({k: float(v) for k, v in kv.items()})
            say("crypto: envelope: %s" % line)
    # the same sign + verify pinned to each core in turn, alone: on a VM one
    # virtual core can run much slower than the other while the host is busy
    # (seen here: 105 against 69 us), and whichever process lands there
    # (gateway, node, h2load, nghttpx) is slowed by as much
    per_cpu = {}
    for cpu in sorted(os.sched_getaffinity(0)):
        p = subprocess.run([exe, "busy", "0.5" if args.quick else "1", "1024"],
                           stdout=subprocess.PIPE, timeout=120,
                           preexec_fn=lambda cpu=cpu: os.sched_setaffinity(0, {cpu}))
        m = re.search(r"pair_us ([\d.]+)", p.stdout.decode())
        if p.returncode == 0 and m:
            per_cpu[cpu] = float(m.group(1))
    if len(per_cpu) > 1:
        res["crypto_per_cpu"] = per_cpu
        say("crypto: sign + verify of a 1 KiB envelope pinned to each core: %s" % ", ".join(
            "cpu%d %.1f us" % kv for kv in sorted(per_cpu.items())))
    # the same sign + verify on a machine as busy as under the proxy loads:
    # one process more than there are cores, each timing its own CPU
    k = (os.cpu_count() or 2) + 1
    say("crypto: sign + verify of a 1 KiB envelope in %d processes at once on %d cores" %
        (k, k - 1))
    procs = [subprocess.Popen([exe, "busy", "1" if args.quick else "3", "1024"],
                              stdout=subprocess.PIPE) for _ in range(k)]
    pair_us = []
    for p in procs:
        out = p.communicate(timeout=120)[0].decode()
        m = re.search(r"pair_us ([\d.]+)", out)
        if p.returncode == 0 and m:
            pair_us.append(float(m.group(1)))
    if pair_us:
        res["crypto_busy"] = {"procs": k, "cores": k - 1, "size": 1024,
                              "pair_us": statistics.median(pair_us), "each": pair_us}
        say("crypto: busy: %s us per sign + verify (CPU time of each process)" %
            " / ".join("%.1f" % u for u in pair_us))


def part_sgp4(args, res):
    say("sgp4: tests/bench/sgp4/run.sh (C vs satellite.js vs python3-sgp4)")
    argv = ["sh", os.path.join(HERE, "sgp4", "run.sh")]
    if args.quick:
        argv.append("20")  # 2,000 satellites
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    out = r.stdout.decode(errors="replace")
    res["sgp4"] = {}
    for line in out.splitlines():
        m = re.match(r"^(skyroute C \(sr_propagate\)|satellite\.js sgp4\(\))\s+(\d+)", line)
        if m:
            res["sgp4"]["c" if m.group(1).startswith("skyroute") else "js"] = float(m.group(2))
        m = re.match(r"^SGP4 benchmark: (\d+) satellites", line)
        if m:
            res["sgp4"]["sats"] = int(m.group(1))
    say("sgp4: %s" % res["sgp4"])
    if "c" not in res["sgp4"]:
        print(out)


def make_fleet(args, env, n, gw_name, node_pub):
    """Config sections for |n| satellites (Walker shell, catalogue numbers from
    70000) and a signed TLE file for them."""
    kd = env.path("satkeys-%d" % n)
    os.mkdir(kd)
    exe = os.path.join(args.build, "tests", "bench", "bench_ed25519")
    subprocess.run([exe, "pubkeys", str(n), kd], check=True)
    per = 100 if n >= 1000 else 10
    planes = max(1, n // per)
    epoch = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime())
    tle = subprocess.run([srtest.SKYROUTE, "elements", "synth", "--walker",
                          "550,53,%d,%d,%d" % (planes, per, 1 if planes > 1 else 0), "--epoch", epoch,
                          "--first-catnum", "70000"], check=True,
                         stdout=subprocess.PIPE).stdout
    tpath = env.path("fleet-%d.tle" % n)
    with open(tpath, "wb") as f:
        f.write(tle)
    cats = [int(l[2:7].replace(" ", "0")) if l[2:7].strip().isdigit() else l[2:7]
            for l in tle.decode().splitlines() if l.startswith("1 ")]
    sec = []
    for i, cat in enumerate(cats):
        sec += ["[satellite.s%d]" % i, "url = http://127.0.0.1:9",
                "pubkey = %s" % os.path.join(kd, "k%d.pub" % i), "catnum = %s" % cat, ""]
    okey, opub = env.keygen("op-bench")
    sec += ["[operator.bench]", "pubkey = %s" % opub, "satellites = *", ""]
    return "\n".join(sec), tpath, okey


def upload_elements(g, tpath, okey):
    with open(tpath, "rb") as f:
        sig = subprocess.run([srtest.SKYROUTE, "sign", "--key", okey, "--url",
                              g["url"] + "/v1/elements", "--station", g["id"], "--content-type",
                              "text/plain"], input=f.read(),
                             check=True, stdout=subprocess.PIPE).stdout.decode().strip()
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "-o", "/dev/null",
                        "-w", "%{http_code}", "--data-binary", "@" + tpath,
                        "-H", "content-type: text/plain", "-H", "skyroute-signature: " + sig,
                        g["url"] + "/v1/elements"], stdout=subprocess.PIPE, timeout=600)
    return r.stdout.decode()


def part_memory(args, res):
    n = 1000 if args.quick else 10000
    env = srtest.Env("bench-mem")
    try:
        say("memory: skyrouted with %d satellites configured" % n)
        gkey, gpub = env.keygen("gs-mem")
        node = env.start_node("alpha", [gpub], admin=False, extra=["--log-level", "warn"])
        sections, tpath, okey = make_fleet(args, env, n, "gs-mem", node["pub"])
        g = env.start_gateway("gs-mem", [node], sections=sections,
                              extra_gateway="log_level = warn\nstation = 52.0,4.37,10\n"
                                            "min_el_deg = 10")
        pid = g["proc"].pid
        m = {"sats": n, "rss_config_kib": rss_kib(pid)}
        t = time.monotonic()
        ne = n
        m["sats_elements"] = ne
        m["elements_file"] = tpath
        say("memory: PUT /v1/elements for %d of them (passes predicted and stored)" % ne)
        st = upload_elements(g, tpath, okey)
        m["elements_status"] = st
        m["elements_s"] = time.monotonic() - t
        t = time.monotonic()
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", env.path("targets.json"),
                            "-w", "%{http_code} %{size_download}", g["url"] + "/v1/targets"],
                           stdout=subprocess.PIPE, timeout=120)
        code, _, size = r.stdout.decode().partition(" ")
        say("memory: GET /v1/targets with %d satellites: %s, %.1f MiB in %.2f s" %
            (n, code, int(size or 0) / 1048576, time.monotonic() - t))
        time.sleep(1.0)
        m["rss_elements_kib"] = rss_kib(pid)
        m["hwm_kib"] = rss_kib(pid, "VmHWM")
        say("memory: %d satellites: RSS %.1f MiB configured, %.1f MiB with elements for %d "
            "(PUT /v1/elements %s in %.1f s), peak %.1f MiB" %
            (n, m["rss_config_kib"] / 1024, m["rss_elements_kib"] / 1024, ne, st,
             m["elements_s"], m["hwm_kib"] / 1024))
        spool = os.path.exists(os.path.join(ROOT, "gateway", "daemon", "spool.c"))
        m["spool"] = None
        if spool:
            fill_spool(args, env, g, m)
        res["memory"] = m
    finally:
        env.close()


def fill_spool(args, env, g, m):
    """POSTs async workloads for a satellite that is out of view, so they all
    wait in the spool for its next pass, then reads the RSS."""
    want = 10000 if args.quick else 100000
    # a satellite of the uploaded elements whose next pass starts in 10 min or
    # later, by our own pass prediction (the router will say "wait for AOS")
    sat = None
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    r = subprocess.run([srtest.SKYROUTE, "passes", "--elements", m["elements_file"], "--station",
                        "52.0,4.37,10", "--min-el", "10", "--from", iso(now),
                        "--to", iso(now + 86400)], stdout=subprocess.PIPE, timeout=600)
    first = {}
    for line in r.stdout.decode().splitlines()[1:]:
        f = line.split()
        if len(f) >= 4 and f[0] not in first:
            first[f[0]] = f[1]
    with open(m["elements_file"]) as f:
        names = [l.strip() for i, l in enumerate(f.read().splitlines()) if i % 3 == 0]
    for i, name in enumerate(names):
        if name in first and first[name] >= iso(now + 600):
            sat = "s%d" % i
            break
    if not sat:
        say("memory: no satellite out of view with a next pass; spool not measured")
        m["spool"] = "not measured (no waiting target)"
        return
    body = env.path("spool-body")
    with open(body, "wb") as f:
        f.write(os.urandom(1024))
    say("memory: spooling %d async workloads (1 KiB each) for %s, out of view" % (want, sat))
    pid = g["proc"].pid
    before = rss_kib(pid)
    t = time.monotonic()
    argv = ["h2load", "-n", str(want), "-c", "4", "-m", "50", "-t", "1", "-d", body,
            "-H", "prefer: respond-async", "-H", "skyroute-place: target:" + sat,
            "-H", "skyroute-deadline-ms: 86400000", g["url"] + "/v1/workloads"]
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=1800).stdout.decode(errors="replace")
    secs = time.monotonic() - t
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    ok = int(codes.group(1)) if codes else 0
    time.sleep(1.0)
    m["spooled"] = ok
    m["spool_s"] = secs
    m["rss_spool_kib"] = rss_kib(pid)
    m["hwm_spool_kib"] = rss_kib(pid, "VmHWM")
    m["spool"] = "%.1f MiB (%d accepted with 202 in %.0f s, %.0f/s; +%.1f MiB)" % (
        m["rss_spool_kib"] / 1024, ok, secs, ok / max(secs, 1e-9),
        (m["rss_spool_kib"] - before) / 1024)
    if ok < want:
        m["spool"] += " (%d of %d refused: %s)" % (want - ok, want,
                                                   codes.group(0) if codes else "?")
    say("memory: spool: %s" % m["spool"])


def part_route(args, res):
    if not shutil.which("valgrind"):
        say("route: valgrind not found; skipped")
        return
    ext = os.path.join(HERE, "router", "run.sh")
    if os.path.exists(ext):
        n = 300 if args.quick else 2000
        say("route: tests/bench/router/run.sh (10,000 satellites, 100 IDCs, %d decisions)" % n)
        r = subprocess.run(["sh", ext, args.build, str(n)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=900)
        out = r.stdout.decode(errors="replace")
        rt = {"external": True}
        for line in out.splitlines():
            m = re.match(r"^instructions per decision \(callgrind\)\s+(\d+)", line)
            if m:
                rt["ir_per_decision"] = int(m.group(1))
            m = re.match(r"^bytes per stored pass\s+(\d+)", line)
            if m:
                rt["bytes_per_pass"] = int(m.group(1))
        if "ir_per_decision" not in rt:
            print(out)
        res["route"] = rt
        say("route: %s" % rt)
        return
    nsat = 100
    nreq = 50 if args.quick else 200
    env = srtest.Env("bench-route")
    try:
        say("route: skyrouted under callgrind (IDC + %d satellites), %d workloads" % (nsat, nreq))
        gkey, gpub = env.keygen("gs-route")
        node = env.start_node("alpha", [gpub], admin=False, extra=["--log-level", "warn"])
        sections, tpath, okey = make_fleet(args, env, nsat, "gs-route", node["pub"])
        out = env.path("callgrind.out")
        # start_gateway runs SKYROUTED; wrap it in callgrind for this one
        real = srtest.SKYROUTED
        wrapper = env.path("skyrouted-cg")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s "
                    "--toggle-collect=sr_router_rank %s \"$@\"\n" % (out, real))
        os.chmod(wrapper, 0o755)
        srtest.SKYROUTED = wrapper
        try:
            g = env.start_gateway("gs-route", [node], sections=sections,
                                  extra_gateway="log_level = warn\nstation = 52.0,4.37,10\n"
                                                "min_el_deg = 10")
        finally:
            srtest.SKYROUTED = real
        st = upload_elements(g, tpath, okey)
        body = env.path("b")
        with open(body, "wb") as f:
            f.write(os.urandom(1024))
        r = h2load(g["url"] + "/v1/workloads", body, nreq, 1, 1, env.path("h2.log"))
        env.stop(g["proc"], timeout=120)
        ir = calls = 0
        with open(out) as f:
            txt = f.read()
        m = re.search(r"^summary:\s+(\d+)", txt, re.M) or re.search(r"^totals:\s+(\d+)", txt, re.M)
        if m:
            ir = int(m.group(1))
        calls = r["ok"]
        res["route"] = {"targets": nsat + 1, "requests": calls, "ir": ir,
                        "ir_per_decision": ir / max(1, calls), "elements": st}
        say("route: %d decisions over %d targets: %.0f instructions each (elements upload %s)" %
            (calls, nsat + 1, ir / max(1, calls), st))
    finally:
        env.close()


# ---- summary ------------------------------------------------------------------------


CPU_TARGET = 1.25  # the target: gateway CPU per request over one sign + one verify, SR1
SGP4_TARGET = 2.0  # the target: our SGP4 over satellite.js


def verdict(met, total):
    return "met" if met == total else "not met (%d of %d)" % (met, total) if met else "not met"


def targets(res):
    """The performance targets (throughput, CPU, p99, SGP4) judged by this run's figures (a list of Markdown lines, empty
    without the proxy part), and, at one stream, the floor the signatures set: a lone
    request waits for the gateway's signature, the node's verification, the node's
    signature and the gateway's verification, one after the other, and no other work of
    the pair can shorten that."""
    rows = res.get("proxy")
    if not rows:
        return []
    L = ["The performance targets, judged by the figures above (a load counts as met when its "
         "median does):", "",
         "| target | figures of this run | verdict |", "| --- | --- | --- |"]

    def per_size(fmt, pick):
        cells = []
        for size, label in SIZES:
            rs = [r for r in rows if r["size"] == size]
            if rs:
                cells.append("%s: %s" % (label, " / ".join(fmt % pick(r) for r in rs)))
        return "; ".join(cells) + " at %s streams" % " / ".join(
            "{:,}".format(s) for s, _, _ in LOADS)

    def ratio(r):
        return r["skyroute"]["rps"] / max(1e-9, r["nghttpx"]["rps"])

    # shown rounded towards failing (0.997 as 0.99, 1.253 as 1.26), so that no
    # figure that reads as met is judged not met
    met = sum(1 for r in rows if ratio(r) >= 1.0)
    L.append("| throughput ≥ 1.0× `nghttpx`, every envelope signed and every result verified "
             "| %s | %s |" % (per_size("%.2f", lambda r: math.floor(ratio(r) * 100) / 100),
                              verdict(met, len(rows))))
    sr1 = [r for r in rows if "sr1" in r and one_sig_bound_us(res, r["size"])]
    if sr1:
        def cx(r):
            return crypto_x(res, r, "sr1")
        met = sum(1 for r in sr1 if cx(r) <= CPU_TARGET)
        L.append("| gateway CPU per request ≤ %.2f× one sign + one verify, one signature per "
                 "envelope (SR1 table) | %s | %s |" % (
                     CPU_TARGET, per_size("%.2f", lambda r: math.ceil(cx(r) * 100) / 100),
                     verdict(met, len(sr1))))
    p99 = [r for r in rows if r["streams"] == 100]
    if p99:
        met = sum(1 for r in p99
                  if round(r["skyroute"]["p99"], 2) <= round(r["nghttpx"]["p99"], 2))
        L.append("| p99 at 100 streams no worse than `nghttpx`'s | %s | %s |" % (
            "; ".join("%s: %.2f against %.2f ms" % (r["size_label"], r["skyroute"]["p99"],
                                                     r["nghttpx"]["p99"]) for r in p99),
            verdict(met, len(p99))))
    sg = res.get("sgp4")
    if sg and sg.get("c") and sg.get("js"):
        x = sg["c"] / sg["js"]
        L.append("| SGP4 ≥ %.1f× satellite.js | %.2f× | %s |" % (
            SGP4_TARGET, x, "met" if x >= SGP4_TARGET else "not met"))
    L.append("")
    if sr1:
        L.append("What the CPU target leaves for everything but the signatures: a quarter of "
                 "the bound, against all that `nghttpx` spends per request at the same load "
                 "(HTTP/2 both ways, two sockets, no crypto). Where the allowance is the "
                 "smaller, the gateway would have to forward a request for less than "
                 "`nghttpx` does, on top of sealing and opening envelopes.")
        L.append("")
        L.append("| body | streams | bound us | allowed for the rest us | `nghttpx` CPU per "
                 "request us |")
        L.append("| --- | --- | ---: | ---: | ---: |")
        for r in sr1:
            bound = one_sig_bound_us(res, r["size"])
            L.append("| %s | %d | %.1f | %.1f | %.1f |" % (
                r["size_label"], r["streams"], bound, (CPU_TARGET - 1) * bound,
                r["nghttpx"]["cpu10k"] / 10000 * 1e6))
        L.append("")
    one = [r for r in rows if r["streams"] == 1 and one_sig_bound_us(res, r["size"])]
    if one:
        L.append("One stream: every request waits for four signature operations in a row "
                 "(the gateway signs, the node verifies, the node signs its result, the "
                 "gateway verifies it), each as measured in the crypto bound table below "
                 "(for 64 KiB with the SHA-256 of the body on each of the four). A round trip "
                 "here is 1 / req/s, the mean time one request took. With nothing else "
                 "costing anything the pair could reach at most 1 / that chain requests a "
                 "second; the last column is that ceiling over `nghttpx`. The pair's round "
                 "trip less the chain is what everything else adds (two HTTP/2 hops each way, "
                 "the routing, the envelopes), to set against `nghttpx`'s whole round trip.")
        L.append("")
        L.append("| body | signature chain us | pair round trip us | pair round trip less the "
                 "chain us | `nghttpx` round trip us | ceiling of the ratio at one stream |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: |")
        for r in one:
            chain = 2 * one_sig_bound_us(res, r["size"])
            sky = 1e6 / max(1e-9, r["skyroute"]["rps"])
            ngx = 1e6 / max(1e-9, r["nghttpx"]["rps"])
            L.append("| %s | %.0f | %.0f | %.0f | %.0f | %.2f |" % (
                r["size_label"], chain, sky, sky - chain, ngx, ngx / chain))
        L.append("")
    return L


def summary(args, res):
    L = []
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    L.append("Produced by `tests/bench/run.sh%s` on %s UTC; %s, %d cores, Linux %s%s." % (
        " --quick" if args.quick else "", time.strftime("%Y-%m-%d %H:%M", time.gmtime()), cpu,
        os.cpu_count(), platform.release(),
        "" if not args.note else "; " + args.note))
    L.append("")
    cr = res.get("crypto", {})
    if "proxy" in res:
        L.append("Gateway (`skyrouted -> skyroute-node`, echo; every envelope signed, every "
                 "result verified) versus `nghttpx -> nghttpd` (plain HTTP/2 proxy), h2load POST, "
                 "same run, each figure the median of %d alternated rounds after the same "
                 "warm-up; in brackets, the lowest and highest ratio within one round "
                 "(skyroute, nghttpx and sr1 back to back). CPU = seconds of CPU per 10,000 "
                 "requests of skyrouted / of nghttpx (master + worker); pair CPU adds the "
                 "server behind it (skyroute-node / nghttpd). Crypto x = gateway CPU per "
                 "request / (signing one envelope + verifying one, the way one sealed on its "
                 "own is: Ed25519 over the body below 4 KiB of payload, over its SHA-256 from "
                 "4 KiB; see the crypto bound table)." % res["proxy"][0].get("rounds", 1))
        L.append("")
        L.append("| body | streams (c x m) | req/s sky | req/s ngx | ratio | p50 ms sky / ngx "
                 "| p99 ms sky / ngx | CPU s/10k sky / ngx | pair CPU s/10k sky / ngx "
                 "| crypto x |")
        L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in res["proxy"]:
            s, x = row["skyroute"], row["nghttpx"]
            x_sky = crypto_x(res, row, "skyroute")
            cx = "-" if x_sky is None else "%.2f" % x_sky
            fails = s["failed"] + x["failed"]
            L.append("| %s | %d (%d x %d) | %.0f | %.0f | %s | %.2f / %.2f | %.2f / %.2f "
                     "| %.3f / %.3f | %.3f / %.3f | %s |%s" % (
                         row["size_label"], row["streams"], row["c"], row["m"], s["rps"],
                         x["rps"], ratio_cell(row, "skyroute"), s["p50"], x["p50"], s["p99"],
                         x["p99"], s["cpu10k"], x["cpu10k"], s.get("pair_cpu10k", float("nan")),
                         x.get("pair_cpu10k", float("nan")), cx,
                         "" if not fails else " (%d failed)" % fails))
        L.append("")
        if all("busy" in row["skyroute"] for row in res["proxy"]):
            L.append("How busy the two cores were during those rounds (all processes, from "
                     "`/proc/stat`; medians), and the CPU per request of `h2load` itself, "
                     "which shares them. Where much of the machine is idle (one stream), "
                     "throughput is the chain's latency, not its CPU.")
            L.append("")
            L.append("| body | streams | machine busy sky / ngx | h2load us per request sky / "
                     "ngx |")
            L.append("| --- | --- | ---: | ---: |")
            for row in res["proxy"]:
                s, x = row["skyroute"], row["nghttpx"]
                L.append("| %s | %d | %.0f %% / %.0f %% | %.1f / %.1f |" % (
                    row["size_label"], row["streams"], 100 * s["busy"], 100 * x["busy"],
                    s["h2load_us"], x["h2load_us"]))
            L.append("")
        split = [row for row in res["proxy"]
                 if "crypto_us" in row["skyroute"] and "node_crypto_us" in row["skyroute"]]
        if split:
            L.append("Where the batched pair's CPU goes: one more run per load (outside the "
                     "medians) with `perf record` sampling the gateway and the node; "
                     "microseconds per request in libsodium and OpenSSL's libcrypto (crypto: "
                     "signing, verifying, hashing) and in everything else (rest), both "
                     "from that run, whose CPU perf raises (most at one stream: the rest "
                     "carries it), against the median CPU per request of `nghttpx` + "
                     "`nghttpd` above, which do no crypto. Where the machine is the limit "
                     "(both cores busy, `h2load` on them too), the pair matches `nghttpx`'s "
                     "throughput only if its whole CPU per request does not exceed "
                     "`nghttpx` + `nghttpd`'s, so its rest may take at most what they take "
                     "less the pair's crypto: the last column.")
            L.append("")
            L.append("| body | streams | gateway us: crypto + rest | node us: crypto + rest | "
                     "pair's rest / nghttpx + nghttpd, us (ratio) | rest allowed for 1.0x "
                     "(ratio) |")
            L.append("| --- | --- | ---: | ---: | ---: | ---: |")
            for row in split:
                s = row["skyroute"]
                ngx = row["nghttpx"]["pair_cpu10k"] / 10000 * 1e6
                rest = s["other_us"] + s["node_other_us"]
                allowed = max(0.0, ngx - s["crypto_us"] - s["node_crypto_us"])
                L.append("| %s | %d | %.1f + %.1f | %.1f + %.1f | %.1f / %.1f (%.2f) | "
                         "%.1f (%.2f) |" % (
                             row["size_label"], row["streams"], s["crypto_us"], s["other_us"],
                             s["node_crypto_us"], s["node_other_us"], rest, ngx,
                             rest / max(1e-9, ngx), allowed, allowed / max(1e-9, ngx)))
            L.append("")
        if all("sr1" in row for row in res["proxy"]):
            L.append("The same, with one signature per envelope (`envelope_batch = 1` at the "
                     "gateway, `--envelope-batch 1` at the node: no batches; SR1 below 4 KiB of "
                     "payload, a tree of one leaf (signed over the body's SHA-256) from there), "
                     "same run:")
            L.append("")
            L.append("Crypto x is split in its last column: the part of the gateway's CPU "
                     "spent in libsodium and OpenSSL's libcrypto (the signing, verifying and "
                     "hashing), and the rest, each over the same bound; measured in one more "
                     "run of the SR1 pair per load with `perf record` sampling the gateway "
                     "(outside the medians; perf raises that run's CPU, most at one stream, "
                     "and the rest carries it).")
            L.append("")
            L.append("| body | streams (c x m) | req/s SR1 | ratio to nghttpx | p99 ms | "
                     "CPU s/10k | crypto x | crypto x: crypto + the rest (perf) |")
            L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            for row in res["proxy"]:
                s1, x = row["sr1"], row["nghttpx"]
                bound = one_sig_bound_us(res, row["size"])
                cx = parts = "-"
                if bound:
                    cx = "%.2f" % crypto_x(res, row, "sr1")
                    if "crypto_us" in s1:
                        parts = "%.2f + %.2f (%.1f + %.1f us)" % (
                            s1["crypto_us"] / bound, s1["other_us"] / bound, s1["crypto_us"],
                            s1["other_us"])
                L.append("| %s | %d (%d x %d) | %.0f | %s | %.2f | %.3f | %s | %s |%s" % (
                    row["size_label"], row["streams"], row["c"], row["m"], s1["rps"],
                    ratio_cell(row, "sr1"), s1["p99"], s1["cpu10k"], cx, parts,
                    "" if not s1["failed"] else " (%d failed)" % s1["failed"]))
            L.append("")
    L += targets(res)
    if cr:
        runs = len(res.get("crypto_when", [])) * 3
        L.append("| crypto bound (libsodium Ed25519, one core; the fastest of %d short runs%s) "
                 "| sign/s | verify/s | sign + verify us |" % (
                     runs, ", half of them after the proxy loads" if runs > 3 else ""))
        L.append("| --- | ---: | ---: | ---: |")
        for size, c in sorted(cr.items()):
            L.append("| envelope with a %d-byte payload, Ed25519 over the body | %.0f | %.0f | "
                     "%.1f |" % (size, c["sign_per_s"], c["verify_per_s"],
                                 c["sign_us"] + c["verify_us"]))
        cb = res.get("crypto_busy")
        if cb:
            L.append("| envelope with a %d-byte payload, Ed25519 over the body, in one of %d "
                     "processes doing the same at once on %d cores (CPU time per pair, median "
                     "of the %d) | | | %.1f |" % (cb["size"], cb["procs"], cb["cores"],
                                                  cb["procs"], cb["pair_us"]))
        pc = res.get("crypto_per_cpu")
        if pc:
            lo, hi = min(pc.values()), max(pc.values())
            L.append("| envelope with a 1024-byte payload, Ed25519 over the body, pinned to each "
                     "core in turn (%s; the slowest core takes %.2f× the fastest's time, and so "
                     "does any process the scheduler puts there) | | | %s |" % (
                         ", ".join("core %d" % c for c in sorted(pc)), hi / lo,
                         " / ".join("%.1f" % pc[c] for c in sorted(pc))))
        rr = res.get("crypto_root")
        for size, c in sorted(cr.items()):
            if size >= PREHASH_MIN and rr and "leaf_us" in c:
                L.append("| envelope with a %d-byte payload, Ed25519 over its SHA-256 (a tree "
                         "of one leaf: 2 leaf hashes + sign + verify of the root message; how "
                         "one sealed on its own is signed) | | | %.1f |" % (
                             size, one_sig_bound_us(res, size)))
        L.append("")
    if res.get("envelope"):
        L.append("| whole envelopes (`bench_envelope`: sealed, then each opened on its own "
                 "through a root cache, one core) | seal us | open us | seal + open us | inner "
                 "hashes the cache saved per open |")
        L.append("| --- | ---: | ---: | ---: | ---: |")
        for e in res["envelope"]:
            what = ("alone (SR1, or a tree of one from 4 KiB)" if e["batch"] == 1 else
                    "in batches of %d (SR2)" % e["batch"])
            L.append("| %d-byte payload, %s | %.2f | %.2f | %.2f | %.2f |" % (
                e["size"], what, e["seal_us"], e["open_us"], e["seal_us"] + e["open_us"],
                e["hashes_saved"]))
        L.append("")
    L.append("| other | figure |")
    L.append("| --- | --- |")
    sg = res.get("sgp4")
    if sg and "c" in sg:
        js = sg.get("js")
        L.append("| SGP4 propagations/s, %d satellites x 1 day at 60 s | %.2f M/s; satellite.js "
                 "%s; ratio %s |" % (sg.get("sats", 0), sg["c"] / 1e6,
                                     "%.2f M/s" % (js / 1e6) if js else "n/a",
                                     "%.2fx" % (sg["c"] / js) if js else "n/a"))
    rt = res.get("route")
    if rt and rt.get("external") and "ir_per_decision" in rt:
        L.append("| routing decision (tests/bench/router: sr_router_rank, callgrind), 10,000 "
                 "satellites + 100 IDCs | %d instructions; %s bytes per stored pass |" % (
                     rt["ir_per_decision"], rt.get("bytes_per_pass", "?")))
    elif rt and "ir" in rt:
        L.append("| routing decision (sr_router_rank, callgrind), %d targets | %.0f instructions "
                 "|" % (rt["targets"], rt["ir_per_decision"]))
    mm = res.get("memory")
    if mm:
        L.append("| skyrouted RSS, %d satellites configured | %.1f MiB |" % (
            mm["sats"], mm["rss_config_kib"] / 1024))
        L.append("| skyrouted RSS, %d satellites, elements for %d (passes predicted; PUT took "
                 "%.0f s) | %.1f MiB (peak %.1f MiB) |" % (
                     mm["sats"], mm.get("sats_elements", mm["sats"]), mm["elements_s"],
                     mm["rss_elements_kib"] / 1024, mm["hwm_kib"] / 1024))
        L.append("| skyrouted RSS, %s spooled workloads (+ the satellites above) | %s |" % (
            "{:,}".format(mm.get("spooled", 100000)),
            "n/a (no spool yet)" if mm["spool"] is None else mm["spool"]))
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SR_BINARY_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--quick", action="store_true", help="a quarter of the requests, smaller "
                    "fleets: a smoke run of about two minutes")
    ap.add_argument("--only", default="proxy,crypto,sgp4,route,memory")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds per proxy "
                    "measurement; the table shows medians (default 3)")
    ap.add_argument("--markdown", help="also write the summary table to this file")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--note", default="", help="a note for the table's first line")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    srtest.BIN = args.build
    srtest.SKYROUTE = os.path.join(args.build, "gateway", "skyroute")
    srtest.SKYROUTED = os.path.join(args.build, "gateway", "skyrouted")
    srtest.NODE = os.path.join(args.build, "gateway", "skyroute-node")
    for exe in (srtest.SKYROUTED, srtest.NODE, os.path.join(args.build, "tests", "bench",
                                                            "bench_ed25519")):
        if not os.access(exe, os.X_OK):
            sys.exit("missing %s: build first (cmake --build %s)" % (exe, args.build))
    parts = args.only.split(",")
    res = {}
    if "crypto" in parts:
        part_crypto(args, res)
    if "proxy" in parts:
        env = srtest.Env("bench")
        try:
            part_proxy(args, env, res)
        finally:
            # nghttpd and nghttpx exit by SIGTERM itself
            bad = [p for p in env.close() if p.sr_name not in ("nghttpd", "nghttpx")]
            if bad:
                say("WARNING: processes exited badly: %s" % [(p.sr_name, p.returncode)
                                                              for p in bad])
    if "crypto" in parts and "proxy" in parts:
        say("crypto: the bound again, after the proxy loads")
        crypto_rates(args, res, "after the proxy loads")
    if "route" in parts:
        part_route(args, res)
    if "memory" in parts:
        part_memory(args, res)
    if "sgp4" in parts:
        part_sgp4(args, res)
    text = summary(args, res)
    print()
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    say("done")


if __name__ == "__main__":
    main()
