/* Image probing for custom emoji uploads: what an image is, read from its own bytes (never
 * from a name or a header the client sent), and whether it is whole and consistent.
 *
 * Accepted formats: PNG (APNG counts as animated), GIF (87a/89a; more than one frame is
 * animated) and WebP (lossy VP8, lossless VP8L, extended VP8X, animated with ANIM/ANMF).
 * The probe walks the container's whole structure (PNG chunks to IEND with their CRCs, GIF
 * blocks to the trailer, WebP's RIFF chunks to the RIFF size) and refuses:
 *   - truncation: a chunk, block or frame that runs past the end;
 *   - inconsistency: sizes that disagree (RIFF size vs file size, VP8X canvas vs frames,
 *     IHDR length, a bad CRC), zero width or height, a missing required chunk;
 *   - trailing bytes after the format's own end (PNG after IEND, GIF after its trailer,
 *     WebP after the RIFF size): the way polyglot files (an image that is also a ZIP, a
 *     script, an HTML page) hide their second meaning.
 * It decodes no pixels: dimensions come from the headers, which the probe checks against
 * each other. */
#ifndef PL_EMOJI_IMAGE_H
#define PL_EMOJI_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PL_IMAGE_NONE = 0,
    PL_IMAGE_PNG,
    PL_IMAGE_GIF,
    PL_IMAGE_WEBP,
} pl_image_format_t;

typedef struct {
    pl_image_format_t format;
    uint32_t width, height; /* the canvas (logical screen) size */
    bool animated;
    uint32_t frames; /* 1 for still images */
} pl_image_info_t;

typedef enum {
    PL_IMAGE_OK = 0,
    PL_IMAGE_UNKNOWN = -1,     /* no supported format's magic bytes */
    PL_IMAGE_TRUNCATED = -2,   /* ends before its structure does */
    PL_IMAGE_MALFORMED = -3,   /* inconsistent or invalid headers */
    PL_IMAGE_TRAILING = -4,    /* bytes after the image's end */
    PL_IMAGE_UNSUPPORTED = -5, /* a known format in a variant we do not take */
} pl_image_status_t;

/* Probes n bytes at p. Returns PL_IMAGE_OK and fills *out, or a negative status; *why (if
 * not NULL) then points at a static, human-readable reason ("PNG: IHDR CRC mismatch"). */
int pl_image_probe(const unsigned char *p, size_t n, pl_image_info_t *out, const char **why);

/* "image/png", "image/gif", "image/webp", or NULL for PL_IMAGE_NONE. */
const char *pl_image_mime(pl_image_format_t f);

#endif
