/* SOURCES: ngx_http_loom_jwt.c ngx_http_loom_perm.c */

/*
 * Token verification: the algorithm pinned before libjwt sees the token,
 * every claim checked here, at a given time.  Tokens are made with
 * OpenSSL (tests/common/jwt_mint.h) and, once, with libjwt.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include <jwt.h>
#include "ngx_http_loom_jwt.h"
#include "jwt_mint.h"


#define NOW      1700000000
#define SECRET   "0123456789abcdef0123456789abcdef-secret"
#define HS       "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define RS       "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define ES       "{\"alg\":\"ES256\"}"
#define ISS      "{\"exp\":1700000600,\"iss\":\"https://id.example\","
#define VALID    "{\"sub\":\"alice\",\"exp\":1700000600}"


typedef struct {
    char                       *rsa_key;
    size_t                      rsa_key_len;
    char                       *rsa_pub;
    size_t                      rsa_pub_len;
    char                       *ec_key;
    size_t                      ec_key_len;
    char                       *ec_pub;
    size_t                      ec_pub_len;
    ngx_http_loom_jwt_conf_t   *hs;
    ngx_http_loom_jwt_conf_t   *rs;
    ngx_http_loom_jwt_conf_t   *es;
} keys_t;


static keys_t  k;
static char    err[NGX_HTTP_LOOM_JWT_ERRLEN];
static char    tok[16384];


static char *
slurp(const char *name, size_t *len)
{
    FILE  *f;
    char   path[1024], *buf;
    long   n;

    snprintf(path, sizeof(path), "%s/keys/%s", LOOM_UNIT_DIR, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, n, f), (size_t) n);
    buf[n] = '\0';
    fclose(f);

    *len = n;

    return buf;
}


static ngx_http_loom_jwt_conf_t *
conf(const char *alg, const char *key, size_t len, const char *iss,
    const char *aud, time_t leeway)
{
    ngx_str_t                  i, a;
    ngx_http_loom_jwt_conf_t  *c;

    i.data = (u_char *) iss;
    i.len = iss ? strlen(iss) : 0;
    a.data = (u_char *) aud;
    a.len = aud ? strlen(aud) : 0;

    c = ngx_http_loom_jwt_conf_create(alg, (u_char *) key, len,
                                      iss ? &i : NULL, aud ? &a : NULL,
                                      leeway, err, sizeof(err));
    if (c == NULL) {
        fail_msg("configuration refused: %s", err);
    }

    return c;
}


static int
setup(void **state)
{
    k.rsa_key = slurp("rsa.key", &k.rsa_key_len);
    k.rsa_pub = slurp("rsa.pub", &k.rsa_pub_len);
    k.ec_key = slurp("ec.key", &k.ec_key_len);
    k.ec_pub = slurp("ec.pub", &k.ec_pub_len);

    k.hs = conf("HS256", SECRET, strlen(SECRET), NULL, NULL, 0);
    k.rs = conf("RS256", k.rsa_pub, k.rsa_pub_len, NULL, NULL, 0);
    k.es = conf("ES256", k.ec_pub, k.ec_pub_len, NULL, NULL, 0);

    return 0;
}


static int
teardown(void **state)
{
    ngx_http_loom_jwt_conf_free(k.hs);
    ngx_http_loom_jwt_conf_free(k.rs);
    ngx_http_loom_jwt_conf_free(k.es);
    free(k.rsa_key);
    free(k.rsa_pub);
    free(k.ec_key);
    free(k.ec_pub);

    return 0;
}


static const char *
hs(const char *header, const char *payload)
{
    assert_true(jwt_mint(tok, sizeof(tok), "HS256",
                         (const unsigned char *) SECRET, strlen(SECRET),
                         header, payload) > 0);
    return tok;
}


/* verifies, expects rc; on NGX_OK the claims are returned */

