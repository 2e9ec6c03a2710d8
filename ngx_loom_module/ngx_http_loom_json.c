/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_json_int.h"
#include "ngx_http_loom_utf8.h"


/*
 * One bit per open container (1 for an object) in a fixed array:
 * max_depth is clamped to what it holds.
 */
#define NGX_HTTP_LOOM_JSON_MAX_DEPTH  512

/* the longest member name, "compatibility" */
#define NGX_HTTP_LOOM_JSON_NAMELEN    13

#define NGX_HTTP_LOOM_JSON_M_STRING   0
#define NGX_HTTP_LOOM_JSON_M_BOOL     1
#define NGX_HTTP_LOOM_JSON_M_RAW      2
#define NGX_HTTP_LOOM_JSON_M_EXTRA    3    /* any value, checked later */


typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      kind;
    size_t                          value;
    size_t                          str;
} ngx_http_loom_json_member_t;


typedef struct {
    ngx_http_loom_json_envelope_t  *env;

    /* the top-level member whose value is being scanned, if known */
    ngx_http_loom_json_member_t    *member;
    u_char                         *value;

    /* the first overflowing number in the current "data" value */
    ngx_str_t                       overflow;

    /* the next free byte of the scratch buffer */
    u_char                         *free;

    /* the first type error: Go reports it only if the syntax is valid */
    ngx_http_loom_json_member_t    *type_member;
    ngx_uint_t                      type_kind;
} ngx_http_loom_json_ctx_t;


static ngx_http_loom_json_member_t *ngx_http_loom_json_match(u_char *p,
    u_char *last);
static void ngx_http_loom_json_member(ngx_http_loom_json_ctx_t *ctx,
    u_char *last);
static ngx_uint_t ngx_http_loom_json_type(u_char c);
static ngx_int_t ngx_http_loom_json_type_error(ngx_str_t *err,
    ngx_uint_t kind, ngx_http_loom_json_member_t *member);


static ngx_http_loom_json_member_t  ngx_http_loom_json_members[] = {

    { ngx_string("id"), NGX_HTTP_LOOM_JSON_M_STRING,
      offsetof(ngx_http_loom_json_envelope_t, id),
      offsetof(ngx_http_loom_json_envelope_t, id_str) },

    { ngx_string("action"), NGX_HTTP_LOOM_JSON_M_STRING,
      offsetof(ngx_http_loom_json_envelope_t, action),
      offsetof(ngx_http_loom_json_envelope_t, action_str) },

    { ngx_string("topic"), NGX_HTTP_LOOM_JSON_M_STRING,
      offsetof(ngx_http_loom_json_envelope_t, topic),
      offsetof(ngx_http_loom_json_envelope_t, topic_str) },

    { ngx_string("data"), NGX_HTTP_LOOM_JSON_M_RAW,
      offsetof(ngx_http_loom_json_envelope_t, data), 0 },

    { ngx_string("requireAck"), NGX_HTTP_LOOM_JSON_M_BOOL,
      offsetof(ngx_http_loom_json_envelope_t, require_ack), 0 },

    { ngx_string("senderId"), NGX_HTTP_LOOM_JSON_M_STRING,
      offsetof(ngx_http_loom_json_envelope_t, sender_id),
      offsetof(ngx_http_loom_json_envelope_t, sender_id_str) },

    /* the members of revisions (protocol.md section 15) */

    { ngx_string("snapshot"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, snapshot), 0 },

    { ngx_string("since"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, since), 0 },

    { ngx_string("retention"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, retention), 0 },

    { ngx_string("storage"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, storage), 0 },

    { ngx_string("limit"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, limit), 0 },

    { ngx_string("reverse"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, reverse), 0 },

    { ngx_string("from"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, from), 0 },

    { ngx_string("until"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, until), 0 },

    /* topic schemas (docs/schemas.md section 12) */

    { ngx_string("schemaType"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, schema_type), 0 },

    { ngx_string("compatibility"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, compatibility), 0 },

    { ngx_string("version"), NGX_HTTP_LOOM_JSON_M_EXTRA,
      offsetof(ngx_http_loom_json_envelope_t, version), 0 },

    { ngx_null_string, 0, 0, 0 }
};


