/* The signaling client (sig.c) against a real parleyd: the test starts build/bin/parleyd
 * (path in PARLEYD) on a free loopback port, mints HS256 user tokens, and drives pl__sig
 * clients on one libuv loop.
 *
 *   create + join, and the bodies on_joined hands over
 *   an offer, three candidates, end-of-candidates and an answer relayed exactly once and in
 *   order, over the WebSocket and over long-polls
 *   peer-joined (star room), peer-left, a clean leave over each link
 *   errors: a bad token → PARLEY_ESRV_UNAUTHORIZED, an unknown room → PARLEY_ESRV_NOT_FOUND
 *   parleyd SIGKILLed and restarted on the same port: the clients reconnect, learn that the
 *   memory store lost their membership, report it once (PARLEY_ESRV_EXPIRED) and stop
 *   a leave while parleyd is down: on_left(0) all the same (the membership is over for us)
 *
 * Without PARLEYD the test is skipped (77) by hand and fails under ctest
 * (PARLEY_TEST_STRICT=1). */
#include "sdk_testutil.h"
#include "sig.h"
#include "test.h"

#define MAX_EVENTS 128

/* ---- parleyd (started by sdk_testutil.h) ---- */

static long file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Counts lines of parleyd's log that contain needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(srv.log_path, "r");
    if (!f)
        return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* ---- a recording client ---- */

typedef struct {
    const char *label;
    pl__sig_t *sig;
    json_t *joined;
    json_t *envs[MAX_EVENTS];
    int nenvs;
    int states[MAX_EVENTS], state_errs[MAX_EVENTS];
    int nstates;
    const char *error_op;
    int error_err;
    int nerrors;
    int left, left_err;
    int nleft;
} rec_t;

static void r_joined(void *ud, const json_t *answer)
{
    rec_t *r = ud;
    json_decref(r->joined);
    r->joined = json_deep_copy(answer);
}

static void r_envelope(void *ud, const json_t *env)
{
    rec_t *r = ud;
    if (r->nenvs < MAX_EVENTS)
        r->envs[r->nenvs++] = json_deep_copy(env);
}

static void r_state(void *ud, parley_sig_state st, int err)
{
    rec_t *r = ud;
    if (r->nstates < MAX_EVENTS) {
        r->states[r->nstates] = (int)st;
        r->state_errs[r->nstates++] = err;
    }
}

static void r_error(void *ud, const char *op, int err, const char *detail)
{
    rec_t *r = ud;
    fprintf(stderr, "  [%s] error %s: %s (%s)\n", r->label, op, parley_strerror(err),
            detail ? detail : "-");
    r->error_op = op;
    r->error_err = err;
    r->nerrors++;
}

static void r_left(void *ud, int err)
{
    rec_t *r = ud;
    r->left = 1;
    r->left_err = err;
    r->nleft++;
}

static uv_loop_t loop;
static char *token_a, *token_b, *token_c;
static char server_url[64];

static int rec_new(rec_t *r, const char *label, const char *token, int mode)
{
    memset(r, 0, sizeof *r);
    r->label = label;
    pl__sig_config_t cfg = {server_url, token, NULL, mode, NULL};
    pl__sig_callbacks_t cb = {r, r_joined, r_envelope, r_state, r_error, r_left};
    return pl__sig_new(&loop, &cfg, &cb, &r->sig);
}

static void rec_free(rec_t *r)
{
    pl__sig_free(r->sig);
    r->sig = NULL;
    json_decref(r->joined);
    for (int i = 0; i < r->nenvs; i++)
        json_decref(r->envs[i]);
    r->nenvs = 0;
    r->joined = NULL;
}

static int last_state(const rec_t *r)
{
    return r->nstates ? r->states[r->nstates - 1] : -1;
}

static const json_t *find_type(const rec_t *r, const char *type)
{
    for (int i = 0; i < r->nenvs; i++)
        if (strcmp(json_string_value(json_object_get(r->envs[i], "type")), type) == 0)
            return r->envs[i];
    return NULL;
}

/* ---- running the loop ---- */

static void on_tick(uv_timer_t *t)
{
}

static uv_timer_t tick;

/* Runs the loop until cond(arg) or ms pass; returns cond's last value. */
static int run_until(int (*cond)(void *), void *arg, int ms)
{
    uint64_t end = uv_hrtime() / 1000000 + (uint64_t)ms;
    while (!(cond && cond(arg))) {
        if (uv_hrtime() / 1000000 >= end)
            return cond ? cond(arg) : 1;
        uv_run(&loop, UV_RUN_ONCE);
    }
    return 1;
}

