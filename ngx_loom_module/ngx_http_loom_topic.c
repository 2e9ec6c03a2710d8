/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_shm.h"


static void ngx_http_loom_topic_free(ngx_http_loom_topic_t *t);
static void ngx_http_loom_topic_remove(ngx_http_loom_sub_t *sub);
static void ngx_http_loom_topic_unused(ngx_http_loom_topic_t *t,
    ngx_queue_t *released);
static ngx_http_loom_topic_t *ngx_http_loom_topic_by_channel(
    ngx_http_loom_worker_t *w, ngx_str_t *channel);
static void ngx_http_loom_topic_deliver(ngx_http_loom_topic_t *t,
    uint64_t seq, u_char *json, size_t len);
static void ngx_http_loom_topic_unregistered(ngx_http_loom_topic_t *t,
    ngx_str_t *registration);
static void ngx_http_loom_topic_release_held(ngx_http_loom_topic_t *t,
    uint64_t seq, ngx_queue_t *released);
static void ngx_http_loom_topic_answer(ngx_queue_t *released,
    ngx_queue_t *failed);


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

    /* name, then the channel P{t:<name>}:msg, whose start is the key */

    len = sizeof(ngx_http_loom_topic_t) + name->len
          + prefix->len + sizeof("{t:}:msg") - 1 + name->len;

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

    ngx_queue_init(&t->subscribers);
    ngx_queue_init(&t->waiting);
    ngx_queue_init(&t->held);

    t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;
    t->sn.node.key = ngx_crc32_long(name->data, name->len);

    ngx_rbtree_insert(&w->topics, &t->sn.node);

    return t;
}


