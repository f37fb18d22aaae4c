/* internal: the client struct shared by client.c (threads, commands, public API) and room.c
 * (peers: signaling ↔ WebRTC). Everything but the command queue and the snapshot is owned by
 * the SDK thread. */
#ifndef PL_SDK_INTERNAL_H
#define PL_SDK_INTERNAL_H

#include <pthread.h>
#include <uv.h>

#include "parley.h"
#include "sig.h"
#include "util.h"

#define PL__MAX_SNAPSHOT 256 /* connected peers visible to other threads (send checks) */

typedef struct pl__room pl__room_t;
typedef struct pl__cmd pl__cmd_t;

/* What another thread may know without a round trip: which peers have an open channel
 * and the largest message each accepts. Guarded by snap_mu (a leaf lock). */
typedef struct {
    char peer_id[65];
    size_t max_message;
} pl__snap_entry_t;

struct parley_client {
    /* configuration, deep-copied */
    parley_config cfg;
    parley_callbacks cb;
    void *user;
    pl__logger_t log;
    char **ice_addrs, **ice_servers; /* NULL-terminated copies */
    /* SDK thread */
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t stop_timer;
    int running;
    int stopping; /* parley_client_free: no user callback any more */
    int in_leave; /* waiting for the leave's answer before stopping */
    /* commands from other threads */
    pthread_mutex_t cmd_mu;
    pl__cmd_t *cmd_head, **cmd_tail;
    size_t cmd_bytes;
    int stop_requested;
    /* snapshot for other threads */
    pthread_mutex_t snap_mu;
    pl__snap_entry_t snap[PL__MAX_SNAPSHOT];
    size_t nsnap;
    /* SDK-thread state */
    pl__sig_t *sig;
    pl__room_t *room;
};

/* room.c */
int pl__room_new(parley_client *c, pl__room_t **out);
void pl__room_free(pl__room_t *r);
void pl__room_on_joined(pl__room_t *r, const json_t *answer);
void pl__room_on_envelope(pl__room_t *r, const json_t *env);
/* Closes every peer connection; report: call on_peer_gone(why) for each that had one. */
void pl__room_close_all(pl__room_t *r, int report, parley_gone_reason why);
int pl__room_send(pl__room_t *r, const char *peer_id, parley_msg_kind kind, const void *data,
                  size_t len);
int pl__room_broadcast(pl__room_t *r, parley_msg_kind kind, const void *data, size_t len);

/* client.c: the snapshot */
void pl__snap_set(parley_client *c, const char *peer_id, size_t max_message);
void pl__snap_del(parley_client *c, const char *peer_id);
void pl__snap_clear(parley_client *c);

#endif
