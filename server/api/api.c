/* Request dispatch and the helpers every handler uses: CORS, routing, JSON bodies, auth,
 * rate limits, and answering. */
#include "api/api.h"
#include "common/json.h"
#include "ws/ws.h"

#include "common/error.h"
#include "common/log.h"

#include <ctype.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

static const pl_route_t routes[] = {
    {PL_M_POST, "/signaling/create-room", "create_room", api_create_room},
    {PL_M_POST, "/signaling/join-room", "join_room", api_join_room},
    {PL_M_POST, "/signaling/offer", "post_offer", api_post_offer},
    {PL_M_GET, "/signaling/offer/:roomId", "get_offer", api_get_offer},
    {PL_M_POST, "/signaling/answer", "post_answer", api_post_answer},
    {PL_M_GET, "/signaling/answer/:roomId", "get_answer", api_get_answer},
    {PL_M_POST, "/signaling/candidate", "post_candidate", api_post_candidate},
    {PL_M_GET, "/signaling/events/:roomId", "get_events", api_get_events},
    {PL_M_POST, "/signaling/heartbeat", "heartbeat", api_heartbeat},
    {PL_M_POST, "/signaling/leave-room", "leave_room", api_leave_room},
    {PL_M_GET, "/signaling/ws", "ws", api_ws_upgrade},
    {PL_M_GET, "/signaling/rooms", "list_rooms", api_list_rooms},
    {PL_M_GET, "/signaling/rooms/:roomId", "get_room", api_get_room},
    {PL_M_GET, "/healthz", "healthz", api_healthz},
    {PL_M_GET, "/readyz", "readyz", api_readyz},
    {PL_M_GET, "/metrics", "metrics", api_metrics},
    {PL_M_GET, "/emoji/list", "emoji_list", api_emoji_list},
    {PL_M_POST, "/emoji/upload", "emoji_upload", api_emoji_upload},
    {PL_M_GET, "/emoji/:id", "emoji_get", api_emoji_get},
    {PL_M_DELETE, "/emoji/:id", "emoji_delete", api_emoji_delete},
    {PL_M_GET, "/emotes/7tv/global", "emotes_7tv_global", api_emotes_7tv_global},
    {PL_M_GET, "/emotes/7tv/emote-sets/:id", "emotes_7tv_set", api_emotes_7tv_set},
    {PL_M_GET, "/emotes/7tv/users/:platform/:id", "emotes_7tv_user", api_emotes_7tv_user},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static void call_finish(pl_call_t *call);
static void call_release(pl_call_t *call);
static void call_header(pl_call_t *call, const char *name, const char *value);
static void add_cors(pl_call_t *call);
static void handle_options(pl_call_t *call, int match_rc);
static void on_rate(void *ud, int status, uint64_t count, int64_t reset_ms);
static const char *bearer(const pl_call_t *call, size_t *len);

int pl_api_init(pl_app_t *app)
{
    int rc = pl_netpolicy_init(&app->net, app->cfg->trusted_proxies, app->cfg->allowed_origins);
    if (rc)
        return rc;
    if ((rc = pl_hub_new(app, &app->hub))) {
        pl_netpolicy_free(&app->net);
        return rc;
    }
    if ((rc = pl_emotes_new(app, &app->emotes))) {
        pl_hub_free(app->hub);
        app->hub = NULL;
        pl_netpolicy_free(&app->net);
        return rc;
    }
    return 0;
}

void pl_api_free(pl_app_t *app)
{
    pl_api_drain_pool();
    pl_emotes_free(app->emotes);
    app->emotes = NULL;
    pl_hub_free(app->hub);
    app->hub = NULL;
    pl_netpolicy_free(&app->net);
}

void pl_api_shutdown(pl_app_t *app)
{
    app->shutting_down = true;
    pl_hub_flush(app->hub);
    pl_emotes_shutdown(app->emotes);
}

/* Freed calls kept for reuse. A call is ~5 KB, beyond malloc's per-thread cache, so each
 * malloc/free pair went through the general allocator: 1,600 instructions a relayed
 * message. At most CALL_POOL_MAX are kept (a few hundred KB). Only the loop thread makes
 * calls. */
#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer every call is freed, so a use after free is still caught. */
#define CALL_POOL_MAX 0
#else
#define CALL_POOL_MAX 64
#endif
static pl_call_t *call_pool[CALL_POOL_MAX + 1]; /* + 1: never a zero-length array */
static size_t call_pool_n;
static bool call_pool_closed; /* after pl_api_drain_pool: calls are freed at once */

static void call_release(pl_call_t *call)
{
#if CALL_POOL_MAX > 0
    if (call_pool_n < CALL_POOL_MAX && !call_pool_closed) {
        call_pool[call_pool_n++] = call;
        return;
    }
#endif
    free(call);
}

void pl_api_drain_pool(void)
{
    call_pool_closed = true;
    while (call_pool_n)
        free(call_pool[--call_pool_n]);
}

pl_call_t *pl_call_new(void)
{
    /* Every field reads as zero except user.domains, which nobody reads before a user
     * token filled it: clearing those 4 KB on every request cost a fifth of a /healthz. */
    pl_call_t *call = call_pool_n ? call_pool[--call_pool_n] : malloc(sizeof *call);
    if (call)
        memset(call, 0, offsetof(pl_call_t, user) + offsetof(pl_identity_t, domains));
    return call;
}

void pl_api_handle(void *ud, pl_http_req_t *req)
{
    pl_app_t *app = ud;
    pl_call_t *call = pl_call_new();
    if (!call) {
        pl_http_respond(req, 503, "application/json", NULL, 0);
        return;
    }
    call->app = app;
    call->req = req;
    call->now_ms = pl_now_ms();
    req->app_data = call;
    if (app->net.ncidrs) {
        bool rfc7239 = strcmp(app->cfg->client_ip_header, "forwarded") == 0;
        pl_buf_t fwd;
        pl_buf_init(&fwd);
        pl_http_header_all(req, rfc7239 ? "Forwarded" : "X-Forwarded-For", &fwd);
        pl_client_ip(&app->net, req->peer_ip, (pl_str_t){fwd.data, fwd.len}, rfc7239,
                     call->client_ip, sizeof call->client_ip);
        pl_buf_free(&fwd);
        if (strcmp(call->client_ip, req->peer_ip) != 0)
            snprintf(req->client_ip, sizeof req->client_ip, "%s", call->client_ip);
    } else {
        pl_strcpy_cut(call->client_ip, req->peer_ip, sizeof call->client_ip);
    }

    add_cors(call);
    int rc = pl_router_match(routes, NROUTES, req->method, req->path, &call->match);
    if (req->method == HTTP_OPTIONS) {
        req->route = rc == 0 || rc == PL_EINVAL ? "preflight" : "unmatched";
        handle_options(call, rc);
        return;
    }
    if (rc == PL_ENOTFOUND) {
        api_error(call, 404, "not_found", "no such endpoint");
        return;
    }
    if (rc == PL_EINVAL) {
        char allow[64];
        pl_router_allow_header(call->match.allowed, allow, sizeof allow);
        pl_http_add_header(req, "Allow", allow);
        api_error(call, 405, "method_not_allowed", "method not allowed here");
        return;
    }
    req->route = call->match.route->name;
    ((pl_call_fn)call->match.route->handler)(call);
}

void pl_api_complete(void *ud, pl_http_req_t *req, int status, double seconds)
{
    pl_app_t *app = ud;
    /* Methods outside the few the API serves fold into one label value, so that clients
     * cannot mint metric series. */
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"};
    const char *method = "OTHER";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (pl_str_eq(req->method_str, known[i]))
            method = known[i];
    pl_metrics_request(app->metrics, req->route ? req->route : "unmatched", method, status,
                       seconds);
}

/* ---- CORS ---- */

static void add_cors(pl_call_t *call)
{
    pl_str_t origin = pl_http_header(call->req, "Origin");
    if (!origin.ptr)
        return;
    /* Responses differ by Origin, so caches must key on it. */
    call_header(call, "Vary", "Origin");
    if (!pl_origin_allowed(&call->app->net, origin))
        return;
    char value[512];
    snprintf(value, sizeof value, "%.*s", (int)origin.len, origin.ptr);
    call_header(call, "Access-Control-Allow-Origin", value);
    call_header(call, "Access-Control-Expose-Headers",
                "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, ETag, Age, "
                "Warning, X-Cache");
}

static void handle_options(pl_call_t *call, int match_rc)
{
    if (match_rc == PL_ENOTFOUND) {
        api_error(call, 404, "not_found", "no such endpoint");
        return;
    }
    unsigned allowed = match_rc == 0 ? call->match.route->methods : call->match.allowed;
    /* Collect every method the path accepts, not only the first matching route's. */
    pl_route_match_t m;
    if (pl_router_match(routes, NROUTES, HTTP_PUT, call->req->path, &m) == PL_EINVAL)
        allowed |= m.allowed;
    char allow[64];
    pl_router_allow_header(allowed, allow, sizeof allow);
    pl_str_t origin = pl_http_header(call->req, "Origin");
    if (!origin.ptr) {
        call_header(call, "Allow", allow);
        api_empty(call, 204);
        return;
    }
    if (!pl_origin_allowed(&call->app->net, origin)) {
        /* Custom emoji are also open to their domain's own pages, and which domain a
         * request is for (its query, or the stored emoji's) is only known once it runs: the
         * preflight lets any origin through and the request itself is checked (403). */
        if (!pl_str_starts(call->req->path, "/emoji/")) {
            api_error(call, 403, "forbidden", "origin not allowed");
            return;
        }
        char value[512];
        snprintf(value, sizeof value, "%.*s", (int)origin.len, origin.ptr);
        call_header(call, "Access-Control-Allow-Origin", value);
    }
    call_header(call, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    call_header(call, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    call_header(call, "Access-Control-Max-Age", "600");
    call_header(call, "Allow", allow);
    api_empty(call, 204);
}

/* ---- answering ---- */

/* Headers only mean something on HTTP; a WebSocket call has none to carry them. */
static void call_header(pl_call_t *call, const char *name, const char *value)
{
    if (call->req)
        pl_http_add_header(call->req, name, value);
}

static void call_finish(pl_call_t *call)
{
    if (call->rl_seen) {
        char v[32];
        snprintf(v, sizeof v, "%u", call->rl_limit);
        call_header(call, "RateLimit-Limit", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)call->rl_remaining);
        call_header(call, "RateLimit-Remaining", v);
        snprintf(v, sizeof v, "%lld", (long long)call->rl_reset_s);
        call_header(call, "RateLimit-Reset", v);
    }
    if (call->body)
        json_decref(call->body);
    if (call->result)
        json_decref(call->result);
    if (call->ws_ref)
        json_decref(call->ws_ref);
    if (call->extra_free)
        call->extra_free(call->extra);
    call_release(call);
}

void api_call_free(pl_call_t *call)
{
    call_finish(call);
}

void api_json(pl_call_t *call, int status, json_t *body)
{
    pl_http_req_t *req = call->req;
    if (!req) {
        call->reply(call, status, body);
        call_finish(call);
        return;
    }
    pl_buf_t text;
    pl_buf_init(&text);
    bool ok = body && pl_json_dump(&text, body) == 0;
    if (body)
        json_decref(body);
    call_finish(call);
    if (!ok) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
                                  "memory\"}}";
        pl_http_respond(req, 500, "application/json", oom, sizeof oom - 1);
        pl_buf_free(&text);
        return;
    }
    pl_http_respond(req, status, "application/json", text.data, text.len);
    pl_buf_free(&text);
}

void api_error(pl_call_t *call, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status == 401) {
        size_t len;
        call_header(call, "WWW-Authenticate",
                    call->token_given || (call->req && bearer(call, &len))
                        ? "Bearer realm=\"parley\", error=\"invalid_token\""
                        : "Bearer realm=\"parley\"");
    }
    api_json(call, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void api_empty(pl_call_t *call, int status)
{
    pl_http_req_t *req = call->req;
    if (!req) {
        call->reply(call, status, NULL);
        call_finish(call);
        return;
    }
    call_finish(call);
    pl_http_respond(req, status, NULL, NULL, 0);
}

void api_answer_text(pl_call_t *call, int status, const char *content_type, const char *text,
                     size_t len)
{
    pl_http_req_t *req = call->req;
    if (!req) {
        call->reply(call, status, NULL);
        call_finish(call);
        return;
    }
    call_finish(call);
    pl_http_respond(req, status, content_type, text, len);
}

void api_answer_envelopes(pl_call_t *call, const pl_envelope_t *envs, size_t n, bool events)
{
    pl_http_req_t *req = call->req;
    if (!req) {
        call->reply(call, n ? 200 : 204, NULL);
        call_finish(call);
        return;
    }
    if (!events) {
        if (n == 0) {
            api_empty(call, 204);
            return;
        }
        call_finish(call);
        pl_http_respond(req, 200, "application/json", envs[0].json, envs[0].json_len);
        return;
    }
    /* The envelopes are stored serialized; splice them without parsing them again. */
    pl_buf_t b;
    pl_buf_init(&b);
    int rc = pl_buf_appends(&b, "{\"events\":[");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc = pl_buf_append(&b, ",", 1);
        if (rc == 0)
            rc = pl_buf_append(&b, envs[i].json, envs[i].json_len);
    }
    if (rc == 0)
        rc = pl_buf_appends(&b, "]}");
    call_finish(call);
    if (rc)
        pl_http_respond(req, 500, "application/json", NULL, 0);
    else
        pl_http_respond(req, 200, "application/json", b.data, b.len);
    pl_buf_free(&b);
}

void api_store_error(pl_call_t *call, int status)
{
    switch (status) {
    case PL_ENOTFOUND:
        api_error(call, 404, "not_found", "room or peer not found");
        break;
    case PL_EFORBIDDEN:
        api_error(call, 403, "forbidden", "not a member of this room");
        break;
    case PL_EFULL:
        api_error(call, 409, "conflict", "room is full");
        break;
    case PL_ELIMIT:
        /* A full inbox or store: the rate-limit headers describe the caller's own budget,
         * which is not what ran out, so only Retry-After is given. */
        call->rl_seen = false;
        call_header(call, "Retry-After", "1");
        api_error(call, 429, "rate_limited", "too many signals are waiting; retry shortly");
        break;
    case PL_EINVAL:
        api_error(call, 400, "invalid_request", "invalid request");
        break;
    case PL_EUNAVAIL:
    case PL_ECLOSED:
        call_header(call, "Retry-After", "1");
        api_error(call, 503, "store_unavailable", "the store is unavailable");
        break;
    default:
        pl_log_error("store error", PL_LS("error", pl_strerror(status)));
        api_error(call, 500, "internal", "internal error");
        break;
    }
}

/* ---- parsing ---- */

bool api_parse_body(pl_call_t *call)
{
    pl_http_req_t *req = call->req;
    if (call->body)
        return true; /* parsed already (a WebSocket message) */
    pl_str_t ct = pl_http_header(req, "Content-Type");
    if (ct.ptr) {
        size_t n = 0;
        while (n < ct.len && ct.ptr[n] != ';')
            n++;
        while (n > 0 && ct.ptr[n - 1] == ' ')
            n--;
        if (!pl_str_ieq((pl_str_t){ct.ptr, n}, "application/json")) {
            api_error(call, 415, "unsupported_media_type", "expected application/json");
            return false;
        }
    }
    json_error_t err;
    /* Duplicate keys make a body mean two things; NUL in strings never means anything good
     * (jansson refuses \u0000 unless asked). */
    json_t *j = pl_json_loadb(req->body.data ? req->body.data : "", req->body.len,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!j) {
        api_error(call, 400, "invalid_json", "invalid JSON at line %d column %d: %s", err.line,
                  err.column, err.text);
        return false;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_error(call, 400, "invalid_request", "the body must be a JSON object");
        return false;
    }
    call->body = j;
    return true;
}

bool api_field_str(pl_call_t *call, const char *name, bool required, size_t max, const char **out)
{
    json_t *v = json_object_get(call->body, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) {
            api_error(call, 400, "invalid_request", "%s: required", name);
            return false;
        }
        return true;
    }
    if (!json_is_string(v)) {
        api_error(call, 400, "invalid_request", "%s: expected a string", name);
        return false;
    }
    size_t len = json_string_length(v);
    if (len == 0 && required) {
        api_error(call, 400, "invalid_request", "%s: must not be empty", name);
        return false;
    }
    if (len > max) {
        api_error(call, 400, "invalid_request", "%s: longer than %zu bytes", name, max);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool api_query(const pl_call_t *call, const char *name, char *out, size_t cap)
{
    pl_str_t q = call->req->query;
    size_t nlen = strlen(name);
    const char *p = q.ptr, *end = q.ptr + q.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == nlen && memcmp(p, name, nlen) == 0) {
            size_t w = 0;
            for (const char *v = eq ? eq + 1 : pe; v < pe && w + 1 < cap; v++) {
                if (*v == '%' && pe - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    out[w++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else {
                    out[w++] = *v == '+' ? ' ' : *v;
                }
            }
            out[w] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* ---- auth ---- */

static const char *bearer(const pl_call_t *call, size_t *len)
{
    pl_str_t h = pl_http_header(call->req, "Authorization");
    if (!h.ptr || h.len < 7 || !pl_str_ieq((pl_str_t){h.ptr, 7}, "Bearer "))
        return NULL;
    const char *t = h.ptr + 7;
    size_t n = h.len - 7;
    while (n && *t == ' ') {
        t++;
        n--;
    }
    while (n && t[n - 1] == ' ')
        n--;
    if (!n)
        return NULL;
    *len = n;
    return t;
}

bool api_auth_user(pl_call_t *call, bool guests_ok)
{
    size_t len;
    const char *tok = bearer(call, &len);
    if (!tok) {
        if (guests_ok && call->app->cfg->allow_guests &&
            !pl_http_header(call->req, "Authorization").ptr) {
            if (pl_auth_guest(&call->user) == 0)
                return true;
        }
        api_error(call, 401, "unauthorized", "a bearer user token is required");
        return false;
    }
    const char *why = NULL;
    int rc = pl_auth_verify_user(call->app->auth, tok, len, call->now_ms, &call->user, &why);
    if (rc == 0)
        return true;
    pl_log_info("user token refused", PL_LS("reason", why ? why : pl_strerror(rc)),
                PL_LS("peer", call->client_ip));
    api_error(call, 401, "unauthorized", "%s",
              rc == PL_EEXPIRED ? "token expired or not yet valid" : "invalid token");
    return false;
}

static int verify_signaling(pl_call_t *call)
{
    size_t len;
    const char *tok = bearer(call, &len);
    if (!tok)
        return PL_EAUTH;
    return pl_auth_verify_signaling(call->app->auth, tok, len, call->now_ms, &call->sig);
}

bool api_auth_signaling(pl_call_t *call, const char *room_id)
{
    int rc = call->preauth ? 0 : verify_signaling(call);
    if (rc) {
        api_error(call, 401, "unauthorized", "%s",
                  rc == PL_EEXPIRED ? "signaling token expired"
                                    : "a bearer signaling token is required");
        return false;
    }
    if (room_id) {
        if (room_id != call->room_id)
            snprintf(call->room_id, sizeof call->room_id, "%s", room_id);
        return api_same_room(call);
    }
    return true;
}

bool api_same_room(pl_call_t *call)
{
    if (strcmp(call->sig.room_id, call->room_id) != 0) {
        api_error(call, 403, "forbidden", "the signaling token is for another room");
        return false;
    }
    return true;
}

bool api_has_signaling_for(pl_call_t *call, const char *room_id)
{
    return verify_signaling(call) == 0 && strcmp(call->sig.room_id, room_id) == 0;
}

/* ---- rate limits ---- */

void api_rate(pl_call_t *call, const char *scope, const char *subject, const pl_rate_t *rate,
              pl_call_fn next)
{
    if (rate->limit == 0) {
        next(call);
        return;
    }
    char key[PL_USER_ID_SIZE + 96];
    snprintf(key, sizeof key, "rl:%s:%s", scope, subject);
    call->rate_next = next;
    call->rate_scope = scope;
    call->rate_limit = rate->limit;
    int rc =
        call->app->store->rate_hit(call->app->store, key, rate->window_s * 1000u, on_rate, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_rate(void *ud, int status, uint64_t count, int64_t reset_ms)
{
    pl_call_t *call = ud;
    if (status) {
        api_store_error(call, status);
        return;
    }
    int64_t reset_s = (reset_ms - pl_now_ms() + 999) / 1000;
    if (reset_s < 0)
        reset_s = 0;
    uint64_t remaining = count >= call->rate_limit ? 0 : call->rate_limit - count;
    if (!call->rl_seen || remaining < call->rl_remaining) {
        call->rl_seen = true;
        call->rl_limit = call->rate_limit;
        call->rl_remaining = remaining;
        call->rl_reset_s = reset_s;
    }
    if (count > call->rate_limit) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)(reset_s > 0 ? reset_s : 1));
        call_header(call, "Retry-After", v);
        pl_metrics_rate_limited(call->app->metrics, call->rate_scope);
        api_error(call, 429, "rate_limited", "too many requests; retry in %lld s",
                  (long long)(reset_s > 0 ? reset_s : 1));
        return;
    }
    call->rate_next(call);
}
