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
#include "ngx_http_loom_request.h"


/*
 * The Data Loom protocol: one JSON request per WebSocket message, answered
 * in the order the requests came, with the original server's envelopes,
 * codes and messages.  ngx_http_loom_protocol.c decodes and checks
 * requests and builds the answers; ngx_http_loom_pubsub.c and
 * ngx_http_loom_admin.c carry out the actions; ngx_http_loom_request.c
 * keeps the requests of a connection in order.
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
#define NGX_HTTP_LOOM_HISTORY          10
#define NGX_HTTP_LOOM_GET_SCHEMA       11

/* ngx_http_loom_request_send() of a plain command, not a script */
#define NGX_HTTP_LOOM_COMMAND          NGX_HTTP_LOOM_SCRIPTS


typedef struct ngx_http_loom_ctx_s      ngx_http_loom_ctx_t;

typedef void (*ngx_http_loom_action_pt)(ngx_http_loom_ctx_t *ctx);


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


/* the session's side */
void ngx_http_loom_protocol_init(ngx_http_loom_session_t *s);
void ngx_http_loom_protocol_message(ngx_http_loom_session_t *s, u_char *data,
    size_t len);
void ngx_http_loom_protocol_session_closed(ngx_http_loom_session_t *s);

/* ngx_http_loom_pubsub.c */
void ngx_http_loom_subscribe(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_unsubscribe(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_publish(ngx_http_loom_ctx_t *ctx);

/* ngx_http_loom_get.c */
void ngx_http_loom_get(ngx_http_loom_ctx_t *ctx);
/* a publish of r's topic before r is still under way */
ngx_uint_t ngx_http_loom_behind_publish(ngx_http_loom_request_t *r);

/* ngx_http_loom_history.c */
void ngx_http_loom_history(ngx_http_loom_ctx_t *ctx);

/* ngx_http_loom_admin.c */
void ngx_http_loom_register(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_unregister(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_list(ngx_http_loom_ctx_t *ctx);
void ngx_http_loom_update(ngx_http_loom_ctx_t *ctx);

/* ngx_http_loom_access.c */
ngx_int_t ngx_http_loom_access_request(ngx_http_loom_ctx_t *ctx);
ngx_int_t ngx_http_loom_access_visible(ngx_http_loom_session_t *s,
    ngx_str_t *topic);
void ngx_http_loom_refresh(ngx_http_loom_ctx_t *ctx);

/* ngx_http_loom_answer.c: requests and answers, for the actions */
ngx_http_loom_request_t *ngx_http_loom_request_create(
    ngx_http_loom_ctx_t *ctx, ngx_uint_t extra);
/*
 * NGX_OK: sent; otherwise r is answered 500 at once and may be gone:
 * the caller must not use it
 */
ngx_int_t ngx_http_loom_request_send(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, int nkeys, int argc,
    const char **argv, const size_t *argvlen);
/* a command on the topic's hash: HGET, HEXISTS, HMGET */
ngx_int_t ngx_http_loom_hash_command(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, char *command, char *field,
    char *field2);
void ngx_http_loom_request_error(ngx_http_loom_request_t *r, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n);
void ngx_http_loom_request_fail(ngx_http_loom_request_t *r,
    redisReply *reply);

/* answers */
void ngx_http_loom_answer_error(ngx_http_loom_ctx_t *ctx, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n);
ngx_http_loom_frame_t *ngx_http_loom_ack(ngx_http_loom_request_t *r,
    ngx_str_t *data);
ngx_http_loom_frame_t *ngx_http_loom_response(ngx_http_loom_request_t *r,
    ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n, ngx_str_t *data);
/* members of revisions after data (or where data would be) */
ngx_http_loom_frame_t *ngx_http_loom_response_extra(
    ngx_http_loom_request_t *r, ngx_uint_t code, ngx_str_t *data,
    ngx_str_t *extra);
/* an error with members after its message (schemas: "errors") */
ngx_http_loom_frame_t *ngx_http_loom_response_error_extra(
    ngx_http_loom_request_t *r, ngx_uint_t code, ngx_str_t *msg,
    ngx_uint_t n, ngx_str_t *extra);
/* 200 with data, and the cursor of the next page unless it is empty */
ngx_http_loom_frame_t *ngx_http_loom_response_more(
    ngx_http_loom_request_t *r, ngx_str_t *data, ngx_str_t *cursor);


#endif /* _NGX_HTTP_LOOM_PROTOCOL_H_INCLUDED_ */
