/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_WS_H_INCLUDED_
#define _NGX_HTTP_LOOM_WS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * RFC 6455 framing, server side: an incremental parser for client frames
 * and the header encoder for server frames.  No I/O and no allocation: the
 * parser walks a buffer the caller owns, unmasks payload bytes in place
 * and hands them out in chunks, so a frame split over any number of reads
 * costs nothing extra to reassemble.
 */


#define NGX_HTTP_LOOM_WS_CONT            0x0
#define NGX_HTTP_LOOM_WS_TEXT            0x1
#define NGX_HTTP_LOOM_WS_BINARY          0x2
#define NGX_HTTP_LOOM_WS_CLOSE           0x8
#define NGX_HTTP_LOOM_WS_PING            0x9
#define NGX_HTTP_LOOM_WS_PONG            0xa

#define NGX_HTTP_LOOM_WS_MAX_CONTROL     125
#define NGX_HTTP_LOOM_WS_MAX_HEADER      10   /* a server frame's header */

/* close codes (RFC 6455, section 7.4.1) and our own */
#define NGX_HTTP_LOOM_WS_NORMAL          1000
#define NGX_HTTP_LOOM_WS_GOING_AWAY      1001
#define NGX_HTTP_LOOM_WS_PROTOCOL_ERROR  1002
#define NGX_HTTP_LOOM_WS_NO_STATUS       1005
#define NGX_HTTP_LOOM_WS_INVALID_DATA    1007
#define NGX_HTTP_LOOM_WS_POLICY          1008
#define NGX_HTTP_LOOM_WS_TOO_BIG         1009
#define NGX_HTTP_LOOM_WS_INTERNAL_ERROR  1011
#define NGX_HTTP_LOOM_WS_SLOW_CONSUMER   4008
#define NGX_HTTP_LOOM_WS_CLIENT_ID_TAKEN 4009


typedef struct {
    ngx_uint_t      state;
    ngx_uint_t      opcode;          /* of the current frame */
    ngx_uint_t      message;         /* opcode of the message in progress */

    uint64_t        len;             /* payload length of the frame */
    uint64_t        left;            /* payload bytes still to come */
    uint64_t        message_len;     /* data payload so far in a message */
    uint64_t        max_message;     /* 0: no limit */

    ngx_uint_t      ext;             /* 2 or 8: extended length bytes */
    ngx_uint_t      need;            /* header bytes still due */
    ngx_uint_t      mask_pos;
    u_char          mask[4];

    unsigned        fin:1;
    unsigned        first:1;         /* next chunk is the frame's first */

    ngx_uint_t      close_code;      /* set when parsing fails */
    const char     *error;
} ngx_http_loom_ws_parser_t;


typedef struct {
    u_char         *data;            /* unmasked payload bytes */
    size_t          len;
    ngx_uint_t      opcode;          /* of the frame (CONT for a fragment) */
    ngx_uint_t      message;         /* TEXT or BINARY for data frames */
    unsigned        first:1;         /* first chunk of the frame */
    unsigned        last:1;          /* last chunk of the frame */
    unsigned        fin:1;           /* the frame ends its message */
} ngx_http_loom_ws_chunk_t;


void ngx_http_loom_ws_parser_init(ngx_http_loom_ws_parser_t *p,
    uint64_t max_message);

/*
 * Consumes bytes from *pos up to last.  Returns
 *
 *     NGX_OK     a chunk was filled in (possibly empty: a frame with no
 *                payload); *pos is past it
 *     NGX_AGAIN  every byte was consumed and more are needed
 *     NGX_ERROR  the client broke the protocol: p->close_code and p->error
 *                say how (1002 protocol error, 1009 message too big)
 */
ngx_int_t ngx_http_loom_ws_parse(ngx_http_loom_ws_parser_t *p, u_char **pos,
    u_char *last, ngx_http_loom_ws_chunk_t *chunk);

/* the parser is between frames */
#define ngx_http_loom_ws_parser_idle(p)  ((p)->state == 0)

/* writes an unmasked, final frame header; returns the end of it */
u_char *ngx_http_loom_ws_header(u_char *p, ngx_uint_t opcode, uint64_t len);

size_t ngx_http_loom_ws_header_size(uint64_t len);

/* the payload of a frame that ngx_http_loom_ws_header() began */
void ngx_http_loom_ws_payload(u_char *frame, size_t len, ngx_str_t *payload);

/* a close code a peer may send (RFC 6455, section 7.4) */
ngx_uint_t ngx_http_loom_ws_close_code_valid(ngx_uint_t code);


#endif /* _NGX_HTTP_LOOM_WS_H_INCLUDED_ */
