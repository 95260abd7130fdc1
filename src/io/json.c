/* Strict JSON parser and compact/pretty writer; see json.h for the rules. */
#include "dmvjnd/json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmvjnd/core.h"

/* ---------------------------------------------------------------- UTF-8 -- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid.
 * Follows RFC 3629: rejects overlong forms, surrogates (U+D800..DFFF) and
 * code points above U+10FFFF, which Python and serde reject too. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0xC2) return 0;        /* stray continuation or overlong 2-byte */
    else if (c < 0xE0) need = 2;
    else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;  /* overlong */
        if (c == 0xED) hi = 0x9F;  /* surrogates */
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0) lo = 0x90;  /* overlong */
        if (c == 0xF4) hi = 0x8F;  /* above U+10FFFF */
    } else return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

int dj_utf8_valid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static size_t utf8_put(char *out, unsigned long cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* --------------------------------------------------------------- parser -- */

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    const char *what;
    int max_depth;
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int perr(const parser *p, size_t at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dj_error(DJ_EFORMAT, "%s: invalid JSON at byte %zu: %s", p->what, at, msg);
}

static int oom(const parser *p) {
    return dj_error(DJ_ENOMEM, "%s: out of memory while parsing JSON", p->what);
}

/* Describe the byte at p->pos for an error message. */
static const char *describe(const parser *p, char *buf, size_t size) {
    if (p->pos >= p->len) return "end of input";
    unsigned c = p->s[p->pos];
    if (c >= 0x21 && c < 0x7F) snprintf(buf, size, "'%c'", (char)c);
    else snprintf(buf, size, "byte 0x%02X", c);
    return buf;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex4(const unsigned char *s, unsigned long *out) {
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *out = v;
    return 1;
}

/* Parse the string starting at the opening quote at p->pos. */
static int parse_string(parser *p, char **out, size_t *out_len) {
    size_t start = p->pos + 1, end = start;
    /* Find the closing quote first so one allocation of the literal's size
     * holds the decoded text (decoding never makes a string longer). */
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return perr(p, p->pos, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf) return oom(p);
    size_t n = 0, i = start;
    while (i < end) {
        unsigned c = p->s[i];
        if (c < 0x20) {
            free(buf);
            return perr(p, i, "control character U+%04X in a string must be escaped", c);
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(p->s + i, end - i);
            if (!k) {
                free(buf);
                return perr(p, i, "invalid UTF-8 in a string");
            }
            memcpy(buf + n, p->s + i, k);
            n += k;
            i += k;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            i++;
            continue;
        }
        /* Escape; the scan above guarantees i + 1 < end + 1, i.e. a next byte. */
        unsigned e = p->s[i + 1];
        const char *simple = strchr("\"\\/bfnrt", (int)e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            buf[n++] = map[simple - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        unsigned long cp;
        if (e != 'u' || end - i < 6 || !hex4(p->s + i + 2, &cp)) {
            free(buf);
            if (e == 'u') return perr(p, i, "\\u must be followed by 4 hex digits");
            return perr(p, i, "invalid escape '\\%c'", e >= 0x21 && e < 0x7F ? (char)e : '?');
        }
        size_t esc_at = i;
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(buf);
            return perr(p, esc_at, "unpaired low surrogate \\u%04lX", cp);
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned long lo;
            if (end - i < 6 || p->s[i] != '\\' || p->s[i + 1] != 'u' || !hex4(p->s + i + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF) {
                free(buf);
                return perr(p, esc_at, "unpaired high surrogate \\u%04lX", cp);
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        n += utf8_put(buf + n, cp);
    }
    buf[n] = '\0';
    p->pos = end + 1;
    *out = buf;
    *out_len = n;
    return DJ_OK;
}

static int is_digit(parser *p, size_t at) { return at < p->len && p->s[at] >= '0' && p->s[at] <= '9'; }

static int parse_number(parser *p, dj_json *v) {
    size_t start = p->pos, i = p->pos;
    int neg = 0, int_form = 1;
    if (p->s[i] == '-') {
        neg = 1;
        i++;
    }
    if (!is_digit(p, i)) return perr(p, i, "expected a digit");
    if (p->s[i] == '0') {
        i++;
        if (is_digit(p, i)) return perr(p, start, "leading zeros are not allowed in numbers");
    } else {
        while (is_digit(p, i)) i++;
    }
    if (i < p->len && p->s[i] == '.') {
        int_form = 0;
        i++;
        if (!is_digit(p, i)) return perr(p, i, "expected a digit after '.'");
        while (is_digit(p, i)) i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        int_form = 0;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (!is_digit(p, i)) return perr(p, i, "expected a digit in the exponent");
        while (is_digit(p, i)) i++;
    }
    v->type = DJ_JSON_NUMBER;
    p->pos = i;
    if (int_form) {
        /* Exact integer path: offsets and shapes must not go through a double. */
        uint64_t u = 0;
        int overflow = 0;
        for (size_t k = start + (size_t)neg; k < i; k++) {
            unsigned d = p->s[k] - '0';
            if (u > (UINT64_MAX - d) / 10) {
                overflow = 1;
                break;
            }
            u = u * 10 + d;
        }
        if (!overflow && (neg ? u <= (uint64_t)INT64_MAX + 1 : u <= (uint64_t)INT64_MAX)) {
            v->is_int = 1;
            v->integer = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
            v->number = neg && u == 0 ? -0.0 : (double)v->integer; /* keep "-0" negative */
            return DJ_OK;
        }
    }
    /* strtod follows LC_NUMERIC, so hand it the literal with the locale's
     * decimal point in place of '.'. */
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp && *dp ? strlen(dp) : 1;
    size_t n = i - start;
    char small[128], *buf = n + dpl < sizeof small ? small : malloc(n + dpl + 1);
    if (!buf) return oom(p);
    size_t m = 0;
    for (size_t k = start; k < i; k++) {
        if (p->s[k] == '.' && dp && *dp) {
            memcpy(buf + m, dp, dpl);
            m += dpl;
        } else {
            buf[m++] = (char)p->s[k];
        }
    }
    buf[m] = '\0';
    errno = 0;
    char *endp;
    double d = strtod(buf, &endp);
    int bad = endp != buf + m;
    int range = errno == ERANGE && isinf(d);
    if (buf != small) free(buf);
    if (bad) return perr(p, start, "malformed number");
    if (range) return perr(p, start, "number out of the range of a double");
    v->number = d;
    return DJ_OK;
}

static void free_contents(dj_json *v) {
    free(v->key);
    if (v->type == DJ_JSON_STRING) free(v->string);
    if (v->type == DJ_JSON_ARRAY || v->type == DJ_JSON_OBJECT) {
        for (size_t i = 0; i < v->len; i++) free_contents(&v->items[i]);
        free(v->items);
    }
}

static int parse_value(parser *p, dj_json *v, int depth);

/* Arrays and objects: items grow by doubling; on failure the partial
 * container is left consistent (len counts finished items) for free. */
static int parse_container(parser *p, dj_json *v, int depth, int is_object) {
    char close = is_object ? '}' : ']';
    if (depth + 1 > p->max_depth) return perr(p, p->pos, "nesting deeper than %d levels", p->max_depth);
    v->type = is_object ? DJ_JSON_OBJECT : DJ_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) {
        p->pos++;
        return DJ_OK;
    }
    size_t cap = 0;
    for (;;) {
        if (v->len == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            dj_json *items = realloc(v->items, ncap * sizeof *items);
            if (!items) return oom(p);
            v->items = items;
            cap = ncap;
        }
        dj_json *item = &v->items[v->len];
        memset(item, 0, sizeof *item);
        char d[16];
        skip_ws(p);
        if (is_object) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return perr(p, p->pos, "expected a string key, found %s", describe(p, d, sizeof d));
            char *key;
            size_t key_len;
            int st = parse_string(p, &key, &key_len);
            if (st) return st;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return perr(p, p->pos, "expected ':' after an object key, found %s", describe(p, d, sizeof d));
            }
            p->pos++;
            int st2 = parse_value(p, item, depth + 1);
            item->key = key; /* after parse_value, which may have zeroed item */
            item->key_len = key_len;
            v->len++;
            if (st2) return st2;
        } else {
            int st = parse_value(p, item, depth + 1);
            v->len++;
            if (st) return st;
        }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) {
            p->pos++;
            return DJ_OK;
        }
        return perr(p, p->pos, "expected ',' or '%c' after %s, found %s", close,
                    is_object ? "an object member" : "an array element", describe(p, d, sizeof d));
    }
}

static int parse_value(parser *p, dj_json *v, int depth) {
    skip_ws(p);
    memset(v, 0, sizeof *v);
    v->offset = p->pos;
    if (p->pos >= p->len) return perr(p, p->pos, "unexpected end of input, expected a value");
    unsigned c = p->s[p->pos];
    if (c == '{') return parse_container(p, v, depth, 1);
    if (c == '[') return parse_container(p, v, depth, 0);
    if (c == '"') {
        v->type = DJ_JSON_STRING;
        return parse_string(p, &v->string, &v->len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    static const struct {
        const char *word;
        dj_json_type type;
        int boolean;
    } lits[] = {{"true", DJ_JSON_BOOL, 1}, {"false", DJ_JSON_BOOL, 0}, {"null", DJ_JSON_NULL, 0}};
    for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
        size_t n = strlen(lits[k].word);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[k].word, n) == 0) {
            v->type = lits[k].type;
            v->boolean = lits[k].boolean;
            p->pos += n;
            return DJ_OK;
        }
    }
    char d[16];
    return perr(p, p->pos, "unexpected %s, expected a value", describe(p, d, sizeof d));
}

int dj_json_parse(const char *text, size_t len, const char *what, int max_depth, dj_json **out) {
    *out = NULL;
    if (!what) what = "JSON";
    if (!text && len) return dj_error(DJ_EINVAL, "%s: NULL text", what);
    parser p = {(const unsigned char *)text, len, 0, what, max_depth};
    if (p.max_depth <= 0) p.max_depth = DJ_JSON_DEFAULT_DEPTH;
    if (p.max_depth > DJ_JSON_MAX_DEPTH) p.max_depth = DJ_JSON_MAX_DEPTH;
    dj_json *root = calloc(1, sizeof *root);
    if (!root) return oom(&p);
    int st = parse_value(&p, root, 0);
    if (!st) {
        skip_ws(&p);
        if (p.pos < p.len) {
            char d[16];
            st = perr(&p, p.pos, "unexpected %s after the JSON value", describe(&p, d, sizeof d));
        }
    }
    if (st) {
        dj_json_free(root);
        return st;
    }
    *out = root;
    return DJ_OK;
}

void dj_json_free(dj_json *root) {
    if (!root) return;
    free_contents(root);
    free(root);
}

const dj_json *dj_json_get(const dj_json *obj, const char *key) {
    if (!obj || obj->type != DJ_JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->len; i++)
        if (obj->items[i].key_len == n && memcmp(obj->items[i].key, key, n) == 0) return &obj->items[i];
    return NULL;
}

const char *dj_json_type_name(dj_json_type type) {
    switch (type) {
    case DJ_JSON_NULL: return "null";
    case DJ_JSON_BOOL: return "bool";
    case DJ_JSON_NUMBER: return "number";
    case DJ_JSON_STRING: return "string";
    case DJ_JSON_ARRAY: return "array";
    case DJ_JSON_OBJECT: return "object";
    }
    return "?";
}

/* --------------------------------------------------------------- writer -- */

void dj_jw_init(dj_jw *w, int indent) {
    memset(w, 0, sizeof *w);
    w->indent = indent < 0 ? 0 : indent;
}

static void jw_fail(dj_jw *w, int status, const char *why) {
    if (w->status) return;
    w->status = status;
    w->why = why;
}

static int jw_reserve(dj_jw *w, size_t extra) {
    if (w->status) return 0;
    if (w->len + extra + 1 <= w->cap) return 1;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            jw_fail(w, DJ_ENOMEM, "document too large");
            return 0;
        }
        cap *= 2;
    }
    char *buf = realloc(w->buf, cap);
    if (!buf) {
        jw_fail(w, DJ_ENOMEM, "out of memory");
        return 0;
    }
    w->buf = buf;
    w->cap = cap;
    return 1;
}

