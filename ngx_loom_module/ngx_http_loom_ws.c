/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_ws.h"


enum {
    sw_start = 0,
    sw_length,
    sw_extended_length,
    sw_mask,
    sw_payload
};


static ngx_int_t ngx_http_loom_ws_fail(ngx_http_loom_ws_parser_t *p,
    ngx_uint_t code, const char *error);
static ngx_int_t ngx_http_loom_ws_check_length(ngx_http_loom_ws_parser_t *p);
static void ngx_http_loom_ws_unmask(ngx_http_loom_ws_parser_t *p, u_char *d,
    size_t len);


void
ngx_http_loom_ws_parser_init(ngx_http_loom_ws_parser_t *p,
    uint64_t max_message)
{
    ngx_memzero(p, sizeof(ngx_http_loom_ws_parser_t));

    p->state = sw_start;
    p->max_message = max_message;
}


ngx_int_t
ngx_http_loom_ws_parse(ngx_http_loom_ws_parser_t *p, u_char **pos,
    u_char *last, ngx_http_loom_ws_chunk_t *chunk)
{
    u_char      ch, *b;
    size_t      n;
    ngx_uint_t  opcode;

    b = *pos;

    while (b < last || p->state == sw_payload) {

        switch (p->state) {

        case sw_start:
            ch = *b++;

            if (ch & 0x70) {
                return ngx_http_loom_ws_fail(p,
                                             NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                             "reserved bits set");
            }

            opcode = ch & 0x0f;
            p->fin = (ch & 0x80) ? 1 : 0;
            p->opcode = opcode;

            switch (opcode) {

            case NGX_HTTP_LOOM_WS_CONT:
                if (p->message == 0) {
                    return ngx_http_loom_ws_fail(p,
                                        NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                        "continuation frame without a start");
                }

                break;

            case NGX_HTTP_LOOM_WS_TEXT:
            case NGX_HTTP_LOOM_WS_BINARY:
                if (p->message != 0) {
                    return ngx_http_loom_ws_fail(p,
                                    NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                    "data frame inside a fragmented message");
                }

                p->message = opcode;
                p->message_len = 0;
                break;

            case NGX_HTTP_LOOM_WS_CLOSE:
            case NGX_HTTP_LOOM_WS_PING:
            case NGX_HTTP_LOOM_WS_PONG:
                if (!p->fin) {
                    return ngx_http_loom_ws_fail(p,
                                            NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                            "fragmented control frame");
                }

                break;

            default:
                return ngx_http_loom_ws_fail(p,
                                             NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                             "unknown opcode");
            }

            p->state = sw_length;
            break;

        case sw_length:
            ch = *b++;

            if (!(ch & 0x80)) {
                return ngx_http_loom_ws_fail(p,
                                             NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                             "unmasked client frame");
            }

            p->len = ch & 0x7f;
            p->ext = 0;

            if (p->len >= 126) {
                /* 126: a 16-bit length follows, 127: a 64-bit one */
                p->ext = (p->len == 126) ? 2 : 8;
                p->need = p->ext;
                p->len = 0;
                p->state = sw_extended_length;
                break;
            }

            if (ngx_http_loom_ws_check_length(p) != NGX_OK) {
                return NGX_ERROR;
            }

            p->need = 4;
            p->state = sw_mask;
            break;

        case sw_extended_length:
            p->len = (p->len << 8) | *b++;

            if (--p->need) {
                break;
            }

            if (ngx_http_loom_ws_check_length(p) != NGX_OK) {
                return NGX_ERROR;
            }

            p->need = 4;
            p->state = sw_mask;
            break;

        case sw_mask:
            p->mask[4 - p->need] = *b++;

            if (--p->need) {
                break;
            }

            p->left = p->len;
            p->mask_pos = 0;
            p->first = 1;
            p->state = sw_payload;
            break;

        default: /* sw_payload */
            n = (size_t) ngx_min((uint64_t) (last - b), p->left);

            if (n == 0 && p->left) {
                *pos = b;
                return NGX_AGAIN;
            }

            ngx_http_loom_ws_unmask(p, b, n);

            chunk->data = b;
            chunk->len = n;
            chunk->opcode = p->opcode;
            chunk->message = (p->opcode < NGX_HTTP_LOOM_WS_CLOSE)
                             ? p->message : 0;
            chunk->first = p->first;
            chunk->fin = p->fin;

            b += n;
            p->left -= n;
            p->first = 0;

            if (p->left == 0) {
                chunk->last = 1;
                p->state = sw_start;

                if (p->fin && p->opcode < NGX_HTTP_LOOM_WS_CLOSE) {
                    p->message = 0;
                }

            } else {
                chunk->last = 0;
            }

            *pos = b;
            return NGX_OK;
        }
    }

    *pos = b;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_loom_ws_check_length(ngx_http_loom_ws_parser_t *p)
{
    if (p->ext == 8 && (p->len & 0x8000000000000000ULL)) {
        return ngx_http_loom_ws_fail(p, NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                     "frame length with the top bit set");
    }

    /* RFC 6455, section 5.2: "the minimal number of bytes MUST be used" */

    if ((p->ext == 2 && p->len < 126) || (p->ext == 8 && p->len <= 0xffff)) {
        return ngx_http_loom_ws_fail(p, NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                     "frame length not minimally encoded");
    }

    if (p->opcode >= NGX_HTTP_LOOM_WS_CLOSE) {

        if (p->len > NGX_HTTP_LOOM_WS_MAX_CONTROL) {
            return ngx_http_loom_ws_fail(p, NGX_HTTP_LOOM_WS_PROTOCOL_ERROR,
                                         "control frame too long");
        }

        return NGX_OK;
    }

    if (p->max_message
        && p->len > p->max_message - p->message_len)
    {
        return ngx_http_loom_ws_fail(p, NGX_HTTP_LOOM_WS_TOO_BIG,
                                     "message too big");
    }

    p->message_len += p->len;

    return NGX_OK;
}


static void
ngx_http_loom_ws_unmask(ngx_http_loom_ws_parser_t *p, u_char *d, size_t len)
{
    u_char    *last;
    uint64_t   m, w;

    last = d + len;

    /* align to the mask, then eight bytes at a time */

    while (d < last && (p->mask_pos & 3)) {
        *d++ ^= p->mask[p->mask_pos++ & 3];
    }

    if (last - d >= 8) {
        ngx_memcpy(&m, p->mask, 4);
        ngx_memcpy((u_char *) &m + 4, p->mask, 4);

        while (last - d >= 8) {
            ngx_memcpy(&w, d, 8);
            w ^= m;
            ngx_memcpy(d, &w, 8);
            d += 8;
        }
    }

    while (d < last) {
        *d++ ^= p->mask[p->mask_pos++ & 3];
    }

    p->mask_pos &= 3;
}


static ngx_int_t
ngx_http_loom_ws_fail(ngx_http_loom_ws_parser_t *p, ngx_uint_t code,
    const char *error)
{
    p->close_code = code;
    p->error = error;

    return NGX_ERROR;
}


u_char *
ngx_http_loom_ws_header(u_char *p, ngx_uint_t opcode, uint64_t len)
{
    ngx_uint_t  i;

    *p++ = (u_char) (0x80 | opcode);

    if (len < 126) {
        *p++ = (u_char) len;
        return p;
    }

    if (len <= 0xffff) {
        *p++ = 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;
        return p;
    }

    *p++ = 127;

    for (i = 8; i > 0; i--) {
        *p++ = (u_char) (len >> ((i - 1) * 8));
    }

    return p;
}


size_t
ngx_http_loom_ws_header_size(uint64_t len)
{
    if (len < 126) {
        return 2;
    }

    if (len <= 0xffff) {
        return 4;
    }

    return 10;
}


void
ngx_http_loom_ws_payload(u_char *frame, size_t len, ngx_str_t *payload)
{
    size_t  hlen;

    hlen = 2;

    if (len >= 2 && (frame[1] & 0x7f) == 126) {
        hlen = 4;

    } else if (len >= 2 && (frame[1] & 0x7f) == 127) {
        hlen = 10;
    }

    hlen = ngx_min(hlen, len);

    payload->data = frame + hlen;
    payload->len = len - hlen;
}


ngx_uint_t
ngx_http_loom_ws_close_code_valid(ngx_uint_t code)
{
    /*
     * 1004-1006 and 1015 are reserved and never sent; 1012-1014 are
     * registered since RFC 6455; 3000-4999 are for applications
     */

    if (code >= 1000 && code <= 1003) {
        return 1;
    }

    if (code >= 1007 && code <= 1014) {
        return 1;
    }

    return code >= 3000 && code <= 4999;
}
