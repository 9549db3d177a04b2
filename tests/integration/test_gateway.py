"""The gateway spine end to end: real skyrouted, real skyroute-node, real
clients (nghttp, curl, h2load, Python's h2) on loopback."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import h2.config
import hpack
import h2.connection
import h2.events
import h2.settings

import srtest
from srtest import check, run
from tamper_proxy import TamperProxy


def two_node_gateway(name, gops=None, extra_gateway="", node_extra=()):
    env = srtest.Env(name)
    gkey, gpub = env.keygen("gs-test")
    extra = list(node_extra)
    if gops:
        extra += ["--gops", str(gops)]
    a = env.start_node("alpha", [gpub], extra=extra)
    b = env.start_node("beta", [gpub], extra=extra)
    g = env.start_gateway("gs-test", [a, b], extra_gateway=extra_gateway)
    return env, g, a, b


def write(env, name, data):
    p = env.path(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def b2sum(path):
    r = run(["b2sum", "-l", "256", path], check=True)
    return r.stdout.split()[0].decode()


def finish(env):
    bad = env.close()
    check(not bad, "processes exited badly: %s" % [(p.sr_name, p.returncode) for p in bad])

# --------------------------------------------------------------------------------------

def test_cli_usage_and_version():
    for prog in (srtest.SKYROUTED, srtest.NODE, srtest.SKYROUTE):
        r = run([prog, "--help"])
        check(r.returncode == 0 and b"usage:" in r.stdout, "%s --help" % prog)
        r = run([prog, "--version"])
        check(r.returncode == 0 and b"0." in r.stdout, "%s --version" % prog)
        r = run([prog, "--no-such-option"])
        check(r.returncode == 2, "%s unknown option exit %d" % (prog, r.returncode))
        first = r.stderr.decode().splitlines()[0]
        check("no-such-option" in first or "unknown" in first, "one-line error: %r" % first)
        check(b"usage:" in r.stderr, "usage after the error")
    r = run([srtest.SKYROUTED])
    check(r.returncode == 2 and b"missing -c" in r.stderr, "skyrouted without -c")
    r = run([srtest.NODE, "--id", "x"])
    check(r.returncode == 2 and b"missing --listen" in r.stderr, "node missing --listen")
    r = run([srtest.SKYROUTE, "keygen"])
    check(r.returncode == 2, "keygen without --out is a usage error")


def test_check_config_names_the_line():
    env = srtest.Env("cfg")
    env.keygen("gw")
    env.keygen("alpha")
    good = "[gateway]\nid = gs\nkey = gw.key\nlisten = 127.0.0.1:0\n\n[idc.alpha]\nurl = http://127.0.0.1:9\npubkey = alpha.pub\n"
    p = write(env, "good.conf", good.encode())
    r = run([srtest.SKYROUTED, "-c", p, "--check-config"])
    check(r.returncode == 0 and b"OK" in r.stdout, "good config: %s" % r.stderr)
    cases = [
        (good.replace("listen =", "lisen ="), ":4:", "unknown key 'lisen'"),
        (good.replace("url = http://127.0.0.1:9", "url = ftp://x:1"), ":7:", "http://"),
        (good.replace("pubkey = alpha.pub", "pubkey = nope.pub"), ":8:", "nope.pub"),
        (good.replace("pubkey = alpha.pub\n", ""), ":6:", "needs 'pubkey'"),
        (good.replace("id = gs\n", ""), ":1:", "needs 'id'"),
        (good + "[wat]\nx = 1\n", ":9:", "unknown section"),
        (good + "garbage line\n", ":9:", "syntax"),
        (good.replace("[gateway]\n", "[gateway]\nmax_body = lots\n"), ":2:", "max_body"),
    ]
    for i, (text, line, phrase) in enumerate(cases):
        p = write(env, "bad%d.conf" % i, text.encode())
        r = run([srtest.SKYROUTED, "-c", p, "--check-config"])
        err = r.stderr.decode()
        check(r.returncode == 1, "case %d should fail: %s" % (i, err))
        check(line in err and phrase in err, "case %d: want %s and %r in %r" % (i, line, phrase, err))
    finish(env)


def test_payload_sizes_digest_nghttp_and_curl():
    env, g, a, b = two_node_gateway("sizes")
    url = g["url"] + "/v1/workloads"
    for size in (0, 1024, 1 << 20) if srtest.VALGRIND else (0, 1024, 1 << 20, 16 << 20):
        p = write(env, "p%d.bin" % size, os.urandom(size))
        want = b2sum(p)
        st, h, body = srtest.curl_post(url, p, ["skyroute-handler: digest"])
        check(st == 200, "curl %d: status %s %r" % (size, st, body[:200]))
        check(body.decode() == want, "curl %d: digest %r != %s" % (size, body[:80], want))
        check(h.get("skyroute-target") in ("alpha", "beta"), "target header")
        check(len(h.get("skyroute-id", "")) == 32, "id header")
        for k in ("skyroute-predicted-ms", "skyroute-elapsed-ms", "skyroute-signer"):
            check(k in h, "missing %s" % k)
        st, h, body = srtest.nghttp_post(url, p, ["skyroute-handler: digest"])
        check(st == 200, "nghttp %d: status %s" % (size, st))
        check(body.decode() == want, "nghttp %d: digest mismatch" % size)
        check(h["skyroute-signer"].split()[0] == h["skyroute-target"], "signer is the target")
# echo returns the payload itself
    p = write(env, "echo.bin", os.urandom(4096))
    st, h, body = srtest.curl_post(url, p)
    check(st == 200 and body == open(p, "rb").read(), "echo round trip")
    finish(env)


def test_h2load_1000_concurrent_streams():
    env, g, a, b = two_node_gateway("h2load")
    p = write(env, "1k.bin", os.urandom(1024))
    r = run(["h2load", "-c", "10", "-m", "100", "-n", "5000", "-d", p,
             "-H", "skyroute-handler: echo", g["url"] + "/v1/workloads"], timeout=300)
    out = r.stdout.decode()
    line = [l for l in out.splitlines() if l.startswith("requests:")][0]
    check("5000 succeeded, 0 failed, 0 errored" in line, line)
    codes = [l for l in out.splitlines() if l.startswith("status codes:")][0]
    check("5000 2xx" in codes, codes)
    check(srtest.metric(g["admin"], "skyroute_requests_total", 'code="200"') == 5000, "metric count")
    # under 1,000 streams envelopes share signatures (SR2 batches), and the
    # nodes batch their results; every one was still verified (all 200 above)
    sigs = srtest.metric(g["admin"], "skyroute_envelope_signatures_total")
    sealed = srtest.metric(g["admin"], "skyroute_envelopes_sealed_total")
    check(sealed == 5000 and 0 < sigs < sealed,
          "5000 envelopes under fewer signatures: %d under %d" % (sealed, sigs))
    node_sigs = sum(srtest.metric(n["admin"], "skyroute_node_signatures_total") for n in (a, b))
    node_sealed = sum(srtest.metric(n["admin"], "skyroute_node_results_sealed_total")
                      for n in (a, b))
    check(node_sealed == 5000 and 0 < node_sigs < node_sealed,
          "5000 results under fewer signatures: %d under %d" % (node_sealed, node_sigs))
    print("    batches at 1,000 streams: gateway %.1f, nodes %.1f envelopes per signature"
          % (sealed / sigs, node_sealed / node_sigs))
    # envelope_batch = auto (the default) lets a batch pass 32 when many are
    # in flight: an eighth of the 1,000 here (sr_envelope_batch_auto)
    check(sealed / sigs > 32, "auto batches stayed at %.1f envelopes per signature with 1,000 "
          "streams in flight" % (sealed / sigs))
    # and the nodes answer in batches as large as the trees their workloads came in
    check(node_sealed / node_sigs > 32, "the nodes' auto batches stayed at %.1f results per "
          "signature under gateway batches of %.1f" % (node_sealed / node_sigs, sealed / sigs))
    finish(env)


test_h2load_1000_concurrent_streams.heavy = True


def test_fixed_envelope_batch_caps_signatures():
    """envelope_batch = N (and --envelope-batch N) is a hard cap, whatever the load."""
    env, g, a, b = two_node_gateway("batch20", extra_gateway="envelope_batch = 20",
                                    node_extra=["--envelope-batch", "20"])
    p = write(env, "1k.bin", os.urandom(1024))
    r = run(["h2load", "-c", "10", "-m", "100", "-n", "3000", "-d", p,
             "-H", "skyroute-handler: echo", g["url"] + "/v1/workloads"], timeout=300)
    out = r.stdout.decode()
    check("3000 succeeded, 0 failed, 0 errored" in out, out[-600:])
    sigs = srtest.metric(g["admin"], "skyroute_envelope_signatures_total")
    sealed = srtest.metric(g["admin"], "skyroute_envelopes_sealed_total")
    check(sealed == 3000 and 3000 / 20 <= sigs < 3000,
          "gateway: 3000 envelopes under %d signatures, want 150 to 2999" % sigs)
    for n in (a, b):
        nsigs = srtest.metric(n["admin"], "skyroute_node_signatures_total")
        nsealed = srtest.metric(n["admin"], "skyroute_node_results_sealed_total")
        check(nsealed > 0 and nsealed / 20 <= nsigs < nsealed,
              "%s: %d results under %d signatures, want at most 20 per signature"
              % (n["id"], nsealed, nsigs))
    r = run([srtest.NODE, "--id", "x", "--listen", "127.0.0.1:1", "--key", g["key"],
             "--envelope-batch", "0"])
    check(r.returncode == 2 and b"--envelope-batch must be auto or an integer in [1, 1024]"
          in r.stdout + r.stderr, "node --envelope-batch 0: %r" % (r.stdout + r.stderr))
    finish(env)


test_fixed_envelope_batch_caps_signatures.heavy = True


def h2_wide_client():
    """An h2 client connection with 16 MiB stream and 64 MiB connection
    windows: it never holds a sender back."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 << 20})
    c.initiate_connection()
    c.increment_flow_control_window(64 << 20)
    return c


