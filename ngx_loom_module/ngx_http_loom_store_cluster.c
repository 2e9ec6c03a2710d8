/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_int.h"
#include "ngx_http_loom_store_cluster.h"
#include "ngx_http_loom_shm.h"


/*
 * Redis Cluster, per worker.  A seed link asks for the slot map (CLUSTER
 * SLOTS) at start, after a MOVED, when a node's link goes down, and every
 * few seconds.  Each master gets a command link and a subscriber link;
 * a command goes to the master of its slot (ngx_http_loom_store_route.c).
 *
 * Subscriptions are sharded (SSUBSCRIBE) at the master of the channel's
 * slot; the control channel is a plain one, subscribed on every master's
 * link (PUBLISH reaches every node of a cluster).  A node that loses a
 * slot pushes "sunsubscribe": the topic is told its channel was lost, and
 * it is subscribed again at the new owner after the map is read again.
 */


static void ngx_http_loom_cluster_seed_connected(ngx_http_loom_redis_t *rd);
static ngx_http_loom_cluster_node_t *ngx_http_loom_cluster_node(
    ngx_http_loom_cluster_t *cl, ngx_str_t *host, in_port_t port);
static void ngx_http_loom_cluster_command_connected(
    ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_subscriber_connected(
    ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_changed(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_command_down(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_subscriber_down(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_link_init(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_store_link_t *link, ngx_http_loom_redis_conf_t *conf,
    ngx_str_t *server);
static void ngx_http_loom_cluster_refresh_handler(ngx_event_t *ev);
static void ngx_http_loom_cluster_slots_reply(void *data, redisReply *reply);
static void ngx_http_loom_cluster_apply(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_cluster_range_t *ranges, ngx_uint_t n);
static ngx_uint_t ngx_http_loom_cluster_degraded(ngx_http_loom_cluster_t *cl);
static void ngx_http_loom_cluster_gauges(ngx_http_loom_cluster_t *cl);


ngx_int_t
ngx_http_loom_cluster_init(ngx_http_loom_store_t *st,
    ngx_http_loom_worker_t *w)
{
    ngx_http_loom_cluster_t  *cl;

    cl = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_loom_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    st->cluster = cl;

    if (ngx_http_loom_store_scripts_init(st, w->cycle->pool) != NGX_OK) {
        return NGX_ERROR;
    }

    cl->store = st;
    cl->log = w->log;
    cl->pool = w->cycle->pool;
    cl->resolve = ngx_http_loom_cluster_node;

    st->cluster_send = ngx_http_loom_cluster_send;
    st->cluster_list = ngx_http_loom_cluster_list;

    ngx_memset(cl->map, NGX_HTTP_LOOM_CLUSTER_NONE, sizeof(cl->map));
    ngx_queue_init(&cl->frozen);
    ngx_rbtree_init(&cl->channels, &cl->sentinel, ngx_str_rbtree_insert_value);

    if (w->stats) {
        cl->gauge_command = &w->stats->redis_command;
        cl->gauge_subscriber = &w->stats->redis_subscriber;
        cl->reconnects = &w->stats->redis_reconnects;
    }

    cl->refresh.handler = ngx_http_loom_cluster_refresh_handler;
    cl->refresh.data = cl;
    cl->refresh.log = w->log;
    cl->refresh.cancelable = 1;

    cl->kick.handler = ngx_http_loom_cluster_kick_handler;
    cl->kick.data = cl;
    cl->kick.log = w->log;
    cl->kick.cancelable = 1;

    /* the seeds, in turn, until one answers */

    ngx_http_loom_cluster_link_init(cl, &cl->seed, &st->link_conf,
                                    &st->conf->redis);

    cl->seed.rd.name = "cluster seed";
    cl->seed.rd.connected = ngx_http_loom_cluster_seed_connected;

    ngx_http_loom_redis_connect(&cl->seed.rd);

    return NGX_OK;
}


void
ngx_http_loom_cluster_exit(ngx_http_loom_store_t *st)
{
    ngx_uint_t                        i;
    ngx_queue_t                      *q;
    ngx_rbtree_node_t                *rn;
    ngx_http_loom_cluster_t          *cl;
    ngx_http_loom_cluster_node_t     *node;
    ngx_http_loom_cluster_frozen_t   *f;
    ngx_http_loom_cluster_cmd_t      *cc;

    cl = st->cluster;

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    if (cl->kick.timer_set) {
        ngx_del_timer(&cl->kick);
    }

    ngx_http_loom_redis_close(&cl->seed.rd);

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];
        ngx_http_loom_redis_close(&node->command.rd);
        ngx_http_loom_redis_close(&node->subscriber.rd);
        ngx_http_loom_store_waits_free(&node->command);
    }

    while (cl->channels.root != cl->channels.sentinel) {
        rn = ngx_rbtree_min(cl->channels.root, cl->channels.sentinel);
        ngx_rbtree_delete(&cl->channels, rn);
        ngx_free(rn);
    }

    while (!ngx_queue_empty(&cl->frozen)) {
        q = ngx_queue_head(&cl->frozen);
        ngx_queue_remove(q);
        f = ngx_queue_data(q, ngx_http_loom_cluster_frozen_t, queue);

        ngx_queue_add(&f->bounced, &f->fresh);

        while (!ngx_queue_empty(&f->bounced)) {
            q = ngx_queue_head(&f->bounced);
            ngx_queue_remove(q);
            cc = ngx_queue_data(q, ngx_http_loom_cluster_cmd_t, queue);
            ngx_http_loom_cluster_fail(cc);
        }

        ngx_free(f);
    }
}


static void
ngx_http_loom_cluster_link_init(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_store_link_t *link, ngx_http_loom_redis_conf_t *conf,
    ngx_str_t *server)
{
    ngx_http_loom_redis_init(&link->rd, conf, cl->log);

    link->store = cl->store;
    link->rd.data = link;
    link->rd.server = server;
    link->rd.reconnects = cl->reconnects;
    link->rd.changed = ngx_http_loom_cluster_changed;
}


/* the seed link only asks for the map: AUTH is its whole handshake */

static void
ngx_http_loom_cluster_seed_connected(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_store_link_t  *link;

    link = rd->data;
    link->handshake = 0;

    if (ngx_http_loom_store_auth(link, ngx_http_loom_store_handshake_reply)
        != NGX_OK)
    {
        ngx_http_loom_redis_fail(rd, "cannot queue the handshake");
        return;
    }

    if (link->handshake == 0) {
        ngx_http_loom_redis_ready(rd);
    }
}


/* a master's command link: AUTH, the scripts (a cluster has no SELECT) */

static void
ngx_http_loom_cluster_command_connected(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_store_link_t  *link;

    link = rd->data;
    link->handshake = 0;

    if (ngx_http_loom_store_auth(link, ngx_http_loom_store_handshake_reply)
        != NGX_OK)
    {
        ngx_http_loom_redis_fail(rd, "cannot queue the handshake");
        return;
    }

    link->handshake += ngx_http_loom_store_load_scripts(link,
                                         ngx_http_loom_store_handshake_reply);

    if (link->handshake == 0) {
        ngx_http_loom_redis_fail(rd, "cannot queue the handshake");
    }
}


/*
 * A master's subscriber link: AUTH (its answer comes to the push
 * handler), then the control channel, whose confirmation ends the
 * handshake (ngx_http_loom_store_shard.c)
 */

static void
ngx_http_loom_cluster_subscriber_connected(ngx_http_loom_redis_t *rd)
{
    size_t                       argvlen[2];
    const char                  *argv[2], *reason;
    ngx_http_loom_store_t       *st;
    ngx_http_loom_store_link_t  *link;

    link = rd->data;
    st = link->store;
    link->handshake = 0;

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = (char *) st->control.data;
    argvlen[1] = st->control.len;

    if (ngx_http_loom_store_auth(link, NULL) != NGX_OK
        || ngx_http_loom_redis_send(rd, 2, argv, argvlen, NULL, NULL, 0,
                                    &reason)
           != NGX_OK)
    {
        ngx_http_loom_redis_fail(rd, "cannot queue the handshake");
    }
}


/* a link's state changed: only gauges and timers here */

static void
ngx_http_loom_cluster_changed(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_cluster_t     *cl;
    ngx_http_loom_store_link_t  *link;

    link = rd->data;
    cl = link->store->cluster;

    if (cl == NULL || link->store->exiting) {
        return;
    }

    if (link == &cl->seed) {
        if (rd->state == NGX_HTTP_LOOM_LINK_READY) {
            ngx_http_loom_cluster_refresh_soon(cl);
        }

        return;
    }

    ngx_http_loom_cluster_gauges(cl);

    if (rd->state == NGX_HTTP_LOOM_LINK_READY && link->node->master
        && !ngx_queue_empty(&cl->frozen))
    {
        ngx_add_timer(&cl->kick, 1);
    }
}


static void
ngx_http_loom_cluster_command_down(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_store_link_t  *link;

    link = rd->data;

    if (!link->store->exiting) {
        /* the master may have failed: who took its slots? */
        ngx_http_loom_cluster_refresh_soon(link->store->cluster);
    }
}


/*
 * A master's subscriber link went down: its channels are lost, and are
 * subscribed again where the map says, once it has been read again
 */

static void
ngx_http_loom_cluster_subscriber_down(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_store_link_t  *link;

    link = rd->data;

    if (link->store->exiting) {
        return;
    }

    ngx_http_loom_cluster_channels_down(link->store->cluster, link->node);
    ngx_http_loom_cluster_refresh_soon(link->store->cluster);
}


/* the node at host:port, its links started when it is new */

static ngx_http_loom_cluster_node_t *
ngx_http_loom_cluster_node(ngx_http_loom_cluster_t *cl, ngx_str_t *host,
    in_port_t port)
{
    u_char                        text[NGX_SOCKADDR_STRLEN], *p;
    size_t                        len;
    ngx_uint_t                    i, v6;
    ngx_addr_t                    addr;
    ngx_http_loom_cluster_node_t *node;

    v6 = ngx_strlchr(host->data, host->data + host->len, ':') != NULL;

    if (host->len + 8 > NGX_SOCKADDR_STRLEN) {
        return NULL;
    }

    p = text;

    if (v6) {
        *p++ = '[';
    }

    p = ngx_cpymem(p, host->data, host->len);

    if (v6) {
        *p++ = ']';
    }

    p = ngx_sprintf(p, ":%d", (int) port);
    len = p - text;

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (node->addr.name.len == len
            && ngx_strncmp(node->addr.name.data, text, len) == 0)
        {
            return node;
        }
    }

    if (cl->nnodes == NGX_HTTP_LOOM_CLUSTER_NODES) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "loom: more than %d redis cluster nodes, \"%*s\" "
                      "is not used", NGX_HTTP_LOOM_CLUSTER_NODES, len, text);
        return NULL;
    }

    if (ngx_parse_addr_port(cl->pool, &addr, text, len) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "loom: redis cluster node \"%*s\" is not an address",
                      len, text);
        return NULL;
    }

    node = &cl->nodes[cl->nnodes];
    node->index = cl->nnodes++;
    node->cluster = cl;
    node->first = NGX_HTTP_LOOM_CLUSTER_SLOTS;

    ngx_memcpy(&node->sockaddr, addr.sockaddr, addr.socklen);
    ngx_memcpy(node->text, text, len);
    node->addr.sockaddr = &node->sockaddr.sockaddr;
    node->addr.socklen = addr.socklen;
    node->addr.name.data = node->text;
    node->addr.name.len = len;

    node->conf = cl->store->link_conf;
    node->conf.addrs = &node->addr;
    node->conf.naddrs = 1;

    ngx_http_loom_cluster_link_init(cl, &node->command, &node->conf,
                                    &node->addr.name);
    node->command.node = node;
    node->command.rd.name = "command";
    node->command.rd.connected = ngx_http_loom_cluster_command_connected;
    node->command.rd.down = ngx_http_loom_cluster_command_down;

    ngx_http_loom_cluster_link_init(cl, &node->subscriber, &node->conf,
                                    &node->addr.name);
    node->subscriber.node = node;
    node->subscriber.rd.name = "subscriber";
    node->subscriber.rd.pubsub = 1;
    node->subscriber.rd.connected =
        ngx_http_loom_cluster_subscriber_connected;
    node->subscriber.rd.down = ngx_http_loom_cluster_subscriber_down;
    node->subscriber.rd.push = ngx_http_loom_cluster_push;

    ngx_log_error(NGX_LOG_INFO, cl->log, 0,
                  "loom: redis cluster node %V", &node->addr.name);

    ngx_http_loom_redis_connect(&node->command.rd);
    ngx_http_loom_redis_connect(&node->subscriber.rd);

    return node;
}


