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


/*
 * A session's writing and closing: the frames the server sends of its
 * own (pongs, pings, close frames), flow control, the timers, the close
 * handshake and the one path that gives everything back.  The reading
 * side (ngx_http_loom_session.c) sits on top of it.
 */


static void ngx_http_loom_session_close_sent(ngx_http_loom_session_t *s);


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

    if (s->claim) {
        ngx_http_loom_claim_release(s->claim);
        s->claim = NULL;
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
 * Another node's connection holds the ClientId: Redis had lost this one's
 * claim (it was down, or restarted empty), and the other claimed the id
 * meanwhile.  The claim in Redis wins; a session that has not started yet
 * is closed by ngx_http_loom_session_run().
 */

void
ngx_http_loom_session_claim_lost(ngx_http_loom_claim_t *cl, ngx_int_t rc)
{
    ngx_http_loom_session_t  *s;

    s = cl->data;

    if (rc != NGX_DECLINED || !s->started) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                  "loom: ClientId \"%V\" is connected to another node now, "
                  "closing", &s->client_id);

    ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_CLIENT_ID_TAKEN,
                                "client ID already exists");
}


/*
 * Flow control: a client with too many requests in flight (or too many
 * bytes of requests waiting behind a slow one), or one that does not read
 * what it is sent, is not read from until that changes, so it is slowed
 * down by TCP instead of growing the server's queues.
 */

ngx_uint_t
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


void
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

void
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

void
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


void
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


void
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
