/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_resume.h"


/*
 * The history action (docs/protocol.md section 15.7): a page of a topic's
 * history, read by history.lua, answered as
 *
 *   {"id":..,"action":"history","code":200,"data":[entries],
 *    "epoch":"..","rev":N,"type":"response"}
 */


typedef struct {
    uint64_t                    since;
    uint64_t                    limit;
    uint64_t                    from;
    uint64_t                    until;
    ngx_uint_t                  reverse;
    unsigned                    has_since:1;
    unsigned                    has_from:1;
    unsigned                    has_until:1;
} ngx_http_loom_history_args_t;


static ngx_int_t ngx_http_loom_history_args(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_history_args_t *a);
static void ngx_http_loom_history_run(ngx_http_loom_request_t *r);
static void ngx_http_loom_history_reply(ngx_http_loom_request_t *r,
    redisReply *reply);


#define ngx_http_loom_history_given(v)                                       \
    ((v)->type != NGX_HTTP_LOOM_JSON_NONE                                    \
     && (v)->type != NGX_HTTP_LOOM_JSON_NULL)


void
ngx_http_loom_history(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t       *r;
    ngx_http_loom_main_conf_t     *lmcf;
    ngx_http_loom_history_args_t   a;

    if (ngx_http_loom_history_args(ctx, &a) != NGX_OK) {
        return;
    }

    lmcf = ctx->worker->conf;

    if (a.limit > lmcf->history_page) {
        a.limit = lmcf->history_page;
    }

    /* the arguments, then room for the stream's key, P{t:<name>}:h */

    r = ngx_http_loom_request_create(ctx,
                                     sizeof(ngx_http_loom_history_args_t)
                                     + ngx_http_loom_store_prefix(
                                         ctx->worker->store)->len
                                     + ctx->env.topic_str.len
                                     + sizeof("{t:}:h") - 1);
    if (r == NULL) {
        return;
    }

    ngx_memcpy(r->payload.data, &a, sizeof(ngx_http_loom_history_args_t));

    /* what a publish sent just before stores must be in the page */

    if (ngx_http_loom_behind_publish(r)
        && ngx_http_loom_request_park(r, ngx_http_loom_history_run) == NGX_OK)
    {
        return;
    }

    ngx_http_loom_history_run(r);
}


static void
ngx_http_loom_history_run(ngx_http_loom_request_t *r)
{
    u_char                        *p, *stream;
    u_char                         num[6][NGX_INT64_LEN];
    size_t                         argvlen[9];
    const char                    *argv[9];
    ngx_http_loom_main_conf_t     *lmcf;
    ngx_http_loom_history_args_t   a;

    ngx_http_loom_request_unbarrier(r);

    lmcf = r->session->worker->conf;
    ngx_memcpy(&a, r->payload.data, sizeof(ngx_http_loom_history_args_t));

    stream = r->payload.data + sizeof(ngx_http_loom_history_args_t);
    p = ngx_cpymem(stream, r->key.data, r->key.len);
    p = ngx_cpymem(p, ":h", 2);

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;
    argv[1] = (char *) stream;
    argvlen[1] = p - stream;

    argv[2] = (char *) num[0];
    argvlen[2] = a.has_since
                 ? ngx_http_loom_rev_decimal(num[0], a.since) - num[0] : 0;
    argv[3] = (char *) num[1];
    argvlen[3] = ngx_http_loom_rev_decimal(num[1], a.limit) - num[1];
    argv[4] = a.reverse ? "1" : "0";
    argvlen[4] = 1;
    argv[5] = (char *) num[2];
    argvlen[5] = a.has_from
                 ? ngx_http_loom_rev_decimal(num[2], a.from) - num[2] : 0;
    argv[6] = (char *) num[3];
    argvlen[6] = a.has_until
                 ? ngx_http_loom_rev_decimal(num[3], a.until) - num[3] : 0;

    argv[7] = (char *) num[4];
    argvlen[7] = ngx_http_loom_rev_decimal(num[4], lmcf->history) - num[4];
    argv[8] = (char *) num[5];
    argvlen[8] = ngx_http_loom_rev_decimal(num[5],
                                           (uint64_t) lmcf->history_max_age)
                 - num[5];

    (void) ngx_http_loom_request_send(r, ngx_http_loom_history_reply,
                                      NGX_HTTP_LOOM_SCRIPT_HISTORY, 2, 9,
                                      argv, argvlen);
}


