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
 * Topic schemas on the wire and in Redis.  A topic's hash holds its
 * current schema in "schema" with its kind in "sk" ("json-schema", with
 * " format" when formats are assertions; absent for a key-set schema),
 * its version in "sv", its compatibility mode in "cm" (absent: none), and
 * the older versions kept in "s:<version>" and "k:<version>" from version
 * "vl" up (lua/update.lua, lua/getschema.lua).
 */


#define NGX_HTTP_LOOM_SCHEMAS_VERSION_LEN  18


static json_t *ngx_http_loom_schemas_parse(u_char *text, size_t len,
    ngx_uint_t kind);
static ngx_http_loom_jschema_t *ngx_http_loom_schemas_compile(
    ngx_http_loom_main_conf_t *lmcf, json_t *schema, ngx_uint_t flags,
    ngx_http_loom_jschema_err_t *err);
static ngx_int_t ngx_http_loom_schemas_string(ngx_http_loom_json_value_t *v,
    u_char *buf, size_t size, ngx_str_t *s);
static ngx_int_t ngx_http_loom_schemas_mode(ngx_str_t *s, ngx_uint_t *mode);
static ngx_int_t ngx_http_loom_schemas_compare(ngx_http_loom_request_t *r,
    redisReply **v, ngx_http_loom_schema_opts_t *o, json_t *proposed,
    ngx_uint_t mode, ngx_http_loom_jschema_diffs_t *diffs);
static ngx_int_t ngx_http_loom_schemas_diff(
    ngx_http_loom_jschema_diffs_t *diffs, ngx_uint_t from, const char *text);
static void ngx_http_loom_schemas_refuse_change(ngx_http_loom_request_t *r,
    ngx_uint_t mode, ngx_http_loom_jschema_diffs_t *diffs);
static void ngx_http_loom_get_schema_reply(ngx_http_loom_request_t *r,
    redisReply *reply);


ngx_conf_enum_t  ngx_http_loom_schema_modes[] = {
    { ngx_string("none"), NGX_HTTP_LOOM_COMPAT_NONE },
    { ngx_string("backward"), NGX_HTTP_LOOM_JSCHEMA_BACKWARD },
    { ngx_string("forward"), NGX_HTTP_LOOM_JSCHEMA_FORWARD },
    { ngx_string("full"), NGX_HTTP_LOOM_JSCHEMA_FULL },
    { ngx_string("backward_transitive"),
      NGX_HTTP_LOOM_JSCHEMA_BACKWARD|NGX_HTTP_LOOM_COMPAT_TRANSITIVE },
    { ngx_string("forward_transitive"),
      NGX_HTTP_LOOM_JSCHEMA_FORWARD|NGX_HTTP_LOOM_COMPAT_TRANSITIVE },
    { ngx_string("full_transitive"),
      NGX_HTTP_LOOM_JSCHEMA_FULL|NGX_HTTP_LOOM_COMPAT_TRANSITIVE },
    { ngx_null_string, 0 }
};


static ngx_str_t  ngx_http_loom_schemas_kinds[] = {
    ngx_null_string,
    ngx_string("json-schema"),
    ngx_string("json-schema format")
};

static ngx_str_t  ngx_http_loom_schemas_mismatch =
    ngx_string("schema doesn't match topics current schema");


