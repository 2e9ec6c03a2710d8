/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_clientid.h"
#include "ngx_http_loom_shm.h"


/*
 * ClientId claims in Redis (see the header).  Every claim of a worker is
 * in one queue, in the order of the refresh pass: a pass takes claims from
 * the head, sends claim.lua for each (a pipeline, at most a batch per
 * pass of the event loop) and moves them to the tail.  A pass that finds
 * Redis down, or the link full, stops where it is and goes on shortly; when
 * the links come back a new pass starts at once, so claims that Redis lost
 * are made again.
 */


#define NGX_HTTP_LOOM_CLAIMS_BATCH  512
#define NGX_HTTP_LOOM_CLAIMS_RETRY  200      /* ms, while Redis is down */
#define NGX_HTTP_LOOM_CLAIMS_TAKEOVERS  2


struct ngx_http_loom_claims_s {
    ngx_http_loom_worker_t     *worker;
    ngx_log_t                  *log;
    ngx_queue_t                 claims;
    ngx_uint_t                  pass;
    ngx_event_t                 refresh;
    ngx_msec_t                  interval;
    ngx_msec_t                  timeout;          /* of the first answer */
    ngx_str_t                   ttl;              /* ms, in text */
    u_char                      ttl_text[NGX_INT_T_LEN];
    u_char                      node[NGX_HTTP_LOOM_CLAIM_NODE_LEN];
    unsigned                    running:1;        /* a pass is under way */
    unsigned                    exiting:1;
};


static ngx_int_t ngx_http_loom_claim_send(ngx_http_loom_claim_t *cl,
    ngx_str_t *stale);
static void ngx_http_loom_claim_drop(ngx_http_loom_claim_t *cl);
static void ngx_http_loom_claim_answer(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_claim_dropped(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_claim_tell(ngx_http_loom_claim_t *cl,
    ngx_int_t rc);
static void ngx_http_loom_claim_timeout(ngx_event_t *ev);
static void ngx_http_loom_claim_free(ngx_http_loom_claim_t *cl);
static void ngx_http_loom_claims_soon(ngx_http_loom_claims_t *cs);
static void ngx_http_loom_claims_refresh(ngx_event_t *ev);


ngx_int_t
ngx_http_loom_claims_init(ngx_http_loom_worker_t *w)
{
    ngx_http_loom_claims_t     *cs;
    ngx_http_loom_main_conf_t  *conf;

    conf = w->conf;

    if (!conf->client_id_claim) {
        return NGX_OK;
    }

    cs = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_loom_claims_t));
    if (cs == NULL) {
        return NGX_ERROR;
    }

    cs->worker = w;
    cs->log = w->log;
    cs->interval = conf->client_id_claim_refresh;
    cs->timeout = conf->redis_timeout;

    cs->ttl.data = cs->ttl_text;
    cs->ttl.len = ngx_sprintf(cs->ttl_text, "%M", conf->client_id_claim_ttl)
                  - cs->ttl_text;

    ngx_memcpy(cs->node, w->shm->sh->node, NGX_HTTP_LOOM_CLAIM_NODE_LEN);

    ngx_queue_init(&cs->claims);

    cs->refresh.handler = ngx_http_loom_claims_refresh;
    cs->refresh.data = cs;
    cs->refresh.log = w->log;
    cs->refresh.cancelable = 1;

    ngx_add_timer(&cs->refresh, cs->interval);

    w->claims = cs;

    return NGX_OK;
}


/*
 * Before the links close: the owners are left, and the claims still in
 * flight are freed by the NULL answers the closing links give them.
 */

void
ngx_http_loom_claims_exit(ngx_http_loom_worker_t *w)
{
    ngx_queue_t             *q;
    ngx_http_loom_claim_t   *cl;
    ngx_http_loom_claims_t  *cs;

    cs = w->claims;

    if (cs == NULL) {
        return;
    }

    cs->exiting = 1;

    if (cs->refresh.timer_set) {
        ngx_del_timer(&cs->refresh);
    }

    while (!ngx_queue_empty(&cs->claims)) {
        q = ngx_queue_head(&cs->claims);
        cl = ngx_queue_data(q, ngx_http_loom_claim_t, queue);

        ngx_queue_remove(q);
        cl->queued = 0;
        cl->released = 1;
        cl->handler = NULL;

        if (cl->timer.timer_set) {
            ngx_del_timer(&cl->timer);
        }

        if (cl->call.handler == NULL && cl->drop.handler == NULL) {
            ngx_http_loom_claim_free(cl);
        }
    }

    w->claims = NULL;
}


