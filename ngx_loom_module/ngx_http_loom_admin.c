/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_topic.h"


/*
 * registerTopic, updateSchema, unregisterTopic and listTopics: the
 * administration of topics, each answered when Redis has replied.
 */


/* topics per listTopics answer, about (HSCAN's COUNT is a hint) */
#define NGX_HTTP_LOOM_LIST_MAX         1000
#define NGX_HTTP_LOOM_LIST_PATTERN     512


static void ngx_http_loom_register_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_unregister_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_loom_list_send(ngx_http_loom_request_t *r);
static void ngx_http_loom_list_cleanup(ngx_http_loom_request_t *r);
static void ngx_http_loom_list_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static int ngx_libc_cdecl ngx_http_loom_list_cmp(const void *one,
    const void *two);
static void ngx_http_loom_list_answer(ngx_http_loom_request_t *r);
static void ngx_http_loom_update_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static ngx_http_loom_request_t *ngx_http_loom_admin_request(
    ngx_http_loom_ctx_t *ctx, size_t len);
static ngx_http_loom_request_t *ngx_http_loom_schema_request(
    ngx_http_loom_ctx_t *ctx);
static size_t ngx_http_loom_admin_setting(u_char *buf, ngx_int_t v);
static ngx_int_t ngx_http_loom_topic_script(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, ngx_str_t *arg1,
    ngx_str_t *arg2);

#define ngx_http_loom_admin_retention(r)                                     \
    ((ngx_http_loom_retention_t *)                                           \
         ngx_align_ptr((r)->payload.data + (r)->data_len, NGX_ALIGNMENT))

#define ngx_http_loom_admin_stream(r)                                        \
    ((u_char *) (ngx_http_loom_admin_retention(r) + 1))


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


/*
 * listTopics: the index is read with HSCAN, up to about
 * NGX_HTTP_LOOM_LIST_MAX topics per answer.  An index that fits in one
 * answer is answered as before, whole and sorted; a longer one comes in
 * pages, each sorted, with "cursor" for the next one.
 */


typedef struct ngx_http_loom_list_block_s  ngx_http_loom_list_block_t;

/* the entries of one HSCAN reply, copied: the reply goes after its call */
struct ngx_http_loom_list_block_s {
    ngx_http_loom_list_block_t     *next;
    ngx_uint_t                      n;
    ngx_str_t                       entries[1];  /* name, value, ... */
};


typedef struct {
    ngx_http_loom_list_block_t     *blocks;
    ngx_uint_t                      n;
    size_t                          len;         /* of the answer's data */
    size_t                          cursor_len;
    u_char                          cursor[NGX_INT64_LEN];
} ngx_http_loom_list_t;


void
ngx_http_loom_list(ngx_http_loom_ctx_t *ctx)
{
    u_char                   *p, *last;
    json_t                   *data, *cursor;
    ngx_str_t                 msg, c;
    json_error_t              jerr;
    ngx_http_loom_list_t     *l;
    ngx_http_loom_request_t  *r;

    /* {"cursor":"<digits>"} in data asks for a page after the first */

    ngx_str_set(&c, "0");
    data = NULL;

    if (ctx->env.data.type == NGX_HTTP_LOOM_JSON_OBJECT) {
        data = json_loadb((char *) ctx->env.data.raw.data,
                          ctx->env.data.raw.len, JSON_ALLOW_NUL, &jerr);
    }

    cursor = data ? json_object_get(data, "cursor") : NULL;

    if (cursor) {
        p = (u_char *) json_string_value(cursor);
        last = p ? p + json_string_length(cursor) : NULL;

        if (p == NULL || p == last
            || (size_t) (last - p) > NGX_INT64_LEN - 1)
        {
            p = NULL;

        } else {
            c.data = p;
            c.len = last - p;

            for ( /* void */ ; p < last; p++) {
                if (*p < '0' || *p > '9') {
                    p = NULL;
                    break;
                }
            }
        }

        if (p == NULL) {
            json_decref(data);
            ngx_str_set(&msg, "cursor must be a string of digits");
            ngx_http_loom_answer_error(ctx, 400, &msg, 1);
            return;
        }
    }

    r = ngx_http_loom_request_create(ctx, sizeof(ngx_http_loom_list_t));
    if (r == NULL) {
        json_decref(data);
        return;
    }

    l = (ngx_http_loom_list_t *) r->payload.data;
    ngx_memzero(l, sizeof(ngx_http_loom_list_t));
    l->cursor_len = c.len;
    ngx_memcpy(l->cursor, c.data, c.len);

    json_decref(data);

    r->cleanup = ngx_http_loom_list_cleanup;

    (void) ngx_http_loom_list_send(r);
}


