/* WebSocket sessions on libwebsockets, adopted from parleyd's HTTP server.
 *
 * Threading: everything runs on parleyd's one libuv loop; libwebsockets is created with
 * LWS_SERVER_OPTION_LIBUV and our loop as its foreign loop, so its callbacks are ordinary loop
 * callbacks. Store callbacks and client replies may arrive after a session is gone, so they
 * carry the session's id and look it up, never a raw pointer.
 *
 * Flow control: envelopes are taken from the peer's inbox only while the session's outgoing
 * queue has room. When it is full the envelopes wait in the store (whose inbox limits push
 * back on senders with 429) and the session notes when it stalled; a session stalled longer
 * than PARLEY_WS_STALL_TIMEOUT is closed with 1013. So a slow consumer costs at most its
 * queue, whatever the senders do. */
#include "ws/ws.h"
#include "common/json.h"

#include "common/error.h"
#include "common/log.h"
#include "common/map.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Receive buffer per socket. Messages larger than this arrive in pieces and are joined;
 * 1 KiB keeps an idle socket near 2.4 KiB of heap (docs/decisions.md). */
#define RX_BUFFER 1024
/* Longest upgrade request we rebuild for libwebsockets, and early bytes we pass on. */
#define HANDSHAKE_MAX  1024
#define EARLY_MAX      1024
#define REF_MAX        64
#define POLL_BATCH     64
#define CLOSE_REPLACED 4001
#define CLOSE_TIMEOUT  4002
#define CLOSE_GRACE_S  3
#define TICK_MS        1000 /* pings, liveness, token expiry and refreshes are checked once a tick */
/* libwebsockets' write type for a close frame; the public header keeps only the number. */
#define LWS_WRITE_CLOSE_ 4
/* Largest batch of queued messages framed into one write (see write_queued). */
#define WRITE_BATCH 32768

typedef struct frame frame_t;
struct frame {
    frame_t *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the message */
};

typedef struct session session_t;

/* A timed-out member's leave, answered maybe after its session is gone. */
typedef struct {
    pl_app_t *app;
    pl_sigtoken_t sig;
} dropped_t;

/* The one channel of this process. Store callbacks that may outlive a session carry only
 * its id (in the user pointer itself, so a pop costs no allocation) and look it up here. */
static pl_ws_t *ws_instance;
struct session {
    pl_hub_sink_t sink; /* first: the hub hands us back this pointer */
    pl_ws_t *ws;
    uint64_t id;
    struct lws *wsi;
    session_t *prev, *next; /* all sessions, for the tick */
    pl_sigtoken_t sig;      /* identity, checked before the upgrade */
    char client_ip[64];
    /* Outgoing queue. */
    frame_t *head, **tail;
    size_t queued_bytes, queued_msgs;
    /* Incoming message being joined from fragments. */
    pl_buf_t rx;
    bool rx_binary;
    /* State. */
    bool established;
    bool popping, dirty;
    bool ping_due;
    bool close_sent;
    bool killed;
    bool rx_paused;
    bool counted; /* against PARLEY_MAX_CONNECTIONS */
    bool flush_queued;
    bool peer_closed;                   /* the client's close frame came: write nothing more */
    session_t *flush_prev, *flush_next; /* sessions with messages to write (ws->flush) */
    int close_code;                     /* >0: close with this code at the next writable callback */
    const char *close_why;
    int64_t last_seen_ms, last_refresh_ms, next_ping_ms, stalled_since_ms, close_at_ms;
};

struct pl_ws {
    pl_app_t *app;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    uv_timer_t tick;
    pl_map_t pending;  /* "sid" → session, between take-over and ESTABLISHED */
    pl_map_t sessions; /* id → session, for callbacks that outlive a session */
    session_t *all;
    uint64_t next_id;
    pl_ws_stats_t stats;
    bool closing;
    /* Sessions whose queue got messages this turn of the loop: written once the turn's
     * events are handled, so one socket write carries all a turn produced for it. */
    session_t *flush;
    uv_idle_t flush_idle;
    /* Scratch for write_queued: one batch of framed messages, written at once. */
    unsigned char batch[LWS_PRE + WRITE_BATCH];
};

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
static void on_tick(uv_timer_t *t);
static void on_log(int level, const char *line);
static void session_wake(pl_hub_sink_t *sink);
static void session_end(pl_hub_sink_t *sink, int code, const char *why, const char *last);
static bool session_take(pl_hub_sink_t *sink, const pl_envelope_t *env);
static void session_close(session_t *s, int code, const char *why);
static void session_free(session_t *s);
static void session_send_json(session_t *s, json_t *msg);
static bool session_enqueue(session_t *s, const char *text, size_t len);
static int write_queued(pl_ws_t *ws, session_t *s);
static void after_write(session_t *s);
static void flush_later(session_t *s);
static void flush_unlink(session_t *s);
static void on_flush(uv_idle_t *idle);
static bool queue_full(const session_t *s);
static void on_popped(void *ud, int status, const pl_envelope_t *envs, size_t n);
static void handle_message(session_t *s);
static void ws_reply(pl_call_t *call, int status, json_t *body);
static void count_close(pl_ws_t *ws, int code);
static session_t *session_by_id(pl_ws_t *ws, uint64_t id);
static void upgrade_step(pl_call_t *call);
static void on_upgrade_member(void *ud, int status, const pl_room_t *room,
                              const pl_member_t *member);
