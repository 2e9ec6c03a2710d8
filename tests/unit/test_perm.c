/* SOURCES: ngx_http_loom_perm.c */

/*
 * The topic pattern language and permission sets (docs/auth.md).
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
#include "ngx_http_loom_perm.h"


static char  err[NGX_HTTP_LOOM_PERM_ERRLEN];


static ngx_str_t
str(const char *s)
{
    ngx_str_t  v;

    v.data = (u_char *) s;
    v.len = s ? strlen(s) : 0;

    return v;
}


/* a set whose publish list is the one pattern */

static ngx_http_loom_perm_t *
one(const char *pattern)
{
    ngx_str_t                  p;
    ngx_http_loom_perm_list_t  lists[NGX_HTTP_LOOM_PERM_NOPS];

    p = str(pattern);
    memset(lists, 0, sizeof(lists));
    lists[NGX_HTTP_LOOM_PERM_PUBLISH].patterns = &p;
    lists[NGX_HTTP_LOOM_PERM_PUBLISH].n = 1;
    err[0] = '\0';

    return ngx_http_loom_perm_compile(lists, err, sizeof(err));
}


static int
match_vars(const char *pattern, const char *topic, const char *client,
    const char *sub)
{
    int                         rc;
    ngx_str_t                   t;
    ngx_http_loom_perm_t       *perm;
    ngx_http_loom_perm_vars_t   vars;

    perm = one(pattern);
    if (perm == NULL) {
        fail_msg("pattern \"%s\" refused: %s", pattern, err);
    }

    t = str(topic);
    vars.client = str(client);
    vars.sub = str(sub);

    rc = ngx_http_loom_perm_check(perm, NGX_HTTP_LOOM_PERM_PUBLISH, &t,
                                  &vars);
    assert_true(rc == NGX_OK || rc == NGX_DECLINED);

    /* the other lists are empty */
    assert_int_equal(ngx_http_loom_perm_check(perm,
                                              NGX_HTTP_LOOM_PERM_SUBSCRIBE,
                                              &t, &vars),
                     NGX_DECLINED);

    ngx_http_loom_perm_free(perm);

    return rc == NGX_OK;
}


static int
match(const char *pattern, const char *topic)
{
    return match_vars(pattern, topic, NULL, NULL);
}


static void
refused(const char *pattern, const char *reason)
{
    ngx_http_loom_perm_t  *perm;

    perm = one(pattern);
    if (perm != NULL) {
        ngx_http_loom_perm_free(perm);
        fail_msg("pattern \"%s\" was accepted", pattern);
    }

    if (strstr(err, reason) == NULL) {
        fail_msg("pattern \"%s\": \"%s\" does not say \"%s\"", pattern, err,
                 reason);
    }

    assert_non_null(strstr(err, "publish[1]: "));
}


static void
test_literal(void **state)
{
    assert_true(match("chat", "chat"));
    assert_false(match("chat", "chat2"));
    assert_false(match("chat", "cha"));
    assert_false(match("chat", "Chat"));
    assert_false(match("chat", ""));
    assert_true(match("a/b/c", "a/b/c"));
    assert_false(match("a/b/c", "a/b"));
    assert_false(match("a/b", "a/b/c"));
    assert_false(match("a/b", "a/c"));
    /* empty segments are segments */
    assert_true(match("a//b", "a//b"));
    assert_false(match("a//b", "a/b"));
    assert_true(match("a/", "a/"));
    assert_false(match("a/", "a"));
    assert_true(match("/a", "/a"));
    /* any bytes, UTF-8 included */
    assert_true(match("t\xc3\xa9", "t\xc3\xa9"));
    assert_true(match("a b.c:d", "a b.c:d"));
}


