"""Operator feeds end to end: a real skyrouted, uploads signed with
`skyroute sign` and sent with `curl --http2-prior-knowledge -X PUT`.

The realistic samples in tests/feeds/ are dated around 2026-11-22T18:00Z;
each test moves them by whole days so they sit around today (only the date
part of each timestamp changes, so every time keeps its milliseconds), and
works out the expected passes from the shifted text on its own."""

import datetime
import json
import math
import os
import re
import tempfile
import time

import srtest
from srtest import check, run

FEEDS = os.path.join(srtest.SRC, "tests", "feeds")
STATION = "48.85,2.35,35"
SAMPLE_NOW = datetime.date(2026, 11, 22)
ARN1 = "arn:aws:groundstation::123456789012:satellite/5b2b7a8e-3e2c-4c6e-9f61-0d2f3e8c1a11"
ARN2 = "arn:aws:groundstation::123456789012:satellite/a9d4c2e1-7b3f-4e58-8c06-2d1f9e7b5a40"
SATS = {
    "sat-1": {"catnum": 43017, "arn": ARN1, "ion_node": 21},
    "sat-2": {"catnum": 43880, "arn": ARN2, "ion_node": 22},
    "sat-3": {"catnum": 99001},
}

# ---- helpers ----------------------------------------------------------------------------


