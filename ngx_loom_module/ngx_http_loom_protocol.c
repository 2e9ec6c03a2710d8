/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_schema.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_topic.h"


/*
 * Each request gets its answers in the order it came: a request waiting
 * for Redis keeps its place in the session's queue, and answers that are
 * ready earlier wait behind it.  Requests also take effect in order: while
 * a request that needs more than one step is under way (a subscribe until
 * its channel is live, a publish until its schema is known), the requests
 * after it are kept as received and handled once it is through.
 */


#define NGX_HTTP_LOOM_SUBSCRIBE        0
#define NGX_HTTP_LOOM_UNSUBSCRIBE      1
#define NGX_HTTP_LOOM_UNSUBSCRIBE_ALL  2
#define NGX_HTTP_LOOM_PUBLISH          3
#define NGX_HTTP_LOOM_SEND             4
#define NGX_HTTP_LOOM_GET              5
#define NGX_HTTP_LOOM_REGISTER         6
#define NGX_HTTP_LOOM_UNREGISTER       7
#define NGX_HTTP_LOOM_LIST             8
#define NGX_HTTP_LOOM_UPDATE           9

#define NGX_HTTP_LOOM_CHECK_TOPIC      1
#define NGX_HTTP_LOOM_CHECK_DATA       2

#define NGX_HTTP_LOOM_PUBLISH_TRIES    3

/* an unsubscribe waiting for the requests before it to be through */
#define NGX_HTTP_LOOM_REQ_PARKED       5


typedef struct ngx_http_loom_ctx_s  ngx_http_loom_ctx_t;

typedef void (*ngx_http_loom_action_pt)(ngx_http_loom_ctx_t *ctx);

typedef struct {
    ngx_str_t                       name;
    ngx_str_t                       quoted;
    ngx_uint_t                      checks[2];     /* in this order */
    ngx_http_loom_action_pt         handler;
} ngx_http_loom_action_t;


struct ngx_http_loom_ctx_s {
    ngx_http_loom_session_t        *session;
    ngx_http_loom_worker_t         *worker;
    ngx_http_loom_json_envelope_t   env;
    ngx_http_loom_action_t         *action;
    ngx_str_t                       action_quoted;
    ngx_uint_t                      index;
    ngx_str_t                       id;            /* quoted */
    ngx_queue_t                    *position;      /* where answers go */
};


static void ngx_http_loom_protocol_dispatch(ngx_http_loom_session_t *s,
    u_char *data, size_t len, ngx_queue_t *position);
static ngx_int_t ngx_http_loom_protocol_check(ngx_http_loom_ctx_t *ctx,
    ngx_uint_t check);
static void ngx_http_loom_protocol_defer(ngx_http_loom_session_t *s,
    u_char *data, size_t len);
static void ngx_http_loom_protocol_run_deferred(ngx_http_loom_session_t *s);
static void ngx_http_loom_protocol_flush(ngx_http_loom_session_t *s);

