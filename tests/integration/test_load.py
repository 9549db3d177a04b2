"""Holding under load, scaled down: a node whose replay guard fills answers
busy, and the gateway takes that as backpressure (spread, probed, 503 with
retry-after only for the excess, back as soon as the node has room); the
access log keeps only what [gateway] access_log asks for, at its rate.
Real skyrouted, real skyroute-node, h2load and curl on loopback."""

import json
import os
import time

import srtest
from srtest import check, run

# 0.25 MiB: room for some 2,200 live ids, which a load of a few thousand
# requests outruns


def write(env, name, data):
    p = env.path(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def h2load(url, n, body, headers=(), c=4, m=32, timeout=120):
    """h2load -n N: returns its status-code counts {"2xx": .., "5xx": ..} and
    the requests line."""
    argv = ["h2load", "-c", str(c), "-m", str(m), "-n", str(n), "-d", body,
            "-H", "skyroute-handler: echo"]
    for h in headers:
        argv += ["-H", h]
    r = run(argv + [url + "/v1/workloads"], timeout=timeout)
    out = r.stdout.decode()
    reqs = [l for l in out.splitlines() if l.startswith("requests:")]
    codes = [l for l in out.splitlines() if l.startswith("status codes:")]
    check(reqs and codes, "h2load ran: %s" % out[-800:])
    counts = {}
    for part in codes[0].split(":", 1)[1].split(","):
        num, cls = part.split()
        counts[cls] = int(num)
    return counts, reqs[0]


def small_node(env, name, gpub, budget_mb=0.25):
    conf = write(env, name + ".conf", ("[node]\nreplay_budget_mb = %s\n" % budget_mb).encode())
    return env.start_node(name, [gpub], extra=["--config", conf])


def test_busy_target_spreads_to_the_other():
    """The small node fills, answers busy, and the gateway sends the rest to
    the other target: every request succeeds, and the small one is never
    counted as failing (no ejection, no 502, no 503)."""
    env = srtest.Env("spread")
    _, gpub = env.keygen("gs-test")
    # room for some 400 ids: whatever share of the load the router gives it
    # (both answer alike on loopback), that share outruns it
    small = small_node(env, "small", gpub, 0.05)
    big = env.start_node("big", [gpub])
    g = env.start_gateway("gs-test", [dict(small, extra={"rtt_ms": 1}),
                                      dict(big, extra={"rtt_ms": 5})])
    p = write(env, "1k.bin", os.urandom(1024))
    n = 8000
    counts, line = h2load(g["url"], n, p, ["skyroute-deadline-ms: 20000"])
    busy = srtest.metric(small["admin"], "skyroute_node_rejected_total", 'reason="busy"')
    print("spread: %s; small node answered busy %d times, gateway: %d busy, %d refused"
          % (counts, busy, srtest.metric(g["admin"], "skyroute_dispatch_total", 'outcome="busy"'),
             srtest.metric(g["admin"], "skyroute_dispatch_total", 'outcome="refused"')))
    check(busy > 0, "the small node's guard filled (busy %d): the load outran it" % busy)
    check(counts.get("2xx") == n, "all %d succeeded despite the busy node: %s; %s"
          % (n, counts, line))
    check(srtest.metric(g["admin"], "skyroute_dispatch_total", 'outcome="refused"') == 0,
          "busy is not a refusal")
    check(srtest.metric(g["admin"], "skyroute_dispatch_total", 'outcome="busy"') > 0,
          "the gateway counted the busy answers")
    ran_small = srtest.metric(small["admin"], "skyroute_node_executed_total")
    ran_big = srtest.metric(big["admin"], "skyroute_node_executed_total")
    cap = srtest.metric(small["admin"], "skyroute_node_replay_capacity")
    check(ran_small + ran_big == n and ran_big > 0 and ran_small >= cap,
          "spread over both: small %d (room for %d), big %d" % (ran_small, cap, ran_big))
    bad = env.close()
    check(not bad, "processes exited badly")


def test_excess_gets_retry_after_and_service_returns_within_a_second():
    """One target, guard room for ~2,200 ids of 4-s envelopes, a burst of
    3x that: what fits succeeds, only the excess gets 503 with retry-after
    (when the node's earliest id expires), and once that time comes a
    request succeeds within a second."""
    env = srtest.Env("cliff")
    _, gpub = env.keygen("gs-test")
    solo = small_node(env, "solo", gpub)
    g = env.start_gateway("gs-test", [solo])
    p = write(env, "1k.bin", os.urandom(1024))
    deadline_ms = 4000
    n = 7000
    t0 = time.time()
    counts, line = h2load(g["url"], n, p, ["skyroute-deadline-ms: %d" % deadline_ms])
    burst_s = time.time() - t0
    cap = srtest.metric(solo["admin"], "skyroute_node_replay_capacity")
    ran = srtest.metric(solo["admin"], "skyroute_node_executed_total")
    busy = srtest.metric(solo["admin"], "skyroute_node_rejected_total", 'reason="busy"')
    ok, over = counts.get("2xx", 0), counts.get("5xx", 0)
    print("cliff: capacity %d ids; burst of %d in %.2f s: %d ok, %d 503 (node: %d run, %d "
          "busy answers; gateway passed the rest over)" % (cap, n, burst_s, ok, over, ran, busy))
    check(1000 < cap < 4000, "a guard of a few thousand ids: %d" % cap)
    check(ok + over == n and counts.get("4xx", 0) == 0, "only 2xx and 503: %s; %s" % (counts, line))
    check(ok == ran and ok >= cap, "what fits is served: %d ok, %d run, capacity %d"
          % (ok, ran, cap))
    check(over > 0, "the burst outran the guard (%s)" % counts)
    # the node is asked only at a bounded rate while busy: most of the excess
    # never reaches it
    check(busy < over, "busy answers %d for %d refused: probes, not a storm" % (busy, over))
    st503 = srtest.metric(g["admin"], "skyroute_requests_total", 'code="503"')
    check(st503 == over, "503 counted %d, h2load saw %d" % (st503, over))

    # the excess is told when to come back
    x = write(env, "x.bin", b"after the burst")
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", x,
                                   ["skyroute-deadline-ms: %d" % deadline_ms])
    if st == 200:  # the burst outlasted the first expiry: fill it again
        counts, _ = h2load(g["url"], n, p, ["skyroute-deadline-ms: %d" % deadline_ms])
        st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", x,
                                       ["skyroute-deadline-ms: %d" % deadline_ms])
    t_told = time.time()
    check(st == 503, "full: 503, not %s %r" % (st, body[:200]))
    check("retry-after" in h and "skyroute-retry-after-ms" in h, "retry-after given: %r" % h)
    retry_ms = int(h["skyroute-retry-after-ms"])
    check(0 < retry_ms <= deadline_ms and int(h["retry-after"]) == -(-retry_ms // 1000),
          "retry-after %s s / %d ms within the 4-s envelope life" % (h["retry-after"], retry_ms))
    detail = json.loads(body)["detail"]
    check("busy" in json.dumps(detail["candidates"]), "the detail says busy: %r" % detail)
    room_at = t_told + retry_ms / 1000.0

    # service is back within a second of the node's earliest expiry
    tries = 0
    while True:
        tries += 1
        st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", x,
                                       ["skyroute-deadline-ms: %d" % deadline_ms])
        now = time.time()
        if st == 200 or now > room_at + 5:
            break
        check(st == 503 and "retry-after" in h, "waiting: 503 with retry-after, not %s" % st)
        time.sleep(0.02)
    late = now - room_at
    print("cliff: told to retry in %d ms; served %.3f s after that time, %d tries"
          % (retry_ms, late, tries))
    check(st == 200 and body == b"after the burst", "served again: %s %r" % (st, body[:200]))
    check(late <= 1.0, "back within 1 s of the earliest expiry: %.3f s" % late)
    check(late >= -0.25, "not before the node had room (%.3f s early?)" % -late)
    bad = env.close()
    check(not bad, "processes exited badly")


