"""skyroute-node --emulate-link: a satellite node is reachable only while the
satellite is above the station's mask, and each direction is delayed by the
light time of the moment. A synthetic satellite is placed overhead a few
seconds from now with a steep mask, so the whole pass fits in the test."""

import datetime
import json
import os
import socket
import time

import srtest
from srtest import check, run

STATION = "48.85,2.35,35"


iso = srtest.iso


def reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until(t):
    while time.time() < t:
        time.sleep(min(0.1, max(0.0, t - time.time())))


def test_satellite_reachable_only_in_its_pass():
    env = srtest.Env("emu")
    gkey, gpub = env.keygen("gs-test")
    mask = 84.0
    tle, aos, los = srtest.synthetic_pass(env, STATION, mask, 14)
    check(aos > time.time() + 3 and los - aos > 5, "pass ahead of us: %s to %s" %
          (iso(aos), iso(los)))

    # the node's listener is closed before AOS, so start it without waiting for the port
    key, pub = env.keygen("sat-1")
    port, aport = srtest.free_port(), srtest.free_port()
    p = env.start([srtest.NODE, "--id", "sat-1", "--listen", "127.0.0.1:%d" % port, "--key", key,
                   "--trust", gpub, "--admin", "127.0.0.1:%d" % aport, "--emulate-link", tle,
                   "--station", STATION, "--min-el", str(mask)], "sat-1")
    srtest.wait_port(aport, proc=p)
    check(not reachable(port), "below the mask: connection refused")
    check(srtest.metric(aport, "skyroute_node_link_up") == 0, "link_up gauge is 0")

    # the gateway learns the satellite's passes from its elements, uploaded
    # signed by the operator that speaks for it
    okey, opub = env.keygen("ops")
    node = {"id": "sat-1", "url": "http://127.0.0.1:%d" % port, "pub": pub, "kind": "satellite",
            "extra": {"catnum": "90000"}}
    g = env.start_gateway("gs-test", [node],
                          extra_gateway="station = %s\nmin_el_deg = %s" % (STATION, mask),
                          sections="[operator.ops]\npubkey = ops.pub\nsatellites = sat-1\n")
    sig = run([srtest.SKYROUTE, "sign", "--key", okey, "--url", g["url"] + "/v1/elements",
               "--station", g["id"], "--content-type", "text/plain"],
              input=open(tle, "rb").read(), check=True)
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@" + tle,
             "-H", "content-type: text/plain", "-H",
             "skyroute-signature: " + sig.stdout.decode().strip(), g["url"] + "/v1/elements"])
    check(b'"accepted"' in r.stdout, "elements accepted: %r" % r.stdout)
    payload = os.path.join(env.dir, "p.bin")
    with open(payload, "wb") as f:
        f.write(b"hello orbit")
    st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", payload,
                                   ["skyroute-place: orbit"])
    check(st in (502, 503), "before AOS the satellite cannot take work: %s" % st)

    wait_until(aos + 1.0)
    check(reachable(port), "after AOS: reachable")
    check(srtest.metric(aport, "skyroute_node_link_up") == 1, "link_up gauge is 1")
    light = srtest.metric(aport, "skyroute_node_link_light_time_seconds")
    check(0.0018 < light < 0.0025, "light time near zenith at 550 km: %.4f s" % light)
    # the gateway may still be backing off from the refused connection
    deadline = time.time() + 8
    while True:
        st, h, body = srtest.curl_post(g["url"] + "/v1/workloads", payload,
                                       ["skyroute-place: orbit"])
        if st == 200 or time.time() > deadline:
            break
        time.sleep(0.3)
    check(st == 200 and body == b"hello orbit" and h["skyroute-target"] == "sat-1",
          "in the pass the satellite runs the work: %s %r" % (st, body[:200]))
    check(float(h["skyroute-elapsed-ms"]) >= 2 * light * 1000 - 1,
          "both directions delayed by the light time: %s ms" % h["skyroute-elapsed-ms"])

    # an open connection is reset at LOS, and the listener closes
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    wait_until(los + 1.0)
    check(not reachable(port), "after LOS: connection refused")
    reset = False
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        s.settimeout(2)
        reset = s.recv(100) == b""
    except OSError:
        reset = True
    check(reset, "the open connection was cut at LOS")
    s.close()
    check(srtest.metric(aport, "skyroute_node_link_up") == 0, "link_up gauge back to 0")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


if __name__ == "__main__":
    srtest.run_tests([test_satellite_reachable_only_in_its_pass])