static void on_refreshed(void *ud, int status, const pl_room_t *room, const pl_member_t *member);
static void on_dropped(void *ud, int status, bool room_removed, const pl_member_t *remaining,
                       size_t n);

static const lws_retry_bo_t no_validity = {0};

static struct lws_protocols protocols[] = {
    /* The first protocol is used when the client asks for none. */
    {"parley.v1", on_lws, sizeof(session_t *), RX_BUFFER, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- context ---- */

int pl_ws_new(pl_app_t *app, pl_ws_t **out)
{
    pl_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws)
        return PL_ENOMEM;
    ws->app = app;
    pl_map_init(&ws->pending);
    pl_map_init(&ws->sessions);
    /* Send whole messages (SDP runs to tens of KiB) rather than rx-buffer-sized pieces. */
    protocols[0].tx_packet_size = app->cfg->max_body + 16;

    lws_set_log_level(LLL_ERR | LLL_WARN, on_log);
    void *foreign[1] = {app->loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = foreign;
    info.pcontext = &ws->ctx;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.vhost_name = "parley";
    /* Pings and liveness are ours (one tick for all sockets); libwebsockets' own validity
     * timers cost a sorted insert per socket. */
    info.retry_and_idle_policy = &no_validity;
    info.user = ws;
    ws->ctx = lws_create_context(&info);
    if (!ws->ctx) {
        free(ws);
        return PL_ECONFIG;
    }
    ws->vhost = lws_create_vhost(ws->ctx, &info);
    if (!ws->vhost) {
        lws_context_destroy(ws->ctx);
        free(ws);
        return PL_ECONFIG;
    }
    uv_timer_init(app->loop, &ws->tick);
    ws->tick.data = ws;
    uv_idle_init(app->loop, &ws->flush_idle);
    ws->flush_idle.data = ws;
    uv_timer_start(&ws->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&ws->tick);
    ws_instance = ws;
    *out = ws;
    return 0;
}

/* libwebsockets logs every adoption at error level ("calling service"); real errors and
 * warnings go to our log. */
static void on_log(int level, const char *line)
{
    if (strstr(line, "calling service"))
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    if (level & LLL_ERR)
        pl_log_warn("libwebsockets", PL_LS("line", msg));
    else
        pl_log_debug("libwebsockets", PL_LS("line", msg));
}

void pl_ws_close_all(pl_ws_t *ws)
{
    ws->closing = true;
    for (session_t *s = ws->all; s; s = s->next)
        session_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
}

size_t pl_ws_open_sockets(const pl_ws_t *ws)
{
    return (size_t)ws->stats.open + pl_map_size(&ws->pending);
}

void pl_ws_get_stats(const pl_ws_t *ws, pl_ws_stats_t *out)
{
    *out = ws->stats;
}

void pl_ws_destroy_begin(pl_ws_t *ws)
{
    if (!ws)
        return;
    ws->closing = true;
    uv_timer_stop(&ws->tick);
    uv_close((uv_handle_t *)&ws->tick, NULL);
    uv_idle_stop(&ws->flush_idle);
    uv_close((uv_handle_t *)&ws->flush_idle, NULL);
    while (ws->flush)
        flush_unlink(ws->flush);
    if (ws->ctx)
        lws_context_destroy(ws->ctx);
}

void pl_ws_destroy_end(pl_ws_t *ws)
{
    if (!ws)
        return;
    /* The second call completes what the first started once the loop closed lws's
     * handles; libwebsockets clears ws->ctx (info.pcontext) when it is done. */
    if (ws->ctx)
        lws_context_destroy(ws->ctx);
    /* Sessions that never reached ESTABLISHED. */
    pl_map_iter_t it;
    void *val;
    pl_map_iter_init(&it, &ws->pending);
    while (pl_map_iter_next(&it, NULL, NULL, &val))
        session_free(val);
    pl_map_free(&ws->pending);
    pl_map_free(&ws->sessions);
    if (ws_instance == ws)
        ws_instance = NULL;
    free(ws);
}

/* ---- the upgrade (an HTTP handler) ---- */

static bool header_has_token(pl_str_t v, const char *token)
{
    size_t n = strlen(token);
    const char *p = v.ptr, *end = v.ptr + v.len;
    while (p && p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
            p++;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == n && strncasecmp(p, token, n) == 0)
            return true;
        p = q;
    }
    return false;
}

void api_ws_upgrade(pl_call_t *call)
{
    pl_app_t *app = call->app;
    pl_http_req_t *req = call->req;
    if (!pl_str_eq(req->method_str, "GET")) {
        pl_http_add_header(req, "Allow", "GET");
        api_error(call, 405, "method_not_allowed", "the WebSocket upgrade is a GET");
        return;
    }
    if (!app->ws) {
        api_error(call, 503, "store_unavailable", "the WebSocket channel is not running");
        return;
    }
    /* The token: ?token= (browsers cannot set headers on a WebSocket) or a bearer header. */
    char *tok = malloc(PL_TOKEN_MAX + 1);
    if (!tok) {
        api_error(call, 503, "overloaded", "out of memory");
        return;
    }
    int rc = PL_EAUTH;
    bool given = api_query(call, "token", tok, PL_TOKEN_MAX + 1) && tok[0];
    if (given)
        rc = pl_auth_verify_signaling(app->auth, tok, strlen(tok), call->now_ms, &call->sig);
    free(tok);
    if (rc && pl_http_header(req, "Authorization").ptr) {
        rc = api_auth_signaling(call, NULL) ? 0 : 1;
        if (rc)
            return; /* answered */
    }
    if (rc) {
        /* A token was given and refused: say so, as for a bad bearer token. */
        call->token_given = given;
        api_error(call, 401, "unauthorized", "%s",
                  rc == PL_EEXPIRED ? "signaling token expired"
                                    : "a signaling token is required (?token= or bearer)");
        return;
    }
    memcpy(call->room_id, call->sig.room_id, PL_ID_SIZE);

    pl_str_t upgrade = pl_http_header(req, "Upgrade");
    pl_str_t connection = pl_http_header(req, "Connection");
    pl_str_t key = pl_http_header(req, "Sec-WebSocket-Key");
    pl_str_t version = pl_http_header(req, "Sec-WebSocket-Version");
    if (!upgrade.ptr || !header_has_token(upgrade, "websocket") || !connection.ptr ||
        !header_has_token(connection, "upgrade")) {
        pl_http_add_header(req, "Upgrade", "websocket");
        api_error(call, 426, "upgrade_required", "this endpoint speaks WebSocket only");
        return;
    }
    if (!version.ptr || !pl_str_eq(version, "13")) {
        pl_http_add_header(req, "Sec-WebSocket-Version", "13");
        api_error(call, 426, "upgrade_required", "Sec-WebSocket-Version 13 is required");
        return;
    }
    /* The key is 16 bytes in base64: 22 characters and "==". */
    bool key_ok = key.ptr && key.len == 24 && key.ptr[22] == '=' && key.ptr[23] == '=';
    for (size_t i = 0; key_ok && i < 22; i++) {
        char c = key.ptr[i];
        key_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
    }
    if (!key_ok) {
        api_error(call, 400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64");
        return;
    }
    api_rate(call, "poll", call->sig.peer_id, &app->cfg->rl_poll, upgrade_step);
}

static void upgrade_step(pl_call_t *call)
{
    int rc = call->app->store->get_member(call->app->store, call->room_id, call->sig.peer_id,
                                          on_upgrade_member, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_upgrade_member(void *ud, int status, const pl_room_t *room,
                              const pl_member_t *member)
{
    pl_call_t *call = ud;
    pl_app_t *app = call->app;
    pl_ws_t *ws = app->ws;
    pl_http_req_t *req = call->req;
    (void)room;
    (void)member;
    if (status) {
        api_store_error(call, status);
        return;
    }
    session_t *s = calloc(1, sizeof *s);
    if (!s) {
        api_error(call, 503, "overloaded", "out of memory");
        return;
    }
    s->ws = ws;
    s->id = ++ws->next_id;
    s->sig = call->sig;
    s->tail = &s->head;
    s->sink.wake = session_wake;
    s->sink.end = session_end;
    s->sink.take = session_take;
    pl_buf_init(&s->rx);
    snprintf(s->client_ip, sizeof s->client_ip, "%s", call->client_ip);

    /* libwebsockets parses the upgrade again: hand it a minimal request carrying what the
     * handshake needs, and the session id to find the session when it is established. */
    pl_str_t key = pl_http_header(req, "Sec-WebSocket-Key");
    pl_str_t proto = pl_http_header(req, "Sec-WebSocket-Protocol");
    pl_buf_t hs;
    pl_buf_init(&hs);
    pl_buf_printf(&hs,
                  "GET /signaling/ws?sid=%llu HTTP/1.1\r\nHost: parley\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %.*s\r\nSec-WebSocket-Version: 13\r\n",
                  (unsigned long long)s->id, (int)key.len, key.ptr);
    if (proto.ptr && header_has_token(proto, "parley.v1"))
        pl_buf_appends(&hs, "Sec-WebSocket-Protocol: parley.v1\r\n");
    pl_buf_appends(&hs, "\r\n");

    char sid[24];
    snprintf(sid, sizeof sid, "%llu", (unsigned long long)s->id);
    int fd = -1;
    size_t head_len = hs.len;
    if (!hs.data || pl_map_put(&ws->pending, sid, strlen(sid), s) ||
        pl_http_take_socket(req, 101, &fd, &hs) != 0) {
        pl_map_del(&ws->pending, sid, strlen(sid));
        pl_buf_free(&hs);
        session_free(s);
        api_error(call, 400, "bad_request",
                  "cannot upgrade: earlier responses on this connection are still unread");
        return;
    }
    /* The request is answered (101); only the call remains to be freed. The socket still
     * counts against PARLEY_MAX_CONNECTIONS until its session is freed. */
    api_call_free(call);
    s->counted = true;
    pl_http_server_count_external(app->http, +1);
    if (hs.len - head_len > EARLY_MAX || hs.len > HANDSHAKE_MAX + EARLY_MAX) {
        /* Frames before the handshake answer are a protocol violation anyway. */
        close(fd);
        pl_map_del(&ws->pending, sid, strlen(sid));
        session_free(s);
        pl_buf_free(&hs);
        return;
    }
    /* A fixed send buffer: the kernel's autotuning would let a client that stops reading pin
     * megabytes in the socket, and flow control (the queue, then the inbox, then 429 for the
     * senders) should start at a known point. 128 KiB holds two maximal messages. */
    int sndbuf = 128 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct lws *wsi = lws_adopt_socket_vhost_readbuf(ws->vhost, fd, hs.data, hs.len);
    pl_buf_free(&hs);
    if (!wsi) {
        /* libwebsockets closed the descriptor itself. The session may already be gone if
         * the handshake failed inside the call (CLOSED ran); only free it if still ours. */
        session_t *p = pl_map_del(&ws->pending, sid, strlen(sid));
        if (p)
            session_free(p);
        pl_log_warn("websocket adoption failed", PL_LS("sid", sid));
    }
}

/* ---- libwebsockets callbacks ---- */

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    session_t **slot = user;
    session_t *s = slot ? *slot : NULL;
    struct lws_context *ctx = lws_get_context(wsi);
    pl_ws_t *ws = ctx ? lws_context_user(ctx) : NULL;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        char arg[32];
        /* Copies "sid=N" into arg and points past the name. */
        const char *sid = ws ? lws_get_urlarg_by_name(wsi, "sid=", arg, sizeof arg) : NULL;
        if (!sid)
            return -1;
        s = pl_map_del(&ws->pending, sid, strlen(sid));
        if (!s)
            return -1;
        char key[24];
        snprintf(key, sizeof key, "%llu", (unsigned long long)s->id);
        if (pl_map_put(&ws->sessions, key, strlen(key), s)) {
            session_free(s); /* not established: nothing linked yet */
            return -1;
        }
        *slot = s;
        s->wsi = wsi;
        s->established = true;
        s->next = ws->all;
        if (ws->all)
            ws->all->prev = s;
        ws->all = s;
        ws->stats.open++;
        ws->stats.total++;
        int64_t now = pl_now_ms();
        s->last_seen_ms = s->last_refresh_ms = now;
        s->next_ping_ms = now + (int64_t)ws->app->cfg->ws_ping_interval * 1000;
        pl_hub_sink_t *old = pl_hub_attach(ws->app->hub, &s->sink, s->sig.room_id, s->sig.peer_id);
        if (old)
            session_close((session_t *)old, CLOSE_REPLACED, "replaced");
        pl_log_info("websocket open", PL_LS("room", s->sig.room_id), PL_LS("peer", s->sig.peer_id),
                    PL_LS("client", s->client_ip));
        /* Whatever waited before the socket opened goes first. */
        session_wake(&s->sink);
        if (ws->closing)
            session_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        break;
    }

    case LWS_CALLBACK_RECEIVE: {
        if (!s)
            return -1;
        /* Once the socket is closing, what the client still sends is not acted on. */
        if (s->close_code)
            break;
        s->last_seen_ms = pl_now_ms();
        ws->stats.bytes_received += len;
        if (lws_is_first_fragment(wsi)) {
            pl_buf_reset(&s->rx);
            s->rx_binary = lws_frame_is_binary(wsi);
        }
        if (s->rx.len + len > ws->app->cfg->max_body) {
            count_close(ws, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
            lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                             (unsigned char *)"message too big", 15);
            return -1;
        }
        if (pl_buf_append(&s->rx, in, len)) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, NULL, 0);
            return -1;
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            ws->stats.received++;
            handle_message(s);
            pl_buf_reset(&s->rx);
            /* A large message's buffer is not kept for an idle socket. */
            if (s->rx.cap > 4096)
                pl_buf_free(&s->rx);
        }
        break;
    }

