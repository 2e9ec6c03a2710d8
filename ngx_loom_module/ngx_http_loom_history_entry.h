/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_HISTORY_ENTRY_H_INCLUDED_
#define _NGX_HTTP_LOOM_HISTORY_ENTRY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>


/*
 * The entries of a topic's history stream as XRANGE gives them
 * (lua/append.lua writes them, docs/architecture.md "Revisions and
 * history"): one revision's, or a group commit's, read one revision at a
 * time.  Pure: it reads hiredis replies and calls nothing of nginx but
 * its string functions; the gap repair and the replay use it.
 */


/* an entry of a topic's history stream, its fields as Redis gave them */
typedef struct {
    uint64_t                    rev;
    ngx_str_t                   ts;
    ngx_str_t                   delivery;
    ngx_str_t                   offset;           /* of the data in it */
    ngx_str_t                   length;
} ngx_http_loom_history_fields_t;


/* ["<rev>-0", ["t", ts, "d", delivery, "o", offset, "l", length]] */
ngx_int_t ngx_http_loom_history_fields(redisReply *e,
    ngx_http_loom_history_fields_t *hf);


/*
 * The revisions of an XRANGE answer, one by one: its entries of one
 * message, as above, and those of a group, ["<last rev>-<k>", ["t", ts,
 * "<offset>:<length>", delivery, ...k pairs]] (append.lua).
 */
typedef struct {
    redisReply                    *entries;
    size_t                         entry;      /* the next one */
    redisReply                    *fields;     /* of the group being read */
    uint64_t                       first;      /* its first revision */
    uint64_t                       k;          /* its size, 0: none */
    uint64_t                       message;    /* the next of it */
} ngx_http_loom_history_iter_t;             /* zeroed, then entries set */


/* NGX_OK: hf is the next revision; NGX_DONE: no more; NGX_ERROR */
ngx_int_t ngx_http_loom_history_next(ngx_http_loom_history_iter_t *it,
    ngx_http_loom_history_fields_t *hf);

/* "<rev>-0": one message; "<last rev>-<k>": a group of k (k <= rev) */
ngx_int_t ngx_http_loom_history_entry_id(redisReply *e, uint64_t *rev,
    uint64_t *k);
/* the last revision of an entry */
ngx_int_t ngx_http_loom_history_entry_rev(redisReply *e, uint64_t *rev);


#endif /* _NGX_HTTP_LOOM_HISTORY_ENTRY_H_INCLUDED_ */
