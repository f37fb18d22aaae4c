/* Unit tests for server/emoji/image.c, the upload probe, through its public interface only
 * (the library's own object is what is tested, and api/emoji.c links the same one).
 *
 * Every image is assembled here byte by byte: PNG chunks with CRCs from a bitwise CRC-32
 * written independently of the probe's table, GIF blocks, RIFF chunks with their padding.
 * Sections: valid images of every kind; signatures and their prefixes; every valid image
 * cut at every length; trailing bytes and polyglots; hostile headers per format, each with
 * its exact status; the loop caps; a deterministic fuzz loop (PL_IMAGE_FUZZ_ITERS overrides
 * its 20,000 mutations); and files written by ImageMagick's /usr/bin/convert.
 *
 * Each probe gets its own heap copy of exactly the bytes under test, so a read past the end
 * is caught by AddressSanitizer in the sanitized build. */
#include "test.h"

#include "emoji/image.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Byte buffers                                                                             */

typedef struct {
    unsigned char *b;
    size_t n, cap;
} img_t;

static void put(img_t *m, const void *p, size_t n)
{
    if (m->n + n > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->n + n)
            cap *= 2;
        m->b = realloc(m->b, cap);
        if (!m->b)
            abort();
        m->cap = cap;
    }
    if (n)
        memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put8(img_t *m, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(m, &c, 1);
}

static void put16le(img_t *m, uint32_t v)
{
    put8(m, v & 0xFF);
    put8(m, v >> 8 & 0xFF);
}

static void put24le(img_t *m, uint32_t v)
{
    put16le(m, v & 0xFFFF);
    put8(m, v >> 16 & 0xFF);
}

static void put32le(img_t *m, uint32_t v)
{
    put16le(m, v & 0xFFFF);
    put16le(m, v >> 16);
}

static void put32be(img_t *m, uint32_t v)
{
    put8(m, v >> 24);
    put8(m, v >> 16 & 0xFF);
    put8(m, v >> 8 & 0xFF);
    put8(m, v & 0xFF);
}

static void puts_(img_t *m, const char *s)
{
    put(m, s, strlen(s));
}

