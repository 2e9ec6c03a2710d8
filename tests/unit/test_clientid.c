/* SOURCES: ngx_http_loom_clientid_key.c */

/*
 * The names of ClientId claims: the key and its hash tag, the owner and
 * the test for a claim of this node, and the replies of claim.lua.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_clientid.h"


#define NODE  "0123456789abcdef"


static void
key_is(const char *prefix, const char *id, size_t idlen, const char *want,
    size_t wantlen)
{
    u_char     buf[512], *p;
    ngx_str_t  pr, cid;

    pr.data = (u_char *) prefix;
    pr.len = strlen(prefix);
    cid.data = (u_char *) id;
    cid.len = idlen;

    assert_int_equal(ngx_http_loom_claim_key_len(&pr, &cid), wantlen);

    memset(buf, 'X', sizeof(buf));
    p = ngx_http_loom_claim_key(buf, &pr, &cid);

    assert_int_equal(p - buf, wantlen);
    assert_memory_equal(buf, want, wantlen);
    assert_int_equal(buf[wantlen], 'X');
}


static void
test_key(void **state)
{
    key_is("loom:", "alice", 5, "loom:{c:alice}", 14);
    key_is("", "a", 1, "{c:a}", 5);

    /* the id as it is: braces, spaces, bytes above 0x7f */
    key_is("p:", "a}b{c", 5, "p:{c:a}b{c}", 11);
    key_is("p:", "\xc3\xa9 x", 4, "p:{c:\xc3\xa9 x}", 10);
}


static void
test_key_per_id(void **state)
{
    u_char     a[64], b[64], *pa, *pb;
    ngx_str_t  pr = ngx_string("loom:");
    ngx_str_t  x = ngx_string("ab");
    ngx_str_t  y = ngx_string("a");

    /* ids that are prefixes of each other still give different keys */

    pa = ngx_http_loom_claim_key(a, &pr, &x);
    pb = ngx_http_loom_claim_key(b, &pr, &y);

    assert_false(pa - a == pb - b && memcmp(a, b, pa - a) == 0);
}


static void
owner_is(ngx_pid_t pid, ngx_atomic_uint_t number, const char *want)
{
    u_char  buf[NGX_HTTP_LOOM_CLAIM_OWNER_LEN + 1], *p;

    p = ngx_http_loom_claim_owner(buf, (u_char *) NODE, pid, number);
    *p = '\0';

    assert_true((size_t) (p - buf) <= NGX_HTTP_LOOM_CLAIM_OWNER_LEN);
    assert_string_equal((char *) buf, want);
}


static void
test_owner(void **state)
{
    owner_is(1, 0, NODE ":1:0");
    owner_is(12345, 678, NODE ":12345:678");
    owner_is(2147483647, (ngx_atomic_uint_t) -1,
             NODE ":2147483647:18446744073709551615");
}


static void
test_same_node(void **state)
{
    const char  *mine = NODE ":12:3";
    const char  *other = "fedcba9876543210:12:3";

    assert_true(ngx_http_loom_claim_same_node((u_char *) mine,
                                              strlen(mine),
                                              (u_char *) NODE));
    assert_false(ngx_http_loom_claim_same_node((u_char *) other,
                                               strlen(other),
                                               (u_char *) NODE));

    /* too short, or no separator after the node */
    assert_false(ngx_http_loom_claim_same_node((u_char *) NODE, 16,
                                               (u_char *) NODE));
    assert_false(ngx_http_loom_claim_same_node((u_char *) NODE "x12", 19,
                                               (u_char *) NODE));
    assert_false(ngx_http_loom_claim_same_node((u_char *) "0123", 4,
                                               (u_char *) NODE));
}


static void
test_reply(void **state)
{
    ngx_str_t   holder;
    redisReply  r;

    assert_int_equal(ngx_http_loom_claim_reply(NULL, &holder), NGX_ERROR);

    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_INTEGER;
    r.integer = 1;
    assert_int_equal(ngx_http_loom_claim_reply(&r, &holder), NGX_OK);

    r.integer = 0;
    assert_int_equal(ngx_http_loom_claim_reply(&r, &holder), NGX_ERROR);

    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_STRING;
    r.str = NODE ":1:2";
    r.len = strlen(r.str);
    holder.len = 0;
    assert_int_equal(ngx_http_loom_claim_reply(&r, &holder), NGX_DECLINED);
    assert_int_equal(holder.len, r.len);
    assert_ptr_equal(holder.data, r.str);

    /* an empty string is no owner */
    r.len = 0;
    assert_int_equal(ngx_http_loom_claim_reply(&r, &holder), NGX_ERROR);

    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_ERROR;
    r.str = "NOSCRIPT No matching script";
    r.len = strlen(r.str);
    assert_int_equal(ngx_http_loom_claim_reply(&r, &holder), NGX_ERROR);

    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_NIL;
    assert_int_equal(ngx_http_loom_claim_reply(&r, &holder), NGX_ERROR);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_key_per_id),
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_same_node),
        cmocka_unit_test(test_reply),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
