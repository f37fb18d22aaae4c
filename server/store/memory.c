/* The memory store engine: all of parleyd's shared state in this process's heap, for a
 * single node. Every operation completes synchronously and runs its callback before it
 * returns (store.h allows this).
 *
 * Conventions of this engine, beyond store.h:
 *   - An operation returns non-zero (PL_EINVAL) only for a malformed call: NULL store,
 *     request, callback or required string, an envelope type that is not exactly one
 *     PL_ENV_* bit, list_rooms with limit 0, rate_hit with window_ms 0. Every other outcome,
 *     PL_ENOMEM included, reaches the callback, as it would from the redis engine.
 *   - A limit of 0 (opts.inbox_max, opts.rooms_max, room.max_peers) means "no limit".
 *   - Order inside an operation: expired state met on the way is removed first and its
 *     notifications (on_member_expired / on_room_expired) fire; then the operation's state
 *     change completes; then its callback runs; then its own notifications (push's on_inbox)
 *     fire. The redis engine usually shows the same order, but cannot promise it: the
 *     reply and the notification come on two connections, so callers must not depend on
 *     it (the server does not). Nothing the engine touches after a
 *     callback or notification is reached through a pointer that callback could have freed:
 *     the callbacks get copies and the notification arguments are copied beforehand.
 *   - Expiry: a once-a-second timer sweeps everything, and every operation also reaps the
 *     room it touches, so an expired member or room is absent from the moment its TTL runs
 *     out whatever the sweep's timing. Counters in stats() and the participant counts in
 *     list_rooms() may lag by up to one sweep for rooms no operation has touched.
 *   - destroy() must not be called from inside one of this engine's callbacks or
 *     notifications. */
#include "store/memory_blobs.h"
#include "store/store.h"

#include "common/error.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/map.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_INTERVAL_MS 1000
/* Skip-list levels for the room listing: with p = 1/4, 16 levels index 4^16 rooms. */
#define SL_MAX 16

typedef struct mem_env mem_env_t;
typedef struct mem_member mem_member_t;
typedef struct mem_room mem_room_t;
typedef struct pending pending_t;

/* A stored envelope: one allocation with the JSON text appended. */
struct mem_env {
    mem_env_t *next;
    int64_t expires_at_ms;
    pl_env_type_t type;
    char id[PL_ID_SIZE];
    char from[PL_ID_SIZE];
    size_t json_len;
    char json[]; /* json_len bytes and a NUL */
};

/* A FIFO of envelopes. Within one inbox expiry times never decrease from head to tail
 * (every envelope gets now + signal_ttl), so expired envelopes are always at the head. */
typedef struct {
    mem_env_t *head;
    mem_env_t **tail;
    size_t len;
    size_t bytes; /* JSON bytes of the envelopes held */
} mem_inbox_t;

struct mem_member {
    pl_member_t m;
    mem_member_t *prev, *next; /* join order */
    mem_inbox_t inbox;
};

struct mem_room {
    pl_room_t r;                /* participant_count is kept equal to the member count */
    pl_map_t members;           /* peer_id -> mem_member_t */
    mem_member_t *first, *last; /* join order, oldest first */
    int64_t member_exp_bound;   /* no member expires before this: lets reaps skip the scan */
    mem_env_t *offer;           /* the room's open offer, or NULL */
    char offer_sender[PL_ID_SIZE];
    int sl_level;          /* 0 for private rooms, which are not listed */
    mem_room_t *sl_next[]; /* sl_level forward links of the listing */
};

typedef struct {
    int64_t window;
    uint32_t window_ms;
    uint64_t count;
} mem_rate_t;

/* An expiry notification waiting to be delivered. Reaps queue them so that the listener
 * runs only once the engine holds no iterator or room pointer (it may call back in). */
struct pending {
    pending_t *next;
    bool room_expired; /* on_room_expired, else on_member_expired for each of gone[] */
    bool room_removed; /* member expiry emptied the room */
    pl_room_t room;    /* as it was once the change was complete */
    pl_member_t *gone; /* expired members, or every member of an expired room */
    size_t ngone;
    pl_member_t *remaining;
    size_t nremaining;
};

/* A shared_secret(): one per name, for the life of the process. */
typedef struct mem_secret {
    struct mem_secret *next;
    char name[PL_SECRET_NAME_MAX + 1];
    size_t len;
    unsigned char value[PL_SECRET_LEN_MAX];
} mem_secret_t;

typedef struct {
    pl_store_t base; /* first: the interface pointer is the engine pointer */
    uv_loop_t *loop;
    uv_timer_t timer;
    pl_store_opts_t opts;
    pl_store_listener_t listener;
    pl_map_t rooms;          /* room id -> mem_room_t */
    pl_map_t by_broadcaster; /* broadcaster user id -> their live room */
    pl_map_t by_name;        /* broadcaster name -> most recent live room by that name */
    pl_map_t rates;          /* rate key -> mem_rate_t */
    /* Public rooms in listing order (created_at descending, then id ascending), as a skip
     * list: O(log n) insert, remove and cursor seek, where a sorted array would pay O(n)
     * per removal and a fresh sort O(n log n) per page. */
    mem_room_t *sl_head[SL_MAX];
    size_t npublic;
    uint64_t rng;
    uint64_t members;
    uint64_t queued;
    uint64_t queued_bytes; /* JSON bytes of every waiting envelope, open offers included */
    uint64_t delivered;
    uint64_t expired;
    int64_t last_sweep_ms;
    pending_t *pending;
    pending_t **pending_tail;
    mem_secret_t *secrets;
    pl_mem_blobs_t *blobs; /* custom emoji and the upstream cache (memory_blobs.c) */
} mem_store_t;

static int64_t now_ms(mem_store_t *s);
static int64_t ttl_ms(uint32_t seconds);
static size_t id_len(const char *s, size_t size);

static int list_cmp(int64_t ca, const char *ida, int64_t cb, const char *idb);
static int sl_random_level(mem_store_t *s);
static void sl_find(mem_store_t *s, int64_t created, const char *id, bool inclusive,
                    mem_room_t **link_out[SL_MAX]);
static void sl_insert(mem_store_t *s, mem_room_t *room);
static void sl_remove(mem_store_t *s, mem_room_t *room);
static mem_room_t *sl_after(mem_store_t *s, int64_t created, const char *id);

static mem_env_t *env_new(const pl_envelope_t *env, int64_t expires_at_ms);
static void inbox_init(mem_inbox_t *in);
static void inbox_append(mem_inbox_t *in, mem_env_t *e);
static void inbox_clear(mem_store_t *s, mem_inbox_t *in);
static void inbox_drop_expired(mem_store_t *s, mem_inbox_t *in, int64_t now);
static void offer_clear(mem_store_t *s, mem_room_t *room, bool expired);

