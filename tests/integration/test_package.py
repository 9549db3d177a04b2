"""The Debian package: built with CPack from this build tree, its contents and
maintainer scripts checked, installed with dpkg -i; its example configuration
passes --check-config; systemd finds both units valid and rates each one's
exposure at 2.0 or lower; and both daemons are started the way systemd starts
a Type=notify unit -- the unit's own ExecStart lines, as its User, in /, with
$NOTIFY_SOCKET and $WATCHDOG_USEC/$WATCHDOG_PID set -- while this test is the
service manager on the other end of the notify socket: each daemon must send
READY=1 once it serves, WATCHDOG=1 from then on, and STOPPING=1 when SIGTERM
starts its drain, from its main process, in that order; a workload goes
through the gateway to the node meanwhile. (systemd itself cannot be PID 1
here.) Needs root (CI runs as root); the package is purged at the end, and
the purge must remove what the package made."""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import srtest
from srtest import check, run

UNITS = "/usr/lib/systemd/system"
GW_UNIT = "skyroute.service"
NODE_UNIT = "skyroute-node@.service"
NODE_INSTANCE = "pkgtest"
# the watchdog period of the run: the units say 30 s; a test waits for less
WATCHDOG_USEC = 300000


def unit_service(path, instance=None):
    """The [Service] keys of a unit file (repeated keys kept in order), with
    the instance specifier %i filled in."""
    keys = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                k, v = line.split("=", 1)
                if instance is not None:
                    v = v.replace("%i", instance)
                keys.setdefault(k.strip(), []).append(v.strip())
    return keys


