"""Ready for a ground station: the TLS front door (ALPN h2, certificate reload
on SIGHUP without dropping connections) with real clients (nghttp, curl,
openssl s_client, Python's h2 over ssl)."""

import os
import re
import signal
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import hyperframe.frame

import srtest
from srtest import check, run


def make_cert(env, name, cn):
    crt, key = env.path(name + ".crt"), env.path(name + ".key")
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + cn,
             "-addext", "subjectAltName=IP:127.0.0.1"])
    check(r.returncode == 0, "openssl req: %s" % r.stderr.decode())
    return crt, key


def served_cn(port):
    """The subject CN of the certificate a fresh TLS connection gets."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
    r = run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der)
    return r.stdout.decode().strip()


def tls_gateway(name):
    env = srtest.Env(name)
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    make_cert(env, "tls", "skyroute-one")
    tport = srtest.free_port()
    g = env.start_gateway("gs-test", [n], sections="[tls]\nlisten = 127.0.0.1:%d\n"
                          "cert = tls.crt\nkey = tls.key\n" % tport)
    srtest.wait_port(tport, proc=g["proc"])
    return env, g, n, tport


def h2_tls_conn(port, ragged_eof_ok=True):
    """A TLS (ALPN h2) connection and its h2 client state. With ragged_eof_ok
    false, an EOF without TLS's close_notify raises ssl.SSLError."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if not ragged_eof_ok:
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # set by default here
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                        suppress_ragged_eofs=ragged_eof_ok)
    check(s.selected_alpn_protocol() == "h2", "ALPN h2")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def h2_post(s, c, body):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":authority", "x"),
                         (":path", "/v1/workloads"), ("content-length", str(len(body)))])
    c.send_data(sid, body, end_stream=True)
    s.sendall(c.data_to_send())
    status, data = None, b""
    end = time.time() + 10
    while time.time() < end:
        raw = s.recv(65536)
        if not raw:
            break
        for ev in c.receive_data(raw):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                data += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                s.sendall(c.data_to_send())
                return status, data
        s.sendall(c.data_to_send())
    return status, data


def test_tls_front_door_nghttp_and_curl():
    env, g, n, tport = tls_gateway("tls")
    p = env.path("p.txt")
    with open(p, "wb") as f:
        f.write(b"over tls")
    r = run(["nghttp", "-v", "-d", p, "https://127.0.0.1:%d/v1/workloads" % tport])
    out = r.stdout.decode()
    check("The negotiated protocol: h2" in out, "nghttp negotiated h2")
    check(":status: 200" in out and "over tls" in out, "workload completed over TLS")
    r = run(["curl", "-sS", "--cacert", env.path("tls.crt"), "--http2", "--data-binary", "@" + p,
             "-w", "\n%{http_version}", "https://127.0.0.1:%d/v1/workloads" % tport])
    check(r.stdout.decode().endswith("over tls\n2"), "curl over TLS with h2: %r" % r.stdout)
    # TLS 1.1 is refused; 1.2 and 1.3 work
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tport, "-tls1_1"],
            input=b"", timeout=20)
    check(b"Cipher is (NONE)" in r.stdout or r.returncode != 0, "TLS 1.1 refused")
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tport, "-tls1_2", "-alpn", "h2"],
            input=b"", timeout=20)
    check(b"ALPN protocol: h2" in r.stdout, "TLS 1.2 with ALPN h2")
    # h2c stays available on the cleartext listener
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", p)
    check(st == 200 and body == b"over tls", "h2c still served")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_sighup_reloads_certificate_without_dropping_connections():
    env, g, n, tport = tls_gateway("reload")
    check("skyroute-one" in served_cn(tport), "first certificate served")
    s, c = h2_tls_conn(tport)
    st, body = h2_post(s, c, b"before")
    check(st == 200 and body == b"before", "request on the open connection")
    # new certificate on disk, then SIGHUP
    crt2, key2 = make_cert(env, "tls2", "skyroute-two")
    os.replace(crt2, env.path("tls.crt"))
    os.replace(key2, env.path("tls.key"))
    g["proc"].send_signal(signal.SIGHUP)
    end = time.time() + 5
    while "skyroute-two" not in served_cn(tport) and time.time() < end:
        time.sleep(0.1)
    check("skyroute-two" in served_cn(tport), "new connections get the new certificate")
    st, body = h2_post(s, c, b"after")
    check(st == 200 and body == b"after", "the connection opened before the reload still works")
    s.close()
    # a broken certificate on reload keeps the old one serving
    with open(env.path("tls.crt"), "w") as f:
        f.write("not a certificate\n")
    g["proc"].send_signal(signal.SIGHUP)
    time.sleep(0.5)
    check(g["proc"].poll() is None, "a bad reload does not kill the gateway")
    check("skyroute-two" in served_cn(tport), "the last good certificate keeps serving")
    check(srtest.metric(g["admin"], "skyroute_reloads_total", 'outcome="failed"') == 1,
          "failed reload counted")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def make_ca_and_client(env, cn):
    ca_key, ca_crt = env.path("ca.key"), env.path("ca.crt")
    if not os.path.exists(ca_crt):
        check(run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca_crt,
                   "-days", "2", "-subj", "/CN=skyroute test CA"]).returncode == 0, "CA")
    key, csr, crt = env.path(cn + ".key"), env.path(cn + ".csr"), env.path(cn + ".crt")
    check(run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn]).returncode == 0, "csr")
    check(run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
               "-CAcreateserial", "-out", crt, "-days", "2"]).returncode == 0, "sign")
    return crt, key


