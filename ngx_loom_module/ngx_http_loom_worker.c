/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_module.h"


/*
 * The worker's own state, reachable from every layer: the module entry
 * creates it in init_process and keeps it in the main configuration.
 */


static uint64_t ngx_http_loom_random(ngx_http_loom_worker_t *w);


ngx_http_loom_worker_t *
ngx_http_loom_get_worker(void)
{
    ngx_http_loom_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_loom_module);

    return lmcf ? lmcf->worker : NULL;
}


/* xorshift128+: ids and tags need to be unique, not secret */

static uint64_t
ngx_http_loom_random(ngx_http_loom_worker_t *w)
{
    uint64_t  s0, s1;

    s1 = w->seed[0];
    s0 = w->seed[1];

    w->seed[0] = s0;
    s1 ^= s1 << 23;
    w->seed[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);

    return w->seed[1] + s0;
}


void
ngx_http_loom_random_id(ngx_http_loom_worker_t *w, u_char *buf)
{
    u_char      bytes[16];
    uint64_t    r[2];
    ngx_uint_t  i;

    static u_char  hex[] = "0123456789abcdef";

    r[0] = ngx_http_loom_random(w);
    r[1] = ngx_http_loom_random(w);
    ngx_memcpy(bytes, r, 16);

    /* RFC 4122 version 4, variant 1 */
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;

    for (i = 0; i < 16; i++) {

        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *buf++ = '-';
        }

        *buf++ = hex[bytes[i] >> 4];
        *buf++ = hex[bytes[i] & 0x0f];
    }
}


/* a monotonic clock in microseconds, for latencies */

uint64_t
ngx_http_loom_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
