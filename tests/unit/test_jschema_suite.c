/* SOURCES: ngx_http_loom_jschema_compile.c ngx_http_loom_jschema_ref.c */
/* SOURCES: ngx_http_loom_jschema_keyword.c ngx_http_loom_jschema_util.c */
/* SOURCES: ngx_http_loom_jschema_keyword_sub.c */
/* SOURCES: ngx_http_loom_jschema_validate.c ngx_http_loom_jschema_format.c */
/* SOURCES: ngx_http_loom_jschema_container.c ngx_http_loom_jschema_error.c */
/* SOURCES: ngx_http_loom_jschema_vctx.c */
/* SOURCES: ngx_http_loom_jschema_compat.c ngx_http_loom_jschema_compat_kw.c */
/* SOURCES: ngx_http_loom_jschema_compat_util.c */
/* SOURCES: ngx_http_loom_json.c ngx_http_loom_json_text.c */
/* SOURCES: ngx_http_loom_utf8.c */

/*
 * Copyright (C) Data Loom
 */


/*
 * The JSON-Schema-Test-Suite, draft 2020-12, as Debian's
 * libtest-json-schema-acceptance-perl ships it (JSCHEMA_SUITE names
 * another copy).  Every file of the directory is either run or listed
 * below as out of scope with the reason; a file that is neither fails the
 * test, so a newer suite gets looked at.  In the files that run, a case
 * whose schema the compiler refuses must be listed in the refusals with
 * the words the refusal has to contain; every other case must pass all of
 * its tests, through the fast path and through the collecting one.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>


#define SUITE_DIR  "/usr/share/perl5/auto/share/dist/" \
                   "Test-JSON-Schema-Acceptance/tests/draft2020-12"


typedef struct {
    const char  *file;
    const char  *why;        /* NULL: run it */
    ngx_uint_t   flags;
} suite_file_t;


typedef struct {
    const char  *file;
    const char  *suite_case;
    const char  *refusal;    /* words the compile error must contain */
} suite_refusal_t;


static suite_file_t  files[] = {
    { "additionalProperties.json", NULL, 0 },
    { "allOf.json", NULL, 0 },
    { "anchor.json", NULL, 0 },
    { "anyOf.json", NULL, 0 },
    { "boolean_schema.json", NULL, 0 },
    { "const.json", NULL, 0 },
    { "contains.json", NULL, 0 },
    { "content.json", NULL, 0 },
    { "default.json", NULL, 0 },
    { "defs.json", NULL, 0 },
    { "dependentRequired.json", NULL, 0 },
    { "dependentSchemas.json", NULL, 0 },
    { "dynamicRef.json", "$dynamicRef and $dynamicAnchor are refused", 0 },
    { "enum.json", NULL, 0 },
    { "exclusiveMaximum.json", NULL, 0 },
    { "exclusiveMinimum.json", NULL, 0 },
    { "format.json", NULL, 0 },
    { "id.json", NULL, 0 },
    { "if-then-else.json", NULL, 0 },
    { "infinite-loop-detection.json", NULL, 0 },
    { "items.json", NULL, 0 },
    { "maxContains.json", NULL, 0 },
    { "maxItems.json", NULL, 0 },
    { "maxLength.json", NULL, 0 },
    { "maxProperties.json", NULL, 0 },
    { "maximum.json", NULL, 0 },
    { "minContains.json", NULL, 0 },
    { "minItems.json", NULL, 0 },
    { "minLength.json", NULL, 0 },
    { "minProperties.json", NULL, 0 },
    { "minimum.json", NULL, 0 },
    { "multipleOf.json", NULL, 0 },
    { "not.json", NULL, 0 },
    { "oneOf.json", NULL, 0 },
    { "pattern.json", NULL, 0 },
    { "patternProperties.json", NULL, 0 },
    { "prefixItems.json", NULL, 0 },
    { "properties.json", NULL, 0 },
    { "propertyNames.json", NULL, 0 },
    { "ref.json", NULL, 0 },
    { "refRemote.json", "remote $ref is refused (no network access)", 0 },
    { "required.json", NULL, 0 },
    { "type.json", NULL, 0 },
    { "unevaluatedItems.json", NULL, 0 },
    { "unevaluatedProperties.json", NULL, 0 },
    { "uniqueItems.json", NULL, 0 },
    { "unknownKeyword.json", "unknown keywords are refused, not ignored", 0 },
    { "vocabulary.json", "$vocabulary and custom metaschemas are refused", 0 },

    { "optional/bignum.json", "integers beyond 64 bits: jansson cannot "
      "hold them", 0 },
    { "optional/cross-draft.json", "other drafts are refused", 0 },
    { "optional/dependencies-compatibility.json", "draft 7 \"dependencies\" "
      "is refused", 0 },
    { "optional/ecmascript-regex.json", "PCRE2, not ECMA-262, regular "
      "expressions", 0 },
    { "optional/float-overflow.json", "needs arbitrary precision", 0 },
    { "optional/format-assertion.json", "$vocabulary is refused", 0 },
    { "optional/no-schema.json", NULL, 0 },
    { "optional/non-bmp-regex.json", NULL, 0 },
    { "optional/refOfUnknownKeyword.json", "unknown keywords are refused", 0 },
    { "optional/unicode.json", "PCRE2 without UCP: \\w and \\d are "
      "ASCII only, as in ECMA-262 without the u flag", 0 },

    { "optional/format/date-time.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/date.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/time.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/email.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/uuid.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/ipv4.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/ipv6.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/uri.json", NULL,
      NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT },
    { "optional/format/duration.json", "format not supported", 0 },
    { "optional/format/hostname.json", "format not supported", 0 },
    { "optional/format/idn-email.json", "format not supported", 0 },
    { "optional/format/idn-hostname.json", "format not supported", 0 },
    { "optional/format/iri-reference.json", "format not supported", 0 },
    { "optional/format/iri.json", "format not supported", 0 },
    { "optional/format/json-pointer.json", "format not supported", 0 },
    { "optional/format/regex.json", "format not supported", 0 },
    { "optional/format/relative-json-pointer.json", "format not supported",
      0 },
    { "optional/format/unknown.json", "unknown formats are refused when "
      "format is an assertion", 0 },
    { "optional/format/uri-reference.json", "format not supported", 0 },
    { "optional/format/uri-template.json", "format not supported", 0 },

    { NULL, NULL, 0 }
};


