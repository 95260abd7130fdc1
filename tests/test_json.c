/* Strict JSON parser and writer (src/io/json.c). */
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dmvjnd/dmvjnd.h"
#include "dmvjnd/json.h"

static int parse(const char *text, dj_json **out) { return dj_json_parse(text, strlen(text), "doc", 0, out); }

/* Parse must fail with DJ_EFORMAT and a message containing substr. */
#define CHECK_BAD(text, substr)                                                                                        \
    do {                                                                                                               \
        dj_json *bad_ = NULL;                                                                                          \
        CHECK_FAILS(parse(text, &bad_), DJ_EFORMAT, substr);                                                           \
        CHECK(bad_ == NULL);                                                                                           \
        dj_json_free(bad_);                                                                                            \
    } while (0)

static void test_valid_document(void) {
    dj_json *v;
    const char *text = " {\"a\": [1, -2.5, true, false, null], \"b\": {\"c\": \"d\"}, \"e\": {}, \"f\": []}\n\t\r ";
    CHECK_OK(parse(text, &v));
    if (!v) return;
    CHECK(v->type == DJ_JSON_OBJECT && v->len == 4);
    const dj_json *a = dj_json_get(v, "a");
    CHECK(a && a->type == DJ_JSON_ARRAY && a->len == 5);
    if (a && a->len == 5) {
        CHECK(a->items[0].type == DJ_JSON_NUMBER && a->items[0].is_int && a->items[0].integer == 1);
        CHECK(a->items[1].number == -2.5 && !a->items[1].is_int);
        CHECK(a->items[2].type == DJ_JSON_BOOL && a->items[2].boolean == 1);
        CHECK(a->items[3].type == DJ_JSON_BOOL && a->items[3].boolean == 0);
        CHECK(a->items[4].type == DJ_JSON_NULL);
        CHECK(a->items[0].key == NULL);
    }
    const dj_json *c = dj_json_get(dj_json_get(v, "b"), "c");
    CHECK(c && c->type == DJ_JSON_STRING && strcmp(c->string, "d") == 0 && c->len == 1);
    CHECK(dj_json_get(v, "e")->type == DJ_JSON_OBJECT && dj_json_get(v, "e")->len == 0);
    CHECK(dj_json_get(v, "f")->type == DJ_JSON_ARRAY && dj_json_get(v, "f")->len == 0);
    CHECK(dj_json_get(v, "zz") == NULL);
    CHECK(dj_json_get(a, "a") == NULL); /* not an object */
    CHECK(v->offset == 1);              /* after the leading space */
    CHECK(a->offset == 7);
    dj_json_free(v);

    /* Scalars are documents too. */
    CHECK_OK(parse("\"x\"", &v));
    CHECK(v && v->type == DJ_JSON_STRING);
    dj_json_free(v);
    CHECK_OK(parse("null", &v));
    CHECK(v && v->type == DJ_JSON_NULL);
    dj_json_free(v);
}

static void test_invalid_documents(void) {
    CHECK_BAD("", "unexpected end of input");
    CHECK_BAD("   ", "byte 3");
    CHECK_BAD("{", "expected a string key");
    CHECK_BAD("{\"a\" 1}", "expected ':'");
    CHECK_BAD("{\"a\":1,}", "expected a string key");
    CHECK_BAD("[1,]", "expected a value");
    CHECK_BAD("[1 2]", "expected ',' or ']'");
    CHECK_BAD("{\"a\":1 \"b\":2}", "expected ',' or '}'");
    CHECK_BAD("{'a':1}", "expected a string key");
    CHECK_BAD("{a:1}", "expected a string key");
    CHECK_BAD("[1] x", "after the JSON value");
    CHECK_BAD("{} {}", "after the JSON value");
    CHECK_BAD("// c\n{}", "unexpected '/'");
    CHECK_BAD("[1 /* c */]", "expected ',' or ']'");
    CHECK_BAD("tru", "unexpected 't'");
    CHECK_BAD("True", "unexpected 'T'");
    CHECK_BAD("nul", "unexpected 'n'");
    CHECK_BAD("NaN", "unexpected 'N'");
    CHECK_BAD("[Infinity]", "unexpected 'I'");
    CHECK_BAD("\"abc", "unterminated string");
    CHECK_BAD("[\"a\\\"]", "unterminated string");
    CHECK_BAD("{\"a\":1", "expected ',' or '}'");
    /* byte offsets point at the problem */
    CHECK_BAD("[1, 2, x]", "at byte 7");
    CHECK_BAD("{\"k\": [1, 2}", "at byte 11");

    /* Embedded NUL outside a string. */
    dj_json *v = NULL;
    CHECK_FAILS(dj_json_parse("[1]\0", 4, "doc", 0, &v), DJ_EFORMAT, "byte 0x00");
    CHECK(v == NULL);
    /* The "what" prefix names the document. */
    CHECK_FAILS(dj_json_parse("[", 1, "model.safetensors: header", 0, &v), DJ_EFORMAT,
                "model.safetensors: header: invalid JSON at byte 1");
    /* len bounds the text: no NUL terminator needed, nothing read past it. */
    CHECK_OK(dj_json_parse("[1]garbage", 3, "doc", 0, &v));
    dj_json_free(v);
}

