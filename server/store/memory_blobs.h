/* The memory engine's custom emoji and its cache of upstream answers (store/memory.c hands
 * these operations over). Same semantics as the store interface's emoji_* and cache_*;
 * callbacks run before the call returns. */
#ifndef PL_STORE_MEMORY_BLOBS_H
#define PL_STORE_MEMORY_BLOBS_H

#include "common/map.h"
#include "store/store.h"

typedef struct pl_mem_blobs pl_mem_blobs_t;

/* Reads emoji_per_domain_max, emoji_bytes_max and cache_bytes_max from opts (0: no bound). */
int pl_mem_blobs_new(const pl_store_opts_t *opts, pl_mem_blobs_t **out);
void pl_mem_blobs_free(pl_mem_blobs_t *b);

int pl_mem_emoji_add(pl_mem_blobs_t *b, const pl_emoji_t *e, const unsigned char *data, size_t len,
                     pl_store_emoji_cb cb, void *ud);
int pl_mem_emoji_get(pl_mem_blobs_t *b, const char *id, bool with_data, pl_store_emoji_cb cb,
                     void *ud);
int pl_mem_emoji_list(pl_mem_blobs_t *b, const char *domain, pl_store_emoji_list_cb cb, void *ud);
int pl_mem_emoji_delete(pl_mem_blobs_t *b, const char *id, pl_store_status_cb cb, void *ud);

int pl_mem_cache_get(pl_mem_blobs_t *b, const char *key, int64_t now, pl_store_cache_cb cb,
                     void *ud);
int pl_mem_cache_put(pl_mem_blobs_t *b, const char *key, const unsigned char *data, size_t len,
                     uint32_t keep_s, int64_t now, pl_store_status_cb cb, void *ud);

#endif