/* Go's names for JSON value kinds, by NGX_HTTP_LOOM_JSON_* type */
static char  *ngx_http_loom_json_kinds[] = {
    "", "null", "bool", "bool", "number", "string", "array", "object"
};


ngx_int_t
ngx_http_loom_json_scan_envelope(u_char *buf, size_t len,
    ngx_uint_t max_depth, u_char *scratch, ngx_http_loom_json_envelope_t *env,
    ngx_str_t *err)
{
    char                     *literal;
    u_char                    c, top, *p, *last, *start, *end;
    u_char                    stack[NGX_HTTP_LOOM_JSON_MAX_DEPTH / 8];
    ngx_uint_t                depth, key, n;
    ngx_http_loom_json_ctx_t  ctx;
    enum {
        sw_value = 0,
        sw_value_or_empty,
        sw_key_or_empty,
        sw_key,
        sw_colon,
        sw_end_value,
        sw_end_top,
        sw_string,
        sw_string_esc,
        sw_string_esc_u,
        sw_minus,
        sw_dot,
        sw_exp,
        sw_exp_sign,
        sw_literal,

        /*
         * the end of input ends a number in these states as a space
         * would; in the other states but sw_end_top it comes too early,
         * and Go's Decoder then tells no more than "unexpected EOF"
         */
        sw_int,
        sw_zero,
        sw_frac,
        sw_exp_digits
    } state;

    ngx_memzero(env, sizeof(ngx_http_loom_json_envelope_t));

    env->id_str.data = scratch;
    env->action_str.data = scratch;
    env->topic_str.data = scratch;
    env->sender_id_str.data = scratch;

    if (len == 0) {
        return ngx_http_loom_json_error(err, "unexpected end of JSON input");
    }

    if (max_depth > NGX_HTTP_LOOM_JSON_MAX_DEPTH) {
        max_depth = NGX_HTTP_LOOM_JSON_MAX_DEPTH;
    }

    /* each bit is set before it is read; the rest of its byte is not */
    ngx_memzero(stack, (max_depth + 7) / 8);

    ngx_memzero(&ctx, sizeof(ngx_http_loom_json_ctx_t));

    ctx.env = env;
    ctx.free = scratch;

    state = sw_value;
    top = '\0';
    depth = 0;
    key = 0;
    n = 0;
    start = buf;
    literal = NULL;

    p = buf;
    last = buf + len;

    for ( ;; ) {

        if (p < last) {
            c = *p;

        } else if (state < sw_int) {
            break;

        } else {
            c = ' ';
        }

        switch (state) {

        case sw_value_or_empty:

            if (c == ']') {
                p++;
                depth--;
                goto done;
            }

            /* fall through */

        case sw_value:

            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                p++;
                break;
            }

            if (depth == 0) {
                top = c;

            } else if (depth == 1 && ctx.member != NULL) {
                ctx.value = p;
                ctx.overflow.len = 0;
                ctx.overflow.data = NULL;
            }

            switch (c) {

            case '{':
            case '[':

                if (depth == max_depth) {
                    return ngx_http_loom_json_error(err, "exceeded max depth");
                }

                if (c == '{') {
                    stack[depth >> 3] |= (u_char) (1 << (depth & 7));
                    state = sw_key_or_empty;

                } else {
                    stack[depth >> 3] &= (u_char) ~(1 << (depth & 7));
                    state = sw_value_or_empty;
                }

                depth++;
                p++;
                break;

            case '"':
                p++;
                start = p;
                key = 0;
                state = sw_string;
                break;

            case '-':
                start = p++;
                state = sw_minus;
                break;

            case '0':
                start = p++;
                state = sw_zero;
                break;

            case 't':
            case 'f':
            case 'n':
                literal = (c == 't') ? "true" : (c == 'f') ? "false" : "null";
                n = 1;
                p++;
                state = sw_literal;
                break;

            default:

                if (c >= '1' && c <= '9') {
                    start = p++;
                    state = sw_int;
                    break;
                }

                return ngx_http_loom_json_syntax_error(err, c,
                                          "looking for beginning of value");
            }

            break;

        case sw_key_or_empty:

            if (c == '}') {
                p++;
                depth--;
                goto done;
            }

            /* fall through */

        case sw_key:

            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                p++;
                break;
            }

            if (c != '"') {
                return ngx_http_loom_json_syntax_error(err, c,
                               "looking for beginning of object key string");
            }

            p++;
            start = p;
            key = 1;
            state = sw_string;
            break;

        case sw_colon:

            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                p++;
                break;
            }

            if (c != ':') {
                return ngx_http_loom_json_syntax_error(err, c,
                                                       "after object key");
            }

            p++;
            state = sw_value;
            break;

        case sw_end_value:

            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                p++;
                break;
            }

            if (stack[(depth - 1) >> 3] & (1 << ((depth - 1) & 7))) {

                if (c == ',') {
                    p++;
                    state = sw_key;
                    break;
                }

                if (c == '}') {
                    p++;
                    depth--;
                    goto done;
                }

                return ngx_http_loom_json_syntax_error(err, c,
                                              "after object key:value pair");
            }

            if (c == ',') {
                p++;
                state = sw_value;
                break;
            }

            if (c == ']') {
                p++;
                depth--;
                goto done;
            }

            return ngx_http_loom_json_syntax_error(err, c,
                                                   "after array element");

        case sw_end_top:

            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                p++;
                break;
            }

            return ngx_http_loom_json_syntax_error(err, c,
                                                   "after top-level value");

        case sw_string:

            while (c != '"' && c != '\\' && c >= 0x20) {

                if (++p == last) {
                    break;
                }

                c = *p;
            }

            if (p == last) {
                break;
            }

            if (c == '\\') {
                p++;
                state = sw_string_esc;
                break;
            }

            if (c != '"') {
                return ngx_http_loom_json_syntax_error(err, c,
                                                       "in string literal");
            }

            p++;

            if (key) {
                if (depth == 1 && top == '{') {
                    /* the key is decoded to the free scratch space */
                    end = ngx_http_loom_json_unquote(ctx.free, start, p - 1);
                    ctx.member = ngx_http_loom_json_match(ctx.free, end);
                }

                state = sw_colon;
                break;
            }

            goto done;

        case sw_string_esc:

            switch (c) {

            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                state = sw_string;
                break;

            case 'u':
                n = 0;
                state = sw_string_esc_u;
                break;

            default:
                return ngx_http_loom_json_syntax_error(err, c,
                                                     "in string escape code");
            }

            p++;
            break;

        case sw_string_esc_u:

            if ((c < '0' || c > '9')
                && ((c | 0x20) < 'a' || (c | 0x20) > 'f'))
            {
                return ngx_http_loom_json_syntax_error(err, c,
                                       "in \\u hexadecimal character escape");
            }

            if (++n == 4) {
                state = sw_string;
            }

            p++;
            break;

        case sw_minus:

            if (c == '0') {
                p++;
                state = sw_zero;
                break;
            }

            if (c >= '1' && c <= '9') {
                p++;
                state = sw_int;
                break;
            }

            return ngx_http_loom_json_syntax_error(err, c,
                                                   "in numeric literal");

        case sw_int:

            if (c >= '0' && c <= '9') {
                p++;
                break;
            }

            /* fall through */

        case sw_zero:

            /* no more digits after a leading zero: "01" is "0" and "1" */

            if (c == '.') {
                p++;
                state = sw_dot;
                break;
            }

            if (c == 'e' || c == 'E') {
                p++;
                state = sw_exp;
                break;
            }

            goto number;

        case sw_dot:

            if (c >= '0' && c <= '9') {
                p++;
                state = sw_frac;
                break;
            }

            return ngx_http_loom_json_syntax_error(err, c,
                                     "after decimal point in numeric literal");

        case sw_frac:

            if (c >= '0' && c <= '9') {
                p++;
                break;
            }

            if (c == 'e' || c == 'E') {
                p++;
                state = sw_exp;
                break;
            }

            goto number;

        case sw_exp:

            if (c == '+' || c == '-') {
                p++;
                state = sw_exp_sign;
                break;
            }

            /* fall through */

        case sw_exp_sign:

            if (c >= '0' && c <= '9') {
                p++;
                state = sw_exp_digits;
                break;
            }

            return ngx_http_loom_json_syntax_error(err, c,
                                             "in exponent of numeric literal");

        case sw_exp_digits:

            if (c >= '0' && c <= '9') {
                p++;
                break;
            }

            goto number;

        case sw_literal:

            if (c != (u_char) literal[n]) {
                return ngx_http_loom_json_literal_error(err, c, literal, n);
            }

            p++;

            if (literal[++n] == '\0') {
                goto done;
            }

            break;
        }

        continue;

    number:

        /* the number ended before p */

        if (ctx.member != NULL
            && ctx.member->kind == NGX_HTTP_LOOM_JSON_M_RAW
            && ctx.overflow.len == 0
            && ngx_http_loom_json_overflows(start, p))
        {
            ctx.overflow.len = p - start;
            ctx.overflow.data = start;
        }

    done:

        /* a value ended before p */

        if (depth == 0) {
            state = sw_end_top;
            continue;
        }

        if (depth == 1 && ctx.member != NULL) {
            ngx_http_loom_json_member(&ctx, p);
            ctx.member = NULL;
        }

        state = sw_end_value;
    }

    if (state != sw_end_top) {
        return ngx_http_loom_json_error(err, "unexpected end of JSON input");
    }

    if (top == 'n') {
        env->null_document = 1;
        return NGX_OK;
    }

    if (top != '{') {
        return ngx_http_loom_json_type_error(err,
                                             ngx_http_loom_json_type(top),
                                             NULL);
    }

    if (ctx.type_member != NULL) {
        return ngx_http_loom_json_type_error(err, ctx.type_kind,
                                             ctx.type_member);
    }

    return NGX_OK;
}


