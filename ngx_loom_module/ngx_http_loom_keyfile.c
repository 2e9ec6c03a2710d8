/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "ngx_http_loom_keyfile.h"


#define NGX_HTTP_LOOM_KEYFILE_MAX_KEYS  10000


static ngx_http_loom_keyfile_t *ngx_http_loom_keyfile_build(json_t *root,
    char *err, size_t errlen);
static const char *ngx_http_loom_keyfile_entry(json_t *e,
    ngx_http_loom_key_t *key, char *perr, size_t perrlen);
static ngx_int_t ngx_http_loom_keyfile_hex(const char *hex, size_t len,
    u_char *out);


ngx_http_loom_keyfile_t *
ngx_http_loom_keyfile_parse(u_char *data, size_t len, char *err,
    size_t errlen)
{
    json_t                   *root;
    json_error_t              e;
    ngx_http_loom_keyfile_t  *kf;

    root = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, &e);

    if (root == NULL) {
        snprintf(err, errlen, "line %d, column %d: %s", e.line, e.column,
                 e.text);
        return NULL;
    }

    kf = ngx_http_loom_keyfile_build(root, err, errlen);

    json_decref(root);

    return kf;
}


ngx_http_loom_keyfile_t *
ngx_http_loom_keyfile_load(const char *path, char *err, size_t errlen)
{
    json_t                   *root;
    json_error_t              e;
    ngx_http_loom_keyfile_t  *kf;

    root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);

    if (root == NULL) {
        if (e.line > 0) {
            snprintf(err, errlen, "line %d, column %d: %s", e.line,
                     e.column, e.text);

        } else {
            /* cannot open or read: jansson's text names the reason */
            snprintf(err, errlen, "%s", e.text);
        }

        return NULL;
    }

    kf = ngx_http_loom_keyfile_build(root, err, errlen);

    json_decref(root);

    return kf;
}


void
ngx_http_loom_keyfile_free(ngx_http_loom_keyfile_t *kf)
{
    ngx_uint_t  i;

    if (kf == NULL) {
        return;
    }

    for (i = 0; i < kf->nkeys; i++) {
        ngx_http_loom_perm_free(kf->keys[i].perm);
    }

    free(kf);
}


ngx_http_loom_key_t *
ngx_http_loom_keyfile_lookup(ngx_http_loom_keyfile_t *kf, u_char *key,
    size_t len)
{
    u_char                hash[NGX_HTTP_LOOM_KEY_HASH_LEN];
    ngx_uint_t            i;
    ngx_http_loom_key_t  *found;

    if (kf == NULL || len == 0
        || ngx_http_loom_keyfile_hash(key, len, hash) != NGX_OK)
    {
        return NULL;
    }

    found = NULL;

    for (i = 0; i < kf->nkeys; i++) {
        if (CRYPTO_memcmp(kf->keys[i].hash, hash, sizeof(hash)) == 0) {
            found = &kf->keys[i];
        }
    }

    return found;
}


