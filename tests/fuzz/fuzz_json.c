/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for the envelope scanner and the string escaper:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I ... \
 *       tests/fuzz/fuzz_json.c ngx_loom_module/ngx_http_loom_json.c \
 *       ngx_loom_module/ngx_http_loom_json_text.c \
 *       ngx_loom_module/ngx_http_loom_utf8.c \
 *       -o build/fuzz_json
 *
 * The input is copied to a heap buffer of its exact size, so that any
 * read past the end is caught.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_utf8.h"


#define FUZZ_MAX_DEPTH  32


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_utf8_valid(const u_char *p, size_t len);
static void fuzz_check_value(ngx_http_loom_json_value_t *v, u_char *buf,
    size_t len);
static void fuzz_check_span(ngx_str_t *s, u_char *start, size_t len);
static void fuzz_check_escape(u_char *buf, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                         *buf, *scratch;
    ngx_int_t                       rc;
    ngx_str_t                       err;
    ngx_http_loom_json_envelope_t   env;
    u_char                          errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];

    /* arbitrary bytes for the escaper, which takes anything */

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, data, size);
    fuzz_check_escape(buf, size);

    /* the scanner is only given valid UTF-8, as its caller checks it */

    if (!fuzz_utf8_valid(buf, size)) {
        free(buf);
        return 0;
    }

    scratch = malloc(size ? size : 1);
    if (scratch == NULL) {
        abort();
    }

    memset(errbuf, 0xa5, sizeof(errbuf));
    err.data = errbuf;
    err.len = 0;

    rc = ngx_http_loom_json_scan_envelope(buf, size, FUZZ_MAX_DEPTH, scratch,
                                          &env, &err);

    if (rc == NGX_ERROR) {
        if (err.len == 0
            || err.len >= NGX_HTTP_LOOM_JSON_ERRLEN
            || err.data[err.len] != '\0'
            || strlen((char *) err.data) != err.len)
        {
            abort();
        }

    } else if (rc == NGX_OK) {

        fuzz_check_value(&env.id, buf, size);
        fuzz_check_value(&env.action, buf, size);
        fuzz_check_value(&env.topic, buf, size);
        fuzz_check_value(&env.data, buf, size);
        fuzz_check_value(&env.require_ack, buf, size);
        fuzz_check_value(&env.sender_id, buf, size);

        fuzz_check_span(&env.id_str, scratch, size);
        fuzz_check_span(&env.action_str, scratch, size);
        fuzz_check_span(&env.topic_str, scratch, size);
        fuzz_check_span(&env.sender_id_str, scratch, size);

        if (env.data_overflow.len) {
            /* the literal lies inside the data value */
            fuzz_check_span(&env.data_overflow, env.data.raw.data,
                            env.data.raw.len);
        }

        if (env.null_document
            && (env.id.type || env.action.type || env.topic.type
                || env.data.type || env.require_ack.type
                || env.sender_id.type))
        {
            abort();
        }

        /* decoded strings are valid UTF-8 too, and escape as such */

        if (!fuzz_utf8_valid(env.id_str.data, env.id_str.len)
            || !fuzz_utf8_valid(env.action_str.data, env.action_str.len)
            || !fuzz_utf8_valid(env.topic_str.data, env.topic_str.len)
            || !fuzz_utf8_valid(env.sender_id_str.data,
                                env.sender_id_str.len))
        {
            abort();
        }

        fuzz_check_escape(env.topic_str.data, env.topic_str.len);

    } else {
        abort();
    }

    free(scratch);
    free(buf);

    return 0;
}


static int
fuzz_utf8_valid(const u_char *p, size_t len)
{
    /* the validator has a target of its own, against a reference */

    return ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, (u_char *) p,
                                    len)
           == NGX_HTTP_LOOM_UTF8_ACCEPT;
}


static void
fuzz_check_value(ngx_http_loom_json_value_t *v, u_char *buf, size_t len)
{
    if (v->type > NGX_HTTP_LOOM_JSON_OBJECT) {
        abort();
    }

    if (v->type == NGX_HTTP_LOOM_JSON_NONE) {
        if (v->raw.len) {
            abort();
        }

        return;
    }

    if (v->raw.len == 0) {
        abort();
    }

    fuzz_check_span(&v->raw, buf, len);
}


static void
fuzz_check_span(ngx_str_t *s, u_char *start, size_t len)
{
    if (s->len == 0) {
        return;
    }

    if (s->data == NULL
        || s->data < start
        || s->len > len
        || (size_t) (s->data - start) > len - s->len)
    {
        abort();
    }
}


static void
fuzz_check_escape(u_char *buf, size_t len)
{
    u_char  *dst, *last, *p;
    size_t   n;

    n = ngx_http_loom_json_escape_len(buf, len);

    dst = malloc(n ? n : 1);
    if (dst == NULL) {
        abort();
    }

    last = ngx_http_loom_json_escape(dst, buf, len);

    if ((size_t) (last - dst) != n || n < len) {
        abort();
    }

    /* the output is valid UTF-8 without control bytes or HTML specials */

    for (p = dst; p < last; p++) {
        if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
            abort();
        }
    }

    if (!fuzz_utf8_valid(dst, n)) {
        abort();
    }

    free(dst);
}
