/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_shm.h"


/*
 * What every action uses: its request, sent to Redis, and the answer
 * frames, with the original server's envelope.
 */


static ngx_http_loom_frame_t *ngx_http_loom_frame(ngx_http_loom_worker_t *w,
    ngx_str_t *id, ngx_str_t *action, ngx_uint_t code, ngx_str_t *msg,
    ngx_uint_t n, ngx_str_t *data, ngx_str_t *cursor,
    ngx_str_t *extra);


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
                                    + ctx->id.len + name->len
                                    + NGX_ALIGNMENT - 1 + extra
                                    + prefix->len + name->len
                                    + sizeof("{t:}:msg") - 1,
                                    ctx->position);
    if (r == NULL) {
        ngx_str_set(&msg, "out of memory");
        ngx_http_loom_answer_error(ctx, 500, &msg, 1);
        return NULL;
    }

    r->action = ctx->index;
    r->action_name = &ctx->action->quoted;
    r->require_ack = ctx->env.require_ack_flag;
    r->call.handler = ngx_http_loom_request_reply;

    p = (u_char *) r + sizeof(ngx_http_loom_request_t);

    r->id.data = p;
    r->id.len = ctx->id.len;
    p = ngx_cpymem(p, ctx->id.data, ctx->id.len);

    r->name.data = p;
    r->name.len = name->len;
    p = ngx_cpymem(p, name->data, name->len);

    /* aligned: an action may keep a struct there */
    p = ngx_align_ptr(p, NGX_ALIGNMENT);
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
                                                      NULL, NULL));
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
    return ngx_http_loom_frame(r->session->worker, &r->id, r->action_name,
                               code, msg, n, data, NULL, NULL);
}


/* members of revisions after data: extra is ",\"rev\":..." as written */

ngx_http_loom_frame_t *
ngx_http_loom_response_extra(ngx_http_loom_request_t *r, ngx_uint_t code,
    ngx_str_t *data, ngx_str_t *extra)
{
    return ngx_http_loom_frame(r->session->worker, &r->id, r->action_name,
                               code, NULL, 0, data, NULL, extra);
}


/* an error with members after its message: ",\"errors\":[...]" */

ngx_http_loom_frame_t *
ngx_http_loom_response_error_extra(ngx_http_loom_request_t *r,
    ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n, ngx_str_t *extra)
{
    return ngx_http_loom_frame(r->session->worker, &r->id, r->action_name,
                               code, msg, n, NULL, NULL, extra);
}


ngx_http_loom_frame_t *
ngx_http_loom_response_more(ngx_http_loom_request_t *r, ngx_str_t *data,
    ngx_str_t *cursor)
{
    return ngx_http_loom_frame(r->session->worker, &r->id, r->action_name,
                               200, NULL, 0, data,
                               cursor->len ? cursor : NULL, NULL);
}


/*
 * {"id":..,"action":..,"code":..,"message":"..","data":..,"cursor":"..",
 * "type":"response"} with the id and action as the client sent them; the
 * cursor (digits) only on a listTopics page with more after it
 */

static ngx_http_loom_frame_t *
ngx_http_loom_frame(ngx_http_loom_worker_t *w, ngx_str_t *id,
    ngx_str_t *action, ngx_uint_t code, ngx_str_t *msg, ngx_uint_t n,
    ngx_str_t *data, ngx_str_t *cursor, ngx_str_t *extra)
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

    if (extra) {
        len += extra->len;
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

    if (extra) {
        p = ngx_cpymem(p, extra->data, extra->len);
    }

    p = ngx_cpymem(p, ",\"type\":\"response\"}\n", 20);

    if (w->stats) {
        ngx_http_loom_shm_count_answer(w->stats, code);
    }

    return f;
}
