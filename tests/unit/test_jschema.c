/* SOURCES: ngx_http_loom_jschema_compile.c ngx_http_loom_jschema_ref.c */
/* SOURCES: ngx_http_loom_jschema_keyword.c ngx_http_loom_jschema_util.c */
/* SOURCES: ngx_http_loom_jschema_keyword_sub.c */
/* SOURCES: ngx_http_loom_jschema_validate.c ngx_http_loom_jschema_format.c */
/* SOURCES: ngx_http_loom_jschema_container.c ngx_http_loom_jschema_error.c */
/* SOURCES: ngx_http_loom_jschema_vctx.c */
/* SOURCES: ngx_http_loom_jschema_compat.c ngx_http_loom_jschema_compat_kw.c */
/* SOURCES: ngx_http_loom_jschema_compat_util.c */
/* SOURCES: ngx_http_loom_json.c ngx_http_loom_json_text.c */
/* SOURCES: ngx_http_loom_utf8.c */

/*
 * Copyright (C) Data Loom
 */


/*
 * The JSON Schema API as the protocol layer uses it: refusals and their
 * locations, limits, the collected failures and their JSON text, and the
 * compatibility checks (the keyword semantics are the suite's business,
 * test_jschema_suite.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>


static json_t *
j(const char *text)
{
    json_t        *v;
    json_error_t   err;

    v = json_loads(text, JSON_DECODE_ANY, &err);
    if (v == NULL) {
        print_error("bad JSON in the test: %s: %s\n", text, err.text);
    }
    assert_non_null(v);

    return v;
}


static ngx_http_loom_jschema_t *
compile(const char *text, ngx_uint_t flags, ngx_http_loom_jschema_err_t *err)
{
    json_t                          *schema;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_limits_t   limits;

    memset(&limits, 0, sizeof(limits));
    limits.flags = flags;

    schema = j(text);
    s = ngx_http_loom_jschema_compile(schema, &limits, err);
    json_decref(schema);

    return s;
}


/* the schema is refused with exactly this text */

static void
refused(const char *text, const char *expected)
{
    ngx_http_loom_jschema_t      *s;
    ngx_http_loom_jschema_err_t   err;

    s = compile(text, 0, &err);
    assert_null(s);
    assert_string_equal((char *) err.text, expected);
    assert_int_equal(err.len, strlen(expected));
}


static ngx_int_t
valid(const char *schema, const char *data)
{
    json_t                       *d;
    ngx_int_t                     rc;
    ngx_http_loom_jschema_t      *s;
    ngx_http_loom_jschema_err_t   err;

    s = compile(schema, 0, &err);
    if (s == NULL) {
        print_error("refused: %s\n", err.text);
    }
    assert_non_null(s);

    d = j(data);
    rc = ngx_http_loom_jschema_validate(s, d, NULL);
    json_decref(d);
    ngx_http_loom_jschema_free(s);

    return rc;
}


static void
test_refusals(void **state)
{
    refused("{\"properties\":{\"a\":{\"$dynamicRef\":\"#x\"}}}",
            "unsupported keyword \"$dynamicRef\" at /properties/a");
    refused("{\"definitions\":{}}",
            "unsupported keyword \"definitions\" at the root");
    refused("{\"items\":[{\"type\":\"string\"}]}",
            "\"items\" must be a schema (an array of schemas is "
            "\"prefixItems\" in draft 2020-12) at the root");
    refused("{\"$ref\":\"http://example.com/s.json\"}",
            "remote $ref \"http://example.com/s.json\" is not supported "
            "at the root");
    refused("{\"allOf\":[{\"$ref\":\"#/$defs/x\"}]}",
            "$ref \"#/$defs/x\" points to nothing at /allOf/0");
    refused("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},"
            "\"b\":{\"allOf\":[{\"$ref\":\"#/$defs/a\"}]}}}",
            "$ref \"#/$defs/b\" at /$defs/a makes a cycle that does not "
            "descend into the instance at the root");
    refused("{\"minLength\":-1}",
            "\"minLength\" must be a non-negative integer at the root");
    refused("{\"properties\":{\"a/b\":{\"type\":\"strong\"}}}",
            "unknown type \"strong\" at /properties/a~1b");
    refused("{\"pattern\":\"(\"}",
            "invalid regular expression \"(\" (missing closing parenthesis "
            "at offset 1) at the root");
    refused("{\"$schema\":\"http://json-schema.org/draft-07/schema#\"}",
            "unsupported $schema \"http://json-schema.org/draft-07/schema#\" "
            "(only draft 2020-12) at the root");
    refused("{\"properties\":{\"a\":{\"$id\":\"x.json\"}}}",
            "\"$id\" in a subschema changes the base URI: not supported at "
            "/properties/a");
    refused("{\"required\":[\"a\",\"a\"]}",
            "\"required\" lists \"a\" twice at the root");
    refused("[]", "a schema must be an object or a boolean at the root");
}