static mem_member_t *member_add(mem_store_t *s, mem_room_t *room, const pl_member_t *m,
                                int64_t now);
static void member_remove(mem_store_t *s, mem_room_t *room, mem_member_t *mm);
static mem_member_t *member_find(mem_room_t *room, const char *peer_id);
static int members_snapshot(mem_room_t *room, const mem_member_t *except, pl_member_t **out,
                            size_t *n);

static void room_free(mem_store_t *s, mem_room_t *room);
static void room_remove(mem_store_t *s, mem_room_t *room);
static void index_del(pl_map_t *index, const char *key, mem_room_t *room);
static bool reap_room(mem_store_t *s, mem_room_t *room, int64_t now);
static void reap_members(mem_store_t *s, mem_room_t *room, int64_t now);
static mem_room_t *room_live(mem_store_t *s, const char *room_id, int64_t now);

static void pending_push(mem_store_t *s, pending_t *p);
static void pending_free(pending_t *p);
static void flush(mem_store_t *s);
static void sweep(mem_store_t *s);
static void free_all(mem_store_t *s);

static void on_timer(uv_timer_t *t);
static void on_close(uv_handle_t *h);

static int mem_create_room(pl_store_t *base, const pl_store_create_req_t *req,
                           pl_store_create_cb cb, void *ud);
static int mem_join_room(pl_store_t *base, const pl_store_join_req_t *req, pl_store_join_cb cb,
                         void *ud);
static int mem_leave_room(pl_store_t *base, const char *room_id, const char *peer_id,
                          pl_store_leave_cb cb, void *ud);
static int mem_heartbeat(pl_store_t *base, const char *room_id, const char *peer_id,
                         pl_store_member_cb cb, void *ud);
static int mem_get_member(pl_store_t *base, const char *room_id, const char *peer_id,
                          pl_store_member_cb cb, void *ud);
static int mem_push(pl_store_t *base, const char *room_id, const char *from_peer,
                    const char *to_peer, const pl_envelope_t *env, pl_store_status_cb cb, void *ud);
static int mem_pop(pl_store_t *base, const char *room_id, const char *peer_id, unsigned mask,
                   size_t max, pl_store_pop_cb cb, void *ud);
static int mem_get_room(pl_store_t *base, const char *room_id, pl_store_room_cb cb, void *ud);
static int mem_get_members(pl_store_t *base, const char *room_id, pl_store_members_cb cb, void *ud);
static int mem_list_rooms(pl_store_t *base, size_t limit, const char *cursor, pl_store_list_cb cb,
                          void *ud);
static int mem_rate_hit(pl_store_t *base, const char *key, uint32_t window_ms, pl_store_rate_cb cb,
                        void *ud);
static int mem_stats(pl_store_t *base, pl_store_stats_cb cb, void *ud);
static bool mem_ready(pl_store_t *base);
static int mem_shared_secret(pl_store_t *base, const char *name, size_t len, pl_store_secret_cb cb,
                             void *ud);
static void mem_destroy(pl_store_t *base);
static int mem_emoji_add(pl_store_t *base, const pl_emoji_t *e, const unsigned char *data,
                         size_t len, pl_store_emoji_cb cb, void *ud);
static int mem_emoji_get(pl_store_t *base, const char *id, bool with_data, pl_store_emoji_cb cb,
                         void *ud);
static int mem_emoji_list(pl_store_t *base, const char *domain, pl_store_emoji_list_cb cb,
                          void *ud);
static int mem_emoji_delete(pl_store_t *base, const char *id, pl_store_status_cb cb, void *ud);
static int mem_cache_get(pl_store_t *base, const char *key, pl_store_cache_cb cb, void *ud);
static int mem_cache_put(pl_store_t *base, const char *key, const unsigned char *data, size_t len,
                         uint32_t keep_s, pl_store_status_cb cb, void *ud);

/* ---- small helpers ---- */

static int64_t now_ms(mem_store_t *s)
{
    return s->opts.clock ? s->opts.clock(s->opts.clock_ud) : pl_now_ms();
}

static int64_t ttl_ms(uint32_t seconds)
{
    return (int64_t)seconds * 1000;
}

/* Length of a string held in a fixed array of size bytes, which the caller should have
 * terminated; an unterminated one counts as truncated, as the copies we keep are. */
static size_t id_len(const char *s, size_t size)
{
    return strnlen(s, size - 1);
}

/* Copies a string that may fill its fixed source array without a terminator, truncating
 * to size - 1 bytes. */

/* ---- the listing skip list ---- */

/* Listing order: newest first, then id ascending so that rooms created in the same
 * millisecond still have one total order for the cursor. <0 when a comes first. */
static int list_cmp(int64_t ca, const char *ida, int64_t cb, const char *idb)
{
    if (ca != cb)
        return ca > cb ? -1 : 1;
    return strcmp(ida, idb);
}

static int sl_random_level(mem_store_t *s)
{
    /* xorshift64*: level choice only affects balance, not correctness. */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    uint64_t r = s->rng * 0x2545f4914f6cdd1dull;
    int level = 1;
    while (level < SL_MAX && (r & 3) == 0) {
        level++;
        r >>= 2;
    }
    return level;
}

/* Fills link_out[l] with the level-l link after which (created, id) belongs: the last link
 * whose node sorts before the key (inclusive: before or equal). */
static void sl_find(mem_store_t *s, int64_t created, const char *id, bool inclusive,
                    mem_room_t **link_out[SL_MAX])
{
    mem_room_t **next = s->sl_head;
    for (int l = SL_MAX - 1; l >= 0; l--) {
        for (;;) {
            mem_room_t *n = next[l];
            if (!n)
                break;
            int c = list_cmp(n->r.created_at_ms, n->r.id, created, id);
            if (c > 0 || (c == 0 && !inclusive))
                break;
            next = n->sl_next;
        }
        link_out[l] = &next[l];
    }
}

static void sl_insert(mem_store_t *s, mem_room_t *room)
{
    mem_room_t **link[SL_MAX];
    sl_find(s, room->r.created_at_ms, room->r.id, false, link);
    for (int l = 0; l < room->sl_level; l++) {
        room->sl_next[l] = *link[l];
        *link[l] = room;
    }
    s->npublic++;
}

static void sl_remove(mem_store_t *s, mem_room_t *room)
{
    mem_room_t **link[SL_MAX];
    sl_find(s, room->r.created_at_ms, room->r.id, false, link);
    for (int l = 0; l < room->sl_level; l++) {
        if (*link[l] == room)
            *link[l] = room->sl_next[l];
    }
    s->npublic--;
}

