/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include "ngx_http_loom_redis.h"


#define NGX_HTTP_LOOM_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_LOOM_REDIS_BACKOFF_MAX  5000
#define NGX_HTTP_LOOM_REDIS_OUT_MIN      16384
#define NGX_HTTP_LOOM_REDIS_CMDS_MIN     64
#define NGX_HTTP_LOOM_REDIS_READ         16384
#define NGX_HTTP_LOOM_REDIS_KEEPIDLE     30


static void ngx_http_loom_redis_connect_handler(ngx_event_t *wev);
static void ngx_http_loom_redis_read_handler(ngx_event_t *rev);
static void ngx_http_loom_redis_write_handler(ngx_event_t *wev);
static void ngx_http_loom_redis_timer_handler(ngx_event_t *ev);
static void ngx_http_loom_redis_ping_handler(ngx_event_t *ev);
static void ngx_http_loom_redis_reply(ngx_http_loom_redis_t *rd,
    redisReply *reply);
static ngx_uint_t ngx_http_loom_redis_is_push(redisReply *reply,
    ngx_uint_t *confirms);
static void ngx_http_loom_redis_answered(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_redis_drop(ngx_http_loom_redis_t *rd);
static void ngx_http_loom_redis_set_state(ngx_http_loom_redis_t *rd,
    ngx_uint_t state);
static void ngx_http_loom_redis_keepalive(ngx_http_loom_redis_t *rd);
static ngx_int_t ngx_http_loom_redis_reserve(ngx_http_loom_redis_t *rd,
    size_t len);
static u_char *ngx_http_loom_redis_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


void
ngx_http_loom_redis_init(ngx_http_loom_redis_t *rd,
    ngx_http_loom_redis_conf_t *conf, ngx_log_t *log)
{
    rd->conf = conf;
    rd->backoff = NGX_HTTP_LOOM_REDIS_BACKOFF_MIN;
    rd->state = NGX_HTTP_LOOM_LINK_DOWN;

    rd->log = *log;
    rd->log.handler = ngx_http_loom_redis_log_error;
    rd->log.data = rd;
    rd->log.action = NULL;

    rd->timer.handler = ngx_http_loom_redis_timer_handler;
    rd->timer.data = rd;
    rd->timer.log = &rd->log;
    rd->timer.cancelable = 1;

    rd->ping.handler = ngx_http_loom_redis_ping_handler;
    rd->ping.data = rd;
    rd->ping.log = &rd->log;
    rd->ping.cancelable = 1;
}


static u_char *
ngx_http_loom_redis_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    ngx_http_loom_redis_t  *rd;

    rd = log->data;

    return ngx_snprintf(buf, len, " while talking to redis \"%V\" (%s link)",
                        rd->server, rd->name);
}


void
ngx_http_loom_redis_connect(ngx_http_loom_redis_t *rd)
{
    ngx_int_t          rc;
    ngx_addr_t        *addr;
    ngx_connection_t  *c;

    addr = &rd->conf->addrs[rd->next_addr % rd->conf->naddrs];

    ngx_memzero(&rd->peer, sizeof(ngx_peer_connection_t));

    rd->peer.sockaddr = addr->sockaddr;
    rd->peer.socklen = addr->socklen;
    rd->peer.name = &addr->name;
    rd->peer.get = ngx_event_get_peer;
    rd->peer.log = &rd->log;
    rd->peer.log_error = NGX_ERROR_ERR;

    ngx_http_loom_redis_set_state(rd, NGX_HTTP_LOOM_LINK_CONNECTING);

    rc = ngx_event_connect_peer(&rd->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (rd->peer.connection) {
            ngx_close_connection(rd->peer.connection);
            rd->peer.connection = NULL;
        }

        ngx_http_loom_redis_fail(rd, NULL);
        return;
    }

    c = rd->peer.connection;
    c->data = rd;
    c->log = &rd->log;
    c->read->log = &rd->log;
    c->write->log = &rd->log;
    c->read->handler = ngx_http_loom_redis_read_handler;
    c->write->handler = ngx_http_loom_redis_connect_handler;

    rd->reader = redisReaderCreate();
    if (rd->reader == NULL) {
        ngx_http_loom_redis_fail(rd, "out of memory");
        return;
    }

    if (rc == NGX_AGAIN) {
        ngx_add_timer(&rd->timer, rd->conf->connect_timeout);
        return;
    }

    ngx_http_loom_redis_connect_handler(c->write);
}


