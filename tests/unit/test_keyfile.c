/* SOURCES: ngx_http_loom_keyfile.c ngx_http_loom_perm.c */

/*
 * The loom_auth_file format and the lookup of a presented key.
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
#include "ngx_http_loom_keyfile.h"


/* printf %s KEY | sha256sum */
#define K1      "k1-7f3a9c"
#define K1_HEX  "568095e5de460102ef4e7ef109b3b01c" \
                "7c7f17213d577c103f1bd63d0a4c8ef1"
#define K2      "k2-b81e40"
#define K2_HEX  "B32166157520187C64E9D7C751F0ACEC" \
                "43C5D3420970A87C1592727DED18D188"


static char  err[NGX_HTTP_LOOM_KEYFILE_ERRLEN];


static ngx_http_loom_keyfile_t *
parse(const char *text)
{
    err[0] = '\0';

    return ngx_http_loom_keyfile_parse((u_char *) text, strlen(text), err,
                                       sizeof(err));
}


static void
refused(const char *text, const char *message)
{
    ngx_http_loom_keyfile_t  *kf;

    kf = parse(text);
    if (kf != NULL) {
        ngx_http_loom_keyfile_free(kf);
        fail_msg("accepted: %s", text);
    }

    if (strcmp(err, message) != 0) {
        fail_msg("\"%s\" instead of \"%s\"", err, message);
    }
}


static ngx_int_t
allowed(ngx_http_loom_key_t *key, ngx_uint_t op, const char *topic)
{
    ngx_str_t                  t;
    ngx_http_loom_perm_vars_t  vars;

    t.data = (u_char *) topic;
    t.len = strlen(topic);
    vars.client.data = (u_char *) "c1";
    vars.client.len = 2;
    vars.sub = key->name;

    return ngx_http_loom_perm_check(key->perm, op, &t, &vars);
}


static void
test_hash(void **state)
{
    u_char  h[NGX_HTTP_LOOM_KEY_HASH_LEN];

    /* FIPS 180-2, "abc" */
    static const u_char  abc[] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
        0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
        0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad
    };

    assert_int_equal(ngx_http_loom_keyfile_hash((u_char *) "abc", 3, h),
                     NGX_OK);
    assert_memory_equal(h, abc, sizeof(abc));
}


static void
test_valid(void **state)
{
    ngx_http_loom_key_t      *key;
    ngx_http_loom_keyfile_t  *kf;

    kf = parse("{\"keys\": [\n"
               "  {\"name\": \"dashboard\", \"sha256\": \"" K1_HEX "\",\n"
               "   \"subscribe\": [\"**\"]},\n"
               "  {\"name\": \"sensor-7\", \"sha256\": \"" K2_HEX "\",\n"
               "   \"publish\": [\"sensors/{sub}/*\"],\n"
               "   \"subscribe\": [\"sensors/{sub}/**\"],\n"
               "   \"admin\": [\"sensors/{sub}/{client}\"]}\n"
               "]}\n");
    if (kf == NULL) {
        fail_msg("%s", err);
    }

    assert_int_equal(kf->nkeys, 2);
    assert_string_equal(kf->keys[0].name.data, "dashboard");
    assert_int_equal(kf->keys[0].name.len, 9);
    assert_string_equal(kf->keys[1].name.data, "sensor-7");

    key = ngx_http_loom_keyfile_lookup(kf, (u_char *) K1, strlen(K1));
    assert_ptr_equal(key, &kf->keys[0]);
    assert_int_equal(allowed(key, NGX_HTTP_LOOM_PERM_SUBSCRIBE, "a/b"),
                     NGX_OK);
    assert_int_equal(allowed(key, NGX_HTTP_LOOM_PERM_PUBLISH, "a/b"),
                     NGX_DECLINED);
    assert_int_equal(allowed(key, NGX_HTTP_LOOM_PERM_ADMIN, "a/b"),
                     NGX_DECLINED);

    /* the hash was written in upper case */
    key = ngx_http_loom_keyfile_lookup(kf, (u_char *) K2, strlen(K2));
    assert_ptr_equal(key, &kf->keys[1]);
    assert_int_equal(allowed(key, NGX_HTTP_LOOM_PERM_PUBLISH,
                             "sensors/sensor-7/t"), NGX_OK);
    assert_int_equal(allowed(key, NGX_HTTP_LOOM_PERM_PUBLISH,
                             "sensors/sensor-8/t"), NGX_DECLINED);
    assert_int_equal(allowed(key, NGX_HTTP_LOOM_PERM_ADMIN,
                             "sensors/sensor-7/c1"), NGX_OK);

    /* wrong, truncated, extended, empty keys; the hash itself */
    assert_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) "k1-7f3a9d", 9));
    assert_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) K1, 8));
    assert_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) K1 "x", 10));
    assert_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) "", 0));
    assert_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) K1_HEX, 64));
    assert_null(ngx_http_loom_keyfile_lookup(NULL, (u_char *) K1, 9));

    ngx_http_loom_keyfile_free(kf);

    kf = parse("{\"keys\": []}");
    assert_non_null(kf);
    assert_int_equal(kf->nkeys, 0);
    assert_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) K1, 9));
    ngx_http_loom_keyfile_free(kf);
}


