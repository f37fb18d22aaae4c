/* parleyd configuration: defaults, then a JSON file, then PARLEY_* environment variables,
 * then command-line flags, each overriding the one before (DESIGN section 2).
 *
 * One table describes every key once; the JSON key, the environment variable and the flag
 * are derived from it: json "member_ttl" = env PARLEY_MEMBER_TTL = flag --member-ttl. */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A rate limit: at most `limit` events per `window_s` seconds; limit 0 disables it. */
typedef struct {
    uint32_t limit;
    uint32_t window_s;
} pl_rate_t;

typedef struct {
    /* Network. */
    char listen_host[256]; /* "127.0.0.1" or "::1" (no brackets) */
    uint16_t listen_port;
    uint32_t max_connections;   /* PARLEY_MAX_CONNECTIONS, default 10000 */
    uint32_t header_timeout_ms; /* PARLEY_HEADER_TIMEOUT (seconds in config), default 10 s */
    uint32_t idle_timeout_ms;   /* PARLEY_IDLE_TIMEOUT (seconds), default 60 s */
    uint32_t max_body;          /* PARLEY_MAX_BODY bytes, default 65536 */

    /* Store and node. */
    char store[512];   /* "memory" or "redis://host:port[/db]" */
    char node_id[128]; /* default hostname-pid */

    /* Identity. */
    char *jwt_secret;     /* PARLEY_JWT_SECRET (heap, may be NULL) */
    char *jwt_public_key; /* PARLEY_JWT_PUBLIC_KEY: the path as given (heap, may be NULL) */
    char *jwt_issuer;     /* may be NULL */
    char *jwt_audience;   /* may be NULL */
    bool allow_guests;
    bool insecure_dev; /* --insecure-dev / PARLEY_INSECURE_DEV */

    /* HTTP policy. */
    char *allowed_origins;     /* comma list or "*", may be NULL */
    char *trusted_proxies;     /* comma list of CIDRs, may be NULL */
    char client_ip_header[32]; /* "x-forwarded-for" (default) or "forwarded" */

    /* Lifetimes, in seconds. */
    uint32_t room_ttl;   /* 3600 */
    uint32_t member_ttl; /* 90 */
    uint32_t signal_ttl; /* 30 */

    /* ICE servers handed to clients. */
    char *stun_urls;   /* comma list; default "stun:stun.l.google.com:19302" */
    char *turn_urls;   /* comma list, may be NULL */
    char *turn_secret; /* may be NULL */
    uint32_t turn_ttl; /* seconds a TURN credential lives, default 86400 */

    char *sevtv_api;           /* PARLEY_7TV_API, default https://7tv.io/v3 */
    uint32_t sevtv_cache_ttl;  /* seconds a fetched set is fresh, 600 */
    uint32_t sevtv_stale_ttl;  /* seconds a stale set may be served while 7TV fails, 86400 */
    uint32_t sevtv_timeout_ms; /* whole-request timeout, 5 s */
    uint32_t sevtv_max_bytes;  /* largest answer, 8 MiB */

    /* Custom emoji. */
    uint32_t emoji_max_per_domain; /* 500 */
    uint32_t emoji_store_bytes;    /* memory engine's budget for images, 256 MiB */

    /* Rate limits, "N/S" in files, env and flags (N events per S seconds; "0" disables). */
    pl_rate_t rl_create_room;  /* per user,  default 10/60 */
    pl_rate_t rl_join_user;    /* per user,  default 30/60 */
    pl_rate_t rl_join_ip;      /* per IP,    default 60/60 */
    pl_rate_t rl_signal;       /* per peer, offer/answer/candidate/heartbeat/leave, 600/60 */
    pl_rate_t rl_poll;         /* per peer, GET offer/answer/events, 600/60 */
    pl_rate_t rl_list;         /* per IP, room listing and GET room, 120/60 */
    pl_rate_t rl_emoji_upload; /* per user, 10/3600 */

    /* WebSocket channel. */
    uint32_t ws_ping_interval;  /* seconds, 25 */
    uint32_t ws_queue_bytes;    /* 262144 */
    uint32_t ws_queue_messages; /* 256 */
    uint32_t ws_stall_timeout;  /* seconds, 10 */

    /* Rooms. */
    uint32_t max_peers_default; /* 16 (mesh default from DESIGN section 5) */
    uint32_t max_peers_limit;   /* largest maxPeers a client may ask for, 10000 */

    /* Logging and shutdown. */
    char log_level[16];           /* debug|info|warn|error */
    uint32_t shutdown_timeout_ms; /* PARLEY_SHUTDOWN_TIMEOUT seconds, default 5 */

    char *config_path; /* --config FILE, for the log line */
} pl_config_t;

/* What pl_config_load decided beyond the values. */
typedef enum {
    PL_CONFIG_RUN = 0, /* start the server */
    PL_CONFIG_HELP,    /* --help was printed; exit 0 */
    PL_CONFIG_VERSION, /* --version was printed; exit 0 */
} pl_config_action_t;

/* Fills cfg with the defaults (no allocation beyond the default strings). */
void pl_config_defaults(pl_config_t *cfg);

/* Loads defaults, then the file named by --config (or PARLEY_CONFIG), then `envp`
 * (NULL-terminated "KEY=value" strings; pass environ), then argv. On --help/--version it
 * prints to `out` and sets *action. On error it returns PL_ECONFIG and writes one line that
 * names the offending key into err (cap bytes). The semantic checks of pl_config_validate
 * are included. Unless it returns 0 with PL_CONFIG_RUN, cfg is left holding no heap memory
 * (calling pl_config_free on it is still safe: it is idempotent). */
int pl_config_load(pl_config_t *cfg, int argc, char **argv, char **envp, FILE *out,
                   pl_config_action_t *action, char *err, size_t cap);

/* Cross-key checks: a JWT key is required unless insecure_dev; the public key file must be
 * readable; TTLs and sizes within range. Returns 0 or PL_ECONFIG with err filled. */
int pl_config_validate(const pl_config_t *cfg, char *err, size_t cap);

/* Prints the --help text (every key, its env variable, flag and default). */
void pl_config_print_help(FILE *out);

void pl_config_free(pl_config_t *cfg);

#endif
