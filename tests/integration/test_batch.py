"""Envelopes sent together (POST /v1/batch): a real skyrouted and real
skyroute-nodes on loopback, clients on Python's h2 sending many workloads at
once on one connection, and tamper_proxy.py in between where a node must be
older, or its answers broken.

The gateway seals the envelopes of one loop turn under one signature (SR2)
and, for each target, sends them in one request; the node handles each as
if it had come alone and streams each answer back as an item as soon as it
is ready. What must hold: every workload gets its own answer (its own bytes,
never a neighbour's), a slow handler holds back no other workload of its
batch, each keeps its own deadline, a node without /v1/batch gets one
request per envelope, and a broken answer fails only the workloads whose
items it lost, each saying why."""

import hashlib
import json
import os
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events

import srtest
from srtest import check, run
from tamper_proxy import TamperProxy


def post_many(port, items, timeout=60):
    """POSTs every (payload, headers) of |items| to /v1/workloads on one
    connection, all in one write. Returns, in the same order, dicts with
    status, headers, body and t (seconds from the write to the end of that
    answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    end = time.time() + timeout
    settled = False
    while not settled:  # the server's SETTINGS first (its stream limit)
        for ev in c.receive_data(s.recv(65536)):
            settled = settled or isinstance(ev, h2.events.RemoteSettingsChanged)
        s.sendall(c.data_to_send())
    sids = []
    for payload, hdrs in items:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                             (":path", "/v1/workloads")] + list(hdrs), end_stream=not payload)
        if payload:
            c.send_data(sid, payload, end_stream=True)
        sids.append(sid)
    t0 = time.time()
    s.sendall(c.data_to_send())
    got = {sid: {"status": None, "headers": {}, "body": b"", "t": None} for sid in sids}
    left = len(sids)
    while left:
        check(time.time() < end, "%d of %d answers still missing after %d s"
              % (left, len(sids), timeout))
        data = s.recv(65536)
        check(data, "the gateway closed the connection")
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                got[ev.stream_id]["headers"] = dict(ev.headers)
                got[ev.stream_id]["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                got[ev.stream_id]["body"] += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                got[ev.stream_id]["t"] = time.time() - t0
                left -= 1
            elif isinstance(ev, h2.events.StreamReset):
                check(False, "stream %d reset: %r" % (ev.stream_id, ev))
        s.sendall(c.data_to_send())
    c.close_connection()
    s.sendall(c.data_to_send())
    s.close()
    return [got[sid] for sid in sids]


def finish(env):
    bad = env.close()
    check(not bad, "processes exited badly: %s" % [(p.sr_name, p.returncode) for p in bad])


def seal(key, to, handler="echo", payload=b"x", deadline=60000):
    return run([srtest.SKYROUTE, "seal", "--key", key, "--to", to, "--handler", handler,
                "--deadline-ms", str(deadline)], input=payload, check=True).stdout


def msgpack_bin(b):
    if len(b) < 256:
        return b"\xc4" + bytes([len(b)]) + b
    if len(b) < 65536:
        return b"\xc5" + struct.pack(">H", len(b)) + b
    return b"\xc6" + struct.pack(">I", len(b)) + b


def read_items(body):
    """The node's answer to a batch: [(index, status, content-type, body)]."""
    out, p = [], 0

    def uint():
        nonlocal p
        b = body[p]
        p += 1
        if b < 0x80:
            return b
        w = {0xcc: 1, 0xcd: 2, 0xce: 4}[b]
        v = int.from_bytes(body[p:p + w], "big")
        p += w
        return v

    while p < len(body):
        check(body[p] == 0x94, "an item is a 4-element array: %r" % body[p:p + 8])
        p += 1
        idx, st = uint(), uint()
        check(body[p] & 0xe0 == 0xa0, "content type is a fixstr")
        n = body[p] & 0x1f
        ctype = body[p + 1:p + 1 + n].decode()
        p += 1 + n
        w = {0xc4: 1, 0xc5: 2, 0xc6: 4}[body[p]]
        n = int.from_bytes(body[p + 1:p + 1 + w], "big")
        p += 1 + w
        out.append((idx, st, ctype, body[p:p + n]))
        p += n
    return out


