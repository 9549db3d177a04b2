/*
 * The subprocess runner behind exec:NAME: a configured command under
 * /bin/sh -c, the workload payload on its stdin, its stdout the result. The
 * pipes are non-blocking and watched by the event loop, so a slow child holds
 * up nothing else; the run ends at EOF on stdout, at its time limit or when
 * it writes more than its ceiling, and reports through the callback it was
 * given.
 */
#include "gateway/node/node.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

void node_exec_reap(struct exec_run *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        int st;
        waitpid(r->pid, &st, 0);
        r->pid = 0;
    }
}

void node_exec_stop(struct exec_run *r)
{
    if (!r->ec) {
        return;
    }
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

/* The child is done (or is made to be): waits for it and reports. */
static void exec_complete(struct exec_run *r)
{
    int st = 0;
    bool ok = false;
    if (r->pid > 0) {
        if (r->timed_out || r->out_capped) {
            node_exec_reap(r);
        } else {
            if (waitpid(r->pid, &st, 0) == r->pid) {
                ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            }
            r->pid = 0;
        }
    }
    const struct exec_cfg *ec = r->ec;
    char err[200];
    /* |done| comes last: it may free |r| */
    if (r->timed_out) {
        snprintf(err, sizeof(err), "exec:%s exceeded its time limit of %lld ms", ec->name,
                 (long long)ec->timeout_ms);
        r->done(r->arg, 504, err, NULL, 0);
    } else if (r->out_capped) {
        snprintf(err, sizeof(err), "exec:%s wrote more than %zu bytes", ec->name, ec->max_output);
        r->done(r->arg, 500, err, NULL, 0);
    } else if (!ok) {
        snprintf(err, sizeof(err), "exec:%s failed (%s %d)", ec->name,
                 WIFSIGNALED(st) ? "signal" : "exit status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
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
    exec_complete(r); /* EOF or error: the child closed stdout */
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

int node_exec_start(struct exec_run *r, struct event_base *base, const struct exec_cfg *ec,
                    const uint8_t *in, size_t in_len, node_exec_done_fn done, void *arg)
{
    int in_pipe[2], out_pipe[2];
    if (pipe(in_pipe) != 0) {
        return -1;
    }
    if (pipe(out_pipe) != 0) {
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
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        close(in_pipe[0]);
        close(in_pipe[1]);
        close(out_pipe[0]);
        close(out_pipe[1]);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", ec->command, (char *)NULL);
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    r->ec = ec;
    r->in = in;
    r->in_len = in_len;
    r->in_off = 0;
    r->pid = pid;
    r->in_fd = in_pipe[1];
    r->out_fd = out_pipe[0];
    r->done = done;
    r->arg = arg;
    fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->in_fd, F_SETFD, FD_CLOEXEC);
    fcntl(r->out_fd, F_SETFD, FD_CLOEXEC);
    sr_buf_init(&r->out, ec->max_output);
    r->in_ev = event_new(base, r->in_fd, EV_WRITE | EV_PERSIST, exec_in_cb, r);
    r->out_ev = event_new(base, r->out_fd, EV_READ | EV_PERSIST, exec_out_cb, r);
    r->timer = evtimer_new(base, exec_timeout, r);
    if (!r->in_ev || !r->out_ev || !r->timer) {
        int e = errno;
        node_exec_reap(r);
        node_exec_stop(r);
        errno = e;
        return -1;
    }
    event_add(r->in_ev, NULL);
    event_add(r->out_ev, NULL);
    struct timeval tv = {(time_t)(ec->timeout_ms / 1000),
                         (suseconds_t)(ec->timeout_ms % 1000) * 1000};
    evtimer_add(r->timer, &tv);
    return 0;
}
