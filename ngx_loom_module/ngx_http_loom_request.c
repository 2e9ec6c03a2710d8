/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_request.h"


/*
 * Everything that moves the queue on (an answer, a barrier going down, a
 * parked request's turn, a deferred message) goes through one loop: a
 * request finished while a deferred message is being dispatched only
 * tells the loop to go round again.  However many requests fail one after
 * the other (all of them, when the link to Redis drops), the stack does
 * not grow with their number.
 */


static ngx_uint_t ngx_http_loom_requests_flush(ngx_http_loom_requests_t *rq);
static void ngx_http_loom_requests_defer(ngx_http_loom_requests_t *rq,
    u_char *data, size_t len);
static void ngx_http_loom_request_free(ngx_http_loom_request_t *r);


void
ngx_http_loom_requests_init(ngx_http_loom_requests_t *rq,
    ngx_http_loom_out_t *out, ngx_log_t *log, void *data)
{
    ngx_memzero(rq, sizeof(ngx_http_loom_requests_t));

    ngx_queue_init(&rq->queue);
    rq->out = out;
    rq->log = log;
    rq->data = data;
}


void
ngx_http_loom_requests_message(ngx_http_loom_requests_t *rq, u_char *data,
    size_t len)
{
    if (rq->barriers || rq->ndeferred) {
        ngx_http_loom_requests_defer(rq, data, len);
        return;
    }

    rq->dispatch(rq, data, len, NULL);
}


/* a message that came while an earlier request is under way */

static void
ngx_http_loom_requests_defer(ngx_http_loom_requests_t *rq, u_char *data,
    size_t len)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_alloc(rq, sizeof(ngx_http_loom_request_t) + len,
                                    NULL);
    if (r == NULL) {
        rq->nomem(rq);
        return;
    }

    r->state = NGX_HTTP_LOOM_REQ_DEFERRED;

    if (data) {
        r->payload.data = (u_char *) r + sizeof(ngx_http_loom_request_t);
        r->payload.len = len;
        ngx_memcpy(r->payload.data, data, len);
    }

    if (rq->ndeferred++ == 0) {
        rq->next_deferred = &r->queue;
    }

    rq->deferred += len;
}


ngx_http_loom_request_t *
ngx_http_loom_request_alloc(ngx_http_loom_requests_t *rq, size_t size,
    ngx_queue_t *position)
{
    ngx_http_loom_request_t  *r;

    r = ngx_alloc(size, rq->log);
    if (r == NULL) {
        return NULL;
    }

    ngx_memzero(r, sizeof(ngx_http_loom_request_t));

    r->requests = rq;
    r->session = rq->data;
    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    /* before position: what a deferred message leads to takes its place */

    ngx_queue_insert_tail(position ? position : &rq->queue, &r->queue);
    rq->inflight++;

    if (rq->gauge) {
        (*rq->gauge)++;
    }

    return r;
}


static void
ngx_http_loom_request_free(ngx_http_loom_request_t *r)
{
    if (r->cleanup) {
        r->cleanup(r);
    }

    if (r->barrier && r->requests && r->requests->barriers) {
        r->requests->barriers--;
    }

    if (r->response) {
        ngx_http_loom_frame_release(r->response);
    }

    if (r->data) {
        json_decref(r->data);
    }

    ngx_free(r);
}


