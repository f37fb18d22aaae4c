/* evq: the event queue that carries events from threads that are not ours (libnice's GLib
 * thread, usrsctp's) into the SDK thread's uv loop.
 *
 * Each queue belongs to one session (one pc) and is registered in a process-wide table
 * under a 64-bit id that is never reused. Foreign threads post by id, never by pointer:
 * once the owner has closed its queue a post finds nothing and is dropped, so teardown
 * needs no handshake with the foreign threads. The table lock is a leaf lock: nothing is
 * called under it but the list append and uv_async_send(). */
#ifndef PL_SDK_EVQ_H
#define PL_SDK_EVQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pl__ev {
    struct pl__ev *next;
    int kind;
    int arg;
    size_t len;
    uint8_t data[]; /* len bytes, plus a NUL so text payloads can be used as strings */
} pl__ev_t;

typedef struct pl__evq pl__evq_t;

/* Called on the loop's thread with every event in posting order. The handler owns ev and
 * frees it with free(). */
typedef void (*pl__evq_handler_fn)(void *ud, pl__ev_t *ev);

/* Opens a queue on loop; *id is its fresh id. */
int pl__evq_open(uv_loop_t *loop, pl__evq_handler_fn fn, void *ud, pl__evq_t **out, uint64_t *id);

/* From any thread: copies len bytes of data into an event for queue id. Returns
 * PARLEY_ENOTFOUND when the queue is gone, PARLEY_EAGAIN when more than the queue's byte
 * budget is pending (the event is dropped: datagrams are retransmitted by DTLS/SCTP). */
int pl__evq_post(uint64_t id, int kind, int arg, const void *data, size_t len);

/* Wakes the owner's handler without an event (the handler then sees nothing new, but the
 * owner's "after" hook, if any, runs): used to defer work to the next loop iteration. */
void pl__evq_kick(pl__evq_t *q);

/* Sets a function run on the loop thread after each batch of events (and after a kick). */
void pl__evq_set_after(pl__evq_t *q, void (*after)(void *ud));

/* The ud given to pl__evq_open() for id, but only when called on the queue's own loop
 * thread (NULL elsewhere or when the id is gone): lets a library callback that runs
 * synchronously on the SDK thread reach its session directly. */
void *pl__evq_lookup_local(uint64_t id);

/* Unregisters and discards pending events; the memory goes once libuv has closed the
 * handle, so this may be called from inside the handler. */
void pl__evq_close(pl__evq_t *q);

#endif