    case LWS_CALLBACK_RECEIVE_PONG:
        if (s)
            s->last_seen_ms = pl_now_ms();
        break;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The answer to our own close frame: done. Letting libwebsockets go on would echo it
         * with a second close frame, which RFC 6455 forbids (it did not write ours). */
        if (s && s->close_sent)
            return -1;
        if (ws && len >= 2) {
            const unsigned char *p = in;
            count_close(ws, (p[0] << 8) | p[1]);
        }
        /* libwebsockets echoes the close next: nothing of ours may follow it. */
        if (s)
            s->peer_closed = true;
        break;

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!s)
            return -1;
        /* Nothing may follow our close frame (RFC 6455 5.5.1). */
        if (s->close_sent)
            break;
        /* A graceful close lets what is queued out first (a room-closed notice, acks); an
         * overloaded consumer gets its close at once. */
        if (s->close_code && (s->close_code == 1013 || !s->head)) {
            const char *why = s->close_why ? s->close_why : "";
            if (s->close_sent)
                break;
            /* The close frame goes out as a control frame of its own; libwebsockets then
             * closes when the client answers it, or after the timeout. (Returning -1 after
             * lws_close_reason() drops the connection without the frame on adopted sockets.) */
            unsigned char frame[LWS_PRE + 2 + 32];
            size_t wl = strlen(why);
            frame[LWS_PRE] = (unsigned char)(s->close_code >> 8);
            frame[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
            memcpy(frame + LWS_PRE + 2, why, wl);
            s->close_sent = true;
            if (lws_write(wsi, frame + LWS_PRE, 2 + wl, (enum lws_write_protocol)LWS_WRITE_CLOSE_) <
                0)
                return -1;
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
            break;
        }
        if (s->ping_due) {
            /* A ping with a payload: libwebsockets drops empty pongs without telling us,
             * so an empty ping's answer would not count as life. */
            unsigned char ping[LWS_PRE + 8];
            memcpy(ping + LWS_PRE, "parley\0\0", 8);
            s->ping_due = false;
            if (lws_write(wsi, ping + LWS_PRE, 8, LWS_WRITE_PING) < 0)
                return -1;
            if (s->head)
                lws_callback_on_writable(wsi);
            break;
        }
        if (!s->head)
            break;
        if (write_queued(ws, s) < 0)
            return -1;
        /* More to write, or a close decided while messages were queued: its frame goes
         * out on the next writable callback, after them. Without asking again the close
         * frame waited for the close timeout and the client saw 1006. */
        if (s->head || s->close_code)
            lws_callback_on_writable(wsi);
        after_write(s);
        break;
    }

    case LWS_CALLBACK_CLOSED:
        if (s) {
            *slot = NULL;
            session_free(s);
        }
        break;

    default:
        break;
    }
    return 0;
}

