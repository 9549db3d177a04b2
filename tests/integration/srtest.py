"""Shared harness for skyroute integration tests.

Starts the real programs (skyrouted, skyroute-node) on loopback ports, waits
for them, and stops only the processes it started, by PID. Every wait is
bounded. Tests are plain functions registered with `run_tests`, which prints
one line per test and a final 'N passed, N failed' line.
"""

import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

SRC = os.environ.get("SR_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SR_BINARY_DIR", os.path.join(SRC, "build"))
SKYROUTE = os.path.join(BIN, "gateway", "skyroute")
SKYROUTED = os.path.join(BIN, "gateway", "skyrouted")
NODE = os.path.join(BIN, "gateway", "skyroute-node")
# SR_VALGRIND=1 runs the daemons under valgrind's memcheck
VALGRIND = os.environ.get("SR_VALGRIND") == "1"

_prctl = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process goes, even by
    SIGKILL (a ctest timeout), so no daemon outlives the test that started it."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# Envs not closed yet: run_tests stops what a failed test left running
_open_envs = []


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_port_rng = random.Random()


def free_port():
    """A port free on 127.0.0.1 now (bound and closed again), chosen below the
    kernel's ephemeral range: a port from that range (what binding port 0
    gives) can be taken between this call and the server's bind by any
    outgoing connection's local end, as one NATS server's dial to a route not
    yet listening once took that route's port."""
    low, high = max(1024, _EPHEMERAL_LOW - 12000), _EPHEMERAL_LOW
    for _ in range(200):
        port = _port_rng.randrange(low, high)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket()  # the range is crowded: take what the kernel gives
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30.0 if VALGRIND else 10.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on port %d after %.0fs" % (port, timeout))


