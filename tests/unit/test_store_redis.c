/* The redis store engine against a real redis-server this test starts on a free loopback
 * port (no persistence): the memory engine's scenarios where they apply, with the same
 * injected clock (the engine passes its time to the scripts), plus two stores on one redis
 * and a redis killed and restarted. Exits 77 (skip) without redis-server. Callbacks come
 * from the loop, so each helper runs it (bounded) until its callback has fired. */
#include "test.h"

#include "common/error.h"
#include "store/redis.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "store_callbacks.h"

/* ---- the redis server ---- */

static pid_t redis_pid;
static int redis_port;
static uv_loop_t *cur_loop;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* A blocking command on a fresh connection (test setup only, never on the engine's loop). */
static bool redis_cmd(const char *cmd)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return false;
    }
    redisReply *r = redisCommand(c, cmd);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

static bool redis_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid < 0)
        return false;
    if (redis_pid == 0) {
        int dn = open("/dev/null", 1);
        if (dn >= 0) {
            dup2(dn, 1);
            dup2(dn, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (redis_cmd("PING"))
            return true;
        usleep(20000);
    }
    return false;
}

static void redis_kill(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop for ms milliseconds, or until *flag becomes nonzero (flag may be NULL). */
static void spin(int ms, const volatile int *flag)
{
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end && !(flag && *flag)) {
        uv_run(cur_loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

/* Waits (bounded) for the callback of the operation just started. */
static bool wait_calls(void)
{
    spin(3000, &R.calls);
    return R.calls == 1;
}

/* ---- fixture ---- */

typedef struct {
    uv_loop_t loop;
    pl_store_t *s;
} fixture_t;

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

static const pl_store_listener_t listener = {
    .on_inbox = on_inbox,
    .on_member_expired = on_member_expired,
    .on_room_expired = on_room_expired,
};

static bool wait_ready(pl_store_t *s, int ms)
{
    int64_t end = mono_ms() + ms;
    while (!s->ready(s) && mono_ms() < end) {
        uv_run(cur_loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    return s->ready(s);
}

static int fx_open(fixture_t *fx, const pl_store_opts_t *opts)
{
    fake_now = T0;
    reset_notes();
    reenter_store = NULL;
    if (!redis_cmd("FLUSHALL"))
        return -1;
    if (uv_loop_init(&fx->loop) != 0)
        return -1;
    cur_loop = &fx->loop;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    int rc = pl_store_redis_new(&fx->loop, url, opts, &listener, "test", &fx->s);
    if (rc != 0)
        return rc;
    return wait_ready(fx->s, 3000) ? 0 : -1;
}

static void fx_close(fixture_t *fx)
{
    fx->s->destroy(fx->s);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&fx->loop), 0);
}

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
    if (rc != 0)
        return rc;
    return wait_calls() ? R.status : -1;
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
    if (rc != 0)
        return rc;
    return wait_calls() ? R.status : -1;
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

static pl_store_stats_t stats(pl_store_t *s)
{
    R.calls = 0;
    s->stats(s, stats_cb, NULL);
    wait_calls();
    return R.stats;
}

/* ---- tests ---- */

static void test_create_join_leave(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_STR(s->engine, "redis");
    CHECK(s->ready(s));

    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK(R.created);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_STR(R.room.broadcaster_id, "u1");
    CHECK_EQ_STR(R.room.broadcaster_name, "alice");
    CHECK(R.room.is_public);
    CHECK_EQ_INT(R.room.max_peers, 16);
    CHECK_EQ_INT(R.room.created_at_ms, T0);
    CHECK_EQ_INT(R.room.expires_at_ms, T0 + 3600 * 1000);
    CHECK_EQ_INT(R.room.participant_count, 1);
    CHECK_EQ_STR(R.member.peer_id, "p1");
    CHECK_EQ_INT(R.member.joined_at_ms, T0);
    CHECK_EQ_INT(R.member.expires_at_ms, T0 + 90 * 1000);

    fake_now += 5;
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(R.npeers, 1);
    CHECK_EQ_STR(R.peers[0].peer_id, "p1");
    CHECK_EQ_STR(R.member.peer_id, "p2");
    CHECK_EQ_STR(R.member.name, "name-u2");
    CHECK_EQ_INT(R.member.joined_at_ms, T0 + 5);
    CHECK_EQ_INT(R.room.participant_count, 2);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(R.npeers, 2);
    CHECK_EQ_STR(R.peers[1].peer_id, "p2");
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u9"), PL_EEXIST);
    CHECK_EQ_INT(join(s, "nope", NULL, "p4", "u4"), PL_ENOTFOUND);

    CHECK_EQ_INT(get_members(s, "room1"), 0);
    CHECK_EQ_INT(R.npeers, 3);
    CHECK_EQ_STR(R.peers[2].peer_id, "p3");
    CHECK_EQ_INT(get_member(s, "room1", "p2"), 0);
    CHECK_EQ_STR(R.member.user_id, "u2");
    CHECK_EQ_INT(get_member(s, "room1", "zz"), PL_EFORBIDDEN);
    CHECK_EQ_INT(get_member(s, "nope", "p1"), PL_ENOTFOUND);

    CHECK_EQ_INT(leave(s, "room1", "p2"), 0);
    CHECK(!R.room_removed);
    CHECK_EQ_INT(R.npeers, 2);
    CHECK_EQ_STR(R.peers[0].peer_id, "p1");
    CHECK_EQ_STR(R.peers[1].peer_id, "p3");
    CHECK_EQ_INT(leave(s, "room1", "p2"), PL_EFORBIDDEN);
    CHECK_EQ_INT(leave(s, "nope", "p1"), PL_ENOTFOUND);
    CHECK_EQ_INT(leave(s, "room1", "p1"), 0);
    CHECK(!R.room_removed);
    CHECK_EQ_INT(leave(s, "room1", "p3"), 0);
    CHECK(R.room_removed);
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    CHECK_EQ_INT(join(s, NULL, "alice", "p5", "u5"), PL_ENOTFOUND);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 0);
    CHECK_EQ_INT(st.members, 0);
    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "p6", true, 16), 0);
    CHECK(R.created);
    CHECK_EQ_INT(s->join_room(s, NULL, join_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

static void test_create_idempotent(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 2), 0);
    fake_now += 10000;
    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "p9", true, 2), 0);
    CHECK(!R.created);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_STR(R.member.peer_id, "p1");
    CHECK_EQ_INT(R.member.joined_at_ms, T0);
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 90 * 1000);
    CHECK_EQ_INT(R.room.created_at_ms, T0);
    CHECK_EQ_INT(get_room(s, "room2"), PL_ENOTFOUND);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(leave(s, "room1", "p1"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p4", "u4"), PL_EFULL);
    CHECK_EQ_INT(create(s, "room3", "u1", "alice", "p10", true, 2), 0);
    CHECK(!R.created);
    CHECK_EQ_STR(R.member.peer_id, "p10");
    CHECK_EQ_INT(R.room.participant_count, 3);
    CHECK_EQ_INT(stats(s).rooms, 1);
    CHECK_EQ_INT(stats(s).members, 3);
    fx_close(&fx);
}

static void test_join_by_name(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(join(s, NULL, "alice", "p2", "u2"), 0);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_INT(join(s, NULL, "bob", "p3", "u3"), PL_ENOTFOUND);
    fake_now += 1;
    CHECK_EQ_INT(create(s, "room2", "u9", "alice", "q1", true, 16), 0);
    CHECK_EQ_INT(join(s, NULL, "alice", "q2", "u2"), 0);
    CHECK_EQ_STR(R.room.id, "room2");
    CHECK_EQ_INT(join(s, "room1", "alice", "p4", "u4"), 0);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_INT(leave(s, "room2", "q1"), 0);
    CHECK_EQ_INT(leave(s, "room2", "q2"), 0);
    CHECK(R.room_removed);
    CHECK_EQ_INT(join(s, NULL, "alice", "p5", "u5"), PL_ENOTFOUND);
    /* A private room is not joinable by name. */
    CHECK_EQ_INT(create(s, "room3", "u7", "carol", "c1", false, 16), 0);
    CHECK_EQ_INT(join(s, NULL, "carol", "c2", "u2"), PL_ENOTFOUND);
    CHECK_EQ_INT(join(s, "room3", NULL, "c2", "u2"), 0);
    fx_close(&fx);
}

static void test_push_pop_masks(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "e1", "{\"a\":1|x}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "e2", "{\"c\":1}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "e3", "{\"c\":2}"), 0);
    CHECK_EQ_INT(push(s, "room1", NULL, "p2", PL_ENV_PEER_JOINED, "e4", "{\"j\":1}"), 0);
    CHECK_EQ_INT(push(s, "room1", "zz", "p2", PL_ENV_CANDIDATE, "e5", "{}"), PL_EFORBIDDEN);
    CHECK_EQ_INT(push(s, "room1", "p1", "zz", PL_ENV_CANDIDATE, "e5", "{}"), PL_ENOTFOUND);
    CHECK_EQ_INT(push(s, "nope", "p1", "p2", PL_ENV_CANDIDATE, "e5", "{}"), PL_ENOTFOUND);
    CHECK_EQ_INT(stats(s).signals_queued, 4);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_CANDIDATE, 1), 0);
    CHECK_EQ_INT(R.nenvs, 1);
    CHECK_EQ_STR(R.envs[0].id, "e2");
    CHECK_EQ_STR(R.json[0], "{\"c\":1}");
    CHECK_EQ_STR(R.envs[0].from, "p1");
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 3);
    CHECK_EQ_STR(R.envs[0].id, "e1");
    CHECK_EQ_STR(R.json[0], "{\"a\":1|x}");
    CHECK_EQ_INT(R.envs[0].type, PL_ENV_OFFER);
    CHECK_EQ_STR(R.envs[1].id, "e3");
    CHECK_EQ_STR(R.envs[2].id, "e4");
    CHECK_EQ_STR(R.envs[2].from, "");
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    CHECK_EQ_INT(get_member(s, "room1", "p2"), 0);
    CHECK_EQ_STR(R.member.last_offer_from, "p1");
    CHECK_EQ_INT(pop(s, "room1", "zz", PL_ENV_ALL, 10), PL_EFORBIDDEN);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.signals_queued, 0);
    CHECK_EQ_INT(st.signals_delivered, 4);
    fx_close(&fx);
}

