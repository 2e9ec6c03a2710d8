/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"


/*
 * The directives that say where Redis is and how acks wait for it:
 * loom_redis, loom_redis_sentinel, loom_redis_wait.  Names are resolved
 * here, once: nothing is looked up at run time.
 */


static ngx_int_t ngx_http_loom_parse_addrs(ngx_conf_t *cf, ngx_str_t *url,
    in_port_t port, char *directive, ngx_url_t *u);
static char *ngx_http_loom_redis_taken(ngx_http_loom_main_conf_t *lmcf,
    char *same);


/* where Redis is was said already: by which directive */

static char *
ngx_http_loom_redis_taken(ngx_http_loom_main_conf_t *lmcf, char *same)
{
    if (lmcf->redis_nsentinels) {
        return "cannot be used with \"loom_redis_sentinel\"";
    }

    if (lmcf->redis_cluster) {
        return "cannot be used with \"loom_redis_cluster\"";
    }

    return same ? same : "cannot be used with \"loom_redis\"";
}


/*
 * loom_redis_cluster host:port ...: seed nodes of a Redis Cluster, asked
 * for the slot map at run time; their names are resolved here
 */

char *
ngx_http_loom_redis_cluster(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_main_conf_t *lmcf = conf;

    u_char      *p;
    size_t       len;
    ngx_str_t   *value;
    ngx_url_t    u;
    ngx_uint_t   i, n;
    ngx_addr_t  *addrs;

    if (lmcf->redis.len) {
        return lmcf->redis_cluster ? "is duplicate"
                                   : ngx_http_loom_redis_taken(lmcf, NULL);
    }

    value = cf->args->elts;
    n = 0;
    len = sizeof("cluster") - 1;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_http_loom_parse_addrs(cf, &value[i], 6379,
                                      "loom_redis_cluster", &u)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        addrs = ngx_palloc(cf->pool, (n + u.naddrs) * sizeof(ngx_addr_t));
        if (addrs == NULL) {
            return NGX_CONF_ERROR;
        }

        if (n) {
            ngx_memcpy(addrs, lmcf->redis_addrs, n * sizeof(ngx_addr_t));
        }

        ngx_memcpy(addrs + n, u.addrs, u.naddrs * sizeof(ngx_addr_t));
        lmcf->redis_addrs = addrs;
        n += u.naddrs;
        len += 1 + value[i].len;
    }

    lmcf->redis_naddrs = n;
    lmcf->redis_cluster = 1;

    /* for the log and the status page: "cluster host:port ..." */

    lmcf->redis.data = ngx_pnalloc(cf->pool, len);
    if (lmcf->redis.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(lmcf->redis.data, "cluster", sizeof("cluster") - 1);

    for (i = 1; i < cf->args->nelts; i++) {
        *p++ = ' ';
        p = ngx_cpymem(p, value[i].data, value[i].len);
    }

    lmcf->redis.len = p - lmcf->redis.data;

    return NGX_CONF_OK;
}


char *
ngx_http_loom_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_main_conf_t *lmcf = conf;

    ngx_str_t  *value;

    if (lmcf->redis.len) {
        return ngx_http_loom_redis_taken(lmcf, "is duplicate");
    }

    value = cf->args->elts;
    lmcf->redis = value[1];

    if (ngx_http_loom_redis_address(cf, lmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* loom_redis_wait replicas [timeout] */

char *
ngx_http_loom_redis_wait(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_main_conf_t *lmcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_msec_t   t;

    if (lmcf->redis_wait) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n <= 0) {
        return "needs a number of replicas of 1 or more";
    }

    lmcf->redis_wait = n;

    if (cf->args->nelts == 3) {
        t = ngx_parse_time(&value[2], 0);
        if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
            return "has an invalid timeout";
        }

        lmcf->redis_wait_timeout = t;
    }

    return NGX_CONF_OK;
}


/*
 * loom_redis_sentinel host:port ... master=NAME [password=SECRET]: the
 * master is asked for at run time; the sentinels' names are resolved here
 */

char *
ngx_http_loom_redis_sentinel(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_main_conf_t *lmcf = conf;

    u_char      *p;
    ngx_str_t   *value;
    ngx_url_t    u;
    ngx_uint_t   i, n;
    ngx_addr_t  *addrs;

    if (lmcf->redis.len) {
        return lmcf->redis_nsentinels
               ? "is duplicate" : ngx_http_loom_redis_taken(lmcf, NULL);
    }

    value = cf->args->elts;
    n = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "master=", 7) == 0) {
            lmcf->redis_sentinel_master.data = value[i].data + 7;
            lmcf->redis_sentinel_master.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            lmcf->redis_sentinel_password.data = value[i].data + 9;
            lmcf->redis_sentinel_password.len = value[i].len - 9;
            continue;
        }

        if (ngx_http_loom_parse_addrs(cf, &value[i], 26379,
                                      "loom_redis_sentinel", &u)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        addrs = ngx_palloc(cf->pool,
                           (n + u.naddrs) * sizeof(ngx_addr_t));
        if (addrs == NULL) {
            return NGX_CONF_ERROR;
        }

        if (n) {
            ngx_memcpy(addrs, lmcf->redis_sentinels, n * sizeof(ngx_addr_t));
        }

        ngx_memcpy(addrs + n, u.addrs, u.naddrs * sizeof(ngx_addr_t));
        lmcf->redis_sentinels = addrs;
        n += u.naddrs;
    }

    if (lmcf->redis_sentinel_master.len == 0) {
        return "needs \"master=NAME\"";
    }

    if (n == 0) {
        return "needs the address of a sentinel";
    }

    lmcf->redis_nsentinels = n;

    /* for the log and the status page */

    lmcf->redis.len = sizeof("sentinel master ") - 1
                      + lmcf->redis_sentinel_master.len;
    lmcf->redis.data = ngx_pnalloc(cf->pool, lmcf->redis.len);
    if (lmcf->redis.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(lmcf->redis.data, "sentinel master ",
                   sizeof("sentinel master ") - 1);
    ngx_memcpy(p, lmcf->redis_sentinel_master.data,
               lmcf->redis_sentinel_master.len);

    return NGX_CONF_OK;
}


/*
 * "host:port", "[v6]:port", "unix:/path": names are resolved here, once,
 * and every address they have is kept; the links try them in turn
 */

ngx_int_t
ngx_http_loom_redis_address(ngx_conf_t *cf, ngx_http_loom_main_conf_t *lmcf)
{
    ngx_url_t  u;

    if (ngx_http_loom_parse_addrs(cf, &lmcf->redis, 6379, "loom_redis", &u)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    lmcf->redis_addrs = u.addrs;
    lmcf->redis_naddrs = u.naddrs;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_parse_addrs(ngx_conf_t *cf, ngx_str_t *url, in_port_t port,
    char *directive, ngx_url_t *u)
{
    ngx_memzero(u, sizeof(ngx_url_t));

    u->url = *url;
    u->default_port = port;

    if (ngx_parse_url(cf->pool, u) != NGX_OK || u->naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s in \"%V\" of the \"%s\" directive",
                           u->err ? u->err : "no address", &u->url,
                           directive);
        return NGX_ERROR;
    }

    return NGX_OK;
}
