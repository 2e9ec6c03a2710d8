/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_SESSION_H_INCLUDED_
#define _NGX_HTTP_LOOM_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_ws.h"
#include "ngx_http_loom_output.h"
#include "ngx_http_loom_request.h"
#include "ngx_http_loom_access.h"
#include "ngx_http_loom_clientid.h"


/*
 * One WebSocket connection after the handshake.  The HTTP request that
 * opened it is finished right after the handshake, unless a subrequest
 * still holds it (ngx_http_loom_upgrade.c); what limit_conn and the
 * access log need of it stays with the connection.
 *
 * Everything a session takes (its ClientId, its place in the gauges,
 * subscriptions, memory) is given back by one function, which a cleanup
 * of the connection's pool runs too: a connection that nginx closes by
 * itself leaves nothing behind.
 */


typedef void (*ngx_http_loom_session_handler_pt)(ngx_http_loom_session_t *s);


struct ngx_http_loom_session_s {
    ngx_connection_t           *connection;
    ngx_http_loom_worker_t     *worker;
    ngx_http_loom_loc_conf_t   *conf;
    ngx_http_request_t         *request;          /* while it is in use */
    ngx_event_t                 takeover;
    void                       *record;           /* for the access log */

    /* the end of the connection, set by the takeover */
    ngx_http_loom_session_handler_pt  close_handler;

    ngx_msec_t                  send_timeout;

    ngx_str_t                   client_id;
    ngx_str_t                   sender;           /* JSON-escaped id */
    ngx_http_loom_claim_t      *claim;            /* of the id, in Redis */

    /* what the credential allows; NULL: everything (no auth configured) */
    ngx_http_loom_access_t     *access;

    /* input */
    ngx_http_loom_ws_parser_t   parser;
    ngx_uint_t                  utf8;
    u_char                     *message;          /* fragments so far */
    size_t                      message_len;
    size_t                      message_size;
    u_char                     *pending;          /* read, not handled yet */
    size_t                      pending_len;
    ngx_msec_t                  last_read;
    size_t                      control_len;
    u_char                      control[NGX_HTTP_LOOM_WS_MAX_CONTROL];

    ngx_http_loom_out_t         out;

    ngx_http_loom_requests_t    requests;         /* in the order received */
    ngx_http_loom_subscriber_t  subscriber;       /* its subscriptions */

    unsigned                    started:1;        /* connection taken over */
    unsigned                    client_id_registered:1;
    unsigned                    ping_sent:1;
    unsigned                    closing:1;        /* close frame queued */
    unsigned                    close_sent:1;
    unsigned                    close_received:1;
    unsigned                    read_paused:1;
    unsigned                    finalized:1;
    unsigned                    counted:1;        /* in the gauges */
    unsigned                    released:1;
};


ngx_http_loom_session_t *ngx_http_loom_session_create(ngx_http_request_t *r);

/* the connection is the session's now: reading and timers start */
void ngx_http_loom_session_run(ngx_http_loom_session_t *s);

/* the connection's events */
void ngx_http_loom_session_read_event(ngx_http_loom_session_t *s);
void ngx_http_loom_session_write_event(ngx_http_loom_session_t *s);

/* gives back what the session holds; the connection is left alone */
void ngx_http_loom_session_release(ngx_http_loom_session_t *s);

/*
 * queues a frame (the ring takes a reference); NGX_ERROR: not queued,
 * because the session is closing or the client reads too slowly (the
 * session is closed with 4008 then)
 */
ngx_int_t ngx_http_loom_session_send(ngx_http_loom_session_t *s,
    ngx_http_loom_frame_t *f);

/* starts the close handshake; the session goes away on its own events */
void ngx_http_loom_session_close(ngx_http_loom_session_t *s,
    ngx_uint_t code, const char *reason);

/* the protocol layer has room for more requests again */
void ngx_http_loom_session_resume(ngx_http_loom_session_t *s);

/* ngx_http_loom_session_close.c, for the reading side */
ngx_uint_t ngx_http_loom_session_may_read(ngx_http_loom_session_t *s);
void ngx_http_loom_session_control_frame(ngx_http_loom_session_t *s,
    ngx_uint_t opcode, u_char *data, size_t len);
void ngx_http_loom_session_overflow(ngx_http_loom_out_t *o);
void ngx_http_loom_session_fail(ngx_http_loom_session_t *s, ngx_uint_t code,
    const char *reason);
void ngx_http_loom_session_timer(ngx_http_loom_session_t *s);
void ngx_http_loom_session_finalize(ngx_http_loom_session_t *s);

/* the handler of the ClientId's claim once the 101 is out */
void ngx_http_loom_session_claim_lost(ngx_http_loom_claim_t *cl,
    ngx_int_t rc);


#endif /* _NGX_HTTP_LOOM_SESSION_H_INCLUDED_ */
