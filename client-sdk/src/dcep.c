/* dcep: see dcep.h. */
#include "dcep.h"

#include <string.h>

#include "parley.h"

static void pl_dcep_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t pl_dcep_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

int pl__dcep_encode_open(const pl__dcep_open_t *o, uint8_t *buf, size_t bufsz)
{
    if (o->label_len > 65535 || o->protocol_len > 65535)
        return PARLEY_EINVAL;
    size_t len = PL__DCEP_OPEN_HEADER + o->label_len + o->protocol_len;
    if (len > bufsz)
        return PARLEY_EINVAL;
    buf[0] = PL__DCEP_OPEN;
    buf[1] = o->channel_type;
    pl_dcep_put16(buf + 2, o->priority);
    pl_dcep_put16(buf + 4, (uint16_t)(o->reliability >> 16));
    pl_dcep_put16(buf + 6, (uint16_t)o->reliability);
    pl_dcep_put16(buf + 8, (uint16_t)o->label_len);
    pl_dcep_put16(buf + 10, (uint16_t)o->protocol_len);
    if (o->label_len)
        memcpy(buf + PL__DCEP_OPEN_HEADER, o->label, o->label_len);
    if (o->protocol_len)
        memcpy(buf + PL__DCEP_OPEN_HEADER + o->label_len, o->protocol, o->protocol_len);
    return (int)len;
}

int pl__dcep_encode_ack(uint8_t *buf, size_t bufsz)
{
    if (bufsz < 1)
        return PARLEY_EINVAL;
    buf[0] = PL__DCEP_ACK;
    return 1;
}

static int pl_dcep_known_type(uint8_t t)
{
    switch (t) {
    case PL__DCEP_RELIABLE:
    case PL__DCEP_RELIABLE_UNORDERED:
    case PL__DCEP_REXMIT:
    case PL__DCEP_REXMIT_UNORDERED:
    case PL__DCEP_TIMED:
    case PL__DCEP_TIMED_UNORDERED:
        return 1;
    }
    return 0;
}

int pl__dcep_decode(const uint8_t *buf, size_t len, int *type, pl__dcep_open_t *o)
{
    if (!buf || len < 1)
        return PARLEY_EPROTO;
    if (buf[0] == PL__DCEP_ACK) {
        /* RFC 8832 section 5.2: the ACK is exactly one byte. */
        if (len != 1)
            return PARLEY_EPROTO;
        *type = PL__DCEP_ACK;
        return 0;
    }
    if (buf[0] != PL__DCEP_OPEN || len < PL__DCEP_OPEN_HEADER)
        return PARLEY_EPROTO;
    size_t ll = pl_dcep_get16(buf + 8), pl = pl_dcep_get16(buf + 10);
    if (PL__DCEP_OPEN_HEADER + ll + pl != len || !pl_dcep_known_type(buf[1]))
        return PARLEY_EPROTO;
    memset(o, 0, sizeof *o);
    o->channel_type = buf[1];
    o->priority = pl_dcep_get16(buf + 2);
    o->reliability = (uint32_t)pl_dcep_get16(buf + 4) << 16 | pl_dcep_get16(buf + 6);
    o->label = buf + PL__DCEP_OPEN_HEADER;
    o->label_len = ll;
    o->protocol = buf + PL__DCEP_OPEN_HEADER + ll;
    o->protocol_len = pl;
    *type = PL__DCEP_OPEN;
    return 0;
}
