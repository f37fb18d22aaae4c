/* idle: open N WebSockets, hold them, and read what they cost the server in memory.
 *
 * parleyd: the memberships are made over REST first (rooms of --members members: a creator
 * and joins), then the sockets open (/signaling/ws?token=). With rooms of more than one
 * member the joins leave offer-request and peer-joined envelopes waiting in inboxes until
 * the sockets open and take them, which blurs the memory figures; --members 1 (one room a
 * socket) measures the socket and the membership each on its own. PeerJS: the sockets open with
 * random ids (<path>/peerjs?key=&id=&token=) and count as open at the server's OPEN.
 * Opening runs at --open-rate a second, or as fast as possible with at most
 * IDLE_CONNECTING connects in flight. With --server-pid the server's VmRSS is read before
 * the setup, after it (before any socket), once every socket has opened or failed (after
 * IDLE_SETTLE_MS), and after --hold seconds of holding; then every socket is closed.
 *
 * The unit is the connection: pb_done(connect latency, opened or not) per socket.
 * --duration bounds the whole run (setup, opening, settling, holding): past it no more
 * sockets are opened, and the driver ends the run at its hard stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/json.h"
#include "wsc.h"

/* Connects in flight at once: enough to keep a server busy, few enough that its listen
 * backlog and lws' connect timeout are never the bottleneck. */
#define IDLE_CONNECTING 128
/* Time the server gets after the last socket opened before its memory is read. */
#define IDLE_SETTLE_MS 1000
/* How often the opener runs with --open-rate. */
#define OPEN_TICK_MS 10
/* Descriptors kept for everything but the WebSockets (stdio, the setup's HTTP, lws). */
#define FD_RESERVE 64

typedef struct {
    pb_wsc_t *ws;
    char id[40]; /* PeerJS id (the token is shared: ids are unique) */
    uint64_t started_ns;
    bool connecting, open, failed;
} sock_t;

typedef enum { PH_SETUP, PH_OPENING, PH_SETTLING, PH_HOLDING, PH_DONE } phase_t;

static struct {
    sock_t *s;
    unsigned n;
    pb_member_t *members;
    bool peerjs;
    phase_t phase;
    unsigned next;       /* next socket to open */
    unsigned connecting; /* connects in flight */
    unsigned opened, failed, closed_early;
    bool opening_over; /* no more sockets will be started */
    uint64_t open_phase_ns, open_done_ns, setup_ns;
    long long rss_start, rss_setup, rss_open, rss_held;
    char peerjs_token[17];
    uv_timer_t opener, phase_timer, beat;
    bool timers;
} d;

static void open_some(void);

static void read_rss(long long *slot)
{
    *slot = pb.o.server_pid ? pb_proc_rss(pb.o.server_pid) : -1;
}

/* ----------------------------------------------------------------------------------- */
/* Phases after opening: settle, read, hold, read, close */

static void on_held(uv_timer_t *t)
{
    (void)t;
    read_rss(&d.rss_held);
    d.phase = PH_DONE;
    pb_finish(); /* closes every socket (stop) */
}

static void on_settled(uv_timer_t *t)
{
    (void)t;
    read_rss(&d.rss_open);
    d.phase = PH_HOLDING;
    uv_timer_start(&d.phase_timer, on_held, (uint64_t)(pb.o.hold_s * 1000), 0);
}

/* Every socket started has opened or failed, and no more will start. */
static void maybe_opened_all(void)
{
    if (d.phase != PH_OPENING || !d.opening_over || d.connecting)
        return;
    d.open_done_ns = uv_hrtime();
    d.phase = PH_SETTLING;
    uv_timer_stop(&d.opener);
    if (d.opened == 0) {
        pb_wsc_finish_soon();
        return;
    }
    uv_timer_start(&d.phase_timer, on_settled, IDLE_SETTLE_MS, 0);
}

/* ----------------------------------------------------------------------------------- */
/* Sockets */

static void sock_opened(sock_t *s)
{
    if (!s->connecting)
        return;
    s->connecting = false;
    s->open = true;
    d.connecting--;
    d.opened++;
    pb_done((uv_hrtime() - s->started_ns) / 1000, true);
    open_some();
    maybe_opened_all();
}

static void sock_failed(sock_t *s, const char *kind)
{
    pb_error(kind);
    if (s->connecting) {
        s->connecting = false;
        s->failed = true;
        d.connecting--;
        d.failed++;
        pb_done(0, false);
        open_some();
        maybe_opened_all();
    } else if (s->open) {
        s->open = false;
        d.closed_early++;
    }
}

static void on_open(pb_wsc_t *w, void *ud)
{
    (void)w;
    if (!d.peerjs)
        sock_opened(ud); /* PeerJS: open at its OPEN message */
}