static void test_open_offer(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "d1", "{\"direct\":1}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "o1", "{\"open\":1}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "o2", "{\"open\":2}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p1", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0); /* not the sender's own */
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 2);
    CHECK_EQ_STR(R.envs[0].id, "d1");
    CHECK_EQ_STR(R.envs[1].id, "o2");
    CHECK_EQ_INT(pop(s, "room1", "p3", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0); /* taken once */
    CHECK_EQ_INT(stats(s).signals_queued, 0);
    /* The sender leaving takes its open offer along. */
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "o3", "{}"), 0);
    CHECK_EQ_INT(leave(s, "room1", "p1"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p3", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    fx_close(&fx);
}

static void test_signal_ttl_and_limits(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.inbox_max = 3;
    o.inbox_bytes_max = 100;
    o.inbox_per_sender_max = 2;
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "a", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "b", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c", "{}"), PL_ELIMIT);
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "c", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "d", "{}"), PL_ELIMIT);
    char big[128];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(push(s, "room1", "p1", "p3", PL_ENV_CANDIDATE, "e", big), PL_ELIMIT);
    /* Expired envelopes do not hold the inbox full, and pops skip them. */
    fake_now += 30 * 1000;
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "f", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 1);
    CHECK_EQ_STR(R.envs[0].id, "f");
    CHECK_EQ_INT(stats(s).signals_expired, 3);
    fx_close(&fx);
}