static void
ngx_http_loom_cluster_refresh_handler(ngx_event_t *ev)
{
    size_t                       argvlen[2];
    ngx_uint_t                   i;
    const char                  *argv[2], *reason;
    ngx_http_loom_cluster_t     *cl;
    ngx_http_loom_store_link_t  *link;

    cl = ev->data;

    if (cl->refreshing || cl->store->exiting) {
        return;
    }

    /* the seed, or any master that is up */

    link = &cl->seed;

    for (i = 0; link->rd.state != NGX_HTTP_LOOM_LINK_READY; i++) {
        if (i == cl->nnodes) {
            ngx_add_timer(&cl->refresh, NGX_HTTP_LOOM_CLUSTER_RECHECK);
            return;
        }

        link = &cl->nodes[i].command;
    }

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    if (ngx_http_loom_redis_send(&link->rd, 2, argv, argvlen,
                                 ngx_http_loom_cluster_slots_reply, cl, 0,
                                 &reason)
        != NGX_OK)
    {
        ngx_add_timer(&cl->refresh, NGX_HTTP_LOOM_CLUSTER_RECHECK);
        return;
    }

    cl->asked = link;
    cl->refreshing = 1;
    cl->again = 0;
}


static void
ngx_http_loom_cluster_slots_reply(void *data, redisReply *reply)
{
    ngx_uint_t                      n;
    ngx_msec_t                      next;
    ngx_http_loom_cluster_t        *cl;
    ngx_http_loom_cluster_range_t   ranges[NGX_HTTP_LOOM_CLUSTER_RANGES];

    cl = data;
    cl->refreshing = 0;

    if (cl->store->exiting) {
        return;
    }

    if (reply == NULL) {
        /* the link went down: another one is asked */
        ngx_add_timer(&cl->refresh, NGX_HTTP_LOOM_CLUSTER_SOON);
        return;
    }

    if (ngx_http_loom_cluster_slots(reply, ranges,
                                    NGX_HTTP_LOOM_CLUSTER_RANGES, &n)
        != NGX_OK
        || n == 0)
    {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "loom: no slot map from redis \"%V\"%s%*s",
                      cl->asked->rd.server,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      (size_t) (reply->type == REDIS_REPLY_ERROR
                                ? reply->len : 0),
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");

    } else {
        ngx_http_loom_cluster_apply(cl, ranges, n);
    }

    next = cl->again ? NGX_HTTP_LOOM_CLUSTER_SOON
                     : (ngx_http_loom_cluster_degraded(cl)
                        ? NGX_HTTP_LOOM_CLUSTER_RECHECK
                        : NGX_HTTP_LOOM_CLUSTER_REFRESH);
    cl->again = 0;

    ngx_add_timer(&cl->refresh, next);
}


