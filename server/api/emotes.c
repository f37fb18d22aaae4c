/* 7TV emotes (DESIGN section 6, docs/api.md "7TV emotes"): a caching proxy of 7TV's API v3.
 *
 * A request looks its key up in the store's cache ("7tv:global", "7tv:set:<id>",
 * "7tv:user:<platform>:<id>"), shared by every node. A fresh copy is answered at once.
 * Otherwise the request joins the one upstream fetch running for its key on this node, or
 * starts it: a flight. When the flight ends every request waiting on it gets the same
 * answer: the normalized set (which is also cached for PARLEY_7TV_CACHE_TTL plus
 * PARLEY_7TV_STALE_TTL seconds), 404, or, when 7TV failed, the stale copy one of them found
 * (with Warning and Age) or 502.
 *
 * Upstream requests are libcurl transfers on the multi interface, driven by the server's own
 * libuv loop (a uv_poll_t per socket curl asks us to watch, one uv_timer_t for curl's
 * timeouts), so that a slow or hostile 7TV never blocks the loop; each transfer has connect
 * and total timeouts and a cap on the bytes it may receive.
 *
 * Call lifetimes: a waiting call is owned by its flight's list, and its client may go away
 * meanwhile; on_abort takes it out of the list and ends it, so no list ever holds a call
 * that has been answered. */
#include "api/api.h"
#include "api/seventv.h"

#include "common/error.h"
#include "common/log.h"
#include "common/map.h"
#include "version.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SIZE  128
#define PATH_SIZE 160
/* Calls one flight holds; beyond them a request is answered 503 (or stale) at once rather
 * than queued without bound behind a slow 7TV. */
#define WAITERS_MAX 1000
/* Upstream fetches running at once, for distinct keys: made-up set ids must not open an
 * unbounded number of connections to 7TV. */
#define FLIGHTS_MAX        64
#define CONNECT_TIMEOUT_MS 3000
#define WARNING_STALE      "110 - \"Response is Stale\""

typedef struct flight flight_t;
typedef struct job job_t;

/* A copy of a cached value and when it was stored. */
typedef struct {
    char *data;
    size_t len;
    int64_t stored_at_ms;
} copy_t;

/* A call's state, hung on call->extra (freed with the call). */
struct job {
    pl_emotes_t *e;
    pl_call_t *call;
    flight_t *flight; /* while waiting on one */
    job_t *prev, *next;
    pl_7tv_kind_t kind;
    char key[KEY_SIZE];
    char path[PATH_SIZE]; /* under PARLEY_7TV_API: "/emote-sets/global" */
    copy_t stale;         /* a copy past its freshness found in the cache, until handed on */
};

typedef enum {
    FLIGHT_FETCHING,
    /* The fetch succeeded and its result is being written to the store: a request that
     * comes meanwhile may not see it in the cache yet, and gets it from here instead. */
    FLIGHT_STORING,
} flight_state_t;

struct flight {
    pl_emotes_t *e;
    flight_state_t state;
    pl_7tv_kind_t kind;
    char key[KEY_SIZE];
    char *url;
    CURL *easy;
    pl_buf_t body;
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
    job_t *head, *tail;
    size_t nwaiters;
    copy_t stale;    /* the newest stale copy any waiter found */
    pl_buf_t result; /* the normalized set (FLIGHT_STORING) */
};

/* A socket curl asked us to watch. */
typedef struct sock sock_t;
struct sock {
    uv_poll_t poll;
    pl_emotes_t *e;
    curl_socket_t fd;
    sock_t *prev, *next;
};

struct pl_emotes {
    pl_app_t *app;
    CURLM *multi;
    struct curl_slist *headers;
    uv_timer_t timer;
    pl_map_t flights; /* key -> flight_t */
    size_t nfetching;
    sock_t *socks;    /* polls not yet closing */
    int handles_open; /* the timer and the polls, until their close callbacks */
    bool curl_inited; /* curl_global_init succeeded */
    bool stopped;     /* pl_emotes_shutdown ran */
    bool freeing;     /* pl_emotes_free ran: the last close callback frees */
};

static void emotes_lookup(pl_call_t *call, pl_7tv_kind_t kind, const char *key, const char *path);
static void job_free(void *p);
static void on_cache(void *ud, int status, const unsigned char *data, size_t len,
                     int64_t stored_at_ms);