static void
test_recursion_and_refs(void **state)
{
    const char  *tree;

    /* recursion through a property is progress */

    tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":"
           "{\"v\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\","
           "\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
           "\"$ref\":\"#/$defs/node\"}";

    assert_int_equal(valid(tree, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":"
                                 "[{\"v\":3}]}]}"), NGX_OK);
    assert_int_equal(valid(tree, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":"
                                 "[{\"v\":\"3\"}]}]}"), NGX_DECLINED);

    /* $anchor, and the root $id as a base of local references */

    assert_int_equal(valid("{\"$id\":\"urn:t\",\"$defs\":{\"a\":{\"$anchor\":"
                           "\"int\",\"type\":\"integer\"}},\"properties\":"
                           "{\"x\":{\"$ref\":\"urn:t#int\"},\"y\":{\"$ref\":"
                           "\"#int\"}}}", "{\"x\":1,\"y\":2.0}"), NGX_OK);
    assert_int_equal(valid("{\"$defs\":{\"a\":{\"$anchor\":\"int\","
                           "\"type\":\"integer\"}},\"$ref\":\"#int\"}",
                           "1.5"), NGX_DECLINED);

    /* a self-reference too deep for the evaluation limit fails cleanly */

    {
        char    *deep;
        size_t   i, n;

        n = NGX_HTTP_LOOM_JSCHEMA_MAX_EVAL_DEPTH + 10;
        deep = malloc(2 * n + 1);
        assert_non_null(deep);

        for (i = 0; i < n; i++) {
            deep[i] = '[';
            deep[2 * n - 1 - i] = ']';
        }
        deep[2 * n] = '\0';

        assert_int_equal(valid("{\"items\":{\"$ref\":\"#\"}}", deep),
                         NGX_DECLINED);
        free(deep);
    }
}


static void
test_unevaluated(void **state)
{
    const char  *s;

    /* what allOf, if/then and $ref evaluate counts; a failed anyOf not */

    s = "{\"$defs\":{\"c\":{\"properties\":{\"c\":{}}}},"
        "\"allOf\":[{\"properties\":{\"a\":{}}}],"
        "\"if\":{\"required\":[\"a\"]},\"then\":{\"properties\":"
        "{\"b\":{}}},\"$ref\":\"#/$defs/c\","
        "\"anyOf\":[true,{\"properties\":{\"d\":false}}],"
        "\"unevaluatedProperties\":false}";

    assert_int_equal(valid(s, "{\"a\":1,\"b\":2,\"c\":3}"), NGX_OK);
    assert_int_equal(valid(s, "{\"b\":2}"), NGX_DECLINED);
    assert_int_equal(valid(s, "{\"a\":1,\"d\":4}"), NGX_DECLINED);

    /* items: prefixItems, items and contains evaluate */

    s = "{\"prefixItems\":[{\"type\":\"string\"}],"
        "\"contains\":{\"type\":\"null\"},"
        "\"unevaluatedItems\":{\"type\":\"integer\"}}";

    assert_int_equal(valid(s, "[\"a\",null,1,null,2]"), NGX_OK);
    assert_int_equal(valid(s, "[\"a\",null,1.5]"), NGX_DECLINED);
}


