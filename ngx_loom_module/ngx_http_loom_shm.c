/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_shm.h"


#define NGX_HTTP_LOOM_SWEEP_INTERVAL  5000


static ngx_int_t ngx_http_loom_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_loom_shm_client_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_loom_shm_topic_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_loom_shm_client_cmp(ngx_http_loom_shm_client_t *a,
    uint32_t hash, u_char *data, size_t len);
static ngx_int_t ngx_http_loom_shm_topic_cmp(ngx_http_loom_shm_topic_t *a,
    uint32_t hash, u_char *data, size_t len, ngx_pid_t pid);
static ngx_http_loom_shm_client_t *ngx_http_loom_shm_client_lookup(
    ngx_http_loom_shctx_t *sh, uint32_t hash, u_char *data, size_t len);
static ngx_http_loom_shm_topic_t *ngx_http_loom_shm_topic_lookup(
    ngx_http_loom_shctx_t *sh, uint32_t hash, u_char *data, size_t len,
    ngx_pid_t pid);
static void ngx_http_loom_shm_sweep_locked(ngx_http_loom_shm_t *shm,
    ngx_log_t *log);
static void ngx_http_loom_shm_forget_locked(ngx_http_loom_shm_t *shm,
    ngx_pid_t pid);
static void ngx_http_loom_shm_retire_locked(ngx_http_loom_shctx_t *sh,
    ngx_http_loom_stats_t *stats);
static void ngx_http_loom_shm_sweep_handler(ngx_event_t *ev);


ngx_int_t
ngx_http_loom_shm_configure(ngx_conf_t *cf, ngx_shm_zone_t *shm_zone)
{
    ngx_http_loom_shm_t  *shm;

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"loom\" is already in use");
        return NGX_ERROR;
    }

    shm = ngx_pcalloc(cf->pool, sizeof(ngx_http_loom_shm_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_loom_shm_init_zone;
    shm_zone->data = shm;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_loom_shm_t *oshm = data;

    size_t                  len;
    ngx_http_loom_shm_t    *shm;
    ngx_http_loom_shctx_t  *sh;

    shm = shm_zone->data;

    /*
     * on a reload this runs in the master while the old workers still use
     * the zone: take it over as it is
     */

    if (oshm) {
        shm->sh = oshm->sh;
        shm->shpool = oshm->shpool;
        return NGX_OK;
    }

    shm->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm->sh = shm->shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shm->shpool, sizeof(ngx_http_loom_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(sh, sizeof(ngx_http_loom_shctx_t));

    ngx_rbtree_init(&sh->clients, &sh->clients_sentinel,
                    ngx_http_loom_shm_client_insert);
    ngx_rbtree_init(&sh->topics, &sh->topics_sentinel,
                    ngx_http_loom_shm_topic_insert);

    shm->sh = sh;
    shm->shpool->data = sh;

    len = sizeof(" in loom zone \"\"") + shm_zone->shm.name.len;

    shm->shpool->log_ctx = ngx_slab_alloc(shm->shpool, len);
    if (shm->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shm->shpool->log_ctx, " in loom zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_shm_init_worker(ngx_http_loom_worker_t *w,
    ngx_shm_zone_t *shm_zone)
{
    ngx_http_loom_shm_t    *shm;
    ngx_http_loom_stats_t  *stats;

    shm = shm_zone->data;

    w->shm = shm;

    ngx_shmtx_lock(&shm->shpool->mutex);

    /*
     * The master puts a respawned worker in the slot of the one that died:
     * whatever that one left behind goes now, with any other leftovers.
     */

    stats = &shm->sh->workers[ngx_process_slot];

    if (stats->pid != 0 && (ngx_pid_t) stats->pid != ngx_pid) {
        ngx_log_error(NGX_LOG_NOTICE, w->log, 0,
                      "loom: clearing the state of worker %P",
                      (ngx_pid_t) stats->pid);

        ngx_http_loom_shm_forget_locked(shm, (ngx_pid_t) stats->pid);
        ngx_http_loom_shm_retire_locked(shm->sh, stats);
    }

    ngx_http_loom_shm_sweep_locked(shm, w->log);

    ngx_memzero(stats, sizeof(ngx_http_loom_stats_t));
    stats->pid = ngx_pid;

    ngx_shmtx_unlock(&shm->shpool->mutex);

    w->stats = stats;

    shm->sweep.handler = ngx_http_loom_shm_sweep_handler;
    shm->sweep.data = w;
    shm->sweep.log = w->log;
    shm->sweep.cancelable = 1;

    ngx_add_timer(&shm->sweep, NGX_HTTP_LOOM_SWEEP_INTERVAL);

    return NGX_OK;
}


void
ngx_http_loom_shm_exit_worker(ngx_http_loom_worker_t *w)
{
    ngx_http_loom_shm_t  *shm;

    shm = w->shm;

    if (shm == NULL || w->stats == NULL) {
        return;
    }

    if (shm->sweep.timer_set) {
        ngx_del_timer(&shm->sweep);
    }

    ngx_shmtx_lock(&shm->shpool->mutex);

    ngx_http_loom_shm_forget_locked(shm, ngx_pid);
    ngx_http_loom_shm_retire_locked(shm->sh, w->stats);
    ngx_memzero(w->stats, sizeof(ngx_http_loom_stats_t));

    ngx_shmtx_unlock(&shm->shpool->mutex);

    w->stats = NULL;
}


static void
ngx_http_loom_shm_sweep_handler(ngx_event_t *ev)
{
    ngx_http_loom_worker_t  *w;

    w = ev->data;

    ngx_shmtx_lock(&w->shm->shpool->mutex);
    ngx_http_loom_shm_sweep_locked(w->shm, w->log);
    ngx_shmtx_unlock(&w->shm->shpool->mutex);

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_LOOM_SWEEP_INTERVAL);
    }
}


/*
 * A worker of an older configuration can die while it shuts down; nobody
 * takes its slot then, so every worker looks for such leftovers from time
 * to time.
 */

static void
ngx_http_loom_shm_sweep_locked(ngx_http_loom_shm_t *shm, ngx_log_t *log)
{
    ngx_pid_t               pid;
    ngx_uint_t              i;
    ngx_http_loom_stats_t  *stats;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        stats = &shm->sh->workers[i];
        pid = (ngx_pid_t) stats->pid;

        if (pid == 0 || pid == ngx_pid) {
            continue;
        }

        if (kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH) {
            continue;
        }

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "loom: clearing the state of exited worker %P", pid);

        ngx_http_loom_shm_forget_locked(shm, pid);
        ngx_http_loom_shm_retire_locked(shm->sh, stats);
        ngx_memzero(stats, sizeof(ngx_http_loom_stats_t));
    }
}


