/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"


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


static ngx_int_t ngx_http_loom_jsc_sub(ngx_http_loom_jsc_t *c, json_t *a,
    json_t *b);


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


/* every instance valid under a is valid under b: set as c->sub */

static ngx_int_t
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
    c.sub = ngx_http_loom_jsc_sub;
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
    c.sub = ngx_http_loom_jsc_sub;
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
