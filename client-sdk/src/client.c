/* client: the public API (parley.h). parley_client_new() starts the SDK thread, which runs a
 * private libuv loop owning the signaling client (sig.c) and the room (room.c). Calls from
 * other threads become commands: copied into a locked FIFO (bounded), then uv_async_send();
 * the SDK thread runs them in order. Calls made on the SDK thread itself (from a callback)
 * run at once. parley_send() and parley_broadcast() from another thread answer ENOTCONN /
 * EMSGSIZE from a snapshot of the open peers (best effort: a channel may close meanwhile). */
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CMD_BYTES     (16u << 20) /* queued payload across all commands */
#define MAX_STR           1024
#define MAX_LIST          32
#define STOP_LEAVE_MS     1000 /* parley_client_free waits this long for the leave */
#define DEFAULT_MAX_MSG   262144
#define CUSTOM_NAME_LIMIT 64

enum cmd_kind { C_CREATE, C_JOIN, C_JOIN_B, C_LEAVE, C_SEND, C_BROADCAST, C_TEST_CALL };

/* pl__test_call: the caller waits on done. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ran;
    void (*fn)(parley_client *c, void *arg);
    void *arg;
} test_call_t;

struct pl__cmd {
    pl__cmd_t *next;
    enum cmd_kind kind;
    int is_public;
    parley_msg_kind msg_kind;
    char *s1, *s2; /* room id / name / custom name, topology, peer id */
    test_call_t *call;
    size_t len;
    unsigned char data[];
};

/* ---- snapshot ---- */

void pl__snap_set(parley_client *c, const char *peer_id, size_t max_message)
{
    pthread_mutex_lock(&c->snap_mu);
    size_t i = 0;
    while (i < c->nsnap && strcmp(c->snap[i].peer_id, peer_id) != 0)
        i++;
    if (i == c->nsnap && c->nsnap < PL__MAX_SNAPSHOT)
        c->nsnap++;
    if (i < c->nsnap) {
        snprintf(c->snap[i].peer_id, sizeof c->snap[i].peer_id, "%s", peer_id);
        c->snap[i].max_message = max_message;
    }
    pthread_mutex_unlock(&c->snap_mu);
}

void pl__snap_del(parley_client *c, const char *peer_id)
{
    pthread_mutex_lock(&c->snap_mu);
    for (size_t i = 0; i < c->nsnap; i++)
        if (strcmp(c->snap[i].peer_id, peer_id) == 0) {
            c->snap[i] = c->snap[--c->nsnap];
            break;
        }
    pthread_mutex_unlock(&c->snap_mu);
}

void pl__snap_clear(parley_client *c)
{
    pthread_mutex_lock(&c->snap_mu);
    c->nsnap = 0;
    pthread_mutex_unlock(&c->snap_mu);
}

void pl__snap_joined(parley_client *c, int joined)
{
    pthread_mutex_lock(&c->snap_mu);
    c->snap_joined = joined;
    pthread_mutex_unlock(&c->snap_mu);
}

/* The snapshot's max message size for peer_id, or 0 when not open; n = open peers; joined =
 * whether we are in a room. */
static size_t snap_get(parley_client *c, const char *peer_id, size_t *n, int *joined)
{
    size_t max = 0;
    pthread_mutex_lock(&c->snap_mu);
    if (joined)
        *joined = c->snap_joined;
    for (size_t i = 0; peer_id && i < c->nsnap; i++)
        if (strcmp(c->snap[i].peer_id, peer_id) == 0)
            max = c->snap[i].max_message;
    if (n)
        *n = c->nsnap;
    pthread_mutex_unlock(&c->snap_mu);
    return max;
}

/* ---- signaling → user ---- */