static ngx_http_loom_jwt_claims_t *
verify_at(ngx_http_loom_jwt_conf_t *c, const char *token, time_t now,
    ngx_int_t want)
{
    ngx_int_t                    rc;
    ngx_http_loom_jwt_claims_t  *claims;

    claims = (void *) 1;
    rc = ngx_http_loom_jwt_verify(c, (u_char *) token, strlen(token), now,
                                  &claims, err, sizeof(err));
    if (rc != want) {
        fail_msg("got %d (%s: %s), wanted %d", (int) rc,
                 ngx_http_loom_jwt_reason(rc), err, (int) want);
    }

    /* the reason never shows the secret */
    assert_null(strstr(err, SECRET));

    if (rc != NGX_OK) {
        assert_null(claims);
        assert_true(err[0] != '\0');
        return NULL;
    }

    assert_non_null(claims);

    return claims;
}


static ngx_http_loom_jwt_claims_t *
verify(ngx_http_loom_jwt_conf_t *c, const char *token, ngx_int_t want)
{
    return verify_at(c, token, NOW, want);
}


static void
hs_refused(const char *payload, ngx_int_t want, const char *message)
{
    (void) verify(k.hs, hs(HS, payload), want);

    if (message && strcmp(err, message) != 0) {
        fail_msg("\"%s\" instead of \"%s\"", err, message);
    }
}


static ngx_int_t
allowed(ngx_http_loom_jwt_claims_t *cl, ngx_uint_t op, const char *topic)
{
    ngx_str_t                  t;
    ngx_http_loom_perm_vars_t  vars;

    t.data = (u_char *) topic;
    t.len = strlen(topic);
    vars.client.data = (u_char *) "c1";
    vars.client.len = 2;
    vars.sub = cl->sub;

    return ngx_http_loom_perm_check(cl->perm, op, &t, &vars);
}


static void
test_valid(void **state)
{
    ngx_http_loom_jwt_claims_t  *cl;

    cl = verify(k.hs, hs(HS, VALID), NGX_OK);
    assert_string_equal(cl->sub.data, "alice");
    assert_int_equal(cl->sub.len, 5);
    assert_int_equal(cl->exp, 1700000600);
    /* no "dataloom" claim: nothing is allowed */
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_SUBSCRIBE, "a"),
                     NGX_DECLINED);
    ngx_http_loom_jwt_claims_free(cl);

    assert_true(jwt_mint(tok, sizeof(tok), "RS256",
                         (unsigned char *) k.rsa_key, k.rsa_key_len, RS,
                         VALID) > 0);
    cl = verify(k.rs, tok, NGX_OK);
    assert_string_equal(cl->sub.data, "alice");
    ngx_http_loom_jwt_claims_free(cl);

    assert_true(jwt_mint(tok, sizeof(tok), "ES256",
                         (unsigned char *) k.ec_key, k.ec_key_len, ES,
                         VALID) > 0);
    cl = verify(k.es, tok, NGX_OK);
    assert_string_equal(cl->sub.data, "alice");
    ngx_http_loom_jwt_claims_free(cl);

    /* no sub; typ in another case; exp as a real number */
    cl = verify(k.hs, hs("{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
                         "{\"exp\":1700000600.75}"), NGX_OK);
    assert_int_equal(cl->sub.len, 0);
    assert_string_equal(cl->sub.data, "");
    assert_int_equal(cl->exp, 1700000600);
    ngx_http_loom_jwt_claims_free(cl);
}


static void
test_libjwt_token(void **state)
{
    char                        *s;
    jwt_t                       *jwt;
    ngx_http_loom_jwt_claims_t  *cl;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_RS256,
                                 (unsigned char *) k.rsa_key,
                                 (int) k.rsa_key_len), 0);
    assert_int_equal(jwt_add_grants_json(jwt,
                         "{\"sub\":\"bob\",\"exp\":1700000100,"
                         "\"dataloom\":{\"publish\":[\"u/{sub}/*\"]}}"), 0);
    s = jwt_encode_str(jwt);
    assert_non_null(s);
    jwt_free(jwt);

    cl = verify(k.rs, s, NGX_OK);
    assert_string_equal(cl->sub.data, "bob");
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_PUBLISH, "u/bob/x"),
                     NGX_OK);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_PUBLISH, "u/eve/x"),
                     NGX_DECLINED);
    ngx_http_loom_jwt_claims_free(cl);
    free(s);
}


