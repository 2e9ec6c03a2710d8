/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_int.h"
#include "ngx_http_loom_shm.h"


/*
 * The worker's links to Redis: their handshakes, what the subscriber link
 * hears, and with sentinels, where the master is.
 */


static void ngx_http_loom_store_command_connected(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_store_subscriber_connected(
    ngx_http_loom_redis_t *rd);
static void ngx_http_loom_store_subscriber_down(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_store_push(ngx_http_loom_redis_t *rd,
    redisReply *reply);
static ngx_uint_t ngx_http_loom_store_is(redisReply *r, char *s, size_t len);
static ngx_int_t ngx_http_loom_store_role(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler);
static void ngx_http_loom_store_role_reply(void *data, redisReply *reply);
static ngx_uint_t ngx_http_loom_store_not_master(
    ngx_http_loom_store_link_t *link, redisReply *reply);
static void ngx_http_loom_store_master(void *data, ngx_addr_t *master);


ngx_int_t
ngx_http_loom_store_init(ngx_http_loom_worker_t *w,
    ngx_http_loom_store_handlers_t *handlers)
{
    ngx_str_t                  *prefix;
    ngx_uint_t                  i;
    ngx_http_loom_store_t      *st;
    ngx_http_loom_redis_conf_t *lc;
    ngx_http_loom_store_link_t *link;
    ngx_http_loom_main_conf_t  *conf;

    conf = w->conf;

    st = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_loom_store_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    st->conf = conf;
    st->handlers = *handlers;
    w->store = st;

    prefix = &conf->redis_prefix;

    st->index.len = prefix->len + sizeof("topics") - 1;
    st->index.data = ngx_pnalloc(w->cycle->pool, st->index.len);
    st->control.len = prefix->len + sizeof("ctl") - 1;
    st->control.data = ngx_pnalloc(w->cycle->pool, st->control.len);

    if (st->index.data == NULL || st->control.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(st->index.data, prefix->data, prefix->len),
               "topics", sizeof("topics") - 1);
    ngx_memcpy(ngx_cpymem(st->control.data, prefix->data, prefix->len),
               "ctl", sizeof("ctl") - 1);


    lc = &st->link_conf;
    lc->addrs = conf->redis_addrs;
    lc->naddrs = conf->redis_naddrs;

    if (conf->redis_nsentinels) {
        /* the links connect once the sentinels have told where */
        lc->addrs = &st->master;
        lc->naddrs = 1;
    }
    lc->connect_timeout = conf->redis_connect_timeout;
    lc->timeout = conf->redis_timeout;
    lc->ping_interval = conf->redis_ping_interval;
    lc->max_buffered = conf->redis_max_buffered;
    lc->max_pending = conf->redis_max_pending;

    if (conf->redis_cluster) {
        return ngx_http_loom_cluster_init(st, w);
    }

    if (ngx_http_loom_store_scripts_init(st, w->cycle->pool) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < 2; i++) {
        link = (i == 0) ? &st->command : &st->subscriber;

        ngx_http_loom_redis_init(&link->rd, lc, w->log);

        link->store = st;
        link->rd.data = link;
        link->rd.server = &conf->redis;

        if (w->stats) {
            link->rd.reconnects = &w->stats->redis_reconnects;
            link->rd.gauge = (i == 0) ? &w->stats->redis_command
                                      : &w->stats->redis_subscriber;
        }

        if (i == 0) {
            link->rd.name = "command";
            link->rd.connected = ngx_http_loom_store_command_connected;

        } else {
            link->rd.name = "subscriber";
            link->rd.pubsub = 1;
            link->rd.connected = ngx_http_loom_store_subscriber_connected;
            link->rd.down = ngx_http_loom_store_subscriber_down;
            link->rd.push = ngx_http_loom_store_push;
        }

        if (conf->redis_nsentinels == 0) {
            ngx_http_loom_redis_connect(&link->rd);
        }
    }

    if (conf->redis_nsentinels) {
        st->sentinel = ngx_pcalloc(w->cycle->pool,
                                   sizeof(ngx_http_loom_sentinel_t));
        if (st->sentinel == NULL) {
            return NGX_ERROR;
        }

        st->sentinel_conf = *lc;
        st->sentinel_conf.addrs = conf->redis_sentinels;
        st->sentinel_conf.naddrs = conf->redis_nsentinels;

        st->sentinel->handler = ngx_http_loom_store_master;
        st->sentinel->data = st;

        ngx_http_loom_sentinel_init(st->sentinel, &st->sentinel_conf,
                                    &conf->redis_sentinel_master,
                                    &conf->redis_sentinel_password,
                                    &conf->redis, w->log);
    }

    return NGX_OK;
}


/*
 * The sentinels name the master (first, or after a failover): links that
 * are up or on their way are dropped and connect to it after their
 * backoff; links that never started, start
 */

static void
ngx_http_loom_store_master(void *data, ngx_addr_t *master)
{
    ngx_uint_t                   i;
    ngx_http_loom_store_t       *st;
    ngx_http_loom_store_link_t  *link;

    st = data;

    ngx_memcpy(&st->master_sockaddr, master->sockaddr, master->socklen);
    st->master.sockaddr = &st->master_sockaddr.sockaddr;
    st->master.socklen = master->socklen;
    st->master.name.data = st->master_text;
    st->master.name.len = master->name.len;
    ngx_memcpy(st->master_text, master->name.data, master->name.len);

    for (i = 0; i < 2; i++) {
        link = (i == 0) ? &st->command : &st->subscriber;

        if (link->rd.state != NGX_HTTP_LOOM_LINK_DOWN) {
            ngx_http_loom_redis_fail(&link->rd, "the master moved");

        } else if (!link->rd.timer.timer_set) {
            ngx_http_loom_redis_connect(&link->rd);
        }
    }
}


/* with sentinels: what the link reached must be the master */

static ngx_int_t
ngx_http_loom_store_role(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler)
{
    const char  *argv[1], *reason;
    size_t       argvlen[1];

    if (link->store->sentinel == NULL) {
        return NGX_OK;
    }

    argv[0] = "ROLE";
    argvlen[0] = 4;

    if (ngx_http_loom_redis_send(&link->rd, 1, argv, argvlen, handler, link,
                                 0, &reason)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (handler) {
        link->handshake++;
    }

    return NGX_OK;
}


static void
ngx_http_loom_store_role_reply(void *data, redisReply *reply)
{
    ngx_http_loom_store_link_t  *link;

    link = data;

    if (reply == NULL || ngx_http_loom_store_not_master(link, reply)) {
        return;
    }

    ngx_http_loom_store_handshake_reply(data, reply);
}


/* a ROLE reply that is not "master": the sentinels are asked again */

static ngx_uint_t
ngx_http_loom_store_not_master(ngx_http_loom_store_link_t *link,
    redisReply *reply)
{
    redisReply  *role;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        role = reply->element[0];

        if (ngx_http_loom_store_is(role, "master", 6)) {
            return 0;
        }

        ngx_log_error(NGX_LOG_ERR, &link->rd.log, 0,
                      "loom: %V is not the master but a %*s",
                      &link->store->master.name,
                      (size_t) (role->type == REDIS_REPLY_STRING
                                ? role->len : 0),
                      role->type == REDIS_REPLY_STRING ? role->str : "");

    } else {
        ngx_log_error(NGX_LOG_ERR, &link->rd.log, 0,
                      "loom: ROLE failed on %V", &link->store->master.name);
    }

    ngx_http_loom_redis_fail(&link->rd, NULL);
    ngx_http_loom_sentinel_refresh(link->store->sentinel);

    return 1;
}


void
ngx_http_loom_store_exit(ngx_http_loom_worker_t *w)
{
    ngx_http_loom_store_t  *st;

    st = w->store;

    if (st == NULL) {
        return;
    }

    st->exiting = 1;

    /* the group commit not sent yet is answered as a lost link's are */

    if (st->drop) {
        st->drop(st);
    }

    if (st->cluster) {
        ngx_http_loom_cluster_exit(st);
        w->store = NULL;
        return;
    }

    ngx_http_loom_redis_close(&st->command.rd);
    ngx_http_loom_redis_close(&st->subscriber.rd);

    if (st->sentinel) {
        ngx_http_loom_sentinel_close(st->sentinel);
    }

    ngx_http_loom_store_waits_free(&st->command);

    w->store = NULL;
}


static void
ngx_http_loom_store_command_connected(ngx_http_loom_redis_t *rd)
{
    u_char                      db[NGX_INT_T_LEN];
    size_t                      argvlen[2];
    const char                 *argv[2], *reason;
    ngx_http_loom_store_link_t *link;
    ngx_http_loom_main_conf_t  *conf;

    link = rd->data;
    conf = link->store->conf;
    link->handshake = 0;

    if (ngx_http_loom_store_auth(link, ngx_http_loom_store_handshake_reply)
        != NGX_OK
        || ngx_http_loom_store_role(link, ngx_http_loom_store_role_reply)
           != NGX_OK)
    {
        goto failed;
    }

    if (conf->redis_db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", conf->redis_db) - db;

        if (ngx_http_loom_redis_send(rd, 2, argv, argvlen,
                                     ngx_http_loom_store_handshake_reply,
                                     link, 0, &reason)
            != NGX_OK)
        {
            goto failed;
        }

        link->handshake++;
    }

    link->handshake += ngx_http_loom_store_load_scripts(link,
                                         ngx_http_loom_store_handshake_reply);
    return;

failed:

    ngx_http_loom_redis_fail(rd, "cannot queue the handshake");
}


static void
ngx_http_loom_store_subscriber_connected(ngx_http_loom_redis_t *rd)
{
    size_t                       argvlen[2];
    const char                  *argv[2], *reason;
    ngx_http_loom_store_t       *st;
    ngx_http_loom_store_link_t  *link;

    link = rd->data;
    st = link->store;
    link->handshake = 0;

    /* the AUTH reply comes to the push handler: an error drops the link */

    if (ngx_http_loom_store_auth(link, NULL) != NGX_OK
        || ngx_http_loom_store_role(link, NULL) != NGX_OK)
    {
        goto failed;
    }

    /*
     * The control channel stays subscribed for the life of the link, so
     * the link is in the subscribed state from here on.  Its confirmation
     * ends the handshake.
     */

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = (char *) st->control.data;
    argvlen[1] = st->control.len;

    if (ngx_http_loom_redis_send(rd, 2, argv, argvlen, NULL, NULL, 0,
                                 &reason)
        == NGX_OK)
    {
        return;
    }

failed:

    ngx_http_loom_redis_fail(rd, "cannot queue the handshake");
}


static void
ngx_http_loom_store_subscriber_down(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_store_link_t  *link;

    link = rd->data;

    if (!link->store->exiting) {
        link->store->handlers.lost(link->store->handlers.data);
    }
}


static ngx_uint_t
ngx_http_loom_store_is(redisReply *r, char *s, size_t len)
{
    return r->type == REDIS_REPLY_STRING && r->len == len
           && ngx_strncmp(r->str, s, len) == 0;
}


static void
ngx_http_loom_store_push(ngx_http_loom_redis_t *rd, redisReply *reply)
{
    redisReply                      *kind, *channel, *payload;
    ngx_str_t                        ch, data;
    ngx_http_loom_store_t           *st;
    ngx_http_loom_store_link_t      *link;
    ngx_http_loom_store_handlers_t  *h;

    link = rd->data;
    st = link->store;
    h = &st->handlers;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &rd->log, 0,
                      "loom: redis answered \"%*s\"",
                      (size_t) reply->len, reply->str);
        ngx_http_loom_redis_fail(rd, NULL);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        /* +OK of AUTH, +PONG before the link is subscribed */
        return;
    }

    kind = reply->element[0];
    channel = reply->element[1];

    if (st->sentinel && rd->state == NGX_HTTP_LOOM_LINK_HANDSHAKE
        && !ngx_http_loom_store_is(kind, "subscribe", 9))
    {
        /* the answer to ROLE */
        (void) ngx_http_loom_store_not_master(link, reply);
        return;
    }

    if (channel->type != REDIS_REPLY_STRING) {
        return;
    }

    ch.data = (u_char *) channel->str;
    ch.len = channel->len;

    if (ngx_http_loom_store_is(kind, "message", 7)) {

        payload = reply->elements > 2 ? reply->element[2] : NULL;

        if (payload == NULL || payload->type != REDIS_REPLY_STRING) {
            return;
        }

        data.data = (u_char *) payload->str;
        data.len = payload->len;

        if (ch.len == st->control.len
            && ngx_strncmp(ch.data, st->control.data, ch.len) == 0)
        {
            h->control(h->data, &data);
            return;
        }

        h->message(h->data, &ch, &data);
        return;
    }

    if (ngx_http_loom_store_is(kind, "subscribe", 9)) {

        if (ch.len == st->control.len
            && ngx_strncmp(ch.data, st->control.data, ch.len) == 0)
        {
            if (rd->state == NGX_HTTP_LOOM_LINK_HANDSHAKE) {
                ngx_http_loom_redis_ready(rd);
                h->ready(h->data);
            }

            return;
        }

        h->subscribed(h->data, &ch);
    }

    /* pong, unsubscribe: nothing to do beyond the reply count */
}


