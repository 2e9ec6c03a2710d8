/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"


/* topics per listTopics answer, about (HSCAN's COUNT is a hint) */
#define NGX_HTTP_LOOM_LIST_PATTERN     512
#define NGX_HTTP_LOOM_LIST_MAX         1000


static ngx_int_t ngx_http_loom_list_send(ngx_http_loom_request_t *r);
static void ngx_http_loom_list_cleanup(ngx_http_loom_request_t *r);
static void ngx_http_loom_list_reply(ngx_http_loom_request_t *r,
    redisReply *reply);
static int ngx_libc_cdecl ngx_http_loom_list_cmp(const void *one,
    const void *two);
static void ngx_http_loom_list_answer(ngx_http_loom_request_t *r);


static ngx_str_t  ngx_http_loom_null = ngx_string("null");


/*
 * listTopics: the index is read with HSCAN, up to about
 * NGX_HTTP_LOOM_LIST_MAX topics per answer.  An index that fits in one
 * answer is answered as before, whole and sorted; a longer one comes in
 * pages, each sorted, with "cursor" for the next one.
 */


typedef struct ngx_http_loom_list_block_s  ngx_http_loom_list_block_t;

/* the entries of one HSCAN reply, copied: the reply goes after its call */
struct ngx_http_loom_list_block_s {
    ngx_http_loom_list_block_t     *next;
    ngx_uint_t                      n;
    ngx_str_t                       entries[1];  /* name, value, ... */
};


typedef struct {
    ngx_http_loom_list_block_t     *blocks;
    ngx_uint_t                      n;
    size_t                          len;         /* of the answer's data */
    size_t                          cursor_len;
    u_char                          cursor[NGX_INT64_LEN];
} ngx_http_loom_list_t;


void
ngx_http_loom_list(ngx_http_loom_ctx_t *ctx)
{
    u_char                   *p, *last;
    json_t                   *data, *cursor;
    ngx_str_t                 msg, c;
    json_error_t              jerr;
    ngx_http_loom_list_t     *l;
    ngx_http_loom_request_t  *r;

    /* {"cursor":"<digits>"} in data asks for a page after the first */

    ngx_str_set(&c, "0");
    data = NULL;

    if (ctx->env.data.type == NGX_HTTP_LOOM_JSON_OBJECT) {
        data = json_loadb((char *) ctx->env.data.raw.data,
                          ctx->env.data.raw.len, JSON_ALLOW_NUL, &jerr);
    }

    cursor = data ? json_object_get(data, "cursor") : NULL;

    if (cursor) {
        p = (u_char *) json_string_value(cursor);
        last = p ? p + json_string_length(cursor) : NULL;

        if (p == NULL || p == last
            || (size_t) (last - p) > NGX_INT64_LEN - 1)
        {
            p = NULL;

        } else {
            c.data = p;
            c.len = last - p;

            for ( /* void */ ; p < last; p++) {
                if (*p < '0' || *p > '9') {
                    p = NULL;
                    break;
                }
            }
        }

        if (p == NULL) {
            json_decref(data);
            ngx_str_set(&msg, "cursor must be a string of digits");
            ngx_http_loom_answer_error(ctx, 400, &msg, 1);
            return;
        }
    }

    r = ngx_http_loom_request_create(ctx, sizeof(ngx_http_loom_list_t));
    if (r == NULL) {
        json_decref(data);
        return;
    }

    l = (ngx_http_loom_list_t *) r->payload.data;
    ngx_memzero(l, sizeof(ngx_http_loom_list_t));
    l->cursor_len = c.len;
    ngx_memcpy(l->cursor, c.data, c.len);

    json_decref(data);

    r->cleanup = ngx_http_loom_list_cleanup;

    (void) ngx_http_loom_list_send(r);
}


