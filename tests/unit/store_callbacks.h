/* What the store tests share: a fake clock, one global that every store callback records
 * into (R), and the callbacks themselves. Included by store_fixture.h, on which the
 * scenarios of store_scenarios.h and the engine-specific tests of test_store_memory.c and
 * test_store_redis.c drive the two engines through the same interface. */
#ifndef PL_TEST_STORE_CALLBACKS_H
#define PL_TEST_STORE_CALLBACKS_H

#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define T0   1700000000000LL /* a plausible epoch-ms start for the fake clock */
#define MAXN 64

static int64_t fake_now;

static int64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

/* ---- what callbacks and notifications saw ---- */

typedef struct {
    int calls;
    int status;
    int seq; /* value of `seq` when the callback ran, to check ordering */
    bool created;
    bool room_removed;
    pl_room_t room;
    pl_member_t member;
    pl_member_t peers[MAXN];
    size_t npeers;
    pl_envelope_t envs[MAXN];
    char json[MAXN][256];
    size_t nenvs;
    pl_room_t rooms[MAXN];
    size_t nrooms;
    char cursor[PL_CURSOR_MAX + 1];
    uint64_t count;
    int64_t reset_ms;
    pl_store_stats_t stats;
} result_t;

typedef struct {
    char room[PL_ID_SIZE];
    char peer[PL_ID_SIZE];
    int seq;
} inbox_note_t;

typedef struct {
    pl_room_t room;
    pl_member_t member;
    char remaining[MAXN][PL_ID_SIZE];
    size_t nremaining;
    bool room_removed;
} member_note_t;

typedef struct {
    pl_room_t room;
    char members[MAXN][PL_ID_SIZE];
    size_t n;
} room_note_t;

static result_t R;
static int seq;
static inbox_note_t inbox_notes[MAXN];
static size_t ninbox;
static member_note_t member_notes[MAXN];
static size_t nmember_notes;
static room_note_t room_notes[MAXN];
static size_t nroom_notes;

/* Set by the re-entrancy test: listener and callbacks that call back into the store. */
static pl_store_t *reenter_store;

static void reset_notes(void)
{
    memset(&R, 0, sizeof R);
    ninbox = nmember_notes = nroom_notes = 0;
}

static void on_inbox(void *ud, const char *room_id, const char *peer_id)
{
    (void)ud;
    if (ninbox < MAXN) {
        snprintf(inbox_notes[ninbox].room, PL_ID_SIZE, "%s", room_id);
        snprintf(inbox_notes[ninbox].peer, PL_ID_SIZE, "%s", peer_id);
        inbox_notes[ninbox].seq = ++seq;
        ninbox++;
    }
}

static void push_status_cb(void *ud, int status)
{
    (void)ud;
    (void)status;
}

static void on_member_expired(void *ud, const pl_room_t *room, const pl_member_t *member,
                              const pl_member_t *remaining, size_t nremaining, bool room_removed)
{
    (void)ud;
    if (nmember_notes >= MAXN)
        return;
    member_note_t *n = &member_notes[nmember_notes++];
    n->room = *room;
    n->member = *member;
    n->nremaining = nremaining;
    for (size_t i = 0; i < nremaining && i < MAXN; i++)
        snprintf(n->remaining[i], PL_ID_SIZE, "%s", remaining[i].peer_id);
    n->room_removed = room_removed;
    /* What the server does: tell the remaining peers. Calling back in must be safe. */
    if (reenter_store) {
        char json[128];
        int len = snprintf(json, sizeof json, "{\"type\":\"peer-left\",\"peer\":\"%s\"}",
                           member->peer_id);
        pl_envelope_t env = {
            .id = "left", .type = PL_ENV_PEER_LEFT, .json = json, .json_len = (size_t)len};
        for (size_t i = 0; i < nremaining; i++)
            reenter_store->push(reenter_store, room->id, NULL, remaining[i].peer_id, &env,
                                push_status_cb, NULL);
    }
}

static void on_room_expired(void *ud, const pl_room_t *room, const pl_member_t *members, size_t n)
{
    (void)ud;
    if (nroom_notes >= MAXN)
        return;
    room_note_t *note = &room_notes[nroom_notes++];
    note->room = *room;
    note->n = n;
    for (size_t i = 0; i < n && i < MAXN; i++)
        snprintf(note->members[i], PL_ID_SIZE, "%s", members[i].peer_id);
}

/* ---- callbacks ---- */

static void create_cb(void *ud, int status, const pl_room_t *room, const pl_member_t *member,
                      bool created)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.seq = ++seq;
    R.created = created;
    if (room)
        R.room = *room;
    if (member)
        R.member = *member;
}

