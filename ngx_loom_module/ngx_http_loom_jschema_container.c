/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"


/*
 * The object and array keywords of a validation (the rest is in
 * ngx_http_loom_jschema_validate.c).
 */


const ngx_http_loom_js_prop_t *
ngx_http_loom_js_find(const ngx_http_loom_js_node_t *n, const char *key,
    size_t len)
{
    int                             c;
    ngx_uint_t                      lo, hi, mid;
    const ngx_http_loom_js_prop_t  *p;

    lo = 0;
    hi = n->nprops;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        p = &n->props[mid];

        if (p->len != len) {
            c = (len < p->len) ? -1 : 1;

        } else {
            c = memcmp(key, p->name, len);
        }

        if (c == 0) {
            return p;
        }

        if (c < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_loom_js_required(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i;
    const ngx_http_loom_js_prop_t  *p;

    rc = NGX_OK;

    for (i = 0; i < n->nrequired; i++) {
        p = &n->required[i];

        if (json_object_getn(inst, p->name, p->len) == NULL) {
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                   "required", "property \"%.40s\" missing",
                                   p->name));
        }
    }

    return rc;
}


ngx_int_t
ngx_http_loom_js_object(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    int                             m;
    size_t                          len, size;
    json_t                         *value, *name;
    ngx_int_t                       rc, r;
    size_t                          idx;
    ngx_uint_t                      i, k, matched, found;
    const char                     *key;
    const ngx_http_loom_js_dep_t   *d;
    const ngx_http_loom_js_prop_t  *p;

    rc = NGX_OK;
    found = 0;
    size = json_object_size(inst);

    if (n->min_props >= 0 && size < (size_t) n->min_props) {
        ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                               "minProperties", "fewer than %ld properties",
                               (long) n->min_props));
    }

    if (n->max_props >= 0 && size > (size_t) n->max_props) {
        ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                               "maxProperties", "more than %ld properties",
                               (long) n->max_props));
    }

    if (n->nrequired && !n->required_in_props) {
        ngx_http_loom_js_check(v, rc,
                               ngx_http_loom_js_required(v, n, inst));
    }

    for (i = 0; i < n->ndep_required; i++) {
        d = &n->dep_required[i];

        if (json_object_getn(inst, d->name, d->len) == NULL) {
            continue;
        }

        for (k = 0; k < d->nrequired; k++) {
            p = &d->required[k];

            if (json_object_getn(inst, p->name, p->len) == NULL) {
                ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                       "dependentRequired", "property "
                                       "\"%.30s\" missing (needed by "
                                       "\"%.30s\")", p->name, d->name));
            }
        }
    }

    for (i = 0; i < n->ndep_schemas; i++) {
        p = &n->dep_schemas[i];

        if (json_object_getn(inst, p->name, p->len) != NULL) {
            ngx_http_loom_js_check(v, rc,
                                   ngx_http_loom_js_inplace(v, p->node, inst,
                                                            0));
        }
    }

    if (n->nprops == 0 && n->npatterns == 0 && n->additional == NULL
        && n->property_names == NULL)
    {
        return rc;
    }

    /* one pass over the members: cheaper than a hash lookup per name */

    idx = 0;

    json_object_keylen_foreach(inst, key, len, value) {

        if (n->property_names) {
            name = json_stringn_nocheck(key, len);
            if (name == NULL) {
                v->nomem = 1;
                return NGX_DECLINED;
            }

            r = ngx_http_loom_js_try(v, n->property_names, name);
            json_decref(name);

            if (r != NGX_OK) {
                ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                       "propertyNames", "property name "
                                       "\"%.40s\" not allowed", key));
            }
        }

        matched = 0;

        p = ngx_http_loom_js_find(n, key, len);

        if (p) {
            matched = 1;
            found += p->required;
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_member(v, p->node,
                                   value, key, len));
        }

        for (i = 0; i < n->npatterns; i++) {
            m = ngx_http_loom_js_regex_match(v->s, n->patterns[i].re, key,
                                             len);
            if (m == 0) {
                continue;
            }

            if (m < 0) {
                ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                       "patternProperties", "pattern match "
                                       "gave up (limit)"));
                continue;
            }

            matched = 1;
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_member(v,
                                   n->patterns[i].node, value, key, len));
        }

        if (!matched && n->additional) {
            matched = 1;
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_member(v,
                                   n->additional, value, key, len));
        }

        if (matched) {
            ngx_http_loom_js_mark(v->ev, idx);
        }

        idx++;
    }

    /* every required name is a property: the pass counted them */

    if (n->required_in_props && found < n->nrequired) {
        ngx_http_loom_js_check(v, rc,
                               ngx_http_loom_js_required(v, n, inst));
    }

    return rc;
}


ngx_int_t
ngx_http_loom_js_array(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    size_t      i, k, size, found;
    json_t     *item;
    ngx_int_t   rc, min;

    rc = NGX_OK;
    size = json_array_size(inst);

    if (n->min_items >= 0 && size < (size_t) n->min_items) {
        ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v, "minItems",
                               "fewer than %ld items", (long) n->min_items));
    }

    if (n->max_items >= 0 && size > (size_t) n->max_items) {
        ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v, "maxItems",
                               "more than %ld items", (long) n->max_items));
    }

    if (n->unique_items) {
        for (i = 1; i < size; i++) {
            for (k = 0; k < i; k++) {
                if (ngx_http_loom_js_equal(json_array_get(inst, i),
                                           json_array_get(inst, k)))
                {
                    break;
                }
            }

            if (k < i) {
                ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                       "uniqueItems", "items %lu and %lu "
                                       "are equal", (unsigned long) k,
                                       (unsigned long) i));
                break;
            }
        }
    }

    json_array_foreach(inst, i, item) {
        if (i < n->nprefix) {
            ngx_http_loom_js_mark(v->ev, i);
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_item(v,
                                   n->prefix[i], item, i));

        } else if (n->items) {
            ngx_http_loom_js_mark(v->ev, i);
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_item(v, n->items,
                                   item, i));

        } else {
            break;
        }
    }

    if (n->contains) {
        found = 0;
        min = (n->min_contains >= 0) ? n->min_contains : 1;

        json_array_foreach(inst, i, item) {
            if (ngx_http_loom_js_try(v, n->contains, item) == NGX_OK) {
                found++;
                ngx_http_loom_js_mark(v->ev, i);

                /* all of them are counted for maxContains and unevaluated */
                if (n->max_contains < 0 && v->ev == NULL
                    && found >= (size_t) min)
                {
                    break;
                }
            }
        }

        if (found < (size_t) min) {
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                   n->min_contains >= 0 ? "minContains"
                                                        : "contains",
                                   "fewer than %ld items match \"contains\"",
                                   (long) min));
        }

        if (n->max_contains >= 0 && found > (size_t) n->max_contains) {
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v,
                                   "maxContains", "more than %ld items "
                                   "match \"contains\"",
                                   (long) n->max_contains));
        }
    }

    return rc;
}