static ngx_int_t
ngx_http_loom_list_send(ngx_http_loom_request_t *r)
{
    u_char                 count[NGX_INT_T_LEN], skip[NGX_INT_T_LEN], *p;
    u_char                 pattern[NGX_HTTP_LOOM_LIST_PATTERN];
    ngx_str_t             *index, *prefix, msg;
    ngx_uint_t             i;
    const char            *argv[5];
    size_t                 argvlen[5];
    ngx_http_loom_store_t *store;
    ngx_http_loom_list_t  *l;

    l = (ngx_http_loom_list_t *) r->payload.data;
    store = r->session->worker->store;
    index = ngx_http_loom_store_index(store);

    argv[0] = "HSCAN";
    argvlen[0] = 5;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;
    argv[2] = (char *) l->cursor;
    argvlen[2] = l->cursor_len;
    argv[3] = "COUNT";
    argvlen[3] = 5;
    argv[4] = (char *) count;
    argvlen[4] = ngx_sprintf(count, "%ui", NGX_HTTP_LOOM_LIST_MAX - l->n)
                 - count;

    if (!ngx_http_loom_store_clustered(store)) {
        return ngx_http_loom_request_send(r, ngx_http_loom_list_reply,
                                          NGX_HTTP_LOOM_COMMAND, 0,
                                          5, argv, argvlen);
    }

    /*
     * In a cluster, every master's topic hashes are walked with SCAN
     * (lua/list.lua); the cursor names the master
     */

    prefix = ngx_http_loom_store_prefix(store);

    if (2 * prefix->len + sizeof("{t:*}") > NGX_HTTP_LOOM_LIST_PATTERN) {
        ngx_str_set(&msg, "storage error: the key prefix is too long");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return NGX_ERROR;
    }

    p = pattern;

    for (i = 0; i < prefix->len; i++) {
        if (ngx_strchr("*?[]\\", prefix->data[i])) {
            *p++ = '\\';
        }

        *p++ = prefix->data[i];
    }

    p = ngx_cpymem(p, "{t:*}", 5);

    argv[0] = (char *) l->cursor;
    argvlen[0] = l->cursor_len;
    argv[1] = (char *) count;
    argvlen[1] = argvlen[4];
    argv[2] = (char *) pattern;
    argvlen[2] = p - pattern;
    argv[3] = (char *) skip;
    argvlen[3] = ngx_sprintf(skip, "%uz", prefix->len + 3) - skip;

    return ngx_http_loom_request_send(r, ngx_http_loom_list_reply,
                                      NGX_HTTP_LOOM_SCRIPT_LIST, 0,
                                      4, argv, argvlen);
}


static void
ngx_http_loom_list_cleanup(ngx_http_loom_request_t *r)
{
    ngx_http_loom_list_t        *l;
    ngx_http_loom_list_block_t  *b;

    l = (ngx_http_loom_list_t *) r->payload.data;

    while (l->blocks) {
        b = l->blocks;
        l->blocks = b->next;
        ngx_free(b);
    }
}


static void
ngx_http_loom_list_reply(ngx_http_loom_request_t *r, redisReply *reply)
{
    u_char                      *p;
    size_t                       len, i;
    ngx_str_t                    msg;
    redisReply                  *cursor, *items, *e;
    ngx_http_loom_list_t        *l;
    ngx_http_loom_list_block_t  *b;

    l = (ngx_http_loom_list_t *) r->payload.data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len == 0
        || reply->element[0]->len > NGX_INT64_LEN - 1
        || reply->element[1]->type != REDIS_REPLY_ARRAY
        || reply->element[1]->elements % 2)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    cursor = reply->element[0];
    items = reply->element[1];

    len = 0;

    for (i = 0; i < items->elements; i++) {
        e = items->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            ngx_http_loom_request_fail(r, NULL);
            return;
        }

        len += e->len;
    }

    if (items->elements) {
        b = ngx_alloc(sizeof(ngx_http_loom_list_block_t)
                      + items->elements * sizeof(ngx_str_t) + len,
                      r->session->connection->log);
        if (b == NULL) {
            ngx_str_set(&msg, "out of memory");
            ngx_http_loom_request_error(r, 500, &msg, 1);
            return;
        }

        b->n = items->elements / 2;
        p = (u_char *) &b->entries[items->elements];

        for (i = 0; i < items->elements; i++) {
            e = items->element[i];
            b->entries[i].data = p;
            b->entries[i].len = e->len;
            p = ngx_cpymem(p, e->str, e->len);
        }

        b->next = l->blocks;
        l->blocks = b;
        l->n += b->n;
    }

    l->cursor_len = cursor->len;
    ngx_memcpy(l->cursor, cursor->str, cursor->len);

    if (l->n < NGX_HTTP_LOOM_LIST_MAX
        && !(cursor->len == 1 && cursor->str[0] == '0'))
    {
        /* more of the index, up to the page's size: r may be gone after */
        (void) ngx_http_loom_list_send(r);
        return;
    }

    ngx_http_loom_list_answer(r);
}


