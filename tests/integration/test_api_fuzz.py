"""Seeded random requests against the real daemons, three runs:

- a gateway over one HTTP/2 connection from Python's h2: every path and
  method, query strings, skyroute-* headers and bodies drawn from valid
  requests and the values that break parsers (empty, signs, exponents, NaN,
  hex, huge, UTF-8, percent escapes), and the operator feeds' own samples,
  elements and energy forecasts with bytes flipped, cut or replaced, half of
  the uploads with a valid signature;
- a node's /v1/exec, with genuine envelopes mutated the same way, and its
  /v1/batch with several of them at once, the framing sometimes broken too;
- the admin listeners of both over raw HTTP/1.1, fixed cases first.

Each answer must be a status the API defines (never 500), and every error a
JSON object whose "error" says what was wrong. A refused upload, even one
with a valid signature, must leave the stored passes exactly as they were;
only a genuine envelope may run. The daemons must survive all of it and exit
cleanly (under ASan and UBSan in the sanitizer pass, where a leak or a bad
access fails the run).

The seed is printed; SR_API_FUZZ_SEED=N repeats a run, SR_API_FUZZ_N sets
how many requests (2,000, 3,000 and 1,000 by default, each run bounded to
120 s)."""

import json
import os
import random
import re
import socket
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions

import srtest
from srtest import check
import test_batch
import test_feeds as feeds

NASTY = ["", "0", "-0", "1", "-1", "5", "100", "65536", "1.5", "1e999", "-1e999", "1e-320",
         "nan", "NaN", "inf", "-inf", "0x10", "+3", "9" * 40, "9" * 400, "abc", "\u00e9",
         "\u202e\u0661", "any", "orbit", "ground", "target:", "target:idc-1", "target:sat-1",
         "target:" + "x" * 300, "sat-1", "sat-3", "idc-1", "%00", "%", "%zz", "a=b", "&",
         "true", "null", "[]", "{}", "2026-11-24T00:00:00Z", "2026-13-40T25:61:61Z",
         "-9223372036854775808", "9223372036854775807", "18446744073709551616"]
HEADERS = ["skyroute-deadline-ms", "skyroute-work", "skyroute-result-bytes", "skyroute-place",
           "skyroute-data-at", "skyroute-handler", "prefer", "content-type", "skyroute-signature"]
QUERY_KEYS = ["work", "bytes", "result_bytes", "deadline_ms", "place", "data_at", "async",
              "format", "sat", "from", "to", "station", "limit"]
