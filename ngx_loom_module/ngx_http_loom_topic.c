/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_schema.h"


/*
 * The topic table, the schema cache, subscriptions and the requests that
 * wait in a topic.  What arrives from the subscriber link is handled in
 * ngx_http_loom_channel.c.
 */


static void ngx_http_loom_topic_free(ngx_http_loom_topic_t *t);
static void ngx_http_loom_topic_snapshot_idle(ngx_http_loom_snapshot_t *sn);
static void ngx_http_loom_topic_gap_init(ngx_http_loom_topic_t *t);
static void ngx_http_loom_topic_gap_deliver(ngx_http_loom_gap_t *g,
    ngx_http_loom_gap_item_t *item);
static void ngx_http_loom_topic_gap_resync(ngx_http_loom_gap_t *g,
    ngx_str_t *reason, ngx_str_t *value, uint64_t rev, uint64_t ts);
static void ngx_http_loom_topic_deliver(ngx_http_loom_topic_t *t,
    ngx_http_loom_gap_item_t *item);


/* what a topic holds while it repairs a gap, at most (bytes) */
#define NGX_HTTP_LOOM_TOPIC_MAX_HELD  (16 * 1024 * 1024)


void
ngx_http_loom_topic_init(ngx_http_loom_worker_t *w)
{
    ngx_rbtree_init(&w->topics, &w->topics_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&w->idle_topics);
    w->nidle = 0;
}


void
ngx_http_loom_topic_exit(ngx_http_loom_worker_t *w)
{
    ngx_rbtree_node_t  *node;

    if (w->resubscribe.timer_set) {
        ngx_del_timer(&w->resubscribe);
    }

    /* the sessions are gone by now: what is left is the schema cache */

    while (w->topics.root != w->topics.sentinel) {
        node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
        ngx_http_loom_topic_free((ngx_http_loom_topic_t *) node);
    }
}


ngx_http_loom_topic_t *
ngx_http_loom_topic_lookup(ngx_http_loom_worker_t *w, ngx_str_t *name)
{
    uint32_t  hash;

    hash = ngx_crc32_long(name->data, name->len);

    return (ngx_http_loom_topic_t *) ngx_str_rbtree_lookup(&w->topics, name,
                                                           hash);
}


ngx_http_loom_topic_t *
ngx_http_loom_topic_get(ngx_http_loom_worker_t *w, ngx_str_t *name)
{
    u_char                 *p;
    size_t                  len;
    ngx_str_t              *prefix;
    ngx_http_loom_topic_t  *t;

    t = ngx_http_loom_topic_lookup(w, name);

    if (t) {
        return t;
    }

    prefix = ngx_http_loom_store_prefix(w->store);

    /*
     * name, then the channel P{t:<name>}:msg, whose start is the key,
     * then the history stream P{t:<name>}:h
     */

    len = sizeof(ngx_http_loom_topic_t) + name->len
          + 2 * (prefix->len + name->len) + sizeof("{t:}:msg{t:}:h") - 1;

    t = ngx_alloc(len, w->log);
    if (t == NULL) {
        return NULL;
    }

    ngx_memzero(t, sizeof(ngx_http_loom_topic_t));

    t->worker = w;

    p = (u_char *) t + sizeof(ngx_http_loom_topic_t);

    t->sn.str.data = p;
    t->sn.str.len = name->len;
    p = ngx_cpymem(p, name->data, name->len);

    t->channel.data = p;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, "{t:", 3);
    p = ngx_cpymem(p, name->data, name->len);
    p = ngx_cpymem(p, "}:msg", 5);
    t->channel.len = p - t->channel.data;

    t->key.data = t->channel.data;
    t->key.len = t->channel.len - 4;

    t->stream.data = p;
    p = ngx_cpymem(p, t->key.data, t->key.len);
    p = ngx_cpymem(p, ":h", 2);
    t->stream.len = p - t->stream.data;

    ngx_http_loom_topic_gap_init(t);

    ngx_http_loom_snapshot_init(&t->snapshot, w->store, &t->key, w->log);
    t->snapshot.idle = ngx_http_loom_topic_snapshot_idle;
    t->snapshot.data = t;

    ngx_queue_init(&t->subscribers);
    ngx_queue_init(&t->waiting);
    ngx_queue_init(&t->held);

    t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;
    t->sn.node.key = ngx_crc32_long(name->data, name->len);

    ngx_rbtree_insert(&w->topics, &t->sn.node);

    return t;
}