static int ngx_libc_cdecl
ngx_http_loom_list_cmp(const void *one, const void *two)
{
    ngx_str_t  *a, *b;

    /* pairs of (name, value): by name */

    a = *(ngx_str_t **) one;
    b = *(ngx_str_t **) two;

    return ngx_memn2cmp(a->data, b->data, a->len, b->len);
}


static void
ngx_http_loom_list_answer(ngx_http_loom_request_t *r)
{
    u_char                      *p;
    size_t                       len, i, k, n;
    ngx_str_t                    data, msg, more, *name, *value, **pairs;
    ngx_http_loom_list_t        *l;
    ngx_http_loom_list_block_t  *b;

    l = (ngx_http_loom_list_t *) r->payload.data;

    ngx_str_null(&more);

    if (!(l->cursor_len == 1 && l->cursor[0] == '0')) {
        more.data = l->cursor;
        more.len = l->cursor_len;
    }

    if (l->n == 0) {
        /* as the original: null, not [] */
        ngx_http_loom_request_finish(r, ngx_http_loom_response_more(r,
                                                    &ngx_http_loom_null,
                                                    &more));
        return;
    }

    pairs = ngx_alloc(l->n * sizeof(ngx_str_t *),
                      r->session->connection->log);
    if (pairs == NULL) {
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return;
    }

    n = 0;

    for (b = l->blocks; b; b = b->next) {
        for (i = 0; i < b->n; i++) {
            pairs[n++] = &b->entries[2 * i];
        }
    }

    /* sorted by name: the original's order was random */
    ngx_qsort(pairs, n, sizeof(ngx_str_t *), ngx_http_loom_list_cmp);

    /* [{"name":"<name>","schema":{"version":v,"schema":{...}}},...] */

    len = 2;
    k = 0;

    for (i = 0; i < n; i++) {

        /* a scan may return an entry twice */

        if (k && ngx_memn2cmp(pairs[k - 1]->data, pairs[i]->data,
                              pairs[k - 1]->len, pairs[i]->len) == 0)
        {
            continue;
        }

        /* only the topics the credential may see */

        if (ngx_http_loom_access_visible(r->session, pairs[i]) != NGX_OK) {
            continue;
        }

        pairs[k++] = pairs[i];

        name = pairs[i];
        value = pairs[i] + 1;

        len += sizeof("{\"name\":\"\",\"schema\":},") - 1 + value->len
               + ngx_http_loom_json_escape_len(name->data, name->len);
    }

    if (k == 0) {
        ngx_free(pairs);
        ngx_http_loom_request_finish(r, ngx_http_loom_response_more(r,
                                                    &ngx_http_loom_null,
                                                    &more));
        return;
    }

    data.data = ngx_alloc(len, r->session->connection->log);
    if (data.data == NULL) {
        ngx_free(pairs);
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return;
    }

    p = data.data;
    *p++ = '[';

    for (i = 0; i < k; i++) {
        name = pairs[i];
        value = pairs[i] + 1;

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"name\":\"", 9);
        p = ngx_http_loom_json_escape(p, name->data, name->len);
        p = ngx_cpymem(p, "\",\"schema\":", 11);
        p = ngx_cpymem(p, value->data, value->len);
        *p++ = '}';
    }

    *p++ = ']';
    data.len = p - data.data;

    ngx_free(pairs);

    ngx_http_loom_request_finish(r, ngx_http_loom_response_more(r, &data,
                                                                &more));
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
    u_char                     errbuf[NGX_HTTP_LOOM_REV_ERRLEN];
    ngx_str_t                  msg, *data;
    ngx_http_loom_request_t   *r;
    ngx_http_loom_retention_t  rt;

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

    /* the schema, the retention, room for the stream's key */

    r = ngx_http_loom_admin_request(ctx, data->len);
    if (r == NULL) {
        return NULL;
    }

    ngx_memcpy(r->payload.data, data->data, data->len);
    r->payload.len = data->len;
    *ngx_http_loom_admin_retention(r) = rt;

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

    return r;
}


/* the register, update and unregister scripts: KEYS topic, index */

static ngx_int_t
ngx_http_loom_topic_script(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, ngx_str_t *arg1,
    ngx_str_t *arg2)
{
    u_char                     *p, *stream, hn[NGX_INT_T_LEN];
    u_char                      ha[NGX_INT_T_LEN];
    size_t                      argvlen[9];
    ngx_str_t                  *index;
    const char                 *argv[9];
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

    return ngx_http_loom_request_send(r, reply, script, 3, 9, argv,
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