METHODS = ["GET", "GET", "POST", "POST", "PUT", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
ALLOWED = {200, 201, 202, 204, 304, 307, 400, 401, 403, 404, 405, 409, 411, 413, 415, 422,
           429, 502, 503, 504}
H1_ALLOWED = ALLOWED | {431, 501, 505}  # and from the HTTP/1.1 parser


def header_value(rng):
    v = rng.choice(NASTY)
    if rng.random() < 0.2:
        v = "%s:%s" % (rng.choice(["acme", "zeta", "", "x" * 80]),
                       rng.choice(["", "AAAA", "=" * 5, "A" * 86 + "==", v]))
    return v.strip(" \t")  # nghttp2 refuses leading or trailing blanks as a protocol error


def mutate(rng, data):
    """|data| with a few bytes flipped, a part cut or repeated, or a number replaced."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if not b:
            break
        i = rng.randrange(len(b))
        if op < 0.4:
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.55:
            del b[i:i + rng.randint(1, 64)]
        elif op < 0.65:
            b[i:i] = b[i:i + rng.randint(1, 64)] * rng.randint(2, 20)
        elif op < 0.8:
            b = b[:i]
        else:
            b[i:i] = rng.choice(NASTY).encode()
    return bytes(b)


class Fuzz:
    def __init__(self, env, g, rng):
        self.env, self.g, self.rng = env, g, rng
        self.samples = []
        for name in ("skyroute-passes.json", "aws-contacts.json", "satnogs-observations.json",
                     "ion-contacts.txt"):
            self.samples.append(feeds.shifted_sample(env, name)[1].encode())
        at = feeds.iso(feeds.now_ms() + 3600000)
        self.elements = [srtest.run([srtest.SKYROUTE, "elements", "synth", "--overhead",
                                     feeds.STATION, "--at", at, "--first-catnum", num,
                                     "--format", fmt], check=True).stdout
                         for num, fmt in (("43017", "tle"), ("43880", "omm-json"))]
        self.ids = []
        self.energy = json.dumps({"points": [{"t": "2026-11-24T00:00:00Z", "price_per_kwh": 0.1,
                                              "carbon_g_per_kwh": 300, "pv_surplus_w": 0}]}).encode()

    def query(self):
        rng = self.rng
        parts = []
        for _ in range(rng.randint(0, 5)):
            k = rng.choice(QUERY_KEYS + ["", "x" * 100])
            v = urllib.parse.quote(rng.choice(NASTY), safe="")
            parts.append(rng.choice(["%s=%s" % (k, v), k, "=" + v, "%s=%s" % (k, rng.choice(NASTY[:12]))]))
        if rng.random() < 0.1:
            parts.append(rng.choice(["&&", "==", "%", "%2", "a=%ZZ", ";", "#frag"]))
        return ("?" + "&".join(parts)) if parts or rng.random() < 0.3 else ""

    def path(self, what):
        rng = self.rng
        wid = rng.choice(["%032x" % rng.getrandbits(128), "", "zz", "0" * 32, "a" * 300,
                          "../x", "%00", "0" * 31] + self.ids)
        if what == "status":
            return "/v1/workloads/" + wid
        return rng.choice([
            "/v1/workloads", "/v1/workloads", "/v1/workloads/" + wid,
            "/v1/route" + self.query(), "/v1/route" + self.query(), "/v1/passes" + self.query(),
            "/v1/elements" + self.query(), "/v1/targets", "/v1/targets/idc-1/energy",
            "/v1/targets/" + rng.choice(["sat-1", "nobody", "", "%2e%2e", "x" * 200]) +
            rng.choice(["/energy", "", "/energyx", "/energy/"]),
            "/v1/uplink", "/v1/outbox", "/v1/cluster", "/v1/cluster/passes", "/", "/status",
            "/metrics", "/healthz", "/v1", "/v1/", "//v1/workloads", "/v1/workloads?x=1",
            "/" + "".join(rng.choice("abc/%._~-0") for _ in range(rng.randint(0, 40))),
        ])

    def headers(self, names, k):
        rng = self.rng
        hdrs = []
        for name in rng.sample(names, min(k, len(names))):
            if name == "skyroute-handler":
                v = rng.choice(["echo", "compute", "nope", "", "x" * 300, "\u00e9"])
            elif name == "prefer":
                v = rng.choice(["respond-async", "respond-async, wait=1", "", "nonsense"])
            elif name == "content-type":
                v = rng.choice(["application/json", "text/plain", "application/vnd.msgpack",
                                "text/csv", "application/xml", "", "x/y; charset=utf-8"])
            else:
                v = header_value(rng)
            hdrs.append((name, v))
        return hdrs

    def request(self):
        """(method, path, headers, body, signed): mostly a method the path takes, so that
        the parser behind it runs; sometimes anything at all."""
        rng = self.rng
        kind = rng.choices(["work", "status", "route", "getpasses", "passes", "elements",
                            "energy", "envelope", "other"], [5, 2, 4, 2, 4, 3, 2, 2, 3])[0]
        signed = False
        if kind == "work":
            method, path = "POST", "/v1/workloads"
            hdrs = self.headers(HEADERS[:6] + ["prefer"], rng.randint(0, 5))
            body = os.urandom(rng.choice([0, 1, 16, 1024, 8000]))
        elif kind == "status":
            method, path, hdrs, body = rng.choice(["GET", "DELETE"]), self.path("status"), [], b""
        elif kind == "route":
            method, path, hdrs, body = "GET", "/v1/route" + self.query(), [], b""
        elif kind == "getpasses":
            method, path, hdrs, body = "GET", rng.choice(["/v1/passes", "/v1/elements",
                                                          "/v1/targets"]) + self.query(), [], b""
        elif kind in ("passes", "elements", "energy"):
            method = "PUT"
            path = {"passes": rng.choice(["/v1/passes", "/v1/passes?epoch=2026-11-24T00:00:00Z",
                                          "/v1/passes" + self.query()]),
                    "elements": "/v1/elements" + rng.choice(["", "", self.query()]),
                    "energy": "/v1/targets/idc-1/energy"}[kind]
            base = rng.choice({"passes": self.samples, "elements": self.elements,
                               "energy": [self.energy]}[kind])
            body = base if rng.random() < 0.1 else mutate(rng, base)
            hdrs = self.headers(["content-type"], rng.randint(0, 1))
            if rng.random() < 0.5:
                # a valid signature over a (most likely broken) body: the parser behind it runs
                p = self.env.path("signed.bin")
                with open(p, "wb") as f:
                    f.write(body)
                who = "zeta" if rng.random() < 0.2 else "acme"
                ctype = [v for n, v in hdrs if n == "content-type"]
                try:
                    hdrs.append(("skyroute-signature", feeds.sign(feeds.key(self.env, who), p, path,
                                                                  ctype[0] if ctype else None)))
                    signed = True
                except Exception:  # a fuzzed query the signature cannot carry (a repeated name)
                    hdrs += self.headers(["skyroute-signature"], 1)
            else:
                hdrs += self.headers(["skyroute-signature"], 1)
        elif kind == "envelope":
            method, path = "POST", rng.choice(["/v1/uplink", "/v1/outbox"])
            hdrs = self.headers(["content-type"], 1)
            body = mutate(rng, bytes([0x94, 0xa3]) + b"SR1" + os.urandom(rng.randint(0, 300)))
        else:
            method, path = rng.choice(METHODS), self.path("any")
            hdrs = self.headers(HEADERS, rng.randint(0, 4))
            body = os.urandom(rng.choice([0, 0, 16, 3000]))
        return method, path, hdrs, body, signed


class Conn:
    """One h2c connection; requests go one at a time (answers are checked in order)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.c.initiate_connection()
        self.s.sendall(self.c.data_to_send())

    def pump(self, sid, got):
        data = self.s.recv(65536)
        if not data:
            raise AssertionError("the gateway closed the connection")
        for e in self.c.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived) and e.stream_id == sid:
                got["headers"] = dict(e.headers)
            elif isinstance(e, h2.events.DataReceived):
                self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if e.stream_id == sid:
                    got["body"] += e.data
            elif isinstance(e, h2.events.StreamEnded) and e.stream_id == sid:
                got["done"] = True
            elif isinstance(e, h2.events.StreamReset) and e.stream_id == sid:
                got["reset"] = e.error_code
            elif isinstance(e, h2.events.ConnectionTerminated):
                raise AssertionError("GOAWAY from the gateway: %r" % e)
        self.s.sendall(self.c.data_to_send())

    def send(self, method, path, hdrs, body):
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(":method", method), (":scheme", "http"),
                                  (":authority", "gw"), (":path", path)] + hdrs,
                            end_stream=not body)
        self.s.sendall(self.c.data_to_send())
        got = {"headers": None, "body": b"", "done": False, "reset": None}
        off = 0
        end = time.time() + 30
        while off < len(body) and got["reset"] is None and not got["done"]:
            room = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if room <= 0:
                self.pump(sid, got)
            else:
                chunk = body[off:off + room]
                off += len(chunk)
                self.c.send_data(sid, chunk, end_stream=off == len(body))
                self.s.sendall(self.c.data_to_send())
            check(time.time() < end, "sending %s %s took over 30 s" % (method, path[:80]))
        while not got["done"] and got["reset"] is None:
            check(time.time() < end, "no answer to %s %s in 30 s" % (method, path[:80]))
            self.pump(sid, got)
        return got

    def close(self):
        self.c.close_connection()
        self.s.sendall(self.c.data_to_send())
        self.s.close()


