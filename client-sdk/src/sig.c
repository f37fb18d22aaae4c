/* sig: the signaling client (sig.h), following docs/api.md and notes/sdk-plan.md section 8.
 *
 * One membership at a time: phase IDLE → JOINING (create/join over REST) → JOINED → LEAVING
 * → IDLE. While joined, one "link" carries envelopes: the WebSocket (WS), or REST long-polls
 * of GET /signaling/events (POLL). Never both: they consume the same inbox.
 *
 * Losing the link (network error, close 1001/1006/1011/1013/...) waits a backoff with full
 * jitter, then probes with a REST heartbeat, which refreshes the token and tells a live
 * membership (200) from a dead one (401/403/404: reported once, no retry). After the probe
 * the WS is opened again, or, in AUTO mode after three WS failures in a row (or an upgrade
 * refused with 400/426), long-polls take over and the WS is retried every 60 s.
 *
 * Outgoing signals keep their order: one FIFO; over the WS each message carries a ref and
 * stays "in flight" until its ack; over REST one POST at a time. A link lost with messages in
 * flight sends them again (at-least-once: an unacked message may or may not have been
 * taken). 429 is honoured from Retry-After (REST) or the error's "retry in N s" (WS).
 *
 * Callbacks: every user callback is queued and delivered from a zero-delay timer, so none
 * runs inside a pl__sig_* call, a libwebsockets callback or an HTTP completion; pl__sig_free()
 * from inside a callback is deferred until the callback returns. */
#include "sig.h"

#include "http.h"
#include "ws.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN         4096
#define MAX_RESPONSE      (4u << 20) /* an events answer: up to 100 envelopes of 64 KiB */
#define MAX_WS_MESSAGE    (1u << 20)
#define MAX_QUEUE_MSGS    1024
#define MAX_QUEUE_BYTES   (4u << 20)
#define MAX_INFLIGHT      64
#define MAX_DETAIL        256
#define POLL_WAIT_S       20
#define REQ_TIMEOUT_MS    10000
#define POLL_TIMEOUT_MS   ((POLL_WAIT_S + 15) * 1000)
#define WS_FALLBACK_FAILS 3
#define WS_RETRY_MS       60000
#define BACKOFF_BASE_MS   250
#define BACKOFF_CAP_MS    30000
#define STABLE_MS         30000 /* a link up this long resets the backoff */
#define LEAVE_TIMEOUT_MS  5000
#define JOIN_429_RETRIES  3
#define RETRY_AFTER_MAX_S 60
#define DEFAULT_HB_S      30

enum phase { PH_IDLE, PH_JOINING, PH_JOINED, PH_LEAVING };
enum link { L_NONE, L_WS_CONNECTING, L_WS, L_POLL, L_WAIT, L_PROBE };
enum retry_action { RA_NONE, RA_JOIN, RA_PROBE, RA_POLL };
enum ev_kind { EV_JOINED, EV_ENVELOPE, EV_STATE, EV_ERROR, EV_LEFT };

typedef struct outmsg {
    struct outmsg *next;
    json_t *msg; /* {"type","to",...fields} */
    size_t size;
} outmsg_t;

typedef struct ev {
    struct ev *next;
    enum ev_kind kind;
    json_t *j;
    int state, err;
    const char *op;
    char *detail;
} ev_t;

/* A name resolution outlives the pl__sig if freed meanwhile: it only holds a back pointer. */
typedef struct {
    uv_getaddrinfo_t req;
    pl__sig_t *s;
    void (*next)(pl__sig_t *s, int err);
} resolve_t;

typedef struct {
    outmsg_t *head, **tail;
    size_t n, bytes;
} fifo_t;

struct pl__sig {
    uv_loop_t *loop;
    pl__sig_callbacks_t cb;
    const pl__logger_t *log;
    int mode;
    pl__url_t url; /* server_url, split */
    char *user_token;
    /* the resolved address; re-resolved after a network failure */
    struct sockaddr_storage addr;
    char ip[INET6_ADDRSTRLEN];
    int have_addr;
    resolve_t *resolving;
    /* membership */
    enum phase phase;
    enum link link;
    const char *op; /* "create" or "join" */
    json_t *join_body;
    int join_429s;
    char room_id[65], peer_id[65];
    char *token;
    uint64_t hb_ms;
    /* transports */
    pl__http_req_t *req_join, *req_poll, *req_send, *req_hb, *req_leave, *req_probe;
    pl__ws_ctx_t *wsctx; /* made at the first WebSocket, kept until pl__sig_free */
    pl__ws_t *ws;
    uint64_t link_up_since;
    int ws_fails;
    int ws_retry_due;
    int hb_outstanding;
    int leave_sent_ws;
    unsigned attempt;
    enum retry_action retry_action;
    /* outgoing signals: q waits, inflight went out on the WS and waits for its ack */
    fifo_t q, inflight;
    int64_t next_ref;
    int send_blocked;
    /* user callbacks */
    ev_t *ev_head, **ev_tail;
    int draining, free_requested, freed;
    int reported_state;
    /* timers */
    uv_timer_t t_hb, t_retry, t_send, t_kick, t_leave, t_wsretry;
    int open_timers;
};

static void open_ws(pl__sig_t *s);
static void rest_leave(pl__sig_t *s);
static void start_poll(pl__sig_t *s);
static void poll_once(pl__sig_t *s);
static void pump(pl__sig_t *s);
static void probe(pl__sig_t *s);
static void lost_link(pl__sig_t *s, int err);
static void end_membership(pl__sig_t *s, int err);
static void really_free(pl__sig_t *s);
static void on_kick(uv_timer_t *t);
static void on_retry(uv_timer_t *t);
static void on_send_unblock(uv_timer_t *t);
static void on_hb(uv_timer_t *t);

