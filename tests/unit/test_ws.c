/* SOURCES: ngx_http_loom_ws.c */

/*
 * The RFC 6455 frame parser and header encoder: every frame shape, every
 * violation and its close code, and any split of the input.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_ws.h"


typedef struct {
    u_char      data[1 << 17];
    size_t      len;
} buf_t;


static void
frame(buf_t *b, u_char b0, const void *payload, size_t n, int ext)
{
    u_char        mask[4] = { 0x12, 0x34, 0x56, 0x78 };
    size_t        i;
    const u_char *p = payload;

    b->data[b->len++] = b0;

    if (ext == 0 && n < 126) {
        b->data[b->len++] = 0x80 | (u_char) n;

    } else if (ext == 2 || (ext == 0 && n <= 0xffff)) {
        b->data[b->len++] = 0x80 | 126;
        b->data[b->len++] = (u_char) (n >> 8);
        b->data[b->len++] = (u_char) n;

    } else {
        b->data[b->len++] = 0x80 | 127;
        for (i = 8; i > 0; i--) {
            b->data[b->len++] = (u_char) ((uint64_t) n >> ((i - 1) * 8));
        }
    }

    memcpy(b->data + b->len, mask, 4);
    b->len += 4;

    for (i = 0; i < n; i++) {
        b->data[b->len++] = p[i] ^ mask[i % 4];
    }
}


/* feeds the buffer in pieces of step bytes; collects whole messages */

typedef struct {
    u_char      messages[8][1 << 17];
    size_t      lens[8];
    ngx_uint_t  opcodes[8];
    ngx_uint_t  n;
    u_char      current[1 << 17];
    size_t      current_len;
    ngx_uint_t  controls;
    ngx_int_t   rc;
    ngx_uint_t  close_code;
} result_t;


static result_t  res;


static void
run(buf_t *b, size_t step, uint64_t max)
{
    u_char                     *pos, *last, *chunk_end;
    size_t                      off;
    ngx_int_t                   rc;
    ngx_http_loom_ws_chunk_t    ch;
    ngx_http_loom_ws_parser_t   p;

    memset(&res, 0, sizeof(res));
    ngx_http_loom_ws_parser_init(&p, max);

    for (off = 0; off < b->len; off += step) {
        pos = b->data + off;
        chunk_end = b->data + ((off + step < b->len) ? off + step : b->len);
        last = chunk_end;

        for ( ;; ) {
            rc = ngx_http_loom_ws_parse(&p, &pos, last, &ch);

            if (rc == NGX_AGAIN) {
                assert_ptr_equal(pos, last);
                break;
            }

            if (rc == NGX_ERROR) {
                res.rc = NGX_ERROR;
                res.close_code = p.close_code;
                assert_non_null(p.error);
                return;
            }

            if (ch.opcode >= NGX_HTTP_LOOM_WS_CLOSE) {
                if (ch.last) {
                    res.controls++;
                }
                continue;
            }

            memcpy(res.current + res.current_len, ch.data, ch.len);
            res.current_len += ch.len;

            if (ch.last && ch.fin) {
                memcpy(res.messages[res.n], res.current, res.current_len);
                res.lens[res.n] = res.current_len;
                res.opcodes[res.n] = ch.message;
                res.n++;
                res.current_len = 0;
            }
        }
    }

    res.rc = ngx_http_loom_ws_parser_idle(&p) ? NGX_OK : NGX_AGAIN;
}


static void
test_single_frames(void **state)
{
    static u_char  big[100000];
    buf_t          b;
    size_t         sizes[] = { 0, 1, 125, 126, 65535, 65536, 100000 };
    size_t         i, step;

    memset(big, 'a', sizeof(big));

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (step = 1; step <= 4097; step += 1024) {
            b.len = 0;
            frame(&b, 0x81, big, sizes[i], 0);
            run(&b, sizes[i] > 1000 && step == 1 ? 7 : step, 0);

            assert_int_equal(res.rc, NGX_OK);
            assert_int_equal(res.n, 1);
            assert_int_equal(res.lens[0], sizes[i]);
            assert_int_equal(res.opcodes[0], NGX_HTTP_LOOM_WS_TEXT);
            assert_memory_equal(res.messages[0], big, sizes[i]);
        }
    }
}


static void
test_fragments_and_controls(void **state)
{
    buf_t   b;
    size_t  step;

    for (step = 1; step < 40; step++) {
        b.len = 0;
        frame(&b, 0x02, "hello ", 6, 0);         /* binary, not final */
        frame(&b, 0x89, "ping", 4, 0);           /* ping in between */
        frame(&b, 0x00, "big ", 4, 0);
        frame(&b, 0x8a, "", 0, 0);               /* pong */
        frame(&b, 0x00, "", 0, 0);               /* empty fragment */
        frame(&b, 0x80, "world", 5, 0);          /* final continuation */
        frame(&b, 0x81, "second", 6, 0);

        run(&b, step, 0);

        assert_int_equal(res.rc, NGX_OK);
        assert_int_equal(res.n, 2);
        assert_int_equal(res.controls, 2);
        assert_int_equal(res.opcodes[0], NGX_HTTP_LOOM_WS_BINARY);
        assert_int_equal(res.lens[0], 15);
        assert_memory_equal(res.messages[0], "hello big world", 15);
        assert_int_equal(res.opcodes[1], NGX_HTTP_LOOM_WS_TEXT);
        assert_memory_equal(res.messages[1], "second", 6);
    }
}


static void
expect_error(buf_t *b, ngx_uint_t code)
{
    size_t  step;

    for (step = 1; step <= b->len; step++) {
        run(b, step, 1000);
        assert_int_equal(res.rc, NGX_ERROR);
        assert_int_equal(res.close_code, code);
    }
}


