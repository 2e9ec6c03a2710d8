/* SOURCES: ngx_http_loom_output.c ngx_http_loom_ws.c */

/*
 * A connection's output ring on its own: queueing, writes the socket
 * takes only in part, dropping with a frame partly written, the limit and
 * the owner's overflow handler, and the frames' reference counts.  The
 * connection is a fake whose send_chain() takes a set number of bytes.
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
#include <ngx_event.h>
#include "ngx_http_loom_output.h"
#include "ngx_http_loom_ws.h"


/* what output.c links against, here without nginx */

static ngx_log_t        test_log;
static ngx_cycle_t      test_cycle = { .log = &test_log };
volatile ngx_cycle_t   *ngx_cycle = &test_cycle;
ngx_queue_t             ngx_posted_events;
static ngx_uint_t       allocs, failing_alloc;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    if (failing_alloc) {
        return NULL;
    }

    allocs++;
    return malloc(size);
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


/* the fake connection */

typedef struct {
    ngx_connection_t    c;
    ngx_event_t         wev;
    size_t              budget;     /* bytes the socket takes, in all */
    ngx_uint_t          calls;
    ngx_uint_t          max_links;  /* the longest chain handed over */
    int                 fail;
    u_char              wire[1 << 16];
    size_t              wire_len;
} fake_t;


static ngx_chain_t *
fake_send_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    size_t       n;
    fake_t      *fk;
    ngx_buf_t   *b;
    ngx_uint_t   links;

    fk = (fake_t *) c;
    fk->calls++;

    if (fk->fail) {
        return NGX_CHAIN_ERROR;
    }

    links = 0;

    for (/* void */; in; in = in->next) {
        b = in->buf;
        links++;

        n = ngx_min((size_t) (b->last - b->pos), fk->budget);
        memcpy(fk->wire + fk->wire_len, b->pos, n);
        fk->wire_len += n;
        fk->budget -= n;
        b->pos += n;

        if (b->pos < b->last) {
            c->write->ready = 0;
            break;
        }
    }

    if (links > fk->max_links) {
        fk->max_links = links;
    }

    return in;
}


static void
fake_init(fake_t *fk, ngx_http_loom_out_t *o, size_t budget)
{
    memset(fk, 0, sizeof(fake_t));
    memset(o, 0, sizeof(ngx_http_loom_out_t));

    ngx_queue_init(&ngx_posted_events);

    fk->c.write = &fk->wev;
    fk->c.log = &test_log;
    fk->c.send_chain = fake_send_chain;
    fk->wev.data = &fk->c;
    fk->wev.log = &test_log;
    fk->wev.ready = 1;
    fk->budget = budget;

    o->connection = &fk->c;
    o->limit = (size_t) -1;
}


/* a text frame whose payload is n copies of ch */

static ngx_http_loom_frame_t *
frame(u_char ch, size_t n)
{
    u_char                 *p;
    ngx_http_loom_frame_t  *f;

    f = ngx_http_loom_frame_alloc(NGX_HTTP_LOOM_WS_TEXT, n, &p);
    assert_non_null(f);
    memset(p, ch, n);

    return f;
}


static ngx_uint_t  overflows;

static void
on_overflow(ngx_http_loom_out_t *o)
{
    overflows++;
    assert_int_equal((uintptr_t) o->data, 0x1234);
}


static void
test_frame_alloc(void **state)
{
    ngx_http_loom_frame_t  *f;

    f = frame('a', 3);
    assert_int_equal(f->refs, 1);
    assert_int_equal(f->len, 5);
    assert_int_equal(f->data[0], 0x81);
    assert_int_equal(f->data[1], 3);
    assert_memory_equal(f->data + 2, "aaa", 3);
    ngx_http_loom_frame_release(f);

    f = frame('b', 200);
    assert_int_equal(f->len, 4 + 200);
    assert_int_equal(f->data[1], 126);
    ngx_http_loom_frame_release(f);
}