/* ---- queues ---- */

static void fifo_init(fifo_t *f)
{
    f->head = NULL;
    f->tail = &f->head;
    f->n = f->bytes = 0;
}

static void fifo_push(fifo_t *f, outmsg_t *m)
{
    m->next = NULL;
    *f->tail = m;
    f->tail = &m->next;
    f->n++;
    f->bytes += m->size;
}

static outmsg_t *fifo_pop(fifo_t *f)
{
    outmsg_t *m = f->head;
    if (!m)
        return NULL;
    f->head = m->next;
    if (!f->head)
        f->tail = &f->head;
    f->n--;
    f->bytes -= m->size;
    return m;
}

static void outmsg_free(outmsg_t *m)
{
    json_decref(m->msg);
    free(m);
}

static void fifo_clear(fifo_t *f)
{
    outmsg_t *m;
    while ((m = fifo_pop(f)))
        outmsg_free(m);
}

/* The in-flight messages go back in front of the waiting ones, in their order. */
static void requeue_inflight(pl__sig_t *s)
{
    if (!s->inflight.head)
        return;
    fifo_t merged = s->inflight;
    *merged.tail = s->q.head;
    merged.tail = s->q.head ? s->q.tail : merged.tail;
    merged.n += s->q.n;
    merged.bytes += s->q.bytes;
    s->q = merged;
    fifo_init(&s->inflight);
    for (outmsg_t *m = s->q.head; m; m = m->next)
        json_object_del(m->msg, "ref");
}

/* ---- user callbacks, deferred ---- */

static void push_ev(pl__sig_t *s, enum ev_kind kind, json_t *j, int state, int err, const char *op,
                    const char *detail)
{
    ev_t *e = calloc(1, sizeof *e);
    if (!e) {
        json_decref(j);
        pl__logf(s->log, PL__LOG_ERROR, "out of memory: a signaling event is lost");
        return;
    }
    e->kind = kind;
    e->j = j;
    e->state = state;
    e->err = err;
    e->op = op;
    e->detail = detail ? strndup(detail, MAX_DETAIL) : NULL;
    *s->ev_tail = e;
    s->ev_tail = &e->next;
    if (!uv_is_active((uv_handle_t *)&s->t_kick))
        uv_timer_start(&s->t_kick, on_kick, 0, 0);
}

static void emit_state(pl__sig_t *s, parley_sig_state st, int err)
{
    if ((int)st == s->reported_state && st != PARLEY_SIG_CLOSED)
        return;
    s->reported_state = (int)st;
    push_ev(s, EV_STATE, NULL, (int)st, err, NULL, NULL);
}

static void ev_free(ev_t *e)
{
    json_decref(e->j);
    free(e->detail);
    free(e);
}

static void on_kick(uv_timer_t *t)
{
    pl__sig_t *s = t->data;
    s->draining = 1;
    ev_t *e;
    while (!s->free_requested && (e = s->ev_head)) {
        s->ev_head = e->next;
        if (!s->ev_head)
            s->ev_tail = &s->ev_head;
        void *ud = s->cb.ud;
        switch (e->kind) {
        case EV_JOINED:
            if (s->cb.on_joined)
                s->cb.on_joined(ud, e->j);
            break;
        case EV_ENVELOPE:
            if (s->cb.on_envelope)
                s->cb.on_envelope(ud, e->j);
            break;
        case EV_STATE:
            if (s->cb.on_state)
                s->cb.on_state(ud, (parley_sig_state)e->state, e->err);
            break;
        case EV_ERROR:
            if (s->cb.on_error)
                s->cb.on_error(ud, e->op, e->err, e->detail);
            break;
        case EV_LEFT:
            if (s->cb.on_left)
                s->cb.on_left(ud, e->err);
            break;
        }
        ev_free(e);
    }
    s->draining = 0;
    if (s->free_requested)
        really_free(s);
}

/* ---- helpers ---- */

static void set_token(pl__sig_t *s, const char *tok)
{
    if (!tok || !*tok || strlen(tok) > MAX_TOKEN || strpbrk(tok, "\r\n "))
        return;
    char *t = strdup(tok);
    if (!t)
        return;
    free(s->token);
    s->token = t;
}

static int start_rest(pl__sig_t *s, const char *method, const char *path, const char *bearer,
                      const json_t *body, uint32_t timeout_ms, pl__http_cb cb, pl__http_req_t **out)
{
    char full[PL__URL_MAX_PART * 2 + 128];
    snprintf(full, sizeof full, "%s%s", s->url.base, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text)
        return PARLEY_ENOMEM;
    pl__http_opts_t o = {
        .method = method,
        .host = s->url.host_hdr,
        .path = full,
        .bearer = bearer,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .timeout_ms = timeout_ms,
        .max_response = MAX_RESPONSE,
    };
    int rc = pl__http_start(s->loop, (const struct sockaddr *)&s->addr, &o, cb, s, out);
    free(text);
    return rc;
}

static uint64_t retry_after_ms(int retry_after)
{
    if (retry_after < 1)
        retry_after = 1;
    if (retry_after > RETRY_AFTER_MAX_S)
        retry_after = RETRY_AFTER_MAX_S;
    return (uint64_t)retry_after * 1000u;
}

static void schedule(pl__sig_t *s, enum retry_action a, uint64_t ms)
{
    s->retry_action = a;
    uv_timer_start(&s->t_retry, on_retry, ms, 0);
}