static void sig_joined(void *ud, const json_t *a)
{
    parley_client *c = ud;
    pl__room_on_joined(c->room, a);
    pl__snap_joined(c, 1);
    if (c->stopping || !c->cb.on_joined)
        return;
    json_t *room = json_object_get(a, "room");
    parley_room r = {
        .room_id = json_string_value(json_object_get(a, "roomId")),
        .peer_id = json_string_value(json_object_get(a, "peerId")),
        .broadcaster_name = json_string_value(json_object_get(room, "broadcasterName")),
        .custom_name = json_string_value(json_object_get(room, "customName")),
        .topology = json_string_value(json_object_get(room, "topology")),
        .max_peers = (int)json_integer_value(json_object_get(room, "maxPeers")),
        .is_public = json_is_true(json_object_get(room, "isPublic")),
    };
    json_t *peers = json_object_get(a, "peers");
    size_t n = json_array_size(peers);
    if (n > 10000)
        n = 10000;
    parley_peer *pp = n ? calloc(n, sizeof *pp) : NULL;
    if (n && !pp)
        n = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(peers, i);
        const char *id = json_string_value(json_object_get(p, "peerId"));
        const char *uid = json_string_value(json_object_get(p, "userId"));
        const char *name = json_string_value(json_object_get(p, "name"));
        pp[i].peer_id = id ? id : "";
        pp[i].user_id = uid ? uid : "";
        pp[i].name = name ? name : "";
    }
    c->cb.on_joined(c, &r, pp, n, c->user);
    free(pp);
}

static void sig_envelope(void *ud, const json_t *env)
{
    parley_client *c = ud;
    pl__room_on_envelope(c->room, env);
}

static void sig_state(void *ud, parley_sig_state st, int err)
{
    parley_client *c = ud;
    if (!c->stopping && c->cb.on_signaling)
        c->cb.on_signaling(c, st, err, c->user);
}

static void sig_error(void *ud, const char *op, int err, const char *detail)
{
    parley_client *c = ud;
    if (!c->stopping && c->cb.on_error)
        c->cb.on_error(c, op, err, detail, c->user);
}

static void finish_stop(parley_client *c);

static void sig_left(void *ud, int err)
{
    parley_client *c = ud;
    /* Not in a room any more: its connections go too (a membership that ended by itself
     * included: the client cannot signal for them). */
    pl__room_close_all(c->room, err != 0, PARLEY_GONE_LEFT);
    pl__snap_joined(c, 0);
    if (c->in_leave) {
        finish_stop(c);
        return;
    }
    if (!c->stopping && c->cb.on_left)
        c->cb.on_left(c, err, c->user);
}

/* ---- commands ---- */

static void cmd_free(pl__cmd_t *m)
{
    if (m->call) { /* run or dropped: either way its caller may go on */
        pthread_mutex_lock(&m->call->mu);
        m->call->done = 1;
        pthread_cond_signal(&m->call->cv);
        pthread_mutex_unlock(&m->call->mu);
    }
    free(m->s1);
    free(m->s2);
    free(m);
}

static int run_cmd(parley_client *c, pl__cmd_t *m)
{
    switch (m->kind) {
    case C_CREATE: {
        json_t *body = json_pack("{s:b}", "isPublic", m->is_public);
        if (body && m->s1)
            json_object_set_new(body, "customName", json_string(m->s1));
        if (body && m->s2)
            json_object_set_new(body, "topology", json_string(m->s2));
        int rc = body ? pl__sig_create(c->sig, body) : PARLEY_ENOMEM;
        json_decref(body);
        return rc;
    }
    case C_JOIN:
        return pl__sig_join(c->sig, m->s1, NULL);
    case C_JOIN_B:
        return pl__sig_join(c->sig, NULL, m->s1);
    case C_LEAVE:
        pl__room_close_all(c->room, 0, PARLEY_GONE_LEFT);
        return pl__sig_leave(c->sig);
    case C_SEND:
        return pl__room_send(c->room, m->s1, m->msg_kind, m->data, m->len);
    case C_BROADCAST:
        return pl__room_broadcast(c->room, m->msg_kind, m->data, m->len);
    case C_TEST_CALL:
        m->call->ran = 1;
        m->call->fn(c, m->call->arg);
        return 0;
    }
    return PARLEY_EINVAL;
}

static const char *cmd_op(const pl__cmd_t *m)
{
    switch (m->kind) {
    case C_CREATE:
        return "create";
    case C_JOIN:
    case C_JOIN_B:
        return "join";
    case C_LEAVE:
        return "leave";
    default:
        return "send";
    }
}

static void on_stop_timer(uv_timer_t *t)
{
    finish_stop(t->data);
}

/* A send queued by another thread already returned 0 there, so a full SCTP queue when it
 * runs must not drop it (it did: 200 sends of 64 KiB from a thread all returned 0 and 120
 * never arrived). It waits in the backlog, with the sends queued after it (their order is
 * kept), until the queue drains; the backlog counts against the command bound, so the
 * sending thread gets PARLEY_EAGAIN once both are full. */
