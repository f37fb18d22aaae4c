/* parley-chat: a terminal chat over libparley.
 *
 *   parley-chat --server URL --token JWT (--create [--name ROOM] | --join ROOM_ID |
 *               --broadcaster NAME) [--name-as DISPLAY] [--ice-addr ADDR]...
 *               [--7tv-global] [--7tv-channel PLATFORM:USER_ID]... [--7tv-set SET_ID]...
 *               [--emoji-domain DOMAIN]
 *
 * Prints "room <roomId>" once joined (stdout), sends each stdin line to every connected
 * peer, prints each message received as "<senderName>: <text>": the message's senderName
 * when it is a usable name (1..128 bytes, no control characters), else the sender's display
 * name from the room's member info (else its peer id); peer events go to stderr. Our own
 * senderName is --name-as, else the name the server gives us (the room's broadcasterName
 * when we created it, else the user token's name claim, else its sub: the server's rule).
 * EOF or SIGINT leaves and exits 0.
 *
 * Messages go out as the seed's chat JSON ({id, roomId, senderId, senderName, timestamp,
 * text, encrypted:false, emoteIds, customEmojiIds}); a message that is not such JSON (from a
 * browser, say) is printed as it is.
 *
 * Emotes: the --7tv-* and --emoji-domain options load emote sets from the server before
 * joining (7TV global first, then channels and sets in the order given, so theirs win). With
 * any loaded, received text shows each emote as "[name]" (tokens of parley_message_parse),
 * and our messages carry the ids of the emotes they use in emoteIds / customEmojiIds. A set
 * that cannot be loaded is reported on stderr and the chat goes on without it. */
#include <parley.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_ICE_ADDRS 16
#define MAX_LINE      16384
#define MAX_NAME      128 /* a senderName longer than this is not shown */
#define MAX_SETS      16  /* --7tv-channel and --7tv-set options */
#define LOAD_TIMEOUT  10000

static volatile sig_atomic_t interrupted;

/* The emotes loaded at start (NULL: none asked for). Only read once the client runs, from
 * the SDK thread (received messages) and the main thread (sent ones), which the collection
 * allows. */
static parley_emotes *emotes;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int joined, left, failed;
    char room_id[64];
    char peer_id[64];
    const char *name_as;       /* --name-as */
    char sender[MAX_NAME + 1]; /* our senderName: --name-as, else the server's name */
    int created;
} st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, "", "", NULL, "", 0};

static void usage(FILE *f)
{
    fprintf(f, "usage: parley-chat --server URL --token JWT (--create [--name ROOM] | --join "
               "ROOM_ID | --broadcaster NAME)\n"
               "                   [--name-as DISPLAY] [--ice-addr ADDR]...\n"
               "                   [--7tv-global] [--7tv-channel PLATFORM:USER_ID]...\n"
               "                   [--7tv-set SET_ID]... [--emoji-domain DOMAIN]\n"
               "  --server URL        parleyd, e.g. http://127.0.0.1:8080\n"
               "  --token JWT         your user token\n"
               "  --create            create a room (--name: its custom name)\n"
               "  --join ROOM_ID      join a room by id\n"
               "  --broadcaster NAME  join the live public room of that broadcaster\n"
               "  --name-as DISPLAY   the sender name in your messages (default: your name as\n"
               "                      the server has it: the token's name)\n"
               "  --ice-addr ADDR     gather ICE candidates on ADDR (repeatable; default: all\n"
               "                      non-loopback interfaces)\n"
               "  --7tv-global        load 7TV's global emotes\n"
               "  --7tv-channel P:ID  load the 7TV emotes of a channel, e.g. twitch:44317909\n"
               "                      (repeatable; later sets win over earlier ones)\n"
               "  --7tv-set SET_ID    load a 7TV emote set by id (repeatable)\n"
               "  --emoji-domain D    load the custom emoji of domain D (used as :name:)\n"
               "Received emotes are shown as [name].\n"
               "Prints \"room <roomId>\" once joined; each stdin line goes to every connected\n"
               "peer; EOF or Ctrl-C leaves.\n");
}

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- a little JSON (the example links libparley only) ---- */

