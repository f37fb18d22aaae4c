/* parley.h — the Parley client SDK (libparley).
 *
 * A client joins a room on a parleyd server (REST + WebSocket signaling) and connects to the
 * other members peer to peer over WebRTC DataChannels (ICE, DTLS, SCTP), then exchanges
 * messages with them. The server only relays the handshake; messages never pass through it.
 *
 * Threads: parley_client_new() starts the SDK's own thread (an event loop for signaling,
 * timers, DTLS and SCTP) and an ICE thread. Every callback runs on the SDK thread, one at a
 * time, never from inside a library call of yours. Every function may be called from any
 * thread, callbacks included, except parley_client_free() and the blocking
 * parley_emotes_load*(), which must not be called from a callback. See docs/sdk.md.
 *
 * Errors: functions return 0 or a negative PARLEY_E* code; parley_strerror() names it.
 * Asynchronous operations (create, join, leave) return 0 when accepted; their outcome comes
 * through a callback. Every callback receives the `user` pointer given to
 * parley_client_new(). */
#ifndef PARLEY_H
#define PARLEY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PARLEY_BUILDING)
#define PARLEY_API __attribute__((visibility("default")))
#else
#define PARLEY_API
#endif

#define PARLEY_VERSION_MAJOR 0
#define PARLEY_VERSION_MINOR 1
#define PARLEY_VERSION_PATCH 0

/* ---- errors ---- */

/* The library's own conditions. */
#define PARLEY_EINVAL       (-1)  /* an argument is invalid */
#define PARLEY_ENOMEM       (-2)  /* out of memory */
#define PARLEY_ESTATE       (-3)  /* not possible in the current state (e.g. send before joining) */
#define PARLEY_ENOTCONN     (-4)  /* no open channel to that peer */
#define PARLEY_EMSGSIZE     (-5)  /* larger than the peer's max-message-size */
#define PARLEY_EAGAIN       (-6)  /* the send queue is full; try again later */
#define PARLEY_ETIMEDOUT    (-7)  /* an operation timed out */
#define PARLEY_ENETWORK     (-8)  /* the server could not be reached */
#define PARLEY_EPROTO       (-9)  /* the server or a peer broke the protocol */
#define PARLEY_EDTLS        (-10) /* the DTLS handshake failed */
#define PARLEY_EFINGERPRINT (-11) /* the peer's certificate does not match its SDP fingerprint */
#define PARLEY_EICE         (-12) /* ICE found no working path */
#define PARLEY_ESCTP        (-13) /* the SCTP association failed */
#define PARLEY_ECLOSED      (-14) /* the client or the connection is closed */
#define PARLEY_ENOTFOUND    (-15) /* no such peer */

/* One per error code of the server (docs/api.md section 1), so callers can tell them apart. */
#define PARLEY_ESRV_INVALID_JSON      (-20) /* invalid_json */
#define PARLEY_ESRV_INVALID_REQUEST   (-21) /* invalid_request */
#define PARLEY_ESRV_BAD_REQUEST       (-22) /* bad_request */
#define PARLEY_ESRV_UNAUTHORIZED      (-23) /* unauthorized: the user token was refused */
#define PARLEY_ESRV_FORBIDDEN         (-24) /* forbidden */
#define PARLEY_ESRV_NOT_FOUND         (-25) /* not_found: no such room */
#define PARLEY_ESRV_METHOD            (-26) /* method_not_allowed */
#define PARLEY_ESRV_TIMEOUT           (-27) /* request_timeout */
#define PARLEY_ESRV_CONFLICT          (-28) /* conflict (e.g. the room is full) */
#define PARLEY_ESRV_TOO_LARGE         (-29) /* payload_too_large */
#define PARLEY_ESRV_MEDIA_TYPE        (-30) /* unsupported_media_type */
#define PARLEY_ESRV_RATE_LIMITED      (-31) /* rate_limited */
#define PARLEY_ESRV_HEADERS_TOO_LARGE (-32) /* headers_too_large */
#define PARLEY_ESRV_STORE_UNAVAILABLE (-33) /* store_unavailable */
#define PARLEY_ESRV_OVERLOADED        (-34) /* overloaded */
#define PARLEY_ESRV_UPGRADE_REQUIRED  (-35) /* upgrade_required */
#define PARLEY_ESRV_INTERNAL          (-36) /* internal */
#define PARLEY_ESRV_UNKNOWN           (-37) /* a server error code this SDK does not know */
#define PARLEY_ESRV_REPLACED          (-38) /* a newer connection of the same peer took over */
#define PARLEY_ESRV_EXPIRED           (-39) /* the membership expired; join again */
/* The emote routes' own (docs/api.md section 12). */
#define PARLEY_ESRV_UPSTREAM_UNAVAILABLE (-40) /* upstream_unavailable: 7TV failed, no copy */
#define PARLEY_ESRV_SHUTTING_DOWN        (-41) /* shutting_down: parleyd is stopping */

