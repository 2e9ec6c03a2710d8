/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_clientid.h"


/*
 * The names of ClientId claims and the replies of claim.lua: no nginx
 * functions here (tests/unit/test_clientid.c).
 */


static u_char *ngx_http_loom_claim_decimal(u_char *p, uint64_t n);


/*
 * P{c:ID}: the id is the hash tag, so a claim is one key of one Redis
 * Cluster slot.  The id is taken as it is: braces in it only move the
 * tag's end, and the key stays one per id.
 */

size_t
ngx_http_loom_claim_key_len(ngx_str_t *prefix, ngx_str_t *id)
{
    return prefix->len + sizeof("{c:}") - 1 + id->len;
}


u_char *
ngx_http_loom_claim_key(u_char *p, ngx_str_t *prefix, ngx_str_t *id)
{
    p = ngx_cpymem(p, prefix->data, prefix->len);
    p = ngx_cpymem(p, "{c:", 3);
    p = ngx_cpymem(p, id->data, id->len);
    *p++ = '}';

    return p;
}


/* "<node>:<pid>:<connection number>" */

u_char *
ngx_http_loom_claim_owner(u_char *p, u_char *node, ngx_pid_t pid,
    ngx_atomic_uint_t number)
{
    p = ngx_cpymem(p, node, NGX_HTTP_LOOM_CLAIM_NODE_LEN);
    *p++ = ':';
    p = ngx_http_loom_claim_decimal(p, (uint64_t) pid);
    *p++ = ':';

    return ngx_http_loom_claim_decimal(p, (uint64_t) number);
}


ngx_uint_t
ngx_http_loom_claim_same_node(u_char *owner, size_t len, u_char *node)
{
    return len > NGX_HTTP_LOOM_CLAIM_NODE_LEN
           && owner[NGX_HTTP_LOOM_CLAIM_NODE_LEN] == ':'
           && ngx_memcmp(owner, node, NGX_HTTP_LOOM_CLAIM_NODE_LEN) == 0;
}


ngx_int_t
ngx_http_loom_claim_reply(redisReply *reply, ngx_str_t *holder)
{
    if (reply == NULL) {
        return NGX_ERROR;
    }

    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        return NGX_OK;
    }

    if (reply->type == REDIS_REPLY_STRING && reply->len > 0) {
        holder->data = (u_char *) reply->str;
        holder->len = reply->len;
        return NGX_DECLINED;
    }

    return NGX_ERROR;
}


static u_char *
ngx_http_loom_claim_decimal(u_char *p, uint64_t n)
{
    u_char   buf[NGX_INT64_LEN], *q;

    q = buf + sizeof(buf);

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, buf + sizeof(buf) - q);
}
