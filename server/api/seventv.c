/* 7TV API v3 answers turned into EmoteData (api/seventv.h).
 *
 * 7TV's emote set is {id, name, emotes:[{id, name, flags, data:{id, name, animated,
 * host:{url, files:[{name, width, height, format}, ...]}}}]}, where the outer `name` is the
 * set's alias for the emote. Everything taken from it ends up in clients' pages (the name
 * in chat, the URL as an image source), so each field is checked against the plain forms
 * 7TV uses and an emote with anything else is left out rather than passed on. */
#include "api/seventv.h"

#include "common/error.h"
#include "common/json.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SIDE_MAX      65535 /* pixels: a width or height beyond this is not an emote */
#define FILE_NAME_MAX 64

static bool is_alnum(char c);
static bool valid_chars(pl_str_t s, size_t max, const char *extra);
static bool valid_name(const char *n);
static bool valid_file_name(const char *n);
static bool base_url(const char *u, char *out, size_t cap);
static const json_t *pick_file(const json_t *files);
static bool side_of(const json_t *file, const char *key, json_int_t *out);
static json_t *emote_of(const json_t *e);

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* 1..max bytes, each alphanumeric or one of extra. */
static bool valid_chars(pl_str_t s, size_t max, const char *extra)
{
    if (!s.ptr || s.len == 0 || s.len > max)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_alnum(s.ptr[i]) && !(s.ptr[i] && strchr(extra, s.ptr[i])))
            return false;
    return true;
}

bool pl_7tv_valid_set_id(pl_str_t s)
{
    return valid_chars(s, PL_7TV_ID_MAX, "");
}

bool pl_7tv_valid_platform(pl_str_t s)
{
    return pl_str_eq(s, "twitch") || pl_str_eq(s, "youtube") || pl_str_eq(s, "kick") ||
           pl_str_eq(s, "discord");
}

bool pl_7tv_valid_user_id(pl_str_t s)
{
    return valid_chars(s, PL_7TV_ID_MAX, "_-");
}

/* Chat splits messages on whitespace, so a name with a space or a control character could
 * never be typed; anything else (7TV allows more than ASCII letters) is kept. jansson has
 * already refused invalid UTF-8. */
static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > PL_7TV_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)n[i] <= 0x20 || n[i] == 0x7f)
            return false;
    return true;
}

/* A file name is appended to a URL path: no separators, no dot segments. */
static bool valid_file_name(const char *n)
{
    return n[0] != '.' && valid_chars(pl_str(n), FILE_NAME_MAX, "._-");
}

/* Writes the https form of an emote's host URL into out: "//host/path" gets "https:", an
 * https URL is kept. Anything else (another scheme, a relative path, characters a CDN path
 * never has) returns false, so that no client is handed a javascript: or plain-http image. */
static bool base_url(const char *u, char *out, size_t cap)
{
    const char *rest;
    if (strncmp(u, "//", 2) == 0)
        rest = u + 2;
    else if (strncmp(u, "https://", 8) == 0)
        rest = u + 8;
    else
        return false;
    size_t i = 0;
    while (is_alnum(rest[i]) || rest[i] == '.' || rest[i] == '-')
        i++;
    if (i == 0)
        return false;
    if (rest[i] == ':') {
        size_t digits = ++i;
        while (rest[i] >= '0' && rest[i] <= '9')
            i++;
        if (i == digits)
            return false;
    }
    if (rest[i] && rest[i] != '/')
        return false;
    for (; rest[i]; i++)
        if (!is_alnum(rest[i]) && !strchr("-._~/%", rest[i]))
            return false;
    int n = snprintf(out, cap, "https://%s", rest);
    return n > 0 && (size_t)n < cap;
}

/* The 1x WEBP file when there is one, else the first file; files with a name that could
 * not be part of a URL path are not considered. */