static void set32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void set32be(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void img_free(img_t *m)
{
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* Probes an exact-size heap copy of p[0..n) (see the top of the file). */
static int probe_copy(const unsigned char *p, size_t n, pl_image_info_t *info, const char **why)
{
    unsigned char *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    if (n)
        memcpy(copy, p, n);
    int rc = pl_image_probe(n ? copy : NULL, n, info, why);
    free(copy);
    return rc;
}

static int probe(const img_t *m)
{
    pl_image_info_t info;
    return probe_copy(m->b, m->n, &info, NULL);
}

/* Probes m, checks the status, and frees m: most hostile cases are one line each. */
#define EXPECT(m, status)                                                                          \
    do {                                                                                           \
        CHECK_EQ_INT(probe(&(m)), (status));                                                       \
        img_free(&(m));                                                                            \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* PNG builders                                                                             */

/* CRC-32 one bit at a time, straight from the definition, so the probe's table is checked
 * against something that shares no code with it. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void png_chunk(img_t *m, const char *type, const void *data, size_t len)
{
    put32be(m, (uint32_t)len);
    size_t start = m->n;
    put(m, type, 4);
    put(m, data, len);
    put32be(m, crc32_bitwise(m->b + start, len + 4));
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

static void png_ihdr_full(img_t *m, uint32_t w, uint32_t h, unsigned depth, unsigned color_type,
                          unsigned interlace)
{
    put(m, png_sig, sizeof png_sig);
    unsigned char d[13];
    set32be(d, w);
    set32be(d + 4, h);
    d[8] = (unsigned char)depth;
    d[9] = (unsigned char)color_type;
    d[10] = d[11] = 0;
    d[12] = (unsigned char)interlace;
    png_chunk(m, "IHDR", d, sizeof d);
}

/* The signature and an RGBA IHDR. */
static void png_start(img_t *m, uint32_t w, uint32_t h)
{
    png_ihdr_full(m, w, h, 8, 6, 0);
}

/* A few bytes of image data: the probe does not inflate them. */
static void png_idat(img_t *m)
{
    png_chunk(m, "IDAT", "\x78\x9c\x63\x00\x00", 5);
}

static void png_iend(img_t *m)
{
    png_chunk(m, "IEND", NULL, 0);
}

static void png_actl(img_t *m, uint32_t frames)
{
    unsigned char d[8];
    set32be(d, frames);
    set32be(d + 4, 0); /* loop forever */
    png_chunk(m, "acTL", d, sizeof d);
}

static void png_fctl_ops(img_t *m, uint32_t seq, uint32_t w, uint32_t h, uint32_t x, uint32_t y,
                         unsigned dispose, unsigned blend)
{
    unsigned char d[26];
    set32be(d, seq);
    set32be(d + 4, w);
    set32be(d + 8, h);
    set32be(d + 12, x);
    set32be(d + 16, y);
    d[20] = 0, d[21] = 1, d[22] = 0, d[23] = 10; /* a delay of 1/10 s */
    d[24] = (unsigned char)dispose;
    d[25] = (unsigned char)blend;
    png_chunk(m, "fcTL", d, sizeof d);
}

static void png_fctl(img_t *m, uint32_t seq, uint32_t w, uint32_t h, uint32_t x, uint32_t y)
{
    png_fctl_ops(m, seq, w, h, x, y, 0, 0);
}

static void png_fdat(img_t *m, uint32_t seq)
{
    unsigned char d[9] = {0, 0, 0, 0, 0x78, 0x9c, 0x63, 0x00, 0x00};
    set32be(d, seq);
    png_chunk(m, "fdAT", d, sizeof d);
}

static void make_png(img_t *m, uint32_t w, uint32_t h)
{
    png_start(m, w, h);
    png_chunk(m, "tEXt", "Comment\0hello", 13);
    png_idat(m);
    png_iend(m);
}

/* An indexed PNG: PLTE before IDAT, split over two IDATs. */
static void make_png_indexed(img_t *m)
{
    png_ihdr_full(m, 5, 3, 4, 3, 1);
    png_chunk(m, "PLTE", "\xff\x00\x00\x00\xff\x00", 6);
    png_idat(m);
    png_idat(m);
    png_iend(m);
}

/* Two frames: the default image is the first (fcTL before IDAT), the second a 2x2 patch. */
static void make_apng(img_t *m)
{
    png_start(m, 4, 4);
    png_actl(m, 2);
    png_fctl(m, 0, 4, 4, 0, 0);
    png_idat(m);
    png_fctl(m, 1, 2, 2, 1, 1);
    png_fdat(m, 2);
    png_iend(m);
}

/* ---------------------------------------------------------------------------------------- */
/* GIF builders                                                                             */

static void gif_start(img_t *m, const char *version, uint32_t w, uint32_t h)
{
    puts_(m, version);
    put16le(m, w);
    put16le(m, h);
    put8(m, 0x80); /* a global colour table of 2 entries */
    put8(m, 0);
    put8(m, 0);
    put(m, "\x00\x00\x00\xff\xff\xff", 6);
}

static void gif_netscape(img_t *m)
{
    put(m, "\x21\xff\x0b", 3);
    puts_(m, "NETSCAPE2.0");
    put(m, "\x03\x01\x00\x00\x00", 5);
}

static void gif_gce(img_t *m)
{
    put(m, "\x21\xf9\x04\x04\x0a\x00\x00\x00", 8);
}

/* An image descriptor with the given LZW minimum code size and two data sub-blocks. */
static void gif_frame_lzw(img_t *m, uint32_t x, uint32_t y, uint32_t w, uint32_t h, unsigned lzw)
{
    put8(m, 0x2C);
    put16le(m, x);
    put16le(m, y);
    put16le(m, w);
    put16le(m, h);
    put8(m, 0);
    put8(m, lzw);
    put(m, "\x02\x44\x01\x01\x00\x00", 6);
}

static void gif_frame(img_t *m, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    gif_frame_lzw(m, x, y, w, h, 2);
}

static void make_gif(img_t *m, const char *version, uint32_t w, uint32_t h, int frames)
{
    gif_start(m, version, w, h);
    if (frames > 1)
        gif_netscape(m);
    for (int i = 0; i < frames; i++) {
        if (frames > 1)
            gif_gce(m);
        gif_frame(m, 0, 0, w, h);
    }
    put8(m, 0x3B);
}

/* ---------------------------------------------------------------------------------------- */
/* WebP builders                                                                            */

static void riff_start(img_t *m)
{
    puts_(m, "RIFF");
    put32le(m, 0);
    puts_(m, "WEBP");
}

/* Writes the RIFF size: everything after its own field. */
static void riff_end(img_t *m)
{
    set32le(m->b + 4, (uint32_t)(m->n - 8));
}

static void riff_chunk(img_t *m, const char *tag, const void *data, size_t len)
{
    put(m, tag, 4);
    put32le(m, (uint32_t)len);
    put(m, data, len);
    if (len & 1)
        put8(m, 0);
}

/* A lossy key frame header (tag, start code, sizes) and a 4-byte first partition. */
static void vp8_data(img_t *d, uint32_t w, uint32_t h, uint32_t tag)
{
    put24le(d, tag);
    put(d, "\x9d\x01\x2a", 3);
    put16le(d, w);
    put16le(d, h);
    put(d, "\x00\x00\x00\x00", 4);
}

/* Key frame, version 0, shown, first partition of 4 bytes. */
#define VP8_TAG (0u | 0u << 1 | 1u << 4 | 4u << 5)

static void vp8l_data(img_t *d, uint32_t w, uint32_t h, uint32_t version)
{
    put8(d, 0x2F);
    put32le(d, (w - 1) | (h - 1) << 14 | 1u << 28 | version << 29);
    put(d, "\x00\x00\x00\x01", 4); /* 9 bytes in all: the chunk gets a padding byte */
}

static void webp_vp8_chunk(img_t *m, uint32_t w, uint32_t h)
{
    img_t d = {0};
    vp8_data(&d, w, h, VP8_TAG);
    riff_chunk(m, "VP8 ", d.b, d.n);
    img_free(&d);
}

static void webp_vp8l_chunk(img_t *m, uint32_t w, uint32_t h)
{
    img_t d = {0};
    vp8l_data(&d, w, h, 0);
    riff_chunk(m, "VP8L", d.b, d.n);
    img_free(&d);
}

static void webp_vp8x(img_t *m, unsigned flags, uint32_t cw, uint32_t ch)
{
    img_t d = {0};
    put8(&d, flags);
    put24le(&d, 0);
    put24le(&d, cw - 1);
    put24le(&d, ch - 1);
    riff_chunk(m, "VP8X", d.b, d.n);
    img_free(&d);
}

static void webp_anim(img_t *m)
{
    riff_chunk(m, "ANIM", "\xff\xff\xff\xff\x00\x00", 6);
}

/* An ANMF frame at (x, y) (even numbers) whose bitstream has the frame's own size, or
 * img_w x img_h where a test wants the two to disagree. */
static void webp_anmf_img(img_t *m, uint32_t x, uint32_t y, uint32_t w, uint32_t h, bool lossless,
                          uint32_t img_w, uint32_t img_h)
{
    img_t d = {0};
    put24le(&d, x / 2);
    put24le(&d, y / 2);
    put24le(&d, w - 1);
    put24le(&d, h - 1);
    put24le(&d, 100); /* duration, ms */
    put8(&d, 0);
    if (lossless)
        webp_vp8l_chunk(&d, img_w, img_h);
    else {
        riff_chunk(&d, "ALPH", "\x00\xff", 2);
        webp_vp8_chunk(&d, img_w, img_h);
    }
    riff_chunk(m, "ANMF", d.b, d.n);
    img_free(&d);
}

static void webp_anmf(img_t *m, uint32_t x, uint32_t y, uint32_t w, uint32_t h, bool lossless)
{
    webp_anmf_img(m, x, y, w, h, lossless, w, h);
}

static void make_webp_lossy(img_t *m, uint32_t w, uint32_t h)
{
    riff_start(m);
    webp_vp8_chunk(m, w, h);
    riff_end(m);
}

static void make_webp_lossless(img_t *m, uint32_t w, uint32_t h)
{
    riff_start(m);
    webp_vp8l_chunk(m, w, h);
    riff_end(m);
}

/* VP8X (alpha and EXIF flags) + ALPH + VP8 + EXIF. */
static void make_webp_extended(img_t *m, uint32_t w, uint32_t h)
{
    riff_start(m);
    webp_vp8x(m, 0x10 | 0x08, w, h);
    riff_chunk(m, "ALPH", "\x00\xff\xff", 3);
    webp_vp8_chunk(m, w, h);
    riff_chunk(m, "EXIF", "II*\0", 4);
    riff_end(m);
}

/* An 8x8 canvas: a full lossless frame, then a 4x4 lossy one with alpha at (2, 4). */
static void make_webp_animated(img_t *m)
{
    riff_start(m);
    webp_vp8x(m, 0x02 | 0x10, 8, 8);
    webp_anim(m);
    webp_anmf(m, 0, 0, 8, 8, true);
    webp_anmf(m, 2, 4, 4, 4, false);
    riff_end(m);
}

/* ---------------------------------------------------------------------------------------- */
/* Scripts                                                                                  */

/* Most hostile cases differ from a valid file in one chunk, so each is written as a line of
 * tokens, one per chunk or block, and one table per format holds them with the status they
 * must get. The tokens are listed with each format's script function. */
typedef struct {
    const char *script;
    int want;
} script_case_t;

/* The unsigned numbers in s, in order, whatever separates them ("1:2x2+3+0" -> 1 2 2 3 0);
 * those not present stay as the caller set them. */
static void numbers(const char *s, uint32_t *v, int max)
{
    int k = 0;
    while (*s && k < max) {
        if (*s >= '0' && *s <= '9') {
            char *end;
            v[k++] = (uint32_t)strtoul(s, &end, 10);
            s = end;
        } else
            s++;
    }
}

/* Hex pairs after "$" as raw bytes ("$21f904" -> 21 f9 04). */
static void put_hex(img_t *m, const char *hex)
{
    for (; hex[0] && hex[1]; hex += 2) {
        char byte[3] = {hex[0], hex[1], 0};
        put8(m, (unsigned)strtoul(byte, NULL, 16));
    }
}

/* PNG tokens: S (signature + IHDR, 4x4 RGBA), s (signature), h (IHDR, 4x4 RGBA),
 * H<w>x<h>/<depth>/<colour type>[/<interlace>] (signature + IHDR), P<length>
 * (PLTE), A<frames> (acTL), a (acTL 4 bytes long), F<seq>:<w>x<h>+<x>+<y>[/<dispose>/<blend>]
 * (fcTL), I (IDAT), D<seq> (fdAT), d (fdAT 3 bytes long), T (tEXt), E (IEND), e (IEND with
 * a byte of data), #<type> (a chunk of that type holding one byte). */
static void png_token(img_t *m, const char *t)
{
    static const unsigned char zeros[800];
    uint32_t v[7] = {0, 0, 0, 0, 0, 0, 0};
    numbers(t + 1, v, 7);
    switch (t[0]) {
    case 'S':
        png_start(m, 4, 4);
        break;
    case 's':
        put(m, png_sig, sizeof png_sig);
        break;
    case 'h':
        png_chunk(m, "IHDR", "\0\0\0\4\0\0\0\4\x08\x06\0\0\0", 13);
        break;
    case 'H':
        png_ihdr_full(m, v[0], v[1], v[2], v[3], v[4]);
        break;
    case 'P':
        png_chunk(m, "PLTE", zeros, v[0]);
        break;
    case 'A':
        png_actl(m, v[0]);
        break;
    case 'a':
        png_chunk(m, "acTL", "\0\0\0\1", 4);
        break;
    case 'F':
        png_fctl_ops(m, v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
        break;
    case 'I':
        png_idat(m);
        break;
    case 'D':
        png_fdat(m, v[0]);
        break;
    case 'd':
        png_chunk(m, "fdAT", "\0\0\0", 3);
        break;
    case 'T':
        png_chunk(m, "tEXt", "a\0b", 3);
        break;
    case 'E':
        png_iend(m);
        break;
    case 'e':
        png_chunk(m, "IEND", "x", 1);
        break;
    case '#':
        png_chunk(m, t + 1, "x", 1);
        break;
    default:
        abort();
    }
}

/* GIF tokens: G<w>x<h> (GIF89a header, 2-colour global table), f<x>,<y>:<w>x<h>[/<lzw>]
 * (an image, LZW minimum code size 2 unless given), N (NETSCAPE loop), g (graphic control),
 * ; (trailer), $<hex> (raw bytes). */
static void gif_token(img_t *m, const char *t)
{
    uint32_t v[5] = {0, 0, 0, 0, 2};
    numbers(t + 1, v, 5);
    switch (t[0]) {
    case 'G':
        gif_start(m, "GIF89a", v[0], v[1]);
        break;
    case 'f':
        gif_frame_lzw(m, v[0], v[1], v[2], v[3], v[4]);
        break;
    case 'N':
        gif_netscape(m);
        break;
    case 'g':
        gif_gce(m);
        break;
    case ';':
        put8(m, 0x3B);
        break;
    case '$':
        put_hex(m, t + 1);
        break;
    default:
        abort();
    }
}

/* WebP tokens, inside a RIFF header the script function adds: X<flags>:<w>x<h> (VP8X;
 * flags 2 is the animation), x (VP8X 12 bytes long), N (ANIM), n (ANIM 8 bytes long),
 * ML<x>,<y>:<w>x<h>[=<w>x<h>] and MY... (ANMF with a lossless, or lossy + ALPH, image of the
 * frame's size or the one after "="), L<w>x<h> (VP8L), Y<w>x<h> (VP8), #<tag> (a chunk of
 * that tag holding 4 bytes). */
static void webp_token(img_t *m, const char *t)
{
    uint32_t v[6] = {0, 0, 0, 0, 0, 0};
    numbers(t + 1, v, 6);
    switch (t[0]) {
    case 'X':
        webp_vp8x(m, v[0], v[1], v[2]);
        break;
    case 'x':
        riff_chunk(m, "VP8X", "\0\0\0\0\3\0\0\3\0\0\0\0", 12);
        break;
    case 'N':
        webp_anim(m);
        break;
    case 'n':
        riff_chunk(m, "ANIM", "\0\0\0\0\0\0\0\0", 8);
        break;
    case 'M':
        if (!strchr(t, '='))
            v[4] = v[2], v[5] = v[3];
        webp_anmf_img(m, v[0], v[1], v[2], v[3], t[1] == 'L', v[4], v[5]);
        break;
    case 'L':
        webp_vp8l_chunk(m, v[0], v[1]);
        break;
    case 'Y':
        webp_vp8_chunk(m, v[0], v[1]);
        break;
    case '#':
        riff_chunk(m, t + 1, "abcd", 4);
        break;
    default:
        abort();
    }
}

static void webp_script_token(img_t *m, const char *t)
{
    if (m->n == 0)
        riff_start(m);
    webp_token(m, t);
    riff_end(m);
}

/* Builds m from a script, token by token. */
static void build_script(img_t *m, void (*token)(img_t *, const char *), const char *script)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", script);
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        token(m, t);
}

/* Builds the script, probes it and checks the status and, when given, the reason. */
static void check_script(void (*token)(img_t *, const char *), const char *script, int want,
                         const char *want_why)
{
    img_t m = {0};
    build_script(&m, token, script);
    const char *why = NULL;
    pl_image_info_t info;
    int rc = probe_copy(m.b, m.n, &info, &why);
    if (rc != want)
        fprintf(stderr, "  \"%s\": %d (%s), wanted %d\n", script, rc, why ? why : "ok", want);
    CHECK_EQ_INT(rc, want);
    if (want_why)
        CHECK_EQ_STR(why, want_why);
    img_free(&m);
}

static void run_cases(void (*token)(img_t *, const char *), const script_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_script(token, cases[i].script, cases[i].want, NULL);
}

#define RUN_CASES(token, cases) run_cases(token, cases, sizeof cases / sizeof cases[0])

/* ---------------------------------------------------------------------------------------- */
/* The valid samples                                                                        */

typedef struct {
    const char *name;
    img_t img;
    pl_image_format_t format;
    uint32_t width, height;
    bool animated;
    uint32_t frames;
} sample_t;

enum { N_SAMPLES = 14 };

static void sample(sample_t *s, const char *name, pl_image_format_t f, uint32_t w, uint32_t h,
                   bool animated, uint32_t frames)
{
    s->name = name;
    s->format = f;
    s->width = w;
    s->height = h;
    s->animated = animated;
    s->frames = frames;
}

static void build_samples(sample_t *s)
{
    memset(s, 0, sizeof(sample_t) * N_SAMPLES);
    make_png(&s[0].img, 3, 2);
    sample(&s[0], "png", PL_IMAGE_PNG, 3, 2, false, 1);
    make_png_indexed(&s[1].img);
    sample(&s[1], "png indexed", PL_IMAGE_PNG, 5, 3, false, 1);
    make_apng(&s[2].img);
    sample(&s[2], "apng", PL_IMAGE_PNG, 4, 4, true, 2);
    make_gif(&s[3].img, "GIF87a", 7, 5, 1);
    sample(&s[3], "gif87a", PL_IMAGE_GIF, 7, 5, false, 1);
    make_gif(&s[4].img, "GIF89a", 7, 5, 1);
    sample(&s[4], "gif89a", PL_IMAGE_GIF, 7, 5, false, 1);
    make_gif(&s[5].img, "GIF89a", 9, 4, 2);
    sample(&s[5], "gif89a animated", PL_IMAGE_GIF, 9, 4, true, 2);
    make_gif(&s[6].img, "GIF87a", 2, 2, 3);
    sample(&s[6], "gif87a animated", PL_IMAGE_GIF, 2, 2, true, 3);
    make_webp_lossy(&s[7].img, 20, 10);
    sample(&s[7], "webp lossy", PL_IMAGE_WEBP, 20, 10, false, 1);
    make_webp_lossless(&s[8].img, 16383, 3);
    sample(&s[8], "webp lossless", PL_IMAGE_WEBP, 16383, 3, false, 1);
    make_webp_extended(&s[9].img, 6, 7);
    sample(&s[9], "webp extended", PL_IMAGE_WEBP, 6, 7, false, 1);
    make_webp_animated(&s[10].img);
    sample(&s[10], "webp animated", PL_IMAGE_WEBP, 8, 8, true, 2);
    /* The 512-pixel limit is the caller's: the probe reports whatever the header says. */
    make_png(&s[11].img, 1, 65535);
    sample(&s[11], "png 1x65535", PL_IMAGE_PNG, 1, 65535, false, 1);
    make_gif(&s[12].img, "GIF89a", 65535, 1, 1);
    sample(&s[12], "gif 65535x1", PL_IMAGE_GIF, 65535, 1, false, 1);
    make_png(&s[13].img, 0x7FFFFFFF, 1);
    sample(&s[13], "png 2^31-1 wide", PL_IMAGE_PNG, 0x7FFFFFFF, 1, false, 1);
}

static void free_samples(sample_t *s)
{
    for (int i = 0; i < N_SAMPLES; i++)
        img_free(&s[i].img);
}

/* The status is one the header defines, and why names the format it speaks for. */
static bool status_known(int rc)
{
    return rc == PL_IMAGE_OK || rc == PL_IMAGE_UNKNOWN || rc == PL_IMAGE_TRUNCATED ||
           rc == PL_IMAGE_MALFORMED || rc == PL_IMAGE_TRAILING || rc == PL_IMAGE_UNSUPPORTED;
}

static bool why_prefixed(const char *why)
{
    static const char *const prefixes[] = {"PNG: ", "GIF: ", "WebP: ", "image: "};
    if (!why)
        return false;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(why, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Valid images                                                                             */

static void test_mime(void)
{
    CHECK_EQ_STR(pl_image_mime(PL_IMAGE_PNG), "image/png");
    CHECK_EQ_STR(pl_image_mime(PL_IMAGE_GIF), "image/gif");
    CHECK_EQ_STR(pl_image_mime(PL_IMAGE_WEBP), "image/webp");
    CHECK(pl_image_mime(PL_IMAGE_NONE) == NULL);
}

static void test_crc_reference(void)
{
    /* The check value every CRC-32 catalogue gives for "123456789". */
    CHECK_EQ_INT(crc32_bitwise((const unsigned char *)"123456789", 9), 0xCBF43926u);
}

static void test_valid_images(void)
{
    sample_t s[N_SAMPLES];
    build_samples(s);
    for (int i = 0; i < N_SAMPLES; i++) {
        pl_image_info_t info;
        const char *why = "unset";
        int rc = probe_copy(s[i].img.b, s[i].img.n, &info, &why);
        if (rc != PL_IMAGE_OK)
            fprintf(stderr, "  %s: %d %s\n", s[i].name, rc, why ? why : "(null)");
        CHECK_EQ_INT(rc, PL_IMAGE_OK);
        CHECK(why == NULL);
        CHECK_EQ_INT(info.format, s[i].format);
        CHECK_EQ_INT(info.width, s[i].width);
        CHECK_EQ_INT(info.height, s[i].height);
        CHECK_EQ_INT(info.animated, s[i].animated);
        CHECK_EQ_INT(info.frames, s[i].frames);
        /* Neither out nor why is required. */
        CHECK_EQ_INT(pl_image_probe(s[i].img.b, s[i].img.n, NULL, NULL), PL_IMAGE_OK);
    }
    free_samples(s);
}

/* An APNG whose default image is not part of the animation: IDAT without an fcTL before
 * it, then one frame in fdAT. */
static void test_apng_default_image_apart(void)
{
    img_t m = {0};
    png_start(&m, 4, 4);
    png_actl(&m, 1);
    png_idat(&m);
    png_fctl(&m, 0, 3, 3, 1, 1);
    png_fdat(&m, 1);
    png_fdat(&m, 2); /* a frame's data may span several fdAT chunks */
    png_iend(&m);
    pl_image_info_t info;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, NULL), PL_IMAGE_OK);
    CHECK_EQ_INT(info.animated, 1);
    CHECK_EQ_INT(info.frames, 1);
    img_free(&m);
}

/* A frame must lie within the logical screen (some decoders grow the canvas to fit a bigger
 * first frame, which would get past the caller's size limit); empty frames and frames that
 * touch the screen's edges are fine. */
static void test_gif_frame_outside_screen(void)
{
    pl_image_info_t info;
    img_t m = {0};
    gif_start(&m, "GIF89a", 4, 4);
    gif_frame(&m, 0, 0, 4, 4); /* the whole screen */
    gif_frame(&m, 2, 2, 2, 2); /* to the corner */
    gif_frame(&m, 1, 1, 0, 0); /* empty */
    put8(&m, 0x3B);
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, NULL), PL_IMAGE_OK);
    CHECK_EQ_INT(info.width, 4);
    CHECK_EQ_INT(info.height, 4);
    CHECK_EQ_INT(info.frames, 3);
    CHECK_EQ_INT(info.animated, 1);
    img_free(&m);
    const struct {
        unsigned x, y, w, h;
    } bad[] = {{2, 2, 10, 10}, {100, 100, 1, 1}, {0, 0, 5, 4}, {0, 1, 4, 4}, {65535, 0, 65535, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        img_t b = {0};
        gif_start(&b, "GIF89a", 4, 4);
        gif_frame(&b, bad[i].x, bad[i].y, bad[i].w, bad[i].h);
        put8(&b, 0x3B);
        const char *why = NULL;
        CHECK_EQ_INT(probe_copy(b.b, b.n, &info, &why), PL_IMAGE_MALFORMED);
        CHECK(why && strcmp(why, "GIF: frame outside the logical screen") == 0);
        img_free(&b);
    }
}

/* A GIF with a local colour table, a comment and a plain-text extension. */
static void test_gif_blocks(void)
{
    img_t m = {0};
    puts_(&m, "GIF89a");
    put16le(&m, 3);
    put16le(&m, 3);
    put(&m, "\x00\x00\x00", 3); /* no global colour table */
    put(&m, "\x21\xfe\x05hello\x00", 9);
    put(&m,
        "\x21\x01\x0c"
        "abcdefghijkl"
        "\x02hi\x00",
        19);
    put8(&m, 0x2C);
    put(&m, "\x00\x00\x00\x00\x03\x00\x03\x00", 8);
    put8(&m, 0x81); /* a local colour table of 4 entries */
    put(&m, "\x00\x00\x00\x11\x11\x11\x22\x22\x22\x33\x33\x33", 12);
    put(&m, "\x08\x01\x01\x00", 4); /* LZW minimum 8, one sub-block, end */
    put8(&m, 0x3B);
    pl_image_info_t info;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, NULL), PL_IMAGE_OK);
    CHECK_EQ_INT(info.frames, 1);
    CHECK_EQ_INT(info.animated, 0);
    img_free(&m);
}

