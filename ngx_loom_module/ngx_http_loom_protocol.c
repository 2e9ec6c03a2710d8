/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_shm.h"


/*
 * Decoding, checks and the action table.  Each request gets its answers in
 * the order it came, and takes effect in that order: the queue of
 * ngx_http_loom_request.c keeps a request waiting for Redis in its place,
 * and the messages that come while one that needs more than one step is
 * under way (a subscribe until its channel is live, a publish until its
 * schema is known) are kept as received and handed back here in turn.
 */


#define NGX_HTTP_LOOM_CHECK_TOPIC      1
#define NGX_HTTP_LOOM_CHECK_DATA       2


static void ngx_http_loom_protocol_dispatch(ngx_http_loom_requests_t *rq,
    u_char *data, size_t len, ngx_queue_t *position);
static ngx_int_t ngx_http_loom_protocol_check(ngx_http_loom_ctx_t *ctx,
    ngx_uint_t check);
static ngx_http_loom_frame_t *ngx_http_loom_frame(ngx_http_loom_worker_t *w,
    ngx_str_t *id, ngx_str_t *action, ngx_uint_t code, ngx_str_t *msg,
    ngx_uint_t n, ngx_str_t *data, ngx_str_t *cursor);
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
      ngx_http_loom_unsubscribe },

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


void
ngx_http_loom_protocol_init(ngx_http_loom_session_t *s)
{
    s->requests.dispatch = ngx_http_loom_protocol_dispatch;
}


void
ngx_http_loom_protocol_message(ngx_http_loom_session_t *s, u_char *data,
    size_t len)
{
    ngx_http_loom_requests_message(&s->requests, data, len);
}


void
ngx_http_loom_protocol_session_closed(ngx_http_loom_session_t *s)
{
    ngx_http_loom_requests_close(&s->requests);
}


static void
ngx_http_loom_protocol_dispatch(ngx_http_loom_requests_t *rq, u_char *data,
    size_t len, ngx_queue_t *position)
{
    u_char                   *p, errbuf[NGX_HTTP_LOOM_JSON_ERRLEN];
    ngx_str_t                 err, msg[2];
    ngx_uint_t                i;
    ngx_http_loom_ctx_t       ctx;
    ngx_http_loom_worker_t   *w;
    ngx_http_loom_action_t   *a;
    ngx_http_loom_session_t  *s;

    s = rq->data;
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


/* requests */

ngx_http_loom_request_t *
ngx_http_loom_request_create(ngx_http_loom_ctx_t *ctx, ngx_uint_t extra)
{
    u_char                   *p;
    ngx_str_t                *name, *prefix, msg;
    ngx_http_loom_session_t  *s;
    ngx_http_loom_request_t  *r;

    s = ctx->session;
    name = &ctx->env.topic_str;
    prefix = ngx_http_loom_store_prefix(ctx->worker->store);

    r = ngx_http_loom_request_alloc(&s->requests,
                                    sizeof(ngx_http_loom_request_t)
                                    + ctx->id.len + name->len + extra
                                    + prefix->len + name->len
                                    + sizeof("{t:}:msg") - 1,
                                    ctx->position);
    if (r == NULL) {
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_answer_error(ctx, 500, &msg, 1);
        return NULL;
    }

    r->action = ctx->index;
    r->require_ack = ctx->env.require_ack_flag;
    r->call.handler = ngx_http_loom_request_reply;

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

    r->key.data = p;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, "{t:", 3);
    p = ngx_cpymem(p, name->data, name->len);
    *p++ = '}';
    r->key.len = p - r->key.data;
    ngx_memcpy(p, ":msg", 4);

    return r;
}


/*
 * Sends a command (script NGX_HTTP_LOOM_COMMAND) or a script to Redis; the
 * reply goes to the reply handler, unless the client has left meanwhile.
 * A request Redis cannot take is answered 500 at once.
 */

