/* Engine-independent helpers of the store interface: the names of topologies and envelope
 * types as they appear on the wire (DESIGN.md sections 4 and 5). */
#include "store/store.h"

#include "common/error.h"

#include <string.h>

static const char *const topology_names[] = {
    [PL_TOPO_MESH] = "mesh",
    [PL_TOPO_STAR] = "star",
    [PL_TOPO_OVERLAY] = "overlay",
};

#define TOPOLOGY_COUNT (sizeof topology_names / sizeof topology_names[0])

const char *pl_topology_name(pl_topology_t t)
{
    if ((unsigned)t >= TOPOLOGY_COUNT)
        return "unknown";
    return topology_names[t];
}

/* Exact, case-sensitive match: the wire format spells topologies in lower case, and accepting
 * variants would only make two spellings of one value appear in stored rooms. */
int pl_topology_parse(const char *s, pl_topology_t *out)
{
    if (!s || !out)
        return PL_EINVAL;
    for (size_t i = 0; i < TOPOLOGY_COUNT; i++) {
        if (strcmp(s, topology_names[i]) == 0) {
            *out = (pl_topology_t)i;
            return 0;
        }
    }
    return PL_EINVAL;
}

const char *pl_env_type_name(pl_env_type_t t)
{
    switch (t) {
    case PL_ENV_OFFER:
        return "offer";
    case PL_ENV_ANSWER:
        return "answer";
    case PL_ENV_CANDIDATE:
        return "candidate";
    case PL_ENV_OFFER_REQUEST:
        return "offer-request";
    case PL_ENV_PEER_JOINED:
        return "peer-joined";
    case PL_ENV_PEER_LEFT:
        return "peer-left";
    case PL_ENV_ROOM_CLOSED:
        return "room-closed";
    case PL_ENV_ERROR:
        return "error";
    default:
        /* Masks (PL_ENV_ALL) and out-of-range values have no single name; never NULL so
         * that a caller can log the result without checking. */
        return "unknown";
    }
}

int pl_store_cursor_parse(const char *c, int64_t *created, char id[PL_ID_SIZE])
{
    size_t len = strnlen(c, PL_CURSOR_MAX + 1);
    if (len > PL_CURSOR_MAX)
        return PL_EINVAL;
    int64_t v = 0;
    size_t i = 0;
    for (; i < len && c[i] >= '0' && c[i] <= '9'; i++) {
        if (i >= 18)
            return PL_EINVAL; /* more digits than any epoch-ms value needs; no overflow */
        v = v * 10 + (c[i] - '0');
    }
    if (i == 0 || i >= len || c[i] != '.')
        return PL_EINVAL;
    const char *rid = c + i + 1;
    size_t rlen = len - i - 1;
    if (rlen == 0 || rlen > PL_ID_LEN)
        return PL_EINVAL;
    for (size_t k = 0; k < rlen; k++) {
        char ch = rid[k];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return PL_EINVAL;
    }
    memcpy(id, rid, rlen);
    id[rlen] = '\0';
    *created = v;
    return 0;
}
