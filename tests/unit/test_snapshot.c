/* SOURCES: ngx_http_loom_snapshot.c */

/*
 * A topic's shared snapshot reads on their own: one read in flight, the
 * subscribes that come meanwhile wait for the next one (never for the one
 * already sent), one reply answers every wait of its read in the order
 * they came, a wait that joins while the replies are handed out goes to
 * the next read, a read that cannot be sent, and the idle call once
 * nothing is left.  The store is a fake that records the reads.
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
#include "ngx_http_loom_snapshot.h"
#include "ngx_http_loom_scripts.h"


/* what snapshot.c links against, here without nginx */

static ngx_log_t                    test_log;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}


/* the fake store: the reads sent, in order */

#define TEST_MAX  16

static ngx_http_loom_store_call_t  *reads[TEST_MAX];
static ngx_uint_t                   nreads, store_down;


ngx_int_t
ngx_http_loom_store_script(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen, const char **reason)
{
    assert_int_equal(script, NGX_HTTP_LOOM_SCRIPT_SNAPSHOT);
    assert_int_equal(nkeys, 1);
    assert_int_equal(argc, 2);
    assert_int_equal(argvlen[0], 5);
    assert_memory_equal(argv[0], "{t:x}", 5);

    /* with the registration and storage, for new subscriptions */
    assert_int_equal(argvlen[1], 1);
    assert_memory_equal(argv[1], "1", 1);

    if (store_down) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    assert_true(nreads < TEST_MAX);
    reads[nreads++] = call;

    return NGX_OK;
}


/* a subscribe waiting: what its reply handler was given */

typedef struct {
    ngx_http_loom_store_call_t      call;       /* first */
    ngx_http_loom_snapshot_wait_t   wait;
    ngx_uint_t                      id;
    ngx_uint_t                      answered;   /* order + 1 */
    redisReply                     *reply;
    ngx_http_loom_snapshot_t       *rejoin;     /* joins again when answered */
} test_sub_t;


static test_sub_t                   subs[TEST_MAX];
static ngx_uint_t                   nanswered, nidle;
static ngx_http_loom_snapshot_t     sn;
static redisReply                   reply1, reply2;


static void
test_answered(ngx_http_loom_store_call_t *call, redisReply *reply)
{
    const char  *reason;
    test_sub_t  *s;

    s = (test_sub_t *) call;

    assert_false(s->wait.linked);
    assert_int_equal(s->answered, 0);

    s->answered = ++nanswered;
    s->reply = reply;

    if (s->rejoin) {
        /* e.g. a deferred subscribe of the same connection */
        s->rejoin = NULL;
        s->answered = 0;
        nanswered--;
        assert_int_equal(ngx_http_loom_snapshot_join(&sn, &s->wait, &reason),
                         NGX_OK);
    }
}


static void
test_idle(ngx_http_loom_snapshot_t *s)
{
    assert_ptr_equal(s, &sn);
    assert_false(ngx_http_loom_snapshot_busy(s));
    nidle++;
}


static int
setup(void **state)
{
    ngx_uint_t  i;
    ngx_str_t   key = ngx_string("{t:x}");

    memset(subs, 0, sizeof(subs));

    for (i = 0; i < TEST_MAX; i++) {
        subs[i].call.handler = test_answered;
        subs[i].wait.call = &subs[i].call;
        subs[i].id = i;
    }

    nreads = 0;
    store_down = 0;
    nanswered = 0;
    nidle = 0;

    ngx_http_loom_snapshot_init(&sn, NULL, &key, &test_log);
    sn.idle = test_idle;

    return 0;
}


static ngx_int_t
join(ngx_uint_t i)
{
    const char  *reason;

    return ngx_http_loom_snapshot_join(&sn, &subs[i].wait, &reason);
}


static void
reply(ngx_uint_t n, redisReply *r)
{
    reads[n]->handler(reads[n], r);
}


