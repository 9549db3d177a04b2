"""Monitoring: what deploy/monitoring/ ships matches what the daemons export.

  - the alert rules pass `promtool check rules` and their unit tests
    (tests/monitoring/alerts_test.yml: each alert fires when it should and
    stays quiet when it should not);
  - the Grafana dashboard loads as JSON, every panel has a query;
  - the real skyrouted (an IDC target that is the real skyroute-node, a
    target that signs with a key the gateway does not know, a satellite with
    uploaded elements, [cluster] on a real nats-server) and skyroute-node are
    scraped: the build, process, target, element-age and reload metrics say
    what is true of the running processes, and every metric an alert or a
    panel names is exported by one of them;
  - docs/monitoring.md lists every family the two scrapes show, and nothing
    else.

Every wait is bounded; only processes this test started are stopped.
"""

import json
import os
import re
import shutil
import signal
import time

import yaml

import srtest
from srtest import check, run

MON = os.path.join(srtest.SRC, "deploy", "monitoring")
RULES = os.path.join(MON, "skyroute-alerts.yml")
DASHBOARD = os.path.join(MON, "grafana-dashboard.json")
DOC = os.path.join(srtest.SRC, "docs", "monitoring.md")
STATION = "48.85,2.35,35"
CATNUM = 43017

# Series Prometheus makes itself for every scrape target: not exported by us.
PROMETHEUS_MADE = {"up"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                "group_left", "group_right", "inf", "nan"}


