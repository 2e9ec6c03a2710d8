/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"
#include "ngx_http_loom_session.h"
#include "ngx_http_loom_access.h"
#include "ngx_http_loom_cred.h"
#include "ngx_http_loom_keyfile.h"
#include "ngx_http_loom_jwt.h"
#include "ngx_http_loom_perm.h"


/*
 * The credential of a connection, checked before the upgrade
 * (docs/auth.md): found in the Authorization header, an entry of
 * Sec-WebSocket-Protocol or the access_token argument, then taken as a
 * token (loom_jwt), a loom_api_key or a key of loom_auth_file.  What it
 * allows is kept for the session (ngx_http_loom_access_t); a token's
 * expiry ends the session unless refreshToken moves it.
 */


/* the longest wait of the expiry timer before it looks again */
#define NGX_HTTP_LOOM_AUTH_MAX_WAIT  86400000


static ngx_int_t ngx_http_loom_auth_credential(ngx_http_request_t *r,
    ngx_str_t *cred, ngx_str_t *raw);
static ngx_uint_t ngx_http_loom_auth_api_key(ngx_array_t *keys,
    ngx_str_t *cred, ngx_str_t *raw);
static ngx_uint_t ngx_http_loom_auth_equal(u_char *given, size_t len,
    ngx_str_t *key);
static void ngx_http_loom_auth_cleanup(void *data);
static void ngx_http_loom_auth_expiry(ngx_event_t *ev);
static void ngx_http_loom_auth_arm(ngx_http_loom_access_t *a);
static void ngx_http_loom_auth_file_cleanup(void *data);
static void ngx_http_loom_jwt_cleanup(void *data);


/*
 * NGX_OK: allowed, *access is what the credential allows, or NULL when
 * the location asks for no credential; NGX_DECLINED: 401; NGX_ERROR.
 */

ngx_int_t
ngx_http_loom_auth_check(ngx_http_request_t *r,
    ngx_http_loom_loc_conf_t *llcf, ngx_pool_t *pool, void **access)
{
    char                         err[NGX_HTTP_LOOM_JWT_ERRLEN];
    ngx_int_t                    rc;
    ngx_str_t                    cred, raw;
    ngx_connection_t            *c;
    ngx_pool_cleanup_t          *cln;
    ngx_http_loom_key_t         *key;
    ngx_http_loom_access_t      *a;
    ngx_http_loom_jwt_claims_t  *claims;

    *access = NULL;

    if ((llcf->api_keys == NULL || llcf->api_keys->nelts == 0)
        && llcf->auth_file == NULL && llcf->jwt == NULL)
    {
        return NGX_OK;
    }

    c = r->connection;

    rc = ngx_http_loom_auth_credential(r, &cred, &raw);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "loom: client sent no or a malformed credential");
        return NGX_DECLINED;
    }

    a = ngx_pcalloc(pool, sizeof(ngx_http_loom_access_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    if (llcf->jwt && ngx_http_loom_jwt_is_token(cred.data, cred.len)) {

        cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        claims = NULL;
        rc = ngx_http_loom_jwt_verify(llcf->jwt, cred.data, cred.len,
                                      ngx_time(), &claims, err, sizeof(err));

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "loom: token refused: %s", err);
            return NGX_DECLINED;
        }

        cln->handler = ngx_http_loom_auth_cleanup;
        cln->data = a;

        a->claims = claims;
        a->perm = claims->perm;
        a->vars.sub = claims->sub;
        a->expires = claims->exp + llcf->jwt_leeway;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "loom: token of \"%V\" accepted", &claims->sub);

        *access = a;
        return NGX_OK;
    }

    if (ngx_http_loom_auth_api_key(llcf->api_keys, &cred, &raw)) {
        a->perm = ngx_http_loom_perm_everything();
        *access = a;
        return NGX_OK;
    }

    if (llcf->auth_file) {
        key = ngx_http_loom_keyfile_lookup(llcf->auth_file, cred.data,
                                           cred.len);
        if (key) {
            a->perm = key->perm;
            a->vars.sub = key->name;

            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "loom: key \"%V\" accepted", &key->name);

            *access = a;
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "loom: client sent a wrong credential");

    return NGX_DECLINED;
}


/*
 * The first credential present: Authorization, Sec-WebSocket-Protocol,
 * access_token.  raw is the whole Authorization value (a loom_api_key
 * may be given as it is, as before), else the same as cred.
 */