static ngx_int_t
ngx_http_loom_history_args(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_history_args_t *a)
{
    u_char                          errbuf[NGX_HTTP_LOOM_REV_ERRLEN];
    ngx_str_t                       err;
    ngx_http_loom_json_envelope_t  *env;

    env = &ctx->env;
    err.data = errbuf;

    ngx_memzero(a, sizeof(ngx_http_loom_history_args_t));
    a->limit = (uint64_t) -1;

    if (ngx_http_loom_history_given(&env->since)) {
        if (ngx_http_loom_rev_count(&env->since, "since", &a->since, &err)
            != NGX_OK)
        {
            goto invalid;
        }

        a->has_since = 1;
    }

    if (ngx_http_loom_history_given(&env->limit)
        && ngx_http_loom_rev_count(&env->limit, "limit", &a->limit, &err)
           != NGX_OK)
    {
        goto invalid;
    }

    if (ngx_http_loom_history_given(&env->reverse)
        && ngx_http_loom_rev_bool(&env->reverse, "reverse", &a->reverse,
                                  &err)
           != NGX_OK)
    {
        goto invalid;
    }

    if (ngx_http_loom_history_given(&env->from)) {
        if (ngx_http_loom_rev_time(&env->from, "from", &a->from, &err)
            != NGX_OK)
        {
            goto invalid;
        }

        a->has_from = 1;
    }

    if (ngx_http_loom_history_given(&env->until)) {
        if (ngx_http_loom_rev_time(&env->until, "until", &a->until, &err)
            != NGX_OK)
        {
            goto invalid;
        }

        a->has_until = 1;
    }

    return NGX_OK;

invalid:

    ngx_http_loom_answer_error(ctx, 400, &err, 1);

    return NGX_ERROR;
}


/* {1, epoch, top, entries}; {0, epoch, top, {}}: no history; nil */

static void
ngx_http_loom_history_reply(ngx_http_loom_request_t *r, redisReply *reply)
{
    u_char                 *buf, *p;
    size_t                  i, len;
    uint64_t                rev, ts;
    ngx_str_t               msg[3], data, sender, list, extra;
    redisReply             *e, *epoch;
    ngx_http_loom_frame_t  *f;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "couldn't get history for topic. "
                             "topic doesn't exist. topic: ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[2]->type != REDIS_REPLY_INTEGER
        || reply->element[3]->type != REDIS_REPLY_ARRAY)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (reply->element[0]->integer == 0) {
        ngx_str_set(&msg[0], "history is disabled for topic ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 400, msg, 2);
        return;
    }

    e = reply->element[3];
    epoch = reply->element[1];

    /* the list, then ,"epoch":"..","rev":N after it */

    len = sizeof("[]") - 1
          + sizeof(",\"epoch\":\"\",\"rev\":") - 1 + NGX_INT64_LEN
          + ngx_http_loom_json_escape_len((u_char *) epoch->str,
                                          epoch->len);

    for (i = 0; i < e->elements; i++) {
        if (ngx_http_loom_history_entry(e->element[i], &data, &sender, &rev,
                                        &ts)
            != NGX_OK)
        {
            ngx_http_loom_request_fail(r, NULL);
            return;
        }

        len += 1 + ngx_http_loom_rev_entry_len(&data, &sender, rev, ts);
    }

    buf = ngx_alloc(len, r->session->connection->log);
    if (buf == NULL) {
        ngx_str_set(&msg[0], "out of memory");
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    p = buf;
    *p++ = '[';

    for (i = 0; i < e->elements; i++) {
        (void) ngx_http_loom_history_entry(e->element[i], &data, &sender,
                                           &rev, &ts);
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_loom_rev_entry(p, rev, ts, &data, &sender);
    }

    *p++ = ']';

    list.data = buf;
    list.len = p - buf;

    extra.data = p;
    p = ngx_cpymem(p, ",\"epoch\":\"", 10);
    p = ngx_http_loom_json_escape(p, (u_char *) epoch->str, epoch->len);
    p = ngx_cpymem(p, "\",\"rev\":", 8);
    p = ngx_http_loom_rev_decimal(p, (uint64_t) reply->element[2]->integer);
    extra.len = p - extra.data;

    f = ngx_http_loom_response_extra(r, 200, &list, &extra);

    ngx_free(buf);

    /* history answers whether or not requireAck is set */

    ngx_http_loom_request_finish(r, f);
}
