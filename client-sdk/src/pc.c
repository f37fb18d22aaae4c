/* pc: one WebRTC data connection (see pc.h).
 *
 * Layers, bottom up: ICE (ice.c, libnice on the ICE thread), DTLS (dtls.c), SCTP (sctp.c),
 * DCEP channels (dcep.c). Events of foreign threads reach the pc through its event queue
 * (evq.c) under the pc's id. User callbacks are never called from inside the layers: they
 * are appended to the pc's callback list, and the list is drained after each batch of
 * queue events (the queue is kicked whenever something is appended), i.e. at the top of a
 * uv callback. */
#include "pc.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcep.h"
#include "dtls.h"
#include "evq.h"
#include "ice.h"
#include "parley.h"
#include "sctp.h"
#include "sdp.h"

#define PL_PC_DEFAULT_MMS     262144
#define PL_PC_DEFAULT_TIMEOUT 15000
/* Waiting for our gathering before answering a peer that does not trickle (aiortc). */
#define PL_PC_GATHER_CAP_MS 3000
#define PL_PC_EARLY_DTLS    8 /* datagrams kept while the DTLS role is not known yet */
#define PL_PC_MAX_CHANNELS  8 /* channels opened by the peer that we receive on */
#define PL_PC_LABEL         "parley"
#define PL_PC_SCTP_PORT     5000

enum { PL_PC_NEW, PL_PC_HAVE_LOCAL_OFFER, PL_PC_STABLE };
enum { PL_UEV_DESC, PL_UEV_CAND, PL_UEV_OPEN, PL_UEV_MESSAGE, PL_UEV_CLOSED };

typedef struct pl_uev {
    struct pl_uev *next;
    int kind;
    int arg; /* binary flag, or the error */
    char *str, *str2;
    uint8_t *data;
    size_t len;
} pl_uev_t;

typedef struct {
    uint8_t *data;
    size_t len;
} pl_pc_dgram_t;

struct pl__pc {
    uv_loop_t *loop;
    pl__pc_callbacks_t cb;
    char **local_addresses, **stun_servers;
    size_t max_message_size;
    uint32_t connect_timeout_ms;

    uint64_t id;
    pl__evq_t *evq;
    uv_timer_t timeout, gather_timer;
    int handles_open;

    int state, offerer, failed, closing;
    pl__ice_t *ice;
    pl__dtls_t *dtls;
    pl__sctp_t *sctp;
    char ufrag[257], pwd[257];
    uint64_t sdp_session;
    unsigned sdp_version;

    /* The remote description, and what came before it. */
    int remote_set;
    pl__sdp_remote_t remote;
    char *pending_cand[PL__SDP_MAX_CANDIDATES];
    size_t npending_cand;
    int pending_eoc;
    size_t remote_mms;

    /* Answering a peer that does not trickle: our candidates go inside the answer. */
    int answer_waits_gathering;
    char *gathered[PL__SDP_MAX_CANDIDATES];
    size_t ngathered;

    int ice_connected;
    int dtls_client, dtls_role_known, dtls_started, dtls_up;
    pl_pc_dgram_t early[PL_PC_EARLY_DTLS];
    size_t nearly;

    int sctp_up;
    int send_sid; /* -1: none */
    int send_open;
    int recv_sid[PL_PC_MAX_CHANNELS];
    size_t nrecv;

    pl_uev_t *uhead, *utail;
    int closed_emitted;
};

static int pl_pc_debug = -1;

