/* Custom emoji (DESIGN section 6). Placeholder while the handlers are written. */
#include "api/api.h"

uint32_t pl_api_body_limit(void *ud, const pl_http_req_t *req)
{
    pl_app_t *app = ud;
    (void)req;
    return app->cfg->max_body;
}

void api_emoji_list(pl_call_t *call)
{
    api_error(call, 503, "store_unavailable", "not built yet");
}

void api_emoji_upload(pl_call_t *call)
{
    api_error(call, 503, "store_unavailable", "not built yet");
}

void api_emoji_get(pl_call_t *call)
{
    api_error(call, 503, "store_unavailable", "not built yet");
}

void api_emoji_delete(pl_call_t *call)
{
    api_error(call, 503, "store_unavailable", "not built yet");
}
