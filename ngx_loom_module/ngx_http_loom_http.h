/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_HTTP_H_INCLUDED_
#define _NGX_HTTP_LOOM_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_json.h"


/*
 * HTTP access beside the WebSocket (docs/http.md): the location of
 * loom_http.  Each request is one protocol request, made from the method,
 * the path and the body, on a session of its own that has no WebSocket:
 * the actions run as they do for a WebSocket client, with the same checks
 * and the same messages, and their answer, which the session's requests
 * queue to an output ring of the request's own, is turned into the HTTP
 * response.  An event stream (ngx_http_loom_http_sse.c) is a subscriber
 * of the topic layer whose frames are events, written through nginx's
 * output filters.
 */


#define NGX_HTTP_LOOM_HTTP_LIST     0    /* GET .../topics */
#define NGX_HTTP_LOOM_HTTP_TOPIC    1    /* GET, POST .../topics/NAME */
#define NGX_HTTP_LOOM_HTTP_EVENTS   2    /* GET .../topics/NAME/events */


/* a string literal at p; the end */
#define ngx_http_loom_cpylit(p, lit)  ngx_cpymem(p, lit, sizeof(lit) - 1)


typedef struct ngx_http_loom_http_s  ngx_http_loom_http_t;

/* the answer to the request, as JSON text */
typedef void (*ngx_http_loom_http_answer_pt)(ngx_http_loom_http_t *h,
    ngx_str_t *answer);


struct ngx_http_loom_http_s {
    ngx_http_request_t            *request;
    ngx_str_t                      name;           /* the topic, decoded */
    ngx_http_loom_http_answer_pt   answer;

    /* the actions' view of the request */
    ngx_http_loom_session_t        session;

    /*
     * where the session's answers go: a ring whose connection stands for
     * nothing but its write event, posted when an answer is queued
     */
    ngx_http_loom_out_t            answers;
    ngx_connection_t               answers_connection;
    ngx_event_t                    answered;

    /*
     * armed while the answer is awaited: not cancelable, so a worker
     * that shuts down stays until the request is answered
     */
    ngx_event_t                    hold;

    /* an event stream's */
    ngx_http_loom_out_t            out;
    ngx_chain_t                   *busy;           /* in the filters */
    ngx_chain_t                  **last_busy;
    ngx_chain_t                   *free;
    ngx_uint_t                     pushed;         /* frames of out in busy */
    ngx_event_t                    heartbeat;
    ngx_event_t                    close;
    uint64_t                       since;          /* Last-Event-ID */
    ngx_str_t                      epoch;

    unsigned                       streaming:1;    /* 200 sent */
    unsigned                       resume:1;       /* a Last-Event-ID */
    unsigned                       closing:1;
};


/* ngx_http_loom_http_session.c */
ngx_http_loom_http_t *ngx_http_loom_http_create(ngx_http_request_t *r,
    void *access);
/* a message for the actions, as if a WebSocket client had sent it */
ngx_int_t ngx_http_loom_http_run(ngx_http_loom_http_t *h, u_char *message,
    size_t len);
/* an argument, percent-decoded; NGX_DECLINED: not there */
ngx_int_t ngx_http_loom_http_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
/* a string as a JSON string, quotes included */
ngx_int_t ngx_http_loom_http_quote(ngx_http_request_t *r, ngx_str_t *value,
    ngx_str_t *quoted);


/* ngx_http_loom_http_answer.c */

/* an answer: its members, "data" null there, and "data" as its bytes came */
typedef struct {
    json_t                        *json;
    ngx_str_t                      data;           /* NULL data: none */
    ngx_int_t                      code;
} ngx_http_loom_http_answer_t;

ngx_int_t ngx_http_loom_http_parse(ngx_http_request_t *r, ngx_str_t *text,
    ngx_http_loom_http_answer_t *a);

/* the response to the answer of get, publish or listTopics */
void ngx_http_loom_http_reply(ngx_http_loom_http_t *h, ngx_str_t *answer);

/* an error answer's members, with the status its code and message give */
ngx_int_t ngx_http_loom_http_error_answer(ngx_http_request_t *r,
    ngx_http_loom_http_answer_t *a);
/* {"code":status,"message":text} */
ngx_int_t ngx_http_loom_http_error(ngx_http_request_t *r,
    ngx_uint_t status, char *text);

/*
 * The answer's members but id, action, type (and code, which is the
 * status's if given), with data (its bytes as they came) first
 */
ngx_int_t ngx_http_loom_http_members(ngx_http_request_t *r, json_t *answer,
    ngx_int_t code, ngx_str_t *data, ngx_str_t *body);


/* ngx_http_loom_http_sse.c */
ngx_int_t ngx_http_loom_http_events(ngx_http_loom_http_t *h);


#endif /* _NGX_HTTP_LOOM_HTTP_H_INCLUDED_ */
