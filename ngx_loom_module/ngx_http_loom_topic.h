/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_TOPIC_H_INCLUDED_
#define _NGX_HTTP_LOOM_TOPIC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_output.h"
#include "ngx_http_loom_gap.h"
#include "ngx_http_loom_snapshot.h"
#include "ngx_http_loom_jschema.h"


/*
 * The topics one worker knows: those its connections subscribe to, and a
 * bounded cache of schemas for publishing.  A topic with local subscribers
 * keeps its Redis channel subscribed; every message arriving there is
 * framed once and the same frame is queued to each local subscriber's out.
 *
 * This layer calls nothing above it: a subscriber is reached through the
 * ngx_http_loom_subscriber_t its owner embeds, and a request that waits in
 * a topic through the ngx_http_loom_waiter_t it embeds, whose handler the
 * topic calls once the wait is over.
 */


#define NGX_HTTP_LOOM_CHANNEL_OFF      0    /* not subscribed at Redis */
#define NGX_HTTP_LOOM_CHANNEL_PENDING  1    /* SUBSCRIBE sent */
#define NGX_HTTP_LOOM_CHANNEL_ON       2


/* the frames of one delivery: at most one of each kind per worker */
#define NGX_HTTP_LOOM_FRAME_V1         0    /* WebSocket, as before */
#define NGX_HTTP_LOOM_FRAME_V2         1    /* WebSocket, dataloom.v2 */
#define NGX_HTTP_LOOM_FRAME_SSE        2    /* an event of an event stream */
#define NGX_HTTP_LOOM_FRAME_KINDS      3


typedef struct ngx_http_loom_waiter_s  ngx_http_loom_waiter_t;

/* rc: NGX_OK (confirmed, or released), NGX_ERROR (the link went down) */
typedef void (*ngx_http_loom_waiter_pt)(ngx_http_loom_waiter_t *wt,
    ngx_int_t rc);


struct ngx_http_loom_waiter_s {
    ngx_queue_t                 link;             /* in a topic's queue */
    ngx_http_loom_topic_t      *topic;            /* NULL: in none */
    uint64_t                    seq;              /* held: the delivery */
    ngx_http_loom_waiter_pt     handler;
};


/* one connection's side of its subscriptions */
typedef struct {
    ngx_queue_t                 subscriptions;    /* ngx_http_loom_sub_t */
    ngx_uint_t                  nsubscriptions;
    ngx_http_loom_out_t        *out;
    ngx_log_t                  *log;
    unsigned                    v2:1;             /* dataloom.v2 */
    unsigned                    sse:1;            /* an event stream */
} ngx_http_loom_subscriber_t;


struct ngx_http_loom_topic_s {
    ngx_str_node_t              sn;               /* sn.str is the name */
    ngx_http_loom_worker_t     *worker;
    ngx_str_t                   channel;          /* P{t:<name>}:msg */
    ngx_str_t                   key;              /* P{t:<name>} */
    ngx_str_t                   stream;           /* P{t:<name>}:h */

    /* the revisions handed on, in order (ngx_http_loom_gap.c) */
    ngx_http_loom_gap_t         gap;

    /* the shared reads of subscribes with snapshot */
    ngx_http_loom_snapshot_t    snapshot;

    ngx_queue_t                 subscribers;      /* ngx_http_loom_sub_t */
    ngx_uint_t                  nsubscribers;
    ngx_uint_t                  channel_state;

    ngx_queue_t                 waiting;          /* subscribes to confirm */
    ngx_queue_t                 held;             /* acks behind a delivery */

    /* the last delivery seen, and the registration it counts in */
    uint64_t                    seq;
    size_t                      seq_registration_len;
    u_char                      seq_registration[NGX_HTTP_LOOM_ID_LEN];

    /* the cached schema: a key-set one, or a compiled JSON Schema */
    ngx_str_t                   tag;              /* of the cached schema */
    json_t                     *schema;
    ngx_http_loom_jschema_t    *jschema;

    ngx_queue_t                 idle;             /* in worker->idle_topics */
    unsigned                    idle_linked:1;
    unsigned                    relink:1;         /* the link dropped */
    unsigned                    recheck:1;        /* registration unsure */
};


/* what refers to a subscription from outside: let go when it ends */
typedef struct {
    struct ngx_http_loom_sub_s *sub;
} ngx_http_loom_sub_ref_t;


typedef struct ngx_http_loom_sub_s {
    ngx_queue_t                 topic_link;
    ngx_queue_t                 subscriber_link;
    ngx_http_loom_topic_t      *topic;
    ngx_http_loom_subscriber_t *subscriber;

    /* the registration subscribed to: its unregister ends this */
    size_t                      registration_len;
    u_char                      registration[NGX_HTTP_LOOM_ID_LEN];

    /* revisions: none at or below after; kept while buffering */
    uint64_t                    after;
    ngx_queue_t                 buffer;
    size_t                      buffered;
    ngx_http_loom_sub_ref_t    *replay;           /* a resume's, or NULL */
    unsigned                    buffering:1;
} ngx_http_loom_sub_t;


void ngx_http_loom_topic_init(ngx_http_loom_worker_t *w);
void ngx_http_loom_topic_exit(ngx_http_loom_worker_t *w);

ngx_http_loom_topic_t *ngx_http_loom_topic_lookup(ngx_http_loom_worker_t *w,
    ngx_str_t *name);
ngx_http_loom_topic_t *ngx_http_loom_topic_get(ngx_http_loom_worker_t *w,
    ngx_str_t *name);
/*
 * After a change or a use: keeps the topic, caches it, or frees it.
 * The caller must not use t afterwards.
 */
void ngx_http_loom_topic_check(ngx_http_loom_topic_t *t);

