/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_ws.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_sse.h"


/*
 * Fan-out of a topic's revisions (docs/architecture.md, "Revisions and
 * history"): what the topic's gap sequence hands on is framed at most
 * three times per worker, as the v1 delivery, for a stored revision as the
 * v2 one with "rev" and "ts", and as an event of an event stream
 * (docs/http.md), and each local subscriber gets the frame of its kind.
 * A subscription that starts with a snapshot or a resume is buffering:
 * its frames are kept, with their revisions, until the snapshot's
 * position is known and its answer is out.
 */


typedef struct {
    ngx_queue_t                 link;
    ngx_http_loom_frame_t      *frame;
    uint64_t                    rev;              /* 0: not stored */
} ngx_http_loom_buffered_t;


static ngx_http_loom_frame_t *ngx_http_loom_fanout_sse(
    ngx_http_loom_gap_item_t *item, ngx_str_t *epoch, ngx_log_t *log);
static ngx_http_loom_frame_t *ngx_http_loom_fanout_resync_frame(
    ngx_str_t *text, ngx_uint_t kind, uint64_t rev, ngx_str_t *epoch);
static ngx_int_t ngx_http_loom_fanout_send(ngx_http_loom_sub_t *sub,
    ngx_http_loom_frame_t *f, uint64_t rev);
static void ngx_http_loom_fanout_observe(ngx_http_loom_topic_t *t,
    uint64_t ts);


ngx_http_loom_frame_t *
ngx_http_loom_fanout_frame(ngx_http_loom_gap_item_t *item, ngx_uint_t kind,
    ngx_str_t *epoch, ngx_log_t *log)
{
    u_char                 *p;
    ngx_http_loom_frame_t  *f;

    if (kind == NGX_HTTP_LOOM_FRAME_SSE) {
        return ngx_http_loom_fanout_sse(item, epoch, log);
    }

    if (kind == NGX_HTTP_LOOM_FRAME_V1 || item->rev == 0) {
        f = ngx_http_loom_frame_alloc(NGX_HTTP_LOOM_WS_TEXT,
                                      item->delivery.len, &p);
        if (f) {
            ngx_memcpy(p, item->delivery.data, item->delivery.len);
        }

        return f;
    }

    f = ngx_http_loom_frame_alloc(NGX_HTTP_LOOM_WS_TEXT,
                                  ngx_http_loom_rev_delivery_len(
                                      &item->delivery, item->rev, item->ts),
                                  &p);
    if (f == NULL) {
        return NULL;
    }

    (void) ngx_http_loom_rev_delivery(p, &item->delivery, item->rev,
                                      item->ts);

    return f;
}


/* the event of an event stream: the v2 delivery, with the position as id */

static ngx_http_loom_frame_t *
ngx_http_loom_fanout_sse(ngx_http_loom_gap_item_t *item, ngx_str_t *epoch,
    ngx_log_t *log)
{
    u_char                     *p, *text;
    ngx_http_loom_frame_t      *f;
    ngx_http_loom_sse_event_t   ev;

    ngx_memzero(&ev, sizeof(ngx_http_loom_sse_event_t));
    text = NULL;

    if (item->rev == 0) {
        ev.data = item->delivery;

    } else {
        ev.rev = item->rev;
        ev.epoch = *epoch;
        ev.data.len = ngx_http_loom_rev_delivery_len(&item->delivery,
                                                     item->rev, item->ts);
        text = ngx_alloc(ev.data.len, log);
        if (text == NULL) {
            return NULL;
        }

        ev.data.data = text;
        (void) ngx_http_loom_rev_delivery(text, &item->delivery, item->rev,
                                          item->ts);
    }

    f = ngx_http_loom_frame_bytes(ngx_http_loom_sse_event_len(&ev), &p);
    if (f) {
        (void) ngx_http_loom_sse_event(p, &ev);
    }

    if (text) {
        ngx_free(text);
    }

    return f;
}