static void test_strings_and_escapes(void) {
    dj_json *v;
    CHECK_OK(parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\"", &v));
    CHECK(v && strcmp(v->string, "q\" b\\ s/ \b\f\n\r\t") == 0);
    dj_json_free(v);

    /* \u escapes become UTF-8: 1, 2, 3 bytes and a surrogate pair (4). */
    CHECK_OK(parse("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"", &v));
    CHECK(v && v->len == 1 + 2 + 3 + 4);
    CHECK(v && memcmp(v->string, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 10) == 0);
    dj_json_free(v);

    /* \u0000 is legal: the length tells it from the terminator. */
    CHECK_OK(parse("\"a\\u0000b\"", &v));
    CHECK(v && v->len == 3 && v->string[1] == '\0' && v->string[2] == 'b');
    dj_json_free(v);

    /* Raw UTF-8 passes through. */
    CHECK_OK(parse("\"\xC2\xB5m \xE2\x82\xAC \xF0\x9F\x98\x80\"", &v));
    CHECK(v && v->len == 2 + 1 + 1 + 3 + 1 + 4);
    dj_json_free(v);

    /* Keys are decoded the same way. */
    CHECK_OK(parse("{\"\\u0041b\": 1}", &v));
    CHECK(v && dj_json_get(v, "Ab") != NULL);
    dj_json_free(v);

    CHECK_BAD("\"\\x\"", "invalid escape '\\x'");
    CHECK_BAD("\"\\u12\"", "4 hex digits");
    CHECK_BAD("\"\\u12G4\"", "4 hex digits");
    CHECK_BAD("\"\\ud83d\"", "unpaired high surrogate");
    CHECK_BAD("\"\\ud83d\\u0041\"", "unpaired high surrogate");
    CHECK_BAD("\"\\ude00\"", "unpaired low surrogate");
    CHECK_BAD("\"a\tb\"", "control character U+0009");
    CHECK_BAD("\"a\nb\"", "control character U+000A");
    CHECK_BAD("\"\xC3\"", "invalid UTF-8");             /* truncated sequence */
    CHECK_BAD("\"\x80\"", "invalid UTF-8");             /* stray continuation */
    CHECK_BAD("\"\xC0\xAF\"", "invalid UTF-8");         /* overlong '/' */
    CHECK_BAD("\"\xE0\x80\xAF\"", "invalid UTF-8");     /* overlong */
    CHECK_BAD("\"\xED\xA0\x80\"", "invalid UTF-8");     /* encoded surrogate */
    CHECK_BAD("\"\xF4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */
    CHECK_BAD("\"\xFF\"", "invalid UTF-8");

    CHECK(dj_utf8_valid("abc\xC2\xB5", 5));
    CHECK(!dj_utf8_valid("abc\xC2", 4));
    CHECK(dj_utf8_valid("", 0));
}

static void test_depth_limit(void) {
    char buf[300];
    dj_json *v;
    /* 5 nested arrays with limit 5: fine; 6: error naming the limit. */
    CHECK_OK(dj_json_parse("[[[[[]]]]]", 10, "doc", 5, &v));
    dj_json_free(v);
    CHECK_FAILS(dj_json_parse("[[[[[[]]]]]]", 12, "doc", 5, &v), DJ_EFORMAT, "nesting deeper than 5 levels");
    CHECK_FAILS(dj_json_parse("{\"a\":{\"b\":{\"c\":1}}}", 19, "doc", 2, &v), DJ_EFORMAT, "deeper than 2");
    /* Default limit (64), with an unterminated very deep document: must fail
     * on depth, not run out of stack. */
    memset(buf, '[', sizeof buf);
    CHECK_FAILS(dj_json_parse(buf, sizeof buf, "doc", 0, &v), DJ_EFORMAT, "nesting deeper than 64");
    CHECK(v == NULL);
    /* Limits above DJ_JSON_MAX_DEPTH are clamped. */
    size_t n = 5000;
    char *deep = malloc(2 * n);
    if (!deep) return;
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    CHECK_FAILS(dj_json_parse(deep, 2 * n, "doc", 1 << 30, &v), DJ_EFORMAT, "deeper than 1024");
    free(deep);
}

static void test_numbers(void) {
    static const struct {
        const char *text;
        int is_int;
        int64_t integer;
        double number;
    } good[] = {
        {"0", 1, 0, 0.0},
        {"-0", 1, 0, -0.0},
        {"7", 1, 7, 7.0},
        {"-12", 1, -12, -12.0},
        {"9223372036854775807", 1, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", 0, 0, 9223372036854775808.0},     /* beyond int64: double */
        {"123456789012345678901234567890", 0, 0, 1.2345678901234568e29},
        {"1.5", 0, 0, 1.5},
        {"-0.25", 0, 0, -0.25},
        {"1e3", 0, 0, 1000.0},
        {"1E+3", 0, 0, 1000.0},
        {"2.5e-3", 0, 0, 0.0025},
        {"1e-400", 0, 0, 0.0}, /* underflow to 0 is not an error */
        {"1.7976931348623157e308", 0, 0, 1.7976931348623157e308},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        dj_json *v;
        CHECK_OK(parse(good[i].text, &v));
        if (!v) continue;
        CHECK(v->type == DJ_JSON_NUMBER);
        CHECK(v->is_int == good[i].is_int);
        if (good[i].is_int) CHECK(v->integer == good[i].integer);
        CHECK(v->number == good[i].number);
        CHECK(signbit(v->number) == signbit(good[i].number));
        dj_json_free(v);
    }
    CHECK_BAD("01", "leading zeros");
    CHECK_BAD("-01", "leading zeros");
    CHECK_BAD("+1", "unexpected '+'");
    CHECK_BAD(".5", "unexpected '.'");
    CHECK_BAD("1.", "digit after '.'");
    CHECK_BAD("1.e5", "digit after '.'");
    CHECK_BAD("1e", "digit in the exponent");
    CHECK_BAD("1e+", "digit in the exponent");
    CHECK_BAD("-", "expected a digit");
    CHECK_BAD("- 1", "expected a digit");
    CHECK_BAD("0x10", "after the JSON value");
    CHECK_BAD("1e999", "out of the range");
    CHECK_BAD("-1e999", "out of the range");
}

static void test_duplicate_keys_kept(void) {
    dj_json *v;
    CHECK_OK(parse("{\"a\":1,\"a\":2}", &v));
    CHECK(v && v->len == 2);
    CHECK(v && dj_json_get(v, "a")->integer == 1); /* first wins */
    dj_json_free(v);
}

static char *write_value(const dj_json *v, int indent) {
    dj_jw w;
    dj_jw_init(&w, indent);
    dj_jw_value(&w, v);
    char *text = NULL;
    size_t len;
    CHECK_OK(dj_jw_finish(&w, &text, &len));
    CHECK(!text || strlen(text) == len);
    return text;
}

static void test_writer_compact_and_escapes(void) {
    dj_jw w;
    dj_jw_init(&w, 0);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "s");
    dj_jw_string(&w, "q\"\\/\n\t\x01\x1f\xC2\xB5");
    dj_jw_key(&w, "n");
    dj_jw_begin_array(&w);
    dj_jw_int(&w, -3);
    dj_jw_uint(&w, UINT64_MAX);
    dj_jw_double(&w, 0.1);
    dj_jw_double(&w, 1e300);
    dj_jw_double(&w, -0.0);
    dj_jw_double(&w, NAN);
    dj_jw_double(&w, INFINITY);
    dj_jw_bool(&w, 1);
    dj_jw_null(&w);
    dj_jw_end_array(&w);
    dj_jw_key(&w, "e");
    dj_jw_begin_object(&w);
    dj_jw_end_object(&w);
    dj_jw_end_object(&w);
    char *text;
    size_t len;
    CHECK_OK(dj_jw_finish(&w, &text, &len));
    const char *want = "{\"s\":\"q\\\"\\\\/\\n\\t\\u0001\\u001F\xC2\xB5\","
                       "\"n\":[-3,18446744073709551615,0.1,1e+300,-0,null,null,true,null],\"e\":{}}";
    CHECK(text && strcmp(text, want) == 0);
    if (text && strcmp(text, want) != 0) fprintf(stderr, "got  %s\nwant %s\n", text, want);
    /* What we write, we read back. */
    dj_json *v;
    CHECK_OK(dj_json_parse(text, len, "out", 0, &v));
    CHECK(v && strcmp(dj_json_get(v, "s")->string, "q\"\\/\n\t\x01\x1f\xC2\xB5") == 0);
    dj_json_free(v);
    free(text);
}

static void test_writer_pretty(void) {
    dj_jw w;
    dj_jw_init(&w, 2);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "a");
    dj_jw_begin_array(&w);
    dj_jw_int(&w, 1);
    dj_jw_int(&w, 2);
    dj_jw_end_array(&w);
    dj_jw_key(&w, "b");
    dj_jw_begin_array(&w);
    dj_jw_end_array(&w);
    dj_jw_end_object(&w);
    char *text;
    CHECK_OK(dj_jw_finish(&w, &text, NULL));
    const char *want = "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": []\n}";
    CHECK(text && strcmp(text, want) == 0);
    if (text && strcmp(text, want) != 0) fprintf(stderr, "got  %s\nwant %s\n", text, want);
    free(text);
}

