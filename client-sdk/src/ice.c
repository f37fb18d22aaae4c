/* ice: see ice.h. */
#include "ice.h"

#include <nice/agent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "evq.h"
#include "parley.h"

/* Kernel socket buffers asked for once connected (see pl__ice_tune_socket). */
#define PL_ICE_SOCKET_BUF (2 * 1024 * 1024)

struct pl__ice {
    NiceAgent *agent;
    guint stream;
    uint64_t sid;
};

/* The process-wide ICE thread and its context, refcounted by live agents. */
static pthread_mutex_t pl_ice_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned pl_ice_refs;
static GMainContext *pl_ice_ctx;
static GMainLoop *pl_ice_loop;
static GThread *pl_ice_thread;

static gpointer pl_ice_thread_main(gpointer arg)
{
    GMainContext *ctx = arg;
    g_main_context_push_thread_default(ctx);
    g_main_loop_run(pl_ice_loop);
    g_main_context_pop_thread_default(ctx);
    return NULL;
}

/* Runs fn(data) on the ICE thread, always later (g_main_context_invoke would run it in the
 * caller when the context happens to be free). */
static void pl_ice_defer(GSourceFunc fn, gpointer data)
{
    GSource *s = g_idle_source_new();
    g_source_set_callback(s, fn, data, NULL);
    g_source_attach(s, pl_ice_ctx);
    g_source_unref(s);
}

static int pl_ice_acquire(void)
{
    int rc = 0;
    pthread_mutex_lock(&pl_ice_lock);
    if (pl_ice_refs == 0) {
        pl_ice_ctx = g_main_context_new();
        pl_ice_loop = g_main_loop_new(pl_ice_ctx, FALSE);
        pl_ice_thread = g_thread_try_new("parley-ice", pl_ice_thread_main, pl_ice_ctx, NULL);
        if (!pl_ice_thread) {
            g_main_loop_unref(pl_ice_loop);
            g_main_context_unref(pl_ice_ctx);
            pl_ice_loop = NULL;
            pl_ice_ctx = NULL;
            rc = PARLEY_ENOMEM;
        }
    }
    if (rc == 0)
        pl_ice_refs++;
    pthread_mutex_unlock(&pl_ice_lock);
    return rc;
}

static gboolean pl_ice_quit(gpointer data)
{
    g_main_loop_quit(pl_ice_loop);
    return G_SOURCE_REMOVE;
}

static void pl_ice_release(void)
{
    pthread_mutex_lock(&pl_ice_lock);
    if (--pl_ice_refs == 0) {
        /* Queued after every pending agent destruction, so those run first. */
        pl_ice_defer(pl_ice_quit, NULL);
        g_thread_join(pl_ice_thread);
        /* Whatever the thread did not get to runs here, now that nobody owns the context. */
        g_main_context_push_thread_default(pl_ice_ctx);
        while (g_main_context_iteration(pl_ice_ctx, FALSE))
            ;
        g_main_context_pop_thread_default(pl_ice_ctx);
        g_main_loop_unref(pl_ice_loop);
        g_main_context_unref(pl_ice_ctx);
        pl_ice_thread = NULL;
        pl_ice_loop = NULL;
        pl_ice_ctx = NULL;
    }
    pthread_mutex_unlock(&pl_ice_lock);
}

/* ---- signal handlers: any thread (libnice emits where the API was called); they only
 * copy into the session's queue ---- */

static uint64_t pl_ice_sid(gpointer ud)
{
    return (uint64_t)(uintptr_t)ud;
}

static const char *pl_ice_type_name(NiceCandidateType t)
{
    switch (t) {
    case NICE_CANDIDATE_TYPE_HOST:
        return "host";
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE:
        return "srflx";
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE:
        return "prflx";
    case NICE_CANDIDATE_TYPE_RELAYED:
        return "relay";
    }
    return NULL;
}

