/* ice_servers: the STUN URL parser (util.c pl__parse_stun_url), parley_client_new()'s check
 * of the list, and the list reaching libnice: two clients configured with
 * {"turns:...", "stun:localhost:<port>"} connect through a real parleyd (path in PARLEYD)
 * while a fake STUN server on 127.0.0.1:<port> counts the Binding requests libnice sends
 * it (the name resolved on the SDK loop), and the TURN entry is ignored with a warning.
 * Before, the URL went to libnice as it was and no request was ever sent.
 *
 * Without PARLEYD the end-to-end case is skipped (77) by hand and fails under ctest
 * (PARLEY_TEST_STRICT=1). */
#include "internal.h"
#include "sdk_testutil.h"
#include "test.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

static void test_parse(void)
{
    static const struct {
        const char *url;
        int rc;
        const char *host;
        unsigned port;
    } cases[] = {
        {"stun:stun.l.google.com:19302", 0, "stun.l.google.com", 19302},
        {"stun:stun.example.org", 0, "stun.example.org", 3478},
        {"STUN:Example.org:1", 0, "Example.org", 1},
        {"stun:192.0.2.7:3479", 0, "192.0.2.7", 3479},
        {"stun:192.0.2.7", 0, "192.0.2.7", 3478},
        {"stun:[2001:db8::1]:5000", 0, "2001:db8::1", 5000},
        {"stun:[::1]", 0, "::1", 3478},
        {"192.0.2.7:3478", 0, "192.0.2.7", 3478}, /* the bare form 0.1.0 took */
        {"localhost", 0, "localhost", 3478},
        {"turn:turn.example.com:3478", PL__STUN_URL_UNSUPPORTED, NULL, 0},
        {"turn:turn.example.com?transport=tcp", PL__STUN_URL_UNSUPPORTED, NULL, 0},
        {"turns:turn.example.com:5349", PL__STUN_URL_UNSUPPORTED, NULL, 0},
        {"stuns:stun.example.com", PL__STUN_URL_UNSUPPORTED, NULL, 0},
        {"stun:", PARLEY_EINVAL, NULL, 0},
        {"", PARLEY_EINVAL, NULL, 0},
        {"stun::3478", PARLEY_EINVAL, NULL, 0},
        {"stun:host:", PARLEY_EINVAL, NULL, 0},
        {"stun:host:0", PARLEY_EINVAL, NULL, 0},
        {"stun:host:65536", PARLEY_EINVAL, NULL, 0},
        {"stun:host:123456", PARLEY_EINVAL, NULL, 0},
        {"stun:host:34x", PARLEY_EINVAL, NULL, 0},
        {"stun:host?transport=udp", PARLEY_EINVAL, NULL, 0},
        {"stun://host:3478", PARLEY_EINVAL, NULL, 0},
        {"stun:2001:db8::1", PARLEY_EINVAL, NULL, 0}, /* IPv6 without brackets */
        {"stun:[2001:db8::1", PARLEY_EINVAL, NULL, 0},
        {"stun:[not-v6]:3478", PARLEY_EINVAL, NULL, 0},
        {"stun:[]:3478", PARLEY_EINVAL, NULL, 0},
        {"stun:ho st", PARLEY_EINVAL, NULL, 0},
        {"stun:[::1]x", PARLEY_EINVAL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[256] = "unset";
        unsigned port = 0;
        int rc = pl__parse_stun_url(cases[i].url, host, sizeof host, &port);
        if (rc != cases[i].rc)
            fprintf(stderr, "  %s\n", cases[i].url);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0 && cases[i].rc == 0) {
            CHECK_EQ_STR(host, cases[i].host);
            CHECK_EQ_INT(port, cases[i].port);
        }
    }
    /* A host longer than the buffer, and a name longer than 253 bytes. */
    char host[8];
    unsigned port;
    CHECK_EQ_INT(pl__parse_stun_url("stun:a-long-name.example", host, sizeof host, &port),
                 PARLEY_EINVAL);
    char big[300] = "stun:";
    memset(big + 5, 'a', 260);
    big[265] = '\0';
    char h2[512];
    CHECK_EQ_INT(pl__parse_stun_url(big, h2, sizeof h2, &port), PARLEY_EINVAL);
    CHECK_EQ_INT(pl__parse_stun_url(NULL, h2, sizeof h2, &port), PARLEY_EINVAL);
}

/* parley_client_new() refuses a malformed entry, takes TURN entries (ignored later). */
static void test_config_check(void)
{
    parley_config cfg;
    parley_config_init(&cfg);
    cfg.server_url = "http://127.0.0.1:1";
    const char *bad[] = {"stun:2001:db8::1", NULL};
    const char *good[] = {"stun:stun.example.org", "turn:turn.example.org", "[::1]:3478", NULL};
    parley_client *c = NULL;
    cfg.ice_servers = bad;
    CHECK_EQ_INT(parley_client_new(&cfg, NULL, NULL, &c), PARLEY_EINVAL);
    cfg.ice_servers = good;
    CHECK_EQ_INT(parley_client_new(&cfg, NULL, NULL, &c), 0);
    parley_client_free(c);
}

