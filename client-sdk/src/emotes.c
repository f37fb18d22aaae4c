/* emotes: the emote collection of parley.h — its tables, the parleyd answers that fill it
 * (parley_emotes_add_json) and the blocking GET that fetches them (parley_emotes_load).
 *
 * Each kind has an open-addressing hash table (linear probing, at most half full) from a
 * name to one allocation holding the emote and its strings. The hash is SipHash-2-4 under a
 * random key per collection: names come from a server and from 7TV's users, and a keyed
 * hash keeps crafted names from piling into one probe run, which would make the lookup done
 * for every word of every message slow. */
#include "emotes.h"

#include "http.h"
#include "internal.h"
#include "util.h"

#include <jansson.h>
#include <uv.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_URL            2048 /* bytes of an emote's image URL, resolved */
#define MAX_PATH           1024 /* bytes of a path given to parley_emotes_load */
#define MAX_DIMENSION      65535
#define MAX_PLATFORM       32
#define MAX_DOMAIN         253
#define DEFAULT_TIMEOUT_MS 10000

/* One emote and its strings in one allocation. */
typedef struct {
    parley_emote pub; /* first: the parley_emote * handed out is the rec_t * */
    size_t name_len;
    uint64_t name_hash, id_hash;
    char data[]; /* id, name, url, each NUL-terminated */
} rec_t;

typedef struct {
    rec_t **slots; /* cap slots (a power of two, or 0), NULL when free */
    size_t cap, n;
} table_t;

struct parley_emotes {
    table_t t[2]; /* PARLEY_EMOTE_7TV, PARLEY_EMOTE_CUSTOM */
    uint64_t k0, k1;
};

/* What one blocking load hands from the HTTP callback back to its caller. */
typedef struct {
    parley_emotes *e;
    parley_emote_kind kind;
    const char *base_url;
    int rc;
} load_t;

static uint64_t siphash(uint64_t k0, uint64_t k1, const void *p, size_t n);
static table_t *table_of(const parley_emotes *e, parley_emote_kind kind);
static rec_t **table_slot(const table_t *t, const char *name, size_t len, uint64_t h);
static int table_grow(table_t *t);
static int emotes_put(parley_emotes *e, table_t *t, rec_t *r);
static const char *str_field(const json_t *o, const char *key, size_t *len);
static int int_field(const json_t *o, const char *key, int *out);
static int name_ok(parley_emote_kind kind, const char *s, size_t n);
static int url_chars_ok(const char *s, size_t n);
static int base_ok(const char *base);
static int rec_from_json(const parley_emotes *e, parley_emote_kind kind, const json_t *o,
                         const char *base_url, rec_t **out);
static void on_loaded(void *ud, const pl__http_resp_t *resp);
static int resolve(const pl__url_t *u, struct sockaddr_storage *ss);
static void close_walk(uv_handle_t *h, void *arg);

/* ---- the keyed hash ---- */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13) ^ v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17) ^ v[2];
    v[2] = rotl(v[2], 32);
}

/* SipHash-2-4 (Aumasson and Bernstein), bytes read little-endian whatever the machine. */
static uint64_t siphash(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t v[4] = {0x736f6d6570736575ULL ^ k0, 0x646f72616e646f6dULL ^ k1,
                     0x6c7967656e657261ULL ^ k0, 0x7465646279746573ULL ^ k1};
    size_t i = 0;
    uint64_t m;
    for (; i + 8 <= n; i += 8) {
        m = 0;
        for (int j = 0; j < 8; j++)
            m |= (uint64_t)s[i + (size_t)j] << (8 * j);
        v[3] ^= m;
        sipround(v);
        sipround(v);
        v[0] ^= m;
    }
    m = (uint64_t)n << 56;
    for (size_t j = 0; i + j < n; j++)
        m |= (uint64_t)s[i + j] << (8 * j);
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the tables ---- */

static table_t *table_of(const parley_emotes *e, parley_emote_kind kind)
{
    return (table_t *)&e->t[kind == PARLEY_EMOTE_CUSTOM];
}

/* The slot holding that name, or the free slot where it would go. The table has a free slot
 * (it is at most half full), so the probe ends. */
static rec_t **table_slot(const table_t *t, const char *name, size_t len, uint64_t h)
{
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        rec_t *r = t->slots[i];
        if (!r || (r->name_hash == h && r->name_len == len && memcmp(r->pub.name, name, len) == 0))
            return &t->slots[i];
    }
}

