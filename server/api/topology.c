/* Who a newcomer connects to (DESIGN section 5). */
#include "api/api.h"

#include "common/ids.h"

#include <string.h>

/* The overlay's degree: each newcomer links to this many existing peers. */
#define OVERLAY_K 4

size_t pl_topology_choose(const pl_room_t *room, const pl_member_t *peers, size_t n, size_t *out,
                          size_t cap)
{
    size_t w = 0;
    switch (room->topology) {
    case PL_TOPO_MESH:
        for (size_t i = 0; i < n && w < cap; i++)
            out[w++] = i;
        break;
    case PL_TOPO_STAR:
        /* Viewers connect to the broadcaster only, who relays. */
        for (size_t i = 0; i < n && w < cap; i++)
            if (strcmp(peers[i].user_id, room->broadcaster_id) == 0)
                out[w++] = i;
        break;
    case PL_TOPO_OVERLAY: {
        /* k distinct existing peers chosen uniformly at random (Floyd's sampling). Every
         * newcomer links to at least one live peer, so the graph stays connected as it
         * grows, and random k-out graphs keep a logarithmic diameter. */
        size_t k = n < OVERLAY_K ? n : OVERLAY_K;
        if (k > cap)
            k = cap;
        for (size_t j = n - k; j < n; j++) {
            uint32_t r = 0;
            pl_random_bytes(&r, sizeof r);
            size_t t = r % (j + 1);
            bool taken = false;
            for (size_t i = 0; i < w; i++)
                taken |= out[i] == t;
            out[w++] = taken ? j : t;
        }
        break;
    }
    }
    return w;
}
