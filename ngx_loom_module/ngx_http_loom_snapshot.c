/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_snapshot.h"


/*
 * Why a subscribe that comes while a read is in flight does not join it:
 * that read may have run in Redis before the subscription joined the
 * topic, and a revision published between the two would then be neither
 * in the snapshot nor in the subscription's buffer.  The next read goes
 * out after every subscription waiting for it was live and buffering, so
 * for each of them what the read does not see comes to its buffer.
 */


struct ngx_http_loom_snapshot_read_s {
    ngx_http_loom_store_call_t       call;      /* first */
    ngx_http_loom_snapshot_t        *sn;        /* NULL: the topic went */
    ngx_queue_t                      waits;
};


static ngx_int_t ngx_http_loom_snapshot_send(ngx_http_loom_snapshot_t *sn,
    const char **reason);
static void ngx_http_loom_snapshot_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_snapshot_answer(ngx_queue_t *waits,
    redisReply *reply);


void
ngx_http_loom_snapshot_init(ngx_http_loom_snapshot_t *sn,
    ngx_http_loom_store_t *store, ngx_str_t *key, ngx_log_t *log)
{
    ngx_memzero(sn, sizeof(ngx_http_loom_snapshot_t));

    sn->store = store;
    sn->log = log;
    sn->key = *key;
    ngx_queue_init(&sn->next);
}


/* the worker exits: the requests still waiting go with their sessions */

void
ngx_http_loom_snapshot_free(ngx_http_loom_snapshot_t *sn)
{
    ngx_queue_t                    *q;
    ngx_http_loom_snapshot_wait_t  *sw;

    if (sn->read) {
        sn->read->sn = NULL;
        sn->read = NULL;
    }

    while (!ngx_queue_empty(&sn->next)) {
        q = ngx_queue_head(&sn->next);
        sw = ngx_queue_data(q, ngx_http_loom_snapshot_wait_t, link);
        ngx_queue_remove(q);
        sw->linked = 0;
    }
}


ngx_int_t
ngx_http_loom_snapshot_join(ngx_http_loom_snapshot_t *sn,
    ngx_http_loom_snapshot_wait_t *sw, const char **reason)
{
    ngx_queue_insert_tail(&sn->next, &sw->link);
    sw->linked = 1;

    if (sn->read) {
        /* the next read takes it: see above */
        return NGX_OK;
    }

    if (ngx_http_loom_snapshot_send(sn, reason) == NGX_OK) {
        return NGX_OK;
    }

    /* nothing else waited: a read is in flight whenever one does */

    ngx_queue_remove(&sw->link);
    sw->linked = 0;

    return NGX_ERROR;
}


/* the waits of next go out in one read */

static ngx_int_t
ngx_http_loom_snapshot_send(ngx_http_loom_snapshot_t *sn,
    const char **reason)
{
    size_t                          argvlen[2];
    ngx_int_t                       rc;
    const char                     *argv[2];
    ngx_http_loom_snapshot_read_t  *rd;

    rd = ngx_alloc(sizeof(ngx_http_loom_snapshot_read_t), sn->log);
    if (rd == NULL) {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    ngx_memzero(&rd->call, sizeof(ngx_http_loom_store_call_t));
    rd->call.handler = ngx_http_loom_snapshot_reply;
    rd->sn = sn;

    argv[0] = (char *) sn->key.data;
    argvlen[0] = sn->key.len;

    /* with the registration: a new subscription waits for it here */
    argv[1] = "1";
    argvlen[1] = 1;

    rc = ngx_http_loom_store_script(sn->store, &rd->call,
                                    NGX_HTTP_LOOM_SCRIPT_SNAPSHOT, 1, 2,
                                    argv, argvlen, reason);
    if (rc != NGX_OK) {
        ngx_free(rd);
        return NGX_ERROR;
    }

    ngx_queue_init(&rd->waits);
    ngx_queue_add(&rd->waits, &sn->next);
    ngx_queue_init(&sn->next);

    sn->read = rd;

    return NGX_OK;
}


/*
 * The reply answers the read's waits; the waits that came meanwhile go
 * out in the next read first, so that it is on its way while the replies
 * are handed out.  The topic stays while they are (running).
 */

static void
ngx_http_loom_snapshot_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_queue_t                     failed;
    const char                     *reason;
    ngx_http_loom_snapshot_t       *sn;
    ngx_http_loom_snapshot_read_t  *rd;

    rd = (ngx_http_loom_snapshot_read_t *) call;
    sn = rd->sn;

    if (sn == NULL) {
        ngx_http_loom_snapshot_answer(&rd->waits, reply);
        ngx_free(rd);
        return;
    }

    sn->read = NULL;
    sn->running++;

    ngx_queue_init(&failed);

    if (!ngx_queue_empty(&sn->next)
        && ngx_http_loom_snapshot_send(sn, &reason) != NGX_OK)
    {
        /* told as a link that went down: each of them answers 500 */

        ngx_log_error(NGX_LOG_INFO, sn->log, 0,
                      "loom: snapshot read of \"%V\" not sent: %s",
                      &sn->key, reason);

        ngx_queue_add(&failed, &sn->next);
        ngx_queue_init(&sn->next);
    }

    ngx_http_loom_snapshot_answer(&rd->waits, reply);
    ngx_free(rd);

    ngx_http_loom_snapshot_answer(&failed, NULL);

    sn->running--;

    if (!ngx_http_loom_snapshot_busy(sn) && sn->idle) {
        /* the topic may go now */
        sn->idle(sn);
    }
}


static void
ngx_http_loom_snapshot_answer(ngx_queue_t *waits, redisReply *reply)
{
    ngx_queue_t                    *q;
    ngx_http_loom_store_call_t     *call;
    ngx_http_loom_snapshot_wait_t  *sw;

    while (!ngx_queue_empty(waits)) {
        q = ngx_queue_head(waits);
        sw = ngx_queue_data(q, ngx_http_loom_snapshot_wait_t, link);
        ngx_queue_remove(q);
        sw->linked = 0;

        call = sw->call;
        call->handler(call, reply);
    }
}