/* A short English description of err ("unknown error" for anything else). Never NULL. */
PARLEY_API const char *parley_strerror(int err);
/* "0.1.0" */
PARLEY_API const char *parley_version(void);

/* ---- types ---- */

typedef struct parley_client parley_client;

typedef enum { PARLEY_MSG_TEXT = 0, PARLEY_MSG_BINARY = 1 } parley_msg_kind;

typedef enum {
    PARLEY_SIG_CONNECTING = 0,   /* joining, or opening the signaling channel */
    PARLEY_SIG_WEBSOCKET = 1,    /* signaling over the WebSocket channel */
    PARLEY_SIG_LONGPOLL = 2,     /* signaling over REST long-polls (WebSocket unavailable) */
    PARLEY_SIG_RECONNECTING = 3, /* lost; retrying with backoff (open peers keep working) */
    PARLEY_SIG_CLOSED = 4        /* left, or gave up */
} parley_sig_state;

typedef enum {
    PARLEY_GONE_LEFT = 0,       /* the peer left the room (or its membership expired) */
    PARLEY_GONE_FAILED = 1,     /* the connection failed and will not be retried */
    PARLEY_GONE_ROOM_CLOSED = 2 /* the room was closed */
} parley_gone_reason;

/* Strings are valid during the callback only. */
typedef struct {
    const char *peer_id;
    const char *user_id;
    const char *name; /* display name; may be "" */
} parley_peer;

typedef struct {
    const char *room_id;
    const char *peer_id; /* ours */
    const char *broadcaster_name;
    const char *custom_name;
    const char *topology; /* "mesh", "star", "overlay" */
    int max_peers;
    int is_public;
} parley_room;

typedef struct {
    size_t struct_size;       /* sizeof(parley_config): set by parley_config_init() */
    const char *server_url;   /* "http://host:port" of parleyd (required) */
    const char *user_token;   /* the user's JWT; NULL joins as a guest where allowed */
    const char *display_name; /* reserved, NULL: not sent; the server takes the name from the
                                 user token (its "name" claim, else "sub") */
    /* ICE: local addresses to gather on (NULL: every non-loopback interface; tests pass
     * {"127.0.0.1", NULL}), and STUN/TURN servers (NULL: the server's iceServers). */
    const char *const *ice_local_addresses;
    /* "stun:host[:port]" URLs (host: a name, IPv4 or [IPv6]; port 3478 by default),
     * resolved at each join without blocking; libnice uses the first that resolved.
     * "turn:"/"turns:" entries are ignored with a warning (no TURN in this version). */
    const char *const *ice_servers;
    int signaling;           /* PARLEY_SIGNALING_* */
    size_t max_message_size; /* what we accept and advertise; default 262144 */
    int log_level;           /* 0 none, 1 error, 2 warn, 3 info, 4 debug; default 2 */
    void (*log)(int level, const char *msg, void *user); /* NULL: stderr */
} parley_config;

#define PARLEY_SIGNALING_AUTO     0 /* WebSocket, falling back to REST long-polls */
#define PARLEY_SIGNALING_WS       1 /* WebSocket only */
#define PARLEY_SIGNALING_LONGPOLL 2 /* REST long-polls only */