class Manager:
    """The service manager's side of sd_notify: a datagram socket whose
    messages carry the sender's credentials (SO_PASSCRED), as systemd's does."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)  # the daemon sends as the unit's user
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (pid, uid, set of "KEY=VALUE" lines)

    def wait_for(self, key, pid, timeout=20.0):
        """Reads messages until one from |pid| holds |key| (e.g. READY=1); all
        are kept in self.messages. False at the timeout."""
        end = time.time() + timeout
        while time.time() < end:
            self.sock.settimeout(max(0.05, end - time.time()))
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                break
            spid = suid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    spid, suid, _ = struct.unpack("iII", cdata[:12])
            lines = data.decode(errors="replace").split("\n")
            self.messages.append((spid, suid, lines))
            if spid == pid and key in lines:
                return True
        return False

    def keys_in_order(self, pid):
        return [l for spid, _, lines in self.messages if spid == pid for l in lines
                if l in ("READY=1", "WATCHDOG=1", "STOPPING=1")]

    def close(self):
        self.sock.close()


def start_as_unit(keys, mgr, logpath):
    """Starts a unit's ExecStart as its User and Group, as systemd would: in
    /, environment cleared but for the notify protocol's variables, with
    WATCHDOG_PID the main process's own (the shell execs into setpriv,
    setpriv into the daemon: one PID). Runs ExecStartPre first."""
    user = keys["User"][0]
    group = keys["Group"][0]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": mgr.path,
           "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    drop = ["setpriv", "--reuid=" + user, "--regid=" + group, "--init-groups", "--"]
    for pre in keys.get("ExecStartPre", []):
        r = subprocess.run(drop + pre.split(), cwd="/", env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 0, "ExecStartPre %s: %s" % (pre, r.stderr.decode()))
    argv = keys["ExecStart"][0].split()
    log = open(logpath, "wb")
    p = subprocess.Popen(["sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh"]
                         + drop + argv, cwd="/", env=env, stdout=log, stderr=log,
                         preexec_fn=srtest._die_with_parent)
    log.close()
    return p


def stop_as_unit(p, keys, mgr, name, logpath):
    """SIGTERM (KillSignal) and the protocol's end: STOPPING=1, then exit 0
    within TimeoutStopSec."""
    check(keys.get("KillSignal", ["SIGTERM"])[0] == "SIGTERM", "%s: KillSignal" % name)
    p.send_signal(signal.SIGTERM)
    ok = mgr.wait_for("STOPPING=1", p.pid, timeout=20)
    check(ok, "%s: STOPPING=1 after SIGTERM (got %r)" % (name, mgr.keys_in_order(p.pid)))
    try:
        rc = p.wait(timeout=float(keys["TimeoutStopSec"][0].rstrip("s")))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = "still running"
    check(rc == 0, "%s: exit status %s: %s" % (name, rc, open(logpath, "rb").read()[-800:]))


def check_protocol(mgr, p, name, uid):
    """READY=1 first, then watchdog pings from the main process itself, as
    NotifyAccess=main requires."""
    ok = mgr.wait_for("READY=1", p.pid)
    check(ok, "%s: READY=1 from pid %d (got %r)" % (name, p.pid, mgr.messages[-5:]))
    for _ in range(2):
        check(mgr.wait_for("WATCHDOG=1", p.pid, timeout=10),
              "%s: WATCHDOG=1 every half period after READY=1" % name)
    mine = [(spid, suid) for spid, suid, _ in mgr.messages]
    check(all(m == (p.pid, uid) for m in mine),
          "%s: every message from the main process as the unit's user: %r" % (name, mine))
    ready = [l for _, _, lines in mgr.messages for l in lines if l.startswith("STATUS=")]
    check(ready and ready[0] != "STATUS=", "%s: a STATUS= line with READY=1: %r" % (name, ready))


def check_contents(deb):
    r = run(["dpkg-deb", "-I", deb])
    info = r.stdout.decode()
    check("Package: skyroute" in info, "package metadata")
    check("libsystemd0" in info, "Depends names libsystemd0 (dpkg-shlibdeps): %s" % info)
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        check(re.search(r"\b%s\b" % script, info), "control archive has %s" % script)
    r = run(["dpkg-deb", "-I", deb, "prerm"])
    check(b"systemctl stop skyroute.service 'skyroute-node@*.service'" in r.stdout,
          "prerm stops the gateway and every node instance on removal")
    r = run(["dpkg-deb", "-I", deb, "conffiles"])
    check(r.stdout.split() == [b"/etc/skyroute/skyroute.conf", b"/etc/skyroute/node-example.conf"],
          "conffiles: %r" % r.stdout)
    r = run(["dpkg-deb", "-c", deb])
    files = set(re.findall(r"\./(\S+)$", r.stdout.decode(), re.M))
    for f in ("usr/sbin/skyrouted", "usr/sbin/skyroute-node", "usr/bin/skyroute",
              "etc/skyroute/skyroute.conf", "etc/skyroute/node-example.conf",
              "usr/lib/systemd/system/skyroute.service",
              "usr/lib/systemd/system/skyroute-node@.service",
              "usr/share/doc/skyroute/copyright", "usr/share/doc/skyroute/CHANGELOG.md",
              "usr/share/man/man8/skyrouted.8", "usr/share/man/man8/skyroute-node.8",
              "usr/share/man/man1/skyroute.1",
              "usr/share/skyroute/monitoring/grafana-dashboard.json",
              "usr/share/skyroute/monitoring/skyroute-alerts.yml"):
        check(f in files, "the package holds /%s" % f)


def check_units():
    """systemd's own verdicts: valid units (no warning either), exposure <= 2.0."""
    scratch = tempfile.mkdtemp(prefix="sr-units-")
    try:
        # a template is verified through an instance of it
        inst = os.path.join(scratch, "skyroute-node@%s.service" % NODE_INSTANCE)
        shutil.copy(os.path.join(UNITS, NODE_UNIT), os.path.join(scratch, NODE_UNIT))
        os.symlink(NODE_UNIT, inst)
        for unit in (os.path.join(UNITS, GW_UNIT), inst):
            r = run(["systemd-analyze", "verify", unit], timeout=120)
            out = (r.stdout + r.stderr).decode()
            check(r.returncode == 0 and not out.strip(), "systemd-analyze verify %s: %s" % (unit, out))
        for unit, name in ((GW_UNIT, "skyroute.service"), (NODE_UNIT, r"skyroute-node@\S*\.service")):
            r = run(["systemd-analyze", "security", "--offline=true", os.path.join(UNITS, unit)],
                    timeout=120)
            out = r.stdout.decode() + r.stderr.decode()
            m = re.search(r"Overall exposure level for %s: ([0-9.]+)" % name, out)
            check(m, "systemd-analyze printed an exposure level for %s: %s" % (unit, out[-500:]))
            level = float(m.group(1))
            print("systemd-analyze exposure of %s: %.1f" % (unit, level))
            check(level <= 2.0, "%s: exposure %.1f must be <= 2.0" % (unit, level))
        for unit in (GW_UNIT, NODE_UNIT):
            keys = unit_service(os.path.join(UNITS, unit))
            check(keys.get("Type") == ["notify"] and keys.get("WatchdogSec"),
                  "%s is Type=notify with a WatchdogSec: %r" % (unit, keys))
    finally:
        shutil.rmtree(scratch)