static void pl_pc_log(const pl__pc_t *pc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pl_pc_log(const pl__pc_t *pc, const char *fmt, ...)
{
    if (pl_pc_debug < 0) {
        const char *e = getenv("PARLEY_PC_DEBUG");
        pl_pc_debug = e && *e && strcmp(e, "0") != 0;
    }
    if (!pl_pc_debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pc %llu: ", (unsigned long long)pc->id);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- user callbacks (deferred) ---- */

static void pl_pc_emit(pl__pc_t *pc, pl_uev_t *ev)
{
    if (pc->closed_emitted || pc->closing) {
        free(ev->str);
        free(ev->str2);
        free(ev->data);
        free(ev);
        return;
    }
    if (pc->utail)
        pc->utail->next = ev;
    else
        pc->uhead = ev;
    pc->utail = ev;
    if (ev->kind == PL_UEV_CLOSED)
        pc->closed_emitted = 1; /* nothing is queued after it */
    pl__evq_kick(pc->evq);
}

static pl_uev_t *pl_pc_uev(int kind)
{
    return calloc(1, sizeof(pl_uev_t));
}

static void pl_pc_uev_free(pl_uev_t *ev)
{
    free(ev->str);
    free(ev->str2);
    free(ev->data);
    free(ev);
}

static void pl_pc_emit_simple(pl__pc_t *pc, int kind, int arg)
{
    pl_uev_t *ev = pl_pc_uev(kind);
    if (!ev)
        return;
    ev->kind = kind;
    ev->arg = arg;
    pl_pc_emit(pc, ev);
}

static void pl_pc_emit_str(pl__pc_t *pc, int kind, const char *a, const char *b)
{
    pl_uev_t *ev = pl_pc_uev(kind);
    if (!ev)
        return;
    ev->kind = kind;
    ev->str = a ? strdup(a) : NULL;
    ev->str2 = b ? strdup(b) : NULL;
    if ((a && !ev->str) || (b && !ev->str2)) {
        pl_pc_uev_free(ev);
        return;
    }
    pl_pc_emit(pc, ev);
}

static void pl_pc_drain_user(void *ud)
{
    pl__pc_t *pc = ud;
    while (pc->uhead && !pc->closing) {
        pl_uev_t *ev = pc->uhead;
        pc->uhead = ev->next;
        if (!pc->uhead)
            pc->utail = NULL;
        switch (ev->kind) {
        case PL_UEV_DESC:
            if (pc->cb.on_local_description)
                pc->cb.on_local_description(pc->cb.ud, ev->str, ev->str2);
            break;
        case PL_UEV_CAND:
            if (pc->cb.on_local_candidate)
                pc->cb.on_local_candidate(pc->cb.ud, ev->str, ev->str2);
            break;
        case PL_UEV_OPEN:
            if (pc->cb.on_open)
                pc->cb.on_open(pc->cb.ud);
            break;
        case PL_UEV_MESSAGE:
            if (pc->cb.on_message)
                pc->cb.on_message(pc->cb.ud, ev->arg, ev->data, ev->len);
            break;
        case PL_UEV_CLOSED:
            if (pc->cb.on_closed)
                pc->cb.on_closed(pc->cb.ud, ev->arg);
            break;
        }
        pl_pc_uev_free(ev);
    }
}

/* The connection failed or the peer closed it: one on_closed, then silence. The layers stay
 * until pl__pc_close(). */
static void pl_pc_fail(pl__pc_t *pc, int err)
{
    if (pc->failed)
        return;
    pl_pc_log(pc, "closed: %d", err);
    pc->failed = 1;
    pc->send_open = 0;
    uv_timer_stop(&pc->timeout);
    uv_timer_stop(&pc->gather_timer);
    pl_pc_emit_simple(pc, PL_UEV_CLOSED, err);
}

/* ---- SCTP and channels ---- */

static int pl_pc_sctp_send(void *ud, const void *data, size_t len)
{
    pl__pc_t *pc = ud;
    return pc->dtls ? pl__dtls_write(pc->dtls, data, len) : PARLEY_ENOTCONN;
}

static void pl_pc_channel_open(pl__pc_t *pc)
{
    if (pc->send_open || pc->failed)
        return;
    pc->send_open = 1;
    uv_timer_stop(&pc->timeout);
    pl_pc_log(pc, "channel %d open", pc->send_sid);
    pl_pc_emit_simple(pc, PL_UEV_OPEN, 0);
}

static void pl_pc_sctp_up(void *ud)
{
    pl__pc_t *pc = ud;
    pc->sctp_up = 1;
    pl_pc_log(pc, "sctp up");
    if (!pc->offerer)
        return; /* the offerer opens the channel */
    /* RFC 8832 section 6: the DTLS client uses even stream ids, the server odd ones. */
    pc->send_sid = pc->dtls_client ? 0 : 1;
    uint8_t buf[64];
    pl__dcep_open_t o = {PL__DCEP_RELIABLE,   256,  0, (const uint8_t *)PL_PC_LABEL,
                         strlen(PL_PC_LABEL), NULL, 0};
    int n = pl__dcep_encode_open(&o, buf, sizeof buf);
    if (n < 0 || pl__sctp_send(pc->sctp, (uint16_t)pc->send_sid, PL__PPID_DCEP, buf, (size_t)n))
        pl_pc_fail(pc, PARLEY_ESCTP);
}

static int pl_pc_is_recv_sid(const pl__pc_t *pc, uint16_t sid)
{
    if (pc->send_sid == sid)
        return 1;
    for (size_t i = 0; i < pc->nrecv; i++)
        if (pc->recv_sid[i] == sid)
            return 1;
    return 0;
}

static void pl_pc_dcep(pl__pc_t *pc, uint16_t sid, const uint8_t *data, size_t len)
{
    int type;
    pl__dcep_open_t o;
    if (pl__dcep_decode(data, len, &type, &o) != 0) {
        pl_pc_log(pc, "bad DCEP message on stream %u", sid);
        return;
    }
    if (type == PL__DCEP_ACK) {
        if (sid == pc->send_sid)
            pl_pc_channel_open(pc);
        return;
    }
    /* An OPEN: it must use the peer's parity and a free id. */
    int peer_parity = pc->dtls_client ? 1 : 0;
    if ((sid & 1) != peer_parity || pl_pc_is_recv_sid(pc, sid) || pc->nrecv == PL_PC_MAX_CHANNELS) {
        pl_pc_log(pc, "refused OPEN on stream %u", sid);
        pl__sctp_reset_stream(pc->sctp, sid);
        return;
    }
    uint8_t ack[1];
    pl__dcep_encode_ack(ack, sizeof ack);
    if (pl__sctp_send(pc->sctp, sid, PL__PPID_DCEP, ack, 1) != 0)
        return;
    if (pc->send_sid < 0) {
        pc->send_sid = sid;
        pl_pc_channel_open(pc);
    } else {
        pc->recv_sid[pc->nrecv++] = sid; /* a second channel: received on only */
    }
}

static void pl_pc_sctp_message(void *ud, uint16_t sid, uint32_t ppid, uint8_t *data, size_t len)
{
    pl__pc_t *pc = ud;
    if (ppid == PL__PPID_DCEP) {
        pl_pc_dcep(pc, sid, data, len);
        free(data);
        return;
    }
    if (!pl_pc_is_recv_sid(pc, sid) || pc->failed) {
        free(data);
        return;
    }
    /* Data before the ACK on our own channel means the peer has it open (RFC 8832 6.6). */
    if (sid == pc->send_sid && !pc->send_open)
        pl_pc_channel_open(pc);
    int binary;
    switch (ppid) {
    case PL__PPID_STRING:
    case PL__PPID_STRING_PARTIAL:
        binary = 0;
        break;
    case PL__PPID_BINARY:
    case PL__PPID_BINARY_PARTIAL:
        binary = 1;
        break;
    case PL__PPID_STRING_EMPTY:
        binary = 0;
        len = 0;
        break;
    case PL__PPID_BINARY_EMPTY:
        binary = 1;
        len = 0;
        break;
    default:
        free(data);
        return;
    }
    pl_uev_t *ev = pl_pc_uev(PL_UEV_MESSAGE);
    if (!ev) {
        free(data);
        return;
    }
    ev->kind = PL_UEV_MESSAGE;
    ev->arg = binary;
    ev->data = data;
    ev->len = len;
    pl_pc_emit(pc, ev);
}

static void pl_pc_sctp_stream_reset(void *ud, uint16_t sid)
{
    pl__pc_t *pc = ud;
    if (sid == pc->send_sid) {
        /* The peer closed our channel: close our side too; with one channel that is the end. */
        pl__sctp_reset_stream(pc->sctp, sid);
        pl_pc_fail(pc, 0);
        return;
    }
    for (size_t i = 0; i < pc->nrecv; i++)
        if (pc->recv_sid[i] == sid) {
            pc->recv_sid[i] = pc->recv_sid[--pc->nrecv];
            pl__sctp_reset_stream(pc->sctp, sid);
            return;
        }
}

static void pl_pc_sctp_closed(void *ud, int err)
{
    pl_pc_fail(ud, err);
}

static void pl_pc_start_sctp(pl__pc_t *pc)
{
    pl__sctp_callbacks_t cb = {pc,
                               pl_pc_sctp_send,
                               pl_pc_sctp_up,
                               pl_pc_sctp_message,
                               pl_pc_sctp_stream_reset,
                               pl_pc_sctp_closed};
    int rc = pl__sctp_new(pc->loop, pc->id, pc->max_message_size, &cb, &pc->sctp);
    if (rc == 0) {
        uint16_t local =
            pc->remote.legacy && !pc->offerer ? (uint16_t)pc->remote.sctp_port : PL_PC_SCTP_PORT;
        rc = pl__sctp_connect(pc->sctp, local, (uint16_t)pc->remote.sctp_port);
    }
    if (rc)
        pl_pc_fail(pc, PARLEY_ESCTP);
}

/* ---- DTLS ---- */

static int pl_pc_dtls_send(void *ud, const void *data, size_t len)
{
    pl__pc_t *pc = ud;
    return pc->ice ? pl__ice_send(pc->ice, data, len) : PARLEY_ENOTCONN;
}

static void pl_pc_dtls_connected(void *ud)
{
    pl__pc_t *pc = ud;
    pc->dtls_up = 1;
    int rc = pl__dtls_verify(pc->dtls, pc->remote.fp, pc->remote.nfp);
    pl_pc_log(pc, "dtls up, fingerprint %s", rc ? "MISMATCH" : "ok");
    if (rc) {
        pl_pc_fail(pc, PARLEY_EFINGERPRINT);
        return;
    }
    pl_pc_start_sctp(pc);
}

static void pl_pc_dtls_data(void *ud, const uint8_t *data, size_t len)
{
    pl__pc_t *pc = ud;
    if (pc->sctp && !pc->failed)
        pl__sctp_input(pc->sctp, data, len);
}

static void pl_pc_dtls_closed(void *ud, int err)
{
    pl_pc_fail(ud, err);
}

static void pl_pc_maybe_start_dtls(pl__pc_t *pc)
{
    if (pc->dtls_started || !pc->dtls_role_known || pc->failed)
        return;
    /* The server listens at once (the ClientHello may beat our own ICE state event); the
     * client speaks once ICE has a pair. */
    if (pc->dtls_client && !pc->ice_connected)
        return;
    pc->dtls_started = 1;
    pl_pc_log(pc, "dtls start as %s", pc->dtls_client ? "client" : "server");
    pl__dtls_start(pc->dtls, pc->dtls_client);
    for (size_t i = 0; i < pc->nearly; i++) {
        if (!pc->failed)
            pl__dtls_input(pc->dtls, pc->early[i].data, pc->early[i].len);
        free(pc->early[i].data);
    }
    pc->nearly = 0;
}

/* ---- ICE events ---- */

static void pl_pc_on_datagram(pl__pc_t *pc, const uint8_t *data, size_t len)
{
    /* RFC 7983: 20..63 is DTLS; libnice consumed STUN; anything else is not ours. */
    if (len == 0 || data[0] < 20 || data[0] > 63 || pc->failed)
        return;
    if (pc->dtls_started) {
        pl__dtls_input(pc->dtls, data, len);
        return;
    }
    if (pc->nearly == PL_PC_EARLY_DTLS)
        return;
    uint8_t *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, data, len);
    pc->early[pc->nearly].data = copy;
    pc->early[pc->nearly].len = len;
    pc->nearly++;
}

static int pl_pc_emit_answer(pl__pc_t *pc, int with_candidates);

static void pl_pc_on_ice_state(pl__pc_t *pc, int state)
{
    pl_pc_log(pc, "ice state %d", state);
    if (state == PL__ICE_CONNECTED || state == PL__ICE_READY) {
        pl__ice_tune_socket(pc->ice);
        if (!pc->ice_connected) {
            pc->ice_connected = 1;
            pl_pc_maybe_start_dtls(pc);
            if (pc->dtls_started)
                pl__dtls_replay(pc->dtls);
        }
    } else if (state == PL__ICE_FAILED) {
        /* libnice in trickle mode may say FAILED before the peer's last candidate; it is final
         * once the peer said end-of-candidates, or when the path dies after connecting. */
        if (pc->ice_connected || (pc->remote_set && pc->remote.end_of_candidates))
            pl_pc_fail(pc, PARLEY_EICE);
    }
}

static void pl_pc_on_event(void *ud, pl__ev_t *ev)
{
    pl__pc_t *pc = ud;
    if (pc->failed) {
        free(ev);
        return;
    }
    switch (ev->kind) {
    case PL__ICE_EV_CANDIDATE:
        if (pc->answer_waits_gathering) {
            if (pc->ngathered < PL__SDP_MAX_CANDIDATES) {
                char *c = strdup((const char *)ev->data);
                if (c)
                    pc->gathered[pc->ngathered++] = c;
            }
        } else {
            pl_pc_emit_str(pc, PL_UEV_CAND, (const char *)ev->data,
                           pc->remote.mid[0] ? pc->remote.mid : "0");
        }
        break;
    case PL__ICE_EV_GATHERING_DONE:
        if (pc->answer_waits_gathering) {
            uv_timer_stop(&pc->gather_timer);
            pl_pc_emit_answer(pc, 1);
        } else {
            pl_pc_emit_str(pc, PL_UEV_CAND, NULL, pc->remote.mid[0] ? pc->remote.mid : "0");
        }
        break;
    case PL__ICE_EV_STATE:
        pl_pc_on_ice_state(pc, ev->arg);
        break;
    case PL__ICE_EV_DATA:
        pl_pc_on_datagram(pc, ev->data, ev->len);
        break;
    case PL__SCTP_EV_OUT:
    case PL__SCTP_EV_WAKE:
        if (pc->sctp)
            pl__sctp_event(pc->sctp, ev->kind, ev->data, ev->len);
        break;
    }
    free(ev);
}

/* ---- descriptions ---- */

static int pl_pc_build(pl__pc_t *pc, int answer, int with_candidates, char **out)
{
    pl__sdp_local_t l;
    memset(&l, 0, sizeof l);
    l.answer = answer;
    l.session_id = pc->sdp_session;
    l.version = ++pc->sdp_version;
    l.ufrag = pc->ufrag;
    l.pwd = pc->pwd;
    l.fingerprint = pl__dtls_fingerprint(pc->dtls);
    l.mid = answer && pc->remote.mid[0] ? pc->remote.mid : "0";
    l.legacy = answer && pc->remote.legacy;
    l.sctp_port = l.legacy ? pc->remote.sctp_port : PL_PC_SCTP_PORT;
    l.max_message_size = pc->max_message_size;
    if (!answer)
        l.setup = PL__SDP_SETUP_ACTPASS;
    else
        l.setup = pc->dtls_client ? PL__SDP_SETUP_ACTIVE : PL__SDP_SETUP_PASSIVE;
    if (with_candidates) {
        l.candidates = (const char *const *)pc->gathered;
        l.ncand = pc->ngathered;
        l.end_of_candidates = 1;
    }
    return pl__sdp_build(&l, out);
}

static int pl_pc_emit_answer(pl__pc_t *pc, int with_candidates)
{
    pc->answer_waits_gathering = 0;
    char *sdp = NULL;
    int rc = pl_pc_build(pc, 1, with_candidates, &sdp);
    if (rc) {
        pl_pc_fail(pc, rc);
        return rc;
    }
    pl_pc_emit_str(pc, PL_UEV_DESC, "answer", sdp);
    free(sdp);
    if (with_candidates) /* end-of-candidates is inside; say it the trickle way too */
        pl_pc_emit_str(pc, PL_UEV_CAND, NULL, pc->remote.mid[0] ? pc->remote.mid : "0");
    return 0;
}

static void pl_pc_on_gather_cap(uv_timer_t *t)
{
    pl__pc_t *pc = t->data;
    if (pc->answer_waits_gathering && !pc->failed)
        pl_pc_emit_answer(pc, 1);
}

static void pl_pc_on_timeout(uv_timer_t *t)
{
    pl__pc_t *pc = t->data;
    pl_pc_fail(pc, PARLEY_ETIMEDOUT);
}

static int pl_pc_setup_transport(pl__pc_t *pc, int controlling)
{
    int rc = pl__ice_new(pc->id, controlling, (const char *const *)pc->local_addresses,
                         (const char *const *)pc->stun_servers, &pc->ice);
    if (rc)
        return rc;
    rc = pl__ice_local_credentials(pc->ice, pc->ufrag, pc->pwd);
    if (rc)
        return rc;
    pl__dtls_callbacks_t dcb = {pc, pl_pc_dtls_send, pl_pc_dtls_connected, pl_pc_dtls_data,
                                pl_pc_dtls_closed};
    rc = pl__dtls_new(pc->loop, &dcb, &pc->dtls);
    if (rc)
        return rc;
    uv_timer_start(&pc->timeout, pl_pc_on_timeout, pc->connect_timeout_ms, 0);
    return 0;
}

/* Applies the remote candidates (from the SDP and those trickled before it). */
static void pl_pc_apply_remote_ice(pl__pc_t *pc)
{
    for (size_t i = 0; i < pc->remote.ncand; i++)
        pl__ice_add_remote_candidate(pc->ice, pc->remote.cand[i]);
    for (size_t i = 0; i < pc->npending_cand; i++) {
        pl__ice_add_remote_candidate(pc->ice, pc->pending_cand[i]);
        free(pc->pending_cand[i]);
    }
    pc->npending_cand = 0;
    if (pc->pending_eoc)
        pc->remote.end_of_candidates = 1;
    if (pc->remote.end_of_candidates)
        pl__ice_remote_gathering_done(pc->ice);
}

static size_t pl_pc_send_limit(size_t remote)
{
    /* 0 = "no limit" (RFC 8841): we still cap at what our send buffer can take whole. */
    if (remote == 0 || remote > PL__SCTP_MAX_MESSAGE)
        return PL__SCTP_MAX_MESSAGE;
    return remote;
}

/* ---- API ---- */

static void pl_pc_free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int pl_pc_copy_strv(const char *const *in, char ***out)
{
    *out = NULL;
    if (!in)
        return 0;
    size_t n = 0;
    while (in[n] && n < 64)
        n++;
    char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return PARLEY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(in[i]))) {
            pl_pc_free_strv(v);
            return PARLEY_ENOMEM;
        }
    *out = v;
    return 0;
}

