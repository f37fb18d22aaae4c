/* evq: see evq.h. */
#include "evq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

/* Bytes that may wait in one queue. A stalled loop must not let a flooding peer grow the
 * process without bound; what is dropped beyond it is datagrams, which DTLS and SCTP
 * retransmit. */
#define PL_EVQ_MAX_BYTES (4u << 20)
#define PL_EVQ_BUCKETS   64

struct pl__evq {
    uv_async_t async;
    uint64_t id;
    pthread_t owner;
    pl__evq_handler_fn fn;
    void (*after)(void *ud);
    void *ud;
    struct pl__evq *hnext; /* in the id table (under pl_evq_lock) */
    /* The pending list, under pl_evq_lock. */
    pl__ev_t *head, *tail;
    size_t pending_bytes;
    int closed;
};

static pthread_mutex_t pl_evq_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pl__evq *pl_evq_table[PL_EVQ_BUCKETS];
static uint64_t pl_evq_next_id = 1;

static struct pl__evq **pl_evq_slot(uint64_t id)
{
    struct pl__evq **p = &pl_evq_table[id % PL_EVQ_BUCKETS];
    while (*p && (*p)->id != id)
        p = &(*p)->hnext;
    return p;
}

static void pl_evq_free_list(pl__ev_t *ev)
{
    while (ev) {
        pl__ev_t *next = ev->next;
        free(ev);
        ev = next;
    }
}

static void pl_evq_on_async(uv_async_t *h)
{
    struct pl__evq *q = h->data;
    pthread_mutex_lock(&pl_evq_lock);
    pl__ev_t *ev = q->head;
    q->head = q->tail = NULL;
    q->pending_bytes = 0;
    pthread_mutex_unlock(&pl_evq_lock);
    while (ev && !q->closed) {
        pl__ev_t *next = ev->next;
        ev->next = NULL;
        q->fn(q->ud, ev);
        ev = next;
    }
    /* The handler may have closed the queue: what is left is discarded. */
    pl_evq_free_list(ev);
    if (!q->closed && q->after)
        q->after(q->ud);
}

int pl__evq_open(uv_loop_t *loop, pl__evq_handler_fn fn, void *ud, pl__evq_t **out, uint64_t *id)
{
    struct pl__evq *q = calloc(1, sizeof *q);
    if (!q)
        return PARLEY_ENOMEM;
    if (uv_async_init(loop, &q->async, pl_evq_on_async) != 0) {
        free(q);
        return PARLEY_ENOMEM;
    }
    q->async.data = q;
    q->fn = fn;
    q->ud = ud;
    q->owner = pthread_self();
    pthread_mutex_lock(&pl_evq_lock);
    q->id = pl_evq_next_id++;
    struct pl__evq **slot = pl_evq_slot(q->id);
    *slot = q;
    pthread_mutex_unlock(&pl_evq_lock);
    *out = q;
    *id = q->id;
    return 0;
}

int pl__evq_post(uint64_t id, int kind, int arg, const void *data, size_t len)
{
    if (len > PL_EVQ_MAX_BYTES)
        return PARLEY_EMSGSIZE;
    /* Allocated before taking the lock, so the lock is only held for the append. */
    pl__ev_t *ev = malloc(sizeof *ev + len + 1);
    if (!ev)
        return PARLEY_ENOMEM;
    ev->next = NULL;
    ev->kind = kind;
    ev->arg = arg;
    ev->len = len;
    if (len)
        memcpy(ev->data, data, len);
    ev->data[len] = 0;
    int rc = 0;
    pthread_mutex_lock(&pl_evq_lock);
    struct pl__evq *q = *pl_evq_slot(id);
    if (!q) {
        rc = PARLEY_ENOTFOUND;
    } else if (q->pending_bytes + len > PL_EVQ_MAX_BYTES) {
        rc = PARLEY_EAGAIN;
    } else {
        if (q->tail)
            q->tail->next = ev;
        else
            q->head = ev;
        q->tail = ev;
        q->pending_bytes += len;
        /* Still under the lock: pl__evq_close() unregisters under it before closing the
         * handle, so the handle is alive here. */
        uv_async_send(&q->async);
        ev = NULL;
    }
    pthread_mutex_unlock(&pl_evq_lock);
    free(ev);
    return rc;
}

void pl__evq_kick(pl__evq_t *q)
{
    if (q && !q->closed)
        uv_async_send(&q->async);
}

void pl__evq_set_after(pl__evq_t *q, void (*after)(void *ud))
{
    q->after = after;
}

void *pl__evq_lookup_local(uint64_t id)
{
    void *ud = NULL;
    pthread_mutex_lock(&pl_evq_lock);
    struct pl__evq *q = *pl_evq_slot(id);
    if (q && pthread_equal(q->owner, pthread_self()))
        ud = q->ud;
    pthread_mutex_unlock(&pl_evq_lock);
    return ud;
}

static void pl_evq_on_closed(uv_handle_t *h)
{
    free(h->data);
}

void pl__evq_close(pl__evq_t *q)
{
    if (!q || q->closed)
        return;
    pthread_mutex_lock(&pl_evq_lock);
    struct pl__evq **slot = pl_evq_slot(q->id);
    if (*slot == q)
        *slot = q->hnext;
    pl__ev_t *ev = q->head;
    q->head = q->tail = NULL;
    q->pending_bytes = 0;
    pthread_mutex_unlock(&pl_evq_lock);
    pl_evq_free_list(ev);
    q->closed = 1;
    uv_close((uv_handle_t *)&q->async, pl_evq_on_closed);
}
