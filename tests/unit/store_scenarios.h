/* Every scenario about the store interface (store/store.h), written once against the
 * engine fixture (store_fixture.h) and run against each engine: test_store_memory.c and
 * test_store_redis.c each call run_store_scenarios() with their engine. Time is the fake
 * clock, which the redis engine passes to its scripts, so expiry is exact on both engines.
 * Tests that hold for one engine only stay in that engine's file. */
#ifndef PL_TEST_STORE_SCENARIOS_H
#define PL_TEST_STORE_SCENARIOS_H

#include "store_fixture.h"

#include <stdlib.h>

/* The opening of most scenarios: the fixture with room1, created by user u1 ("alice") as
 * peer p1, public, for 16 peers, which peers p2 up to p<members> (users u2...) then join. */
static bool open_room1(fixture_t *fx, const pl_store_opts_t *o, int members)
{
    if (fx_open(fx, o) != 0)
        return false;
    CHECK_EQ_INT(create(fx->s, "room1", "u1", "alice", "p1", true, 16), 0);
    for (int i = 2; i <= members; i++) {
        char peer[PL_ID_SIZE], user[16];
        snprintf(peer, sizeof peer, "p%d", i);
        snprintf(user, sizeof user, "u%d", i);
        CHECK_EQ_INT(join(fx->s, "room1", NULL, peer, user), 0);
    }
    return true;
}

static void test_create_join_leave(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_STR(s->engine, store_engine->name);
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
    CHECK_EQ_STR(R.peers[0].peer_id, "p1");
    CHECK_EQ_STR(R.peers[1].peer_id, "p2");
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u9"), PL_EEXIST);
    CHECK_EQ_INT(join(s, "nope", NULL, "p4", "u4"), PL_ENOTFOUND);

    CHECK_EQ_INT(get_members(s, "room1"), 0);
    CHECK_EQ_INT(R.npeers, 3);
    CHECK_EQ_STR(R.peers[0].peer_id, "p1");
    CHECK_EQ_STR(R.peers[1].peer_id, "p2");
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
    CHECK_EQ_INT(get_room(s, "room1"), 0);
    CHECK_EQ_INT(R.room.participant_count, 2);

    /* The broadcaster leaving does not close the room while others remain. */
    CHECK_EQ_INT(leave(s, "room1", "p1"), 0);
    CHECK(!R.room_removed);
    CHECK_EQ_INT(get_room(s, "room1"), 0);
    CHECK_EQ_INT(leave(s, "room1", "p3"), 0);
    CHECK(R.room_removed);
    CHECK_EQ_INT(R.npeers, 0);
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    CHECK_EQ_INT(join(s, NULL, "alice", "p5", "u5"), PL_ENOTFOUND);

    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 0);
    CHECK_EQ_INT(st.members, 0);

    /* The broadcaster index went with the room: a new create makes a new room. */
    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "p6", true, 16), 0);
    CHECK(R.created);
    CHECK_EQ_STR(R.room.id, "room2");

    /* Malformed calls are refused without a callback. */
    CHECK_EQ_INT(s->join_room(s, NULL, join_cb, NULL), PL_EINVAL);
    CHECK_EQ_INT(s->leave_room(s, NULL, "p1", leave_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

static void test_create_idempotent(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 2), 0);
    CHECK(R.created);
    fake_now += 10000;
    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "p9", true, 2), 0);
    CHECK(!R.created);
    CHECK_EQ_STR(R.room.id, "room1");
    CHECK_EQ_STR(R.member.peer_id, "p1");
    CHECK_EQ_INT(R.member.joined_at_ms, T0);
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 90 * 1000);
    CHECK_EQ_INT(R.room.created_at_ms, T0);
    CHECK_EQ_INT(R.room.participant_count, 1);
    CHECK_EQ_INT(get_room(s, "room2"), PL_ENOTFOUND);
    /* The refreshed expiry is the member's from now on, in every answer. */
    CHECK_EQ_INT(get_member(s, "room1", "p1"), 0);
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 90 * 1000);
    CHECK_EQ_INT(get_members(s, "room1"), 0);
    REQUIRE(R.npeers == 1);
    CHECK_EQ_INT(R.peers[0].expires_at_ms, fake_now + 90 * 1000);

    /* Without a membership of their own the broadcaster is added, even to a full room. */
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(leave(s, "room1", "p1"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p4", "u4"), PL_EFULL);
    CHECK_EQ_INT(create(s, "room3", "u1", "alice", "p10", true, 2), 0);
    CHECK(!R.created);
    CHECK_EQ_STR(R.room.id, "room1");
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
    CHECK_EQ_INT(R.npeers, 1);
    CHECK_EQ_INT(join(s, NULL, "bob", "p3", "u3"), PL_ENOTFOUND);

    /* Another broadcaster with the same display name: the most recent room wins. */
    fake_now += 1;
    CHECK_EQ_INT(create(s, "room2", "u9", "alice", "q1", true, 16), 0);
    CHECK_EQ_INT(join(s, NULL, "alice", "q2", "u2"), 0);
    CHECK_EQ_STR(R.room.id, "room2");
    /* A room id takes precedence over a name. */
    CHECK_EQ_INT(join(s, "room1", "alice", "p4", "u4"), 0);
    CHECK_EQ_STR(R.room.id, "room1");

    /* When the indexed room goes, its name entry goes with it. */
    CHECK_EQ_INT(leave(s, "room2", "q1"), 0);
    CHECK_EQ_INT(leave(s, "room2", "q2"), 0);
    CHECK(R.room_removed);
    CHECK_EQ_INT(join(s, NULL, "alice", "p5", "u5"), PL_ENOTFOUND);
    fx_close(&fx);
}

static void test_private_room_not_joinable_by_name(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(create(s, "room1", "u1", "Secret Streamer", "p1", false, 16), 0);
    CHECK_EQ_INT(join(s, NULL, "Secret Streamer", "p2", "u2"), PL_ENOTFOUND);
    /* By id it still works: the id is the invitation. */
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    fx_close(&fx);
}

static void test_full_room(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 2), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), PL_EFULL);
    CHECK_EQ_INT(leave(s, "room1", "p2"), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p3", "u3"), 0);
    CHECK_EQ_INT(stats(s).members, 2);
    fx_close(&fx);
}

