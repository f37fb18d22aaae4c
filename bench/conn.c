#include "conn.h"

#include <string.h>

const char *pb_conn_err_name(int err)
{
    switch (err) {
    case PB_OK:
        return "ok";
    case PB_ECONNECT:
        return "connect";
    case PB_ETIMEOUT:
        return "timeout";
    case PB_ECLOSED:
        return "closed";
    case PB_EPROTO:
        return "protocol";
    default:
        return "unknown";
    }
}

static void deliver(pb_conn_t *c, int err)
{
    if (c->dead)
        return;
    pb_conn_cb cb = c->cb;
    c->cb = NULL;
    if (!cb)
        return;
    if (err)
        cb(c, err, 0, NULL, 0);
    else
        cb(c, PB_OK, c->status, c->body.data ? c->body.data : "", c->body.len);
}

static void start_connect(pb_conn_t *c);

static void on_tcp_closed(uv_handle_t *h)
{
    pb_conn_t *c = h->data;
    c->state = PB_CONN_CLOSED;
    if (c->dead)
        return;
    if (c->cb && !c->queued) {
        deliver(c, c->pending_err);
        return;
    }
    if (c->queued)
        start_connect(c);
}

/* Ends the exchange in progress: err (or a response without keep-alive) closes the
 * connection first and then reports; a kept-alive success reports at once. */
static void finish(pb_conn_t *c, int err)
{
    uv_timer_stop(&c->timer);
    if (err || !c->keep_alive) {
        c->pending_err = err;
        c->queued = false;
        if (c->state != PB_CONN_CLOSING && c->state != PB_CONN_CLOSED) {
            c->state = PB_CONN_CLOSING;
            uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
        }
        return;
    }
    c->state = PB_CONN_READY;
    deliver(c, PB_OK);
}

static void on_timer(uv_timer_t *t)
{
    pb_conn_t *c = t->data;
    finish(c, c->state == PB_CONN_CONNECTING ? PB_ECONNECT : PB_ETIMEOUT);
}

static int on_message_begin(llhttp_t *p)
{
    pb_conn_t *c = p->data;
    pl_buf_reset(&c->body);
    c->done = false;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    pb_conn_t *c = p->data;
    return pl_buf_append(&c->body, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(llhttp_t *p)
{
    pb_conn_t *c = p->data;
    c->status = p->status_code;
    c->keep_alive = llhttp_should_keep_alive(p) != 0;
    c->done = true;
    /* A NUL after the body, not counted in its length, for JSON parsing. */
    if (pl_buf_append(&c->body, "", 1) != 0)
        return -1;
    c->body.len--;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pb_conn_t *c = h->data;
    buf->base = c->inbuf;
    buf->len = sizeof c->inbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pb_conn_t *c = s->data;
    if (n == 0 || c->state == PB_CONN_CLOSING || c->state == PB_CONN_CLOSED)
        return;
    if (c->state != PB_CONN_BUSY) {
        /* EOF or unsolicited bytes (e.g. an idle timeout's 408) on an idle connection. */
        c->keep_alive = false;
        c->state = PB_CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
        return;
    }
    if (n < 0) {
        finish(c, PB_ECLOSED);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)n);
    if (e != HPE_OK) {
        finish(c, PB_EPROTO);
        return;
    }
    if (c->done) {
        c->done = false;
        finish(c, PB_OK);
    }
}

static void on_write(uv_write_t *w, int status)
{
    pb_conn_t *c = w->data;
    if (status < 0 && status != UV_ECANCELED && c->state == PB_CONN_BUSY)
        finish(c, PB_ECLOSED);
}

static void send_request(pb_conn_t *c)
{
    c->state = PB_CONN_BUSY;
    c->done = false;
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timer, c->timeout_ms, 0);
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0)
        finish(c, PB_ECLOSED);
}

static void on_connect(uv_connect_t *req, int status)
{
    pb_conn_t *c = req->data;
    if (c->state != PB_CONN_CONNECTING)
        return; /* timed out or shut down meanwhile */
    if (status < 0) {
        finish(c, PB_ECONNECT);
        return;
    }
    c->connects++;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        finish(c, PB_ECONNECT);
        return;
    }
    uv_timer_stop(&c->timer);
    send_request(c);
}

static void start_connect(pb_conn_t *c)
{
    c->queued = false;
    c->keep_alive = true;
    c->state = PB_CONN_CONNECTING;
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timer, c->connect_timeout_ms, 0);
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->tcp, c->addr, on_connect) != 0)
        finish(c, PB_ECONNECT);
}

int pb_conn_init(pb_conn_t *c, uv_loop_t *loop, const struct sockaddr *addr,
                 uint32_t connect_timeout_ms, uint32_t timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->addr = addr;
    c->connect_timeout_ms = connect_timeout_ms;
    c->timeout_ms = timeout_ms;
    c->state = PB_CONN_CLOSED;
    pl_buf_init(&c->out);
    pl_buf_init(&c->body);
    llhttp_settings_init(&c->settings);
    c->settings.on_message_begin = on_message_begin;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    if (uv_timer_init(loop, &c->timer) != 0)
        return -1;
    c->timer.data = c;
    return 0;
}

int pb_conn_request(pb_conn_t *c, const char *method, const char *host, const char *path,
                    const char *bearer, const char *body, pb_conn_cb cb)
{
    if (c->cb || c->state == PB_CONN_BUSY || c->state == PB_CONN_CONNECTING)
        return -1;
    pl_buf_reset(&c->out);
    int rc = pl_buf_printf(&c->out, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host);
    if (rc == 0 && bearer)
        rc = pl_buf_printf(&c->out, "Authorization: Bearer %s\r\n", bearer);
    if (rc == 0 && body)
        rc = pl_buf_printf(&c->out,
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                           strlen(body), body);
    else if (rc == 0)
        rc = pl_buf_appends(&c->out, "\r\n");
    if (rc != 0)
        return -1;
    c->cb = cb;
    c->pending_err = PB_OK;
    switch (c->state) {
    case PB_CONN_READY:
        send_request(c);
        break;
    case PB_CONN_CLOSING:
        c->queued = true; /* connects once the old handle is closed */
        break;
    default:
        start_connect(c);
        break;
    }
    return 0;
}

void pb_conn_shutdown(pb_conn_t *c)
{
    c->dead = true;
    c->cb = NULL;
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, NULL);
    if (c->state != PB_CONN_CLOSED && c->state != PB_CONN_CLOSING) {
        c->state = PB_CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
}

void pb_conn_free(pb_conn_t *c)
{
    pl_buf_free(&c->out);
    pl_buf_free(&c->body);
}