def sha256(text):
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def curl(url, data, headers=(), extra=()):
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--data-binary", "@" + data]
    for h in headers:
        argv += ["-H", h]
    argv += list(extra) + [url]
    r = run(argv)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body


def test_client_tokens_certificates_and_limits():
    env = srtest.Env("auth")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--gops", "1"])
    make_cert(env, "tls", "skyroute-one")
    make_ca_and_client(env, "edge-1")
    make_ca_and_client(env, "intruder")
    tport = srtest.free_port()
    clients = ("[tls]\nlisten = 127.0.0.1:%d\ncert = tls.crt\nkey = tls.key\nclient_ca = ca.crt\n\n"
               "[client.app]\ntoken_sha256 = %s\nrate = 4\nburst = 4\nstreams = 2\n\n"
               "[client.edge]\ncert_cn = edge-1\n" % (tport, sha256("s3cret-token")))
    g = env.start_gateway("gs-test", [n], sections=clients)
    srtest.wait_port(tport, proc=g["proc"])
    url = g["url"] + "/v1/workloads"
    p = env.path("p.txt")
    with open(p, "wb") as f:
        f.write(b"hello")
    # no credentials, a wrong token, a malformed header: 401 and nothing else
    for hdrs in ((), ("authorization: Bearer wrong",), ("authorization: Basic eDp5",)):
        code, body = curl(url, p, hdrs, ["--http2-prior-knowledge"])
        check(code == 401 and b"authentication required" in body and b"hello" not in body,
              "401 for %r: %s %r" % (hdrs, code, body))
    check(srtest.metric(n["admin"], "skyroute_node_executed_total") == 0, "nothing ran")
    code, body = curl(url, p, ("authorization: Bearer s3cret-token",), ["--http2-prior-knowledge"])
    check(code == 200 and body == b"hello", "the right token works: %s" % code)
    # rate: a burst of 4, refilled at 4/s: 12 quick requests see 429 with retry-after
    codes = []
    for _ in range(12):
        r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null",
                 "-H", "authorization: Bearer s3cret-token", "--data-binary", "@" + p, url])
        head = r.stdout.decode().lower()
        codes.append(int(head.split()[1]))
        if codes[-1] == 429:
            check("retry-after: 1" in head, "429 carries retry-after: %r" % head)
    check(429 in codes and 200 in codes, "rate limit applied: %r" % codes)
    time.sleep(1.5)
    # streams: two slow requests in flight, the third is refused
    slow = ("authorization: Bearer s3cret-token", "skyroute-handler: compute", "skyroute-work: 1.5")
    procs = [subprocess.Popen(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                               "%{http_code}", "--data-binary", "@" + p] +
                              sum((["-H", h] for h in slow), []) + [url],
                              stdout=subprocess.PIPE) for _ in range(2)]
    time.sleep(0.5)
    code, body = curl(url, p, ("authorization: Bearer s3cret-token",), ["--http2-prior-knowledge"])
    check(code == 429 and b"streams" in body, "third concurrent request refused: %s %r" % (code, body))
    outs = [pr.communicate(timeout=20)[0] for pr in procs]
    check(outs == [b"200", b"200"], "the two in flight finished: %r" % outs)
    # TLS client certificates: the configured CN is a client, another CN is not
    turl = "https://127.0.0.1:%d/v1/workloads" % tport
    tls = ["--http2", "--cacert", env.path("tls.crt")]
    code, body = curl(turl, p, (), tls + ["--cert", env.path("edge-1.crt"), "--key",
                                          env.path("edge-1.key")])
    check(code == 200 and body == b"hello", "client certificate edge-1 accepted: %s" % code)
    code, body = curl(turl, p, (), tls + ["--cert", env.path("intruder.crt"), "--key",
                                          env.path("intruder.key")])
    check(code == 401, "a certificate with another CN is not a client: %s" % code)
    # SIGHUP: a new client's token works without a restart
    with open(g["conf"], "a") as f:
        f.write("\n[client.late]\ntoken_sha256 = %s\n" % sha256("late-token"))
    g["proc"].send_signal(signal.SIGHUP)
    end = time.time() + 5
    code = 0
    while code != 200 and time.time() < end:
        time.sleep(0.2)
        code, body = curl(url, p, ("authorization: Bearer late-token",),
                          ["--http2-prior-knowledge"])
    check(code == 200, "token added by SIGHUP accepted")
    check(srtest.metric(g["admin"], "skyroute_auth_failures_total") >= 4, "401s counted")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_sighup_under_load_adds_targets_without_dropping_connections():
    env = srtest.Env("hupload")
    gkey, gpub = env.keygen("gs-test")
    a = env.start_node("alpha", [gpub])
    b = env.start_node("beta", [gpub])
    g = env.start_gateway("gs-test", [a])
    p = env.path("p.bin")
    with open(p, "wb") as f:
        f.write(os.urandom(1024))
    load = subprocess.Popen(["h2load", "-c", "4", "-m", "8", "-D", "6", "-d", p,
                             g["url"] + "/v1/workloads"], stdout=subprocess.PIPE)
    time.sleep(2)
    with open(g["conf"], "a") as f:
        f.write("\n[policy]\nmargin_ms = 5\n\n[idc.beta]\nurl = %s\npubkey = beta.pub\n"
                "rtt_ms = 0.01\npue = 1.08\n" % b["url"])
    g["proc"].send_signal(signal.SIGHUP)
    out = load.communicate(timeout=60)[0].decode()
    line = [l for l in out.splitlines() if l.startswith("requests:")][0]
    codes = [l for l in out.splitlines() if l.startswith("status codes:")][0]
    check(" 0 failed, 0 errored" in line, "no request failed, no connection dropped: " + line)
    check(" 0 4xx, 0 5xx" in codes, codes)
    used = srtest.metric(g["admin"], "skyroute_dispatch_total", 'target="beta",outcome="ok"')
    check(used > 0, "the target added by SIGHUP takes work (%d dispatches)" % used)
    check(srtest.metric(g["admin"], "skyroute_reloads_total",
                        'part="targets",outcome="ok"') == 1, "reload counted")
    check(srtest.metric(g["admin"], "skyroute_reloads_total",
                        'part="policy",outcome="ok"') == 1, "policy and profiles reloaded too")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_sigterm_under_load_loses_no_accepted_request():
    env = srtest.Env("termload")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--gops", "5"])
    g = env.start_gateway("gs-test", [n])
    p = env.path("p.bin")
    with open(p, "wb") as f:
        f.write(b"x" * 256)
    results = []
    stop = [False]

    def loop():
        while not stop[0]:
            r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                                "%{http_code}", "-H", "skyroute-handler: compute", "-H",
                                "skyroute-work: 1", "--data-binary", "@" + p,
                                g["url"] + "/v1/workloads"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            results.append((r.returncode, r.stdout.decode()))
            if r.returncode == 7:  # connection refused: the listener is closed
                break

    import threading
    threads = [threading.Thread(target=loop) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    g["proc"].send_signal(signal.SIGTERM)
    rc = g["proc"].wait(30)
    stop[0] = True
    for t in threads:
        t.join(30)
    done = [r for r in results if r[0] == 0]
    cut = [r for r in results if r[0] not in (0, 7)]
    check(rc == 0, "gateway exit status after drain: %s" % rc)
    check(not cut, "no request cut mid-flight: %r" % cut)
    check(done and all(code in ("200", "503") for _, code in done),
          "answers are results or a clean 503: %r" % sorted(set(c for _, c in done)))
    check(sum(1 for _, c in done if c == "200") >= 6, "work in flight finished")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_node_sigterm_under_load_loses_nothing():
    """A node told to stop while a gateway keeps sending it work: it says so
    with a GOAWAY (RFC 9113 section 6.8), finishes what it took, then names
    the last stream it took before it closes; the gateway sends the rest to
    the other node. Before the node went away this way, requests the gateway
    had written but the node had not read yet were cut when it exited (502,
    "lost mid-flight"; 3 runs of 5 lost 1-11 requests)."""
    env = srtest.Env("nodeterm")
    gkey, gpub = env.keygen("gs-test")
    a = env.start_node("alpha", [gpub], admin=False)
    b = env.start_node("beta", [gpub], admin=False)
    g = env.start_gateway("gs-test", [a, b])
    p = env.path("p.bin")
    with open(p, "wb") as f:
        f.write(os.urandom(1024))
    # a load bounded in time, not in count: the node must be told to stop
    # while it runs however fast the build is (40,000 requests once took
    # under a second)
    load = subprocess.Popen(["h2load", "-D", "4", "-c", "8", "-m", "8", "-t", "1", "-d", p,
                             g["url"] + "/v1/workloads"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        check(load.poll() is None, "h2load still running when the node is told to stop")
        a["proc"].send_signal(signal.SIGTERM)
        rc = a["proc"].wait(20)
        out = load.communicate(timeout=120)[0].decode()
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    print("\n".join(ln for ln in out.splitlines() if ln.startswith(("requests:", "status"))))
    check(rc == 0, "node exit status after its drain: %s" % rc)
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                  r"0 failed, 0 errored", out)
    check(m and int(m.group(1)) > 1000 and m.group(1) == m.group(2) == m.group(3),
          "every request answered 2xx: %s" %
          [ln for ln in out.splitlines() if ln.startswith(("requests:", "status"))])
    log = open(env.path("alpha.log")).read()
    check("draining" in log, "the node logged its drain")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(x.sr_name, x.returncode) for x in bad])


