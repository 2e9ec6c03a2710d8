/*
 * Copyright (C) Data Loom
 */


/*
 * SHA-1 and base64, for the Sec-WebSocket-Accept of the opening
 * handshake only: the generator checks it, the reference broadcaster
 * computes it.  No dependency on anything else in bench/.
 */

#include "loomgen_sha1.h"

#include <stdint.h>
#include <string.h>


/* SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept only */

#define lg_rol(x, n)  (((x) << (n)) | ((x) >> (32 - (n))))

void
lg_sha1(const u_char *data, size_t len, u_char out[20])
{
    u_char    buf[128];
    size_t    n, off, i;
    uint32_t  h[5], w[80], a, b, c, d, e, f, k, t;
    uint64_t  bits;

    h[0] = 0x67452301;
    h[1] = 0xefcdab89;
    h[2] = 0x98badcfe;
    h[3] = 0x10325476;
    h[4] = 0xc3d2e1f0;

    /* the caller's messages are short: at most two blocks */

    n = ((len + 8) / 64 + 1) * 64;
    memset(buf, 0, n);
    memcpy(buf, data, len);
    buf[len] = 0x80;

    bits = (uint64_t) len * 8;

    for (i = 0; i < 8; i++) {
        buf[n - 1 - i] = (u_char) (bits >> (8 * i));
    }

    for (off = 0; off < n; off += 64) {

        for (i = 0; i < 16; i++) {
            w[i] = (uint32_t) buf[off + 4 * i] << 24
                   | (uint32_t) buf[off + 4 * i + 1] << 16
                   | (uint32_t) buf[off + 4 * i + 2] << 8
                   | (uint32_t) buf[off + 4 * i + 3];
        }

        for (i = 16; i < 80; i++) {
            t = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
            w[i] = lg_rol(t, 1);
        }

        a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];

        for (i = 0; i < 80; i++) {
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5a827999;

            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ed9eba1;

            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8f1bbcdc;

            } else {
                f = b ^ c ^ d;
                k = 0xca62c1d6;
            }

            t = lg_rol(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = lg_rol(b, 30);
            b = a;
            a = t;
        }

        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }

    for (i = 0; i < 20; i++) {
        out[i] = (u_char) (h[i / 4] >> (24 - 8 * (i % 4)));
    }
}


size_t
lg_base64(const u_char *src, size_t len, char *dst)
{
    size_t       i;
    uint32_t     v;
    char        *p;
    static char  abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                         "0123456789+/";

    p = dst;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 0x3f];
        *p++ = abc[(v >> 6) & 0x3f];
        *p++ = abc[v & 0x3f];
    }

    if (i < len) {
        v = (uint32_t) src[i] << 16;

        if (i + 1 < len) {
            v |= (uint32_t) src[i + 1] << 8;
        }

        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 0x3f];
        *p++ = (i + 1 < len) ? abc[(v >> 6) & 0x3f] : '=';
        *p++ = '=';
    }

    *p = '\0';

    return (size_t) (p - dst);
}