static void test_push_pop_fifo_masks(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;

    /* The '|' is there because an engine might use it as a field separator. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{\"sdp\":\"o1|x\"}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c1", "{\"c\":1}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_ANSWER, "a1", "{\"sdp\":\"a1\"}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c2", "{\"c\":2}"), 0);
    CHECK_EQ_INT(stats(s).signals_queued, 4);

    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_CANDIDATE, 10), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[0].id, "c1");
    CHECK_EQ_STR(R.envs[1].id, "c2");
    CHECK_EQ_STR(R.envs[0].from, "p1");
    CHECK_EQ_INT(R.envs[0].type, PL_ENV_CANDIDATE);
    CHECK_EQ_STR(R.json[0], "{\"c\":1}");
    CHECK_EQ_INT(R.envs[0].json_len, 7);

    /* The others stayed, in order. */
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[0].id, "o1");
    CHECK_EQ_INT(R.envs[0].type, PL_ENV_OFFER);
    CHECK_EQ_STR(R.json[0], "{\"sdp\":\"o1|x\"}");
    CHECK_EQ_STR(R.envs[1].id, "a1");
    CHECK_EQ_INT(R.envs[1].type, PL_ENV_ANSWER);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    /* Popping a direct offer records its sender, for an answer without `to`. */
    CHECK_EQ_INT(get_member(s, "room1", "p2"), 0);
    CHECK_EQ_STR(R.member.last_offer_from, "p1");

    /* max bounds a pop; the rest waits. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c3", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c4", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", NULL, "p2", PL_ENV_PEER_JOINED, "j1", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 2), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[0].id, "c3");
    CHECK_EQ_STR(R.envs[1].id, "c4");
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 0), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 2), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "j1");
    CHECK_EQ_STR(R.envs[0].from, "");
    CHECK_EQ_INT(R.envs[0].type, PL_ENV_PEER_JOINED);
    /* Pushes after a pop that emptied the inbox land at the right place. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c5", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c6", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[1].id, "c6");

    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.signals_queued, 0);
    CHECK_EQ_INT(st.signals_delivered, 9);

    CHECK_EQ_INT(push(s, "room1", "zz", "p2", PL_ENV_OFFER, "x", "{}"), PL_EFORBIDDEN);
    CHECK_EQ_INT(push(s, "room1", "p1", "zz", PL_ENV_OFFER, "x", "{}"), PL_ENOTFOUND);
    CHECK_EQ_INT(push(s, "nope", "p1", "p2", PL_ENV_OFFER, "x", "{}"), PL_ENOTFOUND);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", (pl_env_type_t)3, "x", "{}"), PL_EINVAL);
    CHECK_EQ_INT(pop(s, "room1", "zz", PL_ENV_ALL, 10), PL_EFORBIDDEN);
    CHECK_EQ_INT(pop(s, "nope", "p1", PL_ENV_ALL, 10), PL_ENOTFOUND);
    CHECK_EQ_INT(stats(s).signals_queued, 0);

    /* A leaver's inbox goes with it. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o2", "{}"), 0);
    CHECK_EQ_INT(leave(s, "room1", "p2"), 0);
    CHECK_EQ_INT(stats(s).signals_queued, 0);
    fx_close(&fx);
}

static void test_open_offer(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 3));
    pl_store_t *s = fx.s;

    clear_inbox_notes();
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "open1", "{\"sdp\":\"x\"}"), 0);
    wait_inbox(2);
    CHECK_EQ_INT(ninbox, 2);
    CHECK_EQ_STR(inbox_notes[0].peer, "p2");
    CHECK_EQ_STR(inbox_notes[1].peer, "p3");
    CHECK_EQ_INT(stats(s).signals_queued, 1);

    /* Never returned to its sender, and not taken by a pop without PL_ENV_OFFER. */
    CHECK_EQ_INT(pop(s, "room1", "p1", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ANSWER | PL_ENV_CANDIDATE, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);

    /* It comes after the inbox's own offers, and max applies to the total. */
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_OFFER, "direct", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_OFFER, 1), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "direct");
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_OFFER, "direct2", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_OFFER, 10), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[0].id, "direct2");
    CHECK_EQ_STR(R.envs[1].id, "open1");
    CHECK_EQ_STR(R.envs[1].from, "p1");
    CHECK_EQ_STR(R.json[1], "{\"sdp\":\"x\"}");
    /* The member remembers who offered last, for an answer without `to`. */
    CHECK_EQ_INT(get_member(s, "room1", "p2"), 0);
    CHECK_EQ_STR(R.member.last_offer_from, "p1");
    CHECK_EQ_INT(get_member(s, "room1", "p3"), 0);
    CHECK_EQ_STR(R.member.last_offer_from, "");

    /* Consumed: nobody else gets it. */
    CHECK_EQ_INT(pop(s, "room1", "p3", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    CHECK_EQ_INT(stats(s).signals_queued, 0);

    /* A newer open offer replaces the older one; a pop of every type also takes the inbox's
     * direct offer first. */
    CHECK_EQ_INT(push(s, "room1", "p2", "p3", PL_ENV_OFFER, "d1", "{\"direct\":1}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "openA", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "openB", "{}"), 0);
    CHECK_EQ_INT(stats(s).signals_queued, 2);
    CHECK_EQ_INT(pop(s, "room1", "p3", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 2);
    CHECK_EQ_STR(R.envs[0].id, "d1");
    CHECK_EQ_STR(R.envs[1].id, "openB");

    /* Its sender leaving withdraws it. */
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "openC", "{}"), 0);
    CHECK_EQ_INT(leave(s, "room1", "p1"), 0);
    CHECK_EQ_INT(stats(s).signals_queued, 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    fx_close(&fx);
}

static void test_signal_ttl(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", NULL, PL_ENV_OFFER, "open", "{}"), 0);
    fake_now += 10000;
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c1", "{}"), 0);

    /* One millisecond before the TTL everything is there; at the TTL the first two go. */
    fake_now = T0 + 30 * 1000 - 1;
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ANSWER, 10), 0);
    CHECK_EQ_INT(R.nenvs, 0);
    CHECK_EQ_INT(stats(s).signals_expired, 0);
    fake_now = T0 + 30 * 1000;
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "c1");
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.signals_expired, 2);
    CHECK_EQ_INT(st.signals_queued, 0);
    CHECK_EQ_INT(st.signals_delivered, 1);

    /* The sweep drops expired envelopes nobody asked for: they must not stay counted in
     * stats() and against queued_bytes_max until their inbox is popped. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o2", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p2", NULL, PL_ENV_OFFER, "open2", "{}"), 0);
    fake_now += 30 * 1000;
    sweep(s);
    st = stats(s);
    CHECK_EQ_INT(st.signals_expired, 4);
    CHECK_EQ_INT(st.signals_queued, 0);
    fx_close(&fx);
}

static void test_member_ttl(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 3));
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{}"), 0);
    fake_now += 60 * 1000;
    CHECK_EQ_INT(heartbeat(s, "room1", "p1"), 0);
    CHECK_EQ_INT(heartbeat(s, "room1", "p3"), 0);
    fake_now = T0 + 90 * 1000 - 1;
    sweep(s);
    CHECK_EQ_INT(nmember_notes, 0);

    fake_now = T0 + 90 * 1000;
    sweep(s);
    REQUIRE(nmember_notes == 1);
    CHECK_EQ_STR(member_notes[0].member.peer_id, "p2");
    CHECK_EQ_STR(member_notes[0].room.id, "room1");
    CHECK_EQ_INT(member_notes[0].room.participant_count, 2);
    CHECK_EQ_INT(member_notes[0].nremaining, 2);
    CHECK_EQ_STR(member_notes[0].remaining[0], "p1");
    CHECK_EQ_STR(member_notes[0].remaining[1], "p3");
    CHECK(!member_notes[0].room_removed);
    CHECK_EQ_INT(get_member(s, "room1", "p2"), PL_EFORBIDDEN);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.members, 2);
    CHECK_EQ_INT(st.signals_queued, 0);

    /* Without a sweep, an operation already sees expired members as gone, and the
     * listener still hears about them: together, each with the final remaining list, the
     * room's removal flagged once. */
    fake_now = T0 + 60 * 1000 + 90 * 1000;
    nmember_notes = 0;
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    REQUIRE(nmember_notes == 2);
    CHECK_EQ_STR(member_notes[0].member.peer_id, "p1");
    CHECK_EQ_STR(member_notes[1].member.peer_id, "p3");
    CHECK_EQ_INT(member_notes[0].nremaining, 0);
    CHECK_EQ_INT(member_notes[1].nremaining, 0);
    CHECK(!member_notes[0].room_removed);
    CHECK(member_notes[1].room_removed);
    CHECK_EQ_INT(nroom_notes, 0);
    st = stats(s);
    CHECK_EQ_INT(st.rooms, 0);
    CHECK_EQ_INT(st.members, 0);
    /* The broadcaster index went too. */
    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "p1", true, 16), 0);
    CHECK(R.created);

    /* An operation reaps the expired members of a room that lives on, before it answers;
     * the sweep then reports the last member, whom no operation touched, exactly once. */
    reset_notes();
    int64_t t = fake_now;
    CHECK_EQ_INT(join(s, "room2", NULL, "p2", "u2"), 0);
    CHECK_EQ_INT(join(s, "room2", NULL, "p3", "u3"), 0);
    fake_now = t + 60 * 1000;
    CHECK_EQ_INT(heartbeat(s, "room2", "p1"), 0);
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 90 * 1000);
    CHECK_EQ_INT(R.room.expires_at_ms, fake_now + 3600 * 1000);
    fake_now = t + 90 * 1000;
    CHECK_EQ_INT(get_members(s, "room2"), 0);
    CHECK_EQ_INT(R.npeers, 1);
    REQUIRE(nmember_notes == 2);
    CHECK_EQ_STR(member_notes[0].member.peer_id, "p2");
    CHECK_EQ_STR(member_notes[1].member.peer_id, "p3");
    CHECK_EQ_INT(member_notes[1].nremaining, 1);
    CHECK_EQ_STR(member_notes[1].remaining[0], "p1");
    CHECK(!member_notes[1].room_removed);
    fake_now = t + 180 * 1000;
    sweep(s);
    sweep(s);
    settle();
    REQUIRE(nmember_notes == 3);
    CHECK_EQ_STR(member_notes[2].member.peer_id, "p1");
    CHECK(member_notes[2].room_removed);
    CHECK_EQ_INT(get_room(s, "room2"), PL_ENOTFOUND);
    fx_close(&fx);
}

