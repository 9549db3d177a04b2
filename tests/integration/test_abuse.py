"""HTTP/2 abuse against the gateway's main listener, sent as crafted raw
frames: rapid reset (CVE-2023-44487), CONTINUATION flood, HPACK bomb,
SETTINGS, PING and WINDOW_UPDATE floods, window-update overflow, and a silent connection.
Each must end in a connection error with the gateway's memory bounded, while
another client keeps being served throughout."""

import os
import socket
import struct
import threading
import time

import hpack

import srtest
from srtest import check

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 2, 3, 4, 6, 7, 8, 9)
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid & 0x7fffffff) + payload


def request_block(enc, path="/v1/workloads", extra=()):
    return enc.encode([(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                       (":path", path)] + list(extra))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Attack:
    """One raw connection: sends frames as fast as the socket takes them and
    reports how the server ended it (GOAWAY error code, or EOF/reset)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.goaway = None
        self.closed = False

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def outcome(self, timeout=8.0):
        """Reads until the server closes; returns (closed, goaway_error_code)."""
        self.s.settimeout(0.5)
        buf = b""
        end = time.time() + timeout
        while time.time() < end:
            try:
                chunk = self.s.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            buf += chunk
            while len(buf) >= 9:
                ln = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + ln:
                    break
                if buf[3] == GOAWAY and ln >= 8:
                    self.goaway = int.from_bytes(buf[9 + 4:9 + 8], "big")
                buf = buf[9 + ln:]
        self.s.close()
        return self.closed, self.goaway


class GoodClient(threading.Thread):
    """Keeps submitting workloads with curl while the attacks run."""

    def __init__(self, url, payload):
        super().__init__(daemon=True)
        self.url, self.payload = url, payload
        self.ok = self.bad = 0
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                st, h, body = srtest.curl_post(self.url, self.payload, timeout=20)
                if st == 200:
                    self.ok += 1
                else:
                    self.bad += 1
            except Exception:
                self.bad += 1
            time.sleep(0.05)


def rapid_reset(a):
    enc = hpack.Encoder()
    sid = 1
    for _ in range(3000):
        if not a.send(frame(HEADERS, END_HEADERS, sid, request_block(enc)) +
                      frame(RST_STREAM, 0, sid, struct.pack(">I", 8))):
            break
        sid += 2


def continuation_flood(a):
    enc = hpack.Encoder()
    block = request_block(enc)
    a.send(frame(HEADERS, 0, 1, block))
    filler = enc.encode([("x-filler", "a" * 16)])
    for _ in range(20000):
        if not a.send(frame(CONTINUATION, 0, 1, filler)):
            break


def hpack_bomb(a):
    # one 4 KiB header enters the dynamic table; then every header block
    # references it thousands of times (1 byte each): ~64 MiB per decoded list
    big = hpack.Encoder()
    first = big.encode([(":method", "POST"), (":scheme", "http"), (":authority", "gw"),
                        (":path", "/v1/workloads"), ("x-bomb", "b" * 4000)])
    a.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, first))
    ref = bytes([0x80 | 62])  # indexed: the newest dynamic-table entry
    base = b"\x83\x86\x84"     # :method POST, :scheme http, :path / (static table)
    sid = 3
    for _ in range(50):
        block = base + ref * 15000
        # split into frames of 16 KiB (the default max frame size)
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        out = frame(HEADERS, END_HEADERS | END_STREAM if len(chunks) == 1 else END_STREAM, sid,
                    chunks[0])
        for j, c in enumerate(chunks[1:], 1):
            out += frame(CONTINUATION, END_HEADERS if j == len(chunks) - 1 else 0, sid, c)
        if not a.send(out):
            break
        sid += 2


def settings_flood(a):
    for _ in range(50000):
        if not a.send(frame(SETTINGS, 0, 0) * 20):
            break


def ping_flood(a):
    for i in range(50000):
        if not a.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i * 20 + k)) for k in range(20))):
            break


def window_update_flood(a):
    # increments of 1 with no DATA to answer: flow control asked for nothing
    for _ in range(50000):
        if not a.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 20):
            break


def window_overflow(a):
    a.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7fffffff)))


ATTACKS = [
    ("rapid reset", rapid_reset),
    ("CONTINUATION flood", continuation_flood),
    ("HPACK bomb", hpack_bomb),
    ("SETTINGS flood", settings_flood),
    ("PING flood", ping_flood),
    ("WINDOW_UPDATE flood", window_update_flood),
    ("WINDOW_UPDATE overflow", window_overflow),
]


def test_http2_abuse_ends_in_connection_errors_with_bounded_memory():
    env = srtest.Env("abuse2")
    gkey, gpub = env.keygen("gs-test")
    n = env.start_node("alpha", [gpub])
    g = env.start_gateway("gs-test", [n])
    pid, port = g["proc"].pid, g["port"]
    payload = env.path("p.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(512))
    good = GoodClient(g["url"] + "/v1/workloads", payload)
    good.start()
    time.sleep(0.5)
    base = rss_kb(pid)
    results = []
    for name, fn in ATTACKS:
        a = Attack(port)
        t0 = time.time()
        fn(a)
        closed, code = a.outcome()
        results.append((name, closed, code, time.time() - t0, rss_kb(pid)))
        print("  %-24s closed=%s goaway=%s %.1fs rss=%d KiB" % results[-1], flush=True)
        check(closed, "%s: the server ended the connection" % name)
        check(g["proc"].poll() is None, "%s: the gateway is still running" % name)
    # a client that connects and says nothing is dropped too
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.settimeout(15)
    t0 = time.time()
    try:
        got = s.recv(100)
    except (socket.timeout, OSError):
        got = None
    check(got == b"" and time.time() - t0 < 14, "silent connection closed after the first-request "
          "timeout (%r after %.1fs)" % (got, time.time() - t0))
    s.close()
    good.stop = True
    good.join(30)
    peak = max(r[4] for r in results)
    print("  rss: %d KiB before, %d KiB peak; good client %d ok, %d failed" %
          (base, peak, good.ok, good.bad), flush=True)
    check(peak - base < 100 * 1024, "memory bounded: +%d KiB" % (peak - base))
    check(good.ok >= 5 and good.bad == 0, "the other client kept being served: %d ok, %d failed" %
          (good.ok, good.bad))
    codes = dict((r[0], r[2]) for r in results)
    check(codes["WINDOW_UPDATE overflow"] == 3, "FLOW_CONTROL_ERROR for the window overflow")
    check(codes["SETTINGS flood"] in (11, None) and codes["PING flood"] in (11, None) and
          codes["WINDOW_UPDATE flood"] in (11, None),
          "floods end with ENHANCE_YOUR_CALM or a reset")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


if __name__ == "__main__":
    srtest.run_tests([test_http2_abuse_ends_in_connection_errors_with_bounded_memory])
