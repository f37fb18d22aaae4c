/* parley-bench: the load tool (DESIGN section 8, docs/performance.md).
 *
 * This file is the driver every scenario shares: options, the target's address, the
 * progress line, the run's bounds (duration, count, SIGINT, a hard stop for work still in
 * flight) and the report. The scenarios live one per file (rest.c, relay.c, idle.c,
 * churn.c) behind pb_scenario_t (bench.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "token.h"
#include "version.h"

pb_run_t pb;

static const pb_scenario_t *const scenarios[] = {&pb_scenario_rest, &pb_scenario_relay,
                                                 &pb_scenario_idle, &pb_scenario_churn};
static const pb_scenario_t *sc;
static uv_timer_t tick, hard_stop;
static uv_signal_t sigint_h;
static uint64_t last_completed;

bool pb_may_issue(void)
{
    if (pb.stopping)
        return false;
    if (pb.o.max_requests && pb.issued >= pb.o.max_requests)
        return false;
    if (pb.deadline_ns && uv_hrtime() >= pb.deadline_ns)
        return false;
    return true;
}

void pb_error(const char *kind)
{
    pb.errs_total++;
    for (unsigned i = 0; i < pb.n_errs; i++)
        if (strcmp(pb.errs[i].name, kind) == 0) {
            pb.errs[i].n++;
            return;
        }
    unsigned i = pb.n_errs;
    if (i == PB_MAX_ERR_KINDS - 1)
        kind = "other"; /* the last slot collects every further kind */
    else
        pb.n_errs++;
    snprintf(pb.errs[i].name, sizeof pb.errs[i].name, "%s", kind);
    pb.errs[i].n++;
}

void pb_done(uint64_t latency_us, bool ok)
{
    pb.completed++;
    if (ok) {
        pb.ok++;
        pb_hist_add(&pb.hist, latency_us);
    }
}

char *pb_user_token(unsigned i)
{
    if (!pb.o.secret)
        return strdup(pb.o.token);
    char sub[64], name[64];
    unsigned pid = (unsigned)uv_os_getpid();
    snprintf(sub, sizeof sub, "bench-%u-%u", pid, i);
    snprintf(name, sizeof name, "bench %u-%u", pid, i);
    return pb_token_mint(pb.o.secret, sub, name, 3600 + (long)pb.o.duration_s);
}

long long pb_proc_rss(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

double pb_proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? (double)(ut + st) / (double)hz : -1;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void pb_finish(void)
{
    if (pb.end_ns)
        return;
    pb.stopping = true;
    pb.end_ns = uv_hrtime();
    sc->stop();
    uv_walk(pb.loop, close_walk, NULL);
}

static void on_hard_stop(uv_timer_t *t);

void pb_hard_stop_in(uint64_t ms)
{
    if (!pb.end_ns)
        uv_timer_start(&hard_stop, on_hard_stop, ms, 0);
}

/* Work in flight at the deadline gets its timeouts to finish, and no more. */
static uint64_t grace_ms(void)
{
    return (uint64_t)pb.o.timeout_ms + pb.o.connect_timeout_ms + 1000;
}

void pb_measure_from_now(void)
{
    uint64_t now = uv_hrtime();
    pb.start_ns = now;
    pb.issued = pb.completed = pb.ok = 0;
    pb_hist_init(&pb.hist);
    last_completed = 0;
    if (pb.o.duration_s > 0) {
        pb.deadline_ns = now + (uint64_t)(pb.o.duration_s * 1e9);
        pb_hard_stop_in((uint64_t)(pb.o.duration_s * 1000) + grace_ms());
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    double secs = (double)(uv_hrtime() - pb.start_ns) / 1e9;
    uint64_t delta = pb.completed - last_completed;
    last_completed = pb.completed;
    if (pb.o.quiet)
        return;
    char extra[160] = "";
    if (sc->progress) {
        extra[0] = ' ';
        extra[1] = ' ';
        sc->progress(extra + 2, sizeof extra - 2);
    }
    fprintf(stderr, "[%5.1fs] %ss %llu  %llu/s  errors %llu%s\n", secs, sc->unit,
            (unsigned long long)pb.completed, (unsigned long long)delta,
            (unsigned long long)pb.errs_total, extra);
}

static void on_hard_stop(uv_timer_t *t)
{
    (void)t;
    pb_finish(); /* work still in flight is abandoned: counted neither way */
}

static void on_sigint(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    if (!pb.o.quiet)
        fprintf(stderr, "parley-bench: interrupted, stopping\n");
    pb_finish();
}

/* ----------------------------------------------------------------------------------- */
/* Report */

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static json_t *report_json(double elapsed)
{
    const pb_hist_t *h = &pb.hist;
    json_t *lat =
        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "p50", ms(pb_hist_percentile(h, 50)), "p90",
                  ms(pb_hist_percentile(h, 90)), "p99", ms(pb_hist_percentile(h, 99)), "max",
                  ms(h->max), "min", ms(h->total ? h->min : 0), "mean", pb_hist_mean(h) / 1000.0);
    json_t *kinds = json_object();
    for (unsigned i = 0; i < pb.n_errs; i++)
        json_object_set_new(kinds, pb.errs[i].name, json_integer((json_int_t)pb.errs[i].n));
    double tput = elapsed > 0 ? (double)pb.completed / elapsed : 0.0;
    json_t *r = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:o, s:o}", "tool",
        "parley-bench", "version", PL_VERSION, "scenario", sc->name, "target",
        pb.o.target == PB_TARGET_PEERJS ? "peerjs" : "parley", "url", pb.o.url, "unit", sc->unit,
        "connections", (json_int_t)pb.o.connections, "rate", pb.o.rate, "elapsed_s", elapsed,
        "requests", (json_int_t)pb.completed, "ok", (json_int_t)pb.ok, "errors",
        (json_int_t)pb.errs_total, "throughput", tput, "throughput_rps", tput, "latency_ms", lat,
        "errors_by_kind", kinds);
    if (sc->report)
        sc->report(r);
    return r;
}