/* The first listed room strictly after (created, id) in listing order. */
static mem_room_t *sl_after(mem_store_t *s, int64_t created, const char *id)
{
    mem_room_t **link[SL_MAX];
    sl_find(s, created, id, true, link);
    return *link[0];
}

/* ---- envelopes and inboxes ---- */

static mem_env_t *env_new(const pl_envelope_t *env, int64_t expires_at_ms)
{
    mem_env_t *e = malloc(sizeof *e + env->json_len + 1);
    if (!e)
        return NULL;
    e->next = NULL;
    e->expires_at_ms = expires_at_ms;
    e->type = env->type;
    pl_strcpy_cut(e->id, env->id, sizeof e->id);
    pl_strcpy_cut(e->from, env->from, sizeof e->from);
    e->json_len = env->json_len;
    if (env->json_len)
        memcpy(e->json, env->json, env->json_len);
    e->json[env->json_len] = '\0';
    return e;
}

static void inbox_init(mem_inbox_t *in)
{
    in->head = NULL;
    in->tail = &in->head;
    in->len = 0;
    in->bytes = 0;
}

static void inbox_append(mem_inbox_t *in, mem_env_t *e)
{
    e->next = NULL;
    *in->tail = e;
    in->tail = &e->next;
    in->len++;
    in->bytes += e->json_len;
}

static void inbox_clear(mem_store_t *s, mem_inbox_t *in)
{
    mem_env_t *e = in->head;
    while (e) {
        mem_env_t *next = e->next;
        free(e);
        e = next;
    }
    s->queued -= in->len;
    s->queued_bytes -= in->bytes;
    inbox_init(in);
}

static void inbox_drop_expired(mem_store_t *s, mem_inbox_t *in, int64_t now)
{
    while (in->head && in->head->expires_at_ms <= now) {
        mem_env_t *e = in->head;
        in->head = e->next;
        in->len--;
        in->bytes -= e->json_len;
        s->queued--;
        s->queued_bytes -= e->json_len;
        s->expired++;
        free(e);
    }
    if (!in->head)
        in->tail = &in->head;
}

static void offer_clear(mem_store_t *s, mem_room_t *room, bool expired)
{
    if (!room->offer)
        return;
    s->queued_bytes -= room->offer->json_len;
    free(room->offer);
    room->offer = NULL;
    room->offer_sender[0] = '\0';
    s->queued--;
    if (expired)
        s->expired++;
}

/* ---- members ---- */

/* Adds a copy of m as the room's newest member, with fresh times. NULL on allocation
 * failure, with the room unchanged. */
static mem_member_t *member_add(mem_store_t *s, mem_room_t *room, const pl_member_t *m, int64_t now)
{
    mem_member_t *mm = calloc(1, sizeof *mm);
    if (!mm)
        return NULL;
    mm->m = *m;
    mm->m.peer_id[PL_ID_SIZE - 1] = '\0';
    mm->m.user_id[PL_USER_ID_SIZE - 1] = '\0';
    mm->m.name[PL_NAME_SIZE - 1] = '\0';
    mm->m.joined_at_ms = now;
    mm->m.expires_at_ms = now + ttl_ms(s->opts.member_ttl_s);
    inbox_init(&mm->inbox);
    if (pl_map_put(&room->members, mm->m.peer_id, strlen(mm->m.peer_id), mm) != 0) {
        free(mm);
        return NULL;
    }
    mm->prev = room->last;
    mm->next = NULL;
    if (room->last)
        room->last->next = mm;
    else
        room->first = mm;
    room->last = mm;
    room->r.participant_count++;
    if (room->r.participant_count == 1 || mm->m.expires_at_ms < room->member_exp_bound)
        room->member_exp_bound = mm->m.expires_at_ms;
    s->members++;
    return mm;
}

/* Unlinks and frees a member with its inbox. An open offer it made goes too: nobody can
 * answer a peer that has left. The room itself stays, even when empty (callers decide). */
static void member_remove(mem_store_t *s, mem_room_t *room, mem_member_t *mm)
{
    pl_map_del(&room->members, mm->m.peer_id, strlen(mm->m.peer_id));
    if (mm->prev)
        mm->prev->next = mm->next;
    else
        room->first = mm->next;
    if (mm->next)
        mm->next->prev = mm->prev;
    else
        room->last = mm->prev;
    room->r.participant_count--;
    s->members--;
    if (room->offer && strcmp(room->offer_sender, mm->m.peer_id) == 0)
        offer_clear(s, room, false);
    inbox_clear(s, &mm->inbox);
    free(mm);
}

static mem_member_t *member_find(mem_room_t *room, const char *peer_id)
{
    if (!peer_id)
        return NULL;
    /* Bounded: a request's fixed array may lack its NUL, and no key is longer anyway. */
    return pl_map_get(&room->members, peer_id, strnlen(peer_id, PL_ID_SIZE));
}

/* Copies the room's members in join order, leaving out `except` (may be NULL). *out is
 * NULL when there are none. Returns 0 or PL_ENOMEM. */
static int members_snapshot(mem_room_t *room, const mem_member_t *except, pl_member_t **out,
                            size_t *n)
{
    size_t count = room->r.participant_count - (except ? 1 : 0);
    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    pl_member_t *arr = malloc(count * sizeof *arr);
    if (!arr)
        return PL_ENOMEM;
    size_t i = 0;
    for (mem_member_t *mm = room->first; mm && i < count; mm = mm->next) {
        if (mm != except)
            arr[i++] = mm->m;
    }
    *out = arr;
    *n = i;
    return 0;
}

/* ---- rooms ---- */

static void room_free(mem_store_t *s, mem_room_t *room)
{
    mem_member_t *mm = room->first;
    while (mm) {
        mem_member_t *next = mm->next;
        inbox_clear(s, &mm->inbox);
        free(mm);
        s->members--;
        mm = next;
    }
    offer_clear(s, room, false);
    pl_map_free(&room->members);
    free(room);
}

/* Drops a room from every index and frees it with whatever it still holds. */
static void room_remove(mem_store_t *s, mem_room_t *room)
{
    pl_map_del(&s->rooms, room->r.id, strlen(room->r.id));
    index_del(&s->by_broadcaster, room->r.broadcaster_id, room);
    index_del(&s->by_name, room->r.broadcaster_name, room);
    if (room->sl_level)
        sl_remove(s, room);
    room_free(s, room);
}

/* Removes key from an index only when it still points at this room: a newer room may have
 * taken the name since. */
static void index_del(pl_map_t *index, const char *key, mem_room_t *room)
{
    size_t len = strlen(key);
    if (pl_map_get(index, key, len) == room)
        pl_map_del(index, key, len);
}

