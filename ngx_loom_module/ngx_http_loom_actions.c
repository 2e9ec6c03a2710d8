/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_topic.h"


/*
 * The ten actions of the protocol.  Each handler gets a request whose
 * envelope passed the checks of its action, and answers it, at once or
 * when Redis has replied.
 */


#define NGX_HTTP_LOOM_PUBLISH_TRIES    3


static void ngx_http_loom_subscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_subscribe_now(ngx_http_loom_request_t *r);
static void ngx_http_loom_unsubscribe_now(ngx_http_loom_request_t *r);
static void ngx_http_loom_unsubscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_uint_t ngx_http_loom_unsubscribe_park(ngx_http_loom_request_t *r);
static ngx_int_t ngx_http_loom_publish_send(ngx_http_loom_request_t *r,
    ngx_str_t *tag);
static void ngx_http_loom_publish_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_get_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_register_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_unregister_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static int ngx_libc_cdecl ngx_http_loom_list_cmp(const void *one,
    const void *two);
static void ngx_http_loom_list_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_update_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_http_loom_request_t *ngx_http_loom_schema_request(
    ngx_http_loom_ctx_t *ctx);
static ngx_int_t ngx_http_loom_topic_script(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, ngx_str_t *arg1,
    ngx_str_t *arg2);
static ngx_int_t ngx_http_loom_hash_command(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, char *command, char *field,
    char *field2);

static ngx_str_t  ngx_http_loom_null = ngx_string("null");
static ngx_str_t  ngx_http_loom_empty_object = ngx_string("{}");


void
ngx_http_loom_protocol_subscribed(ngx_http_loom_request_t *r, ngx_int_t rc)
{
    ngx_str_t                 msg;
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_session_t  *s;

    s = r->session;

    if (rc == NGX_OK) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    /* the subscriber link went down before Redis confirmed the channel */

    t = ngx_http_loom_topic_lookup(s->worker, &r->name);
    sub = t ? ngx_http_loom_topic_find(s, t) : NULL;

    if (sub) {
        ngx_http_loom_topic_unsubscribe(sub);
    }

    ngx_str_set(&msg, "storage unavailable: connection to redis lost");
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, &msg, 1);
}


/* subscribe */

void
ngx_http_loom_subscribe(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    /* room for the registration the subscription is made to */

    r = ngx_http_loom_request_create(ctx, NGX_HTTP_LOOM_ID_LEN);
    if (r == NULL) {
        return;
    }

    /*
     * Redis is asked even when the channel is live here: the news that
     * the topic was unregistered, by this client just before or by
     * another one, may still be on its way on the subscriber link.  The
     * tag names the registration, so that such news only drops the
     * subscriptions made to the registration it is about.  Later requests
     * wait until the subscription is live.
     */

    ngx_http_loom_request_barrier(r);

    (void) ngx_http_loom_hash_command(r, ngx_http_loom_subscribe_reply,
                                      "HGET", "tag", NULL);
}