static ngx_int_t
ngx_http_loom_list_send(ngx_http_loom_request_t *r)
{
    u_char                 count[NGX_INT_T_LEN], skip[NGX_INT_T_LEN], *p;
    u_char                 pattern[NGX_HTTP_LOOM_LIST_PATTERN];
    ngx_str_t             *index, *prefix, msg;
    ngx_uint_t             i;
    const char            *argv[5];
    size_t                 argvlen[5];
    ngx_http_loom_store_t *store;
    ngx_http_loom_list_t  *l;

    l = (ngx_http_loom_list_t *) r->payload.data;
    store = r->session->worker->store;
    index = ngx_http_loom_store_index(store);

    argv[0] = "HSCAN";
    argvlen[0] = 5;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;
    argv[2] = (char *) l->cursor;
    argvlen[2] = l->cursor_len;
    argv[3] = "COUNT";
    argvlen[3] = 5;
    argv[4] = (char *) count;
    argvlen[4] = ngx_sprintf(count, "%ui", NGX_HTTP_LOOM_LIST_MAX - l->n)
                 - count;

    if (!ngx_http_loom_store_clustered(store)) {
        return ngx_http_loom_request_send(r, ngx_http_loom_list_reply,
                                          NGX_HTTP_LOOM_COMMAND, 0,
                                          5, argv, argvlen);
    }

    /*
     * In a cluster, every master's topic hashes are walked with SCAN
     * (lua/list.lua); the cursor names the master
     */

    prefix = ngx_http_loom_store_prefix(store);

    if (2 * prefix->len + sizeof("{t:*}") > NGX_HTTP_LOOM_LIST_PATTERN) {
        ngx_str_set(&msg, "storage error: the key prefix is too long");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return NGX_ERROR;
    }

    p = pattern;

    for (i = 0; i < prefix->len; i++) {
        if (ngx_strchr("*?[]\\", prefix->data[i])) {
            *p++ = '\\';
        }

        *p++ = prefix->data[i];
    }

    p = ngx_cpymem(p, "{t:*}", 5);

    argv[0] = (char *) l->cursor;
    argvlen[0] = l->cursor_len;
    argv[1] = (char *) count;
    argvlen[1] = argvlen[4];
    argv[2] = (char *) pattern;
    argvlen[2] = p - pattern;
    argv[3] = (char *) skip;
    argvlen[3] = ngx_sprintf(skip, "%uz", prefix->len + 3) - skip;

    return ngx_http_loom_request_send(r, ngx_http_loom_list_reply,
                                      NGX_HTTP_LOOM_SCRIPT_LIST, 0,
                                      4, argv, argvlen);
}


static void
ngx_http_loom_list_cleanup(ngx_http_loom_request_t *r)
{
    ngx_http_loom_list_t        *l;
    ngx_http_loom_list_block_t  *b;

    l = (ngx_http_loom_list_t *) r->payload.data;

    while (l->blocks) {
        b = l->blocks;
        l->blocks = b->next;
        ngx_free(b);
    }
}


static void
ngx_http_loom_list_reply(ngx_http_loom_request_t *r, redisReply *reply)
{
    u_char                      *p;
    size_t                       len, i;
    ngx_str_t                    msg;
    redisReply                  *cursor, *items, *e;
    ngx_http_loom_list_t        *l;
    ngx_http_loom_list_block_t  *b;

    l = (ngx_http_loom_list_t *) r->payload.data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len == 0
        || reply->element[0]->len > NGX_INT64_LEN - 1
        || reply->element[1]->type != REDIS_REPLY_ARRAY
        || reply->element[1]->elements % 2)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    cursor = reply->element[0];
    items = reply->element[1];

    len = 0;

    for (i = 0; i < items->elements; i++) {
        e = items->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            ngx_http_loom_request_fail(r, NULL);
            return;
        }

        len += e->len;
    }

    if (items->elements) {
        b = ngx_alloc(sizeof(ngx_http_loom_list_block_t)
                      + items->elements * sizeof(ngx_str_t) + len,
                      r->session->connection->log);
        if (b == NULL) {
            ngx_str_set(&msg, "out of memory");
            ngx_http_loom_request_error(r, 500, &msg, 1);
            return;
        }

        b->n = items->elements / 2;
        p = (u_char *) &b->entries[items->elements];

        for (i = 0; i < items->elements; i++) {
            e = items->element[i];
            b->entries[i].data = p;
            b->entries[i].len = e->len;
            p = ngx_cpymem(p, e->str, e->len);
        }

        b->next = l->blocks;
        l->blocks = b;
        l->n += b->n;
    }

    l->cursor_len = cursor->len;
    ngx_memcpy(l->cursor, cursor->str, cursor->len);

    if (l->n < NGX_HTTP_LOOM_LIST_MAX
        && !(cursor->len == 1 && cursor->str[0] == '0'))
    {
        /* more of the index, up to the page's size: r may be gone after */
        (void) ngx_http_loom_list_send(r);
        return;
    }

    ngx_http_loom_list_answer(r);
}


