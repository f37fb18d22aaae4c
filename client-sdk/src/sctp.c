/* sctp: see sctp.h. */
#include "sctp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <usrsctp.h>

#include "evq.h"
#include "parley.h"

#define PL_SCTP_TICK_MS    10 /* usrsctp's own timer thread ticks at this period */
#define PL_SCTP_BUF        (1024 * 1024)
#define PL_SCTP_RECV_CHUNK (64 * 1024)
#define PL_SCTP_NOTIF_MAX  4096
/* One DTLS 1.2 record of 1200 bytes, less its header (13), GCM nonce (8) and tag (16), less
 * the SCTP common header (12): usrsctp does no path MTU discovery. */
#define PL_SCTP_PATH_MTU 1151

typedef struct pl_sctp_msg {
    struct pl_sctp_msg *next;
    uint16_t sid;
    uint32_t ppid;
    size_t len;
    uint8_t data[];
} pl_sctp_msg_t;

struct pl__sctp {
    uv_timer_t timer;
    struct pl__sctp *next; /* in the registry, under pl_sctp_lock */
    uint64_t id;
    pthread_t owner;
    struct socket *so;
    pl__sctp_callbacks_t cb;
    size_t max_recv;
    int up, done, readable, ticking;
    pl_sctp_msg_t *qhead, *qtail;
    size_t qbytes;
    uint8_t *iobuf;
    /* Reassembly of the message being received (no interleaving: one at a time). */
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint16_t rsid;
    uint32_t rppid;
    uint8_t nbuf[PL_SCTP_NOTIF_MAX];
    size_t nlen;
};

/* The process-wide usrsctp state: refcount and the registry of live associations. A leaf
 * lock: nothing of usrsctp is called while holding it. */
static pthread_mutex_t pl_sctp_lock = PTHREAD_MUTEX_INITIALIZER;
/* Init and finish, apart from pl_sctp_lock because usrsctp_finish() runs timers whose output
 * looks the registry up. */
static pthread_mutex_t pl_sctp_init_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned pl_sctp_refs;
static struct pl__sctp *pl_sctp_list;
/* The shared timer clock (its own lock, also a leaf). */
static pthread_mutex_t pl_sctp_clock_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t pl_sctp_last_ms;

static uint64_t pl_sctp_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* The association of id when the caller is its owner thread; *foreign set when it exists
 * but belongs to another thread. */
static pl__sctp_t *pl_sctp_find(uint64_t id, int *foreign)
{
    pl__sctp_t *s;
    *foreign = 0;
    pthread_mutex_lock(&pl_sctp_lock);
    for (s = pl_sctp_list; s && s->id != id; s = s->next)
        ;
    if (s && !pthread_equal(s->owner, pthread_self())) {
        *foreign = 1;
        s = NULL;
    }
    pthread_mutex_unlock(&pl_sctp_lock);
    return s;
}

/* usrsctp's output: called inside usrsctp (its locks held), so it never calls back into
 * usrsctp; the owner's DTLS takes the packet at once, anyone else posts it. */
static int pl_sctp_conn_output(void *addr, void *buf, size_t len, uint8_t tos, uint8_t set_df)
{
    uint64_t id = (uint64_t)(uintptr_t)addr;
    int foreign;
    pl__sctp_t *s = pl_sctp_find(id, &foreign);
    if (s) {
        if (!s->done)
            s->cb.send(s->cb.ud, buf, len);
    } else if (foreign) {
        pl__evq_post(id, PL__SCTP_EV_OUT, 0, buf, len);
    }
    return 0;
}

static void pl_sctp_upcall(struct socket *so, void *arg, int flags)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    int foreign;
    pl__sctp_t *s = pl_sctp_find(id, &foreign);
    if (s)
        s->readable = 1; /* drained once usrsctp has returned */
    else if (foreign)
        pl__evq_post(id, PL__SCTP_EV_WAKE, 0, NULL, 0);
}

