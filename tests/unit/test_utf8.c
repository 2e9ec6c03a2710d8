/* SOURCES: ngx_http_loom_utf8.c */

/*
 * The incremental UTF-8 validator, checked against a plain reference
 * decoder on every split point of every input.
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
#include "ngx_http_loom_utf8.h"
#include "utf8_reference.h"


static int
split_check(const u_char *p, size_t n, size_t cut)
{
    ngx_uint_t  st;

    st = ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT, (u_char *) p,
                                  cut);
    st = ngx_http_loom_utf8_check(st, (u_char *) p + cut, n - cut);

    return st == NGX_HTTP_LOOM_UTF8_ACCEPT;
}


static void
check_all_splits(const char *s, size_t n)
{
    size_t  cut;
    int     want;

    want = utf8_reference_valid((const u_char *) s, n);

    for (cut = 0; cut <= n; cut++) {
        assert_int_equal(split_check((const u_char *) s, n, cut), want);
    }
}


static void
test_known_strings(void **state)
{
    const char  *valid[] = {
        "", "plain ascii", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xc2\x80",
        "\xe0\xa0\x80", "\xf0\x90\x80\x80", "long ascii run 1234567890 x",
    };
    const char  *invalid[] = {
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80",
        "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
        "\xfe", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "ok\xc3(",
        "\xe2\x28\xa1", "12345678\xc3\x28",
    };
    size_t       i;

    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        assert_true(utf8_reference_valid((const u_char *) valid[i],
                                         strlen(valid[i])));
        check_all_splits(valid[i], strlen(valid[i]));
    }

    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        assert_false(utf8_reference_valid((const u_char *) invalid[i],
                               strlen(invalid[i])));
        check_all_splits(invalid[i], strlen(invalid[i]));
    }
}


static void
test_every_two_and_three_byte_sequence(void **state)
{
    u_char    s[3];
    unsigned  a, b, c;

    for (a = 0x80; a < 0x100; a++) {
        for (b = 0; b < 0x100; b++) {
            s[0] = (u_char) a;
            s[1] = (u_char) b;
            check_all_splits((char *) s, 2);
        }
    }

    for (a = 0xe0; a < 0xf0; a++) {
        for (b = 0x70; b < 0xd0; b++) {
            for (c = 0x70; c < 0xd0; c += 7) {
                s[0] = (u_char) a;
                s[1] = (u_char) b;
                s[2] = (u_char) c;
                check_all_splits((char *) s, 3);
            }
        }
    }
}


static void
test_random(void **state)
{
    u_char    s[64];
    unsigned  seed = 12345;
    size_t    i, n, round;

    for (round = 0; round < 200000; round++) {
        n = (seed = seed * 1103515245 + 12345) % sizeof(s);

        for (i = 0; i < n; i++) {
            seed = seed * 1103515245 + 12345;
            /* mostly ASCII and lead/continuation bytes */
            s[i] = (u_char) ((seed >> 16) & ((seed & 3) ? 0xff : 0x7f));
        }

        check_all_splits((char *) s, n);
    }
}


static void
test_reject_is_sticky(void **state)
{
    ngx_uint_t  st;

    st = ngx_http_loom_utf8_check(NGX_HTTP_LOOM_UTF8_ACCEPT,
                                  (u_char *) "\xff", 1);
    assert_int_equal(st, NGX_HTTP_LOOM_UTF8_REJECT);

    st = ngx_http_loom_utf8_check(st, (u_char *) "abc", 3);
    assert_int_equal(st, NGX_HTTP_LOOM_UTF8_REJECT);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_strings),
        cmocka_unit_test(test_every_two_and_three_byte_sequence),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_reject_is_sticky),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