ngx_int_t
ngx_http_loom_schemas_options(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_schema_opts_t *o)
{
    u_char                       buf[32];
    ngx_str_t                    s, msg[2];
    ngx_uint_t                   mode;
    json_t                      *schema;
    ngx_http_loom_jschema_t     *js;
    ngx_http_loom_main_conf_t   *lmcf;
    ngx_http_loom_jschema_err_t  err;

    lmcf = ctx->worker->conf;

    o->kind = NGX_HTTP_LOOM_SCHEMA_KEYS;
    o->flags = 0;
    o->mode = NGX_HTTP_LOOM_COMPAT_UNSET;

    switch (ngx_http_loom_schemas_string(&ctx->env.schema_type, buf,
                                         sizeof(buf), &s))
    {
    case NGX_OK:
        if (s.len == 11 && ngx_strncmp(s.data, "json-schema", 11) == 0) {
            o->kind = NGX_HTTP_LOOM_SCHEMA_JSON;
            break;
        }

        if (s.len == 4 && ngx_strncmp(s.data, "keys", 4) == 0) {
            break;
        }

        /* fall through */

    case NGX_ERROR:
        ngx_str_set(&msg[0], "invalid \"schemaType\": it must be \"keys\" "
                             "or \"json-schema\"");
        ngx_http_loom_answer_error(ctx, 400, msg, 1);
        return NGX_DECLINED;

    default: /* NGX_DECLINED: absent or null */
        break;
    }

    switch (ngx_http_loom_schemas_string(&ctx->env.compatibility, buf,
                                         sizeof(buf), &s))
    {
    case NGX_OK:
        if (ngx_http_loom_schemas_mode(&s, &mode) == NGX_OK) {
            o->mode = mode;
            break;
        }

        /* fall through */

    case NGX_ERROR:
        ngx_str_set(&msg[0], "invalid \"compatibility\": it must be "
                             "\"none\", \"backward\", \"forward\", \"full\", "
                             "\"backward_transitive\", "
                             "\"forward_transitive\" or "
                             "\"full_transitive\"");
        ngx_http_loom_answer_error(ctx, 400, msg, 1);
        return NGX_DECLINED;

    default:
        break;
    }

    if (o->kind == NGX_HTTP_LOOM_SCHEMA_KEYS) {
        return NGX_OK;
    }

    o->flags = lmcf->schema_format ? NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT : 0;

    /* compiled once here, so that a bad schema is refused before Redis */

    ngx_str_set(&msg[0], "invalid schema: ");

    if (ctx->env.data.raw.len > lmcf->schema_max_size) {
        msg[1].data = (u_char *) err.text;
        msg[1].len = ngx_snprintf(err.text, sizeof(err.text),
                                  "the schema is larger than %uz bytes",
                                  lmcf->schema_max_size)
                     - err.text;
        ngx_http_loom_answer_error(ctx, 400, msg, 2);
        return NGX_DECLINED;
    }

    schema = ngx_http_loom_schemas_parse(ctx->env.data.raw.data,
                                         ctx->env.data.raw.len,
                                         NGX_HTTP_LOOM_SCHEMA_JSON);
    if (schema == NULL) {
        ngx_str_set(&msg[0], "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, msg, 1);
        return NGX_DECLINED;
    }

    js = ngx_http_loom_schemas_compile(lmcf, schema, o->flags, &err);
    json_decref(schema);

    if (js == NULL) {
        msg[1].data = err.text;
        msg[1].len = err.len;
        ngx_http_loom_answer_error(ctx, 400, msg, 2);
        return NGX_DECLINED;
    }

    ngx_http_loom_jschema_free(js);

    if (o->mode == NGX_HTTP_LOOM_COMPAT_UNSET
        && ctx->index == NGX_HTTP_LOOM_REGISTER)
    {
        /* the default of JSON Schema topics, fixed at registration */
        o->mode = lmcf->schema_compatibility;
    }

    return NGX_OK;
}


ngx_str_t *
ngx_http_loom_schemas_kind_name(ngx_uint_t kind, ngx_uint_t flags)
{
    if (kind == NGX_HTTP_LOOM_SCHEMA_KEYS) {
        return &ngx_http_loom_schemas_kinds[0];
    }

    return &ngx_http_loom_schemas_kinds[
        (flags & NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT) ? 2 : 1];
}


ngx_int_t
ngx_http_loom_schemas_kind(u_char *p, size_t len, ngx_uint_t *kind,
    ngx_uint_t *flags)
{
    ngx_uint_t  i;

    for (i = 0; i < 3; i++) {
        if (len == ngx_http_loom_schemas_kinds[i].len
            && ngx_strncmp(p, ngx_http_loom_schemas_kinds[i].data, len) == 0)
        {
            *kind = i ? NGX_HTTP_LOOM_SCHEMA_JSON : NGX_HTTP_LOOM_SCHEMA_KEYS;
            *flags = (i == 2) ? NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT : 0;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


ngx_str_t *
ngx_http_loom_schemas_mode_name(ngx_uint_t mode)
{
    ngx_conf_enum_t  *e;

    for (e = ngx_http_loom_schema_modes; e->name.len; e++) {
        if (e->value == mode) {
            return &e->name;
        }
    }

    return &ngx_http_loom_schema_modes[0].name;
}


static ngx_int_t
ngx_http_loom_schemas_mode(ngx_str_t *s, ngx_uint_t *mode)
{
    ngx_conf_enum_t  *e;

    for (e = ngx_http_loom_schema_modes; e->name.len; e++) {
        if (e->name.len == s->len
            && ngx_strncmp(e->name.data, s->data, s->len) == 0)
        {
            *mode = e->value;
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


/* the worker's schema cache */

ngx_int_t
ngx_http_loom_schemas_load(ngx_http_loom_worker_t *w, ngx_str_t *kind,
    u_char *text, size_t len, json_t **json, ngx_http_loom_jschema_t **js)
{
    json_t                       *schema;
    ngx_uint_t                    k, flags;
    ngx_http_loom_jschema_err_t   err;

    *json = NULL;
    *js = NULL;

    if (ngx_http_loom_schemas_kind(kind->data, kind->len, &k, &flags)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "loom: unknown stored schema kind \"%V\"", kind);
        return NGX_ERROR;
    }

    schema = ngx_http_loom_schemas_parse(text, len, k);
    if (schema == NULL) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "loom: a stored schema is not JSON");
        return NGX_ERROR;
    }

    if (k == NGX_HTTP_LOOM_SCHEMA_KEYS) {
        *json = schema;
        return NGX_OK;
    }

    /* compiled with the limits of this node: they should be alike */

    *js = ngx_http_loom_schemas_compile(w->conf, schema, flags, &err);
    json_decref(schema);

    if (*js == NULL) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "loom: a stored JSON Schema is refused here: %s",
                      err.text);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* registerTopic of an existing topic: the same kind and schema */

ngx_int_t
ngx_http_loom_schemas_same(ngx_str_t *kind, ngx_str_t *existing,
    ngx_http_loom_schema_opts_t *o, ngx_str_t *proposed)
{
    json_t      *a, *b;
    ngx_int_t    rc;
    ngx_uint_t   k, flags;

    if (ngx_http_loom_schemas_kind(kind->data, kind->len, &k, &flags)
        != NGX_OK || k != o->kind)
    {
        return NGX_DECLINED;
    }

    a = ngx_http_loom_schemas_parse(existing->data, existing->len, k);
    b = ngx_http_loom_schemas_parse(proposed->data, proposed->len, k);

    rc = NGX_DECLINED;

    if (a && b) {
        if (k == NGX_HTTP_LOOM_SCHEMA_KEYS) {
            rc = ngx_http_loom_schema_same(a, b);

        } else if (json_equal(a, b)) {
            rc = NGX_OK;
        }
    }

    json_decref(a);
    json_decref(b);

    return rc;
}


/* a publish that does not match: the failures of a JSON Schema listed */

void
ngx_http_loom_schemas_refuse(ngx_http_loom_request_t *r,
    ngx_http_loom_jschema_t *js)
{
    u_char                          *p;
    ngx_str_t                        extra;
    ngx_http_loom_jschema_errors_t   e;

    if (js == NULL) {
        ngx_http_loom_request_error(r, 400, &ngx_http_loom_schemas_mismatch,
                                    1);
        return;
    }

    if (ngx_http_loom_jschema_errors_init(&e,
            r->session->worker->conf->schema_max_errors)
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_http_loom_jschema_validate(js, r->data, &e) == NGX_ERROR) {
        ngx_http_loom_jschema_errors_free(&e);
        goto failed;
    }

    extra.len = sizeof(",\"errors\":") - 1
                + ngx_http_loom_jschema_errors_json_len(&e);
    extra.data = ngx_alloc(extra.len, r->session->connection->log);

    if (extra.data == NULL) {
        ngx_http_loom_jschema_errors_free(&e);
        goto failed;
    }

    p = ngx_cpymem(extra.data, ",\"errors\":", sizeof(",\"errors\":") - 1);
    (void) ngx_http_loom_jschema_errors_json(&e, p);
    ngx_http_loom_jschema_errors_free(&e);

    ngx_http_loom_request_finish(r, ngx_http_loom_response_error_extra(r,
                                        400, &ngx_http_loom_schemas_mismatch,
                                        1, &extra));
    ngx_free(extra.data);
    return;

failed:

    /* the refusal without its list */
    ngx_http_loom_request_error(r, 400, &ngx_http_loom_schemas_mismatch, 1);
}


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


/* helpers */

static json_t *
ngx_http_loom_schemas_parse(u_char *text, size_t len, ngx_uint_t kind)
{
    json_t        *json;
    json_error_t   jerr;

    if (kind == NGX_HTTP_LOOM_SCHEMA_KEYS) {
        /* as every key-set schema has always been read */
        return json_loadb((char *) text, len,
                          JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);
    }

    /* integers as integers; one beyond 64 bits as a real */

    json = json_loadb((char *) text, len, JSON_ALLOW_NUL, &jerr);

    if (json == NULL) {
        json = json_loadb((char *) text, len,
                          JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);
    }

    return json;
}


static ngx_http_loom_jschema_t *
ngx_http_loom_schemas_compile(ngx_http_loom_main_conf_t *lmcf,
    json_t *schema, ngx_uint_t flags, ngx_http_loom_jschema_err_t *err)
{
    ngx_http_loom_jschema_limits_t  limits;

    limits.max_depth = lmcf->schema_max_depth;
    limits.max_subschemas = lmcf->schema_max_subschemas;
    limits.flags = flags;

    return ngx_http_loom_jschema_compile(schema, &limits, err);
}


/*
 * A member that must be a string: NGX_OK with its text in buf (cut at
 * size), NGX_DECLINED when absent or null, NGX_ERROR otherwise
 */

static ngx_int_t
ngx_http_loom_schemas_string(ngx_http_loom_json_value_t *v, u_char *buf,
    size_t size, ngx_str_t *s)
{
    json_t        *json;
    json_error_t   jerr;

    if (v->type == NGX_HTTP_LOOM_JSON_NONE
        || v->type == NGX_HTTP_LOOM_JSON_NULL)
    {
        return NGX_DECLINED;
    }

    if (v->type != NGX_HTTP_LOOM_JSON_STRING) {
        return NGX_ERROR;
    }

    json = json_loadb((char *) v->raw.data, v->raw.len,
                      JSON_DECODE_ANY|JSON_ALLOW_NUL, &jerr);
    if (json == NULL) {
        return NGX_ERROR;
    }

    s->len = json_string_length(json);

    if (s->len > size) {
        /* longer than any name it may be */
        s->len = size;
    }

    s->data = buf;
    ngx_memcpy(buf, json_string_value(json), s->len);

    json_decref(json);

    return NGX_OK;
}