static void report_text(json_t *r)
{
    json_t *lat = json_object_get(r, "latency_ms");
    printf("parley-bench %s: %u connections, %.2f s, %s%s\n", sc->name, pb.o.connections,
           json_real_value(json_object_get(r, "elapsed_s")), pb.o.url,
           pb.o.target == PB_TARGET_PEERJS ? " (PeerJS server)" : "");
    printf("%-11s %llu (ok %llu, errors %llu)\n",
           strcmp(sc->unit, "request") == 0   ? "requests"
           : strcmp(sc->unit, "message") == 0 ? "messages"
                                              : "units",
           (unsigned long long)pb.completed, (unsigned long long)pb.ok,
           (unsigned long long)pb.errs_total);
    printf("throughput  %.1f %ss/s\n", json_real_value(json_object_get(r, "throughput")), sc->unit);
    printf(
        "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
        json_real_value(json_object_get(lat, "p50")), json_real_value(json_object_get(lat, "p90")),
        json_real_value(json_object_get(lat, "p99")), json_real_value(json_object_get(lat, "max")));
    if (sc->text)
        sc->text(r);
    printf("errors     ");
    for (unsigned i = 0; i < pb.n_errs; i++)
        printf(" %s %llu", pb.errs[i].name, (unsigned long long)pb.errs[i].n);
    printf("%s\n", pb.n_errs ? "" : " none");
}

/* ----------------------------------------------------------------------------------- */
/* Options */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: parley-bench SCENARIO [options]\n"
        "\n"
        "Scenarios:\n"
        "  rest                  keep-alive REST mix: create-room, join-room, heartbeat,\n"
        "                        GET offer and GET events polls, leave-room\n"
        "  relay                 peer pairs on WebSockets relaying offer/answer/candidate\n"
        "                        envelopes to each other; latency from send to receipt\n"
        "  idle                  open and hold N authenticated WebSockets; the server's\n"
        "                        memory per connection (with --server-pid)\n"
        "  churn                 rooms of members heartbeating, with joins and leaves\n"
        "\n"
        "Options:\n"
        "  --url URL             the server's base URL (default http://127.0.0.1:8080)\n"
        "  --target T            parley (default) or peerjs (relay and idle only)\n"
        "  --key KEY             PeerJS API key (default peerjs)\n"
        "  --token JWT           one user token for every virtual user\n"
        "  --secret SECRET       mint an HS256 token per virtual user (own `sub` each)\n"
        "  --connections N       connections (rest, churn: HTTP; relay: WebSockets, two a\n"
        "                        pair; idle: WebSockets to hold) (default 8)\n"
        "  --duration S          run for S seconds (default 10 unless --requests is given)\n"
        "  --requests N          stop after N units of work (with --duration: whichever first)\n"
        "  --rate R              R units/s in total (default 0: flat out)\n"
        "  --size B              relay: payload bytes per envelope (default 200)\n"
        "  --window N            relay, flat out: messages in flight per sender, 1-64\n"
        "                        (default 8)\n"
        "  --server-pid PID      idle: read VmRSS; churn: CPU time of this process\n"
        "  --hold S              idle: hold the sockets S seconds once open (default 2)\n"
        "  --open-rate N         idle: open N sockets a second (default 0: as fast as possible)\n"
        "  --rooms N             churn: rooms (default 100)\n"
        "  --members N           churn: members per room (default 10)\n"
        "  --heartbeat S         churn: seconds between a member's heartbeats (default 30)\n"
        "  --timeout MS          response timeout (default 5000)\n"
        "  --connect-timeout MS  connect timeout (default 2000)\n"
        "  --json                print the result as one JSON object on stdout\n"
        "  --quiet               no progress line on stderr\n"
        "  --help, --version\n");
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !(d >= lo && d <= hi))
        return false;
    *out = d;
    return true;
}

