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
#include "ngx_http_loom_schemas.h"


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

    /* revisions (docs/protocol.md section 15.7) */
    { ngx_string("history"), ngx_string("\"history\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, 0 },
      ngx_http_loom_history },

    /* topic schemas (docs/schemas.md section 12) */
    { ngx_string("getSchema"), ngx_string("\"getSchema\""),
      { NGX_HTTP_LOOM_CHECK_TOPIC, 0 },
      ngx_http_loom_get_schema },

    /* ngx_http_loom_access.c */
    { ngx_string("refreshToken"), ngx_string("\"refreshToken\""),
      { 0, 0 },
      ngx_http_loom_refresh },

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

    /* what the credential allows: answered 403 if not this */

    if (ngx_http_loom_access_request(&ctx) != NGX_OK) {
        return;
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
