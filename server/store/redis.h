/* The redis store engine: the store interface (store/store.h) on Redis, for N parleyd nodes
 * sharing rooms, inboxes and rate limits. hiredis' async API on the server's libuv loop;
 * docs/scaling.md lists its keys, scripts and failure behaviour. */
#ifndef PL_STORE_REDIS_H
#define PL_STORE_REDIS_H

#include "store/store.h"

/* url: redis://host[:port][/db]. node_id names this node in logs (may be NULL). Connects
 * in the background: the store is not ready() until both connections are up, and
 * operations fail PL_EUNAVAIL meanwhile. */
int pl_store_redis_new(uv_loop_t *loop, const char *url, const pl_store_opts_t *opts,
                       const pl_store_listener_t *listener, const char *node_id, pl_store_t **out);

/* Sends operations as scripts (EVALSHA) even to a Redis that has functions: what a Redis
 * older than 7 gets. For tests; call it before the loop first runs. */
void pl_store_redis_use_scripts(pl_store_t *s);

/* Runs an expiry sweep now (tests; the engine also sweeps every second). */
void pl_store_redis_sweep(pl_store_t *s);

#endif