static void
test_times(void **state)
{
    ngx_http_loom_jwt_conf_t    *c;
    ngx_http_loom_jwt_claims_t  *cl;

    /* exp: valid up to the second before */
    cl = verify_at(k.hs, hs(HS, VALID), 1700000599, NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    (void) verify_at(k.hs, hs(HS, VALID), 1700000600,
                     NGX_HTTP_LOOM_JWT_EXPIRED);
    assert_string_equal(err, "the token expired");
    (void) verify_at(k.hs, hs(HS, VALID), 1800000000,
                     NGX_HTTP_LOOM_JWT_EXPIRED);

    hs_refused("{\"sub\":\"a\"}", NGX_HTTP_LOOM_JWT_CLAIM_TYPE,
               "the token has no \"exp\"");
    hs_refused("{\"exp\":\"1700000600\"}", NGX_HTTP_LOOM_JWT_CLAIM_TYPE,
               "\"exp\" is not a number");
    hs_refused("{\"exp\":null}", NGX_HTTP_LOOM_JWT_CLAIM_TYPE,
               "\"exp\" is not a number");
    hs_refused("{\"exp\":1e300}", NGX_HTTP_LOOM_JWT_CLAIM_TYPE,
               "\"exp\" is out of range");
    hs_refused("{\"exp\":9223372036854775807}", NGX_HTTP_LOOM_JWT_CLAIM_TYPE,
               "\"exp\" is out of range");

    /* nbf, iat: refused when later than now */
    hs_refused("{\"exp\":1700000600,\"nbf\":1700000001}",
               NGX_HTTP_LOOM_JWT_NOT_YET,
               "the token is not valid before its \"nbf\"");
    cl = verify(k.hs, hs(HS, "{\"exp\":1700000600,\"nbf\":1700000000}"),
                NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    hs_refused("{\"exp\":1700000600,\"iat\":1700000001}",
               NGX_HTTP_LOOM_JWT_IAT, "the token's \"iat\" is in the future");
    cl = verify(k.hs, hs(HS, "{\"exp\":1700000600,\"iat\":1600000000}"),
                NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    hs_refused("{\"exp\":1700000600,\"nbf\":true}",
               NGX_HTTP_LOOM_JWT_CLAIM_TYPE, "\"nbf\" is not a number");
    hs_refused("{\"exp\":1700000600,\"iat\":[]}",
               NGX_HTTP_LOOM_JWT_CLAIM_TYPE, "\"iat\" is not a number");

    /* a leeway of 30 s, each way */
    c = conf("HS256", SECRET, strlen(SECRET), NULL, NULL, 30);
    cl = verify_at(c, hs(HS, VALID), 1700000629, NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    (void) verify_at(c, hs(HS, VALID), 1700000630,
                     NGX_HTTP_LOOM_JWT_EXPIRED);
    cl = verify(c, hs(HS, "{\"exp\":1700000600,\"nbf\":1700000030,"
                          "\"iat\":1700000030}"), NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    (void) verify(c, hs(HS, "{\"exp\":1700000600,\"nbf\":1700000031}"),
                  NGX_HTTP_LOOM_JWT_NOT_YET);
    (void) verify(c, hs(HS, "{\"exp\":1700000600,\"iat\":1700000031}"),
                  NGX_HTTP_LOOM_JWT_IAT);
    ngx_http_loom_jwt_conf_free(c);
}


/*
 * tok becomes the header and signature of a token for alice around the
 * payload of one for mallory
 */

static void
splice(const char *alg, const unsigned char *key, size_t len)
{
    char        a[2048], b[2048];
    char       *ap, *bp, *bend;
    const char  *h;

    h = strcmp(alg, "HS256") == 0 ? HS : strcmp(alg, "RS256") == 0 ? RS : ES;

    assert_true(jwt_mint(a, sizeof(a), alg, key, len, h, VALID) > 0);
    assert_true(jwt_mint(b, sizeof(b), alg, key, len, h,
                         "{\"sub\":\"mallory\",\"exp\":1700000600}") > 0);

    ap = strchr(a, '.');
    bp = strchr(b, '.');
    bend = strchr(bp + 1, '.');
    *bend = '\0';

    snprintf(tok, sizeof(tok), "%.*s%s%s", (int) (ap - a), a, bp,
             strchr(ap + 1, '.'));
}


static void
test_signature(void **state)
{

    /* another secret */
    assert_true(jwt_mint(tok, sizeof(tok), "HS256",
                         (const unsigned char *) SECRET "x",
                         strlen(SECRET) + 1, HS, VALID) > 0);
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_SIGNATURE);
    assert_string_equal(err, "the signature does not verify");

    /* another payload under the signature of the first */
    splice("HS256", (unsigned char *) SECRET, strlen(SECRET));
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_SIGNATURE);

    /* a signature cut short, one removed */
    hs(HS, VALID);
    tok[strlen(tok) - 2] = '\0';
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_SIGNATURE);
    hs(HS, VALID);
    strrchr(tok, '.')[1] = '\0';
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_SIGNATURE);
    assert_string_equal(err, "the token has no signature");

    /* RS256 and ES256 likewise */
    splice("RS256", (unsigned char *) k.rsa_key, k.rsa_key_len);
    (void) verify(k.rs, tok, NGX_HTTP_LOOM_JWT_SIGNATURE);
    splice("ES256", (unsigned char *) k.ec_key, k.ec_key_len);
    (void) verify(k.es, tok, NGX_HTTP_LOOM_JWT_SIGNATURE);
}


static void
test_algorithm(void **state)
{
    jwt_t  *jwt;

    /*
     * The key confusion: an HS256 token whose secret is the RSA public
     * key, which anyone has.  libjwt alone accepts it.
     */

    assert_true(jwt_mint(tok, sizeof(tok), "HS256",
                         (unsigned char *) k.rsa_pub, k.rsa_pub_len, HS,
                         VALID) > 0);
    assert_int_equal(jwt_decode(&jwt, tok, (unsigned char *) k.rsa_pub,
                                (int) k.rsa_pub_len), 0);
    jwt_free(jwt);

    (void) verify(k.rs, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);
    assert_string_equal(err, "the token's algorithm is not RS256");

    /* the same with the EC key */
    assert_true(jwt_mint(tok, sizeof(tok), "HS256",
                         (unsigned char *) k.ec_pub, k.ec_pub_len, HS,
                         VALID) > 0);
    (void) verify(k.es, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);

    /* "none", with and without a signature */
    assert_true(jwt_mint(tok, sizeof(tok), "none", NULL, 0,
                         "{\"alg\":\"none\"}", VALID) > 0);
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);
    (void) verify(k.rs, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);
    (void) verify(k.hs, hs("{\"alg\":\"none\"}", VALID),
                  NGX_HTTP_LOOM_JWT_ALGORITHM);
    (void) verify(k.hs, hs("{\"alg\":\"None\"}", VALID),
                  NGX_HTTP_LOOM_JWT_ALGORITHM);

    /* spelled otherwise: libjwt 1.10 would take "hs256" */
    (void) verify(k.hs, hs("{\"alg\":\"hs256\"}", VALID),
                  NGX_HTTP_LOOM_JWT_ALGORITHM);
    (void) verify(k.hs, hs("{\"alg\":\"HS256 \"}", VALID),
                  NGX_HTTP_LOOM_JWT_ALGORITHM);
    (void) verify(k.hs, hs("{\"alg\":\"HS512\"}", VALID),
                  NGX_HTTP_LOOM_JWT_ALGORITHM);

    /* a real RS256 or ES256 token where another algorithm is configured */
    assert_true(jwt_mint(tok, sizeof(tok), "RS256",
                         (unsigned char *) k.rsa_key, k.rsa_key_len, RS,
                         VALID) > 0);
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);
    (void) verify(k.es, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);
    assert_true(jwt_mint(tok, sizeof(tok), "ES256",
                         (unsigned char *) k.ec_key, k.ec_key_len, ES,
                         VALID) > 0);
    (void) verify(k.rs, tok, NGX_HTTP_LOOM_JWT_ALGORITHM);

    /* no alg, alg not a string */
    (void) verify(k.hs, hs("{\"typ\":\"JWT\"}", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, hs("{\"alg\":256}", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
}


static void
test_header(void **state)
{
    (void) verify(k.hs, hs("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "the header's \"typ\" is not \"JWT\"");
    (void) verify(k.hs, hs("{\"alg\":\"HS256\",\"typ\":1}", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, hs("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "the header has \"crit\" extensions");
    /* a second alg libjwt might read instead */
    (void) verify(k.hs, hs("{\"alg\":\"HS256\",\"alg\":\"none\"}", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, hs("[\"HS256\"]", VALID),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, hs("not json", VALID), NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "the header is not a base64url JSON object");
}


static void
test_malformed(void **state)
{
    char  big[NGX_HTTP_LOOM_JWT_MAX_LEN + 2];

    (void) verify(k.hs, "", NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, "abc", NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "not three parts separated by dots");
    (void) verify(k.hs, "a.b", NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, "a.b.c.d", NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, "..", NGX_HTTP_LOOM_JWT_MALFORMED);

    hs(HS, VALID);
    strcat(tok, "=");
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "a character outside base64url");
    hs(HS, VALID);
    tok[3] = '+';
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_MALFORMED);
    hs(HS, VALID);
    tok[3] = ' ';
    (void) verify(k.hs, tok, NGX_HTTP_LOOM_JWT_MALFORMED);

    /* the payload is not an object, not JSON, a 4n+1 length */
    (void) verify(k.hs, hs(HS, "[1]"), NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "the payload is not a base64url JSON object");
    (void) verify(k.hs, hs(HS, "{\"exp\":1700000600"),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, hs(HS, "{\"exp\":1,\"exp\":1700000600}"),
                  NGX_HTTP_LOOM_JWT_MALFORMED);
    (void) verify(k.hs, "eyJhbGciOiJIUzI1NiJ9.A.sig",
                  NGX_HTTP_LOOM_JWT_MALFORMED);

    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[10] = '.';
    big[20] = '.';
    (void) verify(k.hs, big, NGX_HTTP_LOOM_JWT_MALFORMED);
    assert_string_equal(err, "a token is 1 to 8192 bytes");
}


static void
test_issuer_audience(void **state)
{
    ngx_http_loom_jwt_conf_t    *c;
    ngx_http_loom_jwt_claims_t  *cl;

    c = conf("HS256", SECRET, strlen(SECRET), "https://id.example",
             "loom", 0);

    cl = verify(c, hs(HS, ISS "\"aud\":\"loom\"}"), NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    cl = verify(c, hs(HS, ISS "\"aud\":[\"other\",\"loom\"]}"), NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);

    (void) verify(c, hs(HS, "{\"exp\":1700000600,\"iss\":\"https://id.evil\","
                            "\"aud\":\"loom\"}"), NGX_HTTP_LOOM_JWT_ISSUER);
    assert_string_equal(err, "the token's issuer is not the configured one");
    (void) verify(c, hs(HS, "{\"exp\":1700000600,"
                            "\"iss\":\"https://id.example/\","
                            "\"aud\":\"loom\"}"), NGX_HTTP_LOOM_JWT_ISSUER);
    (void) verify(c, hs(HS, "{\"exp\":1700000600,\"aud\":\"loom\"}"),
                  NGX_HTTP_LOOM_JWT_ISSUER);
    (void) verify(c, hs(HS, "{\"exp\":1700000600,\"iss\":7,"
                            "\"aud\":\"loom\"}"),
                  NGX_HTTP_LOOM_JWT_CLAIM_TYPE);

    (void) verify(c, hs(HS, ISS "\"aud\":\"loom2\"}"),
                  NGX_HTTP_LOOM_JWT_AUDIENCE);
    assert_string_equal(err, "the token is not for the configured audience");
    (void) verify(c, hs(HS, ISS "\"aud\":[\"a\",\"b\"]}"),
                  NGX_HTTP_LOOM_JWT_AUDIENCE);
    (void) verify(c, hs(HS, ISS "\"aud\":[]}"), NGX_HTTP_LOOM_JWT_AUDIENCE);
    (void) verify(c, hs(HS, ISS "\"n\":0}"), NGX_HTTP_LOOM_JWT_AUDIENCE);
    assert_string_equal(err, "the token has no \"aud\"");
    (void) verify(c, hs(HS, ISS "\"aud\":[\"loom\",1]}"),
                  NGX_HTTP_LOOM_JWT_CLAIM_TYPE);
    (void) verify(c, hs(HS, ISS "\"aud\":{\"loom\":1}}"),
                  NGX_HTTP_LOOM_JWT_CLAIM_TYPE);

    ngx_http_loom_jwt_conf_free(c);

    /* nothing configured: any issuer, but no audience */
    cl = verify(k.hs, hs(HS, "{\"exp\":1700000600,\"iss\":\"x\"}"), NGX_OK);
    ngx_http_loom_jwt_claims_free(cl);
    (void) verify(k.hs, hs(HS, "{\"exp\":1700000600,\"aud\":\"loom\"}"),
                  NGX_HTTP_LOOM_JWT_AUDIENCE);
    assert_string_equal(err,
                   "the token names an audience and none is configured");
}


static void
test_subject(void **state)
{
    char                         payload[512];
    ngx_uint_t                   i;
    ngx_http_loom_jwt_claims_t  *cl;

    static const char  *bad[] = {
        "*", "#*", "a/b", "{sub}", "{client}", "}", "\\\\", "a\\tb",
        "a\\u0001", "\\u007f", "",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(payload, sizeof(payload),
                 "{\"exp\":1700000600,\"sub\":\"%s\"}", bad[i]);
        (void) verify(k.hs, hs(HS, payload), NGX_HTTP_LOOM_JWT_SUBJECT);
    }

    hs_refused("{\"exp\":1700000600,\"sub\":42}", NGX_HTTP_LOOM_JWT_SUBJECT,
               "\"sub\" is not a string");

    memset(payload, 0, sizeof(payload));
    strcpy(payload, "{\"exp\":1700000600,\"sub\":\"");
    memset(payload + strlen(payload), 'a', 257);
    strcat(payload, "\"}");
    hs_refused(payload, NGX_HTTP_LOOM_JWT_SUBJECT,
               "\"sub\" must be 1 to 256 bytes");

    /* 256 bytes, '#', '+', UTF-8 and '@' are fine */
    memset(payload, 0, sizeof(payload));
    strcpy(payload, "{\"exp\":1700000600,\"sub\":\"");
    memset(payload + strlen(payload), 'a', 256);
    strcat(payload, "\"}");
    cl = verify(k.hs, hs(HS, payload), NGX_OK);
    assert_int_equal(cl->sub.len, 256);
    ngx_http_loom_jwt_claims_free(cl);

    cl = verify(k.hs, hs(HS, "{\"exp\":1700000600,"
                             "\"sub\":\"u#1+x@caf\\u00e9\"}"), NGX_OK);
    assert_string_equal(cl->sub.data, "u#1+x@caf\xc3\xa9");
    ngx_http_loom_jwt_claims_free(cl);
}


static void
test_permissions(void **state)
{
    ngx_http_loom_jwt_claims_t  *cl;

    cl = verify(k.hs, hs(HS, "{\"exp\":1700000600,\"sub\":\"u1\","
                        "\"dataloom\":{\"publish\":[\"chat/{sub}\"],"
                        "\"subscribe\":[\"chat/**\"],"
                        "\"admin\":[\"own/{client}/*\"]}}"), NGX_OK);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_PUBLISH, "chat/u1"),
                     NGX_OK);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_PUBLISH, "chat/u2"),
                     NGX_DECLINED);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_SUBSCRIBE, "chat/u2"),
                     NGX_OK);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_ADMIN, "own/c1/t"),
                     NGX_OK);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_ADMIN, "chat/u1"),
                     NGX_DECLINED);
    ngx_http_loom_jwt_claims_free(cl);

    /* an empty object allows nothing */
    cl = verify(k.hs, hs(HS, "{\"exp\":1700000600,\"dataloom\":{}}"),
                NGX_OK);
    assert_int_equal(allowed(cl, NGX_HTTP_LOOM_PERM_SUBSCRIBE, "a"),
                     NGX_DECLINED);
    ngx_http_loom_jwt_claims_free(cl);

    hs_refused("{\"exp\":1700000600,\"dataloom\":[\"**\"]}",
               NGX_HTTP_LOOM_JWT_PERMISSIONS,
               "\"dataloom\" is not an object");
    hs_refused("{\"exp\":1700000600,\"dataloom\":{\"read\":[\"**\"]}}",
               NGX_HTTP_LOOM_JWT_PERMISSIONS,
               "\"dataloom\" has a member other than publish, subscribe, "
               "admin");
    hs_refused("{\"exp\":1700000600,\"dataloom\":{\"publish\":\"**\"}}",
               NGX_HTTP_LOOM_JWT_PERMISSIONS,
               "\"dataloom\".publish: not an array of strings");
    hs_refused("{\"exp\":1700000600,\"dataloom\":{\"subscribe\":[1]}}",
               NGX_HTTP_LOOM_JWT_PERMISSIONS,
               "\"dataloom\".subscribe[1]: not a string");
    hs_refused("{\"exp\":1700000600,\"dataloom\":"
               "{\"admin\":[\"a\",\"b/**c\"]}}",
               NGX_HTTP_LOOM_JWT_PERMISSIONS,
               "\"dataloom\".admin[2]: \"**\" must be a whole segment");
    hs_refused("{\"exp\":1700000600,\"dataloom\":"
               "{\"publish\":[\"{user}\"]}}",
               NGX_HTTP_LOOM_JWT_PERMISSIONS, NULL);
}


