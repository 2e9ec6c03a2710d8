/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_resume.h"


/*
 * subscribe with "snapshot" or "since" (docs/protocol.md sections 15.5
 * and 15.6).  The subscription is buffering from the moment it joins the
 * topic; once its channel is live, snapshot.lua or resume.lua reads the
 * position.  The answer goes out in its turn; then (the request's
 * cleanup) the replay, page by page from the history stream
 * (ngx_http_loom_replay.c), and the buffer above the answer's revision:
 * no gap, no duplicate.
 */


static void ngx_http_loom_resume_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_resume_answered(ngx_http_loom_request_t *r);
static void ngx_http_loom_resume_registration(ngx_http_loom_sub_t *sub,
    redisReply *reply);
static ngx_http_loom_sub_t *ngx_http_loom_resume_sub(
    ngx_http_loom_request_t *r);
static ngx_int_t ngx_http_loom_resume_number(redisReply *r, uint64_t *v);


ngx_int_t
ngx_http_loom_resume_check(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_resume_t *rs)
{
    u_char                          errbuf[NGX_HTTP_LOOM_REV_ERRLEN];
    u_char                         *scratch;
    ngx_str_t                       err, epoch;
    ngx_uint_t                      flag;
    ngx_http_loom_json_envelope_t  *env;

    env = &ctx->env;
    err.data = errbuf;

    ngx_memzero(rs, sizeof(ngx_http_loom_resume_t));

    if (env->snapshot.type != NGX_HTTP_LOOM_JSON_NONE
        && env->snapshot.type != NGX_HTTP_LOOM_JSON_NULL)
    {
        if (ngx_http_loom_rev_bool(&env->snapshot, "snapshot", &flag, &err)
            != NGX_OK)
        {
            goto invalid;
        }

        rs->snapshot = flag;
    }

    if (env->since.type == NGX_HTTP_LOOM_JSON_NONE
        || env->since.type == NGX_HTTP_LOOM_JSON_NULL)
    {
        return NGX_OK;
    }

    scratch = ngx_alloc(env->since.raw.len + 1, ctx->worker->log);
    if (scratch == NULL) {
        ngx_str_set(&err, "out of memory");
        ngx_http_loom_answer_error(ctx, 500, &err, 1);
        return NGX_ERROR;
    }

    if (ngx_http_loom_rev_since(&env->since, scratch, &epoch, &rs->since,
                                &err)
        != NGX_OK)
    {
        ngx_free(scratch);
        goto invalid;
    }

    rs->resume = 1;

    /* an epoch longer than any the scripts make is nobody's */

    if (epoch.len > NGX_HTTP_LOOM_GAP_EPOCH_LEN) {
        rs->foreign = 1;

    } else {
        ngx_memcpy(rs->epoch, epoch.data, epoch.len);
        rs->epoch_len = epoch.len;
    }

    ngx_free(scratch);

    return NGX_OK;

invalid:

    ngx_http_loom_answer_error(ctx, 400, &err, 1);

    return NGX_ERROR;
}


/* the subscription is live at Redis and buffering: read the position */