void
ngx_http_loom_claims_ready(ngx_http_loom_worker_t *w)
{
    ngx_http_loom_claims_t  *cs;

    cs = w->claims;

    if (cs == NULL || cs->exiting) {
        return;
    }

    /* a new pass, now */

    cs->running = 0;

    if (cs->refresh.timer_set) {
        ngx_del_timer(&cs->refresh);
    }

    ngx_add_timer(&cs->refresh, 1);
}


ngx_int_t
ngx_http_loom_claim(ngx_http_loom_claims_t *cs, ngx_str_t *id,
    ngx_connection_t *c, ngx_http_loom_claim_t **clp)
{
    u_char                 *p;
    size_t                  len;
    ngx_str_t              *prefix;
    ngx_http_loom_claim_t  *cl;

    prefix = ngx_http_loom_store_prefix(cs->worker->store);

    len = ngx_http_loom_claim_key_len(prefix, id);

    /* the claim may outlive the connection: it is on the heap */

    cl = ngx_alloc(sizeof(ngx_http_loom_claim_t) + len
                   + NGX_HTTP_LOOM_CLAIM_OWNER_LEN, cs->log);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cl, sizeof(ngx_http_loom_claim_t));

    cl->claims = cs;

    p = (u_char *) &cl[1];
    cl->key.data = p;
    p = ngx_http_loom_claim_key(p, prefix, id);
    cl->key.len = p - cl->key.data;

    cl->owner.data = p;
    p = ngx_http_loom_claim_owner(p, cs->node, ngx_pid, c->number);
    cl->owner.len = p - cl->owner.data;

    cl->timer.handler = ngx_http_loom_claim_timeout;
    cl->timer.data = cl;
    cl->timer.log = cs->log;

    /* just made: the pass under way leaves it */

    cl->pass = cs->pass;
    ngx_queue_insert_tail(&cs->claims, &cl->queue);
    cl->queued = 1;

    *clp = cl;

    if (ngx_http_loom_claim_send(cl, NULL) != NGX_OK) {
        cl->answered = 1;
        ngx_http_loom_claims_soon(cs);
        return NGX_DECLINED;
    }

    ngx_add_timer(&cl->timer, cs->timeout);

    return NGX_AGAIN;
}


void
ngx_http_loom_claim_release(ngx_http_loom_claim_t *cl)
{
    cl->released = 1;
    cl->handler = NULL;
    cl->data = NULL;

    if (cl->timer.timer_set) {
        ngx_del_timer(&cl->timer);
    }

    if (cl->queued) {
        ngx_queue_remove(&cl->queue);
        cl->queued = 0;
    }

    /*
     * Unless another owner holds it, the claim may be this one's in Redis
     * (even when not known: a claim in flight, a link that came back): the
     * unclaim goes behind the claim on the link, and takes only this
     * owner's claim.
     */

    if (cl->state != NGX_HTTP_LOOM_CLAIM_TAKEN) {
        ngx_http_loom_claim_drop(cl);
    }

    if (cl->call.handler == NULL && cl->drop.handler == NULL) {
        ngx_http_loom_claim_free(cl);
    }
}


/* claim.lua; a call in flight has its handler set */

