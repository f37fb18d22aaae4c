/* 7TV emotes: a caching proxy of 7TV's API v3 (DESIGN section 6). Placeholder until the
 * upstream client lands: every route answers 503. */
#include "api/api.h"

#include <stdlib.h>

struct pl_emotes {
    pl_app_t *app;
};

int pl_emotes_new(pl_app_t *app, pl_emotes_t **out)
{
    pl_emotes_t *e = calloc(1, sizeof *e);
    if (!e)
        return -30001;
    e->app = app;
    *out = e;
    return 0;
}

void pl_emotes_shutdown(pl_emotes_t *e)
{
    (void)e;
}

void pl_emotes_free(pl_emotes_t *e)
{
    free(e);
}

void api_emotes_7tv_global(pl_call_t *call)
{
    api_error(call, 503, "upstream_unavailable", "7TV proxy not built yet");
}

void api_emotes_7tv_set(pl_call_t *call)
{
    api_error(call, 503, "upstream_unavailable", "7TV proxy not built yet");
}

void api_emotes_7tv_user(pl_call_t *call)
{
    api_error(call, 503, "upstream_unavailable", "7TV proxy not built yet");
}
