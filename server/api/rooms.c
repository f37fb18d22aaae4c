/* Room discovery: the public room list and one room's metadata. */
#include "api/api.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 20
#define LIST_MAX     100

static void list_step(pl_call_t *call);
static void on_listed(void *ud, int status, const pl_room_t *rooms, size_t n,
                      const char *next_cursor);
static void get_step(pl_call_t *call);
static void on_room(void *ud, int status, const pl_room_t *room);

typedef struct {
    size_t limit;
    char cursor[PL_CURSOR_MAX + 1];
} list_ctx_t;

void api_list_rooms(pl_call_t *call)
{
    list_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        api_error(call, 500, "internal", "out of memory");
        return;
    }
    call->extra = ctx;
    call->extra_free = free;
    ctx->limit = LIST_DEFAULT;
    char v[PL_CURSOR_MAX + 2];
    if (api_query(call, "limit", v, sizeof v)) {
        char *end;
        long l = strtol(v, &end, 10);
        if (!v[0] || *end || l < 1 || l > LIST_MAX) {
            api_error(call, 400, "invalid_request", "limit: expected an integer from 1 to %d",
                      LIST_MAX);
            return;
        }
        ctx->limit = (size_t)l;
    }
    if (api_query(call, "cursor", v, sizeof v)) {
        if (strlen(v) > PL_CURSOR_MAX) {
            api_error(call, 400, "invalid_request", "cursor: malformed");
            return;
        }
        memcpy(ctx->cursor, v, strlen(v) + 1);
    }
    api_rate(call, "list", call->client_ip, &call->app->cfg->rl_list, list_step);
}

static void list_step(pl_call_t *call)
{
    list_ctx_t *ctx = call->extra;
    int rc =
        call->app->store->list_rooms(call->app->store, ctx->limit, ctx->cursor, on_listed, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_listed(void *ud, int status, const pl_room_t *rooms, size_t n,
                      const char *next_cursor)
{
    pl_call_t *call = ud;
    if (status == PL_EINVAL) {
        api_error(call, 400, "invalid_request", "cursor: malformed");
        return;
    }
    if (status) {
        api_store_error(call, status);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        json_array_append_new(list, api_room_json(&rooms[i]));
    json_t *body =
        json_pack("{s:o,s:o}", "rooms", list, "nextCursor",
                  next_cursor && next_cursor[0] ? json_string(next_cursor) : json_null());
    api_json(call, 200, body);
}

void api_get_room(pl_call_t *call)
{
    pl_str_t p = call->match.params[0];
    if (!pl_id_valid(p.ptr, p.len)) {
        api_error(call, 404, "not_found", "room not found");
        return;
    }
    memcpy(call->room_id, p.ptr, PL_ID_LEN);
    call->room_id[PL_ID_LEN] = '\0';
    api_rate(call, "list", call->client_ip, &call->app->cfg->rl_list, get_step);
}

static void get_step(pl_call_t *call)
{
    int rc = call->app->store->get_room(call->app->store, call->room_id, on_room, call);
    if (rc)
        api_store_error(call, rc);
}

static void on_room(void *ud, int status, const pl_room_t *room)
{
    pl_call_t *call = ud;
    if (status) {
        api_store_error(call, status);
        return;
    }
    /* A private room is visible to its members only; others cannot tell it exists. */
    if (!room->is_public && !api_has_signaling_for(call, room->id)) {
        api_error(call, 404, "not_found", "room not found");
        return;
    }
    api_json(call, 200, api_room_json(room));
}