def ask(conn, what, method, path, hdrs, body, statuses):
    """Sends one request; returns (status, answer). The stream must not be reset."""
    try:
        got = conn.send(method, path, hdrs, body)
    except (AssertionError, h2.exceptions.H2Error) as e:
        raise AssertionError("%s: %s: %s" % (what, type(e).__name__, e))
    check(got["reset"] is None, "%s: stream reset (%s)" % (what, got["reset"]))
    st = int(got["headers"][":status"])
    statuses[st] = statuses.get(st, 0) + 1
    return st, got


def check_error(what, st, got, allowed=ALLOWED):
    """A status the API defines, and a JSON object whose "error" says what was wrong."""
    check(st in allowed, "%s: status %d: %r" % (what, st, got["body"][:300]))
    try:
        j = json.loads(got["body"])
    except ValueError:
        j = None
    check(isinstance(j, dict) and isinstance(j.get("error"), str) and j["error"],
          "%s: %d without a JSON error: %r" % (what, st, got["body"][:300]))


def seeded(what, default_n):
    """(seed, count, rng) of one run: SR_API_FUZZ_SEED and SR_API_FUZZ_N, or a fresh seed."""
    seed = int(os.environ.get("SR_API_FUZZ_SEED") or time.time() * 1000) % (1 << 32)
    count = int(os.environ.get("SR_API_FUZZ_N") or default_n)
    print("%s: seed %d (SR_API_FUZZ_SEED=%d repeats it), %d requests" % (what, seed, seed, count))
    return seed, count, random.Random(seed)


