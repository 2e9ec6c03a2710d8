/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_sentinel.h"


static void ngx_http_loom_sentinel_connected(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_sentinel_auth_reply(void *data, redisReply *reply);
static void ngx_http_loom_sentinel_master_reply(void *data,
    redisReply *reply);
static void ngx_http_loom_sentinel_subscribed(void *data, redisReply *reply);
static void ngx_http_loom_sentinel_push(ngx_http_loom_redis_t *rd,
    redisReply *reply);
static void ngx_http_loom_sentinel_set(ngx_http_loom_sentinel_t *sn,
    u_char *ip, size_t iplen, u_char *port, size_t portlen);


#define NGX_HTTP_LOOM_SWITCH_MASTER  "+switch-master"


void
ngx_http_loom_sentinel_init(ngx_http_loom_sentinel_t *sn,
    ngx_http_loom_redis_conf_t *conf, ngx_str_t *master_name,
    ngx_str_t *password, ngx_str_t *server, ngx_log_t *log)
{
    ngx_http_loom_redis_init(&sn->rd, conf, log);

    sn->rd.server = server;

    sn->master_name = *master_name;
    sn->password = *password;

    sn->rd.name = "sentinel";
    sn->rd.data = sn;
    sn->rd.connected = ngx_http_loom_sentinel_connected;
    sn->rd.push = ngx_http_loom_sentinel_push;

    ngx_http_loom_redis_connect(&sn->rd);
}


void
ngx_http_loom_sentinel_close(ngx_http_loom_sentinel_t *sn)
{
    ngx_http_loom_redis_close(&sn->rd);
}


/*
 * What was reached is not the master: the sentinels are asked again on a
 * new connection (a subscribed connection cannot ask)
 */

void
ngx_http_loom_sentinel_refresh(ngx_http_loom_sentinel_t *sn)
{
    if (sn->rd.state != NGX_HTTP_LOOM_LINK_DOWN) {
        ngx_http_loom_redis_fail(&sn->rd, NULL);
    }
}


static void
ngx_http_loom_sentinel_connected(ngx_http_loom_redis_t *rd)
{
    size_t                     argvlen[3];
    const char                *argv[3], *reason;
    ngx_http_loom_sentinel_t  *sn;

    sn = rd->data;

    /* replies in order until +switch-master is subscribed */
    rd->pubsub = 0;

    if (sn->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (char *) sn->password.data;
        argvlen[1] = sn->password.len;

        if (ngx_http_loom_redis_send(rd, 2, argv, argvlen,
                                     ngx_http_loom_sentinel_auth_reply, sn, 0,
                                     &reason)
            != NGX_OK)
        {
            goto failed;
        }
    }

    argv[0] = "SENTINEL";
    argvlen[0] = 8;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = sizeof("get-master-addr-by-name") - 1;
    argv[2] = (char *) sn->master_name.data;
    argvlen[2] = sn->master_name.len;

    if (ngx_http_loom_redis_send(rd, 3, argv, argvlen,
                                 ngx_http_loom_sentinel_master_reply, sn, 0,
                                 &reason)
        != NGX_OK)
    {
        goto failed;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = NGX_HTTP_LOOM_SWITCH_MASTER;
    argvlen[1] = sizeof(NGX_HTTP_LOOM_SWITCH_MASTER) - 1;

    if (ngx_http_loom_redis_send(rd, 2, argv, argvlen,
                                 ngx_http_loom_sentinel_subscribed, sn, 0,
                                 &reason)
        == NGX_OK)
    {
        return;
    }

failed:

    ngx_http_loom_redis_fail(rd, "cannot queue the sentinel handshake");
}


static void
ngx_http_loom_sentinel_auth_reply(void *data, redisReply *reply)
{
    ngx_http_loom_sentinel_t  *sn;

    sn = data;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &sn->rd.log, 0,
                      "loom: the sentinel refused AUTH: %*s",
                      (size_t) reply->len, reply->str);
        ngx_http_loom_redis_fail(&sn->rd, NULL);
    }
}


