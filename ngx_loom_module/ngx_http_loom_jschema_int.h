/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_JSCHEMA_INT_H_INCLUDED_
#define _NGX_HTTP_LOOM_JSCHEMA_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH  8
#endif
#include <pcre2.h>

#include "ngx_http_loom_jschema.h"


/*
 * The compiled form, shared by the compile, validate and compatibility
 * code only.
 */


/* instance types, as a mask */
#define NGX_HTTP_LOOM_JS_NULL     0x01
#define NGX_HTTP_LOOM_JS_BOOLEAN  0x02
#define NGX_HTTP_LOOM_JS_OBJECT   0x04
#define NGX_HTTP_LOOM_JS_ARRAY    0x08
#define NGX_HTTP_LOOM_JS_NUMBER   0x10
#define NGX_HTTP_LOOM_JS_STRING   0x20
#define NGX_HTTP_LOOM_JS_INTEGER  0x40
#define NGX_HTTP_LOOM_JS_ANY      0x7f


/* groups of keywords a node has, so validation skips the others */
#define NGX_HTTP_LOOM_JS_CHK_VALUE   0x01      /* enum, const */
#define NGX_HTTP_LOOM_JS_CHK_STRING  0x02
#define NGX_HTTP_LOOM_JS_CHK_NUMBER  0x04
#define NGX_HTTP_LOOM_JS_CHK_OBJECT  0x08
#define NGX_HTTP_LOOM_JS_CHK_ARRAY   0x10
#define NGX_HTTP_LOOM_JS_CHK_APPLY   0x20      /* in-place applicators */


/* the formats known; 0 is none or an unknown one (an annotation) */
enum {
    NGX_HTTP_LOOM_JS_FMT_NONE = 0,
    NGX_HTTP_LOOM_JS_FMT_DATE_TIME,
    NGX_HTTP_LOOM_JS_FMT_DATE,
    NGX_HTTP_LOOM_JS_FMT_TIME,
    NGX_HTTP_LOOM_JS_FMT_EMAIL,
    NGX_HTTP_LOOM_JS_FMT_UUID,
    NGX_HTTP_LOOM_JS_FMT_IPV4,
    NGX_HTTP_LOOM_JS_FMT_IPV6,
    NGX_HTTP_LOOM_JS_FMT_URI
};


typedef struct ngx_http_loom_js_node_s  ngx_http_loom_js_node_t;


/* a number bound: integers compare exactly */
typedef struct {
    double                    d;
    json_int_t                i;
    unsigned                  is_int:1;
    unsigned                  set:1;
} ngx_http_loom_js_num_t;


typedef struct {
    const char               *name;
    size_t                    len;
    ngx_http_loom_js_node_t  *node;
    ngx_uint_t                required;     /* 1: also in "required" */
} ngx_http_loom_js_prop_t;


typedef struct {
    pcre2_code               *re;
    ngx_http_loom_js_node_t  *node;
} ngx_http_loom_js_pattern_t;


typedef struct {
    const char               *name;
    size_t                    len;
    ngx_http_loom_js_prop_t  *required;
    ngx_uint_t                nrequired;
} ngx_http_loom_js_dep_t;


struct ngx_http_loom_js_node_s {
    /* a boolean schema, or the outcome of a schema with no assertion */
    unsigned                     is_bool:1;
    unsigned                     bool_value:1;
    unsigned                     unique_items:1;
    unsigned                     format_assert:1;
    unsigned                     visiting:1;
    unsigned                     done:1;
    unsigned                     required_in_props:1;

    ngx_uint_t                   checks;       /* the groups present */
    ngx_uint_t                   types;        /* 0: no "type" */
    ngx_uint_t                   format;

    json_t                      *enum_values;  /* copies */
    json_t                      *const_value;
    unsigned                     has_const:1;

    /* objects */
    ngx_http_loom_js_prop_t     *props;        /* sorted by name */
    ngx_uint_t                   nprops;
    ngx_http_loom_js_pattern_t  *patterns;
    ngx_uint_t                   npatterns;
    ngx_http_loom_js_node_t     *additional;
    ngx_http_loom_js_node_t     *property_names;
    ngx_http_loom_js_prop_t     *required;
    ngx_uint_t                   nrequired;
    ngx_http_loom_js_dep_t      *dep_required;
    ngx_uint_t                   ndep_required;
    ngx_http_loom_js_prop_t     *dep_schemas;
    ngx_uint_t                   ndep_schemas;
    ngx_int_t                    min_props;    /* -1: none */
    ngx_int_t                    max_props;

