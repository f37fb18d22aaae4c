/* parleyd configuration (DESIGN section 2).
 *
 * Every key is described once, in `keys[]` below. The JSON key, the environment variable and
 * the flag are all derived from the entry's name (member_ttl -> PARLEY_MEMBER_TTL ->
 * --member-ttl), and every source goes through the same text parser, so a value means the
 * same thing wherever it is written and the error for a bad value is the same apart from the
 * way the key is named. Defaults are written as text in the table and parsed by that same
 * parser, so --help shows exactly what the server uses.
 *
 * Error messages name the key the way the user wrote it ("PARLEY_MEMBER_TTL",
 * "--member-ttl", "parley.json: member_ttl"), because that is what they will search for. */
#include "config.h"

#include "common/error.h"
#include "common/str.h"
#include "version.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* How a key's text is parsed and where it is stored. */
typedef enum {
    KIND_LISTEN, /* "host:port" -> listen_host + listen_port */
    KIND_CHARS,  /* string copied into a fixed char array; `check` validates it */
    KIND_STR,    /* optional heap string; empty means unset; `check` may validate/normalize */
    KIND_LIST,   /* optional heap comma list; items trimmed, each passed to `item` */
    KIND_BOOL,   /* true/false/1/0/yes/no */
    KIND_UINT,   /* unsigned integer in [min, max] */
    KIND_SECS,   /* seconds in [min, max], stored as seconds */
    KIND_MS,     /* seconds in [min, max], stored as milliseconds */
    KIND_RATE,   /* "N/S" or "0" */
} kind_t;

/* Key flags. */
#define KF_SECRET 1u /* a secret: --help warns against passing it as a flag */

/* Validates (and may shorten in place) a whole string value. */
typedef int (*check_fn)(char *val, char *why, size_t cap);
/* Validates one item of a comma list of n_items items. */
typedef int (*item_fn)(const char *item, size_t n_items, char *why, size_t cap);

typedef struct {
    const char *name; /* JSON key; env and flag are derived from it */
    kind_t kind;
    size_t off;  /* offset of the field in pl_config_t (unused for KIND_LISTEN) */
    size_t size; /* KIND_CHARS: size of the array */
    uint32_t min, max;
    const char *def;      /* default as text, parsed like any other value; NULL = unset */
    const char *def_text; /* what --help shows when the default is computed at run time */
    const char *meta;     /* placeholder in --help: "SECONDS" */
    unsigned flags;
    check_fn check;
    item_fn item;
    const char *help;
} cfg_key_t;

/* Where a key's current value came from, to name it in later (cross-key) errors. */
typedef enum { SRC_DEFAULT = 0, SRC_FILE, SRC_ENV, SRC_FLAG } src_t;

typedef struct {
    src_t *src;       /* one per key */
    const char *file; /* config file name as given */
} origin_t;

/* A flag from argv, kept until the file and the environment have been applied. */
typedef struct {
    const cfg_key_t *key;
    const char *value;
} flag_t;

static const cfg_key_t *key_by_name(const char *name);
static const cfg_key_t *key_by_env(const char *env, size_t len);
static const cfg_key_t *key_by_flag(const char *flag, size_t len);
static void env_name(const cfg_key_t *k, char *buf, size_t cap);
static void flag_name(const cfg_key_t *k, char *buf, size_t cap);
static void user_name(const cfg_key_t *k, const origin_t *o, char *buf, size_t cap);
static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void quote(const char *s, char *buf, size_t cap);
static int key_set(pl_config_t *cfg, const cfg_key_t *k, const char *text, char *why, size_t cap);
static void key_unset(pl_config_t *cfg, const cfg_key_t *k);
static int parse_u32(const char *s, uint32_t *out);
static int parse_bool(const char *s, bool *out);
static int parse_port(const char *s, size_t len, uint32_t min, uint16_t *out);
static int parse_listen(pl_config_t *cfg, const char *text, char *why, size_t cap);
static int parse_rate(const char *text, const cfg_key_t *k, pl_rate_t *out, char *why, size_t cap);
static int set_list(pl_config_t *cfg, const cfg_key_t *k, const char *text, char *why, size_t cap);
static int check_store(char *val, char *why, size_t cap);
static int check_node_id(char *val, char *why, size_t cap);
static int check_log_level(char *val, char *why, size_t cap);
static int check_ip_header(char *val, char *why, size_t cap);
static int check_http_url(char *val, char *why, size_t cap);
static int item_cidr(const char *item, size_t n_items, char *why, size_t cap);
static int item_origin(const char *item, size_t n_items, char *why, size_t cap);
static int item_stun(const char *item, size_t n_items, char *why, size_t cap);
static int item_turn(const char *item, size_t n_items, char *why, size_t cap);
static int json_to_text(const cfg_key_t *k, json_t *v, pl_buf_t *text, char *why, size_t cap);
static const char *json_type_name(const json_t *v);
static int load_file(pl_config_t *cfg, const char *path, src_t *src, char *err, size_t cap);
static int load_env(pl_config_t *cfg, char **envp, src_t *src, char *err, size_t cap);
static int parse_argv(int argc, char **argv, flag_t *flags, size_t *n_flags,
                      const char **config_path, pl_config_action_t *action, char *err, size_t cap);
static int validate(const pl_config_t *cfg, const origin_t *o, char *err, size_t cap);
static void default_node_id(char *buf, size_t cap);

#define FIELD(f) offsetof(pl_config_t, f)
#define DAYS_30  2592000u

/* One macro per kind keeps each table row to what differs between keys. */
#define K_UINT(n, f, lo, hi, d, m, h)                                                              \
    {                                                                                              \
        .name = n, .kind = KIND_UINT, .off = FIELD(f), .min = lo, .max = hi, .def = d, .meta = m,  \
        .help = h                                                                                  \
    }
#define K_SECS(n, f, hi, d, h)                                                                     \
    {                                                                                              \
        .name = n, .kind = KIND_SECS, .off = FIELD(f), .min = 1, .max = hi, .def = d,              \
        .meta = "SECONDS", .help = h                                                               \
    }
