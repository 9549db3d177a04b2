/*
 * The subprocess runner behind exec:NAME: a configured command under
 * /bin/sh -c, the workload payload on its stdin, its stdout the result.
 *
 * Nothing here blocks the loop. The pipes are non-blocking and watched by the
 * event loop, and so is the child's exit: through a pidfd (pidfd_open, Linux
 * 5.3 and later), which becomes readable when the child exits. A pidfd was
 * chosen over SIGCHLD because it belongs to this one child: no process-wide
 * signal disposition to share, no scan of every run on each signal, and no
 * race with a reused pid (the pid stays ours until it is waited for). Where
 * pidfd_open is missing (an older kernel, a seccomp filter) the exit is
 * polled instead with waitid(WNOHANG) every CHILD_POLL_MS.
 *
 * A run ends when the child has exited and its stdout is at EOF, at its time
 * limit, or when it writes more than its ceiling. The child leads a process
 * group of its own, and whatever it started is killed with it: at the time
 * limit or the ceiling the whole group gets SIGKILL at once (the result is
 * already an error, and a grace period would only keep a misbehaving
 * handler's CPU and memory longer), and when the child exits, what it left
 * running in its group is killed before the child is reaped (while the child
 * is a zombie its pid, the group's id, cannot be reused, so the kill cannot
 * reach a stranger). A process that left the group (setsid) is out of reach
 * here; the rlimits bound it, and the service manager's cgroup catches it.
 *
 * The child inherits nothing of the node's: every descriptor the node opens
 * is close-on-exec, and the child closes anything above 2 before exec all the
 * same (close_range), so a handler sees its stdin, stdout and stderr only. It
 * runs under the handler's rlimits and, with exec_user, as that user.
 *
 * A run that ends before its child is reaped (time limit, ceiling, shut-down
 * of the job) hands the child to a reaper that waits for it the same way, so
 * no zombie is left behind; node_exec_reap_all() waits for the rest at exit.
 */
#define _GNU_SOURCE
#include "gateway/node/node.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#define CHILD_POLL_MS 50

/* A child whose run ended before it was reaped. */
struct reaper {
    pid_t pid;
    int pidfd;
    struct event *ev;
    struct reaper *next;
};

static struct reaper *reapers;

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    static bool missing; /* ENOSYS once: not asked again */
    if (missing) {
        errno = ENOSYS;
        return -1;
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    missing = fd < 0 && errno == ENOSYS;
    return fd;
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* An event for |pid|'s exit: |pidfd| readable, or else a poll every
 * CHILD_POLL_MS. Added; NULL when out of memory. */
static struct event *child_watch(struct event_base *base, int pidfd, event_callback_fn cb,
                                 void *arg)
{
    struct event *ev =
        event_new(base, pidfd, pidfd >= 0 ? EV_READ | EV_PERSIST : EV_PERSIST, cb, arg);
    static const struct timeval poll_tv = {0, CHILD_POLL_MS * 1000};
    if (ev && event_add(ev, pidfd >= 0 ? NULL : &poll_tv) != 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}

/* true once |pid| has exited (it stays a zombie, not reaped). */
static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 ? si.si_pid == pid
                                                                           : errno == ECHILD;
}

static void reaper_free(struct reaper *rp)
{
    for (struct reaper **pp = &reapers; *pp; pp = &(*pp)->next) {
        if (*pp == rp) {
            *pp = rp->next;
            break;
        }
    }
    if (rp->ev) {
        event_free(rp->ev);
    }
    if (rp->pidfd >= 0) {
        close(rp->pidfd);
    }
    free(rp);
}

/* If |pid| has exited: kills what it left in its group (before its pid, the
 * group's id, is free to be reused), reaps it and returns true with its
 * waitpid status in |*st|. */
static bool reap_if_exited(pid_t pid, int *st)
{
    if (!child_exited(pid)) {
        return false;
    }
    kill(-pid, SIGKILL);
    if (waitpid(pid, st, WNOHANG) != pid) {
        *st = W_EXITCODE(127, 0); /* not ours to wait for any more: say it failed */
    }
    return true;
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct reaper *rp = arg;
    int st;
    if (reap_if_exited(rp->pid, &st)) {
        reaper_free(rp);
    }
}

/* Kills the group of a child not reaped yet and waits for it, blocking. */
static void kill_and_wait(pid_t pid)
{
    if (pid <= 0) {
        return; /* kill(-0) would be the node's own group */
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL); /* in case it could not make its own group */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
}

void node_exec_reap_all(void)
{
    while (reapers) {
        kill_and_wait(reapers->pid);
        reaper_free(reapers);
    }
}

/* Stops watching the child's exit; its pidfd is closed. */
static void unwatch_child(struct exec_run *r)
{
    if (r->pid_ev) {
        event_free(r->pid_ev);
        r->pid_ev = NULL;
    }
    if (r->pidfd >= 0) {
        close(r->pidfd);
        r->pidfd = -1;
    }
}

void node_exec_reap(struct exec_run *r)
{
    if (r->ec && r->pid > 0) {
        unwatch_child(r);
        kill_and_wait(r->pid);
        r->pid = 0;
    }
}

/* The run is over but its child is not reaped: its group is killed now and
 * a reaper waits for it. */
static void hand_to_reaper(struct exec_run *r, struct event_base *base)
{
    if (r->pid <= 0) {
        return;
    }
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL);
    struct reaper *rp = calloc(1, sizeof(*rp));
    if (rp) {
        rp->pid = r->pid;
        rp->pidfd = r->pidfd;
        r->pidfd = -1;
        rp->ev = child_watch(base, rp->pidfd, reaper_cb, rp);
    }
    if (!rp || !rp->ev) {
        free(rp);
        unwatch_child(r);
        kill_and_wait(r->pid); /* out of memory: SIGKILL was sent, the wait is short */
    } else {
        rp->next = reapers;
        reapers = rp;
        unwatch_child(r);
    }
    r->pid = 0;
}