static void test_member_and_room_ttl(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    fake_now += 60 * 1000;
    CHECK_EQ_INT(heartbeat(s, "room1", "p1"), 0);
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 90 * 1000);
    CHECK_EQ_INT(R.room.expires_at_ms, fake_now + 3600 * 1000);
    fake_now += 30 * 1000;
    /* p2 and p3 expired: the operation reaps them and notifies first. */
    CHECK_EQ_INT(get_members(s, "room1"), 0);
    CHECK_EQ_INT(R.npeers, 1);
    CHECK_EQ_INT(nmember_notes, 2);
    CHECK_EQ_STR(member_notes[0].member.peer_id, "p2");
    CHECK_EQ_STR(member_notes[1].member.peer_id, "p3");
    CHECK_EQ_INT(member_notes[1].nremaining, 1);
    CHECK_EQ_STR(member_notes[1].remaining[0], "p1");
    CHECK(!member_notes[1].room_removed);
    /* The sweep reports an expiry no operation touched, once. */
    fake_now += 90 * 1000;
    pl_store_redis_sweep(s);
    spin(1000, (const volatile int *)&nmember_notes); /* waits for the third */
    spin(200, NULL);
    CHECK_EQ_INT(nmember_notes, 3);
    CHECK(member_notes[2].room_removed);
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    /* Room TTL. */
    reset_notes();
    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "q1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room2", NULL, "q2", "u2"), 0);
    for (int i = 0; i < 50; i++) {
        fake_now += 80 * 1000;
        CHECK_EQ_INT(heartbeat(s, "room2", "q2"), 0);
        CHECK_EQ_INT(get_member(s, "room2", "q1"), 0);
        R.calls = 0;
        s->heartbeat(s, "room2", "q1", member_cb, NULL);
        wait_calls();
    }
    CHECK_EQ_INT(nroom_notes, 0);
    fake_now += 3600 * 1000;
    pl_store_redis_sweep(s);
    spin(1000, (const volatile int *)&nroom_notes);
    CHECK_EQ_INT(nroom_notes, 1);
    CHECK_EQ_STR(room_notes[0].room.id, "room2");
    CHECK_EQ_INT(room_notes[0].n, 2);
    CHECK_EQ_INT(nmember_notes, 0);
    CHECK_EQ_INT(get_room(s, "room2"), PL_ENOTFOUND);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 0);
    CHECK_EQ_INT(st.members, 0);
    fx_close(&fx);
}

