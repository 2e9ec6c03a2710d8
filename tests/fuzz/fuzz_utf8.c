/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for the UTF-8 validator: checking the input in two
 * pieces, split where the first byte says, must give the same answer as a
 * plain reference decoder on the whole.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_utf8.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_reference(const u_char *p, size_t n);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *buf;
    size_t       cut;
    ngx_uint_t   st;

    if (size < 1) {
        return 0;
    }

    cut = data[0];
    data++;
    size--;
    cut = size ? cut % (size + 1) : 0;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, data, size);

    st = ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, buf, cut);
    st = ngx_http_loom_utf8_check(st, buf + cut, size - cut);

    if ((st == NGX_HTTP_LOOM_UTF8_ACCEPT) != fuzz_reference(buf, size)) {
        abort();
    }

    free(buf);

    return 0;
}


static int
fuzz_reference(const u_char *p, size_t n)
{
    size_t    i, k, need;
    uint32_t  cp, min;

    for (i = 0; i < n; i += need + 1) {

        if (p[i] < 0x80) {
            need = 0;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            need = 1;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            need = 2;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            need = 3;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        for (k = 1; k <= need; k++) {
            if (i + k >= n || (p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}
