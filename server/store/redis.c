/* The redis store engine (see store/redis.h and docs/scaling.md).
 *
 * Two connections per node, both hiredis async contexts attached to the server's loop:
 *   - `cmd` runs every operation as one Lua function (redis_scripts.h). At each connect it
 *     loads them as a function library named by the hash of its code (FUNCTION LOAD; the
 *     names carry the hash too, so nodes of different versions share a Redis during a rolling
 *     upgrade) and calls them with FCALL, loading the library again if the server lost it.
 *     A Redis older than 7 refuses FUNCTION LOAD: the engine then sends each operation as a
 *     script by EVALSHA with the SHA1 computed here (EVAL when the server answers NOSCRIPT),
 *     the scripts SCRIPT LOADed at each connect. One call per operation makes every
 *     multi-key update atomic and costs one round trip.
 *   - `sub` SUBSCRIBEs to pl:inbox; the push script PUBLISHes "<roomId>/<peerId>" there and
 *     every node's subscriber calls listener->on_inbox.
 * Semantics follow memory.c: each script reaps the room it touches (expired members and
 * rooms are gone from the moment their TTL runs out) and returns the expiry notifications
 * that produced, which this file delivers before the operation's callback. A one-second
 * sweep runs the sweep script over the rooms due in pl:expiry; since the script is atomic,
 * each expiry is reported by exactly one node of the cluster.
 * Faults: while either connection is down ready() is false and operations fail PL_EUNAVAIL
 * at once (the callback runs before the call returns, as the memory engine's do). Requests
 * in flight when the connection drops fail PL_EUNAVAIL; at most RS_INFLIGHT_MAX wait at a
 * time. Reconnection uses exponential backoff with jitter, 100 ms to 5 s.
 * destroy(): pending callbacks fire with PL_ECLOSED; the struct is freed once libuv has
 * closed its timers. It must not be called from inside one of this engine's callbacks. */
#include "store/redis.h"

#include "common/error.h"
#include "common/log.h"
#include "common/map.h"
#include "common/str.h"
#include "store/redis_reply.h"
#include "store/redis_scripts.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_INFLIGHT_MAX   65536
#define RS_BACKOFF_MIN_MS 100
#define RS_TIMEOUT_MS     2000 /* deadline of every command and of each connect's handshake */
#define RS_BACKOFF_MAX_MS 5000
#define RS_SWEEP_MS       1000
#define RS_SWEEP_BATCH    128
#define RS_CHANNEL        "pl:inbox"
#define RS_NCONF          1                   /* ARGV[1]: now */
#define RS_ARGS_MAX       (3 + RS_NCONF + 12) /* emoji_add has 11 */
/* Commands that wait in hiredis' buffer before it is written without waiting for the loop's
 * next turn (see run()). */
#define RS_FLUSH_EVERY 4

enum {
    OP_CREATE,
    OP_JOIN,
    OP_LEAVE,
    OP_HEARTBEAT,
    OP_GET_MEMBER,
    OP_PUSH,
    OP_POP,
    OP_GET_ROOM,
    OP_GET_MEMBERS,
    OP_LIST,
    OP_RATE,
    OP_STATS,
    OP_SWEEP,
    OP_SECRET,
    OP_EMOJI_ADD,
    OP_EMOJI_GET,
    OP_EMOJI_LIST,
    OP_EMOJI_DEL,
    OP_CACHE_GET,
    OP_CACHE_PUT,
    OP_REQUEUE,
    OP_COUNT
};

static const char *const op_name[OP_COUNT] = {
    [OP_CREATE] = "create",  [OP_JOIN] = "join",        [OP_LEAVE] = "leave",
    [OP_HEARTBEAT] = "hb",   [OP_GET_MEMBER] = "gm",    [OP_PUSH] = "push",
    [OP_POP] = "pop",        [OP_GET_ROOM] = "gr",      [OP_GET_MEMBERS] = "gms",
    [OP_LIST] = "list",      [OP_RATE] = "rate",        [OP_STATS] = "stats",
    [OP_SWEEP] = "sweep",    [OP_SECRET] = "secret",    [OP_EMOJI_ADD] = "eadd",
    [OP_EMOJI_GET] = "eget", [OP_EMOJI_LIST] = "elist", [OP_EMOJI_DEL] = "edel",
    [OP_CACHE_GET] = "cget", [OP_CACHE_PUT] = "cput",   [OP_REQUEUE] = "requeue",
};

static const char *const script_body[OP_COUNT] = {
    [OP_CREATE] = RS_CREATE,
    [OP_JOIN] = RS_JOIN,
    [OP_LEAVE] = RS_LEAVE,
    [OP_HEARTBEAT] = RS_HEARTBEAT,
    [OP_GET_MEMBER] = RS_GET_MEMBER,
    [OP_PUSH] = RS_PUSH,
    [OP_POP] = RS_POP,
    [OP_GET_ROOM] = RS_GET_ROOM,
    [OP_GET_MEMBERS] = RS_GET_MEMBERS,
    [OP_LIST] = RS_LIST,
    [OP_RATE] = RS_RATE,
    [OP_STATS] = RS_STATS,
    [OP_SWEEP] = RS_SWEEP,
    [OP_SECRET] = RS_SECRET,
    [OP_EMOJI_ADD] = RS_EMOJI_ADD,
    [OP_EMOJI_GET] = RS_EMOJI_GET,
    [OP_EMOJI_LIST] = RS_EMOJI_LIST,
    [OP_EMOJI_DEL] = RS_EMOJI_DEL,
    [OP_CACHE_GET] = RS_CACHE_GET,
    [OP_CACHE_PUT] = RS_CACHE_PUT,
    [OP_REQUEUE] = RS_REQUEUE,
};

typedef struct rs_store rs_store_t;

typedef struct {
    rs_store_t *s;
    const char *name; /* "command", "subscriber" */
    bool is_sub;
    redisAsyncContext *ac;
    bool up; /* connected (and, for sub, subscribed; for cmd, scripts sent) */
    bool logged_down;
    bool timed_out;       /* the connection is being dropped because Redis stopped answering */
    int attempt;          /* reconnect attempts since the last success */
    uint64_t hs_deadline; /* uv_now() by which the handshake must answer; 0 = none pending */
    uv_timer_t timer;
} rs_conn_t;

typedef struct rs_req rs_req_t;

struct rs_store {
    pl_store_t base; /* first */
    uv_loop_t *loop;
    pl_store_opts_t opts;
    pl_store_listener_t listener;
    char host[256];
    int port;
    int db;
    char node[64];
    char probe_channel[128]; /* "pl:probe:<node>:<random>": the subscriber's health check */
    char *script[OP_COUNT];  /* for EVAL: RS_VARS RS_SETUP RS_HELPERS body */
    char sha[OP_COUNT][41];
    char *library;            /* for FUNCTION LOAD */
    char fname[OP_COUNT][32]; /* "pl_<op>_<12 hex digits of the library's hash>" */
    bool use_fcall;           /* the server took the library (Redis 7 and later) */
    bool fn_loading;          /* a FUNCTION LOAD after "Function not found" is on its way */
    pl_map_t spills;          /* "room/peer" -> spill_t: direct pushes in flight */
    bool scripts_only;        /* pl_store_redis_use_scripts(): never load the library */
    bool mode_logged;
    rs_conn_t cmd, sub;
    uv_timer_t sweep_timer;
    /* Requests in flight on `cmd`, oldest first; their deadlines are in the same order
     * (sent time + RS_TIMEOUT_MS on the loop's monotonic clock). One timer watches the
     * head and the handshakes' deadlines. */
    rs_req_t *pend_head, *pend_tail;
    uv_timer_t deadline_timer;
    /* uv_now() by which the subscriber must hear the health probe in flight; 0 = none.
     * Void (0) as soon as either connection goes down: a probe lost with the command
     * connection says nothing about the subscriber. */
    uint64_t probe_deadline;
    bool sweeping;
    bool closing;
    int open_handles;
    size_t inflight;
    unsigned unsent; /* commands run() queued since the command connection last wrote */
    uint64_t rng;
};

struct rs_req {
    rs_store_t *s;
    rs_req_t *prev, *next; /* in the pending FIFO */
    uint64_t deadline;
    bool linked;
    int op;
    void (*cb)(void);
    void *ud;
    bool retried;
    bool refused; /* a direct push whose envelope the socket did not take */
    int argc;
    const char *argv[RS_ARGS_MAX];
    size_t argvlen[RS_ARGS_MAX];
    char *buf; /* the argument bytes argv points into */
};

static void conn_start(rs_conn_t *c);
static void cmd_flush(rs_store_t *s);
static int run(rs_store_t *s, int op, void (*cb)(void), void *ud, int nargs, const char **args,
               const size_t *lens);
static void on_fn_load(redisAsyncContext *ac, void *reply, void *priv);
static void on_reply(redisAsyncContext *ac, void *reply, void *priv);
static int rs_send(redisAsyncContext *ac, rs_req_t *q);
static void free_code(rs_store_t *s);
static int build_code(rs_store_t *s);
static void conn_set_up(rs_conn_t *c, bool up);
static void conn_schedule(rs_conn_t *c);
static void sweep_run(rs_store_t *s);
static void on_retry_timer(uv_timer_t *t);

/* ---- helpers ---- */

