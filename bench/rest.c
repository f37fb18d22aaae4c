/* rest: N virtual users, each on its own keep-alive connection, go round a cycle of
 * parleyd's REST calls (create-room, join-room, heartbeats, GET offer and GET events
 * polls, leave-room) for a duration or a request count, flat out or at a target rate.
 * Every attempt is counted: an HTTP answer other than the expected one, a failed connect
 * and a timeout are errors, by kind. Latency runs from the request's start (including a
 * reconnect when the server closed the connection) to its last byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/json.h"
#include "conn.h"

enum { OP_CREATE, OP_JOIN, OP_HEARTBEAT, OP_POLL_OFFER, OP_POLL_EVENTS, OP_LEAVE, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"create-room", "join-room",   "heartbeat",
                                               "poll-offer",  "poll-events", "leave-room"};

/* The cycle each virtual user goes round. A is the room's creator, B a peer that joins,
 * polls and leaves again, so rooms and inboxes stay small however long the run. */
typedef enum {
    ST_CREATE,        /* user token: create-room (or get one's live room back) */
    ST_JOIN,          /* user token: join-room -> B */
    ST_HEARTBEAT_B,   /* B: heartbeat */
    ST_POLL_OFFER_B,  /* B: GET offer (204) */
    ST_HEARTBEAT_A,   /* A: heartbeat */
    ST_POLL_EVENTS_A, /* A: GET events (drains offer-request / peer-left) */
    ST_LEAVE_B,       /* B: leave-room */
    ST_STEPS
} step_t;

typedef struct vu {
    pb_conn_t conn; /* first: the response callback casts back */
    unsigned index;
    char *user_token;
    char room_id[64];
    char *tok_a;
    char *tok_b;
    step_t step;
    int op;
    uint64_t started_ns;
    uint64_t next_due_ns;
    uv_timer_t pace;
    bool idle; /* stopped for good */
} vu_t;

static struct {
    vu_t *vus;
    unsigned n;
    unsigned idle_vus;
    uint64_t interval_ns; /* per virtual user, with --rate */
    uint64_t by_op[OP_COUNT];
} r;

static void on_response(pb_conn_t *c, int err, int status, const char *body, size_t len);

static void vu_idle(vu_t *v)
{
    if (v->idle)
        return;
    v->idle = true;
    if (++r.idle_vus == r.n)
        pb_finish();
}

static void set_token(char **slot, const char *tok)
{
    free(*slot);
    *slot = tok ? strdup(tok) : NULL;
}

static void vu_send(vu_t *v)
{
    if (!pb_may_issue()) {
        vu_idle(v);
        return;
    }
    char path[512], body[160];
    const char *method = "POST", *bearer = NULL;
    const char *req_body = body;
    const char *base = pb.o.base;
    snprintf(body, sizeof body, "{\"roomId\":\"%s\"}", v->room_id);
    switch (v->step) {
    case ST_CREATE:
        v->op = OP_CREATE;
        snprintf(path, sizeof path, "%s/signaling/create-room", base);
        bearer = v->user_token;
        req_body = "{\"isPublic\":false}";
        break;
    case ST_JOIN:
        v->op = OP_JOIN;
        snprintf(path, sizeof path, "%s/signaling/join-room", base);
        bearer = v->user_token;
        break;
    case ST_HEARTBEAT_B:
    case ST_HEARTBEAT_A:
        v->op = OP_HEARTBEAT;
        snprintf(path, sizeof path, "%s/signaling/heartbeat", base);
        bearer = v->step == ST_HEARTBEAT_A ? v->tok_a : v->tok_b;
        break;
    case ST_POLL_OFFER_B:
        v->op = OP_POLL_OFFER;
        method = "GET";
        snprintf(path, sizeof path, "%s/signaling/offer/%s", base, v->room_id);
        bearer = v->tok_b;
        req_body = NULL;
        break;
    case ST_POLL_EVENTS_A:
        v->op = OP_POLL_EVENTS;
        method = "GET";
        snprintf(path, sizeof path, "%s/signaling/events/%s", base, v->room_id);
        bearer = v->tok_a;
        req_body = NULL;
        break;
    case ST_LEAVE_B:
    default:
        v->op = OP_LEAVE;
        snprintf(path, sizeof path, "%s/signaling/leave-room", base);
        bearer = v->tok_b;
        break;
    }
    v->started_ns = uv_hrtime();
    pb.issued++;
    if (pb_conn_request(&v->conn, method, pb.o.host, path, bearer, req_body, on_response) != 0) {
        pb.issued--;
        fprintf(stderr, "parley-bench: out of memory\n");
        vu_idle(v);
    }
}

static void on_pace(uv_timer_t *t)
{
    vu_send(t->data);
}

/* The next request: at once flat out, else at this user's next slot (late slots are sent
 * at once, so a slow server is measured at the offered rate, not a politer one). */
static void vu_next(vu_t *v, uint64_t delay_ms)
{
    if (!pb_may_issue()) {
        vu_idle(v);
        return;
    }
    if (r.interval_ns) {
        uint64_t now = uv_hrtime();
        v->next_due_ns += r.interval_ns;
        if (v->next_due_ns > now) {
            uint64_t ms = (v->next_due_ns - now) / 1000000;
            if (ms > delay_ms)
                delay_ms = ms;
        }
    }
    if (delay_ms) {
        uv_timer_start(&v->pace, on_pace, delay_ms, 0);
        return;
    }
    vu_send(v);
}

