/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_jschema_int.h"


/*
 * The "format" assertions: date-time, date and time (RFC 3339 section
 * 5.6), email (RFC 5321 mailbox, ASCII), uuid (RFC 4122 text form), ipv4
 * (dotted quad, no leading zeros), ipv6 (RFC 4291 section 2.2, no zone)
 * and uri (RFC 3986 URI: a scheme is required).  ASCII only throughout.
 */


static const char  *ngx_http_loom_js_formats[] = {
    "", "date-time", "date", "time", "email", "uuid", "ipv4", "ipv6", "uri",
    NULL
};


ngx_int_t
ngx_http_loom_js_format_id(const char *name, size_t len)
{
    ngx_uint_t  i;

    for (i = 1; ngx_http_loom_js_formats[i]; i++) {
        if (strlen(ngx_http_loom_js_formats[i]) == len
            && memcmp(ngx_http_loom_js_formats[i], name, len) == 0)
        {
            return i;
        }
    }

    return NGX_HTTP_LOOM_JS_FMT_NONE;
}


/* n ASCII digits as a number, or -1 */

static ngx_int_t
ngx_http_loom_js_digits(const u_char *p, size_t n)
{
    ngx_int_t  v;

    v = 0;

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        v = v * 10 + (*p++ - '0');
    }

    return v;
}


