/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_JSCHEMA_H_INCLUDED_
#define _NGX_HTTP_LOOM_JSCHEMA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


/*
 * JSON Schema (draft 2020-12) topic schemas: a schema is compiled once into
 * a tree of nodes that validates messages without reading the schema text
 * again (keywords decoded, regular expressions compiled, $ref resolved).
 * docs/schemas.md lists the keywords and the limits.
 *
 * Pure code: jansson, PCRE2 and libc allocation; no nginx function calls.
 */


typedef struct ngx_http_loom_jschema_s  ngx_http_loom_jschema_t;


/* compile flags */
#define NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT  0x0001

#define NGX_HTTP_LOOM_JSCHEMA_MAX_DEPTH       32
#define NGX_HTTP_LOOM_JSCHEMA_MAX_SUBSCHEMAS  1000

/* recursion of one validation: instance depth and in-place applicators */
#define NGX_HTTP_LOOM_JSCHEMA_MAX_EVAL_DEPTH  256

#define NGX_HTTP_LOOM_JSCHEMA_ERRLEN          256
#define NGX_HTTP_LOOM_JSCHEMA_MSGLEN          96


typedef struct {
    ngx_uint_t   max_depth;          /* nesting of subschemas, 0: default */
    ngx_uint_t   max_subschemas;     /* subschemas in all, 0: default */
    ngx_uint_t   flags;
} ngx_http_loom_jschema_limits_t;


/* why a schema was refused; text is NUL-terminated */
typedef struct {
    size_t       len;
    u_char       text[NGX_HTTP_LOOM_JSCHEMA_ERRLEN];
} ngx_http_loom_jschema_err_t;


/* one failure of a message */
typedef struct {
    char        *instance_path;      /* JSON Pointer, allocated */
    const char  *keyword;            /* static */
    char         message[NGX_HTTP_LOOM_JSCHEMA_MSGLEN];
} ngx_http_loom_jschema_failure_t;


/* a collector of failures, at most max of them */
typedef struct {
    ngx_http_loom_jschema_failure_t  *elts;
    ngx_uint_t                        nelts;
    ngx_uint_t                        max;
    unsigned                          truncated:1;   /* max reached */
} ngx_http_loom_jschema_errors_t;


/* one breaking difference between two schemas */
typedef struct {
    char        *path;               /* JSON Pointer into the schema */
    char        *reason;
} ngx_http_loom_jschema_diff_t;


typedef struct {
    ngx_http_loom_jschema_diff_t     *elts;
    ngx_uint_t                        nelts;
    ngx_uint_t                        max;
    unsigned                          truncated:1;   /* more than max */
} ngx_http_loom_jschema_diffs_t;


/* compatibility modes; the transitive forms are the caller's loop */
#define NGX_HTTP_LOOM_JSCHEMA_BACKWARD  0x01
#define NGX_HTTP_LOOM_JSCHEMA_FORWARD   0x02
#define NGX_HTTP_LOOM_JSCHEMA_FULL      0x03


/*
 * NULL when the schema is refused (err says why and where) or memory ran
 * out (err says so); limits may be NULL for the defaults.  The compiled
 * schema does not refer to the json_t it was made from.
 */
ngx_http_loom_jschema_t *ngx_http_loom_jschema_compile(json_t *schema,
    const ngx_http_loom_jschema_limits_t *limits,
    ngx_http_loom_jschema_err_t *err);
void ngx_http_loom_jschema_free(ngx_http_loom_jschema_t *s);

/*
 * NGX_OK: the instance is valid; NGX_DECLINED: it is not.  With errors
 * NULL the first failure ends the validation and nothing is allocated
 * (propertyNames and unevaluated* aside); otherwise each failure is
 * recorded, up to the collector's max.  NGX_ERROR: memory ran out.
 */
ngx_int_t ngx_http_loom_jschema_validate(const ngx_http_loom_jschema_t *s,
    json_t *instance, ngx_http_loom_jschema_errors_t *errors);

ngx_int_t ngx_http_loom_jschema_errors_init(
    ngx_http_loom_jschema_errors_t *errors, ngx_uint_t max);
void ngx_http_loom_jschema_errors_reset(
    ngx_http_loom_jschema_errors_t *errors);
void ngx_http_loom_jschema_errors_free(ngx_http_loom_jschema_errors_t *errors);

/*
 * [{"instancePath":"/a/0","keyword":"type","message":"..."}]: the length,
 * and the text written to dst (which has room for that length); the end
 * of the text is returned
 */
size_t ngx_http_loom_jschema_errors_json_len(
    ngx_http_loom_jschema_errors_t *errors);
u_char *ngx_http_loom_jschema_errors_json(
    ngx_http_loom_jschema_errors_t *errors, u_char *dst);

/*
 * Compatibility of a schema change, mode BACKWARD (new accepts every
 * message old accepts), FORWARD (old accepts every message new accepts)
 * or FULL.  NGX_OK: compatible; NGX_DECLINED: not, with the differences in
 * diffs (which may be NULL); NGX_ERROR: memory ran out.  flags are the
 * compile flags of the topic (FORMAT_ASSERT makes "format" a constraint).
 */
ngx_int_t ngx_http_loom_jschema_compat(json_t *old, json_t *new,
    ngx_uint_t mode, ngx_uint_t flags, ngx_http_loom_jschema_diffs_t *diffs);

/* the same for key-set schemas (ngx_http_loom_schema.h) */
ngx_int_t ngx_http_loom_schema_compat(json_t *old, json_t *new,
    ngx_uint_t mode, ngx_http_loom_jschema_diffs_t *diffs);

ngx_int_t ngx_http_loom_jschema_diffs_init(
    ngx_http_loom_jschema_diffs_t *diffs, ngx_uint_t max);
void ngx_http_loom_jschema_diffs_free(ngx_http_loom_jschema_diffs_t *diffs);

/* [{"path":"/properties/a","reason":"..."}] */
size_t ngx_http_loom_jschema_diffs_json_len(
    ngx_http_loom_jschema_diffs_t *diffs);
u_char *ngx_http_loom_jschema_diffs_json(ngx_http_loom_jschema_diffs_t *diffs,
    u_char *dst);


#endif /* _NGX_HTTP_LOOM_JSCHEMA_H_INCLUDED_ */