static void ngx_http_loom_subscribe(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_subscribe_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_subscribe_now(ngx_http_loom_request_t *r);
static void ngx_http_loom_unsubscribe(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_unsubscribe_now(ngx_http_loom_request_t *r);
static void ngx_http_loom_unsubscribe_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_unsubscribe_all(ngx_http_loom_ctx_t *ctx);
static ngx_uint_t ngx_http_loom_unsubscribe_park(ngx_http_loom_request_t *r);
static void ngx_http_loom_publish(ngx_http_loom_ctx_t *ctx);
static ngx_int_t ngx_http_loom_publish_send(ngx_http_loom_request_t *r,
    ngx_str_t *tag);
static void ngx_http_loom_publish_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_get(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_get_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_register(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_register_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_unregister(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_unregister_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_list(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_list_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);
static void ngx_http_loom_update(ngx_http_loom_ctx_t *ctx);
static void ngx_http_loom_update_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply);

static ngx_http_loom_request_t *ngx_http_loom_request_create(
    ngx_http_loom_ctx_t *ctx, ngx_uint_t extra);
static void ngx_http_loom_request_finish(ngx_http_loom_request_t *r,
    ngx_http_loom_frame_t *response);
static void ngx_http_loom_request_free(ngx_http_loom_request_t *r);
static void ngx_http_loom_request_unbarrier(ngx_http_loom_request_t *r);
static ngx_int_t ngx_http_loom_request_command(ngx_http_loom_request_t *r,
    ngx_http_loom_store_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen);
static ngx_int_t ngx_http_loom_request_script(ngx_http_loom_request_t *r,
    ngx_http_loom_store_handler_pt handler, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_loom_request_fail(ngx_http_loom_request_t *r,
    redisReply *reply);
static void ngx_http_loom_request_error(ngx_http_loom_request_t *r,
    ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n);

static void ngx_http_loom_answer(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_frame_t *f);
static void ngx_http_loom_answer_error(ngx_http_loom_ctx_t *ctx,
    ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n);
static ngx_http_loom_frame_t *ngx_http_loom_response(
    ngx_http_loom_worker_t *w, ngx_str_t *id, ngx_str_t *action,
    ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n, ngx_str_t *data);
static ngx_http_loom_frame_t *ngx_http_loom_ack(ngx_http_loom_request_t *r,
    ngx_str_t *data);
static ngx_uint_t ngx_http_loom_blank(ngx_str_t *s);


static ngx_http_loom_action_t  ngx_http_loom_actions[] = {

    { ngx_string("subscribe"), ngx_string("\"subscribe\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, 0 },
      ngx_http_loom_subscribe },

    { ngx_string("unsubscribe"), ngx_string("\"unsubscribe\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, 0 },
      ngx_http_loom_unsubscribe },

    /* the original wanted a topic here and ignored it: none is needed */
    { ngx_string("unsubscribeAll"), ngx_string("\"unsubscribeAll\""),
      { 0, 0 },
      ngx_http_loom_unsubscribe_all },

    { ngx_string("publish"), ngx_string("\"publish\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, NGX_HTTP_LOOM_CHECK_DATA },
      ngx_http_loom_publish },

    { ngx_string("sendWithoutSave"), ngx_string("\"sendWithoutSave\""),
      { NGX_HTTP_LOOM_CHECK_DATA, NGX_HTTP_LOOM_CHECK_TOPIC },
      ngx_http_loom_publish },

    { ngx_string("get"), ngx_string("\"get\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, 0 },
      ngx_http_loom_get },

    { ngx_string("registerTopic"), ngx_string("\"registerTopic\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, NGX_HTTP_LOOM_CHECK_DATA },
      ngx_http_loom_register },

    { ngx_string("unregisterTopic"), ngx_string("\"unregisterTopic\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, 0 },
      ngx_http_loom_unregister },

    { ngx_string("listTopics"), ngx_string("\"listTopics\""),
      { 0, 0 },
      ngx_http_loom_list },

    { ngx_string("updateSchema"), ngx_string("\"updateSchema\""),
      { NGX_HTTP_LOOM_CHECK_DATA, NGX_HTTP_LOOM_CHECK_TOPIC },
      ngx_http_loom_update },

    { ngx_null_string, ngx_null_string, { 0, 0 }, NULL }
};


static ngx_str_t  ngx_http_loom_unknown = ngx_string("\"UNKNOWN\"");
static ngx_str_t  ngx_http_loom_empty = ngx_string("\"\"");
static ngx_str_t  ngx_http_loom_null = ngx_string("null");
static ngx_str_t  ngx_http_loom_empty_object = ngx_string("{}");


void
ngx_http_loom_protocol_message(ngx_http_loom_session_t *s, u_char *data,
    size_t len)
{
    if (s->barriers) {
        ngx_http_loom_protocol_defer(s, data, len);
        return;
    }

    ngx_http_loom_protocol_dispatch(s, data, len, NULL);
}


static void
ngx_http_loom_protocol_dispatch(ngx_http_loom_session_t *s, u_char *data,
    size_t len, ngx_queue_t *position)
{
    u_char                  *p, errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];
    ngx_str_t                err, msg[2];
    ngx_uint_t               i;
    ngx_http_loom_ctx_t      ctx;
    ngx_http_loom_worker_t  *w;
    ngx_http_loom_action_t  *a;

    w = s->worker;

    ngx_memzero(&ctx, sizeof(ngx_http_loom_ctx_t));
    ctx.session = s;
    ctx.worker = w;
    ctx.position = position;
    ctx.id = ngx_http_loom_unknown;
    ctx.action_quoted = ngx_http_loom_unknown;

    if (data == NULL) {
        ngx_str_set(&msg[0], "message is not valid UTF-8");
        ngx_http_loom_answer_error(&ctx, 400, msg, 1);
        return;
    }

    if (len > w->scratch_size) {
        p = ngx_alloc(ngx_max(len, 4096), w->log);
        if (p == NULL) {
            ngx_str_set(&msg[0], "out of memory");
            ngx_http_loom_answer_error(&ctx, 500, msg, 1);
            return;
        }

        if (w->scratch) {
            ngx_free(w->scratch);
        }

        w->scratch = p;
        w->scratch_size = ngx_max(len, 4096);
    }

    err.data = errbuf;

    if (ngx_http_loom_json_scan_envelope(data, len, s->conf->max_json_depth,
                                         w->scratch, &ctx.env, &err)
        != NGX_OK)
    {
        ngx_http_loom_answer_error(&ctx, 400, &err, 1);
        return;
    }

    ctx.id = (ctx.env.id.type == NGX_HTTP_LOOM_JSON_STRING)
             ? ctx.env.id.raw : ngx_http_loom_empty;

    for (a = ngx_http_loom_actions; a->name.len; a++) {
        if (a->name.len == ctx.env.action_str.len
            && ngx_strncmp(a->name.data, ctx.env.action_str.data,
                           a->name.len) == 0)
        {
            break;
        }
    }

    if (a->name.len == 0) {

        /* the unknown action is echoed as it came */

        ctx.action_quoted =
            (ctx.env.action.type == NGX_HTTP_LOOM_JSON_STRING)
            ? ctx.env.action.raw : ngx_http_loom_empty;

        ngx_str_set(&msg[0], "unknown action: ");
        msg[1] = ctx.env.action_str;
        ngx_http_loom_answer_error(&ctx, 400, msg, 2);
        return;
    }

    ctx.action = a;
    ctx.action_quoted = a->quoted;
    ctx.index = a - ngx_http_loom_actions;

    for (i = 0; i < 2; i++) {
        if (a->checks[i]
            && ngx_http_loom_protocol_check(&ctx, a->checks[i]) != NGX_OK)
        {
            return;
        }
    }

    a->handler(&ctx);
}


static ngx_int_t
ngx_http_loom_protocol_check(ngx_http_loom_ctx_t *ctx, ngx_uint_t check)
{
    u_char                          buf[NGX_INT_T_LEN];
    ngx_str_t                       msg[3];
    ngx_http_loom_json_envelope_t  *env;

    env = &ctx->env;

    if (check == NGX_HTTP_LOOM_CHECK_TOPIC) {

        if (ngx_http_loom_blank(&env->topic_str)) {
            ngx_str_set(&msg[0], "no topic provided");
            ngx_http_loom_answer_error(ctx, 400, msg, 1);
            return NGX_DECLINED;
        }

        if (env->topic_str.len > ctx->session->conf->max_topic_length) {
            ngx_str_set(&msg[0], "topic name is longer than ");
            msg[1].data = buf;
            msg[1].len = ngx_sprintf(buf, "%uz",
                                     ctx->session->conf->max_topic_length)
                         - buf;
            ngx_str_set(&msg[2], " bytes");
            ngx_http_loom_answer_error(ctx, 400, msg, 3);
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    /* NGX_HTTP_LOOM_CHECK_DATA: the messages are Go's, as sent before */

    switch (env->data.type) {

    case NGX_HTTP_LOOM_JSON_NONE:
        ngx_str_set(&msg[0], "message data was null");
        break;

    case NGX_HTTP_LOOM_JSON_NULL:
    case NGX_HTTP_LOOM_JSON_OBJECT:

        if (env->data_overflow.len == 0) {
            return NGX_OK;
        }

        ngx_str_set(&msg[0], "json: cannot unmarshal number ");
        msg[1] = env->data_overflow;
        ngx_str_set(&msg[2], " into Go value of type float64");
        ngx_http_loom_answer_error(ctx, 400, msg, 3);
        return NGX_DECLINED;

    case NGX_HTTP_LOOM_JSON_STRING:
        ngx_str_set(&msg[0], "json: cannot unmarshal string into Go value "
                             "of type map[string]interface {}");
        break;

    case NGX_HTTP_LOOM_JSON_NUMBER:
        ngx_str_set(&msg[0], "json: cannot unmarshal number into Go value "
                             "of type map[string]interface {}");
        break;

    case NGX_HTTP_LOOM_JSON_ARRAY:
        ngx_str_set(&msg[0], "json: cannot unmarshal array into Go value "
                             "of type map[string]interface {}");
        break;

    default: /* true, false */
        ngx_str_set(&msg[0], "json: cannot unmarshal bool into Go value "
                             "of type map[string]interface {}");
        break;
    }

    ngx_http_loom_answer_error(ctx, 400, msg, 1);

    return NGX_DECLINED;
}


/* Go's strings.TrimSpace(topic) == "" */

static ngx_uint_t
ngx_http_loom_blank(ngx_str_t *s)
{
    u_char  *p, *last;

    p = s->data;
    last = p + s->len;

    while (p < last) {

        switch (*p) {

        case ' ': case '\t': case '\n': case '\v': case '\f': case '\r':
            p++;
            continue;

        case 0xc2:  /* U+0085, U+00A0 */
            if (last - p >= 2 && (p[1] == 0x85 || p[1] == 0xa0)) {
                p += 2;
                continue;
            }

            return 0;

        case 0xe1:  /* U+1680 */
            if (last - p >= 3 && p[1] == 0x9a && p[2] == 0x80) {
                p += 3;
                continue;
            }

            return 0;

        case 0xe2:  /* U+2000-200A, U+2028, U+2029, U+202F, U+205F */
            if (last - p >= 3
                && ((p[1] == 0x80
                     && (p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9
                         || p[2] == 0xaf))
                    || (p[1] == 0x81 && p[2] == 0x9f)))
            {
                p += 3;
                continue;
            }

            return 0;

        case 0xe3:  /* U+3000 */
            if (last - p >= 3 && p[1] == 0x80 && p[2] == 0x80) {
                p += 3;
                continue;
            }

            return 0;

        default:
            return 0;
        }
    }

    return 1;
}


/*
 * A message that came while an earlier request is under way is kept as
 * received and handled in its turn.
 */

static void
ngx_http_loom_protocol_defer(ngx_http_loom_session_t *s, u_char *data,
    size_t len)
{
    ngx_http_loom_request_t  *r;

    r = ngx_alloc(sizeof(ngx_http_loom_request_t) + len, s->connection->log);
    if (r == NULL) {
        ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_INTERNAL_ERROR,
                                    "out of memory");
        return;
    }

    ngx_memzero(r, sizeof(ngx_http_loom_request_t));

    r->session = s;
    r->state = NGX_HTTP_LOOM_REQ_DEFERRED;

    if (data) {
        r->payload.data = (u_char *) r + sizeof(ngx_http_loom_request_t);
        r->payload.len = len;
        ngx_memcpy(r->payload.data, data, len);
    }

    ngx_queue_insert_tail(&s->requests, &r->queue);
    s->inflight++;
    s->deferred += len;
}


static void
ngx_http_loom_protocol_run_deferred(ngx_http_loom_session_t *s)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    /*
     * A request finished during a dispatch runs this again: every pass
     * starts from the head, and the message being dispatched is marked
     * so that neither such a nested pass nor a flush takes it.
     */

    while (s->barriers == 0) {

        for (q = ngx_queue_head(&s->requests);
             q != ngx_queue_sentinel(&s->requests);
             q = ngx_queue_next(q))
        {
            r = ngx_queue_data(q, ngx_http_loom_request_t, queue);

            if (r->state == NGX_HTTP_LOOM_REQ_DEFERRED) {
                break;
            }
        }

        if (q == ngx_queue_sentinel(&s->requests)) {
            break;
        }

        r->state = NGX_HTTP_LOOM_REQ_REDIS;

        /* what the message leads to takes its place in the queue */

        ngx_http_loom_protocol_dispatch(s, r->payload.data, r->payload.len,
                                        q);

        ngx_queue_remove(q);
        s->inflight--;
        s->deferred -= r->payload.len;
        ngx_free(r);
    }

    ngx_http_loom_protocol_flush(s);
}


static void
ngx_http_loom_protocol_flush(ngx_http_loom_session_t *s)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    while (!ngx_queue_empty(&s->requests)) {
        q = ngx_queue_head(&s->requests);
        r = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        if (r->state == NGX_HTTP_LOOM_REQ_PARKED) {

            /* everything before it is through: it takes effect now */

            if (r->action == NGX_HTTP_LOOM_UNSUBSCRIBE) {
                ngx_http_loom_unsubscribe_now(r);

            } else {
                ngx_http_loom_topic_unsubscribe_all(s);
                ngx_http_loom_request_unbarrier(r);
                ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
            }

            continue;
        }

        if (r->state != NGX_HTTP_LOOM_REQ_DONE) {
            break;
        }

        ngx_queue_remove(q);
        s->inflight--;

        if (r->response) {
            (void) ngx_http_loom_session_send(s, r->response);
        }

        ngx_http_loom_request_free(r);
    }

    ngx_http_loom_session_resume(s);
}


void
ngx_http_loom_protocol_session_closed(ngx_http_loom_session_t *s)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *r;

    while (!ngx_queue_empty(&s->requests)) {
        q = ngx_queue_head(&s->requests);
        r = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        ngx_queue_remove(q);

        switch (r->state) {

        case NGX_HTTP_LOOM_REQ_REDIS:
            /* the reply handler frees it */
            r->session = NULL;
            continue;

        case NGX_HTTP_LOOM_REQ_WAITING:
        case NGX_HTTP_LOOM_REQ_HELD:
            ngx_queue_remove(&r->link);

            if (r->topic) {
                ngx_http_loom_topic_check(r->topic);
            }

            break;

        default:
            break;
        }

        ngx_http_loom_request_free(r);
    }

    s->inflight = 0;
    s->barriers = 0;
    s->deferred = 0;
}


void
ngx_http_loom_protocol_subscribed(ngx_http_loom_request_t *r, ngx_int_t rc)
{
    ngx_str_t                 msg;
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_session_t  *s;

    s = r->session;

    if (rc == NGX_OK) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    /* the subscriber link went down before Redis confirmed the channel */

    t = ngx_http_loom_topic_lookup(s->worker, &r->name);
    sub = t ? ngx_http_loom_topic_find(s, t) : NULL;

    if (sub) {
        ngx_http_loom_topic_unsubscribe(sub);
    }

    ngx_str_set(&msg, "storage unavailable: connection to redis lost");
    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, &msg, 1);
}


void
ngx_http_loom_protocol_release(ngx_http_loom_request_t *r)
{
    r->state = NGX_HTTP_LOOM_REQ_DONE;
    ngx_http_loom_protocol_flush(r->session);
}


/* subscribe */

static void
ngx_http_loom_subscribe(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                *key;
    const char               *argv[3];
    size_t                    argvlen[3];
    ngx_http_loom_request_t  *r;

    /* room for the registration the subscription is made to */

    r = ngx_http_loom_request_create(ctx, NGX_HTTP_LOOM_ID_LEN);
    if (r == NULL) {
        return;
    }

    /*
     * Redis is asked even when the channel is live here: the news that
     * the topic was unregistered, by this client just before or by
     * another one, may still be on its way on the subscriber link.  The
     * tag names the registration, so that such news only drops the
     * subscriptions made to the registration it is about.
     */

    key = &r->key;

    argv[0] = "HGET";
    argvlen[0] = 4;
    argv[1] = (char *) key->data;
    argvlen[1] = key->len;
    argv[2] = "tag";
    argvlen[2] = 3;

    r->barrier = 1;
    ctx->session->barriers++;

    (void) ngx_http_loom_request_command(r, ngx_http_loom_subscribe_reply,
                                         3, argv, argvlen);
}


static void
ngx_http_loom_subscribe_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    u_char                   *p, *last, *colon;
    ngx_str_t                 msg[2];
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->session == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "topic doesn't exist for ");
        msg[1] = r->name;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the tag is "<registration>:<schema version>" */

    p = (u_char *) reply->str;
    last = p + reply->len;
    colon = ngx_strlchr(p, last, ':');

    r->payload.len = ngx_min((size_t) ((colon ? colon : last) - p),
                             NGX_HTTP_LOOM_ID_LEN);
    ngx_memcpy(r->payload.data, p, r->payload.len);

    ngx_http_loom_subscribe_now(r);
}


static void
ngx_http_loom_subscribe_now(ngx_http_loom_request_t *r)
{
    u_char                    buf[NGX_INT_T_LEN];
    ngx_int_t                 rc;
    ngx_str_t                 msg[3];
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_session_t  *s;

    s = r->session;

    t = ngx_http_loom_topic_get(s->worker, &r->name);
    if (t == NULL) {
        ngx_str_set(&msg[0], "out of memory");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    sub = ngx_http_loom_topic_find(s, t);

    if (sub) {
        /* subscribing twice is fine: one delivery per message still */
        ngx_http_loom_topic_registration(sub, &r->payload);
        ngx_http_loom_topic_check(t);
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    if (s->nsubscriptions >= s->conf->max_subscriptions) {
        ngx_http_loom_topic_check(t);

        ngx_str_set(&msg[0], "too many subscriptions on this connection, "
                             "the limit is ");
        msg[1].data = buf;
        msg[1].len = ngx_sprintf(buf, "%ui", s->conf->max_subscriptions)
                     - buf;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, msg, 2);
        return;
    }

    rc = ngx_http_loom_topic_subscribe(t, s, r, &r->payload);

    switch (rc) {

    case NGX_OK:
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;

    case NGX_AGAIN:
        /* ngx_http_loom_protocol_subscribed() goes on */
        return;

    case NGX_DECLINED:
        ngx_str_set(&msg[0], "storage unavailable: not connected to redis");
        break;

    default:
        ngx_str_set(&msg[0], "out of memory");
        break;
    }

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, msg, 1);
}


/* unsubscribe */

static void
ngx_http_loom_unsubscribe(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    if (ngx_http_loom_unsubscribe_park(r)) {
        return;
    }

    ngx_http_loom_unsubscribe_now(r);
}


static void
ngx_http_loom_unsubscribe_now(ngx_http_loom_request_t *r)
{
    ngx_str_t                *key;
    const char               *argv[3];
    size_t                    argvlen[3];
    ngx_http_loom_sub_t      *sub;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_session_t  *s;

    s = r->session;

    t = ngx_http_loom_topic_lookup(s->worker, &r->name);
    sub = t ? ngx_http_loom_topic_find(s, t) : NULL;

    if (sub) {
        ngx_http_loom_topic_unsubscribe(sub);
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
        return;
    }

    /* which error it is depends on whether the topic exists */

    key = &r->key;

    argv[0] = "HEXISTS";
    argvlen[0] = 7;
    argv[1] = (char *) key->data;
    argvlen[1] = key->len;
    argv[2] = "sv";
    argvlen[2] = 2;

    (void) ngx_http_loom_request_command(r, ngx_http_loom_unsubscribe_reply,
                                         3, argv, argvlen);
}


static void
ngx_http_loom_unsubscribe_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_str_t                 msg[4];
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->session == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    ngx_http_loom_request_unbarrier(r);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the wording, typo included, is the original server's */

    if (reply->integer == 0) {
        ngx_str_set(&msg[0], "cannot unsubscribe client from topic. "
                             "topic doesn't exits. topic: ");

    } else {
        ngx_str_set(&msg[0], "cannot unsubscribe client from topic. "
                             "client is not subscribed to topic. topic: ");
    }

    msg[1] = r->name;
    ngx_str_set(&msg[2], ", client: ");
    msg[3] = r->session->client_id;

    ngx_http_loom_request_error(r, 500, msg, 4);
}


static void
ngx_http_loom_unsubscribe_all(ngx_http_loom_ctx_t *ctx)
{
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    if (ngx_http_loom_unsubscribe_park(r)) {
        return;
    }

    ngx_http_loom_topic_unsubscribe_all(ctx->session);
    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/*
 * A publish before an unsubscribe may still be on its way to this very
 * session: the unsubscribe waits until every request before it is through
 * (a publish is through once its delivery came here), and the requests
 * after it wait for the unsubscribe.
 */

static ngx_uint_t
ngx_http_loom_unsubscribe_park(ngx_http_loom_request_t *r)
{
    ngx_queue_t              *q;
    ngx_http_loom_request_t  *prev;
    ngx_http_loom_session_t  *s;

    s = r->session;

    for (q = ngx_queue_head(&s->requests);
         q != &r->queue;
         q = ngx_queue_next(q))
    {
        prev = ngx_queue_data(q, ngx_http_loom_request_t, queue);

        if (prev->state != NGX_HTTP_LOOM_REQ_DONE) {
            r->state = NGX_HTTP_LOOM_REQ_PARKED;
            r->barrier = 1;
            s->barriers++;
            return 1;
        }
    }

    return 0;
}


/* publish and sendWithoutSave */

static void
ngx_http_loom_publish(ngx_http_loom_ctx_t *ctx)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                       msg, *data, *topic, *action;
    json_t                         *json;
    json_error_t                    jerr;
    ngx_http_loom_topic_t          *t;
    ngx_http_loom_session_t        *s;
    ngx_http_loom_request_t        *r;
    ngx_http_loom_json_envelope_t  *env;

    s = ctx->session;
    env = &ctx->env;

    if (env->data.type != NGX_HTTP_LOOM_JSON_OBJECT) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return;
    }

    data = &env->data.raw;

    json = json_loadb((char *) data->data, data->len,
                      JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);
    if (json == NULL) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return;
    }

    /*
     * The delivery is built here, once, from the bytes the client sent:
     * {"id":..,"action":..,"topic":..,"data":..,"senderId":".."}\n
     */

    topic = &env->topic.raw;
    action = &ctx->action_quoted;

    len = sizeof("{\"id\":,\"action\":,\"topic\":,\"data\":,"
                 "\"senderId\":\"\"}\n") - 1
          + ctx->id.len + action->len + topic->len + data->len
          + s->sender.len;

    r = ngx_http_loom_request_create(ctx, len);
    if (r == NULL) {
        json_decref(json);
        return;
    }

    r->data = json;

    p = r->payload.data;
    p = ngx_cpymem(p, "{\"id\":", 6);
    p = ngx_cpymem(p, ctx->id.data, ctx->id.len);
    p = ngx_cpymem(p, ",\"action\":", 10);
    p = ngx_cpymem(p, action->data, action->len);
    p = ngx_cpymem(p, ",\"topic\":", 9);
    p = ngx_cpymem(p, topic->data, topic->len);
    p = ngx_cpymem(p, ",\"data\":", 8);
    r->data_offset = p - r->payload.data;
    r->data_len = data->len;
    p = ngx_cpymem(p, data->data, data->len);
    p = ngx_cpymem(p, ",\"senderId\":\"", 13);
    p = ngx_cpymem(p, s->sender.data, s->sender.len);
    p = ngx_cpymem(p, "\"}\n", 3);
    r->payload.len = p - r->payload.data;

    t = ngx_http_loom_topic_lookup(ctx->worker, &r->name);

    if (t && t->schema) {

        if (ngx_http_loom_schema_match(t->schema, json) == NGX_OK) {
            (void) ngx_http_loom_publish_send(r, &t->tag);
            ngx_http_loom_topic_check(t);
            return;
        }

        ngx_http_loom_topic_check(t);
    }

    /*
     * No schema here yet, or one the message does not match, which may
     * be older than a change this client sent just before: the script
     * answers with the current one, and the requests behind this one wait
     * until it is sent for real.
     */

    r->barrier = 1;
    s->barriers++;

    (void) ngx_http_loom_publish_send(r, NULL);
}


static ngx_int_t
ngx_http_loom_publish_send(ngx_http_loom_request_t *r, ngx_str_t *tag)
{
    u_char       offset[NGX_INT_T_LEN], length[NGX_INT_T_LEN];
    size_t       argvlen[7];
    ngx_str_t   *key;
    const char  *argv[7];

    key = &r->key;

    argv[0] = (char *) key->data;
    argvlen[0] = key->len;
    argv[1] = tag ? (char *) tag->data : "";
    argvlen[1] = tag ? tag->len : 0;
    argv[2] = (r->action == NGX_HTTP_LOOM_PUBLISH) ? "1" : "0";
    argvlen[2] = 1;
    argv[3] = (char *) r->payload.data;
    argvlen[3] = r->payload.len;
    argv[4] = (char *) offset;
    argvlen[4] = ngx_sprintf(offset, "%uz", r->data_offset + 1) - offset;
    argv[5] = (char *) length;
    argvlen[5] = ngx_sprintf(length, "%uz", r->data_len) - length;

    /* the channel is the key with ":msg" */
    argv[6] = (char *) key->data;
    argvlen[6] = key->len + 4;

    return ngx_http_loom_request_script(r, ngx_http_loom_publish_reply,
                                        NGX_HTTP_LOOM_SCRIPT_PUBLISH, 1,
                                        7, argv, argvlen);
}


static void
ngx_http_loom_publish_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    json_t                   *schema;
    ngx_str_t                 msg[2], tag;
    json_error_t              jerr;
    ngx_http_loom_frame_t    *ack;
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_worker_t   *w;
    ngx_http_loom_request_t  *r;
    ngx_http_loom_session_t  *s;

    r = (ngx_http_loom_request_t *) call;
    s = r->session;

    if (s == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    w = s->worker;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {

        /* stored (for publish) and on its way to every subscriber */

        if (w->stats) {
            if (r->action == NGX_HTTP_LOOM_PUBLISH) {
                w->stats->publishes++;

            } else {
                w->stats->sends++;
            }
        }

        ack = ngx_http_loom_ack(r, NULL);
        r->response = ack;

        t = ngx_http_loom_topic_lookup(w, &r->name);

        /*
         * a subscribed publisher sees its delivery before its ack, and
         * before the answers to what it sent later
         */

        if (t && ngx_http_loom_topic_hold(t, s, r, (uint64_t) reply->integer))
        {
            return;
        }

        ngx_http_loom_request_finish(r, ack);
        return;
    }

    if (reply && reply->type == REDIS_REPLY_NIL) {
        t = ngx_http_loom_topic_lookup(w, &r->name);

        if (t) {
            ngx_http_loom_topic_drop_schema(t);
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg[0], "could not get topic by name: ");
        msg[1] = r->name;
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, msg, 2);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the schema changed, or was not known here: check against it */

    schema = json_loadb(reply->element[1]->str, reply->element[1]->len,
                        JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);

    if (schema == NULL) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "loom: the stored schema of \"%V\" is not JSON: %s",
                      &r->name, jerr.text);
        ngx_str_set(&msg[0], "storage error: stored schema is not JSON");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    tag.data = (u_char *) reply->element[0]->str;
    tag.len = reply->element[0]->len;

    t = ngx_http_loom_topic_get(w, &r->name);

    if (t) {
        (void) ngx_http_loom_topic_set_schema(t, &tag, schema);
    }

    if (ngx_http_loom_schema_match(schema, r->data) != NGX_OK) {
        json_decref(schema);

        if (t) {
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg[0], "schema doesn't match topics current schema");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 400, msg, 1);
        return;
    }

    json_decref(schema);

    if (++r->attempts >= NGX_HTTP_LOOM_PUBLISH_TRIES) {

        if (t) {
            ngx_http_loom_topic_check(t);
        }

        ngx_str_set(&msg[0], "storage error: the schema kept changing, "
                             "try again");
        ngx_http_loom_request_unbarrier(r);
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    (void) ngx_http_loom_publish_send(r, t ? &t->tag : &tag);

    if (t) {
        ngx_http_loom_topic_check(t);
    }

    /* sent with the right tag: what comes after may go behind it */
    ngx_http_loom_request_unbarrier(r);

    if (s->barriers == 0) {
        ngx_http_loom_protocol_run_deferred(s);
    }
}


/* get */

static void
ngx_http_loom_get(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                *key;
    const char               *argv[4];
    size_t                    argvlen[4];
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    key = &r->key;

    argv[0] = "HMGET";
    argvlen[0] = 5;
    argv[1] = (char *) key->data;
    argvlen[1] = key->len;
    argv[2] = "sv";
    argvlen[2] = 2;
    argv[3] = "value";
    argvlen[3] = 5;

    (void) ngx_http_loom_request_command(r, ngx_http_loom_get_reply,
                                         4, argv, argvlen);
}


static void
ngx_http_loom_get_reply(ngx_http_loom_store_call_t *call, redisReply *reply)
{
    ngx_str_t                 msg[2], data;
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->session == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        ngx_str_set(&msg[0], "couldn't get value for topic with error: ");

        if (reply == NULL) {
            ngx_str_set(&msg[1], "connection to redis lost");

        } else if (reply->type == REDIS_REPLY_ERROR) {
            msg[1].data = (u_char *) reply->str;
            msg[1].len = reply->len;

        } else {
            ngx_str_set(&msg[1], "unexpected reply from redis");
        }

        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply->element[0]->type != REDIS_REPLY_STRING) {
        ngx_str_set(&msg[0], "couldn't get value for topic. "
                             "topic doesn't exist. topic: ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    if (reply->element[1]->type == REDIS_REPLY_STRING) {
        data.data = (u_char *) reply->element[1]->str;
        data.len = reply->element[1]->len;

    } else {
        data = ngx_http_loom_null;
    }

    /* get answers whether or not requireAck is set */

    ngx_http_loom_request_finish(r, ngx_http_loom_response(r->session->worker,
                                     &r->id,
                                     &ngx_http_loom_actions[r->action].quoted,
                                     200, NULL, 0, &data));
}


/* registerTopic */

static void
ngx_http_loom_register(ngx_http_loom_ctx_t *ctx)
{
    u_char                    inc[NGX_HTTP_LOOM_ID_LEN];
    ngx_str_t                 msg;
    ngx_str_t                *key, *index;
    const char               *argv[5];
    size_t                    argvlen[5];
    ngx_http_loom_request_t  *r;

    if (ctx->env.data.type != NGX_HTTP_LOOM_JSON_OBJECT) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return;
    }

    r = ngx_http_loom_request_create(ctx, ctx->env.data.raw.len);
    if (r == NULL) {
        return;
    }

    ngx_memcpy(r->payload.data, ctx->env.data.raw.data,
               ctx->env.data.raw.len);
    r->payload.len = ctx->env.data.raw.len;

    key = &r->key;

    /* a fresh tag prefix tells this topic from an earlier one of the name */
    ngx_http_loom_random_id(ctx->worker, inc);

    index = ngx_http_loom_store_index(ctx->worker->store);

    argv[0] = (char *) key->data;
    argvlen[0] = key->len;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;
    argv[2] = (char *) r->name.data;
    argvlen[2] = r->name.len;
    argv[3] = (char *) r->payload.data;
    argvlen[3] = r->payload.len;
    argv[4] = (char *) inc;
    argvlen[4] = NGX_HTTP_LOOM_ID_LEN;

    (void) ngx_http_loom_request_script(r, ngx_http_loom_register_reply,
                                        NGX_HTTP_LOOM_SCRIPT_REGISTER, 2,
                                        5, argv, argvlen);
}


