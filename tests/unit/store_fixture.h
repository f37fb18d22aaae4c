/* The engine fixture of the store tests: what differs between the two engines is described
 * by one store_engine_t (how to make a store, how to force a sweep, whether callbacks come
 * from the loop), and everything else (a store on a fresh loop with the fake clock, running
 * the loop until a callback has fired, one helper per store operation) is written here once
 * against it. Included by store_scenarios.h and by the engine-specific tests of
 * test_store_memory.c and test_store_redis.c. */
#ifndef PL_TEST_STORE_FIXTURE_H
#define PL_TEST_STORE_FIXTURE_H

#include "test.h"

#include "common/error.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "store_callbacks.h"

typedef struct {
    const char *name; /* what the store's `engine` field says */
    /* Wipes whatever state outlives a store (redis: the server's keys) before each
     * fixture, so that scenarios do not see each other's rooms. May be NULL. */
    int (*reset)(void);
    int (*make)(uv_loop_t *loop, const pl_store_opts_t *opts, const pl_store_listener_t *listener,
                pl_store_t **out);
    /* Starts an expiry sweep now; on a deferred engine it completes later, from the loop. */
    void (*sweep)(pl_store_t *s);
    /* Callbacks and notifications come from the loop after the call has returned. When
     * false, the engine must run every callback before the call returns (the memory
     * engine's promise), and the helpers check that it did. */
    bool deferred;
} store_engine_t;

/* The engine under test, set by run_store_scenarios() or by an engine's own test. */
static const store_engine_t *store_engine;

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard; /* bounds every wait on the loop */
    pl_store_t *s;
} fixture_t;

/* The open fixture: the helpers run its loop. */
static fixture_t *cur_fx;
static int spin_expired;

static pl_store_opts_t default_opts(void)
{
    return (pl_store_opts_t){
        .room_ttl_s = 3600,
        .member_ttl_s = 90,
        .signal_ttl_s = 30,
        .inbox_max = 256,
        .rooms_max = 10000,
        .clock = fake_clock,
    };
}

static const pl_store_listener_t store_listener = {
    .on_inbox = on_inbox,
    .on_member_expired = on_member_expired,
    .on_room_expired = on_room_expired,
};

/* ---- running the loop ---- */

static void on_spin_guard(uv_timer_t *t)
{
    (void)t;
    spin_expired = 1;
}

static void spin_begin(int ms)
{
    spin_expired = 0;
    uv_update_time(&cur_fx->loop);
    uv_timer_start(&cur_fx->guard, on_spin_guard, (uint64_t)ms, 0);
}

/* One loop iteration, blocking until something happens (at the latest, the guard fires).
 * False once the guard has fired. */
static bool spin_step(void)
{
    if (!spin_expired)
        uv_run(&cur_fx->loop, UV_RUN_ONCE);
    return !spin_expired;
}

static void spin_end(void)
{
    uv_timer_stop(&cur_fx->guard);
}

/* Runs the open fixture's loop until cond holds or ms milliseconds have passed. The loop
 * does not run at all when cond already holds, so a synchronous engine's timers stay out
 * of the way of scenarios that do not wait for them. */
#define SPIN_UNTIL(ms, cond)                                                                       \
    do {                                                                                           \
        spin_begin(ms);                                                                            \
        while (!(cond) && spin_step()) {                                                           \
        }                                                                                          \
        spin_end();                                                                                \
    } while (0)

static inline void spin_for(int ms)
{
    SPIN_UNTIL(ms, false);
}

/* Gives notifications that travel through the loop (the redis engine's on_inbox comes
 * through a subscription) time to arrive, so that a count checked next is final. */
static void settle(void)
{
    if (store_engine->deferred)
        spin_for(100);
}

/* Waits for n on_inbox notifications in all, and then for strays. */
static void wait_inbox(size_t n)
{
    if (!store_engine->deferred)
        return;
    SPIN_UNTIL(1000, ninbox >= n);
    settle();
}

/* Forgets the on_inbox notifications seen so far, once the last of them has arrived. */
static void clear_inbox_notes(void)
{
    settle();
    ninbox = 0;
}

