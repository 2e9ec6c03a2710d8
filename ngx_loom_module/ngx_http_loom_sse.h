/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SSE_H_INCLUDED_
#define _NGX_HTTP_LOOM_SSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Server-Sent Events (the text/event-stream format of the HTML standard)
 * as docs/http.md describes them: an event is
 *
 *     event: <name>\n            (only for a named event)
 *     id: <rev>:<epoch>\n        (a position: not for what is not stored)
 *     data: <line>\n             (one per line of the JSON text)
 *     \n
 *
 * The JSON text's trailing line breaks are dropped; a line break inside
 * it (JSON whitespace: CR, LF or CRLF) starts another "data:" line, which
 * a client joins with LF again.  CR, LF and NUL are left out of the epoch
 * (the scripts never make one with them).
 *
 * Pure code: no nginx function calls.
 */


#define NGX_HTTP_LOOM_SSE_HEARTBEAT  ":\n\n"


typedef struct {
    ngx_str_t                   name;       /* empty: a plain message */
    uint64_t                    rev;        /* and no epoch: no id */
    ngx_str_t                   epoch;
    ngx_str_t                   data;       /* JSON text */
} ngx_http_loom_sse_event_t;


size_t ngx_http_loom_sse_event_len(ngx_http_loom_sse_event_t *ev);
u_char *ngx_http_loom_sse_event(u_char *dst, ngx_http_loom_sse_event_t *ev);

/*
 * A Last-Event-ID: "<rev>:<epoch>", or "<rev>" alone (a revision of an
 * epoch not known).  NGX_OK with rev and epoch (pointing into id);
 * NGX_DECLINED: empty; NGX_ERROR: not of that form, or a revision
 * above 2^53.
 */
ngx_int_t ngx_http_loom_sse_last_id(ngx_str_t *id, uint64_t *rev,
    ngx_str_t *epoch);


#endif /* _NGX_HTTP_LOOM_SSE_H_INCLUDED_ */