static ngx_int_t
ngx_http_loom_js_date(const u_char *p, size_t len)
{
    ngx_int_t         y, m, d, max;
    static ngx_int_t  days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                 31 };

    if (len != 10 || p[4] != '-' || p[7] != '-') {
        return NGX_DECLINED;
    }

    y = ngx_http_loom_js_digits(p, 4);
    m = ngx_http_loom_js_digits(p + 5, 2);
    d = ngx_http_loom_js_digits(p + 8, 2);

    if (y < 0 || m < 1 || m > 12 || d < 1) {
        return NGX_DECLINED;
    }

    max = days[m - 1];

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        max = 29;
    }

    return (d <= max) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_js_time(const u_char *p, size_t len)
{
    size_t     i;
    ngx_int_t  h, m, s, oh, om, utc;

    if (len < 9 || p[2] != ':' || p[5] != ':') {
        return NGX_DECLINED;
    }

    h = ngx_http_loom_js_digits(p, 2);
    m = ngx_http_loom_js_digits(p + 3, 2);
    s = ngx_http_loom_js_digits(p + 6, 2);

    if (h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 60) {
        return NGX_DECLINED;
    }

    i = 8;

    if (p[i] == '.') {
        i++;

        if (i == len || p[i] < '0' || p[i] > '9') {
            return NGX_DECLINED;
        }

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            i++;
        }
    }

    if (i == len) {
        return NGX_DECLINED;
    }

    if ((p[i] == 'Z' || p[i] == 'z') && i + 1 == len) {
        oh = 0;
        om = 0;

    } else if ((p[i] == '+' || p[i] == '-') && len - i == 6
               && p[i + 3] == ':')
    {
        oh = ngx_http_loom_js_digits(p + i + 1, 2);
        om = ngx_http_loom_js_digits(p + i + 4, 2);

        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return NGX_DECLINED;
        }

        if (p[i] == '-') {
            oh = -oh;
            om = -om;
        }

    } else {
        return NGX_DECLINED;
    }

    if (s == 60) {
        /* a leap second is 23:59:60 in UTC */
        utc = ((h * 60 + m - (oh * 60 + om)) % 1440 + 1440) % 1440;

        if (utc != 23 * 60 + 59) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_ipv4(const u_char *p, size_t len)
{
    size_t      i, start;
    ngx_int_t   v;
    ngx_uint_t  parts;

    parts = 0;
    i = 0;

    while (parts < 4) {
        start = i;
        v = 0;

        while (i < len && p[i] >= '0' && p[i] <= '9' && i - start < 3) {
            v = v * 10 + (p[i++] - '0');
        }

        if (i == start || v > 255 || (p[start] == '0' && i - start > 1)) {
            return NGX_DECLINED;
        }

        parts++;

        if (parts < 4) {
            if (i == len || p[i] != '.') {
                return NGX_DECLINED;
            }

            i++;
        }
    }

    return (i == len) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_js_ipv6(const u_char *p, size_t len)
{
    size_t      i, start;
    ngx_uint_t  groups, gap;

    groups = 0;
    gap = 0;
    i = 0;

    if (len >= 2 && p[0] == ':' && p[1] == ':') {
        gap = 1;
        i = 2;

        if (len == 2) {
            return NGX_OK;
        }

    } else if (len && p[0] == ':') {
        return NGX_DECLINED;
    }

    for ( ;; ) {
        start = i;

        while (i < len && i - start < 5 && isxdigit(p[i])) {
            i++;
        }

        if (i < len && p[i] == '.') {
            /* a trailing dotted quad counts as two groups */

            if (ngx_http_loom_js_ipv4(p + start, len - start) != NGX_OK) {
                return NGX_DECLINED;
            }

            groups += 2;
            break;
        }

        if (i == start || i - start > 4) {
            return NGX_DECLINED;
        }

        groups++;

        if (i == len) {
            break;
        }

        if (p[i] != ':') {
            return NGX_DECLINED;
        }

        i++;

        if (i < len && p[i] == ':') {
            if (gap) {
                return NGX_DECLINED;
            }

            gap = 1;
            i++;

            if (i == len) {
                break;
            }

        } else if (i == len) {
            return NGX_DECLINED;
        }

        if (groups > 8) {
            return NGX_DECLINED;
        }
    }

    return (gap ? groups < 8 : groups == 8) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_js_uuid(const u_char *p, size_t len)
{
    size_t  i;

    if (len != 36) {
        return NGX_DECLINED;
    }

    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') {
                return NGX_DECLINED;
            }

        } else if (!isxdigit(p[i])) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_hostname(const u_char *p, size_t len)
{
    size_t  i, label;

    if (len == 0 || len > 253) {
        return NGX_DECLINED;
    }

    label = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '.') {
            if (label == 0 || p[i - 1] == '-') {
                return NGX_DECLINED;
            }

            label = 0;
            continue;
        }

        if (!(isalnum(p[i]) || (p[i] == '-' && label > 0)) || p[i] > 0x7f) {
            return NGX_DECLINED;
        }

        if (++label > 63) {
            return NGX_DECLINED;
        }
    }

    return (label && p[len - 1] != '-') ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_loom_js_email(const u_char *p, size_t len)
{
    size_t         i, at;
    const u_char  *d;
    static char    atext[] = "!#$%&'*+-/=?^_`{|}~";

    at = len;

    for (i = len; i > 0; i--) {
        if (p[i - 1] == '@') {
            at = i - 1;
            break;
        }
    }

    if (at == len || at == 0 || at == len - 1) {
        return NGX_DECLINED;
    }

    if (p[0] == '"') {
        /* quoted-string local part */

        if (at < 2 || p[at - 1] != '"') {
            return NGX_DECLINED;
        }

        for (i = 1; i < at - 1; i++) {
            if (p[i] == '\\') {
                if (++i == at - 1 || p[i] < 0x20 || p[i] > 0x7e) {
                    return NGX_DECLINED;
                }

            } else if (p[i] == '"' || p[i] < 0x20 || p[i] > 0x7e) {
                return NGX_DECLINED;
            }
        }

    } else {
        if (p[0] == '.' || p[at - 1] == '.') {
            return NGX_DECLINED;
        }

        for (i = 0; i < at; i++) {
            if (p[i] == '.') {
                if (p[i + 1] == '.') {
                    return NGX_DECLINED;
                }

                continue;
            }

            if (!(p[i] < 0x80 && isalnum(p[i]))
                && (p[i] == '\0' || strchr(atext, p[i]) == NULL))
            {
                return NGX_DECLINED;
            }
        }
    }

    d = p + at + 1;
    len -= at + 1;

    if (d[0] == '[') {
        if (d[len - 1] != ']') {
            return NGX_DECLINED;
        }

        if (len > 6 && memcmp(d + 1, "IPv6:", 5) == 0) {
            return ngx_http_loom_js_ipv6(d + 6, len - 7);
        }

        return ngx_http_loom_js_ipv4(d + 1, len - 2);
    }

    return ngx_http_loom_js_hostname(d, len);
}


/* RFC 3986: unreserved, sub-delims, and the extra characters allowed */

static ngx_int_t
ngx_http_loom_js_uri_chars(const u_char *p, const u_char *last,
    const char *extra)
{
    static char  sub[] = "-._~!$&'()*+,;=";

    while (p < last) {
        if (*p == '%') {
            if (last - p < 3 || !isxdigit(p[1]) || !isxdigit(p[2])) {
                return NGX_DECLINED;
            }

            p += 3;
            continue;
        }

        if (*p >= 0x80 || *p == '\0'
            || !(isalnum(*p) || strchr(sub, *p) || strchr(extra, *p)))
        {
            return NGX_DECLINED;
        }

        p++;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loom_js_uri(const u_char *p, size_t len)
{
    const u_char  *s, *last, *auth, *host, *at, *end, *q;

    last = p + len;

    if (len == 0 || !isalpha(p[0])) {
        return NGX_DECLINED;
    }

    for (s = p + 1; s < last && *s != ':'; s++) {
        if (!(isalnum(*s) || *s == '+' || *s == '-' || *s == '.')) {
            return NGX_DECLINED;
        }
    }

    if (s == last) {
        return NGX_DECLINED;
    }

    s++;

    /* fragment and query */

    end = memchr(s, '#', last - s);
    if (end) {
        if (ngx_http_loom_js_uri_chars(end + 1, last, ":@/?") != NGX_OK) {
            return NGX_DECLINED;
        }

        last = end;
    }

    end = memchr(s, '?', last - s);
    if (end) {
        if (ngx_http_loom_js_uri_chars(end + 1, last, ":@/?") != NGX_OK) {
            return NGX_DECLINED;
        }

        last = end;
    }

    if (last - s >= 2 && s[0] == '/' && s[1] == '/') {
        auth = s + 2;

        for (end = auth; end < last && *end != '/'; end++) { /* void */ }

        at = memchr(auth, '@', end - auth);
        host = auth;

        if (at) {
            if (ngx_http_loom_js_uri_chars(auth, at, ":") != NGX_OK) {
                return NGX_DECLINED;
            }

            host = at + 1;
        }

        if (host < end && *host == '[') {
            q = memchr(host, ']', end - host);

            if (q == NULL
                || ngx_http_loom_js_ipv6(host + 1, q - host - 1) != NGX_OK)
            {
                return NGX_DECLINED;
            }

            q++;

        } else {
            for (q = host; q < end && *q != ':'; q++) { /* void */ }

            if (ngx_http_loom_js_uri_chars(host, q, "") != NGX_OK) {
                return NGX_DECLINED;
            }
        }

        if (q < end) {
            if (*q != ':') {
                return NGX_DECLINED;
            }

            for (q++; q < end; q++) {
                if (*q < '0' || *q > '9') {
                    return NGX_DECLINED;
                }
            }
        }

        s = end;
    }

    return ngx_http_loom_js_uri_chars(s, last, ":@/");
}


ngx_int_t
ngx_http_loom_js_format_check(ngx_uint_t format, const u_char *s, size_t len)
{
    size_t  i;

    switch (format) {

    case NGX_HTTP_LOOM_JS_FMT_DATE_TIME:
        if (len < 20 || (s[10] != 'T' && s[10] != 't')) {
            return NGX_DECLINED;
        }

        if (ngx_http_loom_js_date(s, 10) != NGX_OK) {
            return NGX_DECLINED;
        }

        return ngx_http_loom_js_time(s + 11, len - 11);

    case NGX_HTTP_LOOM_JS_FMT_DATE:
        return ngx_http_loom_js_date(s, len);

    case NGX_HTTP_LOOM_JS_FMT_TIME:
        return ngx_http_loom_js_time(s, len);

    case NGX_HTTP_LOOM_JS_FMT_EMAIL:
        return ngx_http_loom_js_email(s, len);

    case NGX_HTTP_LOOM_JS_FMT_UUID:
        return ngx_http_loom_js_uuid(s, len);

    case NGX_HTTP_LOOM_JS_FMT_IPV4:
        return ngx_http_loom_js_ipv4(s, len);

    case NGX_HTTP_LOOM_JS_FMT_IPV6:
        for (i = 0; i < len; i++) {
            if (s[i] >= 0x80) {
                return NGX_DECLINED;
            }
        }

        return ngx_http_loom_js_ipv6(s, len);

    case NGX_HTTP_LOOM_JS_FMT_URI:
        return ngx_http_loom_js_uri(s, len);

    default:
        return NGX_OK;
    }
}