static void join_flight(pl_call_t *call);
static flight_t *flight_start(pl_emotes_t *e, const job_t *job);
static void flight_free(flight_t *f);
static void flight_finish(flight_t *f, CURLcode res, long http_status);
static void flight_fail(flight_t *f, int status, const char *code, const char *msg);
static void on_stored(void *ud, int status);
static void waiter_add(flight_t *f, job_t *job);
static void waiter_remove(job_t *job);
static job_t *waiter_pop(flight_t *f);
static void on_abort(pl_http_req_t *req);
static void keep_stale(copy_t *into, copy_t *from);
static void answer_copy(pl_call_t *call, const char *data, size_t len, int64_t stored_at_ms,
                        bool stale);
static void answer_fresh(pl_call_t *call, const flight_t *f);
static void answer_failure(pl_call_t *call, const copy_t *stale, int status, const char *code,
                           const char *msg);
static void fail_call(pl_call_t *call, int status, const char *code, const char *msg);
static void add_header(pl_call_t *call, const char *name, const char *value);
static void cache_control(pl_call_t *call, int64_t fresh_ms);
static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud);
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp);
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp);
static void on_poll(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *t);
static void check_done(pl_emotes_t *e);
static void sock_close(sock_t *s);
static void on_handle_closed(uv_handle_t *h);

/* ---- lifecycle ---- */

int pl_emotes_new(pl_app_t *app, pl_emotes_t **out)
{
    pl_emotes_t *e = calloc(1, sizeof *e);
    if (!e)
        return PL_ENOMEM;
    e->app = app;
    pl_map_init(&e->flights);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    e->curl_inited = true;
    e->multi = curl_multi_init();
    e->headers = curl_slist_append(NULL, "Accept: application/json");
    if (!e->multi || !e->headers)
        goto fail;
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    if (uv_timer_init(app->loop, &e->timer) != 0)
        goto fail;
    e->timer.data = e;
    e->handles_open = 1;
    *out = e;
    return 0;
fail:
    if (e->multi)
        curl_multi_cleanup(e->multi);
    curl_slist_free_all(e->headers);
    if (e->curl_inited)
        curl_global_cleanup();
    pl_map_free(&e->flights);
    free(e);
    return PL_ENOMEM;
}

void pl_emotes_shutdown(pl_emotes_t *e)
{
    if (!e || e->stopped)
        return;
    e->stopped = true;
    /* One flight at a time from the start of the map: answering a call may run the next
     * request pipelined behind it, which must not change the map under an iteration (it
     * cannot start a flight: it sees e->stopped). There are at most FLIGHTS_MAX of them. */
    for (;;) {
        flight_t *f = NULL;
        pl_map_iter_t it;
        void *val;
        pl_map_iter_init(&it, &e->flights);
        while (!f && pl_map_iter_next(&it, NULL, NULL, &val))
            if (((flight_t *)val)->state == FLIGHT_FETCHING)
                f = val;
        if (!f)
            break;
        curl_multi_remove_handle(e->multi, f->easy);
        curl_easy_cleanup(f->easy);
        f->easy = NULL;
        flight_fail(f, 503, "shutting_down", "the server is shutting down");
    }
    uv_timer_stop(&e->timer);
}

void pl_emotes_free(pl_emotes_t *e)
{
    if (!e)
        return;
    pl_emotes_shutdown(e);
    /* By now the store is gone, and with it every pending cache write (their callbacks
     * have fired): whatever flight is left has nobody waiting on it. */
    pl_map_iter_t it;
    void *val;
    pl_map_iter_init(&it, &e->flights);
    while (pl_map_iter_next(&it, NULL, NULL, &val))
        flight_free(val);
    pl_map_free(&e->flights);
    /* curl may still report sockets to forget (its connection cache) while it cleans up. */
    curl_multi_cleanup(e->multi);
    e->multi = NULL;
    curl_slist_free_all(e->headers);
    e->headers = NULL;
    curl_global_cleanup();
    while (e->socks)
        sock_close(e->socks);
    e->freeing = true;
    uv_close((uv_handle_t *)&e->timer, on_handle_closed);
}

static void on_handle_closed(uv_handle_t *h)
{
    pl_emotes_t *e;
    if (h->type == UV_TIMER) {
        e = h->data;
    } else {
        sock_t *s = h->data;
        e = s->e;
        free(s);
    }
    if (--e->handles_open == 0 && e->freeing)
        free(e);
}