static void test_room_ttl(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.room_ttl_s = 60;
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{}"), 0);
    CHECK_EQ_INT(create(s, "room2", "u2", "bob", "q1", true, 16), 0);
    fake_now += 30 * 1000;
    CHECK_EQ_INT(heartbeat(s, "room2", "q1"), 0);
    fake_now = T0 + 60 * 1000;
    sweep(s);
    REQUIRE(nroom_notes == 1);
    CHECK_EQ_STR(room_notes[0].room.id, "room1");
    REQUIRE(room_notes[0].n == 2);
    CHECK_EQ_STR(room_notes[0].members[0], "p1");
    CHECK_EQ_STR(room_notes[0].members[1], "p2");
    CHECK_EQ_INT(nmember_notes, 0);
    CHECK_EQ_INT(get_room(s, "room1"), PL_ENOTFOUND);
    CHECK_EQ_INT(join(s, NULL, "alice", "p3", "u3"), PL_ENOTFOUND);
    CHECK_EQ_INT(get_room(s, "room2"), 0);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 1);
    CHECK_EQ_INT(st.members, 1);
    CHECK_EQ_INT(st.signals_queued, 0);

    /* Lazily, without a sweep. */
    fake_now = T0 + 90 * 1000;
    CHECK_EQ_INT(join(s, "room2", NULL, "q2", "u3"), PL_ENOTFOUND);
    REQUIRE(nroom_notes == 2);
    CHECK_EQ_STR(room_notes[1].room.id, "room2");
    CHECK_EQ_INT(stats(s).rooms, 0);
    fx_close(&fx);
}

/* Heartbeats keep a room alive far past its TTL; once they stop, the room expires as a
 * whole: one room notification with every member, and none for the members, whose TTLs ran
 * out too. */
static void test_room_ttl_heartbeats(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(create(s, "room2", "u1", "alice", "q1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room2", NULL, "q2", "u2"), 0);
    for (int i = 0; i < 50; i++) {
        fake_now += 80 * 1000;
        CHECK_EQ_INT(heartbeat(s, "room2", "q2"), 0);
        CHECK_EQ_INT(get_member(s, "room2", "q1"), 0);
        CHECK_EQ_INT(heartbeat(s, "room2", "q1"), 0);
    }
    CHECK_EQ_INT(nroom_notes, 0);
    fake_now += 3600 * 1000;
    sweep(s);
    REQUIRE(nroom_notes == 1);
    CHECK_EQ_STR(room_notes[0].room.id, "room2");
    CHECK_EQ_INT(room_notes[0].n, 2);
    CHECK_EQ_INT(nmember_notes, 0);
    CHECK_EQ_INT(get_room(s, "room2"), PL_ENOTFOUND);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 0);
    CHECK_EQ_INT(st.members, 0);
    fx_close(&fx);
}

