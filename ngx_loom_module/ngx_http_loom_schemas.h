/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SCHEMAS_H_INCLUDED_
#define _NGX_HTTP_LOOM_SCHEMAS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_jschema.h"


/*
 * The two kinds of topic schemas on the wire and in Redis: the request
 * members "schemaType" and "compatibility", compiling a stored schema for
 * the worker's cache, the compatibility check of updateSchema against the
 * versions kept, the "errors" of a refused publish, and getSchema.
 * docs/schemas.md section 12.
 */


#define NGX_HTTP_LOOM_SCHEMA_KEYS        0
#define NGX_HTTP_LOOM_SCHEMA_JSON        1

/*
 * compatibility modes: NGX_HTTP_LOOM_JSCHEMA_BACKWARD, _FORWARD, _FULL,
 * and this bit for the transitive forms; 0 is none
 */
#define NGX_HTTP_LOOM_COMPAT_NONE        0
#define NGX_HTTP_LOOM_COMPAT_TRANSITIVE  0x04
#define NGX_HTTP_LOOM_COMPAT_UNSET       ((ngx_uint_t) -1)


/* what a registerTopic or updateSchema asked for */
typedef struct {
    ngx_uint_t   kind;           /* NGX_HTTP_LOOM_SCHEMA_* */
    ngx_uint_t   flags;          /* compile flags: format assertion */
    ngx_uint_t   mode;           /* compatibility, or UNSET: not asked */
} ngx_http_loom_schema_opts_t;


/* the versions an updateSchema was checked against */
typedef struct {
    int64_t      version;        /* the current one: compare-and-set */
    ngx_uint_t   mode;           /* the topic's mode after the change */
} ngx_http_loom_schema_checked_t;


extern ngx_conf_enum_t  ngx_http_loom_schema_modes[];


/*
 * "schemaType" and "compatibility" of the request, and the schema in its
 * data compiled once as a check.  NGX_DECLINED: answered 400.
 */
ngx_int_t ngx_http_loom_schemas_options(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_schema_opts_t *o);

/* the kind as stored in the field "sk": "" for a key-set schema */
ngx_str_t *ngx_http_loom_schemas_kind_name(ngx_uint_t kind,
    ngx_uint_t flags);
ngx_int_t ngx_http_loom_schemas_kind(u_char *p, size_t len,
    ngx_uint_t *kind, ngx_uint_t *flags);
ngx_str_t *ngx_http_loom_schemas_mode_name(ngx_uint_t mode);
ngx_int_t ngx_http_loom_schemas_mode(ngx_str_t *s, ngx_uint_t *mode);

/* a schema's text as its kind is read: NULL if it is not JSON */
json_t *ngx_http_loom_schemas_parse(u_char *text, size_t len,
    ngx_uint_t kind);

/*
 * A stored schema for the cache: a key-set schema as *json, a JSON Schema
 * compiled into *js (the caller frees it).  NGX_ERROR: not usable, logged.
 */
ngx_int_t ngx_http_loom_schemas_load(ngx_http_loom_worker_t *w,
    ngx_str_t *kind, u_char *text, size_t len, json_t **json,
    ngx_http_loom_jschema_t **js);

/*
 * registerTopic of a topic that exists: NGX_OK when it has the kind asked
 * for and the same schema (the key-set rule, or equal JSON Schemas)
 */
ngx_int_t ngx_http_loom_schemas_same(ngx_str_t *kind, ngx_str_t *existing,
    ngx_http_loom_schema_opts_t *o, ngx_str_t *proposed);

/*
 * A publish the append script sent back with the topic's current schema
 * (its tag, text and kind): the worker's cache takes it, and r->data is
 * checked against it.  NGX_OK: it matches; NGX_DECLINED: r is answered
 * (400, or 500 when the schema cannot be used) and may be gone.
 */
ngx_int_t ngx_http_loom_schemas_recheck(ngx_http_loom_request_t *r,
    ngx_str_t *tag, ngx_str_t *text, ngx_str_t *kind);

/* a publish that does not match: 400, with "errors" for a JSON Schema */
void ngx_http_loom_schemas_refuse(ngx_http_loom_request_t *r,
    ngx_http_loom_jschema_t *js);

/* ngx_http_loom_schema_versions.c */

/*
 * updateSchema: the reply of the getschema script ("*": every version
 * kept) against the new schema in r->payload.  NGX_OK: the change may go,
 * as *c says; NGX_DECLINED: r is answered (409 with "differences", or an
 * error) and may be gone.  The reply is not nil.
 */
ngx_int_t ngx_http_loom_schemas_check(ngx_http_loom_request_t *r,
    redisReply *reply, ngx_http_loom_schema_opts_t *o,
    ngx_http_loom_schema_checked_t *c);

/* the getSchema action */
void ngx_http_loom_get_schema(ngx_http_loom_ctx_t *ctx);


#endif /* _NGX_HTTP_LOOM_SCHEMAS_H_INCLUDED_ */