/* ---- routes ---- */

void api_emotes_7tv_global(pl_call_t *call)
{
    emotes_lookup(call, PL_7TV_SET, "7tv:global", "/emote-sets/global");
}

void api_emotes_7tv_set(pl_call_t *call)
{
    pl_str_t id = call->match.params[0];
    if (!pl_7tv_valid_set_id(id)) {
        api_error(call, 400, "invalid_request", "an emote-set id is 1..64 of [0-9A-Za-z]");
        return;
    }
    char key[KEY_SIZE], path[PATH_SIZE];
    snprintf(key, sizeof key, "7tv:set:%.*s", (int)id.len, id.ptr);
    snprintf(path, sizeof path, "/emote-sets/%.*s", (int)id.len, id.ptr);
    emotes_lookup(call, PL_7TV_SET, key, path);
}

void api_emotes_7tv_user(pl_call_t *call)
{
    pl_str_t platform = call->match.params[0], id = call->match.params[1];
    if (!pl_7tv_valid_platform(platform)) {
        api_error(call, 400, "invalid_request",
                  "platform is one of twitch, youtube, kick, discord");
        return;
    }
    if (!pl_7tv_valid_user_id(id)) {
        api_error(call, 400, "invalid_request", "a user id is 1..64 of [0-9A-Za-z_-]");
        return;
    }
    char key[KEY_SIZE], path[PATH_SIZE];
    snprintf(key, sizeof key, "7tv:user:%.*s:%.*s", (int)platform.len, platform.ptr, (int)id.len,
             id.ptr);
    snprintf(path, sizeof path, "/users/%.*s/%.*s", (int)platform.len, platform.ptr, (int)id.len,
             id.ptr);
    emotes_lookup(call, PL_7TV_USER, key, path);
}

static void emotes_lookup(pl_call_t *call, pl_7tv_kind_t kind, const char *key, const char *path)
{
    job_t *job = calloc(1, sizeof *job);
    if (!job) {
        api_error(call, 503, "overloaded", "out of memory");
        return;
    }
    job->e = call->app->emotes;
    job->call = call;
    job->kind = kind;
    pl_strcpy_cut(job->key, key, sizeof job->key);
    pl_strcpy_cut(job->path, path, sizeof job->path);
    call->extra = job;
    call->extra_free = job_free;
    pl_store_t *s = call->app->store;
    int rc = s->cache_get(s, key, on_cache, call);
    if (rc) {
        /* The cache is an optimisation: without it the request still goes upstream. */
        pl_log_warn("7tv cache lookup failed", PL_LS("key", key), PL_LS("error", pl_strerror(rc)));
        join_flight(call);
    }
}

static void job_free(void *p)
{
    job_t *job = p;
    if (job->flight)
        waiter_remove(job);
    free(job->stale.data);
    free(job);
}

static void on_cache(void *ud, int status, const unsigned char *data, size_t len,
                     int64_t stored_at_ms)
{
    pl_call_t *call = ud;
    job_t *job = call->extra;
    const pl_config_t *cfg = call->app->cfg;
    if (status == 0 && data) {
        int64_t age_ms = pl_now_ms() - stored_at_ms;
        if (age_ms < (int64_t)cfg->sevtv_cache_ttl * 1000) {
            answer_copy(call, (const char *)data, len, stored_at_ms, false);
            return;
        }
        if (age_ms < ((int64_t)cfg->sevtv_cache_ttl + cfg->sevtv_stale_ttl) * 1000) {
            /* Kept in case 7TV fails; a copy that cannot be made only loses that fallback. */
            job->stale.data = malloc(len ? len : 1);
            if (job->stale.data) {
                memcpy(job->stale.data, data, len);
                job->stale.len = len;
                job->stale.stored_at_ms = stored_at_ms;
            }
        }
    } else if (status != 0 && status != PL_ENOTFOUND) {
        pl_log_warn("7tv cache lookup failed", PL_LS("key", job->key),
                    PL_LS("error", pl_strerror(status)));
    }
    join_flight(call);
}

/* ---- flights ---- */