def post_node(port, path, body, ctype="application/vnd.skyroute.batch+msgpack"):
    p = "/tmp/sr-batch-%d" % os.getpid()
    with open(p, "wb") as f:
        f.write(body)
    st, h, out = srtest.curl_post("http://127.0.0.1:%d%s" % (port, path), p,
                                  ["content-type: " + ctype])
    os.unlink(p)
    return st, h, out

# --------------------------------------------------------------------------------------


def test_concurrent_workloads_share_requests():
    """300 workloads sent at once, each with its own bytes: every answer is
    its own payload, and they reached the node in fewer requests than
    workloads (the gateway's and the node's batch counters agree)."""
    env = srtest.Env("batch")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    g = env.start_gateway("gs-test", [n])
    items = [(b"payload %d " % i + os.urandom(16), []) for i in range(300)]
    got = post_many(g["port"], items)
    for i, ((payload, _), r) in enumerate(zip(items, got)):
        check(r["status"] == 200 and r["body"] == payload,
              "workload %d: %s %r (sent %r)" % (i, r["status"], r["body"][:60], payload[:60]))
        check(r["headers"].get("skyroute-signer", "").startswith("alpha "), "%r" % r["headers"])
    ids = {r["headers"]["skyroute-id"] for r in got}
    check(len(ids) == 300, "300 distinct envelope ids: %d" % len(ids))
    batches = srtest.metric(n["admin"], "skyroute_node_batches_total")
    in_batches = srtest.metric(n["admin"], "skyroute_node_batched_envelopes_total")
    requests = srtest.metric(n["admin"], "skyroute_node_requests_total")
    sent = srtest.metric(g["admin"], "skyroute_batch_requests_total")
    sent_env = srtest.metric(g["admin"], "skyroute_batched_envelopes_total")
    print("300 workloads: %d requests to the node, %d of them batches carrying %d envelopes"
          % (requests, batches, in_batches))
    check(batches >= 1 and batches == sent and in_batches == sent_env,
          "the node took the batches the gateway sent: %s/%s, %s/%s"
          % (batches, sent, in_batches, sent_env))
    check(requests < 300 and requests - batches + in_batches == 300,
          "300 envelopes in %s requests (%s batches of %s)" % (requests, batches, in_batches))
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 300, "each ran once")
    finish(env)


def test_one_signature_per_envelope_still_travels_together():
    """With envelope_batch = 1 (and --envelope-batch 1) every envelope and
    every result has a signature of its own (SR1), and they still share
    requests to the node."""
    env = srtest.Env("batchsr1")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--envelope-batch", "1"])
    g = env.start_gateway("gs-test", [n], extra_gateway="envelope_batch = 1")
    items = [(b"sr1 %d" % i, []) for i in range(100)]
    got = post_many(g["port"], items)
    check(all(r["status"] == 200 and r["body"] == p for r, (p, _) in zip(got, items)),
          "%r" % [(r["status"], r["body"][:20]) for r in got])
    sigs = srtest.metric(g["admin"], "skyroute_envelope_signatures_total")
    node_sigs = srtest.metric(n["admin"], "skyroute_node_signatures_total")
    requests = srtest.metric(n["admin"], "skyroute_node_requests_total")
    check(sigs == 100 and node_sigs == 100, "a signature each: %s, %s" % (sigs, node_sigs))
    check(requests < 100 and srtest.metric(n["admin"], "skyroute_node_batches_total") >= 1,
          "100 envelopes in %s requests" % requests)
    finish(env)