static int64_t now_ms(rs_store_t *s)
{
    return s->opts.clock ? s->opts.clock(s->opts.clock_ud) : pl_now_ms();
}

static bool rs_ready(pl_store_t *base)
{
    rs_store_t *s = (rs_store_t *)base;
    return s && !s->closing && s->cmd.up && s->sub.up;
}

static uint64_t rnd(rs_store_t *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545f4914f6cdd1dull;
}

static void copy_n(char *dst, size_t size, const char *src, size_t len)
{
    if (!src)
        len = 0;
    if (len > size - 1)
        len = size - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static const redisReply *el(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    return r->element[i];
}

static int64_t num(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static void str_of(const redisReply *r, char *dst, size_t size)
{
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS))
        copy_n(dst, size, r->str, r->len);
    else
        dst[0] = '\0';
}

/* room_arr(): id, bid, bname, cname, created, expires, count, maxp, pub, topo. */
static bool reply_is(const redisReply *r, const char *str)
{
    size_t n = strlen(str);
    return r && r->type == REDIS_REPLY_STRING && (size_t)r->len == n && memcmp(r->str, str, n) == 0;
}

static void parse_room(const redisReply *a, pl_room_t *room)
{
    memset(room, 0, sizeof *room);
    str_of(el(a, 0), room->id, sizeof room->id);
    str_of(el(a, 1), room->broadcaster_id, sizeof room->broadcaster_id);
    str_of(el(a, 2), room->broadcaster_name, sizeof room->broadcaster_name);
    str_of(el(a, 3), room->custom_name, sizeof room->custom_name);
    room->created_at_ms = num(el(a, 4));
    room->expires_at_ms = num(el(a, 5));
    room->participant_count = (uint32_t)num(el(a, 6));
    room->max_peers = (uint32_t)num(el(a, 7));
    room->is_public = num(el(a, 8)) != 0;
    room->topology = (pl_topology_t)num(el(a, 9));
}

/* mem_arr(): peer, user, name, joined, expires, last_offer_from. */
static void parse_member(const redisReply *a, pl_member_t *m)
{
    memset(m, 0, sizeof *m);
    str_of(el(a, 0), m->peer_id, sizeof m->peer_id);
    str_of(el(a, 1), m->user_id, sizeof m->user_id);
    str_of(el(a, 2), m->name, sizeof m->name);
    m->joined_at_ms = num(el(a, 3));
    m->expires_at_ms = num(el(a, 4));
    str_of(el(a, 5), m->last_offer_from, sizeof m->last_offer_from);
}

/* An array of members; *out NULL when empty. Returns PL_ENOMEM or 0. */
static int parse_members(const redisReply *a, pl_member_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!a || a->type != REDIS_REPLY_ARRAY || a->elements == 0)
        return 0;
    pl_member_t *arr = malloc(a->elements * sizeof *arr);
    if (!arr)
        return PL_ENOMEM;
    for (size_t i = 0; i < a->elements; i++)
        parse_member(a->element[i], &arr[i]);
    *out = arr;
    *n = a->elements;
    return 0;
}

/* Delivers the expiry notifications a script returned: {'R', room, members} or
 * {'M', room, gone, remaining, removed}. */
static void deliver_events(rs_store_t *s, const redisReply *evs)
{
    const pl_store_listener_t *l = &s->listener;
    for (size_t i = 0; evs && evs->type == REDIS_REPLY_ARRAY && i < evs->elements; i++) {
        const redisReply *e = evs->element[i];
        char kind[4];
        str_of(el(e, 0), kind, sizeof kind);
        pl_room_t room;
        parse_room(el(e, 1), &room);
        pl_member_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (parse_members(el(e, 2), &a, &na) != 0 ||
            (kind[0] == 'M' && parse_members(el(e, 3), &b, &nb) != 0)) {
            pl_log_error("store: out of memory, expiry not notified", PL_LS("room", room.id));
        } else if (kind[0] == 'R') {
            pl_log_debug("store: room expired", PL_LS("room", room.id));
            if (l->on_room_expired)
                l->on_room_expired(l->ud, &room, a, na);
        } else if (kind[0] == 'M' && l->on_member_expired) {
            bool removed = num(el(e, 4)) != 0;
            for (size_t k = 0; k < na; k++)
                l->on_member_expired(l->ud, &room, &a[k], b, nb, removed && k + 1 == na);
        }
        free(a);
        free(b);
    }
}

/* ---- completing requests ---- */

/* Fails a request's callback with status (no data). */
static void fail_cb(int op, void (*fn)(void), void *ud, int status)
{
    switch (op) {
    case OP_CREATE:
        ((pl_store_create_cb)fn)(ud, status, NULL, NULL, false);
        break;
    case OP_JOIN:
        ((pl_store_join_cb)fn)(ud, status, NULL, NULL, NULL, 0);
        break;
    case OP_LEAVE:
        ((pl_store_leave_cb)fn)(ud, status, false, NULL, 0);
        break;
    case OP_HEARTBEAT:
    case OP_GET_MEMBER:
        ((pl_store_member_cb)fn)(ud, status, NULL, NULL);
        break;
    case OP_PUSH:
        ((pl_store_status_cb)fn)(ud, status);
        break;
    case OP_POP:
        ((pl_store_pop_cb)fn)(ud, status, NULL, 0);
        break;
    case OP_GET_ROOM:
        ((pl_store_room_cb)fn)(ud, status, NULL);
        break;
    case OP_GET_MEMBERS:
        ((pl_store_members_cb)fn)(ud, status, NULL, NULL, 0);
        break;
    case OP_LIST:
        ((pl_store_list_cb)fn)(ud, status, NULL, 0, "");
        break;
    case OP_RATE:
        ((pl_store_rate_cb)fn)(ud, status, 0, 0);
        break;
    case OP_STATS:
        ((pl_store_stats_cb)fn)(ud, status, NULL);
        break;
    case OP_SECRET:
        ((pl_store_secret_cb)fn)(ud, status, NULL, 0);
        break;
    case OP_EMOJI_ADD:
    case OP_EMOJI_GET:
        ((pl_store_emoji_cb)fn)(ud, status, NULL, NULL, 0);
        break;
    case OP_EMOJI_LIST:
        ((pl_store_emoji_list_cb)fn)(ud, status, NULL, 0);
        break;
    case OP_EMOJI_DEL:
    case OP_CACHE_PUT:
    case OP_REQUEUE:
        ((pl_store_status_cb)fn)(ud, status);
        break;
    case OP_CACHE_GET:
        ((pl_store_cache_cb)fn)(ud, status, NULL, 0, 0);
        break;
    default:
        break;
    }
}

/* RS_EMOJI_FIELDS: id, name, dom, by, at, w, h, anim, ct, etag, size. */
static void parse_emoji(const redisReply *a, pl_emoji_t *e)
{
    memset(e, 0, sizeof *e);
    str_of(el(a, 0), e->id, sizeof e->id);
    str_of(el(a, 1), e->name, sizeof e->name);
    str_of(el(a, 2), e->domain, sizeof e->domain);
    str_of(el(a, 3), e->uploaded_by, sizeof e->uploaded_by);
    e->uploaded_at_ms = num(el(a, 4));
    e->width = (uint32_t)num(el(a, 5));
    e->height = (uint32_t)num(el(a, 6));
    e->animated = num(el(a, 7)) != 0;
    str_of(el(a, 8), e->content_type, sizeof e->content_type);
    str_of(el(a, 9), e->etag, sizeof e->etag);
    e->size = (uint32_t)num(el(a, 10));
}

/* Whether a push to (room, to) may be delivered directly: see pl_store_listener_t. */
static bool direct_ok(rs_store_t *s, const char *room_id, const char *to)
{
    return to && s->listener.can_deliver && s->listener.deliver &&
           s->listener.can_deliver(s->listener.ud, room_id, to);
}

static void on_requeued(void *ud, int status)
{
    (void)ud;
    if (status)
        pl_log_warn("store: an envelope refused by its socket could not be queued",
                    PL_LS("error", pl_strerror(status)));
}

/* ---- direct delivery ----
 * A push sent with direct "1" may come back as "D": counted as delivered, not queued, for
 * this node to hand to the recipient's socket. If the socket refuses it (it closed between
 * the question and the answer), the envelope goes to the head of the inbox (requeue): it
 * was pushed before anything queued there since, as the inbox was empty when it ran. Several
 * direct pushes to one peer may be in flight when its socket closes, and each goes to the
 * head: so refused envelopes wait here, in order, until the last direct push to that peer
 * has answered, and are then requeued last one first, which leaves them in push order.
 * A recipient's record stays while pushes keep coming (no allocation per message); the
 * once-a-second sweep timer drops the records with nothing in flight. */
#define PUSH_ARG (3 + RS_NCONF) /* the push's own arguments start here in argv */

typedef struct spill_env spill_env_t;
struct spill_env {
    spill_env_t *next;
    const char *arg[6]; /* room, to, type, id, from, json: into the bytes below */
    size_t len[6];
    char bytes[];
};

typedef struct {
    unsigned inflight;
    spill_env_t *head, **tail;
} spill_t;

static bool push_is_direct(const rs_req_t *q)
{
    return q->op == OP_PUSH && q->argc > PUSH_ARG + 9 && q->argvlen[PUSH_ARG + 9] == 1 &&
           q->argv[PUSH_ARG + 9][0] == '1';
}