#define K_MS(n, f, hi, d, h)                                                                       \
    {                                                                                              \
        .name = n, .kind = KIND_MS, .off = FIELD(f), .min = 1, .max = hi, .def = d,                \
        .meta = "SECONDS", .help = h                                                               \
    }
#define K_RATE(n, f, d, h)                                                                         \
    {                                                                                              \
        .name = n, .kind = KIND_RATE, .off = FIELD(f), .def = d, .meta = "N/S", .help = h          \
    }
#define K_BOOL(n, f, h)                                                                            \
    {                                                                                              \
        .name = n, .kind = KIND_BOOL, .off = FIELD(f), .def = "false", .help = h                   \
    }
#define K_STR(n, f, d, m, fl, c, h)                                                                \
    {                                                                                              \
        .name = n, .kind = KIND_STR, .off = FIELD(f), .def = d, .meta = m, .flags = fl,            \
        .check = c, .help = h                                                                      \
    }
#define K_LIST(n, f, d, m, it, h)                                                                  \
    {                                                                                              \
        .name = n, .kind = KIND_LIST, .off = FIELD(f), .def = d, .meta = m, .item = it, .help = h  \
    }
#define K_CHARS(n, f, d, dt, m, c, h)                                                              \
    {                                                                                              \
        .name = n, .kind = KIND_CHARS, .off = FIELD(f), .size = sizeof(((pl_config_t *)0)->f),     \
        .def = d, .def_text = dt, .meta = m, .check = c, .help = h                                 \
    }

/* Bounds are the ranges the docs promise; a TTL longer than 30 days is almost certainly a
 * typo (milliseconds written as seconds), so it is refused rather than silently obeyed. */
static const cfg_key_t keys[] = {
    /* Network. */
    {.name = "listen",
     .kind = KIND_LISTEN,
     .def = "127.0.0.1:8080",
     .meta = "HOST:PORT",
     .help = "address to listen on: IPv4:port or [IPv6]:port"},
    K_UINT("max_connections", max_connections, 1, 1000000, "10000", "N",
           "most client connections open at once (1..1000000)"),
    K_MS("header_timeout", header_timeout_ms, 3600, "10",
         "seconds a client may take to send a request's headers (1..3600)"),
    K_MS("idle_timeout", idle_timeout_ms, 86400, "60",
         "seconds a keep-alive connection may stay idle (1..86400)"),
    K_UINT("max_body", max_body, 1024, 64u << 20, "65536", "BYTES",
           "largest JSON request body in bytes (1024..67108864)"),

    /* Store and node. */
    K_CHARS("store", store, "memory", NULL, "URL", check_store,
            "state store: memory (one node) or redis://HOST:PORT[/DB]"),
    K_CHARS("node_id", node_id, NULL, "hostname-pid", "NAME", check_node_id,
            "node name in logs, metrics and pub/sub (1-127 of A-Z a-z 0-9 . _ -)"),

    /* Identity. */
    K_STR("jwt_secret", jwt_secret, NULL, "SECRET", KF_SECRET, NULL,
          "HS256 secret for user tokens (at least 32 bytes)"),
    K_STR("jwt_public_key", jwt_public_key, NULL, "FILE", 0, NULL,
          "PEM public key file for user tokens (RS256/ES256 by key type)"),
    K_STR("jwt_issuer", jwt_issuer, NULL, "ISS", 0, NULL,
          "required iss claim of user tokens, when set"),
    K_STR("jwt_audience", jwt_audience, NULL, "AUD", 0, NULL,
          "required aud claim of user tokens, when set"),
    K_BOOL("allow_guests", allow_guests, "let clients join rooms without a user token (as guests)"),
    K_BOOL("insecure_dev", insecure_dev,
           "run without a JWT key, trusting unsigned identities (development only)"),

    /* HTTP policy. */
    K_LIST("allowed_origins", allowed_origins, NULL, "ORIGINS", item_origin,
           "comma list of origins (https://host[:port]) for CORS and emoji, or *"),
    K_LIST("trusted_proxies", trusted_proxies, NULL, "CIDRS", item_cidr,
           "comma list of CIDRs whose X-Forwarded-For / Forwarded is believed"),
    K_CHARS("client_ip_header", client_ip_header, "x-forwarded-for", NULL, "HEADER",
            check_ip_header,
            "header a trusted proxy appends the client to: x-forwarded-for or forwarded"),

    /* Lifetimes. */
    K_SECS("room_ttl", room_ttl, DAYS_30, "3600",
           "seconds a room lives without heartbeats (1..2592000)"),
    K_SECS("member_ttl", member_ttl, DAYS_30, "90",
           "seconds a member lives without a heartbeat (1..2592000)"),
    K_SECS("signal_ttl", signal_ttl, DAYS_30, "30",
           "seconds an undelivered offer/answer/candidate waits (1..2592000)"),

    /* ICE servers. */
    K_LIST("stun_urls", stun_urls, "stun:stun.l.google.com:19302", "URLS", item_stun,
           "comma list of stun:/stuns: URLs handed to clients (empty: none)"),
    K_LIST("turn_urls", turn_urls, NULL, "URLS", item_turn,
           "comma list of turn:/turns: URLs handed to clients (needs turn_secret)"),
    K_STR("turn_secret", turn_secret, NULL, "SECRET", KF_SECRET, NULL,
          "shared secret for TURN REST API credentials"),
    K_SECS("turn_ttl", turn_ttl, DAYS_30, "86400", "seconds a TURN credential lives (1..2592000)"),

    K_STR("7tv_api", sevtv_api, "https://7tv.io/v3", "URL", 0, check_http_url,
          "7TV API base URL (http:// or https://)"),
    K_SECS("7tv_cache_ttl", sevtv_cache_ttl, DAYS_30, "600",
           "seconds a fetched 7TV emote set is served before it is fetched again (1..2592000)"),
    K_SECS("7tv_stale_ttl", sevtv_stale_ttl, DAYS_30, "86400",
           "seconds an old 7TV emote set may still be served while 7TV fails (1..2592000)"),
    K_MS("7tv_timeout", sevtv_timeout_ms, 120, "5",
         "seconds a 7TV request may take in all, connect included (1..120)"),
    K_UINT("7tv_max_bytes", sevtv_max_bytes, 1024, 64u << 20, "8388608", "BYTES",
           "largest 7TV answer accepted, in bytes (1024..67108864)"),

    /* Custom emoji. */
    K_UINT("emoji_max_per_domain", emoji_max_per_domain, 1, 1000000, "500", "N",
           "custom emoji one domain may hold (1..1000000)"),
    K_UINT("emoji_store_bytes", emoji_store_bytes, 1u << 20, 4095u << 20, "268435456", "BYTES",
           "image bytes of all custom emoji the memory store holds (1 MiB..4095 MiB)"),

    /* Rate limits: N events per S seconds. */
    K_RATE("rl_create_room", rl_create_room, "10/60", "room creations per user"),
    K_RATE("rl_join_user", rl_join_user, "30/60", "room joins per user"),
    K_RATE("rl_join_ip", rl_join_ip, "60/60", "room joins per client IP"),
    K_RATE("rl_signal", rl_signal, "600/60",
           "signaling writes (offer/answer/candidate/heartbeat/leave) per peer"),
    K_RATE("rl_poll", rl_poll, "600/60", "signaling polls (GET offer/answer/events) per peer"),
    K_RATE("rl_list", rl_list, "120/60", "room listings and room lookups per client IP"),
    K_RATE("rl_emoji_upload", rl_emoji_upload, "10/3600", "custom emoji uploads per user"),

    /* WebSocket channel. */
    K_SECS("ws_ping_interval", ws_ping_interval, 3600, "25",
           "seconds between server pings on a WebSocket (1..3600)"),
    K_UINT("ws_queue_bytes", ws_queue_bytes, 1024, 64u << 20, "262144", "BYTES",
           "bytes a WebSocket's outgoing queue holds before the inbox waits (1024..67108864)"),
    K_UINT("ws_queue_messages", ws_queue_messages, 1, 1000000, "256", "N",
           "messages a WebSocket's outgoing queue holds before the inbox waits"),
    K_SECS("ws_stall_timeout", ws_stall_timeout, 3600, "10",
           "seconds a WebSocket's queue may stay full before it is closed with 1013"),

    /* Rooms. */
    K_UINT("max_peers_default", max_peers_default, 1, 1000000, "16", "N",
           "maxPeers of a room whose creator asks for none (<= max_peers_limit)"),
    K_UINT("max_peers_limit", max_peers_limit, 1, 1000000, "10000", "N",
           "largest maxPeers a client may ask for (1..1000000)"),

    /* Logging and shutdown. */
    K_CHARS("log_level", log_level, "info", NULL, "LEVEL", check_log_level,
            "least severe level logged: debug, info, warn or error"),
    K_MS("shutdown_timeout", shutdown_timeout_ms, 3600, "5",
         "seconds to drain connections on SIGTERM/SIGINT (1..3600)"),
};