def http_get(port, path, timeout=5.0):
    """Plain HTTP/1.1 GET (admin listeners speak it). Returns (status, text)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(port, name, labels=None):
    """Sum of a Prometheus series (all label sets, or those containing `labels`)."""
    _, text = http_get(port, "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, val = line.rpartition(" ")
        base = key.split("{")[0]
        if base != name:
            continue
        if labels and labels not in key:
            continue
        total += float(val)
    return total


class Env:
    """A temporary directory with keys, processes and cleanup."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="sr-%s-" % name)
        self.procs = []
        _open_envs.append(self)

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def write(self, name, data):
        """Writes |data| (bytes) to a file of the directory; returns its path."""
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def keygen(self, name):
        prefix = self.path(name)
        if not os.path.exists(prefix + ".key"):
            subprocess.run([SKYROUTE, "keygen", "--out", prefix], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return prefix + ".key", prefix + ".pub"

    def start(self, argv, name, port=None, env=None):
        log = open(self.path(name + ".log"), "ab")
        if VALGRIND and argv[0] in (SKYROUTED, NODE):
            # memcheck: any error or definite leak makes the daemon exit 99,
            # which close() reports as a bad exit
            argv = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"] + argv
        # the death signal is tied to the thread that forks: only the main
        # thread's children get it (no test starts daemons from another)
        main = threading.current_thread() is threading.main_thread()
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             preexec_fn=_die_with_parent if main else None)
        p.sr_name = name
        # nats-server answers SIGTERM with status 1 ("Server Exiting..")
        p.sr_ok = (0, -signal.SIGKILL, 1) if argv[0] == "nats-server" else (0, -signal.SIGKILL)
        p.sr_log = self.path(name + ".log")
        self.procs.append(p)
        if port:
            wait_port(port, proc=p)
        return p

    def start_node(self, node_id, trust, admin=True, extra=()):
        key, pub = self.keygen(node_id)
        port = free_port()
        aport = free_port() if admin else None
        argv = [NODE, "--id", node_id, "--listen", "127.0.0.1:%d" % port, "--key", key]
        for t in trust:
            argv += ["--trust", t]
        if aport:
            argv += ["--admin", "127.0.0.1:%d" % aport]
        argv += list(extra)
        p = self.start(argv, node_id, port)
        if aport:
            wait_port(aport, proc=p)
        return {"id": node_id, "port": port, "admin": aport, "key": key, "pub": pub, "proc": p,
                "url": "http://127.0.0.1:%d" % port}

    def start_gateway(self, gw_id, targets, extra_gateway="", sections=""):
        key, pub = self.keygen(gw_id)
        port, aport = free_port(), free_port()
        lines = ["[gateway]", "id = %s" % gw_id, "listen = 127.0.0.1:%d" % port,
                 "admin = 127.0.0.1:%d" % aport, "key = %s.key" % gw_id,
                 "state_dir = state-%s" % gw_id, extra_gateway, ""]
        for t in targets:
            kind = t.get("kind", "idc")
            lines += ["[%s.%s]" % (kind, t["id"]), "url = %s" % t["url"],
                      "pubkey = %s" % os.path.basename(t["pub"])]
            for k, v in t.get("extra", {}).items():
                lines.append("%s = %s" % (k, v))
            lines.append("")
        lines.append(sections)
        conf = self.path(gw_id + ".conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines))
        p = self.start([SKYROUTED, "-c", conf], gw_id, port)
        wait_port(aport, proc=p)
        return {"id": gw_id, "port": port, "admin": aport, "key": key, "pub": pub, "proc": p,
                "conf": conf, "url": "http://127.0.0.1:%d" % port}

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def close(self, keep=False):
        if self in _open_envs:
            _open_envs.remove(self)
        for p in self.procs:
            self.stop(p)
        failed = [p for p in self.procs if p.returncode not in p.sr_ok]
        for p in failed:  # the directory goes below: say what the process said first
            self.print_tail(p, "exited %s" % p.returncode)
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return failed

    def print_tail(self, p, why, lines=40):
        try:
            all_lines = self.log(p).splitlines()
        except OSError:
            return
        tail = all_lines[-lines:]
        # a sanitizer's report says what went wrong at its top, not in its legend
        for i, line in enumerate(all_lines):
            if "ERROR: AddressSanitizer" in line or "runtime error:" in line \
                    or "ERROR: LeakSanitizer" in line:
                report = all_lines[i:i + 80]
                print("---- %s (%s), sanitizer report in %s:" % (p.sr_name, why, p.sr_log))
                for r in report:
                    print("    " + r)
                break
        print("---- %s (%s), last %d lines of %s:" % (p.sr_name, why, len(tail), p.sr_log))
        for line in tail:
            print("    " + line)
        print("----", flush=True)

    def log(self, p):
        with open(p.sr_log, "rb") as f:
            return f.read().decode(errors="replace")


def wait_for(what, cond, timeout=20.0, every=0.25):
    """cond()'s first true value, asked every |every| s for at most |timeout| s."""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def scenario(name, body, tolerate=()):
    """Runs body(env) in a fresh Env named |name|. On a failure each process's
    last lines are printed (the directory is removed after); at the end every
    process must have exited cleanly, but those whose name starts with one of
    |tolerate| (a nats-server stopped by SIGTERM says 1)."""
    env = Env(name)
    try:
        body(env)
    except Exception:
        for p in env.procs:
            env.print_tail(p, "at the failure", 25)
        raise
    finally:
        bad = [p for p in env.close(keep=os.environ.get("SR_KEEP") == "1")
               if not p.sr_name.startswith(tuple(tolerate))]
        check(not bad, "clean exits: %r" % [(b.sr_name, b.returncode) for b in bad])


def iso(t):
    """RFC 3339 UTC with microseconds for a Unix time (the CLI accepts it)."""
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text):
    import datetime
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def synthetic_pass(env, station, mask, overhead_in_s, alt_km=550, catnum=90000):
    """Elements of a satellite (catalogue number |catnum|) passing overhead
    |station| |overhead_in_s| from now (skyroute elements synth), and its pass
    above |mask| as `skyroute passes` predicts it. Returns (elements file, AOS,
    LOS) with Unix times."""
    tle = env.path("sat.tle" if catnum == 90000 else "sat-%d.tle" % catnum)
    r = run([SKYROUTE, "elements", "synth", "--overhead", station, "--at",
             iso(time.time() + overhead_in_s), "--alt-km", str(alt_km), "--first-catnum",
             str(catnum)], check=True)
    with open(tle, "wb") as f:
        f.write(r.stdout)
    r = run([SKYROUTE, "passes", "--elements", tle, "--station", station, "--from",
             iso(time.time()), "--to", iso(time.time() + 120), "--min-el", str(mask), "--json"],
            check=True)
    passes = json.loads(r.stdout)
    if len(passes) != 1:
        raise AssertionError("expected one synthetic pass, got %r" % passes)
    return tle, parse_iso(passes[0]["aos"]), parse_iso(passes[0]["los"])