static suite_refusal_t  refusals[] = {
    { "anchor.json",
      "Location-independent identifier with absolute URI",
      "\"$id\" in a subschema" },
    { "anchor.json",
      "Location-independent identifier with base URI change in subschema",
      "\"$id\" in a subschema" },
    { "anchor.json",
      "same $anchor with different base uri",
      "\"$id\" in a subschema" },
    { "anchor.json",
      "invalid anchors",
      "remote $ref" },
    { "defs.json",
      "validate definition against metaschema",
      "remote $ref" },
    { "id.json",
      "Invalid use of fragments in location-independent $id",
      "remote $ref" },
    { "id.json",
      "Valid use of empty fragments in location-independent $id",
      "remote $ref" },
    { "id.json",
      "Unnormalized $ids are allowed but discouraged",
      "remote $ref" },
    { "id.json",
      "$id inside an enum is not a real identifier",
      "\"$id\" in a subschema" },
    { "ref.json",
      "remote ref, containing refs itself",
      "remote $ref" },
    { "ref.json",
      "Recursive references between schemas",
      "\"$id\" in a subschema" },
    { "ref.json",
      "refs with relative uris and defs",
      "\"$id\" in a subschema" },
    { "ref.json",
      "relative refs with absolute uris and defs",
      "\"$id\" in a subschema" },
    { "ref.json",
      "$id must be resolved against nearest parent, not just immediate parent",
      "\"$id\" in a subschema" },
    { "ref.json",
      "order of evaluation: $id and $ref",
      "\"$id\" in a subschema" },
    { "ref.json",
      "order of evaluation: $id and $anchor and $ref",
      "\"$id\" in a subschema" },
    { "ref.json",
      "URN base URI with f-component",
      "remote $ref" },
    { "ref.json",
      "URN ref with nested pointer ref",
      "\"$id\" in a subschema" },
    { "ref.json",
      "ref to if",
      "\"$id\" in a subschema" },
    { "ref.json",
      "ref to then",
      "\"$id\" in a subschema" },
    { "ref.json",
      "ref to else",
      "\"$id\" in a subschema" },
    { "ref.json",
      "ref with absolute-path-reference",
      "\"$id\" in a subschema" },




    { NULL, NULL, NULL }
};


static ngx_uint_t  cases_run, cases_passed, tests_run, tests_passed;
static ngx_uint_t  cases_refused, files_run, failures;


static void
failed(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    printf("FAIL ");
    vprintf(fmt, args);
    printf("\n");
    va_end(args);

    failures++;
}


static const suite_refusal_t *
find_refusal(const char *file, const char *desc)
{
    suite_refusal_t  *r;

    for (r = refusals; r->file; r++) {
        if (strcmp(r->file, file) == 0 && strcmp(r->suite_case, desc) == 0) {
            return r;
        }
    }

    return NULL;
}


