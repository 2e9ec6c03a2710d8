/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_GAP_H_INCLUDED_
#define _NGX_HTTP_LOOM_GAP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_rev.h"
#include "ngx_http_loom_history_entry.h"


/*
 * A worker's sequence of one topic's revisions (docs/architecture.md,
 * "A worker's view of a topic"): what comes on the topic's channel goes
 * in here, and leaves through the deliver handler in revision order, each
 * revision once.  A revision that skips one is held with what follows,
 * and the missing ones are read from the topic's history first; when the
 * history no longer has them, or the epoch changed, the resync handler is
 * called with a snapshot before going on.  When the subscriber link comes
 * back, ngx_http_loom_gap_link_back() checks the position against Redis.
 *
 * Reads that fail (the command link is down, too busy) are tried again
 * after a delay; what is held meanwhile is bounded: the oldest held
 * messages are let go first, since the history has them too.
 *
 * Part of the topic layer: it calls the store and the pure parts below
 * (the history's entries are read by ngx_http_loom_history_entry.c), and
 * the layer above only through the handlers it sets.
 */


#define NGX_HTTP_LOOM_GAP_EPOCH_LEN   96


typedef struct ngx_http_loom_gap_s       ngx_http_loom_gap_t;
typedef struct ngx_http_loom_gap_call_s  ngx_http_loom_gap_call_t;


typedef struct {
    ngx_str_t                      delivery;   /* the v1 delivery text */
    uint64_t                       seq;        /* 0: read from history */
    uint64_t                       rev;        /* 0: not stored */
    uint64_t                       ts;
    unsigned                       dup:1;      /* seen: only its seq counts */
} ngx_http_loom_gap_item_t;


typedef void (*ngx_http_loom_gap_deliver_pt)(ngx_http_loom_gap_t *g,
    ngx_http_loom_gap_item_t *item);

/* reason "gap" or "epoch"; an empty value is null */
typedef void (*ngx_http_loom_gap_resync_pt)(ngx_http_loom_gap_t *g,
    ngx_str_t *reason, ngx_str_t *value, uint64_t rev, uint64_t ts);


struct ngx_http_loom_gap_s {
    /* set by the owner before use */
    ngx_http_loom_store_t         *store;
    ngx_log_t                     *log;
    ngx_str_t                      key;        /* P{t:T} */
    ngx_str_t                      stream;     /* P{t:T}:h */
    ngx_str_t                      channel;    /* P{t:T}:msg */
    ngx_uint_t                     page;       /* entries per read */
    ngx_uint_t                     history;    /* retention defaults */
    ngx_uint_t                     max_age;
    size_t                         max_held;   /* bytes */
    ngx_http_loom_gap_deliver_pt   deliver;
    ngx_http_loom_gap_resync_pt    resync;
    void                          *data;
    unsigned                       memory:1;   /* storage "memory" */

    /* the position: the epoch and the last revision delivered */
    u_char                         epoch[NGX_HTTP_LOOM_GAP_EPOCH_LEN];
    size_t                         epoch_len;
    uint64_t                       last;
    unsigned                       known:1;

    /* internal */
    ngx_queue_t                    held;
    size_t                         held_bytes;
    ngx_uint_t                     state;
    ngx_str_t                      reason;     /* of the snapshot read */
    ngx_http_loom_gap_call_t      *call;       /* the read in flight */
    ngx_event_t                    retry;
    unsigned                       check:1;    /* link back, to check */
};


void ngx_http_loom_gap_init(ngx_http_loom_gap_t *g);

/* a DELIVERY or EPOCH message of the topic's channel */
ngx_int_t ngx_http_loom_gap_message(ngx_http_loom_gap_t *g,
    ngx_http_loom_rev_msg_t *m);

/* the subscriber link is subscribed again after a drop */
void ngx_http_loom_gap_link_back(ngx_http_loom_gap_t *g);

/* the position is gone (a registration ended) */
void ngx_http_loom_gap_forget(ngx_http_loom_gap_t *g);

/* nothing held and nothing being read */
ngx_uint_t ngx_http_loom_gap_idle(ngx_http_loom_gap_t *g);

/* before the owner goes: a read in flight is left to end unseen */
void ngx_http_loom_gap_free(ngx_http_loom_gap_t *g);



#endif /* _NGX_HTTP_LOOM_GAP_H_INCLUDED_ */