static void
ngx_http_loom_redis_connect_handler(ngx_event_t *wev)
{
    int                     err;
    socklen_t               len;
    ngx_connection_t       *c;
    ngx_http_loom_redis_t  *rd;

    c = wev->data;
    rd = c->data;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        if (!rd->failed) {
            ngx_log_error(NGX_LOG_ERR, &rd->log, err, "loom: connect() failed");
        }

        ngx_http_loom_redis_fail(rd, NULL);
        return;
    }

    c->write->handler = ngx_http_loom_redis_write_handler;

    ngx_http_loom_redis_keepalive(rd);

    ngx_http_loom_redis_set_state(rd, NGX_HTTP_LOOM_LINK_HANDSHAKE);
    rd->last_reply = ngx_current_msec;

    /* the owner sends its handshake: AUTH, SELECT, SUBSCRIBE, ... */
    rd->connected(rd);
}


static void
ngx_http_loom_redis_keepalive(ngx_http_loom_redis_t *rd)
{
    int                value;
    ngx_connection_t  *c;

    c = rd->peer.connection;

    if (rd->peer.sockaddr->sa_family == AF_UNIX) {
        return;
    }

    /* both are small optimisations: failing them is not fatal */

    value = 1;

    if (setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, (const void *) &value,
                   sizeof(int))
        == -1)
    {
        ngx_log_error(NGX_LOG_WARN, &rd->log, ngx_socket_errno,
                      "loom: setsockopt(SO_KEEPALIVE) failed");
    }

#if (NGX_HAVE_KEEPALIVE_TUNABLE)
    value = NGX_HTTP_LOOM_REDIS_KEEPIDLE;
    (void) setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, (const void *) &value,
                      sizeof(int));
#endif

    (void) ngx_tcp_nodelay(c);
}


void
ngx_http_loom_redis_ready(ngx_http_loom_redis_t *rd)
{
    if (rd->failed) {
        ngx_log_error(NGX_LOG_NOTICE, &rd->log, 0, "loom: connected");
    }

    rd->failed = 0;
    rd->backoff = NGX_HTTP_LOOM_REDIS_BACKOFF_MIN;

    ngx_http_loom_redis_set_state(rd, NGX_HTTP_LOOM_LINK_READY);

    if (rd->conf->ping_interval && !rd->ping.timer_set) {
        ngx_add_timer(&rd->ping, rd->conf->ping_interval);
    }
}


ngx_int_t
ngx_http_loom_redis_send(ngx_http_loom_redis_t *rd, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_loom_redis_reply_pt handler, void *data, ngx_uint_t keep,
    const char **reason)
{
    char  *cmd;
    int    len;

    if (rd->state < NGX_HTTP_LOOM_LINK_HANDSHAKE) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    return ngx_http_loom_redis_send_formatted(rd, cmd, len, handler, data,
                                              keep, reason);
}


