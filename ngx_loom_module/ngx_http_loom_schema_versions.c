/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_schemas.h"
#include "ngx_http_loom_json.h"


/*
 * The versions of a topic's schema: updateSchema's compatibility check
 * against the versions kept, and getSchema.  The versions older than the
 * current one are "s:<version>" and "k:<version>" (schema and kind) in
 * the topic's hash, from version "vl" up (lua/getschema.lua).
 */


#define NGX_HTTP_LOOM_SCHEMAS_VERSION_LEN  18


static ngx_int_t ngx_http_loom_schemas_compare(ngx_http_loom_request_t *r,
    redisReply **v, ngx_http_loom_schema_opts_t *o, json_t *proposed,
    ngx_uint_t mode, ngx_http_loom_jschema_diffs_t *diffs);
static ngx_int_t ngx_http_loom_schemas_diff(
    ngx_http_loom_jschema_diffs_t *diffs, ngx_uint_t from, const char *text);
static void ngx_http_loom_schemas_refuse_change(ngx_http_loom_request_t *r,
    ngx_uint_t mode, ngx_http_loom_jschema_diffs_t *diffs);
static void ngx_http_loom_get_schema_reply(ngx_http_loom_request_t *r,
    redisReply *reply);


/*
 * updateSchema's check.  The reply: {version, lowest kept, mode, then
 * version, kind, schema of each version kept, oldest first}.
 */

ngx_int_t
ngx_http_loom_schemas_check(ngx_http_loom_request_t *r, redisReply *reply,
    ngx_http_loom_schema_opts_t *o, ngx_http_loom_schema_checked_t *c)
{
    size_t                          i, n;
    json_t                         *proposed;
    ngx_int_t                       rc;
    ngx_str_t                       msg;
    ngx_uint_t                      mode;
    redisReply                    **e;
    ngx_http_loom_jschema_diffs_t   diffs;

    e = reply->element;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 6
        || (reply->elements - 3) % 3
        || e[0]->type != REDIS_REPLY_INTEGER
        || e[2]->type != REDIS_REPLY_STRING)
    {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return NGX_DECLINED;
    }

    for (i = 3; i < reply->elements; i += 3) {
        if (e[i]->type != REDIS_REPLY_INTEGER
            || e[i + 1]->type != REDIS_REPLY_STRING
            || e[i + 2]->type != REDIS_REPLY_STRING)
        {
            ngx_http_loom_request_unbarrier(r);
            ngx_http_loom_request_fail(r, reply);
            return NGX_DECLINED;
        }
    }

    c->version = e[0]->integer;
    mode = NGX_HTTP_LOOM_COMPAT_NONE;

    if (e[2]->len) {
        msg.data = (u_char *) e[2]->str;
        msg.len = e[2]->len;

        if (ngx_http_loom_schemas_mode(&msg, &mode) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->session->connection->log, 0,
                          "loom: unknown stored compatibility mode \"%V\" "
                          "of \"%V\"", &msg, &r->name);
            mode = NGX_HTTP_LOOM_COMPAT_NONE;
        }
    }

    /* the mode asked for applies to this very change */

    c->mode = (o->mode != NGX_HTTP_LOOM_COMPAT_UNSET) ? o->mode : mode;

    if (c->mode == NGX_HTTP_LOOM_COMPAT_NONE) {
        return NGX_OK;
    }

    proposed = ngx_http_loom_schemas_parse(r->payload.data, r->payload.len,
                                           o->kind);

    if (proposed == NULL
        || ngx_http_loom_jschema_diffs_init(&diffs,
               r->session->worker->conf->schema_max_errors)
           != NGX_OK)
    {
        json_decref(proposed);
        goto nomem;
    }

    /* the current version, or every one kept */

    n = reply->elements - 3;
    i = (c->mode & NGX_HTTP_LOOM_COMPAT_TRANSITIVE) ? 3 : 3 + n - 3;

    rc = NGX_OK;

    for ( /* void */ ; i < reply->elements; i += 3) {
        rc = ngx_http_loom_schemas_compare(r, &e[i], o, proposed, c->mode,
                                           &diffs);
        if (rc == NGX_ERROR) {
            break;
        }
    }

    json_decref(proposed);

    if (rc == NGX_ERROR) {
        ngx_http_loom_jschema_diffs_free(&diffs);
        goto nomem;
    }

    if (diffs.nelts == 0 && !diffs.truncated) {
        ngx_http_loom_jschema_diffs_free(&diffs);
        return NGX_OK;
    }

    ngx_http_loom_schemas_refuse_change(r, c->mode, &diffs);
    ngx_http_loom_jschema_diffs_free(&diffs);

    return NGX_DECLINED;