def promql_metrics(expr):
    """The metric names a PromQL expression reads (not functions, labels,
    keywords, strings, durations or Grafana variables)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+\S+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*", s):
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def rule_exprs():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            m = re.match(r"label_values\((.*),\s*\w+\)$", q["query"])
            out.append(("variable " + v["name"], m.group(1) if m else q["query"]))
    return out


def scrape(port):
    """{sample name: [(labels text, value)]} and {family: type} of a /metrics page."""
    st, text = srtest.http_get(port, "/metrics")
    check(st == 200, "/metrics answered %s" % st)
    # the exposition parses, and its names follow Prometheus' conventions
    r = run(["promtool", "check", "metrics"], input=text.encode())
    check(r.returncode == 0, "promtool check metrics: %s%s" % (r.stdout.decode(),
                                                             r.stderr.decode()))
    samples, families = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            families[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        name, _, labels = key.partition("{")
        samples.setdefault(name, []).append((labels.rstrip("}"), float(val)))
    return samples, families


def value(samples, name, labels=""):
    for lab, v in samples.get(name, []):
        if labels in lab:
            return v
    raise AssertionError("no sample %s{%s} in the scrape" % (name, labels))


wait_for = srtest.wait_for


# ---- the shipped files on their own -----------------------------------------------------


def test_promtool_checks_rules_and_their_unit_tests():
    promtool = shutil.which("promtool")
    check(promtool, "promtool not found: deploy/install-deps.sh --test installs it "
          "(Debian package prometheus)")
    r = run([promtool, "check", "rules", RULES])
    check(r.returncode == 0, "promtool check rules: %s%s" % (r.stdout.decode(), r.stderr.decode()))
    check(b"SUCCESS: %d rules found" % len(rule_exprs()) in r.stdout, r.stdout.decode())
    tests = os.path.join(srtest.SRC, "tests", "monitoring", "alerts_test.yml")
    r = run([promtool, "test", "rules", tests])
    check(r.returncode == 0, "promtool test rules: %s%s" % (r.stdout.decode(), r.stderr.decode()))
    # every alert has a unit test that expects it to fire
    with open(tests) as f:
        t = yaml.safe_load(f)
    fired = {a["alertname"] for case in t["tests"] for a in case["alert_rule_test"]
             if a["exp_alerts"]}
    missing = {name for name, _ in rule_exprs()} - fired
    check(not missing, "alerts no unit test makes fire: %s" % sorted(missing))


def test_dashboard_is_grafana_json():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    check(dash["title"] and dash["uid"] and dash["schemaVersion"] >= 30, "dashboard header")
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "panel ids unique: %r" % ids)
    names = {v["name"] for v in dash["templating"]["list"]}
    check({"datasource", "job", "instance"} <= names, "variables: %r" % names)
    graphs = [p for p in dash["panels"] if p["type"] != "row"]
    check(len(graphs) >= 20, "%d panels" % len(graphs))
    for p in graphs:
        check(p["targets"] and all(t["expr"].strip() for t in p["targets"]),
              "panel %r has queries" % p["title"])
        check(p["datasource"]["uid"] == "${datasource}", "panel %r datasource" % p["title"])
        g = p["gridPos"]
        check(0 <= g["x"] and g["x"] + g["w"] <= 24, "panel %r fits the grid" % p["title"])
        for t in p["targets"]:
            # balanced brackets: a typo Grafana would only show as an error at run time
            e = t["expr"]
            check(e.count("(") == e.count(")") and e.count("{") == e.count("}")
                  and e.count("[") == e.count("]"), "panel %r: %s" % (p["title"], e))
            check(promql_metrics(e), "panel %r names no metric: %s" % (p["title"], e))
    # what the alerts and panels name is asked for below, against the real scrapes
    check("skyroute_target_up" in promql_metrics(
        'max by (target) (skyroute_target_up{job=~"$job"} offset 5m) == bool 0'),
        "the PromQL name extraction")


# ---- the live daemons --------------------------------------------------------------------


def start_nats(env):
    port = srtest.free_port()
    store = env.path("js")
    os.makedirs(store, exist_ok=True)
    env.start(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
              "nats", port)
    return "nats://127.0.0.1:%d" % port


def gateway_conf(env, node, forged, nats, admin, port, broken=False):
    env.keygen("gs-mon")
    env.keygen("ops")
    _, impostor = env.keygen("impostor")
    _, satpub = env.keygen("sat-1")
    lines = ["[gateway]", "id = gs-mon", "listen = 127.0.0.1:%d" % port,
             "admin = 127.0.0.1:%d" % admin, "key = gs-mon.key", "state_dir = state",
             "station = %s" % STATION, "min_el_deg = 10", "",
             "[idc.edge-1]", "url = %s" % node["url"], "pubkey = edge-1.pub", "",
             # the real node "forged" signs with its own key; the gateway
             # expects another's: every result from it fails verification
             "[idc.forged]", "url = %s" % forged["url"],
             "pubkey = %s" % ("missing.pub" if broken else os.path.basename(impostor)), "",
             "[satellite.sat-1]", "url = http://127.0.0.1:9", "pubkey = sat-1.pub",
             "catnum = %d" % CATNUM, "",
             "[operator.ops]", "pubkey = ops.pub", "satellites = *", "",
             "[cluster]", "nats = %s" % nats, "replicas = 1", "op_timeout_ms = 3000", ""]
    path = env.path("gs-mon.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def upload_elements(env, g):
    tle = run([srtest.SKYROUTE, "elements", "synth", "--overhead", STATION, "--at",
               srtest.iso(time.time() + 1800), "--first-catnum", str(CATNUM)],
              check=True).stdout
    path = env.path("sat-1.tle")
    with open(path, "wb") as f:
        f.write(tle)
    sig = run([srtest.SKYROUTE, "sign", "--key", env.path("ops.key"), "--url", "/v1/elements",
               "--station", "gs-mon", "--content-type", "text/plain"], input=tle,
              check=True).stdout.decode().strip()
    status, _, body = srtest.curl(["-X", "PUT", "--data-binary", "@" + path, "-H",
                                   "content-type: text/plain", "-H", "skyroute-signature: " + sig,
                                   g["url"] + "/v1/elements"])
    check(status == 200, "elements accepted: %s %s" % (status, body[:300]))


def proc_facts(pid):
    """What /proc says of |pid|: start time (Unix s), RSS bytes, open fds, fd limit."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    with open("/proc/stat") as f:
        btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
    tck = os.sysconf("SC_CLK_TCK")
    with open("/proc/%d/statm" % pid) as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/limits" % pid) as f:
        lim = next(l for l in f if l.startswith("Max open files")).split()[3]
    return btime + int(fields[19]) / tck, rss, fds, int(lim)


def check_process(samples, proc, who):
    start, rss, fds, lim = proc_facts(proc.pid)
    check(abs(value(samples, "process_start_time_seconds") - start) < 0.02,
          "%s start time %r vs /proc %r" % (who, value(samples, "process_start_time_seconds"),
                                            start))
    got = value(samples, "process_resident_memory_bytes")
    check(0.5 * rss < got < 2 * rss, "%s RSS %d vs /proc %d" % (who, got, rss))
    got = value(samples, "process_open_fds")
    check(abs(got - fds) <= 3, "%s open fds %d vs /proc %d" % (who, got, fds))
    check(value(samples, "process_max_fds") == lim, "%s max fds" % who)
    check(value(samples, "process_cpu_seconds_total") >= 0, "%s cpu" % who)
    version = run([srtest.SKYROUTED, "--version"]).stdout.decode().split()[-1]
    (labels, v), = samples["skyroute_build_info"]
    check(v == 1 and 'version="%s"' % version in labels and 'arch="' in labels,
          "%s build info %r" % (who, labels))