static size_t spill_key(const rs_req_t *q, char *key, size_t cap)
{
    const char *const *a = q->argv + PUSH_ARG;
    const size_t *l = q->argvlen + PUSH_ARG;
    if (l[0] + 1 + l[3] + 1 > cap)
        return 0;
    memcpy(key, a[0], l[0]);
    key[l[0]] = '/';
    memcpy(key + l[0] + 1, a[3], l[3]);
    key[l[0] + 1 + l[3]] = '\0';
    return l[0] + 1 + l[3];
}

/* A direct push was sent: count it in flight for its recipient. */
static void direct_begin(rs_store_t *s, const rs_req_t *q)
{
    char key[2 * PL_ID_SIZE + 2];
    size_t kl = spill_key(q, key, sizeof key);
    if (!kl)
        return;
    spill_t *sp = pl_map_get(&s->spills, key, kl);
    if (!sp) {
        sp = calloc(1, sizeof *sp);
        if (!sp || pl_map_put(&s->spills, key, kl, sp)) {
            free(sp);
            return; /* untracked: a refusal is then requeued at once (direct_end) */
        }
        sp->tail = &sp->head;
    }
    sp->inflight++;
}

/* Requeues one refused envelope (room, to, type, id, from, json). */
static void requeue(rs_store_t *s, const char *const *arg, const size_t *len)
{
    const char *args[6];
    memcpy(args, arg, sizeof args);
    run(s, OP_REQUEUE, (void (*)(void))on_requeued, NULL, 6, args, len);
}

static void spill_clear(spill_t *sp)
{
    while (sp->head) {
        spill_env_t *e = sp->head;
        sp->head = e->next;
        free(e);
    }
    sp->tail = &sp->head;
}

static void spill_add(spill_t *sp, const char *const *arg, const size_t *len)
{
    size_t total = 0;
    for (int i = 0; i < 6; i++)
        total += len[i];
    spill_env_t *e = malloc(sizeof *e + total + 1);
    if (!e) {
        pl_log_warn("store: out of memory: an envelope refused by its socket is lost");
        return;
    }
    char *p = e->bytes;
    for (int i = 0; i < 6; i++) {
        if (len[i])
            memcpy(p, arg[i], len[i]);
        e->arg[i] = p;
        e->len[i] = len[i];
        p += len[i];
    }
    e->next = NULL;
    *sp->tail = e;
    sp->tail = &e->next;
}

/* A direct push has answered (or failed): keep its envelope if the socket refused it, and
 * once none is in flight for the recipient, requeue what was refused, newest first. */
static void direct_end(rs_store_t *s, rs_req_t *q)
{
    const char *const *a = q->argv + PUSH_ARG;
    const size_t *l = q->argvlen + PUSH_ARG;
    /* room, to, type, id, from (the envelope's), json */
    const char *arg[6] = {a[0], a[3], a[5], a[6], a[7], a[8]};
    const size_t len[6] = {l[0], l[3], l[5], l[6], l[7], l[8]};
    char key[2 * PL_ID_SIZE + 2];
    size_t kl = spill_key(q, key, sizeof key);
    spill_t *sp = kl ? pl_map_get(&s->spills, key, kl) : NULL;
    if (!sp) {
        if (q->refused)
            requeue(s, arg, len);
        return;
    }
    if (q->refused)
        spill_add(sp, arg, len);
    if (--sp->inflight > 0 || !sp->head)
        return;
    size_t n = 0;
    for (spill_env_t *e = sp->head; e; e = e->next)
        n++;
    spill_env_t **order = n ? malloc(n * sizeof *order) : NULL;
    if (n && !order)
        pl_log_warn("store: out of memory: envelopes refused by their socket are lost");
    size_t k = 0;
    for (spill_env_t *e = sp->head; e && order; e = e->next)
        order[k++] = e;
    while (k > 0) { /* last first: each goes to the head of the inbox */
        spill_env_t *e = order[--k];
        requeue(s, e->arg, e->len);
    }
    free(order);
    spill_clear(sp);
}

/* Drops the records of recipients with no direct push in flight (the sweep timer). */
static void spills_trim(rs_store_t *s)
{
    pl_map_iter_t it;
    const char *key;
    size_t kl;
    void *val;
    pl_map_iter_init(&it, &s->spills);
    while (pl_map_iter_next(&it, &key, &kl, &val)) {
        spill_t *sp = val;
        if (sp->inflight == 0 && !sp->head) {
            pl_map_del(&s->spills, key, kl);
            free(sp);
        }
    }
}

static void spills_free(rs_store_t *s)
{
    pl_map_iter_t it;
    void *val;
    pl_map_iter_init(&it, &s->spills);
    while (pl_map_iter_next(&it, NULL, NULL, &val)) {
        spill_clear(val);
        free(val);
    }
    pl_map_free(&s->spills);
}

/* The push function left the envelope to this node: give it to the socket. */
static void hand_over(rs_req_t *q)
{
    rs_store_t *s = q->s;
    const char *const *a = q->argv + PUSH_ARG;
    const size_t *l = q->argvlen + PUSH_ARG;
    char room[PL_ID_SIZE], to[PL_ID_SIZE];
    pl_envelope_t env = {.json = a[8], .json_len = l[8]};
    copy_n(room, sizeof room, a[0], l[0]);
    copy_n(to, sizeof to, a[3], l[3]);
    copy_n(env.id, sizeof env.id, a[6], l[6]);
    copy_n(env.from, sizeof env.from, a[7], l[7]);
    unsigned type = 0;
    for (size_t i = 0; i < l[5]; i++)
        type = type * 10 + (unsigned)(a[5][i] - '0'); /* rs_push wrote it: 1..128 */
    env.type = (pl_env_type_t)type;
    q->refused = !s->listener.deliver(s->listener.ud, room, to, &env);
}

