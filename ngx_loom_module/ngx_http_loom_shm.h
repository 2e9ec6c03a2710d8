/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SHM_H_INCLUDED_
#define _NGX_HTTP_LOOM_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"


/*
 * The shared zone: what one node knows across its workers.
 *
 *   - the ClientIds connected to this node, so a second connection with
 *     the same id is refused on every worker;
 *   - the subscriptions per topic and worker (fan-out itself is local to
 *     each worker; this is the node-wide view for the status page);
 *   - each worker's counters.
 *
 * Every entry carries the pid of the worker that made it.  A worker that
 * starts removes the entries of workers that are gone (killed, crashed),
 * and a timer repeats that check, so the zone never keeps a dead
 * connection's ClientId or subscription.
 */


/* latency histograms: bucket bounds in microseconds, then +Inf */

#define NGX_HTTP_LOOM_HIST_BUCKETS  14

typedef struct {
    ngx_atomic_t                bucket[NGX_HTTP_LOOM_HIST_BUCKETS + 1];
    ngx_atomic_t                sum;              /* microseconds */
    ngx_atomic_t                count;
} ngx_http_loom_hist_t;


/* answers by code, for the metrics: 400 403 409 4xx 500 5xx */

#define NGX_HTTP_LOOM_CODES  6


struct ngx_http_loom_stats_s {
    ngx_atomic_t                pid;
    ngx_atomic_t                worker;           /* ngx_worker */

    /* gauges */
    ngx_atomic_t                connections;
    ngx_atomic_t                redis_command;    /* link state */
    ngx_atomic_t                redis_subscriber;
    ngx_atomic_t                subscriptions;
    ngx_atomic_t                channels;         /* topics subscribed */
    ngx_atomic_t                requests;         /* waiting for an answer */

    /* counters, kept over worker restarts */
    ngx_atomic_t                connections_total;
    ngx_atomic_t                messages;
    ngx_atomic_t                publishes;
    ngx_atomic_t                sends;
    ngx_atomic_t                deliveries;
    ngx_atomic_t                rejected;
    ngx_atomic_t                errors;
    ngx_atomic_t                slow_consumers;
    ngx_atomic_t                protocol_errors;
    ngx_atomic_t                redis_reconnects;

    ngx_atomic_t                codes[NGX_HTTP_LOOM_CODES];

    ngx_http_loom_hist_t        publish_ack;      /* publish -> ack */
};


/* a ClientId, or a topic's subscriber count in one worker */

typedef struct {
    ngx_rbtree_node_t           node;             /* key: hash of data */
    ngx_pid_t                   pid;
    ngx_uint_t                  count;            /* topics: subscribers */
    size_t                      len;
    u_char                      data[1];
} ngx_http_loom_shm_node_t;


typedef struct {
    ngx_rbtree_t                clients;
    ngx_rbtree_node_t           clients_sentinel;
    ngx_rbtree_t                topics;
    ngx_rbtree_node_t           topics_sentinel;

    /* random, once per zone: names this node in Redis (ClientId claims) */
    u_char                      node[16];

    ngx_http_loom_stats_t       retired;          /* of workers gone */
    ngx_http_loom_stats_t       workers[NGX_MAX_PROCESSES];
} ngx_http_loom_shctx_t;


struct ngx_http_loom_shm_s {
    ngx_http_loom_shctx_t      *sh;
    ngx_slab_pool_t            *shpool;
    ngx_http_loom_stats_t      *stats;            /* this worker's */
    ngx_event_t                 sweep;            /* per worker */
    unsigned                    full_logged:1;
};


ngx_int_t ngx_http_loom_shm_configure(ngx_conf_t *cf,
    ngx_shm_zone_t *shm_zone);
ngx_int_t ngx_http_loom_shm_init_worker(ngx_http_loom_worker_t *w,
    ngx_shm_zone_t *shm_zone);
void ngx_http_loom_shm_exit_worker(ngx_http_loom_worker_t *w);

/* NGX_OK, NGX_DECLINED when the id is in use, NGX_ERROR when full */
ngx_int_t ngx_http_loom_shm_client_add(ngx_http_loom_shm_t *shm,
    ngx_str_t *id, ngx_log_t *log);
void ngx_http_loom_shm_client_del(ngx_http_loom_shm_t *shm, ngx_str_t *id);

void ngx_http_loom_shm_stats_add(ngx_http_loom_stats_t *to,
    ngx_http_loom_stats_t *from);
void ngx_http_loom_shm_count_answer(ngx_http_loom_stats_t *st,
    ngx_uint_t code);
extern ngx_uint_t  ngx_http_loom_codes[NGX_HTTP_LOOM_CODES];
void ngx_http_loom_shm_hist_add(ngx_http_loom_hist_t *to,
    ngx_http_loom_hist_t *from);

/* a latency in microseconds into a histogram of this worker */
void ngx_http_loom_shm_observe(ngx_http_loom_hist_t *h, ngx_msec_int_t usec);
extern ngx_msec_int_t  ngx_http_loom_hist_bounds[NGX_HTTP_LOOM_HIST_BUCKETS];

/* count this worker's subscribers of a topic up or down */
void ngx_http_loom_shm_subscribers(ngx_http_loom_shm_t *shm,
    ngx_str_t *topic, ngx_int_t delta, ngx_log_t *log);


#endif /* _NGX_HTTP_LOOM_SHM_H_INCLUDED_ */
