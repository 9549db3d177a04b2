"""Operator uploads cannot be replayed, moved or sent by the wrong operator.

A real skyrouted; uploads signed with `skyroute sign` (v2) and then replayed
byte for byte with curl, or sent to another query, content type, station or
target with the same header. Each refusal is checked by its status, by its
reason in skyroute_feed_uploads_total, and by reading the stored state back
through the API (GET /v1/passes, GET /v1/targets, GET /v1/route)."""

import json
import time

import srtest
from srtest import check, run
import test_feeds as feeds
from test_feeds import curl, iso, key, now_ms, passes, sign, write

WINDOW_S = 30  # [gateway] signature_window_s of these gateways


def put(g, target, path, sig, ctype):
    """PUT |path|'s bytes to |target| with a given header value: a replay."""
    return curl("PUT", g["url"] + target, path,
                ["skyroute-signature: " + sig, "content-type: " + (ctype or "")])


def refused(g, reason, kind=None):
    labels = 'outcome="refused",reason="%s"' % reason
    if kind:
        labels = 'kind="%s",' % kind + labels
    return srtest.metric(g["admin"], "skyroute_feed_uploads_total", labels)


def schedule(env, name, sat, start_ms, el):
    doc = {"passes": [{"sat": sat, "aos": iso(start_ms), "los": iso(start_ms + 600000),
                       "max_el_deg": el}]}
    return write(env, name, json.dumps(doc))


def json_passes(g):
    return sorted((p["sat"], p["aos"], p["max_el_deg"]) for p in passes(g)
                  if p["source"] == "json")


def gateway(name):
    return feeds.gateway(name, extra_gateway="signature_window_s = %d" % WINDOW_S)


def test_replayed_schedule_refused_within_and_after_the_window():
    env, g = gateway("replay")
    t0 = now_ms() // 60000 * 60000 + 3600000
    old = schedule(env, "old.json", "sat-1", t0, 20.0)
    new = schedule(env, "new.json", "sat-1", t0 + 120000, 70.0)
    # the old schedule is signed 3 s short of leaving the window, so it can be
    # replayed both inside it and, a few seconds later, after it
    ts_old = int(time.time()) - WINDOW_S + 3
    sig_old = sign(key(env, "acme"), old, "/v1/passes", "application/json", ts=ts_old)
    st, body = put(g, "/v1/passes", old, sig_old, "application/json")
    check(st == 200 and body["accepted"] == 1, "the old schedule, fresh: %s %r" % (st, body))
    st, body = feeds.upload(g, "passes", new, key(env, "acme"), "application/json")
    check(st == 200 and body["changed"] == 1, "the newer schedule: %s %r" % (st, body))
    want = json_passes(g)
    check(want == [("sat-1", iso(t0 + 120000), 70.0)], "the newer pass is served: %r" % want)

    # the same bytes again, inside the window: the nonce was used
    st, body = put(g, "/v1/passes", old, sig_old, "application/json")
    check(st == 401 and body["detail"]["code"] == "env_replay", "replay: %s %r" % (st, body))
    check(refused(g, "replayed", "passes") == 1, "replay counted")
    check(json_passes(g) == want, "the replay rolled nothing back")

    # and after the window: the signed time is too old
    time.sleep(max(0.0, ts_old + WINDOW_S + 1.2 - time.time()))
    st, body = put(g, "/v1/passes", old, sig_old, "application/json")
    check(st == 401 and body["detail"]["code"] == "env_expired", "stale: %s %r" % (st, body))
    check(refused(g, "stale", "passes") == 1, "stale counted")
    check(json_passes(g) == want, "the stale replay rolled nothing back")

    # a time ahead of the gateway's clock beyond the window is refused too
    ahead = sign(key(env, "acme"), old, "/v1/passes", "application/json",
                 ts=int(time.time()) + WINDOW_S + 60)
    st, body = put(g, "/v1/passes", old, ahead, "application/json")
    check(st == 401 and "ahead" in body["detail"]["why"], "from the future: %s %r" % (st, body))

    # the nonces outlive a restart: a request accepted before is a replay after
    fresh = sign(key(env, "acme"), new, "/v1/passes", "application/json")
    st, body = put(g, "/v1/passes", new, fresh, "application/json")
    check(st == 200, "fresh upload: %s %r" % (st, body))
    env.stop(g["proc"])
    p = env.start([srtest.SKYROUTED, "-c", g["conf"]], "gs-test-2", g["port"])
    srtest.wait_port(g["admin"], proc=p)
    st, body = put(g, "/v1/passes", new, fresh, "application/json")
    check(st == 401 and body["detail"]["code"] == "env_replay",
          "replay after a restart: %s %r" % (st, body))
    check(json_passes(g) == want, "state as before the restart")
    # an old body-only (v1) header is refused, saying what to do
    v1 = "0123456789abcdef:" + "A" * 86 + "=="
    st, body = put(g, "/v1/passes", old, v1, "application/json")
    check(st == 401 and "sign --url" in body["error"], "v1 refused: %s %r" % (st, body))
    check(refused(g, "old_signature", "passes") == 1, "v1 counted")
    feeds.finish(env)


