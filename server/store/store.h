/* The store: every piece of shared state parleyd keeps (rooms, members, per-peer inboxes,
 * the broadcaster-name index, rate-limit counters) behind one interface, a struct of
 * function pointers in the manner of h2o. Two engines implement it: `memory` (one node, no
 * dependencies; store/memory.c) and `redis` (N nodes; a later issue). API handlers talk to
 * this interface only.
 *
 * Calling convention (libuv's):
 *   - Every operation takes a callback and a user pointer and returns 0 or a negative error.
 *     When it returns non-zero the callback never fires. When it returns 0 the callback fires
 *     exactly once, either before the call returns (the memory engine does this) or later
 *     from the loop (the redis engine). Callers must therefore not touch state after a store
 *     call that the callback may have freed.
 *   - The callback's `status` is 0 or a negative PL_E* code (PL_ENOTFOUND, PL_EFULL,
 *     PL_EFORBIDDEN, PL_EUNAVAIL...). Pointers passed to a callback are valid only during
 *     the callback; copy what you keep.
 *   - Strings in requests are borrowed for the duration of the call only.
 *
 * Notifications flow the other way through pl_store_listener_t: the engine calls them after
 * the state change they describe is complete. They may run synchronously inside an
 * operation, so a listener must not assume it is on a fresh stack (the server's hub defers
 * its work to the next loop iteration). */
#ifndef PL_STORE_H
#define PL_STORE_H

#include "common/clock.h"
#include "common/ids.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Bounds on identity strings; auth refuses longer claims before they get here. */
#define PL_USER_ID_MAX  128
#define PL_NAME_MAX     64 /* display names and custom room names, in bytes */
#define PL_USER_ID_SIZE (PL_USER_ID_MAX + 1)
#define PL_NAME_SIZE    (PL_NAME_MAX + 1)
#define PL_CURSOR_MAX   64

typedef enum { PL_TOPO_MESH = 0, PL_TOPO_STAR, PL_TOPO_OVERLAY } pl_topology_t;

/* Envelope types, usable as a bit mask for pops. */
typedef enum {
    PL_ENV_OFFER = 1 << 0,
    PL_ENV_ANSWER = 1 << 1,
    PL_ENV_CANDIDATE = 1 << 2,
    PL_ENV_OFFER_REQUEST = 1 << 3,
    PL_ENV_PEER_JOINED = 1 << 4,
    PL_ENV_PEER_LEFT = 1 << 5,
    PL_ENV_ROOM_CLOSED = 1 << 6,
    PL_ENV_ERROR = 1 << 7,
    PL_ENV_ALL = 0xff,
} pl_env_type_t;

typedef struct {
    char id[PL_ID_SIZE];
    char broadcaster_id[PL_USER_ID_SIZE];
    char broadcaster_name[PL_NAME_SIZE];
    char custom_name[PL_NAME_SIZE]; /* "" when none */
    int64_t created_at_ms;
    int64_t expires_at_ms; /* created/last heartbeat + room_ttl */
    uint32_t participant_count;
    uint32_t max_peers;
    bool is_public;
    pl_topology_t topology;
} pl_room_t;

typedef struct {
    char peer_id[PL_ID_SIZE];
    char user_id[PL_USER_ID_SIZE];
    char name[PL_NAME_SIZE];
    int64_t joined_at_ms;
    int64_t expires_at_ms; /* last heartbeat + member_ttl */
    /* The sender of the last offer this member popped ("" when none): the default `to` of
     * its answer. Kept by the store so that it holds on every node. */
    char last_offer_from[PL_ID_SIZE];
} pl_member_t;

/* An envelope as stored: the serialized JSON the client will receive, plus what the store
 * needs to route and filter it without parsing. */
typedef struct {
    char id[PL_ID_SIZE];
    pl_env_type_t type;
    char from[PL_ID_SIZE]; /* sender peer id, "" for server-originated envelopes */
    const char *json;      /* the whole envelope object, serialized */
    size_t json_len;
} pl_envelope_t;

typedef struct pl_store pl_store_t;

/* ---- requests ---- */

typedef struct {
    pl_room_t room;     /* id, broadcaster_*, custom_name, is_public, topology, max_peers set by
                           the caller (fresh id); times and count are the store's */
    pl_member_t member; /* the broadcaster's membership: fresh peer_id, user_id, name */
} pl_store_create_req_t;