def test_node_budget_is_checked():
    """replay_budget_mb is a number of MiB in [0.01, 65536]; anything else
    stops the node at start, naming the file, line and key."""
    env = srtest.Env("budget")
    _, gpub = env.keygen("gs-test")
    key, _ = env.keygen("n")
    for value in ("0", "-1", "lots", "70000"):
        conf = write(env, "n.conf", ("[node]\ngops = 5\nreplay_budget_mb = %s\n" % value).encode())
        r = run([srtest.NODE, "--id", "n", "--listen", "127.0.0.1:%d" % srtest.free_port(),
                 "--key", key, "--trust", gpub, "--config", conf], timeout=30)
        err = r.stderr.decode()
        check(r.returncode != 0 and "n.conf:3" in err and "replay_budget_mb" in err,
              "%s refused with its line: %d %r" % (value, r.returncode, err))
    env.close()


def access_lines(env, g, skip=0, want=0, timeout=5.0):
    """The gateway's access log lines past the first |skip| (its log file
    is shared by the gateways of one test): flushed once a second, so waits
    until there are |want| or |timeout| passes, then a flush more for extras."""
    def lines():
        return [l for l in env.log(g["proc"]).splitlines() if l.startswith('{"ts"')][skip:]
    end = time.time() + timeout
    while len(lines()) < want and time.time() < end:
        time.sleep(0.1)
    time.sleep(1.2)  # one more flush: a mode that wrote too much shows it
    return [json.loads(l) for l in lines()]


