/* DCEP (RFC 8832): OPEN/ACK encoding and decoding, and messages whose lengths lie. */
#include <string.h>

#include "dcep.h"
#include "parley.h"
#include "test.h"

static void test_open_round_trip(void)
{
    uint8_t buf[64];
    pl__dcep_open_t o = {PL__DCEP_REXMIT_UNORDERED, 512, 0x01020304, (const uint8_t *)"parley", 6,
                         (const uint8_t *)"chat",   4};
    int n = pl__dcep_encode_open(&o, buf, sizeof buf);
    REQUIRE(n == 12 + 6 + 4);
    static const uint8_t want[] = {0x03, 0x81, 0x02, 0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x06, 0x00,
                                   0x04, 'p',  'a',  'r',  'l',  'e',  'y',  'c',  'h',  'a',  't'};
    CHECK(memcmp(buf, want, sizeof want) == 0);
    int type = 0;
    pl__dcep_open_t d;
    REQUIRE(pl__dcep_decode(buf, (size_t)n, &type, &d) == 0);
    CHECK_EQ_INT(type, PL__DCEP_OPEN);
    CHECK_EQ_INT(d.channel_type, PL__DCEP_REXMIT_UNORDERED);
    CHECK_EQ_INT(d.priority, 512);
    CHECK_EQ_INT(d.reliability, 0x01020304);
    CHECK_EQ_INT(d.label_len, 6);
    CHECK(memcmp(d.label, "parley", 6) == 0);
    CHECK_EQ_INT(d.protocol_len, 4);
    CHECK(memcmp(d.protocol, "chat", 4) == 0);
    /* Empty label and protocol. */
    pl__dcep_open_t e = {PL__DCEP_RELIABLE, 256, 0, NULL, 0, NULL, 0};
    REQUIRE(pl__dcep_encode_open(&e, buf, sizeof buf) == 12);
    REQUIRE(pl__dcep_decode(buf, 12, &type, &d) == 0);
    CHECK_EQ_INT(d.label_len + d.protocol_len, 0);
}

static void test_ack(void)
{
    uint8_t buf[4];
    CHECK_EQ_INT(pl__dcep_encode_ack(buf, sizeof buf), 1);
    CHECK_EQ_INT(buf[0], 0x02);
    CHECK_EQ_INT(pl__dcep_encode_ack(buf, 0), PARLEY_EINVAL);
    int type = 0;
    pl__dcep_open_t d;
    CHECK_EQ_INT(pl__dcep_decode(buf, 1, &type, &d), 0);
    CHECK_EQ_INT(type, PL__DCEP_ACK);
}

static void test_bad(void)
{
    int type;
    pl__dcep_open_t d;
    uint8_t buf[64];
    pl__dcep_open_t o = {PL__DCEP_RELIABLE,    256, 0, (const uint8_t *)"ab", 2,
                         (const uint8_t *)"c", 1};
    int n = pl__dcep_encode_open(&o, buf, sizeof buf);
    REQUIRE(n == 15);
    CHECK_EQ_INT(pl__dcep_decode(NULL, 0, &type, &d), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__dcep_decode(buf, 0, &type, &d), PARLEY_EPROTO);
    /* Shorter or longer than its lengths say, or shorter than the header. */
    CHECK_EQ_INT(pl__dcep_decode(buf, 14, &type, &d), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__dcep_decode(buf, 16, &type, &d), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__dcep_decode(buf, 11, &type, &d), PARLEY_EPROTO);
    buf[9] = 0xff; /* label length 255 */
    CHECK_EQ_INT(pl__dcep_decode(buf, 15, &type, &d), PARLEY_EPROTO);
    buf[8] = 0xff;
    buf[10] = 0xff; /* both lengths huge: no overflow */
    CHECK_EQ_INT(pl__dcep_decode(buf, 15, &type, &d), PARLEY_EPROTO);
    n = pl__dcep_encode_open(&o, buf, sizeof buf);
    buf[1] = 0x05; /* unknown channel type */
    CHECK_EQ_INT(pl__dcep_decode(buf, (size_t)n, &type, &d), PARLEY_EPROTO);
    uint8_t other[2] = {0x07, 0};
    CHECK_EQ_INT(pl__dcep_decode(other, 1, &type, &d), PARLEY_EPROTO);
    uint8_t ack2[2] = {0x02, 0};
    CHECK_EQ_INT(pl__dcep_decode(ack2, 2, &type, &d), PARLEY_EPROTO);
    /* Encoding: a buffer too small, a label too long for its 16-bit length. */
    CHECK_EQ_INT(pl__dcep_encode_open(&o, buf, 14), PARLEY_EINVAL);
    pl__dcep_open_t big = {PL__DCEP_RELIABLE, 256, 0, buf, 65536, NULL, 0};
    CHECK_EQ_INT(pl__dcep_encode_open(&big, buf, sizeof buf), PARLEY_EINVAL);
}

int main(void)
{
    RUN(test_open_round_trip);
    RUN(test_ack);
    RUN(test_bad);
    TEST_MAIN();
}
