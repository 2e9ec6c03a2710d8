/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"


static ngx_uint_t ngx_http_loom_auth_equal(u_char *given, size_t len,
    ngx_str_t *key);


/*
 * The Authorization header holds the raw key, as the original server
 * expects, or "Bearer <key>".  Every configured key is compared, each in
 * time that depends on its length only, so the answer's timing does not
 * tell how much of a key was right.
 */

ngx_int_t
ngx_http_loom_auth_check(ngx_http_request_t *r, ngx_array_t *keys)
{
    u_char           *p, *last;
    ngx_str_t        *key;
    ngx_uint_t        i, match;
    ngx_table_elt_t  *h;

    if (keys == NULL || keys->nelts == 0) {
        return NGX_OK;
    }

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len == 0) {
        return NGX_DECLINED;
    }

    p = h->value.data;
    last = p + h->value.len;

    /* nginx has trimmed the value already; "Bearer" is case-insensitive */

    if (h->value.len > 7 && ngx_strncasecmp(p, (u_char *) "bearer ", 7) == 0)
    {
        p += 7;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }
    }

    key = keys->elts;
    match = 0;

    for (i = 0; i < keys->nelts; i++) {
        match |= ngx_http_loom_auth_equal(h->value.data, h->value.len,
                                          &key[i]);
        match |= ngx_http_loom_auth_equal(p, last - p, &key[i]);
    }

    return match ? NGX_OK : NGX_DECLINED;
}


static ngx_uint_t
ngx_http_loom_auth_equal(u_char *given, size_t len, ngx_str_t *key)
{
    size_t      i;
    ngx_uint_t  diff;

    diff = (len != key->len);

    for (i = 0; i < key->len; i++) {
        diff |= key->data[i] ^ ((i < len) ? given[i] : 0);
    }

    return diff == 0;
}