static ngx_int_t
ngx_http_loom_auth_credential(ngx_http_request_t *r, ngx_str_t *cred,
    ngx_str_t *raw)
{
    u_char           *buf;
    ngx_int_t         rc;
    ngx_str_t         found;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h && ngx_http_loom_cred_authorization(&h->value, cred) == NGX_OK) {
        *raw = h->value;
        return NGX_OK;
    }

    n = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Sec-WebSocket-Protocol") - 1
            || ngx_strncasecmp(h[i].key.data,
                               (u_char *) "Sec-WebSocket-Protocol",
                               h[i].key.len)
               != 0)
        {
            continue;
        }

        rc = ngx_http_loom_cred_subprotocol(&h[i].value, &found);

        if (rc == NGX_ERROR) {
            return NGX_DECLINED;
        }

        if (rc == NGX_OK) {
            if (n++) {
                return NGX_DECLINED;      /* in two headers */
            }

            *cred = found;
        }
    }

    if (n) {
        *raw = *cred;
        return NGX_OK;
    }

    if (r->args.len == 0) {
        return NGX_DECLINED;
    }

    buf = ngx_pnalloc(r->pool, r->args.len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_loom_cred_query(&r->args, buf, cred);

    if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    *raw = *cred;

    return NGX_OK;
}


/*
 * Every configured key is compared, each in time that depends on its
 * length only, so the answer's timing does not tell how much of a key
 * was right.
 */

static ngx_uint_t
ngx_http_loom_auth_api_key(ngx_array_t *keys, ngx_str_t *cred,
    ngx_str_t *raw)
{
    ngx_str_t   *key;
    ngx_uint_t   i, match;

    if (keys == NULL) {
        return 0;
    }

    key = keys->elts;
    match = 0;

    for (i = 0; i < keys->nelts; i++) {
        match |= ngx_http_loom_auth_equal(raw->data, raw->len, &key[i]);
        match |= ngx_http_loom_auth_equal(cred->data, cred->len, &key[i]);
    }

    return match;
}


static ngx_uint_t
ngx_http_loom_auth_equal(u_char *given, size_t len, ngx_str_t *key)
{
    size_t      i;
    ngx_uint_t  diff;

    diff = (len != key->len);

    for (i = 0; i < key->len; i++) {
        diff |= key->data[i] ^ ((i < len) ? given[i] : 0);
    }

    return diff == 0;
}


/*
 * A token's subject is the connection's ClientId: *value, the ClientId
 * header or NULL, is replaced by it.  A ClientId header that says
 * otherwise is refused.  NGX_OK, or an HTTP status with *text.
 */

ngx_int_t
ngx_http_loom_auth_client_id(ngx_http_loom_session_t *s, ngx_str_t **value,
    char **text)
{
    ngx_str_t               *sub;
    ngx_http_loom_access_t  *a;

    a = s->access;

    if (a == NULL || a->claims == NULL || a->claims->sub.len == 0) {
        return NGX_OK;
    }

    sub = &a->claims->sub;

    if (*value && (*value)->len
        && ((*value)->len != sub->len
            || ngx_strncmp((*value)->data, sub->data, sub->len) != 0))
    {
        *text = "\"ClientId\" differs from the token's subject\n";
        return NGX_HTTP_BAD_REQUEST;
    }

    *value = sub;

    return NGX_OK;
}


/* the ClientId is known: {client} has its value, the expiry is armed */

void
ngx_http_loom_auth_start(ngx_http_loom_session_t *s)
{
    ngx_http_loom_access_t  *a;

    a = s->access;

    if (a == NULL) {
        return;
    }

    a->vars.client = s->client_id;

    if (a->expires == 0) {
        return;
    }

    a->expiry.handler = ngx_http_loom_auth_expiry;
    a->expiry.data = s;
    a->expiry.log = s->connection->log;
    a->expiry.cancelable = 1;

    ngx_http_loom_auth_arm(a);
}


static void
ngx_http_loom_auth_arm(ngx_http_loom_access_t *a)
{
    ngx_msec_t   wait;
    ngx_time_t  *tp;
    int64_t      left;

    tp = ngx_timeofday();

    left = (int64_t) a->expires * 1000 - ((int64_t) tp->sec * 1000 + tp->msec);

    if (left <= 0) {
        wait = 1;

    } else {
        wait = (ngx_msec_t) ngx_min(left, NGX_HTTP_LOOM_AUTH_MAX_WAIT);
    }

    ngx_add_timer(&a->expiry, wait);
}


