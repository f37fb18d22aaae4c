/* Reply trees in one block: see redis_reply.h. */
#include "store/redis_reply.h"

#include <hiredis/hiredis.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The first block of an aggregate reply: a room, its member and the events fit. */
#define RR_BLOCK 2048
/* Further blocks double up to this. */
#define RR_BLOCK_MAX (256 * 1024)
/* No piece may come near SIZE_MAX, where rounding it up or adding a header would wrap:
 * hiredis reads a bulk length of up to LLONG_MAX from the wire. */
#define RR_PIECE_MAX (SIZE_MAX / 4)

typedef struct rr_block rr_block_t;
struct rr_block {
    rr_block_t *next;
    size_t cap;
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

/* A root: its reply first, so that the pointer hiredis hands to freeObject is the block's. */
typedef struct {
    redisReply reply;
    rr_block_t *more; /* further blocks, for what did not fit in data */
    size_t cap;
    size_t used;
    alignas(max_align_t) unsigned char data[];
} rr_root_t;

static void *rr_string(const redisReadTask *task, char *str, size_t len);
static void *rr_array(const redisReadTask *task, int elements);
static void *rr_integer(const redisReadTask *task, long long value);
static void *rr_nil(const redisReadTask *task);
static void rr_free(void *obj);

redisReplyObjectFunctions pl__rs_reply_fns = {rr_string, rr_array, rr_integer, rr_nil, rr_free};

/* The root of the tree task belongs to: the bottom of hiredis's task stack holds it. */
static rr_root_t *rr_root_of(const redisReadTask *task)
{
    while (task->parent)
        task = task->parent;
    return (rr_root_t *)task->obj;
}

static void *rr_alloc(rr_root_t *root, size_t size)
{
    if (size > RR_PIECE_MAX)
        return NULL;
    size = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    if (size <= root->cap - root->used) {
        void *p = root->data + root->used;
        root->used += size;
        return p;
    }
    rr_block_t *b = root->more;
    if (b && size <= b->cap - b->used) {
        void *p = b->data + b->used;
        b->used += size;
        return p;
    }
    /* A new block, twice the last one (up to RR_BLOCK_MAX) or the piece's size: a large
     * reply costs a few allocations, not one per element. */
    size_t cap = b ? b->cap * 2 : RR_BLOCK;
    if (cap > RR_BLOCK_MAX)
        cap = RR_BLOCK_MAX;
    if (cap < size)
        cap = size;
    rr_block_t *nb = malloc(sizeof *nb + cap);
    if (!nb)
        return NULL;
    nb->next = b;
    nb->cap = cap;
    nb->used = size;
    root->more = nb;
    return nb->data;
}

/* A new reply object of type: the root of its tree (with extra bytes of room for the rest)
 * or a child placed in its parent's element array. */
static redisReply *rr_new(const redisReadTask *task, int type, size_t extra)
{
    redisReply *r;
    if (!task->parent) {
        if (extra > RR_PIECE_MAX)
            return NULL;
        rr_root_t *root = malloc(sizeof *root + extra);
        if (!root)
            return NULL;
        root->more = NULL;
        root->cap = extra;
        root->used = 0;
        r = &root->reply;
    } else {
        r = rr_alloc(rr_root_of(task), sizeof *r);
        if (!r)
            return NULL;
    }
    memset(r, 0, sizeof *r);
    r->type = type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *rr_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = rr_new(task, task->type, task->parent ? 0 : len + 1);
    if (!r)
        return NULL;
    char *buf =
        task->parent ? rr_alloc(rr_root_of(task), len + 1) : (char *)((rr_root_t *)(void *)r)->data;
    if (!buf)
        return NULL; /* the reader reports OOM and frees the root, r with it */
    if (!task->parent)
        ((rr_root_t *)(void *)r)->used = len + 1;
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *rr_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    if (n > SIZE_MAX / sizeof(redisReply *))
        return NULL;
    redisReply *r = rr_new(task, REDIS_REPLY_ARRAY, task->parent ? 0 : RR_BLOCK);
    if (!r)
        return NULL;
    if (n) {
        redisReply **el =
            rr_alloc(task->parent ? rr_root_of(task) : (rr_root_t *)(void *)r, n * sizeof *el);
        if (!el) {
            /* A root the reader does not hold yet (it keeps a reply only once made); a
             * child goes with its root, which the reader frees. */
            if (!task->parent)
                rr_free(r);
            return NULL;
        }
        memset(el, 0, n * sizeof *el);
        r->element = el;
    }
    r->elements = n;
    return r;
}

static void *rr_integer(const redisReadTask *task, long long value)
{
    redisReply *r = rr_new(task, REDIS_REPLY_INTEGER, 0);
    if (r)
        r->integer = value;
    return r;
}

static void *rr_nil(const redisReadTask *task)
{
    return rr_new(task, REDIS_REPLY_NIL, 0);
}

static void rr_free(void *obj)
{
    rr_root_t *root = obj;
    if (!root)
        return;
    rr_block_t *b = root->more;
    while (b) {
        rr_block_t *next = b->next;
        free(b);
        b = next;
    }
    free(root);
}
