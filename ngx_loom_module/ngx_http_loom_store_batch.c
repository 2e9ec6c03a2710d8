/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_int.h"


/*
 * Group commits.  Script calls of one script and one set of keys (the
 * publishes of one topic) asked for one right after the other are sent
 * as one EVALSHA: Redis pays what a script call costs besides its work
 * (entering the script, reading the topic's fields, the clock, writing
 * the counters, the transaction around the writes) once per group, not
 * once per call.
 *
 * A worker has at most one open group.  A call joins it when it is for
 * the same script, keys and common arguments; any other call first sends
 * the open group, and so does every command or other script
 * (st->flush): Redis runs everything in the order it was asked for,
 * exactly as without groups, and no group waits for anything but the end
 * of the event loop's pass (a posted event) or its bound.
 *
 * The arguments of the calls are copied into the group's buffer; once the
 * group is sent (the command formatted) the buffer is freed, and the
 * group lives on until its reply has been handed out.
 */


#define NGX_HTTP_LOOM_BATCH_MAX     NGX_HTTP_LOOM_GROUP_MAX
#define NGX_HTTP_LOOM_BATCH_BYTES   (1024 * 1024)
#define NGX_HTTP_LOOM_BATCH_BUF     4096


typedef struct {
    ngx_http_loom_store_call_t   call;          /* must be first */
    ngx_http_loom_batches_t     *batches;
    ngx_queue_t                  queue;         /* in batches->refused */

    ngx_uint_t                   script;
    int                          nkeys;
    int                          nfixed;        /* keys and common ones */
    int                          nown;          /* arguments of a call */
    int                          argc;

    size_t                      *offset;        /* of each argument */
    size_t                      *len;           /* in buf */
    u_char                      *buf;
    size_t                       used;
    size_t                       size;

    ngx_uint_t                   n;
    ngx_http_loom_store_call_t  *calls[NGX_HTTP_LOOM_BATCH_MAX];

    u_char                       text[128];     /* why it was not sent */
} ngx_http_loom_batch_t;


struct ngx_http_loom_batches_s {
    ngx_http_loom_store_t       *store;
    ngx_http_loom_batch_t       *open;
    ngx_queue_t                  refused;       /* not sent: to answer */
    ngx_event_t                  event;         /* end of the pass */
};


static ngx_http_loom_batches_t *ngx_http_loom_batches_get(
    ngx_http_loom_store_t *st);
static ngx_http_loom_batch_t *ngx_http_loom_batch_open(
    ngx_http_loom_batches_t *bs, ngx_uint_t script, int nkeys,
    int ncommon, int argc, const char **argv, const size_t *argvlen);
static ngx_uint_t ngx_http_loom_batch_same(ngx_http_loom_batch_t *b,
    ngx_uint_t script, int nkeys, int ncommon, int argc, const char **argv,
    const size_t *argvlen);
static ngx_int_t ngx_http_loom_batch_copy(ngx_http_loom_batch_t *b,
    int from, int to, const char **argv, const size_t *argvlen);
static void ngx_http_loom_batch_flush(ngx_http_loom_store_t *st);
static void ngx_http_loom_batch_send(ngx_http_loom_batches_t *bs);
static void ngx_http_loom_batch_event(ngx_event_t *ev);
static void ngx_http_loom_batch_refusals(ngx_http_loom_batches_t *bs);
static void ngx_http_loom_batch_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_batch_drop(ngx_http_loom_store_t *st);
static void ngx_http_loom_batch_free(ngx_http_loom_batch_t *b);