/* Removes what has expired in the room: all of it when the room's own TTL ran out, else
 * the members whose TTL ran out (and the room when none remain). The notifications are
 * queued, not delivered: the caller flushes them once it holds no pointer into the store.
 * Returns true when the room was removed. */
static bool reap_room(mem_store_t *s, mem_room_t *room, int64_t now)
{
    if (room->r.expires_at_ms > now) {
        if (room->member_exp_bound > now)
            return false;
        reap_members(s, room, now);
        if (room->first)
            return false;
        room_remove(s, room); /* its last members expired */
        return true;
    }
    pending_t *p = calloc(1, sizeof *p);
    if (p) {
        p->room_expired = true;
        p->room = room->r;
        if (members_snapshot(room, NULL, &p->gone, &p->ngone) != 0) {
            free(p);
            p = NULL;
        }
    }
    if (!p)
        pl_log_error("store: out of memory, room expiry not notified", PL_LS("room", room->r.id));
    room_remove(s, room);
    if (p)
        pending_push(s, p);
    return true;
}

/* Removes the room's expired members in one pass and queues one on_member_expired per
 * member, each with the members that remain after the whole pass: peers that expired
 * together need no peer-left about each other. room_removed is set on the last of them
 * only, so the listener sees a room's removal exactly once; the caller removes the room. */
static void reap_members(mem_store_t *s, mem_room_t *room, int64_t now)
{
    size_t nexp = 0;
    int64_t bound = INT64_MAX;
    for (mem_member_t *mm = room->first; mm; mm = mm->next) {
        if (mm->m.expires_at_ms <= now)
            nexp++;
        else if (mm->m.expires_at_ms < bound)
            bound = mm->m.expires_at_ms;
    }
    room->member_exp_bound = bound;
    if (!nexp)
        return;

    pending_t *p = calloc(1, sizeof *p);
    if (p) {
        p->gone = malloc(nexp * sizeof *p->gone);
        if (!p->gone) {
            free(p);
            p = NULL;
        }
    }
    mem_member_t *mm = room->first;
    while (mm) {
        mem_member_t *next = mm->next;
        if (mm->m.expires_at_ms <= now) {
            if (p)
                p->gone[p->ngone++] = mm->m;
            member_remove(s, room, mm);
        }
        mm = next;
    }
    if (p) {
        p->room = room->r;
        p->room_removed = room->first == NULL;
        if (members_snapshot(room, NULL, &p->remaining, &p->nremaining) != 0) {
            pending_free(p);
            p = NULL;
        }
    }
    if (p)
        pending_push(s, p);
    else
        pl_log_error("store: out of memory, member expiry not notified", PL_LS("room", room->r.id));
}

/* The live room with this id, or NULL. Reaps it first and delivers the resulting
 * notifications, then looks the room up again, since a listener may have changed it. */
static mem_room_t *room_live(mem_store_t *s, const char *room_id, int64_t now)
{
    char key[PL_ID_SIZE];
    size_t len = strnlen(room_id, PL_ID_SIZE);
    if (len >= PL_ID_SIZE)
        return NULL; /* longer than any id we hand out */
    /* Copied because room_id may point into the room that the reap frees. */
    memcpy(key, room_id, len);
    key[len] = '\0';
    mem_room_t *room = pl_map_get(&s->rooms, key, len);
    if (!room)
        return NULL;
    bool removed = reap_room(s, room, now);
    if (!s->pending)
        return removed ? NULL : room;
    flush(s);
    return pl_map_get(&s->rooms, key, len);
}

/* ---- expiry notifications and the sweep ---- */

static void pending_push(mem_store_t *s, pending_t *p)
{
    p->next = NULL;
    *s->pending_tail = p;
    s->pending_tail = &p->next;
}

static void pending_free(pending_t *p)
{
    free(p->gone);
    free(p->remaining);
    free(p);
}

/* Delivers queued notifications. The queue is detached first, so a listener that calls
 * back into the store (and queues more) is served by its own call's flush. */
static void flush(mem_store_t *s)
{
    pending_t *p = s->pending;
    s->pending = NULL;
    s->pending_tail = &s->pending;
    const pl_store_listener_t *l = &s->listener;
    while (p) {
        pending_t *next = p->next;
        if (p->room_expired) {
            if (l->on_room_expired)
                l->on_room_expired(l->ud, &p->room, p->gone, p->ngone);
        } else if (l->on_member_expired) {
            for (size_t i = 0; i < p->ngone; i++)
                l->on_member_expired(l->ud, &p->room, &p->gone[i], p->remaining, p->nremaining,
                                     p->room_removed && i + 1 == p->ngone);
        }
        pending_free(p);
        p = next;
    }
}

static void sweep(mem_store_t *s)
{
    int64_t now = now_ms(s);
    pl_map_iter_t it;
    void *val;

    s->last_sweep_ms = now;
    /* reap_room may delete the entry just returned, which the iterator tolerates; it
     * inserts nothing, and the listener runs only after the loop. */
    pl_map_iter_init(&it, &s->rooms);
    while (pl_map_iter_next(&it, NULL, NULL, &val)) {
        mem_room_t *room = val;
        if (reap_room(s, room, now))
            continue;
        for (mem_member_t *mm = room->first; mm; mm = mm->next)
            inbox_drop_expired(s, &mm->inbox, now);
        if (room->offer && room->offer->expires_at_ms <= now)
            offer_clear(s, room, true);
    }
    /* A counter whose window has ended will be reset by its next hit anyway; dropping it
     * now keeps the table bounded by the keys active within one window. */
    pl_map_iter_init(&it, &s->rates);
    const char *key;
    size_t klen;
    while (pl_map_iter_next(&it, &key, &klen, &val)) {
        mem_rate_t *r = val;
        if ((r->window + 1) * (int64_t)r->window_ms <= now) {
            pl_map_del(&s->rates, key, klen);
            free(r);
        }
    }
    flush(s);
}

static void free_all(mem_store_t *s)
{
    pl_map_iter_t it;
    void *val;
    pl_map_iter_init(&it, &s->rooms);
    while (pl_map_iter_next(&it, NULL, NULL, &val))
        room_free(s, val);
    pl_map_iter_init(&it, &s->rates);
    while (pl_map_iter_next(&it, NULL, NULL, &val))
        free(val);
    pl_map_free(&s->rooms);
    pl_map_free(&s->by_broadcaster);
    pl_map_free(&s->by_name);
    pl_map_free(&s->rates);
    memset(s->sl_head, 0, sizeof s->sl_head);
    s->npublic = 0;
    pending_t *p = s->pending;
    while (p) {
        pending_t *next = p->next;
        pending_free(p);
        p = next;
    }
    s->pending = NULL;
    s->pending_tail = &s->pending;
}

