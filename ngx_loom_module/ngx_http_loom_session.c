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
static void ngx_http_loom_session_fail(ngx_http_loom_session_t *s,
    ngx_uint_t code, const char *reason);
static void ngx_http_loom_session_timer(ngx_http_loom_session_t *s);
static void ngx_http_loom_session_close_sent(ngx_http_loom_session_t *s);
static ngx_uint_t ngx_http_loom_session_may_read(ngx_http_loom_session_t *s);
static void ngx_http_loom_session_control_frame(ngx_http_loom_session_t *s,
    ngx_uint_t opcode, u_char *data, size_t len);
static void ngx_http_loom_session_finalize(ngx_http_loom_session_t *s);
static void ngx_http_loom_session_overflow(ngx_http_loom_out_t *o);
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
 * What the session holds outside its own struct: the ClientId, its place
 * in the gauges, requests, subscriptions, frames and buffers.  Once only.
 */

void
ngx_http_loom_session_release(ngx_http_loom_session_t *s)
{
    ngx_http_loom_worker_t  *w;

    if (s->released) {
        return;
    }

    s->released = 1;
    s->finalized = 1;

    w = s->worker;

    if (s->takeover.posted) {
        ngx_delete_posted_event(&s->takeover);
    }

    ngx_http_loom_protocol_session_closed(s);
    ngx_http_loom_topic_unsubscribe_all(&s->subscriber);

    if (s->client_id_registered) {
        ngx_http_loom_shm_client_del(w->shm, &s->client_id);
        s->client_id_registered = 0;
    }

    if (s->counted) {
        if (w->stats) {
            w->stats->connections--;
        }

        s->counted = 0;
    }

    s->closing = 0;
    ngx_http_loom_out_free(&s->out);

    if (s->message) {
        ngx_free(s->message);
        s->message = NULL;
    }

    if (s->pending) {
        ngx_free(s->pending);
        s->pending = NULL;
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


/*
 * Flow control: a client with too many requests in flight (or too many
 * bytes of requests waiting behind a slow one), or one that does not read
 * what it is sent, is not read from until that changes, so it is slowed
 * down by TCP instead of growing the server's queues.
 */

static ngx_uint_t
ngx_http_loom_session_may_read(ngx_http_loom_session_t *s)
{
    if (s->closing) {
        return 1;
    }

    if (s->requests.inflight >= s->conf->max_inflight
        || s->requests.deferred > s->conf->max_message_size)
    {
        return 0;
    }

    return s->out.bytes < s->conf->max_send_queue / 2;
}


void
ngx_http_loom_session_resume(ngx_http_loom_session_t *s)
{
    ngx_event_t  *rev;

    if (!s->read_paused || s->finalized
        || !ngx_http_loom_session_may_read(s))
    {
        return;
    }

    s->read_paused = 0;

    rev = s->connection->read;

    if ((rev->ready || s->pending) && !rev->posted) {
        ngx_post_event(rev, &ngx_posted_events);
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


static void
ngx_http_loom_session_control_frame(ngx_http_loom_session_t *s,
    ngx_uint_t opcode, u_char *data, size_t len)
{
    u_char                 *p;
    ngx_http_loom_frame_t  *f;

    f = ngx_http_loom_frame_alloc(opcode, len, &p);
    if (f == NULL) {
        return;
    }

    if (len) {
        ngx_memcpy(p, data, len);
    }

    /* control frames are small and bypass the queue limit */
    (void) ngx_http_loom_out_queue(&s->out, f);

    ngx_http_loom_frame_release(f);

    if (opcode == NGX_HTTP_LOOM_WS_CLOSE) {
        /* nothing goes after a close frame */
        s->out.closed = 1;
    }
}


ngx_int_t
ngx_http_loom_session_send(ngx_http_loom_session_t *s,
    ngx_http_loom_frame_t *f)
{
    if (s->closing || s->finalized) {
        return NGX_ERROR;
    }

    return ngx_http_loom_out_send(&s->out, f);
}


/* the client does not read what it is sent: the ring is over its limit */

static void
ngx_http_loom_session_overflow(ngx_http_loom_out_t *o)
{
    ngx_http_loom_session_t  *s;

    s = o->data;

    ngx_log_error(NGX_LOG_INFO, o->connection->log, 0,
                  "client does not read fast enough, %uz bytes queued: "
                  "closing", o->bytes);

    if (s->worker->stats) {
        s->worker->stats->slow_consumers++;
    }

    ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_SLOW_CONSUMER,
                                "slow consumer");
}


/*
 * Closes the connection: queues a close frame and waits for the client's
 * close frame for close_timeout at most.  1001 (shutdown) and 1000 keep
 * the output queued before the close frame; the other codes drop it.
 */

void
ngx_http_loom_session_close(ngx_http_loom_session_t *s, ngx_uint_t code,
    const char *reason)
{
    u_char      payload[NGX_HTTP_LOOM_WS_MAX_CONTROL];
    size_t      len;
    ngx_uint_t  keep;

    if (s->closing || s->finalized) {
        return;
    }

    s->closing = 1;

    keep = (code == NGX_HTTP_LOOM_WS_NORMAL
            || code == NGX_HTTP_LOOM_WS_GOING_AWAY);

    if (!keep) {
        ngx_http_loom_out_drop(&s->out);
    }

    len = reason ? ngx_strlen(reason) : 0;
    len = ngx_min(len, NGX_HTTP_LOOM_WS_MAX_CONTROL - 2);

    payload[0] = (u_char) (code >> 8);
    payload[1] = (u_char) code;
    if (len) {
        ngx_memcpy(payload + 2, reason, len);
    }

    ngx_http_loom_session_control_frame(s, NGX_HTTP_LOOM_WS_CLOSE, payload,
                                        len + 2);

    if (s->connection->read->timer_set) {
        ngx_del_timer(s->connection->read);
    }

    ngx_add_timer(s->connection->read, s->conf->close_timeout);
}


/* "fail the WebSocket connection" (RFC 6455, 7.1.7) */

static void
ngx_http_loom_session_fail(ngx_http_loom_session_t *s, ngx_uint_t code,
    const char *reason)
{
    if (s->worker->stats) {
        s->worker->stats->protocol_errors++;
    }

    if (s->parser.error == NULL) {
        s->parser.error = reason;
    }

    if (s->closing) {
        return;
    }

    ngx_http_loom_session_close(s, code, reason);
}


static void
ngx_http_loom_session_timer(ngx_http_loom_session_t *s)
{
    ngx_msec_t                 now, idle, next;
    ngx_connection_t          *c;
    ngx_http_loom_loc_conf_t  *conf;

    c = s->connection;
    conf = s->conf;

    if (s->closing) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "loom: close handshake timed out");
        ngx_http_loom_session_finalize(s);
        return;
    }

    now = ngx_current_msec;
    idle = s->read_paused ? 0 : now - s->last_read;

    if (conf->idle_timeout && idle >= conf->idle_timeout) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client sent nothing for %M ms, closing", idle);
        ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_GOING_AWAY,
                                    "idle timeout");
        return;
    }

    if (conf->ping_interval && idle >= conf->ping_interval
        && !s->ping_sent)
    {
        s->ping_sent = 1;
        ngx_http_loom_session_control_frame(s, NGX_HTTP_LOOM_WS_PING,
                                            NULL, 0);
    }

    /*
     * Reads do not touch the timer: it comes back when the next ping may
     * be due (a ping interval after the last one, if it is unanswered) or
     * the idle timeout, whichever is first, and looks at the time of the
     * last read then.
     */

    next = NGX_MAX_INT32_VALUE;

    if (conf->ping_interval) {
        next = s->ping_sent ? conf->ping_interval
                            : conf->ping_interval - idle;
    }

    if (conf->idle_timeout) {
        next = ngx_min(next, conf->idle_timeout - idle);
    }

    ngx_add_timer(c->read, ngx_max(next, 1));
}