static void on_message(pb_wsc_t *w, void *ud, const char *text, size_t len)
{
    (void)w;
    sock_t *s = ud;
    if (!d.peerjs)
        return; /* parleyd pushes the offer-requests the joins made: nothing to do */
    json_t *j = pl_json_loadb(text, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && strcmp(type, "OPEN") == 0) {
        sock_opened(s);
    } else if (type && (strcmp(type, "ERROR") == 0 || strcmp(type, "ID-TAKEN") == 0)) {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "payload"), "msg"));
        const char *kind = strcmp(type, "ID-TAKEN") == 0      ? "peerjs_id_taken"
                           : msg && strstr(msg, "concurrent") ? "peerjs_concurrent_limit"
                                                              : "peerjs_error";
        sock_failed(s, kind);
        pb_wsc_close(s->ws); /* counted: its close is not counted again */
        s->ws = NULL;
    }
    json_decref(j);
}

static void on_close(pb_wsc_t *w, void *ud, bool was_open, int code, int status)
{
    (void)w;
    sock_t *s = ud;
    char kind[32];
    s->ws = NULL;
    pb_ws_close_kind(kind, sizeof kind, was_open, code, status);
    sock_failed(s, kind);
}

static const pb_wsc_cbs_t cbs = {on_open, on_message, on_close};

static void open_one(unsigned i)
{
    sock_t *s = &d.s[i];
    char path[1024];
    if (d.peerjs) {
        pb_peerjs_path(path, sizeof path, s->id, d.peerjs_token);
    } else if (!d.members[i].token) {
        d.failed++; /* its membership failed (the error is the setup's) */
        return;
    } else {
        snprintf(path, sizeof path, "%s/signaling/ws?token=%s", pb.o.base, d.members[i].token);
    }
    pb.issued++;
    s->started_ns = uv_hrtime();
    s->connecting = true;
    d.connecting++;
    s->ws = pb_wsc_open(path, d.peerjs ? NULL : "parley.v1", &cbs, s);
    if (!s->ws)
        sock_failed(s, "connect");
}

/* Starts what the bounds allow: connects in flight, --open-rate, the run's deadline. */
static void open_some(void)
{
    if (d.phase != PH_OPENING || d.opening_over)
        return;
    uint64_t allowed = d.n;
    if (pb.o.open_rate) {
        double secs = (double)(uv_hrtime() - d.open_phase_ns) / 1e9;
        allowed = 1 + (uint64_t)(secs * pb.o.open_rate);
    }
    while (d.next < d.n && d.next < allowed && d.connecting < IDLE_CONNECTING) {
        if (!pb_may_issue()) {
            d.next = d.n; /* past the deadline or the count: the rest are not tried */
            break;
        }
        open_one(d.next++);
    }
    if (d.next >= d.n) {
        d.opening_over = true;
        maybe_opened_all();
    }
}

static void on_opener(uv_timer_t *t)
{
    (void)t;
    open_some();
}

static void start_opening(void)
{
    d.phase = PH_OPENING;
    d.open_phase_ns = uv_hrtime();
    if (pb.o.open_rate)
        uv_timer_start(&d.opener, on_opener, OPEN_TICK_MS, OPEN_TICK_MS);
    open_some();
}

static void on_setup_done(void)
{
    d.setup_ns = uv_hrtime() - pb.start_ns;
    read_rss(&d.rss_setup);
    start_opening();
}

/* PeerJS drops a client whose last HEARTBEAT is older than its alive_timeout (60 s from
 * its CLI, 90 s as a library). parleyd needs nothing: lws answers its pings. */
static void on_beat(uv_timer_t *t)
{
    (void)t;
    static const char hb[] = "{\"type\":\"HEARTBEAT\"}";
    for (unsigned i = 0; i < d.n; i++)
        if (d.s[i].open && d.s[i].ws)
            pb_wsc_send(d.s[i].ws, hb, sizeof hb - 1);
}

/* ----------------------------------------------------------------------------------- */
/* The scenario */

static int start(void)
{
    unsigned n = pb.o.connections;
    unsigned long fds = pb_wsc_raise_nofile();
    if (n + FD_RESERVE > fds) {
        fprintf(stderr,
                "parley-bench: --connections %u needs about %u descriptors but RLIMIT_NOFILE "
                "allows %lu; the hard limit cannot be raised without CAP_SYS_RESOURCE (root), "
                "so at most %lu sockets fit in one process here\n",
                n, n + FD_RESERVE, fds, fds > FD_RESERVE ? fds - FD_RESERVE : 0);
        return -1;
    }
    d.peerjs = pb.o.target == PB_TARGET_PEERJS;
    d.rss_start = d.rss_setup = d.rss_open = d.rss_held = -1;
    d.s = calloc(n, sizeof *d.s);
    if (!d.s) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    if (pb_wsc_init() != 0)
        return -1;
    uv_timer_init(pb.loop, &d.opener);
    uv_timer_init(pb.loop, &d.phase_timer);
    uv_timer_init(pb.loop, &d.beat);
    d.timers = true;
    d.n = n;
    read_rss(&d.rss_start);
    if (d.peerjs) {
        uint64_t beat_ms = (uint64_t)(pb.o.heartbeat_s * 1000);
        uv_timer_start(&d.beat, on_beat, beat_ms, beat_ms);
        pb_peerjs_random(d.peerjs_token, sizeof d.peerjs_token);
        for (unsigned i = 0; i < n; i++) {
            char rnd[9];
            pb_peerjs_random(rnd, sizeof rnd);
            snprintf(d.s[i].id, sizeof d.s[i].id, "pb%u-%s", i, rnd);
        }
        d.rss_setup = d.rss_start; /* no setup */
        start_opening();
        return 0;
    }
    d.members = calloc(n, sizeof *d.members);
    if (!d.members) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    return pb_setup_members(d.members, n, pb.o.members, on_setup_done);
}

