/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for the credential readers: the input is given to
 * each as a header value or query string.  Whatever is found lies
 * within the input (or the decode buffer), is not empty, and a
 * subprotocol credential holds token characters only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_cred.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *buf;
    size_t      i;
    ngx_int_t   rc;
    ngx_str_t   in, cred;

    in.data = (u_char *) data;
    in.len = size;

    rc = ngx_http_loom_cred_authorization(&in, &cred);

    if (rc == NGX_OK
        && (cred.len == 0 || cred.data < in.data
            || cred.data + cred.len > in.data + in.len))
    {
        abort();
    }

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }

    rc = ngx_http_loom_cred_query(&in, buf, &cred);

    if (rc == NGX_OK
        && (cred.len == 0 || cred.data != buf || cred.len > size
            || memchr(cred.data, '\0', cred.len) != NULL))
    {
        abort();
    }

    free(buf);

    rc = ngx_http_loom_cred_subprotocol(&in, &cred);

    if (rc == NGX_OK) {
        if (cred.len == 0 || cred.data < in.data
            || cred.data + cred.len > in.data + in.len)
        {
            abort();
        }

        for (i = 0; i < cred.len; i++) {
            if (cred.data[i] <= ' ' || cred.data[i] >= 0x7f
                || strchr("\"(),/:;<=>?@[\\]{}", cred.data[i]) != NULL)
            {
                abort();
            }
        }
    }

    return 0;
}
