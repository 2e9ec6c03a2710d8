/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"


/*
 * Compilation of a draft 2020-12 schema into nodes.  Every keyword of a
 * schema object goes through the table of ngx_http_loom_jschema_keyword.c:
 * one that is not there is refused, never ignored.  $ref targets are
 * resolved once the whole tree is compiled; a target in a place no keyword
 * compiles (e.g. inside "enum") is compiled on demand.  A cycle of
 * in-place applicators ($ref, allOf, anyOf, oneOf, not, if/then/else,
 * dependentSchemas) would recurse without consuming the instance and is
 * refused (ngx_http_loom_jschema_ref.c).
 */


static ngx_http_loom_js_node_t *ngx_http_loom_js_node(
    ngx_http_loom_js_cctx_t *c, json_t *json, ngx_uint_t depth);
static void ngx_http_loom_js_checks(ngx_http_loom_js_node_t *n);


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
    c.node = ngx_http_loom_js_node;

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

        ngx_http_loom_js_checks(s->nodes[i]);
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


static void
ngx_http_loom_js_checks(ngx_http_loom_js_node_t *n)
{
    ngx_uint_t                i;
    ngx_http_loom_js_prop_t  *p;

    if (n->enum_values || n->has_const) {
        n->checks |= NGX_HTTP_LOOM_JS_CHK_VALUE;
    }

    if (n->min_length >= 0 || n->max_length >= 0 || n->pattern
        || n->format_assert)
    {
        n->checks |= NGX_HTTP_LOOM_JS_CHK_STRING;
    }

    if (n->minimum.set || n->maximum.set || n->exclusive_min.set
        || n->exclusive_max.set || n->multiple_of.set)
    {
        n->checks |= NGX_HTTP_LOOM_JS_CHK_NUMBER;
    }

    /* required names that are all properties are counted in one pass */

    if (n->nrequired && n->nprops) {
        for (i = 0; i < n->nrequired; i++) {
            p = (ngx_http_loom_js_prop_t *) ngx_http_loom_js_find(n,
                                                n->required[i].name,
                                                n->required[i].len);
            if (p == NULL) {
                break;
            }

            p->required = 1;
        }

        n->required_in_props = (i == n->nrequired);
    }

    if (n->nprops || n->npatterns || n->additional || n->property_names
        || n->nrequired || n->ndep_required || n->ndep_schemas
        || n->min_props >= 0 || n->max_props >= 0)
    {
        n->checks |= NGX_HTTP_LOOM_JS_CHK_OBJECT;
    }

    if (n->nprefix || n->items || n->contains || n->min_items >= 0
        || n->max_items >= 0 || n->unique_items)
    {
        n->checks |= NGX_HTTP_LOOM_JS_CHK_ARRAY;
    }

    if (n->ref || n->nall_of || n->nany_of || n->none_of || n->not
        || n->if_)
    {
        n->checks |= NGX_HTTP_LOOM_JS_CHK_APPLY;
    }
}


void
ngx_http_loom_jschema_free(ngx_http_loom_jschema_t *s)
{
    ngx_uint_t                i, k, r;
    ngx_http_loom_js_dep_t   *d;
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
            d = &n->dep_required[k];

            for (r = 0; r < d->nrequired; r++) {
                free((char *) d->required[r].name);
            }

            free((char *) d->name);
            free(d->required);
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


/* a schema at c->path: set as c->node, the way down into subschemas */

static ngx_http_loom_js_node_t *
ngx_http_loom_js_node(ngx_http_loom_js_cctx_t *c, json_t *json,
    ngx_uint_t depth)
{
    json_t                      *v;
    const char                  *key;
    ngx_http_loom_js_node_t     *n, **nodes;
    ngx_int_t                    rc;
    ngx_http_loom_js_seen_t     *seen;
    ngx_http_loom_jschema_t     *s;

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

        rc = ngx_http_loom_js_keyword(c, n, key, v, json, depth);

        if (rc == NGX_DECLINED) {
            ngx_http_loom_js_fail(c, "unsupported keyword \"%s\"", key);
            return NULL;
        }

        if (rc != NGX_OK) {
            return NULL;
        }
    }

    return n;
}