/* An animated WebP with a single frame counts as animated (its container says so). */
static void test_webp_one_frame_animation(void)
{
    img_t m = {0};
    riff_start(&m);
    webp_vp8x(&m, 0x02, 5, 5);
    riff_chunk(&m, "ICCP", "xyz", 3);
    webp_anim(&m);
    webp_anmf(&m, 0, 0, 5, 5, false);
    riff_chunk(&m, "XMP ", "<x/>", 4);
    riff_end(&m);
    pl_image_info_t info;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, NULL), PL_IMAGE_OK);
    CHECK_EQ_INT(info.animated, 1);
    CHECK_EQ_INT(info.frames, 1);
    img_free(&m);
}

/* ---------------------------------------------------------------------------------------- */
/* Signatures                                                                               */

static void check_status(const void *p, size_t n, int want)
{
    const char *why = NULL;
    pl_image_info_t info;
    int rc = probe_copy(p, n, &info, &why);
    CHECK_EQ_INT(rc, want);
    CHECK(why_prefixed(why));
    CHECK_EQ_INT(info.format, PL_IMAGE_NONE);
}

static void test_signatures(void)
{
    check_status("", 0, PL_IMAGE_UNKNOWN);
    CHECK_EQ_INT(pl_image_probe(NULL, 100, NULL, NULL), PL_IMAGE_UNKNOWN);
    static const char png[] = "\x89PNG\r\n\x1a\n";
    for (size_t n = 1; n < 8; n++)
        check_status(png, n, PL_IMAGE_TRUNCATED);
    /* A whole signature and nothing else, or part of the screen descriptor. */
    for (size_t n = 1; n < 13; n++) {
        check_status("GIF87a\x01\x00\x01\x00\x00\x00", n, PL_IMAGE_TRUNCATED);
        check_status("GIF89a\x01\x00\x01\x00\x00\x00", n, PL_IMAGE_TRUNCATED);
    }
    for (size_t n = 1; n < 12; n++)
        check_status("RIFF\x04\x00\x00\x00WEBP", n, PL_IMAGE_TRUNCATED);
    check_status(png, 8, PL_IMAGE_TRUNCATED);

    check_status("\xff\xd8\xff\xe0\x00\x10JFIF", 10, PL_IMAGE_UNKNOWN);
    check_status("GIF90a\x01\x00\x01\x00\x00\x00\x00", 13, PL_IMAGE_UNKNOWN);
    check_status("RIFF\x04\x00\x00\x00"
                 "AVI LIST",
                 16, PL_IMAGE_UNKNOWN);
    check_status("RIFX\x04\x00\x00\x00WEBP", 12, PL_IMAGE_UNKNOWN);
    check_status("\x89PNX\r\n\x1a\n", 8, PL_IMAGE_UNKNOWN);
    check_status("\x89PNG\n\r\x1a\n", 8, PL_IMAGE_UNKNOWN);
    check_status("PK\x03\x04", 4, PL_IMAGE_UNKNOWN);
    check_status("<html>", 6, PL_IMAGE_UNKNOWN);
    check_status("x", 1, PL_IMAGE_UNKNOWN);
}