static void
ngx_http_loom_register_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    json_t                   *existing, *proposed;
    ngx_int_t                 rc;
    ngx_str_t                 msg;
    json_error_t              jerr;
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->session == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (reply->element[0]->integer == 1) {
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r,
                                             &ngx_http_loom_empty_object));
        return;
    }

    /* the topic exists: fine if the schema is the same */

    rc = NGX_DECLINED;

    if (reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        existing = json_loadb(reply->element[1]->str,
                              reply->element[1]->len,
                              JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);
        proposed = json_loadb((char *) r->payload.data, r->payload.len,
                              JSON_DECODE_INT_AS_REAL|JSON_ALLOW_NUL, &jerr);

        if (existing && proposed) {
            rc = ngx_http_loom_schema_same(existing, proposed);
        }

        json_decref(existing);
        json_decref(proposed);
    }

    if (rc == NGX_OK) {
        ngx_http_loom_request_finish(r, ngx_http_loom_ack(r,
                                             &ngx_http_loom_empty_object));
        return;
    }

    ngx_str_set(&msg, "cannot register topic, topic already exists with "
                      "different schema. Try updating schema");
    ngx_http_loom_request_error(r, 500, &msg, 1);
}


/* unregisterTopic */

static void
ngx_http_loom_unregister(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                *key, *index, *control;
    const char               *argv[5];
    size_t                    argvlen[5];
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    key = &r->key;

    index = ngx_http_loom_store_index(ctx->worker->store);
    control = ngx_http_loom_store_control(ctx->worker->store);

    argv[0] = (char *) key->data;
    argvlen[0] = key->len;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;
    argv[2] = (char *) r->name.data;
    argvlen[2] = r->name.len;
    argv[3] = (char *) key->data;
    argvlen[3] = key->len + 4;
    argv[4] = (char *) control->data;
    argvlen[4] = control->len;

    (void) ngx_http_loom_request_script(r, ngx_http_loom_unregister_reply,
                                        NGX_HTTP_LOOM_SCRIPT_UNREGISTER, 2,
                                        5, argv, argvlen);
}