static void
test_syntax(void **state)
{
    refused("", "line 1, column 0: '[' or '{' expected near end of file");
    refused("{\"keys\": [\n  {\"name\": \"a\",,}\n]}",
            "line 2, column 16: string or '}' expected near ','");
    refused("{\"keys\": [], \"keys\": []}",
            "line 1, column 19: duplicate object key near '\"keys\"'");
    refused("[]", "the file must hold a JSON object");
    refused("{\"Keys\": []}", "unknown member \"Keys\" (only \"keys\")");
    refused("{\"keys\": {}}", "\"keys\" must be an array");
    refused("{}", "\"keys\" must be an array");
}


static void
test_entries(void **state)
{
    refused("{\"keys\": [1]}", "keys[1]: not an object");
    refused("{\"keys\": [{\"sha256\": \"" K1_HEX "\"}]}",
            "keys[1]: \"name\" must be a string");
    refused("{\"keys\": [{\"name\": \"\", \"sha256\": \"" K1_HEX "\"}]}",
            "keys[1]: \"name\" must be 1 to 64 characters");
    refused("{\"keys\": [{\"name\": \"a b\", \"sha256\": \"" K1_HEX "\"}]}",
            "keys[1]: \"name\" may hold only letters, digits, '.', '_', "
            "'-', '@'");
    refused("{\"keys\": [{\"name\": \"a*\", \"sha256\": \"" K1_HEX "\"}]}",
            "keys[1]: \"name\" may hold only letters, digits, '.', '_', "
            "'-', '@'");
    refused("{\"keys\": [{\"name\": \"a\"}]}",
            "keys[1] \"a\": \"sha256\" must be 64 hexadecimal digits");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "0\"}]}",
            "keys[1] \"a\": \"sha256\" must be 64 hexadecimal digits");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": "
            "\"568095e5de460102ef4e7ef109b3b01c"
            "7c7f17213d577c103f1bd63d0a4c8efg\"}]}",
            "keys[1] \"a\": \"sha256\" must be 64 hexadecimal digits");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "\", "
            "\"key\": \"k1\"}]}",
            "keys[1] \"a\": unknown member (name, sha256, publish, "
            "subscribe, admin)");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "\", "
            "\"publish\": \"**\"}]}",
            "keys[1] \"a\": publish: not an array of strings");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "\", "
            "\"admin\": [\"x\", \"{user}\"]}]}",
            "keys[1] \"a\": admin[2]: unknown placeholder (only {client} "
            "and {sub})");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "\"},\n"
            "          {\"name\": \"a\", \"sha256\": \"" K2_HEX "\"}]}",
            "keys[2] \"a\": the name is used by an earlier entry");
    refused("{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "\"},\n"
            "          {\"name\": \"b\", \"sha256\": \""
            "568095E5DE460102EF4E7EF109B3B01C"
            "7C7F17213D577C103F1BD63D0A4C8EF1"
            "\"}]}",
            "keys[2] \"b\": the key is the same as an earlier entry's");
}


static void
test_load(void **state)
{
    int                       fd;
    char                      path[] = "/tmp/loom-keyfile-XXXXXX";
    const char               *text;
    ngx_http_loom_keyfile_t  *kf;

    fd = mkstemp(path);
    assert_true(fd >= 0);

    text = "{\"keys\": [{\"name\": \"a\", \"sha256\": \"" K1_HEX "\",\n"
           "            \"publish\": [\"x/**\"]}]}\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);

    kf = ngx_http_loom_keyfile_load(path, err, sizeof(err));
    assert_non_null(kf);
    assert_int_equal(kf->nkeys, 1);
    assert_non_null(ngx_http_loom_keyfile_lookup(kf, (u_char *) K1, 9));
    ngx_http_loom_keyfile_free(kf);

    unlink(path);

    assert_null(ngx_http_loom_keyfile_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "No such file or directory"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