#define N_KEYS (sizeof keys / sizeof keys[0])

/* ---- names ------------------------------------------------------------------------------ */

static const cfg_key_t *key_by_name(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static void env_name(const cfg_key_t *k, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "PARLEY_%s", k->name);
    for (size_t i = 0; i < n && i < cap; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

static void flag_name(const cfg_key_t *k, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "--%s", k->name);
    for (size_t i = 0; i < n && i < cap; i++)
        if (buf[i] == '_')
            buf[i] = '-';
}

static const cfg_key_t *key_by_env(const char *env, size_t len)
{
    char buf[64];
    for (size_t i = 0; i < N_KEYS; i++) {
        env_name(&keys[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, env, len) == 0)
            return &keys[i];
    }
    return NULL;
}

/* `flag` includes the leading "--". */
static const cfg_key_t *key_by_flag(const char *flag, size_t len)
{
    char buf[64];
    for (size_t i = 0; i < N_KEYS; i++) {
        flag_name(&keys[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, flag, len) == 0)
            return &keys[i];
    }
    return NULL;
}

/* The key as the user wrote it; without an origin (pl_config_validate called directly) the
 * environment variable, the name the DESIGN and the docs use. */
static void user_name(const cfg_key_t *k, const origin_t *o, char *buf, size_t cap)
{
    src_t s = o ? o->src[k - keys] : SRC_DEFAULT;
    if (s == SRC_FILE)
        snprintf(buf, cap, "%s: %s", o->file, k->name);
    else if (s == SRC_FLAG)
        flag_name(k, buf, cap);
    else
        env_name(k, buf, cap);
}

/* ---- messages --------------------------------------------------------------------------- */

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Quotes a user value for an error message: control bytes are escaped and long values cut,
 * so the message stays one readable line whatever was typed. */
static void quote(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    const size_t max_in = 64;
    if (cap < 8) {
        if (cap)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    size_t i = 0;
    for (; s[i] && i < max_in && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i] && o + 5 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* ---- value parsers ---------------------------------------------------------------------- */

/* Plain decimal digits only: "+5", " 5", "5s" and "0x10" are all refused, so that nothing is
 * accepted that means something else to the user than to us. */
static int parse_u32(const char *s, uint32_t *out)
{
    if (!*s)
        return PL_EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return PL_EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return PL_ELIMIT;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return PL_EINVAL;
}

/* min is 0 for the listen port (0 asks the kernel for a free one) and 1 elsewhere. */
static int parse_port(const char *s, size_t len, uint32_t min, uint16_t *out)
{
    char buf[8];
    uint32_t v;
    if (len == 0 || len >= sizeof buf)
        return PL_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (parse_u32(buf, &v) || v < min || v > 65535)
        return PL_EINVAL;
    *out = (uint16_t)v;
    return 0;
}

static int parse_listen(pl_config_t *cfg, const char *text, char *why, size_t cap)
{
    char q[96], host[64];
    const char *port;
    size_t hlen;
    bool v6 = text[0] == '[';
    quote(text, q, sizeof q);
    if (v6) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            set_err(why, cap, "expected [IPv6]:port, got %s", q);
            return PL_EINVAL;
        }
        hlen = (size_t)(close - text - 1);
        if (hlen >= sizeof host)
            goto bad_host;
        memcpy(host, text + 1, hlen);
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            set_err(why, cap, "expected host:port (IPv4:port or [IPv6]:port), got %s", q);
            return PL_EINVAL;
        }
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen)) {
            set_err(why, cap, "an IPv6 address needs brackets, as in [::1]:8080, got %s", q);
            return PL_EINVAL;
        }
        if (hlen >= sizeof host)
            goto bad_host;
        memcpy(host, text, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    /* Numeric addresses only: the server binds exactly what it is told, and a name that
     * resolves differently tomorrow is not a listen address. */
    unsigned char addr[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
        goto bad_host;
    uint16_t p;
    if (parse_port(port, strlen(port), 0, &p)) {
        set_err(why, cap, "port must be 0..65535 (0: any free port), got %s", q);
        return PL_EINVAL;
    }
    memcpy(cfg->listen_host, host, hlen + 1);
    cfg->listen_port = p;
    return 0;
bad_host:
    set_err(why, cap, "expected a numeric %s address and a port, got %s", v6 ? "IPv6" : "IPv4", q);
    return PL_EINVAL;
}

static int parse_rate(const char *text, const cfg_key_t *k, pl_rate_t *out, char *why, size_t cap)
{
    char q[96], buf[32];
    uint32_t n, s = 0;
    quote(text, q, sizeof q);
    const char *slash = strchr(text, '/');
    size_t nlen = slash ? (size_t)(slash - text) : strlen(text);
    if (nlen >= sizeof buf)
        goto bad;
    memcpy(buf, text, nlen);
    buf[nlen] = '\0';
    if (parse_u32(buf, &n))
        goto bad;
    if (!slash) {
        /* A bare number is only meaningful as "0" (off): "10" has no window. */
        if (n != 0)
            goto bad;
        *out = (pl_rate_t){0, 0};
        return 0;
    }
    if (parse_u32(slash + 1, &s))
        goto bad;
    if (n > 1000000000u || s < 1 || s > DAYS_30) {
        set_err(why, cap, "expected N/S with N <= 1000000000 and S 1..2592000, got %s", q);
        return PL_EINVAL;
    }
    *out = (pl_rate_t){n, s};
    return 0;
bad:
    (void)k;
    set_err(why, cap, "expected N/S (N events per S seconds) or 0 to disable, got %s", q);
    return PL_EINVAL;
}

/* Splits on commas, trims blanks around items and stores the items joined by bare commas,
 * so consumers can split on ',' without trimming. An empty or all-blank list is unset. */
static int set_list(pl_config_t *cfg, const cfg_key_t *k, const char *text, char *why, size_t cap)
{
    char **field = (char **)((char *)cfg + k->off);
    size_t n_items = 1;
    bool blank = true;
    for (const char *p = text; *p; p++) {
        if (*p == ',')
            n_items++;
        else if (*p != ' ' && *p != '\t')
            blank = false;
    }
    if (blank) {
        key_unset(cfg, k);
        return 0;
    }
    pl_buf_t out;
    pl_buf_init(&out);
    const char *p = text;
    for (size_t i = 0; i < n_items; i++) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (b == e) {
            set_err(why, cap, "empty item %zu in the comma list", i + 1);
            goto fail;
        }
        char item[512];
        if ((size_t)(e - b) >= sizeof item) {
            set_err(why, cap, "item %zu is longer than %zu bytes", i + 1, sizeof item - 1);
            goto fail;
        }
        memcpy(item, b, (size_t)(e - b));
        item[e - b] = '\0';
        if (k->item && k->item(item, n_items, why, cap))
            goto fail;
        if ((i && pl_buf_append(&out, ",", 1)) || pl_buf_appends(&out, item)) {
            set_err(why, cap, "out of memory");
            pl_buf_free(&out);
            return PL_ENOMEM;
        }
        p = *end ? end + 1 : end;
    }
    free(*field);
    *field = out.data; /* the buffer's storage becomes the field; pl_buf_t is not freed */
    return 0;
fail:
    pl_buf_free(&out);
    return PL_EINVAL;
}

