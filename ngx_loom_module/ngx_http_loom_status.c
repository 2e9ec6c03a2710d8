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


static json_t *ngx_http_loom_status_json(ngx_http_loom_main_conf_t *lmcf);
static json_t *ngx_http_loom_status_topics(ngx_http_loom_shm_t *shm,
    json_int_t *subscriptions);
static const char *ngx_http_loom_status_link(ngx_uint_t state);


/*
 * What this node knows, as JSON: connections, subscriptions per topic,
 * the message counters and the state of each worker's Redis links.
 */

ngx_int_t
ngx_http_loom_status_handler(ngx_http_request_t *r)
{
    char                       *text;
    size_t                      len;
    json_t                     *root;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_chain_t                 out;
    ngx_http_loom_main_conf_t  *lmcf;

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

    root = ngx_http_loom_status_json(lmcf);
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

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static json_t *
ngx_http_loom_status_json(ngx_http_loom_main_conf_t *lmcf)
{
    json_t                 *root, *workers, *worker, *topics, *redis;
    json_int_t              subscriptions;
    ngx_uint_t              i, nworkers;
    ngx_http_loom_shm_t    *shm;
    ngx_http_loom_stats_t   sum, *st;

    shm = lmcf->shm_zone->data;

    root = json_object();
    workers = json_array();

    if (root == NULL || workers == NULL) {
        json_decref(root);
        json_decref(workers);
        return NULL;
    }

    ngx_memzero(&sum, sizeof(ngx_http_loom_stats_t));
    nworkers = 0;

    ngx_shmtx_lock(&shm->shpool->mutex);

    st = &shm->sh->retired;
    sum = *st;
    sum.connections = 0;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        st = &shm->sh->workers[i];

        if (st->pid == 0) {
            continue;
        }

        nworkers++;

        sum.connections += st->connections;
        sum.connections_total += st->connections_total;
        sum.messages += st->messages;
        sum.publishes += st->publishes;
        sum.sends += st->sends;
        sum.deliveries += st->deliveries;
        sum.rejected += st->rejected;
        sum.errors += st->errors;
        sum.slow_consumers += st->slow_consumers;
        sum.protocol_errors += st->protocol_errors;
        sum.redis_reconnects += st->redis_reconnects;

        worker = json_pack("{sIsssssI}",
                           "pid", (json_int_t) st->pid,
                           "redis_command",
                           ngx_http_loom_status_link(st->redis_command),
                           "redis_subscriber",
                           ngx_http_loom_status_link(st->redis_subscriber),
                           "connections", (json_int_t) st->connections);

        if (worker) {
            json_array_append_new(workers, worker);
        }
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);

    subscriptions = 0;
    topics = ngx_http_loom_status_topics(shm, &subscriptions);

    redis = json_pack("{s:s#,s:I,s:o}",
                      "address", lmcf->redis.data, (int) lmcf->redis.len,
                      "reconnects", (json_int_t) sum.redis_reconnects,
                      "workers", workers);

    if (redis == NULL || topics == NULL) {
        json_decref(redis);
        json_decref(topics);
        json_decref(root);
        return NULL;
    }

    json_object_set_new(root, "version",
                        json_string(NGX_HTTP_LOOM_VERSION));
    json_object_set_new(root, "workers", json_integer(nworkers));
    json_object_set_new(root, "connections",
                        json_integer(sum.connections));
    json_object_set_new(root, "connections_total",
                        json_integer(sum.connections_total));
    json_object_set_new(root, "messages", json_integer(sum.messages));
    json_object_set_new(root, "publishes", json_integer(sum.publishes));
    json_object_set_new(root, "sends", json_integer(sum.sends));
    json_object_set_new(root, "deliveries", json_integer(sum.deliveries));
    json_object_set_new(root, "rejected", json_integer(sum.rejected));
    json_object_set_new(root, "errors", json_integer(sum.errors));
    json_object_set_new(root, "slow_consumers",
                        json_integer(sum.slow_consumers));
    json_object_set_new(root, "protocol_errors",
                        json_integer(sum.protocol_errors));
    json_object_set_new(root, "subscriptions", json_integer(subscriptions));
    json_object_set_new(root, "topics_subscribed",
                        json_integer(json_object_size(topics)));
    json_object_set_new(root, "topics", topics);
    json_object_set_new(root, "redis", redis);

    return root;
}


/* subscribers per topic over all workers of the node */

static json_t *
ngx_http_loom_status_topics(ngx_http_loom_shm_t *shm,
    json_int_t *subscriptions)
{
    json_t                     *topics, *n;
    ngx_rbtree_t               *tree;
    ngx_rbtree_node_t          *node;
    ngx_http_loom_shm_node_t   *t;

    topics = json_object();
    if (topics == NULL) {
        return NULL;
    }

    ngx_shmtx_lock(&shm->shpool->mutex);

    tree = &shm->sh->topics;

    if (tree->root != tree->sentinel) {

        for (node = ngx_rbtree_min(tree->root, tree->sentinel);
             node;
             node = ngx_rbtree_next(tree, node))
        {
            t = (ngx_http_loom_shm_node_t *) node;

            *subscriptions += t->count;

            n = json_object_getn(topics, (char *) t->data, t->len);

            if (n) {
                json_integer_set(n, json_integer_value(n) + t->count);
                continue;
            }

            json_object_setn_new_nocheck(topics, (char *) t->data, t->len,
                                         json_integer(t->count));
        }
    }

    ngx_shmtx_unlock(&shm->shpool->mutex);

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
