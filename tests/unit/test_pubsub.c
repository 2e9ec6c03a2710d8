/* SOURCES: ngx_http_loom_pubsub.c ngx_http_loom_answer.c */
/* SOURCES: ngx_http_loom_get.c ngx_http_loom_rev.c */
/* SOURCES: ngx_http_loom_request.c ngx_http_loom_schema.c */
/* SOURCES: ngx_http_loom_json.c ngx_http_loom_json_text.c */
/* SOURCES: ngx_http_loom_utf8.c */

/*
 * publish and get on one connection, with a fake store whose answers the
 * test writes, and a fake topic with a cached schema: a publish whose
 * cached tag turns out stale is sent again; when that second send fails
 * at once the request is answered and gone (nothing touches it after);
 * a get behind such a publish goes to Redis only after it; what comes
 * after a retried publish waits until the retry is answered; a refusal
 * only for the message before it in a group is no attempt of its own; a
 * group that could not be sent is answered as a refused send.  Freed memory
 * is filled with a pattern, so that a use after free fails at once.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_topic.h"
#include "ngx_http_loom_resume.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_schemas.h"


/* nginx, without nginx */

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


/* the only formats the sources use: %ui and %uz */

u_char *
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    char     f[64], *d;
    va_list  args;

    for (d = f; *fmt && d < f + sizeof(f) - 4; fmt++) {
        if (fmt[0] == '%' && fmt[1] == 'u' && (fmt[2] == 'i' || fmt[2] == 'z'))
        {
            memcpy(d, "%lu", 3);
            d += 3;
            fmt += 2;
            continue;
        }

        *d++ = *fmt;
    }

    *d = '\0';

    va_start(args, fmt);
    buf += vsprintf((char *) buf, f, args);
    va_end(args);

    return buf;
}


/* frames and the connection's out: answers are recorded */

#define TEST_ANSWERS  16

static char        *answers[TEST_ANSWERS];
static ngx_uint_t   nanswers;



/* no counters, no clock here */


uint64_t
ngx_http_loom_usec(void)
{
    return 0;
}


void
ngx_http_loom_shm_observe(ngx_http_loom_hist_t *h, ngx_msec_int_t usec)
{
}


void
ngx_http_loom_shm_count_answer(ngx_http_loom_stats_t *st, ngx_uint_t code)
{
}

ngx_http_loom_frame_t *
ngx_http_loom_frame_alloc(ngx_uint_t opcode, size_t len, u_char **payload)
{
    ngx_http_loom_frame_t  *f;

    f = malloc(sizeof(ngx_http_loom_frame_t) + len);
    assert_non_null(f);
    memset(f->data, 0, len + 1);
    f->refs = 1;
    f->len = len;
    *payload = f->data;

    return f;
}


void
ngx_http_loom_frame_release(ngx_http_loom_frame_t *f)
{
    if (--f->refs == 0) {
        free(f);
    }
}


ngx_int_t
ngx_http_loom_out_send(ngx_http_loom_out_t *o, ngx_http_loom_frame_t *f)
{
    assert_true(nanswers < TEST_ANSWERS);
    answers[nanswers++] = strdup((char *) f->data);

    return NGX_OK;
}


/* the store: each command is recorded; the test says which ones fail */

#define TEST_CALLS  16

static ngx_http_loom_store_call_t  *calls[TEST_CALLS];
static char                         commands[TEST_CALLS][16];
static ngx_uint_t                   ncalls, fail_from;
static ngx_str_t                    test_prefix = ngx_string("loom:");


