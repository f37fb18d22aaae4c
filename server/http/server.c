/* HTTP/1.1 server: connections, parsing, limits, timeouts and response writing.
 * See server.h for the model (one request in flight per connection, pipelining by pausing
 * the parser). */
#include "http/server.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* After a response that ends the connection we shut down our side and keep reading (and
 * discarding) for a while before closing: closing with unread request bytes in the kernel
 * would make it send RST, and the client could lose the error response it was sent. */
#define LINGER_MS 2000
/* Stop working through pipelined requests, and stop reading, while this much response data
 * is unsent: a client that pipelines without reading pins at most this much (plus the
 * bounded input buffer) until the idle timeout. */
#define WRITE_HIGH_WATER (64u * 1024)
/* Input read ahead while a request is being handled (pipelining). Bodies are not read
 * ahead: the parser reads them from the socket once it resumes. */
#define INBUF_CAP (PL_HTTP_MAX_HEAD + 4096)

typedef enum {
    CONN_IDLE,    /* waiting for the first byte of a request */
    CONN_HEAD,    /* reading the request line and headers */
    CONN_BODY,    /* reading the body */
    CONN_BUSY,    /* the application holds the request */
    CONN_LINGER,  /* response sent, draining input before close */
    CONN_CLOSING, /* uv_close started */
} conn_state_t;

typedef struct {
    size_t name_off, name_len, value_off, value_len;
} head_span_t;

struct pl_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    /* Lazy timer: the connection's deadline in loop milliseconds (0: none). The handle may
     * stay armed for an earlier time (timer_due) and then re-arms itself for the rest, so a
     * keep-alive request costs no timer heap operation at all. */
    uint64_t deadline;
    uint64_t timer_due;
    pl_http_server_t *server;
    pl_http_conn_t *prev, *next;
    llhttp_t parser;
    conn_state_t state;
    int handles_open;  /* tcp + timer until their close callbacks ran */
    uint32_t body_max; /* the current request's body limit (opts.body_limit or max_body) */
    bool busy;         /* the application holds req */
    bool in_process;   /* conn_process is on the stack */
    bool reading;
    bool close_after_response;
    bool peer_eof;
    bool taken;        /* the socket was handed over: close without shutdown */
    uint32_t requests; /* requests begun on this connection */
    int error_status;  /* set by a parser callback to reject the request */
    const char *error_reason;
    size_t head_bytes;
    size_t write_bytes; /* queued, not yet written */
    pl_buf_t inbuf;     /* received, not yet parsed */
    pl_buf_t head;      /* copy of the target and the header names and values */
    size_t target_len;
    head_span_t spans[PL_HTTP_MAX_HEADERS];
    size_t nspans;
    bool in_value;
    bool value_cut;         /* the last value piece ended before the end of its input */
    const char *exec_start; /* the bytes given to the current llhttp_execute */
    const char *exec_end;
    pl_http_req_t req;
};

struct pl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    bool stopping;
    pl_http_opts_t opts;
    llhttp_settings_t settings;
    pl_http_conn_t *conns;
    size_t nconns;
    pl_http_stats_t stats;
    uint16_t port;
    char read_buf[65536];
    bool read_buf_busy;
    int64_t last_accept_warn_ms;
    size_t external; /* handed-over connections still counted against the limit */
    /* Accepts the connection that could not be allocated, so that libuv keeps polling the
     * listener; closed at once. One at a time: a second failure while it closes waits. */
    uv_tcp_t spare;
    bool spare_busy;
};

typedef struct {
    uv_write_t req;
    pl_http_conn_t *conn;
    size_t len;
    char data[];
} write_req_t;

static void on_connection(uv_stream_t *listener, int status);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void on_handle_closed(uv_handle_t *h);
static void on_write(uv_write_t *w, int status);
static void on_shutdown(uv_shutdown_t *sr, int status);
static void conn_process(pl_http_conn_t *c);
static void conn_close(pl_http_conn_t *c);
static void conn_linger(pl_http_conn_t *c);
static void conn_reject(pl_http_conn_t *c, int status, const char *code, const char *message);
static void conn_update_reading(pl_http_conn_t *c);
static void conn_maybe_free(pl_http_conn_t *c);
static void conn_write(pl_http_conn_t *c, const pl_buf_t *b);
static void req_reset(pl_http_conn_t *c);
static void request_done(pl_http_conn_t *c);
static void timer_arm(pl_http_conn_t *c, uint32_t ms);

