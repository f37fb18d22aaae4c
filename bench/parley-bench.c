/* parley-bench: the load tool (DESIGN section 8, docs/performance.md).
 *
 * First scenario, `rest`: N virtual users, each on its own keep-alive connection, go round
 * a cycle of parleyd's REST calls (create-room, join-room, heartbeats, GET offer and
 * GET events polls, leave-room) for a duration or a request count, flat out or at a target
 * rate. Every attempt is counted: an HTTP answer other than the expected one, a failed
 * connect and a timeout are errors, by kind. Latency runs from the request's start
 * (including a reconnect when the server closed the connection) to its last byte. */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "conn.h"
#include "hist.h"
#include "token.h"
#include "version.h"

enum { OP_CREATE, OP_JOIN, OP_HEARTBEAT, OP_POLL_OFFER, OP_POLL_EVENTS, OP_LEAVE, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"create-room", "join-room",   "heartbeat",
                                               "poll-offer",  "poll-events", "leave-room"};

/* The cycle each virtual user goes round. A is the room's creator, B a peer that joins,
 * polls and leaves again, so rooms and inboxes stay small however long the run. */
typedef enum {
    ST_CREATE,        /* user token: create-room (or get one's live room back) */
    ST_JOIN,          /* user token: join-room -> B */
    ST_HEARTBEAT_B,   /* B: heartbeat */
    ST_POLL_OFFER_B,  /* B: GET offer (204) */
    ST_HEARTBEAT_A,   /* A: heartbeat */
    ST_POLL_EVENTS_A, /* A: GET events (drains offer-request / peer-left) */
    ST_LEAVE_B,       /* B: leave-room */
    ST_STEPS
} step_t;

typedef struct {
    char *url;
    char host[256]; /* Host header */
    char base[256]; /* path prefix, no trailing slash */
    char *token;
    char *secret;
    unsigned connections;
    double duration_s;
    uint64_t max_requests;
    double rate;
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms;
    bool json;
    bool quiet;
} opts_t;

typedef struct vu {
    pb_conn_t conn;
    unsigned index;
    char *user_token;
    char room_id[64];
    char *tok_a;
    char *tok_b;
    step_t step;
    int op;
    uint64_t started_ns;
    uint64_t next_due_ns;
    uv_timer_t pace;
    bool idle; /* stopped for good */
} vu_t;

static struct {
    opts_t o;
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    vu_t *vus;
    unsigned idle_vus;
    uint64_t start_ns, end_ns, deadline_ns;
    uint64_t interval_ns; /* per virtual user, with --rate */
    uint64_t issued, completed, ok;
    uint64_t by_op[OP_COUNT];
    uint64_t errs_kind[PB_ERR_COUNT];
    uint64_t errs_status[600];
    uint64_t errs_body; /* expected status, unusable body */
    pb_hist_t hist;
    uv_timer_t tick, hard_stop;
    uv_signal_t sigint;
    uint64_t last_completed;
    bool stopping;
} g;

static uint64_t errors_total(void)
{
    uint64_t n = g.errs_body;
    for (int i = 1; i < PB_ERR_COUNT; i++)
        n += g.errs_kind[i];
    for (int i = 0; i < 600; i++)
        n += g.errs_status[i];
    return n;
}

static bool may_issue(void)
{
    if (g.stopping)
        return false;
    if (g.o.max_requests && g.issued >= g.o.max_requests)
        return false;
    if (g.deadline_ns && uv_hrtime() >= g.deadline_ns)
        return false;
    return true;
}

static void stop_all(void);

static void vu_idle(vu_t *v)
{
    if (v->idle)
        return;
    v->idle = true;
    if (++g.idle_vus == g.o.connections)
        stop_all();
}

static void on_response(pb_conn_t *c, int err, int status, const char *body, size_t len);

static void set_token(char **slot, const char *tok)
{
    free(*slot);
    *slot = tok ? strdup(tok) : NULL;
}