static void jw_put(dj_jw *w, const char *s, size_t n) {
    if (!jw_reserve(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void jw_putc(dj_jw *w, char c) { jw_put(w, &c, 1); }

static void jw_newline(dj_jw *w) {
    if (!w->indent) return;
    jw_putc(w, '\n');
    for (int i = 0; i < w->depth * w->indent; i++) jw_putc(w, ' ');
}

/* Separator before a value or key: none right after a key, else ',' if
 * something precedes it at this level, and a newline when pretty-printing. */
static void jw_pre(dj_jw *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->need_comma) jw_putc(w, ',');
    if (w->depth > 0) jw_newline(w);
}

static void jw_quoted(dj_jw *w, const char *s, size_t n) {
    if (!s) {
        jw_fail(w, DJ_EINVAL, "NULL string");
        return;
    }
    if (!dj_utf8_valid(s, n)) {
        /* Python's json.loads and serde would reject the file; refuse here. */
        jw_fail(w, DJ_EINVAL, "string is not valid UTF-8");
        return;
    }
    jw_putc(w, '"');
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(ubuf, sizeof ubuf, "\\u%04X", c);
                esc = ubuf;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        jw_put(w, s + i - run, run);
        run = 0;
        jw_put(w, esc, strlen(esc));
    }
    jw_put(w, s + n - run, run);
    jw_putc(w, '"');
}

void dj_jw_begin_object(dj_jw *w) {
    jw_pre(w);
    jw_putc(w, '{');
    w->depth++;
    w->need_comma = 0;
}

void dj_jw_begin_array(dj_jw *w) {
    jw_pre(w);
    jw_putc(w, '[');
    w->depth++;
    w->need_comma = 0;
}

static void jw_end(dj_jw *w, char c) {
    if (w->depth <= 0 || w->after_key) {
        jw_fail(w, DJ_EINTERNAL, w->after_key ? "key without a value" : "more containers closed than opened");
        return;
    }
    w->depth--;
    if (w->need_comma) jw_newline(w);
    jw_putc(w, c);
    w->need_comma = 1;
}

void dj_jw_end_object(dj_jw *w) { jw_end(w, '}'); }
void dj_jw_end_array(dj_jw *w) { jw_end(w, ']'); }

void dj_jw_key_n(dj_jw *w, const char *key, size_t len) {
    jw_pre(w);
    jw_quoted(w, key, len);
    jw_put(w, w->indent ? ": " : ":", w->indent ? 2 : 1);
    w->after_key = 1;
    w->need_comma = 1;
}

void dj_jw_key(dj_jw *w, const char *key) { dj_jw_key_n(w, key, key ? strlen(key) : 0); }

void dj_jw_string_n(dj_jw *w, const char *s, size_t len) {
    jw_pre(w);
    jw_quoted(w, s, len);
    w->need_comma = 1;
}

void dj_jw_string(dj_jw *w, const char *s) { dj_jw_string_n(w, s, s ? strlen(s) : 0); }

static void jw_scalar(dj_jw *w, const char *text) {
    jw_pre(w);
    jw_put(w, text, strlen(text));
    w->need_comma = 1;
}

void dj_jw_double(dj_jw *w, double v) {
    if (!isfinite(v)) {
        jw_scalar(w, "null");
        return;
    }
    char buf[64];
    /* Shortest of 15..17 significant digits that reads back exactly, so 0.1
     * prints as 0.1 and every double still round-trips. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* snprintf used the locale's decimal point; JSON wants '.'. */
    const char *dp = localeconv()->decimal_point;
    if (dp && *dp && strcmp(dp, ".") != 0) {
        char *at = strstr(buf, dp);
        if (at) {
            size_t dpl = strlen(dp);
            *at = '.';
            memmove(at + 1, at + dpl, strlen(at + dpl) + 1);
        }
    }
    jw_scalar(w, buf);
}

void dj_jw_int(dj_jw *w, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    jw_scalar(w, buf);
}

void dj_jw_uint(dj_jw *w, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    jw_scalar(w, buf);
}

void dj_jw_bool(dj_jw *w, int v) { jw_scalar(w, v ? "true" : "false"); }
void dj_jw_null(dj_jw *w) { jw_scalar(w, "null"); }

void dj_jw_value(dj_jw *w, const dj_json *v) {
    if (!v) {
        jw_fail(w, DJ_EINVAL, "NULL value");
        return;
    }
    switch (v->type) {
    case DJ_JSON_NULL: dj_jw_null(w); break;
    case DJ_JSON_BOOL: dj_jw_bool(w, v->boolean); break;
    case DJ_JSON_NUMBER:
        /* "-0" parses as integer 0 with a negative double: keep the sign. */
        if (v->is_int && !(v->integer == 0 && signbit(v->number))) dj_jw_int(w, v->integer);
        else dj_jw_double(w, v->number);
        break;
    case DJ_JSON_STRING: dj_jw_string_n(w, v->string, v->len); break;
    case DJ_JSON_ARRAY:
    case DJ_JSON_OBJECT:
        if (v->type == DJ_JSON_OBJECT) dj_jw_begin_object(w);
        else dj_jw_begin_array(w);
        for (size_t i = 0; i < v->len; i++) {
            if (v->type == DJ_JSON_OBJECT) dj_jw_key_n(w, v->items[i].key, v->items[i].key_len);
            dj_jw_value(w, &v->items[i]);
        }
        if (v->type == DJ_JSON_OBJECT) dj_jw_end_object(w);
        else dj_jw_end_array(w);
        break;
    }
}

int dj_jw_finish(dj_jw *w, char **text, size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!w->status && (w->depth != 0 || w->after_key)) jw_fail(w, DJ_EINTERNAL, "containers left open");
    if (!w->status && !w->buf) jw_fail(w, DJ_EINTERNAL, "nothing was written");
    if (w->status) {
        int st = dj_error(w->status, "JSON writer: %s", w->why);
        dj_jw_free(w);
        return st;
    }
    if (text) *text = w->buf;
    else free(w->buf);
    if (len) *len = w->len;
    int indent = w->indent;
    dj_jw_init(w, indent);
    return DJ_OK;
}

void dj_jw_free(dj_jw *w) {
    int indent = w->indent;
    free(w->buf);
    dj_jw_init(w, indent);
}