static void
test_limits(void **state)
{
    json_t                          *schema;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_limits_t   limits;

    memset(&limits, 0, sizeof(limits));
    limits.max_depth = 2;

    schema = j("{\"not\":{\"not\":{\"type\":\"null\"}}}");
    s = ngx_http_loom_jschema_compile(schema, &limits, &err);
    assert_non_null(s);
    ngx_http_loom_jschema_free(s);
    json_decref(schema);

    schema = j("{\"not\":{\"not\":{\"not\":{}}}}");
    s = ngx_http_loom_jschema_compile(schema, &limits, &err);
    assert_null(s);
    assert_string_equal((char *) err.text, "schema nested deeper than 2 "
                        "levels at /not/not/not");
    json_decref(schema);

    /* a chain of references longer than the cycle check walks */
    {
        char     name[32], ref[32];
        json_t  *defs;
        size_t   i;

        defs = json_object();
        assert_non_null(defs);

        for (i = 0; i < 3000; i++) {
            snprintf(name, sizeof(name), "d%lu", (unsigned long) i);
            snprintf(ref, sizeof(ref), "#/$defs/d%lu", (unsigned long) i + 1);
            assert_int_equal(json_object_set_new(defs, name,
                                                 json_pack("{ss}", "$ref",
                                                           ref)), 0);
        }

        snprintf(name, sizeof(name), "d%lu", (unsigned long) i);
        assert_int_equal(json_object_set_new(defs, name, json_true()), 0);

        /* d0 -> d1 -> ... -> d3000 */
        schema = json_pack("{so}", "$defs", defs);
        assert_non_null(schema);

        limits.max_depth = 0;
        limits.max_subschemas = 10000;
        s = ngx_http_loom_jschema_compile(schema, &limits, &err);
        assert_null(s);
        assert_string_equal((char *) err.text, "$ref and in-place "
                            "applicators chained more than 256 deep at the "
                            "root");
        json_decref(schema);
    }

    limits.max_depth = 0;
    limits.max_subschemas = 3;

    schema = j("{\"properties\":{\"a\":{},\"b\":{},\"c\":{}}}");
    s = ngx_http_loom_jschema_compile(schema, &limits, &err);
    assert_null(s);
    assert_string_equal((char *) err.text, "more than 3 subschemas at "
                        "/properties/c");
    json_decref(schema);
}


static void
test_formats(void **state)
{
    json_t                       *d;
    ngx_http_loom_jschema_t      *s;
    ngx_http_loom_jschema_err_t   err;

    /* an annotation unless the topic asks */

    assert_int_equal(valid("{\"format\":\"date\"}", "\"not a date\""),
                     NGX_OK);
    assert_int_equal(valid("{\"format\":\"x-custom\"}", "\"a\""), NGX_OK);

    s = compile("{\"format\":\"date\"}", NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT,
                &err);
    assert_non_null(s);

    d = j("\"2024-02-29\"");
    assert_int_equal(ngx_http_loom_jschema_validate(s, d, NULL), NGX_OK);
    json_decref(d);

    d = j("\"2023-02-29\"");
    assert_int_equal(ngx_http_loom_jschema_validate(s, d, NULL),
                     NGX_DECLINED);
    json_decref(d);
    ngx_http_loom_jschema_free(s);

    s = compile("{\"format\":\"x-custom\"}",
                NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT, &err);
    assert_null(s);
    assert_string_equal((char *) err.text, "unsupported format \"x-custom\" "
                        "at the root");
}


static void
test_errors(void **state)
{
    u_char                          *buf, *end;
    size_t                           len;
    json_t                          *d;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_errors_t   errors;

    s = compile("{\"type\":\"object\",\"properties\":{"
                "\"name\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"},"
                "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                "\"maxLength\":3}},\"a/b\":{\"const\":1},\"id\":{}},"
                "\"required\":[\"id\"],\"additionalProperties\":false}",
                0, &err);
    assert_non_null(s);

    d = j("{\"name\":\"Bob\",\"tags\":[\"ok\",\"long\",7],\"a/b\":1.0,"
          "\"x\":\"<\\\"\\n>\"}");

    /* the fast path says no and records nothing */

    assert_int_equal(ngx_http_loom_jschema_validate(s, d, NULL),
                     NGX_DECLINED);

    assert_int_equal(ngx_http_loom_jschema_errors_init(&errors, 10), NGX_OK);
    assert_int_equal(ngx_http_loom_jschema_validate(s, d, &errors),
                     NGX_DECLINED);
    assert_int_equal(errors.nelts, 5);
    assert_false(errors.truncated);

    len = ngx_http_loom_jschema_errors_json_len(&errors);
    buf = malloc(len);
    assert_non_null(buf);
    end = ngx_http_loom_jschema_errors_json(&errors, buf);
    assert_int_equal(end - buf, len);

    /*
     * members in the message's order; "required" after them, as its
     * names are all properties (counted in the same pass)
     */
    assert_memory_equal(buf,
        "[{\"instancePath\":\"/name\",\"keyword\":\"pattern\","
        "\"message\":\"does not match the pattern\"},"
        "{\"instancePath\":\"/tags/1\",\"keyword\":\"maxLength\","
        "\"message\":\"longer than 3 characters\"},"
        "{\"instancePath\":\"/tags/2\",\"keyword\":\"type\","
        "\"message\":\"wrong type\"},"
        "{\"instancePath\":\"/x\",\"keyword\":\"false\","
        "\"message\":\"no value is allowed\"},"
        "{\"instancePath\":\"\",\"keyword\":\"required\","
        "\"message\":\"property \\\"id\\\" missing\"}]", len);
    free(buf);

    /* the cap */

    ngx_http_loom_jschema_errors_free(&errors);
    assert_int_equal(ngx_http_loom_jschema_errors_init(&errors, 2), NGX_OK);
    assert_int_equal(ngx_http_loom_jschema_validate(s, d, &errors),
                     NGX_DECLINED);
    assert_int_equal(errors.nelts, 2);
    assert_true(errors.truncated);

    ngx_http_loom_jschema_errors_reset(&errors);
    json_decref(d);

    d = j("{\"id\":1,\"name\":\"bob\"}");
    assert_int_equal(ngx_http_loom_jschema_validate(s, d, &errors), NGX_OK);
    assert_int_equal(errors.nelts, 0);
    assert_int_equal(ngx_http_loom_jschema_errors_json_len(&errors), 2);

    json_decref(d);
    ngx_http_loom_jschema_errors_free(&errors);
    ngx_http_loom_jschema_free(s);
}