static ngx_http_loom_json_member_t *
ngx_http_loom_json_match(u_char *p, u_char *last)
{
    u_char                        c, name[NGX_HTTP_LOOM_JSON_NAMELEN];
    size_t                        i, n;
    ngx_http_loom_json_member_t  *m;

    n = 0;

    while (p < last) {

        if (n == NGX_HTTP_LOOM_JSON_NAMELEN) {
            return NULL;
        }

        c = *p;

        if (c < 0x80) {
            name[n++] = ngx_toupper(c);
            p++;
            continue;
        }

        /*
         * Go folds keys with Unicode simple case folding: the long s
         * (U+017F) and the Kelvin sign (U+212A) are the only non-ASCII
         * characters that fold to letters of the member names
         */

        if (last - p >= 2 && c == 0xc5 && p[1] == 0xbf) {
            name[n++] = 'S';
            p += 2;
            continue;
        }

        if (last - p >= 3 && c == 0xe2 && p[1] == 0x84 && p[2] == 0xaa) {
            name[n++] = 'K';
            p += 3;
            continue;
        }

        return NULL;
    }

    for (m = ngx_http_loom_json_members; m->name.len; m++) {

        if (m->name.len != n) {
            continue;
        }

        for (i = 0; i < n; i++) {
            if (ngx_toupper(m->name.data[i]) != name[i]) {
                break;
            }
        }

        if (i == n) {
            return m;
        }
    }

    return NULL;
}