static int ngx_libc_cdecl
ngx_http_loom_list_cmp(const void *one, const void *two)
{
    ngx_str_t  *a, *b;

    /* pairs of (name, value): by name */

    a = *(ngx_str_t **) one;
    b = *(ngx_str_t **) two;

    return ngx_memn2cmp(a->data, b->data, a->len, b->len);
}


static void
ngx_http_loom_list_answer(ngx_http_loom_request_t *r)
{
    u_char                      *p;
    size_t                       len, i, k, n;
    ngx_str_t                    data, msg, more, *name, *value, **pairs;
    ngx_http_loom_list_t        *l;
    ngx_http_loom_list_block_t  *b;

    l = (ngx_http_loom_list_t *) r->payload.data;

    ngx_str_null(&more);

    if (!(l->cursor_len == 1 && l->cursor[0] == '0')) {
        more.data = l->cursor;
        more.len = l->cursor_len;
    }

    if (l->n == 0) {
        /* as the original: null, not [] */
        ngx_http_loom_request_finish(r, ngx_http_loom_response_more(r,
                                                    &ngx_http_loom_null,
                                                    &more));
        return;
    }

    pairs = ngx_alloc(l->n * sizeof(ngx_str_t *),
                      r->session->connection->log);
    if (pairs == NULL) {
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return;
    }

    n = 0;

    for (b = l->blocks; b; b = b->next) {
        for (i = 0; i < b->n; i++) {
            pairs[n++] = &b->entries[2 * i];
        }
    }

    /* sorted by name: the original's order was random */
    ngx_qsort(pairs, n, sizeof(ngx_str_t *), ngx_http_loom_list_cmp);

    /* [{"name":"<name>","schema":{"version":v,"schema":{...}}},...] */

    len = 2;
    k = 0;

    for (i = 0; i < n; i++) {

        /* a scan may return an entry twice */

        if (k && ngx_memn2cmp(pairs[k - 1]->data, pairs[i]->data,
                              pairs[k - 1]->len, pairs[i]->len) == 0)
        {
            continue;
        }

        /* only the topics the credential may see */

        if (ngx_http_loom_access_visible(r->session, pairs[i]) != NGX_OK) {
            continue;
        }

        pairs[k++] = pairs[i];

        name = pairs[i];
        value = pairs[i] + 1;

        len += sizeof("{\"name\":\"\",\"schema\":},") - 1 + value->len
               + ngx_http_loom_json_escape_len(name->data, name->len);
    }

    if (k == 0) {
        ngx_free(pairs);
        ngx_http_loom_request_finish(r, ngx_http_loom_response_more(r,
                                                    &ngx_http_loom_null,
                                                    &more));
        return;
    }

    data.data = ngx_alloc(len, r->session->connection->log);
    if (data.data == NULL) {
        ngx_free(pairs);
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return;
    }

    p = data.data;
    *p++ = '[';

    for (i = 0; i < k; i++) {
        name = pairs[i];
        value = pairs[i] + 1;

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"name\":\"", 9);
        p = ngx_http_loom_json_escape(p, name->data, name->len);
        p = ngx_cpymem(p, "\",\"schema\":", 11);
        p = ngx_cpymem(p, value->data, value->len);
        *p++ = '}';
    }

    *p++ = ']';
    data.len = p - data.data;

    ngx_free(pairs);

    ngx_http_loom_request_finish(r, ngx_http_loom_response_more(r, &data,
                                                                &more));
    ngx_free(data.data);
}