/* Reads the fields a step needs from a 200/201 body; false when they are missing. */
static bool take_body(vu_t *v, const char *body, size_t len)
{
    json_t *j = pl_json_loadb(body, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return false;
    }
    const char *room = json_string_value(json_object_get(j, "roomId"));
    const char *tok = json_string_value(json_object_get(j, "signalingToken"));
    bool ok = true;
    switch (v->step) {
    case ST_CREATE:
        if (!room || !tok || strlen(room) >= sizeof v->room_id) {
            ok = false;
            break;
        }
        strcpy(v->room_id, room);
        set_token(&v->tok_a, tok);
        break;
    case ST_JOIN:
    case ST_HEARTBEAT_B:
        if (!tok)
            ok = false;
        else
            set_token(&v->tok_b, tok);
        break;
    case ST_HEARTBEAT_A:
        if (!tok)
            ok = false;
        else
            set_token(&v->tok_a, tok);
        break;
    default:
        break;
    }
    json_decref(j);
    return ok;
}

static bool status_expected(step_t step, int status)
{
    switch (step) {
    case ST_CREATE:
        return status == 200 || status == 201;
    case ST_POLL_OFFER_B:
        return status == 200 || status == 204;
    case ST_LEAVE_B:
        return status == 204;
    default:
        return status == 200;
    }
}

static void on_response(pb_conn_t *c, int err, int status, const char *body, size_t len)
{
    vu_t *v = (vu_t *)c; /* conn is the first member */
    uint64_t now = uv_hrtime();
    r.by_op[v->op]++;
    uint64_t delay_ms = 0;
    bool good = false;
    if (err) {
        pb_error(pb_conn_err_name(err));
        pb_done(0, false);
        if (err == PB_ECONNECT)
            delay_ms = 100; /* a dead server is retried, not hammered */
    } else {
        uint64_t lat = (now - v->started_ns) / 1000;
        if (!status_expected(v->step, status)) {
            char kind[16];
            snprintf(kind, sizeof kind, "http_%d", status > 0 && status < 600 ? status : 0);
            pb_error(kind);
        } else if (!take_body(v, body, len) && v->step != ST_POLL_OFFER_B &&
                   v->step != ST_POLL_EVENTS_A && v->step != ST_LEAVE_B) {
            pb_error("bad_body");
        } else {
            good = true;
        }
        pb_done(lat, good);
    }
    if (good)
        v->step = (step_t)((v->step + 1) % ST_STEPS);
    else
        v->step = ST_CREATE; /* start the cycle again from a known state */
    vu_next(v, delay_ms);
}

static int start(void)
{
    if (pb.o.target != PB_TARGET_PARLEY) {
        fprintf(stderr, "parley-bench: rest drives parleyd only\n");
        return -1;
    }
    unsigned n = pb.o.connections;
    r.vus = calloc(n, sizeof *r.vus);
    if (!r.vus) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return -1;
    }
    /* r.n counts the users set up so far: stop() and cleanup() touch only those. */
    for (unsigned i = 0; i < n; i++) {
        vu_t *v = &r.vus[i];
        v->index = i;
        if (pb_conn_init(&v->conn, pb.loop, (const struct sockaddr *)&pb.addr,
                         pb.o.connect_timeout_ms, pb.o.timeout_ms) != 0 ||
            uv_timer_init(pb.loop, &v->pace) != 0) {
            fprintf(stderr, "parley-bench: cannot set up connection %u\n", i);
            return -1;
        }
        r.n++;
        v->pace.data = v;
        if (!(v->user_token = pb_user_token(i))) {
            fprintf(stderr, "parley-bench: cannot make a user token\n");
            return -1;
        }
    }
    if (pb.o.rate > 0)
        r.interval_ns = (uint64_t)(1e9 * r.n / pb.o.rate);
    for (unsigned i = 0; i < r.n; i++) {
        vu_t *v = &r.vus[i];
        if (r.interval_ns) {
            /* Spread the users' first requests over one interval. */
            uint64_t offset = r.interval_ns * i / r.n;
            v->next_due_ns = pb.start_ns + offset;
            uv_timer_start(&v->pace, on_pace, offset / 1000000, 0);
        } else {
            vu_send(v);
        }
    }
    return 0;
}

static void stop(void)
{
    for (unsigned i = 0; i < r.n; i++) {
        pb_conn_shutdown(&r.vus[i].conn);
        if (!uv_is_closing((uv_handle_t *)&r.vus[i].pace))
            uv_close((uv_handle_t *)&r.vus[i].pace, NULL);
    }
}

static void report(json_t *rep)
{
    json_t *ops = json_object();
    for (int i = 0; i < OP_COUNT; i++)
        json_object_set_new(ops, op_names[i], json_integer((json_int_t)r.by_op[i]));
    json_object_set_new(rep, "requests_by_op", ops);
}

static void text(json_t *rep)
{
    printf("by op      ");
    for (int i = 0; i < OP_COUNT; i++)
        printf(" %s %llu", op_names[i], (unsigned long long)r.by_op[i]);
    printf("\n");
}

static void cleanup(void)
{
    for (unsigned i = 0; i < r.n; i++) {
        pb_conn_free(&r.vus[i].conn);
        free(r.vus[i].user_token);
        free(r.vus[i].tok_a);
        free(r.vus[i].tok_b);
    }
    free(r.vus);
}

const pb_scenario_t pb_scenario_rest = {.name = "rest",
                                        .unit = "request",
                                        .start = start,
                                        .stop = stop,
                                        .report = report,
                                        .text = text,
                                        .cleanup = cleanup};