static void build_head(pl_buf_t *out, int status, const char *content_type, size_t len,
                       bool keep_alive, const pl_buf_t *extra);
static int cb_message_begin(llhttp_t *p);
static int cb_url(llhttp_t *p, const char *at, size_t len);
static int cb_header_field(llhttp_t *p, const char *at, size_t len);
static int cb_header_value(llhttp_t *p, const char *at, size_t len);
static int cb_headers_complete(llhttp_t *p);
static int cb_body(llhttp_t *p, const char *at, size_t len);
static int cb_message_complete(llhttp_t *p);

/* ---- server ---- */

int pl_http_server_new(uv_loop_t *loop, const pl_http_opts_t *opts, pl_http_server_t **out)
{
    pl_http_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return PL_ENOMEM;
    s->loop = loop;
    s->opts = *opts;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = cb_message_begin;
    s->settings.on_url = cb_url;
    s->settings.on_header_field = cb_header_field;
    s->settings.on_header_value = cb_header_value;
    s->settings.on_headers_complete = cb_headers_complete;
    s->settings.on_body = cb_body;
    s->settings.on_message_complete = cb_message_complete;
    *out = s;
    return 0;
}

int pl_http_server_listen(pl_http_server_t *s, const char *host, uint16_t port)
{
    struct sockaddr_storage addr;
    int rc;
    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc)
        return rc;
    if ((rc = uv_tcp_init(s->loop, &s->listener)))
        return rc;
    s->listener.data = s;
    s->listening = true;
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0)))
        return rc;
    if ((rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection)))
        return rc;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    if ((rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len)))
        return rc;
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

uint16_t pl_http_server_port(const pl_http_server_t *s)
{
    return s->port;
}

void pl_http_server_stop_accepting(pl_http_server_t *s)
{
    s->stopping = true;
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, NULL);
    }
    for (pl_http_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        c->close_after_response = true;
        if (c->state == CONN_IDLE && !c->busy && c->write_bytes == 0)
            conn_close(c);
    }
}

void pl_http_server_close_all(pl_http_server_t *s)
{
    for (pl_http_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void pl_http_server_free(pl_http_server_t *s)
{
    free(s);
}

size_t pl_http_server_open_connections(const pl_http_server_t *s)
{
    return s->nconns;
}

void pl_http_server_count_external(pl_http_server_t *s, int delta)
{
    if (delta < 0 && s->external < (size_t)-delta)
        s->external = 0;
    else
        s->external += (size_t)(ssize_t)delta;
}

void pl_http_server_stats(const pl_http_server_t *s, pl_http_stats_t *out)
{
    *out = s->stats;
    out->connections_open = s->nconns;
}

static void on_spare_closed(uv_handle_t *h)
{
    pl_http_server_t *s = h->data;
    s->spare_busy = false;
}

/* Out of memory or descriptors: one line a second at most, or a flood of connections
 * becomes a flood of log lines. */
static void warn_accept(pl_http_server_t *s, const char *what, int err)
{
    int64_t now = pl_mono_ms();
    if (now - s->last_accept_warn_ms < 1000)
        return;
    s->last_accept_warn_ms = now;
    pl_log_warn("accept failed", PL_LS("what", what), PL_LS("error", pl_strerror(err)));
}

static void on_connection(uv_stream_t *listener, int status)
{
    pl_http_server_t *s = listener->data;
    if (status < 0) {
        warn_accept(s, "accept", status);
        return;
    }
    pl_http_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        warn_accept(s, "allocate", PL_ENOMEM);
        if (!s->spare_busy && uv_tcp_init(s->loop, &s->spare) == 0) {
            s->spare_busy = true;
            s->spare.data = s;
            uv_accept(listener, (uv_stream_t *)&s->spare);
            uv_close((uv_handle_t *)&s->spare, on_spare_closed);
        }
        return;
    }
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->state = CONN_IDLE;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->stats.connections_total++;
    pl_buf_init(&c->inbuf);
    pl_buf_init(&c->head);
    pl_buf_init(&c->req.body);
    pl_buf_init(&c->req.resp_headers);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;

    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int len = sizeof c->req.peer_addr;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->req.peer_addr, &len) == 0) {
        if (c->req.peer_addr.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&c->req.peer_addr, c->req.peer_ip,
                        sizeof c->req.peer_ip);
        else
            uv_ip4_name((struct sockaddr_in *)&c->req.peer_addr, c->req.peer_ip,
                        sizeof c->req.peer_ip);
    }
    if (s->nconns + s->external > s->opts.max_connections || s->stopping) {
        /* Refuse at once and cheaply: one canned response, then close. The count includes
         * this connection, so exactly max_connections are served. */
        s->stats.connections_rejected++;
        conn_reject(c, 503, "overloaded", "too many connections");
        return;
    }
    /* A fresh connection must send its request head within the header timeout, so that
     * connections that never speak cannot pin memory for the idle timeout. */
    timer_arm(c, s->opts.header_timeout_ms);
    conn_update_reading(c);
}

