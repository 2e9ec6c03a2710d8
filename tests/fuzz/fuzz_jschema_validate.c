/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for JSON Schema validation: the input holds a schema
 * and an instance separated by a NUL byte.  Besides not crashing or
 * leaking: the fast and the collecting validation agree, the collected
 * failures write a JSON array of that many objects, and the schema
 * comparison in both directions runs to an answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check_json(ngx_http_loom_jschema_errors_t *errors)
{
    u_char        *buf, *end;
    size_t         len;
    json_t        *a;
    json_error_t   jerr;

    len = ngx_http_loom_jschema_errors_json_len(errors);
    buf = malloc(len);
    if (buf == NULL) {
        abort();
    }

    end = ngx_http_loom_jschema_errors_json(errors, buf);

    if ((size_t) (end - buf) != len) {
        abort();
    }

    a = json_loadb((char *) buf, len, 0, &jerr);

    if (a == NULL || json_array_size(a) != errors->nelts) {
        abort();
    }

    json_decref(a);
    free(buf);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t                          *schema, *inst;
    ngx_int_t                        fast, full;
    const u_char                    *sep;
    json_error_t                     jerr;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_diffs_t    diffs;
    ngx_http_loom_jschema_errors_t   errors;
    ngx_http_loom_jschema_limits_t   limits;

    sep = memchr(data, 0, size);
    if (sep == NULL) {
        return 0;
    }

    schema = json_loadb((const char *) data, sep - data, JSON_DECODE_ANY,
                        &jerr);
    inst = json_loadb((const char *) sep + 1, size - (sep - data) - 1,
                      JSON_DECODE_ANY|JSON_ALLOW_NUL, &jerr);

    if (schema == NULL || inst == NULL) {
        goto done;
    }

    if (ngx_http_loom_jschema_diffs_init(&diffs, 4) != NGX_OK) {
        abort();
    }

    if (ngx_http_loom_jschema_compat(schema, inst, NGX_HTTP_LOOM_JSCHEMA_FULL,
                                     0, &diffs) == NGX_DECLINED
        && diffs.nelts == 0)
    {
        abort();
    }

    ngx_http_loom_jschema_diffs_free(&diffs);

    memset(&limits, 0, sizeof(limits));
    limits.flags = NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT;

    s = ngx_http_loom_jschema_compile(schema, &limits, &err);
    if (s == NULL) {
        limits.flags = 0;
        s = ngx_http_loom_jschema_compile(schema, &limits, &err);
    }

    if (s == NULL) {
        goto done;
    }

    if (ngx_http_loom_jschema_errors_init(&errors, 1 + size % 7) != NGX_OK) {
        abort();
    }

    fast = ngx_http_loom_jschema_validate(s, inst, NULL);
    full = ngx_http_loom_jschema_validate(s, inst, &errors);

    if ((fast != NGX_OK && fast != NGX_DECLINED)
        || (full != NGX_ERROR && full != fast)
        || (full == NGX_OK && errors.nelts != 0)
        || (full == NGX_DECLINED && errors.nelts == 0))
    {
        abort();
    }

    check_json(&errors);

    ngx_http_loom_jschema_errors_free(&errors);
    ngx_http_loom_jschema_free(s);

done:

    json_decref(schema);
    json_decref(inst);

    return 0;
}
