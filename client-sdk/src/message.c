/* message: message text against an emote collection (parley.h) — parley_message_parse()
 * splits it into text, 7TV emote and custom emoji tokens; parley_message_emote_ids() lists
 * the distinct emotes a sender puts in its message's emoteIds and customEmojiIds.
 *
 * One pass after the UTF-8 check: each word (a run between ASCII whitespace) is looked up
 * whole among the 7TV emotes, once; words that are not 7TV emotes are scanned for ":name:"
 * left to right, each byte read at most twice (a candidate name stops after 33 characters
 * and the scan resumes where it stopped). Every lookup hashes at most 100 bytes, so time is
 * linear in the text whatever it holds. */
#include "emotes.h"

#include <stdlib.h>
#include <string.h>

#define TOKENS_MIN 16

/* The tokens being built; text from `pending` up to the current point is not yet a token. */
typedef struct {
    parley_token *v;
    size_t n, cap;
    const char *text;
    size_t pending;
} toks_t;

static int utf8_valid(const unsigned char *s, size_t n);
static int push(toks_t *t, parley_token_kind kind, size_t from, size_t to, const parley_emote *em);
static int emit_emote(toks_t *t, size_t from, size_t to, const parley_emote *em);
static int scan_custom(const parley_emotes *e, toks_t *t, size_t from, size_t to);

/* Well-formed UTF-8 as Unicode's table 3-7 defines it: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        unsigned char lo = 0x80, hi = 0xbf; /* the bounds of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if (n - i - 1 < more || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}

static int push(toks_t *t, parley_token_kind kind, size_t from, size_t to, const parley_emote *em)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : TOKENS_MIN;
        parley_token *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return PARLEY_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    parley_token *tok = &t->v[t->n++];
    tok->kind = kind;
    tok->text = t->text + from;
    tok->len = to - from;
    tok->emote = em;
    return 0;
}

/* An emote over [from, to): the text pending before it becomes one token first. */
static int emit_emote(toks_t *t, size_t from, size_t to, const parley_emote *em)
{
    if (t->pending < from && push(t, PARLEY_TOKEN_TEXT, t->pending, from, NULL) < 0)
        return PARLEY_ENOMEM;
    if (push(t, (parley_token_kind)em->kind, from, to, em) < 0)
        return PARLEY_ENOMEM;
    t->pending = to;
    return 0;
}

/* The custom emoji in the word [from, to). After a colon that opens no known emoji the scan
 * resumes at the character that ended its would-be name, so that a closing colon can open
 * the next one ("a:x:wave:") and no byte is read more than twice. */
static int scan_custom(const parley_emotes *e, toks_t *t, size_t from, size_t to)
{
    const unsigned char *s = (const unsigned char *)t->text;
    size_t k = from;
    while (k < to) {
        if (s[k] != ':') {
            k++;
            continue;
        }
        size_t m = k + 1;
        while (m < to && m - k - 1 <= PL__CUSTOM_NAME_MAX && pl__custom_name_char(s[m]))
            m++;
        size_t nl = m - k - 1;
        const parley_emote *em = NULL;
        if (m < to && s[m] == ':' && nl >= PL__CUSTOM_NAME_MIN && nl <= PL__CUSTOM_NAME_MAX)
            em = pl__emotes_lookup(e, PARLEY_EMOTE_CUSTOM, t->text + k + 1, nl);
        if (!em) {
            k = m;
            continue;
        }
        if (emit_emote(t, k, m + 1, em) < 0)
            return PARLEY_ENOMEM;
        k = m + 1;
    }
    return 0;
}

PARLEY_API int parley_message_parse(const parley_emotes *e, const char *text, size_t len,
                                    parley_token **out, size_t *n)
{
    if (!out || !n)
        return PARLEY_EINVAL;
    *out = NULL;
    *n = 0;
    if (!text && len)
        return PARLEY_EINVAL;
    if (len > PARLEY_MESSAGE_MAX_TEXT)
        return PARLEY_EMSGSIZE;
    const unsigned char *s = (const unsigned char *)text;
    if (!utf8_valid(s, len))
        return PARLEY_EINVAL;
    toks_t t = {NULL, 0, 0, text, 0};
    int have_7tv = parley_emotes_count(e, PARLEY_EMOTE_7TV) > 0;
    int have_custom = parley_emotes_count(e, PARLEY_EMOTE_CUSTOM) > 0;
    size_t i = 0;
    int rc = 0;
    while (i < len && rc == 0) {
        if (pl__space(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && !pl__space(s[j]))
            j++;
        const parley_emote *em = NULL;
        if (have_7tv && j - i <= PL__EMOTE_NAME_MAX)
            em = pl__emotes_lookup(e, PARLEY_EMOTE_7TV, text + i, j - i);
        if (em)
            rc = emit_emote(&t, i, j, em);
        else if (have_custom)
            rc = scan_custom(e, &t, i, j);
        i = j;
    }
    if (rc == 0 && t.pending < len)
        rc = push(&t, PARLEY_TOKEN_TEXT, t.pending, len, NULL);
    if (rc < 0) {
        free(t.v);
        return rc;
    }
    *out = t.v;
    *n = t.n;
    return 0;
}

PARLEY_API void parley_tokens_free(parley_token *tokens)
{
    free(tokens);
}

PARLEY_API int parley_message_emote_ids(const parley_emotes *e, const char *text, size_t len,
                                        parley_emote_ids *ids)
{
    if (!ids)
        return PARLEY_EINVAL;
    memset(ids, 0, sizeof *ids);
    parley_token *tv;
    size_t n, emotes = 0, n7 = 0;
    int rc = parley_message_parse(e, text, len, &tv, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        emotes += tv[i].emote != NULL;
        n7 += tv[i].kind == PARLEY_TOKEN_EMOTE;
    }
    if (!emotes) {
        parley_tokens_free(tv);
        return 0;
    }
    /* Both lists in one block (7TV ids first), and a set of the ids seen, keyed by kind and
     * id (two names of one 7TV set may stand for the same emote), at most half full. */
    size_t cap = 2;
    while (cap < 2 * emotes)
        cap *= 2;
    const char **block = malloc(emotes * sizeof *block);
    const parley_emote **seen = calloc(cap, sizeof *seen);
    if (!block || !seen) {
        free(block);
        free(seen);
        parley_tokens_free(tv);
        return PARLEY_ENOMEM;
    }
    ids->emote_ids = block;
    ids->custom_emoji_ids = block + n7;
    for (size_t i = 0; i < n; i++) {
        const parley_emote *em = tv[i].emote;
        if (!em)
            continue;
        size_t j = (size_t)(pl__emote_id_hash(em) ^ (uint64_t)em->kind) & (cap - 1);
        while (seen[j] && !(seen[j]->kind == em->kind && strcmp(seen[j]->id, em->id) == 0))
            j = (j + 1) & (cap - 1);
        if (seen[j])
            continue;
        seen[j] = em;
        if (em->kind == PARLEY_EMOTE_7TV)
            ids->emote_ids[ids->n_emote_ids++] = em->id;
        else
            ids->custom_emoji_ids[ids->n_custom_emoji_ids++] = em->id;
    }
    free(seen);
    parley_tokens_free(tv);
    return 0;
}

PARLEY_API void parley_emote_ids_free(parley_emote_ids *ids)
{
    if (!ids)
        return;
    free(ids->emote_ids); /* the block both lists live in */
    memset(ids, 0, sizeof *ids);
}