static void vu_send(vu_t *v)
{
    if (!may_issue()) {
        vu_idle(v);
        return;
    }
    char path[512], body[160];
    const char *method = "POST", *bearer = NULL;
    const char *req_body = body;
    snprintf(body, sizeof body, "{\"roomId\":\"%s\"}", v->room_id);
    switch (v->step) {
    case ST_CREATE:
        v->op = OP_CREATE;
        snprintf(path, sizeof path, "%s/signaling/create-room", g.o.base);
        bearer = v->user_token;
        req_body = "{\"isPublic\":false}";
        break;
    case ST_JOIN:
        v->op = OP_JOIN;
        snprintf(path, sizeof path, "%s/signaling/join-room", g.o.base);
        bearer = v->user_token;
        break;
    case ST_HEARTBEAT_B:
    case ST_HEARTBEAT_A:
        v->op = OP_HEARTBEAT;
        snprintf(path, sizeof path, "%s/signaling/heartbeat", g.o.base);
        bearer = v->step == ST_HEARTBEAT_A ? v->tok_a : v->tok_b;
        break;
    case ST_POLL_OFFER_B:
        v->op = OP_POLL_OFFER;
        method = "GET";
        snprintf(path, sizeof path, "%s/signaling/offer/%s", g.o.base, v->room_id);
        bearer = v->tok_b;
        req_body = NULL;
        break;
    case ST_POLL_EVENTS_A:
        v->op = OP_POLL_EVENTS;
        method = "GET";
        snprintf(path, sizeof path, "%s/signaling/events/%s", g.o.base, v->room_id);
        bearer = v->tok_a;
        req_body = NULL;
        break;
    case ST_LEAVE_B:
    default:
        v->op = OP_LEAVE;
        snprintf(path, sizeof path, "%s/signaling/leave-room", g.o.base);
        bearer = v->tok_b;
        break;
    }
    v->started_ns = uv_hrtime();
    g.issued++;
    if (pb_conn_request(&v->conn, method, g.o.host, path, bearer, req_body, on_response) != 0) {
        g.issued--;
        fprintf(stderr, "parley-bench: out of memory\n");
        vu_idle(v);
    }
}

static void on_pace(uv_timer_t *t)
{
    vu_send(t->data);
}

/* The next request: at once flat out, else at this user's next slot (late slots are sent
 * at once, so a slow server is measured at the offered rate, not a politer one). */
static void vu_next(vu_t *v, uint64_t delay_ms)
{
    if (!may_issue()) {
        vu_idle(v);
        return;
    }
    if (g.interval_ns) {
        uint64_t now = uv_hrtime();
        v->next_due_ns += g.interval_ns;
        if (v->next_due_ns > now) {
            uint64_t ms = (v->next_due_ns - now) / 1000000;
            if (ms > delay_ms)
                delay_ms = ms;
        }
    }
    if (delay_ms) {
        uv_timer_start(&v->pace, on_pace, delay_ms, 0);
        return;
    }
    vu_send(v);
}

/* Reads the fields a step needs from a 200/201 body; false when they are missing. */
static bool take_body(vu_t *v, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return false;
    }
    const char *room = json_string_value(json_object_get(j, "roomId"));
    const char *tok = json_string_value(json_object_get(j, "signalingToken"));
    bool ok = true;
    switch (v->step) {
    case ST_CREATE:
        if (!room || !tok || strlen(room) >= sizeof v->room_id) {
            ok = false;
            break;
        }
        strcpy(v->room_id, room);
        set_token(&v->tok_a, tok);
        break;
    case ST_JOIN:
    case ST_HEARTBEAT_B:
        if (!tok)
            ok = false;
        else
            set_token(&v->tok_b, tok);
        break;
    case ST_HEARTBEAT_A:
        if (!tok)
            ok = false;
        else
            set_token(&v->tok_a, tok);
        break;
    default:
        break;
    }
    json_decref(j);
    return ok;
}

static bool status_expected(step_t step, int status)
{
    switch (step) {
    case ST_CREATE:
        return status == 200 || status == 201;
    case ST_POLL_OFFER_B:
        return status == 200 || status == 204;
    case ST_LEAVE_B:
        return status == 204;
    default:
        return status == 200;
    }
}