def test_older_element_set_refused_unless_forced():
    env, g = gateway("older")

    def tle(name, at_ms):
        """An element set whose epoch is |at_ms| (synth --overhead sets it there)."""
        text = run([srtest.SKYROUTE, "elements", "synth", "--overhead", feeds.STATION, "--at",
                    iso(at_ms), "--first-catnum", "43017"], check=True).stdout
        return write(env, name, text)

    newer = tle("newer.tle", now_ms() + 3 * 3600000)
    older = tle("older.tle", now_ms() - 2 * 86400000)
    st, body = feeds.upload(g, "elements", newer, key(env, "acme"), "text/plain")
    check(st == 200, "newer elements: %s %r" % (st, body))

    def epoch():
        st, tg = curl("GET", g["url"] + "/v1/targets")
        return [t for t in tg["targets"] if t["id"] == "sat-1"][0]["elements"]["epoch"]

    stored, before = epoch(), sorted(p["aos"] for p in passes(g, "sat-1"))
    st, body = feeds.upload(g, "elements", older, key(env, "acme"), "text/plain")
    check(st == 409 and body["detail"]["stored_epoch"] == stored,
          "older elements refused: %s %r" % (st, body))
    check(refused(g, "older_elements", "elements") == 1, "counted")
    check(epoch() == stored, "the stored element set is unchanged")
    check(sorted(p["aos"] for p in passes(g, "sat-1")) == before, "predictions unchanged")
    # force=1 is part of the signed query: adding it to a signed request breaks the signature
    sig = sign(key(env, "acme"), older, "/v1/elements", "text/plain")
    st, body = put(g, "/v1/elements?force=1", older, sig, "text/plain")
    check(st == 401 and body["detail"]["code"] == "env_badsig", "unsigned force: %s %r" % (st, body))
    check(epoch() == stored, "still unchanged")
    # signed with force=1, the operator may roll back on purpose
    st, body = feeds.upload(g, "elements", older, key(env, "acme"), "text/plain", "?force=1")
    check(st == 200, "forced: %s %r" % (st, body))
    check(epoch() < stored, "the older set is in use: %s < %s" % (epoch(), stored))
    feeds.finish(env)


