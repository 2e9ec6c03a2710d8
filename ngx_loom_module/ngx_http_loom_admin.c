/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_schemas.h"


/*
 * registerTopic, updateSchema and unregisterTopic: the administration of
 * topics, each answered when Redis has replied (listTopics is
 * ngx_http_loom_list.c).
 */


/* updateSchema checks again when the version moved meanwhile */
#define NGX_HTTP_LOOM_UPDATE_TRIES     3


static void ngx_http_loom_register_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_unregister_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_update_fetch(ngx_http_loom_request_t *r);
static void ngx_http_loom_update_checked(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_update_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_http_loom_request_t *ngx_http_loom_admin_request(
    ngx_http_loom_ctx_t *ctx, size_t len);
static ngx_http_loom_request_t *ngx_http_loom_schema_request(
    ngx_http_loom_ctx_t *ctx);
static size_t ngx_http_loom_admin_setting(u_char *buf, ngx_int_t v);
static ngx_int_t ngx_http_loom_topic_script(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, ngx_str_t *arg1,
    ngx_str_t *arg2, ngx_str_t *tail, ngx_uint_t ntail);

#define ngx_http_loom_admin_retention(r)                                     \
    ((ngx_http_loom_retention_t *)                                           \
         ngx_align_ptr((r)->payload.data + (r)->data_len, NGX_ALIGNMENT))

#define ngx_http_loom_admin_opts(r)                                          \
    ((ngx_http_loom_schema_opts_t *) (ngx_http_loom_admin_retention(r) + 1))

#define ngx_http_loom_admin_stream(r)                                        \
    ((u_char *) (ngx_http_loom_admin_opts(r) + 1))


static ngx_str_t  ngx_http_loom_empty_object = ngx_string("{}");


/* registerTopic */

void
ngx_http_loom_register(ngx_http_loom_ctx_t *ctx)
{
    u_char                        id[NGX_HTTP_LOOM_ID_LEN];
    ngx_str_t                     registration, tail[2];
    ngx_http_loom_request_t      *r;
    ngx_http_loom_schema_opts_t  *o;

    r = ngx_http_loom_schema_request(ctx);
    if (r == NULL) {
        return;
    }

    /* the schema's kind and the compatibility mode */

    o = ngx_http_loom_admin_opts(r);

    tail[0] = *ngx_http_loom_schemas_kind_name(o->kind, o->flags);
    ngx_str_null(&tail[1]);

    if (o->mode != NGX_HTTP_LOOM_COMPAT_UNSET
        && o->mode != NGX_HTTP_LOOM_COMPAT_NONE)
    {
        tail[1] = *ngx_http_loom_schemas_mode_name(o->mode);
    }

    /* a new id tells this registration from earlier ones of the name */

    ngx_http_loom_random_id(ctx->worker, id);
    registration.data = id;
    registration.len = NGX_HTTP_LOOM_ID_LEN;

    (void) ngx_http_loom_topic_script(r, ngx_http_loom_register_reply,
                                      NGX_HTTP_LOOM_SCRIPT_REGISTER,
                                      &r->payload, &registration, tail, 2);
}


static void
ngx_http_loom_register_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    ngx_int_t                 rc;
    ngx_str_t                 msg, kind, existing;

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

    if (reply->elements == 3
        && reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        existing.data = (u_char *) reply->element[1]->str;
        existing.len = reply->element[1]->len;
        kind.data = (u_char *) reply->element[2]->str;
        kind.len = reply->element[2]->len;

        rc = ngx_http_loom_schemas_same(&kind, &existing,
                                        ngx_http_loom_admin_opts(r),
                                        &r->payload);
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

    r = ngx_http_loom_admin_request(ctx, 0);
    if (r == NULL) {
        return;
    }

    /* the key is followed by ":msg" in memory: the channel */

    channel.data = r->key.data;
    channel.len = r->key.len + 4;

    control = ngx_http_loom_store_control(ctx->worker->store);

    (void) ngx_http_loom_topic_script(r, ngx_http_loom_unregister_reply,
                                      NGX_HTTP_LOOM_SCRIPT_UNREGISTER,
                                      &channel, control, NULL, 0);
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


/*
 * updateSchema: the versions kept are read, the change is checked against
 * them in the topic's compatibility mode, and the update script makes it
 * only if the version is still the one checked against; if it moved, the
 * check is made again.  The requests behind it wait meanwhile.
 */

void
ngx_http_loom_update(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_schema_request(ctx);
    if (r == NULL) {
        return;
    }

    ngx_http_loom_request_barrier(r);

    ngx_http_loom_update_fetch(r);
}


static void
ngx_http_loom_update_fetch(ngx_http_loom_request_t *r)
{
    size_t       argvlen[2];
    const char  *argv[2];

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;
    argv[1] = "*";
    argvlen[1] = 1;

    (void) ngx_http_loom_request_send(r, ngx_http_loom_update_checked,
                                      NGX_HTTP_LOOM_SCRIPT_GETSCHEMA, 1,
                                      2, argv, argvlen);
}


static void
ngx_http_loom_update_checked(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    u_char                          version[NGX_INT64_LEN];
    u_char                          keep[NGX_INT_T_LEN];
    ngx_str_t                       msg[3], *control, tail[4];
    ngx_http_loom_schema_opts_t    *o;
    ngx_http_loom_schema_checked_t  c;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "cannot update schema for topic ");
        msg[1] = r->name;
        ngx_str_set(&msg[2], ". Topic doesn't exist");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 3);
        return;
    }

    if (reply == NULL) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    o = ngx_http_loom_admin_opts(r);

    if (ngx_http_loom_schemas_check(r, reply, o, &c) != NGX_OK) {
        return;
    }

    /* the version checked, the kind, the mode, the versions kept */

    /*
     * without a mode nothing was checked, so a change that came first
     * does not matter: the version is not compared (as before modes)
     */

    tail[0].data = version;
    tail[0].len = (c.mode == NGX_HTTP_LOOM_COMPAT_NONE)
                  ? 0 : ngx_sprintf(version, "%L", c.version) - version;
    tail[1] = *ngx_http_loom_schemas_kind_name(o->kind, o->flags);
    tail[2] = *ngx_http_loom_schemas_mode_name(c.mode);
    tail[3].data = keep;
    tail[3].len = ngx_sprintf(keep, "%ui",
                              r->session->worker->conf->schema_versions)
                  - keep;

    control = ngx_http_loom_store_control(r->session->worker->store);

    (void) ngx_http_loom_topic_script(r, ngx_http_loom_update_reply,
                                      NGX_HTTP_LOOM_SCRIPT_UPDATE,
                                      &r->payload, control, tail, 4);
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
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 3);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (reply->integer == -2) {

        /* another change came first: checked again against it */

        if (++r->attempts < NGX_HTTP_LOOM_UPDATE_TRIES) {
            ngx_http_loom_update_fetch(r);
            return;
        }

        ngx_str_set(&msg[0], "storage error: the schema kept changing, "
                             "try again");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    ngx_http_loom_request_unbarrier(r);

    if (reply->integer < 0) {
        ngx_str_set(&msg[0], "the storage of a topic cannot change: "
                             "unregister it and register it again");
        ngx_http_loom_request_error(r, 400, msg, 1);
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
    u_char                       errbuf[NGX_HTTP_LOOM_REV_ERRLEN];
    ngx_str_t                    msg, *data;
    ngx_http_loom_request_t     *r;
    ngx_http_loom_retention_t    rt;
    ngx_http_loom_schema_opts_t  o;

    data = &ctx->env.data.raw;

    if (ctx->env.data.type != NGX_HTTP_LOOM_JSON_OBJECT) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return NULL;
    }

    /* "retention" and "storage" (docs/protocol.md section 15.4) */

    msg.data = errbuf;

    if (ngx_http_loom_rev_retention(&ctx->env.retention, &ctx->env.storage,
                                    ctx->worker->conf->history_limit, &rt,
                                    &msg)
        != NGX_OK)
    {
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return NULL;
    }

    /* "schemaType" and "compatibility" (docs/schemas.md section 12) */

    if (ngx_http_loom_schemas_options(ctx, &o) != NGX_OK) {
        return NULL;
    }

    /* the schema, the retention, room for the stream's key */

    r = ngx_http_loom_admin_request(ctx, data->len);
    if (r == NULL) {
        return NULL;
    }

    ngx_memcpy(r->payload.data, data->data, data->len);
    r->payload.len = data->len;
    *ngx_http_loom_admin_retention(r) = rt;
    *ngx_http_loom_admin_opts(r) = o;

    return r;
}