/* Parses text into k's field. On failure, why gets the reason (without the key's name) and
 * the field keeps its previous value. */
static int key_set(pl_config_t *cfg, const cfg_key_t *k, const char *text, char *why, size_t cap)
{
    char q[96];
    void *field = (char *)cfg + k->off;
    quote(text, q, sizeof q);
    switch (k->kind) {
    case KIND_LISTEN:
        return parse_listen(cfg, text, why, cap);
    case KIND_CHARS: {
        size_t n = strlen(text);
        if (n >= k->size) {
            set_err(why, cap, "longer than %zu bytes", k->size - 1);
            return PL_EINVAL;
        }
        char tmp[512];
        memcpy(tmp, text, n + 1);
        if (k->check && k->check(tmp, why, cap))
            return PL_EINVAL;
        memcpy(field, tmp, strlen(tmp) + 1);
        return 0;
    }
    case KIND_STR: {
        if (!*text) {
            key_unset(cfg, k);
            return 0;
        }
        char *copy = strdup(text);
        if (!copy) {
            set_err(why, cap, "out of memory");
            return PL_ENOMEM;
        }
        if (k->check && k->check(copy, why, cap)) {
            free(copy);
            return PL_EINVAL;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case KIND_LIST:
        return set_list(cfg, k, text, why, cap);
    case KIND_BOOL:
        if (parse_bool(text, (bool *)field)) {
            set_err(why, cap, "expected true/false, yes/no or 1/0, got %s", q);
            return PL_EINVAL;
        }
        return 0;
    case KIND_UINT: {
        uint32_t v;
        if (parse_u32(text, &v) || v < k->min || v > k->max) {
            set_err(why, cap, "expected an integer from %" PRIu32 " to %" PRIu32 ", got %s", k->min,
                    k->max, q);
            return PL_EINVAL;
        }
        *(uint32_t *)field = v;
        return 0;
    }
    case KIND_SECS:
    case KIND_MS: {
        uint32_t v;
        int rc = parse_u32(text, &v);
        if (rc == PL_EINVAL || (rc == 0 && v == 0)) {
            set_err(why, cap, "expected a positive integer of seconds, got %s", q);
            return PL_EINVAL;
        }
        if (rc || v < k->min || v > k->max) {
            set_err(why, cap, "expected %" PRIu32 "..%" PRIu32 " seconds, got %s", k->min, k->max,
                    q);
            return PL_EINVAL;
        }
        /* max for KIND_MS keys is at most 86400 s, so the product fits in 32 bits. */
        *(uint32_t *)field = k->kind == KIND_MS ? v * 1000u : v;
        return 0;
    }
    case KIND_RATE:
        return parse_rate(text, k, (pl_rate_t *)field, why, cap);
    }
    return PL_EINVAL;
}

static void key_unset(pl_config_t *cfg, const cfg_key_t *k)
{
    if (k->kind == KIND_STR || k->kind == KIND_LIST) {
        char **field = (char **)((char *)cfg + k->off);
        free(*field);
        *field = NULL;
    }
}

/* ---- checks of single values ------------------------------------------------------------ */

/* "memory" or "redis://host:port[/db]", host a name, an IPv4 address or a bracketed IPv6
 * address. The shape is checked here so a typo stops the start, not the first request. */
static int check_store(char *val, char *why, size_t cap)
{
    char q[96];
    quote(val, q, sizeof q);
    if (strcmp(val, "memory") == 0)
        return 0;
    if (strncmp(val, "redis://", 8) != 0)
        goto bad;
    const char *h = val + 8, *port;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        char a6[64];
        size_t n = close ? (size_t)(close - h - 1) : 0;
        if (!close || n == 0 || n >= sizeof a6)
            goto bad;
        memcpy(a6, h + 1, n);
        a6[n] = '\0';
        unsigned char addr[16];
        if (inet_pton(AF_INET6, a6, addr) != 1 || close[1] != ':')
            goto bad;
        port = close + 2;
    } else {
        const char *p = h;
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_')
            p++;
        if (p == h || *p != ':')
            goto bad;
        port = p + 1;
    }
    const char *slash = strchr(port, '/');
    uint16_t pn;
    if (parse_port(port, slash ? (size_t)(slash - port) : strlen(port), 1, &pn))
        goto bad;
    if (slash) {
        uint32_t db;
        if (parse_u32(slash + 1, &db) || db > INT32_MAX)
            goto bad;
    }
    return 0;
bad:
    set_err(why, cap, "expected memory or redis://host:port[/db], got %s", q);
    return PL_EINVAL;
}

static int check_node_id(char *val, char *why, size_t cap)
{
    char q[96];
    size_t n = strlen(val);
    bool ok = n >= 1 && n <= 127;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)val[i];
        ok = isalnum(c) || c == '.' || c == '_' || c == '-';
    }
    if (ok)
        return 0;
    quote(val, q, sizeof q);
    set_err(why, cap, "expected 1-127 characters of A-Z a-z 0-9 . _ -, got %s", q);
    return PL_EINVAL;
}