static void
test_escaping_in_paths(void **state)
{
    u_char                          *buf;
    size_t                           len;
    json_t                          *d;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_errors_t   errors;

    s = compile("{\"additionalProperties\":{\"type\":\"null\"}}", 0, &err);
    assert_non_null(s);

    d = j("{\"a~/\\\"\":1}");
    assert_int_equal(ngx_http_loom_jschema_errors_init(&errors, 4), NGX_OK);
    assert_int_equal(ngx_http_loom_jschema_validate(s, d, &errors),
                     NGX_DECLINED);

    len = ngx_http_loom_jschema_errors_json_len(&errors);
    buf = malloc(len);
    assert_non_null(buf);
    ngx_http_loom_jschema_errors_json(&errors, buf);

    assert_memory_equal(buf, "[{\"instancePath\":\"/a~0~1\\\"\","
                        "\"keyword\":\"type\",\"message\":\"wrong type\"}]",
                        len);

    free(buf);
    json_decref(d);
    ngx_http_loom_jschema_errors_free(&errors);
    ngx_http_loom_jschema_free(s);
}


static ngx_int_t
compat(const char *old, const char *new, ngx_uint_t mode)
{
    json_t     *o, *n;
    ngx_int_t   rc;

    o = j(old);
    n = j(new);
    rc = ngx_http_loom_jschema_compat(o, n, mode, 0, NULL);
    json_decref(o);
    json_decref(n);

    return rc;
}


/* the change is refused with this one difference */

static void
breaks(const char *old, const char *new, ngx_uint_t mode, const char *path,
    const char *reason)
{
    json_t                         *o, *n;
    ngx_http_loom_jschema_diffs_t   diffs;

    o = j(old);
    n = j(new);

    assert_int_equal(ngx_http_loom_jschema_diffs_init(&diffs, 8), NGX_OK);
    assert_int_equal(ngx_http_loom_jschema_compat(o, n, mode, 0, &diffs),
                     NGX_DECLINED);

    if (diffs.nelts != 1) {
        print_error("%lu differences, first %s: %s\n",
                    (unsigned long) diffs.nelts,
                    diffs.nelts ? diffs.elts[0].path : "-",
                    diffs.nelts ? diffs.elts[0].reason : "-");
    }

    assert_int_equal(diffs.nelts, 1);
    assert_string_equal(diffs.elts[0].path, path);
    assert_string_equal(diffs.elts[0].reason, reason);

    /* and without a collector the answer is the same */
    assert_int_equal(ngx_http_loom_jschema_compat(o, n, mode, 0, NULL),
                     NGX_DECLINED);

    ngx_http_loom_jschema_diffs_free(&diffs);
    json_decref(o);
    json_decref(n);
}


#define B  NGX_HTTP_LOOM_JSCHEMA_BACKWARD
#define F  NGX_HTTP_LOOM_JSCHEMA_FORWARD
#define FULL  NGX_HTTP_LOOM_JSCHEMA_FULL