typedef struct {
    /* The join (or create) succeeded: the room, and the members already there. */
    void (*on_joined)(parley_client *c, const parley_room *room, const parley_peer *peers,
                      size_t npeers, void *user);
    /* A member joined the room (signaling only: no channel yet). */
    void (*on_peer_joined)(parley_client *c, const parley_peer *peer, void *user);
    /* A DataChannel to peer is open: parley_send() to it works from now on. */
    void (*on_peer_connected)(parley_client *c, const parley_peer *peer, void *user);
    /* A message from peer (data valid during the callback only). */
    void (*on_message)(parley_client *c, const parley_peer *peer, parley_msg_kind kind,
                       const void *data, size_t len, void *user);
    /* The channel to peer is gone (it left, failed for good, or the room closed). */
    void (*on_peer_gone)(parley_client *c, const parley_peer *peer, parley_gone_reason why,
                         void *user);
    /* The signaling channel changed state; err says why it was lost or closed (or 0). */
    void (*on_signaling)(parley_client *c, parley_sig_state state, int err, void *user);
    /* An operation failed: op is "create", "join", "leave", "signal", "connect"; detail is
     * the server's message or NULL. */
    void (*on_error)(parley_client *c, const char *op, int err, const char *detail, void *user);
    /* The membership is over: after parley_leave() err is always 0 (even when the server
     * could not be told: that is logged, and the server drops the member after its TTL);
     * err < 0 only when the membership ended by itself (expired, replaced, room closed). */
    void (*on_left)(parley_client *c, int err, void *user);
} parley_callbacks;

/* ---- the client ---- */

/* Fills cfg with the defaults (every field zero or NULL except those documented above). */
PARLEY_API void parley_config_init(parley_config *cfg);

/* Creates a client and starts its threads. cfg and cb are copied (strings too). */
PARLEY_API int parley_client_new(const parley_config *cfg, const parley_callbacks *cb, void *user,
                                 parley_client **out);

/* Leaves the room if joined (without waiting for the server), closes every connection, stops
 * the threads and frees the client. No callback runs after it returns. Not from a callback. */
PARLEY_API void parley_client_free(parley_client *c);

/* Creates a room and joins it as its broadcaster. custom_name and topology may be NULL
 * (topology: "mesh" by default). Outcome: on_joined or on_error("create"). */
PARLEY_API int parley_create_room(parley_client *c, const char *custom_name, int is_public,
                                  const char *topology);

/* Joins a room by id, or by the broadcaster's name. Outcome: on_joined or on_error("join"). */
PARLEY_API int parley_join_room(parley_client *c, const char *room_id);
PARLEY_API int parley_join_broadcaster(parley_client *c, const char *broadcaster_name);

/* Leaves the room: closes every peer connection and tells the server. Outcome: on_left(0). */
PARLEY_API int parley_leave(parley_client *c);

/* Sends one message to one peer, or to every connected peer. Messages to a peer arrive in
 * order. PARLEY_ENOTCONN without an open channel to it, PARLEY_EMSGSIZE above its
 * max-message-size, PARLEY_EAGAIN when its send queue is full. */
PARLEY_API int parley_send(parley_client *c, const char *peer_id, parley_msg_kind kind,
                           const void *data, size_t len);
/* Returns how many peers it was queued for (>= 0), or a negative error. */
PARLEY_API int parley_broadcast(parley_client *c, parley_msg_kind kind, const void *data,
                                size_t len);

/* The largest message peer accepts (0 when not connected). */
PARLEY_API size_t parley_max_message_size(parley_client *c, const char *peer_id);

/* ---- emotes: 7TV emotes and custom emoji in message text ----
 *
 * A parley_emotes is a collection of emotes by name, in two namespaces: 7TV emotes (a word
 * of a message that is exactly an emote's name is that emote) and the room domain's custom
 * emoji (written ":name:"). Fill it from parleyd with parley_emotes_load_*() (blocking), or
 * with parley_emotes_add_json() from answers your own HTTP client fetched; then split text
 * into tokens with parley_message_parse(). A collection has no lock: any number of threads
 * may read it (parse, find, ids) at once while no thread changes it (add, load, free).
 * Emotes and tokens point into it: they stay valid until it is next changed or freed.
 * Needs no parley_client. See docs/sdk.md, "Emotes". */

typedef struct parley_emotes parley_emotes;

typedef enum { PARLEY_EMOTE_7TV = 1, PARLEY_EMOTE_CUSTOM = 2 } parley_emote_kind;

