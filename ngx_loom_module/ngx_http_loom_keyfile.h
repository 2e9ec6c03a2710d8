/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_KEYFILE_H_INCLUDED_
#define _NGX_HTTP_LOOM_KEYFILE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_perm.h"


/*
 * The key file of loom_auth_file (docs/auth.md, "The key file"): a JSON
 * object
 *
 *     {"keys": [{"name": "dashboard",
 *                "sha256": "<64 hex digits: SHA-256 of the key>",
 *                "publish": [...], "subscribe": [...], "admin": [...]}]}
 *
 * The three lists are topic patterns (ngx_http_loom_perm.h), each may be
 * left out (nothing allowed).  Anything else is an error: an unknown or
 * duplicate member, a name used twice, a hash used twice.
 *
 * Pure code: libc, jansson and libcrypto only, no nginx function calls.
 */


#define NGX_HTTP_LOOM_KEY_HASH_LEN   32
#define NGX_HTTP_LOOM_KEY_NAME_LEN   64

/* enough for every message the parser writes */
#define NGX_HTTP_LOOM_KEYFILE_ERRLEN  256


typedef struct {
    ngx_str_t                  name;         /* NUL-terminated */
    u_char                     hash[NGX_HTTP_LOOM_KEY_HASH_LEN];
    ngx_http_loom_perm_t      *perm;
} ngx_http_loom_key_t;


typedef struct {
    ngx_http_loom_key_t       *keys;
    ngx_uint_t                 nkeys;
} ngx_http_loom_keyfile_t;


/*
 * Parses a key file held in memory; NULL on error, err then says where
 * ("line 3, column 7: ..." for JSON syntax, "keys[2] \"name\": ..." for
 * an entry) and why.  The result is malloc()ed: ngx_http_loom_keyfile_free().
 */
ngx_http_loom_keyfile_t *ngx_http_loom_keyfile_parse(u_char *data,
    size_t len, char *err, size_t errlen);

/* the same from a file, read at configuration time */
ngx_http_loom_keyfile_t *ngx_http_loom_keyfile_load(const char *path,
    char *err, size_t errlen);

void ngx_http_loom_keyfile_free(ngx_http_loom_keyfile_t *kf);

/*
 * The entry whose hash is the SHA-256 of the presented key, or NULL.  Every
 * entry is compared, each in constant time.
 */
ngx_http_loom_key_t *ngx_http_loom_keyfile_lookup(ngx_http_loom_keyfile_t *kf,
    u_char *key, size_t len);

/* SHA-256 of data into hash; NGX_ERROR if libcrypto fails */
ngx_int_t ngx_http_loom_keyfile_hash(u_char *data, size_t len,
    u_char hash[NGX_HTTP_LOOM_KEY_HASH_LEN]);


#endif /* _NGX_HTTP_LOOM_KEYFILE_H_INCLUDED_ */