def stored_passes(g):
    st, body = feeds.curl("GET", g["url"] + "/v1/passes?from=2000-01-01T00:00:00Z"
                          "&to=2100-01-01T00:00:00Z")
    check(st == 200, "GET /v1/passes: %s %r" % (st, body))
    return body["passes"]


def test_random_requests_get_named_errors_and_change_nothing():
    seed, count, rng = seeded("api fuzz", 2000)
    env = srtest.Env("apifuzz")
    gkey, gpub = env.keygen("gs-test")
    node = env.start_node("idc-1", [gpub], extra=["--gops", "1000000"])
    targets = [dict(node, extra={"rtt_ms": 5})]
    for sid, ids in feeds.SATS.items():
        _, pub = env.keygen(sid)
        targets.append({"id": sid, "kind": "satellite", "url": "http://127.0.0.1:9",
                        "pub": pub, "extra": ids})
    env.keygen("acme")
    env.keygen("zeta")
    ops = ("[operator.acme]\npubkey = acme.pub\nsatellites = sat-1, sat-2\ntargets = idc-1\n\n"
           "[operator.zeta]\npubkey = zeta.pub\nsatellites = sat-3\n")
    g = env.start_gateway("gs-test", targets, sections=ops,
                          extra_gateway="station = %s\nmin_el_deg = 10\nmax_body = 65536"
                          % feeds.STATION)
    # something stored first, so that "nothing changed" has something to lose
    sample, _ = feeds.shifted_sample(env, "skyroute-passes.json")
    st, body = feeds.upload(g, "passes", sample, feeds.key(env, "acme"), "application/json")
    check(st == 200, "the first schedule stored: %s %r" % (st, body))
    before = stored_passes(g)
    check(len(before) > 0, "passes stored")

    fz = Fuzz(env, g, rng)
    conn = Conn(g["port"])
    statuses, refused_signed, accepted = {}, 0, 0
    deadline = time.time() + 120
    done = 0
    for i in range(count):
        if time.time() > deadline:
            break
        method, path, hdrs, body, signed = fz.request()
        what = "request %d (seed %d): %s %s %r, %d bytes" % (i, seed, method, path[:120],
                                                             hdrs, len(body))
        st, got = ask(conn, what, method, path, hdrs, body, statuses)
        check(st in ALLOWED, "%s: status %d: %r" % (what, st, got["body"][:300]))
        if st >= 400 and method != "HEAD":
            check_error(what, st, got)
        if method == "PUT" and 200 <= st < 300:
            accepted += 1
            before = stored_passes(g)  # a mutation that is still valid: stored, as it should
        elif signed and st >= 400 and not path.startswith("/v1/targets"):
            refused_signed += 1
            check(stored_passes(g) == before,
                  "%s: refused with %d, yet the stored passes changed" % (what, st))
        loc = got["headers"].get("location", "")
        if st == 202 and loc.startswith("/v1/workloads/") and len(fz.ids) < 50:
            fz.ids.append(loc[len("/v1/workloads/"):])
        done += 1
    conn.close()
    print("api fuzz: %d requests, statuses %s; %d validly signed broken uploads refused, "
          "%d uploads accepted" % (done, sorted(statuses.items()), refused_signed, accepted))
    check(done >= min(count, 300), "only %d requests in the time allowed" % done)
    check(refused_signed > 0, "some validly signed broken uploads reached the parsers")
    check(srtest.curl(["http://127.0.0.1:%d/healthz" % g["admin"]])[0] == 200,
          "the gateway is still healthy")
    check(stored_passes(g) == before, "the stored passes are as they were")
    feeds.finish(env)