static int check_log_level(char *val, char *why, size_t cap)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char q[96];
    for (size_t i = 0; i < 4; i++)
        if (strcmp(val, levels[i]) == 0)
            return 0;
    quote(val, q, sizeof q);
    set_err(why, cap, "expected debug, info, warn or error, got %s", q);
    return PL_EINVAL;
}

/* Only the header the proxy really appends to is read: a client can send the other one
 * through any proxy, and believing it would let it pick its own address. */
static int check_ip_header(char *val, char *why, size_t cap)
{
    char q[96];
    for (char *p = val; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (strcmp(val, "x-forwarded-for") == 0 || strcmp(val, "forwarded") == 0)
        return 0;
    quote(val, q, sizeof q);
    set_err(why, cap, "expected x-forwarded-for or forwarded, got %s", q);
    return PL_EINVAL;
}

/* A base URL that paths are appended to, so a trailing '/' is dropped ("…/v3/" and "…/v3"
 * both work). */
static int check_http_url(char *val, char *why, size_t cap)
{
    char q[96];
    size_t skip = strncmp(val, "https://", 8) == 0 ? 8 : strncmp(val, "http://", 7) == 0 ? 7 : 0;
    size_t n = strlen(val);
    while (skip && n > skip && val[n - 1] == '/')
        val[--n] = '\0';
    bool ok = skip && n > skip && val[skip] != '/';
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)val[i] > 0x20 && (unsigned char)val[i] < 0x7f;
    if (ok)
        return 0;
    quote(val, q, sizeof q);
    set_err(why, cap, "expected an http:// or https:// URL, got %s", q);
    return PL_EINVAL;
}

/* An address with an optional prefix length; a bare address means one host (/32, /128). */
static int item_cidr(const char *item, size_t n_items, char *why, size_t cap)
{
    char q[96], addr[64];
    unsigned char bin[16];
    (void)n_items;
    const char *slash = strchr(item, '/');
    size_t alen = slash ? (size_t)(slash - item) : strlen(item);
    if (alen == 0 || alen >= sizeof addr)
        goto bad;
    memcpy(addr, item, alen);
    addr[alen] = '\0';
    bool v6 = strchr(addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1)
        goto bad;
    if (slash) {
        uint32_t prefix;
        if (strlen(slash + 1) > 3 || parse_u32(slash + 1, &prefix) || prefix > (v6 ? 128u : 32u))
            goto bad;
    }
    return 0;
bad:
    quote(item, q, sizeof q);
    set_err(why, cap, "expected CIDRs such as 10.0.0.0/8 or fd00::/8, got %s", q);
    return PL_EINVAL;
}

/* Browsers send Origin as scheme://host[:port] with no path; an entry with a path or a
 * trailing slash would never match, so it is refused here instead of failing silently. */
