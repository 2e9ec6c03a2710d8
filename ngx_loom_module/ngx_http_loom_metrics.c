/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_redis.h"


/*
 * Prometheus metrics (text exposition format 0.0.4) of this node: the
 * counters of every worker in the zone, summed, and each worker's Redis
 * links.  A scrape copies the workers' slots under the zone's lock and
 * builds the text after; nothing in it grows with topics or connections.
 */


#define NGX_HTTP_LOOM_METRICS_TRIES  4


typedef struct {
    ngx_http_loom_stats_t    sum;
    ngx_uint_t               nworkers;
    ngx_http_loom_stats_t   *workers;
} ngx_http_loom_metrics_copy_t;


typedef struct {
    const char              *name;
    const char              *type;
    const char              *help;
    size_t                   offset;          /* in ngx_http_loom_stats_t */
} ngx_http_loom_metric_t;


#define ngx_http_loom_stat(field)  offsetof(ngx_http_loom_stats_t, field)


static ngx_http_loom_metric_t  ngx_http_loom_metrics[] = {

    { "loom_connections", "gauge",
      "WebSocket connections open now.",
      ngx_http_loom_stat(connections) },

    { "loom_connections_total", "counter",
      "WebSocket connections accepted.",
      ngx_http_loom_stat(connections_total) },

    { "loom_subscriptions", "gauge",
      "Subscriptions of the connections open now.",
      ngx_http_loom_stat(subscriptions) },

    { "loom_channels", "gauge",
      "Topic channels the workers are subscribed to at Redis "
      "(a topic counts once per worker).",
      ngx_http_loom_stat(channels) },

    { "loom_requests_waiting", "gauge",
      "Requests received and not answered yet.",
      ngx_http_loom_stat(requests) },

    { "loom_messages_received_total", "counter",
      "WebSocket messages received from clients.",
      ngx_http_loom_stat(messages) },

    { "loom_publishes_total", "counter",
      "Publishes stored and sent to subscribers.",
      ngx_http_loom_stat(publishes) },

    { "loom_sends_total", "counter",
      "sendWithoutSave messages sent to subscribers.",
      ngx_http_loom_stat(sends) },

    { "loom_deliveries_total", "counter",
      "Messages queued to subscribers (one publish, many deliveries).",
      ngx_http_loom_stat(deliveries) },

    { "loom_slow_consumer_closes_total", "counter",
      "Connections closed with 4008 because they did not read.",
      ngx_http_loom_stat(slow_consumers) },

    { "loom_protocol_errors_total", "counter",
      "Connections failed for WebSocket protocol errors.",
      ngx_http_loom_stat(protocol_errors) },

    { "loom_redis_reconnects_total", "counter",
      "Attempts to connect a Redis link again.",
      ngx_http_loom_stat(redis_reconnects) },

    { NULL, NULL, NULL, 0 }
};


static ngx_int_t ngx_http_loom_metrics_copy(ngx_http_request_t *r,
    ngx_http_loom_shm_t *shm, ngx_http_loom_metrics_copy_t *cp);
static u_char *ngx_http_loom_metrics_text(u_char *p, u_char *last,
    ngx_http_loom_metrics_copy_t *cp);
static u_char *ngx_http_loom_metrics_codes(u_char *p, u_char *last,
    ngx_http_loom_metrics_copy_t *cp, ngx_uint_t from, ngx_uint_t to,
    const char *name, const char *help, u_char hundred);
static u_char *ngx_http_loom_metrics_hist(u_char *p, u_char *last,
    const char *name, const char *help, ngx_http_loom_hist_t *h);


