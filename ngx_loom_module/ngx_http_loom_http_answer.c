/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_http.h"
#include "ngx_http_loom_json.h"


/*
 * The answer of an action as the HTTP response (docs/http.md): the status
 * is the answer's code, but 404 for a topic that does not exist; the body
 * is the answer's members but "id", "action" and "type", "data" as its
 * bytes came, and on an error "code" is the status.
 */


static ngx_int_t ngx_http_loom_http_etag(ngx_http_request_t *r,
    json_t *answer);
static ngx_int_t ngx_http_loom_http_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);
static ngx_uint_t ngx_http_loom_http_status(json_t *answer);


/* messages of a topic that does not exist: 404 */

static ngx_str_t  ngx_http_loom_http_missing[] = {
    ngx_string("couldn't get value for topic. topic doesn't exist. "),
    ngx_string("could not get topic by name: "),
    ngx_string("topic doesn't exist for "),
    ngx_null_string
};


/* the answer of get, publish or listTopics */

void
ngx_http_loom_http_reply(ngx_http_loom_http_t *h, ngx_str_t *answer)
{
    json_t                         *j;
    ngx_int_t                       rc;
    ngx_str_t                       body, *data;
    json_error_t                    jerr;
    ngx_http_request_t             *r;
    ngx_http_loom_json_envelope_t   env;

    r = h->request;

    if (ngx_http_loom_http_status_code(answer) != NGX_HTTP_OK) {
        ngx_http_finalize_request(r,
            ngx_http_loom_http_error(r, 0, answer, NULL));
        return;
    }

    j = json_loadb((char *) answer->data, answer->len, 0, &jerr);
    if (j == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    data = ngx_http_loom_http_data(r, answer, &env);

    rc = NGX_OK;

    if (r->method != NGX_HTTP_POST && h->name.len) {
        rc = ngx_http_loom_http_etag(r, j);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_loom_http_members(r, j, 0, data, &body);
    }

    json_decref(j);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_loom_http_send(r, NGX_HTTP_OK,
                                                         &body));
}


ngx_str_t *
ngx_http_loom_http_data(ngx_http_request_t *r, ngx_str_t *answer,
    ngx_http_loom_json_envelope_t *env)
{
    u_char     *scratch, errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];
    ngx_str_t   err;

    scratch = ngx_pnalloc(r->pool, answer->len);
    if (scratch == NULL) {
        return NULL;
    }

    err.data = errbuf;

    if (ngx_http_loom_json_scan_envelope(answer->data, answer->len,
                                         NGX_MAX_INT32_VALUE, scratch, env,
                                         &err)
        != NGX_OK
        || env->data.type == NGX_HTTP_LOOM_JSON_NONE)
    {
        return NULL;
    }

    return &env->data.raw;
}


/*
 * An error response: with an answer, its members and the status its code
 * and message give (status 0), or the given status; else
 * {"code":status,"message":text}
 */

ngx_int_t
ngx_http_loom_http_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *answer, char *text)
{
    json_t        *j;
    ngx_int_t      rc;
    ngx_str_t      body;
    json_error_t   jerr;

    if (answer) {
        j = json_loadb((char *) answer->data, answer->len, 0, &jerr);

    } else {
        j = json_pack("{ss}", "message", text);
    }

    if (j == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == 0) {
        status = ngx_http_loom_http_status(j);
    }

    rc = ngx_http_loom_http_members(r, j, status, NULL, &body);
    json_decref(j);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_loom_http_send(r, status, &body);
}


/* the code of an answer; 0 if it has none */

ngx_int_t
ngx_http_loom_http_status_code(ngx_str_t *answer)
{
    json_t        *j;
    ngx_int_t      code;
    json_error_t   jerr;

    j = json_loadb((char *) answer->data, answer->len, 0, &jerr);
    if (j == NULL) {
        return 0;
    }

    code = (ngx_int_t) json_integer_value(json_object_get(j, "code"));
    json_decref(j);

    return code;
}


static ngx_uint_t
ngx_http_loom_http_status(json_t *answer)
{
    size_t       len;
    ngx_int_t    code;
    ngx_str_t   *m;
    const char  *message;

    code = (ngx_int_t) json_integer_value(json_object_get(answer, "code"));
    message = json_string_value(json_object_get(answer, "message"));

    if (message) {
        len = ngx_strlen(message);

        for (m = ngx_http_loom_http_missing; m->len; m++) {
            if (len >= m->len
                && ngx_strncmp(message, m->data, m->len) == 0)
            {
                return NGX_HTTP_NOT_FOUND;
            }
        }
    }

    if (code < 400 || code > 599) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return (ngx_uint_t) code;
}


ngx_int_t
ngx_http_loom_http_members(ngx_http_request_t *r, json_t *answer,
    ngx_int_t code, ngx_str_t *data, ngx_str_t *body)
{
    u_char      *p;
    char        *text;
    size_t       len;
    json_t      *o, *v;
    const char  *key;

    o = json_object();
    if (o == NULL) {
        return NGX_ERROR;
    }

    if (code && json_object_set_new(o, "code", json_integer(code)) != 0) {
        json_decref(o);
        return NGX_ERROR;
    }

    json_object_foreach(answer, key, v) {
        if (ngx_strcmp(key, "id") == 0 || ngx_strcmp(key, "action") == 0
            || ngx_strcmp(key, "type") == 0 || ngx_strcmp(key, "code") == 0
            || ngx_strcmp(key, "data") == 0)
        {
            continue;
        }

        if (json_object_set(o, key, v) != 0) {
            json_decref(o);
            return NGX_ERROR;
        }
    }

    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    body->data = ngx_pnalloc(r->pool, len + (data ? data->len : 0) + 16);
    if (body->data == NULL) {
        free(text);
        return NGX_ERROR;
    }

    p = body->data;

    if (data) {
        p = ngx_http_loom_cpylit(p, "{\"data\":");
        p = ngx_cpymem(p, data->data, data->len);

        if (len > 2) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, text + 1, len - 1);

    } else {
        p = ngx_cpymem(p, text, len);
    }

    *p++ = '\n';
    body->len = p - body->data;

    free(text);

    return NGX_OK;
}


/*
 * ETag: "<rev>:<epoch>", the value's position; nginx's not_modified
 * filter answers If-None-Match (304) and If-Match (412) with it
 */

static ngx_int_t
ngx_http_loom_http_etag(ngx_http_request_t *r, json_t *answer)
{
    u_char           *p;
    size_t            len;
    json_t           *rev;
    const char       *epoch, *e;
    ngx_table_elt_t  *h;

    rev = json_object_get(answer, "rev");
    epoch = json_string_value(json_object_get(answer, "epoch"));

    if (!json_is_integer(rev) || epoch == NULL) {
        return NGX_OK;
    }

    len = ngx_strlen(epoch);

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + len + 3);

    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value.data = p;

    p = ngx_sprintf(p, "\"%L:", (int64_t) json_integer_value(rev));

    /* what an entity-tag may hold of the epoch (RFC 9110 etagc) */

    for (e = epoch; *e; e++) {
        if (*e == 0x21 || (*e >= 0x23 && *e <= 0x7e)) {
            *p++ = *e;
        }
    }

    *p++ = '"';
    h->value.len = p - h->value.data;

    r->headers_out.etag = h;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_http_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