def test_access_log_modes():
    """Each [gateway] access_log mode, with 30 requests of which 10 fail
    (a bad deadline header: 400): off writes
    none, errors the 10, sampled the 10 and one in 4 of the 20 others, all
    30; access_log_rate = 5 caps a second's lines at 5 and counts the rest."""
    env = srtest.Env("alog")
    _, gpub = env.keygen("gs-test")
    node = env.start_node("alpha", [gpub])
    p = write(env, "x.bin", b"logged?")
    cases = [
        ("", 10, 10),  # the default: errors only
        ("access_log = off", 0, 0),
        ("access_log = errors", 10, 10),
        ("access_log = sampled\naccess_log_sample = 4", 15, 15),
        ("access_log = all", 30, 30),
        ("access_log = all\naccess_log_rate = 5", 5, None),
    ]
    seen = 0
    for conf, want, exact in cases:
        g = env.start_gateway("gs-test", [node], extra_gateway=conf)
        statuses = []
        for k in range(30):
            deadline = "5000" if k % 3 else "-5"  # refused: 400
            st, _, _ = srtest.curl_post(g["url"] + "/v1/workloads", p,
                                        ["skyroute-handler: echo", "skyroute-deadline-ms: " + deadline])
            statuses.append(st)
        fails = sum(1 for s in statuses if s >= 400)
        check(fails == 10, "%r: 10 of 30 fail: %r" % (conf, statuses))
        lines = access_lines(env, g, seen, want)
        seen += len(lines)
        errs = sum(1 for l in lines if l["status"] >= 400)
        dropped = srtest.metric(g["admin"], "skyroute_access_log_dropped_total")
        written = srtest.metric(g["admin"], "skyroute_access_log_lines_total")
        print("access_log %-40r %2d lines (%d errors), %d dropped"
              % (conf.replace("\n", "; "), len(lines), errs, dropped))
        check(written == len(lines), "%r: metric %d lines, log %d" % (conf, written, len(lines)))
        if exact is not None:
            check(len(lines) == exact, "%r: %d lines, want %d" % (conf, len(lines), exact))
            check(dropped == 0, "%r: nothing dropped" % conf)
            if conf in ("", "access_log = errors"):
                check(errs == 10, "errors only: %r" % [l["status"] for l in lines])
            if "sampled" in conf:
                check(errs == 10, "sampled keeps every error")
        else:
            # 30 requests over about as many curl runs: at most 5 a second
            per_sec = {}
            for l in lines:
                per_sec[l["ts"][:19]] = per_sec.get(l["ts"][:19], 0) + 1
            check(lines and max(per_sec.values()) <= 5, "at most 5 a second: %r" % per_sec)
            check(len(lines) + dropped == 30 and dropped > 0,
                  "capped: %d written + %d dropped = 30" % (len(lines), dropped))
        env.stop(g["proc"])
    r = run([srtest.SKYROUTED, "-c", write(env, "bad.conf", (
        "[gateway]\nid = gs\nkey = gs-test.key\nlisten = 127.0.0.1:0\naccess_log = verbose\n"
        "[idc.alpha]\nurl = http://127.0.0.1:9\npubkey = alpha.pub\n").encode()),
        "--check-config"])
    err = r.stderr.decode()
    check(r.returncode != 0 and "bad.conf:5" in err and "access_log" in err,
          "a bad mode is named with its line: %r" % err)
    bad = env.close()
    check(not bad, "processes exited badly")


if __name__ == "__main__":
    srtest.run_tests([
        test_busy_target_spreads_to_the_other,
        test_excess_gets_retry_after_and_service_returns_within_a_second,
        test_access_log_modes,
        test_node_budget_is_checked,
    ])
