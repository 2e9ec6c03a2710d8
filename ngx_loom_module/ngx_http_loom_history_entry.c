/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_history_entry.h"
#include "ngx_http_loom_rev.h"


ngx_int_t
ngx_http_loom_history_fields(redisReply *e,
    ngx_http_loom_history_fields_t *hf)
{
    size_t       i;
    ngx_str_t   *to;
    redisReply  *f, *k, *v;

    ngx_memzero(hf, sizeof(ngx_http_loom_history_fields_t));

    if (ngx_http_loom_history_entry_rev(e, &hf->rev) != NGX_OK) {
        return NGX_ERROR;
    }

    f = e->element[1];

    for (i = 0; i + 1 < f->elements; i += 2) {
        k = f->element[i];
        v = f->element[i + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING
            || k->len != 1)
        {
            return NGX_ERROR;
        }

        switch (k->str[0]) {
        case 't':
            to = &hf->ts;
            break;
        case 'd':
            to = &hf->delivery;
            break;
        case 'o':
            to = &hf->offset;
            break;
        case 'l':
            to = &hf->length;
            break;
        default:
            continue;
        }

        to->data = (u_char *) v->str;
        to->len = v->len;
    }

    return NGX_OK;
}


/* the last revision an entry holds: the first number of its id */

ngx_int_t
ngx_http_loom_history_entry_rev(redisReply *e, uint64_t *rev)
{
    uint64_t  k;

    return ngx_http_loom_history_entry_id(e, rev, &k);
}


/* "<rev>-0": one message; "<last rev>-<k>": a group of k */

ngx_int_t
ngx_http_loom_history_entry_id(redisReply *e, uint64_t *rev, uint64_t *k)
{
    u_char     *p, *last, *dash;
    ngx_str_t   s;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
        || e->element[0]->type != REDIS_REPLY_STRING
        || e->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_ERROR;
    }

    p = (u_char *) e->element[0]->str;
    last = p + e->element[0]->len;
    dash = ngx_strlchr(p, last, '-');

    if (dash == NULL) {
        return NGX_ERROR;
    }

    s.data = p;
    s.len = dash - p;

    if (ngx_http_loom_rev_uint(&s, rev) != NGX_OK) {
        return NGX_ERROR;
    }

    s.data = dash + 1;
    s.len = last - s.data;

    if (ngx_http_loom_rev_uint(&s, k) != NGX_OK || *k > *rev) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_history_next(ngx_http_loom_history_iter_t *it,
    ngx_http_loom_history_fields_t *hf)
{
    u_char      *colon;
    uint64_t     rev, k;
    redisReply  *e, *ts, *place, *delivery;

    /* the next entry, unless a group is being read: its id once */

    while (it->message == it->k) {

        if (it->entry >= it->entries->elements) {
            return NGX_DONE;
        }

        e = it->entries->element[it->entry++];

        if (ngx_http_loom_history_entry_id(e, &rev, &k) != NGX_OK) {
            return NGX_ERROR;
        }

        if (k == 0) {
            return ngx_http_loom_history_fields(e, hf);
        }

        if (e->element[1]->elements != 2 + 2 * k) {
            return NGX_ERROR;
        }

        it->fields = e->element[1];
        it->first = rev - k + 1;
        it->k = k;
        it->message = 0;
    }

    ts = it->fields->element[1];
    place = it->fields->element[2 + 2 * it->message];
    delivery = it->fields->element[3 + 2 * it->message];

    if (ts->type != REDIS_REPLY_STRING || place->type != REDIS_REPLY_STRING
        || delivery->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    colon = ngx_strlchr((u_char *) place->str,
                        (u_char *) place->str + place->len, ':');
    if (colon == NULL) {
        return NGX_ERROR;
    }

    hf->rev = it->first + it->message;
    hf->ts.data = (u_char *) ts->str;
    hf->ts.len = ts->len;
    hf->delivery.data = (u_char *) delivery->str;
    hf->delivery.len = delivery->len;
    hf->offset.data = (u_char *) place->str;
    hf->offset.len = colon - hf->offset.data;
    hf->length.data = colon + 1;
    hf->length.len = (u_char *) place->str + place->len - hf->length.data;

    it->message++;

    return NGX_OK;
}