def take_answers(c, data, status, got, ended, headers=None):
    """Feeds received bytes to h2 connection |c|, collecting each stream's
    status, body and end (and, given |headers|, its header tuples as hpack
    decoded them); a reset stream or connection fails the test."""
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived):
            status[e.stream_id] = dict(e.headers).get(":status")
            if headers is not None:
                headers[e.stream_id] = e.headers
        elif isinstance(e, h2.events.DataReceived):
            got[e.stream_id] += e.data
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            ended.add(e.stream_id)
        elif isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
            check(False, "stream or connection reset: %r" % e)


def test_response_ids_stay_out_of_the_hpack_table():
    """skyroute-id, -predicted-ms and -elapsed-ms differ from response to
    response: they come as never-indexed HPACK literals, so they never fill the
    client's dynamic table, while the constant headers are indexed as usual."""
    env, g, a, b = two_node_gateway("hpack")
    s = socket.create_connection(("127.0.0.1", g["port"]), timeout=30)
    c = h2_wide_client()
    s.sendall(c.data_to_send())
    unique = ("skyroute-id", "skyroute-predicted-ms", "skyroute-elapsed-ms")
    ids = set()
    for i in range(40):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                             (":path", "/v1/workloads"), ("content-length", "5"),
                             ("skyroute-handler", "echo")])
        c.send_data(sid, b"hello", end_stream=True)
        s.sendall(c.data_to_send())
        status, body, ended, hdrs = {}, {sid: bytearray()}, set(), {}
        deadline = time.time() + 20
        while sid not in ended and time.time() < deadline:
            data = s.recv(65536)
            check(data, "the gateway closed the connection")
            take_answers(c, data, status, body, ended, hdrs)
            s.sendall(c.data_to_send())
        check(sid in ended and body[sid] == b"hello", "request %d: %r" % (i, body[sid]))
        got = {h[0]: h for h in hdrs[sid]}
        for name in unique:
            check(isinstance(got.get(name), hpack.NeverIndexedHeaderTuple),
                  "request %d: %s is %r, not a never-indexed literal" % (i, name, got.get(name)))
        for name in ("content-type", "skyroute-target", "skyroute-signer"):
            check(got.get(name) is not None and got[name].indexable,
                  "request %d: %s is %r" % (i, name, got.get(name)))
        ids.add(got["skyroute-id"][1])
    s.close()
    check(len(ids) == 40, "40 distinct ids: %d" % len(ids))
    table = [n.decode() if isinstance(n, bytes) else n
             for n, _ in c.decoder.header_table.dynamic_entries]
    check(not set(table) & set(unique), "the client's HPACK table holds %s" % table)
    check("skyroute-signer" in table, "the constant headers were indexed: %s" % table)
    finish(env)


