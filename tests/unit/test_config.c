/* Unit tests for server/config.c: defaults, precedence, every error class, --help/--version,
 * and the value parsers, all through the public interface in config.h. */
#include "config.h"

#include "common/error.h"
#include "test.h"
#include "version.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET32   "0123456789abcdef0123456789abcdef"
#define ENV_SECRET "PARLEY_JWT_SECRET=" SECRET32

/* argv and envp as NULL-terminated compound literals; ARGV always supplies argv[0]. */
#define ARGV(...) ((const char *[]){"parleyd", __VA_ARGS__ __VA_OPT__(, ) NULL})
#define ENVP(...) ((const char *[]){__VA_ARGS__ __VA_OPT__(, ) NULL})

static char *g_out;     /* what the last load() printed to `out` */
static char g_err[512]; /* the last load()'s error line */
static pl_config_action_t g_action;

static int load(pl_config_t *cfg, const char **argv, const char **envp);
static char *temp_file(const char *content);
static int load_json(pl_config_t *cfg, const char *json, const char **envp, char **path_out);
static int contains(const char *hay, const char *needle);

static int load(pl_config_t *cfg, const char **argv, const char **envp)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    size_t len = 0;
    free(g_out);
    g_out = NULL;
    FILE *out = open_memstream(&g_out, &len);
    memset(g_err, 'x', sizeof g_err); /* proves the function writes the line */
    int rc = pl_config_load(cfg, argc, (char **)argv, (char **)envp, out, &g_action, g_err,
                            sizeof g_err);
    fclose(out);
    if (rc)
        fprintf(stderr, "    (load: %s)\n", g_err);
    return rc;
}

static char *temp_file(const char *content)
{
    char tmpl[] = "/tmp/parley-test-config-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return NULL;
    size_t n = strlen(content);
    if (write(fd, content, n) != (ssize_t)n) {
        close(fd);
        unlink(tmpl);
        return NULL;
    }
    close(fd);
    return strdup(tmpl);
}

/* Loads `json` as the --config file (and the envp given); the file is removed afterwards.
 * When path_out is set, the path is returned there (to build expected messages) and the
 * caller frees it. */
static int load_json(pl_config_t *cfg, const char *json, const char **envp, char **path_out)
{
    char *path = temp_file(json);
    if (!path)
        return -1;
    int rc = load(cfg, ARGV("--config", path), envp);
    unlink(path);
    if (path_out)
        *path_out = path;
    else
        free(path);
    return rc;
}

static int contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* ---- defaults --------------------------------------------------------------------------- */

static void test_defaults(void)
{
    pl_config_t c;
    pl_config_defaults(&c);
    CHECK_EQ_STR(c.listen_host, "127.0.0.1");
    CHECK_EQ_INT(c.listen_port, 8080);
    CHECK_EQ_STR(c.store, "memory");
    CHECK(c.jwt_secret == NULL && c.jwt_public_key == NULL);
    CHECK(c.jwt_issuer == NULL && c.jwt_audience == NULL);
    CHECK(!c.allow_guests && !c.insecure_dev);
    CHECK(c.allowed_origins == NULL && c.trusted_proxies == NULL);
    CHECK_EQ_INT(c.room_ttl, 3600);
    CHECK_EQ_INT(c.member_ttl, 90);
    CHECK_EQ_INT(c.signal_ttl, 30);
    CHECK_EQ_INT(c.max_body, 65536);
    CHECK_EQ_INT(c.max_connections, 10000);
    CHECK_EQ_INT(c.header_timeout_ms, 10000);
    CHECK_EQ_INT(c.idle_timeout_ms, 60000);
    CHECK_EQ_STR(c.stun_urls, "stun:stun.l.google.com:19302");
    CHECK(c.turn_urls == NULL && c.turn_secret == NULL);
    CHECK_EQ_INT(c.turn_ttl, 86400);
    CHECK_EQ_STR(c.sevtv_api, "https://7tv.io/v3");
    CHECK_EQ_INT(c.rl_create_room.limit, 10);
    CHECK_EQ_INT(c.rl_create_room.window_s, 60);
    CHECK_EQ_INT(c.rl_join_user.limit, 30);
    CHECK_EQ_INT(c.rl_join_ip.limit, 60);
    CHECK_EQ_INT(c.rl_signal.limit, 600);
    CHECK_EQ_INT(c.rl_poll.limit, 600);
    CHECK_EQ_INT(c.rl_list.limit, 120);
    CHECK_EQ_INT(c.rl_list.window_s, 60);
    CHECK_EQ_INT(c.rl_emoji_upload.limit, 10);
    CHECK_EQ_INT(c.rl_emoji_upload.window_s, 3600);
    CHECK_EQ_INT(c.max_peers_default, 16);
    CHECK_EQ_INT(c.max_peers_limit, 10000);
    CHECK_EQ_STR(c.log_level, "info");
    CHECK_EQ_INT(c.shutdown_timeout_ms, 5000);
    CHECK(c.config_path == NULL);

    /* hostname-pid, within the node id's own rules. */
    char pid[32];
    snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    size_t n = strlen(c.node_id), pn = strlen(pid);
    CHECK(n > pn && n <= 127);
    CHECK(n > pn && strcmp(c.node_id + n - pn, pid) == 0);
    CHECK(strspn(c.node_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
          n);
    pl_config_free(&c);

    /* The defaults alone fail validation only for the missing JWT key. */
    pl_config_defaults(&c);
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), PL_ECONFIG);
    c.insecure_dev = true;
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), 0);
    pl_config_free(&c);

    /* A full load with nothing but a key gives the same values. */
    REQUIRE(load(&c, ARGV(), ENVP(ENV_SECRET, "HOME=/root", "PATH=/bin")) == 0);
    CHECK_EQ_INT(g_action, PL_CONFIG_RUN);
    CHECK_EQ_INT(c.member_ttl, 90);
    CHECK_EQ_STR(c.jwt_secret, SECRET32);
    pl_config_free(&c);
    pl_config_free(&c); /* idempotent */
}