static void
run_case(const char *file, json_t *c, ngx_uint_t flags)
{
    size_t                           i;
    json_t                          *t, *data;
    ngx_int_t                        rc, rc2;
    ngx_uint_t                       ok;
    const char                      *desc;
    ngx_http_loom_jschema_t         *s;
    const suite_refusal_t           *r;
    ngx_http_loom_jschema_err_t      err;
    ngx_http_loom_jschema_errors_t   errors;
    ngx_http_loom_jschema_limits_t   limits;

    desc = json_string_value(json_object_get(c, "description"));
    r = find_refusal(file, desc);

    memset(&limits, 0, sizeof(limits));
    limits.flags = flags;

    s = ngx_http_loom_jschema_compile(json_object_get(c, "schema"), &limits,
                                      &err);

    if (s == NULL) {
        if (r && strstr((char *) err.text, r->refusal)) {
            printf("  out of scope: %s: \"%s\": %s\n", file, desc, err.text);
            cases_refused++;
            return;
        }

        failed("%s: \"%s\": schema refused: %s", file, desc, err.text);
        return;
    }

    if (r) {
        failed("%s: \"%s\": listed as refused but compiles", file, desc);
    }

    cases_run++;
    ok = 1;

    assert_int_equal(ngx_http_loom_jschema_errors_init(&errors, 16), NGX_OK);

    json_array_foreach(json_object_get(c, "tests"), i, t) {
        data = json_object_get(t, "data");
        tests_run++;

        rc = ngx_http_loom_jschema_validate(s, data, NULL);
        rc2 = ngx_http_loom_jschema_validate(s, data, &errors);

        if (json_is_true(json_object_get(t, "valid"))) {
            if (rc == NGX_OK && rc2 == NGX_OK && errors.nelts == 0) {
                tests_passed++;
                ngx_http_loom_jschema_errors_reset(&errors);
                continue;
            }

        } else if (rc == NGX_DECLINED && rc2 == NGX_DECLINED
                   && errors.nelts > 0)
        {
            tests_passed++;
            ngx_http_loom_jschema_errors_reset(&errors);
            continue;
        }

        ok = 0;
        failed("%s: \"%s\": \"%s\": fast %d, collected %d (%d errors)",
               file, desc,
               json_string_value(json_object_get(t, "description")),
               (int) rc, (int) rc2, (int) errors.nelts);
        ngx_http_loom_jschema_errors_reset(&errors);
    }

    cases_passed += ok;

    ngx_http_loom_jschema_errors_free(&errors);
    ngx_http_loom_jschema_free(s);
}


static void
run_file(const char *dir, const suite_file_t *f)
{
    char          path[1024];
    size_t        i;
    json_t       *cases, *c;
    json_error_t  jerr;

    snprintf(path, sizeof(path), "%s/%s", dir, f->file);

    cases = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (cases == NULL) {
        failed("%s: %s", path, jerr.text);
        return;
    }

    files_run++;

    json_array_foreach(cases, i, c) {
        run_case(f->file, c, f->flags);
    }

    json_decref(cases);
}


static void
check_listed(const char *dir, const char *sub)
{
    char            path[1024], name[1024];
    DIR            *d;
    suite_file_t   *f;
    struct dirent  *de;

    snprintf(path, sizeof(path), "%s%s", dir, sub);

    d = opendir(path);
    assert_non_null(d);

    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".json") == NULL) {
            continue;
        }

        snprintf(name, sizeof(name), "%s%s%s", sub[0] ? sub + 1 : "",
                 sub[0] ? "/" : "", de->d_name);

        for (f = files; f->file; f++) {
            if (strcmp(f->file, name) == 0) {
                break;
            }
        }

        if (f->file == NULL) {
            failed("%s: a suite file in neither list", name);
        }
    }

    closedir(d);
}


static void
test_suite(void **state)
{
    const char    *dir;
    suite_file_t  *f;

    dir = getenv("JSCHEMA_SUITE");
    if (dir == NULL) {
        dir = SUITE_DIR;
    }

    check_listed(dir, "");
    check_listed(dir, "/optional");
    check_listed(dir, "/optional/format");

    for (f = files; f->file; f++) {
        if (f->why) {
            printf("  out of scope: %s: %s\n", f->file, f->why);
            continue;
        }

        run_file(dir, f);
    }

    printf("  suite: %lu files run, %lu of %lu cases passed "
           "(%lu of %lu tests), %lu cases out of scope, %lu failures\n",
           (unsigned long) files_run, (unsigned long) cases_passed,
           (unsigned long) cases_run, (unsigned long) tests_passed,
           (unsigned long) tests_run, (unsigned long) cases_refused,
           (unsigned long) failures);

    assert_int_equal(failures, 0);
    assert_int_equal(cases_passed, cases_run);
    assert_true(cases_run >= 300);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_suite),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