void
ngx_http_loom_topic_check(ngx_http_loom_topic_t *t)
{
    ngx_queue_t             *q;
    ngx_http_loom_worker_t  *w;

    w = t->worker;

    if (t->nsubscribers
        || !ngx_queue_empty(&t->waiting)
        || !ngx_queue_empty(&t->held)
        || t->channel_state != NGX_HTTP_LOOM_CHANNEL_OFF)
    {
        if (t->idle_linked) {
            ngx_queue_remove(&t->idle);
            t->idle_linked = 0;
            w->nidle--;
        }

        return;
    }

    if (t->schema == NULL) {
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

    ngx_rbtree_delete(&w->topics, &t->sn.node);

    ngx_free(t);
}


ngx_http_loom_sub_t *
ngx_http_loom_topic_find(ngx_http_loom_session_t *s, ngx_http_loom_topic_t *t)
{
    ngx_queue_t          *q;
    ngx_http_loom_sub_t  *sub;

    /* walk the shorter list */

    if (s->nsubscriptions <= t->nsubscribers) {

        for (q = ngx_queue_head(&s->subscriptions);
             q != ngx_queue_sentinel(&s->subscriptions);
             q = ngx_queue_next(q))
        {
            sub = ngx_queue_data(q, ngx_http_loom_sub_t, session_link);

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

        if (sub->session == s) {
            return sub;
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_loom_topic_subscribe(ngx_http_loom_topic_t *t,
    ngx_http_loom_session_t *s, ngx_http_loom_request_t *r,
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

    sub = ngx_alloc(sizeof(ngx_http_loom_sub_t), s->connection->log);
    if (sub == NULL) {
        ngx_http_loom_topic_check(t);
        return NGX_ERROR;
    }

    sub->topic = t;
    sub->session = s;
    ngx_http_loom_topic_registration(sub, registration);

    ngx_queue_insert_tail(&t->subscribers, &sub->topic_link);
    ngx_queue_insert_tail(&s->subscriptions, &sub->session_link);
    t->nsubscribers++;
    s->nsubscriptions++;

    ngx_http_loom_shm_subscribers(w->shm, &t->sn.str, 1, s->connection->log);

    ngx_http_loom_topic_check(t);

    if (t->channel_state == NGX_HTTP_LOOM_CHANNEL_ON) {
        return NGX_OK;
    }

    /* answered when Redis confirms the channel */

    r->state = NGX_HTTP_LOOM_REQ_WAITING;
    r->topic = t;
    ngx_queue_insert_tail(&t->waiting, &r->link);

    return NGX_AGAIN;
}


void
ngx_http_loom_topic_registration(ngx_http_loom_sub_t *sub,
    ngx_str_t *registration)
{
    sub->registration_len = ngx_min(registration->len, NGX_HTTP_LOOM_ID_LEN);
    ngx_memcpy(sub->registration, registration->data, sub->registration_len);
}


static void
ngx_http_loom_topic_remove(ngx_http_loom_sub_t *sub)
{
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_session_t  *s;

    t = sub->topic;
    s = sub->session;

    ngx_queue_remove(&sub->topic_link);
    ngx_queue_remove(&sub->session_link);
    t->nsubscribers--;
    s->nsubscriptions--;

    ngx_http_loom_shm_subscribers(t->worker->shm, &t->sn.str, -1,
                                  s->connection->log);

    ngx_free(sub);
}


/* the last local subscriber is gone: stop listening to the channel */

static void
ngx_http_loom_topic_unused(ngx_http_loom_topic_t *t, ngx_queue_t *released)
{
    if (t->nsubscribers) {
        return;
    }

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
ngx_http_loom_topic_unsubscribe_all(ngx_http_loom_session_t *s)
{
    ngx_queue_t          *q;
    ngx_http_loom_sub_t  *sub;

    while (!ngx_queue_empty(&s->subscriptions)) {
        q = ngx_queue_head(&s->subscriptions);
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, session_link);

        ngx_http_loom_topic_unsubscribe(sub);
    }
}


ngx_uint_t
ngx_http_loom_topic_hold(ngx_http_loom_topic_t *t, ngx_http_loom_session_t *s,
    ngx_http_loom_request_t *r, uint64_t seq)
{
    if (t->channel_state != NGX_HTTP_LOOM_CHANNEL_ON || t->seq >= seq) {
        return 0;
    }

    if (ngx_http_loom_topic_find(s, t) == NULL) {
        return 0;
    }

    r->state = NGX_HTTP_LOOM_REQ_HELD;
    r->seq = seq;
    r->topic = t;
    ngx_queue_insert_tail(&t->held, &r->link);

    return 1;
}


ngx_int_t
ngx_http_loom_topic_set_schema(ngx_http_loom_topic_t *t, ngx_str_t *tag,
    json_t *schema)
{
    u_char  *p;

    p = ngx_alloc(tag->len, t->worker->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_loom_topic_drop_schema(t);

    ngx_memcpy(p, tag->data, tag->len);
    t->tag.data = p;
    t->tag.len = tag->len;
    t->schema = json_incref(schema);

    return NGX_OK;
}


void
ngx_http_loom_topic_drop_schema(ngx_http_loom_topic_t *t)
{
    if (t->schema) {
        json_decref(t->schema);
        t->schema = NULL;
    }

    if (t->tag.data) {
        ngx_free(t->tag.data);
        t->tag.data = NULL;
        t->tag.len = 0;
    }
}


static ngx_http_loom_topic_t *
ngx_http_loom_topic_by_channel(ngx_http_loom_worker_t *w, ngx_str_t *channel)
{
    ngx_str_t  *prefix, name;

    prefix = ngx_http_loom_store_prefix(w->store);

    if (channel->len < prefix->len + sizeof("{t:}:msg") - 1
        || ngx_strncmp(channel->data, prefix->data, prefix->len) != 0
        || ngx_strncmp(channel->data + prefix->len, "{t:", 3) != 0
        || ngx_strncmp(channel->data + channel->len - 5, "}:msg", 5) != 0)
    {
        return NULL;
    }

    name.data = channel->data + prefix->len + 3;
    name.len = channel->len - prefix->len - (sizeof("{t:}:msg") - 1);

    return ngx_http_loom_topic_lookup(w, &name);
}


void
ngx_http_loom_topic_message(ngx_http_loom_worker_t *w, ngx_str_t *channel,
    ngx_str_t *payload)
{
    u_char                 *p, *last;
    uint64_t                seq;
    ngx_str_t               registration;
    ngx_http_loom_topic_t  *t;

    t = ngx_http_loom_topic_by_channel(w, channel);

    if (t == NULL || t->channel_state == NGX_HTTP_LOOM_CHANNEL_OFF) {
        return;
    }

    p = payload->data;
    last = p + payload->len;

    /* "U <registration>" */

    if (payload->len >= 2 && p[0] == 'U' && p[1] == ' ') {
        registration.data = p + 2;
        registration.len = payload->len - 2;

        ngx_http_loom_topic_unregistered(t, &registration);
        return;
    }

    /* "<seq> <delivery>" */

    seq = 0;

    while (p < last && *p >= '0' && *p <= '9') {
        seq = seq * 10 + (*p++ - '0');
    }

    if (p == last || *p != ' ' || p == payload->data) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "loom: ignored a malformed message on \"%V\"",
                      channel);
        return;
    }

    p++;

    ngx_http_loom_topic_deliver(t, seq, p, last - p);
}


static void
ngx_http_loom_topic_deliver(ngx_http_loom_topic_t *t, uint64_t seq,
    u_char *json, size_t len)
{
    u_char                 *p;
    ngx_uint_t              n;
    ngx_queue_t            *q, released;
    ngx_http_loom_sub_t    *sub;
    ngx_http_loom_frame_t  *f;

    n = 0;

    if (t->nsubscribers) {

        /* framed once, the same frame queued to every local subscriber */

        f = ngx_http_loom_frame_alloc(NGX_HTTP_LOOM_WS_TEXT, len, &p);

        if (f) {
            ngx_memcpy(p, json, len);

            for (q = ngx_queue_head(&t->subscribers);
                 q != ngx_queue_sentinel(&t->subscribers);
                 q = ngx_queue_next(q))
            {
                sub = ngx_queue_data(q, ngx_http_loom_sub_t, topic_link);

                if (ngx_http_loom_session_send(sub->session, f) == NGX_OK) {
                    n++;
                }
            }

            ngx_http_loom_frame_release(f);
        }
    }

    if (t->worker->stats) {
        t->worker->stats->deliveries += n;
    }

    if (seq > t->seq) {
        t->seq = seq;
    }

    if (ngx_queue_empty(&t->held)) {
        return;
    }

    ngx_queue_init(&released);
    ngx_http_loom_topic_release_held(t, t->seq, &released);
    ngx_http_loom_topic_answer(&released, NULL);
}


static void
ngx_http_loom_topic_release_held(ngx_http_loom_topic_t *t, uint64_t seq,
    ngx_queue_t *released)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    while (!ngx_queue_empty(&t->held)) {
        q = ngx_queue_head(&t->held);
        r = ngx_queue_data(q, ngx_http_loom_request_t, link);

        if (r->seq > seq) {
            break;
        }

        ngx_queue_remove(q);
        r->topic = NULL;
        ngx_queue_insert_tail(released, q);
    }
}


/*
 * Requests leave the topic's queues before they are answered: answering
 * may change or free the topic.
 */

static void
ngx_http_loom_topic_answer(ngx_queue_t *released, ngx_queue_t *failed)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    while (!ngx_queue_empty(released)) {
        q = ngx_queue_head(released);
        ngx_queue_remove(q);
        r = ngx_queue_data(q, ngx_http_loom_request_t, link);

        ngx_http_loom_protocol_release(r);
    }

    if (failed == NULL) {
        return;
    }

    while (!ngx_queue_empty(failed)) {
        q = ngx_queue_head(failed);
        ngx_queue_remove(q);
        r = ngx_queue_data(q, ngx_http_loom_request_t, link);

        ngx_http_loom_protocol_subscribed(r, NGX_ERROR);
    }
}


static void
ngx_http_loom_topic_unregistered(ngx_http_loom_topic_t *t,
    ngx_str_t *registration)
{
    ngx_queue_t          *q, *next, released;
    ngx_http_loom_sub_t  *sub;

    /*
     * as in the original, subscribers are dropped without a word; those
     * that subscribed to a newer registration of the name stay
     */

    ngx_queue_init(&released);

    for (q = ngx_queue_head(&t->subscribers);
         q != ngx_queue_sentinel(&t->subscribers);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, topic_link);

        if (sub->registration_len == registration->len
            && ngx_memcmp(sub->registration, registration->data,
                          registration->len) == 0)
        {
            ngx_http_loom_topic_remove(sub);
        }
    }

    ngx_http_loom_topic_drop_schema(t);
    ngx_http_loom_topic_unused(t, &released);
    ngx_http_loom_topic_check(t);

    ngx_http_loom_topic_answer(&released, NULL);
}


void
ngx_http_loom_topic_subscribed(ngx_http_loom_worker_t *w, ngx_str_t *channel)
{
    ngx_queue_t              *q, done;
    ngx_http_loom_request_t  *r;
    ngx_http_loom_topic_t    *t;

    t = ngx_http_loom_topic_by_channel(w, channel);

    if (t == NULL || t->channel_state != NGX_HTTP_LOOM_CHANNEL_PENDING) {
        return;
    }

    t->channel_state = NGX_HTTP_LOOM_CHANNEL_ON;

    ngx_queue_init(&done);

    while (!ngx_queue_empty(&t->waiting)) {
        q = ngx_queue_head(&t->waiting);
        ngx_queue_remove(q);
        r = ngx_queue_data(q, ngx_http_loom_request_t, link);
        r->topic = NULL;
        ngx_queue_insert_tail(&done, q);
    }

    if (t->nsubscribers == 0) {
        /* everybody left while Redis was confirming */
        ngx_http_loom_store_unsubscribe(w->store, &t->channel);
        t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;
    }

    ngx_http_loom_topic_check(t);

    while (!ngx_queue_empty(&done)) {
        q = ngx_queue_head(&done);
        ngx_queue_remove(q);
        r = ngx_queue_data(q, ngx_http_loom_request_t, link);

        ngx_http_loom_protocol_subscribed(r, NGX_OK);
    }
}


/*
 * The subscriber link went down.  Local subscriptions stay: the channels
 * are subscribed again once the link is back.  Requests waiting for a
 * confirmation fail, acks waiting for a delivery go out.
 */

void
ngx_http_loom_topic_subscriber_lost(ngx_http_loom_worker_t *w)
{
    ngx_queue_t              *q, released, failed;
    ngx_rbtree_node_t        *node, *next;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_request_t  *r;

    ngx_queue_init(&released);
    ngx_queue_init(&failed);

    if (w->topics.root == w->topics.sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
         node;
         node = ngx_rbtree_next(&w->topics, node))
    {
        t = (ngx_http_loom_topic_t *) node;

        t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;

        while (!ngx_queue_empty(&t->waiting)) {
            q = ngx_queue_head(&t->waiting);
            ngx_queue_remove(q);
            r = ngx_queue_data(q, ngx_http_loom_request_t, link);
            r->topic = NULL;
            ngx_queue_insert_tail(&failed, q);
        }

        ngx_http_loom_topic_release_held(t, (uint64_t) -1, &released);
    }

    /* topics that were only waiting for a confirmation may go now */

    for (node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&w->topics, node);
        t = (ngx_http_loom_topic_t *) node;

        if (t->nsubscribers == 0) {
            ngx_http_loom_topic_check(t);
        }

        if (w->topics.root == w->topics.sentinel) {
            break;
        }
    }

    ngx_http_loom_topic_answer(&released, &failed);
}


void
ngx_http_loom_topic_resubscribe(ngx_http_loom_worker_t *w)
{
    ngx_rbtree_node_t      *node;
    ngx_http_loom_topic_t  *t;

    if (w->topics.root == w->topics.sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
         node;
         node = ngx_rbtree_next(&w->topics, node))
    {
        t = (ngx_http_loom_topic_t *) node;

        if (t->nsubscribers == 0
            || t->channel_state != NGX_HTTP_LOOM_CHANNEL_OFF)
        {
            continue;
        }

        if (ngx_http_loom_store_subscribe(w->store, &t->channel) != NGX_OK) {
            return;
        }

        t->channel_state = NGX_HTTP_LOOM_CHANNEL_PENDING;
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
