/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <math.h>


/*
 * Validation of an instance against compiled nodes.  Without a collector
 * the first failure returns NGX_DECLINED at once.  With one, every keyword
 * is checked and each failure recorded with the instance path kept in
 * ctx->path; the branches of anyOf, oneOf, not, if, contains and
 * propertyNames are tried without recording (their failures are not the
 * instance's), and the keyword reports one failure of its own.
 */


/* instance compared to a bound: <0, 0, >0 */

static int
ngx_http_loom_js_cmp(json_t *inst, const ngx_http_loom_js_num_t *b)
{
    double      d;
    json_int_t  i;

    if (json_is_integer(inst) && b->is_int) {
        i = json_integer_value(inst);
        return (i < b->i) ? -1 : (i > b->i);
    }

    d = json_number_value(inst);

    return (d < b->d) ? -1 : (d > b->d);
}


static ngx_int_t
ngx_http_loom_js_multiple(json_t *inst, const ngx_http_loom_js_num_t *m)
{
    double  q, r;

    if (json_is_integer(inst) && m->is_int) {
        return json_integer_value(inst) % m->i == 0;
    }

    q = json_number_value(inst) / m->d;

    if (!isfinite(q)) {
        return 0;
    }

    /* decimal multiples are not exact in binary: a relative tolerance */

    r = nearbyint(q);

    return fabs(q - r) <= 1e-9 * fmax(1.0, fabs(r));
}


static ngx_int_t
ngx_http_loom_js_string(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    int          m;
    size_t       i, len, cps;
    ngx_int_t    rc;
    const char  *str;

    str = json_string_value(inst);
    len = json_string_length(inst);
    rc = NGX_OK;

    if (n->min_length >= 0 || n->max_length >= 0) {
        cps = 0;

        for (i = 0; i < len; i++) {
            cps += ((u_char) str[i] & 0xc0) != 0x80;
        }

        if (n->min_length >= 0 && cps < (size_t) n->min_length) {
            rc = ngx_http_loom_js_failed(v, "minLength", "shorter than %ld "
                                         "characters", (long) n->min_length);
            if (!ngx_http_loom_js_go_on(v)) {
                return rc;
            }
        }

        if (n->max_length >= 0 && cps > (size_t) n->max_length) {
            rc = ngx_http_loom_js_failed(v, "maxLength", "longer than %ld "
                                         "characters", (long) n->max_length);
            if (!ngx_http_loom_js_go_on(v)) {
                return rc;
            }
        }
    }

    if (n->pattern) {
        m = ngx_http_loom_js_regex_match(v->s, n->pattern, str, len);

        if (m != 1) {
            rc = ngx_http_loom_js_failed(v, "pattern", m == 0
                                         ? "does not match the pattern"
                                         : "pattern match gave up (limit)");
            if (!ngx_http_loom_js_go_on(v)) {
                return rc;
            }
        }
    }

    if (n->format_assert
        && ngx_http_loom_js_format_check(n->format, (u_char *) str, len)
           != NGX_OK)
    {
        rc = ngx_http_loom_js_failed(v, "format", "not a valid format");
    }

    return rc;
}


static ngx_int_t
ngx_http_loom_js_number(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    ngx_int_t  rc;

    rc = NGX_OK;

    if (n->minimum.set && ngx_http_loom_js_cmp(inst, &n->minimum) < 0) {
        rc = ngx_http_loom_js_failed(v, "minimum", "less than %g",
                                     n->minimum.d);
        if (!ngx_http_loom_js_go_on(v)) {
            return rc;
        }
    }

    if (n->maximum.set && ngx_http_loom_js_cmp(inst, &n->maximum) > 0) {
        rc = ngx_http_loom_js_failed(v, "maximum", "greater than %g",
                                     n->maximum.d);
        if (!ngx_http_loom_js_go_on(v)) {
            return rc;
        }
    }

    if (n->exclusive_min.set
        && ngx_http_loom_js_cmp(inst, &n->exclusive_min) <= 0)
    {
        rc = ngx_http_loom_js_failed(v, "exclusiveMinimum", "not greater "
                                     "than %g", n->exclusive_min.d);
        if (!ngx_http_loom_js_go_on(v)) {
            return rc;
        }
    }

    if (n->exclusive_max.set
        && ngx_http_loom_js_cmp(inst, &n->exclusive_max) >= 0)
    {
        rc = ngx_http_loom_js_failed(v, "exclusiveMaximum", "not less "
                                     "than %g", n->exclusive_max.d);
        if (!ngx_http_loom_js_go_on(v)) {
            return rc;
        }
    }

    if (n->multiple_of.set
        && !ngx_http_loom_js_multiple(inst, &n->multiple_of))
    {
        rc = ngx_http_loom_js_failed(v, "multipleOf", "not a multiple of %g",
                                     n->multiple_of.d);
    }

    return rc;
}


