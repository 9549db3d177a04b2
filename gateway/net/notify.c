/*
 * The service manager's notify protocol (sd_notify(3)) for Type=notify units:
 * libsystemd does the talking; this file decides when. READY=1 is sent by the
 * program once its listeners accept and its state is open, so that units
 * ordered after it start against a working service. The watchdog ping comes
 * from a timer on the event loop itself, not from a thread: a loop that
 * stops turning stops the pings, and systemd restarts the service. Without
 * $NOTIFY_SOCKET (not started by a service manager) every call is a no-op.
 */
#include "gateway/net/net_int.h"

#include <stdio.h>

#include <systemd/sd-daemon.h>

#include <event2/event.h>

static struct event *watchdog_ev;

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

int sr_notify_ready(struct event_base *base, const char *status)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status ? status : "running");
    uint64_t usec = 0;
    /* > 0 only when the unit has WatchdogSec= and this is its main process */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0 && !watchdog_ev) {
        watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
        /* half the period, as sd_watchdog_enabled(3) advises: one late turn
         * of the loop does not cost a restart */
        struct timeval tv = {.tv_sec = (time_t)(usec / 2 / 1000000),
                             .tv_usec = (suseconds_t)(usec / 2 % 1000000)};
        if (!watchdog_ev || event_add(watchdog_ev, &tv) != 0) {
            sr_notify_free();
            return SR_ERR_NOMEM;
        }
    }
    sd_notify(0, msg);
    /* a ping now: however long the start took, a whole period from here */
    if (watchdog_ev) {
        sd_notify(0, "WATCHDOG=1");
    }
    return 0;
}

void sr_notify_stopping(const char *status)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", status ? status : "stopping");
    sd_notify(0, msg);
}

void sr_notify_free(void)
{
    if (watchdog_ev) {
        event_free(watchdog_ev);
        watchdog_ev = NULL;
    }
}
