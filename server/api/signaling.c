/* The seed's signaling endpoints: create and join rooms, post and poll offers, answers and
 * candidates, heartbeats and leaving (DESIGN section 4).
 *
 * Each handler is a short chain: parse → authenticate → rate-limit → store operation →
 * answer. Store callbacks may run before the store call returns (memory engine) or later
 * (redis), so no step touches the call after handing it to the next. */
#include "api/api.h"

#include "common/error.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_MAX     100
#define LONGPOLL_MAX_S 30

typedef struct {
    pl_store_create_req_t req;
} create_ctx_t;

typedef struct {
    pl_store_join_req_t req;
    char room_id[PL_ID_SIZE];
    char name[PL_NAME_SIZE];
} join_ctx_t;

typedef struct {
    pl_env_type_t type;
    char to[PL_ID_SIZE];
    bool has_to;
    json_t *payload; /* the sdp string or the candidate value (a reference) */
    char id[PL_ID_SIZE];
} post_ctx_t;

typedef struct {
    unsigned mask;
    bool events;
    uint32_t wait_ms;
} poll_ctx_t;

static void create_step(pl_call_t *call);
static void on_created(void *ud, int status, const pl_room_t *room, const pl_member_t *member,
                       bool created);
static void join_step_ip(pl_call_t *call);
static void join_step_store(pl_call_t *call);
static void on_joined(void *ud, int status, const pl_room_t *room, const pl_member_t *member,
                      const pl_member_t *peers, size_t npeers);
static void on_join_pushed(void *ud, int status);
static void post_signal(pl_call_t *call, pl_env_type_t type);
static void post_step(pl_call_t *call);
static void on_answer_member(void *ud, int status, const pl_room_t *room,
                             const pl_member_t *member);
static void post_push(pl_call_t *call);
static void on_post_pushed(void *ud, int status);
static void poll_signal(pl_call_t *call, unsigned mask, bool events);
static void poll_step(pl_call_t *call);
static void on_polled(void *ud, int status, const pl_envelope_t *envs, size_t n);
static void heartbeat_step(pl_call_t *call);
static void on_heartbeat(void *ud, int status, const pl_room_t *room, const pl_member_t *member);
static void leave_step(pl_call_t *call);
static void on_left(void *ud, int status, bool room_removed, const pl_member_t *remaining,
                    size_t n);
static bool body_room_id(pl_call_t *call);
static bool path_room_id(pl_call_t *call);
static json_t *session_json(pl_call_t *call, const pl_room_t *room, const pl_member_t *member);
static bool valid_text(const char *s);

/* ---- shared parsing ---- */

/* Names and custom room names are shown to other users: printable text only. */
static bool valid_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static bool body_room_id(pl_call_t *call)
{
    const char *room_id;
    if (!api_field_str(call, "roomId", true, PL_ID_LEN + 64, &room_id))
        return false;
    if (!pl_id_valid(room_id, strlen(room_id))) {
        api_error(call, 400, "invalid_request", "roomId: not a room id");
        return false;
    }
    memcpy(call->room_id, room_id, PL_ID_SIZE);
    return true;
}

static bool path_room_id(pl_call_t *call)
{
    pl_str_t p = call->match.params[0];
    if (!pl_id_valid(p.ptr, p.len)) {
        api_error(call, 404, "not_found", "room not found");
        return false;
    }
    memcpy(call->room_id, p.ptr, PL_ID_LEN);
    call->room_id[PL_ID_LEN] = '\0';
    return true;
}

/* A fresh signaling token for the member: create, join and every heartbeat hand one out. */
static int session_token(pl_call_t *call, const pl_room_t *room, const pl_member_t *member,
                         char *token, size_t size)
{
    pl_app_t *app = call->app;
    pl_sigtoken_t claims = {0};
    memcpy(claims.room_id, room->id, PL_ID_SIZE);
    memcpy(claims.peer_id, member->peer_id, PL_ID_SIZE);
    snprintf(claims.user_id, sizeof claims.user_id, "%s", member->user_id);
    snprintf(claims.name, sizeof claims.name, "%s", member->name);
    claims.exp_ms = call->now_ms + (int64_t)app->cfg->room_ttl * 1000;
    return pl_auth_sign_signaling(app->auth, &claims, token, size) < 0 ? -1 : 0;
}