/* ---- precedence ------------------------------------------------------------------------- */

static void test_precedence(void)
{
    pl_config_t c;
    const char *json = "{\"member_ttl\": 100, \"jwt_issuer\": \"file\", \"room_ttl\": 7200,"
                       " \"jwt_secret\": \"" SECRET32 "\"}";
    char *path = temp_file(json);
    REQUIRE(path);

    /* File alone. */
    REQUIRE(load(&c, ARGV("--config", path), ENVP()) == 0);
    CHECK_EQ_INT(c.member_ttl, 100);
    CHECK_EQ_STR(c.jwt_issuer, "file");
    CHECK_EQ_STR(c.config_path, path);
    pl_config_free(&c);

    /* Env over file; untouched file keys stay. */
    REQUIRE(load(&c, ARGV("--config", path),
                 ENVP("PARLEY_MEMBER_TTL=200", "PARLEY_JWT_ISSUER=env")) == 0);
    CHECK_EQ_INT(c.member_ttl, 200);
    CHECK_EQ_STR(c.jwt_issuer, "env");
    CHECK_EQ_INT(c.room_ttl, 7200);
    pl_config_free(&c);

    /* Flag over env over file (the earlier strings are freed: ASan checks). */
    REQUIRE(load(&c, ARGV("--config", path, "--member-ttl", "300", "--jwt-issuer=flag"),
                 ENVP("PARLEY_MEMBER_TTL=200", "PARLEY_JWT_ISSUER=env")) == 0);
    CHECK_EQ_INT(c.member_ttl, 300);
    CHECK_EQ_STR(c.jwt_issuer, "flag");
    CHECK_EQ_INT(c.room_ttl, 7200);
    pl_config_free(&c);

    /* PARLEY_CONFIG names the file when there is no --config. */
    char envcfg[512];
    snprintf(envcfg, sizeof envcfg, "PARLEY_CONFIG=%s", path);
    REQUIRE(load(&c, ARGV(), ENVP(envcfg)) == 0);
    CHECK_EQ_INT(c.member_ttl, 100);
    pl_config_free(&c);

    /* --config wins over PARLEY_CONFIG. */
    REQUIRE(load(&c, ARGV("--config", path), ENVP("PARLEY_CONFIG=/nonexistent.json")) == 0);
    CHECK_EQ_INT(c.member_ttl, 100);
    pl_config_free(&c);

    /* --config=FILE form. */
    char flagcfg[512];
    snprintf(flagcfg, sizeof flagcfg, "--config=%s", path);
    REQUIRE(load(&c, ARGV(flagcfg), ENVP()) == 0);
    CHECK_EQ_INT(c.room_ttl, 7200);
    pl_config_free(&c);

    /* The later of two flags wins, and --key=value equals --key value. */
    REQUIRE(load(&c, ARGV("--member-ttl=11", "--member-ttl", "12", "--insecure-dev"), ENVP()) == 0);
    CHECK_EQ_INT(c.member_ttl, 12);
    pl_config_free(&c);

    /* An empty env value unsets an optional string set by the file. */
    REQUIRE(load(&c, ARGV("--config", path), ENVP("PARLEY_JWT_ISSUER=")) == 0);
    CHECK(c.jwt_issuer == NULL);
    pl_config_free(&c);

    unlink(path);
    free(path);
}

/* ---- errors name the key ---------------------------------------------------------------- */

static void test_error_env(void)
{
    pl_config_t c;
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_MEMBER_TTL=abc")), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "PARLEY_MEMBER_TTL: expected a positive integer of seconds, got \"abc\"");
    pl_config_free(&c);

    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_MEMBR_TTL=90")), PL_ECONFIG);
    CHECK(strncmp(g_err, "PARLEY_MEMBR_TTL: unknown environment variable", 46) == 0);
    pl_config_free(&c);

    /* Zero, negative and too large. */
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_ROOM_TTL=0")), PL_ECONFIG);
    CHECK(contains(g_err, "PARLEY_ROOM_TTL: expected a positive integer"));
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_ROOM_TTL=-5")), PL_ECONFIG);
    CHECK(contains(g_err, "PARLEY_ROOM_TTL:"));
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_ROOM_TTL=2592001")), PL_ECONFIG);
    CHECK(contains(g_err, "PARLEY_ROOM_TTL: expected 1..2592000 seconds"));
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_ROOM_TTL=99999999999")), PL_ECONFIG);
    CHECK(contains(g_err, "PARLEY_ROOM_TTL:"));
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_SIGNAL_TTL=30s")), PL_ECONFIG);
    CHECK(contains(g_err, "PARLEY_SIGNAL_TTL:"));

    /* Other variables are none of our business; PARLEY_CONFIG is a known one. */
    CHECK_EQ_INT(load(&c, ARGV(),
                      ENVP(ENV_SECRET, "PARLEYX=1", "PARLEY=1", "XPARLEY_FOO=1", "PARLEY_CONFIG=")),
                 0);
    pl_config_free(&c);

    /* A control character in a value is escaped, so the message stays one line. */
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_LOG_LEVEL=in\nfo")), PL_ECONFIG);
    CHECK(strchr(g_err, '\n') == NULL);
    CHECK(contains(g_err, "PARLEY_LOG_LEVEL:"));
    pl_config_free(&c);
}

