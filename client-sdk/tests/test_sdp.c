/* SDP: parsing the captured aiortc 1.4.0 and Chromium descriptions, build/parse round trips,
 * candidate checks (.local, TCP, component 2, garbage) and hostile input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "sdp.h"
#include "sdp_fixtures.h"
#include "test.h"

static void test_aiortc_offer(void)
{
    pl__sdp_remote_t r;
    REQUIRE(pl__sdp_parse(aiortc_offer, &r) == 0);
    CHECK_EQ_INT(r.legacy, 1);
    CHECK_EQ_INT(r.sctp_port, 5000);
    CHECK_EQ_INT(r.max_message_size, 65536);
    CHECK_EQ_STR(r.ufrag, "iflF");
    CHECK_EQ_STR(r.pwd, "b7ZphPea2UQqc9KLvDsizj");
    CHECK_EQ_INT(r.nfp, 1);
    CHECK_EQ_STR(r.fp[0].alg, "sha-256");
    CHECK_EQ_INT(r.fp[0].len, 32);
    CHECK_EQ_INT(r.fp[0].md[0], 0x0E);
    CHECK_EQ_INT(r.fp[0].md[31], 0x63);
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_ACTPASS);
    CHECK_EQ_STR(r.mid, "0");
    CHECK_EQ_INT(r.trickle, 0);
    CHECK_EQ_INT(r.end_of_candidates, 1);
    REQUIRE(r.ncand == 2);
    CHECK_EQ_STR(r.cand[0], "candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 "
                            "192.0.2.2 34658 typ host");
    CHECK(strstr(r.cand[1], "fd00::2 41345") != NULL);
    pl__sdp_remote_free(&r);
}

static void test_aiortc_answer(void)
{
    pl__sdp_remote_t r;
    REQUIRE(pl__sdp_parse(aiortc_answer, &r) == 0);
    CHECK_EQ_INT(r.legacy, 0);
    CHECK_EQ_INT(r.sctp_port, 5000);
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_ACTIVE);
    CHECK_EQ_INT(r.max_message_size, 65536);
    CHECK_EQ_INT(r.ncand, 2);
    CHECK_EQ_INT(r.end_of_candidates, 1);
    CHECK_EQ_STR(r.ufrag, "zVQG");
    pl__sdp_remote_free(&r);
}

static void test_chromium_offer(void)
{
    pl__sdp_remote_t r;
    REQUIRE(pl__sdp_parse(chromium_offer, &r) == 0);
    CHECK_EQ_INT(r.legacy, 0);
    CHECK_EQ_INT(r.trickle, 1);
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_ACTPASS);
    CHECK_EQ_INT(r.max_message_size, 262144);
    CHECK_EQ_INT(r.end_of_candidates, 0);
    CHECK_EQ_STR(r.ufrag, "4xJ6");
    CHECK_EQ_STR(r.pwd, "zdNWhuO/HjlpxIH3ALdHTP1k");
    REQUIRE(r.ncand == 2);
    /* Chromium's extension tokens (generation, network-cost) are kept in pairs. */
    CHECK_EQ_STR(r.cand[0], "candidate:870617281 1 udp 2113937151 192.0.2.2 58548 typ host "
                            "generation 0 network-cost 999");
    pl__sdp_remote_free(&r);
}

static void test_chromium_answer(void)
{
    pl__sdp_remote_t r;
    REQUIRE(pl__sdp_parse(chromium_answer, &r) == 0);
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_ACTIVE);
    CHECK_EQ_INT(r.ncand, 0);
    CHECK_EQ_INT(r.max_message_size, 262144);
    CHECK_EQ_STR(r.mid, "0");
    pl__sdp_remote_free(&r);
}

static const char *const two_cands[] = {
    "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
    "candidate:2 1 udp 1694498815 198.51.100.7 40001 typ srflx raddr 127.0.0.1 rport 40000"};

