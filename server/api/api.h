/* The REST API: the application context shared by every handler, and the helpers handlers
 * use to parse, authenticate, rate-limit and answer. Handlers live in signaling.c (the
 * seed's signaling endpoints), rooms.c (listing) and ops.c (health and metrics); the
 * long-poll waiters and the fan-out of store notifications live in hub.c. */
#ifndef PL_API_H
#define PL_API_H

#include "auth/auth.h"
#include "config.h"
#include "http/router.h"
#include "http/server.h"
#include "metrics.h"
#include "net/netpolicy.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

typedef struct pl_hub pl_hub_t;
typedef struct pl_ws pl_ws_t;
typedef struct pl_emotes pl_emotes_t;

typedef struct pl_app {
    uv_loop_t *loop;
    const pl_config_t *cfg;
    pl_store_t *store;
    pl_auth_t *auth;
    pl_http_server_t *http;
    pl_metrics_t *metrics;
    pl_hub_t *hub;
    pl_ws_t *ws;
    pl_emotes_t *emotes;
    pl_netpolicy_t net;
    bool shutting_down;
} pl_app_t;

typedef struct pl_call pl_call_t;
typedef void (*pl_call_fn)(pl_call_t *call);

/* Per-request state of an API call, freed in one place when the response is sent. */
struct pl_call {
    pl_app_t *app;
    pl_http_req_t *req;
    pl_route_match_t match;
    json_t *body;      /* parsed JSON body (object), or NULL */
    pl_sigtoken_t sig; /* after api_auth_signaling */
    char client_ip[64];
    char room_id[PL_ID_SIZE];
    int64_t now_ms;
    /* Rate-limit chaining. */
    pl_call_fn rate_next;
    const char *rate_scope;
    uint32_t rate_limit;
    /* The tightest limit seen so far (a join counts per user and per IP): its headers are
     * the ones the client gets. */
    bool rl_seen;
    uint32_t rl_limit;
    uint64_t rl_remaining;
    int64_t rl_reset_s;
    /* A call that did not come over HTTP (a WebSocket message): req is NULL, sig was checked
     * when the socket opened (preauth), and every answer goes to reply(), which takes the
     * body (or NULL) and must not free the call. */
    bool preauth;
    bool token_given; /* a token came some other way than the Authorization header */
    void (*reply)(pl_call_t *call, int status, json_t *body);
    uint64_t reply_id;
    const char *ws_type; /* "signal", "heartbeat" or "leave" */
    json_t *ws_ref;      /* the client's ref, echoed in acks and errors */
    /* Handler scratch. */
    int pending;
    int status;
    json_t *result;
    void *extra;
    void (*extra_free)(void *);
    /* Last: pl_api_handle clears the call only up to user.domains (4 KB nobody reads
     * before a user token filled them). */
    pl_identity_t user; /* after api_auth_user */
};

/* ---- wiring (api.c) ---- */

int pl_api_init(pl_app_t *app);
/* A zeroed call (but for user.domains, see the struct), or NULL; freed by call_finish. */
pl_call_t *pl_call_new(void);
/* Frees the calls kept for reuse (at shutdown). */
void pl_api_drain_pool(void);
void pl_api_free(pl_app_t *app);
/* The pl_http_opts_t handler and completion hooks. */
void pl_api_handle(void *ud, pl_http_req_t *req);
void pl_api_complete(void *ud, pl_http_req_t *req, int status, double seconds);
/* Shutdown: answers every waiting long-poll now. */
void pl_api_shutdown(pl_app_t *app);

/* ---- answering (api.c); each ends the call ---- */

