#include "metrics.h"

#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label sets are bounded by construction: routes and scopes are static strings from the
 * route table, methods are the few the router accepts, and status codes are the ones the
 * server produces. The arrays below are sized well above that product; anything beyond
 * folds into the last slot rather than growing without bound. */
#define MAX_REQ_SERIES 512
#define MAX_ROUTES     48
#define MAX_SCOPES     16

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,   0.5,   1,      2.5,   5,    10,    30};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct {
    const char *route;
    char method[16];
    int status;
    uint64_t count;
} req_series_t;

typedef struct {
    const char *route;
    uint64_t counts[NBUCKETS];
    uint64_t count;
    double sum;
} hist_t;

typedef struct {
    const char *scope;
    uint64_t count;
} scope_count_t;

struct pl_metrics {
    req_series_t req[MAX_REQ_SERIES];
    size_t nreq;
    uint64_t req_dropped;
    hist_t hist[MAX_ROUTES];
    size_t nhist;
    scope_count_t limited[MAX_SCOPES];
    size_t nlimited;
    uint64_t sevtv_upstream[PL_7TV_UP_COUNT];
    uint64_t sevtv_cache[PL_7TV_CACHE_COUNT];
};

static const char *const sevtv_upstream_names[PL_7TV_UP_COUNT] = {
    "ok", "error", "timeout", "too_large", "bad_json", "not_found"};
static const char *const sevtv_cache_names[PL_7TV_CACHE_COUNT] = {"hit", "miss", "stale"};

pl_metrics_t *pl_metrics_new(void)
{
    return calloc(1, sizeof(pl_metrics_t));
}

void pl_metrics_free(pl_metrics_t *m)
{
    free(m);
}

void pl_metrics_request(pl_metrics_t *m, const char *route, const char *method, int status,
                        double seconds)
{
    if (!route)
        route = "unmatched";
    size_t i;
    for (i = 0; i < m->nreq; i++) {
        req_series_t *r = &m->req[i];
        if (r->status == status && strcmp(r->route, route) == 0 && strcmp(r->method, method) == 0)
            break;
    }
    if (i == m->nreq) {
        if (m->nreq == MAX_REQ_SERIES) {
            /* Full: count the request without inventing or overwriting a series. */
            m->req_dropped++;
            goto histogram;
        }
        m->nreq++;
        m->req[i].route = route;
        snprintf(m->req[i].method, sizeof m->req[i].method, "%s", method);
        m->req[i].status = status;
    }
    m->req[i].count++;

histogram:

    for (i = 0; i < m->nhist; i++)
        if (strcmp(m->hist[i].route, route) == 0)
            break;
    if (i == m->nhist) {
        if (m->nhist == MAX_ROUTES)
            return; /* routes come from a static table; this never happens */
        m->nhist++;
        m->hist[i].route = route;
    }
    hist_t *h = &m->hist[i];
    for (size_t b = 0; b < NBUCKETS; b++)
        if (seconds <= buckets[b])
            h->counts[b]++;
    h->count++;
    h->sum += seconds;
}

void pl_metrics_rate_limited(pl_metrics_t *m, const char *scope)
{
    size_t i;
    for (i = 0; i < m->nlimited; i++)
        if (strcmp(m->limited[i].scope, scope) == 0)
            break;
    if (i == m->nlimited) {
        if (m->nlimited == MAX_SCOPES)
            return; /* scopes are static strings; this never happens */
        m->nlimited++;
        m->limited[i].scope = scope;
    }
    m->limited[i].count++;
}

void pl_metrics_7tv_upstream(pl_metrics_t *m, pl_7tv_result_t result)
{
    if ((unsigned)result < PL_7TV_UP_COUNT)
        m->sevtv_upstream[result]++;
}

void pl_metrics_7tv_cache(pl_metrics_t *m, pl_7tv_cache_t result)
{
    if ((unsigned)result < PL_7TV_CACHE_COUNT)
        m->sevtv_cache[result]++;
}