/* Appends s as a JSON string literal; returns the new length or 0 when out of room. */
static size_t json_str(char *out, size_t cap, size_t o, const char *s)
{
    if (o + 2 >= cap)
        return 0;
    out[o++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (o + 8 >= cap)
            return 0;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

static void put_utf8(char *out, size_t *o, unsigned cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | cp >> 6);
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*o)++] = (char)(0xe0 | cp >> 12);
        out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* The string value of member key of a JSON object (the first "key": in it, not preceded by
 * a backslash), unescaped into out (at least len + 4 bytes); 0 when in is not such an
 * object. Deliberately small: the chat JSON is flat, and a non-conforming message is just
 * shown raw. (Surrogate pairs become U+FFFD.) */
static int json_field(const char *in, size_t len, const char *key, char *out)
{
    const char *end = in + len, *p = in;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    if (p == end || *p != '{')
        return 0;
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = NULL;
    for (const char *q = p; q + pl <= end; q++)
        if (memcmp(q, pat, (size_t)pl) == 0 && q[-1] != '\\') {
            k = q + pl;
            break;
        }
    if (!k)
        return 0;
    while (k < end && *k == ' ')
        k++;
    if (k >= end || *k != '"')
        return 0;
    size_t o = 0;
    for (k++; k < end && *k != '"'; k++) {
        if (*k != '\\') {
            out[o++] = *k;
            continue;
        }
        if (++k >= end)
            return 0;
        switch (*k) {
        case 'n':
            out[o++] = '\n';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 'b':
        case 'f':
            out[o++] = ' ';
            break;
        case 'u': {
            if (end - k < 5)
                return 0;
            char hex[5] = {k[1], k[2], k[3], k[4], 0};
            unsigned cp = (unsigned)strtoul(hex, NULL, 16);
            put_utf8(out, &o, cp >= 0xd800 && cp < 0xe000 ? 0xfffd : cp);
            k += 4;
            break;
        }
        default:
            out[o++] = *k;
        }
    }
    if (k >= end)
        return 0;
    out[o] = '\0';
    return 1;
}

/* A name fit to show: 1..MAX_NAME bytes, no control characters (so a peer cannot drive the
 * terminal or fake a line). */
static int usable_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* Our name as the server has it when we join a room we did not create: the user token's
 * name claim, else its sub (docs/api.md section 2), from the token's payload (not
 * verified: it is our own token). "" when there is none or it cannot be read. */
static void token_name(const char *token, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = token ? strchr(token, '.') : NULL;
    const char *q = p ? strchr(p + 1, '.') : NULL;
    if (!q || q - p > 8192)
        return;
    size_t n = (size_t)(q - p - 1);
    char *json = malloc(n + 4), *val = malloc(n + 4);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; json && val && i < n; i++) {
        char c = p[1 + i];
        const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *f = strchr(a, c);
        if (!f || !c) {
            o = 0;
            break;
        }
        acc = acc << 6 | (unsigned)(f - a);
        if ((bits += 6) >= 8) {
            bits -= 8;
            json[o++] = (char)(acc >> bits & 0xff);
        }
    }
    if (o && (json_field(json, o, "name", val) || json_field(json, o, "sub", val)) &&
        strlen(val) < cap)
        snprintf(out, cap, "%s", val);
    free(json);
    free(val);
}

/* ---- callbacks (SDK thread) ---- */

static void on_joined(parley_client *c, const parley_room *room, const parley_peer *peers, size_t n,
                      void *user)
{
    pthread_mutex_lock(&st.mu);
    snprintf(st.room_id, sizeof st.room_id, "%s", room->room_id ? room->room_id : "");
    snprintf(st.peer_id, sizeof st.peer_id, "%s", room->peer_id ? room->peer_id : "");
    /* The server names the room's broadcaster after its creator: that is us. */
    if (!st.name_as && st.created && room->broadcaster_name &&
        strlen(room->broadcaster_name) < sizeof st.sender)
        snprintf(st.sender, sizeof st.sender, "%s", room->broadcaster_name);
    st.joined = 1;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    printf("room %s\n", st.room_id);
    fflush(stdout);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "member %s (%s)\n", peers[i].name, peers[i].peer_id);
}

