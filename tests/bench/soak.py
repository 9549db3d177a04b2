#!/usr/bin/env python3
"""Soak: the gateway and an IDC node under the highest load the machine
sustains, for minutes, watched every 10 s.

h2load (bounded by -D) POSTs 4 KiB to the echo handler over 20 connections
of 20 streams each. Every 10 s the gateway's /metrics gives the answers of
that interval by status (skyroute_requests_total) and their latency
(skyroute_request_duration_seconds, a histogram: p50 and p99 by
interpolation), and /proc gives the resident memory (VmRSS) and open
descriptors of each daemon. The verdict:

  - no failed request that its own deadline does not explain: every answer
    is 200, or 504 (the deadline passed), and at least 99.9% are 200 (the
    streams h2load resets when -D ends, 499, at most connections x streams,
    are the client leaving, not failures);
  - memory flat after warm-up (the first minute, or a third of a shorter
    run): each daemon's last RSS <= its first sample after warm-up x 1.10
    + 8 MiB (the replay guard grows to rate x deadline ids within the
    first deadline, 30 s, then stays);
  - descriptors flat after warm-up: last <= first after warm-up + 4.

With --with-spool, a second h2load (2 connections of 4 streams) submits
1 KiB workloads with prefer: respond-async at the same time: each is
committed to the spool (SQLite) before its 202, then placed on the node by
the spool's dispatcher. Its answers count as successes when 202; the spool's
finished workloads (skyroute_spool_finished_total) must be done, bar those
whose deadline passed while queued, and the daemons' memory and descriptors
must stay flat all the same.

With --with-satellite, a satellite node joins: skyroute-node
--emulate-link, a synthetic satellite at 20,000 km passing over the station
(a pass of hours, light time some 70 ms each way), whose elements the
gateway gets signed by an operator; a third h2load (1 connection of 4
streams) sends it 1 KiB workloads with skyroute-place: orbit.

usage: tests/bench/soak.sh [--minutes N] [--with-spool] [--with-satellite] [--build DIR]
                           [--markdown FILE]
Exit status 0 when the verdict holds, 1 when it does not.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
SAMPLE_S = 10
STATION = "48.85,2.35,35"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit("soak: %s exited at start (status %s)" % (proc.args[0], proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("soak: nothing listening on port %d" % port)


def scrape(port):
    """{(name, labels): value} from a /metrics page."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, _, val = line.rpartition(" ")
        name, _, labels = key.partition("{")
        out[(name, labels.rstrip("}"))] = float(val)
    return out


def proc_stats(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def codes(m):
    out = {}
    for (name, labels), v in m.items():
        if name == "skyroute_requests_total":
            out[labels.split('"')[1]] = v
    return out


def buckets(m):
    out = []
    for (name, labels), v in m.items():
        if name == "skyroute_request_duration_seconds_bucket":
            le = labels.split('le="')[1].split('"')[0]
            out.append((float("inf") if le == "+Inf" else float(le), v))
    return sorted(out)


def quantile(b0, b1, q):
    """The q-quantile (seconds) of the observations between two scrapes of a
    cumulative histogram, interpolated within its bucket."""
    prev = dict(b0)
    d = [(le, c - prev.get(le, 0)) for le, c in b1]
    total = d[-1][1] if d else 0
    if total <= 0:
        return float("nan")
    rank, lo, below = q * total, 0.0, 0.0
    for le, c in d:
        if c >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * ((rank - below) / max(c - below, 1e-9))
        lo, below = le, c
    return lo


def satellite_elements(exe, d, seconds):
    """Elements of a satellite at 20,000 km passing over STATION in the
    middle of the run: above 10 degrees for hours, the whole run."""
    at = time.time() + seconds / 2
    r = subprocess.run([exe["skyroute"], "elements", "synth", "--overhead", STATION, "--at",
                        time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(at)),
                        "--alt-km", "20000", "--first-catnum", "90000"],
                       stdout=subprocess.PIPE, check=True)
    tle = os.path.join(d, "sat.tle")
    with open(tle, "wb") as f:
        f.write(r.stdout)
    return tle