/* One emote (the seed's EmoteData, or a CustomEmoji). */
typedef struct {
    parley_emote_kind kind;
    const char *id;    /* 7TV emote id or custom emoji id: 1..64 of A-Z a-z 0-9 - _ */
    const char *name;  /* 7TV: 1..100 bytes of UTF-8 without whitespace or control
                          characters; custom: 2..32 of A-Z a-z 0-9 _ (no colons) */
    const char *url;   /* the image: an absolute http:// or https:// URL */
    int width, height; /* in pixels, 0..65535; 0 when the server did not say */
    int animated;      /* 1 for an animated image, else 0 */
} parley_emote;

#define PARLEY_EMOTES_MAX       100000      /* emotes in one collection, both kinds */
#define PARLEY_EMOTES_MAX_JSON  (16u << 20) /* bytes of one answer body */
#define PARLEY_MESSAGE_MAX_TEXT (1u << 20)  /* bytes of text parley_message_parse() takes */

/* A new, empty collection. 0, or PARLEY_EINVAL (out NULL) or PARLEY_ENOMEM. */
PARLEY_API int parley_emotes_new(parley_emotes **out);
/* Frees the collection, its emotes with it. NULL is fine. */
PARLEY_API void parley_emotes_free(parley_emotes *e);

/* Adds the emotes of one parleyd answer body: {"emotes":[EmoteData]} for PARLEY_EMOTE_7TV
 * (GET /emotes/7tv/...), {"emojis":[CustomEmoji]} for PARLEY_EMOTE_CUSTOM (GET /emoji/list).
 * An emote replaces the one of the same kind and name already there (also earlier in the
 * same body), so load the 7TV global set first and a channel's set after it. Entries that
 * are malformed (a field missing or of the wrong type, a name, id or URL outside the bounds
 * of parley_emote) are skipped. A url starting with "/" is taken relative to base_url (the
 * server URL, e.g. "http://host:8080"; NULL: such entries are skipped); "//host/..." gets
 * "https:". Returns how many emotes were added or replaced (>= 0); PARLEY_EINVAL (e or kind
 * invalid, json NULL, base_url not an http(s) URL), PARLEY_EPROTO (not JSON, or not an object
 * with that array), PARLEY_EMSGSIZE (len above PARLEY_EMOTES_MAX_JSON, or the collection
 * holds PARLEY_EMOTES_MAX: the emotes before that point stay), PARLEY_ENOMEM. */
PARLEY_API int parley_emotes_add_json(parley_emotes *e, parley_emote_kind kind, const char *json,
                                      size_t len, const char *base_url);

/* GETs server_url + path from parleyd with the SDK's HTTP client and adds the answer as
 * parley_emotes_add_json(e, kind, body, len, server_url) does. server_url as
 * parley_config.server_url; path starts with "/" and is sent as it is (1..1024 bytes of
 * printable ASCII, no spaces: percent-encode it yourself). BLOCKS the calling thread for up
 * to timeout_ms (<= 0: 10000) from connecting to the last byte; name resolution (the
 * system's resolver) comes before and is not counted. Refused with PARLEY_ESTATE on a
 * client's SDK thread (inside a callback), which it would stall. Returns the count as
 * parley_emotes_add_json() does, or PARLEY_ENETWORK (unreachable or unresolvable),
 * PARLEY_ETIMEDOUT, PARLEY_EPROTO (a broken answer, or a body over PARLEY_EMOTES_MAX_JSON),
 * a PARLEY_ESRV_* for an error status (the error body's code, else the status), or what
 * parley_emotes_add_json() returns. Nothing is added unless the status is 200. */
PARLEY_API int parley_emotes_load(parley_emotes *e, const char *server_url, const char *path,
                                  parley_emote_kind kind, int timeout_ms);
/* parleyd's emote routes (DESIGN section 6) through parley_emotes_load(); bad arguments
 * are PARLEY_EINVAL:
 * - 7TV's global set: GET /emotes/7tv/global;
 * - a channel's 7TV set: GET /emotes/7tv/users/{platform}/{userId}, platform "twitch",
 *   "youtube", "kick", ... (1..32 of a-z), user_id the user's id there (1..64 of
 *   A-Z a-z 0-9 - _);
 * - a 7TV emote set by id: GET /emotes/7tv/emote-sets/{setId} (1..64 of A-Z a-z 0-9 - _);
 * - a domain's custom emoji: GET /emoji/list?domain=D (1..253 of A-Z a-z 0-9 . -). */
