/* A string-keyed hash map (separate chaining, keys copied, values borrowed).
 *
 * Iteration tolerates deleting the entry just returned, so sweeps can remove expired items
 * as they go. Keys are hashed with a per-process random seed so that clients cannot
 * choose ids that collide on purpose. */
#ifndef PL_MAP_H
#define PL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl__map_entry pl__map_entry_t;

typedef struct {
    pl__map_entry_t **buckets;
    size_t nbuckets;
    size_t size;
} pl_map_t;

typedef struct {
    const pl_map_t *map;
    size_t bucket;
    pl__map_entry_t *next;
} pl_map_iter_t;

void pl_map_init(pl_map_t *m);
/* Frees the map's own memory; values are the caller's to free first. */
void pl_map_free(pl_map_t *m);
size_t pl_map_size(const pl_map_t *m);
void *pl_map_get(const pl_map_t *m, const char *key, size_t klen);
/* Inserts or replaces. Returns 0 or PL_ENOMEM. */
int pl_map_put(pl_map_t *m, const char *key, size_t klen, void *val);
/* Removes key and returns its value, or NULL when absent. */
void *pl_map_del(pl_map_t *m, const char *key, size_t klen);

void pl_map_iter_init(pl_map_iter_t *it, const pl_map_t *m);
/* Returns 1 and sets key, klen and val for the next entry, or 0 at the end. */
int pl_map_iter_next(pl_map_iter_t *it, const char **key, size_t *klen, void **val);

uint64_t pl_hash(const void *p, size_t n);

#endif