def test_large_echoes_to_a_slow_reader_arrive_intact():
    """Many large responses to a client that stops reading: the gateway's
    direct socket writes meet a full socket and fall back to the queued
    path, and everything arrives byte for byte once the client reads;
    meanwhile h2load's 64 KiB bodies at 400 streams all succeed."""
    env, g, a, b = two_node_gateway("slowreader")
    # 8 MiB of answers: more than the kernel buffers between us can hold
    # (tcp_wmem's 4 MiB ceiling plus our small receive buffer)
    n, size = 32, 256 * 1024
    bodies = {1 + 2 * i: os.urandom(size) for i in range(n)}
    s = socket.create_connection(("127.0.0.1", g["port"]), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c = h2_wide_client()
    for sid, body in bodies.items():
        c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                             (":path", "/v1/workloads"), ("content-length", str(size)),
                             ("skyroute-handler", "echo")])
    s.sendall(c.data_to_send())
    left = dict(bodies)  # sent as the gateway's windows allow
    got = {sid: bytearray() for sid in bodies}
    status, ended = {}, set()
    slept = False
    deadline = time.time() + 120
    while len(ended) < n and time.time() < deadline:
        for sid in list(left):
            room = min(c.local_flow_control_window(sid), len(left[sid]), c.max_outbound_frame_size)
            while room > 0:
                c.send_data(sid, left[sid][:room], end_stream=(room == len(left[sid])))
                left[sid] = left[sid][room:]
                room = min(c.local_flow_control_window(sid), len(left[sid]),
                           c.max_outbound_frame_size) if left[sid] else 0
            if not left[sid]:
                del left[sid]
        s.sendall(c.data_to_send())
        if not left and not slept:
            time.sleep(2)  # all sent: now let the gateway's answers pile up unread
            slept = True
        data = s.recv(65536)
        if not data:
            break
        take_answers(c, data, status, got, ended)
        s.sendall(c.data_to_send())
    s.close()
    check(len(ended) == n, "all %d streams ended (%d)" % (n, len(ended)))
    for sid, body in bodies.items():
        check(status.get(sid) == "200", "stream %d: status %s" % (sid, status.get(sid)))
        check(bytes(got[sid]) == body, "stream %d: %d bytes back, intact: %s" %
              (sid, len(got[sid]), bytes(got[sid]) == body))
    p = write(env, "64k.bin", os.urandom(65536))
    r = run(["h2load", "-c", "4", "-m", "100", "-n", "1200", "-d", p,
             "-H", "skyroute-handler: echo", g["url"] + "/v1/workloads"], timeout=300)
    line = [l for l in r.stdout.decode().splitlines() if l.startswith("requests:")][0]
    check("1200 succeeded, 0 failed, 0 errored" in line, line)
    finish(env)


test_large_echoes_to_a_slow_reader_arrive_intact.heavy = True


def seal(env, key, to, handler="echo", deadline=60000, payload=b"hello"):
    r = run([srtest.SKYROUTE, "seal", "--key", key, "--to", to, "--handler", handler,
             "--deadline-ms", str(deadline)], input=payload, check=True)
    return r.stdout


def post_raw(port, path, body):
    p = "/tmp/sr-raw-%d-%d" % (os.getpid(), threading.get_ident())
    with open(p, "wb") as f:
        f.write(body)
    st, h, out = srtest.curl_post("http://127.0.0.1:%d%s" % (port, path), p)
    os.unlink(p)
    return st, h, out


