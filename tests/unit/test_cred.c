/* SOURCES: ngx_http_loom_cred.c */

/*
 * Where a credential is read from: Authorization, access_token,
 * Sec-WebSocket-Protocol.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_cred.h"


#define JWT  "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJl-_x"


static char  out[1024];


static ngx_int_t
authorization(const char *value)
{
    ngx_int_t  rc;
    ngx_str_t  v, cred;

    v.data = (u_char *) value;
    v.len = strlen(value);
    out[0] = '\0';

    rc = ngx_http_loom_cred_authorization(&v, &cred);

    if (rc == NGX_OK) {
        assert_true(cred.data >= v.data
                    && cred.data + cred.len <= v.data + v.len);
        snprintf(out, sizeof(out), "%.*s", (int) cred.len, cred.data);
    }

    return rc;
}


static ngx_int_t
query(const char *args)
{
    u_char     buf[1024];
    ngx_int_t  rc;
    ngx_str_t  a, cred;

    a.data = (u_char *) args;
    a.len = strlen(args);
    out[0] = '\0';

    rc = ngx_http_loom_cred_query(&a, buf, &cred);

    if (rc == NGX_OK) {
        assert_true(cred.len > 0 && cred.len <= a.len);
        snprintf(out, sizeof(out), "%.*s", (int) cred.len, cred.data);
    }

    return rc;
}


static ngx_int_t
subprotocol(const char *value)
{
    ngx_int_t  rc;
    ngx_str_t  v, cred;

    v.data = (u_char *) value;
    v.len = strlen(value);
    out[0] = '\0';

    rc = ngx_http_loom_cred_subprotocol(&v, &cred);

    if (rc == NGX_OK) {
        snprintf(out, sizeof(out), "%.*s", (int) cred.len, cred.data);
    }

    return rc;
}


static void
test_authorization(void **state)
{
    assert_int_equal(authorization("k1-secret"), NGX_OK);
    assert_string_equal(out, "k1-secret");
    assert_int_equal(authorization("Bearer " JWT), NGX_OK);
    assert_string_equal(out, JWT);
    assert_int_equal(authorization("bEARER \t k1"), NGX_OK);
    assert_string_equal(out, "k1");
    assert_int_equal(authorization("Bearer\tk1  "), NGX_OK);
    assert_string_equal(out, "k1");

    /* not the scheme: the whole value is the key */
    assert_int_equal(authorization("Bearerk1"), NGX_OK);
    assert_string_equal(out, "Bearerk1");
    assert_int_equal(authorization("Bearer"), NGX_OK);
    assert_string_equal(out, "Bearer");
    assert_int_equal(authorization("Basic YTpi"), NGX_OK);
    assert_string_equal(out, "Basic YTpi");

    assert_int_equal(authorization(""), NGX_DECLINED);
    assert_int_equal(authorization("   "), NGX_DECLINED);
    /* trailing white space goes first, as nginx trims it anyway */
    assert_int_equal(authorization("Bearer "), NGX_OK);
    assert_string_equal(out, "Bearer");
    assert_int_equal(authorization("Bearer \t "), NGX_OK);
    assert_string_equal(out, "Bearer");
}


static void
test_query(void **state)
{
    assert_int_equal(query("access_token=" JWT), NGX_OK);
    assert_string_equal(out, JWT);
    assert_int_equal(query("a=1&access_token=k1&b=2"), NGX_OK);
    assert_string_equal(out, "k1");
    assert_int_equal(query("a=1&access_token=k%2B1%2f%3D+x"), NGX_OK);
    assert_string_equal(out, "k+1/= x");
    assert_int_equal(query("access_token=%e2%82%ac"), NGX_OK);
    assert_string_equal(out, "\xe2\x82\xac");

    /* other names */
    assert_int_equal(query(""), NGX_DECLINED);
    assert_int_equal(query("token=k1"), NGX_DECLINED);
    assert_int_equal(query("xaccess_token=k1"), NGX_DECLINED);
    assert_int_equal(query("access_tokens=k1"), NGX_DECLINED);
    assert_int_equal(query("Access_Token=k1"), NGX_DECLINED);
    assert_int_equal(query("a=access_token=k1"), NGX_DECLINED);
    /* empty */
    assert_int_equal(query("access_token="), NGX_DECLINED);
    assert_int_equal(query("access_token&a=1"), NGX_DECLINED);

    /* malformed */
    assert_int_equal(query("access_token=k%"), NGX_ERROR);
    assert_int_equal(query("access_token=k%2"), NGX_ERROR);
    assert_int_equal(query("access_token=k%zz"), NGX_ERROR);
    assert_int_equal(query("access_token=k%00x"), NGX_ERROR);
    assert_int_equal(query("access_token=a&access_token=a"), NGX_ERROR);
    {
        u_char     buf[32];
        ngx_str_t  a, cred;

        /* a raw NUL, as found by fuzzing: not a credential either */
        a.data = (u_char *) "access_token=k\0x";
        a.len = 16;
        assert_int_equal(ngx_http_loom_cred_query(&a, buf, &cred),
                         NGX_ERROR);
    }
    assert_int_equal(query("access_token=a&access_token"), NGX_ERROR);
    assert_int_equal(query("access_token=&access_token=a"), NGX_ERROR);
}


static void
test_subprotocol(void **state)
{
    assert_int_equal(subprotocol("dataloom.v2, dataloom.token." JWT),
                     NGX_OK);
    assert_string_equal(out, JWT);
    assert_int_equal(subprotocol("dataloom.token." JWT ",dataloom.v2"),
                     NGX_OK);
    assert_string_equal(out, JWT);
    assert_int_equal(subprotocol(" ,dataloom.token.k1\t, "), NGX_OK);
    assert_string_equal(out, "k1");
    assert_int_equal(subprotocol("dataloom.token.a!#$%&'*+-.^_`|~Z9"),
                     NGX_OK);
    assert_string_equal(out, "a!#$%&'*+-.^_`|~Z9");

    assert_int_equal(subprotocol(""), NGX_DECLINED);
    assert_int_equal(subprotocol("dataloom.v2"), NGX_DECLINED);
    assert_int_equal(subprotocol("dataloom.tokenk1"), NGX_DECLINED);
    assert_int_equal(subprotocol("Dataloom.Token.k1"), NGX_DECLINED);
    assert_int_equal(subprotocol("x-dataloom.token.k1"), NGX_DECLINED);

    assert_int_equal(subprotocol("dataloom.token."), NGX_ERROR);
    assert_int_equal(subprotocol("dataloom.v2, dataloom.token. "),
                     NGX_ERROR);
    assert_int_equal(subprotocol("dataloom.token.a=b"), NGX_ERROR);
    assert_int_equal(subprotocol("dataloom.token.a/b"), NGX_ERROR);
    assert_int_equal(subprotocol("dataloom.token.a b"), NGX_ERROR);
    assert_int_equal(subprotocol("dataloom.token.a\"b"), NGX_ERROR);
    assert_int_equal(subprotocol("dataloom.token.a, dataloom.token.a"),
                     NGX_ERROR);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_authorization),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_subprotocol),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