static void
ngx_http_loom_subscribe_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    u_char                   *p, *last, *colon;
    ngx_str_t                 msg[2];

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "topic doesn't exist for ");
        msg[1] = r->name;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the tag is "<registration>:<schema version>" */

    p = (u_char *) reply->str;
    last = p + reply->len;
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
    ngx_http_loom_session_t  *s;

    s = r->session;

    t = ngx_http_loom_topic_get(s->worker, &r->name);
    if (t == NULL) {
        ngx_str_set(&msg[0], "out of memory");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    sub = ngx_http_loom_topic_find(s, t);

    if (sub) {
        /* subscribing twice is fine: one delivery per message still */
        ngx_http_loom_topic_registration(sub, &r->payload);
        ngx_http_loom_topic_check(t);
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    if (s->nsubscriptions >= s->conf->max_subscriptions) {
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

    rc = ngx_http_loom_topic_subscribe(t, s, r, &r->payload);

    switch (rc) {

    case NGX_OK:
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;

    case NGX_AGAIN:
        /* ngx_http_loom_protocol_subscribed() goes on */
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


/* unsubscribe and unsubscribeAll */

void
ngx_http_loom_unsubscribe(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    if (ngx_http_loom_unsubscribe_park(r)) {
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
    sub = t ? ngx_http_loom_topic_find(s, t) : NULL;

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

void
ngx_http_loom_unsubscribe_run(ngx_http_loom_request_t *r)
{
    if (r->action == NGX_HTTP_LOOM_UNSUBSCRIBE) {
        ngx_http_loom_unsubscribe_now(r);
        return;
    }

    ngx_http_loom_topic_unsubscribe_all(r->session);
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/*
 * A publish before an unsubscribe may still be on its way to this very
 * session: the unsubscribe waits until every request before it is through
 * (a publish is through once its delivery came here), and the requests
 * after it wait for the unsubscribe.
 */

static ngx_uint_t
ngx_http_loom_unsubscribe_park(ngx_http_loom_request_t *r)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *prev;
    ngx_http_loom_session_t  *s;

    s = r->session;

    for (q = ngx_queue_head(&s->requests);
         q != &r->queue;
         q = ngx_queue_next(q))
    {
        prev = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        if (prev->state != NGX_HTTP_LOOM_REQ_DONE) {
            r->state = NGX_HTTP_LOOM_REQ_PARKED;
            r->barrier = 1;
            s->barriers++;
            return 1;
        }
    }

    return 0;
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

    r = ngx_http_loom_request_create(ctx, len);
    if (r == NULL) {
        json_decref(json);
        return;
    }

    r->data = json;

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

    if (t && t->schema) {

        if (ngx_http_loom_schema_match(t->schema, json) == NGX_OK) {
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

    r->barrier = 1;
    s->barriers++;

    (void) ngx_http_loom_publish_send(r, NULL);
}


static ngx_int_t
ngx_http_loom_publish_send(ngx_http_loom_request_t *r, ngx_str_t *tag)
{
    u_char       offset[NGX_INT_T_LEN], length[NGX_INT_T_LEN];
    size_t       argvlen[7];
    ngx_str_t   *key;
    const char  *argv[7];

    key = &r->key;

    argv[0] = (char *) key->data;
    argvlen[0] = key->len;
    argv[1] = tag ? (char *) tag->data : "";
    argvlen[1] = tag ? tag->len : 0;
    argv[2] = (r->action == NGX_HTTP_LOOM_PUBLISH) ? "1" : "0";
    argvlen[2] = 1;
    argv[3] = (char *) r->payload.data;
    argvlen[3] = r->payload.len;
    argv[4] = (char *) offset;
    argvlen[4] = ngx_sprintf(offset, "%uz", r->data_offset + 1) - offset;
    argv[5] = (char *) length;
    argvlen[5] = ngx_sprintf(length, "%uz", r->data_len) - length;

    /* the channel is the key with ":msg" */
    argv[6] = (char *) key->data;
    argvlen[6] = key->len + 4;

    /* sendWithoutSave keeps nothing: no loom_redis_wait for it */
    r->call.ephemeral = (r->action == NGX_HTTP_LOOM_SEND);

    return ngx_http_loom_request_send(r, ngx_http_loom_publish_reply,
                                      NGX_HTTP_LOOM_SCRIPT_PUBLISH, 1,
                                      7, argv, argvlen);
}


static void
ngx_http_loom_publish_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    json_t                   *schema;
    ngx_str_t                 msg[2], tag;
    json_error_t              jerr;
    ngx_http_loom_frame_t    *ack;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_worker_t   *w;
    ngx_http_loom_session_t  *s;

    s = r->session;

    w = s->worker;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {

        /* stored (for publish) and on its way to every subscriber */

        if (w->stats) {
            if (r->action == NGX_HTTP_LOOM_PUBLISH) {
                w->stats->publishes++;

            } else {
                w->stats->sends++;
            }
        }

        ack = ngx_http_loom_ack(r, NULL);
        r->response = ack;

        t = ngx_http_loom_topic_lookup(w, &r->name);

        /*
         * a subscribed publisher sees its delivery before its ack, and
         * before the answers to what it sent later
         */

        if (t && ngx_http_loom_topic_hold(t, s, r, (uint64_t) reply->integer))
        {
            return;
        }

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

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the schema changed, or was not known here: check against it */

    schema = json_loadb(reply->element[1]->str, reply->element[1]->len,
                        JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);

    if (schema == NULL) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "loom: the stored schema of \"%V\" is not JSON: %s",
                      &r->name, jerr.text);
        ngx_str_set(&msg[0], "storage error: stored schema is not JSON");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    tag.data = (u_char *) reply->element[0]->str;
    tag.len = reply->element[0]->len;

    t = ngx_http_loom_topic_get(w, &r->name);

    if (t) {
        (void) ngx_http_loom_topic_set_schema(t, &tag, schema);
    }

    if (ngx_http_loom_schema_match(schema, r->data) != NGX_OK) {
        json_decref(schema);

        if (t) {
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg[0], "schema doesn't match topics current schema");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, msg, 1);
        return;
    }

    json_decref(schema);

    if (++r->attempts >= NGX_HTTP_LOOM_PUBLISH_TRIES) {

        if (t) {
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg[0], "storage error: the schema kept changing, "
                             "try again");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    (void) ngx_http_loom_publish_send(r, t ? &t->tag : &tag);

    if (t) {
        ngx_http_loom_topic_check(t);
    }

    /* sent with the right tag: what comes after may go behind it */
    ngx_http_loom_request_unbarrier(r);

    if (s->barriers == 0) {
        ngx_http_loom_protocol_run_deferred(s);
    }
}


/* get */

void
ngx_http_loom_get(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
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


/* registerTopic */

void
ngx_http_loom_register(ngx_http_loom_ctx_t *ctx)
{
    u_char                    id[NGX_HTTP_LOOM_ID_LEN];
    ngx_str_t                 registration;
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_schema_request(ctx);
    if (r == NULL) {
        return;
    }

    /* a new id tells this registration from earlier ones of the name */

    ngx_http_loom_random_id(ctx->worker, id);
    registration.data = id;
    registration.len = NGX_HTTP_LOOM_ID_LEN;

    (void) ngx_http_loom_topic_script(r, ngx_http_loom_register_reply,
                                      NGX_HTTP_LOOM_SCRIPT_REGISTER,
                                      &r->payload, &registration);
}


static void
ngx_http_loom_register_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    json_t                   *existing, *proposed;
    ngx_int_t                 rc;
    ngx_str_t                 msg;
    json_error_t              jerr;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (reply->element[0]->integer == 1) {
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r,
                                             &ngx_http_loom_empty_object));
        return;
    }

    /* the topic exists: fine if the schema is the same */

    rc = NGX_DECLINED;

    if (reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        existing = json_loadb(reply->element[1]->str,
                              reply->element[1]->len,
                              JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);
        proposed = json_loadb((char *) r->payload.data, r->payload.len,
                              JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);

        if (existing && proposed) {
            rc = ngx_http_loom_schema_same(existing, proposed);
        }

        json_decref(existing);
        json_decref(proposed);
    }

    if (rc == NGX_OK) {
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r,
                                             &ngx_http_loom_empty_object));
        return;
    }

    ngx_str_set(&msg, "cannot register topic, topic already exists with "
                      "different schema. Try updating schema");
    ngx_http_loom_request_error(r, 500, &msg, 1);
}


/* unregisterTopic */

void
ngx_http_loom_unregister(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                 channel, *control;
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    /* the key is followed by ":msg" in memory: the channel */

    channel.data = r->key.data;
    channel.len = r->key.len + 4;

    control = ngx_http_loom_store_control(ctx->worker->store);

    (void) ngx_http_loom_topic_script(r, ngx_http_loom_unregister_reply,
                                      NGX_HTTP_LOOM_SCRIPT_UNREGISTER,
                                      &channel, control);
}


static void
ngx_http_loom_unregister_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    ngx_str_t                 msg[2];

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (reply->integer == 0) {
        ngx_str_set(&msg[0], "cannot unregister topic. "
                             "topic doesn't exist with name: ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/* listTopics */

void
ngx_http_loom_list(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                *index;
    const char               *argv[2];
    size_t                    argvlen[2];
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    index = ngx_http_loom_store_index(ctx->worker->store);

    argv[0] = "HGETALL";
    argvlen[0] = 7;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;

    (void) ngx_http_loom_request_send(r, ngx_http_loom_list_reply,
                                      NGX_HTTP_LOOM_COMMAND, 0,
                                      2, argv, argvlen);
}


static int ngx_libc_cdecl
ngx_http_loom_list_cmp(const void *one, const void *two)
{
    redisReply  *a, *b;

    /* pairs of (name, value): by name */

    a = ((redisReply **) one)[0];
    b = ((redisReply **) two)[0];

    return ngx_memn2cmp((u_char *) a->str, (u_char *) b->str, a->len, b->len);
}


static void
ngx_http_loom_list_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    u_char                   *p;
    size_t                    len, i, n;
    ngx_str_t                 data, msg;
    redisReply              **pairs, *name, *value;
    ngx_http_loom_session_t  *s;

    s = r->session;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 2)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    n = reply->elements / 2;

    if (n == 0) {
        /* as the original: null, not [] */
        ngx_http_loom_request_finish(r, ngx_http_loom_response(r, 200, NULL,
                                                    0, &ngx_http_loom_null));
        return;
    }

    /* [{"name":"<name>","schema":{"version":v,"schema":{...}}},...] */

    len = 2;

    for (i = 0; i < reply->elements; i += 2) {
        name = reply->element[i];
        value = reply->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING)
        {
            ngx_http_loom_request_fail(r, NULL);
            return;
        }

        len += sizeof("{\"name\":\"\",\"schema\":},") - 1 + value->len
               + ngx_http_loom_json_escape_len((u_char *) name->str,
                                               name->len);
    }

    pairs = ngx_alloc(reply->elements * sizeof(redisReply *),
                      s->connection->log);
    data.data = ngx_alloc(len, s->connection->log);

    if (pairs == NULL || data.data == NULL) {
        if (pairs) {
            ngx_free(pairs);
        }

        if (data.data) {
            ngx_free(data.data);
        }

        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return;
    }

    ngx_memcpy(pairs, reply->element, reply->elements * sizeof(redisReply *));

    /* sorted by name: the original's order was random */
    ngx_qsort(pairs, n, 2 * sizeof(redisReply *), ngx_http_loom_list_cmp);

    p = data.data;
    *p++ = '[';

    for (i = 0; i < n; i++) {
        name = pairs[2 * i];
        value = pairs[2 * i + 1];

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"name\":\"", 9);
        p = ngx_http_loom_json_escape(p, (u_char *) name->str, name->len);
        p = ngx_cpymem(p, "\",\"schema\":", 11);
        p = ngx_cpymem(p, value->str, value->len);
        *p++ = '}';
    }

    *p++ = ']';
    data.len = p - data.data;

    ngx_free(pairs);

    ngx_http_loom_request_finish(r, ngx_http_loom_response(r, 200, NULL, 0,
                                                           &data));
    ngx_free(data.data);
}


/* updateSchema */

void
ngx_http_loom_update(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                *control;
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_schema_request(ctx);
    if (r == NULL) {
        return;
    }

    control = ngx_http_loom_store_control(ctx->worker->store);

    (void) ngx_http_loom_topic_script(r, ngx_http_loom_update_reply,
                                      NGX_HTTP_LOOM_SCRIPT_UPDATE,
                                      &r->payload, control);
}


static void
ngx_http_loom_update_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    ngx_str_t                 msg[3];
    ngx_http_loom_topic_t    *t;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "cannot update schema for topic ");
        msg[1] = r->name;
        ngx_str_set(&msg[2], ". Topic doesn't exist");
        ngx_http_loom_request_error(r, 500, msg, 3);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the control channel tells the other workers */

    t = ngx_http_loom_topic_lookup(r->session->worker, &r->name);

    if (t) {
        ngx_http_loom_topic_drop_schema(t);
        ngx_http_loom_topic_check(t);
    }

    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/* registerTopic and updateSchema: the data is the schema */