/* ---- name resolution ---- */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *r = req->data;
    pl__sig_t *s = r->s;
    if (s) {
        s->resolving = NULL;
        int err = PARLEY_ENETWORK;
        if (status == 0 && res && res->ai_addrlen <= sizeof s->addr) {
            memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
            if (res->ai_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, s->ip, sizeof s->ip);
            else
                uv_ip4_name((struct sockaddr_in *)res->ai_addr, s->ip, sizeof s->ip);
            s->have_addr = 1;
            err = 0;
        } else {
            pl__logf(s->log, PL__LOG_WARN, "cannot resolve %s: %s", s->url.host,
                     status ? uv_strerror(status) : "no address");
        }
        r->next(s, err);
    }
    uv_freeaddrinfo(res);
    free(r);
}

/* Calls next(s, err) from the loop, after resolving the host if needed. */
static void resolve_then(pl__sig_t *s, void (*next)(pl__sig_t *s, int err))
{
    if (s->have_addr) {
        next(s, 0);
        return;
    }
    resolve_t *r = calloc(1, sizeof *r);
    if (!r) {
        next(s, PARLEY_ENOMEM);
        return;
    }
    r->s = s;
    r->next = next;
    r->req.data = r;
    char port[8];
    snprintf(port, sizeof port, "%d", s->url.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (uv_getaddrinfo(s->loop, &r->req, on_resolved, s->url.host, port, &hints) < 0) {
        free(r);
        next(s, PARLEY_ENETWORK);
        return;
    }
    s->resolving = r;
}

/* ---- create / join ---- */

static void fail_join(pl__sig_t *s, int err, const char *detail)
{
    s->phase = PH_IDLE;
    json_decref(s->join_body);
    s->join_body = NULL;
    push_ev(s, EV_ERROR, NULL, 0, err, s->op, detail && *detail ? detail : NULL);
    emit_state(s, PARLEY_SIG_CLOSED, err);
}

static void start_link(pl__sig_t *s)
{
    if (s->mode == PARLEY_SIGNALING_LONGPOLL)
        start_poll(s);
    else
        open_ws(s);
}

static void on_join_resp(void *ud, const pl__http_resp_t *r)
{
    pl__sig_t *s = ud;
    s->req_join = NULL;
    char detail[MAX_DETAIL];
    if (r->err) {
        s->have_addr = 0;
        fail_join(s, r->err, "the server could not be reached");
        return;
    }
    if (r->status == 429 && s->join_429s++ < JOIN_429_RETRIES && r->retry_after >= 0 &&
        r->retry_after <= 30) {
        schedule(s, RA_JOIN, retry_after_ms(r->retry_after));
        return;
    }
    if (r->status != 200 && r->status != 201) {
        int err = pl__http_error(r, detail, sizeof detail);
        fail_join(s, err, detail);
        return;
    }
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    const char *room = json_string_value(json_object_get(j, "roomId"));
    const char *peer = json_string_value(json_object_get(j, "peerId"));
    const char *tok = json_string_value(json_object_get(j, "signalingToken"));
    json_t *hb = json_object_get(j, "heartbeatIntervalSeconds");
    if (!json_is_object(j) || !pl__is_id(room) || !pl__is_id(peer) || !tok || !*tok ||
        strlen(tok) > MAX_TOKEN || strpbrk(tok, "\r\n ")) {
        json_decref(j);
        fail_join(s, PARLEY_EPROTO, "malformed join answer");
        return;
    }
    snprintf(s->room_id, sizeof s->room_id, "%s", room);
    snprintf(s->peer_id, sizeof s->peer_id, "%s", peer);
    set_token(s, tok);
    json_int_t hbs = json_is_integer(hb) ? json_integer_value(hb) : DEFAULT_HB_S;
    if (hbs < 1 || hbs > 3600)
        hbs = DEFAULT_HB_S;
    s->hb_ms = (uint64_t)hbs * 1000u;
    json_decref(s->join_body);
    s->join_body = NULL;
    s->phase = PH_JOINED;
    s->attempt = 0;
    s->ws_fails = 0;
    push_ev(s, EV_JOINED, j, 0, 0, NULL, NULL);
    uv_timer_start(&s->t_hb, on_hb, s->hb_ms, s->hb_ms);
    start_link(s);
}

static void do_join(pl__sig_t *s, int err)
{
    if (s->phase != PH_JOINING)
        return;
    if (err) {
        fail_join(s, err, "cannot resolve the server's name");
        return;
    }
    int create = strcmp(s->op, "create") == 0;
    int rc = start_rest(s, "POST", create ? "/signaling/create-room" : "/signaling/join-room",
                        s->user_token, s->join_body, REQ_TIMEOUT_MS, on_join_resp, &s->req_join);
    if (rc < 0)
        fail_join(s, rc, NULL);
}

static int begin_join(pl__sig_t *s, const char *op, json_t *body)
{
    if (s->phase != PH_IDLE) {
        json_decref(body);
        return PARLEY_ESTATE;
    }
    s->op = op;
    s->join_body = body;
    s->join_429s = 0;
    s->phase = PH_JOINING;
    s->room_id[0] = s->peer_id[0] = '\0';
    s->reported_state = -1;
    emit_state(s, PARLEY_SIG_CONNECTING, 0);
    resolve_then(s, do_join);
    return 0;
}

int pl__sig_create(pl__sig_t *s, const json_t *body)
{
    if (!s || (body && !json_is_object(body)))
        return PARLEY_EINVAL;
    json_t *b = body ? json_deep_copy(body) : json_object();
    if (!b)
        return PARLEY_ENOMEM;
    return begin_join(s, "create", b);
}

int pl__sig_join(pl__sig_t *s, const char *room_id, const char *broadcaster_name)
{
    if (!s || !room_id == !broadcaster_name)
        return PARLEY_EINVAL;
    if (room_id && !pl__is_id(room_id))
        return PARLEY_EINVAL;
    if (broadcaster_name && (!*broadcaster_name || strlen(broadcaster_name) > 256))
        return PARLEY_EINVAL;
    json_t *b = room_id ? json_pack("{s:s}", "roomId", room_id)
                        : json_pack("{s:s}", "broadcasterName", broadcaster_name);
    if (!b)
        return PARLEY_EINVAL; /* json_pack refuses invalid UTF-8 */
    return begin_join(s, "join", b);
}

/* ---- the link ---- */

static void close_link(pl__sig_t *s)
{
    pl__ws_close(s->ws);
    s->ws = NULL;
    pl__http_cancel(s->req_poll);
    s->req_poll = NULL;
    pl__http_cancel(s->req_send);
    s->req_send = NULL;
    pl__http_cancel(s->req_probe);
    s->req_probe = NULL;
    uv_timer_stop(&s->t_retry);
    uv_timer_stop(&s->t_wsretry);
    s->ws_retry_due = 0;
    s->hb_outstanding = 0;
    requeue_inflight(s);
    s->link = L_NONE;
}

/* Membership over (after our leave, or by itself): back to IDLE. */
static void finish_membership(pl__sig_t *s)
{
    close_link(s);
    pl__http_cancel(s->req_hb);
    s->req_hb = NULL;
    pl__http_cancel(s->req_leave);
    s->req_leave = NULL;
    uv_timer_stop(&s->t_hb);
    uv_timer_stop(&s->t_send);
    uv_timer_stop(&s->t_leave);
    fifo_clear(&s->q);
    fifo_clear(&s->inflight);
    s->send_blocked = 0;
    s->phase = PH_IDLE;
    s->room_id[0] = s->peer_id[0] = '\0';
    free(s->token);
    s->token = NULL;
}

/* Our leave is over. The membership is over from our side whatever the server heard, so
 * the user gets CLOSED(0) and on_left(0) (parley.h: err < 0 only when the membership ended
 * by itself); a server that could not be told drops the member after its TTL. It used to
 * pass the failure (e.g. ENETWORK) to on_left. */
static void leave_done(pl__sig_t *s, int err)
{
    if (err)
        pl__logf(s->log, PL__LOG_WARN,
                 "leave: the server could not be told (%s); it drops the membership after its "
                 "member TTL",
                 parley_strerror(err));
    finish_membership(s);
    emit_state(s, PARLEY_SIG_CLOSED, 0);
    push_ev(s, EV_LEFT, NULL, 0, 0, NULL, NULL);
}

static void end_membership(pl__sig_t *s, int err)
{
    if (s->phase == PH_LEAVING) { /* ended while our leave was on its way: still our leave */
        leave_done(s, 0);
        return;
    }
    if (s->phase != PH_JOINED)
        return;
    pl__logf(s->log, PL__LOG_INFO, "membership ended: %s", parley_strerror(err));
    finish_membership(s);
    emit_state(s, PARLEY_SIG_CLOSED, err);
    push_ev(s, EV_LEFT, NULL, 0, err, NULL, NULL);
}

static void lost_link(pl__sig_t *s, int err)
{
    if (s->phase != PH_JOINED)
        return;
    int was_up = s->link == L_WS || s->link == L_POLL;
    if (was_up && pl__now_ms() - s->link_up_since >= STABLE_MS)
        s->attempt = 0;
    close_link(s);
    s->link = L_WAIT;
    emit_state(s, PARLEY_SIG_RECONNECTING, err);
    uint64_t ms = pl__backoff_ms(s->attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    if (s->attempt < 64)
        s->attempt++;
    pl__logf(s->log, PL__LOG_INFO, "signaling lost (%s); retrying in %llu ms", parley_strerror(err),
             (unsigned long long)ms);
    schedule(s, RA_PROBE, ms);
}

static int membership_gone(int status)
{
    return status == 401 || status == 403 || status == 404;
}

/* A REST answer that loses the link (no answer: back off and probe) or asks us to wait
 * (429: repeat `again` after Retry-After). Returns 1 when it was handled. */
static int link_failure(pl__sig_t *s, const pl__http_resp_t *r, enum retry_action again)
{
    if (r->err) {
        s->have_addr = 0; /* the name may point elsewhere now */
        lost_link(s, r->err);
        return 1;
    }
    if (r->status == 429) {
        schedule(s, again, retry_after_ms(r->retry_after));
        return 1;
    }
    return 0;
}

static void on_probe_resp(void *ud, const pl__http_resp_t *r)
{
    pl__sig_t *s = ud;
    s->req_probe = NULL;
    if (link_failure(s, r, RA_PROBE))
        return;
    if (membership_gone(r->status)) {
        char detail[MAX_DETAIL];
        int err = pl__http_error(r, detail, sizeof detail);
        pl__logf(s->log, PL__LOG_WARN, "the membership is gone (%s: %s)", parley_strerror(err),
                 detail);
        end_membership(s, PARLEY_ESRV_EXPIRED);
        return;
    }
    if (r->status != 200) {
        lost_link(s, pl__http_error(r, NULL, 0));
        return;
    }
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    set_token(s, json_string_value(json_object_get(j, "signalingToken")));
    json_decref(j);
    if (s->mode == PARLEY_SIGNALING_LONGPOLL ||
        (s->mode == PARLEY_SIGNALING_AUTO && s->ws_fails >= WS_FALLBACK_FAILS))
        start_poll(s);
    else
        open_ws(s);
}

static void probe_resolved(pl__sig_t *s, int err)
{
    if (s->phase != PH_JOINED || s->link != L_PROBE)
        return;
    if (err) {
        lost_link(s, err);
        return;
    }
    json_t *body = json_pack("{s:s}", "roomId", s->room_id);
    int rc = start_rest(s, "POST", "/signaling/heartbeat", s->token, body, REQ_TIMEOUT_MS,
                        on_probe_resp, &s->req_probe);
    json_decref(body);
    if (rc < 0)
        lost_link(s, rc);
}

static void probe(pl__sig_t *s)
{
    s->link = L_PROBE;
    resolve_then(s, probe_resolved);
}

static void on_retry(uv_timer_t *t)
{
    pl__sig_t *s = t->data;
    enum retry_action a = s->retry_action;
    s->retry_action = RA_NONE;
    if (a == RA_JOIN && s->phase == PH_JOINING)
        do_join(s, 0);
    else if (a == RA_PROBE && s->phase == PH_JOINED)
        probe(s);
    else if (a == RA_POLL && s->phase == PH_JOINED && s->link == L_POLL)
        poll_once(s);
}

/* ---- envelopes ---- */

static void handle_envelope(pl__sig_t *s, json_t *env)
{
    const char *type = json_string_value(json_object_get(env, "type"));
    static const char *const known[] = {"offer",       "answer",    "candidate",  "offer-request",
                                        "peer-joined", "peer-left", "room-closed"};
    if (!type)
        return;
    if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(env, "code"));
        push_ev(s, EV_ERROR, NULL, 0, pl__err_from_code(code), "signal",
                json_string_value(json_object_get(env, "message")));
        return;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(type, known[i]) != 0)
            continue;
        push_ev(s, EV_ENVELOPE, json_incref(env), 0, 0, NULL, NULL);
        if (i == 6) /* room-closed: the membership went with the room */
            end_membership(s, PARLEY_ECLOSED);
        return;
    }
    pl__logf(s->log, PL__LOG_DEBUG, "ignoring an envelope of unknown type \"%.32s\"", type);
}

