/* churn: rooms full of members that heartbeat, while members leave and new users join in
 * their place — the load of "10,000 rooms of 10 members heartbeating every 30 s" on one
 * node, with the server's CPU time read around it (--server-pid).
 *
 * Setup: --rooms R private rooms, each created by its own user, and --members M - 1
 * further users joining each. Steady phase (--duration S from the end of setup): every
 * member heartbeats every --heartbeat seconds, the members' slots spread evenly over the
 * interval, and --rate J times a second a random member leaves and a new user joins the
 * same room in its place, so rooms keep M members.
 *
 * All requests go over a pool of --connections keep-alive connections; a member is tied to
 * none. A member with work to do waits in one FIFO for a free connection; it has at most
 * one request queued or in flight, so the queue is bounded by the members themselves.
 *
 * The common counters (requests, ok, latency, throughput, elapsed) describe the steady
 * phase only: they are reset when it starts. Setup has its own fields. Errors are counted
 * by kind over the whole run, setup included (setup_errors says how many were setup's). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "common/json.h"
#include "conn.h"

/* Ids are 22 base64url characters (docs/api.md); the field leaves room for a NUL. */
#define ID_MAX 24
/* Above this the members array alone would not fit one process comfortably. */
#define MAX_MEMBERS 10000000u
/* How often the scheduler wakes to hand out due heartbeats and churn operations. */
#define TICK_MS 10
/* Random picks tried before one churn operation is given up (all candidates busy). */
#define CHURN_TRIES 16

enum { OP_NONE, OP_CREATE, OP_JOIN, OP_HEARTBEAT, OP_LEAVE, OP_REJOIN, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"none",      "create-room", "join-room",
                                               "heartbeat", "leave-room",  "rejoin"};

typedef enum {
    M_SETUP, /* not yet created or joined */
    M_LIVE,  /* a member: heartbeats at its slot, may be picked for churn */
    M_CHURN, /* leaving, then a new user joining in its place */
    M_DEAD   /* setup or a rejoin failed, or the server no longer knows it: left out */
} mstate_t;

typedef struct member {
    struct member *next; /* in the wait queue */
    char *token;         /* the current signaling token (malloc'd), NULL when none */
    uint32_t room;
    uint32_t user; /* pb_user_token index of the user holding this place */
    uint8_t state;
    uint8_t op;   /* the request queued or in flight */
    bool busy;    /* queued or in flight */
    bool hb_owed; /* its heartbeat slot passed while it was busy: heartbeat next */
    char peer_id[ID_MAX];
} member_t;

typedef struct {
    char id[ID_MAX];
    bool churning; /* one churn at a time per room, so a room never empties */
} room_t;

typedef struct {
    pb_conn_t conn; /* first: the response callback casts back */
    member_t *m;
    uint64_t started_ns;
    bool steady; /* sent during the steady phase: counted there */
} slot_t;

static struct {
    member_t *members;
    room_t *rooms;
    uint32_t n; /* members: rooms x members per room */
    slot_t *slots;
    unsigned n_slots;    /* initialised (stop() and cleanup() touch only those) */
    slot_t **free_slots; /* stack */
    unsigned n_free;
    /* Two FIFOs: 0 for the members' running work (heartbeats, leaves, rejoins), 1 for
     * setup's creates and joins. Running work goes first, so that the heartbeats due
     * while setup runs neither wait behind it (members would expire) nor pile up into a
     * burst at the start of the steady phase. */
    struct {
        member_t *head, *tail;
    } q[2];
    unsigned inflight;
    uv_timer_t tick;
    bool tick_init;
    uint64_t rng;
    uint32_t next_user; /* users beyond the setup's: one per churn join */

    /* Setup */
    uint64_t setup_start_ns, setup_cap_ns;
    uint32_t unsettled; /* members neither live nor dead yet */
    uint32_t live;
    uint32_t failed; /* members setup could not place */
    uint64_t setup_requests, setup_errors;
    bool steady, setup_aborted;

