/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_STORE_INT_H_INCLUDED_
#define _NGX_HTTP_LOOM_STORE_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_sentinel.h"


/* the store's insides, shared by its two files */


typedef struct {
    ngx_http_loom_store_call_t *call;           /* NULL: sent again */
    redisReply                 *reply;          /* the script's, kept */
} ngx_http_loom_store_wait_t;


typedef struct ngx_http_loom_cluster_s       ngx_http_loom_cluster_t;
typedef struct ngx_http_loom_batches_s       ngx_http_loom_batches_t;
typedef struct ngx_http_loom_cluster_node_s  ngx_http_loom_cluster_node_t;


/* slot: of the key the command or script names; script: WAIT behind */
typedef ngx_int_t (*ngx_http_loom_cluster_send_pt)(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t slot, ngx_uint_t script,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason);
/* a script without keys: on the master the cursor in argv[3] names */
typedef ngx_int_t (*ngx_http_loom_cluster_list_pt)(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason);


typedef struct {
    ngx_http_loom_redis_t       rd;
    ngx_http_loom_store_t      *store;
    ngx_uint_t                  handshake;      /* replies still due */
    ngx_http_loom_cluster_node_t *node;         /* in a cluster, or NULL */

    /* with loom_redis_wait: scripts whose WAIT is still due, in order */
    ngx_http_loom_store_wait_t *waits;
    ngx_uint_t                  waits_size;
    ngx_uint_t                  waits_head;
    ngx_uint_t                  nwaits;
} ngx_http_loom_store_link_t;


struct ngx_http_loom_store_s {
    ngx_http_loom_main_conf_t  *conf;
    ngx_http_loom_redis_conf_t  link_conf;

    ngx_http_loom_store_link_t  command;
    ngx_http_loom_store_link_t  subscriber;

    ngx_http_loom_store_handlers_t  handlers;

    /* with loom_redis_sentinel: where the master is now */
    ngx_http_loom_sentinel_t   *sentinel;
    ngx_http_loom_redis_conf_t  sentinel_conf;
    ngx_addr_t                  master;
    ngx_sockaddr_t              master_sockaddr;
    u_char                      master_text[NGX_SOCKADDR_STRLEN];

    ngx_str_t                   index;          /* Ptopics */
    ngx_str_t                   control;        /* Pctl */

    /* the scripts' texts: in a cluster, they publish with SPUBLISH */
    ngx_str_t                   scripts[NGX_HTTP_LOOM_SCRIPTS];
    u_char                      sha[NGX_HTTP_LOOM_SCRIPTS][41];

    /* with loom_redis_cluster: the nodes, the slot map, and the routes
       of commands (ngx_http_loom_store_route.c) */
    ngx_http_loom_cluster_t    *cluster;
    ngx_http_loom_cluster_send_pt  cluster_send;
    ngx_http_loom_cluster_list_pt  cluster_list;

    /* group commits (ngx_http_loom_store_batch.c), made on first use;
       flush sends the open group before anything else goes to Redis,
       drop answers what is not sent yet at exit */
    ngx_http_loom_batches_t    *batches;
    void                      (*flush)(ngx_http_loom_store_t *st);
    void                      (*drop)(ngx_http_loom_store_t *st);

    unsigned                    exiting:1;
};


/* ngx_http_loom_store_script.c */
/* ngx_http_loom_store_script() without sending the open group first */
ngx_int_t ngx_http_loom_store_script_send(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason);
/* AUTH, when configured; counted in link->handshake with a handler */
ngx_int_t ngx_http_loom_store_auth(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler);
/* a handshake reply: the link is ready after the last one */
void ngx_http_loom_store_handshake_reply(void *data, redisReply *reply);
ngx_int_t ngx_http_loom_store_scripts_init(ngx_http_loom_store_t *st,
    ngx_pool_t *pool);
/* queues SCRIPT LOAD of every script; returns how many */
ngx_uint_t ngx_http_loom_store_load_scripts(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler);
void ngx_http_loom_store_reloaded(void *data, redisReply *reply);
/* a script's answer, for its caller (through WAIT when it waits) */
void ngx_http_loom_store_replied(ngx_http_loom_store_link_t *link,
    ngx_http_loom_store_call_t *call, redisReply *reply);
/* queues WAIT behind the script just sent on the link */
void ngx_http_loom_store_wait(ngx_http_loom_store_link_t *link,
    ngx_http_loom_store_call_t *call);
/* the WAIT behind the script being answered now answers nothing */
void ngx_http_loom_store_wait_skip(ngx_http_loom_store_link_t *link,
    ngx_http_loom_store_call_t *call);
/* an EVALSHA command made EVAL with the script's text (ngx_alloc) */
char *ngx_http_loom_store_eval(ngx_http_loom_store_t *st, char *command,
    size_t len, size_t *out, ngx_log_t *log);
void ngx_http_loom_store_waits_free(ngx_http_loom_store_link_t *link);

/* ngx_http_loom_store_cluster.c */
ngx_int_t ngx_http_loom_cluster_init(ngx_http_loom_store_t *st,
    ngx_http_loom_worker_t *w);
void ngx_http_loom_cluster_exit(ngx_http_loom_store_t *st);
ngx_int_t ngx_http_loom_cluster_subscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel);
void ngx_http_loom_cluster_unsubscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel);


#endif /* _NGX_HTTP_LOOM_STORE_INT_H_INCLUDED_ */