static void
test_queue_and_flush(void **state)
{
    fake_t                  fk;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *a, *b;

    fake_init(&fk, &o, 1000);

    a = frame('a', 10);
    b = frame('b', 20);

    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_OK);
    assert_int_equal(ngx_http_loom_out_queue(&o, b), NGX_OK);

    /* the ring holds a reference of its own, the write is posted once */
    assert_int_equal(a->refs, 2);
    assert_int_equal(b->refs, 2);
    assert_int_equal(o.count, 2);
    assert_int_equal(o.bytes, a->len + b->len);
    assert_true(fk.wev.posted);
    assert_ptr_equal(ngx_queue_head(&ngx_posted_events), &fk.wev.queue);
    assert_ptr_equal(ngx_queue_last(&ngx_posted_events), &fk.wev.queue);
    assert_int_equal(fk.calls, 0);

    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_OK);

    /* both in one call, in order */
    assert_int_equal(fk.calls, 1);
    assert_int_equal(fk.wire_len, a->len + b->len);
    assert_memory_equal(fk.wire, a->data, a->len);
    assert_memory_equal(fk.wire + a->len, b->data, b->len);
    assert_int_equal(o.count, 0);
    assert_int_equal(o.bytes, 0);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);

    /* nothing queued: no write */
    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_OK);
    assert_int_equal(fk.calls, 1);

    ngx_http_loom_frame_release(a);
    ngx_http_loom_frame_release(b);
    ngx_http_loom_out_free(&o);
}


static void
test_partial_writes(void **state)
{
    u_char                  expect[1 << 12];
    size_t                  total, elen;
    fake_t                  fk;
    ngx_uint_t              i, rounds;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *f[5];

    fake_init(&fk, &o, 7);

    total = 0;
    elen = 0;

    for (i = 0; i < 5; i++) {
        f[i] = frame('a' + i, 10 + 30 * i);
        assert_int_equal(ngx_http_loom_out_queue(&o, f[i]), NGX_OK);
        memcpy(expect + elen, f[i]->data, f[i]->len);
        elen += f[i]->len;
        total += f[i]->len;
    }

    /* 7 bytes a round: the head frame is left partly written */

    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_AGAIN);
    assert_int_equal(fk.wire_len, 7);
    assert_int_equal(o.count, 5);
    assert_int_equal(o.sent, 7);
    assert_int_equal(o.bytes, total);
    assert_int_equal(f[0]->refs, 2);

    /* the socket is not ready: flush does not write */
    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_AGAIN);
    assert_int_equal(fk.calls, 1);

    for (rounds = 0; o.count && rounds < 1000; rounds++) {
        fk.budget = 7 + rounds % 13;
        fk.wev.ready = 1;
        (void) ngx_http_loom_out_flush(&o);
    }

    assert_int_equal(o.count, 0);
    assert_int_equal(o.bytes, 0);
    assert_int_equal(o.sent, 0);
    assert_int_equal(fk.wire_len, elen);
    assert_memory_equal(fk.wire, expect, elen);

    for (i = 0; i < 5; i++) {
        assert_int_equal(f[i]->refs, 1);
        ngx_http_loom_frame_release(f[i]);
    }

    ngx_http_loom_out_free(&o);
}


static void
test_drop_keeps_partial_frame(void **state)
{
    fake_t                  fk;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *a, *b, *c;

    fake_init(&fk, &o, 5);

    a = frame('a', 20);
    b = frame('b', 20);
    c = frame('c', 20);

    /* nothing written yet: everything goes */

    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_OK);
    assert_int_equal(ngx_http_loom_out_queue(&o, b), NGX_OK);
    ngx_http_loom_out_drop(&o);
    assert_int_equal(o.count, 0);
    assert_int_equal(o.bytes, 0);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);

    /* a partly written: it stays, the rest goes */

    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_OK);
    assert_int_equal(ngx_http_loom_out_queue(&o, b), NGX_OK);
    assert_int_equal(ngx_http_loom_out_queue(&o, c), NGX_OK);
    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_AGAIN);
    assert_int_equal(o.sent, 5);

    ngx_http_loom_out_drop(&o);

    assert_int_equal(o.count, 1);
    assert_int_equal(o.bytes, a->len);
    assert_int_equal(a->refs, 2);
    assert_int_equal(b->refs, 1);
    assert_int_equal(c->refs, 1);

    /* and is completed, not restarted */

    fk.budget = 1000;
    fk.wev.ready = 1;
    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_OK);
    assert_int_equal(fk.wire_len, a->len);
    assert_memory_equal(fk.wire, a->data, a->len);
    assert_int_equal(a->refs, 1);

    ngx_http_loom_frame_release(a);
    ngx_http_loom_frame_release(b);
    ngx_http_loom_frame_release(c);
    ngx_http_loom_out_free(&o);
}


