/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for the key file parser.  Besides not crashing or
 * leaking: a refusal always says why, an accepted file has unique names
 * that follow the rules, and each key is found by nothing but its own
 * hash's preimage (here: never by the input itself unless it hashes so).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_keyfile.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    h[NGX_HTTP_LOOM_KEY_HASH_LEN];
    size_t                    i, j;
    ngx_str_t                 topic;
    ngx_http_loom_key_t      *key;
    ngx_http_loom_keyfile_t  *kf;
    ngx_http_loom_perm_vars_t vars;
    char                      err[NGX_HTTP_LOOM_KEYFILE_ERRLEN];

    err[0] = '\0';
    kf = ngx_http_loom_keyfile_parse((u_char *) data, size, err,
                                     sizeof(err));

    if (kf == NULL) {
        if (err[0] == '\0') {
            abort();
        }

        return 0;
    }

    for (i = 0; i < kf->nkeys; i++) {
        key = &kf->keys[i];

        if (key->name.len == 0 || key->name.len > NGX_HTTP_LOOM_KEY_NAME_LEN
            || strlen((char *) key->name.data) != key->name.len
            || ngx_http_loom_perm_value_ok(key->name.data, key->name.len)
               != NGX_OK)
        {
            abort();
        }

        for (j = 0; j < i; j++) {
            if (strcmp((char *) kf->keys[j].name.data,
                       (char *) key->name.data) == 0
                || memcmp(kf->keys[j].hash, key->hash, sizeof(h)) == 0)
            {
                abort();
            }
        }

        topic.data = (u_char *) "a/b/c";
        topic.len = 5;
        vars.client.data = (u_char *) "c";
        vars.client.len = 1;
        vars.sub = key->name;
        (void) ngx_http_loom_perm_visible(key->perm, &topic, &vars);
    }

    /* the input as a key: found only by its hash */

    key = ngx_http_loom_keyfile_lookup(kf, (u_char *) data, size);

    if (key) {
        if (ngx_http_loom_keyfile_hash((u_char *) data, size, h) != NGX_OK
            || memcmp(h, key->hash, sizeof(h)) != 0)
        {
            abort();
        }
    }

    ngx_http_loom_keyfile_free(kf);

    return 0;
}