static void test_round_trip(void)
{
    static const char fp[] = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                             "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    pl__sdp_local_t l;
    memset(&l, 0, sizeof l);
    l.session_id = 4611686018427387903ull;
    l.version = 1;
    l.ufrag = "abcd";
    l.pwd = "0123456789012345678901";
    l.fingerprint = fp;
    l.setup = PL__SDP_SETUP_ACTPASS;
    l.mid = "0";
    l.sctp_port = 5000;
    l.max_message_size = 262144;
    char *sdp = NULL;
    REQUIRE(pl__sdp_build(&l, &sdp) == 0);
    CHECK(strstr(sdp, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n") != NULL);
    CHECK(strstr(sdp, "a=ice-options:trickle\r\n") != NULL);
    CHECK(strstr(sdp, "o=- 4611686018427387903 1 IN IP4") != NULL);
    pl__sdp_remote_t r;
    REQUIRE(pl__sdp_parse(sdp, &r) == 0);
    CHECK_EQ_STR(r.ufrag, "abcd");
    CHECK_EQ_STR(r.pwd, "0123456789012345678901");
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_ACTPASS);
    CHECK_EQ_INT(r.max_message_size, 262144);
    CHECK_EQ_INT(r.trickle, 1);
    CHECK_EQ_INT(r.ncand, 0);
    CHECK_EQ_INT(r.nfp, 1);
    CHECK_EQ_INT(r.fp[0].md[10], 0xAA);
    pl__sdp_remote_free(&r);
    free(sdp);

    /* An answer to aiortc: its legacy form mirrored, candidates and the end inside. */
    l.answer = 1;
    l.setup = PL__SDP_SETUP_ACTIVE;
    l.legacy = 1;
    l.sctp_port = 5000;
    l.candidates = two_cands;
    l.ncand = 2;
    l.end_of_candidates = 1;
    REQUIRE(pl__sdp_build(&l, &sdp) == 0);
    CHECK(strstr(sdp, "m=application 9 DTLS/SCTP 5000\r\n") != NULL);
    CHECK(strstr(sdp, "a=sctpmap:5000 webrtc-datachannel 65535\r\n") != NULL);
    CHECK(strstr(sdp, "a=sctp-port") == NULL);
    REQUIRE(pl__sdp_parse(sdp, &r) == 0);
    CHECK_EQ_INT(r.legacy, 1);
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_ACTIVE);
    CHECK_EQ_INT(r.end_of_candidates, 1);
    REQUIRE(r.ncand == 2);
    CHECK_EQ_STR(r.cand[0], two_cands[0]);
    CHECK_EQ_STR(r.cand[1], two_cands[1]);
    pl__sdp_remote_free(&r);
    free(sdp);
}

static int check(const char *in)
{
    char out[PL__SDP_CANDIDATE_MAX + 16];
    return pl__sdp_candidate_check(in, out, sizeof out);
}