/* Every valid image cut at every length: a file that ends early is never accepted, and
 * with a signature in place it is always TRUNCATED (not some other refusal). */
static void test_truncation(void)
{
    sample_t s[N_SAMPLES];
    build_samples(s);
    long cuts = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        for (size_t len = 0; len < s[i].img.n; len++, cuts++) {
            const char *why = NULL;
            pl_image_info_t info;
            int rc = probe_copy(s[i].img.b, len, &info, &why);
            int want = len == 0 ? PL_IMAGE_UNKNOWN : PL_IMAGE_TRUNCATED;
            if (rc != want)
                fprintf(stderr, "  %s cut to %zu: %d %s\n", s[i].name, len, rc, why);
            CHECK_EQ_INT(rc, want);
            CHECK(why_prefixed(why));
        }
    }
    fprintf(stderr, "  %ld cuts\n", cuts);
    free_samples(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Trailing bytes and polyglots                                                             */

static void test_trailing(void)
{
    static const char *const tails[] = {"\0", "x", "\x3b", "IEND", "RIFF"};
    sample_t s[N_SAMPLES];
    build_samples(s);
    for (int i = 0; i < N_SAMPLES; i++) {
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            img_t m = {0};
            put(&m, s[i].img.b, s[i].img.n);
            put(&m, tails[t], t == 0 ? 1 : strlen(tails[t]));
            const char *why = NULL;
            pl_image_info_t info;
            CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRAILING);
            CHECK(why_prefixed(why));
            img_free(&m);
        }
        /* The same image twice is trailing bytes too. */
        img_t twice = {0};
        put(&twice, s[i].img.b, s[i].img.n);
        put(&twice, s[i].img.b, s[i].img.n);
        EXPECT(twice, PL_IMAGE_TRAILING);
    }
    free_samples(s);
}

/* An image that is also something else: a GIF followed by a ZIP local file header, a PNG
 * followed by an HTML page, a WebP followed by a script. */
static void test_polyglots(void)
{
    static const char zip[] = "PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00\x00\x00"
                              "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00"
                              "a.php";
    img_t m = {0};
    make_gif(&m, "GIF89a", 1, 1, 1);
    put(&m, zip, sizeof zip - 1);
    const char *why = NULL;
    pl_image_info_t info;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRAILING);
    CHECK_EQ_STR(why, "GIF: bytes after the trailer");
    img_free(&m);

    make_png(&m, 1, 1);
    puts_(&m, "<html><script>alert(1)</script></html>");
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRAILING);
    CHECK_EQ_STR(why, "PNG: bytes after IEND");
    img_free(&m);

    make_webp_lossy(&m, 1, 1);
    puts_(&m, "/*</script>*/alert(1)");
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRAILING);
    CHECK_EQ_STR(why, "WebP: bytes after the RIFF size");
    img_free(&m);

    /* A GIF comment can hide a script, but inside the structure it is only a comment. */
    gif_start(&m, "GIF89a", 1, 1);
    put(&m, "\x21\xfe\x09<script>\x00", 13);
    gif_frame(&m, 0, 0, 1, 1);
    put8(&m, 0x3B);
    EXPECT(m, PL_IMAGE_OK);
}

/* A signature that lies about the body. */
static void test_lying_headers(void)
{
    img_t gif = {0}, png = {0}, m = {0};
    make_gif(&gif, "GIF89a", 1, 1, 1);
    make_png(&png, 1, 1);

    /* PNG signature, GIF body: "GIF8" reads as a length, "9a.." as a chunk type. */
    put(&m, png.b, 8);
    put(&m, gif.b, gif.n);
    EXPECT(m, PL_IMAGE_MALFORMED);

    /* GIF signature, PNG body after its signature: the screen is 0 wide. */
    puts_(&m, "GIF89a");
    put(&m, png.b + 8, png.n - 8);
    EXPECT(m, PL_IMAGE_MALFORMED);

    /* RIFF/WEBP header, PNG body: the first chunk's size runs past the RIFF. */
    riff_start(&m);
    put(&m, png.b, png.n);
    riff_end(&m);
    EXPECT(m, PL_IMAGE_MALFORMED);

    /* RIFF/WEBP header, a GIF as the first chunk's tag: not a WebP chunk. */
    riff_start(&m);
    riff_chunk(&m, "GIF8", gif.b, gif.n);
    riff_end(&m);
    EXPECT(m, PL_IMAGE_UNSUPPORTED);

    img_free(&gif);
    img_free(&png);
}

/* ---------------------------------------------------------------------------------------- */
/* PNG                                                                                      */