void node_exec_stop(struct exec_run *r)
{
    if (!r->ec) {
        return;
    }
    if (r->pid > 0) {
        hand_to_reaper(r, r->base);
    }
    unwatch_child(r);
    if (r->timer) {
        event_free(r->timer);
        r->timer = NULL;
    }
    if (r->in_ev) {
        event_free(r->in_ev);
        r->in_ev = NULL;
    }
    if (r->out_ev) {
        event_free(r->out_ev);
        r->out_ev = NULL;
    }
    if (r->in_fd >= 0) {
        close(r->in_fd);
        r->in_fd = -1;
    }
    if (r->out_fd >= 0) {
        close(r->out_fd);
        r->out_fd = -1;
    }
}

void node_exec_free(struct exec_run *r)
{
    node_exec_stop(r);
    sr_buf_free(&r->out);
}

/* The run is over: reports how. |done| comes last: it may free |r|. */
static void exec_complete(struct exec_run *r)
{
    const struct exec_cfg *ec = r->ec;
    int st = r->status;
    char err[240];
    if ((r->timed_out || r->out_capped) && r->pid > 0) {
        kill(-r->pid, SIGKILL); /* at once: the child is not reaped, its group id is ours */
        kill(r->pid, SIGKILL);
    }
    if (r->timed_out) {
        snprintf(err, sizeof(err),
                 "exec:%s exceeded its time limit of %lld ms (its process group was killed)",
                 ec->name, (long long)ec->timeout_ms);
        r->done(r->arg, 504, err, NULL, 0);
    } else if (r->out_capped) {
        snprintf(err, sizeof(err),
                 "exec:%s wrote more than %zu bytes (its process group was killed)", ec->name,
                 ec->max_output);
        r->done(r->arg, 500, err, NULL, 0);
    } else if (WIFSIGNALED(st)) {
        snprintf(err, sizeof(err), "exec:%s was killed by signal %d (%s)", ec->name, WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
        r->done(r->arg, 500, err, NULL, 0);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, sizeof(err), "exec:%s failed (exit status %d%s)", ec->name,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                 WIFEXITED(st) && WEXITSTATUS(st) == 126
                     ? ": could not be started, see the node's log"
                     : "");
        r->done(r->arg, 500, err, NULL, 0);
    } else {
        r->done(r->arg, 0, NULL, r->out.data, r->out.len);
    }
}

static void exec_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct exec_run *r = arg;
    r->timed_out = true;
    exec_complete(r);
}

/* The child exited: what it left in its group is killed, then it is reaped.
 * The run is over once its stdout is at EOF too. */
static void exec_exit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct exec_run *r = arg;
    int st = 0;
    if (!reap_if_exited(r->pid, &st)) {
        return;
    }
    r->status = st;
    r->pid = 0;
    unwatch_child(r);
    if (!r->out_ev) {
        exec_complete(r);
    }
}

static void exec_out_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct exec_run *r = arg;
    uint8_t buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n > 0) {
        if (sr_buf_append(&r->out, buf, (size_t)n) != 0) {
            r->out_capped = true;
            exec_complete(r);
        }
        return;
    }
    /* EOF or error: the child closed stdout. It may still be running (the
     * time limit still holds then): the run ends when it exits. */
    event_free(r->out_ev);
    r->out_ev = NULL;
    close(r->out_fd);
    r->out_fd = -1;
    if (r->pid == 0) {
        exec_complete(r);
    }
}

static void exec_in_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct exec_run *r = arg;
    size_t left = r->in_len - r->in_off;
    if (left > 0) {
        ssize_t w = write(fd, r->in + r->in_off, left);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (w > 0) {
            r->in_off += (size_t)w;
            if (r->in_off < r->in_len) {
                return;
            }
        }
    }
    /* all written, or the child stopped reading: close its stdin */
    event_free(r->in_ev);
    r->in_ev = NULL;
    close(r->in_fd);
    r->in_fd = -1;
}

/* In the child: says why it cannot go on (on the node's stderr, its log)
 * and exits 126. The node has one thread, so the child may format. */
