/* The memory store engine: every scenario of store_scenarios.h, plus what concerns no
 * engine at all. The engine runs every callback before the call returns, and the fixture
 * checks that it did. */
#include "store_scenarios.h"

static const store_engine_t memory_engine = {
    .name = "memory",
    .make = pl_store_memory_new,
    .sweep = pl_store_memory_sweep,
    .deferred = false,
};

/* The names of topologies and envelope types (store.c) belong to no engine: checked once,
 * here. */
static void test_names(void)
{
    pl_topology_t t;
    CHECK_EQ_STR(pl_topology_name(PL_TOPO_MESH), "mesh");
    CHECK_EQ_STR(pl_topology_name(PL_TOPO_STAR), "star");
    CHECK_EQ_STR(pl_topology_name(PL_TOPO_OVERLAY), "overlay");
    CHECK_EQ_STR(pl_topology_name((pl_topology_t)42), "unknown");
    CHECK_EQ_INT(pl_topology_parse("overlay", &t), 0);
    CHECK_EQ_INT(t, PL_TOPO_OVERLAY);
    CHECK_EQ_INT(pl_topology_parse("star", &t), 0);
    CHECK_EQ_INT(t, PL_TOPO_STAR);
    CHECK_EQ_INT(pl_topology_parse("Mesh", &t), PL_EINVAL);
    CHECK_EQ_INT(pl_topology_parse("", &t), PL_EINVAL);
    CHECK_EQ_INT(pl_topology_parse(NULL, &t), PL_EINVAL);
    CHECK_EQ_STR(pl_env_type_name(PL_ENV_OFFER), "offer");
    CHECK_EQ_STR(pl_env_type_name(PL_ENV_OFFER_REQUEST), "offer-request");
    CHECK_EQ_STR(pl_env_type_name(PL_ENV_PEER_LEFT), "peer-left");
    CHECK_EQ_STR(pl_env_type_name(PL_ENV_ROOM_CLOSED), "room-closed");
    CHECK_EQ_STR(pl_env_type_name(PL_ENV_ALL), "unknown");
}

int main(void)
{
    RUN(test_names);
    run_store_scenarios(&memory_engine);
    TEST_MAIN();
}