static void test_png_crc(void)
{
    img_t m = {0};
    make_png(&m, 2, 2);
    m.b[8 + 8 + 13] ^= 1; /* the IHDR CRC's first byte */
    const char *why = NULL;
    pl_image_info_t info;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "PNG: IHDR CRC mismatch");
    m.b[8 + 8 + 13] ^= 1;
    m.b[8 + 8 + 5] ^= 0x40; /* the height inside IHDR, CRC left as it was */
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "PNG: IHDR CRC mismatch");
    m.b[8 + 8 + 5] ^= 0x40;
    m.b[m.n - 1] ^= 0x80; /* IEND's CRC */
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "PNG: chunk CRC mismatch");
    m.b[m.n - 1] ^= 0x80;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_OK);
    img_free(&m);

    /* Every single-bit flip in every chunk's type, data or CRC is caught. */
    make_apng(&m);
    long flips = 0, caught = 0;
    for (size_t i = 8; i < m.n; i++) {
        for (int bit = 0; bit < 8; bit++, flips++) {
            m.b[i] ^= (unsigned char)(1u << bit);
            caught += probe(&m) != PL_IMAGE_OK;
            m.b[i] ^= (unsigned char)(1u << bit);
        }
    }
    CHECK_EQ_INT(caught, flips);
    img_free(&m);
}

static void test_png_ihdr(void)
{
    check_script(png_token, "H0x5/8/6 I E", PL_IMAGE_MALFORMED, "PNG: zero width or height");
    static const script_case_t cases[] = {
        {"H5x0/8/6 I E", PL_IMAGE_MALFORMED},
        {"H2147483648x1/8/6 I E", PL_IMAGE_MALFORMED}, /* above 2^31-1 */
        {"H1x4294967295/8/6 I E", PL_IMAGE_MALFORMED},
        {"H1x2147483647/8/6 I E", PL_IMAGE_OK},
        {"H1x1/8/2/1 I E", PL_IMAGE_OK},       /* Adam7 interlacing */
        {"s #IHDR I E", PL_IMAGE_MALFORMED},   /* IHDR of one byte */
        {"s #gAMA h I E", PL_IMAGE_MALFORMED}, /* IHDR not first */
        {"s I E", PL_IMAGE_MALFORMED},
        {"S h I E", PL_IMAGE_MALFORMED}, /* two IHDRs */
    };
    RUN_CASES(png_token, cases);

    img_t m = {0};
    /* Compression, filter and interlace methods. */
    for (int field = 10; field <= 12; field++) {
        make_png(&m, 1, 1);
        unsigned char *d = m.b + 16;
        d[field] = 2;
        set32be(d + 13, crc32_bitwise(d - 4, 17));
        EXPECT(m, PL_IMAGE_MALFORMED);
    }
}

/* Every colour type and bit depth pair, against the table in the PNG specification. */
static void test_png_depths(void)
{
    for (unsigned ct = 0; ct < 9; ct++) {
        for (unsigned depth = 0; depth <= 32; depth++) {
            bool pow2 = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
            bool ok = (ct == 0 && pow2) || (ct == 3 && pow2 && depth <= 8) ||
                      ((ct == 2 || ct == 4 || ct == 6) && (depth == 8 || depth == 16));
            img_t m = {0};
            png_ihdr_full(&m, 2, 2, depth, ct, 0);
            if (ct == 3)
                png_chunk(&m, "PLTE", "\0\0\0", 3);
            png_idat(&m);
            png_iend(&m);
            int rc = probe(&m);
            if (rc != (ok ? PL_IMAGE_OK : PL_IMAGE_MALFORMED))
                fprintf(stderr, "  colour type %u depth %u: %d\n", ct, depth, rc);
            CHECK_EQ_INT(rc, ok ? PL_IMAGE_OK : PL_IMAGE_MALFORMED);
            img_free(&m);
        }
    }
}

static void test_png_chunks(void)
{
    img_t m = {0};

    /* A chunk length of 0xFFFFFFFF (beyond PNG's 2^31-1), and 2^31-1 (past the end). */
    make_png(&m, 1, 1);
    set32be(m.b + 33, 0xFFFFFFFFu);
    const char *why = NULL;
    pl_image_info_t info;
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "PNG: chunk length above 2^31-1");
    set32be(m.b + 33, 0x7FFFFFFFu);
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRUNCATED);
    img_free(&m);

    static const script_case_t cases[] = {
        {"S I E", PL_IMAGE_OK},
        {"S E", PL_IMAGE_MALFORMED},           /* no IDAT */
        {"S I", PL_IMAGE_TRUNCATED},           /* no IEND */
        {"S I e", PL_IMAGE_MALFORMED},         /* IEND with data */
        {"S I T I E", PL_IMAGE_MALFORMED},     /* IDATs apart */
        {"S I I I E", PL_IMAGE_OK},            /* IDATs together */
        {"S #ABCD I E", PL_IMAGE_UNSUPPORTED}, /* unknown critical chunk */
        {"S #abCd I #zzzz E", PL_IMAGE_OK},    /* unknown ancillary chunks */
        {"S #ab1d I E", PL_IMAGE_MALFORMED},   /* a type that is not letters */
        {"S #ab\x7f"
         "d I E",
         PL_IMAGE_MALFORMED},
        {"#gAMA S I E", PL_IMAGE_UNKNOWN}, /* a chunk before the signature */
        {"S S I E", PL_IMAGE_MALFORMED},   /* the signature again: not a chunk */
    };
    RUN_CASES(png_token, cases);
}

static void test_png_palette(void)
{
    static const script_case_t cases[] = {
        {"H1x1/8/3 P3 I E", PL_IMAGE_OK},           {"H1x1/8/3 P768 I E", PL_IMAGE_OK},
        {"H1x1/8/3 I E", PL_IMAGE_MALFORMED},       /* indexed without PLTE */
        {"H1x1/8/0 P3 I E", PL_IMAGE_MALFORMED},    /* PLTE in greyscale */
        {"H1x1/8/4 P3 I E", PL_IMAGE_MALFORMED},    /* PLTE in greyscale with alpha */
        {"H1x1/8/2 P3 I E", PL_IMAGE_OK},           /* optional PLTE in truecolour */
        {"H1x1/8/3 P0 I E", PL_IMAGE_MALFORMED},    /* empty */
        {"H1x1/8/3 P4 I E", PL_IMAGE_MALFORMED},    /* not whole colours */
        {"H1x1/8/3 P771 I E", PL_IMAGE_MALFORMED},  /* 257 colours */
        {"H1x1/8/3 P3 P3 I E", PL_IMAGE_MALFORMED}, /* two */
        {"H1x1/8/2 I P3 E", PL_IMAGE_MALFORMED},    /* after IDAT */
    };
    RUN_CASES(png_token, cases);
}

/* F<seq>:<w>x<h>+<x>+<y>[/<dispose>/<blend>] on a 4x4 canvas (see png_token). */
static void test_apng_hostile(void)
{
    static const script_case_t cases[] = {
        {"S A2 F0:4x4+0+0 I F1:2x2+1+1 D2 E", PL_IMAGE_OK},
        {"S A1 I F0:3x3+1+1 D1 D2 E", PL_IMAGE_OK}, /* default image apart */
        {"S A2 F0:4x4+0+0/2/1 I T F1:2x2+2+2/1/0 D2 T D3 E", PL_IMAGE_OK},
        {"S I A1 E", PL_IMAGE_MALFORMED},                          /* acTL after IDAT */
        {"S A1 A1 F0:4x4+0+0 I E", PL_IMAGE_MALFORMED},            /* two acTLs */
        {"S A0 I E", PL_IMAGE_MALFORMED},                          /* zero frames */
        {"S A2147483648 I E", PL_IMAGE_MALFORMED},                 /* frames above 2^31-1 */
        {"S a I E", PL_IMAGE_MALFORMED},                           /* acTL too short */
        {"S A3 F0:4x4+0+0 I F1:2x2+0+0 D2 E", PL_IMAGE_MALFORMED}, /* 3 frames said, 2 came */
        {"S A1 F0:4x4+0+0 I F1:2x2+0+0 D2 E", PL_IMAGE_MALFORMED}, /* 1 said, 2 came */
        {"S A2 F0:4x4+0+0 I F1:2x2+3+0 D2 E", PL_IMAGE_MALFORMED}, /* past the right edge */
        {"S A2 F0:4x4+0+0 I F1:2x2+0+3 D2 E", PL_IMAGE_MALFORMED}, /* past the bottom */
        {"S A2 F0:4x4+0+0 I F1:2x2+4294967295+0 D2 E", PL_IMAGE_MALFORMED}, /* wraps */
        {"S A2 F0:4x4+0+0 I F1:0x2+0+0 D2 E", PL_IMAGE_MALFORMED},          /* empty frame */
        {"S A1 F0:3x4+0+0 I E", PL_IMAGE_MALFORMED},               /* default image small */
        {"S A1 F0:4x4+0+1 I E", PL_IMAGE_MALFORMED},               /* default image moved */
        {"S A2 F0:4x4+0+0 I F1:2x2+0+0 D3 E", PL_IMAGE_MALFORMED}, /* sequence gap */
        {"S A2 F0:4x4+0+0 I F0:2x2+0+0 D1 E", PL_IMAGE_MALFORMED}, /* sequence repeated */
        {"S A2 F1:4x4+0+0 I F2:2x2+0+0 D3 E", PL_IMAGE_MALFORMED}, /* sequence not from 0 */
        {"S A2 F0:4x4+0+0 I F1:2x2+0+0 E", PL_IMAGE_MALFORMED},    /* last frame no data */
        {"S A3 F0:4x4+0+0 I F1:2x2+0+0 F2:2x2+0+0 D3 E", PL_IMAGE_MALFORMED}, /* middle one */
        {"S A1 F0:4x4+0+0 D1 I E", PL_IMAGE_MALFORMED},                       /* fdAT before IDAT */
        {"S A1 F0:4x4+0+0 I D1 E", PL_IMAGE_MALFORMED},           /* fdAT for the default */
        {"S A1 F0:4x4+0+0 I F1:2x2+0+0 I E", PL_IMAGE_MALFORMED}, /* IDAT as frame data */
        {"S F0:4x4+0+0 I E", PL_IMAGE_MALFORMED},                 /* fcTL without acTL */
        {"S I D0 E", PL_IMAGE_MALFORMED},                         /* fdAT without acTL */
        {"S A2 F0:4x4+0+0 F1:4x4+0+0 I E", PL_IMAGE_MALFORMED},   /* two before IDAT */
        {"S A1 F0:4x4+0+0/3/0 I E", PL_IMAGE_MALFORMED},          /* dispose 3 */
        {"S A1 F0:4x4+0+0/0/2 I E", PL_IMAGE_MALFORMED},          /* blend 2 */
        {"S A2 F0:4x4+0+0 I F1:2x2+0+0 d E", PL_IMAGE_MALFORMED}, /* fdAT too short */
        {"S A1 F0:4x4+0+0 I #fcTL E", PL_IMAGE_MALFORMED},        /* fcTL too short */
    };
    RUN_CASES(png_token, cases);
}