ngx_int_t
ngx_http_loom_store_append(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int ncommon, int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    int                       i;
    size_t                    size;
    ngx_http_loom_batch_t    *b;
    ngx_http_loom_batches_t  *bs;

    if (st->exiting) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    /* refused at once, as a single script call would be */

    if (st->cluster == NULL
        && st->command.rd.state != NGX_HTTP_LOOM_LINK_READY)
    {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    if (nkeys < 1 || ncommon < 0 || argc <= nkeys + ncommon) {
        *reason = "a group call without arguments of its own";
        return NGX_ERROR;
    }

    bs = ngx_http_loom_batches_get(st);
    if (bs == NULL) {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    b = bs->open;

    if (b && !ngx_http_loom_batch_same(b, script, nkeys, ncommon, argc,
                                       argv, argvlen))
    {
        ngx_http_loom_batch_send(bs);
        b = NULL;
    }

    if (b) {
        /* the bound: sent before the call that would pass it */

        size = 0;

        for (i = nkeys + ncommon; i < argc; i++) {
            size += argvlen[i];
        }

        if (b->n == NGX_HTTP_LOOM_BATCH_MAX
            || b->used + size > NGX_HTTP_LOOM_BATCH_BYTES)
        {
            ngx_http_loom_batch_send(bs);
            b = NULL;
        }
    }

    if (b == NULL) {
        b = ngx_http_loom_batch_open(bs, script, nkeys, ncommon, argc, argv,
                                     argvlen);
        if (b == NULL) {
            *reason = "out of memory";
            return NGX_ERROR;
        }

        bs->open = b;
    }

    if (ngx_http_loom_batch_copy(b, nkeys + ncommon, argc, argv, argvlen)
        != NGX_OK)
    {
        *reason = "out of memory";

        if (b->n == 0) {
            bs->open = NULL;
            ngx_http_loom_batch_free(b);
        }

        return NGX_ERROR;
    }

    call->store = st;
    call->durable = 0;
    call->unconfirmed = 0;
    call->unsent = 0;

    b->calls[b->n++] = call;

    /* stores nothing only if none of its calls does: no WAIT then */

    if (!call->ephemeral) {
        b->call.ephemeral = 0;
    }

    if (!bs->event.posted) {
        ngx_post_event(&bs->event, &ngx_posted_events);
    }

    return NGX_OK;
}


static ngx_http_loom_batches_t *
ngx_http_loom_batches_get(ngx_http_loom_store_t *st)
{
    ngx_http_loom_batches_t  *bs;

    if (st->batches) {
        return st->batches;
    }

    bs = ngx_calloc(sizeof(ngx_http_loom_batches_t), ngx_cycle->log);
    if (bs == NULL) {
        return NULL;
    }

    bs->store = st;
    ngx_queue_init(&bs->refused);

    bs->event.handler = ngx_http_loom_batch_event;
    bs->event.data = bs;
    bs->event.log = ngx_cycle->log;

    st->batches = bs;
    st->flush = ngx_http_loom_batch_flush;
    st->drop = ngx_http_loom_batch_drop;

    return bs;
}


static ngx_http_loom_batch_t *
ngx_http_loom_batch_open(ngx_http_loom_batches_t *bs, ngx_uint_t script,
    int nkeys, int ncommon, int argc, const char **argv,
    const size_t *argvlen)
{
    int                     nargs;
    ngx_http_loom_batch_t  *b;

    nargs = nkeys + ncommon + NGX_HTTP_LOOM_BATCH_MAX
                                  * (argc - nkeys - ncommon);

    b = ngx_calloc(sizeof(ngx_http_loom_batch_t)
                   + 2 * nargs * sizeof(size_t), ngx_cycle->log);
    if (b == NULL) {
        return NULL;
    }

    b->call.handler = ngx_http_loom_batch_reply;
    b->call.ephemeral = 1;
    b->batches = bs;
    b->script = script;
    b->nkeys = nkeys;
    b->nfixed = nkeys + ncommon;
    b->nown = argc - nkeys - ncommon;
    b->offset = (size_t *) (b + 1);
    b->len = b->offset + nargs;

    if (ngx_http_loom_batch_copy(b, 0, b->nfixed, argv, argvlen) != NGX_OK)
    {
        ngx_http_loom_batch_free(b);
        return NULL;
    }

    return b;
}


/* the same script, keys and common arguments, and as many of its own */

static ngx_uint_t
ngx_http_loom_batch_same(ngx_http_loom_batch_t *b, ngx_uint_t script,
    int nkeys, int ncommon, int argc, const char **argv,
    const size_t *argvlen)
{
    int  i;

    if (b->script != script || b->nkeys != nkeys
        || b->nfixed != nkeys + ncommon || b->nown != argc - b->nfixed)
    {
        return 0;
    }

    for (i = 0; i < b->nfixed; i++) {
        if (b->len[i] != argvlen[i]
            || ngx_memcmp(b->buf + b->offset[i], argv[i], argvlen[i]) != 0)
        {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_loom_batch_copy(ngx_http_loom_batch_t *b, int from, int to,
    const char **argv, const size_t *argvlen)
{
    int      i;
    size_t   need, size;
    u_char  *buf;

    need = 0;

    for (i = from; i < to; i++) {
        need += argvlen[i];
    }

    if (b->used + need > b->size) {
        size = b->size ? b->size : NGX_HTTP_LOOM_BATCH_BUF;

        while (size < b->used + need) {
            size *= 2;
        }

        buf = ngx_alloc(size, ngx_cycle->log);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        if (b->buf) {
            ngx_memcpy(buf, b->buf, b->used);
            ngx_free(b->buf);
        }

        b->buf = buf;
        b->size = size;
    }

    for (i = from; i < to; i++) {
        b->offset[b->argc] = b->used;
        b->len[b->argc] = argvlen[i];
        b->argc++;

        ngx_memcpy(b->buf + b->used, argv[i], argvlen[i]);
        b->used += argvlen[i];
    }

    return NGX_OK;
}


/* before anything else goes to Redis */

static void
ngx_http_loom_batch_flush(ngx_http_loom_store_t *st)
{
    if (st->batches->open) {
        ngx_http_loom_batch_send(st->batches);
    }
}


static void
ngx_http_loom_batch_send(ngx_http_loom_batches_t *bs)
{
    int                     i;
    size_t                 *lens;
    ngx_int_t               rc;
    const char            **args, *reason;
    ngx_http_loom_batch_t  *b;

    b = bs->open;
    bs->open = NULL;

    args = ngx_alloc(b->argc * (sizeof(char *) + sizeof(size_t)),
                     ngx_cycle->log);

    if (args == NULL) {
        reason = "out of memory";
        rc = NGX_ERROR;

    } else {
        lens = (size_t *) (args + b->argc);

        for (i = 0; i < b->argc; i++) {
            args[i] = (char *) b->buf + b->offset[i];
            lens[i] = b->len[i];
        }

        rc = ngx_http_loom_store_script_send(bs->store, &b->call, b->script,
                                             b->nkeys, b->argc, args, lens,
                                             &reason);
        ngx_free(args);
    }

    /* the command is formatted (and kept for a resend) or refused */

    ngx_free(b->buf);
    b->buf = NULL;

    if (rc == NGX_OK) {
        return;
    }

    /*
     * Answered from the posted event, not from here: this may be deep in
     * another request's send
     */

    b->call.unsent = 1;
    ngx_cpystrn(b->text, (u_char *) reason, sizeof(b->text));
    ngx_queue_insert_tail(&bs->refused, &b->queue);

    if (!bs->event.posted) {
        ngx_post_event(&bs->event, &ngx_posted_events);
    }
}


static void
ngx_http_loom_batch_event(ngx_event_t *ev)
{
    ngx_http_loom_batches_t  *bs;

    bs = ev->data;

    if (bs->open) {
        ngx_http_loom_batch_send(bs);
    }

    ngx_http_loom_batch_refusals(bs);
}


static void
ngx_http_loom_batch_refusals(ngx_http_loom_batches_t *bs)
{
    redisReply              fail;
    ngx_queue_t            *q;
    ngx_http_loom_batch_t  *b;

    while (!ngx_queue_empty(&bs->refused)) {
        q = ngx_queue_head(&bs->refused);
        ngx_queue_remove(q);

        b = ngx_queue_data(q, ngx_http_loom_batch_t, queue);

        ngx_memzero(&fail, sizeof(redisReply));
        fail.type = REDIS_REPLY_ERROR;
        fail.str = (char *) b->text;
        fail.len = ngx_strlen(b->text);

        ngx_http_loom_batch_reply(&b->call, &fail);
    }
}


/* one element of the reply for each call, or the reply for all */

static void
ngx_http_loom_batch_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_uint_t                   i, each;
    redisReply                  *r;
    ngx_http_loom_batch_t       *b;
    ngx_http_loom_store_call_t  *c;

    b = (ngx_http_loom_batch_t *) call;

    each = (reply && !b->call.unsent && reply->type == REDIS_REPLY_ARRAY
            && reply->elements == b->n);

    for (i = 0; i < b->n; i++) {
        c = b->calls[i];
        r = each ? reply->element[i] : reply;

        c->unsent = b->call.unsent;

        c->handler(c, r);
    }

    ngx_http_loom_batch_free(b);
}


/* at exit: what is not sent gets what a lost link gives, NULL */

static void
ngx_http_loom_batch_drop(ngx_http_loom_store_t *st)
{
    ngx_http_loom_batch_t    *b;
    ngx_http_loom_batches_t  *bs;

    bs = st->batches;

    if (bs == NULL) {
        return;
    }

    /* detached first: a handler may ask the store for more */

    st->batches = NULL;

    if (bs->event.posted) {
        ngx_delete_posted_event(&bs->event);
    }

    b = bs->open;
    bs->open = NULL;

    ngx_http_loom_batch_refusals(bs);

    if (b) {
        ngx_http_loom_batch_reply(&b->call, NULL);
    }

    ngx_free(bs);
}


static void
ngx_http_loom_batch_free(ngx_http_loom_batch_t *b)
{
    if (b->buf) {
        ngx_free(b->buf);
    }

    ngx_free(b);
}
