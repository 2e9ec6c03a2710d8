/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_store.h"


/* a worker's line of the page, copied out of the zone */

typedef struct {
    ngx_pid_t                   pid;
    ngx_uint_t                  redis_command;
    ngx_uint_t                  redis_subscriber;
    ngx_uint_t                  connections;
} ngx_http_loom_status_worker_t;


/* a topic's subscribers in one worker, copied out of the zone */

typedef struct {
    ngx_uint_t                  count;
    size_t                      len;
    u_char                     *data;
} ngx_http_loom_status_topic_t;


/*
 * Everything the page shows, copied while the zone is locked; the JSON is
 * built after, so that the handshakes and subscriptions of every worker,
 * which take the same lock, wait only for the copy.
 */

typedef struct {
    ngx_http_loom_stats_t           sum;
    ngx_uint_t                      nworkers;
    ngx_http_loom_status_worker_t  *workers;

    ngx_uint_t                      ntopics;
    ngx_http_loom_status_topic_t   *topics;
} ngx_http_loom_status_copy_t;


#define NGX_HTTP_LOOM_STATUS_TRIES  4


static ngx_int_t ngx_http_loom_status_copy(ngx_http_request_t *r,
    ngx_http_loom_shm_t *shm, ngx_http_loom_status_copy_t *cp);
static void ngx_http_loom_status_copy_workers(ngx_http_loom_shm_t *shm,
    ngx_http_loom_status_copy_t *cp);
static ngx_int_t ngx_http_loom_status_copy_topics(ngx_http_loom_shm_t *shm,
    ngx_http_loom_status_copy_t *cp, ngx_uint_t room, size_t size,
    ngx_uint_t *ntopics, size_t *need);
static json_t *ngx_http_loom_status_json(ngx_http_loom_main_conf_t *lmcf,
    ngx_http_loom_status_copy_t *cp);
static json_t *ngx_http_loom_status_topics(ngx_http_loom_status_copy_t *cp,
    json_int_t *subscriptions);
static json_t *ngx_http_loom_status_hist(ngx_http_loom_hist_t *h);
static const char *ngx_http_loom_status_link(ngx_uint_t state);


/*
 * What this node knows, as JSON: connections, subscriptions per topic,
 * the message counters and the state of each worker's Redis links.
 */

ngx_int_t
ngx_http_loom_status_handler(ngx_http_request_t *r)
{
    char                         *text;
    size_t                        len;
    json_t                       *root;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_http_loom_main_conf_t    *lmcf;
    ngx_http_loom_status_copy_t   cp;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_loom_module);

    if (lmcf->shm_zone == NULL || lmcf->worker == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "loom_status: no \"loom\" location is configured");
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_http_loom_status_copy(r, lmcf->shm_zone->data, &cp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    root = ngx_http_loom_status_json(lmcf, &cp);
    if (root == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, text, len);
    *b->last++ = '\n';
    free(text);

    return ngx_http_loom_status_send(r, b, "application/json");
}


/* a whole answer in one buffer, for the status and metrics locations */

ngx_int_t
ngx_http_loom_status_send(ngx_http_request_t *r, ngx_buf_t *b, char *type)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The memory for the copy is taken before the lock: the size of the topic
 * table is looked at under the lock, and if it grew in between, the copy
 * is tried again with more room.
 */

static ngx_int_t
ngx_http_loom_status_copy(ngx_http_request_t *r, ngx_http_loom_shm_t *shm,
    ngx_http_loom_status_copy_t *cp)
{
    u_char      *strings;
    size_t       size, need;
    ngx_int_t    rc;
    ngx_uint_t   room, ntopics, tries;

    ngx_memzero(cp, sizeof(ngx_http_loom_status_copy_t));

    cp->workers = ngx_palloc(r->pool, NGX_MAX_PROCESSES
                                      * sizeof(ngx_http_loom_status_worker_t));
    if (cp->workers == NULL) {
        return NGX_ERROR;
    }

    room = 0;
    size = 0;
    strings = NULL;

    for (tries = 0; /* void */; tries++) {

        ngx_shmtx_lock(&shm->shpool->mutex);

        if (tries == 0) {
            ngx_http_loom_status_copy_workers(shm, cp);
        }

        rc = ngx_http_loom_status_copy_topics(shm, cp, room, size,
                                              &ntopics, &need);

        ngx_shmtx_unlock(&shm->shpool->mutex);

        if (rc == NGX_OK) {
            return NGX_OK;
        }

        if (tries == NGX_HTTP_LOOM_STATUS_TRIES) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "loom_status: the topics changed too fast to be "
                          "copied");
            return NGX_ERROR;
        }

        /* some room to grow into while the lock is not held */

        room = ntopics + ntopics / 4 + 16;
        size = need + need / 4 + 1024;

        cp->topics = ngx_palloc(r->pool,
                                room * sizeof(ngx_http_loom_status_topic_t));
        strings = ngx_pnalloc(r->pool, size);

        if (cp->topics == NULL || strings == NULL) {
            return NGX_ERROR;
        }

        cp->topics[0].data = strings;
    }
}


