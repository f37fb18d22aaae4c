/* The hub: long-poll requests parked until a signal arrives, and the store's notifications.
 *
 * Store notifications can arrive in the middle of a store operation (the memory engine
 * calls them synchronously), so the hub never answers from inside one: it marks the parked
 * calls for (room, peer) and checks them from a uv_idle callback on the next loop turn. The
 * same path will serve the WebSocket push channel: a connected socket is one more kind of
 * waiter for its (room, peer). */
#include "api/api.h"

#include "common/error.h"
#include "common/log.h"
#include "common/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_SIZE (2 * PL_ID_SIZE + 1)

typedef struct waiter waiter_t;

struct waiter {
    pl_hub_t *hub;
    pl_call_t *call;
    waiter_t *key_prev, *key_next;     /* waiters of the same (room, peer) */
    waiter_t *check_prev, *check_next; /* the to-check queue */
    bool queued;
    bool popping;   /* a pop is in flight; its callback decides */
    bool recheck;   /* woken while popping: the pop may have run before what woke it */
    bool finishing; /* answered or being answered: ignore further events */
    bool expire;    /* the deadline passed while popping */
    unsigned mask;
    bool events;
    char key[KEY_SIZE];
    char room_id[PL_ID_SIZE];
    char peer_id[PL_ID_SIZE];
    uv_timer_t timer;
};

struct pl_hub {
    pl_app_t *app;
    pl_map_t by_key; /* "room/peer" → first waiter */
    pl_map_t sinks;  /* "room/peer" → the attached push sink */
    waiter_t *check_head;
    pl_hub_sink_t *sink_head; /* sinks to wake */
    uv_idle_t idle;
    size_t nwaiting;
    bool closing;
};

static void hub_on_inbox(void *ud, const char *room_id, const char *peer_id);
static void hub_on_resync(void *ud);
static bool hub_can_deliver(void *ud, const char *room_id, const char *peer_id);
static bool hub_deliver(void *ud, const char *room_id, const char *peer_id,
                        const pl_envelope_t *env);
static void hub_wake_key(pl_hub_t *hub, const char *key);
static void hub_on_member_expired(void *ud, const pl_room_t *room, const pl_member_t *member,
                                  const pl_member_t *remaining, size_t n, bool room_removed);
static void hub_on_room_expired(void *ud, const pl_room_t *room, const pl_member_t *members,
                                size_t n);
static void on_idle(uv_idle_t *idle);
static void on_deadline(uv_timer_t *t);
static void on_abort(pl_http_req_t *req);
static void on_popped(void *ud, int status, const pl_envelope_t *envs, size_t n);
static void waiter_check(waiter_t *w);
static void waiter_finish(waiter_t *w, const pl_envelope_t *envs, size_t n, int status);
static void waiter_unlink(waiter_t *w);
static void on_waiter_closed(uv_handle_t *h);

int pl_hub_new(pl_app_t *app, pl_hub_t **out)
{
    pl_hub_t *hub = calloc(1, sizeof *hub);
    if (!hub)
        return PL_ENOMEM;
    hub->app = app;
    pl_map_init(&hub->by_key);
    pl_map_init(&hub->sinks);
    uv_idle_init(app->loop, &hub->idle);
    hub->idle.data = hub;
    *out = hub;
    return 0;
}

static void on_hub_closed(uv_handle_t *h)
{
    free(h->data);
}

void pl_hub_free(pl_hub_t *hub)
{
    if (!hub)
        return;
    pl_hub_flush(hub);
    pl_map_free(&hub->by_key);
    pl_map_free(&hub->sinks);
    uv_close((uv_handle_t *)&hub->idle, on_hub_closed);
}

pl_store_listener_t pl_hub_listener(pl_hub_t *hub)
{
    return (pl_store_listener_t){
        .ud = hub,
        .on_inbox = hub_on_inbox,
        .on_member_expired = hub_on_member_expired,
        .on_room_expired = hub_on_room_expired,
        .on_resync = hub_on_resync,
        .can_deliver = hub_can_deliver,
        .deliver = hub_deliver,
    };
}