/* Waits (bounded) for the callback of the operation just started; true when it fired
 * exactly once. */
static bool wait_calls(void)
{
    if (store_engine->deferred)
        SPIN_UNTIL(3000, R.calls != 0);
    return R.calls == 1;
}

static bool wait_ready(pl_store_t *s, int ms)
{
    SPIN_UNTIL(ms, s->ready(s));
    return s->ready(s);
}

/* ---- fixture ---- */

static int fx_open(fixture_t *fx, const pl_store_opts_t *opts)
{
    fake_now = T0;
    reset_notes();
    reenter_store = NULL;
    if (store_engine->reset && store_engine->reset() != 0)
        return -1;
    if (uv_loop_init(&fx->loop) != 0)
        return -1;
    uv_timer_init(&fx->loop, &fx->guard);
    cur_fx = fx;
    int rc = store_engine->make(&fx->loop, opts, &store_listener, &fx->s);
    if (rc != 0)
        return rc;
    return wait_ready(fx->s, 3000) ? 0 : -1;
}

/* Destroys the store and lets the loop run its close callbacks, so that ASan's leak check
 * at exit sees everything freed. */
static void fx_close(fixture_t *fx)
{
    fx->s->destroy(fx->s);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&fx->loop), 0);
    cur_fx = NULL;
}

/* sweep() completes an expiry sweep at the fake clock's present time. On the redis engine
 * a sweep its own timer started earlier may still be running, with an older time, and
 * while it runs a forced one is skipped: so that one is waited out first, then a sweep is
 * forced and waited for. barrier() does the waiting with a stats() call behind the sweep:
 * the redis engine runs both on one connection, in order, and delivers the sweep's
 * notifications before that reply. On the memory engine all of it is synchronous. */
static int barrier_done;

static void barrier_cb(void *ud, int status, const pl_store_stats_t *st)
{
    (void)ud;
    (void)status;
    (void)st;
    barrier_done = 1;
}

static void barrier(pl_store_t *s)
{
    barrier_done = 0;
    if (s->stats(s, barrier_cb, NULL) == 0)
        SPIN_UNTIL(3000, barrier_done);
}

static void sweep(pl_store_t *s)
{
    barrier(s);
    store_engine->sweep(s);
    barrier(s);
}

/* ---- one helper per operation: each returns the call's error or the callback's status
 * (-1 when the callback did not fire exactly once) and leaves the results in R ---- */