static void complete(rs_req_t *q, const redisReply *r)
{
    rs_store_t *s = q->s;
    if (q->op == OP_SWEEP) {
        s->sweeping = false;
        deliver_events(s, el(r, 0));
        if (num(el(r, 2)) >= RS_SWEEP_BATCH && !s->closing)
            sweep_run(s); /* more are due */
        return;
    }
    deliver_events(s, el(r, 0));
    int status = (int)num(el(r, 1));
    if (status != 0) {
        fail_cb(q->op, q->cb, q->ud, status);
        return;
    }
    pl_room_t room;
    pl_member_t m;
    pl_member_t *ms = NULL;
    size_t n = 0;
    switch (q->op) {
    case OP_CREATE:
        parse_room(el(r, 2), &room);
        parse_member(el(r, 3), &m);
        ((pl_store_create_cb)q->cb)(q->ud, 0, &room, &m, num(el(r, 4)) != 0);
        break;
    case OP_JOIN:
        parse_room(el(r, 2), &room);
        parse_member(el(r, 3), &m);
        if (parse_members(el(r, 4), &ms, &n) != 0) {
            fail_cb(q->op, q->cb, q->ud, PL_ENOMEM);
            break;
        }
        ((pl_store_join_cb)q->cb)(q->ud, 0, &room, &m, ms, n);
        break;
    case OP_LEAVE:
        if (parse_members(el(r, 3), &ms, &n) != 0) {
            fail_cb(q->op, q->cb, q->ud, PL_ENOMEM);
            break;
        }
        ((pl_store_leave_cb)q->cb)(q->ud, 0, num(el(r, 2)) != 0, ms, n);
        break;
    case OP_HEARTBEAT:
    case OP_GET_MEMBER:
        parse_room(el(r, 2), &room);
        parse_member(el(r, 3), &m);
        ((pl_store_member_cb)q->cb)(q->ud, 0, &room, &m);
        break;
    case OP_PUSH:
        if (reply_is(el(r, 2), "D"))
            hand_over(q);
        ((pl_store_status_cb)q->cb)(q->ud, 0);
        break;
    case OP_POP: {
        const redisReply *a = el(r, 2);
        size_t k = a && a->type == REDIS_REPLY_ARRAY ? a->elements : 0;
        pl_envelope_t *envs = k ? calloc(k, sizeof *envs) : NULL;
        if (k && !envs) {
            /* The envelopes are already out of redis: nothing to give back. */
            fail_cb(q->op, q->cb, q->ud, PL_ENOMEM);
            break;
        }
        for (size_t i = 0; i < k; i++) {
            const redisReply *e = a->element[i];
            str_of(el(e, 0), envs[i].id, sizeof envs[i].id);
            envs[i].type = (pl_env_type_t)num(el(e, 1));
            str_of(el(e, 2), envs[i].from, sizeof envs[i].from);
            const redisReply *j = el(e, 3);
            envs[i].json = j && j->type == REDIS_REPLY_STRING ? j->str : "";
            envs[i].json_len = j && j->type == REDIS_REPLY_STRING ? j->len : 0;
        }
        ((pl_store_pop_cb)q->cb)(q->ud, 0, envs, k);
        free(envs);
        break;
    }
    case OP_GET_ROOM:
        parse_room(el(r, 2), &room);
        ((pl_store_room_cb)q->cb)(q->ud, 0, &room);
        break;
    case OP_GET_MEMBERS:
        parse_room(el(r, 2), &room);
        if (parse_members(el(r, 3), &ms, &n) != 0) {
            fail_cb(q->op, q->cb, q->ud, PL_ENOMEM);
            break;
        }
        ((pl_store_members_cb)q->cb)(q->ud, 0, &room, ms, n);
        break;
    case OP_LIST: {
        const redisReply *a = el(r, 2);
        size_t k = a && a->type == REDIS_REPLY_ARRAY ? a->elements : 0;
        pl_room_t *rooms = k ? malloc(k * sizeof *rooms) : NULL;
        if (k && !rooms) {
            fail_cb(q->op, q->cb, q->ud, PL_ENOMEM);
            break;
        }
        for (size_t i = 0; i < k; i++)
            parse_room(a->element[i], &rooms[i]);
        char next[PL_CURSOR_MAX + 1];
        str_of(el(r, 3), next, sizeof next);
        ((pl_store_list_cb)q->cb)(q->ud, 0, rooms, k, next);
        free(rooms);
        break;
    }
    case OP_RATE:
        ((pl_store_rate_cb)q->cb)(q->ud, 0, (uint64_t)num(el(r, 2)), num(el(r, 3)));
        break;
    case OP_STATS: {
        int64_t v[5];
        for (int i = 0; i < 5; i++) {
            v[i] = num(el(r, 2 + (size_t)i));
            if (v[i] < 0)
                v[i] = 0;
        }
        pl_store_stats_t st = {
            .rooms = (uint64_t)v[0],
            .members = (uint64_t)v[1],
            .signals_queued = (uint64_t)v[2],
            .signals_delivered = (uint64_t)v[3],
            .signals_expired = (uint64_t)v[4],
        };
        ((pl_store_stats_cb)q->cb)(q->ud, 0, &st);
        break;
    }
    case OP_SECRET: {
        const redisReply *v = el(r, 2);
        if (!v || v->type != REDIS_REPLY_STRING || v->len == 0) {
            fail_cb(q->op, q->cb, q->ud, PL_EUNAVAIL);
            break;
        }
        ((pl_store_secret_cb)q->cb)(q->ud, 0, (const unsigned char *)v->str, v->len);
        break;
    }
    case OP_EMOJI_ADD:
    case OP_EMOJI_GET: {
        pl_emoji_t e;
        parse_emoji(el(r, 2), &e);
        const redisReply *d = el(r, 3);
        bool has = d && d->type == REDIS_REPLY_STRING;
        ((pl_store_emoji_cb)q->cb)(q->ud, 0, &e, has ? (const unsigned char *)d->str : NULL,
                                   has ? d->len : 0);
        break;
    }
    case OP_EMOJI_LIST: {
        const redisReply *a = el(r, 2);
        size_t k = a && a->type == REDIS_REPLY_ARRAY ? a->elements : 0;
        pl_emoji_t *list = k ? malloc(k * sizeof *list) : NULL;
        if (k && !list) {
            fail_cb(q->op, q->cb, q->ud, PL_ENOMEM);
            break;
        }
        for (size_t i = 0; i < k; i++)
            parse_emoji(a->element[i], &list[i]);
        ((pl_store_emoji_list_cb)q->cb)(q->ud, 0, list, k);
        free(list);
        break;
    }
    case OP_EMOJI_DEL:
    case OP_CACHE_PUT:
    case OP_REQUEUE:
        ((pl_store_status_cb)q->cb)(q->ud, 0);
        break;
    case OP_CACHE_GET: {
        const redisReply *v = el(r, 2);
        bool has = v && v->type == REDIS_REPLY_STRING;
        ((pl_store_cache_cb)q->cb)(q->ud, 0, has ? (const unsigned char *)v->str : NULL,
                                   has ? v->len : 0, num(el(r, 3)));
        break;
    }
    default:
        break;
    }
    free(ms);
}

/* ---- deadlines ----
 * hiredis 0.14's async API has no timeout, so a Redis that keeps its sockets open but does
 * not answer (SIGSTOP, a black-holed network) would leave requests pending for ever. Every
 * request sent on `cmd` joins a FIFO with a deadline RS_TIMEOUT_MS ahead; since the loop's
 * clock only moves forward the FIFO is ordered by deadline, and one timer, armed for the
 * earliest deadline (the FIFO's head or a connection's handshake), is enough. When a
 * deadline passes, the connection is considered broken: it is freed at once, which fails
 * every request still on it with PL_EUNAVAIL exactly once (no late reply can arrive on a
 * freed context), turns ready() false and reconnects with the usual backoff. */

static void on_deadline_timer(uv_timer_t *t);

static void deadline_arm(rs_store_t *s)
{
    if (s->closing)
        return;
    uint64_t d = s->pend_head ? s->pend_head->deadline : 0;
    if (s->probe_deadline && (!d || s->probe_deadline < d))
        d = s->probe_deadline;
    const rs_conn_t *conns[2] = {&s->cmd, &s->sub};
    for (int i = 0; i < 2; i++) {
        if (conns[i]->hs_deadline && (!d || conns[i]->hs_deadline < d))
            d = conns[i]->hs_deadline;
    }
    if (!d) {
        uv_timer_stop(&s->deadline_timer);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->deadline_timer, on_deadline_timer, d > now ? d - now : 0, 0);
}

static void pend_link(rs_store_t *s, rs_req_t *q)
{
    q->deadline = uv_now(s->loop) + RS_TIMEOUT_MS;
    q->next = NULL;
    q->prev = s->pend_tail;
    if (s->pend_tail)
        s->pend_tail->next = q;
    else
        s->pend_head = q;
    s->pend_tail = q;
    q->linked = true;
    /* An armed timer already targets a deadline no later than this one. */
    if (!uv_is_active((uv_handle_t *)&s->deadline_timer))
        deadline_arm(s);
}

static void pend_unlink(rs_store_t *s, rs_req_t *q)
{
    if (!q->linked)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        s->pend_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        s->pend_tail = q->prev;
    q->prev = q->next = NULL;
    q->linked = false;
    /* A timer aimed at a head that has gone fires early, rescans and re-arms; only an
     * empty FIFO needs attention now (so that an idle engine has no timer running). */
    if (!s->pend_head)
        deadline_arm(s);
}

/* Drops a connection that stopped answering. Freeing the context runs every pending
 * callback with a NULL reply (PL_EUNAVAIL) and, for a connected context, on_disconnect,
 * which schedules the reconnect; an unconnected one is rescheduled here. */
static void conn_break(rs_conn_t *c)
{
    redisAsyncContext *ac = c->ac;
    c->hs_deadline = 0;
    if (!ac)
        return;
    c->timed_out = true;
    conn_set_up(c, false); /* before any callback runs: new requests fail at once */
    c->ac = NULL;
    redisAsyncFree(ac);
    c->ac = NULL;
    c->timed_out = false;
    if (!c->s->closing && !uv_is_active((uv_handle_t *)&c->timer))
        conn_schedule(c);
}

static void on_deadline_timer(uv_timer_t *t)
{
    rs_store_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->pend_head && s->pend_head->deadline <= now) {
        pl_log_warn("store: redis command timed out", PL_LI("timeout_ms", RS_TIMEOUT_MS),
                    PL_LS("node", s->node));
        conn_break(&s->cmd);
    }
    if (s->probe_deadline && s->probe_deadline <= now && !s->closing) {
        s->probe_deadline = 0;
        pl_log_warn("store: redis health check timed out", PL_LS("conn", s->sub.name),
                    PL_LI("timeout_ms", RS_TIMEOUT_MS), PL_LS("node", s->node));
        conn_break(&s->sub);
    }
    rs_conn_t *conns[2] = {&s->cmd, &s->sub};
    for (int i = 0; i < 2 && !s->closing; i++) {
        if (conns[i]->hs_deadline && conns[i]->hs_deadline <= now) {
            pl_log_warn("store: redis handshake timed out", PL_LS("conn", conns[i]->name),
                        PL_LI("timeout_ms", RS_TIMEOUT_MS), PL_LS("node", s->node));
            conn_break(conns[i]);
        }
    }
    deadline_arm(s);
}

static void req_free(rs_req_t *q)
{
    free(q->buf);
    free(q);
}

/* Sends q's command. redisAsyncCommandArgv formats the RESP with sdscatfmt, a growth of the
 * buffer per piece: about 7,700 instructions per call in parleyd's profile of the rest bench
 * (callgrind), a fifth of what the Redis engine adds to a request there. Written in one pass
 * here, with its length known first, and handed over with redisAsyncFormattedCommand. */
