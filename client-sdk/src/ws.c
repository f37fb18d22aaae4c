/* ws: the signaling WebSocket on libwebsockets 4.1.6 (see ws.h).
 *
 * One lws context per owner, reused for every reconnect. Connections are structs of ours
 * passed to lws as the wsi's user data; lws' last word on a wsi is LWS_CALLBACK_WSI_DESTROY,
 * so a connection closed by its owner is freed there (or by the context's end).
 *
 * Destroying a context on a foreign libuv loop (lws 4.1.6) has two traps, both handled in
 * ctx_reap():
 *  - it is two-step: the first lws_context_destroy() starts closing lws' uv handles; once
 *    the loop has closed them (lws tags its static handles with handle->data == context), a
 *    second call frees the context and clears info.pcontext (as parleyd's server does);
 *  - it closes its event pipe's read end twice: lws_destroy_event_pipe() closes the fd at
 *    once (lws_plat_pipe_close) and again from the uv close callback of its poll handle
 *    (__lws_close_free_wsi_final). Seen here: the second close hit a socket the HTTP client
 *    had opened in between. So before the first destroy we find that fd (the context's poll
 *    handle on a FIFO) and, right after it, park /dev/null on the number until lws' second
 *    close (the descriptor is an eventfd here, not a FIFO). The window between lws' first close and
 * dup2() is a few instructions; other threads opening a descriptor exactly then remain a (tiny)
 * risk, once per client. */
#include "ws.h"

#include "parley.h"

#include <libwebsockets.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REAP_PERIOD_MS 5
#define REAP_MAX_TICKS 2000 /* 10 s: then the context is leaked rather than freed too early */
#define MAX_PIPE_FDS   4

typedef struct frame {
    struct frame *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom, then the message */
} frame_t;

struct pl__ws {
    pl__ws_ctx_t *ctx;
    pl__ws_t *prev, *next; /* the context's connections */
    pl__ws_callbacks_t cb;
    pl__ws_opts_t o;
    char *ip, *host, *path, *bearer;
    struct lws *wsi;
    frame_t *head, **tail;
    size_t queued;
    char *rx;
    size_t rx_len, rx_cap;
    int open;
    int closed;    /* the owner closed it: no more callbacks, free at WSI_DESTROY */
    int reported;  /* on_close ran */
    int destroyed; /* lws is done with it */
    int in_open;   /* inside lws_client_connect_via_info: failures are returned, not called */
    int failed_in_open;
    int peer_close_code;
    int in_cb; /* inside on_lws for this connection: frees wait until it returns */
};

struct pl__ws_ctx {
    uv_loop_t *loop;
    const pl__logger_t *log;
    struct lws_context *lws;
    uv_timer_t reaper;
    pl__ws_t *conns;
    int destroy_calls;
    int ticks;
    int pipe_fds[MAX_PIPE_FDS];
    int npipe;
};

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