static void pl_ice_on_candidate(NiceAgent *agent, NiceCandidate *c, gpointer ud)
{
    /* Written here rather than with nice_agent_generate_local_candidate_sdp(): the format
     * browsers expect, with no agent call from inside a signal. UDP only (ice-tcp is off). */
    const char *typ = pl_ice_type_name(c->type);
    if (!typ || c->transport != NICE_CANDIDATE_TRANSPORT_UDP || c->component_id != 1)
        return;
    char addr[NICE_ADDRESS_STRING_LEN], raddr[NICE_ADDRESS_STRING_LEN];
    nice_address_to_string(&c->addr, addr);
    char line[512];
    int n = snprintf(line, sizeof line, "candidate:%s %u udp %u %s %u typ %s", c->foundation,
                     c->component_id, c->priority, addr, nice_address_get_port(&c->addr), typ);
    if (n > 0 && (size_t)n < sizeof line && c->type != NICE_CANDIDATE_TYPE_HOST &&
        nice_address_is_valid(&c->base_addr)) {
        nice_address_to_string(&c->base_addr, raddr);
        snprintf(line + n, sizeof line - (size_t)n, " raddr %s rport %u", raddr,
                 nice_address_get_port(&c->base_addr));
    }
    if (n > 0 && (size_t)n < sizeof line)
        pl__evq_post(pl_ice_sid(ud), PL__ICE_EV_CANDIDATE, 0, line, strlen(line));
}

static void pl_ice_on_gathering_done(NiceAgent *agent, guint stream, gpointer ud)
{
    pl__evq_post(pl_ice_sid(ud), PL__ICE_EV_GATHERING_DONE, 0, NULL, 0);
}

static void pl_ice_on_state(NiceAgent *agent, guint stream, guint component, guint state,
                            gpointer ud)
{
    if (component == 1)
        pl__evq_post(pl_ice_sid(ud), PL__ICE_EV_STATE, (int)state, NULL, 0);
}

static void pl_ice_on_recv(NiceAgent *agent, guint stream, guint component, guint len, gchar *buf,
                           gpointer ud)
{
    pl__evq_post(pl_ice_sid(ud), PL__ICE_EV_DATA, 0, buf, len);
}

/* ---- API (SDK thread) ---- */

static int pl_ice_parse_hostport(const char *s, char *host, size_t hostsz, unsigned *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= hostsz || colon == s)
        return PARLEY_EINVAL;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [v6]:port */
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end || p == 0 || p > 65535)
        return PARLEY_EINVAL;
    *port = (unsigned)p;
    return 0;
}

int pl__ice_new(uint64_t session_id, int controlling, const char *const *local_addresses,
                const char *const *stun_servers, pl__ice_t **out)
{
    int rc = pl_ice_acquire();
    if (rc)
        return rc;
    pl__ice_t *ice = calloc(1, sizeof *ice);
    if (!ice) {
        rc = PARLEY_ENOMEM;
        goto fail_release;
    }
    ice->sid = session_id;
    ice->agent =
        nice_agent_new_full(pl_ice_ctx, NICE_COMPATIBILITY_RFC5245,
                            NICE_AGENT_OPTION_ICE_TRICKLE | NICE_AGENT_OPTION_REGULAR_NOMINATION |
                                NICE_AGENT_OPTION_CONSENT_FRESHNESS);
    if (!ice->agent) {
        rc = PARLEY_ENOMEM;
        goto fail_free;
    }
    /* Bounded STUN so gathering never waits long on an unreachable server. */
    g_object_set(ice->agent, "ice-tcp", FALSE, "ice-udp", TRUE, "upnp", FALSE, "controlling-mode",
                 controlling ? TRUE : FALSE, "stun-max-retransmissions", 3, "stun-initial-timeout",
                 200, NULL);
    /* Numeric "ip:port" / "[ip6]:port" entries (room.c resolves names). libnice 0.1.21 has
     * a single stun-server property: the first usable entry is the STUN server. */
    for (size_t i = 0; stun_servers && stun_servers[i]; i++) {
        char host[256];
        unsigned port;
        if (pl_ice_parse_hostport(stun_servers[i], host, sizeof host, &port) == 0) {
            g_object_set(ice->agent, "stun-server", host, "stun-server-port", port, NULL);
            break;
        }
    }
    for (size_t i = 0; local_addresses && local_addresses[i]; i++) {
        NiceAddress a;
        nice_address_init(&a);
        if (!nice_address_set_from_string(&a, local_addresses[i])) {
            rc = PARLEY_EINVAL;
            goto fail_agent;
        }
        nice_agent_add_local_address(ice->agent, &a);
    }
    ice->stream = nice_agent_add_stream(ice->agent, 1);
    if (!ice->stream) {
        rc = PARLEY_ENOMEM;
        goto fail_agent;
    }
    nice_agent_set_stream_name(ice->agent, ice->stream, "application");
    gpointer ud = (gpointer)(uintptr_t)session_id;
    g_signal_connect(ice->agent, "new-candidate-full", G_CALLBACK(pl_ice_on_candidate), ud);
    g_signal_connect(ice->agent, "candidate-gathering-done", G_CALLBACK(pl_ice_on_gathering_done),
                     ud);
    g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(pl_ice_on_state), ud);
    nice_agent_attach_recv(ice->agent, ice->stream, 1, pl_ice_ctx, pl_ice_on_recv, ud);
    *out = ice;
    return 0;