/* ---- WebSocket ---- */

static outmsg_t *inflight_take(pl__sig_t *s, json_int_t ref)
{
    outmsg_t **pp = &s->inflight.head, *prev = NULL;
    for (; *pp; prev = *pp, pp = &(*pp)->next) {
        outmsg_t *m = *pp;
        if (json_integer_value(json_object_get(m->msg, "ref")) != ref)
            continue;
        *pp = m->next;
        if (s->inflight.tail == &m->next)
            s->inflight.tail = prev ? &prev->next : &s->inflight.head;
        s->inflight.n--;
        s->inflight.bytes -= m->size;
        return m;
    }
    return NULL;
}

/* "too many requests; retry in 12 s" → 12000 ms; 1 s when the text says nothing usable. */
static uint64_t ws_retry_ms(const char *msg)
{
    const char *p = msg ? strstr(msg, "retry in ") : NULL;
    return retry_after_ms(p ? atoi(p + 9) : 1);
}

static void on_ws_error_msg(pl__sig_t *s, json_t *m)
{
    const char *code = json_string_value(json_object_get(m, "code"));
    const char *msg = json_string_value(json_object_get(m, "message"));
    int err = pl__err_from_code(code);
    json_t *ref = json_object_get(m, "ref");
    if (json_is_string(ref) && strcmp(json_string_value(ref), "hb") == 0) {
        s->hb_outstanding = 0;
        if (err == PARLEY_ESRV_FORBIDDEN || err == PARLEY_ESRV_NOT_FOUND)
            end_membership(s, PARLEY_ESRV_EXPIRED);
        return;
    }
    outmsg_t *om = json_is_integer(ref) ? inflight_take(s, json_integer_value(ref)) : NULL;
    if (om && err == PARLEY_ESRV_RATE_LIMITED) {
        /* Send it again once the bucket refills, ahead of everything still waiting. */
        json_object_del(om->msg, "ref");
        om->next = s->q.head;
        s->q.head = om;
        if (s->q.tail == &s->q.head)
            s->q.tail = &om->next;
        s->q.n++;
        s->q.bytes += om->size;
        s->send_blocked = 1;
        uv_timer_start(&s->t_send, on_send_unblock, ws_retry_ms(msg), 0);
        return;
    }
    if (om)
        outmsg_free(om);
    push_ev(s, EV_ERROR, NULL, 0, err, "signal", msg);
    if (err == PARLEY_ESRV_FORBIDDEN)
        end_membership(s, PARLEY_ESRV_EXPIRED);
}

