/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/random.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_clientid.h"


/*
 * A worker's life: its state made at the start of the process, the
 * handlers through which what the Redis subscriber link hears reaches the
 * topics, and the state freed at the end.
 */


#define NGX_HTTP_LOOM_RECV_BUF   65536


static void ngx_http_loom_on_message(void *data, ngx_str_t *channel,
    ngx_str_t *payload);
static void ngx_http_loom_on_subscribed(void *data, ngx_str_t *channel);
static void ngx_http_loom_on_control(void *data, ngx_str_t *name);
static void ngx_http_loom_on_lost(void *data);
static void ngx_http_loom_on_channel_lost(void *data, ngx_str_t *channel);
static void ngx_http_loom_on_ready(void *data);


ngx_int_t
ngx_http_loom_init_process(ngx_cycle_t *cycle)
{
    ngx_http_loom_worker_t          *w;
    ngx_http_loom_main_conf_t       *lmcf;
    ngx_http_loom_store_handlers_t   handlers;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_loom_module);

    if (lmcf == NULL || !lmcf->used) {
        return NGX_OK;
    }

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_http_loom_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->cycle = cycle;
    w->log = cycle->log;
    w->conf = lmcf;

    if (getrandom(w->seed, sizeof(w->seed), GRND_NONBLOCK)
        != (ssize_t) sizeof(w->seed))
    {
        w->seed[0] = (uint64_t) ngx_time() ^ ((uint64_t) ngx_pid << 32);
        w->seed[1] = (uint64_t) (uintptr_t) w ^ ngx_current_msec;
    }

    w->recv_size = NGX_HTTP_LOOM_RECV_BUF;
    w->recv_buf = ngx_palloc(cycle->pool, w->recv_size);
    if (w->recv_buf == NULL) {
        return NGX_ERROR;
    }

    ngx_http_loom_topic_init(w);

    lmcf->worker = w;

    if (ngx_http_loom_shm_init_worker(w, lmcf->shm_zone) != NGX_OK) {
        return NGX_ERROR;
    }

    /* what the subscriber link hears goes to the topics */

    handlers.data = w;
    handlers.message = ngx_http_loom_on_message;
    handlers.subscribed = ngx_http_loom_on_subscribed;
    handlers.control = ngx_http_loom_on_control;
    handlers.lost = ngx_http_loom_on_lost;
    handlers.channel_lost = ngx_http_loom_on_channel_lost;
    handlers.ready = ngx_http_loom_on_ready;

    if (ngx_http_loom_store_init(w, &handlers) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_loom_claims_init(w) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_loom_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_loom_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_loom_module);

    if (lmcf == NULL || lmcf->worker == NULL) {
        return;
    }

    ngx_http_loom_claims_exit(lmcf->worker);
    ngx_http_loom_store_exit(lmcf->worker);
    ngx_http_loom_topic_exit(lmcf->worker);
    ngx_http_loom_shm_exit_worker(lmcf->worker);

    if (lmcf->worker->scratch) {
        ngx_free(lmcf->worker->scratch);
    }

    lmcf->worker = NULL;
}


static void
ngx_http_loom_on_message(void *data, ngx_str_t *channel, ngx_str_t *payload)
{
    ngx_http_loom_topic_message(data, channel, payload);
}


static void
ngx_http_loom_on_subscribed(void *data, ngx_str_t *channel)
{
    ngx_http_loom_topic_subscribed(data, channel);
}


static void
ngx_http_loom_on_control(void *data, ngx_str_t *name)
{
    ngx_http_loom_topic_invalidate(data, name);
}


static void
ngx_http_loom_on_lost(void *data)
{
    ngx_http_loom_topic_subscriber_lost(data);
}


static void
ngx_http_loom_on_channel_lost(void *data, ngx_str_t *channel)
{
    ngx_http_loom_topic_channel_lost(data, channel);
}


static void
ngx_http_loom_on_ready(void *data)
{
    ngx_http_loom_topic_resubscribe(data);
    ngx_http_loom_claims_ready(data);
}