static ngx_http_loom_request_t *
ngx_http_loom_schema_request(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                 msg, *data;
    ngx_http_loom_request_t  *r;

    data = &ctx->env.data.raw;

    if (ctx->env.data.type != NGX_HTTP_LOOM_JSON_OBJECT) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return NULL;
    }

    r = ngx_http_loom_request_create(ctx, data->len);
    if (r == NULL) {
        return NULL;
    }

    ngx_memcpy(r->payload.data, data->data, data->len);
    r->payload.len = data->len;

    return r;
}


/* the register, update and unregister scripts: KEYS topic, index */

static ngx_int_t
ngx_http_loom_topic_script(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, ngx_str_t *arg1,
    ngx_str_t *arg2)
{
    size_t       argvlen[5];
    ngx_str_t   *index;
    const char  *argv[5];

    index = ngx_http_loom_store_index(r->session->worker->store);

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;
    argv[2] = (char *) r->name.data;
    argvlen[2] = r->name.len;
    argv[3] = (char *) arg1->data;
    argvlen[3] = arg1->len;
    argv[4] = (char *) arg2->data;
    argvlen[4] = arg2->len;

    return ngx_http_loom_request_send(r, reply, script, 2, 5, argv,
                                      argvlen);
}


/* a command on the topic's hash: HGET, HEXISTS, HMGET */

static ngx_int_t
ngx_http_loom_hash_command(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, char *command, char *field, char *field2)
{
    int          argc;
    size_t       argvlen[4];
    const char  *argv[4];

    argv[0] = command;
    argvlen[0] = ngx_strlen(command);
    argv[1] = (char *) r->key.data;
    argvlen[1] = r->key.len;
    argv[2] = field;
    argvlen[2] = ngx_strlen(field);
    argc = 3;

    if (field2) {
        argv[3] = field2;
        argvlen[3] = ngx_strlen(field2);
        argc = 4;
    }

    return ngx_http_loom_request_send(r, reply, NGX_HTTP_LOOM_COMMAND, 0,
                                      argc, argv, argvlen);
}
