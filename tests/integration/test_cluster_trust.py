"""Federation records under attack from a process that can write to NATS but
holds no station key: one nats-server (JetStream) on loopback, two gateways,
A and B, each with its own IDC node and the same two satellites. The attacker
is this test, speaking the NATS protocol over a plain TCP socket (RawNats):
it reads records out of the buckets, puts them back later, puts them under
other keys, deletes keys and flips bytes.

Each attack is checked through the API (the state a client sees is
unchanged) and the refusal metric (skyroute_cluster_rejected_total, by record
and reason):

  - work accepted and run at A is fetched at B (results from any station);
  - a result whose bytes were altered in the results bucket: refused at fetch,
    and the client at B still gets the genuine result;
  - a station's signed result for workload X put under workload Y's key:
    refused (502 where nothing else is stored for Y; the genuine result when
    it is);
  - an older signed pass record of A's put back: B's view keeps the newer one;
  - a KV delete of A's passes key: B's view is unchanged;
  - an element set shared by A for an operator who may not speak for that
    satellite at B: not used at B;
  - A's heartbeat captured while it ran, put back after A stopped: B still
    shows A down.

Short intervals (heartbeat 200 ms, state_ttl_s 1) keep it to a few seconds of
waiting. Only processes this test started are stopped.
"""

import base64
import json
import os
import socket
import time

import srtest
from srtest import check
from test_cluster import (curl, gateway_conf, get_json, log, single_nats, start_gw, submit,
                          upload, wait_for)


