/* SOURCES: ngx_http_loom_json.c ngx_http_loom_json_text.c */
/* SOURCES: ngx_http_loom_utf8.c */

/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_json.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>


/*
 * Every scan copies its input to a heap buffer of the exact size, so that
 * a sanitizer or valgrind sees any read past the end.
 */

static u_char                         *in;
static u_char                         *scratch;
static size_t                          in_len;
static ngx_http_loom_json_envelope_t   env;
static ngx_str_t                       err;
static u_char                          errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];


static void
release(void)
{
    free(in);
    free(scratch);
    in = NULL;
    scratch = NULL;
}


static ngx_int_t
scan_n(const char *json, size_t len, ngx_uint_t max_depth)
{
    ngx_int_t  rc;

    release();

    in = malloc(len ? len : 1);
    scratch = malloc(len ? len : 1);
    assert_non_null(in);
    assert_non_null(scratch);

    memcpy(in, json, len);
    in_len = len;

    memset(errbuf, 0xa5, sizeof(errbuf));
    err.data = errbuf;
    err.len = 0;

    rc = ngx_http_loom_json_scan_envelope(in, len, max_depth, scratch, &env,
                                          &err);

    if (rc == NGX_ERROR) {
        assert_true(err.len > 0);
        assert_true(err.len < NGX_HTTP_LOOM_JSON_ERRLEN);
        assert_int_equal(err.data[err.len], '\0');
        assert_int_equal(strlen((char *) err.data), err.len);

    } else {
        assert_int_equal(rc, NGX_OK);
    }

    return rc;
}


static ngx_int_t
scan(const char *json)
{
    return scan_n(json, strlen(json), 64);
}


static int
teardown(void **state)
{
    release();
    return 0;
}


#define EXPECT_ERROR(json, msg)                                              \
    do {                                                                     \
        assert_int_equal(scan(json), NGX_ERROR);                             \
        assert_string_equal((char *) err.data, msg);                         \
    } while (0)

#define EXPECT_ERROR_N(json, len, msg)                                       \
    do {                                                                     \
        assert_int_equal(scan_n(json, len, 64), NGX_ERROR);                  \
        assert_string_equal((char *) err.data, msg);                         \
    } while (0)

#define EXPECT_OK(json)                                                      \
    assert_int_equal(scan(json), NGX_OK)

#define ASSERT_STR(s, lit)                                                   \
    do {                                                                     \
        assert_int_equal((s).len, sizeof(lit) - 1);                          \
        assert_memory_equal((s).data, lit, sizeof(lit) - 1);                 \
    } while (0)

#define ASSERT_EMPTY(s)                                                      \
    assert_int_equal((s).len, 0)

/* a raw span must lie inside the input */
#define ASSERT_SPAN(s, lit)                                                  \
    do {                                                                     \
        ASSERT_STR(s, lit);                                                  \
        assert_true((s).data >= in);                                         \
        assert_true((s).data + (s).len <= in + in_len);                      \
    } while (0)

#define ASSERT_RAW(v, lit)                                                   \
    ASSERT_SPAN((v).raw, lit)

/* a decoded string must lie inside the scratch buffer */
#define ASSERT_DECODED(s, lit)                                               \
    do {                                                                     \
        ASSERT_STR(s, lit);                                                  \
        assert_true((s).data >= scratch);                                    \
        assert_true((s).data + (s).len <= scratch + in_len);                 \
    } while (0)


#define TYPE_ERR(kind, field, type)                                          \
    "json: cannot unmarshal " kind " into Go struct field "                  \
    "WebSocketMessage." field " of type " type

#define TOP_ERR(kind)                                                        \
    "json: cannot unmarshal " kind                                           \
    " into Go value of type network.WebSocketMessage"


/* the examples of the specification */

static void
test_examples(void **state)
{
    EXPECT_ERROR("hello",
                 "invalid character 'h' looking for beginning of value");
    EXPECT_ERROR("{\"id\":}",
                 "invalid character '}' looking for beginning of value");
    EXPECT_ERROR("{\"a\" 1}", "invalid character '1' after object key");
    EXPECT_ERROR("{\"a\":1 \"b\":2}",
                 "invalid character '\"' after object key:value pair");
    EXPECT_ERROR("[1 2]", "invalid character '2' after array element");
    EXPECT_ERROR("{\"a\":tru}",
                 "invalid character '}' in literal true (expecting 'e')");
    EXPECT_ERROR("{'a':1}",
                 "invalid character '\\'' looking for beginning of object "
                 "key string");
}


static void
test_valid_envelope(void **state)
{
    EXPECT_OK("{\"id\":\"m1\",\"action\":\"publish\",\"topic\":\"news\","
              "\"data\":{\"a\": 1},\"requireAck\":true,\"senderId\":\"s\"}");

    ASSERT_DECODED(env.id_str, "m1");
    ASSERT_DECODED(env.action_str, "publish");
    ASSERT_DECODED(env.topic_str, "news");
    ASSERT_DECODED(env.sender_id_str, "s");

    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.id, "\"m1\"");
    ASSERT_RAW(env.action, "\"publish\"");
    ASSERT_RAW(env.topic, "\"news\"");
    ASSERT_RAW(env.sender_id, "\"s\"");

    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_OBJECT);
    ASSERT_RAW(env.data, "{\"a\": 1}");

    assert_int_equal(env.require_ack.type, NGX_HTTP_LOOM_JSON_TRUE);
    ASSERT_RAW(env.require_ack, "true");
    assert_int_equal(env.require_ack_flag, 1);

    assert_int_equal(env.null_document, 0);
    ASSERT_EMPTY(env.data_overflow);
}