def split_bins(body):
    """The msgpack bins a batch message holds, or None if it is not one."""
    out, p = [], 0
    while p < len(body):
        w = {0xc4: 1, 0xc5: 2, 0xc6: 4}.get(body[p])
        if not w or p + 1 + w > len(body):
            return None
        n = int.from_bytes(body[p + 1:p + 1 + w], "big")
        p += 1 + w
        if p + n > len(body):
            return None
        out.append(body[p:p + n])
        p += n
    return out or None


def batch_request(conn, rng, genuine, what, statuses, ran):
    """POST /v1/batch with 1-6 envelopes, genuine or mutated, its framing
    sometimes broken too: a framing error is refused whole by name; otherwise
    every envelope gets one item, and only a genuine one runs (200) or is
    answered with its stored result (409)."""
    envs = [rng.choice(genuine) if rng.random() < 0.2 else mutate(rng, rng.choice(genuine))
            for _ in range(rng.randint(1, 6))]
    body = b"".join(test_batch.msgpack_bin(e) for e in envs)
    framing_ok = rng.random() < 0.8
    if not framing_ok:
        body = mutate(rng, body)
    st, got = ask(conn, what, "POST", "/v1/batch",
                  [("content-type", "application/vnd.skyroute.batch+msgpack")], body, statuses)
    if st != 200:
        check_error(what, st, got)
        check(not framing_ok or len(body) == 0, "%s: well framed, refused %d" % (what, st))
        return
    check(got["headers"].get("content-type") == "application/vnd.skyroute.batch+msgpack",
          "%s: %r" % (what, got["headers"]))
    items = test_batch.read_items(got["body"])
    envs = split_bins(body)  # what the node saw, the framing mutated or not
    check(envs is not None and sorted(i[0] for i in items) == list(range(len(envs))),
          "%s: one item per envelope: %r" % (what, [i[:2] for i in items]))
    for idx, ist, ctype, ibody in items:
        if ist == 200 or (ist == 409 and ctype == "application/vnd.msgpack"):
            check(envs[idx] in genuine, "%s: item %d: a changed envelope was "
                  "taken (%d)" % (what, idx, ist))
            ran.add(genuine.index(envs[idx]))
        else:
            check_error("%s, item %d" % (what, idx), ist, {"body": ibody})


def test_random_envelopes_to_a_node_are_refused_by_name():
    """Genuine envelopes sealed by `skyroute seal`, then bytes flipped, cut,
    repeated or replaced, POSTed to a node's /v1/exec. Only an envelope whose
    bytes are exactly a genuine one may run (200); every other one is refused
    with a JSON error, and the node counts no execution beyond the genuine."""
    seed, count, rng = seeded("envelope fuzz", 3000)
    env = srtest.Env("envfuzz")
    gkey, gpub = env.keygen("gs-test")
    node = env.start_node("alpha", [gpub], extra=["--gops", "1000000"])
    genuine = []
    for i, (handler, size) in enumerate([("echo", 5), ("echo", 3000), ("compute", 10),
                                         ("nope", 1), ("echo", 70000)]):
        genuine.append(srtest.run([srtest.SKYROUTE, "seal", "--key", gkey, "--to", "alpha",
                                   "--handler", handler, "--deadline-ms", "600000"],
                                  input=os.urandom(size), check=True).stdout)
    conn = Conn(node["port"])
    statuses, ran = {}, set()
    deadline = time.time() + 120
    done = 0
    for i in range(count):
        if time.time() > deadline:
            break
        if rng.random() < 0.15:
            batch_request(conn, rng, genuine, "batch %d (seed %d)" % (i, seed), statuses, ran)
            done += 1
            continue
        base = rng.choice(genuine)
        body = base if rng.random() < 0.05 else mutate(rng, base)
        path = "/v1/exec" if rng.random() < 0.9 else rng.choice(["/v1/exec?x", "/v1/execx", "/"])
        hdrs = [("content-type", "application/vnd.msgpack")] if rng.random() < 0.8 else []
        what = "request %d (seed %d): POST %s, %d bytes" % (i, seed, path, len(body))
        st, got = ask(conn, what, "POST", path, hdrs, body, statuses)
        stored = got["headers"].get("skyroute-replay") == "stored-result"
        if st == 200 or stored:
            # a genuine envelope runs once; sent again, its first result comes back with 409
            check(body in genuine and path == "/v1/exec" and (st == 200 or st == 409),
                  "%s: a changed envelope was taken (%d)" % (what, st))
            ran.add(genuine.index(body))
        else:
            check_error(what, st, got)
        done += 1
    conn.close()
    print("envelope fuzz: %d requests, statuses %s" % (done, sorted(statuses.items())))
    executed = srtest.metric(node["admin"], "skyroute_node_executed_total")
    check(executed <= len(ran), "the node ran %s envelopes, %d genuine ones answered 200"
          % (executed, len(ran)))
    feeds.finish(env)