void
ngx_http_loom_resume_start(ngx_http_loom_request_t *r,
    ngx_http_loom_resume_t *rs, ngx_http_loom_sub_t *sub)
{
    u_char                     *p, num[4][NGX_INT64_LEN];
    size_t                      argvlen[8];
    ngx_str_t                   msg[2];
    const char                 *argv[8], *reason;
    ngx_http_loom_main_conf_t  *lmcf;

    rs->sub = sub;
    lmcf = r->session->worker->conf;

    if (!rs->resume) {
        /* one read for the topic's subscribes waiting at the same time */

        r->reply = ngx_http_loom_resume_reply;
        r->state = NGX_HTTP_LOOM_REQ_REDIS;
        rs->wait.call = &r->call;

        if (ngx_http_loom_snapshot_join(&sub->topic->snapshot, &rs->wait,
                                        &reason)
            != NGX_OK)
        {
            ngx_str_set(&msg[0], "storage unavailable: ");
            msg[1].data = (u_char *) reason;
            msg[1].len = ngx_strlen(reason);

            ngx_http_loom_fanout_unbuffer(sub);
            ngx_http_loom_request_unbarrier(r);
            ngx_http_loom_request_error(r, 500, msg, 2);
        }

        return;
    }

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;

    /* the stream's key, P{t:<name>}:h, behind the struct */

    p = ngx_cpymem(rs->stream, r->key.data, r->key.len);
    p = ngx_cpymem(p, ":h", 2);

    argv[1] = (char *) rs->stream;
    argvlen[1] = p - rs->stream;
    argv[2] = rs->foreign ? "-" : (char *) rs->epoch;
    argvlen[2] = rs->foreign ? 1 : rs->epoch_len;
    argv[3] = (char *) num[0];
    argvlen[3] = ngx_http_loom_rev_decimal(num[0], rs->since) - num[0];

    /* the entries come as history pages after the answer */
    argv[4] = "1";
    argvlen[4] = 1;

    argv[5] = (char *) num[1];
    argvlen[5] = ngx_http_loom_rev_decimal(num[1], lmcf->history) - num[1];
    argv[6] = (char *) num[2];
    argvlen[6] = ngx_http_loom_rev_decimal(num[2],
                                           (uint64_t) lmcf->history_max_age)
                 - num[2];

    /* the channel is the key with ":msg" */
    argv[7] = (char *) r->key.data;
    argvlen[7] = r->key.len + 4;

    (void) ngx_http_loom_request_send(r, ngx_http_loom_resume_reply,
                                      NGX_HTTP_LOOM_SCRIPT_RESUME, 2, 8,
                                      argv, argvlen);
}


/*
 * snapshot.lua (the shared read): {rev, epoch, ts, value, registration,
 * storage}; resume.lua: {recovered, epoch, top, ts, value, entries}; nil
 * when the topic is gone
 */