    /* Steady phase */
    uint64_t steady_start_ns, steady_end_ns;
    uint64_t hb_sched;    /* heartbeat slots handed out since setup started */
    uint64_t churn_sched; /* churn operations handed out since the steady phase started */
    uint64_t heartbeats, joins, leaves, hb_skipped, churn_skipped;
    uint64_t by_op[OP_COUNT];
    double srv_cpu0, srv_cpu1, cli_cpu0, cli_cpu1;
    long long srv_rss;

    /* Progress */
    uint64_t last_hb, last_joins;
} c;

static void dispatch(void);

static uint64_t rnd(void)
{
    /* xorshift64: cheap and good enough to pick members */
    c.rng ^= c.rng << 13;
    c.rng ^= c.rng >> 7;
    c.rng ^= c.rng << 17;
    return c.rng;
}

static double client_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_token(member_t *m, const char *tok)
{
    free(m->token);
    m->token = tok ? strdup(tok) : NULL;
}

/* ----------------------------------------------------------------------------------- */
/* The wait queue and the connection pool */

static bool queued(void)
{
    return c.q[0].head || c.q[1].head;
}

static void enqueue(member_t *m, int op)
{
    int qi = op == OP_CREATE || op == OP_JOIN;
    m->op = (uint8_t)op;
    m->busy = true;
    m->next = NULL;
    if (c.q[qi].tail)
        c.q[qi].tail->next = m;
    else
        c.q[qi].head = m;
    c.q[qi].tail = m;
}

static member_t *dequeue(void)
{
    int qi = c.q[0].head ? 0 : 1;
    member_t *m = c.q[qi].head;
    if (m) {
        c.q[qi].head = m->next;
        if (!c.q[qi].head)
            c.q[qi].tail = NULL;
        m->next = NULL;
    }
    return m;
}

static void on_response(pb_conn_t *conn, int err, int status, const char *body, size_t len);

/* May a request start now? Setup runs until it is done (its own cap bounds it); the steady
 * phase until the driver's bounds (deadline, --requests, SIGINT). A leave already answered
 * is still followed by its join, so that rooms end the run with M members. */
static bool may_send(int op)
{
    if (op == OP_REJOIN || !c.steady)
        return !pb.stopping;
    return pb_may_issue();
}

/* A new user takes the place: by joining the room, or with one member per room (whose leave
 * removed the room) by creating a new one. */
static bool rejoin_creates(void)
{
    return pb.o.members == 1;
}

/* A member whose request will not be sent: it gives up its place in line. Setup's members
 * are settled as failed so that setup still ends. */
static void drop(member_t *m);

static bool send_one(slot_t *s, member_t *m)
{
    char path[384], body[160];
    const char *bearer = m->token;
    char *user_tok = NULL;
    const room_t *room = &c.rooms[m->room];
    const char *base = pb.o.base;
    snprintf(body, sizeof body, "{\"roomId\":\"%s\"}", room->id);
    int op = m->op == OP_REJOIN && rejoin_creates() ? OP_CREATE : m->op;
    switch (op) {
    case OP_CREATE:
        snprintf(path, sizeof path, "%s/signaling/create-room", base);
        /* maxPeers: a mesh room holds 16 by default; M may be larger. */
        snprintf(body, sizeof body, "{\"isPublic\":false,\"maxPeers\":%u}",
                 pb.o.members < 2 ? 2u : pb.o.members);
        break;
    case OP_JOIN:
    case OP_REJOIN:
        snprintf(path, sizeof path, "%s/signaling/join-room", base);
        break;
    case OP_HEARTBEAT:
        snprintf(path, sizeof path, "%s/signaling/heartbeat", base);
        break;
    case OP_LEAVE:
    default:
        snprintf(path, sizeof path, "%s/signaling/leave-room", base);
        break;
    }
    if (m->op == OP_CREATE || m->op == OP_JOIN || m->op == OP_REJOIN) {
        /* User tokens are minted when needed, not kept: 100,000 of them would be 30 MB. */
        if (!(user_tok = pb_user_token(m->user)))
            return false;
        bearer = user_tok;
    }
    s->m = m;
    s->steady = c.steady;
    s->started_ns = uv_hrtime();
    int rc = pb_conn_request(&s->conn, "POST", pb.o.host, path, bearer, body, on_response);
    free(user_tok);
    if (rc != 0)
        return false;
    if (s->steady)
        pb.issued++;
    c.inflight++;
    return true;
}

