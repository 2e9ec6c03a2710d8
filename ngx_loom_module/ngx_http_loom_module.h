/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_MODULE_H_INCLUDED_
#define _NGX_HTTP_LOOM_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_keyfile.h"
#include "ngx_http_loom_jwt.h"


#define NGX_HTTP_LOOM_VERSION  "0.1.0"


typedef struct ngx_http_loom_worker_s   ngx_http_loom_worker_t;
typedef struct ngx_http_loom_session_s  ngx_http_loom_session_t;
typedef struct ngx_http_loom_topic_s    ngx_http_loom_topic_t;
typedef struct ngx_http_loom_store_s    ngx_http_loom_store_t;
typedef struct ngx_http_loom_shm_s      ngx_http_loom_shm_t;
typedef struct ngx_http_loom_stats_s    ngx_http_loom_stats_t;
typedef struct ngx_http_loom_claims_s   ngx_http_loom_claims_t;


typedef struct {
    ngx_str_t                   redis;            /* as configured */
    ngx_addr_t                 *redis_addrs;      /* resolved at start */
    ngx_uint_t                  redis_naddrs;
    ngx_addr_t                 *redis_sentinels;  /* or these */
    ngx_uint_t                  redis_nsentinels;
    ngx_str_t                   redis_sentinel_master;
    ngx_str_t                   redis_sentinel_password;
    ngx_uint_t                  redis_cluster;    /* redis_addrs: seeds */
    ngx_str_t                   redis_user;
    ngx_str_t                   redis_password;
    ngx_int_t                   redis_db;
    ngx_str_t                   redis_prefix;
    ngx_msec_t                  redis_connect_timeout;
    ngx_msec_t                  redis_timeout;
    ngx_msec_t                  redis_ping_interval;
    ngx_uint_t                  redis_max_pending;
    size_t                      redis_max_buffered;
    ngx_uint_t                  redis_wait;       /* replicas, 0: off */
    ngx_msec_t                  redis_wait_timeout;

    size_t                      zone_size;
    ngx_shm_zone_t             *shm_zone;

    ngx_uint_t                  topic_cache;

    /* ClientIds unique across the nodes (ngx_http_loom_clientid.c) */
    ngx_flag_t                  client_id_claim;
    ngx_msec_t                  client_id_claim_ttl;
    ngx_msec_t                  client_id_claim_refresh;

    /* revisions: retention defaults and history limits */
    ngx_uint_t                  history;
    time_t                      history_max_age;
    ngx_uint_t                  history_limit;
    ngx_uint_t                  history_page;

    /* topic schemas (ngx_http_loom_schemas.c) */
    size_t                      schema_max_size;
    ngx_uint_t                  schema_max_depth;
    ngx_uint_t                  schema_max_subschemas;
    ngx_uint_t                  schema_max_errors;
    ngx_uint_t                  schema_versions;
    ngx_uint_t                  schema_compatibility;
    ngx_flag_t                  schema_format;

    ngx_flag_t                  used;             /* some location has loom */
    ngx_http_loom_worker_t     *worker;           /* this process's state */
} ngx_http_loom_main_conf_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_flag_t                  status;
    ngx_flag_t                  keep_request;

    ngx_array_t                *api_keys;         /* of ngx_str_t */
    ngx_http_loom_keyfile_t    *auth_file;        /* loom_auth_file */
    ngx_http_loom_jwt_conf_t   *jwt;              /* loom_jwt */
    time_t                      jwt_leeway;

    size_t                      max_message_size;
    size_t                      max_send_queue;
    ngx_uint_t                  max_inflight;
    ngx_uint_t                  max_subscriptions;
    size_t                      max_topic_length;
    ngx_uint_t                  max_json_depth;

    ngx_msec_t                  ping_interval;
    ngx_msec_t                  idle_timeout;
    ngx_msec_t                  close_timeout;

    ngx_msec_t                  http_heartbeat;   /* loom_http's streams */
} ngx_http_loom_loc_conf_t;


struct ngx_http_loom_worker_s {
    ngx_cycle_t                *cycle;
    ngx_log_t                  *log;
    ngx_http_loom_main_conf_t  *conf;
    ngx_http_loom_shm_t        *shm;
    ngx_http_loom_stats_t      *stats;            /* this worker's slot */
    ngx_http_loom_store_t      *store;
    ngx_http_loom_claims_t     *claims;           /* NULL: not claimed */

    /* topics known to this worker: subscribed here, or schema cached */
    ngx_rbtree_t                topics;
    ngx_rbtree_node_t           topics_sentinel;
    ngx_queue_t                 idle_topics;      /* least recent first */
    ngx_uint_t                  nidle;

    /* in a cluster: channels whose master's link was not up, tried again */
    ngx_event_t                 resubscribe;

    /* one receive buffer for every session of the worker */
    u_char                     *recv_buf;
    size_t                      recv_size;

    /* decoded strings of the request being handled */
    u_char                     *scratch;
    size_t                      scratch_size;

    uint64_t                    seed[2];          /* for ids and tags */
};


/* ngx_http_loom_worker.c */
ngx_http_loom_worker_t *ngx_http_loom_get_worker(void);
void ngx_http_loom_random_id(ngx_http_loom_worker_t *w, u_char *buf);
uint64_t ngx_http_loom_usec(void);

#define NGX_HTTP_LOOM_ID_LEN     36   /* a UUID in text */

/* ngx_http_loom_handshake.c */
ngx_int_t ngx_http_loom_handshake_handler(ngx_http_request_t *r);

/* ngx_http_loom_auth.c */
/* what the credential allows lives in pool: the connection's or request's */
ngx_int_t ngx_http_loom_auth_check(ngx_http_request_t *r,
    ngx_http_loom_loc_conf_t *llcf, ngx_pool_t *pool, void **access);
ngx_int_t ngx_http_loom_auth_client_id(ngx_http_loom_session_t *s,
    ngx_str_t **value, char **text);
void ngx_http_loom_auth_start(ngx_http_loom_session_t *s);
char *ngx_http_loom_auth_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_loom_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_loom_redis_conf.c */
char *ngx_http_loom_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_loom_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_loom_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_loom_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_loom_redis_address(ngx_conf_t *cf,
    ngx_http_loom_main_conf_t *lmcf);

/* ngx_http_loom_http.c */
char *ngx_http_loom_http(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_loom_process.c */
ngx_int_t ngx_http_loom_init_process(ngx_cycle_t *cycle);
void ngx_http_loom_exit_process(ngx_cycle_t *cycle);

/* ngx_http_loom_metrics.c */
ngx_int_t ngx_http_loom_metrics_handler(ngx_http_request_t *r);

/* ngx_http_loom_status.c */
ngx_int_t ngx_http_loom_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_loom_status_send(ngx_http_request_t *r, ngx_buf_t *b,
    char *type);


extern ngx_module_t  ngx_http_loom_module;


#endif /* _NGX_HTTP_LOOM_MODULE_H_INCLUDED_ */
