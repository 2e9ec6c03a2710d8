/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_access.h"


/*
 * The permission check of every request, the topics listTopics shows, and
 * refreshToken.  The check runs in the dispatch, before the action's
 * handler: it compares the topic with the credential's compiled patterns
 * and allocates nothing.
 */


typedef struct {
    ngx_str_t                  name;
    ngx_uint_t                 op;
} ngx_http_loom_access_op_t;


/* actions not named here (unsubscribe, listTopics, ...) need nothing */

static ngx_http_loom_access_op_t  ngx_http_loom_access_ops[] = {
    { ngx_string("publish"), NGX_HTTP_LOOM_PERM_PUBLISH },
    { ngx_string("sendWithoutSave"), NGX_HTTP_LOOM_PERM_PUBLISH },
    { ngx_string("subscribe"), NGX_HTTP_LOOM_PERM_SUBSCRIBE },
    { ngx_string("get"), NGX_HTTP_LOOM_PERM_SUBSCRIBE },
    { ngx_string("history"), NGX_HTTP_LOOM_PERM_SUBSCRIBE },
    { ngx_string("getSchema"), NGX_HTTP_LOOM_PERM_SUBSCRIBE },
    { ngx_string("registerTopic"), NGX_HTTP_LOOM_PERM_ADMIN },
    { ngx_string("updateSchema"), NGX_HTTP_LOOM_PERM_ADMIN },
    { ngx_string("unregisterTopic"), NGX_HTTP_LOOM_PERM_ADMIN },
    { ngx_null_string, 0 }
};


ngx_int_t
ngx_http_loom_access_request(ngx_http_loom_ctx_t *ctx)
{
    ngx_str_t                   msg[3];
    ngx_http_loom_access_t     *a;
    ngx_http_loom_access_op_t  *op;

    a = ctx->session->access;

    if (a == NULL) {
        return NGX_OK;
    }

    for (op = ngx_http_loom_access_ops; op->name.len; op++) {
        if (op->name.len == ctx->action->name.len
            && ngx_strncmp(op->name.data, ctx->action->name.data,
                           op->name.len) == 0)
        {
            break;
        }
    }

    if (op->name.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_loom_perm_check(a->perm, op->op, &ctx->env.topic_str,
                                 &a->vars)
        == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_str_set(&msg[0], "forbidden: ");
    msg[1] = ctx->env.topic_str;
    ngx_http_loom_answer_error(ctx, 403, msg, 2);

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_loom_access_visible(ngx_http_loom_session_t *s, ngx_str_t *topic)
{
    ngx_http_loom_access_t  *a;

    a = s->access;

    if (a == NULL) {
        return NGX_OK;
    }

    return ngx_http_loom_perm_visible(a->perm, topic, &a->vars);
}


/*
 * {"action":"refreshToken","data":{"token":"<jwt>"}}: a new token for the
 * same subject replaces the connection's, with its permissions and its
 * expiry.  The expiry timer (ngx_http_loom_auth.c) looks at a->expires
 * when it fires and waits on if it has moved.
 */

void
ngx_http_loom_refresh(ngx_http_loom_ctx_t *ctx)
{
    char                         err[NGX_HTTP_LOOM_JWT_ERRLEN];
    json_t                      *data, *token;
    ngx_int_t                    rc;
    ngx_str_t                    msg[2];
    json_error_t                 jerr;
    ngx_http_loom_access_t      *a;
    ngx_http_loom_session_t     *s;
    ngx_http_loom_request_t     *r;
    ngx_http_loom_jwt_claims_t  *claims;

    s = ctx->session;
    a = s->access;

    if (a == NULL || a->claims == NULL || s->conf->jwt == NULL) {
        ngx_str_set(&msg[0], "forbidden: the connection has no token");
        ngx_http_loom_answer_error(ctx, 403, msg, 1);
        return;
    }

    data = NULL;
    token = NULL;

    if (ctx->env.data.type == NGX_HTTP_LOOM_JSON_OBJECT) {
        data = json_loadb((char *) ctx->env.data.raw.data,
                          ctx->env.data.raw.len, 0, &jerr);
        token = data ? json_object_get(data, "token") : NULL;
    }

    if (token == NULL || !json_is_string(token)) {
        json_decref(data);
        ngx_str_set(&msg[0], "data must be {\"token\": \"<token>\"}");
        ngx_http_loom_answer_error(ctx, 400, msg, 1);
        return;
    }

    claims = NULL;
    rc = ngx_http_loom_jwt_verify(s->conf->jwt,
                                  (u_char *) json_string_value(token),
                                  json_string_length(token), ngx_time(),
                                  &claims, err, sizeof(err));
    json_decref(data);

    if (rc == NGX_ERROR) {
        ngx_str_set(&msg[0], "out of memory");
        ngx_http_loom_answer_error(ctx, 500, msg, 1);
        return;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "loom: refreshToken refused: %s", err);
        ngx_str_set(&msg[0], "unauthorized: ");
        msg[1].data = (u_char *) ngx_http_loom_jwt_reason(rc);
        msg[1].len = ngx_strlen(msg[1].data);
        ngx_http_loom_answer_error(ctx, 401, msg, 2);
        return;
    }

    if (claims->sub.len != a->claims->sub.len
        || ngx_strncmp(claims->sub.data, a->claims->sub.data,
                       claims->sub.len) != 0)
    {
        ngx_http_loom_jwt_claims_free(claims);
        ngx_str_set(&msg[0], "forbidden: the token is for another subject");
        ngx_http_loom_answer_error(ctx, 403, msg, 1);
        return;
    }

    r = ngx_http_loom_request_create(ctx, 0);
    if (r == NULL) {
        ngx_http_loom_jwt_claims_free(claims);
        return;
    }

    /* sub is the same: a->vars.sub may point into the new claims */

    ngx_http_loom_jwt_claims_free(a->claims);
    a->claims = claims;
    a->perm = claims->perm;
    a->vars.sub = claims->sub;
    a->expires = claims->exp + s->conf->jwt_leeway;

    ngx_http_loom_request_finish(r, ngx_http_loom_response(r, 200, NULL, 0,
                                                           NULL));
}
