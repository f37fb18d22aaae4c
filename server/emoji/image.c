/* Image probing for custom emoji uploads (emoji/image.h has the contract).
 *
 * Each format has one walker that goes from the signature to the format's own end: PNG
 * chunk by chunk to IEND (with every CRC), GIF block by block to the trailer (skipping the
 * data sub-blocks without decoding them), WebP chunk by chunk to the RIFF size (and into
 * each ANMF frame). The walkers share a cursor: the bytes, the read position, how many
 * parts have been read and the reason for a refusal. The position never passes the end,
 * so what remains (n - pos) cannot underflow, and every length read from the file is
 * compared with what remains before any byte it covers is touched; the few sums that could
 * wrap (frame offset plus frame size, a RIFF size plus its header) are done in uint64_t.
 *
 * Decisions the header leaves open:
 *   - A non-empty input that is only the start of a signature (1 to 7 bytes of the PNG
 *     signature, "GIF8", "RIFF" without "WEBP" yet) is TRUNCATED rather than UNKNOWN: it is
 *     what a cut upload of such a file looks like. Empty input is UNKNOWN.
 *   - A GIF frame must lie within the logical screen (it may be empty, 0 wide or high):
 *     some decoders grow the canvas to fit a bigger first frame, so a 1x1 screen holding a
 *     60000x60000 frame would get past the 512 px limit the caller enforces on the screen.
 *   - APNG and a WebP with the VP8X animation flag are animated because their container says
 *     so, even with one frame; a GIF is animated when it has more than one frame.
 *   - A WebP chunk that runs past the end of its container (the RIFF size or the ANMF
 *     payload) is MALFORMED, not TRUNCATED: the container's own size says where it ends,
 *     and a file cut short is already TRUNCATED by the RIFF size check.
 *   - Chunks that APNG defines (acTL, fcTL, fdAT) are checked as APNG even where a plain
 *     PNG decoder would skip them: a file that two decoders see differently is refused.
 *   - More than MAX_PARTS chunks, blocks or frames is UNSUPPORTED.
 *   - On a refusal *out is all zeroes (format PL_IMAGE_NONE); on success *why is NULL. */
#include "emoji/image.h"

#include <string.h>

/* No emoji has more parts than this; the cap bounds the work a hostile file can ask for
 * even where each part is only a few bytes long. */
#define MAX_PARTS 100000u

/* PNG's four-byte integers (lengths, width, height, frame counts) stop at 2^31-1. */
#define PNG_INT_MAX 0x7FFFFFFFu

/* Bit 1 of the VP8X flags byte: the file is an animation (ANIM and ANMF chunks). */
#define VP8X_ANIMATION 0x02u

typedef struct {
    const unsigned char *p;
    size_t n;       /* where the current container ends */
    size_t pos;     /* always <= n */
    uint32_t parts; /* chunks, blocks and frames read so far, against MAX_PARTS */
    const char *why;
} cursor_t;

typedef struct {
    const unsigned char *type; /* four letters */
    const unsigned char *data;
    uint32_t len;
} png_chunk_t;

/* What the PNG walker has seen so far: the rules about chunk order depend on it. */
typedef struct {
    uint32_t width, height;
    unsigned char color_type;
    bool seen_ihdr, seen_plte, seen_idat, seen_iend;
    bool idat_ended;       /* a chunk other than IDAT came after an IDAT */
    bool apng;             /* acTL came before the first IDAT */
    uint32_t num_frames;   /* acTL's frame count */
    uint32_t fctl_count;   /* fcTL chunks seen */
    uint32_t next_seq;     /* the sequence number the next fcTL or fdAT must carry */
    bool fdat_allowed;     /* the latest fcTL came after the IDATs, so fdAT carries its data */
    bool frame_needs_data; /* ... and no fdAT has come for it yet */
} png_state_t;

typedef struct {
    const unsigned char *tag; /* the four-character code */
    const unsigned char *data;
    uint32_t size; /* without the padding byte */
} riff_chunk_t;

static int fail(cursor_t *c, int status, const char *why);
static size_t remaining(const cursor_t *c);
static uint32_t be32(const unsigned char *p);
static uint32_t le16(const unsigned char *p);
static uint32_t le24(const unsigned char *p);
static uint32_t le32(const unsigned char *p);
static bool tag_is(const unsigned char *tag, const char *name);
static bool prefix_matches(const unsigned char *p, size_t n, size_t at, const char *magic,
                           size_t len);
static int probe(cursor_t *c, pl_image_info_t *info);