static int create(pl_store_t *s, const char *room_id, const char *user, const char *name,
                  const char *peer, bool is_public, uint32_t max_peers)
{
    pl_store_create_req_t req;
    memset(&req, 0, sizeof req);
    snprintf(req.room.id, sizeof req.room.id, "%s", room_id);
    snprintf(req.room.broadcaster_id, sizeof req.room.broadcaster_id, "%s", user);
    snprintf(req.room.broadcaster_name, sizeof req.room.broadcaster_name, "%s", name);
    req.room.is_public = is_public;
    req.room.max_peers = max_peers;
    req.room.topology = PL_TOPO_MESH;
    snprintf(req.member.peer_id, sizeof req.member.peer_id, "%s", peer);
    snprintf(req.member.user_id, sizeof req.member.user_id, "%s", user);
    snprintf(req.member.name, sizeof req.member.name, "%s", name);
    R.calls = 0;
    int rc = s->create_room(s, &req, create_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int join(pl_store_t *s, const char *room_id, const char *bname, const char *peer,
                const char *user)
{
    pl_store_join_req_t req;
    memset(&req, 0, sizeof req);
    req.room_id = room_id;
    req.broadcaster_name = bname;
    snprintf(req.member.peer_id, sizeof req.member.peer_id, "%s", peer);
    snprintf(req.member.user_id, sizeof req.member.user_id, "%s", user);
    snprintf(req.member.name, sizeof req.member.name, "name-%s", user);
    R.calls = 0;
    int rc = s->join_room(s, &req, join_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int leave(pl_store_t *s, const char *room_id, const char *peer)
{
    R.calls = 0;
    int rc = s->leave_room(s, room_id, peer, leave_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int heartbeat(pl_store_t *s, const char *room_id, const char *peer)
{
    R.calls = 0;
    int rc = s->heartbeat(s, room_id, peer, member_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int get_member(pl_store_t *s, const char *room_id, const char *peer)
{
    R.calls = 0;
    int rc = s->get_member(s, room_id, peer, member_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int get_room(pl_store_t *s, const char *room_id)
{
    R.calls = 0;
    int rc = s->get_room(s, room_id, room_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int get_members(pl_store_t *s, const char *room_id)
{
    R.calls = 0;
    int rc = s->get_members(s, room_id, members_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

/* Pushes an envelope whose JSON is `body` from a scratch buffer that is wiped right after,
 * proving the store copied it. */
static int push(pl_store_t *s, const char *room_id, const char *from, const char *to,
                pl_env_type_t type, const char *id, const char *body)
{
    char scratch[256];
    size_t len = strlen(body);
    memcpy(scratch, body, len);
    pl_envelope_t env;
    memset(&env, 0, sizeof env);
    snprintf(env.id, sizeof env.id, "%s", id);
    snprintf(env.from, sizeof env.from, "%s", from ? from : "");
    env.type = type;
    env.json = scratch;
    env.json_len = len;
    R.calls = 0;
    int rc = s->push(s, room_id, from, to, &env, status_cb, NULL);
    memset(scratch, 'X', sizeof scratch);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int pop(pl_store_t *s, const char *room_id, const char *peer, unsigned mask, size_t max)
{
    R.calls = 0;
    R.nenvs = 0;
    int rc = s->pop(s, room_id, peer, mask, max, pop_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int list(pl_store_t *s, size_t limit, const char *cursor)
{
    R.calls = 0;
    R.nrooms = 0;
    int rc = s->list_rooms(s, limit, cursor, list_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int rate(pl_store_t *s, const char *key, uint32_t window_ms)
{
    R.calls = 0;
    int rc = s->rate_hit(s, key, window_ms, rate_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int secret(pl_store_t *s, const char *name, size_t len)
{
    R.calls = 0;
    int rc = s->shared_secret(s, name, len, secret_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

/* The engine's counters; a failed or missing answer fails the check here rather than
 * handing back the previous call's figures. */
static pl_store_stats_t stats(pl_store_t *s)
{
    R.calls = 0;
    memset(&R.stats, 0xff, sizeof R.stats);
    CHECK_EQ_INT(s->stats(s, stats_cb, NULL), 0);
    wait_calls();
    CHECK(R.calls == 1 && R.status == 0);
    return R.stats;
}

static int emoji_add(pl_store_t *s, const char *id, const char *domain, const char *name,
                     const char *by, const void *data, size_t len)
{
    pl_emoji_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.domain, sizeof e.domain, "%s", domain);
    snprintf(e.name, sizeof e.name, "%s", name);
    snprintf(e.uploaded_by, sizeof e.uploaded_by, "%s", by);
    e.uploaded_at_ms = fake_now;
    e.width = 32;
    e.height = 24;
    e.animated = true;
    snprintf(e.content_type, sizeof e.content_type, "image/gif");
    snprintf(e.etag, sizeof e.etag, "\"%s\"", id);
    e.size = (uint32_t)len;
    R.calls = 0;
    int rc = s->emoji_add(s, &e, data, len, emoji_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int emoji_get(pl_store_t *s, const char *id, bool with_data)
{
    R.calls = 0;
    int rc = s->emoji_get(s, id, with_data, emoji_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int emoji_list(pl_store_t *s, const char *domain)
{
    R.calls = 0;
    emoji_list_n = 0;
    int rc = s->emoji_list(s, domain, emoji_list_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int emoji_del(pl_store_t *s, const char *id)
{
    R.calls = 0;
    int rc = s->emoji_delete(s, id, status_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int cache_get(pl_store_t *s, const char *key)
{
    R.calls = 0;
    int rc = s->cache_get(s, key, cache_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

static int cache_put(pl_store_t *s, const char *key, const void *data, size_t len, uint32_t keep)
{
    R.calls = 0;
    int rc = s->cache_put(s, key, data, len, keep, status_cb, NULL);
    return rc ? rc : (wait_calls() ? R.status : -1);
}

#endif
