/*
 * Link emulation (--emulate-link): the node behaves like a satellite behind
 * an RF link. Every 100 ms it places the satellite over the ground station;
 * below the elevation mask the listener is closed and its connections reset
 * (LOS), above it the listener opens again (AOS). In a pass, each direction
 * is held for the one-way light time of the moment; the rate limit is the
 * HTTP server's (--link-bps).
 */
#include "gateway/node/node.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* The current one-way light time of the emulated link, as a timeout. */
static struct timeval light_time(const struct node *n)
{
    double ms = n->emu_light_ms;
    return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(fmod(ms, 1000.0) * 1000)};
}

static void emu_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct node *n = arg;
    sr_look_angles la;
    int64_t now = sr_now_ms();
    int rv = sr_look(&n->emu_station, n->emu_sat, now, &la);
    bool visible = rv == 0 && la.el_deg >= n->emu_min_el;
    if (rv == 0) {
        n->emu_light_ms = sr_light_time_ms(la.range_km);
        sr_metrics_set(n->metrics, "skyroute_node_link_elevation_degrees", "", la.el_deg);
        sr_metrics_set(n->metrics, "skyroute_node_link_light_time_seconds", "",
                       n->emu_light_ms / 1000.0);
    }
    if (visible && !n->emu_up && !n->draining) {
        if (sr_http_server_resume_listening(n->main) == 0) {
            n->emu_up = true;
            sr_log(SR_LOG_INFO,
                   "link up: AOS, elevation %.1f deg, range %.0f km, light time %.2f ms", la.el_deg,
                   la.range_km, n->emu_light_ms);
        }
    } else if (!visible && n->emu_up) {
        n->emu_up = false;
        sr_http_server_stop_listening(n->main);
        sr_http_server_drop_connections(n->main);
        if (rv == 0) {
            sr_log(SR_LOG_INFO, "link down: LOS, elevation %.1f deg", la.el_deg);
        } else {
            sr_log(SR_LOG_WARN, "link down: propagation failed: %s", sr_strerror(rv));
        }
    }
    sr_metrics_set(n->metrics, "skyroute_node_link_up", "", n->emu_up ? 1 : 0);
}

int node_emu_load(struct node *n, const char *file, const char *station, const char *which)
{
    FILE *f = fopen(file, "rbe");
    if (!f) {
        fprintf(stderr, "skyroute-node: --emulate-link %s: %s\n", file, strerror(errno));
        return -1;
    }
    sr_buf b;
    sr_buf_init(&b, 64u << 20);
    char chunk[65536];
    size_t got;
    int rv = 0;
    while (rv == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rv = sr_buf_append(&b, chunk, got);
    }
    fclose(f);
    char err[300] = "";
    sr_elements *els = NULL;
    size_t nel = 0;
    if (rv == 0) {
        rv =
            sr_elements_parse_text(&els, &nel, (const char *)b.data, b.len, 0, 0, err, sizeof(err));
    }
    sr_buf_free(&b);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: --emulate-link %s: %s\n", file,
                err[0] ? err : sr_strerror(rv));
        return -1;
    }
    const sr_elements *pick = NULL;
    for (size_t i = 0; i < nel && !pick; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%u", els[i].catnum);
        if (!which || !strcmp(els[i].name, which) || !strcmp(num, which)) {
            pick = &els[i];
        }
    }
    if (!pick) {
        fprintf(stderr, "skyroute-node: --sat %s: no such satellite in %s\n", which, file);
        free(els);
        return -1;
    }
    rv = sr_sat_new(&n->emu_sat, pick);
    free(els);
    if (rv != 0) {
        fprintf(stderr, "skyroute-node: --emulate-link %s: %s\n", file, sr_strerror(rv));
        return -1;
    }
    if (sr_station_parse(&n->emu_station, station) != 0) {
        fprintf(stderr, "skyroute-node: --station '%s': expected LAT,LON,ALT_M in range\n",
                station);
        return -1;
    }
    return 0;
}