/* ---- end to end ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int nconnected, turn_warned;

static void cb_connected(parley_client *c, const parley_peer *p, void *user)
{
    pthread_mutex_lock(&mu);
    nconnected++;
    pthread_mutex_unlock(&mu);
}

static void cb_log(int level, const char *msg, void *user)
{
    if (level == 2 && strstr(msg, "turns:turn.example.com") && strstr(msg, "not supported")) {
        pthread_mutex_lock(&mu);
        turn_warned++;
        pthread_mutex_unlock(&mu);
    }
}

static char room_id[64];

static void cb_joined(parley_client *c, const parley_room *room, const parley_peer *peers,
                      size_t npeers, void *user)
{
    pthread_mutex_lock(&mu);
    snprintf(room_id, sizeof room_id, "%s", room->room_id);
    pthread_mutex_unlock(&mu);
}

/* Counts STUN Binding requests (type 0x0001, magic cookie) arriving at fd within ms. */
static int stun_requests(int fd, int ms)
{
    int n = 0;
    uint64_t end = pl__now_ms() + (uint64_t)ms;
    for (uint64_t now; (now = pl__now_ms()) < end;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        unsigned char b[1500];
        ssize_t got = recv(fd, b, sizeof b, 0);
        if (got >= 20 && b[0] == 0x00 && b[1] == 0x01 && b[4] == 0x21 && b[5] == 0x12 &&
            b[6] == 0xa4 && b[7] == 0x42)
            n++;
        if (n >= 2)
            break;
    }
    return n;
}

static void test_stun_reaches_libnice(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    char stun[64], url[64];
    snprintf(stun, sizeof stun, "stun:localhost:%u", ntohs(sa.sin_port));
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    const char *servers[] = {"turns:turn.example.com:5349", stun, NULL};
    static const char *const loopback[] = {"127.0.0.1", NULL};
    char *ta = sdk_mint("alice", "Alice"), *tb = sdk_mint("bob", "Bob");

    parley_config cfg;
    parley_config_init(&cfg);
    cfg.server_url = url;
    cfg.ice_local_addresses = loopback;
    cfg.ice_servers = servers;
    cfg.log = cb_log;
    parley_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_joined = cb_joined;
    cb.on_peer_connected = cb_connected;
    parley_client *a = NULL, *b = NULL;
    cfg.user_token = ta;
    CHECK_EQ_INT(parley_client_new(&cfg, &cb, NULL, &a), 0);
    cfg.user_token = tb;
    CHECK_EQ_INT(parley_client_new(&cfg, &cb, NULL, &b), 0);
    if (a && b && parley_create_room(a, NULL, 0, NULL) == 0) {
        char rid[64] = "";
        for (int i = 0; i < 500 && !rid[0]; i++) {
            usleep(10000);
            pthread_mutex_lock(&mu);
            snprintf(rid, sizeof rid, "%s", room_id);
            pthread_mutex_unlock(&mu);
        }
        CHECK(rid[0] != '\0');
        CHECK_EQ_INT(parley_join_room(b, rid), 0);
        /* Each connection's agent asks the STUN server while it gathers. */
        CHECK(stun_requests(fd, 10000) >= 1);
        int conn = 0;
        for (int i = 0; i < 1000 && conn < 2; i++) {
            usleep(10000);
            pthread_mutex_lock(&mu);
            conn = nconnected;
            pthread_mutex_unlock(&mu);
        }
        CHECK_EQ_INT(conn, 2); /* an unanswered STUN server does not stop the connection */
        pthread_mutex_lock(&mu);
        CHECK_EQ_INT(turn_warned, 2); /* once per client and join */
        pthread_mutex_unlock(&mu);
    }
    parley_client_free(b);
    parley_client_free(a);
    free(ta);
    free(tb);
    close(fd);
}

int main(void)
{
    RUN(test_parse);
    RUN(test_config_check);
    if (!sdk_have_parleyd()) {
        if (getenv("PARLEY_TEST_STRICT"))
            return 1;
        TEST_MAIN();
    }
    if (sdk_start_parleyd("ice", 0, "6") != 0) {
        fprintf(stderr, "parleyd did not start; its log: %s\n", srv.log_path);
        return 1;
    }
    RUN(test_stun_reaches_libnice);
    sdk_stop_parleyd(SIGTERM);
    if (pl_test_cases_failed == 0 && !getenv("PARLEY_TEST_KEEP_LOGS"))
        unlink(srv.log_path);
    else
        fprintf(stderr, "parleyd log: %s\n", srv.log_path);
    TEST_MAIN();
}