def workload(g, place=None):
    p = os.path.join(os.path.dirname(g["conf"]), "w.bin")
    with open(p, "wb") as f:
        f.write(b"monitoring" * 10)
    hdrs = ["skyroute-handler: digest", "skyroute-deadline-ms: 5000"]
    if place:
        hdrs.append("skyroute-place: target:" + place)
    return srtest.curl_post(g["url"] + "/v1/workloads", p, hdrs)


def test_scrapes_match_alerts_dashboard_and_docs():
    srtest.scenario("monitoring", _live, tolerate=("nats",))


def _live(env):
    _, gpub = env.keygen("gs-mon")
    node = env.start_node("edge-1", [gpub])
    forged = env.start_node("forged", [gpub])
    nats = start_nats(env)
    admin, port = srtest.free_port(), srtest.free_port()
    conf = gateway_conf(env, node, forged, nats, admin, port)
    t_start = time.time()
    gp = env.start([srtest.SKYROUTED, "-c", conf], "gs-mon", port)
    srtest.wait_port(admin, proc=gp)
    g = {"url": "http://127.0.0.1:%d" % port, "admin": admin, "conf": conf, "proc": gp}

    # at start-up: the load counts as a successful reload, every target is up
    s, _ = scrape(admin)
    check(value(s, "skyroute_config_last_reload_success") == 1, "start-up load succeeded")
    t0 = value(s, "skyroute_config_last_reload_success_timestamp_seconds")
    check(t_start - 1 <= t0 <= time.time() + 1, "start-up load time %r" % t0)
    for t in ("edge-1", "forged"):
        check(value(s, "skyroute_target_up", 'target="%s"' % t) == 1, "%s up at start" % t)
        check(value(s, "skyroute_target_ejected", 'target="%s"' % t) == 0, "%s not ejected" % t)
    # before any dispatch the RTT is the configured prior (rtt_ms, default)
    check(value(s, "skyroute_target_rtt_seconds", 'target="edge-1"') > 0, "prior RTT")
    check_process(s, gp, "skyrouted")
    check("skyroute_elements_age_seconds" not in s, "no element age before elements")

    # a workload through the real node: request, dispatch and node counters
    st, h, body = workload(g, "edge-1")
    check(st == 200 and h.get("skyroute-target") == "edge-1", "workload: %s %r" % (st, body[:200]))

    # three results from "forged" fail verification: counted, and the
    # target is ejected (SR_ROUTER_EJECT_AFTER failures in a row)
    for i in range(3):
        st, _, body = workload(g, "forged")
        check(st == 502, "forged result refused: %s %r" % (st, body[:200]))
    s = wait_for("forged to be down", lambda: (lambda s: s if value(
        s[0], "skyroute_target_up", 'target="forged"') == 0 else None)(scrape(admin)))[0]
    check(value(s, "skyroute_target_ejected", 'target="forged"') == 1, "forged ejected")
    check(value(s, "skyroute_target_up", 'target="edge-1"') == 1, "edge-1 still up")
    check(value(s, "skyroute_signature_failures_total", 'target="forged"') == 3,
          "three signature failures: %r" % s["skyroute_signature_failures_total"])
    rtt = value(s, "skyroute_target_rtt_seconds", 'target="edge-1"')
    check(0 < rtt < 5, "edge-1 observed RTT %r s" % rtt)

    # elements: their age, computed at the scrape
    upload_elements(env, g)
    s1, _ = scrape(admin)
    a1 = value(s1, "skyroute_elements_age_seconds", 'satellite="sat-1"')
    time.sleep(1.2)
    s2, _ = scrape(admin)
    a2 = value(s2, "skyroute_elements_age_seconds", 'satellite="sat-1"')
    check(abs(a1) < 3 * 86400, "element age %r s" % a1)
    check(1.0 < a2 - a1 < 3.0, "the age moves with the clock: %r then %r" % (a1, a2))

    # NATS: connected once the stream and buckets are ready
    wait_for("the cluster to connect",
             lambda: value(scrape(admin)[0], "skyroute_cluster_connected") == 1, timeout=30)

    # SIGHUP: a good file reloads (success, newer time)...
    time.sleep(1.1)
    gp.send_signal(signal.SIGHUP)
    s = wait_for("the reload", lambda: (lambda s: s if value(
        s, "skyroute_config_last_reload_success_timestamp_seconds") > t0 else None)(
            scrape(admin)[0]))
    t1 = value(s, "skyroute_config_last_reload_success_timestamp_seconds")
    check(value(s, "skyroute_config_last_reload_success") == 1, "good reload succeeded")
    # ... a broken one does not: success 0, the time of the last good one kept
    gateway_conf(env, node, forged, nats, admin, port, broken=True)
    gp.send_signal(signal.SIGHUP)
    s = wait_for("the failed reload", lambda: (lambda s: s if value(
        s, "skyroute_config_last_reload_success") == 0 else None)(scrape(admin)[0]))
    check(value(s, "skyroute_config_last_reload_success_timestamp_seconds") == t1,
          "a failed reload keeps the last success's time")
    check(value(s, "skyroute_reloads_total", 'part="targets",outcome="failed"') == 1,
          "counted as failed: %r" % s["skyroute_reloads_total"])
    # and fixing the file clears it
    gateway_conf(env, node, forged, nats, admin, port)
    gp.send_signal(signal.SIGHUP)
    wait_for("the repaired reload",
             lambda: value(scrape(admin)[0], "skyroute_config_last_reload_success") == 1)

    gw_samples, gw_families = scrape(admin)
    node_samples, node_families = scrape(node["admin"])
    check_process(node_samples, node["proc"], "skyroute-node")
    check(value(node_samples, "skyroute_node_executed_total") == 1, "the node ran one")
    check(value(node_samples, "skyroute_node_handler_runs_total", 'handler="') == 1,
          "by handler: %r" % node_samples.get("skyroute_node_handler_runs_total"))
    check_names(gw_samples, node_samples, gw_families, node_families)