static ngx_int_t
store_call(ngx_http_loom_store_call_t *call, const char *what,
    const char **reason)
{
    if (ncalls >= fail_from) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    assert_true(ncalls < TEST_CALLS);
    calls[ncalls] = call;
    snprintf(commands[ncalls], sizeof(commands[0]), "%s", what);
    ncalls++;

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_store_command(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    return store_call(call, argv[0], reason);
}


ngx_int_t
ngx_http_loom_store_script(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    return store_call(call, script == NGX_HTTP_LOOM_SCRIPT_APPEND
                            ? "PUBLISH" : "SCRIPT", reason);
}


/* a publish: one call of a group commit, answered with its own element */

ngx_int_t
ngx_http_loom_store_append(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int ncommon, int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    assert_int_equal(script, NGX_HTTP_LOOM_SCRIPT_APPEND);

    return store_call(call, "PUBLISH", reason);
}


ngx_str_t *
ngx_http_loom_store_prefix(ngx_http_loom_store_t *st)
{
    return &test_prefix;
}


/* one topic, "t", with a cached schema and tag */

static ngx_http_loom_topic_t  topic;
static u_char                 tag_buf[64];


ngx_http_loom_topic_t *
ngx_http_loom_topic_lookup(ngx_http_loom_worker_t *w, ngx_str_t *name)
{
    return (name->len == 1 && name->data[0] == 't') ? &topic : NULL;
}


ngx_http_loom_topic_t *
ngx_http_loom_topic_get(ngx_http_loom_worker_t *w, ngx_str_t *name)
{
    return ngx_http_loom_topic_lookup(w, name);
}


void
ngx_http_loom_topic_check(ngx_http_loom_topic_t *t)
{
}


ngx_int_t
ngx_http_loom_topic_set_schema(ngx_http_loom_topic_t *t, ngx_str_t *tag,
    json_t *schema, ngx_http_loom_jschema_t *js)
{
    if (t->schema) {
        json_decref(t->schema);
    }

    memcpy(tag_buf, tag->data, tag->len);
    t->tag.data = tag_buf;
    t->tag.len = tag->len;
    t->schema = json_incref(schema);

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_topic_match(ngx_http_loom_topic_t *t, json_t *data)
{
    return t->schema ? ngx_http_loom_schema_match(t->schema, data)
                     : NGX_DECLINED;
}


/*
 * What ngx_http_loom_schemas.c does with the schema a stale publish
 * brings back, for key-set schemas (JSON Schemas are the integration
 * tests'): cached, then the data checked against it
 */

ngx_int_t
ngx_http_loom_schemas_recheck(ngx_http_loom_request_t *r, ngx_str_t *tag,
    ngx_str_t *text, ngx_str_t *kind)
{
    json_t     *schema;
    ngx_str_t   msg = ngx_string("schema doesn't match topics current schema");

    assert_int_equal(kind->len, 0);

    schema = json_loadb((char *) text->data, text->len, 0, NULL);
    assert_non_null(schema);

    (void) ngx_http_loom_topic_set_schema(&topic, tag, schema, NULL);
    json_decref(schema);

    if (ngx_http_loom_topic_match(&topic, r->data) != NGX_OK) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, &msg, 1);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_http_loom_topic_drop_schema(ngx_http_loom_topic_t *t)
{
    if (t->schema) {
        json_decref(t->schema);
        t->schema = NULL;
    }
}


void
ngx_http_loom_topic_tag_registration(ngx_str_t *tag, ngx_str_t *reg)
{
    u_char  *colon;

    colon = memchr(tag->data, ':', tag->len);
    reg->data = tag->data;
    reg->len = colon ? (size_t) (colon - tag->data) : tag->len;
}


ngx_uint_t
ngx_http_loom_topic_hold(ngx_http_loom_topic_t *t,
    ngx_http_loom_subscriber_t *sr, ngx_http_loom_waiter_t *wt, uint64_t seq,
    ngx_str_t *registration)
{
    return 0;
}


/* not reached by these tests */

ngx_int_t
ngx_http_loom_resume_check(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_resume_t *rs)
{
    fail();
    return NGX_ERROR;
}


void
ngx_http_loom_resume_start(ngx_http_loom_request_t *r,
    ngx_http_loom_resume_t *rs, ngx_http_loom_sub_t *sub)
{
    fail();
}


void
ngx_http_loom_fanout_buffer(ngx_http_loom_sub_t *sub)
{
    fail();
}


ngx_int_t
ngx_http_loom_topic_subscribe(ngx_http_loom_topic_t *t,
    ngx_http_loom_subscriber_t *sr, ngx_http_loom_waiter_t *wt,
    ngx_str_t *registration)
{
    fail();
    return NGX_ERROR;
}


ngx_http_loom_sub_t *
ngx_http_loom_topic_find(ngx_http_loom_subscriber_t *sr,
    ngx_http_loom_topic_t *t)
{
    return NULL;
}


void
ngx_http_loom_topic_registration(ngx_http_loom_sub_t *sub, ngx_str_t *r)
{
}


void
ngx_http_loom_topic_unsubscribe(ngx_http_loom_sub_t *sub)
{
}


void
ngx_http_loom_topic_unsubscribe_all(ngx_http_loom_subscriber_t *sr)
{
}


void
ngx_http_loom_topic_cancel(ngx_http_loom_waiter_t *wt)
{
}


/* a connection */

static ngx_log_t                   test_log;
static ngx_connection_t            connection;
static ngx_http_loom_worker_t      worker;
static ngx_http_loom_loc_conf_t    conf;
static ngx_http_loom_main_conf_t   main_conf;
static ngx_http_loom_session_t     session;
static ngx_http_loom_out_t         out;
static ngx_http_loom_action_t      actions[] = {
    { ngx_string("publish"), ngx_string("\"publish\""), { 0, 0 }, NULL },
    { ngx_string("get"), ngx_string("\"get\""), { 0, 0 }, NULL },
};
static ngx_uint_t                  dispatched;


static void
test_dispatch(ngx_http_loom_requests_t *rq, u_char *data, size_t len,
    ngx_queue_t *position)
{
    dispatched++;
}


static int
setup(void **state)
{
    ngx_str_t  tag;
    json_t    *schema;

    memset(&connection, 0, sizeof(connection));
    memset(&worker, 0, sizeof(worker));
    memset(&session, 0, sizeof(session));
    memset(&topic, 0, sizeof(topic));

    connection.log = &test_log;
    worker.store = (ngx_http_loom_store_t *) &conf;     /* opaque */
    worker.conf = &main_conf;
    main_conf.history = 1000;
    main_conf.history_page = 1000;
    session.connection = &connection;
    session.worker = &worker;
    session.conf = &conf;
    ngx_str_set(&session.sender, "me");
    ngx_str_set(&session.client_id, "me");

    ngx_http_loom_requests_init(&session.requests, &out, &test_log,
                                &session);
    session.requests.dispatch = test_dispatch;
    ngx_queue_init(&session.subscriber.subscriptions);
    session.subscriber.out = &out;
    session.subscriber.log = &test_log;

    /* the worker caches t's schema with the tag R1:0 */
    ngx_str_set(&tag, "R1:0");
    schema = json_loads("{\"n\":null}", 0, NULL);
    (void) ngx_http_loom_topic_set_schema(&topic, &tag, schema, NULL);
    json_decref(schema);

    ncalls = 0;
    fail_from = TEST_CALLS;
    nanswers = 0;
    dispatched = 0;

    return 0;
}


static int
teardown(void **state)
{
    ngx_uint_t  i;

    ngx_http_loom_requests_close(&session.requests);
    ngx_http_loom_topic_drop_schema(&topic);

    for (i = 0; i < nanswers; i++) {
        free(answers[i]);
    }

    return 0;
}


static void
request(ngx_uint_t action, const char *id, const char *data)
{
    ngx_http_loom_ctx_t  ctx;

    memset(&ctx, 0, sizeof(ctx));
    ctx.session = &session;
    ctx.worker = &worker;
    ctx.action = &actions[action == NGX_HTTP_LOOM_GET];
    ctx.action_quoted = ctx.action->quoted;
    ctx.index = action;
    ctx.id.data = (u_char *) id;
    ctx.id.len = strlen(id);
    ctx.env.require_ack_flag = 1;
    ngx_str_set(&ctx.env.topic_str, "t");
    ngx_str_set(&ctx.env.topic.raw, "\"t\"");

    if (action == NGX_HTTP_LOOM_GET) {
        ngx_http_loom_get(&ctx);
        return;
    }

    ctx.env.data.type = NGX_HTTP_LOOM_JSON_OBJECT;
    ctx.env.data.raw.data = (u_char *) data;
    ctx.env.data.raw.len = strlen(data);

    ngx_http_loom_publish(&ctx);
}


/* Redis's answers */

static void reply_stale_as(ngx_uint_t call, char *tag, ngx_uint_t after);


static void
reply_stale(ngx_uint_t call, char *tag)
{
    reply_stale_as(call, tag, 0);
}


/*
 * after: the fourth element a message gets when it was refused only
 * because one before it in its group was
 */

static void
reply_stale_as(ngx_uint_t call, char *tag, ngx_uint_t after)
{
    redisReply   reply, e[4], *elements[4];

    memset(&reply, 0, sizeof(reply));
    memset(e, 0, sizeof(e));

    /* {tag, schema, kind}: a key-set schema */

    e[0].type = REDIS_REPLY_STRING;
    e[0].str = tag;
    e[0].len = strlen(tag);
    e[1].type = REDIS_REPLY_STRING;
    e[1].str = "{\"n\":null}";
    e[1].len = strlen(e[1].str);
    e[2].type = REDIS_REPLY_STRING;
    e[2].str = "";
    e[3].type = REDIS_REPLY_STRING;
    e[3].str = "after";
    e[3].len = 5;
    elements[0] = &e[0];
    elements[1] = &e[1];
    elements[2] = &e[2];
    elements[3] = &e[3];

    reply.type = REDIS_REPLY_ARRAY;
    reply.elements = after ? 4 : 3;
    reply.element = elements;

    calls[call]->handler(calls[call], &reply);
}


/* append.lua's answer to a publish: {seq, rev, ts} */

static void
reply_published(ngx_uint_t call, long long seq)
{
    redisReply   reply, e[3], *elements[3];
    ngx_uint_t   i;

    memset(&reply, 0, sizeof(reply));
    memset(e, 0, sizeof(e));

    for (i = 0; i < 3; i++) {
        e[i].type = REDIS_REPLY_INTEGER;
        e[i].integer = (i == 2) ? 0 : seq;
        elements[i] = &e[i];
    }

    reply.type = REDIS_REPLY_ARRAY;
    reply.elements = 3;
    reply.element = elements;

    calls[call]->handler(calls[call], &reply);
}


static void
reply_value(ngx_uint_t call, char *value)
{
    redisReply   reply, e[2], *elements[2];

    memset(&reply, 0, sizeof(reply));
    memset(e, 0, sizeof(e));

    e[0].type = REDIS_REPLY_STRING;
    e[0].str = "0";
    e[0].len = 1;
    e[1].type = REDIS_REPLY_STRING;
    e[1].str = value;
    e[1].len = strlen(value);
    elements[0] = &e[0];
    elements[1] = &e[1];

    reply.type = REDIS_REPLY_ARRAY;
    reply.elements = 2;
    reply.element = elements;

    calls[call]->handler(calls[call], &reply);
}


static void
test_retry_that_fails_at_once(void **state)
{
    request(NGX_HTTP_LOOM_PUBLISH, "\"p\"", "{\"n\":1}");
    assert_int_equal(ncalls, 1);
    assert_string_equal(commands[0], "PUBLISH");

    /* the tag moved; the second send finds no link */
    fail_from = 1;
    reply_stale(0, "R1:1");

    assert_int_equal(nanswers, 1);
    assert_string_equal(answers[0],
        "{\"id\":\"p\",\"action\":\"publish\",\"code\":500,"
        "\"message\":\"storage unavailable: not connected to redis\","
        "\"type\":\"response\"}\n");
    assert_true(ngx_queue_empty(&session.requests.queue));
    assert_int_equal(session.requests.inflight, 0);
    assert_int_equal(session.requests.barriers, 0);
}


static void
test_get_behind_a_stale_publish(void **state)
{
    request(NGX_HTTP_LOOM_PUBLISH, "\"p\"", "{\"n\":1}");
    request(NGX_HTTP_LOOM_GET, "\"g\"", NULL);

    /* the get waits: the publish may still go out again */
    assert_int_equal(ncalls, 1);

    reply_stale(0, "R1:1");
    assert_int_equal(ncalls, 2);
    assert_string_equal(commands[1], "PUBLISH");

    reply_published(1, 1);
    assert_int_equal(ncalls, 3);
    assert_string_equal(commands[2], "HMGET");

    reply_value(2, "{\"n\":1}");
    assert_int_equal(nanswers, 2);
    assert_string_equal(answers[0],
        "{\"id\":\"p\",\"action\":\"publish\",\"code\":200,"
        "\"type\":\"response\"}\n");
    assert_string_equal(answers[1],
        "{\"id\":\"g\",\"action\":\"get\",\"code\":200,"
        "\"data\":{\"n\":1},\"type\":\"response\"}\n");
}


static void
test_get_behind_a_publish_of_another_topic(void **state)
{
    ngx_http_loom_ctx_t  ctx;

    request(NGX_HTTP_LOOM_PUBLISH, "\"p\"", "{\"n\":1}");

    memset(&ctx, 0, sizeof(ctx));
    ctx.session = &session;
    ctx.worker = &worker;
    ctx.action = &actions[1];
    ctx.action_quoted = ctx.action->quoted;
    ctx.index = NGX_HTTP_LOOM_GET;
    ngx_str_set(&ctx.id, "\"g\"");
    ngx_str_set(&ctx.env.topic_str, "u");
    ngx_http_loom_get(&ctx);

    /* pipelined behind the publish */
    assert_int_equal(ncalls, 2);
    assert_string_equal(commands[1], "HMGET");

    reply_published(0, 1);
    reply_value(1, "null");
    assert_int_equal(nanswers, 2);
}


static void
test_what_comes_after_a_retry_waits_for_it(void **state)
{
    request(NGX_HTTP_LOOM_PUBLISH, "\"p\"", "{\"n\":1}");
    reply_stale(0, "R1:1");
    assert_int_equal(ncalls, 2);

    /* a message read now is kept until the retry is answered */
    ngx_http_loom_requests_message(&session.requests, (u_char *) "{}", 2);
    assert_int_equal(dispatched, 0);
    assert_int_equal(session.requests.ndeferred, 1);

    reply_published(1, 1);
    assert_int_equal(dispatched, 1);
    assert_int_equal(nanswers, 1);
}


static void
test_refused_after_another_is_no_attempt(void **state)
{
    ngx_uint_t  i;

    request(NGX_HTTP_LOOM_PUBLISH, "\"p\"", "{\"n\":1}");

    /* refused only for a stale message before it in its group */
    for (i = 0; i < 5; i++) {
        reply_stale_as(i, "R1:1", 1);
        assert_int_equal(ncalls, i + 2);
        assert_int_equal(nanswers, 0);
    }

    /* its own stale tag counts: the third time it gives up */
    reply_stale(5, "R1:2");
    reply_stale(6, "R1:3");
    assert_int_equal(ncalls, 8);
    assert_int_equal(nanswers, 0);
    reply_stale(7, "R1:4");
    assert_int_equal(ncalls, 8);
    assert_int_equal(nanswers, 1);
    assert_string_equal(answers[0],
        "{\"id\":\"p\",\"action\":\"publish\",\"code\":500,"
        "\"message\":\"storage error: the schema kept changing, try "
        "again\",\"type\":\"response\"}\n");
    assert_int_equal(session.requests.barriers, 0);
}


static void
test_group_not_sent(void **state)
{
    redisReply  fail;

    request(NGX_HTTP_LOOM_PUBLISH, "\"p\"", "{\"n\":1}");
    request(NGX_HTTP_LOOM_PUBLISH, "\"q\"", "{\"n\":2}");
    assert_int_equal(ncalls, 2);

    /* the group could not be sent: the words of a refused send */
    memset(&fail, 0, sizeof(fail));
    fail.type = REDIS_REPLY_ERROR;
    fail.str = "too many redis commands in flight";
    fail.len = strlen(fail.str);

    calls[0]->unsent = 1;
    calls[0]->handler(calls[0], &fail);
    calls[1]->unsent = 1;
    calls[1]->handler(calls[1], &fail);

    assert_int_equal(nanswers, 2);
    assert_string_equal(answers[0],
        "{\"id\":\"p\",\"action\":\"publish\",\"code\":500,"
        "\"message\":\"storage unavailable: too many redis commands in "
        "flight\",\"type\":\"response\"}\n");
    assert_string_equal(answers[1],
        "{\"id\":\"q\",\"action\":\"publish\",\"code\":500,"
        "\"message\":\"storage unavailable: too many redis commands in "
        "flight\",\"type\":\"response\"}\n");
    assert_true(ngx_queue_empty(&session.requests.queue));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_that_fails_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_behind_a_stale_publish,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_get_behind_a_publish_of_another_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_what_comes_after_a_retry_waits_for_it, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_refused_after_another_is_no_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_not_sent, setup,
                                        teardown),
    };

    /* freed memory is overwritten: a use after free reads garbage */
    mallopt(M_PERTURB, 0xa5);

    return cmocka_run_group_tests(tests, NULL, NULL);
}
