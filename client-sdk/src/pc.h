/* pc: one WebRTC data connection to one peer (ICE by libnice, DTLS by OpenSSL, SCTP by
 * usrsctp, DCEP channels), the SDK's internal equivalent of an RTCPeerConnection with one
 * DataChannel. Signaling is not its business: it hands out its SDP and candidates through
 * callbacks and takes the peer's through calls.
 *
 * Every function and every callback runs on the thread of `loop` (the SDK thread). Threads
 * of the libraries (libnice's GLib loop, usrsctp's) never touch a pc: they queue events that
 * this loop handles, and look the pc up by id (docs/sdk.md). Callbacks never run from inside
 * a pl__pc_* call (they are deferred to the loop), so a callback may call any pl__pc_*
 * function, pl__pc_close() included. */
#ifndef PL_SDK_PC_H
#define PL_SDK_PC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pl__pc pl__pc_t;

typedef struct {
    void *ud;
    /* Our description, to send to the peer: type "offer" or "answer". */
    void (*on_local_description)(void *ud, const char *type, const char *sdp);
    /* A local ICE candidate to trickle ("candidate:..." as in RTCIceCandidate.candidate,
     * with its mid), or candidate NULL once gathering is complete (end-of-candidates).
     * Never before on_local_description. */
    void (*on_local_candidate)(void *ud, const char *candidate, const char *mid);
    /* The DataChannel is open: pl__pc_send() works from now on. */
    void (*on_open)(void *ud);
    /* One whole message, in order. */
    void (*on_message)(void *ud, int binary, const void *data, size_t len);
    /* The connection is over: err 0 when the peer closed it cleanly, else a negative
     * PARLEY_E* (PARLEY_EICE, PARLEY_EDTLS, PARLEY_EFINGERPRINT, PARLEY_ESCTP,
     * PARLEY_ETIMEDOUT, PARLEY_EPROTO). Nothing is called after it; the owner still calls
     * pl__pc_close(). */
    void (*on_closed)(void *ud, int err);
} pl__pc_callbacks_t;

typedef struct {
    /* Local addresses to gather on; NULL = every non-loopback interface. */
    const char *const *local_addresses;
    /* STUN servers as "host:port" with a numeric host (the caller resolves names); may be
     * NULL. */
    const char *const *stun_servers;
    /* What we accept and advertise in a=max-message-size; 0 = 262144. */
    size_t max_message_size;
    /* Connecting (ICE + DTLS + SCTP + channel open) gives up after this; 0 = 15000. */
    uint32_t connect_timeout_ms;
} pl__pc_config_t;

/* Creates a connection. Nothing happens until pl__pc_create_offer() or pl__pc_set_remote(). */
int pl__pc_new(uv_loop_t *loop, const pl__pc_config_t *cfg, const pl__pc_callbacks_t *cb,
               pl__pc_t **out);

/* We offer: gathers, then on_local_description("offer"), then candidates; this side opens
 * the DataChannel once SCTP is up. */
int pl__pc_create_offer(pl__pc_t *pc);

/* The peer's description: an "offer" (we answer through on_local_description("answer")) or
 * the "answer" to ours. PARLEY_EPROTO for SDP we cannot use, PARLEY_ESTATE out of order. */
int pl__pc_set_remote(pl__pc_t *pc, const char *type, const char *sdp);

/* A trickled candidate from the peer ("candidate:..." with or without "a="), or NULL for
 * end-of-candidates. Candidates that arrive before the remote description are kept until
 * it comes. Unusable ones (mDNS .local names, TCP, component 2) are dropped quietly (0). */
int pl__pc_add_candidate(pl__pc_t *pc, const char *candidate, const char *mid);

/* Queues one message. PARLEY_ENOTCONN before on_open, PARLEY_EMSGSIZE above the peer's
 * max-message-size, PARLEY_EAGAIN when the send queue is full. */
int pl__pc_send(pl__pc_t *pc, int binary, const void *data, size_t len);

/* The peer's max-message-size (0 before the remote description). */
size_t pl__pc_max_message_size(const pl__pc_t *pc);

/* Closes (channel, SCTP, DTLS, ICE) and frees. No callback runs once it has returned. */
void pl__pc_close(pl__pc_t *pc);

#endif