def upload_elements(exe, d, tle, gport):
    """PUT /v1/elements, signed by the operator that speaks for sat-1."""
    with open(tle, "rb") as f:
        elements = f.read()
    sig = subprocess.run([exe["skyroute"], "sign", "--key", os.path.join(d, "ops.key")],
                         input=elements, stdout=subprocess.PIPE, check=True).stdout
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "--data-binary",
                        "@" + tle, "-H", "content-type: text/plain", "-H",
                        "skyroute-signature: " + sig.decode().strip(),
                        "http://127.0.0.1:%d/v1/elements" % gport], stdout=subprocess.PIPE)
    if b'"accepted"' not in r.stdout:
        sys.exit("soak: the gateway did not take the satellite's elements: %r" % r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--build", default=os.environ.get("SR_BINARY_DIR", os.path.join(SRC, "build")))
    ap.add_argument("--markdown", help="also write the table and verdict here")
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--with-spool", action="store_true",
                    help="also submit durable (prefer: respond-async) workloads")
    ap.add_argument("--with-satellite", action="store_true",
                    help="also run an emulated satellite node and send it work")
    a = ap.parse_args()
    if a.minutes <= 0 or a.minutes > 24 * 60:
        sys.exit("soak: --minutes must be in (0, 1440]")
    exe = {k: os.path.join(a.build, "gateway", k) for k in ("skyroute", "skyrouted", "skyroute-node")}
    for k, p in exe.items():
        if not os.access(p, os.X_OK):
            sys.exit("soak: %s not built (cmake --build %s)" % (p, a.build))
    if not shutil.which("h2load"):
        sys.exit("soak: h2load not found (apt-get install nghttp2-client)")

    d = tempfile.mkdtemp(prefix="sr-soak-")
    procs = []

    def start(argv, name):
        log = open(os.path.join(d, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        procs.append((name, p))
        return p

    try:
        for k in ("gs-soak", "idc1", "sat-1", "ops"):
            subprocess.run([exe["skyroute"], "keygen", "--out", os.path.join(d, k)], check=True,
                           stdout=subprocess.DEVNULL)
        nport, naport, gport, gaport = free_port(), free_port(), free_port(), free_port()
        node = start([exe["skyroute-node"], "--id", "idc1", "--listen", "127.0.0.1:%d" % nport,
                      "--admin", "127.0.0.1:%d" % naport, "--key", os.path.join(d, "idc1.key"),
                      "--trust", os.path.join(d, "gs-soak.pub")], "idc1")
        wait_port(nport, node)
        wait_port(naport, node)
        conf = ("[gateway]\nid = gs-soak\nlisten = 127.0.0.1:%d\nadmin = 127.0.0.1:%d\n"
                "key = gs-soak.key\nstate_dir = state\n" % (gport, gaport))
        if a.with_satellite:
            sport, saport = free_port(), free_port()
            tle = satellite_elements(exe, d, int(a.minutes * 60))
            sat = start([exe["skyroute-node"], "--id", "sat-1", "--listen", "127.0.0.1:%d" % sport,
                         "--admin", "127.0.0.1:%d" % saport, "--key", os.path.join(d, "sat-1.key"),
                         "--trust", os.path.join(d, "gs-soak.pub"), "--emulate-link", tle,
                         "--station", STATION, "--min-el", "10"], "sat-1")
            wait_port(saport, sat)
            wait_port(sport, sat)  # in view: the pass is under way
            conf += ("station = %s\nmin_el_deg = 10\n\n[operator.ops]\npubkey = ops.pub\n"
                     "satellites = sat-1\n\n[satellite.sat-1]\nurl = http://127.0.0.1:%d\n"
                     "pubkey = sat-1.pub\ncatnum = 90000\n" % (STATION, sport))
        conf += "\n[idc.idc1]\nurl = http://127.0.0.1:%d\npubkey = idc1.pub\n" % nport
        with open(os.path.join(d, "gs.conf"), "w") as f:
            f.write(conf)
        gw = start([exe["skyrouted"], "-c", os.path.join(d, "gs.conf")], "gateway")
        wait_port(gport, gw)
        wait_port(gaport, gw)
        body = os.path.join(d, "4k.bin")
        with open(body, "wb") as f:
            f.write(os.urandom(4096))
        seconds = int(a.minutes * 60)
        warm_s = 60 if seconds >= 180 else seconds // 3
        daemons = [("gateway", gw.pid), ("node", node.pid)]
        if a.with_satellite:
            upload_elements(exe, d, tle, gport)
            daemons.append(("sat", sat.pid))
        print("soak: %d s at h2load -c %d -m %d (4 KiB echo), sampled every %d s, warm-up %d s"
              % (seconds, a.connections, a.streams, SAMPLE_S, warm_s), flush=True)
        load = subprocess.Popen(["h2load", "-D", str(seconds), "-c", str(a.connections), "-m",
                                 str(a.streams), "-d", body, "-H", "skyroute-handler: echo",
                                 "http://127.0.0.1:%d/v1/workloads" % gport],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        sat_load = None
        if a.with_satellite:
            sat_load = subprocess.Popen(
                ["h2load", "-D", str(seconds), "-c", "1", "-m", "4", "-d", body,
                 "-H", "skyroute-handler: echo", "-H", "skyroute-place: orbit",
                 "http://127.0.0.1:%d/v1/workloads" % gport],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        spool_load = None
        if a.with_spool:
            small = os.path.join(d, "1k.bin")
            with open(small, "wb") as f:
                f.write(os.urandom(1024))
            spool_load = subprocess.Popen(
                ["h2load", "-D", str(seconds), "-c", "2", "-m", "4", "-d", small,
                 "-H", "skyroute-handler: echo", "-H", "prefer: respond-async",
                 "http://127.0.0.1:%d/v1/workloads" % gport],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        t0 = time.time()
        m0 = scrape(gaport)
        rows = []
        hdr = ("%6s %9s %8s %7s %8s %8s" % ("t_s", "answers", "req/s", "ok_%", "p50_ms", "p99_ms")
               + "".join(" %9s %5s" % (n + "_MB", "fds") for n, _ in daemons))
        print(hdr, flush=True)
        k = 1
        while load.poll() is None:
            time.sleep(max(0, t0 + k * SAMPLE_S - time.time()))
            if time.time() - t0 > seconds + 1:
                break
            m1 = scrape(gaport)
            c0, c1 = codes(m0), codes(m1)
            delta = {c: c1[c] - c0.get(c, 0) for c in c1 if c1[c] - c0.get(c, 0) > 0}
            n = sum(delta.values())
            row = {"t": int(time.time() - t0), "n": n, "codes": delta,
                   "ok": (delta.get("200", 0) + delta.get("202", 0)) / n * 100
                         if n else float("nan"),
                   "p50": quantile(buckets(m0), buckets(m1), 0.5) * 1000,
                   "p99": quantile(buckets(m0), buckets(m1), 0.99) * 1000}
            for name, pid in daemons:
                row[name] = proc_stats(pid)
            rows.append(row)
            print("%6d %9d %8.0f %7.3f %8.1f %8.1f" % (row["t"], n, n / SAMPLE_S, row["ok"],
                                                          row["p50"], row["p99"])
                  + "".join(" %9.1f %5d" % (row[nm][0] / 2**20, row[nm][1]) for nm, _ in daemons),
                  flush=True)
            m0 = m1
            k += 1
        out = load.communicate(timeout=120)[0].decode()
        summary = [l for l in out.splitlines() if l.startswith(("finished in", "requests:",
                                                                 "status codes:"))]
        if sat_load:
            out = sat_load.communicate(timeout=120)[0].decode()
            summary += ["satellite: " + l for l in out.splitlines()
                        if l.startswith(("requests:", "status codes:"))]
        if spool_load:
            out = spool_load.communicate(timeout=120)[0].decode()
            summary += ["spool: " + l for l in out.splitlines()
                        if l.startswith(("requests:", "status codes:"))]
            # what the spool took is placed within its deadline (30 s): wait
            # for it to drain before the last look
            end = time.time() + 40
            while time.time() < end and scrape(gaport).get(("skyroute_spool_items", ""), 0) > 0:
                time.sleep(1)
        mfin = scrape(gaport)
        node_m = scrape(naport)
    finally:
        for name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    total = codes(mfin)
    # 499: the client reset the stream. h2load does so to the streams it
    # has open when -D ends (at most connections x streams each), and only
    # then: those are the client leaving, neither successes nor failures
    open_at_end = (a.connections * a.streams + (8 if a.with_spool else 0)
                   + (4 if a.with_satellite else 0))
    resets = total.get("499", 0)
    left_at_end = resets if resets <= open_at_end else 0
    answers = sum(total.values()) - left_at_end
    ok = total.get("200", 0) + total.get("202", 0)
    unexplained = {c: v for c, v in total.items()
                   if c not in ("200", "202", "504") and not (c == "499" and left_at_end)}
    after = [r for r in rows if r["t"] > warm_s]
    verdicts = []
    verdicts.append(("success ratio %.4f%% (%d of %d; %d streams reset by h2load at its end) "
                     ">= 99.9%%" % (ok / max(answers, 1) * 100, ok, answers, left_at_end),
                     answers > 0 and ok / answers >= 0.999))
    verdicts.append(("failures unexplained by their deadline: %s" % (unexplained or "none"),
                     not unexplained))
    if a.with_spool:
        fin = {labels.split('"')[1]: v for (name, labels), v in mfin.items()
               if name == "skyroute_spool_finished_total"}
        left = mfin.get(("skyroute_spool_items", ""), 0)
        verdicts.append(("spool: finished %s, %d left; all done" % (fin, left),
                         left == 0 and sum(fin.values()) > 0
                         and fin.get("done", 0) == sum(fin.values())))
    for name, _ in daemons:
        if len(after) >= 2:
            r0, r1 = after[0][name], after[-1][name]
            verdicts.append(("%s RSS %.1f -> %.1f MB after warm-up (<= x1.10 + 8 MB)"
                             % (name, r0[0] / 2**20, r1[0] / 2**20),
                             r1[0] <= r0[0] * 1.10 + 8 * 2**20))
            verdicts.append(("%s fds %d -> %d after warm-up (<= +4)" % (name, r0[1], r1[1]),
                             r1[1] <= r0[1] + 4))
        else:
            verdicts.append(("%s: too few samples after warm-up" % name, False))
    good = all(v for _, v in verdicts)
    print("\nh2load: " + " | ".join(summary))
    print("node: replay ids %d (capacity %d, %.1f MB), busy answers %d"
          % (node_m.get(("skyroute_node_replay_ids", ""), 0),
             node_m.get(("skyroute_node_replay_capacity", ""), 0),
             node_m.get(("skyroute_node_replay_bytes", ""), 0) / 2**20,
             node_m.get(("skyroute_node_rejected_total", 'reason="busy"'), 0)))
    for text, v in verdicts:
        print("  [%s] %s" % ("ok" if v else "FAIL", text))
    print("verdict: %s" % ("PASS" if good else "FAIL"), flush=True)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| t (s) | answers | req/s | ok % | p50 ms | p99 ms |"
                    + "".join(" %s RSS MB | %s fds |" % (n, n) for n, _ in daemons) + "\n")
            f.write("|" + "---:|" * (6 + 2 * len(daemons)) + "\n")
            for r in rows:
                f.write("| %d | %d | %.0f | %.3f | %.1f | %.1f |" % (
                    r["t"], r["n"], r["n"] / SAMPLE_S, r["ok"], r["p50"], r["p99"])
                    + "".join(" %.1f | %d |" % (r[n][0] / 2**20, r[n][1]) for n, _ in daemons)
                    + "\n")
            f.write("\nh2load: " + " | ".join(summary) + "\n\n")
            for text, v in verdicts:
                f.write("- [%s] %s\n" % ("ok" if v else "FAIL", text))
            f.write("\nVerdict: **%s**\n" % ("PASS" if good else "FAIL"))
    shutil.rmtree(d, ignore_errors=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