/* ---- the timer ---- */

static void on_timer(uv_timer_t *t)
{
    sweep(t->data);
}

/* The engine's memory holds the timer handle, so it can go only once libuv is done with
 * the handle. */
static void on_close(uv_handle_t *h)
{
    mem_store_t *s = h->data;
    pl_mem_blobs_free(s->blobs); /* NULL after mem_destroy; set when start-up failed */
    free(s);
}

/* ---- operations ---- */

static int mem_create_room(pl_store_t *base, const pl_store_create_req_t *req,
                           pl_store_create_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !req || !cb)
        return PL_EINVAL;
    int64_t now = now_ms(s);
    const char *uid = req->room.broadcaster_id;
    size_t uid_len = id_len(uid, PL_USER_ID_SIZE);
    int err = 0;

    mem_room_t *room = pl_map_get(&s->by_broadcaster, uid, uid_len);
    if (room)
        room = room_live(s, room->r.id, now);
    if (room) {
        /* Idempotent create: the broadcaster gets their live room back. They always get
         * in, whatever max_peers says: it is their room. */
        mem_member_t *mm = room->first;
        while (mm && strncmp(mm->m.user_id, uid, PL_USER_ID_SIZE) != 0)
            mm = mm->next;
        if (mm) {
            mm->m.expires_at_ms = now + ttl_ms(s->opts.member_ttl_s);
        } else if (member_find(room, req->member.peer_id)) {
            cb(ud, PL_EEXIST, NULL, NULL, false);
            return 0;
        } else if (!(mm = member_add(s, room, &req->member, now))) {
            cb(ud, PL_ENOMEM, NULL, NULL, false);
            return 0;
        }
        /* The broadcaster asking again is activity, like a heartbeat. */
        room->r.expires_at_ms = now + ttl_ms(s->opts.room_ttl_s);
        pl_room_t r = room->r;
        pl_member_t m = mm->m;
        cb(ud, 0, &r, &m, false);
        return 0;
    }

    if (s->opts.rooms_max && pl_map_size(&s->rooms) >= s->opts.rooms_max &&
        s->last_sweep_ms != now) {
        /* Expired rooms still in the table must not count against the limit. At most one
         * forced sweep per millisecond, so a flood of creates at the limit stays cheap. */
        sweep(s);
    }
    if (s->opts.rooms_max && pl_map_size(&s->rooms) >= s->opts.rooms_max) {
        cb(ud, PL_ELIMIT, NULL, NULL, false);
        return 0;
    }
    size_t rid_len = id_len(req->room.id, PL_ID_SIZE);
    if (rid_len == 0) {
        cb(ud, PL_EINVAL, NULL, NULL, false);
        return 0;
    }
    if (pl_map_get(&s->rooms, req->room.id, rid_len)) {
        cb(ud, PL_EEXIST, NULL, NULL, false);
        return 0;
    }

    int level = req->room.is_public ? sl_random_level(s) : 0;
    room = calloc(1, sizeof *room + (size_t)level * sizeof room->sl_next[0]);
    if (!room) {
        err = PL_ENOMEM;
        goto fail;
    }
    room->r = req->room;
    room->r.id[PL_ID_SIZE - 1] = '\0';
    room->r.broadcaster_id[PL_USER_ID_SIZE - 1] = '\0';
    room->r.broadcaster_name[PL_NAME_SIZE - 1] = '\0';
    room->r.custom_name[PL_NAME_SIZE - 1] = '\0';
    room->r.created_at_ms = now;
    room->r.expires_at_ms = now + ttl_ms(s->opts.room_ttl_s);
    room->r.participant_count = 0;
    room->sl_level = level;
    pl_map_init(&room->members);

    mem_member_t *mm = member_add(s, room, &req->member, now);
    if (!mm) {
        err = PL_ENOMEM;
        goto fail_room;
    }
    if (pl_map_put(&s->rooms, room->r.id, rid_len, room) != 0) {
        err = PL_ENOMEM;
        goto fail_member;
    }
    if (pl_map_put(&s->by_broadcaster, room->r.broadcaster_id, strlen(room->r.broadcaster_id),
                   room) != 0) {
        err = PL_ENOMEM;
        goto fail_rooms;
    }
    /* Last, because a put that replaces another room's entry cannot be undone; a failed
     * put changes nothing. A nameless broadcaster cannot be joined by name, and neither can
     * a private room: knowing a streamer's name must not open a room they did not list. */
    if (room->r.broadcaster_name[0] && room->r.is_public &&
        pl_map_put(&s->by_name, room->r.broadcaster_name, strlen(room->r.broadcaster_name), room) !=
            0) {
        err = PL_ENOMEM;
        goto fail_broadcaster;
    }
    if (level)
        sl_insert(s, room);

    pl_room_t r = room->r;
    pl_member_t m = mm->m;
    cb(ud, 0, &r, &m, true);
    return 0;

fail_broadcaster:
    pl_map_del(&s->by_broadcaster, room->r.broadcaster_id, strlen(room->r.broadcaster_id));
fail_rooms:
    pl_map_del(&s->rooms, room->r.id, rid_len);
fail_member:
    member_remove(s, room, mm);
fail_room:
    pl_map_free(&room->members);
    free(room);
fail:
    cb(ud, err, NULL, NULL, false);
    return 0;
}

static int mem_join_room(pl_store_t *base, const pl_store_join_req_t *req, pl_store_join_cb cb,
                         void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !req || !cb || (!req->room_id && !req->broadcaster_name))
        return PL_EINVAL;
    int64_t now = now_ms(s);
    mem_room_t *room = NULL;

    if (req->room_id) {
        room = room_live(s, req->room_id, now);
    } else {
        const char *name = req->broadcaster_name;
        room = pl_map_get(&s->by_name, name, strlen(name));
        if (room)
            room = room_live(s, room->r.id, now);
    }
    if (!room) {
        cb(ud, PL_ENOTFOUND, NULL, NULL, NULL, 0);
        return 0;
    }
    if (room->r.max_peers && room->r.participant_count >= room->r.max_peers) {
        cb(ud, PL_EFULL, NULL, NULL, NULL, 0);
        return 0;
    }
    if (member_find(room, req->member.peer_id)) {
        cb(ud, PL_EEXIST, NULL, NULL, NULL, 0);
        return 0;
    }
    pl_member_t *peers;
    size_t npeers;
    if (members_snapshot(room, NULL, &peers, &npeers) != 0) {
        cb(ud, PL_ENOMEM, NULL, NULL, NULL, 0);
        return 0;
    }
    mem_member_t *mm = member_add(s, room, &req->member, now);
    if (!mm) {
        free(peers);
        cb(ud, PL_ENOMEM, NULL, NULL, NULL, 0);
        return 0;
    }
    pl_room_t r = room->r;
    pl_member_t m = mm->m;
    cb(ud, 0, &r, &m, peers, npeers);
    free(peers);
    return 0;
}

