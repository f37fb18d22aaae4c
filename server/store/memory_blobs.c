/* The memory engine's custom emoji and upstream cache (store/memory_blobs.h): kept apart
 * from the rooms because they share nothing with them but the engine.
 *
 * Emoji: by id (one map) and by domain (a map of domains, each with its names and its
 * emoji in upload order). Every image is counted against emoji_bytes_max; an upload past
 * it fails PL_ELIMIT rather than evicting anyone's emoji.
 * Cache: by key, with a least-recently-stored list; past cache_bytes_max the oldest values
 * go first. An expired value is dropped when it is looked up or when room is needed. */
#include "store/memory_blobs.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct emoji_rec emoji_rec_t;
struct emoji_rec {
    pl_emoji_t meta;
    unsigned char *data;
    emoji_rec_t *prev, *next; /* in its domain, upload order */
};

typedef struct {
    pl_map_t names; /* name -> emoji_rec_t */
    emoji_rec_t *head, *tail;
    size_t n;
} domain_t;

typedef struct cache_ent cache_ent_t;
struct cache_ent {
    cache_ent_t *prev, *next; /* oldest first */
    char *key;
    unsigned char *data;
    size_t len;
    int64_t stored_at_ms, expires_at_ms;
};

struct pl_mem_blobs {
    pl_store_opts_t opts;
    pl_map_t emoji;   /* id -> emoji_rec_t */
    pl_map_t domains; /* domain -> domain_t */
    uint64_t emoji_bytes;
    pl_map_t cache; /* key -> cache_ent_t */
    cache_ent_t *oldest, *newest;
    uint64_t cache_bytes;
};

static void cache_drop(pl_mem_blobs_t *b, cache_ent_t *c);

int pl_mem_blobs_new(const pl_store_opts_t *opts, pl_mem_blobs_t **out)
{
    pl_mem_blobs_t *b = calloc(1, sizeof *b);
    if (!b)
        return PL_ENOMEM;
    b->opts = *opts;
    pl_map_init(&b->emoji);
    pl_map_init(&b->domains);
    pl_map_init(&b->cache);
    *out = b;
    return 0;
}

void pl_mem_blobs_free(pl_mem_blobs_t *b)
{
    if (!b)
        return;
    pl_map_iter_t it;
    void *val;
    pl_map_iter_init(&it, &b->emoji);
    while (pl_map_iter_next(&it, NULL, NULL, &val)) {
        emoji_rec_t *r = val;
        free(r->data);
        free(r);
    }
    pl_map_iter_init(&it, &b->domains);
    while (pl_map_iter_next(&it, NULL, NULL, &val)) {
        domain_t *d = val;
        pl_map_free(&d->names);
        free(d);
    }
    while (b->oldest)
        cache_drop(b, b->oldest);
    pl_map_free(&b->emoji);
    pl_map_free(&b->domains);
    pl_map_free(&b->cache);
    free(b);
}

/* ---- emoji ---- */

int pl_mem_emoji_add(pl_mem_blobs_t *b, const pl_emoji_t *e, const unsigned char *data, size_t len,
                     pl_store_emoji_cb cb, void *ud)
{
    if (!e || !cb || (!data && len) || !e->id[0] || !e->domain[0] || !e->name[0])
        return PL_EINVAL;
    domain_t *d = pl_map_get(&b->domains, e->domain, strlen(e->domain));
    if (d && pl_map_get(&d->names, e->name, strlen(e->name))) {
        cb(ud, PL_EEXIST, NULL, NULL, 0);
        return 0;
    }
    if (pl_map_get(&b->emoji, e->id, strlen(e->id))) {
        cb(ud, PL_EEXIST, NULL, NULL, 0);
        return 0;
    }
    if ((d && b->opts.emoji_per_domain_max && d->n >= b->opts.emoji_per_domain_max) ||
        (b->opts.emoji_bytes_max && b->emoji_bytes + len > b->opts.emoji_bytes_max)) {
        cb(ud, PL_ELIMIT, NULL, NULL, 0);
        return 0;
    }
    emoji_rec_t *r = calloc(1, sizeof *r);
    unsigned char *copy = malloc(len ? len : 1);
    bool new_domain = !d;
    if (new_domain && (d = calloc(1, sizeof *d)) != NULL)
        pl_map_init(&d->names);
    if (!r || !copy || !d)
        goto oom;
    r->meta = *e;
    r->meta.size = (uint32_t)len;
    if (len)
        memcpy(copy, data, len);
    r->data = copy;
    if (pl_map_put(&b->emoji, e->id, strlen(e->id), r))
        goto oom;
    if (pl_map_put(&d->names, e->name, strlen(e->name), r)) {
        pl_map_del(&b->emoji, e->id, strlen(e->id));
        goto oom;
    }
    if (new_domain && pl_map_put(&b->domains, e->domain, strlen(e->domain), d)) {
        pl_map_del(&d->names, e->name, strlen(e->name));
        pl_map_del(&b->emoji, e->id, strlen(e->id));
        goto oom;
    }
    r->prev = d->tail;
    if (d->tail)
        d->tail->next = r;
    else
        d->head = r;
    d->tail = r;
    d->n++;
    b->emoji_bytes += len;
    cb(ud, 0, &r->meta, NULL, 0);
    return 0;
oom:
    if (new_domain && d) {
        pl_map_free(&d->names);
        free(d);
    }
    free(copy);
    free(r);
    cb(ud, PL_ENOMEM, NULL, NULL, 0);
    return 0;
}

