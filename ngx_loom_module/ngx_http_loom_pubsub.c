/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_schemas.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_resume.h"


/*
 * subscribe, unsubscribe, unsubscribeAll, publish, sendWithoutSave and
 * get.  Each handler gets a request whose envelope passed the checks of
 * its action, and answers it, at once or when Redis has replied.
 */


#define NGX_HTTP_LOOM_PUBLISH_TRIES    3

/* history entries one publish trims at most (lua/append.lua) */
#define NGX_HTTP_LOOM_PUBLISH_TRIM     "64"

#define ngx_http_loom_waiter_request(wt)                                     \
    ((ngx_http_loom_request_t *)                                             \
         ((u_char *) (wt) - offsetof(ngx_http_loom_request_t, waiter)))


static void ngx_http_loom_subscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_subscribe_now(ngx_http_loom_request_t *r);
static void ngx_http_loom_subscribe_done(ngx_http_loom_waiter_t *wt,
    ngx_int_t rc);
static void ngx_http_loom_unsubscribe_run(ngx_http_loom_request_t *r);
static void ngx_http_loom_unsubscribe_now(ngx_http_loom_request_t *r);
static void ngx_http_loom_unsubscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_loom_publish_send(ngx_http_loom_request_t *r,
    ngx_str_t *tag);
static void ngx_http_loom_publish_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_http_loom_frame_t *ngx_http_loom_publish_ack(
    ngx_http_loom_request_t *r, long long rev);
static void ngx_http_loom_publish_released(ngx_http_loom_waiter_t *wt,
    ngx_int_t rc);
static void ngx_http_loom_publish_acked(ngx_http_loom_request_t *r);

/* subscribe */

void
ngx_http_loom_subscribe(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_resume_t    rs, *rsp;
    ngx_http_loom_request_t  *r;

    /* "snapshot" and "since" (ngx_http_loom_resume.c) */

    if (ngx_http_loom_resume_check(ctx, &rs) != NGX_OK) {
        return;
    }

    /*
     * room for the registration the subscription is made to, and for
     * what a snapshot or a resume keeps
     */

    r = ngx_http_loom_request_create(ctx, NGX_HTTP_LOOM_ID_LEN
                                     + NGX_ALIGNMENT
                                     + ngx_http_loom_resume_size(
                                           ngx_http_loom_store_prefix(
                                               ctx->worker->store)->len
                                           + ctx->env.topic_str.len
                                           + sizeof("{t:}") - 1));
    if (r == NULL) {
        return;
    }

    rsp = ngx_http_loom_resume_of(r);
    ngx_memcpy(rsp, &rs, sizeof(ngx_http_loom_resume_t));

    /* later requests wait until the subscription is live */

    ngx_http_loom_request_barrier(r);

    /*
     * A new subscription with snapshot asks nothing first: it joins the
     * topic with no registration, and the topic's shared snapshot read,
     * made once it is live, says which registration it is (or that the
     * topic does not exist).  No unregister notice can end it meanwhile:
     * it names no registration yet.
     */

    if (rs.snapshot && !rs.resume) {
        t = ngx_http_loom_topic_lookup(ctx->worker, &r->name);

        if (t == NULL || ngx_http_loom_topic_find(&r->session->subscriber, t)
                         == NULL)
        {
            rsp->unregistered = 1;
            r->payload.len = 0;
            r->state = NGX_HTTP_LOOM_REQ_REDIS;
            ngx_http_loom_subscribe_now(r);
            return;
        }
    }

    /*
     * Any other subscribe asks Redis even when the channel is live here:
     * the news that the topic was unregistered, by this client just
     * before or by another one, may still be on its way on the subscriber
     * link.  The tag names the registration, so that such news only drops
     * the subscriptions made to the registration it is about.
     */

    (void) ngx_http_loom_hash_command(r, ngx_http_loom_subscribe_reply,
                                      "HMGET", "tag", "st");
}


static void
ngx_http_loom_subscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    u_char                   *p, *last, *colon;
    ngx_str_t                 msg[2];
    redisReply               *tag, *st;

    /* {tag, storage} */

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    tag = reply->element[0];
    st = reply->element[1];

    if (tag->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "topic doesn't exist for ");
        msg[1] = r->name;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (tag->type != REDIS_REPLY_STRING) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* a memory topic's drops cannot be repaired, only told */

    ngx_http_loom_resume_of(r)->memory =
        (st->type == REDIS_REPLY_STRING && st->len == 6
         && ngx_strncmp(st->str, "memory", 6) == 0);

    /* the tag is "<registration>:<schema version>" */

    p = (u_char *) tag->str;
    last = p + tag->len;
    colon = ngx_strlchr(p, last, ':');

    r->payload.len = ngx_min((size_t) ((colon ? colon : last) - p),
                             NGX_HTTP_LOOM_ID_LEN);
    ngx_memcpy(r->payload.data, p, r->payload.len);

    ngx_http_loom_subscribe_now(r);
}


