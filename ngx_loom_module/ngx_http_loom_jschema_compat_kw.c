/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <math.h>


/*
 * The rules of the schema comparison, keyword by keyword: b's constraint
 * holds for every instance of a when a has one at least as strict.  In
 * the reasons, "a" is c->a_name ("old" in a backward check) and "b" is
 * c->b_name.
 */


#define NGX_HTTP_LOOM_JSC_MAX_PROP  16


static const char  *ngx_http_loom_jsc_ignored[] = {
    "title", "description", "$comment", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "contentEncoding", "contentMediaType",
    "contentSchema", "$schema", "$id", "$anchor", "$defs", "$ref", "allOf",
    "properties", "patternProperties", "additionalProperties",
    "prefixItems", "items", "minContains", "maxContains", NULL
};


static ngx_int_t ngx_http_loom_jsc_keyword(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b, const char *kw, json_t *v);
static ngx_int_t ngx_http_loom_jsc_objects(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b);
static ngx_int_t ngx_http_loom_jsc_arrays(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b);


ngx_int_t
ngx_http_loom_jsc_keywords(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b)
{
    json_t      *v;
    ngx_int_t    rc;
    const char  *kw;

    rc = NGX_OK;

    json_object_foreach(b, kw, v) {
        if (ngx_http_loom_jsc_keyword(c, a, b, kw, v) != NGX_OK) {
            rc = NGX_DECLINED;

            if (c->diffs == NULL) {
                return rc;
            }
        }
    }

    if ((a->types & NGX_HTTP_LOOM_JS_OBJECT)
        && ngx_http_loom_jsc_objects(c, a, b) != NGX_OK)
    {
        rc = NGX_DECLINED;
    }

    if ((a->types & NGX_HTTP_LOOM_JS_ARRAY)
        && ngx_http_loom_jsc_arrays(c, a, b) != NGX_OK)
    {
        rc = NGX_DECLINED;
    }

    return rc;
}


/* whether the keyword is about a type a can have */

static ngx_uint_t
ngx_http_loom_jsc_applies(ngx_http_loom_jsc_conj_t *a, const char *kw)
{
    static const char  *num[] = { "minimum", "maximum", "exclusiveMinimum",
                                  "exclusiveMaximum", "multipleOf", NULL };
    static const char  *str[] = { "minLength", "maxLength", "pattern",
                                  "format", NULL };
    static const char  *arr[] = { "minItems", "maxItems", "uniqueItems",
                                  "contains", NULL };
    static const char  *obj[] = { "minProperties", "maxProperties",
                                  "required", "dependentRequired",
                                  "dependentSchemas", "propertyNames", NULL };
    const char        **k;

    for (k = num; *k; k++) {
        if (strcmp(*k, kw) == 0) {
            return a->types & (NGX_HTTP_LOOM_JS_NUMBER
                               | NGX_HTTP_LOOM_JS_INTEGER);
        }
    }

    for (k = str; *k; k++) {
        if (strcmp(*k, kw) == 0) {
            return a->types & NGX_HTTP_LOOM_JS_STRING;
        }
    }

    for (k = arr; *k; k++) {
        if (strcmp(*k, kw) == 0) {
            return a->types & NGX_HTTP_LOOM_JS_ARRAY;
        }
    }

    for (k = obj; *k; k++) {
        if (strcmp(*k, kw) == 0) {
            return a->types & NGX_HTTP_LOOM_JS_OBJECT;
        }
    }

    return 1;
}


/* a has kw (or kw2) beyond bv: > (sign 1) or < (sign -1), strictly */