/* ---- reading ---- */

static void conn_update_reading(pl_http_conn_t *c)
{
    bool want = c->state != CONN_CLOSING && !c->peer_eof &&
                (c->state == CONN_LINGER ||
                 (c->inbuf.len < INBUF_CAP && c->write_bytes < WRITE_HIGH_WATER));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pl_http_conn_t *c = h->data;
    pl_http_server_t *s = c->server;
    /* One shared buffer: libuv reads into it and on_read copies out before returning. */
    if (s->read_buf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    s->read_buf_busy = true;
    buf->base = s->read_buf;
    buf->len = sizeof s->read_buf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    pl_http_conn_t *c = stream->data;
    if (buf->base == c->server->read_buf)
        c->server->read_buf_busy = false;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->state != CONN_LINGER) {
            /* A half-closed client still gets every answer to what it sent, pipelined or
             * not; conn_process closes once nothing is left to parse or write. Only a
             * handler that is merely waiting (a long-poll) is cut short: nobody is left to
             * wait for. */
            c->peer_eof = true;
            conn_update_reading(c);
            if (c->busy && c->req.on_abort)
                conn_close(c);
            else if (!c->busy)
                conn_process(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGER)
        return; /* discarded */
    if (pl_buf_append(&c->inbuf, buf->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    conn_process(c);
}

static void conn_process(pl_http_conn_t *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    while (!c->busy && c->state != CONN_CLOSING && c->state != CONN_LINGER &&
           !(c->state == CONN_IDLE && c->close_after_response) && c->inbuf.len > 0 &&
           c->write_bytes < WRITE_HIGH_WATER) {
        c->exec_start = c->inbuf.data;
        c->exec_end = c->inbuf.data + c->inbuf.len;
        llhttp_errno_t err = llhttp_execute(&c->parser, c->inbuf.data, c->inbuf.len);
        if (err == HPE_OK) {
            pl_buf_reset(&c->inbuf);
            break;
        }
        if (err == HPE_PAUSED_UPGRADE) {
            /* The upgrade request was handed over already; what follows is not HTTP. */
            c->close_after_response = true;
            break;
        }
        if (err == HPE_PAUSED) {
            size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - c->inbuf.data);
            pl_buf_consume(&c->inbuf, used);
            llhttp_resume(&c->parser);
            /* The request is complete: hand it over. The handler may respond before this
             * returns (then busy is false again and the loop continues with pipelined
             * bytes) or later. */
            pl_http_server_t *s = c->server;
            c->busy = true;
            c->state = CONN_BUSY;
            c->deadline = 0; /* the handler's own timers bound a busy request */
            s->stats.requests_total++;
            s->stats.requests_inflight++;
            c->req.start_ms = (int64_t)(uv_hrtime() / 1000);
            s->opts.handler(s->opts.ud, &c->req);
            continue;
        }
        int status = c->error_status ? c->error_status : 400;
        if (status == 413)
            conn_reject(c, 413, "payload_too_large", "request body too large");
        else if (status == 431)
            conn_reject(c, 431, "headers_too_large", "request line and headers too large");
        else
            conn_reject(c, 400, "bad_request",
                        c->error_reason ? c->error_reason : llhttp_errno_name(err));
        break;
    }
    c->in_process = false;
    /* After EOF, whatever is left unparsed can never complete. */
    if (c->peer_eof && !c->busy && c->write_bytes == 0 &&
        (c->state == CONN_IDLE || c->state == CONN_HEAD || c->state == CONN_BODY))
        conn_close(c);
    else
        conn_update_reading(c);
}

/* ---- parser callbacks ---- */

static int add_head_bytes(pl_http_conn_t *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > PL_HTTP_MAX_HEAD) {
        c->error_status = 431;
        return -1;
    }
    return 0;
}

static int cb_message_begin(llhttp_t *p)
{
    pl_http_conn_t *c = p->data;
    req_reset(c);
    c->state = CONN_HEAD;
    /* The first request's head is already timed from the accept; restarting the clock at
     * its first byte would let a client hold the connection for twice the timeout. */
    if (c->requests++ > 0)
        timer_arm(c, c->server->opts.header_timeout_ms);
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t len)
{
    pl_http_conn_t *c = p->data;
    if (add_head_bytes(c, len) || pl_buf_append(&c->head, at, len))
        return -1;
    c->target_len += len;
    return 0;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t len)
{
    pl_http_conn_t *c = p->data;
    /* Trailer fields of a chunked body come through here too, after the head's pointers
     * were handed out: they count against the head limit but are never stored (appending
     * could move the buffer under those pointers). */
    if (c->state == CONN_BODY)
        return add_head_bytes(c, len + 4);
    if (c->in_value || c->nspans == 0) {
        if (c->nspans == PL_HTTP_MAX_HEADERS) {
            c->error_status = 431;
            return -1;
        }
        /* ": " and CRLF count towards the head size too. */
        if (add_head_bytes(c, 4))
            return -1;
        head_span_t *sp = &c->spans[c->nspans++];
        sp->name_off = c->head.len;
        sp->name_len = 0;
        sp->value_off = 0;
        sp->value_len = 0;
        c->in_value = false;
    }
    if (add_head_bytes(c, len) || pl_buf_append(&c->head, at, len))
        return -1;
    c->spans[c->nspans - 1].name_len += len;
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t len)
{
    pl_http_conn_t *c = p->data;
    if (c->state == CONN_BODY)
        return add_head_bytes(c, len);
    head_span_t *sp = &c->spans[c->nspans - 1];
    if (!c->in_value) {
        /* An empty first line of a folded value sends no piece at all, so look behind the
         * value: past the spaces must be the field's colon, not a line break. */
        const char *b = at;
        while (b > c->exec_start && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (len > 0 && b > c->exec_start && (b[-1] == '\n' || b[-1] == '\r')) {
            c->error_status = 400;
            c->error_reason = "obsolete header line folding";
            return -1;
        }
        c->in_value = true;
        sp->value_off = c->head.len;
    } else if (c->value_cut) {
        /* A second piece of the same value after the first one ended inside its input:
         * llhttp is unfolding an obsolete line fold ("Name: a\r\n b"). RFC 9112 lets a
         * server refuse it, and it must: a proxy that unfolds differently would read
         * another request. (A value split across two reads ends exactly at the end of the
         * first read instead.) */
        c->error_status = 400;
        c->error_reason = "obsolete header line folding";
        return -1;
    }
    c->value_cut = at + len != c->exec_end;
    if (add_head_bytes(c, len) || pl_buf_append(&c->head, at, len))
        return -1;
    sp->value_len += len;
    return 0;
}

static int cb_headers_complete(llhttp_t *p)
{
    pl_http_conn_t *c = p->data;
    pl_http_req_t *r = &c->req;
    pl_http_server_t *s = c->server;

    /* HTTP/1.0 and 1.1 only: a 0.9 request has no headers to bound or answer with, and
     * other versions are not spoken here. */
    if (p->http_major != 1) {
        c->error_status = 400;
        c->error_reason = "only HTTP/1.0 and HTTP/1.1 are spoken";
        return -1;
    }
    /* The head buffer no longer grows, so pointers into it are stable from here on. */
    const char *base = c->head.data ? c->head.data : "";
    r->target = (pl_str_t){base, c->target_len};
    const char *q = memchr(r->target.ptr, '?', r->target.len);
    if (q) {
        r->path = (pl_str_t){r->target.ptr, (size_t)(q - r->target.ptr)};
        r->query = (pl_str_t){q + 1, r->target.len - r->path.len - 1};
    } else {
        r->path = r->target;
        r->query = (pl_str_t){r->target.ptr + r->target.len, 0};
    }
    for (size_t i = 0; i < c->nspans; i++) {
        r->headers[i].name = (pl_str_t){base + c->spans[i].name_off, c->spans[i].name_len};
        r->headers[i].value = (pl_str_t){base + c->spans[i].value_off, c->spans[i].value_len};
    }
    r->nheaders = c->nspans;
    r->method = llhttp_get_method(p);
    r->method_str = pl_str(llhttp_method_name((llhttp_method_t)r->method));
    r->is_head = r->method == HTTP_HEAD;
    r->keep_alive = llhttp_should_keep_alive(p);
    /* After an Upgrade request llhttp parses nothing more as HTTP on this connection: it is
     * either taken over (a WebSocket) or answered and closed. */
    if (p->upgrade)
        c->close_after_response = true;

    c->body_max = s->opts.body_limit ? s->opts.body_limit(s->opts.ud, r) : s->opts.max_body;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->body_max) {
        c->error_status = 413;
        return -1;
    }
    pl_str_t expect = pl_http_header(r, "Expect");
    if (expect.ptr && pl_str_ieq(expect, "100-continue")) {
        pl_buf_t b;
        pl_buf_init(&b);
        pl_buf_appends(&b, "HTTP/1.1 100 Continue\r\n\r\n");
        conn_write(c, &b);
        pl_buf_free(&b);
        if (c->state == CONN_CLOSING)
            return -1; /* the write failed and closed the connection */
    }
    c->state = CONN_BODY;
    /* The body must keep arriving; a stalled upload is dropped after the idle timeout. */
    timer_arm(c, s->opts.idle_timeout_ms);
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    pl_http_conn_t *c = p->data;
    if (c->req.body.len + len > c->body_max) {
        c->error_status = 413;
        return -1;
    }
    if (pl_buf_append(&c->req.body, at, len))
        return -1;
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED;
}

static void req_reset(pl_http_conn_t *c)
{
    pl_http_req_t *r = &c->req;
    pl_buf_reset(&c->head);
    pl_buf_reset(&r->body);
    pl_buf_reset(&r->resp_headers);
    c->target_len = 0;
    c->nspans = 0;
    c->in_value = false;
    c->head_bytes = 16; /* method, version, spaces and CRLF of the request line */
    c->error_status = 0;
    c->error_reason = NULL;
    r->server = c->server;
    r->conn = c;
    r->target = r->path = r->query = PL_STR_NULL;
    r->nheaders = 0;
    r->route = NULL;
    r->app_data = NULL;
    r->on_abort = NULL;
    r->status = 0;
    r->responded = false;
    r->aborted = false;
    r->client_ip[0] = '\0';
}

/* ---- timers ---- */

static void timer_arm(pl_http_conn_t *c, uint32_t ms)
{
    uint64_t due = uv_now(c->server->loop) + ms;
    c->deadline = due;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->timer_due > due) {
        uv_timer_start(&c->timer, on_timer, ms, 0);
        c->timer_due = due;
    }
}