static void on_peer_joined(parley_client *c, const parley_peer *p, void *user)
{
    fprintf(stderr, "joined: %s (%s)\n", p->name, p->peer_id);
}

static void on_peer_connected(parley_client *c, const parley_peer *p, void *user)
{
    fprintf(stderr, "connected: %s (%s)\n", p->name, p->peer_id);
}

static void on_peer_gone(parley_client *c, const parley_peer *p, parley_gone_reason why, void *user)
{
    static const char *const whys[] = {"left", "failed", "room closed"};
    fprintf(stderr, "gone: %s (%s): %s\n", p->name, p->peer_id,
            (unsigned)why < 3 ? whys[why] : "?");
}

/* Prints text with control characters (but tabs) replaced, so a peer cannot drive the
 * terminal. */
static void print_clean(const char *name, const char *text, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        out[i] = (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch;
    }
    out[len] = '\0';
    printf("%s: %s\n", name, out);
    fflush(stdout);
    free(out);
}

/* text with each emote shown as "[name]", in a new string (its length in *outlen); NULL
 * when no emotes are loaded or text is not UTF-8, and then it is shown as it is. */
static char *with_emotes(const char *text, size_t len, size_t *outlen)
{
    parley_token *t;
    size_t n;
    if (!emotes || parley_message_parse(emotes, text, len, &t, &n) < 0)
        return NULL;
    /* "[name]" is never longer than the 7TV word (+2) or the ":name:" it stands for. */
    char *out = malloc(len + 2 * n + 1);
    size_t o = 0;
    for (size_t i = 0; out && i < n; i++) {
        if (!t[i].emote) {
            memcpy(out + o, t[i].text, t[i].len);
            o += t[i].len;
        } else {
            o += (size_t)sprintf(out + o, "[%s]", t[i].emote->name);
        }
    }
    parley_tokens_free(t);
    if (out)
        out[o] = '\0';
    *outlen = o;
    return out;
}

/* print_clean, with emotes shown as "[name]" when there are any to show. */
static void print_text(const char *name, const char *text, size_t len)
{
    size_t n;
    char *shown = with_emotes(text, len, &n);
    if (shown)
        print_clean(name, shown, n);
    else
        print_clean(name, text, len);
    free(shown);
}

static void on_message(parley_client *c, const parley_peer *p, parley_msg_kind kind,
                       const void *data, size_t len, void *user)
{
    /* The name shown: the chat JSON's senderName when it is usable (the sender's choice, as
     * in the seed's chat), else the sender's member name as the room knows it. */
    const char *name = p->name && *p->name ? p->name : p->peer_id;
    if (kind == PARLEY_MSG_BINARY) {
        fprintf(stderr, "%s sent %zu bytes of binary\n", name, len);
        return;
    }
    char *text = malloc(len + 4), *sender = malloc(len + 4);
    if (sender && json_field(data, len, "senderName", sender) && usable_name(sender))
        name = sender;
    if (text && json_field(data, len, "text", text))
        print_text(name, text, strlen(text));
    else
        print_text(p->name && *p->name ? p->name : p->peer_id, data, len);
    free(text);
    free(sender);
}

static void on_signaling(parley_client *c, parley_sig_state s, int err, void *user)
{
    static const char *const names[] = {"connecting", "websocket", "long-poll", "reconnecting",
                                        "closed"};
    fprintf(stderr, "signaling: %s%s%s\n", (unsigned)s < 5 ? names[s] : "?", err ? ": " : "",
            err ? parley_strerror(err) : "");
}