/* The part of create and join responses that hands the caller its session. */
static json_t *session_json(pl_call_t *call, const pl_room_t *room, const pl_member_t *member)
{
    pl_app_t *app = call->app;
    char token[2048];
    if (session_token(call, room, member, token, sizeof token) < 0)
        return NULL;
    uint32_t hb = app->cfg->member_ttl / 3;
    return json_pack("{s:s,s:s,s:s,s:o,s:o,s:I}", "roomId", room->id, "peerId", member->peer_id,
                     "signalingToken", token, "room", api_room_json(room), "iceServers",
                     api_ice_servers(app, member->user_id, call->now_ms),
                     "heartbeatIntervalSeconds", (json_int_t)(hb ? hb : 1));
}

/* ---- create-room ---- */

void api_create_room(pl_call_t *call)
{
    pl_app_t *app = call->app;
    const pl_config_t *cfg = app->cfg;
    if (!api_auth_user(call, false))
        return;
    if (!api_parse_body(call))
        return;

    create_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    call->extra = ctx;
    call->extra_free = free;
    pl_room_t *room = &ctx->req.room;

    const char *custom = NULL;
    if (!api_field_str(call, "customName", false, PL_NAME_MAX, &custom))
        return;
    if (custom && !valid_text(custom)) {
        api_error(call, 400, "invalid_request", "customName: control characters not allowed");
        return;
    }
    snprintf(room->custom_name, sizeof room->custom_name, "%s", custom ? custom : "");

    json_t *v = json_object_get(call->body, "isPublic");
    room->is_public = true;
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            api_error(call, 400, "invalid_request", "isPublic: expected a boolean");
            return;
        }
        room->is_public = json_is_true(v);
    }

    const char *topo = NULL;
    if (!api_field_str(call, "topology", false, 16, &topo))
        return;
    room->topology = PL_TOPO_MESH;
    if (topo && pl_topology_parse(topo, &room->topology)) {
        api_error(call, 400, "invalid_request", "topology: expected mesh, star or overlay");
        return;
    }

    room->max_peers =
        room->topology == PL_TOPO_MESH ? cfg->max_peers_default : cfg->max_peers_limit;
    v = json_object_get(call->body, "maxPeers");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 2 ||
            json_integer_value(v) > (json_int_t)cfg->max_peers_limit) {
            api_error(call, 400, "invalid_request", "maxPeers: expected an integer from 2 to %u",
                      cfg->max_peers_limit);
            return;
        }
        room->max_peers = (uint32_t)json_integer_value(v);
    }

    if (pl_id_new(room->id) || pl_id_new(ctx->req.member.peer_id)) {
        api_error(call, 500, "internal", "no randomness");
        return;
    }
    snprintf(room->broadcaster_id, sizeof room->broadcaster_id, "%s", call->user.user_id);
    snprintf(room->broadcaster_name, sizeof room->broadcaster_name, "%s", call->user.name);
    snprintf(ctx->req.member.user_id, sizeof ctx->req.member.user_id, "%s", call->user.user_id);
    snprintf(ctx->req.member.name, sizeof ctx->req.member.name, "%s", call->user.name);
    api_rate(call, "create_room", call->user.user_id, &cfg->rl_create_room, create_step);
}