static void dispatch(void)
{
    while (c.n_free > 0 && queued()) {
        member_t *m = dequeue();
        if (!may_send(m->op)) {
            drop(m);
            continue;
        }
        slot_t *s = c.free_slots[--c.n_free];
        if (!send_one(s, m)) {
            c.free_slots[c.n_free++] = s;
            fprintf(stderr, "parley-bench: out of memory\n");
            drop(m);
        }
    }
}

/* ----------------------------------------------------------------------------------- */
/* Phases */

static void settle(member_t *m, bool live)
{
    m->state = live ? M_LIVE : M_DEAD;
    if (live)
        c.live++;
    else
        c.failed++;
    c.unsettled--;
}

/* No steady phase: the common counters stay at zero, so the exit status says the run
 * measured nothing. */
static void abort_run(const char *why)
{
    fprintf(stderr, "parley-bench: churn: %s\n", why);
    c.setup_aborted = true;
    pb.issued = pb.completed = pb.ok = 0;
    pb_hist_init(&pb.hist);
    pb_finish();
}

static void start_steady(void)
{
    uint64_t now = uv_hrtime();
    c.steady = true;
    c.steady_start_ns = now;
    /* The driver reports elapsed, throughput and latency from here: the steady phase. */
    pb_measure_from_now();
    c.srv_cpu0 = pb.o.server_pid ? pb_proc_cpu_s(pb.o.server_pid) : -1;
    c.srv_rss = pb.o.server_pid ? pb_proc_rss(pb.o.server_pid) : -1;
    c.cli_cpu0 = client_cpu_s();
    if (!pb.o.quiet)
        fprintf(stderr,
                "parley-bench: churn: setup done in %.1f s: %u of %u members in %u rooms "
                "(%llu requests)\n",
                (double)(now - c.setup_start_ns) / 1e9, c.live, c.n, pb.o.rooms,
                (unsigned long long)c.setup_requests);
}

static void setup_progress(void)
{
    if (c.steady || c.unsettled > 0 || pb.stopping)
        return;
    if (c.live == 0)
        abort_run("no member could be set up");
    else
        start_steady();
}

static void drop(member_t *m)
{
    int op = m->op;
    m->busy = false;
    m->op = OP_NONE;
    m->hb_owed = false;
    if (op == OP_CREATE) {
        /* Nobody can join a room that was never created. */
        uint32_t first = m->room * pb.o.members;
        for (uint32_t k = 0; k < pb.o.members; k++)
            if (c.members[first + k].state == M_SETUP)
                settle(&c.members[first + k], false);
        setup_progress();
    } else if (op == OP_JOIN) {
        settle(m, false);
        setup_progress();
    } else if (op == OP_LEAVE) {
        /* Never sent: it is still a member. */
        m->state = M_LIVE;
        c.rooms[m->room].churning = false;
    } else if (op == OP_REJOIN) {
        /* Stopped between leave and rejoin: the place stays empty. */
        m->state = M_DEAD;
        c.live--;
        c.rooms[m->room].churning = false;
    }
}

/* ----------------------------------------------------------------------------------- */
/* Responses */

/* Takes a create/join/heartbeat answer's fields; false when the ones needed are missing. */
static bool take_body(member_t *m, int op, const char *body, size_t len)
{
    json_t *j = pl_json_loadb(body, len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "signalingToken"));
    const char *room = json_string_value(json_object_get(j, "roomId"));
    const char *peer = json_string_value(json_object_get(j, "peerId"));
    bool ok = tok != NULL;
    if (ok && op != OP_HEARTBEAT) {
        ok = room && peer && strlen(room) < ID_MAX && strlen(peer) < ID_MAX;
        if (ok) {
            if (op == OP_CREATE || (op == OP_REJOIN && rejoin_creates()))
                strcpy(c.rooms[m->room].id, room);
            strcpy(m->peer_id, peer);
        }
    }
    if (ok)
        set_token(m, tok);
    json_decref(j);
    return ok;
}