static void
ngx_http_loom_unregister_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_str_t                 msg[2];
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->session == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    if (reply->integer == 0) {
        ngx_str_set(&msg[0], "cannot unregister topic. "
                             "topic doesn't exist with name: ");
        msg[1] = r->name;
        ngx_http_loom_request_error(r, 500, msg, 2);
        return;
    }

    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/* listTopics */

static void
ngx_http_loom_list(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                *index;
    const char               *argv[2];
    size_t                    argvlen[2];
    ngx_http_loom_request_t  *r;

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        return;
    }

    index = ngx_http_loom_store_index(ctx->worker->store);

    argv[0] = "HGETALL";
    argvlen[0] = 7;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;

    (void) ngx_http_loom_request_command(r, ngx_http_loom_list_reply,
                                         2, argv, argvlen);
}


static int ngx_libc_cdecl
ngx_http_loom_list_cmp(const void *one, const void *two)
{
    redisReply  *a, *b;

    /* pairs of (name, value): by name */

    a = ((redisReply **) one)[0];
    b = ((redisReply **) two)[0];

    return ngx_memn2cmp((u_char *) a->str, (u_char *) b->str, a->len, b->len);
}


static void
ngx_http_loom_list_reply(ngx_http_loom_store_call_t *call, redisReply *reply)
{
    u_char                   *p;
    size_t                    len, i, n;
    ngx_str_t                 data, msg;
    redisReply              **pairs, *name, *value;
    ngx_http_loom_request_t  *r;
    ngx_http_loom_session_t  *s;

    r = (ngx_http_loom_request_t *) call;
    s = r->session;

    if (s == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 2)
    {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    n = reply->elements / 2;

    if (n == 0) {
        /* as the original: null, not [] */
        ngx_http_loom_request_finish(r, ngx_http_loom_response(s->worker,
                                     &r->id,
                                     &ngx_http_loom_actions[r->action].quoted,
                                     200, NULL, 0, &ngx_http_loom_null));
        return;
    }

    /* [{"name":"<name>","schema":{"version":v,"schema":{...}}},...] */

    len = 2;

    for (i = 0; i < reply->elements; i += 2) {
        name = reply->element[i];
        value = reply->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING)
        {
            ngx_http_loom_request_fail(r, NULL);
            return;
        }

        len += sizeof("{\"name\":\"\",\"schema\":},") - 1 + value->len
               + ngx_http_loom_json_escape_len((u_char *) name->str,
                                               name->len);
    }

    pairs = ngx_alloc(reply->elements * sizeof(redisReply *),
                      s->connection->log);
    data.data = ngx_alloc(len, s->connection->log);

    if (pairs == NULL || data.data == NULL) {
        if (pairs) {
            ngx_free(pairs);
        }

        if (data.data) {
            ngx_free(data.data);
        }

        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_request_error(r, 500, &msg, 1);
        return;
    }

    ngx_memcpy(pairs, reply->element, reply->elements * sizeof(redisReply *));

    /* sorted by name: the original's order was random */
    ngx_qsort(pairs, n, 2 * sizeof(redisReply *), ngx_http_loom_list_cmp);

    p = data.data;
    *p++ = '[';

    for (i = 0; i < n; i++) {
        name = pairs[2 * i];
        value = pairs[2 * i + 1];

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"name\":\"", 9);
        p = ngx_http_loom_json_escape(p, (u_char *) name->str, name->len);
        p = ngx_cpymem(p, "\",\"schema\":", 11);
        p = ngx_cpymem(p, value->str, value->len);
        *p++ = '}';
    }

    *p++ = ']';
    data.len = p - data.data;

    ngx_free(pairs);

    ngx_http_loom_request_finish(r, ngx_http_loom_response(s->worker, &r->id,
                                     &ngx_http_loom_actions[r->action].quoted,
                                     200, NULL, 0, &data));
    ngx_free(data.data);
}


