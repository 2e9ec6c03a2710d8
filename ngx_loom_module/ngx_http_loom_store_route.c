/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_cluster.h"


/*
 * Commands in a cluster: each goes to the master of its slot, on that
 * master's command link, and is kept until answered.  MOVED points the
 * slot at the node it names (and the map is read again soon), ASK sends
 * the command once to the node it names behind ASKING, TRYAGAIN and
 * CLUSTERDOWN send it again a little later (50 and 100 ms); at most
 * NGX_HTTP_LOOM_CLUSTER_REDIRECTS times, then the caller gets the error,
 * or no reply (storage unavailable) after TRYAGAIN and CLUSTERDOWN.
 *
 * Order: a redirected command "freezes" its slot.  The slot's commands
 * still due elsewhere are answered first (each redirected in turn joins
 * the queue in the order it was sent), then the queue is sent again, then
 * the commands that came while the slot was frozen.
 */


static ngx_http_loom_cluster_frozen_t *ngx_http_loom_cluster_frozen(
    ngx_http_loom_cluster_t *cl, ngx_uint_t slot, ngx_uint_t create);
static ngx_int_t ngx_http_loom_cluster_dispatch(
    ngx_http_loom_cluster_cmd_t *cc, const char **reason);
static void ngx_http_loom_cluster_reply(void *data, redisReply *reply);
static ngx_int_t ngx_http_loom_cluster_redirected(
    ngx_http_loom_cluster_cmd_t *cc, redisReply *reply);


static ngx_http_loom_cluster_frozen_t *
ngx_http_loom_cluster_frozen(ngx_http_loom_cluster_t *cl, ngx_uint_t slot,
    ngx_uint_t create)
{
    ngx_queue_t                     *q;
    ngx_http_loom_cluster_frozen_t  *f;

    for (q = ngx_queue_head(&cl->frozen);
         q != ngx_queue_sentinel(&cl->frozen);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_http_loom_cluster_frozen_t, queue);

        if (f->slot == slot) {
            return f;
        }
    }

    if (!create) {
        return NULL;
    }

    f = ngx_alloc(sizeof(ngx_http_loom_cluster_frozen_t), cl->log);
    if (f == NULL) {
        return NULL;
    }

    f->slot = slot;
    ngx_queue_init(&f->bounced);
    ngx_queue_init(&f->fresh);
    f->until = ngx_current_msec;
    f->deadline = ngx_current_msec + cl->store->conf->redis_timeout;
    ngx_queue_insert_tail(&cl->frozen, &f->queue);

    return f;
}


