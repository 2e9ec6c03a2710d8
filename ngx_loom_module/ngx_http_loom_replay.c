/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_resume.h"
#include "ngx_http_loom_history_entry.h"


/*
 * The replay of a resume that recovered (docs/architecture.md, "Catching
 * up"): the revisions after the client's, read from the topic's history
 * stream in pages of loom_history_page, written to the client in order,
 * then the subscription's buffer above them.
 *
 * A page is a plain XRANGE of the stream followed, on the same link, by
 * HMGET of the topic's tag and epoch.  Its frames are built when the
 * XRANGE answers and written only when the HMGET says the epoch is still
 * the one the resume was answered with: an epoch never comes back once
 * changed, so the entries read before that HMGET were of this epoch.  A
 * script would check the same atomically, but Redis would turn every
 * entry into Lua values and back, several times the cost of the read.
 *
 * Two pages are in flight: while one page's frames are built and
 * written, Redis reads the next.  A page asks for the entries after the
 * revision where the one before it ends; a page that does not begin
 * where the writing stands (after a page short of entries) is dropped
 * and asked for again once nothing else is in flight.  The second page
 * waits while the connection's output holds more than a quarter of
 * loom_max_send_queue.
 */


#define NGX_HTTP_LOOM_REPLAY_PAGES  2


typedef struct {
    ngx_http_loom_store_call_t    range;           /* XRANGE */
    ngx_http_loom_store_call_t    check;           /* HMGET tag epoch */
    ngx_http_loom_replay_t       *replay;
    uint64_t                      after;           /* asked for: > after */
    ngx_http_loom_frame_t       **frames;          /* history_page */
    ngx_uint_t                    nframes;
    ngx_uint_t                    calls;           /* of the two, out */
    unsigned                      broken:1;        /* cannot go on */
    unsigned                      unchecked:1;     /* HMGET not sent */
} ngx_http_loom_replay_page_t;


struct ngx_http_loom_replay_s {
    ngx_http_loom_store_call_t    call;            /* first: the snapshot */
    ngx_http_loom_sub_ref_t       ref;             /* sub NULL: it went */
    ngx_http_loom_worker_t       *worker;
    ngx_http_loom_replay_page_t   page[NGX_HTTP_LOOM_REPLAY_PAGES];
    ngx_uint_t                    calls;           /* store calls out */
    uint64_t                      next;            /* to send */
    uint64_t                      asked;           /* the pages reach it */
    uint64_t                      top;             /* the answer's rev */
    ngx_uint_t                    page_size;       /* revisions a page */
    ngx_str_t                     key;
    ngx_str_t                     stream;
    ngx_str_t                     epoch;
    unsigned                      ended:1;         /* a snapshot is read */
    u_char                        data[1];
};


#define ngx_http_loom_replay_page_of(c, field)                               \
    ((ngx_http_loom_replay_page_t *)                                         \
         ((u_char *) (c) - offsetof(ngx_http_loom_replay_page_t, field)))


static ngx_int_t ngx_http_loom_replay_ask(ngx_http_loom_replay_t *rp,
    ngx_uint_t force);
