/* The WebSocket push channel (DESIGN section 5): `GET /signaling/ws` on the REST listener.
 *
 * parleyd's HTTP server reads and checks the upgrade request (token, membership, rate
 * limit); the socket is then adopted by libwebsockets, running on the same libuv loop, which
 * does the handshake and the framing. A session per socket subscribes to its peer's inbox
 * through the hub, so every envelope is pushed the moment it is posted, and client messages
 * run through the same handlers as their REST twins. */
#ifndef PL_WS_H
#define PL_WS_H

#include "api/api.h"
#include "ws/ws_stats.h"

#include <stdint.h>

typedef struct pl_ws pl_ws_t;

/* Creates the libwebsockets context on app->loop. Returns 0 or a negative error. */
int pl_ws_new(pl_app_t *app, pl_ws_t **out);
/* Closes every socket with 1001 (shutdown, after the REST drain). */
void pl_ws_close_all(pl_ws_t *ws);
size_t pl_ws_open_sockets(const pl_ws_t *ws);
/* Teardown in two steps, as libwebsockets needs on a foreign loop: begin() inside the loop
 * (starts closing its handles), the loop runs until they are closed, then end() frees. */
void pl_ws_destroy_begin(pl_ws_t *ws);
void pl_ws_destroy_end(pl_ws_t *ws);
void pl_ws_get_stats(const pl_ws_t *ws, pl_ws_stats_t *out);

/* The API handler of GET /signaling/ws. */
void api_ws_upgrade(pl_call_t *call);

#endif