void api_json(pl_call_t *call, int status, json_t *body); /* steals body */
void api_error(pl_call_t *call, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void api_empty(pl_call_t *call, int status);
/* Frees a call whose request was answered some other way (a WebSocket take-over). */
void api_call_free(pl_call_t *call);
void api_answer_text(pl_call_t *call, int status, const char *content_type, const char *text,
                     size_t len);
/* Answers popped envelopes: one envelope as the body (n == 1, !events), {events:[...]}
 * (events), or nothing: 204 (!events) / 200 {events:[]} (events). */
void api_answer_envelopes(pl_call_t *call, const pl_envelope_t *envs, size_t n, bool events);
/* Maps a store status (PL_ENOTFOUND...) to the API error. */
void api_store_error(pl_call_t *call, int status);

/* ---- request parsing (api.c) ---- */

/* Parses the body as a JSON object; on failure answers 400/415 and returns false. */
bool api_parse_body(pl_call_t *call);
/* Reads a string field: required or optional; max bytes; answers 400 on a bad one. Returns
 * false when the call was answered. *out is NULL for an absent optional field. */
bool api_field_str(pl_call_t *call, const char *name, bool required, size_t max, const char **out);
/* A query parameter, percent-decoded into out. Returns false when absent. */
bool api_query(const pl_call_t *call, const char *name, char *out, size_t cap);

/* ---- auth (api.c) ---- */

/* Verifies the bearer user token (or makes a guest when allowed and there is no token).
 * Answers 401 and returns false on failure. */
bool api_auth_user(pl_call_t *call, bool guests_ok);
/* Verifies the bearer signaling token and, unless room_id is NULL, that it is for room_id.
 * Answers 401/403 and returns false on failure. */
bool api_auth_signaling(pl_call_t *call, const char *room_id);
/* After api_auth_signaling(call, NULL) and parsing call->room_id: answers 403 and returns
 * false when the token is for another room. */
bool api_same_room(pl_call_t *call);
/* Like api_auth_signaling but without answering: true when a valid token for room_id is
 * present. */
bool api_has_signaling_for(pl_call_t *call, const char *room_id);

/* ---- rate limits (api.c) ---- */

/* Counts one event for (scope, subject) against rate and calls next(call) when allowed;
 * answers 429 otherwise. A disabled rate (limit 0) calls next at once. */
void api_rate(pl_call_t *call, const char *scope, const char *subject, const pl_rate_t *rate,
              pl_call_fn next);

/* ---- shared builders (envelope.c) ---- */

json_t *api_room_json(const pl_room_t *room);
json_t *api_peer_json(const pl_member_t *m);
json_t *api_ice_servers(pl_app_t *app, const char *user_id, int64_t now_ms);
/* A new envelope object {type, id, roomId, from, to, ts}; from/to NULL → JSON null. Writes
 * the fresh id into id_out (PL_ID_SIZE). */
json_t *api_envelope_new(pl_env_type_t type, const char *room_id, const char *from, const char *to,
                         int64_t ts, char *id_out);
/* Serializes env_json and pushes it; cb as the store's. Steals env_json. */
/* The start of an envelope's text, {"type":..,"id":..,"roomId":..,"from":..,"to":..,"ts":..
 * without the closing brace, in the key order api_envelope_new gives. Ids are base64url (no
 * escaping needed); from/to may be NULL (null). Returns 0 or PL_ENOMEM. */
int api_envelope_head(pl_buf_t *b, pl_env_type_t type, const char *id, const char *room_id,
                      const char *from, const char *to, int64_t ts);
/* Appends the compact JSON of v (any value). Returns 0 or PL_ENOMEM. */
int api_dump_value(pl_buf_t *b, const json_t *v);
/* api_push for an envelope already serialized (text, len bytes). */
int api_push_text(pl_app_t *app, const char *room_id, const char *from, const char *to,
                  pl_env_type_t type, const char *text, size_t len, const char *id,
                  pl_store_status_cb cb, void *ud);
int api_push(pl_app_t *app, const char *room_id, const char *from, const char *to,
             pl_env_type_t type, json_t *env_json, const char *id, pl_store_status_cb cb, void *ud);
/* Sends `peer-left` for member to every peer in remaining (fire and forget). */
void api_fanout_peer_left(pl_app_t *app, const char *room_id, const pl_member_t *member,
                          const pl_member_t *remaining, size_t n);
/* Writes the ISO 8601 form of ms into a JSON string. */
json_t *api_iso_time(int64_t ms);
/* Picks the existing peers a newcomer is offered to (topology.c). Writes indexes into
 * peers[] into out (cap entries) and returns how many. */
size_t pl_topology_choose(const pl_room_t *room, const pl_member_t *peers, size_t n, size_t *out,
                          size_t cap);

/* ---- handlers ---- */

void api_create_room(pl_call_t *call);
void api_join_room(pl_call_t *call);
void api_post_offer(pl_call_t *call);
void api_post_answer(pl_call_t *call);
void api_post_candidate(pl_call_t *call);
void api_get_offer(pl_call_t *call);
void api_get_answer(pl_call_t *call);
void api_get_events(pl_call_t *call);
void api_heartbeat(pl_call_t *call);
void api_leave_room(pl_call_t *call);
void api_list_rooms(pl_call_t *call);
void api_get_room(pl_call_t *call);
void api_healthz(pl_call_t *call);
void api_readyz(pl_call_t *call);
void api_metrics(pl_call_t *call);
/* Custom emoji (emoji.c). */
void api_emoji_list(pl_call_t *call);
void api_emoji_upload(pl_call_t *call);
void api_emoji_get(pl_call_t *call);
void api_emoji_delete(pl_call_t *call);
/* Largest request body a route takes (the HTTP server's body_limit hook): an emoji upload
 * may be bigger than a JSON body. */
uint32_t pl_api_body_limit(void *ud, const pl_http_req_t *req);
/* Appends the custom emoji counters to a /metrics answer. */
void pl_api_emoji_metrics(pl_buf_t *out);

/* ---- 7TV emotes (emotes.c): a caching proxy of 7TV's API ---- */

/* The upstream client (libcurl's multi interface on app->loop). */
int pl_emotes_new(pl_app_t *app, pl_emotes_t **out);
/* Shutdown: stops every transfer in flight; the calls waiting on them are answered 503. */
void pl_emotes_shutdown(pl_emotes_t *e);
/* Frees it once the loop has run the close callbacks of its handles (after shutdown). */
void pl_emotes_free(pl_emotes_t *e);
void api_emotes_7tv_global(pl_call_t *call);
void api_emotes_7tv_set(pl_call_t *call);
void api_emotes_7tv_user(pl_call_t *call);

/* ---- hub (hub.c): long-polls and store notifications ---- */

/* A push subscriber for one (room, peer): a WebSocket session embeds one. wake() is called
 * from a loop callback (never inside a store operation) when envelopes wait for the peer. */
typedef struct pl_hub_sink pl_hub_sink_t;
struct pl_hub_sink {
    void (*wake)(pl_hub_sink_t *sink);
    /* The peer's membership ended (it left over REST, or its room closed): send `last`
     * (a serialized envelope, or NULL) and close with code. */
    void (*end)(pl_hub_sink_t *sink, int code, const char *why, const char *last);
    /* Optional. env NULL: whether the sink takes an envelope straight from a push now;
     * otherwise takes env (true) or refuses it (false: it is queued in the inbox instead). */
    bool (*take)(pl_hub_sink_t *sink, const pl_envelope_t *env);
    /* Owned by the hub while attached. */
    pl_hub_sink_t *check_prev, *check_next;
    bool attached, queued;
    char key[2 * PL_ID_SIZE + 1];
};

int pl_hub_new(pl_app_t *app, pl_hub_t **out);
void pl_hub_free(pl_hub_t *hub);
/* The store listener that feeds the hub. */
pl_store_listener_t pl_hub_listener(pl_hub_t *hub);
/* Parks call until an envelope matching mask arrives for (room, peer) or wait_ms passes;
 * then pops and answers. events: answer {events:[...]} rather than one envelope. */
void pl_hub_wait(pl_hub_t *hub, pl_call_t *call, const char *peer_id, unsigned mask,
                 uint32_t wait_ms, bool events);
size_t pl_hub_waiting(const pl_hub_t *hub);
/* Attaches sink for (room, peer). A sink already attached there is detached and returned
 * (the caller closes its socket: one push channel per peer), else NULL. */
pl_hub_sink_t *pl_hub_attach(pl_hub_t *hub, pl_hub_sink_t *sink, const char *room_id,
                             const char *peer_id);
void pl_hub_detach(pl_hub_t *hub, pl_hub_sink_t *sink);
/* The sink attached for (room, peer), or NULL. */
pl_hub_sink_t *pl_hub_sink_for(pl_hub_t *hub, const char *room_id, const char *peer_id);
/* Queues sink for a wake() on the next loop turn (e.g. after its queue drained). */
void pl_hub_poke(pl_hub_t *hub, pl_hub_sink_t *sink);
/* Answers every parked call (204 / empty events). */
void pl_hub_flush(pl_hub_t *hub);

#endif