static int pl_sctp_global_acquire(void)
{
    pthread_mutex_lock(&pl_sctp_init_lock);
    if (pl_sctp_refs++ == 0) {
        usrsctp_init_nothreads(0, pl_sctp_conn_output, NULL);
        /* After init: usrsctp_init resets every sysctl to its default. */
        usrsctp_sysctl_set_sctp_ecn_enable(0);
        usrsctp_sysctl_set_sctp_asconf_enable(0); /* keeps the iterator thread idle */
        usrsctp_sysctl_set_sctp_auto_asconf(0);
        usrsctp_sysctl_set_sctp_pr_enable(1);
        usrsctp_sysctl_set_sctp_delayed_sack_time_default(20);
        usrsctp_sysctl_set_sctp_max_chunks_on_queue(10240);
        usrsctp_sysctl_set_sctp_rto_initial_default(1000);
        usrsctp_sysctl_set_sctp_rto_max_default(10000);
        usrsctp_sysctl_set_sctp_init_rto_max_default(10000);
        usrsctp_sysctl_set_sctp_heartbeat_interval_default(10000);
        pthread_mutex_lock(&pl_sctp_clock_lock);
        pl_sctp_last_ms = pl_sctp_now_ms();
        pthread_mutex_unlock(&pl_sctp_clock_lock);
    }
    pthread_mutex_unlock(&pl_sctp_init_lock);
    return 0;
}

static void pl_sctp_global_release(void)
{
    pthread_mutex_lock(&pl_sctp_init_lock);
    if (--pl_sctp_refs == 0) {
        /* usrsctp_finish() refuses while a closed socket's endpoint still lingers; its
         * timers free it. Bounded: 3 s. */
        for (int i = 0; i < 300 && usrsctp_finish() != 0; i++) {
            usrsctp_handle_timers(PL_SCTP_TICK_MS);
            usleep(PL_SCTP_TICK_MS * 1000);
        }
    }
    pthread_mutex_unlock(&pl_sctp_init_lock);
}

/* ---- receiving ---- */

static void pl_sctp_end(pl__sctp_t *s, int err)
{
    if (s->done)
        return;
    s->done = 1;
    s->up = 0;
    s->cb.on_closed(s->cb.ud, err);
}

static void pl_sctp_notification(pl__sctp_t *s, const uint8_t *buf, size_t len)
{
    const union sctp_notification *n = (const void *)buf;
    if (len < sizeof n->sn_header || n->sn_header.sn_length > len)
        return;
    switch (n->sn_header.sn_type) {
    case SCTP_ASSOC_CHANGE:
        if (len < sizeof n->sn_assoc_change)
            return;
        switch (n->sn_assoc_change.sac_state) {
        case SCTP_COMM_UP:
            if (!s->up && !s->done) {
                s->up = 1;
                s->cb.on_up(s->cb.ud);
            }
            break;
        case SCTP_SHUTDOWN_COMP:
            pl_sctp_end(s, 0);
            break;
        case SCTP_COMM_LOST:
        case SCTP_CANT_STR_ASSOC:
            pl_sctp_end(s, PARLEY_ESCTP);
            break;
        }
        break;
    case SCTP_STREAM_RESET_EVENT: {
        const struct sctp_stream_reset_event *e = &n->sn_strreset_event;
        if (len < sizeof *e || e->strreset_length > len)
            return;
        if (!(e->strreset_flags & SCTP_STREAM_RESET_INCOMING_SSN) ||
            (e->strreset_flags & (SCTP_STREAM_RESET_DENIED | SCTP_STREAM_RESET_FAILED)))
            return;
        size_t count = (e->strreset_length - sizeof *e) / sizeof(uint16_t);
        for (size_t i = 0; i < count && !s->done; i++)
            s->cb.on_stream_reset(s->cb.ud, e->strreset_stream_list[i]);
        break;
    }
    default:
        break; /* SENDER_DRY and the rest: the FIFO is flushed on every drain anyway */
    }
}