static int item_origin(const char *item, size_t n_items, char *why, size_t cap)
{
    char q[96];
    quote(item, q, sizeof q);
    if (strcmp(item, "*") == 0) {
        if (n_items == 1)
            return 0;
        set_err(why, cap, "\"*\" allows any origin and must be the only entry");
        return PL_EINVAL;
    }
    size_t skip = strncmp(item, "https://", 8) == 0 ? 8 : strncmp(item, "http://", 7) == 0 ? 7 : 0;
    bool ok = skip && item[skip] != '\0';
    for (const char *p = item + skip; ok && *p; p++)
        ok = *p != '/' && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
    if (ok)
        return 0;
    set_err(why, cap, "expected origins such as https://example.com or *, got %s", q);
    return PL_EINVAL;
}

static int item_url_scheme(const char *item, const char *a, const char *b, char *why, size_t cap)
{
    char q[96];
    size_t la = strlen(a), lb = strlen(b);
    if ((strncasecmp(item, a, la) == 0 && item[la]) || (strncasecmp(item, b, lb) == 0 && item[lb]))
        return 0;
    quote(item, q, sizeof q);
    set_err(why, cap, "expected %s or %s URLs, got %s", a, b, q);
    return PL_EINVAL;
}

static int item_stun(const char *item, size_t n_items, char *why, size_t cap)
{
    (void)n_items;
    return item_url_scheme(item, "stun:", "stuns:", why, cap);
}

static int item_turn(const char *item, size_t n_items, char *why, size_t cap)
{
    (void)n_items;
    return item_url_scheme(item, "turn:", "turns:", why, cap);
}

/* ---- JSON ------------------------------------------------------------------------------- */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* Turns a JSON value into the text the key's parser takes, refusing types that make no
 * sense for the key (a TTL given as "90" is refused: JSON has numbers). */
static int json_to_text(const cfg_key_t *k, json_t *v, pl_buf_t *text, char *why, size_t cap)
{
    const char *want = NULL;
    switch (k->kind) {
    case KIND_STR:
    case KIND_LIST:
        if (json_is_null(v))
            return pl_buf_appends(text, ""); /* null unsets an optional string */
        if (k->kind == KIND_LIST && json_is_array(v)) {
            size_t i;
            json_t *it;
            json_array_foreach(v, i, it)
            {
                if (!json_is_string(it) ||
                    strlen(json_string_value(it)) != json_string_length(it)) {
                    set_err(why, cap, "expected an array of strings, item %zu is %s", i + 1,
                            json_is_string(it) ? "a string with a NUL byte" : json_type_name(it));
                    return PL_EINVAL;
                }
                if ((i && pl_buf_append(text, ",", 1)) ||
                    pl_buf_appends(text, json_string_value(it)))
                    return PL_ENOMEM;
            }
            if (json_array_size(v) == 0)
                return pl_buf_appends(text, "");
            return 0;
        }
        want = k->kind == KIND_LIST ? "a string or an array of strings" : "a string or null";
        break;
    case KIND_LISTEN:
    case KIND_CHARS:
        want = "a string";
        break;
    case KIND_BOOL:
        if (json_is_boolean(v))
            return pl_buf_appends(text, json_is_true(v) ? "true" : "false");
        if (json_is_integer(v))
            return pl_buf_printf(text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        want = "true or false";
        break;
    case KIND_UINT:
    case KIND_SECS:
    case KIND_MS:
        if (json_is_integer(v))
            return pl_buf_printf(text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        set_err(why, cap, "expected an integer, got %s", json_type_name(v));
        return PL_EINVAL;
    case KIND_RATE:
        if (json_is_integer(v))
            return pl_buf_printf(text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        if (json_is_object(v)) {
            json_t *l = json_object_get(v, "limit"), *w = json_object_get(v, "window");
            if (json_is_integer(l) && json_is_integer(w) && json_object_size(v) == 2)
                return pl_buf_printf(text, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                                     json_integer_value(l), json_integer_value(w));
            set_err(why, cap, "expected {\"limit\": N, \"window\": S} with integers");
            return PL_EINVAL;
        }
        want = "\"N/S\", 0 or {\"limit\": N, \"window\": S}";
        break;
    }
    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            set_err(why, cap, "the string contains a NUL byte");
            return PL_EINVAL;
        }
        return pl_buf_appends(text, json_string_value(v));
    }
    set_err(why, cap, "expected %s, got %s", want, json_type_name(v));
    return PL_EINVAL;
}

static int load_file(pl_config_t *cfg, const char *path, src_t *src, char *err, size_t cap)
{
    char why[256];
    json_error_t jerr;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        set_err(err, cap, "%s: cannot read the config file: %s", path, strerror(errno));
        return PL_ECONFIG;
    }
    /* Duplicate keys are refused: which one wins would otherwise be up to the parser. */
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (!root) {
        set_err(err, cap, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column, jerr.text);
        return PL_ECONFIG;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        set_err(err, cap, "%s: expected a JSON object at the top level, got %s", path,
                json_type_name(root));
        rc = PL_ECONFIG;
        goto out;
    }
    const char *name;
    json_t *v;
    pl_buf_t text;
    pl_buf_init(&text);
    json_object_foreach(root, name, v)
    {
        char q[96];
        const cfg_key_t *k = key_by_name(name);
        if (!k) {
            quote(name, q, sizeof q);
            set_err(err, cap, "%s: unknown key %s", path, q);
            rc = PL_ECONFIG;
            break;
        }
        pl_buf_reset(&text);
        int r = json_to_text(k, v, &text, why, sizeof why);
        if (r == PL_ENOMEM || (r == 0 && !text.data && pl_buf_appends(&text, ""))) {
            set_err(err, cap, "out of memory");
            rc = PL_ENOMEM;
            break;
        }
        if (r == 0)
            r = key_set(cfg, k, text.data, why, sizeof why);
        if (r) {
            set_err(err, cap, "%s: %s: %s", path, name, why);
            rc = r == PL_ENOMEM ? PL_ENOMEM : PL_ECONFIG;
            break;
        }
        src[k - keys] = SRC_FILE;
    }
    pl_buf_free(&text);
out:
    json_decref(root);
    return rc;
}

/* ---- environment and argv --------------------------------------------------------------- */

/* Every PARLEY_* variable must be a key: a misspelt one (PARLEY_MEMBR_TTL) would otherwise
 * be ignored silently, and the operator would believe it applied. */