static void
test_revision_members(void **state)
{
    /* kept as sent, whatever their type; the last duplicate wins */

    EXPECT_OK("{\"action\":\"subscribe\",\"SNAPSHOT\":true,"
              "\"since\":{\"epoch\":\"e\",\"rev\":4},"
              "\"retention\":{\"history\":1},\"storage\":\"memory\","
              "\"limit\":1e400,\"reverse\":\"x\",\"from\":[1],"
              "\"until\":null,\"limit\":7}");

    assert_int_equal(env.snapshot.type, NGX_HTTP_LOOM_JSON_TRUE);
    assert_int_equal(env.since.type, NGX_HTTP_LOOM_JSON_OBJECT);
    ASSERT_RAW(env.since, "{\"epoch\":\"e\",\"rev\":4}");
    ASSERT_RAW(env.retention, "{\"history\":1}");
    assert_int_equal(env.storage.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.storage, "\"memory\"");
    assert_int_equal(env.limit.type, NGX_HTTP_LOOM_JSON_NUMBER);
    ASSERT_RAW(env.limit, "7");
    assert_int_equal(env.reverse.type, NGX_HTTP_LOOM_JSON_STRING);
    assert_int_equal(env.from.type, NGX_HTTP_LOOM_JSON_ARRAY);
    assert_int_equal(env.until.type, NGX_HTTP_LOOM_JSON_NULL);

    /* no type error, and a big number outside "data" is no overflow */
    ASSERT_EMPTY(env.data_overflow);

    EXPECT_OK("{\"action\":\"get\"}");
    assert_int_equal(env.snapshot.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.since.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.until.type, NGX_HTTP_LOOM_JSON_NONE);
}


static void
test_schema_members(void **state)
{
    /* the longest names yet: "compatibility" (13), any case */

    EXPECT_OK("{\"action\":\"updateSchema\",\"schemaType\":\"json-schema\","
              "\"COMPATIBILITY\":\"full\",\"version\":12}");

    assert_int_equal(env.schema_type.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.schema_type, "\"json-schema\"");
    assert_int_equal(env.compatibility.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.compatibility, "\"full\"");
    assert_int_equal(env.version.type, NGX_HTTP_LOOM_JSON_NUMBER);
    ASSERT_RAW(env.version, "12");

    /* one letter more is another member, ignored */

    EXPECT_OK("{\"compatibilityx\":1,\"versions\":2}");
    assert_int_equal(env.compatibility.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.version.type, NGX_HTTP_LOOM_JSON_NONE);
}


static void
test_absent_members(void **state)
{
    EXPECT_OK("{}");

    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.action.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.topic.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.require_ack.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.sender_id.type, NGX_HTTP_LOOM_JSON_NONE);
    ASSERT_EMPTY(env.id_str);
    ASSERT_EMPTY(env.action_str);
    ASSERT_EMPTY(env.topic_str);
    ASSERT_EMPTY(env.sender_id_str);
    ASSERT_EMPTY(env.data.raw);
    ASSERT_EMPTY(env.data_overflow);
    assert_int_equal(env.require_ack_flag, 0);
    assert_int_equal(env.null_document, 0);

    EXPECT_OK(" { \"other\" : [1, {\"id\": 5}] } ");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);
}


static void
test_empty_input(void **state)
{
    EXPECT_ERROR("", "unexpected end of JSON input");
    EXPECT_ERROR(" ", "unexpected end of JSON input");
    EXPECT_ERROR(" \t\r\n ", "unexpected end of JSON input");
}


static void
test_premature_end(void **state)
{
    EXPECT_ERROR("{", "unexpected end of JSON input");
    EXPECT_ERROR("[", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\"", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\" ", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\":", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\":\"a\"", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\":\"a\",", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\":\"a", "unexpected end of JSON input");
    EXPECT_ERROR("{\"i", "unexpected end of JSON input");
    EXPECT_ERROR("\"abc", "unexpected end of JSON input");
    EXPECT_ERROR("[1,", "unexpected end of JSON input");
    EXPECT_ERROR("[1", "unexpected end of JSON input");
    EXPECT_ERROR("{\"data\":[1e400", "unexpected end of JSON input");
    EXPECT_ERROR("[[]", "unexpected end of JSON input");
}


/*
 * Go's Decoder reports any value cut short by the end of input as
 * "unexpected EOF", even where its scanner would complain about a space
 */

static void
test_end_inside_value(void **state)
{
    EXPECT_ERROR("-", "unexpected end of JSON input");
    EXPECT_ERROR("[-", "unexpected end of JSON input");
    EXPECT_ERROR("1.", "unexpected end of JSON input");
    EXPECT_ERROR("1e", "unexpected end of JSON input");
    EXPECT_ERROR("1E+", "unexpected end of JSON input");
    EXPECT_ERROR("t", "unexpected end of JSON input");
    EXPECT_ERROR("{\"a\":tru", "unexpected end of JSON input");
    EXPECT_ERROR("fals", "unexpected end of JSON input");
    EXPECT_ERROR("[nul", "unexpected end of JSON input");
    EXPECT_ERROR("\"\\", "unexpected end of JSON input");
    EXPECT_ERROR("\"\\u12", "unexpected end of JSON input");
    EXPECT_ERROR("{\"data\":12", "unexpected end of JSON input");

    /* but a number is complete at the end of input */
    EXPECT_ERROR("12", TOP_ERR("number"));
    EXPECT_ERROR("0", TOP_ERR("number"));
    EXPECT_ERROR("-0.5e+3", TOP_ERR("number"));
    EXPECT_ERROR("1.25", TOP_ERR("number"));
    EXPECT_ERROR(" 7 \n", TOP_ERR("number"));

    /* a literal too, once complete */
    EXPECT_ERROR("true", TOP_ERR("bool"));
    EXPECT_OK("null");
}


