/* bench: what parley-bench's scenarios share — the options, the run's counters and
 * latency histogram, the error table, and the scenario interface (a small struct of
 * function pointers, one per scenario file).
 *
 * The driver (parley-bench.c) parses the options, resolves the target, starts the chosen
 * scenario, prints a progress line once a second, stops the run at its deadline, count or
 * SIGINT, and prints the report: the common fields below plus whatever the scenario adds. */
#ifndef PB_BENCH_H
#define PB_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "hist.h"

typedef enum { PB_TARGET_PARLEY, PB_TARGET_PEERJS } pb_target_t;

typedef struct {
    const char *url;
    char host[256]; /* Host header, "name:port" */
    char name[256]; /* host name or address without the port */
    int port;
    char base[256]; /* path prefix, no trailing slash */
    const char *token;
    const char *secret;
    pb_target_t target;
    const char *peerjs_key; /* --key (PeerJS API key, default "peerjs") */
    unsigned connections;
    double duration_s;
    uint64_t max_requests;
    double rate;
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms;
    unsigned size;      /* --size: payload bytes of relayed envelopes (relay) */
    unsigned window;    /* --window: messages in flight per sender, flat out (relay) */
    int server_pid;     /* --server-pid: read memory / CPU of this process (idle, churn) */
    unsigned rooms;     /* --rooms (churn) */
    unsigned members;   /* --members: per room (churn) */
    double heartbeat_s; /* --heartbeat: seconds between a member's heartbeats (churn) */
    double hold_s;      /* --hold: seconds to hold the sockets once all are open (idle) */
    unsigned open_rate; /* --open-rate: new connections per second, 0 = as fast as possible */
    bool json;
    bool quiet;
} pb_opts_t;

/* At most this many distinct error kinds are kept; further kinds count as "other". */
#define PB_MAX_ERR_KINDS 32

typedef struct {
    pb_opts_t o;
    uv_loop_t *loop;
    struct sockaddr_storage addr; /* the target, resolved once */
    uint64_t start_ns, end_ns, deadline_ns;
    bool stopping; /* no new work may start */
    /* The unit of work the scenario counts ("request" for rest and churn, "message" for
     * relay, "connection" for idle): issued, finished, and finished well. */
    uint64_t issued, completed, ok;
    pb_hist_t hist; /* latency in microseconds of each completed unit */
    struct {
        char name[32];
        uint64_t n;
    } errs[PB_MAX_ERR_KINDS];
    unsigned n_errs;
    uint64_t errs_total;
} pb_run_t;

extern pb_run_t pb;

typedef struct {
    const char *name;
    const char *unit; /* "request", "message", "connection": the report says "<unit>s/s" */
    /* Builds the scenario's state and starts it. Returns 0, or -1 after printing why. */
    int (*start)(void);
    /* Called once when the run ends (deadline, count, SIGINT, or pb_finish()): close every
     * handle the scenario owns; no callback of the scenario may count work afterwards. */
    void (*stop)(void);
    /* Optional: appended to the progress line, e.g. "open 4000/10000". */
    void (*progress)(char *buf, size_t n);
    /* Optional: adds the scenario's own fields to the JSON report. */
    void (*report)(json_t *r);
    /* Optional: prints the scenario's own lines of the text report (r is the JSON report). */
    void (*text)(json_t *r);
    /* Optional: frees what start() allocated, after the loop has closed every handle. */
    void (*cleanup)(void);
} pb_scenario_t;

extern const pb_scenario_t pb_scenario_rest;
extern const pb_scenario_t pb_scenario_relay;
extern const pb_scenario_t pb_scenario_idle;
extern const pb_scenario_t pb_scenario_churn;

/* True while the run may start new work: not stopping, before the deadline, under the
 * count. Counting (pb.issued++) is the scenario's job. */
bool pb_may_issue(void);
/* Counts one error of this kind (a short snake_case name: "connect", "timeout",
 * "http_503", "ws_close_1013", ...). */
void pb_error(const char *kind);
/* Records one finished unit: latency in microseconds, ok or not. */
void pb_done(uint64_t latency_us, bool ok);
/* Moves the driver's hard stop (which ends the run even with work in flight) to ms from
 * now: for a scenario whose setup comes before the measured phase. */
void pb_hard_stop_in(uint64_t ms);
/* The measured phase starts now: start_ns is now, the counters and the histogram are
 * cleared (errors are kept), the deadline is --duration from now and the hard stop that plus
 * the timeouts. For scenarios with a setup phase (relay, churn). */
void pb_measure_from_now(void);
/* Ends the run now (the scenario has nothing left to do). Safe to call more than once. */
void pb_finish(void);
/* A fresh HS256 user token for virtual user i (--secret), or a copy of --token; malloc'd. */
char *pb_user_token(unsigned i);
/* VmRSS of a process in bytes from /proc/<pid>/status, or -1. */
long long pb_proc_rss(int pid);
/* User+system CPU time of a process in seconds from /proc/<pid>/stat, or -1. */
double pb_proc_cpu_s(int pid);

#endif
