/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>


/*
 * Compilation of a draft 2020-12 schema into nodes.  Every keyword of a
 * schema object goes through the table below: one that is not there is
 * refused, never ignored.  $ref targets are resolved once the whole tree
 * is compiled; a target in a place no keyword compiles (e.g. inside "enum")
 * is compiled on demand.  A cycle of in-place applicators ($ref, allOf,
 * anyOf, oneOf, not, if/then/else, dependentSchemas) would recurse without
 * consuming the instance and is refused.
 */


typedef struct {
    json_t                   *json;
    ngx_http_loom_js_node_t  *node;
} ngx_http_loom_js_seen_t;


typedef struct {
    ngx_http_loom_js_node_t  *node;
    char                     *ref;
    char                     *path;
} ngx_http_loom_js_pending_t;


typedef struct {
    ngx_http_loom_jschema_t      *s;
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
} ngx_http_loom_js_cctx_t;


typedef ngx_int_t (*ngx_http_loom_js_kw_pt)(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);


typedef struct {
    const char               *name;
    ngx_http_loom_js_kw_pt    handler;
} ngx_http_loom_js_keyword_t;


static ngx_http_loom_js_node_t *ngx_http_loom_js_node(
    ngx_http_loom_js_cctx_t *c, json_t *json, ngx_uint_t depth);
