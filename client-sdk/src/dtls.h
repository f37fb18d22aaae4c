/* dtls: the DTLS 1.2 endpoint of one pc (OpenSSL 3), over ICE.
 *
 * Each pc has its own self-signed P-256 certificate, whose sha-256 fingerprint goes into our
 * SDP; the peer's certificate is accepted during the handshake whatever it is (self-signed
 * is the norm) and checked against the fingerprint of the peer's SDP afterwards
 * (pl__dtls_verify). Records leave through a BIO that hands each write to the send callback
 * as exactly one datagram (a memory BIO would glue a whole flight into one oversized
 * datagram). Retransmissions run on a uv timer of the pc's loop. Everything here runs on
 * that loop's thread. */
#ifndef PL_SDK_DTLS_H
#define PL_SDK_DTLS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sdp.h"

typedef struct pl__dtls pl__dtls_t;

typedef struct {
    void *ud;
    /* One datagram to the peer; < 0 when it cannot go out yet (kept, and sent again by
     * pl__dtls_replay()). */
    int (*send)(void *ud, const void *data, size_t len);
    /* The handshake finished. */
    void (*on_connected)(void *ud);
    /* One decrypted record. */
    void (*on_data)(void *ud, const uint8_t *data, size_t len);
    /* The peer closed (err 0, close_notify) or DTLS failed (PARLEY_EDTLS). Last callback. */
    void (*on_closed)(void *ud, int err);
} pl__dtls_callbacks_t;

int pl__dtls_new(uv_loop_t *loop, const pl__dtls_callbacks_t *cb, pl__dtls_t **out);

/* "AB:CD:..." (sha-256 of our certificate). */
const char *pl__dtls_fingerprint(const pl__dtls_t *d);

/* Takes the role and starts: the client sends its ClientHello, the server waits. */
int pl__dtls_start(pl__dtls_t *d, int client);

/* One datagram from the peer (first byte 20..63). */
void pl__dtls_input(pl__dtls_t *d, const uint8_t *data, size_t len);

/* Sends again the datagrams that could not leave (ICE had no pair yet). */
void pl__dtls_replay(pl__dtls_t *d);

/* One application record; PARLEY_ENOTCONN before the handshake or after close. */
int pl__dtls_write(pl__dtls_t *d, const void *data, size_t len);

/* Compares the peer's certificate with the fingerprints of its SDP (the strongest hash we
 * know among them). 0 or PARLEY_EFINGERPRINT. */
int pl__dtls_verify(pl__dtls_t *d, const pl__sdp_fingerprint_t *fp, size_t nfp);

/* Sends close_notify when connected. */
void pl__dtls_shutdown(pl__dtls_t *d);

/* Frees; the memory goes once libuv has closed the timer. No callback after it. */
void pl__dtls_free(pl__dtls_t *d);

#endif
