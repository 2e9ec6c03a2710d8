/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_ws.h"


/*
 * What comes from the subscriber link: deliveries and unregister notices
 * on a topic's channel, confirmations of SUBSCRIBE, the link going down
 * and coming back.
 */


/* ms before channels whose links were not ready are tried again */
#define NGX_HTTP_LOOM_RESUBSCRIBE_RETRY  250


/* a re-check of a topic's registration, after the subscriber link was down */
typedef struct {
    ngx_http_loom_store_call_t   call;            /* must be first */
    ngx_http_loom_worker_t      *worker;
    ngx_str_t                    name;
} ngx_http_loom_topic_recheck_t;


static ngx_http_loom_topic_t *ngx_http_loom_topic_by_channel(
    ngx_http_loom_worker_t *w, ngx_str_t *channel);
static void ngx_http_loom_topic_unregistered(ngx_http_loom_topic_t *t,
    ngx_str_t *registration);
static void ngx_http_loom_topic_end(ngx_http_loom_topic_t *t,
    ngx_str_t *registration, ngx_uint_t current);
static void ngx_http_loom_topic_lose(ngx_http_loom_topic_t *t,
    ngx_queue_t *released, ngx_queue_t *failed);
static ngx_int_t ngx_http_loom_topic_recheck(ngx_http_loom_topic_t *t);
static void ngx_http_loom_topic_retry(ngx_http_loom_worker_t *w);
static void ngx_http_loom_topic_retry_handler(ngx_event_t *ev);
static void ngx_http_loom_topic_recheck_reply(
    ngx_http_loom_store_call_t *call, redisReply *reply);


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
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_rev_msg_t   m;

    t = ngx_http_loom_topic_by_channel(w, channel);

    if (t == NULL || t->channel_state == NGX_HTTP_LOOM_CHANNEL_OFF) {
        return;
    }

    /*
     * "<seq> <rev> <ts> <epoch> <delivery>", "E <epoch> <rev> <ts>
     * <value>" or "U <registration>" (ngx_http_loom_rev.h)
     */

    if (ngx_http_loom_rev_parse(payload->data, payload->len, &m) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "loom: ignored a malformed message on \"%V\"",
                      channel);
        return;
    }

    if (m.kind == NGX_HTTP_LOOM_REV_UNREGISTERED) {
        ngx_http_loom_gap_forget(&t->gap);
        ngx_http_loom_topic_unregistered(t, &m.text);
        return;
    }

    /* in revision order, through the topic's gap repair */

    if (ngx_http_loom_gap_message(&t->gap, &m) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "loom: no memory to hold a message of \"%V\"",
                      &t->sn.str);
    }
}


static void
ngx_http_loom_topic_unregistered(ngx_http_loom_topic_t *t,
    ngx_str_t *registration)
{
    /*
     * as in the original, subscribers are dropped without a word; those
     * that subscribed to a newer registration of the name stay
     */

    ngx_http_loom_topic_drop_schema(t);

    if (t->seq_registration_len == registration->len
        && ngx_memcmp(t->seq_registration, registration->data,
                      registration->len) == 0)
    {
        /* the next registration counts from 0 */
        t->seq = 0;
        t->seq_registration_len = 0;
    }

    ngx_http_loom_topic_end(t, registration, 0);
}


/*
 * Ends the subscriptions to a registration that ended (an unregister
 * notice), or those to any but the current one (a re-check); the caller
 * must not use t afterwards
 */

static void
ngx_http_loom_topic_end(ngx_http_loom_topic_t *t, ngx_str_t *registration,
    ngx_uint_t current)
{
    ngx_uint_t            same, n;
    ngx_queue_t          *q, *next, released;
    ngx_http_loom_sub_t  *sub;

    ngx_queue_init(&released);

    n = 0;

    for (q = ngx_queue_head(&t->subscribers);
         q != ngx_queue_sentinel(&t->subscribers);
         q = next)
    {
        next = ngx_queue_next(q);
        sub = ngx_queue_data(q, ngx_http_loom_sub_t, topic_link);

        if (sub->registration_len == 0) {
            /* a new one with snapshot: its read, made later, names it */
            continue;
        }

        same = (sub->registration_len == registration->len
                && ngx_memcmp(sub->registration, registration->data,
                              registration->len) == 0);

        if (same != current) {
            ngx_http_loom_topic_remove(sub);
            n++;
        }
    }

    if (n && current) {
        ngx_log_error(NGX_LOG_INFO, t->worker->log, 0,
                      "loom: \"%V\" was unregistered while the subscriber "
                      "link was down: %ui subscriptions end", &t->sn.str, n);
    }

    ngx_http_loom_topic_unused(t, &released);
    ngx_http_loom_topic_check(t);

    ngx_http_loom_topic_answer(&released, NULL);
}


