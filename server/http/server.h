/* An HTTP/1.1 server on one libuv loop, parsing with llhttp.
 *
 * One request per connection is handled at a time: when llhttp completes a message the
 * parser is paused and the request handed to the application; bytes that arrived behind it
 * (pipelining) wait in the connection's buffer until the response has been queued. So
 * responses always leave in request order.
 *
 * Every input is bounded: request line + headers (16 KiB, 431), header count, body
 * (max_body, 413), header read time (header_timeout_ms, 408), idle keep-alive time
 * (idle_timeout_ms, silent close), connection count (max_connections, 503 at once).
 *
 * Ownership: the server owns connections and requests. A handler receives a request and
 * must eventually call pl_http_respond() exactly once, possibly from a later loop
 * iteration (long-polls, store callbacks). If the client goes away first, the request's
 * on_abort hook (when set) is called so the handler can drop its references; the request
 * itself stays valid until the handler responds (the response is then discarded). */
#ifndef PL_HTTP_SERVER_H
#define PL_HTTP_SERVER_H

#include "common/str.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define PL_HTTP_MAX_HEAD         16384
#define PL_HTTP_MAX_HEADERS      100
#define PL_HTTP_MAX_RESP_HEADERS 2048

typedef struct pl_http_server pl_http_server_t;
typedef struct pl_http_conn pl_http_conn_t;
typedef struct pl_http_req pl_http_req_t;

typedef struct {
    pl_str_t name;
    pl_str_t value;
} pl_http_header_t;

struct pl_http_req {
    pl_http_server_t *server;
    pl_http_conn_t *conn;
    int method; /* llhttp_method_t */
    pl_str_t method_str;
    pl_str_t target; /* as sent: path?query */
    pl_str_t path;   /* raw path, not percent-decoded */
    pl_str_t query;  /* after '?', without it; empty when none */
    pl_http_header_t headers[PL_HTTP_MAX_HEADERS];
    size_t nheaders;
    pl_buf_t body;
    bool keep_alive;
    bool is_head;
    char peer_ip[INET6_ADDRSTRLEN]; /* the TCP peer's address */
    struct sockaddr_storage peer_addr;
    int64_t start_ms; /* monotonic, when the request was complete */

    /* Set by the application. */
    const char *route;                    /* a low-cardinality name for metrics and logs */
    void *app_data;                       /* the handler's per-request state */
    void (*on_abort)(pl_http_req_t *req); /* the client went away while the handler ran */
    /* The client's address when it differs from the TCP peer's (a trusted proxy forwarded
     * it), for the request log line; empty otherwise. */
    char client_ip[64];

    /* Response headers added with pl_http_add_header() before pl_http_respond(). */
    pl_buf_t resp_headers;
    int status;
    bool responded;
    bool aborted;
};

typedef void (*pl_http_handler_fn)(void *ud, pl_http_req_t *req);
/* Called once per request after its response was queued (or discarded): for metrics. */
typedef void (*pl_http_complete_fn)(void *ud, pl_http_req_t *req, int status, double seconds);

typedef struct {
    uint32_t max_connections;
    uint32_t header_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t max_body;
    /* Optional: the largest body this request may have, decided from its method, path and
     * headers once they are in (an upload route may take more than max_body). */
    uint32_t (*body_limit)(void *ud, const pl_http_req_t *req);
    pl_http_handler_fn handler;
    pl_http_complete_fn on_complete;
    void *ud;
} pl_http_opts_t;

typedef struct {
    uint64_t connections_open;
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t requests_total;
    uint64_t requests_inflight;
} pl_http_stats_t;

int pl_http_server_new(uv_loop_t *loop, const pl_http_opts_t *opts, pl_http_server_t **out);
/* Binds and listens; host is an IPv4 or IPv6 literal. Port 0 picks a free port. */
int pl_http_server_listen(pl_http_server_t *s, const char *host, uint16_t port);
uint16_t pl_http_server_port(const pl_http_server_t *s);
/* Stops accepting, closes idle connections, and lets in-flight requests finish, after which
 * their connections close too. */
void pl_http_server_stop_accepting(pl_http_server_t *s);
/* Closes every connection at once, in-flight or not. */
void pl_http_server_close_all(pl_http_server_t *s);
/* Frees the server once pl_http_server_open_connections() is 0 and the loop has run the
 * close callbacks (the listener's close is started by stop_accepting). */
void pl_http_server_free(pl_http_server_t *s);
size_t pl_http_server_open_connections(const pl_http_server_t *s);
/* Connections that left HTTP for another owner (WebSockets) but still count against
 * max_connections: +1 when one is handed over, -1 when it closes. */
void pl_http_server_count_external(pl_http_server_t *s, int delta);
void pl_http_server_stats(const pl_http_server_t *s, pl_http_stats_t *out);

/* The first header named `name` (case-insensitive), or a NULL pl_str_t. */
pl_str_t pl_http_header(const pl_http_req_t *req, const char *name);
/* Every line of header `name` joined with ", " (as RFC 9110 allows for list headers) into
 * out; returns false when the header is absent. */
bool pl_http_header_all(const pl_http_req_t *req, const char *name, pl_buf_t *out);
/* Appends "Name: value\r\n" to the response headers; CR and LF in value are dropped. */
void pl_http_add_header(pl_http_req_t *req, const char *name, const char *value);
/* Queues the response. body may be NULL; for HEAD the body is not sent but Content-Length
 * says its size. Must be called exactly once per request. */
void pl_http_respond(pl_http_req_t *req, int status, const char *content_type, const void *body,
                     size_t len);
const char *pl_http_status_text(int status);

/* Hands the connection's socket to someone else (a WebSocket upgrade). On success *fd is a
 * duplicate of the socket's descriptor, owned by the caller, and the bytes that arrived after
 * the request are appended to rest; the request counts as answered with `status` (for logs
 * and metrics) and parleyd's side of the HTTP connection is closed without touching the
 * socket itself (no shutdown, no lingering). On failure nothing changes and the caller
 * still answers the request. */
int pl_http_take_socket(pl_http_req_t *req, int status, int *fd, pl_buf_t *rest);

#endif
