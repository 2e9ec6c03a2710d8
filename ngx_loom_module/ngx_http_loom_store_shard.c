/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_cluster.h"


/*
 * Sharded subscriptions in a cluster.  Each channel is subscribed
 * (SSUBSCRIBE) on the subscriber link of its slot's master, and known
 * here with where it is.  Confirmations of SUNSUBSCRIBE that this worker
 * sent are counted; any other "sunsubscribe" is the node telling that it
 * lost the slot: a confirmed subscription is reported lost to the layer
 * above (which subscribes again after the map is read, and repairs the
 * gap), one still waiting for its confirmation is sent again at the new
 * owner without a word.
 */


static ngx_http_loom_cluster_channel_t *ngx_http_loom_cluster_channel(
    ngx_http_loom_cluster_t *cl, ngx_str_t *name);
static void ngx_http_loom_cluster_sunsubscribed(
    ngx_http_loom_store_link_t *link, ngx_http_loom_cluster_channel_t *ch);
static void ngx_http_loom_cluster_moved_error(
    ngx_http_loom_store_link_t *link, redisReply *reply);
static ngx_int_t ngx_http_loom_cluster_ssubscribe(
    ngx_http_loom_cluster_node_t *node, ngx_http_loom_cluster_channel_t *ch);
static ngx_uint_t ngx_http_loom_cluster_is(redisReply *r, char *s,
    size_t len);


static ngx_http_loom_cluster_channel_t *
ngx_http_loom_cluster_channel(ngx_http_loom_cluster_t *cl, ngx_str_t *name)
{
    return (ngx_http_loom_cluster_channel_t *)
               ngx_str_rbtree_lookup(&cl->channels, name,
                                     ngx_crc32_short(name->data, name->len));
}


ngx_int_t
ngx_http_loom_cluster_subscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel)
{
    ngx_uint_t                        slot;
    ngx_http_loom_cluster_t          *cl;
    ngx_http_loom_cluster_node_t     *node;
    ngx_http_loom_cluster_channel_t  *ch;

    cl = st->cluster;

    slot = ngx_http_loom_cluster_slot(channel->data, channel->len);
    node = ngx_http_loom_cluster_owner(cl, slot);
    ch = ngx_http_loom_cluster_channel(cl, channel);

    if (node == NULL
        || node->subscriber.rd.state != NGX_HTTP_LOOM_LINK_READY)
    {
        return NGX_DECLINED;
    }

    if (ch == NULL) {
        ch = ngx_alloc(sizeof(ngx_http_loom_cluster_channel_t)
                       + channel->len, cl->log);
        if (ch == NULL) {
            return NGX_DECLINED;
        }

        ngx_memzero(ch, sizeof(ngx_http_loom_cluster_channel_t));
        ch->sn.str.data = (u_char *) ch
                          + sizeof(ngx_http_loom_cluster_channel_t);
        ch->sn.str.len = channel->len;
        ngx_memcpy(ch->sn.str.data, channel->data, channel->len);
        ch->sn.node.key = ngx_crc32_short(channel->data, channel->len);
        ch->slot = slot;

        ngx_rbtree_insert(&cl->channels, &ch->sn.node);
    }

    if (ngx_http_loom_cluster_ssubscribe(node, ch) == NGX_OK) {
        return NGX_OK;
    }

    if (ch->state == NGX_HTTP_LOOM_CHANNEL_OFF && ch->unsubscribes == 0) {
        ngx_rbtree_delete(&cl->channels, &ch->sn.node);
        ngx_free(ch);
    }

    return NGX_DECLINED;
}


void
ngx_http_loom_cluster_unsubscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel)
{
    size_t                            argvlen[2];
    const char                       *argv[2], *reason;
    ngx_http_loom_cluster_t          *cl;
    ngx_http_loom_cluster_channel_t  *ch;

    cl = st->cluster;

    ch = ngx_http_loom_cluster_channel(cl, channel);

    if (ch == NULL || ch->state == NGX_HTTP_LOOM_CHANNEL_OFF) {
        return;
    }

    ch->state = NGX_HTTP_LOOM_CHANNEL_OFF;
    ch->retry = 0;

    argv[0] = "SUNSUBSCRIBE";
    argvlen[0] = 12;
    argv[1] = (char *) channel->data;
    argvlen[1] = channel->len;

    if (ch->node
        && ch->node->subscriber.rd.state == NGX_HTTP_LOOM_LINK_READY
        && ngx_http_loom_redis_send(&ch->node->subscriber.rd, 2, argv,
                                    argvlen, NULL, NULL, 0, &reason)
           == NGX_OK)
    {
        ch->unsubscribes++;
        return;
    }

    ngx_rbtree_delete(&cl->channels, &ch->sn.node);
    ngx_free(ch);
}


/* what a master's subscriber link hears */

