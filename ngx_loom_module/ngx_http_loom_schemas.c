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
#include "ngx_http_loom_topic.h"


/*
 * Topic schemas on the wire and in Redis: the request members, the
 * worker's cache and a publish's check.  A topic's hash holds its
 * current schema in "schema" with its kind in "sk" ("json-schema", with
 * " format" when formats are assertions; absent for a key-set schema),
 * its version in "sv", its compatibility mode in "cm" (absent: none), and
 * the older versions kept in "s:<version>" and "k:<version>" from version
 * "vl" up (lua/update.lua, lua/getschema.lua).
 */


static ngx_http_loom_jschema_t *ngx_http_loom_schemas_compile(
    ngx_http_loom_main_conf_t *lmcf, json_t *schema, ngx_uint_t flags,
    ngx_http_loom_jschema_err_t *err);
static ngx_int_t ngx_http_loom_schemas_string(ngx_http_loom_json_value_t *v,
    u_char *buf, size_t size, ngx_str_t *s);


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
            && (len == 0
                || ngx_strncmp(p, ngx_http_loom_schemas_kinds[i].data, len)
                   == 0))
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


ngx_int_t
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


/*
 * A publish the script sent back with the topic's current schema: the
 * worker's cache takes the schema unless it has it already, and the data
 * is checked against it
 */

ngx_int_t
ngx_http_loom_schemas_recheck(ngx_http_loom_request_t *r, ngx_str_t *tag,
    ngx_str_t *text, ngx_str_t *kind)
{
    json_t                   *schema;
    ngx_int_t                 rc;
    ngx_str_t                 msg;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_worker_t   *w;
    ngx_http_loom_jschema_t  *js;

    w = r->session->worker;

    t = ngx_http_loom_topic_get(w, &r->name);

    if (t && ngx_http_loom_topic_has_schema(t)
        && t->tag.len == tag->len
        && ngx_strncmp(t->tag.data, tag->data, tag->len) == 0)
    {
        goto check;
    }

    if (ngx_http_loom_schemas_load(w, kind, text->data, text->len, &schema,
                                   &js)
        != NGX_OK)
    {
        if (t) {
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg, "storage error: the stored schema cannot be used");
        goto failed;
    }

    if (t == NULL) {

        /* no memory for the cache: checked once without it */

        rc = js ? ngx_http_loom_jschema_validate(js, r->data, NULL)
                : ngx_http_loom_schema_match(schema, r->data);

        if (rc != NGX_OK) {
            ngx_http_loom_request_unbarrier(r);
            ngx_http_loom_schemas_refuse(r, js);
        }

        json_decref(schema);

        if (js) {
            ngx_http_loom_jschema_free(js);
        }

        return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
    }

    rc = ngx_http_loom_topic_set_schema(t, tag, schema, js);
    json_decref(schema);

    if (rc != NGX_OK) {
        ngx_http_loom_topic_check(t);
        ngx_str_set(&msg, "out of memory");
        goto failed;
    }

check:

    if (ngx_http_loom_topic_match(t, r->data) != NGX_OK) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_schemas_refuse(r, t->jschema);
        ngx_http_loom_topic_check(t);
        return NGX_DECLINED;
    }

    ngx_http_loom_topic_check(t);

    return NGX_OK;

failed:

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, &msg, 1);

    return NGX_DECLINED;
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


/* helpers */

json_t *
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
