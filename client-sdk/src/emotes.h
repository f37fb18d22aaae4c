/* emotes: what emotes.c (the collection, its JSON and its loading) shares with message.c
 * (the parser and the id lists). */
#ifndef PL_SDK_EMOTES_H
#define PL_SDK_EMOTES_H

#include <stddef.h>
#include <stdint.h>

#include "parley.h"

#define PL__EMOTE_NAME_MAX  100 /* bytes of a 7TV emote name */
#define PL__CUSTOM_NAME_MIN 2   /* characters of a custom emoji name */
#define PL__CUSTOM_NAME_MAX 32

/* The emote of that kind and name, or NULL (e NULL, or no such emote). */
const parley_emote *pl__emotes_lookup(const parley_emotes *e, parley_emote_kind kind,
                                      const char *name, size_t len);
/* The collection's keyed hash of its emote's id (computed when the emote was added), so
 * that the id lists deduplicate in linear time whatever ids a server sends. */
uint64_t pl__emote_id_hash(const parley_emote *em);

/* A custom emoji name character: A-Z a-z 0-9 _. */
static inline int pl__custom_name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* ASCII whitespace: what separates the words of a message. */
static inline int pl__space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

#endif