static void backlog_add(parley_client *c, pl__cmd_t *m)
{
    m->next = NULL;
    *c->backlog_tail = m;
    c->backlog_tail = &m->next;
    pthread_mutex_lock(&c->cmd_mu);
    c->backlog_bytes += m->len;
    pthread_mutex_unlock(&c->cmd_mu);
}

static void backlog_flush(parley_client *c)
{
    while (c->backlog_head && !c->stopping) {
        pl__cmd_t *m = c->backlog_head;
        if (run_cmd(c, m) == PARLEY_EAGAIN)
            return;
        c->backlog_head = m->next;
        if (!c->backlog_head)
            c->backlog_tail = &c->backlog_head;
        pthread_mutex_lock(&c->cmd_mu);
        c->backlog_bytes -= m->len;
        pthread_mutex_unlock(&c->cmd_mu);
        cmd_free(m);
    }
    uv_timer_stop(&c->backlog_timer);
}

static void on_backlog_timer(uv_timer_t *t)
{
    backlog_flush(t->data);
}

static void backlog_free(parley_client *c)
{
    for (pl__cmd_t *m = c->backlog_head, *n; m; m = n) {
        n = m->next;
        cmd_free(m);
    }
    c->backlog_head = NULL;
    c->backlog_tail = &c->backlog_head;
}

