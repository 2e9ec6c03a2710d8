/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_RESUME_H_INCLUDED_
#define _NGX_HTTP_LOOM_RESUME_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_protocol.h"
#include "ngx_http_loom_gap.h"
#include "ngx_http_loom_snapshot.h"


/*
 * subscribe with "snapshot" or "since" (ngx_http_loom_resume.c).  The
 * subscribe request keeps an ngx_http_loom_resume_t in its payload, after
 * the registration, with room behind it for the stream's key.
 */


typedef struct ngx_http_loom_replay_s  ngx_http_loom_replay_t;


typedef struct {
    ngx_http_loom_sub_t        *sub;
    ngx_http_loom_snapshot_wait_t  wait;        /* in the topic's reads */
    uint64_t                    since;          /* the client's rev */
    uint64_t                    top;            /* the answer's rev */
    size_t                      epoch_len;
    u_char                      epoch[NGX_HTTP_LOOM_GAP_EPOCH_LEN];
    unsigned                    snapshot:1;
    unsigned                    resume:1;       /* "since" given */
    unsigned                    foreign:1;      /* an epoch of nobody's */
    unsigned                    recovered:1;
    unsigned                    memory:1;       /* storage "memory" */
    unsigned                    unregistered:1; /* the registration comes
                                                   with the snapshot */
    u_char                      stream[1];      /* P{t:<name>}:h */
} ngx_http_loom_resume_t;


#define ngx_http_loom_resume_size(key_len)                                   \
    (sizeof(ngx_http_loom_resume_t) + (key_len) + 2)

/* where the subscribe request keeps it */
#define ngx_http_loom_resume_of(r)                                           \
    ((ngx_http_loom_resume_t *)                                              \
         ngx_align_ptr((r)->payload.data + NGX_HTTP_LOOM_ID_LEN,             \
                       NGX_ALIGNMENT))


/* the members of the request; NGX_ERROR: answered 400 */
ngx_int_t ngx_http_loom_resume_check(ngx_http_loom_ctx_t *ctx,
    ngx_http_loom_resume_t *rs);
void ngx_http_loom_resume_start(ngx_http_loom_request_t *r,
    ngx_http_loom_resume_t *rs, ngx_http_loom_sub_t *sub);

/*
 * The replay of a resume that recovered (ngx_http_loom_replay.c): the
 * revisions of epoch after since, up to top, from history; then the
 * subscription's buffer above them.  NGX_ERROR: no memory, nothing began.
 */
ngx_int_t ngx_http_loom_replay_start(ngx_http_loom_sub_t *sub,
    ngx_str_t *key, ngx_str_t *epoch, uint64_t since, uint64_t top);

/*
 * one stored history entry, for replays and the history action
 * (ngx_http_loom_replay.c)
 */
ngx_int_t ngx_http_loom_history_entry(redisReply *e, ngx_str_t *data,
    ngx_str_t *sender, uint64_t *rev, uint64_t *ts);
/* the same of a revision's fields, as ngx_http_loom_history_next() has them */
ngx_int_t ngx_http_loom_history_parts(ngx_http_loom_history_fields_t *hf,
    ngx_str_t *data, ngx_str_t *sender, uint64_t *ts);


#endif /* _NGX_HTTP_LOOM_RESUME_H_INCLUDED_ */