static void
test_star(void **state)
{
    assert_true(match("*", "chat"));
    assert_true(match("*", ""));
    assert_false(match("*", "a/b"));
    assert_true(match("a/*", "a/b"));
    assert_true(match("a/*", "a/"));
    assert_false(match("a/*", "a"));
    assert_false(match("a/*", "a/b/c"));
    assert_true(match("a/*/c", "a/xyz/c"));
    assert_false(match("a/*/c", "a/x/y/c"));

    /* within a segment */
    assert_true(match("user-*", "user-1"));
    assert_true(match("user-*", "user-"));
    assert_false(match("user-*", "user"));
    assert_false(match("user-*", "admin-1"));
    assert_true(match("*-log", "app-log"));
    assert_false(match("*-log", "app-logs"));
    assert_true(match("a*b*c", "abc"));
    assert_true(match("a*b*c", "aXXbYYc"));
    assert_true(match("a*b*c", "abbbc"));
    assert_false(match("a*b*c", "acb"));
    assert_false(match("a*a", "a"));
    assert_true(match("a*a", "aa"));
    assert_true(match("*ab*ab*", "xabyab"));
    assert_false(match("*ab*ab*", "xaby"));
    assert_false(match("a*b", "a/b"));
    /* the leftmost choice of a middle chunk is not a trap */
    assert_true(match("*aab", "aaab"));
    assert_true(match("x*ab*abc", "xababcabc"));
}


static void
test_double_star(void **state)
{
    assert_true(match("**", "chat"));
    assert_true(match("**", "a/b/c"));
    assert_true(match("**", ""));
    assert_true(match("a/**", "a"));
    assert_true(match("a/**", "a/b"));
    assert_true(match("a/**", "a/b/c"));
    assert_false(match("a/**", "ab"));
    assert_false(match("a/**", "b/a"));
    assert_true(match("**/z", "z"));
    assert_true(match("**/z", "a/b/z"));
    assert_false(match("**/z", "a/b/zz"));
    assert_false(match("**/z", "z/a"));
    assert_true(match("a/**/z", "a/z"));
    assert_true(match("a/**/z", "a/b/c/z"));
    assert_false(match("a/**/z", "a/b/c"));
    assert_true(match("a/**/b/**/c", "a/x/b/y/b/c"));
    assert_true(match("a/**/b/*/c", "a/b/b/x/c"));
    assert_false(match("a/**/b/*/c", "a/b/x/y/c"));
    assert_true(match("**/**", "a"));
    assert_true(match("a/**/*", "a/b"));
    assert_false(match("a/**/*", "a"));
    /* many "**" and a long topic: no blow-up */
    assert_false(match("**/a/**/a/**/a/**/a/**/a/**/b",
                       "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/c"));
}


static void
test_escape(void **state)
{
    assert_true(match("a\\*", "a*"));
    assert_false(match("a\\*", "ab"));
    assert_true(match("\\{sub\\}", "{sub}"));
    assert_true(match("\\\\", "\\"));
    assert_true(match("\\*\\*", "**"));
    assert_false(match("\\*\\*", "a"));
    /* a topic holding '*' is matched by '*' too */
    assert_true(match("*", "*"));
}


static void
test_refused(void **state)
{
    refused("", "empty pattern");
    refused("a**", "whole segment");
    refused("**a", "whole segment");
    refused("a/**b/c", "whole segment");
    refused("***", "whole segment");
    refused("{user}", "unknown placeholder");
    refused("{client", "without \"}\"");
    refused("a}", "without \"{\"");
    refused("a\\b", "must be followed by");
    refused("a\\", "must be followed by");
    refused("{}", "unknown placeholder");
    refused("{Client}", "unknown placeholder");
}


static void
test_too_long(void **state)
{
    char  p[NGX_HTTP_LOOM_PERM_MAX_PATTERN + 2];

    memset(p, 'a', sizeof(p) - 1);
    p[sizeof(p) - 1] = '\0';
    refused(p, "longer than 1024 bytes");

    p[NGX_HTTP_LOOM_PERM_MAX_PATTERN] = '\0';
    assert_true(match(p, p));
}


