/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_shm.h"


/*
 * A session's output: a ring of frames.  Frames are reference counted, so
 * a delivery framed once is shared by every session it is queued to.  The
 * frames queued during one pass of the event loop leave together at its
 * end, in one writev() (or one TLS buffer) of up to NGX_HTTP_LOOM_IOVS.
 */


#define NGX_HTTP_LOOM_OUT_MIN      8


static void ngx_http_loom_output_schedule(ngx_http_loom_session_t *s);


ngx_int_t
ngx_http_loom_output_flush(ngx_http_loom_session_t *s)
{
    ngx_buf_t               *b;
    ngx_uint_t               i, n, mask;
    ngx_chain_t             *cl;
    ngx_connection_t        *c;
    ngx_http_loom_frame_t   *f;
    ngx_http_loom_worker_t  *w;

    c = s->connection;
    w = s->worker;

    for ( ;; ) {

        if (s->out_count == 0) {

#if (NGX_SSL)
            if (c->buffered & NGX_SSL_BUFFERED) {
                cl = c->send_chain(c, NULL, 0);

                if (cl == NGX_CHAIN_ERROR) {
                    c->error = 1;
                    return NGX_ERROR;
                }

                if (c->buffered & NGX_SSL_BUFFERED) {
                    return NGX_AGAIN;
                }
            }
#endif

            return NGX_OK;
        }

        if (!c->write->ready) {
            return NGX_AGAIN;
        }

        mask = s->out_size - 1;
        n = ngx_min(s->out_count, NGX_HTTP_LOOM_IOVS);

        for (i = 0; i < n; i++) {
            f = s->out[(s->out_head + i) & mask];
            b = &w->out_bufs[i];

            b->start = f->data;
            b->pos = f->data + (i == 0 ? s->out_sent : 0);
            b->last = f->data + f->len;
            b->end = b->last;
            b->flush = (i == n - 1);

            w->out_chain[i].next = (i + 1 < n) ? &w->out_chain[i + 1] : NULL;
        }

        cl = c->send_chain(c, w->out_chain, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            b = &w->out_bufs[i];
            f = s->out[s->out_head];

            if (b->pos < b->last) {
                s->out_sent = b->pos - f->data;
                break;
            }

            s->out[s->out_head] = NULL;
            s->out_head = (s->out_head + 1) & mask;
            s->out_count--;
            s->out_bytes -= f->len;
            s->out_sent = 0;

            ngx_http_loom_frame_release(f);
        }

        if (cl != NULL) {
            return NGX_AGAIN;
        }
    }
}


ngx_int_t
ngx_http_loom_session_send(ngx_http_loom_session_t *s,
    ngx_http_loom_frame_t *f)
{
    ngx_connection_t  *c;

    if (s->closing || s->finalized) {
        return NGX_ERROR;
    }

    if (s->out_count && s->out_bytes + f->len > s->conf->max_send_queue) {
        c = s->connection;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client does not read fast enough, %uz bytes queued: "
                      "closing", s->out_bytes);

        if (s->worker->stats) {
            s->worker->stats->slow_consumers++;
        }

        ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_SLOW_CONSUMER,
                                    "slow consumer");
        return NGX_ERROR;
    }

    return ngx_http_loom_output_queue(s, f);
}


ngx_int_t
ngx_http_loom_output_queue(ngx_http_loom_session_t *s,
    ngx_http_loom_frame_t *f)
{
    ngx_uint_t               i, size;
    ngx_http_loom_frame_t  **out;

    if (s->finalized) {
        return NGX_ERROR;
    }

    if (s->out_count == s->out_size) {
        size = s->out_size ? 2 * s->out_size : NGX_HTTP_LOOM_OUT_MIN;

        out = ngx_alloc(size * sizeof(ngx_http_loom_frame_t *),
                        s->connection->log);
        if (out == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < s->out_count; i++) {
            out[i] = s->out[(s->out_head + i) & (s->out_size - 1)];
        }

        if (s->out) {
            ngx_free(s->out);
        }

        s->out = out;
        s->out_size = size;
        s->out_head = 0;
    }

    s->out[(s->out_head + s->out_count) & (s->out_size - 1)] = f;
    s->out_count++;
    s->out_bytes += f->len;
    f->refs++;

    ngx_http_loom_output_schedule(s);

    return NGX_OK;
}


static void
ngx_http_loom_output_schedule(ngx_http_loom_session_t *s)
{
    ngx_event_t  *wev;

    wev = s->connection->write;

    /*
     * frames queued during one pass of the event loop leave in one write
     * at its end
     */

    if (wev->ready && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


/* drops queued frames; a frame partly written must still be completed */

void
ngx_http_loom_output_drop(ngx_http_loom_session_t *s)
{
    ngx_uint_t              keep, mask;
    ngx_http_loom_frame_t  *f;

    if (s->out_count == 0) {
        return;
    }

    mask = s->out_size - 1;
    keep = (s->out_sent > 0) ? 1 : 0;

    while (s->out_count > keep) {
        f = s->out[(s->out_head + s->out_count - 1) & mask];
        s->out[(s->out_head + s->out_count - 1) & mask] = NULL;
        s->out_count--;
        s->out_bytes -= f->len;

        ngx_http_loom_frame_release(f);
    }
}


ngx_http_loom_frame_t *
ngx_http_loom_frame_alloc(ngx_uint_t opcode, size_t len, u_char **payload)
{
    size_t                  hlen;
    ngx_http_loom_frame_t  *f;

    hlen = ngx_http_loom_ws_header_size(len);

    f = ngx_alloc(offsetof(ngx_http_loom_frame_t, data) + hlen + len,
                  ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    f->refs = 1;
    f->len = hlen + len;

    *payload = ngx_http_loom_ws_header(f->data, opcode, len);

    return f;
}


void
ngx_http_loom_frame_release(ngx_http_loom_frame_t *f)
{
    if (--f->refs == 0) {
        ngx_free(f);
    }
}
