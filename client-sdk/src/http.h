/* http: one HTTP/1.1 request per TCP connection on a libuv loop, the response parsed by
 * llhttp. Enough for parleyd's REST API: JSON bodies, bearer tokens, long-polls. Each request
 * has its own connection ("Connection: close"), so a long-poll never delays a POST; order
 * between requests is the caller's business. */
#ifndef PL_SDK_HTTP_H
#define PL_SDK_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pl__http_req pl__http_req_t;

typedef struct {
    int err;          /* 0, or PARLEY_ENETWORK / PARLEY_ETIMEDOUT / PARLEY_EPROTO / PARLEY_ENOMEM */
    int status;       /* HTTP status when err is 0 */
    const char *body; /* NUL-terminated; valid during the callback */
    size_t len;
    int retry_after; /* seconds from Retry-After, or -1 */
} pl__http_resp_t;

typedef void (*pl__http_cb)(void *ud, const pl__http_resp_t *resp);

typedef struct {
    const char *method; /* "GET", "POST" */
    const char *host;   /* Host header value */
    const char *path;   /* origin-form target, e.g. "/signaling/join-room" */
    const char *bearer; /* NULL: no Authorization header */
    const char *body;   /* NULL: no body */
    size_t body_len;
    uint32_t timeout_ms; /* the whole exchange, connect to last byte */
    size_t max_response; /* body bytes accepted; more is PARLEY_EPROTO */
} pl__http_opts_t;

/* Starts a request to addr. The callback runs exactly once, later, from the loop (never
 * from inside this call), unless the request is cancelled first. *out stays valid until the
 * callback starts. */
int pl__http_start(uv_loop_t *loop, const struct sockaddr *addr, const pl__http_opts_t *o,
                   pl__http_cb cb, void *ud, pl__http_req_t **out);
/* Abandons a request: no callback. NULL is fine. */
void pl__http_cancel(pl__http_req_t *r);

/* The error of a response that is not a success: resp->err when the exchange failed, else
 * the PARLEY_ESRV_* of the body's {"error":{"code"}} (of the status without one), with the
 * server's message copied into detail (when given; "" without a message). */
int pl__http_error(const pl__http_resp_t *resp, char *detail, size_t dlen);

#endif