static void on_ws_message(void *ud, const char *text, size_t len)
{
    pl__sig_t *s = ud;
    json_t *m = json_loadb(text, len, 0, NULL);
    if (!json_is_object(m)) {
        pl__logf(s->log, PL__LOG_WARN, "signaling message is not a JSON object");
        json_decref(m);
        return;
    }
    const char *type = json_string_value(json_object_get(m, "type"));
    if (json_object_get(m, "from") && json_object_get(m, "ts")) {
        handle_envelope(s, m); /* only envelopes carry from and ts (docs/api.md 6.2) */
    } else if (type && strcmp(type, "ack") == 0) {
        json_t *ref = json_object_get(m, "ref");
        outmsg_t *om = json_is_integer(ref) ? inflight_take(s, json_integer_value(ref)) : NULL;
        if (om)
            outmsg_free(om);
        pump(s);
    } else if (type && strcmp(type, "heartbeat") == 0) {
        s->hb_outstanding = 0;
        set_token(s, json_string_value(json_object_get(m, "signalingToken")));
    } else if (type && strcmp(type, "error") == 0) {
        on_ws_error_msg(s, m);
        pump(s);
    }
    json_decref(m);
}

static void on_ws_open(void *ud)
{
    pl__sig_t *s = ud;
    s->link = L_WS;
    s->ws_fails = 0;
    s->link_up_since = pl__now_ms();
    s->hb_outstanding = 0;
    emit_state(s, PARLEY_SIG_WEBSOCKET, 0);
    pump(s);
}

