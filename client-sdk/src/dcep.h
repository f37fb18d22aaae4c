/* dcep: the Data Channel Establishment Protocol (RFC 8832) messages and the PPIDs of RFC 8831.
 * Pure encode/decode; the channel logic lives in pc.c. */
#ifndef PL_SDK_DCEP_H
#define PL_SDK_DCEP_H

#include <stddef.h>
#include <stdint.h>

enum {
    PL__PPID_DCEP = 50,
    PL__PPID_STRING = 51,
    PL__PPID_BINARY_PARTIAL = 52, /* deprecated */
    PL__PPID_BINARY = 53,
    PL__PPID_STRING_PARTIAL = 54, /* deprecated */
    PL__PPID_STRING_EMPTY = 56,
    PL__PPID_BINARY_EMPTY = 57,
};

enum { PL__DCEP_ACK = 0x02, PL__DCEP_OPEN = 0x03 };

enum {
    PL__DCEP_RELIABLE = 0x00,
    PL__DCEP_RELIABLE_UNORDERED = 0x80,
    PL__DCEP_REXMIT = 0x01,
    PL__DCEP_REXMIT_UNORDERED = 0x81,
    PL__DCEP_TIMED = 0x02,
    PL__DCEP_TIMED_UNORDERED = 0x82,
};

#define PL__DCEP_OPEN_HEADER 12

typedef struct {
    uint8_t channel_type;
    uint16_t priority;
    uint32_t reliability;
    const uint8_t *label; /* not NUL-terminated */
    size_t label_len;
    const uint8_t *protocol;
    size_t protocol_len;
} pl__dcep_open_t;

/* Writes a DATA_CHANNEL_OPEN into buf; returns its length, or PARLEY_EINVAL when a string is
 * longer than 65535 bytes or buf is too small. */
int pl__dcep_encode_open(const pl__dcep_open_t *o, uint8_t *buf, size_t bufsz);

/* Writes a DATA_CHANNEL_ACK (1 byte); returns 1 or PARLEY_EINVAL. */
int pl__dcep_encode_ack(uint8_t *buf, size_t bufsz);

/* Decodes one DCEP message: *type is PL__DCEP_OPEN (then *o points into buf) or
 * PL__DCEP_ACK. PARLEY_EPROTO for an unknown type, a bad channel type, or lengths that do not
 * add up. */
int pl__dcep_decode(const uint8_t *buf, size_t len, int *type, pl__dcep_open_t *o);

#endif
