"""Limits before authentication, against the real skyrouted with raw HTTP/2
frames: a stream that opens a body and goes silent is refused within the
body timeout, one address cannot hold more than its share of connections,
one connection cannot keep more than a few requests waiting for their
bodies, and signed uploads past an address's rate are refused before their
signature is checked; meanwhile a client from another address is served
throughout. Then what a client may read: another client's workload is not
found, a config file holding the NATS password open to others is refused,
and an open API says so at start-up."""

import os
import socket
import stat
import struct
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack

import srtest
from srtest import check

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, END_HEADERS = 0x1, 0x4
REFUSED_STREAM = 7


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid & 0x7fffffff) + payload


class Raw:
    """A raw HTTP/2 connection from |src|: frames out as written, frames in
    parsed into (type, flags, stream, payload)."""

    def __init__(self, port, src="127.0.0.1"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(src, 0))
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.closed = False
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def open_stream(self, sid, length, path="/v1/workloads"):
        block = self.enc.encode([(":method", "POST"), (":scheme", "http"),
                                 (":authority", "gw"), (":path", path),
                                 ("content-length", str(length))])
        self.s.sendall(frame(HEADERS, END_HEADERS, sid, block))

    def data(self, sid, payload, end=False):
        self.s.sendall(frame(DATA, END_STREAM if end else 0, sid, payload))

    def wait(self, pred, timeout):
        """Reads frames until pred(frame) is true: that frame, or None at the
        timeout or when the server closes."""
        end = time.time() + timeout
        while True:
            while len(self.buf) >= 9:
                ln = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + ln:
                    break
                f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                     self.buf[9:9 + ln])
                self.buf = self.buf[9 + ln:]
                if f[0] == SETTINGS and not f[1] & 1:
                    self.s.sendall(frame(SETTINGS, 1, 0))
                if f[0] == HEADERS:
                    f = f[:3] + (dict(self.dec.decode(f[3])),)
                if pred(f):
                    return f
            left = end - time.time()
            if left <= 0 or self.closed:
                return None
            self.s.settimeout(min(left, 0.5))
            try:
                chunk = self.s.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                continue
            self.buf += chunk

    def close(self):
        self.s.close()


def stream_end(sid):
    """A frame that ends stream |sid| from the server's side: its response
    headers (status in them), or a RST_STREAM."""
    return lambda f: f[2] == sid and f[0] in (HEADERS, RST_STREAM)