static uint32_t png_crc32(const unsigned char *p, size_t n);
static bool png_type_valid(const unsigned char *type);
static bool png_depth_valid(unsigned color_type, unsigned depth);
static int png_probe(cursor_t *c, pl_image_info_t *info);
static int png_read_chunk(cursor_t *c, png_chunk_t *ch);
static int png_chunk(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_ihdr(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_plte(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_idat(cursor_t *c, png_state_t *s);
static int png_iend(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_actl(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_fctl(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_fctl_placement(cursor_t *c, const png_state_t *s, const unsigned char *d);
static int png_fdat(cursor_t *c, png_state_t *s, const png_chunk_t *ch);
static int png_sequence(cursor_t *c, png_state_t *s, const unsigned char *d);

static int gif_probe(cursor_t *c, pl_image_info_t *info);
static int gif_color_table(cursor_t *c, unsigned packed, const char *why);
static int gif_image(cursor_t *c, uint32_t sw, uint32_t sh);
static int gif_extension(cursor_t *c);
static int gif_sub_blocks(cursor_t *c);

static int webp_probe(cursor_t *c, pl_image_info_t *info);
static int riff_next(cursor_t *c, riff_chunk_t *ch);
static bool is_bitstream(const riff_chunk_t *ch);
static int webp_bitstream(cursor_t *c, const riff_chunk_t *ch, uint32_t *w, uint32_t *h);
static int webp_vp8(cursor_t *c, const riff_chunk_t *ch, uint32_t *w, uint32_t *h);
static int webp_vp8l(cursor_t *c, const riff_chunk_t *ch, uint32_t *w, uint32_t *h);
static int webp_simple(cursor_t *c, const riff_chunk_t *first, pl_image_info_t *info);
static int webp_extended(cursor_t *c, const riff_chunk_t *vp8x, pl_image_info_t *info);
static int webp_still(cursor_t *c, uint32_t cw, uint32_t ch);
static int webp_animation(cursor_t *c, uint32_t cw, uint32_t ch, uint32_t *frames);
static int webp_frame(cursor_t *c, const riff_chunk_t *anmf, uint32_t cw, uint32_t ch);
static int webp_frame_data(cursor_t *c, uint32_t *w, uint32_t *h);

static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

/* ---------------------------------------------------------------------------------------- */
/* Entry points                                                                             */

int pl_image_probe(const unsigned char *p, size_t n, pl_image_info_t *out, const char **why)
{
    pl_image_info_t info;
    memset(&info, 0, sizeof info);
    /* A null pointer holds no bytes, whatever n says. */
    cursor_t c = {.p = p, .n = p ? n : 0};
    int rc = probe(&c, &info);
    if (rc != PL_IMAGE_OK)
        memset(&info, 0, sizeof info);
    if (out)
        *out = info;
    if (why)
        *why = rc == PL_IMAGE_OK ? NULL : c.why;
    return rc;
}

const char *pl_image_mime(pl_image_format_t f)
{
    switch (f) {
    case PL_IMAGE_PNG:
        return "image/png";
    case PL_IMAGE_GIF:
        return "image/gif";
    case PL_IMAGE_WEBP:
        return "image/webp";
    case PL_IMAGE_NONE:
        break;
    }
    return NULL;
}

/* Picks the walker by the signature alone. A signature that is there only in part is a
 * cut file of that format (see the top of the file). */
static int probe(cursor_t *c, pl_image_info_t *info)
{
    const unsigned char *p = c->p;
    size_t n = c->n;
    if (n == 0)
        return fail(c, PL_IMAGE_UNKNOWN, "image: empty");
    if (prefix_matches(p, n, 0, (const char *)png_signature, sizeof png_signature))
        return n >= sizeof png_signature ? png_probe(c, info)
                                         : fail(c, PL_IMAGE_TRUNCATED, "PNG: signature cut short");
    if (prefix_matches(p, n, 0, "GIF87a", 6) || prefix_matches(p, n, 0, "GIF89a", 6))
        return n >= 6 ? gif_probe(c, info)
                      : fail(c, PL_IMAGE_TRUNCATED, "GIF: signature cut short");
    if (prefix_matches(p, n, 0, "RIFF", 4) && prefix_matches(p, n, 8, "WEBP", 4))
        return n >= 12 ? webp_probe(c, info)
                       : fail(c, PL_IMAGE_TRUNCATED, "WebP: RIFF header cut short");
    return fail(c, PL_IMAGE_UNKNOWN, "image: no PNG, GIF or WebP signature");
}

/* ---------------------------------------------------------------------------------------- */
/* Shared helpers                                                                           */

static int fail(cursor_t *c, int status, const char *why)
{
    c->why = why;
    return status;
}

static size_t remaining(const cursor_t *c)
{
    return c->n - c->pos;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le24(const unsigned char *p)
{
    return le16(p) | (uint32_t)p[2] << 16;
}

static uint32_t le32(const unsigned char *p)
{
    return le24(p) | (uint32_t)p[3] << 24;
}

static bool tag_is(const unsigned char *tag, const char *name)
{
    return memcmp(tag, name, 4) == 0;
}

/* Do the bytes of magic at offsets at .. at+len-1 match the input? Those at or past n are
 * not compared, so an input shorter than the signature matches its start. */
static bool prefix_matches(const unsigned char *p, size_t n, size_t at, const char *magic,
                           size_t len)
{
    for (size_t i = 0; i < len && at + i < n; i++)
        if (p[at + i] != (unsigned char)magic[i])
            return false;
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* PNG                                                                                      */

/* CRC-32 as PNG defines it (ISO 3309, reflected polynomial 0xEDB88320), four bits at a
 * time: a 16-entry table is small enough to write out, takes a quarter of the bit loop's
 * steps, and needs no table built at run time (and so no once-only initialisation). */
static uint32_t png_crc32(const unsigned char *p, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
        0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
        0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
    };
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 15];
        crc = (crc >> 4) ^ nibble[crc & 15];
    }
    return ~crc;
}

/* Chunk types are four ASCII letters; anything else means the walk has lost its place. */
static bool png_type_valid(const unsigned char *type)
{
    for (int i = 0; i < 4; i++) {
        unsigned char l = type[i] | 0x20;
        if (l < 'a' || l > 'z')
            return false;
    }
    return true;
}

/* The bit depths each colour type allows (PNG spec, table 11.1), one bit per depth. */
static bool png_depth_valid(unsigned color_type, unsigned depth)
{
    static const uint32_t allowed[7] = {
        [0] = 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8 | 1u << 16, /* greyscale */
        [2] = 1u << 8 | 1u << 16,                               /* truecolour */
        [3] = 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8,            /* indexed */
        [4] = 1u << 8 | 1u << 16,                               /* greyscale with alpha */
        [6] = 1u << 8 | 1u << 16,                               /* truecolour with alpha */
    };
    return color_type < 7 && depth < 32 && (allowed[color_type] >> depth & 1u);
}

static int png_probe(cursor_t *c, pl_image_info_t *info)
{
    png_state_t s;
    memset(&s, 0, sizeof s);
    c->pos = sizeof png_signature;
    while (!s.seen_iend) {
        png_chunk_t ch;
        int rc = png_read_chunk(c, &ch);
        if (rc == PL_IMAGE_OK)
            rc = png_chunk(c, &s, &ch);
        if (rc != PL_IMAGE_OK)
            return rc;
    }
    if (remaining(c) != 0)
        return fail(c, PL_IMAGE_TRAILING, "PNG: bytes after IEND");
    info->format = PL_IMAGE_PNG;
    info->width = s.width;
    info->height = s.height;
    info->animated = s.apng;
    info->frames = s.apng ? s.num_frames : 1;
    return PL_IMAGE_OK;
}

/* Frames the chunk at the cursor (length, type, data, CRC), checks its CRC and moves past
 * it. The length is checked against PNG's limit before it is compared with what remains,
 * so a huge length is MALFORMED however long the file is. */
static int png_read_chunk(cursor_t *c, png_chunk_t *ch)
{
    if (++c->parts > MAX_PARTS)
        return fail(c, PL_IMAGE_UNSUPPORTED, "PNG: more than 100000 chunks");
    if (remaining(c) == 0)
        return fail(c, PL_IMAGE_TRUNCATED, "PNG: ends before IEND");
    if (remaining(c) < 8)
        return fail(c, PL_IMAGE_TRUNCATED, "PNG: chunk header runs past the end");
    const unsigned char *h = c->p + c->pos;
    uint32_t len = be32(h);
    if (len > PNG_INT_MAX)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: chunk length above 2^31-1");
    if (!png_type_valid(h + 4))
        return fail(c, PL_IMAGE_MALFORMED, "PNG: chunk type is not four letters");
    if (remaining(c) < 12 || len > remaining(c) - 12)
        return fail(c, PL_IMAGE_TRUNCATED, "PNG: chunk runs past the end");
    if (png_crc32(h + 4, (size_t)len + 4) != be32(h + 8 + len))
        return fail(c, PL_IMAGE_MALFORMED,
                    tag_is(h + 4, "IHDR") ? "PNG: IHDR CRC mismatch" : "PNG: chunk CRC mismatch");
    ch->type = h + 4;
    ch->data = h + 8;
    ch->len = len;
    c->pos += (size_t)len + 12;
    return PL_IMAGE_OK;
}

/* Applies the ordering rules every chunk is subject to, then the chunk's own. Ancillary
 * chunks other than APNG's are skipped unread; an unknown critical chunk (upper-case
 * first letter) is one a decoder must refuse, so the probe does too. */
static int png_chunk(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    bool is_idat = tag_is(ch->type, "IDAT");
    if (!s->seen_ihdr && !tag_is(ch->type, "IHDR"))
        return fail(c, PL_IMAGE_MALFORMED, "PNG: IHDR is not the first chunk");
    if (s->seen_idat && !is_idat)
        s->idat_ended = true;
    if (tag_is(ch->type, "IHDR"))
        return png_ihdr(c, s, ch);
    if (tag_is(ch->type, "PLTE"))
        return png_plte(c, s, ch);
    if (is_idat)
        return png_idat(c, s);
    if (tag_is(ch->type, "IEND"))
        return png_iend(c, s, ch);
    if (tag_is(ch->type, "acTL"))
        return png_actl(c, s, ch);
    if (tag_is(ch->type, "fcTL"))
        return png_fctl(c, s, ch);
    if (tag_is(ch->type, "fdAT"))
        return png_fdat(c, s, ch);
    if (!(ch->type[0] & 0x20))
        return fail(c, PL_IMAGE_UNSUPPORTED, "PNG: unknown critical chunk");
    return PL_IMAGE_OK;
}

static int png_ihdr(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    const unsigned char *d = ch->data;
    if (s->seen_ihdr)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: second IHDR");
    if (ch->len != 13)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: IHDR length is not 13");
    uint32_t w = be32(d), h = be32(d + 4);
    if (w == 0 || h == 0)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: zero width or height");
    if (w > PNG_INT_MAX || h > PNG_INT_MAX)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: width or height above 2^31-1");
    if (!png_depth_valid(d[9], d[8]))
        return fail(c, PL_IMAGE_MALFORMED, "PNG: bit depth not allowed for the colour type");
    if (d[10] != 0 || d[11] != 0)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: unknown compression or filter method");
    if (d[12] > 1)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: unknown interlace method");
    s->seen_ihdr = true;
    s->width = w;
    s->height = h;
    s->color_type = d[9];
    return PL_IMAGE_OK;
}

static int png_plte(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    if (s->color_type == 0 || s->color_type == 4)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: PLTE in a greyscale image");
    if (s->seen_plte)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: second PLTE");
    if (s->seen_idat)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: PLTE after IDAT");
    if (ch->len == 0 || ch->len % 3 != 0 || ch->len > 256 * 3)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: PLTE is not 1 to 256 colours");
    s->seen_plte = true;
    return PL_IMAGE_OK;
}

/* The image data is not inflated; only its place in the file is checked. */
static int png_idat(cursor_t *c, png_state_t *s)
{
    if (s->idat_ended)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: IDAT chunks are not consecutive");
    if (s->color_type == 3 && !s->seen_plte)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: indexed image without PLTE");
    s->seen_idat = true;
    return PL_IMAGE_OK;
}

static int png_iend(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    if (ch->len != 0)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: IEND is not empty");
    if (!s->seen_idat)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: no IDAT");
    if (s->frame_needs_data)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fcTL without fdAT");
    if (s->apng && s->fctl_count != s->num_frames)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: acTL frame count differs from the fcTL chunks");
    s->seen_iend = true;
    return PL_IMAGE_OK;
}

/* acTL makes the file an APNG only before the first IDAT; later, decoders disagree on what
 * it means, so it is refused. */
static int png_actl(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    if (s->seen_idat)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: acTL after IDAT");
    if (s->apng)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: second acTL");
    if (ch->len != 8)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: acTL length is not 8");
    uint32_t frames = be32(ch->data);
    if (frames == 0 || frames > PNG_INT_MAX)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: acTL frame count is 0 or above 2^31-1");
    s->apng = true;
    s->num_frames = frames;
    return PL_IMAGE_OK;
}

/* A frame control chunk. One before the IDATs makes the default image the first frame;
 * each one after them opens a frame whose data must come in fdAT chunks. */
static int png_fctl(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    if (!s->apng)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fcTL without acTL");
    if (ch->len != 26)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fcTL length is not 26");
    int rc = png_sequence(c, s, ch->data);
    if (rc != PL_IMAGE_OK)
        return rc;
    if (s->frame_needs_data)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fcTL without fdAT");
    rc = png_fctl_placement(c, s, ch->data);
    if (rc != PL_IMAGE_OK)
        return rc;
    if (ch->data[24] > 2 || ch->data[25] > 1)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: unknown fcTL dispose or blend operation");
    s->fctl_count++;
    s->fdat_allowed = s->seen_idat;
    s->frame_needs_data = s->seen_idat;
    return PL_IMAGE_OK;
}

/* Every frame lies inside the canvas, and the one before the IDATs (the default image)
 * covers it exactly, since the IDAT data has the IHDR size. */
static int png_fctl_placement(cursor_t *c, const png_state_t *s, const unsigned char *d)
{
    uint32_t w = be32(d + 4), h = be32(d + 8), x = be32(d + 12), y = be32(d + 16);
    if (w == 0 || h == 0)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fcTL frame with zero width or height");
    if ((uint64_t)x + w > s->width || (uint64_t)y + h > s->height)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fcTL frame outside the canvas");
    if (s->seen_idat)
        return PL_IMAGE_OK;
    if (s->fctl_count > 0)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: second fcTL before IDAT");
    if (x != 0 || y != 0 || w != s->width || h != s->height)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: first fcTL does not cover the canvas");
    return PL_IMAGE_OK;
}

static int png_fdat(cursor_t *c, png_state_t *s, const png_chunk_t *ch)
{
    if (!s->apng)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fdAT without acTL");
    if (ch->len < 4)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fdAT shorter than its sequence number");
    int rc = png_sequence(c, s, ch->data);
    if (rc != PL_IMAGE_OK)
        return rc;
    if (!s->fdat_allowed)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: fdAT without an fcTL after IDAT");
    s->frame_needs_data = false;
    return PL_IMAGE_OK;
}

/* fcTL and fdAT share one sequence, from 0 without gaps; it is how a decoder detects
 * reordered or missing animation chunks. The parts cap keeps it from wrapping. */
static int png_sequence(cursor_t *c, png_state_t *s, const unsigned char *d)
{
    if (be32(d) != s->next_seq)
        return fail(c, PL_IMAGE_MALFORMED, "PNG: APNG sequence number out of order");
    s->next_seq++;
    return PL_IMAGE_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* GIF                                                                                      */

static int gif_probe(cursor_t *c, pl_image_info_t *info)
{
    if (c->n < 13)
        return fail(c, PL_IMAGE_TRUNCATED, "GIF: logical screen descriptor runs past the end");
    uint32_t w = le16(c->p + 6), h = le16(c->p + 8);
    if (w == 0 || h == 0)
        return fail(c, PL_IMAGE_MALFORMED, "GIF: zero width or height");
    c->pos = 13;
    int rc = gif_color_table(c, c->p[10], "GIF: global colour table runs past the end");
    uint32_t frames = 0;
    while (rc == PL_IMAGE_OK) {
        if (++c->parts > MAX_PARTS)
            return fail(c, PL_IMAGE_UNSUPPORTED, "GIF: more than 100000 blocks");
        if (remaining(c) == 0)
            return fail(c, PL_IMAGE_TRUNCATED, "GIF: ends before the trailer");
        unsigned char introducer = c->p[c->pos++];
        if (introducer == 0x3B)
            break;
        if (introducer == 0x2C) {
            rc = gif_image(c, w, h);
            frames++;
        } else if (introducer == 0x21)
            rc = gif_extension(c);
        else
            rc = fail(c, PL_IMAGE_MALFORMED, "GIF: unknown block type");
    }
    if (rc != PL_IMAGE_OK)
        return rc;
    if (frames == 0)
        return fail(c, PL_IMAGE_MALFORMED, "GIF: no image");
    if (remaining(c) != 0)
        return fail(c, PL_IMAGE_TRAILING, "GIF: bytes after the trailer");
    info->format = PL_IMAGE_GIF;
    info->width = w;
    info->height = h;
    info->animated = frames > 1;
    info->frames = frames;
    return PL_IMAGE_OK;
}

/* Skips the colour table a descriptor's packed byte announces (bit 7 says there is one,
 * the low three bits give 2^(k+1) entries of three bytes). */
static int gif_color_table(cursor_t *c, unsigned packed, const char *why)
{
    if (!(packed & 0x80))
        return PL_IMAGE_OK;
    size_t size = (size_t)3 << ((packed & 7) + 1);
    if (remaining(c) < size)
        return fail(c, PL_IMAGE_TRUNCATED, why);
    c->pos += size;
    return PL_IMAGE_OK;
}

/* An image descriptor (after its 0x2C): position and size, within the logical screen sw x sh
 * (see the top of the file), an optional local colour table, the LZW minimum code size and
 * the compressed data. */
static int gif_image(cursor_t *c, uint32_t sw, uint32_t sh)
{
    if (remaining(c) < 9)
        return fail(c, PL_IMAGE_TRUNCATED, "GIF: image descriptor runs past the end");
    const unsigned char *d = c->p + c->pos;
    if ((uint64_t)le16(d) + le16(d + 4) > sw || (uint64_t)le16(d + 2) + le16(d + 6) > sh)
        return fail(c, PL_IMAGE_MALFORMED, "GIF: frame outside the logical screen");
    unsigned packed = c->p[c->pos + 8];
    c->pos += 9;
    int rc = gif_color_table(c, packed, "GIF: local colour table runs past the end");
    if (rc != PL_IMAGE_OK)
        return rc;
    if (remaining(c) == 0)
        return fail(c, PL_IMAGE_TRUNCATED, "GIF: image data runs past the end");
    unsigned min_code_size = c->p[c->pos++];
    if (min_code_size < 2 || min_code_size > 8)
        return fail(c, PL_IMAGE_MALFORMED, "GIF: LZW minimum code size outside 2..8");
    return gif_sub_blocks(c);
}

/* An extension (after its 0x21): a label and sub-blocks. Only the graphic control
 * extension has a fixed size the probe can check; the others (application, comment, plain
 * text) are skipped as sub-blocks. */
static int gif_extension(cursor_t *c)
{
    if (remaining(c) < 2)
        return fail(c, PL_IMAGE_TRUNCATED, "GIF: extension runs past the end");
    unsigned label = c->p[c->pos++];
    if (label == 0xF9 && c->p[c->pos] != 4)
        return fail(c, PL_IMAGE_MALFORMED, "GIF: graphic control extension size is not 4");
    return gif_sub_blocks(c);
}

/* Walks sub-blocks (a size byte, then that many bytes) to the empty one that ends them.
 * Every step consumes at least the size byte, so the loop ends within n steps without a
 * cap of its own. */
static int gif_sub_blocks(cursor_t *c)
{
    for (;;) {
        if (remaining(c) == 0)
            return fail(c, PL_IMAGE_TRUNCATED, "GIF: data sub-blocks run past the end");
        size_t size = c->p[c->pos++];
        if (size == 0)
            return PL_IMAGE_OK;
        if (remaining(c) < size)
            return fail(c, PL_IMAGE_TRUNCATED, "GIF: data sub-block runs past the end");
        c->pos += size;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* WebP                                                                                     */

/* The RIFF size decides where the file ends: the walk is confined to it (the cursor's end
 * becomes the RIFF end), and whatever follows is reported once the inside has passed. */
static int webp_probe(cursor_t *c, pl_image_info_t *info)
{
    uint32_t riff = le32(c->p + 4);
    if (riff < 4)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: RIFF size below 4");
    if ((uint64_t)riff + 8 > c->n)
        return fail(c, PL_IMAGE_TRUNCATED, "WebP: file shorter than its RIFF size");
    if (riff & 1)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: odd RIFF size");
    size_t file_end = c->n;
    c->n = (size_t)riff + 8;
    c->pos = 12;
    if (remaining(c) == 0)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: RIFF holds no chunk");
    riff_chunk_t first;
    int rc = riff_next(c, &first);
    if (rc != PL_IMAGE_OK)
        return rc;
    if (is_bitstream(&first))
        rc = webp_simple(c, &first, info);
    else if (tag_is(first.tag, "VP8X"))
        rc = webp_extended(c, &first, info);
    else
        rc = fail(c, PL_IMAGE_UNSUPPORTED, "WebP: first chunk is not VP8, VP8L or VP8X");
    if (rc != PL_IMAGE_OK)
        return rc;
    if (c->n < file_end)
        return fail(c, PL_IMAGE_TRAILING, "WebP: bytes after the RIFF size");
    info->format = PL_IMAGE_WEBP;
    return PL_IMAGE_OK;
}

/* Frames the chunk at the cursor and moves past it and its padding byte (chunks start at
 * even offsets, so an odd size is followed by one byte of padding that the container's
 * size must include). */
static int riff_next(cursor_t *c, riff_chunk_t *ch)
{
    if (++c->parts > MAX_PARTS)
        return fail(c, PL_IMAGE_UNSUPPORTED, "WebP: more than 100000 chunks");
    if (remaining(c) < 8)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: chunk header runs past its container");
    const unsigned char *h = c->p + c->pos;
    uint32_t size = le32(h + 4);
    if (size > remaining(c) - 8)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: chunk runs past its container");
    if ((uint64_t)size + (size & 1) > remaining(c) - 8)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: chunk padding byte missing");
    ch->tag = h;
    ch->data = h + 8;
    ch->size = size;
    c->pos += (size_t)size + (size & 1) + 8;
    return PL_IMAGE_OK;
}

static bool is_bitstream(const riff_chunk_t *ch)
{
    return tag_is(ch->tag, "VP8 ") || tag_is(ch->tag, "VP8L");
}

static int webp_bitstream(cursor_t *c, const riff_chunk_t *ch, uint32_t *w, uint32_t *h)
{
    return tag_is(ch->tag, "VP8L") ? webp_vp8l(c, ch, w, h) : webp_vp8(c, ch, w, h);
}

/* A lossy bitstream's 10-byte key frame header (RFC 6386, section 9.1): the frame tag, the
 * start code and two 14-bit sizes (their top two bits are upscaling hints, not size). The
 * tag checks are the ones libwebp makes before it decodes anything. */
static int webp_vp8(cursor_t *c, const riff_chunk_t *ch, uint32_t *w, uint32_t *h)
{
    const unsigned char *d = ch->data;
    if (ch->size < 10)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8 frame header cut short");
    if (d[3] != 0x9D || d[4] != 0x01 || d[5] != 0x2A)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8 start code missing");
    uint32_t tag = le24(d);
    if (tag & 1)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8 frame is not a key frame");
    if ((tag >> 1 & 7) > 3)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8 version above 3");
    if (!(tag >> 4 & 1))
        return fail(c, PL_IMAGE_UNSUPPORTED, "WebP: VP8 frame is not shown");
    if ((tag >> 5) > ch->size - 10)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8 first partition runs past the chunk");
    *w = le16(d + 6) & 0x3FFF;
    *h = le16(d + 8) & 0x3FFF;
    if (*w == 0 || *h == 0)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: zero width or height");
    return PL_IMAGE_OK;
}

/* A lossless bitstream's header: the signature byte, then 14 bits each of width - 1 and
 * height - 1, an alpha hint and a 3-bit version that must be 0. */
static int webp_vp8l(cursor_t *c, const riff_chunk_t *ch, uint32_t *w, uint32_t *h)
{
    if (ch->size < 5)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8L header cut short");
    if (ch->data[0] != 0x2F)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8L signature byte missing");
    uint32_t bits = le32(ch->data + 1);
    if (bits >> 29)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8L version is not 0");
    *w = (bits & 0x3FFF) + 1;
    *h = (bits >> 14 & 0x3FFF) + 1;
    return PL_IMAGE_OK;
}

/* The simple format is the bitstream chunk and nothing else. */
static int webp_simple(cursor_t *c, const riff_chunk_t *first, pl_image_info_t *info)
{
    int rc = webp_bitstream(c, first, &info->width, &info->height);
    if (rc != PL_IMAGE_OK)
        return rc;
    if (remaining(c) != 0)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: chunks after the image in a simple file");
    info->frames = 1;
    return PL_IMAGE_OK;
}

/* The extended format: VP8X gives the canvas (24 bits each of width - 1 and height - 1,
 * with their product limited to 2^32-1) and says whether an animation follows. */
static int webp_extended(cursor_t *c, const riff_chunk_t *vp8x, pl_image_info_t *info)
{
    if (vp8x->size != 10)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: VP8X size is not 10");
    const unsigned char *d = vp8x->data;
    uint32_t cw = le24(d + 4) + 1, ch = le24(d + 7) + 1;
    if ((uint64_t)cw * ch > UINT32_MAX)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: canvas area above 2^32-1");
    bool animated = d[0] & VP8X_ANIMATION;
    uint32_t frames = 1;
    int rc = animated ? webp_animation(c, cw, ch, &frames) : webp_still(c, cw, ch);
    if (rc != PL_IMAGE_OK)
        return rc;
    info->width = cw;
    info->height = ch;
    info->animated = animated;
    info->frames = frames;
    return PL_IMAGE_OK;
}

/* A still extended file: exactly one bitstream, the size of the canvas, among metadata
 * chunks (ICCP, ALPH, EXIF, XMP and unknown ones), which are skipped. */
static int webp_still(cursor_t *c, uint32_t cw, uint32_t ch)
{
    bool have_image = false;
    while (remaining(c) > 0) {
        riff_chunk_t k;
        int rc = riff_next(c, &k);
        if (rc != PL_IMAGE_OK)
            return rc;
        if (tag_is(k.tag, "ANIM") || tag_is(k.tag, "ANMF"))
            return fail(c, PL_IMAGE_MALFORMED, "WebP: ANIM or ANMF without the animation flag");
        if (tag_is(k.tag, "VP8X"))
            return fail(c, PL_IMAGE_MALFORMED, "WebP: second VP8X");
        if (!is_bitstream(&k))
            continue;
        if (have_image)
            return fail(c, PL_IMAGE_MALFORMED, "WebP: more than one image chunk");
        uint32_t w, h;
        rc = webp_bitstream(c, &k, &w, &h);
        if (rc != PL_IMAGE_OK)
            return rc;
        if (w != cw || h != ch)
            return fail(c, PL_IMAGE_MALFORMED, "WebP: image size differs from the VP8X canvas");
        have_image = true;
    }
    if (!have_image)
        return fail(c, PL_IMAGE_UNSUPPORTED, "WebP: VP8X without an image chunk");
    return PL_IMAGE_OK;
}

/* An animation: ANIM (background colour and loop count, 6 bytes), then ANMF frames;
 * metadata chunks may sit among them. A bitstream outside a frame has no place here. */
static int webp_animation(cursor_t *c, uint32_t cw, uint32_t ch, uint32_t *frames)
{
    bool seen_anim = false;
    *frames = 0;
    while (remaining(c) > 0) {
        riff_chunk_t k;
        int rc = riff_next(c, &k);
        if (rc != PL_IMAGE_OK)
            return rc;
        if (tag_is(k.tag, "ANIM")) {
            if (seen_anim)
                return fail(c, PL_IMAGE_MALFORMED, "WebP: second ANIM");
            if (k.size != 6)
                return fail(c, PL_IMAGE_MALFORMED, "WebP: ANIM size is not 6");
            seen_anim = true;
        } else if (tag_is(k.tag, "ANMF")) {
            if (!seen_anim)
                return fail(c, PL_IMAGE_MALFORMED, "WebP: ANMF before ANIM");
            rc = webp_frame(c, &k, cw, ch);
            if (rc != PL_IMAGE_OK)
                return rc;
            ++*frames;
        } else if (is_bitstream(&k) || tag_is(k.tag, "ALPH"))
            return fail(c, PL_IMAGE_MALFORMED, "WebP: image chunk outside ANMF in an animation");
        else if (tag_is(k.tag, "VP8X"))
            return fail(c, PL_IMAGE_MALFORMED, "WebP: second VP8X");
    }
    if (*frames == 0)
        return fail(c, PL_IMAGE_UNSUPPORTED, "WebP: animation without frames");
    return PL_IMAGE_OK;
}

/* One ANMF chunk: a 16-byte header (offset / 2, size - 1, duration, flags) whose frame
 * must fit the canvas, then the frame's own chunks, walked with a cursor confined to the
 * chunk. The frame's bitstream must have the size the header gives. */
static int webp_frame(cursor_t *c, const riff_chunk_t *anmf, uint32_t cw, uint32_t ch)
{
    const unsigned char *d = anmf->data;
    if (anmf->size < 16)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: ANMF header cut short");
    uint64_t x = (uint64_t)le24(d) * 2, y = (uint64_t)le24(d + 3) * 2;
    uint32_t fw = le24(d + 6) + 1, fh = le24(d + 9) + 1;
    if (x + fw > cw || y + fh > ch)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: ANMF frame extends beyond the canvas");
    cursor_t sub = {.p = d + 16, .n = anmf->size - 16, .parts = c->parts};
    uint32_t w = 0, h = 0;
    int rc = webp_frame_data(&sub, &w, &h);
    c->parts = sub.parts;
    if (rc != PL_IMAGE_OK)
        return fail(c, rc, sub.why);
    if (w != fw || h != fh)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: ANMF frame size differs from its image");
    return PL_IMAGE_OK;
}

/* A frame's data: an optional ALPH (only before a lossy bitstream, which has no alpha of
 * its own), exactly one bitstream, and unknown chunks, which are skipped. */
static int webp_frame_data(cursor_t *c, uint32_t *w, uint32_t *h)
{
    bool alph = false, image = false;
    while (remaining(c) > 0) {
        riff_chunk_t k;
        int rc = riff_next(c, &k);
        if (rc != PL_IMAGE_OK)
            return rc;
        if (tag_is(k.tag, "ALPH")) {
            if (alph || image)
                return fail(c, PL_IMAGE_MALFORMED, "WebP: ALPH out of place in ANMF");
            alph = true;
        } else if (is_bitstream(&k)) {
            if (image)
                return fail(c, PL_IMAGE_MALFORMED, "WebP: more than one image in ANMF");
            if (alph && tag_is(k.tag, "VP8L"))
                return fail(c, PL_IMAGE_MALFORMED, "WebP: ALPH before a VP8L image");
            rc = webp_bitstream(c, &k, w, h);
            if (rc != PL_IMAGE_OK)
                return rc;
            image = true;
        }
    }
    if (!image)
        return fail(c, PL_IMAGE_MALFORMED, "WebP: ANMF without an image");
    return PL_IMAGE_OK;
}