static struct lws_protocols protocols[] = {
    {"parley.v1", on_lws, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const lws_retry_bo_t no_validity = {0};

/* lws logs through one process-wide function: keep it quiet (errors only, and those only
 * with PARLEY_LWS_DEBUG) so the SDK does not write into the host application's stderr. */
static void lws_log_sink(int level, const char *line)
{
    if (getenv("PARLEY_LWS_DEBUG"))
        fprintf(stderr, "lws: %s", line);
}

static void conn_free(pl__ws_t *ws)
{
    pl__ws_ctx_t *c = ws->ctx;
    if (ws->prev)
        ws->prev->next = ws->next;
    else if (c->conns == ws)
        c->conns = ws->next;
    if (ws->next)
        ws->next->prev = ws->prev;
    for (frame_t *f = ws->head, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    free(ws->rx);
    free(ws->ip);
    free(ws->host);
    free(ws->path);
    free(ws->bearer);
    free(ws);
}

static void report_close(pl__ws_t *ws, int code, int status)
{
    if (ws->closed || ws->reported)
        return;
    ws->reported = 1;
    ws->open = 0;
    if (ws->in_open) {
        ws->failed_in_open = 1;
        return;
    }
    ws->cb.on_close(ws->cb.ud, code, status);
}

static int add_auth_header(pl__ws_t *ws, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = (unsigned char **)in, *end = *p + len;
    size_t n = strlen(ws->bearer) + 8;
    char *v = malloc(n);
    if (!v)
        return -1;
    snprintf(v, n, "Bearer %s", ws->bearer);
    int rc = lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)v,
                                          (int)strlen(v), p, end);
    free(v);
    return rc ? -1 : 0;
}

static int on_receive(pl__ws_t *ws, struct lws *wsi, const void *in, size_t len)
{
    if (lws_frame_is_binary(wsi))
        return 0; /* parleyd sends text only; a binary frame is not ours to interpret */
    if (len > ws->o.max_message - ws->rx_len) {
        pl__logf(ws->ctx->log, PL__LOG_WARN, "signaling message over %zu bytes: closing",
                 ws->o.max_message);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if (ws->rx_len + len + 1 > ws->rx_cap) {
        size_t cap = ws->rx_cap ? ws->rx_cap : 4096;
        while (cap < ws->rx_len + len + 1)
            cap *= 2;
        char *b = realloc(ws->rx, cap);
        if (!b)
            return -1;
        ws->rx = b;
        ws->rx_cap = cap;
    }
    memcpy(ws->rx + ws->rx_len, in, len);
    ws->rx_len += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        ws->rx[ws->rx_len] = '\0';
        size_t n = ws->rx_len;
        ws->rx_len = 0;
        if (!ws->closed)
            ws->cb.on_message(ws->cb.ud, ws->rx, n);
    }
    return 0;
}

static int on_writeable(pl__ws_t *ws, struct lws *wsi)
{
    if (ws->closed)
        return -1;
    frame_t *f = ws->head;
    if (!f)
        return 0;
    int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
    if (n < (int)f->len)
        return -1;
    ws->head = f->next;
    if (!ws->head)
        ws->tail = &ws->head;
    ws->queued -= f->len;
    free(f);
    if (ws->head)
        lws_callback_on_writable(wsi);
    return 0;
}

static int dispatch(pl__ws_t *ws, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                    size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return add_auth_header(ws, wsi, in, len);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (ws->closed)
            return -1;
        ws->open = 1;
        if (ws->head)
            lws_callback_on_writable(wsi);
        ws->cb.on_open(ws->cb.ud);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return ws->closed ? -1 : on_receive(ws, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(ws, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The close code is the payload's first two bytes, big-endian. */
        if (in && len >= 2)
            ws->peer_close_code =
                ((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1];
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        int status = lws_http_client_http_response(wsi);
        pl__logf(ws->ctx->log, PL__LOG_INFO, "websocket connection failed: %s (HTTP %d)",
                 in ? (const char *)in : "?", status);
        report_close(ws, 1006, status == 101 ? 0 : status);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        report_close(ws, ws->peer_close_code ? ws->peer_close_code : 1006, 0);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        ws->wsi = NULL;
        ws->destroyed = 1;
        report_close(ws, ws->peer_close_code ? ws->peer_close_code : 1006, 0);
        return 0;
    default:
        return 0;
    }
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    pl__ws_t *ws = user;
    if (!ws)
        return 0;
    ws->in_cb++;
    int rc = dispatch(ws, wsi, reason, in, len);
    ws->in_cb--;
    /* lws is done with the wsi and its owner with the connection. */
    if (ws->destroyed && ws->closed && !ws->in_cb && !ws->in_open)
        conn_free(ws);
    return rc;
}

int pl__ws_ctx_new(uv_loop_t *loop, const pl__logger_t *log, pl__ws_ctx_t **out)
{
    pl__ws_ctx_t *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    c->loop = loop;
    c->log = log;
    lws_set_log_level(LLL_ERR, lws_log_sink);
    void *foreign[1] = {loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = foreign;
    info.pcontext = &c->lws;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.timeout_secs = 10; /* connect and handshake */
    /* Liveness is the signaling layer's heartbeat; lws' validity pings are not needed. */
    info.retry_and_idle_policy = &no_validity;
    /* The Authorization header makes the handshake larger than lws' default budget. */
    info.pt_serv_buf_size = 16384;
    info.gid = -1;
    info.uid = -1;
    c->lws = lws_create_context(&info);
    if (!c->lws) {
        free(c);
        return PARLEY_ENETWORK;
    }
    uv_timer_init(loop, &c->reaper);
    c->reaper.data = c;
    *out = c;
    return 0;
}

typedef struct {
    pl__ws_ctx_t *c;
    int found;
} walk_t;

/* Handles lws still has open on the loop: its static ones carry the context in ->data. */
static void find_ctx_handle(uv_handle_t *h, void *arg)
{
    walk_t *w = arg;
    if (h->data == (void *)w->c->lws)
        w->found = 1;
}

/* The event pipe: this context's poll handle on a descriptor that is not a socket (an
 * eventfd in Debian's build, a pipe elsewhere). */
static void find_pipe_fd(uv_handle_t *h, void *arg)
{
    walk_t *w = arg;
    uv_os_fd_t fd;
    struct stat st;
    if (h->type != UV_POLL || uv_is_closing(h) || !h->data || w->c->npipe >= MAX_PIPE_FDS)
        return;
    if (uv_fileno(h, &fd) != 0 || fstat(fd, &st) != 0 || S_ISSOCK(st.st_mode))
        return;
    if (lws_get_context((struct lws *)h->data) == w->c->lws)
        w->c->pipe_fds[w->c->npipe++] = fd;
}

static void on_reaper_closed(uv_handle_t *h)
{
    pl__ws_ctx_t *c = h->data;
    while (c->conns) {
        c->conns->closed = 1;
        conn_free(c->conns);
    }
    free(c);
}

static void first_destroy(pl__ws_ctx_t *c)
{
    walk_t w = {c, 0};
    uv_walk(c->loop, find_pipe_fd, &w);
    int nul = c->npipe ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
    c->destroy_calls = 1;
    lws_context_destroy(c->lws);
    for (int i = 0; i < c->npipe && nul >= 0; i++) {
        /* Only a descriptor lws has just closed gets the placeholder. */
        if (fcntl(c->pipe_fds[i], F_GETFD) == -1 && errno == EBADF) {
            if (dup2(nul, c->pipe_fds[i]) >= 0)
                fcntl(c->pipe_fds[i], F_SETFD, FD_CLOEXEC);
        }
    }
    if (nul >= 0)
        close(nul);
}

static void on_reap(uv_timer_t *t)
{
    pl__ws_ctx_t *c = t->data;
    if (c->lws && c->destroy_calls == 0) {
        first_destroy(c);
    } else if (c->lws) {
        walk_t w = {c, 0};
        uv_walk(c->loop, find_ctx_handle, &w);
        if (!w.found && c->destroy_calls < 4) {
            c->destroy_calls++;
            lws_context_destroy(c->lws); /* clears c->lws (info.pcontext) once freed */
        }
    }
    if (!c->lws || ++c->ticks > REAP_MAX_TICKS) {
        if (c->lws)
            pl__logf(c->log, PL__LOG_WARN, "libwebsockets context did not finish closing");
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, on_reaper_closed);
    }
}

void pl__ws_ctx_free(pl__ws_ctx_t *c)
{
    if (!c || uv_is_active((uv_handle_t *)&c->reaper) || c->destroy_calls)
        return;
    for (pl__ws_t *ws = c->conns; ws; ws = ws->next)
        ws->closed = 1;
    uv_timer_start(&c->reaper, on_reap, 0, REAP_PERIOD_MS);
}

int pl__ws_open(pl__ws_ctx_t *c, const pl__ws_opts_t *o, const pl__ws_callbacks_t *cb,
                pl__ws_t **out)
{
    if (!c || !c->lws || c->destroy_calls || !o || !o->ip || !o->host || !o->path || !o->bearer ||
        !cb)
        return PARLEY_EINVAL;
    pl__ws_t *ws = calloc(1, sizeof *ws);
    if (!ws)
        return PARLEY_ENOMEM;
    ws->ctx = c;
    ws->next = c->conns;
    if (c->conns)
        c->conns->prev = ws;
    c->conns = ws;
    ws->cb = *cb;
    ws->o = *o;
    ws->tail = &ws->head;
    ws->ip = strdup(o->ip);
    ws->host = strdup(o->host);
    ws->path = strdup(o->path);
    ws->bearer = strdup(o->bearer);
    if (!ws->ip || !ws->host || !ws->path || !ws->bearer) {
        conn_free(ws);
        return PARLEY_ENOMEM;
    }
    if (!ws->o.max_message)
        ws->o.max_message = 1 << 20;
    if (!ws->o.max_queue)
        ws->o.max_queue = 4 << 20;

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->lws;
    ci.address = ws->ip;
    ci.port = o->port;
    ci.path = ws->path;
    ci.host = ws->host;
    ci.origin = ws->host;
    ci.protocol = "parley.v1";
    ci.ietf_version_or_minus_one = -1;
    ci.userdata = ws;
    ci.pwsi = &ws->wsi;
    ci.retry_and_idle_policy = &no_validity;
    ws->in_open = 1;
    struct lws *w = lws_client_connect_via_info(&ci);
    ws->in_open = 0;
    if (!w || ws->failed_in_open || ws->destroyed) {
        /* A failure lws reported inside the call is returned, never called back. */
        ws->closed = 1;
        if (ws->destroyed || !w)
            conn_free(ws); /* lws is done with it (or never kept it) */
        else
            lws_set_timeout(w, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        return PARLEY_ENETWORK;
    }
    *out = ws;
    return 0;
}

int pl__ws_send(pl__ws_t *ws, const char *text, size_t len)
{
    if (!ws || ws->closed || ws->reported)
        return PARLEY_ECLOSED;
    if (len > ws->o.max_queue - ws->queued)
        return PARLEY_EAGAIN;
    frame_t *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f)
        return PARLEY_ENOMEM;
    f->next = NULL;
    f->len = len;
    memcpy(f->buf + LWS_PRE, text, len);
    *ws->tail = f;
    ws->tail = &f->next;
    ws->queued += len;
    if (ws->open && ws->wsi)
        lws_callback_on_writable(ws->wsi);
    return 0;
}

void pl__ws_close(pl__ws_t *ws)
{
    if (!ws || ws->closed)
        return;
    ws->closed = 1;
    if (ws->destroyed) {
        if (!ws->in_cb)
            conn_free(ws); /* else on_lws frees it when the callback returns */
        return;
    }
    /* lws kills it on its next service, outside this call; WSI_DESTROY frees it. */
    if (ws->wsi && !ws->reported)
        lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}