static void
ngx_http_loom_shm_forget_locked(ngx_http_loom_shm_t *shm, ngx_pid_t pid)
{
    ngx_rbtree_node_t           *node, *next;
    ngx_http_loom_shctx_t       *sh;
    ngx_http_loom_shm_topic_t   *t;
    ngx_http_loom_shm_client_t  *cl;

    sh = shm->sh;

    if (sh->clients.root != sh->clients.sentinel) {

        for (node = ngx_rbtree_min(sh->clients.root, sh->clients.sentinel);
             node;
             node = next)
        {
            next = ngx_rbtree_next(&sh->clients, node);
            cl = (ngx_http_loom_shm_client_t *) node;

            if (cl->pid == pid) {
                ngx_rbtree_delete(&sh->clients, node);
                ngx_slab_free_locked(shm->shpool, node);
            }
        }
    }

    if (sh->topics.root != sh->topics.sentinel) {

        for (node = ngx_rbtree_min(sh->topics.root, sh->topics.sentinel);
             node;
             node = next)
        {
            next = ngx_rbtree_next(&sh->topics, node);
            t = (ngx_http_loom_shm_topic_t *) node;

            if (t->pid == pid) {
                ngx_rbtree_delete(&sh->topics, node);
                ngx_slab_free_locked(shm->shpool, node);
            }
        }
    }
}


static void
ngx_http_loom_shm_retire_locked(ngx_http_loom_shctx_t *sh,
    ngx_http_loom_stats_t *stats)
{
    ngx_http_loom_stats_t  *r;

    r = &sh->retired;

    r->connections_total += stats->connections_total;
    r->messages += stats->messages;
    r->publishes += stats->publishes;
    r->sends += stats->sends;
    r->deliveries += stats->deliveries;
    r->rejected += stats->rejected;
    r->errors += stats->errors;
    r->slow_consumers += stats->slow_consumers;
    r->protocol_errors += stats->protocol_errors;
    r->redis_reconnects += stats->redis_reconnects;
}


ngx_int_t
ngx_http_loom_shm_client_add(ngx_http_loom_shm_t *shm, ngx_str_t *id,
    ngx_log_t *log)
{
    uint32_t                     hash;
    ngx_http_loom_shm_client_t  *cl;

    hash = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&shm->shpool->mutex);

    if (ngx_http_loom_shm_client_lookup(shm->sh, hash, id->data, id->len)) {
        ngx_shmtx_unlock(&shm->shpool->mutex);
        return NGX_DECLINED;
    }

    cl = ngx_slab_alloc_locked(shm->shpool,
                               offsetof(ngx_http_loom_shm_client_t, data)
                               + id->len);
    if (cl == NULL) {
        ngx_shmtx_unlock(&shm->shpool->mutex);
        return NGX_ERROR;
    }

    cl->node.key = hash;
    cl->pid = ngx_pid;
    cl->len = (u_short) id->len;
    ngx_memcpy(cl->data, id->data, id->len);

    ngx_rbtree_insert(&shm->sh->clients, &cl->node);

    ngx_shmtx_unlock(&shm->shpool->mutex);

    return NGX_OK;
}