static void
test_limit_and_overflow(void **state)
{
    fake_t                  fk;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *big, *a, *b;

    fake_init(&fk, &o, 0);

    o.limit = 50;
    o.overflow = on_overflow;
    o.data = (void *) 0x1234;
    overflows = 0;

    /* an empty ring takes one frame, whatever its size */

    big = frame('x', 100);
    assert_int_equal(ngx_http_loom_out_send(&o, big), NGX_OK);
    assert_int_equal(overflows, 0);

    /* past the limit: the owner is told, the frame is not queued */

    a = frame('a', 10);
    assert_int_equal(ngx_http_loom_out_send(&o, a), NGX_ERROR);
    assert_int_equal(overflows, 1);
    assert_int_equal(o.count, 1);
    assert_int_equal(a->refs, 1);

    /* control frames bypass the limit */

    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_OK);
    assert_int_equal(o.count, 2);
    assert_int_equal(overflows, 1);

    ngx_http_loom_out_free(&o);
    assert_int_equal(big->refs, 1);
    assert_int_equal(a->refs, 1);

    /* within the limit: no overflow */

    fake_init(&fk, &o, 0);
    o.limit = 50;
    o.overflow = on_overflow;
    o.data = (void *) 0x1234;

    b = frame('b', 20);
    assert_int_equal(ngx_http_loom_out_send(&o, a), NGX_OK);
    assert_int_equal(ngx_http_loom_out_send(&o, b), NGX_OK);
    assert_int_equal(o.bytes, a->len + b->len);
    assert_true(o.bytes <= o.limit);

    /* exactly at the limit is still within it */
    o.limit = o.bytes + a->len;
    assert_int_equal(ngx_http_loom_out_send(&o, a), NGX_OK);
    assert_int_equal(ngx_http_loom_out_send(&o, a), NGX_ERROR);
    assert_int_equal(overflows, 2);
    assert_int_equal(a->refs, 3);

    /* an owner that sets no handler gets NGX_ERROR only */
    o.overflow = NULL;
    assert_int_equal(ngx_http_loom_out_send(&o, b), NGX_ERROR);
    assert_int_equal(overflows, 2);

    ngx_http_loom_out_free(&o);
    assert_int_equal(a->refs, 1);
    assert_int_equal(b->refs, 1);

    ngx_http_loom_frame_release(big);
    ngx_http_loom_frame_release(a);
    ngx_http_loom_frame_release(b);
}


static void
test_closed(void **state)
{
    fake_t                  fk;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *a;

    fake_init(&fk, &o, 1000);

    a = frame('a', 10);
    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_OK);

    o.closed = 1;

    assert_int_equal(ngx_http_loom_out_send(&o, a), NGX_ERROR);
    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_ERROR);
    assert_int_equal(a->refs, 2);

    /* what was queued before still leaves */
    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_OK);
    assert_int_equal(fk.wire_len, a->len);
    assert_int_equal(a->refs, 1);

    ngx_http_loom_out_free(&o);

    /* a freed ring takes nothing */
    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_ERROR);
    assert_int_equal(a->refs, 1);

    ngx_http_loom_frame_release(a);
}