static void
ngx_http_loom_auth_expiry(ngx_event_t *ev)
{
    ngx_http_loom_access_t   *a;
    ngx_http_loom_session_t  *s;

    s = ev->data;
    a = s->access;

    if (s->released || s->finalized || s->closing) {
        return;
    }

    if (ngx_time() < a->expires || !s->started) {

        /* refreshed since, or far away, or not taken over yet */

        if (ngx_time() >= a->expires) {
            ngx_add_timer(ev, 1000);
            return;
        }

        ngx_http_loom_auth_arm(a);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "loom: token expired, closing");

    ngx_http_loom_session_close(s, NGX_HTTP_LOOM_WS_TOKEN_EXPIRED,
                                "token expired");
}


static void
ngx_http_loom_auth_cleanup(void *data)
{
    ngx_http_loom_access_t  *a = data;

    if (a->expiry.timer_set) {
        ngx_del_timer(&a->expiry);
    }

    if (a->claims) {
        ngx_http_loom_jwt_claims_free(a->claims);
        a->claims = NULL;
    }
}


/* loom_auth_file path | off; */

char *
ngx_http_loom_auth_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_loc_conf_t *llcf = conf;

    char                     err[NGX_HTTP_LOOM_KEYFILE_ERRLEN];
    ngx_str_t               *value, path;
    ngx_pool_cleanup_t      *cln;
    ngx_http_loom_keyfile_t *kf;

    if (llcf->auth_file != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        llcf->auth_file = NULL;
        return NGX_CONF_OK;
    }

    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    kf = ngx_http_loom_keyfile_load((char *) path.data, err, sizeof(err));

    if (kf == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "loom_auth_file \"%V\": %s", &path, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_loom_auth_file_cleanup;
    cln->data = kf;

    llcf->auth_file = kf;

    return NGX_CONF_OK;
}


static void
ngx_http_loom_auth_file_cleanup(void *data)
{
    ngx_http_loom_keyfile_free(data);
}


/*
 * loom_jwt HS256|RS256|ES256 key_file [iss=...] [aud=...] [leeway=time];
 * loom_jwt off;
 */

char *
ngx_http_loom_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_loom_loc_conf_t *llcf = conf;

    char                      err[NGX_HTTP_LOOM_JWT_ERRLEN];
    time_t                    leeway;
    ngx_str_t                *value, path, iss, aud, v;
    ngx_uint_t                i;
    ngx_pool_cleanup_t       *cln;
    ngx_http_loom_jwt_conf_t *jc;

    if (llcf->jwt != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        llcf->jwt = NULL;
        llcf->jwt_leeway = 0;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts < 3) {
        return "needs an algorithm and a key file, or \"off\"";
    }

    if (!(value[1].len == 5
          && (ngx_strcmp(value[1].data, "HS256") == 0
              || ngx_strcmp(value[1].data, "RS256") == 0
              || ngx_strcmp(value[1].data, "ES256") == 0)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "loom_jwt: unknown algorithm \"%V\", "
                           "use HS256, RS256 or ES256", &value[1]);
        return NGX_CONF_ERROR;
    }

    path = value[2];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&iss);
    ngx_str_null(&aud);
    leeway = 0;

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "iss=", 4) == 0) {
            iss.data = value[i].data + 4;
            iss.len = value[i].len - 4;
            continue;
        }

        if (ngx_strncmp(value[i].data, "aud=", 4) == 0) {
            aud.data = value[i].data + 4;
            aud.len = value[i].len - 4;
            continue;
        }

        if (ngx_strncmp(value[i].data, "leeway=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            leeway = ngx_parse_time(&v, 1);

            if (leeway == (time_t) NGX_ERROR
                || leeway > NGX_HTTP_LOOM_JWT_MAX_LEEWAY)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "loom_jwt: invalid \"%V\", "
                                   "at most 1 day", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "loom_jwt: invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    jc = ngx_http_loom_jwt_conf_load((char *) value[1].data,
                                     (char *) path.data, &iss, &aud, leeway,
                                     err, sizeof(err));
    if (jc == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "loom_jwt \"%V\": %s", &path, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_loom_jwt_cleanup;
    cln->data = jc;

    llcf->jwt = jc;
    llcf->jwt_leeway = leeway;

    return NGX_CONF_OK;
}


static void
ngx_http_loom_jwt_cleanup(void *data)
{
    ngx_http_loom_jwt_conf_free(data);
}