def compute_among_echoes(name, believed_gops, work, deadline_ms, echoes):
    """A node computing at 1 Gop/s behind a gateway that believes it does
    |believed_gops|; one compute workload of |work| Gop with its deadline,
    then |echoes| echoes, all sent at once. Returns (env, node, items, answers)."""
    env = srtest.Env(name)
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--gops", "1"])
    g = env.start_gateway("gs-test", [dict(n, extra={"gops": believed_gops})])
    items = [(b"compute", [("skyroute-handler", "compute"), ("skyroute-work", str(work)),
                           ("skyroute-deadline-ms", str(deadline_ms))])]
    items += [(b"echo %d" % i, []) for i in range(echoes)]
    return env, n, items, post_many(g["port"], items)


def test_a_slow_handler_holds_back_no_other():
    """A compute workload of 2 s sent together with 30 echoes: the echoes
    come back long before it, though they went to the node in the same
    request (the node streams each answer as soon as it is ready)."""
    env, n, items, got = compute_among_echoes("batchslow", 1, 2, 30000, 30)
    check(got[0]["status"] == 200 and got[0]["t"] >= 1.8, "compute: %s after %.2f s"
          % (got[0]["status"], got[0]["t"] or -1))
    echo_t = max(r["t"] for r in got[1:])
    check(all(r["status"] == 200 and r["body"] == p for r, (p, _) in zip(got[1:], items[1:])),
          "the echoes came back: %r" % [(r["status"], r["body"][:20]) for r in got[1:]])
    check(echo_t < 1.0, "the last echo came %.2f s after sending, the compute at %.2f s"
          % (echo_t, got[0]["t"]))
    requests = srtest.metric(n["admin"], "skyroute_node_requests_total")
    check(srtest.metric(n["admin"], "skyroute_node_batches_total") >= 1 and requests < 31,
          "they shared requests: 31 workloads in %s requests" % requests)
    finish(env)


def test_each_workload_keeps_its_deadline():
    """The gateway believes the node computes at 1,000 Gop/s; it does 1. A
    workload of 3 Gop with a 1 s deadline, sent with ten echoes, gets 504
    at its deadline, not when its batch's request ends; the echoes succeed."""
    env, n, items, got = compute_among_echoes("batchdl", 1000, 3, 1000, 10)
    j = json.loads(got[0]["body"])
    check(got[0]["status"] == 504 and 0.8 <= got[0]["t"] < 2.5,
          "504 at about its deadline: %s after %.2f s: %r" % (got[0]["status"], got[0]["t"], j))
    check(j["detail"]["target"] == "alpha" and "deadline" in j["detail"]["why"], "%r" % j)
    check(all(r["status"] == 200 for r in got[1:]), "%r" % [r["status"] for r in got[1:]])
    finish(env)


def test_a_node_without_batches_gets_one_request_each():
    """In front of the node, a proxy that answers POST /v1/batch with 404 as
    a node of an older version would: the envelopes of that batch never ran,
    so each goes again on its own; later ones go one request each from the
    start. Every workload runs once."""
    env = srtest.Env("batchold")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    proxy = TamperProxy(n["port"], flip_at=None, refuse={"/v1/batch": 404})
    g = env.start_gateway("gs-test", [dict(n, url="http://127.0.0.1:%d" % proxy.port)])
    first = 0
    for round_ in range(2):
        items = [(b"r%d w%d" % (round_, i), []) for i in range(40)]
        got = post_many(g["port"], items)
        check(all(r["status"] == 200 and r["body"] == p for r, (p, _) in zip(got, items)),
              "round %d: %r" % (round_, [(r["status"], r["body"][:40]) for r in got]))
        first = first or len(proxy.paths)
    check("/v1/batch" in proxy.paths[:first], "the first round tried batches: %r"
          % proxy.paths[:first])
    check("/v1/batch" not in proxy.paths[first:], "the second round none: %r"
          % proxy.paths[first:])
    check(proxy.paths.count("/v1/exec") == 80, "80 envelopes, one request each: %d"
          % proxy.paths.count("/v1/exec"))
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 80, "each ran once")
    check("takes no batches" in env.log(g["proc"]), "the gateway says why")
    proxy.close()
    finish(env)