int node_emu_start(struct node *n)
{
    n->emu_up = true;
    n->emu_timer = event_new(n->base, -1, EV_PERSIST, emu_tick, n);
    struct timeval tv = {0, 100000};
    if (!n->emu_timer || event_add(n->emu_timer, &tv) != 0) {
        return -1;
    }
    emu_tick(-1, 0, n);
    return 0;
}

void node_emu_free(struct node *n)
{
    if (n->emu_timer) {
        event_free(n->emu_timer);
        n->emu_timer = NULL;
    }
    sr_sat_free(n->emu_sat);
    n->emu_sat = NULL;
}

/* ---- messages in flight over the emulated link ------------------------------------------ */

/* A request, or the response to one, held for the light time. */
struct delayed {
    struct node *node;
    sr_req *req;
    struct event *timer;
    node_emu_arrive_fn arrive; /* request: who takes it then */
    uint8_t *body;             /* response: sealed result to send */
    size_t len;
};

static void delayed_free(struct delayed *d)
{
    if (d->timer) {
        event_free(d->timer);
    }
    free(d->body);
    free(d);
}

static void delayed_abort(sr_req *req, void *data)
{
    (void)req;
    delayed_free(data);
}

static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct delayed *d = arg;
    sr_req *req = d->req;
    sr_req_set_abort(req, NULL);
    sr_req_set_data(req, NULL);
    if (!d->arrive) {
        static const struct sr_http_header h[] = {{"content-type", NODE_CTYPE_MSGPACK}};
        sr_req_respond(req, 200, h, 1, d->body, d->len, true);
        d->body = NULL;
        delayed_free(d);
    } else {
        struct node *n = d->node;
        node_emu_arrive_fn arrive = d->arrive;
        delayed_free(d);
        arrive(n, req);
    }
}

static bool delay_over_link(struct node *n, sr_req *req, node_emu_arrive_fn arrive, uint8_t *body,
                            size_t len)
{
    struct delayed *d = calloc(1, sizeof(*d));
    if (!d) {
        return false;
    }
    d->node = n;
    d->req = req;
    d->arrive = arrive;
    d->body = body;
    d->len = len;
    d->timer = evtimer_new(n->base, delayed_fire, d);
    if (!d->timer) {
        d->body = NULL;
        delayed_free(d);
        return false;
    }
    struct timeval tv = light_time(n);
    sr_req_set_data(req, d);
    sr_req_set_abort(req, delayed_abort);
    evtimer_add(d->timer, &tv);
    return true;
}

bool node_emu_delay_request(struct node *n, sr_req *req, node_emu_arrive_fn arrive)
{
    return delay_over_link(n, req, arrive, NULL, 0);
}

bool node_emu_delay_response(struct node *n, sr_req *req, uint8_t *body, size_t len)
{
    return delay_over_link(n, req, NULL, body, len);
}

/* Bytes held for the light time (an item of a batch response). */
struct delayed_bytes {
    struct event *timer;
    node_emu_bytes_fn fn;
    void *arg;
    size_t hl, len;
    uint8_t bytes[]; /* head, then body */
};

static void delayed_bytes_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct delayed_bytes *d = arg;
    d->fn(d->arg, d->bytes, d->hl, d->bytes + d->hl, d->len);
    event_free(d->timer);
    free(d);
}

bool node_emu_delay_bytes(struct node *n, const uint8_t *head, size_t hl, const void *body,
                          size_t len, node_emu_bytes_fn fn, void *arg)
{
    struct delayed_bytes *d = malloc(sizeof(*d) + hl + len);
    if (!d) {
        return false;
    }
    d->timer = evtimer_new(n->base, delayed_bytes_fire, d);
    if (!d->timer) {
        free(d);
        return false;
    }
    d->fn = fn;
    d->arg = arg;
    d->hl = hl;
    d->len = len;
    memcpy(d->bytes, head, hl);
    if (len) {
        memcpy(d->bytes + hl, body, len);
    }
    struct timeval tv = light_time(n);
    evtimer_add(d->timer, &tv);
    return true;
}