static void
ngx_http_loom_cluster_apply(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_cluster_range_t *ranges, ngx_uint_t n)
{
    in_port_t                        port;
    ngx_str_t                        host;
    ngx_uint_t                       i, j;
    ngx_http_loom_store_t           *st;
    ngx_http_loom_cluster_node_t    *node, *m;

    st = cl->store;

    ngx_memcpy(cl->old_map, cl->map, sizeof(cl->map));
    ngx_memset(cl->map, NGX_HTTP_LOOM_CLUSTER_NONE, sizeof(cl->map));

    for (i = 0; i < cl->nnodes; i++) {
        cl->nodes[i].master = 0;
        cl->nodes[i].first = NGX_HTTP_LOOM_CLUSTER_SLOTS;
    }

    for (i = 0; i < n; i++) {
        host = ranges[i].host;
        port = ranges[i].port;

        if (host.len == 0 || (host.len == 1 && host.data[0] == '?')) {
            /* the node that answered */
            (void) ngx_http_loom_cluster_host_port(
                       cl->asked->rd.peer.name->data,
                       cl->asked->rd.peer.name->len, &host, &port);
            port = ranges[i].port;
        }

        node = ngx_http_loom_cluster_node(cl, &host, port);
        if (node == NULL) {
            continue;
        }

        ngx_memset(&cl->map[ranges[i].first], node->index,
                   ranges[i].last - ranges[i].first + 1);

        node->master = 1;
        node->first = ngx_min(node->first, ranges[i].first);
    }

    /* the masters in the order of their slots: for listTopics */

    cl->nmasters = 0;

    for (i = 0; i < cl->nnodes; i++) {
        node = &cl->nodes[i];

        if (!node->master) {
            continue;
        }

        for (j = cl->nmasters; j > 0; j--) {
            m = cl->masters[j - 1];

            if (m->first < node->first) {
                break;
            }

            cl->masters[j] = m;
        }

        cl->masters[j] = node;
        cl->nmasters++;
    }

    /*
     * a slot that moved while commands were due at its old master: the
     * new ones wait until those are answered (or redirected), to keep
     * the order
     */

    for (i = 0; i < NGX_HTTP_LOOM_CLUSTER_SLOTS; i++) {
        if (cl->map[i] != cl->old_map[i] && cl->inflight[i]) {
            (void) ngx_http_loom_cluster_freeze(cl, i);
        }
    }

    ngx_http_loom_cluster_gauges(cl);

    ngx_http_loom_cluster_channels_moved(cl);

    ngx_http_loom_cluster_kick(cl);

    /*
     * topics whose channel was lost are subscribed again, when the map
     * may say where now (those whose master's link comes back later are,
     * when it does)
     */

    if (cl->lost
        || ngx_memcmp(cl->map, cl->old_map, sizeof(cl->map)) != 0)
    {
        cl->lost = 0;
        st->handlers.ready(st->handlers.data);
    }
}