static void
test_trailing_garbage(void **state)
{
    EXPECT_ERROR("{} x", "invalid character 'x' after top-level value");
    EXPECT_ERROR("{}}", "invalid character '}' after top-level value");
    EXPECT_ERROR("{}{}", "invalid character '{' after top-level value");
    EXPECT_ERROR("null null", "invalid character 'n' after top-level value");
    EXPECT_ERROR("{\"id\":1} x",
                 "invalid character 'x' after top-level value");
    EXPECT_ERROR("\"a\"\"b\"",
                 "invalid character '\"' after top-level value");

    EXPECT_OK("{}  \r\n\t");
    EXPECT_OK(" \n\t\r{} ");
}


static void
test_leading_zero(void **state)
{
    EXPECT_ERROR("01", "invalid character '1' after top-level value");
    EXPECT_ERROR("-01", "invalid character '1' after top-level value");
    EXPECT_ERROR("[01]", "invalid character '1' after array element");
    EXPECT_ERROR("{\"data\":00}",
                 "invalid character '0' after object key:value pair");
    EXPECT_ERROR("0x1", "invalid character 'x' after top-level value");

    EXPECT_OK("{\"data\":[0, -0, 0.5, 0e1, 0E-1, -0.0e+0, 10, 1.25e3]}");
    ASSERT_RAW(env.data, "[0, -0, 0.5, 0e1, 0E-1, -0.0e+0, 10, 1.25e3]");
}


static void
test_contexts(void **state)
{
    EXPECT_ERROR("{1:2}",
                 "invalid character '1' looking for beginning of object key "
                 "string");
    EXPECT_ERROR("{\"a\":1,}",
                 "invalid character '}' looking for beginning of object key "
                 "string");
    EXPECT_ERROR("[1,]",
                 "invalid character ']' looking for beginning of value");
    EXPECT_ERROR("[,1]",
                 "invalid character ',' looking for beginning of value");
    EXPECT_ERROR("{\"a\",1}", "invalid character ',' after object key");
    EXPECT_ERROR("{\"a\":1]",
                 "invalid character ']' after object key:value pair");
    EXPECT_ERROR("[1}", "invalid character '}' after array element");
    EXPECT_ERROR("[1:", "invalid character ':' after array element");

    EXPECT_ERROR("\"a\tb\"", "invalid character '\\t' in string literal");
    EXPECT_ERROR("{\"id\":\"a\nb\"}",
                 "invalid character '\\n' in string literal");
    EXPECT_ERROR("{\"i\x1f\":1}",
                 "invalid character '\\x1f' in string literal");
    EXPECT_ERROR("\"\\x\"", "invalid character 'x' in string escape code");
    EXPECT_ERROR("\"\\U0041\"",
                 "invalid character 'U' in string escape code");
    EXPECT_ERROR("\"\\'\"", "invalid character '\\'' in string escape code");
    EXPECT_ERROR("\"\\u12g4\"",
                 "invalid character 'g' in \\u hexadecimal character escape");
    EXPECT_ERROR("\"\\u\"",
                 "invalid character '\"' in \\u hexadecimal character "
                 "escape");

    EXPECT_ERROR("-a", "invalid character 'a' in numeric literal");
    EXPECT_ERROR("--1", "invalid character '-' in numeric literal");
    EXPECT_ERROR("[-.5]", "invalid character '.' in numeric literal");
    EXPECT_ERROR("1.x",
                 "invalid character 'x' after decimal point in numeric "
                 "literal");
    EXPECT_ERROR("1.e5",
                 "invalid character 'e' after decimal point in numeric "
                 "literal");
    EXPECT_ERROR("1ex",
                 "invalid character 'x' in exponent of numeric literal");
    EXPECT_ERROR("1e+x",
                 "invalid character 'x' in exponent of numeric literal");
    EXPECT_ERROR("1e+-1",
                 "invalid character '-' in exponent of numeric literal");
    EXPECT_ERROR(".5", "invalid character '.' looking for beginning of value");
    EXPECT_ERROR("+1", "invalid character '+' looking for beginning of value");
    EXPECT_ERROR("1.5.2", "invalid character '.' after top-level value");
    EXPECT_ERROR("1e5e5", "invalid character 'e' after top-level value");

    EXPECT_ERROR("tx", "invalid character 'x' in literal true (expecting 'r')");
    EXPECT_ERROR("trx",
                 "invalid character 'x' in literal true (expecting 'u')");
    EXPECT_ERROR("TRUE",
                 "invalid character 'T' looking for beginning of value");
    EXPECT_ERROR("fx",
                 "invalid character 'x' in literal false (expecting 'a')");
    EXPECT_ERROR("fax",
                 "invalid character 'x' in literal false (expecting 'l')");
    EXPECT_ERROR("falx",
                 "invalid character 'x' in literal false (expecting 's')");
    EXPECT_ERROR("falsx",
                 "invalid character 'x' in literal false (expecting 'e')");
    EXPECT_ERROR("nx", "invalid character 'x' in literal null (expecting 'u')");
    EXPECT_ERROR("nux",
                 "invalid character 'x' in literal null (expecting 'l')");
    EXPECT_ERROR("nulx",
                 "invalid character 'x' in literal null (expecting 'l')");
    EXPECT_ERROR("truex", "invalid character 'x' after top-level value");
    EXPECT_ERROR("[truex]", "invalid character 'x' after array element");
}


/* the offending byte is quoted as Go's quoteChar() does it */