static void on_error(parley_client *c, const char *op, int err, const char *detail, void *user)
{
    fprintf(stderr, "error (%s): %s%s%s\n", op, parley_strerror(err), detail ? ": " : "",
            detail ? detail : "");
    if (strcmp(op, "create") == 0 || strcmp(op, "join") == 0) {
        pthread_mutex_lock(&st.mu);
        st.failed = 1;
        pthread_cond_broadcast(&st.cv);
        pthread_mutex_unlock(&st.mu);
    }
}

static void on_left(parley_client *c, int err, void *user)
{
    if (err)
        fprintf(stderr, "left: %s\n", parley_strerror(err));
    pthread_mutex_lock(&st.mu);
    st.left = 1;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
}

/* ---- main thread ---- */

/* Appends the ids as a JSON array. Emote ids are 1..64 of A-Z a-z 0-9 - _ (parley.h), so
 * they need no escaping. */
static size_t append_ids(char *out, size_t cap, size_t o, const char **ids, size_t n)
{
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", i ? "," : "", ids[i]);
    return o + (size_t)snprintf(out + o, cap - o, "]");
}

/* The message's "emoteIds":[...],"customEmojiIds":[...] for the emotes line uses (empty
 * lists without emotes, or for a line that is not UTF-8), in a new string. */
static char *emote_ids_json(const char *line)
{
    parley_emote_ids ids;
    memset(&ids, 0, sizeof ids);
    if (emotes)
        parley_message_emote_ids(emotes, line, strlen(line), &ids); /* errors leave it empty */
    size_t cap = 64 + 67 * (ids.n_emote_ids + ids.n_custom_emoji_ids);
    char *out = malloc(cap);
    if (out) {
        size_t o = (size_t)snprintf(out, cap, "\"emoteIds\":");
        o = append_ids(out, cap, o, ids.emote_ids, ids.n_emote_ids);
        o += (size_t)snprintf(out + o, cap - o, ",\"customEmojiIds\":");
        append_ids(out, cap, o, ids.custom_emoji_ids, ids.n_custom_emoji_ids);
    }
    parley_emote_ids_free(&ids);
    return out;
}

static void send_line(parley_client *c, const char *line)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    char id[128];
    snprintf(id, sizeof id, "%s-%lld-%u", st.peer_id, now, (unsigned)rand());
    char *ids = emote_ids_json(line);
    size_t cap = strlen(line) * 6 + sizeof st.sender * 6 + 1024 + (ids ? strlen(ids) : 0);
    char *text = ids ? malloc(cap) : NULL;
    size_t o = 0;
    if (text) {
        o = (size_t)snprintf(text, cap,
                             "{\"id\":\"%s\",\"roomId\":\"%s\",\"senderId\":\"%s\","
                             "\"senderName\":",
                             id, st.room_id, st.peer_id);
        pthread_mutex_lock(&st.mu);
        o = json_str(text, cap, o, st.sender);
        pthread_mutex_unlock(&st.mu);
        o += o ? (size_t)snprintf(text + o, cap - o, ",\"timestamp\":%lld,\"text\":", now) : 0;
        o = o ? json_str(text, cap, o, line) : 0;
        o += o ? (size_t)snprintf(text + o, cap - o, ",\"encrypted\":false,%s}", ids) : 0;
    }
    free(ids);
    if (!o) {
        free(text);
        fprintf(stderr, "cannot send: out of memory\n");
        return;
    }
    int n = parley_broadcast(c, PARLEY_MSG_TEXT, text, o);
    if (n < 0)
        fprintf(stderr, "send failed: %s\n", parley_strerror(n));
    else if (n == 0)
        fprintf(stderr, "(nobody connected yet)\n");
    free(text);
}

/* One --7tv-channel or --7tv-set option, kept in the order given. */
typedef struct {
    int is_set;
    const char *value;
} emote_set_opt;

/* Reports one load on stderr: a failure is a warning, the chat goes on without that set. */
static void report_load(const char *what, const char *value, int rc)
{
    if (rc < 0)
        fprintf(stderr, "parley-chat: cannot load %s%s%s: %s\n", what, value ? " " : "",
                value ? value : "", parley_strerror(rc));
    else
        fprintf(stderr, "emotes: %s%s%s: %d\n", what, value ? " " : "", value ? value : "", rc);
}

