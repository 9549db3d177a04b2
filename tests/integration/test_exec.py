#!/usr/bin/env python3
"""The node's exec:NAME handlers, attacked from inside: a command that closes
stdout and keeps running, one that leaves a process behind, one that looks for
the node's sockets, one that checks its limits. Driven through the real
skyrouted and skyroute-node on loopback; processes and descriptors are read
from /proc."""

import os
import pwd
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import check  # noqa: E402

O_CLOEXEC = 0o2000000


def finish(env):
    bad = env.close()
    check(not bad, "processes exited badly: %s" % [(p.sr_name, p.returncode) for p in bad])


def proc_stat(pid):
    """(state, ppid, pgid) of a process, or None once it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def procs_where(field, value):
    """(pid, state) of every process, zombies too, whose parent (field 1) or
    process group (field 2) is |value|."""
    out = []
    for d in os.listdir("/proc"):
        st = proc_stat(d) if d.isdigit() else None
        if st and st[field] == value:
            out.append((int(d), st[0]))
    return out


def group_members(pgid):
    return procs_where(2, pgid)


def children(pid):
    return procs_where(1, pid)


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def read_int(path, timeout=5.0):
    """The number a handler writes to |path|, once it is there."""
    srtest.wait_for(path, lambda: read_text(path).strip(), timeout, 0.05)
    return int(read_text(path).split()[0])


def fds_without_cloexec(pid):
    """The descriptors of |pid| above 2 that a child would inherit."""
    bad = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        if int(fd) <= 2:
            continue
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = next(int(line.split()[1], 8) for line in f if line.startswith("flags:"))
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except (OSError, StopIteration):
            continue  # closed meanwhile
        if not flags & O_CLOEXEC:
            bad.append((fd, target))
    return bad


def setup(name, sections):
    env = srtest.Env(name)
    gkey, gpub = env.keygen("gs-test")
    conf = env.write("node.conf", ("[node]\n" + sections).encode())
    n = env.start_node("alpha", [gpub], extra=["--config", conf])
    g = env.start_gateway("gs-test", [n])
    return env, n, g


def post(g, env, handler, payload=b"x", timeout=20):
    p = env.write("in-%s.bin" % handler.replace(":", "_"), payload)
    return srtest.curl_post(g["url"] + "/v1/workloads", p, ["skyroute-handler: " + handler],
                            timeout=timeout)


def test_stdout_closed_and_still_running_is_killed_with_its_group():
    """The command closes stdout, leaves a background grandchild and sleeps on.
    The node goes on serving meanwhile; at the time limit the whole process
    group is killed and reaped, and the answer says so."""
    env = srtest.Env("exec-hang")
    d = env.dir
    sections = ("\n[exec.hang]\ncommand = cut -d' ' -f5 /proc/self/stat > %s/hang.pgid; "
                "sleep 30 >/dev/null & echo $! > %s/hang.bg; exec >&-; sleep 30\n"
                "timeout_ms = 2500\n"
                "\n[exec.bg]\ncommand = sleep 30 & echo $! > %s/bg.pid; echo started\n"
                "timeout_ms = 4000\n" % (d, d, d))
    gkey, gpub = env.keygen("gs-test")
    conf = env.write("node.conf", ("[node]\n" + sections).encode())
    n = env.start_node("alpha", [gpub], extra=["--config", conf])
    g = env.start_gateway("gs-test", [n])
    node_pgid = os.getpgid(n["proc"].pid)

    t0 = time.time()
    p = env.write("hang.in", b"x")
    th, out = srtest.post_in_background(g["url"] + "/v1/workloads", p,
                                        ["skyroute-handler: exec:hang"])
    pgid = read_int(env.path("hang.pgid"))
    bg = read_int(env.path("hang.bg"))
    # stdout is closed and the command sleeps on: the node still serves
    for i in range(3):
        s0 = time.time()
        st, h, body = post(g, env, "echo", b"ping %d" % i, timeout=8)
        check(st == 200 and body == b"ping %d" % i, "echo during the hang: %s %r" % (st, body))
        check(time.time() - s0 < 1.5, "echo answered at once (%.2fs)" % (time.time() - s0))
    check(th.is_alive(), "the hanging handler is still running while echo is served")
    check(pgid != node_pgid, "the handler leads a process group of its own (%d)" % pgid)
    check(any(s != "Z" for _, s in group_members(pgid)), "its group is running")
    th.join(15)
    check(out, "exec:hang answered")
    st, h, body = out[0]
    took = time.time() - t0
    check(st == 502 and b"time limit of 2500 ms" in body and b"process group" in body,
          "time limit: %s %r" % (st, body))
    check(took < 6, "answered at the time limit (%.1fs)" % took)
    # nothing of the group survives, not even a zombie: killed and reaped
    srtest.wait_for("process group %d to be gone" % pgid, lambda: not group_members(pgid), 3, 0.05)
    check(proc_stat(bg) is None, "the background grandchild %d was killed" % bg)

    # a command that exits and leaves a child holding its stdout: the answer
    # comes when it exits, and the child goes with it
    s0 = time.time()
    st, h, body = post(g, env, "exec:bg")
    check(st == 200 and body == b"started\n", "exec:bg: %s %r" % (st, body))
    check(time.time() - s0 < 2.5, "not held until the time limit (%.1fs)" % (time.time() - s0))
    bgpid = read_int(env.path("bg.pid"))
    srtest.wait_for("what exec:bg left running to be killed", lambda: proc_stat(bgpid) is None,
                    3, 0.05)
    srtest.wait_for("no child of the node left", lambda: not children(n["proc"].pid), 3, 0.05)
    finish(env)


def test_handler_sees_no_descriptor_of_the_node():
    """A handler lists its descriptors while the node holds its listeners and
    the gateway's connection: only stdin, stdout and stderr (and the lister's
    own directory handle) are there, no socket. Every descriptor the node and
    the gateway keep is close-on-exec."""
    env, n, g = setup("exec-fds", "\n[exec.fds]\ncommand = ls -l /proc/self/fd/\n")
    st, h, body = post(g, env, "exec:fds")
    check(st == 200, "exec:fds: %s %r" % (st, body))
    fds = {}
    for line in body.decode().splitlines():
        if " -> " in line:
            left, _, target = line.partition(" -> ")
            fds[int(left.split()[-1])] = target
    check(not [t for t in fds.values() if t.startswith("socket:")],
          "a handler sees no socket: %r" % fds)
    extra = {fd: t for fd, t in fds.items() if fd > 2 and not t.startswith("/proc/")}
    check(not extra, "only 0, 1, 2 and the lister's own directory: %r" % fds)
    check(fds.get(0, "").startswith("pipe:") and fds.get(1, "").startswith("pipe:"),
          "stdin and stdout are the node's pipes: %r" % fds)
    for who in (n, g):
        bad = fds_without_cloexec(who["proc"].pid)
        check(not bad, "%s: descriptors without close-on-exec: %r" % (who["id"], bad))
    finish(env)


def limits_of(text):
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        soft = line[26:47].split()
        out[name] = soft[0] if soft else ""
    return out


def test_handlers_run_under_rlimits():
    env, n, g = setup("exec-limits",
                      "\n[exec.limits]\ncommand = cat /proc/self/limits\ncpu_s = 7\n"
                      "max_memory = 536870912\nmax_files = 77\nmax_procs = 3000\n"
                      "\n[exec.defaults]\ncommand = cat /proc/self/limits\n"
                      "\n[exec.spin]\ncommand = while :; do :; done\ncpu_s = 1\n"
                      "timeout_ms = 8000\n")
    st, h, body = post(g, env, "exec:limits")
    check(st == 200, "exec:limits %s %r" % (st, body))
    lim = limits_of(body.decode())
    check(lim["Max cpu time"] == "7", "RLIMIT_CPU: %r" % lim)
    check(lim["Max address space"] == "536870912", "RLIMIT_AS: %r" % lim)
    check(lim["Max open files"] == "77", "RLIMIT_NOFILE: %r" % lim)
    check(lim["Max processes"] == "3000", "RLIMIT_NPROC: %r" % lim)
    st, h, body = post(g, env, "exec:defaults")
    lim = limits_of(body.decode())
    check(lim["Max cpu time"] == "60" and lim["Max address space"] == str(4 << 30) and
          lim["Max open files"] == "1024" and lim["Max processes"] == "1024",
          "default limits: %r" % lim)
    # over its CPU time the kernel kills it, and the result says with what
    st, h, body = post(g, env, "exec:spin")
    check(st == 502 and b"killed by signal" in body and b"CPU time limit" in body,
          "spin: %s %r" % (st, body))
    finish(env)


def test_no_descriptor_or_zombie_leaks_after_many_runs():
    env, n, g = setup("exec-leaks",
                      "\n[exec.upper]\ncommand = tr a-z A-Z\n"
                      "\n[exec.slow]\ncommand = sleep 5\ntimeout_ms = 100\n"
                      "\n[exec.chatty]\ncommand = head -c 100000 /dev/zero\nmax_output = 1000\n"
                      "\n[exec.selfkill]\ncommand = kill -9 $$\n"
                      "\n[exec.fail]\ncommand = exit 3\n")
    pid = n["proc"].pid
    st, h, body = post(g, env, "exec:upper", b"warm")
    check(st == 200 and body == b"WARM", "warm-up %s %r" % (st, body))
    before = sorted(os.listdir("/proc/%d/fd" % pid), key=int)
    want = {"exec:upper": (200, b"HELLO"), "exec:slow": (502, b"time limit"),
            "exec:chatty": (502, b"more than 1000 bytes"),
            "exec:selfkill": (502, b"killed by signal 9"), "exec:fail": (502, b"exit status 3")}
    for i in range(6):
        for handler, (wst, wbody) in want.items():
            st, h, body = post(g, env, handler, b"hello")
            check(st == wst and wbody in body, "%s: %s %r" % (handler, st, body))
    srtest.wait_for("no zombie or child left", lambda: not children(pid), 3, 0.05)
    after = sorted(os.listdir("/proc/%d/fd" % pid), key=int)
    check(after == before, "the node's descriptors are flat: %r -> %r" % (before, after))
    finish(env)


def test_exec_user():
    """exec_user: a user that does not exist stops the node at start-up; as
    root, handlers run as the named user."""
    env = srtest.Env("exec-user")
    gkey, gpub = env.keygen("gs-test")
    conf = env.write("bad.conf", b"[node]\nexec_user = no-such-user-sr\n"
                 b"\n[exec.id]\ncommand = id -u\n")
    key, pub = env.keygen("alpha")
    r = srtest.run([srtest.NODE, "--id", "alpha", "--listen", "127.0.0.1:%d" % srtest.free_port(),
                    "--key", key, "--trust", gpub, "--config", conf], timeout=10)
    check(r.returncode != 0 and b"no-such-user-sr" in r.stderr and b"no such user" in r.stderr,
          "unknown exec_user refused: %s %r" % (r.returncode, r.stderr))
    if os.geteuid() != 0:
        print("not root: running handlers as another user is not tried", flush=True)
        finish(env)
        return
    nobody = pwd.getpwnam("nobody")
    conf = env.write("node.conf", b"[node]\nexec_user = nobody\n"
                 b"\n[exec.id]\ncommand = id -u; id -g; "
                 b"ls /proc/1/fd >/dev/null 2>&1 || echo denied\n")
    n = env.start_node("alpha", [gpub], extra=["--config", conf])
    g = env.start_gateway("gs-test", [n])
    st, h, body = post(g, env, "exec:id")
    check(st == 200, "exec:id %s %r" % (st, body))
    check(body.decode().split() == [str(nobody.pw_uid), str(nobody.pw_gid), "denied"],
          "ran as nobody, without root's reach: %r" % body)
    finish(env)


if __name__ == "__main__":
    srtest.run_tests([
        test_stdout_closed_and_still_running_is_killed_with_its_group,
        test_handler_sees_no_descriptor_of_the_node,
        test_handlers_run_under_rlimits,
        test_no_descriptor_or_zombie_leaks_after_many_runs,
        test_exec_user,
    ])