void
ngx_http_loom_cluster_push(ngx_http_loom_redis_t *rd, redisReply *reply)
{
    redisReply                       *kind, *channel, *payload;
    ngx_str_t                         name, data;
    ngx_http_loom_store_t            *st;
    ngx_http_loom_cluster_t          *cl;
    ngx_http_loom_store_link_t       *link;
    ngx_http_loom_cluster_channel_t  *ch;
    ngx_http_loom_store_handlers_t   *h;

    link = rd->data;
    st = link->store;
    cl = st->cluster;
    h = &st->handlers;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_loom_cluster_moved_error(link, reply);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        /* +OK of AUTH, pong */
        return;
    }

    kind = reply->element[0];
    channel = reply->element[1];

    name.data = (u_char *) channel->str;
    name.len = channel->len;

    payload = reply->elements > 2 ? reply->element[2] : NULL;

    if (ngx_http_loom_cluster_is(kind, "smessage", 8)) {

        if (payload && payload->type == REDIS_REPLY_STRING) {
            data.data = (u_char *) payload->str;
            data.len = payload->len;
            h->message(h->data, &name, &data);
        }

        return;
    }

    if (ngx_http_loom_cluster_is(kind, "message", 7)) {

        if (payload && payload->type == REDIS_REPLY_STRING
            && name.len == st->control.len
            && ngx_strncmp(name.data, st->control.data, name.len) == 0)
        {
            data.data = (u_char *) payload->str;
            data.len = payload->len;
            h->control(h->data, &data);
        }

        return;
    }

    if (ngx_http_loom_cluster_is(kind, "subscribe", 9)) {

        /* the control channel: the end of the handshake */

        if (rd->state == NGX_HTTP_LOOM_LINK_HANDSHAKE) {
            ngx_http_loom_redis_ready(rd);
            h->ready(h->data);
        }

        return;
    }

    ch = ngx_http_loom_cluster_channel(cl, &name);

    if (ch == NULL || ch->node != link->node) {
        /* of a subscription that ended, or moved on */
        return;
    }

    if (ngx_http_loom_cluster_is(kind, "ssubscribe", 10)) {

        if (ch->state == NGX_HTTP_LOOM_CHANNEL_PENDING) {
            ch->state = NGX_HTTP_LOOM_CHANNEL_ON;
            h->subscribed(h->data, &name);
        }

        return;
    }

    if (ngx_http_loom_cluster_is(kind, "sunsubscribe", 12)) {
        ngx_http_loom_cluster_sunsubscribed(link, ch);
    }
}


static void
ngx_http_loom_cluster_sunsubscribed(ngx_http_loom_store_link_t *link,
    ngx_http_loom_cluster_channel_t *ch)
{
    ngx_http_loom_store_t    *st;
    ngx_http_loom_cluster_t  *cl;

    st = link->store;
    cl = st->cluster;

    if (ch->unsubscribes) {
        /* ours */
        if (--ch->unsubscribes == 0
            && ch->state == NGX_HTTP_LOOM_CHANNEL_OFF)
        {
            ngx_rbtree_delete(&cl->channels, &ch->sn.node);
            ngx_free(ch);
        }

        return;
    }

    ngx_log_error(NGX_LOG_INFO, &link->rd.log, 0,
                  "loom: redis ended the subscription of \"%V\": "
                  "the slot moved", &ch->sn.str);

    ngx_http_loom_cluster_refresh_soon(cl);

    if (ch->state == NGX_HTTP_LOOM_CHANNEL_PENDING) {
        /* nobody knew yet: at the new owner, once the map says */
        ch->node = NULL;
        ch->retry = 1;
        return;
    }

    ngx_rbtree_delete(&cl->channels, &ch->sn.node);

    if (ch->state == NGX_HTTP_LOOM_CHANNEL_ON) {
        cl->lost = 1;
        st->handlers.channel_lost(st->handlers.data, &ch->sn.str);
    }

    ngx_free(ch);
}


/*
 * An SSUBSCRIBE that met a node which no longer owns the slot: the
 * subscriptions of that slot still waiting there go to the new owner
 */

static void
ngx_http_loom_cluster_moved_error(ngx_http_loom_store_link_t *link,
    redisReply *reply)
{
    ngx_rbtree_node_t                 *n;
    ngx_http_loom_cluster_t           *cl;
    ngx_http_loom_cluster_channel_t   *ch;
    ngx_http_loom_cluster_redirect_t   rd;

    cl = link->store->cluster;

    if (ngx_http_loom_cluster_redirect((u_char *) reply->str, reply->len,
                                       &rd)
        != NGX_OK
        || rd.kind != NGX_HTTP_LOOM_CLUSTER_MOVED)
    {
        ngx_log_error(NGX_LOG_ERR, &link->rd.log, 0,
                      "loom: redis answered \"%*s\"",
                      (size_t) reply->len, reply->str);
        ngx_http_loom_redis_fail(&link->rd, NULL);
        return;
    }

    if (cl->channels.root != cl->channels.sentinel) {
        for (n = ngx_rbtree_min(cl->channels.root, cl->channels.sentinel);
             n;
             n = ngx_rbtree_next(&cl->channels, n))
        {
            ch = (ngx_http_loom_cluster_channel_t *) n;

            if (ch->node == link->node && ch->slot == rd.slot
                && ch->state == NGX_HTTP_LOOM_CHANNEL_PENDING)
            {
                ch->node = NULL;
                ch->retry = 1;
            }
        }
    }

    ngx_http_loom_cluster_refresh_soon(cl);
}