static void on_async(uv_async_t *a)
{
    parley_client *c = a->data;
    pthread_mutex_lock(&c->cmd_mu);
    pl__cmd_t *list = c->cmd_head;
    c->cmd_head = NULL;
    c->cmd_tail = &c->cmd_head;
    c->cmd_bytes = 0;
    int stop = c->stop_requested;
    pthread_mutex_unlock(&c->cmd_mu);
    for (pl__cmd_t *m = list, *n; m; m = n) {
        n = m->next;
        if (!stop && m->kind == C_SEND && c->backlog_head) {
            backlog_add(c, m); /* behind the earlier ones */
            continue;
        }
        int rc = stop ? 0 : run_cmd(c, m);
        if (rc == PARLEY_EAGAIN && m->kind == C_SEND) {
            backlog_add(c, m);
            continue;
        }
        /* A queued call already returned 0: its failure is reported as on_error. */
        if (rc < 0 && m->kind <= C_LEAVE && !c->stopping && c->cb.on_error)
            c->cb.on_error(c, cmd_op(m), rc, NULL, c->user);
        cmd_free(m);
    }
    if (c->backlog_head && !stop && !uv_is_active((uv_handle_t *)&c->backlog_timer))
        uv_timer_start(&c->backlog_timer, on_backlog_timer, 2, 2);
    if (stop && !c->stopping) {
        c->stopping = 1;
        pl__room_close_all(c->room, 0, PARLEY_GONE_LEFT);
        /* Leave if joined, but do not wait long for the server. */
        if (pl__sig_leave(c->sig) == 0) {
            c->in_leave = 1;
            uv_timer_start(&c->stop_timer, on_stop_timer, STOP_LEAVE_MS, 0);
        } else {
            finish_stop(c);
        }
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish_stop(parley_client *c)
{
    if (!c->running)
        return;
    c->running = 0;
    c->in_leave = 0;
    pl__room_free(c->room);
    c->room = NULL;
    pl__sig_free(c->sig);
    c->sig = NULL;
    uv_timer_stop(&c->stop_timer);
    uv_close((uv_handle_t *)&c->stop_timer, NULL);
    uv_timer_stop(&c->backlog_timer);
    uv_close((uv_handle_t *)&c->backlog_timer, NULL);
    backlog_free(c);
    uv_close((uv_handle_t *)&c->async, NULL);
}

/* Set on every client's SDK thread, so that blocking calls (parley_emotes_load) can refuse
 * to stall it. */
static _Thread_local int on_sdk_thread;

int pl__on_sdk_thread(void)
{
    return on_sdk_thread;
}

static void *sdk_thread(void *arg)
{
    parley_client *c = arg;
    on_sdk_thread = 1;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    /* Everything of ours is closed; lws and the pc layer close theirs by themselves. What
     * still runs after 5 s is closed by force rather than waited on for ever. */
    for (int i = 0; i < 5000 && uv_run(&c->loop, UV_RUN_NOWAIT); i++)
        uv_sleep(1);
    if (uv_loop_close(&c->loop) != 0) {
        pl__logf(&c->log, PL__LOG_WARN, "handles left open at exit; closing them");
        uv_walk(&c->loop, walk_close, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
    }
    return NULL;
}

/* Queues a command, or runs it at once on the SDK thread. */
static int submit(parley_client *c, pl__cmd_t *m)
{
    if (pthread_equal(pthread_self(), c->thread)) {
        int rc = c->stopping ? PARLEY_ECLOSED : run_cmd(c, m);
        cmd_free(m);
        return rc;
    }
    pthread_mutex_lock(&c->cmd_mu);
    int rc = 0;
    if (c->stop_requested)
        rc = PARLEY_ECLOSED;
    else if (m->len > MAX_CMD_BYTES - c->cmd_bytes - c->backlog_bytes)
        rc = PARLEY_EAGAIN;
    if (rc == 0) {
        m->next = NULL;
        *c->cmd_tail = m;
        c->cmd_tail = &m->next;
        c->cmd_bytes += m->len;
    }
    pthread_mutex_unlock(&c->cmd_mu);
    if (rc < 0) {
        cmd_free(m);
        return rc;
    }
    uv_async_send(&c->async);
    return 0;
}

static pl__cmd_t *cmd_new(enum cmd_kind kind, const char *s1, const char *s2, const void *data,
                          size_t len)
{
    pl__cmd_t *m = calloc(1, sizeof *m + len);
    if (!m)
        return NULL;
    m->kind = kind;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    if ((s1 && !(m->s1 = strdup(s1))) || (s2 && !(m->s2 = strdup(s2)))) {
        cmd_free(m);
        return NULL;
    }
    return m;
}

/* ---- public API ---- */

PARLEY_API void parley_config_init(parley_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->signaling = PARLEY_SIGNALING_AUTO;
    cfg->max_message_size = DEFAULT_MAX_MSG;
    cfg->log_level = PL__LOG_WARN;
}

static void log_sink(int level, const char *msg, void *user)
{
    parley_client *c = user;
    c->cfg.log(level, msg, c->user);
}

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++)
        free(l[i]);
    free(l);
}

/* A bounded deep copy of a NULL-terminated string list; *out NULL for NULL. */
static int copy_list(const char *const *in, char ***out)
{
    *out = NULL;
    if (!in)
        return 0;
    size_t n = 0;
    while (in[n])
        if (++n > MAX_LIST)
            return PARLEY_EINVAL;
    char **l = calloc(n + 1, sizeof *l);
    if (!l)
        return PARLEY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(l[i] = pl__strndup_bounded(in[i], MAX_STR))) {
            free_list(l);
            return PARLEY_EINVAL;
        }
    *out = l;
    return 0;
}

static void client_destroy(parley_client *c)
{
    free((char *)c->cfg.server_url);
    free((char *)c->cfg.user_token);
    free((char *)c->cfg.display_name);
    free_list(c->ice_addrs);
    free_list(c->ice_servers);
    pthread_mutex_destroy(&c->cmd_mu);
    pthread_mutex_destroy(&c->snap_mu);
    free(c);
}

