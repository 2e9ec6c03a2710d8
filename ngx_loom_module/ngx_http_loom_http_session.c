/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_http.h"
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_ws.h"
#include "ngx_http_loom_shm.h"


/*
 * The session of an HTTP request (docs/http.md): what the actions see of
 * a client, without a WebSocket.  It lives in the request's pool, and its
 * pool cleanup gives back what it holds, however the request ends.  Its
 * answers are queued to a ring whose connection is nothing but a write
 * event: posted when an answer is there, which then goes to the handler
 * of the request's kind.
 *
 * Until the answer is there, nothing of nginx's own keeps a worker that
 * shuts down: a request waiting for Redis has no timer and is not idle.
 * The hold timer is that timer (not cancelable, unlike the Redis links'
 * own), so the answer is sent before the worker exits.  It only holds:
 * the Redis layer bounds the wait (loom_redis_timeout), and
 * worker_shutdown_timeout, when set, bounds the shutdown.
 */


#define NGX_HTTP_LOOM_HTTP_HOLD  60000


static void ngx_http_loom_http_cleanup(void *data);
static void ngx_http_loom_http_answered(ngx_event_t *ev);
static void ngx_http_loom_http_hold(ngx_event_t *ev);
static void ngx_http_loom_http_nomem(ngx_http_loom_requests_t *rq);


/* the request's session, which lives and goes with the request's pool */

ngx_http_loom_http_t *
ngx_http_loom_http_create(ngx_http_request_t *r, void *access)
{
    ngx_connection_t          *c;
    ngx_pool_cleanup_t        *cln;
    ngx_http_loom_http_t      *h;
    ngx_http_loom_worker_t    *w;
    ngx_http_loom_session_t   *s;
    ngx_http_loom_loc_conf_t  *llcf;

    c = r->connection;
    w = ngx_http_loom_get_worker();
    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loom_module);

    h = ngx_pcalloc(r->pool, sizeof(ngx_http_loom_http_t));
    if (h == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_loom_http_cleanup;
    cln->data = h;

    h->request = r;

    h->answered.handler = ngx_http_loom_http_answered;
    h->answered.data = h;
    h->answered.log = c->log;
    h->answered.ready = 1;

    h->hold.handler = ngx_http_loom_http_hold;
    h->hold.data = h;
    h->hold.log = c->log;

    h->answers_connection.write = &h->answered;
    h->answers_connection.log = c->log;
    h->answers.connection = &h->answers_connection;
    h->answers.limit = llcf->max_send_queue;
    h->answers.data = h;

    s = &h->session;
    s->connection = c;
    s->worker = w;
    s->conf = llcf;
    s->access = access;

    /* no ClientId: deliveries of its publishes have "senderId":"" */
    ngx_str_set(&s->client_id, "");
    ngx_str_set(&s->sender, "");

    ngx_http_loom_requests_init(&s->requests, &h->answers, c->log, s);

    if (w->stats) {
        s->requests.gauge = &w->stats->requests;
    }

    s->requests.nomem = ngx_http_loom_http_nomem;

    ngx_http_loom_subscriber_init(&s->subscriber, &h->answers, c->log);
    ngx_http_loom_protocol_init(s);

    /* answers with positions: rev, epoch and ts */
    s->subscriber.v2 = 1;

    ngx_http_set_ctx(r, h, ngx_http_loom_module);

    /* the request's phases are over: its own events run no more of them */
    r->write_event_handler = ngx_http_request_empty_handler;

    return h;
}


static void
ngx_http_loom_http_cleanup(void *data)
{
    ngx_http_loom_http_t  *h = data;

    if (h->answered.posted) {
        ngx_delete_posted_event(&h->answered);
    }

    if (h->close.posted) {
        ngx_delete_posted_event(&h->close);
    }

    if (h->hold.timer_set) {
        ngx_del_timer(&h->hold);
    }

    if (h->heartbeat.timer_set) {
        ngx_del_timer(&h->heartbeat);
    }

    ngx_http_loom_protocol_session_closed(&h->session);
    ngx_http_loom_topic_unsubscribe_all(&h->session.subscriber);

    ngx_http_loom_out_free(&h->answers);
    ngx_http_loom_out_free(&h->out);
}


ngx_int_t
ngx_http_loom_http_run(ngx_http_loom_http_t *h, u_char *message, size_t len)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, h->request->connection->log, 0,
                   "loom http: \"%*s\"", len, message);

    /* a client that goes away ends the request, and its session */
    h->request->read_event_handler = ngx_http_test_reading;

    ngx_add_timer(&h->hold, NGX_HTTP_LOOM_HTTP_HOLD);

    ngx_http_loom_protocol_message(&h->session, message, len);

    return NGX_OK;
}


/* the answer is queued: from the next pass of the event loop on */

static void
ngx_http_loom_http_answered(ngx_event_t *ev)
{
    ngx_str_t               answer;
    ngx_connection_t       *c;
    ngx_http_loom_out_t    *o;
    ngx_http_loom_http_t   *h;
    ngx_http_loom_frame_t  *f;

    h = ev->data;
    o = &h->answers;
    c = h->request->connection;

    if (o->count == 0) {
        return;
    }

    if (h->hold.timer_set) {
        ngx_del_timer(&h->hold);
    }

    /* the answer's handler may finalize the request, and free h */

    f = o->ring[o->head];
    f->refs++;
    ngx_http_loom_out_shift(o);

    ngx_http_loom_ws_payload(f->data, f->len, &answer);

    ngx_http_set_log_request(c->log, h->request);

    h->answer(h, &answer);

    ngx_http_loom_frame_release(f);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_loom_http_hold(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "loom http: still waiting for the answer");

    ngx_add_timer(ev, NGX_HTTP_LOOM_HTTP_HOLD);
}


static void
ngx_http_loom_http_nomem(ngx_http_loom_requests_t *rq)
{
    ngx_log_error(NGX_LOG_ERR, rq->log, 0, "loom http: out of memory");
}


ngx_int_t
ngx_http_loom_http_quote(ngx_http_request_t *r, ngx_str_t *value,
    ngx_str_t *quoted)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool,
                    2 + ngx_http_loom_json_escape_len(value->data,
                                                      value->len));
    if (p == NULL) {
        return NGX_ERROR;
    }

    quoted->data = p;
    *p++ = '"';
    p = ngx_http_loom_json_escape(p, value->data, value->len);
    *p++ = '"';
    quoted->len = p - quoted->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_http_arg(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &arg) != NGX_OK) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, arg.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, 0);
    value->len = dst - value->data;

    return NGX_OK;
}