static int parse_url(pb_opts_t *o)
{
    const char *u = o->url;
    if (strncmp(u, "http://", 7) != 0) {
        fprintf(stderr, "parley-bench: --url must start with http://\n");
        return -1;
    }
    u += 7;
    const char *slash = strchr(u, '/');
    size_t hostlen = slash ? (size_t)(slash - u) : strlen(u);
    if (hostlen == 0 || hostlen >= sizeof o->host) {
        fprintf(stderr, "parley-bench: bad host in --url\n");
        return -1;
    }
    memcpy(o->host, u, hostlen);
    o->host[hostlen] = '\0';
    snprintf(o->base, sizeof o->base, "%s", slash ? slash : "");
    size_t bl = strlen(o->base);
    while (bl > 0 && o->base[bl - 1] == '/')
        o->base[--bl] = '\0';

    char port[16] = "80";
    if (o->host[0] == '[') {
        const char *close = strchr(o->host, ']');
        if (!close) {
            fprintf(stderr, "parley-bench: bad IPv6 host in --url\n");
            return -1;
        }
        snprintf(o->name, sizeof o->name, "%.*s", (int)(close - o->host - 1), o->host + 1);
        if (close[1] == ':')
            snprintf(port, sizeof port, "%s", close + 2);
    } else {
        snprintf(o->name, sizeof o->name, "%s", o->host);
        char *colon = strchr(o->name, ':');
        if (colon) {
            *colon = '\0';
            snprintf(port, sizeof port, "%s", colon + 1);
        }
    }
    o->port = atoi(port);
    uv_getaddrinfo_t gai;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(pb.loop, &gai, NULL, o->name, port, &hints);
    if (rc != 0 || !gai.addrinfo) {
        fprintf(stderr, "parley-bench: cannot resolve %s:%s: %s\n", o->name, port, uv_strerror(rc));
        return -1;
    }
    memcpy(&pb.addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    return 0;
}

static int parse_opts(int argc, char **argv, pb_opts_t *o)
{
    static const struct option longs[] = {{"url", required_argument, NULL, 'u'},
                                          {"target", required_argument, NULL, 'g'},
                                          {"key", required_argument, NULL, 'k'},
                                          {"token", required_argument, NULL, 't'},
                                          {"secret", required_argument, NULL, 's'},
                                          {"connections", required_argument, NULL, 'c'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"requests", required_argument, NULL, 'n'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"size", required_argument, NULL, 'z'},
                                          {"window", required_argument, NULL, 'w'},
                                          {"server-pid", required_argument, NULL, 'p'},
                                          {"hold", required_argument, NULL, 'H'},
                                          {"open-rate", required_argument, NULL, 'O'},
                                          {"rooms", required_argument, NULL, 'R'},
                                          {"members", required_argument, NULL, 'm'},
                                          {"heartbeat", required_argument, NULL, 'b'},
                                          {"timeout", required_argument, NULL, 'T'},
                                          {"connect-timeout", required_argument, NULL, 'C'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    o->url = "http://127.0.0.1:8080";
    o->peerjs_key = "peerjs";
    o->connections = 8;
    o->timeout_ms = 5000;
    o->connect_timeout_ms = 2000;
    o->size = 200;
    o->window = 8;
    o->hold_s = 2;
    o->rooms = 100;
    o->members = 10;
    o->heartbeat_s = 30;
    double d;
    int ch, li = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 'g':
            if (strcmp(optarg, "parley") == 0)
                o->target = PB_TARGET_PARLEY;
            else if (strcmp(optarg, "peerjs") == 0)
                o->target = PB_TARGET_PEERJS;
            else
                goto bad;
            break;
        case 'k':
            o->peerjs_key = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 's':
            o->secret = optarg;
            break;
        case 'c':
            if (!parse_num(optarg, 1, 1000000, &d))
                goto bad;
            o->connections = (unsigned)d;
            break;
        case 'd':
            if (!parse_num(optarg, 0.001, 86400, &d))
                goto bad;
            o->duration_s = d;
            break;
        case 'n':
            if (!parse_num(optarg, 1, 1e15, &d))
                goto bad;
            o->max_requests = (uint64_t)d;
            break;
        case 'r':
            if (!parse_num(optarg, 0, 1e9, &d))
                goto bad;
            o->rate = d;
            break;
        case 'z':
            if (!parse_num(optarg, 1, 65536, &d))
                goto bad;
            o->size = (unsigned)d;
            break;
        case 'w':
            /* parleyd holds at most 64 undelivered envelopes per sender and recipient. */
            if (!parse_num(optarg, 1, 64, &d))
                goto bad;
            o->window = (unsigned)d;
            break;
        case 'p':
            if (!parse_num(optarg, 1, 1 << 30, &d))
                goto bad;
            o->server_pid = (int)d;
            break;
        case 'H':
            if (!parse_num(optarg, 0, 86400, &d))
                goto bad;
            o->hold_s = d;
            break;
        case 'O':
            if (!parse_num(optarg, 0, 1e7, &d))
                goto bad;
            o->open_rate = (unsigned)d;
            break;
        case 'R':
            if (!parse_num(optarg, 1, 1000000, &d))
                goto bad;
            o->rooms = (unsigned)d;
            break;
        case 'm':
            if (!parse_num(optarg, 1, 1000, &d))
                goto bad;
            o->members = (unsigned)d;
            break;
        case 'b':
            if (!parse_num(optarg, 0.01, 3600, &d))
                goto bad;
            o->heartbeat_s = d;
            break;
        case 'T':
            if (!parse_num(optarg, 1, 3600000, &d))
                goto bad;
            o->timeout_ms = (uint32_t)d;
            break;
        case 'C':
            if (!parse_num(optarg, 1, 3600000, &d))
                goto bad;
            o->connect_timeout_ms = (uint32_t)d;
            break;
        case 'j':
            o->json = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("parley-bench %s\n", PL_VERSION);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "parley-bench: bad value for --%s: %s\n", longs[li].name, optarg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    pb.loop = uv_default_loop();
    if (parse_opts(argc, argv, &pb.o) != 0)
        return 2;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i]->name, name) == 0)
            sc = scenarios[i];
    if (!sc) {
        fprintf(stderr, "parley-bench: unknown scenario '%s' (rest, relay, idle, churn)\n", name);
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "parley-bench: unexpected argument '%s'\n", argv[optind + 1]);
        return 2;
    }
    if (pb.o.target == PB_TARGET_PARLEY && !!pb.o.token == !!pb.o.secret) {
        fprintf(stderr, "parley-bench: give exactly one of --token and --secret\n");
        return 2;
    }
    if (pb.o.duration_s == 0 && pb.o.max_requests == 0)
        pb.o.duration_s = 10;
    if (parse_url(&pb.o) != 0)
        return 2;

    pb_hist_init(&pb.hist);
    uv_timer_init(pb.loop, &tick);
    uv_timer_init(pb.loop, &hard_stop);
    uv_signal_init(pb.loop, &sigint_h);
    uv_signal_start(&sigint_h, on_sigint, SIGINT);
    pb.start_ns = uv_hrtime();
    if (pb.o.duration_s > 0) {
        pb.deadline_ns = pb.start_ns + (uint64_t)(pb.o.duration_s * 1e9);
        pb_hard_stop_in((uint64_t)(pb.o.duration_s * 1000) + grace_ms());
    }
    uv_timer_start(&tick, on_tick, 1000, 1000);
    int rc = sc->start();
    if (rc != 0)
        pb_finish();
    uv_run(pb.loop, UV_RUN_DEFAULT);
    if (!pb.end_ns)
        pb.end_ns = uv_hrtime();
    if (rc != 0) {
        if (sc->cleanup)
            sc->cleanup();
        uv_loop_close(pb.loop);
        return 1;
    }

    double elapsed = (double)(pb.end_ns - pb.start_ns) / 1e9;
    json_t *r = report_json(elapsed);
    if (pb.o.json) {
        char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(10));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        report_text(r);
    }
    json_decref(r);
    if (sc->cleanup)
        sc->cleanup();
    uv_loop_close(pb.loop);
    return pb.ok > 0 ? 0 : 1;
}