static void
test_placeholders(void **state)
{
    assert_true(match_vars("users/{client}", "users/alice", "alice", NULL));
    assert_false(match_vars("users/{client}", "users/bob", "alice", NULL));
    assert_false(match_vars("users/{client}", "users/alice2", "alice",
                            NULL));
    assert_true(match_vars("users/{sub}/**", "users/u1/inbox/x", NULL,
                           "u1"));
    assert_false(match_vars("users/{sub}/**", "users/u2/inbox", NULL,
                            "u1"));
    assert_true(match_vars("{sub}-{client}", "u1-c1", "c1", "u1"));
    assert_false(match_vars("{sub}-{client}", "c1-u1", "c1", "u1"));
    assert_true(match_vars("in-{sub}-*", "in-u1-x", NULL, "u1"));
    assert_true(match_vars("*{sub}*", "xxu1yy", NULL, "u1"));
    assert_false(match_vars("*{sub}*", "xxu2yy", NULL, "u1"));
    assert_true(match_vars("a/{client}{sub}", "a/cs", "c", "s"));

    /* absent or empty: the pattern matches nothing */
    assert_false(match_vars("users/{client}", "users/", NULL, NULL));
    assert_false(match_vars("users/{client}", "users/", "", NULL));
    assert_false(match_vars("users/{sub}/**", "users//x", "x", ""));
    /* without placeholders, the values do not matter */
    assert_true(match_vars("users/*", "users/x", "*", "**"));
}


/* CVE-2017-7650: a value with pattern characters must not widen access */

static void
test_placeholder_bypass(void **state)
{
    static const char  *bad[] = {
        "*", "**", "a*", "{sub}", "{client}", "{", "}", "\\", "a/b", "/",
        "a\tb", "a\nb", "\x7f", "\x01",
    };

    ngx_uint_t  i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* not even the topic spelled exactly as the value */
        if (match_vars("users/{client}", "users/*", bad[i], "ok")
            || match_vars("users/{client}", "users/x", bad[i], "ok")
            || match_vars("users/{sub}", "users/*", "ok", bad[i]))
        {
            fail_msg("value %lu was substituted", (unsigned long) i);
        }

        assert_false(match_vars("users/{sub}/**", "users/a/b", "ok",
                                bad[i]));

        if (strchr(bad[i], '/') == NULL && strchr(bad[i], '{') == NULL) {
            /* the literal topic the value spells */
            char  topic[64];

            snprintf(topic, sizeof(topic), "users/%s", bad[i]);
            assert_false(match_vars("users/{sub}", topic, "ok", bad[i]));
        }

        assert_int_equal(ngx_http_loom_perm_value_ok((u_char *) bad[i],
                                                     strlen(bad[i])),
                         NGX_DECLINED);
    }

    /* a good value next to a bad one: only the bad one's patterns fail */
    assert_true(match_vars("users/{client}", "users/c1", "c1", "*"));

    assert_int_equal(ngx_http_loom_perm_value_ok((u_char *) "alice.b-c_d@e",
                                                 13),
                     NGX_OK);
    assert_int_equal(ngx_http_loom_perm_value_ok((u_char *) "", 0),
                     NGX_DECLINED);
}