static void
ngx_http_loom_subscribe_now(ngx_http_loom_request_t *r)
{
    u_char                    buf[NGX_INT_T_LEN];
    ngx_int_t                 rc;
    ngx_str_t                 msg[3];
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_resume_t   *rs;
    ngx_http_loom_session_t  *s;

    s = r->session;

    t = ngx_http_loom_topic_get(s->worker, &r->name);
    if (t == NULL) {
        ngx_str_set(&msg[0], "out of memory");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    sub = ngx_http_loom_topic_find(&s->subscriber, t);

    rs = ngx_http_loom_resume_of(r);

    if (!rs->unregistered) {
        t->gap.memory = rs->memory;
    }

    if (sub) {
        /* subscribing twice is fine: one delivery per message still */
        ngx_http_loom_topic_registration(sub, &r->payload);
        ngx_http_loom_topic_check(t);

        if (rs->snapshot || rs->resume) {
            /* a re-sync: buffering again until the new position */
            ngx_http_loom_fanout_buffer(sub);
            ngx_http_loom_resume_start(r, rs, sub);
            return;
        }

        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    if (s->subscriber.nsubscriptions >= s->conf->max_subscriptions) {
        ngx_http_loom_topic_check(t);

        ngx_str_set(&msg[0], "too many subscriptions on this connection, "
                             "the limit is ");
        msg[1].data = buf;
        msg[1].len = ngx_sprintf(buf, "%ui", s->conf->max_subscriptions)
                     - buf;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, msg, 2);
        return;
    }

    r->state = NGX_HTTP_LOOM_REQ_WAITING;
    r->waiter.handler = ngx_http_loom_subscribe_done;

    rc = ngx_http_loom_topic_subscribe(t, &s->subscriber, &r->waiter,
                                       &r->payload);

    if (rc != NGX_AGAIN) {
        r->state = NGX_HTTP_LOOM_REQ_REDIS;
    }

    if ((rc == NGX_OK || rc == NGX_AGAIN) && (rs->snapshot || rs->resume)) {

        /* buffering from the moment it joins: nothing can come between */

        sub = ngx_http_loom_topic_find(&s->subscriber, t);

        if (sub) {
            ngx_http_loom_fanout_buffer(sub);

            if (rc == NGX_OK) {
                ngx_http_loom_resume_start(r, rs, sub);
                return;
            }
        }
    }

    switch (rc) {

    case NGX_OK:
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;

    case NGX_AGAIN:
        /* ngx_http_loom_subscribe_done() goes on */
        return;

    case NGX_DECLINED:
        ngx_str_set(&msg[0], "storage unavailable: not connected to redis");
        break;

    default:
        ngx_str_set(&msg[0], "out of memory");
        break;
    }

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, msg, 1);
}


/* Redis confirmed the channel, or the subscriber link went down first */

static void
ngx_http_loom_subscribe_done(ngx_http_loom_waiter_t *wt, ngx_int_t rc)
{
    ngx_str_t                 msg;
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_resume_t   *rs;
    ngx_http_loom_request_t  *r;
    ngx_http_loom_session_t  *s;

    r = ngx_http_loom_waiter_request(wt);
    s = r->session;

    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    t = ngx_http_loom_topic_lookup(s->worker, &r->name);
    sub = t ? ngx_http_loom_topic_find(&s->subscriber, t) : NULL;

    if (rc == NGX_OK) {
        rs = ngx_http_loom_resume_of(r);

        if (sub && (rs->snapshot || rs->resume)) {
            ngx_http_loom_resume_start(r, rs, sub);
            return;
        }

        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    if (sub) {
        ngx_http_loom_topic_unsubscribe(sub);
    }

    ngx_str_set(&msg, "storage unavailable: connection to redis lost");
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, &msg, 1);
}


/* unsubscribe and unsubscribeAll */

void
ngx_http_loom_unsubscribe(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    /*
     * A publish before an unsubscribe may still be on its way to this very
     * connection: the unsubscribe waits until every request before it is
     * through (a publish is through once its delivery came here), and the
     * requests after it wait for the unsubscribe.
     */

    if (ngx_http_loom_request_park(r, ngx_http_loom_unsubscribe_run)
        == NGX_OK)
    {
        return;
    }

    ngx_http_loom_unsubscribe_run(r);
}