static void test_candidates(void)
{
    char out[PL__SDP_CANDIDATE_MAX + 16];
    /* Chromium's trickled form, and the a= form with CRLF and spaces. */
    CHECK_EQ_INT(pl__sdp_candidate_check("candidate:870617281 1 udp 2113937151 192.0.2.2 58548 "
                                         "typ host generation 0 ufrag 4xJ6 network-cost 999",
                                         out, sizeof out),
                 0);
    CHECK_EQ_STR(out, "candidate:870617281 1 udp 2113937151 192.0.2.2 58548 typ host "
                      "generation 0 ufrag 4xJ6 network-cost 999");
    CHECK_EQ_INT(
        pl__sdp_candidate_check(" a=candidate:1  1 UDP 5 ::1 9  typ host \r\n", out, sizeof out),
        0);
    CHECK_EQ_STR(out, "candidate:1 1 UDP 5 ::1 9 typ host");
    /* Unusable: dropped quietly. */
    CHECK_EQ_INT(check("candidate:1 1 udp 5 3f1c2b9e-1d2c-4e1f-9a7b-1c2d3e4f5a6b.local 9 typ host"),
                 1);
    CHECK_EQ_INT(check("candidate:1 1 tcp 5 127.0.0.1 9 typ host tcptype active"), 1);
    CHECK_EQ_INT(check("candidate:1 2 udp 5 127.0.0.1 9 typ host"), 1);
    CHECK_EQ_INT(check("candidate:1 1 udp 5 example.org 9 typ host"), 1);
    /* Garbage. */
    CHECK_EQ_INT(check(NULL), PARLEY_EPROTO);
    CHECK_EQ_INT(check(""), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("hello"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp 5 127.0.0.1 9 typ"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp 5 127.0.0.1 9 typ host generation"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp 5 127.0.0.1 9 kind host"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp 5 127.0.0.1 9 typ bogus"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp 5 127.0.0.1 70000 typ host"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp x 127.0.0.1 9 typ host"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 udp 99999999999 127.0.0.1 9 typ host"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 0 udp 5 127.0.0.1 9 typ host"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:1 1 sctp 5 127.0.0.1 9 typ host"), PARLEY_EPROTO);
    CHECK_EQ_INT(check("candidate:f@o 1 udp 5 127.0.0.1 9 typ host"), PARLEY_EPROTO);
    char big[PL__SDP_CANDIDATE_MAX + 64];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "candidate:", 10);
    CHECK_EQ_INT(check(big), PARLEY_EPROTO);
    /* Too many tokens. */
    char many[400] = "candidate:1 1 udp 5 127.0.0.1 9 typ host";
    for (int i = 0; i < 20; i++)
        strcat(many, " k v");
    CHECK_EQ_INT(check(many), PARLEY_EPROTO);
    /* A buffer too small for the normalised line. */
    char tiny[8];
    CHECK_EQ_INT(
        pl__sdp_candidate_check("candidate:1 1 udp 5 127.0.0.1 9 typ host", tiny, sizeof tiny),
        PARLEY_EPROTO);
}

/* Replaces the first occurrence of what in src by with (test helper). */
static char *replace(const char *src, const char *what, const char *with)
{
    const char *p = strstr(src, what);
    if (!p)
        return NULL;
    size_t n = strlen(src) - strlen(what) + strlen(with) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(p - src), src, with, p + strlen(what));
    return out;
}

static int parse_rc(const char *sdp)
{
    pl__sdp_remote_t r;
    int rc = pl__sdp_parse(sdp, &r);
    if (rc == 0)
        pl__sdp_remote_free(&r);
    return rc;
}