void ngx_http_loom_subscriber_init(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_out_t *out, ngx_log_t *log);
ngx_http_loom_sub_t *ngx_http_loom_topic_find(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_topic_t *t);

/*
 * NGX_OK: subscribed and the channel is live; NGX_AGAIN: wt waits until
 * Redis confirms the channel; NGX_DECLINED: the subscriber link is down;
 * NGX_ERROR: no memory
 */
ngx_int_t ngx_http_loom_topic_subscribe(ngx_http_loom_topic_t *t,
    ngx_http_loom_subscriber_t *sr, ngx_http_loom_waiter_t *wt,
    ngx_str_t *registration);
void ngx_http_loom_topic_registration(ngx_http_loom_sub_t *sub,
    ngx_str_t *registration);
void ngx_http_loom_topic_unsubscribe(ngx_http_loom_sub_t *sub);
void ngx_http_loom_topic_unsubscribe_all(ngx_http_loom_subscriber_t *sr);

/*
 * Parks an ack until the subscriber has seen delivery seq of registration
 * (empty: not known); 0 if not needed
 */
ngx_uint_t ngx_http_loom_topic_hold(ngx_http_loom_topic_t *t,
    ngx_http_loom_subscriber_t *sr, ngx_http_loom_waiter_t *wt,
    uint64_t seq, ngx_str_t *registration);

/* the waiter's owner is gone: it leaves its topic without a call */
void ngx_http_loom_topic_cancel(ngx_http_loom_waiter_t *wt);

/*
 * The schema of tag: a key-set schema (a reference is taken) or a
 * compiled JSON Schema (the topic owns it from then on, NGX_OK or not)
 */
ngx_int_t ngx_http_loom_topic_set_schema(ngx_http_loom_topic_t *t,
    ngx_str_t *tag, json_t *schema, ngx_http_loom_jschema_t *js);
void ngx_http_loom_topic_drop_schema(ngx_http_loom_topic_t *t);
#define ngx_http_loom_topic_has_schema(t)                                    \
    ((t)->schema != NULL || (t)->jschema != NULL)
/* NGX_OK: data matches the cached schema (nothing is allocated) */
ngx_int_t ngx_http_loom_topic_match(ngx_http_loom_topic_t *t, json_t *data);

/* the registration part of a tag "<registration>:<schema version>" */
void ngx_http_loom_topic_tag_registration(ngx_str_t *tag,
    ngx_str_t *registration);

/* for ngx_http_loom_channel.c, which shares the topics' insides */
void ngx_http_loom_topic_keep(ngx_http_loom_topic_t *t, ngx_uint_t evict);
void ngx_http_loom_topic_evict(ngx_http_loom_worker_t *w);
void ngx_http_loom_topic_remove(ngx_http_loom_sub_t *sub);
void ngx_http_loom_topic_unused(ngx_http_loom_topic_t *t,
    ngx_queue_t *released);
void ngx_http_loom_topic_seq_registration(ngx_http_loom_topic_t *t,
    ngx_str_t *registration);
void ngx_http_loom_topic_release_held(ngx_http_loom_topic_t *t,
    uint64_t seq, ngx_queue_t *released);
void ngx_http_loom_topic_answer(ngx_queue_t *released, ngx_queue_t *failed);

/* ngx_http_loom_fanout.c: revisions to the local subscribers */
/* the frame a subscriber gets of an item: v1 for what is not stored */
#define ngx_http_loom_fanout_kind(sr, item)                                  \
    ((sr)->sse ? NGX_HTTP_LOOM_FRAME_SSE                                     \
               : ((sr)->v2 && (item)->rev) ? NGX_HTTP_LOOM_FRAME_V2          \
                                           : NGX_HTTP_LOOM_FRAME_V1)
/* epoch: the revision's, for an event's id (NGX_HTTP_LOOM_FRAME_SSE) */
ngx_http_loom_frame_t *ngx_http_loom_fanout_frame(
    ngx_http_loom_gap_item_t *item, ngx_uint_t kind, ngx_str_t *epoch,
    ngx_log_t *log);
ngx_uint_t ngx_http_loom_fanout_deliver(ngx_http_loom_topic_t *t,
    ngx_http_loom_gap_item_t *item);
/* to every v2 subscriber, or to only one, ahead of its buffer */
void ngx_http_loom_fanout_resync(ngx_http_loom_topic_t *t,
    ngx_http_loom_sub_t *only, ngx_str_t *reason, ngx_str_t *value,
    uint64_t rev, uint64_t ts, ngx_str_t *epoch);
void ngx_http_loom_fanout_buffer(ngx_http_loom_sub_t *sub);
ngx_int_t ngx_http_loom_fanout_apply(ngx_http_loom_sub_t *sub, uint64_t rev);
void ngx_http_loom_fanout_unbuffer(ngx_http_loom_sub_t *sub);
ngx_int_t ngx_http_loom_fanout_replay(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_gap_item_t *item, ngx_str_t *epoch);

/* from the subscriber link (ngx_http_loom_channel.c) */
void ngx_http_loom_topic_message(ngx_http_loom_worker_t *w,
    ngx_str_t *channel, ngx_str_t *payload);
void ngx_http_loom_topic_subscribed(ngx_http_loom_worker_t *w,
    ngx_str_t *channel);
void ngx_http_loom_topic_subscriber_lost(ngx_http_loom_worker_t *w);
void ngx_http_loom_topic_channel_lost(ngx_http_loom_worker_t *w,
    ngx_str_t *channel);
void ngx_http_loom_topic_resubscribe(ngx_http_loom_worker_t *w);
void ngx_http_loom_topic_invalidate(ngx_http_loom_worker_t *w,
    ngx_str_t *name);


#endif /* _NGX_HTTP_LOOM_TOPIC_H_INCLUDED_ */