/* ---------------------------------------------------------------------------------------- */
/* GIF                                                                                      */

static void test_gif_hostile(void)
{
    /* LZW minimum code sizes: 2..8 only. */
    for (unsigned lzw = 0; lzw < 256; lzw += lzw < 16 ? 1 : 17) {
        char script[64];
        snprintf(script, sizeof script, "G2x2 f0,0:2x2/%u ;", lzw);
        bool ok = lzw >= 2 && lzw <= 8;
        check_script(gif_token, script, ok ? PL_IMAGE_OK : PL_IMAGE_MALFORMED,
                     ok ? NULL : "GIF: LZW minimum code size outside 2..8");
    }

    static const script_case_t cases[] = {
        {"G1x1 f0,0:1x1 ;", PL_IMAGE_OK},
        {"G0x5 f0,0:1x1 ;", PL_IMAGE_MALFORMED}, /* zero-sized screen */
        {"G5x0 f0,0:1x1 ;", PL_IMAGE_MALFORMED},
        {"G1x1 N ;", PL_IMAGE_MALFORMED},                               /* no image */
        {"G1x1 f0,0:1x1 $99 ;", PL_IMAGE_MALFORMED},                    /* unknown block type */
        {"G1x1 f0,0:1x1", PL_IMAGE_TRUNCATED},                          /* no trailer */
        {"G1x1 g g g f0,0:1x1 g ;", PL_IMAGE_OK},                       /* stray graphic controls */
        {"G1x1 $21f9050400000000 f0,0:1x1 ;", PL_IMAGE_MALFORMED},      /* control of size 5 */
        {"G1x1 $21f903040000 f0,0:1x1 ;", PL_IMAGE_MALFORMED},          /* of size 3 */
        {"G1x1 $21f900 f0,0:1x1 ;", PL_IMAGE_MALFORMED},                /* empty */
        {"G1x1 $21fe00 f0,0:1x1 ;", PL_IMAGE_OK},                       /* empty comment */
        {"G1x1 $2c000000000100010000 ;", PL_IMAGE_MALFORMED},           /* ; read as the LZW byte */
        {"G1x1 $2c0000000001000100000200 ;", PL_IMAGE_OK},              /* no data sub-blocks */
        {"G1x1 $2c00000000010001000002ff0000 ;", PL_IMAGE_TRUNCATED},   /* sub-block too long */
        {"G1x1 $2c000000000100010087 ;", PL_IMAGE_TRUNCATED},           /* local table missing */
        {"$47494638396101000100870000 f0,0:1x1 ;", PL_IMAGE_TRUNCATED}, /* global table */
    };
    RUN_CASES(gif_token, cases);
}

/* ---------------------------------------------------------------------------------------- */
/* WebP                                                                                     */

static void test_webp_riff(void)
{
    img_t m = {0};
    const char *why = NULL;
    pl_image_info_t info;

    /* RIFF size larger than the file, by one and by 4 GB. */
    make_webp_lossy(&m, 4, 4);
    set32le(m.b + 4, (uint32_t)(m.n - 8 + 2));
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRUNCATED);
    CHECK_EQ_STR(why, "WebP: file shorter than its RIFF size");
    set32le(m.b + 4, 0xFFFFFFFFu);
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_TRUNCATED);
    /* Odd (the file has the byte it covers), below 4, exactly 4 (no chunk). */
    put8(&m, 0);
    set32le(m.b + 4, (uint32_t)(m.n - 8));
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "WebP: odd RIFF size");
    set32le(m.b + 4, 3);
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    img_free(&m);
    riff_start(&m);
    riff_end(&m);
    EXPECT(m, PL_IMAGE_MALFORMED);

    /* A chunk that runs past the RIFF size (the file holds the bytes: trailing ones). */
    make_webp_lossy(&m, 4, 4);
    set32le(m.b + 4, (uint32_t)(m.n - 8 - 2));
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    img_free(&m);
}

static void test_webp_bitstreams(void)
{
    img_t m = {0}, d = {0};
    const char *why = NULL;
    pl_image_info_t info;

    /* VP8: start code, key frame, version, shown, partition size, zero size, short. */
    static const struct {
        uint32_t tag;
        int want;
    } tags[] = {
        {VP8_TAG, PL_IMAGE_OK},
        {VP8_TAG | 1, PL_IMAGE_MALFORMED},                /* interframe */
        {VP8_TAG | 3u << 1, PL_IMAGE_OK},                 /* version 3 */
        {VP8_TAG | 4u << 1, PL_IMAGE_MALFORMED},          /* version 4 */
        {VP8_TAG & ~(1u << 4), PL_IMAGE_UNSUPPORTED},     /* not shown */
        {(VP8_TAG & 0x1F) | 5u << 5, PL_IMAGE_MALFORMED}, /* partition past the chunk */
        {(VP8_TAG & 0x1F) | 0x7FFFFu << 5, PL_IMAGE_MALFORMED},
    };
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        vp8_data(&d, 3, 3, tags[i].tag);
        riff_start(&m);
        riff_chunk(&m, "VP8 ", d.b, d.n);
        riff_end(&m);
        CHECK_EQ_INT(probe(&m), tags[i].want);
        img_free(&m);
        img_free(&d);
    }
    vp8_data(&d, 3, 3, VP8_TAG);
    d.b[4] = 0x02; /* the start code 9d 01 2a */
    riff_start(&m);
    riff_chunk(&m, "VP8 ", d.b, d.n);
    riff_end(&m);
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "WebP: VP8 start code missing");
    img_free(&m);
    img_free(&d);
    make_webp_lossy(&m, 0, 3);
    EXPECT(m, PL_IMAGE_MALFORMED);
    make_webp_lossy(&m, 3 | 0xC000, 2 | 0x4000); /* the scale bits are not size */
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_OK);
    CHECK_EQ_INT(info.width, 3);
    CHECK_EQ_INT(info.height, 2);
    img_free(&m);
    riff_start(&m);
    riff_chunk(&m, "VP8 ", "\x50\x00\x00\x9d\x01\x2a\x01\x00\x01", 9);
    riff_end(&m);
    EXPECT(m, PL_IMAGE_MALFORMED);

    /* VP8L: signature byte, version, short. */
    vp8l_data(&d, 5, 5, 0);
    d.b[0] = 0x2E;
    riff_start(&m);
    riff_chunk(&m, "VP8L", d.b, d.n);
    riff_end(&m);
    CHECK_EQ_INT(probe_copy(m.b, m.n, &info, &why), PL_IMAGE_MALFORMED);
    CHECK_EQ_STR(why, "WebP: VP8L signature byte missing");
    img_free(&m);
    img_free(&d);
    vp8l_data(&d, 5, 5, 1);
    riff_start(&m);
    riff_chunk(&m, "VP8L", d.b, d.n);
    riff_end(&m);
    EXPECT(m, PL_IMAGE_MALFORMED);
    img_free(&d);
    riff_start(&m);
    riff_chunk(&m, "VP8L", "\x2f\x00\x00\x00", 4);
    riff_end(&m);
    EXPECT(m, PL_IMAGE_MALFORMED);
}

