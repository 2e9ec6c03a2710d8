/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_utf8.h"


#define NGX_HTTP_LOOM_READ_ROUNDS  4        /* buffers read per event */


static void ngx_http_loom_session_cleanup(void *data);
static void ngx_http_loom_session_read(ngx_http_loom_session_t *s);
static void ngx_http_loom_session_discard(ngx_http_loom_session_t *s);
static ngx_int_t ngx_http_loom_session_process(ngx_http_loom_session_t *s,
    u_char *p, size_t n);
static void ngx_http_loom_session_data(ngx_http_loom_session_t *s,
    ngx_http_loom_ws_chunk_t *ch);
static void ngx_http_loom_session_control(ngx_http_loom_session_t *s,
    ngx_uint_t opcode);
static void ngx_http_loom_session_dispatch(ngx_http_loom_session_t *s,
    u_char *data, size_t len, ngx_uint_t opcode);
static void ngx_http_loom_session_requests_resume(
    ngx_http_loom_requests_t *rq);
static void ngx_http_loom_session_requests_nomem(
    ngx_http_loom_requests_t *rq);


ngx_http_loom_session_t *
ngx_http_loom_session_create(ngx_http_request_t *r)
{
    ngx_connection_t          *c;
    ngx_pool_cleanup_t        *cln;
    ngx_http_loom_session_t   *s;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_loom_loc_conf_t  *llcf;

    c = r->connection;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loom_module);

    /* the connection's pool outlives the request: the session lives there */

    s = ngx_pcalloc(c->pool, sizeof(ngx_http_loom_session_t));
    if (s == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_loom_session_cleanup;
    cln->data = s;

    s->connection = c;
    s->worker = ngx_http_loom_get_worker();
    s->conf = llcf;
    s->request = r;

    ngx_http_loom_ws_parser_init(&s->parser, llcf->max_message_size);

    s->out.connection = c;
    s->out.limit = llcf->max_send_queue;
    s->out.overflow = ngx_http_loom_session_overflow;
    s->out.data = s;

    ngx_http_loom_requests_init(&s->requests, &s->out, c->log, s);

    if (s->worker->stats) {
        s->requests.gauge = &s->worker->stats->requests;
    }
    s->requests.resume = ngx_http_loom_session_requests_resume;
    s->requests.nomem = ngx_http_loom_session_requests_nomem;
    ngx_http_loom_subscriber_init(&s->subscriber, &s->out, c->log);
    ngx_http_loom_protocol_init(s);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    s->send_timeout = clcf->send_timeout;

    return s;
}


/* after the takeover (ngx_http_loom_upgrade.c) */

void
ngx_http_loom_session_run(ngx_http_loom_session_t *s)
{
    ngx_connection_t  *c;

    c = s->connection;

    s->started = 1;

    /* a graceful shutdown closes idle connections: ours, with 1001 */
    c->idle = 1;

    s->last_read = ngx_current_msec;

    if (ngx_exiting) {
        ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_GOING_AWAY,
                                    "server shutting down");
        return;
    }

    if (s->claim && s->claim->state == NGX_HTTP_LOOM_CLAIM_TAKEN) {
        ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_CLIENT_ID_TAKEN,
                                    "client ID already exists");
        return;
    }

    if (s->conf->ping_interval || s->conf->idle_timeout) {
        ngx_add_timer(c->read, s->conf->ping_interval
                               ? s->conf->ping_interval
                               : s->conf->idle_timeout);
    }

    if (c->read->ready || s->pending) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/*
 * The connection's pool goes: nginx closed the connection by itself, or
 * the handshake failed after the session was made.
 */

static void
ngx_http_loom_session_cleanup(void *data)
{
    ngx_http_loom_session_t  *s = data;

    ngx_http_loom_session_release(s);
}


void
ngx_http_loom_session_read_event(ngx_http_loom_session_t *s)
{
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    c = s->connection;
    rev = c->read;

    if (c->close) {
        c->close = 0;

        if (c->error) {
            /* worker_shutdown_timeout: no time left for a handshake */
            ngx_http_loom_session_finalize(s);
            return;
        }

        ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_GOING_AWAY,
                                    "server shutting down");

        /*
         * this runs from the shutdown code, outside the event loop: a
         * posted write would wait for the next event, so write now
         */

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_http_loom_session_write_event(s);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;
        ngx_http_loom_session_timer(s);
        return;
    }

    if (s->closing && s->parser.error) {
        ngx_http_loom_session_discard(s);
        return;
    }

    ngx_http_loom_session_read(s);
}