void
ngx_http_loom_session_write_event(ngx_http_loom_session_t *s)
{
    ngx_int_t          rc;
    ngx_event_t       *wev;
    ngx_connection_t  *c;

    c = s->connection;
    wev = c->write;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;
        ngx_http_loom_session_finalize(s);
        return;
    }

    rc = ngx_http_loom_out_flush(&s->out);

    if (rc == NGX_ERROR) {
        ngx_http_loom_session_finalize(s);
        return;
    }

    if (rc == NGX_OK) {

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        if (s->closing && !s->close_sent) {
            ngx_http_loom_session_close_sent(s);
            return;
        }

        if (s->read_paused) {
            ngx_http_loom_session_resume(s);
        }

        return;
    }

    /* NGX_AGAIN: the socket is full */

    if (!wev->timer_set) {
        ngx_add_timer(wev, s->send_timeout);
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_loom_session_finalize(s);
        return;
    }

    if (s->read_paused) {
        ngx_http_loom_session_resume(s);
    }
}


static void
ngx_http_loom_session_close_sent(ngx_http_loom_session_t *s)
{
    ngx_connection_t  *c;

    c = s->connection;
    s->close_sent = 1;

    if (s->close_received) {
        ngx_http_loom_session_finalize(s);
        return;
    }

    /* the client gets EOF now; its close frame is still read */

    if (c->ssl == NULL) {
        if (shutdown(c->fd, SHUT_WR) == -1) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, ngx_socket_errno,
                           "loom: shutdown() failed %d", c->fd);
        }
    }

    if (c->read->ready && !c->read->posted) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


static void
ngx_http_loom_session_finalize(ngx_http_loom_session_t *s)
{
    if (s->finalized) {
        return;
    }

    ngx_http_loom_session_release(s);

    s->connection->idle = 0;

    /* the request is logged, the connection closed: the session with it */
    s->close_handler(s);
}