def test_hostile_envelopes_refused_by_node():
    env = srtest.Env("hostile")
    gkey, gpub = env.keygen("gw")
    evil_key, _ = env.keygen("evil")
    n = env.start_node("alpha", [gpub])
    port, admin = n["port"], n["admin"]

    good = seal(env, gkey, "alpha")
    st, h, body = post_raw(port, "/v1/exec", good)
    check(st == 200, "good envelope accepted: %s %r" % (st, body[:200]))

    cases = []
    t = bytearray(seal(env, gkey, "alpha", payload=b"tamper me"))
    t[len(t) // 2] ^= 0x20
    cases.append(("tampered", bytes(t), 401, "env_badsig"))
    cases.append(("replayed", good, 409, "env_replay"))
    exp = seal(env, gkey, "alpha", deadline=1)
    time.sleep(0.05)
    cases.append(("expired", exp, 410, "env_expired"))
    cases.append(("misaddressed", seal(env, gkey, "beta"), 421, "env_misaddressed"))
    cases.append(("untrusted", seal(env, evil_key, "alpha"), 401, "env_untrusted"))
    cases.append(("truncated", good[:-7], 400, "env_truncated"))
    cases.append(("not an envelope", b"GET / HTTP/1.1", 400, "env_format"))
    cases.append(("short array", b"\x93\x01\x02", 400, "env_truncated"))
    for name, data, want, reason in cases:
        before = srtest.metric(admin, "skyroute_node_rejected_total", 'reason="%s"' % reason)
        st, h, body = post_raw(port, "/v1/exec", data)
        check(st == want, "%s: status %s, want %s: %r" % (name, st, want, body[:200]))
        if st != 409:
            j = json.loads(body)
            check(j["error"] and j["detail"]["code"] == reason, "%s: %r" % (name, j))
        after = srtest.metric(admin, "skyroute_node_rejected_total", 'reason="%s"' % reason)
        check(after == before + 1, "%s counted under %s" % (name, reason))
# the replay carried the stored result, and the handler ran once
    check(srtest.metric(admin, "skyroute_node_executed_total") == 1, "executed once")
    finish(env)


def upload_interleaved(port, bodies, reset=(), chunk=4096, wait_for=None, timeout=60):
    """Opens h2c to a node, sends the bodies round robin, |chunk| bytes per
    stream per pass, as far as each stream's window allows (a sender that has
    them all under way at once), resets the streams in |reset| once their
    headers are out, and reads the answers. Returns the node's initial stream
    window, the order in which the bodies went out whole, the most bodies at
    once that had passed the first 16 KiB without being whole, and per stream
    (status, response body). Waits for the answers to |wait_for| (default:
    every stream not reset)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c = h2_wide_client()
    s.sendall(c.data_to_send())
    c.receive_data(s.recv(65536))  # the node's SETTINGS: windows are its own from here
    s.sendall(c.data_to_send())
    window0 = c.remote_settings.initial_window_size
    left = {}
    for sid, body in bodies.items():
        c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "node"),
                             (":path", "/v1/exec"), ("content-length", str(len(body)))])
        left[sid] = body
    for sid in reset:
        c.reset_stream(sid)
        del left[sid]
    s.sendall(c.data_to_send())
    sent = {sid: 0 for sid in left}
    wait_for = set(left) if wait_for is None else set(wait_for)
    whole, most = [], 0
    status, got, ended = {}, {sid: bytearray() for sid in bodies}, set()
    deadline = time.time() + timeout
    while not wait_for <= ended and time.time() < deadline:
        more = False  # a stream still has window for what it has left
        for sid in sorted(left):
            room = min(c.local_flow_control_window(sid), len(left[sid]), chunk)
            if room > 0:
                c.send_data(sid, left[sid][:room], end_stream=(room == len(left[sid])))
                left[sid] = left[sid][room:]
                sent[sid] += room
                if not left[sid]:
                    del left[sid]
                    whole.append(sid)
                elif c.local_flow_control_window(sid) > 0:
                    more = True
        most = max(most, sum(1 for sid in left if sent[sid] > 16384))
        s.sendall(c.data_to_send())
        s.setblocking(False) if more else s.settimeout(max(0.1, deadline - time.time()))
        try:
            data = s.recv(1 << 20)
        except (BlockingIOError, socket.timeout):
            continue
        if not data:
            break
        take_answers(c, data, status, got, ended)
        s.sendall(c.data_to_send())
    s.close()
    return window0, whole, most, {sid: (status.get(sid), bytes(got[sid])) for sid in bodies}


def test_node_takes_large_envelopes_a_few_at_a_time():
    """--upload-slots: a sender with many large envelopes under way at once
    gets window for N of them per connection, oldest first, so they arrive
    whole one after another; a stream reset while it waits gives up its
    place; with 0, all are let through at once, interleaved."""
    env = srtest.Env("slots")
    gkey, gpub = env.keygen("gw")
    for bad in ("-1", "1001", "2.5", "many"):
        r = run([srtest.NODE, "--upload-slots", bad, "--id", "x"])
        check(r.returncode == 2 and b"--upload-slots must be an integer in [0, 1000]" in r.stderr,
              "--upload-slots %s refused: %d %r" % (bad, r.returncode, r.stderr[:200]))
    payloads = [os.urandom(100 * 1024) for _ in range(12)]
    for slots in (2, 0):
        node = env.start_node("n%d" % slots, [gpub], admin=False,
                              extra=["--upload-slots", str(slots)])
        bodies = {1 + 2 * i: seal(env, gkey, "n%d" % slots, payload=p)
                  for i, p in enumerate(payloads)}
        window0, whole, most, res = upload_interleaved(node["port"], bodies, reset=(5,))
        for sid, (st, body) in res.items():
            if sid == 5:
                check(st is None, "the reset stream got no answer: %s" % st)
                continue
            check(st == "200", "slots %d, stream %d: status %s %r" % (slots, sid, st, body[:200]))
            check(payloads[(sid - 1) // 2] in body, "slots %d, stream %d: payload echoed" %
                  (slots, sid))
        if slots:
            check(window0 == 16384, "initial stream window 16 KiB, got %s" % window0)
            check(most == 2, "at most 2 bodies past 16 KiB at once, got %d" % most)
            check(whole == [1, 3] + list(range(7, 24, 2)), "whole oldest first, got %s" % whole)
        else:
            check(window0 == 1 << 20, "initial stream window 1 MiB, got %s" % window0)
            check(most == 11, "all 11 bodies under way at once, got %d" % most)
        env.stop(node["proc"])

    # Waiting streams give their first 16 KiB back to the connection's
    # window: 999 of them hold 15.6 MiB of the node's 16 MiB, and the one
    # granted body, 4 MiB, must still get through.
    node = env.start_node("nc", [gpub], admin=False, extra=["--upload-slots", "1"])
    big = os.urandom(4 << 20)
    bodies = {1: seal(env, gkey, "nc", payload=big)}
    junk = os.urandom(1 << 20)
    for i in range(1, 1000):
        bodies[1 + 2 * i] = junk
    res = upload_interleaved(node["port"], bodies, chunk=16384, wait_for=[1])[-1]
    st, body = res[1]
    check(st == "200" and big in body, "the granted 4 MiB body went through: %s" % st)
    finish(env)


def test_gateway_sends_large_envelopes_a_few_at_a_time():
    """The gateway has at most 8 envelopes above 16 KiB under way at once
    on a connection to a target, so a burst of large workloads reaches the
    node whole one after another instead of interleaved frame by frame (a
    watching proxy between them counts the bodies it sees under way)."""
    env = srtest.Env("sendslots")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    proxy = TamperProxy(n["port"], flip_at=None)
    g = env.start_gateway("gs-test", [dict(n, url="http://127.0.0.1:%d" % proxy.port)])
    p = write(env, "64k.bin", os.urandom(65536))
    r = run(["h2load", "-c", "1", "-m", "40", "-n", "40", "-d", p, g["url"] + "/v1/workloads"],
            timeout=120)
    line = [l for l in r.stdout.decode().splitlines() if l.startswith("requests:")][0]
    check("40 succeeded, 0 failed, 0 errored" in line, line)
    check(2 <= proxy.most_partial <= 8, "2 to 8 bodies under way at once, saw %d" %
          proxy.most_partial)
    proxy.close()
    finish(env)


def test_gateway_sends_the_earliest_deadline_first():
    """Among large envelopes waiting for a send slot, the one whose workload
    must finish first goes first. Behind a slow link (a proxy reading 64 KiB
    per 20 ms), 24 bulk workloads of 1 MiB with a minute to spare are under
    way when one of 64 KiB with 20 s arrives: it reaches the node well before
    the bulk that waited ahead of it (oldest first, it would come last)."""
    env = srtest.Env("edf")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    proxy = TamperProxy(n["port"], flip_at=None, read_delay=0.02)
    g = env.start_gateway("gs-test", [dict(n, url="http://127.0.0.1:%d" % proxy.port)])
    url = g["url"] + "/v1/workloads"
    bulk = write(env, "bulk.bin", os.urandom(1 << 20))
    urgent = write(env, "urgent.bin", os.urandom(65536))
    h = subprocess.Popen(["h2load", "-c", "1", "-m", "24", "-n", "24", "-d", bulk,
                          "-H", "skyroute-deadline-ms: 60000", url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    st, hdrs, body = srtest.curl_post(url, urgent, headers=["skyroute-deadline-ms: 20000"])
    # the bulk still waiting shows on /metrics (a gauge set every second)
    waiting = []
    while h.poll() is None:
        waiting.append(srtest.metric(g["admin"], "skyroute_target_bodies_waiting",
                                     'target="alpha"'))
        time.sleep(0.2)
    out = h.communicate(timeout=120)[0].decode()
    check(st == 200 and len(body) == 65536, "the urgent workload: %s, %d bytes" % (st, len(body)))
    line = [l for l in out.splitlines() if l.startswith("requests:")][0]
    check("24 succeeded, 0 failed, 0 errored" in line, line)
    check(len(proxy.whole) == 25, "25 bodies reached the node: %s" % proxy.whole)
    at = [i for i, size in enumerate(proxy.whole) if size < 512 * 1024]
    check(len(at) == 1 and 1 <= at[0] <= 16,
          "the urgent one reached the node after 1 to 16 of the bulk: %s" % at)
    check(max(waiting) >= 1, "bodies waiting for a send slot, as /metrics saw it: %s" % waiting)
    time.sleep(1.2)
    check(srtest.metric(g["admin"], "skyroute_target_bodies_waiting", 'target="alpha"') == 0,
          "none waiting once all went")
    proxy.close()
    finish(env)


test_gateway_sends_the_earliest_deadline_first.heavy = True


def test_replay_guard_drops_oldest_results_within_its_memory():
    """A node with little replay memory keeps the newest results: a re-sent
    old envelope is refused as 409 result_dropped (it never runs twice), a
    re-sent recent one still gets its stored result."""
    env = srtest.Env("replaymem")
    gkey, gpub = env.keygen("gw")
    n = env.start_node("alpha", [gpub], extra=["--replay-memory", "4000"])
    port, admin = n["port"], n["admin"]
    sealed, results = [], []
    for i in range(4):  # each result about 1.2 KB: by the fourth the first is pushed out
        e = seal(env, gkey, "alpha", payload=bytes([65 + i]) * 1024)
        st, h, body = post_raw(port, "/v1/exec", e)
        check(st == 200, "envelope %d ran: %s" % (i, st))
        sealed.append(e)
        results.append(body)
    st, h, body = post_raw(port, "/v1/exec", sealed[0])
    check(st == 409, "the oldest re-sent: %s" % st)
    j = json.loads(body)
    check(j["detail"]["code"] == "result_dropped" and "no longer held" in j["detail"]["why"],
          "said why: %r" % j)
    st, h, body = post_raw(port, "/v1/exec", sealed[3])
    check(st == 409 and h.get("skyroute-replay") == "stored-result" and body == results[3],
          "the newest re-sent gets its stored result: %s %s" % (st, h.get("skyroute-replay")))
    # a result larger than the whole replay memory is not kept: a re-send is
    # told result_dropped too, not "still running"
    big = seal(env, gkey, "alpha", payload=b"Z" * 5000)
    st, h, body = post_raw(port, "/v1/exec", big)
    check(st == 200, "the large envelope ran: %s" % st)
    st, h, body = post_raw(port, "/v1/exec", big)
    j = json.loads(body)
    check(st == 409 and j["detail"]["code"] == "result_dropped",
          "the large one re-sent: %s %r" % (st, j))
    check(srtest.metric(admin, "skyroute_node_executed_total") == 5, "each ran once")
    dropped = srtest.metric(admin, "skyroute_node_replay_results_dropped_total")
    check(dropped >= 2, "dropped results counted: %s" % dropped)
    check(srtest.metric(admin, "skyroute_node_replay_ids") == 5, "all five ids still held")
    finish(env)


def test_result_dropped_at_the_target_fails_at_once():
    """A spooled workload ran at its target, its result was lost on the way
    back, and the target's replay guard then dropped that result to make room.
    The spool sends the same envelope there again (it may have run), gets 409
    result_dropped, and fails the workload at once with 502, retry_safe false:
    no second run, and no further re-sends that could never bring it back."""
    env = srtest.Env("dropped")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--replay-memory", "4000"])
    proxy = TamperProxy(n["port"], lose_first=1)
    g = env.start_gateway("gs-test", [dict(n, url="http://127.0.0.1:%d" % proxy.port)])
    fillers = [seal(env, gkey, "alpha", payload=bytes([97 + i]) * 1024) for i in range(4)]
    p = write(env, "w.bin", b"W" * 1024)
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-H", "prefer: respond-async",
             "--data-binary", "@" + p, g["url"] + "/v1/workloads"])
    head, _, body = r.stdout.decode().partition("\r\n\r\n")
    check(head.startswith("HTTP/2 202"), "accepted into the spool: %r" % head)
    wid = json.loads(body)["id"]
    check(proxy.lost.wait(15), "the first result was lost on its way back")
    # before the spool's re-send goes through: four newer results (about 1.2 KB
    # each) push the lost one out of the node's 4,000 bytes of replay memory
    for i, e in enumerate(fillers):
        st, _, _ = post_raw(n["port"], "/v1/exec", e)
        check(st == 200, "filler %d ran: %s" % (i, st))
    proxy.go.set()
    end = time.time() + 15
    while True:
        st, h, out = srtest.curl([g["url"] + "/v1/workloads/" + wid])
        if st != 202 or time.time() > end:
            break
        time.sleep(0.1)
    check(st == 502, "failed with 502: %s %r" % (st, out[:300]))
    j = json.loads(out)
    check(j["state"] == "failed" and "no longer holds its result" in j["reason"], "why: %r" % j)
    check(j["detail"]["retry_safe"] is False and j["detail"]["target"] == "alpha", "%r" % j)
    time.sleep(2.5)  # two more re-sends' time, had the spool kept trying
    dropped = srtest.metric(g["admin"], "skyroute_dispatch_total",
                            'target="alpha",outcome="result_dropped"')
    check(dropped == 1, "one re-send answered result_dropped, then no more: %s" % dropped)
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 5,
          "the workload ran once (and the four fillers once each)")
    proxy.close()
    finish(env)


def test_tampered_result_never_reaches_client():
    env = srtest.Env("tamper")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    proxy = TamperProxy(n["port"])
    target = dict(n, url="http://127.0.0.1:%d" % proxy.port)
    g = env.start_gateway("gs-test", [target])
    secret = b"the payload comes back only if the result verifies"
    p = write(env, "secret.bin", secret)
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p)
    check(proxy.tampered >= 1, "proxy tampered with the result")
    check(st == 502, "status %s" % st)
    j = json.loads(body)
    check("verification" in j["error"], j["error"])
    check(secret not in body, "payload must not leak")
    check(srtest.metric(g["admin"], "skyroute_signature_failures_total") >= 1, "counted")
    proxy.close()
    finish(env)


def test_node_killed_mid_flight():
    env, g, a, b = two_node_gateway("kill", gops=1)
    url = g["url"] + "/v1/workloads"
    p = write(env, "w.bin", b"x" * 100)
    results = []

    def submit():
        t0 = time.time()
        st, h, body = srtest.curl_post(url, p, ["skyroute-handler: compute", "skyroute-work: 5",
                                                "skyroute-place: target:alpha",
                                                "skyroute-deadline-ms: 30000"])
        results.append((st, time.time() - t0, body))

    threads = [threading.Thread(target=submit) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    a["proc"].kill()
    killed_at = time.time()
    for t in threads:
        t.join(40)
    check(len(results) == 5, "all requests ended")
    for st, dt, body in results:
        check(st in (502, 503), "in-flight ended with 502/503, got %s %r" % (st, body[:200]))
        check(dt < 5, "ended well within the deadline (%.1fs)" % dt)
        j = json.loads(body)
        check(j["error"] and j["detail"], "clear JSON error: %r" % j)
    check(time.time() - killed_at < 5, "errors came quickly after the kill")
    st, _ = srtest.http_get(g["admin"], "/healthz")
    check(st == 200, "gateway still up")
    for i in range(5):
        st, h, body = srtest.curl_post(url, p)
        check(st == 200 and h["skyroute-target"] == "beta", "new work goes to beta: %s %s" % (st, h))
    finish(env)


def h2_raw(port, send, timeout=3.0):
    """Opens h2c, lets `send(conn)` queue frames, returns (events, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
        normalize_outbound_headers=False))
    c.initiate_connection()
    send(c)
    s.sendall(c.data_to_send())
    events, closed = [], False
    end = time.time() + timeout
    while time.time() < end:
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            closed = True
            break
        try:
            evs = c.receive_data(data)
        except Exception as e:  # a protocol error on our side of the parse
            events.append(e)
            break
        events += evs
        s.sendall(c.data_to_send())
        if any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset,
                              h2.events.ConnectionTerminated)) for e in evs):
            break
    s.close()
    return events, closed