def test_gateway_sends_nothing_to_a_node_going_away():
    """While a node drains (its GOAWAY received) the gateway opens no stream
    on its connection: a new workload is placed elsewhere or, with no other
    target, refused at once with the reason, while the node finishes the
    work it took and exits 0."""
    env = srtest.Env("goingaway")
    gkey, gpub = env.keygen("gs-test")
    a = env.start_node("alpha", [gpub], admin=False, extra=["--gops", "1"])
    g = env.start_gateway("gs-test", [a])
    p = env.path("x")
    with open(p, "wb") as f:
        f.write(b"x")
    t, out = srtest.post_in_background(g["url"] + "/v1/workloads", p,
                                       ["skyroute-handler: compute", "skyroute-work: 1.5"])
    time.sleep(0.4)
    a["proc"].send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.time()
    status, _, body = srtest.curl_post(g["url"] + "/v1/workloads", p)
    took = time.time() - t0
    t.join(20)
    rc = a["proc"].wait(20)
    print("new workload during the drain: %s in %.2f s: %s" % (status, took, body[:300]))
    check(status == 503 and b"is going away (GOAWAY)" in body,
          "refused with the reason: %s %r" % (status, body[:300]))
    check(took < 1.0, "refused at once, not after a deadline: %.2f s" % took)
    check(out and out[0][0] == 200, "the work the node took finished: %r" % (out[0][:2] if out else None,))
    check(rc == 0, "node exit status after its drain: %s" % rc)
    bad = env.close()
    check(not bad, "clean exits: %r" % [(x.sr_name, x.returncode) for x in bad])