ngx_int_t
ngx_http_loom_metrics_handler(ngx_http_request_t *r)
{
    size_t                         size;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_http_loom_shm_t           *shm;
    ngx_http_loom_main_conf_t     *lmcf;
    ngx_http_loom_metrics_copy_t   cp;

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
                      "loom_metrics: no \"loom\" location is configured");
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    shm = lmcf->shm_zone->data;

    if (ngx_http_loom_metrics_copy(r, shm, &cp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 8192 + cp.nworkers * 512;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_http_loom_metrics_text(b->last, b->end, &cp);

    return ngx_http_loom_status_send(r, b,
                                     "text/plain; version=0.0.4; "
                                     "charset=utf-8");
}


/*
 * The slots are counted, memory is taken without the lock, and they are
 * copied with it; a worker started in between makes it try again.
 */

static ngx_int_t
ngx_http_loom_metrics_copy(ngx_http_request_t *r, ngx_http_loom_shm_t *shm,
    ngx_http_loom_metrics_copy_t *cp)
{
    ngx_uint_t              i, n, room, tries, fits;
    ngx_http_loom_stats_t  *st, *sum;

    room = 0;
    cp->workers = NULL;
    sum = &cp->sum;

    for (tries = 0; tries < NGX_HTTP_LOOM_METRICS_TRIES; tries++) {

        ngx_shmtx_lock(&shm->shpool->mutex);

        n = 0;

        for (i = 0; i < NGX_MAX_PROCESSES; i++) {
            n += (shm->sh->workers[i].pid != 0);
        }

        fits = (n <= room);

        if (fits) {
            *sum = shm->sh->retired;
            cp->nworkers = 0;

            for (i = 0; i < NGX_MAX_PROCESSES; i++) {
                st = &shm->sh->workers[i];

                if (st->pid != 0) {
                    cp->workers[cp->nworkers++] = *st;
                }
            }
        }

        ngx_shmtx_unlock(&shm->shpool->mutex);

        if (fits) {
            break;
        }

        room = n + 4;
        cp->workers = ngx_palloc(r->pool,
                                 room * sizeof(ngx_http_loom_stats_t));
        if (cp->workers == NULL) {
            return NGX_ERROR;
        }
    }

    if (tries == NGX_HTTP_LOOM_METRICS_TRIES) {
        return NGX_ERROR;
    }

    /* gauges are the live workers' only; counters include retired ones */

    sum->connections = 0;
    sum->subscriptions = 0;
    sum->channels = 0;
    sum->requests = 0;

    for (i = 0; i < cp->nworkers; i++) {
        st = &cp->workers[i];

        sum->connections += st->connections;
        sum->subscriptions += st->subscriptions;
        sum->channels += st->channels;
        sum->requests += st->requests;

        ngx_http_loom_shm_stats_add(sum, st);
    }

    return NGX_OK;
}


static u_char *
ngx_http_loom_metrics_text(u_char *p, u_char *last,
    ngx_http_loom_metrics_copy_t *cp)
{
    ngx_uint_t               i, l;
    ngx_atomic_t             value;
    ngx_http_loom_stats_t   *st;
    ngx_http_loom_metric_t  *m;

    static const char  *links[] = { "command", "subscriber" };

    p = ngx_slprintf(p, last,
                     "# HELP loom_info The module's version.\n"
                     "# TYPE loom_info gauge\n"
                     "loom_info{version=\"%s\"} 1\n"
                     "# HELP loom_workers Worker processes with a slot "
                     "in the zone.\n"
                     "# TYPE loom_workers gauge\n"
                     "loom_workers %ui\n",
                     NGX_HTTP_LOOM_VERSION, cp->nworkers);

    for (m = ngx_http_loom_metrics; m->name; m++) {
        value = *(ngx_atomic_t *) ((u_char *) &cp->sum + m->offset);

        p = ngx_slprintf(p, last,
                         "# HELP %s %s\n# TYPE %s %s\n%s %uA\n",
                         m->name, m->help, m->name, m->type, m->name,
                         value);
    }

    p = ngx_http_loom_metrics_codes(p, last, cp, 0, 4,
                                    "loom_requests_rejected_total",
                                    "Requests answered with a 4xx code "
                                    "(400: not valid or not matching the "
                                    "schema, 403: forbidden, 409: conflict).",
                                    '4');
    p = ngx_http_loom_metrics_codes(p, last, cp, 4, NGX_HTTP_LOOM_CODES,
                                    "loom_requests_failed_total",
                                    "Requests answered with a 5xx code "
                                    "(storage unavailable, ...).", '5');

    p = ngx_slprintf(p, last,
                     "# HELP loom_redis_link_up Whether a worker's Redis "
                     "link is connected and ready (1) or not (0).\n"
                     "# TYPE loom_redis_link_up gauge\n");

    for (i = 0; i < cp->nworkers; i++) {
        st = &cp->workers[i];

        for (l = 0; l < 2; l++) {
            value = (l == 0) ? st->redis_command : st->redis_subscriber;

            p = ngx_slprintf(p, last,
                             "loom_redis_link_up{worker=\"%uA\","
                             "pid=\"%uA\",link=\"%s\"} %d\n",
                             st->worker, st->pid, links[l],
                             value == NGX_HTTP_LOOM_LINK_READY);
        }
    }

    p = ngx_http_loom_metrics_hist(p, last, "loom_publish_ack_seconds",
                                   "Time from a publish received to its "
                                   "acknowledgement queued.",
                                   &cp->sum.publish_ack);

    p = ngx_http_loom_metrics_hist(p, last,
                                   "loom_publish_delivery_seconds",
                                   "Time from a publish stored (its ts, "
                                   "Redis's clock) to its delivery queued "
                                   "to a worker's subscribers, once per "
                                   "worker.",
                                   &cp->sum.publish_delivery);

    return p;
}


static u_char *
ngx_http_loom_metrics_hist(u_char *p, u_char *last, const char *name,
    const char *help, ngx_http_loom_hist_t *h)
{
    ngx_uint_t    i;
    ngx_atomic_t  n;

    p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s histogram\n",
                     name, help, name);

    n = 0;

    for (i = 0; i < NGX_HTTP_LOOM_HIST_BUCKETS; i++) {
        n += h->bucket[i];

        p = ngx_slprintf(p, last, "%s_bucket{le=\"%ui.%06ui\"} %uA\n",
                         name,
                         (ngx_uint_t) ngx_http_loom_hist_bounds[i] / 1000000,
                         (ngx_uint_t) ngx_http_loom_hist_bounds[i] % 1000000,
                         n);
    }

    n += h->bucket[NGX_HTTP_LOOM_HIST_BUCKETS];

    return ngx_slprintf(p, last,
                        "%s_bucket{le=\"+Inf\"} %uA\n"
                        "%s_sum %uA.%06uA\n"
                        "%s_count %uA\n",
                        name, n, name, h->sum / 1000000, h->sum % 1000000,
                        name, h->count);
}


/* one family of answers by code: the codes named, then the rest */

static u_char *
ngx_http_loom_metrics_codes(u_char *p, u_char *last,
    ngx_http_loom_metrics_copy_t *cp, ngx_uint_t from, ngx_uint_t to,
    const char *name, const char *help, u_char hundred)
{
    ngx_uint_t  i;

    p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s counter\n",
                     name, help, name);

    for (i = from; i < to; i++) {
        if (ngx_http_loom_codes[i]) {
            p = ngx_slprintf(p, last, "%s{code=\"%ui\"} %uA\n", name,
                             ngx_http_loom_codes[i], cp->sum.codes[i]);

        } else {
            p = ngx_slprintf(p, last, "%s{code=\"%cxx\"} %uA\n", name,
                             hundred, cp->sum.codes[i]);
        }
    }

    return p;
}