/* updateSchema */

static void
ngx_http_loom_update(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                 msg;
    ngx_str_t                *key, *index, *control;
    const char               *argv[5];
    size_t                    argvlen[5];
    ngx_http_loom_request_t  *r;

    if (ctx->env.data.type != NGX_HTTP_LOOM_JSON_OBJECT) {
        ngx_str_set(&msg, "data payload could not be parsed");
        ngx_http_loom_answer_error(ctx, 400, &msg, 1);
        return;
    }

    r = ngx_http_loom_request_create(ctx, ctx->env.data.raw.len);
    if (r == NULL) {
        return;
    }

    ngx_memcpy(r->payload.data, ctx->env.data.raw.data,
               ctx->env.data.raw.len);
    r->payload.len = ctx->env.data.raw.len;

    key = &r->key;

    index = ngx_http_loom_store_index(ctx->worker->store);
    control = ngx_http_loom_store_control(ctx->worker->store);

    argv[0] = (char *) key->data;
    argvlen[0] = key->len;
    argv[1] = (char *) index->data;
    argvlen[1] = index->len;
    argv[2] = (char *) r->name.data;
    argvlen[2] = r->name.len;
    argv[3] = (char *) r->payload.data;
    argvlen[3] = r->payload.len;
    argv[4] = (char *) control->data;
    argvlen[4] = control->len;

    (void) ngx_http_loom_request_script(r, ngx_http_loom_update_reply,
                                        NGX_HTTP_LOOM_SCRIPT_UPDATE, 2,
                                        5, argv, argvlen);
}