static void
test_compat_objects(void **state)
{
    const char  *v1;

    v1 = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
         "\"required\":[\"a\"]}";

    /* an optional property added to an open object: compatible both ways */

    assert_int_equal(compat(v1, "{\"type\":\"object\",\"properties\":"
                                "{\"a\":{\"type\":\"string\"},\"b\":"
                                "{\"type\":\"integer\"}},\"required\":"
                                "[\"a\"]}", FULL), NGX_OK);

    /* a required one is not backward compatible, but forward */

    breaks(v1, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
               "\"string\"},\"b\":{}},\"required\":[\"a\",\"b\"]}", B,
           "", "property \"b\" is required by the new schema, not by the "
           "old one");
    assert_int_equal(compat(v1, "{\"type\":\"object\",\"properties\":{\"a\":"
                                "{\"type\":\"string\"},\"b\":{}},"
                                "\"required\":[\"a\",\"b\"]}", F), NGX_OK);

    /* a type narrowed, in a property */

    breaks(v1, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
               "\"string\",\"maxLength\":5}},\"required\":[\"a\"]}", B,
           "/properties/a", "\"maxLength\" added or lowered: the new schema "
           "refuses values the old one allows");

    /* closing an open object */

    breaks(v1, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
               "\"string\"}},\"required\":[\"a\"],"
               "\"additionalProperties\":false}", B, "",
           "\"additionalProperties\" added or narrowed: the new schema "
           "refuses properties the old one allows");

    /* a property added to a closed object */

    assert_int_equal(compat("{\"properties\":{\"a\":{}},"
                            "\"additionalProperties\":false}",
                            "{\"properties\":{\"a\":{},\"b\":{}},"
                            "\"additionalProperties\":false}", B), NGX_OK);
    breaks("{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
           "{\"properties\":{\"a\":{},\"b\":{}},"
           "\"additionalProperties\":false}", F, "/properties/b",
           "schema became false: nothing is valid");

    /* a partly open object: the additional schema is compared */

    breaks("{\"additionalProperties\":{\"type\":\"string\"}}",
           "{\"properties\":{\"n\":{\"type\":\"integer\"}},"
           "\"additionalProperties\":{\"type\":\"string\"}}", B,
           "/properties/n", "\"type\" narrowed: the new schema refuses "
           "types the old one allows");

    /* full: both directions, each named */

    breaks("{\"type\":\"object\"}", "{\"type\":[\"object\",\"null\"]}", FULL,
           "", "forward: \"type\" narrowed: the old schema refuses types "
           "the new one allows");
}


