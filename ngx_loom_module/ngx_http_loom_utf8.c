/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_utf8.h"


/*
 * The state packs what is still expected:
 *
 *     bits 0-1   continuation bytes still to come (0 at a boundary)
 *     bits 4-7   the range the next continuation byte must fall into:
 *                the first one after E0, ED, F0 and F4 is narrower
 */

#define NGX_HTTP_LOOM_UTF8_ANY     0x00      /* 80..BF */
#define NGX_HTTP_LOOM_UTF8_E0      0x10      /* A0..BF: no overlong */
#define NGX_HTTP_LOOM_UTF8_ED      0x20      /* 80..9F: no surrogates */
#define NGX_HTTP_LOOM_UTF8_F0      0x30      /* 90..BF: no overlong */
#define NGX_HTTP_LOOM_UTF8_F4      0x40      /* 80..8F: <= U+10FFFF */


static ngx_uint_t ngx_http_loom_utf8_lead(ngx_uint_t c);


ngx_uint_t
ngx_http_loom_utf8_check(ngx_uint_t state, u_char *p, size_t len)
{
    u_char      *last;
    uint64_t     w;
    ngx_uint_t   c, lo, hi;

    if (state == NGX_HTTP_LOOM_UTF8_REJECT) {
        return state;
    }

    last = p + len;

    while (p < last) {

        if (state == NGX_HTTP_LOOM_UTF8_ACCEPT) {

            /* ASCII runs, eight bytes at a time */

            while (last - p >= 8) {
                ngx_memcpy(&w, p, 8);

                if (w & 0x8080808080808080ULL) {
                    break;
                }

                p += 8;
            }

            while (p < last && *p < 0x80) {
                p++;
            }

            if (p == last) {
                break;
            }

            state = ngx_http_loom_utf8_lead(*p++);

            if (state == NGX_HTTP_LOOM_UTF8_REJECT) {
                return state;
            }

            continue;
        }

        c = *p++;

        switch (state & 0xf0) {

        case NGX_HTTP_LOOM_UTF8_E0:
            lo = 0xa0;
            hi = 0xbf;
            break;

        case NGX_HTTP_LOOM_UTF8_ED:
            lo = 0x80;
            hi = 0x9f;
            break;

        case NGX_HTTP_LOOM_UTF8_F0:
            lo = 0x90;
            hi = 0xbf;
            break;

        case NGX_HTTP_LOOM_UTF8_F4:
            lo = 0x80;
            hi = 0x8f;
            break;

        default: /* NGX_HTTP_LOOM_UTF8_ANY */
            lo = 0x80;
            hi = 0xbf;
            break;
        }

        if (c < lo || c > hi) {
            return NGX_HTTP_LOOM_UTF8_REJECT;
        }

        /* one continuation byte less, and the next one may be any */
        state = (state & 0x03) - 1;
    }

    return state;
}


static ngx_uint_t
ngx_http_loom_utf8_lead(ngx_uint_t c)
{
    if (c < 0xc2) {
        /* 80..BF: stray continuation; C0, C1: overlong two-byte forms */
        return NGX_HTTP_LOOM_UTF8_REJECT;
    }

    if (c < 0xe0) {
        return 1;
    }

    if (c < 0xf0) {

        if (c == 0xe0) {
            return NGX_HTTP_LOOM_UTF8_E0 | 2;
        }

        if (c == 0xed) {
            return NGX_HTTP_LOOM_UTF8_ED | 2;
        }

        return 2;
    }

    if (c == 0xf0) {
        return NGX_HTTP_LOOM_UTF8_F0 | 3;
    }

    if (c < 0xf4) {
        return 3;
    }

    if (c == 0xf4) {
        return NGX_HTTP_LOOM_UTF8_F4 | 3;
    }

    return NGX_HTTP_LOOM_UTF8_REJECT;
}


/*
 * The JSON escaper walks strings with this: each byte of a broken
 * sequence then becomes a U+FFFD of its own, as in Go.
 */

size_t
ngx_http_loom_utf8_size(u_char *p, u_char *last)
{
    u_char  c, lo, hi;
    size_t  i, n;

    c = *p;
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}