static int rs_send(redisAsyncContext *ac, rs_req_t *q)
{
    size_t total = 1 + 20 + 2;
    for (int i = 0; i < q->argc; i++)
        total += 1 + 20 + 2 + q->argvlen[i] + 2;
    char stack[4096];
    char *buf = total <= sizeof stack ? stack : malloc(total);
    if (!buf)
        return REDIS_ERR;
    char *p = buf;
    *p++ = '*';
    p += pl_fmt_u64(p, (uint64_t)q->argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < q->argc; i++) {
        *p++ = '$';
        p += pl_fmt_u64(p, (uint64_t)q->argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
        if (q->argvlen[i])
            memcpy(p, q->argv[i], q->argvlen[i]);
        p += q->argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    int rc = redisAsyncFormattedCommand(ac, on_reply, q, buf, (size_t)(p - buf));
    if (buf != stack)
        free(buf);
    return rc;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rs_req_t *q = priv;
    rs_store_t *s = q->s;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && !q->retried && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
        !s->closing && ac && !(ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) {
        /* The server lost its script cache (restart, SCRIPT FLUSH): send the source. */
        q->retried = true;
        q->argv[0] = "EVAL";
        q->argvlen[0] = 4;
        q->argv[1] = s->script[q->op];
        q->argvlen[1] = strlen(s->script[q->op]);
        if (rs_send(ac, q) == REDIS_OK)
            return;
        r = NULL;
    } else if (r && r->type == REDIS_REPLY_ERROR && !q->retried &&
               strstr(r->str, "Function not found") && !s->closing && ac &&
               !(ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) {
        /* The server lost the library (restart without persistence, FUNCTION FLUSH): load
         * it again; the call goes after it on the same connection. */
        q->retried = true;
        /* One load for all the calls that failed together: those after the first go after
         * its load anyway. */
        if (!s->fn_loading) {
            s->fn_loading = true;
            redisAsyncCommand(ac, on_fn_load, s, "FUNCTION LOAD REPLACE %s", s->library);
        }
        if (rs_send(ac, q) == REDIS_OK)
            return;
        r = NULL;
    }
    s->inflight--;
    pend_unlink(s, q);
    if (!r) {
        if (q->op == OP_SWEEP)
            s->sweeping = false;
        else
            fail_cb(q->op, q->cb, q->ud, s->closing ? PL_ECLOSED : PL_EUNAVAIL);
    } else if (r->type != REDIS_REPLY_ARRAY) {
        pl_log_error("store: redis script failed", PL_LI("op", q->op),
                     PL_LS("error", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply"));
        if (q->op == OP_SWEEP)
            s->sweeping = false;
        else
            fail_cb(q->op, q->cb, q->ud, PL_EUNAVAIL);
    } else {
        complete(q, r);
    }
    if (push_is_direct(q))
        direct_end(s, q);
    req_free(q);
}

/* Writes the command connection's buffer now. Not redisAsyncHandleWrite(): on an error
 * that would drop the connection and fire every pending callback from inside run(). Here an
 * error stays in the context, and hiredis' next write event (still armed) finds it and drops
 * the connection from the loop as usual. */
static void cmd_flush(rs_store_t *s)
{
    redisAsyncContext *ac = s->cmd.ac;
    int done = 0;
    s->unsent = 0;
    if (!ac || !(ac->c.flags & REDIS_CONNECTED))
        return;
    if (redisBufferWrite(&ac->c, &done) == REDIS_OK && done && ac->ev.delWrite)
        ac->ev.delWrite(ac->ev.data);
}

/* Sends script op with the given arguments (after now and the options). When the engine
 * cannot serve, the callback runs now with PL_EUNAVAIL. Always returns 0. */
static int run(rs_store_t *s, int op, void (*cb)(void), void *ud, int nargs, const char **args,
               const size_t *lens)
{
    if (!rs_ready(&s->base) || s->inflight >= RS_INFLIGHT_MAX) {
        if (cb)
            fail_cb(op, cb, ud, PL_EUNAVAIL);
        return 0;
    }
    char conf[RS_NCONF][24];
    pl_fmt_i64(conf[0], now_ms(s));

    rs_req_t *q = calloc(1, sizeof *q);
    size_t total = 0;
    for (int i = 0; i < RS_NCONF; i++)
        total += strlen(conf[i]);
    for (int i = 0; i < nargs; i++)
        total += lens[i];
    char *buf = q ? malloc(total + 1) : NULL;
    if (!q || !buf) {
        free(q);
        if (cb)
            fail_cb(op, cb, ud, PL_ENOMEM);
        return 0;
    }
    q->s = s;
    q->op = op;
    q->cb = cb;
    q->ud = ud;
    q->buf = buf;
    if (s->use_fcall) {
        q->argv[0] = "FCALL";
        q->argvlen[0] = 5;
        q->argv[1] = s->fname[op];
        q->argvlen[1] = strlen(s->fname[op]);
    } else {
        q->argv[0] = "EVALSHA";
        q->argvlen[0] = 7;
        q->argv[1] = s->sha[op];
        q->argvlen[1] = 40;
    }
    q->argv[2] = "0";
    q->argvlen[2] = 1;
    q->argc = 3;
    char *p = buf;
    for (int i = 0; i < RS_NCONF + nargs; i++) {
        const char *src = i < RS_NCONF ? conf[i] : args[i - RS_NCONF];
        size_t len = i < RS_NCONF ? strlen(conf[i]) : lens[i - RS_NCONF];
        if (len)
            memcpy(p, src, len);
        q->argv[q->argc] = p;
        q->argvlen[q->argc] = len;
        q->argc++;
        p += len;
    }
    if (rs_send(s->cmd.ac, q) != REDIS_OK) {
        req_free(q);
        if (cb)
            fail_cb(op, cb, ud, PL_EUNAVAIL);
        return 0;
    }
    s->inflight++;
    pend_link(s, q);
    if (push_is_direct(q))
        direct_begin(s, q);
    /* hiredis writes its buffer when the loop next polls the socket, after every callback
     * of this turn has run: Redis would then sit idle while parleyd handles a whole turn of
     * requests, and parleyd idle while Redis runs them, each waiting for the other (measured
     * with 16 clients of the rest bench: a third of both cores idle). Writing every few
     * commands lets the two work at once; not every command, which costs a write and a
     * wake-up of Redis each. */
    if (++s->unsent >= RS_FLUSH_EVERY)
        cmd_flush(s);
    return 0;
}

#define ARGS(...)                                                                                  \
    const char *args[] = {__VA_ARGS__};                                                            \
    size_t lens[sizeof args / sizeof args[0]];                                                     \
    for (size_t i_ = 0; i_ < sizeof args / sizeof args[0]; i_++)                                   \
        lens[i_] = strlen(args[i_]);
#define RUN(op, cb, ud)                                                                            \
    run(s, op, (void (*)(void))(cb), ud, (int)(sizeof args / sizeof args[0]), args, lens)

/* Bounded copy of a fixed-array string that may lack its NUL. */
static void fixed(char *dst, size_t size, const char *src)
{
    copy_n(dst, size, src, strnlen(src, size - 1));
}

/* ---- operations ---- */

static int rs_create_room(pl_store_t *base, const pl_store_create_req_t *req, pl_store_create_cb cb,
                          void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !req || !cb)
        return PL_EINVAL;
    char rid[PL_ID_SIZE], bid[PL_USER_ID_SIZE], bname[PL_NAME_SIZE], cname[PL_NAME_SIZE];
    char pid[PL_ID_SIZE], uid[PL_USER_ID_SIZE], name[PL_NAME_SIZE], topo[8], maxp[16];
    fixed(rid, sizeof rid, req->room.id);
    fixed(bid, sizeof bid, req->room.broadcaster_id);
    fixed(bname, sizeof bname, req->room.broadcaster_name);
    fixed(cname, sizeof cname, req->room.custom_name);
    fixed(pid, sizeof pid, req->member.peer_id);
    fixed(uid, sizeof uid, req->member.user_id);
    fixed(name, sizeof name, req->member.name);
    snprintf(topo, sizeof topo, "%d", (int)req->room.topology);
    snprintf(maxp, sizeof maxp, "%" PRIu32, req->room.max_peers);
    ARGS(rid, bid, bname, cname, req->room.is_public ? "1" : "0", topo, maxp, pid, uid, name);
    return RUN(OP_CREATE, cb, ud);
}

static int rs_join_room(pl_store_t *base, const pl_store_join_req_t *req, pl_store_join_cb cb,
                        void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !req || !cb || (!req->room_id && !req->broadcaster_name))
        return PL_EINVAL;
    char pid[PL_ID_SIZE], uid[PL_USER_ID_SIZE], name[PL_NAME_SIZE];
    fixed(pid, sizeof pid, req->member.peer_id);
    fixed(uid, sizeof uid, req->member.user_id);
    fixed(name, sizeof name, req->member.name);
    if (!req->room_id && !req->broadcaster_name[0]) {
        cb(ud, PL_ENOTFOUND, NULL, NULL, NULL, 0);
        return 0;
    }
    ARGS(req->room_id ? req->room_id : "", req->broadcaster_name ? req->broadcaster_name : "", pid,
         uid, name);
    return RUN(OP_JOIN, cb, ud);
}

static int rs_leave_room(pl_store_t *base, const char *room_id, const char *peer_id,
                         pl_store_leave_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    ARGS(room_id, peer_id);
    return RUN(OP_LEAVE, cb, ud);
}

static int rs_heartbeat(pl_store_t *base, const char *room_id, const char *peer_id,
                        pl_store_member_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    ARGS(room_id, peer_id);
    return RUN(OP_HEARTBEAT, cb, ud);
}

static int rs_get_member(pl_store_t *base, const char *room_id, const char *peer_id,
                         pl_store_member_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    ARGS(room_id, peer_id);
    return RUN(OP_GET_MEMBER, cb, ud);
}

static int rs_push(pl_store_t *base, const char *room_id, const char *from_peer,
                   const char *to_peer, const pl_envelope_t *env, pl_store_status_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !env || !cb || (!env->json && env->json_len))
        return PL_EINVAL;
    unsigned type = (unsigned)env->type;
    if (type == 0 || (type & ~(unsigned)PL_ENV_ALL) || (type & (type - 1)))
        return PL_EINVAL;
    char ty[8], id[PL_ID_SIZE], from[PL_ID_SIZE];
    snprintf(ty, sizeof ty, "%u", type);
    fixed(id, sizeof id, env->id);
    fixed(from, sizeof from, env->from);
    /* '|' separates the fields of a stored envelope; ids never contain it. */
    if (strchr(id, '|') || strchr(from, '|'))
        return PL_EINVAL;
    const char *args[] = {room_id,
                          from_peer ? from_peer : "",
                          from_peer ? "1" : "0",
                          to_peer ? to_peer : "",
                          to_peer ? "1" : "0",
                          ty,
                          id,
                          from,
                          env->json ? env->json : "",
                          direct_ok(s, room_id, to_peer) ? "1" : "0"};
    size_t lens[10];
    for (int i = 0; i < 10; i++)
        lens[i] = i == 8 ? env->json_len : strlen(args[i]);
    return RUN(OP_PUSH, cb, ud);
}

static int rs_pop(pl_store_t *base, const char *room_id, const char *peer_id, unsigned mask,
                  size_t max, pl_store_pop_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !peer_id || !cb)
        return PL_EINVAL;
    char m[16], x[24];
    snprintf(m, sizeof m, "%u", mask & (unsigned)PL_ENV_ALL);
    snprintf(x, sizeof x, "%zu", max > 1000000 ? (size_t)1000000 : max);
    ARGS(room_id, peer_id, m, x);
    return RUN(OP_POP, cb, ud);
}

static int rs_get_room(pl_store_t *base, const char *room_id, pl_store_room_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !cb)
        return PL_EINVAL;
    ARGS(room_id);
    return RUN(OP_GET_ROOM, cb, ud);
}