def check_names(gw_samples, node_samples, gw_families, node_families):
    exported = set(gw_samples) | set(node_samples)

    def missing_in(exprs):
        out = []
        for who, expr in exprs:
            for name in sorted(promql_metrics(expr) - PROMETHEUS_MADE - exported):
                out.append("%s: %s" % (who, name))
        return out

    miss = missing_in(rule_exprs())
    check(not miss, "alerts name metrics neither daemon exports: %s" % miss)
    miss = missing_in(dashboard_exprs())
    check(not miss, "panels name metrics neither daemon exports: %s" % miss)

    # docs/monitoring.md: one table row per family, "| `name` | type | ..."
    with open(DOC) as f:
        doc = f.read()
    documented = {}
    for m in re.finditer(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(\w+)\s*\|", doc, re.M):
        documented[m.group(1)] = m.group(2)
    families = dict(gw_families)
    families.update(node_families)
    # every family the sources name is declared from the start, not only
    # after its first event (a dashboard shows "no data" for what is absent)
    named = set()
    for root, _, files in os.walk(os.path.join(srtest.SRC, "gateway")):
        for fn in files:
            if fn.endswith(".c"):
                with open(os.path.join(root, fn)) as f:
                    named |= set(re.findall(r'"((?:skyroute|process)_[a-z0-9_]+)"', f.read()))
    late = sorted(named - set(families))
    check(not late, "families the sources name but a fresh scrape does not show: %s" % late)
    undocumented = sorted(set(families) - set(documented))
    check(not undocumented, "families exported but not in docs/monitoring.md: %s" % undocumented)
    stale = sorted(set(documented) - set(families))
    check(not stale, "docs/monitoring.md lists families neither daemon exports: %s" % stale)
    wrong = sorted(n for n in families if families[n] != documented[n])
    check(not wrong, "types differ from docs/monitoring.md: %s" %
          [(n, families[n], documented[n]) for n in wrong])
    # every alert is described there too
    for name, _ in rule_exprs():
        check(name in doc, "docs/monitoring.md does not describe alert %s" % name)


if __name__ == "__main__":
    srtest.run_tests([test_promtool_checks_rules_and_their_unit_tests,
                      test_dashboard_is_grafana_json,
                      test_scrapes_match_alerts_dashboard_and_docs])
