/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_http_loom_rev.h"


/* 2^53: integers up to it are exact in a double (Lua, JavaScript) */
#define NGX_HTTP_LOOM_REV_MAX_UINT   9007199254740992ULL

/* the longest maxAge: 68 years of seconds */
#define NGX_HTTP_LOOM_REV_MAX_AGE    2147483647


static u_char *ngx_http_loom_rev_word(u_char *p, u_char *last,
    ngx_str_t *word);
static u_char *ngx_http_loom_rev_number(u_char *p, u_char *last,
    uint64_t *v);
static ngx_int_t ngx_http_loom_rev_error(ngx_str_t *err, char *a, char *b,
    char *c);
static ngx_int_t ngx_http_loom_rev_json_uint(json_t *j, uint64_t max,
    ngx_int_t *v);


ngx_uint_t
ngx_http_loom_rev_offered(ngx_str_t *value)
{
    u_char  *p, *last, *start, *end;

    p = value->data;
    last = p + value->len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        for (end = p; end < last && *end != ','; end++) {
            /* void */
        }

        p = end + 1;

        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        if (end - start == sizeof(NGX_HTTP_LOOM_REV_PROTOCOL) - 1
            && ngx_strncmp(start, NGX_HTTP_LOOM_REV_PROTOCOL,
                           sizeof(NGX_HTTP_LOOM_REV_PROTOCOL) - 1) == 0)
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_loom_rev_parse(u_char *p, size_t len, ngx_http_loom_rev_msg_t *m)
{
    u_char  *last;

    last = p + len;

    ngx_memzero(m, sizeof(ngx_http_loom_rev_msg_t));

    if (len >= 2 && p[0] == 'U' && p[1] == ' ') {
        m->kind = NGX_HTTP_LOOM_REV_UNREGISTERED;
        m->text.data = p + 2;
        m->text.len = len - 2;
        return NGX_OK;
    }

    if (len >= 2 && p[0] == 'E' && p[1] == ' ') {
        m->kind = NGX_HTTP_LOOM_REV_EPOCH;
        p += 2;

    } else {
        m->kind = NGX_HTTP_LOOM_REV_DELIVERY;

        p = ngx_http_loom_rev_number(p, last, &m->seq);
        if (p == NULL) {
            return NGX_ERROR;
        }
    }

    if (m->kind == NGX_HTTP_LOOM_REV_EPOCH) {
        p = ngx_http_loom_rev_word(p, last, &m->epoch);
        if (p == NULL) {
            return NGX_ERROR;
        }
    }

    p = ngx_http_loom_rev_number(p, last, &m->rev);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_loom_rev_number(p, last, &m->ts);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (m->kind == NGX_HTTP_LOOM_REV_DELIVERY) {
        p = ngx_http_loom_rev_word(p, last, &m->epoch);
        if (p == NULL) {
            return NGX_ERROR;
        }
    }

    if (p == last) {
        return NGX_ERROR;
    }

    m->text.data = p;
    m->text.len = last - p;

    return NGX_OK;
}


/* digits and one space after them */

/* a word up to the next space, which must follow; the end after it */

static u_char *
ngx_http_loom_rev_word(u_char *p, u_char *last, ngx_str_t *word)
{
    u_char  *start;

    start = p;

    while (p < last && *p != ' ') {
        p++;
    }

    if (p == start || p == last) {
        return NULL;
    }

    word->data = start;
    word->len = p - start;

    return p + 1;
}


static u_char *
ngx_http_loom_rev_number(u_char *p, u_char *last, uint64_t *v)
{
    u_char    *start;
    uint64_t   n;

    start = p;
    n = 0;

    while (p < last && *p >= '0' && *p <= '9') {

        if (p - start == 19) {
            return NULL;
        }

        n = n * 10 + (*p++ - '0');
    }

    if (p == start || p == last || *p != ' ') {
        return NULL;
    }

    *v = n;

    return p + 1;
}


size_t
ngx_http_loom_rev_delivery_len(ngx_str_t *delivery, uint64_t rev,
    uint64_t ts)
{
    return delivery->len + sizeof(",\"rev\":,\"ts\":") - 1
           + ngx_http_loom_rev_digits(rev) + ngx_http_loom_rev_digits(ts);
}


u_char *
ngx_http_loom_rev_delivery(u_char *dst, ngx_str_t *delivery, uint64_t rev,
    uint64_t ts)
{
    /* the delivery ends with "}\n" */

    dst = ngx_cpymem(dst, delivery->data, delivery->len - 2);
    dst = ngx_cpymem(dst, ",\"rev\":", 7);
    dst = ngx_http_loom_rev_decimal(dst, rev);
    dst = ngx_cpymem(dst, ",\"ts\":", 6);
    dst = ngx_http_loom_rev_decimal(dst, ts);
    *dst++ = '}';
    *dst++ = '\n';

    return dst;
}


ngx_int_t
ngx_http_loom_rev_entry_parts(ngx_str_t *d, size_t o, size_t l,
    ngx_str_t *data, ngx_str_t *sender)
{
    size_t  start;

    static u_char  key[] = ",\"senderId\":\"";

    start = o + l + sizeof(key) - 1;

    if (o + l < o || start + 3 > d->len
        || ngx_memcmp(d->data + o + l, key, sizeof(key) - 1) != 0
        || ngx_memcmp(d->data + d->len - 3, "\"}\n", 3) != 0)
    {
        return NGX_ERROR;
    }

    data->data = d->data + o;
    data->len = l;
    sender->data = d->data + start;
    sender->len = d->len - 3 - start;

    return NGX_OK;
}


size_t
ngx_http_loom_rev_entry_len(ngx_str_t *data, ngx_str_t *sender,
    uint64_t rev, uint64_t ts)
{
    return sizeof("{\"rev\":,\"ts\":,\"data\":,\"senderId\":\"\"}") - 1
           + ngx_http_loom_rev_digits(rev) + ngx_http_loom_rev_digits(ts)
           + data->len + sender->len;
}


u_char *
ngx_http_loom_rev_entry(u_char *dst, uint64_t rev, uint64_t ts,
    ngx_str_t *data, ngx_str_t *sender)
{
    dst = ngx_cpymem(dst, "{\"rev\":", 7);
    dst = ngx_http_loom_rev_decimal(dst, rev);
    dst = ngx_cpymem(dst, ",\"ts\":", 6);
    dst = ngx_http_loom_rev_decimal(dst, ts);
    dst = ngx_cpymem(dst, ",\"data\":", 8);
    dst = ngx_cpymem(dst, data->data, data->len);
    dst = ngx_cpymem(dst, ",\"senderId\":\"", 13);
    dst = ngx_cpymem(dst, sender->data, sender->len);
    *dst++ = '"';
    *dst++ = '}';

    return dst;
}


size_t
ngx_http_loom_rev_resync_len(ngx_str_t *topic, ngx_str_t *reason,
    ngx_str_t *value, uint64_t rev, ngx_str_t *epoch, uint64_t ts)
{
    return sizeof("{\"action\":\"resync\",\"topic\":,\"reason\":\"\","
                  "\"data\":,\"rev\":,\"epoch\":\"\",\"ts\":,"
                  "\"type\":\"event\"}\n") - 1
           + topic->len + reason->len + (value->len ? value->len : 4)
           + ngx_http_loom_json_escape_len(epoch->data, epoch->len)
           + ngx_http_loom_rev_digits(rev) + ngx_http_loom_rev_digits(ts);
}


u_char *
ngx_http_loom_rev_resync(u_char *dst, ngx_str_t *topic, ngx_str_t *reason,
    ngx_str_t *value, uint64_t rev, ngx_str_t *epoch, uint64_t ts)
{
    dst = ngx_cpymem(dst, "{\"action\":\"resync\",\"topic\":", 27);
    dst = ngx_cpymem(dst, topic->data, topic->len);
    dst = ngx_cpymem(dst, ",\"reason\":\"", 11);
    dst = ngx_cpymem(dst, reason->data, reason->len);
    dst = ngx_cpymem(dst, "\",\"data\":", 9);

    if (value->len) {
        dst = ngx_cpymem(dst, value->data, value->len);

    } else {
        dst = ngx_cpymem(dst, "null", 4);
    }

    dst = ngx_cpymem(dst, ",\"rev\":", 7);
    dst = ngx_http_loom_rev_decimal(dst, rev);
    dst = ngx_cpymem(dst, ",\"epoch\":\"", 10);
    dst = ngx_http_loom_json_escape(dst, epoch->data, epoch->len);
    dst = ngx_cpymem(dst, "\",\"ts\":", 7);
    dst = ngx_http_loom_rev_decimal(dst, ts);
    dst = ngx_cpymem(dst, ",\"type\":\"event\"}\n", 17);

    return dst;
}


ngx_int_t
ngx_http_loom_rev_uint(ngx_str_t *raw, uint64_t *v)
{
    u_char    *p, *last;
    uint64_t   n;

    p = raw->data;
    last = p + raw->len;
    n = 0;

    if (p == last || (*p == '0' && raw->len > 1)) {
        return NGX_ERROR;
    }

    while (p < last) {

        if (*p < '0' || *p > '9' || p - raw->data == 16) {
            return NGX_ERROR;
        }

        n = n * 10 + (*p++ - '0');
    }

    if (n > NGX_HTTP_LOOM_REV_MAX_UINT) {
        return NGX_ERROR;
    }

    *v = n;

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_rev_bool(ngx_http_loom_json_value_t *v, char *name,
    ngx_uint_t *flag, ngx_str_t *err)
{
    if (v->type == NGX_HTTP_LOOM_JSON_TRUE) {
        *flag = 1;
        return NGX_OK;
    }

    if (v->type == NGX_HTTP_LOOM_JSON_FALSE) {
        *flag = 0;
        return NGX_OK;
    }

    return ngx_http_loom_rev_error(err, "invalid \"", name,
                                   "\": it must be true or false");
}


ngx_int_t
ngx_http_loom_rev_since(ngx_http_loom_json_value_t *v, u_char *scratch,
    ngx_str_t *epoch, uint64_t *rev, ngx_str_t *err)
{
    json_t  *j, *e, *r;
    size_t   n;

    j = NULL;

    if (v->type != NGX_HTTP_LOOM_JSON_OBJECT) {
        goto invalid;
    }

    j = json_loadb((char *) v->raw.data, v->raw.len, 0, NULL);
    if (j == NULL) {
        goto invalid;
    }

    e = json_object_get(j, "epoch");
    r = json_object_get(j, "rev");

    if (!json_is_string(e) || !json_is_integer(r)
        || json_integer_value(r) < 0
        || (uint64_t) json_integer_value(r) > NGX_HTTP_LOOM_REV_MAX_UINT)
    {
        goto invalid;
    }

    n = json_string_length(e);

    if (n > v->raw.len) {
        goto invalid;
    }

    ngx_memcpy(scratch, json_string_value(e), n);
    epoch->data = scratch;
    epoch->len = n;
    *rev = (uint64_t) json_integer_value(r);

    json_decref(j);

    return NGX_OK;

invalid:

    if (j) {
        json_decref(j);
    }

    return ngx_http_loom_rev_error(err, "invalid \"since\": it needs "
                                   "\"epoch\" (a string) and \"rev\" ",
                                   "(an integer of 0 or more)", "");
}


ngx_int_t
ngx_http_loom_rev_count(ngx_http_loom_json_value_t *v, char *name,
    uint64_t *n, ngx_str_t *err)
{
    if (v->type == NGX_HTTP_LOOM_JSON_NUMBER
        && ngx_http_loom_rev_uint(&v->raw, n) == NGX_OK)
    {
        return NGX_OK;
    }

    return ngx_http_loom_rev_error(err, "invalid \"", name,
                                   "\": it must be an integer of 0 or more");
}


ngx_int_t
ngx_http_loom_rev_time(ngx_http_loom_json_value_t *v, char *name,
    uint64_t *ms, ngx_str_t *err)
{
    if (v->type == NGX_HTTP_LOOM_JSON_NUMBER
        && ngx_http_loom_rev_uint(&v->raw, ms) == NGX_OK)
    {
        return NGX_OK;
    }

    return ngx_http_loom_rev_error(err, "invalid \"", name,
                                   "\": it must be an integer "
                                   "(ms since 1970)");
}


ngx_int_t
ngx_http_loom_rev_retention(ngx_http_loom_json_value_t *retention,
    ngx_http_loom_json_value_t *storage, ngx_uint_t limit,
    ngx_http_loom_retention_t *r, ngx_str_t *err)
{
    u_char   num[24], *p;
    json_t  *j, *h, *a;

    r->history = NGX_HTTP_LOOM_REV_UNSET;
    r->max_age = NGX_HTTP_LOOM_REV_UNSET;
    r->memory = 0;

    if (storage->type != NGX_HTTP_LOOM_JSON_NONE
        && storage->type != NGX_HTTP_LOOM_JSON_NULL)
    {
        if (storage->raw.len == sizeof("\"memory\"") - 1
            && ngx_strncmp(storage->raw.data, "\"memory\"",
                           storage->raw.len) == 0)
        {
            r->memory = 2;

        } else if (storage->raw.len == sizeof("\"redis\"") - 1
                   && ngx_strncmp(storage->raw.data, "\"redis\"",
                                  storage->raw.len) == 0)
        {
            r->memory = 1;

        } else {
            return ngx_http_loom_rev_error(err, "invalid \"storage\": it "
                                           "must be \"redis\" or ",
                                           "\"memory\"", "");
        }
    }

    if (retention->type == NGX_HTTP_LOOM_JSON_NONE
        || retention->type == NGX_HTTP_LOOM_JSON_NULL)
    {
        return NGX_OK;
    }

    j = NULL;

    if (retention->type == NGX_HTTP_LOOM_JSON_OBJECT) {
        j = json_loadb((char *) retention->raw.data, retention->raw.len, 0,
                       NULL);
    }

    if (j == NULL) {
        return ngx_http_loom_rev_error(err, "invalid \"retention\": it ",
                                       "must be an object", "");
    }

    h = json_object_get(j, "history");
    a = json_object_get(j, "maxAge");

    if (ngx_http_loom_rev_json_uint(h, limit, &r->history) != NGX_OK) {
        json_decref(j);
        p = ngx_http_loom_rev_decimal(num, limit);
        *p = '\0';
        return ngx_http_loom_rev_error(err, "invalid \"retention\": "
                                       "\"history\" must be an integer "
                                       "from 0 to ", (char *) num, "");
    }

    if (ngx_http_loom_rev_json_uint(a, NGX_HTTP_LOOM_REV_MAX_AGE,
                                    &r->max_age)
        != NGX_OK)
    {
        json_decref(j);
        return ngx_http_loom_rev_error(err, "invalid \"retention\": "
                                       "\"maxAge\" must be an integer ",
                                       "of 0 or more", "");
    }

    json_decref(j);

    return NGX_OK;
}


/* absent: UNSET; null: DEFAULT; an integer from 0 to max */

static ngx_int_t
ngx_http_loom_rev_json_uint(json_t *j, uint64_t max, ngx_int_t *v)
{
    if (j == NULL) {
        *v = NGX_HTTP_LOOM_REV_UNSET;
        return NGX_OK;
    }

    if (json_is_null(j)) {
        *v = NGX_HTTP_LOOM_REV_DEFAULT;
        return NGX_OK;
    }

    if (!json_is_integer(j) || json_integer_value(j) < 0
        || (uint64_t) json_integer_value(j) > max)
    {
        return NGX_ERROR;
    }

    *v = (ngx_int_t) json_integer_value(j);

    return NGX_OK;
}


u_char *
ngx_http_loom_rev_decimal(u_char *dst, uint64_t v)
{
    u_char  buf[20], *p;

    p = buf + sizeof(buf);

    do {
        *--p = (u_char) ('0' + v % 10);
        v /= 10;
    } while (v);

    return ngx_cpymem(dst, p, buf + sizeof(buf) - p);
}


size_t
ngx_http_loom_rev_digits(uint64_t v)
{
    size_t  n;

    n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }

    return n;
}


static ngx_int_t
ngx_http_loom_rev_error(ngx_str_t *err, char *a, char *b, char *c)
{
    char        *parts[3];
    size_t       n;
    u_char      *p, *last;
    ngx_uint_t   i;

    parts[0] = a;
    parts[1] = b;
    parts[2] = c;

    p = err->data;
    last = p + NGX_HTTP_LOOM_REV_ERRLEN;

    for (i = 0; i < 3; i++) {
        n = ngx_strlen(parts[i]);

        if (n > (size_t) (last - p)) {
            n = last - p;
        }

        p = ngx_cpymem(p, parts[i], n);
    }

    err->len = p - err->data;

    return NGX_ERROR;
}
