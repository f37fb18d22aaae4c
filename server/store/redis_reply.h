/* Reply trees for the Redis engine's command connection, built in one allocation.
 *
 * hiredis's default reader makes every element of a reply with calloc and every string with
 * malloc, and frees them one by one after the callback: a room with its member is some 40
 * allocations and 40 frees per call, about a third of what the engine adds to a REST request
 * in parleyd's profile. These functions put the whole tree in one block (a few more, each
 * twice the last, for a reply larger than it) and free it in one call. They rely on what hiredis
 * 0.14 does: the reader builds one reply at a time and calls freeObject only on a root (after its
 * callback, or on a partial root after a protocol error or when the reader is freed); nothing here
 * keeps state outside the tree, so the reader may be freed whenever hiredis frees it. Replies
 * made by these functions must never be passed to freeReplyObject. */
#ifndef PL_STORE_REDIS_REPLY_H
#define PL_STORE_REDIS_REPLY_H

#include <hiredis/read.h>

/* Install on a context's reader: ac->c.reader->fn = &pl__rs_reply_fns. */
extern redisReplyObjectFunctions pl__rs_reply_fns;

#endif