static void test_heartbeat(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.room_ttl_s = 100;
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;

    fake_now += 80 * 1000;
    CHECK_EQ_INT(heartbeat(s, "room1", "p1"), 0);
    CHECK_EQ_STR(R.member.peer_id, "p1");
    CHECK_EQ_INT(R.member.expires_at_ms, fake_now + 90 * 1000);
    CHECK_EQ_INT(R.room.expires_at_ms, fake_now + 100 * 1000);
    CHECK_EQ_INT(R.room.participant_count, 2);
    CHECK_EQ_INT(heartbeat(s, "room1", "zz"), PL_EFORBIDDEN);
    CHECK_EQ_INT(heartbeat(s, "nope", "p1"), PL_ENOTFOUND);

    /* Every answer reports the heartbeat's expiry (the Redis engine keeps a member's expiry
     * apart from the rest of it, and a heartbeat touches only that): get_member, with the
     * member whole, and listings; and it stays when the member takes an offer, which
     * rewrites the rest. */
    int64_t hb_exp = fake_now + 90 * 1000;
    CHECK_EQ_INT(get_member(s, "room1", "p1"), 0);
    CHECK_EQ_INT(R.member.expires_at_ms, hb_exp);
    CHECK_EQ_INT(R.member.joined_at_ms, T0);
    CHECK_EQ_STR(R.member.user_id, "u1");
    CHECK_EQ_STR(R.member.name, "alice");
    CHECK_EQ_INT(get_members(s, "room1"), 0);
    REQUIRE(R.npeers == 2);
    CHECK_EQ_STR(R.peers[0].peer_id, "p1");
    CHECK_EQ_INT(R.peers[0].expires_at_ms, hb_exp);
    CHECK_EQ_INT(R.peers[1].expires_at_ms, T0 + 90 * 1000);
    CHECK_EQ_INT(push(s, "room1", "p2", "p1", PL_ENV_OFFER, "o1", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p1", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 1);
    CHECK_EQ_INT(get_member(s, "room1", "p1"), 0);
    CHECK_EQ_STR(R.member.last_offer_from, "p2");
    CHECK_EQ_INT(R.member.expires_at_ms, hb_exp);

    /* Past both original TTLs: p1 and the room live on, p2 is gone. */
    fake_now += 80 * 1000;
    CHECK_EQ_INT(get_member(s, "room1", "p1"), 0);
    CHECK_EQ_INT(get_member(s, "room1", "p2"), PL_EFORBIDDEN);
    CHECK_EQ_INT(get_room(s, "room1"), 0);
    CHECK_EQ_INT(R.room.participant_count, 1);
    REQUIRE(nmember_notes == 1);
    CHECK_EQ_STR(member_notes[0].member.peer_id, "p2");
    CHECK_EQ_STR(member_notes[0].member.user_id, "u2");
    CHECK_EQ_INT(member_notes[0].member.expires_at_ms, T0 + 90 * 1000);
    fx_close(&fx);
}

static void test_rate_hit(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;

    const int64_t w0 = 1700000000000LL; /* a multiple of 1000: a window starts here */
    fake_now = w0;
    CHECK_EQ_INT(rate(s, "join:u1", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    CHECK_EQ_INT(R.reset_ms, w0 + 1000);
    fake_now = w0 + 999; /* the window's last millisecond */
    CHECK_EQ_INT(rate(s, "join:u1", 1000), 0);
    CHECK_EQ_INT(R.count, 2);
    CHECK_EQ_INT(R.reset_ms, w0 + 1000);
    CHECK_EQ_INT(rate(s, "join:u2", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    fake_now = w0 + 1000; /* the next window's first */
    CHECK_EQ_INT(rate(s, "join:u1", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    CHECK_EQ_INT(R.reset_ms, w0 + 2000);

    /* A sweep after the window frees the counters; counting starts over. */
    fake_now = w0 + 5000;
    sweep(s);
    CHECK_EQ_INT(rate(s, "join:u1", 1000), 0);
    CHECK_EQ_INT(R.count, 1);
    CHECK_EQ_INT(R.reset_ms, w0 + 6000);
    CHECK_EQ_INT(rate(s, "create:u1", 60000), 0);
    CHECK_EQ_INT(R.reset_ms, w0 + 60000 - (w0 + 5000) % 60000 + 5000);

    CHECK_EQ_INT(s->rate_hit(s, "k", 0, rate_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

/* True when a comes before b in the listing's order. */
static bool listed_before(const pl_room_t *a, const pl_room_t *b)
{
    if (a->created_at_ms != b->created_at_ms)
        return a->created_at_ms > b->created_at_ms;
    return strcmp(a->id, b->id) < 0;
}

static void test_list_rooms(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    char id[PL_ID_SIZE], user[32], peer[PL_ID_SIZE];

    CHECK_EQ_INT(list(s, 10, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 0);
    CHECK_EQ_STR(R.cursor, "");

    /* 25 public rooms, some created in the same millisecond, and private ones between. */
    for (int i = 0; i < 25; i++) {
        if (i % 3 != 0)
            fake_now++;
        snprintf(id, sizeof id, "room%02d", (i * 7) % 25);
        snprintf(user, sizeof user, "u%d", i);
        snprintf(peer, sizeof peer, "p%d", i);
        CHECK_EQ_INT(create(s, id, user, user, peer, true, 16), 0);
        if (i % 5 == 0) {
            snprintf(id, sizeof id, "priv%02d", i);
            snprintf(user, sizeof user, "v%d", i);
            snprintf(peer, sizeof peer, "q%d", i);
            CHECK_EQ_INT(create(s, id, user, user, peer, false, 16), 0);
        }
    }
    CHECK_EQ_INT(stats(s).rooms, 30);

    pl_room_t all[40];
    size_t nall = 0;
    char cursor[PL_CURSOR_MAX + 1] = "";
    int pages = 0;
    do {
        CHECK_EQ_INT(list(s, 10, cursor), 0);
        CHECK(R.nrooms <= 10);
        for (size_t i = 0; i < R.nrooms && nall < 40; i++)
            all[nall++] = R.rooms[i];
        snprintf(cursor, sizeof cursor, "%s", R.cursor);
        CHECK(strlen(cursor) <= PL_CURSOR_MAX);
        pages++;
    } while (cursor[0] && pages < 10);
    CHECK_EQ_INT(pages, 3);
    REQUIRE(nall == 25);
    bool seen[25] = {false};
    for (size_t i = 0; i < nall; i++) {
        CHECK(all[i].is_public);
        CHECK(strncmp(all[i].id, "room", 4) == 0);
        int k = atoi(all[i].id + 4);
        REQUIRE(k >= 0 && k < 25);
        CHECK(!seen[k]);
        seen[k] = true;
        if (i > 0)
            CHECK(listed_before(&all[i - 1], &all[i]));
    }

    /* A page ending exactly at the last room says there are no more. */
    CHECK_EQ_INT(list(s, 25, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 25);
    CHECK_EQ_STR(R.cursor, "");
    CHECK_EQ_INT(list(s, 100, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 25);

    /* A cursor stays valid after its room is gone, and removed rooms are not listed. */
    CHECK_EQ_INT(list(s, 5, NULL), 0);
    snprintf(cursor, sizeof cursor, "%s", R.cursor);
    pl_room_t fifth = R.rooms[4], sixth;
    CHECK_EQ_INT(list(s, 6, NULL), 0);
    sixth = R.rooms[5];
    char lone[PL_ID_SIZE];
    snprintf(lone, sizeof lone, "%s", fifth.id);
    CHECK_EQ_INT(get_members(s, lone), 0);
    CHECK_EQ_INT(leave(s, lone, R.peers[0].peer_id), 0);
    CHECK(R.room_removed);
    CHECK_EQ_INT(list(s, 1, cursor), 0);
    REQUIRE(R.nrooms == 1);
    CHECK_EQ_STR(R.rooms[0].id, sixth.id);
    CHECK_EQ_INT(list(s, 100, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 24);

    /* Expired rooms are not listed even before a sweep. */
    fake_now += 3600 * 1000;
    CHECK_EQ_INT(list(s, 100, NULL), 0);
    CHECK_EQ_INT(R.nrooms, 0);
    CHECK_EQ_STR(R.cursor, "");

    static const char *const bad[] = {
        "abc",
        "123",
        "123.",
        ".room01",
        "-5.room01",
        "12a.room01",
        "123.room 01",
        "123.room01/",
        "1234567890123456789012.room01",
        "123.aaaaaaaaaaaaaaaaaaaaaaa",
        "123456789012345678901234567890123456789012345678901234567890.r"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (list(s, 10, bad[i]) != PL_EINVAL)
            fprintf(stderr, "cursor accepted: %s\n", bad[i]);
        CHECK_EQ_INT(list(s, 10, bad[i]), PL_EINVAL);
    }
    CHECK_EQ_INT(list(s, 10, ""), 0);
    CHECK_EQ_INT(s->list_rooms(s, 0, NULL, list_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

/* The listing's order spelled out room by room (test_list_rooms checks it against
 * listed_before, which could share a mistake with an engine): newest first, rooms of one
 * millisecond by id, private rooms left out. */
static void test_list_rooms_order(void)
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
    fx_close(&fx);
}

/* Ten thousand rooms paged through 50 at a time: proves the listing is not quadratic
 * (it would take seconds under ASan if it were). */
static void test_list_rooms_many(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    char id[PL_ID_SIZE], user[32];
    for (int i = 0; i < 10000; i++) {
        if (i % 7)
            fake_now++;
        snprintf(id, sizeof id, "r%05d", i);
        snprintf(user, sizeof user, "u%d", i);
        if (create(s, id, user, user, "p", i % 10 != 0, 16) != 0) {
            CHECK(0);
            break;
        }
    }
    /* Remove every fourth room, so that the list has holes. */
    for (int i = 0; i < 10000; i += 4) {
        snprintf(id, sizeof id, "r%05d", i);
        CHECK_EQ_INT(leave(s, id, "p"), 0);
    }
    char cursor[PL_CURSOR_MAX + 1] = "";
    size_t total = 0;
    pl_room_t prev;
    bool have_prev = false, ordered = true;
    for (int pages = 0; pages < 1000; pages++) {
        if (list(s, 50, cursor) != 0) {
            CHECK(0);
            break;
        }
        for (size_t i = 0; i < R.nrooms; i++) {
            if (have_prev && !listed_before(&prev, &R.rooms[i]))
                ordered = false;
            prev = R.rooms[i];
            have_prev = true;
        }
        total += R.nrooms;
        snprintf(cursor, sizeof cursor, "%s", R.cursor);
        if (!cursor[0])
            break;
    }
    CHECK(ordered);
    /* 9000 public, less the 2000 public ones among the 2500 removed. */
    CHECK_EQ_INT(total, 7000);
    fx_close(&fx);
}

static void test_inbox_max(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.inbox_max = 3;
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c1", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c2", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c3", "{}"), 0);
    clear_inbox_notes();
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c4", "{}"), PL_ELIMIT);
    settle();
    CHECK_EQ_INT(ninbox, 0);
    /* Other inboxes are unaffected. */
    CHECK_EQ_INT(push(s, "room1", "p2", "p1", PL_ENV_CANDIDATE, "d1", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 1), 0);
    /* (d1 is taken too: the count of expired envelopes below is p2's alone. An engine may
     * count another inbox's expired envelopes as soon as it notices the room has some due.) */
    CHECK_EQ_INT(pop(s, "room1", "p1", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c4", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c5", "{}"), PL_ELIMIT);
    /* Expired envelopes do not hold the inbox full, and pops skip them. */
    fake_now += 30 * 1000;
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c6", "{}"), 0);
    CHECK_EQ_INT(stats(s).signals_expired, 3);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 1);
    CHECK_EQ_STR(R.envs[0].id, "c6");
    fx_close(&fx);
}

static void test_inbox_bytes_and_senders(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.inbox_bytes_max = 10;
    o.inbox_per_sender_max = 2;
    o.queued_bytes_max = 16;
    REQUIRE(open_room1(&fx, &o, 3));
    pl_store_t *s = fx.s;

    /* One envelope larger than an inbox holds is refused even by an empty one. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p3", PL_ENV_CANDIDATE, "big", "12345678901"), PL_ELIMIT);
    /* One sender: two envelopes, then its share of p2's inbox is used up... */
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "a1", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "a2", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "a3", "{}"), PL_ELIMIT);
    /* ...but another sender still gets through. */
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "b1", "{}"), 0);
    /* Bytes per inbox: 6 of 10 used; 5 more do not fit, 4 do. */
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "b2", "{\"x\"}"), PL_ELIMIT);
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "b3", "[12]"), 0);
    /* The whole store holds 10 of 16 bytes: p3's own inbox takes 6, then it is full. */
    CHECK_EQ_INT(push(s, "room1", "p1", "p3", PL_ENV_CANDIDATE, "c1", "123456"), 0);
    CHECK_EQ_INT(push(s, "room1", "p2", "p1", PL_ENV_CANDIDATE, "c2", "1"), PL_ELIMIT);
    /* Taking envelopes out gives the bytes back. */
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    CHECK_EQ_INT(R.nenvs, 4);
    CHECK_EQ_INT(push(s, "room1", "p2", "p1", PL_ENV_CANDIDATE, "c3", "1234"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "a4", "{}"), 0);
    /* Leaving frees the leaver's inbox and its bytes. */
    CHECK_EQ_INT(leave(s, "room1", "p3"), 0);
    CHECK_EQ_INT(push(s, "room1", "p2", "p1", PL_ENV_CANDIDATE, "c4", "123456"), 0);
    fx_close(&fx);
}

/* The three inbox limits at once: a second sender within its own share is still refused by
 * the inbox's count, and expired envelopes free every limit. */
static void test_inbox_limits_together(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.inbox_max = 3;
    o.inbox_bytes_max = 100;
    o.inbox_per_sender_max = 2;
    REQUIRE(open_room1(&fx, &o, 3));
    pl_store_t *s = fx.s;
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "a", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "b", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "c", "{}"), PL_ELIMIT);
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "c", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "d", "{}"), PL_ELIMIT);
    char big[128];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(push(s, "room1", "p1", "p3", PL_ENV_CANDIDATE, "e", big), PL_ELIMIT);
    fake_now += 30 * 1000;
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "f", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_CANDIDATE, "g", "{}"), 0);
    CHECK_EQ_INT(push(s, "room1", "p3", "p2", PL_ENV_CANDIDATE, "h", "{}"), 0);
    CHECK_EQ_INT(pop(s, "room1", "p2", PL_ENV_ALL, 10), 0);
    REQUIRE(R.nenvs == 3);
    CHECK_EQ_STR(R.envs[0].id, "f");
    CHECK_EQ_STR(R.envs[2].id, "h");
    CHECK_EQ_INT(stats(s).signals_expired, 3);
    fx_close(&fx);
}

static void test_rooms_max(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.rooms_max = 3;
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(create(s, "room1", "u1", "a", "p1", true, 16), 0);
    CHECK_EQ_INT(create(s, "room2", "u2", "b", "p2", true, 16), 0);
    CHECK_EQ_INT(create(s, "room3", "u3", "c", "p3", false, 16), 0);
    CHECK_EQ_INT(create(s, "room4", "u4", "d", "p4", true, 16), PL_ELIMIT);
    /* The idempotent path is not a new room. */
    CHECK_EQ_INT(create(s, "room5", "u1", "a", "p5", true, 16), 0);
    CHECK(!R.created);
    CHECK_EQ_INT(leave(s, "room2", "p2"), 0);
    CHECK_EQ_INT(create(s, "room4", "u4", "d", "p4", true, 16), 0);
    CHECK_EQ_INT(create(s, "room6", "u6", "e", "p6", true, 16), PL_ELIMIT);
    /* Rooms whose TTL ran out do not count, sweep or no sweep. */
    fake_now += 3600 * 1000;
    CHECK_EQ_INT(create(s, "room6", "u6", "e", "p6", true, 16), 0);
    CHECK_EQ_INT(nroom_notes, 3);
    CHECK_EQ_INT(stats(s).rooms, 1);
    fx_close(&fx);
}

static void test_on_inbox(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 3));
    pl_store_t *s = fx.s;

    CHECK_EQ_INT(create(s, "room2", "u9", "bob", "p1", true, 16), 0);

    clear_inbox_notes();
    CHECK_EQ_INT(push(s, "room1", "p1", "p2", PL_ENV_OFFER, "o1", "{}"), 0);
    wait_inbox(1);
    REQUIRE(ninbox == 1);
    CHECK_EQ_STR(inbox_notes[0].room, "room1");
    CHECK_EQ_STR(inbox_notes[0].peer, "p2");
    /* The memory engine runs the callback first, then the notification (memory.c promises
     * it). The redis engine cannot: the reply and the subscription's message arrive on two
     * sockets that redis writes in the same turn, and either may be read first (here the
     * notification came first in about one run in four), so there the order is not checked. */
    if (!store_engine->deferred)
        CHECK(R.seq < inbox_notes[0].seq);

    /* A server-originated open offer reaches every member. */
    clear_inbox_notes();
    CHECK_EQ_INT(push(s, "room1", NULL, NULL, PL_ENV_OFFER, "srv", "{}"), 0);
    wait_inbox(3);
    REQUIRE(ninbox == 3);
    CHECK_EQ_STR(inbox_notes[0].peer, "p1");
    CHECK_EQ_STR(inbox_notes[1].peer, "p2");
    CHECK_EQ_STR(inbox_notes[2].peer, "p3");
    if (!store_engine->deferred)
        CHECK(R.seq < inbox_notes[0].seq);
    clear_inbox_notes();
    CHECK_EQ_INT(push(s, "room1", "p3", NULL, PL_ENV_OFFER, "o3", "{}"), 0);
    wait_inbox(2);
    REQUIRE(ninbox == 2);
    CHECK_EQ_STR(inbox_notes[0].peer, "p1");
    CHECK_EQ_STR(inbox_notes[1].peer, "p2");

    /* Failed pushes notify nobody. */
    clear_inbox_notes();
    CHECK_EQ_INT(push(s, "room1", "p1", "zz", PL_ENV_OFFER, "x", "{}"), PL_ENOTFOUND);
    CHECK_EQ_INT(push(s, "room2", "p2", "p1", PL_ENV_OFFER, "x", "{}"), PL_EFORBIDDEN);
    settle();
    CHECK_EQ_INT(ninbox, 0);
    fx_close(&fx);
}