static void
ngx_http_loom_json_member(ngx_http_loom_json_ctx_t *ctx, u_char *last)
{
    ngx_str_t                    *s;
    ngx_uint_t                    type;
    ngx_http_loom_json_value_t   *v;
    ngx_http_loom_json_member_t  *m;

    m = ctx->member;
    v = (ngx_http_loom_json_value_t *) ((u_char *) ctx->env + m->value);
    type = ngx_http_loom_json_type(*ctx->value);

    if (m->kind == NGX_HTTP_LOOM_JSON_M_EXTRA) {

        /* the action that uses it checks it; the last one wins */

        v->type = type;
        v->raw.len = last - ctx->value;
        v->raw.data = ctx->value;
        return;
    }

    if (m->kind == NGX_HTTP_LOOM_JSON_M_RAW) {

        /* json.RawMessage takes any value, null included */

        v->type = type;
        v->raw.len = last - ctx->value;
        v->raw.data = ctx->value;

        ctx->env->data_overflow = ctx->overflow;
        return;
    }

    if (type == NGX_HTTP_LOOM_JSON_NULL) {

        /* Go leaves a string or a bool as it was on null */

        if (v->type == NGX_HTTP_LOOM_JSON_NONE) {
            v->type = type;
            v->raw.len = last - ctx->value;
            v->raw.data = ctx->value;
        }

        return;
    }

    if (m->kind == NGX_HTTP_LOOM_JSON_M_BOOL) {

        if (type != NGX_HTTP_LOOM_JSON_TRUE
            && type != NGX_HTTP_LOOM_JSON_FALSE)
        {
            goto type_error;
        }

        ctx->env->require_ack_flag = (type == NGX_HTTP_LOOM_JSON_TRUE);

    } else {

        if (type != NGX_HTTP_LOOM_JSON_STRING) {
            goto type_error;
        }

        s = (ngx_str_t *) ((u_char *) ctx->env + m->str);

        s->data = ctx->free;
        ctx->free = ngx_http_loom_json_unquote(ctx->free, ctx->value + 1,
                                               last - 1);
        s->len = ctx->free - s->data;
    }

    v->type = type;
    v->raw.len = last - ctx->value;
    v->raw.data = ctx->value;

    return;

type_error:

    if (ctx->type_member == NULL) {
        ctx->type_member = m;
        ctx->type_kind = type;
    }
}