/*
 * A request of this file: payload (of len bytes), then, aligned, the
 * retention asked for and room for the history stream's key
 */

static ngx_http_loom_request_t *
ngx_http_loom_admin_request(ngx_http_loom_ctx_t *ctx, size_t len)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, len + NGX_ALIGNMENT
                                     + sizeof(ngx_http_loom_retention_t)
                                     + sizeof(ngx_http_loom_schema_opts_t)
                                     + ngx_http_loom_store_prefix(
                                           ctx->worker->store)->len
                                     + ctx->env.topic_str.len
                                     + sizeof("{t:}:h") - 1);
    if (r == NULL) {
        return NULL;
    }

    r->data_len = len;
    ngx_http_loom_admin_retention(r)->history = NGX_HTTP_LOOM_REV_UNSET;
    ngx_http_loom_admin_retention(r)->max_age = NGX_HTTP_LOOM_REV_UNSET;
    ngx_http_loom_admin_retention(r)->memory = 0;
    ngx_http_loom_admin_opts(r)->kind = NGX_HTTP_LOOM_SCHEMA_KEYS;
    ngx_http_loom_admin_opts(r)->flags = 0;
    ngx_http_loom_admin_opts(r)->mode = NGX_HTTP_LOOM_COMPAT_UNSET;

    return r;
}