static void
test_growth_and_wrap(void **state)
{
    u_char                  expect[1 << 14];
    size_t                  elen, got;
    fake_t                  fk;
    ngx_uint_t              i, k;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *f[200];

    fake_init(&fk, &o, 0);
    elen = 0;
    got = 0;
    k = 0;

    /* queue and write in turns so that the ring wraps and grows */

    for (i = 0; i < 200; i++) {
        f[i] = frame('0' + i % 64, i % 17);
        assert_int_equal(ngx_http_loom_out_queue(&o, f[i]), NGX_OK);
        memcpy(expect + elen, f[i]->data, f[i]->len);
        elen += f[i]->len;

        assert_true(o.size >= o.count);
        assert_int_equal(o.size & (o.size - 1), 0);

        if (i % 3 == 2) {
            fk.budget = 9;
            fk.wev.ready = 1;
            (void) ngx_http_loom_out_flush(&o);
            got = fk.wire_len;
            assert_true(got <= elen);
        }

        k++;
    }

    assert_int_equal(k, 200);

    /* the rest in one go: more than NGX_HTTP_LOOM_IOVS frames */

    assert_true(o.count > NGX_HTTP_LOOM_IOVS);
    fk.budget = sizeof(fk.wire);
    fk.wev.ready = 1;
    fk.calls = 0;

    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_OK);
    assert_true(fk.calls >= 2);
    assert_true(fk.max_links <= NGX_HTTP_LOOM_IOVS);
    assert_int_equal(fk.wire_len, elen);
    assert_memory_equal(fk.wire, expect, elen);

    for (i = 0; i < 200; i++) {
        assert_int_equal(f[i]->refs, 1);
        ngx_http_loom_frame_release(f[i]);
    }

    ngx_http_loom_out_free(&o);
}


static void
test_shared_frame(void **state)
{
    fake_t                  fk1, fk2;
    ngx_http_loom_out_t     o1, o2;
    ngx_http_loom_frame_t  *f;

    fake_init(&fk1, &o1, 1000);
    fake_init(&fk2, &o2, 3);

    /* one frame, two connections: each ring holds a reference */

    f = frame('s', 30);
    assert_int_equal(ngx_http_loom_out_send(&o1, f), NGX_OK);
    assert_int_equal(ngx_http_loom_out_send(&o2, f), NGX_OK);
    ngx_http_loom_frame_release(f);
    assert_int_equal(f->refs, 2);

    assert_int_equal(ngx_http_loom_out_flush(&o1), NGX_OK);
    assert_int_equal(f->refs, 1);

    assert_int_equal(ngx_http_loom_out_flush(&o2), NGX_AGAIN);
    assert_int_equal(f->refs, 1);
    assert_memory_equal(fk2.wire, fk1.wire, 3);

    /* the last one frees it: freeing a ring with a partial frame */
    ngx_http_loom_out_free(&o2);
    assert_int_equal(o2.count, 0);
    assert_null(o2.ring);

    ngx_http_loom_out_free(&o1);
}


static void
test_errors(void **state)
{
    fake_t                  fk;
    ngx_http_loom_out_t     o;
    ngx_http_loom_frame_t  *a;

    fake_init(&fk, &o, 1000);

    a = frame('a', 10);
    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_OK);

    fk.fail = 1;
    assert_int_equal(ngx_http_loom_out_flush(&o), NGX_ERROR);
    assert_true(fk.c.error);
    assert_int_equal(o.count, 1);

    ngx_http_loom_out_free(&o);
    assert_int_equal(a->refs, 1);

    /* no memory for the ring: not queued, no reference taken */

    fake_init(&fk, &o, 1000);
    failing_alloc = 1;
    assert_int_equal(ngx_http_loom_out_queue(&o, a), NGX_ERROR);
    failing_alloc = 0;
    assert_int_equal(a->refs, 1);
    assert_int_equal(o.count, 0);
    assert_false(fk.wev.posted);

    ngx_http_loom_frame_release(a);
    ngx_http_loom_out_free(&o);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_alloc),
        cmocka_unit_test(test_queue_and_flush),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_drop_keeps_partial_frame),
        cmocka_unit_test(test_limit_and_overflow),
        cmocka_unit_test(test_closed),
        cmocka_unit_test(test_growth_and_wrap),
        cmocka_unit_test(test_shared_frame),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