static void
test_one_in_flight_the_rest_share_the_next(void **state)
{
    ngx_uint_t  i;

    assert_int_equal(join(0), NGX_OK);
    assert_int_equal(nreads, 1);
    assert_true(ngx_http_loom_snapshot_busy(&sn));

    /* they came after the read was sent: they wait for the next one */

    for (i = 1; i < 6; i++) {
        assert_int_equal(join(i), NGX_OK);
    }

    assert_int_equal(nreads, 1);

    reply(0, &reply1);

    /* only the first had the first read; the next one is on its way */

    assert_int_equal(subs[0].answered, 1);
    assert_ptr_equal(subs[0].reply, &reply1);

    for (i = 1; i < 6; i++) {
        assert_int_equal(subs[i].answered, 0);
    }

    assert_int_equal(nreads, 2);
    assert_int_equal(nidle, 0);

    reply(1, &reply2);

    /* one reply answered the five, in the order they came */

    for (i = 1; i < 6; i++) {
        assert_int_equal(subs[i].answered, i + 1);
        assert_ptr_equal(subs[i].reply, &reply2);
    }

    assert_int_equal(nreads, 2);
    assert_false(ngx_http_loom_snapshot_busy(&sn));
    assert_int_equal(nidle, 1);
}


static void
test_a_join_while_answering_takes_the_next(void **state)
{
    assert_int_equal(join(0), NGX_OK);
    assert_int_equal(join(1), NGX_OK);
    subs[0].rejoin = &sn;

    reply(0, &reply1);

    /* 1's read went out before the replies, 0 joined after it: later */

    assert_int_equal(subs[0].answered, 0);
    assert_true(subs[0].wait.linked);
    assert_int_equal(nreads, 2);
    assert_int_equal(nidle, 0);

    reply(1, &reply2);

    assert_int_equal(subs[1].answered, 1);
    assert_int_equal(subs[0].answered, 0);
    assert_int_equal(nreads, 3);

    reply(2, &reply1);

    assert_int_equal(subs[0].answered, 2);
    assert_ptr_equal(subs[0].reply, &reply1);
    assert_int_equal(nidle, 1);
}


static void
test_a_read_not_sent(void **state)
{
    /* the first: it is told at once, nothing waits */

    store_down = 1;
    assert_int_equal(join(0), NGX_ERROR);
    assert_false(subs[0].wait.linked);
    assert_false(ngx_http_loom_snapshot_busy(&sn));

    /* the next read: its waits get a NULL reply, as for a lost link */

    store_down = 0;
    assert_int_equal(join(1), NGX_OK);
    assert_int_equal(join(2), NGX_OK);
    assert_int_equal(join(3), NGX_OK);

    store_down = 1;
    reply(0, &reply1);

    assert_int_equal(subs[1].answered, 1);
    assert_ptr_equal(subs[1].reply, &reply1);
    assert_int_equal(subs[2].answered, 2);
    assert_null(subs[2].reply);
    assert_int_equal(subs[3].answered, 3);
    assert_null(subs[3].reply);
    assert_int_equal(nreads, 1);
    assert_int_equal(nidle, 1);
}


static void
test_a_lost_link(void **state)
{
    assert_int_equal(join(0), NGX_OK);
    assert_int_equal(join(1), NGX_OK);

    reply(0, NULL);

    assert_null(subs[0].reply);
    assert_int_equal(subs[0].answered, 1);
    assert_int_equal(nreads, 2);

    reply(1, &reply2);

    assert_int_equal(subs[1].answered, 2);
    assert_int_equal(nidle, 1);
}


static void
test_the_topic_went(void **state)
{
    assert_int_equal(join(0), NGX_OK);
    assert_int_equal(join(1), NGX_OK);

    /* the worker exits: the read in flight still frees itself */

    ngx_http_loom_snapshot_free(&sn);

    assert_false(ngx_http_loom_snapshot_busy(&sn));
    assert_false(subs[1].wait.linked);

    reply(0, &reply1);

    assert_int_equal(subs[0].answered, 1);
    assert_int_equal(subs[1].answered, 0);
    assert_int_equal(nreads, 1);
    assert_int_equal(nidle, 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_in_flight_the_rest_share_the_next,
                               setup),
        cmocka_unit_test_setup(test_a_join_while_answering_takes_the_next,
                               setup),
        cmocka_unit_test_setup(test_a_read_not_sent, setup),
        cmocka_unit_test_setup(test_a_lost_link, setup),
        cmocka_unit_test_setup(test_the_topic_went, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
