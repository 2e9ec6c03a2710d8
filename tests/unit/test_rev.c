/* SOURCES: ngx_http_loom_rev.c ngx_http_loom_json_text.c */
/* SOURCES: ngx_http_loom_json.c ngx_http_loom_utf8.c */

/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_rev.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>


static u_char     errbuf[NGX_HTTP_LOOM_REV_ERRLEN];
static ngx_str_t  err = { 0, errbuf };


#define ASSERT_STR(s, text)                                                  \
    do {                                                                     \
        assert_int_equal((s).len, sizeof(text) - 1);                         \
        assert_memory_equal((s).data, text, sizeof(text) - 1);               \
    } while (0)

#define ASSERT_ERR(text)  ASSERT_STR(err, text)


static ngx_int_t
parse(const char *text, ngx_http_loom_rev_msg_t *m)
{
    static u_char  buf[256];
    size_t         n;

    n = strlen(text);
    memcpy(buf, text, n);

    return ngx_http_loom_rev_parse(buf, n, m);
}


static ngx_http_loom_json_value_t
value(ngx_uint_t type, const char *raw)
{
    ngx_http_loom_json_value_t  v;

    v.type = type;
    v.raw.data = (u_char *) raw;
    v.raw.len = strlen(raw);

    return v;
}


static void
test_parse_messages(void **state)
{
    ngx_http_loom_rev_msg_t  m;

    assert_int_equal(parse("7 5 1764625000123 e-1 {\"id\":\"\"}\n", &m),
                     NGX_OK);
    assert_int_equal(m.kind, NGX_HTTP_LOOM_REV_DELIVERY);
    assert_int_equal(m.seq, 7);
    assert_int_equal(m.rev, 5);
    assert_true(m.ts == 1764625000123ULL);
    ASSERT_STR(m.epoch, "e-1");
    ASSERT_STR(m.text, "{\"id\":\"\"}\n");

    /* a text with spaces of its own */
    assert_int_equal(parse("8 0 0 e {\"a\": 1 }\n", &m), NGX_OK);
    assert_int_equal(m.rev, 0);
    ASSERT_STR(m.text, "{\"a\": 1 }\n");

    assert_int_equal(parse("E e2 3 99 {\"n\":3}", &m), NGX_OK);
    assert_int_equal(m.kind, NGX_HTTP_LOOM_REV_EPOCH);
    ASSERT_STR(m.epoch, "e2");
    assert_int_equal(m.rev, 3);
    assert_int_equal(m.ts, 99);
    ASSERT_STR(m.text, "{\"n\":3}");

    assert_int_equal(parse("U 0b7c", &m), NGX_OK);
    assert_int_equal(m.kind, NGX_HTTP_LOOM_REV_UNREGISTERED);
    ASSERT_STR(m.text, "0b7c");

    /* today's form, and broken ones */
    assert_int_equal(parse("7 {\"id\":\"\"}\n", &m), NGX_ERROR);
    assert_int_equal(parse("7 5 1 e", &m), NGX_ERROR);
    assert_int_equal(parse("7 5 1 e ", &m), NGX_ERROR);
    assert_int_equal(parse("7 5 x e {}", &m), NGX_ERROR);
    assert_int_equal(parse("", &m), NGX_ERROR);
    assert_int_equal(parse("E  3 1 v", &m), NGX_ERROR);
    assert_int_equal(parse("E e 3 1", &m), NGX_ERROR);
    assert_int_equal(parse("12345678901234567890 1 1 e {}", &m), NGX_ERROR);
}


static void
test_v2_delivery(void **state)
{
    u_char     buf[256], *p;
    ngx_str_t  d = ngx_string("{\"id\":\"p\",\"data\":{},"
                              "\"senderId\":\"a\"}\n");

    p = ngx_http_loom_rev_delivery(buf, &d, 42, 1764625000123ULL);
    assert_int_equal(p - buf,
                     ngx_http_loom_rev_delivery_len(&d, 42,
                                                    1764625000123ULL));
    *p = '\0';
    assert_string_equal((char *) buf,
                        "{\"id\":\"p\",\"data\":{},\"senderId\":\"a\","
                        "\"rev\":42,\"ts\":1764625000123}\n");

    p = ngx_http_loom_rev_delivery(buf, &d, 0, 0);
    assert_int_equal(p - buf, ngx_http_loom_rev_delivery_len(&d, 0, 0));
    *p = '\0';
    assert_string_equal((char *) buf,
                        "{\"id\":\"p\",\"data\":{},\"senderId\":\"a\","
                        "\"rev\":0,\"ts\":0}\n");
}


