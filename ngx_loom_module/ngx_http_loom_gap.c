/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_loom_gap.h"
#include "ngx_http_loom_history_entry.h"


#define NGX_HTTP_LOOM_GAP_READY      0
#define NGX_HTTP_LOOM_GAP_HISTORY    1    /* history.lua since last */
#define NGX_HTTP_LOOM_GAP_SNAPSHOT   2    /* snapshot.lua, then resync */
#define NGX_HTTP_LOOM_GAP_CHECK      3    /* epoch.lua, after a drop */

/* a read that could not be sent is tried again after this (ms) */
#define NGX_HTTP_LOOM_GAP_RETRY      250


typedef struct {
    ngx_queue_t                    link;
    ngx_http_loom_rev_msg_t        msg;        /* strings point to data */
    size_t                         size;
    u_char                         data[1];
} ngx_http_loom_gap_held_t;


struct ngx_http_loom_gap_call_s {
    ngx_http_loom_store_call_t     call;       /* first */
    ngx_http_loom_gap_t           *gap;        /* NULL: the owner went */
};


static ngx_int_t ngx_http_loom_gap_handle(ngx_http_loom_gap_t *g,
    ngx_http_loom_rev_msg_t *m);
static ngx_int_t ngx_http_loom_gap_hold(ngx_http_loom_gap_t *g,
    ngx_http_loom_rev_msg_t *m);
static void ngx_http_loom_gap_run(ngx_http_loom_gap_t *g);
static void ngx_http_loom_gap_start(ngx_http_loom_gap_t *g,
    ngx_uint_t state, char *reason);
static void ngx_http_loom_gap_send(ngx_http_loom_gap_t *g);
static void ngx_http_loom_gap_retry(ngx_event_t *ev);
static void ngx_http_loom_gap_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static ngx_int_t ngx_http_loom_gap_history(ngx_http_loom_gap_t *g,
    redisReply *reply);
static ngx_int_t ngx_http_loom_gap_entry(ngx_http_loom_gap_t *g,
    redisReply *e);
static ngx_int_t ngx_http_loom_gap_snapshot(ngx_http_loom_gap_t *g,
    redisReply *reply);
static ngx_int_t ngx_http_loom_gap_check(ngx_http_loom_gap_t *g,
    redisReply *reply);
static void ngx_http_loom_gap_set_epoch(ngx_http_loom_gap_t *g,
    u_char *epoch, size_t len);
static ngx_uint_t ngx_http_loom_gap_same_epoch(ngx_http_loom_gap_t *g,
    ngx_str_t *epoch);
static ngx_int_t ngx_http_loom_gap_number(redisReply *r, uint64_t *v);


void
ngx_http_loom_gap_init(ngx_http_loom_gap_t *g)
{
    ngx_queue_init(&g->held);

    g->held_bytes = 0;
    g->state = NGX_HTTP_LOOM_GAP_READY;
    g->call = NULL;
    g->known = 0;
    g->check = 0;
    g->last = 0;
    g->epoch_len = 0;

    ngx_memzero(&g->retry, sizeof(ngx_event_t));
    g->retry.handler = ngx_http_loom_gap_retry;
    g->retry.data = g;
    g->retry.log = g->log;
    g->retry.cancelable = 1;
}


ngx_int_t
ngx_http_loom_gap_message(ngx_http_loom_gap_t *g, ngx_http_loom_rev_msg_t *m)
{
    if (g->state == NGX_HTTP_LOOM_GAP_READY && ngx_queue_empty(&g->held)) {

        /* the usual case: in order, nothing held, nothing copied */

        if (ngx_http_loom_gap_handle(g, m) == NGX_OK) {
            return NGX_OK;
        }
    }

    if (ngx_http_loom_gap_hold(g, m) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_loom_gap_run(g);

    return NGX_OK;
}


void
ngx_http_loom_gap_link_back(ngx_http_loom_gap_t *g)
{
    if (g->state != NGX_HTTP_LOOM_GAP_READY) {
        /* checked once the read under way is through */
        g->check = 1;
        return;
    }

    if (g->memory) {
        /* nothing can be read back: say that messages may be lost */
        ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_SNAPSHOT, "gap");
        return;
    }

    if (g->known) {
        ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_CHECK, NULL);
    }
}