/* What the server's handlers do: push from inside a join callback; and the listener
 * pushing peer-left from inside an expiry notification. */
static pl_store_t *cb_store;
static int reentrant_pushes;

static void join_then_push_cb(void *ud, int status, const pl_room_t *room,
                              const pl_member_t *member, const pl_member_t *peers, size_t npeers)
{
    (void)ud;
    R.calls++;
    R.status = status;
    if (status != 0)
        return;
    for (size_t i = 0; i < npeers; i++) {
        pl_envelope_t env = {
            .id = "req", .type = PL_ENV_OFFER_REQUEST, .json = "{}", .json_len = 2};
        snprintf(env.from, sizeof env.from, "%s", member->peer_id);
        if (cb_store->push(cb_store, room->id, NULL, peers[i].peer_id, &env, push_status_cb,
                           NULL) == 0)
            reentrant_pushes++;
    }
}

static void test_reentrancy(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    cb_store = s;
    reentrant_pushes = 0;

    CHECK_EQ_INT(create(s, "room1", "u1", "alice", "p1", true, 16), 0);
    CHECK_EQ_INT(join(s, "room1", NULL, "p2", "u2"), 0);
    pl_store_join_req_t req = {.room_id = "room1"};
    snprintf(req.member.peer_id, sizeof req.member.peer_id, "p3");
    R.calls = 0;
    CHECK_EQ_INT(s->join_room(s, &req, join_then_push_cb, NULL), 0);
    CHECK(wait_calls());
    CHECK_EQ_INT(R.status, 0);
    CHECK_EQ_INT(reentrant_pushes, 2);
    CHECK_EQ_INT(pop(s, "room1", "p1", PL_ENV_OFFER_REQUEST, 10), 0);
    CHECK_EQ_INT(R.nenvs, 1);

    reenter_store = s;
    fake_now += 60 * 1000;
    CHECK_EQ_INT(heartbeat(s, "room1", "p1"), 0);
    fake_now += 31 * 1000;
    sweep(s);
    CHECK_EQ_INT(nmember_notes, 2);
    CHECK_EQ_INT(pop(s, "room1", "p1", PL_ENV_PEER_LEFT, 10), 0);
    CHECK_EQ_INT(R.nenvs, 2);
    reenter_store = NULL;
    fx_close(&fx);
}

