/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"


/*
 * $ref: a JSON Pointer into the schema (percent-decoded, ~0 and ~1
 * unescaped) or the name of an $anchor, with the root "$id" as the only
 * base URI.  And the check for cycles of in-place applicators.
 */


static ngx_int_t ngx_http_loom_js_cycle_edge(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n);


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


ngx_int_t
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

    n = c->node(c, target, segments);
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
    ngx_int_t   rc;
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

    /* the walk is recursive: a bound on it bounds the stack */

    if (c->chain >= NGX_HTTP_LOOM_JS_MAX_CHAIN) {
        c->plen = 0;
        return ngx_http_loom_js_fail(c, "$ref and in-place applicators "
                                     "chained more than %d deep",
                                     NGX_HTTP_LOOM_JS_MAX_CHAIN);
    }

    c->chain++;
    rc = ngx_http_loom_js_cycles(c, n);
    c->chain--;

    return rc;
}


/* depth-first over the applicators that stay at the same instance */

ngx_int_t
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
