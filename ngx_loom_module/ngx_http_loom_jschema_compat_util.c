/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <stdarg.h>
#include <stdio.h>


/*
 * The state of one schema comparison, shared by the keywords of
 * ngx_http_loom_jschema_compat_kw.c and ngx_http_loom_jschema_compat.c:
 * the differences recorded, the schema path, what the conjuncts of a
 * schema say of a keyword, and the comparison of two subschemas, which
 * goes back to the comparer through c->sub.
 */


ngx_int_t
ngx_http_loom_jsc_diff(ngx_http_loom_jsc_t *c, const char *fmt, ...)
{
    int                             n;
    char                            buf[256];
    va_list                         args;
    ngx_http_loom_jschema_diff_t   *d;
    ngx_http_loom_jschema_diffs_t  *diffs;

    diffs = c->diffs;

    if (diffs == NULL) {
        return NGX_DECLINED;
    }

    if (diffs->nelts == diffs->max) {
        diffs->truncated = 1;
        return NGX_DECLINED;
    }

    n = snprintf(buf, sizeof(buf), "%s", c->dir ? c->dir : "");

    va_start(args, fmt);
    vsnprintf(buf + n, sizeof(buf) - n, fmt, args);
    va_end(args);

    d = &diffs->elts[diffs->nelts];
    d->path = malloc(c->plen + 1);
    d->reason = strdup(buf);

    if (d->path == NULL || d->reason == NULL) {
        free(d->path);
        free(d->reason);
        c->nomem = 1;
        return NGX_DECLINED;
    }

    memcpy(d->path, c->path ? c->path : "", c->plen);
    d->path[c->plen] = '\0';
    diffs->nelts++;

    return NGX_DECLINED;
}


/* appends "/kw" and an escaped "/seg" to the path; either may be NULL */

ngx_int_t
ngx_http_loom_jsc_push(ngx_http_loom_jsc_t *c, const char *kw,
    const char *seg, size_t len)
{
    char    *p;
    size_t   i, need, klen;

    klen = kw ? strlen(kw) : 0;
    need = c->plen + klen + 2 * len + 3;

    if (need > c->pcap) {
        p = realloc(c->path, need * 2);
        if (p == NULL) {
            c->nomem = 1;
            return NGX_ERROR;
        }

        c->path = p;
        c->pcap = need * 2;
    }

    if (kw) {
        c->path[c->plen++] = '/';
        memcpy(c->path + c->plen, kw, klen);
        c->plen += klen;
    }

    if (seg == NULL) {
        return NGX_OK;
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

    return NGX_OK;
}


/* sub(a, b) at path/kw[/seg] */

ngx_int_t
ngx_http_loom_jsc_at(ngx_http_loom_jsc_t *c, const char *kw, const char *seg,
    size_t len, json_t *a, json_t *b)
{
    size_t     save;
    ngx_int_t  rc;

    save = c->plen;

    if (ngx_http_loom_jsc_push(c, kw, seg, len) != NGX_OK) {
        return NGX_DECLINED;
    }

    rc = c->sub(c, a, b);
    c->plen = save;

    return rc;
}


/* the outcome only, no differences recorded */

ngx_int_t
ngx_http_loom_jsc_try(ngx_http_loom_jsc_t *c, json_t *a, json_t *b)
{
    ngx_int_t                       rc;
    ngx_http_loom_jschema_diffs_t  *diffs;

    diffs = c->diffs;
    c->diffs = NULL;
    rc = c->sub(c, a, b);
    c->diffs = diffs;

    return rc;
}


ngx_int_t
ngx_http_loom_jsc_any(ngx_http_loom_jsc_t *c, json_t **as, ngx_uint_t n,
    json_t *b, const char *kw, const char *seg, size_t len)
{
    ngx_uint_t  i;

    if (n == 1) {
        return ngx_http_loom_jsc_at(c, kw, seg, len, as[0], b);
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_loom_jsc_try(c, as[i], b) == NGX_OK) {
            return NGX_OK;
        }
    }

    /* none fits: the differences against the first one */

    return ngx_http_loom_jsc_at(c, kw, seg, len, as[0], b);
}


ngx_uint_t
ngx_http_loom_jsc_types(json_t *t)
{
    size_t       i;
    json_t      *e;
    ngx_uint_t   k, mask;
    const char  *s;

    static const char  *names[] = { "null", "boolean", "object", "array",
                                    "number", "string", "integer", NULL };

    mask = 0;

    for (i = 0; json_is_array(t) ? i < json_array_size(t) : i < 1; i++) {
        e = json_is_array(t) ? json_array_get(t, i) : t;
        s = json_string_value(e);

        if (s == NULL) {
            return NGX_HTTP_LOOM_JS_ANY;
        }

        if (strcmp(s, "number") == 0) {
            mask |= NGX_HTTP_LOOM_JS_NUMBER | NGX_HTTP_LOOM_JS_INTEGER;
            continue;
        }

        for (k = 0; names[k]; k++) {
            if (strcmp(names[k], s) == 0) {
                mask |= (ngx_uint_t) 1 << k;
            }
        }
    }

    return mask;
}


