/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for JSON Schema compilation: the input is a schema.
 * Besides not crashing or leaking: a refusal has a text, the two ways of
 * validating agree (on the schema itself and a few values), and a schema
 * is compatible with itself.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char  *values[] = {
    "null", "0", "1.5", "\"\"", "\"abc\"", "[]", "[1,\"a\",[null]]", "{}",
    "{\"a\":1,\"b\":{\"c\":[true]}}", NULL
};


static void
check(ngx_http_loom_jschema_t *s, json_t *v)
{
    ngx_int_t                        fast, full;
    ngx_http_loom_jschema_errors_t   errors;

    if (ngx_http_loom_jschema_errors_init(&errors, 8) != NGX_OK) {
        abort();
    }

    fast = ngx_http_loom_jschema_validate(s, v, NULL);
    full = ngx_http_loom_jschema_validate(s, v, &errors);

    if ((fast != NGX_OK && fast != NGX_DECLINED)
        || (full != NGX_ERROR && full != fast)
        || (full == NGX_OK && errors.nelts != 0)
        || (full == NGX_DECLINED && errors.nelts == 0))
    {
        abort();
    }

    ngx_http_loom_jschema_errors_free(&errors);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                          *schema, *v;
    ngx_uint_t                       i;
    json_error_t                     jerr;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_limits_t   limits;

    schema = json_loadb((const char *) data, size, JSON_DECODE_ANY, &jerr);
    if (schema == NULL) {
        return 0;
    }

    memset(&limits, 0, sizeof(limits));
    limits.flags = (size & 1) ? NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT : 0;

    s = ngx_http_loom_jschema_compile(schema, &limits, &err);

    if (s == NULL) {
        if (err.len == 0 || err.len != strlen((char *) err.text)) {
            abort();
        }

        json_decref(schema);
        return 0;
    }

    check(s, schema);

    for (i = 0; values[i]; i++) {
        v = json_loads(values[i], JSON_DECODE_ANY, &jerr);
        check(s, v);
        json_decref(v);
    }

    if (ngx_http_loom_jschema_compat(schema, schema,
                                     NGX_HTTP_LOOM_JSCHEMA_FULL,
                                     limits.flags, NULL)
        == NGX_DECLINED)
    {
        abort();
    }

    ngx_http_loom_jschema_free(s);
    json_decref(schema);

    return 0;
}
