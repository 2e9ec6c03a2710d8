/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_schema.h"


ngx_int_t
ngx_http_loom_schema_match(json_t *schema, json_t *data)
{
    json_t      *value, *expected;
    const char  *key;
    size_t       len;

    if (!json_is_object(schema) || !json_is_object(data)) {
        return NGX_DECLINED;
    }

    if (json_object_size(schema) != json_object_size(data)) {
        return NGX_DECLINED;
    }

    json_object_keylen_foreach(data, key, len, value) {

        expected = json_object_getn(schema, key, len);

        if (expected == NULL) {
            return NGX_DECLINED;
        }

        if (json_is_object(value)
            && ngx_http_loom_schema_match(expected, value) != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_schema_same(json_t *existing, json_t *proposed)
{
    return ngx_http_loom_schema_match(proposed, existing);
}