/* The engine's own timer sweeps without being asked (both engines sweep once a second). */
static void test_timer_sweep(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(open_room1(&fx, &o, 2));
    pl_store_t *s = fx.s;

    fake_now += 90 * 1000;
    SPIN_UNTIL(3000, nmember_notes >= 2);
    settle();
    CHECK_EQ_INT(nmember_notes, 2);
    CHECK_EQ_INT(stats(s).rooms, 0);
    fx_close(&fx);
}

/* Destroying a store that holds rooms, members, queued envelopes, open offers and rate
 * counters: ASan's leak check at exit covers what the engine kept in the process. */
static void test_destroy_with_live_state(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    char id[PL_ID_SIZE], user[32], peer[PL_ID_SIZE];

    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "room%d", i);
        snprintf(user, sizeof user, "u%d", i);
        CHECK_EQ_INT(create(s, id, user, user, "b", i % 2 == 0, 16), 0);
        for (int k = 0; k < 4; k++) {
            snprintf(peer, sizeof peer, "m%d", k);
            CHECK_EQ_INT(join(s, id, NULL, peer, "viewer"), 0);
            CHECK_EQ_INT(push(s, id, "b", peer, PL_ENV_OFFER, "o", "{\"sdp\":\"...\"}"), 0);
        }
        CHECK_EQ_INT(push(s, id, "m0", NULL, PL_ENV_OFFER, "open", "{}"), 0);
        CHECK_EQ_INT(rate(s, user, 60000), 0);
    }
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 50);
    CHECK_EQ_INT(st.members, 250);
    CHECK_EQ_INT(st.signals_queued, 250);
    fx_close(&fx);
}