static void
test_entry(void **state)
{
    u_char     buf[256], *p;
    size_t     o;
    ngx_str_t  data, sender;
    ngx_str_t  d = ngx_string("{\"id\":\"p\",\"action\":\"publish\","
                              "\"topic\":\"t\",\"data\":{\"n\" : 1},"
                              "\"senderId\":\"alice\"}\n");

    o = (u_char *) strstr((char *) d.data, "{\"n\"") - d.data;
    assert_int_equal(ngx_http_loom_rev_entry_parts(&d, o, 9, &data,
                                                   &sender), NGX_OK);
    ASSERT_STR(data, "{\"n\" : 1}");
    ASSERT_STR(sender, "alice");

    p = ngx_http_loom_rev_entry(buf, 4, 17, &data, &sender);
    assert_int_equal(p - buf,
                     ngx_http_loom_rev_entry_len(&data, &sender, 4, 17));
    *p = '\0';
    assert_string_equal((char *) buf,
                        "{\"rev\":4,\"ts\":17,\"data\":{\"n\" : 1},"
                        "\"senderId\":\"alice\"}");

    /* offsets that do not point at the data */
    assert_int_equal(ngx_http_loom_rev_entry_parts(&d, o - 1, 9, &data,
                                                   &sender), NGX_ERROR);
    assert_int_equal(ngx_http_loom_rev_entry_parts(&d, o, 200, &data,
                                                   &sender), NGX_ERROR);
    assert_int_equal(ngx_http_loom_rev_entry_parts(&d, (size_t) -1, 2,
                                                   &data, &sender),
                     NGX_ERROR);
}


static void
test_resync(void **state)
{
    u_char     buf[256], *p;
    ngx_str_t  topic = ngx_string("\"chat\"");
    ngx_str_t  reason = ngx_string("gap");
    ngx_str_t  val = ngx_string("{\"n\":1}");
    ngx_str_t  none = ngx_null_string;
    ngx_str_t  epoch = ngx_string("e\"1");

    p = ngx_http_loom_rev_resync(buf, &topic, &reason, &val, 57, &epoch, 9);
    assert_int_equal(p - buf,
                     ngx_http_loom_rev_resync_len(&topic, &reason, &val, 57,
                                                  &epoch, 9));
    *p = '\0';
    assert_string_equal((char *) buf,
                        "{\"action\":\"resync\",\"topic\":\"chat\","
                        "\"reason\":\"gap\",\"data\":{\"n\":1},\"rev\":57,"
                        "\"epoch\":\"e\\\"1\",\"ts\":9,\"type\":\"event\"}\n");

    p = ngx_http_loom_rev_resync(buf, &topic, &reason, &none, 0, &epoch, 0);
    assert_int_equal(p - buf,
                     ngx_http_loom_rev_resync_len(&topic, &reason, &none, 0,
                                                  &epoch, 0));
    *p = '\0';
    assert_non_null(strstr((char *) buf, "\"data\":null,\"rev\":0,"));
}


static void
test_uint(void **state)
{
    uint64_t   v;
    ngx_str_t  s;

#define UINT(text, rc)                                                       \
    s.data = (u_char *) text; s.len = strlen(text);                          \
    assert_int_equal(ngx_http_loom_rev_uint(&s, &v), rc)

    assert_int_equal(ngx_http_loom_rev_digits(0), 1);
    assert_int_equal(ngx_http_loom_rev_digits(9), 1);
    assert_int_equal(ngx_http_loom_rev_digits(10), 2);
    assert_int_equal(ngx_http_loom_rev_digits(18446744073709551615ULL), 20);

    UINT("0", NGX_OK);
    assert_int_equal(v, 0);
    UINT("1000", NGX_OK);
    assert_int_equal(v, 1000);
    UINT("9007199254740992", NGX_OK);
    UINT("9007199254740993", NGX_ERROR);
    UINT("12345678901234567", NGX_ERROR);
    UINT("-1", NGX_ERROR);
    UINT("1.5", NGX_ERROR);
    UINT("1e3", NGX_ERROR);
    UINT("01", NGX_ERROR);
    UINT("", NGX_ERROR);
}