void pl_metrics_render(pl_metrics_t *m, const pl_metrics_gauges_t *g, pl_buf_t *o)
{
    pl_buf_printf(o,
                  "# HELP parley_build_info Build and node information.\n"
                  "# TYPE parley_build_info gauge\n"
                  "parley_build_info{version=\"%s\",node=\"%s\",store=\"%s\"} 1\n",
                  PL_VERSION, g->node_id, g->store_engine);

    pl_buf_appends(o, "# HELP parley_http_requests_total HTTP requests by route, method and "
                      "status.\n# TYPE parley_http_requests_total counter\n");
    for (size_t i = 0; i < m->nreq; i++)
        pl_buf_printf(o,
                      "parley_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} "
                      "%llu\n",
                      m->req[i].route, m->req[i].method, m->req[i].status,
                      (unsigned long long)m->req[i].count);

    pl_buf_printf(o,
                  "# HELP parley_metrics_series_dropped_total Requests not counted by route, "
                  "method and status because the series table was full.\n"
                  "# TYPE parley_metrics_series_dropped_total counter\n"
                  "parley_metrics_series_dropped_total %llu\n",
                  (unsigned long long)m->req_dropped);

    pl_buf_appends(o, "# HELP parley_http_request_duration_seconds Time from a complete "
                      "request to its queued response.\n"
                      "# TYPE parley_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->nhist; i++) {
        hist_t *h = &m->hist[i];
        for (size_t b = 0; b < NBUCKETS; b++)
            pl_buf_printf(o,
                          "parley_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                          "%llu\n",
                          h->route, buckets[b], (unsigned long long)h->counts[b]);
        pl_buf_printf(o,
                      "parley_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                      "%llu\n"
                      "parley_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                      "parley_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                      h->route, (unsigned long long)h->count, h->route, h->sum, h->route,
                      (unsigned long long)h->count);
    }

    const pl_http_stats_t *hs = g->http;
    pl_buf_printf(o,
                  "# HELP parley_http_connections_open Open client connections.\n"
                  "# TYPE parley_http_connections_open gauge\n"
                  "parley_http_connections_open %llu\n"
                  "# HELP parley_http_connections_total Accepted connections.\n"
                  "# TYPE parley_http_connections_total counter\n"
                  "parley_http_connections_total %llu\n"
                  "# HELP parley_http_connections_rejected_total Connections refused with 503 "
                  "over PARLEY_MAX_CONNECTIONS.\n"
                  "# TYPE parley_http_connections_rejected_total counter\n"
                  "parley_http_connections_rejected_total %llu\n"
                  "# HELP parley_longpolls_waiting Long-poll requests waiting for a signal.\n"
                  "# TYPE parley_longpolls_waiting gauge\n"
                  "parley_longpolls_waiting %llu\n"
                  "# HELP parley_store_ready 1 while the store answers.\n"
                  "# TYPE parley_store_ready gauge\n"
                  "parley_store_ready %d\n",
                  (unsigned long long)hs->connections_open,
                  (unsigned long long)hs->connections_total,
                  (unsigned long long)hs->connections_rejected,
                  (unsigned long long)g->longpolls_waiting, g->store_ready ? 1 : 0);

    if (g->store) {
        const pl_store_stats_t *ss = g->store;
        pl_buf_printf(o,
                      "# HELP parley_rooms Live rooms.\n# TYPE parley_rooms gauge\n"
                      "parley_rooms %llu\n"
                      "# HELP parley_members Live room members.\n# TYPE parley_members gauge\n"
                      "parley_members %llu\n"
                      "# HELP parley_signals_queued Envelopes waiting in inboxes.\n"
                      "# TYPE parley_signals_queued gauge\n"
                      "parley_signals_queued %llu\n"
                      "# HELP parley_signals_delivered_total Envelopes taken from inboxes.\n"
                      "# TYPE parley_signals_delivered_total counter\n"
                      "parley_signals_delivered_total %llu\n"
                      "# HELP parley_signals_expired_total Envelopes dropped after "
                      "PARLEY_SIGNAL_TTL.\n"
                      "# TYPE parley_signals_expired_total counter\n"
                      "parley_signals_expired_total %llu\n",
                      (unsigned long long)ss->rooms, (unsigned long long)ss->members,
                      (unsigned long long)ss->signals_queued,
                      (unsigned long long)ss->signals_delivered,
                      (unsigned long long)ss->signals_expired);
    }

    if (g->ws) {
        const pl_ws_stats_t *w = g->ws;
        pl_buf_printf(o,
                      "# HELP parley_ws_connections_open Open WebSockets.\n"
                      "# TYPE parley_ws_connections_open gauge\n"
                      "parley_ws_connections_open %llu\n"
                      "# HELP parley_ws_connections_total WebSockets established.\n"
                      "# TYPE parley_ws_connections_total counter\n"
                      "parley_ws_connections_total %llu\n"
                      "# HELP parley_ws_envelopes_pushed_total Envelopes pushed to sockets.\n"
                      "# TYPE parley_ws_envelopes_pushed_total counter\n"
                      "parley_ws_envelopes_pushed_total %llu\n"
                      "# HELP parley_ws_messages_received_total Client messages received.\n"
                      "# TYPE parley_ws_messages_received_total counter\n"
                      "parley_ws_messages_received_total %llu\n"
                      "# HELP parley_ws_bytes_sent_total Message bytes sent on sockets.\n"
                      "# TYPE parley_ws_bytes_sent_total counter\n"
                      "parley_ws_bytes_sent_total %llu\n"
                      "# HELP parley_ws_bytes_received_total Message bytes received on sockets.\n"
                      "# TYPE parley_ws_bytes_received_total counter\n"
                      "parley_ws_bytes_received_total %llu\n"
                      "# HELP parley_ws_queue_overflows_total Sockets closed with 1013 because "
                      "their queue stayed full.\n"
                      "# TYPE parley_ws_queue_overflows_total counter\n"
                      "parley_ws_queue_overflows_total %llu\n"
                      "# HELP parley_ws_batched_writes_total Socket writes that carried "
                      "several queued messages at once.\n"
                      "# TYPE parley_ws_batched_writes_total counter\n"
                      "parley_ws_batched_writes_total %llu\n"
                      "# HELP parley_ws_envelopes_direct_total Envelopes handed to a socket "
                      "straight from the push (redis engine), without the inbox.\n"
                      "# TYPE parley_ws_envelopes_direct_total counter\n"
                      "parley_ws_envelopes_direct_total %llu\n"
                      "# HELP parley_ws_closes_total WebSocket closes by code, sent or "
                      "received.\n"
                      "# TYPE parley_ws_closes_total counter\n",
                      (unsigned long long)w->open, (unsigned long long)w->total,
                      (unsigned long long)w->pushed, (unsigned long long)w->received,
                      (unsigned long long)w->bytes_sent, (unsigned long long)w->bytes_received,
                      (unsigned long long)w->queue_overflows, (unsigned long long)w->batched_writes,
                      (unsigned long long)w->direct);
        for (size_t i = 0; i < w->nclose; i++)
            pl_buf_printf(o, "parley_ws_closes_total{code=\"%u\"} %llu\n", w->close_codes[i],
                          (unsigned long long)w->close_counts[i]);
    }

    pl_buf_appends(o, "# HELP parley_rate_limited_total Requests refused with 429, by scope.\n"
                      "# TYPE parley_rate_limited_total counter\n");
    for (size_t i = 0; i < m->nlimited; i++)
        pl_buf_printf(o, "parley_rate_limited_total{scope=\"%s\"} %llu\n", m->limited[i].scope,
                      (unsigned long long)m->limited[i].count);

    /* Every label value is written, zero or not, so that rates exist from the start. */
    pl_buf_appends(o, "# HELP parley_7tv_upstream_requests_total Fetches from the 7TV API, by "
                      "outcome.\n# TYPE parley_7tv_upstream_requests_total counter\n");
    for (size_t i = 0; i < PL_7TV_UP_COUNT; i++)
        pl_buf_printf(o, "parley_7tv_upstream_requests_total{result=\"%s\"} %llu\n",
                      sevtv_upstream_names[i], (unsigned long long)m->sevtv_upstream[i]);
    pl_buf_appends(o, "# HELP parley_7tv_cache_total 7TV emote answers by source: a fresh cached "
                      "copy (hit), the upstream (miss), a stale copy while 7TV fails (stale).\n"
                      "# TYPE parley_7tv_cache_total counter\n");
    for (size_t i = 0; i < PL_7TV_CACHE_COUNT; i++)
        pl_buf_printf(o, "parley_7tv_cache_total{result=\"%s\"} %llu\n", sevtv_cache_names[i],
                      (unsigned long long)m->sevtv_cache[i]);
}
