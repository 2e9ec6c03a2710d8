/*
 * Copyright (C) Data Loom
 */


/*
 * The WebSocket codec of the client side (RFC 6455): the upgrade
 * response and its Sec-WebSocket-Accept check, masked frames into a
 * connection's output buffer, and the server's frames split out of what
 * was read.  Frame headers and masking, which the publisher's in-place
 * frames share, are inline in loomgen.h.
 */

#include "loomgen.h"

#include <stdlib.h>
#include <strings.h>


int
lg_send_frame(lg_loop_t *lp, lg_conn_t *c, int op, const u_char *data,
    size_t len)
{
    u_char  *p, key[4];

    p = lg_wspace(c, lg_frame_header_len(len) + len);
    if (p == NULL) {
        return -1;
    }

    p = lg_frame_header(lp, p, op, len, key);
    memcpy(p, data, len);
    lg_mask(p, len, key);

    c->wlen = (uint32_t) (p + len - c->wbuf);
    lg_dirty(lp, c);

    return 0;
}


int
lg_send_text(lg_loop_t *lp, lg_conn_t *c, const char *text, size_t len)
{
    return lg_send_frame(lp, c, LG_OP_TEXT, (const u_char *) text, len);
}


void
lg_send_close(lg_loop_t *lp, lg_conn_t *c, unsigned code)
{
    u_char  p[2];

    if (c->close_sent) {
        return;
    }

    c->close_sent = 1;

    p[0] = (u_char) (code >> 8);
    p[1] = (u_char) code;

    (void) lg_send_frame(lp, c, LG_OP_CLOSE, p, code ? 2 : 0);
}


/*
 * Splits the bytes read into frames (server frames are not masked) and
 * returns how many were used; a partial frame stays for the next read.
 */

size_t
lg_on_frames(lg_loop_t *lp, lg_conn_t *c, const u_char *b, size_t n)
{
    int            op, fin;
    size_t         hl, pos, need;
    uint64_t       len;
    const u_char  *p;
    u_char        *f;

    pos = 0;

    while (c->fd >= 0 && n - pos >= 2) {
        p = b + pos;
        fin = p[0] & 0x80;
        op = p[0] & 0x0f;

        if ((p[0] & 0x70) || (p[1] & 0x80)) {
            lg_conn_fail(lp, c, "server sent reserved bits or a mask");
            return n;
        }

        len = p[1] & 0x7f;
        hl = 2;

        if (len == 126) {
            if (n - pos < 4) {
                break;
            }

            len = (uint64_t) p[2] << 8 | p[3];
            hl = 4;

        } else if (len == 127) {
            if (n - pos < 10) {
                break;
            }

            len = 0;

            for (hl = 2; hl < 10; hl++) {
                len = len << 8 | p[hl];
            }
        }

        if (len > LG_MAX_MESSAGE) {
            lg_conn_fail(lp, c, "server sent a frame too big for us");
            return n;
        }

        if (n - pos - hl < len) {
            break;
        }

        pos += hl + (size_t) len;
        p += hl;

        if (op >= LG_OP_CLOSE) {
            if (!fin || len > 125) {
                lg_conn_fail(lp, c, "server sent an invalid control frame");
                return n;
            }

            lg_on_control(lp, c, op, p, (size_t) len);
            continue;
        }

        if (op == LG_OP_CONT ? c->frag_op == 0 : c->frag_op != 0) {
            lg_conn_fail(lp, c, "server sent a bad fragment sequence");
            return n;
        }

        if (fin && op != LG_OP_CONT) {
            lg_on_message(lp, c, p, (size_t) len);
            continue;
        }

        /* fragmented messages are rare: collected in their own buffer */

        need = c->flen + (size_t) len;

        if (need > LG_MAX_MESSAGE) {
            lg_conn_fail(lp, c, "server sent a message too big for us");
            return n;
        }

        if (need > c->fcap) {
            f = realloc(c->frag, lg_max(need, 4096));
            if (f == NULL) {
                lg_conn_fail(lp, c, "out of memory");
                return n;
            }

            c->frag = f;
            c->fcap = (uint32_t) lg_max(need, 4096);
        }

        memcpy(c->frag + c->flen, p, (size_t) len);
        c->flen = (uint32_t) need;

        if (op != LG_OP_CONT) {
            c->frag_op = (uint8_t) op;
        }

        if (fin) {
            c->frag_op = 0;
            c->flen = 0;
            lg_on_message(lp, c, c->frag, need);
        }
    }

    return pos;
}


/* the HTTP response to the upgrade request */

size_t
lg_on_handshake(lg_loop_t *lp, lg_conn_t *c, const u_char *b, size_t n)
{
    char           accept[32], want[64];
    u_char         digest[20];
    size_t         hlen, klen, i;
    const u_char  *end, *p, *line, *eol;

    end = memmem(b, n, "\r\n\r\n", 4);

    if (end == NULL) {
        if (n > LG_MAX_HTTP) {
            lg_conn_fail(lp, c, "handshake response too long");
            return n;
        }

        return 0;
    }

    hlen = (size_t) (end - b) + 4;

    if (!lg_has(b, end, lg_str("HTTP/1.1 101"))) {
        eol = memmem(b, hlen, "\r\n", 2);
        lg_print_problem("handshake refused", b, (size_t) (eol - b));
        lg_conn_fail(lp, c, NULL);
        return n;
    }

    /* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)) */

    klen = strlen(c->key);
    memcpy(want, c->key, klen);
    memcpy(want + klen, LG_WS_GUID, sizeof(LG_WS_GUID) - 1);
    lg_sha1((u_char *) want, klen + sizeof(LG_WS_GUID) - 1, digest);
    lg_base64(digest, 20, accept);

    for (line = b; line < end; line = eol + 2) {
        eol = memmem(line, (size_t) (end + 2 - line), "\r\n", 2);

        if (eol - line < 21 || strncasecmp((const char *) line,
                                           "Sec-WebSocket-Accept:", 21) != 0)
        {
            continue;
        }

        p = line + 21;

        while (p < eol && (*p == ' ' || *p == '\t')) {
            p++;
        }

        for (i = (size_t) (eol - p); i && (p[i - 1] == ' '); i--) {
            /* void */
        }

        if (i == strlen(accept) && memcmp(p, accept, i) == 0) {
            break;
        }

        lg_conn_fail(lp, c, "wrong Sec-WebSocket-Accept");
        return n;
    }

    if (line >= end) {
        lg_conn_fail(lp, c, "no Sec-WebSocket-Accept");
        return n;
    }

    c->state = LG_C_OPEN;
    lp->open++;

    lg_on_open(lp, c);

    return hlen;
}