ngx_int_t
ngx_http_loom_store_subscribe(ngx_http_loom_store_t *st, ngx_str_t *channel)
{
    size_t       argvlen[2];
    const char  *argv[2], *reason;

    if (st->cluster) {
        return ngx_http_loom_cluster_subscribe(st, channel);
    }

    if (st->subscriber.rd.state != NGX_HTTP_LOOM_LINK_READY) {
        return NGX_DECLINED;
    }

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = (char *) channel->data;
    argvlen[1] = channel->len;

    if (ngx_http_loom_redis_send(&st->subscriber.rd, 2, argv, argvlen, NULL,
                                 NULL, 0, &reason)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_http_loom_store_unsubscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel)
{
    size_t       argvlen[2];
    const char  *argv[2], *reason;

    if (st->cluster) {
        ngx_http_loom_cluster_unsubscribe(st, channel);
        return;
    }

    if (st->subscriber.rd.state != NGX_HTTP_LOOM_LINK_READY) {
        return;
    }

    argv[0] = "UNSUBSCRIBE";
    argvlen[0] = 11;
    argv[1] = (char *) channel->data;
    argvlen[1] = channel->len;

    (void) ngx_http_loom_redis_send(&st->subscriber.rd, 2, argv, argvlen,
                                    NULL, NULL, 0, &reason);
}


ngx_str_t *
ngx_http_loom_store_prefix(ngx_http_loom_store_t *st)
{
    return &st->conf->redis_prefix;
}


ngx_str_t *
ngx_http_loom_store_index(ngx_http_loom_store_t *st)
{
    return &st->index;
}


ngx_str_t *
ngx_http_loom_store_control(ngx_http_loom_store_t *st)
{
    return &st->control;
}


ngx_uint_t
ngx_http_loom_store_clustered(ngx_http_loom_store_t *st)
{
    return st->cluster != NULL;
}