/* the register, update and unregister scripts: KEYS topic, index */

static ngx_int_t
ngx_http_loom_topic_script(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, ngx_str_t *arg1,
    ngx_str_t *arg2, ngx_str_t *tail, ngx_uint_t ntail)
{
    u_char                     *p, *stream, hn[NGX_INT_T_LEN];
    u_char                      ha[NGX_INT_T_LEN];
    size_t                      argvlen[13];
    ngx_str_t                  *index;
    ngx_uint_t                  i;
    const char                 *argv[13];
    ngx_http_loom_retention_t  *rt;

    index = ngx_http_loom_store_index(r->session->worker->store);

    /* the keys: the topic's hash, the index, the topic's history stream */

    stream = ngx_http_loom_admin_stream(r);
    p = ngx_cpymem(stream, r->key.data, r->key.len);
    p = ngx_cpymem(p, ":h", 2);

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;

    if (ngx_http_loom_store_clustered(r->session->worker->store)) {
        /* the topic's hash is its own index entry: one slot */
        argv[1] = argv[0];
        argvlen[1] = argvlen[0];
    }

    argv[2] = (char *) stream;
    argvlen[2] = p - stream;
    argv[3] = (char *) r->name.data;
    argvlen[3] = r->name.len;
    argv[4] = (char *) arg1->data;
    argvlen[4] = arg1->len;
    argv[5] = (char *) arg2->data;
    argvlen[5] = arg2->len;

    if (script == NGX_HTTP_LOOM_SCRIPT_UNREGISTER) {
        return ngx_http_loom_request_send(r, reply, script, 3, 6, argv,
                                          argvlen);
    }

    /* the retention asked for: "" not asked, "-" back to the default */

    rt = ngx_http_loom_admin_retention(r);

    argv[6] = (char *) hn;
    argvlen[6] = ngx_http_loom_admin_setting(hn, rt->history);
    argv[7] = (char *) ha;
    argvlen[7] = ngx_http_loom_admin_setting(ha, rt->max_age);
    argv[8] = rt->memory == 2 ? "memory" : (rt->memory == 1 ? "redis" : "");
    argvlen[8] = ngx_strlen(argv[8]);

    /* what the script takes after these: the schema's (section 12) */

    for (i = 0; i < ntail && i < 4; i++) {
        argv[9 + i] = tail[i].len ? (char *) tail[i].data : "";
        argvlen[9 + i] = tail[i].len;
    }

    return ngx_http_loom_request_send(r, reply, script, 3, 9 + i, argv,
                                      argvlen);
}


static size_t
ngx_http_loom_admin_setting(u_char *buf, ngx_int_t v)
{
    if (v == NGX_HTTP_LOOM_REV_UNSET) {
        return 0;
    }

    if (v == NGX_HTTP_LOOM_REV_DEFAULT) {
        buf[0] = '-';
        return 1;
    }

    return ngx_sprintf(buf, "%i", v) - buf;
}