# (raw request, status, words its error must hold), sent to a node's admin listener first
H1_CASES = [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, None),
    (b"GET /healthz HTTP/1.0\r\n\r\n", 200, None),
    (b"GET /healthz HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 is not supported"),
    (b"GET /healthz HTTP/1.x\r\n\r\n", 400, "HTTP/DIGIT.DIGIT"),
    (b"GET /healthz HTTP/1.1 x\r\n\r\n", 400, "request line"),
    (b"GET  /healthz HTTP/1.1\r\n\r\n", 400, "request line"),
    (b"G(T /healthz HTTP/1.1\r\n\r\n", 400, "method is not a token"),
    (b"GET http://x/healthz HTTP/1.1\r\n\r\n", 400, "request target"),
    (b"GET /h\xc3\xa9 HTTP/1.1\r\n\r\n", 400, "request target"),
    (b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "line 2: not NAME: VALUE"),
    (b"GET /healthz HTTP/1.1\r\nNoColon\r\n\r\n", 400, "line 2: not NAME: VALUE"),
    (b"GET /healthz HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", 400, "line 3: obsolete line folding"),
    (b"GET /healthz HTTP/1.1\r\nX-Ctl: a\x01b\r\n\r\n", 400, "control character in the value of X-Ctl"),
    (b"POST /v1/submit HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
     "line 3: a second content-length"),
    (b"POST /v1/submit HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab", 409,
     "no --gateway"),
    (b"POST /v1/submit HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "content-length"),
    (b"POST /v1/submit HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, "chunked"),
]
GOOD_LINES = ["Host: gw", "Connection: close", "Connection: keep-alive", "Accept: */*", "X-Empty:",
              "Content-Type: application/json", "User-Agent: fuzz/1.0", "X-Tab: a\tb"]
BAD_LINES = ["Transfer-Encoding: chunked", "NoColon", ": empty name", "X-Long: " + "v" * 9000,
             "X-Fold: a\r\n  folded", "Bad Name: x", "X-Ctl: a\x01b", "Content-Length: 3"]


def http1_request(rng, paths):
    """Raw HTTP/1.1 bytes: a request line, header lines and a body, one part or
    another broken now and then."""
    method = rng.choice(["GET"] * 6 + ["HEAD", "POST", "PUT", "DELETE", "OPTIONS"])
    if rng.random() < 0.1:
        method = rng.choice(["get", "G ET", "", "G(T", "\u00e9".encode().decode("latin-1")])
    target = rng.choice(paths)
    if rng.random() < 0.1:
        target = rng.choice(["*", "http://127.0.0.1/metrics", "", "/%00", "/" + "a" * 9000,
                             "/metrics?" + "x=" * 50, "/../../etc/passwd", "/\u00e9"])
    version = "HTTP/1.1" if rng.random() < 0.85 else rng.choice(
        ["HTTP/1.0", "HTTP/2.0", "HTTP/1.x", "", "http/1.1", "HTTP/1.1 extra", "HTTP/1.2"])
    lines = ["%s %s %s" % (method, target, version) if rng.random() < 0.97 else
             rng.choice(["GET /", "GET", "  ", "GET  / HTTP/1.1"])]
    body = os.urandom(rng.choice([0, 0, 0, 5, 100, 3000]))
    clen = rng.choice([None, len(body)])
    if rng.random() < 0.1:
        clen = rng.choice(["-1", "1e3", "0x10", "", "99999999999999999999", str(len(body) + 5),
                           "%d, %d" % (len(body), len(body))])
    if clen is not None:
        lines.append("Content-Length: %s" % clen)
    for _ in range(rng.randint(0, 4)):
        lines.append(rng.choice(BAD_LINES if rng.random() < 0.15 else GOOD_LINES))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    if rng.random() < 0.1:
        raw = mutate(rng, raw)
    return raw


def ask_http1(port, raw):
    """Sends |raw| on a new connection, half-closes, and returns what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_http1(s)
    s.close()
    return data


def parse_http1(what, data):
    """(status, headers, body) of one HTTP/1.1 answer; it must be well formed."""
    head, sep, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) [^\r\n]*$", head.split(b"\r\n")[0])
    check(m and sep, "%s: not an HTTP/1.1 answer: %r" % (what, data[:300]))
    hdrs = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    return int(m.group(1)), hdrs, body


def read_http1(sock):
    """Everything the server sends until it closes (or 3 s of silence)."""
    data = b""
    end = time.time() + 15
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_random_http1_requests_to_the_admin_listeners():
    """Raw HTTP/1.1 requests, broken in their request line, header lines,
    content-length or body, to the admin listeners of a gateway and a node
    (each on its own connection, the client then half-closes). Each must get
    a well-formed HTTP/1.1 answer with a defined status (an error one naming
    the problem in JSON, except 431, which the parser sends before it has a
    request), or a close without a byte when the request was cut short; both
    daemons stay healthy."""
    seed, count, rng = seeded("http/1.1 fuzz", 1000)
    env = srtest.Env("h1fuzz")
    gkey, gpub = env.keygen("gs-test")
    node = env.start_node("alpha", [gpub])
    g = env.start_gateway("gs-test", [node])
    paths = ["/", "/status", "/metrics", "/healthz", "/readyz", "/v1/submit", "/v1/inbox/" + "0" * 32,
             "/v1/inbox/x", "/nope", "/metrics?x=1"]
    for raw, want, words in H1_CASES:
        what = "%r" % raw[:200]
        st, hdrs, body = parse_http1(what, ask_http1(node["admin"], raw))
        check(st == want, "%s: %d, not %d: %r" % (what, st, want, body[:300]))
        if words:
            check(words in json.loads(body)["error"], "%s: %r names %r" % (what, body, words))
    statuses, silent = {}, 0
    deadline = time.time() + 120
    done = 0
    for i in range(count):
        if time.time() > deadline:
            break
        port = rng.choice([g["admin"], node["admin"]])
        raw = http1_request(rng, paths)
        what = "request %d (seed %d) to %s: %r" % (i, seed, "the gateway" if port == g["admin"]
                                                   else "the node", raw[:300])
        data = ask_http1(port, raw)
        done += 1
        if not data:
            silent += 1
            continue
        st, hdrs, body = parse_http1(what, data)
        statuses[st] = statuses.get(st, 0) + 1
        check(st in H1_ALLOWED, "%s: status %d: %r" % (what, st, data[:300]))
        n = int(hdrs.get(b"content-length", b"-1"))
        is_head = raw.startswith(b"HEAD ")
        check(n >= 0 and (is_head or len(body) >= n),
              "%s: content-length %d, %d bytes came: %r" % (what, n, len(body), data[:300]))
        if st >= 400 and st != 431 and not is_head:
            check_error(what, st, {"body": body[:n]}, H1_ALLOWED)
    print("http/1.1 fuzz: %d requests, statuses %s, %d closed without an answer"
          % (done, sorted(statuses.items()), silent))
    check(silent < done // 2, "most requests are answered")
    for port in (g["admin"], node["admin"]):
        check(srtest.curl(["http://127.0.0.1:%d/healthz" % port])[0] == 200, "still healthy")
    feeds.finish(env)


if __name__ == "__main__":
    srtest.run_tests([test_random_requests_get_named_errors_and_change_nothing,
                      test_random_envelopes_to_a_node_are_refused_by_name,
                      test_random_http1_requests_to_the_admin_listeners])
