/*
 * The node's metrics: their descriptions, and the counters more than one
 * room adds to.
 */
#include "gateway/node/node.h"

#include <stdio.h>

void node_metrics_describe(struct node *n)
{
    sr_metrics_describe(n->metrics, "skyroute_node_executed_total", "counter",
                        "Handler runs actually executed (replays are not counted).");
    sr_metrics_describe(n->metrics, "skyroute_node_rejected_total", "counter",
                        "Envelopes refused, by reason.");
    sr_metrics_describe(n->metrics, "skyroute_node_signatures_total", "counter",
                        "Ed25519 signatures made for results (one per batch).");
    sr_metrics_describe(n->metrics, "skyroute_node_results_sealed_total", "counter",
                        "Results sealed; divided by the signatures, the batch size.");
    sr_metrics_describe(n->metrics, "skyroute_node_batches_total", "counter",
                        "Requests that brought several envelopes at once (POST /v1/batch).");
    sr_metrics_describe(n->metrics, "skyroute_node_batched_envelopes_total", "counter",
                        "Envelopes that came in those requests.");
    sr_metrics_describe(n->metrics, "skyroute_node_replay_ids", "gauge",
                        "Envelope ids the replay guard holds (until each expires).");
    sr_metrics_describe(n->metrics, "skyroute_node_replay_results_dropped_total", "counter",
                        "Results dropped from the replay guard to stay within --replay-memory "
                        "(their ids are still refused).");
    sr_metrics_describe(n->metrics, "skyroute_node_requests_total", "counter",
                        "Requests on the node's main listener.");
    sr_metrics_describe(n->metrics, "skyroute_node_handler_runs_total", "counter",
                        "Handler runs, by handler.");
    sr_metrics_describe(n->metrics, "skyroute_node_uplinked_total", "counter",
                        "--gateway: onboard workloads the gateway accepted (POST /v1/uplink).");
    sr_metrics_describe(
        n->metrics, "skyroute_node_inbox_results_total", "counter",
        "--gateway: results of onboard workloads fetched from the gateway's outbox.");
    sr_metrics_describe(n->metrics, "skyroute_node_link_up", "gauge",
                        "--emulate-link: 1 while the emulated satellite is above the mask.");
    sr_metrics_describe(n->metrics, "skyroute_node_link_elevation_degrees", "gauge",
                        "--emulate-link: elevation of the emulated satellite now.");
    sr_metrics_describe(n->metrics, "skyroute_node_link_light_time_seconds", "gauge",
                        "--emulate-link: one-way light time to the emulated satellite now.");
    sr_metrics_describe(n->metrics, "skyroute_node_replay_capacity", "gauge",
                        "Ids the replay guard has room for now (it doubles as needed up to "
                        "[node] replay_budget_mb).");
    sr_metrics_describe(n->metrics, "skyroute_node_replay_bytes", "gauge",
                        "Bytes of the replay guard's tables at their present capacity.");
    /* from the first scrape, so rates and alerts on them have a series */
    sr_metrics_add(n->metrics, "skyroute_node_executed_total", "", 0);
    sr_metrics_add(n->metrics, "skyroute_node_requests_total", "", 0);
    sr_metrics_add(n->metrics, "skyroute_node_signatures_total", "", 0);
    sr_metrics_add(n->metrics, "skyroute_node_results_sealed_total", "", 0);
    sr_metrics_zero(n->metrics, "skyroute_node_rejected_total",
                    (const char *const[]){"reason=\"env_badsig\"", "reason=\"env_untrusted\"",
                                          "reason=\"env_expired\"", "reason=\"env_replay\"", NULL});
}

void node_count_reject(struct node *n, const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    sr_metrics_add(n->metrics, "skyroute_node_rejected_total", labels, 1);
}

void node_replay_gauges(struct node *n)
{
    sr_metrics_set(n->metrics, "skyroute_node_replay_ids", "", (double)sr_replay_count(n->replay));
    sr_metrics_set(n->metrics, "skyroute_node_replay_capacity", "",
                   (double)sr_replay_capacity(n->replay));
    sr_metrics_set(n->metrics, "skyroute_node_replay_bytes", "",
                   (double)sr_replay_bytes(n->replay));
    sr_metrics_set(n->metrics, "skyroute_node_replay_results_dropped_total", "",
                   (double)sr_replay_results_dropped(n->replay));
}