class RawNats:
    """Just enough of the NATS client protocol (INFO/CONNECT, PUB, HPUB, SUB,
    MSG, HMSG, PING/PONG) to act as a process with access to the server and
    none of the stations' keys."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.sid = 0
        self._line()  # INFO
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                       b'"no_responders":true}\r\nPING\r\n')
        while self._line() != b"PONG":
            pass

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise AssertionError("NATS closed the connection")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _take(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n + 2:]
        return d

    def _reply(self, inbox):
        """The payload of the next message to |inbox| (headers dropped)."""
        while True:
            line = self._line()
            if line == b"PING":
                self.s.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise AssertionError("NATS: %r" % line)
            parts = line.split()
            if parts and parts[0] == b"MSG":
                data = self._take(int(parts[-1]))
            elif parts and parts[0] == b"HMSG":
                raw = self._take(int(parts[-1]))
                data = raw[int(parts[-2]):]
            else:
                continue
            if parts[1] == inbox.encode():
                return data

    def request(self, subject, payload=b"", headers=None):
        self.sid += 1
        inbox = "_INBOX.attacker.%d" % self.sid
        self.s.sendall(b"SUB %s %d\r\n" % (inbox.encode(), self.sid))
        if headers:
            h = b"NATS/1.0\r\n" + b"".join(b"%s: %s\r\n" % kv for kv in headers) + b"\r\n"
            self.s.sendall(b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), inbox.encode(), len(h), len(h) + len(payload), h, payload))
        else:
            self.s.sendall(b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), inbox.encode(),
                                                        len(payload), payload))
        out = self._reply(inbox)
        self.s.sendall(b"UNSUB %d\r\n" % self.sid)
        return out

    def get(self, bucket, key):
        """The latest value under |key|, read as any client can."""
        r = json.loads(self.request("$JS.API.STREAM.MSG.GET.KV_" + bucket, json.dumps(
            {"last_by_subj": "$KV.%s.%s" % (bucket, key)}).encode()))
        check("message" in r, "read %s/%s: %r" % (bucket, key, r))
        return base64.b64decode(r["message"]["data"])

    def put(self, bucket, key, data):
        ack = json.loads(self.request("$KV.%s.%s" % (bucket, key), data))
        check("error" not in ack, "put %s/%s: %r" % (bucket, key, ack))

    def delete(self, bucket, key):
        ack = json.loads(self.request("$KV.%s.%s" % (bucket, key), b"",
                                      [(b"KV-Operation", b"DEL")]))
        check("error" not in ack, "delete %s/%s: %r" % (bucket, key, ack))

    def close(self):
        self.s.close()


def rejected(g, record, reason):
    return srtest.metric(g["admin"], "skyroute_cluster_rejected_total",
                         'record="%s",reason="%s"' % (record, reason))


def test_federation_records_resist_a_nats_only_attacker():
    srtest.scenario("cluster-trust", _scenario, tolerate=("nats",))


def _scenario(env):
    t0 = time.time()
    port = single_nats(env)
    keys = {g: env.keygen(g) for g in ("gs-a", "gs-b")}
    env.keygen("ops")
    trust = [k[1] for k in keys.values()]
    idc = {g: env.start_node("idc-" + g[-1], trust) for g in keys}
    sats = []
    for sid, cat in (("sat-1", "90000"), ("sat-2", "90001")):
        env.keygen(sid)
        sats.append({"id": sid, "kind": "satellite", "url": "http://127.0.0.1:1",
                     "pub": env.path(sid + ".pub"), "extra": {"catnum": cat}})
    gws = {}
    for g in keys:
        peer = "gs-b" if g == "gs-a" else "gs-a"
        gws[g] = gateway_conf(env, g, [idc[g]] + sats, ["nats://127.0.0.1:%d" % port], [peer])
        with open(gws[g]["conf"]) as f:
            text = f.read()
        text = (text.replace("replicas = 3", "replicas = 1")
                .replace("state_ttl_s = 3", "state_ttl_s = 1")
                .replace("heartbeat_ms = 500", "heartbeat_ms = 200"))
        if g == "gs-b":
            # at B, operator ops speaks for sat-1 only
            text = text.replace("satellites = *", "satellites = sat-1")
        with open(gws[g]["conf"], "w") as f:
            f.write(text)
        start_gw(env, gws[g])
    A, B = gws["gs-a"], gws["gs-b"]

    def alive_at(g, station):
        st, j = get_json(g, "/v1/cluster")
        return st == 200 and j["connected"] and any(
            s["name"] == station and s["alive"] for s in j["stations"])

    wait_for("A and B to see each other", lambda: alive_at(A, "gs-b") and alive_at(B, "gs-a"),
             20, every=0.1)
    nats = RawNats(port)
    log("two stations up and seeing each other at %.1f s" % (time.time() - t0))

    # -- work accepted and run at A, fetched at B ---------------------------------------------
    ids, bodies = [], {}
    for i in range(2):
        p = env.path("w%d.bin" % i)
        with open(p, "wb") as f:
            f.write(os.urandom(300))
        wid = submit(A, p, ["skyroute-place: target:idc-a"])
        ids.append(wid)

    def done(g, wid):
        r = curl([g["url"] + "/v1/workloads/" + wid])
        return r if r[0] == 200 else None

    # and one forwarded to B's IDC: B runs it and publishes its result for A
    p = env.path("w.bin")
    with open(p, "wb") as f:
        f.write(os.urandom(300))
    wait_for("A to plan B's IDC", lambda: any(
        v["target"] == "idc-b@gs-b" and v["planned"] for v in get_json(A, "/v1/cluster")[1]["views"]),
        10, every=0.1)
    w = submit(A, p, ["skyroute-place: target:idc-b@gs-b"])
    for wid in ids + [w]:
        bodies[wid] = wait_for("%s done at A" % wid, lambda: done(A, wid), 15, every=0.1)[2]
    check(srtest.metric(A["admin"], "skyroute_cluster_results_imported_total") == 1,
          "W ran at B and came back to A")
    x, y = ids
    st, h, body = wait_for("A's result at B", lambda: done(B, x), 10, every=0.1)
    check(body == bodies[x] and h.get("skyroute-station") == "gs-a",
          "B answers with A's result: %s %r" % (st, h))
    log("work accepted and run at A is fetched at B (skyroute-station: gs-a)")

    # -- a result altered in the bucket: refused, the genuine one served ----------------------
    genuine_x = nats.get("sr_results", x)
    forged = bytearray(genuine_x)
    forged[-1] ^= 0x01  # the last byte of the signature
    before = rejected(B, "result", "env_badsig")
    nats.put("sr_results", x, bytes(forged))
    st, h, body = curl([B["url"] + "/v1/workloads/" + x])
    check(st == 200 and body == bodies[x], "B still serves the genuine result: %s" % st)
    # counted where B read it: at fetch, and (earlier or later) by its watch of the bucket
    check(rejected(B, "result", "env_badsig") >= before + 1, "B counted the forged value")
    st, _, body = curl([A["url"] + "/v1/workloads/" + x])
    check(st == 200 and body == bodies[x], "A's own answer is unchanged")
    log("a result altered in the bucket is refused at fetch; B serves the genuine one")

    # -- X's signed result under Y's key, and under an id nobody submitted --------------------
    before = rejected(B, "result", "env_misaddressed")
    nats.put("sr_results", y, genuine_x)
    st, _, body = curl([B["url"] + "/v1/workloads/" + y])
    check(st == 200 and body == bodies[y] and body != bodies[x],
          "B serves Y's own result, not X's: %s" % st)
    z = os.urandom(16).hex()
    nats.put("sr_results", z, nats.get("sr_results", w))
    st, _, body = curl([B["url"] + "/v1/workloads/" + z])
    check(st == 502, "W's result under a fresh id is refused: %s %r" % (st, body[:200]))
    check(rejected(B, "result", "env_misaddressed") >= before + 2,
          "both refusals counted at B: %s" % rejected(B, "result", "env_misaddressed"))
    st, _, body = curl([A["url"] + "/v1/workloads/" + y])
    check(st == 200 and body == bodies[y], "A's answer for Y is unchanged")
    log("a signed result for X under Y's key is refused (Y's genuine result served), and B's "
        "result for W under a fresh id Z (502)")

    # -- passes: an older signed record put back, and an unsigned delete ----------------------
    def sched(path, start, n):
        # n passes from |start| to |start| + 5820 s: a newer schedule replaces the span
        step = 5400 // (n - 1)
        passes = [{"sat": "sat-1", "aos": srtest.iso(start + k * step)[:-4] + "Z",
                   "los": srtest.iso(start + k * step + 420)[:-4] + "Z"} for k in range(n)]
        with open(path, "w") as f:
            json.dump({"station": "gs-a", "passes": passes}, f)
        return [(p["aos"][:19], p["los"][:19]) for p in passes]

    def view_at_b():
        st, j = get_json(B, "/v1/cluster/passes?sat=sat-1")
        check(st == 200, "GET /v1/cluster/passes at B: %s" % st)
        return [(p["aos"][:19], p["los"][:19]) for p in j["stations"].get("gs-a", [])]

    base = int(time.time()) + 3 * 3600
    old = sched(env.path("old.json"), base, 2)
    upload(env, A, env.path("old.json"), "passes", "application/json")
    wait_for("A's first schedule at B", lambda: view_at_b() == old, 10, every=0.1)
    old_rec = nats.get("sr_passes", "gs-a.sat-1")
    new = sched(env.path("new.json"), base, 3)
    upload(env, A, env.path("new.json"), "passes", "application/json")
    wait_for("A's newer schedule at B", lambda: view_at_b() == new, 10, every=0.1)
    before = rejected(B, "passes", "env_replay")
    nats.put("sr_passes", "gs-a.sat-1", old_rec)
    wait_for("B to refuse the older record",
             lambda: rejected(B, "passes", "env_replay") == before + 1, 5, every=0.05)
    check(view_at_b() == new, "B's view of A's passes is still the newer schedule")
    before = rejected(B, "passes", "unsigned_delete")
    nats.delete("sr_passes", "gs-a.sat-1")
    wait_for("B to ignore the delete",
             lambda: rejected(B, "passes", "unsigned_delete") == before + 1, 5, every=0.05)
    check(view_at_b() == new, "B's view of A's passes survives an unsigned delete")
    log("an older pass record put back and an unsigned delete: B's view unchanged")

    # -- an element set for a satellite the operator may not speak for at B -------------------
    tle = env.path("sat-2.tle")
    r = srtest.run([srtest.SKYROUTE, "elements", "synth", "--overhead", "0,0,0", "--at",
                    srtest.iso(time.time() + 3600), "--first-catnum", "90001"], check=True)
    with open(tle, "wb") as f:
        f.write(r.stdout)
    before = rejected(B, "elements", "scope")
    upload(env, A, tle, "elements", "text/plain")
    wait_for("B to refuse sat-2's elements from ops",
             lambda: rejected(B, "elements", "scope") == before + 1, 10, every=0.1)
    st, j = get_json(B, "/v1/cluster")
    check(not [e for e in j.get("elements", []) if e["sat"] == "sat-2"],
          "B does not list or use them: %r" % j.get("elements"))
    st, j = get_json(B, "/v1/passes?sat=sat-2")
    check(not any(p.get("source") == "predicted" for p in j.get("passes", [])),
          "B predicts nothing from them")
    log("element set from ops for sat-2 (ops may speak only for sat-1 at B): not used at B")

    # -- A's heartbeat captured, A stopped, the heartbeat put back ----------------------------
    beat = nats.get("sr_state", "gs-a")
    check(env.stop(A["proc"]) == 0, "A stops cleanly")
    wait_for("B to see A down", lambda: not alive_at(B, "gs-a"), 5, every=0.1)
    before = rejected(B, "state", "env_expired")
    nats.put("sr_state", "gs-a", beat)
    for _ in range(15):  # B's watch delivers it within ~20 ms; taken, A would show alive for 1 s
        check(not alive_at(B, "gs-a"), "A is still shown down at B")
        time.sleep(0.1)
    check(rejected(B, "state", "env_expired") == before + 1, "B refused and counted it")
    # A's heartbeat aging out of the bucket (its TTL) is no delete anyone wrote
    check(rejected(B, "state", "unsigned_delete") == 0, "the TTL's expiry is not counted")
    st, j = get_json(B, "/v1/cluster")
    check(not [v for v in j["views"] if v["via_station"] == "gs-a" and v["planned"]],
          "none of A's views is planned at B: %r" % j["views"])
    log("a captured heartbeat put back after A stopped: A still down at B")
    nats.close()
    log("done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    import shutil
    if not shutil.which("nats-server"):
        print("skipped: nats-server is not installed (deploy/install-deps.sh --test installs it)")
        raise SystemExit(0)
    srtest.run_tests([test_federation_records_resist_a_nats_only_attacker])