static void on_timer(uv_timer_t *t)
{
    pl_http_conn_t *c = t->data;
    if (c->deadline == 0)
        return; /* disarmed since: nothing is due */
    uint64_t now = uv_now(c->server->loop);
    if (now < c->deadline) {
        /* Armed earlier than the current deadline: wait for the rest. */
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        c->timer_due = c->deadline;
        return;
    }
    c->deadline = 0;
    switch (c->state) {
    case CONN_IDLE:
        conn_close(c);
        break;
    case CONN_HEAD:
        conn_reject(c, 408, "request_timeout", "request headers not received in time");
        break;
    case CONN_BODY:
        conn_reject(c, 408, "request_timeout", "request body not received in time");
        break;
    case CONN_LINGER:
    case CONN_BUSY:
    case CONN_CLOSING:
        conn_close(c);
        break;
    }
}

/* ---- writing ---- */

const char *pl_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static const char *http_date(void)
{
    static char cached[40];
    static time_t cached_secs = -1;
    time_t now = time(NULL);
    if (now != cached_secs) {
        cached_secs = now;
        pl_http_date((int64_t)now * 1000, cached, sizeof cached);
    }
    return cached;
}

static void build_head(pl_buf_t *out, int status, const char *content_type, size_t len,
                       bool keep_alive, const pl_buf_t *extra)
{
    /* Appends, not printf: formatting the head was a quarter of a small response's cost. */
    char num[24];
    pl_buf_appends(out, "HTTP/1.1 ");
    pl_buf_append(out, num, pl_fmt_u64(num, (uint64_t)status));
    pl_buf_appends(out, " ");
    pl_buf_appends(out, pl_http_status_text(status));
    pl_buf_appends(out, "\r\nDate: ");
    pl_buf_appends(out, http_date());
    pl_buf_appends(out, "\r\nServer: parleyd\r\n");
    /* 1xx, 204 and 304 responses carry no body and no Content-Length. */
    if (status != 204 && status != 304 && status >= 200) {
        pl_buf_appends(out, "Content-Length: ");
        pl_buf_append(out, num, pl_fmt_u64(num, len));
        pl_buf_appends(out, "\r\n");
    }
    if (content_type && status != 204 && status != 304) {
        pl_buf_appends(out, "Content-Type: ");
        pl_buf_appends(out, content_type);
        pl_buf_appends(out, "\r\n");
    }
    pl_buf_appends(out, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    if (extra && extra->len)
        pl_buf_append(out, extra->data, extra->len);
    pl_buf_appends(out, "\r\n");
}

static void conn_write(pl_http_conn_t *c, const pl_buf_t *b)
{
    if (c->state == CONN_CLOSING || b->len == 0)
        return;
    const char *data = b->data;
    size_t len = b->len;
    /* Nearly every response fits the socket buffer: write it at once. Besides the copy and
     * the request allocation, this saves a system call per response, because a completed
     * uv_write makes libuv re-arm the descriptor's epoll registration (epoll_ctl) on the
     * next turn of the loop. Only when earlier bytes still wait (order) or the socket is
     * full does the rest go through uv_write. */
    if (c->write_bytes == 0) {
        uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
        if (n == (int)len)
            return;
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
    }
    write_req_t *w = malloc(sizeof *w + len);
    if (!w) {
        conn_close(c);
        return;
    }
    memcpy(w->data, data, len);
    w->len = len;
    w->conn = c;
    uv_buf_t ub = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->write_bytes += len;
}

static void on_write(uv_write_t *wr, int status)
{
    write_req_t *w = (write_req_t *)wr;
    pl_http_conn_t *c = w->conn;
    c->write_bytes -= w->len;
    free(w);
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->write_bytes == 0 && c->close_after_response && !c->busy && c->state == CONN_IDLE) {
        conn_linger(c);
        return;
    }
    if (c->write_bytes < WRITE_HIGH_WATER && !c->busy)
        conn_process(c);
    else
        conn_update_reading(c);
}