PARLEY_API int parley_client_new(const parley_config *cfg, const parley_callbacks *cb, void *user,
                                 parley_client **out)
{
    if (!cfg || !out || cfg->struct_size != sizeof(parley_config) || !cfg->server_url)
        return PARLEY_EINVAL;
    if (cfg->max_message_size > (16u << 20))
        return PARLEY_EINVAL;
    int rc = PARLEY_ENOMEM;
    parley_client *c = calloc(1, sizeof *c);
    if (!c)
        return PARLEY_ENOMEM;
    pthread_mutex_init(&c->cmd_mu, NULL);
    pthread_mutex_init(&c->snap_mu, NULL);
    c->cmd_tail = &c->cmd_head;
    c->backlog_tail = &c->backlog_head;
    c->cfg = *cfg;
    c->cfg.server_url = pl__strndup_bounded(cfg->server_url, MAX_STR);
    c->cfg.user_token = cfg->user_token ? pl__strndup_bounded(cfg->user_token, 16384) : NULL;
    c->cfg.display_name = cfg->display_name ? pl__strndup_bounded(cfg->display_name, 256) : NULL;
    if (!c->cfg.max_message_size)
        c->cfg.max_message_size = DEFAULT_MAX_MSG;
    if (cb)
        c->cb = *cb;
    c->user = user;
    c->log.level = cfg->log_level;
    c->log.fn = cfg->log ? log_sink : NULL;
    c->log.user = c;
    if (!c->cfg.server_url || (cfg->user_token && !c->cfg.user_token) ||
        (cfg->display_name && !c->cfg.display_name)) {
        rc = PARLEY_EINVAL;
        goto fail_cfg;
    }
    if ((rc = copy_list(cfg->ice_local_addresses, &c->ice_addrs)) < 0 ||
        (rc = copy_list(cfg->ice_servers, &c->ice_servers)) < 0)
        goto fail_cfg;
    /* STUN URLs are checked here; names are resolved (on the SDK loop) at each join, and
     * turn:/turns:/stuns: entries are ignored then with a warning (room.c). */
    for (size_t i = 0; c->ice_servers && c->ice_servers[i]; i++) {
        char host[256];
        unsigned port;
        if (pl__parse_stun_url(c->ice_servers[i], host, sizeof host, &port) < 0) {
            rc = PARLEY_EINVAL;
            goto fail_cfg;
        }
    }

    if (uv_loop_init(&c->loop) != 0)
        goto fail_cfg;
    pl__sig_config_t sc = {c->cfg.server_url, c->cfg.user_token, c->cfg.display_name,
                           cfg->signaling, &c->log};
    pl__sig_callbacks_t scb = {c, sig_joined, sig_envelope, sig_state, sig_error, sig_left};
    if ((rc = pl__sig_new(&c->loop, &sc, &scb, &c->sig)) < 0)
        goto fail_loop;
    if ((rc = pl__room_new(c, &c->room)) < 0)
        goto fail_sig;
    uv_async_init(&c->loop, &c->async, on_async);
    c->async.data = c;
    uv_timer_init(&c->loop, &c->stop_timer);
    c->stop_timer.data = c;
    uv_timer_init(&c->loop, &c->backlog_timer);
    c->backlog_timer.data = c;
    c->running = 1;
    if (pthread_create(&c->thread, NULL, sdk_thread, c) != 0) {
        rc = PARLEY_ENOMEM;
        goto fail_handles;
    }
    *out = c;
    return 0;

fail_handles:
    c->running = 0;
    uv_close((uv_handle_t *)&c->async, NULL);
    uv_close((uv_handle_t *)&c->stop_timer, NULL);
    uv_close((uv_handle_t *)&c->backlog_timer, NULL);
    pl__room_free(c->room);
fail_sig:
    pl__sig_free(c->sig);
    uv_run(&c->loop, UV_RUN_DEFAULT);
fail_loop:
    uv_loop_close(&c->loop);
fail_cfg:
    client_destroy(c);
    return rc;
}

PARLEY_API void parley_client_free(parley_client *c)
{
    if (!c || pthread_equal(pthread_self(), c->thread))
        return; /* from a callback it would join itself: refused (documented) */
    pthread_mutex_lock(&c->cmd_mu);
    c->stop_requested = 1;
    pthread_mutex_unlock(&c->cmd_mu);
    uv_async_send(&c->async);
    pthread_join(c->thread, NULL);
    for (pl__cmd_t *m = c->cmd_head, *n; m; m = n) {
        n = m->next;
        cmd_free(m);
    }
    client_destroy(c);
}

PARLEY_API int parley_create_room(parley_client *c, const char *custom_name, int is_public,
                                  const char *topology)
{
    if (!c || (custom_name && strlen(custom_name) > CUSTOM_NAME_LIMIT) ||
        (topology && strcmp(topology, "mesh") && strcmp(topology, "star") &&
         strcmp(topology, "overlay")))
        return PARLEY_EINVAL;
    pl__cmd_t *m = cmd_new(C_CREATE, custom_name, topology, NULL, 0);
    if (!m)
        return PARLEY_ENOMEM;
    m->is_public = is_public != 0;
    return submit(c, m);
}