static int table_grow(table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    rec_t **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return PARLEY_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        rec_t *r = t->slots[i];
        if (!r)
            continue;
        size_t j = (size_t)r->name_hash & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = r;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Takes r into t, replacing the emote of the same name; on failure r stays the caller's. */
static int emotes_put(parley_emotes *e, table_t *t, rec_t *r)
{
    if (t->cap) {
        rec_t **s = table_slot(t, r->pub.name, r->name_len, r->name_hash);
        if (*s) {
            free(*s);
            *s = r;
            return 0;
        }
    }
    if (e->t[0].n + e->t[1].n >= PARLEY_EMOTES_MAX)
        return PARLEY_EMSGSIZE;
    if ((t->n + 1) * 2 > t->cap && table_grow(t) < 0)
        return PARLEY_ENOMEM;
    *table_slot(t, r->pub.name, r->name_len, r->name_hash) = r;
    t->n++;
    return 0;
}

const parley_emote *pl__emotes_lookup(const parley_emotes *e, parley_emote_kind kind,
                                      const char *name, size_t len)
{
    if (!e || (kind != PARLEY_EMOTE_7TV && kind != PARLEY_EMOTE_CUSTOM))
        return NULL;
    const table_t *t = table_of(e, kind);
    if (!t->n)
        return NULL;
    rec_t *r = *table_slot(t, name, len, siphash(e->k0, e->k1, name, len));
    return r ? &r->pub : NULL;
}

uint64_t pl__emote_id_hash(const parley_emote *em)
{
    return ((const rec_t *)em)->id_hash;
}

/* ---- public: the collection ---- */

PARLEY_API int parley_emotes_new(parley_emotes **out)
{
    if (!out)
        return PARLEY_EINVAL;
    parley_emotes *e = calloc(1, sizeof *e);
    if (!e)
        return PARLEY_ENOMEM;
    e->k0 = (uint64_t)pl__random_u32() << 32 | pl__random_u32();
    e->k1 = (uint64_t)pl__random_u32() << 32 | pl__random_u32();
    *out = e;
    return 0;
}

PARLEY_API void parley_emotes_free(parley_emotes *e)
{
    if (!e)
        return;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < e->t[k].cap; i++)
            free(e->t[k].slots[i]);
        free(e->t[k].slots);
    }
    free(e);
}

PARLEY_API const parley_emote *parley_emotes_find(const parley_emotes *e, parley_emote_kind kind,
                                                  const char *name, size_t len)
{
    return name ? pl__emotes_lookup(e, kind, name, len) : NULL;
}

PARLEY_API size_t parley_emotes_count(const parley_emotes *e, parley_emote_kind kind)
{
    if (!e || (kind != PARLEY_EMOTE_7TV && kind != PARLEY_EMOTE_CUSTOM))
        return 0;
    return table_of(e, kind)->n;
}

/* ---- parleyd's answers ---- */

/* A string member without NUL bytes, or NULL. */
static const char *str_field(const json_t *o, const char *key, size_t *len)
{
    const json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!s)
        return NULL;
    *len = json_string_length(v);
    return strlen(s) == *len ? s : NULL;
}

/* An optional integer member in 0..MAX_DIMENSION (absent or null: 0); 0 when it is not. */
static int int_field(const json_t *o, const char *key, int *out)
{
    const json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 1;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_DIMENSION)
        return 0;
    *out = (int)json_integer_value(v);
    return 1;
}

/* A name of that kind (see parley_emote). 7TV names may hold any UTF-8 (jansson has checked
 * it) but whitespace, which would split the word, and control characters, C1 ones (U+0080 to
 * U+009F, encoded C2 80..C2 9F) included, which a terminal could act on when it is shown. */
static int name_ok(parley_emote_kind kind, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (kind == PARLEY_EMOTE_CUSTOM) {
        if (n < PL__CUSTOM_NAME_MIN || n > PL__CUSTOM_NAME_MAX)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!pl__custom_name_char(u[i]))
                return 0;
        return 1;
    }
    if (n < 1 || n > PL__EMOTE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (u[i] <= ' ' || u[i] == 0x7f || (u[i] == 0xc2 && i + 1 < n && u[i + 1] < 0xa0))
            return 0;
    return 1;
}