PARLEY_API int parley_emotes_load_7tv_global(parley_emotes *e, const char *server_url,
                                             int timeout_ms);
PARLEY_API int parley_emotes_load_7tv_user(parley_emotes *e, const char *server_url,
                                           const char *platform, const char *user_id,
                                           int timeout_ms);
PARLEY_API int parley_emotes_load_7tv_set(parley_emotes *e, const char *server_url,
                                          const char *set_id, int timeout_ms);
PARLEY_API int parley_emotes_load_custom(parley_emotes *e, const char *server_url,
                                         const char *domain, int timeout_ms);

/* The emote of that kind and name (len bytes; a custom emoji's name without its colons), or
 * NULL. How many emotes of a kind the collection holds. Both take a NULL collection. */
PARLEY_API const parley_emote *parley_emotes_find(const parley_emotes *e, parley_emote_kind kind,
                                                  const char *name, size_t len);
PARLEY_API size_t parley_emotes_count(const parley_emotes *e, parley_emote_kind kind);

typedef enum {
    PARLEY_TOKEN_TEXT = 0,  /* plain text (whitespace included) */
    PARLEY_TOKEN_EMOTE = 1, /* a 7TV emote (== PARLEY_EMOTE_7TV) */
    PARLEY_TOKEN_CUSTOM = 2 /* a custom emoji (== PARLEY_EMOTE_CUSTOM) */
} parley_token_kind;

typedef struct {
    parley_token_kind kind;
    const char *text; /* the slice of the input it covers: text, the emote's word, ":name:" */
    size_t len;
    const parley_emote *emote; /* what to render; NULL for text */
} parley_token;

/* Splits text (len bytes of UTF-8) into tokens that cover it whole, in order:
 * - words are the runs between ASCII whitespace (space, \t, \n, \v, \f, \r); a word that is
 *   exactly the name of a 7TV emote (bytewise, so case-sensitive; "KEKW," is not KEKW) is a
 *   PARLEY_TOKEN_EMOTE;
 * - in the other words, ":name:" with name 2..32 of A-Z a-z 0-9 _ that names a custom emoji
 *   is a PARLEY_TOKEN_CUSTOM wherever it stands ("hi:wave:!" is "hi", wave, "!"); scanning
 *   goes left to right, and an unknown ":name:" stays text while its closing colon may open
 *   the next one ("a:x:wave:" is "a:x", wave);
 * - everything else is PARLEY_TOKEN_TEXT, adjacent text merged into one token, so text and
 *   emote tokens alternate only where an emote stands; each use of an emote is a token.
 * Time and memory are linear in len. *out is one allocation (free it with
 * parley_tokens_free()), NULL with *n 0 for empty text. With e NULL or empty the text is
 * one token. The tokens point into text and e: valid while both are unchanged. Returns 0;
 * PARLEY_EINVAL (out or n NULL, text NULL with len > 0, text not valid UTF-8),
 * PARLEY_EMSGSIZE (len above PARLEY_MESSAGE_MAX_TEXT), PARLEY_ENOMEM. */
PARLEY_API int parley_message_parse(const parley_emotes *e, const char *text, size_t len,
                                    parley_token **out, size_t *n);
PARLEY_API void parley_tokens_free(parley_token *tokens);

/* What a sender puts in its chat message: the distinct ids of the 7TV emotes (emoteIds) and
 * of the custom emoji (customEmojiIds) that parley_message_parse() finds in the text, each
 * list in order of first use. The strings belong to the collection. */
typedef struct {
    const char **emote_ids;
    size_t n_emote_ids;
    const char **custom_emoji_ids;
    size_t n_custom_emoji_ids;
} parley_emote_ids;

/* Fills *ids (free it with parley_emote_ids_free()); errors as parley_message_parse(), with
 * *ids then empty. */
PARLEY_API int parley_message_emote_ids(const parley_emotes *e, const char *text, size_t len,
                                        parley_emote_ids *ids);
/* Frees the lists and empties *ids. NULL is fine. */
PARLEY_API void parley_emote_ids_free(parley_emote_ids *ids);

#ifdef __cplusplus
}
#endif
#endif