ngx_int_t
ngx_http_loom_redis_send_formatted(ngx_http_loom_redis_t *rd,
    char *command, size_t len, ngx_http_loom_redis_reply_pt handler,
    void *data, ngx_uint_t keep, const char **reason)
{
    ngx_uint_t                  i, size;
    ngx_event_t                *wev;
    ngx_http_loom_redis_cmd_t  *cmds, *cmd;

    if (rd->state < NGX_HTTP_LOOM_LINK_HANDSHAKE) {
        *reason = "not connected to redis";
        goto refused;
    }

    if (rd->due >= rd->conf->max_pending) {
        *reason = "too many redis commands in flight";
        goto busy;
    }

    if ((size_t) (rd->out_last - rd->out_pos) + len > rd->conf->max_buffered)
    {
        *reason = "too much data queued for redis";
        goto busy;
    }

    if (ngx_http_loom_redis_reserve(rd, len) != NGX_OK) {
        *reason = "out of memory";
        goto refused;
    }

    if (!rd->pubsub) {

        if (rd->ncmds == rd->cmds_size) {
            size = rd->cmds_size ? 2 * rd->cmds_size
                                 : NGX_HTTP_LOOM_REDIS_CMDS_MIN;

            cmds = ngx_alloc(size * sizeof(ngx_http_loom_redis_cmd_t),
                             &rd->log);
            if (cmds == NULL) {
                *reason = "out of memory";
                goto refused;
            }

            for (i = 0; i < rd->ncmds; i++) {
                cmds[i] = rd->cmds[(rd->cmds_head + i) & (rd->cmds_size - 1)];
            }

            if (rd->cmds) {
                ngx_free(rd->cmds);
            }

            rd->cmds = cmds;
            rd->cmds_size = size;
            rd->cmds_head = 0;
        }

        cmd = &rd->cmds[(rd->cmds_head + rd->ncmds) & (rd->cmds_size - 1)];
        cmd->handler = handler;
        cmd->data = data;
        cmd->command = keep ? command : NULL;
        cmd->len = len;
        rd->ncmds++;
    }

    rd->out_last = ngx_cpymem(rd->out_last, command, len);

    if (!keep || rd->pubsub) {
        redisFreeCommand(command);
    }

    if (rd->due++ == 0) {
        rd->last_reply = ngx_current_msec;
        ngx_add_timer(&rd->timer, rd->conf->timeout);
    }

    /* the commands of one pass of the event loop leave in one write */

    wev = rd->peer.connection->write;

    if (!wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }

    return NGX_OK;

busy:

    redisFreeCommand(command);
    return NGX_BUSY;

refused:

    redisFreeCommand(command);
    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_redis_reserve(ngx_http_loom_redis_t *rd, size_t len)
{
    u_char  *p;
    size_t   used, size;

    if ((size_t) (rd->out_end - rd->out_last) >= len) {
        return NGX_OK;
    }

    used = rd->out_last - rd->out_pos;

    if (rd->out_start && (size_t) (rd->out_end - rd->out_start) >= used + len)
    {
        /* the written part at the front is room again */
        ngx_memmove(rd->out_start, rd->out_pos, used);
        rd->out_pos = rd->out_start;
        rd->out_last = rd->out_start + used;
        return NGX_OK;
    }

    size = rd->out_start ? (size_t) (rd->out_end - rd->out_start)
                         : NGX_HTTP_LOOM_REDIS_OUT_MIN;

    while (size < used + len) {
        size *= 2;
    }

    p = ngx_alloc(size, &rd->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (used) {
        ngx_memcpy(p, rd->out_pos, used);
    }

    if (rd->out_start) {
        ngx_free(rd->out_start);
    }

    rd->out_start = p;
    rd->out_pos = p;
    rd->out_last = p + used;
    rd->out_end = p + size;

    return NGX_OK;
}


static void
ngx_http_loom_redis_write_handler(ngx_event_t *wev)
{
    size_t                  size;
    ssize_t                 n;
    ngx_connection_t       *c;
    ngx_http_loom_redis_t  *rd;

    c = wev->data;
    rd = c->data;

    while (rd->out_pos < rd->out_last) {

        if (!wev->ready) {
            break;
        }

        n = c->send(c, rd->out_pos, rd->out_last - rd->out_pos);

        if (n == NGX_ERROR) {
            ngx_http_loom_redis_fail(rd, "send() failed");
            return;
        }

        if (n == NGX_AGAIN) {
            break;
        }

        rd->out_pos += n;
    }

    if (rd->out_pos == rd->out_last) {
        rd->out_pos = rd->out_start;
        rd->out_last = rd->out_start;

        /* a burst should not keep a large buffer for an idle link */

        size = rd->out_end - rd->out_start;

        if (size > 4 * NGX_HTTP_LOOM_REDIS_OUT_MIN) {
            ngx_free(rd->out_start);
            rd->out_start = NULL;
            rd->out_pos = NULL;
            rd->out_last = NULL;
            rd->out_end = NULL;
        }
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_loom_redis_fail(rd, "cannot watch the socket");
    }
}


static void
ngx_http_loom_redis_read_handler(ngx_event_t *rev)
{
    void                   *reply;
    ssize_t                 n;
    ngx_uint_t              generation;
    ngx_connection_t       *c;
    ngx_http_loom_redis_t  *rd;
    u_char                  buf[NGX_HTTP_LOOM_REDIS_READ];

    c = rev->data;
    rd = c->data;

    if (c->close) {
        /*
         * worker_shutdown_timeout marks every connection for closing; the
         * links do not hold the worker up and are closed at its exit
         */
        c->close = 0;
    }

    if (rd->state < NGX_HTTP_LOOM_LINK_HANDSHAKE) {
        /* a read event before connect() completed: the write one tells */
        return;
    }

    generation = rd->generation;

    /*
     * On until NGX_AGAIN, also after a short read: the server's close may
     * come with its last bytes in one edge-triggered event (a CLIENT KILL
     * while messages flow), and no event comes again for the close alone.
     * recv() answers NGX_AGAIN at once when nginx knows nothing is left.
     */

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_loom_redis_fail(rd, "connection closed by the server");
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_loom_redis_fail(rd, "recv() failed");
            return;
        }

        if (redisReaderFeed(rd->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_loom_redis_fail(rd, "out of memory");
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(rd->reader, &reply) != REDIS_OK) {
                ngx_log_error(NGX_LOG_ERR, &rd->log, 0,
                              "loom: bad reply from redis: %s",
                              rd->reader->errstr);
                ngx_http_loom_redis_fail(rd, NULL);
                return;
            }

            if (reply == NULL) {
                break;
            }

            rd->keep_reply = 0;

            ngx_http_loom_redis_reply(rd, reply);

            if (!rd->keep_reply) {
                freeReplyObject(reply);
            }

            if (rd->generation != generation) {
                /* the link was dropped while a reply was handled */
                return;
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_loom_redis_fail(rd, "cannot watch the socket");
    }
}


static void
ngx_http_loom_redis_reply(ngx_http_loom_redis_t *rd, redisReply *reply)
{
    ngx_uint_t                 confirms;
    ngx_http_loom_redis_cmd_t  cmd;

    if (rd->pubsub) {

        if (ngx_http_loom_redis_is_push(reply, &confirms)) {

            while (confirms--) {
                ngx_http_loom_redis_answered(rd);
            }

            rd->push(rd, reply);
            return;
        }

        /* an error or a reply to AUTH: for the owner too */
        ngx_http_loom_redis_answered(rd);
        rd->push(rd, reply);
        return;
    }

    if (rd->ncmds == 0) {
        ngx_log_error(NGX_LOG_ERR, &rd->log, 0,
                      "loom: a reply from redis that nothing asked for");
        ngx_http_loom_redis_fail(rd, NULL);
        return;
    }

    cmd = rd->cmds[rd->cmds_head];
    rd->cmds_head = (rd->cmds_head + 1) & (rd->cmds_size - 1);
    rd->ncmds--;

    ngx_http_loom_redis_answered(rd);

    rd->current = &cmd;

    if (cmd.handler) {
        cmd.handler(cmd.data, reply);
    }

    rd->current = NULL;

    /* the handler may have taken the command (cmd.command = NULL) */

    if (cmd.command) {
        redisFreeCommand(cmd.command);
    }
}


ngx_http_loom_redis_cmd_t *
ngx_http_loom_redis_current(ngx_http_loom_redis_t *rd)
{
    return rd->current;
}


/*
 * Pushes of a subscribed connection (RESP2): an array whose first element
 * names the kind.  Every (un)subscribe confirmation and every pong answers
 * one command sent; messages answer none.
 */

static ngx_uint_t
ngx_http_loom_redis_is_push(redisReply *reply, ngx_uint_t *confirms)
{
    redisReply  *kind;

    *confirms = 0;

    if (reply->type == REDIS_REPLY_STATUS && reply->len == 4
        && ngx_strncasecmp((u_char *) reply->str, (u_char *) "pong", 4) == 0)
    {
        *confirms = 1;
        return 1;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        return 0;
    }

    kind = reply->element[0];

    if (kind->type != REDIS_REPLY_STRING) {
        return 0;
    }

    if ((kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0)
        || (kind->len == 8 && ngx_strncmp(kind->str, "smessage", 8) == 0)
        || (kind->len == 8 && ngx_strncmp(kind->str, "pmessage", 8) == 0))
    {
        return 1;
    }

    *confirms = 1;

    return 1;
}


static void
ngx_http_loom_redis_answered(ngx_http_loom_redis_t *rd)
{
    rd->last_reply = ngx_current_msec;

    if (rd->due) {
        rd->due--;
    }

    /* the deadline measures silence while replies are due */

    if (rd->due) {
        ngx_add_timer(&rd->timer, rd->conf->timeout);

    } else if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }
}


static void
ngx_http_loom_redis_timer_handler(ngx_event_t *ev)
{
    ngx_http_loom_redis_t  *rd;

    rd = ev->data;

    switch (rd->state) {

    case NGX_HTTP_LOOM_LINK_DOWN:
        if (rd->reconnects) {
            (*rd->reconnects)++;
        }

        ngx_http_loom_redis_connect(rd);
        return;

    case NGX_HTTP_LOOM_LINK_CONNECTING:
        ngx_log_error(NGX_LOG_ERR, &rd->log, NGX_ETIMEDOUT,
                      "loom: connect timed out");
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, &rd->log, NGX_ETIMEDOUT,
                      "loom: no reply for %M ms, %ui replies due",
                      rd->conf->timeout, rd->due);
        break;
    }

    rd->failed = 1;
    ngx_http_loom_redis_fail(rd, NULL);
}