/* Random operations with a seeded generator: ASan checks the memory handling, and the
 * counters must agree with what the rooms themselves report. */
static uint64_t rnd_state;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % n);
}

static void test_random_ops(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.room_ttl_s = 120;
    o.member_ttl_s = 40;
    o.signal_ttl_s = 10;
    o.inbox_max = 8;
    o.rooms_max = 6;
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    char rid[PL_ID_SIZE], peer[PL_ID_SIZE], other[PL_ID_SIZE], user[32];
    rnd_state = 0x1234567887654321ull; /* the same sequence on every engine */

    for (int step = 0; step < 20000; step++) {
        snprintf(rid, sizeof rid, "r%u", rnd(8));
        snprintf(peer, sizeof peer, "p%u", rnd(6));
        snprintf(other, sizeof other, "p%u", rnd(6));
        snprintf(user, sizeof user, "u%u", rnd(10));
        switch (rnd(12)) {
        case 0:
            create(s, rid, user, user, peer, rnd(2), 1 + rnd(8));
            break;
        case 1:
            join(s, rnd(4) ? rid : NULL, user, peer, user);
            break;
        case 2:
            leave(s, rid, peer);
            break;
        case 3:
            heartbeat(s, rid, peer);
            break;
        case 4:
        case 5:
            push(s, rid, rnd(5) ? peer : NULL, rnd(4) ? other : NULL, (pl_env_type_t)(1u << rnd(8)),
                 "e", "{\"x\":1}");
            break;
        case 6:
        case 7:
            pop(s, rid, peer, rnd(256), rnd(5));
            break;
        case 8:
            fake_now += rnd(2000);
            break;
        case 9:
            if (rnd(10) == 0)
                sweep(s);
            break;
        case 10:
            list(s, 1 + rnd(7), rnd(2) ? R.cursor : NULL);
            break;
        default:
            rate(s, user, 1 + rnd(3000));
            break;
        }
        if (step % 500 == 0) {
            sweep(s);
            uint64_t rooms = 0, members = 0;
            for (int i = 0; i < 8; i++) {
                snprintf(rid, sizeof rid, "r%d", i);
                if (get_members(s, rid) == 0) {
                    rooms++;
                    members += R.npeers;
                    CHECK_EQ_INT(R.room.participant_count, R.npeers);
                    CHECK(R.npeers > 0);
                }
            }
            pl_store_stats_t st = stats(s);
            CHECK_EQ_INT(st.rooms, rooms);
            CHECK_EQ_INT(st.members, members);
        }
    }
    /* Once every TTL has run out, nothing is left. */
    fake_now += 200 * 1000;
    sweep(s);
    pl_store_stats_t st = stats(s);
    CHECK_EQ_INT(st.rooms, 0);
    CHECK_EQ_INT(st.members, 0);
    CHECK_EQ_INT(st.signals_queued, 0);
    CHECK(st.signals_delivered > 0);
    CHECK(st.signals_expired > 0);
    fx_close(&fx);
}

/* shared_secret: random, the same for every call with that name, distinct per name. */
static void test_shared_secret(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    unsigned char first[32], zero[32] = {0};
    secret_calls = 0;
    CHECK_EQ_INT(secret(s, "signaling", 32), 0);
    CHECK_EQ_INT(secret_calls, 1);
    CHECK_EQ_INT((int)secret_len, 32);
    memcpy(first, secret_buf, 32);
    CHECK(memcmp(first, zero, 32) != 0);
    CHECK_EQ_INT(secret(s, "signaling", 32), 0);
    CHECK_EQ_INT(secret_calls, 2);
    CHECK_EQ_INT((int)secret_len, 32);
    CHECK(memcmp(first, secret_buf, 32) == 0);
    /* Another length for the same name: the stored secret as it is. */
    CHECK_EQ_INT(secret(s, "signaling", 16), 0);
    CHECK_EQ_INT((int)secret_len, 32);
    CHECK(memcmp(first, secret_buf, 32) == 0);
    CHECK_EQ_INT(secret(s, "other", 32), 0);
    CHECK_EQ_INT(secret_calls, 4);
    CHECK(memcmp(first, secret_buf, 32) != 0);
    CHECK_EQ_INT(s->shared_secret(s, "", 32, secret_cb, NULL), PL_EINVAL);
    CHECK_EQ_INT(s->shared_secret(s, "x", 0, secret_cb, NULL), PL_EINVAL);
    CHECK_EQ_INT(s->shared_secret(s, "x", PL_SECRET_LEN_MAX + 1, secret_cb, NULL), PL_EINVAL);
    settle();
    CHECK_EQ_INT(secret_calls, 4);
    fx_close(&fx);
}

/* Custom emoji: binary-safe images, names unique per domain, lists in upload order, the
 * per-domain bound, delete; they outlive rooms and have no TTL. */