def run_both_as_units(work):
    """The node (instance pkgtest of the template) and the gateway routing to
    it, each started from its installed unit, a workload through both, then
    both stopped."""
    sk = pwd.getpwnam("skyroute")
    node_conf = "/etc/skyroute/node-%s.conf" % NODE_INSTANCE
    node_key = "/etc/skyroute/node-%s" % NODE_INSTANCE
    nport, naport, gport, gaport = (srtest.free_port() for _ in range(4))
    r = run(["/usr/bin/skyroute", "keygen", "--out", node_key])
    check(r.returncode == 0, "keygen: %s" % r.stderr.decode())
    os.chown(node_key + ".key", sk.pw_uid, sk.pw_gid)
    # the shipped example, its required keys set for this machine
    with open("/etc/skyroute/node-example.conf") as f:
        text = f.read()
    for k, v in (("id", NODE_INSTANCE), ("listen", "127.0.0.1:%d" % nport),
                 ("admin", "127.0.0.1:%d" % naport), ("key", node_key + ".key")):
        text, n = re.subn(r"^%s = .*$" % k, "%s = %s" % (k, v), text, flags=re.M)
        check(n == 1, "node-example.conf sets %s" % k)
    text += "\n[exec.upper]\ncommand = tr a-z A-Z\n"
    with open(node_conf, "w") as f:
        f.write(text)
    with open("/etc/skyroute/skyroute.conf", "w") as f:
        f.write("[gateway]\nid = gs-pkg\nlisten = 127.0.0.1:%d\nadmin = 127.0.0.1:%d\n"
                "key = /etc/skyroute/gateway.key\nstate_dir = /var/lib/skyroute\n\n"
                "[idc.%s]\nurl = http://127.0.0.1:%d\npubkey = %s.pub\ngops = 10\n"
                % (gport, gaport, NODE_INSTANCE, nport, node_key))
    # StateDirectory=skyroute, StateDirectoryMode=0750, as systemd makes it
    os.makedirs("/var/lib/skyroute", exist_ok=True)
    os.chown("/var/lib/skyroute", sk.pw_uid, sk.pw_gid)
    os.chmod("/var/lib/skyroute", 0o750)

    nkeys = unit_service(os.path.join(UNITS, NODE_UNIT), NODE_INSTANCE)
    gkeys = unit_service(os.path.join(UNITS, GW_UNIT))
    nmgr, gmgr = Manager(work), None
    node = gw = None
    try:
        node = start_as_unit(nkeys, nmgr, os.path.join(work, "node.log"))
        check_protocol(nmgr, node, "skyroute-node@" + NODE_INSTANCE, sk.pw_uid)
        gdir = os.path.join(work, "gw")
        os.mkdir(gdir)
        gmgr = Manager(gdir)
        gw = start_as_unit(gkeys, gmgr, os.path.join(work, "gw.log"))
        check_protocol(gmgr, gw, "skyroute", sk.pw_uid)
        # READY=1 means serving: no waiting for the port
        body = os.path.join(work, "in.txt")
        with open(body, "wb") as f:
            f.write(b"hello from the package")
        st, h, out = srtest.curl_post("http://127.0.0.1:%d/v1/workloads" % gport, body,
                                      ["skyroute-handler: exec:upper"])
        check(st == 200 and out == b"HELLO FROM THE PACKAGE" and h.get("skyroute-target") ==
              NODE_INSTANCE, "a workload through both services: %s %r" % (st, out[:200]))
        stop_as_unit(gw, gkeys, gmgr, "skyroute", os.path.join(work, "gw.log"))
        stop_as_unit(node, nkeys, nmgr, "skyroute-node@" + NODE_INSTANCE,
                     os.path.join(work, "node.log"))
        for mgr, p, name in ((nmgr, node, "node"), (gmgr, gw, "gateway")):
            seq = mgr.keys_in_order(p.pid)
            check(seq[0] == "READY=1" and seq[-1] == "STOPPING=1" and
                  seq.count("READY=1") == 1 and seq.count("STOPPING=1") == 1 and
                  "WATCHDOG=1" in seq[1:-1], "%s: READY, WATCHDOG..., STOPPING: %r" % (name, seq))
            print("%s notified: READY=1, WATCHDOG=1 x%d, STOPPING=1" % (name, seq.count("WATCHDOG=1")))
    finally:
        for p in (gw, node):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        for m in (nmgr, gmgr):
            if m:
                m.close()
        for f in (node_conf, node_key + ".key", node_key + ".pub"):
            if os.path.exists(f):
                os.unlink(f)