def frames_of(data):
    """The HTTP/2 frames in |data| (whole frames only)."""
    out = []
    while len(data) >= 9:
        f, n = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + n:
            break
        f.parse_body(memoryview(data[9:9 + n]))
        out.append(f)
        data = data[9 + n:]
    return out


def until_answered(s, c, sid):
    """Feeds |c| (an h2 client connection) what |s| reads until stream |sid|
    has ended, answering what the library wants to answer."""
    ended = False
    while not ended:
        data = s.recv(65536)
        check(data, "the gateway closed before answering stream %d" % sid)
        for e in c.receive_data(data):
            ended = ended or (isinstance(e, h2.events.StreamEnded) and e.stream_id == sid)
        s.sendall(c.data_to_send())


def read_to_eof(s, raw=b""):
    while True:
        data = s.recv(65536)
        if not data:
            return raw
        raw += data


def until_drain_ping(s):
    """Reads raw frames from |s| until the drain's PING: (bytes read, the
    PING, its ACK serialized, not sent)."""
    raw, frames = b"", []
    while not any(isinstance(f, hyperframe.frame.PingFrame) for f in frames):
        data = s.recv(65536)
        check(data, "closed before the notice's PING: %r" % [type(f).__name__ for f in frames])
        raw += data
        frames = frames_of(raw)
    ping = [f for f in frames if isinstance(f, hyperframe.frame.PingFrame)][0]
    ack = hyperframe.frame.PingFrame(0)
    ack.opaque_data = ping.opaque_data
    ack.flags.add("ACK")
    return raw, ping, ack.serialize()