static void pl_sctp_data(pl__sctp_t *s, const uint8_t *buf, size_t n, int eor,
                         const struct sctp_rcvinfo *rcv)
{
    if (s->rlen == 0) {
        s->rsid = rcv->rcv_sid;
        s->rppid = ntohl(rcv->rcv_ppid);
    }
    if (s->rlen + n > s->max_recv) {
        /* Above what we advertised: the peer broke the contract. */
        pl_sctp_end(s, PARLEY_EPROTO);
        return;
    }
    if (s->rlen + n > s->rcap) {
        size_t cap = s->rcap ? s->rcap : 1024;
        while (cap < s->rlen + n)
            cap *= 2;
        if (cap > s->max_recv)
            cap = s->max_recv;
        uint8_t *nb = realloc(s->rbuf, cap ? cap : 1);
        if (!nb) {
            pl_sctp_end(s, PARLEY_ESCTP);
            return;
        }
        s->rbuf = nb;
        s->rcap = cap;
    }
    if (n)
        memcpy(s->rbuf + s->rlen, buf, n);
    s->rlen += n;
    if (!eor)
        return;
    uint8_t *msg = s->rbuf;
    size_t len = s->rlen;
    if (!msg)
        msg = malloc(1);
    s->rbuf = NULL;
    s->rlen = s->rcap = 0;
    if (!msg) {
        pl_sctp_end(s, PARLEY_ESCTP);
        return;
    }
    s->cb.on_message(s->cb.ud, s->rsid, s->rppid, msg, len);
}

static void pl_sctp_flush(pl__sctp_t *s);

static void pl_sctp_drain(pl__sctp_t *s)
{
    s->readable = 0;
    while (!s->done && s->so) {
        struct sctp_rcvinfo rcv;
        memset(&rcv, 0, sizeof rcv);
        struct sockaddr_conn from;
        socklen_t fromlen = sizeof from, infolen = sizeof rcv;
        unsigned int infotype = 0;
        int flags = 0;
        ssize_t n = usrsctp_recvv(s->so, s->iobuf, PL_SCTP_RECV_CHUNK, (struct sockaddr *)&from,
                                  &fromlen, &rcv, &infolen, &infotype, &flags);
        if (n < 0) {
            if (errno != EWOULDBLOCK && errno != EAGAIN && errno != ENOTCONN)
                pl_sctp_end(s, PARLEY_ESCTP);
            break;
        }
        if (n == 0) { /* the peer shut the association down */
            pl_sctp_end(s, 0);
            break;
        }
        if (flags & MSG_NOTIFICATION) {
            if (s->nlen + (size_t)n <= sizeof s->nbuf) {
                memcpy(s->nbuf + s->nlen, s->iobuf, (size_t)n);
                s->nlen += (size_t)n;
            } else {
                s->nlen = sizeof s->nbuf + 1; /* too long: skipped up to its end */
            }
            if (flags & MSG_EOR) {
                if (s->nlen <= sizeof s->nbuf)
                    pl_sctp_notification(s, s->nbuf, s->nlen);
                s->nlen = 0;
            }
            continue;
        }
        pl_sctp_data(s, s->iobuf, (size_t)n, (flags & MSG_EOR) != 0, &rcv);
    }
    if (!s->done)
        pl_sctp_flush(s);
}

/* ---- timers ---- */

static void pl_sctp_on_tick(uv_timer_t *t)
{
    pl__sctp_t *s = t->data;
    uint64_t now = pl_sctp_now_ms(), elapsed = 0;
    pthread_mutex_lock(&pl_sctp_clock_lock);
    if (now - pl_sctp_last_ms >= PL_SCTP_TICK_MS) {
        elapsed = now - pl_sctp_last_ms;
        pl_sctp_last_ms = now;
    }
    pthread_mutex_unlock(&pl_sctp_clock_lock);
    if (elapsed)
        usrsctp_handle_timers((uint32_t)(elapsed > 1000 ? 1000 : elapsed));
    pl_sctp_drain(s);
}

/* ---- API ---- */

static int pl_sctp_setopt(struct socket *so, int level, int name, const void *v, socklen_t len)
{
    return usrsctp_setsockopt(so, level, name, v, len) == 0 ? 0 : PARLEY_ESCTP;
}

