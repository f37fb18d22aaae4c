/* A fast, strict replacement for the two jansson calls on parleyd's per-message path.
 *
 * jansson's json_loadb() reads its input through a function pointer one byte at a time and
 * copies every token into a side buffer, and json_dumps() checks for reference loops with a
 * hash table and formats every integer with snprintf(); together they were most of
 * parleyd's cost per signaling message. These functions accept and produce exactly what the
 * jansson calls do (tests/unit/test_json.c checks that against jansson itself) and build or
 * read ordinary jansson trees, so callers keep using the jansson API for everything else. */
#ifndef PL_JSON_H
#define PL_JSON_H

#include "common/str.h"

#include <jansson.h>
#include <stddef.h>

/* The deepest nesting either function handles: a value inside 2048 open containers is
 * refused, as jansson 2.14 refuses it (its JSON_PARSER_MAX_DEPTH). */
#define PL_JSON_MAX_DEPTH 2048

/* Parses buf[0..len) as json_loadb(buf, len, flags, err) does and returns the same tree (a
 * new reference), or NULL with err (when not NULL) filled: line, column and position as
 * jansson counts them, source "<buffer>", a message in text and the json_error_code().
 *
 * flags may hold JSON_REJECT_DUPLICATES, JSON_DECODE_ANY and JSON_ALLOW_NUL; any other flag
 * makes the call fail with json_error_invalid_argument rather than silently parse
 * differently from jansson. Without JSON_REJECT_DUPLICATES a repeated key replaces the
 * earlier value, as in jansson. */
json_t *pl_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);

/* Appends the compact serialization of v to out, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) returns: keys in insertion order, UTF-8
 * written as is, '"', '\\' and control characters escaped. Returns 0, PL_ENOMEM, or
 * PL_EINVAL when v is NULL or nested deeper than PL_JSON_MAX_DEPTH (which is also how a
 * reference loop ends; jansson reports a loop as a failure too). On failure out keeps its
 * earlier contents. Strings are written as their bytes: a string made with a _nocheck
 * constructor that holds invalid UTF-8 is copied through, where jansson would fail. */
int pl_json_dump(pl_buf_t *out, const json_t *v);

#endif
