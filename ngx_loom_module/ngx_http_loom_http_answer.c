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
    ngx_int_t                    rc;
    ngx_str_t                    body;
    ngx_http_request_t          *r;
    ngx_http_loom_http_answer_t  a;

    r = h->request;

    if (ngx_http_loom_http_parse(r, answer, &a) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (a.code != NGX_HTTP_OK) {
        rc = ngx_http_loom_http_error_answer(r, &a);
        json_decref(a.json);
        ngx_http_finalize_request(r, rc);
        return;
    }

    rc = NGX_OK;

    if (r->method != NGX_HTTP_POST && h->name.len) {
        rc = ngx_http_loom_http_etag(r, a.json);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_loom_http_members(r, a.json, 0,
                                        a.data.data ? &a.data : NULL,
                                        &body);
    }

    json_decref(a.json);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_loom_http_send(r, NGX_HTTP_OK,
                                                         &body));
}


/*
 * "data" is the value as stored, which jansson may not take as it is (an
 * integer above 2^63, say): its bytes are kept aside, and jansson reads the
 * answer with null in their place
 */

ngx_int_t
ngx_http_loom_http_parse(ngx_http_request_t *r, ngx_str_t *text,
    ngx_http_loom_http_answer_t *a)
{
    u_char                         *scratch, *copy, *p, *end;
    u_char                          errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];
    ngx_str_t                       err;
    json_error_t                    jerr;
    ngx_http_loom_json_envelope_t   env;

    ngx_memzero(a, sizeof(ngx_http_loom_http_answer_t));

    scratch = ngx_pnalloc(r->pool, text->len + 4);
    copy = ngx_pnalloc(r->pool, text->len + 4);

    if (scratch == NULL || copy == NULL) {
        return NGX_ERROR;
    }

    err.data = errbuf;

    if (ngx_http_loom_json_scan_envelope(text->data, text->len,
                                         NGX_MAX_INT32_VALUE, scratch, &env,
                                         &err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = copy;

    if (env.data.type != NGX_HTTP_LOOM_JSON_NONE) {
        a->data = env.data.raw;
        end = a->data.data + a->data.len;

        p = ngx_cpymem(p, text->data, a->data.data - text->data);
        p = ngx_http_loom_cpylit(p, "null");
        p = ngx_cpymem(p, end, text->data + text->len - end);

    } else {
        p = ngx_cpymem(p, text->data, text->len);
    }

    a->json = json_loadb((char *) copy, p - copy, JSON_ALLOW_NUL, &jerr);
    if (a->json == NULL) {
        return NGX_ERROR;
    }

    a->code = (ngx_int_t) json_integer_value(json_object_get(a->json,
                                                             "code"));

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_http_error_answer(ngx_http_request_t *r,
    ngx_http_loom_http_answer_t *a)
{
    ngx_int_t   rc;
    ngx_str_t   body;
    ngx_uint_t  status;

    status = ngx_http_loom_http_status(a->json);

    rc = ngx_http_loom_http_members(r, a->json, status, NULL, &body);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_loom_http_send(r, status, &body);
}


ngx_int_t
ngx_http_loom_http_error(ngx_http_request_t *r, ngx_uint_t status,
    char *text)
{
    json_t     *j;
    ngx_int_t   rc;
    ngx_str_t   body;

    j = json_pack("{ss}", "message", text);
    if (j == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_loom_http_members(r, j, status, NULL, &body);
    json_decref(j);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_loom_http_send(r, status, &body);
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