def test_broken_batch_answers_fail_only_what_they_lost():
    """A proxy cuts the node's answers to batches short, inside the last
    item: the workloads whose items came whole succeed, the one whose item
    was cut fails with 502 saying so. Then it replaces the answers with
    garbage: each of its workloads fails with 502 naming what was wrong, and
    the gateway goes on serving."""
    env = srtest.Env("batchbroken")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    mode = {"cut": True}

    def rewrite(path, body):
        if path != "/v1/batch":
            return body
        return body[:-3] if mode["cut"] else b"\x01 not an item"

    proxy = TamperProxy(n["port"], flip_at=None, rewrite=rewrite)
    g = env.start_gateway("gs-test", [dict(n, url="http://127.0.0.1:%d" % proxy.port)])
    items = [(b"w%d" % i, []) for i in range(20)]
    got = post_many(g["port"], items)
    ok = [r for r in got if r["status"] == 200]
    bad = [r for r in got if r["status"] != 200]
    batches = proxy.paths.count("/v1/batch")
    check(batches >= 1, "they went in batches: %r" % proxy.paths)
    check(len(bad) == batches and all(r["status"] == 502 for r in bad),
          "one workload lost per cut answer (%d batches): %r"
          % (batches, [(r["status"], r["body"][:200]) for r in bad]))
    for r in bad:
        j = json.loads(r["body"])
        check("ends inside an item" in j["detail"]["why"] and j["detail"]["retry_safe"] is False,
              "%r" % j)
    check(all(r["body"] == p for r, (p, _) in zip(got, items) if r["status"] == 200),
          "the others got their own bytes")
    check(len(ok) == 20 - batches, "%d succeeded" % len(ok))
    mode["cut"] = False
    got = post_many(g["port"], [(b"v%d" % i, []) for i in range(20)])
    for r in got:
        if r["status"] == 200:
            continue  # went alone (not in a batch)
        j = json.loads(r["body"])
        check(r["status"] == 502 and "not a 4-element array" in j["detail"]["why"],
              "%s %r" % (r["status"], j))
    check(any(r["status"] == 502 for r in got), "some were in a garbled batch")
    # the gateway goes on serving (its target, whose answers were broken, may
    # be ejected for a while: 503 naming it is an answer too)
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", env.path("alpha.pub"))
    check(st == 200 or (st in (502, 503) and "error" in json.loads(body)),
          "still serving: %s %r" % (st, body[:200]))
    check(srtest.http_get(g["admin"], "/healthz")[0] == 200, "healthy")
    proxy.close()
    finish(env)