def test_deb_installs_and_is_hardened():
    if os.geteuid() != 0:
        print("skipped: installing a package needs root")
        return
    r = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(srtest.BIN, "CPackConfig.cmake")],
                       cwd=srtest.BIN, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    check(r.returncode == 0, "cpack: %s" % r.stderr.decode()[-2000:])
    debs = sorted(glob.glob(os.path.join(srtest.BIN, "skyroute_*.deb")), key=os.path.getmtime)
    check(debs, "a .deb was built")
    deb = debs[-1]
    check_contents(deb)
    r = run(["dpkg", "-i", deb], timeout=300)
    check(r.returncode == 0, "dpkg -i: %s %s" % (r.stdout.decode()[-1500:], r.stderr.decode()[-1500:]))
    work = tempfile.mkdtemp(prefix="sr-pkg-")
    os.chmod(work, 0o755)
    purged = False
    try:
        st = os.stat("/etc/skyroute/gateway.key")
        check(st.st_mode & 0o777 == 0o600, "gateway key is 0600")
        r = run(["getent", "passwd", "skyroute"])
        check(r.returncode == 0, "dedicated user skyroute exists")
        r = run(["/usr/sbin/skyrouted", "-c", "/etc/skyroute/skyroute.conf", "--check-config"])
        check(r.returncode == 0 and b"OK" in r.stdout,
              "--check-config on the installed example: %s" % r.stderr.decode())
        check_units()
        r = run(["man", "-l", "/usr/share/man/man8/skyrouted.8"], timeout=60)
        check(b"skyrouted" in r.stdout, "man page renders")
        run_both_as_units(work)
        r = run(["dpkg", "--purge", "skyroute"], timeout=300)
        purged = True
        check(r.returncode == 0, "dpkg --purge: %s" % r.stderr.decode()[-1500:])
        for gone in ("/etc/skyroute", "/var/lib/skyroute", "/usr/sbin/skyrouted",
                     os.path.join(UNITS, NODE_UNIT)):
            check(not os.path.exists(gone), "purge removed %s" % gone)
    finally:
        if not purged:
            run(["dpkg", "--purge", "skyroute"], timeout=300)
        shutil.rmtree(work, ignore_errors=True)


