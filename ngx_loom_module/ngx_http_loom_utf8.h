/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_UTF8_H_INCLUDED_
#define _NGX_HTTP_LOOM_UTF8_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Incremental UTF-8 validation (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF.  The state carries a sequence that
 * is split between two calls, so a text message can be checked fragment
 * by fragment and fail on the first bad byte.
 */


#define NGX_HTTP_LOOM_UTF8_ACCEPT  0
#define NGX_HTTP_LOOM_UTF8_REJECT  0xff


/*
 * Returns the new state: NGX_HTTP_LOOM_UTF8_ACCEPT at a character boundary,
 * NGX_HTTP_LOOM_UTF8_REJECT once invalid input was seen (and ever after),
 * anything else inside a multi-byte sequence.
 */
ngx_uint_t ngx_http_loom_utf8_check(ngx_uint_t state, u_char *p, size_t len);

/*
 * The length of the multi-byte sequence at p (*p >= 0x80) if it is valid,
 * else 0: what Go's utf8.DecodeRune() takes as one rune.
 */
size_t ngx_http_loom_utf8_size(u_char *p, u_char *last);


#endif /* _NGX_HTTP_LOOM_UTF8_H_INCLUDED_ */
