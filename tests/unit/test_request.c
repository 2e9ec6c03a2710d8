/* SOURCES: ngx_http_loom_request.c */

/*
 * A connection's request queue on its own: answers in the order the
 * requests came, barriers and the messages kept behind them, parked
 * requests, deep deferral handled in a loop (no recursion whose depth
 * follows the number of deferred messages), and what a closed connection
 * leaves behind.  The out, the dispatch of a message and the topics are
 * fakes that record what they are asked.
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
#include "ngx_http_loom_request.h"


/* what request.c links against, here without nginx */

static ngx_log_t    test_log;
static ngx_uint_t   allocs, failing_alloc, cancels;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    if (failing_alloc) {
        return NULL;
    }

    allocs++;
    return malloc(size);
}


/* frames carry a label; the out records the labels in the order sent */

#define TEST_SENT  64

static char        *sent[TEST_SENT];
static ngx_uint_t   nsent;

/* or, for many answers: checks they are "f:1", "f:2"... and counts them */
static ngx_uint_t   counting, counted;


static ngx_http_loom_frame_t *
frame(const char *label)
{
    size_t                  len;
    ngx_http_loom_frame_t  *f;

    len = strlen(label);
    f = malloc(sizeof(ngx_http_loom_frame_t) + len);
    assert_non_null(f);
    f->refs = 1;
    f->len = len;
    memcpy(f->data, label, len + 1);

    return f;
}


ngx_int_t
ngx_http_loom_out_send(ngx_http_loom_out_t *o, ngx_http_loom_frame_t *f)
{
    char  expected[32];

    if (counting) {
        if (counted == 0) {
            snprintf(expected, sizeof(expected), "b:0");

        } else {
            snprintf(expected, sizeof(expected), "f:%u", (unsigned) counted);
        }

        assert_string_equal((char *) f->data, expected);
        counted++;

        return NGX_OK;
    }

    assert_true(nsent < TEST_SENT);
    sent[nsent++] = strdup((char *) f->data);

    return NGX_OK;
}


void
ngx_http_loom_frame_release(ngx_http_loom_frame_t *f)
{
    if (--f->refs == 0) {
        free(f);
    }
}


void
ngx_http_loom_topic_cancel(ngx_http_loom_waiter_t *wt)
{
    cancels++;
}


static void
sent_reset(void)
{
    ngx_uint_t  i;

    for (i = 0; i < nsent; i++) {
        free(sent[i]);
    }

    nsent = 0;
}


static void
assert_sent(const char **labels, ngx_uint_t n)
{
    ngx_uint_t  i;

    assert_int_equal(nsent, n);

    for (i = 0; i < n; i++) {
        assert_string_equal(sent[i], labels[i]);
    }

    sent_reset();
}


/* the queue under test, with the handlers its owner would set */

static ngx_http_loom_requests_t   rq;
static ngx_http_loom_out_t        out;
static ngx_uint_t                 resumes, nomems;


static void
test_resume(ngx_http_loom_requests_t *q)
{
    resumes++;
}


static void
test_nomem(ngx_http_loom_requests_t *q)
{
    nomems++;
}


/*
 * The dispatch handler: each message is "<label>", answered at once in
 * its place ("a:<label>"), or "r:<label>", a request left waiting for
 * Redis (kept in pending[]), or "b:<label>", such a request that also
 * raises a barrier.  It records how deep the stack is when it runs.
 */

#define TEST_PENDING  64

static ngx_http_loom_request_t   *pending[TEST_PENDING];
static ngx_uint_t                 npending, dispatches;
static uintptr_t                  stack_low, stack_high;


static ngx_http_loom_request_t *
request(ngx_queue_t *position)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_alloc(&rq, sizeof(ngx_http_loom_request_t),
                                    position);
    assert_non_null(r);

    return r;
}