def test_node_config_covers_every_option():
    """The shipped node configuration names every option of skyroute-node
    --help as a [node] key, and the node reads such keys: an unknown one is
    refused with its file and line, the command line wins over the file."""
    r = run([srtest.NODE, "--help"])
    opts = set(re.findall(r"--([a-z][a-z-]+)", r.stdout.decode())) - {"help", "version", "config"}
    check(len(opts) >= 18, "options in --help: %r" % sorted(opts))
    with open(os.path.join(srtest.SRC, "deploy", "skyroute-node.conf")) as f:
        conf = f.read()
    keys = set(re.findall(r"^;?([a-z_]+) = ", conf.split("[exec.")[0], re.M))
    check({o.replace("-", "_") for o in opts} == keys,
          "node-example.conf keys == --help options: missing %r, extra %r" %
          (sorted({o.replace("-", "_") for o in opts} - keys),
           sorted(keys - {o.replace("-", "_") for o in opts})))
    env = srtest.Env("nodeconf")
    try:
        gkey, gpub = env.keygen("gs")
        nkey, npub = env.keygen("n1")
        bad = env.path("bad.conf")
        with open(bad, "w") as f:
            f.write("[node]\nid = n1\n\nlisten_on = 127.0.0.1:1\n")
        r = run([srtest.NODE, "--config", bad])
        check(r.returncode == 1 and b"bad.conf:4: unknown key 'listen_on' in [node]" in r.stderr,
              "unknown key named with file and line: %r" % r.stderr)
        port, aport = srtest.free_port(), srtest.free_port()
        good = env.path("n1.conf")
        with open(good, "w") as f:
            f.write("[node]\nid = n1\nlisten = 127.0.0.1:%d\nkey = %s\ntrust = %s\n"
                    "admin = 127.0.0.1:1\ngops = 7\n" % (port, nkey, gpub))
        p = env.start([srtest.NODE, "--config", good, "--admin", "127.0.0.1:%d" % aport], "n1",
                      port)
        srtest.wait_port(aport, proc=p)  # the command line's --admin, not the file's
        node = {"id": "n1", "url": "http://127.0.0.1:%d" % port, "pub": npub}
        g = env.start_gateway("gs", [node])
        body = env.path("in.txt")
        with open(body, "wb") as f:
            f.write(b"x")
        st, h, out = srtest.curl_post(g["url"] + "/v1/workloads", body,
                                      ["skyroute-handler: compute", "skyroute-work: 0.07"])
        check(st == 200 and json.loads(out)["gops"] == 7, "gops from the file: %s %r" % (st, out))
        env.stop(g["proc"])
        env.stop(p)
    finally:
        env.close()


def test_state_dir_backup_and_restore():
    """docs/operations.md's backup and restore of state_dir, as written: an
    online backup with sqlite3's .backup while the gateway serves, the files
    replaced while it is stopped; the restored gateway serves the results
    finished before the backup and knows nothing accepted after it."""
    env = srtest.Env("backup")
    try:
        gkey, gpub = env.keygen("gs-test")
        n = env.start_node("alpha", [gpub])
        g = env.start_gateway("gs-test", [n])
        state = env.path("state-gs-test")

        def submit(payload):
            p = env.path("p.bin")
            with open(p, "wb") as f:
                f.write(payload)
            r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", "-H",
                     "prefer: respond-async", "-H", "skyroute-handler: digest",
                     "--data-binary", "@" + p, g["url"] + "/v1/workloads"])
            head = r.stdout.decode().partition("\r\n\r\n")[0]
            check(head.startswith("HTTP/2 202"), "202 accepted: %r" % head)
            return [l.split(": ", 1)[1] for l in head.split("\r\n")
                    if l.lower().startswith("location:")][0]

        def fetch(loc, want):
            end = time.time() + 10
            while True:
                r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", g["url"] + loc])
                head, _, res = r.stdout.decode().partition("\r\n\r\n")
                if head.startswith("HTTP/2 %d" % want) or time.time() > end:
                    return head, res
                time.sleep(0.1)

        before = submit(b"finished before the backup")
        head, res_before = fetch(before, 200)
        check(head.startswith("HTTP/2 200"), "first result: %r" % head)
        bk = env.path("backup")
        os.mkdir(bk)
        for db in ("skyroute", "spool"):
            r = run(["sqlite3", os.path.join(state, db + ".db"),
                     ".backup '%s'" % os.path.join(bk, db + ".db")])
            check(r.returncode == 0, "online .backup of %s.db: %r" % (db, r.stderr))
        after = submit(b"accepted after the backup")
        head, _ = fetch(after, 200)
        check(head.startswith("HTTP/2 200"), "second result: %r" % head)
        env.stop(g["proc"])
        for f in os.listdir(state):
            if re.search(r"\.db(-wal|-shm)?$", f):
                os.unlink(os.path.join(state, f))
        for db in ("skyroute", "spool"):
            shutil.copy(os.path.join(bk, db + ".db"), state)
        g = env.start_gateway("gs-test", [n])
        head, res = fetch(before, 200)
        check(head.startswith("HTTP/2 200") and res == res_before,
              "the restored gateway serves the earlier result: %r %r" % (head, res))
        head, _ = fetch(after, 404)
        check(head.startswith("HTTP/2 404"), "and knows nothing accepted later: %r" % head)
    finally:
        bad = env.close()
    check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


if __name__ == "__main__":
    srtest.run_tests([test_node_config_covers_every_option, test_state_dir_backup_and_restore,
                      test_deb_installs_and_is_hardened])
