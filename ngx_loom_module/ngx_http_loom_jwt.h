/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_JWT_H_INCLUDED_
#define _NGX_HTTP_LOOM_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_perm.h"


/*
 * Connection tokens (docs/auth.md, "Tokens"): compact JWS, one algorithm
 * per configuration (HS256, RS256 or ES256).  libjwt checks the signature;
 * everything else is checked here, before and after it:
 *
 *     the header's "alg" must be the configured one, spelled exactly (so
 *     never "none", never HS256 against an RSA key); "typ", if present,
 *     is "JWT"; "crit" is refused
 *     "exp" is required: refused once now >= exp + leeway
 *     "nbf", "iat" if present: refused when later than now + leeway
 *     "iss" must equal the configured issuer, if one is configured
 *     "aud" (a string or an array of strings) must hold the configured
 *     audience; a token with an audience is refused when none is
 *     configured
 *     "sub", if present: 1 to 256 bytes, no pattern, separator or
 *     control character (ngx_http_loom_perm_value_ok())
 *     "dataloom", if present: {"publish": [...], "subscribe": [...],
 *     "admin": [...]} in the pattern language; absent: nothing allowed
 *
 * Pure code: libc, jansson, libjwt and libcrypto, no nginx function calls.
 */


#define NGX_HTTP_LOOM_JWT_HS256        1
#define NGX_HTTP_LOOM_JWT_RS256        2
#define NGX_HTTP_LOOM_JWT_ES256        3

#define NGX_HTTP_LOOM_JWT_MAX_LEN      8192
#define NGX_HTTP_LOOM_JWT_MAX_SUB      256
#define NGX_HTTP_LOOM_JWT_MAX_LEEWAY   86400
#define NGX_HTTP_LOOM_JWT_MIN_SECRET   32

#define NGX_HTTP_LOOM_JWT_CLAIM        "dataloom"

/* enough for every message written into err */
#define NGX_HTTP_LOOM_JWT_ERRLEN       256


/* why a token is refused: ngx_http_loom_jwt_verify() returns one */
#define NGX_HTTP_LOOM_JWT_MALFORMED    1
#define NGX_HTTP_LOOM_JWT_ALGORITHM    2
#define NGX_HTTP_LOOM_JWT_SIGNATURE    3
#define NGX_HTTP_LOOM_JWT_EXPIRED      4
#define NGX_HTTP_LOOM_JWT_NOT_YET      5
#define NGX_HTTP_LOOM_JWT_IAT          6
#define NGX_HTTP_LOOM_JWT_ISSUER       7
#define NGX_HTTP_LOOM_JWT_AUDIENCE     8
#define NGX_HTTP_LOOM_JWT_SUBJECT      9
#define NGX_HTTP_LOOM_JWT_PERMISSIONS  10
#define NGX_HTTP_LOOM_JWT_CLAIM_TYPE   11


typedef struct ngx_http_loom_jwt_conf_s  ngx_http_loom_jwt_conf_t;


typedef struct {
    ngx_str_t                  sub;          /* empty: no "sub" */
    time_t                     exp;
    ngx_http_loom_perm_t      *perm;
} ngx_http_loom_jwt_claims_t;


/*
 * The verification settings.  alg is "HS256", "RS256" or "ES256"; key is
 * the secret (at least 32 bytes, one trailing newline dropped) or the
 * public key as PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY": RSA of at
 * least 2048 bits, EC on P-256); iss and aud may be NULL or empty (not
 * checked); leeway is in seconds, 0 to 86400.  NULL on error, with err
 * saying why.  Released with ngx_http_loom_jwt_conf_free().
 */
ngx_http_loom_jwt_conf_t *ngx_http_loom_jwt_conf_create(const char *alg,
    u_char *key, size_t key_len, ngx_str_t *iss, ngx_str_t *aud,
    time_t leeway, char *err, size_t errlen);

/* the same, the key read from a file at configuration time */
ngx_http_loom_jwt_conf_t *ngx_http_loom_jwt_conf_load(const char *alg,
    const char *key_file, ngx_str_t *iss, ngx_str_t *aud, time_t leeway,
    char *err, size_t errlen);

void ngx_http_loom_jwt_conf_free(ngx_http_loom_jwt_conf_t *conf);

/*
 * Verifies a token at time now.  NGX_OK: *claims is set (malloc()ed,
 * ngx_http_loom_jwt_claims_free()); NGX_ERROR: no memory; otherwise one
 * of the NGX_HTTP_LOOM_JWT_* reasons, with err saying more.  Neither
 * holds the key or the token.
 */
ngx_int_t ngx_http_loom_jwt_verify(ngx_http_loom_jwt_conf_t *conf,
    u_char *token, size_t len, time_t now,
    ngx_http_loom_jwt_claims_t **claims, char *err, size_t errlen);

void ngx_http_loom_jwt_claims_free(ngx_http_loom_jwt_claims_t *claims);

/*
 * 1 if the credential has the form of a token: base64url characters and
 * exactly two dots.  A credential of that form goes to
 * ngx_http_loom_jwt_verify(), any other is looked up as a key.
 */
ngx_uint_t ngx_http_loom_jwt_is_token(u_char *p, size_t len);

/* a short text for a reason: "token expired", ... */
const char *ngx_http_loom_jwt_reason(ngx_int_t rc);


#endif /* _NGX_HTTP_LOOM_JWT_H_INCLUDED_ */