/* Loads the emote sets asked for, 7TV's global set first so that channels and sets (in the
 * order given) override its names. 0, or 2 for a --7tv-channel the SDK refuses as it is. */
static int load_emotes(const char *server, int global, const emote_set_opt *sets, int nsets,
                       const char *domain)
{
    if (!global && !nsets && !domain)
        return 0;
    if (parley_emotes_new(&emotes) < 0)
        return 1;
    if (global)
        report_load("7TV global emotes", NULL,
                    parley_emotes_load_7tv_global(emotes, server, LOAD_TIMEOUT));
    for (int i = 0; i < nsets; i++) {
        const char *v = sets[i].value;
        int rc;
        if (sets[i].is_set) {
            rc = parley_emotes_load_7tv_set(emotes, server, v, LOAD_TIMEOUT);
        } else {
            /* PLATFORM:USER_ID, e.g. twitch:44317909 */
            const char *colon = strchr(v, ':');
            char platform[33];
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof platform) {
                fprintf(stderr, "parley-chat: --7tv-channel takes PLATFORM:USER_ID, e.g. "
                                "twitch:44317909\n");
                return 2;
            }
            snprintf(platform, sizeof platform, "%.*s", (int)(colon - v), v);
            rc = parley_emotes_load_7tv_user(emotes, server, platform, colon + 1, LOAD_TIMEOUT);
        }
        if (rc == PARLEY_EINVAL) {
            fprintf(stderr, "parley-chat: invalid %s %s\n",
                    sets[i].is_set ? "--7tv-set" : "--7tv-channel", v);
            return 2;
        }
        report_load(sets[i].is_set ? "7TV emote set" : "7TV emotes of", v, rc);
    }
    if (domain) {
        int rc = parley_emotes_load_custom(emotes, server, domain, LOAD_TIMEOUT);
        if (rc == PARLEY_EINVAL) {
            fprintf(stderr, "parley-chat: invalid --emoji-domain %s\n", domain);
            return 2;
        }
        report_load("custom emoji of", domain, rc);
    }
    return 0;
}

/* Waits until cond holds, the process is interrupted, or ms pass. */
static int wait_for(int *flag, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st.mu);
    while (!*flag && !st.failed && !interrupted)
        if (pthread_cond_timedwait(&st.cv, &st.mu, &ts) == ETIMEDOUT)
            break;
    int v = *flag;
    pthread_mutex_unlock(&st.mu);
    return v;
}