def run(argv, input=None, timeout=120, check=False):
    return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, check=check)


def nghttp_post(url, data_path, headers=(), timeout=120):
    """POST with nghttp (h2c prior knowledge). Returns (status, headers dict, body bytes).

    The body is what nghttp writes on stdout; the status and header fields
    come from its HAR log (--har), which records the response."""
    har = tempfile.mktemp(suffix=".har")
    argv = ["nghttp", "--har=" + har, "-d", data_path, url]
    for h in headers:
        argv += ["-H", h]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    status, hdrs = None, {}
    try:
        with open(har) as f:
            entry = json.load(f)["log"]["entries"][0]["response"]
        status = entry["status"]
        hdrs = {h["name"]: h["value"] for h in entry["headers"]}
    except (OSError, ValueError, KeyError, IndexError):
        pass
    finally:
        if os.path.exists(har):
            os.unlink(har)
    return status, hdrs, r.stdout


def post_in_background(url, data_path, headers=()):
    """curl_post() in a thread of its own, started: returns the thread and
    the list its (status, headers, body) lands in."""
    out = []
    t = threading.Thread(target=lambda: out.append(curl_post(url, data_path, headers)))
    t.start()
    return t, out


def curl(args, timeout=30):
    """curl --http2-prior-knowledge ARGS. Returns (status, headers dict, body text)."""
    r = run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-"] + args, timeout=timeout)
    head, _, body = r.stdout.decode(errors="replace").partition("\r\n\r\n")
    status = int(head.split()[1]) if head.startswith("HTTP/") else None
    hdrs = {}
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def curl_post(url, data_path, headers=(), timeout=120, out_path=None):
    """POST with curl --http2-prior-knowledge. Returns (status, headers dict, body bytes)."""
    hdr_file = tempfile.mktemp()
    body_file = out_path or tempfile.mktemp()
    argv = ["curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@" + data_path,
            "-D", hdr_file, "-o", body_file, "-H", "content-type: application/octet-stream", url]
    for h in headers:
        argv += ["-H", h]
    r = run(argv, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("curl failed: %s" % r.stderr.decode())
    status, hdrs = None, {}
    with open(hdr_file) as f:
        for line in f:
            line = line.strip()
            if line.startswith("HTTP/"):
                status = int(line.split()[1])
            elif ":" in line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
    with open(body_file, "rb") as f:
        body = f.read()
    os.unlink(hdr_file)
    if not out_path:
        os.unlink(body_file)
    return status, hdrs, body


def run_tests(tests):
    """Runs each test function; prints a ctest-readable summary; exits non-zero on failure."""
    passed = failed = 0
    if VALGRIND:
        # memcheck runs the daemons ~30x slower: load tests measure valgrind
        skipped = [t.__name__ for t in tests if getattr(t, "heavy", False)]
        if skipped:
            print("valgrind: skipping load tests %s" % ", ".join(skipped), flush=True)
        tests = [t for t in tests if not getattr(t, "heavy", False)]
    for t in tests:
        t0 = time.time()
        before = failed
        try:
            t()
            passed += 1
            print("ok   %-50s %.1fs" % (t.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-50s %.1fs" % (t.__name__, time.time() - t0), flush=True)
            traceback.print_exc()
        close_leftovers(t.__name__, keep=failed > before)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


def close_leftovers(test, keep):
    """Stops the daemons of every Env a test left open (a failed check skips the
    test's own close); a failed test's directories stay for a look at the logs."""
    while _open_envs:
        env = _open_envs.pop(0)
        running = [p.sr_name for p in env.procs if p.poll() is None]
        env.close(keep=keep)
        print("%s left %s open: stopped %s%s"
              % (test, os.path.basename(env.dir), ", ".join(running) or "nothing",
                 "; logs kept in " + env.dir if keep else ""), flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
