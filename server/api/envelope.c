/* JSON shapes shared by the handlers: RoomMetadata, peers, ICE servers and envelopes. */
#include "api/api.h"
#include "common/json.h"

#include "common/error.h"
#include "common/ids.h"
#include "common/log.h"

#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *url_list(const char *list);

json_t *api_iso_time(int64_t ms)
{
    char buf[40];
    pl_iso8601(ms, buf, sizeof buf);
    return json_string(buf);
}

json_t *api_room_json(const pl_room_t *room)
{
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:o,s:I,s:b,s:s,s:I}", "roomId", room->id, "broadcasterId",
                  room->broadcaster_id, "broadcasterName", room->broadcaster_name, "createdAt",
                  api_iso_time(room->created_at_ms), "participantCount",
                  (json_int_t)room->participant_count, "isPublic", room->is_public, "topology",
                  pl_topology_name(room->topology), "maxPeers", (json_int_t)room->max_peers);
    if (j && room->custom_name[0])
        json_object_set_new(j, "customName", json_string(room->custom_name));
    return j;
}

json_t *api_peer_json(const pl_member_t *m)
{
    return json_pack("{s:s,s:s,s:s}", "peerId", m->peer_id, "userId", m->user_id, "name", m->name);
}

static json_t *url_list(const char *list)
{
    json_t *arr = json_array();
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len)
            json_array_append_new(arr, json_stringn(p, len));
        p = comma ? comma + 1 : NULL;
    }
    return arr;
}

/* TURN REST API credentials (draft-uberti-behave-turn-rest): the username carries its own
 * expiry, and the TURN server recomputes the HMAC with the shared secret, so nothing needs
 * to be stored. */
json_t *api_ice_servers(pl_app_t *app, const char *user_id, int64_t now_ms)
{
    const pl_config_t *cfg = app->cfg;
    json_t *servers = json_array();
    json_t *stun = url_list(cfg->stun_urls);
    if (json_array_size(stun))
        json_array_append_new(servers, json_pack("{s:o}", "urls", stun));
    else
        json_decref(stun);
    if (cfg->turn_urls && cfg->turn_secret && cfg->turn_urls[0]) {
        char username[PL_USER_ID_SIZE + 32];
        snprintf(username, sizeof username, "%lld:%s", (long long)(now_ms / 1000 + cfg->turn_ttl),
                 user_id);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        HMAC(EVP_sha1(), cfg->turn_secret, (int)strlen(cfg->turn_secret),
             (const unsigned char *)username, strlen(username), mac, &maclen);
        char cred[64];
        pl_b64_encode(mac, maclen, cred, sizeof cred);
        json_array_append_new(servers, json_pack("{s:o,s:s,s:s}", "urls", url_list(cfg->turn_urls),
                                                 "username", username, "credential", cred));
    }
    return servers;
}

json_t *api_envelope_new(pl_env_type_t type, const char *room_id, const char *from, const char *to,
                         int64_t ts, char *id_out)
{
    if (pl_id_new(id_out))
        return NULL;
    return json_pack("{s:s,s:s,s:s,s:o,s:o,s:I}", "type", pl_env_type_name(type), "id", id_out,
                     "roomId", room_id, "from", from ? json_string(from) : json_null(), "to",
                     to ? json_string(to) : json_null(), "ts", (json_int_t)ts);
}

int api_envelope_head(pl_buf_t *b, pl_env_type_t type, const char *id, const char *room_id,
                      const char *from, const char *to, int64_t ts)
{
    char num[32];
    pl_fmt_i64(num, ts);
    int rc = pl_buf_appends(b, "{\"type\":\"") || pl_buf_appends(b, pl_env_type_name(type)) ||
             pl_buf_appends(b, "\",\"id\":\"") || pl_buf_appends(b, id) ||
             pl_buf_appends(b, "\",\"roomId\":\"") || pl_buf_appends(b, room_id) ||
             pl_buf_appends(b, "\",\"from\":");
    if (!rc)
        rc = from ? pl_buf_appends(b, "\"") || pl_buf_appends(b, from) || pl_buf_appends(b, "\"")
                  : pl_buf_appends(b, "null");
    if (!rc)
        rc = pl_buf_appends(b, ",\"to\":");
    if (!rc)
        rc = to ? pl_buf_appends(b, "\"") || pl_buf_appends(b, to) || pl_buf_appends(b, "\"")
                : pl_buf_appends(b, "null");
    if (!rc)
        rc = pl_buf_appends(b, ",\"ts\":") || pl_buf_appends(b, num);
    return rc ? PL_ENOMEM : 0;
}

int api_dump_value(pl_buf_t *b, const json_t *v)
{
    return pl_json_dump(b, v) == 0 ? 0 : PL_ENOMEM;
}

int api_push_text(pl_app_t *app, const char *room_id, const char *from, const char *to,
                  pl_env_type_t type, const char *text, size_t len, const char *id,
                  pl_store_status_cb cb, void *ud)
{
    pl_envelope_t env = {.type = type, .json = text, .json_len = len};
    memcpy(env.id, id, PL_ID_SIZE);
    size_t fl = from ? strlen(from) : 0;
    if (fl >= sizeof env.from)
        return PL_EINVAL;
    memcpy(env.from, from ? from : "", fl + 1);
    return app->store->push(app->store, room_id, from, to, &env, cb, ud);
}

int api_push(pl_app_t *app, const char *room_id, const char *from, const char *to,
             pl_env_type_t type, json_t *env_json, const char *id, pl_store_status_cb cb, void *ud)
{
    pl_buf_t text;
    pl_buf_init(&text);
    int rc = pl_json_dump(&text, env_json) == 0 ? 0 : PL_ENOMEM;
    json_decref(env_json);
    if (!rc)
        rc = api_push_text(app, room_id, from, to, type, text.data, text.len, id, cb, ud);
    pl_buf_free(&text);
    return rc;
}

static void on_fanout_pushed(void *ud, int status)
{
    (void)ud;
    if (status && status != PL_ENOTFOUND)
        pl_log_warn("envelope fan-out failed", PL_LS("error", pl_strerror(status)));
}

void api_fanout_peer_left(pl_app_t *app, const char *room_id, const pl_member_t *member,
                          const pl_member_t *remaining, size_t n)
{
    int64_t now = pl_now_ms();
    for (size_t i = 0; i < n; i++) {
        char id[PL_ID_SIZE];
        json_t *env =
            api_envelope_new(PL_ENV_PEER_LEFT, room_id, NULL, remaining[i].peer_id, now, id);
        if (!env)
            continue;
        json_object_set_new(env, "peer", api_peer_json(member));
        api_push(app, room_id, NULL, remaining[i].peer_id, PL_ENV_PEER_LEFT, env, id,
                 on_fanout_pushed, NULL);
    }
}
