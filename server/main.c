/* parleyd: the Parley signaling and room server.
 *
 * Start-up order: configuration, identity keys, the hub (which listens to the store), the
 * store, then the HTTP listener. Shutdown runs the other way round: stop accepting, answer
 * parked long-polls, let in-flight requests finish (bounded by PARLEY_SHUTDOWN_TIMEOUT),
 * then tear down the store and close every handle before exiting 0. */
#include "api/api.h"
#include "auth/auth.h"
#include "config.h"
#include "http/server.h"
#include "metrics.h"
#include "store/redis.h"
#include "store/store.h"
#include "ws/ws.h"

#include "common/error.h"
#include "common/log.h"
#include "version.h"

#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    pl_app_t app;
    pl_config_t cfg;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer;
    int64_t drain_deadline_ms;
    bool stopping;
    bool ws_closing;
    /* PARLEY_JWT_PUBLIC_KEY mode: the signaling-token key shared through the store. */
    uv_timer_t secret_timer;
    bool secret_pending, secret_logged;
} daemon_t;

/* Of the shutdown budget, the part kept for closing WebSockets after the REST drain. */
#define WS_CLOSE_BUDGET_MS 700

static void on_signal(uv_signal_t *sig, int signum);
static void on_drain_tick(uv_timer_t *t);
static void on_secret_timer(uv_timer_t *t);
static int start(daemon_t *d);
static void raise_fd_limit(uint32_t max_connections);
static void teardown(daemon_t *d);

int main(int argc, char **argv)
{
    static daemon_t d;
    char err[512] = "";
    pl_config_action_t action = PL_CONFIG_RUN;
    signal(SIGPIPE, SIG_IGN);

    if (pl_config_load(&d.cfg, argc, argv, environ, stdout, &action, err, sizeof err)) {
        fprintf(stderr, "parleyd: %s\n", err);
        pl_config_free(&d.cfg);
        return 2;
    }
    if (action != PL_CONFIG_RUN) {
        pl_config_free(&d.cfg);
        return 0;
    }
    pl_log_level_t level = PL_LOG_INFO;
    pl_log_parse_level(d.cfg.log_level, &level);
    pl_log_set_level(level);

    int rc = start(&d);
    if (rc == 0)
        uv_run(d.app.loop, UV_RUN_DEFAULT);
    teardown(&d);
    pl_config_free(&d.cfg);
    if (rc == 0)
        pl_log_info("stopped");
    return rc == 0 ? 0 : 1;
}