fail_agent:
    g_object_unref(ice->agent);
fail_free:
    free(ice);
fail_release:
    pl_ice_release();
    return rc;
}

int pl__ice_local_credentials(pl__ice_t *ice, char *ufrag, char *pwd)
{
    gchar *u = NULL, *p = NULL;
    if (!nice_agent_get_local_credentials(ice->agent, ice->stream, &u, &p))
        return PARLEY_EINVAL;
    g_strlcpy(ufrag, u, 257);
    g_strlcpy(pwd, p, 257);
    g_free(u);
    g_free(p);
    return 0;
}

int pl__ice_gather(pl__ice_t *ice)
{
    return nice_agent_gather_candidates(ice->agent, ice->stream) ? 0 : PARLEY_EICE;
}

int pl__ice_set_remote_credentials(pl__ice_t *ice, const char *ufrag, const char *pwd)
{
    return nice_agent_set_remote_credentials(ice->agent, ice->stream, ufrag, pwd) ? 0
                                                                                  : PARLEY_EPROTO;
}

int pl__ice_add_remote_candidate(pl__ice_t *ice, const char *candidate)
{
    /* libnice's parser wants the "a=" form. */
    char line[600];
    int n = snprintf(line, sizeof line, "a=%s", candidate);
    if (n < 0 || (size_t)n >= sizeof line)
        return PARLEY_EPROTO;
    NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(ice->agent, ice->stream, line);
    if (!c)
        return PARLEY_EPROTO;
    GSList *list = g_slist_append(NULL, c);
    int added = nice_agent_set_remote_candidates(ice->agent, ice->stream, 1, list);
    g_slist_free(list);
    nice_candidate_free(c);
    return added == 1 ? 0 : PARLEY_EPROTO;
}

void pl__ice_remote_gathering_done(pl__ice_t *ice)
{
    nice_agent_peer_candidate_gathering_done(ice->agent, ice->stream);
}

int pl__ice_send(pl__ice_t *ice, const void *data, size_t len)
{
    gint n = nice_agent_send(ice->agent, ice->stream, 1, (guint)len, data);
    return n == (gint)len ? 0 : PARLEY_ENOTCONN;
}

void pl__ice_tune_socket(pl__ice_t *ice)
{
    GSocket *gs = nice_agent_get_selected_socket(ice->agent, ice->stream, 1);
    if (!gs)
        return;
    int fd = g_socket_get_fd(gs);
    int size = PL_ICE_SOCKET_BUF;
    /* Best effort: the kernel caps it at its maximum without failing. */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    g_object_unref(gs);
}

static gboolean pl_ice_destroy(gpointer data)
{
    NiceAgent *agent = data;
    g_signal_handlers_disconnect_matched(agent, G_SIGNAL_MATCH_FUNC, 0, 0, NULL,
                                         G_CALLBACK(pl_ice_on_candidate), NULL);
    g_signal_handlers_disconnect_matched(agent, G_SIGNAL_MATCH_FUNC, 0, 0, NULL,
                                         G_CALLBACK(pl_ice_on_gathering_done), NULL);
    g_signal_handlers_disconnect_matched(agent, G_SIGNAL_MATCH_FUNC, 0, 0, NULL,
                                         G_CALLBACK(pl_ice_on_state), NULL);
    g_object_unref(agent);
    return G_SOURCE_REMOVE;
}

void pl__ice_free(pl__ice_t *ice)
{
    if (!ice)
        return;
    nice_agent_attach_recv(ice->agent, ice->stream, 1, pl_ice_ctx, NULL, NULL);
    nice_agent_remove_stream(ice->agent, ice->stream);
    pl_ice_defer(pl_ice_destroy, ice->agent);
    free(ice);
    pl_ice_release();
}