def test_node_answers_each_envelope_of_a_batch():
    """A batch POSTed to a node by hand: a genuine envelope, a tampered one,
    another genuine one, the first again, and one addressed elsewhere. Each
    gets the item it would have got alone: 200 with a result, 401 naming the
    bad signature, 200, 409 (a replay: the stored result or still running),
    421 misaddressed. Malformed batch messages get 400 or 413 naming what is
    wrong, and run nothing."""
    env = srtest.Env("batchnode")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    a = seal(gkey, "alpha", payload=b"first")
    t = bytearray(seal(gkey, "alpha", payload=b"tampered"))
    t[len(t) // 2] ^= 0x20
    b = seal(gkey, "alpha", payload=b"second")
    other = seal(gkey, "beta", payload=b"for beta")
    msg = b"".join(msgpack_bin(e) for e in (a, bytes(t), b, a, other))
    st, h, body = post_node(n["port"], "/v1/batch", msg)
    check(st == 200 and h.get("content-type") == "application/vnd.skyroute.batch+msgpack",
          "%s %r" % (st, h))
    items = {i[0]: i[1:] for i in read_items(body)}
    check(sorted(items) == [0, 1, 2, 3, 4], "one item per envelope: %r" % sorted(items))
    check(items[0][0] == 200 and items[0][1] == "application/vnd.msgpack", "%r" % (items[0],))
    check(items[2][0] == 200, "%r" % (items[2],))
    for k in (0, 2):
        p = env.path("r%d" % k)
        with open(p, "wb") as f:
            f.write(items[k][2])
        with open(p, "rb") as f:
            r = run([srtest.SKYROUTE, "open", "--trust", n["pub"]], input=f.read())
        check(r.returncode == 0 and r.stdout == (b"first", b"", b"second")[k],
              "result %d opens to its payload: %r %r" % (k, r.stdout, r.stderr))
    j = json.loads(items[1][2])
    check(items[1][0] == 401 and j["detail"]["code"] == "env_badsig", "%r" % (items[1],))
    check(items[3][0] == 409, "the repeat: %r" % (items[3][:2],))
    j = json.loads(items[4][2])
    check(j["detail"]["code"] == "env_misaddressed", "%r" % (items[4],))
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 2, "two ran")
    # malformed messages
    for what, body, want, words in (
            ("empty", b"", 400, "no envelope"),
            ("a str", b"\xa1x", 400, "offset 0 is not a bin"),
            ("cut short", b"\xc5\x01\x00abc", 400, "cut short"),
            ("257 envelopes", msgpack_bin(b"x") * 257, 413, "more than 256")):
        st, h, out = post_node(n["port"], "/v1/batch", body)
        j = json.loads(out)
        check(st == want and words in j["detail"]["why"] and j["error"] == "malformed batch",
              "%s: %s %r" % (what, st, j))
    st, h, out = srtest.curl(["http://127.0.0.1:%d/v1/batch" % n["port"]])
    check(st == 405, "GET /v1/batch: %s" % st)
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 2, "nothing more ran")
    finish(env)


def test_node_runs_each_handler_of_a_batch():
    """One batch POSTed to a node by hand, naming every kind of handler: echo,
    digest, compute, a configured command, a command that fails, a command
    not configured and a handler that does not exist. Each item is a sealed
    result: the output for those that ran, the reason for those that did not;
    each run is counted under its handler's name, and only the ones that
    started."""
    env = srtest.Env("batchhandlers")
    gkey, gpub = env.keygen("gs-test")
    conf = env.path("node.conf")
    with open(conf, "wb") as f:
        f.write(b"[node]\ngops = 100\n\n[exec.upper]\ncommand = tr a-z A-Z\n"
                b"\n[exec.fail]\ncommand = cat > /dev/null; exit 3\n")
    n = env.start_node("alpha", [gpub], extra=["--config", conf])
    envs = [seal(gkey, "alpha", "echo", b"one"), seal(gkey, "alpha", "digest", b"two"),
            run([srtest.SKYROUTE, "seal", "--key", gkey, "--to", "alpha", "--handler", "compute",
                 "--work", "5"], input=b"", check=True).stdout,
            seal(gkey, "alpha", "exec:upper", b"three"), seal(gkey, "alpha", "exec:fail", b"four"),
            seal(gkey, "alpha", "exec:nothere", b"five"), seal(gkey, "alpha", "nosuch", b"six")]
    st, h, body = post_node(n["port"], "/v1/batch", b"".join(msgpack_bin(e) for e in envs))
    check(st == 200, "%s %r" % (st, body[:200]))
    items = {i[0]: i[1:] for i in read_items(body)}
    check(sorted(items) == list(range(len(envs))), "one item per envelope: %r" % sorted(items))
    opened = {}
    for k, (ist, ctype, ibody) in items.items():
        check(ist == 200 and ctype == "application/vnd.msgpack", "item %d: %s %s" % (k, ist, ctype))
        r = run([srtest.SKYROUTE, "open", "--trust", n["pub"]], input=ibody)
        check(r.returncode == 0, "item %d opens: %r" % (k, r.stderr))
        opened[k] = r.stdout
    check(opened[0] == b"one", "echo: %r" % opened[0])
    want = hashlib.blake2b(b"two", digest_size=32).hexdigest().encode()
    check(opened[1] == want, "digest: %r" % opened[1])
    check(json.loads(opened[2])["work_gop"] == 5, "compute: %r" % opened[2])
    check(opened[3] == b"THREE", "exec:upper: %r" % opened[3])
    for k, words in ((4, b"exec:fail failed (exit status 3)"),
                     (5, b"no command configured for handler 'exec:nothere'"),
                     (6, b"unknown handler 'nosuch'")):
        check(opened[k] == b"" and words in items[k][2], "item %d says %r: %r" % (k, words,
                                                                              items[k][2]))
    runs = "skyroute_node_handler_runs_total"
    for name in ("echo", "digest", "compute", "exec:upper", "exec:fail"):
        check(srtest.metric(n["admin"], runs, 'handler="%s"' % name) == 1, "%s counted" % name)
    check(srtest.metric(n["admin"], runs) == 5, "nothing else counted")
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 5, "five ran")
    finish(env)