/* the topic's revisions, in order (ngx_http_loom_gap.c), to its subscribers */

static void
ngx_http_loom_topic_gap_init(ngx_http_loom_topic_t *t)
{
    ngx_http_loom_gap_t        *g;
    ngx_http_loom_main_conf_t  *lmcf;

    g = &t->gap;
    lmcf = t->worker->conf;

    g->store = t->worker->store;
    g->log = t->worker->log;
    g->key = t->key;
    g->stream = t->stream;
    g->channel = t->channel;
    g->page = lmcf->history_page;
    g->history = lmcf->history;
    g->max_age = (ngx_uint_t) lmcf->history_max_age;
    g->max_held = NGX_HTTP_LOOM_TOPIC_MAX_HELD;
    g->deliver = ngx_http_loom_topic_gap_deliver;
    g->resync = ngx_http_loom_topic_gap_resync;
    g->data = t;
    g->memory = 0;

    ngx_http_loom_gap_init(g);
}


static void
ngx_http_loom_topic_gap_deliver(ngx_http_loom_gap_t *g,
    ngx_http_loom_gap_item_t *item)
{
    ngx_http_loom_topic_deliver(g->data, item);
}


static void
ngx_http_loom_topic_gap_resync(ngx_http_loom_gap_t *g, ngx_str_t *reason,
    ngx_str_t *value, uint64_t rev, uint64_t ts)
{
    ngx_str_t  epoch;

    epoch.data = g->epoch;
    epoch.len = g->epoch_len;

    ngx_http_loom_fanout_resync(g->data, NULL, reason, value, rev, ts,
                                &epoch);
}


static void
ngx_http_loom_topic_deliver(ngx_http_loom_topic_t *t,
    ngx_http_loom_gap_item_t *item)
{
    uint64_t      seq;
    ngx_uint_t    n;
    ngx_queue_t   released;

    /* framed once per kind, the same frame queued to each subscriber */

    n = (t->nsubscribers && !item->dup)
        ? ngx_http_loom_fanout_deliver(t, item) : 0;

    if (t->worker->stats) {
        t->worker->stats->deliveries += n;
    }

    /* a revision read from history has no seq: no ack waits for it */

    seq = item->seq;

    if (seq == 0) {
        return;
    }

    ngx_queue_init(&released);

    if (seq < t->seq) {
        /*
         * The count started again: Redis lost the topic and it was
         * registered anew.  The deliveries held acks wait for are gone,
         * and which registration counts now is not known here: the next
         * publish answered here tells.
         */
        ngx_http_loom_topic_release_held(t, (uint64_t) -1, &released);
        t->seq_registration_len = 0;
    }

    t->seq = seq;

    ngx_http_loom_topic_release_held(t, t->seq, &released);
    ngx_http_loom_topic_answer(&released, NULL);
}


void
ngx_http_loom_topic_check(ngx_http_loom_topic_t *t)
{
    ngx_http_loom_topic_keep(t, 1);
}


/*
 * Keeps the topic, caches it or frees it; a walk of the topic tree keeps
 * the cache from evicting (it could evict the next node of the walk) and
 * evicts once it is done.
 */

void
ngx_http_loom_topic_keep(ngx_http_loom_topic_t *t, ngx_uint_t evict)
{
    ngx_http_loom_worker_t  *w;

    w = t->worker;

    if (t->nsubscribers
        || !ngx_queue_empty(&t->waiting)
        || !ngx_queue_empty(&t->held)
        || t->channel_state != NGX_HTTP_LOOM_CHANNEL_OFF
        || !ngx_http_loom_gap_idle(&t->gap)
        || ngx_http_loom_snapshot_busy(&t->snapshot))
    {
        if (t->idle_linked) {
            ngx_queue_remove(&t->idle);
            t->idle_linked = 0;
            w->nidle--;
        }

        return;
    }

    if (!ngx_http_loom_topic_has_schema(t)) {
        ngx_http_loom_topic_free(t);
        return;
    }

    /* a cached schema: most recently used last */

    if (t->idle_linked) {
        ngx_queue_remove(&t->idle);

    } else {
        t->idle_linked = 1;
        w->nidle++;
    }

    ngx_queue_insert_tail(&w->idle_topics, &t->idle);

    if (evict) {
        ngx_http_loom_topic_evict(w);
    }
}


