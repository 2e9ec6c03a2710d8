/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_cluster.h"


static ngx_int_t ngx_http_loom_cluster_number(const u_char *p, size_t len,
    ngx_uint_t max, ngx_uint_t *n);


/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as Redis Cluster */

uint16_t
ngx_http_loom_cluster_crc16(const u_char *p, size_t len)
{
    size_t      i;
    uint16_t    crc;
    ngx_uint_t  bit;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) p[i] << 8;

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


/*
 * Only the first "{" counts, up to the first "}" after it; an empty tag
 * ("{}") or none at all means the whole key.
 */

ngx_uint_t
ngx_http_loom_cluster_slot(const u_char *key, size_t len)
{
    size_t  s, e;

    for (s = 0; s < len; s++) {
        if (key[s] == '{') {
            break;
        }
    }

    if (s < len) {
        for (e = s + 1; e < len; e++) {
            if (key[e] == '}') {
                break;
            }
        }

        if (e < len && e != s + 1) {
            key += s + 1;
            len = e - s - 1;
        }
    }

    return ngx_http_loom_cluster_crc16(key, len)
           & (NGX_HTTP_LOOM_CLUSTER_SLOTS - 1);
}


static ngx_int_t
ngx_http_loom_cluster_number(const u_char *p, size_t len, ngx_uint_t max,
    ngx_uint_t *n)
{
    size_t      i;
    ngx_uint_t  v;

    if (len == 0 || len > 5) {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return NGX_ERROR;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v > max) {
        return NGX_ERROR;
    }

    *n = v;

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_cluster_host_port(const u_char *p, size_t len,
    ngx_str_t *host, in_port_t *port)
{
    size_t      i;
    ngx_uint_t  n;

    for (i = len; i > 0; i--) {
        if (p[i - 1] == ':') {
            break;
        }
    }

    if (i == 0
        || ngx_http_loom_cluster_number(p + i, len - i, 65535, &n)
           != NGX_OK
        || n == 0)
    {
        return NGX_ERROR;
    }

    host->data = (u_char *) p;
    host->len = i - 1;

    if (host->len > 2 && p[0] == '[' && p[host->len - 1] == ']') {
        host->data++;
        host->len -= 2;
    }

    *port = (in_port_t) n;

    return NGX_OK;
}


/*
 * "MOVED <slot> <host>:<port>", "ASK <slot> <host>:<port>",
 * "TRYAGAIN ...", "CLUSTERDOWN ..."
 */

ngx_int_t
ngx_http_loom_cluster_redirect(const u_char *err, size_t len,
    ngx_http_loom_cluster_redirect_t *rd)
{
    size_t       skip;
    const u_char  *p, *last, *sp;

    ngx_memzero(rd, sizeof(ngx_http_loom_cluster_redirect_t));

    if (len >= 8 && ngx_strncmp(err, "TRYAGAIN", 8) == 0) {
        rd->kind = NGX_HTTP_LOOM_CLUSTER_TRYAGAIN;
        return NGX_OK;
    }

    if (len >= 11 && ngx_strncmp(err, "CLUSTERDOWN", 11) == 0) {
        rd->kind = NGX_HTTP_LOOM_CLUSTER_DOWN;
        return NGX_OK;
    }

    if (len > 6 && ngx_strncmp(err, "MOVED ", 6) == 0) {
        rd->kind = NGX_HTTP_LOOM_CLUSTER_MOVED;
        skip = 6;

    } else if (len > 4 && ngx_strncmp(err, "ASK ", 4) == 0) {
        rd->kind = NGX_HTTP_LOOM_CLUSTER_ASK;
        skip = 4;

    } else {
        return NGX_DECLINED;
    }

    p = err + skip;
    last = err + len;

    for (sp = p; sp < last && *sp != ' '; sp++) { /* void */ }

    if (sp == last
        || ngx_http_loom_cluster_number(p, sp - p,
                                        NGX_HTTP_LOOM_CLUSTER_SLOTS - 1,
                                        &rd->slot)
           != NGX_OK
        || ngx_http_loom_cluster_host_port(sp + 1, last - sp - 1, &rd->host,
                                           &rd->port)
           != NGX_OK)
    {
        rd->kind = 0;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * CLUSTER SLOTS: an array of ranges, each [first, last, master, replica,
 * ...], a node being [host, port, id, ...]
 */

ngx_int_t
ngx_http_loom_cluster_slots(redisReply *reply,
    ngx_http_loom_cluster_range_t *ranges, ngx_uint_t max, ngx_uint_t *n)
{
    size_t                          i;
    redisReply                     *r, *node;
    ngx_http_loom_cluster_range_t  *rg;

    *n = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements > max)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        r = reply->element[i];

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3
            || r->element[0]->type != REDIS_REPLY_INTEGER
            || r->element[1]->type != REDIS_REPLY_INTEGER
            || r->element[0]->integer < 0
            || r->element[1]->integer >= NGX_HTTP_LOOM_CLUSTER_SLOTS
            || r->element[0]->integer > r->element[1]->integer)
        {
            return NGX_ERROR;
        }

        node = r->element[2];

        if (node->type != REDIS_REPLY_ARRAY || node->elements < 2
            || node->element[0]->type != REDIS_REPLY_STRING
            || node->element[1]->type != REDIS_REPLY_INTEGER
            || node->element[1]->integer <= 0
            || node->element[1]->integer > 65535)
        {
            return NGX_ERROR;
        }

        rg = &ranges[i];
        rg->first = (ngx_uint_t) r->element[0]->integer;
        rg->last = (ngx_uint_t) r->element[1]->integer;
        rg->host.data = (u_char *) node->element[0]->str;
        rg->host.len = node->element[0]->len;
        rg->port = (in_port_t) node->element[1]->integer;
    }

    *n = reply->elements;

    return NGX_OK;
}
