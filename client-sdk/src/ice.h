/* ice: a libnice agent with one stream and one component, for one session.
 *
 * Agents live on one process-wide GLib thread ("parley-ice", started with the first agent
 * and joined after the last) that runs their GMainContext. Nothing of libnice calls into
 * the session: every signal and every received datagram is copied into the session's event
 * queue (evq.h) under the session id, and the session handles them on its uv loop. The
 * pl__ice_* functions themselves are called on the session's (SDK) thread only. */
#ifndef PL_SDK_ICE_H
#define PL_SDK_ICE_H

#include <stddef.h>
#include <stdint.h>

/* Event kinds posted to the session's queue (evq.h); the pc keeps its own kinds above 100. */
enum {
    PL__ICE_EV_CANDIDATE = 1, /* data: "candidate:..." (a local candidate, NUL-terminated) */
    PL__ICE_EV_GATHERING_DONE = 2,
    PL__ICE_EV_STATE = 3, /* arg: PL__ICE_* below */
    PL__ICE_EV_DATA = 4,  /* data: one datagram from the peer */
};

/* Component states, as libnice's NiceComponentState. */
enum {
    PL__ICE_DISCONNECTED = 0,
    PL__ICE_GATHERING = 1,
    PL__ICE_CONNECTING = 2,
    PL__ICE_CONNECTED = 3,
    PL__ICE_READY = 4,
    PL__ICE_FAILED = 5,
};

typedef struct pl__ice pl__ice_t;

/* local_addresses: NULL = every non-loopback interface; stun_servers: "ip:port", the first
 * one is used (libnice takes one). controlling: the offerer controls (RFC 8445). */
int pl__ice_new(uint64_t session_id, int controlling, const char *const *local_addresses,
                const char *const *stun_servers, pl__ice_t **out);

/* Our ufrag and pwd (NUL-terminated, copied into the given buffers of 257 bytes). */
int pl__ice_local_credentials(pl__ice_t *ice, char *ufrag, char *pwd);

/* Starts gathering: candidates come as PL__ICE_EV_CANDIDATE, then PL__ICE_EV_GATHERING_DONE. */
int pl__ice_gather(pl__ice_t *ice);

int pl__ice_set_remote_credentials(pl__ice_t *ice, const char *ufrag, const char *pwd);

/* One remote candidate, "candidate:..." already checked by pl__sdp_candidate_check().
 * PARLEY_EPROTO when libnice does not take it (the session goes on). */
int pl__ice_add_remote_candidate(pl__ice_t *ice, const char *candidate);

/* The peer sent end-of-candidates: lets libnice conclude FAILED. */
void pl__ice_remote_gathering_done(pl__ice_t *ice);

/* Sends one datagram on the selected pair. PARLEY_ENOTCONN when there is none yet. */
int pl__ice_send(pl__ice_t *ice, const void *data, size_t len);

/* Enlarges the kernel buffers of the selected pair's socket (up to net.core.[rw]mem_max):
 * SCTP sends a whole congestion window at once, and the kernel's 208 KiB default drops a
 * burst of 1200-byte datagrams long before the window is reached, each drop halving it.
 * Call when ICE connects. */
void pl__ice_tune_socket(pl__ice_t *ice);

/* Detaches and hands the agent to the ICE thread to be destroyed there. Late events carry
 * the session id and find no queue. */
void pl__ice_free(pl__ice_t *ice);

#endif
