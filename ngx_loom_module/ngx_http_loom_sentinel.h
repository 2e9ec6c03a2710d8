/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SENTINEL_H_INCLUDED_
#define _NGX_HTTP_LOOM_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_redis.h"


/*
 * Redis Sentinel: one link per worker to one of the sentinels (the next
 * one when it fails) asks for the master's address
 * (SENTINEL get-master-addr-by-name), then stays subscribed to
 * +switch-master to follow failovers.  Whoever uses the master is told
 * through a handler; when it finds that what it reached is not a master
 * after all (ROLE), it asks for a fresh answer with ..._refresh().
 */


typedef struct ngx_http_loom_sentinel_s  ngx_http_loom_sentinel_t;

/* the master's address changed (or is known for the first time) */
typedef void (*ngx_http_loom_sentinel_pt)(void *data, ngx_addr_t *master);


struct ngx_http_loom_sentinel_s {
    ngx_http_loom_redis_t        rd;
    ngx_str_t                    master_name;
    ngx_str_t                    password;

    ngx_addr_t                   master;
    ngx_sockaddr_t               sockaddr;
    u_char                       text[NGX_SOCKADDR_STRLEN];
    unsigned                     known:1;

    ngx_http_loom_sentinel_pt    handler;
    void                        *data;
};


/* handler and data are set before; the first sentinel is asked at once */
void ngx_http_loom_sentinel_init(ngx_http_loom_sentinel_t *sn,
    ngx_http_loom_redis_conf_t *conf, ngx_str_t *master_name,
    ngx_str_t *password, ngx_str_t *server, ngx_log_t *log);
void ngx_http_loom_sentinel_refresh(ngx_http_loom_sentinel_t *sn);
void ngx_http_loom_sentinel_close(ngx_http_loom_sentinel_t *sn);


#endif /* _NGX_HTTP_LOOM_SENTINEL_H_INCLUDED_ */