static int rs_get_members(pl_store_t *base, const char *room_id, pl_store_members_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !room_id || !cb)
        return PL_EINVAL;
    ARGS(room_id);
    return RUN(OP_GET_MEMBERS, cb, ud);
}

static int rs_list_rooms(pl_store_t *base, size_t limit, const char *cursor, pl_store_list_cb cb,
                         void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !cb || limit == 0)
        return PL_EINVAL;
    char created[24] = "", id[PL_ID_SIZE] = "", lim[24];
    if (cursor && *cursor) {
        int64_t at;
        if (pl_store_cursor_parse(cursor, &at, id) != 0) {
            cb(ud, PL_EINVAL, NULL, 0, "");
            return 0;
        }
        snprintf(created, sizeof created, "%lld", (long long)at);
    }
    snprintf(lim, sizeof lim, "%zu", limit > 10000 ? (size_t)10000 : limit);
    ARGS(lim, created, id);
    return RUN(OP_LIST, cb, ud);
}

static int rs_rate_hit(pl_store_t *base, const char *key, uint32_t window_ms, pl_store_rate_cb cb,
                       void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !key || !cb || window_ms == 0)
        return PL_EINVAL;
    char w[16];
    snprintf(w, sizeof w, "%" PRIu32, window_ms);
    ARGS(key, w);
    return RUN(OP_RATE, cb, ud);
}

static int rs_stats(pl_store_t *base, pl_store_stats_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !cb)
        return PL_EINVAL;
    return run(s, OP_STATS, (void (*)(void))cb, ud, 0, NULL, NULL);
}

static int rs_shared_secret(pl_store_t *base, const char *name, size_t len, pl_store_secret_cb cb,
                            void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !name || !cb || len == 0 || len > PL_SECRET_LEN_MAX)
        return PL_EINVAL;
    size_t nlen = strnlen(name, PL_SECRET_NAME_MAX + 1);
    if (nlen == 0 || nlen > PL_SECRET_NAME_MAX)
        return PL_EINVAL;
    unsigned char fresh[PL_SECRET_LEN_MAX];
    if (pl_random_bytes(fresh, len) != 0)
        return PL_EUNAVAIL;
    const char *args[2] = {name, (const char *)fresh};
    size_t lens[2] = {nlen, len};
    int rc = run(s, OP_SECRET, (void (*)(void))cb, ud, 2, args, lens);
    OPENSSL_cleanse(fresh, sizeof fresh);
    return rc;
}

/* ---- custom emoji and cache ---- */

static int rs_emoji_add(pl_store_t *base, const pl_emoji_t *e, const unsigned char *data,
                        size_t len, pl_store_emoji_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !e || !cb || (!data && len) || !e->id[0] || !e->domain[0] || !e->name[0])
        return PL_EINVAL;
    char at[24], w[16], h[16];
    pl_fmt_i64(at, e->uploaded_at_ms);
    pl_fmt_u64(w, e->width);
    pl_fmt_u64(h, e->height);
    const char *args[] = {e->id,
                          e->domain,
                          e->name,
                          e->uploaded_by,
                          at,
                          w,
                          h,
                          e->animated ? "1" : "0",
                          e->content_type,
                          e->etag,
                          data ? (const char *)data : ""};
    size_t lens[11];
    for (int i = 0; i < 10; i++)
        lens[i] = strlen(args[i]);
    lens[10] = len;
    return RUN(OP_EMOJI_ADD, cb, ud);
}

static int rs_emoji_get(pl_store_t *base, const char *id, bool with_data, pl_store_emoji_cb cb,
                        void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !id || !cb)
        return PL_EINVAL;
    ARGS(id, with_data ? "1" : "0");
    return RUN(OP_EMOJI_GET, cb, ud);
}

static int rs_emoji_list(pl_store_t *base, const char *domain, pl_store_emoji_list_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !domain || !cb)
        return PL_EINVAL;
    ARGS(domain);
    return RUN(OP_EMOJI_LIST, cb, ud);
}

static int rs_emoji_delete(pl_store_t *base, const char *id, pl_store_status_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || !id || !cb)
        return PL_EINVAL;
    ARGS(id);
    return RUN(OP_EMOJI_DEL, cb, ud);
}

static int rs_cache_get(pl_store_t *base, const char *key, pl_store_cache_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    size_t klen = key ? strlen(key) : 0;
    if (!s || !cb || klen == 0 || klen > 200)
        return PL_EINVAL;
    ARGS(key);
    return RUN(OP_CACHE_GET, cb, ud);
}

static int rs_cache_put(pl_store_t *base, const char *key, const unsigned char *data, size_t len,
                        uint32_t keep_s, pl_store_status_cb cb, void *ud)
{
    rs_store_t *s = (rs_store_t *)base;
    size_t klen = key ? strlen(key) : 0;
    if (!s || !cb || klen == 0 || klen > 200 || (!data && len) || keep_s == 0)
        return PL_EINVAL;
    char keep[24];
    pl_fmt_u64(keep, (uint64_t)keep_s * 1000);
    const char *args[] = {key, data ? (const char *)data : "", keep};
    size_t lens[] = {klen, len, strlen(keep)};
    return RUN(OP_CACHE_PUT, cb, ud);
}

static void sweep_run(rs_store_t *s)
{
    if (s->sweeping || !rs_ready(&s->base))
        return;
    char b[16];
    snprintf(b, sizeof b, "%d", RS_SWEEP_BATCH);
    ARGS(b);
    s->sweeping = true;
    run(s, OP_SWEEP, NULL, NULL, 1, args, lens);
    /* run() cannot fail a NULL callback; when it did not send, allow the next tick. */
    if (!rs_ready(&s->base))
        s->sweeping = false;
}

/* The subscriber's health check. The command connection proves itself every second with
 * the sweep, but the subscriber only ever reads: a connection that died without a FIN or
 * RST (a NAT that forgot it, a failed-over host) would look up for ever while every push
 * for this node's sockets is lost. So once a second the command connection PUBLISHes to a
 * channel only this engine instance subscribes to, and the subscriber must hear it within
 * RS_TIMEOUT_MS, or it is broken and re-made like a timed-out command connection. This
 * proves the whole path a push takes (publish, Redis, this subscription), not just the
 * socket. A PING on the subscriber would not do with hiredis 0.14.1: it never hands the
 * reply of a PING sent on a subscribed connection to the PING's callback, and keeps that
 * callback queued until the connection is freed. */
static void sub_probe(rs_store_t *s)
{
    rs_conn_t *c = &s->sub;
    if (s->closing || !c->up || !c->ac || s->probe_deadline || !s->cmd.up || !s->cmd.ac)
        return;
    if (redisAsyncCommand(s->cmd.ac, NULL, NULL, "PUBLISH %s 1", s->probe_channel) != REDIS_OK)
        return;
    s->probe_deadline = uv_now(s->loop) + RS_TIMEOUT_MS;
    deadline_arm(s);
}

static void on_sweep_timer(uv_timer_t *t)
{
    sweep_run(t->data);
    sub_probe(t->data);
    spills_trim(t->data);
}

void pl_store_redis_use_scripts(pl_store_t *base)
{
    rs_store_t *s = (rs_store_t *)base;
    s->scripts_only = true;
    s->use_fcall = false;
}

void pl_store_redis_sweep(pl_store_t *base)
{
    if (base && strcmp(base->engine, "redis") == 0)
        sweep_run((rs_store_t *)base);
}

/* ---- connections ---- */