static void on_ws_close(void *ud, int code, int http_status)
{
    pl__sig_t *s = ud;
    int was_connecting = s->link == L_WS_CONNECTING;
    pl__ws_close(s->ws); /* deferred inside: safe in this callback */
    s->ws = NULL;
    pl__logf(s->log, PL__LOG_INFO, "websocket closed: code %d, HTTP %d", code, http_status);
    if (s->phase == PH_LEAVING) {
        if (s->leave_sent_ws && code == 1000) {
            uv_timer_stop(&s->t_leave);
            leave_done(s, 0);
        } else if (!s->req_leave) {
            uv_timer_stop(&s->t_leave);
            rest_leave(s); /* the socket went before the leave was confirmed */
        }
        return;
    }
    if (s->phase != PH_JOINED)
        return;
    s->link = L_NONE;
    switch (code) {
    case 4001:
        end_membership(s, PARLEY_ESRV_REPLACED);
        return;
    case 4002:
    case 1008:
        end_membership(s, PARLEY_ESRV_EXPIRED);
        return;
    case 1000:
        end_membership(s, PARLEY_ECLOSED);
        return;
    default:
        break;
    }
    if (was_connecting) {
        s->ws_fails++;
        if (s->mode == PARLEY_SIGNALING_AUTO && (http_status == 400 || http_status == 426))
            s->ws_fails = WS_FALLBACK_FAILS; /* this server (or a proxy) will not upgrade */
    }
    lost_link(s, http_status ? pl__err_from_status(http_status) : PARLEY_ENETWORK);
}

static void open_ws(pl__sig_t *s)
{
    char path[PL__URL_MAX_PART + 32];
    snprintf(path, sizeof path, "%s/signaling/ws", s->url.base);
    pl__ws_opts_t o = {
        .ip = s->ip,
        .port = s->url.port,
        .host = s->url.host_hdr,
        .path = path,
        .bearer = s->token,
        .max_message = MAX_WS_MESSAGE,
        .max_queue = MAX_QUEUE_BYTES + 65536,
    };
    pl__ws_callbacks_t cb = {s, on_ws_open, on_ws_message, on_ws_close};
    s->link = L_WS_CONNECTING;
    int rc = s->wsctx ? 0 : pl__ws_ctx_new(s->loop, s->log, &s->wsctx);
    if (rc == 0)
        rc = pl__ws_open(s->wsctx, &o, &cb, &s->ws);
    if (rc < 0) {
        s->ws = NULL;
        s->ws_fails++;
        lost_link(s, rc);
    }
}

/* ---- long-polls ---- */

static void on_wsretry(uv_timer_t *t)
{
    pl__sig_t *s = t->data;
    s->ws_retry_due = 1; /* taken up when the poll in flight has returned */
}

static void on_poll_resp(void *ud, const pl__http_resp_t *r)
{
    pl__sig_t *s = ud;
    s->req_poll = NULL;
    if (link_failure(s, r, RA_POLL))
        return;
    if (membership_gone(r->status)) {
        end_membership(s, PARLEY_ESRV_EXPIRED);
        return;
    }
    if (r->status != 200) {
        lost_link(s, pl__http_error(r, NULL, 0));
        return;
    }
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    json_t *events = json_object_get(j, "events");
    if (!json_is_array(events)) {
        json_decref(j);
        lost_link(s, PARLEY_EPROTO);
        return;
    }
    size_t i;
    json_t *env;
    json_array_foreach(events, i, env)
    {
        if (s->phase != PH_JOINED)
            break;
        if (json_is_object(env))
            handle_envelope(s, env);
    }
    json_decref(j);
    if (s->phase != PH_JOINED || s->link != L_POLL)
        return;
    s->attempt = 0;
    if (s->ws_retry_due) {
        s->ws_retry_due = 0;
        s->ws_fails = WS_FALLBACK_FAILS - 1; /* one more failure and we are back here */
        open_ws(s);
        return;
    }
    poll_once(s);
}

static void poll_once(pl__sig_t *s)
{
    char path[128];
    snprintf(path, sizeof path, "/signaling/events/%s?wait=%d", s->room_id, POLL_WAIT_S);
    int rc =
        start_rest(s, "GET", path, s->token, NULL, POLL_TIMEOUT_MS, on_poll_resp, &s->req_poll);
    if (rc < 0)
        lost_link(s, rc);
}

static void start_poll(pl__sig_t *s)
{
    s->link = L_POLL;
    s->link_up_since = pl__now_ms();
    emit_state(s, PARLEY_SIG_LONGPOLL, 0);
    if (s->mode == PARLEY_SIGNALING_AUTO)
        uv_timer_start(&s->t_wsretry, on_wsretry, WS_RETRY_MS, 0);
    poll_once(s);
    pump(s);
}

/* ---- sending ---- */

static void on_send_resp(void *ud, const pl__http_resp_t *r)
{
    pl__sig_t *s = ud;
    s->req_send = NULL;
    if (r->err) {
        s->have_addr = 0;
        lost_link(s, r->err); /* the message stays first in the queue */
        return;
    }
    if (r->status == 429) {
        s->send_blocked = 1;
        uv_timer_start(&s->t_send, on_send_unblock, retry_after_ms(r->retry_after), 0);
        return;
    }
    if (r->status == 401 || r->status == 403) {
        end_membership(s, PARLEY_ESRV_EXPIRED);
        return;
    }
    outmsg_t *m = fifo_pop(&s->q);
    if (r->status != 202 && r->status != 200) {
        char detail[MAX_DETAIL];
        int err = pl__http_error(r, detail, sizeof detail);
        push_ev(s, EV_ERROR, NULL, 0, err, "signal", detail);
    }
    if (m)
        outmsg_free(m);
    pump(s);
}