/* When the broadcaster leaves, the room stays for as long as anyone else is in it: viewers
 * may still be talking among themselves (mesh), and the broadcaster can come back with
 * create-room, which finds the room through the broadcaster index and rejoins it. */
static int mem_leave_room(pl_store_t *base, const char *room_id, const char *peer_id,
                          pl_store_leave_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    mem_room_t *room = room_live(s, room_id, now_ms(s));
    if (!room) {
        cb(ud, PL_ENOTFOUND, false, NULL, 0);
        return 0;
    }
    mem_member_t *mm = member_find(room, peer_id);
    if (!mm) {
        cb(ud, PL_EFORBIDDEN, false, NULL, 0);
        return 0;
    }
    pl_member_t *rest;
    size_t nrest;
    if (members_snapshot(room, mm, &rest, &nrest) != 0) {
        cb(ud, PL_ENOMEM, false, NULL, 0);
        return 0;
    }
    member_remove(s, room, mm);
    bool removed = room->first == NULL;
    if (removed)
        room_remove(s, room);
    cb(ud, 0, removed, rest, nrest);
    free(rest);
    return 0;
}

static int mem_heartbeat(pl_store_t *base, const char *room_id, const char *peer_id,
                         pl_store_member_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    int64_t now = now_ms(s);
    mem_room_t *room = room_live(s, room_id, now);
    if (!room) {
        cb(ud, PL_ENOTFOUND, NULL, NULL);
        return 0;
    }
    mem_member_t *mm = member_find(room, peer_id);
    if (!mm) {
        cb(ud, PL_EFORBIDDEN, NULL, NULL);
        return 0;
    }
    /* member_exp_bound stays a valid lower bound: expiry only moved later. */
    mm->m.expires_at_ms = now + ttl_ms(s->opts.member_ttl_s);
    room->r.expires_at_ms = now + ttl_ms(s->opts.room_ttl_s);
    pl_room_t r = room->r;
    pl_member_t m = mm->m;
    cb(ud, 0, &r, &m);
    return 0;
}

static int mem_get_member(pl_store_t *base, const char *room_id, const char *peer_id,
                          pl_store_member_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    mem_room_t *room = room_live(s, room_id, now_ms(s));
    if (!room) {
        cb(ud, PL_ENOTFOUND, NULL, NULL);
        return 0;
    }
    mem_member_t *mm = member_find(room, peer_id);
    if (!mm) {
        cb(ud, PL_EFORBIDDEN, NULL, NULL);
        return 0;
    }
    pl_room_t r = room->r;
    pl_member_t m = mm->m;
    cb(ud, 0, &r, &m);
    return 0;
}

static int mem_push(pl_store_t *base, const char *room_id, const char *from_peer,
                    const char *to_peer, const pl_envelope_t *env, pl_store_status_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !env || !cb || (!env->json && env->json_len))
        return PL_EINVAL;
    unsigned type = (unsigned)env->type;
    if (type == 0 || (type & ~(unsigned)PL_ENV_ALL) || (type & (type - 1)))
        return PL_EINVAL;
    int64_t now = now_ms(s);
    int err = 0;
    mem_env_t *e = NULL;
    char single[1][PL_ID_SIZE];
    char(*notify)[PL_ID_SIZE] = NULL; /* peers to tell, copied: see the order above */
    size_t nnotify = 0;
    char rid[PL_ID_SIZE];

    mem_room_t *room = room_live(s, room_id, now);
    if (!room) {
        err = PL_ENOTFOUND;
        goto fail;
    }
    if (from_peer && !member_find(room, from_peer)) {
        err = PL_EFORBIDDEN;
        goto fail;
    }
    mem_member_t *dst = NULL;
    if (to_peer) {
        if (!(dst = member_find(room, to_peer))) {
            err = PL_ENOTFOUND;
            goto fail;
        }
        /* Expired envelopes must not hold the inbox full. */
        inbox_drop_expired(s, &dst->inbox, now);
        if ((s->opts.inbox_max && dst->inbox.len >= s->opts.inbox_max) ||
            (s->opts.inbox_bytes_max &&
             dst->inbox.bytes + env->json_len > s->opts.inbox_bytes_max)) {
            err = PL_ELIMIT;
            goto fail;
        }
        /* One sender may hold only a share of someone's inbox, so that a hostile member
         * cannot fill it and lock everyone else out until the signals expire. */
        if (s->opts.inbox_per_sender_max && env->from[0]) {
            size_t mine = 0;
            for (mem_env_t *q = dst->inbox.head; q; q = q->next)
                mine += strcmp(q->from, env->from) == 0;
            if (mine >= s->opts.inbox_per_sender_max) {
                err = PL_ELIMIT;
                goto fail;
            }
        }
    }
    if (s->opts.queued_bytes_max && s->queued_bytes + env->json_len > s->opts.queued_bytes_max) {
        err = PL_ELIMIT;
        goto fail;
    }
    e = env_new(env, now + ttl_ms(s->opts.signal_ttl_s));
    if (!e) {
        err = PL_ENOMEM;
        goto fail;
    }
    /* The notification arguments are copied now: the callback may free the caller's
     * strings, and a re-entrant call may change the room. */
    memcpy(rid, room->r.id, sizeof rid);
    const char *sender = from_peer ? from_peer : env->from;
    if (dst) {
        notify = single;
        memcpy(notify[0], dst->m.peer_id, PL_ID_SIZE);
        nnotify = 1;
        inbox_append(&dst->inbox, e);
    } else {
        notify = malloc(room->r.participant_count * sizeof *notify);
        if (!notify) {
            err = PL_ENOMEM;
            goto fail_env;
        }
        for (mem_member_t *mm = room->first; mm; mm = mm->next) {
            if (strcmp(mm->m.peer_id, sender) != 0)
                memcpy(notify[nnotify++], mm->m.peer_id, PL_ID_SIZE);
        }
        offer_clear(s, room, false); /* a newer open offer replaces the older */
        room->offer = e;
        pl_strcpy_cut(room->offer_sender, sender, sizeof room->offer_sender);
    }
    s->queued++;
    s->queued_bytes += e->json_len;

    cb(ud, 0);
    const pl_store_listener_t *l = &s->listener;
    if (l->on_inbox) {
        for (size_t i = 0; i < nnotify; i++)
            l->on_inbox(l->ud, rid, notify[i]);
    }
    if (notify != single)
        free(notify);
    return 0;