static void
ngx_http_loom_update_reply(ngx_http_loom_store_call_t *call,
    redisReply *reply)
{
    ngx_str_t                 msg[3];
    ngx_http_loom_topic_t    *t;
    ngx_http_loom_request_t  *r;

    r = (ngx_http_loom_request_t *) call;

    if (r->session == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (reply && reply->type == REDIS_REPLY_NIL) {
        ngx_str_set(&msg[0], "cannot update schema for topic ");
        msg[1] = r->name;
        ngx_str_set(&msg[2], ". Topic doesn't exist");
        ngx_http_loom_request_error(r, 500, msg, 3);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_loom_request_fail(r, reply);
        return;
    }

    /* the control channel tells the other workers */

    t = ngx_http_loom_topic_lookup(r->session->worker, &r->name);

    if (t) {
        ngx_http_loom_topic_drop_schema(t);
        ngx_http_loom_topic_check(t);
    }

    ngx_http_loom_request_finish(r, ngx_http_loom_ack(r, NULL));
}


/* requests */

static ngx_http_loom_request_t *
ngx_http_loom_request_create(ngx_http_loom_ctx_t *ctx, ngx_uint_t extra)
{
    u_char                   *p;
    ngx_str_t                *name, *prefix, msg;
    ngx_http_loom_session_t  *s;
    ngx_http_loom_request_t  *r;

    s = ctx->session;
    name = &ctx->env.topic_str;
    prefix = ngx_http_loom_store_prefix(ctx->worker->store);

    r = ngx_alloc(sizeof(ngx_http_loom_request_t) + ctx->id.len + name->len
                  + extra + prefix->len + name->len + sizeof("{t:}:msg") - 1,
                  s->connection->log);
    if (r == NULL) {
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_answer_error(ctx, 500, &msg, 1);
        return NULL;
    }

    ngx_memzero(r, sizeof(ngx_http_loom_request_t));

    r->session = s;
    r->action = ctx->index;
    r->state = NGX_HTTP_LOOM_REQ_REDIS;
    r->require_ack = ctx->env.require_ack_flag;

    p = (u_char *) r + sizeof(ngx_http_loom_request_t);

    r->id.data = p;
    r->id.len = ctx->id.len;
    p = ngx_cpymem(p, ctx->id.data, ctx->id.len);

    r->name.data = p;
    r->name.len = name->len;
    p = ngx_cpymem(p, name->data, name->len);

    r->payload.data = p;
    p += extra;

    /* the key P{t:<name>}, followed by ":msg" for the channel */

    prefix = ngx_http_loom_store_prefix(ctx->worker->store);

    r->key.data = p;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, "{t:", 3);
    p = ngx_cpymem(p, name->data, name->len);
    *p++ = '}';
    r->key.len = p - r->key.data;
    ngx_memcpy(p, ":msg", 4);

    if (ctx->position) {
        ngx_queue_insert_tail(ctx->position, &r->queue);

    } else {
        ngx_queue_insert_tail(&s->requests, &r->queue);
    }

    s->inflight++;

    return r;
}