void
ngx_http_loom_topic_subscribed(ngx_http_loom_worker_t *w, ngx_str_t *channel)
{
    ngx_queue_t             *q, done;
    ngx_http_loom_topic_t   *t;
    ngx_http_loom_waiter_t  *wt;

    t = ngx_http_loom_topic_by_channel(w, channel);

    if (t == NULL || t->channel_state != NGX_HTTP_LOOM_CHANNEL_PENDING) {
        return;
    }

    t->channel_state = NGX_HTTP_LOOM_CHANNEL_ON;

    if (t->relink) {
        /* back after a drop: what was published meanwhile is read back */
        t->relink = 0;
        ngx_http_loom_gap_link_back(&t->gap);
    }

    ngx_queue_init(&done);

    while (!ngx_queue_empty(&t->waiting)) {
        q = ngx_queue_head(&t->waiting);
        ngx_queue_remove(q);
        wt = ngx_queue_data(q, ngx_http_loom_waiter_t, link);
        wt->topic = NULL;
        ngx_queue_insert_tail(&done, q);
    }

    if (t->nsubscribers == 0) {
        /* everybody left while Redis was confirming */
        ngx_http_loom_store_unsubscribe(w->store, &t->channel);
        t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;
    }

    ngx_http_loom_topic_check(t);

    ngx_http_loom_topic_answer(&done, NULL);
}


/*
 * The subscriber link went down.  Local subscriptions stay: the channels
 * are subscribed again once the link is back.  Requests waiting for a
 * confirmation fail, acks waiting for a delivery go out.
 */

void
ngx_http_loom_topic_subscriber_lost(ngx_http_loom_worker_t *w)
{
    ngx_queue_t             released, failed;
    ngx_rbtree_node_t      *node, *next;
    ngx_http_loom_topic_t  *t;

    ngx_queue_init(&released);
    ngx_queue_init(&failed);

    if (w->topics.root == w->topics.sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
         node;
         node = ngx_rbtree_next(&w->topics, node))
    {
        ngx_http_loom_topic_lose((ngx_http_loom_topic_t *) node, &released,
                                 &failed);
    }

    /*
     * Topics that were only waiting for a confirmation may go now.  Only
     * the node at hand may be freed: the cache evicts after the walk.
     */

    for (node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&w->topics, node);
        t = (ngx_http_loom_topic_t *) node;

        if (t->nsubscribers == 0) {
            ngx_http_loom_topic_keep(t, 0);
        }

        if (w->topics.root == w->topics.sentinel) {
            break;
        }
    }

    ngx_http_loom_topic_evict(w);

    ngx_http_loom_topic_answer(&released, &failed);
}


/* in a cluster: the subscription of one channel ended */

void
ngx_http_loom_topic_channel_lost(ngx_http_loom_worker_t *w,
    ngx_str_t *channel)
{
    ngx_queue_t             released, failed;
    ngx_http_loom_topic_t  *t;

    t = ngx_http_loom_topic_by_channel(w, channel);

    if (t == NULL) {
        return;
    }

    ngx_queue_init(&released);
    ngx_queue_init(&failed);

    ngx_http_loom_topic_lose(t, &released, &failed);

    if (t->nsubscribers == 0) {
        ngx_http_loom_topic_keep(t, 0);
    }

    ngx_http_loom_topic_evict(w);

    ngx_http_loom_topic_answer(&released, &failed);
}


static void
ngx_http_loom_topic_lose(ngx_http_loom_topic_t *t, ngx_queue_t *released,
    ngx_queue_t *failed)
{
    ngx_queue_t             *q;
    ngx_http_loom_waiter_t  *wt;

    if (t->channel_state == NGX_HTTP_LOOM_CHANNEL_ON) {
        t->relink = 1;
    }

    /* an unregister notice may be missed from now on */
    t->recheck = 1;
    t->channel_state = NGX_HTTP_LOOM_CHANNEL_OFF;

    while (!ngx_queue_empty(&t->waiting)) {
        q = ngx_queue_head(&t->waiting);
        ngx_queue_remove(q);
        wt = ngx_queue_data(q, ngx_http_loom_waiter_t, link);
        wt->topic = NULL;
        ngx_queue_insert_tail(failed, q);
    }

    ngx_http_loom_topic_release_held(t, (uint64_t) -1, released);
}


/*
 * The subscriber link is back.  An unregister notice sent while it was
 * down never came, so each topic's registration is asked for first
 * (HGET P{t:<name>} tag on the command link); the channel is subscribed
 * again once the subscriptions to a registration that ended are gone, so
 * that none of them gets a delivery of the registration that followed.
 * Until the command link can take the question (it comes up on its own,
 * and in a cluster the new master's may come up after its subscriber
 * link), the topic is tried again every NGX_HTTP_LOOM_RESUBSCRIBE_RETRY
 * ms: subscribing without the answer would keep subscriptions to a
 * registration that Redis lost (a replica without the topic promoted).
 */