typedef struct {
    const char *room_id;          /* either this ... */
    const char *broadcaster_name; /* ... or this (the room of the most recent live room
                                     created by a broadcaster with this name) */
    pl_member_t member;           /* fresh peer_id, user_id, name */
} pl_store_join_req_t;

/* ---- callbacks ---- */

/* created: true for a new room; false when the broadcaster already had a live room, in
 * which case room is that room and member is the broadcaster's existing live membership
 * (refreshed) or, when it had expired, the new member from the request. */
typedef void (*pl_store_create_cb)(void *ud, int status, const pl_room_t *room,
                                   const pl_member_t *member, bool created);
/* peers: the members present before the newcomer joined (oldest first). */
typedef void (*pl_store_join_cb)(void *ud, int status, const pl_room_t *room,
                                 const pl_member_t *member, const pl_member_t *peers,
                                 size_t npeers);
/* remaining: members still in the room; room_removed when the last member left. */
typedef void (*pl_store_leave_cb)(void *ud, int status, bool room_removed,
                                  const pl_member_t *remaining, size_t nremaining);
typedef void (*pl_store_member_cb)(void *ud, int status, const pl_room_t *room,
                                   const pl_member_t *member);
typedef void (*pl_store_status_cb)(void *ud, int status);
typedef void (*pl_store_pop_cb)(void *ud, int status, const pl_envelope_t *envs, size_t n);
typedef void (*pl_store_room_cb)(void *ud, int status, const pl_room_t *room);
typedef void (*pl_store_members_cb)(void *ud, int status, const pl_room_t *room,
                                    const pl_member_t *members, size_t n);
/* next_cursor: "" when there are no more rooms. */
typedef void (*pl_store_list_cb)(void *ud, int status, const pl_room_t *rooms, size_t n,
                                 const char *next_cursor);
/* Fixed-window counter: count after this hit; reset_ms is when the window ends (epoch ms). */
typedef void (*pl_store_rate_cb)(void *ud, int status, uint64_t count, int64_t reset_ms);

typedef struct {
    uint64_t rooms;
    uint64_t members;
    uint64_t signals_queued;    /* envelopes currently waiting in inboxes */
    uint64_t signals_delivered; /* total popped */
    uint64_t signals_expired;   /* total dropped by PARLEY_SIGNAL_TTL */
} pl_store_stats_t;
typedef void (*pl_store_stats_cb)(void *ud, int status, const pl_store_stats_t *stats);
/* secret: the shared value (len bytes, binary), valid only during the callback. */
typedef void (*pl_store_secret_cb)(void *ud, int status, const unsigned char *secret, size_t len);

/* ---- custom emoji (persistent: no TTL) ---- */

#define PL_EMOJI_NAME_MAX   32  /* names are 2..32 of [A-Za-z0-9_] */
#define PL_EMOJI_DOMAIN_MAX 253 /* a DNS name, lower-cased */
#define PL_EMOJI_ETAG_SIZE  36  /* "\"" + 32 hex digits + "\"" + NUL */
#define PL_EMOJI_CTYPE_SIZE 16  /* "image/png", "image/gif", "image/webp" */

typedef struct {
    char id[PL_ID_SIZE];
    char name[PL_EMOJI_NAME_MAX + 1];
    char domain[PL_EMOJI_DOMAIN_MAX + 1];
    char uploaded_by[PL_USER_ID_SIZE];
    int64_t uploaded_at_ms;
    uint32_t width, height;
    bool animated;
    char content_type[PL_EMOJI_CTYPE_SIZE];
    char etag[PL_EMOJI_ETAG_SIZE]; /* strong, from the content's hash, quoted */
    uint32_t size;                 /* bytes of the image */
} pl_emoji_t;

/* e (and, for emoji_get with data, the image's len bytes) valid only during the callback. */
typedef void (*pl_store_emoji_cb)(void *ud, int status, const pl_emoji_t *e,
                                  const unsigned char *data, size_t len);
/* The domain's emoji, oldest first. */
typedef void (*pl_store_emoji_list_cb)(void *ud, int status, const pl_emoji_t *list, size_t n);
/* A cached value (len bytes) and when it was stored (epoch ms). */
typedef void (*pl_store_cache_cb)(void *ud, int status, const unsigned char *data, size_t len,
                                  int64_t stored_at_ms);

/* Bounds of shared_secret()'s arguments. */
#define PL_SECRET_NAME_MAX 64
#define PL_SECRET_LEN_MAX  256