static void test_webp_extended(void)
{
    check_script(webp_script_token, "X8:4x4 #EXIF", PL_IMAGE_UNSUPPORTED,
                 "WebP: VP8X without an image chunk");

    static const script_case_t cases[] = {
        {"X0:4x4 L4x4", PL_IMAGE_OK},
        {"X0:4x4 #ICCP #ALPH Y4x4 #EXIF #XMP #UNKN", PL_IMAGE_OK},
        {"X0:4x4", PL_IMAGE_UNSUPPORTED},    /* nothing at all */
        {"X0:4x4 L4x5", PL_IMAGE_MALFORMED}, /* canvas and image disagree */
        {"X0:5x4 Y4x4", PL_IMAGE_MALFORMED},
        {"X0:4x4 L4x4 Y4x4", PL_IMAGE_MALFORMED},          /* two images */
        {"X0:4x4 X0:4x4 L4x4", PL_IMAGE_MALFORMED},        /* two VP8X */
        {"x L4x4", PL_IMAGE_MALFORMED},                    /* VP8X of 12 bytes */
        {"X0:16777216x16777216 L4x4", PL_IMAGE_MALFORMED}, /* area above 2^32-1 */
        {"X0:65537x65536 L4x4", PL_IMAGE_MALFORMED},       /* just above it */
        {"X2:65535x65537 N ML0,0:4x4", PL_IMAGE_OK},       /* exactly 2^32-1 */
        {"X0:4x4 N ML0,0:4x4", PL_IMAGE_MALFORMED},        /* ANIM/ANMF without the flag */
        {"X0:4x4 L4x4 ML0,0:4x4", PL_IMAGE_MALFORMED},
        {"L4x4 #EXIF", PL_IMAGE_MALFORMED},   /* more after a simple image */
        {"#ALPH Y4x4", PL_IMAGE_UNSUPPORTED}, /* first chunk not VP8/VP8L/VP8X */
        {"#ANMF", PL_IMAGE_UNSUPPORTED},
    };
    RUN_CASES(webp_script_token, cases);
}

/* ML/MY<x>,<y>:<w>x<h>[=<w>x<h>] are frames (see webp_token). */
static void test_webp_animation(void)
{
    /* A canvas smaller than a frame. */
    check_script(webp_script_token, "X2:4x4 N ML0,0:4x4 ML0,0:5x4", PL_IMAGE_MALFORMED,
                 "WebP: ANMF frame extends beyond the canvas");

    static const script_case_t cases[] = {
        {"X2:4x4 N ML0,0:4x4 MY2,2:2x2", PL_IMAGE_OK}, /* exactly at the edge */
        {"X2:4x4 #ICCP N #UNKN ML0,0:4x4 #EXIF MY0,0:1x1 #XMP", PL_IMAGE_OK},
        {"X2:4x4 N MY2,0:3x4", PL_IMAGE_MALFORMED},     /* past the right edge */
        {"X2:4x4 N MY0,2:4x3", PL_IMAGE_MALFORMED},     /* past the bottom */
        {"X2:4x4 N ML0,0:4x5", PL_IMAGE_MALFORMED},     /* taller than the canvas */
        {"X2:8x8 N ML0,0:4x4=4x3", PL_IMAGE_MALFORMED}, /* image and frame disagree */
        {"X2:8x8 N MY0,0:4x4=5x4", PL_IMAGE_MALFORMED},
        {"X2:4x4 N", PL_IMAGE_UNSUPPORTED}, /* no frames */
        {"X2:4x4", PL_IMAGE_UNSUPPORTED},
        {"X2:4x4 ML0,0:4x4 N", PL_IMAGE_MALFORMED},      /* ANMF before ANIM */
        {"X2:4x4 ML0,0:4x4", PL_IMAGE_MALFORMED},        /* no ANIM */
        {"X2:4x4 N N ML0,0:4x4", PL_IMAGE_MALFORMED},    /* two ANIMs */
        {"X2:4x4 n ML0,0:4x4", PL_IMAGE_MALFORMED},      /* ANIM of 8 bytes */
        {"X2:4x4 N ML0,0:4x4 L4x4", PL_IMAGE_MALFORMED}, /* an image outside ANMF */
        {"X2:4x4 N ML0,0:4x4 Y4x4", PL_IMAGE_MALFORMED},
        {"X2:4x4 N ML0,0:4x4 #ALPH", PL_IMAGE_MALFORMED},
        {"X2:4x4 N ML0,0:4x4 X2:4x4", PL_IMAGE_MALFORMED}, /* a second VP8X */
    };
    RUN_CASES(webp_script_token, cases);
}

/* The inside of an ANMF: header length, ALPH placement, image count, sub-chunk framing. */
enum {
    F_SHORT_HEADER,
    F_NO_IMAGE,
    F_TWO_IMAGES,
    F_ALPH_VP8L,
    F_ALPH_AFTER,
    F_TOO_LONG,
    F_UNPADDED,
    F_UNKNOWN_AFTER,
    F_CASES
};

static void frame_data(img_t *f, int which)
{
    put(f, "\0\0\0\0\0\0\3\0\0\3\0\0\x64\0\0\0", which == F_SHORT_HEADER ? 15 : 16);
    switch (which) {
    case F_TWO_IMAGES:
        webp_vp8l_chunk(f, 4, 4);
        webp_vp8_chunk(f, 4, 4);
        break;
    case F_ALPH_VP8L:
        riff_chunk(f, "ALPH", "a", 1);
        webp_vp8l_chunk(f, 4, 4);
        break;
    case F_ALPH_AFTER:
        webp_vp8_chunk(f, 4, 4);
        riff_chunk(f, "ALPH", "a", 1);
        break;
    case F_TOO_LONG:
        webp_vp8l_chunk(f, 4, 4);
        set32le(f->b + 20, 100);
        break;
    case F_UNPADDED: /* the 9-byte VP8L without the padding byte after it */
        webp_vp8l_chunk(f, 4, 4);
        f->n--;
        break;
    case F_UNKNOWN_AFTER:
        webp_vp8l_chunk(f, 4, 4);
        riff_chunk(f, "UNKN", "abc", 3);
        break;
    }
}

static void test_webp_frame_data(void)
{
    for (int i = 0; i < F_CASES; i++) {
        img_t f = {0}, m = {0};
        frame_data(&f, i);
        riff_start(&m);
        webp_vp8x(&m, 0x02, 4, 4);
        webp_anim(&m);
        riff_chunk(&m, "ANMF", f.b, f.n);
        riff_end(&m);
        const char *why = NULL;
        pl_image_info_t info;
        int rc = probe_copy(m.b, m.n, &info, &why);
        int want = i == F_UNKNOWN_AFTER ? PL_IMAGE_OK : PL_IMAGE_MALFORMED;
        if (rc != want)
            fprintf(stderr, "  frame data case %d: %d %s\n", i, rc, why ? why : "");
        CHECK_EQ_INT(rc, want);
        if (i == F_UNPADDED)
            CHECK_EQ_STR(why, "WebP: chunk padding byte missing");
        img_free(&f);
        img_free(&m);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Loop caps                                                                                */

/* 100,000 parts are read; one more is refused, whatever the format. */
static void test_caps(void)
{
    img_t m = {0};
    for (int extra = 0; extra < 2; extra++) {
        /* IHDR, IDAT and IEND are three of the chunks. */
        png_start(&m, 1, 1);
        for (int i = 0; i < 100000 - 3 + extra; i++)
            png_chunk(&m, "zzzz", NULL, 0);
        png_idat(&m);
        png_iend(&m);
        EXPECT(m, extra ? PL_IMAGE_UNSUPPORTED : PL_IMAGE_OK);

        /* The trailer and the image are two of the blocks. */
        gif_start(&m, "GIF89a", 1, 1);
        for (int i = 0; i < 100000 - 2 + extra; i++)
            put(&m, "\x21\xfe\x00", 3);
        gif_frame(&m, 0, 0, 1, 1);
        put8(&m, 0x3B);
        EXPECT(m, extra ? PL_IMAGE_UNSUPPORTED : PL_IMAGE_OK);

        /* VP8X and the image are two of the chunks. */
        riff_start(&m);
        webp_vp8x(&m, 0, 1, 1);
        for (int i = 0; i < 100000 - 2 + extra; i++)
            riff_chunk(&m, "UNKN", NULL, 0);
        webp_vp8l_chunk(&m, 1, 1);
        riff_end(&m);
        EXPECT(m, extra ? PL_IMAGE_UNSUPPORTED : PL_IMAGE_OK);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Fuzzing                                                                                  */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t below)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 11) % below);
}

/* Rewrites every PNG chunk's CRC so a mutation reaches the checks behind the CRC. */
static void fix_png_crcs(img_t *m)
{
    size_t pos = 8;
    while (m->n >= 12 && pos <= m->n - 12) {
        uint32_t len = (uint32_t)m->b[pos] << 24 | (uint32_t)m->b[pos + 1] << 16 |
                       (uint32_t)m->b[pos + 2] << 8 | m->b[pos + 3];
        if (len > m->n - 12 - pos)
            return;
        set32be(m->b + pos + 8 + len, crc32_bitwise(m->b + pos + 4, (size_t)len + 4));
        pos += (size_t)len + 12;
    }
}

/* One to four random edits. Most leave the signature (the first lo bytes) alone, since a
 * broken signature only ever reaches the UNKNOWN path. */