static int load_env(pl_config_t *cfg, char **envp, src_t *src, char *err, size_t cap)
{
    char why[256];
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "PARLEY_", 7) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t len = (size_t)(eq - *e);
        if (len == strlen("PARLEY_CONFIG") && memcmp(*e, "PARLEY_CONFIG", len) == 0)
            continue;
        const cfg_key_t *k = key_by_env(*e, len);
        if (!k) {
            set_err(err, cap, "%.*s: unknown environment variable (parleyd --help lists them)",
                    (int)(len > 100 ? 100 : len), *e);
            return PL_ECONFIG;
        }
        int r = key_set(cfg, k, eq + 1, why, sizeof why);
        if (r) {
            set_err(err, cap, "%.*s: %s", (int)len, *e, why);
            return r == PL_ENOMEM ? PL_ENOMEM : PL_ECONFIG;
        }
        src[k - keys] = SRC_ENV;
    }
    return 0;
}

/* Reads argv into flags[] without applying anything, so that --help and --version work
 * whatever the file and the environment hold, and so flags can be applied last. */
static int parse_argv(int argc, char **argv, flag_t *flags, size_t *n_flags,
                      const char **config_path, pl_config_action_t *action, char *err, size_t cap)
{
    char q[96];
    *n_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *action = PL_CONFIG_HELP;
            return 0;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            *action = PL_CONFIG_VERSION;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            quote(a, q, sizeof q);
            set_err(err, cap, "unexpected argument %s (flags start with --; see --help)", q);
            return PL_ECONFIG;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        bool is_config = nlen == 8 && memcmp(a, "--config", 8) == 0;
        const cfg_key_t *k = is_config ? NULL : key_by_flag(a, nlen);
        if (!is_config && !k) {
            set_err(err, cap, "%.*s: unknown flag (see --help)", (int)(nlen > 100 ? 100 : nlen), a);
            return PL_ECONFIG;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (k && k->kind == KIND_BOOL) {
            value = "true"; /* a boolean flag takes no value: --allow-guests */
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            /* A following "--flag" is taken as a forgotten value rather than as the value;
             * a value that really starts with "--" can be given as --key=--value. */
            value = argv[++i];
        } else {
            set_err(err, cap, "%.*s: missing value", (int)nlen, a);
            return PL_ECONFIG;
        }
        if (is_config)
            *config_path = value;
        else
            flags[(*n_flags)++] = (flag_t){k, value};
    }
    return 0;
}

/* ---- validation ------------------------------------------------------------------------- */

static int validate(const pl_config_t *cfg, const origin_t *o, char *err, size_t cap)
{
    char n1[300], n2[300];
    const cfg_key_t *ks = key_by_name("jwt_secret"), *kp = key_by_name("jwt_public_key");

    /* Ranges again: cfg may have been filled by code rather than by pl_config_load. */
    for (size_t i = 0; i < N_KEYS; i++) {
        const cfg_key_t *k = &keys[i];
        uint32_t v, mul = k->kind == KIND_MS ? 1000u : 1u;
        if (k->kind != KIND_UINT && k->kind != KIND_SECS && k->kind != KIND_MS)
            continue;
        v = *(const uint32_t *)((const char *)cfg + k->off);
        if (v < k->min * mul || v > k->max * mul) {
            user_name(k, o, n1, sizeof n1);
            set_err(err, cap, "%s: %" PRIu32 " is out of range %" PRIu32 "..%" PRIu32 "%s", n1,
                    v / mul, k->min, k->max, mul > 1 ? " seconds (it is stored as ms)" : "");
            return PL_ECONFIG;
        }
    }
    if (cfg->listen_host[0] == '\0') {
        user_name(key_by_name("listen"), o, n1, sizeof n1);
        set_err(err, cap, "%s: no listen address and port", n1);
        return PL_ECONFIG;
    }

    if (!cfg->jwt_secret && !cfg->jwt_public_key && !cfg->insecure_dev) {
        set_err(err, cap,
                "no JWT key configured: set PARLEY_JWT_SECRET or PARLEY_JWT_PUBLIC_KEY, or pass "
                "--insecure-dev for development only");
        return PL_ECONFIG;
    }
    if (cfg->jwt_secret && cfg->jwt_public_key) {
        user_name(ks, o, n1, sizeof n1);
        user_name(kp, o, n2, sizeof n2);
        set_err(err, cap, "%s and %s are both set: configure exactly one JWT key", n1, n2);
        return PL_ECONFIG;
    }
    /* RFC 7518 3.2: an HS256 key must be at least as long as the hash output (256 bits);
     * shorter secrets are open to offline brute force from any single token. */
    if (cfg->jwt_secret && strlen(cfg->jwt_secret) < 32) {
        user_name(ks, o, n1, sizeof n1);
        set_err(err, cap, "%s: too short (%zu bytes): HS256 needs a secret of at least 32 bytes",
                n1, strlen(cfg->jwt_secret));
        return PL_ECONFIG;
    }
    if (cfg->jwt_public_key) {
        char q[96];
        struct stat st;
        user_name(kp, o, n1, sizeof n1);
        quote(cfg->jwt_public_key, q, sizeof q);
        FILE *fp = fopen(cfg->jwt_public_key, "r");
        if (!fp) {
            set_err(err, cap, "%s: cannot read %s: %s", n1, q, strerror(errno));
            return PL_ECONFIG;
        }
        /* Only a regular file is a key: a directory opens fine on Linux and fails later. */
        bool regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);
        fclose(fp);
        if (!regular) {
            set_err(err, cap, "%s: %s is not a regular file", n1, q);
            return PL_ECONFIG;
        }
    }
    if (cfg->turn_urls && !cfg->turn_secret) {
        user_name(key_by_name("turn_urls"), o, n1, sizeof n1);
        set_err(err, cap,
                "%s is set but no TURN secret is: set PARLEY_TURN_SECRET (TURN REST API "
                "credentials are derived from it)",
                n1);
        return PL_ECONFIG;
    }
    if (cfg->max_peers_default > cfg->max_peers_limit) {
        user_name(key_by_name("max_peers_default"), o, n1, sizeof n1);
        set_err(err, cap, "%s: %" PRIu32 " is larger than max_peers_limit (%" PRIu32 ")", n1,
                cfg->max_peers_default, cfg->max_peers_limit);
        return PL_ECONFIG;
    }
    return 0;
}

