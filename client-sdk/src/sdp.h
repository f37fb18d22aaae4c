/* sdp: the data-only SDP of one pc: building our offer/answer and parsing the peer's
 * (Chromium's modern "UDP/DTLS/SCTP webrtc-datachannel" + a=sctp-port form, and aiortc
 * 1.4.0's legacy "DTLS/SCTP 5000" + a=sctpmap form, candidates and a=end-of-candidates
 * included). Pure functions: no I/O, no state. The input is hostile: its size and every
 * count in it are bounded. */
#ifndef PL_SDK_SDP_H
#define PL_SDK_SDP_H

#include <stddef.h>
#include <stdint.h>

#define PL__SDP_MAX_LEN          65536 /* a longer description is refused */
#define PL__SDP_MAX_CANDIDATES   64    /* candidates kept from one description */
#define PL__SDP_MAX_FINGERPRINTS 4
#define PL__SDP_CANDIDATE_MAX    512   /* bytes of one candidate line */
#define PL__SDP_DEFAULT_MMS      65536 /* RFC 8841 section 6.1: when a=max-message-size is absent */

enum { PL__SDP_SETUP_NONE = 0, PL__SDP_SETUP_ACTPASS, PL__SDP_SETUP_ACTIVE, PL__SDP_SETUP_PASSIVE };

typedef struct {
    char alg[16];   /* lower case: "sha-256" */
    uint8_t md[64]; /* the digest bytes */
    size_t len;
} pl__sdp_fingerprint_t;

typedef struct {
    char ufrag[257], pwd[257];
    pl__sdp_fingerprint_t fp[PL__SDP_MAX_FINGERPRINTS];
    size_t nfp;
    int setup;               /* PL__SDP_SETUP_* */
    char mid[64];            /* "" when the media section has none */
    int legacy;              /* DTLS/SCTP <port> + a=sctpmap */
    unsigned sctp_port;      /* a=sctp-port, the legacy fmt, or 5000 */
    size_t max_message_size; /* PL__SDP_DEFAULT_MMS when absent; 0 = "no limit" */
    int trickle;             /* a=ice-options:trickle */
    int ice_lite;
    int end_of_candidates; /* a=end-of-candidates */
    size_t ncand;
    char *cand[PL__SDP_MAX_CANDIDATES]; /* "candidate:..." normalised, usable ones only */
} pl__sdp_remote_t;

/* Parses a description of the peer into *out (zeroed first). PARLEY_EPROTO when it has no
 * usable m=application section, no ice-ufrag/ice-pwd, no fingerprint, or is too long;
 * PARLEY_ENOMEM. On success free it with pl__sdp_remote_free(). */
int pl__sdp_parse(const char *sdp, pl__sdp_remote_t *out);
void pl__sdp_remote_free(pl__sdp_remote_t *r);

typedef struct {
    int answer;          /* 0 offer, 1 answer */
    uint64_t session_id; /* o= session id (< 2^62) */
    unsigned version;    /* o= version */
    const char *ufrag, *pwd;
    const char *fingerprint; /* "AB:CD:..." sha-256 */
    int setup;               /* PL__SDP_SETUP_* */
    const char *mid;         /* "0" for an offer; the offer's mid in an answer */
    int legacy;              /* answer an aiortc legacy offer in its own form */
    unsigned sctp_port;
    size_t max_message_size;
    const char *const *candidates; /* "candidate:..." to put inside, may be NULL */
    size_t ncand;
    int end_of_candidates;
} pl__sdp_local_t;

/* Builds our description (CRLF line ends) into a malloc'd string. */
int pl__sdp_build(const pl__sdp_local_t *l, char **out);

/* Checks and normalises one candidate ("candidate:..." with or without "a=", surrounding
 * white space allowed) into out ("candidate:<tokens separated by one space>"). Returns 0
 * when usable, 1 when it is a candidate we cannot use and drop quietly (mDNS .local name,
 * TCP, component other than 1, a host name), PARLEY_EPROTO when it is not a candidate. */
int pl__sdp_candidate_check(const char *in, char *out, size_t outsz);

/* Parses "AB:CD:..." into bytes; returns the number of bytes or PARLEY_EPROTO. */
int pl__sdp_parse_hex_fingerprint(const char *s, uint8_t *md, size_t mdsz);

#endif