def test_garbage_bad_headers_limits_and_unknown_paths():
    env, g, a, b = two_node_gateway("abuse", extra_gateway="max_body = 2097152")
    port = g["port"]
# garbage bytes: the connection ends, the gateway lives
    for junk in (os.urandom(4096), b"\x00" * 100, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.sendall(junk)
        try:
            got = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            got = b""
        s.close()
        if junk.startswith(b"GET"):
            check(b"505" in got and b"HTTP/2" in got, "HTTP/1.1 on the h2 port is told why: %r" % got)

# invalid header field names and a missing :path: stream errors, connection survives
    def bad_headers(c):
        c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                           (":path", "/v1/workloads"), ("Bad Header", "1")], end_stream=True)

    evs, closed = h2_raw(port, bad_headers)
    check(any(isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated))
              or getattr(e, "headers", None) and dict(e.headers).get(":status", "200")[0] == "4"
              for e in evs), "bad header refused: %r" % evs)

    def no_path(c):
        c.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x")],
                       end_stream=True)

    evs, closed = h2_raw(port, no_path)
    check(any(isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated)) for e in evs),
          "missing :path refused: %r" % evs)

# HEAD: the headers GET would get (content-length too), and no body at all
    def head(c):
        c.send_headers(1, [(":method", "HEAD"), (":scheme", "http"), (":authority", "x"),
                           (":path", "/v1/workloads")], end_stream=True)

    evs, closed = h2_raw(port, head)
    resp = [dict(e.headers) for e in evs if isinstance(e, h2.events.ResponseReceived)]
    check(resp and resp[0][":status"] == "405" and int(resp[0]["content-length"]) > 0,
          "HEAD answered with GET's headers: %r" % evs)
    check(any(isinstance(e, h2.events.StreamEnded) for e in evs) and
          not any(isinstance(e, (h2.events.DataReceived, Exception)) for e in evs),
          "and no body: %r" % evs)

