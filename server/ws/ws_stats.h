/* Counters of the WebSocket channel, shared with the metrics renderer. */
#ifndef PL_WS_STATS_H
#define PL_WS_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t open;
    uint64_t total;
    uint64_t pushed;   /* envelopes sent */
    uint64_t received; /* client messages */
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t queue_overflows; /* closed with 1013 */
    uint64_t batched_writes;  /* writes that carried several queued messages */
    uint64_t direct;          /* envelopes taken straight from a push (no inbox, no pop) */
    /* Close codes, sent or received, as parallel arrays. */
    uint16_t close_codes[16];
    uint64_t close_counts[16];
    size_t nclose;
} pl_ws_stats_t;

#endif
