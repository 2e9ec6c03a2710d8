/*
 * Copyright (C) Data Loom
 */


/*
 * Micro-benchmark of JSON Schema validation: a typical message (ten
 * properties, a nested object, an array, an enum and a pattern) validated
 * against a compiled schema, parsed once; prints ns per message for the
 * fast path (valid and invalid messages) and for the collecting one.
 *
 *   make -C bench jschema_bench && bench/jschema_bench [ITERATIONS]
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema.h"

#include <stdio.h>
#include <time.h>


static const char  schema_text[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\",\"minimum\":1},"
    "\"user\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9_]{2,15}$\"},"
    "\"email\":{\"type\":\"string\",\"maxLength\":64},"
    "\"score\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},"
    "\"active\":{\"type\":\"boolean\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
    "\"maxItems\":8},"
    "\"geo\":{\"type\":\"object\",\"properties\":{"
    "\"lat\":{\"type\":\"number\"},\"lon\":{\"type\":\"number\"}},"
    "\"required\":[\"lat\",\"lon\"]},"
    "\"kind\":{\"enum\":[\"a\",\"b\",\"c\"]},"
    "\"note\":{\"type\":[\"string\",\"null\"]},"
    "\"ts\":{\"type\":\"integer\"}},"
    "\"required\":[\"id\",\"user\",\"ts\"],"
    "\"additionalProperties\":false}";

static const char  valid_text[] =
    "{\"id\":42,\"user\":\"ada_l\",\"email\":\"ada@example.com\","
    "\"score\":97.5,\"active\":true,\"tags\":[\"x\",\"y\",\"z\"],"
    "\"geo\":{\"lat\":51.5,\"lon\":-0.12},\"kind\":\"b\",\"note\":null,"
    "\"ts\":1764547200}";

static const char  invalid_text[] =
    "{\"id\":42,\"user\":\"Ada L\",\"email\":\"ada@example.com\","
    "\"score\":97.5,\"active\":true,\"tags\":[\"x\",\"y\",\"z\"],"
    "\"geo\":{\"lat\":51.5,\"lon\":-0.12},\"kind\":\"b\",\"note\":null,"
    "\"ts\":1764547200}";


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


static double
run(ngx_http_loom_jschema_t *s, json_t *msg, long n, ngx_int_t expect,
    ngx_http_loom_jschema_errors_t *errors)
{
    long    i;
    double  start;

    start = now();

    for (i = 0; i < n; i++) {
        if (ngx_http_loom_jschema_validate(s, msg, errors) != expect) {
            fprintf(stderr, "unexpected validation result\n");
            exit(1);
        }

        if (errors) {
            ngx_http_loom_jschema_errors_reset(errors);
        }
    }

    return (now() - start) / n;
}


int
main(int argc, char **argv)
{
    long                             n;
    json_t                          *schema, *valid, *invalid;
    json_error_t                     jerr;
    ngx_http_loom_jschema_t         *s;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_errors_t   errors;

    n = (argc > 1) ? atol(argv[1]) : 1000000;

    schema = json_loads(schema_text, 0, &jerr);
    valid = json_loads(valid_text, 0, &jerr);
    invalid = json_loads(invalid_text, 0, &jerr);

    if (schema == NULL || valid == NULL || invalid == NULL) {
        fprintf(stderr, "bad JSON: %s\n", jerr.text);
        return 1;
    }

    s = ngx_http_loom_jschema_compile(schema, NULL, &err);
    if (s == NULL) {
        fprintf(stderr, "schema refused: %s\n", err.text);
        return 1;
    }

    if (ngx_http_loom_jschema_errors_init(&errors, 10) != NGX_OK) {
        return 1;
    }

    /* warm up (the regular expression's match data) */
    run(s, valid, 1000, NGX_OK, NULL);

    printf("jschema valid message, fast path:       %8.1f ns/message\n",
           run(s, valid, n, NGX_OK, NULL));
    printf("jschema invalid message, fast path:     %8.1f ns/message\n",
           run(s, invalid, n, NGX_DECLINED, NULL));
    printf("jschema invalid message, errors listed: %8.1f ns/message\n",
           run(s, invalid, n / 4 + 1, NGX_DECLINED, &errors));

    ngx_http_loom_jschema_errors_free(&errors);
    ngx_http_loom_jschema_free(s);
    json_decref(schema);
    json_decref(valid);
    json_decref(invalid);

    return 0;
}