static void
test_dispatch(ngx_http_loom_requests_t *q, u_char *data, size_t len,
    ngx_queue_t *position)
{
    char                      label[64];
    uintptr_t                 here;
    ngx_http_loom_request_t  *r;

    here = (uintptr_t) &label;

    if (dispatches++ == 0 || here < stack_low) {
        stack_low = here;
    }

    if (here > stack_high) {
        stack_high = here;
    }

    assert_true(len < sizeof(label));
    memcpy(label, data, len);
    label[len] = '\0';

    if (label[0] == 'a') {
        ngx_http_loom_requests_answer(q, position, frame(label));
        return;
    }

    r = request(position);

    if (label[0] == 'b') {
        ngx_http_loom_request_barrier(r);
    }

    if (label[0] == 'f') {
        /* a request whose send fails at once: answered inside dispatch */
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, frame(label));
        return;
    }

    assert_true(npending < TEST_PENDING);
    pending[npending++] = r;
    r->payload.data = (u_char *) strdup(label);
}


static void
answer(ngx_http_loom_request_t *r)
{
    char  *label;

    label = (char *) r->payload.data;
    r->payload.data = NULL;

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_finish(r, frame(label));
    free(label);
}


static void
message(const char *label)
{
    ngx_http_loom_requests_message(&rq, (u_char *) label, strlen(label));
}


static int
setup(void **state)
{
    memset(&out, 0, sizeof(out));
    ngx_http_loom_requests_init(&rq, &out, &test_log, NULL);
    rq.dispatch = test_dispatch;
    rq.resume = test_resume;
    rq.nomem = test_nomem;

    npending = 0;
    dispatches = 0;
    resumes = 0;
    nomems = 0;
    cancels = 0;
    failing_alloc = 0;
    sent_reset();

    return 0;
}


static int
teardown(void **state)
{
    ngx_uint_t  i;

    for (i = 0; i < npending; i++) {
        free(pending[i] ? (char *) pending[i]->payload.data : NULL);
    }

    ngx_http_loom_requests_close(&rq);
    sent_reset();

    return 0;
}


static void
test_answers_in_request_order(void **state)
{
    const char  *first[] = { "r:1", "r:2", "a:3" };

    message("r:1");
    message("r:2");
    message("a:3");

    /* nothing is sent before the first request is answered */
    answer(pending[1]);
    assert_int_equal(nsent, 0);
    assert_int_equal(rq.inflight, 3);

    answer(pending[0]);
    assert_sent(first, 3);
    assert_int_equal(rq.inflight, 0);
    assert_true(resumes > 0);

    npending = 0;
}


static void
test_answer_of_an_idle_queue_goes_at_once(void **state)
{
    const char  *one[] = { "a:1" };

    message("a:1");
    assert_sent(one, 1);
    assert_int_equal(rq.inflight, 0);
    assert_true(ngx_queue_empty(&rq.queue));
}


static void
test_barrier_defers_and_releases_in_order(void **state)
{
    const char  *all[] = { "b:1", "a:2", "r:3", "a:4" };

    message("b:1");
    message("a:2");
    message("r:3");
    message("a:4");

    /* kept as received: not dispatched, counted */
    assert_int_equal(dispatches, 1);
    assert_int_equal(rq.ndeferred, 3);
    assert_int_equal(rq.deferred, 9);
    assert_int_equal(rq.inflight, 4);

    answer(pending[0]);

    /* a:2 answered, r:3 waits for Redis, a:4 behind it */
    assert_int_equal(dispatches, 4);
    assert_int_equal(rq.ndeferred, 0);
    assert_int_equal(rq.deferred, 0);
    assert_int_equal(nsent, 2);
    assert_string_equal(sent[0], "b:1");
    assert_string_equal(sent[1], "a:2");

    answer(pending[1]);
    assert_int_equal(nsent, 4);
    assert_string_equal(sent[2], all[2]);
    assert_string_equal(sent[3], all[3]);
    sent_reset();

    npending = 0;
}


static void
test_barrier_raised_by_a_deferred_message(void **state)
{
    message("b:1");
    message("b:2");
    message("a:3");

    answer(pending[0]);

    /* b:2 went out and raised its own barrier: a:3 still waits */
    assert_int_equal(dispatches, 2);
    assert_int_equal(rq.ndeferred, 1);
    assert_int_equal(rq.barriers, 1);

    answer(pending[1]);
    assert_int_equal(dispatches, 3);
    assert_int_equal(nsent, 3);
    assert_string_equal(sent[2], "a:3");
    sent_reset();

    npending = 0;
}


static ngx_uint_t  runs;


static void
test_run(ngx_http_loom_request_t *r)
{
    runs++;
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_finish(r, frame("parked"));
}