void
ngx_http_loom_shm_client_del(ngx_http_loom_shm_t *shm, ngx_str_t *id)
{
    uint32_t                     hash;
    ngx_http_loom_shm_client_t  *cl;

    hash = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&shm->shpool->mutex);

    cl = ngx_http_loom_shm_client_lookup(shm->sh, hash, id->data, id->len);

    if (cl && cl->pid == ngx_pid) {
        ngx_rbtree_delete(&shm->sh->clients, &cl->node);
        ngx_slab_free_locked(shm->shpool, cl);
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);
}


void
ngx_http_loom_shm_subscribers(ngx_http_loom_shm_t *shm, ngx_str_t *topic,
    ngx_int_t delta, ngx_log_t *log)
{
    uint32_t                    hash;
    ngx_http_loom_shm_topic_t  *t;

    hash = ngx_crc32_long(topic->data, topic->len);

    ngx_shmtx_lock(&shm->shpool->mutex);

    t = ngx_http_loom_shm_topic_lookup(shm->sh, hash, topic->data,
                                       topic->len, ngx_pid);

    if (t == NULL) {

        if (delta <= 0) {
            ngx_shmtx_unlock(&shm->shpool->mutex);
            return;
        }

        t = ngx_slab_alloc_locked(shm->shpool,
                                  offsetof(ngx_http_loom_shm_topic_t, data)
                                  + topic->len);
        if (t == NULL) {
            ngx_shmtx_unlock(&shm->shpool->mutex);

            /* the registry is the node-wide view; delivery does not need it */

            if (!shm->full_logged) {
                shm->full_logged = 1;
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "loom: zone is full, subscriptions are not "
                              "all counted on the status page; "
                              "raise \"loom_zone_size\"");
            }

            return;
        }

        t->node.key = hash;
        t->pid = ngx_pid;
        t->count = 0;
        t->len = topic->len;
        ngx_memcpy(t->data, topic->data, topic->len);

        ngx_rbtree_insert(&shm->sh->topics, &t->node);
    }

    if (delta < 0 && t->count <= (ngx_uint_t) -delta) {
        ngx_rbtree_delete(&shm->sh->topics, &t->node);
        ngx_slab_free_locked(shm->shpool, t);

    } else {
        t->count += delta;
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);
}


static ngx_int_t
ngx_http_loom_shm_client_cmp(ngx_http_loom_shm_client_t *a, uint32_t hash,
    u_char *data, size_t len)
{
    if (a->node.key != hash) {
        return (a->node.key < hash) ? -1 : 1;
    }

    return ngx_memn2cmp(a->data, data, a->len, len);
}


static ngx_int_t
ngx_http_loom_shm_topic_cmp(ngx_http_loom_shm_topic_t *a, uint32_t hash,
    u_char *data, size_t len, ngx_pid_t pid)
{
    ngx_int_t  rc;

    if (a->node.key != hash) {
        return (a->node.key < hash) ? -1 : 1;
    }

    rc = ngx_memn2cmp(a->data, data, a->len, len);

    if (rc != 0) {
        return rc;
    }

    if (a->pid != pid) {
        return (a->pid < pid) ? -1 : 1;
    }

    return 0;
}


static ngx_http_loom_shm_client_t *
ngx_http_loom_shm_client_lookup(ngx_http_loom_shctx_t *sh, uint32_t hash,
    u_char *data, size_t len)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_loom_shm_client_t  *cl;

    node = sh->clients.root;
    sentinel = sh->clients.sentinel;

    while (node != sentinel) {
        cl = (ngx_http_loom_shm_client_t *) node;

        rc = ngx_http_loom_shm_client_cmp(cl, hash, data, len);

        if (rc == 0) {
            return cl;
        }

        node = (rc > 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_loom_shm_topic_t *
ngx_http_loom_shm_topic_lookup(ngx_http_loom_shctx_t *sh, uint32_t hash,
    u_char *data, size_t len, ngx_pid_t pid)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_loom_shm_topic_t  *t;

    node = sh->topics.root;
    sentinel = sh->topics.sentinel;

    while (node != sentinel) {
        t = (ngx_http_loom_shm_topic_t *) node;

        rc = ngx_http_loom_shm_topic_cmp(t, hash, data, len, pid);

        if (rc == 0) {
            return t;
        }

        node = (rc > 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_loom_shm_client_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t           **p;
    ngx_http_loom_shm_client_t   *cl, *t;

    cl = (ngx_http_loom_shm_client_t *) node;

    for ( ;; ) {
        t = (ngx_http_loom_shm_client_t *) temp;

        p = (ngx_http_loom_shm_client_cmp(t, (uint32_t) cl->node.key,
                                          cl->data, cl->len) > 0)
            ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_loom_shm_topic_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_loom_shm_topic_t   *n, *t;

    n = (ngx_http_loom_shm_topic_t *) node;

    for ( ;; ) {
        t = (ngx_http_loom_shm_topic_t *) temp;

        p = (ngx_http_loom_shm_topic_cmp(t, (uint32_t) n->node.key,
                                         n->data, n->len, n->pid) > 0)
            ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