static void
test_request_members(void **state)
{
    u_char                       scratch[64];
    uint64_t                     n;
    ngx_uint_t                   i;
    static const char           *bad[] = {
        "{\"epoch\":\"a\"}", "{\"rev\":1}", "{\"epoch\":1,\"rev\":1}",
        "{\"epoch\":\"a\",\"rev\":-1}", "{\"epoch\":\"a\",\"rev\":1.0}",
        "{\"epoch\":\"a\",\"rev\":\"1\"}", NULL
    };
    ngx_str_t                    epoch;
    ngx_uint_t                   flag;
    ngx_http_loom_json_value_t   v, st;
    ngx_http_loom_retention_t    r;

    v = value(NGX_HTTP_LOOM_JSON_TRUE, "true");
    assert_int_equal(ngx_http_loom_rev_bool(&v, "snapshot", &flag, &err),
                     NGX_OK);
    assert_int_equal(flag, 1);
    v = value(NGX_HTTP_LOOM_JSON_NUMBER, "1");
    assert_int_equal(ngx_http_loom_rev_bool(&v, "snapshot", &flag, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"snapshot\": it must be true or false");

    v = value(NGX_HTTP_LOOM_JSON_OBJECT,
              "{ \"rev\": 40, \"epoch\": \"a\\u0062\" }");
    assert_int_equal(ngx_http_loom_rev_since(&v, scratch, &epoch, &n, &err),
                     NGX_OK);
    ASSERT_STR(epoch, "ab");
    assert_int_equal(n, 40);

    for (i = 0; bad[i]; i++) {
        v = value(NGX_HTTP_LOOM_JSON_OBJECT, bad[i]);
        assert_int_equal(ngx_http_loom_rev_since(&v, scratch, &epoch, &n,
                                                 &err), NGX_ERROR);
        ASSERT_ERR("invalid \"since\": it needs \"epoch\" (a string) and "
                   "\"rev\" (an integer of 0 or more)");
    }
    v = value(NGX_HTTP_LOOM_JSON_NUMBER, "5");
    assert_int_equal(ngx_http_loom_rev_since(&v, scratch, &epoch, &n, &err),
                     NGX_ERROR);

    v = value(NGX_HTTP_LOOM_JSON_NUMBER, "7");
    assert_int_equal(ngx_http_loom_rev_count(&v, "limit", &n, &err), NGX_OK);
    assert_int_equal(n, 7);
    v = value(NGX_HTTP_LOOM_JSON_NUMBER, "1.5");
    assert_int_equal(ngx_http_loom_rev_count(&v, "limit", &n, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"limit\": it must be an integer of 0 or more");
    v = value(NGX_HTTP_LOOM_JSON_STRING, "\"now\"");
    assert_int_equal(ngx_http_loom_rev_time(&v, "from", &n, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"from\": it must be an integer (ms since 1970)");

    /* retention and storage */
    st = value(NGX_HTTP_LOOM_JSON_NONE, "");
    v = value(NGX_HTTP_LOOM_JSON_OBJECT, "{\"history\":10,\"maxAge\":null}");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_OK);
    assert_int_equal(r.history, 10);
    assert_int_equal(r.max_age, NGX_HTTP_LOOM_REV_DEFAULT);
    assert_int_equal(r.memory, 0);
    v = value(NGX_HTTP_LOOM_JSON_OBJECT, "{}");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_OK);
    assert_int_equal(r.history, NGX_HTTP_LOOM_REV_UNSET);
    assert_int_equal(r.max_age, NGX_HTTP_LOOM_REV_UNSET);
    v = value(NGX_HTTP_LOOM_JSON_OBJECT, "{\"history\":1001}");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"retention\": \"history\" must be an integer from "
               "0 to 1000");
    v = value(NGX_HTTP_LOOM_JSON_OBJECT, "{\"maxAge\":\"1h\"}");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"retention\": \"maxAge\" must be an integer of 0 "
               "or more");
    v = value(NGX_HTTP_LOOM_JSON_NUMBER, "5");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"retention\": it must be an object");

    v = value(NGX_HTTP_LOOM_JSON_NONE, "");
    st = value(NGX_HTTP_LOOM_JSON_STRING, "\"memory\"");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_OK);
    assert_int_equal(r.memory, 2);
    st = value(NGX_HTTP_LOOM_JSON_STRING, "\"redis\"");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_OK);
    assert_int_equal(r.memory, 1);
    st = value(NGX_HTTP_LOOM_JSON_STRING, "\"disk\"");
    assert_int_equal(ngx_http_loom_rev_retention(&v, &st, 1000, &r, &err),
                     NGX_ERROR);
    ASSERT_ERR("invalid \"storage\": it must be \"redis\" or \"memory\"");
}


static void
test_offered(void **state)
{
    ngx_str_t  s;

#define OFFERED(text, yes)                                                   \
    s.data = (u_char *) text; s.len = strlen(text);                          \
    assert_int_equal(ngx_http_loom_rev_offered(&s), yes)

    OFFERED("dataloom.v2", 1);
    OFFERED("chat, dataloom.v2", 1);
    OFFERED("dataloom.v2,dataloom.token.abc", 1);
    OFFERED(" \tdataloom.v2 \t, x", 1);
    OFFERED("chat", 0);
    OFFERED("", 0);
    OFFERED("dataloom.v2x", 0);
    OFFERED("dataloom.v", 0);
    OFFERED("Dataloom.V2", 0);
    OFFERED("dataloom.token.dataloom.v2", 0);
    OFFERED(",,", 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_parse_messages),
        cmocka_unit_test(test_v2_delivery),
        cmocka_unit_test(test_entry),
        cmocka_unit_test(test_resync),
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_request_members),
        cmocka_unit_test(test_offered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
