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
 * Schema changes, compared structurally.  ngx_http_loom_jsc_sub(a, b)
 * decides "every instance valid under a is valid under b": backward is
 * sub(old, new), forward is sub(new, old), full is both.  For each
 * constraint of b it looks for a constraint of a at least as strict; a
 * schema is seen as the conjunction of itself, its $ref target and its
 * allOf members.  What cannot be decided (two different patterns, a
 * changed oneOf, not, if) counts as a breaking difference, and says so.
 *
 * The open content model: a property that one schema names and the other
 * leaves to an absent or true additionalProperties is taken as not used
 * by the other side's messages, so adding or removing an optional property
 * of an open object is compatible.  A schema for the rest of the
 * properties (additionalProperties or patternProperties) is compared.
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


static ngx_int_t
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

    rc = ngx_http_loom_jsc_sub(c, a, b);
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
    rc = ngx_http_loom_jsc_sub(c, a, b);
    c->diffs = diffs;

    return rc;
}


static ngx_uint_t
ngx_http_loom_jsc_hex(u_char ch)
{
    return (ch <= '9') ? (ngx_uint_t) (ch - '0')
                       : (ngx_uint_t) ((ch | 0x20) - 'a' + 10);
}


/* the subschema with "$anchor": name, depth first */

static json_t *
ngx_http_loom_jsc_anchor(json_t *v, const u_char *name, size_t len,
    ngx_uint_t depth)
{
    size_t       i;
    json_t      *a, *r;
    const char  *key;

    if (depth > NGX_HTTP_LOOM_JSC_MAX_DEPTH) {
        return NULL;
    }

    if (json_is_object(v)) {
        a = json_object_get(v, "$anchor");

        if (json_is_string(a) && json_string_length(a) == len
            && memcmp(json_string_value(a), name, len) == 0)
        {
            return v;
        }

        json_object_foreach(v, key, a) {
            r = ngx_http_loom_jsc_anchor(a, name, len, depth + 1);
            if (r) {
                return r;
            }
        }

    } else if (json_is_array(v)) {
        json_array_foreach(v, i, a) {
            r = ngx_http_loom_jsc_anchor(a, name, len, depth + 1);
            if (r) {
                return r;
            }
        }
    }

    return NULL;
}


/*
 * A local $ref as the compiler resolves it (ngx_http_loom_jschema_ref.c):
 * the root "$id" as the base, a percent-decoded JSON Pointer or an anchor
 */

