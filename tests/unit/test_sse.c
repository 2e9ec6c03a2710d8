/* SOURCES: ngx_http_loom_sse.c ngx_http_loom_rev.c */
/* SOURCES: ngx_http_loom_json_text.c ngx_http_loom_json.c */
/* SOURCES: ngx_http_loom_utf8.c */

/*
 * Events of an event stream: the lines of an event, line breaks inside
 * the JSON text, ids of positions; Last-Event-ID.
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
#include "ngx_http_loom_sse.h"


static char  out[1024];


static const char *
event(const char *name, uint64_t rev, const char *epoch, const char *data)
{
    u_char                     buf[1024], *p;
    size_t                     len;
    ngx_http_loom_sse_event_t  ev;

    ev.name.data = (u_char *) name;
    ev.name.len = name ? strlen(name) : 0;
    ev.rev = rev;
    ev.epoch.data = (u_char *) epoch;
    ev.epoch.len = epoch ? strlen(epoch) : 0;
    ev.data.data = (u_char *) data;
    ev.data.len = strlen(data);

    len = ngx_http_loom_sse_event_len(&ev);
    memset(buf, 'Z', sizeof(buf));
    p = ngx_http_loom_sse_event(buf, &ev);

    assert_int_equal((size_t) (p - buf), len);
    assert_int_equal(buf[len], 'Z');

    snprintf(out, sizeof(out), "%.*s", (int) len, buf);

    return out;
}


static void
test_event(void **state)
{
    assert_string_equal(event(NULL, 0, NULL, "{\"a\":1}\n"),
                        "data: {\"a\":1}\n\n");
    assert_string_equal(event(NULL, 7, "E-1", "{\"a\":1}\n"),
                        "id: 7:E-1\ndata: {\"a\":1}\n\n");
    assert_string_equal(event("resync", 0, "E", "{}"),
                        "event: resync\nid: 0:E\ndata: {}\n\n");
    assert_string_equal(event("snapshot", 3, "E", "{}"),
                        "event: snapshot\nid: 3:E\ndata: {}\n\n");

    /* JSON whitespace that breaks lines: LF, CR, CRLF */
    assert_string_equal(event(NULL, 1, "E", "{\"a\":\n1,\r\"b\":\r\n2}\r\n"),
                        "id: 1:E\ndata: {\"a\":\ndata: 1,\ndata: \"b\":\n"
                        "data: 2}\n\n");
    assert_string_equal(event(NULL, 0, NULL, "{\n\n}"),
                        "data: {\ndata: \ndata: }\n\n");

    /* what an id cannot hold is left out of the epoch */
    assert_string_equal(event(NULL, 2, "a\nb\rc", "1"),
                        "id: 2:abc\ndata: 1\n\n");
}


static ngx_int_t
last_id(const char *id, uint64_t *rev)
{
    ngx_int_t  rc;
    ngx_str_t  s, epoch;

    s.data = (u_char *) id;
    s.len = strlen(id);
    out[0] = '\0';
    *rev = 12345;

    rc = ngx_http_loom_sse_last_id(&s, rev, &epoch);

    if (rc == NGX_OK) {
        snprintf(out, sizeof(out), "%.*s", (int) epoch.len, epoch.data);
    }

    return rc;
}


static void
test_last_id(void **state)
{
    uint64_t  rev;

    assert_int_equal(last_id("42:abc-def", &rev), NGX_OK);
    assert_int_equal(rev, 42);
    assert_string_equal(out, "abc-def");

    assert_int_equal(last_id(" 0:e:f ", &rev), NGX_OK);
    assert_int_equal(rev, 0);
    assert_string_equal(out, "e:f");

    assert_int_equal(last_id("17", &rev), NGX_OK);
    assert_int_equal(rev, 17);
    assert_string_equal(out, "");

    assert_int_equal(last_id("9007199254740992:e", &rev), NGX_OK);
    assert_int_equal(rev, 9007199254740992ULL);

    assert_int_equal(last_id("", &rev), NGX_DECLINED);
    assert_int_equal(last_id("  ", &rev), NGX_DECLINED);

    assert_int_equal(last_id("abc", &rev), NGX_ERROR);
    assert_int_equal(last_id(":e", &rev), NGX_ERROR);
    assert_int_equal(last_id("1:", &rev), NGX_ERROR);
    assert_int_equal(last_id("1x:e", &rev), NGX_ERROR);
    assert_int_equal(last_id("-1:e", &rev), NGX_ERROR);
    assert_int_equal(last_id("9007199254740993:e", &rev), NGX_ERROR);
    assert_int_equal(last_id("99999999999999999999999:e", &rev), NGX_ERROR);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_last_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