static ngx_int_t
ngx_http_loom_js_applicators(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    ngx_int_t   rc;
    ngx_uint_t  i, passed;

    rc = NGX_OK;

    if (n->ref) {
        ngx_http_loom_js_check(v, rc,
                               ngx_http_loom_js_inplace(v, n->ref, inst, 0));
    }

    for (i = 0; i < n->nall_of; i++) {
        ngx_http_loom_js_check(v, rc,
                               ngx_http_loom_js_inplace(v, n->all_of[i], inst,
                                                        0));
    }

    if (n->nany_of) {
        passed = 0;

        /* every branch, when what they evaluate is needed */

        for (i = 0; i < n->nany_of && (passed == 0 || v->ev); i++) {
            if (ngx_http_loom_js_inplace(v, n->any_of[i], inst, 1) == NGX_OK) {
                passed++;
            }
        }

        if (passed == 0) {
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v, "anyOf",
                                   "matches none of the schemas"));
        }
    }

    if (n->none_of) {
        passed = 0;

        for (i = 0; i < n->none_of && passed < 2; i++) {
            if (ngx_http_loom_js_inplace(v, n->one_of[i], inst, 1) == NGX_OK) {
                passed++;
            }
        }

        if (passed != 1) {
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v, "oneOf",
                                   passed ? "matches more than one schema"
                                          : "matches none of the schemas"));
        }
    }

    /* not: what it evaluates never counts */

    if (n->not && ngx_http_loom_js_try(v, n->not, inst) == NGX_OK) {
        ngx_http_loom_js_check(v, rc, ngx_http_loom_js_failed(v, "not",
                               "matches a schema it must not match"));
    }

    if (n->if_) {
        if (ngx_http_loom_js_inplace(v, n->if_, inst, 1) == NGX_OK) {
            if (n->then_) {
                ngx_http_loom_js_check(v, rc,
                                       ngx_http_loom_js_inplace(v, n->then_,
                                                                inst, 0));
            }

        } else if (n->else_) {
            ngx_http_loom_js_check(v, rc,
                                   ngx_http_loom_js_inplace(v, n->else_,
                                                            inst, 0));
        }
    }

    return rc;
}


static ngx_int_t ngx_http_loom_js_eval(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);
static ngx_int_t ngx_http_loom_js_unevaluated(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);
static ngx_int_t ngx_http_loom_js_node_eval(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst);


/* a subschema, to the instance at hand: set as v->eval */

static ngx_int_t
ngx_http_loom_js_eval(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    size_t                  i, words;
    ngx_int_t               rc;
    ngx_http_loom_js_ev_t  *outer, own;

    if ((n->unevaluated_props == NULL || !json_is_object(inst))
        && (n->unevaluated_items == NULL || !json_is_array(inst)))
    {
        return ngx_http_loom_js_node_eval(v, n, inst);
    }

    /* unevaluated*: the other keywords say what they evaluated */

    own.n = json_is_object(inst) ? json_object_size(inst)
                                 : json_array_size(inst);
    words = own.n / 64 + 1;

    own.bits = calloc(words, sizeof(uint64_t));
    if (own.bits == NULL) {
        v->nomem = 1;
        return NGX_DECLINED;
    }

    outer = v->ev;
    v->ev = &own;

    rc = ngx_http_loom_js_node_eval(v, n, inst);

    if (rc == NGX_OK || ngx_http_loom_js_go_on(v)) {
        if (ngx_http_loom_js_unevaluated(v, n, inst) != NGX_OK) {
            rc = NGX_DECLINED;
        }
    }

    v->ev = outer;

    if (rc == NGX_OK && outer) {
        for (i = 0; i < words; i++) {
            outer->bits[i] |= own.bits[i];
        }
    }

    free(own.bits);

    return rc;
}


static ngx_int_t
ngx_http_loom_js_unevaluated(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    size_t                  i, len;
    json_t                 *value;
    ngx_int_t               rc;
    const char             *key;
    ngx_http_loom_js_ev_t  *ev;

    rc = NGX_OK;
    ev = v->ev;
    i = 0;

    if (json_is_object(inst)) {
        json_object_keylen_foreach(inst, key, len, value) {
            if (!(ev->bits[i / 64] & ((uint64_t) 1 << (i % 64)))) {
                ngx_http_loom_js_check(v, rc, ngx_http_loom_js_member(v,
                                       n->unevaluated_props, value, key,
                                       len));
                ngx_http_loom_js_mark(ev, i);
            }

            i++;
        }

        return rc;
    }

    json_array_foreach(inst, i, value) {
        if (!(ev->bits[i / 64] & ((uint64_t) 1 << (i % 64)))) {
            ngx_http_loom_js_check(v, rc, ngx_http_loom_js_item(v,
                                   n->unevaluated_items, value, i));
            ngx_http_loom_js_mark(ev, i);
        }
    }

    return rc;
}