static void
ngx_http_loom_status_copy_workers(ngx_http_loom_shm_t *shm,
    ngx_http_loom_status_copy_t *cp)
{
    ngx_uint_t                      i;
    ngx_http_loom_stats_t          *sum, *st;
    ngx_http_loom_status_worker_t  *cw;

    sum = &cp->sum;

    *sum = shm->sh->retired;
    sum->connections = 0;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        st = &shm->sh->workers[i];

        if (st->pid == 0) {
            continue;
        }

        cw = &cp->workers[cp->nworkers++];

        cw->pid = (ngx_pid_t) st->pid;
        cw->redis_command = st->redis_command;
        cw->redis_subscriber = st->redis_subscriber;
        cw->connections = st->connections;

        sum->connections += st->connections;
        ngx_http_loom_shm_stats_add(sum, st);
    }
}


/*
 * Copies the topic table if it fits into room entries and size bytes of
 * names (cp->topics[0].data); NGX_DECLINED with what it needs otherwise.
 * Called with the lock held: it allocates nothing.
 */

static ngx_int_t
ngx_http_loom_status_copy_topics(ngx_http_loom_shm_t *shm,
    ngx_http_loom_status_copy_t *cp, ngx_uint_t room, size_t size,
    ngx_uint_t *ntopics, size_t *need)
{
    u_char                        *p;
    size_t                         len;
    ngx_uint_t                     n;
    ngx_rbtree_t                  *tree;
    ngx_rbtree_node_t             *node;
    ngx_http_loom_shm_node_t      *t;
    ngx_http_loom_status_topic_t  *ct;

    tree = &shm->sh->topics;

    n = 0;
    len = 0;

    if (tree->root != tree->sentinel) {
        for (node = ngx_rbtree_min(tree->root, tree->sentinel);
             node;
             node = ngx_rbtree_next(tree, node))
        {
            t = (ngx_http_loom_shm_node_t *) node;
            n++;
            len += t->len;
        }
    }

    *ntopics = n;
    *need = len;

    if (n > room || len > size) {
        return NGX_DECLINED;
    }

    cp->ntopics = n;

    if (n == 0) {
        return NGX_OK;
    }

    p = cp->topics[0].data;
    ct = cp->topics;

    for (node = ngx_rbtree_min(tree->root, tree->sentinel);
         node;
         node = ngx_rbtree_next(tree, node))
    {
        t = (ngx_http_loom_shm_node_t *) node;

        ct->count = t->count;
        ct->len = t->len;
        ct->data = p;
        p = ngx_cpymem(p, t->data, t->len);
        ct++;
    }

    return NGX_OK;
}


