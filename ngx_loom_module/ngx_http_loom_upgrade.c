/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_upgrade.h"
#include "ngx_http_loom_record.h"


/*
 * The takeover after the 101 response, and the end of the connection.
 *
 * Once the 101 has gone out, the HTTP request is finished as a keepalive
 * request is: its pool, its header buffers and the request itself go, so
 * that an idle WebSocket keeps only the session.  With loom_keep_request
 * on, two things outlive it in the connection's pool
 * (ngx_http_loom_record.c):
 *
 *   - a log record: the request line, the request headers, the times and
 *     sizes, the cached variables.  The request is logged from it when
 *     the connection closes, through the log phase handlers, with the
 *     connection's duration and bytes;
 *   - the limit_conn slots of the request, so that limit_conn counts open
 *     WebSockets.
 *
 * With off, the request is logged at once and its slots go with it.
 *
 * The request is freed only when nothing else holds it (r->main->count is
 * the session's reference alone).  A subrequest still running at that
 * time (mirror, for one) keeps the whole request alive: the request then
 * owns the connection (c->data) until the session ends, its events go
 * through the request as in ngx_http_request_handler(), and it is
 * released with ngx_http_finalize_request().
 */


static void ngx_http_loom_upgrade_takeover(ngx_event_t *ev);
static void ngx_http_loom_upgrade_handshake_write(ngx_http_request_t *r);
static void ngx_http_loom_upgrade_abort(ngx_http_loom_session_t *s);
static ngx_int_t ngx_http_loom_upgrade_release(ngx_http_loom_session_t *s);
static void ngx_http_loom_upgrade_read_handler(ngx_event_t *rev);
static void ngx_http_loom_upgrade_write_handler(ngx_event_t *wev);
static void ngx_http_loom_upgrade_request_handler(ngx_event_t *ev);
static void ngx_http_loom_upgrade_close(ngx_http_loom_session_t *s);


void
ngx_http_loom_upgrade_start(ngx_http_loom_session_t *s)
{
    /* the event is in the session: the session's cleanup deletes it */

    s->takeover.handler = ngx_http_loom_upgrade_takeover;
    s->takeover.data = s;
    s->takeover.log = s->connection->log;

    ngx_post_event(&s->takeover, &ngx_posted_events);
}


static void
ngx_http_loom_upgrade_takeover(ngx_event_t *ev)
{
    ngx_buf_t                 *b;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_loom_session_t   *s;
    ngx_http_core_loc_conf_t  *clcf;

    s = ev->data;
    r = s->request;
    c = s->connection;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->out || (c->buffered & NGX_HTTP_LOWLEVEL_BUFFERED)) {

        /* the 101 response did not fit into the socket: wait for it */

        r->write_event_handler = ngx_http_loom_upgrade_handshake_write;

        if (!c->write->timer_set) {
            ngx_add_timer(c->write, clcf->send_timeout);
        }

        if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
            ngx_http_loom_upgrade_abort(s);
        }

        return;
    }

    c->log->action = "serving loom websocket";

    /*
     * frames are written whole and batched already: Nagle would only hold
     * a small answer back until the client's delayed ACK
     */

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_loom_upgrade_abort(s);
        return;
    }

    /* bytes the client sent right behind the handshake are kept */

    b = r->header_in;

    if (b && b->pos < b->last) {
        s->pending_len = b->last - b->pos;
        s->pending = ngx_alloc(s->pending_len, c->log);

        if (s->pending == NULL) {
            ngx_http_loom_upgrade_abort(s);
            return;
        }

        ngx_memcpy(s->pending, b->pos, s->pending_len);
        b->pos = b->last;
    }

    s->close_handler = ngx_http_loom_upgrade_close;

    switch (ngx_http_loom_upgrade_release(s)) {

    case NGX_OK:
        c->data = s;
        c->read->handler = ngx_http_loom_upgrade_read_handler;
        c->write->handler = ngx_http_loom_upgrade_write_handler;
        break;

    case NGX_DECLINED:
        c->read->handler = ngx_http_loom_upgrade_request_handler;
        c->write->handler = ngx_http_loom_upgrade_request_handler;
        r->read_event_handler = ngx_http_block_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
        break;

    default: /* NGX_ERROR */
        ngx_http_loom_upgrade_abort(s);
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_http_loom_session_run(s);
}


