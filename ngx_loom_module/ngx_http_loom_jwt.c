/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "ngx_http_loom_jwt.h"


struct ngx_http_loom_jwt_conf_s {
    ngx_uint_t                  alg;
    jwt_alg_t                   jwt_alg;
    const char                 *alg_name;
    u_char                     *key;
    size_t                      key_len;
    ngx_str_t                   iss;
    ngx_str_t                   aud;
    time_t                      leeway;
};


/* a NumericDate beyond this is refused rather than converted */
#define NGX_HTTP_LOOM_JWT_MAX_TIME  ((int64_t) 1 << 40)


static const char *ngx_http_loom_jwt_check_key(ngx_uint_t alg, u_char *key,
    size_t len);
static json_t *ngx_http_loom_jwt_part(u_char *p, size_t len);
static ngx_int_t ngx_http_loom_jwt_header(ngx_http_loom_jwt_conf_t *conf,
    json_t *header, char *err, size_t errlen);
static ngx_int_t ngx_http_loom_jwt_claims(ngx_http_loom_jwt_conf_t *conf,
    json_t *body, time_t now, ngx_http_loom_jwt_claims_t **claims,
    char *err, size_t errlen);
static ngx_int_t ngx_http_loom_jwt_time(json_t *body, const char *name,
    ngx_uint_t required, int64_t *t, char *err, size_t errlen);
static ngx_int_t ngx_http_loom_jwt_audience(ngx_http_loom_jwt_conf_t *conf,
    json_t *aud, char *err, size_t errlen);
static ngx_uint_t ngx_http_loom_jwt_equal(json_t *s, ngx_str_t *want);


static const char  *ngx_http_loom_jwt_reasons[] = {
    "",
    "malformed token",
    "wrong algorithm",
    "bad signature",
    "token expired",
    "token not yet valid",
    "token issued in the future",
    "wrong issuer",
    "wrong audience",
    "invalid subject",
    "invalid permissions claim",
    "invalid claim",
};


ngx_http_loom_jwt_conf_t *
ngx_http_loom_jwt_conf_create(const char *alg, u_char *key, size_t key_len,
    ngx_str_t *iss, ngx_str_t *aud, time_t leeway, char *err, size_t errlen)
{
    u_char                    *p;
    size_t                     size;
    ngx_uint_t                 a;
    jwt_alg_t                  ja;
    const char                *e, *name;
    ngx_http_loom_jwt_conf_t  *conf;

    if (strcmp(alg, "HS256") == 0) {
        a = NGX_HTTP_LOOM_JWT_HS256;
        ja = JWT_ALG_HS256;
        name = "HS256";

        /* a secret written to a file usually ends with a newline */

        if (key_len && key[key_len - 1] == '\n') {
            key_len--;

            if (key_len && key[key_len - 1] == '\r') {
                key_len--;
            }
        }

    } else if (strcmp(alg, "RS256") == 0) {
        a = NGX_HTTP_LOOM_JWT_RS256;
        ja = JWT_ALG_RS256;
        name = "RS256";

    } else if (strcmp(alg, "ES256") == 0) {
        a = NGX_HTTP_LOOM_JWT_ES256;
        ja = JWT_ALG_ES256;
        name = "ES256";

    } else {
        snprintf(err, errlen, "unknown algorithm (HS256, RS256 or ES256)");
        return NULL;
    }

    e = ngx_http_loom_jwt_check_key(a, key, key_len);
    if (e) {
        snprintf(err, errlen, "%s", e);
        return NULL;
    }

    if (leeway < 0 || leeway > NGX_HTTP_LOOM_JWT_MAX_LEEWAY) {
        snprintf(err, errlen, "the leeway must be 0 to %d seconds",
                 NGX_HTTP_LOOM_JWT_MAX_LEEWAY);
        return NULL;
    }

    size = sizeof(ngx_http_loom_jwt_conf_t) + key_len + 1
           + (iss ? iss->len : 0) + 1 + (aud ? aud->len : 0) + 1;

    conf = malloc(size);
    if (conf == NULL) {
        snprintf(err, errlen, "no memory");
        return NULL;
    }

    p = (u_char *) (conf + 1);

    conf->alg = a;
    conf->jwt_alg = ja;
    conf->alg_name = name;
    conf->leeway = leeway;

    conf->key = p;
    conf->key_len = key_len;
    p = ngx_cpymem(p, key, key_len);
    *p++ = '\0';

    conf->iss.data = p;
    conf->iss.len = iss ? iss->len : 0;

    if (conf->iss.len) {
        p = ngx_cpymem(p, iss->data, iss->len);
    }

    *p++ = '\0';

    conf->aud.data = p;
    conf->aud.len = aud ? aud->len : 0;

    if (conf->aud.len) {
        p = ngx_cpymem(p, aud->data, aud->len);
    }

    *p = '\0';

    return conf;
}


