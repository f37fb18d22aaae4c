/* 7TV API v3 answers turned into Parley's EmoteData (DESIGN section 6, docs/api.md "7TV
 * emotes"), and the checks on what a client may put into an upstream URL. Pure functions
 * with no I/O, kept apart from the upstream client (emotes.c) so that they can be read and
 * tested on their own. */
#ifndef PL_SEVENTV_H
#define PL_SEVENTV_H

#include "common/str.h"

#include <stdbool.h>
#include <stddef.h>

#define PL_7TV_ID_MAX     64    /* set ids, platform user ids and emote ids, in bytes */
#define PL_7TV_NAME_MAX   100   /* an emote's name in a set, in bytes */
#define PL_7TV_URL_MAX    512   /* an emote's image URL, in bytes */
#define PL_7TV_MAX_EMOTES 10000 /* emotes kept from one set; the rest are dropped */

typedef enum {
    PL_7TV_SET,  /* /emote-sets/global, /emote-sets/{id}: an emote set */
    PL_7TV_USER, /* /users/{platform}/{id}: a user connection holding `emote_set` */
} pl_7tv_kind_t;

/* 1..64 of [0-9A-Za-z]: a 7TV emote-set id (or an emote id). */
bool pl_7tv_valid_set_id(pl_str_t s);
/* One of twitch, youtube, kick, discord, in lower case. */
bool pl_7tv_valid_platform(pl_str_t s);
/* 1..64 of [0-9A-Za-z_-]: a user id on one of those platforms. */
bool pl_7tv_valid_user_id(pl_str_t s);

/* Normalizes a 7TV answer (body, len bytes) of the given kind and appends
 * {"emotes":[{id,name,url,animated,width,height},...]} to out. Malformed emotes are skipped
 * (counted in *skipped when not NULL); at most max_emotes are kept. Returns 0, PL_EINVAL
 * when the body is not JSON or lacks the shape of its kind (out is then unchanged), or
 * PL_ENOMEM. */
int pl_7tv_normalize(const char *body, size_t len, pl_7tv_kind_t kind, size_t max_emotes,
                     pl_buf_t *out, size_t *skipped);

#endif