/* Printable ASCII without spaces: a URL an application can hand on without escaping it. */
static int url_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static int base_ok(const char *base)
{
    size_t n = strlen(base);
    return (strncmp(base, "http://", 7) == 0 || strncmp(base, "https://", 8) == 0) &&
           n <= 2 * PL__URL_MAX_PART && url_chars_ok(base, n);
}

/* One entry of the array as an emote: 0 and *out, 1 when it is malformed (skipped), or
 * PARLEY_ENOMEM. */
static int rec_from_json(const parley_emotes *e, parley_emote_kind kind, const json_t *o,
                         const char *base_url, rec_t **out)
{
    size_t idl = 0, namel = 0, urll = 0;
    const char *id = str_field(o, "id", &idl);
    const char *name = str_field(o, "name", &namel);
    const char *url = str_field(o, "url", &urll);
    /* Ids go into messages' JSON unescaped: pl__is_id keeps them to A-Z a-z 0-9 - _. */
    int width, height;
    const json_t *anim = json_object_get(o, "animated");
    if (!id || !name || !url || !pl__is_id(id) || !name_ok(kind, name, namel) ||
        !int_field(o, "width", &width) || !int_field(o, "height", &height) ||
        (anim && !json_is_null(anim) && !json_is_boolean(anim)))
        return 1;
    /* The image URL, absolute: as it is, "https:" before a scheme-relative one (7TV's CDN
     * URLs come as "//cdn.7tv.app/..."), the server before a path (parleyd's own
     * "/emoji/<id>"). Nothing else: a renderer must not be pointed at file: or data: URLs. */
    const char *pre = "";
    size_t prel = 0;
    if (strncmp(url, "//", 2) == 0) {
        pre = "https:";
        prel = 6;
    } else if (url[0] == '/') {
        if (!base_url)
            return 1;
        pre = base_url;
        prel = strlen(base_url);
        while (prel && base_url[prel - 1] == '/')
            prel--;
    } else if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        return 1;
    }
    if (prel + urll > MAX_URL || !url_chars_ok(url, urll))
        return 1;
    rec_t *r = malloc(sizeof *r + idl + 1 + namel + 1 + prel + urll + 1);
    if (!r)
        return PARLEY_ENOMEM;
    char *p = r->data;
    memcpy(p, id, idl + 1);
    r->pub.id = p;
    p += idl + 1;
    memcpy(p, name, namel + 1);
    r->pub.name = p;
    p += namel + 1;
    memcpy(p, pre, prel);
    memcpy(p + prel, url, urll + 1);
    r->pub.url = p;
    r->pub.kind = kind;
    r->pub.width = width;
    r->pub.height = height;
    r->pub.animated = json_is_true(anim);
    r->name_len = namel;
    r->name_hash = siphash(e->k0, e->k1, name, namel);
    r->id_hash = siphash(e->k0, e->k1, id, idl);
    *out = r;
    return 0;
}

PARLEY_API int parley_emotes_add_json(parley_emotes *e, parley_emote_kind kind, const char *json,
                                      size_t len, const char *base_url)
{
    if (!e || !json || (kind != PARLEY_EMOTE_7TV && kind != PARLEY_EMOTE_CUSTOM) ||
        (base_url && !base_ok(base_url)))
        return PARLEY_EINVAL;
    if (len > PARLEY_EMOTES_MAX_JSON)
        return PARLEY_EMSGSIZE;
    json_t *root = json_loadb(json, len, 0, NULL);
    const json_t *arr = json_object_get(root, kind == PARLEY_EMOTE_7TV ? "emotes" : "emojis");
    if (!json_is_array(arr)) {
        json_decref(root);
        return PARLEY_EPROTO;
    }
    int taken = 0, rc = 0;
    size_t i;
    const json_t *item;
    json_array_foreach(arr, i, item)
    {
        rec_t *r;
        rc = rec_from_json(e, kind, item, base_url, &r);
        if (rc == 1) {
            rc = 0;
            continue;
        }
        if (rc == 0 && (rc = emotes_put(e, table_of(e, kind), r)) < 0)
            free(r);
        if (rc < 0)
            break;
        taken++;
    }
    json_decref(root);
    return rc < 0 ? rc : taken;
}

/* ---- loading from parleyd ---- */

static void on_loaded(void *ud, const pl__http_resp_t *resp)
{
    load_t *l = ud;
    if (resp->err || resp->status != 200)
        l->rc = pl__http_error(resp, NULL, 0);
    else
        l->rc = parley_emotes_add_json(l->e, l->kind, resp->body, resp->len, l->base_url);
}