static void conn_set_up(rs_conn_t *c, bool up)
{
    rs_store_t *s = c->s;
    bool was = rs_ready(&s->base);
    c->up = up;
    if (!up)
        s->probe_deadline = 0;
    bool is = rs_ready(&s->base);
    if (was == is)
        return;
    pl_log_info(is ? "store: redis ready" : "store: redis unavailable", PL_LS("node", s->node));
    /* Whatever was published while either connection was down is lost, and the wakes that
     * came in meanwhile could not pop: now that both work again, every waiting peer looks
     * at its inbox (at start-up nobody waits yet). */
    if (is && s->listener.on_resync)
        s->listener.on_resync(s->listener.ud);
}

static void conn_schedule(rs_conn_t *c)
{
    rs_store_t *s = c->s;
    if (s->closing)
        return;
    uint64_t ceiling = RS_BACKOFF_MIN_MS;
    for (int i = 0; i < c->attempt && ceiling < RS_BACKOFF_MAX_MS; i++)
        ceiling *= 2;
    if (ceiling > RS_BACKOFF_MAX_MS)
        ceiling = RS_BACKOFF_MAX_MS;
    /* Jitter: a delay in [ceiling/2, ceiling], so that nodes do not reconnect in step. */
    uint64_t delay = ceiling / 2 + rnd(s) % (ceiling / 2 + 1);
    c->attempt++;
    uv_timer_start(&c->timer, on_retry_timer, delay, 0);
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    rs_conn_t *c = priv;
    rs_store_t *s = c->s;
    redisReply *r = reply;
    (void)ac;
    if (!r || s->closing || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    char kind[16];
    str_of(r->element[0], kind, sizeof kind);
    if (strcmp(kind, "subscribe") == 0) {
        /* Up once the probe channel, subscribed last, is confirmed. */
        if (reply_is(r->element[1], s->probe_channel)) {
            c->hs_deadline = 0;
            c->attempt = 0;
            conn_set_up(c, true);
        }
        return;
    }
    if (strcmp(kind, "message") != 0)
        return;
    if (reply_is(r->element[1], s->probe_channel)) {
        s->probe_deadline = 0; /* the health probe came through */
        return;
    }
    const redisReply *m = r->element[2];
    if (m->type != REDIS_REPLY_STRING)
        return;
    /* "<roomId>/<peerId>": ids are base64url, so the first '/' separates them. */
    const char *slash = memchr(m->str, '/', m->len);
    if (!slash)
        return;
    char room[PL_ID_SIZE], peer[PL_ID_SIZE];
    copy_n(room, sizeof room, m->str, (size_t)(slash - m->str));
    copy_n(peer, sizeof peer, slash + 1, m->len - (size_t)(slash - m->str) - 1);
    const pl_store_listener_t *l = &s->listener;
    if (l->on_inbox)
        l->on_inbox(l->ud, room, peer);
}

/* FUNCTION LOAD's reply decides how operations are sent: FCALL when the server took the
 * library, EVALSHA when it does not know FUNCTION (Redis < 7). It comes before the PING that
 * ends the handshake, so before any operation. */
static void on_fn_load(redisAsyncContext *ac, void *reply, void *priv)
{
    rs_store_t *s = priv;
    redisReply *r = reply;
    (void)ac;
    s->fn_loading = false;
    if (!r)
        return;
    bool fcall = r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
    if (!fcall && r->type == REDIS_REPLY_ERROR && !strstr(r->str, "unknown command"))
        pl_log_error("store: redis FUNCTION LOAD failed; using scripts", PL_LS("error", r->str),
                     PL_LS("node", s->node));
    if (!s->mode_logged || fcall != s->use_fcall)
        pl_log_info("store: redis operations", PL_LS("via", fcall ? "FCALL" : "EVALSHA"),
                    PL_LS("node", s->node));
    s->mode_logged = true;
    s->use_fcall = fcall;
}

static void on_load_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rs_store_t *s = priv;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR)
        pl_log_error("store: redis SCRIPT LOAD failed", PL_LS("error", r->str),
                     PL_LS("node", s->node));
}

/* The reply to the PING that ends the command connection's handshake: Redis answers, the
 * scripts are loaded. An error (e.g. LOADING) leaves the handshake deadline to retry. */
static void on_hello(redisAsyncContext *ac, void *reply, void *priv)
{
    rs_conn_t *c = priv;
    redisReply *r = reply;
    (void)ac;
    if (!r || c->s->closing)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        pl_log_warn("store: redis not serving yet", PL_LS("error", r->str),
                    PL_LS("node", c->s->node));
        return;
    }
    c->hs_deadline = 0;
    c->attempt = 0;
    conn_set_up(c, true);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rs_conn_t *c = ac->data;
    rs_store_t *s = c->s;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (!c->logged_down)
            pl_log_warn("store: redis connect failed", PL_LS("conn", c->name),
                        PL_LS("error", ac->errstr), PL_LS("node", s->node));
        c->logged_down = true;
        c->ac = NULL;
        c->hs_deadline = 0;
        conn_schedule(c);
        return;
    }
    c->logged_down = false;
    pl_log_info("store: redis connected", PL_LS("conn", c->name), PL_LS("node", s->node));
    redisAsyncContext *a = c->ac;
    /* A frozen Redis still completes TCP connects (the kernel's backlog): up only once it
     * answers, within RS_TIMEOUT_MS. */
    c->hs_deadline = uv_now(s->loop) + RS_TIMEOUT_MS;
    deadline_arm(s);
    if (c->is_sub) {
        redisAsyncCommand(a, on_message, c, "SUBSCRIBE " RS_CHANNEL " %s", s->probe_channel);
        return; /* up once the subscription is confirmed */
    }
    if (s->db)
        redisAsyncCommand(a, on_load_reply, s, "SELECT %d", s->db);
    if (!s->scripts_only) {
        redisAsyncCommand(a, on_fn_load, s, "FUNCTION LOAD REPLACE %s", s->library);
    } else if (!s->mode_logged) {
        pl_log_info("store: redis operations", PL_LS("via", "EVALSHA"), PL_LS("node", s->node));
        s->mode_logged = true;
    }
    for (int i = 0; i < OP_COUNT; i++)
        redisAsyncCommand(a, on_load_reply, s, "SCRIPT LOAD %s", s->script[i]);
    /* Commands are pipelined in order: the PING answers after the loads. */
    redisAsyncCommand(a, on_hello, c, "PING");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rs_conn_t *c = ac->data;
    rs_store_t *s = c->s;
    c->ac = NULL;
    c->hs_deadline = 0;
    conn_set_up(c, false);
    if (s->closing)
        return;
    pl_log_warn("store: redis connection lost", PL_LS("conn", c->name),
                PL_LS("error", c->timed_out         ? "timed out"
                               : status == REDIS_OK ? "closed"
                                                    : ac->errstr),
                PL_LS("node", s->node));
    c->logged_down = true;
    conn_schedule(c);
}

/* ---- the libuv adapter, corrected ----
 * hiredis 0.14.1's adapter ignores a poll callback with an error status, which libuv
 * delivers (and then stops the handle) when the socket reports POLLERR, e.g. a refused
 * connect: hiredis then never learns that the connect failed and the context hangs
 * forever. These replacements hand such an event to hiredis, which reads the socket error
 * and fails the connect or drops the connection as usual. */