static void on_response(pb_conn_t *conn, int err, int status, const char *body, size_t len)
{
    slot_t *s = (slot_t *)conn; /* conn is the first member */
    member_t *m = s->m;
    int op = m->op;
    uint64_t lat_us = (uv_hrtime() - s->started_ns) / 1000;
    s->m = NULL;
    c.inflight--;
    c.free_slots[c.n_free++] = s;
    m->busy = false;
    m->op = OP_NONE;

    bool good = false;
    if (err) {
        pb_error(pb_conn_err_name(err));
    } else {
        bool creates = op == OP_CREATE || (op == OP_REJOIN && rejoin_creates());
        bool expected = op == OP_LEAVE ? status == 204
                        : creates      ? status == 201 || status == 200
                                       : status == 200;
        if (!expected) {
            char kind[16];
            snprintf(kind, sizeof kind, "http_%d", status > 0 && status < 600 ? status : 0);
            pb_error(kind);
        } else if (op != OP_LEAVE && !take_body(m, op, body, len)) {
            pb_error("bad_body");
        } else {
            good = true;
        }
    }
    if (s->steady) {
        pb_done(err ? 0 : lat_us, good);
        c.by_op[op]++;
    } else {
        c.setup_requests++;
        if (!good)
            c.setup_errors++;
    }

    switch (op) {
    case OP_CREATE:
        if (good) {
            settle(m, true);
            uint32_t first = m->room * pb.o.members;
            for (uint32_t k = 1; k < pb.o.members; k++)
                enqueue(&c.members[first + k], OP_JOIN);
        } else {
            m->op = OP_CREATE; /* drop() fails the creator and its room's joiners */
            drop(m);
        }
        setup_progress();
        break;
    case OP_JOIN:
        settle(m, good);
        setup_progress();
        break;
    case OP_HEARTBEAT:
        if (good && s->steady)
            c.heartbeats++;
        /* Not a member any more (expired, or a leave that timed out but happened): it
         * is left out rather than failing at every slot. */
        if (!err && (status == 403 || status == 404)) {
            m->state = M_DEAD;
            c.live--;
        }
        break;
    case OP_LEAVE:
        if (good) {
            if (s->steady)
                c.leaves++;
            set_token(m, NULL);
            m->user = c.next_user++;
            m->hb_owed = false;
            enqueue(m, OP_REJOIN); /* dispatch() drops it when the run is stopping */
        } else {
            /* Whether it left is unknown: its next heartbeat tells (403 = gone). */
            m->state = M_LIVE;
            c.rooms[m->room].churning = false;
        }
        break;
    case OP_REJOIN:
    default:
        c.rooms[m->room].churning = false;
        if (good) {
            if (s->steady)
                c.joins++;
            m->state = M_LIVE;
        } else {
            m->state = M_DEAD;
            c.live--;
        }
        break;
    }

    if (m->state == M_LIVE && m->hb_owed && !m->busy && may_send(OP_HEARTBEAT)) {
        m->hb_owed = false;
        enqueue(m, OP_HEARTBEAT);
    }
    dispatch();
    if (c.steady && c.inflight == 0 && !queued() && !pb_may_issue())
        pb_finish(); /* the deadline passed and the last answer is in */
}

/* ----------------------------------------------------------------------------------- */
/* The scheduler */