def test_a_satellite_node_delays_each_item_over_its_link():
    """A node emulating a satellite's link, in its pass: an envelope POSTed to
    /v1/exec and a batch POSTed to /v1/batch are held for the light time on
    the way up, and the result and each item on the way down; all arrive,
    each its own, and a repeat gets the stored result."""
    env = srtest.Env("batchemu")
    gkey, gpub = env.keygen("gs-test")
    station = "48.85,2.35,35"
    tle, aos, los = srtest.synthetic_pass(env, station, 70.0, 30)
    n = env.start_node("sat-1", [gpub], extra=["--emulate-link", tle, "--station", station,
                                               "--min-el", "70"])
    while time.time() < aos + 1.0:
        time.sleep(0.1)
    check(srtest.metric(n["admin"], "skyroute_node_link_up") == 1, "in the pass")
    alone = seal(gkey, "sat-1", payload=b"alone")
    st, h, body = post_node(n["port"], "/v1/exec", alone, ctype="application/vnd.msgpack")
    r = run([srtest.SKYROUTE, "open", "--trust", n["pub"]], input=body)
    check(st == 200 and r.stdout == b"alone", "/v1/exec: %s %r" % (st, r.stderr))
    envs = [seal(gkey, "sat-1", payload=b"item %d" % i) for i in range(5)] + [alone]
    st, h, body = post_node(n["port"], "/v1/batch", b"".join(msgpack_bin(e) for e in envs))
    items = {i[0]: i[1:] for i in read_items(body)}
    check(st == 200 and sorted(items) == list(range(6)), "%s: %r" % (st, sorted(items)))
    for k in range(5):
        r = run([srtest.SKYROUTE, "open", "--trust", n["pub"]], input=items[k][2])
        check(items[k][0] == 200 and r.stdout == b"item %d" % k, "item %d: %r" % (k, r.stdout))
    r = run([srtest.SKYROUTE, "open", "--trust", n["pub"]], input=items[5][2])
    check(items[5][0] == 409 and r.stdout == b"alone", "the repeat: %r" % (items[5][:2],))
    check(time.time() < los, "all within the pass")
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 6, "six ran")
    finish(env)


if __name__ == "__main__":
    srtest.run_tests([test_concurrent_workloads_share_requests,
                      test_one_signature_per_envelope_still_travels_together,
                      test_a_slow_handler_holds_back_no_other,
                      test_each_workload_keeps_its_deadline,
                      test_a_node_without_batches_gets_one_request_each,
                      test_broken_batch_answers_fail_only_what_they_lost,
                      test_node_answers_each_envelope_of_a_batch,
                      test_node_runs_each_handler_of_a_batch,
                      test_a_satellite_node_delays_each_item_over_its_link])
