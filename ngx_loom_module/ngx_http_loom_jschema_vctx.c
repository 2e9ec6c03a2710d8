/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <stdarg.h>
#include <stdio.h>


/*
 * The state of one validation, shared by the keywords of
 * ngx_http_loom_jschema_validate.c and ngx_http_loom_jschema_container.c:
 * the failures recorded, the instance path, the evaluation of a subschema
 * (which goes back to the validator through v->eval) and a regular
 * expression match within the schema's limits.
 */


/* NGX_DECLINED, and the failure recorded when there is a collector */

ngx_int_t
ngx_http_loom_js_failed(ngx_http_loom_js_vctx_t *v, const char *kw,
    const char *fmt, ...)
{
    va_list                           args;
    ngx_http_loom_jschema_errors_t   *e;
    ngx_http_loom_jschema_failure_t  *f;

    e = v->errors;

    if (e == NULL) {
        return NGX_DECLINED;
    }

    if (e->nelts == e->max) {
        e->truncated = 1;
        return NGX_DECLINED;
    }

    f = &e->elts[e->nelts];

    f->instance_path = malloc(v->plen + 1);
    if (f->instance_path == NULL) {
        v->nomem = 1;
        return NGX_DECLINED;
    }

    memcpy(f->instance_path, v->path ? v->path : "", v->plen);
    f->instance_path[v->plen] = '\0';
    f->keyword = kw;

    va_start(args, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, args);
    va_end(args);

    /* validation stops here: there may be more */
    if (++e->nelts == e->max) {
        e->truncated = 1;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_js_vpush(ngx_http_loom_js_vctx_t *v, const char *seg,
    size_t len)
{
    char    *p;
    size_t   i, need;

    if (v->errors == NULL) {
        return NGX_OK;
    }

    need = v->plen + 2 * len + 2;

    if (need > v->pcap) {
        p = realloc(v->path, need * 2);
        if (p == NULL) {
            v->nomem = 1;
            return NGX_ERROR;
        }

        v->path = p;
        v->pcap = need * 2;
    }

    v->path[v->plen++] = '/';

    for (i = 0; i < len; i++) {
        if (seg[i] == '~' || seg[i] == '/') {
            v->path[v->plen++] = '~';
            v->path[v->plen++] = (seg[i] == '~') ? '0' : '1';

        } else {
            v->path[v->plen++] = seg[i];
        }
    }

    return NGX_OK;
}


/* validates a member: the path gets seg for the time of it */

ngx_int_t
ngx_http_loom_js_member(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst, const char *seg,
    size_t len)
{
    size_t     save;
    ngx_int_t  rc;

    ngx_http_loom_js_ev_t  *ev;

    save = v->plen;

    if (ngx_http_loom_js_vpush(v, seg, len) != NGX_OK) {
        return NGX_DECLINED;
    }

    /* another instance: its own evaluated members */
    ev = v->ev;
    v->ev = NULL;

    rc = v->eval(v, n, inst);

    v->ev = ev;
    v->plen = save;

    return rc;
}


ngx_int_t
ngx_http_loom_js_item(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst, size_t i)
{
    char                    seg[NGX_INT_T_LEN + 1];
    int                     len;
    ngx_int_t               rc;
    ngx_http_loom_js_ev_t  *ev;

    if (v->errors == NULL) {
        ev = v->ev;
        v->ev = NULL;
        rc = v->eval(v, n, inst);
        v->ev = ev;

        return rc;
    }

    len = snprintf(seg, sizeof(seg), "%lu", (unsigned long) i);

    return ngx_http_loom_js_member(v, n, inst, seg, len);
}


/* a trial: the outcome only, nothing recorded, nothing evaluated */

ngx_int_t
ngx_http_loom_js_try(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst)
{
    ngx_int_t                        rc;
    ngx_http_loom_js_ev_t           *ev;
    ngx_http_loom_jschema_errors_t  *errors;

    errors = v->errors;
    ev = v->ev;
    v->errors = NULL;
    v->ev = NULL;

    rc = v->eval(v, n, inst);

    v->errors = errors;
    v->ev = ev;

    return rc;
}


/*
 * An in-place subschema (a trial or not): with unevaluated* in force,
 * what it evaluates counts only when it passes.
 */

ngx_int_t
ngx_http_loom_js_inplace(ngx_http_loom_js_vctx_t *v,
    const ngx_http_loom_js_node_t *n, json_t *inst, ngx_uint_t trial)
{
    size_t                           i, words;
    ngx_int_t                        rc;
    ngx_http_loom_js_ev_t           *outer, own;
    ngx_http_loom_jschema_errors_t  *errors;

    outer = v->ev;
    errors = v->errors;

    if (outer == NULL) {
        return trial ? ngx_http_loom_js_try(v, n, inst)
                     : v->eval(v, n, inst);
    }

    words = outer->n / 64 + 1;

    own.n = outer->n;
    own.bits = calloc(words, sizeof(uint64_t));
    if (own.bits == NULL) {
        v->nomem = 1;
        return NGX_DECLINED;
    }

    v->ev = &own;
    if (trial) {
        v->errors = NULL;
    }

    rc = v->eval(v, n, inst);

    v->ev = outer;
    v->errors = errors;

    if (rc == NGX_OK) {
        for (i = 0; i < words; i++) {
            outer->bits[i] |= own.bits[i];
        }
    }

    free(own.bits);

    return rc;
}


int
ngx_http_loom_js_regex_match(const ngx_http_loom_jschema_t *s,
    pcre2_code *re, const char *str, size_t len)
{
    int  rc;

    rc = pcre2_match(re, (PCRE2_SPTR) str, len, 0, 0, s->match,
                     s->match_ctx);

    if (rc >= 0) {
        return 1;
    }

    return (rc == PCRE2_ERROR_NOMATCH) ? 0 : -1;
}