void
ngx_http_loom_gap_forget(ngx_http_loom_gap_t *g)
{
    ngx_queue_t               *q;
    ngx_http_loom_gap_held_t  *h;

    while (!ngx_queue_empty(&g->held)) {
        q = ngx_queue_head(&g->held);
        ngx_queue_remove(q);
        h = ngx_queue_data(q, ngx_http_loom_gap_held_t, link);
        ngx_free(h);
    }

    g->held_bytes = 0;

    if (g->call) {
        g->call->gap = NULL;
        g->call = NULL;
    }

    if (g->retry.timer_set) {
        ngx_del_timer(&g->retry);
    }

    g->state = NGX_HTTP_LOOM_GAP_READY;
    g->known = 0;
    g->check = 0;
    g->last = 0;
    g->epoch_len = 0;
}


ngx_uint_t
ngx_http_loom_gap_idle(ngx_http_loom_gap_t *g)
{
    return g->state == NGX_HTTP_LOOM_GAP_READY && ngx_queue_empty(&g->held);
}


void
ngx_http_loom_gap_free(ngx_http_loom_gap_t *g)
{
    ngx_http_loom_gap_forget(g);
}


/* NGX_OK: delivered or dropped; NGX_AGAIN: m must wait, a read started */

static ngx_int_t
ngx_http_loom_gap_handle(ngx_http_loom_gap_t *g, ngx_http_loom_rev_msg_t *m)
{
    ngx_str_t                 reason;
    ngx_http_loom_gap_item_t  item;

    if (m->kind == NGX_HTTP_LOOM_REV_EPOCH) {

        /* "E <epoch> <rev> <ts> <value>": the epoch changed */

        if (g->known && ngx_http_loom_gap_same_epoch(g, &m->epoch)) {
            return NGX_OK;
        }

        ngx_http_loom_gap_set_epoch(g, m->epoch.data, m->epoch.len);
        g->last = m->rev;
        g->known = 1;

        ngx_str_set(&reason, "epoch");
        g->resync(g, &reason, &m->text, m->rev, m->ts);
        return NGX_OK;
    }

    item.delivery = m->text;
    item.seq = m->seq;
    item.rev = m->rev;
    item.ts = m->ts;
    item.dup = 0;

    if (m->rev == 0) {
        /* not stored: no place in the sequence */
        g->deliver(g, &item);
        return NGX_OK;
    }

    if (!g->known) {
        ngx_http_loom_gap_set_epoch(g, m->epoch.data, m->epoch.len);
        g->last = m->rev;
        g->known = 1;
        g->deliver(g, &item);
        return NGX_OK;
    }

    if (!ngx_http_loom_gap_same_epoch(g, &m->epoch)) {

        if (m->rev != 1) {
            ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_SNAPSHOT, "epoch");
            return NGX_AGAIN;
        }

        /* the first revision of a new epoch: nothing came before it */

        ngx_http_loom_gap_set_epoch(g, m->epoch.data, m->epoch.len);
        g->last = 0;

        ngx_str_set(&reason, "epoch");
        ngx_str_null(&item.delivery);
        g->resync(g, &reason, &item.delivery, 0, 0);

        item.delivery = m->text;
    }

    if (m->rev <= g->last) {
        /* read from history already: an ack may wait for its seq */
        item.dup = 1;
        g->deliver(g, &item);
        return NGX_OK;
    }

    if (m->rev == g->last + 1) {
        g->last = m->rev;
        g->deliver(g, &item);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, g->log, 0,
                  "loom: \"%V\" skipped from revision %uL to %uL, "
                  "reading the history", &g->key, g->last, m->rev);

    ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_HISTORY, NULL);

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_loom_gap_hold(ngx_http_loom_gap_t *g, ngx_http_loom_rev_msg_t *m)
{
    size_t                     size;
    u_char                    *p;
    ngx_queue_t               *q;
    ngx_http_loom_gap_held_t  *h, *old;

    size = sizeof(ngx_http_loom_gap_held_t) + m->epoch.len + m->text.len;

    h = ngx_alloc(size, g->log);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->msg = *m;
    h->size = size;

    p = ngx_cpymem(h->data, m->epoch.data, m->epoch.len);
    h->msg.epoch.data = h->data;
    ngx_memcpy(p, m->text.data, m->text.len);
    h->msg.text.data = p;

    ngx_queue_insert_tail(&g->held, &h->link);
    g->held_bytes += size;

    /* the oldest go first: the history has them too */

    while (g->held_bytes > g->max_held
           && ngx_queue_head(&g->held) != &h->link)
    {
        q = ngx_queue_head(&g->held);
        ngx_queue_remove(q);
        old = ngx_queue_data(q, ngx_http_loom_gap_held_t, link);
        g->held_bytes -= old->size;
        ngx_free(old);
    }

    return NGX_OK;
}


