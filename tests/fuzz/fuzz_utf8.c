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
#include "utf8_reference.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);



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

    if ((st == NGX_HTTP_LOOM_UTF8_ACCEPT) != utf8_reference_valid(buf, size)) {
        abort();
    }

    free(buf);

    return 0;
}