static void
ngx_http_loom_sentinel_master_reply(void *data, redisReply *reply)
{
    redisReply                *ip, *port;
    ngx_http_loom_sentinel_t  *sn;

    sn = data;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, &sn->rd.log, 0,
                      "loom: the sentinel knows no master \"%V\"%s%*s",
                      &sn->master_name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      (size_t) (reply->type == REDIS_REPLY_ERROR
                                ? reply->len : 0),
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");

        /* the next sentinel is asked after the backoff */
        ngx_http_loom_redis_fail(&sn->rd, NULL);
        return;
    }

    ip = reply->element[0];
    port = reply->element[1];

    ngx_http_loom_sentinel_set(sn, (u_char *) ip->str, ip->len,
                               (u_char *) port->str, port->len);
}


static void
ngx_http_loom_sentinel_subscribed(void *data, redisReply *reply)
{
    ngx_http_loom_sentinel_t  *sn;

    sn = data;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_ERR, &sn->rd.log, 0,
                      "loom: the sentinel refused SUBSCRIBE");
        ngx_http_loom_redis_fail(&sn->rd, NULL);
        return;
    }

    /* from here on, what comes are messages */

    sn->rd.pubsub = 1;
    ngx_http_loom_redis_ready(&sn->rd);
}


/* "+switch-master": "<name> <old ip> <old port> <new ip> <new port>" */

static void
ngx_http_loom_sentinel_push(ngx_http_loom_redis_t *rd, redisReply *reply)
{
    u_char                    *p, *last, *field[5];
    size_t                     len[5];
    ngx_uint_t                 i;
    redisReply                *payload;
    ngx_http_loom_sentinel_t  *sn;

    sn = rd->data;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &rd->log, 0,
                      "loom: the sentinel answered \"%*s\"",
                      (size_t) reply->len, reply->str);
        ngx_http_loom_redis_fail(rd, NULL);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len != 7
        || ngx_strncmp(reply->element[0]->str, "message", 7) != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    payload = reply->element[2];
    p = (u_char *) payload->str;
    last = p + payload->len;

    for (i = 0; i < 5; i++) {
        while (p < last && *p == ' ') {
            p++;
        }

        field[i] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[i] = p - field[i];

        if (len[i] == 0) {
            return;
        }
    }

    if (len[0] != sn->master_name.len
        || ngx_strncmp(field[0], sn->master_name.data, len[0]) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, &rd->log, 0,
                  "loom: the sentinels moved master \"%V\" to %*s:%*s",
                  &sn->master_name, len[3], field[3], len[4], field[4]);

    ngx_http_loom_sentinel_set(sn, field[3], len[3], field[4], len[4]);
}


static void
ngx_http_loom_sentinel_set(ngx_http_loom_sentinel_t *sn, u_char *ip,
    size_t iplen, u_char *port, size_t portlen)
{
    ngx_int_t        n;
    in_addr_t        in;
    socklen_t        socklen;
    ngx_sockaddr_t   sa;

    n = ngx_atoi(port, portlen);

    if (n < 1 || n > 65535) {
        goto invalid;
    }

    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    in = ngx_inet_addr(ip, iplen);

    if (in != INADDR_NONE) {
        sa.sockaddr_in.sin_family = AF_INET;
        sa.sockaddr_in.sin_addr.s_addr = in;
        socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(ip, iplen,
                              sa.sockaddr_in6.sin6_addr.s6_addr)
               == NGX_OK)
    {
        sa.sockaddr_in6.sin6_family = AF_INET6;
        socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        goto invalid;
    }

    ngx_inet_set_port(&sa.sockaddr, (in_port_t) n);

    if (sn->known
        && ngx_cmp_sockaddr(&sa.sockaddr, socklen, sn->master.sockaddr,
                            sn->master.socklen, 1)
           == NGX_OK)
    {
        return;
    }

    sn->sockaddr = sa;
    sn->master.sockaddr = &sn->sockaddr.sockaddr;
    sn->master.socklen = socklen;
    sn->master.name.data = sn->text;
    sn->master.name.len = ngx_sock_ntop(sn->master.sockaddr, socklen,
                                        sn->text, NGX_SOCKADDR_STRLEN, 1);
    sn->known = 1;

    ngx_log_error(NGX_LOG_INFO, &sn->rd.log, 0,
                  "loom: master \"%V\" is at %V",
                  &sn->master_name, &sn->master.name);

    sn->handler(sn->data, &sn->master);

    return;

invalid:

    ngx_log_error(NGX_LOG_ERR, &sn->rd.log, 0,
                  "loom: the sentinel gave an invalid address \"%*s:%*s\"",
                  iplen, ip, portlen, port);
}