static void test_writer_errors(void) {
    dj_jw w;
    dj_jw_init(&w, 0);
    dj_jw_begin_array(&w);
    dj_jw_string(&w, "bad \xFF utf8");
    dj_jw_end_array(&w);
    char *text = (char *)"x";
    CHECK_FAILS(dj_jw_finish(&w, &text, NULL), DJ_EINVAL, "not valid UTF-8");
    CHECK(text == NULL);

    dj_jw_init(&w, 0);
    dj_jw_begin_object(&w);
    CHECK_FAILS(dj_jw_finish(&w, NULL, NULL), DJ_EINTERNAL, "left open");

    dj_jw_init(&w, 0);
    dj_jw_end_array(&w);
    CHECK_FAILS(dj_jw_finish(&w, NULL, NULL), DJ_EINTERNAL, "closed than opened");

    dj_jw_init(&w, 0);
    dj_jw_begin_object(&w);
    dj_jw_key(&w, "k");
    dj_jw_end_object(&w);
    CHECK_FAILS(dj_jw_finish(&w, NULL, NULL), DJ_EINTERNAL, "key without a value");
}

static void test_roundtrip_tree(void) {
    const char *text = "{\"a\":[1,-2.5,true,false,null,\"x\\u0000y\"],\"b\":{\"c\\n\":{\"d\":[[],{}]}},"
                       "\"n\":[9223372036854775807,-9223372036854775808,0.30000000000000004,1e-300]}";
    dj_json *v, *v2;
    CHECK_OK(parse(text, &v));
    char *out = v ? write_value(v, 0) : NULL;
    CHECK(out && strcmp(out, text) == 0);
    if (out && strcmp(out, text) != 0) fprintf(stderr, "got  %s\nwant %s\n", out, text);
    /* Pretty output parses to the same tree, written back compact. */
    char *pretty = v ? write_value(v, 4) : NULL;
    CHECK_OK(dj_json_parse(pretty ? pretty : "", pretty ? strlen(pretty) : 0, "pretty", 0, &v2));
    char *again = v2 ? write_value(v2, 0) : NULL;
    CHECK(again && strcmp(again, text) == 0);
    free(out);
    free(pretty);
    free(again);
    dj_json_free(v);
    dj_json_free(v2);
}

/* A comma-decimal locale must not change what is read or written. */
static void test_locale_independent(void) {
    const char *locs[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < 4 && !got; i++) got = setlocale(LC_NUMERIC, locs[i]);
    dj_json *v;
    CHECK_OK(parse("[2.5]", &v));
    CHECK(v && v->items[0].number == 2.5);
    char *out = v ? write_value(v, 0) : NULL;
    CHECK(out && strcmp(out, "[2.5]") == 0);
    free(out);
    dj_json_free(v);
    setlocale(LC_NUMERIC, "C");
    if (!got) printf("test_json: note: no comma-decimal locale installed, locale test ran in C\n");
}

int main(void) {
    dj_set_log(NULL, NULL, DJ_LOG_ERROR);
    RUN(test_valid_document);
    RUN(test_invalid_documents);
    RUN(test_strings_and_escapes);
    RUN(test_depth_limit);
    RUN(test_numbers);
    RUN(test_duplicate_keys_kept);
    RUN(test_writer_compact_and_escapes);
    RUN(test_writer_pretty);
    RUN(test_writer_errors);
    RUN(test_roundtrip_tree);
    RUN(test_locale_independent);
    return check_report("test_json");
}
