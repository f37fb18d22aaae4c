/* http: a small HTTP/1.1 client (see http.h). The request is written in one uv_write; the
 * response is fed to llhttp as it arrives, its body collected up to max_response, and the
 * Retry-After header kept. One timer bounds the whole exchange. The request frees itself once
 * both of its handles are closed. */
#include "http.h"

#include "parley.h"
#include "util.h"

#include <jansson.h>
#include <llhttp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR_NAME_MAX  64 /* longer header names are not ones we read */
#define HDR_VALUE_MAX 64

struct pl__http_req {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    llhttp_t parser;
    llhttp_settings_t settings;
    pl__http_cb cb;
    void *ud;
    char *request; /* the bytes to write */
    size_t request_len;
    char *body; /* response body */
    size_t len, cap, max;
    char hname[HDR_NAME_MAX + 1];
    size_t hname_len;
    char hvalue[HDR_VALUE_MAX + 1];
    size_t hvalue_len;
    int in_value;
    int retry_after;
    int done;     /* the callback ran, or was cancelled */
    int complete; /* llhttp saw the end of the message */
    int too_big;
    int open_handles;
    char rbuf[16384];
};

static void finish(pl__http_req_t *r, int err);

static void on_closed(uv_handle_t *h)
{
    pl__http_req_t *r = h->data;
    if (--r->open_handles > 0)
        return;
    free(r->request);
    free(r->body);
    free(r);
}

static void close_all(pl__http_req_t *r)
{
    uv_timer_stop(&r->timer);
    if (!uv_is_closing((uv_handle_t *)&r->timer))
        uv_close((uv_handle_t *)&r->timer, on_closed);
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, on_closed);
}

/* A header pair is complete: keep what we use. */
static void header_done(pl__http_req_t *r)
{
    if (r->hname_len && r->hvalue_len <= HDR_VALUE_MAX && r->hname_len <= HDR_NAME_MAX) {
        r->hname[r->hname_len] = '\0';
        r->hvalue[r->hvalue_len] = '\0';
        if (strcasecmp(r->hname, "Retry-After") == 0) {
            char *end;
            long v = strtol(r->hvalue, &end, 10);
            /* Only delta-seconds; an HTTP-date is treated as absent (parleyd sends seconds). */
            if (end != r->hvalue && v >= 0 && v <= 86400)
                r->retry_after = (int)v;
        }
    }
    r->hname_len = r->hvalue_len = 0;
    r->in_value = 0;
}

static int on_hfield(llhttp_t *p, const char *at, size_t n)
{
    pl__http_req_t *r = p->data;
    if (r->in_value)
        header_done(r);
    if (r->hname_len + n <= HDR_NAME_MAX)
        memcpy(r->hname + r->hname_len, at, n);
    r->hname_len += n; /* an overlong name stays > HDR_NAME_MAX and is ignored */
    return 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t n)
{
    pl__http_req_t *r = p->data;
    r->in_value = 1;
    if (r->hvalue_len + n <= HDR_VALUE_MAX)
        memcpy(r->hvalue + r->hvalue_len, at, n);
    r->hvalue_len += n;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    pl__http_req_t *r = p->data;
    if (r->in_value)
        header_done(r);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    pl__http_req_t *r = p->data;
    if (n > r->max - r->len) {
        r->too_big = 1;
        return HPE_USER;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return HPE_USER;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, at, n);
    r->len += n;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    pl__http_req_t *r = p->data;
    r->complete = 1;
    /* Stop parsing: the connection is ours alone and whatever follows is not ours to read. */
    return HPE_PAUSED;
}

