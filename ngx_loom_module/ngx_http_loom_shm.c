/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sys/random.h>
#include "ngx_http_loom_shm.h"


#define NGX_HTTP_LOOM_SWEEP_INTERVAL  5000


static ngx_int_t ngx_http_loom_shm_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_loom_shm_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_loom_shm_cmp(ngx_http_loom_shm_node_t *a,
    uint32_t hash, u_char *data, size_t len, ngx_pid_t pid);
static ngx_http_loom_shm_node_t *ngx_http_loom_shm_lookup(
    ngx_rbtree_t *tree, uint32_t hash, u_char *data, size_t len,
    ngx_pid_t pid);
static ngx_http_loom_shm_node_t *ngx_http_loom_shm_add_locked(
    ngx_http_loom_shm_t *shm, ngx_rbtree_t *tree, uint32_t hash,
    ngx_str_t *data);
static void ngx_http_loom_shm_sweep_locked(ngx_http_loom_shm_t *shm,
    ngx_log_t *log);
static void ngx_http_loom_shm_forget_locked(ngx_http_loom_shm_t *shm,
    ngx_pid_t pid);
static void ngx_http_loom_shm_retire_locked(ngx_http_loom_shctx_t *sh,
    ngx_http_loom_stats_t *stats);
static void ngx_http_loom_shm_sweep_handler(ngx_event_t *ev);
static void ngx_http_loom_shm_node(u_char *node);


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

    ngx_http_loom_shm_node(sh->node);

    ngx_rbtree_init(&sh->clients, &sh->clients_sentinel,
                    ngx_http_loom_shm_insert);
    ngx_rbtree_init(&sh->topics, &sh->topics_sentinel,
                    ngx_http_loom_shm_insert);

    shm->sh = sh;
    shm->shpool->data = sh;

    /* a full zone is expected under load and logged by the callers */
    shm->shpool->log_nomem = 0;

    len = sizeof(" in loom zone \"\"") + shm_zone->shm.name.len;

    shm->shpool->log_ctx = ngx_slab_alloc(shm->shpool, len);
    if (shm->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shm->shpool->log_ctx, " in loom zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


/*
 * A node is one zone: its workers, old and new ones over a reload, share
 * the name; a binary upgrade makes a new zone and a new name.
 */

static void
ngx_http_loom_shm_node(u_char *node)
{
    u_char      bytes[8];
    ngx_uint_t  i;

    if (getrandom(bytes, sizeof(bytes), GRND_NONBLOCK)
        != (ssize_t) sizeof(bytes))
    {
        for (i = 0; i < sizeof(bytes); i++) {
            bytes[i] = (u_char) (ngx_random() ^ ngx_pid ^ ngx_time());
        }
    }

    ngx_hex_dump(node, bytes, sizeof(bytes));
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
    stats->worker = ngx_worker;

    ngx_shmtx_unlock(&shm->shpool->mutex);

    w->stats = stats;
    shm->stats = stats;

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
    ngx_uint_t                 i;
    ngx_rbtree_t              *tree;
    ngx_rbtree_node_t         *node, *next;
    ngx_http_loom_shm_node_t  *n;

    for (i = 0; i < 2; i++) {
        tree = (i == 0) ? &shm->sh->clients : &shm->sh->topics;

        if (tree->root == tree->sentinel) {
            continue;
        }

        for (node = ngx_rbtree_min(tree->root, tree->sentinel);
             node;
             node = next)
        {
            next = ngx_rbtree_next(tree, node);
            n = (ngx_http_loom_shm_node_t *) node;

            if (n->pid == pid) {
                ngx_rbtree_delete(tree, node);
                ngx_slab_free_locked(shm->shpool, node);
            }
        }
    }
}


static void
ngx_http_loom_shm_retire_locked(ngx_http_loom_shctx_t *sh,
    ngx_http_loom_stats_t *stats)
{
    ngx_http_loom_shm_stats_add(&sh->retired, stats);
}


/* the counters of one slot added to another; gauges stay */

void
ngx_http_loom_shm_stats_add(ngx_http_loom_stats_t *to,
    ngx_http_loom_stats_t *from)
{
    ngx_uint_t  i;

    to->connections_total += from->connections_total;
    to->messages += from->messages;
    to->publishes += from->publishes;
    to->sends += from->sends;
    to->deliveries += from->deliveries;
    to->rejected += from->rejected;
    to->errors += from->errors;
    to->slow_consumers += from->slow_consumers;
    to->protocol_errors += from->protocol_errors;
    to->redis_reconnects += from->redis_reconnects;

    for (i = 0; i < NGX_HTTP_LOOM_CODES; i++) {
        to->codes[i] += from->codes[i];
    }

    ngx_http_loom_shm_hist_add(&to->publish_ack, &from->publish_ack);
}


/* the codes the metrics name; 0: the rest of that hundred */

ngx_uint_t  ngx_http_loom_codes[NGX_HTTP_LOOM_CODES] = {
    400, 403, 409, 0, 500, 0
};


void
ngx_http_loom_shm_count_answer(ngx_http_loom_stats_t *st, ngx_uint_t code)
{
    ngx_uint_t  i;

    if (code < 400) {
        return;
    }

    if (code == 400) {
        st->rejected++;

    } else if (code >= 500) {
        st->errors++;
    }

    for (i = 0; i < NGX_HTTP_LOOM_CODES; i++) {
        if (ngx_http_loom_codes[i] == code) {
            st->codes[i]++;
            return;
        }
    }

    st->codes[code < 500 ? 3 : 5]++;
}


void
ngx_http_loom_shm_hist_add(ngx_http_loom_hist_t *to,
    ngx_http_loom_hist_t *from)
{
    ngx_uint_t  i;

    for (i = 0; i <= NGX_HTTP_LOOM_HIST_BUCKETS; i++) {
        to->bucket[i] += from->bucket[i];
    }

    to->sum += from->sum;
    to->count += from->count;
}


/* 0.5 ms to 5 s: the latencies of a broker, not of a disk */

ngx_msec_int_t  ngx_http_loom_hist_bounds[NGX_HTTP_LOOM_HIST_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};


/* one worker writes its own slot: plain increments are enough */

void
ngx_http_loom_shm_observe(ngx_http_loom_hist_t *h, ngx_msec_int_t usec)
{
    ngx_uint_t  i;

    if (usec < 0) {
        usec = 0;
    }

    for (i = 0; i < NGX_HTTP_LOOM_HIST_BUCKETS; i++) {
        if (usec <= ngx_http_loom_hist_bounds[i]) {
            break;
        }
    }

    h->bucket[i]++;
    h->sum += usec;
    h->count++;
}


ngx_int_t
ngx_http_loom_shm_client_add(ngx_http_loom_shm_t *shm, ngx_str_t *id,
    ngx_log_t *log)
{
    uint32_t                   hash;
    ngx_http_loom_shm_node_t  *n;

    hash = ngx_crc32_long(id->data, id->len);

    ngx_shmtx_lock(&shm->shpool->mutex);

    /* a ClientId is unique on the node, whichever worker holds it */

    if (ngx_http_loom_shm_lookup(&shm->sh->clients, hash, id->data, id->len,
                                 0))
    {
        ngx_shmtx_unlock(&shm->shpool->mutex);
        return NGX_DECLINED;
    }

    n = ngx_http_loom_shm_add_locked(shm, &shm->sh->clients, hash, id);

    ngx_shmtx_unlock(&shm->shpool->mutex);

    return n ? NGX_OK : NGX_ERROR;
}


void
ngx_http_loom_shm_client_del(ngx_http_loom_shm_t *shm, ngx_str_t *id)
{
    uint32_t                   hash;
    ngx_http_loom_shm_node_t  *n;

    hash = ngx_crc32_long(id->data, id->len);

    ngx_shmtx_lock(&shm->shpool->mutex);

    n = ngx_http_loom_shm_lookup(&shm->sh->clients, hash, id->data, id->len,
                                 ngx_pid);

    if (n) {
        ngx_rbtree_delete(&shm->sh->clients, &n->node);
        ngx_slab_free_locked(shm->shpool, n);
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);
}


void
ngx_http_loom_shm_subscribers(ngx_http_loom_shm_t *shm, ngx_str_t *topic,
    ngx_int_t delta, ngx_log_t *log)
{
    uint32_t                   hash;
    ngx_http_loom_shm_node_t  *n;

    hash = ngx_crc32_long(topic->data, topic->len);

    if (shm->stats) {
        shm->stats->subscriptions += delta;
    }

    ngx_shmtx_lock(&shm->shpool->mutex);

    n = ngx_http_loom_shm_lookup(&shm->sh->topics, hash, topic->data,
                                 topic->len, ngx_pid);

    if (n == NULL && delta > 0) {
        n = ngx_http_loom_shm_add_locked(shm, &shm->sh->topics, hash, topic);

        if (n == NULL && !shm->full_logged) {

            /* the registry is the node-wide view; delivery does not need it */

            shm->full_logged = 1;
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "loom: zone is full, subscriptions are not "
                          "all counted on the status page; "
                          "raise \"loom_zone_size\"");
        }
    }

    if (n == NULL) {
        ngx_shmtx_unlock(&shm->shpool->mutex);
        return;
    }

    if (delta < 0 && n->count <= (ngx_uint_t) -delta) {
        ngx_rbtree_delete(&shm->sh->topics, &n->node);
        ngx_slab_free_locked(shm->shpool, n);

        if (shm->stats) {
            shm->stats->channels--;
        }

    } else {
        if (n->count == 0 && shm->stats) {
            shm->stats->channels++;
        }

        n->count += delta;
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);
}