/* ---- notifications from the engine to the server ---- */

typedef struct {
    void *ud;
    /* New envelopes wait in peer_id's inbox in room_id (or, for a room's open offer, one
     * call per member other than the sender). */
    void (*on_inbox)(void *ud, const char *room_id, const char *peer_id);
    /* A member missed its heartbeats for member_ttl and was removed. remaining: the members
     * still in the room (the server sends them `peer-left`). room_removed when none remain. */
    void (*on_member_expired)(void *ud, const pl_room_t *room, const pl_member_t *member,
                              const pl_member_t *remaining, size_t nremaining, bool room_removed);
    /* A room went without heartbeats for room_ttl and was removed with its members. */
    void (*on_room_expired)(void *ud, const pl_room_t *room, const pl_member_t *members, size_t n);
    /* Notifications may have been lost (the redis engine's subscription was down for a
     * while and has just been made again): every waiting peer should check its inbox. The
     * memory engine never calls it. May be NULL. */
    void (*on_resync)(void *ud);
    /* Direct delivery; both may be NULL. An engine whose push and pop are each a round trip
     * (redis) asks can_deliver() before pushing to a peer: true when this node holds a channel
     * for (room_id, peer_id) that takes envelopes now. The store then checks and counts the
     * envelope as usual but, when the peer's inbox is empty, does not queue it: it hands it
     * to deliver(), which saves the pop and the notification. deliver() returns false when
     * the channel can no longer take it (closed meanwhile); the engine then puts it back at
     * the head of the inbox, in push order with any others refused that way. */
    bool (*can_deliver)(void *ud, const char *room_id, const char *peer_id);
    bool (*deliver)(void *ud, const char *room_id, const char *peer_id, const pl_envelope_t *env);
} pl_store_listener_t;

typedef struct {
    uint32_t room_ttl_s;
    uint32_t member_ttl_s;
    uint32_t signal_ttl_s;
    uint32_t inbox_max;            /* envelopes one inbox holds; a push beyond it fails PL_ELIMIT */
    uint32_t inbox_bytes_max;      /* JSON bytes one inbox holds (PL_ELIMIT beyond) */
    uint32_t inbox_per_sender_max; /* envelopes one sender may hold in one inbox */
    uint64_t queued_bytes_max;     /* JSON bytes waiting in the whole store */
    uint32_t rooms_max;            /* rooms the engine holds; creation beyond fails PL_ELIMIT */
    uint32_t emoji_per_domain_max; /* custom emoji one domain holds (PL_ELIMIT beyond) */
    uint64_t emoji_bytes_max;      /* image bytes of all emoji (memory engine; PL_ELIMIT) */
    uint64_t cache_bytes_max;      /* bytes of cached values (memory engine: oldest go first) */
    pl_clock_fn clock;             /* NULL = pl_now_ms; tests inject their own */
    void *clock_ud;
} pl_store_opts_t;

struct pl_store {
    const char *engine; /* "memory", "redis" */

