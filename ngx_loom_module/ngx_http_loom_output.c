/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_loom_output.h"
#include "ngx_http_loom_ws.h"


/*
 * A connection's output: a ring of frames.  Frames are reference counted,
 * so a delivery framed once is shared by every connection it is queued to.
 * The frames queued during one pass of the event loop leave together at
 * its end, in one writev() (or one TLS buffer) of up to NGX_HTTP_LOOM_IOVS.
 */


#define NGX_HTTP_LOOM_OUT_MIN      8


/* this worker's links and buffers a flush hands to c->send_chain() */

typedef struct {
    ngx_chain_t                    chain[NGX_HTTP_LOOM_IOVS];
    ngx_buf_t                      bufs[NGX_HTTP_LOOM_IOVS];
} ngx_http_loom_out_worker_t;


static void ngx_http_loom_out_schedule(ngx_http_loom_out_t *o);


static ngx_http_loom_out_worker_t  ngx_http_loom_out_worker;


ngx_int_t
ngx_http_loom_out_flush(ngx_http_loom_out_t *o)
{
    ngx_buf_t                   *b;
    ngx_uint_t                   i, n, mask;
    ngx_chain_t                 *cl;
    ngx_connection_t            *c;
    ngx_http_loom_frame_t       *f;
    ngx_http_loom_out_worker_t  *ow;

    c = o->connection;
    ow = &ngx_http_loom_out_worker;

    for ( ;; ) {

        if (o->count == 0) {

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

        mask = o->size - 1;
        n = ngx_min(o->count, NGX_HTTP_LOOM_IOVS);

        for (i = 0; i < n; i++) {
            f = o->ring[(o->head + i) & mask];
            b = &ow->bufs[i];

            ngx_memzero(b, sizeof(ngx_buf_t));

            b->memory = 1;
            b->start = f->data;
            b->pos = f->data + (i == 0 ? o->sent : 0);
            b->last = f->data + f->len;
            b->end = b->last;
            b->flush = (i == n - 1);

            ow->chain[i].buf = b;
            ow->chain[i].next = (i + 1 < n) ? &ow->chain[i + 1] : NULL;
        }

        cl = c->send_chain(c, ow->chain, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            b = &ow->bufs[i];
            f = o->ring[o->head];

            if (b->pos < b->last) {
                o->sent = b->pos - f->data;
                break;
            }

            o->ring[o->head] = NULL;
            o->head = (o->head + 1) & mask;
            o->count--;
            o->bytes -= f->len;
            o->sent = 0;

            ngx_http_loom_frame_release(f);
        }

        if (cl != NULL) {
            return NGX_AGAIN;
        }
    }
}


ngx_int_t
ngx_http_loom_out_send(ngx_http_loom_out_t *o, ngx_http_loom_frame_t *f)
{
    if (o->closed) {
        return NGX_ERROR;
    }

    if (o->count && o->bytes + f->len > o->limit) {

        if (o->overflow) {
            o->overflow(o);
        }

        return NGX_ERROR;
    }

    return ngx_http_loom_out_queue(o, f);
}


ngx_int_t
ngx_http_loom_out_queue(ngx_http_loom_out_t *o, ngx_http_loom_frame_t *f)
{
    ngx_uint_t               i, size;
    ngx_http_loom_frame_t  **ring;

    if (o->closed) {
        return NGX_ERROR;
    }

    if (o->count == o->size) {
        size = o->size ? 2 * o->size : NGX_HTTP_LOOM_OUT_MIN;

        ring = ngx_alloc(size * sizeof(ngx_http_loom_frame_t *),
                         o->connection->log);
        if (ring == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < o->count; i++) {
            ring[i] = o->ring[(o->head + i) & (o->size - 1)];
        }

        if (o->ring) {
            ngx_free(o->ring);
        }

        o->ring = ring;
        o->size = size;
        o->head = 0;
    }

    o->ring[(o->head + o->count) & (o->size - 1)] = f;
    o->count++;
    o->bytes += f->len;
    f->refs++;

    ngx_http_loom_out_schedule(o);

    return NGX_OK;
}


static void
ngx_http_loom_out_schedule(ngx_http_loom_out_t *o)
{
    ngx_event_t  *wev;

    wev = o->connection->write;

    /*
     * frames queued during one pass of the event loop leave in one write
     * at its end
     */

    if (wev->ready && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


void
ngx_http_loom_out_shift(ngx_http_loom_out_t *o)
{
    ngx_http_loom_frame_t  *f;

    if (o->count == 0) {
        return;
    }

    f = o->ring[o->head];
    o->ring[o->head] = NULL;
    o->head = (o->head + 1) & (o->size - 1);
    o->count--;
    o->bytes -= f->len;
    o->sent = 0;

    ngx_http_loom_frame_release(f);
}


/* drops queued frames; a frame partly written must still be completed */

void
ngx_http_loom_out_drop(ngx_http_loom_out_t *o)
{
    ngx_uint_t              keep, mask, last;
    ngx_http_loom_frame_t  *f;

    if (o->count == 0) {
        return;
    }

    mask = o->size - 1;
    keep = (o->sent > 0) ? 1 : 0;

    while (o->count > keep) {
        last = (o->head + o->count - 1) & mask;
        f = o->ring[last];
        o->ring[last] = NULL;
        o->count--;
        o->bytes -= f->len;

        ngx_http_loom_frame_release(f);
    }
}


void
ngx_http_loom_out_free(ngx_http_loom_out_t *o)
{
    ngx_http_loom_frame_t  *f;

    o->closed = 1;

    while (o->count) {
        f = o->ring[o->head];
        o->ring[o->head] = NULL;
        o->head = (o->head + 1) & (o->size - 1);
        o->count--;

        ngx_http_loom_frame_release(f);
    }

    o->bytes = 0;
    o->sent = 0;

    if (o->ring) {
        ngx_free(o->ring);
        o->ring = NULL;
    }

    o->size = 0;
    o->head = 0;
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


ngx_http_loom_frame_t *
ngx_http_loom_frame_bytes(size_t len, u_char **data)
{
    ngx_http_loom_frame_t  *f;

    f = ngx_alloc(offsetof(ngx_http_loom_frame_t, data) + len,
                  ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    f->refs = 1;
    f->len = len;

    *data = f->data;

    return f;
}


void
ngx_http_loom_frame_release(ngx_http_loom_frame_t *f)
{
    if (--f->refs == 0) {
        ngx_free(f);
    }
}