static void test_rate_hit(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    fake_now = 1000000;
    CHECK_EQ_INT(rate(s, "ip:1", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    CHECK_EQ_INT(R.reset_ms, 1001000);
    fake_now += 999;
    CHECK_EQ_INT(rate(s, "ip:1", 1000), 0);
    CHECK_EQ_INT(R.count, 2);
    CHECK_EQ_INT(rate(s, "ip:2", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    fake_now += 1;
    CHECK_EQ_INT(rate(s, "ip:1", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    CHECK_EQ_INT(R.reset_ms, 1002000);
    CHECK_EQ_INT(s->rate_hit(s, "k", 0, rate_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

static void test_list_rooms(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    char id[16], user[16], peer[16];
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof id, "r%d", i);
        snprintf(user, sizeof user, "u%d", i);
        snprintf(peer, sizeof peer, "p%d", i);
        CHECK_EQ_INT(create(s, id, user, user, peer, i != 3, 16), 0);
        if (i % 2 == 0)
            fake_now += 1; /* pairs share a millisecond: ties order by id */
    }
    CHECK_EQ_INT(list(s, 4, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 4);
    CHECK_EQ_STR(R.rooms[0].id, "r5"); /* r5 and r6 at T0+3, r4 at T0+2, r1 r2 at T0+1 */
    CHECK_EQ_STR(R.rooms[1].id, "r6");
    CHECK_EQ_STR(R.rooms[2].id, "r4");
    CHECK_EQ_STR(R.rooms[3].id, "r1");
    char cur[PL_CURSOR_MAX + 1];
    snprintf(cur, sizeof cur, "%s", R.cursor);
    CHECK(cur[0] != '\0');
    CHECK_EQ_INT(list(s, 4, cur), 0);
    CHECK_EQ_INT(R.nrooms, 2);
    CHECK_EQ_STR(R.rooms[0].id, "r2");
    CHECK_EQ_STR(R.rooms[1].id, "r0");
    CHECK_EQ_STR(R.cursor, "");
    CHECK_EQ_INT(list(s, 4, "garbage"), PL_EINVAL);
    CHECK_EQ_INT(s->list_rooms(s, 0, NULL, list_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

static void test_rooms_max(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.rooms_max = 2;
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "r1", "u1", "a", "p1", true, 0), 0);
    CHECK_EQ_INT(create(s, "r2", "u2", "b", "p2", true, 0), 0);
    CHECK_EQ_INT(create(s, "r3", "u3", "c", "p3", true, 0), PL_ELIMIT);
    fake_now += 3600 * 1000;
    CHECK_EQ_INT(create(s, "r3", "u3", "c", "p3", true, 0), 0);
    CHECK_EQ_INT(nroom_notes, 2);
    fx_close(&fx);
}

/* Two nodes on one redis: shared rooms and cross-node on_inbox. */
static int inbox_a, inbox_b;
static char inbox_b_peer[PL_ID_SIZE];
static void on_inbox_a(void *ud, const char *room, const char *peer)
{
    (void)ud;
    (void)room;
    (void)peer;
    inbox_a++;
}
static void on_inbox_b(void *ud, const char *room, const char *peer)
{
    (void)ud;
    (void)room;
    snprintf(inbox_b_peer, sizeof inbox_b_peer, "%s", peer);
    inbox_b++;
}

static void test_two_nodes(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *a = fx.s;
    /* Swap in counting listeners: a second store with its own. */
    pl_store_listener_t lb = {.on_inbox = on_inbox_b};
    pl_store_t *b = NULL;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
    REQUIRE(pl_store_redis_new(&fx.loop, url, &o, &lb, "b", &b) == 0);
    REQUIRE(wait_ready(b, 3000));
    (void)on_inbox_a;
    inbox_b = 0;
    ninbox = 0;
    CHECK_EQ_INT(create(a, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(list(b, 10, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 1);
    CHECK_EQ_INT(join(b, NULL, "alice", "p2", "u2"), 0);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_INT(push(a, "room1", "p1", "p2", PL_ENV_OFFER, "e1", "{}"), 0);
    spin(1000, &inbox_b);
    CHECK_EQ_INT(inbox_b, 1);
    CHECK_EQ_STR(inbox_b_peer, "p2");
    spin(100, NULL);
    CHECK_EQ_INT(ninbox, 1); /* node a hears it too */
    CHECK_EQ_STR(inbox_notes[0].room, "room1");
    CHECK_EQ_INT(pop(b, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 1);
    /* Rate limits are shared. */
    CHECK_EQ_INT(rate(a, "k", 60000), 0);
    CHECK_EQ_INT(rate(b, "k", 60000), 0);
    CHECK_EQ_INT(R.count, 2);
    /* Expiry is reported by exactly one node. */
    reset_notes();
    fake_now += 91 * 1000;
    pl_store_redis_sweep(a);
    pl_store_redis_sweep(b);
    spin(500, NULL);
    CHECK_EQ_INT(nmember_notes, 2); /* b has no expiry listener: a reported both, once */
    b->destroy(b);
    fx_close(&fx);
}

static int closed_status;
static void closed_cb(void *ud, int status, const pl_room_t *room)
{
    (void)ud;
    (void)room;
    closed_status = status;
}

static void test_redis_restart(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    redis_kill();
    int64_t t0 = mono_ms();
    while (s->ready(s) && mono_ms() - t0 < 2000)
        spin(5, NULL);
    CHECK(!s->ready(s));
    int64_t t1 = mono_ms();
    CHECK_EQ_INT(get_room(s, "room1"), PL_EUNAVAIL);
    CHECK(mono_ms() - t1 < 100);
    REQUIRE(redis_start());
    CHECK(wait_ready(s, 8000));
    /* The data is gone with the restart: a clean 404. */
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK(R.created);
    /* destroy with a request in flight: its callback fires with PL_ECLOSED. */
    closed_status = 1;
    CHECK_EQ_INT(s->get_room(s, "room1", closed_cb, NULL), 0);
    fx_close(&fx);
    CHECK_EQ_INT(closed_status, PL_ECLOSED);
}

/* A frozen Redis (SIGSTOP) keeps its sockets open and never answers: every request fails
 * PL_EUNAVAIL at its deadline (2 s), exactly once, the store turns unready, and after
 * SIGCONT it reconnects and turns ready by itself. */
static int frozen_calls[3], frozen_status[3];
static void frozen_status_cb(void *ud, int status)
{
    int i = (int)(intptr_t)ud;
    frozen_calls[i]++;
    frozen_status[i] = status;
}
static void frozen_rate_cb(void *ud, int status, uint64_t count, int64_t reset_ms)
{
    (void)count;
    (void)reset_ms;
    frozen_status_cb(ud, status);
}
static void frozen_room_cb(void *ud, int status, const pl_room_t *room)
{
    (void)room;
    frozen_status_cb(ud, status);
}

static void test_redis_frozen(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    memset(frozen_calls, 0, sizeof frozen_calls);
    REQUIRE(kill(redis_pid, SIGSTOP) == 0);
    int64_t t0 = mono_ms();
    CHECK_EQ_INT(s->get_room(s, "room1", frozen_room_cb, (void *)(intptr_t)0), 0);
    spin(300, NULL);
    CHECK_EQ_INT(s->rate_hit(s, "k", 60000, frozen_rate_cb, (void *)(intptr_t)1), 0);
    CHECK(s->ready(s));
    while ((!frozen_calls[0] || !frozen_calls[1]) && mono_ms() - t0 < 4000)
        spin(5, NULL);
    int64_t took = mono_ms() - t0;
    CHECK_EQ_INT(frozen_calls[0], 1);
    CHECK_EQ_INT(frozen_calls[1], 1);
    CHECK_EQ_INT(frozen_status[0], PL_EUNAVAIL);
    CHECK_EQ_INT(frozen_status[1], PL_EUNAVAIL);
    CHECK(took < 2500); /* a sweep sent earlier may time out first: at most 2 s */
    /* The connection counts as broken: unready, new requests fail at once. */
    CHECK(!s->ready(s));
    int64_t t1 = mono_ms();
    CHECK_EQ_INT(get_room(s, "room1"), PL_EUNAVAIL);
    CHECK(mono_ms() - t1 < 100);
    /* Reconnects to a frozen Redis do not make it ready (the handshake must answer). */
    int64_t t2 = mono_ms();
    while (mono_ms() - t2 < 2500) {
        CHECK(!s->ready(s));
        if (s->ready(s))
            break;
        spin(10, NULL);
    }
    CHECK_EQ_INT(kill(redis_pid, SIGCONT), 0);
    CHECK(wait_ready(s, 10000));
    CHECK_EQ_INT(get_room(s, "room1"), 0);
    CHECK_EQ_INT(rate(s, "k2", 60000), 0);
    /* No second callback for the requests that timed out. */
    spin(200, NULL);
    CHECK_EQ_INT(frozen_calls[0], 1);
    CHECK_EQ_INT(frozen_calls[1], 1);
    fx_close(&fx);
}

/* shared_secret: random, the same for every call with that name, distinct per name. */
static int secret_calls, secret_status;
static int secret_calls_done; /* set by each callback, cleared before each call */
static unsigned char secret_buf[PL_SECRET_LEN_MAX];
static size_t secret_len;
static void secret_cb(void *ud, int status, const unsigned char *secret, size_t len)
{
    (void)ud;
    secret_calls++;
    secret_calls_done = 1;
    secret_status = status;
    secret_len = 0;
    if (status == 0 && secret && len <= sizeof secret_buf) {
        memcpy(secret_buf, secret, len);
        secret_len = len;
    }
}

static void test_shared_secret(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    unsigned char first[32], zero[32] = {0};
    secret_calls = 0;
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "signaling", 32, secret_cb, NULL), 0);
    spin(3000, &secret_calls_done);
    CHECK_EQ_INT(secret_calls, 1);
    CHECK_EQ_INT(secret_status, 0);
    CHECK_EQ_INT((int)secret_len, 32);
    memcpy(first, secret_buf, 32);
    CHECK(memcmp(first, zero, 32) != 0);
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "signaling", 32, secret_cb, NULL), 0);
    spin(3000, &secret_calls_done);
    CHECK_EQ_INT(secret_calls, 2);
    CHECK_EQ_INT((int)secret_len, 32);
    CHECK(memcmp(first, secret_buf, 32) == 0);
    /* Another length for the same name: the stored secret as it is. */
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "signaling", 16, secret_cb, NULL), 0);
    spin(3000, &secret_calls_done);
    CHECK_EQ_INT((int)secret_len, 32);
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "other", 32, secret_cb, NULL), 0);
    spin(3000, &secret_calls_done);
    CHECK_EQ_INT(secret_calls, 4);
    CHECK(memcmp(first, secret_buf, 32) != 0);
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "", 32, secret_cb, NULL), PL_EINVAL);
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "x", 0, secret_cb, NULL), PL_EINVAL);
    secret_calls_done = 0;
    CHECK_EQ_INT(s->shared_secret(s, "x", PL_SECRET_LEN_MAX + 1, secret_cb, NULL), PL_EINVAL);
    CHECK_EQ_INT(secret_calls, 4);
    /* Another node on the same Redis gets the same secret, as does a parleyd restarted
     * (the key has no TTL). */
    pl_store_t *b = NULL;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    REQUIRE(pl_store_redis_new(&fx.loop, url, &o, NULL, "b", &b) == 0);
    REQUIRE(wait_ready(b, 3000));
    memset(secret_buf, 0, sizeof secret_buf);
    secret_calls_done = 0;
    CHECK_EQ_INT(b->shared_secret(b, "signaling", 32, secret_cb, NULL), 0);
    spin(3000, &secret_calls_done);
    CHECK_EQ_INT(secret_status, 0);
    CHECK_EQ_INT((int)secret_len, 32);
    CHECK(memcmp(first, secret_buf, 32) == 0);
    b->destroy(b);
    fx_close(&fx);
}

int main(void)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        printf("SKIP: redis-server not found\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    redis_port = free_port();
    if (redis_port <= 0 || !redis_start()) {
        fprintf(stderr, "could not start redis-server\n");
        redis_kill();
        return 1;
    }
    RUN(test_create_join_leave);
    RUN(test_create_idempotent);
    RUN(test_join_by_name);
    RUN(test_push_pop_masks);
    RUN(test_open_offer);
    RUN(test_signal_ttl_and_limits);
    RUN(test_member_and_room_ttl);
    RUN(test_rate_hit);
    RUN(test_list_rooms);
    RUN(test_rooms_max);
    RUN(test_two_nodes);
    RUN(test_shared_secret);
    RUN(test_redis_frozen);
    RUN(test_redis_restart);
    redis_kill();
    TEST_MAIN();
}
