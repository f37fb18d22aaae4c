/* Router and network-policy unit tests. */
#include "http/router.h"
#include "net/netpolicy.h"

#include "common/error.h"
#include "test.h"

#include <llhttp.h>

static const pl_route_t routes[] = {
    {PL_M_POST, "/signaling/offer", "post_offer", NULL},
    {PL_M_GET, "/signaling/offer/:roomId", "get_offer", NULL},
    {PL_M_GET, "/signaling/rooms", "list", NULL},
    {PL_M_GET, "/signaling/rooms/:roomId", "get_room", NULL},
    {PL_M_DELETE, "/emoji/:id", "del_emoji", NULL},
    {PL_M_GET, "/emoji/:id", "get_emoji", NULL},
};
#define N (sizeof routes / sizeof routes[0])

static int match(int method, const char *path, pl_route_match_t *m)
{
    return pl_router_match(routes, N, method, pl_str(path), m);
}

static void test_literal_and_params(void)
{
    pl_route_match_t m;
    CHECK_EQ_INT(match(HTTP_POST, "/signaling/offer", &m), 0);
    CHECK_EQ_STR(m.route->name, "post_offer");
    CHECK_EQ_INT(m.nparams, 0);

    REQUIRE(match(HTTP_GET, "/signaling/offer/abc", &m) == 0);
    CHECK_EQ_STR(m.route->name, "get_offer");
    REQUIRE(m.nparams == 1);
    CHECK(pl_str_eq(m.params[0], "abc"));

    /* HEAD goes wherever GET goes. */
    CHECK_EQ_INT(match(HTTP_HEAD, "/signaling/rooms", &m), 0);
    CHECK_EQ_STR(m.route->name, "list");
}

static void test_not_found(void)
{
    pl_route_match_t m;
    CHECK_EQ_INT(match(HTTP_GET, "/", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "/signaling/offer/", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "/signaling/offer/a/b", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "/signaling/offers", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "/signaling/rooms/", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "/signaling/room", &m), PL_ENOTFOUND);
    CHECK_EQ_INT(match(HTTP_GET, "//signaling/rooms", &m), PL_ENOTFOUND);
}

static void test_method_not_allowed(void)
{
    pl_route_match_t m;
    CHECK_EQ_INT(match(HTTP_GET, "/signaling/offer", &m), PL_EINVAL);
    CHECK_EQ_INT(m.allowed, PL_M_POST);
    CHECK_EQ_INT(match(HTTP_POST, "/emoji/x1", &m), PL_EINVAL);
    CHECK_EQ_INT(m.allowed, PL_M_GET | PL_M_DELETE);
    char allow[64];
    pl_router_allow_header(m.allowed, allow, sizeof allow);
    CHECK_EQ_STR(allow, "GET, HEAD, DELETE, OPTIONS");
    /* Methods the router does not know never match anything. */
    CHECK_EQ_INT(match(HTTP_PATCH, "/emoji/x1", &m), PL_EINVAL);
}