pl_str_t pl_http_header(const pl_http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (pl_str_ieq(req->headers[i].name, name))
            return req->headers[i].value;
    return PL_STR_NULL;
}

int pl_http_take_socket(pl_http_req_t *req, int status, int *fd, pl_buf_t *rest)
{
    pl_http_conn_t *c = req->conn;
    uv_os_fd_t ours;
    if (req->responded || req->aborted || c->state == CONN_CLOSING)
        return PL_ECLOSED;
    /* Closing our descriptor would cancel responses still queued for earlier pipelined
     * requests; a client that upgrades before reading them is refused instead. */
    if (c->write_bytes > 0)
        return PL_ELIMIT;
    int rc = uv_fileno((uv_handle_t *)&c->tcp, &ours);
    if (rc)
        return rc;
    int dup_fd = fcntl(ours, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return -errno;
    if (c->inbuf.len && pl_buf_append(rest, c->inbuf.data, c->inbuf.len)) {
        close(dup_fd);
        return PL_ENOMEM;
    }
    pl_buf_reset(&c->inbuf);
    *fd = dup_fd;
    c->taken = true;
    req->responded = true;
    req->status = status;
    request_done(c);
    return 0;
}

bool pl_http_header_all(const pl_http_req_t *req, const char *name, pl_buf_t *out)
{
    bool found = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!pl_str_ieq(req->headers[i].name, name))
            continue;
        if (found)
            pl_buf_append(out, ", ", 2);
        pl_buf_append(out, req->headers[i].value.ptr, req->headers[i].value.len);
        found = true;
    }
    return found;
}

