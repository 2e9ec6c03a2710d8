/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_LOOM_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>


/*
 * The pure parts of Redis Cluster support: the slot of a key (CRC16 of
 * the key, or of its hash tag), the errors that redirect a command (MOVED,
 * ASK, TRYAGAIN, CLUSTERDOWN) and the slot map in a CLUSTER SLOTS reply.
 * Nothing here calls nginx or hiredis functions.
 */


#define NGX_HTTP_LOOM_CLUSTER_SLOTS        16384

#define NGX_HTTP_LOOM_CLUSTER_MOVED        1
#define NGX_HTTP_LOOM_CLUSTER_ASK          2
#define NGX_HTTP_LOOM_CLUSTER_TRYAGAIN     3
#define NGX_HTTP_LOOM_CLUSTER_DOWN         4


typedef struct {
    ngx_uint_t    kind;
    ngx_uint_t    slot;              /* MOVED and ASK */
    ngx_str_t     host;              /* MOVED and ASK: where to */
    in_port_t     port;
} ngx_http_loom_cluster_redirect_t;


typedef struct {
    ngx_uint_t    first;             /* slots first..last, inclusive */
    ngx_uint_t    last;
    ngx_str_t     host;              /* of the master; "" for the node that
                                        answered */
    in_port_t     port;
} ngx_http_loom_cluster_range_t;


uint16_t ngx_http_loom_cluster_crc16(const u_char *p, size_t len);
/* the slot of a key: of its hash tag "{...}" when it has a non-empty one */
ngx_uint_t ngx_http_loom_cluster_slot(const u_char *key, size_t len);

/*
 * NGX_OK: the error text of a reply is a cluster redirection, described
 * in *rd; NGX_DECLINED: another error
 */
ngx_int_t ngx_http_loom_cluster_redirect(const u_char *err, size_t len,
    ngx_http_loom_cluster_redirect_t *rd);

/*
 * The masters' ranges in a CLUSTER SLOTS reply: NGX_OK with *n ranges in
 * ranges[0..max); NGX_ERROR when the reply is not one (or holds more than
 * max ranges).  The strings point into the reply.
 */
ngx_int_t ngx_http_loom_cluster_slots(redisReply *reply,
    ngx_http_loom_cluster_range_t *ranges, ngx_uint_t max, ngx_uint_t *n);

/* "host:port" with the port last ("::1:7000" too): NGX_ERROR if not */
ngx_int_t ngx_http_loom_cluster_host_port(const u_char *p, size_t len,
    ngx_str_t *host, in_port_t *port);


#endif /* _NGX_HTTP_LOOM_CLUSTER_H_INCLUDED_ */