static void join_cb(void *ud, int status, const pl_room_t *room, const pl_member_t *member,
                    const pl_member_t *peers, size_t npeers)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.seq = ++seq;
    if (room)
        R.room = *room;
    if (member)
        R.member = *member;
    R.npeers = npeers;
    for (size_t i = 0; i < npeers && i < MAXN; i++)
        R.peers[i] = peers[i];
}

static void leave_cb(void *ud, int status, bool room_removed, const pl_member_t *remaining,
                     size_t nremaining)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.seq = ++seq;
    R.room_removed = room_removed;
    R.npeers = nremaining;
    for (size_t i = 0; i < nremaining && i < MAXN; i++)
        R.peers[i] = remaining[i];
}

static void member_cb(void *ud, int status, const pl_room_t *room, const pl_member_t *member)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.seq = ++seq;
    if (room)
        R.room = *room;
    if (member)
        R.member = *member;
}

static void status_cb(void *ud, int status)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.seq = ++seq;
}

static void pop_cb(void *ud, int status, const pl_envelope_t *envs, size_t n)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.seq = ++seq;
    R.nenvs = n;
    for (size_t i = 0; i < n && i < MAXN; i++) {
        R.envs[i] = envs[i];
        size_t len = envs[i].json_len < 255 ? envs[i].json_len : 255;
        memcpy(R.json[i], envs[i].json, len);
        R.json[i][len] = '\0';
        R.envs[i].json = R.json[i];
    }
}

static void room_cb(void *ud, int status, const pl_room_t *room)
{
    (void)ud;
    R.calls++;
    R.status = status;
    if (room)
        R.room = *room;
}

static void members_cb(void *ud, int status, const pl_room_t *room, const pl_member_t *members,
                       size_t n)
{
    (void)ud;
    R.calls++;
    R.status = status;
    if (room)
        R.room = *room;
    R.npeers = n;
    for (size_t i = 0; i < n && i < MAXN; i++)
        R.peers[i] = members[i];
}

static void list_cb(void *ud, int status, const pl_room_t *rooms, size_t n, const char *next_cursor)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.nrooms = n;
    for (size_t i = 0; i < n && i < MAXN; i++)
        R.rooms[i] = rooms[i];
    snprintf(R.cursor, sizeof R.cursor, "%s", next_cursor ? next_cursor : "(null)");
}

static void rate_cb(void *ud, int status, uint64_t count, int64_t reset_ms)
{
    (void)ud;
    R.calls++;
    R.status = status;
    R.count = count;
    R.reset_ms = reset_ms;
}

static void stats_cb(void *ud, int status, const pl_store_stats_t *stats)
{
    (void)ud;
    R.calls++;
    R.status = status;
    if (stats)
        R.stats = *stats;
}

/* shared_secret: the secret is copied out; secret_calls counts every callback of a
 * scenario, so that a second one for the same call shows. */
static int secret_calls;
static unsigned char secret_buf[PL_SECRET_LEN_MAX];
static size_t secret_len;

static void secret_cb(void *ud, int status, const unsigned char *secret, size_t len)
{
    (void)ud;
    R.calls++;
    R.status = status;
    secret_calls++;
    secret_len = 0;
    if (status == 0 && secret && len <= sizeof secret_buf) {
        memcpy(secret_buf, secret, len);
        secret_len = len;
    }
}

/* Custom emoji and cache: records and bytes copied out. */
static pl_emoji_t emoji_rec;
static pl_emoji_t emoji_list_buf[MAXN];
static size_t emoji_list_n;
static unsigned char blob_buf[4096];
static size_t blob_len;
static bool blob_null;
static int64_t blob_at;

static void emoji_cb(void *ud, int status, const pl_emoji_t *e, const unsigned char *data,
                     size_t len)
{
    (void)ud;
    R.calls++;
    R.status = status;
    memset(&emoji_rec, 0, sizeof emoji_rec);
    if (e)
        emoji_rec = *e;
    blob_null = data == NULL;
    blob_len = data && len <= sizeof blob_buf ? len : 0;
    if (blob_len)
        memcpy(blob_buf, data, blob_len);
}

static void emoji_list_cb(void *ud, int status, const pl_emoji_t *list, size_t n)
{
    (void)ud;
    R.calls++;
    R.status = status;
    emoji_list_n = n <= MAXN ? n : MAXN;
    for (size_t i = 0; i < emoji_list_n; i++)
        emoji_list_buf[i] = list[i];
}

static void cache_cb(void *ud, int status, const unsigned char *data, size_t len, int64_t at)
{
    (void)ud;
    R.calls++;
    R.status = status;
    blob_null = data == NULL;
    blob_len = data && len <= sizeof blob_buf ? len : 0;
    if (blob_len)
        memcpy(blob_buf, data, blob_len);
    blob_at = at;
}

#endif
