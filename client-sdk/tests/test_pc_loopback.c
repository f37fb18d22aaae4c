/* Two pcs in one process on one uv loop, wired to each other directly (no server), on
 * 127.0.0.1: offer/answer, trickled candidates both ways with end-of-candidates, the channel
 * opening, 1,000 messages each way (1 byte to 64 KiB, byte-exact and in order), a clean close;
 * then a peer that never answers (PARLEY_ETIMEDOUT) and a tampered fingerprint
 * (PARLEY_EFINGERPRINT). Every test is bounded by a watchdog timer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "parley.h"
#include "pc.h"
#include "test.h"

#define NMSG 1000

static const char *const loopback[] = {"127.0.0.1", NULL};

typedef struct side {
    const char *name;
    pl__pc_t *pc;
    struct side *peer;
    uv_loop_t *loop;
    int tamper_outgoing_fp; /* corrupt the fingerprint of the SDP we hand to the peer */
    int got_desc, ncand, got_eoc, candidates_after_desc_ok;
    int open;
    uint64_t open_ms;
    int closed, closed_err;
    uint64_t closed_ms;
    size_t nsent, nrecv;
    uint8_t *sendbuf;
    long filled; /* the message index whose bytes are in the send buffer, -1: none */
    int recv_bad;
    uint64_t bytes_recv;
} side_t;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Message i of a side: size and content derived from (seed, i), so the receiver checks
 * order and content in one comparison. */
static size_t msg_size(unsigned i)
{
    static const size_t fixed[] = {1, 1150, 1151, 1152, 16384, 65536, 2, 1200, 65535, 4096};
    if (i < sizeof fixed / sizeof fixed[0])
        return fixed[i];
    uint32_t x = i * 2654435761u;
    x ^= x >> 15;
    return 1 + x % 65536;
}

static void msg_fill(uint8_t *buf, size_t len, unsigned seed, unsigned i)
{
    uint32_t x = seed * 7919u + i * 104729u + 1;
    for (size_t j = 0; j < len; j++) {
        x = x * 1103515245u + 12345u;
        buf[j] = (uint8_t)(x >> 16);
    }
}

static unsigned side_seed(const side_t *s)
{
    return (unsigned)(unsigned char)s->name[0];
}

static void tamper(char *sdp)
{
    char *fp = strstr(sdp, "a=fingerprint:sha-256 ");
    if (fp) {
        char *h = fp + strlen("a=fingerprint:sha-256 ");
        h[0] = h[0] == 'A' ? 'B' : 'A';
    }
}

static void on_desc(void *ud, const char *type, const char *sdp)
{
    side_t *s = ud;
    s->got_desc = 1;
    char *copy = strdup(sdp);
    if (s->tamper_outgoing_fp)
        tamper(copy);
    int rc = pl__pc_set_remote(s->peer->pc, type, copy);
    CHECK_EQ_INT(rc, 0);
    free(copy);
}

static void on_cand(void *ud, const char *cand, const char *mid)
{
    side_t *s = ud;
    if (!s->got_desc)
        s->candidates_after_desc_ok = -1;
    if (cand) {
        s->ncand++;
        CHECK(strncmp(cand, "candidate:", 10) == 0);
    } else {
        s->got_eoc++;
    }
    CHECK(mid != NULL);
    if (s->peer->pc)
        CHECK_EQ_INT(pl__pc_add_candidate(s->peer->pc, cand, mid), 0);
}

static void on_open(void *ud)
{
    side_t *s = ud;
    s->open = 1;
    s->open_ms = now_ms();
}

static uint8_t *expect_buf;

static void on_message(void *ud, int binary, const void *data, size_t len)
{
    side_t *s = ud;
    unsigned i = (unsigned)s->nrecv;
    size_t want = msg_size(i);
    if (len != want || binary != (int)(i % 2)) {
        s->recv_bad++;
    } else {
        msg_fill(expect_buf, want, side_seed(s->peer), i);
        if (memcmp(expect_buf, data, len) != 0)
            s->recv_bad++;
    }
    s->nrecv++;
    s->bytes_recv += len;
}