# over-limit body: 413 with a JSON error
    p = write(env, "big.bin", os.urandom(3 << 20))
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p)
    check(st == 413 and json.loads(body)["detail"]["max_body_bytes"] == 2097152, "413: %s" % st)
# declared content-length over the limit is refused before the body arrives
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p, ["content-length: 3145728"])
    check(st == 413, "413 on content-length")

# unknown path, wrong method, bad header values
    small = write(env, "s.bin", b"abc")
    st, h, body = srtest.curl_post(g["url"] + "/nope", small)
    check(st == 404 and json.loads(body)["error"], "404 JSON")
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
             g["url"] + "/v1/workloads"])
    check(r.stdout == b"405", "GET /v1/workloads is 405: %r" % r.stdout)
    for hdr in ("skyroute-deadline-ms: soon", "skyroute-work: -1", "skyroute-work: nan",
                "skyroute-place: moon", "skyroute-result-bytes: 1e999"):
        st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", small, [hdr])
        check(st == 400, "%s -> %s" % (hdr, st))
        check(hdr.split(":")[0] in body.decode(), "error names the header: %r" % body)
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", small,
                                   ["skyroute-place: target:nobody"])
    check(st == 422, "unknown target 422")
# GET /v1/route: a parameter that is there but unusable is refused by name,
# never taken as absent (too long, a %00 in it, a format nobody asked for)
    for q, want, param in (("work=" + "1" * 70, 400, "work"), ("place=target:alpha%00x", 400, "place"),
                           ("data_at=" + "x" * 200, 400, "data_at"), ("format=xml", 400, "format"),
                           ("async=" + "1" * 20, 400, "async"), ("work=1&format=text", 200, None),
                           ("place=target:alpha&deadline_ms=60000", 200, None)):
        st, h, body = srtest.curl([g["url"] + "/v1/route?" + q])
        check(st == want, "GET /v1/route?%s: %s %r" % (q[:40], st, body[:200]))
        if param:
            check(json.loads(body)["detail"]["parameter"] == param, "names %s: %r" % (param, body))