void
ngx_http_loom_cluster_channels_down(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_cluster_node_t *node)
{
    ngx_queue_t                       gone, *q;
    ngx_rbtree_node_t                *n, *next;
    ngx_http_loom_store_t            *st;
    ngx_http_loom_cluster_channel_t  *ch;

    st = cl->store;

    ngx_queue_init(&gone);

    if (cl->channels.root != cl->channels.sentinel) {
        for (n = ngx_rbtree_min(cl->channels.root, cl->channels.sentinel);
             n;
             n = next)
        {
            next = ngx_rbtree_next(&cl->channels, n);
            ch = (ngx_http_loom_cluster_channel_t *) n;

            if (ch->node == node) {
                ngx_rbtree_delete(&cl->channels, n);
                ngx_queue_insert_tail(&gone, &ch->queue);
            }
        }
    }

    /* the layer above may subscribe and unsubscribe meanwhile */

    while (!ngx_queue_empty(&gone)) {
        q = ngx_queue_head(&gone);
        ngx_queue_remove(q);
        ch = ngx_queue_data(q, ngx_http_loom_cluster_channel_t, queue);

        if (ch->state != NGX_HTTP_LOOM_CHANNEL_OFF) {
            cl->lost = 1;
        st->handlers.channel_lost(st->handlers.data, &ch->sn.str);
        }

        ngx_free(ch);
    }
}


void
ngx_http_loom_cluster_channels_moved(ngx_http_loom_cluster_t *cl)
{
    ngx_queue_t                       gone, *q;
    ngx_rbtree_node_t                *n, *next;
    ngx_http_loom_store_t            *st;
    ngx_http_loom_cluster_node_t     *node;
    ngx_http_loom_cluster_channel_t  *ch;

    st = cl->store;

    ngx_queue_init(&gone);

    if (cl->channels.root != cl->channels.sentinel) {
        for (n = ngx_rbtree_min(cl->channels.root, cl->channels.sentinel);
             n;
             n = next)
        {
            next = ngx_rbtree_next(&cl->channels, n);
            ch = (ngx_http_loom_cluster_channel_t *) n;

            if (!ch->retry) {
                continue;
            }

            ch->retry = 0;
            node = ngx_http_loom_cluster_owner(cl, ch->slot);

            if (ngx_http_loom_cluster_ssubscribe(node, ch) != NGX_OK) {
                ngx_rbtree_delete(&cl->channels, n);
                ngx_queue_insert_tail(&gone, &ch->queue);
            }
        }
    }

    while (!ngx_queue_empty(&gone)) {
        q = ngx_queue_head(&gone);
        ngx_queue_remove(q);
        ch = ngx_queue_data(q, ngx_http_loom_cluster_channel_t, queue);
        cl->lost = 1;
        st->handlers.channel_lost(st->handlers.data, &ch->sn.str);
        ngx_free(ch);
    }
}


/* SSUBSCRIBE at the node; NGX_DECLINED when it cannot be now */

static ngx_int_t
ngx_http_loom_cluster_ssubscribe(ngx_http_loom_cluster_node_t *node,
    ngx_http_loom_cluster_channel_t *ch)
{
    size_t       argvlen[2];
    const char  *argv[2], *reason;

    if (node == NULL
        || node->subscriber.rd.state != NGX_HTTP_LOOM_LINK_READY)
    {
        return NGX_DECLINED;
    }

    argv[0] = "SSUBSCRIBE";
    argvlen[0] = 10;
    argv[1] = (char *) ch->sn.str.data;
    argvlen[1] = ch->sn.str.len;

    if (ngx_http_loom_redis_send(&node->subscriber.rd, 2, argv, argvlen,
                                 NULL, NULL, 0, &reason)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ch->node != node) {
        /* confirmations of another node's subscription do not count */
        ch->unsubscribes = 0;
    }

    ch->node = node;
    ch->state = NGX_HTTP_LOOM_CHANNEL_PENDING;
    ch->retry = 0;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_loom_cluster_is(redisReply *r, char *s, size_t len)
{
    return r->type == REDIS_REPLY_STRING && r->len == len
           && ngx_strncmp(r->str, s, len) == 0;
}