ngx_int_t
ngx_http_loom_keyfile_hash(u_char *data, size_t len,
    u_char hash[NGX_HTTP_LOOM_KEY_HASH_LEN])
{
    unsigned int  n;

    if (EVP_Digest(data, len, hash, &n, EVP_sha256(), NULL) != 1
        || n != NGX_HTTP_LOOM_KEY_HASH_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * One block: the file structure, the entries, then their names.
 */

static ngx_http_loom_keyfile_t *
ngx_http_loom_keyfile_build(json_t *root, char *err, size_t errlen)
{
    u_char                   *names;
    size_t                    n, i, k, size;
    json_t                   *keys, *e, *name;
    const char               *member, *reason;
    ngx_http_loom_key_t      *key;
    ngx_http_loom_keyfile_t  *kf;
    char                      perr[NGX_HTTP_LOOM_PERM_ERRLEN];

    if (!json_is_object(root)) {
        snprintf(err, errlen, "the file must hold a JSON object");
        return NULL;
    }

    json_object_foreach(root, member, e) {
        if (strcmp(member, "keys") != 0) {
            snprintf(err, errlen, "unknown member \"%.32s\" (only \"keys\")",
                     member);
            return NULL;
        }
    }

    keys = json_object_get(root, "keys");

    if (!json_is_array(keys)) {
        snprintf(err, errlen, "\"keys\" must be an array");
        return NULL;
    }

    n = json_array_size(keys);

    if (n > NGX_HTTP_LOOM_KEYFILE_MAX_KEYS) {
        snprintf(err, errlen, "more than %d keys",
                 NGX_HTTP_LOOM_KEYFILE_MAX_KEYS);
        return NULL;
    }

    size = sizeof(ngx_http_loom_keyfile_t) + n * sizeof(ngx_http_loom_key_t);

    json_array_foreach(keys, i, e) {
        name = json_object_get(e, "name");
        size += (json_is_string(name) ? json_string_length(name) : 0) + 1;
    }

    kf = malloc(size);
    if (kf == NULL) {
        snprintf(err, errlen, "no memory");
        return NULL;
    }

    kf->keys = (ngx_http_loom_key_t *) (kf + 1);
    kf->nkeys = 0;
    names = (u_char *) (kf->keys + n);

    json_array_foreach(keys, i, e) {
        key = &kf->keys[i];
        key->name.data = names;

        perr[0] = '\0';
        reason = ngx_http_loom_keyfile_entry(e, key, perr, sizeof(perr));

        if (reason == NULL) {
            for (k = 0; k < i; k++) {
                if (kf->keys[k].name.len == key->name.len
                    && ngx_memcmp(kf->keys[k].name.data, key->name.data,
                                  key->name.len) == 0)
                {
                    reason = "the name is used by an earlier entry";
                    break;
                }

                if (ngx_memcmp(kf->keys[k].hash, key->hash,
                               NGX_HTTP_LOOM_KEY_HASH_LEN) == 0)
                {
                    reason = "the key is the same as an earlier entry's";
                    break;
                }
            }

            if (reason) {
                ngx_http_loom_perm_free(key->perm);
            }
        }

        if (reason) {
            if (key->name.len) {
                snprintf(err, errlen, "keys[%lu] \"%s\": %s%s",
                         (unsigned long) i + 1, key->name.data, reason, perr);

            } else {
                snprintf(err, errlen, "keys[%lu]: %s%s",
                         (unsigned long) i + 1, reason, perr);
            }

            ngx_http_loom_keyfile_free(kf);
            return NULL;
        }

        names += key->name.len + 1;
        kf->nkeys++;
    }

    return kf;
}


/*
 * Fills key from one entry.  Returns NULL or the reason, which for bad
 * permissions is completed by perr.  The name, once valid, is written even
 * when something else fails, so the message can show it.
 */

static const char *
ngx_http_loom_keyfile_entry(json_t *e, ngx_http_loom_key_t *key,
    char *perr, size_t perrlen)
{
    u_char      *p, c;
    size_t       len, i;
    json_t      *v, *name, *hash;
    const char  *member, *s;

    key->name.len = 0;
    key->name.data[0] = '\0';
    key->perm = NULL;

    if (!json_is_object(e)) {
        return "not an object";
    }

    name = json_object_get(e, "name");

    if (!json_is_string(name)) {
        return "\"name\" must be a string";
    }

    s = json_string_value(name);
    len = json_string_length(name);

    if (len == 0 || len > NGX_HTTP_LOOM_KEY_NAME_LEN) {
        return "\"name\" must be 1 to 64 characters";
    }

    for (i = 0; i < len; i++) {
        c = (u_char) s[i];

        if ((c < 'a' || c > 'z') && (c < 'A' || c > 'Z')
            && (c < '0' || c > '9')
            && c != '.' && c != '_' && c != '-' && c != '@')
        {
            return "\"name\" may hold only letters, digits, '.', '_', '-', "
                   "'@'";
        }
    }

    p = ngx_cpymem(key->name.data, s, len);
    *p = '\0';
    key->name.len = len;

    json_object_foreach(e, member, v) {
        if (strcmp(member, "name") != 0 && strcmp(member, "sha256") != 0
            && strcmp(member, "publish") != 0
            && strcmp(member, "subscribe") != 0
            && strcmp(member, "admin") != 0)
        {
            return "unknown member (name, sha256, publish, subscribe, "
                   "admin)";
        }
    }

    hash = json_object_get(e, "sha256");

    if (!json_is_string(hash)
        || ngx_http_loom_keyfile_hex(json_string_value(hash),
                                     json_string_length(hash), key->hash)
           != NGX_OK)
    {
        return "\"sha256\" must be 64 hexadecimal digits";
    }

    key->perm = ngx_http_loom_perm_from_json(json_object_get(e, "publish"),
                                             json_object_get(e, "subscribe"),
                                             json_object_get(e, "admin"),
                                             perr, perrlen);
    if (key->perm == NULL) {
        return "";
    }

    return NULL;
}


static ngx_int_t
ngx_http_loom_keyfile_hex(const char *hex, size_t len, u_char *out)
{
    size_t      i;
    ngx_uint_t  c, v;

    if (len != 2 * NGX_HTTP_LOOM_KEY_HASH_LEN) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        c = (u_char) hex[i];

        if (c >= '0' && c <= '9') {
            v = c - '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v = (c | 0x20) - 'a' + 10;

        } else {
            return NGX_ERROR;
        }

        if (i % 2 == 0) {
            out[i / 2] = (u_char) (v << 4);

        } else {
            out[i / 2] |= (u_char) v;
        }
    }

    return NGX_OK;
}