static void mutate(img_t *m, size_t lo)
{
    static const uint32_t words[] = {0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF};
    int ops = 1 + (int)rnd(4);
    for (int k = 0; k < ops && m->n > 0; k++) {
        size_t from_lo = rnd(10) && lo < m->n ? lo : 0;
        size_t at = from_lo + rnd((uint32_t)(m->n - from_lo));
        switch (rnd(7)) {
        case 0:
            m->b[at] ^= (unsigned char)(1u << rnd(8));
            break;
        case 1:
            m->b[at] = (unsigned char)rnd(256);
            break;
        case 2:
            if (at + 4 <= m->n)
                set32le(m->b + at, words[rnd(8)]);
            break;
        case 3:
            if (at + 4 <= m->n)
                set32be(m->b + at, words[rnd(8)]);
            break;
        case 4: /* cut short */
            m->n = at;
            break;
        case 5: /* bytes after the end */
            for (uint32_t i = 1 + rnd(8); i > 0; i--)
                put8(m, rnd(256));
            break;
        default: /* copy a run from elsewhere over this place */
        {
            size_t from = rnd((uint32_t)m->n), len = 1 + rnd(16);
            if (from + len <= m->n && at + len <= m->n)
                memmove(m->b + at, m->b + from, len);
        } break;
        }
    }
}

static void test_fuzz(void)
{
    long iters = 20000;
    const char *env = getenv("PL_IMAGE_FUZZ_ITERS");
    if (env)
        iters = atol(env);
    sample_t s[N_SAMPLES];
    build_samples(s);
    long counts[6] = {0};
    for (long it = 0; it < iters; it++) {
        const sample_t *src = &s[it % N_SAMPLES];
        img_t m = {0};
        put(&m, src->img.b, src->img.n);
        mutate(&m, src->format == PL_IMAGE_PNG ? 8 : src->format == PL_IMAGE_GIF ? 6 : 4);
        /* Half the time, repair what a format checks first so the deeper rules are hit. */
        if (it & 1) {
            if (src->format == PL_IMAGE_PNG)
                fix_png_crcs(&m);
            else if (src->format == PL_IMAGE_WEBP && m.n >= 8)
                set32le(m.b + 4, (uint32_t)(m.n - 8));
        }
        pl_image_info_t info;
        const char *why = NULL;
        int rc = probe_copy(m.b, m.n, &info, &why);
        REQUIRE(status_known(rc));
        counts[-rc]++;
        if (rc == PL_IMAGE_OK) {
            CHECK(why == NULL);
            CHECK(info.width > 0 && info.height > 0 && info.frames > 0);
            CHECK(pl_image_mime(info.format) != NULL);
            CHECK(info.animated || info.frames == 1);
        } else {
            CHECK(why_prefixed(why));
            CHECK_EQ_INT(info.format, PL_IMAGE_NONE);
        }
        img_free(&m);
    }
    fprintf(stderr,
            "  %ld mutations: ok %ld, unknown %ld, truncated %ld, malformed %ld, trailing %ld, "
            "unsupported %ld\n",
            iters, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]);
    /* The mutations reach past the first check: some still parse, some break each way. */
    if (iters >= 20000) {
        CHECK(counts[0] > 0);
        CHECK(counts[2] > 0 && counts[3] > 0);
    }
    free_samples(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Files written by ImageMagick                                                             */

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    img_t m = {0};
    unsigned char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        put(&m, buf, got);
    fclose(f);
    *len = m.n;
    return m.b ? m.b : malloc(1);
}

typedef struct {
    const char *file, *args;
    pl_image_format_t format;
    uint32_t width, height;
    bool animated;
    uint32_t frames;
} im_case_t;

/* ImageMagick 6.9.11 (with libwebp 1.2.4) writes an animated WebP followed by a second,
 * still WebP of the first frame: bytes after the RIFF size, which the probe refuses. The
 * animation itself (the first RIFF) must still parse; a fixed ImageMagick would write no
 * tail at all. */
static void check_im_animated_webp(const unsigned char *b, size_t n, const im_case_t *c)
{
    pl_image_info_t info;
    int rc = probe_copy(b, n, &info, NULL);
    CHECK(rc == PL_IMAGE_OK || rc == PL_IMAGE_TRAILING);
    REQUIRE(n >= 12);
    size_t riff_end = (size_t)(b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24) + 8;
    REQUIRE(riff_end <= n);
    CHECK_EQ_INT(probe_copy(b, riff_end, &info, NULL), PL_IMAGE_OK);
    CHECK_EQ_INT(info.format, c->format);
    CHECK_EQ_INT(info.width, c->width);
    CHECK_EQ_INT(info.height, c->height);
    CHECK_EQ_INT(info.animated, c->animated);
    CHECK_EQ_INT(info.frames, c->frames);
    if (rc == PL_IMAGE_TRAILING)
        fprintf(stderr, "  %s: ImageMagick appended %zu bytes after the RIFF (refused)\n", c->file,
                n - riff_end);
}

static void test_imagemagick(void)
{
    static const char convert[] = "/usr/bin/convert";
    if (access(convert, X_OK) != 0) {
        const char *strict = getenv("PARLEY_TEST_STRICT");
        if (strict && strcmp(strict, "1") == 0) {
            fprintf(stderr, "  %s is missing (PARLEY_TEST_STRICT=1)\n", convert);
            CHECK(0);
        } else
            fprintf(stderr, "  skipped: %s is missing\n", convert);
        return;
    }
    static const im_case_t cases[] = {
        {"a.png", "-size 16x12 xc:red", PL_IMAGE_PNG, 16, 12, false, 1},
        {"p8.png", "-size 9x7 xc:red png8:", PL_IMAGE_PNG, 9, 7, false, 1},
        {"g16.png", "-size 5x6 gradient: -depth 16 -interlace PNG", PL_IMAGE_PNG, 5, 6, false, 1},
        {"still.gif", "-size 16x16 xc:red", PL_IMAGE_GIF, 16, 16, false, 1},
        {"s87.gif", "-size 8x4 xc:red gif87:", PL_IMAGE_GIF, 8, 4, false, 1},
        {"anim.gif", "-size 16x16 xc:red xc:blue -loop 0", PL_IMAGE_GIF, 16, 16, true, 2},
        {"off.gif", "-size 16x16 xc:red \\( -size 4x4 xc:blue -repage +4+6 \\) -loop 0",
         PL_IMAGE_GIF, 16, 16, true, 2},
        {"lossy.webp", "-size 20x10 xc:red -quality 80", PL_IMAGE_WEBP, 20, 10, false, 1},
        {"lossless.webp", "-size 20x10 xc:red -define webp:lossless=true", PL_IMAGE_WEBP, 20, 10,
         false, 1},
        {"alpha.webp", "-size 8x8 xc:none -fill red -draw \"point 1,1\"", PL_IMAGE_WEBP, 8, 8,
         false, 1},
        {"anim.webp", "-size 12x14 xc:red xc:blue -loop 0", PL_IMAGE_WEBP, 12, 14, true, 2},
        {"off.webp", "-size 16x16 xc:red \\( -size 4x4 xc:blue -repage +4+6 \\) -loop 0",
         PL_IMAGE_WEBP, 16, 16, true, 2},
    };
    char dir[] = "/tmp/parley-test-image-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const im_case_t *c = &cases[i];
        char cmd[512], path[256];
        snprintf(path, sizeof path, "%s/%s", dir, c->file);
        /* A format prefix such as "png8:" ends the arguments and goes before the path. */
        size_t alen = strlen(c->args);
        bool prefixed = alen > 0 && c->args[alen - 1] == ':';
        snprintf(cmd, sizeof cmd, "%s %s%s%s 2>/dev/null", convert, c->args, prefixed ? "" : " ",
                 path);
        CHECK_EQ_INT(system(cmd), 0);
        size_t n = 0;
        unsigned char *b = slurp(path, &n);
        REQUIRE(b != NULL);
        pl_image_info_t info;
        const char *why = NULL;
        if (c->format == PL_IMAGE_WEBP && c->animated) {
            check_im_animated_webp(b, n, c);
        } else {
            int rc = probe_copy(b, n, &info, &why);
            if (rc != PL_IMAGE_OK)
                fprintf(stderr, "  %s: %d %s\n", c->file, rc, why);
            CHECK_EQ_INT(rc, PL_IMAGE_OK);
            CHECK_EQ_INT(info.format, c->format);
            CHECK_EQ_INT(info.width, c->width);
            CHECK_EQ_INT(info.height, c->height);
            CHECK_EQ_INT(info.animated, c->animated);
            CHECK_EQ_INT(info.frames, c->frames);
        }
        free(b);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    RUN(test_mime);
    RUN(test_crc_reference);
    RUN(test_valid_images);
    RUN(test_apng_default_image_apart);
    RUN(test_gif_frame_outside_screen);
    RUN(test_gif_blocks);
    RUN(test_webp_one_frame_animation);
    RUN(test_signatures);
    RUN(test_truncation);
    RUN(test_trailing);
    RUN(test_polyglots);
    RUN(test_lying_headers);
    RUN(test_png_crc);
    RUN(test_png_ihdr);
    RUN(test_png_depths);
    RUN(test_png_chunks);
    RUN(test_png_palette);
    RUN(test_apng_hostile);
    RUN(test_gif_hostile);
    RUN(test_webp_riff);
    RUN(test_webp_bitstreams);
    RUN(test_webp_extended);
    RUN(test_webp_animation);
    RUN(test_webp_frame_data);
    RUN(test_caps);
    RUN(test_fuzz);
    RUN(test_imagemagick);
    TEST_MAIN();
}