/* ---- public ----------------------------------------------------------------------------- */

/* hostname-pid, with the host name reduced to the characters a node id allows so that the
 * default always passes its own check. */
static void default_node_id(char *buf, size_t cap)
{
    char host[256] = "", pid[24];
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "parleyd");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            *p = '-';
    int plen = snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    size_t max_host = cap - 1 - (size_t)plen;
    if (max_host > 127 - (size_t)plen)
        max_host = 127 - (size_t)plen;
    snprintf(buf, cap, "%.*s%s", (int)max_host, host, pid);
}

void pl_config_defaults(pl_config_t *cfg)
{
    char why[256];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].def)
            (void)key_set(cfg, &keys[i], keys[i].def, why, sizeof why); /* tested to pass */
    default_node_id(cfg->node_id, sizeof cfg->node_id);
}

void pl_config_free(pl_config_t *cfg)
{
    for (size_t i = 0; i < N_KEYS; i++)
        key_unset(cfg, &keys[i]);
    free(cfg->config_path);
    cfg->config_path = NULL;
}

int pl_config_validate(const pl_config_t *cfg, char *err, size_t cap)
{
    return validate(cfg, NULL, err, cap);
}

void pl_config_print_help(FILE *out)
{
    char env[64], flag[64];
    fprintf(out, "Usage: parleyd [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
                 "       parleyd --help | --version\n"
                 "\n"
                 "parleyd is the Parley WebRTC signaling and room server.\n"
                 "\n"
                 "Each setting is read from, in increasing precedence: its default, the JSON\n"
                 "config file (--config FILE, or PARLEY_CONFIG), its PARLEY_* environment\n"
                 "variable, and its command-line flag. Unknown keys, unknown PARLEY_* variables\n"
                 "and bad values stop the start with a message naming the key.\n"
                 "Booleans accept true/false, yes/no or 1/0; a boolean flag alone means true.\n"
                 "Durations are whole seconds. Rate limits are N/S (N events per S seconds),\n"
                 "or 0 to disable.\n"
                 "\n"
                 "Options:\n"
                 "  --config FILE\n"
                 "      env PARLEY_CONFIG\n"
                 "      JSON config file to read before the environment and the flags\n"
                 "  --help, -h\n"
                 "      print this help and exit\n"
                 "  --version, -V\n"
                 "      print the version and exit\n"
                 "\n"
                 "Settings:\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        const cfg_key_t *k = &keys[i];
        env_name(k, env, sizeof env);
        flag_name(k, flag, sizeof flag);
        fprintf(out, "  %s%s%s\n", flag, k->meta ? " " : "", k->meta ? k->meta : "");
        fprintf(out, "      env %s, json \"%s\", default %s\n", env, k->name,
                k->def_text ? k->def_text
                : k->def    ? k->def
                            : "(none)");
        fprintf(out, "      %s\n", k->help);
        /* argv is world-readable in /proc; say so where it matters. */
        if (k->flags & KF_SECRET)
            fprintf(out, "      (prefer %s or the file: flags show in ps)\n", env);
    }
    fprintf(out, "\nSee docs/configuration.md for examples and the security notes.\n");
}

int pl_config_load(pl_config_t *cfg, int argc, char **argv, char **envp, FILE *out,
                   pl_config_action_t *action, char *err, size_t cap)
{
    src_t src[N_KEYS] = {SRC_DEFAULT};
    const char *path = NULL;
    size_t n_flags = 0;
    char why[256];
    int rc;

    *action = PL_CONFIG_RUN;
    if (err && cap)
        err[0] = '\0';
    pl_config_defaults(cfg);

    flag_t *flags = calloc(argc > 0 ? (size_t)argc : 1, sizeof *flags);
    if (!flags) {
        set_err(err, cap, "out of memory");
        return PL_ENOMEM;
    }
    rc = parse_argv(argc, argv, flags, &n_flags, &path, action, err, cap);
    if (rc)
        goto fail;
    if (*action == PL_CONFIG_HELP) {
        pl_config_print_help(out);
        goto done_early;
    }
    if (*action == PL_CONFIG_VERSION) {
        fprintf(out, "parleyd %s\n", PL_VERSION);
        goto done_early;
    }

    /* The flag names the file if given; otherwise the last PARLEY_CONFIG in envp. */
    if (!path) {
        for (char **e = envp; e && *e; e++)
            if (strncmp(*e, "PARLEY_CONFIG=", 14) == 0)
                path = *e + 14;
        if (path && !*path)
            path = NULL; /* PARLEY_CONFIG= (empty) means no file, as an unset variable */
    }
    if (path) {
        cfg->config_path = strdup(path);
        if (!cfg->config_path) {
            set_err(err, cap, "out of memory");
            rc = PL_ENOMEM;
            goto fail;
        }
        if ((rc = load_file(cfg, path, src, err, cap)))
            goto fail;
    }
    if ((rc = load_env(cfg, envp, src, err, cap)))
        goto fail;
    for (size_t i = 0; i < n_flags; i++) {
        const cfg_key_t *k = flags[i].key;
        rc = key_set(cfg, k, flags[i].value, why, sizeof why);
        if (rc) {
            char fname[64];
            flag_name(k, fname, sizeof fname);
            set_err(err, cap, "%s: %s", fname, why);
            rc = rc == PL_ENOMEM ? PL_ENOMEM : PL_ECONFIG;
            goto fail;
        }
        src[k - keys] = SRC_FLAG;
    }
    origin_t o = {src, path};
    if ((rc = validate(cfg, &o, err, cap)))
        goto fail;
    free(flags);
    return 0;

done_early:
    /* Nothing will run: free now so a caller that just exits leaks nothing. */
    free(flags);
    pl_config_free(cfg);
    return 0;
fail:
    free(flags);
    pl_config_free(cfg);
    return rc;
}