static void pl_pc_on_handle_closed(uv_handle_t *h)
{
    pl__pc_t *pc = h->data;
    if (--pc->handles_open == 0)
        free(pc);
}

int pl__pc_new(uv_loop_t *loop, const pl__pc_config_t *cfg, const pl__pc_callbacks_t *cb,
               pl__pc_t **out)
{
    if (!loop || !cb || !out)
        return PARLEY_EINVAL;
    pl__pc_t *pc = calloc(1, sizeof *pc);
    if (!pc)
        return PARLEY_ENOMEM;
    pc->loop = loop;
    pc->cb = *cb;
    pc->send_sid = -1;
    pc->max_message_size = cfg && cfg->max_message_size ? cfg->max_message_size : PL_PC_DEFAULT_MMS;
    if (pc->max_message_size > PL__SCTP_MAX_MESSAGE)
        pc->max_message_size = PL__SCTP_MAX_MESSAGE;
    pc->connect_timeout_ms =
        cfg && cfg->connect_timeout_ms ? cfg->connect_timeout_ms : PL_PC_DEFAULT_TIMEOUT;
    int rc = pl_pc_copy_strv(cfg ? cfg->local_addresses : NULL, &pc->local_addresses);
    if (rc == 0)
        rc = pl_pc_copy_strv(cfg ? cfg->stun_servers : NULL, &pc->stun_servers);
    if (rc == 0 && RAND_bytes((unsigned char *)&pc->sdp_session, sizeof pc->sdp_session) != 1)
        rc = PARLEY_ENOMEM;
    pc->sdp_session >>= 2; /* < 2^62, as Chromium writes it */
    if (rc == 0)
        rc = pl__evq_open(loop, pl_pc_on_event, pc, &pc->evq, &pc->id);
    if (rc) {
        pl_pc_free_strv(pc->local_addresses);
        pl_pc_free_strv(pc->stun_servers);
        free(pc);
        return rc;
    }
    pl__evq_set_after(pc->evq, pl_pc_drain_user);
    uv_timer_init(loop, &pc->timeout);
    uv_timer_init(loop, &pc->gather_timer);
    pc->timeout.data = pc->gather_timer.data = pc;
    pc->handles_open = 2;
    *out = pc;
    return 0;
}