PARLEY_API int parley_join_room(parley_client *c, const char *room_id)
{
    if (!c || !pl__is_id(room_id))
        return PARLEY_EINVAL;
    pl__cmd_t *m = cmd_new(C_JOIN, room_id, NULL, NULL, 0);
    return m ? submit(c, m) : PARLEY_ENOMEM;
}

PARLEY_API int parley_join_broadcaster(parley_client *c, const char *broadcaster_name)
{
    if (!c || !broadcaster_name || !*broadcaster_name || strlen(broadcaster_name) > 256)
        return PARLEY_EINVAL;
    pl__cmd_t *m = cmd_new(C_JOIN_B, broadcaster_name, NULL, NULL, 0);
    return m ? submit(c, m) : PARLEY_ENOMEM;
}

PARLEY_API int parley_leave(parley_client *c)
{
    if (!c)
        return PARLEY_EINVAL;
    pl__cmd_t *m = cmd_new(C_LEAVE, NULL, NULL, NULL, 0);
    return m ? submit(c, m) : PARLEY_ENOMEM;
}

PARLEY_API int parley_send(parley_client *c, const char *peer_id, parley_msg_kind kind,
                           const void *data, size_t len)
{
    if (!c || !pl__is_id(peer_id) || (len && !data) ||
        (kind != PARLEY_MSG_TEXT && kind != PARLEY_MSG_BINARY))
        return PARLEY_EINVAL;
    if (!pthread_equal(pthread_self(), c->thread)) {
        int joined;
        size_t max = snap_get(c, peer_id, NULL, &joined);
        /* parley.h: ESTATE before joining (the snapshot used to say ENOTCONN then). */
        if (!joined)
            return PARLEY_ESTATE;
        if (!max)
            return PARLEY_ENOTCONN;
        if (len > max)
            return PARLEY_EMSGSIZE;
    }
    pl__cmd_t *m = cmd_new(C_SEND, peer_id, NULL, data, len);
    if (!m)
        return PARLEY_ENOMEM;
    m->msg_kind = kind;
    return submit(c, m);
}

PARLEY_API int parley_broadcast(parley_client *c, parley_msg_kind kind, const void *data,
                                size_t len)
{
    if (!c || (len && !data) || (kind != PARLEY_MSG_TEXT && kind != PARLEY_MSG_BINARY))
        return PARLEY_EINVAL;
    size_t n = 0;
    if (!pthread_equal(pthread_self(), c->thread)) {
        int joined;
        snap_get(c, NULL, &n, &joined);
        if (!joined)
            return PARLEY_ESTATE;
        if (n == 0)
            return 0;
    }
    pl__cmd_t *m = cmd_new(C_BROADCAST, NULL, NULL, data, len);
    if (!m)
        return PARLEY_ENOMEM;
    m->msg_kind = kind;
    int rc = submit(c, m);
    /* Off the SDK thread the count is the snapshot's: the peers it will be queued for. */
    return rc < 0 ? rc : (pthread_equal(pthread_self(), c->thread) ? rc : (int)n);
}

PARLEY_API size_t parley_max_message_size(parley_client *c, const char *peer_id)
{
    return c && peer_id ? snap_get(c, peer_id, NULL, NULL) : 0;
}

/* ---- tests only (internal.h) ---- */

int pl__test_call(parley_client *c, void (*fn)(parley_client *c, void *arg), void *arg)
{
    if (!c || !fn)
        return PARLEY_EINVAL;
    if (pthread_equal(pthread_self(), c->thread)) {
        fn(c, arg);
        return 0;
    }
    test_call_t call = {.fn = fn, .arg = arg};
    pthread_mutex_init(&call.mu, NULL);
    pthread_cond_init(&call.cv, NULL);
    pl__cmd_t *m = cmd_new(C_TEST_CALL, NULL, NULL, NULL, 0);
    int rc = PARLEY_ENOMEM;
    if (m) {
        m->call = &call;
        submit(c, m); /* frees m (and so signals done) itself when refused */
        pthread_mutex_lock(&call.mu);
        while (!call.done)
            pthread_cond_wait(&call.cv, &call.mu);
        pthread_mutex_unlock(&call.mu);
        rc = call.ran ? 0 : PARLEY_ECLOSED;
    }
    pthread_cond_destroy(&call.cv);
    pthread_mutex_destroy(&call.mu);
    return rc;
}