static ngx_int_t
ngx_http_loom_claim_send(ngx_http_loom_claim_t *cl, ngx_str_t *stale)
{
    size_t                   argvlen[4];
    ngx_int_t                rc;
    const char              *argv[4], *reason;
    ngx_http_loom_claims_t  *cs;

    cs = cl->claims;

    argv[0] = (char *) cl->key.data;
    argvlen[0] = cl->key.len;
    argv[1] = (char *) cl->owner.data;
    argvlen[1] = cl->owner.len;
    argv[2] = (char *) cs->ttl.data;
    argvlen[2] = cs->ttl.len;
    argv[3] = stale ? (char *) stale->data : "";
    argvlen[3] = stale ? stale->len : 0;

    cl->call.handler = ngx_http_loom_claim_answer;
    cl->call.ephemeral = 1;

    rc = ngx_http_loom_store_script(cs->worker->store, &cl->call,
                                    NGX_HTTP_LOOM_SCRIPT_CLAIM, 1, 4, argv,
                                    argvlen, &reason);

    if (rc != NGX_OK) {
        cl->call.handler = NULL;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cs->log, 0,
                       "loom: claim \"%V\" not sent: %s", &cl->key, reason);
    }

    return rc;
}


static void
ngx_http_loom_claim_drop(ngx_http_loom_claim_t *cl)
{
    size_t                   argvlen[2];
    const char              *argv[2], *reason;
    ngx_http_loom_claims_t  *cs;

    cs = cl->claims;

    if (cl->dropped || cs->exiting) {
        return;
    }

    argv[0] = (char *) cl->key.data;
    argvlen[0] = cl->key.len;
    argv[1] = (char *) cl->owner.data;
    argvlen[1] = cl->owner.len;

    cl->drop.handler = ngx_http_loom_claim_dropped;
    cl->drop.ephemeral = 1;

    if (ngx_http_loom_store_script(cs->worker->store, &cl->drop,
                                   NGX_HTTP_LOOM_SCRIPT_UNCLAIM, 1, 2, argv,
                                   argvlen, &reason)
        != NGX_OK)
    {
        /* the claim expires by itself within the ttl */
        cl->drop.handler = NULL;
        return;
    }

    cl->dropped = 1;
}


