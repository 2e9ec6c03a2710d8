/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"

#include <math.h>


/*
 * The keywords of a schema object: each one checks its value and fills
 * its part of the node.  A keyword missing from the table is refused by
 * the caller.
 */


typedef ngx_int_t (*ngx_http_loom_js_kw_pt)(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);


typedef struct {
    const char               *name;
    ngx_http_loom_js_kw_pt    handler;
} ngx_http_loom_js_keyword_t;


static ngx_int_t ngx_http_loom_js_kw_annotation(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_ident(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_type(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_value(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_count(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_number(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);
static ngx_int_t ngx_http_loom_js_kw_string(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth);


static ngx_http_loom_js_keyword_t  ngx_http_loom_js_keywords[] = {
    { "title", ngx_http_loom_js_kw_annotation },
    { "description", ngx_http_loom_js_kw_annotation },
    { "$comment", ngx_http_loom_js_kw_annotation },
    { "default", ngx_http_loom_js_kw_annotation },
    { "examples", ngx_http_loom_js_kw_annotation },
    { "deprecated", ngx_http_loom_js_kw_annotation },
    { "readOnly", ngx_http_loom_js_kw_annotation },
    { "writeOnly", ngx_http_loom_js_kw_annotation },
    { "contentEncoding", ngx_http_loom_js_kw_annotation },
    { "contentMediaType", ngx_http_loom_js_kw_annotation },
    { "contentSchema", ngx_http_loom_js_kw_annotation },
    { "$schema", ngx_http_loom_js_kw_ident },
    { "$id", ngx_http_loom_js_kw_ident },
    { "$anchor", ngx_http_loom_js_kw_ident },
    { "$defs", ngx_http_loom_js_kw_map },
    { "$ref", ngx_http_loom_js_kw_ref },
    { "type", ngx_http_loom_js_kw_type },
    { "enum", ngx_http_loom_js_kw_value },
    { "const", ngx_http_loom_js_kw_value },
    { "uniqueItems", ngx_http_loom_js_kw_value },
    { "minProperties", ngx_http_loom_js_kw_count },
    { "maxProperties", ngx_http_loom_js_kw_count },
    { "minItems", ngx_http_loom_js_kw_count },
    { "maxItems", ngx_http_loom_js_kw_count },
    { "minContains", ngx_http_loom_js_kw_count },
    { "maxContains", ngx_http_loom_js_kw_count },
    { "minLength", ngx_http_loom_js_kw_count },
    { "maxLength", ngx_http_loom_js_kw_count },
    { "minimum", ngx_http_loom_js_kw_number },
    { "maximum", ngx_http_loom_js_kw_number },
    { "exclusiveMinimum", ngx_http_loom_js_kw_number },
    { "exclusiveMaximum", ngx_http_loom_js_kw_number },
    { "multipleOf", ngx_http_loom_js_kw_number },
    { "pattern", ngx_http_loom_js_kw_string },
    { "format", ngx_http_loom_js_kw_string },
    { "required", ngx_http_loom_js_kw_names },
    { "dependentRequired", ngx_http_loom_js_kw_dep_required },
    { "properties", ngx_http_loom_js_kw_map },
    { "patternProperties", ngx_http_loom_js_kw_map },
    { "dependentSchemas", ngx_http_loom_js_kw_map },
    { "additionalProperties", ngx_http_loom_js_kw_schema },
    { "propertyNames", ngx_http_loom_js_kw_schema },
    { "items", ngx_http_loom_js_kw_schema },
    { "contains", ngx_http_loom_js_kw_schema },
    { "not", ngx_http_loom_js_kw_schema },
    { "if", ngx_http_loom_js_kw_schema },
    { "then", ngx_http_loom_js_kw_schema },
    { "else", ngx_http_loom_js_kw_schema },
    { "prefixItems", ngx_http_loom_js_kw_schemas },
    { "allOf", ngx_http_loom_js_kw_schemas },
    { "anyOf", ngx_http_loom_js_kw_schemas },
    { "oneOf", ngx_http_loom_js_kw_schemas },
    { "unevaluatedProperties", ngx_http_loom_js_kw_schema },
    { "unevaluatedItems", ngx_http_loom_js_kw_schema },
    { NULL, NULL }
};


ngx_int_t
ngx_http_loom_js_keyword(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    ngx_http_loom_js_keyword_t  *k;

    for (k = ngx_http_loom_js_keywords; k->name; k++) {
        if (strcmp(k->name, kw) == 0) {
            return k->handler(c, n, kw, v, schema, depth);
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_js_kw_annotation(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    if (strcmp(kw, "contentSchema") == 0) {
        if (!json_is_object(v) && !json_is_boolean(v)) {
            return ngx_http_loom_js_fail(c, "\"contentSchema\" must be a "
                                         "schema");
        }

        return NGX_OK;
    }

    if ((strcmp(kw, "title") == 0 || strcmp(kw, "description") == 0
         || strcmp(kw, "$comment") == 0 || kw[0] == 'c')
        && !json_is_string(v))
    {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a string", kw);
    }

    if ((strcmp(kw, "deprecated") == 0 || strcmp(kw, "readOnly") == 0
         || strcmp(kw, "writeOnly") == 0)
        && !json_is_boolean(v))
    {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a boolean", kw);
    }

    if (strcmp(kw, "examples") == 0 && !json_is_array(v)) {
        return ngx_http_loom_js_fail(c, "\"examples\" must be an array");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_anchor_name(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || !(isalpha((u_char) s[0]) || s[0] == '_')) {
        return NGX_DECLINED;
    }

    for (i = 1; i < len; i++) {
        if (!(isalnum((u_char) s[i]) || s[i] == '-' || s[i] == '_'
              || s[i] == '.'))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_ident(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    size_t                    len;
    ngx_uint_t                i;
    const char               *s;
    ngx_http_loom_js_prop_t  *a;

    if (!json_is_string(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a string", kw);
    }

    s = json_string_value(v);
    len = json_string_length(v);

    if (strcmp(kw, "$schema") == 0) {
        if (strcmp(s, "https://json-schema.org/draft/2020-12/schema") != 0
            && strcmp(s, "https://json-schema.org/draft/2020-12/schema#")
               != 0)
        {
            return ngx_http_loom_js_fail(c, "unsupported $schema \"%s\" "
                                         "(only draft 2020-12)", s);
        }

        return NGX_OK;
    }

    if (strcmp(kw, "$id") == 0) {
        if (schema != c->root) {
            return ngx_http_loom_js_fail(c, "\"$id\" in a subschema changes "
                                         "the base URI: not supported");
        }

        if (memchr(s, '#', len) && s[len - 1] != '#') {
            return ngx_http_loom_js_fail(c, "\"$id\" must not have a "
                                         "fragment");
        }

        c->root_id = s;
        c->root_id_len = (len && s[len - 1] == '#') ? len - 1 : len;

        return NGX_OK;
    }

    /* $anchor */

    if (ngx_http_loom_js_anchor_name(s, len) != NGX_OK) {
        return ngx_http_loom_js_fail(c, "invalid $anchor \"%s\"", s);
    }

    for (i = 0; i < c->nanchors; i++) {
        if (c->anchors[i].len == len && memcmp(c->anchors[i].name, s, len)
                                        == 0)
        {
            return ngx_http_loom_js_fail(c, "duplicate $anchor \"%s\"", s);
        }
    }

    a = ngx_http_loom_js_grow(c->anchors, &c->aanchors, c->nanchors,
                              sizeof(ngx_http_loom_js_prop_t));
    if (a == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    c->anchors = a;
    a[c->nanchors].name = s;
    a[c->nanchors].len = len;
    a[c->nanchors++].node = n;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_loom_js_type_bit(const char *s)
{
    static const char  *names[] = { "null", "boolean", "object", "array",
                                    "number", "string", "integer", NULL };
    ngx_uint_t          i;

    for (i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            /* "number" covers the integers */
            return (i == 4) ? (NGX_HTTP_LOOM_JS_NUMBER
                               | NGX_HTTP_LOOM_JS_INTEGER)
                            : (ngx_uint_t) 1 << i;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_loom_js_kw_type(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    size_t      i;
    json_t     *t;
    ngx_uint_t  bit;

    if (json_is_string(v)) {
        n->types = ngx_http_loom_js_type_bit(json_string_value(v));

        if (n->types == 0) {
            return ngx_http_loom_js_fail(c, "unknown type \"%s\"",
                                         json_string_value(v));
        }

        return NGX_OK;
    }

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return ngx_http_loom_js_fail(c, "\"type\" must be a string or "
                                     "a non-empty array of strings");
    }

    json_array_foreach(v, i, t) {
        if (!json_is_string(t)) {
            return ngx_http_loom_js_fail(c, "\"type\" must be a string or "
                                         "a non-empty array of strings");
        }

        bit = ngx_http_loom_js_type_bit(json_string_value(t));

        if (bit == 0) {
            return ngx_http_loom_js_fail(c, "unknown type \"%s\"",
                                         json_string_value(t));
        }

        n->types |= bit;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_value(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    json_t  *copy;

    if (kw[0] == 'u') {
        if (!json_is_boolean(v)) {
            return ngx_http_loom_js_fail(c, "\"uniqueItems\" must be a "
                                         "boolean");
        }

        n->unique_items = json_is_true(v);
        return NGX_OK;
    }

    if (kw[0] == 'e' && !json_is_array(v)) {
        return ngx_http_loom_js_fail(c, "\"enum\" must be an array");
    }

    copy = json_deep_copy(v);
    if (copy == NULL) {
        return ngx_http_loom_js_fail(c, "out of memory");
    }

    if (kw[0] == 'e') {
        n->enum_values = copy;

    } else {
        n->const_value = copy;
        n->has_const = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_count(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    double     d;
    ngx_int_t  value;

    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        value = (json_integer_value(v) > NGX_MAX_INT_T_VALUE / 2)
                ? NGX_MAX_INT_T_VALUE / 2 : (ngx_int_t) json_integer_value(v);

    } else if (json_is_real(v) && (d = json_real_value(v)) >= 0
               && d == floor(d) && d < 1e18)
    {
        value = (ngx_int_t) d;

    } else {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a non-negative "
                                     "integer", kw);
    }

    if (strcmp(kw, "minProperties") == 0) {
        n->min_props = value;

    } else if (strcmp(kw, "maxProperties") == 0) {
        n->max_props = value;

    } else if (strcmp(kw, "minItems") == 0) {
        n->min_items = value;

    } else if (strcmp(kw, "maxItems") == 0) {
        n->max_items = value;

    } else if (strcmp(kw, "minContains") == 0) {
        n->min_contains = value;

    } else if (strcmp(kw, "maxContains") == 0) {
        n->max_contains = value;

    } else if (strcmp(kw, "minLength") == 0) {
        n->min_length = value;

    } else {
        n->max_length = value;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_number(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    ngx_http_loom_js_num_t  *num;

    if (!json_is_number(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a number", kw);
    }

    if (strcmp(kw, "minimum") == 0) {
        num = &n->minimum;

    } else if (strcmp(kw, "maximum") == 0) {
        num = &n->maximum;

    } else if (strcmp(kw, "exclusiveMinimum") == 0) {
        num = &n->exclusive_min;

    } else if (strcmp(kw, "exclusiveMaximum") == 0) {
        num = &n->exclusive_max;

    } else {
        if (json_number_value(v) <= 0) {
            return ngx_http_loom_js_fail(c, "\"multipleOf\" must be "
                                         "greater than 0");
        }

        num = &n->multiple_of;
    }

    num->set = 1;
    num->d = json_number_value(v);
    num->is_int = json_is_integer(v);
    num->i = json_is_integer(v) ? json_integer_value(v) : 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_kw_string(ngx_http_loom_js_cctx_t *c,
    ngx_http_loom_js_node_t *n, const char *kw, json_t *v, json_t *schema,
    ngx_uint_t depth)
{
    if (!json_is_string(v)) {
        return ngx_http_loom_js_fail(c, "\"%s\" must be a string", kw);
    }

    if (kw[0] == 'p') {
        n->pattern = ngx_http_loom_js_regex(c, json_string_value(v),
                                            json_string_length(v));

        return n->pattern ? NGX_OK : NGX_ERROR;
    }

    n->format = ngx_http_loom_js_format_id(json_string_value(v),
                                           json_string_length(v));

    if (c->flags & NGX_HTTP_LOOM_JSCHEMA_FORMAT_ASSERT) {
        if (n->format == NGX_HTTP_LOOM_JS_FMT_NONE) {
            return ngx_http_loom_js_fail(c, "unsupported format \"%s\"",
                                         json_string_value(v));
        }

        n->format_assert = 1;
    }

    return NGX_OK;
}


/* a unique, non-empty array of strings, kept as names */