static void stop(void)
{
    pb_setup_stop();
    if (d.timers) {
        uv_close((uv_handle_t *)&d.opener, NULL);
        uv_close((uv_handle_t *)&d.phase_timer, NULL);
        uv_close((uv_handle_t *)&d.beat, NULL);
        d.timers = false;
    }
    pb_wsc_shutdown(); /* every socket, without callbacks */
}

static const char *const phase_names[] = {"setup", "opening", "settling", "holding", "done"};

static void progress(char *buf, size_t n)
{
    snprintf(buf, n, "%s  open %u/%u  connecting %u  failed %u", phase_names[d.phase], d.opened,
             d.n, d.connecting, d.failed);
}

static json_t *bytes_or_null(long long v)
{
    return v >= 0 ? json_integer((json_int_t)v) : json_null();
}

static json_t *per_conn(long long to, long long from)
{
    if (to < 0 || from < 0 || d.opened == 0)
        return json_null();
    return json_real((double)(to - from) / (double)d.opened);
}

static void report(json_t *rep)
{
    json_object_set_new(rep, "opened", json_integer((json_int_t)d.opened));
    json_object_set_new(rep, "failed", json_integer((json_int_t)d.failed));
    json_object_set_new(rep, "closed_early", json_integer((json_int_t)d.closed_early));
    json_object_set_new(rep, "room_size", d.peerjs ? json_null() : json_integer(pb.o.members));
    json_object_set_new(rep, "setup_s", json_real((double)d.setup_ns / 1e9));
    json_object_set_new(
        rep, "open_s",
        json_real(d.open_done_ns ? (double)(d.open_done_ns - d.open_phase_ns) / 1e9 : 0.0));
    json_object_set_new(rep, "hold_s", json_real(pb.o.hold_s));
    json_object_set_new(rep, "server_pid",
                        pb.o.server_pid ? json_integer(pb.o.server_pid) : json_null());
    json_object_set_new(rep, "rss_start", bytes_or_null(d.rss_start));
    json_object_set_new(rep, "rss_setup", bytes_or_null(d.rss_setup));
    json_object_set_new(rep, "rss_open", bytes_or_null(d.rss_open));
    json_object_set_new(rep, "rss_held", bytes_or_null(d.rss_held));
    json_object_set_new(rep, "bytes_per_conn", per_conn(d.rss_held, d.rss_setup));
    json_object_set_new(rep, "bytes_per_conn_total", per_conn(d.rss_held, d.rss_start));
}

static void mib(const char *label, long long v)
{
    if (v >= 0)
        printf(" %s %.1f", label, (double)v / 1048576.0);
    else
        printf(" %s -", label);
}

static void text(json_t *rep)
{
    printf("sockets     opened %u failed %u closed early %u (of %u), opening %.3f s, ", d.opened,
           d.failed, d.closed_early, d.n, json_real_value(json_object_get(rep, "open_s")));
    if (d.phase == PH_DONE)
        printf("held %.1f s\n", pb.o.hold_s);
    else
        printf("ended while %s\n", phase_names[d.phase]);
    printf("server MiB ");
    mib("start", d.rss_start);
    mib("setup", d.rss_setup);
    mib("open", d.rss_open);
    mib("held", d.rss_held);
    printf("\n");
    json_t *b = json_object_get(rep, "bytes_per_conn");
    json_t *bt = json_object_get(rep, "bytes_per_conn_total");
    if (json_is_real(b) && json_is_real(bt))
        printf("per socket  %.0f bytes (%.0f with its membership)\n", json_real_value(b),
               json_real_value(bt));
    else
        printf("per socket  - (give --server-pid)\n");
}

static void cleanup(void)
{
    pb_wsc_cleanup();
    pb_setup_free();
    if (d.members)
        for (unsigned i = 0; i < d.n; i++)
            free(d.members[i].token);
    free(d.members);
    free(d.s);
}

const pb_scenario_t pb_scenario_idle = {.name = "idle",
                                        .unit = "connection",
                                        .start = start,
                                        .stop = stop,
                                        .progress = progress,
                                        .report = report,
                                        .text = text,
                                        .cleanup = cleanup};