static void child_fail(const struct exec_cfg *ec, const char *what)
{
    int e = errno;
    char msg[256];
    int len =
        snprintf(msg, sizeof(msg), "skyroute-node: exec:%s: %s: %s\n", ec->name, what, strerror(e));
    if (len > 0) {
        ssize_t w = write(2, msg, (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1);
        (void)w;
    }
    _exit(126);
}

/* |from| as descriptor |to|, kept across exec. */
static int child_dup(int from, int to)
{
    if (from == to) {
        return fcntl(to, F_SETFD, 0);
    }
    return dup2(from, to) < 0 ? -1 : 0;
}

static void child_limit(const struct exec_cfg *ec, int resource, uint64_t value, const char *name)
{
    if (value == 0) {
        return; /* not set: the node's own */
    }
    /* CPU time: SIGXCPU at the soft limit says what happened (the result
     * names it); SIGKILL a second later at the hard one, if it was caught */
    struct rlimit rl = {(rlim_t)value, (rlim_t)value + (resource == RLIMIT_CPU)};
    if (setrlimit(resource, &rl) == 0) {
        return;
    }
    rl.rlim_max = rl.rlim_cur;
    if (setrlimit(resource, &rl) == 0) {
        return;
    }
    /* the soft limit alone (under valgrind, which refuses any change to
     * RLIMIT_NOFILE's hard limit); config.c keeps values under the hard one */
    struct rlimit cur;
    if (getrlimit(resource, &cur) == 0 &&
        (cur.rlim_max == RLIM_INFINITY || rl.rlim_cur <= cur.rlim_max)) {
        rl.rlim_max = cur.rlim_max;
        if (setrlimit(resource, &rl) == 0) {
            return;
        }
    }
    child_fail(ec, name);
}

/* In the child, between fork and exec. */
static void child_run(const struct exec_cfg *ec, const struct exec_user *u, int in_fd, int out_fd)
{
    setpgid(0, 0);
    if (child_dup(in_fd, 0) != 0 || child_dup(out_fd, 1) != 0) {
        child_fail(ec, "dup2");
    }
#ifdef SYS_close_range
    /* everything the node opens is close-on-exec already; this also covers
     * a descriptor some library opened without it */
    syscall(SYS_close_range, 3u, ~0u, 0u);
#endif
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (u && u->set) {
        if (setgroups(u->ngroups, u->groups) != 0) {
            child_fail(ec, "setgroups");
        }
        if (setgid(u->gid) != 0) {
            child_fail(ec, "setgid");
        }
        if (setuid(u->uid) != 0) {
            child_fail(ec, "setuid");
        }
    }
    /* after the user change: RLIMIT_NPROC counts that user's processes */
    child_limit(ec, RLIMIT_CPU, ec->cpu_s, "setrlimit(RLIMIT_CPU)");
    child_limit(ec, RLIMIT_AS, ec->max_memory, "setrlimit(RLIMIT_AS)");
    child_limit(ec, RLIMIT_NOFILE, ec->max_files, "setrlimit(RLIMIT_NOFILE)");
    child_limit(ec, RLIMIT_NPROC, ec->max_procs, "setrlimit(RLIMIT_NPROC)");
    struct rlimit nocore = {0, 0}; /* a crashing handler fills no disk with cores */
    setrlimit(RLIMIT_CORE, &nocore);
    execl("/bin/sh", "sh", "-c", ec->command, (char *)NULL);
    child_fail(ec, "exec /bin/sh");
}

int node_exec_start(struct exec_run *r, struct event_base *base, const struct exec_cfg *ec,
                    const struct exec_user *user, const uint8_t *in, size_t in_len,
                    node_exec_done_fn done, void *arg)
{
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) {
        return -1;
    }
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        close(out_pipe[0]);
        close(out_pipe[1]);
        return -1;
    }
    if (pid == 0) {
        child_run(ec, user, in_pipe[0], out_pipe[1]);
    }
    /* the parent sets the group too: a kill at once must not miss it */
    setpgid(pid, pid);
    close(in_pipe[0]);
    close(out_pipe[1]);
    r->ec = ec;
    r->base = base;
    r->in = in;
    r->in_len = in_len;
    r->in_off = 0;
    r->pid = pid;
    r->pidfd = pidfd_open_(pid);
    r->in_fd = in_pipe[1];
    r->out_fd = out_pipe[0];
    r->done = done;
    r->arg = arg;
    fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
    sr_buf_init(&r->out, ec->max_output);
    r->in_ev = event_new(base, r->in_fd, EV_WRITE | EV_PERSIST, exec_in_cb, r);
    r->out_ev = event_new(base, r->out_fd, EV_READ | EV_PERSIST, exec_out_cb, r);
    r->timer = evtimer_new(base, exec_timeout, r);
    r->pid_ev = child_watch(base, r->pidfd, exec_exit_cb, r);
    if (!r->in_ev || !r->out_ev || !r->timer || !r->pid_ev) {
        int e = errno;
        node_exec_reap(r);
        node_exec_stop(r);
        errno = e ? e : ENOMEM;
        return -1;
    }
    event_add(r->in_ev, NULL);
    event_add(r->out_ev, NULL);
    struct timeval tv = {(time_t)(ec->timeout_ms / 1000),
                         (suseconds_t)(ec->timeout_ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
    return 0;
}
