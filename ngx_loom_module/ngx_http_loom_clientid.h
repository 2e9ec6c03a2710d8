/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_CLIENTID_H_INCLUDED_
#define _NGX_HTTP_LOOM_CLIENTID_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_store.h"


/*
 * ClientIds claimed in Redis (loom_client_id_claim on), so that an id an
 * open connection holds on one node is refused on every node that shares
 * the Redis.  The node-local check of the shared zone comes first; the
 * claim is a key per id,
 *
 *   P{c:ID}         string: the owner, "<node>:<pid>:<connection>", with
 *                   a ttl (loom_client_id_claim_ttl)
 *
 * made when the connection is accepted (claim.lua), refreshed by one pass
 * per worker every loom_client_id_claim_refresh over all its claims (the
 * same script: it makes a claim again that Redis lost), and deleted when
 * the connection closes, only if it is still the owner's (unclaim.lua).
 * <node> is random per shared zone: a claim of this node whose id the zone
 * does not hold any more is stale (its release is still on the way, or its
 * worker was killed) and is taken over.  A node that dies leaves its
 * claims to expire within the ttl.
 *
 * The owner of a claim (the session) is told through its handler:
 *
 *   NGX_OK        the claim is made;
 *   NGX_DECLINED  another connection holds the id (the first answer, or a
 *                 refresh that found it taken while Redis had lost it);
 *   NGX_AGAIN     the first answer only: no answer from Redis (the link
 *                 went down, or nothing came within loom_redis_timeout):
 *                 the claim is made when Redis is back.
 */


#define NGX_HTTP_LOOM_CLAIM_NODE_LEN  16     /* hex digits */


typedef struct ngx_http_loom_claim_s   ngx_http_loom_claim_t;

typedef void (*ngx_http_loom_claim_handler_pt)(ngx_http_loom_claim_t *cl,
    ngx_int_t rc);


#define NGX_HTTP_LOOM_CLAIM_UNKNOWN   0      /* not made, or not known */
#define NGX_HTTP_LOOM_CLAIM_HELD      1
#define NGX_HTTP_LOOM_CLAIM_TAKEN     2      /* another owner: final */


struct ngx_http_loom_claim_s {
    ngx_http_loom_store_call_t      call;     /* claim.lua */
    ngx_http_loom_store_call_t      drop;     /* unclaim.lua */
    ngx_queue_t                     queue;    /* in the worker's claims */
    ngx_http_loom_claims_t         *claims;
    ngx_event_t                     timer;    /* the first answer's */

    ngx_http_loom_claim_handler_pt  handler;  /* set by the owner */
    void                           *data;     /* the owner */

    ngx_str_t                       key;
    ngx_str_t                       owner;
    ngx_uint_t                      pass;     /* the last refresh pass */
    ngx_uint_t                      busy;     /* calls in flight */
    ngx_uint_t                      takeovers;

    unsigned                        state:2;
    unsigned                        answered:1;  /* the first answer */
    unsigned                        released:1;  /* the owner let go */
    unsigned                        dropped:1;   /* unclaim.lua sent */
    unsigned                        queued:1;
};


/* the worker's claims, when loom_client_id_claim is on */
ngx_int_t ngx_http_loom_claims_init(ngx_http_loom_worker_t *w);
void ngx_http_loom_claims_exit(ngx_http_loom_worker_t *w);

/* the Redis links are back: every claim is made again now */
void ngx_http_loom_claims_ready(ngx_http_loom_worker_t *w);

/*
 * Claims id for connection c.  NGX_AGAIN: the handler gets the answer;
 * NGX_DECLINED: Redis is down, the claim is made when it is back (the
 * handler hears of it only if the id turns out taken); NGX_ERROR: no
 * memory.  *clp is the claim, but with NGX_ERROR.
 */
ngx_int_t ngx_http_loom_claim(ngx_http_loom_claims_t *cs, ngx_str_t *id,
    ngx_connection_t *c, ngx_http_loom_claim_t **clp);

/* the owner is done with the id: its claim goes; cl is not used again */
void ngx_http_loom_claim_release(ngx_http_loom_claim_t *cl);


/* ngx_http_loom_clientid_key.c: no nginx functions, for the unit tests */

size_t ngx_http_loom_claim_key_len(ngx_str_t *prefix, ngx_str_t *id);
u_char *ngx_http_loom_claim_key(u_char *p, ngx_str_t *prefix,
    ngx_str_t *id);

#define NGX_HTTP_LOOM_CLAIM_OWNER_LEN                                        \
    (NGX_HTTP_LOOM_CLAIM_NODE_LEN + 2 + NGX_INT64_LEN + NGX_ATOMIC_T_LEN)

u_char *ngx_http_loom_claim_owner(u_char *p, u_char *node, ngx_pid_t pid,
    ngx_atomic_uint_t number);

/* 1 when the owner's node is node */
ngx_uint_t ngx_http_loom_claim_same_node(u_char *owner, size_t len,
    u_char *node);

/*
 * A reply of claim.lua: NGX_OK, the claim is the caller's; NGX_DECLINED,
 * *holder is the owner that holds it; NGX_ERROR, anything else.
 */
ngx_int_t ngx_http_loom_claim_reply(redisReply *reply, ngx_str_t *holder);


#endif /* _NGX_HTTP_LOOM_CLIENTID_H_INCLUDED_ */