ngx_int_t
ngx_http_loom_cluster_send(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t slot, ngx_uint_t script,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    int                              len;
    char                            *cmd;
    ngx_int_t                        rc;
    ngx_http_loom_cluster_t         *cl;
    ngx_http_loom_cluster_cmd_t     *cc;
    ngx_http_loom_cluster_frozen_t  *f;

    cl = st->cluster;

    f = ngx_http_loom_cluster_frozen(cl, slot, 0);

    if (f == NULL && ngx_http_loom_cluster_owner(cl, slot) == NULL) {
        *reason = cl->nmasters ? "no redis master for the topic's slot"
                               : "not connected to redis";
        return NGX_DECLINED;
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    cc = ngx_alloc(sizeof(ngx_http_loom_cluster_cmd_t), cl->log);
    if (cc == NULL) {
        redisFreeCommand(cmd);
        *reason = "out of memory";
        return NGX_ERROR;
    }

    cc->cluster = cl;
    cc->call = call;
    cc->link = NULL;
    cc->ask = NULL;
    cc->command = cmd;
    cc->len = len;
    cc->slot = slot;
    cc->redirects = 0;
    cc->script = script;

    if (f) {
        /* behind the slot's redirected commands */
        ngx_queue_insert_tail(&f->fresh, &cc->queue);
        return NGX_OK;
    }

    rc = ngx_http_loom_cluster_dispatch(cc, reason);

    if (rc != NGX_OK) {
        ngx_free(cc);
    }

    return rc;
}


/*
 * listTopics: argv[3] (after EVALSHA, sha, 0) is the cursor, "<scan
 * cursor> * 1024 + <master>"; the script gets the scan cursor, and after
 * its own arguments, the master's number and the next master's (0 after
 * the last)
 */

ngx_int_t
ngx_http_loom_cluster_list(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    int                       i;
    u_char                    scan[NGX_INT64_LEN], me[NGX_INT_T_LEN];
    u_char                    next[NGX_INT_T_LEN];
    size_t                    lens[16];
    uint64_t                  c;
    ngx_uint_t                m;
    const char               *args[16];
    ngx_http_loom_cluster_t  *cl;

    cl = st->cluster;

    if (argc < 4 || argc + 2 > 16) {
        *reason = "bad listTopics arguments";
        return NGX_ERROR;
    }

    c = 0;

    for (i = 0; i < (int) argvlen[3]; i++) {
        c = c * 10 + (argv[3][i] - '0');
    }

    m = c % 1024;
    c /= 1024;

    if (m >= cl->nmasters) {
        *reason = cl->nmasters ? "the cluster changed during listTopics"
                               : "not connected to redis";
        return NGX_DECLINED;
    }

    for (i = 0; i < argc; i++) {
        args[i] = argv[i];
        lens[i] = argvlen[i];
    }

    args[3] = (char *) scan;
    lens[3] = ngx_sprintf(scan, "%uL", c) - scan;
    args[argc] = (char *) me;
    lens[argc] = ngx_sprintf(me, "%ui", m) - me;
    args[argc + 1] = (char *) next;
    lens[argc + 1] = ngx_sprintf(next, "%ui",
                                 m + 1 < cl->nmasters ? m + 1 : 0) - next;

    return ngx_http_loom_cluster_send(st, call, cl->masters[m]->first, 0,
                                      argc + 2, args, lens, reason);
}


ngx_int_t
ngx_http_loom_cluster_freeze(ngx_http_loom_cluster_t *cl, ngx_uint_t slot)
{
    return ngx_http_loom_cluster_frozen(cl, slot, 1) ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_loom_cluster_dispatch(ngx_http_loom_cluster_cmd_t *cc,
    const char **reason)
{
    ngx_int_t                      rc;
    const char                    *argv[1];
    size_t                         argvlen[1];
    ngx_http_loom_cluster_t       *cl;
    ngx_http_loom_store_link_t    *link;
    ngx_http_loom_cluster_node_t  *node;

    cl = cc->cluster;

    node = cc->ask ? cc->ask : ngx_http_loom_cluster_owner(cl, cc->slot);

    if (node == NULL) {
        *reason = "no redis master for the topic's slot";
        goto refused;
    }

    link = &node->command;

    if (link->rd.state != NGX_HTTP_LOOM_LINK_READY) {
        *reason = "not connected to redis";
        goto refused;
    }

    if (cc->ask) {
        argv[0] = "ASKING";
        argvlen[0] = 6;

        rc = ngx_http_loom_redis_send(&link->rd, 1, argv, argvlen, NULL,
                                      NULL, 0, reason);
        if (rc != NGX_OK) {
            goto failed;
        }
    }

    rc = ngx_http_loom_redis_send_formatted(&link->rd, cc->command, cc->len,
                                            ngx_http_loom_cluster_reply, cc,
                                            1, reason);
    if (rc != NGX_OK) {
        /* the command was freed */
        cc->command = NULL;
        return rc;
    }

    cc->link = link;
    cl->inflight[cc->slot]++;

    cc->call->durable = 0;
    cc->call->unconfirmed = 0;

    if (cc->script && cl->store->conf->redis_wait && !cc->call->ephemeral) {
        ngx_http_loom_store_wait(link, cc->call);
    }

    return NGX_OK;

refused:

    rc = NGX_DECLINED;

failed:

    redisFreeCommand(cc->command);
    cc->command = NULL;

    return rc;
}


static void
ngx_http_loom_cluster_reply(void *data, redisReply *reply)
{
    ngx_uint_t                    slot;
    ngx_http_loom_cluster_t      *cl;
    ngx_http_loom_store_link_t   *link;
    ngx_http_loom_store_call_t   *call;
    ngx_http_loom_cluster_cmd_t  *cc;

    cc = data;
    cl = cc->cluster;
    link = cc->link;
    call = cc->call;
    slot = cc->slot;

    cl->inflight[slot]--;

    if (reply && reply->type == REDIS_REPLY_ERROR) {

        switch (ngx_http_loom_cluster_redirected(cc, reply)) {

        case NGX_OK:
            return;

        case NGX_ABORT:
            /* the cluster is down or busy for too long: unavailable */
            reply = NULL;
            break;

        default:
            break;
        }
    }

    ngx_free(cc);

    ngx_http_loom_store_replied(link, call, reply);

    if (cl->inflight[slot] == 0 && !ngx_queue_empty(&cl->frozen)) {
        ngx_http_loom_cluster_kick(cl);
    }
}


/*
 * NGX_OK: the command is sent again (or waits to be); NGX_DECLINED: the
 * error is the caller's; NGX_ABORT: the caller gets no reply (storage
 * unavailable)
 */

static ngx_int_t
ngx_http_loom_cluster_redirected(ngx_http_loom_cluster_cmd_t *cc,
    redisReply *reply)
{
    char                              *cmd;
    size_t                             len;
    const char                        *reason;
    ngx_http_loom_cluster_t           *cl;
    ngx_http_loom_redis_cmd_t         *current;
    ngx_http_loom_store_link_t        *link;
    ngx_http_loom_cluster_node_t      *node;
    ngx_http_loom_cluster_frozen_t    *f;
    ngx_http_loom_cluster_redirect_t   rd;

    cl = cc->cluster;
    link = cc->link;

    current = ngx_http_loom_redis_current(&link->rd);

    if (current == NULL || current->command == NULL) {
        return NGX_DECLINED;
    }

    if (cc->script && reply->len > 8
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the node lost its scripts: once with the text, on that node */

        cmd = ngx_http_loom_store_eval(cl->store, current->command,
                                       current->len, &len, &link->rd.log);
        if (cmd == NULL) {
            return NGX_DECLINED;
        }

        ngx_http_loom_store_wait_skip(link, cc->call);

        cc->command = cmd;
        cc->len = len;
        cc->ask = NULL;

        if (ngx_http_loom_cluster_dispatch(cc, &reason) != NGX_OK) {
            /* the caller answers with the NOSCRIPT error */
            return NGX_DECLINED;
        }

        (void) ngx_http_loom_store_load_scripts(link,
                                                ngx_http_loom_store_reloaded);
        return NGX_OK;
    }

    if (ngx_http_loom_cluster_redirect((u_char *) reply->str, reply->len,
                                       &rd)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (++cc->redirects > NGX_HTTP_LOOM_CLUSTER_REDIRECTS) {
        ngx_log_error(NGX_LOG_WARN, &link->rd.log, 0,
                      "loom: redis redirected a command more than %d "
                      "times, last: %*s", NGX_HTTP_LOOM_CLUSTER_REDIRECTS,
                      (size_t) reply->len, reply->str);

        return (rd.kind == NGX_HTTP_LOOM_CLUSTER_DOWN
                || rd.kind == NGX_HTTP_LOOM_CLUSTER_TRYAGAIN)
               ? NGX_ABORT : NGX_DECLINED;
    }

    f = ngx_http_loom_cluster_frozen(cl, cc->slot, 1);
    if (f == NULL) {
        return NGX_DECLINED;
    }

    /* the command is ours again; the WAIT behind it answers nothing */

    current->command = NULL;
    ngx_http_loom_store_wait_skip(link, cc->call);

    cc->ask = NULL;

    switch (rd.kind) {

    case NGX_HTTP_LOOM_CLUSTER_MOVED:
        node = cl->resolve(cl, &rd.host, rd.port);

        if (node) {
            cl->map[rd.slot] = (u_char) node->index;
        }

        ngx_http_loom_cluster_refresh_soon(cl);
        break;

    case NGX_HTTP_LOOM_CLUSTER_ASK:
        cc->ask = cl->resolve(cl, &rd.host, rd.port);
        break;

    case NGX_HTTP_LOOM_CLUSTER_DOWN:
        ngx_http_loom_cluster_refresh_soon(cl);
        f->until = ngx_current_msec + 2 * NGX_HTTP_LOOM_CLUSTER_RETRY;
        break;

    default: /* TRYAGAIN */
        f->until = ngx_current_msec + NGX_HTTP_LOOM_CLUSTER_RETRY;
        break;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, cl->log, 0,
                   "loom: slot %ui redirected (%ui): %*s", cc->slot,
                   rd.kind, (size_t) reply->len, reply->str);

    ngx_queue_insert_tail(&f->bounced, &cc->queue);

    if (cl->inflight[cc->slot] == 0) {
        ngx_add_timer(&cl->kick, 1);
    }

    return NGX_OK;
}


void
ngx_http_loom_cluster_fail(ngx_http_loom_cluster_cmd_t *cc)
{
    ngx_http_loom_store_call_t  *call;

    call = cc->call;

    if (cc->command) {
        redisFreeCommand(cc->command);
    }

    ngx_free(cc);

    call->handler(call, NULL);
}


/* frozen slots whose earlier commands are all answered are sent again */

void
ngx_http_loom_cluster_kick(ngx_http_loom_cluster_t *cl)
{
    ngx_msec_t                       wait;
    ngx_queue_t                     *q, *next, *fq;
    const char                      *reason;
    ngx_http_loom_cluster_cmd_t     *cc;
    ngx_http_loom_cluster_node_t    *node;
    ngx_http_loom_cluster_frozen_t  *f;

    wait = 0;

    for (q = ngx_queue_head(&cl->frozen);
         q != ngx_queue_sentinel(&cl->frozen);
         q = next)
    {
        next = ngx_queue_next(q);
        f = ngx_queue_data(q, ngx_http_loom_cluster_frozen_t, queue);

        if (cl->inflight[f->slot]) {
            continue;
        }

        if ((ngx_msec_int_t) (f->until - ngx_current_msec) > 0) {
            wait = NGX_HTTP_LOOM_CLUSTER_RETRY;
            continue;
        }

        for ( ;; ) {
            fq = !ngx_queue_empty(&f->bounced) ? &f->bounced : &f->fresh;

            if (ngx_queue_empty(fq)) {
                break;
            }

            cc = ngx_queue_data(ngx_queue_head(fq),
                                ngx_http_loom_cluster_cmd_t, queue);

            node = cc->ask ? cc->ask
                           : ngx_http_loom_cluster_owner(cl, cc->slot);

            if (node && node->command.rd.state != NGX_HTTP_LOOM_LINK_READY
                && (ngx_msec_int_t) (f->deadline - ngx_current_msec) > 0)
            {
                /* the new owner's link is on its way */
                wait = NGX_HTTP_LOOM_CLUSTER_RETRY;
                break;
            }

            ngx_queue_remove(&cc->queue);

            if (ngx_http_loom_cluster_dispatch(cc, &reason) != NGX_OK) {
                ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                              "loom: a redirected command failed: %s",
                              reason);
                ngx_http_loom_cluster_fail(cc);
            }
        }

        if (ngx_queue_empty(&f->bounced) && ngx_queue_empty(&f->fresh)) {
            ngx_queue_remove(&f->queue);
            ngx_free(f);
        }
    }

    if (wait && !cl->kick.timer_set) {
        ngx_add_timer(&cl->kick, wait);
    }
}


void
ngx_http_loom_cluster_kick_handler(ngx_event_t *ev)
{
    ngx_http_loom_cluster_t  *cl;

    cl = ev->data;

    if (!cl->store->exiting) {
        ngx_http_loom_cluster_kick(cl);
    }
}
