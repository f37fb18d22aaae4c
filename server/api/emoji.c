/* Custom emoji (DESIGN section 6, docs/api.md "Custom emoji"): per-domain images uploaded by
 * users whose token's `domains` claim holds the domain, kept in the store without expiry and
 * served with immutable caching.
 *
 * What an image is comes from its own bytes (emoji/image.c), never from its name; the
 * Content-Type the client sends must agree with them. A browser request (one with an
 * Origin) must come from an origin allowed for the emoji's domain: one in
 * PARLEY_ALLOWED_ORIGINS, or the domain itself or one of its subdomains. */
#include "api/api.h"
#include "emoji/image.h"

#include "common/error.h"
#include "common/ids.h"
#include "common/log.h"

#include <llhttp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMOJI_BYTES_MAX     (256u * 1024) /* an upload's body */
#define EMOJI_SIDE_MAX      512           /* pixels, each side */
#define EMOJI_NAME_MIN      2
#define EMOJI_CACHE_CONTROL "public, max-age=31536000, immutable"

/* Upload outcomes for parley_emoji_uploads_total. */
enum { UP_CREATED, UP_INVALID, UP_FORBIDDEN, UP_CONFLICT, UP_COUNT };
static const char *const up_names[UP_COUNT] = {"created", "invalid", "forbidden", "conflict"};
static uint64_t up_counts[UP_COUNT];
static uint64_t up_bytes;

typedef struct {
    char id[PL_ID_SIZE];
    pl_emoji_t meta;
} emoji_ctx_t;

static bool domain_valid(char *d);
static bool name_valid(const char *n);
static bool origin_ok(pl_call_t *call, const char *domain);
static bool user_has_domain(const pl_call_t *call, const char *domain);
static json_t *emoji_json(const pl_emoji_t *e);
static void refuse(pl_call_t *call, int outcome, int status, const char *code, const char *msg);
static bool read_domain(pl_call_t *call, char *domain, size_t cap);
static void list_step(pl_call_t *call);
static void on_listed(void *ud, int status, const pl_emoji_t *list, size_t n);
static void upload_step(pl_call_t *call);
static void on_added(void *ud, int status, const pl_emoji_t *e, const unsigned char *data,
                     size_t len);
static void on_got(void *ud, int status, const pl_emoji_t *e, const unsigned char *data,
                   size_t len);
static void on_got_for_delete(void *ud, int status, const pl_emoji_t *e, const unsigned char *data,
                              size_t len);
static void on_deleted(void *ud, int status);
static bool content_type_format(pl_str_t ct, pl_image_format_t *out);
static void etag_of(const unsigned char *data, size_t len, char out[PL_EMOJI_ETAG_SIZE]);
static bool etag_matches(pl_str_t inm, const char *etag);
static bool read_id(pl_call_t *call, char out[PL_ID_SIZE]);
static emoji_ctx_t *ctx_new(pl_call_t *call);
static bool found(pl_call_t *call, int status);

/* ---- routing hook and metrics ---- */

uint32_t pl_api_body_limit(void *ud, const pl_http_req_t *req)
{
    pl_app_t *app = ud;
    /* The image is the body; anything above the emoji limit is refused with 413 while it
     * arrives, before it is buffered. */
    if (req->method == HTTP_POST && pl_str_eq(req->path, "/emoji/upload"))
        return EMOJI_BYTES_MAX;
    return app->cfg->max_body;
}

void pl_api_emoji_metrics(pl_buf_t *out)
{
    pl_buf_appends(out, "# HELP parley_emoji_uploads_total Custom emoji uploads by outcome "
                        "(rate-limited ones are in parley_rate_limited_total).\n"
                        "# TYPE parley_emoji_uploads_total counter\n");
    for (int i = 0; i < UP_COUNT; i++)
        pl_buf_printf(out, "parley_emoji_uploads_total{result=\"%s\"} %llu\n", up_names[i],
                      (unsigned long long)up_counts[i]);
    pl_buf_printf(out,
                  "# HELP parley_emoji_upload_bytes_total Image bytes of stored uploads.\n"
                  "# TYPE parley_emoji_upload_bytes_total counter\n"
                  "parley_emoji_upload_bytes_total %llu\n",
                  (unsigned long long)up_bytes);
}