/* ---- sessions ---- */

static session_t *session_by_id(pl_ws_t *ws, uint64_t id)
{
    char key[24];
    size_t n = pl_fmt_u64(key, id);
    return pl_map_get(&ws->sessions, key, n);
}

static void session_free(session_t *s)
{
    pl_ws_t *ws = s->ws;
    if (s->counted && ws->app->http)
        pl_http_server_count_external(ws->app->http, -1);
    if (s->established) {
        char key[24];
        snprintf(key, sizeof key, "%llu", (unsigned long long)s->id);
        pl_map_del(&ws->sessions, key, strlen(key));
        if (s->prev)
            s->prev->next = s->next;
        else
            ws->all = s->next;
        if (s->next)
            s->next->prev = s->prev;
        ws->stats.open--;
        pl_hub_detach(ws->app->hub, &s->sink);
        pl_log_info("websocket closed", PL_LS("room", s->sig.room_id),
                    PL_LS("peer", s->sig.peer_id));
    }
    while (s->head) {
        frame_t *f = s->head;
        s->head = f->next;
        free(f);
    }
    if (s->flush_queued)
        flush_unlink(s);
    pl_buf_free(&s->rx);
    free(s);
}

/* Closing happens from a writable callback, where libwebsockets lets us set the code. */
/* Closing happens from a writable callback, where the close frame is written. A client
 * that never reads would never let it out, so libwebsockets drops the connection anyway
 * when the frame is not out after CLOSE_GRACE_S. The close is counted here, when it is
 * decided. */