static void
test_quote_char(void **state)
{
    EXPECT_ERROR_N("\x01", 1,
                   "invalid character '\\x01' looking for beginning of "
                   "value");
    EXPECT_ERROR_N("\0", 1,
                   "invalid character '\\x00' looking for beginning of "
                   "value");
    EXPECT_ERROR("[1\n\n:",
                 "invalid character ':' after array element");
    EXPECT_ERROR("tr\n",
                 "invalid character '\\n' in literal true (expecting 'u')");
    EXPECT_ERROR("-\t", "invalid character '\\t' in numeric literal");
    EXPECT_ERROR("-\r", "invalid character '\\r' in numeric literal");
    EXPECT_ERROR("\a", "invalid character '\\a' looking for beginning of "
                 "value");
    EXPECT_ERROR("\b", "invalid character '\\b' looking for beginning of "
                 "value");
    EXPECT_ERROR("\f{}", "invalid character '\\f' looking for beginning of "
                 "value");
    EXPECT_ERROR("\v", "invalid character '\\v' looking for beginning of "
                 "value");
    EXPECT_ERROR("\x1b", "invalid character '\\x1b' looking for beginning of "
                 "value");
    EXPECT_ERROR("\x7f", "invalid character '\\x7f' looking for beginning of "
                 "value");
    EXPECT_ERROR("'", "invalid character '\\'' looking for beginning of "
                 "value");
    EXPECT_ERROR("{\"a\":1,\"b\" \"",
                 "invalid character '\"' after object key");
    EXPECT_ERROR("\\", "invalid character '\\\\' looking for beginning of "
                 "value");
    EXPECT_ERROR("[1]\\", "invalid character '\\\\' after top-level value");

    /* bytes >= 0x80 are taken as U+0080..U+00FF */

    EXPECT_ERROR("{\"a\":\xe9\xb8\xa1}",
                 "invalid character '\xc3\xa9' looking for beginning of "
                 "value");
    EXPECT_ERROR("\xc3\xa9",
                 "invalid character '\xc3\x83' looking for beginning of "
                 "value");
    EXPECT_ERROR("\x80", "invalid character '\\u0080' looking for beginning "
                 "of value");
    EXPECT_ERROR("\x9f", "invalid character '\\u009f' looking for beginning "
                 "of value");
    EXPECT_ERROR("\xa0", "invalid character '\\u00a0' looking for beginning "
                 "of value");
    EXPECT_ERROR("\xad", "invalid character '\\u00ad' looking for beginning "
                 "of value");
    EXPECT_ERROR("\xa1", "invalid character '\xc2\xa1' looking for beginning "
                 "of value");
    EXPECT_ERROR("\xff", "invalid character '\xc3\xbf' looking for beginning "
                 "of value");
    EXPECT_ERROR("\xef\xbb\xbf{}",
                 "invalid character '\xc3\xaf' looking for beginning of "
                 "value");
    EXPECT_ERROR("[1]\xc2\xa0",
                 "invalid character '\xc3\x82' after top-level value");
    EXPECT_ERROR("t\xe2\x80\x9d",
                 "invalid character '\xc3\xa2' in literal true "
                 "(expecting 'r')");
}