static void
ngx_http_loom_session_read(ngx_http_loom_session_t *s)
{
    u_char                  *p;
    ssize_t                  n;
    ngx_int_t                rc;
    ngx_uint_t               rounds;
    ngx_event_t             *rev;
    ngx_connection_t        *c;
    ngx_http_loom_worker_t  *w;

    c = s->connection;
    rev = c->read;
    w = s->worker;

    for (rounds = 0; /* void */; rounds++) {

        if (!ngx_http_loom_session_may_read(s)) {
            s->read_paused = 1;
            return;
        }

        if (rounds == NGX_HTTP_LOOM_READ_ROUNDS) {

            /* let the other connections of the worker have a turn */

            ngx_post_event(rev, &ngx_posted_events);
            return;
        }

        if (s->pending) {

            /* bytes kept when flow control stopped the last round */

            p = s->pending;
            s->pending = NULL;

            rc = ngx_http_loom_session_process(s, p, s->pending_len);

            ngx_free(p);

            if (rc == NGX_DONE) {
                return;
            }

            continue;
        }

        n = c->recv(c, w->recv_buf, w->recv_size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            c->error = (n == NGX_ERROR);
            ngx_http_loom_session_finalize(s);
            return;
        }

        s->last_read = ngx_current_msec;
        s->ping_sent = 0;

        if (ngx_http_loom_session_process(s, w->recv_buf, n) == NGX_DONE) {
            return;
        }

        if (s->close_received && s->close_sent) {
            ngx_http_loom_session_finalize(s);
            return;
        }

        if (s->closing && s->parser.error) {
            ngx_http_loom_session_discard(s);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_loom_session_finalize(s);
    }
}


/*
 * After a protocol error nothing the client sends is parsed any more: it
 * is read and dropped until the client closes or close_timeout passes,
 * so that the close frame is not lost to a reset.
 */

static void
ngx_http_loom_session_discard(ngx_http_loom_session_t *s)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = s->connection;

    for ( ;; ) {
        n = c->recv(c, s->worker->recv_buf, s->worker->recv_size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_loom_session_finalize(s);
            return;
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_loom_session_finalize(s);
    }
}


static void
ngx_http_loom_session_requests_resume(ngx_http_loom_requests_t *rq)
{
    ngx_http_loom_session_resume(rq->data);
}


static void
ngx_http_loom_session_requests_nomem(ngx_http_loom_requests_t *rq)
{
    ngx_http_loom_session_close(rq->data, NGX_HTTP_LOOM_WS_INTERNAL_ERROR,
                                "out of memory");
}


static ngx_int_t
ngx_http_loom_session_process(ngx_http_loom_session_t *s, u_char *p,
    size_t n)
{
    u_char                    *pos, *last;
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_loom_ws_chunk_t   ch;

    c = s->connection;
    pos = p;
    last = p + n;

    for ( ;; ) {
        rc = ngx_http_loom_ws_parse(&s->parser, &pos, last, &ch);

        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "client sent invalid websocket data: %s",
                          s->parser.error);

            ngx_http_loom_session_fail(s, s->parser.close_code,
                                       s->parser.error);
            return NGX_DONE;
        }

        if (s->close_received) {
            /* nothing counts after a close frame */
            continue;
        }

        if (ch.opcode >= NGX_HTTP_LOOM_WS_CLOSE) {

            ngx_memcpy(s->control + s->control_len, ch.data, ch.len);
            s->control_len += ch.len;

            if (ch.last) {
                ngx_http_loom_session_control(s, ch.opcode);
                s->control_len = 0;

                if (s->parser.error) {
                    return NGX_DONE;
                }
            }

        } else if (!s->closing) {

            ngx_http_loom_session_data(s, &ch);

            if (s->parser.error) {
                return NGX_DONE;
            }

        } else {
            /* data after our close frame is dropped (RFC 6455, 5.5.1) */
            continue;
        }

        if (ch.last && pos < last && !ngx_http_loom_session_may_read(s)) {

            /*
             * one buffer may hold thousands of small requests: the rest
             * waits until the answers have gone out
             */

            s->pending = ngx_alloc(last - pos, c->log);
            if (s->pending == NULL) {
                ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_INTERNAL_ERROR,
                                           "out of memory");
                return NGX_DONE;
            }

            s->pending_len = last - pos;
            ngx_memcpy(s->pending, pos, s->pending_len);
            s->read_paused = 1;

            return NGX_AGAIN;
        }
    }
}


