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
 * a command goes to the master of its slot.
 *
 * A redirected command (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) "freezes" its
 * slot: the slot's commands that are still answered elsewhere come back
 * first, then the redirected ones are sent again in the order they were
 * first sent, then those that came meanwhile.  So the commands of one
 * topic keep their order across a move.
 *
 * Subscriptions are sharded (SSUBSCRIBE) at the master of the channel's
 * slot; the control channel is a plain one, subscribed on every master's
 * link (PUBLISH reaches every node of a cluster).  A node that loses a
 * slot pushes "sunsubscribe": the topic is told its channel was lost, and
 * it is subscribed again at the new owner after the map is read again.
 */


static void ngx_http_loom_cluster_seed_connected(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_changed(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_command_down(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_cluster_subscriber_down(ngx_http_loom_redis_t *rd);
static ngx_http_loom_cluster_node_t *ngx_http_loom_cluster_node(
    ngx_http_loom_cluster_t *cl, ngx_str_t *host, in_port_t port);
static void ngx_http_loom_cluster_link_init(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_store_link_t *link, ngx_http_loom_redis_conf_t *conf,
    ngx_str_t *server);
static void ngx_http_loom_cluster_refresh_handler(ngx_event_t *ev);
static void ngx_http_loom_cluster_slots_reply(void *data, redisReply *reply);
static void ngx_http_loom_cluster_apply(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_cluster_range_t *ranges, ngx_uint_t n);
static ngx_uint_t ngx_http_loom_cluster_degraded(ngx_http_loom_cluster_t *cl);
static void ngx_http_loom_cluster_gauges(ngx_http_loom_cluster_t *cl);
static ngx_http_loom_cluster_frozen_t *ngx_http_loom_cluster_frozen(
    ngx_http_loom_cluster_t *cl, ngx_uint_t slot, ngx_uint_t create);
static ngx_int_t ngx_http_loom_cluster_dispatch(
    ngx_http_loom_cluster_cmd_t *cc, const char **reason);
static void ngx_http_loom_cluster_reply(void *data, redisReply *reply);
static ngx_int_t ngx_http_loom_cluster_redirected(
    ngx_http_loom_cluster_cmd_t *cc, redisReply *reply);
static void ngx_http_loom_cluster_fail(ngx_http_loom_cluster_cmd_t *cc);
static void ngx_http_loom_cluster_kick(ngx_http_loom_cluster_t *cl);
static void ngx_http_loom_cluster_kick_handler(ngx_event_t *ev);


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
    node->command.rd.connected = ngx_http_loom_store_command_connected;
    node->command.rd.down = ngx_http_loom_cluster_command_down;

    ngx_http_loom_cluster_link_init(cl, &node->subscriber, &node->conf,
                                    &node->addr.name);
    node->subscriber.node = node;
    node->subscriber.rd.name = "subscriber";
    node->subscriber.rd.pubsub = 1;
    node->subscriber.rd.connected = ngx_http_loom_store_subscriber_connected;
    node->subscriber.rd.down = ngx_http_loom_cluster_subscriber_down;
    node->subscriber.rd.push = ngx_http_loom_cluster_push;

    ngx_log_error(NGX_LOG_INFO, cl->log, 0,
                  "loom: redis cluster node %V", &node->addr.name);

    ngx_http_loom_redis_connect(&node->command.rd);
    ngx_http_loom_redis_connect(&node->subscriber.rd);

    return node;
}


void
ngx_http_loom_cluster_refresh_soon(ngx_http_loom_cluster_t *cl)
{
    if (cl->refreshing) {
        cl->again = 1;
        return;
    }

    ngx_add_timer(&cl->refresh, NGX_HTTP_LOOM_CLUSTER_SOON);
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

    ngx_http_loom_cluster_gauges(cl);

    ngx_http_loom_cluster_channels_moved(cl);

    ngx_http_loom_cluster_kick(cl);

    /* topics whose channel was lost are subscribed again */
    st->handlers.ready(st->handlers.data);
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


ngx_http_loom_cluster_node_t *
ngx_http_loom_cluster_owner(ngx_http_loom_cluster_t *cl, ngx_uint_t slot)
{
    if (cl->map[slot] == NGX_HTTP_LOOM_CLUSTER_NONE) {
        return NULL;
    }

    return &cl->nodes[cl->map[slot]];
}


static ngx_http_loom_cluster_frozen_t *
ngx_http_loom_cluster_frozen(ngx_http_loom_cluster_t *cl, ngx_uint_t slot,
    ngx_uint_t create)
{
    ngx_queue_t                     *q;
    ngx_http_loom_cluster_frozen_t  *f;

    for (q = ngx_queue_head(&cl->frozen);
         q != ngx_queue_sentinel(&cl->frozen);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_http_loom_cluster_frozen_t, queue);

        if (f->slot == slot) {
            return f;
        }
    }

    if (!create) {
        return NULL;
    }

    f = ngx_alloc(sizeof(ngx_http_loom_cluster_frozen_t), cl->log);
    if (f == NULL) {
        return NULL;
    }

    f->slot = slot;
    ngx_queue_init(&f->bounced);
    ngx_queue_init(&f->fresh);
    f->until = ngx_current_msec;
    f->deadline = ngx_current_msec + cl->store->conf->redis_timeout;
    ngx_queue_insert_tail(&cl->frozen, &f->queue);

    return f;
}


ngx_int_t
ngx_http_loom_cluster_send(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t slot, ngx_uint_t script,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    int                              len;
    char                            *cmd;
    ngx_int_t                        rc;
    ngx_http_loom_cluster_t         *cl;
    ngx_http_loom_cluster_cmd_t     *cc;
    ngx_http_loom_cluster_frozen_t  *f;

    cl = st->cluster;

    f = ngx_http_loom_cluster_frozen(cl, slot, 0);

    if (f == NULL && ngx_http_loom_cluster_owner(cl, slot) == NULL) {
        *reason = cl->nmasters ? "no redis master for the topic's slot"
                               : "not connected to redis";
        return NGX_DECLINED;
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    cc = ngx_alloc(sizeof(ngx_http_loom_cluster_cmd_t), cl->log);
    if (cc == NULL) {
        redisFreeCommand(cmd);
        *reason = "out of memory";
        return NGX_ERROR;
    }

    cc->cluster = cl;
    cc->call = call;
    cc->link = NULL;
    cc->ask = NULL;
    cc->command = cmd;
    cc->len = len;
    cc->slot = slot;
    cc->redirects = 0;
    cc->script = script;

    if (f) {
        /* behind the slot's redirected commands */
        ngx_queue_insert_tail(&f->fresh, &cc->queue);
        return NGX_OK;
    }

    rc = ngx_http_loom_cluster_dispatch(cc, reason);

    if (rc != NGX_OK) {
        ngx_free(cc);
    }

    return rc;
}


/*
 * listTopics: argv[3] (after EVALSHA, sha, 0) is the cursor, "<scan
 * cursor> * 1024 + <master>"; the script gets the scan cursor, and after
 * its own arguments, the master's number and the next master's (0 after
 * the last)
 */

ngx_int_t
ngx_http_loom_cluster_list(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    int                       i;
    u_char                    scan[NGX_INT64_LEN], me[NGX_INT_T_LEN];
    u_char                    next[NGX_INT_T_LEN];
    size_t                    lens[16];
    uint64_t                  c;
    ngx_uint_t                m;
    const char               *args[16];
    ngx_http_loom_cluster_t  *cl;

    cl = st->cluster;

    if (argc < 4 || argc + 2 > 16) {
        *reason = "bad listTopics arguments";
        return NGX_ERROR;
    }

    c = 0;

    for (i = 0; i < (int) argvlen[3]; i++) {
        c = c * 10 + (argv[3][i] - '0');
    }

    m = c % 1024;
    c /= 1024;

    if (m >= cl->nmasters) {
        *reason = cl->nmasters ? "the cluster changed during listTopics"
                               : "not connected to redis";
        return NGX_DECLINED;
    }

    for (i = 0; i < argc; i++) {
        args[i] = argv[i];
        lens[i] = argvlen[i];
    }

    args[3] = (char *) scan;
    lens[3] = ngx_sprintf(scan, "%uL", c) - scan;
    args[argc] = (char *) me;
    lens[argc] = ngx_sprintf(me, "%ui", m) - me;
    args[argc + 1] = (char *) next;
    lens[argc + 1] = ngx_sprintf(next, "%ui",
                                 m + 1 < cl->nmasters ? m + 1 : 0) - next;

    return ngx_http_loom_cluster_send(st, call, cl->masters[m]->first, 0,
                                      argc + 2, args, lens, reason);
}


static ngx_int_t
ngx_http_loom_cluster_dispatch(ngx_http_loom_cluster_cmd_t *cc,
    const char **reason)
{
    ngx_int_t                      rc;
    const char                    *argv[1];
    size_t                         argvlen[1];
    ngx_http_loom_cluster_t       *cl;
    ngx_http_loom_store_link_t    *link;
    ngx_http_loom_cluster_node_t  *node;

    cl = cc->cluster;

    node = cc->ask ? cc->ask : ngx_http_loom_cluster_owner(cl, cc->slot);

    if (node == NULL) {
        *reason = "no redis master for the topic's slot";
        goto refused;
    }

    link = &node->command;

    if (link->rd.state != NGX_HTTP_LOOM_LINK_READY) {
        *reason = "not connected to redis";
        goto refused;
    }

    if (cc->ask) {
        argv[0] = "ASKING";
        argvlen[0] = 6;

        rc = ngx_http_loom_redis_send(&link->rd, 1, argv, argvlen, NULL,
                                      NULL, 0, reason);
        if (rc != NGX_OK) {
            goto failed;
        }
    }

    rc = ngx_http_loom_redis_send_formatted(&link->rd, cc->command, cc->len,
                                            ngx_http_loom_cluster_reply, cc,
                                            1, reason);
    if (rc != NGX_OK) {
        /* the command was freed */
        cc->command = NULL;
        return rc;
    }

    cc->link = link;
    cl->inflight[cc->slot]++;

    cc->call->durable = 0;
    cc->call->unconfirmed = 0;

    if (cc->script && cl->store->conf->redis_wait && !cc->call->ephemeral) {
        ngx_http_loom_store_wait(link, cc->call);
    }

    return NGX_OK;

refused:

    rc = NGX_DECLINED;

failed:

    redisFreeCommand(cc->command);
    cc->command = NULL;

    return rc;
}


static void
ngx_http_loom_cluster_reply(void *data, redisReply *reply)
{
    ngx_uint_t                    slot;
    ngx_http_loom_cluster_t      *cl;
    ngx_http_loom_store_link_t   *link;
    ngx_http_loom_store_call_t   *call;
    ngx_http_loom_cluster_cmd_t  *cc;

    cc = data;
    cl = cc->cluster;
    link = cc->link;
    call = cc->call;
    slot = cc->slot;

    cl->inflight[slot]--;

    if (reply && reply->type == REDIS_REPLY_ERROR
        && ngx_http_loom_cluster_redirected(cc, reply) == NGX_OK)
    {
        return;
    }

    ngx_free(cc);

    ngx_http_loom_store_replied(link, call, reply);

    if (cl->inflight[slot] == 0 && !ngx_queue_empty(&cl->frozen)) {
        ngx_http_loom_cluster_kick(cl);
    }
}


/*
 * NGX_OK: the command is sent again (or waits to be); NGX_DECLINED: the
 * error is the caller's
 */

static ngx_int_t
ngx_http_loom_cluster_redirected(ngx_http_loom_cluster_cmd_t *cc,
    redisReply *reply)
{
    char                              *cmd;
    size_t                             len;
    const char                        *reason;
    ngx_http_loom_cluster_t           *cl;
    ngx_http_loom_redis_cmd_t         *current;
    ngx_http_loom_store_link_t        *link;
    ngx_http_loom_cluster_node_t      *node;
    ngx_http_loom_cluster_frozen_t    *f;
    ngx_http_loom_cluster_redirect_t   rd;

    cl = cc->cluster;
    link = cc->link;

    current = ngx_http_loom_redis_current(&link->rd);

    if (current == NULL || current->command == NULL) {
        return NGX_DECLINED;
    }

    if (cc->script && reply->len > 8
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the node lost its scripts: once with the text, on that node */

        cmd = ngx_http_loom_store_eval(cl->store, current->command,
                                       current->len, &len, &link->rd.log);
        if (cmd == NULL) {
            return NGX_DECLINED;
        }

        ngx_http_loom_store_wait_skip(link, cc->call);

        cc->command = cmd;
        cc->len = len;
        cc->ask = NULL;

        if (ngx_http_loom_cluster_dispatch(cc, &reason) != NGX_OK) {
            ngx_free(cc);
            return NGX_DECLINED;
        }

        (void) ngx_http_loom_store_load_scripts(link,
                                                ngx_http_loom_store_reloaded);
        return NGX_OK;
    }

    if (ngx_http_loom_cluster_redirect((u_char *) reply->str, reply->len,
                                       &rd)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (++cc->redirects > NGX_HTTP_LOOM_CLUSTER_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, &link->rd.log, 0,
                      "loom: redis redirected a command more than %d "
                      "times, last: %*s", NGX_HTTP_LOOM_CLUSTER_REDIRECTS,
                      (size_t) reply->len, reply->str);
        return NGX_DECLINED;
    }

    f = ngx_http_loom_cluster_frozen(cl, cc->slot, 1);
    if (f == NULL) {
        return NGX_DECLINED;
    }

    /* the command is ours again; the WAIT behind it answers nothing */

    current->command = NULL;
    ngx_http_loom_store_wait_skip(link, cc->call);

    cc->ask = NULL;

    switch (rd.kind) {

    case NGX_HTTP_LOOM_CLUSTER_MOVED:
        node = ngx_http_loom_cluster_node(cl, &rd.host, rd.port);

        if (node) {
            cl->map[rd.slot] = (u_char) node->index;
        }

        ngx_http_loom_cluster_refresh_soon(cl);
        break;

    case NGX_HTTP_LOOM_CLUSTER_ASK:
        cc->ask = ngx_http_loom_cluster_node(cl, &rd.host, rd.port);
        break;

    case NGX_HTTP_LOOM_CLUSTER_DOWN:
        ngx_http_loom_cluster_refresh_soon(cl);
        /* fall through */

    default: /* TRYAGAIN */
        f->until = ngx_current_msec + NGX_HTTP_LOOM_CLUSTER_RETRY;
        break;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, cl->log, 0,
                   "loom: slot %ui redirected (%ui): %*s", cc->slot,
                   rd.kind, (size_t) reply->len, reply->str);

    ngx_queue_insert_tail(&f->bounced, &cc->queue);

    if (cl->inflight[cc->slot] == 0) {
        ngx_add_timer(&cl->kick, 1);
    }

    return NGX_OK;
}


static void
ngx_http_loom_cluster_fail(ngx_http_loom_cluster_cmd_t *cc)
{
    ngx_http_loom_store_call_t  *call;

    call = cc->call;

    if (cc->command) {
        redisFreeCommand(cc->command);
    }

    ngx_free(cc);

    call->handler(call, NULL);
}


/* frozen slots whose earlier commands are all answered are sent again */

static void
ngx_http_loom_cluster_kick(ngx_http_loom_cluster_t *cl)
{
    ngx_msec_t                       wait;
    ngx_queue_t                     *q, *next, *fq;
    const char                      *reason;
    ngx_http_loom_cluster_cmd_t     *cc;
    ngx_http_loom_cluster_node_t    *node;
    ngx_http_loom_cluster_frozen_t  *f;

    wait = 0;

    for (q = ngx_queue_head(&cl->frozen);
         q != ngx_queue_sentinel(&cl->frozen);
         q = next)
    {
        next = ngx_queue_next(q);
        f = ngx_queue_data(q, ngx_http_loom_cluster_frozen_t, queue);

        if (cl->inflight[f->slot]) {
            continue;
        }

        if ((ngx_msec_int_t) (f->until - ngx_current_msec) > 0) {
            wait = NGX_HTTP_LOOM_CLUSTER_RETRY;
            continue;
        }

        for ( ;; ) {
            fq = !ngx_queue_empty(&f->bounced) ? &f->bounced : &f->fresh;

            if (ngx_queue_empty(fq)) {
                break;
            }

            cc = ngx_queue_data(ngx_queue_head(fq),
                                ngx_http_loom_cluster_cmd_t, queue);

            node = cc->ask ? cc->ask
                           : ngx_http_loom_cluster_owner(cl, cc->slot);

            if (node && node->command.rd.state != NGX_HTTP_LOOM_LINK_READY
                && (ngx_msec_int_t) (f->deadline - ngx_current_msec) > 0)
            {
                /* the new owner's link is on its way */
                wait = NGX_HTTP_LOOM_CLUSTER_RETRY;
                break;
            }

            ngx_queue_remove(&cc->queue);

            if (ngx_http_loom_cluster_dispatch(cc, &reason) != NGX_OK) {
                ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                              "loom: a redirected command failed: %s",
                              reason);
                ngx_http_loom_cluster_fail(cc);
            }
        }

        if (ngx_queue_empty(&f->bounced) && ngx_queue_empty(&f->fresh)) {
            ngx_queue_remove(&f->queue);
            ngx_free(f);
        }
    }

    if (wait && !cl->kick.timer_set) {
        ngx_add_timer(&cl->kick, wait);
    }
}


static void
ngx_http_loom_cluster_kick_handler(ngx_event_t *ev)
{
    ngx_http_loom_cluster_t  *cl;

    cl = ev->data;

    if (!cl->store->exiting) {
        ngx_http_loom_cluster_kick(cl);
    }
}