static void
ngx_http_loom_upgrade_handshake_write(ngx_http_request_t *r)
{
    ngx_connection_t          *c;
    ngx_http_loom_session_t   *s;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    s = ngx_http_get_module_ctx(r, ngx_http_loom_module);

    if (c->write->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_loom_upgrade_abort(s);
        return;
    }

    if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
        ngx_http_loom_upgrade_abort(s);
        return;
    }

    if (r->out || (c->buffered & NGX_HTTP_LOWLEVEL_BUFFERED)) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK) {
            ngx_http_loom_upgrade_abort(s);
        }

        return;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_loom_upgrade_takeover(&s->takeover);
}


/*
 * The session never got going: the request is finalized with the
 * session's reference, and the session's cleanup gives back what the
 * handshake took when the connection goes.
 */

static void
ngx_http_loom_upgrade_abort(ngx_http_loom_session_t *s)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = s->connection;
    r = s->request;

    s->request = NULL;
    ngx_http_loom_session_release(s);

    ngx_http_finalize_request(r, NGX_HTTP_CLOSE);

    /* outside of ngx_http_request_handler(): the termination is posted */
    ngx_http_run_posted_requests(c);
}


/*
 * Finishes the HTTP request if the session's reference is the only one:
 * NGX_OK, the request is gone; NGX_DECLINED, it is still in use and stays.
 */

static ngx_int_t
ngx_http_loom_upgrade_release(ngx_http_loom_session_t *s)
{
    ngx_chain_t            *cl;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_connection_t  *hc;

    r = s->request;
    c = s->connection;

    if (r != r->main || r->count != 1 || r->blocked
        || r->posted_requests || r->postponed)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "loom: request in use (count %d): kept",
                       (int) r->main->count);
        return NGX_DECLINED;
    }

    if (s->conf->keep_request) {

        if (ngx_http_loom_record_keep_limit_conn(r) != NGX_OK) {
            return NGX_ERROR;
        }

        s->record = ngx_http_loom_record_create(r);
        if (s->record == NULL) {
            return NGX_ERROR;
        }

        /* logged from the record when the connection closes */
        r->logged = 1;
    }

    /*
     * As for a keepalive connection: the request is logged (unless the
     * record does it later), its pool and the header buffers are freed.
     */

    hc = r->http_connection;

    r->count = 0;
    ngx_http_free_request(r, 0);

    c->destroyed = 0;
    s->request = NULL;

    if (c->buffer && c->buffer->start
        && ngx_pfree(c->pool, c->buffer->start) == NGX_OK)
    {
        c->buffer = NULL;
    }

    for (cl = hc->free; cl; cl = cl->next) {
        ngx_pfree(c->pool, cl->buf->start);
    }

    for (cl = hc->busy; cl; cl = cl->next) {
        ngx_pfree(c->pool, cl->buf->start);
    }

    hc->free = NULL;
    hc->busy = NULL;
    hc->nbusy = 0;

    return NGX_OK;
}


static void
ngx_http_loom_upgrade_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c;

    c = rev->data;

    ngx_http_loom_session_read_event(c->data);
}


static void
ngx_http_loom_upgrade_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c;

    c = wev->data;

    ngx_http_loom_session_write_event(c->data);
}


/*
 * While the request holds the connection, its events reach the session
 * through it, and the posted subrequests run after them, as in
 * ngx_http_request_handler().  Once the session is over, only the
 * subrequests the request waits for run.
 */

static void
ngx_http_loom_upgrade_request_handler(ngx_event_t *ev)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_loom_session_t  *s;

    c = ev->data;
    r = c->data;
    s = ngx_http_get_module_ctx(r, ngx_http_loom_module);

    ngx_http_set_log_request(c->log, r);

    if (!s->finalized) {
        if (ev->write) {
            ngx_http_loom_session_write_event(s);

        } else {
            ngx_http_loom_session_read_event(s);
        }
    }

    ngx_http_run_posted_requests(c);
}


/* the session is over: the request is logged, the connection closes */

static void
ngx_http_loom_upgrade_close(ngx_http_loom_session_t *s)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = s->connection;
    r = s->request;

    if (r) {

        /*
         * the session's reference goes: the request is logged and the
         * connection closed once the subrequests that hold it are done
         */

        s->request = NULL;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        ngx_http_finalize_request(r, (c->error || c->timedout)
                                     ? NGX_ERROR : NGX_DONE);
        return;
    }

    if (s->record) {
        ngx_http_loom_record_log(c, s->record);
        s->record = NULL;
    }

    ngx_http_close_connection(c);
}
