/* SOURCES: ngx_http_loom_schema.c */

/*
 * The example-object schema rule of the original Data Loom (its
 * schemasMatch, seed protocol section 7.3), asymmetry included.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_schema.h"


static json_t *
j(const char *text)
{
    json_t        *v;
    json_error_t   err;

    v = json_loads(text, JSON_DECODE_ANY, &err);
    assert_non_null(v);

    return v;
}


static ngx_int_t
match(const char *schema, const char *data)
{
    json_t     *s, *d;
    ngx_int_t   rc;

    s = j(schema);
    d = j(data);
    rc = ngx_http_loom_schema_match(s, d);
    json_decref(s);
    json_decref(d);

    return rc;
}


static void
test_key_sets(void **state)
{
    assert_int_equal(match("{}", "{}"), NGX_OK);
    assert_int_equal(match("{\"a\":null,\"b\":null}", "{\"b\":1,\"a\":\"x\"}"),
                     NGX_OK);
    /* a missing, an extra, a renamed key */
    assert_int_equal(match("{\"a\":null,\"b\":null}", "{\"a\":1}"),
                     NGX_DECLINED);
    assert_int_equal(match("{\"a\":null}", "{\"a\":1,\"b\":2}"),
                     NGX_DECLINED);
    assert_int_equal(match("{\"a\":null}", "{\"A\":1}"), NGX_DECLINED);
    assert_int_equal(match("{\"a\":null}", "{}"), NGX_DECLINED);
}


static void
test_values_are_ignored(void **state)
{
    /* scalars, arrays and null match whatever the schema has */
    assert_int_equal(match("{\"a\":0}", "{\"a\":\"text\"}"), NGX_OK);
    assert_int_equal(match("{\"a\":\"\"}", "{\"a\":[1,2,3]}"), NGX_OK);
    assert_int_equal(match("{\"a\":[]}", "{\"a\":null}"), NGX_OK);
    assert_int_equal(match("{\"a\":{\"x\":1}}", "{\"a\":7}"), NGX_OK);
}


static void
test_nested_objects(void **state)
{
    const char  *schema = "{\"outer\":{\"x\":null,\"y\":{\"z\":null}},"
                          "\"k\":null}";

    assert_int_equal(match(schema,
                           "{\"outer\":{\"x\":1,\"y\":{\"z\":2}},\"k\":3}"),
                     NGX_OK);
    assert_int_equal(match(schema,
                           "{\"outer\":{\"x\":1,\"y\":{\"w\":2}},\"k\":3}"),
                     NGX_DECLINED);
    assert_int_equal(match(schema, "{\"outer\":{\"x\":1},\"k\":3}"),
                     NGX_DECLINED);

    /* an object in the message where the schema has no object */
    assert_int_equal(match("{\"a\":null}", "{\"a\":{}}"), NGX_DECLINED);
    assert_int_equal(match("{\"a\":1}", "{\"a\":{\"b\":1}}"), NGX_DECLINED);
}


static void
test_not_objects(void **state)
{
    assert_int_equal(match("{}", "[]"), NGX_DECLINED);
    assert_int_equal(match("[]", "{}"), NGX_DECLINED);
    assert_int_equal(match("{}", "null"), NGX_DECLINED);
}


static void
test_same_is_the_original_register_rule(void **state)
{
    json_t  *a, *b;

    /* existing {"a":null}, new {"a":{"x":1}}: the original says same */
    a = j("{\"a\":null}");
    b = j("{\"a\":{\"x\":1}}");
    assert_int_equal(ngx_http_loom_schema_same(a, b), NGX_OK);
    /* and the other way round: different */
    assert_int_equal(ngx_http_loom_schema_same(b, a), NGX_DECLINED);
    json_decref(a);
    json_decref(b);

    a = j("{\"Sender\":null,\"Message\":null,\"Timestamp\":null}");
    b = j("{\"Sender\":\"\",\"Message\":\"\",\"Timestamp\":\"\"}");
    assert_int_equal(ngx_http_loom_schema_same(a, b), NGX_OK);
    json_decref(b);

    b = j("{\"Sender\":null,\"Message\":null,\"Timestamp\":null,"
          "\"IsNew\":null}");
    assert_int_equal(ngx_http_loom_schema_same(a, b), NGX_DECLINED);
    json_decref(a);
    json_decref(b);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_sets),
        cmocka_unit_test(test_values_are_ignored),
        cmocka_unit_test(test_nested_objects),
        cmocka_unit_test(test_not_objects),
        cmocka_unit_test(test_same_is_the_original_register_rule),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