void pl_http_add_header(pl_http_req_t *req, const char *name, const char *value)
{
    if (req->resp_headers.len > PL_HTTP_MAX_RESP_HEADERS * 4)
        return;
    pl_buf_appends(&req->resp_headers, name);
    pl_buf_appends(&req->resp_headers, ": ");
    for (const char *v = value; *v; v++)
        if (*v != '\r' && *v != '\n')
            pl_buf_append(&req->resp_headers, v, 1);
    pl_buf_appends(&req->resp_headers, "\r\n");
}

void pl_http_respond(pl_http_req_t *req, int status, const char *content_type, const void *body,
                     size_t len)
{
    pl_http_conn_t *c = req->conn;
    if (req->responded)
        return;
    req->responded = true;
    req->status = status;
    if (!req->aborted && c->state != CONN_CLOSING) {
        if (!req->keep_alive || c->server->stopping)
            c->close_after_response = true;
        pl_buf_t out;
        pl_buf_init(&out);
        /* One allocation for the whole response (the head's fixed part is < 200 bytes). */
        pl_buf_reserve(&out, 256 + req->resp_headers.len + len);
        build_head(&out, status, content_type, len, !c->close_after_response, &req->resp_headers);
        if (body && len && !req->is_head && status != 204 && status != 304)
            pl_buf_append(&out, body, len);
        conn_write(c, &out);
        pl_buf_free(&out);
    }
    request_done(c);
}

