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


typedef struct {
    ngx_http_loom_redis_t       rd;
    ngx_http_loom_store_t      *store;
    ngx_uint_t                  handshake;      /* replies still due */
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

    u_char                      sha[NGX_HTTP_LOOM_SCRIPTS][41];

    /* with loom_redis_wait: scripts whose WAIT is still due, in order */
    ngx_http_loom_store_wait_t *waits;
    ngx_uint_t                  waits_size;
    ngx_uint_t                  waits_head;
    ngx_uint_t                  nwaits;

    unsigned                    exiting:1;
};


/* ngx_http_loom_store_script.c */
void ngx_http_loom_store_scripts_init(ngx_http_loom_store_t *st);
/* queues SCRIPT LOAD of every script; returns how many */
ngx_uint_t ngx_http_loom_store_load_scripts(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler);
void ngx_http_loom_store_waits_free(ngx_http_loom_store_t *st);


#endif /* _NGX_HTTP_LOOM_STORE_INT_H_INCLUDED_ */