/* ---- checks ---- */

/* A DNS name: labels of [a-z0-9-] (1..63, no leading or trailing hyphen) joined by dots,
 * 1..253 bytes. Lower-cases d in place. */
static bool domain_valid(char *d)
{
    size_t n = strlen(d), label = 0;
    if (n == 0 || n > PL_EMOJI_DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c >= 'A' && c <= 'Z')
            d[i] = c = (char)(c - 'A' + 'a');
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return d[n - 1] != '-';
}

static bool name_valid(const char *n)
{
    size_t len = strlen(n);
    if (len < EMOJI_NAME_MIN || len > PL_EMOJI_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Requests without an Origin are not from a browser page and pass. A browser request must
 * come from an origin in PARLEY_ALLOWED_ORIGINS (already given its CORS headers by the
 * dispatcher), or from http(s)://domain or a subdomain of it on any port: those get the CORS
 * headers here. Answers 403 and returns false otherwise. */
static bool origin_ok(pl_call_t *call, const char *domain)
{
    pl_str_t origin = pl_http_header(call->req, "Origin");
    if (!origin.ptr || pl_origin_allowed(&call->app->net, origin))
        return true;
    const char *p = origin.ptr, *end = origin.ptr + origin.len;
    size_t skip = pl_str_starts(origin, "https://") ? 8 : pl_str_starts(origin, "http://") ? 7 : 0;
    bool ok = false;
    if (skip) {
        p += skip;
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *host_end = colon ? colon : end;
        size_t hl = (size_t)(host_end - p), dl = strlen(domain);
        bool port_ok = true;
        for (const char *q = colon ? colon + 1 : end; q < end; q++)
            port_ok = port_ok && *q >= '0' && *q <= '9';
        /* Host names compare without case; the domain is lower-case already. */
        bool same = hl == dl && pl_str_ieq((pl_str_t){p, hl}, domain);
        bool sub =
            hl > dl + 1 && p[hl - dl - 1] == '.' && pl_str_ieq((pl_str_t){p + hl - dl, dl}, domain);
        ok = port_ok && (!colon || colon + 1 < end) && (same || sub);
    }
    if (!ok) {
        refuse(call, UP_FORBIDDEN, 403, "forbidden", "origin not allowed for this domain");
        return false;
    }
    char value[512];
    snprintf(value, sizeof value, "%.*s", (int)origin.len, origin.ptr);
    pl_http_add_header(call->req, "Access-Control-Allow-Origin", value);
    pl_http_add_header(call->req, "Access-Control-Expose-Headers",
                       "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, ETag, "
                       "Age, Warning, X-Cache");
    return true;
}

static bool user_has_domain(const pl_call_t *call, const char *domain)
{
    for (size_t i = 0; i < call->user.ndomains && i < PL_DOMAINS_MAX; i++)
        if (strcmp(call->user.domains[i], domain) == 0)
            return true;
    return false;
}

/* Counts an upload's outcome (only uploads are counted) and answers. */
static void refuse(pl_call_t *call, int outcome, int status, const char *code, const char *msg)
{
    if (call->match.route && strcmp(call->match.route->name, "emoji_upload") == 0)
        up_counts[outcome]++;
    api_error(call, status, code, "%s", msg);
}

static bool read_domain(pl_call_t *call, char *domain, size_t cap)
{
    /* Read into more room than a domain may take, so that a longer one is refused rather
     * than cut to fit. */
    char d[2 * PL_EMOJI_DOMAIN_MAX];
    if (!api_query(call, "domain", d, sizeof d) || !domain_valid(d) || strlen(d) >= cap) {
        refuse(call, UP_INVALID, 400, "invalid_request",
               "domain: required, a DNS name (labels of a-z 0-9 -, at most 253 bytes)");
        return false;
    }
    memcpy(domain, d, strlen(d) + 1);
    return true;
}

/* The declared type, with parameters ("; charset=...") ignored. */
static bool content_type_format(pl_str_t ct, pl_image_format_t *out)
{
    if (!ct.ptr)
        return false;
    const char *semi = memchr(ct.ptr, ';', ct.len);
    size_t n = semi ? (size_t)(semi - ct.ptr) : ct.len;
    while (n && (ct.ptr[n - 1] == ' ' || ct.ptr[n - 1] == '\t'))
        n--;
    pl_str_t t = {ct.ptr, n};
    *out = pl_str_ieq(t, "image/png")    ? PL_IMAGE_PNG
           : pl_str_ieq(t, "image/gif")  ? PL_IMAGE_GIF
           : pl_str_ieq(t, "image/webp") ? PL_IMAGE_WEBP
                                         : PL_IMAGE_NONE;
    return *out != PL_IMAGE_NONE;
}

/* A strong validator from the content: the first 128 bits of its SHA-256, quoted. */
static void etag_of(const unsigned char *data, size_t len, char out[PL_EMOJI_ETAG_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
        memset(md, 0, 16);
    out[0] = '"';
    for (int i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    out[33] = '"';
    out[34] = '\0';
}

/* If-None-Match: "*" or a comma list of entity tags, weak ones compared weakly (RFC 9110
 * 13.1.2: If-None-Match uses the weak comparison). */
static bool etag_matches(pl_str_t inm, const char *etag)
{
    size_t el = strlen(etag);
    const char *p = inm.ptr, *end = inm.ptr + inm.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - s == 1 && *s == '*')
            return true;
        if (e - s > 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if ((size_t)(e - s) == el && memcmp(s, etag, el) == 0)
            return true;
    }
    return false;
}

static json_t *emoji_json(const pl_emoji_t *e)
{
    char url[16 + PL_ID_SIZE];
    snprintf(url, sizeof url, "/emoji/%s", e->id);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:i,s:i,s:b}", "id", e->id, "name", e->name, "url",
                     url, "domain", e->domain, "uploadedBy", e->uploaded_by, "uploadedAt",
                     api_iso_time(e->uploaded_at_ms), "width", (int)e->width, "height",
                     (int)e->height, "animated", e->animated);
}

/* The handler's state, freed with the call; NULL (and answered 503) when out of memory. */
static emoji_ctx_t *ctx_new(pl_call_t *call)
{
    emoji_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        api_error(call, 503, "overloaded", "out of memory");
        return NULL;
    }
    call->extra = ctx;
    call->extra_free = free;
    return ctx;
}