/* the held messages, in order, as far as they go without a read */

static void
ngx_http_loom_gap_run(ngx_http_loom_gap_t *g)
{
    ngx_queue_t               *q;
    ngx_http_loom_gap_held_t  *h;

    while (g->state == NGX_HTTP_LOOM_GAP_READY) {

        if (g->check) {
            g->check = 0;
            ngx_http_loom_gap_link_back(g);
            continue;
        }

        if (ngx_queue_empty(&g->held)) {
            return;
        }

        q = ngx_queue_head(&g->held);
        h = ngx_queue_data(q, ngx_http_loom_gap_held_t, link);

        if (ngx_http_loom_gap_handle(g, &h->msg) == NGX_AGAIN) {
            return;
        }

        ngx_queue_remove(q);
        g->held_bytes -= h->size;
        ngx_free(h);
    }
}


static void
ngx_http_loom_gap_start(ngx_http_loom_gap_t *g, ngx_uint_t state,
    char *reason)
{
    g->state = state;

    if (reason) {
        g->reason.data = (u_char *) reason;
        g->reason.len = ngx_strlen(reason);
    }

    ngx_http_loom_gap_send(g);
}


static void
ngx_http_loom_gap_send(ngx_http_loom_gap_t *g)
{
    u_char                    *p;
    u_char                     since[NGX_INT64_LEN], limit[NGX_INT64_LEN];
    u_char                     hn[NGX_INT64_LEN], ha[NGX_INT64_LEN];
    size_t                     argvlen[9];
    ngx_int_t                  rc;
    ngx_uint_t                 script, nkeys, argc;
    const char                *argv[9], *reason;
    ngx_http_loom_gap_call_t  *c;

    c = ngx_alloc(sizeof(ngx_http_loom_gap_call_t), g->log);
    if (c == NULL) {
        goto retry;
    }

    c->call.handler = ngx_http_loom_gap_reply;
    c->gap = g;

    argv[0] = (char *) g->key.data;
    argvlen[0] = g->key.len;
    argv[1] = (char *) g->stream.data;
    argvlen[1] = g->stream.len;

    switch (g->state) {

    case NGX_HTTP_LOOM_GAP_HISTORY:
        script = NGX_HTTP_LOOM_SCRIPT_HISTORY;
        nkeys = 2;

        p = ngx_http_loom_rev_decimal(since, g->last);
        argv[2] = (char *) since;
        argvlen[2] = p - since;
        p = ngx_http_loom_rev_decimal(limit, g->page);
        argv[3] = (char *) limit;
        argvlen[3] = p - limit;
        argv[4] = "0";
        argvlen[4] = 1;
        argv[5] = "";
        argvlen[5] = 0;
        argv[6] = "";
        argvlen[6] = 0;
        p = ngx_http_loom_rev_decimal(hn, g->history);
        argv[7] = (char *) hn;
        argvlen[7] = p - hn;
        p = ngx_http_loom_rev_decimal(ha, g->max_age);
        argv[8] = (char *) ha;
        argvlen[8] = p - ha;
        argc = 9;
        break;

    case NGX_HTTP_LOOM_GAP_CHECK:
        script = NGX_HTTP_LOOM_SCRIPT_EPOCH;
        nkeys = 1;

        argv[1] = (char *) g->epoch;
        argvlen[1] = g->epoch_len;
        p = ngx_http_loom_rev_decimal(since, g->last);
        argv[2] = (char *) since;
        argvlen[2] = p - since;
        argv[3] = (char *) g->channel.data;
        argvlen[3] = g->channel.len;
        argc = 4;
        break;

    default: /* NGX_HTTP_LOOM_GAP_SNAPSHOT */
        script = NGX_HTTP_LOOM_SCRIPT_SNAPSHOT;
        nkeys = 1;
        argc = 1;
        break;
    }

    rc = ngx_http_loom_store_script(g->store, &c->call, script, nkeys, argc,
                                    argv, argvlen, &reason);

    if (rc == NGX_OK) {
        g->call = c;
        return;
    }

    ngx_free(c);

    ngx_log_error(NGX_LOG_INFO, g->log, 0,
                  "loom: reading \"%V\" failed (%s), trying again",
                  &g->key, reason);

retry:

    ngx_add_timer(&g->retry, NGX_HTTP_LOOM_GAP_RETRY);
}