static void
test_compat_values(void **state)
{
    assert_int_equal(compat("{\"enum\":[1,2]}", "{\"enum\":[1,2,3]}", B),
                     NGX_OK);
    breaks("{\"enum\":[1,2]}", "{\"enum\":[1]}", B, "",
           "\"enum\" added or narrowed: the new schema refuses values the "
           "old one allows");
    assert_int_equal(compat("{\"const\":\"a\"}", "{\"enum\":[\"a\",\"b\"]}",
                            B), NGX_OK);

    /* the values of enum have types: 1 and 2.0 are integers */
    assert_int_equal(compat("{\"enum\":[1,2.0]}", "{\"type\":\"integer\"}",
                            B), NGX_OK);
    assert_int_equal(compat("{\"enum\":[1,\"2\"]}",
                            "{\"type\":\"integer\"}", B), NGX_DECLINED);

    assert_int_equal(compat("{\"minimum\":5}", "{\"minimum\":1}", B), NGX_OK);
    breaks("{\"minimum\":1}", "{\"minimum\":5}", B, "",
           "\"minimum\" added or made stricter: the new schema refuses "
           "numbers the old one allows");
    assert_int_equal(compat("{\"exclusiveMaximum\":10}", "{\"maximum\":10}",
                            B), NGX_OK);
    assert_int_equal(compat("{\"multipleOf\":4}", "{\"multipleOf\":2}", B),
                     NGX_OK);
    breaks("{\"multipleOf\":2}", "{\"multipleOf\":4}", B, "",
           "\"multipleOf\" added or made stricter: the new schema refuses "
           "numbers the old one allows");

    /* numeric keywords do not matter where numbers cannot be */
    assert_int_equal(compat("{\"type\":\"string\"}",
                            "{\"type\":\"string\",\"minimum\":3}", B),
                     NGX_OK);

    /* two patterns cannot be compared */
    breaks("{\"pattern\":\"^a\"}", "{\"pattern\":\"^[ab]\"}", B, "",
           "\"pattern\" added or changed: two different values cannot be "
           "compared, so the change counts as breaking");
    assert_int_equal(compat("{\"pattern\":\"^a\"}", "{}", B), NGX_OK);

    /* anyOf: a branch added is compatible, a branch removed is not */
    assert_int_equal(compat("{\"anyOf\":[{\"type\":\"string\"}]}",
                            "{\"anyOf\":[{\"type\":\"string\"},"
                            "{\"type\":\"null\"}]}", B), NGX_OK);
    assert_int_equal(compat("{\"anyOf\":[{\"type\":\"string\"},"
                            "{\"type\":\"null\"}]}",
                            "{\"anyOf\":[{\"type\":\"string\"}]}", B),
                     NGX_DECLINED);

    /* items */
    breaks("{\"items\":{\"type\":\"number\"}}",
           "{\"items\":{\"type\":\"integer\"}}", B, "/items",
           "\"type\" narrowed: the new schema refuses types the old one "
           "allows");
    assert_int_equal(compat("{\"items\":{\"type\":\"integer\"}}",
                            "{\"items\":{\"type\":\"number\"}}", B), NGX_OK);

    /* $ref on either side is followed */
    assert_int_equal(compat("{\"$defs\":{\"s\":{\"type\":\"string\"}},"
                            "\"properties\":{\"a\":{\"$ref\":\"#/$defs/s\"}}}",
                            "{\"properties\":{\"a\":{\"type\":\"string\"}}}",
                            FULL), NGX_OK);

    /* anchors and percent-escaped pointers too; a remote one breaks */
    breaks("{\"$defs\":{\"a b\":{\"$anchor\":\"s\",\"type\":\"string\"}},"
           "\"properties\":{\"a\":{\"$ref\":\"#/$defs/a%20b\"}}}",
           "{\"$defs\":{\"n\":{\"$anchor\":\"n\",\"maxLength\":2}},"
           "\"properties\":{\"a\":{\"$ref\":\"#n\"}}}", B, "/properties/a",
           "\"maxLength\" added or lowered: the new schema refuses values "
           "the old one allows");
    breaks("{}", "{\"$ref\":\"http://example.com/s\"}", B, "",
           "a $ref that cannot be followed cannot be compared");

    /* annotations do not matter */
    assert_int_equal(compat("{\"title\":\"a\",\"type\":\"string\"}",
                            "{\"description\":\"b\",\"type\":\"string\"}",
                            FULL), NGX_OK);
}


static void
test_compat_keyset(void **state)
{
    json_t                         *o, *n;
    ngx_http_loom_jschema_diffs_t   diffs;

    o = j("{\"a\":1,\"b\":{\"c\":1}}");

    n = j("{\"b\":{\"c\":\"x\"},\"a\":null}");
    assert_int_equal(ngx_http_loom_schema_compat(o, n, FULL, NULL), NGX_OK);
    json_decref(n);

    /* a scalar made an object: old messages still fit, new ones may not */
    n = j("{\"a\":{\"z\":1},\"b\":{\"c\":1}}");
    assert_int_equal(ngx_http_loom_schema_compat(o, n, B, NULL), NGX_OK);
    assert_int_equal(ngx_http_loom_schema_compat(o, n, F, NULL),
                     NGX_DECLINED);
    json_decref(n);

    n = j("{\"a\":1,\"b\":{\"c\":1,\"d/e\":1}}");
    assert_int_equal(ngx_http_loom_jschema_diffs_init(&diffs, 4), NGX_OK);
    assert_int_equal(ngx_http_loom_schema_compat(o, n, FULL, &diffs),
                     NGX_DECLINED);
    assert_int_equal(diffs.nelts, 2);
    assert_string_equal(diffs.elts[0].path, "/b/d~1e");
    assert_string_equal(diffs.elts[0].reason, "backward: key \"d/e\" is in "
                        "the new schema, not in the old one");
    assert_string_equal(diffs.elts[1].reason, "forward: key \"d/e\" is in "
                        "the new schema, not in the old one");
    ngx_http_loom_jschema_diffs_free(&diffs);
    json_decref(n);

    json_decref(o);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_recursion_and_refs),
        cmocka_unit_test(test_unevaluated),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_escaping_in_paths),
        cmocka_unit_test(test_compat_objects),
        cmocka_unit_test(test_compat_values),
        cmocka_unit_test(test_compat_keyset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