static void test_cidr(void)
{
    pl_cidr_t c[8];
    size_t n;
    REQUIRE(pl_cidr_parse_list("10.0.0.0/8, 192.168.1.7, ::1/128, fd00::/8", c, 8, &n) == 0);
    CHECK_EQ_INT(n, 4);
    CHECK(pl_cidr_match(c, n, "10.1.2.3", 8));
    CHECK(!pl_cidr_match(c, n, "11.1.2.3", 8));
    CHECK(pl_cidr_match(c, n, "192.168.1.7", 11));
    CHECK(!pl_cidr_match(c, n, "192.168.1.8", 11));
    CHECK(pl_cidr_match(c, n, "::1", 3));
    CHECK(pl_cidr_match(c, n, "fd12:3456::1", 12));
    CHECK(!pl_cidr_match(c, n, "fe80::1", 7));
    /* IPv4-mapped IPv6 is IPv4. */
    CHECK(pl_cidr_match(c, n, "::ffff:10.9.9.9", 15));
    CHECK(!pl_cidr_match(c, n, "garbage", 7));

    CHECK_EQ_INT(pl_cidr_parse_list("10.0.0.0/33", c, 8, &n), PL_EINVAL);
    CHECK_EQ_INT(pl_cidr_parse_list("10.0.0.0/", c, 8, &n), PL_EINVAL);
    CHECK_EQ_INT(pl_cidr_parse_list("10.0.0/8", c, 8, &n), PL_EINVAL);
    CHECK_EQ_INT(pl_cidr_parse_list("::/129", c, 8, &n), PL_EINVAL);
    CHECK_EQ_INT(pl_cidr_parse_list("1.2.3.4,5.6.7.8,9.9.9.9", c, 2, &n), PL_EINVAL);
    /* Odd prefix lengths mask within a byte. */
    REQUIRE(pl_cidr_parse_list("172.16.0.0/12", c, 8, &n) == 0);
    CHECK(pl_cidr_match(c, n, "172.31.255.255", 14));
    CHECK(!pl_cidr_match(c, n, "172.32.0.0", 10));
}

static void test_client_ip(void)
{
    pl_netpolicy_t p;
    char out[64];
    REQUIRE(pl_netpolicy_init(&p, "127.0.0.1/32, 10.0.0.0/8", NULL) == 0);
    /* Untrusted peers are taken at their word only for their own address. */
    pl_client_ip(&p, "203.0.113.5", pl_str("1.1.1.1"), false, out, sizeof out);
    CHECK_EQ_STR(out, "203.0.113.5");
    /* Trusted proxy: the right-most untrusted hop. */
    pl_client_ip(&p, "127.0.0.1", pl_str("6.6.6.6, 198.51.100.9, 10.1.1.1"), false, out,
                 sizeof out);
    CHECK_EQ_STR(out, "198.51.100.9");
    /* Garbage in the header: fall back to the peer. */
    pl_client_ip(&p, "127.0.0.1", pl_str("not-an-ip"), false, out, sizeof out);
    CHECK_EQ_STR(out, "127.0.0.1");
    pl_client_ip(&p, "127.0.0.1", PL_STR_NULL, false, out, sizeof out);
    CHECK_EQ_STR(out, "127.0.0.1");
    /* RFC 7239 Forwarded, quoted IPv6 with a port. */
    pl_client_ip(&p, "127.0.0.1", pl_str("for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\""),
                 true, out, sizeof out);
    CHECK_EQ_STR(out, "2001:db8::17");
    pl_client_ip(&p, "127.0.0.1", pl_str("for=192.0.2.60:8080"), true, out, sizeof out);
    CHECK_EQ_STR(out, "192.0.2.60");
    pl_netpolicy_free(&p);
}

static void test_origins(void)
{
    pl_netpolicy_t p;
    REQUIRE(pl_netpolicy_init(&p, NULL, "https://a.example, http://localhost:3000/") == 0);
    CHECK(pl_origin_allowed(&p, pl_str("https://a.example")));
    CHECK(pl_origin_allowed(&p, pl_str("HTTPS://A.EXAMPLE")));
    CHECK(pl_origin_allowed(&p, pl_str("http://localhost:3000")));
    CHECK(!pl_origin_allowed(&p, pl_str("https://a.example.evil")));
    CHECK(!pl_origin_allowed(&p, pl_str("null")));
    CHECK(!pl_origin_allowed(&p, PL_STR_NULL));
    pl_netpolicy_free(&p);
    REQUIRE(pl_netpolicy_init(&p, NULL, "*") == 0);
    CHECK(pl_origin_allowed(&p, pl_str("https://anything")));
    pl_netpolicy_free(&p);
}

int main(void)
{
    RUN(test_literal_and_params);
    RUN(test_not_found);
    RUN(test_method_not_allowed);
    RUN(test_cidr);
    RUN(test_client_ip);
    RUN(test_origins);
    TEST_MAIN();
}
