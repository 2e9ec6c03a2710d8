/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_OUTPUT_H_INCLUDED_
#define _NGX_HTTP_LOOM_OUTPUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Frames and a connection's output ring.  This layer knows nothing of
 * sessions: what happens when the ring is over its limit is the owner's
 * business, through the overflow handler it sets.
 */


#define NGX_HTTP_LOOM_IOVS       64       /* frames per write */


/* a complete server frame, shared by every connection it is queued to */
typedef struct {
    ngx_uint_t                     refs;
    size_t                         len;
    u_char                         data[1];
} ngx_http_loom_frame_t;


typedef struct ngx_http_loom_out_s  ngx_http_loom_out_t;

typedef void (*ngx_http_loom_out_handler_pt)(ngx_http_loom_out_t *o);


struct ngx_http_loom_out_s {
    ngx_connection_t              *connection;
    ngx_http_loom_frame_t        **ring;
    ngx_uint_t                     size, head, count;
    size_t                         sent;        /* of the head frame */
    size_t                         bytes;
    size_t                         limit;       /* loom_max_send_queue */
    ngx_http_loom_out_handler_pt   overflow;    /* set by the owner */
    void                          *data;        /* the owner */
    unsigned                       closed:1;    /* takes no frames */
};


ngx_http_loom_frame_t *ngx_http_loom_frame_alloc(ngx_uint_t opcode,
    size_t len, u_char **payload);
/* a frame of bytes sent as they are (an event stream's), no header */
ngx_http_loom_frame_t *ngx_http_loom_frame_bytes(size_t len, u_char **data);
void ngx_http_loom_frame_release(ngx_http_loom_frame_t *f);

/*
 * Queues a frame (taking a reference) within the limit; past it calls
 * o->overflow and returns NGX_ERROR.  NGX_ERROR also when closed.
 */
ngx_int_t ngx_http_loom_out_send(ngx_http_loom_out_t *o,
    ngx_http_loom_frame_t *f);

/* queues without the limit (control frames); NGX_ERROR: not queued */
ngx_int_t ngx_http_loom_out_queue(ngx_http_loom_out_t *o,
    ngx_http_loom_frame_t *f);

/* writes what the socket takes: NGX_OK all of it, NGX_AGAIN, NGX_ERROR */
ngx_int_t ngx_http_loom_out_flush(ngx_http_loom_out_t *o);

/*
 * the head frame was written by the owner's own writer (an event stream's,
 * through nginx's output filters): it leaves the ring
 */
void ngx_http_loom_out_shift(ngx_http_loom_out_t *o);

/* drops the queued frames but a frame partly written */
void ngx_http_loom_out_drop(ngx_http_loom_out_t *o);

/* releases every frame and the ring; the ring takes no frames after it */
void ngx_http_loom_out_free(ngx_http_loom_out_t *o);


#endif /* _NGX_HTTP_LOOM_OUTPUT_H_INCLUDED_ */