fail_env:
    free(e);
fail:
    cb(ud, err);
    return 0;
}

static int mem_pop(pl_store_t *base, const char *room_id, const char *peer_id, unsigned mask,
                   size_t max, pl_store_pop_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    int64_t now = now_ms(s);
    mem_room_t *room = room_live(s, room_id, now);
    if (!room) {
        cb(ud, PL_ENOTFOUND, NULL, 0);
        return 0;
    }
    mem_member_t *mm = member_find(room, peer_id);
    if (!mm) {
        cb(ud, PL_EFORBIDDEN, NULL, 0);
        return 0;
    }

    /* At most the whole inbox and the open offer can be taken; sized before anything is
     * removed so that an allocation failure leaves the inbox as it was. */
    size_t cap = mm->inbox.len + 1;
    if (max < cap)
        cap = max;
    pl_envelope_t *out = NULL;
    if (cap) {
        out = malloc(cap * sizeof *out);
        if (!out) {
            cb(ud, PL_ENOMEM, NULL, 0);
            return 0;
        }
    }

    mem_env_t *taken = NULL, **taken_tail = &taken;
    size_t n = 0;
    mem_inbox_t *in = &mm->inbox;
    mem_env_t **pp = &in->head;
    while (*pp && n < max) {
        mem_env_t *e = *pp;
        if (e->expires_at_ms <= now) {
            *pp = e->next;
            in->len--;
            in->bytes -= e->json_len;
            s->queued--;
            s->queued_bytes -= e->json_len;
            s->expired++;
            free(e);
        } else if (e->type & mask) {
            *pp = e->next;
            in->len--;
            in->bytes -= e->json_len;
            s->queued--;
            s->queued_bytes -= e->json_len;
            e->next = NULL;
            *taken_tail = e;
            taken_tail = &e->next;
            n++;
        } else {
            pp = &e->next; /* other types stay, in order */
        }
    }
    if (!*pp)
        in->tail = pp; /* the walk reached the end, where it may have removed the last */

    if ((mask & PL_ENV_OFFER) && room->offer) {
        if (room->offer->expires_at_ms <= now) {
            offer_clear(s, room, true);
        } else if (n < max && strcmp(room->offer_sender, peer_id) != 0) {
            mem_env_t *e = room->offer;
            room->offer = NULL;
            room->offer_sender[0] = '\0';
            s->queued--;
            s->queued_bytes -= e->json_len;
            e->next = NULL;
            *taken_tail = e;
            n++;
        }
    }
    s->delivered += n;
    /* Remember who offered last: an answer without `to` goes back to them. */
    for (mem_env_t *e = taken; e; e = e->next)
        if (e->type == PL_ENV_OFFER && e->from[0])
            memcpy(mm->m.last_offer_from, e->from, PL_ID_SIZE);

    size_t i = 0;
    for (mem_env_t *e = taken; e; e = e->next, i++) {
        memcpy(out[i].id, e->id, PL_ID_SIZE);
        memcpy(out[i].from, e->from, PL_ID_SIZE);
        out[i].type = e->type;
        out[i].json = e->json;
        out[i].json_len = e->json_len;
    }
    /* The taken envelopes are already out of the store, so the callback may call back in. */
    cb(ud, 0, n ? out : NULL, n);
    while (taken) {
        mem_env_t *next = taken->next;
        free(taken);
        taken = next;
    }
    free(out);
    return 0;
}

static int mem_get_room(pl_store_t *base, const char *room_id, pl_store_room_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !cb)
        return PL_EINVAL;
    mem_room_t *room = room_live(s, room_id, now_ms(s));
    if (!room) {
        cb(ud, PL_ENOTFOUND, NULL);
        return 0;
    }
    pl_room_t r = room->r;
    cb(ud, 0, &r);
    return 0;
}

static int mem_get_members(pl_store_t *base, const char *room_id, pl_store_members_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !room_id || !cb)
        return PL_EINVAL;
    mem_room_t *room = room_live(s, room_id, now_ms(s));
    if (!room) {
        cb(ud, PL_ENOTFOUND, NULL, NULL, 0);
        return 0;
    }
    pl_member_t *members;
    size_t n;
    if (members_snapshot(room, NULL, &members, &n) != 0) {
        cb(ud, PL_ENOMEM, NULL, NULL, 0);
        return 0;
    }
    pl_room_t r = room->r;
    cb(ud, 0, &r, members, n);
    free(members);
    return 0;
}

/* Walks the skip list from the cursor: O(log n + limit) per page. Rooms past their TTL that
 * the sweep has not removed yet are skipped. */
static int mem_list_rooms(pl_store_t *base, size_t limit, const char *cursor, pl_store_list_cb cb,
                          void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !cb || limit == 0)
        return PL_EINVAL;
    int64_t now = now_ms(s);
    mem_room_t *node = s->sl_head[0];
    if (cursor && *cursor) {
        int64_t created;
        char id[PL_ID_SIZE];
        if (pl_store_cursor_parse(cursor, &created, id) != 0) {
            cb(ud, PL_EINVAL, NULL, 0, "");
            return 0;
        }
        node = sl_after(s, created, id);
    }
    size_t cap = limit < s->npublic ? limit : s->npublic;
    pl_room_t *rooms = NULL;
    if (cap) {
        rooms = malloc(cap * sizeof *rooms);
        if (!rooms) {
            cb(ud, PL_ENOMEM, NULL, 0, "");
            return 0;
        }
    }
    size_t n = 0;
    const mem_room_t *last = NULL;
    for (; node && n < cap; node = node->sl_next[0]) {
        if (node->r.expires_at_ms <= now)
            continue;
        rooms[n++] = node->r;
        last = node;
    }
    while (node && node->r.expires_at_ms <= now)
        node = node->sl_next[0];
    char next[PL_CURSOR_MAX + 1] = "";
    if (node && last)
        snprintf(next, sizeof next, "%" PRId64 ".%s", last->r.created_at_ms, last->r.id);
    cb(ud, 0, rooms, n, next);
    free(rooms);
    return 0;
}