ngx_int_t
ngx_http_loom_request_send(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, ngx_uint_t script, int nkeys, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_int_t                rc;
    ngx_str_t                msg[2];
    const char              *reason;
    ngx_http_loom_store_t   *store;

    r->reply = reply;
    r->state = NGX_HTTP_LOOM_REQ_REDIS;

    store = r->session->worker->store;

    if (script == NGX_HTTP_LOOM_COMMAND) {
        rc = ngx_http_loom_store_command(store, &r->call, argc, argv,
                                         argvlen, &reason);

    } else {
        rc = ngx_http_loom_store_script(store, &r->call, script, nkeys,
                                        argc, argv, argvlen, &reason);
    }

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


ngx_int_t
ngx_http_loom_hash_command(ngx_http_loom_request_t *r,
    ngx_http_loom_reply_pt reply, char *command, char *field, char *field2)
{
    int          argc;
    size_t       argvlen[4];
    const char  *argv[4];

    argv[0] = command;
    argvlen[0] = ngx_strlen(command);
    argv[1] = (char *) r->key.data;
    argvlen[1] = r->key.len;
    argv[2] = field;
    argvlen[2] = ngx_strlen(field);
    argc = 3;

    if (field2) {
        argv[3] = field2;
        argvlen[3] = ngx_strlen(field2);
        argc = 4;
    }

    return ngx_http_loom_request_send(r, reply, NGX_HTTP_LOOM_COMMAND, 0,
                                      argc, argv, argvlen);
}


/* a failed or unexpected Redis reply */

void
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


void
ngx_http_loom_request_error(ngx_http_loom_request_t *r, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n)
{
    ngx_http_loom_request_finish(r, ngx_http_loom_response(r, code, msg, n,
                                                           NULL));
}


/* answers */

void
ngx_http_loom_answer_error(ngx_http_loom_ctx_t *ctx, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n)
{
    ngx_http_loom_requests_answer(&ctx->session->requests, ctx->position,
                                  ngx_http_loom_frame(ctx->worker, &ctx->id,
                                                      &ctx->action_quoted,
                                                      code, msg, n, NULL,
                                                      NULL));
}


ngx_http_loom_frame_t *
ngx_http_loom_ack(ngx_http_loom_request_t *r, ngx_str_t *data)
{
    if (!r->require_ack) {
        return NULL;
    }

    return ngx_http_loom_response(r, 200, NULL, 0, data);
}


ngx_http_loom_frame_t *
ngx_http_loom_response(ngx_http_loom_request_t *r, ngx_uint_t code,
    ngx_str_t *msg, ngx_uint_t n, ngx_str_t *data)
{
    return ngx_http_loom_frame(r->session->worker, &r->id,
                               &ngx_http_loom_actions[r->action].quoted,
                               code, msg, n, data, NULL);
}


ngx_http_loom_frame_t *
ngx_http_loom_response_more(ngx_http_loom_request_t *r, ngx_str_t *data,
    ngx_str_t *cursor)
{
    return ngx_http_loom_frame(r->session->worker, &r->id,
                               &ngx_http_loom_actions[r->action].quoted,
                               200, NULL, 0, data,
                               cursor->len ? cursor : NULL);
}


/*
 * {"id":..,"action":..,"code":..,"message":"..","data":..,"cursor":"..",
 * "type":"response"} with the id and action as the client sent them; the
 * cursor (digits) only on a listTopics page with more after it
 */

static ngx_http_loom_frame_t *
ngx_http_loom_frame(ngx_http_loom_worker_t *w, ngx_str_t *id,
    ngx_str_t *action, ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n,
    ngx_str_t *data, ngx_str_t *cursor)
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

    if (cursor) {
        len += sizeof(",\"cursor\":\"\"") - 1 + cursor->len;
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

    if (cursor) {
        p = ngx_cpymem(p, ",\"cursor\":\"", 11);
        p = ngx_cpymem(p, cursor->data, cursor->len);
        *p++ = '"';
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