static void
ngx_http_loom_request_finish(ngx_http_loom_request_t *r,
    ngx_http_loom_frame_t *response)
{
    ngx_http_loom_session_t  *s;

    s = r->session;

    r->response = response;
    r->state = NGX_HTTP_LOOM_REQ_DONE;

    if (s == NULL) {
        ngx_http_loom_request_free(r);
        return;
    }

    if (s->barriers == 0) {
        ngx_http_loom_protocol_run_deferred(s);
        return;
    }

    ngx_http_loom_protocol_flush(s);
}


static void
ngx_http_loom_request_unbarrier(ngx_http_loom_request_t *r)
{
    ngx_http_loom_session_t  *s;

    if (!r->barrier) {
        return;
    }

    r->barrier = 0;
    s = r->session;

    if (s && s->barriers) {
        s->barriers--;
    }
}


static void
ngx_http_loom_request_free(ngx_http_loom_request_t *r)
{
    if (r->barrier && r->session && r->session->barriers) {
        r->session->barriers--;
    }

    if (r->response) {
        ngx_http_loom_frame_release(r->response);
    }

    if (r->data) {
        json_decref(r->data);
    }

    ngx_free(r);
}


static ngx_int_t
ngx_http_loom_request_command(ngx_http_loom_request_t *r,
    ngx_http_loom_store_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_int_t    rc;
    ngx_str_t    msg[2];
    const char  *reason;

    r->call.handler = handler;
    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    rc = ngx_http_loom_store_command(r->session->worker->store, &r->call,
                                     argc, argv, argvlen, &reason);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (r->action == NGX_HTTP_LOOM_GET) {
        /* get words its storage errors as the original did */
        ngx_str_set(&msg[0], "couldn't get value for topic with error: ");

    } else {
        ngx_str_set(&msg[0], "storage unavailable: ");
    }
    msg[1].data = (u_char *) reason;
    msg[1].len = ngx_strlen(reason);

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, msg, 2);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_loom_request_script(ngx_http_loom_request_t *r,
    ngx_http_loom_store_handler_pt handler, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_int_t    rc;
    ngx_str_t    msg[2];
    const char  *reason;

    r->call.handler = handler;
    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    rc = ngx_http_loom_store_script(r->session->worker->store, &r->call,
                                    script, nkeys, argc, argv, argvlen,
                                    &reason);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    ngx_str_set(&msg[0], "storage unavailable: ");
    msg[1].data = (u_char *) reason;
    msg[1].len = ngx_strlen(reason);

    ngx_http_loom_request_unbarrier(r);
    ngx_http_loom_request_error(r, 500, msg, 2);

    return NGX_ERROR;
}


