/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_REDIS_H_INCLUDED_
#define _NGX_HTTP_LOOM_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <hiredis/hiredis.h>


/*
 * One connection to Redis, run by nginx's event loop: nginx connects it
 * (any address ngx_parse_url() takes: IPv4, IPv6, unix), commands are
 * pipelined into one output buffer that leaves in one write per pass of
 * the event loop, and replies are parsed by hiredis's reply reader and
 * handed out in order.  Only hiredis's RESP reader and command formatter
 * are used; its async layer is not.
 *
 * The link watches itself: TCP keepalive is on, an idle link sends PING
 * every ping interval, and whenever replies are due and none has come for
 * the reply timeout, the link is declared down.  A link that is down fails
 * every command waiting on it (the handler gets a NULL reply), calls its
 * owner's down handler, and connects again after a backoff from 100 ms to
 * 5 s with jitter.
 *
 * A link in pub/sub mode hands every push (message, smessage, subscribe,
 * unsubscribe, pong, ...) to its owner's push handler; the confirmations
 * among them count as replies for the timeout.
 */


#define NGX_HTTP_LOOM_LINK_DOWN          0
#define NGX_HTTP_LOOM_LINK_CONNECTING    1
#define NGX_HTTP_LOOM_LINK_HANDSHAKE     2
#define NGX_HTTP_LOOM_LINK_READY         3


typedef struct ngx_http_loom_redis_s  ngx_http_loom_redis_t;

/* reply is NULL when the link went down before the reply came */
typedef void (*ngx_http_loom_redis_reply_pt)(void *data, redisReply *reply);
typedef void (*ngx_http_loom_redis_event_pt)(ngx_http_loom_redis_t *rd);
typedef void (*ngx_http_loom_redis_push_pt)(ngx_http_loom_redis_t *rd,
    redisReply *reply);


typedef struct {
    ngx_addr_t                     *addrs;
    ngx_uint_t                      naddrs;
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      timeout;         /* reply deadline */
    ngx_msec_t                      ping_interval;
    size_t                          max_buffered;    /* bytes not sent */
    ngx_uint_t                      max_pending;     /* replies due */
} ngx_http_loom_redis_conf_t;


typedef struct {
    ngx_http_loom_redis_reply_pt    handler;
    void                           *data;
    char                           *command;         /* kept: see retry */
    size_t                          len;
} ngx_http_loom_redis_cmd_t;


struct ngx_http_loom_redis_s {
    ngx_http_loom_redis_conf_t     *conf;
    ngx_peer_connection_t           peer;
    redisReader                    *reader;

    /* bytes not written yet */
    u_char                         *out_start;
    u_char                         *out_pos;
    u_char                         *out_last;
    u_char                         *out_end;

    /* replies due, in order: a ring */
    ngx_http_loom_redis_cmd_t      *cmds;
    ngx_uint_t                      cmds_size;
    ngx_uint_t                      cmds_head;
    ngx_uint_t                      ncmds;
    ngx_http_loom_redis_cmd_t      *current;         /* being answered */

    ngx_uint_t                      due;             /* incl. pushes */
    ngx_uint_t                      state;
    ngx_uint_t                      generation;      /* per connection */
    ngx_uint_t                      next_addr;
    ngx_msec_t                      backoff;
    ngx_msec_t                      last_reply;

    ngx_event_t                     timer;           /* connect, deadline,
                                                        reconnect */
    ngx_event_t                     ping;

    ngx_log_t                       log;
    const char                     *name;
    ngx_str_t                      *server;          /* as configured */

    void                           *data;            /* the owner */
    ngx_http_loom_redis_event_pt    connected;       /* do the handshake */
    ngx_http_loom_redis_event_pt    down;
    ngx_http_loom_redis_push_pt     push;
    ngx_http_loom_redis_event_pt    changed;         /* state, or NULL:
                                                        timers only */

    ngx_atomic_t                   *reconnects;      /* counter, or NULL */
    ngx_atomic_t                   *gauge;           /* state, or NULL */

    unsigned                        pubsub:1;
    unsigned                        failed:1;        /* last try failed */
    unsigned                        closing:1;       /* no reconnect */
    unsigned                        keep_reply:1;    /* a handler took the
                                                        reply it was given */
};


void ngx_http_loom_redis_init(ngx_http_loom_redis_t *rd,
    ngx_http_loom_redis_conf_t *conf, ngx_log_t *log);
void ngx_http_loom_redis_connect(ngx_http_loom_redis_t *rd);
/* the handshake is through: commands may flow */
void ngx_http_loom_redis_ready(ngx_http_loom_redis_t *rd);
/* drops the connection and connects again later */
void ngx_http_loom_redis_fail(ngx_http_loom_redis_t *rd, const char *why);
/* drops the connection for good (worker exit) */
void ngx_http_loom_redis_close(ngx_http_loom_redis_t *rd);

/*
 * Queues a command.  NGX_OK: the handler will be called (handler may be
 * NULL); NGX_DECLINED: the link is not connected; NGX_BUSY: too much
 * waiting already.  *reason says why not.  keep: the formatted command
 * stays with the reply slot, for ngx_http_loom_redis_resend().
 */
ngx_int_t ngx_http_loom_redis_send(ngx_http_loom_redis_t *rd, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_loom_redis_reply_pt handler, void *data, ngx_uint_t keep,
    const char **reason);
/* queues a formatted command, taking it over */
ngx_int_t ngx_http_loom_redis_send_formatted(ngx_http_loom_redis_t *rd,
    char *command, size_t len, ngx_http_loom_redis_reply_pt handler,
    void *data, ngx_uint_t keep, const char **reason);

/* the kept command of the reply being handled now, or NULL */
ngx_http_loom_redis_cmd_t *ngx_http_loom_redis_current(
    ngx_http_loom_redis_t *rd);


#endif /* _NGX_HTTP_LOOM_REDIS_H_INCLUDED_ */