    /* arrays */
    ngx_http_loom_js_node_t    **prefix;
    ngx_uint_t                   nprefix;
    ngx_http_loom_js_node_t     *items;
    ngx_http_loom_js_node_t     *contains;
    ngx_int_t                    min_contains;
    ngx_int_t                    max_contains;
    ngx_int_t                    min_items;
    ngx_int_t                    max_items;

    /* numbers */
    ngx_http_loom_js_num_t       minimum;
    ngx_http_loom_js_num_t       maximum;
    ngx_http_loom_js_num_t       exclusive_min;
    ngx_http_loom_js_num_t       exclusive_max;
    ngx_http_loom_js_num_t       multiple_of;

    /* strings */
    ngx_int_t                    min_length;
    ngx_int_t                    max_length;
    pcre2_code                  *pattern;

    /* in-place applicators */
    ngx_http_loom_js_node_t    **all_of;
    ngx_uint_t                   nall_of;
    ngx_http_loom_js_node_t    **any_of;
    ngx_uint_t                   nany_of;
    ngx_http_loom_js_node_t    **one_of;
    ngx_uint_t                   none_of;
    ngx_http_loom_js_node_t     *not;
    ngx_http_loom_js_node_t     *if_;
    ngx_http_loom_js_node_t     *then_;
    ngx_http_loom_js_node_t     *else_;
    ngx_http_loom_js_node_t     *ref;

    /* members or items no other keyword evaluated */
    ngx_http_loom_js_node_t     *unevaluated_props;
    ngx_http_loom_js_node_t     *unevaluated_items;
};


struct ngx_http_loom_jschema_s {
    ngx_http_loom_js_node_t     *root;
    ngx_http_loom_js_node_t    **nodes;        /* all of them, to free */
    ngx_uint_t                   nnodes;
    ngx_uint_t                   nalloc;
    pcre2_match_data            *match;
    pcre2_match_context         *match_ctx;
};


/*
 * the longest chain of in-place applicators (validation could not go
 * deeper anyway); the cycle check walks it recursively
 */
#define NGX_HTTP_LOOM_JS_MAX_CHAIN  NGX_HTTP_LOOM_JSCHEMA_MAX_EVAL_DEPTH


/* the state of one compilation */

typedef struct {
    json_t                   *json;
    ngx_http_loom_js_node_t  *node;
} ngx_http_loom_js_seen_t;


typedef struct {
    ngx_http_loom_js_node_t  *node;
    char                     *ref;
    char                     *path;
} ngx_http_loom_js_pending_t;


typedef struct ngx_http_loom_js_cctx_s  ngx_http_loom_js_cctx_t;

/* compiles a schema at c->path, set by ngx_http_loom_jschema_compile.c */
typedef ngx_http_loom_js_node_t *(*ngx_http_loom_js_node_pt)(
    ngx_http_loom_js_cctx_t *c, json_t *json, ngx_uint_t depth);


struct ngx_http_loom_js_cctx_s {
    ngx_http_loom_jschema_t      *s;
    ngx_http_loom_js_node_pt      node;
    json_t                       *root;
    const char                   *root_id;
    size_t                        root_id_len;
    ngx_uint_t                    max_depth;
    ngx_uint_t                    max_nodes;
    ngx_uint_t                    flags;
    ngx_http_loom_jschema_err_t  *err;

    char                         *path;
    size_t                        plen;
    size_t                        pcap;

    ngx_http_loom_js_seen_t      *seen;
    ngx_uint_t                    nseen;
    ngx_uint_t                    aseen;
    ngx_http_loom_js_prop_t      *anchors;
    ngx_uint_t                    nanchors;
    ngx_uint_t                    aanchors;
    ngx_http_loom_js_pending_t   *refs;
    ngx_uint_t                    nrefs;
    ngx_uint_t                    arefs;
    ngx_uint_t                    chain;
};


/*
 * Compilation, bottom to top: ngx_http_loom_jschema_util.c,
 * ngx_http_loom_jschema_keyword_sub.c, ngx_http_loom_jschema_keyword.c and
 * ngx_http_loom_jschema_ref.c, ngx_http_loom_jschema_compile.c; a
 * subschema is compiled through c->node.
 */

/* ngx_http_loom_jschema_util.c */
ngx_http_loom_js_node_t *ngx_http_loom_js_sub(ngx_http_loom_js_cctx_t *c,
    const char *kw, const char *seg, size_t len, json_t *json,
    ngx_uint_t depth);
ngx_int_t ngx_http_loom_js_fail(ngx_http_loom_js_cctx_t *c,
    const char *fmt, ...);
