/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_schemas.h"


static ngx_int_t ngx_http_loom_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_loom_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_loom_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_loom_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_loom_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_loom(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_loom_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_loom_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_loom_api_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);



static ngx_conf_num_bounds_t  ngx_http_loom_db_bounds = {
    ngx_conf_check_num_bounds, 0, 65535
};

static ngx_conf_num_bounds_t  ngx_http_loom_positive_bounds = {
    ngx_conf_check_num_bounds, 1, 1048576
};

static ngx_conf_num_bounds_t  ngx_http_loom_depth_bounds = {
    ngx_conf_check_num_bounds, 2, 512
};

static ngx_conf_num_bounds_t  ngx_http_loom_schema_depth_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_LOOM_JSCHEMA_MAX_EVAL_DEPTH / 2
};


static ngx_command_t  ngx_http_loom_commands[] = {

    { ngx_string("loom"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_loom,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_http"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_loom_http,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_loom_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_loom_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_loom_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_redis_sentinel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_loom_redis_sentinel,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_redis_cluster"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_loom_redis_cluster,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_redis_user"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_user),
      NULL },

    { ngx_string("loom_redis_password"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_password),
      NULL },

    { ngx_string("loom_redis_db"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_db),
      &ngx_http_loom_db_bounds },

    { ngx_string("loom_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_prefix),
      NULL },

    { ngx_string("loom_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_connect_timeout),
      NULL },

    { ngx_string("loom_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("loom_redis_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_ping_interval),
      NULL },

    { ngx_string("loom_redis_max_buffered"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_max_buffered),
      NULL },

    { ngx_string("loom_redis_wait"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_loom_redis_wait,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_redis_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, redis_max_pending),
      &ngx_http_loom_positive_bounds },

    { ngx_string("loom_zone_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, zone_size),
      NULL },

    { ngx_string("loom_topic_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, topic_cache),
      NULL },

    { ngx_string("loom_client_id_claim"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, client_id_claim),
      NULL },

    { ngx_string("loom_client_id_claim_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, client_id_claim_ttl),
      NULL },

    { ngx_string("loom_client_id_claim_refresh"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, client_id_claim_refresh),
      NULL },

    { ngx_string("loom_history"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, history),
      NULL },

    { ngx_string("loom_history_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, history_max_age),
      NULL },

    { ngx_string("loom_history_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, history_limit),
      NULL },

    { ngx_string("loom_history_page"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, history_page),
      &ngx_http_loom_positive_bounds },

    /* topic schemas (ngx_http_loom_schemas.c) */

    { ngx_string("loom_schema_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_max_size),
      NULL },

    { ngx_string("loom_schema_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_max_depth),
      &ngx_http_loom_schema_depth_bounds },

    { ngx_string("loom_schema_max_subschemas"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_max_subschemas),
      &ngx_http_loom_positive_bounds },

    { ngx_string("loom_schema_max_errors"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_max_errors),
      &ngx_http_loom_positive_bounds },

    { ngx_string("loom_schema_versions"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_versions),
      &ngx_http_loom_positive_bounds },

    { ngx_string("loom_schema_compatibility"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_compatibility),
      &ngx_http_loom_schema_modes },

    { ngx_string("loom_schema_format"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_loom_main_conf_t, schema_format),
      NULL },

    { ngx_string("loom_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_loom_api_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* ngx_http_loom_auth.c */
    { ngx_string("loom_auth_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_loom_auth_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_jwt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_loom_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loom_keep_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, keep_request),
      NULL },

    { ngx_string("loom_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, max_message_size),
      NULL },

    { ngx_string("loom_max_send_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, max_send_queue),
      NULL },

    { ngx_string("loom_max_inflight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, max_inflight),
      &ngx_http_loom_positive_bounds },

    { ngx_string("loom_max_subscriptions"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, max_subscriptions),
      &ngx_http_loom_positive_bounds },

    { ngx_string("loom_max_topic_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, max_topic_length),
      NULL },

    { ngx_string("loom_max_json_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, max_json_depth),
      &ngx_http_loom_depth_bounds },

    { ngx_string("loom_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, ping_interval),
      NULL },

    { ngx_string("loom_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, idle_timeout),
      NULL },

    { ngx_string("loom_close_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loom_loc_conf_t, close_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_loom_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_loom_postconfiguration,       /* postconfiguration */

    ngx_http_loom_create_main_conf,        /* create main configuration */
    ngx_http_loom_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_loom_create_loc_conf,         /* create location configuration */
    ngx_http_loom_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_loom_module = {
    NGX_MODULE_V1,
    &ngx_http_loom_module_ctx,             /* module context */
    ngx_http_loom_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_loom_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_loom_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_loom_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_loom_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_loom_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lmcf->redis = { 0, NULL };
     *     lmcf->redis_addrs = NULL;
     *     lmcf->redis_naddrs = 0;
     *     lmcf->redis_user = { 0, NULL };
     *     lmcf->redis_password = { 0, NULL };
     *     lmcf->redis_prefix = { 0, NULL };
     *     lmcf->shm_zone = NULL;
     *     lmcf->used = 0;
     *     lmcf->worker = NULL;
     */

    lmcf->redis_db = NGX_CONF_UNSET;
    lmcf->redis_connect_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->redis_ping_interval = NGX_CONF_UNSET_MSEC;
    lmcf->redis_max_pending = NGX_CONF_UNSET_UINT;
    lmcf->redis_max_buffered = NGX_CONF_UNSET_SIZE;
    lmcf->redis_wait_timeout = NGX_CONF_UNSET_MSEC;
    lmcf->zone_size = NGX_CONF_UNSET_SIZE;
    lmcf->topic_cache = NGX_CONF_UNSET_UINT;
    lmcf->client_id_claim = NGX_CONF_UNSET;
    lmcf->client_id_claim_ttl = NGX_CONF_UNSET_MSEC;
    lmcf->client_id_claim_refresh = NGX_CONF_UNSET_MSEC;
    lmcf->history = NGX_CONF_UNSET_UINT;
    lmcf->history_max_age = NGX_CONF_UNSET;
    lmcf->history_limit = NGX_CONF_UNSET_UINT;
    lmcf->history_page = NGX_CONF_UNSET_UINT;
    lmcf->schema_max_size = NGX_CONF_UNSET_SIZE;
    lmcf->schema_max_depth = NGX_CONF_UNSET_UINT;
    lmcf->schema_max_subschemas = NGX_CONF_UNSET_UINT;
    lmcf->schema_max_errors = NGX_CONF_UNSET_UINT;
    lmcf->schema_versions = NGX_CONF_UNSET_UINT;
    lmcf->schema_compatibility = NGX_CONF_UNSET_UINT;
    lmcf->schema_format = NGX_CONF_UNSET;

    return lmcf;
}


static char *
ngx_http_loom_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_loom_main_conf_t *lmcf = conf;

    size_t     min;
    ngx_str_t  name = ngx_string("loom");

    if (lmcf->redis.len == 0 && lmcf->redis_nsentinels == 0) {
        ngx_str_set(&lmcf->redis, "127.0.0.1:6379");

        if (ngx_http_loom_redis_address(cf, lmcf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (lmcf->redis_user.len && lmcf->redis_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_redis_user\" needs "
                           "\"loom_redis_password\"");
        return NGX_CONF_ERROR;
    }

    if (lmcf->redis_prefix.data == NULL) {
        ngx_str_set(&lmcf->redis_prefix, "loom:");
    }

    ngx_conf_init_value(lmcf->redis_db, 0);

    if (lmcf->redis_cluster && lmcf->redis_db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_redis_db\" cannot be used with "
                           "\"loom_redis_cluster\": a cluster has only "
                           "database 0");
        return NGX_CONF_ERROR;
    }
    ngx_conf_init_msec_value(lmcf->redis_connect_timeout, 2000);
    ngx_conf_init_msec_value(lmcf->redis_timeout, 5000);
    ngx_conf_init_msec_value(lmcf->redis_ping_interval, 10000);
    ngx_conf_init_uint_value(lmcf->redis_max_pending, 65536);
    ngx_conf_init_size_value(lmcf->redis_max_buffered, 8 * 1024 * 1024);
    ngx_conf_init_msec_value(lmcf->redis_wait_timeout, 1000);
    ngx_conf_init_size_value(lmcf->zone_size, 16 * 1024 * 1024);
    ngx_conf_init_uint_value(lmcf->topic_cache, 4096);
    ngx_conf_init_uint_value(lmcf->history, 1000);
    ngx_conf_init_value(lmcf->history_max_age, 0);
    ngx_conf_init_uint_value(lmcf->history_limit, 1000000);
    ngx_conf_init_uint_value(lmcf->history_page, 1000);
    ngx_conf_init_size_value(lmcf->schema_max_size, 64 * 1024);
    ngx_conf_init_uint_value(lmcf->schema_max_depth,
                             NGX_HTTP_LOOM_JSCHEMA_MAX_DEPTH);
    ngx_conf_init_uint_value(lmcf->schema_max_subschemas,
                             NGX_HTTP_LOOM_JSCHEMA_MAX_SUBSCHEMAS);
    ngx_conf_init_uint_value(lmcf->schema_max_errors, 10);
    ngx_conf_init_uint_value(lmcf->schema_versions, 10);
    ngx_conf_init_uint_value(lmcf->schema_compatibility,
                             NGX_HTTP_LOOM_COMPAT_NONE);
    ngx_conf_init_value(lmcf->schema_format, 0);

    /* off: a single node, or nodes whose ClientIds may overlap, as before */
    ngx_conf_init_value(lmcf->client_id_claim, 0);
    ngx_conf_init_msec_value(lmcf->client_id_claim_ttl, 30000);
    ngx_conf_init_msec_value(lmcf->client_id_claim_refresh,
                             lmcf->client_id_claim_ttl / 3);

    if (lmcf->client_id_claim_refresh == 0
        || lmcf->client_id_claim_refresh >= lmcf->client_id_claim_ttl)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_client_id_claim_refresh\" %M must be "
                           "above 0 and below \"loom_client_id_claim_ttl\" "
                           "%M", lmcf->client_id_claim_refresh,
                           lmcf->client_id_claim_ttl);
        return NGX_CONF_ERROR;
    }

    if (lmcf->history > lmcf->history_limit) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_history\" %ui is above "
                           "\"loom_history_limit\" %ui",
                           lmcf->history, lmcf->history_limit);
        return NGX_CONF_ERROR;
    }

    /* the counters of every possible worker slot, and room for entries */

    min = ngx_align(sizeof(ngx_http_loom_shctx_t), ngx_pagesize)
          + 16 * ngx_pagesize;

    if (lmcf->zone_size < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_zone_size\" of %uz is too small, "
                           "it must be at least %uz", lmcf->zone_size, min);
        return NGX_CONF_ERROR;
    }

    if (!lmcf->used) {
        return NGX_CONF_OK;
    }

    lmcf->shm_zone = ngx_shared_memory_add(cf, &name, lmcf->zone_size,
                                           &ngx_http_loom_module);
    if (lmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_loom_shm_configure(cf, lmcf->shm_zone) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_loom_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_loom_loc_conf_t  *llcf;

    llcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_loom_loc_conf_t));
    if (llcf == NULL) {
        return NULL;
    }

    llcf->enable = NGX_CONF_UNSET;
    llcf->status = NGX_CONF_UNSET;
    llcf->keep_request = NGX_CONF_UNSET;
    llcf->api_keys = NGX_CONF_UNSET_PTR;
    llcf->auth_file = NGX_CONF_UNSET_PTR;
    llcf->jwt = NGX_CONF_UNSET_PTR;
    llcf->max_message_size = NGX_CONF_UNSET_SIZE;
    llcf->max_send_queue = NGX_CONF_UNSET_SIZE;
    llcf->max_inflight = NGX_CONF_UNSET_UINT;
    llcf->max_subscriptions = NGX_CONF_UNSET_UINT;
    llcf->max_topic_length = NGX_CONF_UNSET_SIZE;
    llcf->max_json_depth = NGX_CONF_UNSET_UINT;
    llcf->ping_interval = NGX_CONF_UNSET_MSEC;
    llcf->idle_timeout = NGX_CONF_UNSET_MSEC;
    llcf->close_timeout = NGX_CONF_UNSET_MSEC;

    return llcf;
}


static char *
ngx_http_loom_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_loom_loc_conf_t *prev = parent;
    ngx_http_loom_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->status, prev->status, 0);
    ngx_conf_merge_value(conf->keep_request, prev->keep_request, 1);
    ngx_conf_merge_ptr_value(conf->api_keys, prev->api_keys, NULL);
    ngx_conf_merge_ptr_value(conf->auth_file, prev->auth_file, NULL);

    if (conf->jwt == NGX_CONF_UNSET_PTR) {
        conf->jwt = prev->jwt;
        conf->jwt_leeway = prev->jwt_leeway;
    }

    if (conf->jwt == NGX_CONF_UNSET_PTR) {
        conf->jwt = NULL;
        conf->jwt_leeway = 0;
    }

    ngx_conf_merge_size_value(conf->max_message_size,
                              prev->max_message_size, 1024 * 1024);
    ngx_conf_merge_size_value(conf->max_send_queue,
                              prev->max_send_queue, 4 * 1024 * 1024);
    ngx_conf_merge_uint_value(conf->max_inflight, prev->max_inflight, 128);
    ngx_conf_merge_uint_value(conf->max_subscriptions,
                              prev->max_subscriptions, 1024);
    ngx_conf_merge_size_value(conf->max_topic_length,
                              prev->max_topic_length, 256);
    ngx_conf_merge_uint_value(conf->max_json_depth,
                              prev->max_json_depth, 32);
    ngx_conf_merge_msec_value(conf->ping_interval, prev->ping_interval,
                              30000);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout,
                              75000);
    ngx_conf_merge_msec_value(conf->close_timeout, prev->close_timeout,
                              5000);

    if (conf->max_message_size < 128) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_max_message_size\" must be at least 128");
        return NGX_CONF_ERROR;
    }

    if (conf->max_topic_length == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loom_max_topic_length\" must not be zero");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_loom_postconfiguration(ngx_conf_t *cf)
{
    return NGX_OK;
}


static char *
ngx_http_loom(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_loc_conf_t *llcf = conf;

    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_loom_main_conf_t  *lmcf;

    if (llcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    llcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_loom_handshake_handler;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_loom_module);
    lmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_loom_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_loom_metrics_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_loom_metrics_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_loom_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_loc_conf_t *llcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (llcf->status != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    llcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_loom_status_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_loom_api_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_loc_conf_t *llcf = conf;

    ngx_str_t   *value, *key;
    ngx_uint_t   i;

    if (llcf->api_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        llcf->api_keys = NULL;
        return NGX_CONF_OK;
    }

    llcf->api_keys = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                      sizeof(ngx_str_t));
    if (llcf->api_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            return "has an empty key";
        }

        key = ngx_array_push(llcf->api_keys);
        if (key == NULL) {
            return NGX_CONF_ERROR;
        }

        *key = value[i];
    }

    return NGX_CONF_OK;
}
