/* sdk_testutil: what the SDK tests that talk to a real parleyd share — starting and stopping
 * build/bin/parleyd (path in PARLEYD) on a loopback port with the in-memory store, and
 * minting HS256 user tokens for it. Header-only (static inline) so each test binary takes
 * what it uses. */
#ifndef PL_SDK_TESTUTIL_H
#define PL_SDK_TESTUTIL_H

#include <openssl/hmac.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SDK_TEST_SECRET "parley-sdk-test-secret-0123456789abcdef0123456789"

/* The running parleyd: its pid (0: none), the port it bound, its log (stderr) file. */
static struct {
    pid_t pid;
    int port;
    char log_path[64];
} srv;

/* Starts parleyd on 127.0.0.1:port (0: any free port; srv.port says which) with
 * PARLEY_MEMBER_TTL=member_ttl and no STUN servers, and waits for its "listening" line. The
 * log file is created on the first start (/tmp/parleyd-<tag>-XXXXXX) and truncated on each
 * restart. 0, or -1 when it did not start. */
static inline int sdk_start_parleyd(const char *tag, int port, const char *member_ttl)
{
    const char *bin = getenv("PARLEYD");
    if (!srv.log_path[0]) {
        snprintf(srv.log_path, sizeof srv.log_path, "/tmp/parleyd-%.16s-XXXXXX", tag);
        int fd = mkstemp(srv.log_path);
        if (fd < 0)
            return -1;
        close(fd);
    }
    int fd = open(srv.log_path, O_WRONLY | O_TRUNC);
    if (fd < 0)
        return -1;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        /* parleyd refuses unknown PARLEY_* variables (ctest sets some for the test). */
        extern char **environ;
        for (int again = 1; again;) {
            again = 0;
            for (char **e = environ; *e; e++) {
                if (strncmp(*e, "PARLEY_", 7) == 0) {
                    char name[128];
                    snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                    unsetenv(name);
                    again = 1;
                    break;
                }
            }
        }
        setenv("PARLEY_LISTEN", listen, 1);
        setenv("PARLEY_JWT_SECRET", SDK_TEST_SECRET, 1);
        setenv("PARLEY_LOG_LEVEL", "info", 1);
        setenv("PARLEY_STORE", "memory", 1);
        setenv("PARLEY_MEMBER_TTL", member_ttl, 1);
        setenv("PARLEY_STUN_URLS", "", 1);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    close(fd);
    if (pid < 0)
        return -1;
    srv.pid = pid;
    /* The "listening" line names the port actually bound. */
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(srv.log_path, "r");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
            const char *m = strstr(line, "\"msg\":\"listening\"");
            const char *a = m ? strstr(line, "\"addr\":\"127.0.0.1:") : NULL;
            if (a) {
                srv.port = atoi(a + strlen("\"addr\":\"127.0.0.1:"));
                fclose(f);
                return srv.port > 0 ? 0 : -1;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            srv.pid = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

/* Sends sig to parleyd and reaps it. */
static inline void sdk_stop_parleyd(int sig)
{
    if (srv.pid > 0) {
        kill(srv.pid, sig);
        waitpid(srv.pid, NULL, 0);
        srv.pid = 0;
    }
}

/* PARLEYD usable? Else says why on stderr. */
static inline int sdk_have_parleyd(void)
{
    const char *bin = getenv("PARLEYD");
    if (bin && access(bin, X_OK) == 0)
        return 1;
    fprintf(stderr, "PARLEYD (the parleyd binary) is not set or not executable\n");
    return 0;
}

/* ---- tokens ---- */

static inline void sdk_b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

/* A user token for sub with display name name, valid for an hour (malloc'd). */
static inline char *sdk_mint(const char *sub, const char *name)
{
    char payload[256], h64[128], p64[512], sig64[64];
    const char *header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    long now = (long)time(NULL);
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"name\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
             sub, name, now, now + 3600);
    sdk_b64url((const unsigned char *)header, strlen(header), h64);
    sdk_b64url((const unsigned char *)payload, strlen(payload), p64);
    char input[1024];
    snprintf(input, sizeof input, "%s.%s", h64, p64);
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), SDK_TEST_SECRET, (int)strlen(SDK_TEST_SECRET), (const unsigned char *)input,
         strlen(input), mac, &maclen);
    sdk_b64url(mac, maclen, sig64);
    char *tok = malloc(strlen(input) + strlen(sig64) + 2);
    if (tok)
        sprintf(tok, "%s.%s", input, sig64);
    return tok;
}

#endif