static ngx_int_t
ngx_http_loom_jsc_beyond(ngx_http_loom_jsc_conj_t *a, const char *kw,
    json_t *bv, int sign)
{
    double       x, y;
    json_t      *av;
    ngx_uint_t   i;

    y = json_number_value(bv);

    for (i = 0; i < a->n; i++) {
        av = json_object_get(a->s[i], kw);

        if (json_is_number(av)) {
            x = json_number_value(av);
            if ((sign > 0) ? x > y : x < y) {
                return NGX_OK;
            }
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_jsc_numeric(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, const char *kw, json_t *v)
{
    double      q;
    json_t     *av;
    ngx_uint_t  i;

    if (!json_is_number(v)) {
        return ngx_http_loom_jsc_diff(c, "\"%s\" is not a number", kw);
    }

    if (strcmp(kw, "minimum") == 0) {
        if (ngx_http_loom_jsc_bound(a, "minimum", "exclusiveMinimum", v, 1)
            == NGX_OK)
        {
            return NGX_OK;
        }

    } else if (strcmp(kw, "maximum") == 0) {
        if (ngx_http_loom_jsc_bound(a, "maximum", "exclusiveMaximum", v, -1)
            == NGX_OK)
        {
            return NGX_OK;
        }

    } else if (strcmp(kw, "exclusiveMinimum") == 0) {
        if (ngx_http_loom_jsc_bound(a, kw, NULL, v, 1) == NGX_OK
            || ngx_http_loom_jsc_beyond(a, "minimum", v, 1) == NGX_OK)
        {
            return NGX_OK;
        }

    } else if (strcmp(kw, "exclusiveMaximum") == 0) {
        if (ngx_http_loom_jsc_bound(a, kw, NULL, v, -1) == NGX_OK
            || ngx_http_loom_jsc_beyond(a, "maximum", v, -1) == NGX_OK)
        {
            return NGX_OK;
        }

    } else {
        /* multipleOf: a's must be a multiple of b's */

        for (i = 0; i < a->n; i++) {
            av = json_object_get(a->s[i], "multipleOf");

            if (json_is_number(av) && json_number_value(v) > 0) {
                q = json_number_value(av) / json_number_value(v);

                if (isfinite(q)
                    && fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q)))
                {
                    return NGX_OK;
                }
            }
        }

        if (json_number_value(v) == 1
            && (a->types & ~NGX_HTTP_LOOM_JS_INTEGER
                & (NGX_HTTP_LOOM_JS_NUMBER|NGX_HTTP_LOOM_JS_INTEGER)) == 0)
        {
            return NGX_OK;
        }
    }

    return ngx_http_loom_jsc_diff(c, "\"%s\" added or made stricter: the %s "
                                  "schema refuses numbers the %s one "
                                  "allows", kw, c->b_name, c->a_name);
}


static ngx_int_t
ngx_http_loom_jsc_count(ngx_http_loom_jsc_t *c, ngx_http_loom_jsc_conj_t *a,
    const char *kw, json_t *v)
{
    int  sign;

    sign = (kw[1] == 'i') ? 1 : -1;    /* min... or max... */

    if (ngx_http_loom_jsc_bound(a, kw, NULL, v, sign) == NGX_OK) {
        return NGX_OK;
    }

    return ngx_http_loom_jsc_diff(c, "\"%s\" %s: the %s schema refuses "
                                  "values the %s one allows", kw,
                                  (sign > 0) ? "added or raised"
                                             : "added or lowered",
                                  c->b_name, c->a_name);
}


static ngx_int_t
ngx_http_loom_jsc_required(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b, const char *kw, json_t *v)
{
    size_t      i, k;
    json_t     *name, *dep, *list;
    ngx_int_t   rc;
    ngx_uint_t  j, found;
    const char  *key;

    rc = NGX_OK;

    if (kw[0] == 'r') {
        json_array_foreach(v, i, name) {
            found = 0;

            for (j = 0; j < a->n && !found; j++) {
                found = ngx_http_loom_jsc_in(
                            json_object_get(a->s[j], "required"), name);
            }

            if (!found) {
                rc = ngx_http_loom_jsc_diff(c, "property \"%s\" is required "
                                            "by the %s schema, not by the %s "
                                            "one", json_string_value(name),
                                            c->b_name, c->a_name);
            }
        }

        return rc;
    }

    /* dependentRequired */

    json_object_foreach(v, key, list) {
        json_array_foreach(list, i, name) {
            found = 0;

            for (j = 0; j < a->n && !found; j++) {
                found = ngx_http_loom_jsc_in(
                            json_object_get(a->s[j], "required"), name);

                dep = json_object_get(json_object_get(a->s[j],
                                                      "dependentRequired"),
                                      key);
                for (k = 0; !found && k < json_array_size(dep); k++) {
                    found = ngx_http_loom_js_equal(json_array_get(dep, k),
                                                   name);
                }
            }

            if (!found) {
                rc = ngx_http_loom_jsc_diff(c, "\"dependentRequired\": "
                                            "\"%s\" needs \"%s\" in the %s "
                                            "schema, not in the %s one", key,
                                            json_string_value(name),
                                            c->b_name, c->a_name);
            }
        }
    }

    return rc;
}


static ngx_int_t
ngx_http_loom_jsc_contains(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b, json_t *v)
{
    double      amin, bmin;
    json_t     *av, *amax, *bmax;
    ngx_uint_t  i;

    bmin = json_is_number(json_object_get(b, "minContains"))
           ? json_number_value(json_object_get(b, "minContains")) : 1;
    bmax = json_object_get(b, "maxContains");

    for (i = 0; i < a->n; i++) {
        av = json_object_get(a->s[i], "contains");

        if (av == NULL || !ngx_http_loom_js_equal(av, v)) {
            continue;
        }

        amin = json_is_number(json_object_get(a->s[i], "minContains"))
               ? json_number_value(json_object_get(a->s[i], "minContains"))
               : 1;
        amax = json_object_get(a->s[i], "maxContains");

        if (amin >= bmin
            && (bmax == NULL
                || (json_is_number(amax)
                    && json_number_value(amax) <= json_number_value(bmax))))
        {
            return NGX_OK;
        }
    }

    return ngx_http_loom_jsc_diff(c, "\"contains\" (or its min/maxContains) "
                                  "added or changed: not comparable");
}


static ngx_int_t
ngx_http_loom_jsc_any_of(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *v)
{
    size_t      i, k;
    json_t     *av, *branch;
    ngx_uint_t  j, all;

    /* a branch added: every branch of a's anyOf is one of b's */

    for (j = 0; j < a->n; j++) {
        av = json_object_get(a->s[j], "anyOf");

        if (!json_is_array(av)) {
            continue;
        }

        all = 1;

        json_array_foreach(av, k, branch) {
            if (!ngx_http_loom_jsc_in(v, branch)) {
                all = 0;
                break;
            }
        }

        if (all) {
            return NGX_OK;
        }
    }

    /* or a as a whole fits one branch */

    json_array_foreach(v, i, branch) {
        if (ngx_http_loom_jsc_try(c, a->s[0], branch) == NGX_OK) {
            return NGX_OK;
        }
    }

    return ngx_http_loom_jsc_diff(c, "\"anyOf\" added or a branch removed "
                                  "or narrowed");
}


static ngx_int_t
ngx_http_loom_jsc_not(ngx_http_loom_jsc_t *c, ngx_http_loom_jsc_conj_t *a,
    json_t *v)
{
    json_t      *av, *root;
    ngx_int_t    rc;
    ngx_uint_t   i;

    /* a excludes at least what b excludes: sub(b.not, a.not) */

    for (i = 0; i < a->n; i++) {
        av = json_object_get(a->s[i], "not");

        if (av == NULL) {
            continue;
        }

        root = c->a_root;
        c->a_root = c->b_root;
        c->b_root = root;

        rc = ngx_http_loom_jsc_try(c, v, av);

        c->b_root = c->a_root;
        c->a_root = root;

        if (rc == NGX_OK) {
            return NGX_OK;
        }
    }

    return ngx_http_loom_jsc_diff(c, "\"not\" added or widened");
}


static ngx_int_t
ngx_http_loom_jsc_keyword(ngx_http_loom_jsc_t *c, ngx_http_loom_jsc_conj_t *a,
    json_t *b, const char *kw, json_t *v)
{
    json_t       *one;
    ngx_int_t     rc;
    const char  **k;

    for (k = ngx_http_loom_jsc_ignored; *k; k++) {
        if (strcmp(*k, kw) == 0) {
            return NGX_OK;
        }
    }

    if (!ngx_http_loom_jsc_applies(a, kw)) {
        return NGX_OK;
    }

    if (strcmp(kw, "type") == 0) {
        if ((a->types & ~ngx_http_loom_jsc_types(v)) == 0) {
            return NGX_OK;
        }

        return ngx_http_loom_jsc_diff(c, "\"type\" narrowed: the %s schema "
                                      "refuses types the %s one allows",
                                      c->b_name, c->a_name);
    }

    if (strcmp(kw, "enum") == 0 || strcmp(kw, "const") == 0) {
        one = NULL;

        if (kw[0] == 'c') {
            one = json_array();
            if (one == NULL || json_array_append(one, v) != 0) {
                json_decref(one);
                c->nomem = 1;
                return NGX_DECLINED;
            }
        }

        rc = ngx_http_loom_jsc_values(a, one ? one : v);
        json_decref(one);

        if (rc == NGX_OK) {
            return NGX_OK;
        }

        return ngx_http_loom_jsc_diff(c, "\"%s\" added or narrowed: the %s "
                                      "schema refuses values the %s one "
                                      "allows", kw, c->b_name, c->a_name);
    }

    if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0
        || strcmp(kw, "exclusiveMinimum") == 0
        || strcmp(kw, "exclusiveMaximum") == 0
        || strcmp(kw, "multipleOf") == 0)
    {
        return ngx_http_loom_jsc_numeric(c, a, kw, v);
    }

    if (strcmp(kw, "minLength") == 0 || strcmp(kw, "maxLength") == 0
        || strcmp(kw, "minItems") == 0 || strcmp(kw, "maxItems") == 0
        || strcmp(kw, "minProperties") == 0
        || strcmp(kw, "maxProperties") == 0)
    {
        return ngx_http_loom_jsc_count(c, a, kw, v);
    }

    if (strcmp(kw, "required") == 0 || strcmp(kw, "dependentRequired") == 0) {
        return ngx_http_loom_jsc_required(c, a, b, kw, v);
    }

    if (strcmp(kw, "uniqueItems") == 0) {
        if (json_is_false(v) || ngx_http_loom_jsc_same(a, kw, v) == NGX_OK) {
            return NGX_OK;
        }

        return ngx_http_loom_jsc_diff(c, "\"uniqueItems\" added");
    }

    if (strcmp(kw, "format") == 0
        && !(c->flags & NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT))
    {
        return NGX_OK;
    }

    if (strcmp(kw, "contains") == 0) {
        return ngx_http_loom_jsc_contains(c, a, b, v);
    }

    if (strcmp(kw, "anyOf") == 0) {
        return ngx_http_loom_jsc_any_of(c, a, v);
    }

    if (strcmp(kw, "not") == 0) {
        return ngx_http_loom_jsc_not(c, a, v);
    }

    if (strcmp(kw, "pattern") == 0 || strcmp(kw, "format") == 0
        || strcmp(kw, "oneOf") == 0 || strcmp(kw, "if") == 0
        || strcmp(kw, "then") == 0 || strcmp(kw, "else") == 0
        || strcmp(kw, "dependentSchemas") == 0
        || strcmp(kw, "propertyNames") == 0
        || strcmp(kw, "unevaluatedProperties") == 0
        || strcmp(kw, "unevaluatedItems") == 0)
    {
        if (ngx_http_loom_jsc_same(a, kw, v) == NGX_OK) {
            return NGX_OK;
        }

        return ngx_http_loom_jsc_diff(c, "\"%s\" added or changed: two "
                                      "different values cannot be compared, "
                                      "so the change counts as breaking", kw);
    }

    return ngx_http_loom_jsc_diff(c, "keyword \"%s\" cannot be compared", kw);
}


