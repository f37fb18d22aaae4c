/* internal: the client struct shared by client.c (threads, commands, public API) and room.c
 * (peers: signaling ↔ WebRTC). Everything but the command queue and the snapshot is owned by
 * the SDK thread. */
#ifndef PL_SDK_INTERNAL_H
#define PL_SDK_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "parley.h"
#include "sig.h"
#include "util.h"

#define PL__MAX_SNAPSHOT 256 /* connected peers visible to other threads (send checks) */

typedef struct pl__room pl__room_t;
typedef struct pl__test_hooks pl__test_hooks_t;
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
    /* Sends of other threads that met a full SCTP queue, retried in order on backlog_timer
     * (SDK thread; backlog_bytes under cmd_mu, counted against the command bound). */
    pl__cmd_t *backlog_head, **backlog_tail;
    size_t backlog_bytes;
    uv_timer_t backlog_timer;
    /* snapshot for other threads */
    pthread_mutex_t snap_mu;
    pl__snap_entry_t snap[PL__MAX_SNAPSHOT];
    size_t nsnap;
    int snap_joined; /* in a room: sends say ENOTCONN, not ESTATE */
    /* SDK-thread state */
    pl__sig_t *sig;
    pl__room_t *room;
    pl__test_hooks_t *test; /* NULL: the shipped behaviour (tests only, see below) */
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

/* client.c: true on the SDK thread of any client (where nothing may block). */
int pl__on_sdk_thread(void);

/* client.c: the snapshot */
void pl__snap_set(parley_client *c, const char *peer_id, size_t max_message);
void pl__snap_del(parley_client *c, const char *peer_id);
void pl__snap_clear(parley_client *c);
void pl__snap_joined(parley_client *c, int joined);

/* ---- test hooks ----
 * For client-sdk/tests only: neither in parley.h nor exported from libparley.so (hidden
 * visibility; the tests link the static library). A client without hooks (c->test NULL, as
 * parley_client_new() leaves it) behaves as shipped. A test installs them with
 * pl__test_call() (so the SDK thread owns them from then on) before joining. */
struct pl__test_hooks {
    int manual_offers; /* offer-request starts no offer: pl__room_test_offer does */
    int hold_signals;  /* incoming offers, answers, candidates wait for pl__room_test_release */
    unsigned drop_remote_candidates; /* this client's first N connections drop every remote
                                        candidate (so their ICE fails) */
    uint32_t connect_timeout_ms;     /* 0: pc.c's default */
    unsigned retry_base_ms;          /* 0: room.c's RETRY_BASE_MS */
    /* What happened (written on the SDK thread; read through pl__test_call). */
    unsigned pcs;           /* connections created */
    unsigned offers_sent;   /* our offers handed to signaling */
    unsigned glare_kept;    /* offers ignored in glare (we are impolite) */
    unsigned glare_yielded; /* our offers dropped in glare (we are polite) */
    unsigned stale_cands;   /* candidates of an offer ignored in glare, not applied */
    unsigned retries;       /* failed connections scheduled for a retry */
    unsigned offers_held;   /* offers being held */
    unsigned long_cands;    /* remote candidates dropped for being over 1024 bytes */
    unsigned remote_eocs;   /* remote end-of-candidates handed to a connection */
};

/* Runs fn(c, arg) on the SDK thread and waits for it (from any other thread); ECLOSED when
 * the client is stopping (fn does not run). */
int pl__test_call(parley_client *c, void (*fn)(parley_client *c, void *arg), void *arg);
/* On the SDK thread: offer to peer_id now (what offer-request does), as parley_connect_peer of
 * the plan would; 0, or ENOTFOUND / ESTATE (a connection exists). */
int pl__room_test_offer(pl__room_t *r, const char *peer_id);
/* On the SDK thread: handles the held signals, in order, and stops holding. */
void pl__room_test_release(pl__room_t *r);
/* On the SDK thread: handles env as if signaling had delivered it. */
#define pl__room_test_envelope pl__room_on_envelope

#endif