/*
 * A link on which nothing is due gets a PING every ping interval: a
 * connection that is open but answers nothing (a half-open TCP, a frozen
 * server or proxy) is found within ping interval + timeout.
 */

static void
ngx_http_loom_redis_ping_handler(ngx_event_t *ev)
{
    const char             *reason, *argv[1];
    size_t                  argvlen[1];
    ngx_http_loom_redis_t  *rd;

    rd = ev->data;

    if (rd->state != NGX_HTTP_LOOM_LINK_READY) {
        return;
    }

    if (rd->due == 0) {
        argv[0] = "PING";
        argvlen[0] = 4;

        (void) ngx_http_loom_redis_send(rd, 1, argv, argvlen, NULL, NULL, 0,
                                        &reason);
    }

    ngx_add_timer(&rd->ping, rd->conf->ping_interval);
}


void
ngx_http_loom_redis_fail(ngx_http_loom_redis_t *rd, const char *why)
{
    ngx_msec_t  delay;
    ngx_uint_t  prev;

    prev = rd->state;

    if (why && !rd->failed && !rd->closing) {
        ngx_log_error(NGX_LOG_ERR, &rd->log, 0, "loom: %s", why);
    }

    rd->failed = 1;

    ngx_http_loom_redis_drop(rd);

    if (prev >= NGX_HTTP_LOOM_LINK_HANDSHAKE && rd->down) {
        rd->down(rd);
    }

    if (rd->closing || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rd->state != NGX_HTTP_LOOM_LINK_DOWN || rd->timer.timer_set) {
        /* a handler called above connected again already */
        return;
    }

    /* several addresses: the next one is tried next */
    rd->next_addr++;

    delay = rd->backoff + (ngx_random() % (rd->backoff / 2 + 1));
    rd->backoff = ngx_min(rd->backoff * 2, NGX_HTTP_LOOM_REDIS_BACKOFF_MAX);

    ngx_add_timer(&rd->timer, delay);
}


