/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema.h"
#include "ngx_http_loom_json.h"


/*
 * The collectors of validation failures and of compatibility differences,
 * and their JSON array texts.
 */


static size_t ngx_http_loom_js_member_len(const char *name, const char *s);
static u_char *ngx_http_loom_js_member_write(u_char *p, const char *name,
    const char *s);


ngx_int_t
ngx_http_loom_jschema_errors_init(ngx_http_loom_jschema_errors_t *errors,
    ngx_uint_t max)
{
    errors->elts = calloc(max ? max : 1,
                          sizeof(ngx_http_loom_jschema_failure_t));
    errors->nelts = 0;
    errors->max = max;
    errors->truncated = 0;

    return errors->elts ? NGX_OK : NGX_ERROR;
}


void
ngx_http_loom_jschema_errors_reset(ngx_http_loom_jschema_errors_t *errors)
{
    ngx_uint_t  i;

    for (i = 0; i < errors->nelts; i++) {
        free(errors->elts[i].instance_path);
    }

    errors->nelts = 0;
    errors->truncated = 0;
}


void
ngx_http_loom_jschema_errors_free(ngx_http_loom_jschema_errors_t *errors)
{
    ngx_http_loom_jschema_errors_reset(errors);
    free(errors->elts);
    errors->elts = NULL;
    errors->max = 0;
}


size_t
ngx_http_loom_jschema_errors_json_len(ngx_http_loom_jschema_errors_t *errors)
{
    size_t                            len;
    ngx_uint_t                        i;
    ngx_http_loom_jschema_failure_t  *f;

    len = sizeof("[]") - 1;

    for (i = 0; i < errors->nelts; i++) {
        f = &errors->elts[i];

        len += sizeof("{,,},") - 1
               + ngx_http_loom_js_member_len("instancePath", f->instance_path)
               + ngx_http_loom_js_member_len("keyword", f->keyword)
               + ngx_http_loom_js_member_len("message", f->message);
    }

    /* no comma after the last one */
    return errors->nelts ? len - 1 : len;
}


u_char *
ngx_http_loom_jschema_errors_json(ngx_http_loom_jschema_errors_t *errors,
    u_char *dst)
{
    ngx_uint_t                        i;
    ngx_http_loom_jschema_failure_t  *f;

    *dst++ = '[';

    for (i = 0; i < errors->nelts; i++) {
        f = &errors->elts[i];

        if (i) {
            *dst++ = ',';
        }

        *dst++ = '{';
        dst = ngx_http_loom_js_member_write(dst, "instancePath",
                                            f->instance_path);
        *dst++ = ',';
        dst = ngx_http_loom_js_member_write(dst, "keyword", f->keyword);
        *dst++ = ',';
        dst = ngx_http_loom_js_member_write(dst, "message", f->message);
        *dst++ = '}';
    }

    *dst++ = ']';

    return dst;
}


ngx_int_t
ngx_http_loom_jschema_diffs_init(ngx_http_loom_jschema_diffs_t *diffs,
    ngx_uint_t max)
{
    diffs->elts = calloc(max ? max : 1, sizeof(ngx_http_loom_jschema_diff_t));
    diffs->nelts = 0;
    diffs->max = max;
    diffs->truncated = 0;

    return diffs->elts ? NGX_OK : NGX_ERROR;
}


void
ngx_http_loom_jschema_diffs_free(ngx_http_loom_jschema_diffs_t *diffs)
{
    ngx_uint_t  i;

    for (i = 0; i < diffs->nelts; i++) {
        free(diffs->elts[i].path);
        free(diffs->elts[i].reason);
    }

    free(diffs->elts);
    diffs->elts = NULL;
    diffs->nelts = 0;
    diffs->max = 0;
}


size_t
ngx_http_loom_jschema_diffs_json_len(ngx_http_loom_jschema_diffs_t *diffs)
{
    size_t      len;
    ngx_uint_t  i;

    len = sizeof("[]") - 1;

    for (i = 0; i < diffs->nelts; i++) {
        len += sizeof("{,},") - 1
               + ngx_http_loom_js_member_len("path", diffs->elts[i].path)
               + ngx_http_loom_js_member_len("reason", diffs->elts[i].reason);
    }

    return diffs->nelts ? len - 1 : len;
}


u_char *
ngx_http_loom_jschema_diffs_json(ngx_http_loom_jschema_diffs_t *diffs,
    u_char *dst)
{
    ngx_uint_t  i;

    *dst++ = '[';

    for (i = 0; i < diffs->nelts; i++) {
        if (i) {
            *dst++ = ',';
        }

        *dst++ = '{';
        dst = ngx_http_loom_js_member_write(dst, "path", diffs->elts[i].path);
        *dst++ = ',';
        dst = ngx_http_loom_js_member_write(dst, "reason",
                                            diffs->elts[i].reason);
        *dst++ = '}';
    }

    *dst++ = ']';

    return dst;
}


/* "name":"escaped s" */

static size_t
ngx_http_loom_js_member_len(const char *name, const char *s)
{
    return strlen(name) + sizeof("\"\":\"\"") - 1
           + ngx_http_loom_json_escape_len((u_char *) s, strlen(s));
}


static u_char *
ngx_http_loom_js_member_write(u_char *p, const char *name, const char *s)
{
    size_t  len;

    len = strlen(name);

    *p++ = '"';
    p = memcpy(p, name, len);
    p += len;
    *p++ = '"';
    *p++ = ':';
    *p++ = '"';
    p = ngx_http_loom_json_escape(p, (u_char *) s, strlen(s));
    *p++ = '"';

    return p;
}