static int pl_sctp_configure(pl__sctp_t *s)
{
    struct socket *so = s->so;
    struct linger lg = {1, 0}; /* close = ABORT: no lingering association after free */
    struct sctp_assoc_value av = {SCTP_ALL_ASSOC, SCTP_ENABLE_RESET_STREAM_REQ};
    int on = 1, off = 0, buf = PL_SCTP_BUF;
    struct sctp_paddrparams spp;
    memset(&spp, 0, sizeof spp);
    spp.spp_flags = SPP_HB_ENABLE | SPP_PMTUD_DISABLE;
    spp.spp_pathmtu = PL_SCTP_PATH_MTU;
    struct sctp_initmsg im;
    memset(&im, 0, sizeof im);
    im.sinit_num_ostreams = 65535;
    im.sinit_max_instreams = 65535;
    int rc = 0;
    rc |= usrsctp_set_non_blocking(so, 1);
    rc |= pl_sctp_setopt(so, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_ENABLE_STREAM_RESET, &av, sizeof av);
    rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on);
    rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof on);
    rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_FRAGMENT_INTERLEAVE, &off, sizeof off);
    rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &spp, sizeof spp);
    rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_INITMSG, &im, sizeof im);
    rc |= pl_sctp_setopt(so, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    rc |= pl_sctp_setopt(so, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    static const uint16_t events[] = {SCTP_ASSOC_CHANGE, SCTP_STREAM_RESET_EVENT,
                                      SCTP_SENDER_DRY_EVENT};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        struct sctp_event ev;
        memset(&ev, 0, sizeof ev);
        ev.se_assoc_id = SCTP_ALL_ASSOC;
        ev.se_type = events[i];
        ev.se_on = 1;
        rc |= pl_sctp_setopt(so, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof ev);
    }
    return rc ? PARLEY_ESCTP : 0;
}

int pl__sctp_new(uv_loop_t *loop, uint64_t session_id, size_t max_recv,
                 const pl__sctp_callbacks_t *cb, pl__sctp_t **out)
{
    int rc = pl_sctp_global_acquire();
    if (rc)
        return rc;
    pl__sctp_t *s = calloc(1, sizeof *s);
    if (!s) {
        pl_sctp_global_release();
        return PARLEY_ENOMEM;
    }
    s->id = session_id;
    s->owner = pthread_self();
    s->cb = *cb;
    s->max_recv = max_recv > PL__SCTP_MAX_MESSAGE ? PL__SCTP_MAX_MESSAGE : max_recv;
    s->iobuf = malloc(PL_SCTP_RECV_CHUNK);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    if (!s->iobuf) {
        rc = PARLEY_ENOMEM;
        goto fail;
    }
    void *addr = (void *)(uintptr_t)session_id;
    usrsctp_register_address(addr);
    pthread_mutex_lock(&pl_sctp_lock);
    s->next = pl_sctp_list;
    pl_sctp_list = s;
    pthread_mutex_unlock(&pl_sctp_lock);
    s->so = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    if (!s->so) {
        rc = PARLEY_ESCTP;
        goto fail;
    }
    usrsctp_set_upcall(s->so, pl_sctp_upcall, addr);
    rc = pl_sctp_configure(s);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    pl__sctp_free(s);
    return rc;
}

int pl__sctp_connect(pl__sctp_t *s, uint16_t local_port, uint16_t remote_port)
{
    struct sockaddr_conn sc;
    memset(&sc, 0, sizeof sc);
    sc.sconn_family = AF_CONN;
    sc.sconn_port = htons(local_port);
    sc.sconn_addr = (void *)(uintptr_t)s->id;
    if (usrsctp_bind(s->so, (struct sockaddr *)&sc, sizeof sc) != 0)
        return PARLEY_ESCTP;
    sc.sconn_port = htons(remote_port);
    if (usrsctp_connect(s->so, (struct sockaddr *)&sc, sizeof sc) != 0 && errno != EINPROGRESS)
        return PARLEY_ESCTP;
    if (!s->ticking) {
        s->ticking = 1;
        uv_timer_start(&s->timer, pl_sctp_on_tick, PL_SCTP_TICK_MS, PL_SCTP_TICK_MS);
    }
    if (s->readable)
        pl_sctp_drain(s);
    return 0;
}

void pl__sctp_input(pl__sctp_t *s, const uint8_t *data, size_t len)
{
    if (s->done)
        return;
    usrsctp_conninput((void *)(uintptr_t)s->id, data, len, 0);
    /* Always, not only after an upcall: a missed wakeup would leave data in the receive
     * buffer, close the window and stall the peer until its T3 timer. */
    pl_sctp_drain(s);
}

void pl__sctp_event(pl__sctp_t *s, int kind, const uint8_t *data, size_t len)
{
    if (s->done)
        return;
    if (kind == PL__SCTP_EV_OUT)
        s->cb.send(s->cb.ud, data, len);
    else if (kind == PL__SCTP_EV_WAKE)
        pl_sctp_drain(s);
}