void
ngx_http_loom_redis_close(ngx_http_loom_redis_t *rd)
{
    rd->closing = 1;

    ngx_http_loom_redis_drop(rd);

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->cmds) {
        ngx_free(rd->cmds);
        rd->cmds = NULL;
        rd->cmds_size = 0;
    }
}


/* closes the connection and fails every command waiting on it */

static void
ngx_http_loom_redis_drop(ngx_http_loom_redis_t *rd)
{
    ngx_http_loom_redis_cmd_t  cmd;

    rd->generation++;

    ngx_http_loom_redis_set_state(rd, NGX_HTTP_LOOM_LINK_DOWN);

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->ping.timer_set) {
        ngx_del_timer(&rd->ping);
    }

    if (rd->peer.connection) {
        ngx_close_connection(rd->peer.connection);
        rd->peer.connection = NULL;
    }

    if (rd->reader) {
        redisReaderFree(rd->reader);
        rd->reader = NULL;
    }

    if (rd->out_start) {
        ngx_free(rd->out_start);
        rd->out_start = NULL;
        rd->out_pos = NULL;
        rd->out_last = NULL;
        rd->out_end = NULL;
    }

    rd->due = 0;

    /* in order; a handler may queue commands again: they are refused */

    while (rd->ncmds) {
        cmd = rd->cmds[rd->cmds_head];
        rd->cmds_head = (rd->cmds_head + 1) & (rd->cmds_size - 1);
        rd->ncmds--;

        if (cmd.handler) {
            cmd.handler(cmd.data, NULL);
        }

        if (cmd.command) {
            redisFreeCommand(cmd.command);
        }
    }

    rd->cmds_head = 0;
}


static void
ngx_http_loom_redis_set_state(ngx_http_loom_redis_t *rd, ngx_uint_t state)
{
    rd->state = state;

    if (rd->gauge) {
        *rd->gauge = state;
    }

    if (rd->changed) {
        rd->changed(rd);
    }
}
