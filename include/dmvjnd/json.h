/*
 * A small strict JSON (RFC 8259) parser and writer: the safetensors header
 * uses the parser; reports and the CLI's JSON output use the writer.
 *
 * Parser
 *   dj_json_parse() turns a text into a tree of dj_json nodes. It accepts
 *   exactly RFC 8259 and nothing else, because a lenient parser would accept
 *   files that other readers (Python's json, serde) reject:
 *     - no comments, no trailing commas, no single quotes, no NaN/Infinity,
 *       no leading zeros or '+' signs on numbers, no bare control characters
 *       in strings;
 *     - strings must be valid UTF-8 (no overlong forms, no encoded surrogates,
 *       nothing above U+10FFFF); \uXXXX escapes are decoded to UTF-8, and
 *       surrogate pairs must be complete (a lone surrogate is an error);
 *     - numbers whose magnitude overflows a double are an error;
 *     - only whitespace may follow the top-level value;
 *     - nesting deeper than max_depth arrays/objects is an error (the parser
 *       recurses, so this bounds its stack use).
 *   Duplicate object keys are kept in document order (RFC 8259 leaves them
 *   to the application); dj_json_get returns the first. Callers that need
 *   unique keys check for them (the safetensors reader does).
 *   Errors return DJ_EFORMAT (DJ_ENOMEM for allocation failures) and set
 *   dj_last_error() to "<what>: invalid JSON at byte <offset>: <problem>".
 *
 * Writer
 *   dj_jw builds a JSON text in memory. Commas and colons are inserted
 *   automatically; the caller emits keys and values in order. Errors (out of
 *   memory, invalid UTF-8 in a string, unbalanced containers) are sticky and
 *   reported once by dj_jw_finish, so call sites do not check every call.
 *   Non-finite numbers are written as null (JSON has no NaN or Infinity).
 *   Doubles are written with the fewest digits that read back to the same
 *   value, always with '.' as the decimal point whatever the C locale is.
 */
#ifndef DMVJND_JSON_H
#define DMVJND_JSON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dj_json_type {
    DJ_JSON_NULL = 0,
    DJ_JSON_BOOL,
    DJ_JSON_NUMBER,
    DJ_JSON_STRING,
    DJ_JSON_ARRAY,
    DJ_JSON_OBJECT
} dj_json_type;

/* Default and largest accepted max_depth of dj_json_parse. */
#define DJ_JSON_DEFAULT_DEPTH 64
#define DJ_JSON_MAX_DEPTH 1024

typedef struct dj_json dj_json;
struct dj_json {
    dj_json_type type;
    size_t offset;     /* byte offset of the value's first character in the text */
    /* Set on members of an object (NULL otherwise): NUL-terminated UTF-8; it
     * may contain a \u0000 escape, so key_len is the true length. */
    char *key;
    size_t key_len;
    int boolean;       /* DJ_JSON_BOOL: 0 or 1 */
    double number;     /* DJ_JSON_NUMBER: value as a double */
    int is_int;        /* DJ_JSON_NUMBER: written without fraction or exponent
                          and within int64 range; then `integer` is exact */
    int64_t integer;
    char *string;      /* DJ_JSON_STRING: NUL-terminated UTF-8 (may hold \0) */
    size_t len;        /* string: bytes excluding the NUL; array/object: count */
    dj_json *items;    /* DJ_JSON_ARRAY elements / DJ_JSON_OBJECT members */
};

/* Parse text[0..len) (no NUL terminator needed). `what` names the document
 * in error messages (e.g. "model.safetensors: header"); max_depth <= 0 means
 * DJ_JSON_DEFAULT_DEPTH, larger than DJ_JSON_MAX_DEPTH is clamped to it.
 * On success *out is the root; free it with dj_json_free. */
int dj_json_parse(const char *text, size_t len, const char *what, int max_depth, dj_json **out);

/* Free a tree returned by dj_json_parse (NULL is fine). */
void dj_json_free(dj_json *root);

/* First member of `obj` whose key is `key` (NUL-terminated; keys with an
 * embedded NUL never match). NULL if obj is not an object or has no such key. */
const dj_json *dj_json_get(const dj_json *obj, const char *key);

/* "null", "bool", "number", "string", "array", "object". */
const char *dj_json_type_name(dj_json_type type);

/* 1 if s[0..len) is valid UTF-8 under the same rules as the parser. */
int dj_utf8_valid(const char *s, size_t len);

/* ---- writer ---- */

typedef struct dj_jw {
    char *buf;       /* the text so far, NUL-terminated when non-NULL */
    size_t len, cap;
    int indent;      /* spaces per nesting level; 0 writes compact JSON */
    int depth;       /* open containers */
    int need_comma;  /* a value was written at this level: next one needs ',' */
    int after_key;   /* a key was written: the next value follows its ':' */
    int status;      /* first error (sticky), 0 if none */
    const char *why; /* what the first error was */
} dj_jw;

/* indent 0: compact output, e.g. {"a":[1,2]} (what safetensors headers use). */
void dj_jw_init(dj_jw *w, int indent);
void dj_jw_begin_object(dj_jw *w);
void dj_jw_end_object(dj_jw *w);
void dj_jw_begin_array(dj_jw *w);
void dj_jw_end_array(dj_jw *w);
void dj_jw_key(dj_jw *w, const char *key);
void dj_jw_key_n(dj_jw *w, const char *key, size_t len);
void dj_jw_string(dj_jw *w, const char *s);
void dj_jw_string_n(dj_jw *w, const char *s, size_t len);
void dj_jw_double(dj_jw *w, double v);
void dj_jw_int(dj_jw *w, int64_t v);
void dj_jw_uint(dj_jw *w, uint64_t v);
void dj_jw_bool(dj_jw *w, int v);
void dj_jw_null(dj_jw *w);
/* Write a parsed tree (numbers that were integers are written exactly). */
void dj_jw_value(dj_jw *w, const dj_json *v);

/* Finish: on success *text (malloc'd, NUL-terminated; free with free()) and
 * *len receive the document and the writer is reset; on failure the buffer is
 * freed and the sticky error is returned with dj_last_error() set. Either out
 * pointer may be NULL to just check and discard. */
int dj_jw_finish(dj_jw *w, char **text, size_t *len);

/* Discard a writer without finishing it. */
void dj_jw_free(dj_jw *w);

#ifdef __cplusplus
}
#endif

#endif
