/* parley-chat: a terminal chat over libparley.
 *
 *   parley-chat --server URL --token JWT (--create [--name ROOM] | --join ROOM_ID |
 *               --broadcaster NAME) [--name-as DISPLAY] [--ice-addr ADDR]...
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
 * text, encrypted:false, emoteIds:[], customEmojiIds:[]}); a message that is not such JSON
 * (from a browser, say) is printed as it is. */
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

static volatile sig_atomic_t interrupted;

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
               "  --server URL        parleyd, e.g. http://127.0.0.1:8080\n"
               "  --token JWT         your user token\n"
               "  --create            create a room (--name: its custom name)\n"
               "  --join ROOM_ID      join a room by id\n"
               "  --broadcaster NAME  join the live public room of that broadcaster\n"
               "  --name-as DISPLAY   the sender name in your messages (default: your name as\n"
               "                      the server has it: the token's name)\n"
               "  --ice-addr ADDR     gather ICE candidates on ADDR (repeatable; default: all\n"
               "                      non-loopback interfaces)\n"
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
        print_clean(name, text, strlen(text));
    else
        print_clean(p->name && *p->name ? p->name : p->peer_id, data, len);
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

static void send_line(parley_client *c, const char *line)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    char id[128];
    snprintf(id, sizeof id, "%s-%lld-%u", st.peer_id, now, (unsigned)rand());
    size_t cap = strlen(line) * 6 + sizeof st.sender * 6 + 1024;
    char *text = malloc(cap);
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
        o += o ? (size_t)snprintf(text + o, cap - o,
                                  ",\"encrypted\":false,\"emoteIds\":[],\"customEmojiIds\":[]}")
               : 0;
    }
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
    int create = 0, nice = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--create") == 0) {
            create = 1;
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
    int rc = parley_client_new(&cfg, &cb, NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "parley-chat: %s\n", parley_strerror(rc));
        return 1;
    }
    rc = create ? parley_create_room(c, name, 1, NULL)
         : join ? parley_join_room(c, join)
                : parley_join_broadcaster(c, bcast);
    if (rc < 0 || !wait_for(&st.joined, 30000)) {
        fprintf(stderr, "parley-chat: could not join%s%s\n", rc < 0 ? ": " : "",
                rc < 0 ? parley_strerror(rc) : "");
        parley_client_free(c);
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
    return 0;
}
