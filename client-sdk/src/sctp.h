/* sctp: the SCTP association of one pc (usrsctp, AF_CONN over DTLS).
 *
 * usrsctp is initialised once per process (refcounted; usrsctp_init_nothreads, so no timer
 * thread) and its timers are driven by a 10 ms uv timer of each live association's loop
 * through one shared clock, so time never advances twice. usrsctp's output and upcall
 * callbacks find the association by its session id; when they run on a thread that is not
 * the association's (another loop's ticker, usrsctp's iterator thread), they post to the
 * session's queue (evq.h) instead of touching it. Everything else runs on the loop's thread.
 *
 * Messages are sent whole (SCTP_EOR) from a bounded FIFO and reassembled on MSG_EOR into a
 * buffer bounded by our max-message-size. */
#ifndef PL_SDK_SCTP_H
#define PL_SDK_SCTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Event kinds posted to the session's queue by foreign threads (see ice.h for the range). */
enum {
    PL__SCTP_EV_OUT = 20,  /* data: one SCTP packet to send through DTLS */
    PL__SCTP_EV_WAKE = 21, /* the socket has something to read or room to write */
};

/* The send FIFO's byte budget: beyond it pl__sctp_send() says PARLEY_EAGAIN. */
#define PL__SCTP_SENDQ_MAX (4u << 20)
/* The largest message we send or accept whatever the SDP says: the send buffer (1 MiB) must
 * hold a whole message, since usrsctp refuses a non-blocking send that does not fit. */
#define PL__SCTP_MAX_MESSAGE (512u * 1024)

typedef struct pl__sctp pl__sctp_t;

typedef struct {
    void *ud;
    /* One SCTP packet for the peer (to DTLS). */
    int (*send)(void *ud, const void *data, size_t len);
    /* The association is up. */
    void (*on_up)(void *ud);
    /* One whole message; data is malloc'd and now the callee's. */
    void (*on_message)(void *ud, uint16_t sid, uint32_t ppid, uint8_t *data, size_t len);
    /* The peer reset its outgoing side of stream sid (it closed that channel). */
    void (*on_stream_reset)(void *ud, uint16_t sid);
    /* The association ended: 0 after a SHUTDOWN, PARLEY_ESCTP when lost or aborted,
     * PARLEY_EPROTO when the peer sent a message above our max. Last callback. */
    void (*on_closed)(void *ud, int err);
} pl__sctp_callbacks_t;

/* max_recv: the largest message we accept (our a=max-message-size). */
int pl__sctp_new(uv_loop_t *loop, uint64_t session_id, size_t max_recv,
                 const pl__sctp_callbacks_t *cb, pl__sctp_t **out);

/* Both sides connect (simultaneous open, as browsers do). */
int pl__sctp_connect(pl__sctp_t *s, uint16_t local_port, uint16_t remote_port);

/* One decrypted DTLS record from the peer. */
void pl__sctp_input(pl__sctp_t *s, const uint8_t *data, size_t len);

/* Handles a PL__SCTP_EV_* event of the session's queue. */
void pl__sctp_event(pl__sctp_t *s, int kind, const uint8_t *data, size_t len);

/* Queues one message (PPID in host order). PARLEY_EAGAIN when the FIFO is full,
 * PARLEY_ENOTCONN before the association is up or after it ended. */
int pl__sctp_send(pl__sctp_t *s, uint16_t sid, uint32_t ppid, const void *data, size_t len);

/* Resets our outgoing side of stream sid (closing a channel). */
int pl__sctp_reset_stream(pl__sctp_t *s, uint16_t sid);

/* Aborts the association if any, closes the socket and frees; no callback after it. */
void pl__sctp_free(pl__sctp_t *s);

#endif