int pl_mem_emoji_get(pl_mem_blobs_t *b, const char *id, bool with_data, pl_store_emoji_cb cb,
                     void *ud)
{
    if (!id || !cb)
        return PL_EINVAL;
    emoji_rec_t *r = pl_map_get(&b->emoji, id, strlen(id));
    if (!r)
        cb(ud, PL_ENOTFOUND, NULL, NULL, 0);
    else if (with_data)
        cb(ud, 0, &r->meta, r->data, r->meta.size);
    else
        cb(ud, 0, &r->meta, NULL, 0);
    return 0;
}

int pl_mem_emoji_list(pl_mem_blobs_t *b, const char *domain, pl_store_emoji_list_cb cb, void *ud)
{
    if (!domain || !cb)
        return PL_EINVAL;
    domain_t *d = pl_map_get(&b->domains, domain, strlen(domain));
    if (!d || !d->n) {
        cb(ud, 0, NULL, 0);
        return 0;
    }
    pl_emoji_t *list = malloc(d->n * sizeof *list);
    if (!list) {
        cb(ud, PL_ENOMEM, NULL, 0);
        return 0;
    }
    size_t n = 0;
    for (emoji_rec_t *r = d->head; r; r = r->next)
        list[n++] = r->meta;
    cb(ud, 0, list, n);
    free(list);
    return 0;
}

int pl_mem_emoji_delete(pl_mem_blobs_t *b, const char *id, pl_store_status_cb cb, void *ud)
{
    if (!id || !cb)
        return PL_EINVAL;
    emoji_rec_t *r = pl_map_del(&b->emoji, id, strlen(id));
    if (!r) {
        cb(ud, PL_ENOTFOUND);
        return 0;
    }
    domain_t *d = pl_map_get(&b->domains, r->meta.domain, strlen(r->meta.domain));
    if (d) {
        pl_map_del(&d->names, r->meta.name, strlen(r->meta.name));
        if (r->prev)
            r->prev->next = r->next;
        else
            d->head = r->next;
        if (r->next)
            r->next->prev = r->prev;
        else
            d->tail = r->prev;
        if (--d->n == 0) {
            pl_map_del(&b->domains, r->meta.domain, strlen(r->meta.domain));
            pl_map_free(&d->names);
            free(d);
        }
    }
    b->emoji_bytes -= r->meta.size;
    free(r->data);
    free(r);
    cb(ud, 0);
    return 0;
}

/* ---- cache ---- */

static void cache_unlink(pl_mem_blobs_t *b, cache_ent_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        b->oldest = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        b->newest = c->prev;
}

static void cache_drop(pl_mem_blobs_t *b, cache_ent_t *c)
{
    cache_unlink(b, c);
    pl_map_del(&b->cache, c->key, strlen(c->key));
    b->cache_bytes -= c->len;
    free(c->key);
    free(c->data);
    free(c);
}

int pl_mem_cache_get(pl_mem_blobs_t *b, const char *key, int64_t now, pl_store_cache_cb cb,
                     void *ud)
{
    size_t klen = key ? strlen(key) : 0;
    if (!cb || klen == 0 || klen > 200)
        return PL_EINVAL;
    cache_ent_t *c = pl_map_get(&b->cache, key, klen);
    if (c && c->expires_at_ms <= now) {
        cache_drop(b, c);
        c = NULL;
    }
    if (!c)
        cb(ud, PL_ENOTFOUND, NULL, 0, 0);
    else
        cb(ud, 0, c->data, c->len, c->stored_at_ms);
    return 0;
}

int pl_mem_cache_put(pl_mem_blobs_t *b, const char *key, const unsigned char *data, size_t len,
                     uint32_t keep_s, int64_t now, pl_store_status_cb cb, void *ud)
{
    size_t klen = key ? strlen(key) : 0;
    if (!cb || klen == 0 || klen > 200 || (!data && len) || keep_s == 0)
        return PL_EINVAL;
    if (b->opts.cache_bytes_max && len > b->opts.cache_bytes_max) {
        cb(ud, PL_ELIMIT);
        return 0;
    }
    cache_ent_t *old = pl_map_get(&b->cache, key, klen);
    if (old)
        cache_drop(b, old);
    /* Room: expired values first (anywhere), then the oldest stored. */
    if (b->opts.cache_bytes_max && b->cache_bytes + len > b->opts.cache_bytes_max) {
        for (cache_ent_t *c = b->oldest, *next; c; c = next) {
            next = c->next;
            if (c->expires_at_ms <= now)
                cache_drop(b, c);
        }
        while (b->oldest && b->cache_bytes + len > b->opts.cache_bytes_max)
            cache_drop(b, b->oldest);
    }
    cache_ent_t *c = calloc(1, sizeof *c);
    char *k = c ? strdup(key) : NULL;
    unsigned char *copy = k ? malloc(len ? len : 1) : NULL;
    if (!copy || pl_map_put(&b->cache, key, klen, c)) {
        free(copy);
        free(k);
        free(c);
        cb(ud, PL_ENOMEM);
        return 0;
    }
    if (len)
        memcpy(copy, data, len);
    c->key = k;
    c->data = copy;
    c->len = len;
    c->stored_at_ms = now;
    c->expires_at_ms = now + (int64_t)keep_s * 1000;
    c->prev = b->newest;
    if (b->newest)
        b->newest->next = c;
    else
        b->oldest = c;
    b->newest = c;
    b->cache_bytes += len;
    cb(ud, 0);
    return 0;
}
