/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SNAPSHOT_H_INCLUDED_
#define _NGX_HTTP_LOOM_SNAPSHOT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_store.h"


/*
 * One topic's shared reads of its position (snapshot.lua) for the
 * subscribes with snapshot of one worker (docs/architecture.md, "Snapshot
 * and resume without gap or duplicate").  At most one read is in flight;
 * the subscribes that come meanwhile wait together for the next one, which
 * goes out when the reply to the one in flight has come: a read is never
 * taken before a subscription that waits for it was live.  The reply goes
 * to the store call of each waiting subscribe, in the order they came:
 * {rev, epoch, ts, value, registration, storage} (lua/snapshot.lua).
 *
 * Part of the topic layer (each topic embeds one): it calls the store, and
 * the topic only through the idle handler.
 */


typedef struct ngx_http_loom_snapshot_s       ngx_http_loom_snapshot_t;
typedef struct ngx_http_loom_snapshot_read_s  ngx_http_loom_snapshot_read_t;

typedef void (*ngx_http_loom_snapshot_pt)(ngx_http_loom_snapshot_t *sn);


typedef struct {
    ngx_queue_t                      link;
    ngx_http_loom_store_call_t      *call;     /* gets the reply */
    unsigned                         linked:1;
} ngx_http_loom_snapshot_wait_t;


struct ngx_http_loom_snapshot_s {
    ngx_http_loom_store_t           *store;
    ngx_log_t                       *log;
    ngx_str_t                        key;      /* the topic's hash */
    ngx_http_loom_snapshot_read_t   *read;     /* in flight, or NULL */
    ngx_queue_t                      next;     /* waits for the next read */
    ngx_http_loom_snapshot_pt        idle;     /* nothing is left */
    void                            *data;     /* the owner */
    ngx_uint_t                       running;  /* handing replies out */
};


void ngx_http_loom_snapshot_init(ngx_http_loom_snapshot_t *sn,
    ngx_http_loom_store_t *store, ngx_str_t *key, ngx_log_t *log);
void ngx_http_loom_snapshot_free(ngx_http_loom_snapshot_t *sn);
#define ngx_http_loom_snapshot_busy(sn)                                      \
    ((sn)->read != NULL || !ngx_queue_empty(&(sn)->next) || (sn)->running)

/*
 * NGX_OK: sw waits, sw->call's handler gets the reply (NULL: the link went
 * down first); otherwise the read could not be sent, *reason says why
 */
ngx_int_t ngx_http_loom_snapshot_join(ngx_http_loom_snapshot_t *sn,
    ngx_http_loom_snapshot_wait_t *sw, const char **reason);


#endif /* _NGX_HTTP_LOOM_SNAPSHOT_H_INCLUDED_ */
