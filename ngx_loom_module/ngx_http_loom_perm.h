/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_PERM_H_INCLUDED_
#define _NGX_HTTP_LOOM_PERM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


/*
 * Topic patterns and permission sets (docs/auth.md, "Topic patterns").
 *
 * A topic is split into segments at '/'.  In a pattern:
 *
 *     *          any run of characters within one segment (none included)
 *     **         a whole segment: any number of segments (none included)
 *     {client}   the connection's ClientId
 *     {sub}      the token's subject
 *     \* \{ \} \\    the character itself
 *
 * Everything else is matched byte for byte.  A placeholder whose value is
 * empty, absent, or holds '*', '{', '}', '\', '/' or a control character
 * makes the pattern match nothing (the CVE-2017-7650 lesson).
 *
 * A permission set holds three lists of patterns: publish (publish,
 * sendWithoutSave), subscribe (subscribe, get, history) and admin
 * (registerTopic, updateSchema, unregisterTopic).  Nothing is allowed that
 * no pattern grants.  A set is one block of memory; matching allocates
 * nothing.
 *
 * Pure code: libc and jansson only, no nginx function calls.
 */


#define NGX_HTTP_LOOM_PERM_PUBLISH      0
#define NGX_HTTP_LOOM_PERM_SUBSCRIBE    1
#define NGX_HTTP_LOOM_PERM_ADMIN        2
#define NGX_HTTP_LOOM_PERM_NOPS         3

#define NGX_HTTP_LOOM_PERM_SEPARATOR    '/'

/* the longest pattern and the most patterns in one list */
#define NGX_HTTP_LOOM_PERM_MAX_PATTERN  1024
#define NGX_HTTP_LOOM_PERM_MAX_LIST     1024

/* enough for every message ngx_http_loom_perm_compile() writes */
#define NGX_HTTP_LOOM_PERM_ERRLEN       128


typedef struct ngx_http_loom_perm_s  ngx_http_loom_perm_t;


typedef struct {
    ngx_str_t                  client;       /* empty: none */
    ngx_str_t                  sub;          /* empty: none */
} ngx_http_loom_perm_vars_t;


typedef struct {
    ngx_str_t                 *patterns;
    ngx_uint_t                 n;
} ngx_http_loom_perm_list_t;


/*
 * Compiles the lists, indexed by NGX_HTTP_LOOM_PERM_PUBLISH etc., into
 * one malloc()ed block, to be released with ngx_http_loom_perm_free().
 * NULL on error: err then says which list, which pattern (counted from 1)
 * and why, without quoting the pattern; "no memory" if malloc() failed.
 */
ngx_http_loom_perm_t *ngx_http_loom_perm_compile(
    ngx_http_loom_perm_list_t *lists, char *err, size_t errlen);

/*
 * The same from JSON: each argument is an array of strings or NULL (an
 * empty list).  The error names the list: "publish[2]: ...".
 */
ngx_http_loom_perm_t *ngx_http_loom_perm_from_json(json_t *publish,
    json_t *subscribe, json_t *admin, char *err, size_t errlen);

void ngx_http_loom_perm_free(ngx_http_loom_perm_t *perm);

/* the set that allows everything (loom_api_key); never freed */
ngx_http_loom_perm_t *ngx_http_loom_perm_everything(void);

/* NGX_OK: op on topic is allowed; NGX_DECLINED: it is not */
ngx_int_t ngx_http_loom_perm_check(ngx_http_loom_perm_t *perm, ngx_uint_t op,
    ngx_str_t *topic, ngx_http_loom_perm_vars_t *vars);

/* NGX_OK when any of the three lists allows the topic (listTopics) */
ngx_int_t ngx_http_loom_perm_visible(ngx_http_loom_perm_t *perm,
    ngx_str_t *topic, ngx_http_loom_perm_vars_t *vars);

/*
 * Checks a value for a placeholder: NGX_OK if it may be substituted,
 * NGX_DECLINED if it is empty or holds a pattern or control character.
 */
ngx_int_t ngx_http_loom_perm_value_ok(u_char *p, size_t len);


#endif /* _NGX_HTTP_LOOM_PERM_H_INCLUDED_ */
