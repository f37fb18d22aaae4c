/* Operations endpoints: liveness, readiness and Prometheus metrics. */
#include "api/api.h"
#include "ws/ws.h"

#include "common/error.h"

static void on_stats(void *ud, int status, const pl_store_stats_t *stats);

void api_healthz(pl_call_t *call)
{
    /* A constant: load balancers ask often, and it needs no JSON library. */
    static const char ok[] = "{\"status\":\"ok\"}";
    api_answer_text(call, 200, "application/json", ok, sizeof ok - 1);
}

void api_readyz(pl_call_t *call)
{
    pl_store_t *s = call->app->store;
    bool ready = s->ready(s) && !call->app->shutting_down;
    api_json(call, ready ? 200 : 503,
             json_pack("{s:s}", "status", ready ? "ready" : "unavailable"));
}

void api_metrics(pl_call_t *call)
{
    pl_store_t *s = call->app->store;
    int rc = s->stats(s, on_stats, call);
    if (rc)
        on_stats(call, rc, NULL);
}

static void on_stats(void *ud, int status, const pl_store_stats_t *stats)
{
    pl_call_t *call = ud;
    pl_app_t *app = call->app;
    pl_http_stats_t hs;
    pl_http_server_stats(app->http, &hs);
    pl_ws_stats_t ws;
    if (app->ws)
        pl_ws_get_stats(app->ws, &ws);
    pl_metrics_gauges_t g = {
        .ws = app->ws ? &ws : NULL,
        .http = &hs,
        .store = status == 0 ? stats : NULL,
        .longpolls_waiting = pl_hub_waiting(app->hub),
        .node_id = app->cfg->node_id,
        .store_engine = app->store->engine,
        .store_ready = app->store->ready(app->store),
    };
    pl_buf_t out;
    pl_buf_init(&out);
    pl_metrics_render(app->metrics, &g, &out);
    pl_api_emoji_metrics(&out);
    api_answer_text(call, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    pl_buf_free(&out);
}
