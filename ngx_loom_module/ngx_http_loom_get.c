/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_gap.h"


/*
 * get: the latest stored value; on a dataloom.v2 connection with its
 * position (rev, epoch, ts: docs/protocol.md section 15.3) from
 * snapshot.lua.
 */


static void ngx_http_loom_get_run(ngx_http_loom_request_t *r);
static void ngx_http_loom_get_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_get_rev(ngx_http_loom_request_t *r);
static void ngx_http_loom_get_rev_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_loom_get_number(redisReply *r, uint64_t *v);
static void ngx_http_loom_get_failed(ngx_http_loom_request_t *r,
    redisReply *reply);

static ngx_str_t  ngx_http_loom_null = ngx_string("null");


void
ngx_http_loom_get(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    /*
     * A publish of this topic sent just before may still be retried (its
     * cached schema tag may be stale): the get waits until the requests
     * before it are through, so that it sees that publish's value.
     */

    if (ngx_http_loom_behind_publish(r)
        && ngx_http_loom_request_park(r, ngx_http_loom_get_run) == NGX_OK)
    {
        return;
    }

    ngx_http_loom_get_run(r);
}


/* a publish of the same topic before r is still under way */

ngx_uint_t
ngx_http_loom_behind_publish(ngx_http_loom_request_t *r)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *prev;

    for (q = ngx_queue_head(&r->requests->queue);
         q != &r->queue;
         q = ngx_queue_next(q))
    {
        prev = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        if (prev->state == NGX_HTTP_LOOM_REQ_REDIS
            && prev->action == NGX_HTTP_LOOM_PUBLISH
            && prev->name.len == r->name.len
            && ngx_memcmp(prev->name.data, r->name.data, r->name.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_loom_get_run(ngx_http_loom_request_t *r)
{
    ngx_http_loom_request_unbarrier(r);

    if (r->session->subscriber.v2) {
        /* with the value's position */
        ngx_http_loom_get_rev(r);
        return;
    }

    (void) ngx_http_loom_hash_command(r, ngx_http_loom_get_reply,
                                      "HMGET", "sv", "value");
}


static void
ngx_http_loom_get_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    ngx_str_t                 msg[2], data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        ngx_http_loom_get_failed(r, reply);
        return;
    }

    if (reply->element[0]->type != REDIS_REPLY_STRING) {
        ngx_str_set(&msg[0], "couldn't get value for topic. "
                             "topic doesn't exist. topic: ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply->element[1]->type == REDIS_REPLY_STRING) {
        data.data = (u_char *) reply->element[1]->str;
        data.len = reply->element[1]->len;

    } else {
        data = ngx_http_loom_null;
    }

    /* get answers whether or not requireAck is set */

    ngx_http_loom_request_finish(r, ngx_http_loom_response(r, 200, NULL, 0,
                                                           &data));
}


static void
ngx_http_loom_get_rev(ngx_http_loom_request_t *r)
{
    size_t       argvlen[1];
    const char  *argv[1];

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;

    (void) ngx_http_loom_request_send(r, ngx_http_loom_get_rev_reply,
                                      NGX_HTTP_LOOM_SCRIPT_SNAPSHOT, 1, 1,
                                      argv, argvlen);
}


/* {rev, epoch, ts, value or nil}; nil when the topic does not exist */

static void
ngx_http_loom_get_rev_reply(ngx_http_loom_request_t *r, redisReply *reply)
{
    u_char      *p, extra[64 + 6 * NGX_HTTP_LOOM_GAP_EPOCH_LEN];
    uint64_t     rev, ts;
    ngx_str_t    msg[2], data, rest;
    redisReply  *epoch, *value;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "couldn't get value for topic. "
                             "topic doesn't exist. topic: ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 4
        || ngx_http_loom_get_number(reply->element[0], &rev) != NGX_OK
        || reply->element[1]->type != REDIS_REPLY_STRING
        || ngx_http_loom_get_number(reply->element[2], &ts) != NGX_OK)
    {
        ngx_http_loom_get_failed(r, reply);
        return;
    }

    epoch = reply->element[1];
    value = reply->element[3];

    if (value->type == REDIS_REPLY_STRING) {
        data.data = (u_char *) value->str;
        data.len = value->len;

    } else {
        ngx_str_set(&data, "null");
    }

    p = ngx_cpymem(extra, ",\"rev\":", 7);
    p = ngx_http_loom_rev_decimal(p, rev);
    p = ngx_cpymem(p, ",\"epoch\":\"", 10);
    p = ngx_http_loom_json_escape(p, (u_char *) epoch->str,
                                  ngx_min(epoch->len,
                                          NGX_HTTP_LOOM_GAP_EPOCH_LEN));
    p = ngx_cpymem(p, "\",\"ts\":", 7);
    p = ngx_http_loom_rev_decimal(p, ts);

    rest.data = extra;
    rest.len = p - extra;

    /* get answers whether or not requireAck is set */

    ngx_http_loom_request_finish(r, ngx_http_loom_response_extra(r, 200,
                                                                 &data,
                                                                 &rest));
}


static ngx_int_t
ngx_http_loom_get_number(redisReply *r, uint64_t *v)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        return NGX_ERROR;
    }

    *v = (uint64_t) r->integer;

    return NGX_OK;
}


/* a get that Redis could not answer, worded as the original did */

static void
ngx_http_loom_get_failed(ngx_http_loom_request_t *r, redisReply *reply)
{
    ngx_str_t  msg[2];

    ngx_str_set(&msg[0], "couldn't get value for topic with error: ");

    if (reply == NULL) {
        ngx_str_set(&msg[1], "connection to redis lost");

    } else if (reply->type == REDIS_REPLY_ERROR) {
        msg[1].data = (u_char *) reply->str;
        msg[1].len = reply->len;

    } else {
        ngx_str_set(&msg[1], "unexpected reply from redis");
    }

    ngx_http_loom_request_error(r, 500, msg, 2);
}
