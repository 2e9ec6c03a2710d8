/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_STORE_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_LOOM_STORE_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_store_int.h"
#include "ngx_http_loom_cluster.h"


/* the insides of the store's cluster mode, shared by its two files */


#define NGX_HTTP_LOOM_CLUSTER_NODES      64
#define NGX_HTTP_LOOM_CLUSTER_NONE       0xff
#define NGX_HTTP_LOOM_CLUSTER_RANGES     1024   /* in CLUSTER SLOTS */
#define NGX_HTTP_LOOM_CLUSTER_REDIRECTS  16
#define NGX_HTTP_LOOM_CLUSTER_REFRESH    5000   /* ms, when all is well */
#define NGX_HTTP_LOOM_CLUSTER_RECHECK    250    /* ms, when it is not */
#define NGX_HTTP_LOOM_CLUSTER_SOON       10     /* ms, after a change */
#define NGX_HTTP_LOOM_CLUSTER_RETRY      50     /* ms, TRYAGAIN */

#define NGX_HTTP_LOOM_CHANNEL_OFF        0
#define NGX_HTTP_LOOM_CHANNEL_PENDING    1
#define NGX_HTTP_LOOM_CHANNEL_ON         2


struct ngx_http_loom_cluster_node_s {
    ngx_uint_t                      index;
    ngx_http_loom_cluster_t        *cluster;
    ngx_addr_t                      addr;
    ngx_sockaddr_t                  sockaddr;
    u_char                          text[NGX_SOCKADDR_STRLEN];
    ngx_http_loom_redis_conf_t      conf;
    ngx_http_loom_store_link_t      command;
    ngx_http_loom_store_link_t      subscriber;
    ngx_uint_t                      first;        /* its lowest slot */
    unsigned                        master:1;     /* in the map */
};


/* a command sent in a cluster */
typedef struct {
    ngx_queue_t                     queue;        /* while frozen */
    ngx_http_loom_cluster_t        *cluster;
    ngx_http_loom_store_call_t     *call;
    ngx_http_loom_store_link_t     *link;         /* sent on */
    ngx_http_loom_cluster_node_t   *ask;          /* ASKING first, there */
    char                           *command;
    size_t                          len;
    ngx_uint_t                      slot;
    ngx_uint_t                      redirects;
    unsigned                        script:1;     /* WAIT behind it */
} ngx_http_loom_cluster_cmd_t;


/* a slot whose commands wait for the redirected ones */
typedef struct {
    ngx_queue_t                     queue;
    ngx_uint_t                      slot;
    ngx_queue_t                     bounced;      /* first */
    ngx_queue_t                     fresh;        /* then */
    ngx_msec_t                      until;        /* not before */
    ngx_msec_t                      deadline;     /* for the target */
} ngx_http_loom_cluster_frozen_t;


/* a sharded subscription */
typedef struct {
    ngx_str_node_t                  sn;
    ngx_queue_t                     queue;        /* while being dropped */
    ngx_uint_t                      slot;
    ngx_http_loom_cluster_node_t   *node;         /* where, or NULL */
    ngx_uint_t                      unsubscribes; /* confirmations due */
    unsigned                        state:2;
    unsigned                        retry:1;      /* at the new owner */
} ngx_http_loom_cluster_channel_t;


struct ngx_http_loom_cluster_s {
    ngx_http_loom_store_t          *store;
    ngx_log_t                      *log;
    ngx_pool_t                     *pool;

    ngx_http_loom_store_link_t      seed;
    ngx_http_loom_store_link_t     *asked;        /* for CLUSTER SLOTS */

    ngx_http_loom_cluster_node_t    nodes[NGX_HTTP_LOOM_CLUSTER_NODES];
    ngx_uint_t                      nnodes;
    ngx_http_loom_cluster_node_t   *masters[NGX_HTTP_LOOM_CLUSTER_NODES];
    ngx_uint_t                      nmasters;     /* by lowest slot */

    u_char                          map[NGX_HTTP_LOOM_CLUSTER_SLOTS];
    u_char                          old_map[NGX_HTTP_LOOM_CLUSTER_SLOTS];
    uint32_t                        inflight[NGX_HTTP_LOOM_CLUSTER_SLOTS];

    ngx_queue_t                     frozen;
    ngx_rbtree_t                    channels;
    ngx_rbtree_node_t               sentinel;

    ngx_event_t                     refresh;
    ngx_event_t                     kick;

    /* the node at host:port, a new one started (for redirections) */
    ngx_http_loom_cluster_node_t   *(*resolve)(ngx_http_loom_cluster_t *cl,
                                               ngx_str_t *host,
                                               in_port_t port);

    ngx_atomic_t                   *gauge_command;
    ngx_atomic_t                   *gauge_subscriber;
    ngx_atomic_t                   *reconnects;

    unsigned                        refreshing:1;
    unsigned                        lost:1;       /* channels, since the
                                                     last resubscribe */
    unsigned                        again:1;
};





/* the master of a slot, or NULL */

static ngx_inline ngx_http_loom_cluster_node_t *
ngx_http_loom_cluster_owner(ngx_http_loom_cluster_t *cl, ngx_uint_t slot)
{
    if (cl->map[slot] == NGX_HTTP_LOOM_CLUSTER_NONE) {
        return NULL;
    }

    return &cl->nodes[cl->map[slot]];
}


/* the slot map is read again soon (after the one being read, if any) */

static ngx_inline void
ngx_http_loom_cluster_refresh_soon(ngx_http_loom_cluster_t *cl)
{
    if (cl->refreshing) {
        cl->again = 1;
        return;
    }

    ngx_add_timer(&cl->refresh, NGX_HTTP_LOOM_CLUSTER_SOON);
}


/* ngx_http_loom_store_route.c: commands */
ngx_int_t ngx_http_loom_cluster_send(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t slot, ngx_uint_t script,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason);
ngx_int_t ngx_http_loom_cluster_list(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason);
/* frozen slots whose earlier commands are all answered go out again */
void ngx_http_loom_cluster_kick(ngx_http_loom_cluster_t *cl);
void ngx_http_loom_cluster_kick_handler(ngx_event_t *ev);
/* the caller gets no reply: storage unavailable */
void ngx_http_loom_cluster_fail(ngx_http_loom_cluster_cmd_t *cc);
/* the slot's new commands wait behind those due: NGX_ERROR: no memory */
ngx_int_t ngx_http_loom_cluster_freeze(ngx_http_loom_cluster_t *cl,
    ngx_uint_t slot);

/* ngx_http_loom_store_shard.c: sharded subscriptions */
void ngx_http_loom_cluster_push(ngx_http_loom_redis_t *rd,
    redisReply *reply);
/* a master's subscriber link went down: its channels are lost */
void ngx_http_loom_cluster_channels_down(ngx_http_loom_cluster_t *cl,
    ngx_http_loom_cluster_node_t *node);
/* after the map was read: redirected subscriptions at the new owner */
void ngx_http_loom_cluster_channels_moved(ngx_http_loom_cluster_t *cl);


#endif /* _NGX_HTTP_LOOM_STORE_CLUSTER_H_INCLUDED_ */