def test_ion_plan_cannot_be_moved_in_time_or_format():
    env, g = gateway("ion")
    plan = write(env, "plan.txt", "a contact +60 +600 1 21 100\na contact +700 +1200 1 22 100\n")
    epoch = iso(now_ms() // 3600000 * 3600000)
    target = "/v1/passes?epoch=" + epoch + "&format=ion"
    sig = sign(key(env, "acme"), plan, target, "text/plain")
    later = iso(now_ms() // 3600000 * 3600000 + 86400000)
    moves = [
        ("epoch moved", "/v1/passes?epoch=" + later + "&format=ion", "text/plain"),
        ("epoch dropped", "/v1/passes?format=ion", "text/plain"),
        ("format dropped", "/v1/passes?epoch=" + epoch, "text/plain"),
        ("content type changed", target, "application/json"),
        ("another endpoint", "/v1/elements?epoch=" + epoch + "&format=ion", "text/plain"),
    ]
    for i, (what, tgt, ctype) in enumerate(moves):
        st, body = put(g, tgt, plan, sig, ctype)
        check(st == 401 and body["detail"]["code"] == "env_badsig", "%s: %s %r" % (what, st, body))
        check(refused(g, "bad_signature") == i + 1, "%s counted" % what)
        check(passes(g) == [], "%s: nothing stored" % what)
    # the same parameters in another order and spelling are the same request
    same = "/v1/passes?format=ion&epoch=" + epoch.replace(":", "%3A")
    st, body = put(g, same, plan, sig, "text/plain")
    check(st == 200 and body["accepted"] == 2, "as signed: %s %r" % (st, body))
    check(len(passes(g)) == 2, "the plan is stored at its signed epoch")
    feeds.finish(env)


def test_schedule_signed_for_one_station_refused_at_another():
    env = srtest.Env("stations")
    gws = {}
    for sid, ids in feeds.SATS.items():
        env.keygen(sid)
    env.keygen("acme")
    ops = "[operator.acme]\npubkey = acme.pub\nsatellites = *\n"
    for gid in ("gs-x", "gs-y"):
        targets = [{"id": sid, "kind": "satellite", "url": "http://127.0.0.1:9",
                    "pub": env.path(sid + ".pub"), "extra": ids}
                   for sid, ids in feeds.SATS.items()]
        gws[gid] = env.start_gateway(gid, targets, sections=ops, extra_gateway="station = %s"
                                     % feeds.STATION)
    x, y = gws["gs-x"], gws["gs-y"]
    sched = schedule(env, "s.json", "sat-2", now_ms() // 60000 * 60000 + 7200000, 45.0)
    sig = sign(key(env, "acme"), sched, "/v1/passes", "application/json", station="gs-x")
    st, body = put(y, "/v1/passes", sched, sig, "application/json")
    check(st == 403 and "gs-x" in body["detail"]["why"], "gs-x's schedule at gs-y: %s %r"
          % (st, body))
    check(refused(y, "wrong_station", "passes") == 1, "counted at gs-y")
    check(passes(y) == [], "nothing stored at gs-y")
    # editing the station field to gs-y breaks the signature
    st, body = put(y, "/v1/passes", sched, sig.replace("station=gs-x", "station=gs-y"),
                   "application/json")
    check(st == 401 and body["detail"]["code"] == "env_badsig", "edited: %s %r" % (st, body))
    check(passes(y) == [], "still nothing at gs-y")
    st, body = put(x, "/v1/passes", sched, sig, "application/json")
    check(st == 200 and len(passes(x)) == 1, "accepted where it was meant to go: %s %r"
          % (st, body))
    feeds.finish(env)


def test_energy_forecast_bound_to_its_target_and_operator():
    env = srtest.Env("energy")
    targets = []
    for tid in ("idc-a", "idc-b"):
        _, pub = env.keygen(tid)
        targets.append({"id": tid, "url": "http://127.0.0.1:9", "pub": pub,
                        "extra": {"gops": "100", "joules_per_gop": "1.0", "pue": "1.1",
                                  "power": "pv", "price_per_kwh": "0.1",
                                  "carbon_g_per_kwh": "50"}})
    env.keygen("acme")
    env.keygen("zeta")
    ops = ("[operator.acme]\npubkey = acme.pub\ntargets = idc-a, idc-b\n\n"
           "[operator.zeta]\npubkey = zeta.pub\ntargets = idc-b\n")
    g = env.start_gateway("gs-test", targets, sections=ops,
                          extra_gateway="signature_window_s = %d" % WINDOW_S)

    def green():
        r = run(["curl", "-sS", "--http2-prior-knowledge", g["url"] +
                 "/v1/route?work=6000&bytes=100&result_bytes=100&deadline_ms=120000"])
        e = json.loads(r.stdout)
        return {c["target"]: c["energy"]["green_frac"] for c in e["candidates"]}

    start = green()
    check(start == {"idc-a": 0.0, "idc-b": 0.0}, "no PV surplus known yet: %r" % start)
    feed = write(env, "f.json", json.dumps(
        {"points": [{"t": iso(now_ms() - 60000), "pv_surplus_w": 1e6}]}))
    sig_a = sign(key(env, "acme"), feed, "/v1/targets/idc-a/energy", "application/json")
    # signed for idc-a, sent to idc-b
    st, body = put(g, "/v1/targets/idc-b/energy", feed, sig_a, "application/json")
    check(st == 401 and body["detail"]["code"] == "env_badsig", "moved target: %s %r"
          % (st, body))
    check(refused(g, "bad_signature", "energy") == 1, "counted")
    check(green() == start, "idc-b's forecast unchanged")
    # zeta may only speak for idc-b: a good signature for idc-a is still refused
    sig_z = sign(key(env, "zeta"), feed, "/v1/targets/idc-a/energy", "application/json")
    st, body = put(g, "/v1/targets/idc-a/energy", feed, sig_z, "application/json")
    check(st == 403 and body["detail"]["operator"] == "zeta", "zeta at idc-a: %s %r" % (st, body))
    check(refused(g, "forbidden", "energy") == 1, "counted")
    check(green() == start, "idc-a's forecast unchanged")
    # as signed: accepted once, then a replay is refused
    st, body = put(g, "/v1/targets/idc-a/energy", feed, sig_a, "application/json")
    check(st == 200 and body["target"] == "idc-a", "acme at idc-a: %s %r" % (st, body))
    after = green()
    check(after == {"idc-a": 1.0, "idc-b": 0.0}, "idc-a now on PV surplus: %r" % after)
    zero = write(env, "zero.json", json.dumps(
        {"points": [{"t": iso(now_ms() - 60000), "pv_surplus_w": 0}]}))
    sig_0 = sign(key(env, "acme"), zero, "/v1/targets/idc-a/energy", "application/json",
                 ts=int(time.time()) - 2 * WINDOW_S)
    st, body = put(g, "/v1/targets/idc-a/energy", zero, sig_0, "application/json")
    check(st == 401 and body["detail"]["code"] == "env_expired", "old forecast: %s %r"
          % (st, body))
    st, body = put(g, "/v1/targets/idc-a/energy", feed, sig_a, "application/json")
    check(st == 401 and body["detail"]["code"] == "env_replay", "replay: %s %r" % (st, body))
    check(refused(g, "replayed", "energy") == 1 and refused(g, "stale", "energy") == 1,
          "counted")
    check(green() == after, "forecasts as accepted")
    check(srtest.metric(g["admin"], "skyroute_feed_uploads_total",
                        'kind="energy",outcome="accepted"') == 1, "one forecast accepted")
    feeds.finish(env)


if __name__ == "__main__":
    srtest.run_tests([
        test_replayed_schedule_refused_within_and_after_the_window,
        test_older_element_set_refused_unless_forced,
        test_ion_plan_cannot_be_moved_in_time_or_format,
        test_schedule_signed_for_one_station_refused_at_another,
        test_energy_forecast_bound_to_its_target_and_operator,
    ])