ngx_http_loom_jwt_conf_t *
ngx_http_loom_jwt_conf_load(const char *alg, const char *key_file,
    ngx_str_t *iss, ngx_str_t *aud, time_t leeway, char *err, size_t errlen)
{
    FILE                      *f;
    long                       size;
    u_char                    *key;
    ngx_http_loom_jwt_conf_t  *conf;

    f = fopen(key_file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open the key file: %s",
                 strerror(errno));
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        snprintf(err, errlen, "cannot read the key file: %s",
                 strerror(errno));
        fclose(f);
        return NULL;
    }

    if (size > 65536) {
        snprintf(err, errlen, "the key file is larger than 64 KiB");
        fclose(f);
        return NULL;
    }

    key = malloc(size + 1);
    if (key == NULL) {
        snprintf(err, errlen, "no memory");
        fclose(f);
        return NULL;
    }

    if (fread(key, 1, size, f) != (size_t) size) {
        snprintf(err, errlen, "cannot read the key file");
        free(key);
        fclose(f);
        return NULL;
    }

    fclose(f);

    conf = ngx_http_loom_jwt_conf_create(alg, key, size, iss, aud, leeway,
                                         err, errlen);

    /* the secret does not stay in freed memory */
    OPENSSL_cleanse(key, size);
    free(key);

    return conf;
}


void
ngx_http_loom_jwt_conf_free(ngx_http_loom_jwt_conf_t *conf)
{
    if (conf) {
        OPENSSL_cleanse(conf->key, conf->key_len);
        free(conf);
    }
}


static const char *
ngx_http_loom_jwt_check_key(ngx_uint_t alg, u_char *key, size_t len)
{
    BIO         *bio;
    char         group[64];
    size_t       glen;
    EVP_PKEY    *pkey;
    const char  *e;

    if (alg == NGX_HTTP_LOOM_JWT_HS256) {
        if (len < NGX_HTTP_LOOM_JWT_MIN_SECRET) {
            return "an HS256 secret must be at least 32 bytes";
        }

        if (len >= 10 && ngx_strncmp(key, "-----BEGIN", 10) == 0) {
            return "the HS256 secret is a PEM key: give the algorithm "
                   "of the key (RS256 or ES256)";
        }

        return NULL;
    }

    if (len > INT_MAX) {
        return "the key is too large";
    }

    bio = BIO_new_mem_buf(key, (int) len);
    if (bio == NULL) {
        return "no memory";
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        return "the key is not a PEM public key "
               "(\"-----BEGIN PUBLIC KEY-----\")";
    }

    e = NULL;

    if (alg == NGX_HTTP_LOOM_JWT_RS256) {
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
            e = "RS256 needs an RSA public key";

        } else if (EVP_PKEY_get_bits(pkey) < 2048) {
            e = "RS256 needs an RSA key of at least 2048 bits";
        }

    } else {
        if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC
            || EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen)
               != 1
            || strcmp(group, "prime256v1") != 0)
        {
            e = "ES256 needs an EC public key on the P-256 curve";
        }
    }

    EVP_PKEY_free(pkey);

    return e;
}


