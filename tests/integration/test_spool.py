"""Store-and-forward: async workloads acknowledged only once durable, fetched
later; 1,000 of them survive the gateway being killed with SIGKILL several
times, and every handler runs exactly once; quotas refuse without storing."""

import json
import os
import signal
import socket
import subprocess
import time

import h2.config
import h2.connection
import h2.events

import srtest
from srtest import check, run


class H2:
    """A small multiplexing h2c client (Python's h2) for many requests."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                      header_encoding="utf-8"))
        self.c.initiate_connection()
        self.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.c.increment_flow_control_window(1 << 24)
        self.s.sendall(self.c.data_to_send())

    def many(self, reqs, window=100):
        """reqs: list of (method, path, headers, body). Returns [(status, headers, body)]."""
        out = [None] * len(reqs)
        sid_of = {}
        buf = {}
        nxt = 0
        inflight = 0
        while nxt < len(reqs) or inflight:
            while nxt < len(reqs) and inflight < window:
                m, path, hdrs, body = reqs[nxt]
                sid = self.c.get_next_available_stream_id()
                h = [(":method", m), (":scheme", "http"), (":authority", "gw"), (":path", path)]
                h += list(hdrs)
                self.c.send_headers(sid, h, end_stream=not body)
                for off in range(0, len(body), 16384):  # frames within the default size
                    self.c.send_data(sid, body[off:off + 16384],
                                     end_stream=off + 16384 >= len(body))
                sid_of[sid] = nxt
                buf[sid] = [None, {}, b""]
                nxt += 1
                inflight += 1
            self.s.sendall(self.c.data_to_send())
            data = self.s.recv(1 << 16)
            if not data:
                raise RuntimeError("connection closed")
            for ev in self.c.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    hd = dict(ev.headers)
                    buf[ev.stream_id][0] = int(hd[":status"])
                    buf[ev.stream_id][1] = hd
                elif isinstance(ev, h2.events.DataReceived):
                    buf[ev.stream_id][2] += ev.data
                    self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    out[sid_of[ev.stream_id]] = tuple(buf.pop(ev.stream_id))
                    inflight -= 1
                elif isinstance(ev, h2.events.StreamReset):
                    out[sid_of[ev.stream_id]] = (None, {}, b"")
                    buf.pop(ev.stream_id, None)
                    inflight -= 1
            self.s.sendall(self.c.data_to_send())
        return out

    def close(self):
        self.s.close()


def async_post(body, extra=()):
    return ("POST", "/v1/workloads", [("prefer", "respond-async")] + list(extra), body)


def test_async_submit_and_fetch():
    env = srtest.Env("async")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    g = env.start_gateway("gs-test", [n])
    def submit(payload, extra=()):
        p = env.path("p.bin")
        with open(p, "wb") as f:
            f.write(payload)
        argv = ["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-H", "prefer: respond-async"]
        for h in extra:
            argv += ["-H", h]
        r = run(argv + ["--data-binary", "@" + p, g["url"] + "/v1/workloads"])
        head, _, body = r.stdout.decode().partition("\r\n\r\n")
        check(head.startswith("HTTP/2 202"), "202 accepted: %r" % head)
        loc = [l.split(": ", 1)[1] for l in head.split("\r\n")
               if l.lower().startswith("location:")][0]
        check(loc.startswith("/v1/workloads/") and json.loads(body)["state"] == "queued", body)
        return p, loc

    def fetch(loc):
        end = time.time() + 10
        while True:
            r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", g["url"] + loc])
            head, _, res = r.stdout.decode().partition("\r\n\r\n")
            if not head.startswith("HTTP/2 202") or time.time() > end:
                return head, res
            time.sleep(0.1)

    p, loc = submit(b"store and forward", ["skyroute-handler: digest"])
    head, res = fetch(loc)
    check(head.startswith("HTTP/2 200"), "the result is fetched: %r" % head)
    check(res == run(["b2sum", "-l", "256", p]).stdout.decode().split()[0], "digest result")
    check("skyroute-target: alpha" in head and "skyroute-signer: alpha" in head, head)
    # an empty payload goes through the spool as well (the sanitizer pass once
    # stopped here: a NULL payload copied with memcpy), and comes back empty
    _, loc = submit(b"")
    head, res = fetch(loc)
    check(head.startswith("HTTP/2 200") and res == "", "the empty echo: %r %r" % (head, res))
    # a workload whose deadline passes in the spool: its failure status, with an error body
    _, loc = submit(b"late", ["skyroute-deadline-ms: 1", "skyroute-work: 1"])
    head, res = fetch(loc)
    j = json.loads(res)
    check(head.startswith("HTTP/2 50") and j["state"] == "failed" and j["error"] == j["reason"]
          and j["error"], "failed, saying why: %r %r" % (head, res))
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
             g["url"] + "/v1/workloads/" + "0" * 32])
    check(r.stdout == b"404", "unknown id 404")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_thousand_async_workloads_survive_sigkill_exactly_once():
    env = srtest.Env("kill9")
    gkey, gpub = env.keygen("gs-test")
    nodes = [env.start_node(nid, [gpub], extra=["--gops", "1", "--log-level", "warn"])
             for nid in ("alpha", "beta")]
    # and a satellite not yet in view: its work waits for the pass
    station, mask = "48.85,2.35,35", 84.0
    tle, aos, los = srtest.synthetic_pass(env, station, mask, 30)
    skey, spub = env.keygen("sat-1")
    sport, saport = srtest.free_port(), srtest.free_port()
    sp = env.start([srtest.NODE, "--id", "sat-1", "--listen", "127.0.0.1:%d" % sport, "--key",
                    skey, "--trust", gpub, "--admin", "127.0.0.1:%d" % saport, "--gops", "1",
                    "--log-level", "warn", "--emulate-link", tle, "--station", station,
                    "--min-el", str(mask)], "sat-1")
    srtest.wait_port(saport, proc=sp)
    sat = {"id": "sat-1", "url": "http://127.0.0.1:%d" % sport, "pub": spub, "kind": "satellite",
           "extra": {"catnum": "90000"}, "admin": saport}
    okey, _ = env.keygen("ops")
    g = env.start_gateway("gs-test", nodes + [sat],
                          extra_gateway="log_level = warn\nstation = %s\nmin_el_deg = %s" %
                          (station, mask),
                          sections="[spool]\nconcurrency = 64\n\n[operator.ops]\npubkey = "
                          "ops.pub\nsatellites = sat-1\n")
    sig = run([srtest.SKYROUTE, "sign", "--key", okey, "--url", g["url"] + "/v1/elements",
               "--station", g["id"], "--content-type", "text/plain"],
              input=open(tle, "rb").read(), check=True)
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + tle,
             "-H", "content-type: text/plain", "-H",
             "skyroute-signature: " + sig.stdout.decode().strip(), g["url"] + "/v1/elements"])
    check(b'"accepted"' in r.stdout, "elements accepted: %r" % r.stdout)
    N, NSAT = 1000, 50
    cl = H2(g["port"])
    reqs = [async_post(b"w%04d" % i, [("skyroute-handler", "compute"),
                                       ("skyroute-work", "1.0" if i < NSAT else "0.1"),
                                       ("skyroute-place", "orbit" if i < NSAT else "ground"),
                                       ("skyroute-deadline-ms", "600000")]) for i in range(N)]
    res = cl.many(reqs)
    cl.close()
    ids = []
    for st, h, body in res:
        check(st == 202, "acknowledged: %s %r" % (st, body[:200]))
        ids.append(h["skyroute-id"])
    check(len(set(ids)) == N, "distinct ids")
    conf = g["conf"]

    def restart():
        p = env.start([srtest.SKYROUTED, "-c", conf], "gs-test-again", g["port"])
        srtest.wait_port(g["admin"], proc=p)
        return p

    # kill -9 at several points: while queued work waits, mid-transfer, and after
    # results were stored but before the client fetched them
    proc = g["proc"]
    for pause in (0.3, 0.8, 1.5):
        time.sleep(pause)
        proc.kill()
        proc.wait()
        proc = restart()
    check(time.time() < aos - 3, "the satellite's work was still waiting for its pass")
    check(srtest.metric(saport, "skyroute_node_executed_total") == 0, "nothing ran before AOS")
    # once more while the satellite runs its work (1 s each) in its pass
    time.sleep(max(0.0, aos + 0.5 - time.time()))
    proc.kill()
    proc.wait()
    proc = restart()
    deadline = time.time() + 120
    pending = list(ids)
    results = {}
    while pending and time.time() < deadline:
        cl = H2(g["port"])
        out = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in pending])
        cl.close()
        still = []
        for i, (st, h, body) in zip(pending, out):
            if st == 200:
                results[i] = body
            else:
                check(st == 202, "pending is 202, not %s: %r" % (st, body[:300]))
                still.append(i)
        pending = still
        if pending:
            time.sleep(0.5)
    check(not pending, "%d workloads never finished" % len(pending))
    check(all(json.loads(results[i])["work_gop"] == (1.0 if n < NSAT else 0.1)
              for n, i in enumerate(ids)), "compute results")
    # one more kill after every result is stored: they are still there
    proc.kill()
    proc.wait()
    proc = restart()
    cl = H2(g["port"])
    out = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in ids[:50]])
    cl.close()
    check(all(st == 200 for st, _, _ in out), "results survive a restart")
    nodes.append(sat)
    executed = sum(srtest.metric(n["admin"], "skyroute_node_executed_total") for n in nodes)
    print("  executed across nodes: %d (alpha %d, beta %d, sat-1 %d)" % (
        executed, srtest.metric(nodes[0]["admin"], "skyroute_node_executed_total"),
        srtest.metric(nodes[1]["admin"], "skyroute_node_executed_total"),
        srtest.metric(saport, "skyroute_node_executed_total")), flush=True)
    check(executed == N, "each handler ran exactly once: %d executions for %d workloads" %
          (executed, N))
    check(srtest.metric(saport, "skyroute_node_executed_total") == NSAT,
          "the satellite's work ran on the satellite, in its pass")
    replays = sum(srtest.metric(n["admin"], "skyroute_node_rejected_total", 'reason="env_replay"')
                  for n in nodes)
    print("  re-sent envelopes answered from the nodes' replay guards: %d (sat-1 %d)" % (
        replays, srtest.metric(saport, "skyroute_node_rejected_total", 'reason="env_replay"')),
        flush=True)
    check(replays > 0, "the kills caught work in flight (re-sent, answered with stored results)")
    bad = [p for p in env.close() if p.sr_name not in ("gs-test",)]
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_quotas_refuse_and_store_nothing():
    env = srtest.Env("quota")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--gops", "1"])
    import hashlib
    tok = hashlib.sha256(b"tok").hexdigest()
    g = env.start_gateway("gs-test", [n], sections="[spool]\nmax_items = 5\n\n"
                          "[client.small]\ntoken_sha256 = %s\nspool_bytes = 1000\nrate = 1000\n" %
                          hashlib.sha256(b"small").hexdigest() +
                          "\n[client.big]\ntoken_sha256 = %s\nrate = 1000\n" % tok)
    cl = H2(g["port"])
    slow = [("skyroute-handler", "compute"), ("skyroute-work", "30"),
            ("skyroute-deadline-ms", "600000")]
    # per-client bytes: 600 + 600 > 1000
    out = cl.many([async_post(b"x" * 600, [("authorization", "Bearer small")] + slow)
                   for _ in range(2)], window=1)
    check([o[0] for o in out] == [202, 429], "client quota: %r" % [o[0] for o in out])
    check(b"spool quota" in out[1][2], out[1][2])
    # total items: 5 held at most
    out = cl.many([async_post(b"y", [("authorization", "Bearer tok")] + slow) for _ in range(5)],
                  window=1)
    codes = [o[0] for o in out]
    check(codes == [202, 202, 202, 202, 507], "spool item limit: %r" % codes)
    check(b"spool is full" in out[-1][2], out[-1][2])
    refused_ids = [o[1].get("skyroute-id") for o in out if o[0] != 202]
    check(refused_ids == [None], "a refused workload gets no id")
    check(srtest.metric(g["admin"], "skyroute_spool_items") == 5, "five held")
    cl.close()
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_satellite_work_waits_for_aos_and_leaves_in_deadline_order():
    env = srtest.Env("aos")
    gkey, gpub = env.keygen("gs-test")
    station, mask = "48.85,2.35,35", 84.0
    tle, aos, los = srtest.synthetic_pass(env, station, mask, 22)
    order_log = env.path("order.log")
    conf = env.path("node.conf")
    with open(conf, "w") as f:
        f.write("[exec.log]\ncommand = tee -a %s\n" % order_log)
    key, pub = env.keygen("sat-1")
    port, aport = srtest.free_port(), srtest.free_port()
    p = env.start([srtest.NODE, "--id", "sat-1", "--listen", "127.0.0.1:%d" % port, "--key", key,
                   "--trust", gpub, "--admin", "127.0.0.1:%d" % aport, "--config", conf,
                   "--emulate-link", tle, "--station", station, "--min-el", str(mask)], "sat-1")
    srtest.wait_port(aport, proc=p)
    okey, _ = env.keygen("ops")
    node = {"id": "sat-1", "url": "http://127.0.0.1:%d" % port, "pub": pub, "kind": "satellite",
            "extra": {"catnum": "90000"}}
    g = env.start_gateway("gs-test", [node],
                          extra_gateway="station = %s\nmin_el_deg = %s" % (station, mask),
                          sections="[operator.ops]\npubkey = ops.pub\nsatellites = sat-1\n\n"
                          "[spool]\nconcurrency = 1\n")
    sig = run([srtest.SKYROUTE, "sign", "--key", okey, "--url", g["url"] + "/v1/elements",
               "--station", g["id"], "--content-type", "text/plain"],
              input=open(tle, "rb").read(), check=True)
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + tle,
             "-H", "content-type: text/plain", "-H",
             "skyroute-signature: " + sig.stdout.decode().strip(), g["url"] + "/v1/elements"])
    check(b'"accepted"' in r.stdout, "elements accepted: %r" % r.stdout)
    check(time.time() < aos - 5, "submitting before AOS")
    cl = H2(g["port"])
    # submitted latest-deadline first: they must leave in deadline order
    subs = [(b"w-late\n", 300000), (b"w-mid\n", 200000), (b"w-soon\n", 100000)]
    out = cl.many([async_post(body, [("skyroute-handler", "exec:log"), ("skyroute-place", "orbit"),
                                     ("skyroute-deadline-ms", str(dl))]) for body, dl in subs],
                  window=1)
    check([o[0] for o in out] == [202] * 3, "accepted: %r" % [(o[0], o[2][:200]) for o in out])
    ids = [o[1]["skyroute-id"] for o in out]
    time.sleep(1.0)
    st = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in ids])
    for code, h, body in st:
        j = json.loads(body)
        check(code == 202 and j["state"] == "waiting", "waiting before AOS: %s %r" % (code, j))
        opens = srtest.parse_iso(j["window_opens"])
        check(abs(opens - aos) < 2.0, "it says when its window opens: %s vs AOS %s" %
              (j["window_opens"], srtest.iso(aos)))
    check(not os.path.exists(order_log), "nothing ran before AOS")
    end = aos + 20
    done = []
    while time.time() < end and len(done) < 3:
        time.sleep(0.5)
        st = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in ids])
        done = [i for i, (code, h, b) in zip(ids, st) if code == 200]
    cl.close()
    check(len(done) == 3, "all three ran in the pass")
    with open(order_log) as f:
        order = f.read().split()
    check(order == ["w-soon", "w-mid", "w-late"], "left at AOS in deadline order: %r" % order)
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_full_disk_is_reported_and_nothing_half_stored():
    if os.geteuid() != 0:
        print("skipped: mounting a small tmpfs needs root")
        return
    env = srtest.Env("diskfull")
    state = env.path("state-gs-test")
    os.mkdir(state)
    r = run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", state])
    if r.returncode != 0:
        print("skipped: cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
        return
    try:
        gkey, gpub = env.keygen("gs-test")
        _, dead_pub = env.keygen("dead")
        # a target that never answers: accepted work stays in the spool
        dead = {"id": "dead", "url": "http://127.0.0.1:%d" % srtest.free_port(), "pub": dead_pub}
        g = env.start_gateway("gs-test", [dead])
        cl = H2(g["port"])
        accepted, refused = [], None
        body = os.urandom(60000)  # one DATA frame within the initial window
        for _ in range(60):
            st, h, b = cl.many([async_post(body, [("skyroute-deadline-ms", "3600000")])])[0]
            if st == 202:
                accepted.append(h["skyroute-id"])
            else:
                refused = (st, h, b)
                break
        check(refused is not None, "the 1.5 MiB disk filled up")
        st, h, b = refused
        check(st == 507 and b"disk is full" in b, "full disk reported: %s %r" % (st, b[:200]))
        check("skyroute-id" not in h, "the refused workload got no id")
        check(len(accepted) >= 5, "some work was stored first: %d" % len(accepted))
        print("  %d workloads of 60000 B stored before the disk filled; then 507" % len(accepted),
              flush=True)
        out = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in accepted])
        check(all(o[0] == 202 for o in out), "everything acknowledged is still there: %r" %
              sorted(set(o[0] for o in out)))
        cl.close()
        code, _ = srtest.http_get(g["admin"], "/healthz")
        check(code == 200 and g["proc"].poll() is None, "the gateway keeps running")
        env.stop(g["proc"])
    finally:
        for p in env.procs:
            env.stop(p)
        run(["umount", state])
    bad = env.close()
    check(not bad, "clean exits: %r" % [(x.sr_name, x.returncode) for x in bad])


def test_satellite_originated_work_comes_back_at_contact():
    env = srtest.Env("outbox")
    gkey, gpub = env.keygen("gs-test")
    station, mask = "48.85,2.35,35", 84.0
    tle, aos, los = srtest.synthetic_pass(env, station, mask, 16)
    idc = env.start_node("alpha", [gpub])
    key, pub = env.keygen("sat-1")
    port, aport = srtest.free_port(), srtest.free_port()
    sat = {"id": "sat-1", "url": "http://127.0.0.1:%d" % port, "pub": pub, "kind": "satellite"}
    g = env.start_gateway("gs-test", [idc, sat])
    # the satellite trusts the gateway (for the results it fetches) and sends it work
    p = env.start([srtest.NODE, "--id", "sat-1", "--listen", "127.0.0.1:%d" % port, "--key", key,
                   "--trust", gpub, "--admin", "127.0.0.1:%d" % aport, "--emulate-link", tle,
                   "--station", station, "--min-el", str(mask), "--gateway", g["url"],
                   "--gateway-id", "gs-test"], "sat-1")
    srtest.wait_port(aport, proc=p)
    check(time.time() < aos - 3, "submitting before the contact")
    payload = env.path("obs.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(4096))
    r = run(["curl", "-sS", "--data-binary", "@" + payload, "-H", "skyroute-handler: digest",
             "http://127.0.0.1:%d/v1/submit" % aport])
    sid = json.loads(r.stdout)["id"]
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             "http://127.0.0.1:%d/v1/inbox/%s" % (aport, sid)])
    check(r.stdout == b"202", "waiting onboard before the contact")
    time.sleep(1.5)
    check(srtest.metric(idc["admin"], "skyroute_node_executed_total") == 0,
          "nothing leaves the satellite before AOS")
    end = aos + 15
    code = b""
    while time.time() < end:
        time.sleep(0.5)
        r = run(["curl", "-sS", "-w", "\n%{http_code}", "http://127.0.0.1:%d/v1/inbox/%s" %
                 (aport, sid)])
        body, _, code = r.stdout.rpartition(b"\n")
        if code == b"200":
            break
    check(code == b"200", "the result came back during the contact: %r" % code)
    want = run(["b2sum", "-l", "256", payload]).stdout.split()[0]
    check(body == want, "it ran on the ground (digest of the satellite's data)")
    check(srtest.metric(idc["admin"], "skyroute_node_executed_total") == 1, "run once, at the IDC")
    check(srtest.metric(aport, "skyroute_node_uplinked_total") == 1, "uplinked once")
    check(srtest.metric(g["admin"], "skyroute_outbox_results_sent_total") >= 1, "via the outbox")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(x.sr_name, x.returncode) for x in bad])


def test_pass_cut_mid_transfer_goes_on_the_next_window():
    """sat-1's real link is far slower than the gateway believes: a 4 MiB
    upload that should take a third of a second is still going when the pass
    ends. It never fully reached sat-1, so it is planned again and leaves in
    sat-2's pass a little later, with the workload queued behind it; the small
    one that went first completed in sat-1's pass. Each handler ran once."""
    import hashlib
    env = srtest.Env("cut")
    gkey, gpub = env.keygen("gs-test")
    station, mask = "48.85,2.35,35", 84.0
    tle1, aos1, los1 = srtest.synthetic_pass(env, station, mask, 26, catnum=90001)
    tle2, aos2, los2 = srtest.synthetic_pass(env, station, mask, 62, catnum=90002)
    check(aos2 > los1 + 5, "sat-2's pass opens after sat-1's closes")
    both = env.path("both.tle")
    with open(both, "wb") as f:
        f.write(open(tle1, "rb").read() + open(tle2, "rb").read())
    sats, nodes = [], {}
    for sid, tle, extra in (("sat-1", tle1, ["--link-bps", "1000000"]), ("sat-2", tle2, [])):
        key, pub = env.keygen(sid)
        port, aport = srtest.free_port(), srtest.free_port()
        p = env.start([srtest.NODE, "--id", sid, "--listen", "127.0.0.1:%d" % port, "--key", key,
                       "--trust", gpub, "--admin", "127.0.0.1:%d" % aport, "--emulate-link", tle,
                       "--station", station, "--min-el", str(mask)] + extra, sid)
        srtest.wait_port(aport, proc=p)
        nodes[sid] = aport
        # the gateway believes in a 100 Mbit/s link both ways
        sats.append({"id": sid, "url": "http://127.0.0.1:%d" % port, "pub": pub,
                     "kind": "satellite", "extra": {"catnum": tle[-9:-4], "uplink_bps": "100e6",
                                                    "downlink_bps": "100e6"}})
    okey, _ = env.keygen("ops")
    g = env.start_gateway("gs-test", sats,
                          extra_gateway="station = %s\nmin_el_deg = %s" % (station, mask),
                          sections="[operator.ops]\npubkey = ops.pub\nsatellites = sat-1, sat-2"
                          "\n\n[spool]\nconcurrency = 1\n")
    sig = run([srtest.SKYROUTE, "sign", "--key", okey, "--url", g["url"] + "/v1/elements",
               "--station", g["id"], "--content-type", "text/plain"],
              input=open(both, "rb").read(), check=True)
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + both,
             "-H", "content-type: text/plain", "-H",
             "skyroute-signature: " + sig.stdout.decode().strip(), g["url"] + "/v1/elements"])
    check(r.stdout.count(b'"accepted"') >= 1 and b"error" not in r.stdout,
          "elements accepted: %r" % r.stdout)
    check(time.time() < aos1 - 5, "submitting before sat-1's AOS")
    big = os.urandom(4 << 20)
    small, rest = b"small" * 200, b"rest" * 250
    subs = [(small, 120000), (big, 150000), (rest, 180000)]
    ids = []
    for n, (body, dl) in enumerate(subs):
        path = env.path("w%d.bin" % n)
        with open(path, "wb") as f:
            f.write(body)
        r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
                 "--data-binary", "@" + path, "-H", "prefer: respond-async", "-H",
                 "skyroute-handler: digest", "-H", "skyroute-place: orbit", "-H",
                 "skyroute-deadline-ms: %d" % dl, g["url"] + "/v1/workloads"])
        head = r.stdout.decode(errors="replace").lower()
        check(head.startswith("http/2 202"), "accepted: %r %r" % (head[:300], r.stderr))
        ids.append(head.split("skyroute-id: ")[1].split()[0])
    cl = H2(g["port"])
    end = los2 + 20
    st, between = [], []
    while time.time() < end:
        time.sleep(0.5)
        st = cl.many([("GET", "/v1/workloads/" + i, [], b"") for i in ids])
        if los1 + 2 < time.time() < aos2 - 2:
            between.append(st[1])
        if all(code == 200 for code, _, _ in st):
            break
    cl.close()
    check(between, "looked at the cut workload between the passes")
    for code, _, body in between:
        j = json.loads(body)
        check(code == 202 and j["state"] == "waiting" and
              abs(srtest.parse_iso(j["window_opens"]) - aos2) < 2.0,
              "between the passes the cut upload waits for sat-2's window: %s %r" % (code, j))
    check([code for code, _, _ in st] == [200] * 3,
          "all three done: %r" % [(c, b[:300]) for c, _, b in st])
    for (code, h, body), (payload, _) in zip(st, subs):
        check(body.decode().strip() == hashlib.blake2b(payload, digest_size=32).hexdigest(),
              "the result is the digest of what was submitted")
    where = [h.get("skyroute-target") for _, h, _ in st]
    check(where == ["sat-1", "sat-2", "sat-2"],
          "small ran in sat-1's pass; the cut upload and the one behind it in sat-2's: %r" % where)
    check(srtest.metric(g["admin"], "skyroute_dispatch_total",
                        'target="sat-1",outcome="unreachable"') >= 1,
          "the gateway saw the upload cut at sat-1")
    check(srtest.metric(nodes["sat-1"], "skyroute_node_executed_total") == 1, "sat-1 ran one")
    check(srtest.metric(nodes["sat-2"], "skyroute_node_executed_total") == 2, "sat-2 ran two")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


if __name__ == "__main__":
    srtest.run_tests([
        test_async_submit_and_fetch,
        test_thousand_async_workloads_survive_sigkill_exactly_once,
        test_quotas_refuse_and_store_nothing,
        test_satellite_work_waits_for_aos_and_leaves_in_deadline_order,
        test_pass_cut_mid_transfer_goes_on_the_next_window,
        test_full_disk_is_reported_and_nothing_half_stored,
        test_satellite_originated_work_comes_back_at_contact,
    ])