static void
ngx_http_loom_unsubscribe_now(ngx_http_loom_request_t *r)
{
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_session_t  *s;

    s = r->session;

    t = ngx_http_loom_topic_lookup(s->worker, &r->name);
    sub = t ? ngx_http_loom_topic_find(&s->subscriber, t) : NULL;

    if (sub) {
        ngx_http_loom_topic_unsubscribe(sub);
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    /* which error it is depends on whether the topic exists */

    (void) ngx_http_loom_hash_command(r, ngx_http_loom_unsubscribe_reply,
                                      "HEXISTS", "sv", NULL);
}


static void
ngx_http_loom_unsubscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    ngx_str_t                 msg[4];

    ngx_http_loom_request_unbarrier(r);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the wording, typo included, is the original server's */

    if (reply->integer == 0) {
        ngx_str_set(&msg[0], "cannot unsubscribe client from topic. "
                             "topic doesn't exits. topic: ");

    } else {
        ngx_str_set(&msg[0], "cannot unsubscribe client from topic. "
                             "client is not subscribed to topic. topic: ");
    }

    msg[1] = r->name;
    ngx_str_set(&msg[2], ", client: ");
    msg[3] = r->session->client_id;

    ngx_http_loom_request_error(r, 500, msg, 4);
}


/* when the requests before it are through */

static void
ngx_http_loom_unsubscribe_run(ngx_http_loom_request_t *r)
{
    if (r->action == NGX_HTTP_LOOM_UNSUBSCRIBE) {
        ngx_http_loom_unsubscribe_now(r);
        return;
    }

    ngx_http_loom_topic_unsubscribe_all(&r->session->subscriber);
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/* publish and sendWithoutSave */

void
ngx_http_loom_publish(ngx_http_loom_ctx_t *ctx)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                       msg, *data, *topic, *action;
    json_t                         *json;
    json_error_t                    jerr;
    ngx_http_loom_topic_t          *t;
    ngx_http_loom_session_t        *s;
    ngx_http_loom_request_t        *r;
    ngx_http_loom_json_envelope_t  *env;

    s = ctx->session;
    env = &ctx->env;

    if (env->data.type != NGX_HTTP_LOOM_JSON_OBJECT) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return;
    }

    data = &env->data.raw;

    json = json_loadb((char *) data->data, data->len,
                      JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);
    if (json == NULL) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return;
    }

    /*
     * The delivery is built here, once, from the bytes the client sent:
     * {"id":..,"action":..,"topic":..,"data":..,"senderId":".."}\n
     */

    topic = &env->topic.raw;
    action = &ctx->action_quoted;

    len = sizeof("{\"id\":,\"action\":,\"topic\":,\"data\":,"
                 "\"senderId\":\"\"}\n") - 1
          + ctx->id.len + action->len + topic->len + data->len
          + s->sender.len;

    /*
     * and room for the registration of the tag it is sent with, and for
     * the history stream's key P{t:<name>}:h
     */

    r = ngx_http_loom_request_create(ctx, len + NGX_HTTP_LOOM_ID_LEN
                                     + ngx_http_loom_store_prefix(
                                           ctx->worker->store)->len
                                     + ctx->env.topic_str.len
                                     + sizeof("{t:}:h") - 1);
    if (r == NULL) {
        json_decref(json);
        return;
    }

    r->data = json;
    r->start = ngx_http_loom_usec();
    r->registration.data = r->payload.data + len;

    p = ngx_cpymem(r->registration.data + NGX_HTTP_LOOM_ID_LEN,
                   r->key.data, r->key.len);
    ngx_memcpy(p, ":h", 2);

    p = r->payload.data;
    p = ngx_cpymem(p, "{\"id\":", 6);
    p = ngx_cpymem(p, ctx->id.data, ctx->id.len);
    p = ngx_cpymem(p, ",\"action\":", 10);
    p = ngx_cpymem(p, action->data, action->len);
    p = ngx_cpymem(p, ",\"topic\":", 9);
    p = ngx_cpymem(p, topic->data, topic->len);
    p = ngx_cpymem(p, ",\"data\":", 8);
    r->data_offset = p - r->payload.data;
    r->data_len = data->len;
    p = ngx_cpymem(p, data->data, data->len);
    p = ngx_cpymem(p, ",\"senderId\":\"", 13);
    p = ngx_cpymem(p, s->sender.data, s->sender.len);
    p = ngx_cpymem(p, "\"}\n", 3);
    r->payload.len = p - r->payload.data;

    t = ngx_http_loom_topic_lookup(ctx->worker, &r->name);

    if (t && ngx_http_loom_topic_has_schema(t)) {

        if (ngx_http_loom_topic_match(t, json) == NGX_OK) {
            (void) ngx_http_loom_publish_send(r, &t->tag);
            ngx_http_loom_topic_check(t);
            return;
        }

        ngx_http_loom_topic_check(t);
    }

    /*
     * No schema here yet, or one the message does not match, which may
     * be older than a change this client sent just before: the script
     * answers with the current one, and the requests behind this one wait
     * until it is sent for real.
     */

    ngx_http_loom_request_barrier(r);

    (void) ngx_http_loom_publish_send(r, NULL);
}


