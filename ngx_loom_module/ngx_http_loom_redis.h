/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_REDIS_H_INCLUDED_
#define _NGX_HTTP_LOOM_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/*
 * Runs a hiredis async context inside nginx's event loop: the context's
 * socket becomes an nginx connection whose read and write events call
 * redisAsyncHandleRead() and redisAsyncHandleWrite().
 *
 * The events are level-triggered: hiredis reads at most 16 KiB a call and
 * relies on being called again while data is waiting.  hiredis owns the
 * socket: it closes it after the cleanup hook, which only gives the
 * connection structure back to nginx.
 */


ngx_int_t ngx_http_loom_redis_attach(redisAsyncContext *ac, ngx_log_t *log);


#endif /* _NGX_HTTP_LOOM_REDIS_H_INCLUDED_ */