int main(int argc, char **argv)
{
    const char *server = NULL, *token = NULL, *name = NULL, *join = NULL, *bcast = NULL;
    const char *ice[MAX_ICE_ADDRS + 1] = {0};
    const char *emoji_domain = NULL;
    emote_set_opt sets[MAX_SETS];
    int create = 0, nice = 0, nsets = 0, global_emotes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--create") == 0) {
            create = 1;
            continue;
        } else if (strcmp(a, "--7tv-global") == 0) {
            global_emotes = 1;
            continue;
        } else if (!v) {
            fprintf(stderr, "parley-chat: %s needs a value (or unknown option)\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--server") == 0) {
            server = v;
        } else if (strcmp(a, "--token") == 0) {
            token = v;
        } else if (strcmp(a, "--name") == 0) {
            name = v;
        } else if (strcmp(a, "--join") == 0) {
            join = v;
        } else if (strcmp(a, "--broadcaster") == 0) {
            bcast = v;
        } else if (strcmp(a, "--name-as") == 0) {
            st.name_as = v;
        } else if (strcmp(a, "--ice-addr") == 0) {
            if (nice >= MAX_ICE_ADDRS) {
                fprintf(stderr, "parley-chat: at most %d --ice-addr\n", MAX_ICE_ADDRS);
                return 2;
            }
            ice[nice++] = v;
        } else if (strcmp(a, "--7tv-channel") == 0 || strcmp(a, "--7tv-set") == 0) {
            if (nsets >= MAX_SETS) {
                fprintf(stderr, "parley-chat: at most %d --7tv-channel and --7tv-set\n", MAX_SETS);
                return 2;
            }
            sets[nsets].is_set = strcmp(a, "--7tv-set") == 0;
            sets[nsets++].value = v;
        } else if (strcmp(a, "--emoji-domain") == 0) {
            emoji_domain = v;
        } else {
            fprintf(stderr, "parley-chat: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!server || create + !!join + !!bcast != 1 || (name && !create)) {
        usage(stderr);
        return 2;
    }
    if (st.name_as && !usable_name(st.name_as)) {
        fprintf(stderr, "parley-chat: --name-as takes 1 to %d bytes without control characters\n",
                MAX_NAME);
        return 2;
    }
    /* Our senderName: --name-as; else the token's name (what the server takes), replaced
     * by the room's broadcasterName once we have created a room. */
    st.created = create;
    if (st.name_as)
        snprintf(st.sender, sizeof st.sender, "%s", st.name_as);
    else
        token_name(token, st.sender, sizeof st.sender);

    signal(SIGPIPE, SIG_IGN);
    /* Before joining: the loads block, and must not run inside a callback anyway. */
    int rc = load_emotes(server, global_emotes, sets, nsets, emoji_domain);
    if (rc != 0) {
        parley_emotes_free(emotes);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    parley_config cfg;
    parley_config_init(&cfg);
    cfg.server_url = server;
    cfg.user_token = token;
    if (nice)
        cfg.ice_local_addresses = ice;
    parley_callbacks cb = {on_joined,    on_peer_joined, on_peer_connected, on_message,
                           on_peer_gone, on_signaling,   on_error,          on_left};
    parley_client *c = NULL;
    rc = parley_client_new(&cfg, &cb, NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "parley-chat: %s\n", parley_strerror(rc));
        parley_emotes_free(emotes);
        return 1;
    }
    rc = create ? parley_create_room(c, name, 1, NULL)
         : join ? parley_join_room(c, join)
                : parley_join_broadcaster(c, bcast);
    if (rc < 0 || !wait_for(&st.joined, 30000)) {
        fprintf(stderr, "parley-chat: could not join%s%s\n", rc < 0 ? ": " : "",
                rc < 0 ? parley_strerror(rc) : "");
        parley_client_free(c);
        parley_emotes_free(emotes);
        return interrupted ? 0 : 1;
    }

    /* stdin with poll(), so that SIGINT (and a membership that ended) are noticed. */
    char *line = malloc(MAX_LINE);
    size_t used = 0;
    int eof = 0;
    while (line && !interrupted && !eof) {
        pthread_mutex_lock(&st.mu);
        int left = st.left;
        pthread_mutex_unlock(&st.mu);
        if (left)
            break;
        struct pollfd pfd = {0, POLLIN, 0};
        int n = poll(&pfd, 1, 200);
        if (n <= 0)
            continue;
        ssize_t got = read(0, line + used, MAX_LINE - 1 - used);
        if (got <= 0) {
            eof = 1;
            got = 0;
        }
        used += (size_t)got;
        char *nl;
        while ((nl = memchr(line, '\n', used))) {
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            if (*line)
                send_line(c, line);
            used -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, used);
        }
        if (used == MAX_LINE - 1 || (eof && used)) { /* an overlong line, or one at EOF */
            line[used] = '\0';
            send_line(c, line);
            used = 0;
        }
    }
    free(line);
    if (eof)
        usleep(500000); /* let the last lines leave before the connections close */
    pthread_mutex_lock(&st.mu);
    int left = st.left;
    pthread_mutex_unlock(&st.mu);
    if (!left && parley_leave(c) == 0)
        wait_for(&st.left, 2000);
    parley_client_free(c);
    parley_emotes_free(emotes);
    return 0;
}