static void test_error_flags(void)
{
    pl_config_t c;
    CHECK_EQ_INT(load(&c, ARGV("--member-ttl", "abc"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--member-ttl: expected a positive integer of seconds, got \"abc\"");

    CHECK_EQ_INT(load(&c, ARGV("--membr-ttl", "9"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--membr-ttl: unknown flag (see --help)");
    CHECK_EQ_INT(load(&c, ARGV("--membr-ttl=9"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--membr-ttl: unknown flag (see --help)");

    /* Missing values: at the end, and before another flag. */
    CHECK_EQ_INT(load(&c, ARGV("--member-ttl"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--member-ttl: missing value");
    CHECK_EQ_INT(load(&c, ARGV("--listen", "--allow-guests"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--listen: missing value");
    CHECK_EQ_INT(load(&c, ARGV("--config"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--config: missing value");

    /* Positional arguments and single-dash flags. */
    CHECK_EQ_INT(load(&c, ARGV("serve"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "unexpected argument \"serve\""));
    CHECK_EQ_INT(load(&c, ARGV("-member-ttl", "5"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "\"-member-ttl\""));

    /* A flag's bad value wins over nothing else: flags are applied after the environment. */
    CHECK_EQ_INT(load(&c, ARGV("--max-body", "100"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--max-body: expected an integer from 1024 to 67108864, got \"100\"");
    pl_config_free(&c);
}

static void test_error_file(void)
{
    pl_config_t c;
    char *path = NULL, want[512];

    CHECK_EQ_INT(load_json(&c, "{\"membr_ttl\": 5}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    snprintf(want, sizeof want, "%s: unknown key \"membr_ttl\"", path);
    CHECK_EQ_STR(g_err, want);
    free(path);

    /* Wrong JSON types. */
    CHECK_EQ_INT(load_json(&c, "{\"room_ttl\": \"3600\"}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    snprintf(want, sizeof want, "%s: room_ttl: expected an integer, got a string", path);
    CHECK_EQ_STR(g_err, want);
    free(path);
    CHECK_EQ_INT(load_json(&c, "{\"room_ttl\": 1.5}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    snprintf(want, sizeof want, "%s: room_ttl: expected an integer, got a number with a fraction",
             path);
    CHECK_EQ_STR(g_err, want);
    free(path);
    CHECK_EQ_INT(load_json(&c, "{\"listen\": 8080}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    snprintf(want, sizeof want, "%s: listen: expected a string, got an integer", path);
    CHECK_EQ_STR(g_err, want);
    free(path);
    CHECK_EQ_INT(load_json(&c, "{\"allow_guests\": [true]}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    snprintf(want, sizeof want, "%s: allow_guests: expected true or false, got an array", path);
    CHECK_EQ_STR(g_err, want);
    free(path);
    CHECK_EQ_INT(load_json(&c, "{\"jwt_issuer\": {}}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    CHECK(contains(g_err, ": jwt_issuer: expected a string or null, got an object"));
    free(path);
    CHECK_EQ_INT(
        load_json(&c, "{\"trusted_proxies\": [\"10.0.0.0/8\", 5]}", ENVP(ENV_SECRET), NULL),
        PL_ECONFIG);
    CHECK(contains(g_err, ": trusted_proxies: expected an array of strings, item 2 is an integer"));
    CHECK_EQ_INT(load_json(&c, "{\"store\": null}", ENVP(ENV_SECRET), NULL), PL_ECONFIG);
    CHECK(contains(g_err, ": store: expected a string, got null"));

    /* Bad values in the file name the file and the key. */
    CHECK_EQ_INT(load_json(&c, "{\"member_ttl\": -1}", ENVP(ENV_SECRET), &path), PL_ECONFIG);
    snprintf(want, sizeof want,
             "%s: member_ttl: expected a positive integer of seconds, got \"-1\"", path);
    CHECK_EQ_STR(g_err, want);
    free(path);

    /* Malformed JSON: file name, line and column from jansson. */
    CHECK_EQ_INT(load_json(&c, "{\n  \"member_ttl\": 5,\n  oops\n}", ENVP(ENV_SECRET), &path),
                 PL_ECONFIG);
    snprintf(want, sizeof want, "%s:3:", path);
    CHECK(strncmp(g_err, want, strlen(want)) == 0);
    CHECK(contains(g_err, "invalid JSON"));
    free(path);
    CHECK_EQ_INT(load_json(&c, "[1, 2]", ENVP(ENV_SECRET), NULL), PL_ECONFIG);
    CHECK(contains(g_err, "expected a JSON object at the top level, got an array"));
    CHECK_EQ_INT(load_json(&c, "{\"member_ttl\": 5, \"member_ttl\": 6}", ENVP(ENV_SECRET), NULL),
                 PL_ECONFIG);
    CHECK(contains(g_err, "invalid JSON"));
    CHECK(contains(g_err, "member_ttl"));

    /* Unreadable file, by flag and by env. */
    CHECK_EQ_INT(load(&c, ARGV("--config", "/nonexistent/parley.json"), ENVP(ENV_SECRET)),
                 PL_ECONFIG);
    CHECK_EQ_STR(g_err, "/nonexistent/parley.json: cannot read the config file: No such file or "
                        "directory");
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_CONFIG=/nonexistent/p.json")),
                 PL_ECONFIG);
    CHECK(contains(g_err, "/nonexistent/p.json: cannot read"));
    pl_config_free(&c);
}

/* A failure late in the load (validation) after strings were set by every source must free
 * them all: run under ASan, this is the leak check. */
static void test_error_frees(void)
{
    pl_config_t c;
    CHECK_EQ_INT(load_json(&c, "{\"jwt_issuer\": \"a\", \"turn_urls\": \"turn:x\"}",
                           ENVP("PARLEY_JWT_ISSUER=b", "PARLEY_ALLOWED_ORIGINS=*"), NULL),
                 PL_ECONFIG);
    CHECK(contains(g_err, "no JWT key configured"));
    CHECK(c.jwt_issuer == NULL && c.turn_urls == NULL && c.config_path == NULL);
    pl_config_free(&c);
}

/* ---- help and version ------------------------------------------------------------------- */

static void test_help(void)
{
    pl_config_t c;
    REQUIRE(load(&c, ARGV("--help"), ENVP()) == 0);
    CHECK_EQ_INT(g_action, PL_CONFIG_HELP);
    CHECK(contains(g_out, "Usage: parleyd"));
    static const char *const envs[] = {
        "PARLEY_LISTEN",
        "PARLEY_STORE",
        "PARLEY_NODE_ID",
        "PARLEY_JWT_SECRET",
        "PARLEY_JWT_PUBLIC_KEY",
        "PARLEY_JWT_ISSUER",
        "PARLEY_JWT_AUDIENCE",
        "PARLEY_ALLOW_GUESTS",
        "PARLEY_INSECURE_DEV",
        "PARLEY_ALLOWED_ORIGINS",
        "PARLEY_TRUSTED_PROXIES",
        "PARLEY_ROOM_TTL",
        "PARLEY_MEMBER_TTL",
        "PARLEY_SIGNAL_TTL",
        "PARLEY_MAX_BODY",
        "PARLEY_MAX_CONNECTIONS",
        "PARLEY_HEADER_TIMEOUT",
        "PARLEY_IDLE_TIMEOUT",
        "PARLEY_STUN_URLS",
        "PARLEY_TURN_URLS",
        "PARLEY_TURN_SECRET",
        "PARLEY_TURN_TTL",
        "PARLEY_7TV_API",
        "PARLEY_RL_CREATE_ROOM",
        "PARLEY_RL_JOIN_USER",
        "PARLEY_RL_JOIN_IP",
        "PARLEY_RL_SIGNAL",
        "PARLEY_RL_POLL",
        "PARLEY_RL_LIST",
        "PARLEY_RL_EMOJI_UPLOAD",
        "PARLEY_MAX_PEERS_DEFAULT",
        "PARLEY_MAX_PEERS_LIMIT",
        "PARLEY_LOG_LEVEL",
        "PARLEY_SHUTDOWN_TIMEOUT",
        "PARLEY_CONFIG",
    };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        if (!contains(g_out, envs[i]))
            fprintf(stderr, "    help lacks %s\n", envs[i]);
        CHECK(contains(g_out, envs[i]));
    }
    CHECK(contains(g_out, "--member-ttl SECONDS"));
    CHECK(contains(g_out, "--7tv-api URL"));
    CHECK(contains(g_out, "json \"7tv_api\", default https://7tv.io/v3"));
    CHECK(contains(g_out, "env PARLEY_MEMBER_TTL, json \"member_ttl\", default 90"));
    CHECK(contains(g_out, "default hostname-pid"));
    CHECK(contains(g_out, "--allow-guests\n"));
    pl_config_free(&c);

    /* pl_config_print_help prints the same. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pl_config_print_help(f);
    fclose(f);
    CHECK_EQ_STR(text, g_out);
    free(text);

    /* --help works even when the environment is broken, and -h is the same. */
    REQUIRE(load(&c, ARGV("-h"), ENVP("PARLEY_BOGUS=1")) == 0);
    CHECK_EQ_INT(g_action, PL_CONFIG_HELP);
    pl_config_free(&c);
}

static void test_version(void)
{
    pl_config_t c;
    char want[64];
    snprintf(want, sizeof want, "parleyd %s\n", PL_VERSION);
    REQUIRE(load(&c, ARGV("--version"), ENVP()) == 0);
    CHECK_EQ_INT(g_action, PL_CONFIG_VERSION);
    CHECK_EQ_STR(g_out, want);
    REQUIRE(load(&c, ARGV("-V"), ENVP()) == 0);
    CHECK_EQ_STR(g_out, want);
    pl_config_free(&c);
}

/* ---- listen ----------------------------------------------------------------------------- */

static void test_listen(void)
{
    pl_config_t c;
    REQUIRE(load(&c, ARGV("--listen", "[::1]:9000"), ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_STR(c.listen_host, "::1");
    CHECK_EQ_INT(c.listen_port, 9000);
    pl_config_free(&c);
    REQUIRE(load(&c, ARGV("--listen=0.0.0.0:65535"), ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_STR(c.listen_host, "0.0.0.0");
    CHECK_EQ_INT(c.listen_port, 65535);
    pl_config_free(&c);
    REQUIRE(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_LISTEN=[::]:1")) == 0);
    CHECK_EQ_STR(c.listen_host, "::");
    CHECK_EQ_INT(c.listen_port, 1);
    pl_config_free(&c);

    static const char *const bad[] = {
        "127.0.0.1:65536", "127.0.0.1:abc", "127.0.0.1:",   "127.0.0.1",     "::1:8080",
        "[::1]",           "[::1]8080",     "[::1]:",       "[::1]:70000",   "localhost:80",
        "300.0.0.1:80",    ":8080",         "[1.2.3.4]:80", "127.0.0.1:+80", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char arg[64];
        snprintf(arg, sizeof arg, "--listen=%s", bad[i]);
        int rc = load(&c, ARGV(arg), ENVP(ENV_SECRET));
        if (rc != PL_ECONFIG)
            fprintf(stderr, "    accepted listen %s\n", bad[i]);
        CHECK_EQ_INT(rc, PL_ECONFIG);
        CHECK(strncmp(g_err, "--listen: ", 10) == 0);
    }
    CHECK_EQ_INT(load(&c, ARGV("--listen", "::1:8080"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "needs brackets"));
    pl_config_free(&c);
}

/* ---- rate limits ------------------------------------------------------------------------ */

static void test_rates(void)
{
    pl_config_t c;
    REQUIRE(load(&c, ARGV("--rl-signal", "5/10", "--rl-poll=0"),
                 ENVP(ENV_SECRET, "PARLEY_RL_LIST=0/60", "PARLEY_RL_JOIN_IP=1000000000/2592000")) ==
            0);
    CHECK_EQ_INT(c.rl_signal.limit, 5);
    CHECK_EQ_INT(c.rl_signal.window_s, 10);
    CHECK_EQ_INT(c.rl_poll.limit, 0);
    CHECK_EQ_INT(c.rl_list.limit, 0);
    CHECK_EQ_INT(c.rl_join_ip.limit, 1000000000);
    CHECK_EQ_INT(c.rl_join_ip.window_s, 2592000);
    CHECK_EQ_INT(c.rl_create_room.limit, 10); /* untouched */
    pl_config_free(&c);

    /* JSON: a string, the integer 0, or an object. */
    REQUIRE(load_json(&c,
                      "{\"rl_signal\": \"7/8\", \"rl_poll\": 0,"
                      " \"rl_list\": {\"limit\": 3, \"window\": 4}}",
                      ENVP(ENV_SECRET), NULL) == 0);
    CHECK_EQ_INT(c.rl_signal.limit, 7);
    CHECK_EQ_INT(c.rl_signal.window_s, 8);
    CHECK_EQ_INT(c.rl_poll.limit, 0);
    CHECK_EQ_INT(c.rl_list.limit, 3);
    CHECK_EQ_INT(c.rl_list.window_s, 4);
    pl_config_free(&c);

    static const char *const bad[] = {"10",      "a/b",   "10/0",       "10/",           "/60",
                                      "10/60/1", "-1/60", "10/2592001", "1000000001/60", "10 /60",
                                      ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char env[64];
        snprintf(env, sizeof env, "PARLEY_RL_SIGNAL=%s", bad[i]);
        int rc = load(&c, ARGV(), ENVP(ENV_SECRET, env));
        if (rc != PL_ECONFIG)
            fprintf(stderr, "    accepted rate %s\n", bad[i]);
        CHECK_EQ_INT(rc, PL_ECONFIG);
        CHECK(strncmp(g_err, "PARLEY_RL_SIGNAL: expected N/S", 30) == 0);
    }
    CHECK_EQ_INT(load_json(&c, "{\"rl_poll\": 10}", ENVP(ENV_SECRET), NULL), PL_ECONFIG);
    CHECK(contains(g_err, ": rl_poll: expected N/S"));
    CHECK_EQ_INT(load_json(&c, "{\"rl_poll\": {\"limit\": 3}}", ENVP(ENV_SECRET), NULL),
                 PL_ECONFIG);
    CHECK(contains(g_err, ": rl_poll: expected {\"limit\": N, \"window\": S}"));
    CHECK_EQ_INT(load_json(&c, "{\"rl_poll\": true}", ENVP(ENV_SECRET), NULL), PL_ECONFIG);
    CHECK(contains(g_err, ": rl_poll: expected \"N/S\", 0 or"));
    pl_config_free(&c);
}

/* ---- lists: CIDRs, origins, ICE URLs ------------------------------------------------------ */

static void test_cidrs(void)
{
    pl_config_t c;
    REQUIRE(load(&c, ARGV(),
                 ENVP(ENV_SECRET, "PARLEY_TRUSTED_PROXIES= 10.0.0.0/8, 192.168.1.1 ,::1/128,"
                                  "fd00::/8,0.0.0.0/0,::/0")) == 0);
    CHECK_EQ_STR(c.trusted_proxies, "10.0.0.0/8,192.168.1.1,::1/128,fd00::/8,0.0.0.0/0,::/0");
    pl_config_free(&c);

    REQUIRE(load_json(&c, "{\"trusted_proxies\": [\"127.0.0.1/32\", \"2001:db8::/32\"]}",
                      ENVP(ENV_SECRET), NULL) == 0);
    CHECK_EQ_STR(c.trusted_proxies, "127.0.0.1/32,2001:db8::/32");
    pl_config_free(&c);

    static const char *const bad[] = {"10.0.0.0/33",         "::/129",       "foo",
                                      "10.0.0.0/",           "1.2.3.4/8x",   "10.0.0/8",
                                      "10.0.0.0/8,,1.2.3.4", "/8",           "fe80::1%eth0/64",
                                      "10.0.0.0/-1",         "10.0.0.0/0008"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = load(&c, ARGV("--trusted-proxies", bad[i]), ENVP(ENV_SECRET));
        if (rc != PL_ECONFIG)
            fprintf(stderr, "    accepted cidr %s\n", bad[i]);
        CHECK_EQ_INT(rc, PL_ECONFIG);
        CHECK(strncmp(g_err, "--trusted-proxies: ", 19) == 0);
    }
    CHECK_EQ_INT(load(&c, ARGV("--trusted-proxies", "10.0.0.0/8,10.0.0.0/33"), ENVP(ENV_SECRET)),
                 PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--trusted-proxies: expected CIDRs such as 10.0.0.0/8 or fd00::/8, got "
                        "\"10.0.0.0/33\"");
    pl_config_free(&c);
}

static void test_lists(void)
{
    pl_config_t c;
    REQUIRE(load(&c, ARGV("--allowed-origins", "https://a.example, http://b.example:8080"),
                 ENVP(ENV_SECRET, "PARLEY_STUN_URLS=stun:a:3478,stuns:b",
                      "PARLEY_TURN_URLS=turn:t:3478?transport=udp, turns:t:5349",
                      "PARLEY_TURN_SECRET=s")) == 0);
    CHECK_EQ_STR(c.allowed_origins, "https://a.example,http://b.example:8080");
    CHECK_EQ_STR(c.stun_urls, "stun:a:3478,stuns:b");
    CHECK_EQ_STR(c.turn_urls, "turn:t:3478?transport=udp,turns:t:5349");
    pl_config_free(&c);

    REQUIRE(load(&c, ARGV("--allowed-origins=*"), ENVP(ENV_SECRET, "PARLEY_STUN_URLS=")) == 0);
    CHECK_EQ_STR(c.allowed_origins, "*");
    CHECK(c.stun_urls == NULL); /* empty: no STUN servers */
    pl_config_free(&c);

    CHECK_EQ_INT(load(&c, ARGV("--allowed-origins", "*,https://a"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "--allowed-origins: \"*\" allows any origin"));
    CHECK_EQ_INT(load(&c, ARGV("--allowed-origins", "https://a.example/"), ENVP(ENV_SECRET)),
                 PL_ECONFIG);
    CHECK(contains(g_err, "--allowed-origins: expected origins"));
    CHECK_EQ_INT(load(&c, ARGV("--allowed-origins", "a.example"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_INT(load(&c, ARGV("--stun-urls", "turn:x"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "--stun-urls: expected stun: or stuns: URLs, got \"turn:x\""));
    CHECK_EQ_INT(load(&c, ARGV("--turn-urls", "stun:x", "--turn-secret", "s"), ENVP(ENV_SECRET)),
                 PL_ECONFIG);
    CHECK(contains(g_err, "--turn-urls:"));
    /* TURN without its secret is refused at validation. */
    CHECK_EQ_INT(load(&c, ARGV("--turn-urls", "turn:x"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "--turn-urls is set but no TURN secret is"));

    /* 7tv_api: flag --7tv-api, env PARLEY_7TV_API, trailing slash dropped. */
    REQUIRE(load(&c, ARGV("--7tv-api", "http://127.0.0.1:9999/v3/"), ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_STR(c.sevtv_api, "http://127.0.0.1:9999/v3");
    pl_config_free(&c);
    REQUIRE(load_json(&c, "{\"7tv_api\": \"https://x.example\"}",
                      ENVP(ENV_SECRET, "PARLEY_7TV_API=https://y.example"), NULL) == 0);
    CHECK_EQ_STR(c.sevtv_api, "https://y.example");
    pl_config_free(&c);
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_7TV_API=ftp://x")), PL_ECONFIG);
    CHECK(contains(g_err, "PARLEY_7TV_API: expected an http:// or https:// URL"));
    pl_config_free(&c);
}

/* ---- store, node id, log level, numbers ------------------------------------------------- */

static void test_scalars(void)
{
    pl_config_t c;
    static const char *const good_stores[] = {"memory", "redis://localhost:6379",
                                              "redis://10.0.0.1:6379/2", "redis://[::1]:6379/0",
                                              "redis://redis-master.svc:6380"};
    for (size_t i = 0; i < sizeof good_stores / sizeof good_stores[0]; i++) {
        REQUIRE(load(&c, ARGV("--store", good_stores[i]), ENVP(ENV_SECRET)) == 0);
        CHECK_EQ_STR(c.store, good_stores[i]);
        pl_config_free(&c);
    }
    static const char *const bad_stores[] = {"redis://host",      "redis://:6379",   "http://x:1",
                                             "redis://h:99999",   "redis://h:1/x",   "Memory",
                                             "redis://[::1:6379", "redis://u:p@h:1", ""};
    for (size_t i = 0; i < sizeof bad_stores / sizeof bad_stores[0]; i++) {
        char env[64];
        snprintf(env, sizeof env, "PARLEY_STORE=%s", bad_stores[i]);
        int rc = load(&c, ARGV(), ENVP(ENV_SECRET, env));
        if (rc != PL_ECONFIG)
            fprintf(stderr, "    accepted store %s\n", bad_stores[i]);
        CHECK_EQ_INT(rc, PL_ECONFIG);
        CHECK(strncmp(g_err, "PARLEY_STORE: expected memory or redis://host:port[/db]", 55) == 0);
    }

    REQUIRE(load(&c, ARGV("--node-id", "node-1.eu_west"), ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_STR(c.node_id, "node-1.eu_west");
    pl_config_free(&c);
    char long_id[140];
    memset(long_id, 'a', 128);
    long_id[128] = '\0';
    CHECK_EQ_INT(load(&c, ARGV("--node-id", long_id), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(strncmp(g_err, "--node-id: ", 11) == 0);
    long_id[127] = '\0';
    REQUIRE(load(&c, ARGV("--node-id", long_id), ENVP(ENV_SECRET)) == 0);
    pl_config_free(&c);
    CHECK_EQ_INT(load(&c, ARGV("--node-id", "a b"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(strncmp(g_err, "--node-id: expected 1-127 characters", 36) == 0);

    REQUIRE(load(&c, ARGV("--log-level", "debug"), ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_STR(c.log_level, "debug");
    pl_config_free(&c);
    CHECK_EQ_INT(load(&c, ARGV("--log-level", "verbose"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--log-level: expected debug, info, warn or error, got \"verbose\"");

    /* Bounds of the sized values, and ms storage of the timeouts. */
    REQUIRE(load(&c,
                 ARGV("--max-body", "1024", "--max-connections", "1000000", "--header-timeout", "3",
                      "--idle-timeout", "86400", "--shutdown-timeout", "1"),
                 ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_INT(c.max_body, 1024);
    CHECK_EQ_INT(c.max_connections, 1000000);
    CHECK_EQ_INT(c.header_timeout_ms, 3000);
    CHECK_EQ_INT(c.idle_timeout_ms, 86400000);
    CHECK_EQ_INT(c.shutdown_timeout_ms, 1000);
    pl_config_free(&c);
    CHECK_EQ_INT(load(&c, ARGV("--max-body", "67108865"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_INT(load(&c, ARGV("--max-connections", "0"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK_EQ_INT(load(&c, ARGV("--idle-timeout", "86401"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(strncmp(g_err, "--idle-timeout: expected 1..86400 seconds", 41) == 0);

    /* max_peers_default may not exceed max_peers_limit; the message names the key as given. */
    CHECK_EQ_INT(
        load(&c, ARGV("--max-peers-default", "20", "--max-peers-limit", "10"), ENVP(ENV_SECRET)),
        PL_ECONFIG);
    CHECK(strncmp(g_err, "--max-peers-default: 20 is larger than max_peers_limit", 54) == 0);
    REQUIRE(load(&c, ARGV("--max-peers-limit", "20"), ENVP(ENV_SECRET)) == 0);
    CHECK_EQ_INT(c.max_peers_limit, 20);
    pl_config_free(&c);
}

/* ---- booleans --------------------------------------------------------------------------- */

static void test_booleans(void)
{
    pl_config_t c;
    static const struct {
        const char *text;
        bool value;
    } forms[] = {{"true", true}, {"false", false}, {"1", true},    {"0", false},
                 {"yes", true},  {"no", false},    {"TRUE", true}, {"No", false}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char env[64];
        snprintf(env, sizeof env, "PARLEY_ALLOW_GUESTS=%s", forms[i].text);
        REQUIRE(load(&c, ARGV(), ENVP(ENV_SECRET, env)) == 0);
        CHECK_EQ_INT(c.allow_guests, forms[i].value);
        pl_config_free(&c);
    }
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_ALLOW_GUESTS=maybe")), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "PARLEY_ALLOW_GUESTS: expected true/false, yes/no or 1/0, got \"maybe\"");
    CHECK_EQ_INT(load(&c, ARGV(), ENVP(ENV_SECRET, "PARLEY_ALLOW_GUESTS=")), PL_ECONFIG);

    /* A flag alone is true and does not eat the next argument. */
    REQUIRE(load(&c, ARGV("--allow-guests", "--member-ttl", "7"), ENVP(ENV_SECRET)) == 0);
    CHECK(c.allow_guests);
    CHECK_EQ_INT(c.member_ttl, 7);
    pl_config_free(&c);
    CHECK_EQ_INT(load(&c, ARGV("--allow-guests", "yes"), ENVP(ENV_SECRET)), PL_ECONFIG);
    CHECK(contains(g_err, "unexpected argument \"yes\""));

    /* --flag=false turns off what the environment turned on. */
    REQUIRE(load(&c, ARGV("--allow-guests=false"), ENVP(ENV_SECRET, "PARLEY_ALLOW_GUESTS=yes")) ==
            0);
    CHECK(!c.allow_guests);
    pl_config_free(&c);

    /* JSON: booleans, 0/1 and the string forms. */
    REQUIRE(load_json(&c, "{\"allow_guests\": true, \"insecure_dev\": \"yes\"}", ENVP(), NULL) ==
            0);
    CHECK(c.allow_guests && c.insecure_dev);
    pl_config_free(&c);
    REQUIRE(load_json(&c, "{\"allow_guests\": 1}", ENVP(ENV_SECRET), NULL) == 0);
    CHECK(c.allow_guests);
    pl_config_free(&c);
    CHECK_EQ_INT(load_json(&c, "{\"allow_guests\": 2}", ENVP(ENV_SECRET), NULL), PL_ECONFIG);
    CHECK(contains(g_err, ": allow_guests: expected true/false"));
    pl_config_free(&c);
}

/* ---- JWT key rules ---------------------------------------------------------------------- */

static void test_jwt_rules(void)
{
    pl_config_t c;
    CHECK_EQ_INT(load(&c, ARGV(), ENVP()), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "no JWT key configured: set PARLEY_JWT_SECRET or PARLEY_JWT_PUBLIC_KEY, "
                        "or pass --insecure-dev for development only");

    REQUIRE(load(&c, ARGV("--insecure-dev"), ENVP()) == 0);
    CHECK(c.insecure_dev);
    pl_config_free(&c);
    REQUIRE(load(&c, ARGV(), ENVP("PARLEY_INSECURE_DEV=1")) == 0);
    pl_config_free(&c);

    /* 31 bytes is too short, 32 is enough. */
    CHECK_EQ_INT(load(&c, ARGV("--jwt-secret", SECRET32 + 1), ENVP()), PL_ECONFIG);
    CHECK_EQ_STR(g_err,
                 "--jwt-secret: too short (31 bytes): HS256 needs a secret of at least 32 bytes");
    CHECK(!contains(g_err, SECRET32 + 1)); /* the secret is never echoed */
    CHECK_EQ_INT(load(&c, ARGV(), ENVP("PARLEY_JWT_SECRET=short")), PL_ECONFIG);
    CHECK(strncmp(g_err, "PARLEY_JWT_SECRET: too short", 28) == 0);
    REQUIRE(load(&c, ARGV("--jwt-secret=" SECRET32), ENVP()) == 0);
    CHECK_EQ_STR(c.jwt_secret, SECRET32);
    pl_config_free(&c);

    /* A readable public key file. */
    char *pem = temp_file("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n");
    REQUIRE(pem);
    char env[512];
    snprintf(env, sizeof env, "PARLEY_JWT_PUBLIC_KEY=%s", pem);
    REQUIRE(load(&c, ARGV(), ENVP(env)) == 0);
    CHECK_EQ_STR(c.jwt_public_key, pem);
    pl_config_free(&c);

    /* Both keys. */
    CHECK_EQ_INT(load(&c, ARGV("--jwt-secret", SECRET32), ENVP(env)), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--jwt-secret and PARLEY_JWT_PUBLIC_KEY are both set: configure exactly "
                        "one JWT key");
    unlink(pem);
    free(pem);

    /* Unreadable and not-a-file public keys. */
    CHECK_EQ_INT(load(&c, ARGV("--jwt-public-key", "/nonexistent/key.pem"), ENVP()), PL_ECONFIG);
    CHECK_EQ_STR(
        g_err, "--jwt-public-key: cannot read \"/nonexistent/key.pem\": No such file or directory");
    CHECK_EQ_INT(load(&c, ARGV("--jwt-public-key", "/tmp"), ENVP()), PL_ECONFIG);
    CHECK_EQ_STR(g_err, "--jwt-public-key: \"/tmp\" is not a regular file");
    pl_config_free(&c);

    /* pl_config_validate on a hand-filled config names keys by their environment variable. */
    pl_config_defaults(&c);
    c.jwt_secret = strdup("short");
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), PL_ECONFIG);
    CHECK(strncmp(g_err, "PARLEY_JWT_SECRET: too short", 28) == 0);
    free(c.jwt_secret);
    c.jwt_secret = strdup(SECRET32);
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), 0);
    c.signal_ttl = 0;
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), PL_ECONFIG);
    CHECK(strncmp(g_err, "PARLEY_SIGNAL_TTL: 0 is out of range", 36) == 0);
    c.signal_ttl = 30;
    c.idle_timeout_ms = 0;
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), PL_ECONFIG);
    CHECK(strncmp(g_err, "PARLEY_IDLE_TIMEOUT:", 20) == 0);
    c.idle_timeout_ms = 60000;
    /* member/signal TTLs longer than the room's are allowed. */
    c.room_ttl = 10;
    c.member_ttl = 90;
    CHECK_EQ_INT(pl_config_validate(&c, g_err, sizeof g_err), 0);
    pl_config_free(&c);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_precedence);
    RUN(test_error_env);
    RUN(test_error_flags);
    RUN(test_error_file);
    RUN(test_error_frees);
    RUN(test_help);
    RUN(test_version);
    RUN(test_listen);
    RUN(test_rates);
    RUN(test_cidrs);
    RUN(test_lists);
    RUN(test_scalars);
    RUN(test_booleans);
    RUN(test_jwt_rules);
    free(g_out);
    TEST_MAIN();
}
