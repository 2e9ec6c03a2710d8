/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_REQUEST_H_INCLUDED_
#define _NGX_HTTP_LOOM_REQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_output.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_topic.h"


/*
 * A connection's requests, in the order they came.  Each one gets its
 * answer in that order: an answer ready early waits behind the requests
 * before it.  A request that needs more than one step raises a barrier:
 * the messages that come meanwhile are kept as received ("deferred") and
 * handed to the dispatch handler once every barrier is down.  A parked
 * request runs when everything before it is answered.
 *
 * The queue calls no layer above it: dispatching a deferred message, a
 * parked request's turn, resuming the reading and closing the connection
 * go through handler pointers.  Its answers go to the connection's out.
 */


#define NGX_HTTP_LOOM_REQ_REDIS    0    /* waiting for a Redis reply */
#define NGX_HTTP_LOOM_REQ_WAITING  1    /* in a topic, for a channel */
#define NGX_HTTP_LOOM_REQ_HELD     2    /* in a topic: ack behind its own
                                           delivery */
#define NGX_HTTP_LOOM_REQ_DONE     3
#define NGX_HTTP_LOOM_REQ_DEFERRED 4    /* not handled yet: payload is
                                           the message as received */
#define NGX_HTTP_LOOM_REQ_PARKED   5    /* runs when the requests before
                                           it are answered */


typedef struct ngx_http_loom_request_s   ngx_http_loom_request_t;
typedef struct ngx_http_loom_requests_s  ngx_http_loom_requests_t;

typedef void (*ngx_http_loom_request_pt)(ngx_http_loom_request_t *r);
typedef void (*ngx_http_loom_reply_pt)(ngx_http_loom_request_t *r,
    redisReply *reply);
typedef void (*ngx_http_loom_requests_pt)(ngx_http_loom_requests_t *rq);
typedef void (*ngx_http_loom_dispatch_pt)(ngx_http_loom_requests_t *rq,
    u_char *data, size_t len, ngx_queue_t *position);


struct ngx_http_loom_requests_s {
    ngx_queue_t                  queue;         /* of requests */
    ngx_uint_t                   inflight;      /* in the queue */
    ngx_uint_t                   barriers;      /* requests others wait for */
    ngx_uint_t                   ndeferred;     /* messages kept */
    size_t                       deferred;      /* and their bytes */
    ngx_queue_t                 *next_deferred; /* the oldest of them */

    ngx_http_loom_out_t         *out;           /* where answers go */
    ngx_log_t                   *log;
    ngx_atomic_t                *gauge;         /* requests of the worker,
                                                   or NULL */

    ngx_http_loom_dispatch_pt    dispatch;      /* a deferred message */
    ngx_http_loom_requests_pt    resume;        /* room for more */
    ngx_http_loom_requests_pt    nomem;         /* a message was lost */
    void                        *data;          /* the owner */

    unsigned                     running:1;     /* in the loop */
    unsigned                     again:1;       /* the loop goes round */
};


struct ngx_http_loom_request_s {
    ngx_http_loom_store_call_t   call;          /* must be first */
    ngx_http_loom_reply_pt       reply;
    uint64_t                     start;         /* publish: microseconds */

    ngx_queue_t                  queue;         /* in requests->queue */
    ngx_http_loom_requests_t    *requests;      /* NULL: the client left */
    ngx_http_loom_session_t     *session;       /* NULL: the client left */
    ngx_http_loom_waiter_t       waiter;        /* WAITING, HELD */
    ngx_http_loom_request_pt     run;           /* PARKED: its turn */
    ngx_http_loom_request_pt     cleanup;       /* before it is freed */
    ngx_http_loom_frame_t       *response;      /* NULL: nothing to send */

    ngx_uint_t                   action;
    ngx_str_t                   *action_name;   /* quoted, for answers */
    ngx_uint_t                   state;
    ngx_uint_t                   attempts;

    json_t                      *data;          /* publish: for rechecks */

    ngx_str_t                    id;            /* as sent, quoted */
    ngx_str_t                    name;          /* the topic, decoded */
    ngx_str_t                    key;           /* P{t:<name>}, then :msg */
    ngx_str_t                    payload;       /* schema or delivery */
    size_t                       data_offset;   /* of data in payload */
    size_t                       data_len;
    ngx_str_t                    registration;  /* publish: of its tag */

    unsigned                     require_ack:1;
    unsigned                     barrier:1;     /* later requests wait */
};


void ngx_http_loom_requests_init(ngx_http_loom_requests_t *rq,
    ngx_http_loom_out_t *out, ngx_log_t *log, void *data);

/* a message from the client: dispatched now, or kept behind a barrier */
void ngx_http_loom_requests_message(ngx_http_loom_requests_t *rq,
    u_char *data, size_t len);

/* the connection is gone: requests waiting for Redis are freed later */
void ngx_http_loom_requests_close(ngx_http_loom_requests_t *rq);

/*
 * A request of size bytes (at least sizeof(ngx_http_loom_request_t)),
 * at position (before that queue entry), or at the end of the queue.
 */
ngx_http_loom_request_t *ngx_http_loom_request_alloc(
    ngx_http_loom_requests_t *rq, size_t size, ngx_queue_t *position);

/* an answer, in its turn; response may be NULL */
void ngx_http_loom_request_finish(ngx_http_loom_request_t *r,
    ngx_http_loom_frame_t *response);
/* an answer of a request that had no entry yet */
void ngx_http_loom_requests_answer(ngx_http_loom_requests_t *rq,
    ngx_queue_t *position, ngx_http_loom_frame_t *f);

/* a barrier going down does not move the queue: an answer does, or this */
void ngx_http_loom_request_barrier(ngx_http_loom_request_t *r);
void ngx_http_loom_request_unbarrier(ngx_http_loom_request_t *r);
void ngx_http_loom_requests_run(ngx_http_loom_requests_t *rq);

/*
 * NGX_OK: r is parked with a barrier up, r->run is called once every
 * request before it is answered; NGX_DECLINED: nothing is before it
 * but answered requests, r may run now.
 */
ngx_int_t ngx_http_loom_request_park(ngx_http_loom_request_t *r,
    ngx_http_loom_request_pt run);

/* the store's handler: replies to requests of a gone client are dropped */
void ngx_http_loom_request_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);


#endif /* _NGX_HTTP_LOOM_REQUEST_H_INCLUDED_ */