static void rs_poll(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    if (!p->context)
        return;
    if (status < 0) {
        if (!(p->context->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(p->context); /* checks the connect's SO_ERROR */
        else
            redisAsyncHandleRead(p->context);
        return;
    }
    if (p->context && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (events & UV_WRITABLE)) {
        rs_conn_t *c = p->context->data;
        if (c && c == &c->s->cmd)
            c->s->unsent = 0;
        redisAsyncHandleWrite(p->context);
    }
}

static void rs_poll_update(redisLibuvEvents *p)
{
    if (p->events)
        uv_poll_start(&p->handle, p->events, rs_poll);
    else
        uv_poll_stop(&p->handle);
}

static void rs_add_read(void *d)
{
    redisLibuvEvents *p = d;
    p->events |= UV_READABLE;
    rs_poll_update(p);
}

static void rs_del_read(void *d)
{
    redisLibuvEvents *p = d;
    p->events &= ~UV_READABLE;
    rs_poll_update(p);
}

static void rs_add_write(void *d)
{
    redisLibuvEvents *p = d;
    p->events |= UV_WRITABLE;
    rs_poll_update(p);
}

static void rs_del_write(void *d)
{
    redisLibuvEvents *p = d;
    p->events &= ~UV_WRITABLE;
    rs_poll_update(p);
}

static void conn_start(rs_conn_t *c)
{
    rs_store_t *s = c->s;
    if (s->closing || c->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (!ac) {
        conn_schedule(c);
        return;
    }
    if (ac->err) {
        if (!c->logged_down)
            pl_log_warn("store: redis connect failed", PL_LS("conn", c->name),
                        PL_LS("error", ac->errstr), PL_LS("node", s->node));
        c->logged_down = true;
        redisAsyncFree(ac);
        conn_schedule(c);
        return;
    }
    ac->data = c;
    /* The command connection's replies are read once, in on_reply, and freed as a whole
     * (redis_reply.h); the subscriber's stay hiredis's own. */
    if (!c->is_sub)
        ac->c.reader->fn = &pl__rs_reply_fns;
    if (redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_schedule(c);
        return;
    }
    c->hs_deadline = uv_now(s->loop) + RS_TIMEOUT_MS; /* the connect, too */
    deadline_arm(s);
    ac->ev.addRead = rs_add_read;
    ac->ev.delRead = rs_del_read;
    ac->ev.addWrite = rs_add_write;
    ac->ev.delWrite = rs_del_write;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
}

static void on_retry_timer(uv_timer_t *t)
{
    conn_start(t->data);
}

/* ---- lifetime ---- */

static void free_code(rs_store_t *s)
{
    for (int i = 0; i < OP_COUNT; i++)
        free(s->script[i]);
    free(s->library);
}

static void hex(char *dst, const unsigned char *d, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[d[i] >> 4];
        dst[2 * i + 1] = digits[d[i] & 15];
    }
    dst[2 * n] = '\0';
}

/* The node's options as Lua constants (see redis_scripts.h). */
static int options_line(const rs_store_t *s, pl_buf_t *b)
{
    const pl_store_opts_t *o = &s->opts;
    return pl_buf_printf(b,
                         "local RTTL,MTTL,STTL,IMAX,IBYTES,ISEND,QBMAX,RMAX,EMAX="
                         "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32
                         ",%" PRIu64 ",%" PRIu32 ",%" PRIu32 "\n",
                         (uint64_t)o->room_ttl_s * 1000, (uint64_t)o->member_ttl_s * 1000,
                         (uint64_t)o->signal_ttl_s * 1000, o->inbox_max, o->inbox_bytes_max,
                         o->inbox_per_sender_max, o->queued_bytes_max, o->rooms_max,
                         o->emoji_per_domain_max)
               ? PL_ENOMEM
               : 0;
}

/* The scripts (and their SHA1s) and the function library, from the same code: the library's
 * name and its functions' names end with a hash of the scripts, which include the options. */
static int build_code(rs_store_t *s)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    pl_buf_t all, lib;
    pl_buf_init(&all);
    pl_buf_init(&lib);
    int rc = 0;
    for (int i = 0; i < OP_COUNT && !rc; i++) {
        pl_buf_t b;
        pl_buf_init(&b);
        rc = options_line(s, &b) || pl_buf_appends(&b, RS_VARS RS_SETUP RS_HELPERS) ||
             pl_buf_appends(&b, script_body[i]);
        if (!rc) {
            SHA1((const unsigned char *)b.data, b.len, d);
            hex(s->sha[i], d, SHA_DIGEST_LENGTH);
            rc = pl_buf_appends(&all, s->sha[i]);
            s->script[i] = b.data; /* taken over */
        } else {
            pl_buf_free(&b);
        }
    }
    char tag[13];
    if (!rc) {
        SHA1((const unsigned char *)all.data, all.len, d);
        hex(tag, d, 6);
        rc = pl_buf_printf(&lib, "#!lua name=parley_%s\n", tag) || options_line(s, &lib) ||
             pl_buf_appends(&lib,
                            RS_VARS RS_HELPERS "local function setup(ARGV)\n" RS_SETUP "end\n");
    }
    for (int i = 0; i < OP_COUNT && !rc; i++) {
        snprintf(s->fname[i], sizeof s->fname[i], "pl_%s_%s", op_name[i], tag);
        rc = pl_buf_printf(&lib, "redis.register_function('%s',function(KEYS,ARGV)\nsetup(ARGV)\n",
                           s->fname[i]) ||
             pl_buf_appends(&lib, script_body[i]) || pl_buf_appends(&lib, "\nend)\n");
    }
    pl_buf_free(&all);
    if (rc) {
        pl_buf_free(&lib);
        return PL_ENOMEM;
    }
    s->library = lib.data;
    return 0;
}

static void handle_closed(rs_store_t *s)
{
    if (--s->open_handles > 0)
        return;
    free_code(s);
    spills_free(s);
    free(s);
}

static void on_sweep_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_retry_closed(uv_handle_t *h)
{
    handle_closed(((rs_conn_t *)h->data)->s);
}

static void rs_destroy(pl_store_t *base)
{
    rs_store_t *s = (rs_store_t *)base;
    if (!s || s->closing)
        return;
    bool was = rs_ready(base);
    s->closing = true;
    if (was)
        pl_log_info("store: redis engine closing", PL_LS("node", s->node));
    /* redisAsyncFree runs every pending callback with a NULL reply (PL_ECLOSED) and the
     * disconnect callback; the libuv adapter closes and frees its own poll handle. */
    redisAsyncContext *a = s->cmd.ac, *b = s->sub.ac;
    s->cmd.ac = s->sub.ac = NULL;
    if (a)
        redisAsyncFree(a);
    if (b)
        redisAsyncFree(b);
    uv_timer_stop(&s->sweep_timer);
    uv_timer_stop(&s->deadline_timer);
    uv_timer_stop(&s->cmd.timer);
    uv_timer_stop(&s->sub.timer);
    uv_close((uv_handle_t *)&s->sweep_timer, on_sweep_closed);
    uv_close((uv_handle_t *)&s->deadline_timer, on_sweep_closed);
    uv_close((uv_handle_t *)&s->cmd.timer, on_retry_closed);
    uv_close((uv_handle_t *)&s->sub.timer, on_retry_closed);
}

/* redis://host[:port][/db] */
static int parse_url(rs_store_t *s, const char *url)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return PL_EINVAL;
    p += 8;
    const char *at = strchr(p, '@');
    if (at)
        return PL_EINVAL; /* AUTH is not supported yet */
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof s->host)
        return PL_EINVAL;
    memcpy(s->host, p, hl);
    s->host[hl] = '\0';
    p += hl;
    s->port = 6379;
    s->db = 0;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v <= 0 || v > 65535)
            return PL_EINVAL;
        s->port = (int)v;
        p = end;
    }
    if (*p == '/') {
        if (p[1]) {
            char *end;
            long v = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end || v < 0 || v > 15)
                return PL_EINVAL;
            s->db = (int)v;
        }
    } else if (*p) {
        return PL_EINVAL;
    }
    return 0;
}

int pl_store_redis_new(uv_loop_t *loop, const char *url, const pl_store_opts_t *opts,
                       const pl_store_listener_t *listener, const char *node_id, pl_store_t **out)
{
    if (!loop || !url || !opts || !out)
        return PL_EINVAL;
    *out = NULL;
    rs_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return PL_ENOMEM;
    if (parse_url(s, url) != 0) {
        pl_log_error("store: bad redis URL (want redis://host[:port][/db])", PL_LS("url", url));
        free(s);
        return PL_ECONFIG;
    }
    s->base = (pl_store_t){
        .engine = "redis",
        .create_room = rs_create_room,
        .join_room = rs_join_room,
        .leave_room = rs_leave_room,
        .heartbeat = rs_heartbeat,
        .get_member = rs_get_member,
        .push = rs_push,
        .pop = rs_pop,
        .get_room = rs_get_room,
        .get_members = rs_get_members,
        .list_rooms = rs_list_rooms,
        .rate_hit = rs_rate_hit,
        .stats = rs_stats,
        .shared_secret = rs_shared_secret,
        .emoji_add = rs_emoji_add,
        .emoji_get = rs_emoji_get,
        .emoji_list = rs_emoji_list,
        .emoji_delete = rs_emoji_delete,
        .cache_get = rs_cache_get,
        .cache_put = rs_cache_put,
        .ready = rs_ready,
        .destroy = rs_destroy,
    };
    s->loop = loop;
    pl_map_init(&s->spills);
    s->opts = *opts;
    if (listener)
        s->listener = *listener;
    snprintf(s->node, sizeof s->node, "%s", node_id ? node_id : "");
    if (pl_random_bytes(&s->rng, sizeof s->rng) != 0 || s->rng == 0)
        s->rng = 0x9e3779b97f4a7c15ull;
    /* Unique per engine instance, even if two nodes were given the same id. */
    snprintf(s->probe_channel, sizeof s->probe_channel, "pl:probe:%.64s:%016llx", s->node,
             (unsigned long long)rnd(s));
    if (build_code(s) != 0) {
        free_code(s);
        free(s);
        return PL_ENOMEM;
    }
    s->cmd = (rs_conn_t){.s = s, .name = "command", .is_sub = false};
    s->sub = (rs_conn_t){.s = s, .name = "subscriber", .is_sub = true};
    uv_timer_init(loop, &s->sweep_timer);
    uv_timer_init(loop, &s->deadline_timer);
    uv_timer_init(loop, &s->cmd.timer);
    uv_timer_init(loop, &s->sub.timer);
    s->open_handles = 4;
    s->sweep_timer.data = s;
    s->deadline_timer.data = s;
    s->cmd.timer.data = &s->cmd;
    s->sub.timer.data = &s->sub;
    uv_timer_start(&s->sweep_timer, on_sweep_timer, RS_SWEEP_MS, RS_SWEEP_MS);
    uv_unref((uv_handle_t *)&s->sweep_timer);
    /* Pending requests keep the loop alive through their socket; the deadline timer
     * alone must not. */
    uv_unref((uv_handle_t *)&s->deadline_timer);
    /* The retry timers stay referenced: a pending reconnect is work the loop must do. */
    pl_log_info("store: redis engine starting", PL_LS("host", s->host), PL_LI("port", s->port),
                PL_LI("db", s->db), PL_LS("node", s->node));
    conn_start(&s->cmd);
    conn_start(&s->sub);
    *out = &s->base;
    return 0;
}