static void
test_depth(void **state)
{
    char  buf[1100];

    /* exactly max_depth levels are fine, one more is an error */

    assert_int_equal(scan_n("{\"a\":[[]]}", 10, 3), NGX_OK);
    assert_int_equal(scan_n("{\"a\":[[[]]]}", 12, 3), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");

    assert_int_equal(scan_n("{\"data\":{\"a\":[]}}", 17, 3), NGX_OK);
    ASSERT_RAW(env.data, "{\"a\":[]}");
    assert_int_equal(scan_n("{\"data\":{\"a\":[{}]}}", 19, 3), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");

    /* the top-level value counts */
    assert_int_equal(scan_n("{}", 2, 1), NGX_OK);
    assert_int_equal(scan_n("{\"a\":[]}", 8, 1), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");
    assert_int_equal(scan_n("[[]]", 4, 1), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");
    assert_int_equal(scan_n("[[]]", 4, 2), NGX_ERROR);
    assert_string_equal((char *) err.data, TOP_ERR("array"));

    /* the depth error comes where the scanner meets it */
    assert_int_equal(scan_n("[[[[x", 5, 3), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");
    assert_int_equal(scan_n("[[x[[", 5, 3), NGX_ERROR);
    assert_string_equal((char *) err.data,
                        "invalid character 'x' looking for beginning of "
                        "value");

    /* depth is the nesting, not the number of containers */
    assert_int_equal(scan_n("{\"a\":[],\"b\":[[]],\"c\":{\"d\":[]}}", 30,
                            3), NGX_OK);

    /* max_depth is clamped to 512 */
    memcpy(buf, "{\"a\":", 5);
    memset(buf + 5, '[', 511);
    memset(buf + 516, ']', 511);
    buf[1027] = '}';
    assert_int_equal(scan_n(buf, 1028, 100000), NGX_OK);

    memset(buf + 5, '[', 512);
    memset(buf + 517, ']', 512);
    buf[1029] = '}';
    assert_int_equal(scan_n(buf, 1030, 100000), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");

    /* objects and arrays mixed up to the top of the bit stack */
    memcpy(buf, "{\"a\":", 5);
    memset(buf + 5, '[', 497);
    memcpy(buf + 502, "{\"a\":[{\"b\":[{}]}]}", 18);
    memset(buf + 520, ']', 497);
    buf[1017] = '}';
    assert_int_equal(scan_n(buf, 1018, 512), NGX_OK);
    assert_int_equal(scan_n(buf, 1018, 503), NGX_OK);
    assert_int_equal(scan_n(buf, 1018, 502), NGX_ERROR);
    assert_string_equal((char *) err.data, "exceeded max depth");
    assert_int_equal(scan_n(buf, 1017, 512), NGX_ERROR);
    assert_string_equal((char *) err.data, "unexpected end of JSON input");
}


static void
test_top_level_types(void **state)
{
    EXPECT_ERROR("\"x\"", TOP_ERR("string"));
    EXPECT_ERROR("12.5", TOP_ERR("number"));
    EXPECT_ERROR("-3", TOP_ERR("number"));
    EXPECT_ERROR("true", TOP_ERR("bool"));
    EXPECT_ERROR(" false ", TOP_ERR("bool"));
    EXPECT_ERROR("[]", TOP_ERR("array"));
    EXPECT_ERROR("[{\"id\":1}]", TOP_ERR("array"));

    EXPECT_OK("null");
    assert_int_equal(env.null_document, 1);
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NONE);
    ASSERT_EMPTY(env.action_str);

    EXPECT_OK(" \n null \r\n");
    assert_int_equal(env.null_document, 1);

    EXPECT_OK("{}");
    assert_int_equal(env.null_document, 0);
}


static void
test_member_types(void **state)
{
    EXPECT_ERROR("{\"id\":1}", TYPE_ERR("number", "id", "string"));
    EXPECT_ERROR("{\"id\":true}", TYPE_ERR("bool", "id", "string"));
    EXPECT_ERROR("{\"id\":false}", TYPE_ERR("bool", "id", "string"));
    EXPECT_ERROR("{\"id\":[]}", TYPE_ERR("array", "id", "string"));
    EXPECT_ERROR("{\"id\":{}}", TYPE_ERR("object", "id", "string"));
    EXPECT_ERROR("{\"action\":{\"a\":1}}",
                 TYPE_ERR("object", "action", "string"));
    EXPECT_ERROR("{\"topic\":-0.5}", TYPE_ERR("number", "topic", "string"));
    EXPECT_ERROR("{\"senderId\":[\"a\"]}",
                 TYPE_ERR("array", "senderId", "string"));
    EXPECT_ERROR("{\"requireAck\":\"true\"}",
                 TYPE_ERR("string", "requireAck", "bool"));
    EXPECT_ERROR("{\"requireAck\":1}",
                 TYPE_ERR("number", "requireAck", "bool"));
    EXPECT_ERROR("{\"requireAck\":{}}",
                 TYPE_ERR("object", "requireAck", "bool"));
    EXPECT_ERROR("{\"requireAck\":[true]}",
                 TYPE_ERR("array", "requireAck", "bool"));

    /* the name is the tag, whatever the case of the key */
    EXPECT_ERROR("{\"SENDERID\":5}", TYPE_ERR("number", "senderId", "string"));
    EXPECT_ERROR("{\"REQUIREACK\":\"x\"}",
                 TYPE_ERR("string", "requireAck", "bool"));

    /* data takes anything */
    EXPECT_OK("{\"data\":\"s\"}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.data, "\"s\"");
    EXPECT_OK("{\"data\":-1.5e3}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NUMBER);
    ASSERT_RAW(env.data, "-1.5e3");
    EXPECT_OK("{\"data\":true}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_TRUE);
    EXPECT_OK("{\"data\":false}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_FALSE);
    ASSERT_RAW(env.data, "false");
    EXPECT_OK("{\"data\":[1, \"a\"]}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_ARRAY);
    ASSERT_RAW(env.data, "[1, \"a\"]");
}


static void
test_type_error_order(void **state)
{
    /* the first type error in document order */
    EXPECT_ERROR("{\"topic\":true,\"id\":1}",
                 TYPE_ERR("bool", "topic", "string"));
    EXPECT_ERROR("{\"id\":1,\"topic\":true}",
                 TYPE_ERR("number", "id", "string"));
    EXPECT_ERROR("{\"id\":1,\"id\":\"a\"}",
                 TYPE_ERR("number", "id", "string"));
    EXPECT_ERROR("{\"id\":\"a\",\"id\":1}",
                 TYPE_ERR("number", "id", "string"));
    EXPECT_ERROR("{\"x\":1,\"data\":2,\"requireAck\":null,\"action\":3}",
                 TYPE_ERR("number", "action", "string"));

    /* but a syntax error anywhere wins, as Go checks the syntax first */
    EXPECT_ERROR("{\"id\":1,\"x\":}",
                 "invalid character '}' looking for beginning of value");
    EXPECT_ERROR("{\"id\":1", "unexpected end of JSON input");
    EXPECT_ERROR("{\"id\":1}}", "invalid character '}' after top-level value");
    EXPECT_ERROR("[1] [", "invalid character '[' after top-level value");
}


static void
test_null_members(void **state)
{
    /* null leaves a string or a bool as it was */
    EXPECT_OK("{\"id\":\"a\",\"id\":null}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.id, "\"a\"");
    ASSERT_DECODED(env.id_str, "a");

    EXPECT_OK("{\"requireAck\":true,\"requireAck\":null}");
    assert_int_equal(env.require_ack.type, NGX_HTTP_LOOM_JSON_TRUE);
    assert_int_equal(env.require_ack_flag, 1);

    /* null alone is recorded as null */
    EXPECT_OK("{\"id\":null,\"action\":null,\"topic\":null,"
              "\"requireAck\":null,\"senderId\":null}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NULL);
    ASSERT_RAW(env.id, "null");
    assert_int_equal(env.action.type, NGX_HTTP_LOOM_JSON_NULL);
    assert_int_equal(env.topic.type, NGX_HTTP_LOOM_JSON_NULL);
    assert_int_equal(env.require_ack.type, NGX_HTTP_LOOM_JSON_NULL);
    assert_int_equal(env.sender_id.type, NGX_HTTP_LOOM_JSON_NULL);
    ASSERT_RAW(env.sender_id, "null");
    ASSERT_EMPTY(env.id_str);
    ASSERT_EMPTY(env.action_str);
    ASSERT_EMPTY(env.topic_str);
    ASSERT_EMPTY(env.sender_id_str);
    assert_int_equal(env.require_ack_flag, 0);

    EXPECT_OK("{\"id\":null,\"id\":\"b\"}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_DECODED(env.id_str, "b");

    /* data: absent and null differ */
    EXPECT_OK("{\"data\":null}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NULL);
    ASSERT_RAW(env.data, "null");

    EXPECT_OK("{\"data\" : null , \"id\":\"x\"}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NULL);
    ASSERT_RAW(env.data, "null");

    /* json.RawMessage keeps a null that comes last */
    EXPECT_OK("{\"data\":{\"a\":1},\"data\":null}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NULL);
    ASSERT_RAW(env.data, "null");

    EXPECT_OK("{\"data\":null,\"data\":[]}");
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_ARRAY);
    ASSERT_RAW(env.data, "[]");
}


static void
test_last_wins(void **state)
{
    EXPECT_OK("{\"id\":\"a\",\"id\":\"bb\",\"action\":\"x\",\"ACTION\":\"y\"}");
    ASSERT_DECODED(env.id_str, "bb");
    ASSERT_RAW(env.id, "\"bb\"");
    ASSERT_DECODED(env.action_str, "y");

    EXPECT_OK("{\"requireAck\":true,\"requireAck\":false}");
    assert_int_equal(env.require_ack.type, NGX_HTTP_LOOM_JSON_FALSE);
    assert_int_equal(env.require_ack_flag, 0);
    ASSERT_RAW(env.require_ack, "false");

    EXPECT_OK("{\"requireAck\":false,\"requireAck\":true}");
    assert_int_equal(env.require_ack_flag, 1);

    EXPECT_OK("{\"data\":[1],\"x\":0,\"data\":{\"b\":2}}");
    ASSERT_RAW(env.data, "{\"b\":2}");
}


static void
test_case_insensitive_keys(void **state)
{
    EXPECT_OK("{\"ID\":\"1\",\"ACTION\":\"a\",\"Topic\":\"t\","
              "\"DaTa\":7,\"REQUIREACK\":true,\"senderid\":\"s\"}");
    ASSERT_DECODED(env.id_str, "1");
    ASSERT_DECODED(env.action_str, "a");
    ASSERT_DECODED(env.topic_str, "t");
    ASSERT_RAW(env.data, "7");
    assert_int_equal(env.require_ack_flag, 1);
    ASSERT_DECODED(env.sender_id_str, "s");

    /* near misses are unknown members */
    EXPECT_OK("{\"i d\":1,\"idx\":1,\"i\":1,\"\":1,\"sender_id\":1,"
              "\"requireAck2\":1,\"actio\":1,\"datA \":1}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.sender_id.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.require_ack.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.action.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.data.type, NGX_HTTP_LOOM_JSON_NONE);

    /* keys of nested objects are not members */
    EXPECT_OK("{\"data\":{\"id\":1,\"topic\":[]}}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);
    assert_int_equal(env.topic.type, NGX_HTTP_LOOM_JSON_NONE);
}


static void
test_escaped_keys(void **state)
{
    EXPECT_OK("{\"\\u0069d\":\"x\",\"act\\u0069on\":\"y\","
              "\"\\u0054OPIC\":\"z\",\"\\u0064\\u0061\\u0074\\u0061\":[]}");
    ASSERT_DECODED(env.id_str, "x");
    ASSERT_DECODED(env.action_str, "y");
    ASSERT_DECODED(env.topic_str, "z");
    ASSERT_RAW(env.data, "[]");

    EXPECT_ERROR("{\"\\u0049\\u0044\":2}", TYPE_ERR("number", "id", "string"));

    /* Go folds the Kelvin sign to 'k' and the long s to 's' */
    EXPECT_OK("{\"requireAc\\u212a\":true,\"\\u017fenderId\":\"s\"}");
    assert_int_equal(env.require_ack_flag, 1);
    ASSERT_DECODED(env.sender_id_str, "s");

    EXPECT_OK("{\"requireAc\xe2\x84\xaa\":true,\"\xc5\xbf" "enderId\":\"t\"}");
    assert_int_equal(env.require_ack_flag, 1);
    ASSERT_DECODED(env.sender_id_str, "t");

    /* but not the Turkish dotted and dotless i */
    EXPECT_OK("{\"\\u0130d\":1,\"\\u0131d\":1,\"\xc4\xb0" "d\":1}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);

    /* escaped quotes and slashes in keys */
    EXPECT_OK("{\"\\\"id\\\"\":1,\"\\/id\":1,\"id\\\\\":1}");
    assert_int_equal(env.id.type, NGX_HTTP_LOOM_JSON_NONE);
}


static void
test_string_decoding(void **state)
{
    EXPECT_OK("{\"id\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\","
              "\"topic\":\"caf\\u00e9 \\u20AC \xe2\x82\xac \\u0000!\","
              "\"action\":\"\"}");
    ASSERT_DECODED(env.id_str, "\"\\/\b\f\n\r\t");
    ASSERT_DECODED(env.topic_str,
                   "caf\xc3\xa9 \xe2\x82\xac \xe2\x82\xac \0!");
    ASSERT_DECODED(env.action_str, "");
    assert_int_equal(env.action.type, NGX_HTTP_LOOM_JSON_STRING);
    ASSERT_RAW(env.action, "\"\"");

    EXPECT_OK("{\"senderId\":\"\\u0041\\u00ff\\u07ff\\u0800\\uffff\"}");
    ASSERT_DECODED(env.sender_id_str,
                   "A\xc3\xbf\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
}


static void
test_surrogates(void **state)
{
    /* a pair */
    EXPECT_OK("{\"id\":\"\\ud83d\\ude00\",\"topic\":\"\\uD834\\uDD1E\"}");
    ASSERT_DECODED(env.id_str, "\xf0\x9f\x98\x80");
    ASSERT_DECODED(env.topic_str, "\xf0\x9d\x84\x9e");

    /* lone halves become U+FFFD */
    EXPECT_OK("{\"id\":\"a\\ud83db\",\"topic\":\"\\ude00\","
              "\"action\":\"\\ud83d\"}");
    ASSERT_DECODED(env.id_str, "a\xef\xbf\xbd" "b");
    ASSERT_DECODED(env.topic_str, "\xef\xbf\xbd");
    ASSERT_DECODED(env.action_str, "\xef\xbf\xbd");

    /* a high surrogate followed by something else than a low one */
    EXPECT_OK("{\"id\":\"\\ud83d\\u0041\",\"topic\":\"\\ud83d\\n\","
              "\"action\":\"\\ud83d\\ud83d\\ude00\"}");
    ASSERT_DECODED(env.id_str, "\xef\xbf\xbd" "A");
    ASSERT_DECODED(env.topic_str, "\xef\xbf\xbd\n");
    ASSERT_DECODED(env.action_str, "\xef\xbf\xbd\xf0\x9f\x98\x80");

    /* a low surrogate first, then a high one */
    EXPECT_OK("{\"id\":\"\\ude00\\ud83d\"}");
    ASSERT_DECODED(env.id_str, "\xef\xbf\xbd\xef\xbf\xbd");
}


static void
test_raw_spans(void **state)
{
    EXPECT_OK("{ \"data\" :\t{\"a\": 1,  \"b\" : [ true ]} \n, \"id\" : "
              "\"x\\ny\" }");
    ASSERT_RAW(env.data, "{\"a\": 1,  \"b\" : [ true ]}");
    ASSERT_RAW(env.id, "\"x\\ny\"");
    ASSERT_DECODED(env.id_str, "x\ny");

    EXPECT_OK("{\"data\":\"a\\\"b\"}");
    ASSERT_RAW(env.data, "\"a\\\"b\"");

    EXPECT_OK("{\"data\":12.5e-3}");
    ASSERT_RAW(env.data, "12.5e-3");

    EXPECT_OK("{\"data\":0}");
    ASSERT_RAW(env.data, "0");

    EXPECT_OK("{\"data\":[[],{}]}");
    ASSERT_RAW(env.data, "[[],{}]");

    EXPECT_OK("{\"data\":{\"x\":\"}]\\\\\"}}");
    ASSERT_RAW(env.data, "{\"x\":\"}]\\\\\"}");
}


static void
test_data_overflow(void **state)
{
    EXPECT_OK("{\"data\":1e400}");
    ASSERT_SPAN(env.data_overflow, "1e400");

    EXPECT_OK("{\"data\":-1e309}");
    ASSERT_SPAN(env.data_overflow, "-1e309");

    EXPECT_OK("{\"data\":1e-400}");
    ASSERT_EMPTY(env.data_overflow);

    EXPECT_OK("{\"data\":[1,{\"x\":[2e400, 3e400]}, 4E+999]}");
    ASSERT_SPAN(env.data_overflow, "2e400");

    /* the last data member counts */
    EXPECT_OK("{\"data\":1e400,\"data\":2}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":2,\"data\":-2E+999}");
    ASSERT_SPAN(env.data_overflow, "-2E+999");
    EXPECT_OK("{\"data\":1e400,\"data\":null}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":[5e500],\"id\":\"a\"}");
    ASSERT_SPAN(env.data_overflow, "5e500");

    /* not in other members, nor in strings */
    EXPECT_OK("{\"x\":1e400,\"data\":\"1e400\",\"y\":[1e999]}");
    ASSERT_EMPTY(env.data_overflow);

    /* the edge of the double range */
    EXPECT_OK("{\"data\":1.7976931348623157e308}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":1.7976931348623158e308}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":1.7976931348623159e308}");
    ASSERT_SPAN(env.data_overflow, "1.7976931348623159e308");
    /* 2^1024 - 2^970 is the first number that rounds to infinity */
    EXPECT_OK("{\"data\":-17976931348623158079372897140530341507993413271"
              "0037826936173778980444968292764750946649017977587207096330"
              "2864166928879109465555478519404026306574886715058206819089"
              "0200070838367627385484581771153176447573027006985557136695"
              "9622842914819860834936475292719074168444365510704342711559"
              "699508093042880177904174497791}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":[17976931348623158079372897140530341507993413271"
              "0037826936173778980444968292764750946649017977587207096330"
              "2864166928879109465555478519404026306574886715058206819089"
              "0200070838367627385484581771153176447573027006985557136695"
              "9622842914819860834936475292719074168444365510704342711559"
              "699508093042880177904174497792]}");
    assert_int_equal(env.data_overflow.len, 309);
    assert_memory_equal(env.data_overflow.data, "1797693134862315807", 19);
    EXPECT_OK("{\"data\":1e308,\"id\":\"\"}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":10e308}");
    ASSERT_SPAN(env.data_overflow, "10e308");
    EXPECT_OK("{\"data\":0.001e311}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":0.01e311}");
    ASSERT_SPAN(env.data_overflow, "0.01e311");
    EXPECT_OK("{\"data\":123.456e306}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":1234.5e306}");
    ASSERT_SPAN(env.data_overflow, "1234.5e306");

    /* long literals near the edge go to strtod() from the heap */
    EXPECT_OK("{\"data\":0.000000000000000000000000000000"
              "0000000000000000000000000000002e369}");
    ASSERT_SPAN(env.data_overflow, "0.000000000000000000000000000000"
                                   "0000000000000000000000000000002e369");
    EXPECT_OK("{\"data\":0.000000000000000000000000000000"
              "0000000000000000000000000000001e369}");
    ASSERT_EMPTY(env.data_overflow);

    /* zero is never too large */
    EXPECT_OK("{\"data\":[0e999, -0.000e99999, 0E+400]}");
    ASSERT_EMPTY(env.data_overflow);

    /* huge exponents */
    EXPECT_OK("{\"data\":1e99999999999999999999999999999}");
    ASSERT_SPAN(env.data_overflow, "1e99999999999999999999999999999");
    EXPECT_OK("{\"data\":1e-99999999999999999999999999999}");
    ASSERT_EMPTY(env.data_overflow);
    EXPECT_OK("{\"data\":1e000000000000000000000000000000400}");
    ASSERT_SPAN(env.data_overflow, "1e000000000000000000000000000000400");

    /* a data overflow is no error of its own */
    EXPECT_ERROR("{\"data\":1e400,\"id\":1}", TYPE_ERR("number", "id",
                                                       "string"));
}


static void
test_whitespace(void **state)
{
    EXPECT_OK("\t{\r\"id\"\n:\t\"a\" ,\n\"data\"\r:\r[ 1 ,\t2 ]\n}\r\n");
    ASSERT_DECODED(env.id_str, "a");
    ASSERT_RAW(env.data, "[ 1 ,\t2 ]");

    EXPECT_ERROR("{\f}", "invalid character '\\f' looking for beginning of "
                 "object key string");
    EXPECT_ERROR("{\"a\":\v1}", "invalid character '\\v' looking for "
                 "beginning of value");
    EXPECT_ERROR("[1\xc2\xa0]",
                 "invalid character '\xc3\x82' after array element");
}


static void
test_scratch_bounds(void **state)
{
    /* every member needs its decoded bytes: the sum fits len */
    EXPECT_OK("{\"id\":\"aaaa\",\"action\":\"bbbb\",\"topic\":\"cccc\","
              "\"senderId\":\"dddd\",\"id\":\"eeee\",\"id\":\"ffff\"}");
    ASSERT_DECODED(env.id_str, "ffff");
    ASSERT_DECODED(env.action_str, "bbbb");
    ASSERT_DECODED(env.topic_str, "cccc");
    ASSERT_DECODED(env.sender_id_str, "dddd");

    EXPECT_OK("{\"\\u0069\\u0064\":\"\\ud83d\\ude00\\ud83d\\ude00\"}");
    ASSERT_DECODED(env.id_str, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
}


static void
test_error_buffer(void **state)
{
    /* the longest messages fit */
    EXPECT_ERROR("{\"requireAck\":{}}",
                 TYPE_ERR("object", "requireAck", "bool"));
    assert_int_equal(err.len, strlen(TYPE_ERR("object", "requireAck",
                                              "bool")));

    EXPECT_ERROR("f\xad", "invalid character '\\u00ad' in literal false "
                 "(expecting 'a')");
    assert_int_equal(err.len, strlen("invalid character '\\u00ad' in literal "
                                     "false (expecting 'a')"));
}


static void
expect_escape(const char *src, size_t len, const char *expected)
{
    u_char  *s, *d, *p;
    size_t   n;

    s = malloc(len ? len : 1);
    assert_non_null(s);
    memcpy(s, src, len);

    n = ngx_http_loom_json_escape_len(s, len);
    assert_int_equal(n, strlen(expected));

    d = malloc(n ? n : 1);
    assert_non_null(d);

    p = ngx_http_loom_json_escape(d, s, len);
    assert_int_equal(p - d, n);
    assert_memory_equal(d, expected, n);

    free(s);
    free(d);
}


#define EXPECT_ESCAPE(src, expected)                                         \
    expect_escape(src, sizeof(src) - 1, expected)


static void
test_escape_ascii(void **state)
{
    EXPECT_ESCAPE("", "");
    EXPECT_ESCAPE("hello, world", "hello, world");
    EXPECT_ESCAPE("a\"b\\c/d", "a\\\"b\\\\c/d");
    EXPECT_ESCAPE("\n\r\t", "\\n\\r\\t");
    EXPECT_ESCAPE("\b\f", "\\u0008\\u000c");
    EXPECT_ESCAPE("\0\x01\x1f\x0b", "\\u0000\\u0001\\u001f\\u000b");
    EXPECT_ESCAPE("<a href='x'>&amp;</a>",
                  "\\u003ca href='x'\\u003e\\u0026amp;\\u003c/a\\u003e");
    EXPECT_ESCAPE("\x7f ~", "\x7f ~");
}


static void
test_escape_utf8(void **state)
{
    EXPECT_ESCAPE("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    EXPECT_ESCAPE("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c",
                  "a\\u2028b\\u2029c");
    EXPECT_ESCAPE("\xe2\x80\xaa", "\xe2\x80\xaa");
    EXPECT_ESCAPE("\xef\xbf\xbd", "\xef\xbf\xbd");
    EXPECT_ESCAPE("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");

    /* every byte of a broken sequence is a U+FFFD of its own */
    EXPECT_ESCAPE("\xff", "\\ufffd");
    EXPECT_ESCAPE("a\xc3", "a\\ufffd");
    EXPECT_ESCAPE("\xe2\x82", "\\ufffd\\ufffd");
    EXPECT_ESCAPE("\xe2\x82x", "\\ufffd\\ufffdx");
    EXPECT_ESCAPE("\xc0\x80", "\\ufffd\\ufffd");
    EXPECT_ESCAPE("\xe0\x9f\x80", "\\ufffd\\ufffd\\ufffd");
    EXPECT_ESCAPE("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");
    EXPECT_ESCAPE("\xf0\x8f\xbf\xbf", "\\ufffd\\ufffd\\ufffd\\ufffd");
    EXPECT_ESCAPE("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
    EXPECT_ESCAPE("\xf5\x80\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
    EXPECT_ESCAPE("\x80<", "\\ufffd\\u003c");
    EXPECT_ESCAPE("\xc3\xa9\xc3", "\xc3\xa9\\ufffd");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_valid_envelope),
        cmocka_unit_test(test_revision_members),
        cmocka_unit_test(test_schema_members),
        cmocka_unit_test(test_absent_members),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_premature_end),
        cmocka_unit_test(test_end_inside_value),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_leading_zero),
        cmocka_unit_test(test_contexts),
        cmocka_unit_test(test_quote_char),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_top_level_types),
        cmocka_unit_test(test_member_types),
        cmocka_unit_test(test_type_error_order),
        cmocka_unit_test(test_null_members),
        cmocka_unit_test(test_last_wins),
        cmocka_unit_test(test_case_insensitive_keys),
        cmocka_unit_test(test_escaped_keys),
        cmocka_unit_test(test_string_decoding),
        cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_raw_spans),
        cmocka_unit_test(test_data_overflow),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_scratch_bounds),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_escape_ascii),
        cmocka_unit_test(test_escape_utf8),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, teardown);
}