static void pump_rest(pl__sig_t *s)
{
    outmsg_t *m = s->q.head;
    if (!m || s->req_send)
        return;
    const char *type = json_string_value(json_object_get(m->msg, "type"));
    char path[64];
    snprintf(path, sizeof path, "/signaling/%s", type);
    json_t *body = json_deep_copy(m->msg);
    if (!body || json_object_set_new(body, "roomId", json_string(s->room_id)) < 0) {
        json_decref(body);
        return;
    }
    json_object_del(body, "type");
    int rc =
        start_rest(s, "POST", path, s->token, body, REQ_TIMEOUT_MS, on_send_resp, &s->req_send);
    json_decref(body);
    if (rc < 0)
        lost_link(s, rc);
}

static void pump_ws(pl__sig_t *s)
{
    while (s->q.head && s->inflight.n < MAX_INFLIGHT) {
        outmsg_t *m = s->q.head;
        json_object_set_new(m->msg, "ref", json_integer(++s->next_ref));
        char *text = json_dumps(m->msg, JSON_COMPACT);
        int rc = text ? pl__ws_send(s->ws, text, strlen(text)) : PARLEY_ENOMEM;
        free(text);
        if (rc < 0) {
            json_object_del(m->msg, "ref");
            return; /* EAGAIN: the ack of an earlier one pumps again */
        }
        fifo_push(&s->inflight, fifo_pop(&s->q));
    }
}

static void pump(pl__sig_t *s)
{
    if (s->phase != PH_JOINED || s->send_blocked)
        return;
    if (s->link == L_WS && s->ws)
        pump_ws(s);
    else if (s->link == L_POLL)
        pump_rest(s);
}

static void on_send_unblock(uv_timer_t *t)
{
    pl__sig_t *s = t->data;
    s->send_blocked = 0;
    pump(s);
}

int pl__sig_send(pl__sig_t *s, const char *type, const char *to, const json_t *fields)
{
    if (!s || !type || !pl__is_id(to) || (fields && !json_is_object(fields)))
        return PARLEY_EINVAL;
    if (strcmp(type, "offer") != 0 && strcmp(type, "answer") != 0 && strcmp(type, "candidate") != 0)
        return PARLEY_EINVAL;
    if (s->phase != PH_JOINED)
        return PARLEY_ESTATE;
    if (s->q.n + s->inflight.n >= MAX_QUEUE_MSGS)
        return PARLEY_EAGAIN;
    json_t *msg = fields ? json_deep_copy(fields) : json_object();
    if (!msg)
        return PARLEY_ENOMEM;
    json_object_del(msg, "ref");
    if (json_object_set_new(msg, "type", json_string(type)) < 0 ||
        json_object_set_new(msg, "to", json_string(to)) < 0) {
        json_decref(msg);
        return PARLEY_ENOMEM;
    }
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t size = text ? strlen(text) : 0;
    free(text);
    if (!size || size > 65536 - 128 || s->q.bytes + s->inflight.bytes + size > MAX_QUEUE_BYTES) {
        json_decref(msg);
        /* parleyd refuses messages over its body limit (65536): fail here, not later. */
        return size > 65536 - 128 ? PARLEY_EMSGSIZE : (size ? PARLEY_EAGAIN : PARLEY_ENOMEM);
    }
    outmsg_t *m = calloc(1, sizeof *m);
    if (!m) {
        json_decref(msg);
        return PARLEY_ENOMEM;
    }
    m->msg = msg;
    m->size = size;
    fifo_push(&s->q, m);
    pump(s);
    return 0;
}

/* ---- heartbeats ---- */

static void on_hb_resp(void *ud, const pl__http_resp_t *r)
{
    pl__sig_t *s = ud;
    s->req_hb = NULL;
    if (r->err)
        return; /* the poll in flight notices a dead server */
    if (membership_gone(r->status)) {
        end_membership(s, PARLEY_ESRV_EXPIRED);
        return;
    }
    if (r->status == 200) {
        json_t *j = json_loadb(r->body, r->len, 0, NULL);
        set_token(s, json_string_value(json_object_get(j, "signalingToken")));
        json_decref(j);
    }
}

static void on_hb(uv_timer_t *t)
{
    pl__sig_t *s = t->data;
    if (s->phase != PH_JOINED)
        return;
    if (s->link == L_WS && s->ws) {
        if (s->hb_outstanding) {
            /* A whole interval without an answer: the connection is dead or stuck. */
            pl__logf(s->log, PL__LOG_WARN, "no heartbeat answer on the websocket");
            lost_link(s, PARLEY_ETIMEDOUT);
            return;
        }
        static const char hb[] = "{\"type\":\"heartbeat\",\"ref\":\"hb\"}";
        if (pl__ws_send(s->ws, hb, sizeof hb - 1) == 0)
            s->hb_outstanding = 1;
    } else if (s->link == L_POLL && !s->req_hb) {
        json_t *body = json_pack("{s:s}", "roomId", s->room_id);
        start_rest(s, "POST", "/signaling/heartbeat", s->token, body, REQ_TIMEOUT_MS, on_hb_resp,
                   &s->req_hb);
        json_decref(body);
    }
}

/* ---- leave ---- */

static void on_leave_resp(void *ud, const pl__http_resp_t *r)
{
    pl__sig_t *s = ud;
    s->req_leave = NULL;
    /* 403 and 404: not a member (any more): what a leave wants. */
    int err = 0;
    if (r->err)
        err = r->err;
    else if (r->status != 204 && r->status != 200 && r->status != 403 && r->status != 404)
        err = pl__http_error(r, NULL, 0);
    leave_done(s, err);
}