static void
ngx_http_loom_session_data(ngx_http_loom_session_t *s,
    ngx_http_loom_ws_chunk_t *ch)
{
    u_char  *p;
    size_t   need, size;

    if (ch->message == NGX_HTTP_LOOM_WS_TEXT) {
        s->utf8 = ngx_http_loom_utf8_check(s->utf8, ch->data, ch->len);

        if (s->utf8 == NGX_HTTP_LOOM_UTF8_REJECT) {
            ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                          "client sent invalid UTF-8 in a text message");
            ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_INVALID_DATA,
                                       "invalid UTF-8 in a text message");
            return;
        }
    }

    if (ch->first && ch->last && ch->fin && s->message_len == 0) {

        /* the whole message is in the buffer: no copy */

        if (ch->message == NGX_HTTP_LOOM_WS_TEXT
            && s->utf8 != NGX_HTTP_LOOM_UTF8_ACCEPT)
        {
            ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_INVALID_DATA,
                                       "invalid UTF-8 in a text message");
            return;
        }

        ngx_http_loom_session_dispatch(s, ch->data, ch->len, ch->message);
        return;
    }

    need = s->message_len + ch->len;

    if (need > s->message_size) {

        /* the parser has checked the size against the limit already */

        size = ngx_max(need, ngx_min(2 * s->message_size,
                                     s->conf->max_message_size));
        size = ngx_max(size, 1024);

        p = ngx_alloc(size, s->connection->log);
        if (p == NULL) {
            ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_INTERNAL_ERROR,
                                       "out of memory");
            return;
        }

        if (s->message) {
            ngx_memcpy(p, s->message, s->message_len);
            ngx_free(s->message);
        }

        s->message = p;
        s->message_size = size;
    }

    ngx_memcpy(s->message + s->message_len, ch->data, ch->len);
    s->message_len += ch->len;

    if (!(ch->last && ch->fin)) {
        return;
    }

    if (ch->message == NGX_HTTP_LOOM_WS_TEXT
        && s->utf8 != NGX_HTTP_LOOM_UTF8_ACCEPT)
    {
        ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_INVALID_DATA,
                                   "invalid UTF-8 in a text message");
        return;
    }

    ngx_http_loom_session_dispatch(s, s->message, s->message_len,
                                   ch->message);

    /* an idle session keeps no message buffer */

    ngx_free(s->message);
    s->message = NULL;
    s->message_len = 0;
    s->message_size = 0;
}


static void
ngx_http_loom_session_dispatch(ngx_http_loom_session_t *s, u_char *data,
    size_t len, ngx_uint_t opcode)
{
    s->utf8 = NGX_HTTP_LOOM_UTF8_ACCEPT;

    if (s->worker->stats) {
        s->worker->stats->messages++;
    }

    if (opcode == NGX_HTTP_LOOM_WS_BINARY
        && ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, data, len)
           != NGX_HTTP_LOOM_UTF8_ACCEPT)
    {
        /* binary messages carry JSON too, which must be UTF-8 */
        data = NULL;
        len = 0;
    }

    ngx_http_loom_protocol_message(s, data, len);
}


static void
ngx_http_loom_session_control(ngx_http_loom_session_t *s, ngx_uint_t opcode)
{
    u_char            *p;
    ngx_uint_t         code;
    ngx_connection_t  *c;

    c = s->connection;
    p = s->control;

    switch (opcode) {

    case NGX_HTTP_LOOM_WS_PING:
        if (!s->closing) {
            ngx_http_loom_session_control_frame(s, NGX_HTTP_LOOM_WS_PONG,
                                                p, s->control_len);
        }

        return;

    case NGX_HTTP_LOOM_WS_PONG:
        return;

    default: /* NGX_HTTP_LOOM_WS_CLOSE */
        break;
    }

    if (s->control_len == 1) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client sent a close frame with a 1-byte payload");
        ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                   "invalid close frame");
        return;
    }

    code = 0;

    if (s->control_len >= 2) {
        code = (p[0] << 8) | p[1];

        if (!ngx_http_loom_ws_close_code_valid(code)) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "client sent invalid close code %ui", code);
            ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                       "invalid close code");
            return;
        }

        if (ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, p + 2,
                                     s->control_len - 2)
            != NGX_HTTP_LOOM_UTF8_ACCEPT)
        {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "client sent a close reason that is not UTF-8");
            ngx_http_loom_session_fail(s, NGX_HTTP_LOOM_WS_INVALID_DATA,
                                       "invalid close reason");
            return;
        }
    }

    s->close_received = 1;

    if (s->closing) {
        /* the answer to our close frame: done once ours has gone out */
        return;
    }

    /* echo the code (RFC 6455, 5.5.1), then the server closes the TCP */

    s->closing = 1;
    ngx_http_loom_session_control_frame(s, NGX_HTTP_LOOM_WS_CLOSE, p,
                                        code ? 2 : 0);
}