static ngx_http_loom_js_node_t *ngx_http_loom_js_sub(
    ngx_http_loom_js_cctx_t *c, const char *kw, const char *seg, size_t len,
    json_t *json, ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_fail(ngx_http_loom_js_cctx_t *c,
    const char *fmt, ...);
static ngx_int_t ngx_http_loom_js_set_path(ngx_http_loom_js_cctx_t *c,
    const char *path, size_t len);
static ngx_int_t ngx_http_loom_js_push(ngx_http_loom_js_cctx_t *c,
    const char *seg, size_t len);
static void *ngx_http_loom_js_grow(void *elts, ngx_uint_t *nalloc,
    ngx_uint_t n, size_t size);
static ngx_int_t ngx_http_loom_js_resolve(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_pending_t *p);
static ngx_int_t ngx_http_loom_js_cycles(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n);

static ngx_int_t ngx_http_loom_js_kw_annotation(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_ident(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_type(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_value(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_count(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_number(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_string(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_names(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_schema(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_schemas(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_map(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_dep_required(
    ngx_http_loom_js_cctx_t *c, ngx_http_loom_js_node_t *n, const char *kw,
    json_t *v, json_t *schema, ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_ref(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);


static ngx_http_loom_js_keyword_t  ngx_http_loom_js_keywords[] = {
    { "title", ngx_http_loom_js_kw_annotation },
    { "description", ngx_http_loom_js_kw_annotation },
    { "$comment", ngx_http_loom_js_kw_annotation },
    { "default", ngx_http_loom_js_kw_annotation },
    { "examples", ngx_http_loom_js_kw_annotation },
    { "deprecated", ngx_http_loom_js_kw_annotation },
    { "readOnly", ngx_http_loom_js_kw_annotation },
    { "writeOnly", ngx_http_loom_js_kw_annotation },
    { "contentEncoding", ngx_http_loom_js_kw_annotation },
    { "contentMediaType", ngx_http_loom_js_kw_annotation },
    { "contentSchema", ngx_http_loom_js_kw_annotation },
    { "$schema", ngx_http_loom_js_kw_ident },
    { "$id", ngx_http_loom_js_kw_ident },
    { "$anchor", ngx_http_loom_js_kw_ident },
    { "$defs", ngx_http_loom_js_kw_map },
    { "$ref", ngx_http_loom_js_kw_ref },
    { "type", ngx_http_loom_js_kw_type },
    { "enum", ngx_http_loom_js_kw_value },
    { "const", ngx_http_loom_js_kw_value },
    { "uniqueItems", ngx_http_loom_js_kw_value },
    { "minProperties", ngx_http_loom_js_kw_count },
    { "maxProperties", ngx_http_loom_js_kw_count },
    { "minItems", ngx_http_loom_js_kw_count },
    { "maxItems", ngx_http_loom_js_kw_count },
    { "minContains", ngx_http_loom_js_kw_count },
    { "maxContains", ngx_http_loom_js_kw_count },
    { "minLength", ngx_http_loom_js_kw_count },
    { "maxLength", ngx_http_loom_js_kw_count },
    { "minimum", ngx_http_loom_js_kw_number },
    { "maximum", ngx_http_loom_js_kw_number },
    { "exclusiveMinimum", ngx_http_loom_js_kw_number },
    { "exclusiveMaximum", ngx_http_loom_js_kw_number },
    { "multipleOf", ngx_http_loom_js_kw_number },
    { "pattern", ngx_http_loom_js_kw_string },
    { "format", ngx_http_loom_js_kw_string },
    { "required", ngx_http_loom_js_kw_names },
    { "dependentRequired", ngx_http_loom_js_kw_dep_required },
    { "properties", ngx_http_loom_js_kw_map },
    { "patternProperties", ngx_http_loom_js_kw_map },
    { "dependentSchemas", ngx_http_loom_js_kw_map },
    { "additionalProperties", ngx_http_loom_js_kw_schema },
    { "propertyNames", ngx_http_loom_js_kw_schema },
    { "items", ngx_http_loom_js_kw_schema },
    { "contains", ngx_http_loom_js_kw_schema },
    { "not", ngx_http_loom_js_kw_schema },
    { "if", ngx_http_loom_js_kw_schema },
    { "then", ngx_http_loom_js_kw_schema },
    { "else", ngx_http_loom_js_kw_schema },
    { "prefixItems", ngx_http_loom_js_kw_schemas },
    { "allOf", ngx_http_loom_js_kw_schemas },
    { "anyOf", ngx_http_loom_js_kw_schemas },
    { "oneOf", ngx_http_loom_js_kw_schemas },
    { NULL, NULL }
};


ngx_http_loom_jschema_t *
ngx_http_loom_jschema_compile(json_t *schema,
    const ngx_http_loom_jschema_limits_t *limits,
    ngx_http_loom_jschema_err_t *err)
{
    ngx_uint_t                i;
    ngx_http_loom_js_cctx_t   c;
    ngx_http_loom_jschema_t  *s;

    memset(&c, 0, sizeof(ngx_http_loom_js_cctx_t));

    c.root = schema;
    c.err = err;
    c.max_depth = NGX_HTTP_LOOM_JSCHEMA_MAX_DEPTH;
    c.max_nodes = NGX_HTTP_LOOM_JSCHEMA_MAX_SUBSCHEMAS;

    if (limits) {
        c.max_depth = limits->max_depth ? limits->max_depth : c.max_depth;
        c.max_nodes = limits->max_subschemas ? limits->max_subschemas
                                             : c.max_nodes;
        c.flags = limits->flags;
    }

    err->len = 0;
    err->text[0] = '\0';

    s = calloc(1, sizeof(ngx_http_loom_jschema_t));
    if (s == NULL) {
        goto nomem;
    }

    c.s = s;

    s->match = pcre2_match_data_create(1, NULL);
    s->match_ctx = pcre2_match_context_create(NULL);

    if (s->match == NULL || s->match_ctx == NULL) {
        goto nomem;
    }

    pcre2_set_match_limit(s->match_ctx, NGX_HTTP_LOOM_JS_MATCH_LIMIT);
    pcre2_set_depth_limit(s->match_ctx, NGX_HTTP_LOOM_JS_DEPTH_LIMIT);

    s->root = ngx_http_loom_js_node(&c, schema, 0);
    if (s->root == NULL) {
        goto failed;
    }

    /* resolving may compile more and so add more references */

    for (i = 0; i < c.nrefs; i++) {
        if (ngx_http_loom_js_resolve(&c, &c.refs[i]) != NGX_OK) {
            goto failed;
        }
    }

    for (i = 0; i < s->nnodes; i++) {
        if (ngx_http_loom_js_cycles(&c, s->nodes[i]) != NGX_OK) {
            goto failed;
        }
    }

    for (i = 0; i < c.nrefs; i++) {
        free(c.refs[i].ref);
        free(c.refs[i].path);
    }

    free(c.refs);
    free(c.seen);
    free(c.anchors);
    free(c.path);

    return s;

nomem:

    ngx_http_loom_js_fail(&c, "out of memory");

failed:

    for (i = 0; i < c.nrefs; i++) {
        free(c.refs[i].ref);
        free(c.refs[i].path);
    }

    free(c.refs);
    free(c.seen);
    free(c.anchors);
    free(c.path);
    ngx_http_loom_jschema_free(s);

    return NULL;
}


void
ngx_http_loom_jschema_free(ngx_http_loom_jschema_t *s)
{
    ngx_uint_t                i, k;
    ngx_http_loom_js_node_t  *n;

    if (s == NULL) {
        return;
    }

    for (i = 0; i < s->nnodes; i++) {
        n = s->nodes[i];

        json_decref(n->enum_values);
        json_decref(n->const_value);

        for (k = 0; k < n->nprops; k++) {
            free((char *) n->props[k].name);
        }

        for (k = 0; k < n->npatterns; k++) {
            pcre2_code_free(n->patterns[k].re);
        }

        for (k = 0; k < n->nrequired; k++) {
            free((char *) n->required[k].name);
        }

        for (k = 0; k < n->ndep_required; k++) {
            free((char *) n->dep_required[k].name);
            free(n->dep_required[k].required);
        }

        for (k = 0; k < n->ndep_schemas; k++) {
            free((char *) n->dep_schemas[k].name);
        }

        free(n->props);
        free(n->patterns);
        free(n->required);
        free(n->dep_required);
        free(n->dep_schemas);
        free(n->prefix);
        free(n->all_of);
        free(n->any_of);
        free(n->one_of);
        pcre2_code_free(n->pattern);
        free(n);
    }

    free(s->nodes);
    pcre2_match_data_free(s->match);
    pcre2_match_context_free(s->match_ctx);
    free(s);
}


static ngx_http_loom_js_node_t *
ngx_http_loom_js_node(ngx_http_loom_js_cctx_t *c, json_t *json,
    ngx_uint_t depth)
{
    json_t                      *v;
    const char                  *key;
    ngx_http_loom_js_node_t     *n, **nodes;
    ngx_http_loom_js_seen_t     *seen;
    ngx_http_loom_jschema_t     *s;
    ngx_http_loom_js_keyword_t  *k;

    s = c->s;

    if (depth > c->max_depth) {
        ngx_http_loom_js_fail(c, "schema nested deeper than %lu levels",
                              (unsigned long) c->max_depth);
        return NULL;
    }

    if (s->nnodes >= c->max_nodes) {
        ngx_http_loom_js_fail(c, "more than %lu subschemas",
                              (unsigned long) c->max_nodes);
        return NULL;
    }

    if (!json_is_object(json) && !json_is_boolean(json)) {
        ngx_http_loom_js_fail(c, "a schema must be an object or a boolean");
        return NULL;
    }

    nodes = ngx_http_loom_js_grow(s->nodes, &s->nalloc, s->nnodes,
                                  sizeof(ngx_http_loom_js_node_t *));
    seen = ngx_http_loom_js_grow(c->seen, &c->aseen, c->nseen,
                                 sizeof(ngx_http_loom_js_seen_t));
    if (nodes) {
        s->nodes = nodes;
    }

    if (seen) {
        c->seen = seen;
    }

    n = calloc(1, sizeof(ngx_http_loom_js_node_t));

    if (nodes == NULL || seen == NULL || n == NULL) {
        free(n);
        ngx_http_loom_js_fail(c, "out of memory");
        return NULL;
    }

    s->nodes[s->nnodes++] = n;
    c->seen[c->nseen].json = json;
    c->seen[c->nseen++].node = n;

    n->min_props = -1;
    n->max_props = -1;
    n->min_contains = -1;
    n->max_contains = -1;
    n->min_items = -1;
    n->max_items = -1;
    n->min_length = -1;
    n->max_length = -1;

    if (json_is_boolean(json)) {
        n->is_bool = 1;
        n->bool_value = json_is_true(json);
        return n;
    }

    json_object_foreach(json, key, v) {

        for (k = ngx_http_loom_js_keywords; k->name; k++) {
            if (strcmp(k->name, key) == 0) {
                break;
            }
        }

        if (k->name == NULL) {
            ngx_http_loom_js_fail(c, "unsupported keyword \"%s\"", key);
            return NULL;
        }

        if (k->handler(c, n, key, v, json, depth) != NGX_OK) {
            return NULL;
        }
    }

    return n;
}


/* a subschema at <path>/kw[/seg] */

static ngx_http_loom_js_node_t *
ngx_http_loom_js_sub(ngx_http_loom_js_cctx_t *c, const char *kw,
    const char *seg, size_t len, json_t *json, ngx_uint_t depth)
{
    size_t                    save;
    ngx_http_loom_js_node_t  *n;

    save = c->plen;

    if (ngx_http_loom_js_push(c, kw, strlen(kw)) != NGX_OK
        || (seg && ngx_http_loom_js_push(c, seg, len) != NGX_OK))
    {
        return NULL;
    }

    n = ngx_http_loom_js_node(c, json, depth + 1);

    if (n) {
        c->plen = save;
        c->path[save] = '\0';
    }

    return n;
}


static ngx_int_t
ngx_http_loom_js_fail(ngx_http_loom_js_cctx_t *c, const char *fmt, ...)
{
    int      n;
    size_t   size;
    va_list  args;

    size = sizeof(c->err->text);

    va_start(args, fmt);
    n = vsnprintf((char *) c->err->text, size, fmt, args);
    va_end(args);

    if (n < 0) {
        n = 0;
    }

    if ((size_t) n < size && strcmp(fmt, "out of memory") != 0) {
        n += snprintf((char *) c->err->text + n, size - n, " at %s",
                      c->plen ? c->path : "the root");
    }

    c->err->len = ((size_t) n < size) ? (size_t) n : size - 1;

    return NGX_ERROR;
}


/* the schema path, set to a copy of path */

static ngx_int_t
ngx_http_loom_js_set_path(ngx_http_loom_js_cctx_t *c, const char *path,
    size_t len)
{
    char  *p;

    if (len + 1 > c->pcap) {
        p = realloc(c->path, len + 1);
        if (p == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        c->path = p;
        c->pcap = len + 1;
    }

    memcpy(c->path, path, len);
    c->path[len] = '\0';
    c->plen = len;

    return NGX_OK;
}


/* appends "/" and a JSON Pointer escaped segment to the schema path */

static ngx_int_t
ngx_http_loom_js_push(ngx_http_loom_js_cctx_t *c, const char *seg, size_t len)
{
    char    *p;
    size_t   i, need;

    need = c->plen + 2 * len + 2;

    if (need > c->pcap) {
        p = realloc(c->path, need * 2);
        if (p == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        c->path = p;
        c->pcap = need * 2;
    }

    c->path[c->plen++] = '/';

    for (i = 0; i < len; i++) {
        if (seg[i] == '~' || seg[i] == '/') {
            c->path[c->plen++] = '~';
            c->path[c->plen++] = (seg[i] == '~') ? '0' : '1';

        } else {
            c->path[c->plen++] = seg[i];
        }
    }

    c->path[c->plen] = '\0';

    return NGX_OK;
}


/* room for one more element; NULL when memory ran out (elts stay valid) */

static void *
ngx_http_loom_js_grow(void *elts, ngx_uint_t *nalloc, ngx_uint_t n,
    size_t size)
{
    void        *p;
    ngx_uint_t   a;

    if (n < *nalloc) {
        return elts;
    }

    a = *nalloc ? *nalloc * 2 : 8;

    p = realloc(elts, a * size);
    if (p == NULL) {
        return NULL;
    }

    *nalloc = a;

    return p;
}


static char *
ngx_http_loom_js_strndup(const char *s, size_t len)
{
    char  *p;

    p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }

    return p;
}


static ngx_int_t
ngx_http_loom_js_kw_annotation(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    if (strcmp(kw, "contentSchema") == 0) {
        if (!json_is_object(v) && !json_is_boolean(v)) {
            return ngx_http_loom_js_fail(c, "\"contentSchema\" must be a "
                                         "schema");
        }

        return NGX_OK;
    }

    if ((strcmp(kw, "title") == 0 || strcmp(kw, "description") == 0
         || strcmp(kw, "$comment") == 0 || kw[0] == 'c')
        && !json_is_string(v))
    {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a string", kw);
    }

    if ((strcmp(kw, "deprecated") == 0 || strcmp(kw, "readOnly") == 0
         || strcmp(kw, "writeOnly") == 0)
        && !json_is_boolean(v))
    {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a boolean", kw);
    }

    if (strcmp(kw, "examples") == 0 && !json_is_array(v)) {
        return ngx_http_loom_js_fail(c, "\"examples\" must be an array");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_anchor_name(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || !(isalpha((u_char) s[0]) || s[0] == '_')) {
        return NGX_DECLINED;
    }

    for (i = 1; i < len; i++) {
        if (!(isalnum((u_char) s[i]) || s[i] == '-' || s[i] == '_'
              || s[i] == '.'))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_ident(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    size_t                    len;
    ngx_uint_t                i;
    const char               *s;
    ngx_http_loom_js_prop_t  *a;

    if (!json_is_string(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a string", kw);
    }

    s = json_string_value(v);
    len = json_string_length(v);

    if (strcmp(kw, "$schema") == 0) {
        if (strcmp(s, "https://json-schema.org/draft/2020-12/schema") != 0
            && strcmp(s, "https://json-schema.org/draft/2020-12/schema#")
               != 0)
        {
            return ngx_http_loom_js_fail(c, "unsupported $schema \"%s\" "
                                         "(only draft 2020-12)", s);
        }

        return NGX_OK;
    }

    if (strcmp(kw, "$id") == 0) {
        if (schema != c->root) {
            return ngx_http_loom_js_fail(c, "\"$id\" in a subschema changes "
                                         "the base URI: not supported");
        }

        if (memchr(s, '#', len) && s[len - 1] != '#') {
            return ngx_http_loom_js_fail(c, "\"$id\" must not have a "
                                         "fragment");
        }

        c->root_id = s;
        c->root_id_len = (len && s[len - 1] == '#') ? len - 1 : len;

        return NGX_OK;
    }

    /* $anchor */

    if (ngx_http_loom_js_anchor_name(s, len) != NGX_OK) {
        return ngx_http_loom_js_fail(c, "invalid $anchor \"%s\"", s);
    }

    for (i = 0; i < c->nanchors; i++) {
        if (c->anchors[i].len == len && memcmp(c->anchors[i].name, s, len)
                                        == 0)
        {
            return ngx_http_loom_js_fail(c, "duplicate $anchor \"%s\"", s);
        }
    }

    a = ngx_http_loom_js_grow(c->anchors, &c->aanchors, c->nanchors,
                              sizeof(ngx_http_loom_js_prop_t));
    if (a == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    c->anchors = a;
    a[c->nanchors].name = s;
    a[c->nanchors].len = len;
    a[c->nanchors++].node = n;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_loom_js_type_bit(const char *s)
{
    static const char  *names[] = { "null", "boolean", "object", "array",
                                    "number", "string", "integer", NULL };
    ngx_uint_t          i;

    for (i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            /* "number" covers the integers */
            return (i == 4) ? (NGX_HTTP_LOOM_JS_NUMBER
                               | NGX_HTTP_LOOM_JS_INTEGER)
                            : (ngx_uint_t) 1 << i;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_loom_js_kw_type(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    size_t      i;
    json_t     *t;
    ngx_uint_t  bit;

    if (json_is_string(v)) {
        n->types = ngx_http_loom_js_type_bit(json_string_value(v));

        if (n->types == 0) {
            return ngx_http_loom_js_fail(c, "unknown type \"%s\"",
                                         json_string_value(v));
        }

        return NGX_OK;
    }

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return ngx_http_loom_js_fail(c, "\"type\" must be a string or "
                                     "a non-empty array of strings");
    }

    json_array_foreach(v, i, t) {
        if (!json_is_string(t)) {
            return ngx_http_loom_js_fail(c, "\"type\" must be a string or "
                                         "a non-empty array of strings");
        }

        bit = ngx_http_loom_js_type_bit(json_string_value(t));

        if (bit == 0) {
            return ngx_http_loom_js_fail(c, "unknown type \"%s\"",
                                         json_string_value(t));
        }

        n->types |= bit;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_value(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    json_t  *copy;

    if (kw[0] == 'u') {
        if (!json_is_boolean(v)) {
            return ngx_http_loom_js_fail(c, "\"uniqueItems\" must be a "
                                         "boolean");
        }

        n->unique_items = json_is_true(v);
        return NGX_OK;
    }

    if (kw[0] == 'e' && !json_is_array(v)) {
        return ngx_http_loom_js_fail(c, "\"enum\" must be an array");
    }

    copy = json_deep_copy(v);
    if (copy == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    if (kw[0] == 'e') {
        n->enum_values = copy;

    } else {
        n->const_value = copy;
        n->has_const = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_count(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    double     d;
    ngx_int_t  value;

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        value = (json_integer_value(v) > NGX_MAX_INT_T_VALUE / 2)
                ? NGX_MAX_INT_T_VALUE / 2 : (ngx_int_t) json_integer_value(v);

    } else if (json_is_real(v) && (d = json_real_value(v)) >= 0
               && d == floor(d) && d < 1e18)
    {
        value = (ngx_int_t) d;

    } else {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a non-negative "
                                     "integer", kw);
    }

    if (strcmp(kw, "minProperties") == 0) {
        n->min_props = value;

    } else if (strcmp(kw, "maxProperties") == 0) {
        n->max_props = value;

    } else if (strcmp(kw, "minItems") == 0) {
        n->min_items = value;

    } else if (strcmp(kw, "maxItems") == 0) {
        n->max_items = value;

    } else if (strcmp(kw, "minContains") == 0) {
        n->min_contains = value;

    } else if (strcmp(kw, "maxContains") == 0) {
        n->max_contains = value;

    } else if (strcmp(kw, "minLength") == 0) {
        n->min_length = value;

    } else {
        n->max_length = value;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_number(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    ngx_http_loom_js_num_t  *num;

    if (!json_is_number(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a number", kw);
    }

    if (strcmp(kw, "minimum") == 0) {
        num = &n->minimum;

    } else if (strcmp(kw, "maximum") == 0) {
        num = &n->maximum;

    } else if (strcmp(kw, "exclusiveMinimum") == 0) {
        num = &n->exclusive_min;

    } else if (strcmp(kw, "exclusiveMaximum") == 0) {
        num = &n->exclusive_max;

    } else {
        if (json_number_value(v) <= 0) {
            return ngx_http_loom_js_fail(c, "\"multipleOf\" must be "
                                         "greater than 0");
        }

        num = &n->multiple_of;
    }

    num->set = 1;
    num->d = json_number_value(v);
    num->is_int = json_is_integer(v);
    num->i = json_is_integer(v) ? json_integer_value(v) : 0;

    return NGX_OK;
}


static pcre2_code *
ngx_http_loom_js_regex(ngx_http_loom_js_cctx_t *c, const char *s, size_t len)
{
    int          rc;
    PCRE2_SIZE   off;
    pcre2_code  *re;
    u_char       msg[128];

    /* ECMA-262 flavour where PCRE2 has an option for it */

    re = pcre2_compile((PCRE2_SPTR) s, len,
                       PCRE2_UTF|PCRE2_DOLLAR_ENDONLY|PCRE2_ALT_BSUX,
                       &rc, &off, NULL);

    if (re == NULL) {
        if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0) {
            msg[0] = '\0';
        }

        ngx_http_loom_js_fail(c, "invalid regular expression \"%s\" "
                              "(%s at offset %d)", s, msg, (int) off);
    }

    return re;
}


static ngx_int_t
ngx_http_loom_js_kw_string(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    if (!json_is_string(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a string", kw);
    }

    if (kw[0] == 'p') {
        n->pattern = ngx_http_loom_js_regex(c, json_string_value(v),
                                            json_string_length(v));

        return n->pattern ? NGX_OK : NGX_ERROR;
    }

    n->format = ngx_http_loom_js_format_id(json_string_value(v),
                                           json_string_length(v));

    if (c->flags & NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT) {
        if (n->format == NGX_HTTP_LOOM_JS_FMT_NONE) {
            return ngx_http_loom_js_fail(c, "unsupported format \"%s\"",
                                         json_string_value(v));
        }

        n->format_assert = 1;
    }

    return NGX_OK;
}


/* a unique, non-empty array of strings, kept as names */

static ngx_int_t
ngx_http_loom_js_name_list(ngx_http_loom_js_cctx_t *c, const char *kw,
    json_t *v, ngx_http_loom_js_prop_t **names, ngx_uint_t *n)
{
    size_t                    i, k;
    json_t                   *s;
    ngx_http_loom_js_prop_t  *p;

    if (!json_is_array(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be an array of strings",
                                     kw);
    }

    p = calloc(json_array_size(v) + 1, sizeof(ngx_http_loom_js_prop_t));
    if (p == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    *names = p;
    *n = 0;

    json_array_foreach(v, i, s) {
        if (!json_is_string(s)) {
            return ngx_http_loom_js_fail(c, "\"%s\" must be an array of "
                                         "strings", kw);
        }

        for (k = 0; k < i; k++) {
            if (json_equal(s, json_array_get(v, k))) {
                return ngx_http_loom_js_fail(c, "\"%s\" lists \"%s\" twice",
                                             kw, json_string_value(s));
            }
        }

        p[i].len = json_string_length(s);
        p[i].name = ngx_http_loom_js_strndup(json_string_value(s), p[i].len);

        if (p[i].name == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        (*n)++;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_names(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    return ngx_http_loom_js_name_list(c, kw, v, &n->required, &n->nrequired);
}


static ngx_int_t
ngx_http_loom_js_kw_dep_required(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    size_t                   len, save;
    json_t                  *list;
    ngx_int_t                rc;
    const char              *key;
    ngx_http_loom_js_dep_t  *d;

    if (!json_is_object(v)) {
        return ngx_http_loom_js_fail(c, "\"dependentRequired\" must be an "
                                     "object");
    }

    n->dep_required = calloc(json_object_size(v) + 1,
                             sizeof(ngx_http_loom_js_dep_t));
    if (n->dep_required == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    json_object_keylen_foreach(v, key, len, list) {
        d = &n->dep_required[n->ndep_required];

        d->name = ngx_http_loom_js_strndup(key, len);
        if (d->name == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        d->len = len;
        n->ndep_required++;

        save = c->plen;

        if (ngx_http_loom_js_push(c, kw, strlen(kw)) != NGX_OK
            || ngx_http_loom_js_push(c, key, len) != NGX_OK)
        {
            return NGX_ERROR;
        }

        rc = ngx_http_loom_js_name_list(c, kw, list, &d->required,
                                        &d->nrequired);
        if (rc != NGX_OK) {
            return rc;
        }

        c->plen = save;
        c->path[save] = '\0';
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_schema(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    ngx_http_loom_js_node_t  *sub, **where;

    if (strcmp(kw, "items") == 0 && json_is_array(v)) {
        return ngx_http_loom_js_fail(c, "\"items\" must be a schema (an "
                                     "array of schemas is \"prefixItems\" "
                                     "in draft 2020-12)");
    }

    sub = ngx_http_loom_js_sub(c, kw, NULL, 0, v, depth);
    if (sub == NULL) {
        return NGX_ERROR;
    }

    switch (kw[0]) {
    case 'a':
        where = &n->additional;
        break;
    case 'p':
        where = &n->property_names;
        break;
    case 'c':
        where = &n->contains;
        break;
    case 'n':
        where = &n->not;
        break;
    case 'i':
        where = (kw[1] == 'f') ? &n->if_ : &n->items;
        break;
    case 't':
        where = &n->then_;
        break;
    default: /* else */
        where = &n->else_;
    }

    *where = sub;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_schemas(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    char                       seg[NGX_INT_T_LEN + 1];
    size_t                     i;
    json_t                    *sub;
    ngx_uint_t                *count;
    ngx_http_loom_js_node_t  **list;

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a non-empty array "
                                     "of schemas", kw);
    }

    list = calloc(json_array_size(v), sizeof(ngx_http_loom_js_node_t *));
    if (list == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    if (kw[0] == 'p') {
        n->prefix = list;
        count = &n->nprefix;

    } else if (kw[1] == 'l') {
        n->all_of = list;
        count = &n->nall_of;

    } else if (kw[0] == 'a') {
        n->any_of = list;
        count = &n->nany_of;

    } else {
        n->one_of = list;
        count = &n->none_of;
    }

    json_array_foreach(v, i, sub) {
        snprintf(seg, sizeof(seg), "%lu", (unsigned long) i);

        list[i] = ngx_http_loom_js_sub(c, kw, seg, strlen(seg), sub, depth);
        if (list[i] == NULL) {
            return NGX_ERROR;
        }

        (*count)++;
    }

    return NGX_OK;
}


static int
ngx_http_loom_js_prop_cmp(const void *one, const void *two)
{
    const ngx_http_loom_js_prop_t  *a = one, *b = two;

    if (a->len != b->len) {
        return (a->len < b->len) ? -1 : 1;
    }

    return memcmp(a->name, b->name, a->len);
}


/* properties, patternProperties, dependentSchemas, $defs */

static ngx_int_t
ngx_http_loom_js_kw_map(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    size_t                       len, size;
    json_t                      *sub;
    const char                  *key;
    ngx_http_loom_js_node_t     *node;
    ngx_http_loom_js_prop_t     *props, *p;
    ngx_http_loom_js_pattern_t  *pat;

    if (!json_is_object(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be an object", kw);
    }

    size = json_object_size(v) + 1;
    props = NULL;
    pat = NULL;

    if (kw[0] == 'p' && kw[1] == 'r') {
        props = n->props = calloc(size, sizeof(ngx_http_loom_js_prop_t));

    } else if (kw[0] == 'd') {
        props = n->dep_schemas = calloc(size, sizeof(ngx_http_loom_js_prop_t));

    } else if (kw[0] == 'p') {
        pat = n->patterns = calloc(size, sizeof(ngx_http_loom_js_pattern_t));
        if (pat == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }
    }

    if (props == NULL && pat == NULL && kw[0] != '$') {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    json_object_keylen_foreach(v, key, len, sub) {

        node = ngx_http_loom_js_sub(c, kw, key, len, sub, depth);
        if (node == NULL) {
            return NGX_ERROR;
        }

        if (pat) {
            pat[n->npatterns].node = node;
            pat[n->npatterns].re = ngx_http_loom_js_regex(c, key, len);

            if (pat[n->npatterns].re == NULL) {
                return NGX_ERROR;
            }

            n->npatterns++;
            continue;
        }

        if (props == NULL) {
            continue;
        }

        p = (props == n->props) ? &props[n->nprops++]
                                : &props[n->ndep_schemas++];

        p->name = ngx_http_loom_js_strndup(key, len);
        if (p->name == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        p->len = len;
        p->node = node;
    }

    if (props == n->props && props) {
        qsort(props, n->nprops, sizeof(ngx_http_loom_js_prop_t),
              ngx_http_loom_js_prop_cmp);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_ref(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    ngx_http_loom_js_pending_t  *p;

    if (!json_is_string(v)) {
        return ngx_http_loom_js_fail(c, "\"$ref\" must be a string");
    }

    p = ngx_http_loom_js_grow(c->refs, &c->arefs, c->nrefs,
                              sizeof(ngx_http_loom_js_pending_t));
    if (p == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    c->refs = p;
    p = &c->refs[c->nrefs];

    p->node = n;
    p->ref = ngx_http_loom_js_strndup(json_string_value(v),
                                      json_string_length(v));
    p->path = ngx_http_loom_js_strndup(c->plen ? c->path : "", c->plen);

    if (p->ref == NULL || p->path == NULL) {
        free(p->ref);
        free(p->path);
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    c->nrefs++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_hex(u_char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }

    ch |= 0x20;

    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }

    return -1;
}


/* the JSON value a JSON Pointer (already percent-decoded) names */

static json_t *
ngx_http_loom_js_pointer(json_t *root, u_char *p, u_char *last,
    ngx_uint_t *segments)
{
    u_char   *seg, *d;
    size_t    idx;
    json_t   *v;

    v = root;
    *segments = 0;

    while (p < last) {
        /* p is at "/" */
        seg = ++p;
        d = seg;

        while (p < last && *p != '/') {
            if (*p == '~') {
                if (p + 1 == last || (p[1] != '0' && p[1] != '1')) {
                    return NULL;
                }

                *d++ = (p[1] == '0') ? '~' : '/';
                p += 2;
                continue;
            }

            *d++ = *p++;
        }

        (*segments)++;

        if (json_is_object(v)) {
            v = json_object_getn(v, (char *) seg, d - seg);

        } else if (json_is_array(v)) {
            if (d == seg || (seg[0] == '0' && d - seg > 1)) {
                return NULL;
            }

            idx = 0;
            while (seg < d) {
                if (*seg < '0' || *seg > '9' || idx > 100000000) {
                    return NULL;
                }

                idx = idx * 10 + (*seg++ - '0');
            }

            v = json_array_get(v, idx);

        } else {
            return NULL;
        }

        if (v == NULL) {
            return NULL;
        }
    }

    return v;
}


static ngx_int_t
ngx_http_loom_js_resolve(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_pending_t *p)
{
    char                     *ref;
    u_char                   *buf, *d, *s, *last;
    size_t                    len;
    json_t                   *target;
    ngx_int_t                 hi, lo;
    ngx_uint_t                i, segments;
    ngx_http_loom_js_node_t  *n, *owner;

    ref = p->ref;
    owner = p->node;
    len = strlen(ref);

    /* errors name the place of the $ref */

    if (ngx_http_loom_js_set_path(c, p->path, strlen(p->path)) != NGX_OK) {
        return NGX_ERROR;
    }

    if (c->root_id && len >= c->root_id_len
        && memcmp(ref, c->root_id, c->root_id_len) == 0
        && (len == c->root_id_len || ref[c->root_id_len] == '#'))
    {
        ref += c->root_id_len;
        len -= c->root_id_len;
    }

    if (len == 0) {
        ref = "#";
        len = 1;
    }

    if (ref[0] != '#') {
        return ngx_http_loom_js_fail(c, "remote $ref \"%s\" is not "
                                     "supported", p->ref);
    }

    buf = malloc(len);
    if (buf == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    /* percent-decoding of the fragment */

    d = buf;
    for (s = (u_char *) ref + 1, last = (u_char *) ref + len; s < last; s++) {
        if (*s == '%') {
            if (last - s < 3
                || (hi = ngx_http_loom_js_hex(s[1])) < 0
                || (lo = ngx_http_loom_js_hex(s[2])) < 0)
            {
                free(buf);
                return ngx_http_loom_js_fail(c, "invalid $ref \"%s\"",
                                             p->ref);
            }

            *d++ = (u_char) (hi * 16 + lo);
            s += 2;
            continue;
        }

        *d++ = *s;
    }

    if (d > buf && buf[0] != '/') {
        /* a plain name: $anchor */

        for (i = 0; i < c->nanchors; i++) {
            if (c->anchors[i].len == (size_t) (d - buf)
                && memcmp(c->anchors[i].name, buf, d - buf) == 0)
            {
                owner->ref = c->anchors[i].node;
                free(buf);
                return NGX_OK;
            }
        }

        free(buf);
        return ngx_http_loom_js_fail(c, "$ref \"%s\": no such $anchor",
                                     p->ref);
    }

    target = ngx_http_loom_js_pointer(c->root, buf, d, &segments);
    free(buf);

    if (target == NULL) {
        return ngx_http_loom_js_fail(c, "$ref \"%s\" points to nothing",
                                     p->ref);
    }

    for (i = 0; i < c->nseen; i++) {
        if (c->seen[i].json == target) {
            owner->ref = c->seen[i].node;
            return NGX_OK;
        }
    }

    /* a schema in a place no keyword compiled: compile it here */

    if (!json_is_object(target) && !json_is_boolean(target)) {
        return ngx_http_loom_js_fail(c, "$ref \"%s\" points to a value "
                                     "that is not a schema", p->ref);
    }

    if (ngx_http_loom_js_set_path(c, ref + 1, len - 1) != NGX_OK) {
        return NGX_ERROR;
    }

    n = ngx_http_loom_js_node(c, target, segments);
    if (n == NULL) {
        return NGX_ERROR;
    }

    owner->ref = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_cycle_edge(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n)
{
    ngx_uint_t  i;

    if (n == NULL || n->done) {
        return NGX_OK;
    }

    if (n->visiting) {
        /* a $ref on the cycle names the place */

        c->plen = 0;

        for (i = 0; i < c->nrefs; i++) {
            if (c->refs[i].node->visiting && c->refs[i].node->ref->visiting) {
                return ngx_http_loom_js_fail(c, "$ref \"%s\" at %s makes a "
                                             "cycle that does not descend "
                                             "into the instance",
                                             c->refs[i].ref,
                                             c->refs[i].path[0]
                                             ? c->refs[i].path : "the root");
            }
        }

        return ngx_http_loom_js_fail(c, "$ref cycle");
    }

    return ngx_http_loom_js_cycles(c, n);
}


/* depth-first over the applicators that stay at the same instance */

static ngx_int_t
ngx_http_loom_js_cycles(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n)
{
    ngx_uint_t  i;

    if (n->done) {
        return NGX_OK;
    }

    n->visiting = 1;

    for (i = 0; i < n->nall_of; i++) {
        if (ngx_http_loom_js_cycle_edge(c, n->all_of[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < n->nany_of; i++) {
        if (ngx_http_loom_js_cycle_edge(c, n->any_of[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < n->none_of; i++) {
        if (ngx_http_loom_js_cycle_edge(c, n->one_of[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < n->ndep_schemas; i++) {
        if (ngx_http_loom_js_cycle_edge(c, n->dep_schemas[i].node)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_loom_js_cycle_edge(c, n->not) != NGX_OK
        || ngx_http_loom_js_cycle_edge(c, n->if_) != NGX_OK
        || ngx_http_loom_js_cycle_edge(c, n->then_) != NGX_OK
        || ngx_http_loom_js_cycle_edge(c, n->else_) != NGX_OK
        || ngx_http_loom_js_cycle_edge(c, n->ref) != NGX_OK)
    {
        return NGX_ERROR;
    }

    n->visiting = 0;
    n->done = 1;

    return NGX_OK;
}
