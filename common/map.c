#include "common/map.h"
#include "common/error.h"
#include "common/ids.h"

#include <stdlib.h>
#include <string.h>

struct pl__map_entry {
    pl__map_entry_t *next;
    void *val;
    uint64_t hash;
    size_t klen;
    char key[];
};

static uint64_t hash_seed;

/* FNV-1a mixed with a random seed: cheap, and unpredictable enough that crafted ids cannot
 * degrade a bucket into a long list. */
uint64_t pl_hash(const void *p, size_t n)
{
    if (hash_seed == 0) {
        uint64_t s = 0;
        if (pl_random_bytes(&s, sizeof s) != 0 || s == 0)
            s = 0x9e3779b97f4a7c15ull;
        hash_seed = s;
    }
    const unsigned char *c = p;
    uint64_t h = 0xcbf29ce484222325ull ^ hash_seed;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void pl_map_init(pl_map_t *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->size = 0;
}

void pl_map_free(pl_map_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        pl__map_entry_t *e = m->buckets[i];
        while (e) {
            pl__map_entry_t *n = e->next;
            free(e);
            e = n;
        }
    }
    free(m->buckets);
    pl_map_init(m);
}

size_t pl_map_size(const pl_map_t *m)
{
    return m->size;
}

static pl__map_entry_t **find_slot(const pl_map_t *m, const char *key, size_t klen, uint64_t h)
{
    if (!m->nbuckets)
        return NULL;
    pl__map_entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp) {
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
        pp = &(*pp)->next;
    }
    return pp;
}

void *pl_map_get(const pl_map_t *m, const char *key, size_t klen)
{
    pl__map_entry_t **pp = find_slot(m, key, klen, pl_hash(key, klen));
    return pp && *pp ? (*pp)->val : NULL;
}

static int grow(pl_map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    pl__map_entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return PL_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        pl__map_entry_t *e = m->buckets[i];
        while (e) {
            pl__map_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

int pl_map_put(pl_map_t *m, const char *key, size_t klen, void *val)
{
    uint64_t h = pl_hash(key, klen);
    pl__map_entry_t **pp = find_slot(m, key, klen, h);
    if (pp && *pp) {
        (*pp)->val = val;
        return 0;
    }
    if (m->size + 1 > m->nbuckets) {
        if (grow(m))
            return PL_ENOMEM;
    }
    pl__map_entry_t *e = malloc(sizeof *e + klen + 1);
    if (!e)
        return PL_ENOMEM;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->klen = klen;
    e->hash = h;
    e->val = val;
    size_t i = h & (m->nbuckets - 1);
    e->next = m->buckets[i];
    m->buckets[i] = e;
    m->size++;
    return 0;
}

void *pl_map_del(pl_map_t *m, const char *key, size_t klen)
{
    pl__map_entry_t **pp = find_slot(m, key, klen, pl_hash(key, klen));
    if (!pp || !*pp)
        return NULL;
    pl__map_entry_t *e = *pp;
    void *val = e->val;
    *pp = e->next;
    free(e);
    m->size--;
    return val;
}

void pl_map_iter_init(pl_map_iter_t *it, const pl_map_t *m)
{
    it->map = m;
    it->bucket = 0;
    it->next = m->nbuckets ? m->buckets[0] : NULL;
}

int pl_map_iter_next(pl_map_iter_t *it, const char **key, size_t *klen, void **val)
{
    const pl_map_t *m = it->map;
    while (!it->next) {
        if (++it->bucket >= m->nbuckets)
            return 0;
        it->next = m->buckets[it->bucket];
    }
    pl__map_entry_t *e = it->next;
    it->next = e->next; /* saved first: the caller may delete e */
    if (key)
        *key = e->key;
    if (klen)
        *klen = e->klen;
    if (val)
        *val = e->val;
    return 1;
}
