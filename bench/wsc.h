/* wsc: WebSocket client connections for parley-bench's relay and idle scenarios, on
 * libwebsockets 4.1.6's client running on pb.loop (its libuv event lib, a foreign loop).
 *
 * One lws context serves every connection of the run (thousands of them), created by
 * pb_wsc_init() after the descriptor limit is raised (lws sizes its descriptor table from
 * it). Every connection goes to the run's target (pb.addr, Host pb.o.host).
 *
 * Callbacks run from the loop, never from inside pb_wsc_open/send/close. A connection's
 * last callback is on_close; after it (or after pb_wsc_close) the handle is gone. The
 * callbacks must not call pb_finish() (it destroys the context under them): use
 * pb_wsc_finish_soon(). */
#ifndef PB_WSC_H
#define PB_WSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pb_wsc pb_wsc_t;

typedef struct {
    /* The handshake succeeded. */
    void (*on_open)(pb_wsc_t *w, void *ud);
    /* One whole text message (fragments joined); text is valid during the call. */
    void (*on_message)(pb_wsc_t *w, void *ud, const char *text, size_t len);
    /* The end: never opened (was_open false; http_status is the handshake's answer when
     * the server sent one other than 101, else 0), or closed after opening (close_code
     * from the server's close frame, or 1006 when there was none). */
    void (*on_close)(pb_wsc_t *w, void *ud, bool was_open, int close_code, int http_status);
} pb_wsc_cbs_t;

/* Raises RLIMIT_NOFILE's soft limit to the hard limit (which an unprivileged process
 * cannot raise) and returns the soft limit now in force. */
unsigned long pb_wsc_raise_nofile(void);
/* Creates the lws context on pb.loop. Returns 0, or -1 after printing why. */
int pb_wsc_init(void);
/* Closes every connection without callbacks and starts destroying the context. For the
 * scenario's stop(): it must run before the driver closes the loop's other handles. */
void pb_wsc_shutdown(void);
/* Once the loop has run dry: finishes the context's destruction and frees what is left. */
void pb_wsc_cleanup(void);
/* Ends the run from outside any lws callback (a zero-delay timer calls pb_finish()). */
void pb_wsc_finish_soon(void);

/* Opens a connection to path (with its query) on the target, offering subprotocol
 * (NULL: none). Returns the handle, or NULL when it failed at once (nothing is called
 * back then). */
pb_wsc_t *pb_wsc_open(const char *path, const char *subprotocol, const pb_wsc_cbs_t *cbs, void *ud);
/* Queues one text message. Returns 0, or -1 when the connection is not open or the queue
 * is over its bound (PB_WSC_MAX_QUEUE bytes). */
int pb_wsc_send(pb_wsc_t *w, const char *text, size_t len);
/* Bytes queued and not yet handed to the kernel. */
size_t pb_wsc_queued(const pb_wsc_t *w);
/* Closes the connection; no callback runs for it afterwards. */
void pb_wsc_close(pb_wsc_t *w);

/* Bounds: a connection's outgoing queue, and one incoming message. */
#define PB_WSC_MAX_QUEUE   (4u << 20)
#define PB_WSC_MAX_MESSAGE (1u << 20)

/* ----------------------------------------------------------------------------------- */
/* What the WebSocket scenarios share besides the connection */

/* One parleyd membership made over REST for a WebSocket. (The setup is defined in relay.c:
 * this header's users must not need llhttp.h, which clashes with libwebsockets.h.) */
typedef struct {
    char room_id[64];
    char peer_id[64];
    char *token; /* the signaling token (malloc'd), NULL when the setup failed */
} pb_member_t;

/* Makes n memberships over REST on a few keep-alive connections: each run of `group`
 * consecutive members shares a private room (maxPeers = group) that the first creates and
 * the others join, member i with virtual user i's token (pb_user_token). A failed call
 * counts one error ("connect", "setup_http_<status>", "setup_timeout", ...) and leaves the
 * rest of that room unmade. done() runs once, from the loop, when every room is finished.
 * Returns 0, or -1 after printing why. */
int pb_setup_members(pb_member_t *m, unsigned n, unsigned group, void (*done)(void));
/* Closes the setup's connections (stop()); pb_setup_free() once the loop ran dry. */
void pb_setup_stop(void);
void pb_setup_free(void);

/* The error kind for a WebSocket that ended: "connect" or "ws_http_<status>" when it never
 * opened, else "ws_close_<code>". */
void pb_ws_close_kind(char *buf, size_t n, bool was_open, int close_code, int http_status);

/* A PeerJS client id or token: random, [0-9a-f], NUL-terminated in n bytes. */
void pb_peerjs_random(char *buf, size_t n);
/* The PeerJS server's WebSocket path for this id and token (--url's path, --key). */
void pb_peerjs_path(char *buf, size_t n, const char *id, const char *token);

#endif