static int start(daemon_t *d)
{
    pl_app_t *app = &d->app;
    char err[512] = "";
    int rc;
    app->loop = uv_default_loop();
    app->cfg = &d->cfg;
    raise_fd_limit(d->cfg.max_connections);

    if ((rc = pl_auth_new(&d->cfg, &app->auth, err, sizeof err))) {
        pl_log_error("cannot load the JWT key", PL_LS("error", err));
        return rc;
    }
    if (pl_auth_insecure(app->auth))
        pl_log_warn("INSECURE DEVELOPMENT MODE: user tokens are NOT verified; any unsigned "
                    "token is accepted. Never run this in production.");
    if (!(app->metrics = pl_metrics_new()))
        return PL_ENOMEM;
    if ((rc = pl_api_init(app))) {
        pl_log_error("cannot start the API", PL_LS("error", pl_strerror(rc)));
        return rc;
    }

    pl_store_opts_t sopts = {
        .room_ttl_s = d->cfg.room_ttl,
        .member_ttl_s = d->cfg.member_ttl,
        .signal_ttl_s = d->cfg.signal_ttl,
        /* Inbox bounds: a peer in a big mesh room gets one offer-request per newcomer and a
         * handful of candidates per connection; 256 envelopes and 1 MiB hold that with room
         * to spare, and no sender may take more than a quarter of it. */
        .inbox_max = 256,
        .inbox_bytes_max = 1u << 20,
        .inbox_per_sender_max = 64,
        .queued_bytes_max = (uint64_t)256 << 20,
        .rooms_max = 1000000,
        .emoji_per_domain_max = d->cfg.emoji_max_per_domain,
        .emoji_bytes_max = d->cfg.emoji_store_bytes,
        /* 7TV's sets: a few hundred KiB each; a few hundred channels' worth. */
        .cache_bytes_max = (uint64_t)64 << 20,
    };
    pl_store_listener_t listener = pl_hub_listener(app->hub);
    if (strcmp(d->cfg.store, "memory") == 0) {
        rc = pl_store_memory_new(app->loop, &sopts, &listener, &app->store);
    } else if (strncmp(d->cfg.store, "redis://", 8) == 0) {
        /* Connects in the background: /readyz says when the store answers. */
        rc = pl_store_redis_new(app->loop, d->cfg.store, &sopts, &listener, d->cfg.node_id,
                                &app->store);
    } else {
        pl_log_error("unknown store engine", PL_LS("store", d->cfg.store));
        return PL_ECONFIG;
    }
    if (rc) {
        pl_log_error("cannot open the store", PL_LS("error", pl_strerror(rc)));
        return rc;
    }
    /* With a public key, signaling tokens are signed with a key every node shares and that
     * survives restarts (DESIGN 3); the per-process random key serves until it arrives. */
    if (d->cfg.jwt_public_key && !d->cfg.jwt_secret) {
        uv_timer_init(app->loop, &d->secret_timer);
        d->secret_timer.data = d;
        uv_timer_start(&d->secret_timer, on_secret_timer, 0, 200);
        uv_unref((uv_handle_t *)&d->secret_timer);
    }

    if ((rc = pl_ws_new(app, &app->ws))) {
        pl_log_error("cannot start the WebSocket channel", PL_LS("error", pl_strerror(rc)));
        return rc;
    }

    pl_http_opts_t hopts = {
        .max_connections = d->cfg.max_connections,
        .header_timeout_ms = d->cfg.header_timeout_ms,
        .idle_timeout_ms = d->cfg.idle_timeout_ms,
        .max_body = d->cfg.max_body,
        .body_limit = pl_api_body_limit,
        .handler = pl_api_handle,
        .on_complete = pl_api_complete,
        .ud = app,
    };
    if ((rc = pl_http_server_new(app->loop, &hopts, &app->http)))
        return rc;
    if ((rc = pl_http_server_listen(app->http, d->cfg.listen_host, d->cfg.listen_port))) {
        pl_log_error("cannot listen", PL_LS("host", d->cfg.listen_host),
                     PL_LI("port", d->cfg.listen_port), PL_LS("error", pl_strerror(rc)));
        return rc;
    }

    uv_signal_init(app->loop, &d->sigterm);
    uv_signal_init(app->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_timer_init(app->loop, &d->drain_timer);
    d->drain_timer.data = d;

    char addr[300];
    bool v6 = strchr(d->cfg.listen_host, ':') != NULL;
    snprintf(addr, sizeof addr, v6 ? "[%s]:%u" : "%s:%u", d->cfg.listen_host,
             pl_http_server_port(app->http));
    pl_log_info("listening", PL_LS("addr", addr), PL_LS("store", app->store->engine),
                PL_LS("node", d->cfg.node_id), PL_LS("version", PL_VERSION), PL_LI("pid", getpid()),
                PL_LS("config", d->cfg.config_path));
    return 0;
}

/* Each connection is a descriptor; the default soft limit (often 1024) would cap the
 * server far below PARLEY_MAX_CONNECTIONS, so raise it towards the hard limit. */
static void raise_fd_limit(uint32_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_connections + 256;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        pl_log_warn("the open-file limit is below PARLEY_MAX_CONNECTIONS",
                    PL_LI("limit", rl.rlim_cur), PL_LI("max_connections", max_connections));
}

static void on_signal(uv_signal_t *sig, int signum)
{
    daemon_t *d = sig->data;
    if (d->stopping) {
        pl_log_warn("second signal: closing every connection now");
        pl_http_server_close_all(d->app.http);
        return;
    }
    d->stopping = true;
    pl_log_info("shutdown", PL_LS("signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"),
                PL_LI("connections", pl_http_server_open_connections(d->app.http)),
                PL_LI("timeout_ms", d->cfg.shutdown_timeout_ms));
    pl_http_server_stop_accepting(d->app.http);
    pl_api_shutdown(&d->app);
    /* Cut what is left a little before the timeout, so that closing and tearing down still
     * fit inside it. */
    uint32_t budget = d->cfg.shutdown_timeout_ms;
    d->drain_deadline_ms = pl_mono_ms() + (budget > 500 ? budget - 300 : budget / 2);
    uv_timer_start(&d->drain_timer, on_drain_tick, 0, 20);
}

/* Shutdown in two phases: first the REST drain (in-flight requests finish), then every
 * WebSocket is closed with 1001. At the deadline whatever is left is cut. */
static void on_drain_tick(uv_timer_t *t)
{
    daemon_t *d = t->data;
    int64_t now = pl_mono_ms();
    size_t http_open = pl_http_server_open_connections(d->app.http);
    if (!d->ws_closing) {
        if (http_open > 0 && now < d->drain_deadline_ms - WS_CLOSE_BUDGET_MS)
            return;
        if (http_open > 0) {
            pl_log_warn("shutdown timeout: closing remaining connections",
                        PL_LI("open", http_open));
            pl_http_server_close_all(d->app.http);
        }
        d->ws_closing = true;
        if (d->app.ws)
            pl_ws_close_all(d->app.ws);
    }
    size_t ws_open = d->app.ws ? pl_ws_open_sockets(d->app.ws) : 0;
    http_open = pl_http_server_open_connections(d->app.http);
    if ((ws_open > 0 || http_open > 0) && now < d->drain_deadline_ms)
        return;
    if (ws_open > 0)
        pl_log_warn("shutdown timeout: WebSockets still open", PL_LI("open", ws_open));
    uv_timer_stop(t);
    uv_stop(d->app.loop);
}

static void on_secret(void *ud, int status, const unsigned char *secret, size_t len)
{
    daemon_t *d = ud;
    d->secret_pending = false;
    if (status != 0 || d->stopping)
        return; /* the timer tries again */
    if (pl_auth_set_signing_key(d->app.auth, secret, len) != 0) {
        pl_log_error("cannot set the shared signaling-token key");
        return;
    }
    uv_timer_stop(&d->secret_timer);
    pl_log_info("signaling tokens: using the key shared through the store",
                PL_LS("store", d->app.store->engine));
}

static void on_secret_timer(uv_timer_t *t)
{
    daemon_t *d = t->data;
    pl_store_t *st = d->app.store;
    if (d->secret_pending || d->stopping || !st)
        return;
    if (!st->ready(st)) {
        if (!d->secret_logged)
            pl_log_info("signaling tokens: waiting for the store for the shared key; a "
                        "per-process key signs them meanwhile");
        d->secret_logged = true;
        return;
    }
    d->secret_pending = true;
    if (st->shared_secret(st, "signaling", 32, on_secret, d) != 0)
        d->secret_pending = false;
}

static void close_handle(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* Runs the loop until nothing is left in it, without waiting on anything that would never
 * end: every handle has been closed by then. */
static void drain_loop(uv_loop_t *loop)
{
    for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++) {
    }
}

static void teardown(daemon_t *d)
{
    pl_app_t *app = &d->app;
    if (!app->loop)
        goto free_rest;
    if (app->hub)
        pl_hub_flush(app->hub);
    if (app->emotes)
        pl_emotes_shutdown(app->emotes);
    if (app->http) {
        pl_http_server_stop_accepting(app->http);
        pl_http_server_close_all(app->http);
    }
    /* libwebsockets closes its sockets and handles; their callbacks still need the hub. */
    pl_ws_destroy_begin(app->ws);
    drain_loop(app->loop);
    if (app->store) {
        app->store->destroy(app->store);
        app->store = NULL;
    }
    if (app->hub)
        pl_api_free(app);
    close_handle((uv_handle_t *)&d->sigterm);
    close_handle((uv_handle_t *)&d->sigint);
    close_handle((uv_handle_t *)&d->drain_timer);
    close_handle((uv_handle_t *)&d->secret_timer);
    drain_loop(app->loop);
    pl_ws_destroy_end(app->ws);
    app->ws = NULL;
    if (uv_loop_close(app->loop) != 0)
        pl_log_warn("handles still open at exit");
free_rest:
    if (app->http)
        pl_http_server_free(app->http);
    pl_metrics_free(app->metrics);
    if (app->auth)
        pl_auth_free(app->auth);
}
