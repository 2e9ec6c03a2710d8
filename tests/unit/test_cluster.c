/* SOURCES: ngx_http_loom_cluster.c */

/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_cluster.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>


#define SLOT(s)  ngx_http_loom_cluster_slot((u_char *) s, sizeof(s) - 1)


static void
test_crc16(void **state)
{
    /* the check value of CRC16/XMODEM */
    assert_int_equal(ngx_http_loom_cluster_crc16((u_char *) "123456789", 9),
                     0x31c3);
    assert_int_equal(ngx_http_loom_cluster_crc16((u_char *) "", 0), 0);
}


static void
test_slot(void **state)
{
    /* as CLUSTER KEYSLOT answers */
    assert_int_equal(SLOT("somekey"), 11058);
    assert_int_equal(SLOT("foo"), 12182);
    assert_int_equal(SLOT("foo{hash_tag}"), 2515);
    assert_int_equal(SLOT("bar{hash_tag}"), 2515);

    /* only the first tag counts; an empty one means the whole key */
    assert_int_equal(SLOT("a{hash_tag}{x}"), 2515);
    assert_int_equal(SLOT("{}foo"),
                     ngx_http_loom_cluster_crc16((u_char *) "{}foo", 5)
                     & 16383);
    assert_int_equal(SLOT("{foo"),
                     ngx_http_loom_cluster_crc16((u_char *) "{foo", 4)
                     & 16383);
    assert_int_equal(SLOT("x{foo}}"), 12182);

    /* a topic's keys and channel share one slot */
    assert_int_equal(SLOT("loom:{t:chat}"), SLOT("loom:{t:chat}:h"));
    assert_int_equal(SLOT("loom:{t:chat}"), SLOT("loom:{t:chat}:msg"));
    assert_int_equal(SLOT("loom:{t:chat}"), SLOT("{t:chat}"));
}


static void
redirect(const char *text, ngx_int_t rc, ngx_uint_t kind, ngx_uint_t slot,
    const char *host, in_port_t port)
{
    ngx_http_loom_cluster_redirect_t  rd;

    assert_int_equal(ngx_http_loom_cluster_redirect((u_char *) text,
                                                    strlen(text), &rd),
                     rc);
    assert_int_equal(rd.kind, kind);

    if (host) {
        assert_int_equal(rd.slot, slot);
        assert_int_equal(rd.host.len, strlen(host));
        assert_memory_equal(rd.host.data, host, strlen(host));
        assert_int_equal(rd.port, port);
    }
}


static void
test_redirect(void **state)
{
    redirect("MOVED 3999 127.0.0.1:6381", NGX_OK,
             NGX_HTTP_LOOM_CLUSTER_MOVED, 3999, "127.0.0.1", 6381);
    redirect("ASK 16383 10.0.0.2:7000", NGX_OK,
             NGX_HTTP_LOOM_CLUSTER_ASK, 16383, "10.0.0.2", 7000);
    redirect("MOVED 0 ::1:7001", NGX_OK,
             NGX_HTTP_LOOM_CLUSTER_MOVED, 0, "::1", 7001);
    redirect("MOVED 12 [::1]:7001", NGX_OK,
             NGX_HTTP_LOOM_CLUSTER_MOVED, 12, "::1", 7001);
    redirect("TRYAGAIN Multiple keys request during rehashing of slot",
             NGX_OK, NGX_HTTP_LOOM_CLUSTER_TRYAGAIN, 0, NULL, 0);
    redirect("CLUSTERDOWN Hash slot not served", NGX_OK,
             NGX_HTTP_LOOM_CLUSTER_DOWN, 0, NULL, 0);

    /* not redirections */
    redirect("ERR unknown command", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("NOSCRIPT No matching script", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("MOVED 16384 127.0.0.1:6381", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("MOVED 12 127.0.0.1", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("MOVED 12 127.0.0.1:0", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("MOVED 12 127.0.0.1:65536", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("MOVED x 127.0.0.1:7000", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("MOVED 12", NGX_DECLINED, 0, 0, NULL, 0);
    redirect("ASKING", NGX_DECLINED, 0, 0, NULL, 0);
}


/* replies built by hand, as hiredis's reader would */

static redisReply   pool[64];
static redisReply  *ptrs[128];
static ngx_uint_t   npool, nptrs;


static redisReply *
integer(long long v)
{
    redisReply  *r = &pool[npool++];

    memset(r, 0, sizeof(redisReply));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}


static redisReply *
string(const char *s)
{
    redisReply  *r = &pool[npool++];

    memset(r, 0, sizeof(redisReply));
    r->type = REDIS_REPLY_STRING;
    r->str = (char *) s;
    r->len = strlen(s);
    return r;
}


static redisReply *
array(size_t n, ...)
{
    size_t       i;
    va_list      ap;
    redisReply  *r = &pool[npool++];

    memset(r, 0, sizeof(redisReply));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = &ptrs[nptrs];

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        ptrs[nptrs++] = va_arg(ap, redisReply *);
    }
    va_end(ap);

    return r;
}


static void
test_slots(void **state)
{
    redisReply                     *reply;
    ngx_uint_t                      n;
    ngx_http_loom_cluster_range_t   rg[4];

    npool = 0;
    nptrs = 0;

    reply = array(2,
                  array(4, integer(0), integer(5460),
                        array(3, string("127.0.0.1"), integer(7000),
                              string("id0")),
                        array(3, string("127.0.0.1"), integer(7003),
                              string("id3"))),
                  array(3, integer(5461), integer(16383),
                        array(2, string(""), integer(7001))));

    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 4, &n), NGX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rg[0].first, 0);
    assert_int_equal(rg[0].last, 5460);
    assert_int_equal(rg[0].port, 7000);
    assert_int_equal(rg[0].host.len, 9);
    assert_memory_equal(rg[0].host.data, "127.0.0.1", 9);
    assert_int_equal(rg[1].first, 5461);
    assert_int_equal(rg[1].last, 16383);
    assert_int_equal(rg[1].host.len, 0);
    assert_int_equal(rg[1].port, 7001);

    /* more ranges than room */
    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 1, &n),
                     NGX_ERROR);

    /* malformed: a slot out of range, first above last, no master */
    npool = 0;
    nptrs = 0;

    reply = array(1, array(3, integer(0), integer(16384),
                           array(2, string("h"), integer(1))));
    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 4, &n),
                     NGX_ERROR);

    reply = array(1, array(3, integer(9), integer(8),
                           array(2, string("h"), integer(1))));
    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 4, &n),
                     NGX_ERROR);

    reply = array(1, array(2, integer(0), integer(8)));
    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 4, &n),
                     NGX_ERROR);

    reply = array(1, array(3, integer(0), integer(8),
                           array(2, string("h"), integer(0))));
    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 4, &n),
                     NGX_ERROR);

    assert_int_equal(ngx_http_loom_cluster_slots(string("ERR"), rg, 4, &n),
                     NGX_ERROR);

    /* an empty cluster */
    reply = array(0);
    assert_int_equal(ngx_http_loom_cluster_slots(reply, rg, 4, &n), NGX_OK);
    assert_int_equal(n, 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_crc16),
        cmocka_unit_test(test_slot),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_slots),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