static int mem_rate_hit(pl_store_t *base, const char *key, uint32_t window_ms, pl_store_rate_cb cb,
                        void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !key || !cb || window_ms == 0)
        return PL_EINVAL;
    int64_t now = now_ms(s);
    int64_t window = now / window_ms;
    if (now < 0 && now % window_ms)
        window--; /* floor, so that window boundaries stay evenly spaced */
    size_t klen = strlen(key);
    mem_rate_t *r = pl_map_get(&s->rates, key, klen);
    if (!r) {
        r = malloc(sizeof *r);
        if (!r || pl_map_put(&s->rates, key, klen, r) != 0) {
            free(r);
            cb(ud, PL_ENOMEM, 0, 0);
            return 0;
        }
        r->window = window;
        r->window_ms = window_ms;
        r->count = 0;
    } else if (r->window != window || r->window_ms != window_ms) {
        /* A new window replaces the old counter in place. */
        r->window = window;
        r->window_ms = window_ms;
        r->count = 0;
    }
    r->count++;
    cb(ud, 0, r->count, (window + 1) * (int64_t)window_ms);
    return 0;
}

static int mem_stats(pl_store_t *base, pl_store_stats_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !cb)
        return PL_EINVAL;
    pl_store_stats_t st = {
        .rooms = pl_map_size(&s->rooms),
        .members = s->members,
        .signals_queued = s->queued,
        .signals_delivered = s->delivered,
        .signals_expired = s->expired,
    };
    cb(ud, 0, &st);
    return 0;
}

static int mem_shared_secret(pl_store_t *base, const char *name, size_t len, pl_store_secret_cb cb,
                             void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s || !name || !cb || len == 0 || len > PL_SECRET_LEN_MAX)
        return PL_EINVAL;
    size_t nlen = strnlen(name, PL_SECRET_NAME_MAX + 1);
    if (nlen == 0 || nlen > PL_SECRET_NAME_MAX)
        return PL_EINVAL;
    mem_secret_t *x = s->secrets;
    while (x && strcmp(x->name, name) != 0)
        x = x->next;
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x)
            return PL_ENOMEM;
        if (pl_random_bytes(x->value, len) != 0) {
            free(x);
            return PL_EUNAVAIL;
        }
        memcpy(x->name, name, nlen + 1);
        x->len = len;
        x->next = s->secrets;
        s->secrets = x;
    }
    cb(ud, 0, x->value, x->len);
    return 0;
}

static bool mem_ready(pl_store_t *base)
{
    (void)base;
    return true;
}

/* ---- custom emoji and cache: memory_blobs.c ---- */

static int mem_emoji_add(pl_store_t *base, const pl_emoji_t *e, const unsigned char *data,
                         size_t len, pl_store_emoji_cb cb, void *ud)
{
    return pl_mem_emoji_add(((mem_store_t *)base)->blobs, e, data, len, cb, ud);
}

static int mem_emoji_get(pl_store_t *base, const char *id, bool with_data, pl_store_emoji_cb cb,
                         void *ud)
{
    return pl_mem_emoji_get(((mem_store_t *)base)->blobs, id, with_data, cb, ud);
}

static int mem_emoji_list(pl_store_t *base, const char *domain, pl_store_emoji_list_cb cb, void *ud)
{
    return pl_mem_emoji_list(((mem_store_t *)base)->blobs, domain, cb, ud);
}

static int mem_emoji_delete(pl_store_t *base, const char *id, pl_store_status_cb cb, void *ud)
{
    return pl_mem_emoji_delete(((mem_store_t *)base)->blobs, id, cb, ud);
}

static int mem_cache_get(pl_store_t *base, const char *key, pl_store_cache_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    return pl_mem_cache_get(s->blobs, key, now_ms(s), cb, ud);
}

static int mem_cache_put(pl_store_t *base, const char *key, const unsigned char *data, size_t len,
                         uint32_t keep_s, pl_store_status_cb cb, void *ud)
{
    mem_store_t *s = (mem_store_t *)base;
    return pl_mem_cache_put(s->blobs, key, data, len, keep_s, now_ms(s), cb, ud);
}

/* Everything but the engine struct goes now; the struct holds the timer handle, which
 * libuv owns until the close callback (run by the loop's next iteration). */
static void mem_destroy(pl_store_t *base)
{
    mem_store_t *s = (mem_store_t *)base;
    if (!s)
        return;
    free_all(s);
    pl_mem_blobs_free(s->blobs);
    s->blobs = NULL;
    while (s->secrets) {
        mem_secret_t *x = s->secrets;
        s->secrets = x->next;
        free(x);
    }
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_close);
}

/* ---- public ---- */

int pl_store_memory_new(uv_loop_t *loop, const pl_store_opts_t *opts,
                        const pl_store_listener_t *listener, pl_store_t **out)
{
    if (!loop || !opts || !out)
        return PL_EINVAL;
    *out = NULL;
    mem_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return PL_ENOMEM;
    s->base = (pl_store_t){
        .engine = "memory",
        .create_room = mem_create_room,
        .join_room = mem_join_room,
        .leave_room = mem_leave_room,
        .heartbeat = mem_heartbeat,
        .get_member = mem_get_member,
        .push = mem_push,
        .pop = mem_pop,
        .get_room = mem_get_room,
        .get_members = mem_get_members,
        .list_rooms = mem_list_rooms,
        .rate_hit = mem_rate_hit,
        .stats = mem_stats,
        .shared_secret = mem_shared_secret,
        .emoji_add = mem_emoji_add,
        .emoji_get = mem_emoji_get,
        .emoji_list = mem_emoji_list,
        .emoji_delete = mem_emoji_delete,
        .cache_get = mem_cache_get,
        .cache_put = mem_cache_put,
        .ready = mem_ready,
        .destroy = mem_destroy,
    };
    s->loop = loop;
    s->opts = *opts;
    if (listener)
        s->listener = *listener;
    pl_map_init(&s->rooms);
    pl_map_init(&s->by_broadcaster);
    pl_map_init(&s->by_name);
    pl_map_init(&s->rates);
    s->pending_tail = &s->pending;
    s->last_sweep_ms = INT64_MIN;
    if (pl_random_bytes(&s->rng, sizeof s->rng) != 0 || s->rng == 0)
        s->rng = 0x9e3779b97f4a7c15ull;

    if (pl_mem_blobs_new(opts, &s->blobs) != 0) {
        free(s);
        return PL_ENOMEM;
    }
    int err = uv_timer_init(loop, &s->timer);
    if (err) {
        pl_mem_blobs_free(s->blobs);
        free(s);
        return err;
    }
    s->timer.data = s;
    err = uv_timer_start(&s->timer, on_timer, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    if (err) {
        uv_close((uv_handle_t *)&s->timer, on_close);
        return err;
    }
    /* The sweep alone must not keep the loop running once the server stops. */
    uv_unref((uv_handle_t *)&s->timer);
    *out = &s->base;
    return 0;
}

void pl_store_memory_sweep(pl_store_t *s)
{
    if (s && strcmp(s->engine, "memory") == 0)
        sweep((mem_store_t *)s);
}