size_t pl_hub_waiting(const pl_hub_t *hub)
{
    return hub->nwaiting;
}

static void make_key(char *key, const char *room_id, const char *peer_id)
{
    /* Both are ids (PL_ID_LEN characters at most): room/peer always fits. */
    size_t r = strnlen(room_id, PL_ID_LEN), p = strnlen(peer_id, PL_ID_LEN);
    memcpy(key, room_id, r);
    key[r] = '/';
    memcpy(key + r + 1, peer_id, p);
    key[r + 1 + p] = '\0';
}

void pl_hub_wait(pl_hub_t *hub, pl_call_t *call, const char *peer_id, unsigned mask,
                 uint32_t wait_ms, bool events)
{
    waiter_t *w = calloc(1, sizeof *w);
    if (!w) {
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    w->hub = hub;
    w->call = call;
    w->mask = mask;
    w->events = events;
    snprintf(w->room_id, sizeof w->room_id, "%s", call->room_id);
    snprintf(w->peer_id, sizeof w->peer_id, "%s", peer_id);
    make_key(w->key, w->room_id, w->peer_id);
    waiter_t *head = pl_map_get(&hub->by_key, w->key, strlen(w->key));
    if (pl_map_put(&hub->by_key, w->key, strlen(w->key), w)) {
        free(w);
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    w->key_next = head;
    if (head)
        head->key_prev = w;
    uv_timer_init(hub->app->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_deadline, wait_ms, 0);
    call->extra = w;
    call->req->on_abort = on_abort;
    hub->nwaiting++;
}

/* ---- notifications ---- */

static void hub_on_inbox(void *ud, const char *room_id, const char *peer_id)
{
    char key[KEY_SIZE];
    make_key(key, room_id, peer_id);
    hub_wake_key(ud, key);
}

/* Direct delivery goes to attached sockets only: a long-poll answers once and goes, so it
 * gains nothing from skipping the inbox. */
static bool hub_can_deliver(void *ud, const char *room_id, const char *peer_id)
{
    pl_hub_sink_t *sink = pl_hub_sink_for(ud, room_id, peer_id);
    return sink && sink->take && sink->take(sink, NULL);
}

static bool hub_deliver(void *ud, const char *room_id, const char *peer_id,
                        const pl_envelope_t *env)
{
    pl_hub_sink_t *sink = pl_hub_sink_for(ud, room_id, peer_id);
    return sink && sink->take && sink->take(sink, env);
}

/* Queues a check of every parked long-poll and every attached socket. */
static void hub_on_resync(void *ud)
{
    pl_hub_t *hub = ud;
    pl_map_iter_t it;
    const char *key;
    size_t n = 0;
    pl_map_iter_init(&it, &hub->by_key);
    while (pl_map_iter_next(&it, &key, NULL, NULL)) {
        hub_wake_key(hub, key);
        n++;
    }
    void *val;
    pl_map_iter_init(&it, &hub->sinks);
    while (pl_map_iter_next(&it, NULL, NULL, &val)) {
        pl_hub_poke(hub, val);
        n++;
    }
    pl_log_info("store: resync, waiting peers rechecked", PL_LI("count", (int64_t)n));
}

/* Wakes the long-polls and the socket waiting on one "<roomId>/<peerId>" inbox. Queuing
 * never changes the maps, so callers may iterate them meanwhile. */
static void hub_wake_key(pl_hub_t *hub, const char *key)
{
    for (waiter_t *w = pl_map_get(&hub->by_key, key, strlen(key)); w; w = w->key_next) {
        if (w->queued || w->finishing)
            continue;
        w->queued = true;
        w->check_prev = NULL;
        w->check_next = hub->check_head;
        if (hub->check_head)
            hub->check_head->check_prev = w;
        hub->check_head = w;
    }
    pl_hub_sink_t *sink = pl_map_get(&hub->sinks, key, strlen(key));
    if (sink)
        pl_hub_poke(hub, sink);
    if (hub->check_head && !uv_is_active((uv_handle_t *)&hub->idle))
        uv_idle_start(&hub->idle, on_idle);
}

pl_hub_sink_t *pl_hub_attach(pl_hub_t *hub, pl_hub_sink_t *sink, const char *room_id,
                             const char *peer_id)
{
    make_key(sink->key, room_id, peer_id);
    pl_hub_sink_t *old = pl_map_get(&hub->sinks, sink->key, strlen(sink->key));
    if (old)
        pl_hub_detach(hub, old);
    if (pl_map_put(&hub->sinks, sink->key, strlen(sink->key), sink))
        return old; /* not attached: the socket then only gets what it polls itself */
    sink->attached = true;
    sink->queued = false;
    return old;
}

void pl_hub_detach(pl_hub_t *hub, pl_hub_sink_t *sink)
{
    if (!sink->attached)
        return;
    sink->attached = false;
    if (pl_map_get(&hub->sinks, sink->key, strlen(sink->key)) == sink)
        pl_map_del(&hub->sinks, sink->key, strlen(sink->key));
    if (sink->queued) {
        if (sink->check_prev)
            sink->check_prev->check_next = sink->check_next;
        else
            hub->sink_head = sink->check_next;
        if (sink->check_next)
            sink->check_next->check_prev = sink->check_prev;
        sink->queued = false;
    }
}

pl_hub_sink_t *pl_hub_sink_for(pl_hub_t *hub, const char *room_id, const char *peer_id)
{
    char key[KEY_SIZE];
    make_key(key, room_id, peer_id);
    return pl_map_get(&hub->sinks, key, strlen(key));
}

void pl_hub_poke(pl_hub_t *hub, pl_hub_sink_t *sink)
{
    if (!sink->attached || sink->queued)
        return;
    sink->queued = true;
    sink->check_prev = NULL;
    sink->check_next = hub->sink_head;
    if (hub->sink_head)
        hub->sink_head->check_prev = sink;
    hub->sink_head = sink;
    if (!uv_is_active((uv_handle_t *)&hub->idle))
        uv_idle_start(&hub->idle, on_idle);
}

static void hub_on_member_expired(void *ud, const pl_room_t *room, const pl_member_t *member,
                                  const pl_member_t *remaining, size_t n, bool room_removed)
{
    pl_hub_t *hub = ud;
    pl_log_info("member expired", PL_LS("room", room->id), PL_LS("peer", member->peer_id),
                PL_LB("room_removed", room_removed));
    api_fanout_peer_left(hub->app, room->id, member, remaining, n);
}

static void hub_on_room_expired(void *ud, const pl_room_t *room, const pl_member_t *members,
                                size_t n)
{
    pl_hub_t *hub = ud;
    /* The inboxes went with the room; connected sockets still hear that it closed. */
    int64_t now = pl_now_ms();
    for (size_t i = 0; i < n; i++) {
        pl_hub_sink_t *sink = pl_hub_sink_for(hub, room->id, members[i].peer_id);
        if (!sink || !sink->end)
            continue;
        char id[PL_ID_SIZE];
        json_t *env =
            api_envelope_new(PL_ENV_ROOM_CLOSED, room->id, NULL, members[i].peer_id, now, id);
        char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
        json_decref(env);
        sink->end(sink, 1000, "room closed", text);
        free(text);
    }
    pl_log_info("room closed", PL_LS("room", room->id), PL_LS("reason", "expired"),
                PL_LI("members", n));
}

static void on_idle(uv_idle_t *idle)
{
    pl_hub_t *hub = idle->data;
    uv_idle_stop(idle);
    /* Sinks first: a wake() pops the peer's inbox onto its socket. One at a time off the
     * head, since a wake may detach or poke sinks. */
    while (hub->sink_head) {
        pl_hub_sink_t *sink = hub->sink_head;
        hub->sink_head = sink->check_next;
        if (hub->sink_head)
            hub->sink_head->check_prev = NULL;
        sink->queued = false;
        sink->check_next = sink->check_prev = NULL;
        sink->wake(sink);
    }
    /* Take the whole queue first: answering a call can start the connection's next
     * pipelined request, which may park a new waiter or queue new checks. */
    while (hub->check_head) {
        waiter_t *w = hub->check_head;
        hub->check_head = w->check_next;
        if (hub->check_head)
            hub->check_head->check_prev = NULL;
        w->queued = false;
        w->check_next = w->check_prev = NULL;
        waiter_check(w);
    }
}

static void waiter_check(waiter_t *w)
{
    if (w->finishing)
        return;
    if (w->popping) {
        w->recheck = true;
        return;
    }
    pl_store_t *s = w->hub->app->store;
    w->popping = true;
    w->recheck = false;
    int rc = s->pop(s, w->room_id, w->peer_id, w->mask, w->events ? 100 : 1, on_popped, w);
    if (rc) {
        w->popping = false;
        waiter_finish(w, NULL, 0, rc);
    }
}

static void on_popped(void *ud, int status, const pl_envelope_t *envs, size_t n)
{
    waiter_t *w = ud;
    w->popping = false;
    if (w->finishing) {
        /* Aborted or flushed while the pop ran: the call is still ours to answer. */
        waiter_finish(w, envs, n, status);
        return;
    }
    if (status || n > 0 || w->expire) {
        waiter_finish(w, envs, n, status);
        return;
    }
    /* Nothing for this poll: keep waiting, after one more look if a wake came meanwhile. */
    if (w->recheck)
        waiter_check(w);
}

static void on_deadline(uv_timer_t *t)
{
    waiter_t *w = t->data;
    if (w->popping) {
        w->expire = true;
        return;
    }
    waiter_finish(w, NULL, 0, 0);
}

static void on_abort(pl_http_req_t *req)
{
    pl_call_t *call = req->app_data;
    waiter_t *w = call->extra;
    w->finishing = true;
    if (!w->popping)
        waiter_finish(w, NULL, 0, 0);
}

void pl_hub_flush(pl_hub_t *hub)
{
    /* Answer every parked call; collect first, since answering mutates the map. */
    size_t n = 0, cap = hub->nwaiting;
    waiter_t **all = cap ? calloc(cap, sizeof *all) : NULL;
    pl_map_iter_t it;
    void *val;
    pl_map_iter_init(&it, &hub->by_key);
    while (all && pl_map_iter_next(&it, NULL, NULL, &val))
        for (waiter_t *w = val; w && n < cap; w = w->key_next)
            all[n++] = w;
    for (size_t i = 0; i < n; i++) {
        all[i]->finishing = true;
        if (!all[i]->popping)
            waiter_finish(all[i], NULL, 0, 0);
    }
    free(all);
}

/* ---- finishing ---- */

static void waiter_unlink(waiter_t *w)
{
    pl_hub_t *hub = w->hub;
    if (w->key_prev) {
        w->key_prev->key_next = w->key_next;
    } else {
        if (w->key_next)
            pl_map_put(&hub->by_key, w->key, strlen(w->key), w->key_next);
        else
            pl_map_del(&hub->by_key, w->key, strlen(w->key));
    }
    if (w->key_next)
        w->key_next->key_prev = w->key_prev;
    if (w->queued) {
        if (w->check_prev)
            w->check_prev->check_next = w->check_next;
        else
            hub->check_head = w->check_next;
        if (w->check_next)
            w->check_next->check_prev = w->check_prev;
        w->queued = false;
    }
    hub->nwaiting--;
}

static void waiter_finish(waiter_t *w, const pl_envelope_t *envs, size_t n, int status)
{
    pl_call_t *call = w->call;
    if (!call)
        return;
    w->call = NULL;
    w->finishing = true;
    waiter_unlink(w);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_waiter_closed);
    call->extra = NULL;
    call->req->on_abort = NULL;
    if (status)
        api_store_error(call, status);
    else
        api_answer_envelopes(call, envs, n, w->events);
}

static void on_waiter_closed(uv_handle_t *h)
{
    free(h->data);
}