void
ngx_http_loom_topic_evict(ngx_http_loom_worker_t *w)
{
    ngx_queue_t  *q;

    while (w->nidle > w->conf->topic_cache) {
        q = ngx_queue_head(&w->idle_topics);
        ngx_http_loom_topic_free(ngx_queue_data(q, ngx_http_loom_topic_t,
                                                idle));
    }
}


static void
ngx_http_loom_topic_free(ngx_http_loom_topic_t *t)
{
    ngx_http_loom_worker_t  *w;

    w = t->worker;

    if (t->idle_linked) {
        ngx_queue_remove(&t->idle);
        w->nidle--;
    }

    ngx_http_loom_topic_drop_schema(t);
    ngx_http_loom_gap_free(&t->gap);
    ngx_http_loom_snapshot_free(&t->snapshot);

    ngx_rbtree_delete(&w->topics, &t->sn.node);

    ngx_free(t);
}


static void
ngx_http_loom_topic_snapshot_idle(ngx_http_loom_snapshot_t *sn)
{
    ngx_http_loom_topic_check(sn->data);
}


void
ngx_http_loom_subscriber_init(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_out_t *out, ngx_log_t *log)
{
    ngx_queue_init(&sr->subscriptions);
    sr->nsubscriptions = 0;
    sr->out = out;
    sr->log = log;
    sr->v2 = 0;
}