static const json_t *pick_file(const json_t *files)
{
    const json_t *first = NULL;
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name || !valid_file_name(name))
            continue;
        if (!first)
            first = f;
        const char *format = json_string_value(json_object_get(f, "format"));
        bool webp = format ? strcasecmp(format, "WEBP") == 0 : strcmp(name, "1x.webp") == 0;
        if (webp && strncmp(name, "1x.", 3) == 0)
            return f;
    }
    return first;
}

static bool side_of(const json_t *file, const char *key, json_int_t *out)
{
    const json_t *v = json_object_get(file, key);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return *out >= 1 && *out <= SIDE_MAX;
}

/* One set entry as EmoteData, or NULL when any part of it is missing or malformed. */
static json_t *emote_of(const json_t *e)
{
    const json_t *data = json_object_get(e, "data");
    if (!json_is_object(e) || !json_is_object(data))
        return NULL;
    const char *id = json_string_value(json_object_get(e, "id"));
    if (!id)
        id = json_string_value(json_object_get(data, "id"));
    if (!id || !pl_7tv_valid_set_id(pl_str(id)))
        return NULL;
    /* The set's alias is the name chat uses; the emote's own name is only a fallback. */
    const char *name = json_string_value(json_object_get(e, "name"));
    if (!name)
        name = json_string_value(json_object_get(data, "name"));
    if (!name || !valid_name(name))
        return NULL;
    const json_t *host = json_object_get(data, "host");
    const char *host_url = json_string_value(json_object_get(host, "url"));
    const json_t *files = json_object_get(host, "files");
    char base[PL_7TV_URL_MAX];
    if (!host_url || !json_is_array(files) || !base_url(host_url, base, sizeof base))
        return NULL;
    const json_t *file = pick_file(files);
    json_int_t width, height;
    if (!file || !side_of(file, "width", &width) || !side_of(file, "height", &height))
        return NULL;
    char url[PL_7TV_URL_MAX + FILE_NAME_MAX + 2];
    size_t blen = strlen(base);
    snprintf(url, sizeof url, "%s%s%s", base, base[blen - 1] == '/' ? "" : "/",
             json_string_value(json_object_get(file, "name")));
    return json_pack("{s:s,s:s,s:s,s:b,s:I,s:I}", "id", id, "name", name, "url", url, "animated",
                     json_is_true(json_object_get(data, "animated")), "width", width, "height",
                     height);
}

int pl_7tv_normalize(const char *body, size_t len, pl_7tv_kind_t kind, size_t max_emotes,
                     pl_buf_t *out, size_t *skipped)
{
    json_t *root = pl_json_loadb(body, len, 0, NULL);
    if (!root)
        return PL_EINVAL;
    int rc = PL_EINVAL;
    json_t *result = NULL;
    const json_t *set = root;
    if (kind == PL_7TV_USER) {
        if (!json_is_object(root) || !json_is_string(json_object_get(root, "id")))
            goto done;
        /* A user without an emote set (null or absent) simply has no emotes. */
        set = json_object_get(root, "emote_set");
        if (json_is_null(set))
            set = NULL;
    }
    const json_t *list = NULL;
    if (set) {
        if (!json_is_object(set) || !json_is_string(json_object_get(set, "id")))
            goto done;
        list = json_object_get(set, "emotes");
        if (json_is_null(list))
            list = NULL;
        if (list && !json_is_array(list))
            goto done;
    }
    rc = PL_ENOMEM;
    json_t *emotes = json_array();
    result = emotes ? json_pack("{s:o}", "emotes", emotes) : NULL;
    if (!result)
        goto done;
    size_t i, bad = 0;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        if (json_array_size(emotes) >= max_emotes)
            break;
        json_t *item = emote_of(e);
        if (!item)
            bad++;
        else if (json_array_append_new(emotes, item))
            goto done;
    }
    if (skipped)
        *skipped = bad;
    rc = pl_json_dump(out, result);
done:
    if (result)
        json_decref(result);
    json_decref(root);
    return rc;
}
