/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for the frame parser: the input is a byte stream from a
 * client, fed to the parser in pieces whose sizes come from the input's
 * first byte.  Every chunk must lie inside the buffer, messages must stay
 * within the size limit, and a failure must say why.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_ws.h"


#define FUZZ_MAX_MESSAGE  4096


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *buf, *pos, *last, *end;
    size_t                      step, message;
    ngx_int_t                   rc;
    ngx_http_loom_ws_chunk_t    ch;
    ngx_http_loom_ws_parser_t   p;

    if (size < 1) {
        return 0;
    }

    step = (data[0] % 64) + 1;
    data++;
    size--;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, data, size);
    end = buf + size;

    ngx_http_loom_ws_parser_init(&p, FUZZ_MAX_MESSAGE);
    message = 0;

    for (pos = buf; pos < end; /* void */) {
        last = (size_t) (end - pos) > step ? pos + step : end;

        for ( ;; ) {
            rc = ngx_http_loom_ws_parse(&p, &pos, last, &ch);

            if (rc == NGX_AGAIN) {
                if (pos != last) {
                    abort();
                }
                break;
            }

            if (rc == NGX_ERROR) {
                if (p.error == NULL
                    || (p.close_code != 1002 && p.close_code != 1009))
                {
                    abort();
                }

                free(buf);
                return 0;
            }

            if (ch.len && (ch.data < buf || ch.data + ch.len > end)) {
                abort();
            }

            if (ch.opcode >= NGX_HTTP_LOOM_WS_CLOSE) {
                if (ch.len > NGX_HTTP_LOOM_WS_MAX_CONTROL) {
                    abort();
                }
                continue;
            }

            message += ch.len;

            if (message > FUZZ_MAX_MESSAGE) {
                abort();
            }

            if (ch.last && ch.fin) {
                if (ch.message != NGX_HTTP_LOOM_WS_TEXT
                    && ch.message != NGX_HTTP_LOOM_WS_BINARY)
                {
                    abort();
                }

                message = 0;
            }
        }
    }

    free(buf);

    return 0;
}
