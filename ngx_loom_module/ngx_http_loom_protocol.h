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
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_session.h"


/*
 * The Data Loom protocol: one JSON request per WebSocket message, answered
 * in the order the requests came, with the original server's envelopes,
 * codes and messages.
 */


#define NGX_HTTP_LOOM_REQ_REDIS    0    /* waiting for a Redis reply */
#define NGX_HTTP_LOOM_REQ_WAITING  1    /* for a channel subscription */
#define NGX_HTTP_LOOM_REQ_HELD     2    /* ack behind its own delivery */
#define NGX_HTTP_LOOM_REQ_DONE     3
#define NGX_HTTP_LOOM_REQ_DEFERRED 4    /* not handled yet: payload is
                                           the message as received */


typedef struct ngx_http_loom_request_s  ngx_http_loom_request_t;

struct ngx_http_loom_request_s {
    ngx_http_loom_store_call_t   call;          /* must be first */

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


void ngx_http_loom_protocol_message(ngx_http_loom_session_t *s, u_char *data,
    size_t len);
void ngx_http_loom_protocol_session_closed(ngx_http_loom_session_t *s);

/* a topic is done with a request it held */
void ngx_http_loom_protocol_subscribed(ngx_http_loom_request_t *r,
    ngx_int_t rc);
void ngx_http_loom_protocol_release(ngx_http_loom_request_t *r);


#endif /* _NGX_HTTP_LOOM_PROTOCOL_H_INCLUDED_ */