static ngx_http_loom_shm_node_t *
ngx_http_loom_shm_add_locked(ngx_http_loom_shm_t *shm, ngx_rbtree_t *tree,
    uint32_t hash, ngx_str_t *data)
{
    ngx_http_loom_shm_node_t  *n;

    n = ngx_slab_alloc_locked(shm->shpool,
                              offsetof(ngx_http_loom_shm_node_t, data)
                              + data->len);
    if (n == NULL) {
        return NULL;
    }

    n->node.key = hash;
    n->pid = ngx_pid;
    n->count = 0;
    n->len = data->len;
    ngx_memcpy(n->data, data->data, data->len);

    ngx_rbtree_insert(tree, &n->node);

    return n;
}


/* ordered by hash, data and pid; pid 0 matches any pid */

static ngx_int_t
ngx_http_loom_shm_cmp(ngx_http_loom_shm_node_t *a, uint32_t hash,
    u_char *data, size_t len, ngx_pid_t pid)
{
    ngx_int_t  rc;

    if (a->node.key != hash) {
        return (a->node.key < hash) ? -1 : 1;
    }

    rc = ngx_memn2cmp(a->data, data, a->len, len);

    if (rc != 0 || pid == 0 || a->pid == pid) {
        return rc;
    }

    return (a->pid < pid) ? -1 : 1;
}


static ngx_http_loom_shm_node_t *
ngx_http_loom_shm_lookup(ngx_rbtree_t *tree, uint32_t hash, u_char *data,
    size_t len, ngx_pid_t pid)
{
    ngx_int_t                  rc;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_loom_shm_node_t  *n;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {
        n = (ngx_http_loom_shm_node_t *) node;

        rc = ngx_http_loom_shm_cmp(n, hash, data, len, pid);

        if (rc == 0) {
            return n;
        }

        node = (rc > 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_loom_shm_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t         **p;
    ngx_http_loom_shm_node_t   *n, *t;

    n = (ngx_http_loom_shm_node_t *) node;

    for ( ;; ) {
        t = (ngx_http_loom_shm_node_t *) temp;

        p = (ngx_http_loom_shm_cmp(t, (uint32_t) n->node.key, n->data,
                                   n->len, n->pid) > 0)
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