static void
test_conf(void **state)
{
    char                      *pem;
    size_t                     len;
    ngx_str_t                  none;
    ngx_http_loom_jwt_conf_t  *c;

    static const struct {
        const char  *alg;
        const char  *file;
        const char  *message;
    } bad[] = {
        { "RS256", "ec.pub", "RS256 needs an RSA public key" },
        { "ES256", "rsa.pub", "ES256 needs an EC public key on the P-256 "
                              "curve" },
        { "ES256", "p384.pub", "ES256 needs an EC public key on the P-256 "
                               "curve" },
        { "RS256", "rsa1024.pub", "RS256 needs an RSA key of at least 2048 "
                                  "bits" },
        { "RS256", "rsa.key", "the key is not a PEM public key "
                              "(\"-----BEGIN PUBLIC KEY-----\")" },
        { "ES256", "README", "the key is not a PEM public key "
                             "(\"-----BEGIN PUBLIC KEY-----\")" },
        { "HS256", "rsa.pub", "the HS256 secret is a PEM key: give the "
                              "algorithm of the key (RS256 or ES256)" },
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pem = slurp(bad[i].file, &len);
        c = ngx_http_loom_jwt_conf_create(bad[i].alg, (u_char *) pem, len,
                                          NULL, NULL, 0, err, sizeof(err));
        assert_null(c);
        assert_string_equal(err, bad[i].message);
        free(pem);
    }

    assert_null(ngx_http_loom_jwt_conf_create("HS256", (u_char *) "short",
                                              5, NULL, NULL, 0, err,
                                              sizeof(err)));
    assert_string_equal(err, "an HS256 secret must be at least 32 bytes");
    assert_null(ngx_http_loom_jwt_conf_create("none", (u_char *) SECRET,
                                              strlen(SECRET), NULL, NULL, 0,
                                              err, sizeof(err)));
    assert_string_equal(err, "unknown algorithm (HS256, RS256 or ES256)");
    assert_null(ngx_http_loom_jwt_conf_create("hs256", (u_char *) SECRET,
                                              strlen(SECRET), NULL, NULL, 0,
                                              err, sizeof(err)));
    assert_null(ngx_http_loom_jwt_conf_create("HS256", (u_char *) SECRET,
                                              strlen(SECRET), NULL, NULL,
                                              86401, err, sizeof(err)));
    assert_string_equal(err, "the leeway must be 0 to 86400 seconds");
    assert_null(ngx_http_loom_jwt_conf_create("HS256", (u_char *) SECRET,
                                              strlen(SECRET), NULL, NULL,
                                              -1, err, sizeof(err)));

    /* empty iss and aud mean "not checked" */
    none.data = (u_char *) "";
    none.len = 0;
    c = ngx_http_loom_jwt_conf_create("HS256", (u_char *) SECRET,
                                      strlen(SECRET), &none, &none, 0, err,
                                      sizeof(err));
    assert_non_null(c);
    ngx_http_loom_jwt_claims_free(verify(c, hs(HS, VALID), NGX_OK));
    ngx_http_loom_jwt_conf_free(c);
}