static void
ngx_http_loom_gap_retry(ngx_event_t *ev)
{
    ngx_http_loom_gap_t  *g;

    g = ev->data;

    if (g->state != NGX_HTTP_LOOM_GAP_READY && g->call == NULL) {
        ngx_http_loom_gap_send(g);
    }
}


static void
ngx_http_loom_gap_reply(ngx_http_loom_store_call_t *call, redisReply *reply)
{
    ngx_int_t                  rc;
    ngx_http_loom_gap_t       *g;
    ngx_http_loom_gap_call_t  *c;

    c = (ngx_http_loom_gap_call_t *) call;
    g = c->gap;

    ngx_free(c);

    if (g == NULL) {
        return;
    }

    g->call = NULL;

    if (reply == NULL) {
        /* the command link went down: again, once it is back */
        ngx_add_timer(&g->retry, NGX_HTTP_LOOM_GAP_RETRY);
        return;
    }

    switch (g->state) {

    case NGX_HTTP_LOOM_GAP_HISTORY:
        rc = ngx_http_loom_gap_history(g, reply);
        break;

    case NGX_HTTP_LOOM_GAP_CHECK:
        rc = ngx_http_loom_gap_check(g, reply);
        break;

    default:
        rc = ngx_http_loom_gap_snapshot(g, reply);
        break;
    }

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, g->log, 0,
                      "loom: unexpected reply from redis reading \"%V\"",
                      &g->key);
        ngx_add_timer(&g->retry, NGX_HTTP_LOOM_GAP_RETRY);
        return;
    }

    if (rc == NGX_AGAIN) {
        /* another read went out */
        return;
    }

    g->state = NGX_HTTP_LOOM_GAP_READY;

    ngx_http_loom_gap_run(g);
}


/* {1, epoch, top, entries}, {0, epoch, top, {}}: no history; nil */