int pl__pc_create_offer(pl__pc_t *pc)
{
    if (pc->closing || pc->failed)
        return PARLEY_ECLOSED;
    if (pc->state != PL_PC_NEW)
        return PARLEY_ESTATE;
    pc->offerer = 1;
    int rc = pl_pc_setup_transport(pc, 1);
    if (rc)
        return rc;
    char *sdp = NULL;
    rc = pl_pc_build(pc, 0, 0, &sdp);
    if (rc)
        return rc;
    pc->state = PL_PC_HAVE_LOCAL_OFFER;
    pl_pc_emit_str(pc, PL_UEV_DESC, "offer", sdp);
    free(sdp);
    /* Candidates come through the queue, so they follow the description. */
    rc = pl__ice_gather(pc->ice);
    return rc;
}

int pl__pc_set_remote(pl__pc_t *pc, const char *type, const char *sdp)
{
    if (pc->closing || pc->failed)
        return PARLEY_ECLOSED;
    if (!type || !sdp)
        return PARLEY_EINVAL;
    int is_offer = strcmp(type, "offer") == 0;
    if (!is_offer && strcmp(type, "answer") != 0)
        return PARLEY_EINVAL;
    if ((is_offer && pc->state != PL_PC_NEW) || (!is_offer && pc->state != PL_PC_HAVE_LOCAL_OFFER))
        return PARLEY_ESTATE;
    pl__sdp_remote_t r;
    int rc = pl__sdp_parse(sdp, &r);
    if (rc)
        return rc;
    /* DTLS roles (RFC 8842): our answers say active unless the offer is active. */
    if (is_offer) {
        pc->dtls_client = r.setup != PL__SDP_SETUP_ACTIVE;
    } else {
        if (r.setup != PL__SDP_SETUP_ACTIVE && r.setup != PL__SDP_SETUP_PASSIVE) {
            pl__sdp_remote_free(&r);
            return PARLEY_EPROTO;
        }
        pc->dtls_client = r.setup == PL__SDP_SETUP_PASSIVE;
    }
    if (is_offer) {
        rc = pl_pc_setup_transport(pc, 0);
        if (rc) {
            pl__sdp_remote_free(&r);
            return rc;
        }
    }
    rc = pl__ice_set_remote_credentials(pc->ice, r.ufrag, r.pwd);
    if (rc) {
        pl__sdp_remote_free(&r);
        return rc;
    }
    pc->remote = r;
    pc->remote_set = 1;
    pc->remote_mms = pl_pc_send_limit(r.max_message_size);
    pc->dtls_role_known = 1;
    pc->state = PL_PC_STABLE;
    pl_pc_log(pc, "remote %s: %zu candidates%s, setup %d, %s", type, r.ncand,
              r.end_of_candidates ? " + end" : "", r.setup, r.legacy ? "legacy" : "modern");
    pl_pc_apply_remote_ice(pc);
    if (is_offer) {
        if (pc->remote.trickle) {
            rc = pl_pc_emit_answer(pc, 0);
        } else {
            /* A peer that does not trickle wants our candidates inside the answer. */
            pc->answer_waits_gathering = 1;
            uv_timer_start(&pc->gather_timer, pl_pc_on_gather_cap, PL_PC_GATHER_CAP_MS, 0);
        }
        if (rc == 0)
            rc = pl__ice_gather(pc->ice);
    }
    pl_pc_maybe_start_dtls(pc);
    return rc;
}