# still serving
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", small)
    check(st == 200 and body == b"abc", "still serving after abuse")
    finish(env)


def test_admin_http1_and_h2():
    env, g, a, b = two_node_gateway("admin")
    st, text = srtest.http_get(g["admin"], "/healthz")
    check(st == 200 and text == "ok\n", "healthz over HTTP/1.1")
    st, text = srtest.http_get(g["admin"], "/readyz")
    check(st == 200, "readyz")
    st, text = srtest.http_get(g["admin"], "/metrics")
    check("# TYPE skyroute_requests_total counter" in text, "prometheus text")
    st, text = srtest.http_get(g["admin"], "/nope")
    check(st == 404, "admin 404")
    r = run(["nghttp", "-v", "http://127.0.0.1:%d/healthz" % g["admin"]])
    check(b":status: 200" in r.stdout, "healthz over h2")
    r = run(["curl", "-sS", "--http2-prior-knowledge", "http://127.0.0.1:%d/metrics" % a["admin"]])
    check(b"skyroute_node_executed_total 0" in r.stdout, "node metrics over h2: %r" % r.stdout[:300])
    finish(env)


def test_exec_and_compute_handlers():
    env = srtest.Env("exec")
    gkey, gpub = env.keygen("gs-test")
    conf = write(env, "node.conf", b"[node]\ngops = 2\n\n[exec.upper]\ncommand = tr a-z A-Z\n"
                 b"\n[exec.slow]\ncommand = sleep 5\ntimeout_ms = 200\n"
                 b"\n[exec.chatty]\ncommand = head -c 100000 /dev/zero\nmax_output = 1000\n")
    n = env.start_node("alpha", [gpub], extra=["--config", conf])
    g = env.start_gateway("gs-test", [n])
    url = g["url"] + "/v1/workloads"
    p = write(env, "in.txt", b"hello orbit")
    st, h, body = srtest.curl_post(url, p, ["skyroute-handler: exec:upper"])
    check(st == 200 and body == b"HELLO ORBIT", "exec:upper %s %r" % (st, body))
    t0 = time.time()
    st, h, body = srtest.curl_post(url, p, ["skyroute-handler: exec:slow"])
    check(st == 502 and "time limit" in body.decode() and time.time() - t0 < 3, "exec timeout")
    st, h, body = srtest.curl_post(url, p, ["skyroute-handler: exec:chatty"])
    check(st == 502 and "more than 1000 bytes" in body.decode(), "output cap: %r" % body)
    st, h, body = srtest.curl_post(url, p, ["skyroute-handler: exec:nothere"])
    check(st == 422 and "no command configured" in body.decode(), "unknown exec: %r" % body)
    st, h, body = srtest.curl_post(url, p, ["skyroute-handler: nosuch"])
    check(st == 422 and "unknown handler" in body.decode(), "unknown handler")
    t0 = time.time()
    st, h, body = srtest.curl_post(url, p, ["skyroute-handler: compute", "skyroute-work: 1"])
    dt = time.time() - t0
    check(st == 200 and 0.45 <= dt < 3, "compute 1 Gop at 2 Gop/s took %.2fs" % dt)
    check(json.loads(body)["work_gop"] == 1, "compute result")
    check(float(h["skyroute-elapsed-ms"]) >= 450, "elapsed header")
    finish(env)