ngx_http_loom_sub_t *
ngx_http_loom_topic_find(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_topic_t *t)
{
    ngx_queue_t          *q;
    ngx_http_loom_sub_t  *sub;

    /* walk the shorter list */

    if (sr->nsubscriptions <= t->nsubscribers) {

        for (q = ngx_queue_head(&sr->subscriptions);
             q != ngx_queue_sentinel(&sr->subscriptions);
             q = ngx_queue_next(q))
        {
            sub = ngx_queue_data(q, ngx_http_loom_sub_t, subscriber_link);

            if (sub->topic == t) {
                return sub;
            }
        }

        return NULL;
    }

    for (q = ngx_queue_head(&t->subscribers);
         q != ngx_queue_sentinel(&t->subscribers);
         q = ngx_queue_next(q))
    {
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, topic_link);

        if (sub->subscriber == sr) {
            return sub;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_loom_topic_subscribe(ngx_http_loom_topic_t *t,
    ngx_http_loom_subscriber_t *sr, ngx_http_loom_waiter_t *wt,
    ngx_str_t *registration)
{
    ngx_http_loom_sub_t     *sub;
    ngx_http_loom_worker_t  *w;

    w = t->worker;

    if (t->channel_state == NGX_HTTP_LOOM_CHANNEL_OFF) {

        if (ngx_http_loom_store_subscribe(w->store, &t->channel) != NGX_OK) {
            ngx_http_loom_topic_check(t);
            return NGX_DECLINED;
        }

        t->channel_state = NGX_HTTP_LOOM_CHANNEL_PENDING;
    }

    sub = ngx_alloc(sizeof(ngx_http_loom_sub_t), sr->log);
    if (sub == NULL) {
        ngx_http_loom_topic_check(t);
        return NGX_ERROR;
    }

    sub->topic = t;
    sub->subscriber = sr;
    sub->after = 0;
    sub->buffered = 0;
    sub->replay = NULL;
    sub->buffering = 0;
    ngx_http_loom_topic_registration(sub, registration);

    ngx_queue_insert_tail(&t->subscribers, &sub->topic_link);
    ngx_queue_insert_tail(&sr->subscriptions, &sub->subscriber_link);
    t->nsubscribers++;
    sr->nsubscriptions++;

    ngx_http_loom_shm_subscribers(w->shm, &t->sn.str, 1, sr->log);

    /* what Redis said just now is the registration deliveries count in */
    ngx_http_loom_topic_seq_registration(t, registration);

    ngx_http_loom_topic_check(t);

    if (t->channel_state == NGX_HTTP_LOOM_CHANNEL_ON) {
        return NGX_OK;
    }

    /* answered when Redis confirms the channel */

    wt->topic = t;
    ngx_queue_insert_tail(&t->waiting, &wt->link);

    return NGX_AGAIN;
}


void
ngx_http_loom_topic_registration(ngx_http_loom_sub_t *sub,
    ngx_str_t *registration)
{
    sub->registration_len = ngx_min(registration->len, NGX_HTTP_LOOM_ID_LEN);
    ngx_memcpy(sub->registration, registration->data, sub->registration_len);
}


void
ngx_http_loom_topic_tag_registration(ngx_str_t *tag, ngx_str_t *registration)
{
    u_char  *colon;

    colon = ngx_strlchr(tag->data, tag->data + tag->len, ':');

    registration->data = tag->data;
    registration->len = ngx_min((size_t) ((colon ? colon : tag->data
                                                           + tag->len)
                                          - tag->data),
                                NGX_HTTP_LOOM_ID_LEN);
}


/*
 * Sequence numbers count per registration: a topic registered anew (or
 * lost by Redis and registered again) starts from 0.
 */

void
ngx_http_loom_topic_seq_registration(ngx_http_loom_topic_t *t,
    ngx_str_t *registration)
{
    size_t  len;

    len = ngx_min(registration->len, NGX_HTTP_LOOM_ID_LEN);

    if (len == 0) {
        return;
    }

    if (t->seq_registration_len == len
        && ngx_memcmp(t->seq_registration, registration->data, len) == 0)
    {
        return;
    }

    if (t->seq_registration_len) {
        t->seq = 0;
    }

    ngx_memcpy(t->seq_registration, registration->data, len);
    t->seq_registration_len = len;
}


void
ngx_http_loom_topic_remove(ngx_http_loom_sub_t *sub)
{
    ngx_http_loom_topic_t       *t;
    ngx_http_loom_subscriber_t  *sr;

    t = sub->topic;
    sr = sub->subscriber;

    ngx_queue_remove(&sub->topic_link);
    ngx_queue_remove(&sub->subscriber_link);
    t->nsubscribers--;
    sr->nsubscriptions--;

    if (sub->replay) {
        sub->replay->sub = NULL;
    }

    ngx_http_loom_fanout_unbuffer(sub);

    ngx_http_loom_shm_subscribers(t->worker->shm, &t->sn.str, -1, sr->log);

    ngx_free(sub);
}


/* the last local subscriber is gone: stop listening to the channel */

void
ngx_http_loom_topic_unused(ngx_http_loom_topic_t *t, ngx_queue_t *released)
{
    if (t->nsubscribers) {
        return;
    }

    /* nobody here follows the revisions any more */
    ngx_http_loom_gap_forget(&t->gap);

    if (t->channel_state == NGX_HTTP_LOOM_CHANNEL_ON) {
        ngx_http_loom_store_unsubscribe(t->worker->store, &t->channel);
        t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;
    }

    /* the deliveries that held acks wait for will not come here now */
    ngx_http_loom_topic_release_held(t, (uint64_t) -1, released);
}


void
ngx_http_loom_topic_unsubscribe(ngx_http_loom_sub_t *sub)
{
    ngx_queue_t             released;
    ngx_http_loom_topic_t  *t;

    t = sub->topic;

    ngx_queue_init(&released);

    ngx_http_loom_topic_remove(sub);
    ngx_http_loom_topic_unused(t, &released);
    ngx_http_loom_topic_check(t);

    ngx_http_loom_topic_answer(&released, NULL);
}


void
ngx_http_loom_topic_unsubscribe_all(ngx_http_loom_subscriber_t *sr)
{
    ngx_queue_t          *q;
    ngx_http_loom_sub_t  *sub;

    while (!ngx_queue_empty(&sr->subscriptions)) {
        q = ngx_queue_head(&sr->subscriptions);
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, subscriber_link);

        ngx_http_loom_topic_unsubscribe(sub);
    }
}


ngx_uint_t
ngx_http_loom_topic_hold(ngx_http_loom_topic_t *t,
    ngx_http_loom_subscriber_t *sr, ngx_http_loom_waiter_t *wt, uint64_t seq,
    ngx_str_t *registration)
{
    if (t->channel_state != NGX_HTTP_LOOM_CHANNEL_ON) {
        return 0;
    }

    /* a seq of another registration than the one counted so far */
    ngx_http_loom_topic_seq_registration(t, registration);

    if (t->seq >= seq || ngx_http_loom_topic_find(sr, t) == NULL) {
        return 0;
    }

    wt->seq = seq;
    wt->topic = t;
    ngx_queue_insert_tail(&t->held, &wt->link);

    return 1;
}


void
ngx_http_loom_topic_cancel(ngx_http_loom_waiter_t *wt)
{
    ngx_http_loom_topic_t  *t;

    t = wt->topic;

    if (t == NULL) {
        return;
    }

    ngx_queue_remove(&wt->link);
    wt->topic = NULL;

    ngx_http_loom_topic_check(t);
}


ngx_int_t
ngx_http_loom_topic_set_schema(ngx_http_loom_topic_t *t, ngx_str_t *tag,
    json_t *schema, ngx_http_loom_jschema_t *js)
{
    u_char  *p;

    ngx_http_loom_topic_drop_schema(t);

    p = ngx_alloc(tag->len, t->worker->log);
    if (p == NULL) {
        if (js) {
            ngx_http_loom_jschema_free(js);
        }

        return NGX_ERROR;
    }

    ngx_memcpy(p, tag->data, tag->len);
    t->tag.data = p;
    t->tag.len = tag->len;
    t->schema = schema ? json_incref(schema) : NULL;
    t->jschema = js;

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_topic_match(ngx_http_loom_topic_t *t, json_t *data)
{
    if (t->jschema) {
        return ngx_http_loom_jschema_validate(t->jschema, data, NULL);
    }

    if (t->schema) {
        return ngx_http_loom_schema_match(t->schema, data);
    }

    return NGX_DECLINED;
}


void
ngx_http_loom_topic_drop_schema(ngx_http_loom_topic_t *t)
{
    if (t->schema) {
        json_decref(t->schema);
        t->schema = NULL;
    }

    if (t->jschema) {
        ngx_http_loom_jschema_free(t->jschema);
        t->jschema = NULL;
    }

    if (t->tag.data) {
        ngx_free(t->tag.data);
        t->tag.data = NULL;
        t->tag.len = 0;
    }
}


void
ngx_http_loom_topic_release_held(ngx_http_loom_topic_t *t, uint64_t seq,
    ngx_queue_t *released)
{
    ngx_queue_t             *q;
    ngx_http_loom_waiter_t  *wt;

    while (!ngx_queue_empty(&t->held)) {
        q = ngx_queue_head(&t->held);
        wt = ngx_queue_data(q, ngx_http_loom_waiter_t, link);

        if (wt->seq > seq) {
            break;
        }

        ngx_queue_remove(q);
        wt->topic = NULL;
        ngx_queue_insert_tail(released, q);
    }
}


/*
 * Waiters leave the topic's queues before their handlers run: a handler
 * may change or free the topic.
 */

void
ngx_http_loom_topic_answer(ngx_queue_t *released, ngx_queue_t *failed)
{
    ngx_queue_t             *q;
    ngx_http_loom_waiter_t  *wt;

    while (!ngx_queue_empty(released)) {
        q = ngx_queue_head(released);
        ngx_queue_remove(q);
        wt = ngx_queue_data(q, ngx_http_loom_waiter_t, link);

        wt->handler(wt, NGX_OK);
    }

    if (failed == NULL) {
        return;
    }

    while (!ngx_queue_empty(failed)) {
        q = ngx_queue_head(failed);
        ngx_queue_remove(q);
        wt = ngx_queue_data(q, ngx_http_loom_waiter_t, link);

        wt->handler(wt, NGX_ERROR);
    }
}


void
ngx_http_loom_topic_invalidate(ngx_http_loom_worker_t *w, ngx_str_t *name)
{
    ngx_http_loom_topic_t  *t;

    t = ngx_http_loom_topic_lookup(w, name);

    if (t == NULL) {
        return;
    }

    ngx_http_loom_topic_drop_schema(t);
    ngx_http_loom_topic_check(t);
}