static void
test_conf_load(void **state)
{
    int                        fd;
    char                       path[] = "/tmp/loom-jwt-XXXXXX";
    ngx_http_loom_jwt_conf_t  *c;

    /* the trailing newline of a secret file is not part of the secret */

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, SECRET "\n", strlen(SECRET) + 1),
                     (ssize_t) strlen(SECRET) + 1);
    close(fd);

    c = ngx_http_loom_jwt_conf_load("HS256", path, NULL, NULL, 0, err,
                                    sizeof(err));
    assert_non_null(c);
    ngx_http_loom_jwt_claims_free(verify(c, hs(HS, VALID), NGX_OK));
    ngx_http_loom_jwt_conf_free(c);

    unlink(path);

    assert_null(ngx_http_loom_jwt_conf_load("HS256", path, NULL, NULL, 0,
                                            err, sizeof(err)));
    assert_string_equal(err,
                        "cannot open the key file: No such file or directory");

    snprintf(path, sizeof(path), "%s", "/tmp/loom-jwt-XXXXXX");
    c = NULL;
    {
        char  pub[1024];

        snprintf(pub, sizeof(pub), "%s/keys/rsa.pub", LOOM_UNIT_DIR);
        c = ngx_http_loom_jwt_conf_load("RS256", pub, NULL, NULL, 0, err,
                                        sizeof(err));
    }
    assert_non_null(c);
    ngx_http_loom_jwt_conf_free(c);
}