ngx_uint_t
ngx_http_loom_fanout_deliver(ngx_http_loom_topic_t *t,
    ngx_http_loom_gap_item_t *item)
{
    ngx_str_t               epoch;
    ngx_uint_t              n, k;
    ngx_queue_t            *q, *next;
    ngx_http_loom_sub_t    *sub;
    ngx_http_loom_frame_t  *f[NGX_HTTP_LOOM_FRAME_KINDS];

    ngx_memzero(f, sizeof(f));
    n = 0;

    epoch.data = t->gap.epoch;
    epoch.len = t->gap.epoch_len;

    /* a subscriber over its limit may be closed, not freed */

    for (q = ngx_queue_head(&t->subscribers);
         q != ngx_queue_sentinel(&t->subscribers);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, topic_link);

        if (item->rev && item->rev <= sub->after) {
            /* its snapshot or replay had it */
            continue;
        }

        k = ngx_http_loom_fanout_kind(sub->subscriber, item);

        if (f[k] == NULL) {
            f[k] = ngx_http_loom_fanout_frame(item, k, &epoch,
                                              t->worker->log);
            if (f[k] == NULL) {
                continue;
            }
        }

        if (ngx_http_loom_fanout_send(sub, f[k], item->rev) == NGX_OK) {
            n++;
        }
    }

    if (n && item->ts) {
        ngx_http_loom_fanout_observe(t, item->ts);
    }

    for (k = 0; k < NGX_HTTP_LOOM_FRAME_KINDS; k++) {
        if (f[k]) {
            ngx_http_loom_frame_release(f[k]);
        }
    }

    return n;
}


/*
 * publish -> delivery, for loom_publish_delivery_seconds: once per
 * revision and worker that delivers it, from the publish's "ts" (Redis's
 * clock, in ms) to this worker's clock now.  "ts" is the millisecond the
 * publish was stored in, so this reads up to 1 ms more than it took.
 */

static void
ngx_http_loom_fanout_observe(ngx_http_loom_topic_t *t, uint64_t ts)
{
    int64_t          usec;
    struct timeval   tv;

    if (t->worker->stats == NULL) {
        return;
    }

    ngx_gettimeofday(&tv);

    usec = (int64_t) tv.tv_sec * 1000000 + tv.tv_usec
           - (int64_t) (ts * 1000);

    /* a clock behind Redis's counts as no time (observe()) */

    ngx_http_loom_shm_observe(&t->worker->stats->publish_delivery,
                              (ngx_msec_int_t) usec);
}


void
ngx_http_loom_fanout_resync(ngx_http_loom_topic_t *t,
    ngx_http_loom_sub_t *only, ngx_str_t *reason, ngx_str_t *value,
    uint64_t rev, uint64_t ts, ngx_str_t *epoch)
{
    u_char                 *p;
    size_t                  len;
    ngx_str_t               topic, text;
    ngx_uint_t              k;
    ngx_queue_t            *q, *next;
    ngx_http_loom_sub_t    *sub;
    ngx_http_loom_frame_t  *f[NGX_HTTP_LOOM_FRAME_KINDS];

    ngx_memzero(f, sizeof(f));
    text.data = NULL;

    for (q = ngx_queue_head(&t->subscribers);
         q != ngx_queue_sentinel(&t->subscribers);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, topic_link);

        /* v1 connections get no event: their frames do not change */

        if ((!sub->subscriber->v2 && !sub->subscriber->sse)
            || (only && sub != only))
        {
            continue;
        }

        /* the subscriber's position is the event's now */

        sub->after = rev;

        if (text.data == NULL) {

            /* the topic as a JSON string, then the event around it */

            len = 2 + ngx_http_loom_json_escape_len(t->sn.str.data,
                                                    t->sn.str.len);
            topic.data = ngx_alloc(len, t->worker->log);
            if (topic.data == NULL) {
                return;
            }

            p = topic.data;
            *p++ = '"';
            p = ngx_http_loom_json_escape(p, t->sn.str.data, t->sn.str.len);
            *p++ = '"';
            topic.len = p - topic.data;

            text.len = ngx_http_loom_rev_resync_len(&topic, reason, value,
                                                    rev, epoch, ts);
            text.data = ngx_alloc(text.len, t->worker->log);

            if (text.data) {
                (void) ngx_http_loom_rev_resync(text.data, &topic, reason,
                                                value, rev, epoch, ts);
            }

            ngx_free(topic.data);

            if (text.data == NULL) {
                return;
            }
        }

        k = sub->subscriber->sse ? NGX_HTTP_LOOM_FRAME_SSE
                                 : NGX_HTTP_LOOM_FRAME_V2;

        if (f[k] == NULL) {
            f[k] = ngx_http_loom_fanout_resync_frame(&text, k, rev, epoch);
            if (f[k] == NULL) {
                continue;
            }
        }

        /*
         * A buffering subscription keeps it with the revision it is at;
         * to only one, it goes out at once, ahead of that subscription's
         * buffer, which its caller applies at rev right after
         */

        if (only) {
            (void) ngx_http_loom_out_send(sub->subscriber->out, f[k]);

        } else {
            (void) ngx_http_loom_fanout_send(sub, f[k], rev ? rev : 1);
        }
    }

    for (k = 0; k < NGX_HTTP_LOOM_FRAME_KINDS; k++) {
        if (f[k]) {
            ngx_http_loom_frame_release(f[k]);
        }
    }

    if (text.data) {
        ngx_free(text.data);
    }
}