static ngx_uint_t
ngx_http_loom_cluster_degraded(ngx_http_loom_cluster_t *cl)
{
    ngx_uint_t  i;

    if (cl->nmasters == 0) {
        return 1;
    }

    for (i = 0; i < cl->nmasters; i++) {
        if (cl->masters[i]->command.rd.state != NGX_HTTP_LOOM_LINK_READY
            || cl->masters[i]->subscriber.rd.state
               != NGX_HTTP_LOOM_LINK_READY)
        {
            return 1;
        }
    }

    for (i = 0; i < NGX_HTTP_LOOM_CLUSTER_SLOTS; i++) {
        if (cl->map[i] == NGX_HTTP_LOOM_CLUSTER_NONE) {
            return 1;
        }
    }

    return 0;
}


/* the status page's link states: the worst of the masters' */

static void
ngx_http_loom_cluster_gauges(ngx_http_loom_cluster_t *cl)
{
    ngx_uint_t  i, c, s;

    c = cl->nmasters ? NGX_HTTP_LOOM_LINK_READY : NGX_HTTP_LOOM_LINK_DOWN;
    s = c;

    for (i = 0; i < cl->nmasters; i++) {
        c = ngx_min(c, cl->masters[i]->command.rd.state);
        s = ngx_min(s, cl->masters[i]->subscriber.rd.state);
    }

    if (cl->gauge_command) {
        *cl->gauge_command = c;
        *cl->gauge_subscriber = s;
    }
}