static void ngx_http_loom_replay_range(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_replay_check(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_replay_checked(ngx_http_loom_replay_page_t *pg,
    ngx_uint_t ok);
static ngx_uint_t ngx_http_loom_replay_same(ngx_http_loom_replay_t *rp,
    redisReply *reply);
static void ngx_http_loom_replay_drop(ngx_http_loom_replay_page_t *pg);
static void ngx_http_loom_replay_end(ngx_http_loom_replay_t *rp,
    ngx_uint_t whole);
static void ngx_http_loom_replay_snapshot(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_replay_free(ngx_http_loom_replay_t *rp);


/* the revisions after since up to top, of epoch, to sub; then live */

ngx_int_t
ngx_http_loom_replay_start(ngx_http_loom_sub_t *sub, ngx_str_t *key,
    ngx_str_t *epoch, uint64_t since, uint64_t top)
{
    size_t                   size, page;
    u_char                  *p;
    ngx_uint_t               i;
    ngx_http_loom_worker_t  *w;
    ngx_http_loom_replay_t  *rp;

    w = sub->topic->worker;
    page = w->conf->history_page ? w->conf->history_page : 1;

    size = sizeof(ngx_http_loom_replay_t) + 2 * (key->len + 2) + epoch->len
           + NGX_HTTP_LOOM_REPLAY_PAGES * page
             * sizeof(ngx_http_loom_frame_t *)
           + NGX_ALIGNMENT;

    rp = ngx_alloc(size, sub->subscriber->log);
    if (rp == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(rp, sizeof(ngx_http_loom_replay_t));

    rp->ref.sub = sub;
    rp->worker = w;
    rp->next = since + 1;
    rp->asked = since;
    rp->top = top;
    rp->page_size = page;

    p = rp->data;

    rp->key.data = p;
    rp->key.len = key->len;
    p = ngx_cpymem(p, key->data, key->len);

    rp->stream.data = p;
    rp->stream.len = key->len + 2;
    p = ngx_cpymem(p, key->data, key->len);
    p = ngx_cpymem(p, ":h", 2);

    rp->epoch.data = p;
    rp->epoch.len = epoch->len;
    p = ngx_cpymem(p, epoch->data, epoch->len);

    p = ngx_align_ptr(p, NGX_ALIGNMENT);

    for (i = 0; i < NGX_HTTP_LOOM_REPLAY_PAGES; i++) {
        rp->page[i].replay = rp;
        rp->page[i].frames = (ngx_http_loom_frame_t **) p;
        p += page * sizeof(ngx_http_loom_frame_t *);
    }

    sub->replay = &rp->ref;

    /* the first page, and the next one behind it */

    if (ngx_http_loom_replay_ask(rp, 1) != NGX_OK) {
        ngx_http_loom_replay_end(rp, 0);
        return NGX_OK;
    }

    (void) ngx_http_loom_replay_ask(rp, 0);

    return NGX_OK;
}


/*
 * Asks for the page after the last one asked for, if a page is free, the
 * pages asked for do not reach the top yet, and (unless forced) the
 * output has room.  NGX_DECLINED: nothing asked for now.
 */

static ngx_int_t
ngx_http_loom_replay_ask(ngx_http_loom_replay_t *rp, ngx_uint_t force)
{
    u_char                        from[NGX_INT64_LEN + 2];
    u_char                        to[NGX_INT64_LEN];
    u_char                        count[NGX_INT64_LEN];
    size_t                        argvlen[6];
    ngx_uint_t                    i;
    const char                   *argv[6], *reason;
    ngx_http_loom_out_t          *out;
    ngx_http_loom_replay_page_t  *pg;

    if (rp->asked >= rp->top) {
        return NGX_DECLINED;
    }

    pg = NULL;

    for (i = 0; i < NGX_HTTP_LOOM_REPLAY_PAGES; i++) {
        if (rp->page[i].calls == 0 && rp->page[i].nframes == 0) {
            pg = &rp->page[i];
            break;
        }
    }

    if (pg == NULL) {
        return NGX_DECLINED;
    }

    out = rp->ref.sub->subscriber->out;

    if (!force && out->bytes > out->limit / 4) {
        /* the client is behind: the next page when this one is written */
        return NGX_DECLINED;
    }

    pg->after = rp->asked;
    pg->broken = 0;
    pg->unchecked = 0;

    /*
     * XRANGE <stream> <after + 1>-0 <after + page + group max - 1> COUNT
     * <page>: the entries that hold the page's revisions, and no more
     * than a group's worth of those after it (an entry's id is its last
     * revision)
     */

    argv[0] = "XRANGE";
    argvlen[0] = 6;
    argv[1] = (char *) rp->stream.data;
    argvlen[1] = rp->stream.len;
    argv[2] = (char *) from;
    argvlen[2] = ngx_sprintf(from, "%uL-0", pg->after + 1) - from;
    argv[3] = (char *) to;
    argvlen[3] = ngx_sprintf(to, "%uL",
                             pg->after + rp->page_size
                             + NGX_HTTP_LOOM_GROUP_MAX - 1)
                 - to;
    argv[4] = "COUNT";
    argvlen[4] = 5;
    argv[5] = (char *) count;
    argvlen[5] = ngx_sprintf(count, "%ui", rp->page_size) - count;

    ngx_memzero(&pg->range, sizeof(ngx_http_loom_store_call_t));
    pg->range.handler = ngx_http_loom_replay_range;

    if (ngx_http_loom_store_command(rp->worker->store, &pg->range, 6, argv,
                                    argvlen, &reason)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, rp->ref.sub->subscriber->log, 0,
                      "loom: history of \"%V\" not read: %s", &rp->key,
                      reason);
        return NGX_ERROR;
    }

    pg->calls++;
    rp->calls++;
    rp->asked = pg->after + rp->page_size;

    /* HMGET <hash> tag epoch: right behind it, on the same link */

    argv[0] = "HMGET";
    argvlen[0] = 5;
    argv[1] = (char *) rp->key.data;
    argvlen[1] = rp->key.len;
    argv[2] = "tag";
    argvlen[2] = 3;
    argv[3] = "epoch";
    argvlen[3] = 5;

    ngx_memzero(&pg->check, sizeof(ngx_http_loom_store_call_t));
    pg->check.handler = ngx_http_loom_replay_check;

    if (ngx_http_loom_store_command(rp->worker->store, &pg->check, 4, argv,
                                    argvlen, &reason)
        != NGX_OK)
    {
        /* the page cannot be trusted: the replay ends when it comes */
        pg->unchecked = 1;
        return NGX_OK;
    }

    pg->calls++;
    rp->calls++;

    return NGX_OK;
}


/*
 * an XRANGE answer: entries of one message and of groups
 * (ngx_http_loom_history_entry.h)
 */

static void
ngx_http_loom_replay_range(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    uint64_t                         rev;
    ngx_int_t                        rc;
    ngx_str_t                        data, sender;
    ngx_uint_t                       kind;
    ngx_http_loom_frame_t           *f;
    ngx_http_loom_gap_item_t         item;
    ngx_http_loom_history_iter_t     it;
    ngx_http_loom_history_fields_t   hf;
    ngx_http_loom_replay_t          *rp;
    ngx_http_loom_subscriber_t      *sr;
    ngx_http_loom_replay_page_t     *pg;

    pg = ngx_http_loom_replay_page_of(call, range);
    rp = pg->replay;

    pg->calls--;
    rp->calls--;

    if (rp->ref.sub == NULL || rp->ended) {
        ngx_http_loom_replay_free(rp);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0)
    {
        /* the history ends before the top: trimmed, or the link went */
        pg->broken = 1;
        goto done;
    }

    sr = rp->ref.sub->subscriber;
    rev = pg->after + 1;
    ngx_memzero(&it, sizeof(ngx_http_loom_history_iter_t));
    it.entries = reply;

    while (rev <= rp->top && pg->nframes < rp->page_size) {

        rc = ngx_http_loom_history_next(&it, &hf);

        if (rc == NGX_DONE) {
            break;
        }

        if (rc == NGX_OK && hf.rev < rev) {
            /* a group's revisions before the page */
            continue;
        }

        if (rc != NGX_OK || hf.rev != rev
            || ngx_http_loom_history_parts(&hf, &data, &sender, &item.ts)
               != NGX_OK)
        {
            /* trimmed meanwhile: the rest cannot come from history */
            pg->broken = 1;
            break;
        }

        item.rev = rev++;
        item.delivery = hf.delivery;
        item.seq = 0;

        kind = ngx_http_loom_fanout_kind(sr, &item);

        f = ngx_http_loom_fanout_frame(&item, kind, &rp->epoch, sr->log);
        if (f == NULL) {
            pg->broken = 1;
            break;
        }

        pg->frames[pg->nframes++] = f;
    }

done:

    if (pg->unchecked) {
        ngx_http_loom_replay_checked(pg, 0);
    }
}


static void
ngx_http_loom_replay_check(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_http_loom_replay_t       *rp;
    ngx_http_loom_replay_page_t  *pg;

    pg = ngx_http_loom_replay_page_of(call, check);
    rp = pg->replay;

    pg->calls--;
    rp->calls--;

    if (rp->ref.sub == NULL || rp->ended) {
        ngx_http_loom_replay_drop(pg);
        ngx_http_loom_replay_free(rp);
        return;
    }

    ngx_http_loom_replay_checked(pg, ngx_http_loom_replay_same(rp, reply));
}


/* the page's entries were of the epoch (ok): they go out in their turn */

static void
ngx_http_loom_replay_checked(ngx_http_loom_replay_page_t *pg, ngx_uint_t ok)
{
    ngx_uint_t               i, busy;
    ngx_http_loom_out_t     *out;
    ngx_http_loom_replay_t  *rp;

    rp = pg->replay;

    if (!ok) {
        /* the topic went or has another epoch now */
        ngx_http_loom_replay_drop(pg);
        ngx_http_loom_replay_end(rp, 0);
        return;
    }

    if (pg->after + 1 != rp->next) {
        /* after a page short of entries: asked for again below */
        ngx_http_loom_replay_drop(pg);
        goto next;
    }

    out = rp->ref.sub->subscriber->out;

    for (i = 0; i < pg->nframes; i++) {
        if (ngx_http_loom_out_send(out, pg->frames[i]) != NGX_OK) {
            /* over the connection's limit: it is being closed */
            break;
        }

        ngx_http_loom_frame_release(pg->frames[i]);
        pg->frames[i] = NULL;
        rp->next++;
    }

    if (i < pg->nframes) {
        ngx_http_loom_replay_drop(pg);
        ngx_http_loom_replay_end(rp, 0);
        return;
    }

    pg->nframes = 0;

    if (rp->next > rp->top) {
        ngx_http_loom_replay_end(rp, 1);
        return;
    }

    if (pg->broken) {
        ngx_http_loom_replay_end(rp, 0);
        return;
    }

next:

    for (busy = 0, i = 0; i < NGX_HTTP_LOOM_REPLAY_PAGES; i++) {
        busy += rp->page[i].calls;
    }

    if (busy) {
        (void) ngx_http_loom_replay_ask(rp, 0);
        return;
    }

    /* nothing in flight: on from where the writing stands */

    rp->asked = rp->next - 1;

    if (ngx_http_loom_replay_ask(rp, 1) != NGX_OK) {
        ngx_http_loom_replay_end(rp, 0);
    }
}


/* {tag, epoch}: the epoch of a topic without one is its registration */

static ngx_uint_t
ngx_http_loom_replay_same(ngx_http_loom_replay_t *rp, redisReply *reply)
{
    ngx_str_t    tag, registration;
    redisReply  *epoch;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return 0;
    }

    epoch = reply->element[1];

    if (epoch->type == REDIS_REPLY_STRING) {
        return (size_t) epoch->len == rp->epoch.len
               && ngx_memcmp(epoch->str, rp->epoch.data, rp->epoch.len) == 0;
    }

    tag.data = (u_char *) reply->element[0]->str;
    tag.len = reply->element[0]->len;
    ngx_http_loom_topic_tag_registration(&tag, &registration);

    return registration.len == rp->epoch.len
           && ngx_memcmp(registration.data, rp->epoch.data, rp->epoch.len)
              == 0;
}


static void
ngx_http_loom_replay_drop(ngx_http_loom_replay_page_t *pg)
{
    ngx_uint_t  i;

    for (i = 0; i < pg->nframes; i++) {
        if (pg->frames[i]) {
            ngx_http_loom_frame_release(pg->frames[i]);
        }
    }

    pg->nframes = 0;
}


/*
 * The replay is through (whole), and the subscription goes live above it;
 * or it cannot go on (trimmed meanwhile, another epoch, the link went
 * down): then a snapshot is read for a resync event to this subscriber,
 * which goes live above the snapshot.  Pages still in flight are dropped
 * when they come.
 */

static void
ngx_http_loom_replay_end(ngx_http_loom_replay_t *rp, ngx_uint_t whole)
{
    size_t                argvlen[1];
    ngx_uint_t            i;
    const char           *argv[1], *reason;
    ngx_http_loom_sub_t  *sub;

    sub = rp->ref.sub;
    rp->ended = 1;

    for (i = 0; i < NGX_HTTP_LOOM_REPLAY_PAGES; i++) {
        ngx_http_loom_replay_drop(&rp->page[i]);
    }

    if (!whole) {
        ngx_log_error(NGX_LOG_INFO, sub->subscriber->log, 0,
                      "loom: replay of \"%V\" stopped at revision %uL of "
                      "%uL", &rp->key, rp->next - 1, rp->top);

        ngx_memzero(&rp->call, sizeof(ngx_http_loom_store_call_t));
        rp->call.handler = ngx_http_loom_replay_snapshot;
        argv[0] = (char *) rp->key.data;
        argvlen[0] = rp->key.len;

        if (ngx_http_loom_store_script(rp->worker->store, &rp->call,
                                       NGX_HTTP_LOOM_SCRIPT_SNAPSHOT, 1, 1,
                                       argv, argvlen, &reason)
            == NGX_OK)
        {
            rp->calls++;
            return;
        }

        /* no Redis: the topic's own check after the link is back tells */
    }

    sub->replay = NULL;
    sub->after = rp->next - 1;
    (void) ngx_http_loom_fanout_apply(sub, rp->next - 1);

    rp->ref.sub = NULL;
    ngx_http_loom_replay_free(rp);
}


/* {rev, epoch, ts, value or nil} for the resync event */

static void
ngx_http_loom_replay_snapshot(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    uint64_t                 rev, ts;
    ngx_str_t                value, epoch, reason;
    ngx_http_loom_sub_t     *sub;
    ngx_http_loom_replay_t  *rp;

    rp = (ngx_http_loom_replay_t *) call;
    sub = rp->ref.sub;

    rp->calls--;

    if (sub == NULL) {
        ngx_http_loom_replay_free(rp);
        return;
    }

    sub->replay = NULL;
    rev = rp->next - 1;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[0]->integer >= 0
        && reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[2]->type == REDIS_REPLY_INTEGER
        && reply->element[2]->integer >= 0)
    {
        rev = (uint64_t) reply->element[0]->integer;
        ts = (uint64_t) reply->element[2]->integer;
        epoch.data = (u_char *) reply->element[1]->str;
        epoch.len = reply->element[1]->len;
        ngx_str_null(&value);

        if (reply->element[3]->type == REDIS_REPLY_STRING) {
            value.data = (u_char *) reply->element[3]->str;
            value.len = reply->element[3]->len;
        }

        /* out ahead of the buffer, which goes on above rev */
        ngx_str_set(&reason, "gap");
        ngx_http_loom_fanout_resync(sub->topic, sub, &reason, &value, rev,
                                    ts, &epoch);
    }

    sub->after = rev;
    (void) ngx_http_loom_fanout_apply(sub, rev);

    rp->ref.sub = NULL;
    ngx_http_loom_replay_free(rp);
}


/* once no store call refers to it */

static void
ngx_http_loom_replay_free(ngx_http_loom_replay_t *rp)
{
    if (rp->calls == 0) {
        ngx_free(rp);
    }
}


/* the data and senderId of a history entry, from where it says they are */

ngx_int_t
ngx_http_loom_history_entry(redisReply *e, ngx_str_t *data,
    ngx_str_t *sender, uint64_t *rev, uint64_t *ts)
{
    ngx_http_loom_history_fields_t  hf;

    if (ngx_http_loom_history_fields(e, &hf) != NGX_OK) {
        return NGX_ERROR;
    }

    *rev = hf.rev;

    return ngx_http_loom_history_parts(&hf, data, sender, ts);
}


ngx_int_t
ngx_http_loom_history_parts(ngx_http_loom_history_fields_t *hf,
    ngx_str_t *data, ngx_str_t *sender, uint64_t *ts)
{
    off_t  n, o, l;

    if (hf->offset.data == NULL || hf->length.data == NULL) {
        return NGX_ERROR;
    }

    o = ngx_atoof(hf->offset.data, hf->offset.len);
    l = ngx_atoof(hf->length.data, hf->length.len);

    if (o == NGX_ERROR || l == NGX_ERROR) {
        return NGX_ERROR;
    }

    n = hf->ts.data ? ngx_atoof(hf->ts.data, hf->ts.len) : NGX_ERROR;

    *ts = (n == NGX_ERROR) ? 0 : (uint64_t) n;

    return ngx_http_loom_rev_entry_parts(&hf->delivery, (size_t) o,
                                         (size_t) l, data, sender);
}