ngx_int_t
ngx_http_loom_jwt_verify(ngx_http_loom_jwt_conf_t *conf, u_char *token,
    size_t len, time_t now, ngx_http_loom_jwt_claims_t **claims, char *err,
    size_t errlen)
{
    int          n;
    char        *copy;
    u_char      *dot[2], *p, *last, c;
    json_t      *header, *body;
    jwt_t       *jwt;
    ngx_int_t    rc;
    ngx_uint_t   ndots;

    *claims = NULL;
    err[0] = '\0';

    if (len == 0 || len > NGX_HTTP_LOOM_JWT_MAX_LEN) {
        snprintf(err, errlen, "a token is 1 to %d bytes",
                 NGX_HTTP_LOOM_JWT_MAX_LEN);
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    /* header.payload.signature, each part base64url without padding */

    ndots = 0;
    last = token + len;

    for (p = token; p < last; p++) {
        c = *p;

        if (c == '.') {
            if (ndots == 2) {
                ndots++;
                break;
            }

            dot[ndots++] = p;
            continue;
        }

        if ((c < 'A' || c > 'Z') && (c < 'a' || c > 'z')
            && (c < '0' || c > '9') && c != '-' && c != '_')
        {
            snprintf(err, errlen, "a character outside base64url");
            return NGX_HTTP_LOOM_JWT_MALFORMED;
        }
    }

    if (ndots != 2) {
        snprintf(err, errlen, "not three parts separated by dots");
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    header = ngx_http_loom_jwt_part(token, dot[0] - token);
    if (header == NULL) {
        snprintf(err, errlen, "the header is not a base64url JSON object");
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    /* the algorithm is checked before libjwt sees the token */

    rc = ngx_http_loom_jwt_header(conf, header, err, errlen);
    json_decref(header);

    if (rc != NGX_OK) {
        return rc;
    }

    if (dot[1] + 1 == last) {
        snprintf(err, errlen, "the token has no signature");
        return NGX_HTTP_LOOM_JWT_SIGNATURE;
    }

    body = ngx_http_loom_jwt_part(dot[0] + 1, dot[1] - dot[0] - 1);
    if (body == NULL) {
        snprintf(err, errlen, "the payload is not a base64url JSON object");
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    copy = malloc(len + 1);
    if (copy == NULL) {
        json_decref(body);
        return NGX_ERROR;
    }

    ngx_memcpy(copy, token, len);
    copy[len] = '\0';

    jwt = NULL;
    n = jwt_decode(&jwt, copy, conf->key, (int) conf->key_len);

    free(copy);

    if (n != 0 || jwt == NULL) {
        json_decref(body);

        if (jwt) {
            jwt_free(jwt);
        }

        if (n == ENOMEM) {
            return NGX_ERROR;
        }

        snprintf(err, errlen, "the signature does not verify");
        return NGX_HTTP_LOOM_JWT_SIGNATURE;
    }

    if (jwt_get_alg(jwt) != conf->jwt_alg) {
        jwt_free(jwt);
        json_decref(body);
        snprintf(err, errlen, "the token is not signed with %s",
                 conf->alg_name);
        return NGX_HTTP_LOOM_JWT_ALGORITHM;
    }

    jwt_free(jwt);

    /* the payload we parsed is the one whose signature was checked */

    rc = ngx_http_loom_jwt_claims(conf, body, now, claims, err, errlen);

    json_decref(body);

    return rc;
}


void
ngx_http_loom_jwt_claims_free(ngx_http_loom_jwt_claims_t *claims)
{
    if (claims) {
        ngx_http_loom_perm_free(claims->perm);
        free(claims);
    }
}


ngx_uint_t
ngx_http_loom_jwt_is_token(u_char *p, size_t len)
{
    u_char      c, *last;
    ngx_uint_t  ndots;

    ndots = 0;

    for (last = p + len; p < last; p++) {
        c = *p;

        if (c == '.') {
            ndots++;
            continue;
        }

        if ((c < 'A' || c > 'Z') && (c < 'a' || c > 'z')
            && (c < '0' || c > '9') && c != '-' && c != '_')
        {
            return 0;
        }
    }

    return ndots == 2;
}


const char *
ngx_http_loom_jwt_reason(ngx_int_t rc)
{
    if (rc == NGX_ERROR) {
        return "no memory";
    }

    if (rc <= 0 || rc > NGX_HTTP_LOOM_JWT_CLAIM_TYPE) {
        return "";
    }

    return ngx_http_loom_jwt_reasons[rc];
}


/* one base64url part decoded and parsed as a JSON object, or NULL */

static json_t *
ngx_http_loom_jwt_part(u_char *p, size_t len)
{
    u_char        *buf, *d, *last;
    json_t        *v;
    uint32_t       acc;
    ngx_uint_t     c, bits;
    json_error_t   e;

    if (len == 0 || len % 4 == 1) {
        return NULL;
    }

    buf = malloc(len);
    if (buf == NULL) {
        return NULL;
    }

    d = buf;
    acc = 0;
    bits = 0;

    for (last = p + len; p < last; p++) {
        c = *p;

        if (c >= 'A' && c <= 'Z') {
            c -= 'A';

        } else if (c >= 'a' && c <= 'z') {
            c = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            c = c - '0' + 52;

        } else if (c == '-') {
            c = 62;

        } else {
            c = 63;
        }

        acc = (acc << 6) | c;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            *d++ = (u_char) (acc >> bits);
        }
    }

    v = json_loadb((const char *) buf, d - buf, JSON_REJECT_DUPLICATES, &e);

    free(buf);

    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }

    return v;
}


static ngx_int_t
ngx_http_loom_jwt_header(ngx_http_loom_jwt_conf_t *conf, json_t *header,
    char *err, size_t errlen)
{
    json_t  *v;

    v = json_object_get(header, "alg");

    if (!json_is_string(v)) {
        snprintf(err, errlen, "the header has no \"alg\"");
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    /* case-sensitive (RFC 7515), unlike libjwt 1.10 */

    if (strcmp(json_string_value(v), conf->alg_name) != 0
        || json_string_length(v) != strlen(conf->alg_name))
    {
        snprintf(err, errlen, "the token's algorithm is not %s",
                 conf->alg_name);
        return NGX_HTTP_LOOM_JWT_ALGORITHM;
    }

    v = json_object_get(header, "typ");

    if (v && (!json_is_string(v)
              || strcasecmp(json_string_value(v), "JWT") != 0))
    {
        snprintf(err, errlen, "the header's \"typ\" is not \"JWT\"");
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    if (json_object_get(header, "crit")) {
        snprintf(err, errlen, "the header has \"crit\" extensions");
        return NGX_HTTP_LOOM_JWT_MALFORMED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_jwt_claims(ngx_http_loom_jwt_conf_t *conf, json_t *body,
    time_t now, ngx_http_loom_jwt_claims_t **claims, char *err,
    size_t errlen)
{
    size_t                       slen;
    json_t                      *v, *perm, *member;
    int64_t                      exp, nbf, iat;
    ngx_int_t                    rc;
    const char                  *key, *sub;
    ngx_http_loom_perm_t        *set;
    ngx_http_loom_jwt_claims_t  *cl;
    char                         perr[NGX_HTTP_LOOM_PERM_ERRLEN];

    rc = ngx_http_loom_jwt_time(body, "exp", 1, &exp, err, errlen);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_loom_jwt_time(body, "nbf", 0, &nbf, err, errlen);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_loom_jwt_time(body, "iat", 0, &iat, err, errlen);
    if (rc != NGX_OK) {
        return rc;
    }

    if ((int64_t) now - conf->leeway >= exp) {
        snprintf(err, errlen, "the token expired");
        return NGX_HTTP_LOOM_JWT_EXPIRED;
    }

    if (json_object_get(body, "nbf") && nbf > (int64_t) now + conf->leeway) {
        snprintf(err, errlen, "the token is not valid before its \"nbf\"");
        return NGX_HTTP_LOOM_JWT_NOT_YET;
    }

    if (json_object_get(body, "iat") && iat > (int64_t) now + conf->leeway) {
        snprintf(err, errlen, "the token's \"iat\" is in the future");
        return NGX_HTTP_LOOM_JWT_IAT;
    }

    v = json_object_get(body, "iss");

    if (v && !json_is_string(v)) {
        snprintf(err, errlen, "\"iss\" is not a string");
        return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
    }

    if (conf->iss.len && (v == NULL || !ngx_http_loom_jwt_equal(v, &conf->iss)))
    {
        snprintf(err, errlen, "the token's issuer is not the configured one");
        return NGX_HTTP_LOOM_JWT_ISSUER;
    }

    rc = ngx_http_loom_jwt_audience(conf, json_object_get(body, "aud"), err,
                                    errlen);
    if (rc != NGX_OK) {
        return rc;
    }

    sub = NULL;
    slen = 0;
    v = json_object_get(body, "sub");

    if (v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "\"sub\" is not a string");
            return NGX_HTTP_LOOM_JWT_SUBJECT;
        }

        sub = json_string_value(v);
        slen = json_string_length(v);

        if (slen == 0 || slen > NGX_HTTP_LOOM_JWT_MAX_SUB) {
            snprintf(err, errlen, "\"sub\" must be 1 to %d bytes",
                     NGX_HTTP_LOOM_JWT_MAX_SUB);
            return NGX_HTTP_LOOM_JWT_SUBJECT;
        }

        if (ngx_http_loom_perm_value_ok((u_char *) sub, slen) != NGX_OK) {
            snprintf(err, errlen, "\"sub\" holds a pattern, separator or "
                     "control character");
            return NGX_HTTP_LOOM_JWT_SUBJECT;
        }
    }

    perm = json_object_get(body, NGX_HTTP_LOOM_JWT_CLAIM);

    if (perm) {
        if (!json_is_object(perm)) {
            snprintf(err, errlen, "\"%s\" is not an object",
                     NGX_HTTP_LOOM_JWT_CLAIM);
            return NGX_HTTP_LOOM_JWT_PERMISSIONS;
        }

        json_object_foreach(perm, key, member) {
            if (strcmp(key, "publish") != 0 && strcmp(key, "subscribe") != 0
                && strcmp(key, "admin") != 0)
            {
                snprintf(err, errlen, "\"%s\" has a member other than "
                         "publish, subscribe, admin",
                         NGX_HTTP_LOOM_JWT_CLAIM);
                return NGX_HTTP_LOOM_JWT_PERMISSIONS;
            }
        }
    }

    set = ngx_http_loom_perm_from_json(json_object_get(perm, "publish"),
                                       json_object_get(perm, "subscribe"),
                                       json_object_get(perm, "admin"),
                                       perr, sizeof(perr));
    if (set == NULL) {
        if (strcmp(perr, "no memory") == 0) {
            return NGX_ERROR;
        }

        snprintf(err, errlen, "\"%s\".%s", NGX_HTTP_LOOM_JWT_CLAIM, perr);
        return NGX_HTTP_LOOM_JWT_PERMISSIONS;
    }

    cl = malloc(sizeof(ngx_http_loom_jwt_claims_t) + slen + 1);
    if (cl == NULL) {
        ngx_http_loom_perm_free(set);
        return NGX_ERROR;
    }

    cl->sub.data = (u_char *) (cl + 1);
    cl->sub.len = slen;
    ngx_memcpy(cl->sub.data, sub ? sub : "", slen);
    cl->sub.data[slen] = '\0';
    cl->exp = (time_t) exp;
    cl->perm = set;

    *claims = cl;

    return NGX_OK;
}


/* a NumericDate: an integer, or a number whose fraction is dropped */

static ngx_int_t
ngx_http_loom_jwt_time(json_t *body, const char *name, ngx_uint_t required,
    int64_t *t, char *err, size_t errlen)
{
    double   d;
    json_t  *v;

    *t = 0;
    v = json_object_get(body, name);

    if (v == NULL) {
        if (required) {
            snprintf(err, errlen, "the token has no \"%s\"", name);
            return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
        }

        return NGX_OK;
    }

    if (json_is_integer(v)) {
        *t = json_integer_value(v);

    } else if (json_is_real(v)) {
        d = json_real_value(v);

        if (d > (double) NGX_HTTP_LOOM_JWT_MAX_TIME
            || d < -(double) NGX_HTTP_LOOM_JWT_MAX_TIME)
        {
            snprintf(err, errlen, "\"%s\" is out of range", name);
            return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
        }

        *t = (int64_t) d;

        if ((double) *t > d) {
            (*t)--;
        }

    } else {
        snprintf(err, errlen, "\"%s\" is not a number", name);
        return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
    }

    if (*t > NGX_HTTP_LOOM_JWT_MAX_TIME || *t < -NGX_HTTP_LOOM_JWT_MAX_TIME) {
        snprintf(err, errlen, "\"%s\" is out of range", name);
        return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_jwt_audience(ngx_http_loom_jwt_conf_t *conf, json_t *aud,
    char *err, size_t errlen)
{
    size_t      i;
    json_t     *v;
    ngx_uint_t  found;

    if (aud == NULL) {
        if (conf->aud.len) {
            snprintf(err, errlen, "the token has no \"aud\"");
            return NGX_HTTP_LOOM_JWT_AUDIENCE;
        }

        return NGX_OK;
    }

    found = 0;

    if (json_is_string(aud)) {
        found = ngx_http_loom_jwt_equal(aud, &conf->aud);

    } else if (json_is_array(aud)) {
        json_array_foreach(aud, i, v) {
            if (!json_is_string(v)) {
                snprintf(err, errlen, "\"aud\" holds a value that is not "
                         "a string");
                return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
            }

            found |= ngx_http_loom_jwt_equal(v, &conf->aud);
        }

    } else {
        snprintf(err, errlen, "\"aud\" is neither a string nor an array");
        return NGX_HTTP_LOOM_JWT_CLAIM_TYPE;
    }

    if (conf->aud.len == 0) {
        snprintf(err, errlen, "the token names an audience and none is "
                 "configured");
        return NGX_HTTP_LOOM_JWT_AUDIENCE;
    }

    if (!found) {
        snprintf(err, errlen, "the token is not for the configured "
                 "audience");
        return NGX_HTTP_LOOM_JWT_AUDIENCE;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_loom_jwt_equal(json_t *s, ngx_str_t *want)
{
    return want->len != 0
           && json_string_length(s) == want->len
           && ngx_memcmp(json_string_value(s), want->data, want->len) == 0;
}