/* the resync event as a v2 frame, or as an event named "resync" */

static ngx_http_loom_frame_t *
ngx_http_loom_fanout_resync_frame(ngx_str_t *text, ngx_uint_t kind,
    uint64_t rev, ngx_str_t *epoch)
{
    u_char                     *p;
    ngx_http_loom_frame_t      *f;
    ngx_http_loom_sse_event_t   ev;

    if (kind != NGX_HTTP_LOOM_FRAME_SSE) {
        f = ngx_http_loom_frame_alloc(NGX_HTTP_LOOM_WS_TEXT, text->len, &p);
        if (f) {
            ngx_memcpy(p, text->data, text->len);
        }

        return f;
    }

    ngx_str_set(&ev.name, "resync");
    ev.rev = rev;
    ev.epoch = *epoch;
    ev.data = *text;

    f = ngx_http_loom_frame_bytes(ngx_http_loom_sse_event_len(&ev), &p);
    if (f) {
        (void) ngx_http_loom_sse_event(p, &ev);
    }

    return f;
}


void
ngx_http_loom_fanout_buffer(ngx_http_loom_sub_t *sub)
{
    if (!sub->buffering) {
        ngx_queue_init(&sub->buffer);
        sub->buffered = 0;
        sub->buffering = 1;
    }
}


/*
 * The subscription goes live at rev: what was kept for it above rev is
 * sent, in order; a frame not stored (rev 0) goes in its place
 */

ngx_int_t
ngx_http_loom_fanout_apply(ngx_http_loom_sub_t *sub, uint64_t rev)
{
    ngx_int_t                  rc;
    ngx_queue_t               *q;
    ngx_http_loom_buffered_t  *b;

    if (!sub->buffering) {
        return NGX_OK;
    }

    sub->buffering = 0;
    rc = NGX_OK;

    while (!ngx_queue_empty(&sub->buffer)) {
        q = ngx_queue_head(&sub->buffer);
        ngx_queue_remove(q);
        b = ngx_queue_data(q, ngx_http_loom_buffered_t, link);

        if (rc == NGX_OK && (b->rev == 0 || b->rev > rev)) {
            rc = ngx_http_loom_out_send(sub->subscriber->out, b->frame);
        }

        ngx_http_loom_frame_release(b->frame);
        ngx_free(b);
    }

    sub->buffered = 0;

    return rc;
}


void
ngx_http_loom_fanout_unbuffer(ngx_http_loom_sub_t *sub)
{
    ngx_queue_t               *q;
    ngx_http_loom_buffered_t  *b;

    if (!sub->buffering) {
        return;
    }

    while (!ngx_queue_empty(&sub->buffer)) {
        q = ngx_queue_head(&sub->buffer);
        ngx_queue_remove(q);
        b = ngx_queue_data(q, ngx_http_loom_buffered_t, link);
        ngx_http_loom_frame_release(b->frame);
        ngx_free(b);
    }

    sub->buffered = 0;
    sub->buffering = 0;
}


/* one entry of a replay, to one subscriber, past its buffer */

ngx_int_t
ngx_http_loom_fanout_replay(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_gap_item_t *item, ngx_str_t *epoch)
{
    ngx_int_t               rc;
    ngx_http_loom_frame_t  *f;

    f = ngx_http_loom_fanout_frame(item, ngx_http_loom_fanout_kind(sr, item),
                                   epoch, sr->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_loom_out_send(sr->out, f);
    ngx_http_loom_frame_release(f);

    return rc;
}


static ngx_int_t
ngx_http_loom_fanout_send(ngx_http_loom_sub_t *sub, ngx_http_loom_frame_t *f,
    uint64_t rev)
{
    ngx_http_loom_out_t       *out;
    ngx_http_loom_buffered_t  *b;

    if (!sub->buffering) {
        return ngx_http_loom_out_send(sub->subscriber->out, f);
    }

    out = sub->subscriber->out;

    /* what is kept counts against the connection's output limit */

    if (out->closed || out->bytes + sub->buffered + f->len > out->limit) {
        ngx_http_loom_fanout_unbuffer(sub);

        if (!out->closed && out->overflow) {
            out->overflow(out);
        }

        return NGX_ERROR;
    }

    b = ngx_alloc(sizeof(ngx_http_loom_buffered_t), sub->subscriber->log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    f->refs++;
    b->frame = f;
    b->rev = rev;
    ngx_queue_insert_tail(&sub->buffer, &b->link);
    sub->buffered += f->len;

    return NGX_OK;
}