static void test_emoji(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    o.emoji_per_domain_max = 3;
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    unsigned char img[300];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (unsigned char)(i * 7); /* NULs and high bytes included */
    CHECK_EQ_INT(emoji_add(s, "e1", "example.com", "wave", "u1", img, sizeof img), 0);
    CHECK_EQ_STR(emoji_rec.id, "e1");
    CHECK_EQ_INT(emoji_rec.size, sizeof img);
    fake_now += 10;
    CHECK_EQ_INT(emoji_add(s, "e2", "example.com", "KEKW", "u2", img, 10), 0);
    CHECK_EQ_INT(emoji_add(s, "e3", "example.com", "wave", "u3", img, 10), PL_EEXIST);
    CHECK_EQ_INT(emoji_add(s, "e1", "other.org", "x1", "u3", img, 10), PL_EEXIST);
    /* Same name, other domain: fine. */
    CHECK_EQ_INT(emoji_add(s, "e4", "other.org", "wave", "u3", img, 1), 0);

    CHECK_EQ_INT(emoji_get(s, "e1", true), 0);
    CHECK_EQ_STR(emoji_rec.name, "wave");
    CHECK_EQ_STR(emoji_rec.domain, "example.com");
    CHECK_EQ_STR(emoji_rec.uploaded_by, "u1");
    CHECK_EQ_INT(emoji_rec.uploaded_at_ms, T0);
    CHECK_EQ_INT(emoji_rec.width, 32);
    CHECK_EQ_INT(emoji_rec.height, 24);
    CHECK(emoji_rec.animated);
    CHECK_EQ_STR(emoji_rec.content_type, "image/gif");
    CHECK_EQ_STR(emoji_rec.etag, "\"e1\"");
    CHECK_EQ_INT(emoji_rec.size, sizeof img);
    CHECK_EQ_INT(blob_len, sizeof img);
    CHECK(memcmp(blob_buf, img, sizeof img) == 0);
    CHECK_EQ_INT(emoji_get(s, "e1", false), 0);
    CHECK(blob_null);
    CHECK_EQ_INT(emoji_get(s, "nope", true), PL_ENOTFOUND);

    CHECK_EQ_INT(emoji_list(s, "example.com"), 0);
    REQUIRE(emoji_list_n == 2);
    CHECK_EQ_STR(emoji_list_buf[0].id, "e1");
    CHECK_EQ_STR(emoji_list_buf[1].id, "e2");
    CHECK_EQ_STR(emoji_list_buf[1].name, "KEKW");
    CHECK_EQ_INT(emoji_list(s, "nobody.net"), 0);
    CHECK_EQ_INT(emoji_list_n, 0);

    /* The bound: a third fits, a fourth does not; a delete makes room. */
    CHECK_EQ_INT(emoji_add(s, "e5", "example.com", "third", "u1", img, 5), 0);
    CHECK_EQ_INT(emoji_add(s, "e6", "example.com", "fourth", "u1", img, 5), PL_ELIMIT);
    CHECK_EQ_INT(emoji_del(s, "e2"), 0);
    CHECK_EQ_INT(emoji_del(s, "e2"), PL_ENOTFOUND);
    CHECK_EQ_INT(emoji_get(s, "e2", false), PL_ENOTFOUND);
    CHECK_EQ_INT(emoji_add(s, "e6", "example.com", "KEKW", "u1", img, 5), 0); /* name free */
    CHECK_EQ_INT(emoji_list(s, "example.com"), 0);
    REQUIRE(emoji_list_n == 3);
    CHECK_EQ_STR(emoji_list_buf[0].id, "e1");
    CHECK_EQ_STR(emoji_list_buf[1].id, "e5");
    CHECK_EQ_STR(emoji_list_buf[2].id, "e6");

    /* No TTL: a year on (and a sweep) they are all there. */
    fake_now += 365LL * 24 * 3600 * 1000;
    store_engine->sweep(s);
    settle();
    CHECK_EQ_INT(emoji_get(s, "e4", true), 0);
    CHECK_EQ_INT(blob_len, 1);
    CHECK_EQ_INT(s->emoji_get(s, NULL, true, emoji_cb, NULL), PL_EINVAL);
    fx_close(&fx);
}

/* The upstream cache: binary-safe values, their store time, expiry after keep_s, replace. */
static void test_cache(void)
{
    fixture_t fx;
    pl_store_opts_t o = default_opts();
    REQUIRE(fx_open(&fx, &o) == 0);
    pl_store_t *s = fx.s;
    const unsigned char v[] = {'{', 0, 0xff, '}'};
    CHECK_EQ_INT(cache_get(s, "7tv:global"), PL_ENOTFOUND);
    CHECK_EQ_INT(cache_put(s, "7tv:global", v, sizeof v, 10), 0);
    fake_now += 4000;
    CHECK_EQ_INT(cache_get(s, "7tv:global"), 0);
    CHECK_EQ_INT(blob_len, sizeof v);
    CHECK(memcmp(blob_buf, v, sizeof v) == 0);
    CHECK_EQ_INT(blob_at, T0);
    CHECK_EQ_INT(cache_put(s, "7tv:global", "new", 3, 10), 0);
    CHECK_EQ_INT(cache_get(s, "7tv:global"), 0);
    CHECK_EQ_INT(blob_len, 3);
    CHECK_EQ_INT(blob_at, T0 + 4000);
    CHECK_EQ_INT(cache_put(s, "empty", "", 0, 10), 0);
    CHECK_EQ_INT(cache_get(s, "empty"), 0);
    CHECK_EQ_INT(blob_len, 0);
    CHECK_EQ_INT(s->cache_put(s, "", v, 1, 10, status_cb, NULL), PL_EINVAL);
    CHECK_EQ_INT(s->cache_put(s, "k", v, 1, 0, status_cb, NULL), PL_EINVAL);
    char longkey[202];
    memset(longkey, 'k', 201);
    longkey[201] = '\0';
    CHECK_EQ_INT(s->cache_get(s, longkey, cache_cb, NULL), PL_EINVAL);
    /* The memory engine keeps time by the store's clock; Redis expires keys by its own,
     * so only the memory engine is moved past the expiry here. */
    if (!store_engine->deferred) {
        fake_now += 10001;
        CHECK_EQ_INT(cache_get(s, "7tv:global"), PL_ENOTFOUND);
    }
    fx_close(&fx);
}

/* Runs every scenario against engine e. */
static void run_store_scenarios(const store_engine_t *e)
{
    store_engine = e;
    RUN(test_create_join_leave);
    RUN(test_create_idempotent);
    RUN(test_join_by_name);
    RUN(test_private_room_not_joinable_by_name);
    RUN(test_full_room);
    RUN(test_push_pop_fifo_masks);
    RUN(test_open_offer);
    RUN(test_signal_ttl);
    RUN(test_member_ttl);
    RUN(test_room_ttl);
    RUN(test_room_ttl_heartbeats);
    RUN(test_heartbeat);
    RUN(test_rate_hit);
    RUN(test_list_rooms);
    RUN(test_list_rooms_order);
    RUN(test_list_rooms_many);
    RUN(test_inbox_max);
    RUN(test_inbox_bytes_and_senders);
    RUN(test_inbox_limits_together);
    RUN(test_rooms_max);
    RUN(test_on_inbox);
    RUN(test_reentrancy);
    RUN(test_timer_sweep);
    RUN(test_destroy_with_live_state);
    RUN(test_random_ops);
    RUN(test_shared_secret);
    RUN(test_emoji);
    RUN(test_cache);
}

#endif
