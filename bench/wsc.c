/* wsc: WebSocket client connections on libwebsockets 4.1.6 (see wsc.h).
 *
 * The approach is client-sdk/src/ws.c's: lws on a foreign libuv loop (the evlib_uv
 * plugin, LWS_SERVER_OPTION_LIBUV + foreign_loops), our struct as the wsi's user data,
 * freed at LWS_CALLBACK_WSI_DESTROY once its owner has let go of it. The differences are
 * the bench's needs:
 *  - one context for the whole run and thousands of connections: lws sizes its
 *    descriptor table from RLIMIT_NOFILE at creation, hence pb_wsc_raise_nofile() first;
 *  - the loop lws runs on is a private one, embedded in pb.loop (its backend descriptor
 *    polled there, its timeout kept by a timer there, a prepare handle running it once per
 *    turn of pb.loop). pb_finish() closes every handle on pb.loop right after the
 *    scenario's stop(); lws' context destruction is two-step on a foreign loop (handles
 *    closed by the loop, then freed), and the driver's walk closed lws' handles behind its
 *    back, so that lws' own uv_close of them later aborted in libuv
 *    ("!uv__is_closing(handle)"). On its own loop, lws' handles are out of the walk's
 *    reach, and pb_wsc_cleanup() finishes the destruction by running that loop itself.
 *
 * lws 4.1.6 closes its event pipe's descriptor twice on destruction (client-sdk/src/ws.c
 * explains it). The SDK guards against the second close hitting a descriptor opened in
 * between; here nothing opens descriptors once the run has ended, so it is harmless. */
#include "wsc.h"

#include <libwebsockets.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"

typedef struct frame {
    struct frame *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom, then the message */
} frame_t;

struct pb_wsc {
    pb_wsc_t *prev, *next; /* every connection lws may still call back for */
    pb_wsc_cbs_t cb;
    void *ud;
    struct lws *wsi;
    frame_t *head, **tail;
    size_t queued;
    char *rx; /* a message arriving in fragments */
    size_t rx_len, rx_cap;
    int peer_close_code;
    bool open;
    bool closed;    /* the owner let go: no more callbacks, free at WSI_DESTROY */
    bool reported;  /* on_close ran */
    bool destroyed; /* lws is done with the wsi */
    bool in_open;   /* inside lws_client_connect_via_info: failures are returned */
    bool failed_in_open;
    int in_cb; /* inside on_lws for this connection: frees wait until it returns */
};

static struct {
    struct lws_context *lws;
    uv_loop_t inner; /* lws' loop, run from pb.loop */
    uv_poll_t embed_poll;
    uv_prepare_t embed_prep;
    uv_timer_t embed_timer;
    bool inner_ready, embedded;
    pb_wsc_t *conns;
    char ip[64]; /* the target as a numeric address: lws resolves no names then */
    uv_timer_t finish;
    bool finish_ready;
    bool shut;
} g;

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

/* One protocol for every connection, bound by name (local_protocol_name) whatever
 * subprotocol the server picks. Its rx buffer is also lws' SO_SNDBUF for the socket. */