/* The server's first address, by the system's resolver (this call blocks anyway). */
static int resolve(const pl__url_t *u, struct sockaddr_storage *ss)
{
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(u->host, port, &hints, &res) != 0 || !res)
        return PARLEY_ENETWORK;
    int rc = PARLEY_ENETWORK;
    if (res->ai_addrlen <= sizeof *ss) {
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        rc = 0;
    }
    freeaddrinfo(res);
    return rc;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

PARLEY_API int parley_emotes_load(parley_emotes *e, const char *server_url, const char *path,
                                  parley_emote_kind kind, int timeout_ms)
{
    if (!e || !server_url || !path || (kind != PARLEY_EMOTE_7TV && kind != PARLEY_EMOTE_CUSTOM))
        return PARLEY_EINVAL;
    size_t pl = strlen(path);
    if (path[0] != '/' || pl > MAX_PATH || !url_chars_ok(path, pl))
        return PARLEY_EINVAL;
    if (pl__on_sdk_thread())
        return PARLEY_ESTATE;
    pl__url_t u;
    int rc = pl__url_parse(server_url, &u);
    if (rc < 0)
        return rc;
    struct sockaddr_storage ss;
    char *full = malloc(strlen(u.base) + pl + 1);
    uv_loop_t loop;
    if (!full || uv_loop_init(&loop) < 0) {
        free(full);
        pl__url_free(&u);
        return PARLEY_ENOMEM;
    }
    snprintf(full, strlen(u.base) + pl + 1, "%s%s", u.base, path);
    load_t l = {e, kind, server_url, PARLEY_ENETWORK};
    pl__http_opts_t o = {
        .method = "GET",
        .host = u.host_hdr,
        .path = full,
        .timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : DEFAULT_TIMEOUT_MS,
        .max_response = PARLEY_EMOTES_MAX_JSON,
    };
    pl__http_req_t *req;
    rc = resolve(&u, &ss);
    if (rc == 0)
        rc = pl__http_start(&loop, (const struct sockaddr *)&ss, &o, on_loaded, &l, &req);
    /* The loop runs even after a failed start: a refused connect closes its handles there. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, close_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    free(full);
    pl__url_free(&u);
    return rc < 0 ? rc : l.rc;
}

PARLEY_API int parley_emotes_load_7tv_global(parley_emotes *e, const char *server_url,
                                             int timeout_ms)
{
    return parley_emotes_load(e, server_url, "/emotes/7tv/global", PARLEY_EMOTE_7TV, timeout_ms);
}

PARLEY_API int parley_emotes_load_7tv_user(parley_emotes *e, const char *server_url,
                                           const char *platform, const char *user_id,
                                           int timeout_ms)
{
    if (!platform || !user_id || !pl__is_id(user_id) || !*platform ||
        strlen(platform) > MAX_PLATFORM ||
        strspn(platform, "abcdefghijklmnopqrstuvwxyz") != strlen(platform))
        return PARLEY_EINVAL;
    char path[64 + MAX_PLATFORM + 64];
    snprintf(path, sizeof path, "/emotes/7tv/users/%s/%s", platform, user_id);
    return parley_emotes_load(e, server_url, path, PARLEY_EMOTE_7TV, timeout_ms);
}

PARLEY_API int parley_emotes_load_7tv_set(parley_emotes *e, const char *server_url,
                                          const char *set_id, int timeout_ms)
{
    if (!set_id || !pl__is_id(set_id))
        return PARLEY_EINVAL;
    char path[64 + 64];
    snprintf(path, sizeof path, "/emotes/7tv/emote-sets/%s", set_id);
    return parley_emotes_load(e, server_url, path, PARLEY_EMOTE_7TV, timeout_ms);
}

PARLEY_API int parley_emotes_load_custom(parley_emotes *e, const char *server_url,
                                         const char *domain, int timeout_ms)
{
    /* A DNS name's characters need no percent-encoding in a query; which names parleyd
     * accepts is its business (it answers invalid_request). */
    if (!domain || !*domain || strlen(domain) > MAX_DOMAIN ||
        strspn(domain, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") !=
            strlen(domain))
        return PARLEY_EINVAL;
    char path[32 + MAX_DOMAIN];
    snprintf(path, sizeof path, "/emoji/list?domain=%s", domain);
    return parley_emotes_load(e, server_url, path, PARLEY_EMOTE_CUSTOM, timeout_ms);
}