/* a failed or unexpected Redis reply */

static void
ngx_http_loom_request_fail(ngx_http_loom_request_t *r, redisReply *reply)
{
    ngx_str_t  msg[2];

    if (reply == NULL) {
        ngx_str_set(&msg[0], "storage unavailable: connection to redis lost");
        ngx_http_loom_request_error(r, 500, msg, 1);
        return;
    }

    ngx_str_set(&msg[0], "storage error: ");

    if (reply->type == REDIS_REPLY_ERROR) {
        msg[1].data = (u_char *) reply->str;
        msg[1].len = reply->len;

        ngx_log_error(NGX_LOG_ERR, r->session->connection->log, 0,
                      "loom: redis answered \"%V\"", &msg[1]);

    } else {
        ngx_str_set(&msg[1], "unexpected reply from redis");
    }

    ngx_http_loom_request_error(r, 500, msg, 2);
}


static void
ngx_http_loom_request_error(ngx_http_loom_request_t *r, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n)
{
    ngx_http_loom_request_finish(r, ngx_http_loom_response(
                                     r->session->worker, &r->id,
                                     &ngx_http_loom_actions[r->action].quoted,
                                     code, msg, n, NULL));
}


/* answers */

static void
ngx_http_loom_answer(ngx_http_loom_ctx_t *ctx, ngx_http_loom_frame_t *f)
{
    ngx_http_loom_session_t  *s;
    ngx_http_loom_request_t  *r;

    s = ctx->session;

    if (f == NULL) {
        return;
    }

    if (ctx->position == NULL && ngx_queue_empty(&s->requests)) {
        (void) ngx_http_loom_session_send(s, f);
        ngx_http_loom_frame_release(f);
        return;
    }

    /* earlier requests are still under way: wait in line */

    r = ngx_alloc(sizeof(ngx_http_loom_request_t), s->connection->log);
    if (r == NULL) {
        ngx_http_loom_frame_release(f);
        return;
    }

    ngx_memzero(r, sizeof(ngx_http_loom_request_t));

    r->session = s;
    r->state = NGX_HTTP_LOOM_REQ_DONE;
    r->response = f;

    if (ctx->position) {
        ngx_queue_insert_tail(ctx->position, &r->queue);

    } else {
        ngx_queue_insert_tail(&s->requests, &r->queue);
    }

    s->inflight++;

    ngx_http_loom_protocol_flush(s);
}


static void
ngx_http_loom_answer_error(ngx_http_loom_ctx_t *ctx, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n)
{
    ngx_http_loom_answer(ctx, ngx_http_loom_response(ctx->worker, &ctx->id,
                                                     &ctx->action_quoted,
                                                     code, msg, n, NULL));
}


static ngx_http_loom_frame_t *
ngx_http_loom_ack(ngx_http_loom_request_t *r, ngx_str_t *data)
{
    if (!r->require_ack) {
        return NULL;
    }

    return ngx_http_loom_response(r->session->worker, &r->id,
                                  &ngx_http_loom_actions[r->action].quoted,
                                  200, NULL, 0, data);
}


/*
 * {"id":..,"action":..,"code":..,"message":"..","data":..,"type":"response"}
 * with the id and action as the client sent them
 */

static ngx_http_loom_frame_t *
ngx_http_loom_response(ngx_http_loom_worker_t *w, ngx_str_t *id,
    ngx_str_t *action, ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n,
    ngx_str_t *data)
{
    u_char                 *p;
    size_t                  len;
    ngx_uint_t              i;
    ngx_http_loom_frame_t  *f;

    len = sizeof("{\"id\":,\"action\":,\"code\":000,\"type\":\"response\"}\n")
          - 1 + id->len + action->len;

    if (n) {
        len += sizeof(",\"message\":\"\"") - 1;

        for (i = 0; i < n; i++) {
            len += ngx_http_loom_json_escape_len(msg[i].data, msg[i].len);
        }
    }

    if (data) {
        len += sizeof(",\"data\":") - 1 + data->len;
    }

    f = ngx_http_loom_frame_alloc(NGX_HTTP_LOOM_WS_TEXT, len, &p);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(p, "{\"id\":", 6);
    p = ngx_cpymem(p, id->data, id->len);
    p = ngx_cpymem(p, ",\"action\":", 10);
    p = ngx_cpymem(p, action->data, action->len);
    p = ngx_sprintf(p, ",\"code\":%ui", code);

    if (n) {
        p = ngx_cpymem(p, ",\"message\":\"", 12);

        for (i = 0; i < n; i++) {
            p = ngx_http_loom_json_escape(p, msg[i].data, msg[i].len);
        }

        *p++ = '"';
    }

    if (data) {
        p = ngx_cpymem(p, ",\"data\":", 8);
        p = ngx_cpymem(p, data->data, data->len);
    }

    p = ngx_cpymem(p, ",\"type\":\"response\"}\n", 20);

    if (w->stats) {
        if (code == 400) {
            w->stats->rejected++;

        } else if (code >= 500) {
            w->stats->errors++;
        }
    }

    return f;
}
