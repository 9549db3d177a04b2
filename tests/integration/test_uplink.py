#!/usr/bin/env python3
"""A satellite's uplinked work runs once, even after the gateway has pruned its
spool row: the same signed bytes replayed later (their exp still ahead) are
refused with 409 and counted, and the handler does not run again. Driven
through the real skyrouted and skyroute-node on loopback; the spool is read
with SQLite."""

import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import check  # noqa: E402


def spool_rows(env, idhex):
    """(rows for |idhex| in the spool, ids remembered as spent)."""
    path = env.path("state-gs-test", "spool.db")
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        rows = db.execute("SELECT state FROM spool WHERE id = ?",
                          (bytes.fromhex(idhex),)).fetchall()
        try:
            spent = db.execute("SELECT count(*) FROM uplink_spent WHERE id = ?",
                               (bytes.fromhex(idhex),)).fetchone()[0]
        except sqlite3.OperationalError:
            spent = 0  # a spool without the table remembers nothing
    finally:
        db.close()
    return rows, spent


def test_uplink_replayed_after_prune_is_refused():
    env = srtest.Env("uplink-replay")
    gkey, gpub = env.keygen("gs-test")
    idc = env.start_node("alpha", [gpub])
    skey, spub = env.keygen("sat-1")
    sat = {"id": "sat-1", "url": "http://127.0.0.1:%d" % srtest.free_port(), "pub": spub,
           "kind": "satellite"}
    # results kept one second: the row is pruned long before the envelope expires
    g = env.start_gateway("gs-test", [idc, sat], sections="[spool]\nkeep_results_s = 1\n")
    idhex = os.urandom(16).hex()
    payload = env.path("obs.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(512))
    envelope = env.path("uplink.env")
    with open(payload, "rb") as fin, open(envelope, "wb") as fout:
        r = srtest.run([srtest.SKYROUTE, "seal", "--key", skey, "--to", "gs-test", "--from",
                        "sat-1", "--handler", "digest", "--deadline-ms", "600000", "--id", idhex],
                       input=fin.read())
        check(r.returncode == 0, "seal: %r" % r.stderr)
        fout.write(r.stdout)
    url = g["url"] + "/v1/uplink"
    st, h, body = srtest.curl_post(url, envelope)
    check(st == 202, "uplink accepted: %s %r" % (st, body))
    srtest.wait_for("it to run at the IDC", lambda: srtest.metric(
        idc["admin"], "skyroute_node_executed_total") == 1, 10, 0.05)
    srtest.wait_for("it to finish in the spool", lambda: spool_rows(env, idhex)[0] == [(3,)], 5, 0.05)
    # a repeat while the row is kept is answered from it, and not run
    st, h, body = srtest.curl_post(url, envelope)
    check(st in (200, 202) and srtest.metric(idc["admin"], "skyroute_node_executed_total") == 1,
          "repeat answered from the row: %s %r" % (st, body))
    # the row is pruned; the id stays remembered
    srtest.wait_for("its row to be pruned", lambda: spool_rows(env, idhex)[0] == [], 6, 0.05)
    st, h, body = srtest.curl_post(url, envelope)
    check(st == 409 and b"already ran" in body and idhex.encode() in body,
          "replay after the prune refused: %s %r" % (st, body))
    check(spool_rows(env, idhex)[1] == 1, "its id is remembered until its exp")
    check(srtest.metric(g["admin"], "skyroute_uplink_replays_refused_total") == 1,
          "counted as a refused replay")
    time.sleep(1.0)
    check(srtest.metric(idc["admin"], "skyroute_node_executed_total") == 1,
          "the handler did not run a second time")
    check(spool_rows(env, idhex)[0] == [], "nothing stored for the replay")
    bad = env.close()
    check(not bad, "clean exits: %r" % [(x.sr_name, x.returncode) for x in bad])


if __name__ == "__main__":
    srtest.run_tests([test_uplink_replayed_after_prune_is_refused])