static void create_step(pl_call_t *call)
{
    create_ctx_t *ctx = call->extra;
    int rc = call->app->store->create_room(call->app->store, &ctx->req, on_created, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_created(void *ud, int status, const pl_room_t *room, const pl_member_t *member,
                       bool created)
{
    pl_call_t *call = ud;
    if (status) {
        api_store_error(call, status);
        return;
    }
    json_t *body = session_json(call, room, member);
    if (!body) {
        api_error(call, 500, "internal", "could not build the response");
        return;
    }
    if (created)
        pl_log_info("room created", PL_LS("room", room->id), PL_LS("user", member->user_id),
                    PL_LS("topology", pl_topology_name(room->topology)));
    api_json(call, created ? 201 : 200, body);
}

/* ---- join-room ---- */

void api_join_room(pl_call_t *call)
{
    pl_app_t *app = call->app;
    if (!api_auth_user(call, true))
        return;
    if (!api_parse_body(call))
        return;
    join_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    call->extra = ctx;
    call->extra_free = free;

    const char *room_id = NULL, *name = NULL;
    if (!api_field_str(call, "roomId", false, PL_ID_LEN + 64, &room_id) ||
        !api_field_str(call, "broadcasterName", false, PL_NAME_MAX, &name))
        return;
    if (!!room_id == !!name) {
        api_error(call, 400, "invalid_request", "give exactly one of roomId and broadcasterName");
        return;
    }
    if (room_id) {
        if (!pl_id_valid(room_id, strlen(room_id))) {
            api_error(call, 400, "invalid_request", "roomId: not a room id");
            return;
        }
        memcpy(ctx->room_id, room_id, PL_ID_SIZE);
        ctx->req.room_id = ctx->room_id;
    } else {
        snprintf(ctx->name, sizeof ctx->name, "%s", name);
        ctx->req.broadcaster_name = ctx->name;
    }
    if (pl_id_new(ctx->req.member.peer_id)) {
        api_error(call, 500, "internal", "no randomness");
        return;
    }
    snprintf(ctx->req.member.user_id, sizeof ctx->req.member.user_id, "%s", call->user.user_id);
    snprintf(ctx->req.member.name, sizeof ctx->req.member.name, "%s", call->user.name);
    api_rate(call, "join_user", call->user.user_id, &app->cfg->rl_join_user, join_step_ip);
}

static void join_step_ip(pl_call_t *call)
{
    api_rate(call, "join_ip", call->client_ip, &call->app->cfg->rl_join_ip, join_step_store);
}

static void join_step_store(pl_call_t *call)
{
    join_ctx_t *ctx = call->extra;
    int rc = call->app->store->join_room(call->app->store, &ctx->req, on_joined, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_joined(void *ud, int status, const pl_room_t *room, const pl_member_t *member,
                      const pl_member_t *peers, size_t npeers)
{
    pl_call_t *call = ud;
    pl_app_t *app = call->app;
    if (status) {
        api_store_error(call, status);
        return;
    }
    memcpy(call->room_id, room->id, PL_ID_SIZE);
    json_t *body = session_json(call, room, member);
    json_t *list = json_array();
    for (size_t i = 0; body && list && i < npeers; i++)
        json_array_append_new(list, api_peer_json(&peers[i]));
    if (!body || !list) {
        json_decref(body);
        json_decref(list);
        api_error(call, 500, "internal", "could not build the response");
        return;
    }
    json_object_set_new(body, "peers", list);
    call->result = body;

    /* Who offers to the newcomer is the topology's choice; everyone else hears that a peer
     * joined. The answer waits until every envelope is queued, so a client that polls right
     * after join sees a consistent room. */
    size_t *chosen = npeers ? calloc(npeers, sizeof *chosen) : NULL;
    bool *offers = npeers ? calloc(npeers, sizeof *offers) : NULL;
    size_t nchosen = chosen && offers ? pl_topology_choose(room, peers, npeers, chosen, npeers) : 0;
    for (size_t c = 0; c < nchosen; c++)
        offers[chosen[c]] = true;
    call->pending = 1;
    for (size_t i = 0; i < npeers; i++) {
        pl_env_type_t type = offers && offers[i] ? PL_ENV_OFFER_REQUEST : PL_ENV_PEER_JOINED;
        char id[PL_ID_SIZE];
        json_t *env = api_envelope_new(type, room->id, NULL, peers[i].peer_id, call->now_ms, id);
        if (!env)
            continue;
        json_object_set_new(env, "peer", api_peer_json(member));
        call->pending++;
        if (api_push(app, room->id, NULL, peers[i].peer_id, type, env, id, on_join_pushed, call))
            call->pending--;
    }
    free(chosen);
    free(offers);
    on_join_pushed(call, 0);
}

static void on_join_pushed(void *ud, int status)
{
    pl_call_t *call = ud;
    /* A peer whose inbox is full misses this notice; one log line per join says so, not
     * one per peer. */
    if (status && status != PL_ENOTFOUND)
        call->status = status;
    if (--call->pending > 0)
        return;
    if (call->status)
        pl_log_warn("join fan-out incomplete", PL_LS("room", call->room_id),
                    PL_LS("error", pl_strerror(call->status)));
    json_t *body = call->result;
    call->result = NULL;
    api_json(call, 200, body);
}

/* ---- offer / answer / candidate ---- */

void api_post_offer(pl_call_t *call)
{
    post_signal(call, PL_ENV_OFFER);
}

void api_post_answer(pl_call_t *call)
{
    post_signal(call, PL_ENV_ANSWER);
}

void api_post_candidate(pl_call_t *call)
{
    post_signal(call, PL_ENV_CANDIDATE);
}

static void post_free(void *p)
{
    post_ctx_t *ctx = p;
    if (ctx->payload)
        json_decref(ctx->payload);
    free(ctx);
}

static void post_signal(pl_call_t *call, pl_env_type_t type)
{
    if (!api_auth_signaling(call, NULL) || !api_parse_body(call) || !body_room_id(call) ||
        !api_same_room(call))
        return;
    post_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    ctx->type = type;
    call->extra = ctx;
    call->extra_free = post_free;

    const char *to = NULL;
    if (!api_field_str(call, "to", type == PL_ENV_CANDIDATE, PL_ID_LEN + 64, &to))
        return;
    if (to) {
        if (!pl_id_valid(to, strlen(to))) {
            api_error(call, 404, "not_found", "to: peer not in room");
            return;
        }
        if (strcmp(to, call->sig.peer_id) == 0) {
            api_error(call, 400, "invalid_request", "to: cannot signal yourself");
            return;
        }
        memcpy(ctx->to, to, PL_ID_SIZE);
        ctx->has_to = true;
    }

    if (pl_id_new(ctx->id)) {
        api_error(call, 500, "internal", "cannot make an envelope id");
        return;
    }
    if (type == PL_ENV_CANDIDATE) {
        json_t *cand = json_object_get(call->body, "candidate");
        if (!cand) {
            api_error(call, 400, "invalid_request", "candidate: required (null ends candidates)");
            return;
        }
        if (!json_is_object(cand) && !json_is_string(cand) && !json_is_null(cand)) {
            api_error(call, 400, "invalid_request",
                      "candidate: expected an object, a string or null");
            return;
        }
        ctx->payload = json_incref(cand);
    } else {
        const char *sdp;
        if (!api_field_str(call, "sdp", true, call->app->cfg->max_body, &sdp))
            return;
        ctx->payload = json_incref(json_object_get(call->body, "sdp"));
    }
    api_rate(call, "signal", call->sig.peer_id, &call->app->cfg->rl_signal, post_step);
}

static void post_step(pl_call_t *call)
{
    post_ctx_t *ctx = call->extra;
    if (ctx->type == PL_ENV_ANSWER && !ctx->has_to) {
        /* Without `to`, an answer goes to whoever sent the offer this peer took last. */
        int rc = call->app->store->get_member(call->app->store, call->room_id, call->sig.peer_id,
                                              on_answer_member, call);
        if (rc)
            api_store_error(call, rc);
        return;
    }
    post_push(call);
}

static void on_answer_member(void *ud, int status, const pl_room_t *room, const pl_member_t *member)
{
    pl_call_t *call = ud;
    post_ctx_t *ctx = call->extra;
    (void)room;
    if (status) {
        api_store_error(call, status);
        return;
    }
    if (!member->last_offer_from[0]) {
        api_error(call, 400, "invalid_request", "to: required (no offer was received)");
        return;
    }
    memcpy(ctx->to, member->last_offer_from, PL_ID_SIZE);
    ctx->has_to = true;
    post_push(call);
}

static void post_push(pl_call_t *call)
{
    post_ctx_t *ctx = call->extra;
    const char *to = ctx->has_to ? ctx->to : NULL;
    /* Written out directly rather than built as a jansson object and dumped: this is the
     * path every relayed message takes. The key order is the one clients always saw. */
    pl_buf_t text;
    pl_buf_init(&text);
    /* One allocation for the usual envelope: the head is < 200 bytes, most payloads are
     * candidates of a few hundred. */
    pl_buf_reserve(&text, 1024);
    int rc = api_envelope_head(&text, ctx->type, ctx->id, call->room_id, call->sig.peer_id, to,
                               call->now_ms);
    if (!rc)
        rc = pl_buf_appends(&text, ctx->type == PL_ENV_CANDIDATE ? ",\"candidate\":" : ",\"sdp\":")
                 ? PL_ENOMEM
                 : 0;
    if (!rc)
        rc = api_dump_value(&text, ctx->payload);
    if (!rc)
        rc = pl_buf_append(&text, "}", 1) ? PL_ENOMEM : 0;
    if (!rc)
        rc = api_push_text(call->app, call->room_id, call->sig.peer_id, to, ctx->type, text.data,
                           text.len, ctx->id, on_post_pushed, call);
    pl_buf_free(&text);
    if (rc)
        api_store_error(call, rc);
}

static void on_post_pushed(void *ud, int status)
{
    pl_call_t *call = ud;
    post_ctx_t *ctx = call->extra;
    if (status) {
        if (status == PL_ENOTFOUND && ctx->has_to)
            api_error(call, 404, "not_found", "to: peer not in room");
        else
            api_store_error(call, status);
        return;
    }
    if (!call->req && !call->ws_ref) {
        /* A socket message without `ref` gets no ack: nothing to build. */
        api_empty(call, 202);
        return;
    }
    api_json(call, 202, json_pack("{s:s}", "id", ctx->id));
}

/* ---- polling ---- */

void api_get_offer(pl_call_t *call)
{
    poll_signal(call, PL_ENV_OFFER, false);
}

void api_get_answer(pl_call_t *call)
{
    poll_signal(call, PL_ENV_ANSWER, false);
}

void api_get_events(pl_call_t *call)
{
    poll_signal(call, PL_ENV_ALL, true);
}

static void poll_signal(pl_call_t *call, unsigned mask, bool events)
{
    if (!api_auth_signaling(call, NULL) || !path_room_id(call) || !api_same_room(call))
        return;
    poll_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    ctx->mask = mask;
    ctx->events = events;
    call->extra = ctx;
    call->extra_free = free;
    char wait[16];
    if (api_query(call, "wait", wait, sizeof wait)) {
        char *end;
        long w = strtol(wait, &end, 10);
        if (!wait[0] || *end || w < 0) {
            api_error(call, 400, "invalid_request", "wait: expected whole seconds from 0 to 30");
            return;
        }
        ctx->wait_ms = (uint32_t)(w > LONGPOLL_MAX_S ? LONGPOLL_MAX_S : w) * 1000u;
    }
    api_rate(call, "poll", call->sig.peer_id, &call->app->cfg->rl_poll, poll_step);
}

static void poll_step(pl_call_t *call)
{
    poll_ctx_t *ctx = call->extra;
    int rc = call->app->store->pop(call->app->store, call->room_id, call->sig.peer_id, ctx->mask,
                                   ctx->events ? EVENTS_MAX : 1, on_polled, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_polled(void *ud, int status, const pl_envelope_t *envs, size_t n)
{
    pl_call_t *call = ud;
    poll_ctx_t *ctx = call->extra;
    if (status) {
        api_store_error(call, status);
        return;
    }
    if (n == 0 && ctx->wait_ms > 0 && !call->app->shutting_down) {
        unsigned mask = ctx->mask;
        bool events = ctx->events;
        uint32_t wait_ms = ctx->wait_ms;
        /* The hub takes over call->extra for its waiter. */
        free(ctx);
        call->extra = NULL;
        call->extra_free = NULL;
        pl_hub_wait(call->app->hub, call, call->sig.peer_id, mask, wait_ms, events);
        return;
    }
    api_answer_envelopes(call, envs, n, ctx->events);
}

/* ---- heartbeat ---- */

void api_heartbeat(pl_call_t *call)
{
    if (!api_auth_signaling(call, NULL) || !api_parse_body(call) || !body_room_id(call) ||
        !api_same_room(call))
        return;
    api_rate(call, "signal", call->sig.peer_id, &call->app->cfg->rl_signal, heartbeat_step);
}

static void heartbeat_step(pl_call_t *call)
{
    int rc = call->app->store->heartbeat(call->app->store, call->room_id, call->sig.peer_id,
                                         on_heartbeat, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_heartbeat(void *ud, int status, const pl_room_t *room, const pl_member_t *member)
{
    pl_call_t *call = ud;
    if (status) {
        api_store_error(call, status);
        return;
    }
    /* The store's heartbeat answer fills only the room's id, expiry and participant count
     * and the member's expiry (store.h): the session's other parts (room, ICE servers) are
     * not built again, and the new token carries the claims of the one presented, which was
     * issued for this member (peer ids are never reused). */
    pl_member_t self = {0};
    memcpy(self.peer_id, call->sig.peer_id, PL_ID_SIZE);
    snprintf(self.user_id, sizeof self.user_id, "%s", call->sig.user_id);
    snprintf(self.name, sizeof self.name, "%s", call->sig.name);
    char token[2048];
    if (session_token(call, room, &self, token, sizeof token) < 0) {
        api_error(call, 500, "internal", "could not build the response");
        return;
    }
    json_t *body = json_pack("{s:s,s:I,s:o,s:s}", "roomId", room->id, "participantCount",
                             (json_int_t)room->participant_count, "expiresAt",
                             api_iso_time(member->expires_at_ms), "signalingToken", token);
    api_json(call, 200, body);
}

/* ---- leave-room ---- */

void api_leave_room(pl_call_t *call)
{
    if (!api_auth_signaling(call, NULL) || !api_parse_body(call) || !body_room_id(call) ||
        !api_same_room(call))
        return;
    api_rate(call, "signal", call->sig.peer_id, &call->app->cfg->rl_signal, leave_step);
}

static void leave_step(pl_call_t *call)
{
    int rc = call->app->store->leave_room(call->app->store, call->room_id, call->sig.peer_id,
                                          on_left, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_left(void *ud, int status, bool room_removed, const pl_member_t *remaining, size_t n)
{
    pl_call_t *call = ud;
    if (status) {
        api_store_error(call, status);
        return;
    }
    pl_member_t leaver = {0};
    memcpy(leaver.peer_id, call->sig.peer_id, PL_ID_SIZE);
    snprintf(leaver.user_id, sizeof leaver.user_id, "%s", call->sig.user_id);
    snprintf(leaver.name, sizeof leaver.name, "%s", call->sig.name);
    api_fanout_peer_left(call->app, call->room_id, &leaver, remaining, n);
    /* A socket the peer still holds has nothing left to carry. (Over the socket itself the
     * reply closes it instead.) */
    pl_hub_sink_t *sink = pl_hub_sink_for(call->app->hub, call->room_id, call->sig.peer_id);
    if (call->req && sink && sink->end)
        sink->end(sink, 1000, "left", NULL);
    if (room_removed)
        pl_log_info("room closed", PL_LS("room", call->room_id), PL_LS("reason", "empty"));
    api_empty(call, 204);
}