/* the first value of kw among a's conjuncts that satisfies test */

json_t *
ngx_http_loom_jsc_find(ngx_http_loom_jsc_conj_t *a, const char *kw,
    ngx_uint_t i)
{
    json_t  *v;

    for ( /* void */ ; i < a->n; i++) {
        v = json_object_get(a->s[i], kw);
        if (v) {
            return v;
        }
    }

    return NULL;
}


/* some conjunct of a has kw with a value "at least" bv (sign: +1, -1) */

ngx_int_t
ngx_http_loom_jsc_bound(ngx_http_loom_jsc_conj_t *a, const char *kw,
    const char *kw2, json_t *bv, int sign)
{
    double       x, y;
    ngx_uint_t   i;
    json_t      *av;

    y = json_number_value(bv);

    for (i = 0; i < a->n; i++) {
        av = json_object_get(a->s[i], kw);

        if (json_is_number(av)) {
            x = json_number_value(av);
            if ((sign > 0) ? x >= y : x <= y) {
                return NGX_OK;
            }
        }

        av = kw2 ? json_object_get(a->s[i], kw2) : NULL;

        if (json_is_number(av)) {
            x = json_number_value(av);
            if ((sign > 0) ? x >= y : x <= y) {
                return NGX_OK;
            }
        }
    }

    return NGX_DECLINED;
}


/* some conjunct of a has kw equal to bv */

ngx_int_t
ngx_http_loom_jsc_same(ngx_http_loom_jsc_conj_t *a, const char *kw,
    json_t *bv)
{
    ngx_uint_t  i;
    json_t     *av;

    for (i = 0; i < a->n; i++) {
        av = json_object_get(a->s[i], kw);

        if (av && ngx_http_loom_js_equal(av, bv)) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_loom_jsc_in(json_t *list, json_t *v)
{
    size_t   i;
    json_t  *e;

    json_array_foreach(list, i, e) {
        if (ngx_http_loom_js_equal(e, v)) {
            return 1;
        }
    }

    return 0;
}


/* the values allowed by enum or const of b include all a allows */

ngx_int_t
ngx_http_loom_jsc_values(ngx_http_loom_jsc_conj_t *a, json_t *allowed)
{
    size_t      k;
    json_t     *v, *e;
    ngx_uint_t  i, all;

    for (i = 0; i < a->n; i++) {
        v = json_object_get(a->s[i], "const");

        if (v && ngx_http_loom_jsc_in(allowed, v)) {
            return NGX_OK;
        }

        v = json_object_get(a->s[i], "enum");

        if (json_is_array(v)) {
            all = 1;

            json_array_foreach(v, k, e) {
                if (!ngx_http_loom_jsc_in(allowed, e)) {
                    all = 0;
                    break;
                }
            }

            if (all) {
                return NGX_OK;
            }
        }
    }

    return NGX_DECLINED;
}


int
ngx_http_loom_jsc_match(ngx_http_loom_jsc_t *c, const char *pattern,
    const char *name, size_t len)
{
    int          rc, err;
    PCRE2_SIZE   off;
    pcre2_code  *re;

    re = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
                       PCRE2_UTF|PCRE2_DOLLAR_ENDONLY|PCRE2_ALT_BSUX,
                       &err, &off, NULL);
    if (re == NULL) {
        return -1;
    }

    rc = pcre2_match(re, (PCRE2_SPTR) name, len, 0, 0, c->md, NULL);
    pcre2_code_free(re);

    return (rc >= 0) ? 1 : ((rc == PCRE2_ERROR_NOMATCH) ? 0 : -1);
}


/*
 * The schemas a's conjuncts apply to property "name": properties,
 * matching patternProperties, else additionalProperties.  *open: no
 * conjunct says anything about the name.
 */

ngx_uint_t
ngx_http_loom_jsc_prop(ngx_http_loom_jsc_t *c, ngx_http_loom_jsc_conj_t *a,
    const char *name, size_t len, json_t **out, ngx_uint_t max)
{
    json_t      *v, *pp;
    ngx_uint_t   i, n, named;
    const char  *pat;

    n = 0;

    for (i = 0; i < a->n && n < max; i++) {
        named = 0;

        v = json_object_getn(json_object_get(a->s[i], "properties"), name,
                             len);
        if (v) {
            out[n++] = v;
            named = 1;
        }

        json_object_foreach(json_object_get(a->s[i], "patternProperties"),
                            pat, pp)
        {
            if (n < max && ngx_http_loom_jsc_match(c, pat, name, len) != 0) {
                out[n++] = pp;
                named = 1;
            }
        }

        v = json_object_get(a->s[i], "additionalProperties");

        if (!named && v && n < max) {
            out[n++] = v;
        }
    }

    return n;
}
