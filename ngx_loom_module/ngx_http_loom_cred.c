/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_cred.h"


static ngx_int_t ngx_http_loom_cred_hex(u_char c);
static ngx_uint_t ngx_http_loom_cred_tchar(u_char c);


ngx_int_t
ngx_http_loom_cred_authorization(ngx_str_t *value, ngx_str_t *cred)
{
    u_char  *p, *last;

    p = value->data;
    last = p + value->len;

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    if (last - p > 6 && strncasecmp((char *) p, "bearer", 6) == 0
        && (p[6] == ' ' || p[6] == '\t'))
    {
        p += 6;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    cred->data = p;
    cred->len = last - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_cred_query(ngx_str_t *args, u_char *buf, ngx_str_t *cred)
{
    u_char     *p, *last, *end, *v, *d;
    ngx_int_t   hi, lo, found;

    p = args->data;
    last = p + args->len;
    found = 0;

    while (p < last) {
        end = memchr(p, '&', last - p);
        if (end == NULL) {
            end = last;
        }

        if (end - p > NGX_HTTP_LOOM_CRED_QUERY_LEN
            && p[NGX_HTTP_LOOM_CRED_QUERY_LEN] == '='
            && ngx_strncmp(p, NGX_HTTP_LOOM_CRED_QUERY,
                           NGX_HTTP_LOOM_CRED_QUERY_LEN) == 0)
        {
            if (found) {
                return NGX_ERROR;
            }

            found = 1;
            d = buf;

            for (v = p + NGX_HTTP_LOOM_CRED_QUERY_LEN + 1; v < end; v++) {

                if (*v == '+') {
                    *d++ = ' ';
                    continue;
                }

                if (*v == '\0') {
                    return NGX_ERROR;
                }

                if (*v != '%') {
                    *d++ = *v;
                    continue;
                }

                if (end - v < 3) {
                    return NGX_ERROR;
                }

                hi = ngx_http_loom_cred_hex(v[1]);
                lo = ngx_http_loom_cred_hex(v[2]);

                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                    return NGX_ERROR;
                }

                *d++ = (u_char) (hi << 4 | lo);
                v += 2;
            }

            cred->data = buf;
            cred->len = d - buf;

        } else if (end - p == NGX_HTTP_LOOM_CRED_QUERY_LEN
                   && ngx_strncmp(p, NGX_HTTP_LOOM_CRED_QUERY,
                                  NGX_HTTP_LOOM_CRED_QUERY_LEN) == 0)
        {
            /* "access_token" without "=": given, and empty */

            if (found) {
                return NGX_ERROR;
            }

            found = 1;
            cred->data = buf;
            cred->len = 0;
        }

        p = end + 1;
    }

    if (!found || cred->len == 0) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_cred_subprotocol(ngx_str_t *value, ngx_str_t *cred)
{
    u_char      *p, *last, *start, *end, *q;
    ngx_uint_t   found;

    p = value->data;
    last = p + value->len;
    found = 0;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        for (end = p; end < last && *end != ','; end++) {
            /* void */
        }

        p = end + 1;

        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        if (end - start < NGX_HTTP_LOOM_CRED_PROTOCOL_LEN
            || ngx_strncmp(start, NGX_HTTP_LOOM_CRED_PROTOCOL,
                           NGX_HTTP_LOOM_CRED_PROTOCOL_LEN) != 0)
        {
            continue;
        }

        if (found) {
            return NGX_ERROR;
        }

        found = 1;
        start += NGX_HTTP_LOOM_CRED_PROTOCOL_LEN;

        if (start == end) {
            return NGX_ERROR;
        }

        for (q = start; q < end; q++) {
            if (!ngx_http_loom_cred_tchar(*q)) {
                return NGX_ERROR;
            }
        }

        cred->data = start;
        cred->len = end - start;
    }

    return found ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_cred_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* RFC 7230 section 3.2.6: token = 1*tchar */

static ngx_uint_t
ngx_http_loom_cred_tchar(u_char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
        || (c >= 'a' && c <= 'z'))
    {
        return 1;
    }

    if (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL) {
        return 1;
    }

    return 0;
}