/* A store answer about one emoji: true when it is there; otherwise the call is answered
 * (404, or the store's error). */
static bool found(pl_call_t *call, int status)
{
    if (status == PL_ENOTFOUND)
        api_error(call, 404, "not_found", "no such emoji");
    else if (status)
        api_store_error(call, status);
    return status == 0;
}

/* ---- GET /emoji/list?domain=D ---- */

void api_emoji_list(pl_call_t *call)
{
    emoji_ctx_t *ctx = ctx_new(call);
    if (!ctx)
        return;
    if (!read_domain(call, ctx->meta.domain, sizeof ctx->meta.domain) ||
        !origin_ok(call, ctx->meta.domain))
        return;
    api_rate(call, "list", call->client_ip, &call->app->cfg->rl_list, list_step);
}

static void list_step(pl_call_t *call)
{
    emoji_ctx_t *ctx = call->extra;
    int rc = call->app->store->emoji_list(call->app->store, ctx->meta.domain, on_listed, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_listed(void *ud, int status, const pl_emoji_t *list, size_t n)
{
    pl_call_t *call = ud;
    if (status) {
        api_store_error(call, status);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, emoji_json(&list[i]));
    api_json(call, 200, json_pack("{s:o}", "emojis", arr ? arr : json_array()));
}

/* ---- POST /emoji/upload?domain=D&name=N ---- */

void api_emoji_upload(pl_call_t *call)
{
    emoji_ctx_t *ctx = ctx_new(call);
    if (!ctx)
        return;
    pl_emoji_t *e = &ctx->meta;
    if (!api_auth_user(call, false))
        return;
    if (!read_domain(call, e->domain, sizeof e->domain) || !origin_ok(call, e->domain))
        return;
    if (!user_has_domain(call, e->domain)) {
        refuse(call, UP_FORBIDDEN, 403, "forbidden", "your token's domains do not include it");
        return;
    }
    char name[64];
    if (!api_query(call, "name", name, sizeof name) || !name_valid(name)) {
        refuse(call, UP_INVALID, 400, "invalid_request", "name: required, 2-32 of A-Z a-z 0-9 _");
        return;
    }
    memcpy(e->name, name, strlen(name) + 1);
    api_rate(call, "emoji_upload", call->user.user_id, &call->app->cfg->rl_emoji_upload,
             upload_step);
}

static void upload_step(pl_call_t *call)
{
    emoji_ctx_t *ctx = call->extra;
    pl_emoji_t *e = &ctx->meta;
    const pl_buf_t *body = &call->req->body;
    pl_image_format_t declared;
    if (!content_type_format(pl_http_header(call->req, "Content-Type"), &declared)) {
        refuse(call, UP_INVALID, 415, "unsupported_media_type",
               "Content-Type: image/png, image/gif or image/webp");
        return;
    }
    if (body->len == 0) {
        refuse(call, UP_INVALID, 400, "invalid_request", "the body is empty: send the image");
        return;
    }
    pl_image_info_t info;
    const char *why = NULL;
    int st = pl_image_probe((const unsigned char *)body->data, body->len, &info, &why);
    if (st == PL_IMAGE_UNKNOWN) {
        refuse(call, UP_INVALID, 415, "unsupported_media_type",
               "the body is not a PNG, GIF or WebP image");
        return;
    }
    if (st != PL_IMAGE_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "not a valid image: %s", why ? why : "malformed");
        refuse(call, UP_INVALID, 400, "invalid_request", msg);
        return;
    }
    if (info.format != declared) {
        char msg[160];
        snprintf(msg, sizeof msg, "Content-Type says %s but the image is %s",
                 pl_image_mime(declared), pl_image_mime(info.format));
        refuse(call, UP_INVALID, 415, "unsupported_media_type", msg);
        return;
    }
    if (info.width > EMOJI_SIDE_MAX || info.height > EMOJI_SIDE_MAX) {
        char msg[160];
        snprintf(msg, sizeof msg, "the image is %ux%u; at most %dx%d", info.width, info.height,
                 EMOJI_SIDE_MAX, EMOJI_SIDE_MAX);
        refuse(call, UP_INVALID, 400, "invalid_request", msg);
        return;
    }
    if (pl_id_new(e->id) != 0) {
        api_error(call, 503, "overloaded", "cannot make an id");
        return;
    }
    pl_strcpy_cut(e->uploaded_by, call->user.user_id, sizeof e->uploaded_by);
    e->uploaded_at_ms = pl_now_ms();
    e->width = info.width;
    e->height = info.height;
    e->animated = info.animated;
    pl_strcpy_cut(e->content_type, pl_image_mime(info.format), sizeof e->content_type);
    etag_of((const unsigned char *)body->data, body->len, e->etag);
    e->size = (uint32_t)body->len;
    int rc = call->app->store->emoji_add(call->app->store, e, (const unsigned char *)body->data,
                                         body->len, on_added, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_added(void *ud, int status, const pl_emoji_t *e, const unsigned char *data,
                     size_t len)
{
    pl_call_t *call = ud;
    (void)data;
    (void)len;
    if (status == PL_EEXIST) {
        refuse(call, UP_CONFLICT, 409, "conflict", "this domain already has an emoji of that name");
        return;
    }
    if (status == PL_ELIMIT) {
        refuse(call, UP_CONFLICT, 409, "limit_reached",
               "this domain holds as many emoji as it may (PARLEY_EMOJI_MAX_PER_DOMAIN), or the "
               "store is full");
        return;
    }
    if (status) {
        api_store_error(call, status);
        return;
    }
    up_counts[UP_CREATED]++;
    up_bytes += e->size;
    pl_log_info("emoji uploaded", PL_LS("id", e->id), PL_LS("domain", e->domain),
                PL_LS("name", e->name), PL_LS("user", e->uploaded_by),
                PL_LI("bytes", (int64_t)e->size));
    char loc[16 + PL_ID_SIZE];
    snprintf(loc, sizeof loc, "/emoji/%s", e->id);
    pl_http_add_header(call->req, "Location", loc);
    api_json(call, 201, emoji_json(e));
}

/* ---- GET /emoji/{id} ---- */

static bool read_id(pl_call_t *call, char out[PL_ID_SIZE])
{
    pl_str_t id = call->match.params[0];
    if (!pl_id_valid(id.ptr, id.len)) {
        api_error(call, 404, "not_found", "no such emoji");
        return false;
    }
    memcpy(out, id.ptr, id.len);
    out[id.len] = '\0';
    return true;
}

void api_emoji_get(pl_call_t *call)
{
    emoji_ctx_t *ctx = ctx_new(call);
    if (!ctx)
        return;
    if (!read_id(call, ctx->id))
        return;
    int rc = call->app->store->emoji_get(call->app->store, ctx->id, true, on_got, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_got(void *ud, int status, const pl_emoji_t *e, const unsigned char *data, size_t len)
{
    pl_call_t *call = ud;
    if (!found(call, status))
        return;
    if (!origin_ok(call, e->domain))
        return;
    pl_http_req_t *req = call->req;
    /* Shared caches keep the image for a year: requests with and without an Origin (which
     * get different CORS headers) must not share one copy. The dispatcher already said so
     * when there was an Origin. */
    if (!pl_http_header(req, "Origin").ptr)
        pl_http_add_header(req, "Vary", "Origin");
    pl_http_add_header(req, "ETag", e->etag);
    pl_http_add_header(req, "Cache-Control", EMOJI_CACHE_CONTROL);
    pl_http_add_header(req, "X-Content-Type-Options", "nosniff");
    /* Opened as a document, the image still cannot run anything (a polyglot that slipped
     * through would be inert). */
    pl_http_add_header(req, "Content-Security-Policy", "default-src 'none'; sandbox");
    pl_str_t inm = pl_http_header(req, "If-None-Match");
    if (inm.ptr && etag_matches(inm, e->etag)) {
        api_answer_text(call, 304, NULL, NULL, 0);
        return;
    }
    api_answer_text(call, 200, e->content_type, (const char *)data, len);
}

/* ---- DELETE /emoji/{id} ---- */

void api_emoji_delete(pl_call_t *call)
{
    emoji_ctx_t *ctx = ctx_new(call);
    if (!ctx)
        return;
    if (!api_auth_user(call, false) || !read_id(call, ctx->id))
        return;
    int rc = call->app->store->emoji_get(call->app->store, ctx->id, false, on_got_for_delete, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_got_for_delete(void *ud, int status, const pl_emoji_t *e, const unsigned char *data,
                              size_t len)
{
    pl_call_t *call = ud;
    emoji_ctx_t *ctx = call->extra;
    (void)data;
    (void)len;
    if (!found(call, status))
        return;
    if (!origin_ok(call, e->domain))
        return;
    if (strcmp(e->uploaded_by, call->user.user_id) != 0 && !user_has_domain(call, e->domain)) {
        api_error(call, 403, "forbidden",
                  "only its uploader or an owner of its domain may delete it");
        return;
    }
    ctx->meta = *e;
    int rc = call->app->store->emoji_delete(call->app->store, ctx->id, on_deleted, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_deleted(void *ud, int status)
{
    pl_call_t *call = ud;
    emoji_ctx_t *ctx = call->extra;
    if (!found(call, status))
        return;
    pl_log_info("emoji deleted", PL_LS("id", ctx->id), PL_LS("domain", ctx->meta.domain),
                PL_LS("name", ctx->meta.name), PL_LS("user", call->user.user_id));
    api_empty(call, 204);
}