static void request_done(pl_http_conn_t *c)
{
    pl_http_server_t *s = c->server;
    pl_http_req_t *r = &c->req;
    double secs = (double)((int64_t)(uv_hrtime() / 1000) - r->start_ms) / 1e6;
    s->stats.requests_inflight--;
    pl_log_info(
        "request", PL_LP("method", r->method_str), PL_LP("path", r->path),
        PL_LI("status", r->status), PL_LD("duration_ms", secs * 1000.0), PL_LS("peer", r->peer_ip),
        PL_LS("client", r->client_ip[0] ? r->client_ip : r->peer_ip), PL_LB("aborted", r->aborted));
    if (s->opts.on_complete)
        s->opts.on_complete(s->opts.ud, r, r->status, secs);
    c->busy = false;
    r->on_abort = NULL;
    r->app_data = NULL;
    if (c->state == CONN_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    if (c->taken) {
        /* Only our descriptor goes; the socket lives on in its new owner's duplicate. */
        conn_close(c);
        return;
    }
    c->state = CONN_IDLE;
    if (c->close_after_response) {
        if (c->write_bytes == 0)
            conn_linger(c);
        return;
    }
    timer_arm(c, s->opts.idle_timeout_ms);
    conn_process(c);
}

/* Sends a canned error and ends the connection; used for protocol-level failures where the
 * request may not be complete (no handler is involved). */
static void conn_reject(pl_http_conn_t *c, int status, const char *code, const char *message)
{
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return;
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                     message);
    pl_buf_t out;
    pl_buf_init(&out);
    build_head(&out, status, "application/json", (size_t)n, false, NULL);
    pl_buf_append(&out, body, (size_t)n);
    conn_write(c, &out);
    pl_buf_free(&out);
    /* The write can fail at once (a peer that reset): conn_write closed the connection,
     * and lingering on it would close its handles a second time. */
    if (c->state == CONN_CLOSING)
        return;
    pl_log_info("request rejected", PL_LI("status", status), PL_LS("reason", message),
                PL_LS("peer", c->req.peer_ip));
    c->close_after_response = true;
    c->state = CONN_IDLE;
    if (c->write_bytes == 0)
        conn_linger(c);
    /* otherwise on_write starts lingering once the response is out */
}

/* ---- closing ---- */

static void conn_linger(pl_http_conn_t *c)
{
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
        return;
    c->state = CONN_LINGER;
    pl_buf_reset(&c->inbuf);
    if (c->peer_eof) {
        conn_close(c);
        return;
    }
    uv_shutdown_t *sr = malloc(sizeof *sr);
    if (!sr || uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sr);
        conn_close(c);
        return;
    }
    timer_arm(c, LINGER_MS);
    conn_update_reading(c);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    (void)status;
    free(sr);
}

static void conn_close(pl_http_conn_t *c)
{
    if (c->state == CONN_CLOSING || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->state = CONN_CLOSING;
    c->reading = false;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->busy && !c->req.responded) {
        c->req.aborted = true;
        if (c->req.on_abort) {
            void (*abort_fn)(pl_http_req_t *) = c->req.on_abort;
            c->req.on_abort = NULL;
            abort_fn(&c->req);
        }
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    pl_http_conn_t *c = h->data;
    c->handles_open--;
    conn_maybe_free(c);
}

static void conn_maybe_free(pl_http_conn_t *c)
{
    if (c->handles_open > 0 || c->busy)
        return;
    pl_http_server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    pl_buf_free(&c->inbuf);
    pl_buf_free(&c->head);
    pl_buf_free(&c->req.body);
    pl_buf_free(&c->req.resp_headers);
    free(c);
}