static void join_flight(pl_call_t *call)
{
    job_t *job = call->extra;
    pl_emotes_t *e = job->e;
    if (call->req && call->req->aborted) {
        /* Gone during the cache lookup: nobody would read the answer (it is discarded). */
        api_error(call, 499, "client_closed", "the client went away");
        return;
    }
    if (e->stopped) {
        fail_call(call, 503, "shutting_down", "the server is shutting down");
        return;
    }
    flight_t *f = pl_map_get(&e->flights, job->key, strlen(job->key));
    if (f && f->state == FLIGHT_STORING) {
        answer_fresh(call, f);
        return;
    }
    if (!f) {
        if (e->nfetching >= FLIGHTS_MAX) {
            fail_call(call, 503, "overloaded", "too many 7TV requests running");
            return;
        }
        f = flight_start(e, job);
        if (!f) {
            fail_call(call, 502, "upstream_unavailable", "cannot start the request to 7TV");
            return;
        }
    } else if (f->nwaiters >= WAITERS_MAX) {
        fail_call(call, 503, "overloaded", "too many requests are waiting for this 7TV answer");
        return;
    }
    keep_stale(&f->stale, &job->stale);
    waiter_add(f, job);
    if (call->req)
        call->req->on_abort = on_abort;
}

static flight_t *flight_start(pl_emotes_t *e, const job_t *job)
{
    const pl_config_t *cfg = e->app->cfg;
    flight_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->e = e;
    f->kind = job->kind;
    pl_strcpy_cut(f->key, job->key, sizeof f->key);
    pl_buf_init(&f->body);
    pl_buf_init(&f->result);
    size_t ulen = strlen(cfg->sevtv_api) + strlen(job->path) + 1;
    f->url = malloc(ulen);
    f->easy = f->url ? curl_easy_init() : NULL;
    if (!f->easy)
        goto fail;
    snprintf(f->url, ulen, "%s%s", cfg->sevtv_api, job->path);
    long timeout = (long)cfg->sevtv_timeout_ms;
    CURL *c = f->easy;
    CURLcode rc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SETOPT(CURLOPT_URL, f->url);
    SETOPT(CURLOPT_PRIVATE, f);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, f);
    SETOPT(CURLOPT_ERRORBUFFER, f->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, timeout < CONNECT_TIMEOUT_MS ? timeout : CONNECT_TIMEOUT_MS);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    /* 7TV answers these paths directly; a redirect is treated as a failure rather than
     * followed to wherever it points. */
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    /* A declared length over the cap fails at once; an undeclared one is cut by on_write. */
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cfg->sevtv_max_bytes);
    /* Compressed answers are welcome; the cap counts the bytes after decompression. */
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_USERAGENT, "parleyd/" PL_VERSION);
    SETOPT(CURLOPT_HTTPHEADER, e->headers);
#undef SETOPT
    if (rc != CURLE_OK) {
        pl_log_warn("7tv request refused by libcurl", PL_LS("key", f->key),
                    PL_LS("error", curl_easy_strerror(rc)));
        goto fail;
    }
    if (pl_map_put(&e->flights, f->key, strlen(f->key), f))
        goto fail;
    if (curl_multi_add_handle(e->multi, f->easy) != CURLM_OK) {
        pl_map_del(&e->flights, f->key, strlen(f->key));
        goto fail;
    }
    e->nfetching++;
    return f;
fail:
    flight_free(f);
    return NULL;
}

static void flight_free(flight_t *f)
{
    if (f->easy)
        curl_easy_cleanup(f->easy);
    free(f->url);
    free(f->stale.data);
    pl_buf_free(&f->body);
    pl_buf_free(&f->result);
    free(f);
}