nomem:

    ngx_str_set(&msg, "out of memory");
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, &msg, 1);

    return NGX_DECLINED;
}


/* one kept version {version, kind, schema} against the proposed one */

static ngx_int_t
ngx_http_loom_schemas_compare(ngx_http_loom_request_t *r, redisReply **v,
    ngx_http_loom_schema_opts_t *o, json_t *proposed, ngx_uint_t mode,
    ngx_http_loom_jschema_diffs_t *diffs)
{
    char        *reason, *p;
    json_t      *old;
    ngx_int_t    rc;
    ngx_uint_t   i, from, kind, flags, transitive;

    from = diffs->nelts;
    transitive = mode & NGX_HTTP_LOOM_COMPAT_TRANSITIVE;

    if (ngx_http_loom_schemas_kind((u_char *) v[1]->str, v[1]->len, &kind,
                                   &flags)
        != NGX_OK || kind != o->kind)
    {
        rc = ngx_http_loom_schemas_diff(diffs, from,
                 (o->kind == NGX_HTTP_LOOM_SCHEMA_JSON)
                 ? "the schema type changes from keys to json-schema: "
                   "the two cannot be compared"
                 : "the schema type changes from json-schema to keys: "
                   "the two cannot be compared");
        goto version;
    }

    old = ngx_http_loom_schemas_parse((u_char *) v[2]->str, v[2]->len, kind);
    if (old == NULL) {
        rc = ngx_http_loom_schemas_diff(diffs, from, "the stored schema "
                                                     "is not JSON");
        goto version;
    }

    mode &= NGX_HTTP_LOOM_JSCHEMA_FULL;

    if (kind == NGX_HTTP_LOOM_SCHEMA_JSON) {
        rc = ngx_http_loom_jschema_compat(old, proposed, mode, o->flags,
                                          diffs);

    } else {
        rc = ngx_http_loom_schema_compat(old, proposed, mode, diffs);
    }

    json_decref(old);

version:

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (!transitive) {
        return NGX_OK;
    }

    /* the reasons of a transitive check say which version they are of */

    for (i = from; i < diffs->nelts; i++) {
        p = diffs->elts[i].reason;
        reason = malloc(ngx_strlen(p) + sizeof("version : ") - 1
                        + NGX_INT64_LEN + 1);
        if (reason == NULL) {
            return NGX_ERROR;
        }

        *ngx_sprintf((u_char *) reason, "version %L: %s",
                     (int64_t) v[0]->integer, p) = '\0';
        free(p);
        diffs->elts[i].reason = reason;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_schemas_diff(ngx_http_loom_jschema_diffs_t *diffs,
    ngx_uint_t from, const char *text)
{
    ngx_http_loom_jschema_diff_t  *d;

    if (diffs->nelts == diffs->max) {
        diffs->truncated = 1;
        return NGX_DECLINED;
    }

    d = &diffs->elts[diffs->nelts];
    d->path = strdup("");
    d->reason = strdup(text);

    if (d->path == NULL || d->reason == NULL) {
        free(d->path);
        free(d->reason);
        return NGX_ERROR;
    }

    diffs->nelts++;

    return NGX_DECLINED;
}


static void
ngx_http_loom_schemas_refuse_change(ngx_http_loom_request_t *r,
    ngx_uint_t mode, ngx_http_loom_jschema_diffs_t *diffs)
{
    u_char     *p;
    ngx_str_t   msg[3], extra;

    ngx_str_set(&msg[0], "schema change is not ");
    msg[1] = *ngx_http_loom_schemas_mode_name(mode);
    ngx_str_set(&msg[2], " compatible");

    extra.len = sizeof(",\"differences\":") - 1
                + ngx_http_loom_jschema_diffs_json_len(diffs);
    extra.data = ngx_alloc(extra.len, r->session->connection->log);

    ngx_http_loom_request_unbarrier(r);

    if (extra.data == NULL) {
        ngx_http_loom_request_error(r, 409, msg, 3);
        return;
    }

    p = ngx_cpymem(extra.data, ",\"differences\":",
                   sizeof(",\"differences\":") - 1);
    (void) ngx_http_loom_jschema_diffs_json(diffs, p);

    ngx_http_loom_request_finish(r, ngx_http_loom_response_error_extra(r,
                                        409, msg, 3, &extra));
    ngx_free(extra.data);
}


/* getSchema */

void
ngx_http_loom_get_schema(ngx_http_loom_ctx_t *ctx)
{
    u_char                   *p, *last;
    size_t                    argvlen[2];
    ngx_str_t                 msg, *v;
    const char               *argv[2];
    ngx_http_loom_request_t  *r;

    v = &ctx->env.version.raw;

    if (ctx->env.version.type == NGX_HTTP_LOOM_JSON_NUMBER) {
        last = v->data + v->len;

        for (p = v->data; p < last; p++) {
            if (*p < '0' || *p > '9') {
                break;
            }
        }

        if (p < last || v->len > NGX_HTTP_LOOM_SCHEMAS_VERSION_LEN
            || (v->len > 1 && v->data[0] == '0'))
        {
            goto invalid;
        }

    } else if (ctx->env.version.type != NGX_HTTP_LOOM_JSON_NONE
               && ctx->env.version.type != NGX_HTTP_LOOM_JSON_NULL)
    {
        goto invalid;
    }

    r = ngx_http_loom_request_create(ctx, NGX_HTTP_LOOM_SCHEMAS_VERSION_LEN);
    if (r == NULL) {
        return;
    }

    r->payload.len = 0;

    if (ctx->env.version.type == NGX_HTTP_LOOM_JSON_NUMBER) {
        r->payload.len = v->len;
        ngx_memcpy(r->payload.data, v->data, v->len);
    }

    argv[0] = (char *) r->key.data;
    argvlen[0] = r->key.len;
    argv[1] = (char *) r->payload.data;
    argvlen[1] = r->payload.len;

    (void) ngx_http_loom_request_send(r, ngx_http_loom_get_schema_reply,
                                      NGX_HTTP_LOOM_SCRIPT_GETSCHEMA, 1,
                                      2, argv, argvlen);
    return;

invalid:

    ngx_str_set(&msg, "invalid \"version\": it must be an integer of 0 "
                      "or more");
    ngx_http_loom_answer_error(ctx, 400, &msg, 1);
}


static void
ngx_http_loom_get_schema_reply(ngx_http_loom_request_t *r,
    redisReply *reply)
{
    u_char      *p;
    size_t       len;
    int64_t      n, low, top;
    ngx_str_t    msg[5], data, extra;
    ngx_uint_t   kind, flags, mode;
    redisReply **e;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "topic ");
        msg[1] = r->name;
        ngx_str_set(&msg[2], " doesn't exist");
        ngx_http_loom_request_error(r, 404, msg, 3);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || (reply->elements != 3 && reply->elements != 6)
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    e = reply->element;

    if (reply->elements == 3) {
        ngx_str_set(&msg[0], "schema version ");
        msg[1] = r->payload;
        ngx_str_set(&msg[2], " of topic ");
        msg[3] = r->name;
        ngx_str_set(&msg[4], " is not kept");
        ngx_http_loom_request_error(r, 404, msg, 5);
        return;
    }

    if (e[3]->type != REDIS_REPLY_INTEGER
        || e[4]->type != REDIS_REPLY_STRING
        || e[5]->type != REDIS_REPLY_STRING
        || ngx_http_loom_schemas_kind((u_char *) e[4]->str, e[4]->len,
                                      &kind, &flags)
           != NGX_OK)
    {
        ngx_http_loom_request_fail(r, NULL);
        return;
    }

    msg[0].data = (u_char *) e[2]->str;
    msg[0].len = e[2]->len;

    if (msg[0].len == 0
        || ngx_http_loom_schemas_mode(&msg[0], &mode) != NGX_OK)
    {
        mode = NGX_HTTP_LOOM_COMPAT_NONE;
    }

    /*
     * ,"version":2,"versions":[0,1,2],"schemaType":"json-schema",
     * "compatibility":"backward"
     */

    top = e[0]->integer;
    low = ngx_min(e[1]->integer, top);

    len = sizeof(",\"version\":,\"versions\":[],\"schemaType\":\"\","
                 "\"compatibility\":\"\"") - 1
          + NGX_INT64_LEN + (top - low + 1) * (NGX_INT64_LEN + 1)
          + sizeof("json-schema") + sizeof("backward_transitive");

    extra.data = ngx_alloc(len, r->session->connection->log);
    if (extra.data == NULL) {
        ngx_str_set(&msg[0], "out of memory");
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    p = ngx_sprintf(extra.data, ",\"version\":%L,\"versions\":[",
                    (int64_t) e[3]->integer);

    for (n = low; n <= top; n++) {
        p = ngx_sprintf(p, (n == low) ? "%L" : ",%L", n);
    }

    p = ngx_sprintf(p, "],\"schemaType\":\"%s\",\"compatibility\":\"%V\"",
                    (kind == NGX_HTTP_LOOM_SCHEMA_JSON) ? "json-schema"
                                                        : "keys",
                    ngx_http_loom_schemas_mode_name(mode));
    extra.len = p - extra.data;

    data.data = (u_char *) e[5]->str;
    data.len = e[5]->len;

    ngx_http_loom_request_finish(r, ngx_http_loom_response_extra(r, 200,
                                                                 &data,
                                                                 &extra));
    ngx_free(extra.data);
}