def test_deadline_unmeetable_is_503_with_candidates():
    env, g, a, b = two_node_gateway("deadline")
    p = write(env, "x.bin", b"x")
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p,
                                   ["skyroute-deadline-ms: 5", "skyroute-work: 100"])
    check(st == 503, "status %s" % st)
    j = json.loads(body)
    names = sorted(c["target"] for c in j["detail"]["candidates"])
    check(names == ["alpha", "beta"], "names each candidate: %r" % j)
    check(all("exceeds" in c["why"] for c in j["detail"]["candidates"]), "says why")
    finish(env)


def test_many_candidates_fail_over_in_rank_order():
    """More targets than a job keeps inline (4): six that refuse connections,
    ranked first by their round-trip priors, then a real node. The workload
    goes through all six in rank order and runs at the seventh; a deadline
    nobody meets gets a 503 naming all seven."""
    env = srtest.Env("many")
    gkey, gpub = env.keygen("gs-test")
    omega = env.start_node("omega", [gpub])
    targets = []
    for i in range(6):
        _, pub = env.keygen("dead%d" % i)
        targets.append({"id": "dead%d" % i, "pub": pub, "extra": {"rtt_ms": 5 + i},
                        "url": "http://127.0.0.1:%d" % srtest.free_port()})
    targets.append(dict(omega, extra={"rtt_ms": 200}))
    g = env.start_gateway("gs-test", targets, extra_gateway="access_log = all")
    p = write(env, "x.bin", b"seven candidates")
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p)
    check(st == 200 and body == b"seven candidates", "ran: %s %r" % (st, body[:200]))
    check(h.get("skyroute-target") == "omega", "at the real node: %r" % h)
    wid = h["skyroute-id"]
    end = time.time() + 5  # the access log is flushed once a second
    while True:
        lines = [json.loads(line) for line in env.log(g["proc"]).splitlines()
                 if line.startswith("{") and wid in line]
        if lines or time.time() > end:
            break
        time.sleep(0.1)
    check(len(lines) == 1 and lines[0]["attempts"] == 7,
          "six refusals, then omega, in one access log line: %r" % lines)
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p,
                                   ["skyroute-deadline-ms: 5", "skyroute-work: 100"])
    check(st == 503, "status %s" % st)
    names = sorted(c["target"] for c in json.loads(body)["detail"]["candidates"])
    check(names == ["dead%d" % i for i in range(6)] + ["omega"], "names all seven: %r" % names)
    finish(env)


def test_sigterm_drains_in_flight_work():
    env, g, a, b = two_node_gateway("drain", gops=1)
    p = write(env, "x.bin", b"x")
    t, out = srtest.post_in_background(g["url"] + "/v1/workloads", p,
                                       ["skyroute-handler: compute", "skyroute-work: 1.5"])
    time.sleep(0.5)
    g["proc"].send_signal(signal.SIGTERM)
    t.join(20)
    rc = g["proc"].wait(20)
    check(out and out[0][0] == 200, "in-flight request finished: %r" % ((out[0][:2],) if out else None))
    check(rc == 0, "exit 0 after drain, got %s" % rc)
    finish(env)


if __name__ == "__main__":
    srtest.run_tests([
        test_cli_usage_and_version,
        test_check_config_names_the_line,
        test_payload_sizes_digest_nghttp_and_curl,
        test_h2load_1000_concurrent_streams,
        test_fixed_envelope_batch_caps_signatures,
        test_response_ids_stay_out_of_the_hpack_table,
        test_large_echoes_to_a_slow_reader_arrive_intact,
        test_hostile_envelopes_refused_by_node,
        test_node_takes_large_envelopes_a_few_at_a_time,
        test_gateway_sends_large_envelopes_a_few_at_a_time,
        test_gateway_sends_the_earliest_deadline_first,
        test_replay_guard_drops_oldest_results_within_its_memory,
        test_result_dropped_at_the_target_fails_at_once,
        test_tampered_result_never_reaches_client,
        test_node_killed_mid_flight,
        test_garbage_bad_headers_limits_and_unknown_paths,
        test_admin_http1_and_h2,
        test_exec_and_compute_handlers,
        test_deadline_unmeetable_is_503_with_candidates,
        test_many_candidates_fail_over_in_rank_order,
        test_sigterm_drains_in_flight_work,
    ])