static void on_response(pb_conn_t *c, int err, int status, const char *body, size_t len)
{
    vu_t *v = (vu_t *)c; /* conn is the first member */
    uint64_t now = uv_hrtime();
    g.completed++;
    g.by_op[v->op]++;
    uint64_t delay_ms = 0;
    bool good = false;
    if (err) {
        g.errs_kind[err]++;
        if (err == PB_ECONNECT)
            delay_ms = 100; /* a dead server is retried, not hammered */
    } else {
        pb_hist_add(&g.hist, (now - v->started_ns) / 1000);
        if (!status_expected(v->step, status))
            g.errs_status[status > 0 && status < 600 ? status : 0]++;
        else if (!take_body(v, body, len) && v->step != ST_POLL_OFFER_B &&
                 v->step != ST_POLL_EVENTS_A && v->step != ST_LEAVE_B)
            g.errs_body++;
        else
            good = true;
    }
    if (good) {
        g.ok++;
        v->step = (step_t)((v->step + 1) % ST_STEPS);
    } else {
        v->step = ST_CREATE; /* start the cycle again from a known state */
    }
    vu_next(v, delay_ms);
}

static void on_tick(uv_timer_t *t)
{
    uint64_t now = uv_hrtime();
    double secs = (double)(now - g.start_ns) / 1e9;
    uint64_t delta = g.completed - g.last_completed;
    g.last_completed = g.completed;
    if (!g.o.quiet)
        fprintf(stderr, "[%5.1fs] requests %llu  %llu/s  errors %llu\n", secs,
                (unsigned long long)g.completed, (unsigned long long)delta,
                (unsigned long long)errors_total());
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop_all(void)
{
    if (g.end_ns)
        return;
    g.stopping = true;
    g.end_ns = uv_hrtime();
    for (unsigned i = 0; i < g.o.connections; i++) {
        pb_conn_shutdown(&g.vus[i].conn);
        if (!uv_is_closing((uv_handle_t *)&g.vus[i].pace))
            uv_close((uv_handle_t *)&g.vus[i].pace, NULL);
    }
    uv_walk(g.loop, close_walk, NULL);
}

static void on_hard_stop(uv_timer_t *t)
{
    stop_all(); /* requests still in flight are abandoned: counted neither way */
}

static void on_sigint(uv_signal_t *s, int signum)
{
    g.stopping = true;
    if (!g.o.quiet)
        fprintf(stderr, "parley-bench: interrupted, stopping\n");
    stop_all();
}

/* ----------------------------------------------------------------------------------- */
/* Report */

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static json_t *report_json(double elapsed)
{
    json_t *lat =
        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "p50", ms(pb_hist_percentile(&g.hist, 50)),
                  "p90", ms(pb_hist_percentile(&g.hist, 90)), "p99",
                  ms(pb_hist_percentile(&g.hist, 99)), "max", ms(g.hist.max), "min",
                  ms(g.hist.total ? g.hist.min : 0), "mean", pb_hist_mean(&g.hist) / 1000.0);
    json_t *kinds = json_object();
    for (int i = 1; i < PB_ERR_COUNT; i++)
        if (g.errs_kind[i])
            json_object_set_new(kinds, pb_conn_err_name(i),
                                json_integer((json_int_t)g.errs_kind[i]));
    for (int i = 0; i < 600; i++)
        if (g.errs_status[i]) {
            char k[16];
            snprintf(k, sizeof k, "http_%d", i);
            json_object_set_new(kinds, k, json_integer((json_int_t)g.errs_status[i]));
        }
    if (g.errs_body)
        json_object_set_new(kinds, "bad_body", json_integer((json_int_t)g.errs_body));
    json_t *ops = json_object();
    for (int i = 0; i < OP_COUNT; i++)
        json_object_set_new(ops, op_names[i], json_integer((json_int_t)g.by_op[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:f, s:I, s:I, s:I, s:f, s:o, s:o, s:o}",
                     "tool", "parley-bench", "version", PL_VERSION, "scenario", "rest", "url",
                     g.o.url, "connections", (json_int_t)g.o.connections, "rate", g.o.rate,
                     "elapsed_s", elapsed, "requests", (json_int_t)g.completed, "ok",
                     (json_int_t)g.ok, "errors", (json_int_t)errors_total(), "throughput_rps",
                     elapsed > 0 ? (double)g.completed / elapsed : 0.0, "latency_ms", lat,
                     "errors_by_kind", kinds, "requests_by_op", ops);
}

static void report_text(json_t *r)
{
    json_t *lat = json_object_get(r, "latency_ms");
    printf("parley-bench rest: %u connections, %.2f s, %s\n", g.o.connections,
           json_real_value(json_object_get(r, "elapsed_s")), g.o.url);
    printf("requests    %llu (ok %llu, errors %llu)\n", (unsigned long long)g.completed,
           (unsigned long long)g.ok, (unsigned long long)errors_total());
    printf("throughput  %.1f req/s\n", json_real_value(json_object_get(r, "throughput_rps")));
    printf(
        "latency ms  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
        json_real_value(json_object_get(lat, "p50")), json_real_value(json_object_get(lat, "p90")),
        json_real_value(json_object_get(lat, "p99")), json_real_value(json_object_get(lat, "max")));
    printf("by op      ");
    for (int i = 0; i < OP_COUNT; i++)
        printf(" %s %llu", op_names[i], (unsigned long long)g.by_op[i]);
    printf("\nerrors     ");
    const char *k;
    json_t *val;
    bool any = false;
    json_object_foreach(json_object_get(r, "errors_by_kind"), k, val)
    {
        printf(" %s %lld", k, (long long)json_integer_value(val));
        any = true;
    }
    printf("%s\n", any ? "" : " none");
}

/* ----------------------------------------------------------------------------------- */
/* Options */

static void usage(FILE *f)
{
    fprintf(f, "usage: parley-bench SCENARIO [options]\n"
               "\n"
               "Scenarios:\n"
               "  rest                  keep-alive REST mix: create-room, join-room, heartbeat,\n"
               "                        GET offer and GET events polls, leave-room\n"
               "  (relay, idle and churn come with the rest of the bench issue)\n"
               "\n"
               "Options:\n"
               "  --url URL             parleyd's base URL (default http://127.0.0.1:8080)\n"
               "  --token JWT           one user token for every virtual user\n"
               "  --secret SECRET       mint an HS256 token per virtual user (own `sub` each)\n"
               "  --connections N       virtual users, one keep-alive connection each (default 8)\n"
               "  --duration S          run for S seconds (default 10 unless --requests is given)\n"
               "  --requests N          stop after N requests (with --duration: whichever first)\n"
               "  --rate R              R requests/s in total (default 0: flat out)\n"
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

static int parse_url(opts_t *o)
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

    char name[256], port[16] = "80";
    if (o->host[0] == '[') {
        const char *close = strchr(o->host, ']');
        if (!close) {
            fprintf(stderr, "parley-bench: bad IPv6 host in --url\n");
            return -1;
        }
        snprintf(name, sizeof name, "%.*s", (int)(close - o->host - 1), o->host + 1);
        if (close[1] == ':')
            snprintf(port, sizeof port, "%s", close + 2);
    } else {
        snprintf(name, sizeof name, "%s", o->host);
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = '\0';
            snprintf(port, sizeof port, "%s", colon + 1);
        }
    }
    uv_getaddrinfo_t gai;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(g.loop, &gai, NULL, name, port, &hints);
    if (rc != 0 || !gai.addrinfo) {
        fprintf(stderr, "parley-bench: cannot resolve %s:%s: %s\n", name, port, uv_strerror(rc));
        return -1;
    }
    memcpy(&g.addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    return 0;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    static const struct option longs[] = {{"url", required_argument, NULL, 'u'},
                                          {"token", required_argument, NULL, 't'},
                                          {"secret", required_argument, NULL, 's'},
                                          {"connections", required_argument, NULL, 'c'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"requests", required_argument, NULL, 'n'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"timeout", required_argument, NULL, 'T'},
                                          {"connect-timeout", required_argument, NULL, 'C'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {NULL, 0, NULL, 0}};
    o->url = "http://127.0.0.1:8080";
    o->connections = 8;
    o->timeout_ms = 5000;
    o->connect_timeout_ms = 2000;
    double d;
    int ch, li = 0;
    while ((ch = getopt_long(argc, argv, "", longs, &li)) != -1) {
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 't':
            o->token = optarg;
            break;
        case 's':
            o->secret = optarg;
            break;
        case 'c':
            if (!parse_num(optarg, 1, 100000, &d))
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
    g.loop = uv_default_loop();
    if (parse_opts(argc, argv, &g.o) != 0)
        return 2;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *scenario = argv[optind];
    if (strcmp(scenario, "rest") != 0) {
        fprintf(stderr, "parley-bench: scenario '%s' is not available yet (only 'rest')\n",
                scenario);
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "parley-bench: unexpected argument '%s'\n", argv[optind + 1]);
        return 2;
    }
    if (!!g.o.token == !!g.o.secret) {
        fprintf(stderr, "parley-bench: give exactly one of --token and --secret\n");
        return 2;
    }
    if (g.o.duration_s == 0 && g.o.max_requests == 0)
        g.o.duration_s = 10;
    if (parse_url(&g.o) != 0)
        return 2;

    pb_hist_init(&g.hist);
    g.vus = calloc(g.o.connections, sizeof *g.vus);
    if (!g.vus) {
        fprintf(stderr, "parley-bench: out of memory\n");
        return 1;
    }
    unsigned pid = (unsigned)uv_os_getpid();
    for (unsigned i = 0; i < g.o.connections; i++) {
        vu_t *v = &g.vus[i];
        v->index = i;
        if (pb_conn_init(&v->conn, g.loop, (const struct sockaddr *)&g.addr, g.o.connect_timeout_ms,
                         g.o.timeout_ms) != 0 ||
            uv_timer_init(g.loop, &v->pace) != 0) {
            fprintf(stderr, "parley-bench: cannot set up connection %u\n", i);
            return 1;
        }
        v->pace.data = v;
        if (g.o.secret) {
            char sub[64], name[64];
            snprintf(sub, sizeof sub, "bench-%u-%u", pid, i);
            snprintf(name, sizeof name, "bench %u-%u", pid, i);
            v->user_token = pb_token_mint(g.o.secret, sub, name, 3600 + (long)g.o.duration_s);
        } else {
            v->user_token = strdup(g.o.token);
        }
        if (!v->user_token) {
            fprintf(stderr, "parley-bench: cannot make a user token\n");
            return 1;
        }
    }

    uv_timer_init(g.loop, &g.tick);
    uv_timer_init(g.loop, &g.hard_stop);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigint, on_sigint, SIGINT);
    g.start_ns = uv_hrtime();
    if (g.o.duration_s > 0) {
        g.deadline_ns = g.start_ns + (uint64_t)(g.o.duration_s * 1e9);
        /* In-flight requests get their timeout to finish, and no more. */
        uv_timer_start(
            &g.hard_stop, on_hard_stop,
            (uint64_t)(g.o.duration_s * 1000) + g.o.timeout_ms + g.o.connect_timeout_ms + 1000, 0);
    }
    uv_timer_start(&g.tick, on_tick, 1000, 1000);
    if (g.o.rate > 0)
        g.interval_ns = (uint64_t)(1e9 * g.o.connections / g.o.rate);
    for (unsigned i = 0; i < g.o.connections; i++) {
        vu_t *v = &g.vus[i];
        if (g.interval_ns) {
            /* Spread the users' first requests over one interval. */
            uint64_t offset = g.interval_ns * i / g.o.connections;
            v->next_due_ns = g.start_ns + offset;
            uv_timer_start(&v->pace, on_pace, offset / 1000000, 0);
        } else {
            vu_send(v);
        }
    }
    uv_run(g.loop, UV_RUN_DEFAULT);
    if (!g.end_ns)
        g.end_ns = uv_hrtime();

    double elapsed = (double)(g.end_ns - g.start_ns) / 1e9;
    json_t *r = report_json(elapsed);
    if (g.o.json) {
        char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(10));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        report_text(r);
    }
    json_decref(r);

    for (unsigned i = 0; i < g.o.connections; i++) {
        pb_conn_free(&g.vus[i].conn);
        free(g.vus[i].user_token);
        free(g.vus[i].tok_a);
        free(g.vus[i].tok_b);
    }
    free(g.vus);
    uv_loop_close(g.loop);
    return g.ok > 0 ? 0 : 1;
}