    int (*create_room)(pl_store_t *s, const pl_store_create_req_t *req, pl_store_create_cb cb,
                       void *ud);
    /* PL_ENOTFOUND unknown room or name; PL_EFULL at max_peers. */
    int (*join_room)(pl_store_t *s, const pl_store_join_req_t *req, pl_store_join_cb cb, void *ud);
    /* PL_ENOTFOUND unknown room; PL_EFORBIDDEN not a member. */
    int (*leave_room)(pl_store_t *s, const char *room_id, const char *peer_id, pl_store_leave_cb cb,
                      void *ud);
    /* Refreshes the member's and the room's expiry. The callback's room need carry only
     * its id, expires_at_ms and participant_count, and its member only peer_id and
     * expires_at_ms (the Redis engine reads no more for the most frequent call there is). */
    int (*heartbeat)(pl_store_t *s, const char *room_id, const char *peer_id, pl_store_member_cb cb,
                     void *ud);
    /* The room and the member, if both live. */
    int (*get_member)(pl_store_t *s, const char *room_id, const char *peer_id,
                      pl_store_member_cb cb, void *ud);
    /* Appends env to to_peer's inbox (to_peer NULL: sets it as the room's open offer, which
     * any other member's pop may take once; a newer open offer replaces the older). When
     * from_peer is non-NULL the sender must be a member (PL_EFORBIDDEN); the recipient must
     * be a member (PL_ENOTFOUND). Expires after signal_ttl. PL_ELIMIT when the inbox is
     * full. Fires on_inbox. */
    int (*push)(pl_store_t *s, const char *room_id, const char *from_peer, const char *to_peer,
                const pl_envelope_t *env, pl_store_status_cb cb, void *ud);
    /* Removes and returns up to max envelopes of the types in mask from peer_id's inbox, in
     * the order they were pushed (the room's open offer, when mask has PL_ENV_OFFER and it is
     * not the caller's own, comes after the inbox's offers). PL_EFORBIDDEN not a member. */
    int (*pop)(pl_store_t *s, const char *room_id, const char *peer_id, unsigned mask, size_t max,
               pl_store_pop_cb cb, void *ud);
    int (*get_room)(pl_store_t *s, const char *room_id, pl_store_room_cb cb, void *ud);
    int (*get_members)(pl_store_t *s, const char *room_id, pl_store_members_cb cb, void *ud);
    /* Public live rooms, newest first; cursor "" or NULL for the first page. A malformed
     * cursor fails PL_EINVAL. */
    int (*list_rooms)(pl_store_t *s, size_t limit, const char *cursor, pl_store_list_cb cb,
                      void *ud);
    /* Counts one event against key in the fixed window of window_ms that contains now. */
    int (*rate_hit)(pl_store_t *s, const char *key, uint32_t window_ms, pl_store_rate_cb cb,
                    void *ud);
    int (*stats)(pl_store_t *s, pl_store_stats_cb cb, void *ud);
    /* A random secret of len bytes (1..PL_SECRET_LEN_MAX) named name (1..PL_SECRET_NAME_MAX
     * bytes), created by the first caller and the same for every later one, on every node
     * of the engine, for as long as the store keeps its data (no expiry). A secret already
     * created with another length is returned as it is. memory: kept per process. */
    int (*shared_secret)(pl_store_t *s, const char *name, size_t len, pl_store_secret_cb cb,
                         void *ud);
    /* Custom emoji. emoji_add stores e (every field set by the caller, id fresh) with its
     * image: PL_EEXIST when the domain already has an emoji of that name, PL_ELIMIT when the
     * domain holds emoji_per_domain_max or the store is out of room. The callback's e is the
     * stored record. */
    int (*emoji_add)(pl_store_t *s, const pl_emoji_t *e, const unsigned char *data, size_t len,
                     pl_store_emoji_cb cb, void *ud);
    /* PL_ENOTFOUND unknown id. with_data false: data is NULL (metadata only). */
    int (*emoji_get)(pl_store_t *s, const char *id, bool with_data, pl_store_emoji_cb cb, void *ud);
    int (*emoji_list)(pl_store_t *s, const char *domain, pl_store_emoji_list_cb cb, void *ud);
    /* PL_ENOTFOUND unknown id. */
    int (*emoji_delete)(pl_store_t *s, const char *id, pl_store_status_cb cb, void *ud);
    /* A cache of upstream answers shared by every node (7TV's emote sets): cache_put keeps
     * len bytes under key (1..200 bytes) for keep_s seconds; cache_get gives them back with
     * their time, or PL_ENOTFOUND. */
    int (*cache_get)(pl_store_t *s, const char *key, pl_store_cache_cb cb, void *ud);
    int (*cache_put)(pl_store_t *s, const char *key, const unsigned char *data, size_t len,
                     uint32_t keep_s, pl_store_status_cb cb, void *ud);
    /* True while the engine can serve (memory: always; redis: connected). */
    bool (*ready)(pl_store_t *s);
    /* Stops timers and frees everything; pending callbacks fire with PL_ECLOSED first. */
    void (*destroy)(pl_store_t *s);
};

/* The memory engine. Runs its expiry sweeps on `loop`. */
int pl_store_memory_new(uv_loop_t *loop, const pl_store_opts_t *opts,
                        const pl_store_listener_t *listener, pl_store_t **out);

/* Forces an expiry sweep now (tests; the engine also sweeps on its own timer). */
void pl_store_memory_sweep(pl_store_t *s);

const char *pl_topology_name(pl_topology_t t);
int pl_topology_parse(const char *s, pl_topology_t *out);
const char *pl_env_type_name(pl_env_type_t t);
/* Parses a room-list cursor, "<created_at_ms>.<roomId>" (the key of the last room returned),
 * shared by every engine. Returns 0 or PL_EINVAL. */
int pl_store_cursor_parse(const char *c, int64_t *created, char id[PL_ID_SIZE]);

#endif