static void
test_violations(void **state)
{
    buf_t   b;
    u_char  payload[200];

    memset(payload, 'x', sizeof(payload));

    /* unmasked */
    b.len = 0;
    b.data[b.len++] = 0x81;
    b.data[b.len++] = 0x01;
    b.data[b.len++] = 'x';
    expect_error(&b, 1002);

    /* each reserved bit */
    b.len = 0;
    frame(&b, 0xc1, "x", 1, 0);
    expect_error(&b, 1002);
    b.len = 0;
    frame(&b, 0xa1, "x", 1, 0);
    expect_error(&b, 1002);
    b.len = 0;
    frame(&b, 0x91, "x", 1, 0);
    expect_error(&b, 1002);

    /* unknown opcodes */
    b.len = 0;
    frame(&b, 0x83, "x", 1, 0);
    expect_error(&b, 1002);
    b.len = 0;
    frame(&b, 0x8b, "x", 1, 0);
    expect_error(&b, 1002);

    /* control frames: long, fragmented */
    b.len = 0;
    frame(&b, 0x89, payload, 126, 0);
    expect_error(&b, 1002);
    b.len = 0;
    frame(&b, 0x09, "x", 1, 0);
    expect_error(&b, 1002);

    /* continuation without a start; new message inside a fragmented one */
    b.len = 0;
    frame(&b, 0x80, "x", 1, 0);
    expect_error(&b, 1002);
    b.len = 0;
    frame(&b, 0x01, "x", 1, 0);
    frame(&b, 0x81, "y", 1, 0);
    expect_error(&b, 1002);

    /* lengths not minimally encoded */
    b.len = 0;
    frame(&b, 0x81, payload, 5, 2);
    expect_error(&b, 1002);
    b.len = 0;
    frame(&b, 0x81, payload, 200, 8);
    expect_error(&b, 1002);

    /* top bit of a 64-bit length */
    b.len = 0;
    b.data[b.len++] = 0x81;
    b.data[b.len++] = 0xff;
    b.data[b.len++] = 0x80;
    memset(b.data + b.len, 0, 7);
    b.len += 7;
    memset(b.data + b.len, 0, 4);
    b.len += 4;
    expect_error(&b, 1002);
}


static void
test_size_limit(void **state)
{
    buf_t   b;
    u_char  payload[1200];
    size_t  step;

    memset(payload, 'x', sizeof(payload));

    /* exactly the limit is fine */
    b.len = 0;
    frame(&b, 0x81, payload, 1000, 0);
    run(&b, 100, 1000);
    assert_int_equal(res.rc, NGX_OK);
    assert_int_equal(res.n, 1);

    /* the header alone is enough to refuse: no payload is sent */
    b.len = 0;
    b.data[b.len++] = 0x81;
    b.data[b.len++] = 0xff;
    memset(b.data + b.len, 0, 8);
    b.data[b.len + 3] = 1;                       /* 2^32 bytes */
    b.len += 8;

    for (step = 1; step <= b.len; step++) {
        run(&b, step, 1000);
        assert_int_equal(res.rc, NGX_ERROR);
        assert_int_equal(res.close_code, 1009);
    }

    /* over the limit in total only */
    b.len = 0;
    frame(&b, 0x01, payload, 600, 0);
    frame(&b, 0x80, payload, 401, 0);
    run(&b, 64, 1000);
    assert_int_equal(res.rc, NGX_ERROR);
    assert_int_equal(res.close_code, 1009);

    /* control frames do not count toward it */
    b.len = 0;
    frame(&b, 0x01, payload, 990, 0);
    frame(&b, 0x89, payload, 125, 0);
    frame(&b, 0x80, payload, 10, 0);
    run(&b, 64, 1000);
    assert_int_equal(res.rc, NGX_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.lens[0], 1000);
}


static void
test_header_encoder(void **state)
{
    u_char    h[NGX_HTTP_LOOM_WS_MAX_HEADER], *end;
    uint64_t  lens[] = { 0, 125, 126, 65535, 65536, (uint64_t) 1 << 40 };
    size_t    i;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        end = ngx_http_loom_ws_header(h, NGX_HTTP_LOOM_WS_TEXT, lens[i]);
        assert_int_equal(end - h, ngx_http_loom_ws_header_size(lens[i]));
        assert_int_equal(h[0], 0x81);
        assert_int_equal(h[1] & 0x80, 0);
    }

    end = ngx_http_loom_ws_header(h, NGX_HTTP_LOOM_WS_CLOSE, 2);
    assert_int_equal(end - h, 2);
    assert_int_equal(h[0], 0x88);
    assert_int_equal(h[1], 2);

    end = ngx_http_loom_ws_header(h, NGX_HTTP_LOOM_WS_TEXT, 300);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 1);
    assert_int_equal(h[3], 44);

    end = ngx_http_loom_ws_header(h, NGX_HTTP_LOOM_WS_TEXT, 70000);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 0x01);
    assert_int_equal(h[8], 0x11);
    assert_int_equal(h[9], 0x70);
}


static void
test_close_codes(void **state)
{
    ngx_uint_t  ok[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                         1011, 1012, 1013, 1014, 3000, 4008, 4999 };
    ngx_uint_t  bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999,
                          5000, 65535 };
    size_t      i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(ngx_http_loom_ws_close_code_valid(ok[i]));
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(ngx_http_loom_ws_close_code_valid(bad[i]));
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_frames),
        cmocka_unit_test(test_fragments_and_controls),
        cmocka_unit_test(test_violations),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_header_encoder),
        cmocka_unit_test(test_close_codes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