static void finish(pl__http_req_t *r, int err)
{
    if (r->done)
        return;
    r->done = 1;
    pl__http_resp_t resp;
    memset(&resp, 0, sizeof resp);
    resp.err = err;
    resp.status = err ? 0 : (int)r->parser.status_code;
    resp.body = r->body ? r->body : "";
    resp.len = r->len;
    resp.retry_after = r->retry_after;
    if (r->body)
        r->body[r->len] = '\0';
    close_all(r);
    r->cb(r->ud, &resp);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    pl__http_req_t *r = h->data;
    *buf = uv_buf_init(r->rbuf, sizeof r->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pl__http_req_t *r = s->data;
    if (r->done)
        return;
    if (n == UV_EOF) {
        /* A body delimited by the end of the connection ends here. */
        llhttp_errno_t e = llhttp_finish(&r->parser);
        finish(r, (r->complete || e == HPE_OK) && r->parser.status_code ? 0 : PARLEY_ENETWORK);
        return;
    }
    if (n < 0) {
        finish(r, r->complete ? 0 : PARLEY_ENETWORK);
        return;
    }
    if (n == 0)
        return;
    llhttp_errno_t e = llhttp_execute(&r->parser, buf->base, (size_t)n);
    if (r->complete) {
        finish(r, 0);
        return;
    }
    if (e != HPE_OK)
        finish(r, r->too_big ? PARLEY_EPROTO : (e == HPE_USER ? PARLEY_ENOMEM : PARLEY_EPROTO));
}

static void on_write(uv_write_t *w, int status)
{
    pl__http_req_t *r = w->data;
    if (status < 0 && !r->done)
        finish(r, PARLEY_ENETWORK);
}

static void on_connect(uv_connect_t *c, int status)
{
    pl__http_req_t *r = c->data;
    if (r->done)
        return;
    if (status < 0) {
        finish(r, PARLEY_ENETWORK);
        return;
    }
    uv_tcp_nodelay(&r->tcp, 1);
    uv_buf_t b = uv_buf_init(r->request, (unsigned)r->request_len);
    r->write.data = r;
    if (uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, on_write) < 0 ||
        uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) < 0)
        finish(r, PARLEY_ENETWORK);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, PARLEY_ETIMEDOUT);
}

/* The request head and body in one buffer. Header values are checked for CR/LF so that
 * no caller-supplied string can add a header. */
static char *build_request(const pl__http_opts_t *o, size_t *len_out)
{
    const char *vals[] = {o->method, o->host, o->path, o->bearer};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (vals[i] && strpbrk(vals[i], "\r\n"))
            return NULL;
    size_t cap = strlen(o->method) + strlen(o->path) + strlen(o->host) +
                 (o->bearer ? strlen(o->bearer) : 0) + o->body_len + 256;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    int n = snprintf(buf, cap,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                     "Accept: application/json\r\nUser-Agent: libparley/%s\r\n",
                     o->method, o->path, o->host, parley_version());
    if (o->bearer)
        n += snprintf(buf + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", o->bearer);
    if (o->body)
        n += snprintf(buf + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", o->body_len);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    if (o->body) {
        memcpy(buf + n, o->body, o->body_len);
        n += (int)o->body_len;
    }
    *len_out = (size_t)n;
    return buf;
}

int pl__http_start(uv_loop_t *loop, const struct sockaddr *addr, const pl__http_opts_t *o,
                   pl__http_cb cb, void *ud, pl__http_req_t **out)
{
    if (!loop || !addr || !o || !o->method || !o->host || !o->path || !cb)
        return PARLEY_EINVAL;
    pl__http_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return PARLEY_ENOMEM;
    r->request = build_request(o, &r->request_len);
    if (!r->request) {
        free(r);
        return PARLEY_EINVAL;
    }
    r->cb = cb;
    r->ud = ud;
    r->max = o->max_response ? o->max_response : 65536;
    r->retry_after = -1;
    llhttp_settings_init(&r->settings);
    r->settings.on_header_field = on_hfield;
    r->settings.on_header_value = on_hvalue;
    r->settings.on_headers_complete = on_headers_complete;
    r->settings.on_body = on_body;
    r->settings.on_message_complete = on_message_complete;
    llhttp_init(&r->parser, HTTP_RESPONSE, &r->settings);
    r->parser.data = r;

    int rc = uv_tcp_init(loop, &r->tcp);
    if (rc < 0) {
        free(r->request);
        free(r);
        return PARLEY_ENOMEM;
    }
    r->tcp.data = r;
    r->open_handles = 1;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->open_handles = 2;
    r->connect.data = r;
    uv_timer_start(&r->timer, on_timeout, o->timeout_ms ? o->timeout_ms : 10000, 0);
    if (uv_tcp_connect(&r->connect, &r->tcp, addr, on_connect) < 0) {
        /* Both handles are initialised: they close and free the request later. */
        r->done = 1;
        close_all(r);
        return PARLEY_ENETWORK;
    }
    *out = r;
    return 0;
}

void pl__http_cancel(pl__http_req_t *r)
{
    if (!r || r->done)
        return;
    r->done = 1;
    close_all(r);
}

int pl__http_error(const pl__http_resp_t *resp, char *detail, size_t dlen)
{
    if (detail && dlen)
        detail[0] = '\0';
    if (resp->err)
        return resp->err;
    json_t *j = resp->len ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    int err = code ? pl__err_from_code(code) : pl__err_from_status(resp->status);
    if (detail && dlen && msg)
        snprintf(detail, dlen, "%s", msg);
    json_decref(j);
    return err;
}
