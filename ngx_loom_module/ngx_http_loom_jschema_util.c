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
 * Helpers at the bottom of the JSON Schema code, which call no other
 * file of it: the compilation context (failure text, schema path, arrays,
 * regular expressions, a subschema compiled through c->node) and JSON
 * values (types, equality).
 */


ngx_int_t
ngx_http_loom_js_fail(ngx_http_loom_js_cctx_t *c, const char *fmt, ...)
{
    int      n;
    size_t   size;
    va_list  args;

    size = sizeof(c->err->text);

    va_start(args, fmt);
    n = vsnprintf((char *) c->err->text, size, fmt, args);
    va_end(args);

    if (n < 0) {
        n = 0;
    }

    if ((size_t) n < size && strcmp(fmt, "out of memory") != 0) {
        n += snprintf((char *) c->err->text + n, size - n, " at %s",
                      c->plen ? c->path : "the root");
    }

    c->err->len = ((size_t) n < size) ? (size_t) n : size - 1;

    return NGX_ERROR;
}


/* the schema path, set to a copy of path */

ngx_int_t
ngx_http_loom_js_set_path(ngx_http_loom_js_cctx_t *c, const char *path,
    size_t len)
{
    char  *p;

    if (len + 1 > c->pcap) {
        p = realloc(c->path, len + 1);
        if (p == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        c->path = p;
        c->pcap = len + 1;
    }

    memcpy(c->path, path, len);
    c->path[len] = '\0';
    c->plen = len;

    return NGX_OK;
}


/* appends "/" and a JSON Pointer escaped segment to the schema path */

ngx_int_t
ngx_http_loom_js_push(ngx_http_loom_js_cctx_t *c, const char *seg, size_t len)
{
    char    *p;
    size_t   i, need;

    need = c->plen + 2 * len + 2;

    if (need > c->pcap) {
        p = realloc(c->path, need * 2);
        if (p == NULL) {
            return ngx_http_loom_js_fail(c, "out of memory");
        }

        c->path = p;
        c->pcap = need * 2;
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

    c->path[c->plen] = '\0';

    return NGX_OK;
}


/* a subschema at <path>/kw[/seg] */

ngx_http_loom_js_node_t *
ngx_http_loom_js_sub(ngx_http_loom_js_cctx_t *c, const char *kw,
    const char *seg, size_t len, json_t *json, ngx_uint_t depth)
{
    size_t                    save;
    ngx_http_loom_js_node_t  *n;

    save = c->plen;

    if (ngx_http_loom_js_push(c, kw, strlen(kw)) != NGX_OK
        || (seg && ngx_http_loom_js_push(c, seg, len) != NGX_OK))
    {
        return NULL;
    }

    n = c->node(c, json, depth + 1);

    if (n) {
        c->plen = save;
        c->path[save] = '\0';
    }

    return n;
}


/* room for one more element; NULL when memory ran out (elts stay valid) */

void *
ngx_http_loom_js_grow(void *elts, ngx_uint_t *nalloc, ngx_uint_t n,
    size_t size)
{
    void        *p;
    ngx_uint_t   a;

    if (n < *nalloc) {
        return elts;
    }

    a = *nalloc ? *nalloc * 2 : 8;

    p = realloc(elts, a * size);
    if (p == NULL) {
        return NULL;
    }

    *nalloc = a;

    return p;
}


char *
ngx_http_loom_js_strndup(const char *s, size_t len)
{
    char  *p;

    p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }

    return p;
}


pcre2_code *
ngx_http_loom_js_regex(ngx_http_loom_js_cctx_t *c, const char *s, size_t len)
{
    int          rc;
    PCRE2_SIZE   off;
    pcre2_code  *re;
    u_char       msg[128];

    /* ECMA-262 flavour where PCRE2 has an option for it */

    re = pcre2_compile((PCRE2_SPTR) s, len,
                       PCRE2_UTF|PCRE2_DOLLAR_ENDONLY|PCRE2_ALT_BSUX,
                       &rc, &off, NULL);

    if (re == NULL) {
        if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0) {
            msg[0] = '\0';
        }

        ngx_http_loom_js_fail(c, "invalid regular expression \"%s\" "
                              "(%s at offset %d)", s, msg, (int) off);
    }

    return re;
}


ngx_int_t
ngx_http_loom_js_type_of(json_t *j)
{
    double  d;

    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return NGX_HTTP_LOOM_JS_OBJECT;
    case JSON_ARRAY:
        return NGX_HTTP_LOOM_JS_ARRAY;
    case JSON_STRING:
        return NGX_HTTP_LOOM_JS_STRING;
    case JSON_INTEGER:
        return NGX_HTTP_LOOM_JS_INTEGER;
    case JSON_REAL:
        d = json_real_value(j);
        return (d == floor(d) && isfinite(d)) ? NGX_HTTP_LOOM_JS_INTEGER
                                              : NGX_HTTP_LOOM_JS_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return NGX_HTTP_LOOM_JS_BOOLEAN;
    default:
        return NGX_HTTP_LOOM_JS_NULL;
    }
}


/* equality as JSON Schema has it: 1 equals 1.0 */

ngx_int_t
ngx_http_loom_js_equal(json_t *a, json_t *b)
{
    size_t       i, len;
    json_t      *va, *vb;
    const char  *key;

    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            return json_integer_value(a) == json_integer_value(b);
        }

        return json_number_value(a) == json_number_value(b);
    }

    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }

    switch (json_typeof(a)) {

    case JSON_STRING:
        return json_string_length(a) == json_string_length(b)
               && memcmp(json_string_value(a), json_string_value(b),
                         json_string_length(a)) == 0;

    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) {
            return 0;
        }

        json_array_foreach(a, i, va) {
            if (!ngx_http_loom_js_equal(va, json_array_get(b, i))) {
                return 0;
            }
        }

        return 1;

    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }

        json_object_keylen_foreach(a, key, len, va) {
            vb = json_object_getn(b, key, len);

            if (vb == NULL || !ngx_http_loom_js_equal(va, vb)) {
                return 0;
            }
        }

        return 1;

    default:
        /* true, false, null */
        return 1;
    }
}