void
ngx_http_loom_request_finish(ngx_http_loom_request_t *r,
    ngx_http_loom_frame_t *response)
{
    r->response = response;
    r->state = NGX_HTTP_LOOM_REQ_DONE;

    if (r->requests == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    ngx_http_loom_requests_run(r->requests);
}


void
ngx_http_loom_requests_answer(ngx_http_loom_requests_t *rq,
    ngx_queue_t *position, ngx_http_loom_frame_t *f)
{
    ngx_http_loom_request_t  *r;

    if (f == NULL) {
        return;
    }

    if (position == NULL && ngx_queue_empty(&rq->queue)) {
        (void) ngx_http_loom_out_send(rq->out, f);
        ngx_http_loom_frame_release(f);
        return;
    }

    /* earlier requests are still under way: wait in line */

    r = ngx_http_loom_request_alloc(rq, sizeof(ngx_http_loom_request_t),
                                    position);
    if (r == NULL) {
        ngx_http_loom_frame_release(f);
        return;
    }

    ngx_http_loom_request_finish(r, f);
}


void
ngx_http_loom_request_barrier(ngx_http_loom_request_t *r)
{
    if (!r->barrier) {
        r->barrier = 1;
        r->requests->barriers++;
    }
}


void
ngx_http_loom_request_unbarrier(ngx_http_loom_request_t *r)
{
    if (!r->barrier) {
        return;
    }

    r->barrier = 0;

    if (r->requests && r->requests->barriers) {
        r->requests->barriers--;
    }
}


ngx_int_t
ngx_http_loom_request_park(ngx_http_loom_request_t *r,
    ngx_http_loom_request_pt run)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *prev;

    for (q = ngx_queue_head(&r->requests->queue);
         q != &r->queue;
         q = ngx_queue_next(q))
    {
        prev = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        if (prev->state != NGX_HTTP_LOOM_REQ_DONE) {
            r->state = NGX_HTTP_LOOM_REQ_PARKED;
            r->run = run;
            ngx_http_loom_request_barrier(r);
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


void
ngx_http_loom_requests_run(ngx_http_loom_requests_t *rq)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    if (rq->running) {
        /* the loop below is on the stack: it goes round once more */
        rq->again = 1;
        return;
    }

    rq->running = 1;

    do {
        rq->again = 0;

        if (ngx_http_loom_requests_flush(rq)) {
            rq->again = 1;
        }

        if (rq->barriers || rq->ndeferred == 0) {
            continue;
        }

        /* the deferred messages are the end of the queue, oldest first */

        q = rq->next_deferred;
        r = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        rq->next_deferred = ngx_queue_next(q);
        rq->ndeferred--;
        r->state = NGX_HTTP_LOOM_REQ_REDIS;

        rq->dispatch(rq, r->payload.data, r->payload.len, q);

        ngx_queue_remove(q);
        rq->inflight--;
        rq->deferred -= r->payload.len;
        ngx_free(r);

        if (rq->gauge) {
            (*rq->gauge)--;
        }

        rq->again = 1;

    } while (rq->again);

    rq->running = 0;

    if (rq->resume) {
        rq->resume(rq);
    }
}


/*
 * Sends the answers at the head of the queue and starts the parked
 * request that reaches the head; 1 if it started one
 */

static ngx_uint_t
ngx_http_loom_requests_flush(ngx_http_loom_requests_t *rq)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    while (!ngx_queue_empty(&rq->queue)) {
        q = ngx_queue_head(&rq->queue);
        r = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        if (r->state == NGX_HTTP_LOOM_REQ_PARKED) {
            /* everything before it is through: it takes effect now */
            r->state = NGX_HTTP_LOOM_REQ_REDIS;
            r->run(r);
            return 1;
        }

        if (r->state != NGX_HTTP_LOOM_REQ_DONE) {
            break;
        }

        ngx_queue_remove(q);
        rq->inflight--;

        if (rq->gauge) {
            (*rq->gauge)--;
        }

        if (r->response) {
            (void) ngx_http_loom_out_send(rq->out, r->response);
        }

        ngx_http_loom_request_free(r);
    }

    return 0;
}


void
ngx_http_loom_requests_close(ngx_http_loom_requests_t *rq)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    while (!ngx_queue_empty(&rq->queue)) {
        q = ngx_queue_head(&rq->queue);
        r = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        ngx_queue_remove(q);

        r->requests = NULL;
        r->session = NULL;

        switch (r->state) {

        case NGX_HTTP_LOOM_REQ_REDIS:
            /* the reply handler frees it */
            continue;

        case NGX_HTTP_LOOM_REQ_WAITING:
        case NGX_HTTP_LOOM_REQ_HELD:
            ngx_http_loom_topic_cancel(&r->waiter);
            break;

        default:
            break;
        }

        ngx_http_loom_request_free(r);
    }

    if (rq->gauge) {
        *rq->gauge -= rq->inflight;
    }

    rq->inflight = 0;
    rq->barriers = 0;
    rq->ndeferred = 0;
    rq->deferred = 0;
    rq->next_deferred = NULL;
}


void
ngx_http_loom_request_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->requests == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    r->reply(r, reply);
}