def test_sigterm_goes_away_gracefully():
    """On SIGTERM an HTTP/2 client is told twice (RFC 9113 section 6.8): a
    GOAWAY announcing the shutdown (last stream 2^31-1) while the work in
    flight finishes, and, before the connection closes, one naming the last
    stream the gateway took, so that anything later is known unread."""
    env = srtest.Env("goaway")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--gops", "5"])
    g = env.start_gateway("gs-test", [n])
    s = socket.create_connection(("127.0.0.1", g["port"]), timeout=15)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    # stream 1 answered before the signal; stream 3 (0.2 s of work) in flight
    for sid, work in ((1, "0"), (3, "1")):
        c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                             (":path", "/v1/workloads"), ("content-length", "2"),
                             ("skyroute-handler", "compute"), ("skyroute-work", work)])
        c.send_data(sid, b"hi", end_stream=True)
        s.sendall(c.data_to_send())
        if sid == 1:
            until_answered(s, c, 1)
    time.sleep(0.05)
    g["proc"].send_signal(signal.SIGTERM)
    raw = read_to_eof(s)
    s.close()
    check(g["proc"].wait(30) == 0, "the gateway's exit status")
    frames = frames_of(raw)
    goaways = [(f.last_stream_id, f.error_code) for f in frames
               if isinstance(f, hyperframe.frame.GoAwayFrame)]
    check(goaways == [(2 ** 31 - 1, 0), (3, 0)],
          "GOAWAY frames (last stream, error): %r" % goaways)
    # stream 3 finished between them, with its answer
    first, last = [i for i, f in enumerate(frames) if isinstance(f, hyperframe.frame.GoAwayFrame)]
    got3 = [f for f in frames[first:last]
            if isinstance(f, hyperframe.frame.HeadersFrame) and f.stream_id == 3]
    check(got3, "stream 3 answered between the two GOAWAYs: %r" % [type(f).__name__ for f in frames])
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_sigterm_takes_what_was_sent_before_the_notice_was_read():
    """The final GOAWAY waits for the client to answer the PING sent after
    the shutdown notice (a round trip, as RFC 9113 section 6.8 asks), so a
    request the client sent before it read the notice is taken and answered
    (a draining gateway's 503: new work goes elsewhere), not left unread,
    however long the notice took to arrive (here the client holds its answer
    0.3 s; the gateway used to be gone by then). Afterwards the socket is
    shut, not reset: bytes the client still sends are read and dropped."""
    import hpack
    env = srtest.Env("goaway-ack")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    g = env.start_gateway("gs-test", [n])
    s = socket.create_connection(("127.0.0.1", g["port"]), timeout=15)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    request = [(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
               (":path", "/v1/workloads"), ("content-length", "2")]
    c.send_headers(1, request)
    c.send_data(1, b"hi", end_stream=True)
    s.sendall(c.data_to_send())
    until_answered(s, c, 1)
    g["proc"].send_signal(signal.SIGTERM)
    # from here on raw frames: the h2 library would answer the PING at once
    raw, ping, ack = until_drain_ping(s)
    check("ACK" not in ping.flags and ping.opaque_data == b"sr-drain",
          "a PING with the notice: %r %r" % (ping.flags, ping.opaque_data))
    time.sleep(0.3)
    enc = hpack.Encoder()  # literals only: the connection's table stays as it is

    def post(sid):
        hdrs = hyperframe.frame.HeadersFrame(sid)
        hdrs.data = enc.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in request])
        hdrs.flags.add("END_HEADERS")
        body = hyperframe.frame.DataFrame(sid)
        body.data = b"hi"
        body.flags.add("END_STREAM")
        return hdrs.serialize() + body.serialize()

    s.sendall(post(3) + ack)
    frames = frames_of(read_to_eof(s, raw))
    goaways = [(f.last_stream_id, f.error_code) for f in frames
               if isinstance(f, hyperframe.frame.GoAwayFrame)]
    check(goaways == [(2 ** 31 - 1, 0), (3, 0)], "GOAWAY frames (last stream, error): %r" % goaways)
    answer = [f for f in frames if isinstance(f, hyperframe.frame.HeadersFrame) and f.stream_id == 3]
    check(answer, "stream 3 answered: %r" % [(type(f).__name__, f.stream_id) for f in frames])
    # the first header block since the h2 library stopped reading: its decoder
    # holds the connection's table
    status = dict(c.decoder.decode(answer[0].data)).get(":status")
    body = b"".join(f.data for f in frames
                    if isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == 3)
    check(status == "503" and b"shutting down" in body,
          "stream 3 gets the draining gateway's answer: %r %r" % (status, body))
    check(any(isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == 3 and
              "END_STREAM" in f.flags for f in frames), "stream 3's answer ended")
    # shut, not reset: what the client sends now is read and dropped
    try:
        s.sendall(post(5))
        time.sleep(0.2)
        s.sendall(post(7))
        reset = None
    except OSError as e:
        reset = e
    s.close()
    check(reset is None, "the gateway's socket reset after its FIN: %r" % reset)
    check(g["proc"].wait(30) == 0, "the gateway's exit status")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_sigterm_ends_tls_with_close_notify():
    """The same drain over TLS: GOAWAY, PING, the final GOAWAY once the client
    answers, and the connection ends with TLS's close_notify (a clean end of
    the records, not a truncation) before the gateway exits 0."""
    env, g, n, tport = tls_gateway("tlsdrain")
    s, c = h2_tls_conn(tport, ragged_eof_ok=False)
    st, body = h2_post(s, c, b"before")
    check(st == 200 and body == b"before", "request before the signal: %r %r" % (st, body))
    g["proc"].send_signal(signal.SIGTERM)
    raw, _, ack = until_drain_ping(s)
    s.sendall(ack)
    try:
        raw, eof = read_to_eof(s, raw), "close_notify"
    except ssl.SSLError as e:  # UNEXPECTED_EOF_WHILE_READING
        eof = "no close_notify: %s" % e
    s.close()
    check(eof == "close_notify", "how the TLS connection ended: %s" % eof)
    goaways = [(f.last_stream_id, f.error_code) for f in frames_of(raw)
               if isinstance(f, hyperframe.frame.GoAwayFrame)]
    check(goaways == [(2 ** 31 - 1, 0), (1, 0)], "GOAWAY frames (last stream, error): %r" % goaways)
    check(g["proc"].wait(30) == 0, "the gateway's exit status")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


if __name__ == "__main__":
    srtest.run_tests([
        test_tls_front_door_nghttp_and_curl,
        test_sighup_reloads_certificate_without_dropping_connections,
        test_client_tokens_certificates_and_limits,
        test_sighup_under_load_adds_targets_without_dropping_connections,
        test_sigterm_under_load_loses_no_accepted_request,
        test_node_sigterm_under_load_loses_nothing,
        test_gateway_sends_nothing_to_a_node_going_away,
        test_sigterm_goes_away_gracefully,
        test_sigterm_takes_what_was_sent_before_the_notice_was_read,
        test_sigterm_ends_tls_with_close_notify,
    ])