static void schedule_heartbeats(uint64_t now)
{
    /* Member j's slots are at j/N of the interval and every interval after, counted from
     * the start of setup, so heartbeats are spread evenly and a long setup does not let
     * the first members expire. */
    double due = (double)(now - c.setup_start_ns) / 1e9 / pb.o.heartbeat_s * (double)c.n;
    uint64_t target = (uint64_t)due;
    if (target > c.hb_sched + c.n) {
        /* The loop stalled for more than a whole interval: those slots are gone. */
        if (c.steady)
            c.hb_skipped += target - c.n - c.hb_sched;
        c.hb_sched = target - c.n;
    }
    for (; c.hb_sched < target; c.hb_sched++) {
        member_t *m = &c.members[c.hb_sched % c.n];
        if (m->state != M_LIVE)
            continue;
        if (m->busy) {
            if (m->op == OP_HEARTBEAT || m->hb_owed) {
                if (c.steady)
                    c.hb_skipped++; /* still waiting for the last one: the client is late */
            } else {
                m->hb_owed = true;
            }
            continue;
        }
        enqueue(m, OP_HEARTBEAT);
    }
}

static member_t *pick_churn(void)
{
    for (int t = 0; t < CHURN_TRIES; t++) {
        member_t *m = &c.members[rnd() % c.n];
        if (m->state == M_LIVE && !m->busy && !c.rooms[m->room].churning)
            return m;
    }
    return NULL;
}