static void
test_parked_request_runs_at_the_head(void **state)
{
    ngx_http_loom_request_t  *p;
    const char               *all[] = { "r:1", "parked", "a:2" };

    message("r:1");

    p = request(NULL);
    assert_int_equal(ngx_http_loom_request_park(p, test_run), NGX_OK);
    assert_int_equal(p->state, NGX_HTTP_LOOM_REQ_PARKED);
    assert_int_equal(rq.barriers, 1);

    /* what comes after a parked request waits for it */
    message("a:2");
    assert_int_equal(rq.ndeferred, 1);
    assert_int_equal(runs, 0);

    answer(pending[0]);
    assert_int_equal(runs, 1);
    assert_sent(all, 3);

    npending = 0;
}


static void
test_park_with_nothing_before(void **state)
{
    ngx_http_loom_request_t  *p;
    const char               *one[] = { "parked" };

    message("a:0");
    sent_reset();

    /* only answered requests before it: it may run now */
    p = request(NULL);
    assert_int_equal(ngx_http_loom_request_park(p, test_run), NGX_DECLINED);
    assert_int_equal(rq.barriers, 0);

    test_run(p);
    assert_sent(one, 1);
}


/*
 * 100,000 messages behind a barrier, each of which fails at once when it
 * is dispatched (as every request does when the link to Redis drops):
 * every one is answered, in order, and the dispatch handler always runs
 * at about the same depth of the stack.
 */

static void
test_deep_deferral_is_a_loop(void **state)
{
    char        label[32];
    ngx_uint_t  i, count;

    count = 100000;

    message("b:0");

    for (i = 1; i <= count; i++) {
        snprintf(label, sizeof(label), "f:%u", (unsigned) i);
        message(label);
    }

    assert_int_equal(rq.ndeferred, count);

    stack_low = stack_high = 0;
    dispatches = 0;
    counting = 1;
    counted = 0;

    answer(pending[0]);

    counting = 0;
    assert_int_equal(counted, count + 1);
    assert_int_equal(dispatches, count);
    assert_int_equal(rq.ndeferred, 0);
    assert_int_equal(rq.inflight, 0);
    assert_true(ngx_queue_empty(&rq.queue));
    assert_true(stack_high - stack_low < 1024);

    npending = 0;
}


static void
test_close_leaves_requests_waiting_for_redis(void **state)
{
    ngx_http_loom_request_t  *r, *w;
    ngx_uint_t                before;

    message("b:1");
    message("a:2");
    r = pending[0];

    w = request(NULL);
    w->state = NGX_HTTP_LOOM_REQ_WAITING;

    free((char *) r->payload.data);
    r->payload.data = NULL;
    npending = 0;

    ngx_http_loom_requests_close(&rq);

    assert_int_equal(cancels, 1);
    assert_int_equal(rq.inflight, 0);
    assert_int_equal(rq.barriers, 0);
    assert_int_equal(rq.ndeferred, 0);
    assert_int_equal(rq.deferred, 0);
    assert_true(ngx_queue_empty(&rq.queue));

    /* the request waiting for Redis lives until its reply, then goes */
    assert_null(r->requests);
    assert_null(r->session);

    r->reply = NULL;            /* must not be called */
    before = nsent;
    ngx_http_loom_request_reply(&r->call, NULL);
    assert_int_equal(nsent, before);
}


static void
test_finish_after_close_frees(void **state)
{
    message("r:1");
    ngx_http_loom_requests_close(&rq);

    /* a reply handler that answers after the client left */
    answer(pending[0]);
    assert_int_equal(nsent, 0);

    npending = 0;
}


static void
test_no_memory_for_a_deferred_message(void **state)
{
    message("b:1");

    failing_alloc = 1;
    message("a:2");
    failing_alloc = 0;

    assert_int_equal(nomems, 1);
    assert_int_equal(rq.ndeferred, 0);

    answer(pending[0]);
    npending = 0;
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_answers_in_request_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_answer_of_an_idle_queue_goes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_barrier_defers_and_releases_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_barrier_raised_by_a_deferred_message, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_parked_request_runs_at_the_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_with_nothing_before,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_deferral_is_a_loop,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_close_leaves_requests_waiting_for_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_after_close_frees,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_no_memory_for_a_deferred_message, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