static ngx_int_t
ngx_http_loom_gap_history(ngx_http_loom_gap_t *g, redisReply *reply)
{
    size_t        i;
    uint64_t      ok, top, first;
    ngx_str_t     epoch;
    redisReply   *e;

    if (reply->type == REDIS_REPLY_NIL) {
        /* the topic is gone: what is held goes as it is */
        g->known = 0;
        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || ngx_http_loom_gap_number(reply->element[0], &ok) != NGX_OK
        || reply->element[1]->type != REDIS_REPLY_STRING
        || ngx_http_loom_gap_number(reply->element[2], &top) != NGX_OK
        || reply->element[3]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_ERROR;
    }

    epoch.data = (u_char *) reply->element[1]->str;
    epoch.len = reply->element[1]->len;

    if (!ngx_http_loom_gap_same_epoch(g, &epoch)) {
        ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_SNAPSHOT, "epoch");
        return NGX_AGAIN;
    }

    e = reply->element[3];

    first = 0;

    if (e->elements
        && ngx_http_loom_history_entry_rev(e->element[0], &first) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (top <= g->last) {
        /* nothing after the last one delivered */
        return NGX_OK;
    }

    if (!ok || first != g->last + 1) {
        /* the history does not reach back far enough */
        ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_SNAPSHOT, "gap");
        return NGX_AGAIN;
    }

    for (i = 0; i < e->elements; i++) {
        if (ngx_http_loom_gap_entry(g, e->element[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (e->elements == g->page && g->last < top) {
        ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_HISTORY, NULL);
        return NGX_AGAIN;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_gap_entry(ngx_http_loom_gap_t *g, redisReply *e)
{
    ngx_http_loom_gap_item_t        item;
    ngx_http_loom_history_fields_t  hf;

    if (ngx_http_loom_history_fields(e, &hf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&item, sizeof(ngx_http_loom_gap_item_t));
    item.rev = hf.rev;
    item.delivery = hf.delivery;

    if (hf.ts.data && ngx_http_loom_rev_uint(&hf.ts, &item.ts) != NGX_OK) {
        return NGX_ERROR;
    }

    if (item.delivery.len < 2) {
        return NGX_ERROR;
    }

    if (item.rev <= g->last) {
        return NGX_OK;
    }

    if (item.rev != g->last + 1) {
        /* a hole inside the history: not ours to paper over */
        return NGX_ERROR;
    }

    g->last = item.rev;
    g->deliver(g, &item);

    return NGX_OK;
}


/* {rev, epoch, ts, value or nil}; nil */

static ngx_int_t
ngx_http_loom_gap_snapshot(ngx_http_loom_gap_t *g, redisReply *reply)
{
    uint64_t     rev, ts;
    ngx_str_t    value;
    redisReply  *v;

    if (reply->type == REDIS_REPLY_NIL) {
        g->known = 0;
        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || ngx_http_loom_gap_number(reply->element[0], &rev) != NGX_OK
        || reply->element[1]->type != REDIS_REPLY_STRING
        || ngx_http_loom_gap_number(reply->element[2], &ts) != NGX_OK)
    {
        return NGX_ERROR;
    }

    v = reply->element[3];
    ngx_str_null(&value);

    if (v->type == REDIS_REPLY_STRING) {
        value.data = (u_char *) v->str;
        value.len = v->len;
    }

    ngx_http_loom_gap_set_epoch(g, (u_char *) reply->element[1]->str,
                                reply->element[1]->len);
    g->last = rev;
    g->known = !g->memory;

    ngx_log_error(NGX_LOG_INFO, g->log, 0,
                  "loom: \"%V\" resynchronized at revision %uL (%V)",
                  &g->key, rev, &g->reason);

    g->resync(g, &g->reason, &value, rev, ts);

    return NGX_OK;
}


/* {changed, epoch, top, ts, value or nil}; nil */

static ngx_int_t
ngx_http_loom_gap_check(ngx_http_loom_gap_t *g, redisReply *reply)
{
    uint64_t     changed, top, ts;
    ngx_str_t    epoch, value, reason;
    redisReply  *v;

    if (reply->type == REDIS_REPLY_NIL) {
        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5
        || ngx_http_loom_gap_number(reply->element[0], &changed) != NGX_OK
        || reply->element[1]->type != REDIS_REPLY_STRING
        || ngx_http_loom_gap_number(reply->element[2], &top) != NGX_OK
        || ngx_http_loom_gap_number(reply->element[3], &ts) != NGX_OK)
    {
        return NGX_ERROR;
    }

    epoch.data = (u_char *) reply->element[1]->str;
    epoch.len = reply->element[1]->len;

    if (!ngx_http_loom_gap_same_epoch(g, &epoch)) {

        if (changed) {
            ngx_log_error(NGX_LOG_WARN, g->log, 0,
                          "loom: redis lost revisions of \"%V\" after "
                          "%uL: now at %uL, in a new epoch",
                          &g->key, g->last, top);
        }

        v = reply->element[4];
        ngx_str_null(&value);

        if (v->type == REDIS_REPLY_STRING) {
            value.data = (u_char *) v->str;
            value.len = v->len;
        }

        ngx_http_loom_gap_set_epoch(g, epoch.data, epoch.len);
        g->last = top;

        ngx_str_set(&reason, "epoch");
        g->resync(g, &reason, &value, top, ts);
        return NGX_OK;
    }

    if (top > g->last) {
        ngx_http_loom_gap_start(g, NGX_HTTP_LOOM_GAP_HISTORY, NULL);
        return NGX_AGAIN;
    }

    return NGX_OK;
}


static void
ngx_http_loom_gap_set_epoch(ngx_http_loom_gap_t *g, u_char *epoch,
    size_t len)
{
    /* epochs are made by the scripts; a longer one is cut, consistently */

    if (len > NGX_HTTP_LOOM_GAP_EPOCH_LEN) {
        len = NGX_HTTP_LOOM_GAP_EPOCH_LEN;
    }

    ngx_memcpy(g->epoch, epoch, len);
    g->epoch_len = len;
}


static ngx_uint_t
ngx_http_loom_gap_same_epoch(ngx_http_loom_gap_t *g, ngx_str_t *epoch)
{
    size_t  len;

    len = epoch->len;

    if (len > NGX_HTTP_LOOM_GAP_EPOCH_LEN) {
        len = NGX_HTTP_LOOM_GAP_EPOCH_LEN;
    }

    return len == g->epoch_len && ngx_memcmp(g->epoch, epoch->data, len) == 0;
}


static ngx_int_t
ngx_http_loom_gap_number(redisReply *r, uint64_t *v)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
        return NGX_ERROR;
    }

    *v = (uint64_t) r->integer;

    return NGX_OK;
}