static void on_closed(void *ud, int err)
{
    side_t *s = ud;
    s->closed++;
    s->closed_err = err;
    s->closed_ms = now_ms();
}

static pl__pc_callbacks_t callbacks(side_t *s)
{
    pl__pc_callbacks_t cb = {s, on_desc, on_cand, on_open, on_message, on_closed};
    return cb;
}

static int new_side(uv_loop_t *loop, side_t *s, const char *name, uint32_t timeout_ms)
{
    s->name = name;
    s->loop = loop;
    pl__pc_config_t cfg = {loopback, NULL, 0, timeout_ms};
    pl__pc_callbacks_t cb = callbacks(s);
    return pl__pc_new(loop, &cfg, &cb, &s->pc);
}

/* A fresh loop with two sides wired to each other. */
static int new_pair(uv_loop_t *loop, side_t *a, side_t *b, uint32_t timeout_ms)
{
    uv_loop_init(loop);
    a->peer = b;
    b->peer = a;
    int rc = new_side(loop, a, "A", timeout_ms);
    return rc ? rc : new_side(loop, b, "B", timeout_ms);
}

/* ---- driving the loop ---- */

typedef struct {
    side_t *a, *b;
    uv_timer_t pump, watchdog;
    int expired;
    int phase; /* 0 connecting, 1 sending, 2 closing, 3 done */
    uint64_t t_offer, t_open, t_sent_start, t_all_recv;
} run_t;

static void pump_side(side_t *s)
{
    uint8_t *buf = s->sendbuf;
    while (s->nsent < NMSG) {
        unsigned i = (unsigned)s->nsent;
        size_t len = msg_size(i);
        if (s->filled != (long)i) { /* after PARLEY_EAGAIN the bytes are still there */
            msg_fill(buf, len, side_seed(s), i);
            s->filled = (long)i;
        }
        int rc = pl__pc_send(s->pc, (int)(i % 2), buf, len);
        if (rc == PARLEY_EAGAIN)
            return;
        if (rc != 0) {
            fprintf(stderr, "%s: send %u failed: %d\n", s->name, i, rc);
            s->recv_bad++;
            s->nsent = NMSG;
            return;
        }
        s->nsent++;
    }
}

static void close_all(run_t *r)
{
    uv_timer_stop(&r->pump);
    uv_timer_stop(&r->watchdog);
    if (!uv_is_closing((uv_handle_t *)&r->pump))
        uv_close((uv_handle_t *)&r->pump, NULL);
    if (!uv_is_closing((uv_handle_t *)&r->watchdog))
        uv_close((uv_handle_t *)&r->watchdog, NULL);
    if (r->a->pc)
        pl__pc_close(r->a->pc);
    if (r->b && r->b->pc)
        pl__pc_close(r->b->pc);
    r->a->pc = NULL;
    if (r->b)
        r->b->pc = NULL;
}

static void on_pump_bulk(uv_timer_t *t)
{
    run_t *r = t->data;
    side_t *a = r->a, *b = r->b;
    if (r->phase == 0 && a->open && b->open) {
        r->t_open = now_ms();
        r->t_sent_start = r->t_open;
        r->phase = 1;
    }
    if (r->phase == 1) {
        pump_side(a);
        pump_side(b);
        if (a->nrecv == NMSG && b->nrecv == NMSG) {
            r->t_all_recv = now_ms();
            r->phase = 2;
            pl__pc_close(a->pc); /* b must see a clean close */
            a->pc = NULL;
        }
    }
    if (r->phase == 2 && b->closed) {
        r->phase = 3;
        close_all(r);
    }
    if ((a->closed || b->closed) && r->phase < 2) {
        fprintf(stderr, "closed early: a %d (%d) b %d (%d)\n", a->closed, a->closed_err, b->closed,
                b->closed_err);
        close_all(r);
    }
}

