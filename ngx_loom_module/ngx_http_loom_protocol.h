/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_PROTOCOL_H_INCLUDED_
#define _NGX_HTTP_LOOM_PROTOCOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_session.h"


/*
 * The Data Loom protocol: one JSON request per WebSocket message, answered
 * in the order the requests came, with the original server's envelopes,
 * codes and messages.  ngx_http_loom_protocol.c decodes and checks
 * requests and keeps them in order; ngx_http_loom_actions.c carries out
 * each action.
 */


#define NGX_HTTP_LOOM_SUBSCRIBE        0
#define NGX_HTTP_LOOM_UNSUBSCRIBE      1
#define NGX_HTTP_LOOM_UNSUBSCRIBE_ALL  2
#define NGX_HTTP_LOOM_PUBLISH          3
#define NGX_HTTP_LOOM_SEND             4
#define NGX_HTTP_LOOM_GET              5
#define NGX_HTTP_LOOM_REGISTER         6
#define NGX_HTTP_LOOM_UNREGISTER       7
#define NGX_HTTP_LOOM_LIST             8
#define NGX_HTTP_LOOM_UPDATE           9

/* ngx_http_loom_request_send() of a plain command, not a script */
#define NGX_HTTP_LOOM_COMMAND          NGX_HTTP_LOOM_SCRIPTS


#define NGX_HTTP_LOOM_REQ_REDIS    0    /* waiting for a Redis reply */
#define NGX_HTTP_LOOM_REQ_WAITING  1    /* for a channel subscription */
#define NGX_HTTP_LOOM_REQ_HELD     2    /* ack behind its own delivery */
#define NGX_HTTP_LOOM_REQ_DONE     3
#define NGX_HTTP_LOOM_REQ_DEFERRED 4    /* not handled yet: payload is
                                           the message as received */
#define NGX_HTTP_LOOM_REQ_PARKED   5    /* an unsubscribe waiting for the
                                           requests before it */


typedef struct ngx_http_loom_request_s  ngx_http_loom_request_t;
typedef struct ngx_http_loom_ctx_s      ngx_http_loom_ctx_t;

typedef void (*ngx_http_loom_action_pt)(ngx_http_loom_ctx_t *ctx);
typedef void (*ngx_http_loom_reply_pt)(ngx_http_loom_request_t *r,
    redisReply *reply);


typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       quoted;
    ngx_uint_t                      checks[2];     /* in this order */
    ngx_http_loom_action_pt         handler;
} ngx_http_loom_action_t;


/* a request being decoded and checked */

struct ngx_http_loom_ctx_s {
    ngx_http_loom_session_t        *session;
    ngx_http_loom_worker_t         *worker;
    ngx_http_loom_json_envelope_t   env;
    ngx_http_loom_action_t         *action;
    ngx_str_t                       action_quoted;
    ngx_uint_t                      index;
    ngx_str_t                       id;            /* quoted */
    ngx_queue_t                    *position;      /* where answers go */
};


struct ngx_http_loom_request_s {
    ngx_http_loom_store_call_t   call;          /* must be first */
    ngx_http_loom_reply_pt       reply;

    ngx_queue_t                  queue;         /* in session->requests */
    ngx_queue_t                  link;          /* in a topic queue */

    ngx_http_loom_session_t     *session;       /* NULL: the client left */
    ngx_http_loom_topic_t       *topic;         /* the topic queue it is in */
    ngx_http_loom_frame_t       *response;      /* NULL: nothing to send */

    ngx_uint_t                   action;
    ngx_uint_t                   state;
    ngx_uint_t                   attempts;
    uint64_t                     seq;

    json_t                      *data;          /* publish: for rechecks */

    ngx_str_t                    id;            /* as sent, quoted */
    ngx_str_t                    name;          /* the topic, decoded */
    ngx_str_t                    key;           /* P{t:<name>}, then :msg */
    ngx_str_t                    payload;       /* schema or delivery */
    size_t                       data_offset;   /* of data in payload */
    size_t                       data_len;

    unsigned                     require_ack:1;
    unsigned                     barrier:1;     /* later requests wait */
};


/* the session's side */
void ngx_http_loom_protocol_message(ngx_http_loom_session_t *s, u_char *data,
    size_t len);
void ngx_http_loom_protocol_session_closed(ngx_http_loom_session_t *s);

/* a topic is done with a request it held */
void ngx_http_loom_protocol_subscribed(ngx_http_loom_request_t *r,
    ngx_int_t rc);
void ngx_http_loom_protocol_release(ngx_http_loom_request_t *r);

/* ngx_http_loom_actions.c */
void ngx_http_loom_subscribe(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_unsubscribe(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_unsubscribe_run(ngx_http_loom_request_t *r);
void ngx_http_loom_publish(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_get(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_register(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_unregister(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_list(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_update(ngx_http_loom_ctx_t *ctx);

/* requests, for the actions */
ngx_http_loom_request_t *ngx_http_loom_request_create(
    ngx_http_loom_ctx_t *ctx, ngx_uint_t extra);
ngx_int_t ngx_http_loom_request_send(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, int nkeys, int argc,
    const char **argv, const size_t *argvlen);
void ngx_http_loom_request_barrier(ngx_http_loom_request_t *r);
void ngx_http_loom_request_unbarrier(ngx_http_loom_request_t *r);
void ngx_http_loom_request_finish(ngx_http_loom_request_t *r,
    ngx_http_loom_frame_t *response);
void ngx_http_loom_request_error(ngx_http_loom_request_t *r, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n);
void ngx_http_loom_request_fail(ngx_http_loom_request_t *r,
    redisReply *reply);
void ngx_http_loom_protocol_run_deferred(ngx_http_loom_session_t *s);

/* answers */
void ngx_http_loom_answer_error(ngx_http_loom_ctx_t *ctx, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n);
ngx_http_loom_frame_t *ngx_http_loom_ack(ngx_http_loom_request_t *r,
    ngx_str_t *data);
ngx_http_loom_frame_t *ngx_http_loom_response(ngx_http_loom_request_t *r,
    ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n, ngx_str_t *data);


#endif /* _NGX_HTTP_LOOM_PROTOCOL_H_INCLUDED_ */