static struct lws_protocols protocols[] = {
    {"pb-ws", on_lws, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The scenarios keep their own liveness (PeerJS heartbeats); parleyd's pings are answered
 * by lws itself. No validity pings of ours. */
static const lws_retry_bo_t no_validity = {0};

static void lws_log_sink(int level, const char *line)
{
    (void)level;
    if (getenv("PARLEY_LWS_DEBUG"))
        fprintf(stderr, "lws: %s", line);
}

unsigned long pb_wsc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1UL << 20 : (unsigned long)rl.rlim_cur;
}

static void unlink_conn(pb_wsc_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (g.conns == w)
        g.conns = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void conn_free(pb_wsc_t *w)
{
    unlink_conn(w);
    for (frame_t *f = w->head, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    free(w->rx);
    free(w);
}

static void report_close(pb_wsc_t *w, int status)
{
    if (w->closed || w->reported)
        return;
    w->reported = true;
    bool was_open = w->open;
    w->open = false;
    if (w->in_open) {
        w->failed_in_open = true;
        return;
    }
    int code = was_open ? (w->peer_close_code ? w->peer_close_code : 1006) : 0;
    w->cb.on_close(w, w->ud, was_open, code, status);
    w->closed = true; /* the owner has dropped it: lws' WSI_DESTROY frees it */
}

static int on_receive(pb_wsc_t *w, struct lws *wsi, const char *in, size_t len)
{
    if (lws_frame_is_binary(wsi))
        return 0; /* both servers send text only */
    bool last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (last && w->rx_len == 0) {
        w->cb.on_message(w, w->ud, in, len); /* whole in one piece: no copy */
        return 0;
    }
    if (len > PB_WSC_MAX_MESSAGE - w->rx_len) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if (w->rx_len + len > w->rx_cap) {
        size_t cap = w->rx_cap ? w->rx_cap : 8192;
        while (cap < w->rx_len + len)
            cap *= 2;
        char *b = realloc(w->rx, cap);
        if (!b)
            return -1;
        w->rx = b;
        w->rx_cap = cap;
    }
    memcpy(w->rx + w->rx_len, in, len);
    w->rx_len += len;
    if (last) {
        size_t n = w->rx_len;
        w->rx_len = 0;
        w->cb.on_message(w, w->ud, w->rx, n);
    }
    return 0;
}

static int on_writeable(pb_wsc_t *w, struct lws *wsi)
{
    frame_t *f = w->head;
    if (!f)
        return 0;
    /* lws keeps what the kernel did not take and sends it before the next WRITEABLE. */
    int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
    if (n < (int)f->len)
        return -1;
    w->head = f->next;
    if (!w->head)
        w->tail = &w->head;
    w->queued -= f->len;
    free(f);
    if (w->head)
        lws_callback_on_writable(wsi);
    return 0;
}

static int dispatch(pb_wsc_t *w, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                    size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (w->closed)
            return -1;
        w->open = true;
        if (w->head)
            lws_callback_on_writable(wsi);
        w->cb.on_open(w, w->ud);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return w->closed ? -1 : on_receive(w, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return w->closed ? -1 : on_writeable(w, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The close code is the payload's first two bytes, big-endian. */
        if (in && len >= 2)
            w->peer_close_code =
                ((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1];
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        int status = lws_http_client_http_response(wsi);
        report_close(w, status == 101 ? 0 : status);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        report_close(w, 0);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        w->wsi = NULL;
        w->destroyed = true;
        report_close(w, 0);
        return 0;
    default:
        return 0;
    }
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    pb_wsc_t *w = user;
    if (!w)
        return 0;
    w->in_cb++;
    int rc = dispatch(w, wsi, reason, in, len);
    w->in_cb--;
    /* lws is done with the wsi and its owner with the connection. */
    if (w->destroyed && w->closed && !w->in_cb && !w->in_open)
        conn_free(w);
    return rc;
}

/* ----------------------------------------------------------------------------------- */
/* lws' loop inside pb.loop */

static void on_embed_timer(uv_timer_t *t);

static void run_inner(void)
{
    uv_run(&g.inner, UV_RUN_NOWAIT);
    if (!g.embedded)
        return;
    int t = uv_backend_timeout(&g.inner);
    if (t < 0)
        uv_timer_stop(&g.embed_timer);
    else
        uv_timer_start(&g.embed_timer, on_embed_timer, (uint64_t)t, 0);
}

static void on_embed_poll(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)status;
    (void)events;
    run_inner();
}

static void on_embed_timer(uv_timer_t *t)
{
    (void)t;
    run_inner();
}

/* Once per turn of pb.loop, before it blocks: what the scenario asked of lws since (a
 * writable request, a close) reaches the inner loop's poller, and its timers run. */
static void on_embed_prep(uv_prepare_t *p)
{
    (void)p;
    run_inner();
}

int pb_wsc_init(void)
{
    const struct sockaddr *sa = (const struct sockaddr *)&pb.addr;
    int rc = sa->sa_family == AF_INET6
                 ? uv_ip6_name((const struct sockaddr_in6 *)sa, g.ip, sizeof g.ip)
                 : uv_ip4_name((const struct sockaddr_in *)sa, g.ip, sizeof g.ip);
    if (rc != 0) {
        fprintf(stderr, "parley-bench: cannot format the target's address\n");
        return -1;
    }
    if (uv_loop_init(&g.inner) != 0) {
        fprintf(stderr, "parley-bench: cannot make a libuv loop\n");
        return -1;
    }
    g.inner_ready = true;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_sink);
    void *foreign[1] = {&g.inner};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = foreign;
    info.pcontext = &g.lws;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    /* lws' bound on connect + handshake, in whole seconds. */
    info.timeout_secs = (pb.o.connect_timeout_ms + pb.o.timeout_ms + 999) / 1000;
    info.retry_and_idle_policy = &no_validity;
    info.pt_serv_buf_size = 8192; /* the handshake's request and answer headers */
    info.gid = -1;
    info.uid = -1;
    g.lws = lws_create_context(&info);
    if (!g.lws) {
        fprintf(stderr, "parley-bench: cannot create the libwebsockets context (is "
                        "libwebsockets-evlib_uv.so installed?)\n");
        return -1;
    }
    if (uv_poll_init(pb.loop, &g.embed_poll, uv_backend_fd(&g.inner)) != 0) {
        fprintf(stderr, "parley-bench: cannot poll the libwebsockets loop\n");
        return -1;
    }
    uv_prepare_init(pb.loop, &g.embed_prep);
    uv_timer_init(pb.loop, &g.embed_timer);
    uv_poll_start(&g.embed_poll, UV_READABLE, on_embed_poll);
    uv_prepare_start(&g.embed_prep, on_embed_prep);
    g.embedded = true;
    uv_timer_init(pb.loop, &g.finish);
    g.finish_ready = true;
    srandom((unsigned)(uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 16)));
    return 0;
}

static void on_finish(uv_timer_t *t)
{
    (void)t;
    pb_finish();
}

void pb_wsc_finish_soon(void)
{
    if (g.finish_ready && !pb.end_ns && !uv_is_closing((uv_handle_t *)&g.finish))
        uv_timer_start(&g.finish, on_finish, 0, 0);
}

void pb_wsc_shutdown(void)
{
    if (g.shut)
        return;
    g.shut = true;
    for (pb_wsc_t *w = g.conns; w; w = w->next)
        w->closed = true;
    if (g.embedded) {
        /* pb.loop's handles go; lws' loop is run by pb_wsc_cleanup() from now on. */
        g.embedded = false;
        uv_close((uv_handle_t *)&g.embed_poll, NULL);
        uv_close((uv_handle_t *)&g.embed_prep, NULL);
        uv_close((uv_handle_t *)&g.embed_timer, NULL);
    }
    if (g.lws)
        lws_context_destroy(g.lws); /* starts closing lws' handles on its loop */
}

void pb_wsc_cleanup(void)
{
    /* Once lws' loop has closed its handles, the next call frees the context (and clears
     * g.lws through info.pcontext). Bounded: a context that will not go is leaked. */
    for (int i = 0; g.lws && i < 1000; i++) {
        if (uv_run(&g.inner, UV_RUN_NOWAIT) == 0 || i % 10 == 9)
            lws_context_destroy(g.lws);
    }
    if (g.lws)
        fprintf(stderr, "parley-bench: the libwebsockets context did not finish closing\n");
    while (g.conns)
        conn_free(g.conns);
    if (g.inner_ready) {
        for (int i = 0; i < 1000 && uv_run(&g.inner, UV_RUN_NOWAIT) != 0; i++) {
        }
        if (uv_loop_close(&g.inner) != 0)
            fprintf(stderr, "parley-bench: handles left on the libwebsockets loop\n");
        g.inner_ready = false;
    }
}

pb_wsc_t *pb_wsc_open(const char *path, const char *subprotocol, const pb_wsc_cbs_t *cbs, void *ud)
{
    if (!g.lws || g.shut)
        return NULL;
    pb_wsc_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cb = *cbs;
    w->ud = ud;
    w->tail = &w->head;
    w->next = g.conns;
    if (g.conns)
        g.conns->prev = w;
    g.conns = w;

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = g.lws;
    ci.address = g.ip;
    ci.port = pb.o.port;
    ci.path = path;
    ci.host = pb.o.host;
    ci.origin = pb.o.host;
    ci.protocol = subprotocol;
    ci.local_protocol_name = "pb-ws";
    ci.ietf_version_or_minus_one = -1;
    ci.userdata = w;
    ci.pwsi = &w->wsi;
    ci.retry_and_idle_policy = &no_validity;
    w->in_open = true;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    w->in_open = false;
    if (!wsi || w->failed_in_open || w->destroyed) {
        /* A failure lws reported inside the call is returned, never called back. */
        w->closed = true;
        if (w->destroyed || !wsi)
            conn_free(w); /* lws is done with it (or never kept it) */
        else
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        return NULL;
    }
    return w;
}

int pb_wsc_send(pb_wsc_t *w, const char *text, size_t len)
{
    if (!w || w->closed || !w->open || !w->wsi)
        return -1;
    if (len > PB_WSC_MAX_QUEUE - w->queued)
        return -1;
    /* Nothing waiting: write at once. Going through a writable callback costs two epoll_ctl
     * calls per message (the poll mask gains and loses POLLOUT), which made the bench as busy
     * as the server it measures. libwebsockets keeps what the kernel does not take and
     * sends it before anything else. */
    if (!w->head && !lws_partial_buffered(w->wsi)) {
        unsigned char stack[LWS_PRE + 1024];
        unsigned char *buf = len <= 1024 ? stack : malloc(LWS_PRE + len);
        if (!buf)
            return -1;
        memcpy(buf + LWS_PRE, text, len);
        int n = lws_write(w->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT);
        if (buf != stack)
            free(buf);
        if (n < (int)len) {
            lws_set_timeout(w->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
            return -1;
        }
        return 0;
    }
    frame_t *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f)
        return -1;
    f->next = NULL;
    f->len = len;
    memcpy(f->buf + LWS_PRE, text, len);
    *w->tail = f;
    w->tail = &f->next;
    w->queued += len;
    lws_callback_on_writable(w->wsi);
    return 0;
}

size_t pb_wsc_queued(const pb_wsc_t *w)
{
    return w ? w->queued : 0;
}

void pb_wsc_close(pb_wsc_t *w)
{
    if (!w || w->closed)
        return;
    w->closed = true;
    if (w->destroyed) {
        if (!w->in_cb)
            conn_free(w); /* else on_lws frees it when the callback returns */
        return;
    }
    /* lws kills it on its next service, outside this call; WSI_DESTROY frees it. */
    if (w->wsi)
        lws_set_timeout(w->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* ----------------------------------------------------------------------------------- */
/* Small shared helpers */

void pb_ws_close_kind(char *buf, size_t n, bool was_open, int close_code, int http_status)
{
    if (was_open)
        snprintf(buf, n, "ws_close_%d", close_code);
    else if (http_status > 0 && http_status < 600)
        snprintf(buf, n, "ws_http_%d", http_status);
    else
        snprintf(buf, n, "connect");
}

void pb_peerjs_random(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[32];
    size_t want = n > 1 ? (n - 1) / 2 : 0;
    if (want > sizeof raw)
        want = sizeof raw;
    /* Unique enough for ids and tokens of one run: uv_random would block for nothing. */
    for (size_t i = 0; i < want; i++)
        raw[i] = (unsigned char)(random() >> 7);
    for (size_t i = 0; i < want; i++) {
        buf[2 * i] = hex[raw[i] >> 4];
        buf[2 * i + 1] = hex[raw[i] & 15];
    }
    if (n)
        buf[2 * want] = '\0';
}

void pb_peerjs_path(char *buf, size_t n, const char *id, const char *token)
{
    /* The PeerJS server serves its WebSocket at <its --path>/peerjs; --url's path is it. */
    snprintf(buf, n, "%s/peerjs?key=%s&id=%s&token=%s", pb.o.base, pb.o.peerjs_key, id, token);
}
