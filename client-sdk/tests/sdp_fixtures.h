#ifndef PL_TEST_SDP_FIXTURES_H
#define PL_TEST_SDP_FIXTURES_H

/* Captured on this machine: aiortc 1.4.0 (/usr/bin/python3) and Chromium 156 (headless,
 * --disable-features=WebRtcHideLocalIpsWithMdns). */

/* aiortc's offer for one data channel: the legacy DTLS/SCTP + a=sctpmap form, candidates
 * and end-of-candidates before the ICE credentials, no a=ice-options. */
static const char aiortc_offer[] =
    "v=0\r\n"
    "o=- 4004644032 4004644032 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=msid-semantic:WMS *\r\n"
    "m=application 34658 DTLS/SCTP 5000\r\n"
    "c=IN IP4 192.0.2.2\r\n"
    "a=mid:0\r\n"
    "a=sctpmap:5000 webrtc-datachannel 65535\r\n"
    "a=max-message-size:65536\r\n"
    "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 34658 typ host\r\n"
    "a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 fd00::2 41345 typ host\r\n"
    "a=end-of-candidates\r\n"
    "a=ice-ufrag:iflF\r\n"
    "a=ice-pwd:b7ZphPea2UQqc9KLvDsizj\r\n"
    "a=fingerprint:sha-256 "
    "0E:D0:B0:50:62:D2:75:3E:D3:75:03:3C:66:0C:8D:03:FF:FF:E8:75:02:D1:9E:DF:3B:2A:64:71:5B:D8:A3:"
    "63\r\n"
    "a=setup:actpass\r\n";

/* aiortc's answer to an offer of ours (modern form mirrored, setup active). */
static const char aiortc_answer[] =
    "v=0\r\n"
    "o=- 4004644032 4004644032 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=msid-semantic:WMS *\r\n"
    "m=application 47281 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 192.0.2.2\r\n"
    "a=mid:0\r\n"
    "a=sctp-port:5000\r\n"
    "a=max-message-size:65536\r\n"
    "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 47281 typ host\r\n"
    "a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 fd00::2 47881 typ host\r\n"
    "a=end-of-candidates\r\n"
    "a=ice-ufrag:zVQG\r\n"
    "a=ice-pwd:J1klLOffi10YeHPJZY1knk\r\n"
    "a=fingerprint:sha-256 "
    "8B:9A:78:87:6D:6B:69:29:11:7D:53:F2:42:A7:26:48:FA:D2:5B:26:1A:58:00:AC:89:4F:1E:05:A7:DF:FC:"
    "F3\r\n"
    "a=setup:active\r\n";

/* Chromium's offer once gathering was over (candidates inside, with extension tokens). */
static const char chromium_offer[] = "v=0\r\n"
                                     "o=- 4637179477396794099 2 IN IP4 127.0.0.1\r\n"
                                     "s=-\r\n"
                                     "t=0 0\r\n"
                                     "a=group:BUNDLE 0\r\n"
                                     "a=extmap-allow-mixed\r\n"
                                     "a=msid-semantic: WMS\r\n"
                                     "m=application 58548 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                                     "c=IN IP4 192.0.2.2\r\n"
                                     "a=candidate:870617281 1 udp 2113937151 192.0.2.2 58548 typ "
                                     "host generation 0 network-cost 999\r\n"
                                     "a=candidate:882310257 1 udp 2113942271 fd00::2 44927 typ "
                                     "host generation 0 network-cost 999\r\n"
                                     "a=ice-ufrag:4xJ6\r\n"
                                     "a=ice-pwd:zdNWhuO/HjlpxIH3ALdHTP1k\r\n"
                                     "a=ice-options:trickle\r\n"
                                     "a=fingerprint:sha-256 "
                                     "ED:1D:B4:CF:77:4A:E9:41:20:DE:97:F3:B3:F1:6F:F1:F6:69:9C:D8:"
                                     "84:C7:D1:42:2C:A7:62:B9:AC:76:C5:8F\r\n"
                                     "a=setup:actpass\r\n"
                                     "a=mid:0\r\n"
                                     "a=sctp-port:5000\r\n"
                                     "a=max-message-size:262144\r\n";

/* Chromium's answer to an offer of ours (no candidates: it trickles). */
static const char chromium_answer[] = "v=0\r\n"
                                      "o=- 7813177111704627355 2 IN IP4 127.0.0.1\r\n"
                                      "s=-\r\n"
                                      "t=0 0\r\n"
                                      "a=group:BUNDLE 0\r\n"
                                      "a=msid-semantic: WMS\r\n"
                                      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                                      "c=IN IP4 0.0.0.0\r\n"
                                      "a=ice-ufrag:vkuj\r\n"
                                      "a=ice-pwd:hdjd1fVHJ7UfuWbSN0GU3Pos\r\n"
                                      "a=ice-options:trickle\r\n"
                                      "a=fingerprint:sha-256 "
                                      "B9:49:BF:E5:70:15:79:BE:E0:1E:35:9E:4B:E5:EC:44:0D:A4:53:53:"
                                      "21:B0:53:9B:77:97:AF:96:D6:16:3F:87\r\n"
                                      "a=setup:active\r\n"
                                      "a=mid:0\r\n"
                                      "a=sctp-port:5000\r\n"
                                      "a=max-message-size:262144\r\n";

#endif
