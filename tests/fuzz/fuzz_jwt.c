/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for token verification.  The first byte chooses what
 * the rest is:
 *
 *     0  a token, verified with an HS256 and with an RS256 configuration
 *     1  a payload, signed here with the HS256 secret and then verified
 *     2  a header, a NUL byte, a payload: signed likewise
 *
 * Besides not crashing or leaking: the answer is one of the documented
 * ones with a reason; an accepted token is not expired, its subject is
 * usable in a pattern, and it was accepted by the HS256 configuration
 * (an RS256 token would need the private key, which nothing here has).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jwt.h"
#include "jwt_mint.h"


#define NOW     1700000000
#define LEEWAY  60
#define SECRET  "fuzz-secret-fuzz-secret-fuzz-secret!"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_verify(ngx_http_loom_jwt_conf_t *conf, u_char *token,
    size_t len);


/* tests/unit/keys/rsa.pub */
static const char  rsa_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAt2nI0qIb4OBx1mMI0gTt\n"
    "SijDUvhtU+REH1tBIo2YPUvmj6aWvOs6yV5nzyvFZuj+YuxvydtW620dhgHpRF2I\n"
    "QqWFcbN/F1ePGBIbZwIMjXV5zZh/9LRnTWLv9eedRyjsIp++DERG1+2Q8FvuYp6u\n"
    "mkzrnXQvePBB/khWHwPJmKVVRhy8B0/TdohHzrXwaQqRI3cWwx+zfuJLAQqJc7gP\n"
    "kIysCsWCm8tYUbQ9aJfu6zdLDnfnchHb9DUEQSch02Y1twez09TnbgqPSlcxgexw\n"
    "w42o319jLSsg1QR1LsPudQszIS/qDlWqqdNIfkTVgKXlthmb0SSzltGUWUeqJ1hc\n"
    "5wIDAQAB\n"
    "-----END PUBLIC KEY-----\n"
    ;

static ngx_http_loom_jwt_conf_t  *hs, *rs;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *text, *payload, *tok;
    size_t         n, tsize;
    ngx_uint_t     mode;
    char           err[NGX_HTTP_LOOM_JWT_ERRLEN];

    if (hs == NULL) {
        hs = ngx_http_loom_jwt_conf_create("HS256", (u_char *) SECRET,
                                           strlen(SECRET), NULL, NULL,
                                           LEEWAY, err, sizeof(err));
        rs = ngx_http_loom_jwt_conf_create("RS256", (u_char *) rsa_pub,
                                           strlen(rsa_pub), NULL, NULL,
                                           LEEWAY, err, sizeof(err));
        if (hs == NULL || rs == NULL) {
            abort();
        }
    }

    if (size < 1 || size > 2 * NGX_HTTP_LOOM_JWT_MAX_LEN) {
        return 0;
    }

    mode = data[0] % 3;
    data++;
    size--;

    if (mode == 0) {
        fuzz_verify(hs, (u_char *) data, size);
        fuzz_verify(rs, (u_char *) data, size);
        return 0;
    }

    /* a C string for the minting code */

    text = malloc(size + 1);
    tsize = size * 2 + 1024;
    tok = malloc(tsize);

    if (text == NULL || tok == NULL) {
        free(text);
        free(tok);
        return 0;
    }

    memcpy(text, data, size);
    text[size] = '\0';

    if (mode == 1) {
        payload = text;
        n = jwt_mint(tok, tsize, "HS256", (u_char *) SECRET, strlen(SECRET),
                     "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload);

    } else {
        payload = text + strlen(text);
        payload += (payload < text + size) ? 1 : 0;
        n = jwt_mint(tok, tsize, "HS256", (u_char *) SECRET, strlen(SECRET),
                     text, payload);
    }

    if (n) {
        fuzz_verify(hs, (u_char *) tok, n);
    }

    free(text);
    free(tok);

    return 0;
}


static void
fuzz_verify(ngx_http_loom_jwt_conf_t *conf, u_char *token, size_t len)
{
    ngx_int_t                    rc;
    ngx_http_loom_jwt_claims_t  *claims;
    char                         err[NGX_HTTP_LOOM_JWT_ERRLEN];

    rc = ngx_http_loom_jwt_verify(conf, token, len, NOW, &claims, err,
                                  sizeof(err));

    if (rc == NGX_ERROR) {
        return;
    }

    if (rc != NGX_OK) {
        if (claims != NULL || rc < NGX_HTTP_LOOM_JWT_MALFORMED
            || rc > NGX_HTTP_LOOM_JWT_CLAIM_TYPE || err[0] == '\0'
            || ngx_http_loom_jwt_reason(rc)[0] == '\0'
            || strstr(err, SECRET) != NULL)
        {
            abort();
        }

        return;
    }

    if (claims == NULL || conf != hs || claims->exp <= NOW - LEEWAY
        || (claims->sub.len
            && ngx_http_loom_perm_value_ok(claims->sub.data, claims->sub.len)
               != NGX_OK)
        || strlen((char *) claims->sub.data) != claims->sub.len
        || claims->perm == NULL)
    {
        abort();
    }

    ngx_http_loom_jwt_claims_free(claims);
}