static ngx_int_t
ngx_http_loom_js_values(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    size_t     i;
    ngx_int_t  rc;

    rc = NGX_OK;

    if (n->has_const && !ngx_http_loom_js_equal(n->const_value, inst)) {
        rc = ngx_http_loom_js_failed(v, "const", "not the constant value");
        if (!ngx_http_loom_js_go_on(v)) {
            return rc;
        }
    }

    if (n->enum_values) {
        for (i = 0; i < json_array_size(n->enum_values); i++) {
            if (ngx_http_loom_js_equal(json_array_get(n->enum_values, i),
                                       inst))
            {
                return rc;
            }
        }

        rc = ngx_http_loom_js_failed(v, "enum", "not one of the allowed "
                                     "values");
    }

    return rc;
}


static ngx_int_t
ngx_http_loom_js_node_eval(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    ngx_int_t   rc, type;

    if (n->is_bool) {
        return n->bool_value ? NGX_OK
                             : ngx_http_loom_js_failed(v, "false",
                                                       "no value is allowed");
    }

    if (v->depth >= NGX_HTTP_LOOM_JSCHEMA_MAX_EVAL_DEPTH) {
        return ngx_http_loom_js_failed(v, "$ref", "nested too deeply to "
                                       "validate");
    }

    v->depth++;

    rc = NGX_OK;
    type = ngx_http_loom_js_type_of(inst);

    if (n->types
        && !(n->types & type)
        && !(type == NGX_HTTP_LOOM_JS_INTEGER
             && (n->types & NGX_HTTP_LOOM_JS_NUMBER)))
    {
        rc = ngx_http_loom_js_failed(v, "type", "wrong type");
        if (!ngx_http_loom_js_go_on(v)) {
            goto done;
        }
    }

    if (n->checks & NGX_HTTP_LOOM_JS_CHK_VALUE) {
        if (ngx_http_loom_js_values(v, n, inst) != NGX_OK) {
            rc = NGX_DECLINED;
            if (!ngx_http_loom_js_go_on(v)) {
                goto done;
            }
        }
    }

    switch (type) {
    case NGX_HTTP_LOOM_JS_OBJECT:
        if ((n->checks & NGX_HTTP_LOOM_JS_CHK_OBJECT)
            && ngx_http_loom_js_object(v, n, inst) != NGX_OK)
        {
            rc = NGX_DECLINED;
        }
        break;

    case NGX_HTTP_LOOM_JS_ARRAY:
        if ((n->checks & NGX_HTTP_LOOM_JS_CHK_ARRAY)
            && ngx_http_loom_js_array(v, n, inst) != NGX_OK)
        {
            rc = NGX_DECLINED;
        }
        break;

    case NGX_HTTP_LOOM_JS_STRING:
        if ((n->checks & NGX_HTTP_LOOM_JS_CHK_STRING)
            && ngx_http_loom_js_string(v, n, inst) != NGX_OK)
        {
            rc = NGX_DECLINED;
        }
        break;

    case NGX_HTTP_LOOM_JS_NUMBER:
    case NGX_HTTP_LOOM_JS_INTEGER:
        if ((n->checks & NGX_HTTP_LOOM_JS_CHK_NUMBER)
            && ngx_http_loom_js_number(v, n, inst) != NGX_OK)
        {
            rc = NGX_DECLINED;
        }
        break;
    }

    if (rc != NGX_OK && !ngx_http_loom_js_go_on(v)) {
        goto done;
    }

    if ((n->checks & NGX_HTTP_LOOM_JS_CHK_APPLY)
        && ngx_http_loom_js_applicators(v, n, inst) != NGX_OK)
    {
        rc = NGX_DECLINED;
    }

done:

    v->depth--;

    return rc;
}


ngx_int_t
ngx_http_loom_jschema_validate(const ngx_http_loom_jschema_t *s,
    json_t *instance, ngx_http_loom_jschema_errors_t *errors)
{
    ngx_int_t                rc;
    ngx_http_loom_js_vctx_t  v;

    v.s = s;
    v.errors = errors;
    v.path = NULL;
    v.plen = 0;
    v.pcap = 0;
    v.depth = 0;
    v.ev = NULL;
    v.nomem = 0;
    v.eval = ngx_http_loom_js_eval;

    rc = ngx_http_loom_js_eval(&v, s->root, instance);

    free(v.path);

    if (v.nomem) {
        return NGX_ERROR;
    }

    return rc;
}