static json_t *
ngx_http_loom_status_json(ngx_http_loom_main_conf_t *lmcf,
    ngx_http_loom_status_copy_t *cp)
{
    json_t                         *root, *workers, *worker, *topics, *redis;
    json_int_t                      subscriptions;
    ngx_uint_t                      i;
    ngx_http_loom_stats_t          *sum;
    ngx_http_loom_status_worker_t  *cw;

    sum = &cp->sum;

    root = json_object();
    workers = json_array();

    if (root == NULL || workers == NULL) {
        json_decref(root);
        json_decref(workers);
        return NULL;
    }

    for (i = 0; i < cp->nworkers; i++) {
        cw = &cp->workers[i];

        worker = json_pack("{sIsssssI}",
                           "pid", (json_int_t) cw->pid,
                           "redis_command",
                           ngx_http_loom_status_link(cw->redis_command),
                           "redis_subscriber",
                           ngx_http_loom_status_link(cw->redis_subscriber),
                           "connections", (json_int_t) cw->connections);

        if (worker) {
            json_array_append_new(workers, worker);
        }
    }

    subscriptions = 0;
    topics = ngx_http_loom_status_topics(cp, &subscriptions);

    redis = json_pack("{s:s#,s:I,s:o}",
                      "address", lmcf->redis.data, (int) lmcf->redis.len,
                      "reconnects", (json_int_t) sum->redis_reconnects,
                      "workers", workers);

    if (redis == NULL || topics == NULL) {
        json_decref(redis);
        json_decref(topics);
        json_decref(root);
        return NULL;
    }

    json_object_set_new(root, "version",
                        json_string(NGX_HTTP_LOOM_VERSION));
    json_object_set_new(root, "workers", json_integer(cp->nworkers));
    json_object_set_new(root, "connections",
                        json_integer(sum->connections));
    json_object_set_new(root, "connections_total",
                        json_integer(sum->connections_total));
    json_object_set_new(root, "messages", json_integer(sum->messages));
    json_object_set_new(root, "publishes", json_integer(sum->publishes));
    json_object_set_new(root, "sends", json_integer(sum->sends));
    json_object_set_new(root, "deliveries", json_integer(sum->deliveries));
    json_object_set_new(root, "rejected", json_integer(sum->rejected));
    json_object_set_new(root, "errors", json_integer(sum->errors));
    json_object_set_new(root, "slow_consumers",
                        json_integer(sum->slow_consumers));
    json_object_set_new(root, "protocol_errors",
                        json_integer(sum->protocol_errors));
    json_object_set_new(root, "subscriptions", json_integer(subscriptions));
    json_object_set_new(root, "topics_subscribed",
                        json_integer(json_object_size(topics)));
    json_object_set_new(root, "topics", topics);
    json_object_set_new(root, "redis", redis);
    json_object_set_new(root, "publish_ack",
                        ngx_http_loom_status_hist(&sum->publish_ack));
    json_object_set_new(root, "publish_delivery",
                        ngx_http_loom_status_hist(&sum->publish_delivery));

    return root;
}


/*
 * a latency histogram as loom_metrics has it: count, sum (microseconds)
 * and the count at or under each bound (microseconds), then "+Inf"
 */

static json_t *
ngx_http_loom_status_hist(ngx_http_loom_hist_t *h)
{
    u_char        key[NGX_INT_T_LEN + 1];
    json_t       *hist, *buckets;
    ngx_uint_t    i;
    ngx_atomic_t  n;

    buckets = json_object();
    if (buckets == NULL) {
        return NULL;
    }

    n = 0;

    for (i = 0; i < NGX_HTTP_LOOM_HIST_BUCKETS; i++) {
        n += h->bucket[i];
        *ngx_sprintf(key, "%i", ngx_http_loom_hist_bounds[i]) = '\0';
        json_object_set_new(buckets, (char *) key, json_integer(n));
    }

    n += h->bucket[NGX_HTTP_LOOM_HIST_BUCKETS];
    json_object_set_new(buckets, "+Inf", json_integer(n));

    hist = json_pack("{s:I,s:I,s:o}",
                     "count", (json_int_t) h->count,
                     "sum_us", (json_int_t) h->sum,
                     "le_us", buckets);

    return hist;
}


/* subscribers per topic over all workers of the node */

static json_t *
ngx_http_loom_status_topics(ngx_http_loom_status_copy_t *cp,
    json_int_t *subscriptions)
{
    json_t                        *topics, *n;
    ngx_uint_t                     i;
    ngx_http_loom_status_topic_t  *t;

    topics = json_object();
    if (topics == NULL) {
        return NULL;
    }

    for (i = 0; i < cp->ntopics; i++) {
        t = &cp->topics[i];

        *subscriptions += t->count;

        n = json_object_getn(topics, (char *) t->data, t->len);

        if (n) {
            json_integer_set(n, json_integer_value(n) + t->count);
            continue;
        }

        json_object_setn_new_nocheck(topics, (char *) t->data, t->len,
                                     json_integer(t->count));
    }

    return topics;
}


static const char *
ngx_http_loom_status_link(ngx_uint_t state)
{
    switch (state) {

    case NGX_HTTP_LOOM_LINK_READY:
        return "up";

    case NGX_HTTP_LOOM_LINK_CONNECTING:
    case NGX_HTTP_LOOM_LINK_HANDSHAKE:
        return "connecting";

    default:
        return "down";
    }
}
