/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_REV_H_INCLUDED_
#define _NGX_HTTP_LOOM_REV_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_json.h"


/*
 * Revisions (docs/protocol.md section 15), the pure parts: what comes on
 * a topic's channel, the frames built from it, and the checks of the
 * request members of revisions.  No nginx function is called.
 *
 * Channel messages (written by lua/append.lua, resume.lua, epoch.lua and
 * unregister.lua):
 *
 *   "<seq> <rev> <ts> <epoch> <delivery>"   a publish or sendWithoutSave;
 *                                            rev and ts 0 when not stored
 *   "E <epoch> <rev> <ts> <value>"           the epoch changed
 *   "U <registration>"                       a registration ended
 */


#define NGX_HTTP_LOOM_REV_DELIVERY       1
#define NGX_HTTP_LOOM_REV_EPOCH          2
#define NGX_HTTP_LOOM_REV_UNREGISTERED   3

/* a retention member not given, or given as null (back to the default) */
#define NGX_HTTP_LOOM_REV_UNSET          -2
#define NGX_HTTP_LOOM_REV_DEFAULT        -1

/* room for any error message written here */
#define NGX_HTTP_LOOM_REV_ERRLEN         128


typedef struct {
    ngx_uint_t    kind;          /* NGX_HTTP_LOOM_REV_* */
    uint64_t      seq;           /* DELIVERY */
    uint64_t      rev;           /* DELIVERY, EPOCH */
    uint64_t      ts;            /* DELIVERY, EPOCH */
    ngx_str_t     epoch;         /* DELIVERY, EPOCH */
    ngx_str_t     text;          /* the delivery, the value (EPOCH), or
                                    the registration (UNREGISTERED) */
} ngx_http_loom_rev_msg_t;


typedef struct {
    ngx_int_t     history;       /* count, or UNSET or DEFAULT */
    ngx_int_t     max_age;       /* seconds, or UNSET or DEFAULT */
    ngx_uint_t    memory;        /* "storage": 0 absent, 1 redis, 2 memory */
} ngx_http_loom_retention_t;


#define NGX_HTTP_LOOM_REV_PROTOCOL       "dataloom.v2"


/*
 * Whether one Sec-WebSocket-Protocol header value (a comma-separated
 * list) offers "dataloom.v2"; names are compared exactly (RFC 6455)
 */
ngx_uint_t ngx_http_loom_rev_offered(ngx_str_t *value);

/* NGX_OK, or NGX_ERROR for a message of none of the forms above */
ngx_int_t ngx_http_loom_rev_parse(u_char *p, size_t len,
    ngx_http_loom_rev_msg_t *m);

/*
 * The v2 delivery: the v1 delivery ({...}\n) with ,"rev":R,"ts":T before
 * its closing brace.  len() is exactly what write() writes (a frame's
 * header holds its length).
 */
size_t ngx_http_loom_rev_delivery_len(ngx_str_t *delivery, uint64_t rev,
    uint64_t ts);
u_char *ngx_http_loom_rev_delivery(u_char *dst, ngx_str_t *delivery,
    uint64_t rev, uint64_t ts);

/*
 * A history entry, {"rev":R,"ts":T,"data":<data>,"senderId":"<sender>"},
 * from the stored delivery d and where its data is (offset o, length l):
 * the sender follows the data.  NGX_ERROR when d is not a delivery.
 */
ngx_int_t ngx_http_loom_rev_entry_parts(ngx_str_t *d, size_t o, size_t l,
    ngx_str_t *data, ngx_str_t *sender);
size_t ngx_http_loom_rev_entry_len(ngx_str_t *data, ngx_str_t *sender,
    uint64_t rev, uint64_t ts);
u_char *ngx_http_loom_rev_entry(u_char *dst, uint64_t rev, uint64_t ts,
    ngx_str_t *data, ngx_str_t *sender);

/*
 * The resync event:
 * {"action":"resync","topic":<topic>,"reason":"<reason>","data":<value>,
 *  "rev":R,"epoch":"<epoch>","ts":T,"type":"event"}\n
 * topic is the name as a JSON string (quotes included); the epoch is
 * escaped here; an empty value is written as null.
 */
size_t ngx_http_loom_rev_resync_len(ngx_str_t *topic, ngx_str_t *reason,
    ngx_str_t *value, uint64_t rev, ngx_str_t *epoch, uint64_t ts);
u_char *ngx_http_loom_rev_resync(u_char *dst, ngx_str_t *topic,
    ngx_str_t *reason, ngx_str_t *value, uint64_t rev, ngx_str_t *epoch,
    uint64_t ts);

/* a JSON number that is an integer of 0 or more (at most 2^53) */
ngx_int_t ngx_http_loom_rev_uint(ngx_str_t *raw, uint64_t *v);

/*
 * The members of requests, as the envelope scanner keeps them (absent and
 * null members are not given).  Each returns NGX_OK, or NGX_ERROR with
 * the message of docs/protocol.md section 15 in err (err->data must have
 * room for NGX_HTTP_LOOM_REV_ERRLEN bytes).
 */

/* "snapshot", "reverse": true or false */
ngx_int_t ngx_http_loom_rev_bool(ngx_http_loom_json_value_t *v, char *name,
    ngx_uint_t *flag, ngx_str_t *err);

/*
 * "since" of subscribe: {"epoch": string, "rev": integer}; the epoch is
 * decoded into scratch (room for the raw value's length)
 */
ngx_int_t ngx_http_loom_rev_since(ngx_http_loom_json_value_t *v,
    u_char *scratch, ngx_str_t *epoch, uint64_t *rev, ngx_str_t *err);

/* "since", "limit" of history: integers of 0 or more */
ngx_int_t ngx_http_loom_rev_count(ngx_http_loom_json_value_t *v, char *name,
    uint64_t *n, ngx_str_t *err);

/* "from", "until" of history: integers (ms since 1970) */
ngx_int_t ngx_http_loom_rev_time(ngx_http_loom_json_value_t *v, char *name,
    uint64_t *ms, ngx_str_t *err);

/* "retention" and "storage"; history at most limit */
ngx_int_t ngx_http_loom_rev_retention(ngx_http_loom_json_value_t *retention,
    ngx_http_loom_json_value_t *storage, ngx_uint_t limit,
    ngx_http_loom_retention_t *r, ngx_str_t *err);

/* number to decimal text, at dst; returns the end */
u_char *ngx_http_loom_rev_decimal(u_char *dst, uint64_t v);
size_t ngx_http_loom_rev_digits(uint64_t v);


#endif /* _NGX_HTTP_LOOM_REV_H_INCLUDED_ */
