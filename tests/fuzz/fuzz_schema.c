/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for the schema rule: the input holds a schema and a
 * message separated by a NUL byte.  Besides not crashing: every object
 * matches itself, and the rule agrees with itself when asked twice.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_schema.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t        *schema, *message;
    ngx_int_t      rc;
    const u_char  *sep;
    json_error_t   err;

    sep = memchr(data, 0, size);
    if (sep == NULL) {
        return 0;
    }

    schema = json_loadb((const char *) data, sep - data,
                        JSON_DECODE_ANY|JSON_DECODE_INT_AS_REAL, &err);
    message = json_loadb((const char *) sep + 1, size - (sep - data) - 1,
                         JSON_DECODE_ANY|JSON_DECODE_INT_AS_REAL, &err);

    if (schema && message) {
        rc = ngx_http_loom_schema_match(schema, message);

        if (rc != NGX_OK && rc != NGX_DECLINED) {
            abort();
        }

        if (ngx_http_loom_schema_match(schema, message) != rc) {
            abort();
        }

        if (ngx_http_loom_schema_same(message, schema) != rc) {
            abort();
        }
    }

    if (schema && json_is_object(schema)
        && ngx_http_loom_schema_match(schema, schema) != NGX_OK)
    {
        abort();
    }

    json_decref(schema);
    json_decref(message);

    return 0;
}