static void session_close(session_t *s, int code, const char *why)
{
    if (s->close_code || !s->wsi)
        return;
    s->close_code = code;
    s->close_why = why;
    s->close_at_ms = pl_now_ms();
    count_close(s->ws, code);
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_GRACE_S);
    lws_callback_on_writable(s->wsi);
}

/* Writes what waits in the session's queue. One message goes out as libwebsockets frames
 * it. Several go out together: framed here (server frames are unmasked: FIN + text opcode,
 * then the length in 1, 3 or 9 bytes) into one buffer and handed over as one raw write, so
 * a busy socket costs one system call and one writable round (two epoll_ctl) per batch
 * instead of per message. libwebsockets keeps and flushes first whatever the kernel did not
 * take, so frames never interleave with its own pongs or close. Returns lws_write's sign. */
static int write_queued(pl_ws_t *ws, session_t *s)
{
    struct lws *wsi = s->wsi;
    frame_t *f = s->head;
    if (!f->next || f->len + 10 > WRITE_BATCH) {
        s->head = f->next;
        if (!s->head)
            s->tail = &s->head;
        s->queued_bytes -= f->len;
        s->queued_msgs--;
        int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
        ws->stats.bytes_sent += f->len;
        free(f);
        return n < 0 ? -1 : 0;
    }
    unsigned char *out = ws->batch + LWS_PRE;
    size_t used = 0, framed = 0;
    while ((f = s->head) && used + f->len + 10 <= WRITE_BATCH) {
        unsigned char *h = out + used;
        h[0] = 0x81;
        if (f->len < 126) {
            h[1] = (unsigned char)f->len;
            used += 2;
        } else if (f->len <= 0xffff) {
            h[1] = 126;
            h[2] = (unsigned char)(f->len >> 8);
            h[3] = (unsigned char)f->len;
            used += 4;
        } else {
            h[1] = 127;
            for (int i = 0; i < 8; i++)
                h[2 + i] = (unsigned char)((uint64_t)f->len >> (56 - 8 * i));
            used += 10;
        }
        memcpy(out + used, f->buf + LWS_PRE, f->len);
        used += f->len;
        framed++;
        s->head = f->next;
        s->queued_bytes -= f->len;
        s->queued_msgs--;
        ws->stats.bytes_sent += f->len;
        free(f);
    }
    if (!s->head)
        s->tail = &s->head;
    if (framed > 1)
        ws->stats.batched_writes++;
    return lws_write(wsi, out, used, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/* Room again after a write: the stall is over, the client may send again, and more may
 * wait in the inbox. */
static void after_write(session_t *s)
{
    if (queue_full(s))
        return;
    s->stalled_since_ms = 0;
    if (s->rx_paused && s->wsi) {
        s->rx_paused = false;
        lws_rx_flow_control(s->wsi, 1);
    }
    if (s->dirty)
        pl_hub_poke(s->ws->app->hub, &s->sink);
}

static bool session_enqueue(session_t *s, const char *text, size_t len)
{
    if (s->close_code)
        return false; /* closing: nothing new goes out */
    frame_t *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f)
        return false;
    f->next = NULL;
    f->len = len;
    memcpy(f->buf + LWS_PRE, text, len);
    *s->tail = f;
    s->tail = &f->next;
    s->queued_bytes += len;
    s->queued_msgs++;
    /* A full queue is a consumer that does not keep up; the tick closes it with 1013 if it
     * stays full for PARLEY_WS_STALL_TIMEOUT. */
    if (queue_full(s)) {
        if (!s->stalled_since_ms)
            s->stalled_since_ms = pl_now_ms();
        /* Every client message may add an answer to the queue (an error, an ack): stop
         * reading from a client whose queue is full, or it could grow it without bound. */
        if (!s->rx_paused && s->wsi) {
            s->rx_paused = true;
            lws_rx_flow_control(s->wsi, 0);
        }
    }
    if (s->wsi)
        flush_later(s);
    return true;
}

static void flush_unlink(session_t *s)
{
    pl_ws_t *ws = s->ws;
    if (s->flush_prev)
        s->flush_prev->flush_next = s->flush_next;
    else
        ws->flush = s->flush_next;
    if (s->flush_next)
        s->flush_next->flush_prev = s->flush_prev;
    s->flush_prev = s->flush_next = NULL;
    s->flush_queued = false;
}

/* Asks for the session's queue to be written at the end of this turn of the loop. Asking
 * libwebsockets for a writable callback instead would cost two epoll_ctl calls per message
 * (libuv re-registers the descriptor when the poll mask gains and loses POLLOUT): more than
 * the write itself. POLLOUT is only needed when the kernel does not take everything. */
static void flush_later(session_t *s)
{
    pl_ws_t *ws = s->ws;
    if (s->flush_queued || ws->closing)
        return; /* closing: the idle handle may be closed already */
    s->flush_queued = true;
    s->flush_prev = NULL;
    s->flush_next = ws->flush;
    if (ws->flush)
        ws->flush->flush_prev = s;
    ws->flush = s;
    if (!uv_is_active((uv_handle_t *)&ws->flush_idle))
        uv_idle_start(&ws->flush_idle, on_flush);
}

static void on_flush(uv_idle_t *idle)
{
    pl_ws_t *ws = idle->data;
    uv_idle_stop(idle);
    while (ws->flush) {
        session_t *s = ws->flush;
        flush_unlink(s);
        struct lws *wsi = s->wsi;
        if (!wsi)
            continue;
        /* Closing, a ping to send, or bytes libwebsockets still holds: those go through
         * its writable callback, in order. */
        if (s->peer_closed)
            continue;
        if (s->close_code || s->ping_due || lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
            continue;
        }
        while (s->head && !lws_partial_buffered(wsi)) {
            if (write_queued(ws, s) < 0) {
                /* The connection is broken; libwebsockets closes it on its next turn. */
                lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
                break;
            }
        }
        if (s->head)
            lws_callback_on_writable(wsi);
        else
            after_write(s);
    }
}

static void session_send_json(session_t *s, json_t *msg)
{
    pl_buf_t text;
    pl_buf_init(&text);
    if (pl_json_dump(&text, msg) == 0)
        session_enqueue(s, text.data, text.len);
    json_decref(msg);
    pl_buf_free(&text);
}

static bool queue_full(const session_t *s)
{
    const pl_config_t *cfg = s->ws->app->cfg;
    return s->queued_bytes >= cfg->ws_queue_bytes || s->queued_msgs >= cfg->ws_queue_messages;
}

static void session_end(pl_hub_sink_t *sink, int code, const char *why, const char *last)
{
    session_t *s = (session_t *)sink;
    if (last && session_enqueue(s, last, strlen(last)))
        s->ws->stats.pushed++;
    session_close(s, code, why);
}

/* An envelope straight from a push (the redis engine's direct delivery). Asked first with
 * env NULL: yes while the socket is open and its queue has room. The envelope itself comes a
 * round trip later and is taken even if the queue has filled meanwhile, up to twice its
 * limits: the store has already counted it as delivered. Refused, it goes to the inbox. */
static bool session_take(pl_hub_sink_t *sink, const pl_envelope_t *env)
{
    session_t *s = (session_t *)sink;
    const pl_config_t *cfg = s->ws->app->cfg;
    if (s->close_code || !s->established)
        return false;
    if (!env)
        return !queue_full(s);
    if (s->queued_bytes >= 2 * (size_t)cfg->ws_queue_bytes ||
        s->queued_msgs >= 2 * (size_t)cfg->ws_queue_messages)
        return false;
    if (!session_enqueue(s, env->json, env->json_len))
        return false;
    s->ws->stats.pushed++;
    s->ws->stats.direct++;
    return true;
}

/* Envelopes wait for this peer: move what fits in the queue from the inbox to the socket. */
static void session_wake(pl_hub_sink_t *sink)
{
    session_t *s = (session_t *)sink;
    pl_store_t *store = s->ws->app->store;
    if (s->close_code)
        return;
    if (s->popping) {
        s->dirty = true;
        return;
    }
    if (queue_full(s)) {
        s->dirty = true; /* taken up again when the queue has room */
        return;
    }
    size_t room = s->ws->app->cfg->ws_queue_messages - s->queued_msgs;
    s->popping = true;
    s->dirty = false;
    int rc = store->pop(store, s->sig.room_id, s->sig.peer_id, PL_ENV_ALL,
                        room < POLL_BATCH ? room : POLL_BATCH, on_popped, (void *)(uintptr_t)s->id);
    if (rc)
        s->popping = false;
}

static void on_popped(void *ud, int status, const pl_envelope_t *envs, size_t n)
{
    /* The store may answer later; the session may have closed meanwhile. Envelopes popped
     * for a closed session are lost, as they would be for a dropped long-poll. */
    pl_ws_t *ws = ws_instance;
    session_t *s = ws ? session_by_id(ws, (uint64_t)(uintptr_t)ud) : NULL;
    if (!s)
        return;
    s->popping = false;
    if (status == PL_EFORBIDDEN || status == PL_ENOTFOUND) {
        /* The member left or expired: nothing will ever arrive here again. */
        session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "no longer a member");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (session_enqueue(s, envs[i].json, envs[i].json_len))
            ws->stats.pushed++;
    }
    /* A full batch means more may wait. */
    if (n == POLL_BATCH || s->dirty)
        pl_hub_poke(ws->app->hub, &s->sink);
}

