/* ws: one client WebSocket (libwebsockets 4.1.6 on the caller's libuv loop) to parleyd's
 * /signaling/ws, subprotocol parley.v1, the signaling token in Authorization: Bearer. Each
 * connection owns its lws context, so closing one is complete and independent of others. */
#ifndef PL_SDK_WS_H
#define PL_SDK_WS_H

#include <stddef.h>
#include <uv.h>

#include "util.h"

typedef struct pl__ws pl__ws_t;
typedef struct pl__ws_ctx pl__ws_ctx_t;

typedef struct {
    void *ud;
    void (*on_open)(void *ud);
    /* One whole text message. */
    void (*on_message)(void *ud, const char *text, size_t len);
    /* The connection is over: close_code is the server's close code (1006 when none came);
     * http_status the refused upgrade's status (0 when the upgrade succeeded or no answer
     * came). Nothing is called after it; the owner still calls pl__ws_close(). */
    void (*on_close)(void *ud, int close_code, int http_status);
} pl__ws_callbacks_t;

typedef struct {
    const char *ip; /* numeric address (lws 4.1.6 resolves names synchronously) */
    int port;
    const char *host; /* Host header */
    const char *path;
    const char *bearer;
    size_t max_message; /* larger incoming messages close the connection */
    size_t max_queue;   /* bytes queued for sending; beyond, pl__ws_send fails */
} pl__ws_opts_t;

/* One lws context on loop, for every connection of one owner (it is kept across reconnects:
 * destroying an lws 4.1.6 context on a foreign loop is costly and hazardous, see ws.c). */
int pl__ws_ctx_new(uv_loop_t *loop, const pl__logger_t *log, pl__ws_ctx_t **out);
/* Destroys the context on the loop, outside any lws callback; connections still open are
 * dropped without callbacks. Frees itself once libuv has closed lws' handles. */
void pl__ws_ctx_free(pl__ws_ctx_t *ctx);

int pl__ws_open(pl__ws_ctx_t *ctx, const pl__ws_opts_t *o, const pl__ws_callbacks_t *cb,
                pl__ws_t **out);
/* Queues a text message. PARLEY_EAGAIN when the queue is full, PARLEY_ECLOSED when over. */
int pl__ws_send(pl__ws_t *ws, const char *text, size_t len);
/* Drops the connection (asynchronously): no callback after this. Safe inside its own
 * callbacks. NULL is fine. */
void pl__ws_close(pl__ws_t *ws);

#endif
