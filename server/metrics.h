/* Prometheus metrics: request counters and latency histograms per route, plus counters the
 * API bumps; gauges are read at scrape time from the HTTP server and the store. */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include "common/str.h"
#include "http/server.h"
#include "store/store.h"
#include "ws/ws_stats.h"

#include <stdint.h>

typedef struct pl_metrics pl_metrics_t;

typedef struct {
    const pl_http_stats_t *http;
    const pl_store_stats_t *store; /* NULL when the store could not answer */
    uint64_t longpolls_waiting;
    const pl_ws_stats_t *ws; /* NULL when the channel is off */
    const char *node_id;
    const char *store_engine;
    bool store_ready;
} pl_metrics_gauges_t;

pl_metrics_t *pl_metrics_new(void);
void pl_metrics_free(pl_metrics_t *m);
/* route: a static, low-cardinality name ("create_room"); method: "GET"... */
void pl_metrics_request(pl_metrics_t *m, const char *route, const char *method, int status,
                        double seconds);
void pl_metrics_rate_limited(pl_metrics_t *m, const char *scope);

/* The 7TV proxy (api/emotes.c): one count per upstream fetch, by outcome, and one per
 * answered emotes request, by where its answer came from. */
typedef enum {
    PL_7TV_UP_OK,
    PL_7TV_UP_ERROR,
    PL_7TV_UP_TIMEOUT,
    PL_7TV_UP_TOO_LARGE,
    PL_7TV_UP_BAD_JSON,
    PL_7TV_UP_NOT_FOUND,
    PL_7TV_UP_COUNT
} pl_7tv_result_t;
typedef enum {
    PL_7TV_CACHE_HIT,
    PL_7TV_CACHE_MISS,
    PL_7TV_CACHE_STALE,
    PL_7TV_CACHE_COUNT
} pl_7tv_cache_t;
void pl_metrics_7tv_upstream(pl_metrics_t *m, pl_7tv_result_t result);
void pl_metrics_7tv_cache(pl_metrics_t *m, pl_7tv_cache_t result);
void pl_metrics_render(pl_metrics_t *m, const pl_metrics_gauges_t *g, pl_buf_t *out);

#endif