static void
test_sets(void **state)
{
    ngx_str_t                   pub[2], sub[1], t;
    ngx_http_loom_perm_t       *perm;
    ngx_http_loom_perm_vars_t   vars;
    ngx_http_loom_perm_list_t   lists[NGX_HTTP_LOOM_PERM_NOPS];

    pub[0] = str("sensors/{client}/*");
    pub[1] = str("chat");
    sub[0] = str("**");

    lists[NGX_HTTP_LOOM_PERM_PUBLISH].patterns = pub;
    lists[NGX_HTTP_LOOM_PERM_PUBLISH].n = 2;
    lists[NGX_HTTP_LOOM_PERM_SUBSCRIBE].patterns = sub;
    lists[NGX_HTTP_LOOM_PERM_SUBSCRIBE].n = 1;
    lists[NGX_HTTP_LOOM_PERM_ADMIN].patterns = NULL;
    lists[NGX_HTTP_LOOM_PERM_ADMIN].n = 0;

    perm = ngx_http_loom_perm_compile(lists, err, sizeof(err));
    assert_non_null(perm);

    vars.client = str("c7");
    vars.sub = str("");

    t = str("sensors/c7/temp");
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_PUBLISH, &t, &vars), NGX_OK);
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_SUBSCRIBE, &t, &vars), NGX_OK);
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_ADMIN, &t, &vars), NGX_DECLINED);
    assert_int_equal(ngx_http_loom_perm_check(perm, 7, &t, &vars),
                     NGX_DECLINED);

    t = str("sensors/c8/temp");
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_PUBLISH, &t, &vars),
                     NGX_DECLINED);
    assert_int_equal(ngx_http_loom_perm_visible(perm, &t, &vars), NGX_OK);

    t = str("chat");
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_PUBLISH, &t, NULL), NGX_OK);

    /* no values at all: placeholder patterns match nothing */
    t = str("sensors/c7/temp");
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_PUBLISH, &t, NULL),
                     NGX_DECLINED);

    ngx_http_loom_perm_free(perm);

    /* the empty set allows nothing */
    memset(lists, 0, sizeof(lists));
    perm = ngx_http_loom_perm_compile(lists, err, sizeof(err));
    assert_non_null(perm);
    assert_int_equal(ngx_http_loom_perm_visible(perm, &t, &vars),
                     NGX_DECLINED);
    ngx_http_loom_perm_free(perm);

    /* everything */
    perm = ngx_http_loom_perm_everything();
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_ADMIN, &t, NULL), NGX_OK);
    ngx_http_loom_perm_free(perm);
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_SUBSCRIBE, &t, NULL), NGX_OK);
}


static json_t *
j(const char *text)
{
    json_t        *v;
    json_error_t   e;

    v = json_loads(text, JSON_DECODE_ANY, &e);
    assert_non_null(v);

    return v;
}


static void
test_json(void **state)
{
    json_t                *pub, *adm;
    ngx_str_t              t;
    ngx_http_loom_perm_t  *perm;

    pub = j("[\"a/*\", \"b\"]");
    adm = j("[]");
    perm = ngx_http_loom_perm_from_json(pub, NULL, adm, err, sizeof(err));
    assert_non_null(perm);

    t = str("a/x");
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_PUBLISH, &t, NULL), NGX_OK);
    assert_int_equal(ngx_http_loom_perm_check(perm,
                         NGX_HTTP_LOOM_PERM_SUBSCRIBE, &t, NULL),
                     NGX_DECLINED);
    ngx_http_loom_perm_free(perm);
    json_decref(pub);
    json_decref(adm);

    pub = j("\"a\"");
    assert_null(ngx_http_loom_perm_from_json(NULL, pub, NULL, err,
                                             sizeof(err)));
    assert_string_equal(err, "subscribe: not an array of strings");
    json_decref(pub);

    pub = j("[\"a\", 1]");
    assert_null(ngx_http_loom_perm_from_json(NULL, NULL, pub, err,
                                             sizeof(err)));
    assert_string_equal(err, "admin[2]: not a string");
    json_decref(pub);

    pub = j("[\"a\", \"b**\"]");
    assert_null(ngx_http_loom_perm_from_json(pub, NULL, NULL, err,
                                             sizeof(err)));
    assert_string_equal(err, "publish[2]: \"**\" must be a whole segment");
    json_decref(pub);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_star),
        cmocka_unit_test(test_double_star),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_placeholders),
        cmocka_unit_test(test_placeholder_bypass),
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_json),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