static void on_watchdog(uv_timer_t *t)
{
    run_t *r = t->data;
    r->expired = 1;
    fprintf(stderr,
            "watchdog: phase %d, a open %d recv %zu sent %zu, b open %d recv %zu sent %zu\n",
            r->phase, r->a->open, r->a->nrecv, r->a->nsent, r->b ? r->b->open : 0,
            r->b ? r->b->nrecv : 0, r->b ? r->b->nsent : 0);
    close_all(r);
}

static void start_timers(uv_loop_t *loop, run_t *r, uv_timer_cb pump_cb, uint64_t watchdog_ms)
{
    uv_timer_init(loop, &r->pump);
    uv_timer_init(loop, &r->watchdog);
    r->pump.data = r->watchdog.data = r;
    uv_timer_start(&r->pump, pump_cb, 1, 1);
    uv_timer_start(&r->watchdog, on_watchdog, watchdog_ms, 0);
}

static void test_loopback_bulk(void)
{
    uv_loop_t loop;
    side_t a = {0}, b = {0};
    REQUIRE(new_pair(&loop, &a, &b, 10000) == 0);
    CHECK_EQ_INT(pl__pc_send(a.pc, 1, "x", 1), PARLEY_ENOTCONN);
    CHECK_EQ_INT(pl__pc_max_message_size(a.pc), 0);
    run_t r;
    memset(&r, 0, sizeof r);
    r.a = &a;
    r.b = &b;
    a.sendbuf = malloc(65536);
    b.sendbuf = malloc(65536);
    a.filled = b.filled = -1;
    expect_buf = malloc(65536);
    start_timers(&loop, &r, on_pump_bulk, 60000);
    r.t_offer = now_ms();
    CHECK_EQ_INT(pl__pc_create_offer(a.pc), 0);
    CHECK_EQ_INT(pl__pc_create_offer(a.pc), PARLEY_ESTATE);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!r.expired);
    CHECK_EQ_INT(r.phase, 3);
    CHECK(a.open && b.open);
    CHECK(a.ncand >= 1 && b.ncand >= 1);
    CHECK_EQ_INT(a.got_eoc, 1);
    CHECK_EQ_INT(b.got_eoc, 1);
    CHECK(a.candidates_after_desc_ok == 0 && b.candidates_after_desc_ok == 0);
    CHECK_EQ_INT(a.nrecv, NMSG);
    CHECK_EQ_INT(b.nrecv, NMSG);
    CHECK_EQ_INT(a.recv_bad, 0);
    CHECK_EQ_INT(b.recv_bad, 0);
    CHECK_EQ_INT(a.closed, 0); /* closed by its owner: no callback */
    CHECK_EQ_INT(b.closed, 1);
    CHECK_EQ_INT(b.closed_err, 0);
    if (r.t_all_recv) {
        double secs = (double)(r.t_all_recv - r.t_sent_start) / 1000.0;
        if (secs <= 0)
            secs = 0.001;
        fprintf(stderr,
                "loopback: offer-to-open %llu ms; %d messages each way (%.1f MB total) in %.2f s: "
                "%.0f messages/s, %.1f MB/s\n",
                (unsigned long long)(r.t_open - r.t_offer), NMSG,
                (double)(a.bytes_recv + b.bytes_recv) / 1e6, secs, 2 * NMSG / secs,
                (double)(a.bytes_recv + b.bytes_recv) / 1e6 / secs);
    }
    free(a.sendbuf);
    free(b.sendbuf);
    free(expect_buf);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- a peer that vanishes ---- */

static void on_pump_wait_closed(uv_timer_t *t)
{
    run_t *r = t->data;
    if (r->a->closed && (!r->b || r->b->closed || r->phase == 9)) {
        r->phase = 3;
        close_all(r);
    }
}