static ngx_uint_t
ngx_http_loom_jsc_trivial(json_t *s)
{
    return s == NULL || json_is_true(s)
           || (json_is_object(s) && json_object_size(s) == 0);
}


/* whether name is one b's properties or patternProperties cover */

static ngx_uint_t
ngx_http_loom_jsc_covered(ngx_http_loom_jsc_t *c, json_t *b, const char *name,
    size_t len)
{
    json_t      *v;
    const char  *pat;

    if (json_object_getn(json_object_get(b, "properties"), name, len)) {
        return 1;
    }

    json_object_foreach(json_object_get(b, "patternProperties"), pat, v) {
        if (ngx_http_loom_jsc_match(c, pat, name, len) != 0) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_loom_jsc_objects(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b)
{
    size_t       len;
    json_t      *bs, *as, *v, *badd, *out[NGX_HTTP_LOOM_JSC_MAX_PROP];
    ngx_int_t    rc;
    ngx_uint_t   i, n, closed;
    const char  *name, *pat, *apat;

    rc = NGX_OK;

    /* each property b names: what a allows for it */

    json_object_keylen_foreach(json_object_get(b, "properties"), name, len,
                               bs)
    {
        n = ngx_http_loom_jsc_prop(c, a, name, len, out,
                                   NGX_HTTP_LOOM_JSC_MAX_PROP);

        if (n && ngx_http_loom_jsc_any(c, out, n, bs, "properties", name, len)
                 != NGX_OK)
        {
            rc = NGX_DECLINED;
        }
    }

    /* each pattern of b: a's properties it matches, a's same pattern, */
    /* and a's additionalProperties */

    json_object_foreach(json_object_get(b, "patternProperties"), pat, bs) {
        for (i = 0; i < a->n; i++) {
            json_object_keylen_foreach(json_object_get(a->s[i], "properties"),
                                       name, len, v)
            {
                if (ngx_http_loom_jsc_match(c, pat, name, len) == 0) {
                    continue;
                }

                n = ngx_http_loom_jsc_prop(c, a, name, len, out,
                                           NGX_HTTP_LOOM_JSC_MAX_PROP);

                if (ngx_http_loom_jsc_any(c, out, n, bs, "properties", name,
                                          len) != NGX_OK)
                {
                    rc = NGX_DECLINED;
                }
            }

            as = json_object_get(json_object_get(a->s[i],
                                                 "patternProperties"), pat);
            if (as && ngx_http_loom_jsc_at(c, "patternProperties", pat,
                                           strlen(pat), as, bs) != NGX_OK)
            {
                rc = NGX_DECLINED;
            }

            as = json_object_get(a->s[i], "additionalProperties");
            if (as && ngx_http_loom_jsc_at(c, "patternProperties", pat,
                                           strlen(pat), as, bs) != NGX_OK)
            {
                rc = NGX_DECLINED;
            }
        }
    }

    badd = json_object_get(b, "additionalProperties");

    if (ngx_http_loom_jsc_trivial(badd)) {
        return rc;
    }

    /* b restricts the other properties: all a allows must fit */

    closed = 0;

    for (i = 0; i < a->n; i++) {
        json_object_keylen_foreach(json_object_get(a->s[i], "properties"),
                                   name, len, v)
        {
            if (ngx_http_loom_jsc_covered(c, b, name, len)) {
                continue;
            }

            n = ngx_http_loom_jsc_prop(c, a, name, len, out,
                                       NGX_HTTP_LOOM_JSC_MAX_PROP);

            if (ngx_http_loom_jsc_any(c, out, n, badd, "properties", name,
                                      len) != NGX_OK)
            {
                rc = NGX_DECLINED;
            }
        }

        json_object_foreach(json_object_get(a->s[i], "patternProperties"),
                            apat, as)
        {
            if (json_object_get(json_object_get(b, "patternProperties"),
                                apat))
            {
                continue;
            }

            if (ngx_http_loom_jsc_at(c, "patternProperties", apat,
                                     strlen(apat), as, badd) != NGX_OK)
            {
                rc = NGX_DECLINED;
            }
        }

        as = json_object_get(a->s[i], "additionalProperties");

        if (json_is_false(as)) {
            closed = 1;

        } else if (as && !closed) {
            closed = 1;

            if (ngx_http_loom_jsc_at(c, "additionalProperties", NULL, 0, as,
                                     badd) != NGX_OK)
            {
                rc = NGX_DECLINED;
            }
        }
    }

    if (!closed) {
        rc = ngx_http_loom_jsc_diff(c, "\"additionalProperties\" added or "
                                    "narrowed: the %s schema refuses "
                                    "properties the %s one allows",
                                    c->b_name, c->a_name);
    }

    return rc;
}


/* the schemas a applies to item i (i == -1: the items after all prefixes) */

static ngx_uint_t
ngx_http_loom_jsc_item(ngx_http_loom_jsc_conj_t *a, ngx_int_t i,
    json_t **out)
{
    json_t      *pre, *items;
    ngx_uint_t   k, n;

    n = 0;

    for (k = 0; k < a->n && n < NGX_HTTP_LOOM_JSC_MAX_PROP; k++) {
        pre = json_object_get(a->s[k], "prefixItems");
        items = json_object_get(a->s[k], "items");

        if (i >= 0 && (size_t) i < json_array_size(pre)) {
            out[n++] = json_array_get(pre, i);

        } else if (items) {
            out[n++] = items;
        }
    }

    return n;
}


static ngx_int_t
ngx_http_loom_jsc_arrays(ngx_http_loom_jsc_t *c,
    ngx_http_loom_jsc_conj_t *a, json_t *b)
{
    char         seg[NGX_INT_T_LEN + 1];
    size_t       max, i;
    json_t      *bpre, *bitems, *bs, *out[NGX_HTTP_LOOM_JSC_MAX_PROP];
    ngx_int_t    rc;
    ngx_uint_t   k, n;

    bpre = json_object_get(b, "prefixItems");
    bitems = json_object_get(b, "items");

    if (bpre == NULL && bitems == NULL) {
        return NGX_OK;
    }

    rc = NGX_OK;
    max = json_array_size(bpre);

    for (k = 0; k < a->n; k++) {
        max = ngx_max(max, json_array_size(json_object_get(a->s[k],
                                                           "prefixItems")));
    }

    for (i = 0; i < max; i++) {
        bs = (i < json_array_size(bpre)) ? json_array_get(bpre, i) : bitems;

        if (ngx_http_loom_jsc_trivial(bs)) {
            continue;
        }

        snprintf(seg, sizeof(seg), "%lu", (unsigned long) i);
        n = ngx_http_loom_jsc_item(a, i, out);

        if (n == 0) {
            rc = ngx_http_loom_jsc_diff(c, "item %s constrained by the %s "
                                        "schema, free in the %s one", seg,
                                        c->b_name, c->a_name);
            continue;
        }

        if (ngx_http_loom_jsc_any(c, out, n, bs, "prefixItems", seg,
                                  strlen(seg)) != NGX_OK)
        {
            rc = NGX_DECLINED;
        }
    }

    if (ngx_http_loom_jsc_trivial(bitems)) {
        return rc;
    }

    n = ngx_http_loom_jsc_item(a, -1, out);

    if (n == 0) {
        return ngx_http_loom_jsc_diff(c, "\"items\" added: the %s schema "
                                      "constrains items the %s one leaves "
                                      "free", c->b_name, c->a_name);
    }

    if (n == 1) {
        return ngx_http_loom_jsc_at(c, "items", NULL, 0, out[0], bitems)
               == NGX_OK ? rc : NGX_DECLINED;
    }

    return ngx_http_loom_jsc_any(c, out, n, bitems, "items", NULL, 0)
           == NGX_OK ? rc : NGX_DECLINED;
}
