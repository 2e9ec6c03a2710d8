/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_loom_redis.h"


static void ngx_http_loom_redis_read_handler(ngx_event_t *rev);
static void ngx_http_loom_redis_write_handler(ngx_event_t *wev);
static void ngx_http_loom_redis_add_read(void *data);
static void ngx_http_loom_redis_del_read(void *data);
static void ngx_http_loom_redis_add_write(void *data);
static void ngx_http_loom_redis_del_write(void *data);
static void ngx_http_loom_redis_cleanup(void *data);


ngx_int_t
ngx_http_loom_redis_attach(redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    if (ac->ev.data != NULL) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->log = log;

    c->read->log = log;
    c->read->handler = ngx_http_loom_redis_read_handler;
    c->write->log = log;
    c->write->handler = ngx_http_loom_redis_write_handler;

    ac->ev.addRead = ngx_http_loom_redis_add_read;
    ac->ev.delRead = ngx_http_loom_redis_del_read;
    ac->ev.addWrite = ngx_http_loom_redis_add_write;
    ac->ev.delWrite = ngx_http_loom_redis_del_write;
    ac->ev.cleanup = ngx_http_loom_redis_cleanup;
    ac->ev.data = c;

    return NGX_OK;
}


static void
ngx_http_loom_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    c = rev->data;
    ac = c->data;

    if (c->close) {

        /*
         * worker_shutdown_timeout marks every connection of the worker for
         * closing; the redis links are not what holds a worker up (their
         * timers are cancelable) and are closed in exit_process
         */

        c->close = 0;
    }

    /* the context may be gone when this returns: c is not touched again */

    redisAsyncHandleRead(ac);
}


static void
ngx_http_loom_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c;

    c = wev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_loom_redis_add_read(void *data)
{
    ngx_connection_t *c = data;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "loom: cannot watch the redis socket");
        }
    }
}


static void
ngx_http_loom_redis_del_read(void *data)
{
    ngx_connection_t *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_loom_redis_add_write(void *data)
{
    ngx_connection_t *c = data;

    if (!c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "loom: cannot watch the redis socket");
        }
    }
}


static void
ngx_http_loom_redis_del_write(void *data)
{
    ngx_connection_t *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_loom_redis_cleanup(void *data)
{
    ngx_connection_t *c = data;

    redisAsyncContext  *ac;

    if (c == NULL) {
        return;
    }

    ac = c->data;

    /* hiredis closes the socket right after this: epoll forgets it then */

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ac->ev.data = NULL;

    ngx_free_connection(c);

    /* stale events of this fd are recognized by fd == -1 */
    c->fd = (ngx_socket_t) -1;
}