static void
ngx_http_loom_resume_reply(ngx_http_loom_request_t *r, redisReply *reply)
{
    u_char                  *p, extra[256 + 6 * NGX_HTTP_LOOM_GAP_EPOCH_LEN];
    uint64_t                 top, ts, recovered;
    ngx_str_t                msg[2], data, rest;
    redisReply              *epoch, *value;
    ngx_http_loom_resume_t  *rs;

    rs = ngx_http_loom_resume_of(r);

    /* an unregister notice may have ended it meanwhile */
    rs->sub = ngx_http_loom_resume_sub(r);

    if (rs->sub == NULL || (reply && reply->type == REDIS_REPLY_NIL)) {
        if (rs->sub) {
            ngx_http_loom_fanout_unbuffer(rs->sub);

            if (rs->unregistered) {
                /* made for this subscribe, to a topic that is not there */
                ngx_http_loom_topic_unsubscribe(rs->sub);
            }
        }

        ngx_str_set(&msg[0], "topic doesn't exist for ");
        msg[1] = r->name;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    recovered = 0;

    if (reply && reply->type == REDIS_REPLY_ARRAY && !rs->resume
        && reply->elements >= 5
        && ngx_http_loom_resume_number(reply->element[0], &top) == NGX_OK
        && reply->element[1]->type == REDIS_REPLY_STRING
        && ngx_http_loom_resume_number(reply->element[2], &ts) == NGX_OK
        && reply->element[4]->type == REDIS_REPLY_STRING)
    {
        epoch = reply->element[1];
        value = reply->element[3];

        if (rs->unregistered) {
            ngx_http_loom_resume_registration(rs->sub, reply);
        }

    } else if (reply && reply->type == REDIS_REPLY_ARRAY && rs->resume
               && reply->elements == 6
               && ngx_http_loom_resume_number(reply->element[0], &recovered)
                  == NGX_OK
               && reply->element[1]->type == REDIS_REPLY_STRING
               && ngx_http_loom_resume_number(reply->element[2], &top)
                  == NGX_OK
               && ngx_http_loom_resume_number(reply->element[3], &ts)
                  == NGX_OK)
    {
        epoch = reply->element[1];
        value = reply->element[4];

    } else {
        ngx_http_loom_fanout_unbuffer(rs->sub);

        if (rs->unregistered) {
            ngx_http_loom_topic_unsubscribe(rs->sub);
        }

        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (rs->recovered && top < rs->since) {
        /* cannot be: resume.lua changes the epoch then */
        rs->recovered = 0;
    }

    rs->top = top;
    rs->recovered = recovered ? 1 : 0;

    if (value->type == REDIS_REPLY_STRING) {
        data.data = (u_char *) value->str;
        data.len = value->len;

    } else {
        ngx_str_set(&data, "null");
    }

    /* ,"rev":R,"epoch":"E"[,"ts":T][,"recovered":b,"replayed":N] */

    p = ngx_cpymem(extra, ",\"rev\":", 7);
    p = ngx_http_loom_rev_decimal(p, top);
    p = ngx_cpymem(p, ",\"epoch\":\"", 10);
    p = ngx_http_loom_json_escape(p, (u_char *) epoch->str,
                                  ngx_min(epoch->len,
                                          NGX_HTTP_LOOM_GAP_EPOCH_LEN));
    *p++ = '"';

    if (rs->snapshot) {
        p = ngx_cpymem(p, ",\"ts\":", 6);
        p = ngx_http_loom_rev_decimal(p, ts);
    }

    if (rs->resume) {
        p = recovered ? ngx_cpymem(p, ",\"recovered\":true", 17)
                      : ngx_cpymem(p, ",\"recovered\":false", 18);
        p = ngx_cpymem(p, ",\"replayed\":", 12);
        p = ngx_http_loom_rev_decimal(p, recovered ? top - rs->since : 0);
    }

    rest.data = extra;
    rest.len = p - extra;

    /* the rest once the answer is out, in its turn */

    r->cleanup = ngx_http_loom_resume_answered;

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_finish(r,
        ngx_http_loom_response_extra(r, 200, rs->snapshot ? &data : NULL,
                                     &rest));
}


static void
ngx_http_loom_resume_answered(ngx_http_loom_request_t *r)
{
    ngx_str_t                epoch;
    ngx_http_loom_sub_t     *sub;
    ngx_http_loom_resume_t  *rs;

    rs = ngx_http_loom_resume_of(r);

    if (r->session == NULL) {
        /* the client left: its subscriptions went with it */
        return;
    }

    sub = ngx_http_loom_resume_sub(r);

    if (sub == NULL) {
        return;
    }

    if (!rs->recovered || rs->top == rs->since) {
        sub->after = rs->top;
        (void) ngx_http_loom_fanout_apply(sub, rs->top);
        return;
    }

    epoch.data = rs->epoch;
    epoch.len = rs->epoch_len;

    if (ngx_http_loom_replay_start(sub, &r->key, &epoch, rs->since, rs->top)
        != NGX_OK)
    {
        ngx_http_loom_fanout_unbuffer(sub);
    }
}


/*
 * The shared snapshot read's {..., registration, storage}: what a new
 * subscription with snapshot is made to, as a subscribe's HMGET says it
 */

static void
ngx_http_loom_resume_registration(ngx_http_loom_sub_t *sub,
    redisReply *reply)
{
    ngx_str_t               registration;
    redisReply             *st;
    ngx_http_loom_topic_t  *t;

    t = sub->topic;

    registration.data = (u_char *) reply->element[4]->str;
    registration.len = reply->element[4]->len;

    ngx_http_loom_topic_registration(sub, &registration);
    ngx_http_loom_topic_seq_registration(t, &registration);

    /* a memory topic's drops cannot be repaired, only told */

    st = reply->elements > 5 ? reply->element[5] : NULL;

    t->gap.memory = (st && st->type == REDIS_REPLY_STRING && st->len == 6
                     && ngx_strncmp(st->str, "memory", 6) == 0);
}


static ngx_http_loom_sub_t *
ngx_http_loom_resume_sub(ngx_http_loom_request_t *r)
{
    ngx_http_loom_topic_t  *t;

    t = ngx_http_loom_topic_lookup(r->session->worker, &r->name);

    return t ? ngx_http_loom_topic_find(&r->session->subscriber, t) : NULL;
}


static ngx_int_t
ngx_http_loom_resume_number(redisReply *r, uint64_t *v)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        return NGX_ERROR;
    }

    *v = (uint64_t) r->integer;

    return NGX_OK;
}