/* A transfer ended (its easy handle is already gone). */
static void flight_finish(flight_t *f, CURLcode res, long http_status)
{
    pl_emotes_t *e = f->e;
    pl_metrics_t *m = e->app->metrics;
    const char *reason = NULL;
    pl_7tv_result_t result = PL_7TV_UP_ERROR;
    if (res == CURLE_OPERATION_TIMEDOUT) {
        result = PL_7TV_UP_TIMEOUT;
        reason = "timeout";
    } else if (f->too_large || res == CURLE_FILESIZE_EXCEEDED) {
        result = PL_7TV_UP_TOO_LARGE;
        reason = "too_large";
    } else if (res != CURLE_OK) {
        reason = f->errbuf[0] ? f->errbuf : curl_easy_strerror(res);
    } else if (http_status == 404 || http_status == 400) {
        /* 7TV answers 400 for an id that is not one of its ids at all: for the client
         * either way the set or user does not exist. */
        pl_metrics_7tv_upstream(m, PL_7TV_UP_NOT_FOUND);
        flight_fail(f, 404, "not_found", "no such 7TV emote set or user");
        return;
    } else if (http_status != 200) {
        reason = "http_error";
    } else {
        size_t skipped = 0;
        int rc = pl_7tv_normalize(f->body.data ? f->body.data : "", f->body.len, f->kind,
                                  PL_7TV_MAX_EMOTES, &f->result, &skipped);
        if (rc == 0) {
            pl_metrics_7tv_upstream(m, PL_7TV_UP_OK);
            if (skipped)
                pl_log_info("7tv emotes skipped as malformed", PL_LS("key", f->key),
                            PL_LI("skipped", skipped));
            f->state = FLIGHT_STORING;
            e->nfetching--;
            pl_buf_free(&f->body);
            job_t *job;
            while ((job = waiter_pop(f)))
                answer_fresh(job->call, f);
            const pl_config_t *cfg = e->app->cfg;
            pl_store_t *s = e->app->store;
            int src = s->cache_put(s, f->key, (const unsigned char *)f->result.data, f->result.len,
                                   cfg->sevtv_cache_ttl + cfg->sevtv_stale_ttl, on_stored, f);
            if (src)
                on_stored(f, src);
            return;
        }
        result = rc == PL_EINVAL ? PL_7TV_UP_BAD_JSON : PL_7TV_UP_ERROR;
        reason = rc == PL_EINVAL ? "bad_json" : "out of memory";
    }
    pl_metrics_7tv_upstream(m, result);
    pl_log_warn("7tv upstream failed", PL_LS("key", f->key), PL_LS("url", f->url),
                PL_LS("reason", reason), PL_LI("status", http_status), PL_LI("bytes", f->body.len));
    flight_fail(f, 502, "upstream_unavailable", "7TV is unavailable");
}

/* Ends a fetch that brought no set: every waiter gets the stale copy when there is one,
 * else status (404 answers never fall back on a copy: 7TV said the set is gone). */
static void flight_fail(flight_t *f, int status, const char *code, const char *msg)
{
    pl_emotes_t *e = f->e;
    /* Out of the map first, so that a request run while answering starts afresh. */
    pl_map_del(&e->flights, f->key, strlen(f->key));
    e->nfetching--;
    job_t *job;
    while ((job = waiter_pop(f)))
        answer_failure(job->call, status == 404 ? NULL : &f->stale, status, code, msg);
    flight_free(f);
}

static void on_stored(void *ud, int status)
{
    flight_t *f = ud;
    if (status)
        pl_log_warn("7tv cache write failed", PL_LS("key", f->key),
                    PL_LS("error", pl_strerror(status)));
    pl_map_del(&f->e->flights, f->key, strlen(f->key));
    flight_free(f);
}

/* ---- waiters ---- */

static void waiter_add(flight_t *f, job_t *job)
{
    job->flight = f;
    job->prev = f->tail;
    job->next = NULL;
    if (f->tail)
        f->tail->next = job;
    else
        f->head = job;
    f->tail = job;
    f->nwaiters++;
}

static void waiter_remove(job_t *job)
{
    flight_t *f = job->flight;
    if (job->prev)
        job->prev->next = job->next;
    else
        f->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        f->tail = job->prev;
    f->nwaiters--;
    job->flight = NULL;
    job->prev = job->next = NULL;
    if (job->call->req)
        job->call->req->on_abort = NULL;
}

static job_t *waiter_pop(flight_t *f)
{
    job_t *job = f->head;
    if (job)
        waiter_remove(job);
    return job;
}

static void on_abort(pl_http_req_t *req)
{
    pl_call_t *call = req->app_data;
    job_t *job = call->extra;
    if (job->flight)
        waiter_remove(job);
    /* The request stays valid until it is answered; the answer is discarded. */
    api_error(call, 499, "client_closed", "the client went away");
}

/* ---- answers ---- */

/* Moves from's copy into into when it is newer than into's. */
static void keep_stale(copy_t *into, copy_t *from)
{
    if (!from->data)
        return;
    if (!into->data || from->stored_at_ms > into->stored_at_ms) {
        free(into->data);
        *into = *from;
    } else {
        free(from->data);
    }
    *from = (copy_t){0};
}

static void add_header(pl_call_t *call, const char *name, const char *value)
{
    if (call->req)
        pl_http_add_header(call->req, name, value);
}

