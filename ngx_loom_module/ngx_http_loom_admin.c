/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_topic.h"


/*
 * registerTopic, updateSchema, unregisterTopic and listTopics: the
 * administration of topics, each answered when Redis has replied.
 */


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

static ngx_str_t  ngx_http_loom_null = ngx_string("null");
static ngx_str_t  ngx_http_loom_empty_object = ngx_string("{}");


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