static void
ngx_http_loom_claim_answer(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_int_t                rc;
    ngx_str_t                holder;
    ngx_http_loom_claim_t   *cl;
    ngx_http_loom_claims_t  *cs;

    cl = (ngx_http_loom_claim_t *)
             ((u_char *) call - offsetof(ngx_http_loom_claim_t, call));
    cs = cl->claims;

    call->handler = NULL;

    rc = ngx_http_loom_claim_reply(reply, &holder);

    if (cl->released) {

        /* made after the owner went, and not unclaimed behind it */

        if (rc == NGX_OK && !cl->dropped) {
            ngx_http_loom_claim_drop(cl);
        }

        if (cl->drop.handler == NULL) {
            ngx_http_loom_claim_free(cl);
        }

        return;
    }

    switch (rc) {

    case NGX_OK:
        cl->state = NGX_HTTP_LOOM_CLAIM_HELD;
        cl->takeovers = 0;
        ngx_http_loom_claim_tell(cl, NGX_OK);
        return;

    case NGX_DECLINED:

        /*
         * The zone said no connection of this node holds the id: a claim
         * of this node is left over, taken over if it is still the same
         */

        if (ngx_http_loom_claim_same_node(holder.data, holder.len, cs->node)
            && cl->takeovers < NGX_HTTP_LOOM_CLAIMS_TAKEOVERS)
        {
            ngx_log_error(NGX_LOG_INFO, cs->log, 0,
                          "loom: ClientId claim \"%V\" of \"%V\" is left "
                          "over, taking it over", &cl->key, &holder);

            cl->takeovers++;

            if (ngx_http_loom_claim_send(cl, &holder) == NGX_OK) {
                return;
            }

            cl->state = NGX_HTTP_LOOM_CLAIM_UNKNOWN;
            ngx_http_loom_claim_tell(cl, NGX_AGAIN);
            return;
        }

        ngx_log_error(NGX_LOG_INFO, cs->log, 0,
                      "loom: ClientId claim \"%V\" is held by \"%V\"",
                      &cl->key, &holder);

        cl->state = NGX_HTTP_LOOM_CLAIM_TAKEN;

        if (cl->queued) {
            ngx_queue_remove(&cl->queue);
            cl->queued = 0;
        }

        ngx_http_loom_claim_tell(cl, NGX_DECLINED);
        return;

    default: /* NGX_ERROR */

        if (reply) {
            ngx_log_error(NGX_LOG_ERR, cs->log, 0,
                          "loom: claiming ClientId \"%V\" failed: %*s",
                          &cl->key,
                          (size_t) (reply->type == REDIS_REPLY_ERROR
                                    ? reply->len : 0),
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        }

        /* made again by the next pass; soon when the link went down */
        cl->state = NGX_HTTP_LOOM_CLAIM_UNKNOWN;

        if (reply == NULL) {
            ngx_http_loom_claims_soon(cs);
        }

        ngx_http_loom_claim_tell(cl, NGX_AGAIN);
        return;
    }
}


static void
ngx_http_loom_claim_dropped(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_http_loom_claim_t  *cl;

    cl = (ngx_http_loom_claim_t *)
             ((u_char *) call - offsetof(ngx_http_loom_claim_t, drop));

    call->handler = NULL;

    if (cl->call.handler == NULL) {
        ngx_http_loom_claim_free(cl);
    }
}


/*
 * The owner hears the first answer, whatever it is, and later only that
 * another connection holds the id.  The handler may release the claim.
 */

static void
ngx_http_loom_claim_tell(ngx_http_loom_claim_t *cl, ngx_int_t rc)
{
    if (!cl->answered) {
        cl->answered = 1;

        if (cl->timer.timer_set) {
            ngx_del_timer(&cl->timer);
        }

    } else if (rc != NGX_DECLINED) {
        return;
    }

    if (cl->handler) {
        cl->handler(cl, rc);
    }
}


/* Redis is slow: the owner goes on, the answer still counts when it comes */

static void
ngx_http_loom_claim_timeout(ngx_event_t *ev)
{
    ngx_http_loom_claim_t  *cl;

    cl = ev->data;

    ngx_log_error(NGX_LOG_WARN, cl->claims->log, 0,
                  "loom: no answer to the ClientId claim \"%V\" in time, "
                  "going on", &cl->key);

    ngx_http_loom_claim_tell(cl, NGX_AGAIN);
}


static void
ngx_http_loom_claim_free(ngx_http_loom_claim_t *cl)
{
    if (cl->timer.timer_set) {
        ngx_del_timer(&cl->timer);
    }

    ngx_free(cl);
}


/* a pass within the retry delay, for claims that could not be made */

static void
ngx_http_loom_claims_soon(ngx_http_loom_claims_t *cs)
{
    ngx_msec_t  delay;

    if (cs->exiting) {
        return;
    }

    delay = ngx_min(cs->interval, NGX_HTTP_LOOM_CLAIMS_RETRY);

    if (cs->refresh.timer_set) {

        if ((ngx_msec_int_t) (cs->refresh.timer.key - ngx_current_msec)
            <= (ngx_msec_int_t) delay)
        {
            return;
        }

        ngx_del_timer(&cs->refresh);
    }

    ngx_add_timer(&cs->refresh, delay);
}


static void
ngx_http_loom_claims_refresh(ngx_event_t *ev)
{
    ngx_uint_t               n;
    ngx_queue_t             *q;
    ngx_http_loom_claim_t   *cl;
    ngx_http_loom_claims_t  *cs;

    cs = ev->data;

    if (!cs->running) {
        cs->running = 1;
        cs->pass++;
    }

    for (n = 0; !ngx_queue_empty(&cs->claims); /* void */) {

        q = ngx_queue_head(&cs->claims);
        cl = ngx_queue_data(q, ngx_http_loom_claim_t, queue);

        if (cl->pass == cs->pass) {
            break;
        }

        if (n == NGX_HTTP_LOOM_CLAIMS_BATCH) {
            /* the rest in the next pass of the event loop */
            ngx_add_timer(ev, 1);
            return;
        }

        /* a claim with a call in flight gets its answer anyway */

        if (cl->call.handler == NULL) {

            if (ngx_http_loom_claim_send(cl, NULL) != NGX_OK) {
                ngx_add_timer(ev, ngx_min(cs->interval,
                                          NGX_HTTP_LOOM_CLAIMS_RETRY));
                return;
            }

            n++;
        }

        cl->pass = cs->pass;
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&cs->claims, q);
    }

    cs->running = 0;

    ngx_add_timer(ev, cs->interval);
}
