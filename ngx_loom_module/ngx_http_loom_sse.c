/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_sse.h"
#include "ngx_http_loom_rev.h"


#define NGX_HTTP_LOOM_SSE_MAX_REV  9007199254740992ULL     /* 2^53 */


static ngx_uint_t ngx_http_loom_sse_epoch_byte(u_char c);
static void ngx_http_loom_sse_trim(ngx_str_t *data);


size_t
ngx_http_loom_sse_event_len(ngx_http_loom_sse_event_t *ev)
{
    u_char     *p, *last;
    size_t      len;
    ngx_str_t   data;

    len = 0;

    if (ev->name.len) {
        len += sizeof("event: \n") - 1 + ev->name.len;
    }

    if (ev->rev || ev->epoch.len) {
        len += sizeof("id: :\n") - 1 + ngx_http_loom_rev_digits(ev->rev);

        for (p = ev->epoch.data, last = p + ev->epoch.len; p < last; p++) {
            len += ngx_http_loom_sse_epoch_byte(*p);
        }
    }

    data = ev->data;
    ngx_http_loom_sse_trim(&data);

    len += sizeof("data: \n\n") - 1;

    for (p = data.data, last = p + data.len; p < last; p++) {

        if (*p == '\r' && p + 1 < last && p[1] == '\n') {
            p++;
        }

        len += (*p == '\r' || *p == '\n') ? sizeof("\ndata: ") - 1 : 1;
    }

    return len;
}


u_char *
ngx_http_loom_sse_event(u_char *dst, ngx_http_loom_sse_event_t *ev)
{
    u_char     *p, *last;
    ngx_str_t   data;

    if (ev->name.len) {
        dst = ngx_cpymem(dst, "event: ", 7);
        dst = ngx_cpymem(dst, ev->name.data, ev->name.len);
        *dst++ = '\n';
    }

    if (ev->rev || ev->epoch.len) {
        dst = ngx_cpymem(dst, "id: ", 4);
        dst = ngx_http_loom_rev_decimal(dst, ev->rev);
        *dst++ = ':';

        for (p = ev->epoch.data, last = p + ev->epoch.len; p < last; p++) {
            if (ngx_http_loom_sse_epoch_byte(*p)) {
                *dst++ = *p;
            }
        }

        *dst++ = '\n';
    }

    data = ev->data;
    ngx_http_loom_sse_trim(&data);

    dst = ngx_cpymem(dst, "data: ", 6);

    for (p = data.data, last = p + data.len; p < last; p++) {

        if (*p == '\r' && p + 1 < last && p[1] == '\n') {
            p++;
        }

        if (*p == '\r' || *p == '\n') {
            dst = ngx_cpymem(dst, "\ndata: ", 7);

        } else {
            *dst++ = *p;
        }
    }

    *dst++ = '\n';
    *dst++ = '\n';

    return dst;
}


ngx_int_t
ngx_http_loom_sse_last_id(ngx_str_t *id, uint64_t *rev, ngx_str_t *epoch)
{
    u_char    *p, *last;
    uint64_t   n;

    p = id->data;
    last = p + id->len;

    /* spaces around it, as a proxy may leave them */

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    n = 0;

    if (*p < '0' || *p > '9') {
        return NGX_ERROR;
    }

    while (p < last && *p >= '0' && *p <= '9') {
        n = n * 10 + (*p++ - '0');

        if (n > NGX_HTTP_LOOM_SSE_MAX_REV) {
            return NGX_ERROR;
        }
    }

    if (p < last && *p != ':') {
        return NGX_ERROR;
    }

    *rev = n;

    if (p == last) {
        epoch->data = p;
        epoch->len = 0;
        return NGX_OK;
    }

    p++;

    if (p == last) {
        return NGX_ERROR;
    }

    epoch->data = p;
    epoch->len = last - p;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_loom_sse_epoch_byte(u_char c)
{
    return (c != '\r' && c != '\n' && c != '\0') ? 1 : 0;
}


static void
ngx_http_loom_sse_trim(ngx_str_t *data)
{
    while (data->len
           && (data->data[data->len - 1] == '\n'
               || data->data[data->len - 1] == '\r'))
    {
        data->len--;
    }
}