class GoodClient(threading.Thread):
    """Submits workloads over one HTTP/2 connection (python-h2) from another
    loopback address while the attacks run."""

    def __init__(self, port, src="127.0.0.2"):
        super().__init__(daemon=True)
        self.port, self.src = port, src
        self.ok = self.bad = 0
        self.stop = False
        self.errors = []

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20,
                                     source_address=(self.src, 0))
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        s.sendall(c.data_to_send())
        while not self.stop:
            sid = c.get_next_available_stream_id()
            body = os.urandom(256)
            c.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                                 (":path", "/v1/workloads"), ("content-length", str(len(body)))])
            c.send_data(sid, body, end_stream=True)
            s.sendall(c.data_to_send())
            status, done, t0 = None, False, time.time()
            while not done and time.time() - t0 < 20:
                try:
                    data = s.recv(1 << 16)
                except OSError as e:
                    self.errors.append(repr(e))
                    data = b""
                if not data:
                    self.bad += 1
                    return
                try:
                    events = c.receive_data(data)
                except h2.exceptions.ProtocolError as e:  # the gateway went away
                    self.errors.append(repr(e))
                    self.bad += 1
                    return
                for ev in events:
                    if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                        status = int(dict(ev.headers)[b":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and \
                            ev.stream_id == sid:
                        done = True
                out = c.data_to_send()
                if out:
                    s.sendall(out)
            if status == 200:
                self.ok += 1
            else:
                self.bad += 1
            time.sleep(0.05)
        s.close()


def preauth(g, reason):
    return srtest.metric(g["admin"], "skyroute_preauth_refused_total", 'reason="%s"' % reason)


def test_slow_streams_address_cap_and_unauthenticated_streams():
    env = srtest.Env("preauth")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    g = env.start_gateway("gs-test", [n], extra_gateway="\n".join([
        "body_timeout_s = 2", "max_conns_per_address = 8", "max_unauth_streams = 4",
        "body_min_rate = 0"]))
    port = g["port"]
    good = GoodClient(port)
    good.start()
    time.sleep(0.3)

    # 1. a stream that declares a body and sends none, and one that stops
    #    halfway: each refused (408, its stream ended) within the timeout
    a = Raw(port)
    t0 = time.time()
    a.open_stream(1, 1000)
    a.open_stream(3, 1000)
    a.data(3, b"x" * 400)
    got = {1: (None, 0), 3: (None, 0)}

    def note(f):
        if f[0] in (HEADERS, RST_STREAM) and f[2] in got and got[f[2]][0] is None:
            got[f[2]] = (f, time.time() - t0)
        return all(v[0] for v in got.values())
    a.wait(note, 6)
    for sid, (f, dt) in got.items():
        print("  stream %d: %s after %.1fs" % (sid, f and (f[0], f[3] if f[0] == HEADERS else
                                                        int.from_bytes(f[3], "big")), dt))
        check(f is not None and f[0] == HEADERS and f[3].get(":status") == "408",
              "stream %d refused 408: %r" % (sid, f))
        check(1.5 <= dt <= 2 + 3, "stream %d refused after the 2-s timeout (+ a sweep): %.1fs"
              % (sid, dt))
    resets = set()
    a.wait(lambda f: f[0] == RST_STREAM and int.from_bytes(f[3], "big") == 0 and
           resets.add(f[2]) is None and resets == {1, 3}, 3)
    check(resets == {1, 3}, "then both streams are reset (NO_ERROR): %r" % resets)
    check(preauth(g, "body_timeout") == 2, "skyroute_preauth_refused_total{body_timeout} = 2")
    check(not a.closed, "the connection itself stays")

    # 2. one connection keeps at most 4 requests waiting for their bodies:
    #    the 5th stream is refused at once with REFUSED_STREAM
    for sid in (5, 7, 9, 11):
        a.open_stream(sid, 10)
    a.open_stream(13, 10)
    f = a.wait(lambda f: f[2] == 13 and f[0] == RST_STREAM, 3)
    check(f is not None and int.from_bytes(f[3], "big") == REFUSED_STREAM,
          "the 5th unfinished stream is reset REFUSED_STREAM: %r" % (f,))
    check(preauth(g, "unauth_streams") == 1, "skyroute_preauth_refused_total{unauth_streams} = 1")
    # the four waiting are served once whole (the workload answer, not a refusal)
    a.data(5, b"y" * 10, end=True)
    f = a.wait(stream_end(5), 10)
    check(f is not None and f[0] == HEADERS and f[3].get(":status") == "200",
          "a waiting stream completed is served: %r" % (f,))

    # 3. 8 connections from 127.0.0.1 at most: the 9th is closed unread
    conns = [a] + [Raw(port) for _ in range(7)]
    for c in conns[1:]:
        c.open_stream(1, 100)
    time.sleep(0.2)
    extra = Raw(port)
    f = extra.wait(lambda f: False, 3)
    check(extra.closed, "the 9th connection from one address is closed")
    check(preauth(g, "per_address") >= 1, "skyroute_preauth_refused_total{per_address} counted")
    # another address is not affected
    other = Raw(port, src="127.0.0.3")
    other.open_stream(1, 4)
    other.data(1, b"abcd", end=True)
    f = other.wait(stream_end(1), 10)
    check(f is not None and f[3].get(":status") == "200", "127.0.0.3 is served: %r" % (f,))
    # a slot given back is free again
    for c in conns:
        c.close()
    time.sleep(0.3)
    again = Raw(port)
    again.open_stream(1, 4)
    again.data(1, b"abcd", end=True)
    f = again.wait(stream_end(1), 10)
    check(f is not None and f[3].get(":status") == "200",
          "after the connections close, 127.0.0.1 connects again: %r" % (f,))
    again.close()
    other.close()
    extra.close()

    # 4. a header block that stops halfway (HEADERS without END_HEADERS)
    #    holds the whole connection: it is closed after the timeout
    h = Raw(port)
    # its SETTINGS acknowledged first: nothing may come between a header
    # block's frames
    h.wait(lambda f: f[0] == SETTINGS and not f[1] & 1, 3)
    block = h.enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                          (":path", "/v1/workloads")])
    h.s.sendall(frame(HEADERS, 0, 1, block))
    t0 = time.time()
    f = h.wait(lambda f: f[0] == GOAWAY, 6)
    h.wait(lambda f: False, 2)
    print("  stopped header block: GOAWAY %r, closed %s after %.1fs"
          % (f and int.from_bytes(f[3][4:8], "big"), h.closed, time.time() - t0))
    check(f is not None and h.closed and time.time() - t0 < 2 + 3,
          "a stopped header block ends its connection")
    check(preauth(g, "header_timeout") == 1, "skyroute_preauth_refused_total{header_timeout} = 1")
    h.close()

    # 5. a request answered 413 from its content-length, whose client then
    #    neither sends nor ends it: its stream is reset after the timeout
    z = Raw(port)
    z.open_stream(1, 1 << 30)
    t0 = time.time()
    f = z.wait(stream_end(1), 3)
    check(f is not None and f[0] == HEADERS and f[3].get(":status") == "413", "413: %r" % (f,))
    f = z.wait(lambda f: f[2] == 1 and f[0] == RST_STREAM, 6)
    dt = time.time() - t0
    check(f is not None and int.from_bytes(f[3], "big") == 0 and 1.5 <= dt <= 2 + 3,
          "the answered stream left open is reset (NO_ERROR) after the timeout: %r %.1fs"
          % (f, dt))
    z.close()

    good.stop = True
    good.join(30)
    print("  good client: %d ok, %d failed %s" % (good.ok, good.bad, good.errors))
    check(good.ok >= 10 and good.bad == 0, "the client at 127.0.0.2 was served throughout")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_slow_body_over_http1_on_the_admin_listener():
    """HTTP/1.1 (admin listener) bodies have the same timeout, and the same
    minimum rate."""
    env = srtest.Env("preauth1")
    gkey, gpub = env.keygen("gs-test")
    g = env.start_gateway("gs-test", [], extra_gateway="body_timeout_s = 1\nbody_min_rate = 1000\n")
    s = socket.create_connection(("127.0.0.1", g["admin"]), timeout=10)
    t0 = time.time()
    s.sendall(b"POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
    s.settimeout(6)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    dt = time.time() - t0
    s.close()
    print("  %r after %.1fs" % (got[:40], dt))
    check(got.startswith(b"HTTP/1.1 408 ") and dt < 1 + 3,
          "a stalled HTTP/1.1 body is answered 408 and closed within the timeout")
    check(preauth(g, "body_timeout") == 1, "and counted")
    # a body that keeps coming, 40 bytes every 0.2 s (200 B/s), under the
    # minimum rate of 1000 B/s: refused once a 1-s window has passed
    s = socket.create_connection(("127.0.0.1", g["admin"]), timeout=10)
    s.sendall(b"POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
    s.settimeout(0.2)
    got, t0 = b"", time.time()
    while time.time() - t0 < 8 and not got:
        try:
            s.sendall(b"z" * 40)
            got = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
    s.close()
    print("  %r after %.1fs" % (got[:40], time.time() - t0))
    check(got.startswith(b"HTTP/1.1 408 ") and b"too slow" in got,
          "a body under the minimum rate is answered 408")
    check(preauth(g, "body_rate") == 1, "and counted as body_rate")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def sha256(text):
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def curl_h(g, args):
    return srtest.curl(args, timeout=30)


def test_signed_upload_flood_refused_before_verification():
    env = srtest.Env("preauth-sig")
    env.keygen("acme")
    gkey, gpub = env.keygen("gs-test")
    g = env.start_gateway("gs-test", [], extra_gateway="signed_rate = 0.01\nsigned_burst = 2\n",
                          sections="[operator.acme]\npubkey = acme.pub\nsatellites = *\n")
    body = env.path("passes.json")
    with open(body, "w") as f:
        f.write('{"passes": []}')
    url = g["url"] + "/v1/passes"
    # a signature that does not verify: checking it is what an attacker
    # makes the gateway do for free
    forged = "skyroute-signature: acme:" + "A" * 86 + "=="

    def put():
        return srtest.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-D", "-",
                           "-X", "PUT", "--data-binary", "@" + body, "-H", forged, url],
                          timeout=30).stdout.decode()

    verified = lambda: srtest.metric(g["admin"], "skyroute_feed_uploads_total",
                                     'outcome="refused"')
    first = [put() for _ in range(2)]
    check(all(" 401" in h.split("\r\n")[0] for h in first),
          "within the burst the signature is checked (401): %r" % first)
    check(verified() == 2, "two signature checks counted")
    third = put()
    status = third.split("\r\n")[0]
    check(" 429" in status and "retry-after:" in third.lower(),
          "past the address's bucket: 429 with retry-after: %r" % third)
    check(verified() == 2, "no signature check for the refused upload")
    check(preauth(g, "signed_rate") == 1, "skyroute_preauth_refused_total{signed_rate} = 1")
    st, _, text = srtest.curl([g["url"] + "/v1/passes"])
    check(st == 200 and '"passes":[]' in text.replace(" ", ""), "nothing stored: %s" % text[:200])
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_workload_owner_secret_config_and_open_api_warning():
    env = srtest.Env("preauth-own")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    # an open API says so in the log
    g0 = env.start_gateway("gs-open", [n])
    time.sleep(0.3)
    with open(g0["proc"].sr_log) as f:
        log = f.read()
    check("WARNING: no [client.*] section" in log and "open to anyone" in log,
          "an open API is announced at start-up")
    env.stop(g0["proc"])

    clients = ("[client.alice]\ntoken_sha256 = %s\n\n[client.bob]\ntoken_sha256 = %s\n"
               % (sha256("alice-token"), sha256("bob-token")))
    g = env.start_gateway("gs-test", [n], sections=clients)
    with open(g["proc"].sr_log) as f:
        check("WARNING: no [client.*]" not in f.read(), "no warning with clients configured")
    payload = env.path("p.bin")
    with open(payload, "wb") as f:
        f.write(b"hello")
    st, hdrs, out = srtest.curl_post(g["url"] + "/v1/workloads", payload,
                                     headers=("authorization: Bearer alice-token",
                                              "prefer: respond-async"))
    check(st == 202 and hdrs.get("skyroute-id"), "alice's async workload accepted: %s %r"
          % (st, hdrs))
    wid = hdrs["skyroute-id"]
    time.sleep(0.5)

    def get(token, ident):
        return srtest.curl(["-H", "authorization: Bearer " + token,
                            g["url"] + "/v1/workloads/" + ident])

    st_a, _, _ = get("alice-token", wid)
    st_b, _, body_b = get("bob-token", wid)
    st_n, _, body_n = get("bob-token", "0" * 32)
    check(st_a == 200, "the owner reads it: %s" % st_a)
    check(st_b == 404 and body_b == body_n,
          "another client gets the answer of an unknown id: %s %r vs %r" % (st_b, body_b, body_n))
    env.stop(g["proc"])

    # a config holding the NATS password, open to others, is refused
    conf = env.path("secret.conf")
    with open(g["conf"]) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text + "\n[cluster]\nnats = nats://127.0.0.1:4222\nstation = gs-test\n"
                "user = gs\npassword = hunter2\n")
    os.chmod(conf, 0o644)
    r = subprocess.run([srtest.SKYROUTED, "-c", conf, "--check-config"], capture_output=True,
                       timeout=30)
    err = r.stderr.decode()
    print("  " + err.strip())
    check(r.returncode != 0 and conf in err and "0644" in err and "password" in err,
          "mode 0644 with a password: refused naming the file, key and mode")
    os.chmod(conf, 0o600)
    r = subprocess.run([srtest.SKYROUTED, "-c", conf, "--check-config"], capture_output=True,
                       timeout=30)
    check("0600" not in r.stderr.decode() and "is a secret" not in r.stderr.decode(),
          "mode 0600: no complaint about the file's mode: %s" % r.stderr.decode())
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def make_pki(env, subjects):
    """A CA, a server certificate for 127.0.0.1 and one client certificate per
    entry of |subjects| (name -> list of CNs, written as given: longer than
    64 characters, or several), signed by the CA (python3-cryptography, since
    openssl's tools refuse such subjects)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cns):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)
                          for cn in cns])

    def write(stem, key, cert):
        with open(env.path(stem + ".key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(env.path(stem + ".crt"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))

    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(subject, key, issuer, issuer_key, ca=False, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(["skyroute test CA"])
    write("ca", ca_key, issue(ca_name, ca_key, ca_name, ca_key, ca=True))
    k = ec.generate_private_key(ec.SECP256R1())
    write("tls", k, issue(name(["gw"]), k, ca_name, ca_key,
                          san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    for stem, cns in subjects.items():
        k = ec.generate_private_key(ec.SECP256R1())
        write(stem, k, issue(name(cns), k, ca_name, ca_key))


def test_client_certificate_cn_whole_or_not_at_all():
    env = srtest.Env("preauth-cn")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    full = "A" * 64
    make_pki(env, {"max": [full], "long": [full + "B" * 66], "two": [full, "intruder"]})
    tport = srtest.free_port()
    tls = ("[tls]\nlisten = 127.0.0.1:%d\ncert = tls.crt\nkey = tls.key\nclient_ca = ca.crt\n\n"
           % tport)
    # a configured CN longer than a certificate's can be: refused at load,
    # never cut to fit
    conf = env.path("long.conf")
    with open(conf, "w") as f:
        f.write("[gateway]\nid = gs-test\nkey = gs-test.key\n\n" + tls +
                "[client.edge]\ncert_cn = %s\n" % ("C" * 127))
    r = subprocess.run([srtest.SKYROUTED, "-c", conf, "--check-config"], capture_output=True,
                       timeout=30)
    check(r.returncode != 0 and b"cert_cn is 127 characters" in r.stderr,
          "a 127-character cert_cn is refused: %r" % r.stderr)
    g = env.start_gateway("gs-test", [n], sections=tls + "[client.edge]\ncert_cn = %s\n" % full)
    srtest.wait_port(tport, proc=g["proc"])
    p = env.path("p.txt")
    with open(p, "wb") as f:
        f.write(b"hello")
    codes = {}
    for stem in ("max", "long", "two"):
        r = srtest.run(["curl", "-sS", "--http2", "--cacert", env.path("ca.crt"), "--cert",
                        env.path(stem + ".crt"), "--key", env.path(stem + ".key"), "-o",
                        "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + p,
                        "https://127.0.0.1:%d/v1/workloads" % tport], timeout=30)
        codes[stem] = r.stdout.decode()
    print("  " + repr(codes))
    check(codes["max"] == "200", "a 64-character CN is a client")
    check(codes["long"] == "401", "a 130-character CN is nobody, not its first 64 or 127")
    check(codes["two"] == "401", "a subject with two CNs is nobody")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def test_node_refuses_a_stalled_envelope():
    """skyroute-node, like the gateway, does not wait for a silent body: it
    is only authenticated once whole."""
    env = srtest.Env("preauth-node")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub], extra=["--body-timeout", "1"])
    a = Raw(n["port"])
    t0 = time.time()
    a.open_stream(1, 1000, path="/v1/exec")
    got = []
    a.wait(lambda f: f[0] == HEADERS and f[2] == 1 and got.append(f) is None, 6)
    dt = time.time() - t0
    check(got and got[0][3].get(":status") == "408", "the node answers 408: %r" % got)
    check(0.5 <= dt <= 1 + 3, "after the 1-s timeout (+ a sweep): %.1fs" % dt)
    check(srtest.metric(n["admin"], "skyroute_preauth_refused_total",
                        'reason="body_timeout"') == 1, "counted at the node")
    a.close()
    bad = env.close()
    check(not bad, "every process exited cleanly: %s" % bad)


if __name__ == "__main__":
    srtest.run_tests([test_node_refuses_a_stalled_envelope,
                      test_slow_streams_address_cap_and_unauthenticated_streams,
                      test_slow_body_over_http1_on_the_admin_listener,
                      test_signed_upload_flood_refused_before_verification,
                      test_workload_owner_secret_config_and_open_api_warning,
                      test_client_certificate_cn_whole_or_not_at_all])
