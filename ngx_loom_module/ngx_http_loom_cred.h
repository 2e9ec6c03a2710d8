/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_CRED_H_INCLUDED_
#define _NGX_HTTP_LOOM_CRED_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Where a client puts its credential (docs/auth.md, "Credential
 * sources"): the Authorization header, the access_token query argument,
 * or an entry of Sec-WebSocket-Protocol.  These work on the strings only;
 * the credential found is then a key of the key file, a loom_api_key or a
 * token, whichever matches.
 *
 * Pure code: no nginx function calls.
 */


#define NGX_HTTP_LOOM_CRED_PROTOCOL      "dataloom.token."
#define NGX_HTTP_LOOM_CRED_PROTOCOL_LEN  15
#define NGX_HTTP_LOOM_CRED_QUERY         "access_token"
#define NGX_HTTP_LOOM_CRED_QUERY_LEN     12


/*
 * An Authorization header value: "Bearer <credential>" ("Bearer" in any
 * case, then spaces or tabs) or the raw credential, as the original
 * server reads it.  NGX_OK with cred pointing into value; NGX_DECLINED
 * when nothing is left.
 */
ngx_int_t ngx_http_loom_cred_authorization(ngx_str_t *value,
    ngx_str_t *cred);

/*
 * The access_token argument of a query string (r->args, without '?'),
 * percent-decoded ('+' is a space, as browsers' URLSearchParams writes
 * it) into buf, which must hold args->len bytes.  NGX_OK with cred in
 * buf; NGX_DECLINED: no such argument, or it is empty; NGX_ERROR: a bad
 * %-escape, a NUL byte (escaped or not), or the argument given twice.
 */
ngx_int_t ngx_http_loom_cred_query(ngx_str_t *args, u_char *buf,
    ngx_str_t *cred);

/*
 * One Sec-WebSocket-Protocol header value, a comma-separated list of
 * RFC 6455 subprotocol names.  NGX_OK with cred pointing into value at
 * what follows "dataloom.token." in its entry; NGX_DECLINED: no such
 * entry; NGX_ERROR: two such entries, an empty credential, or one with a
 * character a subprotocol name may not hold (RFC 7230 tchar).  The
 * server must not select that entry in its answer.
 */
ngx_int_t ngx_http_loom_cred_subprotocol(ngx_str_t *value, ngx_str_t *cred);


#endif /* _NGX_HTTP_LOOM_CRED_H_INCLUDED_ */