/* 1 sent, 0 would block, < 0 failed. */
static int pl_sctp_sendv(pl__sctp_t *s, uint16_t sid, uint32_t ppid, const void *data, size_t len)
{
    struct sctp_sendv_spa spa;
    memset(&spa, 0, sizeof spa);
    spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
    spa.sendv_sndinfo.snd_sid = sid;
    spa.sendv_sndinfo.snd_ppid = htonl(ppid);
    spa.sendv_sndinfo.snd_flags = SCTP_EOR;
    ssize_t n = usrsctp_sendv(s->so, data, len, NULL, 0, &spa, sizeof spa, SCTP_SENDV_SPA, 0);
    if (n >= 0)
        return 1;
    if (errno == EWOULDBLOCK || errno == EAGAIN)
        return 0;
    return PARLEY_ESCTP;
}

static void pl_sctp_flush(pl__sctp_t *s)
{
    while (s->qhead && !s->done) {
        pl_sctp_msg_t *m = s->qhead;
        int r = pl_sctp_sendv(s, m->sid, m->ppid, m->data, m->len);
        if (r == 0)
            return;
        /* Sent, or refused for good (dropped: the association reports its own failure). */
        s->qhead = m->next;
        if (!s->qhead)
            s->qtail = NULL;
        s->qbytes -= m->len;
        free(m);
    }
}

int pl__sctp_send(pl__sctp_t *s, uint16_t sid, uint32_t ppid, const void *data, size_t len)
{
    if (s->done || !s->up)
        return PARLEY_ENOTCONN;
    if (len > PL__SCTP_MAX_MESSAGE)
        return PARLEY_EMSGSIZE;
    if (!s->qhead) {
        int r = pl_sctp_sendv(s, sid, ppid, data, len);
        if (r != 0)
            return r < 0 ? r : 0;
    }
    if (s->qbytes + len > PL__SCTP_SENDQ_MAX)
        return PARLEY_EAGAIN;
    pl_sctp_msg_t *m = malloc(sizeof *m + len);
    if (!m)
        return PARLEY_ENOMEM;
    m->next = NULL;
    m->sid = sid;
    m->ppid = ppid;
    m->len = len;
    memcpy(m->data, data, len);
    if (s->qtail)
        s->qtail->next = m;
    else
        s->qhead = m;
    s->qtail = m;
    s->qbytes += len;
    return 0;
}

int pl__sctp_reset_stream(pl__sctp_t *s, uint16_t sid)
{
    if (s->done || !s->up)
        return PARLEY_ENOTCONN;
    size_t sz = sizeof(struct sctp_reset_streams) + sizeof(uint16_t);
    struct sctp_reset_streams *rs = calloc(1, sz);
    if (!rs)
        return PARLEY_ENOMEM;
    rs->srs_flags = SCTP_STREAM_RESET_OUTGOING;
    rs->srs_number_streams = 1;
    rs->srs_stream_list[0] = sid;
    int rc = pl_sctp_setopt(s->so, IPPROTO_SCTP, SCTP_RESET_STREAMS, rs, (socklen_t)sz);
    free(rs);
    return rc;
}

static void pl_sctp_on_closed(uv_handle_t *h)
{
    free(h->data);
    pl_sctp_global_release();
}

void pl__sctp_free(pl__sctp_t *s)
{
    if (!s)
        return;
    s->done = 1;
    /* Out of the registry first: whatever usrsctp emits while closing finds nobody. */
    pthread_mutex_lock(&pl_sctp_lock);
    for (pl__sctp_t **p = &pl_sctp_list; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&pl_sctp_lock);
    if (s->so) {
        usrsctp_set_upcall(s->so, NULL, NULL);
        usrsctp_close(s->so);
    }
    usrsctp_deregister_address((void *)(uintptr_t)s->id);
    while (s->qhead) {
        pl_sctp_msg_t *m = s->qhead;
        s->qhead = m->next;
        free(m);
    }
    free(s->rbuf);
    free(s->iobuf);
    uv_close((uv_handle_t *)&s->timer, pl_sctp_on_closed);
}