def ms_of(s):
    """RFC 3339 / ISO 8601 text -> ms since the epoch (exact, no float)."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", s)
    check(m, "time %r" % s)
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    frac = (m.group(7) or "") + "000"
    ms = int(frac[:3]) + (1 if len(frac) > 6 and int(frac[3]) >= 5 else 0)
    days = (datetime.date(y, mo, d) - datetime.date(1970, 1, 1)).days
    total = ((days * 24 + h) * 60 + mi) * 60 + se
    z = m.group(8) or "Z"
    if z != "Z":
        off = int(z[1:3]) * 60 + int(z[4:6])
        total -= off * 60 if z[0] == "+" else -off * 60
    return total * 1000 + ms


def iso(ms):
    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def now_ms():
    return int(time.time() * 1000)


def shift_days():
    return (datetime.datetime.now(datetime.timezone.utc).date() - SAMPLE_NOW).days


def _shift_date(m, days):
    """A date matched as (YYYY)(sep)(MM)(DD)(T, '-' or ' ') moved by |days|."""
    d = datetime.date(int(m.group(1)), int(m.group(3)), int(m.group(4)))
    d += datetime.timedelta(days=days)
    sep = m.group(2)
    return "%04d%s%02d%s%02d%s" % (d.year, sep, d.month, sep, d.day, m.group(5))


def _shift_epoch(num, days):
    whole, _, frac = num.partition(".")
    return str(int(whole) + days * 86400) + ("." + frac if frac else "")


def shifted_sample(env, name, days=None):
    """The sample moved by whole days to sit around today: ISO dates
    (2026-11-23T...), ION dates (2026/11/23-...) and AWS epoch seconds."""
    days = shift_days() if days is None else days
    with open(os.path.join(FEEDS, name)) as f:
        text = f.read()
    text = re.sub(r"(\d{4})([-/])(\d\d)\2(\d\d)([T\- ])(?=\d\d:\d\d:\d\d)",
                  lambda m: _shift_date(m, days), text)
    text = re.sub(r'("(?:startTime|endTime|prePassStartTime|postPassEndTime)": )(\d+(?:\.\d+)?)',
                  lambda m: m.group(1) + _shift_epoch(m.group(2), days), text)
    p = env.path("shifted-" + name)
    with open(p, "w") as f:
        f.write(text)
    return p, text


def write(env, name, data):
    p = env.path(name)
    with open(p, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return p


def sign(key, path, target="/v1/passes", ctype=None, station="gs-test", ts=None, nonce=None):
    """`skyroute sign` for a PUT of |path|'s bytes to |target| (path and query)
    at |station| with content type |ctype|."""
    argv = [srtest.SKYROUTE, "sign", "--key", key, "--url", target, "--station", station]
    if ctype:
        argv += ["--content-type", ctype]
    if ts is not None:
        argv += ["--time", str(ts)]
    if nonce:
        argv += ["--nonce", nonce]
    with open(path, "rb") as f:
        r = run(argv, input=f.read(), check=True)
    return r.stdout.decode().strip()


def curl(method, url, data_path=None, headers=(), timeout=60):
    """curl --http2-prior-knowledge. Returns (status, parsed JSON body or text)."""
    out = tempfile.mktemp()
    argv = ["curl", "-sS", "--http2-prior-knowledge", "-X", method, "-o", out,
            "-w", "%{http_code}", url]
    if data_path:
        argv += ["--data-binary", "@" + data_path]
    for h in headers:
        argv += ["-H", h]
    r = run(argv, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("curl failed: %s" % r.stderr.decode())
    with open(out) as f:
        text = f.read()
    os.unlink(out)
    try:
        return int(r.stdout), json.loads(text)
    except ValueError:
        return int(r.stdout), text


def upload(g, kind, path, key, ctype=None, query="", signature=None):
    hdrs = []
    if key or signature:
        hdrs.append("skyroute-signature: " +
                    (signature or sign(key, path, "/v1/" + kind + query, ctype)))
    # none: curl would send its form type, so remove the header (the signature covers it)
    hdrs.append("content-type: " + (ctype or ""))
    return curl("PUT", g["url"] + "/v1/" + kind + query, path, hdrs)


def passes(g, sat=None, frm=None, to=None):
    q = []
    if sat:
        q.append("sat=" + sat)
    q.append("from=" + (frm or iso(now_ms() - 40 * 86400000)))
    q.append("to=" + (to or iso(now_ms() + 40 * 86400000)))
    st, body = curl("GET", g["url"] + "/v1/passes?" + "&".join(q))
    check(st == 200, "GET /v1/passes: %s %r" % (st, body))
    return body["passes"]


def gateway(name, extra_ops="", extra_gateway=""):
    env = srtest.Env(name)
    targets = []
    for sid, ids in SATS.items():
        _, pub = env.keygen(sid)
        targets.append({"id": sid, "kind": "satellite", "url": "http://127.0.0.1:9", "pub": pub,
                        "extra": ids})
    env.keygen("acme")
    env.keygen("zeta")
    ops = ("[operator.acme]\npubkey = acme.pub\nsatellites = sat-1, sat-2\n\n"
           "[operator.zeta]\npubkey = zeta.pub\nsatellites = sat-3\n" + extra_ops)
    g = env.start_gateway("gs-test", targets,
                          extra_gateway="station = %s\nmin_el_deg = 10\n%s" % (STATION,
                                                                                extra_gateway),
                          sections=ops)
    return env, g


def finish(env):
    bad = env.close()
    check(not bad, "processes exited badly: %s" % [(p.sr_name, p.returncode) for p in bad])


def key(env, name):
    return env.path(name + ".key")


def norm(p):
    """The fields a served pass is compared on."""
    return (p["sat"], p["aos"], p["los"],
            None if p.get("max_el_deg") is None else round(p["max_el_deg"], 9),
            p.get("uplink_bps") or 0, p.get("downlink_bps") or 0, p.get("light_ms") or 0)


def served(g, source):
    return sorted(norm(p) for p in passes(g) if p["source"] == source)

# ---- expected passes, worked out from the shifted samples ---------------------------------


def expect_json(text):
    doc = json.loads(text)
    return sorted((p["sat"], iso(ms_of(p["aos"])), iso(ms_of(p["los"])),
                   round(p["max_el_deg"], 9) if "max_el_deg" in p else None,
                   p.get("uplink_bps", 0), p.get("downlink_bps", 0), p.get("light_ms", 0))
                  for p in doc["passes"])


def expect_aws(text):
    by_arn = {v.get("arn"): k for k, v in SATS.items()}
    out = []
    for c in json.loads(text)["contactList"]:
        if c["contactStatus"] not in ("SCHEDULED", "PREPASS", "PASS", "POSTPASS", "COMPLETED"):
            continue
        def t(v):
            if isinstance(v, str):
                return ms_of(v)
            return int(round(v * 1000))
        el = c["maximumElevation"]["value"]
        if c["maximumElevation"]["unit"] == "RADIAN":
            el = math.degrees(el)
        out.append((by_arn[c["satelliteArn"]], iso(t(c["startTime"])), iso(t(c["endTime"])),
                    round(el, 9), 0, 0, 0))
    return sorted(out)


def expect_satnogs(text):
    by_norad = {v["catnum"]: k for k, v in SATS.items()}
    return sorted((by_norad[o["norad_cat_id"]], iso(ms_of(o["start"])), iso(ms_of(o["end"])),
                   round(o["max_altitude"], 9), 0, 0, 0)
                  for o in json.loads(text) if o["status"] != "failed")


def expect_ion(text, epoch):
    by_node = {v.get("ion_node"): k for k, v in SATS.items()}
    contacts, ranges = {}, []

    def t(s):
        if s.startswith("+"):
            return epoch + int(round(float(s[1:]) * 1000))
        return ms_of(s[0:4] + "-" + s[5:7] + "-" + s[8:10] + "T" + s[11:] + "Z")
    for line in text.splitlines():
        f = line.split()
        if len(f) < 7 or f[0] != "a":
            continue
        a, b = int(f[4]), int(f[5])
        if f[1] == "range":
            ranges.append((t(f[2]), t(f[3]), {a, b}, float(f[6])))
            continue
        if (a in by_node) == (b in by_node):
            continue
        sat = by_node.get(a) or by_node.get(b)
        key_ = (sat, t(f[2]), t(f[3]))
        up, down = contacts.get(key_, (0, 0))
        if b in by_node:
            up = float(f[6])
        else:
            down = float(f[6])
        contacts[key_] = (up, down)
    out = []
    for (sat, s, e), (up, down) in contacts.items():
        node = SATS[sat]["ion_node"]
        light = 0
        for rs, re_, pair, owlt in ranges:
            if node in pair and len(pair) == 2 and rs <= s and re_ >= e:
                light = owlt * 1000
        out.append((sat, iso(s), iso(e), None, up, down, light))
    return sorted(out)

# ---- tests ------------------------------------------------------------------------------


def test_each_format_is_served_to_the_millisecond():
    env, g = gateway("formats")
    # ION's relative times count from this epoch. The sample's sat-2 pass at
    # +26 h (+93600..+94140 s) must not overlap its absolute sat-2 pass
    # (19:40:05.5-19:48:51 on the shifted day), which it did when the test ran
    # between 17:31 and 17:49 UTC; from a whole hour it lands at HH:00-HH:09.
    epoch = now_ms() // 3600000 * 3600000
    cases = [
        ("skyroute-passes.json", "application/json", "", "json", expect_json),
        ("aws-contacts.json", "application/json", "", "aws", expect_aws),
        ("aws-contacts-epoch.json", None, "", "aws", expect_aws),
        ("satnogs-observations.json", "application/json", "", "satnogs", expect_satnogs),
        ("ion-contacts.txt", "text/plain", "?epoch=" + iso(epoch), "ion",
         lambda text: expect_ion(text, epoch)),
    ]
    els = set()
    for name, ctype, query, fmt, expect in cases:
        # checked right after each upload: a later sample's window may replace these passes
        path, text = shifted_sample(env, name)
        want = expect(text)
        st, body = upload(g, "passes", path, key(env, "acme"), ctype, query)
        check(st == 200, "%s: %s %r" % (name, st, body))
        check(body["format"] == fmt and body["accepted"] == len(want),
              "%s: response %r, want %d passes" % (name, body, len(want)))
        check(body["operator"] == "acme", "operator named")
        got = served(g, fmt)
        got = [p for p in got if (p[0], p[1]) in {(w[0], w[1]) for w in want}]
        check(got == want, "%s:\n got  %r\n want %r" % (name, got, want))
        if fmt == "aws":
            # read now: a later sample (ION's relative times start at upload) may
            # replace these passes, depending on the time of day the test runs
            els |= {round(p["max_el_deg"], 6) for p in passes(g) if p["source"] == "aws"}
    # elevations: RADIAN converted to degrees (0.698... rad = 40 deg, 1.2217... = 70 deg)
    check(40.0 in els and 70.0 in els, "radians converted: %r" % els)
    check(srtest.metric(g["admin"], "skyroute_feed_uploads_total", 'outcome="accepted"') == 5,
          "accepted uploads counted")
    finish(env)


def test_trust_failures_store_nothing():
    env, g = gateway("trust")
    path, text = shifted_sample(env, "skyroute-passes.json")
    stranger, _ = env.keygen("stranger")
    other = write(env, "other.json", text.replace("sat-2", "sat-1").replace("05:", "06:"))
    cases = [
        ("unsigned", None, None, 401, "unsigned"),
        ("unknown key", stranger, None, 401, "unknown_key"),
        ("bad signature", None, sign(key(env, "acme"), other), 401, "bad_signature"),
        ("malformed header", None, "not-a-signature", 401, "malformed_signature"),
        ("not the owner", key(env, "zeta"), None, 403, "forbidden"),
    ]
    for what, k, sig, want, reason in cases:
        st, body = upload(g, "passes", path, k, "application/json", signature=sig)
        check(st == want, "%s: %s %r" % (what, st, body))
        check("error" in body, "%s: JSON error body %r" % (what, body))
        check(srtest.metric(g["admin"], "skyroute_feed_uploads_total",
                            'reason="%s"' % reason) == 1, "%s counted" % what)
    # elements too: zeta may not speak for sat-1
    tle = run([srtest.SKYROUTE, "elements", "synth", "--overhead", STATION, "--at",
               iso(now_ms() + 3600000), "--first-catnum", "43017"], check=True).stdout
    tp = write(env, "sat1.tle", tle)
    st, body = upload(g, "elements", tp, key(env, "zeta"))
    check(st == 403 and body["detail"]["satellite"] == "sat-1", "elements 403: %r" % body)
    st, body = upload(g, "elements", tp, None)
    check(st == 401, "unsigned elements: %s" % st)
    check(passes(g) == [], "nothing stored")
    st, body = curl("GET", g["url"] + "/v1/targets")
    check(all(t.get("elements") is None for t in body["targets"]), "no elements stored")
    # and after a restart still nothing
    env.stop(g["proc"])
    p = env.start([srtest.SKYROUTED, "-c", g["conf"]], "gs-test-2", g["port"])
    srtest.wait_port(g["admin"], proc=p)
    check(passes(g) == [], "nothing stored after a restart either")
    finish(env)


def test_malformed_after_good_leaves_the_good_one():
    env, g = gateway("malformed")
    path, text = shifted_sample(env, "skyroute-passes.json")
    st, body = upload(g, "passes", path, key(env, "acme"), "application/json")
    check(st == 200 and body["changed"] == 2, "good upload: %r" % body)
    good = served(g, "json")
    check(len(good) == 3, "three passes served")
    doc = json.loads(text)
    bad_los = json.loads(text)
    bad_los["passes"][1]["los"] = bad_los["passes"][1]["aos"]
    dup = json.loads(text)
    dup["passes"].append(dict(dup["passes"][0]))
    far = json.loads(text)
    far["passes"][2]["aos"] = "2099-01-01T00:00:00.000Z"
    cases = [
        ("los before aos", json.dumps(bad_los), "application/json", 422, 1, None, "los"),
        ("overlapping duplicate", json.dumps(dup), "application/json", 422, 3, None, "aos"),
        ("years away", json.dumps(far), "application/json", 422, 2, None, "aos"),
        ("malformed json", text[:-20], "application/json", 400, None, None, None),
        ("NaN", text.replace("63.4", "NaN"), "application/json", 400, None, None, None),
        ("unknown unit", shifted_sample(env, "aws-contacts.json")[1]
         .replace('"RADIAN"', '"GRADIAN"'), "application/json", 422, 3, None,
         "maximumElevation.unit"),
        ("bad ION line", "a contact +0 +600 1 21 31250\na contact +700 +6o0 1 21 31250\n",
         "text/plain", 400, None, 2, "END"),
        ("unknown satellite", text.replace('"sat-2"', '"sat-9"'), "application/json", 422, 2,
         None, "sat"),
    ]
    for what, data, ctype, want, index, line, field in cases:
        p = write(env, "bad.txt", data)
        st, body = upload(g, "passes", p, key(env, "acme"), ctype)
        check(st == want, "%s: %s %r" % (what, st, body))
        d = body.get("detail") or {}
        if index is not None:
            check(d.get("index") == index, "%s: index %r" % (what, d))
        if line is not None:
            check(d.get("line") == line, "%s: line %r" % (what, d))
        if field is not None:
            check(d.get("field") == field and field in body["error"], "%s: field %r" % (what, body))
        check(served(g, "json") == good, "%s: the good schedule is still served" % what)
    # bad query parameters
    for q, want in (("sat=sat-9", 404), ("from=yesterday", 400), ("to=2020-01-01T00:00:00Z", 400),
                    ("sat=" + "x" * 200, 404), ("sat=sat-1%00x", 404),
                    ("from=2026-11-24T00:00:00Z%00", 400)):
        st, body = curl("GET", g["url"] + "/v1/passes?" + q)
        check(st == want and "error" in body, "GET ?%s: %s %r" % (q, st, body))
    for q in ("?format=csv", "?epoch=soon", "?format=" + "j" * 100):
        st, body = upload(g, "passes", path, key(env, "acme"), "application/json", q)
        check(st == 400 and "param" in body["detail"], "PUT %s: %s %r" % (q, st, body))
    st, body = curl("DELETE", g["url"] + "/v1/passes")
    check(st == 405, "DELETE: %s" % st)
    check(served(g, "json") == good, "still the good schedule")
    # idempotent: the same upload again changes nothing
    st, body = upload(g, "passes", path, key(env, "acme"), "application/json")
    check(st == 200 and body["changed"] == 0, "re-upload: %r" % body)
    check(served(g, "json") == good, "unchanged")
    # a newer schedule for sat-1's window replaces the old one
    doc["passes"] = [dict(doc["passes"][0], max_el_deg=70.5,
                          los=iso(ms_of(doc["passes"][0]["los"]) + 1500))]
    p = write(env, "newer.json", json.dumps(doc))
    st, body = upload(g, "passes", p, key(env, "acme"), "application/json")
    check(st == 200 and body["changed"] == 1 and body["satellites"] == ["sat-1"], "newer: %r" % body)
    now = served(g, "json")
    check(len(now) == 3 and now[0][3] == 70.5 and now[0][2] == doc["passes"][0]["los"], "the newer sat-1 pass replaced the old: %r" % now)
    finish(env)


def test_cancelled_contact_withdraws_the_pass():
    env, g = gateway("cancel")
    path, text = shifted_sample(env, "aws-contacts.json")
    doc = json.loads(text)
    cancelled = [c for c in doc["contactList"] if c["contactStatus"] == "CANCELLED"][0]
    for c in doc["contactList"]:
        c["contactStatus"] = "SCHEDULED" if c is cancelled else c["contactStatus"]
    p = write(env, "scheduled.json", json.dumps(doc))
    st, body = upload(g, "passes", p, key(env, "acme"), "application/json")
    check(st == 200 and body["accepted"] == 4, "all scheduled: %r" % body)
    aos = iso(ms_of(cancelled["startTime"]))
    check(aos in [x["aos"] for x in passes(g, "sat-1")], "the contact is a pass")
    # the operator cancels it: the next contact list withdraws the pass
    st, body = upload(g, "passes", path, key(env, "acme"), "application/json")
    check(st == 200 and body["accepted"] == 3 and body["skipped"] == 2, "cancelled: %r" % body)
    check(aos not in [x["aos"] for x in passes(g, "sat-1")], "the cancelled pass is gone")
    check(len(passes(g, "sat-1")) == 2, "the others stay")
    finish(env)


def test_other_stations_are_skipped():
    env, g = gateway("stations", extra_gateway="station_names = Ohio 1, 2741, 1")
    path, text = shifted_sample(env, "aws-contacts.json")
    doc = json.loads(text)
    doc["contactList"][1]["groundStation"] = "Ohio 2"  # a SCHEDULED sat-1 contact elsewhere
    st, body = upload(g, "passes", write(env, "two.json", json.dumps(doc)), key(env, "acme"),
                      "application/json")
    check(st == 200 and body["accepted"] == 2 and body["skipped"] == 3, "AWS: %r" % body)
    plan = "a contact +60 +600 1 21 100\na contact +700 +1200 5 21 100\n"
    st, body = upload(g, "passes", write(env, "plan.txt", plan), key(env, "acme"), "text/plain")
    check(st == 200 and body["accepted"] == 1 and body["skipped"] == 1, "ION: %r" % body)
    sched = {"station": "Somewhere Else", "passes": []}
    st, body = upload(g, "passes", write(env, "else.json", json.dumps(sched)), key(env, "acme"))
    check(st == 422 and body["detail"]["field"] == "station", "JSON for another station: %r" % body)
    finish(env)


def test_restart_keeps_what_was_accepted():
    env, g = gateway("restart")
    path, _ = shifted_sample(env, "aws-contacts.json")
    st, body = upload(g, "passes", path, key(env, "acme"), "application/json")
    check(st == 200, "upload: %r" % body)
    at = now_ms() + 6 * 3600000
    omm = run([srtest.SKYROUTE, "elements", "synth", "--overhead", STATION, "--at", iso(at),
               "--first-catnum", "43880", "--format", "omm-json"], check=True).stdout
    op = write(env, "sat2.json", omm)
    st, body = upload(g, "elements", op, key(env, "acme"), "application/json")
    check(st == 200 and body["format"] == "omm-json", "elements: %r" % body)
    before = sorted(norm(p) + (p["source"],) for p in passes(g))
    check(any(p[-1] == "predicted" for p in before), "predictions before the restart")
    check(env.stop(g["proc"]) == 0, "clean exit on SIGTERM")
    p = env.start([srtest.SKYROUTED, "-c", g["conf"]], "gs-test-again", g["port"])
    srtest.wait_port(g["admin"], proc=p)
    after = sorted(norm(p) + (p["source"],) for p in passes(g))
    check([x for x in after if x[-1] == "aws"] == [x for x in before if x[-1] == "aws"],
          "the schedule survived")
    pb = [x[1] for x in before if x[-1] == "predicted"]
    pa = [x[1] for x in after if x[-1] == "predicted"]
    check(pa and abs(ms_of(pa[0]) - ms_of(pb[0])) < 1000,
          "predictions recomputed from the stored elements: %r vs %r" % (pb, pa))
    finish(env)


def test_elements_tle_and_omm_predict_passes():
    env, g = gateway("elements")
    at = now_ms() + 3 * 3600000
    tle = run([srtest.SKYROUTE, "elements", "synth", "--overhead", STATION, "--at", iso(at),
               "--first-catnum", "43017"], check=True).stdout
    tp = write(env, "sat1.tle", tle)
    st, body = upload(g, "elements", tp, key(env, "acme"), "text/plain")
    check(st == 200, "TLE upload: %s %r" % (st, body))
    check(body["format"] == "tle" and body["satellites"] == ["sat-1"], "response %r" % body)
    check(body["predicted"]["sat-1"] >= 1, "passes predicted: %r" % body)
    got = [p for p in passes(g, "sat-1") if p["source"] == "predicted"]
    check(len(got) == body["predicted"]["sat-1"], "served as predicted")
    over = [p for p in got if ms_of(p["aos"]) < at < ms_of(p["los"])]
    check(len(over) == 1 and over[0]["max_el_deg"] > 80, "the overhead pass: %r" % over)
    check(0 < over[0]["light_ms"] < 3, "light time at culmination: %r" % over[0])
    # the same passes as `skyroute passes` computes
    r = run([srtest.SKYROUTE, "passes", "--elements", tp, "--station", STATION, "--from",
             iso(at - 3600000), "--to", iso(at + 3600000), "--min-el", "10", "--json"], check=True)
    cli = json.loads(r.stdout)
    mine = [p for p in cli if ms_of(p["aos"]) < at < ms_of(p["los"])][0]
    check(abs(ms_of(mine["aos"]) - ms_of(over[0]["aos"])) < 50, "AOS as the CLI: %r" % mine)
    # GET /v1/targets shows the next pass
    st, tg = curl("GET", g["url"] + "/v1/targets")
    t1 = [t for t in tg["targets"] if t["id"] == "sat-1"][0]
    check(t1["elements"]["catnum"] == 43017 and t1["elements"]["format"] == "tle", "%r" % t1)
    check(t1["next_aos"] == got[0]["aos"] or t1["in_view"], "next AOS: %r" % t1)
    # OMM JSON for sat-2
    omm = run([srtest.SKYROUTE, "elements", "synth", "--overhead", STATION, "--at", iso(at),
               "--first-catnum", "43880", "--format", "omm-json"], check=True).stdout
    op = write(env, "sat2.json", omm)
    st, body = upload(g, "elements", op, key(env, "acme"), "application/json")
    check(st == 200 and body["format"] == "omm-json" and body["predicted"]["sat-2"] >= 1,
          "OMM upload: %r" % body)
    # same elements again: stored already
    st, body = upload(g, "elements", op, key(env, "acme"), "application/json")
    check(st == 200 and body["changed"] == 0, "idempotent: %r" % body)
    # elements for nobody we know
    omm9 = omm.replace(b"43880", b"12345")
    st, body = upload(g, "elements", write(env, "x.json", omm9), key(env, "acme"))
    check(st == 422, "unknown catalogue number: %s %r" % (st, body))
    st, body = upload(g, "elements", write(env, "y.tle", tle[:-5]), key(env, "acme"))
    check(st == 400 and "line" in body["error"], "malformed TLE names the line: %r" % body)
    # an operator schedule over the predicted pass wins in its window
    sched = {"passes": [{"sat": "sat-1", "aos": iso(at - 120000), "los": iso(at + 120000),
                         "max_el_deg": 88.0}]}
    sp = write(env, "over.json", json.dumps(sched))
    st, body = upload(g, "passes", sp, key(env, "acme"), "application/json")
    check(st == 200, "schedule: %r" % body)
    near = [p for p in passes(g, "sat-1") if ms_of(p["los"]) > at - 3600000 and
            ms_of(p["aos"]) < at + 3600000]
    check([p["source"] for p in near] == ["json"], "operator pass replaces the prediction: %r" % near)
    others = [p for p in passes(g, "sat-1") if p["source"] == "predicted"]
    check(len(others) == len(got) - 1, "other predicted passes stay")
    # a pass in view now shows in /v1/targets
    sched = {"passes": [{"sat": "sat-2", "aos": iso(now_ms() - 60000),
                         "los": iso(now_ms() + 600000)}]}
    st, body = upload(g, "passes", write(env, "now.json", json.dumps(sched)), key(env, "acme"))
    check(st == 200, "pass in progress: %s %r" % (st, body))
    st, tg = curl("GET", g["url"] + "/v1/targets")
    t2 = [t for t in tg["targets"] if t["id"] == "sat-2"][0]
    check(t2["in_view"] is True and t2["current"]["source"] == "json", "in view: %r" % t2)
    check(t2["next_aos"] is not None, "next pass after this one: %r" % t2)
    finish(env)


def test_catalogue_upload_stores_each_satellite_its_own_set():
    """A catalogue (many satellites in one upload) is stored as each known
    satellite's own set, not the whole file once per satellite; the passes
    predicted after a restart are the same to the millisecond."""
    import sqlite3
    env, g = gateway("catalogue")
    at = now_ms() + 4 * 3600000
    for fmt in ("tle", "omm-json"):
        parts = [run([srtest.SKYROUTE, "elements", "synth", "--overhead", STATION, "--at",
                      iso(at + k * 600000), "--first-catnum", str(cat), "--format", fmt],
                     check=True).stdout for k, cat in enumerate((43017, 43880))]
        others = run([srtest.SKYROUTE, "elements", "synth", "--walker", "550,53,5,10,1",
                      "--epoch", iso(now_ms()), "--first-catnum", "60000", "--format", fmt],
                     check=True).stdout
        if fmt == "tle":
            text = parts[0] + others + parts[1]
        else:
            objs = [json.loads(x) for x in parts] + [json.loads(others)]
            flat = [o for x in objs for o in (x if isinstance(x, list) else [x])]
            text = json.dumps([flat[0]] + flat[2:] + [flat[1]]).encode()
        path = write(env, "catalogue." + fmt, text)
        st, body = upload(g, "elements", path, key(env, "acme"),
                          "text/plain" if fmt == "tle" else "application/json")
        check(st == 200 and body["accepted"] == 2 and body["ignored"] == 50,
              "%s catalogue: %s %r" % (fmt, st, body))
        db = sqlite3.connect(os.path.join(env.dir, "state-gs-test", "skyroute.db"))
        rows = dict(db.execute("SELECT sat, text FROM elements").fetchall())
        db.close()
        for sat, cat in (("sat-1", b"43017"), ("sat-2", b"43880")):
            t = bytes(rows[sat])
            # the walker's first set, 60000, as a TLE line ("1 60000U") or an OMM field
            # (a bare "60000" can be part of an epoch's microseconds: ...26.960000)
            check(cat in t and len(t) < 600 and b"60000U" not in t and
                  b'"NORAD_CAT_ID":60000' not in t,
                  "%s stores its own set only (%d bytes of %d)" % (sat, len(t), len(text)))
        t0 = now_ms()

        def predicted():  # a day that both runs' 48 h horizons cover
            return sorted(norm(p) for p in passes(g) if p["source"] == "predicted" and
                          t0 < ms_of(p["aos"]) < t0 + 86400000)
        before = predicted()
        check(len(before) >= 2, "passes predicted for both")
        check(env.stop(g["proc"]) == 0, "clean exit on SIGTERM")
        g["proc"] = env.start([srtest.SKYROUTED, "-c", g["conf"]], "gs-test-" + fmt, g["port"])
        srtest.wait_port(g["admin"], proc=g["proc"])
        after = predicted()
        check(after == before, "%s: the same passes after a restart: %r vs %r" %
              (fmt, before[:3], after[:3]))
    finish(env)


def test_config_errors_name_the_line():
    env = srtest.Env("feedcfg")
    env.keygen("gw")
    env.keygen("s1")
    env.keygen("acme")
    good = ("[gateway]\nid = gs\nkey = gw.key\nlisten = 127.0.0.1:0\nstation = 48.85,2.35,35\n"
            "\n[satellite.sat-1]\nurl = http://127.0.0.1:9\npubkey = s1.pub\ncatnum = 43017\n"
            "\n[operator.acme]\npubkey = acme.pub\nsatellites = sat-1\n")
    p = write(env, "good.conf", good)
    r = run([srtest.SKYROUTED, "-c", p, "--check-config"])
    check(r.returncode == 0, "good config: %s" % r.stderr)
    check(not os.path.exists(env.path("state")), "--check-config opens no store")
    cases = [
        (good.replace("48.85,2.35,35", "north pole"), ":5:", "station"),
        (good.replace("catnum = 43017", "catnum = -3"), ":10:", "catnum"),
        (good.replace("satellites = sat-1", "satellites = sat-1, sat-7"), ":14:", "sat-7"),
        (good.replace("pubkey = acme.pub", "pubkey = nope.pub"), ":13:", "nope.pub"),
        (good.replace("satellites = sat-1\n", ""), ":12:", "needs 'satellites'"),
        (good.replace("station =", "min_el_deg = 95\nstation ="), ":5:", "min_el_deg"),
        (good.replace("station =", "station_names = ,\nstation ="), ":5:", "station_names"),
        (good.replace("satellites = sat-1", "targets = sat-1, idc-9"), ":14:", "idc-9"),
        (good.replace("satellites = sat-1", "targets = ,"), ":14:", "list target ids"),
        (good.replace("station =", "signature_window_s = 0\nstation ="), ":5:",
         "signature_window_s"),
    ]
    for i, (text, line, phrase) in enumerate(cases):
        p = write(env, "bad%d.conf" % i, text)
        r = run([srtest.SKYROUTED, "-c", p, "--check-config"])
        err = r.stderr.decode()
        check(r.returncode == 1, "case %d should fail: %s" % (i, err))
        check(line in err and phrase in err, "case %d: want %s and %r in %r" % (i, line, phrase, err))
    finish(env)


if __name__ == "__main__":
    srtest.run_tests([
        test_each_format_is_served_to_the_millisecond,
        test_trust_failures_store_nothing,
        test_malformed_after_good_leaves_the_good_one,
        test_cancelled_contact_withdraws_the_pass,
        test_other_stations_are_skipped,
        test_restart_keeps_what_was_accepted,
        test_catalogue_upload_stores_each_satellite_its_own_set,
        test_elements_tle_and_omm_predict_passes,
        test_config_errors_name_the_line,
    ])
