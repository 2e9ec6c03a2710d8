/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_STORE_H_INCLUDED_
#define _NGX_HTTP_LOOM_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <hiredis/hiredis.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_redis.h"
#include "ngx_http_loom_scripts.h"


/*
 * The most calls a group commit holds (ngx_http_loom_store_batch.c), and
 * so the most revisions one history entry holds: a reader that wants
 * the revisions up to R finds the entry with R at or below R + this - 1.
 */
#define NGX_HTTP_LOOM_GROUP_MAX  64


/*
 * Redis, per worker: one pipelined command link and one subscriber link
 * (ngx_http_loom_redis.c), each reconnected with backoff when it fails.
 * A command is answered through an ngx_http_loom_store_call_t that the
 * caller embeds in its own request; its handler gets the reply, or NULL
 * when the link went down before the reply came.  What comes on the
 * subscriber link goes to the handlers the layer above gives at init.
 *
 * Data model, for prefix P (loom_redis_prefix) and topic T:
 *
 *   P{t:T}          hash: tag ("<reg>:<sv>": the registration and its
 *                   schema version), sv, schema (the current one), seq,
 *                   value (latest)
 *   P{t:T}:msg      channel: deliveries "<seq> <json>", or "U <reg>" when
 *                   registration <reg> of T is unregistered
 *   Ptopics         hash: T -> {"version":v,"schema":...}, for listTopics
 *   Pctl            channel: names of topics whose schema changed
 *
 * The {t:T} hash tag keeps a topic's keys and channel in one Redis Cluster
 * slot.  With loom_redis_cluster (ngx_http_loom_store_cluster.c) the
 * channel is sharded (SPUBLISH, SSUBSCRIBE) and there is no Ptopics: the
 * topic's hash is its own index entry.  The scripts are the .lua files
 * beside the sources.
 */


typedef struct ngx_http_loom_store_call_s  ngx_http_loom_store_call_t;

typedef void (*ngx_http_loom_store_handler_pt)(
    ngx_http_loom_store_call_t *call, redisReply *reply);

struct ngx_http_loom_store_call_s {
    ngx_http_loom_store_handler_pt   handler;
    ngx_http_loom_store_t           *store;         /* set by the store */
    unsigned                         ephemeral:1;   /* a script that keeps
                                                       nothing: no WAIT */
    unsigned                         durable:1;     /* set by the store */
    unsigned                         unconfirmed:1; /* set by the store */
    unsigned                         unsent:1;      /* set by the store:
                                                       not sent, the error
                                                       reply says why */
};


/* what the subscriber link hears, for the layer above */

typedef struct {
    void                           *data;
    void                          (*message)(void *data, ngx_str_t *channel,
                                             ngx_str_t *payload);
    void                          (*subscribed)(void *data,
                                                ngx_str_t *channel);
    void                          (*control)(void *data, ngx_str_t *name);
    void                          (*lost)(void *data);
    /* in a cluster: one channel's subscription ended (its node went
       down or lost the slot); it is subscribed again after "ready" */
    void                          (*channel_lost)(void *data,
                                                  ngx_str_t *channel);
    void                          (*ready)(void *data);
} ngx_http_loom_store_handlers_t;


ngx_int_t ngx_http_loom_store_init(ngx_http_loom_worker_t *w,
    ngx_http_loom_store_handlers_t *handlers);
void ngx_http_loom_store_exit(ngx_http_loom_worker_t *w);

/*
 * NGX_OK: sent, the handler will be called; NGX_DECLINED: no link to
 * Redis; NGX_BUSY: too many commands in flight or too many bytes queued
 * (loom_redis_max_pending, loom_redis_max_buffered).  *reason says why
 * not.
 */
ngx_int_t ngx_http_loom_store_command(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason);

/*
 * In a cluster, a command goes to the master of argv[1]'s slot (the key
 * it names), a script to the master of its first key's; a script without
 * keys (listTopics) to the master that its argv[0], a cursor, names.
 * MOVED, ASK and TRYAGAIN are followed inside, a bounded number of times,
 * keeping the order of the commands of one slot.
 *
 * argv[0..argc) holds the keys first, then the arguments.  With
 * loom_redis_wait, a script's reply reaches the handler only once WAIT has
 * answered; when fewer replicas than asked confirmed it, the handler gets
 * an error reply instead (the write is on the master all the same).
 */
ngx_int_t ngx_http_loom_store_script(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason);

/*
 * Group commits (ngx_http_loom_store_batch.c): a script call that shares
 * one EVALSHA with the calls of the same script and keys made right
 * before it, in the same pass of the event loop.  argv holds the keys
 * (nkeys), the arguments common to the group (ncommon: taken from its
 * first call), then this call's own; the arguments are copied.  The
 * script gets the own arguments of every call one after the other and
 * answers an array with one element per call, in order; each handler
 * gets its own element.  A reply of another shape (an error, WAIT not
 * confirmed) and a link lost (NULL) go to every call of the group.  When
 * the group cannot be sent, each handler gets an error reply saying why,
 * with call->unsent set.
 *
 * A group is sent at the end of the pass, or before anything else is sent
 * to Redis (another group, a command, a script), so that Redis runs all
 * of them in the order they were asked for.  NGX_OK: the handler will be
 * called; NGX_DECLINED: no link to Redis; NGX_ERROR: out of memory.
 */
ngx_int_t ngx_http_loom_store_append(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int ncommon, int argc, const char **argv, const size_t *argvlen,
    const char **reason);

/* NGX_OK: SUBSCRIBE sent; NGX_DECLINED: the subscriber link is down */
ngx_int_t ngx_http_loom_store_subscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel);
void ngx_http_loom_store_unsubscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel);

/* 1 with loom_redis_cluster */
ngx_uint_t ngx_http_loom_store_clustered(ngx_http_loom_store_t *st);

/* the key prefix, and the index and control names built from it */
ngx_str_t *ngx_http_loom_store_prefix(ngx_http_loom_store_t *st);
ngx_str_t *ngx_http_loom_store_index(ngx_http_loom_store_t *st);
ngx_str_t *ngx_http_loom_store_control(ngx_http_loom_store_t *st);


#endif /* _NGX_HTTP_LOOM_STORE_H_INCLUDED_ */