static ngx_uint_t
ngx_http_loom_json_type(u_char c)
{
    switch (c) {

    case '{':
        return NGX_HTTP_LOOM_JSON_OBJECT;

    case '[':
        return NGX_HTTP_LOOM_JSON_ARRAY;

    case '"':
        return NGX_HTTP_LOOM_JSON_STRING;

    case 't':
        return NGX_HTTP_LOOM_JSON_TRUE;

    case 'f':
        return NGX_HTTP_LOOM_JSON_FALSE;

    case 'n':
        return NGX_HTTP_LOOM_JSON_NULL;

    default:
        return NGX_HTTP_LOOM_JSON_NUMBER;
    }
}


static ngx_int_t
ngx_http_loom_json_type_error(ngx_str_t *err, ngx_uint_t kind,
    ngx_http_loom_json_member_t *member)
{
    char    *s;
    u_char  *p;

    p = ngx_cpymem(err->data, "json: cannot unmarshal ",
                   sizeof("json: cannot unmarshal ") - 1);

    s = ngx_http_loom_json_kinds[kind];
    p = ngx_cpymem(p, s, ngx_strlen(s));

    if (member == NULL) {
        s = " into Go value of type network.WebSocketMessage";
        p = ngx_cpymem(p, s, ngx_strlen(s));

    } else {
        s = " into Go struct field WebSocketMessage.";
        p = ngx_cpymem(p, s, ngx_strlen(s));
        p = ngx_cpymem(p, member->name.data, member->name.len);

        s = (member->kind == NGX_HTTP_LOOM_JSON_M_BOOL) ? " of type bool"
                                                        : " of type string";
        p = ngx_cpymem(p, s, ngx_strlen(s));
    }

    *p = '\0';
    err->len = p - err->data;

    return NGX_ERROR;
}