/* ---- client messages ---- */

static void send_error(session_t *s, const char *code, const char *message, json_t *ref)
{
    json_t *msg = json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", message);
    if (msg && ref)
        json_object_set(msg, "ref", ref);
    if (msg)
        session_send_json(s, msg);
}

/* Runs one client message through the handler of its REST twin, with a call that carries
 * the socket's identity instead of an HTTP request. */
static void handle_message(session_t *s)
{
    pl_ws_t *ws = s->ws;
    if (s->rx_binary) {
        send_error(s, "invalid_request", "messages are JSON text frames", NULL);
        return;
    }
    json_error_t err;
    json_t *msg = pl_json_loadb(s->rx.data ? s->rx.data : "", s->rx.len,
                                JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!msg) {
        char m[200];
        snprintf(m, sizeof m, "invalid JSON at column %d: %s", err.column, err.text);
        send_error(s, "invalid_json", m, NULL);
        return;
    }
    if (!json_is_object(msg)) {
        json_decref(msg);
        send_error(s, "invalid_request", "a message is a JSON object", NULL);
        return;
    }
    json_t *ref = json_object_get(msg, "ref");
    if (ref && !json_is_string(ref) && !json_is_number(ref)) {
        json_decref(msg);
        send_error(s, "invalid_request", "ref: expected a string or a number", NULL);
        return;
    }
    if (ref && json_is_string(ref) && json_string_length(ref) > REF_MAX) {
        json_decref(msg);
        send_error(s, "invalid_request", "ref: longer than 64 bytes", NULL);
        return;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    pl_call_fn handler = NULL;
    if (!type)
        handler = NULL;
    else if (strcmp(type, "offer") == 0)
        handler = api_post_offer;
    else if (strcmp(type, "answer") == 0)
        handler = api_post_answer;
    else if (strcmp(type, "candidate") == 0)
        handler = api_post_candidate;
    else if (strcmp(type, "heartbeat") == 0)
        handler = api_heartbeat;
    else if (strcmp(type, "leave") == 0)
        handler = api_leave_room;
    if (!handler) {
        send_error(s, "invalid_request",
                   "type: expected offer, answer, candidate, heartbeat or leave", ref);
        json_decref(msg);
        return;
    }
    /* The socket's room is implied; naming another one is refused like a foreign token. */
    json_t *rid = json_object_get(msg, "roomId");
    if (rid && (!json_is_string(rid) || strcmp(json_string_value(rid), s->sig.room_id) != 0)) {
        send_error(s, "forbidden", "this socket belongs to another room", ref);
        json_decref(msg);
        return;
    }
    json_object_set_new(msg, "roomId", json_string(s->sig.room_id));
    /* A client message is a sign of life too. */
    s->last_seen_ms = pl_now_ms();

    pl_call_t *call = pl_call_new();
    if (!call) {
        send_error(s, "internal", "out of memory", ref);
        json_decref(msg); /* owns ref */
        return;
    }
    call->app = ws->app;
    call->req = NULL;
    call->preauth = true;
    call->sig = s->sig;
    call->body = msg;
    call->now_ms = pl_now_ms();
    call->reply = ws_reply;
    call->reply_id = s->id;
    call->ws_type = handler == api_heartbeat    ? "heartbeat"
                    : handler == api_leave_room ? "leave"
                                                : "signal";
    if (ref)
        call->ws_ref = json_incref(ref);
    pl_strcpy_cut(call->client_ip, s->client_ip, sizeof call->client_ip);
    handler(call);
}

/* Answers of the REST handlers, turned into socket messages. */
static void ws_reply(pl_call_t *call, int status, json_t *body)
{
    pl_ws_t *ws = call->app->ws;
    session_t *s = ws ? session_by_id(ws, call->reply_id) : NULL;
    if (!s) {
        json_decref(body);
        return;
    }
    json_t *ref = call->ws_ref;
    if (status >= 400) {
        json_t *e = json_object_get(body, "error");
        send_error(s, json_string_value(json_object_get(e, "code")) ?: "internal",
                   json_string_value(json_object_get(e, "message")) ?: "", ref);
        json_decref(body);
        return;
    }
    if (strcmp(call->ws_type, "leave") == 0) {
        json_decref(body);
        session_close(s, LWS_CLOSE_STATUS_NORMAL, "");
        return;
    }
    if (strcmp(call->ws_type, "heartbeat") == 0) {
        /* The answer carries a fresh token; the socket's own expiry follows it. */
        s->sig.exp_ms = call->now_ms + (int64_t)call->app->cfg->room_ttl * 1000;
        s->last_refresh_ms = call->now_ms;
        json_object_set_new(body, "type", json_string("heartbeat"));
        if (ref)
            json_object_set(body, "ref", ref);
        session_send_json(s, body);
        return;
    }
    if (ref) {
        json_t *ack = json_pack("{s:s,s:O,s:O}", "type", "ack", "ref", ref, "id",
                                json_object_get(body, "id"));
        if (ack)
            session_send_json(s, ack);
    }
    json_decref(body);
}

static void count_close(pl_ws_t *ws, int code)
{
    pl_ws_stats_t *st = &ws->stats;
    size_t i;
    for (i = 0; i < st->nclose; i++)
        if (st->close_codes[i] == code)
            break;
    if (i == st->nclose) {
        if (st->nclose == sizeof st->close_codes / sizeof st->close_codes[0])
            return;
        st->nclose++;
        st->close_codes[i] = (uint16_t)code;
    }
    st->close_counts[i]++;
    if (code == 1013)
        st->queue_overflows++;
}

/* ---- the tick: pings, liveness, token expiry, stalled consumers ---- */

static void on_tick(uv_timer_t *t)
{
    pl_ws_t *ws = t->data;
    const pl_config_t *cfg = ws->app->cfg;
    pl_store_t *store = ws->app->store;
    int64_t now = pl_now_ms();
    int64_t ttl = (int64_t)cfg->member_ttl * 1000;
    for (session_t *s = ws->all; s; s = s->next) {
        if (s->close_code) {
            /* The close frame could not get out (a client that does not read): drop the
             * connection without it. */
            if (!s->killed && now - s->close_at_ms >= CLOSE_GRACE_S * 1000) {
                /* libwebsockets would first flush what it buffered for a client that does
                 * not read, and wait for that forever: reset the connection under it. The
                 * kernel drops the unsent data, and the hang-up closes the session. */
                int fd = lws_get_socket_fd(s->wsi);
                struct linger lg = {1, 0};
                s->killed = true;
                if (fd >= 0) {
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                    shutdown(fd, SHUT_RDWR);
                }
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
            }
            continue;
        }
        /* The same leeway as the upgrade gives, so a token accepted there is not cut at
         * once here. */
        if (now >= s->sig.exp_ms + PL_SIGTOKEN_LEEWAY_MS) {
            session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "token expired");
            continue;
        }
        if (now - s->last_seen_ms >= ttl) {
            /* Silent past the member TTL: the member goes too, and the others hear it now
             * rather than at the next sweep. */
            session_close(s, CLOSE_TIMEOUT, "timeout");
            /* The leave's answer may come after the session is gone: it carries who left. */
            dropped_t *d = malloc(sizeof *d);
            if (d) {
                d->app = ws->app;
                d->sig = s->sig;
                if (store->leave_room(store, s->sig.room_id, s->sig.peer_id, on_dropped, d))
                    free(d);
            }
            continue;
        }
        if (s->stalled_since_ms &&
            now - s->stalled_since_ms >= (int64_t)cfg->ws_stall_timeout * 1000) {
            session_close(s, 1013, "overloaded");
            continue;
        }
        /* A live socket keeps its member alive, as heartbeats would. Both deadlines below
         * are met within half a tick: the tick timer runs on the loop's clock, `now` on
         * another, so a deadline exactly one tick away is often seen 1 ms early, and a
         * strict test would push the refresh (or the ping) one whole tick later; with a
         * short member TTL that late refresh can let a live member expire. */
        if (s->last_seen_ms > s->last_refresh_ms &&
            now - s->last_refresh_ms >= ttl / 3 - TICK_MS / 2) {
            s->last_refresh_ms = now;
            store->heartbeat(store, s->sig.room_id, s->sig.peer_id, on_refreshed, NULL);
        }
        if (now + TICK_MS / 2 >= s->next_ping_ms) {
            s->next_ping_ms = now + (int64_t)cfg->ws_ping_interval * 1000;
            s->ping_due = true;
            lws_callback_on_writable(s->wsi);
        }
    }
}

static void on_refreshed(void *ud, int status, const pl_room_t *room, const pl_member_t *member)
{
    (void)ud;
    (void)room;
    (void)member;
    if (status && status != PL_ENOTFOUND && status != PL_EFORBIDDEN)
        pl_log_warn("websocket member refresh failed", PL_LS("error", pl_strerror(status)));
}

static void on_dropped(void *ud, int status, bool room_removed, const pl_member_t *remaining,
                       size_t n)
{
    dropped_t d = *(dropped_t *)ud;
    free(ud);
    (void)room_removed;
    if (status)
        return;
    pl_member_t gone = {0};
    memcpy(gone.peer_id, d.sig.peer_id, PL_ID_SIZE);
    snprintf(gone.user_id, sizeof gone.user_id, "%s", d.sig.user_id);
    snprintf(gone.name, sizeof gone.name, "%s", d.sig.name);
    api_fanout_peer_left(d.app, d.sig.room_id, &gone, remaining, n);
}