static void test_hostile(void)
{
    CHECK_EQ_INT(parse_rc(NULL), PARLEY_EPROTO);
    CHECK_EQ_INT(parse_rc(""), PARLEY_EPROTO);
    CHECK_EQ_INT(parse_rc("\x01\x02\xff garbage\n=\n\n\r\nm=\na=\n"), PARLEY_EPROTO);
    /* Each required piece missing. */
    char *s = replace(chromium_answer, "a=fingerprint:", "a=fingerprintx:");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO);
    free(s);
    s = replace(chromium_answer, "a=ice-ufrag:", "a=ice-ufragx:");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO);
    free(s);
    s = replace(chromium_answer, "a=ice-pwd:", "a=ice-pwdx:");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO);
    free(s);
    s = replace(chromium_answer, "m=application 9", "m=application 0");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO); /* rejected media section */
    free(s);
    s = replace(chromium_answer, "UDP/DTLS/SCTP", "RTP/AVP");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO);
    free(s);
    s = replace(chromium_answer, "a=sctp-port:5000", "a=sctp-port:99999");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO);
    free(s);
    s = replace(chromium_answer, "a=fingerprint:sha-256 B9", "a=fingerprint:sha-256 ZZ");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO); /* the only fingerprint is unreadable */
    free(s);
    /* max-message-size: 0 means "no limit"; absent means 65536; garbage is refused. */
    pl__sdp_remote_t r;
    s = replace(chromium_answer, "a=max-message-size:262144", "a=max-message-size:0");
    REQUIRE(pl__sdp_parse(s, &r) == 0);
    CHECK_EQ_INT(r.max_message_size, 0);
    pl__sdp_remote_free(&r);
    free(s);
    s = replace(chromium_answer, "a=max-message-size:262144\r\n", "");
    REQUIRE(pl__sdp_parse(s, &r) == 0);
    CHECK_EQ_INT(r.max_message_size, 65536);
    pl__sdp_remote_free(&r);
    free(s);
    s = replace(chromium_answer, "a=max-message-size:262144", "a=max-message-size:-1");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO);
    free(s);
    /* Session-level credentials and fingerprint apply to the media section. */
    REQUIRE(pl__sdp_parse("v=0\r\na=ice-ufrag:uuuu\r\na=ice-pwd:pppppppppppppppppppppp\r\n"
                          "a=fingerprint:SHA-256 01:02\r\na=setup:passive\r\n"
                          "m=audio 9 RTP/AVP 0\r\na=ice-ufrag:nope\r\n"
                          "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\n",
                          &r) == 0);
    CHECK_EQ_STR(r.ufrag, "uuuu");
    CHECK_EQ_STR(r.fp[0].alg, "sha-256");
    CHECK_EQ_INT(r.fp[0].len, 2);
    CHECK_EQ_INT(r.setup, PL__SDP_SETUP_PASSIVE);
    CHECK_EQ_STR(r.mid, "data");
    pl__sdp_remote_free(&r);
    /* Too long as a whole. */
    size_t big = PL__SDP_MAX_LEN + 10;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = 0;
    memcpy(huge, chromium_answer, strlen(chromium_answer));
    CHECK_EQ_INT(parse_rc(huge), PARLEY_EPROTO);
    free(huge);
    /* 200 candidates: only PL__SDP_MAX_CANDIDATES kept; over-long lines and values skipped. */
    size_t cap = strlen(chromium_answer) + 200 * 80 + 4096;
    char *many = malloc(cap);
    strcpy(many, chromium_answer);
    for (int i = 0; i < 200; i++) {
        char line[96];
        snprintf(line, sizeof line, "a=candidate:%d 1 udp 5 10.0.%d.%d 9 typ host\r\n", i, i / 250,
                 i % 250 + 1);
        strcat(many, line);
    }
    strcat(many, "a=mid:");
    size_t l = strlen(many);
    memset(many + l, 'm', 1000);
    strcpy(many + l + 1000, "\r\n");
    REQUIRE(pl__sdp_parse(many, &r) == 0);
    CHECK_EQ_INT(r.ncand, PL__SDP_MAX_CANDIDATES);
    CHECK_EQ_STR(r.mid, "0");
    pl__sdp_remote_free(&r);
    free(many);
    s = replace(chromium_answer, "a=mid:0",
                "a=mid:0123456789012345678901234567890123456789012345678901234567890123456789");
    CHECK_EQ_INT(parse_rc(s), PARLEY_EPROTO); /* a mid too long for us */
    free(s);
}

static void test_hex_fingerprint(void)
{
    uint8_t md[64];
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("AB:cd:0F", md, sizeof md), 3);
    CHECK_EQ_INT(md[1], 0xCD);
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("", md, sizeof md), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("A", md, sizeof md), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("AB:", md, sizeof md), 1);
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("AB;CD", md, sizeof md), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("GG", md, sizeof md), PARLEY_EPROTO);
    CHECK_EQ_INT(pl__sdp_parse_hex_fingerprint("AB:CD:EF", md, 2), PARLEY_EPROTO);
}

int main(void)
{
    RUN(test_aiortc_offer);
    RUN(test_aiortc_answer);
    RUN(test_chromium_offer);
    RUN(test_chromium_answer);
    RUN(test_round_trip);
    RUN(test_candidates);
    RUN(test_hostile);
    RUN(test_hex_fingerprint);
    TEST_MAIN();
}