static void test_no_answer_times_out(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    side_t a = {0}, ghost = {0};
    a.peer = &ghost; /* ghost.pc stays NULL: the offer goes nowhere */
    a.name = "A";
    pl__pc_config_t cfg = {loopback, NULL, 0, 1500};
    pl__pc_callbacks_t cb = callbacks(&a);
    cb.on_local_description = NULL;
    cb.on_local_candidate = NULL;
    REQUIRE(pl__pc_new(&loop, &cfg, &cb, &a.pc) == 0);
    run_t r;
    memset(&r, 0, sizeof r);
    r.a = &a;
    start_timers(&loop, &r, on_pump_wait_closed, 10000);
    uint64_t t0 = now_ms();
    CHECK_EQ_INT(pl__pc_create_offer(a.pc), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!r.expired);
    CHECK_EQ_INT(a.closed, 1);
    CHECK_EQ_INT(a.closed_err, PARLEY_ETIMEDOUT);
    uint64_t took = a.closed_ms - t0;
    fprintf(stderr, "no answer: on_closed(ETIMEDOUT) after %llu ms (timeout 1500)\n",
            (unsigned long long)took);
    CHECK(took >= 1400 && took < 2500);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- a tampered fingerprint ---- */

static void on_pump_mismatch(uv_timer_t *t)
{
    run_t *r = t->data;
    side_t *victim = r->a->tamper_outgoing_fp ? r->b : r->a;
    if (victim->closed) {
        r->phase = 3;
        close_all(r);
    }
}

static void run_mismatch(int tamper_offer)
{
    uv_loop_t loop;
    side_t a = {0}, b = {0};
    REQUIRE(new_pair(&loop, &a, &b, 8000) == 0);
    if (tamper_offer)
        a.tamper_outgoing_fp = 1; /* B checks A's certificate against a wrong fingerprint */
    else
        b.tamper_outgoing_fp = 1; /* A checks B's */
    run_t r;
    memset(&r, 0, sizeof r);
    r.a = &a;
    r.b = &b;
    start_timers(&loop, &r, on_pump_mismatch, 10000);
    CHECK_EQ_INT(pl__pc_create_offer(a.pc), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    side_t *victim = tamper_offer ? &b : &a;
    CHECK(!r.expired);
    CHECK_EQ_INT(victim->closed, 1);
    CHECK_EQ_INT(victim->closed_err, PARLEY_EFINGERPRINT);
    CHECK(!victim->open);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void test_fingerprint_mismatch_answer(void)
{
    run_mismatch(0);
}

static void test_fingerprint_mismatch_offer(void)
{
    run_mismatch(1);
}

/* ---- API misuse ---- */

static void test_bad_calls(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    side_t a = {0}, b = {0};
    a.peer = &b;
    b.peer = &a;
    REQUIRE(new_side(&loop, &a, "A", 1000) == 0);
    CHECK_EQ_INT(pl__pc_set_remote(a.pc, "answer", "v=0\r\n"), PARLEY_ESTATE);
    CHECK_EQ_INT(pl__pc_set_remote(a.pc, "offer", "garbage"), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__pc_set_remote(a.pc, "pranswer", "v=0\r\n"), PARLEY_EINVAL);
    /* Before the description: kept, or dropped quietly when unusable. */
    CHECK_EQ_INT(pl__pc_add_candidate(a.pc, "candidate:1 1 udp 1 x.local 9 typ host", "0"), 0);
    CHECK_EQ_INT(pl__pc_add_candidate(a.pc, "candidate:1 1 tcp 1 127.0.0.1 9 typ host", "0"), 0);
    CHECK_EQ_INT(pl__pc_add_candidate(a.pc, "candidate:1 2 udp 1 127.0.0.1 9 typ host", "0"), 0);
    CHECK_EQ_INT(pl__pc_add_candidate(a.pc, "nonsense", "0"), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__pc_add_candidate(a.pc, "a=candidate:1 1 udp 1 127.0.0.1 9 typ host", "0"), 0);
    CHECK_EQ_INT(pl__pc_add_candidate(a.pc, NULL, "0"), 0);
    pl__pc_close(a.pc);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(a.closed, 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    RUN(test_bad_calls);
    RUN(test_loopback_bulk);
    RUN(test_no_answer_times_out);
    RUN(test_fingerprint_mismatch_answer);
    RUN(test_fingerprint_mismatch_offer);
    TEST_MAIN();
}