static ngx_int_t
ngx_http_loom_publish_send(ngx_http_loom_request_t *r, ngx_str_t *tag)
{
    u_char                     offset[NGX_INT_T_LEN], length[NGX_INT_T_LEN];
    u_char                     hn[NGX_INT_T_LEN], ha[NGX_INT_T_LEN];
    size_t                     argvlen[11];
    ngx_int_t                  rc;
    ngx_str_t                 *key, reg, msg[2];
    const char                *argv[11], *reason;
    ngx_http_loom_main_conf_t  *lmcf;

    key = &r->key;
    lmcf = r->session->worker->conf;

    if (tag) {
        ngx_http_loom_topic_tag_registration(tag, &reg);
        r->registration.len = reg.len;
        ngx_memcpy(r->registration.data, reg.data, reg.len);

    } else {
        r->registration.len = 0;
    }

    /* the keys: the topic's hash and its history stream */

    argv[0] = (char *) key->data;
    argvlen[0] = key->len;
    argv[1] = (char *) r->registration.data + NGX_HTTP_LOOM_ID_LEN;
    argvlen[1] = key->len + 2;

    /* common to the group: the channel is the key with ":msg" */
    argv[2] = (char *) key->data;
    argvlen[2] = key->len + 4;

    /* the retention for a topic without its own, and the trimming bound */
    argv[3] = (char *) hn;
    argvlen[3] = ngx_sprintf(hn, "%ui", lmcf->history) - hn;
    argv[4] = (char *) ha;
    argvlen[4] = ngx_sprintf(ha, "%T", lmcf->history_max_age) - ha;
    argv[5] = NGX_HTTP_LOOM_PUBLISH_TRIM;
    argvlen[5] = sizeof(NGX_HTTP_LOOM_PUBLISH_TRIM) - 1;

    /* this message's own */
    argv[6] = tag ? (char *) tag->data : "";
    argvlen[6] = tag ? tag->len : 0;
    argv[7] = (r->action == NGX_HTTP_LOOM_PUBLISH) ? "1" : "0";
    argvlen[7] = 1;
    argv[8] = (char *) r->payload.data;
    argvlen[8] = r->payload.len;
    argv[9] = (char *) offset;
    argvlen[9] = ngx_sprintf(offset, "%uz", r->data_offset) - offset;
    argv[10] = (char *) length;
    argvlen[10] = ngx_sprintf(length, "%uz", r->data_len) - length;

    /* sendWithoutSave keeps nothing: no loom_redis_wait for it */
    r->call.ephemeral = (r->action == NGX_HTTP_LOOM_SEND);

    /*
     * The publishes of one topic that come one after the other share a
     * script call (ngx_http_loom_store_batch.c); the reply handler gets
     * this one's own element of its reply
     */

    r->reply = ngx_http_loom_publish_reply;
    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    rc = ngx_http_loom_store_append(r->session->worker->store, &r->call,
                                    NGX_HTTP_LOOM_SCRIPT_APPEND, 2, 4, 11,
                                    argv, argvlen, &reason);
    if (rc == NGX_OK) {
        return NGX_OK;
    }

    ngx_str_set(&msg[0], "storage unavailable: ");
    msg[1].data = (u_char *) reason;
    msg[1].len = ngx_strlen(reason);

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, msg, 2);

    return NGX_ERROR;
}