static void
test_is_token(void **state)
{
    hs(HS, VALID);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *) tok, strlen(tok)),
                     1);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *) "a.b.", 4), 1);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *) "a.b", 3), 0);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *) "a.b.c.d", 7), 0);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *) "a.b.c=", 6), 0);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *)
                         "568095e5de460102ef4e7ef109b3b01c", 32), 0);
    assert_int_equal(ngx_http_loom_jwt_is_token((u_char *) "", 0), 0);
}


static void
test_reasons(void **state)
{
    assert_string_equal(ngx_http_loom_jwt_reason(NGX_HTTP_LOOM_JWT_EXPIRED),
                        "token expired");
    assert_string_equal(ngx_http_loom_jwt_reason(NGX_HTTP_LOOM_JWT_ALGORITHM),
                        "wrong algorithm");
    assert_string_equal(ngx_http_loom_jwt_reason(NGX_HTTP_LOOM_JWT_SIGNATURE),
                        "bad signature");
    assert_string_equal(ngx_http_loom_jwt_reason(NGX_HTTP_LOOM_JWT_AUDIENCE),
                        "wrong audience");
    assert_string_equal(ngx_http_loom_jwt_reason(
                            NGX_HTTP_LOOM_JWT_CLAIM_TYPE), "invalid claim");
    assert_string_equal(ngx_http_loom_jwt_reason(NGX_ERROR), "no memory");
    assert_string_equal(ngx_http_loom_jwt_reason(99), "");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_libjwt_token),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_algorithm),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_issuer_audience),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_conf),
        cmocka_unit_test(test_conf_load),
        cmocka_unit_test(test_is_token),
        cmocka_unit_test(test_reasons),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