static json_t *
ngx_http_loom_jsc_deref(json_t *root, json_t *ref)
{
    u_char      *buf, *d, *q, *last, *seg;
    size_t       len, idlen, idx;
    json_t      *v, *id;
    const char  *p, *end;

    p = json_string_value(ref);
    len = json_string_length(ref);
    end = p + len;

    id = json_object_get(root, "$id");

    if (json_is_string(id)) {
        idlen = json_string_length(id);

        if (idlen && json_string_value(id)[idlen - 1] == '#') {
            idlen--;
        }

        if (idlen && len >= idlen && memcmp(p, json_string_value(id), idlen)
                                     == 0)
        {
            p += idlen;
        }
    }

    if (p == end) {
        return root;
    }

    if (*p++ != '#') {
        return NULL;
    }

    buf = malloc(end - p + 1);
    if (buf == NULL) {
        return NULL;
    }

    for (d = buf; p < end; p++) {
        if (*p == '%' && end - p >= 3 && isxdigit((u_char) p[1])
            && isxdigit((u_char) p[2]))
        {
            *d++ = (u_char) (ngx_http_loom_jsc_hex(p[1]) * 16
                             + ngx_http_loom_jsc_hex(p[2]));
            p += 2;
            continue;
        }

        *d++ = *p;
    }

    last = d;

    if (last > buf && buf[0] != '/') {
        v = ngx_http_loom_jsc_anchor(root, buf, last - buf, 0);
        free(buf);
        return v;
    }

    v = root;
    q = buf;

    while (q < last && v) {
        seg = ++q;
        d = seg;

        while (q < last && *q != '/') {
            if (*q == '~' && q + 1 < last) {
                *d++ = (q[1] == '1') ? '/' : '~';
                q += 2;
                continue;
            }

            *d++ = *q++;
        }

        if (json_is_object(v)) {
            v = json_object_getn(v, (char *) seg, d - seg);

        } else if (json_is_array(v)) {
            for (idx = 0; seg < d && *seg >= '0' && *seg <= '9'; seg++) {
                idx = (idx > 100000000) ? idx : idx * 10 + (*seg - '0');
            }

            v = (seg == d) ? json_array_get(v, idx) : NULL;

        } else {
            v = NULL;
        }
    }

    free(buf);

    return v;
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


/* a schema as its conjuncts: itself, its $ref target, its allOf members */

static void
ngx_http_loom_jsc_collect(json_t *root, json_t *s,
    ngx_http_loom_jsc_conj_t *cj)
{
    size_t      i;
    json_t     *v, *e;
    ngx_uint_t  k, mask;

    if (json_is_false(s)) {
        cj->never = 1;
        return;
    }

    if (!json_is_object(s) || cj->n == NGX_HTTP_LOOM_JSC_MAX_CONJ) {
        return;
    }

    for (k = 0; k < cj->n; k++) {
        if (cj->s[k] == s) {
            return;
        }
    }

    cj->s[cj->n++] = s;

    v = json_object_get(s, "type");
    if (v) {
        cj->types &= ngx_http_loom_jsc_types(v);
    }

    /* the values of enum or const have types too */

    v = json_object_get(s, "const");
    if (v) {
        cj->types &= ngx_http_loom_js_type_of(v);
    }

    v = json_object_get(s, "enum");
    if (json_is_array(v)) {
        mask = 0;

        json_array_foreach(v, i, e) {
            mask |= ngx_http_loom_js_type_of(e);
        }

        cj->types &= mask;
    }

    v = json_object_get(s, "$ref");
    if (json_is_string(v)) {
        v = ngx_http_loom_jsc_deref(root, v);

        if (v == NULL) {
            /* what it adds is unknown: nothing can be proved of it */
            cj->unknown = 1;

        } else {
            ngx_http_loom_jsc_collect(root, v, cj);
        }
    }

    json_array_foreach(json_object_get(s, "allOf"), i, v) {
        ngx_http_loom_jsc_collect(root, v, cj);
    }
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


ngx_int_t
ngx_http_loom_jsc_sub(ngx_http_loom_jsc_t *c, json_t *a, json_t *b)
{
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_http_loom_jsc_conj_t  ac, bc;

    if (c->nomem) {
        return NGX_DECLINED;
    }

    for (i = 0; i < c->depth; i++) {
        if (c->stack[i][0] == a && c->stack[i][1] == b) {
            return NGX_OK;
        }
    }

    if (c->depth >= NGX_HTTP_LOOM_JSC_MAX_DEPTH) {
        return ngx_http_loom_jsc_diff(c, "schemas nested too deeply to "
                                      "compare");
    }

    if (++c->steps > NGX_HTTP_LOOM_JSC_MAX_STEPS) {
        if (c->too_complex) {
            return NGX_DECLINED;
        }

        c->too_complex = 1;

        return ngx_http_loom_jsc_diff(c, "schemas too complex to compare");
    }

    memset(&ac, 0, sizeof(ac));
    memset(&bc, 0, sizeof(bc));
    ac.types = NGX_HTTP_LOOM_JS_ANY;
    bc.types = NGX_HTTP_LOOM_JS_ANY;

    ngx_http_loom_jsc_collect(c->a_root, a, &ac);
    ngx_http_loom_jsc_collect(c->b_root, b, &bc);

    if (ac.never) {
        return NGX_OK;
    }

    if (bc.never) {
        return ngx_http_loom_jsc_diff(c, "schema became false: nothing is "
                                      "valid");
    }

    if (bc.unknown) {
        return ngx_http_loom_jsc_diff(c, "a $ref that cannot be followed "
                                      "cannot be compared");
    }

    c->stack[c->depth][0] = a;
    c->stack[c->depth][1] = b;
    c->depth++;
    rc = NGX_OK;

    for (i = 0; i < bc.n; i++) {
        if (ngx_http_loom_jsc_keywords(c, &ac, bc.s[i]) != NGX_OK) {
            rc = NGX_DECLINED;

            if (c->diffs == NULL) {
                break;
            }
        }
    }

    c->depth--;

    return rc;
}


ngx_int_t
ngx_http_loom_jschema_compat(json_t *old, json_t *new, ngx_uint_t mode,
    ngx_uint_t flags, ngx_http_loom_jschema_diffs_t *diffs)
{
    ngx_int_t            rc;
    ngx_http_loom_jsc_t  c;

    memset(&c, 0, sizeof(c));

    c.diffs = diffs;
    c.flags = flags;
    c.md = pcre2_match_data_create(1, NULL);

    if (c.md == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_OK;

    if (mode & NGX_HTTP_LOOM_JSCHEMA_BACKWARD) {
        c.a_root = old;
        c.b_root = new;
        c.a_name = "old";
        c.b_name = "new";
        c.dir = (mode == NGX_HTTP_LOOM_JSCHEMA_FULL) ? "backward: " : NULL;

        if (ngx_http_loom_jsc_sub(&c, old, new) != NGX_OK) {
            rc = NGX_DECLINED;
        }
    }

    if ((mode & NGX_HTTP_LOOM_JSCHEMA_FORWARD)
        && (rc == NGX_OK || diffs))
    {
        c.a_root = new;
        c.b_root = old;
        c.a_name = "new";
        c.b_name = "old";
        c.dir = (mode == NGX_HTTP_LOOM_JSCHEMA_FULL) ? "forward: " : NULL;

        if (ngx_http_loom_jsc_sub(&c, new, old) != NGX_OK) {
            rc = NGX_DECLINED;
        }
    }

    free(c.path);
    pcre2_match_data_free(c.md);

    return c.nomem ? NGX_ERROR : rc;
}


/*
 * Key-set schemas: a message has exactly the schema's keys, and an object
 * value must match the schema's value for the key, which must then be an
 * object; any other value matches anything.  b accepts all a accepts when
 * the key sets are the same and where a has an object, b has an object
 * that accepts all it accepts.
 */

static ngx_int_t
ngx_http_loom_jsc_keyset(ngx_http_loom_jsc_t *c, json_t *a, json_t *b)
{
    size_t       len, save;
    json_t      *av, *bv;
    ngx_int_t    rc;
    const char  *key;

    rc = NGX_OK;

    json_object_keylen_foreach(a, key, len, av) {
        bv = json_object_getn(b, key, len);
        save = c->plen;

        if (ngx_http_loom_jsc_push(c, NULL, key, len) != NGX_OK) {
            return NGX_DECLINED;
        }

        if (bv == NULL) {
            rc = ngx_http_loom_jsc_diff(c, "key \"%s\" is in the %s schema, "
                                        "not in the %s one", key,
                                        c->a_name, c->b_name);

        } else if (json_is_object(av)) {
            if (!json_is_object(bv)) {
                rc = ngx_http_loom_jsc_diff(c, "\"%s\" is an object in the "
                                            "%s schema, not in the %s one: "
                                            "object values are refused", key,
                                            c->a_name, c->b_name);

            } else if (ngx_http_loom_jsc_keyset(c, av, bv) != NGX_OK) {
                rc = NGX_DECLINED;
            }
        }

        c->plen = save;
    }

    json_object_keylen_foreach(b, key, len, bv) {
        if (json_object_getn(a, key, len) == NULL) {
            save = c->plen;

            if (ngx_http_loom_jsc_push(c, NULL, key, len) != NGX_OK) {
                return NGX_DECLINED;
            }

            rc = ngx_http_loom_jsc_diff(c, "key \"%s\" is in the %s schema, "
                                        "not in the %s one", key,
                                        c->b_name, c->a_name);
            c->plen = save;
        }
    }

    return rc;
}


ngx_int_t
ngx_http_loom_schema_compat(json_t *old, json_t *new, ngx_uint_t mode,
    ngx_http_loom_jschema_diffs_t *diffs)
{
    ngx_int_t            rc;
    ngx_http_loom_jsc_t  c;

    memset(&c, 0, sizeof(c));

    c.diffs = diffs;
    rc = NGX_OK;

    if (!json_is_object(old) || !json_is_object(new)) {
        return NGX_DECLINED;
    }

    if (mode & NGX_HTTP_LOOM_JSCHEMA_BACKWARD) {
        c.a_name = "old";
        c.b_name = "new";
        c.dir = (mode == NGX_HTTP_LOOM_JSCHEMA_FULL) ? "backward: " : NULL;

        rc = ngx_http_loom_jsc_keyset(&c, old, new);
    }

    if ((mode & NGX_HTTP_LOOM_JSCHEMA_FORWARD) && (rc == NGX_OK || diffs)) {
        c.a_name = "new";
        c.b_name = "old";
        c.dir = (mode == NGX_HTTP_LOOM_JSCHEMA_FULL) ? "forward: " : NULL;

        if (ngx_http_loom_jsc_keyset(&c, new, old) != NGX_OK) {
            rc = NGX_DECLINED;
        }
    }

    free(c.path);

    return c.nomem ? NGX_ERROR : rc;
}
