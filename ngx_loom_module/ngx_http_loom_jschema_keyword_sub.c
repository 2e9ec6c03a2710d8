/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <stdio.h>


/*
 * The keywords that hold subschemas or property names: required,
 * dependentRequired, the single-schema and schema-array applicators,
 * properties, patternProperties, dependentSchemas, $defs and $ref.
 */


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


ngx_int_t
ngx_http_loom_js_kw_names(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    return ngx_http_loom_js_name_list(c, kw, v, &n->required, &n->nrequired);
}


ngx_int_t
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


ngx_int_t
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
    case 'u':
        where = (kw[11] == 'P') ? &n->unevaluated_props
                                : &n->unevaluated_items;
        break;
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


ngx_int_t
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

ngx_int_t
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


ngx_int_t
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