static void rest_leave(pl__sig_t *s)
{
    close_link(s);
    json_t *body = json_pack("{s:s}", "roomId", s->room_id);
    int rc = s->have_addr ? start_rest(s, "POST", "/signaling/leave-room", s->token, body,
                                       REQ_TIMEOUT_MS, on_leave_resp, &s->req_leave)
                          : PARLEY_ENETWORK;
    json_decref(body);
    if (rc < 0)
        leave_done(s, rc);
}

static void on_leave_timeout(uv_timer_t *t)
{
    pl__sig_t *s = t->data;
    if (s->phase == PH_LEAVING && !s->req_leave)
        rest_leave(s);
}

int pl__sig_leave(pl__sig_t *s)
{
    if (!s)
        return PARLEY_EINVAL;
    switch (s->phase) {
    case PH_IDLE:
        return PARLEY_ESTATE;
    case PH_LEAVING:
        return 0;
    case PH_JOINING:
        /* The join may or may not have happened on the server; an unconfirmed membership
         * expires there by itself. */
        if (s->resolving) {
            s->resolving->s = NULL;
            uv_cancel((uv_req_t *)&s->resolving->req);
            s->resolving = NULL;
        }
        pl__http_cancel(s->req_join);
        s->req_join = NULL;
        uv_timer_stop(&s->t_retry);
        json_decref(s->join_body);
        s->join_body = NULL;
        s->phase = PH_IDLE;
        emit_state(s, PARLEY_SIG_CLOSED, 0);
        push_ev(s, EV_LEFT, NULL, 0, 0, NULL, NULL);
        return 0;
    case PH_JOINED:
        break;
    }
    s->phase = PH_LEAVING;
    /* Signals still waiting are for peers we are leaving. */
    fifo_clear(&s->q);
    fifo_clear(&s->inflight);
    s->leave_sent_ws = 0;
    static const char leave[] = "{\"type\":\"leave\"}";
    if (s->link == L_WS && s->ws && pl__ws_send(s->ws, leave, sizeof leave - 1) == 0) {
        s->leave_sent_ws = 1;
        uv_timer_start(&s->t_leave, on_leave_timeout, LEAVE_TIMEOUT_MS, 0);
    } else {
        rest_leave(s);
    }
    return 0;
}

const char *pl__sig_peer_id(const pl__sig_t *s)
{
    return s && (s->phase == PH_JOINED || s->phase == PH_LEAVING) && s->peer_id[0] ? s->peer_id
                                                                                   : NULL;
}

/* ---- lifetime ---- */

static void on_timer_closed(uv_handle_t *h)
{
    pl__sig_t *s = h->data;
    if (--s->open_timers == 0)
        free(s);
}

static void init_timer(pl__sig_t *s, uv_timer_t *t)
{
    uv_timer_init(s->loop, t);
    t->data = s;
    s->open_timers++;
}

int pl__sig_new(uv_loop_t *loop, const pl__sig_config_t *cfg, const pl__sig_callbacks_t *cb,
                pl__sig_t **out)
{
    if (!loop || !cfg || !cb || !out)
        return PARLEY_EINVAL;
    if (cfg->mode != PARLEY_SIGNALING_AUTO && cfg->mode != PARLEY_SIGNALING_WS &&
        cfg->mode != PARLEY_SIGNALING_LONGPOLL)
        return PARLEY_EINVAL;
    pl__sig_t *s = calloc(1, sizeof *s);
    if (!s)
        return PARLEY_ENOMEM;
    s->loop = loop;
    s->cb = *cb;
    s->log = cfg->log;
    s->mode = cfg->mode;
    s->reported_state = -1;
    s->ev_tail = &s->ev_head;
    fifo_init(&s->q);
    fifo_init(&s->inflight);
    int rc = pl__url_parse(cfg->server_url, &s->url);
    if (rc == 0 && cfg->user_token) {
        s->user_token = pl__strndup_bounded(cfg->user_token, 16384);
        if (!s->user_token || strpbrk(s->user_token, "\r\n "))
            rc = PARLEY_EINVAL;
    }
    if (rc < 0) {
        pl__url_free(&s->url);
        free(s->user_token);
        free(s);
        return rc;
    }
    init_timer(s, &s->t_hb);
    init_timer(s, &s->t_retry);
    init_timer(s, &s->t_send);
    init_timer(s, &s->t_kick);
    init_timer(s, &s->t_leave);
    init_timer(s, &s->t_wsretry);
    *out = s;
    return 0;
}

static void really_free(pl__sig_t *s)
{
    if (s->freed)
        return;
    s->freed = 1;
    if (s->resolving) {
        s->resolving->s = NULL;
        uv_cancel((uv_req_t *)&s->resolving->req);
    }
    pl__http_cancel(s->req_join);
    pl__http_cancel(s->req_hb);
    pl__http_cancel(s->req_leave);
    close_link(s);
    pl__ws_ctx_free(s->wsctx);
    s->wsctx = NULL;
    fifo_clear(&s->q);
    fifo_clear(&s->inflight);
    for (ev_t *e = s->ev_head, *n; e; e = n) {
        n = e->next;
        ev_free(e);
    }
    json_decref(s->join_body);
    pl__url_free(&s->url);
    free(s->user_token);
    free(s->token);
    uv_timer_t *timers[] = {&s->t_hb,   &s->t_retry, &s->t_send,
                            &s->t_kick, &s->t_leave, &s->t_wsretry};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        uv_close((uv_handle_t *)timers[i], on_timer_closed);
}

void pl__sig_free(pl__sig_t *s)
{
    if (!s)
        return;
    if (s->draining) {
        s->free_requested = 1; /* on_kick frees it when the callback returns */
        return;
    }
    really_free(s);
}