static void run_for(int ms)
{
    run_until(NULL, NULL, ms);
}

static int is_joined(void *a)
{
    return ((rec_t *)a)->joined != NULL;
}

static int has_error(void *a)
{
    return ((rec_t *)a)->nerrors > 0;
}

static int has_left(void *a)
{
    return ((rec_t *)a)->left;
}

typedef struct {
    rec_t *r;
    int state;
} state_wait_t;

static int in_state(void *a)
{
    state_wait_t *w = a;
    return last_state(w->r) == w->state;
}

static int wait_state(rec_t *r, int state, int ms)
{
    state_wait_t w = {r, state};
    return run_until(in_state, &w, ms);
}

typedef struct {
    rec_t *r;
    int n;
} count_wait_t;

static int has_envs(void *a)
{
    count_wait_t *w = a;
    return w->r->nenvs >= w->n;
}

static int wait_envs(rec_t *r, int n, int ms)
{
    count_wait_t w = {r, n};
    return run_until(has_envs, &w, ms);
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- the cases ---- */

/* A creates, B joins; they reach want_a, want_b (WEBSOCKET or LONGPOLL). */
static int pair_up2(rec_t *a, rec_t *b, int mode_a, int mode_b, const char *topology, int want_a,
                    int want_b)
{
    if (rec_new(a, "A", token_a, mode_a) || rec_new(b, "B", token_b, mode_b))
        return 0;
    json_t *body =
        json_pack("{s:s,s:b,s:s}", "customName", "sdk test", "isPublic", 1, "topology", topology);
    int rc = pl__sig_create(a->sig, body);
    json_decref(body);
    if (rc != 0 || !run_until(is_joined, a, 5000))
        return 0;
    if (pl__sig_join(b->sig, jstr(a->joined, "roomId"), NULL) != 0 ||
        !run_until(is_joined, b, 5000))
        return 0;
    return wait_state(a, want_a, 5000) && wait_state(b, want_b, 5000);
}

static int pair_up(rec_t *a, rec_t *b, int mode_a, int mode_b, const char *topology, int want)
{
    return pair_up2(a, b, mode_a, mode_b, topology, want, want);
}

static void check_joined_bodies(rec_t *a, rec_t *b)
{
    const json_t *ja = a->joined, *jb = b->joined;
    CHECK(json_string_length(json_object_get(ja, "roomId")) == 22);
    CHECK(json_string_length(json_object_get(ja, "peerId")) == 22);
    CHECK(jstr(ja, "signalingToken") && *jstr(ja, "signalingToken"));
    CHECK(json_is_array(json_object_get(ja, "iceServers")));
    CHECK_EQ_INT(json_integer_value(json_object_get(ja, "heartbeatIntervalSeconds")), 2);
    json_t *room = json_object_get(ja, "room");
    CHECK_EQ_STR(jstr(room, "broadcasterName"), "Alice");
    CHECK_EQ_STR(jstr(room, "customName"), "sdk test");
    CHECK_EQ_STR(jstr(jb, "roomId"), jstr(ja, "roomId"));
    CHECK_EQ_STR(pl__sig_peer_id(a->sig), jstr(ja, "peerId"));
    CHECK_EQ_STR(pl__sig_peer_id(b->sig), jstr(jb, "peerId"));
    json_t *peers = json_object_get(jb, "peers");
    CHECK_EQ_INT(json_array_size(peers), 1);
    CHECK_EQ_STR(jstr(json_array_get(peers, 0), "peerId"), jstr(ja, "peerId"));
    CHECK_EQ_STR(jstr(json_array_get(peers, 0), "name"), "Alice");
}

/* A offers to B with three candidates and the end; B answers. Checks exact-once, order. */
static void relay_and_check(rec_t *a, rec_t *b)
{
    const char *pa = pl__sig_peer_id(a->sig), *pb = pl__sig_peer_id(b->sig);
    /* A got an offer-request for B (mesh: every existing peer is asked to offer). */
    REQUIRE(wait_envs(a, 1, 5000));
    const json_t *req = find_type(a, "offer-request");
    REQUIRE(req);
    CHECK_EQ_STR(jstr(json_object_get(req, "peer"), "peerId"), pb);
    CHECK_EQ_STR(jstr(json_object_get(req, "peer"), "name"), "Bob");
    int base_b = b->nenvs;

    json_t *f = json_pack("{s:s}", "sdp", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n");
    CHECK_EQ_INT(pl__sig_send(a->sig, "offer", pb, f), 0);
    json_decref(f);
    for (int i = 0; i < 3; i++) {
        char cand[128];
        snprintf(cand, sizeof cand, "candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host", i,
                 40000 + i);
        f = json_pack("{s:{s:s,s:s,s:i}}", "candidate", "candidate", cand, "sdpMid", "0",
                      "sdpMLineIndex", 0);
        CHECK_EQ_INT(pl__sig_send(a->sig, "candidate", pb, f), 0);
        json_decref(f);
    }
    f = json_pack("{s:n}", "candidate");
    CHECK_EQ_INT(pl__sig_send(a->sig, "candidate", pb, f), 0);
    json_decref(f);
    /* Refused at once: bad type, bad peer id. */
    CHECK_EQ_INT(pl__sig_send(a->sig, "leave", pb, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(pl__sig_send(a->sig, "offer", "not an id", NULL), PARLEY_EINVAL);

    REQUIRE(wait_envs(b, base_b + 5, 5000));
    run_for(300); /* anything duplicated would arrive meanwhile */
    CHECK_EQ_INT(b->nenvs, base_b + 5);
    const json_t *e0 = b->envs[base_b];
    CHECK_EQ_STR(jstr(e0, "type"), "offer");
    CHECK_EQ_STR(jstr(e0, "from"), pa);
    CHECK_EQ_STR(jstr(e0, "to"), pb);
    CHECK_EQ_STR(jstr(e0, "sdp"), "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n");
    for (int i = 0; i < 3; i++) {
        const json_t *e = b->envs[base_b + 1 + i];
        CHECK_EQ_STR(jstr(e, "type"), "candidate");
        char want[128];
        snprintf(want, sizeof want, "candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host", i,
                 40000 + i);
        CHECK_EQ_STR(jstr(json_object_get(e, "candidate"), "candidate"), want);
        CHECK_EQ_STR(jstr(json_object_get(e, "candidate"), "sdpMid"), "0");
    }
    const json_t *end = b->envs[base_b + 4];
    CHECK_EQ_STR(jstr(end, "type"), "candidate");
    CHECK(json_is_null(json_object_get(end, "candidate")));

    int base_a = a->nenvs;
    f = json_pack("{s:s}", "sdp", "v=0\r\nanswer\r\n");
    CHECK_EQ_INT(pl__sig_send(b->sig, "answer", pa, f), 0);
    json_decref(f);
    REQUIRE(wait_envs(a, base_a + 1, 5000));
    run_for(200);
    CHECK_EQ_INT(a->nenvs, base_a + 1);
    CHECK_EQ_STR(jstr(a->envs[base_a], "type"), "answer");
    CHECK_EQ_STR(jstr(a->envs[base_a], "from"), pb);
    CHECK_EQ_STR(jstr(a->envs[base_a], "sdp"), "v=0\r\nanswer\r\n");
    CHECK_EQ_INT(a->nerrors, 0);
    CHECK_EQ_INT(b->nerrors, 0);
}

/* B leaves: A gets peer-left, B on_left(0) and CLOSED. */
static void leave_and_check(rec_t *a, rec_t *b)
{
    const char *pb_c = pl__sig_peer_id(b->sig);
    REQUIRE(pb_c);
    char pb[64];
    snprintf(pb, sizeof pb, "%s", pb_c);
    int base_a = a->nenvs;
    CHECK_EQ_INT(pl__sig_leave(b->sig), 0);
    CHECK_EQ_INT(pl__sig_leave(b->sig), 0); /* already leaving */
    CHECK(run_until(has_left, b, 5000));
    CHECK_EQ_INT(b->left_err, 0);
    CHECK_EQ_INT(last_state(b), PARLEY_SIG_CLOSED);
    CHECK(pl__sig_peer_id(b->sig) == NULL);
    CHECK_EQ_INT(pl__sig_send(b->sig, "offer", pb, NULL), PARLEY_ESTATE);
    REQUIRE(wait_envs(a, base_a + 1, 5000));
    CHECK_EQ_STR(jstr(a->envs[base_a], "type"), "peer-left");
    CHECK_EQ_STR(jstr(json_object_get(a->envs[base_a], "peer"), "peerId"), pb);
    CHECK_EQ_INT(pl__sig_leave(b->sig), PARLEY_ESTATE);
}

static void test_websocket(void)
{
    rec_t a, b;
    int ok =
        pair_up(&a, &b, PARLEY_SIGNALING_AUTO, PARLEY_SIGNALING_WS, "mesh", PARLEY_SIG_WEBSOCKET);
    CHECK(ok);
    if (ok) {
        CHECK_EQ_INT(a.states[0], PARLEY_SIG_CONNECTING);
        check_joined_bodies(&a, &b);
        relay_and_check(&a, &b);
        /* Heartbeats (every 2 s here) keep the socket and refresh the token. */
        run_for(4500);
        CHECK_EQ_INT(last_state(&a), PARLEY_SIG_WEBSOCKET);
        CHECK_EQ_INT(a.nerrors + b.nerrors, 0);
        leave_and_check(&a, &b);
        CHECK_EQ_INT(pl__sig_leave(a.sig), 0);
        CHECK(run_until(has_left, &a, 5000));
        CHECK_EQ_INT(a.left_err, 0);
    }
    rec_free(&a);
    rec_free(&b);
}

static void test_longpoll(void)
{
    rec_t a, b;
    int ok = pair_up(&a, &b, PARLEY_SIGNALING_LONGPOLL, PARLEY_SIGNALING_LONGPOLL, "mesh",
                     PARLEY_SIG_LONGPOLL);
    CHECK(ok);
    if (ok) {
        relay_and_check(&a, &b);
        run_for(4500); /* REST heartbeats meanwhile, polls continue */
        CHECK_EQ_INT(last_state(&a), PARLEY_SIG_LONGPOLL);
        CHECK_EQ_INT(a.nerrors + b.nerrors, 0);
        leave_and_check(&a, &b);
        /* Alice's room must go: her next create would return it again. */
        CHECK_EQ_INT(pl__sig_leave(a.sig), 0);
        CHECK(run_until(has_left, &a, 5000));
        CHECK_EQ_INT(a.left_err, 0);
    }
    rec_free(&a);
    rec_free(&b);
}

/* Star: a third member makes the broadcaster get offer-request and B get peer-joined. */
static void test_peer_joined(void)
{
    rec_t a, b, c;
    int ok =
        pair_up(&a, &b, PARLEY_SIGNALING_WS, PARLEY_SIGNALING_AUTO, "star", PARLEY_SIG_WEBSOCKET);
    CHECK(ok);
    if (ok && rec_new(&c, "C", token_c, PARLEY_SIGNALING_LONGPOLL) == 0) {
        int base_a = a.nenvs, base_b = b.nenvs;
        CHECK_EQ_INT(pl__sig_join(c.sig, NULL, "Alice"), 0); /* by broadcaster name */
        CHECK(run_until(is_joined, &c, 5000));
        CHECK(wait_envs(&a, base_a + 1, 5000));
        CHECK(wait_envs(&b, base_b + 1, 5000));
        const char *pc = pl__sig_peer_id(c.sig);
        if (a.nenvs > base_a) {
            CHECK_EQ_STR(jstr(a.envs[base_a], "type"), "offer-request");
            CHECK_EQ_STR(jstr(json_object_get(a.envs[base_a], "peer"), "peerId"), pc);
        }
        if (b.nenvs > base_b) {
            CHECK_EQ_STR(jstr(b.envs[base_b], "type"), "peer-joined");
            CHECK_EQ_STR(jstr(json_object_get(b.envs[base_b], "peer"), "peerId"), pc);
            CHECK_EQ_STR(jstr(json_object_get(b.envs[base_b], "peer"), "name"), "Carol");
        }
        CHECK_EQ_INT(json_array_size(json_object_get(c.joined, "peers")), 2);
        leave_and_check(&a, &c); /* a long-poll member leaves over REST */
        rec_free(&c);
        CHECK_EQ_INT(pl__sig_leave(a.sig), 0);
        CHECK(run_until(has_left, &a, 5000));
    }
    rec_free(&a);
    rec_free(&b);
}

static void test_errors_mapped(void)
{
    rec_t bad, lost;
    REQUIRE(rec_new(&bad, "bad", "not.a.jwt", PARLEY_SIGNALING_AUTO) == 0);
    CHECK_EQ_INT(pl__sig_create(bad.sig, NULL), 0);
    CHECK_EQ_INT(pl__sig_create(bad.sig, NULL), PARLEY_ESTATE); /* one at a time */
    CHECK(run_until(has_error, &bad, 5000));
    CHECK_EQ_INT(bad.error_err, PARLEY_ESRV_UNAUTHORIZED);
    CHECK_EQ_STR(bad.error_op, "create");
    CHECK_EQ_INT(last_state(&bad), PARLEY_SIG_CLOSED);
    CHECK(bad.joined == NULL);
    rec_free(&bad);

    REQUIRE(rec_new(&lost, "lost", token_b, PARLEY_SIGNALING_AUTO) == 0);
    CHECK_EQ_INT(pl__sig_join(lost.sig, "AAAAAAAAAAAAAAAAAAAAAA", NULL), 0);
    CHECK(run_until(has_error, &lost, 5000));
    CHECK_EQ_INT(lost.error_err, PARLEY_ESRV_NOT_FOUND);
    CHECK_EQ_STR(lost.error_op, "join");
    /* Refused before any request. */
    CHECK_EQ_INT(pl__sig_join(lost.sig, "../x", NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(pl__sig_join(lost.sig, NULL, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(pl__sig_leave(lost.sig), PARLEY_ESTATE);
    rec_free(&lost);

    /* Malformed server URLs. */
    pl__sig_t *s = NULL;
    pl__sig_callbacks_t cb = {0};
    const char *urls[] = {"https://x",      "ftp://x",       "http://",     "http://h:0",
                          "http://h:99999", "http://h:80?x", "http://h/a b"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        pl__sig_config_t cfg = {urls[i], NULL, NULL, PARLEY_SIGNALING_AUTO, NULL};
        CHECK_EQ_INT(pl__sig_new(&loop, &cfg, &cb, &s), PARLEY_EINVAL);
    }
    pl__sig_config_t cfg = {"http://127.0.0.1:1", NULL, NULL, 7, NULL};
    CHECK_EQ_INT(pl__sig_new(&loop, &cfg, &cb, &s), PARLEY_EINVAL);

    /* Nobody listening: a network error, reported once. */
    rec_t dead;
    snprintf(server_url, sizeof server_url, "http://127.0.0.1:1");
    REQUIRE(rec_new(&dead, "dead", token_a, PARLEY_SIGNALING_AUTO) == 0);
    snprintf(server_url, sizeof server_url, "http://127.0.0.1:%d", srv.port);
    CHECK_EQ_INT(pl__sig_create(dead.sig, NULL), 0);
    CHECK(run_until(has_error, &dead, 5000));
    CHECK_EQ_INT(dead.error_err, PARLEY_ENETWORK);
    rec_free(&dead);
}

typedef struct {
    rec_t *a, *b;
} two_t;

static int both_left(void *arg)
{
    two_t *t = arg;
    return t->a->left && t->b->left;
}

static int both_reconnecting(void *arg)
{
    two_t *t = arg;
    return last_state(t->a) == PARLEY_SIG_RECONNECTING &&
           last_state(t->b) == PARLEY_SIG_RECONNECTING;
}

static void test_restart(void)
{
    rec_t a, b;
    int ok = pair_up2(&a, &b, PARLEY_SIGNALING_AUTO, PARLEY_SIGNALING_LONGPOLL, "mesh",
                      PARLEY_SIG_WEBSOCKET, PARLEY_SIG_LONGPOLL);
    CHECK(ok);
    if (ok) {
        int port = srv.port;
        sdk_stop_parleyd(SIGKILL);
        two_t t = {&a, &b};
        CHECK(run_until(both_reconnecting, &t, 5000));
        run_for(1500); /* retries meet a closed port meanwhile, with backoff */
        CHECK(!a.left && !b.left);
        REQUIRE(sdk_start_parleyd("sdk", port, "6") == 0);
        CHECK_EQ_INT(srv.port, port);
        /* The memory store forgot the room: the probe's heartbeat says so (404). */
        CHECK(run_until(both_left, &t, 40000));
        CHECK_EQ_INT(a.left_err, PARLEY_ESRV_EXPIRED);
        CHECK_EQ_INT(b.left_err, PARLEY_ESRV_EXPIRED);
        CHECK_EQ_INT(last_state(&a), PARLEY_SIG_CLOSED);
        CHECK_EQ_INT(last_state(&b), PARLEY_SIG_CLOSED);
        /* Reported once, then silence: no request reaches parleyd any more. */
        run_for(300); /* parleyd logs a request after answering it */
        int before = log_count("\"msg\":\"request\"");
        run_for(3000);
        CHECK_EQ_INT(log_count("\"msg\":\"request\""), before);
        CHECK_EQ_INT(a.nleft, 1);
        CHECK_EQ_INT(b.nleft, 1);
        CHECK(pl__sig_peer_id(a.sig) == NULL);
        /* The same client can join again. */
        json_t *body = json_object();
        CHECK_EQ_INT(pl__sig_create(a.sig, body), 0);
        json_decref(body);
        json_decref(a.joined);
        a.joined = NULL;
        CHECK(run_until(is_joined, &a, 5000));
        CHECK(wait_state(&a, PARLEY_SIG_WEBSOCKET, 5000));
    }
    rec_free(&a);
    rec_free(&b);
}

/* A leave the server cannot be told about (parleyd is gone): the membership is over from our
 * side all the same, so CLOSED(0) and on_left(0), as parley.h says (err < 0 only when the
 * membership ends by itself); it used to report PARLEY_ENETWORK. Restarts parleyd. */
static void test_leave_unreachable(void)
{
    rec_t a, b;
    int ok = pair_up2(&a, &b, PARLEY_SIGNALING_AUTO, PARLEY_SIGNALING_LONGPOLL, "mesh",
                      PARLEY_SIG_WEBSOCKET, PARLEY_SIG_LONGPOLL);
    CHECK(ok);
    int port = srv.port;
    if (ok) {
        sdk_stop_parleyd(SIGKILL);
        two_t t = {&a, &b};
        CHECK(run_until(both_reconnecting, &t, 5000));
        CHECK_EQ_INT(pl__sig_leave(a.sig), 0);
        CHECK_EQ_INT(pl__sig_leave(b.sig), 0);
        CHECK(run_until(both_left, &t, 15000));
        CHECK_EQ_INT(a.left_err, 0);
        CHECK_EQ_INT(b.left_err, 0);
        CHECK_EQ_INT(a.nleft, 1);
        CHECK_EQ_INT(b.nleft, 1);
        CHECK_EQ_INT(last_state(&a), PARLEY_SIG_CLOSED);
        CHECK_EQ_INT(last_state(&b), PARLEY_SIG_CLOSED);
        CHECK_EQ_INT(a.state_errs[a.nstates - 1], 0);
        CHECK_EQ_INT(b.state_errs[b.nstates - 1], 0);
        CHECK(pl__sig_peer_id(a.sig) == NULL);
    }
    rec_free(&a);
    rec_free(&b);
    if (!srv.pid) {
        REQUIRE(sdk_start_parleyd("sdk", port, "6") == 0);
        CHECK_EQ_INT(srv.port, port);
    }
}

/* Freed with everything in flight: nothing leaks, no callback afterwards. */
static void test_free_midway(void)
{
    rec_t a;
    REQUIRE(rec_new(&a, "A", token_a, PARLEY_SIGNALING_AUTO) == 0);
    CHECK_EQ_INT(pl__sig_create(a.sig, NULL), 0);
    CHECK(run_until(is_joined, &a, 5000));
    int n = a.nstates;
    rec_free(&a);
    run_for(200);
    CHECK_EQ_INT(a.nstates, n);
}

int main(void)
{
    if (!sdk_have_parleyd())
        return getenv("PARLEY_TEST_STRICT") ? 1 : 77;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10); /* wakes UV_RUN_ONCE for the deadline checks */
    if (sdk_start_parleyd("sdk", 0, "6") != 0) {
        fprintf(stderr, "parleyd did not start; its log: %s\n", srv.log_path);
        return 1;
    }
    snprintf(server_url, sizeof server_url, "http://127.0.0.1:%d", srv.port);
    token_a = sdk_mint("alice", "Alice");
    token_b = sdk_mint("bob", "Bob");
    token_c = sdk_mint("carol", "Carol");

    RUN(test_websocket);
    RUN(test_longpoll);
    RUN(test_peer_joined);
    RUN(test_errors_mapped);
    RUN(test_restart);
    RUN(test_leave_unreachable);
    RUN(test_free_midway);

    sdk_stop_parleyd(SIGTERM);
    uv_close((uv_handle_t *)&tick, NULL);
    /* Everything closes by itself: lws contexts, HTTP requests, the clients' timers. */
    for (int i = 0; i < 2000 && uv_run(&loop, UV_RUN_NOWAIT); i++)
        usleep(1000);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    free(token_a);
    free(token_b);
    free(token_c);
    if (pl_test_cases_failed == 0 && !getenv("PARLEY_TEST_KEEP_LOGS"))
        unlink(srv.log_path);
    else
        fprintf(stderr, "parleyd log: %s (%ld bytes)\n", srv.log_path, file_size(srv.log_path));
    TEST_MAIN();
}