void
ngx_http_loom_topic_resubscribe(ngx_http_loom_worker_t *w)
{
    ngx_uint_t              down;
    ngx_rbtree_node_t      *node;
    ngx_http_loom_topic_t  *t;

    if (w->topics.root == w->topics.sentinel) {
        return;
    }

    down = 0;

    for (node = ngx_rbtree_min(w->topics.root, w->topics.sentinel);
         node;
         node = ngx_rbtree_next(&w->topics, node))
    {
        t = (ngx_http_loom_topic_t *) node;

        if (t->nsubscribers == 0) {
            continue;
        }

        if (t->recheck) {
            if (!down && ngx_http_loom_topic_recheck(t) == NGX_OK) {
                t->recheck = 0;
                continue;
            }

            ngx_http_loom_topic_retry(w);

            /* one command link: the other checks would fail alike */
            down = !ngx_http_loom_store_clustered(w->store);

            continue;
        }

        if (t->channel_state != NGX_HTTP_LOOM_CHANNEL_OFF) {
            continue;
        }

        /* in a cluster, another channel's node may be up */

        if (ngx_http_loom_store_subscribe(w->store, &t->channel) == NGX_OK) {
            t->channel_state = NGX_HTTP_LOOM_CHANNEL_PENDING;

        } else {
            ngx_http_loom_topic_retry(w);
        }
    }
}


/*
 * A channel whose master's subscriber link (or command link, for the
 * registration check) was not ready yet when the others were is tried
 * again shortly, until it is.
 */

static void
ngx_http_loom_topic_retry(ngx_http_loom_worker_t *w)
{
    ngx_event_t  *ev;

    ev = &w->resubscribe;

    if (ev->timer_set) {
        return;
    }

    ev->handler = ngx_http_loom_topic_retry_handler;
    ev->data = w;
    ev->log = w->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_HTTP_LOOM_RESUBSCRIBE_RETRY);
}


static void
ngx_http_loom_topic_retry_handler(ngx_event_t *ev)
{
    ngx_http_loom_topic_resubscribe(ev->data);
}


static ngx_int_t
ngx_http_loom_topic_recheck(ngx_http_loom_topic_t *t)
{
    size_t                          argvlen[3];
    const char                     *argv[3], *reason;
    ngx_http_loom_worker_t         *w;
    ngx_http_loom_topic_recheck_t  *rc;

    w = t->worker;

    rc = ngx_alloc(sizeof(ngx_http_loom_topic_recheck_t) + t->sn.str.len,
                   w->log);
    if (rc == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&rc->call, sizeof(ngx_http_loom_store_call_t));
    rc->call.handler = ngx_http_loom_topic_recheck_reply;
    rc->worker = w;
    rc->name.data = (u_char *) rc + sizeof(ngx_http_loom_topic_recheck_t);
    rc->name.len = t->sn.str.len;
    ngx_memcpy(rc->name.data, t->sn.str.data, t->sn.str.len);

    argv[0] = "HGET";
    argvlen[0] = 4;
    argv[1] = (char *) t->key.data;
    argvlen[1] = t->key.len;
    argv[2] = "tag";
    argvlen[2] = 3;

    if (ngx_http_loom_store_command(w->store, &rc->call, 3, argv, argvlen,
                                    &reason)
        != NGX_OK)
    {
        /* tried again every 250 ms while Redis is away: not a warning */
        ngx_log_error(NGX_LOG_INFO, w->log, 0,
                      "loom: cannot check the registration of \"%V\" "
                      "yet: %s", &t->sn.str, reason);
        ngx_free(rc);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Every subscription present now was made with a registration read
 * before this reply on the same link: one that differs has ended.
 */

static void
ngx_http_loom_topic_recheck_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_str_t                       tag, current;
    ngx_http_loom_topic_t          *t;
    ngx_http_loom_topic_recheck_t  *rc;

    rc = (ngx_http_loom_topic_recheck_t *) call;

    t = ngx_http_loom_topic_lookup(rc->worker, &rc->name);

    if (t && reply
        && (reply->type == REDIS_REPLY_STRING
            || reply->type == REDIS_REPLY_NIL))
    {
        if (reply->type == REDIS_REPLY_NIL) {
            ngx_str_null(&current);
            t->seq = 0;
            t->seq_registration_len = 0;

        } else {
            tag.data = (u_char *) reply->str;
            tag.len = reply->len;
            ngx_http_loom_topic_tag_registration(&tag, &current);
        }

        ngx_http_loom_topic_seq_registration(t, &current);

        /* the topic may go with the subscriptions that end */
        ngx_http_loom_topic_end(t, &current, 1);

        t = ngx_http_loom_topic_lookup(rc->worker, &rc->name);
    }

    if (t && t->nsubscribers
        && (reply == NULL
            || (reply->type != REDIS_REPLY_STRING
                && reply->type != REDIS_REPLY_NIL)))
    {
        /* no answer (the command link went down, the slot had no
           master): asked again */
        t->recheck = 1;
        ngx_http_loom_topic_retry(rc->worker);

    } else if (t && t->nsubscribers && !t->recheck
               && t->channel_state == NGX_HTTP_LOOM_CHANNEL_OFF)
    {
        if (ngx_http_loom_store_subscribe(rc->worker->store, &t->channel)
            == NGX_OK)
        {
            t->channel_state = NGX_HTTP_LOOM_CHANNEL_PENDING;

        } else {
            ngx_http_loom_topic_retry(rc->worker);
        }
    }

    ngx_free(rc);
}
