/* conn: one keep-alive HTTP/1.1 client connection on a libuv loop, one request at a time
 * (no pipelining), responses parsed by llhttp. The connection is opened on the first
 * request and again after the server or an error closed it. The connect and the response
 * each have their own timeout. */
#ifndef PB_CONN_H
#define PB_CONN_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/str.h"

enum {
    PB_OK = 0,
    PB_ECONNECT, /* connect failed or timed out */
    PB_ETIMEOUT, /* no complete response within the response timeout */
    PB_ECLOSED,  /* the server closed or reset the connection mid-exchange */
    PB_EPROTO,   /* unparsable response */
    PB_ERR_COUNT
};

const char *pb_conn_err_name(int err);

typedef struct pb_conn pb_conn_t;
/* err is PB_OK with an HTTP status and body (valid during the call), or a PB_E* code. */
typedef void (*pb_conn_cb)(pb_conn_t *c, int err, int status, const char *body, size_t len);

enum { PB_CONN_CLOSED, PB_CONN_CONNECTING, PB_CONN_READY, PB_CONN_BUSY, PB_CONN_CLOSING };

struct pb_conn {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    uv_write_t wreq;
    llhttp_t parser;
    llhttp_settings_t settings;
    pl_buf_t out;  /* the request being sent */
    pl_buf_t body; /* the response body being received */
    int state;
    bool queued; /* a request waits for the connection to open */
    bool done;   /* the parser completed a response */
    bool keep_alive;
    bool dead; /* shut down: no more callbacks */
    int pending_err;
    int status;
    const struct sockaddr *addr;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;
    pb_conn_cb cb;
    void *ud;
    uint64_t connects; /* successful connects */
    char inbuf[16384];
};

int pb_conn_init(pb_conn_t *c, uv_loop_t *loop, const struct sockaddr *addr,
                 uint32_t connect_timeout_ms, uint32_t timeout_ms);
/* Sends one request (the connection must not be busy). The callback runs exactly once,
 * from the loop, never from inside this call. bearer and body may be NULL. */
int pb_conn_request(pb_conn_t *c, const char *method, const char *host, const char *path,
                    const char *bearer, const char *body, pb_conn_cb cb);
/* Closes the handles; no callback runs afterwards. */
void pb_conn_shutdown(pb_conn_t *c);
/* Frees the buffers, once the loop has run the close callbacks. */
void pb_conn_free(pb_conn_t *c);

#endif