int pl__pc_add_candidate(pl__pc_t *pc, const char *candidate, const char *mid)
{
    if (pc->closing || pc->failed)
        return PARLEY_ECLOSED;
    if (!candidate || !*candidate) { /* null, or Chromium's "" end marker */
        if (pc->remote_set) {
            pc->remote.end_of_candidates = 1;
            pl__ice_remote_gathering_done(pc->ice);
        } else {
            pc->pending_eoc = 1;
        }
        return 0;
    }
    char norm[PL__SDP_CANDIDATE_MAX + 16];
    int rc = pl__sdp_candidate_check(candidate, norm, sizeof norm);
    if (rc == 1) {
        pl_pc_log(pc, "dropped candidate %s", candidate);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (pc->remote_set)
        return pl__ice_add_remote_candidate(pc->ice, norm);
    if (pc->npending_cand == PL__SDP_MAX_CANDIDATES)
        return PARLEY_EAGAIN;
    char *c = strdup(norm);
    if (!c)
        return PARLEY_ENOMEM;
    pc->pending_cand[pc->npending_cand++] = c;
    return 0;
}

int pl__pc_send(pl__pc_t *pc, int binary, const void *data, size_t len)
{
    if (pc->closing || pc->failed || !pc->send_open || !pc->sctp)
        return PARLEY_ENOTCONN;
    if (len > pc->remote_mms)
        return PARLEY_EMSGSIZE;
    if (len == 0) {
        /* RFC 8831 section 6.6: an empty message is one byte under the "empty" PPID. */
        static const uint8_t zero = 0;
        return pl__sctp_send(pc->sctp, (uint16_t)pc->send_sid,
                             binary ? PL__PPID_BINARY_EMPTY : PL__PPID_STRING_EMPTY, &zero, 1);
    }
    return pl__sctp_send(pc->sctp, (uint16_t)pc->send_sid,
                         binary ? PL__PPID_BINARY : PL__PPID_STRING, data, len);
}

size_t pl__pc_max_message_size(const pl__pc_t *pc)
{
    return pc->remote_set ? pc->remote_mms : 0;
}

void pl__pc_close(pl__pc_t *pc)
{
    if (!pc || pc->closing)
        return;
    pc->closing = 1;
    /* close_notify first: the peer sees a clean close (the SCTP ABORT that closing the socket
     * produces after it has nowhere to go). */
    if (pc->dtls)
        pl__dtls_shutdown(pc->dtls);
    pl__sctp_free(pc->sctp);
    pl__dtls_free(pc->dtls);
    pl__ice_free(pc->ice);
    pl__evq_close(pc->evq);
    pc->sctp = NULL;
    pc->dtls = NULL;
    pc->ice = NULL;
    while (pc->uhead) {
        pl_uev_t *ev = pc->uhead;
        pc->uhead = ev->next;
        pl_pc_uev_free(ev);
    }
    pc->utail = NULL;
    pl__sdp_remote_free(&pc->remote);
    for (size_t i = 0; i < pc->npending_cand; i++)
        free(pc->pending_cand[i]);
    for (size_t i = 0; i < pc->ngathered; i++)
        free(pc->gathered[i]);
    for (size_t i = 0; i < pc->nearly; i++)
        free(pc->early[i].data);
    pl_pc_free_strv(pc->local_addresses);
    pl_pc_free_strv(pc->stun_servers);
    uv_close((uv_handle_t *)&pc->timeout, pl_pc_on_handle_closed);
    uv_close((uv_handle_t *)&pc->gather_timer, pl_pc_on_handle_closed);
}