static void schedule_churn(uint64_t now)
{
    if (pb.o.rate <= 0)
        return;
    uint64_t target = (uint64_t)((double)(now - c.steady_start_ns) / 1e9 * pb.o.rate);
    if (target > c.churn_sched + c.n) {
        c.churn_skipped += target - c.n - c.churn_sched;
        c.churn_sched = target - c.n;
    }
    for (; c.churn_sched < target; c.churn_sched++) {
        member_t *m = pick_churn();
        if (!m) {
            c.churn_skipped++;
            continue;
        }
        m->state = M_CHURN;
        m->hb_owed = false;
        c.rooms[m->room].churning = true;
        enqueue(m, OP_LEAVE);
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime();
    if (!c.steady && now - c.setup_start_ns > c.setup_cap_ns) {
        char why[128];
        snprintf(why, sizeof why, "setup did not finish within %.0f s (%u of %u members)",
                 (double)c.setup_cap_ns / 1e9, c.live, c.n);
        abort_run(why);
        return;
    }
    if (may_send(OP_HEARTBEAT)) {
        schedule_heartbeats(now);
        if (c.steady)
            schedule_churn(now);
    }
    dispatch();
    if (c.steady && c.inflight == 0 && !queued() && !pb_may_issue())
        pb_finish();
}

/* ----------------------------------------------------------------------------------- */
/* The scenario */

static int start(void)
{
    if (pb.o.target != PB_TARGET_PARLEY) {
        fprintf(stderr, "parley-bench: churn drives parleyd only\n");
        return -1;
    }
    if (!pb.o.secret) {
        /* One token is one user, and a user has one live room: rooms need their own. */
        fprintf(stderr, "parley-bench: churn needs --secret (a distinct user per member)\n");
        return -1;
    }
    uint64_t n = (uint64_t)pb.o.rooms * pb.o.members;
    if (n > MAX_MEMBERS) {
        fprintf(stderr, "parley-bench: churn: at most %u members (rooms x members)\n", MAX_MEMBERS);
        return -1;
    }
    c.n = (uint32_t)n;
    c.srv_rss = -1;
    c.srv_cpu0 = c.srv_cpu1 = c.cli_cpu0 = c.cli_cpu1 = -1;
    c.next_user = c.n;
    c.rng = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    c.members = calloc(c.n, sizeof *c.members);
    c.rooms = calloc(pb.o.rooms, sizeof *c.rooms);
    c.slots = calloc(pb.o.connections, sizeof *c.slots);
    c.free_slots = calloc(pb.o.connections, sizeof *c.free_slots);
    if (!c.members || !c.rooms || !c.slots || !c.free_slots) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    for (unsigned i = 0; i < pb.o.connections; i++) {
        if (pb_conn_init(&c.slots[i].conn, pb.loop, (const struct sockaddr *)&pb.addr,
                         pb.o.connect_timeout_ms, pb.o.timeout_ms) != 0) {
            fprintf(stderr, "parley-bench: cannot set up connection %u\n", i);
            return -1;
        }
        c.n_slots++;
        c.free_slots[c.n_free++] = &c.slots[i];
    }
    if (uv_timer_init(pb.loop, &c.tick) != 0) {
        fprintf(stderr, "parley-bench: cannot start a timer\n");
        return -1;
    }
    c.tick_init = true;

    /* Setup is bounded by each request's timeouts and, as a whole, by this cap: generous
     * (a few hundred members a second suffice) but finite. */
    c.setup_start_ns = uv_hrtime();
    c.setup_cap_ns = (30000ull + 2ull * c.n + pb.o.timeout_ms) * 1000000ull;
    if (pb.o.duration_s > 0)
        pb_hard_stop_in(c.setup_cap_ns / 1000000 + (uint64_t)(pb.o.duration_s * 1000) +
                        pb.o.timeout_ms + pb.o.connect_timeout_ms + 1000);
    c.unsettled = c.n;
    for (uint32_t i = 0; i < c.n; i++) {
        member_t *m = &c.members[i];
        m->room = i / pb.o.members;
        m->user = i;
        m->state = M_SETUP;
    }
    /* The creators first; each room's joiners queue up once its room exists. */
    for (uint32_t r = 0; r < pb.o.rooms; r++)
        enqueue(&c.members[r * pb.o.members], OP_CREATE);
    dispatch();
    uv_timer_start(&c.tick, on_tick, TICK_MS, TICK_MS);
    return 0;
}

static void stop(void)
{
    if (c.steady && !c.steady_end_ns) {
        c.steady_end_ns = pb.end_ns ? pb.end_ns : uv_hrtime();
        c.srv_cpu1 = pb.o.server_pid ? pb_proc_cpu_s(pb.o.server_pid) : -1;
        c.cli_cpu1 = client_cpu_s();
    }
    for (unsigned i = 0; i < c.n_slots; i++)
        pb_conn_shutdown(&c.slots[i].conn);
    if (c.tick_init && !uv_is_closing((uv_handle_t *)&c.tick))
        uv_close((uv_handle_t *)&c.tick, NULL);
}

static void progress(char *buf, size_t n)
{
    if (!c.steady) {
        snprintf(buf, n, "setup %u/%u members", c.live, c.n);
        return;
    }
    snprintf(buf, n, "hb %llu/s, churn %llu/s", (unsigned long long)(c.heartbeats - c.last_hb),
             (unsigned long long)(c.joins - c.last_joins));
    c.last_hb = c.heartbeats;
    c.last_joins = c.joins;
}

static double steady_s(void)
{
    return c.steady_end_ns > c.steady_start_ns ? (double)(c.steady_end_ns - c.steady_start_ns) / 1e9
                                               : 0.0;
}

/* CPU seconds over the steady phase per elapsed second: cores busy; null when unknown. */
static json_t *cores(double cpu0, double cpu1)
{
    double el = steady_s();
    if (cpu0 < 0 || cpu1 < 0 || el <= 0)
        return json_null();
    return json_real((cpu1 - cpu0) / el);
}

static void report(json_t *r)
{
    double el = steady_s();
    uint64_t setup_end = c.steady ? c.steady_start_ns : pb.end_ns;
    json_t *ops = json_object();
    for (int i = OP_HEARTBEAT; i < OP_COUNT; i++)
        json_object_set_new(ops,
                            i != OP_REJOIN     ? op_names[i]
                            : rejoin_creates() ? op_names[OP_CREATE]
                                               : op_names[OP_JOIN],
                            json_integer((json_int_t)c.by_op[i]));
    json_object_set_new(r, "requests_by_op", ops);
    json_object_set_new(r, "rooms", json_integer(pb.o.rooms));
    json_object_set_new(r, "members_per_room", json_integer(pb.o.members));
    json_object_set_new(r, "members_total", json_integer(c.n));
    json_object_set_new(r, "members_live", json_integer(c.live));
    json_object_set_new(r, "members_failed", json_integer(c.failed));
    json_object_set_new(r, "heartbeat_s", json_real(pb.o.heartbeat_s));
    json_object_set_new(r, "setup_complete", json_boolean(c.steady));
    json_object_set_new(r, "setup_s",
                        json_real(setup_end > c.setup_start_ns
                                      ? (double)(setup_end - c.setup_start_ns) / 1e9
                                      : 0.0));
    json_object_set_new(r, "setup_requests", json_integer((json_int_t)c.setup_requests));
    json_object_set_new(r, "setup_errors", json_integer((json_int_t)c.setup_errors));
    json_object_set_new(r, "steady_s", json_real(el));
    json_object_set_new(r, "heartbeats", json_integer((json_int_t)c.heartbeats));
    json_object_set_new(r, "heartbeats_skipped", json_integer((json_int_t)c.hb_skipped));
    json_object_set_new(r, "joins", json_integer((json_int_t)c.joins));
    json_object_set_new(r, "leaves", json_integer((json_int_t)c.leaves));
    json_object_set_new(r, "churn_skipped", json_integer((json_int_t)c.churn_skipped));
    json_object_set_new(r, "heartbeat_rate", json_real(el > 0 ? (double)c.heartbeats / el : 0));
    json_object_set_new(r, "churn_rate", json_real(el > 0 ? (double)c.joins / el : 0));
    json_object_set_new(r, "server_cpu_cores", cores(c.srv_cpu0, c.srv_cpu1));
    json_object_set_new(r, "client_cpu_cores", cores(c.cli_cpu0, c.cli_cpu1));
    json_object_set_new(r, "server_rss_bytes",
                        c.srv_rss >= 0 ? json_integer(c.srv_rss) : json_null());
}

static void text(json_t *r)
{
    printf("setup       %u rooms x %u members: %u live, %u failed, %.2f s, %llu requests "
           "(%llu errors)%s\n",
           pb.o.rooms, pb.o.members, c.live, c.failed,
           json_real_value(json_object_get(r, "setup_s")), (unsigned long long)c.setup_requests,
           (unsigned long long)c.setup_errors, c.steady ? "" : ", not completed");
    printf("heartbeats  %llu every %g s (%.1f/s), %llu skipped\n", (unsigned long long)c.heartbeats,
           pb.o.heartbeat_s, json_real_value(json_object_get(r, "heartbeat_rate")),
           (unsigned long long)c.hb_skipped);
    printf("churn       leaves %llu joins %llu (%.1f/s), %llu skipped\n",
           (unsigned long long)c.leaves, (unsigned long long)c.joins,
           json_real_value(json_object_get(r, "churn_rate")), (unsigned long long)c.churn_skipped);
    json_t *sc = json_object_get(r, "server_cpu_cores");
    json_t *cc = json_object_get(r, "client_cpu_cores");
    printf("cpu         server ");
    if (json_is_real(sc))
        printf("%.3f cores", json_real_value(sc));
    else
        printf("n/a");
    printf(", client ");
    if (json_is_real(cc))
        printf("%.3f cores", json_real_value(cc));
    else
        printf("n/a");
    if (c.srv_rss >= 0)
        printf(", server RSS after setup %.1f MiB", (double)c.srv_rss / 1048576.0);
    printf("\n");
}

static void cleanup(void)
{
    for (unsigned i = 0; i < c.n_slots; i++)
        pb_conn_free(&c.slots[i].conn);
    for (uint32_t i = 0; c.members && i < c.n; i++)
        free(c.members[i].token);
    free(c.members);
    free(c.rooms);
    free(c.slots);
    free(c.free_slots);
}

const pb_scenario_t pb_scenario_churn = {.name = "churn",
                                         .unit = "request",
                                         .start = start,
                                         .stop = stop,
                                         .progress = progress,
                                         .report = report,
                                         .text = text,
                                         .cleanup = cleanup};
