/* sig: the signaling client. It talks to parleyd for one membership at a time: create or
 * join (REST), then the WebSocket channel (libwebsockets client) or, when that is not
 * available, REST long-polls; heartbeats on its own timer; reconnection with exponential
 * backoff and jitter. It knows nothing of WebRTC: envelopes go in and out as JSON.
 *
 * Every function and callback runs on the thread of `loop` (the SDK thread); callbacks are
 * never called from inside a pl__sig_* call. */
#ifndef PL_SDK_SIG_H
#define PL_SDK_SIG_H

#include <jansson.h>
#include <uv.h>

#include "parley.h"
#include "util.h"

typedef struct pl__sig pl__sig_t;

typedef struct {
    void *ud;
    /* The membership exists: the create/join answer (its JSON body as docs/api.md shows:
     * roomId, peerId, peers, iceServers, ...), borrowed for the call. */
    void (*on_joined)(void *ud, const json_t *answer);
    /* An envelope for us (offer, answer, candidate, offer-request, peer-joined, peer-left,
     * room-closed), in the server's order, exactly once, borrowed for the call. */
    void (*on_envelope)(void *ud, const json_t *env);
    /* The channel changed state (PARLEY_SIG_*); err is why it was lost or closed, or 0. */
    void (*on_state)(void *ud, parley_sig_state state, int err);
    /* An operation failed: op "create", "join", "leave", "signal"; detail the server's
     * message or NULL. A failed create/join leaves the client unjoined. */
    void (*on_error)(void *ud, const char *op, int err, const char *detail);
    /* The leave finished (err 0) or the membership ended by itself (err < 0). */
    void (*on_left)(void *ud, int err);
} pl__sig_callbacks_t;

typedef struct {
    const char *server_url; /* http://host:port */
    const char *user_token; /* NULL: guest */
    const char *display_name;
    int mode;                /* PARLEY_SIGNALING_* */
    const pl__logger_t *log; /* NULL: warnings to stderr; must outlive the pl__sig */
} pl__sig_config_t;

int pl__sig_new(uv_loop_t *loop, const pl__sig_config_t *cfg, const pl__sig_callbacks_t *cb,
                pl__sig_t **out);
/* body: the create-room fields (customName, isPublic, topology, ...), borrowed. */
int pl__sig_create(pl__sig_t *s, const json_t *body);
/* room_id or broadcaster_name (one of them non-NULL). */
int pl__sig_join(pl__sig_t *s, const char *room_id, const char *broadcaster_name);
/* Sends a signal to a peer: type "offer", "answer" or "candidate"; fields holds the rest
 * (sdp, or candidate/sdpMid/sdpMLineIndex with candidate null for end-of-candidates), borrowed.
 * Queued in order while the channel reconnects. */
int pl__sig_send(pl__sig_t *s, const char *type, const char *to, const json_t *fields);
int pl__sig_leave(pl__sig_t *s);
/* Our peer id once joined, else NULL. */
const char *pl__sig_peer_id(const pl__sig_t *s);
/* Closes without leaving (the server lets the membership expire) and frees; no callback
 * after it returns. */
void pl__sig_free(pl__sig_t *s);

#endif
