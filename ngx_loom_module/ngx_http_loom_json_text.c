/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_json.h"
#include "ngx_http_loom_json_int.h"
#include "ngx_http_loom_utf8.h"


/*
 * JSON text, pure code: decoding a string the scanner has validated, the
 * check for numbers out of float64's range, the error texts Go's decoder
 * would give, and escaping text into a JSON string.
 */


static uint32_t ngx_http_loom_json_hex4(u_char *p);


/*
 * Decodes the contents of a string the scanner has validated.  The result
 * is never longer than the input, so it fits the scratch buffer.
 */

u_char *
ngx_http_loom_json_unquote(u_char *dst, u_char *p, u_char *last)
{
    u_char    c;
    uint32_t  u, lo;

    while (p < last) {

        c = *p++;

        if (c != '\\') {
            *dst++ = c;
            continue;
        }

        c = *p++;

        switch (c) {

        case 'b':
            *dst++ = '\b';
            continue;

        case 'f':
            *dst++ = '\f';
            continue;

        case 'n':
            *dst++ = '\n';
            continue;

        case 'r':
            *dst++ = '\r';
            continue;

        case 't':
            *dst++ = '\t';
            continue;

        case 'u':
            break;

        default:
            /* '"', '\\' and '/' */
            *dst++ = c;
            continue;
        }

        u = ngx_http_loom_json_hex4(p);
        p += 4;

        if (u >= 0xd800 && u <= 0xdfff) {

            /*
             * a high surrogate pairs with a low one that follows it;
             * anything else becomes U+FFFD, as in Go
             */

            lo = 0;

            if (u < 0xdc00 && last - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                lo = ngx_http_loom_json_hex4(p + 2);
            }

            if (lo >= 0xdc00 && lo <= 0xdfff) {
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;

            } else {
                u = 0xfffd;
            }
        }

        if (u < 0x80) {
            *dst++ = (u_char) u;

        } else if (u < 0x800) {
            *dst++ = (u_char) (0xc0 | (u >> 6));
            *dst++ = (u_char) (0x80 | (u & 0x3f));

        } else if (u < 0x10000) {
            *dst++ = (u_char) (0xe0 | (u >> 12));
            *dst++ = (u_char) (0x80 | ((u >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (u & 0x3f));

        } else {
            *dst++ = (u_char) (0xf0 | (u >> 18));
            *dst++ = (u_char) (0x80 | ((u >> 12) & 0x3f));
            *dst++ = (u_char) (0x80 | ((u >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (u & 0x3f));
        }
    }

    return dst;
}


static uint32_t
ngx_http_loom_json_hex4(u_char *p)
{
    u_char      c;
    uint32_t    u;
    ngx_uint_t  i;

    u = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];
        u = (u << 4) | (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }

    return u;
}


/*
 * Whether a valid number literal overflows a double, as strconv.ParseFloat
 * sees it.  The decimal exponent of the first significant digit settles
 * all but the numbers in [1e308, 1e309), and only those go to strtod().
 */

ngx_uint_t
ngx_http_loom_json_overflows(u_char *p, u_char *last)
{
    u_char      *q, *copy, buf[NGX_HTTP_LOOM_JSON_NUMLEN];
    double       d;
    size_t       len;
    int64_t      mag, exp, sign;
    ngx_err_t    saved;
    ngx_uint_t   overflow;

    q = p;

    if (*q == '-') {
        q++;
    }

    /* mag: the decimal exponent of the first significant digit */

    if (*q != '0') {
        mag = -1;

        while (q < last && *q >= '0' && *q <= '9') {
            q++;
            mag++;
        }

    } else {
        q++;

        if (q == last || *q != '.') {
            return 0;
        }

        q++;
        mag = -1;

        while (q < last && *q == '0') {
            q++;
            mag--;
        }

        if (q == last || *q < '1' || *q > '9') {
            return 0;
        }
    }

    while (q < last && *q != 'e' && *q != 'E') {
        q++;
    }

    exp = 0;

    if (q < last) {
        q++;
        sign = 1;

        if (*q == '+' || *q == '-') {
            sign = (*q == '-') ? -1 : 1;
            q++;
        }

        /*
         * |mag| is at most the length of the literal, far below 10^15,
         * so an exponent saturated there still decides
         */

        while (q < last && exp < 1000000000000000LL) {
            exp = exp * 10 + (*q++ - '0');
        }

        exp *= sign;
    }

    if (mag + exp < 308) {
        return 0;
    }

    if (mag + exp > 308) {
        return 1;
    }

    len = last - p;

    if (len < NGX_HTTP_LOOM_JSON_NUMLEN) {
        copy = buf;

    } else {
        copy = malloc(len + 1);

        if (copy == NULL) {
            /* cannot tell: let the number pass */
            return 0;
        }
    }

    ngx_memcpy(copy, p, len);
    copy[len] = '\0';

    saved = ngx_errno;
    ngx_set_errno(0);

    d = strtod((char *) copy, NULL);

    /* a number this large cannot underflow: ERANGE means an overflow */

    overflow = (ngx_errno == ERANGE && (d > 1.0 || d < -1.0));

    ngx_set_errno(saved);

    if (copy != buf) {
        free(copy);
    }

    return overflow;
}


ngx_int_t
ngx_http_loom_json_syntax_error(ngx_str_t *err, u_char c, char *context)
{
    u_char  *p;

    p = ngx_cpymem(err->data, "invalid character ",
                   sizeof("invalid character ") - 1);
    p = ngx_http_loom_json_quote_char(p, c);
    *p++ = ' ';
    p = ngx_cpymem(p, context, ngx_strlen(context));
    *p = '\0';

    err->len = p - err->data;

    return NGX_ERROR;
}


ngx_int_t
ngx_http_loom_json_literal_error(ngx_str_t *err, u_char c, char *literal,
    ngx_uint_t n)
{
    u_char  *p, context[sizeof("in literal false (expecting 'x')")];

    p = ngx_cpymem(context, "in literal ", sizeof("in literal ") - 1);
    p = ngx_cpymem(p, literal, ngx_strlen(literal));
    p = ngx_cpymem(p, " (expecting '", sizeof(" (expecting '") - 1);
    *p++ = (u_char) literal[n];
    *p++ = '\'';
    *p++ = ')';
    *p = '\0';

    return ngx_http_loom_json_syntax_error(err, c, (char *) context);
}


ngx_int_t
ngx_http_loom_json_error(ngx_str_t *err, char *text)
{
    err->len = ngx_strlen(text);
    ngx_memcpy(err->data, text, err->len + 1);

    return NGX_ERROR;
}


/*
 * Go's quoteChar(): the byte is taken as the code point U+00XX and quoted
 * as strconv.Quote() would, in single quotes.
 */

u_char *
ngx_http_loom_json_quote_char(u_char *p, u_char c)
{
    static u_char  hex[] = "0123456789abcdef";

    *p++ = '\'';

    switch (c) {

    case '\'':
    case '\\':
        *p++ = '\\';
        *p++ = c;
        break;

    case '\a':
        *p++ = '\\';
        *p++ = 'a';
        break;

    case '\b':
        *p++ = '\\';
        *p++ = 'b';
        break;

    case '\f':
        *p++ = '\\';
        *p++ = 'f';
        break;

    case '\n':
        *p++ = '\\';
        *p++ = 'n';
        break;

    case '\r':
        *p++ = '\\';
        *p++ = 'r';
        break;

    case '\t':
        *p++ = '\\';
        *p++ = 't';
        break;

    case '\v':
        *p++ = '\\';
        *p++ = 'v';
        break;

    default:

        if (c < 0x20 || c == 0x7f) {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else if (c < 0x80) {
            *p++ = c;

        } else if (c < 0xa1 || c == 0xad) {
            /* C1 controls, no-break space and soft hyphen: not printable */
            p = ngx_cpymem(p, "\\u00", 4);
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else {
            *p++ = (u_char) (0xc0 | (c >> 6));
            *p++ = (u_char) (0x80 | (c & 0x3f));
        }
    }

    *p++ = '\'';

    return p;
}


size_t
ngx_http_loom_json_escape_len(u_char *src, size_t len)
{
    u_char  c, *last;
    size_t  n, size;

    n = 0;
    last = src + len;

    while (src < last) {

        c = *src;

        if (c < 0x80) {

            if (c < 0x20) {
                n += (c == '\n' || c == '\r' || c == '\t') ? 2 : 6;

            } else if (c == '"' || c == '\\') {
                n += 2;

            } else if (c == '<' || c == '>' || c == '&') {
                n += 6;

            } else {
                n++;
            }

            src++;
            continue;
        }

        size = ngx_http_loom_utf8_size(src, last);

        if (size == 0) {
            /* \ufffd */
            n += 6;
            src++;
            continue;
        }

        if (size == 3 && c == 0xe2 && src[1] == 0x80
            && (src[2] == 0xa8 || src[2] == 0xa9))
        {
            /* \u2028, \u2029 */
            n += 6;

        } else {
            n += size;
        }

        src += size;
    }

    return n;
}


u_char *
ngx_http_loom_json_escape(u_char *dst, u_char *src, size_t len)
{
    u_char         c, *last;
    size_t         size;
    static u_char  hex[] = "0123456789abcdef";

    last = src + len;

    while (src < last) {

        c = *src;

        if (c < 0x80) {

            src++;

            switch (c) {

            case '"':
            case '\\':
                *dst++ = '\\';
                *dst++ = c;
                continue;

            case '\n':
                *dst++ = '\\';
                *dst++ = 'n';
                continue;

            case '\r':
                *dst++ = '\\';
                *dst++ = 'r';
                continue;

            case '\t':
                *dst++ = '\\';
                *dst++ = 't';
                continue;

            case '<':
            case '>':
            case '&':
                break;

            default:

                if (c >= 0x20) {
                    *dst++ = c;
                    continue;
                }
            }

            dst = ngx_cpymem(dst, "\\u00", 4);
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];
            continue;
        }

        size = ngx_http_loom_utf8_size(src, last);

        if (size == 0) {
            dst = ngx_cpymem(dst, "\\ufffd", 6);
            src++;
            continue;
        }

        if (size == 3 && c == 0xe2 && src[1] == 0x80
            && (src[2] == 0xa8 || src[2] == 0xa9))
        {
            dst = ngx_cpymem(dst, "\\u202", 5);
            *dst++ = (src[2] == 0xa8) ? '8' : '9';

        } else {
            dst = ngx_cpymem(dst, src, size);
        }

        src += size;
    }

    return dst;
}