static void
ngx_http_loom_publish_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    ngx_str_t                 msg[2], tag, kind, text;
    ngx_http_loom_frame_t    *ack;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_worker_t   *w;
    ngx_http_loom_session_t  *s;

    s = r->session;

    w = s->worker;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        /* {seq, rev, ts}: stored (for publish), on its way to everyone */

        if (w->stats) {
            if (r->action == NGX_HTTP_LOOM_PUBLISH) {
                w->stats->publishes++;

            } else {
                w->stats->sends++;
            }
        }

        ack = ngx_http_loom_publish_ack(r, reply->element[1]->integer);
        r->response = ack;

        /* a retry is through: what came after it may go */
        ngx_http_loom_request_unbarrier(r);

        t = ngx_http_loom_topic_lookup(w, &r->name);

        /*
         * a subscribed publisher sees its delivery before its ack, and
         * before the answers to what it sent later
         */

        r->state = NGX_HTTP_LOOM_REQ_HELD;
        r->waiter.handler = ngx_http_loom_publish_released;

        if (t && ngx_http_loom_topic_hold(t, &s->subscriber, &r->waiter,
                                          (uint64_t)
                                              reply->element[0]->integer,
                                          &r->registration))
        {
            ngx_http_loom_requests_run(r->requests);
            return;
        }

        r->state = NGX_HTTP_LOOM_REQ_REDIS;
        ngx_http_loom_publish_acked(r);
        ngx_http_loom_request_finish(r, ack);
        return;
    }

    if (reply && reply->type == REDIS_REPLY_NIL) {
        t = ngx_http_loom_topic_lookup(w, &r->name);

        if (t) {
            ngx_http_loom_topic_drop_schema(t);
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg[0], "could not get topic by name: ");
        msg[1] = r->name;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, msg, 2);
        return;
    }

    if (reply && r->call.unsent) {
        /* the group it was in could not be sent: the error says why */
        ngx_str_set(&msg[0], "storage unavailable: ");
        msg[1].data = (u_char *) reply->str;
        msg[1].len = reply->len;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 3 || reply->elements > 4
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the schema changed, or was not known here: check against it */

    tag.data = (u_char *) reply->element[0]->str;
    tag.len = reply->element[0]->len;

    kind.data = (u_char *) reply->element[2]->str;
    kind.len = reply->element[2]->len;
    text.data = (u_char *) reply->element[1]->str;
    text.len = reply->element[1]->len;

    if (ngx_http_loom_schemas_recheck(r, &tag, &text, &kind) != NGX_OK) {
        return;
    }

    /*
     * A fourth element: refused only because a message before it in the
     * same group was, to keep the order; its own tag was the current one,
     * so this is no attempt of its own
     */

    if (reply->elements == 3 && ++r->attempts >= NGX_HTTP_LOOM_PUBLISH_TRIES)
    {
        ngx_str_set(&msg[0], "storage error: the schema kept changing, "
                             "try again");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    /*
     * Sent again with the tag Redis has, from its reply: the topic may be
     * gone by now.  The requests behind it wait until the retry is
     * through: a get sent before this reply went out before the retry,
     * and was kept behind the publish for that (ngx_http_loom_get()),
     * but whatever comes now must go after it.  If the send fails, r is
     * answered and may be gone.
     */

    ngx_http_loom_request_barrier(r);

    (void) ngx_http_loom_publish_send(r, &tag);
}


/* the ack; on a v2 connection with the revision the publish got */

static ngx_http_loom_frame_t *
ngx_http_loom_publish_ack(ngx_http_loom_request_t *r, long long rev)
{
    u_char     buf[sizeof(",\"rev\":") - 1 + NGX_INT64_LEN];
    ngx_str_t  extra;

    if (!r->require_ack) {
        return NULL;
    }

    if (!r->session->subscriber.v2 || rev <= 0) {
        return ngx_http_loom_ack(r, NULL);
    }

    extra.data = buf;
    extra.len = ngx_sprintf(buf, ",\"rev\":%L", (int64_t) rev) - buf;

    return ngx_http_loom_response_extra(r, 200, NULL, &extra);
}


static void
ngx_http_loom_publish_released(ngx_http_loom_waiter_t *wt, ngx_int_t rc)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_waiter_request(wt);

    /* the delivery came, or will not come here: the ack goes */

    ngx_http_loom_publish_acked(r);
    ngx_http_loom_request_finish(r, r->response);
}


/* publish received -> ack queued, for loom_publish_ack_seconds */

static void
ngx_http_loom_publish_acked(ngx_http_loom_request_t *r)
{
    ngx_http_loom_worker_t  *w;

    w = r->session->worker;

    if (w->stats && r->action == NGX_HTTP_LOOM_PUBLISH) {
        ngx_http_loom_shm_observe(&w->stats->publish_ack,
                                  (ngx_msec_int_t) (ngx_http_loom_usec()
                                                    - r->start));
    }
}