ngx_int_t ngx_http_loom_js_set_path(ngx_http_loom_js_cctx_t *c,
    const char *path, size_t len);
ngx_int_t ngx_http_loom_js_push(ngx_http_loom_js_cctx_t *c,
    const char *seg, size_t len);
void *ngx_http_loom_js_grow(void *elts, ngx_uint_t *nalloc, ngx_uint_t n,
    size_t size);
char *ngx_http_loom_js_strndup(const char *s, size_t len);
pcre2_code *ngx_http_loom_js_regex(ngx_http_loom_js_cctx_t *c,
    const char *s, size_t len);

/* ngx_http_loom_jschema_keyword_sub.c */
ngx_int_t ngx_http_loom_js_kw_names(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
ngx_int_t ngx_http_loom_js_kw_dep_required(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
ngx_int_t ngx_http_loom_js_kw_schema(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
ngx_int_t ngx_http_loom_js_kw_schemas(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
ngx_int_t ngx_http_loom_js_kw_map(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
ngx_int_t ngx_http_loom_js_kw_ref(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);

/* ngx_http_loom_jschema_keyword.c: NGX_DECLINED: not a keyword known */
ngx_int_t ngx_http_loom_js_keyword(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);

/* ngx_http_loom_jschema_ref.c */
ngx_int_t ngx_http_loom_js_resolve(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_pending_t *p);
ngx_int_t ngx_http_loom_js_cycles(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n);


/* the state of one schema comparison (ngx_http_loom_jschema_compat*.c) */

#define NGX_HTTP_LOOM_JSC_MAX_CONJ   16
#define NGX_HTTP_LOOM_JSC_MAX_DEPTH  64
#define NGX_HTTP_LOOM_JSC_MAX_STEPS  100000


typedef struct ngx_http_loom_jsc_s  ngx_http_loom_jsc_t;

/* compares two subschemas, set by ngx_http_loom_jschema_compat.c */
typedef ngx_int_t (*ngx_http_loom_jsc_sub_pt)(ngx_http_loom_jsc_t *c,
    json_t *a, json_t *b);


struct ngx_http_loom_jsc_s {
    ngx_http_loom_jsc_sub_pt        sub;
    ngx_http_loom_jschema_diffs_t  *diffs;
    json_t                         *a_root;
    json_t                         *b_root;
    const char                     *dir;
    const char                     *a_name;
    const char                     *b_name;
    ngx_uint_t                      flags;
    char                           *path;
    size_t                          plen;
    size_t                          pcap;
    ngx_uint_t                      depth;
    ngx_uint_t                      steps;
    pcre2_match_data               *md;
    unsigned                        nomem:1;
    unsigned                        too_complex:1;

    /* the comparisons in progress: one met again holds (recursion) */
    json_t                         *stack[NGX_HTTP_LOOM_JSC_MAX_DEPTH][2];
};


typedef struct {
    json_t                         *s[NGX_HTTP_LOOM_JSC_MAX_CONJ];
    ngx_uint_t                      n;
    ngx_uint_t                      types;
    unsigned                        never:1;
    unsigned                        unknown:1;
} ngx_http_loom_jsc_conj_t;


/*
 * Comparison, bottom to top: ngx_http_loom_jschema_compat_util.c,
 * ngx_http_loom_jschema_compat_kw.c, ngx_http_loom_jschema_compat.c; two
 * subschemas are compared through c->sub.
 */

/* ngx_http_loom_jschema_compat_util.c */
ngx_int_t ngx_http_loom_jsc_diff(ngx_http_loom_jsc_t *c, const char *fmt,
    ...);
ngx_int_t ngx_http_loom_jsc_push(ngx_http_loom_jsc_t *c, const char *kw,
    const char *seg, size_t len);
ngx_int_t ngx_http_loom_jsc_at(ngx_http_loom_jsc_t *c, const char *kw,
    const char *seg, size_t len, json_t *a, json_t *b);
ngx_int_t ngx_http_loom_jsc_try(ngx_http_loom_jsc_t *c, json_t *a, json_t *b);
ngx_uint_t ngx_http_loom_jsc_types(json_t *t);
ngx_int_t ngx_http_loom_jsc_in(json_t *list, json_t *v);
json_t *ngx_http_loom_jsc_find(ngx_http_loom_jsc_conj_t *a, const char *kw,
    ngx_uint_t i);
ngx_int_t ngx_http_loom_jsc_bound(ngx_http_loom_jsc_conj_t *a,
    const char *kw, const char *kw2, json_t *bv, int sign);
ngx_int_t ngx_http_loom_jsc_same(ngx_http_loom_jsc_conj_t *a, const char *kw,
    json_t *bv);
ngx_int_t ngx_http_loom_jsc_values(ngx_http_loom_jsc_conj_t *a,
    json_t *allowed);
int ngx_http_loom_jsc_match(ngx_http_loom_jsc_t *c, const char *pattern,
    const char *name, size_t len);
ngx_uint_t ngx_http_loom_jsc_prop(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, const char *name, size_t len, json_t **out,
    ngx_uint_t max);
ngx_int_t ngx_http_loom_jsc_any(ngx_http_loom_jsc_t *c, json_t **as,
    ngx_uint_t n, json_t *b, const char *kw, const char *seg, size_t len);

/* ngx_http_loom_jschema_compat_kw.c */
ngx_int_t ngx_http_loom_jsc_keywords(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b);


/* the members or items of one instance some keyword evaluated */
typedef struct {
    uint64_t                        *bits;
    size_t                           n;
} ngx_http_loom_js_ev_t;


#define ngx_http_loom_js_mark(ev, i)                                         \
    if (ev) { (ev)->bits[(i) / 64] |= (uint64_t) 1 << ((i) % 64); }


/* the state of one validation (ngx_http_loom_jschema_{validate,container}.c) */

typedef struct ngx_http_loom_js_vctx_s  ngx_http_loom_js_vctx_t;

/* validates an instance, set by ngx_http_loom_jschema_validate.c */
typedef ngx_int_t (*ngx_http_loom_js_eval_pt)(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);


struct ngx_http_loom_js_vctx_s {
    const ngx_http_loom_jschema_t   *s;
    ngx_http_loom_js_eval_pt         eval;
    ngx_http_loom_jschema_errors_t  *errors;
    char                            *path;
    size_t                           plen;
    size_t                           pcap;
    ngx_uint_t                       depth;
    ngx_http_loom_js_ev_t           *ev;      /* needed by unevaluated* */
    unsigned                         nomem:1;
};


/* whether to go on after a failure */

#define ngx_http_loom_js_go_on(v)                                            \
    ((v)->errors && !(v)->nomem && (v)->errors->nelts < (v)->errors->max)

/* a check that failed: stop, unless collecting */
#define ngx_http_loom_js_check(v, rc, expr)                                  \
    if ((expr) != NGX_OK) {                                                  \
        rc = NGX_DECLINED;                                                   \
        if (!ngx_http_loom_js_go_on(v)) {                                    \
            return NGX_DECLINED;                                             \
        }                                                                    \
    }


/*
 * Validation, bottom to top: ngx_http_loom_jschema_vctx.c,
 * ngx_http_loom_jschema_container.c, ngx_http_loom_jschema_validate.c; a
 * subschema is evaluated through v->eval.
 */

/* ngx_http_loom_jschema_vctx.c */
ngx_int_t ngx_http_loom_js_failed(ngx_http_loom_js_vctx_t *v, const char *kw,
    const char *fmt, ...);
ngx_int_t ngx_http_loom_js_member(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst, const char *seg,
    size_t len);
ngx_int_t ngx_http_loom_js_item(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst, size_t i);
ngx_int_t ngx_http_loom_js_try(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);
ngx_int_t ngx_http_loom_js_inplace(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst, ngx_uint_t trial);
/* 1: matches, 0: does not, -1: the match gave up (limits) */
int ngx_http_loom_js_regex_match(const ngx_http_loom_jschema_t *s,
    pcre2_code *re, const char *str, size_t len);

/* ngx_http_loom_jschema_container.c */
const ngx_http_loom_js_prop_t *ngx_http_loom_js_find(
    const ngx_http_loom_js_node_t *n, const char *key, size_t len);
ngx_int_t ngx_http_loom_js_object(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);
ngx_int_t ngx_http_loom_js_array(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);


/* limits of one regular expression match (backtracking and depth) */
#define NGX_HTTP_LOOM_JS_MATCH_LIMIT  100000
#define NGX_HTTP_LOOM_JS_DEPTH_LIMIT  1000


/* ngx_http_loom_jschema_util.c */
ngx_int_t ngx_http_loom_js_equal(json_t *a, json_t *b);
ngx_int_t ngx_http_loom_js_type_of(json_t *v);

/* ngx_http_loom_jschema_format.c */
ngx_int_t ngx_http_loom_js_format_id(const char *name, size_t len);
ngx_int_t ngx_http_loom_js_format_check(ngx_uint_t format, const u_char *s,
    size_t len);


#endif /* _NGX_HTTP_LOOM_JSCHEMA_INT_H_INCLUDED_ */