/* Shared caches may keep an answer as long as it stays fresh here. */
static void cache_control(pl_call_t *call, int64_t fresh_ms)
{
    char v[64];
    snprintf(v, sizeof v, "public, max-age=%lld", (long long)(fresh_ms > 0 ? fresh_ms / 1000 : 0));
    add_header(call, "Cache-Control", v);
}

/* A copy from the cache: fresh (a hit) or, while 7TV fails, stale. data must outlive the
 * call (api_answer_text frees the call before it sends). */
static void answer_copy(pl_call_t *call, const char *data, size_t len, int64_t stored_at_ms,
                        bool stale)
{
    const pl_config_t *cfg = call->app->cfg;
    int64_t age_ms = pl_now_ms() - stored_at_ms;
    if (age_ms < 0)
        age_ms = 0;
    char age[24];
    pl_fmt_i64(age, age_ms / 1000);
    add_header(call, "X-Cache", stale ? "stale" : "hit");
    add_header(call, "Age", age);
    cache_control(call, stale ? 0 : (int64_t)cfg->sevtv_cache_ttl * 1000 - age_ms);
    if (stale)
        add_header(call, "Warning", WARNING_STALE);
    pl_metrics_7tv_cache(call->app->metrics, stale ? PL_7TV_CACHE_STALE : PL_7TV_CACHE_HIT);
    api_answer_text(call, 200, "application/json", data, len);
}

static void answer_fresh(pl_call_t *call, const flight_t *f)
{
    add_header(call, "X-Cache", "miss");
    cache_control(call, (int64_t)call->app->cfg->sevtv_cache_ttl * 1000);
    pl_metrics_7tv_cache(call->app->metrics, PL_7TV_CACHE_MISS);
    api_answer_text(call, 200, "application/json", f->result.data, f->result.len);
}

/* No fresh set for call: the stale copy when there is one (stale may be NULL), else the
 * error. */
static void answer_failure(pl_call_t *call, const copy_t *stale, int status, const char *code,
                           const char *msg)
{
    if (stale && stale->data) {
        answer_copy(call, stale->data, stale->len, stale->stored_at_ms, true);
        return;
    }
    pl_metrics_7tv_cache(call->app->metrics, PL_7TV_CACHE_MISS);
    if (status == 503)
        add_header(call, "Retry-After", "1");
    api_error(call, status, code, "%s", msg);
}

/* answer_failure with the stale copy the call itself found, which must leave the call
 * before the call is freed. */
static void fail_call(pl_call_t *call, int status, const char *code, const char *msg)
{
    job_t *job = call->extra;
    copy_t stale = job->stale;
    job->stale = (copy_t){0};
    answer_failure(call, &stale, status, code, msg);
    free(stale.data);
}

/* ---- libcurl on the loop ---- */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    flight_t *f = ud;
    size_t n = size * nmemb;
    if (f->body.len + n > f->e->app->cfg->sevtv_max_bytes) {
        f->too_large = true;
        return 0; /* fails the transfer with CURLE_WRITE_ERROR */
    }
    if (pl_buf_append(&f->body, ptr, n))
        return 0;
    return n;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    pl_emotes_t *e = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(e->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        if (uv_poll_init_socket(e->app->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->e = e;
        s->fd = fd;
        s->poll.data = s;
        s->next = e->socks;
        if (e->socks)
            e->socks->prev = s;
        e->socks = s;
        e->handles_open++;
        curl_multi_assign(e->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void sock_close(sock_t *s)
{
    pl_emotes_t *e = s->e;
    if (s->prev)
        s->prev->next = s->next;
    else
        e->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

/* curl wants its timeout checked after timeout_ms (0: as soon as possible, which must not be
 * from inside this callback); -1 cancels it. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    pl_emotes_t *e = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&e->timer);
    else
        uv_timer_start(&e->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    pl_emotes_t *e = t->data;
    int running;
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(e);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    pl_emotes_t *e = s->e;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(e->multi, s->fd, flags, &running);
    check_done(e);
}

static void check_done(pl_emotes_t *e)
{
    CURLMsg *msg;
    int left;
    while (e->multi && (msg = curl_multi_info_read(e->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        flight_t *f = NULL;
        long http_status = 0;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&f);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &http_status);
        curl_multi_remove_handle(e->multi, easy);
        curl_easy_cleanup(easy);
        f->easy = NULL;
        flight_finish(f, res, http_status);
    }
}
